//! Key management: the backend traits, their shared types, and backends.
//!
//! [`KeyBackend`] is what the data path needs (data keys in and out);
//! [`KeyAdmin`] is the optional management surface. A backend implements
//! both when it can. [`Kms`] is the handle the rest of the gateway holds.
//!
//! - [`types`]: key ids, encryption contexts, key metadata.
//! - [`local`]: JSON key files on disk, sealed under a master key.

pub mod local;
pub mod master;
pub mod types;

use std::sync::Arc;

use async_trait::async_trait;

use crate::crypto::SealingKey;
pub use types::{CreateKeyRequest, DataKey, EncryptionContext, KeyId, KeyInfo, KeyState};

/// Errors of the KMS layer. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("invalid key id: {0}")]
    InvalidKeyId(String),
    #[error("key '{0}' does not exist")]
    NotFound(KeyId),
    #[error("key '{0}' already exists")]
    AlreadyExists(KeyId),
    #[error("key '{0}' is disabled")]
    Disabled(KeyId),
    #[error("key '{0}' is pending deletion")]
    PendingDeletion(KeyId),
    #[error("key '{key}' has no version {version}")]
    UnknownVersion { key: KeyId, version: u32 },
    #[error("the data key does not decrypt under key '{0}' and this context")]
    Unwrap(KeyId),
    #[error("malformed wrapped data key")]
    MalformedDataKey,
    #[error("KMS unavailable: {0}")]
    Unavailable(String),
    #[error("key store I/O error at {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt key file {path}")]
    Corrupt {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("master key: {0}")]
    MasterKey(String),
}

/// What the data path needs from a key backend.
#[async_trait]
pub trait KeyBackend: Send + Sync {
    /// Short backend name for status and metrics (`local`, `vault`).
    fn kind(&self) -> &'static str;
    /// A fresh data key under the current version of `key_id`, wrapped with
    /// `context` bound to it.
    async fn generate_data_key(&self, key_id: &KeyId, context: &EncryptionContext) -> Result<DataKey, KmsError>;
    /// Unwrap a data key; fails unless `key_id` and `context` match the wrap.
    async fn decrypt_data_key(&self, key_id: &KeyId, wrapped: &[u8], context: &EncryptionContext)
    -> Result<SealingKey, KmsError>;
    async fn describe_key(&self, key_id: &KeyId) -> Result<KeyInfo, KmsError>;
    async fn health(&self) -> Result<(), KmsError>;
}

/// Optional key management operations.
#[async_trait]
pub trait KeyAdmin: Send + Sync {
    async fn create_key(&self, req: CreateKeyRequest) -> Result<KeyInfo, KmsError>;
    async fn list_keys(&self) -> Result<Vec<KeyInfo>, KmsError>;
    async fn set_enabled(&self, key_id: &KeyId, enabled: bool) -> Result<KeyInfo, KmsError>;
    /// Add a new key version; older versions keep decrypting.
    async fn rotate_key(&self, key_id: &KeyId) -> Result<KeyInfo, KmsError>;
}

/// The KMS as the gateway sees it: a backend, its admin surface, and the
/// default key for SSE-S3 and for SSE-KMS without a key id.
#[derive(Clone)]
pub struct Kms {
    pub backend: Arc<dyn KeyBackend>,
    pub admin: Option<Arc<dyn KeyAdmin>>,
    pub default_key_id: KeyId,
}

impl Kms {
    /// A KMS on the local backend, creating the default key when missing.
    pub async fn local(backend: Arc<local::LocalBackend>, default_key_id: KeyId) -> Result<Self, KmsError> {
        match backend.describe_key(&default_key_id).await {
            Ok(_) => {}
            Err(KmsError::NotFound(_)) => {
                let req = CreateKeyRequest {
                    key_id: Some(default_key_id.clone()),
                    description: "default key of this gateway (SSE-S3 and SSE-KMS without a key id)".into(),
                    tags: Default::default(),
                };
                backend.create_key(req).await?;
            }
            Err(e) => return Err(e),
        }
        Ok(Self { backend: backend.clone(), admin: Some(backend), default_key_id })
    }
}
