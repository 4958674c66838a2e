//! Encrypted multipart uploads.
//!
//! CreateMultipartUpload decides the mode and key and seals one object key
//! for the whole upload; the record goes upstream as the upload's metadata
//! and into the gateway state (keyed by upload id) for the parts, with the
//! upload's layout key sealed under the gateway's state key.
//!
//! Each UploadPart (or UploadPartCopy) call claims the next attempt number
//! of its part exclusively in the state and encrypts under a key derived
//! from (part, attempt): a retried, replaced or concurrent upload of one
//! part number never reuses a key and nonce sequence (format v2).
//!
//! Completion (matching each listed part to the attempt that wrote it,
//! tagging the layout, attaching the record) lives in [`super::complete`].
//! Uploads begun in format v1 finish in v1.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput,
    ListPartsInput, ListPartsOutput, StreamingBlob, UploadPartInput, UploadPartOutput,
};
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use super::body::{record_body_errors, strip_aws_chunked};
use super::checksum::{ChecksumObserver, take_client_checksums};
use super::errors::{crypto_error, record_error, sse_error, state_error};
use super::keys::take_customer;
use super::keys::{apply_echo, set_checksums};
use super::write::{ObjectHeaders, object_headers, reserved_metadata_error, take_sse, upload_error, verify_plain_upload};
use super::{Gateway, declared_length, principal};
use crate::crypto::keys::LayoutKey;
use crate::crypto::stream::EncryptStream;
use crate::sse::{CustomerKey, ObjectCrypto, SseError, SseMode, has_reserved_keys};
use crate::state::digest_name;
use kgw_core::bucket_policy::SseConditions;

const UPLOADS: &str = "uploads";
pub(super) const PARTS: &str = "upload-parts";

/// A part attempt as the gateway wrote it: its upstream ETag (empty until
/// the store has it), plaintext size, and (format v2) number and attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PartDoc {
    pub(super) etag: String,
    pub(super) plain: u64,
    #[serde(default)]
    pub(super) number: u32,
    #[serde(default)]
    pub(super) attempt: u32,
}

/// More attempts of one part number than any client retries.
const MAX_ATTEMPTS: u32 = 10_000;

pub(super) fn unquote(s: &str) -> &str {
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
    /// Format v2: the object's layout key, sealed under the state key, so
    /// completion can tag the layout without the client's SSE-C key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) layout_key: Option<String>,
    /// The SSE headers CreateMultipartUpload sent: the parts' values of
    /// the bucket policy's SSE condition keys (uploads begun before this
    /// field existed count as sent without any).
    #[serde(default)]
    pub(super) requested: SseConditions,
}

/// An upload as the gateway knows it.
pub(super) enum Upload {
    /// No record: not created through this gateway (or its state was lost).
    Unknown,
    /// Created through the gateway without encryption.
    Plain,
    Encrypted(Box<(UploadDoc, ObjectCrypto)>),
}

fn unknown_upload() -> S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified multipart upload does not exist: this gateway has no record of it. Uploads must be created through the gateway."
    )
}

/// The state namespace of one upload's part records.
pub(super) fn parts_ns(upload_id: &str) -> String {
    format!("{PARTS}/{}", digest_name(upload_id))
}

pub(super) fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"))
}

impl Gateway {
    /// What the gateway knows of an upload. Every upload created through
    /// the gateway is recorded, plaintext ones included, so an id without
    /// a record (another gateway's, lost state, made up) is never taken for
    /// a plaintext upload.
    pub(super) async fn upload(&self, upload_id: &str, bucket: &str, key: &str) -> S3Result<Upload> {
        let Some(doc) = self.state.get::<UploadDoc>(UPLOADS, upload_id).await.map_err(state_error)? else {
            return Ok(Upload::Unknown);
        };
        if doc.bucket != bucket || doc.key != key {
            return Err(s3_error!(NoSuchUpload));
        }
        Ok(match ObjectCrypto::read_from(Some(&doc.metadata)).map_err(record_error)? {
            Some(rec) => Upload::Encrypted(Box::new((doc, rec))),
            None => Upload::Plain,
        })
    }

    /// [`upload`](Self::upload) for the operations that write into an
    /// upload: an unknown id is refused.
    pub(super) async fn known_upload(
        &self,
        upload_id: &str,
        bucket: &str,
        key: &str,
    ) -> S3Result<Option<(UploadDoc, ObjectCrypto)>> {
        match self.upload(upload_id, bucket, key).await? {
            Upload::Unknown => Err(unknown_upload()),
            Upload::Plain => Ok(None),
            Upload::Encrypted(up) => Ok(Some(*up)),
        }
    }

    /// A part is a write of its object: the bucket policy sees the SSE
    /// headers its upload was created with, and the part's own SSE-C.
    pub(super) async fn check_part_policy<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        upload_id: &str,
        customer: bool,
    ) -> S3Result<()> {
        let intent = super::policy::intent_of(req, "UploadPart", bucket, key);
        self.decider
            .check_bucket_policy(&intent, async || {
                // An unreadable or unknown upload is refused later, with its own error.
                let doc = self.state.get::<UploadDoc>(UPLOADS, upload_id).await.ok().flatten();
                let mut c = doc.map(|d| d.requested).unwrap_or_default();
                c.customer_algorithm = customer.then(|| "AES256".into());
                c
            })
            .await
            .map_err(super::errors::decision_error)
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
        let requested = SseConditions::from(&sse);
        let sse = self.decide_write(&req, "CreateMultipartUpload", (&bucket, &key), sse).await?;
        let Some(sealed) = self.seal_new_object(sse, &bucket, &key, principal(&req).as_deref()).await? else {
            // Recorded all the same: parts for an unrecorded id are refused.
            let headers = object_headers!(req.input);
            let resp = self.upstream.create_multipart_upload(req).await?;
            let upload_id =
                resp.output.upload_id.clone().ok_or_else(|| s3_error!(InternalError, "upstream returned no upload id"))?;
            let doc = UploadDoc { bucket, key, metadata: HashMap::new(), headers, layout_key: None, requested };
            self.state.put(UPLOADS, &upload_id, &doc).await.map_err(state_error)?;
            return Ok(resp);
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
        let layout_key = Some(self.seal_layout_key(&sealed.oek.layout_key(), &upload_id, &bucket, &key)?);
        let doc = UploadDoc { bucket, key, metadata, headers, layout_key, requested };
        self.state.put(UPLOADS, &upload_id, &doc).await.map_err(state_error)?;
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
        let (bucket, key, upload_id) = (&req.input.bucket, &req.input.key, &req.input.upload_id);
        self.check_part_policy(&req, bucket, key, upload_id, customer.is_some()).await?;
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
        let Some((_, rec)) = self.known_upload(&req.input.upload_id, &req.input.bucket, &req.input.key).await? else {
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
            Some(plain_len),
        )?;
        // The trailers were ours to verify; the upstream must not see them.
        req.trailing_headers = None;
        let (upload_id, n) = (req.input.upload_id.clone(), req.input.part_number);
        // v2: this call's own attempt, hence its own key; v1 uploads keep
        // their v1 keys to the end.
        let attempt = match rec.version {
            1 => None,
            _ => Some(self.claim_attempt(&upload_id, part, plain_len).await?),
        };
        let part_key = rec.part_key(&oek, part, attempt.unwrap_or(0));
        let body = record_body_errors(body, outcome.clone());
        let enc = EncryptStream::new(body, &part_key, part, rec.params, Some(plain_len), Box::new(observer));
        req.input.content_length = Some(rec.params.ciphertext_len(plain_len) as i64);
        req.input.body = Some(StreamingBlob::new(enc));
        let up = self.upstream.upload_part(req).await.map_err(|e| upload_error(e, &outcome))?;
        self.metrics.bytes_encrypted.inc_by(plain_len);
        // Remember the part's size: completion needs it, and not every store
        // answers ListParts in a form clients parse.
        if let Some(etag) = &up.output.e_tag {
            let etag = unquote(etag.value()).to_owned();
            let (doc_key, doc) = match attempt {
                Some(a) => (format!("{part}.{a}"), PartDoc { etag, plain: plain_len, number: part, attempt: a }),
                None => (n.to_string(), PartDoc { etag, plain: plain_len, number: part, attempt: 0 }),
            };
            self.state.put(&parts_ns(&upload_id), &doc_key, &doc).await.map_err(state_error)?;
        }
        let c = outcome.lock().expect("outcome lock").checksums.clone();
        let echo = Self::echo_of(&rec, customer.as_ref());
        let mut out = UploadPartOutput { e_tag: up.output.e_tag, ..Default::default() };
        set_checksums!(out, c);
        apply_echo!(read out, echo);
        Ok(S3Response::new(out))
    }

    /// Claim an attempt of `part` exclusively (across threads and, with
    /// shared state, across replicas): the next in order on a single node,
    /// the next of this replica's own numbers in cluster mode.
    async fn claim_attempt(&self, upload_id: &str, part: u32, plain: u64) -> S3Result<u32> {
        let ns = parts_ns(upload_id);
        let too_many = || s3_error!(InvalidRequest, "Too many uploads of this part number; start a new multipart upload.");
        for n in 0..MAX_ATTEMPTS {
            let attempt = match &self.attempts {
                None => n,
                Some(numbers) => numbers.next(upload_id, part).ok_or_else(too_many)?,
            };
            let doc = PartDoc { etag: String::new(), plain, number: part, attempt };
            if self.state.create(&ns, &format!("{part}.{attempt}"), &doc).await.map_err(state_error)? {
                return Ok(attempt);
            }
        }
        Err(too_many())
    }

    fn layout_key_aad(upload_id: &str, bucket: &str, key: &str) -> Vec<u8> {
        let mut aad = b"kms-gateway/v2/upload-layout-key".to_vec();
        for f in [upload_id, bucket, key] {
            aad.extend_from_slice(&(f.len() as u32).to_be_bytes());
            aad.extend_from_slice(f.as_bytes());
        }
        aad
    }

    fn seal_layout_key(&self, lk: &LayoutKey, upload_id: &str, bucket: &str, key: &str) -> S3Result<String> {
        let sealed =
            self.state_seal.seal_bytes(lk.as_bytes(), &Self::layout_key_aad(upload_id, bucket, key)).map_err(crypto_error)?;
        Ok(B64.encode(sealed))
    }

    pub(super) fn open_layout_key(&self, doc: &UploadDoc, upload_id: &str, bucket: &str, key: &str) -> S3Result<LayoutKey> {
        let damaged = || s3_error!(InternalError, "The upload's state is damaged.");
        let sealed = doc.layout_key.as_deref().and_then(|s| B64.decode(s).ok()).ok_or_else(damaged)?;
        let plain = self.state_seal.open_bytes(&sealed, &Self::layout_key_aad(upload_id, bucket, key)).map_err(|_| damaged())?;
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| damaged())?;
        Ok(LayoutKey::from_bytes(bytes))
    }

    pub(crate) async fn abort_multipart(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let id = req.input.upload_id.clone();
        let resp = self.upstream.abort_multipart_upload(req).await?;
        self.forget_upload(&id).await;
        Ok(resp)
    }

    /// Drop an upload's state once the upstream has finished with it.
    pub(super) async fn forget_upload(&self, upload_id: &str) {
        let r = async {
            self.state.delete(UPLOADS, upload_id).await?;
            self.state.delete_namespace(&parts_ns(upload_id)).await?;
            self.state.delete_prefix(PARTS, &format!("{upload_id}/")).await
        };
        if let Err(e) = r.await {
            tracing::warn!(error = %e, %upload_id, "could not remove a finished upload's state");
        }
    }

    pub(crate) async fn list_parts_plain(&self, mut req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        // ListParts may carry the SSE-C key (AWS accepts it); it is never
        // the store's business.
        let i = &mut req.input;
        super::keys::wipe(&mut i.sse_customer_key);
        (i.sse_customer_algorithm, i.sse_customer_key_md5) = (None, None);
        let upload = match self.upload(&req.input.upload_id, &req.input.bucket, &req.input.key).await? {
            Upload::Encrypted(up) => Some(up.1),
            Upload::Plain | Upload::Unknown => None,
        };
        let mut resp = self.upstream.list_parts(req).await?;
        if let Some(parts) = resp.output.parts.as_mut() {
            parts.sort_by_key(|p| p.part_number);
        }
        if let Some(rec) = upload {
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
