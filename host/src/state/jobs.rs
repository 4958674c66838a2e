//! Singleton jobs (scheduled rotation, the key-deletion sweep): run once
//! per period across all replicas sharing the state.
//!
//! Time is cut into periods of the job's interval (`unix time / interval`).
//! A replica that wants to run period `p` takes it by compare-and-set on
//! the job's document: only if no replica took `p` (or a later period), or
//! the one that did let its lease expire without finishing. The lease is
//! the interval itself, so a holder that dies mid-run is replaced within
//! one period, and a later holder's claim (a higher fence) makes an earlier
//! holder's `finish` a no-op. On a single node the same documents make the
//! job run once per period, as before.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{StateError, StateStore, now_ms};

const NS: &str = "jobs";
const CAS_ATTEMPTS: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobDoc {
    period: u64,
    holder: String,
    /// Grows with every claim: tells a holder whether it still holds it.
    fence: u64,
    lease_until_ms: u64,
    done: bool,
}

/// A claim on one period of a job, for [`Jobs::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub job: String,
    pub period: u64,
    pub fence: u64,
}

/// This replica's side of the singleton jobs.
#[derive(Debug, Clone)]
pub struct Jobs {
    store: StateStore,
    replica: String,
}

/// The period `interval` cuts the current time into.
pub fn current_period(interval: Duration) -> u64 {
    now_ms() / (interval.as_millis().max(1) as u64)
}

impl Jobs {
    pub fn new(store: StateStore, replica: String) -> Self {
        Self { store, replica }
    }

    /// Take period `period` of `job` with a lease of `lease`; `None` when
    /// another replica ran it or holds it.
    pub async fn claim(&self, job: &str, period: u64, lease: Duration) -> Result<Option<Claim>, StateError> {
        for _ in 0..CAS_ATTEMPTS {
            let now = now_ms();
            let (fence, current) = match self.store.get_tagged::<JobDoc>(NS, job).await? {
                Some((doc, tag)) => {
                    let taken = doc.period > period || (doc.period == period && (doc.done || doc.lease_until_ms > now));
                    if taken {
                        return Ok(None);
                    }
                    (doc.fence + 1, Some(tag))
                }
                None => (1, None),
            };
            let doc = JobDoc {
                period,
                holder: self.replica.clone(),
                fence,
                lease_until_ms: now + lease.as_millis() as u64,
                done: false,
            };
            let won = match &current {
                Some(tag) => self.store.replace(NS, job, &doc, tag).await?,
                None => self.store.create(NS, job, &doc).await?,
            };
            if won {
                return Ok(Some(Claim { job: job.to_owned(), period, fence }));
            }
        }
        Ok(None)
    }

    /// Mark a claimed period done; a no-op if another replica has claimed
    /// since (its fence is higher).
    pub async fn finish(&self, claim: &Claim) -> Result<(), StateError> {
        for _ in 0..CAS_ATTEMPTS {
            let Some((mut doc, tag)) = self.store.get_tagged::<JobDoc>(NS, &claim.job).await? else { return Ok(()) };
            if doc.fence != claim.fence || doc.holder != self.replica {
                return Ok(());
            }
            doc.done = true;
            if self.store.replace(NS, &claim.job, &doc, &tag).await? {
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_replica_per_period_and_an_expired_lease_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let store = StateStore::open(d.path()).unwrap();
        let (a, b) = (Jobs::new(store.clone(), "a".into()), Jobs::new(store.clone(), "b".into()));
        let long = Duration::from_secs(60);
        let first = a.claim("rotation", 7, long).await.unwrap().unwrap();
        assert!(b.claim("rotation", 7, long).await.unwrap().is_none(), "held by a");
        a.finish(&first).await.unwrap();
        assert!(b.claim("rotation", 7, long).await.unwrap().is_none(), "done");
        assert!(b.claim("rotation", 6, long).await.unwrap().is_none(), "an earlier period never runs again");
        // Period 8: a takes it and dies; its lease runs out; b takes over.
        let dead = a.claim("rotation", 8, Duration::from_millis(0)).await.unwrap().unwrap();
        let taken = b.claim("rotation", 8, long).await.unwrap().unwrap();
        assert!(taken.fence > dead.fence);
        // The late finish of the replaced holder changes nothing.
        a.finish(&dead).await.unwrap();
        assert!(a.claim("rotation", 8, Duration::from_millis(0)).await.unwrap().is_none(), "b holds it");
        // Jobs are independent.
        assert!(a.claim("deletion-sweep", 8, long).await.unwrap().is_some());
    }
}
