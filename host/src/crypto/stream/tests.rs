use super::*;
use crate::crypto::format::SegmentRange;
use crate::crypto::keys::ObjectKey;
use futures::{StreamExt, executor::block_on, stream};
use proptest::prelude::*;

fn chunks(data: &[u8], chunk: usize) -> impl Stream<Item = Result<Bytes, StdError>> + Unpin + use<> {
    let parts: Vec<Result<Bytes, StdError>> = data.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(parts)
}

fn encrypt(data: &[u8], key: &PartKey, part: u32, params: FormatParams, chunk: usize) -> Vec<u8> {
    let s = EncryptStream::new(chunks(data, chunk), key, part, params, Some(data.len() as u64), Box::new(NoObserver));
    assert_eq!(s.remaining_length().exact(), Some(params.ciphertext_len(data.len() as u64) as usize));
    let out: Vec<Bytes> = block_on(s.map(|r| r.unwrap()).collect());
    out.concat()
}

fn decrypt(
    ct: &[u8],
    key: &PartKey,
    part: u32,
    params: FormatParams,
    plain_len: u64,
    range: std::ops::Range<u64>,
    imp: AeadImpl,
) -> Result<Vec<u8>, String> {
    let m = params.map_range(plain_len, range).map_err(|e| e.to_string())?;
    let slice = &ct[m.ciphertext.start as usize..(m.ciphertext.end as usize).min(ct.len())];
    let plan = DecryptPlan {
        part,
        attempt: 0,
        part_plain_len: plain_len,
        first_segment: m.first_segment,
        last_segment: m.last_segment,
        skip: m.skip,
        take: m.take,
    };
    let s = DecryptStream::with_impl(chunks(slice, 7777), key, params, plan, imp);
    let parts: Vec<Result<Bytes, StdError>> = block_on(s.collect());
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&p.map_err(|e| e.to_string())?);
    }
    Ok(out)
}

fn full(ct: &[u8], key: &PartKey, params: FormatParams, plain_len: u64) -> Result<Vec<u8>, String> {
    if plain_len == 0 {
        // An empty object still has one sealed segment to authenticate.
        let plan = DecryptPlan { part: 0, attempt: 0, part_plain_len: 0, first_segment: 0, last_segment: 0, skip: 0, take: 0 };
        let s = DecryptStream::new(chunks(ct, 100), key, params, plan);
        let r: Vec<Result<Bytes, StdError>> = block_on(s.collect());
        return r
            .into_iter()
            .map(|x| x.map(|b| b.to_vec()).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.concat());
    }
    decrypt(ct, key, 0, params, plain_len, 0..plain_len, AeadImpl::AwsLc)
}

fn key() -> PartKey {
    ObjectKey::from_bytes([3; 32]).part_key(0, 4096)
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn roundtrip_edge_sizes() {
    let p = FormatParams::new(4096).unwrap();
    for n in [0usize, 1, 4095, 4096, 4097, 3 * 4096 + 17] {
        let d = data(n);
        let ct = encrypt(&d, &key(), 0, p, 1000);
        assert_eq!(ct.len() as u64, p.ciphertext_len(n as u64));
        if n > 0 {
            assert_ne!(&ct[..n], &d[..], "ciphertext equals plaintext at {n}");
        }
        assert_eq!(full(&ct, &key(), p, n as u64).unwrap(), d, "size {n}");
    }
}

#[test]
fn empty_object_is_authenticated() {
    let p = FormatParams::new(4096).unwrap();
    let ct = encrypt(&[], &key(), 0, p, 1);
    assert_eq!(ct.len(), 16);
    let mut bad = ct.clone();
    bad[3] ^= 0x80;
    assert!(full(&bad, &key(), p, 0).is_err());
    assert!(full(&[], &key(), p, 0).is_err());
}

#[test]
fn tampering_is_detected() {
    let p = FormatParams::new(4096).unwrap();
    let d = data(3 * 4096 + 17);
    let ct = encrypt(&d, &key(), 0, p, 5000);
    let n = d.len() as u64;
    let seg = 4096 + 16;

    let mut flipped = ct.clone();
    flipped[seg + 10] ^= 1;
    assert!(full(&flipped, &key(), p, n).is_err(), "bit flip");

    // Truncate the last segment and claim a shorter plaintext: the new last
    // segment was sealed as non-final, so it fails.
    let truncated = &ct[..3 * seg];
    assert!(full(truncated, &key(), p, 3 * 4096).is_err(), "truncation at a boundary");
    assert!(full(&ct[..ct.len() - 1], &key(), p, n).is_err(), "truncation mid segment");

    let mut swapped = ct.clone();
    swapped[..seg].copy_from_slice(&ct[seg..2 * seg]);
    swapped[seg..2 * seg].copy_from_slice(&ct[..seg]);
    assert!(full(&swapped, &key(), p, n).is_err(), "reorder");

    // Splice a segment from another part (different part key and number).
    let other = ObjectKey::from_bytes([3; 32]).part_key(1, 4096);
    let ct2 = encrypt(&d, &other, 1, p, 5000);
    let mut spliced = ct.clone();
    spliced[seg..2 * seg].copy_from_slice(&ct2[seg..2 * seg]);
    assert!(full(&spliced, &key(), p, n).is_err(), "splice");

    // Appending a whole extra segment: the old final one no longer sits last.
    let mut appended = ct.clone();
    appended.extend_from_slice(&ct[..seg]);
    let claimed = p.plaintext_len(appended.len() as u64).unwrap();
    assert!(full(&appended, &key(), p, claimed).is_err(), "append");

    let wrong = ObjectKey::from_bytes([4; 32]).part_key(0, 4096);
    assert!(full(&ct, &wrong, p, n).is_err(), "wrong key");
}

#[test]
fn declared_length_is_enforced() {
    let p = FormatParams::new(4096).unwrap();
    let d = data(5000);
    for declared in [4999u64, 5001] {
        let s = EncryptStream::new(chunks(&d, 700), &key(), 0, p, Some(declared), Box::new(NoObserver));
        let r: Vec<Result<Bytes, StdError>> = block_on(s.collect());
        assert!(r.iter().any(|x| x.is_err()), "declared {declared}");
    }
}

struct Veto;
impl PlaintextObserver for Veto {
    fn update(&mut self, _: &Bytes) {}
    fn poll_finish(&mut self, _: &mut std::task::Context<'_>, _: u64) -> std::task::Poll<Result<(), StdError>> {
        std::task::Poll::Ready(Err("checksum mismatch".into()))
    }
}

#[test]
fn observer_veto_withholds_the_final_segment() {
    let p = FormatParams::new(4096).unwrap();
    let d = data(4096 * 2 + 5);
    let s = EncryptStream::new(chunks(&d, 4096), &key(), 0, p, None, Box::new(Veto));
    let r: Vec<Result<Bytes, StdError>> = block_on(s.collect());
    assert!(r.last().unwrap().is_err());
    let ok_bytes: usize = r.iter().filter_map(|x| x.as_ref().ok()).map(Bytes::len).sum();
    assert!(ok_bytes < p.ciphertext_len(d.len() as u64) as usize);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_range_decrypts_exactly(n in 1usize..40_000, a in 0u64..40_000, len in 1u64..40_000, chunk in 1usize..9000, rc in any::<bool>()) {
        let p = FormatParams::new(4096).unwrap();
        let d = data(n);
        let k = ObjectKey::from_bytes([8; 32]).part_key(5, 4096);
        let ct = encrypt(&d, &k, 5, p, chunk);
        let start = a % n as u64;
        let end = (start + len).min(n as u64);
        let imp = if rc { AeadImpl::RustCrypto } else { AeadImpl::AwsLc };
        let got = decrypt(&ct, &k, 5, p, n as u64, start..end, imp).unwrap();
        prop_assert_eq!(&got[..], &d[start as usize..end as usize]);
    }
}

#[test]
fn ranges_span_parts_and_parts_cannot_be_swapped() {
    let p = FormatParams::new(4096).unwrap();
    let oek = ObjectKey::from_bytes([9; 32]);
    let (d1, d2) = (data(5000), data(9000).into_iter().rev().collect::<Vec<u8>>());
    let (k1, k2) = (oek.part_key(1, 4096), oek.part_key(2, 4096));
    let (c1, c2) = (encrypt(&d1, &k1, 1, p, 999), encrypt(&d2, &k2, 2, p, 999));
    let run = |ct: Vec<u8>, plans: Vec<(PartKey, DecryptPlan)>| -> Result<Vec<u8>, String> {
        let s = DecryptStream::multipart(chunks(&ct, 1234), p, plans);
        let parts: Vec<Result<Bytes, StdError>> = block_on(s.collect());
        parts
            .into_iter()
            .map(|r| r.map(|b| b.to_vec()).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.concat())
    };
    // Plaintext 4990..5020 spans the end of part 1 and the start of part 2.
    let m1 = p.map_range(5000, 4990..5000).unwrap();
    let m2 = p.map_range(9000, 0..20).unwrap();
    let plan = |part, len, m: &SegmentRange| DecryptPlan {
        part,
        attempt: 0,
        part_plain_len: len,
        first_segment: m.first_segment,
        last_segment: m.last_segment,
        skip: m.skip,
        take: m.take,
    };
    let mut ct = c1[m1.ciphertext.start as usize..].to_vec();
    ct.extend_from_slice(&c2[..m2.ciphertext.end as usize]);
    let got = run(ct.clone(), vec![(k1.clone(), plan(1, 5000, &m1)), (k2.clone(), plan(2, 9000, &m2))]).unwrap();
    let mut want = d1[4990..].to_vec();
    want.extend_from_slice(&d2[..20]);
    assert_eq!(got, want);
    // The same bytes with the part order claimed the other way round fail.
    assert!(run(ct, vec![(k2, plan(2, 5000, &m1)), (k1, plan(1, 9000, &m2))]).is_err());
}
