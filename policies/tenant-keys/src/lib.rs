//! `tenant-keys`: a tenant's identity writes only under its tenant's keys.
//! An identity with the attribute `tenant` = `T` that names no key gets
//! SSE-KMS under `tenant-T` (the tenant bound into the encryption context);
//! naming another tenant's key (any key not starting with `tenant-T`) is
//! refused. Identities without the attribute keep what they asked for.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::vec;
kms_gateway_policy::key_selector!(Policy);
use api::{Decision, Guest, Request, S3Error, Selection, SseMode};

struct Policy;

impl Guest for Policy {
    fn select(req: Request) -> Decision {
        let Some(tenant) = req.attribute("tenant") else { return Decision::Keep };
        let own = format!("tenant-{tenant}");
        match req.requested_key_id.as_deref() {
            Some(k) if k != own && !k.starts_with(&format!("{own}-")) => {
                Decision::Deny(S3Error::access_denied(&format!("key {k} is not tenant {tenant}'s")))
            }
            Some(_) => Decision::Keep,
            None => Decision::Select(Selection {
                mode: SseMode::SseKms,
                key_id: Some(own),
                extra_context: vec![("tenant".into(), tenant.into())],
            }),
        }
    }
}
