//! Request and response shapes of the KMS admin API. Requests accept the
//! two spellings of the RustFS API (snake_case and the older PascalCase);
//! unknown fields are refused by name.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

fn ts(t: &OffsetDateTime) -> Option<String> {
    t.format(&Rfc3339).ok()
}

/// The list status spelling (`Active` for enabled).
pub fn status_name(s: KeyState) -> &'static str {
    match s {
        KeyState::Enabled => "Active",
        other => other.as_str(),
    }
}

/// `{"success": true, "message": …}` and the answer's own fields.
#[derive(Serialize)]
pub struct Done<T> {
    success: bool,
    message: &'static str,
    #[serde(flatten)]
    body: T,
}

impl<T: Serialize> Done<T> {
    pub fn new(message: &'static str, body: T) -> Self {
        Self { success: true, message, body }
    }
}

/// An answer that is only the KMS state (start, stop, configure).
#[derive(Serialize)]
pub struct StatusOnly {
    pub status: KmsStatus,
}

/// `kms/config`: the running configuration with its secrets redacted.
#[derive(Serialize)]
pub struct ConfigReply {
    pub status: KmsStatus,
    pub config: Option<Value>,
}

/// `kms/clear-cache`, in RustFS's shape.
#[derive(Serialize)]
pub struct CacheCleared {
    success: bool,
    status: &'static str,
    message: &'static str,
}

impl Default for CacheCleared {
    fn default() -> Self {
        Self { success: true, status: "success", message: "cache cleared successfully" }
    }
}

/// A key operation's answer: the key and its metadata.
#[derive(Serialize)]
pub struct KeyReply<'a> {
    pub key_id: &'a KeyId,
    pub key_metadata: KeyMetadata<'a>,
}

impl<'a> KeyReply<'a> {
    pub fn of(k: &'a KeyInfo) -> Self {
        Self { key_id: &k.key_id, key_metadata: KeyMetadata::of(k) }
    }
}

/// `delete-key`: scheduled (with the metadata) or deleted at once.
#[derive(Serialize)]
pub struct DeleteReply<'a> {
    key_id: &'a KeyId,
    deletion_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_metadata: Option<KeyMetadata<'a>>,
}

impl<'a> DeleteReply<'a> {
    pub fn scheduled(k: &'a KeyInfo) -> Self {
        let key_metadata = KeyMetadata::of(k);
        Self {
            key_id: &k.key_id,
            deletion_date: key_metadata.deletion_date.clone(),
            deleted: None,
            key_metadata: Some(key_metadata),
        }
    }

    pub fn deleted(key_id: &'a KeyId) -> Self {
        Self { key_id, deletion_date: None, deleted: Some(true), key_metadata: None }
    }
}

/// `list-keys`: one page.
#[derive(Serialize)]
pub struct KeyList<'a> {
    pub keys: Vec<KeyListEntry<'a>>,
    pub truncated: bool,
    pub next_marker: Option<String>,
}

/// `generate-data-key`: the plaintext key is the answer (the caller asked
/// for it, as in the RustFS API). Its base64 text passes through the JSON
/// value and the response body, which are not zeroized; the key's bytes
/// are, where the KMS service holds them.
#[derive(Serialize)]
pub struct DataKeyReply<'a> {
    success: bool,
    key_id: &'a KeyId,
    key_version: u32,
    plaintext_key: String,
    ciphertext_blob: String,
}

impl<'a> DataKeyReply<'a> {
    pub fn new(key_id: &'a KeyId, key_version: u32, plaintext: &[u8], wrapped: &[u8]) -> Self {
        Self { success: true, key_id, key_version, plaintext_key: B64.encode(plaintext), ciphertext_blob: B64.encode(wrapped) }
    }
}

/// `KeyMetadata` as in the RustFS API (AWS KMS names), plus version info.
#[derive(Serialize)]
pub struct KeyMetadata<'a> {
    key_id: &'a KeyId,
    key_state: &'static str,
    key_usage: &'static str,
    key_spec: &'static str,
    description: &'a str,
    creation_date: Option<String>,
    deletion_date: Option<String>,
    rotated_at: Option<String>,
    current_version: u32,
    origin: &'static str,
    key_manager: &'static str,
    backend: &'a str,
    tags: &'a BTreeMap<String, String>,
}

impl<'a> KeyMetadata<'a> {
    pub fn of(k: &'a KeyInfo) -> Self {
        Self {
            key_id: &k.key_id,
            key_state: k.state.as_str(),
            key_usage: "EncryptDecrypt",
            key_spec: "AES_256",
            description: &k.description,
            creation_date: ts(&k.created_at),
            deletion_date: k.deletion_date.as_ref().and_then(ts),
            rotated_at: k.rotated_at.as_ref().and_then(ts),
            current_version: k.current_version,
            origin: "KMS",
            key_manager: "CUSTOMER",
            backend: &k.backend,
            tags: &k.tags,
        }
    }
}

/// `KeyInfo` (list entries) as in the RustFS API.
#[derive(Serialize)]
pub struct KeyListEntry<'a> {
    key_id: &'a KeyId,
    description: &'a str,
    algorithm: &'static str,
    usage: &'static str,
    status: &'static str,
    version: u32,
    tags: &'a BTreeMap<String, String>,
    created_at: Option<String>,
    rotated_at: Option<String>,
    deletion_date: Option<String>,
    backend: &'a str,
}

impl<'a> KeyListEntry<'a> {
    pub fn of(k: &'a KeyInfo) -> Self {
        Self {
            key_id: &k.key_id,
            description: &k.description,
            algorithm: "AES_256",
            usage: "EncryptDecrypt",
            status: status_name(k.state),
            version: k.current_version,
            tags: &k.tags,
            created_at: ts(&k.created_at),
            rotated_at: k.rotated_at.as_ref().and_then(ts),
            deletion_date: k.deletion_date.as_ref().and_then(ts),
            backend: &k.backend,
        }
    }
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
    /// Cluster mode: this replica, the generation it has seen and the
    /// replicas heard from in the last 30 s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

/// The cluster as one replica sees it.
#[derive(Serialize)]
pub struct ClusterStatus {
    pub replica: String,
    pub generation: u64,
    pub kms_config: Option<String>,
    pub replicas: Vec<crate::state::replicas::ReplicaDoc>,
    /// Set when the replicas do not all run the same KMS configuration.
    pub diverged: bool,
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

    /// The answers' field names are the RustFS API's: clients parse them.
    #[test]
    fn answer_shapes_are_rustfs_shapes() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let k = KeyInfo {
            key_id: KeyId::new("k1").unwrap(),
            description: "d".into(),
            state: KeyState::PendingDeletion,
            current_version: 2,
            created_at: at,
            rotated_at: None,
            tags: BTreeMap::from([("team".into(), "a".into())]),
            backend: "local".into(),
            deletion_date: Some(at),
        };
        let v = serde_json::to_value(Done::new("m", DeleteReply::scheduled(&k))).unwrap();
        assert_eq!(v["success"], true);
        assert_eq!(v["message"], "m");
        assert_eq!(v["deletion_date"], "2023-11-14T22:13:20Z");
        assert_eq!(v["key_metadata"]["key_state"], "PendingDeletion");
        assert_eq!(v["key_metadata"]["key_spec"], "AES_256");
        assert!(v["key_metadata"]["rotated_at"].is_null() && v.get("deleted").is_none(), "{v}");
        let gone = serde_json::to_value(DeleteReply::deleted(&k.key_id)).unwrap();
        assert_eq!(gone, serde_json::json!({ "key_id": "k1", "deletion_date": null, "deleted": true }));
        let entry = serde_json::to_value(KeyListEntry::of(&k)).unwrap();
        assert_eq!((entry["status"].as_str(), entry["version"].as_u64()), (Some("PendingDeletion"), Some(2)));
        let dk = serde_json::to_value(DataKeyReply::new(&k.key_id, 2, &[0u8; 32], b"w")).unwrap();
        assert_eq!(dk["plaintext_key"].as_str().map(str::len), Some(44));
        assert_eq!(dk["ciphertext_blob"], "dw==");
    }
}
