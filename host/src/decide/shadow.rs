//! Shadow policies: a candidate bound with `"shadow": true` beside the live
//! policy of its scope answers the same requests, and its answer is
//! recorded (`kgw_policy_shadow_total`, an audit event `policy-shadow`)
//! next to the enforced one, never enforced. Operators see where a new
//! policy would decide otherwise before they switch it live.
//!
//! Outcomes compare in one vocabulary: `accept`, `keep`, `sse-s3`,
//! `sse-kms:<key>` (what gets used), `refuse:<S3 code>`, `error`. A live
//! `keep` and a shadow `keep` agree; a shadow `select` of the key the live
//! decision used agrees with it too.

use std::time::Instant;

use super::Decider;
use crate::audit::AuditEvent;
use crate::policy::Hook;
use crate::policy::registry::{Resolved, Snapshot};
use crate::policy::types::{KeyDecision, Mode, PolicyRequest, Verdict};

impl Decider {
    pub(super) fn has_shadow(&self, snap: &Snapshot, hook: Hook, bucket: &str, key: &str) -> bool {
        !matches!(snap.resolve_shadow(hook, bucket, key), Resolved::None)
    }

    /// Evaluate the shadow candidate of `hook` on `input`, if one is bound,
    /// and record it beside `live` (the enforced outcome).
    pub(super) fn shadow(&self, snap: &Snapshot, hook: Hook, input: &PolicyRequest, live: &str) {
        let p = match snap.resolve_shadow(hook, &input.bucket, &input.key) {
            Resolved::None => return,
            Resolved::Missing(name) => return self.record_shadow(hook, &name, input, live, "error"),
            Resolved::Policy(p) if input.operation_is_read() && !p.prepared.sees_reads() => return,
            Resolved::Policy(p) => p,
        };
        let started = Instant::now();
        let engine = self.policies.engine();
        let shadow = match hook {
            Hook::SseValidate => match engine.sse_validate(&p.prepared, input) {
                Ok(Verdict::Accept) => "accept".to_owned(),
                Ok(Verdict::Reject(e)) => format!("refuse:{}", e.code),
                Err(_) => "error".to_owned(),
            },
            Hook::KeySelect => match engine.key_select(&p.prepared, input) {
                // Keep: what the request asked for, as the live side names it.
                Ok(KeyDecision::Keep) => requested(input),
                Ok(KeyDecision::Select { mode: Mode::SseS3, .. }) => "sse-s3".to_owned(),
                Ok(KeyDecision::Select { mode: Mode::SseKms, key_id: Some(k), .. }) => format!("sse-kms:{k}"),
                Ok(KeyDecision::Select { .. }) => "error".to_owned(),
                Ok(KeyDecision::Deny(e)) => format!("refuse:{}", e.code),
                Err(_) => "error".to_owned(),
            },
            Hook::Rotation => return,
        };
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.policy_call_seconds.with_label_values(&[hook.name(), &p.info.name]).observe(seconds);
        self.record_shadow(hook, &p.info.name, input, live, &shadow);
    }

    fn record_shadow(&self, hook: Hook, name: &str, input: &PolicyRequest, live: &str, shadow: &str) {
        let agrees = live == shadow;
        let kind = shadow.split(':').next().unwrap_or(shadow);
        self.metrics.policy_shadow.with_label_values(&[hook.name(), name, kind, if agrees { "true" } else { "false" }]).inc();
        if let Some(audit) = &self.audit {
            let detail = format!("live {live}; shadow {name}: {shadow}");
            audit.record(&AuditEvent {
                kind: "policy-shadow",
                principal: input.principal.as_deref(),
                action: hook.name(),
                key_id: input.requested_key_id.as_deref(),
                key_version: None,
                bucket: Some(&input.bucket),
                object: Some(&input.key),
                outcome: if agrees { "agrees" } else { "differs" },
                detail: Some(&detail),
                request_id: None,
            });
        }
    }
}

/// What a request asked for, in the shadow vocabulary.
fn requested(input: &PolicyRequest) -> String {
    encryption(input.requested_mode, input.requested_key_id.as_deref())
}

/// A mode and key in the shadow vocabulary.
pub(super) fn encryption(mode: Mode, key_id: Option<&str>) -> String {
    match mode {
        Mode::None => "none".into(),
        Mode::SseS3 => "sse-s3".into(),
        Mode::SseKms => format!("sse-kms:{}", key_id.unwrap_or("-")),
        Mode::SseC => "sse-c".into(),
    }
}
