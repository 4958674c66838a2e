//! Which replicas share the state: each writes a heartbeat document
//! (`replicas/<id>`) with the generation it has seen and the fingerprint of
//! the KMS configuration it runs, so `kms/status` can show an operator
//! whether the cluster agrees. One small write per replica per interval,
//! none per request.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{StateError, StateStore, now_ms};

const NS: &str = "replicas";
/// Heartbeats older than this are someone else's past: removed on listing.
const FORGET_AFTER: Duration = Duration::from_secs(86_400);

/// One replica as it last reported itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicaDoc {
    pub replica: String,
    pub version: String,
    pub started_at_ms: u64,
    pub seen_at_ms: u64,
    /// The cluster generation it had seen.
    pub generation: u64,
    /// Digest (hex prefix) of the KMS configuration document it runs.
    pub kms_config: Option<String>,
}

/// What a heartbeat reports of the KMS configuration.
pub type Fingerprint = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// This replica's heartbeats, and the listing of everyone's.
pub struct Replicas {
    store: StateStore,
    id: String,
    started_at_ms: u64,
}

impl Replicas {
    pub fn new(store: StateStore, id: String) -> Self {
        Self { store, id, started_at_ms: now_ms() }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn generation(&self) -> u64 {
        self.store.generation()
    }

    /// Write this replica's heartbeat.
    pub async fn beat(&self, kms_config: Option<String>) -> Result<(), StateError> {
        let doc = ReplicaDoc {
            replica: self.id.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: self.started_at_ms,
            seen_at_ms: now_ms(),
            generation: self.store.generation(),
            kms_config,
        };
        self.store.put(NS, &self.id, &doc).await
    }

    /// Replicas heard from within `within`, by id.
    pub async fn seen(&self, within: Duration) -> Result<Vec<ReplicaDoc>, StateError> {
        let now = now_ms();
        let mut out = Vec::new();
        for (key, doc) in self.store.list::<ReplicaDoc>(NS).await? {
            let age = now.saturating_sub(doc.seen_at_ms);
            if age > FORGET_AFTER.as_millis() as u64 {
                let _ = self.store.delete(NS, &key).await;
            } else if age <= within.as_millis() as u64 {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// Beat every `every` while the process lives.
    pub fn spawn(self: &Arc<Self>, every: Duration, fingerprint: Fingerprint) {
        let me = self.clone();
        super::spawn_every(every, move || {
            let (me, fingerprint) = (me.clone(), fingerprint.clone());
            async move {
                if let Err(e) = me.beat(fingerprint()).await {
                    tracing::warn!(error = %e, "cluster heartbeat failed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn heartbeats_are_listed_and_old_ones_forgotten() {
        let d = tempfile::tempdir().unwrap();
        let store = StateStore::open(d.path()).unwrap();
        let a = Replicas::new(store.clone(), "a".into());
        a.beat(Some("cfg1".into())).await.unwrap();
        Replicas::new(store.clone(), "b".into()).beat(None).await.unwrap();
        let stale =
            ReplicaDoc { seen_at_ms: 1, replica: "gone".into(), ..a.seen(Duration::from_secs(60)).await.unwrap()[0].clone() };
        store.put(NS, "gone", &stale).await.unwrap();
        let seen = a.seen(Duration::from_secs(60)).await.unwrap();
        assert_eq!(seen.iter().map(|r| r.replica.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(seen[0].kms_config.as_deref(), Some("cfg1"));
        assert!(store.get::<ReplicaDoc>(NS, "gone").await.unwrap().is_none(), "a day-old heartbeat is removed");
    }
}
