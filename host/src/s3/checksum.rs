//! Client integrity checks over the plaintext: `Content-MD5` and the
//! `x-amz-checksum-*` values (in headers or in aws-chunked trailers).
//!
//! The gateway verifies them itself and never forwards them with the
//! ciphertext. The final segment is held back until they match, so a
//! mismatching upload never completes upstream.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{Checksum, ChecksumAlgorithm};
use s3s::{S3Error, S3ErrorCode, TrailingHeaders};

use super::hashing::{Digests, Hashing};
use crate::crypto::stream::{PlaintextObserver, StdError};

/// What an upload's body produced, read after the upstream call.
#[derive(Default)]
pub(super) struct UploadOutcome {
    /// Set when the observer rejected the body; takes precedence over
    /// whatever error the upstream call reports.
    pub error: Option<S3Error>,
    pub md5: Option<[u8; 16]>,
    pub checksums: Checksum,
}

pub(super) type SharedOutcome = Arc<Mutex<UploadOutcome>>;

/// Expected checksum values and the hashers to compare them with.
pub(super) struct ChecksumObserver {
    hashing: Hashing,
    expected_md5: Option<String>,
    expected: Checksum,
    trailers: Option<TrailingHeaders>,
    outcome: SharedOutcome,
}

fn algorithm_from_name(name: &str) -> Option<&'static str> {
    match name.trim().to_ascii_lowercase().as_str() {
        "x-amz-checksum-crc32" | "crc32" => Some(ChecksumAlgorithm::CRC32),
        "x-amz-checksum-crc32c" | "crc32c" => Some(ChecksumAlgorithm::CRC32C),
        "x-amz-checksum-sha1" | "sha1" => Some(ChecksumAlgorithm::SHA1),
        "x-amz-checksum-sha256" | "sha256" => Some(ChecksumAlgorithm::SHA256),
        "x-amz-checksum-crc64nvme" | "crc64nvme" => Some(ChecksumAlgorithm::CRC64NVME),
        _ => None,
    }
}

/// The integrity fields a client sent with a body, taken out of an input
/// (see [`take_client_checksums!`]).
#[derive(Default)]
pub(super) struct ClientChecksums {
    pub(super) expected: Checksum,
    pub(super) algorithm: Option<ChecksumAlgorithm>,
    pub(super) content_md5: Option<String>,
}

/// Move the checksum fields out of an upload input (PutObject, UploadPart).
macro_rules! take_client_checksums {
    ($input:expr) => {
        $crate::s3::checksum::ClientChecksums {
            expected: s3s::dto::Checksum {
                checksum_crc32: $input.checksum_crc32.take(),
                checksum_crc32c: $input.checksum_crc32c.take(),
                checksum_sha1: $input.checksum_sha1.take(),
                checksum_sha256: $input.checksum_sha256.take(),
                checksum_crc64nvme: $input.checksum_crc64nvme.take(),
                ..Default::default()
            },
            algorithm: $input.checksum_algorithm.take(),
            content_md5: $input.content_md5.take(),
        }
    };
}
pub(super) use take_client_checksums;

impl ChecksumObserver {
    /// Build an observer for `client`'s checksums (they must not reach the
    /// upstream with a ciphertext body). `want_md5` forces an MD5 even
    /// without `Content-MD5` (SSE-S3 ETag). `len` is the body's declared
    /// length: a large body is hashed beside the upload, not in its path.
    pub(super) fn new(
        client: ClientChecksums,
        trailer_names: Option<&str>,
        trailers: Option<TrailingHeaders>,
        want_md5: bool,
        len: Option<u64>,
    ) -> Result<(Self, SharedOutcome), S3Error> {
        let ClientChecksums { expected, algorithm, content_md5 } = client;
        let mut hasher = ChecksumHasher::default();
        let mut enable = |alg: &str| match alg {
            ChecksumAlgorithm::CRC32 => hasher.crc32 = Some(Default::default()),
            ChecksumAlgorithm::CRC32C => hasher.crc32c = Some(Default::default()),
            ChecksumAlgorithm::SHA1 => hasher.sha1 = Some(Default::default()),
            ChecksumAlgorithm::SHA256 => hasher.sha256 = Some(Default::default()),
            _ => hasher.crc64nvme = Some(Default::default()),
        };
        if expected.checksum_crc32.is_some() {
            enable(ChecksumAlgorithm::CRC32);
        }
        if expected.checksum_crc32c.is_some() {
            enable(ChecksumAlgorithm::CRC32C);
        }
        if expected.checksum_sha1.is_some() {
            enable(ChecksumAlgorithm::SHA1);
        }
        if expected.checksum_sha256.is_some() {
            enable(ChecksumAlgorithm::SHA256);
        }
        if expected.checksum_crc64nvme.is_some() {
            enable(ChecksumAlgorithm::CRC64NVME);
        }
        if let Some(alg) = algorithm {
            let alg = algorithm_from_name(alg.as_str())
                .ok_or_else(|| S3Error::with_message(S3ErrorCode::InvalidRequest, "Unsupported checksum algorithm."))?;
            enable(alg);
        }
        for name in trailer_names.unwrap_or_default().split(',').filter(|s| !s.trim().is_empty()) {
            let alg = algorithm_from_name(name)
                .ok_or_else(|| S3Error::with_message(S3ErrorCode::InvalidRequest, "Unsupported trailer checksum."))?;
            enable(alg);
        }
        let expected_md5 = content_md5;
        let outcome = SharedOutcome::default();
        let digests = Digests { md5: (want_md5 || expected_md5.is_some()).then(Md5::new), checksums: hasher };
        let obs = Self {
            hashing: Hashing::new(digests, len),
            expected_md5,
            expected,
            trailers: if trailer_names.is_some() { trailers } else { None },
            outcome: outcome.clone(),
        };
        Ok((obs, outcome))
    }

    fn verify(&mut self, digests: Digests) -> Result<(), S3Error> {
        let Digests { md5, checksums } = digests;
        let md5 = md5.map(|m| {
            let d = m.finalize();
            let mut out = [0u8; 16];
            out.copy_from_slice(d.as_ref());
            out
        });
        if let Some(exp) = &self.expected_md5 {
            let got = md5.map(|d| B64.encode(d)).unwrap_or_default();
            if exp.trim() != got {
                return Err(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    "The Content-MD5 you specified did not match what we received.",
                ));
            }
        }
        let mut expected = std::mem::take(&mut self.expected);
        if let Some(t) = &self.trailers {
            let read = t.read(|h| {
                let v = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
                (
                    v("x-amz-checksum-crc32"),
                    v("x-amz-checksum-crc32c"),
                    v("x-amz-checksum-sha1"),
                    v("x-amz-checksum-sha256"),
                    v("x-amz-checksum-crc64nvme"),
                )
            });
            let Some((a, b, c, d, e)) = read else {
                return Err(S3Error::with_message(
                    S3ErrorCode::IncompleteBody,
                    "The announced trailing checksum was not received.",
                ));
            };
            expected.checksum_crc32 = expected.checksum_crc32.or(a);
            expected.checksum_crc32c = expected.checksum_crc32c.or(b);
            expected.checksum_sha1 = expected.checksum_sha1.or(c);
            expected.checksum_sha256 = expected.checksum_sha256.or(d);
            expected.checksum_crc64nvme = expected.checksum_crc64nvme.or(e);
        }
        let got = checksums.finalize();
        let pairs = [
            ("CRC32", &expected.checksum_crc32, &got.checksum_crc32),
            ("CRC32C", &expected.checksum_crc32c, &got.checksum_crc32c),
            ("SHA1", &expected.checksum_sha1, &got.checksum_sha1),
            ("SHA256", &expected.checksum_sha256, &got.checksum_sha256),
            ("CRC64NVME", &expected.checksum_crc64nvme, &got.checksum_crc64nvme),
        ];
        for (name, exp, got) in pairs {
            if let Some(exp) = exp
                && got.as_deref() != Some(exp.trim())
            {
                return Err(S3Error::with_message_fmt(
                    S3ErrorCode::BadDigest,
                    format_args!("The {name} you specified did not match the calculated checksum."),
                ));
            }
        }
        let mut out = self.outcome.lock().expect("outcome lock");
        out.md5 = md5;
        // Echo only what the client asked for (or we computed for it).
        out.checksums = got;
        Ok(())
    }
}

impl PlaintextObserver for ChecksumObserver {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.hashing.poll_ready(cx)
    }

    fn update(&mut self, data: &Bytes) {
        self.hashing.update(data);
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>, _total: u64) -> Poll<Result<(), StdError>> {
        let verdict = match ready!(self.hashing.poll_digests(cx)) {
            Some(digests) => self.verify(digests),
            None => Err(S3Error::with_message(S3ErrorCode::InternalError, "The upload's checksums could not be computed.")),
        };
        Poll::Ready(verdict.map_err(|e| {
            let msg = e.message().unwrap_or("checksum mismatch").to_owned();
            self.outcome.lock().expect("outcome lock").error = Some(e);
            msg.into()
        }))
    }

    fn failed(&mut self, error: &StdError) {
        let mut o = self.outcome.lock().expect("outcome lock");
        if o.error.is_none() {
            o.error = Some(super::body::client_body_error(error));
        }
    }
}
