//! UploadPartCopy: a source range (plaintext or encrypted, with
//! `x-amz-copy-source-server-side-encryption-customer-*`) streamed into a
//! part of an upload, decrypted and re-encrypted on the way.

use s3s::dto::{
    CopyPartResult, CopySource, GetObjectInput, HeadObjectInput, Range, Timestamp, UploadPartCopyInput, UploadPartCopyOutput,
    UploadPartInput,
};
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::errors::not_implemented;
use super::keys::take_customer;
use super::{Gateway, sub_request};

impl Gateway {
    pub(crate) async fn upload_part_copy(
        &self,
        mut req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let i = &mut req.input;
        let src_customer = take_customer!(copy_source i)?;
        let dst_customer = take_customer!(i)?;
        self.require_tls_for_sse_c(&req.extensions, src_customer.is_some() || dst_customer.is_some())?;
        let i = &mut req.input;
        let CopySource::Bucket { bucket: sb, key: sk, version_id: sv } = &i.copy_source else {
            return Err(not_implemented("access point copy sources are not supported"));
        };
        let (src_bucket, src_key, src_version) = (sb.to_string(), sk.to_string(), sv.as_ref().map(|v| v.to_string()));
        let (bucket, key, upload_id) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
        self.check_part_policy(&req, &bucket, &key, &upload_id, dst_customer.is_some()).await?;

        let upload = self.known_upload(&upload_id, &bucket, &key).await?;
        let head_in = HeadObjectInput::builder()
            .bucket(src_bucket.clone())
            .key(src_key.clone())
            .version_id(src_version.clone())
            .build()
            .expect("set");
        let head = self.upstream.head_object(sub_request(&req, head_in)).await?.output;
        let src_rec = self.stored_record(&src_bucket, head.metadata.as_ref()).await?;
        if upload.is_none() && src_rec.is_none() && src_customer.is_none() && dst_customer.is_none() {
            return self.upstream.upload_part_copy(req).await;
        }

        let i = &mut req.input;
        let mut get_in = GetObjectInput::builder().bucket(src_bucket).key(src_key).build().expect("set");
        get_in.version_id = src_version;
        get_in.if_match = i.copy_source_if_match.take();
        get_in.if_none_match = i.copy_source_if_none_match.take();
        get_in.if_modified_since = i.copy_source_if_modified_since.take();
        get_in.if_unmodified_since = i.copy_source_if_unmodified_since.take();
        if let Some(r) = i.copy_source_range.take() {
            get_in.range = Some(Range::parse(&r).map_err(|_| {
                s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last")
            })?);
        }
        let src = self.get_with(sub_request(&req, get_in), src_customer).await.map_err(|e| {
            // Copy preconditions fail with 412, never 304.
            if e.code() == &S3ErrorCode::NotModified { s3_error!(PreconditionFailed) } else { e }
        })?;
        let mut part_in = UploadPartInput::builder()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(req.input.part_number)
            .build()
            .expect("set");
        part_in.body = src.output.body;
        part_in.content_length = src.output.content_length;
        let part = self.upload_part_with(sub_request(&req, part_in), dst_customer, None).await?.output;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: part.e_tag,
                last_modified: Some(Timestamp::from(std::time::SystemTime::now())),
                ..Default::default()
            }),
            server_side_encryption: part.server_side_encryption,
            ssekms_key_id: part.ssekms_key_id,
            sse_customer_algorithm: part.sse_customer_algorithm,
            sse_customer_key_md5: part.sse_customer_key_md5,
            ..Default::default()
        }))
    }
}
