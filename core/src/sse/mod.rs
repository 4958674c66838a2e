//! SSE semantics: typed SSE requests parsed from S3 headers, and the
//! per-object crypto record stored as namespaced upstream metadata.
//!
//! - [`request`]: `x-amz-server-side-encryption*` headers → [`SseRequest`].
//! - [`customer`]: SSE-C key triple validation.
//! - [`record`]: [`ObjectCrypto`] ↔ `x-amz-meta-kgw-*` metadata.

pub mod customer;
pub mod record;
pub mod request;

pub use customer::CustomerKey;
pub use record::{ObjectCrypto, RESERVED_PREFIX, has_reserved_keys, strip_reserved};
pub use request::{SseHeaders, SseRequest};

/// The three SSE modes, as stored and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseMode {
    S3,
    Kms,
    Customer,
}

impl SseMode {
    /// Stable name used in metadata and in the sealing binding.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S3 => "SSE-S3",
            Self::Kms => "SSE-KMS",
            Self::Customer => "SSE-C",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SSE-S3" => Some(Self::S3),
            "SSE-KMS" => Some(Self::Kms),
            "SSE-C" => Some(Self::Customer),
            _ => None,
        }
    }
}

/// Client-facing SSE errors, each with an AWS error code (mapped at the S3
/// edge). Messages follow AWS wording and never contain key material.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    #[error("{0}")]
    InvalidArgument(&'static str),
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("The Encryption request you specified is not valid. The valid value is AES256.")]
    InvalidEncryptionAlgorithm,
    #[error("Access Denied: the request must provide the correct secret key.")]
    WrongCustomerKey,
}
