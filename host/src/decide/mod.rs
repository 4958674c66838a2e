//! The write decision, between the S3 front and the KMS and policies: may
//! this write happen, and under which SSE mode and key. Domain inputs
//! ([`WriteIntent`]) and a typed error ([`DecisionError`]); the S3 front
//! builds the intent from its request and maps the error once
//! (`s3/errors.rs::decision_error`), so everything here is testable
//! without an S3 request.
//!
//! In order ([`Decider::decide`]):
//! - [`bucket_policy`]: the bucket policy's statements on SSE condition
//!   keys, against the headers as sent;
//! - [`defaults`]: the bucket or gateway default, blocked SSE-C, and
//!   `--require-encryption`;
//! - `policies`: the bound WebAssembly policies (sse-validate, key-select);
//!
//! then [`keys`]: the new object's key sealed as decided (and a stored
//! object's key opened again), with its own [`keys::KeyError`].

pub mod bucket_policy;
pub mod defaults;
pub mod keys;
mod policies;
mod shadow;

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::crypto::FormatParams;
use crate::identity::Identities;
use crate::kms::manager::KmsManager;
use crate::metrics::Metrics;
use crate::policy::Hook;
use crate::policy::registry::PolicyRegistry;
use crate::policy::types::PolicyS3Error;
use crate::sse::SseRequest;
use crate::state::StateError;
use bucket_policy::BucketPolicies;
use defaults::EncryptionDefaults;
use kgw_core::bucket_policy::SseConditions;

/// A write as the decision sees it.
#[derive(Debug, Clone)]
pub struct WriteIntent {
    /// `PutObject`, `PostObject`, `CopyObject`, `CreateMultipartUpload`.
    pub op: &'static str,
    pub bucket: String,
    pub key: String,
    /// The access key id it was signed with.
    pub principal: Option<String>,
    pub source_ip: Option<String>,
    /// The client connection is TLS.
    pub secure_transport: bool,
    /// Request headers a policy may see (no credentials, no key material).
    pub headers: Vec<(String, String)>,
}

/// Why a write may not happen (or could not be decided).
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("denied by a bucket policy statement on SSE condition keys")]
    BucketPolicyDenied,
    #[error("the bucket blocks SSE-C")]
    CustomerKeysBlocked,
    #[error("encryption is required and the write asks for none")]
    EncryptionRequired,
    /// A bound policy answered with this S3 error.
    #[error("denied by a policy: {}", .0.message)]
    PolicyDenied(PolicyS3Error),
    /// A bound policy could not decide (missing, trapped, out of limits).
    #[error("policy '{name}' ({}) failed: {why}", hook.name())]
    PolicyFailed { name: String, hook: Hook, why: String },
    #[error(transparent)]
    State(#[from] StateError),
}

/// A read of an encrypted object, as the read authorization sees it.
pub struct ReadIntent<'a> {
    /// `GetObject` or `HeadObject`.
    pub op: &'static str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub principal: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    /// The object's own mode and KMS key.
    pub mode: crate::policy::types::Mode,
    pub key_id: Option<&'a str>,
}

/// The write decision's service.
pub struct Decider {
    pub defaults: Arc<EncryptionDefaults>,
    pub bucket_policies: BucketPolicies,
    policies: Arc<PolicyRegistry>,
    kms: Arc<KmsManager>,
    /// The format new objects are written in.
    params: FormatParams,
    metrics: Arc<Metrics>,
    /// What policies learn of the signer.
    identities: Option<Arc<Identities>>,
    /// Where shadow decisions are recorded.
    audit: Option<Arc<AuditLog>>,
}

/// What a [`Decider`] is built from.
pub struct DeciderParts {
    pub defaults: Arc<EncryptionDefaults>,
    pub bucket_policies: BucketPolicies,
    pub policies: Arc<PolicyRegistry>,
    pub kms: Arc<KmsManager>,
    pub params: FormatParams,
    pub metrics: Arc<Metrics>,
    pub identities: Option<Arc<Identities>>,
    pub audit: Option<Arc<AuditLog>>,
}

impl Decider {
    pub fn new(parts: DeciderParts) -> Self {
        let DeciderParts { defaults, bucket_policies, policies, kms, params, metrics, identities, audit } = parts;
        Self { defaults, bucket_policies, policies, kms, params, metrics, identities, audit }
    }

    /// The SSE a new object gets, from the SSE its request sent.
    pub async fn decide(&self, w: &WriteIntent, sse: SseRequest) -> Result<SseRequest, DecisionError> {
        self.check_bucket_policy(w, async || SseConditions::from(&sse)).await?;
        let sse = self.defaults.resolve(&w.bucket, sse).await?;
        self.apply_policies(w, sse).await
    }
}

#[cfg(test)]
mod tests;
