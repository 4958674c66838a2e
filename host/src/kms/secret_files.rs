//! Which files a KMS configuration may name as secrets (AppRole
//! `secret_id_file`).
//!
//! The gateway reads such a file and sends its content to the configured
//! Vault as a secret id. An admin who could name any file could have the
//! master key, the credentials or any other readable file sent to a server
//! of their choosing. So a configuration given over the admin API may only
//! name files under the allowed directories (`--kms-secret-file-dir`,
//! default `/run/secrets`), and no configuration, not even the operator's
//! own flags, may name a file inside the data directory or the master key
//! file. Paths are compared after resolving symlinks and `..`.
//!
//! Where the content goes matters as much: an admin who names an allowed
//! file with a Vault address of their own would receive the secret id. A
//! configuration given over the admin API may send a file only to a Vault
//! the operator named (`--kms-secret-file-vault`, and the operator's own
//! `--kms-vault-address`), with TLS verification on.

use std::path::{Path, PathBuf};

use super::config::{BackendConfig, ConfigError, KmsConfig, VaultAuth};

/// Where secret files may come from.
#[derive(Debug, Clone, Default)]
pub struct SecretFilePolicy {
    allowed: Vec<PathBuf>,
    forbidden: Vec<PathBuf>,
    /// Vault addresses an admin-given configuration may send a file to.
    vaults: Vec<String>,
}

/// Addresses compare without a trailing slash and case-insensitively.
fn normal_address(a: &str) -> String {
    a.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Who gave a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The admin API: allowed directories only.
    Admin,
    /// The operator's flags, environment or TOML at start.
    Operator,
}

fn resolved(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned())
}

impl SecretFilePolicy {
    pub fn new(allowed_dirs: &[PathBuf], data_dir: &Path, master_key_file: Option<&Path>) -> Self {
        let mut forbidden = vec![resolved(data_dir)];
        forbidden.extend(master_key_file.map(resolved));
        Self { allowed: allowed_dirs.iter().map(|d| resolved(d)).collect(), forbidden, vaults: Vec::new() }
    }

    /// The Vault addresses the operator allows secret files to be sent to.
    pub fn with_vaults<'a>(mut self, addresses: impl IntoIterator<Item = &'a String>) -> Self {
        self.vaults.extend(addresses.into_iter().map(|a| normal_address(a)));
        self
    }

    /// Check the secret files `cfg` names, and where they would be sent.
    pub fn check(&self, cfg: &KmsConfig, origin: Origin) -> Result<(), ConfigError> {
        let BackendConfig::Vault(v) = &cfg.backend else { return Ok(()) };
        let VaultAuth::AppRole { secret_id_file: Some(file), .. } = &v.auth else { return Ok(()) };
        self.check_file(file, origin)?;
        if origin == Origin::Admin {
            if !self.vaults.contains(&normal_address(&v.address)) {
                return Err(ConfigError(
                    "`auth_method.approle.secret_id_file` may only be sent to a Vault the operator allowed (--kms-secret-file-vault or --kms-vault-address); give the secret id itself for another Vault".into(),
                ));
            }
            if v.tls.skip_verify {
                return Err(ConfigError(
                    "`auth_method.approle.secret_id_file` is not sent with `tls.skip_verify`: anyone on the way could take it"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    fn check_file(&self, file: &Path, origin: Origin) -> Result<(), ConfigError> {
        let bad = |why: &str| ConfigError(format!("`auth_method.approle.secret_id_file` {why}"));
        let path = std::fs::canonicalize(file).map_err(|_| bad("is not a readable file"))?;
        if self.forbidden.iter().any(|f| path.starts_with(f)) {
            return Err(bad("may not be inside the data directory or be the master key file"));
        }
        if origin == Origin::Admin && !self.allowed.iter().any(|d| path.starts_with(d)) {
            return Err(bad("must be under a directory allowed by --kms-secret-file-dir"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_checked_after_resolving_links() {
        let root = tempfile::tempdir().unwrap();
        let (data, secrets, other) = (root.path().join("data"), root.path().join("secrets"), root.path().join("other"));
        for d in [&data, &secrets, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        let master = root.path().join("master.key");
        for f in [data.join("credentials.json"), secrets.join("sid"), other.join("sid"), master.clone()] {
            std::fs::write(f, "x").unwrap();
        }
        let p = SecretFilePolicy::new(std::slice::from_ref(&secrets), &data, Some(&master));
        assert!(p.check_file(&secrets.join("sid"), Origin::Admin).is_ok());
        assert!(p.check_file(&other.join("sid"), Origin::Admin).is_err());
        assert!(p.check_file(&other.join("sid"), Origin::Operator).is_ok());
        for bad in [data.join("credentials.json"), master.clone(), secrets.join("../data/credentials.json")] {
            assert!(p.check_file(&bad, Origin::Operator).is_err(), "{}", bad.display());
        }
        // A link in an allowed directory to a forbidden file is still refused.
        std::os::unix::fs::symlink(&master, secrets.join("link")).unwrap();
        assert!(p.check_file(&secrets.join("link"), Origin::Admin).is_err());
        assert!(p.check_file(&secrets.join("missing"), Origin::Admin).is_err());
    }

    #[test]
    fn an_admin_sends_a_file_only_to_a_vault_the_operator_named() {
        use super::super::config::{VaultConfig, VaultTls};
        let root = tempfile::tempdir().unwrap();
        let secrets = root.path().join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("sid"), "x").unwrap();
        let ours = "https://vault.internal:8200".to_owned();
        let p = SecretFilePolicy::new(std::slice::from_ref(&secrets), &root.path().join("data"), None).with_vaults([&ours]);
        let cfg = |address: &str, skip_verify: bool| {
            let mut c = KmsConfig::local_default(crate::kms::KeyId::new("k").unwrap());
            c.backend = BackendConfig::Vault(Box::new(VaultConfig {
                address: address.into(),
                auth: VaultAuth::AppRole {
                    role_id: "r".into(),
                    secret_id: None,
                    secret_id_file: Some(secrets.join("sid")),
                    mount: "approle".into(),
                },
                namespace: None,
                mount_path: "transit".into(),
                kv_mount: "secret".into(),
                key_path_prefix: "kgw".into(),
                tls: VaultTls { skip_verify, ..Default::default() },
            }));
            c
        };
        assert!(p.check(&cfg("https://vault.internal:8200/", false), Origin::Admin).is_ok());
        assert!(p.check(&cfg("https://attacker.example", false), Origin::Admin).is_err());
        assert!(p.check(&cfg("https://vault.internal:8200", true), Origin::Admin).is_err());
        // The operator's own flags name their Vault themselves.
        assert!(p.check(&cfg("https://attacker.example", false), Origin::Operator).is_ok());
    }
}
