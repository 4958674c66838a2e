//! Test guest: built against a WIT package version the gateway does not
//! know (9.0.0). It must be refused at upload.
#![no_std]
extern crate alloc;

// The SDK supplies the no_std runtime (allocator, panic handler, realloc).
use kms_gateway_policy as _;

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

use exports::kms_gateway::policy::key_select::{Decision, Guest};
use kms_gateway::policy::types::Request;

struct Policy;

impl Guest for Policy {
    fn select(_: Request) -> Decision {
        Decision::Keep
    }
}

export!(Policy);
