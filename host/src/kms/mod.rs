//! Key management: the backend traits, their shared types, and backends.
//!
//! [`KeyBackend`] is what the data path needs (data keys in and out);
//! [`KeyAdmin`] is the optional management surface. A backend implements
//! both when it can. [`Kms`] is the handle the rest of the gateway holds.
//!
//! - [`types`]: key ids, encryption contexts, key metadata and its rules.
//! - [`local`]: JSON key files on disk, sealed under a master key.
//! - [`vault`]: HashiCorp Vault / OpenBao (Transit + KV v2).
//! - [`config`]: what `configure` accepts; stored form with sealed secrets.
//! - [`secret_files`]: which files a configuration may name as secrets.
//! - [`resilience`]: timeouts, retries, circuit breaker for remote backends.
//! - [`cache`]: data-key caches (unwrapped keys, bucket keys).
//! - [`service`]: one running version: backend + caches + metrics/audit.
//! - [`manager`]: the lifecycle (`NotConfigured → Configured → Running`).

pub mod cache;
pub use kgw_core::kms_config as config;
pub mod local;
pub mod manager;
pub mod master;
pub mod resilience;
pub mod secret_files;
pub mod service;
pub mod types;
pub mod vault;

use async_trait::async_trait;

use crate::crypto::SealingKey;
pub use types::{CreateKeyRequest, DataKey, EncryptionContext, KeyId, KeyInfo, KeyMeta, KeyState, KeyUpdate};

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
    /// The shared state store holding the local backend's keys (cluster mode).
    #[error("key store: {0}")]
    State(#[from] crate::state::StateError),
    #[error("corrupt key file {path}")]
    Corrupt {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("not supported by this backend: {0}")]
    Unsupported(String),
    #[error("KMS refused the request: {0}")]
    Denied(String),
    #[error("KMS rejected the request: {0}")]
    Rejected(String),
    /// The backend has nothing at a path the caller asked about (Vault's
    /// 404 where no key id is involved, e.g. an empty key listing).
    #[error("KMS has nothing at {0}")]
    Missing(String),
    #[error("KMS is not running")]
    NotRunning,
    /// A fault of the gateway itself (random source, local sealing, a
    /// task that died): not the backend's, so never retried or counted
    /// by the circuit breaker.
    #[error("internal error: {what}")]
    Internal {
        what: &'static str,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl From<types::InvalidKeyId> for KmsError {
    fn from(e: types::InvalidKeyId) -> Self {
        Self::InvalidKeyId(e.0)
    }
}

/// What a [`KmsError`] means to a caller: the one classification behind
/// the S3 answer, the admin answer, metrics and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsErrorClass {
    /// No such key, or an id that cannot name one.
    NotFound,
    AlreadyExists,
    /// Disabled, pending deletion, or an operation the state forbids.
    InvalidState,
    /// A wrapped data key that does not open (wrong key, version, context).
    UnwrapFailed,
    /// The backend refused the gateway's credentials or permissions.
    Denied,
    /// The backend refused the request itself (a bad argument).
    Rejected,
    Unsupported,
    NotRunning,
    /// Not reached, or no answer: worth a retry, 503.
    Unavailable,
    /// The gateway's own fault.
    Internal,
}

impl KmsErrorClass {
    /// Short name for metrics and the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::InvalidState => "invalid_state",
            Self::UnwrapFailed => "unwrap_failed",
            Self::Denied => "denied",
            Self::Rejected => "rejected",
            Self::Unsupported => "unsupported",
            Self::NotRunning | Self::Unavailable => "unavailable",
            Self::Internal => "error",
        }
    }
}

impl KmsError {
    pub fn class(&self) -> KmsErrorClass {
        match self {
            Self::InvalidKeyId(_) | Self::NotFound(_) => KmsErrorClass::NotFound,
            Self::AlreadyExists(_) => KmsErrorClass::AlreadyExists,
            Self::Disabled(_) | Self::PendingDeletion(_) | Self::InvalidState(_) => KmsErrorClass::InvalidState,
            Self::UnknownVersion { .. } | Self::Unwrap(_) | Self::MalformedDataKey => KmsErrorClass::UnwrapFailed,
            Self::Denied(_) => KmsErrorClass::Denied,
            Self::Rejected(_) | Self::Missing(_) => KmsErrorClass::Rejected,
            Self::Unsupported(_) => KmsErrorClass::Unsupported,
            Self::NotRunning => KmsErrorClass::NotRunning,
            Self::State(e) if e.is_damage() => KmsErrorClass::Internal,
            Self::Unavailable(_) | Self::Io { .. } | Self::State(_) => KmsErrorClass::Unavailable,
            Self::Corrupt { .. } | Self::MasterKey(_) | Self::Internal { .. } => KmsErrorClass::Internal,
        }
    }

    /// Errors that say the backend could not be reached or did not answer:
    /// worth a retry, counted by the circuit breaker, answered with 503.
    pub fn is_unavailable(&self) -> bool {
        matches!(self.class(), KmsErrorClass::Unavailable | KmsErrorClass::NotRunning)
    }

    /// `map_err` helper for an internal fault, keeping its source.
    pub fn internal<E: std::error::Error + Send + Sync + 'static>(what: &'static str) -> impl FnOnce(E) -> Self {
        move |e| Self::Internal { what, source: Some(Box::new(e)) }
    }
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
    /// Whether `wrapped` has this backend's wrap format (so a retired
    /// backend can be asked to unwrap an older object's key).
    fn recognizes(&self, wrapped: &[u8]) -> bool;
    /// Forget cached key metadata (after changes made outside the gateway).
    fn clear_cache(&self) {}
    /// Whether [`rewrap_data_key`](Self::rewrap_data_key) re-wraps on the
    /// KMS side (else re-keying unwraps and wraps in the gateway).
    fn rewraps(&self) -> bool {
        false
    }
    /// Whether a circuit breaker currently refuses calls to the backend.
    fn circuit_open(&self) -> bool {
        false
    }
    /// Re-wrap a data key under the key's newest version without exposing
    /// it; `None` when the backend cannot do this server-side.
    async fn rewrap_data_key(
        &self,
        _key_id: &KeyId,
        _wrapped: &[u8],
        _context: &EncryptionContext,
    ) -> Option<Result<(Vec<u8>, u32), KmsError>> {
        None
    }
}

/// Optional key management operations.
#[async_trait]
pub trait KeyAdmin: Send + Sync {
    async fn create_key(&self, req: CreateKeyRequest) -> Result<KeyInfo, KmsError>;
    async fn list_keys(&self) -> Result<Vec<KeyInfo>, KmsError>;
    /// Change metadata or state; rules in [`KeyMeta::apply`].
    async fn update_key(&self, key_id: &KeyId, update: KeyUpdate) -> Result<KeyInfo, KmsError>;
    /// Add a new key version; older versions keep decrypting.
    async fn rotate_key(&self, key_id: &KeyId) -> Result<KeyInfo, KmsError>;
    /// Destroy a key and all its versions. Objects under it become
    /// unreadable: callers check references and confirmation first.
    async fn delete_key(&self, key_id: &KeyId) -> Result<(), KmsError>;
}
