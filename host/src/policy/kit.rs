//! The policy test kit, for policy authors: run a component offline (no
//! gateway, no credentials) against fixture cases and compare its answers
//! with the expected ones (`kms-gateway policy test`), and say what the
//! upload endpoint would say of it (`kms-gateway policy check`).
//!
//! A fixture file is JSON: `{"cases": [{"name", "request" | "key" + "now",
//! "expect"}]}`. `request` and `key` have the shapes of the evaluate
//! endpoint; `expect` is the expected answer or a part of it (every field
//! it gives must match), or `{"error": "timeout" | "trap" | "limit"}` for a
//! call that must fail.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::PolicyError;
use super::engine::{Limits, PolicyEngine, Prepared};
use super::types::{Hook, KeyFacts, PolicyRequest};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    #[serde(default)]
    pub description: Option<String>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// For key-select and sse-validate policies.
    #[serde(default)]
    pub request: Option<PolicyRequest>,
    /// For rotation policies, with `now` (Unix seconds).
    #[serde(default)]
    pub key: Option<KeyFacts>,
    #[serde(default)]
    pub now: Option<u64>,
    pub expect: Value,
}

/// One case's outcome.
#[derive(Debug, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// The answer (or `{"error", "message"}`), as JSON.
    pub got: Value,
    /// Wall-clock time of the call, fresh instance included.
    pub micros: f64,
}

/// What the upload endpoint would say of a component.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub hook: Hook,
    pub world: String,
    pub size: usize,
    pub imports_wasi: bool,
    pub compile_ms: f64,
    pub limits: LimitsReport,
    /// Its answer to the sample input every component must answer.
    pub golden_answer: Value,
}

#[derive(Debug, Serialize)]
pub struct LimitsReport {
    pub deadline_ms: u128,
    pub memory_mib: usize,
    pub output_kib: usize,
}

/// Compile and validate `wasm` as an upload would.
pub fn check(engine: &PolicyEngine, limits: &Limits, wasm: &[u8]) -> Result<(Prepared, CheckReport), PolicyError> {
    let started = Instant::now();
    let p = engine.prepare("policy-under-test", wasm)?;
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let hook = p.hook();
    let golden = Case {
        name: "golden".into(),
        request: Some(PolicyRequest::golden()),
        key: Some(KeyFacts::golden()),
        now: Some(PolicyRequest::golden().now),
        expect: Value::Null,
    };
    let golden_answer = answer(engine, &p, &golden)?;
    let memory = if p.uses_wasi() { limits.runtime_memory_bytes } else { limits.memory_bytes };
    let report = CheckReport {
        hook,
        world: format!("kms-gateway:policy/{}@{}", hook.world(), p.version()),
        size: wasm.len(),
        imports_wasi: p.uses_wasi(),
        compile_ms,
        limits: LimitsReport {
            deadline_ms: limits.deadline.as_millis(),
            memory_mib: memory >> 20,
            output_kib: limits.output_bytes >> 10,
        },
        golden_answer,
    };
    Ok((p, report))
}

/// Run every case; a case whose input does not fit the policy's hook fails
/// with a message saying so.
pub fn run(engine: &PolicyEngine, p: &Prepared, fixtures: &Fixtures) -> Vec<CaseResult> {
    fixtures
        .cases
        .iter()
        .map(|case| {
            let started = Instant::now();
            let got = match answer(engine, p, case) {
                Ok(v) => v,
                Err(PolicyError::BadRequest(m)) => json!({ "error": "fixture", "message": m }),
                Err(e) => json!({ "error": e.class(), "message": e.to_string() }),
            };
            let micros = started.elapsed().as_secs_f64() * 1e6;
            CaseResult { name: case.name.clone(), passed: matches(&case.expect, &got), got, micros }
        })
        .collect()
}

fn answer(engine: &PolicyEngine, p: &Prepared, case: &Case) -> Result<Value, PolicyError> {
    let missing =
        |what: &str| PolicyError::BadRequest(format!("case '{}' needs `{what}` for a {} policy", case.name, p.hook().name()));
    let v = match p.hook() {
        Hook::KeySelect => serde_json::to_value(engine.key_select(p, case.request.as_ref().ok_or_else(|| missing("request"))?)?),
        Hook::SseValidate => {
            serde_json::to_value(engine.sse_validate(p, case.request.as_ref().ok_or_else(|| missing("request"))?)?)
        }
        Hook::Rotation => {
            let key = case.key.as_ref().ok_or_else(|| missing("key"))?;
            serde_json::to_value(engine.rotation(p, key, case.now.ok_or_else(|| missing("now"))?)?)
        }
    };
    // The answers are plain data: serializing them cannot fail.
    Ok(v.unwrap_or(Value::Null))
}

/// `expect` matches `got` when every field it gives matches (recursively);
/// arrays and scalars must be equal.
pub fn matches(expect: &Value, got: &Value) -> bool {
    match (expect, got) {
        (Value::Object(e), Value::Object(g)) => e.iter().all(|(k, ev)| g.get(k).is_some_and(|gv| matches(ev, gv))),
        _ => expect == got,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_match_by_the_fields_they_give() {
        let got = json!({ "decision": "select", "mode": "sse-kms", "key_id": "k", "extra_context": [["a", "b"]] });
        assert!(matches(&json!({ "decision": "select" }), &got));
        assert!(matches(&json!({ "decision": "select", "key_id": "k" }), &got));
        assert!(!matches(&json!({ "decision": "select", "key_id": "other" }), &got));
        assert!(!matches(&json!({ "decision": "keep" }), &got));
        assert!(!matches(&json!({ "extra_context": [] }), &got));
        assert!(!matches(&json!({ "missing": null }), &got));
        assert!(matches(&json!({ "error": "timeout" }), &json!({ "error": "timeout", "message": "…" })));
    }

    #[test]
    fn fixtures_refuse_unknown_fields() {
        let ok: Fixtures = serde_json::from_str(r#"{"cases": [{"name": "n", "expect": {"decision": "keep"}}]}"#).unwrap();
        assert_eq!(ok.cases.len(), 1);
        assert!(serde_json::from_str::<Fixtures>(r#"{"cases": [{"name": "n", "expected": {}}]}"#).is_err());
    }
}
