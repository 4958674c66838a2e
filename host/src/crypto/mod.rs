//! Envelope encryption: the object format of [`kgw_core::crypto`],
//! re-exported, plus the byte streams that apply it.
//!
//! - [`stream`]: encrypting and decrypting byte streams, one segment at a
//!   time (s3s byte streams in, s3s byte streams out).

pub use kgw_core::crypto::*;

pub mod stream;
