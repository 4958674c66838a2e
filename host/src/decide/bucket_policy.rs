//! The buckets' policies as the write decision uses them: stored in the
//! gateway state (read through a cache), their statements on SSE condition
//! keys evaluated against the headers a write sent. The S3 operations that
//! set them are in `s3/bucket_policy.rs`.

use std::sync::Arc;

use super::{Decider, DecisionError, WriteIntent};
use crate::state::{CachedDocs, StateError, StateStore};
use kgw_core::bucket_policy::{BucketPolicy, SseConditions, Verdict, WriteContext};

const NS: &str = "bucket-policy";

/// The buckets' policies, cached.
pub struct BucketPolicies {
    docs: CachedDocs<BucketPolicy>,
}

impl BucketPolicies {
    pub fn new(store: StateStore) -> Self {
        Self { docs: CachedDocs::new(store, NS) }
    }

    /// The policy of `bucket`. A stored policy that no longer validates is
    /// an error, so writes fail closed rather than skip its statements.
    pub async fn get(&self, bucket: &str) -> Result<Option<Arc<BucketPolicy>>, StateError> {
        self.docs.get(bucket).await
    }

    pub async fn set(&self, bucket: &str, policy: Option<BucketPolicy>) -> Result<(), StateError> {
        self.docs.set(bucket, policy).await
    }
}

impl Decider {
    /// Refuse a write that a Deny statement on SSE condition keys matches.
    /// `sse` (the SSE headers the write sent) is only computed when the
    /// bucket has such statements.
    pub async fn check_bucket_policy(
        &self,
        w: &WriteIntent,
        sse: impl AsyncFnOnce() -> SseConditions,
    ) -> Result<(), DecisionError> {
        let Some(policy) = self.bucket_policies.get(&w.bucket).await? else { return Ok(()) };
        if !policy.has_gateway_statements() {
            return Ok(());
        }
        let sse = sse().await;
        let (bucket, key) = (w.bucket.as_str(), w.key.as_str());
        let principal = w.principal.as_deref();
        let ctx = WriteContext { principal, bucket, key, sse: &sse, secure_transport: w.secure_transport };
        if policy.evaluate_write(&ctx) == Verdict::Denied {
            tracing::info!(bucket, key, principal, "write denied by the bucket policy");
            self.metrics.bucket_policy_denials.inc();
            return Err(DecisionError::BucketPolicyDenied);
        }
        Ok(())
    }
}
