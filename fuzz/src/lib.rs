//! What each fuzz target checks, as plain functions: the `fuzz_targets/`
//! binaries feed them libFuzzer's inputs, and `tests/replay.rs` runs them
//! on the committed corpus and on every input that once found a bug
//! (`regressions/<target>/`), in an ordinary `cargo test`.
//!
//! Beyond "never panics" (which includes arithmetic overflow: the fuzz
//! build checks it), each target asserts a property that a wrong parser
//! would break: round trips, ranges inside the object, secrets that never
//! reach a redacted view.

use std::collections::HashMap;

use kgw_core::crypto::layout::Layout;
use kgw_core::crypto::manifest::PartEntry;
use kgw_core::crypto::{FormatParams, ObjectKey, SealingKey};
use kgw_core::ids::KeyId;
use kgw_core::kms_config::{BackendConfig, KmsConfig, SecretSealer, SecretSink, SecretSource, VaultAuth};
use kgw_core::sse::record::{MAX_RECORDED_SIZE, decode_parts, encode_parts};
use kgw_core::sse::request::parse_context;
use kgw_core::sse::{ObjectCrypto, SseHeaders, SseRequest};
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};

/// A stored record, as a store operator may have rewritten it: one
/// `key=value` metadata entry per line.
pub fn record(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let meta: HashMap<String, String> =
        text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let Ok(Some(rec)) = ObjectCrypto::read_from(Some(&meta)) else { return };
    if let Ok(layout) = rec.layout() {
        assert_eq!(layout.plain_len(), rec.plain_size);
        check_ranges(&layout, &[0, 1, rec.plain_size / 2, rec.plain_size.saturating_sub(1)]);
    }
    // Whatever it says, it never authenticates under a key it was not
    // tagged with.
    let oek = ObjectKey::from_bytes([9; 32]);
    assert!(rec.version == 1 || rec.verify_layout(&oek, "bucket", "key").is_err());
    // What the gateway would write back reads back the same.
    let mut again = HashMap::new();
    if rec.write_to(&mut again).is_ok() {
        assert_eq!(ObjectCrypto::read_from(Some(&again)).expect("own record reads").as_ref(), Some(&rec));
    }
}

/// The compact part table (`1-499x8388608,500x8388608@2`).
pub fn part_table(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(parts) = decode_parts(text) else { return };
    assert_eq!(decode_parts(&encode_parts(&parts)).as_ref(), Some(&parts), "canonical form reads back");
}

/// Range arithmetic over a multipart layout.
pub fn range(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((segment_size, raw_parts, start, end)) = <(u32, Vec<(u32, u64)>, u64, u64)>::arbitrary(&mut u) else { return };
    let Ok(params) = FormatParams::new(segment_size) else { return };
    // Part sizes a record may name (the parser refuses larger ones).
    let parts: Vec<PartEntry> = raw_parts
        .iter()
        .enumerate()
        .map(|(i, &(attempt, len))| PartEntry { number: i as u32 + 1, attempt, plain_len: len % (MAX_RECORDED_SIZE + 1) })
        .collect();
    if parts.is_empty() {
        return;
    }
    let layout = Layout::new(params, parts);
    check_ranges(&layout, &[start, end, start % layout.plain_len().max(1)]);
}

/// Every range among `points` that lies inside the object maps to
/// ciphertext inside the object, and to plans that return exactly the
/// range's bytes.
fn check_ranges(layout: &Layout, points: &[u64]) {
    let len = layout.plain_len();
    for &a in points {
        for &b in points {
            let range = a..b.saturating_add(1);
            let Ok((ct, plans)) = layout.map_range(range.clone()) else {
                assert!(range.start >= range.end || range.end > len, "{range:?} of {len} refused");
                continue;
            };
            assert!(ct.start < ct.end && ct.end <= layout.ciphertext_len(), "{ct:?} outside the ciphertext");
            assert_eq!(plans.iter().map(|p| p.take).sum::<u64>(), range.end - range.start);
            for p in &plans {
                assert!(p.first_segment <= p.last_segment);
                assert!(p.last_segment < layout.params().segment_count(p.part_plain_len));
                assert!(p.skip + p.take <= p.part_plain_len.max(1) + u64::from(layout.params().segment_size()));
            }
        }
    }
}

/// SSE headers of a request, in any combination.
pub fn sse_headers(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(h) = <[Option<String>; 6]>::arbitrary(&mut u) else { return };
    let headers = SseHeaders {
        sse: h[0].as_deref(),
        kms_key_id: h[1].as_deref(),
        context: h[2].as_deref(),
        customer_algorithm: h[3].as_deref(),
        customer_key: h[4].as_deref(),
        customer_key_md5: h[5].as_deref(),
    };
    match SseRequest::parse(&headers) {
        Ok(SseRequest::Customer(key)) => {
            // Accepted only with AES256 and a 32-byte key whose MD5 matches.
            assert_eq!(headers.customer_algorithm, Some("AES256"));
            assert!(headers.customer_key.is_some());
            if let Some(md5) = headers.customer_key_md5 {
                assert_eq!(md5, key.md5_b64());
            }
        }
        Ok(SseRequest::Kms { key_id: Some(id), .. }) => {
            let _ = KeyId::from_client(&id);
        }
        _ => {}
    }
    if let Some(ctx) = &h[2] {
        let _ = parse_context(ctx);
    }
}

/// An admin's `configure` / `reconfigure` body.
pub fn kms_config(data: &[u8]) {
    let fallback = KeyId::new("gateway-default").expect("valid");
    let Ok(cfg) = KmsConfig::parse(data, SecretSource::Request, &fallback) else { return };
    let sealer = SecretSealer::new(&SealingKey::from_bytes([5; 32]));
    let shown = cfg.to_json(SecretSink::Redact);
    // The stored form reads back as the same configuration.
    let stored = cfg.to_json(SecretSink::Seal(&sealer));
    let bytes = serde_json::to_vec(&stored).expect("serialises");
    let back = KmsConfig::parse(&bytes, SecretSource::Stored(&sealer), &fallback).expect("stored form reads back");
    assert_eq!(back.to_json(SecretSink::Redact), shown);
    // Secrets are redacted for operators and sealed at rest.
    if let BackendConfig::Vault(v) = &cfg.backend {
        let (path, secret) = match &v.auth {
            VaultAuth::Token(t) => ("/auth_method/token", Some(t.expose())),
            VaultAuth::AppRole { secret_id, .. } => ("/auth_method/approle/secret_id", secret_id.as_ref().map(|s| s.expose())),
        };
        if let Some(secret) = secret {
            assert_eq!(shown.pointer(path).and_then(|v| v.as_str()), Some("********"));
            assert_ne!(stored.pointer(path).and_then(|v| v.as_str()), Some(secret), "a secret stored in clear");
        }
    }
}

/// A bucket policy as any S3 client may send it: a valid one survives its
/// stored form, its share for the store holds no statement on an SSE
/// condition key (the store could not evaluate it), and evaluating a write
/// never panics.
pub fn bucket_policy(data: &[u8]) {
    use kgw_core::bucket_policy::{BucketPolicy, SseConditions, WriteContext};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = BucketPolicy::parse("fuzz-bucket", text) else { return };
    let stored = serde_json::to_string(&policy).expect("a policy serialises");
    let back: BucketPolicy = serde_json::from_str(&stored).expect("a stored policy reads back");
    assert_eq!(back.text(), text);
    assert_eq!(back.upstream_document(), policy.upstream_document());
    if let Some(doc) = policy.upstream_document() {
        let theirs = BucketPolicy::parse("fuzz-bucket", doc).expect("the store's share is a valid policy");
        assert!(!theirs.has_gateway_statements(), "an SSE statement reached the store's share");
    }
    let kms = SseConditions { encryption: Some("aws:kms".into()), kms_key_id: Some("k".into()), customer_algorithm: None };
    for sse in [SseConditions::default(), kms] {
        let w = WriteContext { principal: Some("AKIA"), bucket: "fuzz-bucket", key: "k", sse: &sse, secure_transport: false };
        let _ = policy.evaluate_write(&w);
    }
}
