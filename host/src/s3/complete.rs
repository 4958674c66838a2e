//! CompleteMultipartUpload: build the part table from the attempts the
//! gateway recorded (format v2) or the part sizes (v1), tag the layout, and
//! attach the record to the completed object with a conditional
//! metadata-only self-copy. Completion is two steps on the store; a retry
//! after a failure (or a crash) between them repairs the object instead of
//! answering `NoSuchUpload`.

use std::collections::HashMap;

use s3s::dto::{CompleteMultipartUploadInput, CompleteMultipartUploadOutput, HeadObjectInput, ListPartsInput};
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::errors::{crypto_error, record_error, state_error};
use super::keys::set_checksums;
use super::listed::Listed;
use super::multipart::{PARTS, PartDoc, UploadDoc, part_number, parts_ns, unquote};
use super::write::{ObjectHeaders, self_copy};
use super::{Gateway, sub_request};
use crate::crypto::manifest::PartEntry;
use crate::sse::ObjectCrypto;

impl Gateway {
    /// Ciphertext sizes of an upload's parts, as the upstream has them.
    async fn upstream_part_sizes<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<HashMap<i32, i64>> {
        let mut sizes = HashMap::new();
        let mut marker: Option<i32> = None;
        loop {
            let mut li = ListPartsInput::builder()
                .bucket(bucket.to_owned())
                .key(key.to_owned())
                .upload_id(upload_id.to_owned())
                .build()
                .expect("set");
            li.part_number_marker = marker;
            let out = self.upstream.list_parts(sub_request(req, li)).await?.output;
            for p in out.parts.unwrap_or_default() {
                if let (Some(n), Some(s)) = (p.part_number, p.size) {
                    sizes.insert(n, s);
                }
            }
            match (out.is_truncated, out.next_part_number_marker) {
                (Some(true), Some(m)) if marker != Some(m) => marker = Some(m),
                _ => break,
            }
        }
        Ok(sizes)
    }

    pub(crate) async fn complete_multipart(
        &self,
        mut req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (bucket, key, upload_id) = (req.input.bucket.clone(), req.input.key.clone(), req.input.upload_id.clone());
        if let Some(cond) = req.input.if_match.take() {
            req.input.if_match = Some(self.upstream_if_match(&req, &bucket, &key, cond).await?);
        }
        let Some((doc, mut rec)) = self.known_upload(&upload_id, &bucket, &key).await? else {
            let resp = self.upstream.complete_multipart_upload(req).await?;
            self.forget_upload(&upload_id).await;
            return Ok(resp);
        };
        let i = &mut req.input;
        super::keys::wipe(&mut i.sse_customer_key);
        (i.sse_customer_algorithm, i.sse_customer_key_md5) = (None, None);
        (i.checksum_crc32, i.checksum_crc32c, i.checksum_sha1, i.checksum_sha256, i.checksum_crc64nvme) =
            (None, None, None, None, None);
        i.checksum_type = None;
        i.mpu_object_size = None;
        let wanted: Vec<(i32, Option<String>)> = i
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_ref())
            .map(|ps| {
                ps.iter().filter_map(|p| p.part_number.map(|n| (n, p.e_tag.as_ref().map(|e| e.value().to_owned())))).collect()
            })
            .unwrap_or_default();
        if let Some(parts) = i.multipart_upload.as_mut().and_then(|m| m.parts.as_mut()) {
            for p in parts {
                (p.checksum_crc32, p.checksum_crc32c, p.checksum_sha1, p.checksum_sha256, p.checksum_crc64nvme) =
                    (None, None, None, None, None);
            }
        }
        let table = match rec.version {
            1 => self.v1_part_table(&req, &bucket, &key, &upload_id, &rec, &wanted).await?,
            _ => self.part_table(&upload_id, &wanted).await?,
        };
        let ctx = sub_request(&req, ());
        rec.plain_size = table.iter().map(|e| e.plain_len).sum();
        rec.multipart = Some(table);
        if rec.version >= 2 {
            let lk = self.open_layout_key(&doc, &upload_id, &bucket, &key)?;
            rec.seal_layout(&lk, &bucket, &key);
        }
        let mut metadata = doc.metadata.clone();
        rec.write_to(&mut metadata).map_err(record_error)?;
        let mut resp = match self.upstream.complete_multipart_upload(req).await {
            Ok(r) => r,
            // Completed upstream by an earlier call whose second step (the
            // record) never happened: finish that step now. Stores answer a
            // second completion differently (S3: NoSuchUpload), so any
            // error is checked against what the key holds.
            Err(e) => {
                return self.repair_completion(&ctx, &doc, &upload_id, &rec, metadata).await.map_err(|r| {
                    tracing::debug!(error = %r, %upload_id, "no completed object to repair");
                    e
                });
            }
        };
        // A store may finish the upload in a future (to keep the client
        // connection alive); the record can only be attached once it is done.
        if let Some(done) = resp.output.future.take() {
            resp.output = done.await?;
        }
        let etag = resp.output.e_tag.clone().ok_or_else(|| s3_error!(InternalError, "upstream returned no ETag"))?;
        // The listing cache learns the object under its final ETag.
        let (stored, version) = self.attach_record(&ctx, &bucket, &key, metadata, &doc.headers, etag.clone()).await?;
        self.listed.remember(
            &bucket,
            &key,
            stored.as_ref().or(Some(&etag)),
            Listed { plain: Some(rec.plain_size), ..Default::default() },
        );
        self.forget_upload(&upload_id).await;
        let echo = Self::echo_of(&rec, None);
        let mut out = resp.output;
        // On a versioned store the copy that attached the part table is a
        // version of its own, the readable one: the client gets its id.
        if version.is_some() {
            out.version_id = version;
        }
        out.server_side_encryption = echo.sse;
        out.ssekms_key_id = echo.kms_key_id;
        set_checksums!(out, Default::default());
        out.checksum_type = None;
        Ok(S3Response::new(out))
    }

    /// The part table of a v2 upload: each listed part is the attempt whose
    /// upstream ETag the client names. A part the gateway did not write (or
    /// an ETag of no attempt) is not part of the object.
    async fn part_table(&self, upload_id: &str, wanted: &[(i32, Option<String>)]) -> S3Result<Vec<PartEntry>> {
        let docs: Vec<(String, PartDoc)> = self.state.list(&parts_ns(upload_id)).await.map_err(state_error)?;
        let missing = || s3_error!(InvalidPart, "One or more of the specified parts could not be found.");
        let mut table = Vec::with_capacity(wanted.len());
        for (n, etag) in wanted {
            let number = part_number(*n)?;
            let etag = etag.as_deref().map(unquote).ok_or_else(missing)?;
            let d = docs
                .iter()
                .map(|(_, d)| d)
                .find(|d| d.number == number && !d.etag.is_empty() && d.etag == etag)
                .ok_or_else(missing)?;
            table.push(PartEntry { number, attempt: d.attempt, plain_len: d.plain });
        }
        Ok(table)
    }

    /// The part table of an upload begun in format v1 (one key per part
    /// number): recorded sizes, else the upstream's ciphertext sizes.
    async fn v1_part_table<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        upload_id: &str,
        rec: &ObjectCrypto,
        wanted: &[(i32, Option<String>)],
    ) -> S3Result<Vec<PartEntry>> {
        let mut upstream_sizes: Option<HashMap<i32, i64>> = None;
        let mut table = Vec::with_capacity(wanted.len());
        for (n, etag) in wanted {
            let doc: Option<PartDoc> = match self.state.get(&parts_ns(upload_id), &n.to_string()).await.map_err(state_error)? {
                // Parts recorded by a gateway of the first state layout.
                None => self.state.get(PARTS, &format!("{upload_id}/{n}")).await.map_err(state_error)?,
                found => found,
            };
            let plain = match doc {
                Some(d) if etag.as_deref().is_none_or(|e| unquote(e) == d.etag) => d.plain,
                _ => {
                    if upstream_sizes.is_none() {
                        upstream_sizes = Some(self.upstream_part_sizes(req, bucket, key, upload_id).await?);
                    }
                    let ct = *upstream_sizes
                        .as_ref()
                        .and_then(|m| m.get(n))
                        .ok_or_else(|| s3_error!(InvalidPart, "One or more of the specified parts could not be found."))?;
                    rec.params.plaintext_len(ct as u64).map_err(crypto_error)?
                }
            };
            table.push(PartEntry { number: part_number(*n)?, attempt: 0, plain_len: plain });
        }
        Ok(table)
    }

    /// Write the final record onto a just-completed object (retried: the
    /// object is unreadable without its part table).
    async fn attach_record<T>(
        &self,
        ctx: &S3Request<T>,
        bucket: &str,
        key: &str,
        metadata: HashMap<String, String>,
        h: &ObjectHeaders,
        etag: s3s::dto::ETag,
    ) -> S3Result<(Option<s3s::dto::ETag>, Option<String>)> {
        let mut last: Option<S3Error> = None;
        for attempt in 0..3u32 {
            let copy = self_copy(bucket, key, metadata.clone(), h, etag.clone());
            match self.upstream.copy_object(sub_request(ctx, copy)).await {
                Ok(r) => return Ok((r.output.copy_object_result.and_then(|c| c.e_tag), r.output.version_id)),
                Err(e) => {
                    tracing::warn!(error = %e, attempt, bucket, key, "attaching the part table failed");
                    last = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                }
            }
        }
        tracing::error!(
            bucket,
            key,
            "object completed upstream but its part table could not be attached; it is unreadable until repaired"
        );
        Err(last.unwrap_or_else(|| s3_error!(InternalError)))
    }

    /// A retried CompleteMultipartUpload whose upload the store already
    /// completed (the gateway failed or died before attaching the record):
    /// if the object at the key is this upload's (it carries the record
    /// written at creation, same sealed object key) and its stored length
    /// matches the part table, attach the record now. Idempotent: an object
    /// that already has this record is answered as completed.
    async fn repair_completion(
        &self,
        ctx: &S3Request<()>,
        doc: &UploadDoc,
        upload_id: &str,
        rec: &ObjectCrypto,
        metadata: HashMap<String, String>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let head_in = HeadObjectInput::builder().bucket(doc.bucket.clone()).key(doc.key.clone()).build().expect("set");
        let head = self.upstream.head_object(sub_request(ctx, head_in)).await?.output;
        let stored = ObjectCrypto::read_from(head.metadata.as_ref()).map_err(record_error)?;
        // The sealed object key is random per upload: only this upload's
        // object (or its completion) carries the one in `rec`.
        let Some(stored) = stored.filter(|s| s.sealed_oek == rec.sealed_oek) else {
            return Err(s3_error!(NoSuchUpload));
        };
        let layout = rec.layout().map_err(record_error)?;
        if head.content_length.map(|l| l as u64) != Some(layout.ciphertext_len()) {
            tracing::error!(upload_id, bucket = %doc.bucket, key = %doc.key, "completed object does not match its part table");
            return Err(s3_error!(InvalidPart, "One or more of the specified parts could not be found."));
        }
        let etag = head.e_tag.clone().ok_or_else(|| s3_error!(InternalError, "upstream returned no ETag"))?;
        let (final_etag, version_id) = if stored.multipart.as_ref().is_some_and(|p| !p.is_empty()) {
            if stored.multipart != rec.multipart || stored.layout_tag != rec.layout_tag {
                return Err(s3_error!(InvalidPart, "The upload was completed with other parts."));
            }
            (Some(etag), head.version_id.clone())
        } else {
            tracing::warn!(upload_id, bucket = %doc.bucket, key = %doc.key, "repairing a completed upload: attaching its part table");
            let (stored_etag, version) =
                self.attach_record(ctx, &doc.bucket, &doc.key, metadata, &doc.headers, etag.clone()).await?;
            (stored_etag.or(Some(etag)), version.or(head.version_id.clone()))
        };
        self.listed.remember(
            &doc.bucket,
            &doc.key,
            final_etag.as_ref(),
            Listed { plain: Some(rec.plain_size), ..Default::default() },
        );
        self.forget_upload(upload_id).await;
        let echo = Self::echo_of(rec, None);
        let out = CompleteMultipartUploadOutput {
            bucket: Some(doc.bucket.clone()),
            key: Some(doc.key.clone()),
            e_tag: final_etag,
            server_side_encryption: echo.sse,
            ssekms_key_id: echo.kms_key_id,
            version_id,
            ..Default::default()
        };
        Ok(S3Response::new(out))
    }
}
