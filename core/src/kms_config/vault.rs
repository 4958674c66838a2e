//! The Vault (and OpenBao) backend's configuration: address, auth method,
//! mounts and TLS, with both spellings of the RustFS admin API
//! (`"auth_method": {"token": "…"}` and `{"Token": {"token": "…"}}`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, SecretSink, SecretSource, bad};

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

/// The Vault backend's own fields on the wire. Secrets are text here: plain
/// in a request, sealed in the stored form, a placeholder when shown.
#[derive(Serialize, Deserialize)]
pub(super) struct Wire {
    address: Option<String>,
    auth_method: Option<AuthWire>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    mount_path: Option<String>,
    kv_mount: Option<String>,
    key_path_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsWire>,
    /// RustFS's top-level spelling of `tls.skip_verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_tls_verify: Option<bool>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsWire {
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_cert_path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_cert_path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_key_path: Option<PathBuf>,
    #[serde(alias = "skip_tls_verify", skip_serializing_if = "Option::is_none")]
    skip_verify: Option<bool>,
}

#[derive(Serialize, Deserialize)]
enum AuthWire {
    #[serde(rename = "token", alias = "Token")]
    Token(TokenWire),
    #[serde(rename = "approle", alias = "AppRole", alias = "Approle")]
    AppRole(AppRoleWire),
}

/// `{"token": "s.x"}` (older docs) or `{"Token": {"token": "s.x"}}`.
#[derive(Serialize, Deserialize)]
#[serde(untagged, expecting = "a token string or {\"token\": \"…\"}")]
enum TokenWire {
    Plain(String),
    Nested(NestedToken),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NestedToken {
    token: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppRoleWire {
    role_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_id_file: Option<PathBuf>,
    mount: Option<String>,
}

/// A mount or prefix: trimmed of slashes, non-empty, nothing that would
/// change the URL it is put in.
fn mount(name: &str, v: Option<String>, default: &str) -> Result<String, ConfigError> {
    let v = v.as_deref().unwrap_or(default).trim_matches('/').to_owned();
    if v.is_empty() || v.chars().any(|c| c.is_control() || c == '?' || c == '#') {
        return Err(bad(format!("field `{name}` must be a non-empty path")));
    }
    Ok(v)
}

impl Wire {
    pub(super) fn validate(self, secrets: &SecretSource<'_>) -> Result<VaultConfig, ConfigError> {
        let address = self.address.ok_or_else(|| bad("field `address` is required for backend_type vault"))?;
        let url = url::Url::parse(&address).map_err(|e| bad(format!("field `address`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(bad("field `address` must be an http:// or https:// URL"));
        }
        let auth = match self.auth_method.ok_or_else(|| bad("field `auth_method` is required for backend_type vault"))? {
            AuthWire::Token(TokenWire::Plain(t) | TokenWire::Nested(NestedToken { token: t })) => {
                VaultAuth::Token(secrets.read("token", &t)?)
            }
            AuthWire::AppRole(a) => {
                if a.role_id.is_empty() {
                    return Err(bad("field `auth_method.approle.role_id` is required"));
                }
                if a.secret_id.is_none() == a.secret_id_file.is_none() {
                    return Err(bad("exactly one of `auth_method.approle.secret_id` and `secret_id_file` is required"));
                }
                VaultAuth::AppRole {
                    role_id: a.role_id,
                    secret_id: a.secret_id.map(|s| secrets.read("secret_id", &s)).transpose()?,
                    secret_id_file: a.secret_id_file,
                    mount: mount("auth_method.approle.mount", a.mount, "approle")?,
                }
            }
        };
        let tls =
            self.tls.unwrap_or(TlsWire { ca_cert_path: None, client_cert_path: None, client_key_path: None, skip_verify: None });
        if tls.client_cert_path.is_some() != tls.client_key_path.is_some() {
            return Err(bad("fields `tls.client_cert_path` and `tls.client_key_path` go together"));
        }
        Ok(VaultConfig {
            address: address.trim_end_matches('/').to_owned(),
            auth,
            namespace: self.namespace.filter(|n| !n.is_empty()),
            mount_path: mount("mount_path", self.mount_path, "transit")?,
            kv_mount: mount("kv_mount", self.kv_mount, "secret")?,
            key_path_prefix: mount("key_path_prefix", self.key_path_prefix, "rustfs/kms/keys")?,
            tls: VaultTls {
                ca_cert_path: tls.ca_cert_path,
                client_cert_path: tls.client_cert_path,
                client_key_path: tls.client_key_path,
                skip_verify: tls.skip_verify.or(self.skip_tls_verify).unwrap_or(false),
            },
        })
    }

    pub(super) fn of(c: &VaultConfig, secrets: &SecretSink<'_>) -> Self {
        let auth = match &c.auth {
            VaultAuth::Token(t) => AuthWire::Token(TokenWire::Plain(secrets.write("token", t))),
            VaultAuth::AppRole { role_id, secret_id, secret_id_file, mount } => AuthWire::AppRole(AppRoleWire {
                role_id: role_id.clone(),
                secret_id: secret_id.as_ref().map(|s| secrets.write("secret_id", s)),
                secret_id_file: secret_id_file.clone(),
                mount: Some(mount.clone()),
            }),
        };
        Self {
            address: Some(c.address.clone()),
            auth_method: Some(auth),
            namespace: c.namespace.clone(),
            mount_path: Some(c.mount_path.clone()),
            kv_mount: Some(c.kv_mount.clone()),
            key_path_prefix: Some(c.key_path_prefix.clone()),
            tls: Some(TlsWire {
                ca_cert_path: c.tls.ca_cert_path.clone(),
                client_cert_path: c.tls.client_cert_path.clone(),
                client_key_path: c.tls.client_key_path.clone(),
                skip_verify: Some(c.tls.skip_verify),
            }),
            skip_tls_verify: None,
        }
    }
}

impl VaultConfig {
    /// Carry over a blank Vault token (or AppRole secret id) from the
    /// running configuration, so an operator can reconfigure other fields
    /// without handling the secret again. Only towards the same Vault: the
    /// same address, namespace and (AppRole) auth mount and role. A blank
    /// secret for another Vault is refused, never sent there.
    pub(super) fn inherit_secret(&mut self, old: Option<&VaultConfig>) -> Result<(), ConfigError> {
        // The same Vault, reached no less safely: a secret is not inherited
        // by a configuration that stops verifying the server or trusts
        // another CA (someone on the way could then take it).
        let same_vault = |old: &VaultConfig| {
            old.address.trim_end_matches('/') == self.address.trim_end_matches('/')
                && old.namespace == self.namespace
                && (old.tls.skip_verify || !self.tls.skip_verify)
                && old.tls.ca_cert_path == self.tls.ca_cert_path
        };
        let refused = || {
            bad(
                "the Vault secret (`auth_method` token or secret_id) must be given again: the address, namespace, auth mount or TLS verification changed",
            )
        };
        let inherited = match (&self.auth, old) {
            (VaultAuth::Token(t), old) if t.expose().is_empty() => match old.map(|o| (same_vault(o), &o.auth)) {
                Some((true, VaultAuth::Token(old_t))) => VaultAuth::Token(old_t.clone()),
                _ => return Err(refused()),
            },
            (VaultAuth::AppRole { secret_id: Some(s), role_id, mount, secret_id_file }, old) if s.expose().is_empty() => {
                match old.map(|o| (same_vault(o), &o.auth)) {
                    Some((true, VaultAuth::AppRole { secret_id: Some(old_s), role_id: old_role, mount: old_mount, .. }))
                        if old_role == role_id && old_mount == mount =>
                    {
                        VaultAuth::AppRole {
                            role_id: role_id.clone(),
                            secret_id: Some(old_s.clone()),
                            secret_id_file: secret_id_file.clone(),
                            mount: mount.clone(),
                        }
                    }
                    _ => return Err(refused()),
                }
            }
            _ => return Ok(()),
        };
        self.auth = inherited;
        Ok(())
    }
}
