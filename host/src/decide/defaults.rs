//! Bucket default encryption, as the write decision uses it: the stored
//! configurations (read through a cache), the gateway-wide default, and
//! `--require-encryption`. The `?encryption` route that sets them is in
//! `s3/defaults.rs`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::DecisionError;
use crate::config::RequireEncryption;
use crate::sse::{SseMode, SseRequest};
use crate::state::{CachedDocs, StateError, StateStore};

const NS: &str = "bucket-encryption";

/// A bucket's default encryption, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    /// SSE-S3 or SSE-KMS, stored as `AES256` or `aws:kms`.
    #[serde(with = "crate::sse::managed_mode")]
    pub algorithm: SseMode,
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: bool,
    /// Encryption types writes may not use (`SSE-C`).
    pub blocked: Vec<String>,
}

/// The default for buckets without their own configuration, from
/// `--default-encryption` (`none`, `sse-s3`, `sse-kms`).
pub fn parse_gateway_default(s: &str) -> Result<Option<SseMode>, String> {
    match s {
        "none" => Ok(None),
        "sse-s3" => Ok(Some(SseMode::S3)),
        "sse-kms" => Ok(Some(SseMode::Kms)),
        other => Err(format!("expected none, sse-s3 or sse-kms, got {other}")),
    }
}

/// Bucket defaults with a read-through cache over the state store.
pub struct EncryptionDefaults {
    docs: CachedDocs<BucketEncryption>,
    /// SSE-S3 or SSE-KMS for buckets without a default of their own.
    gateway: Option<SseMode>,
    /// `--require-encryption`: where nothing is stored or served unencrypted.
    require: RequireEncryption,
}

impl EncryptionDefaults {
    pub fn new(store: StateStore, gateway: Option<SseMode>, require: RequireEncryption) -> Self {
        Self { docs: CachedDocs::new(store, NS), gateway, require }
    }

    /// Buckets whose default encryption names `key` (for deletion checks).
    pub async fn buckets_using(&self, key: &crate::kms::KeyId) -> Vec<String> {
        let docs = match self.docs.list().await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot list bucket defaults; treating the key as referenced");
                return vec!["(bucket defaults unreadable)".into()];
            }
        };
        docs.into_iter()
            .filter(|(_, d)| {
                d.kms_key_id.as_deref().and_then(|k| crate::kms::KeyId::from_client(k).ok()).is_some_and(|k| &k == key)
            })
            .map(|(b, _)| format!("bucket '{b}' default encryption"))
            .collect()
    }

    /// Must every object of `bucket` be in the gateway's format? With
    /// `bucket-defaults`, a bucket default that cannot be read counts as
    /// set (fail closed).
    pub async fn encryption_required(&self, bucket: &str) -> bool {
        match self.require {
            RequireEncryption::Off => false,
            RequireEncryption::All => true,
            RequireEncryption::BucketDefaults => self.get(bucket).await.map_or(true, |d| d.is_some()),
        }
    }

    pub async fn get(&self, bucket: &str) -> Result<Option<Arc<BucketEncryption>>, StateError> {
        self.docs.get(bucket).await
    }

    pub async fn set(&self, bucket: &str, cfg: Option<BucketEncryption>) -> Result<(), StateError> {
        self.docs.set(bucket, cfg).await
    }

    /// The SSE a write gets: its own headers, else the bucket's default,
    /// else the gateway's. SSE-C on a bucket that blocks it is refused.
    pub async fn resolve(&self, bucket: &str, sse: SseRequest) -> Result<SseRequest, DecisionError> {
        let resolved = self.resolve_default(bucket, sse).await?;
        if matches!(resolved, SseRequest::None) && self.encryption_required(bucket).await {
            return Err(DecisionError::EncryptionRequired);
        }
        Ok(resolved)
    }

    async fn resolve_default(&self, bucket: &str, sse: SseRequest) -> Result<SseRequest, DecisionError> {
        let cfg = self.get(bucket).await?;
        match (sse, cfg) {
            (SseRequest::Customer(_), Some(c)) if c.blocked.iter().any(|t| t == "SSE-C") => {
                Err(DecisionError::CustomerKeysBlocked)
            }
            (SseRequest::None, Some(c)) => Ok(managed(c.algorithm, c.kms_key_id.clone())),
            (SseRequest::None, None) => Ok(self.gateway.map_or(SseRequest::None, |m| managed(m, None))),
            (explicit, _) => Ok(explicit),
        }
    }
}

/// The request a managed default stands for.
fn managed(mode: SseMode, key_id: Option<String>) -> SseRequest {
    match mode {
        SseMode::Kms => SseRequest::Kms { key_id, context: Default::default() },
        _ => SseRequest::S3,
    }
}
