use super::*;
use crate::crypto::SealingKey;

fn key() -> KeyId {
    KeyId::new("gateway-default").unwrap()
}

fn parse(body: &str) -> Result<KmsConfig, ConfigError> {
    KmsConfig::parse(body.as_bytes(), SecretSource::Request, &key())
}

#[test]
fn both_spellings_of_the_vault_auth_method() {
    let old = parse(r#"{"backend_type":"vault","address":"http://127.0.0.1:8200","auth_method":{"token":"s.abc"}}"#).unwrap();
    let new = parse(r#"{"backend_type":"VaultKV2","address":"http://127.0.0.1:8200","auth_method":{"Token":{"token":"s.abc"}}}"#)
        .unwrap();
    for c in [old, new] {
        let BackendConfig::Vault(v) = c.backend else { panic!("vault expected") };
        assert!(matches!(&v.auth, VaultAuth::Token(t) if t.expose() == "s.abc"));
        assert_eq!((v.mount_path.as_str(), v.kv_mount.as_str()), ("transit", "secret"));
        assert_eq!(v.key_path_prefix, "rustfs/kms/keys");
    }
    let ar =
        parse(r#"{"backend_type":"vault","address":"https://v:8200","auth_method":{"AppRole":{"role_id":"r","secret_id":"s"}}}"#)
            .unwrap();
    let BackendConfig::Vault(v) = ar.backend else { panic!() };
    assert!(matches!(v.auth, VaultAuth::AppRole { ref role_id, ref mount, .. } if role_id == "r" && mount == "approle"));
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (r#"{"backend_type":"local","colour":"red"}"#, "colour"),
        (r#"{"backend_type":"local","address":"http://x"}"#, "address"),
        (r#"{"backend_type":"local","key_dir":"relative/dir"}"#, "key_dir"),
        (r#"{"backend_type":"vault","auth_method":{"token":"t"}}"#, "address"),
        (r#"{"backend_type":"vault","address":"ftp://x","auth_method":{"token":"t"}}"#, "address"),
        (r#"{"backend_type":"vault","address":"http://x"}"#, "auth_method"),
        (r#"{"backend_type":"vault","address":"http://x","auth_method":{"kerberos":{}}}"#, "auth_method"),
        (r#"{"backend_type":"vault","address":"http://x","auth_method":{"approle":{"role_id":"r"}}}"#, "secret_id"),
        (r#"{"backend_type":"local","timeout_seconds":0}"#, "timeout_seconds"),
        (r#"{"backend_type":"local","default_key_id":"../x"}"#, "default_key_id"),
        (r#"{"backend_type":"aws"}"#, "backend_type"),
    ];
    for (body, field) in cases {
        let e = parse(body).expect_err(body).to_string();
        assert!(e.contains(field), "{body}: {e}");
    }
}

#[test]
fn limits_are_clamped_and_defaults_filled() {
    let c = parse(r#"{"backend_type":"local","timeout_seconds":9999,"retry_attempts":50}"#).unwrap();
    assert_eq!(c.timeout.as_secs(), 300);
    assert_eq!(c.retry_attempts, 10);
    assert_eq!(c.default_key_id, key());
    assert!(c.cache.enabled && c.cache.bucket_keys);
}

#[test]
fn stored_form_seals_secrets_and_round_trips() {
    let sealer = SecretSealer::new(&SealingKey::from_bytes([7; 32]));
    let c =
        parse(r#"{"backend_type":"vault","address":"http://v:1","auth_method":{"token":"s.topsecret"},"default_key_id":"k1"}"#)
            .unwrap();
    let stored = c.to_json(SecretSink::Seal(&sealer)).to_string();
    assert!(!stored.contains("topsecret"), "{stored}");
    let back = KmsConfig::parse(stored.as_bytes(), SecretSource::Stored(&sealer), &key()).unwrap();
    let BackendConfig::Vault(v) = back.backend else { panic!() };
    assert!(matches!(&v.auth, VaultAuth::Token(t) if t.expose() == "s.topsecret"));
    assert_eq!(back.default_key_id.as_str(), "k1");
    // Another state key cannot open it; a plain secret is not accepted as stored.
    let other = SecretSealer::new(&SealingKey::from_bytes([8; 32]));
    assert!(KmsConfig::parse(stored.as_bytes(), SecretSource::Stored(&other), &key()).is_err());
    let plain = c.to_json(SecretSink::Redact).to_string();
    assert!(!plain.contains("topsecret") && plain.contains("********"), "{plain}");
}

#[test]
fn blank_token_is_inherited_only_by_the_same_vault() {
    let old = parse(r#"{"backend_type":"vault","address":"http://v:1","auth_method":{"token":"s.old"}}"#).unwrap();
    let mut new =
        parse(r#"{"backend_type":"vault","address":"http://v:1/","auth_method":{"token":""},"timeout_seconds":9}"#).unwrap();
    new.inherit_secrets(Some(&old)).unwrap();
    let BackendConfig::Vault(v) = new.backend else { panic!() };
    assert!(matches!(&v.auth, VaultAuth::Token(t) if t.expose() == "s.old"));
    // Another address or namespace never gets the stored token.
    for body in [
        r#"{"backend_type":"vault","address":"http://attacker:1","auth_method":{"token":""}}"#,
        r#"{"backend_type":"vault","address":"http://v:1","namespace":"other","auth_method":{"token":""}}"#,
        // Nor a configuration reaching the same address less safely.
        r#"{"backend_type":"vault","address":"http://v:1","skip_tls_verify":true,"auth_method":{"token":""}}"#,
        r#"{"backend_type":"vault","address":"http://v:1","tls":{"ca_cert_path":"/tmp/other-ca.pem"},"auth_method":{"token":""}}"#,
    ] {
        let mut new = parse(body).unwrap();
        let e = new.inherit_secrets(Some(&old)).unwrap_err().to_string();
        assert!(e.contains("must be given again"), "{e}");
        let BackendConfig::Vault(v) = new.backend else { panic!() };
        assert!(matches!(&v.auth, VaultAuth::Token(t) if t.expose().is_empty()));
    }
    // Nor does a blank secret pass without a previous Vault.
    let mut new = parse(r#"{"backend_type":"vault","address":"http://v:1","auth_method":{"token":""}}"#).unwrap();
    assert!(new.inherit_secrets(None).is_err());
    // An AppRole secret id stays with its mount and role.
    let ar = |mount: &str, role: &str, secret: &str| {
        parse(&format!(
            r#"{{"backend_type":"vault","address":"http://v:1","auth_method":{{"approle":{{"role_id":"{role}","secret_id":"{secret}","mount":"{mount}"}}}}}}"#
        ))
        .unwrap()
    };
    let old = ar("approle", "r", "sid");
    let mut same = ar("approle", "r", "");
    same.inherit_secrets(Some(&old)).unwrap();
    for (mount, role) in [("other", "r"), ("approle", "r2")] {
        assert!(ar(mount, role, "").inherit_secrets(Some(&old)).is_err(), "{mount} {role}");
    }
}

#[test]
fn wrong_types_and_nested_typos_are_named_by_path() {
    let cases = [
        (r#"{"backend_type":"local","timeout_seconds":"30"}"#, "`timeout_seconds`"),
        (r#"{"backend_type":"vault","address":"http://x","auth_method":{"token":"t"},"tls":{"ca_cert":"/c"}}"#, "`tls.ca_cert`"),
        (r#"{"backend_type":"vault","address":"http://x","auth_method":{"approle":{"role_id":"r","secret":"s"}}}"#, "secret"),
        (r#"{"backend_type":"vault","address":"http://x","auth_method":{"Token":{"token":"t","x":1}}}"#, "auth_method.Token"),
        (r#"{"backend_type":"vault","address":"http://x","auth_method":{"token":"t"},"kv_mount":7}"#, "`kv_mount`"),
        (r#"{"backend_type":7}"#, "backend_type"),
        (r#"["local"]"#, "JSON object"),
    ];
    for (body, needle) in cases {
        let e = parse(body).expect_err(body).to_string();
        assert!(e.contains(needle), "{body}: {e}");
    }
}

#[test]
fn spellings_of_the_backend_tag() {
    for tag in ["local", "LOCAL", "Local"] {
        assert!(matches!(parse(&format!(r#"{{"backend_type":"{tag}"}}"#)).unwrap().backend, BackendConfig::Local(_)), "{tag}");
    }
    for tag in ["vault", "Vault", "VaultKV2", "vault_transit", "VaultTransit", "vault-kv2"] {
        let body = format!(r#"{{"backend_type":"{tag}","address":"http://v:8200","auth_method":{{"token":"t"}}}}"#);
        assert!(matches!(parse(&body).unwrap().backend, BackendConfig::Vault(_)), "{tag}");
    }
}

#[test]
fn the_shown_form_is_the_request_form() {
    let body = r#"{"backend_type":"vault","address":"http://v:8200/","auth_method":{"approle":{"role_id":"r","secret_id":"s"}},
        "namespace":"team","retry_attempts":4}"#;
    let shown = parse(body).unwrap().to_json(SecretSink::Redact);
    assert_eq!(shown["address"], "http://v:8200");
    assert_eq!(shown["auth_method"]["approle"]["secret_id"], "********");
    assert_eq!(shown["auth_method"]["approle"]["mount"], "approle");
    assert_eq!(shown["namespace"], "team");
    assert_eq!(shown["retry_attempts"], 4);
    assert_eq!(shown["default_key_id"], "gateway-default");
    assert_eq!(shown["tls"]["skip_verify"], false);
    assert!(shown.get("skip_tls_verify").is_none() && shown.get("key_dir").is_none(), "{shown}");
    let local = parse(r#"{"backend_type":"local"}"#).unwrap().to_json(SecretSink::Redact);
    assert!(local.get("key_dir").is_none() && local.get("address").is_none(), "{local}");
    assert_eq!(local["backend_type"], "local");
}
