//! One running version of the KMS: a backend, its caches, the backends of
//! earlier configurations kept for reading older objects, and the
//! bookkeeping of every key use (metrics and audit). The manager publishes
//! a new [`KmsService`] on each start or reconfigure; a request holds the
//! `Arc` it started with until it ends.

use std::sync::Arc;
use std::time::Instant;

use super::cache::{DataKeyCaches, Lookup};
use super::config::KmsConfig;
use super::{DataKey, EncryptionContext, KeyAdmin, KeyBackend, KeyId, KmsError};
use crate::audit::{AuditEvent, AuditLog};
use crate::crypto::SealingKey;
use crate::metrics::Metrics;

/// Who uses a key and for what, for the audit trail.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyUse<'a> {
    pub principal: Option<&'a str>,
    pub bucket: Option<&'a str>,
    pub object: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

/// Metrics and audit, shared by every version.
pub struct Observer {
    pub metrics: Arc<Metrics>,
    pub audit: Arc<AuditLog>,
}

/// A backend together with its management surface.
#[derive(Clone)]
pub struct BackendPair {
    pub backend: Arc<dyn KeyBackend>,
    pub admin: Arc<dyn KeyAdmin>,
}

pub struct KmsService {
    /// Increases with every published version.
    pub generation: u64,
    pub config: KmsConfig,
    primary: BackendPair,
    /// Backends of earlier configurations, newest first; decrypt only.
    readers: Vec<Arc<dyn KeyBackend>>,
    caches: DataKeyCaches,
    obs: Arc<Observer>,
    /// Data keys issued by the backend per (key, version), for rotation
    /// policies.
    issued: std::sync::Mutex<std::collections::HashMap<(KeyId, u32), u64>>,
}

/// Short error class for metrics and audit.
pub fn error_class(e: &KmsError) -> &'static str {
    e.class().name()
}

impl KmsService {
    pub fn new(
        generation: u64,
        config: KmsConfig,
        primary: BackendPair,
        readers: Vec<Arc<dyn KeyBackend>>,
        obs: Arc<Observer>,
    ) -> Self {
        let caches = DataKeyCaches::new(&config.cache);
        Self { generation, config, primary, readers, caches, obs, issued: Default::default() }
    }

    pub fn default_key_id(&self) -> &KeyId {
        &self.config.default_key_id
    }

    pub fn backend_kind(&self) -> &'static str {
        self.primary.backend.kind()
    }

    pub fn backend(&self) -> &Arc<dyn KeyBackend> {
        &self.primary.backend
    }

    pub fn admin(&self) -> &Arc<dyn KeyAdmin> {
        &self.primary.admin
    }

    pub fn bucket_keys(&self) -> bool {
        self.caches.bucket_keys_enabled()
    }

    pub fn caches(&self) -> &DataKeyCaches {
        &self.caches
    }

    /// Data keys this version issued under `key_id` version `version`.
    pub fn data_keys_issued(&self, key_id: &KeyId, version: u32) -> u64 {
        self.issued.lock().expect("issued lock").get(&(key_id.clone(), version)).copied().unwrap_or(0)
    }

    fn observe<T>(&self, backend: &str, op: &str, started: Instant, r: &Result<T, KmsError>) {
        let m = &self.obs.metrics;
        m.kms_call_seconds.with_label_values(&[backend, op]).observe(started.elapsed().as_secs_f64());
        let outcome = match r {
            Ok(_) => "ok",
            Err(e) => error_class(e),
        };
        m.kms_calls.with_label_values(&[backend, op, outcome]).inc();
    }

    fn audit(&self, action: &str, key_id: &KeyId, version: Option<u32>, outcome: &str, who: &KeyUse<'_>) {
        let identity = who.principal.unwrap_or("-");
        // A failed use may name a key a client made up: no series per guess.
        let key = if matches!(outcome, "ok" | "cached" | "stale-cache") { key_id.as_str() } else { "-" };
        self.obs.metrics.key_uses.with_label_values(&[identity, key, action, outcome]).inc();
        self.obs.audit.record(&AuditEvent {
            kind: "key-use",
            principal: who.principal,
            action,
            key_id: Some(key_id.as_str()),
            key_version: version,
            bucket: who.bucket,
            object: who.object,
            outcome,
            detail: None,
            request_id: who.request_id,
        });
    }

    fn cache_metric(&self, cache: &str, result: &str) {
        self.obs.metrics.kms_cache.with_label_values(&[cache, result]).inc();
        if cache == "data_key" {
            self.caches.count(result);
        }
    }

    /// A data key for a new object. With `shared` (a bucket key) a cached
    /// key for the same key id and context is reused within its TTL.
    pub async fn generate_data_key(
        &self,
        key_id: &KeyId,
        ctx: &EncryptionContext,
        shared: bool,
        who: &KeyUse<'_>,
    ) -> Result<DataKey, KmsError> {
        if shared {
            if let Some(dk) = self.caches.get_bucket_key(key_id, ctx) {
                self.cache_metric("bucket_key", "hit");
                self.audit("generate_data_key", key_id, Some(dk.key_version), "cached", who);
                return Ok(dk);
            }
            self.cache_metric("bucket_key", "miss");
        }
        let epoch = self.caches.epoch();
        let started = Instant::now();
        let r = self.primary.backend.generate_data_key(key_id, ctx).await;
        self.observe(self.backend_kind(), "generate_data_key", started, &r);
        match &r {
            Ok(dk) => {
                self.audit("generate_data_key", key_id, Some(dk.key_version), "ok", who);
                *self.issued.lock().expect("issued lock").entry((key_id.clone(), dk.key_version)).or_default() += 1;
                self.caches.put_unwrapped(key_id, &dk.wrapped, ctx, dk.plaintext.clone(), epoch);
                if shared {
                    self.caches.put_bucket_key(key_id, ctx, dk.clone(), epoch);
                }
            }
            Err(e) => self.audit("generate_data_key", key_id, None, error_class(e), who),
        }
        r
    }

    /// Unwrap a stored data key: from the cache, else from the backend
    /// whose wrap format it has (current first, then earlier ones). While
    /// the backend is unreachable, a cache entry within the offline grace
    /// is served.
    pub async fn decrypt_data_key(
        &self,
        key_id: &KeyId,
        wrapped: &[u8],
        ctx: &EncryptionContext,
        who: &KeyUse<'_>,
    ) -> Result<SealingKey, KmsError> {
        let stale = match self.caches.get_unwrapped(key_id, wrapped, ctx) {
            Lookup::Fresh(k) => {
                self.cache_metric("data_key", "hit");
                self.audit("decrypt_data_key", key_id, None, "cached", who);
                return Ok(k);
            }
            Lookup::Stale(k) => Some(k),
            Lookup::Miss => None,
        };
        self.cache_metric("data_key", "miss");
        let epoch = self.caches.epoch();
        let candidates = std::iter::once(&self.primary.backend).chain(self.readers.iter()).filter(|b| b.recognizes(wrapped));
        let mut result = Err(KmsError::MalformedDataKey);
        for b in candidates {
            let started = Instant::now();
            result = b.decrypt_data_key(key_id, wrapped, ctx).await;
            self.observe(b.kind(), "decrypt_data_key", started, &result);
            match &result {
                Ok(_) => break,
                // Perhaps another backend of the same kind holds this key.
                Err(KmsError::NotFound(_) | KmsError::Unwrap(_) | KmsError::UnknownVersion { .. }) => continue,
                Err(e) if e.is_unavailable() => continue,
                Err(_) => break,
            }
        }
        match result {
            Ok(k) => {
                self.audit("decrypt_data_key", key_id, None, "ok", who);
                self.caches.put_unwrapped(key_id, wrapped, ctx, k.clone(), epoch);
                Ok(k)
            }
            Err(e) if e.is_unavailable() && stale.is_some() => {
                self.cache_metric("data_key", "stale");
                self.audit("decrypt_data_key", key_id, None, "stale-cache", who);
                tracing::warn!(key_id = %key_id, error = %e, "KMS unavailable; serving a cached data key within the offline grace");
                Ok(stale.expect("checked"))
            }
            Err(e) => {
                self.audit("decrypt_data_key", key_id, None, error_class(&e), who);
                Err(e)
            }
        }
    }

    /// Re-wrap a stored data key under its key's newest version, server-side
    /// when the backend can (`None`: it cannot).
    pub async fn rewrap_data_key(
        &self,
        key_id: &KeyId,
        wrapped: &[u8],
        ctx: &EncryptionContext,
        who: &KeyUse<'_>,
    ) -> Option<Result<(Vec<u8>, u32), KmsError>> {
        if !self.primary.backend.recognizes(wrapped) {
            return None;
        }
        let started = Instant::now();
        let r = self.primary.backend.rewrap_data_key(key_id, wrapped, ctx).await?;
        self.observe(self.backend_kind(), "rewrap_data_key", started, &r);
        let (outcome, version) = match &r {
            Ok((_, v)) => ("ok", Some(*v)),
            Err(e) => (error_class(e), None),
        };
        self.audit("rewrap_data_key", key_id, version, outcome, who);
        Some(r)
    }

    pub async fn health(&self) -> Result<(), KmsError> {
        let started = Instant::now();
        let r = self.primary.backend.health().await;
        self.observe(self.backend_kind(), "health", started, &r);
        r
    }

    /// Drop every cached data key (after a key changes state, or on request).
    pub fn clear_cache(&self) {
        self.caches.clear();
        for b in std::iter::once(&self.primary.backend).chain(self.readers.iter()) {
            b.clear_cache();
        }
    }
}
