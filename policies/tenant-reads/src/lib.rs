//! `tenant-reads`: a tenant's identity reads (and writes) only under its
//! tenant's keys. For an identity with the attribute `tenant` = `T`, an
//! SSE-KMS object under any key but `tenant-T` (or `tenant-T-…`) is
//! refused, on GET, HEAD and as a copy source alike; so is naming such a
//! key on a write. Identities without the attribute are not restricted.
#![no_std]

extern crate alloc;

use alloc::format;
kms_gateway_policy::sse_validator!(Policy);
use api::{Guest, Request, S3Error, SseMode, Verdict};

struct Policy;

impl Guest for Policy {
    fn validate(req: Request) -> Verdict {
        let Some(tenant) = req.attribute("tenant") else { return Verdict::Accept };
        let own = format!("tenant-{tenant}");
        match (req.requested_mode, req.requested_key_id.as_deref()) {
            (SseMode::SseKms, Some(k)) if k != own && !k.starts_with(&format!("{own}-")) => {
                let what = if req.is_read() { "read objects under" } else { "use" };
                Verdict::Reject(S3Error::access_denied(&format!("tenant {tenant} may not {what} key {k}")))
            }
            _ => Verdict::Accept,
        }
    }
}
