//! KMS configuration: what `configure` and `reconfigure` accept, validated
//! into [`KmsConfig`]; its redacted view for `status` and `config`; and its
//! stored form, with secrets sealed under the gateway's state key.
//!
//! The request is flat JSON with a `backend_type` tag. Both spellings of
//! the RustFS admin API are accepted (`"auth_method": {"token": "…"}` and
//! `{"Token": {"token": "…"}}`, `vault`/`VaultKV2`/`vault-transit`, …);
//! unknown fields are refused by name.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::crypto::SealingKey;
use crate::ids::KeyId;

/// Why a configuration was refused. The message names the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// A secret string (Vault token, AppRole secret id). Zeroized on drop,
/// never printed.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
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

#[derive(Debug, Clone, Default)]
pub struct LocalConfig {
    /// `None`: the gateway's own key directory under its data dir.
    pub key_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub address: String,
    pub auth: VaultAuth,
    pub namespace: Option<String>,
    /// Transit mount.
    pub mount_path: String,
    /// KV v2 mount for key metadata.
    pub kv_mount: String,
    pub key_path_prefix: String,
    pub tls: VaultTls,
}

#[derive(Debug, Clone)]
pub enum VaultAuth {
    Token(Secret),
    AppRole { role_id: String, secret_id: Option<Secret>, secret_id_file: Option<PathBuf>, mount: String },
}

#[derive(Debug, Clone, Default)]
pub struct VaultTls {
    pub ca_cert_path: Option<PathBuf>,
    pub client_cert_path: Option<PathBuf>,
    pub client_key_path: Option<PathBuf>,
    /// Development only.
    pub skip_verify: bool,
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

/// The wire form, both spellings. Every field optional; `deny_unknown_fields`
/// makes a typo a 400 naming the field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    backend_type: String,
    key_dir: Option<PathBuf>,
    address: Option<String>,
    auth_method: Option<Value>,
    namespace: Option<String>,
    mount_path: Option<String>,
    kv_mount: Option<String>,
    key_path_prefix: Option<String>,
    tls: Option<WireTls>,
    skip_tls_verify: Option<bool>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTls {
    ca_cert_path: Option<PathBuf>,
    client_cert_path: Option<PathBuf>,
    client_key_path: Option<PathBuf>,
    #[serde(alias = "skip_tls_verify")]
    skip_verify: Option<bool>,
}

/// How secrets appear in the JSON being parsed.
pub enum SecretSource<'a> {
    /// From a client: plain strings.
    Request,
    /// From the state store: sealed under this key.
    Stored(&'a SecretSealer),
}

impl KmsConfig {
    /// Parse and validate a configure/reconfigure body (or a stored config).
    pub fn parse(body: &[u8], secrets: SecretSource<'_>, fallback_key: &KeyId) -> Result<Self, ConfigError> {
        let w: Wire = serde_json::from_slice(body).map_err(|e| bad(format!("invalid configuration: {e}")))?;
        let backend = match w.backend_type.to_ascii_lowercase().replace('_', "-").as_str() {
            "local" => {
                for (name, set) in [
                    ("address", w.address.is_some()),
                    ("auth_method", w.auth_method.is_some()),
                    ("namespace", w.namespace.is_some()),
                    ("mount_path", w.mount_path.is_some()),
                    ("kv_mount", w.kv_mount.is_some()),
                    ("key_path_prefix", w.key_path_prefix.is_some()),
                    ("tls", w.tls.is_some() || w.skip_tls_verify.is_some()),
                ] {
                    if set {
                        return Err(bad(format!("field `{name}` does not apply to backend_type local")));
                    }
                }
                if let Some(d) = &w.key_dir
                    && !d.is_absolute()
                {
                    return Err(bad("field `key_dir` must be an absolute path"));
                }
                BackendConfig::Local(LocalConfig { key_dir: w.key_dir })
            }
            "vault" | "vaultkv2" | "vault-kv2" | "vaulttransit" | "vault-transit" => {
                if w.key_dir.is_some() {
                    return Err(bad("field `key_dir` does not apply to backend_type vault"));
                }
                let address = w.address.ok_or_else(|| bad("field `address` is required for backend_type vault"))?;
                let url = url::Url::parse(&address).map_err(|e| bad(format!("field `address`: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(bad("field `address` must be an http:// or https:// URL"));
                }
                let auth = parse_auth(w.auth_method.as_ref(), &secrets)?;
                let wt = w.tls.unwrap_or(WireTls {
                    ca_cert_path: None,
                    client_cert_path: None,
                    client_key_path: None,
                    skip_verify: None,
                });
                if wt.client_cert_path.is_some() != wt.client_key_path.is_some() {
                    return Err(bad("fields `tls.client_cert_path` and `tls.client_key_path` go together"));
                }
                let non_empty = |name: &str, v: Option<String>, default: &str| -> Result<String, ConfigError> {
                    let v = v.unwrap_or_else(|| default.to_owned());
                    let v = v.trim_matches('/').to_owned();
                    if v.is_empty() || v.chars().any(|c| c.is_control() || c == '?' || c == '#') {
                        return Err(bad(format!("field `{name}` must be a non-empty path")));
                    }
                    Ok(v)
                };
                BackendConfig::Vault(Box::new(VaultConfig {
                    address: address.trim_end_matches('/').to_owned(),
                    auth,
                    namespace: w.namespace.filter(|n| !n.is_empty()),
                    mount_path: non_empty("mount_path", w.mount_path, "transit")?,
                    kv_mount: non_empty("kv_mount", w.kv_mount, "secret")?,
                    key_path_prefix: non_empty("key_path_prefix", w.key_path_prefix, "rustfs/kms/keys")?,
                    tls: VaultTls {
                        ca_cert_path: wt.ca_cert_path,
                        client_cert_path: wt.client_cert_path,
                        client_key_path: wt.client_key_path,
                        skip_verify: wt.skip_verify.or(w.skip_tls_verify).unwrap_or(false),
                    },
                }))
            }
            other => return Err(bad(format!("field `backend_type`: unknown backend '{other}' (expected local or vault)"))),
        };
        let positive = |name: &str, v: Option<u64>, default: u64, max: u64| -> Result<u64, ConfigError> {
            match v {
                Some(0) => Err(bad(format!("field `{name}` must be greater than 0"))),
                Some(v) => Ok(v.min(max)),
                None => Ok(default),
            }
        };
        let default_key_id = match w.default_key_id {
            Some(k) => KeyId::new(k).map_err(|e| bad(format!("field `default_key_id`: {e}")))?,
            None => fallback_key.clone(),
        };
        let d = CacheConfig::default();
        let b = BreakerConfig::default();
        Ok(Self {
            backend,
            default_key_id,
            timeout: Duration::from_secs(positive("timeout_seconds", w.timeout_seconds, 30, 300)?),
            retry_attempts: positive("retry_attempts", w.retry_attempts.map(u64::from), 3, 10)? as u32,
            cache: CacheConfig {
                enabled: w.enable_cache.unwrap_or(d.enabled),
                max_keys: positive("max_cached_keys", w.max_cached_keys, d.max_keys, 1_000_000)?,
                ttl: Duration::from_secs(positive("cache_ttl_seconds", w.cache_ttl_seconds, 300, 86_400)?),
                offline_grace: Duration::from_secs(w.cache_offline_grace_seconds.unwrap_or(0).min(86_400)),
                bucket_keys: w.bucket_keys.unwrap_or(d.bucket_keys),
            },
            breaker: BreakerConfig {
                threshold: positive("circuit_breaker_threshold", w.circuit_breaker_threshold.map(u64::from), 5, 1000)? as u32,
                cooldown: Duration::from_secs(positive(
                    "circuit_breaker_cooldown_seconds",
                    w.circuit_breaker_cooldown_seconds,
                    b.cooldown.as_secs(),
                    3600,
                )?),
            },
        })
    }
}

fn parse_auth(v: Option<&Value>, secrets: &SecretSource<'_>) -> Result<VaultAuth, ConfigError> {
    let v = v.ok_or_else(|| bad("field `auth_method` is required for backend_type vault"))?;
    let obj = v.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        bad("field `auth_method` must be {\"token\": \"…\"} or {\"approle\": {\"role_id\": \"…\", \"secret_id\": \"…\"}}")
    })?;
    let (kind, inner) = obj.iter().next().expect("one entry");
    let secret = |name: &str, v: &Value| -> Result<Secret, ConfigError> {
        let s = v.as_str().ok_or_else(|| bad(format!("field `auth_method.{name}` must be a string")))?;
        match secrets {
            SecretSource::Request => Ok(Secret::new(s)),
            SecretSource::Stored(sealer) => sealer.open(name, s),
        }
    };
    match kind.to_ascii_lowercase().as_str() {
        // `{"token": "s.x"}` (older docs) or `{"Token": {"token": "s.x"}}`.
        "token" => {
            let t = match inner {
                Value::Object(o) => {
                    if let Some(extra) = o.keys().find(|k| *k != "token") {
                        return Err(bad(format!("unknown field `auth_method.token.{extra}`")));
                    }
                    o.get("token").ok_or_else(|| bad("field `auth_method.token.token` is required"))?
                }
                other => other,
            };
            Ok(VaultAuth::Token(secret("token", t)?))
        }
        "approle" => {
            let o = inner.as_object().ok_or_else(|| bad("field `auth_method.approle` must be an object"))?;
            if let Some(extra) = o.keys().find(|k| !matches!(k.as_str(), "role_id" | "secret_id" | "secret_id_file" | "mount")) {
                return Err(bad(format!("unknown field `auth_method.approle.{extra}`")));
            }
            let role_id = o
                .get("role_id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad("field `auth_method.approle.role_id` is required"))?
                .to_owned();
            let secret_id = o.get("secret_id").map(|v| secret("secret_id", v)).transpose()?;
            let secret_id_file = o.get("secret_id_file").and_then(Value::as_str).map(PathBuf::from);
            if secret_id.is_none() == secret_id_file.is_none() {
                return Err(bad("exactly one of `auth_method.approle.secret_id` and `secret_id_file` is required"));
            }
            let mount = o.get("mount").and_then(Value::as_str).unwrap_or("approle").trim_matches('/').to_owned();
            Ok(VaultAuth::AppRole { role_id, secret_id, secret_id_file, mount })
        }
        other => Err(bad(format!("field `auth_method`: unsupported method '{other}' (token or approle)"))),
    }
}

/// How secrets are written out.
pub enum SecretSink<'a> {
    /// For operators: replaced by a placeholder.
    Redact,
    /// For the state store.
    Seal(&'a SecretSealer),
}

const REDACTED: &str = "********";

impl KmsConfig {
    /// The canonical JSON form. With [`SecretSink::Seal`] it parses back
    /// through [`KmsConfig::parse`] with [`SecretSource::Stored`].
    pub fn to_json(&self, secrets: SecretSink<'_>) -> Value {
        let hide = |name: &str, s: &Secret| match &secrets {
            SecretSink::Redact => REDACTED.to_owned(),
            SecretSink::Seal(sealer) => sealer.seal(name, s),
        };
        let mut v = match &self.backend {
            BackendConfig::Local(l) => json!({ "backend_type": "local", "key_dir": l.key_dir }),
            BackendConfig::Vault(c) => {
                let auth = match &c.auth {
                    VaultAuth::Token(t) => json!({ "token": hide("token", t) }),
                    VaultAuth::AppRole { role_id, secret_id, secret_id_file, mount } => {
                        let mut a = json!({ "role_id": role_id, "mount": mount });
                        if let Some(s) = secret_id {
                            a["secret_id"] = json!(hide("secret_id", s));
                        }
                        if let Some(f) = secret_id_file {
                            a["secret_id_file"] = json!(f);
                        }
                        json!({ "approle": a })
                    }
                };
                json!({
                    "backend_type": "vault",
                    "address": c.address,
                    "auth_method": auth,
                    "namespace": c.namespace,
                    "mount_path": c.mount_path,
                    "kv_mount": c.kv_mount,
                    "key_path_prefix": c.key_path_prefix,
                    "tls": {
                        "ca_cert_path": c.tls.ca_cert_path,
                        "client_cert_path": c.tls.client_cert_path,
                        "client_key_path": c.tls.client_key_path,
                        "skip_verify": c.tls.skip_verify,
                    },
                })
            }
        };
        let common = json!({
            "default_key_id": self.default_key_id,
            "timeout_seconds": self.timeout.as_secs(),
            "retry_attempts": self.retry_attempts,
            "enable_cache": self.cache.enabled,
            "max_cached_keys": self.cache.max_keys,
            "cache_ttl_seconds": self.cache.ttl.as_secs(),
            "cache_offline_grace_seconds": self.cache.offline_grace.as_secs(),
            "bucket_keys": self.cache.bucket_keys,
            "circuit_breaker_threshold": self.breaker.threshold,
            "circuit_breaker_cooldown_seconds": self.breaker.cooldown.as_secs(),
        });
        if let (Value::Object(m), Value::Object(c)) = (&mut v, common) {
            m.extend(c);
            // `null` fields are simply absent on the way back in.
            m.retain(|_, v| !v.is_null());
        }
        v
    }

    /// Carry over a blank Vault token (or AppRole secret id) from the
    /// running configuration, so an operator can reconfigure other fields
    /// without handling the secret again. Only towards the same Vault: the
    /// same address, namespace and (AppRole) auth mount and role. A blank
    /// secret for another Vault is refused, never sent there.
    pub fn inherit_secrets(&mut self, previous: Option<&KmsConfig>) -> Result<(), ConfigError> {
        let BackendConfig::Vault(new) = &mut self.backend else { return Ok(()) };
        let old = match previous.map(|p| &p.backend) {
            Some(BackendConfig::Vault(old)) => Some(old.as_ref()),
            _ => None,
        };
        let same_vault = |old: &VaultConfig| {
            old.address.trim_end_matches('/') == new.address.trim_end_matches('/') && old.namespace == new.namespace
        };
        let refused = || {
            bad(
                "the Vault secret (`auth_method` token or secret_id) must be given again: the address, namespace or auth mount changed",
            )
        };
        match (&mut new.auth, old) {
            (VaultAuth::Token(t), Some(old)) if t.expose().is_empty() => match &old.auth {
                VaultAuth::Token(old_t) if same_vault(old) => *t = old_t.clone(),
                _ => return Err(refused()),
            },
            (VaultAuth::AppRole { secret_id: Some(s), role_id, mount, .. }, Some(old)) if s.expose().is_empty() => {
                match &old.auth {
                    VaultAuth::AppRole { secret_id: Some(old_s), role_id: old_role, mount: old_mount, .. }
                        if same_vault(old) && old_role == role_id && old_mount == mount =>
                    {
                        *s = old_s.clone()
                    }
                    _ => return Err(refused()),
                }
            }
            (VaultAuth::Token(t), None) if t.expose().is_empty() => return Err(refused()),
            (VaultAuth::AppRole { secret_id: Some(s), .. }, None) if s.expose().is_empty() => return Err(refused()),
            _ => {}
        }
        Ok(())
    }
}

/// Seals configuration secrets for the state store, under a key derived
/// from the gateway master key (so the state directory alone reveals none).
pub struct SecretSealer(SealingKey);

impl SecretSealer {
    pub fn new(master: &SealingKey) -> Self {
        Self(master.derive(b"kms-gateway/v1/state-secrets"))
    }

    fn aad(name: &str) -> Vec<u8> {
        format!("kms-gateway/state-secret/{name}").into_bytes()
    }

    pub fn seal(&self, name: &str, s: &Secret) -> String {
        // Sealing a short string with a fresh random nonce only fails if the
        // system random source does; then refuse to persist anything.
        let sealed = self.0.seal_bytes(s.expose().as_bytes(), &Self::aad(name)).expect("random source for sealing");
        format!("sealed:{}", B64.encode(sealed))
    }

    pub fn open(&self, name: &str, stored: &str) -> Result<Secret, ConfigError> {
        let raw = stored
            .strip_prefix("sealed:")
            .and_then(|b| B64.decode(b).ok())
            .ok_or_else(|| bad(format!("stored `{name}` is not sealed")))?;
        let plain = self.0.open_bytes(&raw, &Self::aad(name)).map_err(|_| bad(format!("stored `{name}` does not open")))?;
        let s = std::str::from_utf8(&plain).map_err(|_| bad(format!("stored `{name}` is not text")))?;
        Ok(Secret::new(s))
    }
}

#[cfg(test)]
mod tests;
