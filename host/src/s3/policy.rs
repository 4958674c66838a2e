//! Bound policies on the write path: SSE validation first, then key
//! selection, after the bucket default applied and before any body byte is
//! read. A policy that fails (trap, deadline, limit, bad answer) fails the
//! request closed with 403 naming the policy.

use std::time::Instant;

use hyper::StatusCode;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result};

use super::Gateway;
use crate::policy::registry::{Resolved, Snapshot};
use crate::policy::types::{BucketDefault, KeyDecision, Mode, PolicyRequest, PolicyS3Error, Verdict};
use crate::policy::{Hook, PolicyError};
use crate::sse::SseRequest;

/// Headers a policy never sees: credentials and SSE-C key material.
const HIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-security-token",
    "cookie",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
    "x-amz-copy-source-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key-md5",
];

fn policy_s3_error(e: PolicyS3Error) -> S3Error {
    let code = S3ErrorCode::from_bytes(e.code.as_bytes()).unwrap_or(S3ErrorCode::AccessDenied);
    let status = code.status_code().unwrap_or(StatusCode::FORBIDDEN);
    let mut err = S3Error::with_message(code, e.message);
    err.set_status_code(status);
    err
}

fn failed_closed(name: &str, hook: Hook, why: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, format!("Request denied: policy '{name}' ({}) failed: {why}", hook.name()))
}

impl Gateway {
    async fn policy_request<T>(
        &self,
        req: &S3Request<T>,
        op: &str,
        bucket: &str,
        key: &str,
        sse: &SseRequest,
    ) -> S3Result<PolicyRequest> {
        let mode = Mode::from(sse.mode());
        let (key_id, ctx) = match sse {
            SseRequest::Kms { key_id, context } => {
                (key_id.clone(), context.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            }
            _ => (None, Vec::new()),
        };
        let bucket_default = self
            .defaults
            .get(bucket)
            .await?
            .map(|c| BucketDefault { mode: Mode::from(Some(c.algorithm)), kms_key_id: c.kms_key_id.clone() });
        let headers = req
            .headers
            .iter()
            .filter(|(n, _)| !HIDDEN_HEADERS.contains(&n.as_str()))
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        Ok(PolicyRequest {
            operation: op.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            principal: req.credentials.as_ref().map(|c| c.access_key.clone()),
            source_ip: req.extensions.get::<crate::routes::Transport>().and_then(|t| t.peer).map(|p| p.ip().to_string()),
            headers,
            requested_mode: mode,
            requested_key_id: key_id,
            encryption_context: ctx,
            bucket_default,
            now: time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64,
        })
    }

    fn observe_policy(&self, hook: Hook, name: &str, started: Instant, outcome: &str) {
        let m = &self.metrics;
        m.policy_calls.with_label_values(&[hook.name(), name, outcome]).inc();
        m.policy_call_seconds.with_label_values(&[hook.name()]).observe(started.elapsed().as_secs_f64());
    }

    fn policy_failure(&self, hook: Hook, name: &str, started: Instant, e: &PolicyError) -> S3Error {
        self.observe_policy(hook, name, started, e.class());
        tracing::warn!(policy = %name, hook = hook.name(), error = %e, "policy failed; request denied");
        failed_closed(name, hook, &e.to_string())
    }

    /// Apply the policies bound for `bucket`/`key` to a write's SSE decision.
    pub(crate) async fn apply_policies<T>(
        &self,
        req: &S3Request<T>,
        op: &str,
        (bucket, key): (&str, &str),
        sse: SseRequest,
    ) -> S3Result<SseRequest> {
        let snap: std::sync::Arc<Snapshot> = self.policies.snapshot();
        let validate = snap.resolve(Hook::SseValidate, bucket, key);
        let select = match sse {
            // The client's own key stays the client's: key selection does
            // not apply to SSE-C (validation does).
            SseRequest::Customer(_) => Resolved::None,
            _ => snap.resolve(Hook::KeySelect, bucket, key),
        };
        if matches!((&validate, &select), (Resolved::None, Resolved::None)) {
            return Ok(sse);
        }
        let input = self.policy_request(req, op, bucket, key, &sse).await?;
        let engine = self.policies.engine();
        match validate {
            Resolved::None => {}
            Resolved::Missing(name) => return Err(failed_closed(&name, Hook::SseValidate, "not loaded")),
            Resolved::Policy(p) => {
                let started = Instant::now();
                match engine.sse_validate(&p.prepared, &input) {
                    Ok(Verdict::Accept) => self.observe_policy(Hook::SseValidate, &p.info.name, started, "accept"),
                    Ok(Verdict::Reject(e)) => {
                        self.observe_policy(Hook::SseValidate, &p.info.name, started, "reject");
                        return Err(policy_s3_error(e));
                    }
                    Err(e) => return Err(self.policy_failure(Hook::SseValidate, &p.info.name, started, &e)),
                }
            }
        }
        let p = match select {
            Resolved::None => return Ok(sse),
            Resolved::Missing(name) => return Err(failed_closed(&name, Hook::KeySelect, "not loaded")),
            Resolved::Policy(p) => p,
        };
        let started = Instant::now();
        let name = p.info.name.as_str();
        match engine.key_select(&p.prepared, &input) {
            Ok(KeyDecision::Keep) => {
                self.observe_policy(Hook::KeySelect, name, started, "keep");
                Ok(sse)
            }
            Ok(KeyDecision::Deny(e)) => {
                self.observe_policy(Hook::KeySelect, name, started, "deny");
                Err(policy_s3_error(e))
            }
            Ok(KeyDecision::Select { mode: Mode::SseS3, .. }) => {
                self.observe_policy(Hook::KeySelect, name, started, "select");
                Ok(SseRequest::S3)
            }
            Ok(KeyDecision::Select { mode: Mode::SseKms, key_id: Some(id), extra_context }) => {
                self.observe_policy(Hook::KeySelect, name, started, "select");
                let mut context = match sse {
                    SseRequest::Kms { context, .. } => context,
                    _ => Default::default(),
                };
                context.extend(extra_context);
                Ok(SseRequest::Kms { key_id: Some(id), context })
            }
            Ok(other) => {
                let e = PolicyError::Invalid(format!("unusable selection {other:?} (sse-s3, or sse-kms with a key id)"));
                Err(self.policy_failure(Hook::KeySelect, name, started, &e))
            }
            Err(e) => Err(self.policy_failure(Hook::KeySelect, name, started, &e)),
        }
    }
}
