//! The gateway's dynamic state: small JSON documents (bucket encryption
//! defaults and policies, in-progress multipart uploads, the KMS
//! configuration, policy bindings) grouped by namespace and keyed by any
//! string.
//!
//! [`StateStore`] is the typed handle every user holds; where documents
//! live is a [`StateBackend`]: the data directory ([`local`], one node) or
//! a reserved bucket of the upstream store ([`upstream`], cluster mode,
//! shared by the replicas). A document is
//! stored as an envelope `{"key": …, "doc": …}`, so a backend may name it
//! by a digest of its key ([`digest_name`]) and still list keys back.
//!
//! Replicas cache documents; a writer of a cached document calls
//! [`StateStore::changed`], which moves the cluster's change counter (the
//! generation) on, and every replica's watcher ([`StateStore::spawn_watch`])
//! sees it within its poll interval and tells the caches
//! ([`StateStore::subscribe`]).
//!
//! Documents hold no secret in clear (sealed keys only). Writes are
//! durable before they return, so they suit control operations and
//! per-upload bookkeeping, not per-byte work.

use std::sync::Arc;

use aws_lc_rs::digest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod cached;
pub mod jobs;
pub mod local;
pub mod replicas;
pub mod upstream;
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
    #[error("state store upstream: {what}")]
    Upstream {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A document that does not open under the cluster's state key: written
    /// by someone without the master key, or moved from another name.
    #[error("state document {path} fails authentication")]
    Forged { path: String },
    #[error("the upstream cannot hold cluster state: {0}; run replicas on a store with conditional writes")]
    NoConditionalWrites(String),
    #[error("state document {0}: too many concurrent changes")]
    Contended(String),
}

impl StateError {
    /// Damage or tampering, as opposed to a store that could not be reached.
    pub fn is_damage(&self) -> bool {
        matches!(self, Self::Corrupt { .. } | Self::Misplaced { .. } | Self::Forged { .. })
    }
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
    /// The envelope of `key` with a tag of its version, for [`replace`](Self::replace).
    async fn read_tagged(&self, ns: &str, key: &str) -> Result<Option<(Vec<u8>, String)>, StateError>;
    /// Store `envelope` only if `key` is still at version `tag`; `Ok(false)`
    /// if another write came first (compare-and-set).
    async fn replace(&self, ns: &str, key: &str, envelope: &[u8], tag: &str) -> Result<bool, StateError>;
    /// Remove the document of `key`; `Ok(false)` when there was none.
    async fn remove(&self, ns: &str, key: &str) -> Result<bool, StateError>;
    /// Every envelope of `ns`, in no particular order.
    async fn entries(&self, ns: &str) -> Result<Vec<Vec<u8>>, StateError>;
    /// Remove every document of `ns`.
    async fn remove_namespace(&self, ns: &str) -> Result<(), StateError>;
    /// Do other processes share these documents (cluster mode)?
    fn shared(&self) -> bool {
        false
    }
    /// The change counter. A backend no other process shares has none: 0.
    async fn generation(&self) -> Result<u64, StateError> {
        Ok(0)
    }
    /// Move the change counter on; its new value.
    async fn bump(&self) -> Result<u64, StateError> {
        Ok(0)
    }
}

/// Compare-and-set attempts of one update (each lost race means another
/// writer's change went in).
const CAS_ATTEMPTS: usize = 64;

/// The version of a document as read, for compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(String);

/// Typed access to the state documents of one backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StateStore {
    backend: Arc<dyn StateBackend>,
    /// The latest generation this process knows of.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Run `tick` every `every` (the first at once) for the life of the
/// process; a slow tick delays the next rather than bunching them.
pub(crate) fn spawn_every<F, Fut>(every: std::time::Duration, mut tick: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            tick().await;
        }
    })
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
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
        Self { backend, changes: Arc::new(tokio::sync::watch::Sender::new(0)) }
    }

    /// Tell every replica that a document it may cache changed. Call after
    /// the write. A no-op on a single node, whose caches write through.
    pub async fn changed(&self) -> Result<u64, StateError> {
        let g = self.backend.bump().await?;
        self.note(g);
        Ok(g)
    }

    /// Do other replicas share these documents (cluster mode)?
    pub fn is_shared(&self) -> bool {
        self.backend.shared()
    }

    /// The latest generation this process knows of.
    pub fn generation(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Wakes on every generation this process learns of (its own changes
    /// and, with [`spawn_watch`](Self::spawn_watch), other replicas').
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Learn generation `g`. Any other value than the known one counts as
    /// a change, lower ones too: the counter lives in the store, which may
    /// put back an older copy of it, and a replica that only followed
    /// higher values would then stop hearing of changes until the counter
    /// climbed past its old high (a key disabled meanwhile would stay usable
    /// from its caches). A spurious change only costs a reload.
    fn note(&self, g: u64) {
        self.changes.send_if_modified(|cur| {
            let other = g != *cur;
            if other {
                *cur = g;
            }
            other
        });
    }

    /// Poll the change counter every `every` (cluster mode), so that other
    /// replicas' changes reach this one's caches within that bound. A
    /// failed poll is logged and retried at the next tick.
    pub fn spawn_watch(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        spawn_every(every, move || {
            let me = me.clone();
            async move {
                match me.backend.generation().await {
                    Ok(g) => me.note(g),
                    Err(e) => tracing::warn!(error = %e, "reading the cluster generation failed"),
                }
            }
        })
    }

    /// The data directory backend (single node).
    pub fn open(dir: &std::path::Path) -> Result<Self, StateError> {
        Ok(Self::new(Arc::new(local::DirBackend::open(dir)?)))
    }

    pub async fn get<T: DeserializeOwned>(&self, ns: &str, key: &str) -> Result<Option<T>, StateError> {
        let Some(bytes) = self.backend.read(ns, key).await? else { return Ok(None) };
        self.open_envelope(ns, key, &bytes).map(Some)
    }

    fn open_envelope<T: DeserializeOwned>(&self, ns: &str, key: &str, bytes: &[u8]) -> Result<T, StateError> {
        let env: Envelope<T> = serde_json::from_slice(bytes).map_err(|e| corrupt(ns, key, e))?;
        if env.key != key {
            return Err(StateError::Misplaced { path: format!("{ns}/{key}") });
        }
        Ok(env.doc)
    }

    pub async fn put<T: Serialize>(&self, ns: &str, key: &str, doc: &T) -> Result<(), StateError> {
        self.backend.write(ns, key, &envelope(key, doc)).await
    }

    /// Write a document only if `key` has none yet; `Ok(false)` if it has.
    /// Of concurrent creators of one key, exactly one succeeds.
    pub async fn create<T: Serialize>(&self, ns: &str, key: &str, doc: &T) -> Result<bool, StateError> {
        self.backend.create(ns, key, &envelope(key, doc)).await
    }

    /// A document with the tag of its version, for [`replace`](Self::replace).
    pub async fn get_tagged<T: DeserializeOwned>(&self, ns: &str, key: &str) -> Result<Option<(T, Tag)>, StateError> {
        let Some((bytes, tag)) = self.backend.read_tagged(ns, key).await? else { return Ok(None) };
        Ok(Some((self.open_envelope(ns, key, &bytes)?, Tag(tag))))
    }

    /// Replace a document read with [`get_tagged`](Self::get_tagged) only if
    /// no other write came since; `Ok(false)` if one did (read again, redo
    /// the change, retry).
    pub async fn replace<T: Serialize>(&self, ns: &str, key: &str, doc: &T, tag: &Tag) -> Result<bool, StateError> {
        self.backend.replace(ns, key, &envelope(key, doc), &tag.0).await
    }

    /// Read-modify-write of one document by compare-and-set: `change` gets
    /// the current document (`None` when there is none) and is called
    /// again when another writer came first; its error stops the update.
    /// Does not tell other replicas: the caller decides ([`changed`](Self::changed)).
    pub async fn update<T, E, F>(&self, ns: &str, key: &str, mut change: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<StateError>,
        F: FnMut(Option<T>) -> Result<T, E>,
    {
        for _ in 0..CAS_ATTEMPTS {
            let written = match self.get_tagged::<T>(ns, key).await? {
                Some((doc, tag)) => {
                    let new = change(Some(doc))?;
                    self.replace(ns, key, &new, &tag).await?.then_some(new)
                }
                None => {
                    let new = change(None)?;
                    self.create(ns, key, &new).await?.then_some(new)
                }
            };
            if let Some(new) = written {
                return Ok(new);
            }
        }
        Err(StateError::Contended(format!("{ns}/{key}")).into())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A backend with only a change counter, which a test sets.
    #[derive(Debug, Default)]
    struct Counter(AtomicU64);

    #[async_trait::async_trait]
    impl StateBackend for Counter {
        async fn read(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, StateError> {
            Ok(None)
        }
        async fn write(&self, _: &str, _: &str, _: &[u8]) -> Result<(), StateError> {
            Ok(())
        }
        async fn create(&self, _: &str, _: &str, _: &[u8]) -> Result<bool, StateError> {
            Ok(true)
        }
        async fn read_tagged(&self, _: &str, _: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
            Ok(None)
        }
        async fn replace(&self, _: &str, _: &str, _: &[u8], _: &str) -> Result<bool, StateError> {
            Ok(true)
        }
        async fn remove(&self, _: &str, _: &str) -> Result<bool, StateError> {
            Ok(false)
        }
        async fn entries(&self, _: &str) -> Result<Vec<Vec<u8>>, StateError> {
            Ok(Vec::new())
        }
        async fn remove_namespace(&self, _: &str) -> Result<(), StateError> {
            Ok(())
        }
        fn shared(&self) -> bool {
            true
        }
        async fn generation(&self) -> Result<u64, StateError> {
            Ok(self.0.load(Ordering::SeqCst))
        }
        async fn bump(&self) -> Result<u64, StateError> {
            Ok(self.0.fetch_add(1, Ordering::SeqCst) + 1)
        }
    }

    #[tokio::test]
    async fn a_counter_put_back_by_the_store_still_propagates_changes() {
        let counter = Arc::new(Counter::default());
        counter.0.store(50, Ordering::SeqCst);
        let store = StateStore::new(counter.clone());
        let mut changes = store.subscribe();
        store.spawn_watch(std::time::Duration::from_millis(10));
        async fn next(changes: &mut tokio::sync::watch::Receiver<u64>) -> u64 {
            tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed()).await.expect("a change is heard").unwrap();
            *changes.borrow_and_update()
        }
        assert_eq!(next(&mut changes).await, 50);
        // The store puts back an older copy of the counter: heard as a change.
        counter.0.store(40, Ordering::SeqCst);
        assert_eq!(next(&mut changes).await, 40);
        // Another replica's change from there (41) is heard too, although
        // it is below the highest value ever seen.
        counter.0.store(41, Ordering::SeqCst);
        assert_eq!(next(&mut changes).await, 41);
    }
}
