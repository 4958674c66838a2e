//! SSE-C: the customer key triple (algorithm, key, key MD5).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest;
use zeroize::Zeroizing;

use super::SseError;
use crate::crypto::keys::ct_eq;

/// A validated SSE-C key. Held only for the request; never stored or logged.
pub struct CustomerKey {
    key: Zeroizing<[u8; 32]>,
    md5_b64: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerKey").field("md5", &self.md5_b64).finish_non_exhaustive()
    }
}

impl CustomerKey {
    /// Parse the triple with AWS's rules and error codes. Returns `None` when
    /// no SSE-C header is present. `require_md5` is false only where AWS
    /// tolerates a missing MD5 (reads).
    pub fn parse(alg: Option<&str>, key: Option<&str>, md5: Option<&str>, require_md5: bool) -> Result<Option<Self>, SseError> {
        let (alg, key) = match (alg, key, md5) {
            (None, None, None) => return Ok(None),
            (None, _, _) => {
                return Err(SseError::InvalidArgument(
                    "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.",
                ));
            }
            (Some(_), None, _) => {
                return Err(SseError::InvalidArgument(
                    "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.",
                ));
            }
            (Some(a), Some(k), _) => (a, k),
        };
        if alg != "AES256" {
            return Err(SseError::InvalidEncryptionAlgorithm);
        }
        let raw = Zeroizing::new(
            B64.decode(key.trim())
                .map_err(|_| SseError::InvalidArgument("The secret key was invalid for the specified algorithm."))?,
        );
        let actual_md5 = B64.encode(md5::Md5::digest(&raw[..]));
        // AWS checks the MD5 before the key length.
        if let Some(m) = md5
            && !ct_eq(m.trim().as_bytes(), actual_md5.as_bytes())
        {
            return Err(SseError::InvalidArgument(
                "The calculated MD5 hash of the key did not match the hash that was provided.",
            ));
        }
        if md5.is_none() && require_md5 {
            return Err(SseError::InvalidArgument(
                "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.",
            ));
        }
        let bytes: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| SseError::InvalidArgument("The secret key was invalid for the specified algorithm."))?;
        Ok(Some(Self { key: Zeroizing::new(bytes), md5_b64: actual_md5 }))
    }

    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// Base64 MD5 of the key, as echoed in `x-amz-server-side-encryption-customer-key-MD5`.
    pub fn md5_b64(&self) -> &str {
        &self.md5_b64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5(k: &[u8]) -> String {
        B64.encode(md5::Md5::digest(k))
    }

    #[test]
    fn aws_error_cases() {
        let key = [1u8; 32];
        let k = B64.encode(key);
        let m = md5(&key);
        assert!(CustomerKey::parse(None, None, None, true).unwrap().is_none());
        let ok = CustomerKey::parse(Some("AES256"), Some(&k), Some(&m), true).unwrap().unwrap();
        assert_eq!(ok.key(), &key);
        assert_eq!(ok.md5_b64(), m);
        assert_eq!(
            CustomerKey::parse(Some("AES128"), Some(&k), Some(&m), true).unwrap_err(),
            SseError::InvalidEncryptionAlgorithm
        );
        assert!(
            matches!(CustomerKey::parse(None, Some(&k), Some(&m), true), Err(SseError::InvalidArgument(s)) if s.contains("valid encryption algorithm"))
        );
        assert!(
            matches!(CustomerKey::parse(Some("AES256"), None, Some(&m), true), Err(SseError::InvalidArgument(s)) if s.contains("appropriate secret key"))
        );
        assert!(
            matches!(CustomerKey::parse(Some("AES256"), Some(&k), Some(&md5(b"x")), true), Err(SseError::InvalidArgument(s)) if s.contains("MD5"))
        );
        let short = [1u8; 16];
        assert!(
            matches!(CustomerKey::parse(Some("AES256"), Some(&B64.encode(short)), Some(&md5(&short)), true), Err(SseError::InvalidArgument(s)) if s.contains("invalid for the specified"))
        );
        assert!(CustomerKey::parse(Some("AES256"), Some(&k), None, true).is_err());
        assert!(CustomerKey::parse(Some("AES256"), Some(&k), None, false).unwrap().is_some());
        // The key never shows in Debug output.
        assert!(!format!("{ok:?}").contains(&k));
    }
}
