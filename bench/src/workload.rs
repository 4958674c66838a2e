//! What the load generator does: the object-size distribution, the
//! operation mix, the workers that run them against one S3 endpoint, and
//! their latency histograms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::sync::Mutex;

/// A weighted choice among `T`s, parsed from `a:3,b:1` (weight 1 when
/// omitted).
#[derive(Debug, Clone)]
pub(crate) struct Weighted<T> {
    items: Vec<(T, u32)>,
    total: u32,
}

impl<T: Copy> Weighted<T> {
    pub(crate) fn parse(spec: &str, item: impl Fn(&str) -> anyhow::Result<T>) -> anyhow::Result<Self> {
        let mut items = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.rsplit_once(':') {
                Some((n, w)) => (n, w.parse::<u32>().with_context(|| format!("weight of `{n}`"))?),
                None => (part, 1),
            };
            if weight > 0 {
                items.push((item(name)?, weight));
            }
        }
        let total = items.iter().map(|(_, w)| w).sum();
        if total == 0 {
            bail!("`{spec}` has nothing with a weight above 0");
        }
        Ok(Self { items, total })
    }

    pub(crate) fn pick(&self, rng: &mut fastrand::Rng) -> T {
        let mut n = rng.u32(0..self.total);
        for (item, w) in &self.items {
            if n < *w {
                return *item;
            }
            n -= w;
        }
        self.items[0].0
    }

    pub(crate) fn items(&self) -> impl Iterator<Item = T> + '_ {
        self.items.iter().map(|(t, _)| *t)
    }
}

/// `4KiB`, `1MiB`, `256MiB`, `1GiB` or bytes.
pub(crate) fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().with_context(|| format!("size `{s}`"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => bail!("size `{s}`: unknown unit `{other}` (KiB, MiB or GiB)"),
    };
    let size = n.checked_mul(mult).filter(|b| *b <= 5 << 30).with_context(|| format!("size `{s}`: at most 5 GiB"))?;
    Ok(size)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Op {
    Put,
    Get,
    Head,
    List,
}

impl Op {
    pub(crate) const ALL: [Op; 4] = [Op::Put, Op::Get, Op::Head, Op::List];

    pub(crate) fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "put" => Op::Put,
            "get" => Op::Get,
            "head" => Op::Head,
            "list" => Op::List,
            other => bail!("operation `{other}`: put, get, head or list"),
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Put => "PUT",
            Op::Get => "GET",
            Op::Head => "HEAD",
            Op::List => "LIST",
        }
    }
}

/// The SSE a run asks for on its PUTs (GETs need only SSE-C's key).
#[derive(Debug, Clone)]
pub(crate) enum Sse {
    None,
    S3,
    Kms,
    /// The key's base64 and its MD5's base64.
    Customer(String, String),
}

/// One run's fixed inputs.
pub(crate) struct Plan {
    pub(crate) bucket: String,
    pub(crate) prefix: String,
    pub(crate) sizes: Weighted<u64>,
    pub(crate) mix: Weighted<Op>,
    pub(crate) concurrency: usize,
    pub(crate) duration: Duration,
    pub(crate) sse: Sse,
    pub(crate) unsigned_payload: bool,
    /// Random bytes, as long as the largest size: bodies are slices of it.
    pub(crate) data: Bytes,
    /// Objects larger than this go up in a multipart upload and come down
    /// in ranged GETs of this size ([`crate::parts`]).
    pub(crate) part_size: Option<u64>,
    /// Parts or ranges of one object in flight at once.
    pub(crate) part_concurrency: usize,
}

/// Latencies (µs) and byte counts of one operation.
pub(crate) struct OpStats {
    pub(crate) latency: Histogram<u64>,
    pub(crate) bytes: u64,
    pub(crate) errors: u64,
}

impl OpStats {
    fn new() -> Self {
        Self { latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds"), bytes: 0, errors: 0 }
    }
}

pub(crate) struct Outcome {
    pub(crate) stats: Vec<(Op, OpStats)>,
    pub(crate) elapsed: Duration,
    /// The first errors seen, for the report.
    pub(crate) samples: Vec<String>,
}

/// Objects a run may read: their key and size.
type Pool = Arc<Mutex<Vec<(String, u64)>>>;

/// Write `per_size` objects of every size, for GET and HEAD to find.
pub(crate) async fn prefill(client: &Client, plan: &Plan, per_size: usize) -> anyhow::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for size in plan.sizes.items() {
        for i in 0..per_size {
            let key = format!("{}prefill/{size}/{i}", plan.prefix);
            put(client, plan, &key, size).await.with_context(|| format!("prefill PUT {key}"))?;
            out.push((key, size));
        }
    }
    Ok(out)
}

/// Run the workload for `plan.duration` with `plan.concurrency` workers.
pub(crate) async fn run(client: &Client, plan: Arc<Plan>, pool: Vec<(String, u64)>) -> Outcome {
    let pool: Pool = Arc::new(Mutex::new(pool));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let mut tasks = Vec::new();
    for w in 0..plan.concurrency {
        let (client, plan, pool) = (client.clone(), plan.clone(), pool.clone());
        tasks.push(tokio::spawn(async move { worker(w, client, plan, pool, deadline).await }));
    }
    let mut merged: Vec<(Op, OpStats)> = Op::ALL.iter().map(|op| (*op, OpStats::new())).collect();
    let mut samples = Vec::new();
    for t in tasks {
        let Ok((stats, errs)) = t.await else { continue };
        for ((_, m), (_, s)) in merged.iter_mut().zip(stats) {
            m.latency.add(&s.latency).expect("same bounds");
            m.bytes += s.bytes;
            m.errors += s.errors;
        }
        samples.extend(errs.into_iter().take(3usize.saturating_sub(samples.len())));
    }
    Outcome { stats: merged, elapsed: started.elapsed(), samples }
}

async fn worker(id: usize, client: Client, plan: Arc<Plan>, pool: Pool, deadline: Instant) -> (Vec<(Op, OpStats)>, Vec<String>) {
    let mut rng = fastrand::Rng::with_seed(0x6b67_7762_656e_6368 ^ id as u64);
    let mut stats: Vec<(Op, OpStats)> = Op::ALL.iter().map(|op| (*op, OpStats::new())).collect();
    let mut errors = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let op = plan.mix.pick(&mut rng);
        let target = match op {
            Op::Put => {
                n += 1;
                Some((format!("{}w{id}/{n}", plan.prefix), plan.sizes.pick(&mut rng)))
            }
            Op::Get | Op::Head => {
                let p = pool.lock().await;
                if p.is_empty() { None } else { Some(p[rng.usize(0..p.len())].clone()) }
            }
            Op::List => Some((plan.prefix.clone(), 0)),
        };
        let Some((key, size)) = target else { continue };
        let t = Instant::now();
        let result = match op {
            Op::Put => put(&client, &plan, &key, size).await.map(|()| size),
            Op::Get => get(&client, &plan, &key, size).await,
            Op::Head => head(&client, &plan, &key).await.map(|()| 0),
            Op::List => list(&client, &plan).await.map(|()| 0),
        };
        let us = t.elapsed().as_micros().max(1) as u64;
        let s = &mut stats[Op::ALL.iter().position(|o| *o == op).expect("every op")].1;
        match result {
            Ok(bytes) => {
                s.latency.saturating_record(us);
                s.bytes += bytes;
                if op == Op::Put {
                    pool.lock().await.push((key, size));
                }
            }
            Err(e) => {
                s.errors += 1;
                if errors.len() < 3 {
                    errors.push(format!("{} {key}: {e:#}", op.name()));
                }
            }
        }
    }
    (stats, errors)
}

async fn put(client: &Client, plan: &Plan, key: &str, size: u64) -> anyhow::Result<()> {
    if let Some(part) = plan.part_size.filter(|p| size > *p) {
        return crate::parts::put(client, plan, key, size, part).await;
    }
    let body = plan.data.slice(..size as usize);
    let mut req = client.put_object().bucket(&plan.bucket).key(key).content_length(size as i64).body(ByteStream::from(body));
    req = match &plan.sse {
        Sse::None => req,
        Sse::S3 => req.server_side_encryption(ServerSideEncryption::Aes256),
        Sse::Kms => req.server_side_encryption(ServerSideEncryption::AwsKms),
        Sse::Customer(k, md5) => req.sse_customer_algorithm("AES256").sse_customer_key(k).sse_customer_key_md5(md5),
    };
    if plan.unsigned_payload {
        req.customize().disable_payload_signing().send().await?;
    } else {
        req.send().await?;
    }
    Ok(())
}

async fn get(client: &Client, plan: &Plan, key: &str, size: u64) -> anyhow::Result<u64> {
    if let Some(part) = plan.part_size.filter(|p| size > *p) {
        return crate::parts::get(client, plan, key, size, part).await;
    }
    let mut req = client.get_object().bucket(&plan.bucket).key(key);
    if let Sse::Customer(k, md5) = &plan.sse {
        req = req.sse_customer_algorithm("AES256").sse_customer_key(k).sse_customer_key_md5(md5);
    }
    let mut body = req.send().await?.body;
    let mut n = 0u64;
    while let Some(chunk) = body.try_next().await? {
        n += chunk.len() as u64;
    }
    Ok(n)
}

async fn head(client: &Client, plan: &Plan, key: &str) -> anyhow::Result<()> {
    let mut req = client.head_object().bucket(&plan.bucket).key(key);
    if let Sse::Customer(k, md5) = &plan.sse {
        req = req.sse_customer_algorithm("AES256").sse_customer_key(k).sse_customer_key_md5(md5);
    }
    req.send().await?;
    Ok(())
}

async fn list(client: &Client, plan: &Plan) -> anyhow::Result<()> {
    client.list_objects_v2().bucket(&plan.bucket).prefix(&plan.prefix).max_keys(100).send().await?;
    Ok(())
}

/// Delete what the run wrote under its prefix (best effort).
pub(crate) async fn clean(client: &Client, plan: &Plan) {
    let mut token = None;
    loop {
        let page = match client
            .list_objects_v2()
            .bucket(&plan.bucket)
            .prefix(&plan.prefix)
            .set_continuation_token(token.take())
            .send()
            .await
        {
            Ok(p) => p,
            Err(_) => return,
        };
        for obj in page.contents() {
            if let Some(k) = obj.key() {
                let _ = client.delete_object().bucket(&plan.bucket).key(k).send().await;
            }
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_mixes_parse() {
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("17").unwrap(), 17);
        assert!(parse_size("6GiB").is_err() && parse_size("4XB").is_err());
        let mix = Weighted::parse("put:1,get:3,head:0", Op::parse).unwrap();
        assert_eq!(mix.items().collect::<Vec<_>>(), vec![Op::Put, Op::Get]);
        let mut rng = fastrand::Rng::with_seed(7);
        let gets = (0..4000).filter(|_| mix.pick(&mut rng) == Op::Get).count();
        assert!((2800..3200).contains(&gets), "{gets}");
        assert!(Weighted::parse("put:0", Op::parse).is_err());
        assert!(Weighted::parse("delete", Op::parse).is_err());
    }
}
