//! Policy decision latency with a fresh instance per request (the
//! production path), a swap's publish time, and memory per loaded policy.
//! Needs the example components: `cd policies && cargo build --release
//! --target wasm32-wasip2`.
//!
//! `cargo bench --bench policy`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kms_gateway::policy::engine::{Limits, PolicyEngine};
use kms_gateway::policy::registry::PolicyRegistry;
use kms_gateway::policy::types::PolicyRequest;
use kms_gateway::state::StateStore;

const N: usize = 50_000;

fn component(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/target/wasm32-wasip2/release").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (build the policies first)", p.display()))
}

fn percentiles(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let q = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    println!("{name:<40} p50 {:>7.2} µs  p99 {:>7.2} µs  p99.9 {:>7.2} µs  (n = {})", q(0.5), q(0.99), q(0.999), v.len());
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let engine = Arc::new(PolicyEngine::new(Limits::default()).expect("engine"));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = StateStore::open(&dir.path().join("state")).expect("state");
    let registry = PolicyRegistry::open(engine.clone(), dir.path().join("policies"), store).await.expect("registry");

    for (name, file) in [("key-select", "default_key_select.wasm"), ("sse-validate", "require_sse_kms.wasm")] {
        let (info, report) = registry.upload(name, component(file)).await.expect("upload");
        println!("{name:<40} compile {:.1} ms, publish {:.1} µs, {} bytes", report.compile_ms, report.publish_us, info.size);
    }
    let snap = registry.snapshot();
    let mut req = PolicyRequest::golden();
    req.bucket = "finance-reports".into();
    let ks = &snap.policies["key-select"].prepared;
    let sv = &snap.policies["sse-validate"].prepared;
    for _ in 0..1000 {
        engine.key_select(ks, &req).expect("warm");
    }
    let mut a = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        std::hint::black_box(engine.key_select(ks, &req).expect("decision"));
        a.push(t.elapsed());
    }
    percentiles("key-select, fresh instance per call", a);
    let mut b = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        std::hint::black_box(engine.sse_validate(sv, &req).expect("verdict"));
        b.push(t.elapsed());
    }
    percentiles("sse-validate, fresh instance per call", b);

    // Policies embedding a language runtime (built by tests/run.sh), when
    // present: Python (componentize-py) and JavaScript (componentize-js).
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/target");
    for (label, path) in [("python key-select", "python/data_class.wasm"), ("javascript sse-validate", "js/tenant_reads.wasm")] {
        let Ok(wasm) = std::fs::read(root.join(path)) else { continue };
        let (info, report) = registry.upload(label.split(' ').next().unwrap(), wasm).await.expect("upload");
        println!("{label:<40} compile {:.0} ms, {} bytes", report.compile_ms, info.size);
        let p = registry.snapshot().policies[&info.name].clone();
        let t = Instant::now();
        let code = p.prepared.precompiled().expect("serialize");
        std::hint::black_box(engine.prepare_precompiled(&info.name, &code).expect("deserialize"));
        println!(
            "{:<40} {:.0} ms ({} bytes of code)",
            format!("{} load from precompiled code", info.name),
            t.elapsed().as_secs_f64() * 1e3,
            code.len()
        );
        let mut req = req.clone();
        req.key = "pii/x.csv".into();
        let mut c = Vec::with_capacity(500);
        for _ in 0..500 {
            let t = Instant::now();
            if p.prepared.hook() == kms_gateway::policy::Hook::KeySelect {
                std::hint::black_box(engine.key_select(&p.prepared, &req).expect("decision"));
            } else {
                std::hint::black_box(engine.sse_validate(&p.prepared, &req).expect("verdict"));
            }
            c.push(t.elapsed());
        }
        percentiles(&format!("{label}, fresh instance"), c);
    }

    // Publish cost of a swap (compile is off the request path).
    let mut publish = Vec::new();
    for _ in 0..20 {
        let (_, r) = registry.upload("key-select", component("tenant_prefix.wasm")).await.expect("swap");
        publish.push(Duration::from_secs_f64(r.publish_us / 1e6));
    }
    percentiles("swap publish (after compile)", publish);

    // Memory per loaded policy: load 50 more under distinct names.
    let before = rss_kib();
    let wasm = component("tenant_prefix.wasm");
    for i in 0..50 {
        registry.upload(&format!("copy-{i}"), wasm.clone()).await.expect("upload");
    }
    println!("memory per loaded policy                 {:.0} KiB (RSS delta over 50)", (rss_kib() - before) as f64 / 50.0);
}
