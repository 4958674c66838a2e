//! PutObject: decide the mode, seal a fresh object key, stream-encrypt the
//! body with the client's checksums verified over the plaintext.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures::{StreamExt, stream};
use s3s::dto::{ETag, PutObjectInput, PutObjectOutput, StreamingBlob};
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::body::{body_longer_error, client_body_error, record_body_errors, strip_aws_chunked};
use super::checksum::{ChecksumObserver, take_client_checksums};
use super::errors::record_error;
use super::keys::{SealedWrite, apply_echo, set_checksums};
use super::listed::Listed;
use super::write::{object_headers, reserved_metadata_error, self_copy, take_sse, upload_error, verify_plain_upload};
use super::{Gateway, declared_length, principal, sub_request};
use crate::crypto::stream::EncryptStream;
use crate::sse::{SseMode, SseRequest, has_reserved_keys};

/// Read a whole body declared small (at most one segment). A body that
/// runs past its declared length fails there: an aws-chunked upload
/// declaring one byte and sending without end must not be held in memory.
async fn read_small(body: StreamingBlob, declared: u64) -> Result<Vec<Bytes>, S3Error> {
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut body = body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| client_body_error(&e))?;
        total += chunk.len() as u64;
        if total > declared {
            return Err(body_longer_error());
        }
        out.push(chunk);
    }
    Ok(out)
}

impl Gateway {
    pub(crate) async fn put(&self, mut req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        if has_reserved_keys(req.input.metadata.as_ref()) {
            return Err(reserved_metadata_error());
        }
        strip_aws_chunked(&mut req.input.content_encoding);
        let sse = take_sse!(req.input)?;
        self.require_tls_for_sse_c(&req.extensions, matches!(sse, SseRequest::Customer(_)))?;
        let op = if req.method == hyper::Method::POST { "PostObject" } else { "PutObject" };
        let sse = self.decide_write(&req, op, (&req.input.bucket, &req.input.key), sse).await?;
        let trailer_names = req.headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()).map(str::to_owned);
        self.put_with(req, sse, trailer_names).await
    }

    /// PutObject with the SSE decision made (also the write half of CopyObject).
    pub(crate) async fn put_with(
        &self,
        mut req: S3Request<PutObjectInput>,
        sse: SseRequest,
        trailer_names: Option<String>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        if let Some(cond) = req.input.if_match.take() {
            req.input.if_match = Some(self.upstream_if_match(&req, &bucket, &key, cond).await?);
        }
        match self.seal_new_object(sse, &bucket, &key, principal(&req).as_deref()).await? {
            None => {
                self.metrics.requests.with_label_values(&["put", "none"]).inc();
                self.put_plain(req, trailer_names).await
            }
            Some(sealed) => {
                self.metrics.requests.with_label_values(&["put", sealed.record.mode.as_str()]).inc();
                self.put_encrypted(req, sealed, trailer_names).await
            }
        }
    }

    async fn put_plain(
        &self,
        mut req: S3Request<PutObjectInput>,
        trailer_names: Option<String>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let outcome = verify_plain_upload!(req, trailer_names);
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let mut resp = self.upstream.put_object(req).await.map_err(|e| upload_error(e, &outcome))?;
        set_checksums!(resp.output, outcome.lock().expect("outcome lock").checksums.clone());
        self.listed.remember(&bucket, &key, resp.output.e_tag.as_ref(), Listed::default());
        Ok(resp)
    }

    async fn put_encrypted(
        &self,
        mut req: S3Request<PutObjectInput>,
        sealed: SealedWrite,
        trailer_names: Option<String>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let SealedWrite { oek, mut record, echo } = sealed;
        let plain_len = declared_length(&req.headers, req.input.content_length)?;
        let mut body = req.input.body.take().ok_or_else(|| s3_error!(IncompleteBody))?;
        record.plain_size = plain_len;
        // The stream refuses a body of another length, so the size is final.
        record.seal_layout(&oek.layout_key(), &req.input.bucket, &req.input.key);

        // SSE-S3 ETag = plaintext MD5, stored sealed in the record. It is
        // known up front from Content-MD5 or, for bodies of at most one
        // segment, by reading the body first (bounded memory). Otherwise it
        // is attached after the upload by a conditional metadata-only copy.
        let mut etag_md5: Option<[u8; 16]> = None;
        if record.mode == SseMode::S3 {
            let content_md5 = req
                .input
                .content_md5
                .as_deref()
                .and_then(|m| B64.decode(m.trim()).ok())
                .and_then(|d| <[u8; 16]>::try_from(d).ok());
            if let Some(md5) = content_md5 {
                etag_md5 = Some(md5);
            } else if plain_len <= u64::from(self.params.segment_size()) {
                let chunks = read_small(body, plain_len).await?;
                let mut h = <s3s::crypto::Md5 as s3s::crypto::Checksum>::new();
                chunks.iter().for_each(|c| s3s::crypto::Checksum::update(&mut h, c));
                etag_md5 = Some(s3s::crypto::Checksum::finalize(h).as_ref().try_into().expect("MD5 is 16 bytes"));
                let items: Vec<Result<Bytes, std::io::Error>> = chunks.into_iter().map(Ok).collect();
                body = StreamingBlob::wrap(stream::iter(items));
            }
            if let Some(md5) = &etag_md5 {
                record.sealed_etag = Some(Self::seal_etag(&oek, md5)?);
            }
        }
        let etag_pending = record.mode == SseMode::S3 && etag_md5.is_none();

        let (observer, outcome) = ChecksumObserver::new(
            take_client_checksums!(req.input),
            trailer_names.as_deref(),
            req.trailing_headers.clone(),
            etag_pending,
            Some(plain_len),
        )?;
        // The trailers were ours to verify; the upstream must not see them.
        req.trailing_headers = None;
        let mut meta = req.input.metadata.take().unwrap_or_default();
        record.write_to(&mut meta).map_err(record_error)?;
        req.input.metadata = Some(meta.clone());

        let part_key = record.part_key(&oek, 0, 0);
        let body = record_body_errors(body, outcome.clone());
        let enc = EncryptStream::new(body, &part_key, 0, self.params, Some(plain_len), Box::new(observer));
        req.input.content_length = Some(self.params.ciphertext_len(plain_len) as i64);
        req.input.body = Some(StreamingBlob::new(enc));
        let fixup = etag_pending.then(|| object_headers!(req.input));

        let ctx = sub_request(&req, ());
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let up = self.upstream.put_object(req).await.map_err(|e| upload_error(e, &outcome))?;
        self.metrics.bytes_encrypted.inc_by(plain_len);
        let (md5, checksums) = {
            let o = outcome.lock().expect("outcome lock");
            (o.md5, o.checksums.clone())
        };

        let mut out = PutObjectOutput {
            version_id: up.output.version_id.clone(),
            expiration: up.output.expiration.clone(),
            ..Default::default()
        };
        out.e_tag = match (record.mode, etag_md5.or(md5)) {
            (SseMode::S3, Some(md5)) => Some(ETag::Strong(hex::encode(md5))),
            _ => up.output.e_tag.clone(),
        };
        let mut stored_etag = up.output.e_tag.clone();
        // The ETag HEAD and listings answer with: the sealed MD5 if stored.
        let mut visible = etag_md5.map(|md5| ETag::Strong(hex::encode(md5)));
        if let (Some(headers), Some(md5), Some(up_etag)) = (fixup, md5, up.output.e_tag.clone()) {
            record.sealed_etag = Some(Self::seal_etag(&oek, &md5)?);
            let mut meta = meta;
            record.write_to(&mut meta).map_err(record_error)?;
            // Only if the object is still the one just written.
            let copy = self_copy(&bucket, &key, meta, &headers, up_etag);
            match self.upstream.copy_object(sub_request(&ctx, copy)).await {
                Ok(r) => {
                    stored_etag = r.output.copy_object_result.and_then(|c| c.e_tag).or(stored_etag);
                    visible = Some(ETag::Strong(hex::encode(md5)));
                    // A versioned store made a version of the copy: that
                    // one carries the ETag, and is what the client gets.
                    if r.output.version_id.is_some() {
                        out.version_id = r.output.version_id;
                    }
                }
                // The data is stored and readable; only the ETag differs.
                Err(e) => tracing::warn!(error = %e, %bucket, %key, "could not attach the SSE-S3 ETag"),
            }
        }
        let key_id = visible.as_ref().and(record.kms.as_ref()).map(|k| k.key_id.to_string());
        self.listed.remember(
            &bucket,
            &key,
            stored_etag.as_ref(),
            Listed { plain: Some(plain_len), etag: visible, key_id, ..Default::default() },
        );
        set_checksums!(out, checksums);
        apply_echo!(all out, echo);
        Ok(S3Response::new(out))
    }
}
