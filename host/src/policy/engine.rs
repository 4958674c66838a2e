//! The sandbox: one wasmtime engine (component model, pooling allocator,
//! epoch deadlines), compiling and validating components, and running one
//! hook call in a fresh store per decision.
//!
//! Every call gets its own `Store` (no state survives between requests or
//! tenants), a memory cap, an instance cap and a deadline; a trap, a
//! timeout, a limit hit or an oversized answer is a [`PolicyError`], never
//! a crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder};

use super::PolicyError;
use super::bindings::{key_select, rotation, sse_validate};
use super::types::{Hook, KeyDecision, KeyFacts, PolicyRequest, RotationAdvice, Verdict};

/// Limits of one policy call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock budget of one call (epoch ticks of 1 ms).
    pub deadline: Duration,
    /// Linear memory of one instance.
    pub memory_bytes: usize,
    /// Largest answer (sum of its strings).
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { deadline: Duration::from_millis(50), memory_bytes: 16 << 20, output_bytes: 64 << 10 }
    }
}

/// Per-call store data.
pub struct CallState {
    limits: StoreLimits,
}

/// A compiled, validated component, ready to instantiate per call.
pub enum Prepared {
    KeySelect(key_select::KeySelectorPre<CallState>),
    SseValidate(sse_validate::SseValidatorPre<CallState>),
    Rotation(rotation::RotationPolicyPre<CallState>),
}

impl Prepared {
    pub fn hook(&self) -> Hook {
        match self {
            Self::KeySelect(_) => Hook::KeySelect,
            Self::SseValidate(_) => Hook::SseValidate,
            Self::Rotation(_) => Hook::Rotation,
        }
    }
}

/// The wasmtime engine and its epoch ticker.
pub struct PolicyEngine {
    engine: Engine,
    limits: Limits,
    stop: Arc<AtomicBool>,
}

impl Drop for PolicyEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
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
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                    e.increment_epoch();
                }
            })
            .map_err(|e| PolicyError::Engine(format!("epoch ticker: {e}")))?;
        Ok(Self { engine, limits, stop })
    }

    fn engine(limits: Limits, pooling: bool) -> Result<Engine, PolicyError> {
        let mut cfg = Config::new();
        cfg.epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .concurrency_support(false)
            .parallel_compilation(true)
            // Small reservations: policies are tiny, and the pool reserves
            // address space for every slot.
            .memory_reservation(limits.memory_bytes as u64)
            .memory_guard_size(64 << 10)
            .memory_reservation_for_growth(0);
        if pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(MAX_CONCURRENT_CALLS)
                .total_core_instances(MAX_CONCURRENT_CALLS * 2)
                .total_memories(MAX_CONCURRENT_CALLS * 2)
                .total_tables(MAX_CONCURRENT_CALLS * 2)
                .max_memory_size(limits.memory_bytes)
                .linear_memory_keep_resident(256 << 10);
            cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        Engine::new(&cfg).map_err(|e| PolicyError::Engine(e.to_string()))
    }

    /// Compile and validate: a component, importing nothing, exporting
    /// one of the three worlds at the supported version, answering a
    /// golden request (export signatures are only checked at instantiate).
    pub fn prepare(&self, wasm: &[u8]) -> Result<Prepared, PolicyError> {
        let component =
            Component::new(&self.engine, wasm).map_err(|e| PolicyError::Invalid(format!("not a valid component: {e:#}")))?;
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_owned()).collect();
        let linker = Linker::<CallState>::new(&self.engine);
        let pre = linker.instantiate_pre(&component).map_err(|e| PolicyError::Invalid(format!("{e:#}")))?;
        let prepared = if exports.iter().any(|e| e == Hook::KeySelect.export_name()) {
            Prepared::KeySelect(key_select::KeySelectorPre::new(pre).map_err(|e| PolicyError::Invalid(format!("{e:#}")))?)
        } else if exports.iter().any(|e| e == Hook::SseValidate.export_name()) {
            Prepared::SseValidate(sse_validate::SseValidatorPre::new(pre).map_err(|e| PolicyError::Invalid(format!("{e:#}")))?)
        } else if exports.iter().any(|e| e == Hook::Rotation.export_name()) {
            Prepared::Rotation(rotation::RotationPolicyPre::new(pre).map_err(|e| PolicyError::Invalid(format!("{e:#}")))?)
        } else {
            return Err(PolicyError::Invalid(format!(
                "the component implements no world of kms-gateway:policy@{}; it exports: [{}]",
                super::WIT_VERSION,
                exports.join(", ")
            )));
        };
        // The shared `types` interface is imported for its types only
        // (it has no functions); anything else is refused.
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .filter(|n| *n != format!("kms-gateway:policy/types@{}", super::WIT_VERSION))
            .collect();
        if !imports.is_empty() {
            return Err(PolicyError::Invalid(format!(
                "policies may not import anything (hooks are pure functions); this component imports: {}",
                imports.join(", ")
            )));
        }
        // Golden call: proves the signatures match and the guest answers.
        let golden = match &prepared {
            Prepared::KeySelect(_) => self.key_select(&prepared, &PolicyRequest::golden()).map(drop),
            Prepared::SseValidate(_) => self.sse_validate(&prepared, &PolicyRequest::golden()).map(drop),
            Prepared::Rotation(_) => self.rotation(&prepared, &KeyFacts::golden(), 0).map(drop),
        };
        golden.map_err(|e| PolicyError::Invalid(format!("the component failed its test call: {e}")))?;
        Ok(prepared)
    }

    fn store(&self) -> Store<CallState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .instances(4)
            .tables(4)
            .memories(4)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.engine, CallState { limits });
        store.limiter(|s| &mut s.limits);
        // Epochs tick every millisecond; the deadline must be set on every
        // store (it defaults to 0: an immediate interrupt).
        store.set_epoch_deadline(self.limits.deadline.as_millis().max(1) as u64);
        store
    }

    fn trap(&self, started: Instant, e: wasmtime::Error) -> PolicyError {
        let chain = format!("{e:#}");
        if chain.contains("growing memory") {
            return PolicyError::Limit(format!("memory cap of {} bytes", self.limits.memory_bytes));
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
        let Prepared::KeySelect(pre) = p else { return Err(PolicyError::WrongHook(p.hook(), Hook::KeySelect)) };
        let started = Instant::now();
        let mut store = self.store();
        let inst = pre.instantiate(&mut store).map_err(|e| self.trap(started, e))?;
        let out = inst
            .kms_gateway_policy_key_select()
            .call_select(&mut store, &key_select::request(req))
            .map_err(|e| self.trap(started, e))?;
        let d = KeyDecision::from(out);
        self.check_output(d.output_bytes())?;
        Ok(d)
    }

    pub fn sse_validate(&self, p: &Prepared, req: &PolicyRequest) -> Result<Verdict, PolicyError> {
        let Prepared::SseValidate(pre) = p else { return Err(PolicyError::WrongHook(p.hook(), Hook::SseValidate)) };
        let started = Instant::now();
        let mut store = self.store();
        let inst = pre.instantiate(&mut store).map_err(|e| self.trap(started, e))?;
        let out = inst
            .kms_gateway_policy_sse_validate()
            .call_validate(&mut store, &sse_validate::request(req))
            .map_err(|e| self.trap(started, e))?;
        let v = Verdict::from(out);
        self.check_output(v.output_bytes())?;
        Ok(v)
    }

    pub fn rotation(&self, p: &Prepared, facts: &KeyFacts, now: u64) -> Result<RotationAdvice, PolicyError> {
        let Prepared::Rotation(pre) = p else { return Err(PolicyError::WrongHook(p.hook(), Hook::Rotation)) };
        let started = Instant::now();
        let mut store = self.store();
        let inst = pre.instantiate(&mut store).map_err(|e| self.trap(started, e))?;
        let out = inst
            .kms_gateway_policy_rotation()
            .call_check(&mut store, &rotation::facts(facts), now)
            .map_err(|e| self.trap(started, e))?;
        let a = RotationAdvice::from(out);
        self.check_output(a.output_bytes())?;
        Ok(a)
    }
}
