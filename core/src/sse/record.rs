//! The per-object crypto record, stored as upstream user metadata under the
//! reserved `kgw-` prefix (`x-amz-meta-kgw-*` on the wire).
//!
//! Clients can neither set nor see these keys: writes carrying them are
//! rejected and reads strip them. The record stays far below S3's 2 KiB
//! user-metadata limit (≈600 bytes with a context of a few pairs).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::SseMode;
pub use super::part_table::{decode_parts, encode_parts};
use crate::crypto::keys::{LayoutKey, PartKey};
use crate::crypto::layout::Layout;
use crate::crypto::manifest::{LayoutBinding, PartEntry};
use crate::crypto::{CryptoError, FormatParams, ObjectKey};
use crate::ids::{EncryptionContext, KeyId};

/// Reserved metadata prefix (after `x-amz-meta-`).
pub const RESERVED_PREFIX: &str = "kgw-";

const K_FORMAT: &str = "kgw-format";
const K_MODE: &str = "kgw-mode";
const K_SEGMENT: &str = "kgw-segment";
const K_SIZE: &str = "kgw-size";
const K_OEK: &str = "kgw-oek";
const K_KMS_KEY: &str = "kgw-kms-key";
const K_KMS_DEK: &str = "kgw-kms-dek";
const K_KMS_CTX: &str = "kgw-kms-ctx";
const K_KMS_BUCKET_KEY: &str = "kgw-kms-bk";
const K_C_SALT: &str = "kgw-c-salt";
const K_C_CHECK: &str = "kgw-c-check";
const K_ETAG: &str = "kgw-etag";
const K_MULTIPART: &str = "kgw-mp";
const K_PARTS: &str = "kgw-parts";
const K_LAYOUT: &str = "kgw-layout";

/// The format version new objects are written in (see `docs/format.md`).
pub const CURRENT_VERSION: u8 = 2;

/// Largest object or part size a record may name (256 TiB; S3 stores hold at
/// most 5 TiB). A store could write any number: this bound keeps every
/// offset computed from a record (10 000 parts, their tags) far from
/// overflowing.
pub const MAX_RECORDED_SIZE: u64 = 1 << 48;

/// Largest metadata record (keys + values) the gateway writes.
pub const MAX_RECORD_BYTES: usize = 1536;

/// KMS part of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct KmsSeal {
    pub key_id: KeyId,
    pub wrapped_dek: Vec<u8>,
    /// The client's context (without the `aws:s3:arn` pair the gateway adds).
    pub context: EncryptionContext,
    /// The data key is a bucket key: its KMS context names the bucket, not
    /// the object, and it is shared by objects written within its TTL.
    pub bucket_key: bool,
}

/// SSE-C part of a record: a random salt and the derived key-check value.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSeal {
    pub salt: Vec<u8>,
    pub check: Vec<u8>,
}

/// Everything needed to decrypt an object, minus the keys themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectCrypto {
    /// 1: part keys from (part, segment size), layout unauthenticated.
    /// 2: part keys per upload attempt, layout tag (`crypto::manifest`).
    pub version: u8,
    pub mode: SseMode,
    pub params: FormatParams,
    pub plain_size: u64,
    pub sealed_oek: Vec<u8>,
    pub kms: Option<KmsSeal>,
    pub customer: Option<CustomerSeal>,
    /// SSE-S3: the plaintext MD5, sealed under the object's metadata key.
    pub sealed_etag: Option<Vec<u8>>,
    /// Multipart objects: `Some` from CreateMultipartUpload on; the part
    /// table (number, attempt, plaintext size) is filled in at completion.
    pub multipart: Option<Vec<PartEntry>>,
    /// Version 2: the layout tag, set once the layout is final.
    pub layout_tag: Option<Vec<u8>>,
}

/// Why a stored record could not be read. Always a server-side fault.
#[derive(Debug, thiserror::Error)]
#[error("damaged encryption metadata: {0}")]
pub struct RecordError(pub &'static str);

type Meta = HashMap<String, String>;

/// Does client-supplied metadata use the reserved prefix?
pub fn has_reserved_keys(meta: Option<&Meta>) -> bool {
    meta.is_some_and(|m| m.keys().any(|k| k.to_ascii_lowercase().starts_with(RESERVED_PREFIX)))
}

/// Remove the reserved keys before metadata reaches a client.
pub fn strip_reserved(meta: &mut Option<Meta>) {
    if let Some(m) = meta {
        m.retain(|k, _| !k.to_ascii_lowercase().starts_with(RESERVED_PREFIX));
        if m.is_empty() {
            *meta = None;
        }
    }
}

impl ObjectCrypto {
    /// Write the record into `meta`.
    pub fn write_to(&self, meta: &mut Meta) -> Result<(), RecordError> {
        let mut put = |k: &str, v: String| meta.insert(k.to_owned(), v);
        put(K_FORMAT, self.version.to_string());
        put(K_MODE, self.mode.as_str().to_owned());
        put(K_SEGMENT, self.params.segment_size().to_string());
        put(K_SIZE, self.plain_size.to_string());
        put(K_OEK, B64.encode(&self.sealed_oek));
        if let Some(k) = &self.kms {
            put(K_KMS_KEY, k.key_id.to_string());
            put(K_KMS_DEK, B64.encode(&k.wrapped_dek));
            if !k.context.is_empty() {
                put(K_KMS_CTX, B64.encode(crate::ids::canonical_context(&k.context)));
            }
            if k.bucket_key {
                put(K_KMS_BUCKET_KEY, "1".to_owned());
            }
        }
        if let Some(c) = &self.customer {
            put(K_C_SALT, B64.encode(&c.salt));
            put(K_C_CHECK, B64.encode(&c.check));
        }
        if let Some(e) = &self.sealed_etag {
            put(K_ETAG, B64.encode(e));
        }
        if let Some(parts) = &self.multipart {
            put(K_MULTIPART, "1".to_owned());
            if !parts.is_empty() {
                put(K_PARTS, encode_parts(parts));
            }
        }
        if let Some(t) = &self.layout_tag {
            put(K_LAYOUT, B64.encode(t));
        }
        let size: usize = meta.iter().filter(|(k, _)| k.starts_with(RESERVED_PREFIX)).map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_RECORD_BYTES {
            return Err(RecordError("record exceeds the metadata budget (encryption context too large?)"));
        }
        Ok(())
    }

    /// Read a record; `Ok(None)` when the object is not encrypted by the gateway.
    pub fn read_from(meta: Option<&Meta>) -> Result<Option<Self>, RecordError> {
        let Some(meta) = meta else { return Ok(None) };
        // Upstreams may change the case of metadata keys.
        let get = |k: &str| meta.iter().find(|(mk, _)| mk.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
        let Some(format) = get(K_FORMAT) else {
            // Clients can never write the reserved prefix: reserved keys
            // without a format version are a damaged record, not plaintext.
            if meta.keys().any(|k| k.to_ascii_lowercase().starts_with(RESERVED_PREFIX)) {
                return Err(RecordError("record without a format version"));
            }
            return Ok(None);
        };
        let version = match format {
            "1" => 1,
            "2" => 2,
            _ => return Err(RecordError("unsupported format version")),
        };
        let b64 = |k: &str| -> Result<Vec<u8>, RecordError> {
            B64.decode(get(k).ok_or(RecordError("missing field"))?).map_err(|_| RecordError("bad base64"))
        };
        let mode = get(K_MODE).and_then(SseMode::parse).ok_or(RecordError("bad mode"))?;
        let seg: u32 = get(K_SEGMENT).and_then(|s| s.parse().ok()).ok_or(RecordError("bad segment size"))?;
        let params = FormatParams::new(seg).map_err(|_| RecordError("segment size out of range"))?;
        let plain_size: u64 =
            get(K_SIZE).and_then(|s| s.parse().ok()).filter(|s| *s <= MAX_RECORDED_SIZE).ok_or(RecordError("bad size"))?;
        let kms = match mode {
            SseMode::S3 | SseMode::Kms => Some(KmsSeal {
                key_id: KeyId::new(get(K_KMS_KEY).ok_or(RecordError("missing key id"))?)
                    .map_err(|_| RecordError("bad key id"))?,
                wrapped_dek: b64(K_KMS_DEK)?,
                context: match get(K_KMS_CTX) {
                    Some(_) => serde_json::from_slice(&b64(K_KMS_CTX)?).map_err(|_| RecordError("bad context"))?,
                    None => EncryptionContext::new(),
                },
                bucket_key: get(K_KMS_BUCKET_KEY) == Some("1"),
            }),
            SseMode::Customer => None,
        };
        let customer = match mode {
            SseMode::Customer => Some(CustomerSeal { salt: b64(K_C_SALT)?, check: b64(K_C_CHECK)? }),
            _ => None,
        };
        let sealed_etag = if get(K_ETAG).is_some() { Some(b64(K_ETAG)?) } else { None };
        let multipart = match (get(K_MULTIPART), get(K_PARTS)) {
            (None, _) => None,
            (Some(_), None) => Some(Vec::new()),
            (Some(_), Some(p)) => Some(decode_parts(p).ok_or(RecordError("bad part table"))?),
        };
        if version == 1 && multipart.iter().flatten().any(|p| p.attempt != 0) {
            return Err(RecordError("part attempts in a version 1 record"));
        }
        let layout_tag = if get(K_LAYOUT).is_some() { Some(b64(K_LAYOUT)?) } else { None };
        // A layout tag only exists from v2 on: a v1 record carrying one is a
        // v2 record whose version was rewritten.
        if version == 1 && layout_tag.is_some() {
            return Err(RecordError("layout tag in a version 1 record"));
        }
        Ok(Some(Self {
            version,
            mode,
            params,
            plain_size,
            sealed_oek: b64(K_OEK)?,
            kms,
            customer,
            sealed_etag,
            multipart,
            layout_tag,
        }))
    }

    /// The payload key of one part (attempt) of this object.
    pub fn part_key(&self, oek: &ObjectKey, part: u32, attempt: u32) -> PartKey {
        match self.version {
            1 => oek.part_key(part, self.params.segment_size()),
            _ => oek.part_key_v2(part, attempt, self.params.segment_size()),
        }
    }

    fn layout_binding<'a>(&'a self, bucket: &'a str, key: &'a str) -> LayoutBinding<'a> {
        LayoutBinding {
            mode: self.mode.as_str(),
            bucket,
            key,
            segment_size: self.params.segment_size(),
            plain_size: self.plain_size,
            parts: self.multipart.as_deref(),
        }
    }

    /// Version 2: tag the final layout (after the size and part table are set).
    pub fn seal_layout(&mut self, key: &LayoutKey, bucket: &str, object: &str) {
        if self.version >= 2 {
            self.layout_tag = Some(self.layout_binding(bucket, object).tag(key).to_vec());
        }
    }

    /// Version 2: check the layout tag; a missing tag fails. Version 1
    /// objects carry none (see `docs/format.md`).
    pub fn verify_layout(&self, oek: &ObjectKey, bucket: &str, object: &str) -> Result<(), CryptoError> {
        if self.version < 2 {
            return Ok(());
        }
        let tag = self.layout_tag.as_deref().ok_or(CryptoError::Layout)?;
        self.layout_binding(bucket, object).verify(&oek.layout_key(), tag)
    }

    /// The object's parts; a single PUT is part 0.
    pub fn layout(&self) -> Result<Layout, RecordError> {
        match &self.multipart {
            None => Ok(Layout::single(self.params, self.plain_size)),
            Some(parts) if parts.is_empty() => Err(RecordError("multipart object without a part table")),
            Some(parts) => {
                let l = Layout::new(self.params, parts.clone());
                if l.plain_len() != self.plain_size {
                    return Err(RecordError("part table does not add up to the object size"));
                }
                Ok(l)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_no_store_holds_are_refused() {
        // A store that writes a size near u64::MAX would overflow the
        // layout arithmetic (found by the `record` fuzz target).
        let mut meta = Meta::new();
        sample(SseMode::S3).write_to(&mut meta).unwrap();
        meta.insert(K_SIZE.into(), (MAX_RECORDED_SIZE + 1).to_string());
        assert!(ObjectCrypto::read_from(Some(&meta)).is_err());
        assert!(decode_parts(&format!("1x{}", MAX_RECORDED_SIZE + 1)).is_none());
        assert_eq!(decode_parts(&format!("1x{MAX_RECORDED_SIZE}")).map(|p| p.len()), Some(1));
    }

    fn sample(mode: SseMode) -> ObjectCrypto {
        ObjectCrypto {
            version: CURRENT_VERSION,
            mode,
            params: FormatParams::default(),
            plain_size: 12345,
            sealed_oek: vec![1; 61],
            kms: (mode != SseMode::Customer).then(|| KmsSeal {
                key_id: KeyId::new("k").unwrap(),
                wrapped_dek: vec![2; 69],
                context: EncryptionContext::from([("team".into(), "a".into())]),
                bucket_key: mode == SseMode::S3,
            }),
            customer: (mode == SseMode::Customer).then(|| CustomerSeal { salt: vec![3; 32], check: vec![4; 32] }),
            sealed_etag: (mode == SseMode::S3).then(|| vec![5; 45]),
            multipart: None,
            layout_tag: Some(vec![6; 32]),
        }
    }

    #[test]
    fn records_roundtrip_and_stay_small() {
        for mode in [SseMode::S3, SseMode::Kms, SseMode::Customer] {
            let rec = sample(mode);
            let mut meta = Meta::from([("user".to_string(), "v".to_string())]);
            rec.write_to(&mut meta).unwrap();
            let size: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(size < 1024, "{size}");
            // Case changes by the upstream do not matter.
            let upper: Meta = meta.iter().map(|(k, v)| (k.to_uppercase(), v.clone())).collect();
            assert_eq!(ObjectCrypto::read_from(Some(&upper)).unwrap().unwrap(), rec);
            let mut visible = Some(meta);
            strip_reserved(&mut visible);
            assert_eq!(visible.unwrap().len(), 1);
        }
        assert!(ObjectCrypto::read_from(Some(&Meta::from([("a".into(), "b".into())]))).unwrap().is_none());
        assert!(ObjectCrypto::read_from(Some(&Meta::from([(K_FORMAT.into(), "9".into())]))).is_err());
    }

    fn e(number: u32, plain_len: u64, attempt: u32) -> PartEntry {
        PartEntry { number, attempt, plain_len }
    }

    #[test]
    fn version_1_records_stay_readable_and_cannot_claim_attempts() {
        let mut meta = Meta::new();
        let mut v1 = sample(SseMode::Kms);
        (v1.version, v1.layout_tag) = (1, None);
        v1.multipart = Some(vec![e(1, 5, 0)]);
        v1.plain_size = 5;
        v1.write_to(&mut meta).unwrap();
        assert_eq!(meta["kgw-format"], "1");
        assert_eq!(ObjectCrypto::read_from(Some(&meta)).unwrap().unwrap(), v1);
        meta.insert("kgw-parts".into(), "1x5@3".into());
        assert!(ObjectCrypto::read_from(Some(&meta)).is_err());
    }

    #[test]
    fn layout_tags_verify_only_their_own_layout() {
        let oek = ObjectKey::from_bytes([4; 32]);
        let mut rec = sample(SseMode::S3);
        rec.multipart = Some(vec![e(1, 12000, 0), e(2, 345, 1)]);
        rec.seal_layout(&oek.layout_key(), "b", "k");
        rec.verify_layout(&oek, "b", "k").unwrap();
        assert!(rec.verify_layout(&oek, "b", "other").is_err());
        let mut dropped = rec.clone();
        dropped.multipart = Some(vec![e(1, 12345, 0)]);
        assert!(dropped.verify_layout(&oek, "b", "k").is_err());
        let mut untagged = rec.clone();
        untagged.layout_tag = None;
        assert!(untagged.verify_layout(&oek, "b", "k").is_err());
        let mut v1 = untagged;
        v1.version = 1;
        v1.verify_layout(&oek, "b", "k").unwrap();
    }

    #[test]
    fn reserved_prefix_detection_ignores_case() {
        assert!(has_reserved_keys(Some(&Meta::from([("KGW-mode".into(), "x".into())]))));
        assert!(!has_reserved_keys(Some(&Meta::from([("kg-mode".into(), "x".into())]))));
        assert!(!has_reserved_keys(None));
    }
}
