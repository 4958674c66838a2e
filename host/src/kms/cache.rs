//! Data-key caches, bounded and time-limited (moka). Entries hold keys in
//! [`SealingKey`], which zeroizes itself when the cache drops it.
//!
//! - `unwrapped`: wrapped data key (with its key id and context) → plaintext
//!   data key. Repeated GETs of an object, and GETs of objects sharing a
//!   bucket key, need no KMS call.
//! - `bucket_keys`: (key id, bucket context) → a data key reused for new
//!   objects until its TTL, as S3 Bucket Keys: one KMS call per bucket and
//!   key per TTL instead of one per PUT. Each object still gets its own
//!   random object key, sealed under the bucket key and bound to its name.
//!
//! Entries live for TTL + offline grace; past the TTL they are only served
//! while the backend is unreachable (the caller decides).

use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::digest;

use super::config::CacheConfig;
use super::types::canonical_context;
use super::{DataKey, EncryptionContext, KeyId};
use crate::crypto::SealingKey;

/// A cache entry with its birth time.
pub struct Cached<T> {
    pub value: T,
    pub born: Instant,
}

/// How fresh a cached entry is.
pub enum Lookup<T> {
    Fresh(T),
    /// Past TTL, within the offline grace.
    Stale(T),
    Miss,
}

/// Data-key lookups of one cache generation, for the status endpoint.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub hit_count: u64,
    pub miss_count: u64,
    /// Served past their TTL while the KMS was unreachable.
    pub stale_served_count: u64,
    pub entry_count: u64,
    pub bucket_key_count: u64,
}

pub struct DataKeyCaches {
    cfg: CacheConfig,
    /// Data-key lookups by result: hit, miss, stale.
    lookups: [std::sync::atomic::AtomicU64; 3],
    unwrapped: moka::sync::Cache<[u8; 32], Arc<Cached<SealingKey>>>,
    bucket_keys: moka::sync::Cache<[u8; 32], Arc<Cached<DataKey>>>,
    /// Counts clears. A KMS answer obtained before a clear (a key disabled
    /// while the call was in flight) must not be put back after it.
    cleared: std::sync::atomic::AtomicU64,
}

fn fingerprint(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    ctx.finish().as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl DataKeyCaches {
    pub fn new(cfg: &CacheConfig) -> Self {
        let live = cfg.ttl + cfg.offline_grace;
        Self {
            cfg: cfg.clone(),
            lookups: Default::default(),
            unwrapped: moka::sync::Cache::builder().max_capacity(cfg.max_keys).time_to_live(live).build(),
            bucket_keys: moka::sync::Cache::builder().max_capacity(cfg.max_keys).time_to_live(live).build(),
            cleared: Default::default(),
        }
    }

    /// Take before asking the KMS; hand to `put_*` with its answer.
    pub fn epoch(&self) -> u64 {
        self.cleared.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Insert, unless a clear happened since `epoch`: checked after the
    /// insert too, so a clear between the check and the insert still wins.
    fn insert_since<T>(&self, cache: &moka::sync::Cache<[u8; 32], Arc<T>>, k: [u8; 32], v: Arc<T>, epoch: u64)
    where
        T: Send + Sync + 'static,
    {
        if self.epoch() != epoch {
            return;
        }
        cache.insert(k, v);
        if self.epoch() != epoch {
            cache.invalidate(&k);
        }
    }

    pub fn bucket_keys_enabled(&self) -> bool {
        self.cfg.enabled && self.cfg.bucket_keys
    }

    fn classify<T: Clone>(&self, e: Option<Arc<Cached<T>>>) -> Lookup<T> {
        match e {
            Some(c) if c.born.elapsed() < self.cfg.ttl => Lookup::Fresh(c.value.clone()),
            Some(c) if c.born.elapsed() < self.cfg.ttl + self.cfg.offline_grace => Lookup::Stale(c.value.clone()),
            _ => Lookup::Miss,
        }
    }

    fn unwrapped_key(key_id: &KeyId, wrapped: &[u8], ctx: &EncryptionContext) -> [u8; 32] {
        fingerprint(&[b"unwrapped", key_id.as_str().as_bytes(), &canonical_context(ctx), wrapped])
    }

    fn bucket_key(key_id: &KeyId, ctx: &EncryptionContext) -> [u8; 32] {
        fingerprint(&[b"bucket-key", key_id.as_str().as_bytes(), &canonical_context(ctx)])
    }

    pub fn get_unwrapped(&self, key_id: &KeyId, wrapped: &[u8], ctx: &EncryptionContext) -> Lookup<SealingKey> {
        if !self.cfg.enabled {
            return Lookup::Miss;
        }
        self.classify(self.unwrapped.get(&Self::unwrapped_key(key_id, wrapped, ctx)))
    }

    pub fn put_unwrapped(&self, key_id: &KeyId, wrapped: &[u8], ctx: &EncryptionContext, key: SealingKey, epoch: u64) {
        if self.cfg.enabled {
            let c = Arc::new(Cached { value: key, born: Instant::now() });
            self.insert_since(&self.unwrapped, Self::unwrapped_key(key_id, wrapped, ctx), c, epoch);
        }
    }

    /// A bucket key still within its TTL (never stale: new objects always
    /// get a key the KMS vouched for within the TTL).
    pub fn get_bucket_key(&self, key_id: &KeyId, ctx: &EncryptionContext) -> Option<DataKey> {
        if !self.bucket_keys_enabled() {
            return None;
        }
        match self.classify(self.bucket_keys.get(&Self::bucket_key(key_id, ctx))) {
            Lookup::Fresh(k) => Some(k),
            _ => None,
        }
    }

    pub fn put_bucket_key(&self, key_id: &KeyId, ctx: &EncryptionContext, dk: DataKey, epoch: u64) {
        if self.bucket_keys_enabled() {
            let c = Arc::new(Cached { value: dk, born: Instant::now() });
            self.insert_since(&self.bucket_keys, Self::bucket_key(key_id, ctx), c, epoch);
        }
    }

    pub fn clear(&self) {
        self.cleared.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.unwrapped.invalidate_all();
        self.bucket_keys.invalidate_all();
    }

    /// Count a data-key lookup (`hit`, `miss` or `stale`).
    pub fn count(&self, result: &str) {
        let i = match result {
            "hit" => 0,
            "miss" => 1,
            _ => 2,
        };
        self.lookups[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Lookups and entries (after pending maintenance) of these caches.
    pub fn stats(&self) -> CacheStats {
        use std::sync::atomic::Ordering::Relaxed;
        self.unwrapped.run_pending_tasks();
        self.bucket_keys.run_pending_tasks();
        CacheStats {
            hit_count: self.lookups[0].load(Relaxed),
            miss_count: self.lookups[1].load(Relaxed),
            stale_served_count: self.lookups[2].load(Relaxed),
            entry_count: self.unwrapped.entry_count(),
            bucket_key_count: self.bucket_keys.entry_count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(ttl_ms: u64, grace_ms: u64) -> CacheConfig {
        CacheConfig {
            enabled: true,
            max_keys: 10,
            ttl: Duration::from_millis(ttl_ms),
            offline_grace: Duration::from_millis(grace_ms),
            bucket_keys: true,
        }
    }

    #[test]
    fn entries_are_bound_to_key_context_and_blob_and_go_stale() {
        let c = DataKeyCaches::new(&cfg(40, 200));
        let id = KeyId::new("k").unwrap();
        let ctx = EncryptionContext::from([("a".to_owned(), "1".to_owned())]);
        c.put_unwrapped(&id, b"blob", &ctx, SealingKey::from_bytes([9; 32]), c.epoch());
        assert!(matches!(c.get_unwrapped(&id, b"blob", &ctx), Lookup::Fresh(k) if k.as_bytes() == &[9; 32]));
        assert!(matches!(c.get_unwrapped(&id, b"blob2", &ctx), Lookup::Miss));
        assert!(matches!(c.get_unwrapped(&KeyId::new("k2").unwrap(), b"blob", &ctx), Lookup::Miss));
        assert!(matches!(c.get_unwrapped(&id, b"blob", &EncryptionContext::new()), Lookup::Miss));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(c.get_unwrapped(&id, b"blob", &ctx), Lookup::Stale(_)));
        c.clear();
        assert!(matches!(c.get_unwrapped(&id, b"blob", &ctx), Lookup::Miss));
    }

    #[test]
    fn an_answer_from_before_a_clear_is_not_put_back() {
        let c = DataKeyCaches::new(&cfg(10_000, 0));
        let (id, ctx) = (KeyId::new("k").unwrap(), EncryptionContext::new());
        // A KMS call begins, the key is disabled (the caches cleared), the
        // call then answers: its key must not serve the next request.
        let epoch = c.epoch();
        c.clear();
        c.put_unwrapped(&id, b"blob", &ctx, SealingKey::from_bytes([3; 32]), epoch);
        let dk = DataKey { plaintext: SealingKey::from_bytes([4; 32]), wrapped: b"w".to_vec(), key_version: 1 };
        c.put_bucket_key(&id, &ctx, dk.clone(), epoch);
        assert!(matches!(c.get_unwrapped(&id, b"blob", &ctx), Lookup::Miss));
        assert!(c.get_bucket_key(&id, &ctx).is_none());
        c.put_bucket_key(&id, &ctx, dk, c.epoch());
        assert!(c.get_bucket_key(&id, &ctx).is_some(), "a call begun after the clear is cached");
    }

    #[test]
    fn bucket_keys_expire_at_ttl_and_can_be_disabled() {
        let c = DataKeyCaches::new(&cfg(40, 1000));
        let id = KeyId::new("k").unwrap();
        let ctx = EncryptionContext::new();
        let dk = DataKey { plaintext: SealingKey::from_bytes([1; 32]), wrapped: b"w".to_vec(), key_version: 1 };
        c.put_bucket_key(&id, &ctx, dk, c.epoch());
        assert!(c.get_bucket_key(&id, &ctx).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get_bucket_key(&id, &ctx).is_none(), "bucket keys are never served stale");
        let off = DataKeyCaches::new(&CacheConfig { bucket_keys: false, ..cfg(1000, 0) });
        let dk = DataKey { plaintext: SealingKey::from_bytes([1; 32]), wrapped: vec![], key_version: 1 };
        off.put_bucket_key(&id, &ctx, dk, off.epoch());
        assert!(off.get_bucket_key(&id, &ctx).is_none());
    }
}
