//! kms-gateway: an S3-compatible proxy that encrypts objects on the way in
//! and decrypts them on the way out, with keys held in a KMS.
//!
//! # Layout
//! Requests flow one way: S3 front → SSE decision → keys → crypto → upstream.
//!
//! - [`config`]: flags, environment and TOML configuration; credentials.
//! - [`server`]: builds the service from the configuration and serves it.
//! - [`s3`]: the `s3s::S3` implementation that intercepts object operations.
//! - [`decide`]: the write decision (bucket policy, defaults, bound
//!   policies): may a write happen, in which mode, under which key.
//! - [`sse`]: SSE header parsing and the per-object crypto record, and
//!   [`crypto`]: keys and the object format; both from the pure
//!   `kgw-core` crate (fuzzed), plus the encrypting/decrypting streams.
//! - [`kms`]: key backends (`local`, `vault`), caches, the KMS lifecycle.
//! - [`admin`]: the SigV4-signed admin REST API (`/rustfs/admin/v3/kms/…`).
//! - [`identity`]: S3 identities beyond the configured pair (attributes
//!   and groups for policies) and the SigV4 secret lookup.
//! - [`policy`]: WebAssembly policies (wasmtime sandbox, registry, bindings).
//! - [`rotation`]: key rotation driven by a bound rotation policy.
//! - [`audit`]: the JSON-lines audit trail.
//! - [`metrics`]: Prometheus counters; [`ops`]: `/metrics`, `/health/*`.
//! - [`routes`]: custom routes (operations, bucket encryption) and transport info.
//! - [`state`]: the gateway's dynamic state (bucket defaults and policies,
//!   uploads, KMS configuration, policy bindings, identities) behind a
//!   backend trait: the data directory, or the upstream (cluster mode).
//! - [`upstream`]: the store behind the gateway (remote S3 or embedded).
//! - [`embedded`]: the embedded filesystem store (s3s-fs) with S3 fixes.
//! - [`fsutil`]: durable private file writes.
//!
//! The entry point is [`server::build`] followed by [`server::run`].

pub mod admin;
pub mod audit;
pub mod config;
pub mod crypto;
pub mod decide;
pub mod embedded;
pub mod fsutil;
pub mod identity;
pub mod kms;
pub mod metrics;
pub mod ops;
pub mod policy;
pub mod rotation;
pub mod routes;
pub mod s3;
pub mod server;
pub use kgw_core::sse;
pub mod state;
pub mod upstream;
