//! Operations that could bypass encryption: copy and multipart. Encrypted
//! multipart uploads and copies of encrypted objects are not built yet, so
//! they are refused with `NotImplemented` rather than silently storing
//! plaintext or garbling ciphertext; plaintext use passes through.

use s3s::dto::{
    CopyObjectInput, CopyObjectOutput, CopySource, CreateMultipartUploadInput, CreateMultipartUploadOutput, HeadObjectInput,
    UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::errors::{not_implemented, record_error, sse_error};
use super::{Gateway, sub_request};
use crate::sse::{ObjectCrypto, SseError, has_reserved_keys};

macro_rules! any_sse {
    ($i:expr) => {
        $i.server_side_encryption.is_some()
            || $i.ssekms_key_id.is_some()
            || $i.ssekms_encryption_context.is_some()
            || $i.sse_customer_algorithm.is_some()
            || $i.sse_customer_key.is_some()
            || $i.sse_customer_key_md5.is_some()
    };
}

impl Gateway {
    async fn source_is_encrypted<T>(&self, req: &S3Request<T>, src: &CopySource) -> S3Result<bool> {
        let CopySource::Bucket { bucket, key, version_id } = src else {
            return Err(not_implemented("access point copy sources are not supported"));
        };
        let head = HeadObjectInput::builder()
            .bucket(bucket.to_string())
            .key(key.to_string())
            .version_id(version_id.as_ref().map(|v| v.to_string()))
            .build()
            .expect("bucket and key set");
        let out = self.upstream.head_object(sub_request(req, head)).await?.output;
        Ok(ObjectCrypto::read_from(out.metadata.as_ref()).map_err(record_error)?.is_some())
    }

    pub(crate) async fn guarded_copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let i = &req.input;
        if has_reserved_keys(i.metadata.as_ref()) {
            return Err(s3_error!(
                InvalidArgument,
                "User metadata keys starting with x-amz-meta-kgw- are reserved by the gateway."
            ));
        }
        let cs3 = i.copy_source_sse_customer_algorithm.is_some() || i.copy_source_sse_customer_key.is_some();
        if any_sse!(i) || cs3 || self.source_is_encrypted(&req, &i.copy_source).await? {
            return Err(not_implemented("CopyObject with encryption is not supported yet"));
        }
        self.upstream.copy_object(req).await
    }

    pub(crate) async fn guarded_create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        if has_reserved_keys(req.input.metadata.as_ref()) {
            return Err(s3_error!(
                InvalidArgument,
                "User metadata keys starting with x-amz-meta-kgw- are reserved by the gateway."
            ));
        }
        if any_sse!(req.input) {
            return Err(not_implemented("encrypted multipart uploads are not supported yet; use a single PUT"));
        }
        self.upstream.create_multipart_upload(req).await
    }

    pub(crate) async fn guarded_upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let i = &req.input;
        if i.sse_customer_algorithm.is_some() || i.sse_customer_key.is_some() || i.sse_customer_key_md5.is_some() {
            return Err(sse_error(SseError::InvalidRequest("The encryption parameters are not applicable to this object.")));
        }
        self.upstream.upload_part(req).await
    }

    pub(crate) async fn guarded_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let i = &req.input;
        let c3 = i.sse_customer_algorithm.is_some() || i.copy_source_sse_customer_algorithm.is_some();
        if c3 || self.source_is_encrypted(&req, &i.copy_source).await? {
            return Err(not_implemented("UploadPartCopy with encryption is not supported yet"));
        }
        self.upstream.upload_part_copy(req).await
    }
}
