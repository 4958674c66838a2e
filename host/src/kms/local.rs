//! The `local` backend: one JSON file per master key under `<key_dir>`,
//! key material sealed with AES-256-GCM under a 256-bit master key. In
//! cluster mode the same documents live in the shared state store
//! (namespace `kms-local-keys`), created write-once and changed by
//! compare-and-set, so two replicas rotating one key cannot lose a version.
//!
//! File `<key_dir>/<key_id>.key` (mode 0600, written atomically):
//!
//! ```json
//! {"format_version":1,"key_id":"gateway-default","description":"…","state":"Enabled",
//!  "created_at":"…","rotated_at":null,"tags":{},"deletion_date":null,"current_version":1,
//!  "versions":[{"version":1,"created_at":"…","material":"<base64 sealed key>"}]}
//! ```
//!
//! Wrapped data key: `"KGL1" ‖ be32(version) ‖ sealed(dek)`, where the seal's
//! AAD binds the key id, the version and the canonical encryption context.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::types::{KeyRecord, canonical_context, require_enabled};
use super::{CreateKeyRequest, DataKey, EncryptionContext, KeyAdmin, KeyBackend, KeyId, KeyInfo, KeyUpdate, KmsError};
use crate::crypto::{SealingKey, random_bytes};
use crate::fsutil::{create_private_dir, write_private_atomic};
use crate::state::StateStore;

/// Namespace of key documents in the shared state store.
const SHARED_NS: &str = "kms-local-keys";

const FILE_FORMAT: u32 = 1;
const WRAP_MAGIC: &[u8; 4] = b"KGL1";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyFile {
    format_version: u32,
    key_id: KeyId,
    #[serde(flatten)]
    record: KeyRecord,
    current_version: u32,
    versions: Vec<KeyVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyVersion {
    version: u32,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// base64 of the key material sealed under the master key.
    material: String,
}

struct LoadedKey {
    file: KeyFile,
    materials: BTreeMap<u32, SealingKey>,
}

/// Where the key documents live.
enum Files {
    /// One file per key in a directory (one node).
    Dir(PathBuf),
    /// The shared state store (cluster mode).
    Shared(StateStore),
}

/// The local file backend.
pub struct LocalBackend {
    files: Files,
    master: SealingKey,
    /// Keys as loaded, and the state generation they are at least as new
    /// as (shared keys are reloaded after another replica's change).
    keys: RwLock<(u64, HashMap<KeyId, Arc<LoadedKey>>)>,
    /// Serialises read-modify-write of key files within this process.
    write_lock: tokio::sync::Mutex<()>,
}

impl LocalBackend {
    /// Open (or create) the key directory; every key file is loaded and
    /// checked against the master key up front, so a wrong master key fails
    /// at start, not at the first GET.
    pub fn open(dir: &Path, master: SealingKey) -> Result<Self, KmsError> {
        create_private_dir(dir).map_err(|source| KmsError::Io { path: dir.display().to_string(), source })?;
        let me = Self::new(Files::Dir(dir.to_owned()), master);
        let entries = std::fs::read_dir(dir).map_err(|source| KmsError::Io { path: dir.display().to_string(), source })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "key") {
                let loaded = me.load_file(&path)?;
                me.remember(0, Arc::new(loaded));
            }
        }
        Ok(me)
    }

    /// The keys of the shared state store (cluster mode), each checked
    /// against the master key up front as [`open`](Self::open) does.
    pub async fn open_shared(store: StateStore, master: SealingKey) -> Result<Self, KmsError> {
        let generation = store.generation();
        let files = store.list::<KeyFile>(SHARED_NS).await?;
        let me = Self::new(Files::Shared(store), master);
        for (name, file) in files {
            let loaded = me.load(file, &format!("{SHARED_NS}/{name}"))?;
            me.remember(generation, Arc::new(loaded));
        }
        Ok(me)
    }

    fn new(files: Files, master: SealingKey) -> Self {
        Self { files, master, keys: RwLock::default(), write_lock: Default::default() }
    }

    /// Keep `key` in memory as at least as new as `generation`.
    fn remember(&self, generation: u64, key: Arc<LoadedKey>) {
        let mut keys = self.keys.write().expect("key map lock");
        if keys.0 != generation {
            *keys = (generation, HashMap::new());
        }
        keys.1.insert(key.file.key_id.clone(), key);
    }

    fn generation(&self) -> u64 {
        match &self.files {
            Files::Dir(_) => 0,
            Files::Shared(store) => store.generation(),
        }
    }

    fn path_of(dir: &Path, id: &KeyId) -> PathBuf {
        // KeyId's character set makes this a plain file name inside `dir`.
        dir.join(format!("{id}.key"))
    }

    fn material_aad(id: &KeyId, version: u32) -> Vec<u8> {
        let mut aad = b"kms-gateway/local/key-material/".to_vec();
        aad.extend_from_slice(id.as_str().as_bytes());
        aad.extend_from_slice(&version.to_be_bytes());
        aad
    }

    fn dek_aad(id: &KeyId, version: u32, ctx: &EncryptionContext) -> Vec<u8> {
        let mut aad = b"kms-gateway/local/data-key".to_vec();
        let id = id.as_str().as_bytes();
        aad.extend_from_slice(&(id.len() as u32).to_be_bytes());
        aad.extend_from_slice(id);
        aad.extend_from_slice(&version.to_be_bytes());
        aad.extend_from_slice(&canonical_context(ctx));
        aad
    }

    fn load_file(&self, path: &Path) -> Result<LoadedKey, KmsError> {
        let p = path.display().to_string();
        let raw = std::fs::read(path).map_err(|source| KmsError::Io { path: p.clone(), source })?;
        let file: KeyFile =
            serde_json::from_slice(&raw).map_err(|e| KmsError::Corrupt { path: p.clone(), source: Box::new(e) })?;
        self.load(file, &p)
    }

    /// Open the materials of a key document named `p` (for messages).
    fn load(&self, file: KeyFile, p: &str) -> Result<LoadedKey, KmsError> {
        let p = p.to_owned();
        if file.format_version != FILE_FORMAT {
            return Err(KmsError::Corrupt { path: p, source: format!("unknown format_version {}", file.format_version).into() });
        }
        let mut materials = BTreeMap::new();
        for v in &file.versions {
            let sealed = B64.decode(&v.material).map_err(|e| KmsError::Corrupt { path: p.clone(), source: Box::new(e) })?;
            let plain = self
                .master
                .open_bytes(&sealed, &Self::material_aad(&file.key_id, v.version))
                .map_err(|_| KmsError::MasterKey(format!("key file {p} does not open under this master key")))?;
            let bytes: [u8; 32] = plain
                .as_slice()
                .try_into()
                .map_err(|_| KmsError::Corrupt { path: p.clone(), source: "bad material length".into() })?;
            materials.insert(v.version, SealingKey::from_bytes(bytes));
        }
        Ok(LoadedKey { file, materials })
    }

    async fn get(&self, id: &KeyId) -> Result<Arc<LoadedKey>, KmsError> {
        let generation = self.generation();
        {
            let keys = self.keys.read().expect("key map lock");
            if let Some(k) = keys.1.get(id).filter(|_| keys.0 == generation) {
                return Ok(k.clone());
            }
        }
        // Another process (or an operator) may have added or changed it.
        let loaded = match &self.files {
            Files::Dir(dir) => {
                let path = Self::path_of(dir, id);
                if !path.exists() {
                    return Err(KmsError::NotFound(id.clone()));
                }
                self.load_file(&path)?
            }
            Files::Shared(store) => match store.get::<KeyFile>(SHARED_NS, id.as_str()).await? {
                Some(file) => self.load(file, &format!("{SHARED_NS}/{id}"))?,
                None => return Err(KmsError::NotFound(id.clone())),
            },
        };
        let loaded = Arc::new(loaded);
        self.remember(generation, loaded.clone());
        Ok(loaded)
    }

    fn new_version(&self, id: &KeyId, version: u32, now: OffsetDateTime) -> Result<(KeyVersion, SealingKey), KmsError> {
        let mut material = Zeroizing::new([0u8; 32]);
        random_bytes(material.as_mut()).map_err(KmsError::internal("random source failed"))?;
        let sealed = self
            .master
            .seal_bytes(material.as_ref(), &Self::material_aad(id, version))
            .map_err(KmsError::internal("sealing failed"))?;
        Ok((KeyVersion { version, created_at: now, material: B64.encode(sealed) }, SealingKey::from_bytes(*material)))
    }

    /// Write a new key document (`Ok(false)` if the key exists), or replace
    /// one in a key directory (read-modify-write under `write_lock`).
    async fn persist(&self, file: KeyFile, materials: BTreeMap<u32, SealingKey>, new: bool) -> Result<bool, KmsError> {
        // Noted before the write: another replica's change after it makes
        // this entry stale, and must not be filed under as new.
        let generation = self.generation();
        match &self.files {
            Files::Dir(dir) => {
                let path = Self::path_of(dir, &file.key_id);
                let json = serde_json::to_vec_pretty(&file).expect("key file serialises");
                let p2 = path.clone();
                tokio::task::spawn_blocking(move || write_private_atomic(&p2, &json))
                    .await
                    .map_err(KmsError::internal("key file writer task failed"))?
                    .map_err(|source| KmsError::Io { path: path.display().to_string(), source })?;
            }
            Files::Shared(store) => {
                debug_assert!(new, "shared keys change by compare-and-set");
                if !store.create(SHARED_NS, file.key_id.as_str(), &file).await? {
                    return Ok(false);
                }
                store.changed().await?;
            }
        }
        self.remember(generation, Arc::new(LoadedKey { file, materials }));
        Ok(true)
    }

    /// Apply `change` to the current version of key `id` and store the
    /// result; in cluster mode by compare-and-set, redone on a lost race.
    async fn modify<F>(&self, id: &KeyId, change: F) -> Result<KeyInfo, KmsError>
    where
        F: Fn(&LoadedKey) -> Result<(KeyFile, BTreeMap<u32, SealingKey>), KmsError>,
    {
        let Files::Shared(store) = &self.files else {
            let (file, materials) = change(&*self.get(id).await?)?;
            let info = info_of(&file);
            self.persist(file, materials, false).await?;
            return Ok(info);
        };
        let generation = self.generation();
        let path = format!("{SHARED_NS}/{id}");
        let file = store
            .update(SHARED_NS, id.as_str(), |stored: Option<KeyFile>| {
                let current = self.load(stored.ok_or_else(|| KmsError::NotFound(id.clone()))?, &path)?;
                Ok::<_, KmsError>(change(&current)?.0)
            })
            .await?;
        store.changed().await?;
        // The materials of what was stored (the last attempt's).
        let loaded = self.load(file, &path)?;
        let info = info_of(&loaded.file);
        self.remember(generation, Arc::new(loaded));
        Ok(info)
    }

    fn usable(k: &LoadedKey) -> Result<(), KmsError> {
        require_enabled(&k.file.key_id, k.file.record.meta.state)
    }
}

fn info_of(f: &KeyFile) -> KeyInfo {
    f.record.info(&f.key_id, f.current_version, "local")
}

#[async_trait]
impl KeyBackend for LocalBackend {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn generate_data_key(&self, key_id: &KeyId, context: &EncryptionContext) -> Result<DataKey, KmsError> {
        let k = self.get(key_id).await?;
        Self::usable(&k)?;
        let version = k.file.current_version;
        let kek = k.materials.get(&version).ok_or(KmsError::UnknownVersion { key: key_id.clone(), version })?;
        let mut dek = Zeroizing::new([0u8; 32]);
        random_bytes(dek.as_mut()).map_err(KmsError::internal("random source failed"))?;
        let sealed = kek
            .seal_bytes(dek.as_ref(), &Self::dek_aad(key_id, version, context))
            .map_err(KmsError::internal("sealing failed"))?;
        let mut wrapped = WRAP_MAGIC.to_vec();
        wrapped.extend_from_slice(&version.to_be_bytes());
        wrapped.extend_from_slice(&sealed);
        Ok(DataKey { plaintext: SealingKey::from_bytes(*dek), wrapped, key_version: version })
    }

    async fn decrypt_data_key(
        &self,
        key_id: &KeyId,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<SealingKey, KmsError> {
        if wrapped.len() < 8 || &wrapped[..4] != WRAP_MAGIC {
            return Err(KmsError::MalformedDataKey);
        }
        let version = u32::from_be_bytes(wrapped[4..8].try_into().expect("4 bytes"));
        let k = self.get(key_id).await?;
        Self::usable(&k)?;
        let kek = k.materials.get(&version).ok_or(KmsError::UnknownVersion { key: key_id.clone(), version })?;
        let plain = kek
            .open_bytes(&wrapped[8..], &Self::dek_aad(key_id, version, context))
            .map_err(|_| KmsError::Unwrap(key_id.clone()))?;
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| KmsError::MalformedDataKey)?;
        Ok(SealingKey::from_bytes(bytes))
    }

    async fn describe_key(&self, key_id: &KeyId) -> Result<KeyInfo, KmsError> {
        Ok(info_of(&self.get(key_id).await?.file))
    }

    fn recognizes(&self, wrapped: &[u8]) -> bool {
        wrapped.starts_with(WRAP_MAGIC)
    }

    async fn health(&self) -> Result<(), KmsError> {
        match &self.files {
            Files::Dir(dir) => {
                std::fs::read_dir(dir).map(|_| ()).map_err(|source| KmsError::Io { path: dir.display().to_string(), source })
            }
            Files::Shared(store) => store.get::<KeyFile>(SHARED_NS, "").await.map(|_| ()).map_err(KmsError::from),
        }
    }
}

#[async_trait]
impl KeyAdmin for LocalBackend {
    async fn create_key(&self, req: CreateKeyRequest) -> Result<KeyInfo, KmsError> {
        let _guard = self.write_lock.lock().await;
        let key_id = match req.key_id {
            Some(id) => id,
            None => {
                let mut r = [0u8; 16];
                random_bytes(&mut r).map_err(KmsError::internal("random source failed"))?;
                KeyId::new(hex::encode(r))?
            }
        };
        if self.get(&key_id).await.is_ok() {
            return Err(KmsError::AlreadyExists(key_id));
        }
        let now = OffsetDateTime::now_utc();
        let (v, material) = self.new_version(&key_id, 1, now)?;
        let file = KeyFile {
            format_version: FILE_FORMAT,
            key_id,
            record: KeyRecord { created_at: now, ..KeyRecord::new(req.description, req.tags) },
            current_version: 1,
            versions: vec![v],
        };
        let info = info_of(&file);
        let id = file.key_id.clone();
        if !self.persist(file, BTreeMap::from([(1, material)]), true).await? {
            return Err(KmsError::AlreadyExists(id));
        }
        Ok(info)
    }

    async fn list_keys(&self) -> Result<Vec<KeyInfo>, KmsError> {
        let mut out: Vec<KeyInfo> = match &self.files {
            Files::Dir(_) => self.keys.read().expect("key map lock").1.values().map(|k| info_of(&k.file)).collect(),
            Files::Shared(store) => store.list::<KeyFile>(SHARED_NS).await?.iter().map(|(_, f)| info_of(f)).collect(),
        };
        out.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(out)
    }

    async fn update_key(&self, key_id: &KeyId, update: KeyUpdate) -> Result<KeyInfo, KmsError> {
        let _guard = self.write_lock.lock().await;
        self.modify(key_id, |k| {
            let mut file = k.file.clone();
            file.record.meta.apply(key_id, update.clone())?;
            Ok((file, k.materials.clone()))
        })
        .await
    }

    async fn delete_key(&self, key_id: &KeyId) -> Result<(), KmsError> {
        let _guard = self.write_lock.lock().await;
        self.get(key_id).await?;
        match &self.files {
            Files::Dir(dir) => {
                let path = Self::path_of(dir, key_id);
                std::fs::remove_file(&path).map_err(|source| KmsError::Io { path: path.display().to_string(), source })?;
            }
            Files::Shared(store) => {
                store.delete(SHARED_NS, key_id.as_str()).await?;
                store.changed().await?;
            }
        }
        self.keys.write().expect("key map lock").1.remove(key_id);
        Ok(())
    }

    async fn rotate_key(&self, key_id: &KeyId) -> Result<KeyInfo, KmsError> {
        let _guard = self.write_lock.lock().await;
        self.modify(key_id, |k| {
            Self::usable(k)?;
            let mut file = k.file.clone();
            let now = OffsetDateTime::now_utc();
            let version = file.current_version + 1;
            let (v, material) = self.new_version(key_id, version, now)?;
            file.versions.push(v);
            file.current_version = version;
            file.record.rotated_at = Some(now);
            let mut materials = k.materials.clone();
            materials.insert(version, material);
            Ok((file, materials))
        })
        .await
    }
}

#[cfg(test)]
mod tests;
