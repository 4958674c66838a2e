//! A Vault session: the HTTP client with its token, AppRole login and
//! renewal, and the translation of Vault's errors into [`KmsError`].

use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::kms::KmsError;
use crate::kms::config::{Secret, VaultAuth, VaultConfig};

pub(super) struct Session {
    cfg: VaultConfig,
    timeout: Duration,
    client: ArcSwap<VaultClient>,
    login_lock: tokio::sync::Mutex<()>,
    /// Seconds of validity of the current AppRole token (0: not renewable).
    lease: std::sync::atomic::AtomicU64,
}

impl Session {
    /// Build the client and, for AppRole, log in.
    pub(super) async fn connect(cfg: &VaultConfig, timeout: Duration) -> Result<Arc<Self>, KmsError> {
        let token = match &cfg.auth {
            VaultAuth::Token(t) => t.clone(),
            VaultAuth::AppRole { .. } => Secret::new(""),
        };
        let client = build_client(cfg, &token, timeout)?;
        let me = Arc::new(Self {
            cfg: cfg.clone(),
            timeout,
            client: ArcSwap::from_pointee(client),
            login_lock: tokio::sync::Mutex::new(()),
            lease: 0.into(),
        });
        if matches!(cfg.auth, VaultAuth::AppRole { .. }) {
            me.login().await?;
        }
        Ok(me)
    }

    pub(super) fn client(&self) -> Arc<VaultClient> {
        self.client.load_full()
    }

    pub(super) fn uses_approle(&self) -> bool {
        matches!(self.cfg.auth, VaultAuth::AppRole { .. })
    }

    /// AppRole login; publishes a client carrying the new token.
    pub(super) async fn login(&self) -> Result<(), KmsError> {
        let VaultAuth::AppRole { role_id, secret_id, secret_id_file, mount } = &self.cfg.auth else {
            return Err(KmsError::Denied("the Vault token was refused".into()));
        };
        let _guard = self.login_lock.lock().await;
        let secret = match (secret_id, secret_id_file) {
            (Some(s), _) => s.clone(),
            (None, Some(f)) => Secret::new(
                std::fs::read_to_string(f)
                    .map_err(|source| KmsError::Io { path: f.display().to_string(), source })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => return Err(KmsError::Denied("AppRole without a secret id".into())),
        };
        let anon = build_client(&self.cfg, &Secret::new(""), self.timeout)?;
        let auth = vaultrs::auth::approle::login(&anon, mount, role_id, secret.expose())
            .await
            .map_err(|e| classify(e, "AppRole login"))?;
        let token = Secret::new(auth.client_token);
        self.client.store(Arc::new(build_client(&self.cfg, &token, self.timeout)?));
        self.lease.store(if auth.renewable { auth.lease_duration } else { 0 }, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(lease_seconds = auth.lease_duration, "logged in to Vault with AppRole");
        Ok(())
    }

    /// Keep an AppRole token alive: renew at half its lease, log in again
    /// when renewal fails (revoked or past its max TTL). Ends with the session.
    pub(super) fn spawn_renewal(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if !self.uses_approle() {
            return None;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            loop {
                let lease = match weak.upgrade() {
                    Some(s) => s.lease.load(std::sync::atomic::Ordering::Relaxed),
                    None => return,
                };
                let wait = if lease == 0 { 60 } else { (lease / 2).max(1) };
                tokio::time::sleep(Duration::from_secs(wait)).await;
                let Some(s) = weak.upgrade() else { return };
                match vaultrs::token::renew_self(&*s.client(), None).await {
                    Ok(auth) if auth.renewable && auth.lease_duration > 0 => {
                        s.lease.store(auth.lease_duration, std::sync::atomic::Ordering::Relaxed);
                        tracing::debug!(lease_seconds = auth.lease_duration, "renewed the Vault token");
                    }
                    _ => {
                        if let Err(e) = s.login().await {
                            tracing::warn!(error = %e, "Vault re-login failed; will retry");
                        }
                    }
                }
            }
        }))
    }
}

fn build_client(cfg: &VaultConfig, token: &Secret, timeout: Duration) -> Result<VaultClient, KmsError> {
    let bad = |m: String| KmsError::Unavailable(format!("Vault client: {m}"));
    // A header value may not hold control characters (the client would panic).
    let token = token.expose().trim();
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(KmsError::Denied("the Vault token holds characters that cannot be sent".into()));
    }
    if cfg.namespace.as_deref().is_some_and(|n| !n.bytes().all(|b| b.is_ascii_graphic())) {
        return Err(KmsError::Denied("the Vault namespace holds characters that cannot be sent".into()));
    }
    let identity = match (&cfg.tls.client_cert_path, &cfg.tls.client_key_path) {
        (Some(c), Some(k)) => {
            let mut pem = std::fs::read(c).map_err(|source| KmsError::Io { path: c.display().to_string(), source })?;
            pem.extend(std::fs::read(k).map_err(|source| KmsError::Io { path: k.display().to_string(), source })?);
            Some(reqwest::Identity::from_pem(&pem).map_err(|e| bad(format!("client certificate: {e}")))?)
        }
        _ => None,
    };
    if let Some(ca) = &cfg.tls.ca_cert_path
        && !ca.exists()
    {
        return Err(bad(format!("CA file {} does not exist", ca.display())));
    }
    let settings = VaultClientSettingsBuilder::default()
        .address(&cfg.address)
        .token(token)
        .namespace(cfg.namespace.clone())
        .verify(!cfg.tls.skip_verify)
        .ca_certs(cfg.tls.ca_cert_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>())
        .timeout(Some(timeout))
        .identity(identity)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    VaultClient::new(settings).map_err(|e| bad(e.to_string()))
}

/// Vault's answer in KMS terms. 404 is left to the caller (it knows what
/// was missing); `what` names the call in messages.
/// Did a KV v2 write fail its check-and-set? Vault answers 400 with this
/// text and no other marker (pinned by the OpenBao end-to-end tests).
pub(super) fn is_cas_mismatch(e: &ClientError) -> bool {
    matches!(e, ClientError::APIError { code: 400, errors } if errors.iter().any(|m| m.contains("check-and-set")))
}

pub(super) fn classify(e: ClientError, what: &str) -> KmsError {
    let status = |code: u16, detail: String| -> KmsError {
        match code {
            404 => KmsError::Missing(what.to_owned()),
            400 => KmsError::Rejected(format!("{what}: {detail}")),
            401 | 403 => KmsError::Denied(format!("{what}: permission denied (check the token, policy and namespace)")),
            503 if detail.contains("sealed") => KmsError::Unavailable(format!("{what}: Vault is sealed")),
            429 | 500..=599 => KmsError::Unavailable(format!("{what}: Vault answered {code}: {detail}")),
            _ => KmsError::Rejected(format!("{what}: Vault answered {code}: {detail}")),
        }
    };
    match e {
        ClientError::APIError { code, errors } => status(code, errors.join("; ")),
        ClientError::RestClientError { source } => match source {
            rustify::errors::ClientError::ServerResponseError { code, content } => {
                status(code, content.unwrap_or_default().chars().take(200).collect())
            }
            rustify::errors::ClientError::RequestError { source, .. } => {
                let detail = source
                    .downcast_ref::<reqwest::Error>()
                    .map(|r| {
                        if r.is_timeout() {
                            "timed out".to_owned()
                        } else if r.is_connect() {
                            "connection refused or unreachable".to_owned()
                        } else {
                            r.to_string()
                        }
                    })
                    .unwrap_or_else(|| source.to_string());
                KmsError::Unavailable(format!("{what}: Vault unreachable: {detail}"))
            }
            other => KmsError::Unavailable(format!("{what}: {other}")),
        },
        other => KmsError::Unavailable(format!("{what}: {other}")),
    }
}

/// Whether an error is Vault's 404.
pub(super) fn is_not_found(e: &ClientError) -> bool {
    match e {
        ClientError::APIError { code, .. } => *code == 404,
        ClientError::RestClientError { source: rustify::errors::ClientError::ServerResponseError { code, .. } } => *code == 404,
        _ => false,
    }
}
