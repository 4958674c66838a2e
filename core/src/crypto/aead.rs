//! AES-256-GCM with two interchangeable implementations.
//!
//! aws-lc-rs is the hot path (≈20 GB/s per core on AES-NI machines). The
//! RustCrypto `aes-gcm` crate is the independent reference: every committed
//! test vector is checked against both, byte for byte, and it can be selected
//! as a pure-Rust fallback.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use bytes::BytesMut;

use super::CryptoError;

/// Key length of AES-256.
pub const KEY_LEN: usize = 32;
/// GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// GCM tag length.
pub const TAG_LEN: usize = 16;

/// Which AES-GCM implementation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AeadImpl {
    /// aws-lc-rs: fast, used by default.
    #[default]
    AwsLc,
    /// RustCrypto `aes-gcm`: pure Rust reference.
    RustCrypto,
}

/// An AES-256-GCM key ready to seal or open segments.
pub enum SegmentCipher {
    AwsLc(LessSafeKey),
    RustCrypto(Box<aes_gcm::Aes256Gcm>),
}

impl SegmentCipher {
    /// Build a cipher for `key` with the chosen implementation.
    pub fn new(imp: AeadImpl, key: &[u8; KEY_LEN]) -> Self {
        match imp {
            AeadImpl::AwsLc => {
                // A 32-byte key is always valid for AES_256_GCM.
                let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256 key");
                Self::AwsLc(LessSafeKey::new(unbound))
            }
            AeadImpl::RustCrypto => Self::RustCrypto(Box::new(aes_gcm::Aes256Gcm::new(key.into()))),
        }
    }

    /// Encrypt `buf` in place and append the tag.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut BytesMut) -> Result<(), CryptoError> {
        match self {
            Self::AwsLc(k) => k
                .seal_in_place_append_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
                .map_err(|_| CryptoError::Authentication),
            Self::RustCrypto(k) => {
                let tag =
                    k.encrypt_in_place_detached(nonce.into(), aad, buf.as_mut()).map_err(|_| CryptoError::Authentication)?;
                buf.extend_from_slice(&tag);
                Ok(())
            }
        }
    }

    /// Verify and decrypt `buf` (ciphertext ‖ tag) in place; on success `buf`
    /// holds the plaintext. On failure `buf` must be discarded.
    pub fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut BytesMut) -> Result<(), CryptoError> {
        if buf.len() < TAG_LEN {
            return Err(CryptoError::Length("segment shorter than a tag"));
        }
        match self {
            Self::AwsLc(k) => {
                let n = k
                    .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf.as_mut())
                    .map_err(|_| CryptoError::Authentication)?
                    .len();
                buf.truncate(n);
            }
            Self::RustCrypto(k) => {
                let split = buf.len() - TAG_LEN;
                let tag = aes_gcm::Tag::clone_from_slice(&buf[split..]);
                k.decrypt_in_place_detached(nonce.into(), aad, &mut buf[..split], &tag)
                    .map_err(|_| CryptoError::Authentication)?;
                buf.truncate(split);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_implementations_agree_and_reject_tampering() {
        let key = [7u8; KEY_LEN];
        let nonce = [9u8; NONCE_LEN];
        let mut outs = Vec::new();
        for imp in [AeadImpl::AwsLc, AeadImpl::RustCrypto] {
            let c = SegmentCipher::new(imp, &key);
            let mut buf = BytesMut::from(&b"hello segment"[..]);
            c.seal(&nonce, b"aad", &mut buf).unwrap();
            outs.push(buf.clone());
            let mut bad = buf.clone();
            bad[0] ^= 1;
            assert!(c.open(&nonce, b"aad", &mut bad).is_err());
            let mut wrong_aad = buf.clone();
            assert!(c.open(&nonce, b"aae", &mut wrong_aad).is_err());
            c.open(&nonce, b"aad", &mut buf).unwrap();
            assert_eq!(&buf[..], b"hello segment");
        }
        assert_eq!(outs[0], outs[1]);
    }
}
