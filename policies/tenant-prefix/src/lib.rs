//! `tenant-prefix`: every tenant's objects under its own key. The tenant is
//! the first segment of the object key (`acme/reports/q3.csv` → key
//! `tenant-acme`), else the access key the request was signed with.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::vec;
kms_gateway_policy::key_selector!(Policy);
use api::{Decision, Guest, Request, S3Error, Selection, SseMode};

struct Policy;

impl Guest for Policy {
    fn select(req: Request) -> Decision {
        let Some(tenant) = req.first_segment().or(req.principal.as_deref()) else {
            return Decision::Deny(S3Error::access_denied("no tenant: put objects under <tenant>/…"));
        };
        if !tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') || tenant.len() > 64 {
            return Decision::Deny(S3Error::new("InvalidArgument", "tenant names are 1-64 of [A-Za-z0-9_-]"));
        }
        Decision::Select(Selection {
            mode: SseMode::SseKms,
            key_id: Some(format!("tenant-{tenant}")),
            extra_context: vec![("tenant".into(), tenant.into())],
        })
    }
}
