//! WASI for policies written in languages whose runtime imports it
//! (componentize-py, componentize-js, TinyGo, …).
//!
//! Such a component gets `wasi:*@0.2` from `wasmtime-wasi` with an empty
//! context: no preopened directories (so no files), no environment, no
//! arguments, stdin closed, no network (the socket interfaces are linked,
//! because language runtimes import them, but creating a TCP or UDP socket
//! and resolving a name are all denied),
//! and stdout/stderr captured into a small buffer that the host logs after
//! the call. Clocks and randomness are the host's: a runtime needs them to
//! start, and a policy must still take `now` from its input to be
//! deterministic. Imports outside [`ALLOWED`] are refused at upload.
//!
//! Waiting is bounded by the call's deadline. The epoch interrupt stops
//! guest code, not a host call: a guest that subscribed to the clock for
//! an hour and polled would hold its thread (and its request) that long.
//! So the clock's subscriptions are the gateway's: a wait that ends before
//! the deadline sleeps, one that would end after it traps as a timeout at
//! once.

use std::time::{Duration, Instant};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynPollable, Pollable};
use wasmtime_wasi::{HostMonotonicClock, WasiCtx, WasiCtxView, WasiView};

use super::PolicyError;

/// Interface namespaces a policy may import (any 0.2.x version); HTTP and
/// everything else are refused at upload.
pub const ALLOWED: &[&str] = &["wasi:io/", "wasi:cli/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/", "wasi:sockets/"];

/// Bytes of stdout and of stderr kept per call; a guest that writes more
/// sees its stream closed.
const CAPTURE_BYTES: usize = 8 << 10;

/// Check a component's imports against the allow-list. `own` is the
/// gateway's own (type-only) interface, always allowed.
pub fn check_imports(imports: &[String], own: &str) -> Result<bool, PolicyError> {
    let foreign: Vec<&String> = imports.iter().filter(|n| n.as_str() != own).collect();
    let refused: Vec<&str> = foreign
        .iter()
        .filter(|n| !(ALLOWED.iter().any(|p| n.starts_with(p)) && n.contains("@0.2.")))
        .map(|n| n.as_str())
        .collect();
    if !refused.is_empty() {
        return Err(PolicyError::Invalid(format!(
            "policies may import only WASI 0.2 interfaces of {} (served with an empty context); this component also imports: {}",
            ALLOWED.iter().map(|p| p.trim_end_matches('/')).collect::<Vec<_>>().join(", "),
            refused.join(", ")
        )));
    }
    Ok(!foreign.is_empty())
}

/// The monotonic clock's interface as wasmtime-wasi serves it; the
/// hostile-guest tests fail if an upgrade moves it.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// What the clock's subscriptions need of a call.
pub trait CallClock {
    /// The guest's monotonic now (ns), and the time left before the deadline.
    fn now_and_left(&mut self) -> (u64, Duration);
}

/// A linker serving the allowed WASI interfaces, with the clock's
/// subscriptions bounded by the call's deadline.
pub fn linker<T: WasiView + CallClock + 'static>(engine: &wasmtime::Engine) -> Result<Linker<T>, PolicyError> {
    let mut linker = Linker::new(engine);
    let err = |e| PolicyError::engine("WASI linker", e);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(err)?;
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK).map_err(err)?;
    clock
        .func_wrap("subscribe-duration", |mut store: StoreContextMut<'_, T>, (ns,): (u64,)| {
            let (_, left) = store.data_mut().now_and_left();
            subscribe_within(store.data_mut(), Duration::from_nanos(ns), left)
        })
        .map_err(err)?;
    clock
        .func_wrap("subscribe-instant", |mut store: StoreContextMut<'_, T>, (when,): (u64,)| {
            let (now, left) = store.data_mut().now_and_left();
            subscribe_within(store.data_mut(), Duration::from_nanos(when.saturating_sub(now)), left)
        })
        .map_err(err)?;
    linker.allow_shadowing(false);
    Ok(linker)
}

/// A pollable ready after `wait`, or a timeout now if that is past the
/// deadline.
fn subscribe_within<T: WasiView>(state: &mut T, wait: Duration, left: Duration) -> wasmtime::Result<(Resource<DynPollable>,)> {
    if wait > left {
        return Err(wasmtime::Trap::Interrupt.into());
    }
    let table = state.ctx().table;
    let sleep = table.push(Sleep(tokio::time::Instant::now() + wait))?;
    Ok((wasmtime_wasi::p2::subscribe(table, sleep)?,))
}

struct Sleep(tokio::time::Instant);

#[async_trait::async_trait]
impl Pollable for Sleep {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.0).await;
    }
}

/// The guest's monotonic clock: nanoseconds since the call began.
struct Since(Instant);

impl HostMonotonicClock for Since {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The WASI state of one call.
pub struct CallWasi {
    ctx: WasiCtx,
    table: ResourceTable,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    started: Instant,
}

impl CallWasi {
    /// A context for a call that began at `started`.
    pub fn new(started: Instant) -> Self {
        let (stdout, stderr) = (MemoryOutputPipe::new(CAPTURE_BYTES), MemoryOutputPipe::new(CAPTURE_BYTES));
        let ctx = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .monotonic_clock(Since(started))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self { ctx, table: ResourceTable::new(), stdout, stderr, started }
    }

    /// The guest's monotonic now, as its clock tells it.
    pub fn now(&self) -> u64 {
        Since(self.started).now()
    }

    pub fn view(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }

    /// Log what the guest printed (lossy UTF-8, bounded by the capture size).
    pub fn log_output(&self, policy: &str) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            if !bytes.is_empty() {
                let text = String::from_utf8_lossy(&bytes);
                tracing::info!(policy = %policy, stream, output = %text.trim_end(), "policy output");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "kms-gateway:policy/types@0.1.0";

    #[test]
    fn pure_components_need_no_wasi() {
        assert!(!check_imports(&[OWN.to_owned()], OWN).unwrap());
        assert!(!check_imports(&[], OWN).unwrap());
    }

    #[test]
    fn allowed_wasi_is_accepted() {
        let imports =
            ["wasi:io/streams@0.2.6", "wasi:cli/stdout@0.2.0", "wasi:random/random@0.2.3", "wasi:sockets/tcp@0.2.9", OWN];
        assert!(check_imports(&imports.map(String::from), OWN).unwrap());
    }

    #[test]
    fn network_and_unknown_imports_are_refused() {
        for bad in
            ["wasi:http/outgoing-handler@0.2.0", "wasi:keyvalue/store@0.2.0", "acme:evil/steal@1.0.0", "wasi:io/streams@0.3.0"]
        {
            let imports = vec!["wasi:io/streams@0.2.6".to_owned(), bad.to_owned()];
            let err = check_imports(&imports, OWN).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
            assert!(!err.contains("wasi:io/streams@0.2.6"), "allowed imports are not listed: {err}");
        }
    }
}
