//! Loaded policies and their bindings, published as one immutable snapshot
//! (a request keeps the generation it started with), persisted with the
//! gateway state so they survive restarts.
//!
//! - Component bytes: `DATA_DIR/policies/<name>.wasm` (0600).
//! - Its compiled machine code: `<name>.cwasm` (0600), so a restart does not
//!   recompile (seconds for a Python policy); its SHA-256 is recorded in
//!   `policy-artifacts`, and code that does not match is recompiled from
//!   the component, never run.
//! - Metadata: state namespace `policies`; bindings: `policy-bindings/all`,
//!   changed by compare-and-set.
//! - Cluster mode: the component bytes also go to the shared state
//!   (`policy-components/<sha256>`); a replica that learns of a policy it
//!   lacks fetches them there, checks the digest and compiles locally (the
//!   files above are then its local cache). Every change moves the
//!   cluster's generation on, and each replica reloads on a new one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::PolicyError;
use super::engine::{PolicyEngine, Prepared};
use super::types::Hook;
use crate::fsutil::{create_private_dir, write_private_atomic};
use crate::state::StateStore;

/// Largest component accepted: room for a language runtime (a Python
/// policy made with componentize-py is about 18 MiB).
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;
const NS: &str = "policies";
const BINDINGS_NS: &str = "policy-bindings";
const ARTIFACTS_NS: &str = "policy-artifacts";
const COMPONENTS_NS: &str = "policy-components";

/// A component's bytes in the shared state (cluster mode), by digest.
#[derive(Serialize, Deserialize)]
struct Component {
    wasm_base64: String,
}

/// Record of a `<name>.cwasm`: its digest, and the component it came from.
#[derive(Debug, Serialize, Deserialize)]
struct Artifact {
    sha256: String,
    component_sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyInfo {
    pub name: String,
    pub hook: Hook,
    pub world: String,
    pub sha256: String,
    pub size: usize,
    /// Embeds a language runtime that imports WASI (served with an empty
    /// context); such policies cost milliseconds per call, not microseconds.
    #[serde(default)]
    pub imports_wasi: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub uploaded_at: OffsetDateTime,
}

pub struct LoadedPolicy {
    pub info: PolicyInfo,
    pub prepared: Prepared,
}

/// Where a policy applies. Most specific wins: bucket + longest prefix,
/// then bucket, then global.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub hook: Hook,
    pub policy: String,
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    /// A candidate evaluated beside the live policy of its scope on real
    /// requests, its decision recorded but never enforced.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

impl Binding {
    /// One live and one shadow binding per hook and scope.
    fn same_scope(&self, other: &Binding) -> bool {
        self.hook == other.hook && self.bucket == other.bucket && self.prefix == other.prefix && self.shadow == other.shadow
    }

    /// Match strength for (bucket, key), `None` when it does not apply.
    fn score(&self, bucket: &str, key: &str) -> Option<usize> {
        match (&self.bucket, &self.prefix) {
            (None, _) => Some(0),
            (Some(b), None) if b == bucket => Some(1),
            (Some(b), Some(p)) if b == bucket && key.starts_with(p.as_str()) => Some(2 + p.len()),
            _ => None,
        }
    }
}

/// One published state.
pub struct Snapshot {
    pub generation: u64,
    pub policies: HashMap<String, Arc<LoadedPolicy>>,
    pub bindings: Vec<Binding>,
}

/// What applies to a request for one hook.
pub enum Resolved {
    None,
    Policy(Arc<LoadedPolicy>),
    /// Bound, but the policy is not loaded (it failed to load at start):
    /// requests fail closed.
    Missing(String),
}

impl Snapshot {
    /// The live policy for `hook` at (bucket, key).
    pub fn resolve(&self, hook: Hook, bucket: &str, key: &str) -> Resolved {
        self.resolve_in(hook, bucket, key, false)
    }

    /// The shadow candidate for `hook` at (bucket, key), if one is bound.
    pub fn resolve_shadow(&self, hook: Hook, bucket: &str, key: &str) -> Resolved {
        self.resolve_in(hook, bucket, key, true)
    }

    fn resolve_in(&self, hook: Hook, bucket: &str, key: &str, shadow: bool) -> Resolved {
        let best = self
            .bindings
            .iter()
            .filter(|b| b.hook == hook && b.shadow == shadow)
            .filter_map(|b| b.score(bucket, key).map(|s| (s, b)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, b)| b);
        match best {
            None => Resolved::None,
            Some(b) => match self.policies.get(&b.policy) {
                Some(p) => Resolved::Policy(p.clone()),
                None => Resolved::Missing(b.policy.clone()),
            },
        }
    }
}

pub struct PolicyRegistry {
    engine: Arc<PolicyEngine>,
    dir: PathBuf,
    store: StateStore,
    current: ArcSwap<Snapshot>,
    write: tokio::sync::Mutex<()>,
}

/// Timing of an upload, for the operator.
#[derive(Debug, Serialize)]
pub struct UploadReport {
    pub compile_ms: f64,
    pub publish_us: f64,
    pub generation: u64,
}

fn valid_name(name: &str) -> Result<(), PolicyError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(()) } else { Err(PolicyError::BadRequest("policy names are 1-64 of [A-Za-z0-9._-]".into())) }
}

impl PolicyRegistry {
    /// Open the registry and load every stored policy (a policy that no
    /// longer loads is logged and left out; its bindings then fail closed).
    pub async fn open(engine: Arc<PolicyEngine>, dir: PathBuf, store: StateStore) -> Result<Self, PolicyError> {
        create_private_dir(&dir).map_err(|e| PolicyError::storage(dir.display(), e))?;
        let infos: Vec<(String, PolicyInfo)> = store.list(NS).await.map_err(|e| PolicyError::storage("policy list", e))?;
        let mut policies = HashMap::new();
        for (name, info) in infos {
            match Self::load(&engine, &dir, &store, &info).await {
                Ok(loaded) => {
                    policies.insert(name, loaded);
                }
                Err(e) => tracing::error!(policy = %name, error = %e, "stored policy does not load; its bindings fail closed"),
            }
        }
        let bindings: Vec<Binding> =
            store.get(BINDINGS_NS, "all").await.map_err(|e| PolicyError::storage("bindings", e))?.unwrap_or_default();
        let snap = Snapshot { generation: 1, policies, bindings };
        Ok(Self { engine, dir, store, current: ArcSwap::from_pointee(snap), write: Default::default() })
    }

    /// Load a stored policy: its precompiled code when that is intact,
    /// else compile the component (and store the code for next time).
    async fn load(
        engine: &Arc<PolicyEngine>,
        dir: &Path,
        store: &StateStore,
        info: &PolicyInfo,
    ) -> Result<Arc<LoadedPolicy>, PolicyError> {
        let name = &info.name;
        let code_path = dir.join(format!("{name}.cwasm"));
        let record: Option<Artifact> = store.get(ARTIFACTS_NS, name).await.ok().flatten();
        if let Some(rec) = record.filter(|r| r.component_sha256 == info.sha256) {
            match std::fs::read(&code_path) {
                Ok(code) if sha256_hex(&code) == rec.sha256 => {
                    match Self::off_workers(engine, name, move |e, n| e.prepare_precompiled(n, &code)).await {
                        Ok(prepared) => return Ok(Arc::new(LoadedPolicy { info: info.clone(), prepared })),
                        // E.g. after an upgrade of the gateway (another wasmtime).
                        Err(e) => tracing::info!(policy = %name, error = %e, "recompiling policy"),
                    }
                }
                Ok(_) => tracing::warn!(policy = %name, "precompiled policy code changed on disk; recompiling"),
                Err(e) => tracing::info!(policy = %name, error = %e, "recompiling policy"),
            }
        }
        let path = dir.join(format!("{name}.wasm"));
        let wasm = match std::fs::read(&path) {
            Ok(wasm) if !store.is_shared() || sha256_hex(&wasm) == info.sha256 => wasm,
            // Cluster mode: another replica uploaded it.
            _ if store.is_shared() => {
                let wasm = Self::fetch_component(store, &info.sha256).await?;
                write_private_atomic(&path, &wasm).map_err(|e| PolicyError::storage(path.display(), e))?;
                wasm
            }
            Ok(wasm) => wasm,
            Err(e) => return Err(PolicyError::storage(path.display(), e)),
        };
        let prepared = Self::off_workers(engine, name, move |e, n| e.prepare(n, &wasm)).await?;
        let loaded = Arc::new(LoadedPolicy { info: info.clone(), prepared });
        Self::save_artifact(dir, store, &loaded).await;
        Ok(loaded)
    }

    /// Compile or load a component off the async workers: a language
    /// runtime takes seconds, and in cluster mode this runs while the
    /// replica serves (another replica's upload).
    async fn off_workers<F>(engine: &Arc<PolicyEngine>, name: &str, f: F) -> Result<Prepared, PolicyError>
    where
        F: FnOnce(&PolicyEngine, &str) -> Result<Prepared, PolicyError> + Send + 'static,
    {
        let (engine, name) = (engine.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || f(&engine, &name)).await.map_err(|e| PolicyError::engine("compiler task", e))?
    }

    /// The bytes of component `sha256` from the shared state, checked.
    async fn fetch_component(store: &StateStore, sha256: &str) -> Result<Vec<u8>, PolicyError> {
        use base64::Engine as _;
        let doc: Component = store
            .get(COMPONENTS_NS, sha256)
            .await
            .map_err(|e| PolicyError::storage("policy component", e))?
            .ok_or_else(|| PolicyError::NotFound(format!("component {sha256} in the cluster state")))?;
        let wasm = base64::engine::general_purpose::STANDARD
            .decode(doc.wasm_base64)
            .map_err(|e| PolicyError::storage("policy component", e))?;
        if sha256_hex(&wasm) != sha256 {
            return Err(PolicyError::storage("policy component", "its bytes do not match its digest"));
        }
        Ok(wasm)
    }

    /// Cluster mode: reload whenever the cluster's generation moves.
    pub fn spawn_cluster_watch(self: &Arc<Self>) {
        if !self.store.is_shared() {
            return;
        }
        let weak = Arc::downgrade(self);
        let mut changes = self.store.subscribe();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(me) = weak.upgrade() else { return };
                if let Err(e) = me.follow_stored().await {
                    tracing::error!(error = %e, "cannot reload the cluster's policies");
                }
            }
        });
    }

    /// Take up the stored policies and bindings: new or replaced policies
    /// are loaded (compiled here), removed ones dropped. Publishes only
    /// when something changed.
    pub async fn follow_stored(&self) -> Result<(), PolicyError> {
        let _guard = self.write.lock().await;
        let snap = self.snapshot();
        let infos: Vec<(String, PolicyInfo)> = self.store.list(NS).await.map_err(|e| PolicyError::storage("policy list", e))?;
        let bindings: Vec<Binding> =
            self.store.get(BINDINGS_NS, "all").await.map_err(|e| PolicyError::storage("bindings", e))?.unwrap_or_default();
        let mut policies = HashMap::new();
        let mut changed = bindings != snap.bindings || infos.len() != snap.policies.len();
        for (name, info) in infos {
            if let Some(p) = snap.policies.get(&name).filter(|p| p.info.sha256 == info.sha256) {
                policies.insert(name, p.clone());
                continue;
            }
            changed = true;
            match Self::load(&self.engine, &self.dir, &self.store, &info).await {
                Ok(loaded) => {
                    policies.insert(name, loaded);
                }
                Err(e) => {
                    tracing::error!(policy = %name, error = %e, "policy from the cluster does not load; its bindings fail closed")
                }
            }
        }
        if changed {
            self.publish(policies, bindings);
        }
        Ok(())
    }

    /// Change the stored bindings by compare-and-set (two replicas binding
    /// at once both keep their binding), then tell the other replicas.
    async fn update_bindings<F>(&self, change: F) -> Result<Vec<Binding>, PolicyError>
    where
        F: Fn(&[Binding]) -> Result<Vec<Binding>, PolicyError>,
    {
        let new = self
            .store
            .update(BINDINGS_NS, "all", |stored: Option<Vec<Binding>>| change(stored.as_deref().unwrap_or(&[])))
            .await?;
        self.store.changed().await?;
        Ok(new)
    }

    /// Best effort: without it the next start compiles again. The compiled
    /// code of a language runtime is tens of MB: it is serialized and
    /// written off the async workers.
    async fn save_artifact(dir: &Path, store: &StateStore, loaded: &Arc<LoadedPolicy>) {
        let path = dir.join(format!("{}.cwasm", loaded.info.name));
        let l = loaded.clone();
        let written = tokio::task::spawn_blocking(move || {
            let code = l.prepared.precompiled()?;
            write_private_atomic(&path, &code).map_err(|e| PolicyError::storage(path.display(), e))?;
            Ok::<_, PolicyError>(sha256_hex(&code))
        })
        .await
        .unwrap_or_else(|e| Err(PolicyError::storage("precompiled code task", e)));
        let saved = match written {
            Ok(sha256) => {
                let rec = Artifact { sha256, component_sha256: loaded.info.sha256.clone() };
                store
                    .put(ARTIFACTS_NS, &loaded.info.name, &rec)
                    .await
                    .map_err(|e| PolicyError::storage("precompiled code record", e))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = saved {
            tracing::warn!(policy = %loaded.info.name, error = %e, "could not store precompiled policy code");
        }
    }

    pub fn engine(&self) -> &Arc<PolicyEngine> {
        &self.engine
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    fn publish(&self, policies: HashMap<String, Arc<LoadedPolicy>>, bindings: Vec<Binding>) -> u64 {
        let generation = self.current.load().generation + 1;
        self.current.store(Arc::new(Snapshot { generation, policies, bindings }));
        generation
    }

    /// Compile and validate off the request path, persist, then publish.
    pub async fn upload(&self, name: &str, wasm: Vec<u8>) -> Result<(PolicyInfo, UploadReport), PolicyError> {
        valid_name(name)?;
        if wasm.len() > MAX_COMPONENT_BYTES {
            return Err(PolicyError::TooLarge(wasm.len(), MAX_COMPONENT_BYTES));
        }
        let engine = self.engine.clone();
        let started = Instant::now();
        let label = name.to_owned();
        let (prepared, wasm) = tokio::task::spawn_blocking(move || engine.prepare(&label, &wasm).map(|p| (p, wasm)))
            .await
            .map_err(|e| PolicyError::engine("compiler task", e))??;
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        let hook = prepared.hook();
        let info = PolicyInfo {
            name: name.to_owned(),
            hook,
            world: format!("kms-gateway:policy/{}@{}", hook.world(), prepared.version()),
            sha256: sha256_hex(&wasm),
            size: wasm.len(),
            imports_wasi: prepared.uses_wasi(),
            uploaded_at: OffsetDateTime::now_utc(),
        };
        let guard = self.write.lock().await;
        let snap = self.snapshot();
        // A policy bound to a hook can only be replaced by one for the same hook.
        if let Some(b) = snap.bindings.iter().find(|b| b.policy == name && b.hook != hook) {
            return Err(PolicyError::Conflict(format!(
                "policy '{name}' is bound to {} and the new component implements {}",
                b.hook.name(),
                hook.name()
            )));
        }
        let path = self.dir.join(format!("{name}.wasm"));
        write_private_atomic(&path, &wasm).map_err(|e| PolicyError::storage(path.display(), e))?;
        if self.store.is_shared() {
            use base64::Engine as _;
            let doc = Component { wasm_base64: base64::engine::general_purpose::STANDARD.encode(&wasm) };
            self.store.put(COMPONENTS_NS, &info.sha256, &doc).await.map_err(|e| PolicyError::storage("policy component", e))?;
        }
        self.store.put(NS, name, &info).await.map_err(|e| PolicyError::storage("policy record", e))?;
        self.store.changed().await.map_err(|e| PolicyError::storage("policy record", e))?;
        let loaded = Arc::new(LoadedPolicy { info: info.clone(), prepared });
        let mut policies = snap.policies.clone();
        policies.insert(name.to_owned(), loaded.clone());
        let t = Instant::now();
        let generation = self.publish(policies, snap.bindings.clone());
        let publish_us = t.elapsed().as_secs_f64() * 1e6;
        drop(guard);
        // A concurrent replacement can only leave a record for another
        // digest, which is then recompiled.
        Self::save_artifact(&self.dir, &self.store, &loaded).await;
        Ok((info, UploadReport { compile_ms, publish_us, generation }))
    }

    pub async fn delete(&self, name: &str) -> Result<(), PolicyError> {
        let _guard = self.write.lock().await;
        let snap = self.snapshot();
        if !snap.policies.contains_key(name) && self.store.get::<PolicyInfo>(NS, name).await.ok().flatten().is_none() {
            return Err(PolicyError::NotFound(name.to_owned()));
        }
        if let Some(b) = snap.bindings.iter().find(|b| b.policy == name) {
            return Err(PolicyError::Conflict(format!("policy '{name}' is bound to {}; unbind it first", b.hook.name())));
        }
        self.store.delete(NS, name).await.map_err(|e| PolicyError::storage("policy record", e))?;
        self.store.changed().await.map_err(|e| PolicyError::storage("policy record", e))?;
        let _ = self.store.delete(ARTIFACTS_NS, name).await;
        for ext in ["wasm", "cwasm"] {
            let _ = std::fs::remove_file(self.dir.join(format!("{name}.{ext}")));
        }
        let mut policies = snap.policies.clone();
        policies.remove(name);
        self.publish(policies, snap.bindings.clone());
        Ok(())
    }

    pub async fn bind(&self, b: Binding) -> Result<u64, PolicyError> {
        if b.prefix.is_some() && b.bucket.is_none() {
            return Err(PolicyError::BadRequest("a `prefix` needs a `bucket`".into()));
        }
        if b.hook == Hook::Rotation && b.bucket.is_some() {
            return Err(PolicyError::BadRequest("rotation policies bind globally (keys are not per bucket)".into()));
        }
        let _guard = self.write.lock().await;
        let snap = self.snapshot();
        let p = snap.policies.get(&b.policy).ok_or_else(|| PolicyError::NotFound(b.policy.clone()))?;
        if p.info.hook != b.hook {
            return Err(PolicyError::BadRequest(format!(
                "policy '{}' implements {} (world {}), not {}",
                b.policy,
                p.info.hook.name(),
                p.info.world,
                b.hook.name()
            )));
        }
        let bindings = self
            .update_bindings(|stored| {
                let mut bindings: Vec<Binding> = stored.iter().filter(|x| !x.same_scope(&b)).cloned().collect();
                bindings.push(b.clone());
                Ok(bindings)
            })
            .await?;
        Ok(self.publish(snap.policies.clone(), bindings))
    }

    pub async fn unbind(
        &self,
        hook: Hook,
        bucket: Option<String>,
        prefix: Option<String>,
        shadow: bool,
    ) -> Result<u64, PolicyError> {
        let _guard = self.write.lock().await;
        let snap = self.snapshot();
        let probe = Binding { hook, policy: String::new(), bucket, prefix, shadow };
        let bindings = self
            .update_bindings(|stored| {
                if !stored.iter().any(|x| x.same_scope(&probe)) {
                    return Err(PolicyError::NotFound(format!("binding of {} at that scope", hook.name())));
                }
                Ok(stored.iter().filter(|x| !x.same_scope(&probe)).cloned().collect())
            })
            .await?;
        Ok(self.publish(snap.policies.clone(), bindings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(bucket: Option<&str>, prefix: Option<&str>) -> Binding {
        Binding {
            hook: Hook::KeySelect,
            policy: "p".into(),
            bucket: bucket.map(Into::into),
            prefix: prefix.map(Into::into),
            shadow: false,
        }
    }

    #[test]
    fn most_specific_scope_wins() {
        let global = b(None, None);
        let bucket = b(Some("data"), None);
        let short = b(Some("data"), Some("a/"));
        let long = b(Some("data"), Some("a/b/"));
        let score = |x: &Binding, bk: &str, k: &str| x.score(bk, k);
        assert_eq!(score(&global, "any", "k"), Some(0));
        assert_eq!(score(&bucket, "other", "k"), None);
        assert!(score(&bucket, "data", "k") > score(&global, "data", "k"));
        assert!(score(&short, "data", "a/x") > score(&bucket, "data", "a/x"));
        assert!(score(&long, "data", "a/b/x") > score(&short, "data", "a/b/x"));
        assert_eq!(score(&long, "data", "a/x"), None);
        assert!(bucket.same_scope(&b(Some("data"), None)) && !bucket.same_scope(&short));
        // A shadow binding shares a scope with a live one without replacing it.
        let shadow = Binding { shadow: true, ..bucket.clone() };
        assert!(!shadow.same_scope(&bucket));
        let snap = Snapshot { generation: 1, policies: HashMap::new(), bindings: vec![shadow] };
        assert!(matches!(snap.resolve(Hook::KeySelect, "data", "k"), Resolved::None), "shadows are never live");
        assert!(matches!(snap.resolve_shadow(Hook::KeySelect, "data", "k"), Resolved::Missing(p) if p == "p"));
    }

    #[test]
    fn names_are_checked() {
        for good in ["p", "tenant-prefix", "v1.2_x"] {
            assert!(valid_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "x y", &"n".repeat(65)] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }
}
