//! The KMS lifecycle: `NotConfigured → Configured → Running`, plus
//! `Error(..)`, as the RustFS KMS admin API defines it.
//!
//! The current state is one immutable snapshot behind an [`ArcSwap`]:
//! requests load it without locking and keep the [`KmsService`] they got
//! until they finish, so a swap never disturbs a request in flight.
//! Transitions are serialised by one async mutex; a candidate service is
//! built and health-checked before it is published, so a failed
//! `reconfigure` leaves the old version serving. Configuration (secrets
//! sealed) and the backends of earlier configurations are persisted in the
//! state store, so a restart comes back in the same state.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{BackendConfig, KmsConfig, SecretSealer, SecretSink, SecretSource};
use super::local::LocalBackend;
use super::resilience::{CircuitBreaker, RetryPolicy};
use super::secret_files::{Origin, SecretFilePolicy};
use super::service::{BackendPair, KmsService, Observer};
use super::vault::VaultBackend;
use super::{CreateKeyRequest, KeyBackend, KeyId, KmsError};
use crate::crypto::SealingKey;
use crate::state::{StateError, StateStore};

/// Lifecycle state; serialises as `"Running"` or `{"Error":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum KmsStatus {
    NotConfigured,
    Configured,
    Running,
    Error(String),
}

/// Why a lifecycle operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Backend(#[source] KmsError),
    #[error("the KMS state could not be persisted: {0}")]
    State(#[from] crate::state::StateError),
}

/// Who still names a key (bucket defaults, …), as descriptions.
pub type KeyReferences = Arc<dyn Fn(KeyId) -> futures::future::BoxFuture<'static, Vec<String>> + Send + Sync>;

/// What the manager needs from the gateway.
pub struct ManagerContext {
    pub data_dir: PathBuf,
    pub master: SealingKey,
    pub store: StateStore,
    /// Runs the deletion sweep once per period across replicas.
    pub jobs: crate::state::jobs::Jobs,
    pub observer: Arc<Observer>,
    pub references: KeyReferences,
    /// How often the health probe runs (0: never).
    pub probe_interval: Duration,
    /// Default key when a configuration names none.
    pub fallback_key: KeyId,
    /// Which files a configuration may name as secrets.
    pub secret_files: SecretFilePolicy,
}

struct Snapshot {
    status: KmsStatus,
    config: Option<KmsConfig>,
    service: Option<Arc<KmsService>>,
}

/// A backend kept for reading objects written under an earlier config.
#[derive(Clone)]
struct Reader {
    identity: String,
    backend: Arc<dyn KeyBackend>,
}

pub struct KmsManager {
    ctx: ManagerContext,
    sealer: SecretSealer,
    current: ArcSwap<Snapshot>,
    lifecycle: tokio::sync::Mutex<Vec<(String, Value)>>,
    readers: std::sync::Mutex<Vec<Reader>>,
    generation: AtomicU64,
    probe_failures: AtomicU32,
    /// Cluster mode: the digest of the stored configuration document this
    /// replica last wrote or followed (held under `lifecycle`).
    applied: std::sync::Mutex<Option<Vec<u8>>>,
}

/// What identifies a stored configuration document's content.
fn fingerprint(doc: &Persisted) -> Vec<u8> {
    let bytes = serde_json::to_vec(doc).expect("the KMS state serialises");
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes).as_ref().to_vec()
}

const NS: &str = "kms";
const DOC: &str = "config";
const MAX_RETIRED: usize = 8;

#[derive(Serialize, Deserialize, Default)]
struct Persisted {
    config: Option<Value>,
    running: bool,
    /// Earlier configurations (identity, stored config), newest first.
    #[serde(default)]
    retired: Vec<(String, Value)>,
}

/// How to start when nothing is persisted (or flags override it).
pub enum Startup {
    /// Configure and start this, replacing any persisted state.
    Explicit(KmsConfig),
    /// Use the persisted state; if none, configure and start this.
    Default(KmsConfig),
    /// Use the persisted state; if none, stay `NotConfigured`.
    NotConfigured,
}

fn identity(cfg: &KmsConfig, data_dir: &std::path::Path, shared: bool) -> String {
    match &cfg.backend {
        // Cluster mode: one key store for every replica, whatever its disk.
        BackendConfig::Local(l) if l.key_dir.is_none() && shared => "local:cluster-state".into(),
        BackendConfig::Local(l) => {
            format!("local:{}", l.key_dir.clone().unwrap_or_else(|| data_dir.join("kms/keys")).display())
        }
        BackendConfig::Vault(v) => format!("vault:{}/{}#{}", v.address, v.mount_path, v.namespace.as_deref().unwrap_or("")),
    }
}

impl KmsManager {
    pub async fn boot(ctx: ManagerContext, startup: Startup) -> Result<Arc<Self>, LifecycleError> {
        let sealer = SecretSealer::new(&ctx.master);
        let persisted: Persisted = ctx.store.get(NS, DOC).await?.unwrap_or_default();
        let me = Arc::new(Self {
            sealer,
            current: ArcSwap::from_pointee(Snapshot { status: KmsStatus::NotConfigured, config: None, service: None }),
            lifecycle: tokio::sync::Mutex::new(persisted.retired.clone()),
            readers: std::sync::Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            probe_failures: AtomicU32::new(0),
            applied: std::sync::Mutex::new(Some(fingerprint(&persisted))),
            ctx,
        });
        me.load_readers(&persisted.retired).await;
        let stored = match &persisted.config {
            Some(v) => Some(
                KmsConfig::from_value(v.clone(), SecretSource::Stored(&me.sealer), &me.ctx.fallback_key)
                    .map_err(|e| LifecycleError::Invalid(format!("persisted KMS configuration: {e}")))?,
            ),
            None => None,
        };
        match (startup, stored) {
            (Startup::Explicit(cfg), _) | (Startup::Default(cfg), None) => me.reconfigure_from(cfg, Origin::Operator).await?,
            (_, Some(cfg)) if persisted.running => {
                me.publish(KmsStatus::Configured, Some(cfg), None);
                if let Err(e) = me.start(false).await {
                    tracing::error!(error = %e, "KMS did not start from the persisted configuration");
                }
            }
            (_, Some(cfg)) => me.publish(KmsStatus::Configured, Some(cfg), None),
            (Startup::NotConfigured, None) => {}
        }
        me.spawn_probe();
        me.spawn_deletion_sweep(Duration::from_secs(60));
        if me.ctx.store.is_shared() {
            me.spawn_cluster_watch();
        }
        Ok(me)
    }

    /// Cluster mode: another replica's change (a key disabled, rotated or
    /// deleted) empties this replica's data-key caches, so a key disabled
    /// anywhere stops working everywhere within the poll bound; a new KMS
    /// configuration is taken up.
    fn spawn_cluster_watch(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let mut changes = self.ctx.store.subscribe();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(me) = weak.upgrade() else { return };
                if let Ok(service) = me.service() {
                    service.clear_cache();
                }
                if let Err(e) = me.follow_stored().await {
                    tracing::error!(error = %e, "cannot read the cluster's KMS configuration");
                }
            }
        });
    }

    fn publish(&self, status: KmsStatus, config: Option<KmsConfig>, service: Option<Arc<KmsService>>) {
        self.current.store(Arc::new(Snapshot { status, config, service }));
    }

    /// The running service, for one request.
    pub fn service(&self) -> Result<Arc<KmsService>, KmsError> {
        self.current.load().service.clone().ok_or(KmsError::NotRunning)
    }

    pub fn status(&self) -> KmsStatus {
        self.current.load().status.clone()
    }

    /// The default key id a configuration without one gets: the
    /// gateway's `--kms-default-key-id` (or `gateway-default`).
    pub fn fallback_key(&self) -> &KeyId {
        &self.ctx.fallback_key
    }

    /// Identifies the stored KMS configuration this process runs (hex
    /// prefix of its digest): equal on replicas that agree.
    pub fn config_fingerprint(&self) -> Option<String> {
        self.applied.lock().expect("applied lock").as_ref().map(|d| hex::encode(&d[..8]))
    }

    pub fn config(&self) -> Option<KmsConfig> {
        self.current.load().config.clone()
    }

    /// Ready: running, and the probe has not failed three times in a row.
    pub fn ready(&self) -> bool {
        self.current.load().service.is_some() && self.probe_failures.load(Ordering::Relaxed) < 3
    }

    pub async fn references(&self, key: &KeyId) -> Vec<String> {
        (self.ctx.references)(key.clone()).await
    }

    /// Store a configuration without starting it.
    pub async fn configure(&self, cfg: KmsConfig) -> Result<(), LifecycleError> {
        let mut retired = self.lifecycle.lock().await;
        if self.current.load().service.is_some() {
            return Err(LifecycleError::Conflict("Cannot configure KMS while it is running; use reconfigure instead".into()));
        }
        let mut cfg = cfg;
        let old = self.config();
        cfg.inherit_secrets(old.as_ref()).map_err(|e| LifecycleError::Invalid(e.to_string()))?;
        self.ctx.secret_files.check(&cfg, Origin::Admin).map_err(|e| LifecycleError::Invalid(e.to_string()))?;
        self.check_cluster(&cfg)?;
        if let Some(old) = &old {
            self.retire(&mut retired, old, &cfg).await;
        }
        self.persist(Some(&cfg), false, &mut retired).await?;
        self.publish(KmsStatus::Configured, Some(cfg), None);
        Ok(())
    }

    /// Start the configured KMS; with `force`, restart a running one.
    pub async fn start(&self, force: bool) -> Result<(), LifecycleError> {
        let mut retired = self.lifecycle.lock().await;
        let snap = self.current.load_full();
        if snap.service.is_some() && !force {
            return Err(LifecycleError::Conflict("KMS is already running. Use force=true to restart.".into()));
        }
        let Some(cfg) = snap.config.clone() else {
            let msg = "Cannot start KMS: no configuration provided";
            self.publish(KmsStatus::Error(msg.into()), None, None);
            return Err(LifecycleError::Conflict(msg.into()));
        };
        match self.prepare(&cfg).await {
            Ok(pair) => {
                self.persist(Some(&cfg), true, &mut retired).await?;
                self.probe_failures.store(0, Ordering::Relaxed);
                let service = self.service_for(&cfg, pair);
                self.publish(KmsStatus::Running, Some(cfg), Some(service));
                Ok(())
            }
            Err(e) => {
                if snap.service.is_none() {
                    self.publish(KmsStatus::Error(format!("Failed to start KMS backend: {e}")), Some(cfg), None);
                }
                Err(LifecycleError::Backend(e))
            }
        }
    }

    pub async fn stop(&self) -> Result<(), LifecycleError> {
        let mut retired = self.lifecycle.lock().await;
        let cfg = self.config();
        if cfg.is_some() {
            self.persist(cfg.as_ref(), false, &mut retired).await?;
        }
        let status = if cfg.is_some() { KmsStatus::Configured } else { KmsStatus::NotConfigured };
        self.publish(status, cfg, None);
        Ok(())
    }

    /// In cluster mode the local backend keeps its keys in the shared
    /// state: a key directory is one replica's disk, and each replica
    /// would make keys of its own there, which the others cannot open.
    fn check_cluster(&self, cfg: &KmsConfig) -> Result<(), LifecycleError> {
        match &cfg.backend {
            BackendConfig::Local(l) if l.key_dir.is_some() && self.ctx.store.is_shared() => Err(LifecycleError::Invalid(
                "`key_dir` is refused in cluster mode: the local backend keeps its keys in the cluster's state, where every replica finds them".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Replace the configuration: build and health-check the candidate,
    /// then publish it (starting the KMS if it was not running).
    pub async fn reconfigure(&self, cfg: KmsConfig) -> Result<(), LifecycleError> {
        self.reconfigure_from(cfg, Origin::Admin).await
    }

    async fn reconfigure_from(&self, cfg: KmsConfig, origin: Origin) -> Result<(), LifecycleError> {
        let mut retired = self.lifecycle.lock().await;
        let mut cfg = cfg;
        let old = self.config();
        cfg.inherit_secrets(old.as_ref()).map_err(|e| LifecycleError::Invalid(e.to_string()))?;
        self.ctx.secret_files.check(&cfg, origin).map_err(|e| LifecycleError::Invalid(e.to_string()))?;
        self.check_cluster(&cfg)?;
        let pair = self.prepare(&cfg).await.map_err(LifecycleError::Backend)?;
        if let Some(old) = &old {
            self.retire(&mut retired, old, &cfg).await;
        }
        self.persist(Some(&cfg), true, &mut retired).await?;
        let service = self.service_for(&cfg, pair);
        self.probe_failures.store(0, Ordering::Relaxed);
        self.publish(KmsStatus::Running, Some(cfg), Some(service));
        Ok(())
    }

    /// Keep the backend of `old` for reading older objects now that `new`
    /// replaces it: the running one if any, else opened afresh.
    async fn retire(&self, retired: &mut Vec<(String, Value)>, old: &KmsConfig, new: &KmsConfig) {
        let id = identity(old, &self.ctx.data_dir, self.ctx.store.is_shared());
        if id == identity(new, &self.ctx.data_dir, self.ctx.store.is_shared()) {
            return;
        }
        retired.retain(|(r, _)| *r != id);
        retired.insert(0, (id.clone(), old.to_json(SecretSink::Seal(&self.sealer))));
        retired.truncate(MAX_RETIRED);
        let running = self.current.load().service.as_ref().map(|s| s.backend().clone());
        let backend = match running {
            Some(b) => Some(b),
            None => match self.open_backend(old).await {
                Ok(pair) => Some(pair.backend),
                Err(e) => {
                    tracing::warn!(backend = %id, error = %e, "earlier KMS backend unavailable; its objects cannot be read");
                    None
                }
            },
        };
        if let Some(backend) = backend {
            let mut readers = self.readers.lock().expect("readers lock");
            readers.retain(|r| r.identity != id);
            readers.insert(0, Reader { identity: id, backend });
        }
    }

    fn reader_list(&self, current: &KmsConfig) -> Vec<Arc<dyn KeyBackend>> {
        let me = identity(current, &self.ctx.data_dir, self.ctx.store.is_shared());
        let readers = self.readers.lock().expect("readers lock");
        readers.iter().filter(|r| r.identity != me).map(|r| r.backend.clone()).collect()
    }

    /// Store the configuration by compare-and-set. In cluster mode another
    /// replica may have stored a configuration since this one read it:
    /// its earlier backends, and that configuration itself when it is being
    /// replaced, join `retired`, so that objects written under them stay
    /// readable whichever replica's change lands last.
    async fn persist(
        &self,
        cfg: Option<&KmsConfig>,
        running: bool,
        retired: &mut Vec<(String, Value)>,
    ) -> Result<(), LifecycleError> {
        let shared = self.ctx.store.is_shared();
        let mine = cfg.map(|c| identity(c, &self.ctx.data_dir, shared));
        let config = cfg.map(|c| c.to_json(SecretSink::Seal(&self.sealer)));
        let doc = self
            .ctx
            .store
            .update(NS, DOC, |stored: Option<Persisted>| {
                for (id, v) in stored.iter().flat_map(|doc| self.retired_in(doc, shared)) {
                    if Some(&id) != mine.as_ref() && !retired.iter().any(|(r, _)| *r == id) {
                        retired.push((id, v));
                    }
                }
                retired.truncate(MAX_RETIRED);
                Ok::<_, StateError>(Persisted { config: config.clone(), running, retired: retired.clone() })
            })
            .await
            .map_err(|e| match e {
                StateError::Contended(_) => {
                    LifecycleError::Conflict("the KMS configuration is changing too often; try again".into())
                }
                other => other.into(),
            })?;
        *self.applied.lock().expect("applied lock") = Some(fingerprint(&doc));
        self.ctx.store.changed().await?;
        // Backends another replica retired: readable here too.
        self.load_missing_readers(retired).await;
        Ok(())
    }

    /// The backends a stored document retires: its configuration (which a
    /// new one replaces) and its earlier ones.
    fn retired_in(&self, doc: &Persisted, shared: bool) -> Vec<(String, Value)> {
        let current = doc.config.as_ref().and_then(|v| {
            let c = KmsConfig::from_value(v.clone(), SecretSource::Stored(&self.sealer), &self.ctx.fallback_key).ok()?;
            Some((identity(&c, &self.ctx.data_dir, shared), v.clone()))
        });
        current.into_iter().chain(doc.retired.iter().cloned()).collect()
    }

    /// Cluster mode: take up the configuration another replica stored
    /// (configure, start, stop, reconfigure), unless this replica already
    /// runs it. A configuration that does not start here leaves the status
    /// `Error` with the reason, as a failed start does.
    async fn follow_stored(&self) -> Result<(), LifecycleError> {
        let mut retired = self.lifecycle.lock().await;
        let persisted: Persisted = self.ctx.store.get(NS, DOC).await?.unwrap_or_default();
        let print = fingerprint(&persisted);
        if self.applied.lock().expect("applied lock").as_deref() == Some(print.as_slice()) {
            return Ok(());
        }
        *self.applied.lock().expect("applied lock") = Some(print);
        *retired = persisted.retired.clone();
        self.load_missing_readers(&persisted.retired).await;
        let cfg = match &persisted.config {
            None => {
                self.publish(KmsStatus::NotConfigured, None, None);
                return Ok(());
            }
            Some(v) => KmsConfig::from_value(v.clone(), SecretSource::Stored(&self.sealer), &self.ctx.fallback_key)
                .map_err(|e| LifecycleError::Invalid(format!("stored KMS configuration: {e}")))?,
        };
        if !persisted.running {
            self.publish(KmsStatus::Configured, Some(cfg), None);
            return Ok(());
        }
        match self.prepare(&cfg).await {
            Ok(pair) => {
                let service = self.service_for(&cfg, pair);
                self.probe_failures.store(0, Ordering::Relaxed);
                self.publish(KmsStatus::Running, Some(cfg), Some(service));
                tracing::info!(
                    backend = self.current.load().service.as_ref().map(|s| s.backend_kind()),
                    "KMS configuration taken up from the cluster"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "the cluster's KMS configuration does not start on this replica");
                self.publish(KmsStatus::Error(format!("Failed to start KMS backend: {e}")), Some(cfg), None);
            }
        }
        Ok(())
    }

    /// A new published version on `pair`, reading older objects through
    /// the retired backends.
    fn service_for(&self, cfg: &KmsConfig, pair: BackendPair) -> Arc<KmsService> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        Arc::new(KmsService::new(generation, cfg.clone(), pair, self.reader_list(cfg), self.ctx.observer.clone()))
    }

    /// Open the backend of `cfg`, create the default key if it does not
    /// exist, and require a passing health check.
    async fn prepare(&self, cfg: &KmsConfig) -> Result<BackendPair, KmsError> {
        let pair = self.open_backend(cfg).await?;
        let default = &cfg.default_key_id;
        match pair.backend.describe_key(default).await {
            Ok(_) => {}
            Err(KmsError::NotFound(_)) => {
                let req = CreateKeyRequest {
                    key_id: Some(default.clone()),
                    description: "default key of this gateway (SSE-S3 and SSE-KMS without a key id)".into(),
                    tags: Default::default(),
                };
                match pair.admin.create_key(req).await {
                    Ok(_) | Err(KmsError::AlreadyExists(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        pair.backend.health().await?;
        Ok(pair)
    }

    async fn open_backend(&self, cfg: &KmsConfig) -> Result<BackendPair, KmsError> {
        match &cfg.backend {
            // Cluster mode: keys in the shared state store (a key
            // directory is refused there, by `check_cluster`).
            BackendConfig::Local(l) if l.key_dir.is_none() && self.ctx.store.is_shared() => {
                let b = Arc::new(LocalBackend::open_shared(self.ctx.store.clone(), self.ctx.master.clone()).await?);
                Ok(BackendPair { backend: b.clone(), admin: b })
            }
            BackendConfig::Local(l) => {
                let dir = l.key_dir.clone().unwrap_or_else(|| self.ctx.data_dir.join("kms/keys"));
                let master = self.ctx.master.clone();
                let b = tokio::task::spawn_blocking(move || LocalBackend::open(&dir, master))
                    .await
                    .map_err(|e| KmsError::Unavailable(format!("key loader failed: {e}")))??;
                let b = Arc::new(b);
                Ok(BackendPair { backend: b.clone(), admin: b })
            }
            BackendConfig::Vault(v) => {
                let policy = RetryPolicy { attempts: cfg.retry_attempts, per_attempt: cfg.timeout };
                let gauge = self.ctx.observer.metrics.kms_circuit_open.clone();
                let breaker = Arc::new(CircuitBreaker::new(cfg.breaker.clone(), Some(gauge)));
                let meta_ttl = if cfg.cache.enabled { cfg.cache.ttl } else { Duration::from_secs(1) };
                let b = Arc::new(VaultBackend::connect(v, policy, breaker, meta_ttl).await?);
                Ok(BackendPair { backend: b.clone(), admin: b })
            }
        }
    }

    /// Open readers for the retired backends this process has none of.
    async fn load_missing_readers(&self, retired: &[(String, Value)]) {
        let missing: Vec<(String, Value)> = {
            let readers = self.readers.lock().expect("readers lock");
            retired.iter().filter(|(id, _)| readers.iter().all(|r| r.identity != *id)).cloned().collect()
        };
        self.load_readers(&missing).await;
    }

    async fn load_readers(&self, retired: &[(String, Value)]) {
        for (id, v) in retired {
            let cfg = match KmsConfig::from_value(v.clone(), SecretSource::Stored(&self.sealer), &self.ctx.fallback_key) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(backend = %id, error = %e, "cannot read an earlier KMS configuration");
                    continue;
                }
            };
            match self.open_backend(&cfg).await {
                Ok(pair) => {
                    self.readers.lock().expect("readers lock").push(Reader { identity: id.clone(), backend: pair.backend })
                }
                Err(e) => {
                    tracing::warn!(backend = %id, error = %e, "earlier KMS backend unavailable; its objects cannot be read")
                }
            }
        }
    }

    /// Background probe: a failing health check marks the status `Error`
    /// but keeps serving; a passing one restores `Running`.
    fn spawn_probe(self: &Arc<Self>) {
        if self.ctx.probe_interval.is_zero() {
            return;
        }
        let weak = Arc::downgrade(self);
        let every = self.ctx.probe_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(me) = weak.upgrade() else { return };
                me.probe_once().await;
            }
        });
    }

    /// Delete keys whose deletion date has passed, unless something still
    /// references them (then they stay pending and a warning is logged).
    fn spawn_deletion_sweep(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(me) = weak.upgrade() else { return };
                // Once per period across replicas.
                let period = crate::state::jobs::current_period(every);
                match me.ctx.jobs.claim("kms-deletion-sweep", period, every).await {
                    Ok(Some(claim)) => {
                        me.sweep_deletions().await;
                        if let Err(e) = me.ctx.jobs.finish(&claim).await {
                            tracing::warn!(error = %e, "deletion sweep: cannot record the run");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "deletion sweep: cannot claim the period"),
                }
            }
        });
    }

    pub async fn sweep_deletions(&self) {
        let Ok(service) = self.service() else { return };
        let keys = match service.admin().list_keys().await {
            Ok(k) => k,
            Err(e) => return tracing::warn!(error = %e, "deletion sweep could not list keys"),
        };
        let now = time::OffsetDateTime::now_utc();
        for k in keys {
            if k.state != super::KeyState::PendingDeletion || k.deletion_date.is_none_or(|d| d > now) {
                continue;
            }
            let refs = self.references(&k.key_id).await;
            if service.default_key_id() == &k.key_id || !refs.is_empty() {
                tracing::warn!(key_id = %k.key_id, references = ?refs, "key due for deletion is still referenced; kept");
                continue;
            }
            let outcome = match service.admin().delete_key(&k.key_id).await {
                Ok(()) => "ok",
                Err(e) => {
                    tracing::warn!(key_id = %k.key_id, error = %e, "scheduled key deletion failed");
                    super::service::error_class(&e)
                }
            };
            self.ctx.observer.audit.record(&crate::audit::AuditEvent {
                kind: "admin",
                principal: None,
                action: "kms:scheduled-deletion",
                key_id: Some(k.key_id.as_str()),
                key_version: None,
                bucket: None,
                object: None,
                outcome,
                detail: None,
                request_id: None,
            });
        }
    }

    pub async fn probe_once(&self) {
        let snap = self.current.load_full();
        let Some(service) = &snap.service else { return };
        let result = service.health().await;
        let _guard = self.lifecycle.lock().await;
        let now = self.current.load_full();
        // Only touch the status of the version that was probed.
        if now.service.as_ref().is_none_or(|s| s.generation != service.generation) {
            return;
        }
        let status = match result {
            Ok(()) => {
                self.probe_failures.store(0, Ordering::Relaxed);
                KmsStatus::Running
            }
            Err(e) => {
                self.probe_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "KMS health probe failed");
                KmsStatus::Error(format!("Health check failed: {e}"))
            }
        };
        if status != now.status {
            self.publish(status, now.config.clone(), now.service.clone());
        }
    }
}
