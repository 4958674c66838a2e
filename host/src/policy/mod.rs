//! WebAssembly policies: operators decide which key encrypts which object,
//! which SSE requests are acceptable, and when keys rotate, by loading
//! components that implement the WIT contract in `wit/policy.wit`.
//!
//! - [`types`]: host-side request/decision types and the [`Hook`]s.
//! - [`bindings`]: generated bindings of the three worlds.
//! - [`engine`]: the wasmtime sandbox (pooled instances, fresh store per
//!   call, epoch deadline, memory cap, bounded output, golden call at load).
//! - [`wasi`]: the empty WASI context and import allow-list for policies
//!   whose language runtime imports WASI.
//! - [`registry`]: loaded policies and scoped bindings, swapped atomically
//!   and persisted.
//! - [`kit`]: the authors' test kit (offline check, fixture runs).
//!
//! This module knows nothing of the KMS or S3: callers translate.

pub mod bindings;
pub mod engine;
pub mod kit;
pub mod registry;
pub mod types;
pub mod wasi;

pub use types::Hook;

/// The WIT package version this gateway implements.
pub const WIT_VERSION: &str = "0.2.0";
/// Every version a component may implement, newest first: 0.1.0 policies
/// keep loading (requests without the identity, writes only).
pub const WIT_VERSIONS: [&str; 2] = ["0.2.0", "0.1.0"];

/// Why a policy could not be loaded or did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid policy: {0}")]
    Invalid(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("policy of {0} bytes exceeds the limit of {1} bytes")]
    TooLarge(usize, usize),
    #[error("no such policy: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("policy implements {0:?}, not {1:?}")]
    WrongHook(Hook, Hook),
    #[error("policy trapped: {0}")]
    Trap(String),
    #[error("policy exceeded its deadline ({0:?})")]
    Timeout(std::time::Duration),
    #[error("policy exceeded a limit: {0}")]
    Limit(String),
    /// The engine failed, not the policy (linker, compiler, ticker).
    #[error("policy engine: {what}: {source}")]
    Engine { what: &'static str, source: Cause },
    /// Policy files or the state store could not be read or written.
    #[error("policy storage: {what}: {source}")]
    Storage { what: String, source: Cause },
    /// The KMS could not answer a rotation pass.
    #[error("rotation pass: {0}")]
    Kms(#[from] crate::kms::KmsError),
}

/// The underlying error of an engine or storage failure, kept as the source.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl PolicyError {
    pub fn engine(what: &'static str, e: impl Into<Cause>) -> Self {
        Self::Engine { what, source: e.into() }
    }

    pub fn storage(what: impl std::fmt::Display, e: impl Into<Cause>) -> Self {
        Self::Storage { what: what.to_string(), source: e.into() }
    }
}

/// A store too busy to take a change is a conflict to retry; anything
/// else is storage trouble.
impl From<crate::state::StateError> for PolicyError {
    fn from(e: crate::state::StateError) -> Self {
        match e {
            crate::state::StateError::Contended(what) => Self::Conflict(format!("{what} is changing too often; try again")),
            other => Self::storage("policy state", other),
        }
    }
}

impl PolicyError {
    /// Short class for metrics.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Trap(_) => "trap",
            Self::Timeout(_) => "timeout",
            Self::Limit(_) => "limit",
            _ => "error",
        }
    }
}
