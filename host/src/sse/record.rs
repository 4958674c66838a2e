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
use crate::crypto::FormatParams;
use crate::crypto::format::VERSION;
use crate::crypto::layout::Layout;
use crate::kms::{EncryptionContext, KeyId};

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
    pub mode: SseMode,
    pub params: FormatParams,
    pub plain_size: u64,
    pub sealed_oek: Vec<u8>,
    pub kms: Option<KmsSeal>,
    pub customer: Option<CustomerSeal>,
    /// SSE-S3: the plaintext MD5, sealed under the object's metadata key.
    pub sealed_etag: Option<Vec<u8>>,
    /// Multipart objects: `Some` from CreateMultipartUpload on; the part
    /// table (number, plaintext size) is filled in at completion.
    pub multipart: Option<Vec<(u32, u64)>>,
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
        put(K_FORMAT, VERSION.to_string());
        put(K_MODE, self.mode.as_str().to_owned());
        put(K_SEGMENT, self.params.segment_size().to_string());
        put(K_SIZE, self.plain_size.to_string());
        put(K_OEK, B64.encode(&self.sealed_oek));
        if let Some(k) = &self.kms {
            put(K_KMS_KEY, k.key_id.to_string());
            put(K_KMS_DEK, B64.encode(&k.wrapped_dek));
            if !k.context.is_empty() {
                put(K_KMS_CTX, B64.encode(crate::kms::types::canonical_context(&k.context)));
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
        let Some(format) = get(K_FORMAT) else { return Ok(None) };
        if format != VERSION.to_string() {
            return Err(RecordError("unsupported format version"));
        }
        let b64 = |k: &str| -> Result<Vec<u8>, RecordError> {
            B64.decode(get(k).ok_or(RecordError("missing field"))?).map_err(|_| RecordError("bad base64"))
        };
        let mode = get(K_MODE).and_then(SseMode::parse).ok_or(RecordError("bad mode"))?;
        let seg: u32 = get(K_SEGMENT).and_then(|s| s.parse().ok()).ok_or(RecordError("bad segment size"))?;
        let params = FormatParams::new(seg).map_err(|_| RecordError("segment size out of range"))?;
        let plain_size: u64 = get(K_SIZE).and_then(|s| s.parse().ok()).ok_or(RecordError("bad size"))?;
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
        Ok(Some(Self { mode, params, plain_size, sealed_oek: b64(K_OEK)?, kms, customer, sealed_etag, multipart }))
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

/// `1-127x8388608,128x1234`: runs of consecutive part numbers of one size.
pub fn encode_parts(parts: &[(u32, u64)]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let (start, size) = parts[i];
        let mut j = i;
        while j + 1 < parts.len() && parts[j + 1].1 == size && parts[j + 1].0 == parts[j].0 + 1 {
            j += 1;
        }
        let end = parts[j].0;
        out.push(if end == start { format!("{start}x{size}") } else { format!("{start}-{end}x{size}") });
        i = j + 1;
    }
    out.join(",")
}

/// Inverse of [`encode_parts`]; `None` on malformed input or part numbers
/// that do not strictly increase.
pub fn decode_parts(s: &str) -> Option<Vec<(u32, u64)>> {
    let mut out: Vec<(u32, u64)> = Vec::new();
    for run in s.split(',') {
        let (nums, size) = run.split_once('x')?;
        let size: u64 = size.parse().ok()?;
        let (a, b) = match nums.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let n = nums.parse::<u32>().ok()?;
                (n, n)
            }
        };
        if a > b || b > 10_000 || out.last().is_some_and(|(last, _)| *last >= a) {
            return None;
        }
        out.extend((a..=b).map(|n| (n, size)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(mode: SseMode) -> ObjectCrypto {
        ObjectCrypto {
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

    #[test]
    fn part_tables_are_compact_and_roundtrip() {
        let mut parts: Vec<(u32, u64)> = (1..=9999).map(|n| (n, 8 << 20)).collect();
        parts.push((10000, 12345));
        let enc = encode_parts(&parts);
        assert_eq!(enc, "1-9999x8388608,10000x12345");
        assert_eq!(decode_parts(&enc).unwrap(), parts);
        let sparse = vec![(1, 5), (3, 5), (4, 5), (7, 0)];
        assert_eq!(decode_parts(&encode_parts(&sparse)).unwrap(), sparse);
        for bad in ["", "x5", "3-1x5", "2x5,1x5", "1x-1", "1-20000x5"] {
            assert!(decode_parts(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn reserved_prefix_detection_ignores_case() {
        assert!(has_reserved_keys(Some(&Meta::from([("KGW-mode".into(), "x".into())]))));
        assert!(!has_reserved_keys(Some(&Meta::from([("kg-mode".into(), "x".into())]))));
        assert!(!has_reserved_keys(None));
    }
}
