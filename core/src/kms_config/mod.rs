//! KMS configuration: what `configure` and `reconfigure` accept, validated
//! into [`KmsConfig`]; its redacted view for `status` and `config`; and its
//! stored form, with secrets sealed under the gateway's state key.
//!
//! The request is flat JSON with a `backend_type` tag (RustFS's format).
//! - this file: the tag, the fields every backend shares, and how the flat
//!   object splits between them;
//! - [`local`], [`vault`]: each backend's own fields, wire form and checks
//!   (a new backend is a file here and a variant of [`BackendConfig`]);
//! - [`secret`]: secrets in memory, in requests, redacted and sealed.
//!
//! A field that neither the shared part nor the chosen backend knows is
//! refused by name; a field of the wrong type is named by its path.

mod local;
mod secret;
mod vault;

use std::collections::BTreeSet;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use local::LocalConfig;
pub use secret::{Secret, SecretSealer, SecretSink, SecretSource};
pub use vault::{VaultAuth, VaultConfig, VaultTls};

use crate::ids::KeyId;

/// Why a configuration was refused. The message names the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// A validated KMS configuration.
#[derive(Debug, Clone)]
pub struct KmsConfig {
    pub backend: BackendConfig,
    pub default_key_id: KeyId,
    /// Per attempt.
    pub timeout: Duration,
    /// Total attempts of an idempotent backend call.
    pub retry_attempts: u32,
    pub cache: CacheConfig,
    pub breaker: BreakerConfig,
}

#[derive(Debug, Clone)]
pub enum BackendConfig {
    Local(LocalConfig),
    Vault(Box<VaultConfig>),
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub enabled: bool,
    pub max_keys: u64,
    pub ttl: Duration,
    /// How long past its TTL a cached data key may still serve reads while
    /// the backend is unreachable (0 = never).
    pub offline_grace: Duration,
    /// Reuse one data key per bucket and key for `ttl` (S3 Bucket Keys).
    pub bucket_keys: bool,
}

#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive unavailability failures that open the breaker.
    pub threshold: u32,
    /// How long it stays open before one trial call.
    pub cooldown: Duration,
}

impl KmsConfig {
    /// The embedded default: the local backend under the data dir.
    pub fn local_default(default_key_id: KeyId) -> Self {
        Self {
            backend: BackendConfig::Local(LocalConfig::default()),
            default_key_id,
            timeout: Duration::from_secs(30),
            retry_attempts: 3,
            cache: CacheConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }

    pub fn backend_type(&self) -> &'static str {
        match self.backend {
            BackendConfig::Local(_) => "local",
            BackendConfig::Vault(_) => "vault",
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { enabled: true, max_keys: 1000, ttl: Duration::from_secs(300), offline_grace: Duration::ZERO, bucket_keys: true }
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { threshold: 5, cooldown: Duration::from_secs(10) }
    }
}

/// The backends and their `backend_type` spellings (RustFS's among them);
/// compared after lower-casing and with `_` read as `-`.
const BACKENDS: &[(&str, &[&str])] =
    &[("local", &["local"]), ("vault", &["vault", "vaultkv2", "vault-kv2", "vaulttransit", "vault-transit"])];

/// The fields every backend shares.
#[derive(Serialize, Deserialize)]
struct CommonWire {
    #[serde(skip_serializing_if = "Option::is_none")]
    default_key_id: Option<String>,
    timeout_seconds: Option<u64>,
    retry_attempts: Option<u32>,
    enable_cache: Option<bool>,
    max_cached_keys: Option<u64>,
    cache_ttl_seconds: Option<u64>,
    cache_offline_grace_seconds: Option<u64>,
    bucket_keys: Option<bool>,
    circuit_breaker_threshold: Option<u32>,
    circuit_breaker_cooldown_seconds: Option<u64>,
}

/// One part of the flat object: its value, and the top-level fields it
/// did not know. Nested objects refuse unknown fields themselves.
fn part<T: DeserializeOwned>(v: &Value) -> Result<(T, BTreeSet<String>), ConfigError> {
    let mut ignored = BTreeSet::new();
    let mut note = |path: serde_ignored::Path<'_>| {
        ignored.insert(path.to_string());
    };
    let de = serde_ignored::Deserializer::new(v, &mut note);
    let t = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            bad(format!("invalid configuration: {}", e.inner()))
        } else {
            bad(format!("field `{path}`: {}", e.inner()))
        }
    })?;
    Ok((t, ignored))
}

impl KmsConfig {
    /// Parse and validate a configure/reconfigure body (or a stored config).
    pub fn parse(body: &[u8], secrets: SecretSource<'_>, fallback_key: &KeyId) -> Result<Self, ConfigError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("invalid configuration: {e}")))?;
        Self::from_value(v, secrets, fallback_key)
    }

    /// [`KmsConfig::parse`] of JSON already parsed (flags, the state store).
    /// A body without `default_key_id` gets `fallback_key`.
    pub fn from_value(v: Value, secrets: SecretSource<'_>, fallback_key: &KeyId) -> Result<Self, ConfigError> {
        let Value::Object(mut fields) = v else { return Err(bad("the configuration must be a JSON object")) };
        let tag = fields.remove("backend_type").ok_or_else(|| bad("field `backend_type` is required"))?;
        let spelled = tag.as_str().ok_or_else(|| bad("field `backend_type` must be a string"))?;
        let norm = spelled.to_ascii_lowercase().replace('_', "-");
        let (kind, _) = BACKENDS
            .iter()
            .find(|(_, names)| names.contains(&norm.as_str()))
            .ok_or_else(|| bad(format!("field `backend_type`: unknown backend '{spelled}' (expected local or vault)")))?;
        let v = Value::Object(fields);
        let (common, common_unknown) = part::<CommonWire>(&v)?;
        let (backend, backend_unknown) = match *kind {
            "local" => part::<local::Wire>(&v).and_then(|(w, u)| Ok((BackendConfig::Local(w.validate()?), u)))?,
            _ => part::<vault::Wire>(&v).and_then(|(w, u)| Ok((BackendConfig::Vault(Box::new(w.validate(&secrets)?)), u)))?,
        };
        if let Some(name) = common_unknown.intersection(&backend_unknown).next() {
            return Err(bad(format!("unknown field `{name}` for backend_type {kind}")));
        }
        common.validate(backend, fallback_key)
    }

    /// The canonical JSON form. With [`SecretSink::Seal`] it reads back
    /// through [`KmsConfig::from_value`] with [`SecretSource::Stored`].
    pub fn to_json(&self, secrets: SecretSink<'_>) -> Value {
        let backend = match &self.backend {
            BackendConfig::Local(l) => serde_json::to_value(local::Wire::of(l)),
            BackendConfig::Vault(c) => serde_json::to_value(vault::Wire::of(c, &secrets)),
        };
        let mut out = Map::new();
        out.insert("backend_type".into(), self.backend_type().into());
        for part in [backend, serde_json::to_value(CommonWire::of(self))] {
            // Both are structs of plain fields: serializing cannot fail.
            if let Ok(Value::Object(m)) = part {
                out.extend(m.into_iter().filter(|(_, v)| !v.is_null()));
            }
        }
        Value::Object(out)
    }

    /// Carry over a blank Vault secret from the running configuration (see
    /// [`VaultConfig`]'s rules: only towards the same Vault).
    pub fn inherit_secrets(&mut self, previous: Option<&KmsConfig>) -> Result<(), ConfigError> {
        let BackendConfig::Vault(new) = &mut self.backend else { return Ok(()) };
        let old = match previous.map(|p| &p.backend) {
            Some(BackendConfig::Vault(old)) => Some(old.as_ref()),
            _ => None,
        };
        new.inherit_secret(old)
    }
}

impl CommonWire {
    fn validate(self, backend: BackendConfig, fallback_key: &KeyId) -> Result<KmsConfig, ConfigError> {
        let positive = |name: &str, v: Option<u64>, default: u64, max: u64| -> Result<u64, ConfigError> {
            match v {
                Some(0) => Err(bad(format!("field `{name}` must be greater than 0"))),
                Some(v) => Ok(v.min(max)),
                None => Ok(default),
            }
        };
        let default_key_id = match self.default_key_id {
            Some(k) => KeyId::new(k).map_err(|e| bad(format!("field `default_key_id`: {e}")))?,
            None => fallback_key.clone(),
        };
        let (c, b) = (CacheConfig::default(), BreakerConfig::default());
        Ok(KmsConfig {
            backend,
            default_key_id,
            timeout: Duration::from_secs(positive("timeout_seconds", self.timeout_seconds, 30, 300)?),
            retry_attempts: positive("retry_attempts", self.retry_attempts.map(u64::from), 3, 10)? as u32,
            cache: CacheConfig {
                enabled: self.enable_cache.unwrap_or(c.enabled),
                max_keys: positive("max_cached_keys", self.max_cached_keys, c.max_keys, 1_000_000)?,
                ttl: Duration::from_secs(positive("cache_ttl_seconds", self.cache_ttl_seconds, c.ttl.as_secs(), 86_400)?),
                offline_grace: Duration::from_secs(self.cache_offline_grace_seconds.unwrap_or(0).min(86_400)),
                bucket_keys: self.bucket_keys.unwrap_or(c.bucket_keys),
            },
            breaker: BreakerConfig {
                threshold: positive(
                    "circuit_breaker_threshold",
                    self.circuit_breaker_threshold.map(u64::from),
                    b.threshold.into(),
                    1000,
                )? as u32,
                cooldown: Duration::from_secs(positive(
                    "circuit_breaker_cooldown_seconds",
                    self.circuit_breaker_cooldown_seconds,
                    b.cooldown.as_secs(),
                    3600,
                )?),
            },
        })
    }

    fn of(c: &KmsConfig) -> Self {
        Self {
            default_key_id: Some(c.default_key_id.to_string()),
            timeout_seconds: Some(c.timeout.as_secs()),
            retry_attempts: Some(c.retry_attempts),
            enable_cache: Some(c.cache.enabled),
            max_cached_keys: Some(c.cache.max_keys),
            cache_ttl_seconds: Some(c.cache.ttl.as_secs()),
            cache_offline_grace_seconds: Some(c.cache.offline_grace.as_secs()),
            bucket_keys: Some(c.cache.bucket_keys),
            circuit_breaker_threshold: Some(c.breaker.threshold),
            circuit_breaker_cooldown_seconds: Some(c.breaker.cooldown.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests;
