//! The unauthenticated operations routes: `GET /metrics` (Prometheus),
//! `GET /health/live` (the process answers) and `GET /health/ready` (the
//! KMS is running and its probe passes, and the upstream answers).
//!
//! The routes need no credentials, so one upstream probe answers every
//! readiness request for [`READY_PROBE_TTL`]: a flood of them costs the
//! upstream one call per TTL, not one per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::http::Extensions;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};
use serde_json::json;

use crate::kms::manager::KmsManager;
use crate::metrics::Metrics;

/// How long one upstream probe answers `/health/ready`.
pub const READY_PROBE_TTL: Duration = Duration::from_secs(1);

pub struct OpsRoute {
    metrics: Arc<Metrics>,
    kms: Arc<KmsManager>,
    upstream: Arc<dyn s3s::S3>,
    /// The last upstream probe: when it ended and what it found. The lock
    /// is held across a probe, so concurrent requests share one.
    last_probe: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl OpsRoute {
    pub fn new(metrics: Arc<Metrics>, kms: Arc<KmsManager>, upstream: Arc<dyn s3s::S3>) -> Self {
        Self { metrics, kms, upstream, last_probe: tokio::sync::Mutex::default() }
    }

    /// The upstream's readiness, probed at most once per [`READY_PROBE_TTL`].
    async fn upstream_ready_cached(&self, req: &S3Request<Body>) -> Result<(), String> {
        let mut last = self.last_probe.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < READY_PROBE_TTL
        {
            return result.clone();
        }
        let result = self.upstream_ready(req).await;
        *last = Some((Instant::now(), result.clone()));
        result
    }

    /// Any answer from the upstream (even an S3 error) proves it is up;
    /// only a transport failure or a timeout does not.
    async fn upstream_ready(&self, req: &S3Request<Body>) -> Result<(), String> {
        let input = s3s::dto::ListBucketsInput::builder().build().expect("no required fields");
        let probe = crate::s3::sub_request_of(req, input);
        match tokio::time::timeout(Duration::from_secs(3), self.upstream.list_buckets(probe)).await {
            Err(_) => Err("upstream did not answer within 3 s".into()),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e))
                if e.status_code().is_some_and(|s| s.is_server_error()) || e.code() == &s3s::S3ErrorCode::InternalError =>
            {
                Err(format!("upstream error: {}", e.message().unwrap_or("unknown")))
            }
            Ok(Err(_)) => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl S3Route for OpsRoute {
    fn is_match(&self, method: &Method, uri: &Uri, _: &HeaderMap, _: &mut Extensions) -> bool {
        method == Method::GET && matches!(uri.path(), "/metrics" | "/health/live" | "/health/ready")
    }

    async fn check_access(&self, _: &mut S3Request<Body>) -> S3Result<()> {
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let (status, body, ctype) = match req.uri.path() {
            "/metrics" => (StatusCode::OK, self.metrics.render(), "text/plain; version=0.0.4"),
            "/health/ready" => {
                // The KMS state is local and cheap: always current.
                let kms_ok = self.kms.ready();
                let upstream = self.upstream_ready_cached(&req).await;
                let ready = kms_ok && upstream.is_ok();
                let doc = json!({
                    "ready": ready,
                    "kms": { "ready": kms_ok, "status": self.kms.status() },
                    "upstream": { "ready": upstream.is_ok(), "error": upstream.err() },
                });
                let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                (status, doc.to_string(), "application/json")
            }
            _ => (StatusCode::OK, "ok\n".to_owned(), "text/plain"),
        };
        let mut resp = S3Response::new(Body::from(body));
        resp.status = Some(status);
        resp.headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(ctype));
        Ok(resp)
    }
}
