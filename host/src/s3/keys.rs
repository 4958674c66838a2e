//! Per-request key work: seal a new object's key, open a stored one, check
//! the read-side SSE headers against the stored mode, and the SSE response
//! headers ("echo") a client gets back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use s3s::S3Result;
use s3s::dto::{ETag, ServerSideEncryption};

use super::Gateway;
use super::errors::{crypto_error, kms_error, record_error, sse_error, wrong_customer_key};
use crate::crypto::keys::{Binding, SSEC_SALT_LEN, ct_eq, derive_customer_keys};
use crate::crypto::{ObjectKey, random_bytes};
use crate::kms::service::KeyUse;
use crate::kms::types::canonical_context;
use crate::kms::{EncryptionContext, KeyId};
use crate::sse::record::{CustomerSeal, KmsSeal, RecordError};
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

/// The KMS context bound to an object's data key: the client's pairs plus
/// the object ARN, as S3 does.
pub(super) fn kms_context(user: &EncryptionContext, bucket: &str, key: &str) -> EncryptionContext {
    let mut ctx = user.clone();
    ctx.insert("aws:s3:arn".into(), format!("arn:aws:s3:::{bucket}/{key}"));
    ctx
}

/// The context of a bucket key: it names the bucket, as S3 Bucket Keys do.
fn bucket_key_context(user: &EncryptionContext, bucket: &str) -> EncryptionContext {
    let mut ctx = user.clone();
    ctx.insert("aws:s3:arn".into(), format!("arn:aws:s3:::{bucket}"));
    ctx
}

fn context_of(seal: &KmsSeal, bucket: &str, key: &str) -> EncryptionContext {
    if seal.bucket_key { bucket_key_context(&seal.context, bucket) } else { kms_context(&seal.context, bucket, key) }
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
        if matches!(sse, SseRequest::None) {
            return Ok(None);
        }
        if let SseRequest::Customer(ck) = &sse {
            return self.seal_for_customer(oek, ck, bucket, key).map(Some);
        }
        let kms = self.kms.service().map_err(kms_error)?;
        let (mode, key_id, user_ctx) = match sse {
            SseRequest::Kms { key_id, context } => {
                let id = match key_id {
                    Some(k) => KeyId::from_client(&k).map_err(|e| kms_error(e.into()))?,
                    None => kms.default_key_id().clone(),
                };
                (SseMode::Kms, id, context)
            }
            _ => (SseMode::S3, kms.default_key_id().clone(), EncryptionContext::new()),
        };
        let shared = kms.bucket_keys();
        let ctx = if shared { bucket_key_context(&user_ctx, bucket) } else { kms_context(&user_ctx, bucket, key) };
        let who = KeyUse { principal, bucket: Some(bucket), object: Some(key), request_id: None };
        let dk = kms.generate_data_key(&key_id, &ctx, shared, &who).await.map_err(kms_error)?;
        let binding = Binding { mode: mode.as_str(), bucket, key };
        let sealed_oek = dk.plaintext.seal(&oek, &binding).map_err(crypto_error)?;
        tracing::debug!(key_id = %key_id, key_version = dk.key_version, mode = mode.as_str(), "sealed new object key");
        let echo = Echo {
            sse: mode.header_value().map(|v| ServerSideEncryption::from(v.to_owned())),
            kms_key_id: (mode == SseMode::Kms).then(|| key_id.to_string()),
            context_b64: (mode == SseMode::Kms).then(|| B64.encode(canonical_context(&ctx))),
            bucket_key: shared.then_some(true),
            ..Default::default()
        };
        let seal = KmsSeal { key_id, wrapped_dek: dk.wrapped, context: user_ctx, bucket_key: shared };
        Ok(Some(SealedWrite { oek, record: self.new_record(mode, sealed_oek, Some(seal), None), echo }))
    }

    fn seal_for_customer(&self, oek: ObjectKey, ck: &CustomerKey, bucket: &str, key: &str) -> S3Result<SealedWrite> {
        let mut salt = vec![0u8; SSEC_SALT_LEN];
        random_bytes(&mut salt).map_err(crypto_error)?;
        let (kek, check) = derive_customer_keys(ck.key(), &salt);
        let binding = Binding { mode: SseMode::Customer.as_str(), bucket, key };
        let sealed_oek = kek.seal(&oek, &binding).map_err(crypto_error)?;
        let record = self.new_record(SseMode::Customer, sealed_oek, None, Some(CustomerSeal { salt, check: check.to_vec() }));
        let echo = Echo {
            customer_algorithm: Some("AES256".into()),
            customer_key_md5: Some(ck.md5_b64().to_owned()),
            ..Default::default()
        };
        Ok(SealedWrite { oek, record, echo })
    }

    fn new_record(
        &self,
        mode: SseMode,
        sealed_oek: Vec<u8>,
        kms: Option<KmsSeal>,
        customer: Option<CustomerSeal>,
    ) -> ObjectCrypto {
        ObjectCrypto {
            version: crate::sse::record::CURRENT_VERSION,
            mode,
            params: self.params,
            plain_size: 0,
            sealed_oek,
            kms,
            customer,
            sealed_etag: None,
            multipart: None,
            layout_tag: None,
        }
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
        let binding = Binding { mode: rec.mode.as_str(), bucket, key };
        let kek = match (rec.mode, &rec.kms, customer) {
            (SseMode::Customer, _, Some(ck)) => {
                let seal = rec.customer.as_ref().ok_or_else(|| record_error(RecordError("missing SSE-C fields")))?;
                derive_customer_keys(ck.key(), &seal.salt).0
            }
            (SseMode::S3 | SseMode::Kms, Some(k), _) => {
                let ctx = context_of(k, bucket, key);
                let kms = self.kms.service().map_err(kms_error)?;
                let who = KeyUse { principal, bucket: Some(bucket), object: Some(key), request_id: None };
                kms.decrypt_data_key(&k.key_id, &k.wrapped_dek, &ctx, &who).await.map_err(kms_error)?
            }
            _ => return Err(record_error(RecordError("record does not match its mode"))),
        };
        // A sealed key moved from another object, or damaged, fails here.
        kek.unseal(&rec.sealed_oek, &binding).map_err(crypto_error)
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
    pub(crate) async fn open_for_read(
        &self,
        rec: &ObjectCrypto,
        customer: Option<&CustomerKey>,
        bucket: &str,
        key: &str,
        principal: Option<&str>,
    ) -> S3Result<ObjectKey> {
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
