//! Bucket policies that require encryption.
//!
//! The gateway consumes the SSE headers, so a store behind it never sees
//! them and cannot enforce a statement that conditions on them. The
//! gateway splits a bucket policy in two: the statements whose conditions
//! name an SSE condition key ([`SSE_KEYS`]) it evaluates itself, on every
//! write of an object; the others go to the store, which enforces them if
//! it enforces policies at all.
//!
//! Semantics follow AWS, evaluated by the `iam-rs` engine: a request's SSE
//! condition keys carry the headers the request sent (never the bucket's
//! default encryption, which AWS applies after the policy), so an upload
//! without headers has none of them; an explicit Deny that matches refuses
//! the request. Allow statements cannot restrict (the gateway's clients are
//! the bucket owner's identities, authorized without a bucket policy), so
//! only Deny statements change anything here.
//!
//! A request's principal is its access key id as a user of the gateway's
//! account, `arn:aws:iam::000000000000:user/<access key id>` (see
//! [`principal_arn`]); `"*"` names every principal.

use iam_rs::{Arn, Context, ContextValue, Decision, IAMPolicy, IAMRequest, PolicyEvaluator, Principal, PrincipalId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sse::SseRequest;

/// The SSE condition keys the gateway evaluates (lower case: AWS compares
/// condition key names without case).
pub const SSE_KEYS: [&str; 3] = [
    "s3:x-amz-server-side-encryption",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:x-amz-server-side-encryption-customer-algorithm",
];

/// Global keys the gateway also knows, and so accepts beside SSE keys.
const GATEWAY_KEYS: [&str; 1] = ["aws:securetransport"];

/// The account id in the gateway's principal ARNs.
pub const GATEWAY_ACCOUNT: &str = "000000000000";

/// AWS's limit on a bucket policy's size.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Why a policy document was refused (S3's `MalformedPolicy`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct MalformedPolicy(pub String);

fn malformed(msg: impl Into<String>) -> MalformedPolicy {
    MalformedPolicy(msg.into())
}

/// A write as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct WriteContext<'a> {
    /// The access key id the request was signed with (`None`: anonymous).
    pub principal: Option<&'a str>,
    pub bucket: &'a str,
    pub key: &'a str,
    /// The SSE headers the request sent (never a bucket default).
    pub sse: &'a SseConditions,
    /// The client connection was TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
}

/// The values of the SSE condition keys: the SSE headers a request sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SseConditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_algorithm: Option<String>,
}

impl From<&SseRequest> for SseConditions {
    fn from(sse: &SseRequest) -> Self {
        let mut c = Self::default();
        match sse {
            SseRequest::None => {}
            SseRequest::S3 => c.encryption = Some("AES256".into()),
            SseRequest::Kms { key_id, .. } => {
                c.encryption = Some("aws:kms".into());
                c.kms_key_id = key_id.clone();
            }
            SseRequest::Customer(_) => c.customer_algorithm = Some("AES256".into()),
        }
        c
    }
}

/// The outcome of evaluating the gateway's share of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// An explicit Deny matched (or the evaluation failed: fail closed).
    Denied,
}

/// A validated bucket policy, split between the gateway and the store.
/// Stored as its bucket and text, and validated again when read back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "StoredPolicy", into = "StoredPolicy")]
pub struct BucketPolicy {
    bucket: String,
    text: String,
    /// Statements the gateway evaluates (SSE condition keys), if any,
    /// ready to evaluate (built once, not per write).
    gateway: Option<PolicyEvaluator>,
    /// The document the store gets: the other statements, if any.
    upstream: Option<String>,
}

impl BucketPolicy {
    /// Validate `text` as the policy of `bucket`.
    pub fn parse(bucket: &str, text: &str) -> Result<Self, MalformedPolicy> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(malformed(format!("Policies must not exceed {MAX_POLICY_BYTES} bytes")));
        }
        let doc: Value = serde_json::from_str(text).map_err(|e| malformed(format!("This policy is not valid JSON: {e}")))?;
        let Value::Object(mut doc) = doc else { return Err(malformed("A policy must be a JSON object")) };
        let statements = match doc.remove("Statement") {
            Some(Value::Array(s)) if !s.is_empty() => s,
            Some(s @ Value::Object(_)) => vec![s],
            _ => return Err(malformed("Missing required field Statement")),
        };
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        for st in statements {
            let Value::Object(st) = st else { return Err(malformed("Each statement must be a JSON object")) };
            check_statement(bucket, &st)?;
            match sse_statement(&st)? {
                Some(normalised) => mine.push(Value::Object(normalised)),
                None => theirs.push(Value::Object(st)),
            }
        }
        let part = |statements: Vec<Value>| {
            let mut d = doc.clone();
            // AWS's default version when a document names none.
            d.entry("Version").or_insert_with(|| Value::from("2008-10-17"));
            d.insert("Statement".into(), Value::Array(statements));
            Value::Object(d)
        };
        let gateway = if mine.is_empty() {
            None
        } else {
            let v = part(mine).to_string();
            let policy = IAMPolicy::from_json(&v).map_err(|e| malformed(format!("Invalid policy: {e}")))?;
            Some(PolicyEvaluator::with_policies(vec![policy]))
        };
        let upstream = if theirs.is_empty() {
            None
        } else {
            let v = part(theirs).to_string();
            IAMPolicy::from_json(&v).map_err(|e| malformed(format!("Invalid policy: {e}")))?;
            Some(v)
        };
        Ok(Self { bucket: bucket.to_owned(), text: text.to_owned(), gateway, upstream })
    }

    /// The document as the client put it (what GetBucketPolicy returns).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The statements the store is to enforce, as a policy document.
    pub fn upstream_document(&self) -> Option<&str> {
        self.upstream.as_deref()
    }

    /// Whether any statement is the gateway's to evaluate.
    pub fn has_gateway_statements(&self) -> bool {
        self.gateway.is_some()
    }

    /// Evaluate a write of an object (`s3:PutObject`) against the
    /// gateway's statements.
    pub fn evaluate_write(&self, w: &WriteContext<'_>) -> Verdict {
        let Some(evaluator) = &self.gateway else { return Verdict::Allowed };
        let Ok(resource) = Arn::parse(&format!("arn:aws:s3:::{}/{}", w.bucket, w.key)) else {
            return Verdict::Denied;
        };
        let principal = Principal::Aws(PrincipalId::String(principal_arn(w.principal)));
        let request = IAMRequest::new_with_context(principal, "s3:PutObject", resource, context(w));
        match evaluator.evaluate(&request) {
            Ok(r) if r.decision == Decision::Deny => Verdict::Denied,
            Ok(_) => Verdict::Allowed,
            Err(_) => Verdict::Denied,
        }
    }
}

/// The principal a request is evaluated as: its access key id as an IAM
/// user of the gateway's account ([`GATEWAY_ACCOUNT`]).
pub fn principal_arn(access_key: Option<&str>) -> String {
    format!("arn:aws:iam::{GATEWAY_ACCOUNT}:user/{}", access_key.unwrap_or("anonymous"))
}

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    bucket: String,
    policy: String,
}

impl TryFrom<StoredPolicy> for BucketPolicy {
    type Error = MalformedPolicy;
    fn try_from(s: StoredPolicy) -> Result<Self, MalformedPolicy> {
        Self::parse(&s.bucket, &s.policy)
    }
}

impl From<BucketPolicy> for StoredPolicy {
    fn from(p: BucketPolicy) -> Self {
        Self { bucket: p.bucket, policy: p.text }
    }
}

/// The request context: SSE keys present only when their header was sent.
fn context(w: &WriteContext<'_>) -> Context {
    let mut ctx = Context::new();
    let values = [&w.sse.encryption, &w.sse.kms_key_id, &w.sse.customer_algorithm];
    for (key, value) in SSE_KEYS.iter().zip(values) {
        if let Some(v) = value {
            ctx.insert((*key).to_owned(), ContextValue::String(v.clone()));
        }
    }
    ctx.insert(GATEWAY_KEYS[0].to_owned(), ContextValue::Boolean(w.secure_transport));
    ctx
}

/// Rules AWS applies to every statement of a bucket policy.
fn check_statement(bucket: &str, st: &Map<String, Value>) -> Result<(), MalformedPolicy> {
    if !st.contains_key("Principal") && !st.contains_key("NotPrincipal") {
        return Err(malformed("Missing required field Principal"));
    }
    let resources =
        st.get("Resource").or_else(|| st.get("NotResource")).ok_or_else(|| malformed("Missing required field Resource"))?;
    let list = match resources {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => {
            a.iter().map(|v| v.as_str().ok_or_else(|| malformed("Policy has invalid resource"))).collect::<Result<_, _>>()?
        }
        _ => return Err(malformed("Policy has invalid resource")),
    };
    for r in list {
        let in_bucket = r.strip_prefix("arn:aws:s3:::").is_some_and(|rest| {
            let b = rest.split('/').next().unwrap_or(rest);
            b == bucket || b.contains(['*', '?'])
        });
        if !in_bucket {
            return Err(malformed("Policy has invalid resource"));
        }
    }
    Ok(())
}

/// If `st` conditions on an SSE key: the statement with its condition key
/// names in lower case (as the request context has them). Other keys in
/// such a statement cannot be evaluated by the gateway, so they are refused
/// rather than guessed.
fn sse_statement(st: &Map<String, Value>) -> Result<Option<Map<String, Value>>, MalformedPolicy> {
    let Some(cond) = st.get("Condition") else { return Ok(None) };
    let Value::Object(cond) = cond else { return Err(malformed("Condition must be a JSON object")) };
    let keys = || cond.values().filter_map(Value::as_object).flat_map(|m| m.keys());
    if !keys().any(|k| SSE_KEYS.contains(&k.to_ascii_lowercase().as_str())) {
        return Ok(None);
    }
    if let Some(other) = keys().find(|k| {
        let k = k.to_ascii_lowercase();
        !SSE_KEYS.contains(&k.as_str()) && !GATEWAY_KEYS.contains(&k.as_str())
    }) {
        return Err(malformed(format!(
            "The gateway evaluates statements on SSE condition keys itself and cannot evaluate '{other}' in the same statement: put it in a statement of its own"
        )));
    }
    // Allow statements too: they cannot restrict here, and the store must
    // not get conditions on headers it never sees.
    Ok(Some(lowercase_keys(st)))
}

fn lowercase_keys(st: &Map<String, Value>) -> Map<String, Value> {
    let mut out = st.clone();
    if let Some(Value::Object(cond)) = out.get_mut("Condition") {
        for ops in cond.values_mut() {
            if let Value::Object(m) = ops {
                *m = std::mem::take(m).into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "bucket_policy_tests.rs"]
mod tests;
