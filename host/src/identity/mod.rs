//! S3 identities beyond the configured pair: access keys an operator
//! creates over the admin API (or `kms-gateway admin identities`), each
//! with attributes and groups that policies receive with the principal.
//!
//! - this file: the registry ([`Identities`]): create, list, enable,
//!   disable, rotate the secret, update attributes, remove;
//! - [`auth`]: the SigV4 secret lookup for s3s, over the configured pair,
//!   the admin pair and the registry;
//! - [`freshness`]: the date and lifetime rules s3s leaves to us (SigV2
//!   dates, presigned lifetimes, SigV4 headers for the admin API).
//!
//! Documents live in the state (namespace `identities`, keyed by access
//! key), so they are shared in cluster mode and in force on every replica
//! within the poll bound. The secret key is sealed (AES-256-GCM under a key
//! derived from the master key, the access key as associated data): the
//! state never holds it in clear, and a secret moved to another access key
//! does not open. A secret is shown once, when created or rotated.

pub mod auth;
pub mod freshness;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::crypto::SealingKey;
use crate::state::{CachedDocs, StateError, StateStore};

const NS: &str = "identities";
/// Length of a generated access key and secret key.
const ACCESS_KEY_LEN: usize = 20;
const SECRET_KEY_LEN: usize = 40;
/// Attributes and groups a policy receives: bounded, like any input.
const MAX_ATTRIBUTES: usize = 32;
const MAX_ATTRIBUTE_BYTES: usize = 256;

/// Errors of the identity registry.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Invalid(String),
    #[error("identity {0} does not exist")]
    NotFound(String),
    #[error("identity {0} already exists")]
    Exists(String),
    #[error("{0} is configured by flags or the credentials file; it is not managed here")]
    Configured(String),
    #[error("identity state")]
    State(#[from] StateError),
    #[error("sealing an identity's secret failed")]
    Seal,
}

/// An identity as stored: everything but the secret in clear.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdentityDoc {
    access_key: String,
    /// The secret key, sealed (base64).
    sealed_secret: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    groups: Vec<String>,
    enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    secret_rotated_at: Option<OffsetDateTime>,
}

/// An identity as the admin API shows it (never its secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IdentityInfo {
    pub access_key: String,
    pub description: String,
    pub attributes: BTreeMap<String, String>,
    pub groups: Vec<String>,
    pub enabled: bool,
    /// `managed` (this registry) or `configured` (flags, credentials file).
    pub source: &'static str,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub secret_rotated_at: Option<OffsetDateTime>,
}

impl From<&IdentityDoc> for IdentityInfo {
    fn from(d: &IdentityDoc) -> Self {
        Self {
            access_key: d.access_key.clone(),
            description: d.description.clone(),
            attributes: d.attributes.clone(),
            groups: d.groups.clone(),
            enabled: d.enabled,
            source: "managed",
            created_at: Some(d.created_at),
            secret_rotated_at: d.secret_rotated_at,
        }
    }
}

/// What a new identity (or an update) says about itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySpec {
    /// Chosen by the operator, or generated.
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub attributes: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

/// What a policy (and the audit trail) learns of the identity that signed
/// a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    pub access_key: String,
    pub attributes: BTreeMap<String, String>,
    pub groups: Vec<String>,
}

/// The managed identities, and the configured pairs they must not shadow.
pub struct Identities {
    docs: CachedDocs<IdentityDoc>,
    seal: SealingKey,
    /// Access keys configured by flags or the credentials file (the default
    /// S3 identity and the admin's).
    configured: Vec<String>,
    default_access_key: String,
}

fn valid_access_key(ak: &str) -> Result<(), IdentityError> {
    let ok = (3..=128).contains(&ak.len()) && ak.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(IdentityError::Invalid("access keys are 3-128 letters and digits".into())) }
}

fn valid_labels(spec: &IdentitySpec) -> Result<(), IdentityError> {
    let attrs = spec.attributes.as_ref().map_or(0, BTreeMap::len);
    let groups = spec.groups.as_ref().map_or(0, Vec::len);
    if attrs + groups > MAX_ATTRIBUTES {
        return Err(IdentityError::Invalid(format!("at most {MAX_ATTRIBUTES} attributes and groups together")));
    }
    let texts = spec.attributes.iter().flatten().flat_map(|(k, v)| [k, v]).chain(spec.groups.iter().flatten());
    for t in texts {
        if t.is_empty() || t.len() > MAX_ATTRIBUTE_BYTES || t.chars().any(char::is_control) {
            return Err(IdentityError::Invalid(format!(
                "attribute names, values and groups are 1-{MAX_ATTRIBUTE_BYTES} bytes without control characters"
            )));
        }
    }
    Ok(())
}

fn aad(access_key: &str) -> Vec<u8> {
    [b"kms-gateway/v2/identity-secret\0".as_slice(), access_key.as_bytes()].concat()
}

fn new_secret() -> Result<Zeroizing<String>, IdentityError> {
    crate::config::random_token(SECRET_KEY_LEN).map(Zeroizing::new).map_err(|_| IdentityError::Seal)
}

impl Identities {
    /// `master` derives the sealing key; `default_access_key` and
    /// `admin_access_key` are the configured pairs.
    pub fn new(store: StateStore, master: &SealingKey, default_access_key: &str, admin_access_key: &str) -> Self {
        Self {
            docs: CachedDocs::new(store, NS),
            seal: master.derive(b"kms-gateway/v2/identity-secrets"),
            configured: vec![default_access_key.to_owned(), admin_access_key.to_owned()],
            default_access_key: default_access_key.to_owned(),
        }
    }

    fn not_configured(&self, ak: &str) -> Result<(), IdentityError> {
        if self.configured.iter().any(|c| c == ak) {
            return Err(IdentityError::Configured(ak.to_owned()));
        }
        Ok(())
    }

    fn sealed(&self, access_key: &str, secret: &str) -> Result<String, IdentityError> {
        let sealed = self.seal.seal_bytes(secret.as_bytes(), &aad(access_key)).map_err(|_| IdentityError::Seal)?;
        Ok(B64.encode(sealed))
    }

    /// The secret key of an enabled managed identity (`None`: unknown or
    /// disabled). A document whose secret does not open is an error.
    pub async fn secret_of(&self, access_key: &str) -> Result<Option<Zeroizing<String>>, IdentityError> {
        let Some(doc) = self.docs.get(access_key).await? else { return Ok(None) };
        if !doc.enabled {
            return Ok(None);
        }
        let sealed = B64.decode(&doc.sealed_secret).map_err(|_| IdentityError::Seal)?;
        let plain = self.seal.open_bytes(&sealed, &aad(access_key)).map_err(|_| IdentityError::Seal)?;
        String::from_utf8(plain.to_vec()).map(Zeroizing::new).map_err(|_| IdentityError::Seal).map(Some)
    }

    /// What policies learn of the signer of a request: its attributes and
    /// groups when it is a managed identity, nothing more otherwise.
    pub async fn principal(&self, access_key: &str) -> Principal {
        let doc =
            if self.configured.iter().any(|c| c == access_key) { None } else { self.docs.get(access_key).await.ok().flatten() };
        match doc {
            Some(d) => {
                Principal { access_key: access_key.to_owned(), attributes: d.attributes.clone(), groups: d.groups.clone() }
            }
            None => Principal { access_key: access_key.to_owned(), ..Principal::default() },
        }
    }

    /// Create an identity; its secret is returned this once.
    pub async fn create(&self, spec: IdentitySpec) -> Result<(IdentityInfo, Zeroizing<String>), IdentityError> {
        valid_labels(&spec)?;
        let access_key = match spec.access_key.clone() {
            Some(ak) => ak,
            None => crate::config::random_token(ACCESS_KEY_LEN).map_err(|_| IdentityError::Seal)?.to_ascii_uppercase(),
        };
        valid_access_key(&access_key)?;
        self.not_configured(&access_key)?;
        let secret = new_secret()?;
        let doc = IdentityDoc {
            sealed_secret: self.sealed(&access_key, &secret)?,
            access_key: access_key.clone(),
            description: spec.description.unwrap_or_default(),
            attributes: spec.attributes.unwrap_or_default(),
            groups: spec.groups.unwrap_or_default(),
            enabled: true,
            created_at: OffsetDateTime::now_utc(),
            secret_rotated_at: None,
        };
        if !self.docs.create(&access_key, doc.clone()).await? {
            return Err(IdentityError::Exists(access_key));
        }
        Ok((IdentityInfo::from(&doc), secret))
    }

    /// Every identity: the configured default first, then the managed
    /// ones by access key.
    pub async fn list(&self) -> Result<Vec<IdentityInfo>, IdentityError> {
        let mut out = vec![IdentityInfo {
            access_key: self.default_access_key.clone(),
            description: "the configured S3 identity".into(),
            attributes: BTreeMap::new(),
            groups: Vec::new(),
            enabled: true,
            source: "configured",
            created_at: None,
            secret_rotated_at: None,
        }];
        out.extend(self.docs.list().await?.iter().map(|(_, d)| IdentityInfo::from(d)));
        Ok(out)
    }

    pub async fn get(&self, access_key: &str) -> Result<IdentityInfo, IdentityError> {
        self.not_configured(access_key)?;
        let doc = self.docs.get(access_key).await?.ok_or_else(|| IdentityError::NotFound(access_key.to_owned()))?;
        Ok(IdentityInfo::from(&*doc))
    }

    /// Change an identity by compare-and-set (two admins at once: both
    /// changes apply, one after the other).
    async fn modify<F>(&self, access_key: &str, change: F) -> Result<IdentityDoc, IdentityError>
    where
        F: Fn(&mut IdentityDoc) -> Result<(), IdentityError>,
    {
        self.not_configured(access_key)?;
        self.docs
            .update(access_key, |doc| {
                let mut doc = doc.ok_or_else(|| IdentityError::NotFound(access_key.to_owned()))?;
                change(&mut doc)?;
                Ok(doc)
            })
            .await
    }

    pub async fn set_enabled(&self, access_key: &str, enabled: bool) -> Result<IdentityInfo, IdentityError> {
        let doc = self
            .modify(access_key, |d| {
                d.enabled = enabled;
                Ok(())
            })
            .await?;
        Ok(IdentityInfo::from(&doc))
    }

    /// Replace the description, attributes and groups that `spec` names.
    pub async fn update(&self, access_key: &str, spec: IdentitySpec) -> Result<IdentityInfo, IdentityError> {
        valid_labels(&spec)?;
        if spec.access_key.as_deref().is_some_and(|ak| ak != access_key) {
            return Err(IdentityError::Invalid("an identity's access key cannot change; create another".into()));
        }
        let doc = self
            .modify(access_key, |d| {
                if let Some(x) = &spec.description {
                    d.description = x.clone();
                }
                if let Some(x) = &spec.attributes {
                    d.attributes = x.clone();
                }
                if let Some(x) = &spec.groups {
                    d.groups = x.clone();
                }
                Ok(())
            })
            .await?;
        Ok(IdentityInfo::from(&doc))
    }

    /// A new secret key, returned this once; the old one stops working.
    pub async fn rotate_secret(&self, access_key: &str) -> Result<(IdentityInfo, Zeroizing<String>), IdentityError> {
        let secret = new_secret()?;
        let sealed = self.sealed(access_key, &secret)?;
        let doc = self
            .modify(access_key, |d| {
                d.sealed_secret = sealed.clone();
                d.secret_rotated_at = Some(OffsetDateTime::now_utc());
                Ok(())
            })
            .await?;
        Ok((IdentityInfo::from(&doc), secret))
    }

    pub async fn remove(&self, access_key: &str) -> Result<(), IdentityError> {
        self.not_configured(access_key)?;
        if self.docs.get(access_key).await?.is_none() {
            return Err(IdentityError::NotFound(access_key.to_owned()));
        }
        self.docs.set(access_key, None).await?;
        Ok(())
    }
}

/// Shared handle.
pub type SharedIdentities = Arc<Identities>;

#[cfg(test)]
mod tests;
