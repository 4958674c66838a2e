//! Encrypted multipart uploads.
//!
//! CreateMultipartUpload decides the mode and key and seals one object key
//! for the whole upload; the record goes upstream as the upload's metadata
//! and into the gateway state (keyed by upload id) for the parts. Each part
//! is its own format v1 stream under a part key derived from its number.
//! CompleteMultipartUpload reads the parts' ciphertext sizes back from the
//! upstream, derives their plaintext sizes in closed form, and attaches the
//! part table to the object with a conditional metadata-only self-copy.

use std::collections::HashMap;

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput, CompleteMultipartUploadOutput,
    CopyObjectInput, CopySource, CreateMultipartUploadInput, CreateMultipartUploadOutput, ETagCondition, ListPartsInput,
    ListPartsOutput, MetadataDirective, StreamingBlob, UploadPartInput, UploadPartOutput,
};
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use super::body::{record_body_errors, strip_aws_chunked};
use super::checksum::{ChecksumObserver, take_client_checksums};
use super::errors::{crypto_error, record_error, sse_error, state_error};
use super::keys::take_customer;
use super::keys::{apply_echo, set_checksums};
use super::put::{reserved_metadata_error, take_sse, upload_error, verify_plain_upload};
use super::{Gateway, declared_length, principal, sub_request};
use crate::crypto::stream::EncryptStream;
use crate::sse::{CustomerKey, ObjectCrypto, SseError, SseMode, has_reserved_keys};

const UPLOADS: &str = "uploads";
const PARTS: &str = "upload-parts";

/// A part as the gateway wrote it: its upstream ETag and plaintext size.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartDoc {
    etag: String,
    plain: u64,
}

fn unquote(s: &str) -> &str {
    s.trim_matches('"')
}

/// What the gateway remembers about an encrypted upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UploadDoc {
    pub(super) bucket: String,
    pub(super) key: String,
    /// Metadata sent upstream at creation: the client's plus the record.
    pub(super) metadata: HashMap<String, String>,
    pub(super) headers: ObjectHeaders,
}

/// Object headers a metadata-only self-copy must carry over.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct ObjectHeaders {
    pub(super) content_type: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) content_disposition: Option<String>,
    pub(super) content_language: Option<String>,
    pub(super) cache_control: Option<String>,
    pub(super) website_redirect_location: Option<String>,
}

/// [`ObjectHeaders`] of any input or output that carries the six headers.
macro_rules! object_headers {
    ($x:expr) => {
        $crate::s3::multipart::ObjectHeaders {
            content_type: $x.content_type.clone(),
            content_encoding: $x.content_encoding.clone(),
            content_disposition: $x.content_disposition.clone(),
            content_language: $x.content_language.clone(),
            cache_control: $x.cache_control.clone(),
            website_redirect_location: $x.website_redirect_location.clone(),
        }
    };
}
pub(super) use object_headers;

/// A metadata-only self-copy that rewrites the object's metadata, only if
/// the object still has `etag` (a concurrent writer is never overwritten).
pub(super) fn self_copy(
    bucket: &str,
    key: &str,
    metadata: HashMap<String, String>,
    h: &ObjectHeaders,
    etag: s3s::dto::ETag,
) -> CopyObjectInput {
    let mut c = CopyObjectInput::builder()
        .bucket(bucket.to_owned())
        .key(key.to_owned())
        .copy_source(CopySource::Bucket { bucket: bucket.into(), key: key.into(), version_id: None })
        .build()
        .expect("bucket, key and source are set");
    c.metadata_directive = Some(MetadataDirective::from_static(MetadataDirective::REPLACE));
    c.metadata = Some(metadata);
    c.content_type = h.content_type.clone();
    c.content_encoding = h.content_encoding.clone();
    c.content_disposition = h.content_disposition.clone();
    c.content_language = h.content_language.clone();
    c.cache_control = h.cache_control.clone();
    c.website_redirect_location = h.website_redirect_location.clone();
    c.copy_source_if_match = Some(ETagCondition::ETag(etag));
    c
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"))
}

impl Gateway {
    pub(super) fn upload_doc(&self, upload_id: &str, bucket: &str, key: &str) -> S3Result<Option<(UploadDoc, ObjectCrypto)>> {
        let Some(doc) = self.state.get::<UploadDoc>(UPLOADS, upload_id).map_err(state_error)? else { return Ok(None) };
        if doc.bucket != bucket || doc.key != key {
            return Err(s3_error!(NoSuchUpload));
        }
        let rec = ObjectCrypto::read_from(Some(&doc.metadata))
            .map_err(record_error)?
            .ok_or_else(|| s3_error!(InternalError, "upload record missing"))?;
        Ok(Some((doc, rec)))
    }

    /// SSE-C rules of parts: same key on every part of an SSE-C upload, none
    /// on other uploads.
    fn check_part_customer(&self, rec: &ObjectCrypto, customer: Option<&CustomerKey>) -> S3Result<()> {
        match (rec.mode, customer) {
            (SseMode::Customer, None) => Err(sse_error(SseError::InvalidRequest(
                "The multipart upload initiate requested encryption. Subsequent part requests must include the appropriate encryption parameters.",
            ))),
            (SseMode::Customer, Some(_)) => self.check_read_headers(Some(rec), customer).map_err(|e| {
                if e.code() == &s3s::S3ErrorCode::AccessDenied || e.status_code() == Some(self.wrong_key_status) {
                    sse_error(SseError::InvalidRequest(
                        "The provided encryption parameters did not match the ones used originally.",
                    ))
                } else {
                    e
                }
            }),
            (_, Some(_)) => Err(sse_error(SseError::InvalidRequest(
                "The multipart upload initiate did not request encryption with customer-provided keys.",
            ))),
            _ => Ok(()),
        }
    }

    pub(crate) async fn create_multipart(
        &self,
        mut req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        if has_reserved_keys(req.input.metadata.as_ref()) {
            return Err(reserved_metadata_error());
        }
        strip_aws_chunked(&mut req.input.content_encoding);
        let sse = take_sse!(req.input)?;
        self.require_tls_for_sse_c(&req.extensions, matches!(sse, crate::sse::SseRequest::Customer(_)))?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let sse = self.defaults.resolve(&bucket, sse)?;
        let sse = self.apply_policies(&req, "CreateMultipartUpload", (&bucket, &key), sse)?;
        let Some(sealed) = self.seal_new_object(sse, &bucket, &key, principal(&req).as_deref()).await? else {
            return self.upstream.create_multipart_upload(req).await;
        };
        let mut record = sealed.record;
        record.multipart = Some(Vec::new());
        let mut metadata = req.input.metadata.take().unwrap_or_default();
        record.write_to(&mut metadata).map_err(record_error)?;
        req.input.metadata = Some(metadata.clone());
        // Part checksums are verified by the gateway over the plaintext.
        req.input.checksum_algorithm = None;
        req.input.checksum_type = None;
        let headers = object_headers!(req.input);
        let mut resp = self.upstream.create_multipart_upload(req).await?;
        let upload_id =
            resp.output.upload_id.clone().ok_or_else(|| s3_error!(InternalError, "upstream returned no upload id"))?;
        self.state.put(UPLOADS, &upload_id, &UploadDoc { bucket, key, metadata, headers }).map_err(state_error)?;
        self.metrics.requests.with_label_values(&["create_multipart_upload", record.mode.as_str()]).inc();
        apply_echo!(all resp.output, sealed.echo);
        resp.output.checksum_algorithm = None;
        Ok(resp)
    }

    pub(crate) async fn upload_part(&self, mut req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let i = &mut req.input;
        let customer = take_customer!(i)?;
        let trailer_names = req.headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()).map(str::to_owned);
        self.require_tls_for_sse_c(&req.extensions, customer.is_some())?;
        self.upload_part_with(req, customer, trailer_names).await
    }

    /// UploadPart with the SSE-C key taken out (also the write half of UploadPartCopy).
    pub(crate) async fn upload_part_with(
        &self,
        mut req: S3Request<UploadPartInput>,
        customer: Option<CustomerKey>,
        trailer_names: Option<String>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let part = part_number(req.input.part_number)?;
        let Some((_, rec)) = self.upload_doc(&req.input.upload_id, &req.input.bucket, &req.input.key)? else {
            if customer.is_some() {
                return Err(sse_error(SseError::InvalidRequest("The encryption parameters are not applicable to this object.")));
            }
            // A plaintext upload: verify the client's checksums all the same.
            let outcome = verify_plain_upload!(req, trailer_names);
            let mut resp = self.upstream.upload_part(req).await.map_err(|e| upload_error(e, &outcome))?;
            set_checksums!(resp.output, outcome.lock().expect("outcome lock").checksums.clone());
            return Ok(resp);
        };
        self.check_part_customer(&rec, customer.as_ref())?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let oek = self.open_object_key(&rec, customer.as_ref(), &bucket, &key, principal(&req).as_deref()).await?;
        let plain_len = declared_length(&req.headers, req.input.content_length)?;
        let body = req.input.body.take().ok_or_else(|| s3_error!(IncompleteBody))?;
        let (observer, outcome) = ChecksumObserver::new(
            take_client_checksums!(req.input),
            trailer_names.as_deref(),
            req.trailing_headers.clone(),
            false,
        )?;
        // The trailers were ours to verify; the upstream must not see them.
        req.trailing_headers = None;
        let part_key = oek.part_key(part, rec.params.segment_size());
        let body = record_body_errors(body, outcome.clone());
        let enc = EncryptStream::new(body, &part_key, part, rec.params, Some(plain_len), Box::new(observer));
        req.input.content_length = Some(rec.params.ciphertext_len(plain_len) as i64);
        req.input.body = Some(StreamingBlob::new(enc));
        let (upload_id, n) = (req.input.upload_id.clone(), req.input.part_number);
        let up = self.upstream.upload_part(req).await.map_err(|e| upload_error(e, &outcome))?;
        self.metrics.bytes_encrypted.inc_by(plain_len);
        // Remember the part's size: completion needs it, and not every store
        // answers ListParts in a form clients parse.
        if let Some(etag) = &up.output.e_tag {
            let doc = PartDoc { etag: unquote(etag.value()).to_owned(), plain: plain_len };
            self.state.put(PARTS, &format!("{upload_id}/{n}"), &doc).map_err(state_error)?;
        }
        let c = outcome.lock().expect("outcome lock").checksums.clone();
        let echo = Self::echo_of(&rec, customer.as_ref());
        let mut out = UploadPartOutput { e_tag: up.output.e_tag, ..Default::default() };
        set_checksums!(out, c);
        apply_echo!(read out, echo);
        Ok(S3Response::new(out))
    }

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
        let Some((doc, mut rec)) = self.upload_doc(&upload_id, &bucket, &key)? else {
            return self.upstream.complete_multipart_upload(req).await;
        };
        let i = &mut req.input;
        (i.sse_customer_algorithm, i.sse_customer_key, i.sse_customer_key_md5) = (None, None, None);
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
        let mut upstream_sizes: Option<HashMap<i32, i64>> = None;
        let mut table = Vec::with_capacity(wanted.len());
        for (n, etag) in &wanted {
            let doc: Option<PartDoc> = self.state.get(PARTS, &format!("{upload_id}/{n}")).map_err(state_error)?;
            let plain = match doc {
                Some(d) if etag.as_deref().is_none_or(|e| unquote(e) == d.etag) => d.plain,
                _ => {
                    // A part this gateway did not record: ask the upstream.
                    if upstream_sizes.is_none() {
                        upstream_sizes = Some(self.upstream_part_sizes(&req, &bucket, &key, &upload_id).await?);
                    }
                    let ct = *upstream_sizes
                        .as_ref()
                        .and_then(|m| m.get(n))
                        .ok_or_else(|| s3_error!(InvalidPart, "One or more of the specified parts could not be found."))?;
                    rec.params.plaintext_len(ct as u64).map_err(crypto_error)?
                }
            };
            table.push((part_number(*n)?, plain));
        }
        let ctx = sub_request(&req, ());
        let mut resp = self.upstream.complete_multipart_upload(req).await?;
        // A store may finish the upload in a future (to keep the client
        // connection alive); the record can only be attached once it is done.
        if let Some(done) = resp.output.future.take() {
            resp.output = done.await?;
        }
        let etag = resp.output.e_tag.clone().ok_or_else(|| s3_error!(InternalError, "upstream returned no ETag"))?;
        rec.plain_size = table.iter().map(|(_, s)| s).sum();
        rec.multipart = Some(table);
        let mut metadata = doc.metadata.clone();
        rec.write_to(&mut metadata).map_err(record_error)?;
        // The listing size cache learns the object under its final ETag.
        let stored = self.attach_record(&ctx, &bucket, &key, metadata, &doc.headers, etag.clone()).await?;
        self.sizes.remember(&bucket, &key, stored.as_ref().or(Some(&etag)), Some(rec.plain_size));
        self.forget_upload(&upload_id);
        let echo = Self::echo_of(&rec, None);
        let mut out = resp.output;
        out.server_side_encryption = echo.sse;
        out.ssekms_key_id = echo.kms_key_id;
        set_checksums!(out, Default::default());
        out.checksum_type = None;
        Ok(S3Response::new(out))
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
    ) -> S3Result<Option<s3s::dto::ETag>> {
        let mut last: Option<S3Error> = None;
        for attempt in 0..3u32 {
            let copy = self_copy(bucket, key, metadata.clone(), h, etag.clone());
            match self.upstream.copy_object(sub_request(ctx, copy)).await {
                Ok(r) => return Ok(r.output.copy_object_result.and_then(|c| c.e_tag)),
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

    pub(crate) async fn abort_multipart(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let id = req.input.upload_id.clone();
        let resp = self.upstream.abort_multipart_upload(req).await?;
        self.forget_upload(&id);
        Ok(resp)
    }

    /// Drop an upload's state once the upstream has finished with it.
    fn forget_upload(&self, upload_id: &str) {
        let r = self.state.delete(UPLOADS, upload_id).and_then(|_| self.state.delete_prefix(PARTS, &format!("{upload_id}/")));
        if let Err(e) = r {
            tracing::warn!(error = %e, %upload_id, "could not remove a finished upload's state");
        }
    }

    pub(crate) async fn list_parts_plain(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let upload = self.upload_doc(&req.input.upload_id, &req.input.bucket, &req.input.key)?;
        let mut resp = self.upstream.list_parts(req).await?;
        if let Some(parts) = resp.output.parts.as_mut() {
            parts.sort_by_key(|p| p.part_number);
        }
        if let Some((_, rec)) = upload {
            for p in resp.output.parts.iter_mut().flatten() {
                if let Some(s) = p.size {
                    p.size = Some(rec.params.plaintext_len(s as u64).map_err(crypto_error)? as i64);
                }
                (p.checksum_crc32, p.checksum_crc32c, p.checksum_sha1, p.checksum_sha256, p.checksum_crc64nvme) =
                    (None, None, None, None, None);
            }
            resp.output.checksum_algorithm = None;
        }
        Ok(resp)
    }
}
