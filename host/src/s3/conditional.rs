//! GET/HEAD preconditions, evaluated by the gateway against the ETag and
//! Last-Modified the client sees (which differ from the upstream's for
//! encrypted objects, so the upstream cannot evaluate them).

use s3s::dto::{ETag, ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode, s3_error};

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
                return Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
            }
        } else if let (Some(since), Some(lm)) = (&self.if_unmodified_since, last_modified)
            && lm > since
        {
            return Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
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
