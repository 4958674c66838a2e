//! Key hierarchy of format v1.
//!
//! ```text
//! KMS data key ─┐                      (SSE-S3 / SSE-KMS)
//! SSE-C key ──HKDF(salt)─► sealing key ─┤
//!                                       └─ seals ─► object key (random, per object)
//!                                                      └─HKDF(part, segment size)─► part key
//! ```
//!
//! The object key is sealed with AES-256-GCM whose AAD binds the mode, bucket
//! and object key, so a sealed key copied onto another object fails to open.
//! Re-keying an object re-seals the same object key: no payload is touched.

use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use bytes::BytesMut;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::aead::{AeadImpl, KEY_LEN, NONCE_LEN, SegmentCipher, TAG_LEN};
use super::{CryptoError, random_bytes};

/// Version byte leading a sealed object key.
const SEALED_VERSION: u8 = 1;
/// Length of a sealed object key: version ‖ nonce ‖ key ‖ tag.
pub const SEALED_KEY_LEN: usize = 1 + NONCE_LEN + KEY_LEN + TAG_LEN;
/// Length of the random salt of an SSE-C derivation.
pub const SSEC_SALT_LEN: usize = 32;

macro_rules! secret_key_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                Self(bytes)
            }
            pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(redacted)"))
            }
        }
    };
}

secret_key_type!(
    /// The random per-object key. Never stored unsealed.
    ObjectKey
);
secret_key_type!(
    /// A per-part payload key derived from the object key.
    PartKey
);
secret_key_type!(
    /// A key-encryption key: a KMS data key, or derived from an SSE-C key.
    SealingKey
);
secret_key_type!(
    /// Format v2: the key of the object's layout tag (see `manifest`).
    LayoutKey
);

impl ObjectKey {
    /// A fresh random object key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = [0u8; KEY_LEN];
        random_bytes(&mut k)?;
        Ok(Self(k))
    }

    /// Derive the payload key of `part` (0 for a single PUT).
    pub fn part_key(&self, part: u32, segment_size: u32) -> PartKey {
        let mut info = Vec::with_capacity(32);
        info.extend_from_slice(b"kms-gateway/v1/part-key");
        info.extend_from_slice(&part.to_be_bytes());
        info.extend_from_slice(&segment_size.to_be_bytes());
        PartKey(hkdf(&[], &self.0, &info))
    }

    /// Format v2: the payload key of one UploadPart call of `part`. Each
    /// call of a part number gets the next `attempt` (claimed exclusively in
    /// the gateway state), so a retried, replaced or copied-over part never
    /// reuses a key, and with it a (key, nonce) pair. A single PUT is part 0,
    /// attempt 0, under a fresh object key.
    pub fn part_key_v2(&self, part: u32, attempt: u32, segment_size: u32) -> PartKey {
        let mut info = Vec::with_capacity(40);
        info.extend_from_slice(b"kms-gateway/v2/part-key");
        info.extend_from_slice(&part.to_be_bytes());
        info.extend_from_slice(&attempt.to_be_bytes());
        info.extend_from_slice(&segment_size.to_be_bytes());
        PartKey(hkdf(&[], &self.0, &info))
    }

    /// Format v2: the key of the layout tag.
    pub fn layout_key(&self) -> LayoutKey {
        LayoutKey(hkdf(&[], &self.0, b"kms-gateway/v2/layout-key"))
    }

    /// Derive the key that seals this object's plaintext ETag / checksums.
    pub fn metadata_key(&self) -> SealingKey {
        SealingKey(hkdf(&[], &self.0, b"kms-gateway/v1/metadata-key"))
    }
}

/// What a sealed object key is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub mode: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64 + self.bucket.len() + self.key.len());
        aad.extend_from_slice(b"kms-gateway/v1/object-key");
        for field in [self.mode, self.bucket, self.key] {
            aad.extend_from_slice(&(field.len() as u32).to_be_bytes());
            aad.extend_from_slice(field.as_bytes());
        }
        aad
    }
}

impl SealingKey {
    /// A subkey for one purpose (e.g. sealing secrets in the gateway state),
    /// so the master key itself never seals two kinds of data.
    pub fn derive(&self, purpose: &[u8]) -> SealingKey {
        SealingKey(hkdf(b"kms-gateway/v1/subkey", &self.0, purpose))
    }

    /// Seal `oek` for `binding`: `0x01 ‖ nonce ‖ GCM(oek) ‖ tag`.
    pub fn seal(&self, oek: &ObjectKey, binding: &Binding<'_>) -> Result<Vec<u8>, CryptoError> {
        self.seal_bytes(&oek.0, &binding.aad())
    }

    /// Open a sealed object key; fails for a wrong key or another binding.
    pub fn unseal(&self, sealed: &[u8], binding: &Binding<'_>) -> Result<ObjectKey, CryptoError> {
        let plain = self.open_bytes(sealed, &binding.aad())?;
        let bytes: [u8; KEY_LEN] = plain.as_slice().try_into().map_err(|_| CryptoError::MalformedSealedKey("length"))?;
        Ok(ObjectKey(bytes))
    }

    /// Seal arbitrary small metadata (e.g. the plaintext ETag).
    pub fn seal_bytes(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let mut buf = BytesMut::from(plain);
        SegmentCipher::new(AeadImpl::AwsLc, &self.0).seal(&nonce, aad, &mut buf)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        buf.zeroize();
        Ok(out)
    }

    /// Open what [`seal_bytes`](Self::seal_bytes) produced.
    pub fn open_bytes(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(CryptoError::MalformedSealedKey("too short"));
        }
        if sealed[0] != SEALED_VERSION {
            return Err(CryptoError::MalformedSealedKey("unknown version"));
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..=NONCE_LEN].try_into().expect("length checked above");
        let mut buf = BytesMut::from(&sealed[1 + NONCE_LEN..]);
        SegmentCipher::new(AeadImpl::AwsLc, &self.0).open(&nonce, aad, &mut buf)?;
        let out = Zeroizing::new(buf.to_vec());
        buf.zeroize();
        Ok(out)
    }
}

/// SSE-C: derive the sealing key and the key-check value from the customer
/// key and a per-object random salt. Only the salt and the check value are
/// stored; the check value tells "wrong key" (403) apart from damage (500).
pub fn derive_customer_keys(customer_key: &[u8; KEY_LEN], salt: &[u8]) -> (SealingKey, [u8; 32]) {
    let kek = SealingKey(hkdf(salt, customer_key, b"kms-gateway/v1/sse-c/sealing-key"));
    let check = hkdf(salt, customer_key, b"kms-gateway/v1/sse-c/key-check");
    (kek, check)
}

/// Constant-time comparison of two secrets or secret-derived values.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    Salt::new(HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out))
        // Expanding 32 bytes with SHA-256 is always within HKDF's limit.
        .expect("HKDF-SHA256 expand of 32 bytes");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b<'a>(key: &'a str) -> Binding<'a> {
        Binding { mode: "SSE-S3", bucket: "b", key }
    }

    #[test]
    fn seal_is_bound_to_object_and_key() {
        let kek = SealingKey([1; 32]);
        let oek = ObjectKey::generate().unwrap();
        let sealed = kek.seal(&oek, &b("k1")).unwrap();
        assert_eq!(sealed.len(), SEALED_KEY_LEN);
        assert_eq!(kek.unseal(&sealed, &b("k1")).unwrap().as_bytes(), oek.as_bytes());
        assert!(kek.unseal(&sealed, &b("k2")).is_err());
        assert!(SealingKey([2; 32]).unseal(&sealed, &b("k1")).is_err());
        let other_mode = Binding { mode: "SSE-KMS", ..b("k1") };
        assert!(kek.unseal(&sealed, &other_mode).is_err());
    }

    #[test]
    fn v2_part_keys_differ_per_attempt_and_from_v1() {
        let oek = ObjectKey::from_bytes([7; 32]);
        let a0 = oek.part_key_v2(3, 0, 4096);
        assert_ne!(a0.as_bytes(), oek.part_key_v2(3, 1, 4096).as_bytes());
        assert_ne!(a0.as_bytes(), oek.part_key_v2(4, 0, 4096).as_bytes());
        assert_ne!(a0.as_bytes(), oek.part_key_v2(3, 0, 8192).as_bytes());
        assert_ne!(a0.as_bytes(), oek.part_key(3, 4096).as_bytes());
        assert_eq!(a0.as_bytes(), oek.part_key_v2(3, 0, 4096).as_bytes());
    }

    #[test]
    fn binding_fields_are_length_prefixed() {
        // "ab"/"c" and "a"/"bc" must not collide.
        let x = Binding { mode: "m", bucket: "ab", key: "c" }.aad();
        let y = Binding { mode: "m", bucket: "a", key: "bc" }.aad();
        assert_ne!(x, y);
    }

    #[test]
    fn customer_key_derivation_depends_on_salt_and_key() {
        let (k1, c1) = derive_customer_keys(&[5; 32], &[1; 32]);
        let (k2, c2) = derive_customer_keys(&[5; 32], &[2; 32]);
        let (_, c3) = derive_customer_keys(&[6; 32], &[1; 32]);
        assert_ne!(k1.as_bytes(), k2.as_bytes());
        assert_ne!(c1, c2);
        assert_ne!(c1, c3);
        assert!(ct_eq(&c1, &derive_customer_keys(&[5; 32], &[1; 32]).1));
    }
}
