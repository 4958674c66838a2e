//! Object keys, as the decision chose them: a new object's key sealed
//! under a KMS data key (SSE-S3, SSE-KMS) or a key derived from the
//! client's SSE-C key, with the record that describes it; and a stored
//! object's key opened again. No S3 types: errors are [`KeyError`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::Decider;
use crate::crypto::keys::{Binding, SSEC_SALT_LEN, derive_customer_keys};
use crate::crypto::{CryptoError, ObjectKey, random_bytes};
use crate::kms::service::KeyUse;
use crate::kms::types::canonical_context;
use crate::kms::{EncryptionContext, KeyId, KmsError};
use crate::sse::record::{CustomerSeal, KmsSeal, RecordError};
use crate::sse::{CustomerKey, ObjectCrypto, SseMode, SseRequest};

/// Why an object key could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// What a client is told of a new SSE-KMS or SSE-S3 object's key.
#[derive(Debug, Clone)]
pub struct KmsEcho {
    pub key_id: KeyId,
    /// base64 JSON of the full KMS context.
    pub context_b64: String,
    pub bucket_key: bool,
}

/// A new object's key, sealed, with its record (size and ETag still unset).
pub struct Sealed {
    pub oek: ObjectKey,
    pub record: ObjectCrypto,
    /// `None` for SSE-C.
    pub kms: Option<KmsEcho>,
}

/// The KMS context bound to an object's data key: the client's pairs plus
/// the object ARN, as S3 does.
pub fn kms_context(user: &EncryptionContext, bucket: &str, key: &str) -> EncryptionContext {
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

impl Decider {
    /// Seal `oek` as `sse` asks (a new object, or a re-key in place);
    /// `None` for a plaintext write.
    pub async fn seal(
        &self,
        oek: ObjectKey,
        sse: SseRequest,
        bucket: &str,
        key: &str,
        principal: Option<&str>,
    ) -> Result<Option<Sealed>, KeyError> {
        if matches!(sse, SseRequest::None) {
            return Ok(None);
        }
        if let SseRequest::Customer(ck) = &sse {
            return self.seal_for_customer(oek, ck, bucket, key).map(Some);
        }
        let kms = self.kms.service()?;
        let (mode, key_id, user_ctx) = match sse {
            SseRequest::Kms { key_id, context } => {
                let id = match key_id {
                    Some(k) => KeyId::from_client(&k).map_err(KmsError::from)?,
                    None => kms.default_key_id().clone(),
                };
                (SseMode::Kms, id, context)
            }
            _ => (SseMode::S3, kms.default_key_id().clone(), EncryptionContext::new()),
        };
        let shared = kms.bucket_keys();
        let ctx = if shared { bucket_key_context(&user_ctx, bucket) } else { kms_context(&user_ctx, bucket, key) };
        let who = KeyUse { principal, bucket: Some(bucket), object: Some(key), request_id: None };
        let dk = kms.generate_data_key(&key_id, &ctx, shared, &who).await?;
        let binding = Binding { mode: mode.as_str(), bucket, key };
        let sealed_oek = dk.plaintext.seal(&oek, &binding)?;
        tracing::debug!(key_id = %key_id, key_version = dk.key_version, mode = mode.as_str(), "sealed new object key");
        let echo = KmsEcho { key_id: key_id.clone(), context_b64: B64.encode(canonical_context(&ctx)), bucket_key: shared };
        let seal = KmsSeal { key_id, wrapped_dek: dk.wrapped, context: user_ctx, bucket_key: shared };
        Ok(Some(Sealed { oek, record: self.new_record(mode, sealed_oek, Some(seal), None), kms: Some(echo) }))
    }

    fn seal_for_customer(&self, oek: ObjectKey, ck: &CustomerKey, bucket: &str, key: &str) -> Result<Sealed, KeyError> {
        let mut salt = vec![0u8; SSEC_SALT_LEN];
        random_bytes(&mut salt)?;
        let (kek, check) = derive_customer_keys(ck.key(), &salt);
        let binding = Binding { mode: SseMode::Customer.as_str(), bucket, key };
        let sealed_oek = kek.seal(&oek, &binding)?;
        let record = self.new_record(SseMode::Customer, sealed_oek, None, Some(CustomerSeal { salt, check: check.to_vec() }));
        Ok(Sealed { oek, record, kms: None })
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

    /// Unseal a stored object's key (the SSE-C key, if any, already checked
    /// against the record).
    pub async fn open(
        &self,
        rec: &ObjectCrypto,
        customer: Option<&CustomerKey>,
        bucket: &str,
        key: &str,
        principal: Option<&str>,
    ) -> Result<ObjectKey, KeyError> {
        let binding = Binding { mode: rec.mode.as_str(), bucket, key };
        let kek = match (rec.mode, &rec.kms, customer) {
            (SseMode::Customer, _, Some(ck)) => {
                let seal = rec.customer.as_ref().ok_or(RecordError("missing SSE-C fields"))?;
                derive_customer_keys(ck.key(), &seal.salt).0
            }
            (SseMode::S3 | SseMode::Kms, Some(k), _) => {
                let ctx = context_of(k, bucket, key);
                let kms = self.kms.service()?;
                let who = KeyUse { principal, bucket: Some(bucket), object: Some(key), request_id: None };
                kms.decrypt_data_key(&k.key_id, &k.wrapped_dek, &ctx, &who).await?
            }
            _ => return Err(RecordError("record does not match its mode").into()),
        };
        // A sealed key moved from another object, or damaged, fails here.
        Ok(kek.unseal(&rec.sealed_oek, &binding)?)
    }
}
