//! Test guest (answers the gateway's test call, misbehaves on buckets
//! named `hostile*`): panics (traps) on every call.
#![no_std]
kms_gateway_policy::key_selector!(Policy);
use api::{Decision, Guest, Request};

struct Policy;

impl Guest for Policy {
    fn select(req: Request) -> Decision {
        if !req.bucket.starts_with("hostile") {
            return Decision::Keep;
        }
        panic!("policy bug on {}", req.key)
    }
}
