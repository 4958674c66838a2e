//! A namespace of state documents read through an in-memory cache, for
//! documents consulted on every request (bucket defaults and policies).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{StateError, StateStore};

/// Documents (or absences) kept per namespace.
const MAX_ENTRIES: usize = 10_000;

/// Documents by key (`None`: known to be absent).
type Entries<T> = HashMap<String, Option<Arc<T>>>;

/// Cached documents of one namespace, by key. Absence is cached too. The
/// cache is emptied when the store learns of a new generation (another
/// replica changed a document).
pub struct CachedDocs<T> {
    store: StateStore,
    ns: &'static str,
    /// The generation the entries are at least as new as, and the entries.
    cache: RwLock<(u64, Entries<T>)>,
    /// Held across a store access and the cache update that follows, so
    /// the cache never keeps a value older than the file (a read that
    /// missed the cache cannot overwrite a concurrent write's entry).
    writes: tokio::sync::Mutex<()>,
}

impl<T: Serialize + DeserializeOwned> CachedDocs<T> {
    pub fn new(store: StateStore, ns: &'static str) -> Self {
        Self { store, ns, cache: RwLock::default(), writes: tokio::sync::Mutex::default() }
    }

    fn hit(&self, key: &str) -> Option<Option<Arc<T>>> {
        let cache = self.cache.read().expect("cache lock");
        (cache.0 == self.store.generation()).then(|| cache.1.get(key).cloned()).flatten()
    }

    pub async fn get(&self, key: &str) -> Result<Option<Arc<T>>, StateError> {
        if let Some(hit) = self.hit(key) {
            return Ok(hit);
        }
        let _w = self.writes.lock().await;
        if let Some(hit) = self.hit(key) {
            return Ok(hit);
        }
        // The generation is noted before the read, so what is read is at
        // least as new as the generation it is filed under.
        let generation = self.store.generation();
        let doc = self.store.get::<T>(self.ns, key).await?.map(Arc::new);
        self.file(generation, key, doc.clone());
        Ok(doc)
    }

    /// Store (`Some`) or delete (`None`) the document of `key`, and tell
    /// the other replicas.
    pub async fn set(&self, key: &str, doc: Option<T>) -> Result<(), StateError> {
        let _w = self.writes.lock().await;
        // Filed under the generation before the write: another replica may
        // write this key after us yet move the generation on before we do,
        // so in cluster mode the entry is read again after our own change.
        let generation = self.store.generation();
        match &doc {
            Some(d) => self.store.put(self.ns, key, d).await?,
            None => {
                self.store.delete(self.ns, key).await?;
            }
        }
        self.store.changed().await?;
        self.file(generation, key, doc.map(Arc::new));
        Ok(())
    }

    /// Store `doc` only if `key` has none; `Ok(false)` if it has.
    pub async fn create(&self, key: &str, doc: T) -> Result<bool, StateError> {
        let _w = self.writes.lock().await;
        let generation = self.store.generation();
        if !self.store.create(self.ns, key, &doc).await? {
            return Ok(false);
        }
        self.store.changed().await?;
        self.file(generation, key, Some(Arc::new(doc)));
        Ok(true)
    }

    /// Read-modify-write by compare-and-set: `change` gets the current
    /// document (`None` when there is none) and is called again when
    /// another writer came first; its error stops the update.
    pub async fn update<E, F>(&self, key: &str, change: F) -> Result<T, E>
    where
        T: Clone,
        E: From<StateError>,
        F: FnMut(Option<T>) -> Result<T, E>,
    {
        let _w = self.writes.lock().await;
        let generation = self.store.generation();
        let new = self.store.update(self.ns, key, change).await?;
        self.store.changed().await?;
        self.file(generation, key, Some(Arc::new(new.clone())));
        Ok(new)
    }

    /// Keep `doc` for `key` as at least as new as `generation`. The cache
    /// is bounded: absence is cached too, and keys can come from clients
    /// (an access key nobody has), so a full cache drops an entry first.
    fn file(&self, generation: u64, key: &str, doc: Option<Arc<T>>) {
        let mut cache = self.cache.write().expect("cache lock");
        if cache.0 != generation {
            *cache = (generation, HashMap::new());
        }
        if cache.1.len() >= MAX_ENTRIES && !cache.1.contains_key(key) {
            let victim = cache.1.keys().next().cloned();
            if let Some(v) = victim {
                cache.1.remove(&v);
            }
        }
        cache.1.insert(key.to_owned(), doc);
    }

    /// Every document of the namespace, from the store.
    pub async fn list(&self) -> Result<Vec<(String, T)>, StateError> {
        self.store.list(self.ns).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_through_and_writes_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let docs = CachedDocs::<u32>::new(store.clone(), "n");
        assert!(docs.get("a").await.unwrap().is_none());
        // A write through the cache is seen at once and reaches the store.
        docs.set("a", Some(7)).await.unwrap();
        assert_eq!(*docs.get("a").await.unwrap().unwrap(), 7);
        assert_eq!(store.get::<u32>("n", "a").await.unwrap(), Some(7));
        docs.set("a", None).await.unwrap();
        assert!(docs.get("a").await.unwrap().is_none());
        assert!(store.get::<u32>("n", "a").await.unwrap().is_none());
        docs.set("b", Some(1)).await.unwrap();
        assert_eq!(docs.list().await.unwrap(), vec![("b".to_string(), 1)]);
    }

    #[tokio::test]
    async fn lookups_of_keys_nobody_has_do_not_grow_the_cache_without_bound() {
        let dir = tempfile::tempdir().unwrap();
        let docs = CachedDocs::<u32>::new(StateStore::open(dir.path()).unwrap(), "n");
        docs.set("real", Some(1)).await.unwrap();
        for i in 0..MAX_ENTRIES + 500 {
            assert!(docs.get(&format!("made-up-{i}")).await.unwrap().is_none());
        }
        assert!(docs.cache.read().unwrap().1.len() <= MAX_ENTRIES);
        // Whatever was dropped, answers stay right.
        assert_eq!(*docs.get("real").await.unwrap().unwrap(), 1);
    }
}
