//! Generated bindings of the three worlds of `wit/policy.wit` (0.2.0) and
//! of `wit/v0.1/policy.wit` (0.1.0, still accepted), and the conversions
//! between them and the host types. Each world has its own copy of the
//! shared `types` interface, hence one module per world and version.

use super::types::{KeyDecision, RotationAdvice, Verdict};

/// Conversions of the request-shaped input; `identity` for 0.2.0, which
/// has the signer's identity in the request.
macro_rules! request_conversions {
    ($($identity:ident)?) => {
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
                $($identity: r.identity.as_ref().map(|i| t::Identity {
                    access_key: i.access_key.clone(),
                    attributes: i.attributes.clone(),
                    groups: i.groups.clone(),
                }),)?
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

/// The three hook modules of one WIT version, with the conversions of
/// their answers into the host types.
macro_rules! worlds {
    ($path:literal $(, $identity:ident)?) => {
        pub(crate) mod key_select {
            wasmtime::component::bindgen!({ world: "key-selector", path: $path });
            request_conversions!($($identity)?);

            fn mode_back(m: t::SseMode) -> crate::policy::types::Mode {
                match m {
                    t::SseMode::None => crate::policy::types::Mode::None,
                    t::SseMode::SseS3 => crate::policy::types::Mode::SseS3,
                    t::SseMode::SseKms => crate::policy::types::Mode::SseKms,
                    t::SseMode::SseC => crate::policy::types::Mode::SseC,
                }
            }

            impl From<exports::kms_gateway::policy::key_select::Decision> for crate::policy::types::KeyDecision {
                fn from(d: exports::kms_gateway::policy::key_select::Decision) -> Self {
                    use exports::kms_gateway::policy::key_select::Decision as D;
                    match d {
                        D::Keep => Self::Keep,
                        D::Select(s) => Self::Select { mode: mode_back(s.mode), key_id: s.key_id, extra_context: s.extra_context },
                        D::Deny(e) => Self::Deny(error_back(e)),
                    }
                }
            }
        }

        pub(crate) mod sse_validate {
            wasmtime::component::bindgen!({ world: "sse-validator", path: $path });
            request_conversions!($($identity)?);

            impl From<exports::kms_gateway::policy::sse_validate::Verdict> for crate::policy::types::Verdict {
                fn from(v: exports::kms_gateway::policy::sse_validate::Verdict) -> Self {
                    use exports::kms_gateway::policy::sse_validate::Verdict as V;
                    match v {
                        V::Accept => Self::Accept,
                        V::Reject(e) => Self::Reject(error_back(e)),
                    }
                }
            }
        }

        pub(crate) mod rotation {
            wasmtime::component::bindgen!({ world: "rotation-policy", path: $path });
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

            impl From<r::Advice> for crate::policy::types::RotationAdvice {
                fn from(a: r::Advice) -> Self {
                    match a {
                        r::Advice::Rotate(reason) => Self::Rotate { reason },
                        r::Advice::Later((next_check, reason)) => Self::Later { next_check, reason },
                    }
                }
            }
        }
    };
}

worlds!("../wit", identity);

/// The 0.1.0 contract: requests without the identity, writes only.
pub(crate) mod v0_1 {
    worlds!("../wit/v0.1");
}

// The answers convert the same way whichever version produced them.
const _: fn() = || {
    fn converts<A: Into<KeyDecision>, B: Into<Verdict>, C: Into<RotationAdvice>>() {}
    converts::<
        key_select::exports::kms_gateway::policy::key_select::Decision,
        sse_validate::exports::kms_gateway::policy::sse_validate::Verdict,
        rotation::exports::kms_gateway::policy::rotation::Advice,
    >();
    converts::<
        v0_1::key_select::exports::kms_gateway::policy::key_select::Decision,
        v0_1::sse_validate::exports::kms_gateway::policy::sse_validate::Verdict,
        v0_1::rotation::exports::kms_gateway::policy::rotation::Advice,
    >();
};
