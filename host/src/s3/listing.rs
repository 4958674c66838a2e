//! Listings and object attributes in plaintext terms: `Size` in
//! ListObjects (v1, v2) and ListObjectVersions, and GetObjectAttributes;
//! ListBuckets without the reserved bucket of cluster state.
//!
//! A listing carries no metadata, so the plaintext size of a listed object
//! comes from a bounded cache keyed by (bucket, key, upstream ETag) — filled
//! by the gateway's own writes and by earlier lookups — and, on a miss, from
//! one HEAD of that object (up to 16 at a time).
//!
//! A lookup that fails (an object deleted between the listing and its HEAD,
//! a damaged record, a store error) never fails the page: the entry keeps
//! the size the store listed, and the failure is logged.

use futures::{StreamExt, stream};
use moka::sync::Cache;
use s3s::dto::Object;
use s3s::dto::{
    ETag, GetObjectAttributesInput, GetObjectAttributesOutput, GetObjectAttributesParts, HeadObjectInput, ListBucketsInput,
    ListBucketsOutput, ListObjectVersionsInput, ListObjectVersionsOutput, ListObjectsInput, ListObjectsOutput,
    ListObjectsV2Input, ListObjectsV2Output, ObjectPart,
};
use s3s::{S3Request, S3Response, S3Result};

use super::errors::record_error;
use super::keys::take_customer;
use super::{Gateway, principal, sub_request};
use crate::sse::ObjectCrypto;

/// Plaintext sizes of objects as listed: `None` = not encrypted.
pub struct SizeCache(Cache<(String, String, String), Option<u64>>);

impl SizeCache {
    pub fn new(capacity: u64) -> Self {
        Self(Cache::new(capacity))
    }

    pub fn remember(&self, bucket: &str, key: &str, upstream_etag: Option<&ETag>, plain: Option<u64>) {
        if let Some(e) = upstream_etag {
            self.0.insert((bucket.to_owned(), key.to_owned(), e.value().to_owned()), plain);
        }
    }

    fn lookup(&self, bucket: &str, key: &str, etag: &str) -> Option<Option<u64>> {
        self.0.get(&(bucket.to_owned(), key.to_owned(), etag.to_owned()))
    }
}

const PARALLEL_HEADS: usize = 16;

impl Gateway {
    pub(super) async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let mut resp = self.upstream.list_buckets(req).await?;
        if let (Some(reserved), Some(buckets)) = (&self.state_bucket, resp.output.buckets.as_mut()) {
            buckets.retain(|b| !b.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(reserved)));
        }
        Ok(resp)
    }

    /// Plaintext sizes for `(key, upstream etag, version)` entries; `None`
    /// keeps the listed size (not encrypted, or not known).
    async fn plaintext_sizes<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        entries: Vec<(String, String, Option<String>)>,
    ) -> Vec<Option<u64>> {
        let lookups = entries.into_iter().map(|(key, etag, version)| async move {
            if let Some(hit) = self.sizes.lookup(bucket, &key, &etag) {
                return hit;
            }
            match self.plaintext_size(req, bucket, &key, version).await {
                Ok(plain) => plain,
                Err(e) if e.code() == &s3s::S3ErrorCode::NoSuchKey => {
                    tracing::debug!(bucket, key, "listed object gone before its HEAD");
                    None
                }
                Err(e) => {
                    tracing::warn!(bucket, key, error = %e, "listing keeps the stored size of an object whose record could not be read");
                    None
                }
            }
        });
        stream::iter(lookups).buffered(PARALLEL_HEADS).collect().await
    }

    /// One object's plaintext size from its record (`None`: not encrypted).
    async fn plaintext_size<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        version: Option<String>,
    ) -> S3Result<Option<u64>> {
        let head_in =
            HeadObjectInput::builder().bucket(bucket.to_owned()).key(key.to_owned()).version_id(version).build().expect("set");
        let head = self.upstream.head_object(sub_request(req, head_in)).await?.output;
        let rec = ObjectCrypto::read_from(head.metadata.as_ref()).map_err(record_error)?;
        let plain = rec.map(|r| r.plain_size);
        self.sizes.remember(bucket, key, head.e_tag.as_ref(), plain);
        Ok(plain)
    }

    /// Replace listed ciphertext sizes by plaintext sizes.
    async fn fix_sizes<T>(&self, ctx: &S3Request<T>, bucket: &str, objs: &mut [Object]) {
        let entries = objs
            .iter()
            .map(|o| {
                (o.key.clone().unwrap_or_default(), o.e_tag.as_ref().map(|e| e.value().to_owned()).unwrap_or_default(), None)
            })
            .collect();
        let sizes = self.plaintext_sizes(ctx, bucket, entries).await;
        for (o, s) in objs.iter_mut().zip(sizes) {
            if let Some(s) = s {
                o.size = Some(s as i64);
            }
        }
    }

    pub(crate) async fn list_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let (bucket, ctx) = (req.input.bucket.clone(), sub_request(&req, ()));
        let mut resp = self.upstream.list_objects_v2(req).await?;
        self.fix_sizes(&ctx, &bucket, resp.output.contents.get_or_insert_with(Vec::new)).await;
        Ok(resp)
    }

    pub(crate) async fn list_v1(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let (bucket, ctx) = (req.input.bucket.clone(), sub_request(&req, ()));
        let mut resp = self.upstream.list_objects(req).await?;
        self.fix_sizes(&ctx, &bucket, resp.output.contents.get_or_insert_with(Vec::new)).await;
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
        let sizes = self.plaintext_sizes(&ctx, &bucket, entries).await;
        for (v, s) in vers.iter_mut().zip(sizes) {
            if let Some(s) = s {
                v.size = Some(s as i64);
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
