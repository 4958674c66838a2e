//! Types shared by every KMS backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::KmsError;
use crate::crypto::SealingKey;

pub use kgw_core::ids::{EncryptionContext, InvalidKeyId, KeyId, canonical_context};

/// A data key as issued by a backend.
#[derive(Clone)]
pub struct DataKey {
    pub plaintext: SealingKey,
    /// Opaque wrapped form, stored with the object.
    pub wrapped: Vec<u8>,
    /// The master key version that wrapped it.
    pub key_version: u32,
}

/// Lifecycle state of a master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl KeyState {
    /// The state's name in the admin API and in the rotation hook's WIT
    /// contract (`key-facts.state`): spelled out, so that renaming a
    /// variant cannot change what policies and clients receive.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
            Self::PendingDeletion => "PendingDeletion",
        }
    }
}

/// Key metadata as reported to operators. No key material.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyInfo {
    pub key_id: KeyId,
    pub description: String,
    pub state: KeyState,
    pub current_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub rotated_at: Option<OffsetDateTime>,
    pub tags: BTreeMap<String, String>,
    pub backend: String,
    /// When a key pending deletion will be deleted.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub deletion_date: Option<OffsetDateTime>,
}

/// A change to a key's metadata or state (not its material).
#[derive(Debug, Clone)]
pub enum KeyUpdate {
    Enable,
    Disable,
    Description(String),
    Tag(BTreeMap<String, String>),
    Untag(Vec<String>),
    ScheduleDeletion(OffsetDateTime),
    CancelDeletion,
}

/// The mutable part of a key's metadata, shared by every backend so state
/// transitions follow one set of rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyMeta {
    #[serde(default)]
    pub description: String,
    pub state: KeyState,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub deletion_date: Option<OffsetDateTime>,
}

impl KeyMeta {
    /// Apply `update` under AWS KMS's state rules: a key pending deletion
    /// only accepts cancellation; cancelling leaves it disabled.
    pub fn apply(&mut self, id: &KeyId, update: KeyUpdate) -> Result<(), KmsError> {
        let pending = self.state == KeyState::PendingDeletion;
        let refuse = |what: &str| Err(KmsError::InvalidState(format!("key '{id}' is pending deletion; {what} is not allowed")));
        match update {
            KeyUpdate::CancelDeletion if pending => {
                self.state = KeyState::Disabled;
                self.deletion_date = None;
            }
            KeyUpdate::CancelDeletion => {
                return Err(KmsError::InvalidState(format!("key '{id}' is not pending deletion")));
            }
            _ if pending => return refuse("this change"),
            KeyUpdate::Enable => self.state = KeyState::Enabled,
            KeyUpdate::Disable => self.state = KeyState::Disabled,
            KeyUpdate::Description(d) => self.description = d,
            KeyUpdate::Tag(t) => {
                if t.contains_key("name") && self.tags.get("name") != t.get("name") {
                    return Err(KmsError::InvalidState("the 'name' tag is immutable".into()));
                }
                self.tags.extend(t);
            }
            KeyUpdate::Untag(keys) => {
                if keys.iter().any(|k| k == "name") {
                    return Err(KmsError::InvalidState("the 'name' tag is immutable".into()));
                }
                for k in keys {
                    self.tags.remove(&k);
                }
            }
            KeyUpdate::ScheduleDeletion(when) => {
                self.state = KeyState::PendingDeletion;
                self.deletion_date = Some(when);
            }
        }
        Ok(())
    }
}

/// What every backend stores about a key besides its material.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyRecord {
    #[serde(flatten)]
    pub meta: KeyMeta,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub rotated_at: Option<OffsetDateTime>,
}

impl KeyRecord {
    /// A new enabled key.
    pub fn new(description: String, tags: BTreeMap<String, String>) -> Self {
        Self {
            meta: KeyMeta { description, state: KeyState::Enabled, tags, deletion_date: None },
            created_at: OffsetDateTime::now_utc(),
            rotated_at: None,
        }
    }

    pub fn info(&self, key_id: &KeyId, current_version: u32, backend: &str) -> KeyInfo {
        KeyInfo {
            key_id: key_id.clone(),
            description: self.meta.description.clone(),
            state: self.meta.state,
            current_version,
            created_at: self.created_at,
            rotated_at: self.rotated_at,
            tags: self.meta.tags.clone(),
            backend: backend.to_owned(),
            deletion_date: self.meta.deletion_date,
        }
    }
}

/// Refuse data-key work on a key that is not enabled.
pub fn require_enabled(id: &KeyId, state: KeyState) -> Result<(), KmsError> {
    match state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::Disabled(id.clone())),
        KeyState::PendingDeletion => Err(KmsError::PendingDeletion(id.clone())),
    }
}

/// A request to create a master key.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateKeyRequest {
    /// Generated when absent.
    pub key_id: Option<KeyId>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_state_names_are_the_contract() {
        // The admin API and the rotation hook's `key-facts.state` (WIT).
        let names: Vec<_> = [KeyState::Enabled, KeyState::Disabled, KeyState::PendingDeletion].map(KeyState::as_str).into();
        assert_eq!(names, ["Enabled", "Disabled", "PendingDeletion"]);
    }
}
