//! Secrets in a KMS configuration (Vault token, AppRole secret id): the
//! zeroized in-memory type, and how they cross the wire. A request carries
//! them in plain text; the redacted view shows a placeholder; the stored
//! form seals them under a key derived from the gateway master key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::{ConfigError, bad};
use crate::crypto::SealingKey;

/// A secret string. Zeroized on drop, never printed.
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

/// How secrets appear in the JSON being read.
pub enum SecretSource<'a> {
    /// From a client: plain strings.
    Request,
    /// From the state store: sealed under this key.
    Stored(&'a SecretSealer),
}

/// How secrets are written out.
pub enum SecretSink<'a> {
    /// For operators: replaced by a placeholder.
    Redact,
    /// For the state store.
    Seal(&'a SecretSealer),
}

const REDACTED: &str = "********";

impl SecretSource<'_> {
    /// The secret named `name` (for errors and the sealing AAD) from its
    /// wire text.
    pub(super) fn read(&self, name: &str, wire: &str) -> Result<Secret, ConfigError> {
        match self {
            SecretSource::Request => Ok(Secret::new(wire)),
            SecretSource::Stored(sealer) => sealer.open(name, wire),
        }
    }
}

impl SecretSink<'_> {
    pub(super) fn write(&self, name: &str, s: &Secret) -> String {
        match self {
            SecretSink::Redact => REDACTED.to_owned(),
            SecretSink::Seal(sealer) => sealer.seal(name, s),
        }
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
