//! `kgw-bench`: a load generator for kms-gateway, in the spirit of MinIO's
//! warp. It runs a mix of PUT, GET, HEAD and LIST with an object-size
//! distribution and a number of concurrent clients for a fixed time, and
//! prints operations per second, MB/s and latency percentiles. Given the
//! upstream too (`--direct`), it runs the same workload straight against
//! it in the same invocation and prints the gateway/direct ratios; given a
//! gateway process (`--gateway-pid`, or one it starts with
//! `--spawn-gateway`), the gateway's CPU seconds per GB moved and peak RSS.
//! With `--part-size`, large objects move in parts, as transfer managers
//! move them.
//!
//! - `main.rs`: the command line and the order of the runs;
//! - [`workload`]: size and mix draws, the workers, their histograms;
//! - [`parts`]: multipart uploads and ranged downloads (`--part-size`);
//! - [`process`]: `/proc` readings, and the gateway it may start;
//! - [`report`]: the tables and the JSON summary.

mod parts;
mod process;
mod report;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use clap::Parser;
use md5::Digest;

use process::{SpawnSpec, SpawnedGateway};
use report::RunReport;
use workload::{Op, Plan, Sse, Weighted};

#[derive(Parser)]
#[command(name = "kgw-bench", version, about = "Load generator for kms-gateway (and any S3 endpoint)")]
struct Args {
    /// The endpoint under test, usually the gateway
    #[arg(long, env = "KGW_BENCH_ENDPOINT", required_unless_present = "spawn_gateway")]
    endpoint: Option<String>,
    #[arg(long, env = "KGW_BENCH_ACCESS_KEY", default_value = "benchaccess")]
    access_key: String,
    #[arg(long, env = "KGW_BENCH_SECRET_KEY", default_value = "benchsecret0123456789", hide_env_values = true)]
    secret_key: String,
    /// The upstream, measured straight (no SSE) with the same workload
    #[arg(long, env = "KGW_BENCH_DIRECT")]
    direct: Option<String>,
    #[arg(long, env = "KGW_BENCH_DIRECT_ACCESS_KEY")]
    direct_access_key: Option<String>,
    #[arg(long, env = "KGW_BENCH_DIRECT_SECRET_KEY", hide_env_values = true)]
    direct_secret_key: Option<String>,
    /// Start a gateway in front of --direct (with --access-key and
    /// --secret-key as its S3 credentials) and measure it
    #[arg(long, requires = "direct")]
    spawn_gateway: bool,
    /// The gateway executable for --spawn-gateway [default: kms-gateway next to this one]
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// More `serve` arguments for --spawn-gateway (repeatable)
    #[arg(long = "gateway-arg", allow_hyphen_values = true)]
    gateway_args: Vec<String>,
    /// A running gateway's process id, for its CPU and RSS
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Bucket to use (created if missing) [default: kgw-bench-<random>]
    #[arg(long)]
    bucket: Option<String>,
    /// How long each run lasts (e.g. 30s, 2m)
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent clients
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Object sizes and weights: `4KiB`, or `4KiB:70,1MiB:25,64MiB:5`
    #[arg(long, default_value = "1MiB")]
    sizes: String,
    /// Operations and weights: `put`, or `put:30,get:50,head:15,list:5`
    #[arg(long, default_value = "put:30,get:50,head:15,list:5")]
    mix: String,
    /// SSE asked of the endpoint under test: none, sse-s3, sse-kms, sse-c
    #[arg(long, default_value = "sse-kms")]
    sse: String,
    /// Send UNSIGNED-PAYLOAD instead of the body's SHA-256
    #[arg(long)]
    unsigned_payload: bool,
    /// Move objects larger than this in parts: multipart uploads, and
    /// downloads in ranged GETs of this size (e.g. 8MiB)
    #[arg(long, value_parser = workload::parse_size)]
    part_size: Option<u64>,
    /// Parts (or ranges) of one object in flight at once, with --part-size
    #[arg(long, default_value_t = 8)]
    part_concurrency: usize,
    /// Objects of each size written before a run, for GET and HEAD
    #[arg(long, default_value_t = 8)]
    prefill: usize,
    /// Leave the objects written in the bucket
    #[arg(long)]
    keep: bool,
    /// Print the summary as JSON too
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("`{s}`: a number then s, m or h"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("`{s}`: unit must be ms, s, m or h")),
    }
}

fn client(endpoint: &str, ak: &str, sk: &str) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ak, sk, None, None, "kgw-bench"))
        .force_path_style(true)
        // Checksums the client computes cost the client, not the server.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

fn parse_sse(s: &str) -> anyhow::Result<Sse> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "none" => Sse::None,
        "sse-s3" | "aes256" => Sse::S3,
        "sse-kms" | "aws:kms" => Sse::Kms,
        "sse-c" => {
            let mut key = [0u8; 32];
            fastrand::Rng::new().fill(&mut key);
            Sse::Customer(B64.encode(key), B64.encode(md5::Md5::digest(key)))
        }
        other => bail!("--sse {other}: none, sse-s3, sse-kms or sse-c"),
    })
}

/// One timed run against `endpoint`: prefill, run, clean up.
async fn measure(label: &str, c: &Client, plan: Arc<Plan>, args: &Args, pid: Option<u32>) -> anyhow::Result<RunReport> {
    match c.create_bucket().bucket(&plan.bucket).send().await {
        Ok(_) => {}
        Err(e) => {
            let code = e.as_service_error().and_then(|s| s.meta().code()).unwrap_or_default().to_owned();
            if !matches!(code.as_str(), "BucketAlreadyOwnedByYou" | "BucketAlreadyExists") {
                return Err(anyhow::Error::new(e).context(format!("{label}: create bucket {}", plan.bucket)));
            }
        }
    }
    let pool = workload::prefill(c, &plan, args.prefill).await.with_context(|| format!("{label}: prefill"))?;
    let cpu0 = pid.and_then(process::cpu_seconds);
    let outcome = workload::run(c, plan.clone(), pool).await;
    let cpu = match (pid.and_then(process::cpu_seconds), cpu0) {
        (Some(b), Some(a)) => Some(b - a),
        _ => None,
    };
    let rss = pid.and_then(process::peak_rss);
    if !args.keep {
        workload::clean(c, &plan).await;
    }
    Ok(RunReport::new(label, &plan, outcome, cpu, rss))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sizes = Weighted::parse(&args.sizes, workload::parse_size)?;
    let mix = Weighted::parse(&args.mix, Op::parse)?;
    let largest = sizes.items().max().unwrap_or(0) as usize;
    if let Some(part) = args.part_size {
        // S3's bounds: parts but the last of 5 MiB or more, at most 10 000.
        if part < 5 << 20 || (largest as u64).div_ceil(part) > 10_000 {
            bail!("--part-size: at least 5MiB, and at most 10 000 parts per object");
        }
    }
    let mut data = vec![0u8; largest];
    fastrand::Rng::new().fill(&mut data);
    let bucket = args.bucket.clone().unwrap_or_else(|| format!("kgw-bench-{:08x}", fastrand::u32(..)));
    let run_id = format!("{:08x}", fastrand::u32(..));
    let plan = |sse: Sse| {
        Arc::new(Plan {
            bucket: bucket.clone(),
            prefix: format!("kgw-bench/{run_id}/"),
            sizes: sizes.clone(),
            mix: mix.clone(),
            concurrency: args.concurrency,
            duration: args.duration,
            sse,
            unsigned_payload: args.unsigned_payload,
            data: Bytes::from(data.clone()),
            part_size: args.part_size,
            part_concurrency: args.part_concurrency.max(1),
        })
    };
    let direct = match &args.direct {
        Some(url) => Some((
            url.clone(),
            args.direct_access_key.clone().context("--direct needs --direct-access-key")?,
            args.direct_secret_key.clone().context("--direct needs --direct-secret-key")?,
        )),
        None => None,
    };
    let spawned = match (&direct, args.spawn_gateway) {
        (Some((url, ak, sk)), true) => {
            let exe = match &args.gateway_bin {
                Some(p) => p.clone(),
                None => std::env::current_exe()?.with_file_name("kms-gateway"),
            };
            let spec = SpawnSpec {
                exe,
                upstream: url,
                upstream_access_key: ak,
                upstream_secret_key: sk,
                access_key: &args.access_key,
                secret_key: &args.secret_key,
                extra_args: &args.gateway_args,
            };
            Some(SpawnedGateway::start(spec).await?)
        }
        _ => None,
    };
    let endpoint = match (&spawned, &args.endpoint) {
        (Some(g), _) => g.endpoint.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => bail!("--endpoint or --spawn-gateway is required"),
    };
    let pid = spawned.as_ref().map(SpawnedGateway::pid).or(args.gateway_pid);

    let mut reports = Vec::new();
    if let Some((url, ak, sk)) = &direct {
        let c = client(url, ak, sk);
        reports.push(measure("direct", &c, plan(Sse::None), &args, None).await?);
        report::print(&reports[0]);
    }
    let c = client(&endpoint, &args.access_key, &args.secret_key);
    let under_test = measure("gateway", &c, plan(parse_sse(&args.sse)?), &args, pid).await?;
    report::print(&under_test);
    if let Some(d) = reports.first() {
        report::print_ratio(&under_test, d);
    }
    reports.push(under_test);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(())
}
