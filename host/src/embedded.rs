//! The embedded object store: s3s-fs in-process, with the fixes a store
//! needs to face real clients.

use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;

use s3s::dto::{
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput, DeleteObjectInput,
    DeleteObjectOutput, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, PutObjectInput, PutObjectOutput,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};
use tokio::sync::Mutex;

use crate::s3::forward::s3_forwarding_impl;

/// Writer locks, striped by (bucket, key): enough to keep unrelated keys
/// apart, bounded in memory.
const WRITE_STRIPES: usize = 64;

/// s3s-fs behind a thin wrapper:
/// - a key that names a directory of the store (a common prefix, e.g. `dir`
///   when `dir/file` exists) is answered with `NoSuchKey`, as S3 does, where
///   s3s-fs fails with `InternalError` (which clients such as rclone retry
///   for minutes);
/// - writes of one key are serialised. s3s-fs replaces an object's data
///   file and then writes its metadata file; two writers interleaving
///   those steps left data of one with metadata of the other, an object
///   that never reads again. A reader racing a writer may still see such a
///   pair for a moment (the gateway then fails closed); once the writers
///   are done the key holds exactly one writer's object.
pub struct EmbeddedStore {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
    writers: Vec<Mutex<()>>,
    hasher: RandomState,
}

impl EmbeddedStore {
    pub fn new(fs: s3s_fs::FileSystem, root: PathBuf) -> Self {
        Self { fs, root, writers: (0..WRITE_STRIPES).map(|_| Mutex::new(())).collect(), hasher: RandomState::new() }
    }

    fn writer(&self, bucket: &str, key: &str) -> &Mutex<()> {
        &self.writers[(self.hasher.hash_one((bucket, key)) as usize) % WRITE_STRIPES]
    }

    fn names_a_directory(&self, bucket: &str, key: &str) -> bool {
        // Bucket and key were validated by the S3 layer; `..` cannot escape
        // because s3s-fs resolves paths under its root the same way.
        !key.ends_with('/') && !key.split('/').any(|s| s == "..") && self.root.join(bucket).join(key).is_dir()
    }
}

s3_forwarding_impl! {
    EmbeddedStore,
    fs,
    hand {
        async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
            let _w = self.writer(&req.input.bucket, &req.input.key).lock().await;
            self.fs.put_object(req).await
        }
        async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
            let _w = self.writer(&req.input.bucket, &req.input.key).lock().await;
            self.fs.copy_object(req).await
        }
        async fn complete_multipart_upload(&self, req: S3Request<CompleteMultipartUploadInput>) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
            let _w = self.writer(&req.input.bucket, &req.input.key).lock().await;
            self.fs.complete_multipart_upload(req).await
        }
        async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
            let _w = self.writer(&req.input.bucket, &req.input.key).lock().await;
            self.fs.delete_object(req).await
        }
        async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
            if self.names_a_directory(&req.input.bucket, &req.input.key) {
                return Err(s3_error!(NoSuchKey));
            }
            self.fs.head_object(req).await
        }
        async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
            if self.names_a_directory(&req.input.bucket, &req.input.key) {
                return Err(s3_error!(NoSuchKey));
            }
            self.fs.get_object(req).await
        }
    }
    forward {
            abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
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
            get_object_acl(GetObjectAclInput) -> GetObjectAclOutput;
            get_object_attributes(GetObjectAttributesInput) -> GetObjectAttributesOutput;
            get_object_legal_hold(GetObjectLegalHoldInput) -> GetObjectLegalHoldOutput;
            get_object_lock_configuration(GetObjectLockConfigurationInput) -> GetObjectLockConfigurationOutput;
            get_object_retention(GetObjectRetentionInput) -> GetObjectRetentionOutput;
            get_object_tagging(GetObjectTaggingInput) -> GetObjectTaggingOutput;
            get_object_torrent(GetObjectTorrentInput) -> GetObjectTorrentOutput;
            get_public_access_block(GetPublicAccessBlockInput) -> GetPublicAccessBlockOutput;
            head_bucket(HeadBucketInput) -> HeadBucketOutput;
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
}
