//! `default-key-select`: SSE-KMS under a key chosen by bucket, from a small
//! table compiled into the policy. Buckets not in the table keep what the
//! request asked for.
#![no_std]

kms_gateway_policy::key_selector!(Policy);
use api::{Decision, Guest, Request, Selection};

/// Bucket-name prefix → key id. First match wins.
const TABLE: &[(&str, &str)] = &[("finance-", "finance-key"), ("logs-", "logs-key"), ("hr-", "hr-key")];

struct Policy;

impl Guest for Policy {
    fn select(req: Request) -> Decision {
        match TABLE.iter().find(|(prefix, _)| req.bucket.starts_with(prefix)) {
            Some((_, key)) => Decision::Select(Selection::kms(key)),
            None => Decision::Keep,
        }
    }
}
