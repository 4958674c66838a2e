//! Per-request key work: seal a new object's key, open a stored one, check
//! the read-side SSE headers against the stored mode, and the SSE response
//! headers ("echo") a client gets back.

use s3s::S3Result;
use s3s::dto::{ETag, ServerSideEncryption};

use super::Gateway;
use super::errors::{crypto_error, decision_error, key_error, record_error, sse_error, wrong_customer_key};
use crate::crypto::ObjectKey;
use crate::crypto::keys::{ct_eq, derive_customer_keys};
use crate::decide::ReadIntent;
use crate::policy::types::Mode;
use crate::sse::record::RecordError;
use crate::sse::{CustomerKey, ObjectCrypto, SseError, SseMode, SseRequest};

/// Take an SSE-C triple out of an input's three fields (MD5 optional, as
/// AWS allows on reads and parts).
pub(super) fn take_customer_fields(
    alg: &mut Option<String>,
    key: &mut Option<String>,
    md5: &mut Option<String>,
) -> S3Result<Option<CustomerKey>> {
    let ck = CustomerKey::parse(alg.as_deref(), key.as_deref(), md5.as_deref(), false);
    wipe(key);
    (*alg, *md5) = (None, None);
    ck.map_err(sse_error)
}

/// Clear a header field that held key material, zeroizing its bytes.
pub(crate) fn wipe(field: &mut Option<String>) {
    if let Some(mut v) = field.take() {
        zeroize::Zeroize::zeroize(&mut v);
    }
}

/// `take_customer!(input)` for the SSE-C fields, `take_customer!(copy_source input)`
/// for the `x-amz-copy-source-server-side-encryption-customer-*` ones.
macro_rules! take_customer {
    (copy_source $i:expr) => {
        $crate::s3::keys::take_customer_fields(
            &mut $i.copy_source_sse_customer_algorithm,
            &mut $i.copy_source_sse_customer_key,
            &mut $i.copy_source_sse_customer_key_md5,
        )
    };
    ($i:expr) => {
        $crate::s3::keys::take_customer_fields(
            &mut $i.sse_customer_algorithm,
            &mut $i.sse_customer_key,
            &mut $i.sse_customer_key_md5,
        )
    };
}
pub(super) use take_customer;

/// Set an output's SSE response fields from an [`Echo`]: `all` for outputs
/// that carry the context too (PUT, Copy, CreateMultipartUpload), `read`
/// for GET/HEAD/UploadPart-shaped ones.
macro_rules! apply_echo {
    (all $out:expr, $echo:expr) => {{
        let e: $crate::s3::keys::Echo = $echo;
        $out.ssekms_encryption_context = e.context_b64.clone();
        apply_echo!(read $out, e);
    }};
    (read $out:expr, $echo:expr) => {{
        let e: $crate::s3::keys::Echo = $echo;
        $out.server_side_encryption = e.sse;
        $out.ssekms_key_id = e.kms_key_id;
        $out.sse_customer_algorithm = e.customer_algorithm;
        $out.sse_customer_key_md5 = e.customer_key_md5;
        $out.bucket_key_enabled = e.bucket_key;
    }};
}
pub(super) use apply_echo;

/// Move a [`Checksum`](s3s::dto::Checksum)'s five values into an output.
macro_rules! set_checksums {
    ($out:expr, $c:expr) => {{
        let c: s3s::dto::Checksum = $c;
        $out.checksum_crc32 = c.checksum_crc32;
        $out.checksum_crc32c = c.checksum_crc32c;
        $out.checksum_sha1 = c.checksum_sha1;
        $out.checksum_sha256 = c.checksum_sha256;
        $out.checksum_crc64nvme = c.checksum_crc64nvme;
    }};
}
pub(super) use set_checksums;

const ETAG_AAD: &[u8] = b"kms-gateway/v1/plaintext-etag";

/// SSE response headers of an object.
#[derive(Debug, Default, Clone)]
pub(crate) struct Echo {
    pub sse: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    /// base64 JSON of the full KMS context (PUT responses only).
    pub context_b64: Option<String>,
    pub customer_algorithm: Option<String>,
    pub customer_key_md5: Option<String>,
    /// `x-amz-server-side-encryption-bucket-key-enabled`.
    pub bucket_key: Option<bool>,
}

/// A new object's key, sealed, with its record (size and ETag still unset).
pub(crate) struct SealedWrite {
    pub oek: ObjectKey,
    pub record: ObjectCrypto,
    pub echo: Echo,
}

impl Gateway {
    /// Decide keys for a new object; `None` for a plaintext write.
    pub(crate) async fn seal_new_object(
        &self,
        sse: SseRequest,
        bucket: &str,
        key: &str,
        principal: Option<&str>,
    ) -> S3Result<Option<SealedWrite>> {
        let oek = ObjectKey::generate().map_err(crypto_error)?;
        self.seal_object_key(oek, sse, bucket, key, principal).await
    }

    /// Seal `oek` as `sse` asks (a new object, or a re-key in place).
    pub(crate) async fn seal_object_key(
        &self,
        oek: ObjectKey,
        sse: SseRequest,
        bucket: &str,
        key: &str,
        principal: Option<&str>,
    ) -> S3Result<Option<SealedWrite>> {
        let customer_md5 = match &sse {
            SseRequest::Customer(ck) => Some(ck.md5_b64().to_owned()),
            _ => None,
        };
        let Some(sealed) = self.decider.seal(oek, sse, bucket, key, principal).await.map_err(key_error)? else {
            return Ok(None);
        };
        let mode = sealed.record.mode;
        let echo = match sealed.kms {
            Some(k) => Echo {
                sse: mode.header_value().map(|v| ServerSideEncryption::from(v.to_owned())),
                kms_key_id: (mode == SseMode::Kms).then(|| k.key_id.to_string()),
                context_b64: (mode == SseMode::Kms).then_some(k.context_b64),
                bucket_key: k.bucket_key.then_some(true),
                ..Default::default()
            },
            None => Echo { customer_algorithm: Some("AES256".into()), customer_key_md5: customer_md5, ..Default::default() },
        };
        Ok(Some(SealedWrite { oek: sealed.oek, record: sealed.record, echo }))
    }

    /// Enforce the read-side header rules, and check an SSE-C key against
    /// the stored check value (constant time) without unsealing anything.
    pub(crate) fn check_read_headers(&self, rec: Option<&ObjectCrypto>, customer: Option<&CustomerKey>) -> S3Result<()> {
        let not_applicable =
            || sse_error(SseError::InvalidRequest("The encryption parameters are not applicable to this object."));
        match (rec.map(|r| r.mode), customer) {
            (None | Some(SseMode::S3 | SseMode::Kms), Some(_)) => Err(not_applicable()),
            (Some(SseMode::Customer), None) => Err(sse_error(SseError::InvalidRequest(
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
            ))),
            (Some(SseMode::Customer), Some(ck)) => {
                let seal =
                    rec.and_then(|r| r.customer.as_ref()).ok_or_else(|| record_error(RecordError("missing SSE-C fields")))?;
                let (_, check) = derive_customer_keys(ck.key(), &seal.salt);
                if ct_eq(&check, &seal.check) { Ok(()) } else { Err(wrong_customer_key(self.wrong_key_status)) }
            }
            _ => Ok(()),
        }
    }

    /// Unseal the object key (after [`check_read_headers`](Self::check_read_headers)).
    pub(crate) async fn open_object_key(
        &self,
        rec: &ObjectCrypto,
        customer: Option<&CustomerKey>,
        bucket: &str,
        key: &str,
        principal: Option<&str>,
    ) -> S3Result<ObjectKey> {
        self.decider.open(rec, customer, bucket, key, principal).await.map_err(key_error)
    }

    /// The record of a stored object, for reading it. An object without
    /// one is plaintext, unless encryption is required: then it is refused,
    /// never served as the store holds it.
    pub(crate) async fn stored_record(
        &self,
        bucket: &str,
        meta: Option<&std::collections::HashMap<String, String>>,
    ) -> S3Result<Option<ObjectCrypto>> {
        let rec = ObjectCrypto::read_from(meta).map_err(record_error)?;
        if rec.is_none() && self.decider.defaults.encryption_required(bucket).await {
            tracing::error!(bucket, "an object without the gateway's record was refused: encryption is required");
            return Err(s3s::s3_error!(
                InternalError,
                "The stored object is not encrypted by the gateway, and this gateway requires encryption."
            ));
        }
        Ok(rec)
    }

    /// Open a stored object's key for reading, and check its layout tag
    /// (format v2) so that nothing of a manipulated object is answered.
    /// Open an object's key for a read (`op`: `GetObject`, `HeadObject`,
    /// `GetObjectAttributes`, `CopySource`): first the bound sse-validate
    /// policy may refuse this signer the object's mode and key.
    pub(crate) async fn open_for_read(
        &self,
        op: &'static str,
        rec: &ObjectCrypto,
        customer: Option<&CustomerKey>,
        bucket: &str,
        key: &str,
        principal: Option<&str>,
    ) -> S3Result<ObjectKey> {
        let read = ReadIntent {
            op,
            bucket,
            key,
            principal,
            source_ip: None,
            mode: Mode::from(Some(rec.mode)),
            key_id: rec.kms.as_ref().map(|k| k.key_id.as_str()),
        };
        self.decider.authorize_read(&read).await.map_err(decision_error)?;
        let oek = self.open_object_key(rec, customer, bucket, key, principal).await?;
        rec.verify_layout(&oek, bucket, key).map_err(crypto_error)?;
        Ok(oek)
    }

    /// The SSE-S3 plaintext ETag, sealed under the object's metadata key.
    pub(crate) fn seal_etag(oek: &ObjectKey, md5: &[u8; 16]) -> S3Result<Vec<u8>> {
        oek.metadata_key().seal_bytes(md5, ETAG_AAD).map_err(crypto_error)
    }

    /// The ETag a client sees: the plaintext MD5 for SSE-S3, else upstream's.
    pub(crate) fn visible_etag(rec: &ObjectCrypto, oek: Option<&ObjectKey>, upstream: Option<ETag>) -> S3Result<Option<ETag>> {
        match (&rec.sealed_etag, oek) {
            (Some(sealed), Some(oek)) if rec.mode == SseMode::S3 => {
                let md5 = oek.metadata_key().open_bytes(sealed, ETAG_AAD).map_err(crypto_error)?;
                Ok(Some(ETag::Strong(hex::encode(&*md5))))
            }
            _ => Ok(upstream),
        }
    }

    /// Response SSE headers for a stored object.
    pub(crate) fn echo_of(rec: &ObjectCrypto, customer: Option<&CustomerKey>) -> Echo {
        match rec.mode {
            SseMode::S3 => Echo {
                sse: Some(ServerSideEncryption::from("AES256".to_owned())),
                bucket_key: rec.kms.as_ref().is_some_and(|k| k.bucket_key).then_some(true),
                ..Default::default()
            },
            SseMode::Kms => Echo {
                sse: Some(ServerSideEncryption::from("aws:kms".to_owned())),
                kms_key_id: rec.kms.as_ref().map(|k| k.key_id.to_string()),
                bucket_key: rec.kms.as_ref().is_some_and(|k| k.bucket_key).then_some(true),
                ..Default::default()
            },
            SseMode::Customer => Echo {
                customer_algorithm: Some("AES256".into()),
                customer_key_md5: customer.map(|c| c.md5_b64().to_owned()),
                ..Default::default()
            },
        }
    }
}
