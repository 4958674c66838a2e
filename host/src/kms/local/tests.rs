use super::*;
use std::os::unix::fs::PermissionsExt;

fn ctx(k: &str) -> EncryptionContext {
    EncryptionContext::from([("aws:s3:arn".to_string(), format!("arn:aws:s3:::b/{k}"))])
}

fn open(dir: &Path, master: u8) -> LocalBackend {
    LocalBackend::open(dir, SealingKey::from_bytes([master; 32])).unwrap()
}

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

async fn create(b: &LocalBackend, name: &str) -> KeyInfo {
    b.create_key(CreateKeyRequest { key_id: Some(id(name)), description: "d".into(), tags: Default::default() }).await.unwrap()
}

#[tokio::test]
async fn data_keys_roundtrip_and_bind_context() {
    let d = tempfile::tempdir().unwrap();
    let b = open(d.path(), 1);
    create(&b, "k1").await;
    let dk = b.generate_data_key(&id("k1"), &ctx("a")).await.unwrap();
    assert_eq!(dk.key_version, 1);
    let back = b.decrypt_data_key(&id("k1"), &dk.wrapped, &ctx("a")).await.unwrap();
    assert_eq!(back.as_bytes(), dk.plaintext.as_bytes());
    assert!(matches!(b.decrypt_data_key(&id("k1"), &dk.wrapped, &ctx("b")).await, Err(KmsError::Unwrap(_))));
    create(&b, "k2").await;
    assert!(b.decrypt_data_key(&id("k2"), &dk.wrapped, &ctx("a")).await.is_err());
    assert!(matches!(b.generate_data_key(&id("nope"), &ctx("a")).await, Err(KmsError::NotFound(_))));
}

#[tokio::test]
async fn rotation_keeps_old_versions_decrypting() {
    let d = tempfile::tempdir().unwrap();
    let b = open(d.path(), 1);
    create(&b, "k").await;
    let old = b.generate_data_key(&id("k"), &ctx("x")).await.unwrap();
    let info = b.rotate_key(&id("k")).await.unwrap();
    assert_eq!(info.current_version, 2);
    assert!(info.rotated_at.is_some());
    let new = b.generate_data_key(&id("k"), &ctx("x")).await.unwrap();
    assert_eq!(new.key_version, 2);
    // A fresh process sees the same keys.
    drop(b);
    let b = open(d.path(), 1);
    assert_eq!(b.decrypt_data_key(&id("k"), &old.wrapped, &ctx("x")).await.unwrap().as_bytes(), old.plaintext.as_bytes());
    assert_eq!(b.decrypt_data_key(&id("k"), &new.wrapped, &ctx("x")).await.unwrap().as_bytes(), new.plaintext.as_bytes());
}

#[tokio::test]
async fn disabled_keys_refuse_use_until_enabled() {
    let d = tempfile::tempdir().unwrap();
    let b = open(d.path(), 1);
    create(&b, "k").await;
    let dk = b.generate_data_key(&id("k"), &ctx("x")).await.unwrap();
    b.update_key(&id("k"), KeyUpdate::Disable).await.unwrap();
    assert!(matches!(b.generate_data_key(&id("k"), &ctx("x")).await, Err(KmsError::Disabled(_))));
    assert!(matches!(b.decrypt_data_key(&id("k"), &dk.wrapped, &ctx("x")).await, Err(KmsError::Disabled(_))));
    b.update_key(&id("k"), KeyUpdate::Enable).await.unwrap();
    assert!(b.decrypt_data_key(&id("k"), &dk.wrapped, &ctx("x")).await.is_ok());
}

#[tokio::test]
async fn files_are_private_and_hold_no_plain_material() {
    let d = tempfile::tempdir().unwrap();
    let b = open(d.path(), 1);
    create(&b, "k").await;
    assert!(matches!(
        b.create_key(CreateKeyRequest { key_id: Some(id("k")), ..Default::default() }).await,
        Err(KmsError::AlreadyExists(_))
    ));
    let path = d.path().join("k.key");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(file["format_version"], 1);
    assert_eq!(file["versions"][0]["version"], 1);
    let material = B64.decode(file["versions"][0]["material"].as_str().unwrap()).unwrap();
    let loaded = b.get(&id("k")).await.unwrap();
    let plain = loaded.materials[&1].as_bytes();
    assert!(!material.windows(32).any(|w| w == plain), "material must be sealed");
    // Another master key cannot open the directory.
    assert!(matches!(LocalBackend::open(d.path(), SealingKey::from_bytes([2; 32])), Err(KmsError::MasterKey(_))));
}

#[tokio::test]
async fn shared_keys_change_by_compare_and_set_across_instances() {
    // Two backends over one store stand for two replicas.
    let d = tempfile::tempdir().unwrap();
    let store = StateStore::open(d.path()).unwrap();
    let a = Arc::new(LocalBackend::open_shared(store.clone(), SealingKey::from_bytes([1; 32])).await.unwrap());
    let b = Arc::new(LocalBackend::open_shared(store.clone(), SealingKey::from_bytes([1; 32])).await.unwrap());
    create(&a, "k").await;
    // Created on A, known to B; a second create of the same id fails on B.
    assert_eq!(b.describe_key(&id("k")).await.unwrap().current_version, 1);
    assert!(matches!(
        b.create_key(CreateKeyRequest { key_id: Some(id("k")), ..Default::default() }).await,
        Err(KmsError::AlreadyExists(_))
    ));
    let v1 = a.generate_data_key(&id("k"), &ctx("x")).await.unwrap();
    let rotations: Vec<_> = (0..10)
        .map(|i| {
            let r = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { r.rotate_key(&id("k")).await.map(|_| ()) })
        })
        .collect();
    for r in rotations {
        r.await.unwrap().unwrap();
    }
    // No rotation lost: 1 + 10 versions, every one of them usable.
    assert_eq!(store.get::<serde_json::Value>(SHARED_NS, "k").await.unwrap().unwrap()["current_version"], 11);
    let fresh = LocalBackend::open_shared(store.clone(), SealingKey::from_bytes([1; 32])).await.unwrap();
    assert_eq!(fresh.list_keys().await.unwrap()[0].current_version, 11);
    assert_eq!(fresh.decrypt_data_key(&id("k"), &v1.wrapped, &ctx("x")).await.unwrap().as_bytes(), v1.plaintext.as_bytes());
    // A wrong master key cannot open the shared keys either.
    assert!(matches!(LocalBackend::open_shared(store, SealingKey::from_bytes([2; 32])).await, Err(KmsError::MasterKey(_))));
}
