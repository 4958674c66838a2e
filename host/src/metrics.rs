//! Prometheus metrics. One registry per gateway, passed around as an
//! `Arc` (no global registry); served by [`crate::ops`].

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

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
    /// Calls that reached a KMS backend, by backend, operation and outcome.
    pub kms_calls: IntCounterVec,
    /// Their latency.
    pub kms_call_seconds: HistogramVec,
    /// Data-key cache lookups by cache (`data_key`, `bucket_key`) and
    /// result (`hit`, `miss`, `stale` = served past TTL while the KMS is down).
    pub kms_cache: IntCounterVec,
    /// 1 while the KMS backend's circuit breaker is open.
    pub kms_circuit_open: IntGauge,
    /// Errors the gateway answered, by S3 error code.
    pub s3_errors: IntCounterVec,
    /// Admin API calls by action and HTTP status.
    pub admin_requests: IntCounterVec,
    /// Policy calls by hook, policy and outcome (`accept`, `reject`, `keep`,
    /// `select`, `deny`, `rotate`, `later`, `trap`, `timeout`, `limit`, `error`).
    pub policy_calls: IntCounterVec,
    /// Their latency, fresh instance included.
    pub policy_call_seconds: HistogramVec,
    /// Shadow candidates' decisions by hook, policy, outcome (`accept`,
    /// `keep`, `sse-s3`, `sse-kms`, `refuse`, `error`) and whether they agree
    /// with the enforced one.
    pub policy_shadow: IntCounterVec,
    /// Writes refused by a bucket policy's statements on SSE keys.
    pub bucket_policy_denials: IntCounter,
    /// Uses of a KMS key by identity (access key, `-` for the gateway's
    /// own), key, operation and outcome: who used which key.
    pub key_uses: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("static metric")
}

impl Metrics {
    /// One policy call: its outcome and latency, by hook and policy.
    pub fn observe_policy_call(&self, hook: &str, policy: &str, outcome: &str, seconds: f64) {
        self.policy_calls.with_label_values(&[hook, policy, outcome]).inc();
        self.policy_call_seconds.with_label_values(&[hook, policy]).observe(seconds);
    }

    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("kgw".into()), None).expect("static prefix is valid");
        let m = Self {
            requests: counter_vec("object_requests_total", "Object requests by operation and SSE mode", &["op", "mode"]),
            bytes_encrypted: IntCounter::new("bytes_encrypted_total", "Plaintext bytes encrypted on upload")
                .expect("static metric"),
            bytes_decrypted: IntCounter::new("bytes_decrypted_total", "Plaintext bytes decrypted and returned")
                .expect("static metric"),
            upstream_ciphertext_bytes: IntCounter::new(
                "upstream_ciphertext_bytes_total",
                "Ciphertext bytes fetched from the upstream for decryption",
            )
            .expect("static metric"),
            kms_calls: counter_vec(
                "kms_calls_total",
                "Calls to the KMS backend by backend, operation and outcome",
                &["backend", "op", "outcome"],
            ),
            kms_call_seconds: HistogramVec::new(
                HistogramOpts::new("kms_call_seconds", "Latency of KMS backend calls").buckets(vec![
                    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["backend", "op"],
            )
            .expect("static metric"),
            kms_cache: counter_vec("kms_cache_lookups_total", "Data-key cache lookups by cache and result", &["cache", "result"]),
            kms_circuit_open: IntGauge::new("kms_circuit_open", "1 while the KMS circuit breaker is open")
                .expect("static metric"),
            s3_errors: counter_vec("s3_errors_total", "S3 errors answered by the gateway, by code", &["code"]),
            admin_requests: counter_vec("admin_requests_total", "Admin API requests by action and status", &["action", "status"]),
            policy_calls: counter_vec(
                "policy_calls_total",
                "Policy calls by hook, policy and outcome",
                &["hook", "policy", "outcome"],
            ),
            policy_call_seconds: HistogramVec::new(
                HistogramOpts::new("policy_call_seconds", "Latency of policy calls by hook and policy (fresh instance included)")
                    // Pure policies answer in microseconds, language runtimes in milliseconds.
                    .buckets(vec![
                        0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                        0.1,
                    ]),
                &["hook", "policy"],
            )
            .expect("static metric"),
            bucket_policy_denials: IntCounter::new(
                "bucket_policy_denials_total",
                "Writes refused by bucket policy statements on SSE condition keys",
            )
            .expect("static metric"),
            policy_shadow: counter_vec(
                "policy_shadow_total",
                "Shadow policy decisions by hook, policy, outcome and agreement with the enforced one",
                &["hook", "policy", "outcome", "agrees"],
            ),
            key_uses: counter_vec(
                "key_uses_total",
                "KMS key uses by identity, key, operation and outcome",
                &["identity", "key_id", "op", "outcome"],
            ),
            registry,
        };
        for c in [
            &m.requests,
            &m.kms_calls,
            &m.kms_cache,
            &m.s3_errors,
            &m.admin_requests,
            &m.policy_calls,
            &m.key_uses,
            &m.policy_shadow,
        ] {
            m.registry.register(Box::new(c.clone())).expect("unique metric");
        }
        for c in [&m.bytes_encrypted, &m.bytes_decrypted, &m.upstream_ciphertext_bytes, &m.bucket_policy_denials] {
            m.registry.register(Box::new(c.clone())).expect("unique metric");
        }
        m.registry.register(Box::new(m.kms_call_seconds.clone())).expect("unique metric");
        m.registry.register(Box::new(m.policy_call_seconds.clone())).expect("unique metric");
        m.registry.register(Box::new(m.kms_circuit_open.clone())).expect("unique metric");
        m
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding of gathered metrics");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}
