//! What listings show of stored objects, cached: a listing carries no
//! metadata, so an object's plaintext size (and an SSE-S3 object's
//! plaintext MD5, its ETag) come from its record, read once.
//!
//! Entries are keyed by bucket, key, version (for ListObjectVersions) and
//! the upstream ETag, and stay right while the store lists that ETag,
//! except across a re-key in place (a copy onto itself keeps the store's
//! ETag): the gateway that re-keys replaces its entry, another replica's
//! expires after [`LISTED_TTL`]. Writes replace entries; lookups only fill
//! a slot that is empty or incomplete, and only with a record whose ETag
//! is the slot's, so a lookup that read a record before a write cannot put
//! it back after the write (unless the write's entry was already evicted).

use moka::ops::compute::Op;
use moka::sync::Cache;
use s3s::dto::ETag;

/// How long an entry lives (its object is looked up again after).
pub(super) const LISTED_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// What a listing shows of one stored object, where it differs from what
/// the store lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Listed {
    /// The plaintext size; `None`: not encrypted (the stored size is right).
    pub(super) plain: Option<u64>,
    /// The ETag clients see, when it is not the store's: an SSE-S3
    /// object's plaintext MD5.
    pub(super) etag: Option<ETag>,
    /// For an SSE-S3 object with an MD5: its KMS key, for the read policy.
    pub(super) key_id: Option<String>,
    /// The object has an MD5 this entry does not hold: the signer that
    /// looked it up was refused it, or its key could not be opened.
    pub(super) md5_unread: bool,
}

impl Listed {
    /// Does a signer need the read policy's leave to be shown this entry?
    pub(super) fn has_md5(&self) -> bool {
        self.etag.is_some() || self.md5_unread
    }

    /// This entry as shown to a signer refused the MD5.
    pub(super) fn without_md5(self) -> Self {
        Self { etag: None, ..self }
    }
}

/// Where an object's entry lives: bucket, key, version, upstream ETag.
pub(super) struct Slot(CacheKey);

type CacheKey = (String, String, Option<String>, String);

impl Slot {
    pub(super) fn new(bucket: &str, key: &str, version: Option<&str>, upstream_etag: &str) -> Self {
        Self((bucket.to_owned(), key.to_owned(), version.map(str::to_owned), upstream_etag.to_owned()))
    }

    /// The upstream ETag the object was listed with (empty: none listed).
    pub(super) fn etag(&self) -> &str {
        &self.0.3
    }
}

/// The bounded cache of [`Listed`] entries.
pub(super) struct ListingCache(Cache<CacheKey, Listed>);

impl ListingCache {
    pub(super) fn new(capacity: u64) -> Self {
        Self(Cache::builder().max_capacity(capacity).time_to_live(LISTED_TTL).build())
    }

    /// What a write (or re-key) left: replaces the current object's entry.
    /// Through the entry API, so that it is ordered with [`Self::offer`]
    /// (a plain insert is not).
    pub(super) fn remember(&self, bucket: &str, key: &str, upstream_etag: Option<&ETag>, listed: Listed) {
        if let Some(e) = upstream_etag {
            self.0.entry(Slot::new(bucket, key, None, e.value()).0).and_compute_with(|_| Op::Put(listed));
        }
    }

    /// What a lookup read: kept unless a complete entry is there already
    /// (then left as it is, its age included).
    pub(super) fn offer(&self, slot: &Slot, listed: Listed) {
        self.0.entry(slot.0.clone()).and_compute_with(|old| match old {
            Some(old) if !old.value().md5_unread => Op::Nop,
            _ => Op::Put(listed),
        });
    }

    pub(super) fn get(&self, slot: &Slot) -> Option<Listed> {
        self.0.get(&slot.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(n: u64) -> Listed {
        Listed { plain: Some(n), ..Default::default() }
    }

    #[test]
    fn writes_replace_and_lookups_only_fill() {
        let c = ListingCache::new(100);
        let etag = ETag::Strong("e".into());
        let slot = || Slot::new("b", "k", None, "e");
        c.offer(&slot(), sized(1));
        assert_eq!(c.get(&slot()), Some(sized(1)));
        // A lookup that read the record before a write does not undo it.
        c.remember("b", "k", Some(&etag), sized(2));
        c.offer(&slot(), sized(1));
        assert_eq!(c.get(&slot()), Some(sized(2)));
        // An incomplete entry gives way to a lookup that read the MD5.
        let unread = Listed { md5_unread: true, ..sized(3) };
        c.remember("b", "k", Some(&etag), unread.clone());
        let read = Listed { etag: Some(ETag::Strong("md5".into())), ..sized(3) };
        c.offer(&slot(), read.clone());
        assert_eq!(c.get(&slot()), Some(read.clone()));
        assert!(read.has_md5() && unread.has_md5() && !sized(1).has_md5());
        assert_eq!(read.without_md5(), sized(3));
        // Versions have slots of their own.
        assert_eq!(c.get(&Slot::new("b", "k", Some("v1"), "e")), None);
    }
}
