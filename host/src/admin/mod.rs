//! The admin REST API under `/rustfs/admin/v3/` (also `/minio/admin/v3/`),
//! signed with AWS SigV4 like any S3 request (`awscurl --service s3`).
//!
//! The S3 layer verifies the signature; this route then requires the
//! *admin* access key (data-plane keys and unsigned requests get 403) and
//! a signed payload hash, answers JSON, and writes one audit event and one
//! metric per call.
//!
//! - [`kms`]: the KMS endpoints (`kms/...`).
//! - [`policies`]: the WebAssembly policy endpoints (`policies/...`).
//! - [`identities`]: the S3 identity endpoints (`identities/...`).
//! - [`actions`]: what a method and path mean (typed), and their names.
//! - [`dto`]: request/response shapes; [`error`]: JSON errors.

pub mod actions;
pub mod dto;
pub mod error;
pub mod identities;
pub mod kms;
pub mod policies;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::http::Extensions;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};
use serde_json::Value;

use crate::audit::{AuditEvent, AuditLog};
use crate::metrics::Metrics;
use actions::{Action, IdentityAction, KmsAction, PolicyAction};
use error::ApiError;

/// Largest admin request body (policy uploads have their own limit).
const MAX_BODY: usize = 1 << 20;
const PREFIXES: [&str; 2] = ["/rustfs/admin/v3/", "/minio/admin/v3/"];

/// An admin answer: a status, a JSON body, and the key it acted on (what
/// the audit trail records; handlers say it, nothing reads it back out of
/// the body).
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub key_id: Option<String>,
}

impl Reply {
    /// 200 with `body`. The answers are structs of strings, numbers and
    /// string-keyed maps, which always serialise.
    pub fn json(body: impl serde::Serialize) -> Self {
        let body = serde_json::to_value(body).expect("admin answers serialise");
        Self { status: StatusCode::OK, body, key_id: None }
    }

    /// The key this answer is about.
    pub fn about(mut self, key: &impl std::fmt::Display) -> Self {
        self.key_id = Some(key.to_string());
        self
    }
}

/// One admin request, read and authenticated.
pub struct AdminCall {
    pub method: Method,
    /// The path after `…/admin/v3/kms/` or `…/admin/v3/policies/`.
    pub rest: String,
    pub content_type: Option<String>,
    pub query: HashMap<String, String>,
    pub body: Bytes,
    pub principal: String,
}

impl AdminCall {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

pub struct AdminRoute {
    pub admin_access_key: String,
    pub kms: kms::KmsAdmin,
    pub policies: policies::PolicyAdmin,
    pub identities: identities::IdentityAdmin,
    pub metrics: Arc<Metrics>,
    pub audit: Arc<AuditLog>,
    /// Cluster mode: the shared state, whose generation every answer
    /// carries (`x-kms-gateway-generation`), so a client can tell when a
    /// change it made has reached another replica.
    pub cluster: Option<crate::state::StateStore>,
}

/// The answer header naming the cluster generation.
pub const GENERATION_HEADER: &str = "x-kms-gateway-generation";

fn strip_prefix(path: &str) -> Option<&str> {
    PREFIXES.iter().find_map(|p| path.strip_prefix(p))
}

/// The admin area of a path and the rest of it.
fn area_of(path: &str) -> Option<(&'static str, &str)> {
    let rest = strip_prefix(path)?;
    if let Some(r) = rest.strip_prefix("kms/") {
        return Some(("kms", r));
    }
    for area in ["policies", "identities"] {
        if rest == area {
            return Some((area, ""));
        }
        if let Some(r) = rest.strip_prefix(area).and_then(|r| r.strip_prefix('/')) {
            return Some((area, r));
        }
    }
    None
}

/// The key a JSON request body names (`key_id`, or RustFS's older `KeyId`).
fn body_key(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    ["key_id", "KeyId", "keyId"].iter().find_map(|k| v.get(*k)?.as_str().map(str::to_owned))
}

fn json_response(status: StatusCode, v: &Value) -> S3Response<Body> {
    let mut resp = S3Response::new(Body::from(v.to_string()));
    resp.status = Some(status);
    resp.headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

impl AdminRoute {
    fn authorize(&self, req: &S3Request<Body>) -> Result<String, ApiError> {
        let Some(cred) = &req.credentials else {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "AccessDenied", "admin requests must be signed (AWS SigV4)"));
        };
        if cred.access_key != self.admin_access_key {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "AccessDenied", "these credentials may not use the admin API"));
        }
        // SigV2 and presigned URLs leave x-amz-content-sha256 unsigned.
        if !crate::identity::freshness::is_v4_header(&req.headers) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "admin requests must be signed with an AWS SigV4 Authorization header",
            ));
        }
        // The body must be covered by the signature (its SHA-256 is then
        // verified while it is read).
        let hash = req.headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()).unwrap_or("");
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::bad_request("admin requests must sign their payload (x-amz-content-sha256)"));
        }
        Ok(cred.access_key.clone())
    }

    /// Run `action`; `key` gets the key the request names in its body.
    async fn dispatch(&self, req: S3Request<Body>, action: Action, key: &mut Option<String>) -> Result<Reply, ApiError> {
        let principal = self.authorize(&req)?;
        let (area, rest) = area_of(req.uri.path()).unwrap_or(("kms", ""));
        let rest = rest.to_owned();
        let limit = if area == "policies" { policies::MAX_BODY } else { MAX_BODY };
        let content_type = req.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let query = req.uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        let mut body = req.input;
        let body = body.store_all_limited(limit).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "EntityTooLarge",
                format!("admin request bodies here are limited to {limit} bytes (or the body did not match its signed hash)"),
            )
        })?;
        if key.is_none() {
            *key = body_key(&body);
        }
        let call = AdminCall { method: req.method, rest, content_type, query, body, principal };
        match action {
            Action::Kms(a) => self.kms.handle(a, &call).await,
            Action::Policies(a) => self.policies.handle(a, &call).await,
            Action::Identities(a) => self.identities.handle(a, &call).await,
        }
    }
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(&self, _: &Method, uri: &Uri, _: &HeaderMap, _: &mut Extensions) -> bool {
        strip_prefix(uri.path()).is_some()
    }

    /// Authorization happens in `call`, so refusals are JSON like every
    /// other admin error.
    async fn check_access(&self, _: &mut S3Request<Body>) -> S3Result<()> {
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let principal = req.credentials.as_ref().map(|c| c.access_key.clone());
        let request_id = req.extensions.get::<crate::routes::RequestId>().map(|r| r.0.clone());
        let action = match area_of(req.uri.path()) {
            Some(("kms", r)) => KmsAction::of(&req.method, r.trim_end_matches('/')).map(Action::Kms),
            Some(("identities", r)) => IdentityAction::of(&req.method, r).map(Action::Identities),
            Some((_, r)) => PolicyAction::of(&req.method, r).map(Action::Policies),
            None => None,
        };
        let mut key_hint = req.uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "keyId" || k == "key").map(|(_, v)| v.into_owned())
        });
        let result = match action {
            Some(a) => self.dispatch(req, a, &mut key_hint).await,
            None => Err(ApiError::new(StatusCode::NOT_FOUND, "UnknownEndpoint", "no such admin endpoint or method")),
        };
        let (status, body, key_id, outcome) = match result {
            Ok(r) => (r.status, r.body, r.key_id.or(key_hint), "ok"),
            Err(e) => (e.status, e.body(), key_hint, e.code),
        };
        let action = action.map_or("unknown", Action::name);
        self.metrics.admin_requests.with_label_values(&[action, status.as_str()]).inc();
        self.audit.record(&AuditEvent {
            kind: "admin",
            principal: principal.as_deref(),
            action,
            key_id: key_id.as_deref(),
            key_version: None,
            bucket: None,
            object: None,
            outcome,
            detail: Some(status.as_str()),
            request_id: request_id.as_deref(),
        });
        let mut resp = json_response(status, &body);
        if let Some(state) = &self.cluster {
            resp.headers.insert(GENERATION_HEADER, hyper::header::HeaderValue::from(state.generation()));
        }
        Ok(resp)
    }
}
