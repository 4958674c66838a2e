//! `rotate-after-days`: rotate a key when its current version is older than
//! N days (90, or the key's `rotate-after-days` tag; `rotate-after-seconds`
//! for tests), or after M data keys (tag `rotate-after-data-keys`).
#![no_std]

extern crate alloc;

use alloc::format;
kms_gateway_policy::rotation_policy!(Policy);
use api::{Advice, Guest, KeyFacts};

const DEFAULT_DAYS: u64 = 90;

struct Policy;

fn number(facts: &KeyFacts, tag: &str) -> Option<u64> {
    facts.tag(tag).and_then(|v| v.parse().ok())
}

impl Guest for Policy {
    fn check(key: KeyFacts, now: u64) -> Advice {
        if key.state != "Enabled" {
            return Advice::Later((now + 86_400, "key is not enabled".into()));
        }
        let max_age = number(&key, "rotate-after-seconds")
            .or_else(|| number(&key, "rotate-after-days").map(|d| d * 86_400))
            .unwrap_or(DEFAULT_DAYS * 86_400)
            .max(1);
        let age = key.age(now);
        if age >= max_age {
            return Advice::Rotate(format!("version {} is {age} s old (limit {max_age} s)", key.version));
        }
        if let Some(limit) = number(&key, "rotate-after-data-keys")
            && key.data_keys_issued >= limit
        {
            return Advice::Rotate(format!("{} data keys issued (limit {limit})", key.data_keys_issued));
        }
        Advice::Later((now + (max_age - age), format!("due in {} s", max_age - age)))
    }
}
