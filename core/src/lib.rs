//! kms-gateway's pure core (no I/O, no async): what the gateway writes to
//! the store and how it reads it back, what an S3 client's SSE headers
//! mean, and what an admin's KMS configuration says. Everything a hostile
//! store, client or admin request is parsed by lives here.
//!
//! - [`crypto`]: AES-256-GCM, object and part keys, the segment format,
//!   range mapping over parts ([`crypto::layout`]) and format v2's
//!   authenticated part table ([`crypto::manifest`]);
//! - [`sse`]: SSE headers → typed requests, SSE-C keys, and the per-object
//!   record ([`sse::ObjectCrypto`]) stored as namespaced metadata;
//! - [`ids`]: KMS key ids and encryption contexts, as records name them;
//! - [`kms_config`]: the KMS configuration that the admin API's
//!   `configure` and `reconfigure` accept, validated, redacted and sealed.
//!
//! The gateway (`kms-gateway`) adds streams, the KMS and S3 around it; the
//! fuzz targets in `fuzz/` feed this crate hostile input. The byte-level
//! specification lives in `docs/format.md`.

pub mod bucket_policy;
pub mod crypto;
pub mod ids;
pub mod kms_config;
pub mod sse;
