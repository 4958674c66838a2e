//! Test guest (answers the gateway's test call, misbehaves on buckets
//! named `hostile*`): never returns. The host's deadline must stop it.
#![no_std]
kms_gateway_policy::key_selector!(Policy);
use api::{Decision, Guest, Request};

struct Policy;

impl Guest for Policy {
    fn select(req: Request) -> Decision {
        if !req.bucket.starts_with("hostile") {
            return Decision::Keep;
        }
        let mut n = req.key.len() as u64;
        loop {
            n = core::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}
