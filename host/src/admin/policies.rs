//! The policy endpoints: upload, list, describe, delete, bind, unbind,
//! evaluate (dry run), and an on-demand rotation pass.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::actions::PolicyAction;
use super::dto::parse;
use super::error::ApiError;
use super::{AdminCall, Reply};
use crate::policy::registry::{Binding, MAX_COMPONENT_BYTES, PolicyInfo, PolicyRegistry, UploadReport};
use crate::policy::types::{Hook, KeyDecision, KeyFacts, PolicyRequest, RotationAdvice, Verdict};
use crate::policy::{PolicyError, WIT_VERSION};
use crate::rotation::RotationResult;
use crate::rotation::RotationScheduler;

/// Request bodies may carry a component (base64 adds a third).
pub const MAX_BODY: usize = MAX_COMPONENT_BYTES * 4 / 3 + (64 << 10);
const RESERVED: &[&str] = &["bind", "unbind", "bindings", "rotation"];

pub struct PolicyAdmin {
    pub registry: Arc<PolicyRegistry>,
    pub rotation: Arc<RotationScheduler>,
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        let msg = e.to_string();
        match e {
            PolicyError::Invalid(_) | PolicyError::BadRequest(_) | PolicyError::WrongHook(..) => {
                Self::new(StatusCode::BAD_REQUEST, "InvalidPolicy", msg)
            }
            PolicyError::TooLarge(..) => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "EntityTooLarge", msg),
            PolicyError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "PolicyNotFound", msg),
            PolicyError::Conflict(_) => Self::new(StatusCode::CONFLICT, "PolicyConflict", msg),
            PolicyError::Trap(_) | PolicyError::Timeout(_) | PolicyError::Limit(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "PolicyFailed", msg)
            }
            PolicyError::Kms(e) => e.into(),
            PolicyError::Engine { .. } | PolicyError::Storage { .. } => {
                tracing::error!(error = %msg, "policy engine failure");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", msg)
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadJson {
    wasm_base64: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unbind {
    hook: Hook,
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    /// The shadow binding of that scope, not the live one.
    #[serde(default)]
    shadow: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Evaluate {
    #[serde(default)]
    request: Option<PolicyRequest>,
    #[serde(default)]
    key: Option<KeyFacts>,
    #[serde(default)]
    now: Option<u64>,
}

impl PolicyAdmin {
    pub async fn handle(&self, action: PolicyAction, call: &AdminCall) -> Result<Reply, ApiError> {
        let name = call.rest.trim_matches('/').trim_end_matches("/evaluate").to_owned();
        match action {
            PolicyAction::List => {
                let snap = self.registry.snapshot();
                let mut policies: Vec<&PolicyInfo> = snap.policies.values().map(|p| &p.info).collect();
                policies.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(Reply::json(PolicyList { generation: snap.generation, wit: WIT_VERSION, policies, bindings: &snap.bindings }))
            }
            PolicyAction::Bindings => {
                let snap = self.registry.snapshot();
                Ok(Reply::json(BindingList { generation: snap.generation, bindings: &snap.bindings }))
            }
            PolicyAction::Get => {
                let snap = self.registry.snapshot();
                let p = snap.policies.get(&name).ok_or_else(|| PolicyError::NotFound(name.clone()))?;
                let bindings = snap.bindings.iter().filter(|b| b.policy == name).collect();
                Ok(Reply::json(PolicyDetail { policy: &p.info, bindings }))
            }
            PolicyAction::Upload => {
                if RESERVED.contains(&name.as_str()) {
                    return Err(ApiError::bad_request(format!("'{name}' is a reserved name")));
                }
                let wasm = if call.content_type.as_deref().is_some_and(|c| c.starts_with("application/json")) {
                    let j: UploadJson = parse(&call.body)?;
                    B64.decode(j.wasm_base64.trim()).map_err(|_| ApiError::bad_request("field `wasm_base64` is not base64"))?
                } else {
                    call.body.to_vec()
                };
                let (info, report) = self.registry.upload(&name, wasm).await?;
                Ok(Reply::json(Uploaded { success: true, policy: info, report }))
            }
            PolicyAction::Delete => {
                self.registry.delete(&name).await?;
                Ok(Reply::json(Deleted { success: true, message: format!("policy '{name}' deleted") }))
            }
            PolicyAction::Bind => {
                let b: Binding = parse(&call.body)?;
                let generation = self.registry.bind(b.clone()).await?;
                Ok(Reply::json(Bound { success: true, binding: b, generation }))
            }
            PolicyAction::Unbind => {
                let u: Unbind = parse(&call.body)?;
                let generation = self.registry.unbind(u.hook, u.bucket, u.prefix, u.shadow).await?;
                Ok(Reply::json(Unbound { success: true, generation }))
            }
            PolicyAction::Evaluate => self.evaluate(&name, call),
            PolicyAction::RotationRun => {
                let results = self.rotation.run_once().await.map_err(ApiError::from)?;
                Ok(Reply::json(RotationRan { success: true, results }))
            }
        }
    }

    /// Dry run: the policy's answer to a sample, and how long it took
    /// (fresh instance included), without touching any object or key.
    fn evaluate(&self, name: &str, call: &AdminCall) -> Result<Reply, ApiError> {
        let e: Evaluate = parse(&call.body)?;
        let snap = self.registry.snapshot();
        let p = snap.policies.get(name).ok_or_else(|| PolicyError::NotFound(name.to_owned()))?;
        let engine = self.registry.engine();
        let started = Instant::now();
        let answer = match p.prepared.hook() {
            Hook::KeySelect => Answer::Key(engine.key_select(&p.prepared, &e.request.unwrap_or_else(PolicyRequest::golden))?),
            Hook::SseValidate => {
                Answer::Verdict(engine.sse_validate(&p.prepared, &e.request.unwrap_or_else(PolicyRequest::golden))?)
            }
            Hook::Rotation => {
                let now = e.now.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
                Answer::Rotation(engine.rotation(&p.prepared, &e.key.unwrap_or_else(KeyFacts::golden), now)?)
            }
        };
        let elapsed_us = started.elapsed().as_secs_f64() * 1e6;
        Ok(Reply::json(Evaluation { policy: name, hook: p.info.hook, result: answer, elapsed_us }))
    }
}

#[derive(Serialize)]
struct PolicyList<'a> {
    generation: u64,
    wit: &'static str,
    policies: Vec<&'a PolicyInfo>,
    bindings: &'a [Binding],
}

#[derive(Serialize)]
struct BindingList<'a> {
    generation: u64,
    bindings: &'a [Binding],
}

#[derive(Serialize)]
struct PolicyDetail<'a> {
    policy: &'a PolicyInfo,
    bindings: Vec<&'a Binding>,
}

#[derive(Serialize)]
struct Uploaded {
    success: bool,
    policy: PolicyInfo,
    report: UploadReport,
}

#[derive(Serialize)]
struct Deleted {
    success: bool,
    message: String,
}

#[derive(Serialize)]
struct Bound {
    success: bool,
    binding: Binding,
    generation: u64,
}

#[derive(Serialize)]
struct Unbound {
    success: bool,
    generation: u64,
}

#[derive(Serialize)]
struct RotationRan {
    success: bool,
    results: Vec<RotationResult>,
}

/// A dry run's answer, in the shape of the hook that gave it.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Key(KeyDecision),
    Verdict(Verdict),
    Rotation(RotationAdvice),
}

#[derive(Serialize)]
struct Evaluation<'a> {
    policy: &'a str,
    hook: Hook,
    result: Answer,
    elapsed_us: f64,
}
