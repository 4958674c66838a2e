//! Envelope encryption and the object format (v1 and v2).
//!
//! - [`aead`]: AES-256-GCM behind one small type, on aws-lc-rs (hot path) or
//!   RustCrypto `aes-gcm` (independent reference, pure-Rust fallback).
//! - [`keys`]: object keys, per-part payload keys (HKDF), sealing of the
//!   object key under a key-encryption key with a binding AAD.
//! - [`format`]: the segment layout: nonces, AAD, sizes, range mapping.
//! - [`manifest`]: format v2's authenticated object layout (part table).
//! - [`layout`]: plaintext ranges of a (multipart) object → what to read
//!   and decrypt.
//!
//! The streams that encrypt and decrypt one segment at a time live in the
//! gateway (`kms-gateway`'s `crypto::stream`), beside the S3 byte streams.
//!
//! The byte-level specification lives in `docs/format.md`; the committed test
//! vectors in `host/tests/vectors/` pin it down.

pub mod aead;
pub mod format;
pub mod keys;
pub mod layout;
pub mod manifest;

pub use aead::{AeadImpl, SegmentCipher};
pub use format::{FormatParams, SegmentRange};
pub use keys::{ObjectKey, PartKey, SealingKey};

/// Errors of the crypto layer. Messages never include key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: wrong key, tampered, truncated or reordered data.
    #[error("ciphertext authentication failed")]
    Authentication,
    /// A sealed key blob has the wrong length or version.
    #[error("malformed sealed key ({0})")]
    MalformedSealedKey(&'static str),
    /// The ciphertext stream ended before the expected end, or ran past it.
    #[error("ciphertext length mismatch: {0}")]
    Length(&'static str),
    /// The object's layout tag (format v2) does not match its record.
    #[error("object layout authentication failed")]
    Layout,
    /// Parameters outside what format v1 allows.
    #[error("invalid format parameter: {0}")]
    InvalidParams(&'static str),
    /// The system random source failed.
    #[error("random source failure")]
    Random,
}

/// Fill `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| CryptoError::Random)
}
