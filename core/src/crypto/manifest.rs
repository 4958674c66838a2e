//! Format v2: the object's layout, authenticated.
//!
//! In v1 the part table and plaintext size are plain metadata: a store
//! operator who drops a whole part and edits the table gets a shorter
//! object that still decrypts. v2 binds everything that shapes the object
//! (format version, mode, bucket, key, segment size, plaintext size, and
//! each part's number, upload attempt and size) under an HMAC-SHA256 with
//! a key derived from the object key. The tag is checked before the first
//! byte of any answer, so dropping, duplicating, reordering or swapping
//! parts, or substituting an earlier attempt of a part, fails closed.
//!
//! ```text
//! tag = HMAC-SHA256(layout key,
//!         "kms-gateway/v2/layout" ‖ lp(mode) ‖ lp(bucket) ‖ lp(key)
//!         ‖ be32(segment size) ‖ be64(plaintext size) ‖ u8(multipart)
//!         ‖ be32(parts) ‖ { be32(number) ‖ be32(attempt) ‖ be64(size) }*)
//! lp(s) = be32(len(s)) ‖ s
//! ```

use aws_lc_rs::hmac;

use super::CryptoError;
use super::keys::LayoutKey;

/// One part of a multipart object: its number, the upload attempt whose
/// bytes the object holds (each UploadPart call of a number is a new
/// attempt, with its own key), and its plaintext size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartEntry {
    pub number: u32,
    pub attempt: u32,
    pub plain_len: u64,
}

/// What the layout tag covers.
#[derive(Debug, Clone, Copy)]
pub struct LayoutBinding<'a> {
    pub mode: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub segment_size: u32,
    pub plain_size: u64,
    /// `None` for a single PUT.
    pub parts: Option<&'a [PartEntry]>,
}

/// Length of a layout tag.
pub const TAG_LEN: usize = 32;

impl LayoutBinding<'_> {
    fn message(&self) -> Vec<u8> {
        let n = self.parts.map_or(0, <[PartEntry]>::len);
        let mut m = Vec::with_capacity(64 + self.bucket.len() + self.key.len() + 16 * n);
        m.extend_from_slice(b"kms-gateway/v2/layout");
        for field in [self.mode, self.bucket, self.key] {
            m.extend_from_slice(&(field.len() as u32).to_be_bytes());
            m.extend_from_slice(field.as_bytes());
        }
        m.extend_from_slice(&self.segment_size.to_be_bytes());
        m.extend_from_slice(&self.plain_size.to_be_bytes());
        m.push(u8::from(self.parts.is_some()));
        m.extend_from_slice(&(n as u32).to_be_bytes());
        for p in self.parts.unwrap_or_default() {
            m.extend_from_slice(&p.number.to_be_bytes());
            m.extend_from_slice(&p.attempt.to_be_bytes());
            m.extend_from_slice(&p.plain_len.to_be_bytes());
        }
        m
    }

    /// The tag of this layout.
    pub fn tag(&self, key: &LayoutKey) -> [u8; TAG_LEN] {
        let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
        let t = hmac::sign(&k, &self.message());
        t.as_ref().try_into().expect("HMAC-SHA256 tags are 32 bytes")
    }

    /// Check a stored tag in constant time.
    pub fn verify(&self, key: &LayoutKey, tag: &[u8]) -> Result<(), CryptoError> {
        let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
        hmac::verify(&k, &self.message(), tag).map_err(|_| CryptoError::Layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ObjectKey;

    fn parts() -> Vec<PartEntry> {
        vec![
            PartEntry { number: 1, attempt: 0, plain_len: 5 << 20 },
            PartEntry { number: 2, attempt: 1, plain_len: 5 << 20 },
            PartEntry { number: 3, attempt: 0, plain_len: 7 },
        ]
    }

    fn binding(parts: &[PartEntry]) -> LayoutBinding<'_> {
        LayoutBinding {
            mode: "SSE-S3",
            bucket: "b",
            key: "k",
            segment_size: 1 << 20,
            plain_size: parts.iter().map(|p| p.plain_len).sum(),
            parts: Some(parts),
        }
    }

    #[test]
    fn every_field_and_every_part_manipulation_changes_the_tag() {
        let key = ObjectKey::from_bytes([9; 32]).layout_key();
        let ps = parts();
        let tag = binding(&ps).tag(&key);
        binding(&ps).verify(&key, &tag).unwrap();
        let mut variants: Vec<Vec<PartEntry>> = vec![
            vec![ps[0], ps[2]],               // a part dropped
            vec![ps[0], ps[1], ps[1], ps[2]], // duplicated
            vec![ps[1], ps[0], ps[2]],        // reordered
        ];
        let mut stale = ps.clone();
        stale[1].attempt = 0; // an earlier attempt of part 2
        variants.push(stale);
        let mut renumbered = ps.clone();
        renumbered[2].number = 4;
        variants.push(renumbered);
        for v in &variants {
            let mut b = binding(v);
            b.plain_size = binding(&ps).plain_size;
            assert!(b.verify(&key, &tag).is_err(), "{v:?}");
        }
        let b = binding(&ps);
        for changed in [
            LayoutBinding { mode: "SSE-KMS", ..b },
            LayoutBinding { bucket: "c", ..b },
            LayoutBinding { key: "k2", ..b },
            LayoutBinding { segment_size: 4096, ..b },
            LayoutBinding { plain_size: b.plain_size - 1, ..b },
            LayoutBinding { parts: None, ..b },
        ] {
            assert!(changed.verify(&key, &tag).is_err());
        }
        assert!(b.verify(&ObjectKey::from_bytes([8; 32]).layout_key(), &tag).is_err());
        assert!(b.verify(&key, &tag[..31]).is_err());
    }

    #[test]
    fn fields_are_length_prefixed() {
        let key = ObjectKey::from_bytes([1; 32]).layout_key();
        let a = LayoutBinding { mode: "m", bucket: "ab", key: "c", segment_size: 1, plain_size: 0, parts: None };
        let b = LayoutBinding { bucket: "a", key: "bc", ..a };
        assert_ne!(a.tag(&key), b.tag(&key));
    }
}
