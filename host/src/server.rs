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

use crate::config::{ConfigError, Credentials, ServeArgs, resolve_credentials};
use crate::crypto::FormatParams;
use crate::fsutil::create_private_dir;
use crate::kms::local::LocalBackend;
use crate::kms::master::{MasterKeySource, load_master_key};
use crate::kms::{KeyId, Kms, KmsError};
use crate::metrics::{Metrics, OpsRoute};
use crate::routes::{GatewayHost, RouteChain, Transport};
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
    let backend = Arc::new(LocalBackend::open(&data_dir.join("kms/keys"), master)?);
    let default_key = KeyId::new(args.kms_default_key_id.clone().unwrap_or_else(|| "gateway-default".into()))?;
    let kms = Kms::local(backend, default_key).await?;

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
    let metrics = Arc::new(Metrics::new());
    let opts = GatewayOptions { params, wrong_key_status, allow_insecure_sse_c: args.allow_insecure_sse_c.unwrap_or(false) };
    let parts = GatewayParts { upstream: upstream.clone(), kms, metrics: metrics.clone(), state, defaults: defaults.clone() };
    let gateway = Gateway::new(parts, opts);

    let mut b = S3ServiceBuilder::new(gateway);
    b.set_auth(SimpleAuth::from_single(credentials.access_key.clone(), credentials.secret_key.clone()));
    b.set_route(RouteChain(vec![
        Box::new(OpsRoute { metrics }),
        Box::new(BucketEncryptionRoute { defaults, upstream, domain: args.domain.clone() }),
    ]));
    if let Some(domain) = &args.domain {
        b.set_host(GatewayHost::new(domain));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(load_tls(cert, key)?),
        _ => None,
    };
    Ok(Built { service: b.build(), credentials, generated_credentials, data_dir, upstream_desc, tls })
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
/// resolves, then drain connections for up to 10 s.
pub async fn run(
    listener: TcpListener,
    service: S3Service,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let socket = tokio::select! {
            res = listener.accept() => match res {
                Ok((socket, _)) => socket,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        let transport = Transport { tls: tls.is_some() };
        let svc = service.clone();
        let handler = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(transport);
            let has_body = hyper::body::Body::size_hint(req.body()).upper() != Some(0);
            let fut = hyper::service::Service::call(&svc, req);
            async move {
                let mut resp = fut.await?;
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
