//! The part table of a multipart record (`kgw-parts`): each part's number,
//! upload attempt and plaintext size, kept short enough for object metadata.
//!
//! Two forms; the encoder writes the run form up to 256 bytes, and the
//! shorter of the two beyond:
//! - runs: `1-127x8388608,128x1234,129x5@2`: runs of consecutive part
//!   numbers of one size and attempt; `@n` marks an attempt other than 0.
//!   Compact while attempts repeat (one gateway, or retries only).
//! - runs and a dictionary: `1-127x8388608,128x5;17.4000000001;<indexes>`:
//!   the runs of sizes alone, then the distinct attempts, then each part's
//!   attempt as an index into them, packed in the fewest bits (LSB first)
//!   and base64url-encoded. In cluster mode each replica numbers its
//!   attempts from its own random base, so parts spread over replicas
//!   alternate attempts: this form costs bits per part, not digits.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use super::record::MAX_RECORDED_SIZE;
use crate::crypto::manifest::PartEntry;

/// The run form is kept up to this length, however few retries it has: it
/// is the form people read (one node, or a few retries).
const RUNS_UP_TO: usize = 256;

/// Most parts of an S3 multipart upload.
const MAX_PARTS: u32 = 10_000;

/// The record form of `parts` (number order, as completion builds them).
pub fn encode_parts(parts: &[PartEntry]) -> String {
    let runs = encode_runs(parts, true);
    let mut dict: Vec<u32> = Vec::new();
    for p in parts {
        if !dict.contains(&p.attempt) {
            dict.push(p.attempt);
        }
    }
    if dict.len() < 2 {
        return runs;
    }
    let width = index_width(dict.len());
    let mut packed = vec![0u8; (parts.len() * width).div_ceil(8)];
    for (i, p) in parts.iter().enumerate() {
        let idx = dict.iter().position(|a| *a == p.attempt).expect("every attempt is in the dictionary");
        for bit in 0..width {
            if idx >> bit & 1 == 1 {
                let at = i * width + bit;
                packed[at / 8] |= 1 << (at % 8);
            }
        }
    }
    let dict_text: Vec<String> = dict.iter().map(u32::to_string).collect();
    let with_dict = format!("{};{};{}", encode_runs(parts, false), dict_text.join("."), B64URL.encode(&packed));
    if runs.len() > RUNS_UP_TO && with_dict.len() < runs.len() { with_dict } else { runs }
}

/// Runs of consecutive part numbers of one size (and one attempt, when
/// `attempts` is set).
fn encode_runs(parts: &[PartEntry], attempts: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let first = parts[i];
        let mut j = i;
        while j + 1 < parts.len()
            && parts[j + 1].plain_len == first.plain_len
            && (!attempts || parts[j + 1].attempt == first.attempt)
            && parts[j + 1].number == parts[j].number + 1
        {
            j += 1;
        }
        let (start, end, size) = (first.number, parts[j].number, first.plain_len);
        let mut run = if end == start { format!("{start}x{size}") } else { format!("{start}-{end}x{size}") };
        if attempts && first.attempt != 0 {
            run.push_str(&format!("@{}", first.attempt));
        }
        out.push(run);
        i = j + 1;
    }
    out.join(",")
}

/// Bits per dictionary index.
fn index_width(dict_len: usize) -> usize {
    (usize::BITS - (dict_len.max(2) - 1).leading_zeros()) as usize
}

/// Inverse of [`encode_parts`]; `None` on malformed input or part numbers
/// that do not strictly increase.
pub fn decode_parts(s: &str) -> Option<Vec<PartEntry>> {
    let mut fields = s.split(';');
    let (runs, dict, indexes) = (fields.next()?, fields.next(), fields.next());
    if fields.next().is_some() {
        return None;
    }
    match (dict, indexes) {
        (None, None) => decode_runs(runs, true),
        (Some(dict), Some(indexes)) => {
            let mut parts = decode_runs(runs, false)?;
            let dict: Vec<u32> = dict.split('.').map(|a| a.parse().ok()).collect::<Option<_>>()?;
            if dict.len() < 2 || dict.len() > MAX_PARTS as usize || (1..dict.len()).any(|i| dict[..i].contains(&dict[i])) {
                return None;
            }
            let width = index_width(dict.len());
            let packed = B64URL.decode(indexes).ok()?;
            if packed.len() != (parts.len() * width).div_ceil(8) {
                return None;
            }
            let bit = |at: usize| packed[at / 8] >> (at % 8) & 1;
            for (i, p) in parts.iter_mut().enumerate() {
                let idx = (0..width).map(|b| (bit(i * width + b) as usize) << b).sum::<usize>();
                p.attempt = *dict.get(idx)?;
            }
            // Padding bits are zero: one text per table.
            if (parts.len() * width..packed.len() * 8).any(|at| bit(at) == 1) {
                return None;
            }
            Some(parts)
        }
        _ => None,
    }
}

fn decode_runs(s: &str, attempts: bool) -> Option<Vec<PartEntry>> {
    let mut out: Vec<PartEntry> = Vec::new();
    for run in s.split(',') {
        let (run, attempt) = match run.split_once('@') {
            Some((r, a)) if attempts => (r, a.parse::<u32>().ok().filter(|a| *a != 0)?),
            Some(_) => return None,
            None => (run, 0),
        };
        let (nums, size) = run.split_once('x')?;
        let size: u64 = size.parse().ok().filter(|s| *s <= MAX_RECORDED_SIZE)?;
        let (a, b) = match nums.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let n = nums.parse::<u32>().ok()?;
                (n, n)
            }
        };
        if a > b || b > MAX_PARTS || out.last().is_some_and(|last| last.number >= a) {
            return None;
        }
        out.extend((a..=b).map(|number| PartEntry { number, attempt, plain_len: size }));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(number: u32, plain_len: u64, attempt: u32) -> PartEntry {
        PartEntry { number, attempt, plain_len }
    }

    #[test]
    fn part_tables_are_compact_and_roundtrip() {
        let mut parts: Vec<PartEntry> = (1..=9999).map(|n| e(n, 8 << 20, 0)).collect();
        parts.push(e(10000, 12345, 0));
        let enc = encode_parts(&parts);
        assert_eq!(enc, "1-9999x8388608,10000x12345");
        assert_eq!(decode_parts(&enc).unwrap(), parts);
        let sparse = vec![e(1, 5, 0), e(3, 5, 0), e(4, 5, 0), e(7, 0, 0)];
        assert_eq!(decode_parts(&encode_parts(&sparse)).unwrap(), sparse);
        // A re-uploaded part costs a few bytes, not a whole table.
        let mut retried: Vec<PartEntry> = (1..=1000).map(|n| e(n, 8 << 20, 0)).collect();
        retried[499].attempt = 2;
        let enc = encode_parts(&retried);
        assert_eq!(enc, "1-499x8388608,500x8388608@2,501-1000x8388608");
        assert_eq!(decode_parts(&enc).unwrap(), retried);
        for bad in ["", "x5", "3-1x5", "2x5,1x5", "1x-1", "1-20000x5", "1x5@0", "1x5@x", "1x5@"] {
            assert!(decode_parts(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn parts_spread_over_replicas_cost_bits_not_digits() {
        // Three replicas, each numbering attempts from its own random base,
        // take turns: every part's attempt differs from its neighbours'.
        let bases = [2_147_000_001u32, 917_000_033, 1_500_000_777];
        let mut parts: Vec<PartEntry> = (1..=10_000).map(|n| e(n, 8 << 20, bases[n as usize % 3])).collect();
        parts[9_999].plain_len = 123;
        parts[4_000].attempt = bases[1] + 1; // one part retried on a replica
        let enc = encode_parts(&parts);
        assert!(enc.contains(';'), "dictionary form");
        // 2 bits per part for 4 distinct attempts, base64: ~3.4 KB for the
        // most parts S3 allows; the run form would take ~230 KB.
        assert!(enc.len() < 3_500, "{}", enc.len());
        assert!(encode_runs(&parts, true).len() > 200_000);
        assert_eq!(decode_parts(&enc).unwrap(), parts);
        // A hundred parts over three replicas fit in well under a kilobyte.
        let few: Vec<PartEntry> = (1..=100).map(|n| e(n, 8 << 20, bases[n as usize % 3])).collect();
        let enc = encode_parts(&few);
        assert!(enc.len() < 120, "{enc}");
        assert_eq!(decode_parts(&enc).unwrap(), few);
        // One replica: every part has its base, the run form stays one run.
        let one: Vec<PartEntry> = (1..=1000).map(|n| e(n, 8 << 20, bases[0])).collect();
        assert_eq!(encode_parts(&one), "1-1000x8388608@2147000001");
    }

    #[test]
    fn malformed_dictionary_tables_are_refused() {
        let parts = vec![e(1, 5, 7), e(2, 5, 9), e(3, 5, 7)];
        // Short tables keep the run form; the dictionary form reads back.
        assert_eq!(encode_parts(&parts), "1x5@7,2x5@9,3x5@7");
        assert_eq!(decode_parts("1-3x5;7.9;Ag").unwrap(), parts);
        for bad in [
            "1-3x5;7.9",       // no indexes
            "1-3x5;7.9;Ag;x",  // a fourth field
            "1-3x5;7;AA",      // a dictionary of one
            "1-3x5;7.7;Ag",    // repeated attempts
            "1-3x5;7.x;Ag",    // not a number
            "1-3x5;7.9;AgA",   // too many index bytes
            "1-3x5;7.9;",      // too few
            "1-3x5;7.9;Cg",    // a padding bit set
            "1-3x5;7.9.11;/w", // an index past the dictionary
            "1-3x5@2;7.9;Ag",  // attempts in both places
            "1-3x5;7.9;A!",    // not base64url
        ] {
            assert!(decode_parts(bad).is_none(), "{bad}");
        }
    }
}
