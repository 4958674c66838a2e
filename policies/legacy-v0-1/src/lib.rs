//! Test guest: an sse-validate policy of the 0.1.0 contract, as built
//! before 0.2.0. It must keep loading and deciding on writes (SSE-C is
//! refused), and must not be asked about reads (it never was).
#![no_std]
extern crate alloc;

// The SDK supplies the no_std runtime (allocator, panic handler, realloc).
use kms_gateway_policy as _;

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

use exports::kms_gateway::policy::sse_validate::{Guest, Verdict};
use kms_gateway::policy::types::{Request, S3Error, SseMode};

struct Policy;

impl Guest for Policy {
    fn validate(req: Request) -> Verdict {
        if req.requested_mode == SseMode::SseC {
            return Verdict::Reject(S3Error { code: "AccessDenied".into(), message: "SSE-C is refused (0.1.0 policy)".into() });
        }
        Verdict::Accept
    }
}

export!(Policy);
