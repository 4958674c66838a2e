//! Request and response shapes of the KMS admin API. Requests accept the
//! two spellings of the RustFS API (snake_case and the older PascalCase);
//! unknown fields are refused by name.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::ApiError;
use crate::kms::cache::CacheStats;
use crate::kms::manager::KmsStatus;
use crate::kms::{KeyBackend, KeyId, KeyInfo, KeyState};

/// Parse a JSON body strictly; an empty body parses as `{}`.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    #[serde(default)]
    pub force: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[serde(alias = "KeyId", alias = "keyId")]
    pub key_id: Option<String>,
    #[serde(alias = "KeyUsage")]
    pub key_usage: Option<String>,
    #[serde(alias = "Description")]
    pub description: Option<String>,
    #[serde(alias = "Tags")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Accepted for compatibility; only AES-256 exists.
    #[serde(alias = "KeySpec")]
    pub key_spec: Option<String>,
}

/// `{key_id}` plus the fields of one key operation.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KeyOp {
    #[serde(alias = "KeyId", alias = "keyId")]
    pub key_id: Option<String>,
    #[serde(alias = "Description")]
    pub description: Option<String>,
    #[serde(alias = "Tags")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(alias = "TagKeys")]
    pub tag_keys: Option<Vec<String>>,
    #[serde(alias = "PendingWindowInDays")]
    pub pending_window_in_days: Option<u32>,
    pub force_immediate: Option<bool>,
    pub confirm_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateDataKey {
    #[serde(alias = "KeyId", alias = "keyId")]
    pub key_id: Option<String>,
    #[serde(alias = "KeySpec")]
    pub key_spec: Option<String>,
    #[serde(alias = "EncryptionContext")]
    pub encryption_context: Option<BTreeMap<String, String>>,
}

fn ts(t: &OffsetDateTime) -> Value {
    t.format(&Rfc3339).map(Value::String).unwrap_or(Value::Null)
}

fn opt_ts(t: &Option<OffsetDateTime>) -> Value {
    t.as_ref().map(ts).unwrap_or(Value::Null)
}

/// The list status spelling (`Active` for enabled).
pub fn status_name(s: KeyState) -> &'static str {
    match s {
        KeyState::Enabled => "Active",
        other => other.as_str(),
    }
}

/// `KeyMetadata` as in the RustFS API (AWS KMS names), plus version info.
pub fn key_metadata(k: &KeyInfo) -> Value {
    json!({
        "key_id": k.key_id,
        "key_state": k.state.as_str(),
        "key_usage": "EncryptDecrypt",
        "key_spec": "AES_256",
        "description": k.description,
        "creation_date": ts(&k.created_at),
        "deletion_date": opt_ts(&k.deletion_date),
        "rotated_at": opt_ts(&k.rotated_at),
        "current_version": k.current_version,
        "origin": "KMS",
        "key_manager": "CUSTOMER",
        "backend": k.backend,
        "tags": k.tags,
    })
}

/// `KeyInfo` (list entries) as in the RustFS API.
pub fn key_info(k: &KeyInfo) -> Value {
    json!({
        "key_id": k.key_id,
        "description": k.description,
        "algorithm": "AES_256",
        "usage": "EncryptDecrypt",
        "status": status_name(k.state),
        "version": k.current_version,
        "tags": k.tags,
        "created_at": ts(&k.created_at),
        "rotated_at": opt_ts(&k.rotated_at),
        "deletion_date": opt_ts(&k.deletion_date),
        "backend": k.backend,
    })
}

/// `status` filter values, case- and `_`-insensitive.
pub fn parse_status_filter(s: &str) -> Result<KeyState, ApiError> {
    match s.to_ascii_lowercase().replace(['_', '-'], "").as_str() {
        "active" | "enabled" => Ok(KeyState::Enabled),
        "disabled" => Ok(KeyState::Disabled),
        "pendingdeletion" => Ok(KeyState::PendingDeletion),
        _ => Err(ApiError::bad_request(format!("query `status`: '{s}' is not one of Active, Disabled, PendingDeletion"))),
    }
}

/// `kms/status`: the RustFS fields and the gateway's own.
#[derive(Serialize)]
pub struct KmsStatusReply {
    pub status: KmsStatus,
    pub running: bool,
    pub backend_type: Option<&'static str>,
    pub backend_status: &'static str,
    pub healthy: bool,
    pub health_error: Option<String>,
    pub ready: bool,
    pub generation: Option<u64>,
    pub default_key_id: Option<KeyId>,
    pub cache_enabled: Option<bool>,
    pub bucket_keys: Option<bool>,
    pub cache_offline_grace_seconds: Option<u64>,
    /// Of the running configuration's caches (they start empty on reconfigure).
    pub cache_stats: Option<CacheStats>,
    pub circuit_breaker: &'static str,
    pub capabilities: Option<Capabilities>,
    pub config_summary: Option<Value>,
}

/// What the running backend can do, as the RustFS status reports it.
#[derive(Serialize)]
pub struct Capabilities {
    encrypt: bool,
    decrypt: bool,
    generate_data_key: bool,
    enable_disable: bool,
    rotate: bool,
    schedule_deletion: bool,
    physical_delete: bool,
    /// Re-wrapping on the KMS side (else re-keying unwraps in the gateway).
    rewrap: bool,
    update_key_metadata: bool,
    versioning: bool,
}

impl Capabilities {
    pub fn of(backend: &dyn KeyBackend) -> Self {
        Self {
            encrypt: true,
            decrypt: true,
            generate_data_key: true,
            enable_disable: true,
            rotate: true,
            schedule_deletion: true,
            physical_delete: true,
            rewrap: backend.rewraps(),
            update_key_metadata: true,
            versioning: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_and_unknown_fields() {
        let a: CreateKey = parse(br#"{"KeyUsage":"EncryptDecrypt","Description":"d","Tags":{"name":"k"}}"#).unwrap();
        let b: CreateKey = parse(br#"{"key_usage":"EncryptDecrypt","description":"d","tags":{"name":"k"}}"#).unwrap();
        assert_eq!(a.description, b.description);
        assert_eq!(a.tags, b.tags);
        let e = parse::<CreateKey>(br#"{"descripton":"typo"}"#).err().unwrap();
        assert!(e.message.contains("descripton"), "{}", e.message);
        assert!(!parse::<StartRequest>(b"").unwrap().force);
        assert!(parse::<StartRequest>(br#"{"force":true}"#).unwrap().force);
    }

    #[test]
    fn status_filter_spellings() {
        for (s, k) in
            [("Active", KeyState::Enabled), ("pending_deletion", KeyState::PendingDeletion), ("DISABLED", KeyState::Disabled)]
        {
            assert_eq!(parse_status_filter(s).unwrap(), k);
        }
        assert!(parse_status_filter("Deleted-ish").is_err());
    }
}
