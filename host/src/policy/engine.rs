//! The sandbox: one wasmtime engine (component model, pooling allocator,
//! epoch deadlines), compiling and validating components, and running one
//! hook call in a fresh store per decision.
//!
//! Every call gets its own `Store` (no state survives between requests or
//! tenants), a memory cap, an instance cap and a deadline; a trap, a
//! timeout, a limit hit or an oversized answer is a [`PolicyError`], never
//! a crash.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtxView, WasiView};

use super::PolicyError;
use super::bindings::{key_select, rotation, sse_validate, v0_1};
use super::types::{Hook, KeyDecision, KeyFacts, PolicyRequest, RotationAdvice, Verdict};
use super::wasi::{self, CallWasi};

/// Limits of one policy call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock budget of one call (epoch ticks of 1 ms).
    pub deadline: Duration,
    /// Linear memory of one instance of a pure (import-free) policy.
    pub memory_bytes: usize,
    /// Linear memory of one instance of a policy that embeds a language
    /// runtime (imports WASI): a Python or JavaScript interpreter starts
    /// from a snapshot of tens of MiB.
    pub runtime_memory_bytes: usize,
    /// Largest answer (sum of its strings).
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(50),
            memory_bytes: 16 << 20,
            runtime_memory_bytes: 128 << 20,
            output_bytes: 64 << 10,
        }
    }
}

/// Per-call store data.
pub struct CallState {
    limits: CallLimits,
    /// Built when the guest first calls WASI: pure policies cannot (their
    /// linker has no WASI) and never pay for it.
    wasi: Option<Box<CallWasi>>,
    started: Instant,
    deadline: Instant,
}

impl CallState {
    fn wasi(&mut self) -> &mut CallWasi {
        let started = self.started;
        self.wasi.get_or_insert_with(|| Box::new(CallWasi::new(started)))
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi().view()
    }
}

impl super::wasi::CallClock for CallState {
    fn now_and_left(&mut self) -> (u64, Duration) {
        (self.wasi().now(), self.deadline.saturating_duration_since(Instant::now()))
    }
}

/// wasmtime's `StoreLimits`, remembering whether it refused a memory
/// growth: a trap is then reported as the memory cap it is, without
/// reading wasmtime's error text.
struct CallLimits {
    inner: StoreLimits,
    memory_denied: bool,
}

impl ResourceLimiter for CallLimits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        self.memory_denied |= !matches!(allowed, Ok(true));
        allowed
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // Past the pool slot's reservation: the cap by another name.
        self.memory_denied = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// What a component implements, at which contract version.
enum Kind {
    KeySelect(key_select::KeySelectorPre<CallState>),
    SseValidate(sse_validate::SseValidatorPre<CallState>),
    Rotation(rotation::RotationPolicyPre<CallState>),
    KeySelectV01(v0_1::key_select::KeySelectorPre<CallState>),
    SseValidateV01(v0_1::sse_validate::SseValidatorPre<CallState>),
    RotationV01(v0_1::rotation::RotationPolicyPre<CallState>),
}

/// A compiled, validated component, ready to instantiate per call.
pub struct Prepared {
    /// Policy name, for logs.
    label: String,
    component: Component,
    kind: Kind,
    /// Imports WASI (a language runtime): served with an empty context.
    wasi: bool,
}

impl Prepared {
    pub fn hook(&self) -> Hook {
        match self.kind {
            Kind::KeySelect(_) | Kind::KeySelectV01(_) => Hook::KeySelect,
            Kind::SseValidate(_) | Kind::SseValidateV01(_) => Hook::SseValidate,
            Kind::Rotation(_) | Kind::RotationV01(_) => Hook::Rotation,
        }
    }

    /// The contract version the component implements.
    pub fn version(&self) -> &'static str {
        match self.kind {
            Kind::KeySelect(_) | Kind::SseValidate(_) | Kind::Rotation(_) => super::WIT_VERSIONS[0],
            Kind::KeySelectV01(_) | Kind::SseValidateV01(_) | Kind::RotationV01(_) => "0.1.0",
        }
    }

    /// Whether the component is asked about reads (0.2.0 and later).
    pub fn sees_reads(&self) -> bool {
        matches!(self.kind, Kind::SseValidate(_))
    }

    /// Whether the component imports WASI (embeds a language runtime).
    pub fn uses_wasi(&self) -> bool {
        self.wasi
    }

    /// The compiled machine code, for [`PolicyEngine::prepare_precompiled`]
    /// at the next start (a language runtime takes seconds to compile).
    pub fn precompiled(&self) -> Result<Vec<u8>, PolicyError> {
        self.component.serialize().map_err(|e| PolicyError::engine("serialize", e))
    }
}

/// The wasmtime engine and its epoch ticker.
pub struct PolicyEngine {
    engine: Engine,
    limits: Limits,
    /// Resolves nothing: pure policies.
    pure: Linker<CallState>,
    /// Serves the allow-listed WASI interfaces.
    wasi: Linker<CallState>,
    ticker: Arc<EpochTicker>,
}

impl Drop for PolicyEngine {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Advances the engine's epoch every millisecond while at least one
/// policy call runs, and sleeps otherwise: an idle gateway has no thread
/// waking a thousand times a second (it did: a few percent of a core).
/// A call's deadline counts ticks from its start, so it is unchanged.
#[derive(Default)]
struct EpochTicker {
    state: Mutex<TickState>,
    wake: Condvar,
}

#[derive(Default)]
struct TickState {
    calls: usize,
    stop: bool,
}

impl EpochTicker {
    fn lock(&self) -> std::sync::MutexGuard<'_, TickState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn run(&self, engine: &Engine) {
        loop {
            let mut st = self.lock();
            while st.calls == 0 && !st.stop {
                st = self.wake.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if st.stop {
                return;
            }
            drop(st);
            std::thread::sleep(Duration::from_millis(1));
            engine.increment_epoch();
        }
    }

    /// Ticking until the returned guard drops.
    fn enter(self: &Arc<Self>) -> Ticking {
        let mut st = self.lock();
        st.calls += 1;
        if st.calls == 1 {
            self.wake.notify_one();
        }
        Ticking(self.clone())
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_one();
    }
}

struct Ticking(Arc<EpochTicker>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.lock().calls -= 1;
    }
}

/// How many policy calls may run at once (pool slots).
const MAX_CONCURRENT_CALLS: u32 = 256;

impl PolicyEngine {
    pub fn new(limits: Limits) -> Result<Self, PolicyError> {
        let engine = Self::engine(limits, true).or_else(|e| {
            // Some hosts refuse the pool's virtual-memory reservation.
            tracing::warn!(error = %e, "pooling allocator unavailable; allocating policy instances on demand");
            Self::engine(limits, false)
        })?;
        let ticker = Arc::new(EpochTicker::default());
        let (e, t) = (engine.clone(), ticker.clone());
        std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || t.run(&e))
            .map_err(|e| PolicyError::engine("epoch ticker", e))?;
        let pure = Linker::new(&engine);
        let wasi = wasi::linker(&engine)?;
        Ok(Self { engine, limits, pure, wasi, ticker })
    }

    fn engine(limits: Limits, pooling: bool) -> Result<Engine, PolicyError> {
        let mut cfg = Config::new();
        cfg.epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .concurrency_support(false)
            .parallel_compilation(true)
            // Reservations sized to the largest memory a policy may have:
            // the pool reserves address space (not memory) for every slot.
            .memory_reservation(limits.memory_bytes.max(limits.runtime_memory_bytes) as u64)
            .memory_guard_size(64 << 10)
            .memory_reservation_for_growth(0);
        if pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(MAX_CONCURRENT_CALLS)
                // A language runtime links a dozen core modules.
                .total_core_instances(MAX_CONCURRENT_CALLS * 8)
                .total_memories(MAX_CONCURRENT_CALLS * 2)
                .total_tables(MAX_CONCURRENT_CALLS * 4)
                .table_elements(64 << 10)
                .max_memory_size(limits.memory_bytes.max(limits.runtime_memory_bytes))
                // Reset a slot with memset, not madvise (a syscall), when the
                // policy is small: most calls then touch no kernel at all.
                .linear_memory_keep_resident(256 << 10)
                .table_keep_resident(64 << 10);
            cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        Engine::new(&cfg).map_err(|e| PolicyError::engine("configuration", e))
    }

    /// Compile and validate: a component exporting one of the three
    /// worlds at the supported version, importing nothing (or only
    /// allow-listed WASI), answering a golden request (export signatures
    /// are only checked at instantiate). `label` names it in logs.
    pub fn prepare(&self, label: &str, wasm: &[u8]) -> Result<Prepared, PolicyError> {
        let component =
            Component::new(&self.engine, wasm).map_err(|e| PolicyError::Invalid(format!("not a valid component: {e:#}")))?;
        self.validate(label, component)
    }

    /// Load machine code from [`Prepared::precompiled`], validated like a
    /// fresh upload. The caller must pass bytes this gateway serialized
    /// itself, checked against the digest it recorded when writing them.
    #[allow(unsafe_code)]
    pub fn prepare_precompiled(&self, label: &str, code: &[u8]) -> Result<Prepared, PolicyError> {
        // SAFETY: wasmtime runs deserialized code as is, so it must come
        // from `Component::serialize`. It does: the gateway wrote it into
        // its private data directory and the caller verified its SHA-256;
        // wasmtime itself refuses code from another version or `Config`.
        let component = unsafe { Component::deserialize(&self.engine, code) }
            .map_err(|e| PolicyError::Invalid(format!("precompiled code: {e:#}")))?;
        self.validate(label, component)
    }

    fn validate(&self, label: &str, component: Component) -> Result<Prepared, PolicyError> {
        let invalid = |e: wasmtime::Error| PolicyError::Invalid(format!("{e:#}"));
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_owned()).collect();
        let found = super::WIT_VERSIONS.iter().find_map(|v| {
            [Hook::KeySelect, Hook::SseValidate, Hook::Rotation]
                .into_iter()
                .find(|h| exports.iter().any(|e| *e == h.export_name(v)))
                .map(|h| (h, *v))
        });
        let Some((hook, version)) = found else {
            return Err(PolicyError::Invalid(format!(
                "the component implements no world of kms-gateway:policy@{}; it exports: [{}]",
                super::WIT_VERSIONS.join(" or @"),
                exports.join(", ")
            )));
        };
        let imports: Vec<String> = ty.imports(&self.engine).map(|(n, _)| n.to_owned()).collect();
        // The shared `types` interface is imported for its types only (it
        // has no functions); WASI only from the allow-list.
        let uses_wasi = wasi::check_imports(&imports, &format!("kms-gateway:policy/types@{version}"))?;
        let linker = if uses_wasi { &self.wasi } else { &self.pure };
        let pre = linker.instantiate_pre(&component).map_err(invalid)?;
        let current = version == super::WIT_VERSIONS[0];
        let kind = match (hook, current) {
            (Hook::KeySelect, true) => Kind::KeySelect(key_select::KeySelectorPre::new(pre).map_err(invalid)?),
            (Hook::SseValidate, true) => Kind::SseValidate(sse_validate::SseValidatorPre::new(pre).map_err(invalid)?),
            (Hook::Rotation, true) => Kind::Rotation(rotation::RotationPolicyPre::new(pre).map_err(invalid)?),
            (Hook::KeySelect, false) => Kind::KeySelectV01(v0_1::key_select::KeySelectorPre::new(pre).map_err(invalid)?),
            (Hook::SseValidate, false) => Kind::SseValidateV01(v0_1::sse_validate::SseValidatorPre::new(pre).map_err(invalid)?),
            (Hook::Rotation, false) => Kind::RotationV01(v0_1::rotation::RotationPolicyPre::new(pre).map_err(invalid)?),
        };
        let prepared = Prepared { label: label.to_owned(), component, kind, wasi: uses_wasi };
        // Golden call: proves the signatures match and the guest answers.
        let golden = || match prepared.hook() {
            Hook::KeySelect => self.key_select(&prepared, &PolicyRequest::golden()).map(drop),
            Hook::SseValidate => self.sse_validate(&prepared, &PolicyRequest::golden()).map(drop),
            Hook::Rotation => self.rotation(&prepared, &KeyFacts::golden(), 0).map(drop),
        };
        // The very first call of a language runtime faults in tens of MB of
        // fresh code and can miss the deadline on a busy host; a component
        // that misses it twice is refused.
        let answered = match golden() {
            Err(PolicyError::Timeout(_)) => golden(),
            other => other,
        };
        answered.map_err(|e| PolicyError::Invalid(format!("the component failed its test call: {e}")))?;
        Ok(prepared)
    }

    fn memory_cap(&self, p: &Prepared) -> usize {
        if p.wasi { self.limits.runtime_memory_bytes } else { self.limits.memory_bytes }
    }

    fn store(&self, p: &Prepared) -> Store<CallState> {
        // A language runtime is a dozen core instances; a pure policy one or two.
        let instances = if p.wasi { 64 } else { 4 };
        let inner = StoreLimitsBuilder::new()
            .memory_size(self.memory_cap(p))
            .instances(instances)
            .tables(instances)
            .memories(4)
            .trap_on_grow_failure(true)
            .build();
        let limits = CallLimits { inner, memory_denied: false };
        let started = Instant::now();
        let deadline = started + self.limits.deadline;
        let mut store = Store::new(&self.engine, CallState { limits, wasi: None, started, deadline });
        store.limiter(|s| &mut s.limits);
        // Epochs tick every millisecond during calls; the deadline must be
        // set on every store (it defaults to 0: an immediate interrupt).
        store.set_epoch_deadline(self.limits.deadline.as_millis().max(1) as u64);
        store
    }

    /// Run one call in a fresh store: instantiate, call, log what a WASI
    /// guest printed, map traps.
    fn call<R>(&self, p: &Prepared, f: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<R>) -> Result<R, PolicyError> {
        // A pure policy answers in microseconds, inline. A language runtime
        // takes milliseconds: tell tokio, so this worker's other tasks move.
        let multi_thread = || {
            tokio::runtime::Handle::try_current().is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        };
        if p.wasi && multi_thread() { tokio::task::block_in_place(|| self.call_here(p, f)) } else { self.call_here(p, f) }
    }

    fn call_here<R>(&self, p: &Prepared, f: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<R>) -> Result<R, PolicyError> {
        let started = Instant::now();
        let _ticking = self.ticker.enter();
        let mut store = self.store(p);
        let out = f(&mut store).map_err(|e| self.trap(p, started, e, store.data().limits.memory_denied));
        // Only a guest that used WASI can have printed.
        if let Some(w) = &store.data().wasi {
            w.log_output(&p.label);
        }
        out
    }

    fn trap(&self, p: &Prepared, started: Instant, e: wasmtime::Error, memory_denied: bool) -> PolicyError {
        // With `trap_on_grow_failure`, a refused growth ends the call.
        if memory_denied {
            return PolicyError::Limit(format!("memory cap of {} bytes", self.memory_cap(p)));
        }
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => PolicyError::Timeout(started.elapsed()),
            Some(t) => PolicyError::Trap(t.to_string()),
            None => PolicyError::Trap(e.root_cause().to_string().chars().take(300).collect()),
        }
    }

    fn check_output(&self, bytes: usize) -> Result<(), PolicyError> {
        if bytes > self.limits.output_bytes {
            return Err(PolicyError::Limit(format!("answer of {bytes} bytes exceeds {} bytes", self.limits.output_bytes)));
        }
        Ok(())
    }

    pub fn key_select(&self, p: &Prepared, req: &PolicyRequest) -> Result<KeyDecision, PolicyError> {
        let d: KeyDecision = match &p.kind {
            Kind::KeySelect(pre) => self
                .call(p, |store| {
                    pre.instantiate(&mut *store)?.kms_gateway_policy_key_select().call_select(store, &key_select::request(req))
                })?
                .into(),
            Kind::KeySelectV01(pre) => self
                .call(p, |store| {
                    let r = v0_1::key_select::request(req);
                    pre.instantiate(&mut *store)?.kms_gateway_policy_key_select().call_select(store, &r)
                })?
                .into(),
            _ => return Err(PolicyError::WrongHook(p.hook(), Hook::KeySelect)),
        };
        self.check_output(d.output_bytes())?;
        Ok(d)
    }

    pub fn sse_validate(&self, p: &Prepared, req: &PolicyRequest) -> Result<Verdict, PolicyError> {
        let v: Verdict = match &p.kind {
            Kind::SseValidate(pre) => self
                .call(p, |store| {
                    let r = sse_validate::request(req);
                    pre.instantiate(&mut *store)?.kms_gateway_policy_sse_validate().call_validate(store, &r)
                })?
                .into(),
            Kind::SseValidateV01(pre) => self
                .call(p, |store| {
                    let r = v0_1::sse_validate::request(req);
                    pre.instantiate(&mut *store)?.kms_gateway_policy_sse_validate().call_validate(store, &r)
                })?
                .into(),
            _ => return Err(PolicyError::WrongHook(p.hook(), Hook::SseValidate)),
        };
        self.check_output(v.output_bytes())?;
        Ok(v)
    }

    pub fn rotation(&self, p: &Prepared, facts: &KeyFacts, now: u64) -> Result<RotationAdvice, PolicyError> {
        let a: RotationAdvice = match &p.kind {
            Kind::Rotation(pre) => self
                .call(p, |store| {
                    pre.instantiate(&mut *store)?.kms_gateway_policy_rotation().call_check(store, &rotation::facts(facts), now)
                })?
                .into(),
            Kind::RotationV01(pre) => self
                .call(p, |store| {
                    let f = v0_1::rotation::facts(facts);
                    pre.instantiate(&mut *store)?.kms_gateway_policy_rotation().call_check(store, &f, now)
                })?
                .into(),
            _ => return Err(PolicyError::WrongHook(p.hook(), Hook::Rotation)),
        };
        self.check_output(a.output_bytes())?;
        Ok(a)
    }
}
