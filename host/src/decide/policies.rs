//! Bound WebAssembly policies on the write path: SSE validation first,
//! then key selection, after the bucket default applied and before any
//! body byte is read. A policy that fails (trap, deadline, limit, bad
//! answer) fails the write closed, naming the policy.

use std::time::Instant;

use super::{Decider, DecisionError, ReadIntent, WriteIntent};
use crate::identity::Principal;
use crate::policy::registry::{Resolved, Snapshot};
use crate::policy::types::{BucketDefault, KeyDecision, Mode, PolicyIdentity, PolicyRequest, Verdict};
use crate::policy::{Hook, PolicyError};
use crate::sse::SseRequest;

/// How an enforced decision reads in the shadow record: the result's own
/// words, or the refusal's S3 code.
pub(super) fn outcome_of<T>(r: &Result<T, DecisionError>, ok: impl Fn(&T) -> String) -> String {
    match r {
        Ok(v) => ok(v),
        Err(DecisionError::PolicyDenied(e)) => format!("refuse:{}", e.code),
        Err(_) => "error".into(),
    }
}

fn failed_closed(name: &str, hook: Hook, why: impl Into<String>) -> DecisionError {
    DecisionError::PolicyFailed { name: name.to_owned(), hook, why: why.into() }
}

impl Decider {
    async fn policy_request(&self, w: &WriteIntent, sse: &SseRequest) -> Result<PolicyRequest, DecisionError> {
        let mode = Mode::from(sse.mode());
        let (key_id, ctx) = match sse {
            SseRequest::Kms { key_id, context } => {
                (key_id.clone(), context.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            }
            _ => (None, Vec::new()),
        };
        let bucket_default = self
            .defaults
            .get(&w.bucket)
            .await?
            .map(|c| BucketDefault { mode: Mode::from(Some(c.algorithm)), kms_key_id: c.kms_key_id.clone() });
        Ok(PolicyRequest {
            operation: w.op.to_owned(),
            bucket: w.bucket.clone(),
            key: w.key.clone(),
            principal: w.principal.clone(),
            identity: self.identity_of(w.principal.as_deref()).await,
            source_ip: w.source_ip.clone(),
            headers: w.headers.clone(),
            requested_mode: mode,
            requested_key_id: key_id,
            encryption_context: ctx,
            bucket_default,
            now: time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64,
        })
    }

    /// The signer as policies see it: attributes and groups of a managed
    /// identity, none for the configured pair.
    pub(super) async fn identity_of(&self, access_key: Option<&str>) -> Option<PolicyIdentity> {
        let ak = access_key?;
        let p = match &self.identities {
            Some(ids) => ids.principal(ak).await,
            None => Principal { access_key: ak.to_owned(), ..Principal::default() },
        };
        Some(PolicyIdentity { access_key: p.access_key, attributes: p.attributes.into_iter().collect(), groups: p.groups })
    }

    /// Reads: the sse-validate policy bound for the object, when it
    /// implements contract 0.2.0 or later, is asked whether this identity
    /// may read an object under this mode and key (`GetObject`,
    /// `HeadObject`). Policies of 0.1.0 only ever saw writes and are not
    /// asked. Why sse-validate and not a hook of its own: "may this signer
    /// use this mode and key" is one question whichever way the bytes go,
    /// and one bound policy then answers it for both directions.
    pub async fn authorize_read(&self, read: &ReadIntent<'_>) -> Result<(), DecisionError> {
        let snap = self.policies.snapshot();
        let live = match snap.resolve(Hook::SseValidate, read.bucket, read.key) {
            Resolved::Policy(p) if !p.prepared.sees_reads() => Resolved::None,
            other => other,
        };
        if matches!(live, Resolved::None) && !self.has_shadow(&snap, Hook::SseValidate, read.bucket, read.key) {
            return Ok(());
        }
        let input = PolicyRequest {
            operation: read.op.to_owned(),
            bucket: read.bucket.to_owned(),
            key: read.key.to_owned(),
            principal: read.principal.map(str::to_owned),
            identity: self.identity_of(read.principal).await,
            source_ip: read.source_ip.map(str::to_owned),
            headers: Vec::new(),
            requested_mode: read.mode,
            requested_key_id: read.key_id.map(str::to_owned),
            encryption_context: Vec::new(),
            bucket_default: None,
            now: time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64,
        };
        let validated = self.validate_with(live, &input);
        self.shadow(&snap, Hook::SseValidate, &input, &outcome_of(&validated, |()| "accept".into()));
        validated
    }

    pub(super) fn observe_policy(&self, hook: Hook, name: &str, started: Instant, outcome: &str) {
        self.metrics.observe_policy_call(hook.name(), name, outcome, started.elapsed().as_secs_f64());
    }

    pub(super) fn policy_failure(&self, hook: Hook, name: &str, started: Instant, e: &PolicyError) -> DecisionError {
        self.observe_policy(hook, name, started, e.class());
        tracing::warn!(policy = %name, hook = hook.name(), error = %e, "policy failed; request denied");
        failed_closed(name, hook, e.to_string())
    }

    /// Apply the policies bound for the intent's bucket and key to a
    /// write's SSE decision. Shadow candidates bound at the same scope are
    /// evaluated on the same input and recorded, never enforced.
    pub(super) async fn apply_policies(&self, w: &WriteIntent, sse: SseRequest) -> Result<SseRequest, DecisionError> {
        let (bucket, key) = (w.bucket.as_str(), w.key.as_str());
        let snap: std::sync::Arc<Snapshot> = self.policies.snapshot();
        let validate = snap.resolve(Hook::SseValidate, bucket, key);
        // The client's own key stays the client's: key selection does not
        // apply to SSE-C (validation does).
        let selects = !matches!(sse, SseRequest::Customer(_));
        let select = if selects { snap.resolve(Hook::KeySelect, bucket, key) } else { Resolved::None };
        let shadows = self.has_shadow(&snap, Hook::SseValidate, bucket, key)
            || (selects && self.has_shadow(&snap, Hook::KeySelect, bucket, key));
        if matches!((&validate, &select), (Resolved::None, Resolved::None)) && !shadows {
            return Ok(sse);
        }
        let input = self.policy_request(w, &sse).await?;
        let validated = self.validate_with(validate, &input);
        self.shadow(&snap, Hook::SseValidate, &input, &outcome_of(&validated, |()| "accept".into()));
        validated?;
        let selected = self.select_with(select, &input, sse);
        if selects {
            let live = outcome_of(&selected, |s| {
                let key_id = match s {
                    SseRequest::Kms { key_id, .. } => key_id.as_deref(),
                    _ => None,
                };
                super::shadow::encryption(Mode::from(s.mode()), key_id)
            });
            self.shadow(&snap, Hook::KeySelect, &input, &live);
        }
        selected
    }

    fn validate_with(&self, validate: Resolved, input: &PolicyRequest) -> Result<(), DecisionError> {
        match validate {
            Resolved::None => Ok(()),
            Resolved::Missing(name) => Err(failed_closed(&name, Hook::SseValidate, "not loaded")),
            Resolved::Policy(p) => {
                let started = Instant::now();
                match self.policies.engine().sse_validate(&p.prepared, input) {
                    Ok(Verdict::Accept) => {
                        self.observe_policy(Hook::SseValidate, &p.info.name, started, "accept");
                        Ok(())
                    }
                    Ok(Verdict::Reject(e)) => {
                        self.observe_policy(Hook::SseValidate, &p.info.name, started, "reject");
                        Err(DecisionError::PolicyDenied(e))
                    }
                    Err(e) => Err(self.policy_failure(Hook::SseValidate, &p.info.name, started, &e)),
                }
            }
        }
    }

    fn select_with(&self, select: Resolved, input: &PolicyRequest, sse: SseRequest) -> Result<SseRequest, DecisionError> {
        let p = match select {
            Resolved::None => return Ok(sse),
            Resolved::Missing(name) => return Err(failed_closed(&name, Hook::KeySelect, "not loaded")),
            Resolved::Policy(p) => p,
        };
        let started = Instant::now();
        let name = p.info.name.as_str();
        match self.policies.engine().key_select(&p.prepared, input) {
            Ok(KeyDecision::Keep) => {
                self.observe_policy(Hook::KeySelect, name, started, "keep");
                Ok(sse)
            }
            Ok(KeyDecision::Deny(e)) => {
                self.observe_policy(Hook::KeySelect, name, started, "deny");
                Err(DecisionError::PolicyDenied(e))
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
