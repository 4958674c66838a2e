//! The gateway's dynamic state: small JSON documents (bucket encryption
//! defaults and policies, in-progress multipart uploads, the KMS
//! configuration, policy bindings) grouped by namespace and keyed by any
//! string.
//!
//! [`StateStore`] is the typed handle every user holds; where documents
//! live is a [`StateBackend`]: today the data directory ([`local`]), with
//! the upstream store as the second backend in cluster mode. A document is
//! stored as an envelope `{"key": …, "doc": …}`, so a backend may name it
//! by a digest of its key ([`digest_name`]) and still list keys back.
//!
//! Documents hold no secret in clear (sealed keys only). Writes are
//! durable before they return, so they suit control operations and
//! per-upload bookkeeping, not per-byte work.

use std::sync::Arc;

use aws_lc_rs::digest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod cached;
pub mod local;
pub use cached::CachedDocs;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state I/O error at {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt state document {path}")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("state document {path} belongs to another key")]
    Misplaced { path: String },
}

/// A document as written: its key travels with it, since a backend may
/// name it by a hash.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    key: String,
    doc: T,
}

/// Where state documents live. Documents are opaque envelope bytes here;
/// [`StateStore`] does the typing.
#[async_trait::async_trait]
pub trait StateBackend: Send + Sync + std::fmt::Debug {
    /// The envelope stored for `key`, if any.
    async fn read(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StateError>;
    /// Store `envelope` for `key`, replacing any earlier one.
    async fn write(&self, ns: &str, key: &str, envelope: &[u8]) -> Result<(), StateError>;
    /// Store `envelope` only if `key` has none; `Ok(false)` if it has. Of
    /// concurrent creators of one key, exactly one succeeds.
    async fn create(&self, ns: &str, key: &str, envelope: &[u8]) -> Result<bool, StateError>;
    /// Remove the document of `key`; `Ok(false)` when there was none.
    async fn remove(&self, ns: &str, key: &str) -> Result<bool, StateError>;
    /// Every envelope of `ns`, in no particular order.
    async fn entries(&self, ns: &str) -> Result<Vec<Vec<u8>>, StateError>;
    /// Remove every document of `ns`.
    async fn remove_namespace(&self, ns: &str) -> Result<(), StateError>;
}

/// Typed access to the state documents of one backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StateStore {
    backend: Arc<dyn StateBackend>,
}

/// The hex SHA-256 of `s`: a fixed-length name-safe digest of any key.
pub fn digest_name(s: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, s.as_bytes()))
}

fn corrupt(ns: &str, key: &str, source: serde_json::Error) -> StateError {
    StateError::Corrupt { path: format!("{ns}/{key}"), source }
}

fn envelope<T: Serialize>(key: &str, doc: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(&Envelope { key: key.to_owned(), doc }).expect("state documents serialise")
}

impl StateStore {
    pub fn new(backend: Arc<dyn StateBackend>) -> Self {
        Self { backend }
    }

    /// The data directory backend (single node).
    pub fn open(dir: &std::path::Path) -> Result<Self, StateError> {
        Ok(Self::new(Arc::new(local::DirBackend::open(dir)?)))
    }

    pub async fn get<T: DeserializeOwned>(&self, ns: &str, key: &str) -> Result<Option<T>, StateError> {
        let Some(bytes) = self.backend.read(ns, key).await? else { return Ok(None) };
        let env: Envelope<T> = serde_json::from_slice(&bytes).map_err(|e| corrupt(ns, key, e))?;
        if env.key != key {
            return Err(StateError::Misplaced { path: format!("{ns}/{key}") });
        }
        Ok(Some(env.doc))
    }

    pub async fn put<T: Serialize>(&self, ns: &str, key: &str, doc: &T) -> Result<(), StateError> {
        self.backend.write(ns, key, &envelope(key, doc)).await
    }

    /// Write a document only if `key` has none yet; `Ok(false)` if it has.
    /// Of concurrent creators of one key, exactly one succeeds.
    pub async fn create<T: Serialize>(&self, ns: &str, key: &str, doc: &T) -> Result<bool, StateError> {
        self.backend.create(ns, key, &envelope(key, doc)).await
    }

    /// Remove a document; `Ok(false)` when there was none.
    pub async fn delete(&self, ns: &str, key: &str) -> Result<bool, StateError> {
        self.backend.remove(ns, key).await
    }

    /// Remove a whole namespace (e.g. the parts of one finished upload).
    pub async fn delete_namespace(&self, ns: &str) -> Result<(), StateError> {
        self.backend.remove_namespace(ns).await
    }

    /// Every document of `ns` with its key, sorted by key. Unreadable
    /// documents are errors.
    pub async fn list<T: DeserializeOwned>(&self, ns: &str) -> Result<Vec<(String, T)>, StateError> {
        let mut out = Vec::new();
        for bytes in self.backend.entries(ns).await? {
            let env: Envelope<T> = serde_json::from_slice(&bytes).map_err(|e| corrupt(ns, "(listed)", e))?;
            out.push((env.key, env.doc));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Remove every document of `ns` whose key starts with `prefix`.
    pub async fn delete_prefix(&self, ns: &str, prefix: &str) -> Result<usize, StateError> {
        let mut n = 0;
        for (key, _) in self.list::<serde_json::Value>(ns).await? {
            if key.starts_with(prefix) && self.delete(ns, &key).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}
