//! Test guest (answers the gateway's test call, misbehaves on buckets
//! named `hostile*`): grows its memory without bound. The host's cap must trap it.
#![no_std]
extern crate alloc;
kms_gateway_policy::key_selector!(Policy);
use alloc::vec::Vec;
use api::{Decision, Guest, Request};

struct Policy;

impl Guest for Policy {
    fn select(req: Request) -> Decision {
        if !req.bucket.starts_with("hostile") {
            return Decision::Keep;
        }
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(core::hint::black_box(alloc::vec![req.key.len() as u8; 1 << 20]));
        }
    }
}
