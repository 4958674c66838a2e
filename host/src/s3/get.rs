//! GetObject and HeadObject: find the object's crypto record, check the
//! read-side SSE headers and preconditions, then fetch only the ciphertext
//! segments the requested range needs and decrypt them.

use futures::StreamExt;
use hyper::StatusCode;
use s3s::dto::{ETag, ETagCondition, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, Range, StreamingBlob};
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::body::{Prefixed, strip_aws_chunked};
use super::conditional::Preconditions;
use super::errors::{crypto_error, not_implemented, record_error, sse_error};
use super::keys::Echo;
use super::{Gateway, reject_managed_sse_headers, sub_request};
use crate::crypto::stream::{DecryptPlan, DecryptStream};
use crate::sse::{CustomerKey, ObjectCrypto, strip_reserved};

fn take_customer(alg: &mut Option<String>, key: &mut Option<String>, md5: &mut Option<String>) -> S3Result<Option<CustomerKey>> {
    // Reads tolerate a missing key MD5, as AWS does.
    let ck = CustomerKey::parse(alg.as_deref(), key.as_deref(), md5.as_deref(), false).map_err(sse_error)?;
    (*alg, *key, *md5) = (None, None, None);
    Ok(ck)
}

macro_rules! take_preconditions {
    ($input:expr) => {
        Preconditions {
            if_match: $input.if_match.take(),
            if_none_match: $input.if_none_match.take(),
            if_modified_since: $input.if_modified_since.take(),
            if_unmodified_since: $input.if_unmodified_since.take(),
        }
    };
}

/// Response fields shared by GET and HEAD of an encrypted object.
macro_rules! decorate_output {
    ($out:expr, $echo:expr, $etag:expr) => {{
        let echo: Echo = $echo;
        $out.e_tag = $etag;
        $out.server_side_encryption = echo.sse;
        $out.ssekms_key_id = echo.kms_key_id;
        $out.sse_customer_algorithm = echo.customer_algorithm;
        $out.sse_customer_key_md5 = echo.customer_key_md5;
        $out.checksum_crc32 = None;
        $out.checksum_crc32c = None;
        $out.checksum_sha1 = None;
        $out.checksum_sha256 = None;
        $out.checksum_crc64nvme = None;
        $out.checksum_type = None;
        $out.accept_ranges = Some("bytes".into());
        strip_reserved(&mut $out.metadata);
        strip_aws_chunked(&mut $out.content_encoding);
    }};
}

fn range_of(range: Option<&Range>, size: u64) -> S3Result<Option<std::ops::Range<u64>>> {
    match range {
        None => Ok(None),
        Some(r) => r.check(size).map(Some).map_err(|_| {
            let mut e = s3_error!(InvalidRange, "The requested range is not satisfiable");
            e.set_status_code(StatusCode::RANGE_NOT_SATISFIABLE);
            e
        }),
    }
}

fn stored_length_error() -> S3Error {
    crypto_error(crate::crypto::CryptoError::Length("stored ciphertext length does not match the record"))
}

impl Gateway {
    pub(crate) async fn get(&self, mut req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        reject_managed_sse_headers(&req.headers)?;
        let original = req.input.clone();
        let i = &mut req.input;
        let customer = take_customer(&mut i.sse_customer_algorithm, &mut i.sse_customer_key, &mut i.sse_customer_key_md5)?;
        let pre = take_preconditions!(i);
        let range = i.range.take();
        let part_number = i.part_number.take();
        i.checksum_mode = None;
        let (bucket, key) = (i.bucket.clone(), i.key.clone());

        if range.is_none() && part_number.is_none() {
            let resp = self.upstream.get_object(sub_request(&req, req.input.clone())).await?;
            let rec = ObjectCrypto::read_from(resp.output.metadata.as_ref()).map_err(record_error)?;
            self.check_read_headers(rec.as_ref(), customer.as_ref())?;
            let Some(rec) = rec else {
                pre.check(resp.output.e_tag.as_ref(), resp.output.last_modified.as_ref())?;
                return Ok(resp);
            };
            return self.decrypt_response(resp, &rec, customer.as_ref(), &pre, &bucket, &key).await;
        }

        // Ranges and part reads need the record before the fetch.
        let head_in = HeadObjectInput::builder()
            .bucket(bucket.clone())
            .key(key.clone())
            .version_id(req.input.version_id.clone())
            .build()
            .expect("bucket and key set");
        let head = self.upstream.head_object(sub_request(&req, head_in)).await?.output;
        let rec = ObjectCrypto::read_from(head.metadata.as_ref()).map_err(record_error)?;
        self.check_read_headers(rec.as_ref(), customer.as_ref())?;
        let Some(rec) = rec else {
            // Plaintext: the upstream evaluates the rest; the range is
            // normalised with the known size (not every store handles a
            // suffix longer than the object).
            let mut plain = original;
            (plain.sse_customer_algorithm, plain.sse_customer_key, plain.sse_customer_key_md5) = (None, None, None);
            if let (Some(r), Some(size)) = (&range, head.content_length) {
                let want = range_of(Some(r), size.max(0) as u64)?.expect("range is set");
                plain.range = Some(Range::Int { first: want.start, last: Some(want.end - 1) });
            }
            return self.upstream.get_object(sub_request(&req, plain)).await;
        };
        if part_number.is_some() {
            return Err(not_implemented("partNumber reads of encrypted objects are not supported yet"));
        }
        let oek = self.open_object_key(&rec, customer.as_ref(), &bucket, &key).await?;
        let etag = Self::visible_etag(&rec, Some(&oek), head.e_tag.clone())?;
        pre.check(etag.as_ref(), head.last_modified.as_ref())?;
        let want = range_of(range.as_ref(), rec.plain_size)?.expect("range is set on this path");
        let map = rec.params.map_range(rec.plain_size, want.clone()).map_err(crypto_error)?;
        let mut get_in = req.input.clone();
        get_in.range = Some(Range::Int { first: map.ciphertext.start, last: Some(map.ciphertext.end - 1) });
        // Pin the fetch to the object the record came from.
        get_in.if_match = head.e_tag.clone().map(ETagCondition::ETag);
        let resp = self.upstream.get_object(sub_request(&req, get_in)).await?;
        let fetched = (want, map.first_segment, map.last_segment, map.skip, map.ciphertext.end - map.ciphertext.start);
        self.finish_decrypt(resp, &rec, customer.as_ref(), oek, etag, Some(fetched)).await
    }

    async fn decrypt_response(
        &self,
        resp: S3Response<GetObjectOutput>,
        rec: &ObjectCrypto,
        customer: Option<&CustomerKey>,
        pre: &Preconditions,
        bucket: &str,
        key: &str,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let oek = self.open_object_key(rec, customer, bucket, key).await?;
        let etag = Self::visible_etag(rec, Some(&oek), resp.output.e_tag.clone())?;
        pre.check(etag.as_ref(), resp.output.last_modified.as_ref())?;
        self.finish_decrypt(resp, rec, customer, oek, etag, None).await
    }

    /// Wrap the upstream body in a decrypting stream and fix the headers.
    /// `fetched` = (plaintext range, first segment, last segment, skip, ciphertext bytes).
    async fn finish_decrypt(
        &self,
        mut resp: S3Response<GetObjectOutput>,
        rec: &ObjectCrypto,
        customer: Option<&CustomerKey>,
        oek: crate::crypto::ObjectKey,
        etag: Option<ETag>,
        fetched: Option<(std::ops::Range<u64>, u64, u64, u64, u64)>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let p = rec.params;
        let (plan, expect_ct, content_range) = match fetched {
            None => {
                let last = p.segment_count(rec.plain_size) - 1;
                let plan = DecryptPlan {
                    part: 0,
                    part_plain_len: rec.plain_size,
                    first_segment: 0,
                    last_segment: last,
                    skip: 0,
                    take: rec.plain_size,
                };
                (plan, p.ciphertext_len(rec.plain_size), None)
            }
            Some((want, first, last, skip, ct_len)) => {
                let plan = DecryptPlan {
                    part: 0,
                    part_plain_len: rec.plain_size,
                    first_segment: first,
                    last_segment: last,
                    skip,
                    take: want.end - want.start,
                };
                (plan, ct_len, Some(format!("bytes {}-{}/{}", want.start, want.end - 1, rec.plain_size)))
            }
        };
        // Appended or cut ciphertext is refused before any byte is sent.
        if resp.output.content_length.map(|l| l as u64) != Some(expect_ct) {
            return Err(stored_length_error());
        }
        let take = plan.take;
        let body = resp.output.body.take().ok_or_else(|| s3_error!(InternalError, "upstream returned no body"))?;
        let part_key = oek.part_key(0, p.segment_size());
        let mut dec = DecryptStream::new(body, &part_key, p, plan);
        // Authenticate the first segment before the headers go out.
        let head = match dec.next().await {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                tracing::error!(error = %e, "first segment failed authentication");
                return Err(stored_length_error_or_auth());
            }
            None => None,
        };
        let out = &mut resp.output;
        out.body = Some(StreamingBlob::new(Prefixed::new(head, dec)));
        out.content_length = Some(take as i64);
        out.content_range = content_range.clone();
        decorate_output!(out, Self::echo_of(rec, customer), etag);
        if content_range.is_some() {
            resp.status = Some(StatusCode::PARTIAL_CONTENT);
        }
        Ok(resp)
    }

    pub(crate) async fn head(&self, mut req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        reject_managed_sse_headers(&req.headers)?;
        let original = req.input.clone();
        let i = &mut req.input;
        let customer = take_customer(&mut i.sse_customer_algorithm, &mut i.sse_customer_key, &mut i.sse_customer_key_md5)?;
        let pre = take_preconditions!(i);
        let range = i.range.take();
        let part_number = i.part_number.take();
        i.checksum_mode = None;
        let (bucket, key) = (i.bucket.clone(), i.key.clone());
        let mut resp = self.upstream.head_object(sub_request(&req, req.input.clone())).await?;
        let rec = ObjectCrypto::read_from(resp.output.metadata.as_ref()).map_err(record_error)?;
        self.check_read_headers(rec.as_ref(), customer.as_ref())?;
        let Some(rec) = rec else {
            if range.is_some() || part_number.is_some() || !pre.is_empty() {
                let mut plain = original;
                (plain.sse_customer_algorithm, plain.sse_customer_key, plain.sse_customer_key_md5) = (None, None, None);
                return self.upstream.head_object(sub_request(&req, plain)).await;
            }
            return Ok(resp);
        };
        if part_number.is_some() {
            return Err(not_implemented("partNumber reads of encrypted objects are not supported yet"));
        }
        // Only SSE-S3 needs the object key here (its ETag is sealed).
        let oek = match rec.sealed_etag {
            Some(_) => Some(self.open_object_key(&rec, customer.as_ref(), &bucket, &key).await?),
            None => None,
        };
        let etag = Self::visible_etag(&rec, oek.as_ref(), resp.output.e_tag.clone())?;
        pre.check(etag.as_ref(), resp.output.last_modified.as_ref())?;
        let out = &mut resp.output;
        match range_of(range.as_ref(), rec.plain_size)? {
            Some(r) => {
                out.content_length = Some((r.end - r.start) as i64);
                out.content_range = Some(format!("bytes {}-{}/{}", r.start, r.end - 1, rec.plain_size));
                resp.status = Some(StatusCode::PARTIAL_CONTENT);
            }
            None => out.content_length = Some(rec.plain_size as i64),
        }
        decorate_output!(out, Self::echo_of(&rec, customer.as_ref()), etag);
        Ok(resp)
    }
}

fn stored_length_error_or_auth() -> S3Error {
    crypto_error(crate::crypto::CryptoError::Authentication)
}
