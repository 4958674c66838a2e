//! GetObject and HeadObject: find the object's crypto record, check the
//! read-side SSE headers and preconditions, then fetch only the ciphertext
//! segments the requested range needs and decrypt them.

use futures::StreamExt;
use hyper::StatusCode;
use s3s::dto::{ETag, ETagCondition, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, Range, StreamingBlob};
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::body::{Prefixed, strip_aws_chunked};
use super::conditional::Preconditions;
use super::errors::{crypto_error, record_error};
use super::keys::{apply_echo, set_checksums, take_customer};
use super::{Gateway, principal, reject_managed_sse_headers, sub_request};
use crate::crypto::layout::Layout;
use crate::crypto::stream::{DecryptPlan, DecryptStream};

/// What a ranged read fetched: the plaintext range, the ciphertext byte
/// count, and a decrypt plan per part.
struct Fetch {
    want: std::ops::Range<u64>,
    ciphertext_len: u64,
    plans: Vec<DecryptPlan>,
    parts_count: Option<i32>,
}

/// The plaintext and ciphertext bounds of part `n`, and its decrypt plan.
/// A single-PUT object has one part, number 1 to clients.
fn part_slice(layout: &Layout, n: i32) -> S3Result<(std::ops::Range<u64>, std::ops::Range<u64>, DecryptPlan)> {
    let single = layout.parts().len() == 1 && layout.parts()[0].number == 0;
    let idx = if single && n == 1 { Some(0) } else { layout.parts().iter().position(|e| i64::from(e.number) == i64::from(n)) };
    // As S3 (and the s3-tests conformance suite): a part the object does
    // not have is 400 InvalidPart, for GET and HEAD alike.
    let Some(idx) = idx else {
        return Err(s3s::s3_error!(InvalidPart, "The requested part number {n} does not exist in this object."));
    };
    let (pr, cr) = layout.part_bounds(idx);
    Ok((pr, cr, DecryptPlan::whole_part(layout.params(), &layout.parts()[idx])))
}
use crate::sse::{CustomerKey, ObjectCrypto, strip_reserved};

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
        $out.e_tag = $etag;
        apply_echo!(read $out, $echo);
        set_checksums!($out, Default::default());
        $out.checksum_type = None;
        $out.accept_ranges = Some("bytes".into());
        strip_reserved(&mut $out.metadata);
        strip_aws_chunked(&mut $out.content_encoding);
    }};
}

fn range_of(range: Option<&Range>, size: u64) -> S3Result<Option<std::ops::Range<u64>>> {
    match range.map(|r| r.check(size)) {
        None => Ok(None),
        // s3s accepts a suffix range of an empty object as the empty range;
        // no byte of an empty object can be served (RFC 9110 §14.1.1).
        Some(Ok(want)) if want.start < want.end => Ok(Some(want)),
        Some(_) => {
            let mut e = s3_error!(InvalidRange, "The requested range is not satisfiable");
            e.set_status_code(StatusCode::RANGE_NOT_SATISFIABLE);
            Err(e)
        }
    }
}

/// S3 serves a part or a range, not both; and part numbers run 1..=10000.
fn check_part_request(range: Option<&Range>, part_number: Option<i32>) -> S3Result<()> {
    match part_number {
        Some(_) if range.is_some() => {
            Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter."))
        }
        Some(n) if !(1..=10_000).contains(&n) => {
            Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive."))
        }
        _ => Ok(()),
    }
}

/// Appended or cut ciphertext is refused before any byte is sent: the
/// store's length of the object (or of a fetched range) must be `expected`.
fn check_stored_length(stored: Option<i64>, expected: u64) -> S3Result<()> {
    if stored.map(|l| l as u64) == Some(expected) { Ok(()) } else { Err(stored_length_error()) }
}

fn stored_length_error() -> S3Error {
    crypto_error(crate::crypto::CryptoError::Length("stored ciphertext length does not match the record"))
}

impl Gateway {
    pub(crate) async fn get(&self, mut req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        reject_managed_sse_headers(&req.headers)?;
        let i = &mut req.input;
        let customer = take_customer!(i)?;
        self.require_tls_for_sse_c(&req.extensions, customer.is_some())?;
        self.get_with(req, customer).await
    }

    /// GetObject with the SSE-C key already taken out of the input.
    pub(crate) async fn get_with(
        &self,
        mut req: S3Request<GetObjectInput>,
        customer: Option<CustomerKey>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let original = req.input.clone();
        let i = &mut req.input;
        let pre = take_preconditions!(i);
        let range = i.range.take();
        let part_number = i.part_number.take();
        check_part_request(range.as_ref(), part_number)?;
        i.checksum_mode = None;
        let (bucket, key) = (i.bucket.clone(), i.key.clone());

        if range.is_none() && part_number.is_none() {
            let resp = self.upstream.get_object(sub_request(&req, req.input.clone())).await?;
            let rec = self.stored_record(&bucket, resp.output.metadata.as_ref()).await?;
            self.check_read_headers(rec.as_ref(), customer.as_ref())?;
            let Some(rec) = rec else {
                pre.check(resp.output.e_tag.as_ref(), resp.output.last_modified.as_ref())?;
                return Ok(resp);
            };
            return self.decrypt_response(resp, &rec, customer.as_ref(), &pre, (&bucket, &key), principal(&req).as_deref()).await;
        }

        // Ranges and part reads need the record before the fetch.
        let head_in = HeadObjectInput::builder()
            .bucket(bucket.clone())
            .key(key.clone())
            .version_id(req.input.version_id.clone())
            .build()
            .expect("bucket and key set");
        let head = self.upstream.head_object(sub_request(&req, head_in)).await?.output;
        let rec = self.stored_record(&bucket, head.metadata.as_ref()).await?;
        self.check_read_headers(rec.as_ref(), customer.as_ref())?;
        let Some(rec) = rec else {
            // Plaintext: the upstream evaluates the rest; the range is
            // normalised with the known size (not every store handles a
            // suffix longer than the object).
            let mut plain = original;
            if let (Some(r), Some(size)) = (&range, head.content_length) {
                let want = range_of(Some(r), size.max(0) as u64)?.expect("range is set");
                plain.range = Some(Range::Int { first: want.start, last: Some(want.end - 1) });
            }
            let resp = self.upstream.get_object(sub_request(&req, plain)).await?;
            self.still_plaintext(&bucket, resp.output.metadata.as_ref()).await?;
            return Ok(resp);
        };
        let oek = self.open_for_read("GetObject", &rec, customer.as_ref(), &bucket, &key, principal(&req).as_deref()).await?;
        let etag = Self::visible_etag(&rec, Some(&oek), head.e_tag.clone())?;
        pre.check(etag.as_ref(), head.last_modified.as_ref())?;
        let layout = rec.layout().map_err(record_error)?;
        // A store object cut or extended against its layout is refused even
        // where the requested bytes themselves are intact.
        check_stored_length(head.content_length, layout.ciphertext_len())?;
        let (want, ct, plans, parts_count) = match part_number {
            Some(n) => {
                let (want, ct, plan) = part_slice(&layout, n)?;
                (want, ct, vec![plan], rec.multipart.as_ref().map(|p| p.len() as i32))
            }
            None => {
                let want = range_of(range.as_ref(), rec.plain_size)?.expect("range is set on this path");
                let (ct, plans) = layout.map_range(want.clone()).map_err(crypto_error)?;
                (want, ct, plans, None)
            }
        };
        let mut get_in = req.input.clone();
        get_in.range = Some(Range::Int { first: ct.start, last: Some(ct.end - 1) });
        // Pin the fetch to the object the record came from.
        get_in.if_match = head.e_tag.clone().map(ETagCondition::ETag);
        let resp = self.upstream.get_object(sub_request(&req, get_in)).await?;
        let fetched = Fetch { want, ciphertext_len: ct.end - ct.start, plans, parts_count };
        self.finish_decrypt(resp, &rec, customer.as_ref(), oek, etag, Some(fetched)).await
    }

    async fn decrypt_response(
        &self,
        resp: S3Response<GetObjectOutput>,
        rec: &ObjectCrypto,
        customer: Option<&CustomerKey>,
        pre: &Preconditions,
        (bucket, key): (&str, &str),
        principal: Option<&str>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let oek = self.open_for_read("GetObject", rec, customer, bucket, key, principal).await?;
        let etag = Self::visible_etag(rec, Some(&oek), resp.output.e_tag.clone())?;
        pre.check(etag.as_ref(), resp.output.last_modified.as_ref())?;
        self.finish_decrypt(resp, rec, customer, oek, etag, None).await
    }

    /// Wrap the upstream body in a decrypting stream and fix the headers.
    async fn finish_decrypt(
        &self,
        mut resp: S3Response<GetObjectOutput>,
        rec: &ObjectCrypto,
        customer: Option<&CustomerKey>,
        oek: crate::crypto::ObjectKey,
        etag: Option<ETag>,
        fetched: Option<Fetch>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let p = rec.params;
        let mut parts_count = None;
        let (plans, expect_ct, content_range) = match fetched {
            None => {
                let layout = rec.layout().map_err(record_error)?;
                (layout.full_plans(), layout.ciphertext_len(), None)
            }
            Some(f) => {
                parts_count = f.parts_count;
                let cr =
                    (f.want.end > f.want.start).then(|| format!("bytes {}-{}/{}", f.want.start, f.want.end - 1, rec.plain_size));
                (f.plans, f.ciphertext_len, cr)
            }
        };
        check_stored_length(resp.output.content_length, expect_ct)?;
        let take: u64 = plans.iter().map(|pl| pl.take).sum();
        self.metrics.requests.with_label_values(&["get", rec.mode.as_str()]).inc();
        self.metrics.upstream_ciphertext_bytes.inc_by(expect_ct);
        self.metrics.bytes_decrypted.inc_by(take);
        let body = resp.output.body.take().ok_or_else(|| s3_error!(InternalError, "upstream returned no body"))?;
        let keyed = plans.into_iter().map(|pl| (rec.part_key(&oek, pl.part, pl.attempt), pl)).collect();
        let mut dec = DecryptStream::multipart(body, p, keyed);
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
        out.parts_count = parts_count;
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
        let customer = take_customer!(i)?;
        let pre = take_preconditions!(i);
        let range = i.range.take();
        let part_number = i.part_number.take();
        check_part_request(range.as_ref(), part_number)?;
        i.checksum_mode = None;
        let (bucket, key) = (i.bucket.clone(), i.key.clone());
        self.require_tls_for_sse_c(&req.extensions, customer.is_some())?;
        let mut resp = self.upstream.head_object(sub_request(&req, req.input.clone())).await?;
        let rec = self.stored_record(&bucket, resp.output.metadata.as_ref()).await?;
        self.check_read_headers(rec.as_ref(), customer.as_ref())?;
        let Some(rec) = rec else {
            if range.is_some() || part_number.is_some() || !pre.is_empty() {
                let mut plain = original;
                super::keys::wipe(&mut plain.sse_customer_key);
                (plain.sse_customer_algorithm, plain.sse_customer_key_md5) = (None, None);
                let resp = self.upstream.head_object(sub_request(&req, plain)).await?;
                self.still_plaintext(&bucket, resp.output.metadata.as_ref()).await?;
                return Ok(resp);
            }
            return Ok(resp);
        };
        // The key opens the sealed SSE-S3 ETag and checks the layout tag; a
        // stored length that does not match the layout is refused too.
        let oek = self.open_for_read("HeadObject", &rec, customer.as_ref(), &bucket, &key, principal(&req).as_deref()).await?;
        let layout = rec.layout().map_err(record_error)?;
        check_stored_length(resp.output.content_length, layout.ciphertext_len())?;
        let etag = Self::visible_etag(&rec, Some(&oek), resp.output.e_tag.clone())?;
        pre.check(etag.as_ref(), resp.output.last_modified.as_ref())?;
        let out = &mut resp.output;
        let want = match part_number {
            Some(n) => {
                out.parts_count = rec.multipart.as_ref().map(|p| p.len() as i32);
                Some(part_slice(&layout, n)?.0)
            }
            None => range_of(range.as_ref(), rec.plain_size)?,
        };
        match want {
            Some(r) => {
                out.content_length = Some((r.end - r.start) as i64);
                out.content_range = (r.end > r.start).then(|| format!("bytes {}-{}/{}", r.start, r.end - 1, rec.plain_size));
                resp.status = Some(StatusCode::PARTIAL_CONTENT);
            }
            None => {
                out.content_length = Some(rec.plain_size as i64);
                out.parts_count = rec.multipart.as_ref().map(|p| p.len() as i32);
            }
        }
        decorate_output!(out, Self::echo_of(&rec, customer.as_ref()), etag);
        Ok(resp)
    }
}

impl Gateway {
    /// A second request for an object found in plaintext must still find
    /// it so: one replaced by an encrypted object in between would hand the
    /// client ciphertext and the gateway's record.
    async fn still_plaintext(&self, bucket: &str, metadata: Option<&s3s::dto::Metadata>) -> S3Result<()> {
        match self.stored_record(bucket, metadata).await? {
            None => Ok(()),
            Some(_) => Err(s3_error!(InternalError, "The object changed while it was being read; retry the request.")),
        }
    }
}

fn stored_length_error_or_auth() -> S3Error {
    crypto_error(crate::crypto::CryptoError::Authentication)
}
