//! Listings and object attributes in plaintext terms: `Size` and `ETag` in
//! ListObjects (v1, v2) and ListObjectVersions, and GetObjectAttributes;
//! ListBuckets without the reserved bucket of cluster state.
//!
//! A listing carries no metadata: what a listed object shows (its
//! plaintext size; for SSE-S3, the plaintext MD5 as its ETag, as HEAD
//! answers) comes from the cache of `listed.rs`, and on a miss from one
//! HEAD of that object (up to 16 at a time), plus the opening of its key
//! when its ETag is sealed. The MD5 is shown only to a signer the bound
//! read policy would let HEAD the object, asked at every listing (the
//! cache is shared by every signer), before any key is opened.
//!
//! A lookup that fails (an object deleted between the listing and its HEAD,
//! a damaged record, a store error) never fails the page: the entry keeps
//! what the store listed, and the failure is logged. A key that cannot be
//! opened (the KMS down) costs the SSE-S3 ETag, and a HEAD and a key
//! opening per such object at each listing until it opens.

use futures::{StreamExt, stream};
use s3s::dto::{
    ETag, GetObjectAttributesInput, GetObjectAttributesOutput, GetObjectAttributesParts, HeadObjectInput, ListBucketsInput,
    ListBucketsOutput, ListObjectVersionsInput, ListObjectVersionsOutput, ListObjectsInput, ListObjectsOutput,
    ListObjectsV2Input, ListObjectsV2Output, Object, ObjectPart,
};
use s3s::{S3Request, S3Response, S3Result};

use super::errors::{crypto_error, record_error};
use super::keys::take_customer;
use super::listed::{Listed, Slot};
use super::{Gateway, principal, sub_request};
use crate::decide::ReadIntent;
use crate::policy::types::Mode;
use crate::sse::{ObjectCrypto, SseMode};

const PARALLEL_HEADS: usize = 16;

impl Gateway {
    pub(super) async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let mut resp = self.upstream.list_buckets(req).await?;
        if let (Some(reserved), Some(buckets)) = (&self.state_bucket, resp.output.buckets.as_mut()) {
            buckets.retain(|b| !b.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(reserved)));
        }
        Ok(resp)
    }

    /// What each `(key, upstream etag, version)` entry shows this signer;
    /// the default keeps what the store listed (not encrypted, or not known).
    async fn listed_as<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        entries: Vec<(String, String, Option<String>)>,
    ) -> Vec<Listed> {
        let lookups = entries.into_iter().map(|(key, etag, version)| async move {
            match self.shown(req, bucket, &key, version, &etag).await {
                Ok(listed) => listed,
                Err(e) if e.code() == &s3s::S3ErrorCode::NoSuchKey => {
                    tracing::debug!(bucket, key, "listed object gone before its HEAD");
                    Listed::default()
                }
                Err(e) => {
                    tracing::warn!(bucket, key, error = %e, "listing keeps what the store lists of an object whose record could not be read");
                    Listed::default()
                }
            }
        });
        stream::iter(lookups).buffered(PARALLEL_HEADS).collect().await
    }

    /// One object as shown to this signer: from the cache, else looked up.
    /// The read policy is asked at most once, and only for an object with
    /// an MD5.
    async fn shown<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        version: Option<String>,
        etag: &str,
    ) -> S3Result<Listed> {
        let slot = Slot::new(bucket, key, version.as_deref(), etag);
        let Some(hit) = self.listed.get(&slot) else {
            return self.look_up(req, bucket, key, version, slot, None).await;
        };
        if !hit.has_md5() {
            return Ok(hit);
        }
        if !self.may_see_md5(req, bucket, key, hit.key_id.as_deref()).await {
            return Ok(hit.without_md5());
        }
        if hit.md5_unread {
            // Looked up by a refused signer, or with the KMS down: read it
            // now, else show what is known.
            let allowed_for = Some(hit.key_id.clone());
            return match self.look_up(req, bucket, key, version, slot, allowed_for).await {
                Ok(listed) => Ok(listed),
                Err(e) => {
                    tracing::debug!(bucket, key, error = %e, "listing shows the cached size");
                    Ok(hit.without_md5())
                }
            };
        }
        Ok(hit)
    }

    /// What one object shows this signer, from its record (the entry
    /// offered to the cache): its plaintext size and, for an SSE-S3 object
    /// with a sealed ETag, that ETag (its key opened) if the signer may see
    /// it (`allowed_for`: the KMS key the policy already allowed it, if
    /// asked).
    async fn look_up<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        version: Option<String>,
        slot: Slot,
        allowed_for: Option<Option<String>>,
    ) -> S3Result<Listed> {
        let head_in =
            HeadObjectInput::builder().bucket(bucket.to_owned()).key(key.to_owned()).version_id(version).build().expect("set");
        let head = self.upstream.head_object(sub_request(req, head_in)).await?.output;
        // Cached only under the ETag it was read with: a store that lists
        // none, or an object replaced between the listing and the HEAD (a
        // "null" version answered by the latest), is looked up each time.
        let offer = |listed: &Listed| {
            if !slot.etag().is_empty() && head.e_tag.as_ref().is_some_and(|e| e.value() == slot.etag()) {
                self.listed.offer(&slot, listed.clone());
            }
        };
        let Some(rec) = ObjectCrypto::read_from(head.metadata.as_ref()).map_err(record_error)? else {
            offer(&Listed::default());
            return Ok(Listed::default());
        };
        // A single-PUT SSE-S3 object whose ETag its writer is about to
        // attach is listed with its size only; the writer's entry, once
        // the ETag is attached, replaces this one.
        let listed = Listed { plain: Some(rec.plain_size), ..Default::default() };
        if rec.mode != SseMode::S3 || rec.sealed_etag.is_none() {
            offer(&listed);
            return Ok(listed);
        }
        let key_id = rec.kms.as_ref().map(|k| k.key_id.to_string());
        let unread = Listed { key_id: key_id.clone(), md5_unread: true, ..listed };
        // Asked first, so that a refused signer costs no key use; again if
        // the object's key is not the one the policy was asked about.
        let allowed = match allowed_for {
            Some(asked) if asked == key_id => true,
            _ => self.may_see_md5(req, bucket, key, key_id.as_deref()).await,
        };
        if !allowed {
            offer(&unread);
            return Ok(unread.without_md5());
        }
        match self.sealed_etag(req, &rec, bucket, key).await {
            Ok(etag) => {
                let listed = Listed { etag, md5_unread: false, ..unread };
                offer(&listed);
                Ok(listed)
            }
            Err(e) => {
                // A KMS outage was logged where it was met; anything else
                // (a tag that does not match) is worth a warning here.
                if e.status_code() != Some(hyper::StatusCode::SERVICE_UNAVAILABLE) {
                    tracing::warn!(bucket, key, error = %e, "listing shows the store's ETag of an SSE-S3 object whose ETag could not be opened");
                }
                offer(&unread);
                Ok(unread.without_md5())
            }
        }
    }

    /// An SSE-S3 object's plaintext MD5, from its record (its key opened).
    async fn sealed_etag<T>(&self, req: &S3Request<T>, rec: &ObjectCrypto, bucket: &str, key: &str) -> S3Result<Option<ETag>> {
        let oek = self.open_object_key(rec, None, bucket, key, principal(req).as_deref()).await?;
        rec.verify_layout(&oek, bucket, key).map_err(crypto_error)?;
        Self::visible_etag(rec, Some(&oek), None)
    }

    /// May this signer see an SSE-S3 object's plaintext MD5? Only if the
    /// bound read policy would let it HEAD the object (a listing reveals
    /// what a HEAD does).
    async fn may_see_md5<T>(&self, req: &S3Request<T>, bucket: &str, key: &str, key_id: Option<&str>) -> bool {
        let principal = principal(req);
        let read = ReadIntent {
            op: "HeadObject",
            bucket,
            key,
            principal: principal.as_deref(),
            source_ip: None,
            mode: Mode::from(Some(SseMode::S3)),
            key_id,
        };
        match self.decider.authorize_read(&read).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(bucket, key, error = %e, "listing shows the store's ETag: the read policy refuses this signer");
                false
            }
        }
    }

    /// Show listed objects in plaintext terms.
    async fn fix_listed<T>(&self, ctx: &S3Request<T>, bucket: &str, objs: &mut [Object]) {
        let entries = objs
            .iter()
            .map(|o| {
                (o.key.clone().unwrap_or_default(), o.e_tag.as_ref().map(|e| e.value().to_owned()).unwrap_or_default(), None)
            })
            .collect();
        for (o, listed) in objs.iter_mut().zip(self.listed_as(ctx, bucket, entries).await) {
            if let Some(s) = listed.plain {
                o.size = Some(s as i64);
            }
            if listed.etag.is_some() {
                o.e_tag = listed.etag;
            }
        }
    }

    pub(crate) async fn list_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let (bucket, ctx) = (req.input.bucket.clone(), sub_request(&req, ()));
        let mut resp = self.upstream.list_objects_v2(req).await?;
        self.fix_listed(&ctx, &bucket, resp.output.contents.get_or_insert_with(Vec::new)).await;
        Ok(resp)
    }

    pub(crate) async fn list_v1(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let (bucket, ctx) = (req.input.bucket.clone(), sub_request(&req, ()));
        let mut resp = self.upstream.list_objects(req).await?;
        self.fix_listed(&ctx, &bucket, resp.output.contents.get_or_insert_with(Vec::new)).await;
        Ok(resp)
    }

    pub(crate) async fn list_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let bucket = req.input.bucket.clone();
        let ctx = sub_request(&req, ());
        let mut resp = self.upstream.list_object_versions(req).await?;
        let vers = resp.output.versions.get_or_insert_with(Vec::new);
        let entries = vers
            .iter()
            .map(|v| {
                (
                    v.key.clone().unwrap_or_default(),
                    v.e_tag.as_ref().map(|e| e.value().to_owned()).unwrap_or_default(),
                    v.version_id.clone().filter(|id| id != "null"),
                )
            })
            .collect();
        for (v, listed) in vers.iter_mut().zip(self.listed_as(&ctx, &bucket, entries).await) {
            if let Some(s) = listed.plain {
                v.size = Some(s as i64);
            }
            if listed.etag.is_some() {
                v.e_tag = listed.etag;
            }
        }
        Ok(resp)
    }

    pub(crate) async fn object_attributes(
        &self,
        mut req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let i = &mut req.input;
        let customer = take_customer!(i)?;
        let (bucket, key) = (i.bucket.clone(), i.key.clone());
        self.require_tls_for_sse_c(&req.extensions, customer.is_some())?;
        let head_in = HeadObjectInput::builder()
            .bucket(bucket.clone())
            .key(key.clone())
            .version_id(i.version_id.clone())
            .build()
            .expect("set");
        let head = self.upstream.head_object(sub_request(&req, head_in)).await?.output;
        let rec = self.stored_record(&bucket, head.metadata.as_ref()).await?;
        self.check_read_headers(rec.as_ref(), customer.as_ref())?;
        let Some(rec) = rec else { return self.upstream.get_object_attributes(req).await };
        // Opening the key checks the layout tag before any of it is reported.
        let oek =
            self.open_for_read("GetObjectAttributes", &rec, customer.as_ref(), &bucket, &key, principal(&req).as_deref()).await?;
        // Some clients send the list as one comma-separated value.
        let want = |name: &str| req.input.object_attributes.iter().flat_map(|a| a.as_str().split(',')).any(|a| a.trim() == name);
        let mut out = GetObjectAttributesOutput {
            last_modified: head.last_modified.clone(),
            version_id: head.version_id.clone(),
            ..Default::default()
        };
        if want("ETag") {
            // AWS returns the ETag here without quotes; s3s renders the value.
            out.e_tag = Self::visible_etag(&rec, Some(&oek), head.e_tag.clone())?;
        }
        if want("ObjectSize") {
            out.object_size = Some(rec.plain_size as i64);
        }
        if want("StorageClass") {
            out.storage_class = head.storage_class.clone();
        }
        if want("ObjectParts")
            && let Some(parts) = &rec.multipart
        {
            let marker = i64::from(req.input.part_number_marker.unwrap_or(0));
            let max = req.input.max_parts.unwrap_or(1000).clamp(1, 1000) as usize;
            let after: Vec<_> = parts.iter().filter(|e| i64::from(e.number) > marker).collect();
            let page: Vec<ObjectPart> = after
                .iter()
                .take(max)
                .map(|e| ObjectPart { part_number: Some(e.number as i32), size: Some(e.plain_len as i64), ..Default::default() })
                .collect();
            out.object_parts = Some(GetObjectAttributesParts {
                total_parts_count: Some(parts.len() as i32),
                is_truncated: Some(after.len() > max),
                next_part_number_marker: page.last().and_then(|p| p.part_number),
                part_number_marker: req.input.part_number_marker,
                max_parts: Some(max as i32),
                parts: Some(page),
            });
        }
        Ok(S3Response::new(out))
    }
}

/// Is this request a GetObjectAttributes call (`GET /<bucket>/<key>?attributes`)?
pub(crate) fn is_get_object_attributes(method: &hyper::Method, uri: &hyper::Uri) -> bool {
    method == hyper::Method::GET
        && uri.query().is_some_and(|q| q.split('&').any(|p| p == "attributes" || p.starts_with("attributes=")))
}

/// AWS answers GetObjectAttributes with an unquoted `ETag` (unlike every
/// other operation); s3s always quotes it. The answer without the quotes,
/// or `None` when there is nothing to change.
pub(crate) fn unquote_attributes_etag(xml: &[u8]) -> Option<Vec<u8>> {
    const OPEN: &[u8] = b"<ETag>\"";
    const CLOSE: &[u8] = b"\"</ETag>";
    let start = xml.windows(OPEN.len()).position(|w| w == OPEN)?;
    let end = start + xml[start..].windows(CLOSE.len()).position(|w| w == CLOSE)?;
    let mut out = Vec::with_capacity(xml.len());
    out.extend_from_slice(&xml[..start + OPEN.len() - 1]);
    out.extend_from_slice(&xml[start + OPEN.len()..end]);
    out.extend_from_slice(&xml[end + 1..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_etag_loses_its_quotes_only() {
        let xml = b"<GetObjectAttributesResponse><ETag>\"abc-2\"</ETag><ObjectSize>5</ObjectSize></GetObjectAttributesResponse>";
        let out = unquote_attributes_etag(xml).unwrap();
        assert_eq!(
            out,
            b"<GetObjectAttributesResponse><ETag>abc-2</ETag><ObjectSize>5</ObjectSize></GetObjectAttributesResponse>"
        );
        assert!(unquote_attributes_etag(&out).is_none());
        assert!(is_get_object_attributes(&hyper::Method::GET, &"/b/k?attributes".parse().unwrap()));
        assert!(!is_get_object_attributes(&hyper::Method::GET, &"/b/k?acl".parse().unwrap()));
    }
}
