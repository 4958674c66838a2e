//! SSE semantics: typed SSE requests parsed from S3 headers, and the
//! per-object crypto record stored as namespaced upstream metadata.
//!
//! - [`request`]: `x-amz-server-side-encryption*` headers → [`SseRequest`].
//! - [`customer`]: SSE-C key triple validation.
//! - [`record`]: [`ObjectCrypto`] ↔ `x-amz-meta-kgw-*` metadata.

pub mod customer;
pub mod part_table;
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

    /// The `x-amz-server-side-encryption` value of a managed mode (SSE-C
    /// has none: its algorithm travels in its own header).
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            Self::S3 => Some("AES256"),
            Self::Kms => Some("aws:kms"),
            Self::Customer => None,
        }
    }

    /// A managed mode from its `x-amz-server-side-encryption` value.
    pub fn from_header_value(s: &str) -> Option<Self> {
        match s {
            "AES256" => Some(Self::S3),
            "aws:kms" => Some(Self::Kms),
            _ => None,
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

/// Serde for a managed mode as its header value (`AES256`, `aws:kms`), the
/// form bucket default encryption is stored and sent in.
pub mod managed_mode {
    use super::SseMode;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(mode: &SseMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(mode.header_value().ok_or_else(|| serde::ser::Error::custom("SSE-C is not a managed mode"))?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SseMode, D::Error> {
        let s = String::deserialize(d)?;
        SseMode::from_header_value(&s).ok_or_else(|| D::Error::custom(format!("not a managed SSE algorithm: {s}")))
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
