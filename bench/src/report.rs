//! A run's numbers: per-operation rates and latency percentiles, the
//! server's CPU per GB moved and peak memory; printed as tables, and as
//! JSON on request.

use serde::Serialize;

use crate::workload::{Outcome, Plan, Sse};

#[derive(Serialize)]
pub(crate) struct OpReport {
    op: &'static str,
    count: u64,
    ops_per_s: f64,
    mb_per_s: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
    /// (percentile, ms) at fixed points from p1 to p99.9: a latency CDF.
    cdf: Vec<(f64, f64)>,
}

/// The percentiles a report's CDF gives.
const CDF_POINTS: [f64; 16] = [1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.5, 99.9];

#[derive(Serialize)]
pub(crate) struct RunReport {
    label: String,
    sse: &'static str,
    concurrency: usize,
    seconds: f64,
    ops: Vec<OpReport>,
    ops_per_s: f64,
    mb_per_s: f64,
    /// Of the measured process (the gateway), when known.
    cpu_seconds: Option<f64>,
    cpu_seconds_per_gb: Option<f64>,
    peak_rss_mib: Option<f64>,
    error_samples: Vec<String>,
}

fn sse_name(s: &Sse) -> &'static str {
    match s {
        Sse::None => "none",
        Sse::S3 => "sse-s3",
        Sse::Kms => "sse-kms",
        Sse::Customer(..) => "sse-c",
    }
}

impl RunReport {
    pub(crate) fn new(label: &str, plan: &Plan, o: Outcome, cpu: Option<f64>, rss: Option<u64>) -> Self {
        let secs = o.elapsed.as_secs_f64().max(1e-9);
        let ms = |us: u64| us as f64 / 1000.0;
        let ops: Vec<OpReport> = o
            .stats
            .iter()
            .filter(|(_, s)| !s.latency.is_empty() || s.errors > 0)
            .map(|(op, s)| OpReport {
                op: op.name(),
                count: s.latency.len(),
                ops_per_s: s.latency.len() as f64 / secs,
                mb_per_s: s.bytes as f64 / 1e6 / secs,
                p50_ms: ms(s.latency.value_at_quantile(0.50)),
                p90_ms: ms(s.latency.value_at_quantile(0.90)),
                p99_ms: ms(s.latency.value_at_quantile(0.99)),
                max_ms: ms(s.latency.max()),
                errors: s.errors,
                cdf: CDF_POINTS.iter().map(|&p| (p, ms(s.latency.value_at_percentile(p)))).collect(),
            })
            .collect();
        let bytes: u64 = o.stats.iter().map(|(_, s)| s.bytes).sum();
        Self {
            label: label.to_owned(),
            sse: sse_name(&plan.sse),
            concurrency: plan.concurrency,
            seconds: secs,
            ops_per_s: ops.iter().map(|o| o.ops_per_s).sum(),
            mb_per_s: bytes as f64 / 1e6 / secs,
            ops,
            cpu_seconds: cpu,
            cpu_seconds_per_gb: cpu.filter(|_| bytes > 0).map(|c| c / (bytes as f64 / 1e9)),
            peak_rss_mib: rss.map(|b| b as f64 / (1 << 20) as f64),
            error_samples: o.samples,
        }
    }
}

pub(crate) fn print(r: &RunReport) {
    println!("\n== {} (SSE {}, {} clients, {:.1} s)", r.label, r.sse, r.concurrency, r.seconds);
    println!("| op | count | ops/s | MB/s | p50 ms | p90 ms | p99 ms | max ms | errors |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for o in &r.ops {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            o.op, o.count, o.ops_per_s, o.mb_per_s, o.p50_ms, o.p90_ms, o.p99_ms, o.max_ms, o.errors
        );
    }
    println!("| all | | {:.1} | {:.1} | | | | | |", r.ops_per_s, r.mb_per_s);
    if let (Some(cpu), Some(per_gb)) = (r.cpu_seconds, r.cpu_seconds_per_gb) {
        println!("gateway CPU: {cpu:.2} s, {per_gb:.2} s per GB moved");
    }
    if let Some(rss) = r.peak_rss_mib {
        println!("gateway peak RSS: {rss:.1} MiB");
    }
    for e in &r.error_samples {
        println!("error: {e}");
    }
}

/// Gateway over direct: throughput ratios and added median latency.
pub(crate) fn print_ratio(gw: &RunReport, direct: &RunReport) {
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    println!(
        "\n== gateway/direct: ops/s {:.2}, MB/s {:.2}",
        ratio(gw.ops_per_s, direct.ops_per_s),
        ratio(gw.mb_per_s, direct.mb_per_s)
    );
    for o in &gw.ops {
        if let Some(d) = direct.ops.iter().find(|d| d.op == o.op) {
            println!(
                "{}: ops/s {:.2}, added p50 {:+.2} ms, added p99 {:+.2} ms",
                o.op,
                ratio(o.ops_per_s, d.ops_per_s),
                o.p50_ms - d.p50_ms,
                o.p99_ms - d.p99_ms
            );
        }
    }
}
