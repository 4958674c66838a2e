use super::*;
use crate::audit::AuditLog;
use crate::config::RequireEncryption;
use crate::kms::manager::{KmsManager, ManagerContext, Startup};
use crate::kms::secret_files::SecretFilePolicy;
use crate::kms::service::Observer;
use crate::policy::engine::{Limits, PolicyEngine};
use crate::sse::{CustomerKey, SseMode};
use crate::state::StateStore;
use defaults::BucketEncryption;
use kgw_core::bucket_policy::BucketPolicy;

async fn decider(dir: &std::path::Path, gateway: Option<SseMode>, require: RequireEncryption) -> Decider {
    decider_with(dir, gateway, require, Startup::NotConfigured).await
}

async fn decider_with(dir: &std::path::Path, gateway: Option<SseMode>, require: RequireEncryption, kms: Startup) -> Decider {
    let store = StateStore::open(&dir.join("state")).unwrap();
    let engine = Arc::new(PolicyEngine::new(Limits::default()).unwrap());
    let registry = PolicyRegistry::open(engine, dir.join("policies"), store.clone()).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let ctx = ManagerContext {
        data_dir: dir.to_owned(),
        master: crate::crypto::SealingKey::from_bytes([5; 32]),
        store: store.clone(),
        jobs: crate::state::jobs::Jobs::new(store.clone(), "test".into()),
        observer: Arc::new(Observer { metrics: metrics.clone(), audit: Arc::new(AuditLog::disabled()) }),
        references: Arc::new(|_| Box::pin(async { Vec::new() })),
        probe_interval: std::time::Duration::ZERO,
        fallback_key: crate::kms::KeyId::new("k").unwrap(),
        secret_files: SecretFilePolicy::new(&[], dir, None),
    };
    let kms = KmsManager::boot(ctx, kms).await.unwrap();
    Decider::new(DeciderParts {
        defaults: Arc::new(EncryptionDefaults::new(store.clone(), gateway, require)),
        bucket_policies: BucketPolicies::new(store),
        policies: Arc::new(registry),
        kms,
        params: Default::default(),
        metrics,
        identities: None,
        audit: None,
    })
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

#[tokio::test]
async fn sealed_keys_open_only_for_their_object_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let local = crate::kms::config::KmsConfig::local_default(crate::kms::KeyId::new("k").unwrap());
    let d = decider_with(dir.path(), None, RequireEncryption::Off, Startup::Default(local)).await;
    for sse in [SseRequest::S3, kms(None), sse_c()] {
        // The same client key again (sse_c is deterministic).
        let customer = match (&sse, sse_c()) {
            (SseRequest::Customer(_), SseRequest::Customer(c)) => Some(c),
            _ => None,
        };
        let oek = crate::crypto::ObjectKey::generate().unwrap();
        let sealed = d.seal(oek.clone(), sse, "b", "o", None).await.unwrap().expect("encrypted");
        assert_eq!(sealed.kms.is_none(), customer.is_some());
        let opened = d.open(&sealed.record, customer.as_ref(), "b", "o", None).await.unwrap();
        assert_eq!(opened.as_bytes(), oek.as_bytes());
        // Bound to its bucket and key: moved elsewhere, it does not open.
        assert!(d.open(&sealed.record, customer.as_ref(), "b", "other", None).await.is_err());
        assert!(d.open(&sealed.record, customer.as_ref(), "b2", "o", None).await.is_err());
    }
    assert!(d.seal(crate::crypto::ObjectKey::generate().unwrap(), SseRequest::None, "b", "o", None).await.unwrap().is_none());
    let unknown = d.seal(crate::crypto::ObjectKey::generate().unwrap(), kms(Some("no-such-key")), "b", "o", None).await;
    assert!(matches!(unknown, Err(keys::KeyError::Kms(_))), "{:?}", unknown.err());
}
