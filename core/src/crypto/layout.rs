//! Object layout: the sequence of parts (number, attempt, plaintext length) an
//! object is made of, and the mapping of a plaintext range onto one
//! contiguous ciphertext range plus a decrypt plan per part.
//!
//! A single PUT is one part numbered 0. Prefix sums make the mapping
//! O(log parts).

use std::ops::Range;

use super::CryptoError;
use super::format::FormatParams;
use super::manifest::PartEntry;

/// Parts of an object in storage order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    params: FormatParams,
    parts: Vec<PartEntry>,
    /// plain_start[i], ct_start[i] of part i; one extra entry = totals.
    plain_start: Vec<u64>,
    ct_start: Vec<u64>,
}

impl Layout {
    pub fn single(params: FormatParams, plain_len: u64) -> Self {
        Self::new(params, vec![PartEntry { number: 0, attempt: 0, plain_len }])
    }

    pub fn new(params: FormatParams, parts: Vec<PartEntry>) -> Self {
        let (mut p, mut c) = (vec![0u64], vec![0u64]);
        for e in &parts {
            p.push(p.last().expect("non-empty") + e.plain_len);
            c.push(c.last().expect("non-empty") + params.ciphertext_len(e.plain_len));
        }
        Self { params, parts, plain_start: p, ct_start: c }
    }

    pub fn params(&self) -> FormatParams {
        self.params
    }

    pub fn parts(&self) -> &[PartEntry] {
        &self.parts
    }

    pub fn plain_len(&self) -> u64 {
        *self.plain_start.last().expect("non-empty")
    }

    pub fn ciphertext_len(&self) -> u64 {
        *self.ct_start.last().expect("non-empty")
    }

    /// Plaintext and ciphertext byte ranges of the part at `index`.
    pub fn part_bounds(&self, index: usize) -> (Range<u64>, Range<u64>) {
        (self.plain_start[index]..self.plain_start[index + 1], self.ct_start[index]..self.ct_start[index + 1])
    }

    /// Index of the part holding plaintext offset `off` (skipping empty parts).
    fn part_at(&self, off: u64) -> usize {
        // Last part whose start <= off, among parts that are non-empty.
        let mut i = self.plain_start.partition_point(|s| *s <= off) - 1;
        while i < self.parts.len() && self.parts[i].plain_len == 0 {
            i += 1;
        }
        i
    }

    /// Map a non-empty range inside the object: the ciphertext to fetch and
    /// one plan per part it crosses (empty parts inside are authenticated too).
    pub fn map_range(&self, range: Range<u64>) -> Result<(Range<u64>, Vec<DecryptPlan>), CryptoError> {
        if range.start >= range.end || range.end > self.plain_len() {
            return Err(CryptoError::InvalidParams("range outside the object"));
        }
        let first = self.part_at(range.start);
        let last = self.part_at(range.end - 1);
        let mut plans = Vec::with_capacity(last - first + 1);
        let mut ct = 0..0;
        for i in first..=last {
            let PartEntry { number: part, attempt, plain_len: len } = self.parts[i];
            let (pr, cr) = self.part_bounds(i);
            let local = range.start.max(pr.start) - pr.start..range.end.min(pr.end) - pr.start;
            let plan = if local.start < local.end {
                let m = self.params.map_range(len, local)?;
                if i == first {
                    ct.start = cr.start + m.ciphertext.start;
                }
                if i == last {
                    ct.end = cr.start + m.ciphertext.end;
                }
                DecryptPlan {
                    part,
                    attempt,
                    part_plain_len: len,
                    first_segment: m.first_segment,
                    last_segment: m.last_segment,
                    skip: m.skip,
                    take: m.take,
                }
            } else {
                // An empty part between two others: open its single segment.
                DecryptPlan { part, attempt, part_plain_len: 0, first_segment: 0, last_segment: 0, skip: 0, take: 0 }
            };
            plans.push(plan);
        }
        Ok((ct, plans))
    }

    /// Plans that read the whole object (empty objects included).
    pub fn full_plans(&self) -> Vec<DecryptPlan> {
        self.parts.iter().map(|e| DecryptPlan::whole_part(self.params, e)).collect()
    }
}

/// Which part of a part's ciphertext a decrypting stream reads.
#[derive(Debug, Clone)]
pub struct DecryptPlan {
    /// Part number the segments were sealed with (0 for a single PUT).
    pub part: u32,
    /// Upload attempt of the part (format v2 part keys; 0 otherwise).
    pub attempt: u32,
    /// Plaintext length of the whole part.
    pub part_plain_len: u64,
    /// First and last segment present in the input stream.
    pub first_segment: u64,
    pub last_segment: u64,
    /// Plaintext bytes to drop at the start, then to return.
    pub skip: u64,
    pub take: u64,
}

impl DecryptPlan {
    /// A plan that reads all of one part.
    pub fn whole_part(params: FormatParams, e: &PartEntry) -> Self {
        Self {
            part: e.number,
            attempt: e.attempt,
            part_plain_len: e.plain_len,
            first_segment: 0,
            last_segment: params.segment_count(e.plain_len) - 1,
            skip: 0,
            take: e.plain_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_part_matches_format_math() {
        let p = FormatParams::new(4096).unwrap();
        let l = Layout::single(p, 10000);
        assert_eq!(l.ciphertext_len(), p.ciphertext_len(10000));
        let (ct, plans) = l.map_range(5000..5001).unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(ct, 4112..8224);
    }

    proptest! {
        #[test]
        fn ranges_map_to_contiguous_ciphertext(sizes in proptest::collection::vec(0u64..20000, 1..6), a in 0u64..100000, n in 1u64..100000) {
            let p = FormatParams::new(4096).unwrap();
            let parts: Vec<PartEntry> =
                sizes.iter().enumerate().map(|(i, s)| PartEntry { number: i as u32 + 1, attempt: 0, plain_len: *s }).collect();
            let l = Layout::new(p, parts);
            prop_assume!(l.plain_len() > 0);
            let start = a % l.plain_len();
            let end = (start + n).min(l.plain_len());
            let (ct, plans) = l.map_range(start..end).unwrap();
            prop_assert_eq!(plans.iter().map(|p| p.take).sum::<u64>(), end - start);
            // The ciphertext range equals the sealed bytes of every planned segment.
            let sealed: u64 = plans.iter().map(|pl| (pl.first_segment..=pl.last_segment).map(|i| p.sealed_segment_len(pl.part_plain_len, i)).sum::<u64>()).sum();
            prop_assert_eq!(ct.end - ct.start, sealed);
            prop_assert!(ct.end <= l.ciphertext_len());
        }
    }
}
