//! Host-side policy types: what the gateway passes to a hook and what it
//! gets back, independent of the generated bindings.

use crate::sse::SseMode;
use serde::{Deserialize, Serialize};

/// The three hooks (one WIT world each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    KeySelect,
    SseValidate,
    Rotation,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Self::KeySelect => "key-select",
            Self::SseValidate => "sse-validate",
            Self::Rotation => "rotation",
        }
    }

    pub fn world(self) -> &'static str {
        match self {
            Self::KeySelect => "key-selector",
            Self::SseValidate => "sse-validator",
            Self::Rotation => "rotation-policy",
        }
    }

    /// The component export that implements the hook at contract `version`.
    pub fn export_name(self, version: &str) -> String {
        format!("kms-gateway:policy/{}@{version}", self.name())
    }
}

/// SSE mode as policies see it (the WIT contract's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    None,
    SseS3,
    SseKms,
    SseC,
}

/// The policy contract's spelling of the gateway's modes ([`SseMode`];
/// `None`: no encryption).
impl From<Option<SseMode>> for Mode {
    fn from(m: Option<SseMode>) -> Self {
        match m {
            None => Self::None,
            Some(SseMode::S3) => Self::SseS3,
            Some(SseMode::Kms) => Self::SseKms,
            Some(SseMode::Customer) => Self::SseC,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketDefault {
    pub mode: Mode,
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

/// The identity that signed a request, as policies see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyIdentity {
    pub access_key: String,
    #[serde(default)]
    pub attributes: Vec<(String, String)>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One request, as passed to key-select and sse-validate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    pub operation: String,
    pub bucket: String,
    pub key: String,
    #[serde(default)]
    pub principal: Option<String>,
    /// The signer's attributes and groups (contract 0.2.0 and later).
    #[serde(default)]
    pub identity: Option<PolicyIdentity>,
    #[serde(default)]
    pub source_ip: Option<String>,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    pub requested_mode: Mode,
    #[serde(default)]
    pub requested_key_id: Option<String>,
    #[serde(default)]
    pub encryption_context: Vec<(String, String)>,
    #[serde(default)]
    pub bucket_default: Option<BucketDefault>,
    #[serde(default)]
    pub now: u64,
}

impl PolicyRequest {
    /// A read of an encrypted object (contract 0.2.0 asks sse-validate).
    pub fn operation_is_read(&self) -> bool {
        matches!(self.operation.as_str(), "GetObject" | "HeadObject" | "GetObjectAttributes" | "CopySource")
    }

    /// The request every component must answer at upload.
    pub fn golden() -> Self {
        Self {
            operation: "PutObject".into(),
            bucket: "golden-bucket".into(),
            key: "tenant/golden/object".into(),
            principal: Some("GOLDENACCESSKEY".into()),
            identity: Some(PolicyIdentity {
                access_key: "GOLDENACCESSKEY".into(),
                attributes: vec![("tenant".into(), "golden".into())],
                groups: vec!["golden-group".into()],
            }),
            source_ip: Some("127.0.0.1".into()),
            headers: vec![("content-type".into(), "application/octet-stream".into())],
            requested_mode: Mode::SseKms,
            requested_key_id: Some("golden-key".into()),
            encryption_context: vec![("app".into(), "golden".into())],
            bucket_default: Some(BucketDefault { mode: Mode::SseS3, kms_key_id: None }),
            now: 1_767_225_600,
        }
    }
}

/// An S3 error chosen by a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyS3Error {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "decision")]
pub enum KeyDecision {
    Keep,
    Select { mode: Mode, key_id: Option<String>, extra_context: Vec<(String, String)> },
    Deny(PolicyS3Error),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum Verdict {
    Accept,
    Reject(PolicyS3Error),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "advice")]
pub enum RotationAdvice {
    Rotate { reason: String },
    Later { next_check: u64, reason: String },
}

/// What a rotation policy is told about a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFacts {
    pub key_id: String,
    pub backend: String,
    pub version: u32,
    pub created_at: u64,
    #[serde(default)]
    pub rotated_at: Option<u64>,
    pub state: String,
    #[serde(default)]
    pub data_keys_issued: u64,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

impl KeyFacts {
    pub fn golden() -> Self {
        Self {
            key_id: "golden-key".into(),
            backend: "local".into(),
            version: 1,
            created_at: 1_767_225_600,
            rotated_at: None,
            state: "Enabled".into(),
            data_keys_issued: 0,
            tags: Vec::new(),
        }
    }
}

fn pairs_len(p: &[(String, String)]) -> usize {
    p.iter().map(|(k, v)| k.len() + v.len()).sum()
}

impl KeyDecision {
    pub fn output_bytes(&self) -> usize {
        match self {
            Self::Keep => 0,
            Self::Select { key_id, extra_context, .. } => key_id.as_ref().map_or(0, String::len) + pairs_len(extra_context),
            Self::Deny(e) => e.code.len() + e.message.len(),
        }
    }
}

impl Verdict {
    pub fn output_bytes(&self) -> usize {
        match self {
            Self::Accept => 0,
            Self::Reject(e) => e.code.len() + e.message.len(),
        }
    }
}

impl RotationAdvice {
    pub fn output_bytes(&self) -> usize {
        match self {
            Self::Rotate { reason } | Self::Later { reason, .. } => reason.len(),
        }
    }
}
