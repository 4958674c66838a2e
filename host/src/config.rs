//! Configuration: command-line flags, their `KMS_GATEWAY_*` environment
//! twins, and an optional TOML file with the same keys (snake_case).
//! Precedence: flag/env > TOML > built-in default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::crypto::random_bytes;
use crate::fsutil::write_private_atomic;

/// `kms-gateway serve` options. Every field is optional here so that the
/// TOML file can fill what the command line leaves out.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:9000]
    #[arg(long, env = "KMS_GATEWAY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for gateway state, local keys and the embedded store [default: ./data]
    #[arg(long, env = "KMS_GATEWAY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Access key of S3 clients (generated and stored when unset)
    #[arg(long, env = "KMS_GATEWAY_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Secret key of S3 clients
    #[arg(long, env = "KMS_GATEWAY_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Access key of the admin API
    #[arg(long, env = "KMS_GATEWAY_ADMIN_ACCESS_KEY")]
    pub admin_access_key: Option<String>,
    /// Secret key of the admin API
    #[arg(long, env = "KMS_GATEWAY_ADMIN_SECRET_KEY", hide_env_values = true)]
    pub admin_secret_key: Option<String>,
    /// Upstream S3 endpoint URL; without it an embedded store under the data dir is used
    #[arg(long, env = "KMS_GATEWAY_UPSTREAM")]
    pub upstream: Option<String>,
    #[arg(long, env = "KMS_GATEWAY_UPSTREAM_ACCESS_KEY")]
    pub upstream_access_key: Option<String>,
    #[arg(long, env = "KMS_GATEWAY_UPSTREAM_SECRET_KEY", hide_env_values = true)]
    pub upstream_secret_key: Option<String>,
    /// Region used to sign upstream requests [default: us-east-1]
    #[arg(long, env = "KMS_GATEWAY_UPSTREAM_REGION")]
    pub upstream_region: Option<String>,
    /// Base domain for virtual-host-style requests (bucket.DOMAIN)
    #[arg(long, env = "KMS_GATEWAY_DOMAIN")]
    pub domain: Option<String>,
    /// File with the local KMS master key (base64, hex or 32 raw bytes);
    /// KMS_GATEWAY_KMS_MASTER_KEY may hold the key itself. Generated under
    /// the data dir when neither is given.
    #[arg(long, env = "KMS_GATEWAY_KMS_MASTER_KEY_FILE")]
    pub kms_master_key_file: Option<PathBuf>,
    /// Key for SSE-S3 and for SSE-KMS without a key id [default: gateway-default]
    #[arg(long, env = "KMS_GATEWAY_KMS_DEFAULT_KEY_ID")]
    pub kms_default_key_id: Option<String>,
    /// Plaintext segment size of newly written objects, in bytes [default: 1048576]
    #[arg(long, env = "KMS_GATEWAY_SEGMENT_SIZE")]
    pub segment_size: Option<u32>,
    /// Status for a wrong SSE-C key: 403 (AWS) or 400 [default: 403]
    #[arg(long, env = "KMS_GATEWAY_SSE_C_WRONG_KEY_STATUS")]
    pub sse_c_wrong_key_status: Option<u16>,
    /// Encryption for writes without SSE headers in buckets without a default:
    /// none, sse-s3 or sse-kms [default: none]
    #[arg(long, env = "KMS_GATEWAY_DEFAULT_ENCRYPTION")]
    pub default_encryption: Option<String>,
    /// Where nothing unencrypted is stored or served: writes that resolve
    /// to no encryption get 403, and an object without the gateway's
    /// record is never served as stored. `all` (the flag alone; also
    /// `true`), `bucket-defaults` (buckets with a default encryption
    /// configuration) or `off` (also `false`) [default: off]
    #[arg(long, env = "KMS_GATEWAY_REQUIRE_ENCRYPTION", num_args = 0..=1, default_missing_value = "all")]
    pub require_encryption: Option<RequireEncryption>,
    /// PEM certificate chain: serve HTTPS instead of HTTP
    #[arg(long, env = "KMS_GATEWAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "KMS_GATEWAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Accept SSE-C over plain HTTP (AWS refuses it; for local testing only)
    #[arg(long, env = "KMS_GATEWAY_ALLOW_INSECURE_SSE_C", num_args = 0..=1, default_missing_value = "true")]
    pub allow_insecure_sse_c: Option<bool>,
    /// Start with the KMS `NotConfigured` (when no state is stored), to be
    /// configured over the admin API, instead of the embedded local backend
    #[arg(long, env = "KMS_GATEWAY_KMS_NOT_CONFIGURED", num_args = 0..=1, default_missing_value = "true")]
    pub kms_not_configured: Option<bool>,
    /// Configure and start this KMS backend at boot (local or vault),
    /// replacing a configuration stored through the admin API
    #[arg(long, env = "KMS_GATEWAY_KMS_BACKEND")]
    pub kms_backend: Option<String>,
    /// Key directory of the local backend [default: DATA_DIR/kms/keys]
    #[arg(long, env = "KMS_GATEWAY_KMS_KEY_DIR")]
    pub kms_key_dir: Option<PathBuf>,
    /// Vault / OpenBao address, e.g. https://vault:8200
    #[arg(long, env = "KMS_GATEWAY_KMS_VAULT_ADDRESS")]
    pub kms_vault_address: Option<String>,
    /// Vault token (token auth)
    #[arg(long, env = "KMS_GATEWAY_KMS_VAULT_TOKEN", hide_env_values = true)]
    pub kms_vault_token: Option<String>,
    /// AppRole role id (AppRole auth)
    #[arg(long, env = "KMS_GATEWAY_KMS_VAULT_ROLE_ID")]
    pub kms_vault_role_id: Option<String>,
    /// AppRole secret id
    #[arg(long, env = "KMS_GATEWAY_KMS_VAULT_SECRET_ID", hide_env_values = true)]
    pub kms_vault_secret_id: Option<String>,
    /// File holding the AppRole secret id (read at every login)
    #[arg(long, env = "KMS_GATEWAY_KMS_VAULT_SECRET_ID_FILE")]
    pub kms_vault_secret_id_file: Option<PathBuf>,
    /// Directories from which a configuration given over the admin API may
    /// read an AppRole secret id file (comma-separated) [default: /run/secrets]
    #[arg(long = "kms-secret-file-dir", env = "KMS_GATEWAY_KMS_SECRET_FILE_DIRS", value_delimiter = ',')]
    pub kms_secret_file_dirs: Option<Vec<PathBuf>>,
    /// Vault addresses to which a configuration given over the admin API
    /// may send a secret id file's content (comma-separated); the
    /// operator's own --kms-vault-address is always one
    #[arg(long = "kms-secret-file-vault", env = "KMS_GATEWAY_KMS_SECRET_FILE_VAULTS", value_delimiter = ',')]
    pub kms_secret_file_vaults: Option<Vec<String>>,
    /// Vault namespace (Vault Enterprise / OpenBao namespaces)
    #[arg(long, env = "KMS_GATEWAY_KMS_VAULT_NAMESPACE")]
    pub kms_vault_namespace: Option<String>,
    /// Transit mount [default: transit]
    #[arg(long, env = "KMS_GATEWAY_KMS_VAULT_MOUNT")]
    pub kms_vault_mount: Option<String>,
    /// KV v2 mount for key metadata [default: secret]
    #[arg(long, env = "KMS_GATEWAY_KMS_VAULT_KV_MOUNT")]
    pub kms_vault_kv_mount: Option<String>,
    /// Path prefix of key metadata in KV [default: rustfs/kms/keys]
    #[arg(long, env = "KMS_GATEWAY_KMS_VAULT_KEY_PREFIX")]
    pub kms_vault_key_prefix: Option<String>,
    /// CA certificate (PEM) that signs Vault's TLS certificate
    #[arg(long, env = "KMS_GATEWAY_KMS_VAULT_CA_CERT")]
    pub kms_vault_ca_cert: Option<PathBuf>,
    /// Skip Vault TLS verification (development only)
    #[arg(long, env = "KMS_GATEWAY_KMS_VAULT_SKIP_TLS_VERIFY", num_args = 0..=1, default_missing_value = "true")]
    pub kms_vault_skip_tls_verify: Option<bool>,
    /// Data-key cache TTL in seconds [default: 300]
    #[arg(long, env = "KMS_GATEWAY_KMS_CACHE_TTL_SECONDS")]
    pub kms_cache_ttl_seconds: Option<u64>,
    /// Serve cached data keys this long past their TTL while the KMS is down [default: 0]
    #[arg(long, env = "KMS_GATEWAY_KMS_CACHE_OFFLINE_GRACE_SECONDS")]
    pub kms_cache_offline_grace_seconds: Option<u64>,
    /// Share one data key per bucket and key within the cache TTL [default: true]
    #[arg(long, env = "KMS_GATEWAY_KMS_BUCKET_KEYS")]
    pub kms_bucket_keys: Option<bool>,
    /// Allow deleting keys without the 7-30 day waiting period (admin API)
    #[arg(long, env = "KMS_GATEWAY_KMS_ALLOW_IMMEDIATE_DELETION", num_args = 0..=1, default_missing_value = "true")]
    pub kms_allow_immediate_deletion: Option<bool>,
    /// Seconds between KMS health probes; 0 disables them [default: 30]
    #[arg(long, env = "KMS_GATEWAY_KMS_PROBE_INTERVAL_SECONDS")]
    pub kms_probe_interval_seconds: Option<u64>,
    /// Wall-clock budget of one policy call, in milliseconds [default: 50]
    #[arg(long, env = "KMS_GATEWAY_POLICY_TIMEOUT_MS")]
    pub policy_timeout_ms: Option<u64>,
    /// Memory cap of one policy instance, in MiB [default: 16]
    #[arg(long, env = "KMS_GATEWAY_POLICY_MEMORY_MIB")]
    pub policy_memory_mib: Option<usize>,
    /// Memory cap of one instance of a policy that embeds a language
    /// runtime (imports WASI, e.g. Python or JavaScript), in MiB [default: 128]
    #[arg(long, env = "KMS_GATEWAY_POLICY_RUNTIME_MEMORY_MIB")]
    pub policy_runtime_memory_mib: Option<usize>,
    /// Seconds between rotation-policy passes; 0 disables them [default: 3600]
    #[arg(long, env = "KMS_GATEWAY_POLICY_ROTATION_INTERVAL_SECONDS")]
    pub policy_rotation_interval_seconds: Option<u64>,
    /// Audit log file (JSON lines), "stdout", or "off" [default: DATA_DIR/audit.log]
    #[arg(long, env = "KMS_GATEWAY_AUDIT_LOG")]
    pub audit_log: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "KMS_GATEWAY_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Seconds a client has to send a whole request head, counted from its
    /// first byte (from the accept, TLS handshake included, for the first
    /// request of a connection) [default: 10]
    #[arg(long, env = "KMS_GATEWAY_HEADER_READ_TIMEOUT_SECONDS")]
    pub header_read_timeout_seconds: Option<u64>,
    /// Seconds a keep-alive connection may wait for its next request with
    /// no request in flight; 0 disables [default: 60]
    #[arg(long, env = "KMS_GATEWAY_IDLE_TIMEOUT_SECONDS")]
    pub idle_timeout_seconds: Option<u64>,
    /// Seconds a request in flight may wait for its client: for the next
    /// byte of its body, or for the client to take the next byte of the
    /// response; then the request is cut. A slow client is never cut, only
    /// a silent one; 0 disables [default: 60]
    #[arg(long, env = "KMS_GATEWAY_STALL_TIMEOUT_SECONDS")]
    pub stall_timeout_seconds: Option<u64>,
    /// Connections served at once; more wait in the listen backlog [default: 4096]
    #[arg(long, env = "KMS_GATEWAY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Where the gateway's state lives: `local` (the data directory, one
    /// node) or `upstream` (a reserved bucket of the upstream store, shared
    /// by replicas: cluster mode) [default: local]
    #[arg(long, env = "KMS_GATEWAY_STATE")]
    pub state: Option<StateMode>,
    /// The reserved bucket of cluster mode [default: kms-gateway-state]
    #[arg(long, env = "KMS_GATEWAY_STATE_BUCKET")]
    pub state_bucket: Option<String>,
    /// How often a replica looks for other replicas' changes, in ms; the
    /// bound on how long a change takes to reach every replica [default: 1000]
    #[arg(long, env = "KMS_GATEWAY_STATE_POLL_MS")]
    pub state_poll_ms: Option<u64>,
    /// This replica's name in the audit trail, `kms/status` and job leases
    /// [default: the host name and a random suffix]
    #[arg(long, env = "KMS_GATEWAY_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// TOML file with any of the keys above
    #[arg(long, env = "KMS_GATEWAY_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// Errors while assembling the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read the credentials file {path}")]
    CredentialsUnreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Only the position and kind of the damage: the file holds secrets,
    /// and a parser's message may quote them.
    #[error(
        "the credentials file {path} is damaged ({kind} at line {line}, column {column}); restore it, or remove it to generate new credentials"
    )]
    CredentialsDamaged { path: String, kind: &'static str, line: usize, column: usize },
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

macro_rules! fill {
    ($dst:expr, $src:expr, $($f:ident),*) => { $( if $dst.$f.is_none() { $dst.$f = $src.$f.take(); } )* };
}

impl ServeArgs {
    /// Fill unset fields from the TOML file named by `--config`, if any.
    pub fn merge_file(mut self) -> Result<Self, ConfigError> {
        let Some(path) = self.config.clone() else { return Ok(self) };
        let p = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
        let mut file: ServeArgs = toml::from_str(&text).map_err(|source| ConfigError::Parse { path: p, source })?;
        fill!(
            self,
            file,
            listen,
            data_dir,
            access_key,
            secret_key,
            admin_access_key,
            admin_secret_key,
            upstream,
            upstream_access_key,
            upstream_secret_key,
            upstream_region,
            domain,
            kms_master_key_file,
            kms_default_key_id,
            segment_size,
            sse_c_wrong_key_status,
            default_encryption,
            require_encryption,
            tls_cert,
            tls_key,
            allow_insecure_sse_c,
            kms_not_configured,
            kms_backend,
            kms_key_dir,
            kms_vault_address,
            kms_vault_token,
            kms_vault_role_id,
            kms_vault_secret_id,
            kms_vault_secret_id_file,
            kms_secret_file_dirs,
            kms_secret_file_vaults,
            kms_vault_namespace,
            kms_vault_mount,
            kms_vault_kv_mount,
            kms_vault_key_prefix,
            kms_vault_ca_cert,
            kms_vault_skip_tls_verify,
            kms_cache_ttl_seconds,
            kms_cache_offline_grace_seconds,
            kms_bucket_keys,
            kms_allow_immediate_deletion,
            kms_probe_interval_seconds,
            audit_log,
            policy_timeout_ms,
            policy_memory_mib,
            policy_runtime_memory_mib,
            policy_rotation_interval_seconds,
            log_format,
            header_read_timeout_seconds,
            idle_timeout_seconds,
            stall_timeout_seconds,
            max_connections,
            state,
            state_bucket,
            state_poll_ms,
            replica_id
        );
        Ok(self)
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000)))
    }

    /// How often a replica reads the cluster generation (50 ms … 60 s).
    pub fn state_poll(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.state_poll_ms.unwrap_or(1000).clamp(50, 60_000))
    }

    pub fn state_bucket(&self) -> &str {
        self.state_bucket.as_deref().unwrap_or(DEFAULT_STATE_BUCKET)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("./data"))
    }

    /// The KMS configuration the flags describe, in the admin API's JSON
    /// form (so flags and `configure` share one validator). `None` when no
    /// `--kms-backend` is given.
    pub fn kms_config_json(&self) -> Result<Option<serde_json::Value>, ConfigError> {
        use serde_json::json;
        let Some(backend) = &self.kms_backend else { return Ok(None) };
        let mut v = json!({ "backend_type": backend });
        let set = |v: &mut serde_json::Value, k: &str, x: serde_json::Value| {
            if !x.is_null() {
                v[k] = x;
            }
        };
        set(&mut v, "default_key_id", json!(self.kms_default_key_id));
        set(&mut v, "cache_ttl_seconds", json!(self.kms_cache_ttl_seconds));
        set(&mut v, "cache_offline_grace_seconds", json!(self.kms_cache_offline_grace_seconds));
        set(&mut v, "bucket_keys", json!(self.kms_bucket_keys));
        if backend.eq_ignore_ascii_case("local") {
            set(&mut v, "key_dir", json!(self.kms_key_dir));
            return Ok(Some(v));
        }
        set(&mut v, "address", json!(self.kms_vault_address));
        let auth = match (&self.kms_vault_token, &self.kms_vault_role_id) {
            (Some(t), None) => json!({ "token": t }),
            (None, Some(role)) => {
                let mut a = json!({ "role_id": role });
                set(&mut a, "secret_id", json!(self.kms_vault_secret_id));
                set(&mut a, "secret_id_file", json!(self.kms_vault_secret_id_file));
                json!({ "approle": a })
            }
            _ => {
                return Err(ConfigError::Invalid(
                    "--kms-backend vault needs exactly one of --kms-vault-token and --kms-vault-role-id".into(),
                ));
            }
        };
        v["auth_method"] = auth;
        set(&mut v, "namespace", json!(self.kms_vault_namespace));
        set(&mut v, "mount_path", json!(self.kms_vault_mount));
        set(&mut v, "kv_mount", json!(self.kms_vault_kv_mount));
        set(&mut v, "key_path_prefix", json!(self.kms_vault_key_prefix));
        v["tls"] = json!({
            "ca_cert_path": self.kms_vault_ca_cert,
            "skip_verify": self.kms_vault_skip_tls_verify.unwrap_or(false),
        });
        Ok(Some(v))
    }
}

/// The reserved bucket of cluster state unless `--state-bucket` names one.
pub const DEFAULT_STATE_BUCKET: &str = "kms-gateway-state";

/// Where the gateway's state lives (`--state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateMode {
    /// The data directory: one node.
    #[default]
    Local,
    /// A reserved bucket of the upstream store: replicas share it.
    Upstream,
}

/// Where encryption is required (`--require-encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequireEncryption {
    /// Writes without SSE are stored as sent; objects without the
    /// gateway's record are served as stored (a store holding data from
    /// before the gateway stays readable).
    #[default]
    Off,
    /// In buckets that have a default encryption configuration.
    BucketDefaults,
    /// Everywhere.
    All,
}

impl std::str::FromStr for RequireEncryption {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" | "false" => Ok(Self::Off),
            "bucket-defaults" => Ok(Self::BucketDefaults),
            "all" | "true" => Ok(Self::All),
            other => Err(format!("expected all, bucket-defaults or off, got {other}")),
        }
    }
}

/// In TOML: `require_encryption = true | false | "all" | "bucket-defaults" | "off"`.
impl<'de> Deserialize<'de> for RequireEncryption {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Flag(bool),
            Name(String),
        }
        match Wire::deserialize(d)? {
            Wire::Flag(true) => Ok(Self::All),
            Wire::Flag(false) => Ok(Self::Off),
            Wire::Name(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// S3 and admin credentials of the gateway.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub admin_access_key: String,
    pub admin_secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("admin_access_key", &self.admin_access_key)
            .finish_non_exhaustive()
    }
}

/// Credentials resolved from the arguments, or generated once and kept in
/// `<data_dir>/credentials.json` (0600). Returns whether any were generated
/// (only when the file does not exist yet). The file is read only when a
/// credential is not configured; an unreadable or damaged one is an error,
/// never replaced: clients hold the keys it stores.
pub fn resolve_credentials(args: &ServeArgs, data_dir: &Path) -> Result<(Credentials, bool), ConfigError> {
    let path = data_dir.join("credentials.json");
    let stored = if args.all_credentials_given() { None } else { load_credentials(&path)? };
    let (creds, generated) = pick_credentials(args, stored.as_ref())?;
    if generated {
        let json = serde_json::to_vec_pretty(&creds).expect("credentials serialise");
        write_private_atomic(&path, &json).map_err(|source| ConfigError::Write { path: path.display().to_string(), source })?;
    }
    Ok((creds, generated))
}

impl ServeArgs {
    /// Are all four credentials configured (nothing to read or generate)?
    pub fn all_credentials_given(&self) -> bool {
        [&self.access_key, &self.secret_key, &self.admin_access_key, &self.admin_secret_key].iter().all(|v| v.is_some())
    }
}

/// Each credential from the arguments, else from `stored`, else generated;
/// and whether any was generated (then the caller stores the result).
pub fn pick_credentials(args: &ServeArgs, stored: Option<&Credentials>) -> Result<(Credentials, bool), ConfigError> {
    let mut generated = false;
    let mut pick = |given: &Option<String>, stored: Option<&String>, len: usize| -> Result<String, ConfigError> {
        if let Some(v) = given {
            return Ok(v.clone());
        }
        if let Some(v) = stored {
            return Ok(v.clone());
        }
        generated = true;
        random_token(len)
    };
    let creds = Credentials {
        access_key: pick(&args.access_key, stored.map(|c| &c.access_key), 20)?,
        secret_key: pick(&args.secret_key, stored.map(|c| &c.secret_key), 40)?,
        admin_access_key: pick(&args.admin_access_key, stored.map(|c| &c.admin_access_key), 20)?,
        admin_secret_key: pick(&args.admin_secret_key, stored.map(|c| &c.admin_secret_key), 40)?,
    };
    if creds.access_key == creds.admin_access_key {
        return Err(ConfigError::Invalid("the admin access key must differ from the S3 access key".into()));
    }
    Ok((creds, generated))
}

/// The stored credentials; `None` when the file does not exist.
fn load_credentials(path: &Path) -> Result<Option<Credentials>, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::CredentialsUnreadable { path: path.display().to_string(), source }),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        use serde_json::error::Category;
        let kind = match e.classify() {
            Category::Io | Category::Syntax => "not JSON",
            Category::Eof => "truncated",
            Category::Data => "a field is missing or not a string",
        };
        ConfigError::CredentialsDamaged { path: path.display().to_string(), kind, line: e.line(), column: e.column() }
    })
}

pub(crate) fn random_token(len: usize) -> Result<String, ConfigError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut raw = vec![0u8; len];
    random_bytes(&mut raw).map_err(|_| ConfigError::Invalid("random source failed".into()))?;
    // 256 % 62 bias is irrelevant at these lengths (>= 119 bits of entropy).
    Ok(raw.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_fills_only_unset_fields() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("gw.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:9100\"\naccess_key = \"fromfile\"\nsegment_size = 65536\nmax_connections = 3\n")
            .unwrap();
        let args = ServeArgs { access_key: Some("fromcli".into()), config: Some(f), ..Default::default() }.merge_file().unwrap();
        assert_eq!(args.access_key.as_deref(), Some("fromcli"));
        assert_eq!(args.listen().port(), 9100);
        assert_eq!(args.segment_size, Some(65536));
        assert_eq!(args.max_connections, Some(3));
        let bad = d.path().join("bad.toml");
        std::fs::write(&bad, "no_such_key = 1\n").unwrap();
        assert!(ServeArgs { config: Some(bad), ..Default::default() }.merge_file().is_err());
    }

    #[test]
    fn require_encryption_takes_a_flag_or_a_scope() {
        let parse = |toml: &str| -> Result<Option<RequireEncryption>, toml::de::Error> {
            toml::from_str::<ServeArgs>(toml).map(|a| a.require_encryption)
        };
        assert_eq!(parse("require_encryption = true").unwrap(), Some(RequireEncryption::All));
        assert_eq!(parse("require_encryption = false").unwrap(), Some(RequireEncryption::Off));
        assert_eq!(parse("require_encryption = \"bucket-defaults\"").unwrap(), Some(RequireEncryption::BucketDefaults));
        assert!(parse("require_encryption = \"some\"").is_err());
        assert_eq!("all".parse(), Ok(RequireEncryption::All));
        assert!("yes".parse::<RequireEncryption>().is_err());
    }

    #[test]
    fn generated_credentials_persist() {
        let d = tempfile::tempdir().unwrap();
        let (a, gen1) = resolve_credentials(&ServeArgs::default(), d.path()).unwrap();
        let (b, gen2) = resolve_credentials(&ServeArgs::default(), d.path()).unwrap();
        assert!(gen1 && !gen2);
        assert_eq!(a.secret_key, b.secret_key);
        assert_eq!(a.secret_key.len(), 40);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("credentials.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn damaged_credentials_are_refused_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("credentials.json");
        let secret = r#"{"access_key":"a","secret_key":7,"admin_access_key":"b","admin_secret_key":"hunter2hunter2"}"#;
        for text in ["garbage", "{\"access_key\":", secret] {
            std::fs::write(&path, text).unwrap();
            let err = resolve_credentials(&ServeArgs::default(), d.path()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::CredentialsDamaged { .. }) && msg.contains("credentials.json"), "{msg}");
            assert!(!msg.contains("hunter2") && !msg.contains("integer"), "{msg}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        }
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = resolve_credentials(&ServeArgs::default(), d.path()).unwrap_err();
        assert!(matches!(err, ConfigError::CredentialsUnreadable { .. }) && path.is_dir(), "{err}");
        // Fully configured credentials do not need the file.
        let all = ServeArgs {
            access_key: Some("a".into()),
            secret_key: Some("s".into()),
            admin_access_key: Some("b".into()),
            admin_secret_key: Some("t".into()),
            ..Default::default()
        };
        assert!(!resolve_credentials(&all, d.path()).unwrap().1);
    }
}
