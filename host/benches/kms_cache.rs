//! Added latency of the KMS layer when the data-key cache answers: the
//! unwrap of a stored data key (every GET after the first) and a bucket-key
//! hit (every SSE-S3/SSE-KMS PUT after the first in a bucket). Reports
//! p50/p99/p999 over many single calls, since tail latency is the target.
//!
//! `cargo bench --bench kms_cache`

use std::sync::Arc;
use std::time::{Duration, Instant};

use kms_gateway::audit::AuditLog;
use kms_gateway::crypto::SealingKey;
use kms_gateway::kms::config::KmsConfig;
use kms_gateway::kms::local::LocalBackend;
use kms_gateway::kms::service::{BackendPair, KeyUse, KmsService, Observer};
use kms_gateway::kms::{CreateKeyRequest, EncryptionContext, KeyAdmin, KeyId};
use kms_gateway::metrics::Metrics;

const N: usize = 200_000;

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let q = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{name:<34} p50 {:>7.2} µs  p99 {:>7.2} µs  p99.9 {:>7.2} µs  (n = {})",
        q(0.50).as_secs_f64() * 1e6,
        q(0.99).as_secs_f64() * 1e6,
        q(0.999).as_secs_f64() * 1e6,
        samples.len()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = Arc::new(LocalBackend::open(dir.path(), SealingKey::from_bytes([3; 32])).expect("open"));
    let id = KeyId::new("bench").expect("id");
    let req = CreateKeyRequest { key_id: Some(id.clone()), description: String::new(), tags: Default::default() };
    backend.create_key(req).await.expect("create");
    // Audit on, as in production: a cached use still writes its line.
    let audit = Arc::new(AuditLog::open(&dir.path().join("audit.log")).expect("audit"));
    let obs = Arc::new(Observer { metrics: Arc::new(Metrics::new()), audit });
    let pair = BackendPair { backend: backend.clone(), admin: backend };
    let svc = KmsService::new(1, KmsConfig::local_default(id.clone()), pair, Vec::new(), obs.clone());
    let ctx = EncryptionContext::from([("aws:s3:arn".to_owned(), "arn:aws:s3:::b/o".to_owned())]);
    let who = KeyUse { principal: Some("bench"), bucket: Some("b"), object: Some("o"), request_id: None };
    let dk = svc.generate_data_key(&id, &ctx, true, &who).await.expect("generate");

    let mut unwrap = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let k = svc.decrypt_data_key(&id, &dk.wrapped, &ctx, &who).await.expect("hit");
        unwrap.push(t.elapsed());
        std::hint::black_box(k);
    }
    report("cached unwrap (audit on)", unwrap);

    let mut bucket = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let k = svc.generate_data_key(&id, &ctx, true, &who).await.expect("hit");
        bucket.push(t.elapsed());
        std::hint::black_box(k);
    }
    report("bucket-key hit (audit on)", bucket);

    let quiet = Arc::new(Observer { metrics: obs.metrics.clone(), audit: Arc::new(AuditLog::disabled()) });
    let backend = Arc::new(LocalBackend::open(dir.path(), SealingKey::from_bytes([3; 32])).expect("open"));
    let pair = BackendPair { backend: backend.clone(), admin: backend };
    let svc = KmsService::new(2, KmsConfig::local_default(id.clone()), pair, Vec::new(), quiet);
    svc.decrypt_data_key(&id, &dk.wrapped, &ctx, &who).await.expect("warm");
    let mut quiet_unwrap = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let k = svc.decrypt_data_key(&id, &dk.wrapped, &ctx, &who).await.expect("hit");
        quiet_unwrap.push(t.elapsed());
        std::hint::black_box(k);
    }
    report("cached unwrap (audit off)", quiet_unwrap);
}
