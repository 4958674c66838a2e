//! Calls to a remote KMS: per-attempt timeouts, retries with jittered
//! exponential backoff for idempotent calls only, and a circuit breaker so
//! a dead backend costs microseconds per request instead of a timeout.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::KmsError;
use super::config::BreakerConfig;

/// Closed → (threshold consecutive unavailability failures) → open for
/// `cooldown` → one trial call (half-open) → closed on success, open again
/// on failure. Answers that prove the backend is alive (404, 403, a failed
/// unwrap) count as successes.
pub struct CircuitBreaker {
    cfg: BreakerConfig,
    state: Mutex<BreakerState>,
    gauge: Option<prometheus::IntGauge>,
}

#[derive(Default)]
struct BreakerState {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

impl CircuitBreaker {
    pub fn new(cfg: BreakerConfig, gauge: Option<prometheus::IntGauge>) -> Self {
        if let Some(g) = &gauge {
            g.set(0);
        }
        Self { cfg, state: Mutex::default(), gauge }
    }

    /// May a call go out now?
    pub fn admit(&self) -> Result<(), KmsError> {
        let mut s = self.state.lock().expect("breaker lock");
        match s.open_until {
            None => Ok(()),
            Some(until) if Instant::now() >= until && !s.trial_in_flight => {
                s.trial_in_flight = true;
                Ok(())
            }
            Some(_) => Err(KmsError::Unavailable("backend unavailable (circuit open); retry later".into())),
        }
    }

    pub fn record(&self, backend_alive: bool) {
        let mut s = self.state.lock().expect("breaker lock");
        s.trial_in_flight = false;
        if backend_alive {
            s.consecutive_failures = 0;
            s.open_until = None;
        } else {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            if s.consecutive_failures >= self.cfg.threshold {
                s.open_until = Some(Instant::now() + self.cfg.cooldown);
            }
        }
        if let Some(g) = &self.gauge {
            g.set(i64::from(s.open_until.is_some()));
        }
    }

    pub fn is_open(&self) -> bool {
        self.state.lock().expect("breaker lock").open_until.is_some()
    }
}

/// How one logical call is attempted.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub per_attempt: Duration,
}

/// Whether a call may be repeated without changing its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads and data-key operations: retried.
    Retry,
    /// Mutations (create, rotate, delete, metadata writes): exactly once.
    Once,
}

/// Run `op` under `policy` and `breaker`.
pub async fn call<T, F, Fut>(policy: RetryPolicy, breaker: &CircuitBreaker, kind: Idempotency, mut op: F) -> Result<T, KmsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, KmsError>>,
{
    let attempts = if kind == Idempotency::Retry { policy.attempts.max(1) } else { 1 };
    let mut backoff = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        breaker.admit()?;
        let result = match tokio::time::timeout(policy.per_attempt, op()).await {
            Ok(r) => r,
            Err(_) => Err(KmsError::Unavailable(format!("no answer within {} s", policy.per_attempt.as_secs_f32()))),
        };
        match result {
            Err(e) if e.is_unavailable() => {
                breaker.record(false);
                if attempt >= attempts || breaker.is_open() {
                    return Err(e);
                }
                tokio::time::sleep(jittered(backoff)).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                attempt += 1;
            }
            other => {
                breaker.record(true);
                return other;
            }
        }
    }
}

/// "Equal jitter": half the delay fixed, half random, so retrying clients
/// spread out instead of hammering a recovering backend in step.
fn jittered(d: Duration) -> Duration {
    let mut r = [0u8; 8];
    let frac = match crate::crypto::random_bytes(&mut r) {
        Ok(()) => (u64::from_le_bytes(r) % 1000) as u32,
        Err(_) => 500,
    };
    d / 2 + d / 2 * frac / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn breaker(threshold: u32, cooldown_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig { threshold, cooldown: Duration::from_millis(cooldown_ms) }, None)
    }

    const POLICY: RetryPolicy = RetryPolicy { attempts: 3, per_attempt: Duration::from_millis(200) };

    #[tokio::test]
    async fn retries_unavailability_but_not_other_errors() {
        let b = breaker(100, 1000);
        let n = AtomicU32::new(0);
        let r: Result<(), _> = call(POLICY, &b, Idempotency::Retry, || async {
            n.fetch_add(1, Ordering::SeqCst);
            Err(KmsError::Unavailable("down".into()))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(n.load(Ordering::SeqCst), 3);

        let n = AtomicU32::new(0);
        let r: Result<(), _> = call(POLICY, &b, Idempotency::Retry, || async {
            n.fetch_add(1, Ordering::SeqCst);
            Err(KmsError::Denied("no".into()))
        })
        .await;
        assert!(matches!(r, Err(KmsError::Denied(_))));
        assert_eq!(n.load(Ordering::SeqCst), 1);

        let n = AtomicU32::new(0);
        let _ = call(POLICY, &b, Idempotency::Once, || async {
            n.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(KmsError::Unavailable("down".into()))
        })
        .await;
        assert_eq!(n.load(Ordering::SeqCst), 1, "mutations run exactly once");
    }

    #[tokio::test]
    async fn timeouts_count_as_unavailable() {
        let b = breaker(100, 1000);
        let policy = RetryPolicy { attempts: 1, per_attempt: Duration::from_millis(20) };
        let r: Result<(), _> = call(policy, &b, Idempotency::Retry, || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await;
        assert!(matches!(r, Err(KmsError::Unavailable(_))));
    }

    #[tokio::test]
    async fn breaker_opens_fails_fast_then_half_opens() {
        let b = breaker(2, 50);
        let fail = || async { Err::<(), _>(KmsError::Unavailable("down".into())) };
        let once = RetryPolicy { attempts: 1, per_attempt: Duration::from_millis(100) };
        let _ = call(once, &b, Idempotency::Retry, fail).await;
        let _ = call(once, &b, Idempotency::Retry, fail).await;
        assert!(b.is_open());
        let n = AtomicU32::new(0);
        let r = call(once, &b, Idempotency::Retry, || async {
            n.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await;
        assert!(r.is_err() && n.load(Ordering::SeqCst) == 0, "open breaker must not call the backend");
        tokio::time::sleep(Duration::from_millis(60)).await;
        call(once, &b, Idempotency::Retry, || async { Ok(()) }).await.unwrap();
        assert!(!b.is_open());
    }
}
