//! Test guest (answers the gateway's test call, misbehaves on buckets
//! named `hostile*`): answers with a 4 MiB error message. The host bounds outputs.
#![no_std]
extern crate alloc;
kms_gateway_policy::key_selector!(Policy);
use alloc::string::String;
use api::{Decision, Guest, Request, S3Error};

struct Policy;

impl Guest for Policy {
    fn select(req: Request) -> Decision {
        if !req.bucket.starts_with("hostile") {
            return Decision::Keep;
        }
        let message: String = core::iter::repeat_n('x', 4 << 20).collect();
        Decision::Deny(S3Error { code: String::from("AccessDenied"), message })
    }
}
