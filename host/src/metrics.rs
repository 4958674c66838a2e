//! Prometheus metrics and the unauthenticated operations routes
//! (`GET /metrics`, `GET /health/live`). One registry per gateway, passed
//! around as an `Arc` (no global registry).

use std::sync::Arc;

use hyper::http::Extensions;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};

/// The gateway's counters.
pub struct Metrics {
    registry: Registry,
    /// Object requests by operation and SSE mode.
    pub requests: IntCounterVec,
    /// Plaintext bytes encrypted on upload.
    pub bytes_encrypted: IntCounter,
    /// Plaintext bytes decrypted and returned.
    pub bytes_decrypted: IntCounter,
    /// Ciphertext bytes requested from the upstream for decryption.
    pub upstream_ciphertext_bytes: IntCounter,
    /// KMS calls by operation and outcome.
    pub kms_calls: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("kgw".into()), None).expect("static prefix is valid");
        let requests =
            IntCounterVec::new(Opts::new("object_requests_total", "Object requests by operation and SSE mode"), &["op", "mode"])
                .expect("static metric");
        let bytes_encrypted =
            IntCounter::new("bytes_encrypted_total", "Plaintext bytes encrypted on upload").expect("static metric");
        let bytes_decrypted =
            IntCounter::new("bytes_decrypted_total", "Plaintext bytes decrypted and returned").expect("static metric");
        let upstream_ciphertext_bytes =
            IntCounter::new("upstream_ciphertext_bytes_total", "Ciphertext bytes fetched from the upstream for decryption")
                .expect("static metric");
        let kms_calls =
            IntCounterVec::new(Opts::new("kms_calls_total", "KMS calls by operation and outcome"), &["op", "outcome"])
                .expect("static metric");
        for c in [&requests, &kms_calls] {
            registry.register(Box::new(c.clone())).expect("unique metric");
        }
        for c in [&bytes_encrypted, &bytes_decrypted, &upstream_ciphertext_bytes] {
            registry.register(Box::new(c.clone())).expect("unique metric");
        }
        Self { registry, requests, bytes_encrypted, bytes_decrypted, upstream_ciphertext_bytes, kms_calls }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding of gathered metrics");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

/// `GET /metrics` and `GET /health/live`, served without S3 credentials.
pub struct OpsRoute {
    pub metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl S3Route for OpsRoute {
    fn is_match(&self, method: &Method, uri: &Uri, _: &HeaderMap, _: &mut Extensions) -> bool {
        method == Method::GET && matches!(uri.path(), "/metrics" | "/health/live")
    }

    async fn check_access(&self, _: &mut S3Request<Body>) -> S3Result<()> {
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let (body, ctype) = match req.uri.path() {
            "/metrics" => (self.metrics.render(), "text/plain; version=0.0.4"),
            _ => ("ok\n".to_owned(), "text/plain"),
        };
        let mut resp = S3Response::new(Body::from(body));
        resp.status = Some(StatusCode::OK);
        resp.headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(ctype));
        Ok(resp)
    }
}
