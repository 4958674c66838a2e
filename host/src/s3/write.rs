//! What every write path shares (PutObject, multipart, CopyObject): the
//! request's SSE headers taken out of the input, the plaintext checksum
//! wrapper, the reserved-metadata refusal, the upload error that names the
//! real cause, and the metadata-only self-copy that attaches a record.

use std::collections::HashMap;

use s3s::dto::{CopyObjectInput, CopySource, ETagCondition, MetadataDirective};
use s3s::{S3Error, s3_error};
use serde::{Deserialize, Serialize};

use super::checksum::SharedOutcome;
use crate::sse::SseRequest;

/// Parse the SSE headers of a write (PutObject, CreateMultipartUpload,
/// CopyObject) and clear them from the input: the upstream must never see
/// them (RustFS would encrypt a second time).
macro_rules! take_sse {
    ($input:expr) => {{
        let i = &mut $input;
        let h = $crate::sse::SseHeaders {
            sse: i.server_side_encryption.as_ref().map(|s| s.as_str()),
            kms_key_id: i.ssekms_key_id.as_deref(),
            context: i.ssekms_encryption_context.as_deref(),
            customer_algorithm: i.sse_customer_algorithm.as_deref(),
            customer_key: i.sse_customer_key.as_deref(),
            customer_key_md5: i.sse_customer_key_md5.as_deref(),
        };
        let sse = $crate::sse::SseRequest::parse(&h).map_err($crate::s3::errors::sse_error);
        i.server_side_encryption = None;
        i.ssekms_key_id = None;
        i.ssekms_encryption_context = None;
        i.sse_customer_algorithm = None;
        $crate::s3::keys::wipe(&mut i.sse_customer_key);
        i.sse_customer_key_md5 = None;
        i.bucket_key_enabled = None;
        sse
    }};
}
pub(super) use take_sse;

/// Plaintext upload (PutObject, UploadPart): take the client's checksums
/// out of the input and wrap the body so they are verified before its last
/// chunk goes upstream. Evaluates to the shared outcome.
macro_rules! verify_plain_upload {
    ($req:expr, $trailer_names:expr) => {{
        let len = $crate::s3::declared_length(&$req.headers, $req.input.content_length).ok();
        let (observer, outcome) = $crate::s3::checksum::ChecksumObserver::new(
            $crate::s3::checksum::take_client_checksums!($req.input),
            $trailer_names.as_deref(),
            $req.trailing_headers.clone(),
            false,
            len,
        )?;
        // The trailers were ours to verify; the upstream must not see them.
        $req.trailing_headers = None;
        $req.input.content_length = len.map(|l| l as i64);
        if let Some(body) = $req.input.body.take() {
            let body = $crate::s3::body::record_body_errors(body, outcome.clone());
            $req.input.body =
                Some(s3s::dto::StreamingBlob::new($crate::s3::body::VerifiedBody::new(body, Box::new(observer), len)));
        }
        outcome
    }};
}
pub(super) use verify_plain_upload;

/// Metrics label of a write's mode.
pub(super) fn mode_label(sse: &SseRequest) -> &'static str {
    sse.mode().map_or("none", crate::sse::SseMode::as_str)
}

pub(super) fn reserved_metadata_error() -> S3Error {
    s3_error!(InvalidArgument, "User metadata keys starting with x-amz-meta-kgw- are reserved by the gateway.")
}

/// The upstream's error, unless the body stream recorded the real cause
/// (every stream the gateway sends upstream reports its failure to the
/// outcome: see `PlaintextObserver::failed`).
pub(super) fn upload_error(e: S3Error, outcome: &SharedOutcome) -> S3Error {
    outcome.lock().expect("outcome lock").error.take().unwrap_or(e)
}

/// Object headers a metadata-only self-copy must carry over.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct ObjectHeaders {
    pub(super) content_type: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) content_disposition: Option<String>,
    pub(super) content_language: Option<String>,
    pub(super) cache_control: Option<String>,
    pub(super) website_redirect_location: Option<String>,
    /// A REPLACE copy without these resets them (AWS: to STANDARD, none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) expires: Option<s3s::dto::Timestamp>,
}

/// [`ObjectHeaders`] of any input or output that carries those headers.
macro_rules! object_headers {
    ($x:expr) => {
        $crate::s3::write::ObjectHeaders {
            content_type: $x.content_type.clone(),
            content_encoding: $x.content_encoding.clone(),
            content_disposition: $x.content_disposition.clone(),
            content_language: $x.content_language.clone(),
            cache_control: $x.cache_control.clone(),
            website_redirect_location: $x.website_redirect_location.clone(),
            storage_class: $x.storage_class.as_ref().map(|c| c.as_str().to_owned()),
            expires: $x.expires.clone(),
        }
    };
}
pub(super) use object_headers;

/// A metadata-only self-copy that rewrites the object's metadata, only if
/// the object still has `etag` (a concurrent writer is never overwritten).
pub(super) fn self_copy(
    bucket: &str,
    key: &str,
    metadata: HashMap<String, String>,
    h: &ObjectHeaders,
    etag: s3s::dto::ETag,
) -> CopyObjectInput {
    let mut c = CopyObjectInput::builder()
        .bucket(bucket.to_owned())
        .key(key.to_owned())
        .copy_source(CopySource::Bucket { bucket: bucket.into(), key: key.into(), version_id: None })
        .build()
        .expect("bucket, key and source are set");
    c.metadata_directive = Some(MetadataDirective::from_static(MetadataDirective::REPLACE));
    c.metadata = Some(metadata);
    c.content_type = h.content_type.clone();
    c.content_encoding = h.content_encoding.clone();
    c.content_disposition = h.content_disposition.clone();
    c.content_language = h.content_language.clone();
    c.cache_control = h.cache_control.clone();
    c.website_redirect_location = h.website_redirect_location.clone();
    c.storage_class = h.storage_class.clone().map(s3s::dto::StorageClass::from);
    c.expires = h.expires.clone();
    c.copy_source_if_match = Some(ETagCondition::ETag(etag));
    c
}
