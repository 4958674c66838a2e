//! The `vault` backend: HashiCorp Vault or OpenBao.
//!
//! - Master keys the gateway creates are Transit keys of type
//!   `aes256-gcm96` with `derived=true`: every data-key call passes the
//!   encryption context as the derivation context, so a wrapped data key
//!   only unwraps with the context it was made for (the object or bucket
//!   it belongs to). Keys an operator created without derivation (Transit's
//!   default, and RustFS's) bind the same context as the ciphertext's
//!   associated data instead, if they are of an AEAD type.
//! - Data keys come from `datakey/plaintext` (derived keys) or are drawn
//!   by the gateway and encrypted (associated-data keys: Transit's datakey
//!   call takes no associated data in the client); the wrapped form is
//!   Transit's `vault:vN:…` ciphertext, which names the key version.
//! - Key metadata (description, tags, state, deletion date, times) lives in
//!   KV v2 at `<kv_mount>/<key_path_prefix>/<key_id>`. A Transit key made by
//!   an operator without that record is served as enabled.
//! - Every call goes through [`resilience`](super::resilience): per-attempt
//!   timeout, retries for idempotent calls, circuit breaker. An AppRole
//!   token refused with 403 triggers one re-login.

mod session;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequestOptions};
use vaultrs::api::transit::KeyType;
use vaultrs::api::transit::requests::{
    CreateKeyRequest as TransitCreate, DataKeyType, DecryptDataRequest, EncryptDataRequest, GenerateDataKeyRequest,
    RewrapDataRequest, UpdateKeyConfigurationRequest,
};
use vaultrs::api::transit::responses::ReadKeyData;
use vaultrs::client::VaultClient;
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

use super::config::VaultConfig;
use super::resilience::{self, CircuitBreaker, Idempotency, RetryPolicy};
use super::types::{KeyRecord, canonical_context, require_enabled};
use super::{CreateKeyRequest, DataKey, EncryptionContext, KeyAdmin, KeyBackend, KeyId, KeyInfo, KeyUpdate, KmsError};
use crate::crypto::{SealingKey, random_bytes};
use session::{Session, classify, is_not_found};

/// The key the health probe generates and unwraps a data key under.
const PROBE_KEY: &str = "kms-gateway-probe";
const WRAP_PREFIX: &[u8] = b"vault:v";
/// Read-modify-write rounds before a contended key update gives up.
const CAS_ATTEMPTS: u32 = 20;

/// Outcome of a check-and-set write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cas {
    Written,
    /// Someone else wrote first (or, for a create, the record exists).
    Conflict,
}

/// The KV v2 record of a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KvRecord {
    #[serde(flatten)]
    record: KeyRecord,
    #[serde(default)]
    managed_by: String,
}

impl KvRecord {
    fn new(record: KeyRecord) -> Self {
        Self { record, managed_by: "kms-gateway".into() }
    }
}

/// How a Transit key binds a data key to its encryption context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// `derived=true` (the keys the gateway creates): the context is the
    /// key-derivation context.
    Derived,
    /// A plain AEAD key (`write -f transit/keys/NAME`, as operators and
    /// RustFS create them): the context is the associated data.
    AssociatedData,
}

/// A Transit key as the data path needs it.
struct TransitKey {
    info: KeyInfo,
    binding: Binding,
}

pub struct VaultBackend {
    cfg: VaultConfig,
    session: Arc<Session>,
    policy: RetryPolicy,
    breaker: Arc<CircuitBreaker>,
    /// Key metadata, so data-key calls do not read KV every time.
    meta: moka::sync::Cache<KeyId, Arc<TransitKey>>,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for VaultBackend {
    fn drop(&mut self) {
        if let Some(h) = &self.renewal {
            h.abort();
        }
    }
}

impl VaultBackend {
    pub async fn connect(
        cfg: &VaultConfig,
        policy: RetryPolicy,
        breaker: Arc<CircuitBreaker>,
        meta_ttl: std::time::Duration,
    ) -> Result<Self, KmsError> {
        let session = Session::connect(cfg, policy.per_attempt).await?;
        let renewal = session.spawn_renewal();
        Ok(Self {
            cfg: cfg.clone(),
            session,
            policy,
            breaker,
            meta: moka::sync::Cache::builder().max_capacity(10_000).time_to_live(meta_ttl).build(),
            renewal,
        })
    }

    /// One logical Vault call: retried when idempotent, re-logged-in once
    /// on 403 with AppRole.
    async fn run<T, F, Fut>(&self, kind: Idempotency, what: &str, key: Option<&KeyId>, op: F) -> Result<T, KmsError>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let attempt = || async {
            match op(self.session.client()).await {
                Ok(v) => Ok(v),
                Err(e) if is_not_found(&e) => Err(match key {
                    Some(k) => KmsError::NotFound(k.clone()),
                    None => classify(e, what),
                }),
                Err(e) => Err(classify(e, what)),
            }
        };
        match resilience::call(self.policy, &self.breaker, kind, attempt).await {
            Err(KmsError::Denied(_)) if self.session.uses_approle() => {
                self.session.login().await?;
                resilience::call(self.policy, &self.breaker, kind, attempt).await
            }
            other => other,
        }
    }

    fn kv_path(&self, id: &KeyId) -> String {
        format!("{}/{id}", self.cfg.key_path_prefix)
    }

    fn context_b64(ctx: &EncryptionContext) -> String {
        // Derived Transit keys need a non-empty context; the prefix also
        // keeps these derivations apart from any other use of the key.
        let mut c = b"kms-gateway/v1:".to_vec();
        c.extend_from_slice(&canonical_context(ctx));
        B64.encode(c)
    }

    /// A data key for an associated-data key: drawn here, encrypted by
    /// Transit with the context as associated data.
    async fn encrypt_data_key(&self, key_id: &KeyId, ctx: String) -> Result<DataKey, KmsError> {
        let mut dek = Zeroizing::new([0u8; 32]);
        random_bytes(dek.as_mut()).map_err(KmsError::internal("random source failed"))?;
        let plain = Zeroizing::new(B64.encode(dek.as_ref()));
        let mount = self.cfg.mount_path.as_str();
        let resp = self
            .run(Idempotency::Retry, "encrypt data key", Some(key_id), |c| {
                let (ctx, plain) = (ctx.clone(), plain.clone());
                async move {
                    let mut opts = EncryptDataRequest::builder();
                    opts.associated_data(ctx);
                    vaultrs::transit::data::encrypt(&*c, mount, key_id.as_str(), plain.as_str(), Some(&mut opts)).await
                }
            })
            .await?;
        let key_version = version_of(&resp.ciphertext)?;
        Ok(DataKey { plaintext: SealingKey::from_bytes(*dek), wrapped: resp.ciphertext.into_bytes(), key_version })
    }

    async fn read_record(&self, id: &KeyId) -> Result<Option<KvRecord>, KmsError> {
        Ok(self.read_versioned(id).await?.map(|(rec, _)| rec))
    }

    /// A key's metadata record with its KV v2 version (for check-and-set).
    async fn read_versioned(&self, id: &KeyId) -> Result<Option<(KvRecord, u64)>, KmsError> {
        let (mount, path) = (self.cfg.kv_mount.as_str(), self.kv_path(id));
        let r = self
            .run(Idempotency::Retry, "read key metadata", Some(id), |c| {
                let path = path.clone();
                async move {
                    let req = ReadSecretRequest::builder().mount(mount).path(&path).build().expect("mount and path set");
                    let res = vaultrs::api::exec_with_result(&*c, req).await?;
                    let rec: KvRecord =
                        serde_json::from_value(res.data).map_err(|source| ClientError::JsonParseError { source })?;
                    Ok((rec, res.metadata.version))
                }
            })
            .await;
        match r {
            Ok(rec) => Ok(Some(rec)),
            Err(KmsError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write a record only over `version` (0: only if there is none): KV
    /// v2 check-and-set, so concurrent updates never overwrite each other.
    async fn write_record(&self, id: &KeyId, rec: &KvRecord, version: u64) -> Result<Cas, KmsError> {
        let (mount, path) = (self.cfg.kv_mount.as_str(), self.kv_path(id));
        let cas = u32::try_from(version).map_err(|_| KmsError::Rejected("key metadata version out of range".into()))?;
        let out = self
            .run(Idempotency::Once, "write key metadata", None, |c| {
                let path = path.clone();
                async move {
                    let opts = SetSecretRequestOptions { cas };
                    match vaultrs::kv2::set_with_options(&*c, mount, &path, rec, opts).await {
                        Ok(_) => Ok(Cas::Written),
                        Err(e) if session::is_cas_mismatch(&e) => Ok(Cas::Conflict),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        self.meta.invalidate(id);
        Ok(out)
    }

    /// Read-modify-write of a key's record under check-and-set, retried on
    /// a concurrent update (another admin call, another gateway).
    async fn modify_record(&self, id: &KeyId, change: impl Fn(&mut KvRecord) -> Result<(), KmsError>) -> Result<(), KmsError> {
        for _ in 0..CAS_ATTEMPTS {
            let (mut rec, version) = match self.read_versioned(id).await? {
                Some(found) => found,
                None => (self.default_record(id).await?, 0),
            };
            change(&mut rec)?;
            if self.write_record(id, &rec, version).await? == Cas::Written {
                return Ok(());
            }
            // Back off a random while, so contending writers spread out.
            let mut r = [0u8; 1];
            random_bytes(&mut r).map_err(|_| KmsError::Unavailable("random source failed".into()))?;
            tokio::time::sleep(std::time::Duration::from_millis(5 + u64::from(r[0] % 50))).await;
        }
        Err(KmsError::Unavailable("key metadata kept changing under concurrent updates; retry".into()))
    }

    /// Metadata plus the Transit key's versions and binding.
    async fn load(&self, id: &KeyId) -> Result<Arc<TransitKey>, KmsError> {
        if let Some(i) = self.meta.get(id) {
            return Ok(i);
        }
        let mount = self.cfg.mount_path.as_str();
        let key = self
            .run(Idempotency::Retry, "read transit key", Some(id), |c| async move {
                vaultrs::transit::key::read(&*c, mount, id.as_str()).await
            })
            .await?;
        let binding = if key.derived {
            Binding::Derived
        } else if matches!(key.key_type, KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::Chacha20Poly1305) {
            Binding::AssociatedData
        } else {
            return Err(KmsError::Unsupported(format!(
                "transit key '{id}' is neither derived nor of an AEAD type (aes128-gcm96, aes256-gcm96, chacha20-poly1305): kms-gateway binds each data key to its context"
            )));
        };
        let versions: BTreeMap<u32, i64> = match &key.keys {
            ReadKeyData::Symmetric(m) => m.iter().filter_map(|(v, t)| Some((v.parse().ok()?, *t as i64))).collect(),
            _ => return Err(KmsError::Unsupported(format!("transit key '{id}' is not a symmetric key"))),
        };
        let (latest, first_ts) =
            (versions.keys().next_back().copied().unwrap_or(1), versions.values().next().copied().unwrap_or(0));
        let rec = self.read_record(id).await?;
        let created = OffsetDateTime::from_unix_timestamp(first_ts).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let info = match rec {
            Some(r) => info_of(id, &r, latest),
            None => {
                KeyRecord { created_at: created, ..KeyRecord::new(String::new(), Default::default()) }.info(id, latest, "vault")
            }
        };
        let key = Arc::new(TransitKey { info, binding });
        self.meta.insert(id.clone(), key.clone());
        Ok(key)
    }

    /// The record of a Transit key that has none yet in KV.
    async fn default_record(&self, id: &KeyId) -> Result<KvRecord, KmsError> {
        let info = &self.load(id).await?.info;
        Ok(KvRecord::new(KeyRecord { created_at: info.created_at, ..KeyRecord::new(String::new(), Default::default()) }))
    }

    async fn ensure_probe_key(&self) -> Result<KeyId, KmsError> {
        let id = KeyId::new(PROBE_KEY)?;
        match self.load(&id).await {
            Ok(_) => Ok(id),
            Err(KmsError::NotFound(_)) => {
                self.create_transit_key(&id).await?;
                Ok(id)
            }
            Err(e) => Err(e),
        }
    }

    async fn create_transit_key(&self, id: &KeyId) -> Result<(), KmsError> {
        let mount = self.cfg.mount_path.as_str();
        self.run(Idempotency::Once, "create transit key", None, |c| async move {
            let mut opts = TransitCreate::builder();
            opts.key_type(KeyType::Aes256Gcm96).derived(true).exportable(false);
            vaultrs::transit::key::create(&*c, mount, id.as_str(), Some(&mut opts)).await
        })
        .await?;
        self.meta.invalidate(id);
        Ok(())
    }
}

fn info_of(id: &KeyId, r: &KvRecord, version: u32) -> KeyInfo {
    r.record.info(id, version, "vault")
}

/// `vault:vN:…` → N.
fn version_of(ciphertext: &str) -> Result<u32, KmsError> {
    ciphertext
        .strip_prefix("vault:v")
        .and_then(|r| r.split_once(':'))
        .and_then(|(v, _)| v.parse().ok())
        .ok_or(KmsError::MalformedDataKey)
}

#[async_trait]
impl KeyBackend for VaultBackend {
    fn kind(&self) -> &'static str {
        "vault"
    }

    fn rewraps(&self) -> bool {
        true
    }

    fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    async fn generate_data_key(&self, key_id: &KeyId, context: &EncryptionContext) -> Result<DataKey, KmsError> {
        let key = self.load(key_id).await?;
        require_enabled(key_id, key.info.state)?;
        let (mount, ctx) = (self.cfg.mount_path.as_str(), Self::context_b64(context));
        if key.binding == Binding::AssociatedData {
            return self.encrypt_data_key(key_id, ctx).await;
        }
        let resp = self
            .run(Idempotency::Retry, "generate data key", Some(key_id), |c| {
                let ctx = ctx.clone();
                async move {
                    let mut opts = GenerateDataKeyRequest::builder();
                    opts.context(ctx).bits(256u16);
                    vaultrs::transit::generate::data_key(&*c, mount, key_id.as_str(), DataKeyType::Plaintext, Some(&mut opts))
                        .await
                }
            })
            .await?;
        let plain = Zeroizing::new(
            B64.decode(resp.plaintext.as_deref().ok_or(KmsError::MalformedDataKey)?).map_err(|_| KmsError::MalformedDataKey)?,
        );
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| KmsError::MalformedDataKey)?;
        let key_version = version_of(&resp.ciphertext)?;
        Ok(DataKey { plaintext: SealingKey::from_bytes(bytes), wrapped: resp.ciphertext.into_bytes(), key_version })
    }

    async fn decrypt_data_key(
        &self,
        key_id: &KeyId,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<SealingKey, KmsError> {
        let ciphertext = std::str::from_utf8(wrapped).map_err(|_| KmsError::MalformedDataKey)?;
        version_of(ciphertext)?;
        let key = self.load(key_id).await?;
        require_enabled(key_id, key.info.state)?;
        let (mount, ctx, binding) = (self.cfg.mount_path.as_str(), Self::context_b64(context), key.binding);
        let resp = self
            .run(Idempotency::Retry, "decrypt data key", Some(key_id), |c| {
                let ctx = ctx.clone();
                async move {
                    let mut opts = DecryptDataRequest::builder();
                    match binding {
                        Binding::Derived => opts.context(ctx),
                        Binding::AssociatedData => opts.associated_data(ctx),
                    };
                    vaultrs::transit::data::decrypt(&*c, mount, key_id.as_str(), ciphertext, Some(&mut opts)).await
                }
            })
            .await
            .map_err(|e| match e {
                KmsError::Rejected(_) | KmsError::Missing(_) => KmsError::Unwrap(key_id.clone()),
                other => other,
            })?;
        let plain = Zeroizing::new(B64.decode(&resp.plaintext).map_err(|_| KmsError::MalformedDataKey)?);
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| KmsError::MalformedDataKey)?;
        Ok(SealingKey::from_bytes(bytes))
    }

    async fn describe_key(&self, key_id: &KeyId) -> Result<KeyInfo, KmsError> {
        Ok(self.load(key_id).await?.info.clone())
    }

    /// Generate → decrypt on the reserved probe key: proves reachability,
    /// unsealed state, authentication and Transit permissions in one go.
    async fn health(&self) -> Result<(), KmsError> {
        let id = self.ensure_probe_key().await?;
        let ctx = EncryptionContext::from([("probe".to_owned(), "1".to_owned())]);
        let dk = self.generate_data_key(&id, &ctx).await?;
        let back = self.decrypt_data_key(&id, &dk.wrapped, &ctx).await?;
        if back.as_bytes() != dk.plaintext.as_bytes() {
            return Err(KmsError::Unavailable("probe data key did not round-trip".into()));
        }
        Ok(())
    }

    fn recognizes(&self, wrapped: &[u8]) -> bool {
        wrapped.starts_with(WRAP_PREFIX)
    }

    fn clear_cache(&self) {
        self.meta.invalidate_all();
    }

    async fn rewrap_data_key(
        &self,
        key_id: &KeyId,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Option<Result<(Vec<u8>, u32), KmsError>> {
        // Transit's rewrap takes no associated data: the caller re-wraps
        // client-side for such keys.
        let key = match self.load(key_id).await {
            Ok(k) if k.binding == Binding::AssociatedData => return None,
            Ok(k) => k,
            Err(e) => return Some(Err(e)),
        };
        let r = async {
            let ciphertext = std::str::from_utf8(wrapped).map_err(|_| KmsError::MalformedDataKey)?;
            require_enabled(key_id, key.info.state)?;
            let (mount, ctx) = (self.cfg.mount_path.as_str(), Self::context_b64(context));
            let resp = self
                .run(Idempotency::Retry, "rewrap data key", Some(key_id), |c| {
                    let ctx = ctx.clone();
                    async move {
                        let mut opts = RewrapDataRequest::builder();
                        opts.context(ctx);
                        vaultrs::transit::data::rewrap(&*c, mount, key_id.as_str(), ciphertext, Some(&mut opts)).await
                    }
                })
                .await?;
            let v = version_of(&resp.ciphertext)?;
            Ok((resp.ciphertext.into_bytes(), v))
        };
        Some(r.await)
    }
}

#[async_trait]
impl KeyAdmin for VaultBackend {
    async fn create_key(&self, req: CreateKeyRequest) -> Result<KeyInfo, KmsError> {
        let id = match req.key_id {
            Some(id) => id,
            None => {
                let mut r = [0u8; 16];
                random_bytes(&mut r).map_err(KmsError::internal("random source failed"))?;
                KeyId::new(hex::encode(r))?
            }
        };
        match self.load(&id).await {
            Ok(_) => return Err(KmsError::AlreadyExists(id)),
            Err(KmsError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        self.create_transit_key(&id).await?;
        let rec = KvRecord::new(KeyRecord::new(req.description, req.tags));
        if self.write_record(&id, &rec, 0).await? == Cas::Conflict {
            return Err(KmsError::AlreadyExists(id));
        }
        Ok(info_of(&id, &rec, 1))
    }

    async fn list_keys(&self) -> Result<Vec<KeyInfo>, KmsError> {
        let (mount, prefix) = (self.cfg.kv_mount.as_str(), self.cfg.key_path_prefix.as_str());
        let names = match self
            .run(Idempotency::Retry, "list keys", None, |c| async move { vaultrs::kv2::list(&*c, mount, prefix).await })
            .await
        {
            Ok(n) => n,
            // No key written yet: the prefix does not exist.
            Err(KmsError::Missing(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        // The health probe's key is the backend's own, not an operator's.
        for name in names.iter().filter(|n| !n.ends_with('/') && n.as_str() != PROBE_KEY) {
            let Ok(id) = KeyId::new(name.as_str()) else { continue };
            match self.load(&id).await {
                Ok(k) => out.push(k.info.clone()),
                // Metadata whose Transit key was removed out of band.
                Err(KmsError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(out)
    }

    async fn update_key(&self, key_id: &KeyId, update: KeyUpdate) -> Result<KeyInfo, KmsError> {
        self.modify_record(key_id, |rec| rec.record.meta.apply(key_id, update.clone())).await?;
        self.describe_key(key_id).await
    }

    async fn rotate_key(&self, key_id: &KeyId) -> Result<KeyInfo, KmsError> {
        require_enabled(key_id, self.load(key_id).await?.info.state)?;
        let mount = self.cfg.mount_path.as_str();
        self.run(Idempotency::Once, "rotate transit key", Some(key_id), |c| async move {
            vaultrs::transit::key::rotate(&*c, mount, key_id.as_str()).await
        })
        .await?;
        let now = OffsetDateTime::now_utc();
        self.modify_record(key_id, |rec| {
            rec.record.rotated_at = Some(now);
            Ok(())
        })
        .await?;
        self.meta.invalidate(key_id);
        self.describe_key(key_id).await
    }

    async fn delete_key(&self, key_id: &KeyId) -> Result<(), KmsError> {
        self.load(key_id).await?;
        let (mount, kv) = (self.cfg.mount_path.as_str(), self.cfg.kv_mount.as_str());
        self.run(Idempotency::Once, "allow transit key deletion", Some(key_id), |c| async move {
            let mut opts = UpdateKeyConfigurationRequest::builder();
            opts.deletion_allowed(true);
            vaultrs::transit::key::update(&*c, mount, key_id.as_str(), Some(&mut opts)).await
        })
        .await?;
        self.run(Idempotency::Once, "delete transit key", Some(key_id), |c| async move {
            vaultrs::transit::key::delete(&*c, mount, key_id.as_str()).await
        })
        .await?;
        let path = self.kv_path(key_id);
        let _ = self
            .run(Idempotency::Once, "delete key metadata", None, |c| {
                let path = path.clone();
                async move { vaultrs::kv2::delete_metadata(&*c, kv, &path).await }
            })
            .await;
        self.meta.invalidate(key_id);
        Ok(())
    }
}
