//! Format v1 layout: segment nonces and AAD, sizes, and range mapping.
//!
//! A part's plaintext is cut into segments of `segment_size` bytes (the last
//! one may be shorter, and an empty part still has one empty segment). Each
//! segment is sealed with AES-256-GCM under the part key:
//!
//! ```text
//! nonce = be32(part) ‖ be64(index | final << 63)
//! aad   = 0x01 ‖ be32(part) ‖ be64(index) ‖ final
//! ```
//!
//! so reordering, splicing, truncation at a segment boundary and appending
//! all fail authentication. Sizes are closed-form: `ct = pt + 16 · segments`.

use std::ops::Range;

use super::CryptoError;
use super::aead::{NONCE_LEN, TAG_LEN};

/// Version byte leading a segment's associated data. Segment sealing is
/// the same in formats 1 and 2 (v2 changed part keys and added the layout
/// tag), so this stays 1.
pub const SEGMENT_AAD_VERSION: u8 = 1;
/// Default plaintext segment size: 1 MiB.
pub const DEFAULT_SEGMENT_SIZE: u32 = 1 << 20;
/// Smallest allowed segment size (keeps the tag overhead under 0.4%).
pub const MIN_SEGMENT_SIZE: u32 = 4 << 10;
/// Largest allowed segment size (bounds per-stream buffering).
pub const MAX_SEGMENT_SIZE: u32 = 16 << 20;

const TAG: u64 = TAG_LEN as u64;

/// Per-object layout parameters recorded in the object's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatParams {
    segment_size: u32,
}

impl Default for FormatParams {
    fn default() -> Self {
        Self { segment_size: DEFAULT_SEGMENT_SIZE }
    }
}

/// Which ciphertext bytes to fetch, and which plaintext bytes to keep, for a
/// plaintext byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRange {
    /// First segment index to decrypt.
    pub first_segment: u64,
    /// Last segment index to decrypt (inclusive).
    pub last_segment: u64,
    /// Ciphertext byte range to fetch (end exclusive).
    pub ciphertext: Range<u64>,
    /// Plaintext bytes to drop from the start of the first segment.
    pub skip: u64,
    /// Plaintext bytes to return.
    pub take: u64,
}

impl FormatParams {
    /// Validate a segment size.
    pub fn new(segment_size: u32) -> Result<Self, CryptoError> {
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(CryptoError::InvalidParams("segment size out of range"));
        }
        Ok(Self { segment_size })
    }

    pub fn segment_size(&self) -> u32 {
        self.segment_size
    }

    fn seg(&self) -> u64 {
        u64::from(self.segment_size)
    }

    /// Number of segments for a plaintext of `plain_len` bytes (at least 1).
    pub fn segment_count(&self, plain_len: u64) -> u64 {
        plain_len.div_ceil(self.seg()).max(1)
    }

    /// Exact ciphertext length of a part with `plain_len` plaintext bytes.
    pub fn ciphertext_len(&self, plain_len: u64) -> u64 {
        plain_len + TAG * self.segment_count(plain_len)
    }

    /// Inverse of [`ciphertext_len`](Self::ciphertext_len); rejects lengths no
    /// plaintext maps to.
    pub fn plaintext_len(&self, ct_len: u64) -> Result<u64, CryptoError> {
        let full = self.seg() + TAG;
        let (n, rem) = (ct_len / full, ct_len % full);
        match (n, rem) {
            (0, r) if r >= TAG => Ok(r - TAG),
            (n, 0) if n > 0 => Ok(n * self.seg()),
            (n, r) if r > TAG => Ok(n * self.seg() + r - TAG),
            _ => Err(CryptoError::Length("not a valid v1 ciphertext length")),
        }
    }

    /// Ciphertext length of segment `index` of a part of `plain_len` bytes.
    pub fn sealed_segment_len(&self, plain_len: u64, index: u64) -> u64 {
        let last = self.segment_count(plain_len) - 1;
        if index < last { self.seg() + TAG } else { plain_len - last * self.seg() + TAG }
    }

    /// Map a non-empty plaintext range inside `0..plain_len` onto segments.
    pub fn map_range(&self, plain_len: u64, range: Range<u64>) -> Result<SegmentRange, CryptoError> {
        if range.start >= range.end || range.end > plain_len {
            return Err(CryptoError::InvalidParams("range outside the object"));
        }
        let first_segment = range.start / self.seg();
        let last_segment = (range.end - 1) / self.seg();
        let ct_start = first_segment * (self.seg() + TAG);
        let ct_end = (ct_start + (last_segment - first_segment + 1) * (self.seg() + TAG)).min(self.ciphertext_len(plain_len));
        Ok(SegmentRange {
            first_segment,
            last_segment,
            ciphertext: ct_start..ct_end,
            skip: range.start - first_segment * self.seg(),
            take: range.end - range.start,
        })
    }
}

/// GCM nonce of a segment. Unique per part key because (index, final) is.
pub fn segment_nonce(part: u32, index: u64, last: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..4].copy_from_slice(&part.to_be_bytes());
    n[4..].copy_from_slice(&(index | (u64::from(last) << 63)).to_be_bytes());
    n
}

/// Associated data of a segment.
pub fn segment_aad(part: u32, index: u64, last: bool) -> [u8; 14] {
    let mut a = [0u8; 14];
    a[0] = SEGMENT_AAD_VERSION;
    a[1..5].copy_from_slice(&part.to_be_bytes());
    a[5..13].copy_from_slice(&index.to_be_bytes());
    a[13] = u8::from(last);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(seg: u32) -> FormatParams {
        FormatParams::new(seg).unwrap()
    }

    #[test]
    fn sizes_at_the_edges() {
        let f = p(4096);
        assert_eq!(f.ciphertext_len(0), 16);
        assert_eq!(f.ciphertext_len(1), 17);
        assert_eq!(f.ciphertext_len(4095), 4111);
        assert_eq!(f.ciphertext_len(4096), 4112);
        assert_eq!(f.ciphertext_len(4097), 4096 + 16 + 1 + 16);
        assert!(f.plaintext_len(0).is_err());
        assert!(f.plaintext_len(15).is_err());
        // A trailing empty segment after full ones is never produced.
        assert!(f.plaintext_len(4112 + 16).is_err());
        assert!(FormatParams::new(100).is_err());
    }

    #[test]
    fn nonces_differ_by_final_flag_and_index() {
        assert_ne!(segment_nonce(0, 1, false), segment_nonce(0, 1, true));
        assert_ne!(segment_nonce(0, 1, false), segment_nonce(0, 2, false));
        assert_ne!(segment_nonce(1, 1, false), segment_nonce(2, 1, false));
    }

    proptest! {
        #[test]
        fn length_roundtrip(seg in 4096u32..70000, len in 0u64..10_000_000) {
            let f = p(seg);
            prop_assert_eq!(f.plaintext_len(f.ciphertext_len(len)).unwrap(), len);
            let total: u64 = (0..f.segment_count(len)).map(|i| f.sealed_segment_len(len, i)).sum();
            prop_assert_eq!(total, f.ciphertext_len(len));
        }

        #[test]
        fn range_mapping_covers_exactly(seg in 4096u32..20000, len in 1u64..200_000, a in 0u64..200_000, n in 1u64..100_000) {
            let f = p(seg);
            let start = a % len;
            let end = (start + n).min(len);
            let m = f.map_range(len, start..end).unwrap();
            let s = u64::from(seg);
            // The fetched ciphertext covers whole segments first..=last.
            prop_assert_eq!(m.ciphertext.start, m.first_segment * (s + 16));
            let expect: u64 = (m.first_segment..=m.last_segment).map(|i| f.sealed_segment_len(len, i)).sum();
            prop_assert_eq!(m.ciphertext.end - m.ciphertext.start, expect);
            prop_assert_eq!(m.first_segment * s + m.skip, start);
            prop_assert_eq!(m.take, end - start);
            prop_assert!(m.skip + m.take <= (m.last_segment - m.first_segment + 1) * s);
        }
    }
}
