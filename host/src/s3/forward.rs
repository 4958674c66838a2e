//! Pass-through of every S3 operation the gateway does not intercept: one
//! list of the s3s 0.14 `S3` operations ([`for_each_s3_op`]), and the
//! macro that implements `S3` from the hand-written operations plus a
//! forwarding method for each other one ([`s3_forwarding_impl`], also used
//! by the embedded store).

/// Calls `$callback! { op(Input) -> Output; }` for every operation of the
/// s3s 0.14 `S3` trait but `post_object` (whose default routes through
/// `put_object`). The one list of operations, for both forwarding impls.
macro_rules! for_each_s3_op {
    ($callback:ident) => {
        $callback! {
            abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
            complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput;
            copy_object(CopyObjectInput) -> CopyObjectOutput;
            create_bucket(CreateBucketInput) -> CreateBucketOutput;
            create_bucket_metadata_table_configuration(CreateBucketMetadataTableConfigurationInput) -> CreateBucketMetadataTableConfigurationOutput;
            create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
            create_session(CreateSessionInput) -> CreateSessionOutput;
            delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
            delete_bucket_analytics_configuration(DeleteBucketAnalyticsConfigurationInput) -> DeleteBucketAnalyticsConfigurationOutput;
            delete_bucket_cors(DeleteBucketCorsInput) -> DeleteBucketCorsOutput;
            delete_bucket_encryption(DeleteBucketEncryptionInput) -> DeleteBucketEncryptionOutput;
            delete_bucket_intelligent_tiering_configuration(DeleteBucketIntelligentTieringConfigurationInput) -> DeleteBucketIntelligentTieringConfigurationOutput;
            delete_bucket_inventory_configuration(DeleteBucketInventoryConfigurationInput) -> DeleteBucketInventoryConfigurationOutput;
            delete_bucket_lifecycle(DeleteBucketLifecycleInput) -> DeleteBucketLifecycleOutput;
            delete_bucket_metadata_table_configuration(DeleteBucketMetadataTableConfigurationInput) -> DeleteBucketMetadataTableConfigurationOutput;
            delete_bucket_metrics_configuration(DeleteBucketMetricsConfigurationInput) -> DeleteBucketMetricsConfigurationOutput;
            delete_bucket_ownership_controls(DeleteBucketOwnershipControlsInput) -> DeleteBucketOwnershipControlsOutput;
            delete_bucket_policy(DeleteBucketPolicyInput) -> DeleteBucketPolicyOutput;
            delete_bucket_replication(DeleteBucketReplicationInput) -> DeleteBucketReplicationOutput;
            delete_bucket_tagging(DeleteBucketTaggingInput) -> DeleteBucketTaggingOutput;
            delete_bucket_website(DeleteBucketWebsiteInput) -> DeleteBucketWebsiteOutput;
            delete_object(DeleteObjectInput) -> DeleteObjectOutput;
            delete_object_tagging(DeleteObjectTaggingInput) -> DeleteObjectTaggingOutput;
            delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
            delete_public_access_block(DeletePublicAccessBlockInput) -> DeletePublicAccessBlockOutput;
            get_bucket_accelerate_configuration(GetBucketAccelerateConfigurationInput) -> GetBucketAccelerateConfigurationOutput;
            get_bucket_acl(GetBucketAclInput) -> GetBucketAclOutput;
            get_bucket_analytics_configuration(GetBucketAnalyticsConfigurationInput) -> GetBucketAnalyticsConfigurationOutput;
            get_bucket_cors(GetBucketCorsInput) -> GetBucketCorsOutput;
            get_bucket_encryption(GetBucketEncryptionInput) -> GetBucketEncryptionOutput;
            get_bucket_intelligent_tiering_configuration(GetBucketIntelligentTieringConfigurationInput) -> GetBucketIntelligentTieringConfigurationOutput;
            get_bucket_inventory_configuration(GetBucketInventoryConfigurationInput) -> GetBucketInventoryConfigurationOutput;
            get_bucket_lifecycle_configuration(GetBucketLifecycleConfigurationInput) -> GetBucketLifecycleConfigurationOutput;
            get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
            get_bucket_logging(GetBucketLoggingInput) -> GetBucketLoggingOutput;
            get_bucket_metadata_table_configuration(GetBucketMetadataTableConfigurationInput) -> GetBucketMetadataTableConfigurationOutput;
            get_bucket_metrics_configuration(GetBucketMetricsConfigurationInput) -> GetBucketMetricsConfigurationOutput;
            get_bucket_notification_configuration(GetBucketNotificationConfigurationInput) -> GetBucketNotificationConfigurationOutput;
            get_bucket_ownership_controls(GetBucketOwnershipControlsInput) -> GetBucketOwnershipControlsOutput;
            get_bucket_policy(GetBucketPolicyInput) -> GetBucketPolicyOutput;
            get_bucket_policy_status(GetBucketPolicyStatusInput) -> GetBucketPolicyStatusOutput;
            get_bucket_replication(GetBucketReplicationInput) -> GetBucketReplicationOutput;
            get_bucket_request_payment(GetBucketRequestPaymentInput) -> GetBucketRequestPaymentOutput;
            get_bucket_tagging(GetBucketTaggingInput) -> GetBucketTaggingOutput;
            get_bucket_versioning(GetBucketVersioningInput) -> GetBucketVersioningOutput;
            get_bucket_website(GetBucketWebsiteInput) -> GetBucketWebsiteOutput;
            get_object(GetObjectInput) -> GetObjectOutput;
            get_object_acl(GetObjectAclInput) -> GetObjectAclOutput;
            get_object_attributes(GetObjectAttributesInput) -> GetObjectAttributesOutput;
            get_object_legal_hold(GetObjectLegalHoldInput) -> GetObjectLegalHoldOutput;
            get_object_lock_configuration(GetObjectLockConfigurationInput) -> GetObjectLockConfigurationOutput;
            get_object_retention(GetObjectRetentionInput) -> GetObjectRetentionOutput;
            get_object_tagging(GetObjectTaggingInput) -> GetObjectTaggingOutput;
            get_object_torrent(GetObjectTorrentInput) -> GetObjectTorrentOutput;
            get_public_access_block(GetPublicAccessBlockInput) -> GetPublicAccessBlockOutput;
            head_bucket(HeadBucketInput) -> HeadBucketOutput;
            head_object(HeadObjectInput) -> HeadObjectOutput;
            list_bucket_analytics_configurations(ListBucketAnalyticsConfigurationsInput) -> ListBucketAnalyticsConfigurationsOutput;
            list_bucket_intelligent_tiering_configurations(ListBucketIntelligentTieringConfigurationsInput) -> ListBucketIntelligentTieringConfigurationsOutput;
            list_bucket_inventory_configurations(ListBucketInventoryConfigurationsInput) -> ListBucketInventoryConfigurationsOutput;
            list_bucket_metrics_configurations(ListBucketMetricsConfigurationsInput) -> ListBucketMetricsConfigurationsOutput;
            list_buckets(ListBucketsInput) -> ListBucketsOutput;
            list_directory_buckets(ListDirectoryBucketsInput) -> ListDirectoryBucketsOutput;
            list_multipart_uploads(ListMultipartUploadsInput) -> ListMultipartUploadsOutput;
            list_object_versions(ListObjectVersionsInput) -> ListObjectVersionsOutput;
            list_objects(ListObjectsInput) -> ListObjectsOutput;
            list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output;
            list_parts(ListPartsInput) -> ListPartsOutput;
            put_bucket_accelerate_configuration(PutBucketAccelerateConfigurationInput) -> PutBucketAccelerateConfigurationOutput;
            put_bucket_acl(PutBucketAclInput) -> PutBucketAclOutput;
            put_bucket_analytics_configuration(PutBucketAnalyticsConfigurationInput) -> PutBucketAnalyticsConfigurationOutput;
            put_bucket_cors(PutBucketCorsInput) -> PutBucketCorsOutput;
            put_bucket_encryption(PutBucketEncryptionInput) -> PutBucketEncryptionOutput;
            put_bucket_intelligent_tiering_configuration(PutBucketIntelligentTieringConfigurationInput) -> PutBucketIntelligentTieringConfigurationOutput;
            put_bucket_inventory_configuration(PutBucketInventoryConfigurationInput) -> PutBucketInventoryConfigurationOutput;
            put_bucket_lifecycle_configuration(PutBucketLifecycleConfigurationInput) -> PutBucketLifecycleConfigurationOutput;
            put_bucket_logging(PutBucketLoggingInput) -> PutBucketLoggingOutput;
            put_bucket_metrics_configuration(PutBucketMetricsConfigurationInput) -> PutBucketMetricsConfigurationOutput;
            put_bucket_notification_configuration(PutBucketNotificationConfigurationInput) -> PutBucketNotificationConfigurationOutput;
            put_bucket_ownership_controls(PutBucketOwnershipControlsInput) -> PutBucketOwnershipControlsOutput;
            put_bucket_policy(PutBucketPolicyInput) -> PutBucketPolicyOutput;
            put_bucket_replication(PutBucketReplicationInput) -> PutBucketReplicationOutput;
            put_bucket_request_payment(PutBucketRequestPaymentInput) -> PutBucketRequestPaymentOutput;
            put_bucket_tagging(PutBucketTaggingInput) -> PutBucketTaggingOutput;
            put_bucket_versioning(PutBucketVersioningInput) -> PutBucketVersioningOutput;
            put_bucket_website(PutBucketWebsiteInput) -> PutBucketWebsiteOutput;
            put_object(PutObjectInput) -> PutObjectOutput;
            put_object_acl(PutObjectAclInput) -> PutObjectAclOutput;
            put_object_legal_hold(PutObjectLegalHoldInput) -> PutObjectLegalHoldOutput;
            put_object_lock_configuration(PutObjectLockConfigurationInput) -> PutObjectLockConfigurationOutput;
            put_object_retention(PutObjectRetentionInput) -> PutObjectRetentionOutput;
            put_object_tagging(PutObjectTaggingInput) -> PutObjectTaggingOutput;
            put_public_access_block(PutPublicAccessBlockInput) -> PutPublicAccessBlockOutput;
            restore_object(RestoreObjectInput) -> RestoreObjectOutput;
            select_object_content(SelectObjectContentInput) -> SelectObjectContentOutput;
            upload_part(UploadPartInput) -> UploadPartOutput;
            upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput;
            write_get_object_response(WriteGetObjectResponseInput) -> WriteGetObjectResponseOutput;
        }
    };
}
pub(crate) use for_each_s3_op;

/// `impl S3 for $ty`: the `hand` methods, then every other operation
/// delegated to `self.$field`. Shared with the embedded store's wrapper.
///
/// The forwarding methods are written in `async_trait`'s expanded form:
/// `async_trait` does not see methods that a macro inside the impl
/// produces, and these are produced by a local macro that skips the
/// operations `hand` implements (`$d` is `$`, for the local macro's own
/// variables).
macro_rules! s3_forwarding_impl {
    ($d:tt $ty:ty, $field:ident, hand { $(async fn $hand:ident $params:tt -> $ret:ty $body:block)* }) => {
        macro_rules! forward_unless_hand {
            ($d( $d op:ident ($d input:ident) -> $d output:ident; )*) => {
                $d( forward_unless_hand!(@one $d op $d input $d output); )*
            };
            $( (@one $hand $d input:ident $d output:ident) => {}; )*
            (@one $d op:ident $d input:ident $d output:ident) => {
                fn $d op<'life0, 'async_trait>(
                    &'life0 self,
                    req: s3s::S3Request<s3s::dto::$d input>,
                ) -> ::core::pin::Pin<Box<dyn ::core::future::Future<Output = s3s::S3Result<s3s::S3Response<s3s::dto::$d output>>> + Send + 'async_trait>>
                where
                    'life0: 'async_trait,
                    Self: 'async_trait,
                {
                    Box::pin(self.$field.$d op(req))
                }
            };
        }

        #[async_trait::async_trait]
        impl s3s::S3 for $ty {
            $(async fn $hand $params -> $ret $body)*
            $crate::s3::forward::for_each_s3_op!(forward_unless_hand);
        }
    };
}
pub(crate) use s3_forwarding_impl;

s3_forwarding_impl! {
    $ crate::s3::Gateway,
    upstream,
    hand {
        async fn put_bucket_policy(&self, req: s3s::S3Request<s3s::dto::PutBucketPolicyInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::PutBucketPolicyOutput>> {
            self.put_bucket_policy(req).await
        }
        async fn get_bucket_policy(&self, req: s3s::S3Request<s3s::dto::GetBucketPolicyInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetBucketPolicyOutput>> {
            self.get_bucket_policy(req).await
        }
        async fn delete_bucket_policy(&self, req: s3s::S3Request<s3s::dto::DeleteBucketPolicyInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteBucketPolicyOutput>> {
            self.delete_bucket_policy(req).await
        }
        async fn delete_bucket(&self, req: s3s::S3Request<s3s::dto::DeleteBucketInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteBucketOutput>> {
            self.delete_bucket(req).await
        }
        async fn put_object(&self, req: s3s::S3Request<s3s::dto::PutObjectInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::PutObjectOutput>> {
            self.put(req).await
        }
        async fn get_object(&self, req: s3s::S3Request<s3s::dto::GetObjectInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetObjectOutput>> {
            self.get(req).await
        }
        async fn head_object(&self, req: s3s::S3Request<s3s::dto::HeadObjectInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::HeadObjectOutput>> {
            self.head(req).await
        }
        async fn copy_object(&self, req: s3s::S3Request<s3s::dto::CopyObjectInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::CopyObjectOutput>> {
            self.copy(req).await
        }
        async fn delete_object(&self, req: s3s::S3Request<s3s::dto::DeleteObjectInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteObjectOutput>> {
            self.delete_object_checked(req).await
        }
        async fn create_multipart_upload(&self, req: s3s::S3Request<s3s::dto::CreateMultipartUploadInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::CreateMultipartUploadOutput>> {
            self.create_multipart(req).await
        }
        async fn upload_part(&self, req: s3s::S3Request<s3s::dto::UploadPartInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::UploadPartOutput>> {
            self.upload_part(req).await
        }
        async fn upload_part_copy(&self, req: s3s::S3Request<s3s::dto::UploadPartCopyInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::UploadPartCopyOutput>> {
            self.upload_part_copy(req).await
        }
        async fn complete_multipart_upload(&self, req: s3s::S3Request<s3s::dto::CompleteMultipartUploadInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::CompleteMultipartUploadOutput>> {
            self.complete_multipart(req).await
        }
        async fn abort_multipart_upload(&self, req: s3s::S3Request<s3s::dto::AbortMultipartUploadInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::AbortMultipartUploadOutput>> {
            self.abort_multipart(req).await
        }
        async fn list_parts(&self, req: s3s::S3Request<s3s::dto::ListPartsInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListPartsOutput>> {
            self.list_parts_plain(req).await
        }
        async fn list_buckets(&self, req: s3s::S3Request<s3s::dto::ListBucketsInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListBucketsOutput>> {
            self.list_buckets(req).await
        }
        async fn list_objects(&self, req: s3s::S3Request<s3s::dto::ListObjectsInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListObjectsOutput>> {
            self.list_v1(req).await
        }
        async fn list_objects_v2(&self, req: s3s::S3Request<s3s::dto::ListObjectsV2Input>) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListObjectsV2Output>> {
            self.list_v2(req).await
        }
        async fn list_object_versions(&self, req: s3s::S3Request<s3s::dto::ListObjectVersionsInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListObjectVersionsOutput>> {
            self.list_versions(req).await
        }
        async fn get_object_attributes(&self, req: s3s::S3Request<s3s::dto::GetObjectAttributesInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetObjectAttributesOutput>> {
            self.object_attributes(req).await
        }
        async fn put_bucket_encryption(&self, req: s3s::S3Request<s3s::dto::PutBucketEncryptionInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::PutBucketEncryptionOutput>> {
            { let _ = req; Err(super::errors::not_implemented("bucket encryption is served by the gateway route")) }
        }
        async fn get_bucket_encryption(&self, req: s3s::S3Request<s3s::dto::GetBucketEncryptionInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetBucketEncryptionOutput>> {
            { let _ = req; Err(super::errors::not_implemented("bucket encryption is served by the gateway route")) }
        }
        async fn delete_bucket_encryption(&self, req: s3s::S3Request<s3s::dto::DeleteBucketEncryptionInput>) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteBucketEncryptionOutput>> {
            { let _ = req; Err(super::errors::not_implemented("bucket encryption is served by the gateway route")) }
        }
    }
}
