//! Objects larger than `--part-size`, moved the way `aws s3 cp` and the
//! SDKs' transfer managers move them: a multipart upload whose parts go up
//! `--part-concurrency` at a time, and a download in ranged GETs of one
//! part size each, as many at a time.

use anyhow::{Context, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use tokio::task::JoinSet;

use crate::workload::{Plan, Sse};

/// The byte ranges (first, last, inclusive) of `size` cut every `part`
/// bytes: the parts of an upload and the ranges of a download alike.
pub(crate) fn ranges(size: u64, part: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..size.div_ceil(part)).map(move |i| (i * part, size.min((i + 1) * part) - 1))
}

/// Upload `size` bytes of the plan's data under `key` in parts.
pub(crate) async fn put(client: &Client, plan: &Plan, key: &str, size: u64, part_size: u64) -> anyhow::Result<()> {
    let mut req = client.create_multipart_upload().bucket(&plan.bucket).key(key);
    req = match &plan.sse {
        Sse::None => req,
        Sse::S3 => req.server_side_encryption(ServerSideEncryption::Aes256),
        Sse::Kms => req.server_side_encryption(ServerSideEncryption::AwsKms),
        Sse::Customer(k, md5) => req.sse_customer_algorithm("AES256").sse_customer_key(k).sse_customer_key_md5(md5),
    };
    let upload_id = req.send().await?.upload_id.context("CreateMultipartUpload answered no upload id")?;
    match upload_parts(client, plan, key, size, part_size, &upload_id).await {
        Ok(parts) => {
            let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
            client
                .complete_multipart_upload()
                .bucket(&plan.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(done)
                .send()
                .await?;
            Ok(())
        }
        Err(e) => {
            // Best effort: an abandoned upload would hold the store's space.
            let _ = client.abort_multipart_upload().bucket(&plan.bucket).key(key).upload_id(&upload_id).send().await;
            Err(e)
        }
    }
}

async fn upload_parts(
    client: &Client,
    plan: &Plan,
    key: &str,
    size: u64,
    part_size: u64,
    upload_id: &str,
) -> anyhow::Result<Vec<CompletedPart>> {
    let mut todo = ranges(size, part_size).zip(1..);
    let mut running = JoinSet::new();
    let mut parts = Vec::new();
    loop {
        while running.len() < plan.part_concurrency {
            let Some(((first, last), number)) = todo.next() else { break };
            let body = plan.data.slice(first as usize..=last as usize);
            let mut req = client
                .upload_part()
                .bucket(&plan.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(body.len() as i64)
                .body(ByteStream::from(body));
            if let Sse::Customer(k, md5) = &plan.sse {
                req = req.sse_customer_algorithm("AES256").sse_customer_key(k).sse_customer_key_md5(md5);
            }
            let unsigned = plan.unsigned_payload;
            running.spawn(async move {
                let out = if unsigned { req.customize().disable_payload_signing().send().await } else { req.send().await };
                out.map(|o| CompletedPart::builder().part_number(number).set_e_tag(o.e_tag).build())
            });
        }
        let Some(done) = running.join_next().await else { break };
        parts.push(done.context("a part's task")??);
    }
    parts.sort_by_key(|p| p.part_number());
    Ok(parts)
}

/// Download `key` (`size` bytes) in ranged GETs of `part_size`; returns
/// the bytes read.
pub(crate) async fn get(client: &Client, plan: &Plan, key: &str, size: u64, part_size: u64) -> anyhow::Result<u64> {
    let mut todo = ranges(size, part_size);
    let mut running = JoinSet::new();
    let mut total = 0u64;
    loop {
        while running.len() < plan.part_concurrency {
            let Some((start, end)) = todo.next() else { break };
            let mut req = client.get_object().bucket(&plan.bucket).key(key).range(format!("bytes={start}-{end}"));
            if let Sse::Customer(k, md5) = &plan.sse {
                req = req.sse_customer_algorithm("AES256").sse_customer_key(k).sse_customer_key_md5(md5);
            }
            let want = end + 1 - start;
            running.spawn(async move {
                let mut body = req.send().await?.body;
                let mut n = 0u64;
                while let Some(chunk) = body.try_next().await? {
                    n += chunk.len() as u64;
                }
                if n != want {
                    bail!("range {start}-{end} gave {n} bytes, not {want}");
                }
                Ok(n)
            });
        }
        let Some(done) = running.join_next().await else { break };
        total += done.context("a range's task")??;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn ranges_cover_the_object_once() {
        let mib = 1 << 20;
        let r: Vec<_> = ranges(20 * mib, 8 * mib).collect();
        assert_eq!(r, vec![(0, 8 * mib - 1), (8 * mib, 16 * mib - 1), (16 * mib, 20 * mib - 1)]);
        assert_eq!(ranges(16 * mib, 8 * mib).count(), 2, "no empty last part");
        assert_eq!(ranges(8 * mib + 1, 8 * mib).last(), Some((8 * mib, 8 * mib)));
        let sum: u64 = ranges(1 << 30, 8 * mib).map(|(a, b)| b + 1 - a).sum();
        assert_eq!(sum, 1 << 30);
    }
}
