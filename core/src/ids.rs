//! KMS key ids and encryption contexts, as object records name them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated key id: 1-128 of `[A-Za-z0-9._-]`, not starting with `.`,
/// so it is safe as a file name and a Vault path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

/// A string that is not a valid [`KeyId`] (its first 80 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key id `{0}`")]
pub struct InvalidKeyId(pub String);

impl KeyId {
    pub fn new(s: impl Into<String>) -> Result<Self, InvalidKeyId> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with('.')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok { Ok(Self(s)) } else { Err(InvalidKeyId(s.chars().take(80).collect())) }
    }

    /// Accept the forms S3 clients send: a bare id, `alias/<id>`, or an ARN
    /// `arn:aws:kms:<region>:<account>:key/<id>` (or `:alias/<id>`).
    pub fn from_client(s: &str) -> Result<Self, InvalidKeyId> {
        let tail = match s.strip_prefix("arn:") {
            Some(rest) => rest.rsplit_once(":key/").or_else(|| rest.rsplit_once(":alias/")).map(|(_, id)| id).unwrap_or(s),
            None => s.strip_prefix("alias/").unwrap_or(s),
        };
        Self::new(tail)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyId {
    type Error = InvalidKeyId;
    fn try_from(s: String) -> Result<Self, InvalidKeyId> {
        Self::new(s)
    }
}

impl From<KeyId> for String {
    fn from(k: KeyId) -> String {
        k.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An encryption context: string pairs bound to a wrapped data key.
/// Sorted, so its canonical JSON encoding is deterministic.
pub type EncryptionContext = BTreeMap<String, String>;

/// Canonical bytes of a context, for use as associated data.
pub fn canonical_context(ctx: &EncryptionContext) -> Vec<u8> {
    // A BTreeMap of strings always serialises.
    serde_json::to_vec(ctx).expect("string map serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_reject_path_tricks() {
        for bad in ["", "../x", "a/b", ".hidden", "a b", "x\0", &"k".repeat(129), "é"] {
            assert!(KeyId::new(bad).is_err(), "{bad:?}");
        }
        for good in ["gateway-default", "tenant_1.key", "A-9"] {
            assert!(KeyId::new(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn client_forms_are_normalised() {
        let k = |s| KeyId::from_client(s).unwrap().to_string();
        assert_eq!(k("arn:aws:kms:us-east-1:123456789012:key/my-key"), "my-key");
        assert_eq!(k("alias/my-key"), "my-key");
        assert_eq!(k("my-key"), "my-key");
        assert!(KeyId::from_client("arn:aws:kms:us-east-1:1:key/../../etc").is_err());
    }
}
