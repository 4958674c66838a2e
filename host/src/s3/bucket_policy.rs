//! Bucket policies' S3 surface: PutBucketPolicy, GetBucketPolicy and
//! DeleteBucketPolicy, kept in the gateway state. Their statements on SSE
//! condition keys are enforced by the write decision
//! (`decide/bucket_policy.rs`): the store never sees those headers.
//!
//! The policy's other statements go to the store, which enforces them. A
//! store that does not implement bucket policies (the embedded default)
//! takes only policies whose every statement is the gateway's: accepting
//! statements nobody enforces would be a silent hole. See
//! `docs/s3-compatibility.md#bucket-policies`.

use s3s::dto::{
    DeleteBucketInput, DeleteBucketOutput, DeleteBucketPolicyInput, DeleteBucketPolicyOutput, GetBucketPolicyInput,
    GetBucketPolicyOutput, PutBucketPolicyInput, PutBucketPolicyOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::errors::state_error;
use super::{Gateway, require_bucket, sub_request};
use kgw_core::bucket_policy::BucketPolicy;

/// The store answered that it has no bucket policies (or none to delete).
fn store_lacks_policies(e: &S3Error) -> bool {
    matches!(e.code(), S3ErrorCode::NotImplemented | S3ErrorCode::NoSuchBucketPolicy)
}

impl Gateway {
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
        self.decider.bucket_policies.set(&bucket, Some(policy)).await.map_err(state_error)?;
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
        match self.decider.bucket_policies.get(&req.input.bucket).await.map_err(state_error)? {
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
        self.decider.bucket_policies.set(&bucket, None).await.map_err(state_error)?;
        Ok(S3Response::with_status(DeleteBucketPolicyOutput::default(), hyper::StatusCode::NO_CONTENT))
    }

    /// DeleteBucket, then the bucket's state: a bucket created later under
    /// the same name must not inherit its default encryption or policy.
    pub(crate) async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket.clone();
        let resp = self.upstream.delete_bucket(req).await?;
        let cleared = async {
            self.decider.bucket_policies.set(&bucket, None).await?;
            self.decider.defaults.set(&bucket, None).await
        };
        if let Err(e) = cleared.await {
            tracing::error!(bucket, error = ?e, "bucket deleted, but its gateway state was not");
        }
        Ok(resp)
    }
}
