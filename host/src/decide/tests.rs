use super::*;
use crate::config::RequireEncryption;
use crate::policy::engine::{Limits, PolicyEngine};
use crate::sse::{CustomerKey, SseMode};
use crate::state::StateStore;
use defaults::BucketEncryption;
use kgw_core::bucket_policy::BucketPolicy;

async fn decider(dir: &std::path::Path, gateway: Option<SseMode>, require: RequireEncryption) -> Decider {
    let store = StateStore::open(&dir.join("state")).unwrap();
    let engine = Arc::new(PolicyEngine::new(Limits::default()).unwrap());
    let registry = PolicyRegistry::open(engine, dir.join("policies"), store.clone()).await.unwrap();
    Decider::new(
        Arc::new(EncryptionDefaults::new(store.clone(), gateway, require)),
        BucketPolicies::new(store),
        Arc::new(registry),
        Arc::new(Metrics::new()),
    )
}

fn intent(bucket: &str) -> WriteIntent {
    WriteIntent {
        op: "PutObject",
        bucket: bucket.into(),
        key: "k".into(),
        principal: Some("AKIA".into()),
        source_ip: None,
        secure_transport: true,
        headers: Vec::new(),
    }
}

fn kms(key: Option<&str>) -> SseRequest {
    SseRequest::Kms { key_id: key.map(str::to_owned), context: Default::default() }
}

fn sse_c() -> SseRequest {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = [3u8; 32];
    let md5 = <md5::Md5 as md5::Digest>::digest(key);
    SseRequest::Customer(
        CustomerKey::parse(Some("AES256"), Some(&b64.encode(key)), Some(&b64.encode(md5)), true).unwrap().unwrap(),
    )
}

fn default_of(algorithm: SseMode, key: Option<&str>, blocked: &[&str]) -> BucketEncryption {
    BucketEncryption {
        algorithm,
        kms_key_id: key.map(str::to_owned),
        bucket_key_enabled: false,
        blocked: blocked.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[tokio::test]
async fn defaults_fill_in_and_headers_win() {
    let dir = tempfile::tempdir().unwrap();
    let d = decider(dir.path(), Some(SseMode::S3), RequireEncryption::Off).await;
    // No bucket default: the gateway's.
    assert!(matches!(d.decide(&intent("b"), SseRequest::None).await.unwrap(), SseRequest::S3));
    d.defaults.set("b", Some(default_of(SseMode::Kms, Some("k1"), &[]))).await.unwrap();
    match d.decide(&intent("b"), SseRequest::None).await.unwrap() {
        SseRequest::Kms { key_id, .. } => assert_eq!(key_id.as_deref(), Some("k1")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(d.decide(&intent("b"), SseRequest::S3).await.unwrap(), SseRequest::S3));
}

#[tokio::test]
async fn blocked_sse_c_and_required_encryption_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = decider(dir.path(), None, RequireEncryption::All).await;
    assert!(matches!(d.decide(&intent("b"), SseRequest::None).await, Err(DecisionError::EncryptionRequired)));
    d.defaults.set("b", Some(default_of(SseMode::S3, None, &["SSE-C"]))).await.unwrap();
    assert!(matches!(d.decide(&intent("b"), sse_c()).await, Err(DecisionError::CustomerKeysBlocked)));
    assert!(matches!(d.decide(&intent("b"), SseRequest::None).await.unwrap(), SseRequest::S3));
}

#[tokio::test]
async fn the_bucket_policy_sees_the_headers_as_sent_before_any_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = decider(dir.path(), None, RequireEncryption::Off).await;
    let text = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:PutObject",
        "Resource":"arn:aws:s3:::b/*","Condition":{"StringNotEquals":{"s3:x-amz-server-side-encryption":"aws:kms"}}}]}"#;
    d.bucket_policies.set("b", Some(BucketPolicy::parse("b", text).unwrap())).await.unwrap();
    d.defaults.set("b", Some(default_of(SseMode::Kms, None, &[]))).await.unwrap();
    // The default would encrypt with SSE-KMS, but the request asked for nothing.
    assert!(matches!(d.decide(&intent("b"), SseRequest::None).await, Err(DecisionError::BucketPolicyDenied)));
    assert!(matches!(d.decide(&intent("b"), SseRequest::S3).await, Err(DecisionError::BucketPolicyDenied)));
    assert!(matches!(d.decide(&intent("b"), kms(None)).await.unwrap(), SseRequest::Kms { .. }));
    // Other buckets are not its business.
    assert!(matches!(d.decide(&intent("other"), SseRequest::None).await.unwrap(), SseRequest::None));
}
