//! Test guest (answers the gateway's test call, misbehaves on buckets
//! named `hostile*`): tries to remember earlier requests in a global and
//! leak them into later answers. With a fresh instance per call it can
//! only ever report its first call and an empty memory.
#![no_std]
extern crate alloc;

kms_gateway_policy::key_selector!(Policy);
use alloc::format;
use alloc::string::String;
use api::{Decision, Guest, Request, S3Error};
use core::cell::RefCell;

struct Policy;

struct Memory(RefCell<(u32, String)>);
// SAFETY: components are single-threaded.
unsafe impl Sync for Memory {}
static SEEN: Memory = Memory(RefCell::new((0, String::new())));

impl Guest for Policy {
    fn select(req: Request) -> Decision {
        if !req.bucket.starts_with("hostile") {
            return Decision::Keep;
        }
        let mut seen = SEEN.0.borrow_mut();
        seen.0 += 1;
        let answer = format!("call {} remembers [{}]", seen.0, seen.1);
        seen.1.push_str(&req.key);
        Decision::Deny(S3Error::access_denied(&answer))
    }
}
