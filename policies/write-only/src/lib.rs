//! `write-only`: identities in the group `write-only` (an ingest or backup
//! job, say) write encrypted objects but never read one back: GET, HEAD,
//! GetObjectAttributes and copies from an encrypted object are refused.
//! Listings show them no SSE-S3 plaintext MD5 either (the gateway asks this
//! policy as for a HEAD). Everyone else is not restricted.
#![no_std]

kms_gateway_policy::sse_validator!(Policy);
use api::{Guest, Request, S3Error, Verdict};

struct Policy;

impl Guest for Policy {
    fn validate(req: Request) -> Verdict {
        if req.is_read() && req.in_group("write-only") {
            return Verdict::Reject(S3Error::access_denied("a write-only identity may not read encrypted objects"));
        }
        Verdict::Accept
    }
}
