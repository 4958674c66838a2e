//! Generated bindings of the three worlds of `wit/policy.wit`, and the
//! conversions between them and the host types. Each world has its own
//! copy of the shared `types` interface, hence one module per world.

use super::types::{KeyDecision, RotationAdvice, Verdict};

macro_rules! request_conversions {
    () => {
        use self::kms_gateway::policy::types as t;

        fn mode(m: crate::policy::types::Mode) -> t::SseMode {
            match m {
                crate::policy::types::Mode::None => t::SseMode::None,
                crate::policy::types::Mode::SseS3 => t::SseMode::SseS3,
                crate::policy::types::Mode::SseKms => t::SseMode::SseKms,
                crate::policy::types::Mode::SseC => t::SseMode::SseC,
            }
        }

        pub(crate) fn error_back(e: t::S3Error) -> crate::policy::types::PolicyS3Error {
            crate::policy::types::PolicyS3Error { code: e.code, message: e.message }
        }

        pub(crate) fn request(r: &crate::policy::types::PolicyRequest) -> t::Request {
            t::Request {
                operation: r.operation.clone(),
                bucket: r.bucket.clone(),
                key: r.key.clone(),
                principal: r.principal.clone(),
                source_ip: r.source_ip.clone(),
                headers: r.headers.clone(),
                requested_mode: mode(r.requested_mode),
                requested_key_id: r.requested_key_id.clone(),
                encryption_context: r.encryption_context.clone(),
                bucket_default: r
                    .bucket_default
                    .as_ref()
                    .map(|d| t::BucketDefault { mode: mode(d.mode), kms_key_id: d.kms_key_id.clone() }),
                now: r.now,
            }
        }
    };
}

pub(crate) mod key_select {
    wasmtime::component::bindgen!({ world: "key-selector", path: "../wit" });
    request_conversions!();

    pub(crate) fn mode_back(m: t::SseMode) -> crate::policy::types::Mode {
        match m {
            t::SseMode::None => crate::policy::types::Mode::None,
            t::SseMode::SseS3 => crate::policy::types::Mode::SseS3,
            t::SseMode::SseKms => crate::policy::types::Mode::SseKms,
            t::SseMode::SseC => crate::policy::types::Mode::SseC,
        }
    }
}

pub(crate) mod sse_validate {
    wasmtime::component::bindgen!({ world: "sse-validator", path: "../wit" });
    request_conversions!();
}

pub(crate) mod rotation {
    wasmtime::component::bindgen!({ world: "rotation-policy", path: "../wit" });
    use exports::kms_gateway::policy::rotation as r;

    pub(crate) fn facts(f: &crate::policy::types::KeyFacts) -> r::KeyFacts {
        r::KeyFacts {
            key_id: f.key_id.clone(),
            backend: f.backend.clone(),
            version: f.version,
            created_at: f.created_at,
            rotated_at: f.rotated_at,
            state: f.state.clone(),
            data_keys_issued: f.data_keys_issued,
            tags: f.tags.clone(),
        }
    }
}

impl From<key_select::exports::kms_gateway::policy::key_select::Decision> for KeyDecision {
    fn from(d: key_select::exports::kms_gateway::policy::key_select::Decision) -> Self {
        use key_select::exports::kms_gateway::policy::key_select::Decision as D;
        match d {
            D::Keep => Self::Keep,
            D::Select(s) => {
                Self::Select { mode: key_select::mode_back(s.mode), key_id: s.key_id, extra_context: s.extra_context }
            }
            D::Deny(e) => Self::Deny(key_select::error_back(e)),
        }
    }
}

impl From<sse_validate::exports::kms_gateway::policy::sse_validate::Verdict> for Verdict {
    fn from(v: sse_validate::exports::kms_gateway::policy::sse_validate::Verdict) -> Self {
        use sse_validate::exports::kms_gateway::policy::sse_validate::Verdict as V;
        match v {
            V::Accept => Self::Accept,
            V::Reject(e) => Self::Reject(sse_validate::error_back(e)),
        }
    }
}

impl From<rotation::exports::kms_gateway::policy::rotation::Advice> for RotationAdvice {
    fn from(a: rotation::exports::kms_gateway::policy::rotation::Advice) -> Self {
        use rotation::exports::kms_gateway::policy::rotation::Advice as A;
        match a {
            A::Rotate(reason) => Self::Rotate { reason },
            A::Later((next_check, reason)) => Self::Later { next_check, reason },
        }
    }
}
