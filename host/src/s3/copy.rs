//! CopyObject across every source × destination mode, and the
//! metadata-only re-key of an object copied onto itself.
//!
//! - plaintext → plaintext: the upstream copies server-side;
//! - same object, encrypted → encrypted: the object key is re-sealed under
//!   the new KMS key / version or SSE-C key; no payload byte moves. With
//!   `x-kgw-fresh-key: true` the data is rewritten under a new object key
//!   instead (revocation: an old record no longer opens it);
//! - anything else: a streaming GET (decrypting) feeds a PUT (encrypting),
//!   one segment in memory at a time.

use s3s::dto::{
    CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource, ETagCondition, GetObjectInput, HeadObjectInput,
    MetadataDirective, PutObjectInput, Timestamp,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::conditional::Preconditions;
use super::errors::{not_implemented, record_error};
use super::keys::apply_echo;
use super::keys::take_customer;
use super::listed::Listed;
use super::write::{object_headers, reserved_metadata_error, self_copy, take_sse};
use super::{Gateway, principal, sub_request};
use crate::sse::{ObjectCrypto, SseMode, SseRequest, has_reserved_keys};

/// Header asking a copy onto itself for a fresh object key.
const FRESH_KEY_HEADER: &str = "x-kgw-fresh-key";

fn fresh_key_requested(headers: &hyper::HeaderMap) -> bool {
    headers.get(FRESH_KEY_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The destination's `If-Match` and `If-None-Match`. s3s 0.14's CopyObject
/// input has no field for them, so they are read from the headers.
fn destination_conditions(headers: &hyper::HeaderMap) -> S3Result<(Option<ETagCondition>, Option<ETagCondition>)> {
    let parse = |name: &str| match headers.get(name) {
        None => Ok(None),
        Some(v) => ETagCondition::parse_http_header(v.as_bytes())
            .map(Some)
            .map_err(|_| s3_error!(InvalidArgument, "The {name} header is not a valid ETag condition.")),
    };
    Ok((parse("if-match")?, parse("if-none-match")?))
}

fn source_of(input: &CopyObjectInput) -> S3Result<(String, String, Option<String>)> {
    match &input.copy_source {
        CopySource::Bucket { bucket, key, version_id } => {
            Ok((bucket.to_string(), key.to_string(), version_id.as_ref().map(|v| v.to_string())))
        }
        _ => Err(not_implemented("access point copy sources are not supported")),
    }
}

impl Gateway {
    pub(crate) async fn copy(&self, mut req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        if has_reserved_keys(req.input.metadata.as_ref()) {
            return Err(reserved_metadata_error());
        }
        let (src_bucket, src_key, src_version) = source_of(&req.input)?;
        let (dst_if_match, dst_if_none_match) = destination_conditions(&req.headers)?;
        let i = &mut req.input;
        let src_customer = take_customer!(copy_source i)?;
        let explicit = take_sse!(req.input)?;
        self.require_tls_for_sse_c(&req.extensions, src_customer.is_some() || matches!(explicit, SseRequest::Customer(_)))?;
        let had_sse_headers = !matches!(explicit, SseRequest::None);
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let dst_sse = self.decide_write(&req, "CopyObject", (&bucket, &key), explicit).await?;
        let replace = req.input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);

        let head_in = HeadObjectInput::builder()
            .bucket(src_bucket.clone())
            .key(src_key.clone())
            .version_id(src_version.clone())
            .build()
            .expect("set");
        let head = self.upstream.head_object(sub_request(&req, head_in)).await?.output;
        let src_rec = self.stored_record(&src_bucket, head.metadata.as_ref()).await?;
        self.check_read_headers(src_rec.as_ref(), src_customer.as_ref())?;
        let src_oek = match &src_rec {
            Some(r) => Some(
                self.open_for_read("CopySource", r, src_customer.as_ref(), &src_bucket, &src_key, principal(&req).as_deref())
                    .await?,
            ),
            None => None,
        };
        let src_etag = match &src_rec {
            Some(r) => Self::visible_etag(r, src_oek.as_ref(), head.e_tag.clone())?,
            None => head.e_tag.clone(),
        };
        let pre = Preconditions {
            if_match: req.input.copy_source_if_match.take(),
            if_none_match: req.input.copy_source_if_none_match.take(),
            if_modified_since: req.input.copy_source_if_modified_since.take(),
            if_unmodified_since: req.input.copy_source_if_unmodified_since.take(),
        };
        // Copy preconditions all fail with 412.
        pre.check(src_etag.as_ref(), head.last_modified.as_ref()).map_err(|_| s3_error!(PreconditionFailed))?;
        let pre_is_empty = pre.is_empty();

        let same = src_bucket == bucket && src_key == key && src_version.is_none();
        if same && !replace && !had_sse_headers {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        self.metrics.requests.with_label_values(&["copy", crate::s3::write::mode_label(&dst_sse)]).inc();

        // A re-key in place keeps the object key, so restoring the old record
        // restores access. Revocation needs a fresh key, the data rewritten:
        // asked for with `x-kgw-fresh-key: true`.
        let fresh = fresh_key_requested(&req.headers);
        if let (true, false, Some(rec), Some(oek)) = (same, fresh, &src_rec, src_oek)
            && !matches!(dst_sse, SseRequest::None)
        {
            // The destination is the source just checked: it exists, with
            // the visible ETag `src_etag`; the self-copy is pinned to it.
            let dst = Preconditions { if_match: dst_if_match, if_none_match: dst_if_none_match, ..Default::default() };
            if dst.if_none_match.is_some() || dst.check(src_etag.as_ref(), None).is_err() {
                return Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
            }
            return self.rekey_in_place(req, rec, oek, dst_sse, head, replace).await;
        }
        // The store's own copy cannot be given the destination's conditions
        // (the forwarding input has no field for them): a conditional copy
        // goes through the gateway, where its PUT carries them.
        let conditional = dst_if_match.is_some() || dst_if_none_match.is_some();
        if src_rec.is_none() && matches!(dst_sse, SseRequest::None) && !conditional {
            return self.upstream.copy_object(req).await;
        }

        // Stream: decrypt the source, encrypt into the destination. The read
        // is pinned to the source the preconditions were checked on.
        let mut get_in = GetObjectInput::builder().bucket(src_bucket).key(src_key).build().expect("set");
        get_in.version_id = src_version;
        // A copy with source conditions reads the version they held for (a
        // source replaced in between fails the copy); without, it copies
        // whatever the source is when read, as S3 does.
        if !pre_is_empty {
            get_in.if_match = src_etag.clone().map(ETagCondition::ETag);
        }
        let src = self.get_with(sub_request(&req, get_in), src_customer).await?.output;
        let i = &req.input;
        let mut put_in = PutObjectInput::builder().bucket(bucket.clone()).key(key.clone()).build().expect("set");
        put_in.body = src.body;
        put_in.content_length = src.content_length;
        if replace {
            put_in.metadata = i.metadata.clone();
            put_in.content_type = i.content_type.clone();
            put_in.content_encoding = i.content_encoding.clone();
            put_in.content_disposition = i.content_disposition.clone();
            put_in.content_language = i.content_language.clone();
            put_in.cache_control = i.cache_control.clone();
            put_in.expires = i.expires.clone();
        } else {
            put_in.metadata = src.metadata;
            put_in.content_type = src.content_type;
            put_in.content_encoding = src.content_encoding;
            put_in.content_disposition = src.content_disposition;
            put_in.content_language = src.content_language;
            put_in.cache_control = src.cache_control;
            put_in.expires = src.expires;
        }
        put_in.website_redirect_location = i.website_redirect_location.clone();
        put_in.storage_class = i.storage_class.clone();
        put_in.tagging = None;
        put_in.if_match = dst_if_match;
        put_in.if_none_match = dst_if_none_match;
        let put = self.put_with(sub_request(&req, put_in), dst_sse, None).await?.output;
        let out = CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: put.e_tag,
                last_modified: Some(Timestamp::from(std::time::SystemTime::now())),
                ..Default::default()
            }),
            server_side_encryption: put.server_side_encryption,
            ssekms_key_id: put.ssekms_key_id,
            ssekms_encryption_context: put.ssekms_encryption_context,
            sse_customer_algorithm: put.sse_customer_algorithm,
            sse_customer_key_md5: put.sse_customer_key_md5,
            version_id: put.version_id,
            ..Default::default()
        };
        Ok(S3Response::new(out))
    }

    /// Re-seal the object key of `bucket/key` for `dst_sse`; metadata only.
    async fn rekey_in_place(
        &self,
        req: S3Request<CopyObjectInput>,
        rec: &ObjectCrypto,
        oek: crate::crypto::ObjectKey,
        dst_sse: SseRequest,
        head: s3s::dto::HeadObjectOutput,
        replace: bool,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let sealed_etag = rec.sealed_etag.clone();
        let sealed = self
            .seal_object_key(oek.clone(), dst_sse, &bucket, &key, principal(&req).as_deref())
            .await?
            .expect("an encrypting SSE request seals");
        let mut new = sealed.record;
        // The payload is untouched: its format version (and with it how its
        // part keys are derived) stays; a v2 layout is re-tagged, since the
        // tag covers the mode.
        new.version = rec.version;
        new.params = rec.params;
        new.plain_size = rec.plain_size;
        new.multipart = rec.multipart.clone();
        new.seal_layout(&oek.layout_key(), &bucket, &key);
        // The plaintext MD5 is sealed under the object key, which is
        // unchanged: it stays valid through any number of re-keys.
        new.sealed_etag = sealed_etag;
        let i = &req.input;
        let (mut metadata, mut headers) = if replace {
            (i.metadata.clone().unwrap_or_default(), object_headers!(i))
        } else {
            let mut m = head.metadata.clone();
            crate::sse::strip_reserved(&mut m);
            (m.unwrap_or_default(), object_headers!(head))
        };
        // What the request sets wins over what the object had, under either
        // directive (as S3 does for these two).
        if let Some(class) = &i.storage_class {
            headers.storage_class = Some(class.as_str().to_owned());
        }
        if i.website_redirect_location.is_some() {
            headers.website_redirect_location = i.website_redirect_location.clone();
        }
        new.write_to(&mut metadata).map_err(record_error)?;
        let etag = head.e_tag.clone().ok_or_else(|| s3_error!(InternalError, "upstream returned no ETag"))?;
        let copied = self
            .upstream
            .copy_object(sub_request(&req, self_copy(&bucket, &key, metadata, &headers, etag.clone())))
            .await?
            .output;
        let stored_etag = copied.copy_object_result.as_ref().and_then(|r| r.e_tag.clone());
        let visible = Self::visible_etag(&new, Some(&oek), stored_etag.clone())?;
        // Stores keep the ETag through a copy onto itself: the entry of the
        // object's old mode would stay (an SSE-S3 MD5 listed for an object
        // now SSE-KMS). Replaced here (under the old ETag if the store did
        // not say); other replicas' entries expire.
        let md5 = (new.mode == SseMode::S3 && new.sealed_etag.is_some()).then(|| visible.clone()).flatten();
        let key_id = md5.as_ref().and(new.kms.as_ref()).map(|k| k.key_id.to_string());
        self.listed.remember(
            &bucket,
            &key,
            stored_etag.as_ref().or(Some(&etag)),
            Listed { plain: Some(new.plain_size), etag: md5, key_id, ..Default::default() },
        );
        let mut out = CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: visible,
                last_modified: copied.copy_object_result.and_then(|r| r.last_modified),
                ..Default::default()
            }),
            version_id: copied.version_id,
            ..Default::default()
        };
        apply_echo!(all out, sealed.echo);
        Ok(S3Response::new(out))
    }
}
