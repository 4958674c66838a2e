//! Assemble the gateway from its configuration and serve it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admin::AdminRoute;
use crate::admin::kms::KmsAdmin;
use crate::admin::policies::PolicyAdmin;
use crate::audit::AuditLog;
use crate::config::{ConfigError, Credentials, ServeArgs, resolve_credentials};
use crate::crypto::FormatParams;
use crate::fsutil::create_private_dir;
use crate::kms::config::{KmsConfig, SecretSource};
use crate::kms::manager::{KmsManager, LifecycleError, ManagerContext, Startup};
use crate::kms::master::{MasterKeySource, load_master_key};
use crate::kms::service::Observer;
use crate::kms::{KeyId, KmsError};
use crate::metrics::Metrics;
use crate::ops::OpsRoute;
use crate::policy::PolicyError;
use crate::policy::engine::{Limits, PolicyEngine};
use crate::policy::registry::PolicyRegistry;
use crate::rotation::RotationScheduler;
use crate::routes::{GatewayHost, RequestId, RouteChain, Transport};
use crate::s3::defaults::{BucketEncryptionRoute, EncryptionDefaults, GatewayDefault};
use crate::s3::{Gateway, GatewayOptions, GatewayParts};
use crate::state::{StateError, StateStore};
use crate::upstream::{self, RemoteUpstream, UpstreamError};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot create {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A gateway ready to serve.
pub struct Built {
    pub service: S3Service,
    pub credentials: Credentials,
    /// Whether credentials were generated on this start.
    pub generated_credentials: bool,
    pub data_dir: PathBuf,
    pub upstream_desc: String,
    /// Serve HTTPS with this acceptor when set.
    pub tls: Option<TlsAcceptor>,
    pub metrics: Arc<Metrics>,
}

/// Build the S3 service from resolved arguments.
pub async fn build(args: &ServeArgs) -> Result<Built, StartError> {
    let data_dir = args.data_dir();
    create_private_dir(&data_dir).map_err(|source| StartError::DataDir { path: data_dir.display().to_string(), source })?;
    let (credentials, generated_credentials) = resolve_credentials(args, &data_dir)?;

    let master_env = std::env::var("KMS_GATEWAY_KMS_MASTER_KEY").ok();
    let generated_path = data_dir.join("kms/master.key");
    let source = match (&master_env, &args.kms_master_key_file) {
        (Some(k), _) => MasterKeySource::Inline(k),
        (None, Some(f)) => MasterKeySource::File(f),
        (None, None) => MasterKeySource::Generated(&generated_path),
    };
    let master = load_master_key(source)?;
    let audit = Arc::new(match args.audit_log.as_deref() {
        Some("off") => AuditLog::disabled(),
        other => {
            let path = other.map(PathBuf::from).unwrap_or_else(|| data_dir.join("audit.log"));
            AuditLog::open(&path).map_err(|source| StartError::DataDir { path: path.display().to_string(), source })?
        }
    });
    let metrics = Arc::new(Metrics::new());

    let (upstream, upstream_desc) = match &args.upstream {
        Some(url) => {
            let remote = RemoteUpstream {
                endpoint: url.clone(),
                access_key: args
                    .upstream_access_key
                    .clone()
                    .ok_or_else(|| ConfigError::Invalid("--upstream needs --upstream-access-key".into()))?,
                secret_key: args
                    .upstream_secret_key
                    .clone()
                    .ok_or_else(|| ConfigError::Invalid("--upstream needs --upstream-secret-key".into()))?,
                region: args.upstream_region.clone().unwrap_or_else(|| "us-east-1".into()),
            };
            (upstream::remote(&remote)?, url.clone())
        }
        None => {
            let dir = data_dir.join("store");
            (upstream::embedded(&dir)?, format!("embedded store at {}", dir.display()))
        }
    };

    let params = match args.segment_size {
        Some(s) => FormatParams::new(s).map_err(|e| ConfigError::Invalid(format!("--segment-size: {e}")))?,
        None => FormatParams::default(),
    };
    let wrong_key_status = match args.sse_c_wrong_key_status.unwrap_or(403) {
        403 => StatusCode::FORBIDDEN,
        400 => StatusCode::BAD_REQUEST,
        other => return Err(ConfigError::Invalid(format!("--sse-c-wrong-key-status must be 403 or 400, got {other}")).into()),
    };
    let gateway_default: GatewayDefault = args
        .default_encryption
        .as_deref()
        .unwrap_or("none")
        .parse()
        .map_err(|e| ConfigError::Invalid(format!("--default-encryption: {e}")))?;
    let state = StateStore::open(&data_dir.join("state"))?;
    let defaults = Arc::new(EncryptionDefaults::new(state.clone(), gateway_default));
    let kms = boot_kms(
        args,
        &data_dir,
        master,
        state.clone(),
        &defaults,
        Arc::new(Observer { metrics: metrics.clone(), audit: audit.clone() }),
    )
    .await?;
    let opts = GatewayOptions { params, wrong_key_status, allow_insecure_sse_c: args.allow_insecure_sse_c.unwrap_or(false) };
    let limits = Limits {
        deadline: std::time::Duration::from_millis(args.policy_timeout_ms.unwrap_or(50).clamp(1, 10_000)),
        memory_bytes: args.policy_memory_mib.unwrap_or(16).clamp(1, 1024) << 20,
        runtime_memory_bytes: args.policy_runtime_memory_mib.unwrap_or(128).clamp(1, 4096) << 20,
        ..Limits::default()
    };
    let engine = Arc::new(PolicyEngine::new(limits)?);
    let policies = Arc::new(PolicyRegistry::open(engine, data_dir.join("policies"), state.clone())?);
    let rotation = Arc::new(RotationScheduler {
        kms: kms.clone(),
        policies: policies.clone(),
        metrics: metrics.clone(),
        audit: audit.clone(),
    });
    rotation.spawn(std::time::Duration::from_secs(args.policy_rotation_interval_seconds.unwrap_or(3600)));
    let parts = GatewayParts {
        upstream: upstream.clone(),
        kms: kms.clone(),
        metrics: metrics.clone(),
        state,
        defaults: defaults.clone(),
        policies: policies.clone(),
    };
    let gateway = Gateway::new(parts, opts);

    let mut b = S3ServiceBuilder::new(gateway);
    let mut auth = SimpleAuth::from_single(credentials.access_key.clone(), credentials.secret_key.clone());
    auth.register(credentials.admin_access_key.clone(), credentials.admin_secret_key.clone().into());
    b.set_auth(auth);
    b.set_access(DataPlaneAccess { admin_access_key: credentials.admin_access_key.clone() });
    let admin = AdminRoute {
        admin_access_key: credentials.admin_access_key.clone(),
        kms: KmsAdmin {
            manager: kms.clone(),
            metrics: metrics.clone(),
            allow_immediate_deletion: args.kms_allow_immediate_deletion.unwrap_or(false),
        },
        policies: PolicyAdmin { registry: policies, rotation },
        metrics: metrics.clone(),
        audit,
    };
    let metrics_out = metrics.clone();
    b.set_route(RouteChain(vec![
        Box::new(OpsRoute { metrics, kms, upstream: upstream.clone() }),
        Box::new(admin),
        Box::new(BucketEncryptionRoute { defaults, upstream, domain: args.domain.clone() }),
    ]));
    if let Some(domain) = &args.domain {
        b.set_host(GatewayHost::new(domain));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(load_tls(cert, key)?),
        _ => None,
    };
    Ok(Built { service: b.build(), credentials, generated_credentials, data_dir, upstream_desc, tls, metrics: metrics_out })
}

/// Start the KMS: flags (`--kms-backend …`) win; otherwise the stored
/// state; otherwise the embedded local backend, or `NotConfigured` with
/// `--kms-not-configured`.
async fn boot_kms(
    args: &ServeArgs,
    data_dir: &Path,
    master: crate::crypto::SealingKey,
    store: StateStore,
    defaults: &Arc<EncryptionDefaults>,
    observer: Arc<Observer>,
) -> Result<Arc<KmsManager>, StartError> {
    let fallback_key = KeyId::new(args.kms_default_key_id.clone().unwrap_or_else(|| "gateway-default".into()))?;
    let startup = match args.kms_config_json()? {
        Some(v) => Startup::Explicit(
            KmsConfig::parse(v.to_string().as_bytes(), SecretSource::Request, &fallback_key)
                .map_err(|e| ConfigError::Invalid(format!("KMS flags: {e}")))?,
        ),
        None if args.kms_not_configured.unwrap_or(false) => Startup::NotConfigured,
        None => Startup::Default(KmsConfig::local_default(fallback_key.clone())),
    };
    let d = defaults.clone();
    let ctx = ManagerContext {
        data_dir: data_dir.to_owned(),
        master,
        store,
        observer,
        references: Arc::new(move |k| d.buckets_using(k)),
        probe_interval: std::time::Duration::from_secs(args.kms_probe_interval_seconds.unwrap_or(30)),
        fallback_key,
    };
    Ok(KmsManager::boot(ctx, startup).await?)
}

/// Admin credentials are for the admin API only.
struct DataPlaneAccess {
    admin_access_key: String,
}

#[async_trait::async_trait]
impl s3s::access::S3Access for DataPlaneAccess {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        match cx.credentials() {
            None => Err(s3s::s3_error!(AccessDenied, "Signature is required")),
            Some(c) if c.access_key == self.admin_access_key => {
                Err(s3s::s3_error!(AccessDenied, "Admin credentials cannot be used for S3 requests."))
            }
            Some(_) => Ok(()),
        }
    }
}

/// The `<Code>` of an S3 XML error body (or the `code` of a JSON one).
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let code = match text.find("<Code>") {
        Some(i) => text[i + 6..].split('<').next()?.to_owned(),
        None => serde_json::from_str::<serde_json::Value>(text).ok()?.get("code")?.as_str()?.to_owned(),
    };
    // Label values must stay a small set: only S3-style code words.
    (code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')).then_some(code)
}

/// A TLS acceptor from PEM files.
fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, StartError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| StartError::Tls(format!("{what}: {e}"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(&cert.display().to_string(), &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&cert.display().to_string(), &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(&key.display().to_string(), &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("certificate/key", &e))?;
    // HTTP/1.1 only, like S3 itself: S3 clients do not use h2.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Serve `service` on `listener` (HTTPS when `tls` is set) until `shutdown`
/// resolves, then drain connections for up to 10 s. Errors answered are
/// counted by S3 code in `metrics` when given.
pub async fn run(
    listener: TcpListener,
    service: S3Service,
    tls: Option<TlsAcceptor>,
    metrics: Option<Arc<Metrics>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let socket = tokio::select! {
            res = listener.accept() => match res {
                Ok((socket, peer)) => (socket, peer),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        let (socket, peer) = socket;
        let transport = Transport { tls: tls.is_some(), peer: Some(peer) };
        let svc = service.clone();
        let metrics = metrics.clone();
        let handler = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let id = RequestId::new();
            let span = tracing::info_span!("request", request_id = %id.0, method = %req.method(), path = %req.uri().path());
            let header = hyper::header::HeaderValue::from_str(&id.0).expect("hex request id");
            req.extensions_mut().insert(transport);
            req.extensions_mut().insert(id);
            let has_body = hyper::body::Body::size_hint(req.body()).upper() != Some(0);
            let fut = tracing::Instrument::instrument(hyper::service::Service::call(&svc, req), span);
            let metrics = metrics.clone();
            async move {
                let mut resp = fut.await?;
                resp.headers_mut().insert("x-amz-request-id", header);
                if let (Some(m), true) = (&metrics, resp.status().as_u16() >= 400) {
                    let code =
                        resp.body().bytes().and_then(|b| error_code(&b)).unwrap_or_else(|| resp.status().as_str().to_owned());
                    m.s3_errors.with_label_values(&[&code]).inc();
                }
                // An error may be answered before the request body was read;
                // close the connection so unread body bytes can never be
                // taken for the client's next request.
                if has_body && resp.status().as_u16() >= 400 {
                    resp.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
                }
                Ok::<_, s3s::HttpError>(resp)
            }
        });
        match &tls {
            None => {
                let conn = graceful.watch(http.serve_connection(TokioIo::new(socket), handler).into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let http = http.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(socket)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => return tracing::debug!("TLS handshake timed out"),
                    };
                    if let Err(e) = watcher.watch(http.serve_connection(TokioIo::new(stream), handler).into_owned()).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
    Ok(())
}
