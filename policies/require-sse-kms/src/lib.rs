//! `require-sse-kms`: writes to `finance-*` and `secure-*` buckets must use
//! SSE-KMS; SSE-C is refused everywhere (keys the operator cannot recover).
//! Reads are not its business: objects already stored stay readable.
#![no_std]

kms_gateway_policy::sse_validator!(Policy);
use api::{Guest, Request, S3Error, SseMode, Verdict};

const KMS_ONLY: &[&str] = &["finance-", "secure-"];

struct Policy;

impl Guest for Policy {
    fn validate(req: Request) -> Verdict {
        if req.is_read() {
            return Verdict::Accept;
        }
        if req.requested_mode == SseMode::SseC {
            return Verdict::Reject(S3Error::access_denied("SSE-C is forbidden by policy: use SSE-KMS"));
        }
        if KMS_ONLY.iter().any(|p| req.bucket.starts_with(p)) && req.requested_mode != SseMode::SseKms {
            return Verdict::Reject(S3Error::access_denied("SSE-KMS is required for buckets finance-* and secure-*"));
        }
        Verdict::Accept
    }
}
