//! Format throughput: sealing and opening 1 MiB segments through the
//! streaming format, against raw AES-256-GCM of the same library in the
//! same run (the format's overhead is the ratio); and what format v2 adds
//! per read: deriving the layout key and checking the layout tag.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::{StreamExt, executor::block_on, stream};
use kms_gateway::crypto::aead::{AeadImpl, SegmentCipher};
use kms_gateway::crypto::manifest::{LayoutBinding, PartEntry};
use kms_gateway::crypto::stream::{DecryptPlan, DecryptStream, EncryptStream, NoObserver, StdError};
use kms_gateway::crypto::{FormatParams, ObjectKey};

const TOTAL: usize = 64 << 20;
const SEG: usize = 1 << 20;

/// The plaintext as a stream of `chunk`-sized slices of one shared buffer
/// (allocated once, outside the timed loop).
fn input(data: &Bytes, chunk: usize) -> impl futures::Stream<Item = Result<Bytes, StdError>> + Unpin + use<> {
    let parts: Vec<Result<Bytes, StdError>> = (0..TOTAL / chunk).map(|i| Ok(data.slice(i * chunk..(i + 1) * chunk))).collect();
    stream::iter(parts)
}

fn bench(c: &mut Criterion) {
    let params = FormatParams::default();
    let data = Bytes::from(vec![0x5au8; TOTAL]);
    let key = ObjectKey::from_bytes([7; 32]).part_key(0, params.segment_size());
    let mut g = c.benchmark_group("aes-256-gcm 64 MiB");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.sample_size(10);

    for (name, imp) in [("raw aws-lc-rs", AeadImpl::AwsLc), ("raw RustCrypto aes-gcm", AeadImpl::RustCrypto)] {
        let cipher = SegmentCipher::new(imp, key.as_bytes());
        g.bench_function(name, |b| {
            b.iter(|| {
                // The same memory traffic as the format: each segment is
                // copied out of the 64 MiB input, then sealed in place.
                for i in 0..TOTAL / SEG {
                    let mut buf = BytesMut::with_capacity(SEG + 16);
                    buf.extend_from_slice(&data[i * SEG..(i + 1) * SEG]);
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
                    cipher.seal(&nonce, b"aad", &mut buf).unwrap();
                    black_box(&buf);
                }
            })
        });
    }

    g.bench_function("format v1 seal (EncryptStream, 64 KiB input chunks)", |b| {
        b.iter(|| {
            let s = EncryptStream::new(input(&data, 64 << 10), &key, 0, params, Some(TOTAL as u64), Box::new(NoObserver));
            block_on(s.for_each(|r| {
                black_box(r.unwrap());
                async {}
            }))
        })
    });

    let ct: Vec<Bytes> = block_on(
        EncryptStream::new(input(&data, SEG), &key, 0, params, Some(TOTAL as u64), Box::new(NoObserver))
            .map(|r| r.unwrap())
            .collect(),
    );
    g.bench_function("format v1 open (DecryptStream)", |b| {
        b.iter(|| {
            let src = stream::iter(ct.iter().cloned().map(Ok::<Bytes, StdError>));
            let last = (TOTAL / SEG - 1) as u64;
            let plan = DecryptPlan {
                part: 0,
                attempt: 0,
                part_plain_len: TOTAL as u64,
                first_segment: 0,
                last_segment: last,
                skip: 0,
                take: TOTAL as u64,
            };
            block_on(DecryptStream::new(src, &key, params, plan).for_each(|r| {
                black_box(r.unwrap());
                async {}
            }))
        })
    });
    g.finish();
}

/// Format v2's check before the first byte: layout key derivation plus
/// the tag over a single PUT, a 128-part and a 10 000-part table.
fn layout_tag(c: &mut Criterion) {
    let oek = ObjectKey::from_bytes([9; 32]);
    let mut g = c.benchmark_group("layout tag check");
    for parts in [0usize, 128, 10_000] {
        let table: Vec<PartEntry> =
            (1..=parts as u32).map(|number| PartEntry { number, attempt: 0, plain_len: 8 << 20 }).collect();
        let b = LayoutBinding {
            mode: "SSE-KMS",
            bucket: "bucket",
            key: "some/object/key.bin",
            segment_size: 1 << 20,
            plain_size: table.iter().map(|p| p.plain_len).sum(),
            parts: (parts > 0).then_some(table.as_slice()),
        };
        let tag = b.tag(&oek.layout_key());
        g.bench_function(format!("{parts} parts"), |bench| {
            bench.iter(|| black_box(&b).verify(&black_box(&oek).layout_key(), &tag).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench, layout_tag);
criterion_main!(benches);
