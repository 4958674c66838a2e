//! Key rotation by policy: a bound `rotation` policy is asked about every
//! key of the running KMS on a schedule (and on demand); keys it says are
//! due are rotated. Older versions keep decrypting, so rotation never
//! touches stored objects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::audit::{AuditEvent, AuditLog};
use crate::kms::manager::KmsManager;
use crate::metrics::Metrics;
use crate::policy::registry::{PolicyRegistry, Resolved};
use crate::policy::types::{KeyFacts, RotationAdvice};
use crate::policy::{Hook, PolicyError};
use crate::state::jobs::{Jobs, current_period};

pub struct RotationScheduler {
    pub kms: Arc<KmsManager>,
    pub policies: Arc<PolicyRegistry>,
    pub metrics: Arc<Metrics>,
    pub audit: Arc<AuditLog>,
    /// Runs the scheduled pass once per period across replicas.
    pub jobs: Jobs,
}

/// The scheduled pass's job name.
const JOB: &str = "policy-rotation";

/// What one pass decided for one key.
#[derive(Debug, Serialize)]
pub struct RotationResult {
    pub key_id: String,
    pub version: u32,
    pub advice: Option<RotationAdvice>,
    pub rotated: bool,
    pub error: Option<String>,
}

fn unix(t: time::OffsetDateTime) -> u64 {
    t.unix_timestamp().max(0) as u64
}

impl RotationScheduler {
    /// Run the bound rotation policy over every key, now.
    pub async fn run_once(&self) -> Result<Vec<RotationResult>, PolicyError> {
        let snap = self.policies.snapshot();
        let policy = match snap.resolve(Hook::Rotation, "", "") {
            Resolved::Policy(p) => p,
            Resolved::None => return Ok(Vec::new()),
            Resolved::Missing(name) => return Err(PolicyError::NotFound(name)),
        };
        let Ok(service) = self.kms.service() else { return Ok(Vec::new()) };
        let keys = service.admin().list_keys().await?;
        let now = unix(time::OffsetDateTime::now_utc());
        let mut out = Vec::new();
        for k in keys {
            let facts = KeyFacts {
                key_id: k.key_id.to_string(),
                backend: k.backend.clone(),
                version: k.current_version,
                created_at: unix(k.created_at),
                rotated_at: k.rotated_at.map(unix),
                state: k.state.as_str().to_owned(),
                data_keys_issued: service.data_keys_issued(&k.key_id, k.current_version),
                tags: k.tags.iter().map(|(a, b)| (a.clone(), b.clone())).collect(),
            };
            let started = Instant::now();
            let advice = self.policies.engine().rotation(&policy.prepared, &facts, now);
            let outcome = match &advice {
                Ok(RotationAdvice::Rotate { .. }) => "rotate",
                Ok(RotationAdvice::Later { .. }) => "later",
                Err(e) => e.class(),
            };
            self.metrics.observe_policy_call(Hook::Rotation.name(), &policy.info.name, outcome, started.elapsed().as_secs_f64());
            let mut r = RotationResult {
                key_id: facts.key_id.clone(),
                version: facts.version,
                advice: None,
                rotated: false,
                error: None,
            };
            match advice {
                Ok(a @ RotationAdvice::Rotate { .. }) => {
                    match service.admin().rotate_key(&k.key_id).await {
                        Ok(info) => {
                            r.rotated = true;
                            r.version = info.current_version;
                            service.clear_cache();
                        }
                        Err(e) => r.error = Some(e.to_string()),
                    }
                    let reason = match &a {
                        RotationAdvice::Rotate { reason } => reason.clone(),
                        RotationAdvice::Later { reason, .. } => reason.clone(),
                    };
                    self.audit.record(&AuditEvent {
                        kind: "admin",
                        principal: None,
                        action: "kms:policy-rotation",
                        key_id: Some(k.key_id.as_str()),
                        key_version: Some(r.version),
                        bucket: None,
                        object: None,
                        outcome: if r.rotated { "ok" } else { "error" },
                        detail: Some(&reason),
                        request_id: None,
                    });
                    r.advice = Some(a);
                }
                Ok(a) => r.advice = Some(a),
                Err(e) => {
                    tracing::warn!(policy = %policy.info.name, key_id = %k.key_id, error = %e, "rotation policy failed; key left alone");
                    r.error = Some(e.to_string());
                }
            }
            out.push(r);
        }
        Ok(out)
    }

    /// Run a pass once per period of `every` (0: never) while the
    /// scheduler lives: with several replicas, on the one that claims the
    /// period first (see [`crate::state::jobs`]). Replicas look four times
    /// a period, so a dead holder's period is taken over within it.
    pub fn spawn(self: &Arc<Self>, every: Duration) {
        if every.is_zero() {
            return;
        }
        let weak = Arc::downgrade(self);
        let look = (every / 4).max(Duration::from_millis(250));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(look).await;
                let Some(me) = weak.upgrade() else { return };
                let period = current_period(every);
                let claim = match me.jobs.claim(JOB, period, every).await {
                    Ok(Some(claim)) => claim,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "rotation: cannot claim the period");
                        continue;
                    }
                };
                match me.run_once().await {
                    Ok(results) => {
                        let rotated = results.iter().filter(|r| r.rotated).count();
                        tracing::info!(period, keys = results.len(), rotated, "rotation pass");
                    }
                    Err(e) => tracing::warn!(error = %e, "rotation pass failed"),
                }
                if let Err(e) = me.jobs.finish(&claim).await {
                    tracing::warn!(error = %e, "rotation: cannot record the run");
                }
            }
        });
    }
}
