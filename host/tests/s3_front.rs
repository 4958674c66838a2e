//! The S3 front in-process: the gateway's real service (`server::build`,
//! embedded store, local KMS) driven by the AWS SDK through s3s-aws's
//! in-memory connector. No sockets, no other process: `cargo test` alone
//! covers the encrypt/decrypt, range, copy, multipart and fail-closed
//! paths; the end-to-end suite (tests/e2e) adds real clients and servers.

use std::path::{Path, PathBuf};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kms_gateway::config::ServeArgs;

const AK: &str = "inprocess-access";
const SK: &str = "inprocess-secret-key-0123456789";

struct Front {
    client: Client,
    dir: tempfile::TempDir,
}

impl Front {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs {
            data_dir: Some(dir.path().to_owned()),
            access_key: Some(AK.into()),
            secret_key: Some(SK.into()),
            admin_access_key: Some("inprocess-admin".into()),
            admin_secret_key: Some("inprocess-admin-secret-0123456789".into()),
            // No TLS in process; SSE-C is allowed as over TLS.
            allow_insecure_sse_c: Some(true),
            ..Default::default()
        };
        let built = kms_gateway::server::build(&args).await.expect("gateway builds");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(s3s_aws::Client::from(built.service))
            .credentials_provider(Credentials::new(AK, SK, None, None, "in-process"))
            .region(Region::new("us-east-1"))
            .endpoint_url("http://localhost:9000")
            .force_path_style(true)
            .build();
        let client = Client::from_conf(config);
        client.create_bucket().bucket("bkt").send().await.expect("bucket");
        Self { client, dir }
    }

    /// Where the embedded store keeps `bkt/<key>` (ciphertext).
    fn stored(&self, key: &str) -> PathBuf {
        self.dir.path().join("store").join("bkt").join(key)
    }

    async fn put(&self, key: &str, body: &[u8], mode: Mode) -> aws_sdk_s3::operation::put_object::PutObjectOutput {
        let req = self.client.put_object().bucket("bkt").key(key).body(ByteStream::from(body.to_vec()));
        mode.apply_put(req).send().await.expect("put")
    }

    async fn get(&self, key: &str, range: Option<&str>, mode: Mode) -> Result<Vec<u8>, String> {
        let mut req = self.client.get_object().bucket("bkt").key(key);
        if let Some(r) = range {
            req = req.range(r);
        }
        let req = mode.apply_get(req);
        let out = req.send().await.map_err(|e| format!("{:?}", e.into_service_error()))?;
        let body = out.body.collect().await.map_err(|e| e.to_string())?;
        Ok(body.into_bytes().to_vec())
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Plain,
    S3,
    Kms,
    Customer,
}

const CUSTOMER_KEY: [u8; 32] = [7; 32];

fn customer() -> (String, String) {
    use md5::Digest;
    (B64.encode(CUSTOMER_KEY), B64.encode(md5::Md5::digest(CUSTOMER_KEY)))
}

impl Mode {
    fn apply_put(
        self,
        r: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        match self {
            Mode::Plain => r,
            Mode::S3 => r.server_side_encryption(ServerSideEncryption::Aes256),
            Mode::Kms => r.server_side_encryption(ServerSideEncryption::AwsKms),
            Mode::Customer => {
                let (k, m) = customer();
                r.sse_customer_algorithm("AES256").sse_customer_key(k).sse_customer_key_md5(m)
            }
        }
    }

    fn apply_get(
        self,
        r: aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder,
    ) -> aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder {
        match self {
            Mode::Customer => {
                let (k, m) = customer();
                r.sse_customer_algorithm("AES256").sse_customer_key(k).sse_customer_key_md5(m)
            }
            _ => r,
        }
    }
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn stored_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("stored object")
}

#[tokio::test]
async fn every_mode_round_trips_and_the_store_holds_ciphertext() {
    let f = Front::new().await;
    // Segment edges (1 MiB segments) and an empty object.
    for (i, n) in [0usize, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 << 20].into_iter().enumerate() {
        for mode in [Mode::S3, Mode::Kms, Mode::Customer] {
            let key = format!("{mode:?}-{n}");
            let body = payload(n, i as u8);
            f.put(&key, &body, mode).await;
            assert_eq!(f.get(&key, None, mode).await.unwrap(), body, "{key}");
            let stored = stored_bytes(&f.stored(&key));
            assert!(stored.len() > body.len(), "{key}: tags and segments are stored");
            if n >= 64 {
                assert!(!stored.windows(64).any(|w| w == &body[..64]), "{key}: no plaintext at rest");
            }
        }
    }
    f.put("plain", b"as sent", Mode::Plain).await;
    assert_eq!(stored_bytes(&f.stored("plain")), b"as sent");
}

#[tokio::test]
async fn ranges_return_exactly_the_bytes_asked_for() {
    let f = Front::new().await;
    let body = payload((2 << 20) + 12345, 3);
    f.put("r", &body, Mode::Kms).await;
    let n = body.len();
    for (a, b) in [(0, 0), (0, 99), ((1 << 20) - 1, 1 << 20), (5, n - 1), (n - 1, n - 1), ((1 << 20) + 7, (2 << 20) + 3)] {
        assert_eq!(f.get("r", Some(&format!("bytes={a}-{b}")), Mode::Kms).await.unwrap(), &body[a..=b], "{a}-{b}");
    }
    assert_eq!(f.get("r", Some("bytes=-10"), Mode::Kms).await.unwrap(), &body[n - 10..]);
}

#[tokio::test]
async fn a_flipped_byte_of_the_ciphertext_is_never_answered() {
    let f = Front::new().await;
    let body = payload(300_000, 9);
    f.put("t", &body, Mode::S3).await;
    let path = f.stored("t");
    let clean = stored_bytes(&path);
    for pos in [0, 17, clean.len() / 2, clean.len() - 1] {
        let mut bad = clean.clone();
        bad[pos] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        match f.get("t", None, Mode::S3).await {
            Ok(got) => panic!("byte {pos} flipped, yet {} bytes answered", got.len()),
            Err(e) => assert!(!e.is_empty()),
        }
    }
    std::fs::write(&path, &clean).unwrap();
    assert_eq!(f.get("t", None, Mode::S3).await.unwrap(), body);
}

#[tokio::test]
async fn sse_c_needs_the_key_that_wrote_the_object() {
    let f = Front::new().await;
    f.put("c", b"customer data", Mode::Customer).await;
    let err = f.get("c", None, Mode::Plain).await.unwrap_err();
    assert!(err.contains("InvalidRequest") || err.contains("400"), "{err}");
    let other = B64.encode([8u8; 32]);
    let other_md5 = {
        use md5::Digest;
        B64.encode(md5::Md5::digest([8u8; 32]))
    };
    let wrong = f
        .client
        .get_object()
        .bucket("bkt")
        .key("c")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(other)
        .sse_customer_key_md5(other_md5)
        .send()
        .await;
    assert!(wrong.is_err(), "another key reads nothing");
}

#[tokio::test]
async fn copies_re_encrypt_between_modes() {
    let f = Front::new().await;
    let body = payload(1_500_000, 4);
    f.put("src", &body, Mode::Customer).await;
    let (k, m) = customer();
    f.client
        .copy_object()
        .bucket("bkt")
        .key("dst")
        .copy_source("bkt/src")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(k)
        .copy_source_sse_customer_key_md5(m)
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .send()
        .await
        .expect("copy");
    assert_eq!(f.get("dst", None, Mode::Kms).await.unwrap(), body);
    let head = f.client.head_object().bucket("bkt").key("dst").send().await.unwrap();
    assert_eq!(head.server_side_encryption(), Some(&ServerSideEncryption::AwsKms));
    assert_eq!(head.content_length(), Some(body.len() as i64));
}

#[tokio::test]
async fn multipart_with_a_re_uploaded_part_reads_back_the_last_upload() {
    let f = Front::new().await;
    let c = &f.client;
    let up = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let parts = [payload(5 << 20, 1), payload(5 << 20, 2), payload(1000, 3)];
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        if n == 2 {
            // A first upload of part 2 with other bytes, replaced below.
            c.upload_part()
                .bucket("bkt")
                .key("mp")
                .upload_id(id)
                .part_number(2)
                .body(ByteStream::from(payload(5 << 20, 99)))
                .send()
                .await
                .unwrap();
        }
        let out = c
            .upload_part()
            .bucket("bkt")
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .unwrap();
        done.push(CompletedPart::builder().part_number(n).e_tag(out.e_tag().unwrap()).build());
    }
    c.complete_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
        .send()
        .await
        .unwrap();
    let whole: Vec<u8> = parts.concat();
    assert_eq!(f.get("mp", None, Mode::S3).await.unwrap(), whole);
    let across = format!("bytes={}-{}", (5 << 20) - 10, (10 << 20) + 10);
    assert_eq!(f.get("mp", Some(&across), Mode::S3).await.unwrap(), &whole[(5 << 20) - 10..=(10 << 20) + 10]);
    let part2 = c.get_object().bucket("bkt").key("mp").part_number(2).send().await.unwrap();
    assert_eq!(part2.parts_count(), Some(3));
    assert_eq!(part2.body.collect().await.unwrap().into_bytes().as_ref(), parts[1].as_slice());
}

#[tokio::test]
async fn a_bucket_policy_requiring_sse_kms_refuses_other_writes_and_stores_nothing() {
    let f = Front::new().await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"DenyUnEncryptedObjectUploads","Effect":"Deny",
        "Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::bkt/*",
        "Condition":{"StringNotEquals":{"s3:x-amz-server-side-encryption":"aws:kms"}}}]}"#;
    f.client.put_bucket_policy().bucket("bkt").policy(policy).send().await.expect("policy");
    let got = f.client.get_bucket_policy().bucket("bkt").send().await.expect("get policy");
    assert_eq!(got.policy(), Some(policy));
    for mode in [Mode::Plain, Mode::S3, Mode::Customer] {
        let req = f.client.put_object().bucket("bkt").key("denied").body(ByteStream::from_static(b"data"));
        let err = mode.apply_put(req).send().await.expect_err("denied").into_service_error();
        assert_eq!(err.meta().code(), Some("AccessDenied"), "{mode:?}");
        assert!(!f.stored("denied").exists(), "{mode:?}: nothing stored");
    }
    f.put("kms", b"data", Mode::Kms).await;
    assert_eq!(f.get("kms", None, Mode::Kms).await.unwrap(), b"data");
    let bad = f.client.put_bucket_policy().bucket("bkt").policy("{").send().await.expect_err("malformed");
    assert_eq!(bad.into_service_error().meta().code(), Some("MalformedPolicy"));
    f.client.delete_bucket_policy().bucket("bkt").send().await.expect("delete policy");
    f.put("plain", b"data", Mode::Plain).await;
}
