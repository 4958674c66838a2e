use super::*;

fn registry(dir: &std::path::Path) -> Identities {
    Identities::new(StateStore::open(dir).unwrap(), &SealingKey::from_bytes([3; 32]), "defaultak", "adminak")
}

fn spec(ak: &str) -> IdentitySpec {
    IdentitySpec {
        access_key: Some(ak.into()),
        attributes: Some(BTreeMap::from([("tenant".to_string(), "acme".to_string())])),
        groups: Some(vec!["writers".into()]),
        ..Default::default()
    }
}

#[tokio::test]
async fn lifecycle_and_secrets_sealed_at_rest() {
    let d = tempfile::tempdir().unwrap();
    let ids = registry(d.path());
    let (info, secret) = ids.create(spec("ACMEWRITER")).await.unwrap();
    assert_eq!(info.attributes["tenant"], "acme");
    assert_eq!(ids.secret_of("ACMEWRITER").await.unwrap().unwrap().as_str(), secret.as_str());
    // The state holds the secret only sealed.
    for f in walk(d.path()) {
        assert!(!std::fs::read(&f).unwrap().windows(secret.len()).any(|w| w == secret.as_bytes()), "{f:?}");
    }
    assert!(matches!(ids.create(spec("ACMEWRITER")).await, Err(IdentityError::Exists(_))));
    assert!(matches!(ids.create(spec("defaultak")).await, Err(IdentityError::Configured(_))));
    assert!(matches!(ids.create(spec("bad key!")).await, Err(IdentityError::Invalid(_))));
    // Disabled: no secret, so no signature verifies.
    ids.set_enabled("ACMEWRITER", false).await.unwrap();
    assert!(ids.secret_of("ACMEWRITER").await.unwrap().is_none());
    ids.set_enabled("ACMEWRITER", true).await.unwrap();
    let (_, rotated) = ids.rotate_secret("ACMEWRITER").await.unwrap();
    assert_ne!(rotated.as_str(), secret.as_str());
    assert_eq!(ids.secret_of("ACMEWRITER").await.unwrap().unwrap().as_str(), rotated.as_str());
    let p = ids.principal("ACMEWRITER").await;
    assert_eq!((p.attributes["tenant"].as_str(), p.groups.as_slice()), ("acme", ["writers".to_string()].as_slice()));
    assert!(ids.principal("defaultak").await.attributes.is_empty());
    let listed: Vec<_> = ids.list().await.unwrap().into_iter().map(|i| (i.access_key, i.source)).collect();
    assert_eq!(listed, [("defaultak".to_string(), "configured"), ("ACMEWRITER".to_string(), "managed")]);
    ids.remove("ACMEWRITER").await.unwrap();
    assert!(ids.secret_of("ACMEWRITER").await.unwrap().is_none());
    assert!(matches!(ids.remove("ACMEWRITER").await, Err(IdentityError::NotFound(_))));
}

#[tokio::test]
async fn a_secret_moved_to_another_access_key_does_not_open() {
    let d = tempfile::tempdir().unwrap();
    let store = StateStore::open(d.path()).unwrap();
    let ids = Identities::new(store.clone(), &SealingKey::from_bytes([3; 32]), "defaultak", "adminak");
    ids.create(spec("VICTIM")).await.unwrap();
    ids.create(spec("THIEF")).await.unwrap();
    let mut stolen: serde_json::Value = store.get(NS, "VICTIM").await.unwrap().unwrap();
    let mut thief: serde_json::Value = store.get(NS, "THIEF").await.unwrap().unwrap();
    thief["sealed_secret"] = stolen["sealed_secret"].take();
    store.put(NS, "THIEF", &thief).await.unwrap();
    let fresh = Identities::new(store, &SealingKey::from_bytes([3; 32]), "defaultak", "adminak");
    assert!(matches!(fresh.secret_of("THIEF").await, Err(IdentityError::Seal)));
}

#[tokio::test]
async fn labels_are_bounded() {
    let d = tempfile::tempdir().unwrap();
    let ids = registry(d.path());
    let many = (0..40).map(|i| (format!("k{i}"), "v".to_string())).collect();
    let s = IdentitySpec { attributes: Some(many), ..Default::default() };
    assert!(matches!(ids.create(s).await, Err(IdentityError::Invalid(_))));
    let s = IdentitySpec { groups: Some(vec!["a\nb".into()]), ..Default::default() };
    assert!(matches!(ids.create(s).await, Err(IdentityError::Invalid(_))));
    // A generated access key: 20 upper-case letters and digits.
    let (info, _) = ids.create(IdentitySpec::default()).await.unwrap();
    assert!(info.access_key.len() == 20 && info.access_key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}
