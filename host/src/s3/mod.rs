//! The S3 front: an `s3s::S3` implementation that encrypts and decrypts the
//! object operations and forwards everything else to the upstream.
//!
//! - [`put`]: PutObject (and POST object, which s3s routes through it).
//! - [`get`]: GetObject and HeadObject, with ranges and preconditions.
//! - [`guard`]: operations that would bypass encryption until they are
//!   implemented for encrypted objects (multipart, copy) are refused when SSE
//!   is involved, and pass through otherwise.
//! - [`keys`], [`checksum`], [`body`], [`conditional`]: helpers.
//! - [`errors`]: domain errors → S3 errors, in one place.
//! - [`forward`]: the generated pass-through of all other operations.

mod body;
mod checksum;
mod conditional;
pub mod errors;
mod forward;
mod get;
mod guard;
mod keys;
mod put;

use std::sync::Arc;

use hyper::StatusCode;
use hyper::http::Extensions;
use s3s::S3Request;

use crate::crypto::FormatParams;
use crate::kms::Kms;

/// Options of the encrypting front.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub params: FormatParams,
    /// Status for a wrong SSE-C key: 403 (AWS) or 400.
    pub wrong_key_status: StatusCode,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self { params: FormatParams::default(), wrong_key_status: StatusCode::FORBIDDEN }
    }
}

/// The encrypting S3 service.
pub struct Gateway {
    upstream: Arc<dyn s3s::S3>,
    kms: Kms,
    params: FormatParams,
    wrong_key_status: StatusCode,
}

impl Gateway {
    pub fn new(upstream: Arc<dyn s3s::S3>, kms: Kms, opts: GatewayOptions) -> Self {
        Self { upstream, kms, params: opts.params, wrong_key_status: opts.wrong_key_status }
    }
}

/// A request to the upstream derived from a client request: same identity
/// and URI, but only the typed input travels (client headers do not).
fn sub_request<T, U>(req: &S3Request<T>, input: U) -> S3Request<U> {
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

/// Reads must not carry managed-SSE headers (AWS answers 400).
fn reject_managed_sse_headers(headers: &hyper::HeaderMap) -> s3s::S3Result<()> {
    let managed =
        ["x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id", "x-amz-server-side-encryption-context"];
    if managed.iter().any(|h| headers.contains_key(*h)) {
        return Err(s3s::s3_error!(InvalidArgument, "x-amz-server-side-encryption header is not supported for this operation."));
    }
    Ok(())
}
