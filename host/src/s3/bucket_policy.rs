//! Bucket policies: PutBucketPolicy, GetBucketPolicy and DeleteBucketPolicy
//! kept in the gateway state, and the statements on SSE condition keys
//! enforced on every object write (the store never sees those headers).
//!
//! The policy's other statements go to the store, which enforces them. A
//! store that does not implement bucket policies (the embedded default)
//! takes only policies whose every statement is the gateway's: accepting
//! statements nobody enforces would be a silent hole. See
//! `docs/s3-compatibility.md#bucket-policies`.

use std::sync::Arc;

use s3s::dto::{
    DeleteBucketInput, DeleteBucketOutput, DeleteBucketPolicyInput, DeleteBucketPolicyOutput, GetBucketPolicyInput,
    GetBucketPolicyOutput, PutBucketPolicyInput, PutBucketPolicyOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::errors::state_error;
use super::{Gateway, require_bucket, sub_request};
use crate::state::{CachedDocs, StateStore};
use kgw_core::bucket_policy::{BucketPolicy, SseConditions, Verdict, WriteContext};

const NS: &str = "bucket-policy";

/// The buckets' policies, cached.
pub(super) struct BucketPolicies {
    docs: CachedDocs<BucketPolicy>,
}

impl BucketPolicies {
    pub(super) fn new(store: StateStore) -> Self {
        Self { docs: CachedDocs::new(store, NS) }
    }

    /// The policy of `bucket`. A stored policy that no longer validates is
    /// an error, so writes fail closed rather than skip its statements.
    pub(super) async fn get(&self, bucket: &str) -> S3Result<Option<Arc<BucketPolicy>>> {
        self.docs.get(bucket).await.map_err(state_error)
    }

    async fn set(&self, bucket: &str, policy: Option<BucketPolicy>) -> S3Result<()> {
        self.docs.set(bucket, policy).await.map_err(state_error)
    }
}

/// The store answered that it has no bucket policies (or none to delete).
fn store_lacks_policies(e: &S3Error) -> bool {
    matches!(e.code(), S3ErrorCode::NotImplemented | S3ErrorCode::NoSuchBucketPolicy)
}

impl Gateway {
    /// Refuse a write of `bucket/key` that a Deny statement on SSE condition
    /// keys matches. `sse` holds the SSE headers the request sent.
    pub(super) async fn check_bucket_policy<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        sse: impl AsyncFnOnce() -> SseConditions,
    ) -> S3Result<()> {
        let Some(policy) = self.bucket_policies.get(bucket).await? else { return Ok(()) };
        if !policy.has_gateway_statements() {
            return Ok(());
        }
        let sse = sse().await;
        let principal = req.credentials.as_ref().map(|c| c.access_key.as_str());
        let secure_transport = req.extensions.get::<crate::routes::Transport>().is_some_and(|t| t.tls);
        let verdict = policy.evaluate_write(&WriteContext { principal, bucket, key, sse: &sse, secure_transport });
        if verdict == Verdict::Denied {
            tracing::info!(bucket, key, principal, "write denied by the bucket policy");
            self.metrics.bucket_policy_denials.inc();
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        Ok(())
    }

    pub(crate) async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let bucket = req.input.bucket.clone();
        require_bucket(self.upstream.as_ref(), &req, &bucket).await?;
        let policy = BucketPolicy::parse(&bucket, &req.input.policy)
            .map_err(|e| S3Error::with_message(S3ErrorCode::MalformedPolicy, e.0))?;
        match policy.upstream_document() {
            Some(doc) => {
                let mut input = req.input.clone();
                input.policy = doc.to_owned();
                // The body changed: its digests no longer apply.
                input.content_md5 = None;
                input.checksum_algorithm = None;
                if let Err(e) = self.upstream.put_bucket_policy(sub_request(&req, input)).await {
                    if e.code() == &S3ErrorCode::NotImplemented {
                        return Err(s3_error!(
                            NotImplemented,
                            "The store does not enforce bucket policies: only statements on SSE condition keys, which the gateway enforces, can be set."
                        ));
                    }
                    return Err(e);
                }
            }
            None => self.delete_upstream_policy(&req, &bucket).await?,
        }
        self.bucket_policies.set(&bucket, Some(policy)).await?;
        Ok(S3Response::with_status(PutBucketPolicyOutput::default(), hyper::StatusCode::NO_CONTENT))
    }

    /// Remove the store's share of a policy; a store without policies has none.
    async fn delete_upstream_policy<T>(&self, req: &S3Request<T>, bucket: &str) -> S3Result<()> {
        let input = DeleteBucketPolicyInput::builder().bucket(bucket.to_owned()).build().expect("bucket set");
        match self.upstream.delete_bucket_policy(sub_request(req, input)).await {
            Err(e) if !store_lacks_policies(&e) => Err(e),
            _ => Ok(()),
        }
    }

    pub(crate) async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        match self.bucket_policies.get(&req.input.bucket).await? {
            Some(p) => {
                require_bucket(self.upstream.as_ref(), &req, &req.input.bucket).await?;
                Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(p.text().to_owned()) }))
            }
            // Set on the store directly, or none: the store answers; a store
            // without policies has none.
            None => self.upstream.get_bucket_policy(req).await.map_err(|e| {
                if e.code() == &S3ErrorCode::NotImplemented {
                    s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist")
                } else {
                    e
                }
            }),
        }
    }

    pub(crate) async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let bucket = req.input.bucket.clone();
        require_bucket(self.upstream.as_ref(), &req, &bucket).await?;
        self.delete_upstream_policy(&req, &bucket).await?;
        self.bucket_policies.set(&bucket, None).await?;
        Ok(S3Response::with_status(DeleteBucketPolicyOutput::default(), hyper::StatusCode::NO_CONTENT))
    }

    /// DeleteBucket, then the bucket's state: a bucket created later under
    /// the same name must not inherit its default encryption or policy.
    pub(crate) async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket.clone();
        let resp = self.upstream.delete_bucket(req).await?;
        let cleared = async {
            self.bucket_policies.set(&bucket, None).await?;
            self.defaults.set(&bucket, None).await
        };
        if let Err(e) = cleared.await {
            tracing::error!(bucket, error = ?e, "bucket deleted, but its gateway state was not");
        }
        Ok(resp)
    }
}
