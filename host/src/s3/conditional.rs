//! Preconditions against the ETag the client sees, which for SSE-S3 is the
//! plaintext MD5 (sealed in the record), not the store's: GET/HEAD
//! conditions are evaluated by the gateway; a write's `If-Match` is checked
//! against the visible ETag and handed to the store as the stored ETag, so
//! the store's compare-and-set still decides atomically.

use s3s::dto::{DeleteObjectInput, DeleteObjectOutput, ETag, ETagCondition, HeadObjectInput, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::{Gateway, principal, sub_request};

/// The four conditional headers of a read.
#[derive(Debug, Default, Clone)]
pub(super) struct Preconditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

fn matches(cond: &ETagCondition, etag: Option<&ETag>, weak: bool) -> bool {
    match (cond, etag) {
        (ETagCondition::Any, _) => true,
        (ETagCondition::ETag(want), Some(have)) => {
            if weak {
                have.weak_cmp(want)
            } else {
                have.strong_cmp(want)
            }
        }
        (ETagCondition::ETag(_), None) => false,
    }
}

impl Preconditions {
    pub(super) fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    /// S3 precedence (RFC 9110 §13.2.2): If-Match, else If-Unmodified-Since →
    /// 412; then If-None-Match, else If-Modified-Since → 304.
    pub(super) fn check(&self, etag: Option<&ETag>, last_modified: Option<&Timestamp>) -> Result<(), S3Error> {
        if let Some(c) = &self.if_match {
            if !matches(c, etag, false) {
                return Err(precondition_failed());
            }
        } else if let (Some(since), Some(lm)) = (&self.if_unmodified_since, last_modified)
            && lm > since
        {
            return Err(precondition_failed());
        }
        if let Some(c) = &self.if_none_match {
            if matches(c, etag, true) {
                return Err(S3Error::new(S3ErrorCode::NotModified));
            }
        } else if let (Some(since), Some(lm)) = (&self.if_modified_since, last_modified)
            && lm <= since
        {
            return Err(S3Error::new(S3ErrorCode::NotModified));
        }
        Ok(())
    }
}

fn precondition_failed() -> S3Error {
    s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
}

/// An object as the client sees it.
struct Seen {
    /// The store's ETag of it.
    stored: Option<ETag>,
    /// The ETag the client is shown (SSE-S3: the plaintext MD5).
    visible: Option<ETag>,
    /// The size the client is shown (plaintext).
    size: Option<i64>,
    /// Whether `visible` differs in kind from `stored` (a sealed MD5).
    sealed_md5: bool,
}

impl Gateway {
    /// HEAD `bucket/key` and what the client sees of it (an SSE-S3 MD5
    /// opens the object key); `None` when the store has no such object.
    async fn seen<T>(&self, req: &S3Request<T>, bucket: &str, key: &str, version_id: Option<String>) -> S3Result<Option<Seen>> {
        let head_in =
            HeadObjectInput::builder().bucket(bucket.to_owned()).key(key.to_owned()).version_id(version_id).build().expect("set");
        let Ok(head) = self.upstream.head_object(sub_request(req, head_in)).await.map(|h| h.output) else { return Ok(None) };
        let Some(rec) = self.stored_record(bucket, head.metadata.as_ref()).await? else {
            return Ok(Some(Seen {
                visible: head.e_tag.clone(),
                stored: head.e_tag,
                size: head.content_length,
                sealed_md5: false,
            }));
        };
        let oek = match rec.sealed_etag {
            Some(_) => Some(self.open_object_key(&rec, None, bucket, key, principal(req).as_deref()).await?),
            None => None,
        };
        let visible = Self::visible_etag(&rec, oek.as_ref(), head.e_tag.clone())?;
        Ok(Some(Seen { visible, stored: head.e_tag, size: Some(rec.plain_size as i64), sealed_md5: oek.is_some() }))
    }

    /// A write's `If-Match` in the store's terms. Only an object whose
    /// visible ETag is not the store's (SSE-S3, single PUT) needs it: its
    /// visible ETag is compared here, and the store gets its own ETag of
    /// that same object, so a write in between still fails there.
    pub(super) async fn upstream_if_match<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        cond: ETagCondition,
    ) -> S3Result<ETagCondition> {
        let ETagCondition::ETag(wanted) = &cond else { return Ok(cond) };
        // No object, or one whose ETag the store knows: the store answers.
        let Some(seen) = self.seen(req, bucket, key, None).await?.filter(|s| s.sealed_md5) else { return Ok(cond) };
        match (seen.visible, seen.stored) {
            (Some(v), Some(stored)) if v.strong_cmp(wanted) => Ok(ETagCondition::ETag(stored)),
            _ => Err(precondition_failed()),
        }
    }

    /// DeleteObject's `If-Match` and `x-amz-if-match-size` are the client's
    /// view: the visible ETag (SSE-S3: the plaintext MD5) and the plaintext
    /// size, which the store knows neither of. They are checked here, and
    /// the store gets its own ETag of that object, so a write in between
    /// still fails there.
    pub(crate) async fn delete_object_checked(
        &self,
        mut req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let wanted_etag = match &req.input.if_match {
            Some(ETagCondition::ETag(e)) => Some(e.clone()),
            _ => None,
        };
        let wanted_size = req.input.if_match_size;
        if wanted_etag.is_none() && wanted_size.is_none() {
            return self.upstream.delete_object(req).await;
        }
        let (bucket, key, version) = (req.input.bucket.clone(), req.input.key.clone(), req.input.version_id.clone());
        // No object: the store answers the conditions as it does.
        let Some(seen) = self.seen(&req, &bucket, &key, version).await? else { return self.upstream.delete_object(req).await };
        let etag_holds = wanted_etag.as_ref().is_none_or(|w| seen.visible.as_ref().is_some_and(|v| v.strong_cmp(w)));
        let size_holds = wanted_size.is_none_or(|w| seen.size == Some(w));
        let (true, true, Some(stored)) = (etag_holds, size_holds, seen.stored) else {
            return Err(precondition_failed());
        };
        req.input.if_match = Some(ETagCondition::ETag(stored));
        req.input.if_match_size = None;
        self.upstream.delete_object(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> ETag {
        ETag::Strong(s.into())
    }

    #[test]
    fn precedence_follows_s3() {
        let e = tag("abc");
        let p = Preconditions { if_match: Some(ETagCondition::ETag(tag("abc"))), ..Default::default() };
        assert!(p.check(Some(&e), None).is_ok());
        let p = Preconditions { if_match: Some(ETagCondition::ETag(tag("zzz"))), ..Default::default() };
        assert_eq!(p.check(Some(&e), None).unwrap_err().code(), &S3ErrorCode::PreconditionFailed);
        let p = Preconditions { if_none_match: Some(ETagCondition::ETag(tag("abc"))), ..Default::default() };
        assert_eq!(p.check(Some(&e), None).unwrap_err().code(), &S3ErrorCode::NotModified);
        let p = Preconditions { if_none_match: Some(ETagCondition::Any), ..Default::default() };
        assert!(p.check(Some(&e), None).is_err());
        assert!(Preconditions::default().check(None, None).is_ok());
    }
}
