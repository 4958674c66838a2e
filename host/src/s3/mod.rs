//! The S3 front: an `s3s::S3` implementation that encrypts and decrypts the
//! object operations and forwards everything else to the upstream.
//!
//! - [`put`]: PutObject (and POST object, which s3s routes through it).
//! - [`get`]: GetObject and HeadObject, with ranges and preconditions.
//! - [`multipart`], [`part_copy`], [`complete`]: encrypted multipart uploads.
//! - [`copy`]: CopyObject in every mode, and metadata-only re-keying.
//! - [`defaults`]: bucket default encryption (a custom route) and its use.
//! - [`bucket_policy`]: bucket policies, and their statements on SSE
//!   condition keys enforced on writes.
//! - [`listing`] (with [`listed`]: what listings show, cached): plaintext
//!   sizes and SSE-S3 ETags in listings; GetObjectAttributes.
//! - [`policy`]: the write decision's edge (`crate::decide` decides: the
//!   bucket policy, defaults and bound WebAssembly policies).
//! - [`write`]: what every write path shares (SSE headers out of the
//!   input, checksums, the self-copy that attaches a record).
//! - [`checksum`] (with [`hashing`]: digests beside a large upload, on a
//!   task of their own): client checksums verified over the plaintext.
//! - [`keys`], [`body`], [`conditional`]: helpers.
//! - [`errors`]: domain errors → S3 errors, in one place.
//! - [`forward`]: the generated pass-through of all other operations.
//! - [`store_routes`]: the store's own non-S3 paths, never forwarded.

mod attempts;
mod body;
mod bucket_policy;
mod checksum;
mod complete;
mod conditional;
mod copy;
pub mod defaults;
pub mod errors;
pub(crate) mod forward;
mod get;
mod hashing;
mod keys;
mod listed;
pub mod listing;
mod multipart;
mod part_copy;
mod policy;
mod put;
pub mod store_routes;
mod write;

use std::sync::Arc;

use hyper::StatusCode;
use hyper::http::Extensions;
use s3s::S3Request;

use crate::crypto::{FormatParams, SealingKey};
use crate::decide::Decider;
use crate::metrics::Metrics;
use crate::state::StateStore;
use listed::ListingCache;

/// Options of the encrypting front.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub params: FormatParams,
    /// Status for a wrong SSE-C key: 403 (AWS) or 400.
    pub wrong_key_status: StatusCode,
    /// Accept SSE-C over plain HTTP (AWS does not).
    pub allow_insecure_sse_c: bool,
    /// The reserved bucket of cluster state: left out of ListBuckets.
    pub state_bucket: Option<String>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            params: FormatParams::default(),
            wrong_key_status: StatusCode::FORBIDDEN,
            allow_insecure_sse_c: false,
            state_bucket: None,
        }
    }
}

/// The encrypting S3 service.
pub struct Gateway {
    upstream: Arc<dyn s3s::S3>,
    params: FormatParams,
    wrong_key_status: StatusCode,
    allow_insecure_sse_c: bool,
    state_bucket: Option<String>,
    metrics: Arc<Metrics>,
    state: StateStore,
    state_seal: SealingKey,
    /// May a write happen, and in which mode under which key.
    decider: Arc<Decider>,
    listed: ListingCache,
    /// Cluster mode: this replica's attempt numbers (see [`attempts`]).
    attempts: Option<attempts::AttemptNumbers>,
}

/// What a gateway is built from besides its options.
pub struct GatewayParts {
    pub upstream: Arc<dyn s3s::S3>,
    pub metrics: Arc<Metrics>,
    pub state: StateStore,
    /// Seals secrets kept in upload state (derived from the master key).
    pub state_seal: SealingKey,
    pub decider: Arc<Decider>,
}

impl Gateway {
    pub fn new(parts: GatewayParts, opts: GatewayOptions) -> Self {
        let GatewayParts { upstream, metrics, state, state_seal, decider } = parts;
        let attempts = state.is_shared().then(attempts::AttemptNumbers::new);
        Self {
            upstream,
            params: opts.params,
            wrong_key_status: opts.wrong_key_status,
            allow_insecure_sse_c: opts.allow_insecure_sse_c,
            state_bucket: opts.state_bucket,
            metrics,
            state,
            state_seal,
            decider,
            listed: ListingCache::new(100_000),
            attempts,
        }
    }
}

/// A request to the upstream on behalf of a custom route's request.
pub fn sub_request_of<T, U>(req: &S3Request<T>, input: U) -> S3Request<U> {
    sub_request(req, input)
}

/// The access key a request was signed with, for the audit trail.
pub(crate) fn principal<T>(req: &S3Request<T>) -> Option<String> {
    req.credentials.as_ref().map(|c| c.access_key.clone())
}

/// The bucket must exist upstream: NoSuchBucket otherwise (a HEAD answer
/// has no body, hence no error code to pass on).
pub(crate) async fn require_bucket<T>(upstream: &dyn s3s::S3, req: &S3Request<T>, bucket: &str) -> s3s::S3Result<()> {
    let head = s3s::dto::HeadBucketInput::builder().bucket(bucket.to_owned()).build().expect("bucket set");
    match upstream.head_bucket(sub_request(req, head)).await {
        Ok(_) => Ok(()),
        Err(e) if e.status_code() == Some(StatusCode::NOT_FOUND) => {
            Err(s3s::s3_error!(NoSuchBucket, "The specified bucket does not exist"))
        }
        Err(e) => Err(e),
    }
}

/// A request to the upstream derived from a client request: same identity
/// and URI, but only the typed input travels (client headers do not).
pub(crate) fn sub_request<T, U>(req: &S3Request<T>, input: U) -> S3Request<U> {
    S3Request {
        input,
        method: req.method.clone(),
        uri: req.uri.clone(),
        headers: Default::default(),
        extensions: Extensions::new(),
        credentials: req.credentials.clone(),
        region: req.region.clone(),
        service: req.service.clone(),
        trailing_headers: None,
    }
}

impl Gateway {
    /// SSE-C keys travel in headers: AWS accepts them only over TLS.
    fn require_tls_for_sse_c(&self, ext: &Extensions, uses_sse_c: bool) -> s3s::S3Result<()> {
        let tls = ext.get::<crate::routes::Transport>().is_some_and(|t| t.tls);
        if uses_sse_c && !tls && !self.allow_insecure_sse_c {
            return Err(s3s::s3_error!(
                InvalidRequest,
                "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
            ));
        }
        Ok(())
    }
}

/// The plaintext length of an upload: Content-Length, or for aws-chunked
/// bodies sent without one, `x-amz-decoded-content-length`.
fn declared_length(headers: &hyper::HeaderMap, content_length: Option<i64>) -> s3s::S3Result<u64> {
    let decoded =
        || headers.get("x-amz-decoded-content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    let len = content_length.or_else(decoded).ok_or_else(|| s3s::s3_error!(MissingContentLength))?;
    u64::try_from(len).map_err(|_| s3s::s3_error!(InvalidArgument, "negative Content-Length"))
}

/// Reads must not carry managed-SSE headers (AWS answers 400).
fn reject_managed_sse_headers(headers: &hyper::HeaderMap) -> s3s::S3Result<()> {
    let managed =
        ["x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id", "x-amz-server-side-encryption-context"];
    if managed.iter().any(|h| headers.contains_key(*h)) {
        return Err(s3s::s3_error!(InvalidArgument, "x-amz-server-side-encryption header is not supported for this operation."));
    }
    Ok(())
}
