//! Attempt numbers of part uploads in cluster mode.
//!
//! Every UploadPart call encrypts under a key derived from (part, attempt),
//! so no two calls may share an attempt number of one part. A single node
//! claims 0, 1, 2, … in its own state, which it trusts. In cluster mode the
//! claims live in the store, which is not trusted: a store operator who
//! deleted a claim would make the next upload of that part take the same
//! number again, and with it the same key and nonces (two plaintexts under
//! one keystream, and a forgeable GCM tag).
//!
//! So each replica numbers the attempts of an upload from a random base of
//! its own and counts in memory: it never hands out a number twice, whatever
//! the store does, and two replicas' ranges overlap only by a chance of
//! about one in 2^32 per pair (and even then the write-once claim keeps them
//! apart unless the store deletes it). One replica uploading every part
//! gives every part the same number, which the part table stores in one
//! run; parts spread over replicas cost a dictionary index each
//! ([`kgw_core::sse::part_table`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;

use crate::crypto::random_bytes;

/// Numbers one part may take from one replica (more than any client retries).
pub(super) const PER_PART: u32 = 10_000;

/// Per upload: this replica's base and the next offset of each part.
struct Counters {
    base: u32,
    next: HashMap<u32, u32>,
}

/// This replica's attempt numbers, per upload in progress.
pub(super) struct AttemptNumbers {
    uploads: Cache<String, Arc<Mutex<Counters>>>,
}

impl AttemptNumbers {
    pub(super) fn new() -> Self {
        // An upload idle for a week gets a fresh random base if it comes
        // back: forgetting the counters is safe, reusing them is not needed.
        Self { uploads: Cache::builder().max_capacity(100_000).time_to_idle(Duration::from_secs(7 * 86_400)).build() }
    }

    /// The next number of `part` of `upload` from this replica; `None` when
    /// the part has had [`PER_PART`] of them here.
    pub(super) fn next(&self, upload: &str, part: u32) -> Option<u32> {
        let counters = self
            .uploads
            .get_with(upload.to_owned(), || Arc::new(Mutex::new(Counters { base: random_base(), next: HashMap::new() })));
        let mut c = counters.lock().expect("attempt counters");
        let base = c.base;
        let offset = c.next.entry(part).or_insert(0);
        if *offset >= PER_PART {
            return None;
        }
        let n = base + *offset;
        *offset += 1;
        Some(n)
    }
}

/// A base in `1 ..= u32::MAX - PER_PART`: never 0 (a single node's first
/// number), and room above it for every offset.
fn random_base() -> u32 {
    let mut b = [0u8; 4];
    random_bytes(&mut b).expect("the system random source");
    1 + u32::from_le_bytes(b) % (u32::MAX - PER_PART)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_never_repeats_a_number_and_keeps_one_per_first_upload() {
        let n = AttemptNumbers::new();
        let first: Vec<u32> = (1..=50).map(|p| n.next("up", p).unwrap()).collect();
        // First uploads of every part share this replica's base.
        assert!(first.iter().all(|a| *a == first[0] && *a != 0));
        let retry = n.next("up", 7).unwrap();
        assert_eq!(retry, first[0] + 1);
        let mut seen: Vec<u32> = (0..PER_PART - 2).map(|_| n.next("up", 7).unwrap()).collect();
        seen.push(retry);
        seen.push(first[6]);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len() as u32, PER_PART);
        assert_eq!(n.next("up", 7), None, "exhausted, never wrapped");
        // Another upload, another base; another replica, another base.
        assert_ne!(n.next("other", 1).unwrap(), first[0]);
        assert_ne!(AttemptNumbers::new().next("up", 1).unwrap(), first[0]);
    }
}
