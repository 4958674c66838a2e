//! Format v1 test vectors, checked with both AES-GCM implementations.
//!
//! `vectors/format_v1.json` is the committed specification. Regenerate it
//! only for a deliberate format change: `KGW_WRITE_VECTORS=1 cargo test
//! --test vectors` (then bump the format version).

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, executor::block_on, stream};
use kms_gateway::crypto::aead::{AeadImpl, SegmentCipher};
use kms_gateway::crypto::format::{segment_aad, segment_nonce};
use kms_gateway::crypto::keys::{Binding, derive_customer_keys};
use kms_gateway::crypto::stream::{DecryptPlan, DecryptStream, EncryptStream, NoObserver, StdError};
use kms_gateway::crypto::{FormatParams, ObjectKey, SealingKey};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct PayloadVector {
    name: String,
    object_key: String,
    part: u32,
    segment_size: u32,
    plaintext: String,
    part_key: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct SealVector {
    sealing_key: String,
    object_key: String,
    mode: String,
    bucket: String,
    key: String,
    sealed: String,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct CustomerVector {
    customer_key: String,
    salt: String,
    sealing_key: String,
    check: String,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Vectors {
    format_version: u8,
    payload: Vec<PayloadVector>,
    seal: Vec<SealVector>,
    customer: Vec<CustomerVector>,
}

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/format_v1.json");

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn k32(s: &str) -> [u8; 32] {
    h(s).try_into().unwrap()
}

fn encrypt_stream(oek: &ObjectKey, part: u32, p: FormatParams, data: &[u8]) -> Vec<u8> {
    let key = oek.part_key(part, p.segment_size());
    let chunks: Vec<Result<Bytes, StdError>> = data.chunks(1000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let s = EncryptStream::new(stream::iter(chunks), &key, part, p, Some(data.len() as u64), Box::new(NoObserver));
    block_on(s.map(|r| r.unwrap().to_vec()).collect::<Vec<_>>()).concat()
}

/// Segment-by-segment sealing straight from the spec, with either AEAD.
fn encrypt_spec(imp: AeadImpl, part_key: &[u8; 32], part: u32, p: FormatParams, data: &[u8]) -> Vec<u8> {
    let c = SegmentCipher::new(imp, part_key);
    let seg = p.segment_size() as usize;
    let count = p.segment_count(data.len() as u64) as usize;
    let mut out = Vec::new();
    for i in 0..count {
        let chunk = &data[(i * seg).min(data.len())..((i + 1) * seg).min(data.len())];
        let last = i + 1 == count;
        let mut buf = BytesMut::from(chunk);
        c.seal(&segment_nonce(part, i as u64, last), &segment_aad(part, i as u64, last), &mut buf).unwrap();
        out.extend_from_slice(&buf);
    }
    out
}

fn decrypt(imp: AeadImpl, oek: &ObjectKey, part: u32, p: FormatParams, ct: &[u8], len: u64) -> Vec<u8> {
    let key = oek.part_key(part, p.segment_size());
    let plan =
        DecryptPlan { part, part_plain_len: len, first_segment: 0, last_segment: p.segment_count(len) - 1, skip: 0, take: len };
    let src = stream::iter(vec![Ok::<Bytes, StdError>(Bytes::copy_from_slice(ct))]);
    block_on(DecryptStream::with_impl(src, &key, p, plan, imp).map(|r| r.unwrap().to_vec()).collect::<Vec<_>>()).concat()
}

fn generate() -> Vectors {
    let mut payload = Vec::new();
    for (name, part, seg, len) in [
        ("empty", 0u32, 4096u32, 0usize),
        ("one byte", 0, 4096, 1),
        ("two segments + 17", 0, 4096, 8209),
        ("part 3", 3, 4096, 5000),
    ] {
        let oek = ObjectKey::from_bytes(std::array::from_fn(|i| (i as u8).wrapping_mul(7).wrapping_add(part as u8)));
        let p = FormatParams::new(seg).unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        payload.push(PayloadVector {
            name: name.into(),
            object_key: hex::encode(oek.as_bytes()),
            part,
            segment_size: seg,
            plaintext: hex::encode(&data),
            part_key: hex::encode(oek.part_key(part, seg).as_bytes()),
            ciphertext: hex::encode(encrypt_stream(&oek, part, p, &data)),
        });
    }
    let kek = SealingKey::from_bytes([0x42; 32]);
    let oek = ObjectKey::from_bytes([0x17; 32]);
    let sealed = kek.seal(&oek, &Binding { mode: "SSE-KMS", bucket: "bucket", key: "dir/object.bin" }).unwrap();
    let seal = vec![SealVector {
        sealing_key: hex::encode(kek.as_bytes()),
        object_key: hex::encode(oek.as_bytes()),
        mode: "SSE-KMS".into(),
        bucket: "bucket".into(),
        key: "dir/object.bin".into(),
        sealed: hex::encode(sealed),
    }];
    let ck = [0x99u8; 32];
    let salt = [0x01u8; 32];
    let (kek, check) = derive_customer_keys(&ck, &salt);
    let customer = vec![CustomerVector {
        customer_key: hex::encode(ck),
        salt: hex::encode(salt),
        sealing_key: hex::encode(kek.as_bytes()),
        check: hex::encode(check),
    }];
    Vectors { format_version: 1, payload, seal, customer }
}

#[test]
fn format_v1_vectors_hold_for_both_implementations() {
    if std::env::var_os("KGW_WRITE_VECTORS").is_some() {
        std::fs::write(PATH, serde_json::to_string_pretty(&generate()).unwrap() + "\n").unwrap();
    }
    let v: Vectors = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert_eq!(v.format_version, 1);
    assert!(v.payload.len() >= 4);
    for pv in &v.payload {
        let oek = ObjectKey::from_bytes(k32(&pv.object_key));
        let p = FormatParams::new(pv.segment_size).unwrap();
        let data = h(&pv.plaintext);
        let ct = h(&pv.ciphertext);
        assert_eq!(hex::encode(oek.part_key(pv.part, pv.segment_size).as_bytes()), pv.part_key, "{}", pv.name);
        assert_eq!(ct.len() as u64, p.ciphertext_len(data.len() as u64), "{}", pv.name);
        assert_eq!(encrypt_stream(&oek, pv.part, p, &data), ct, "stream encryption, {}", pv.name);
        for imp in [AeadImpl::AwsLc, AeadImpl::RustCrypto] {
            assert_eq!(encrypt_spec(imp, &k32(&pv.part_key), pv.part, p, &data), ct, "{imp:?} {}", pv.name);
            assert_eq!(decrypt(imp, &oek, pv.part, p, &ct, data.len() as u64), data, "{imp:?} {}", pv.name);
        }
    }
    for sv in &v.seal {
        let kek = SealingKey::from_bytes(k32(&sv.sealing_key));
        let sealed = h(&sv.sealed);
        let b = Binding { mode: &sv.mode, bucket: &sv.bucket, key: &sv.key };
        assert_eq!(hex::encode(kek.unseal(&sealed, &b).unwrap().as_bytes()), sv.object_key);
        // The same bytes open with the reference implementation, from the spec layout.
        let mut aad = b"kms-gateway/v1/object-key".to_vec();
        for f in [&sv.mode, &sv.bucket, &sv.key] {
            aad.extend_from_slice(&(f.len() as u32).to_be_bytes());
            aad.extend_from_slice(f.as_bytes());
        }
        assert_eq!(sealed[0], 1);
        let mut buf = BytesMut::from(&sealed[13..]);
        SegmentCipher::new(AeadImpl::RustCrypto, &k32(&sv.sealing_key))
            .open(&sealed[1..13].try_into().unwrap(), &aad, &mut buf)
            .unwrap();
        assert_eq!(hex::encode(&buf), sv.object_key);
        let other = Binding { key: "other", ..b };
        assert!(kek.unseal(&sealed, &other).is_err());
    }
    for cv in &v.customer {
        let (kek, check) = derive_customer_keys(&k32(&cv.customer_key), &h(&cv.salt));
        assert_eq!(hex::encode(kek.as_bytes()), cv.sealing_key);
        assert_eq!(hex::encode(check), cv.check);
    }
}
