//! Assemble the gateway from its configuration and serve it.
//!
//! - this file: [`build`] (configuration → service) and its errors;
//! - `access`: the data plane's access checks;
//! - `listen`: [`run_with`], connections, limits and the request handler;
//! - `stall`: request bodies whose client stops sending.

mod access;
mod listen;
mod stall;

pub use listen::{ConnectionLimits, run, run_with};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio_rustls::TlsAcceptor;

use crate::admin::AdminRoute;
use crate::admin::identities::IdentityAdmin;
use crate::admin::kms::KmsAdmin;
use crate::admin::policies::PolicyAdmin;
use crate::audit::AuditLog;
use crate::config::{ConfigError, Credentials, ServeArgs, StateMode, pick_credentials, resolve_credentials};
use crate::crypto::FormatParams;
use crate::decide::bucket_policy::BucketPolicies;
use crate::decide::{Decider, DeciderParts};
use crate::fsutil::{DirLock, create_private_dir, lock_dir};
use crate::identity::Identities;
use crate::identity::auth::GatewayAuth;
use crate::kms::config::{KmsConfig, SecretSource};
use crate::kms::manager::{KmsManager, LifecycleError, ManagerContext, Startup};
use crate::kms::master::{MasterKeySource, load_master_key};
use crate::kms::secret_files::SecretFilePolicy;
use crate::kms::service::Observer;
use crate::kms::{KeyId, KmsError};
use crate::metrics::Metrics;
use crate::ops::OpsRoute;
use crate::policy::PolicyError;
use crate::policy::engine::{Limits, PolicyEngine};
use crate::policy::registry::PolicyRegistry;
use crate::rotation::RotationScheduler;
use crate::routes::{GatewayHost, RouteChain};
use crate::s3::defaults::{BucketEncryptionRoute, EncryptionDefaults, parse_gateway_default};
use crate::s3::{Gateway, GatewayOptions, GatewayParts};
use crate::state::jobs::Jobs;
use crate::state::replicas::Replicas;
use crate::state::upstream::UpstreamBackend;
use crate::state::{StateError, StateStore};
use crate::upstream::{self, RemoteUpstream, UpstreamError};
use access::{DataPlaneAccess, DataPlaneRoute};

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
    #[error("data directory {path} is in use by another gateway process{}", holder.as_ref().map(|p| format!(" (pid {p})")).unwrap_or_default())]
    DataDirInUse { path: String, holder: Option<String> },
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
    /// Where stored credentials live (a file, or the cluster state).
    pub credentials_store: String,
    pub data_dir: PathBuf,
    pub upstream_desc: String,
    /// Serve HTTPS with this acceptor when set.
    pub tls: Option<TlsAcceptor>,
    pub metrics: Arc<Metrics>,
    pub limits: ConnectionLimits,
    /// Held while serving: one process per data directory.
    pub data_dir_lock: DirLock,
}

/// Build the S3 service from resolved arguments.
pub async fn build(args: &ServeArgs) -> Result<Built, StartError> {
    let data_dir = args.data_dir();
    create_private_dir(&data_dir).map_err(|source| StartError::DataDir { path: data_dir.display().to_string(), source })?;
    let data_dir_lock = lock_dir(&data_dir)
        .map_err(|source| StartError::DataDir { path: data_dir.display().to_string(), source })?
        .map_err(|holder| StartError::DataDirInUse { path: data_dir.display().to_string(), holder })?;
    let connection_limits = ConnectionLimits::from_args(args)?;

    let master_env = std::env::var("KMS_GATEWAY_KMS_MASTER_KEY").ok();
    let generated_path = data_dir.join("kms/master.key");
    let source = match (&master_env, &args.kms_master_key_file) {
        (Some(k), _) => MasterKeySource::Inline(k),
        (None, Some(f)) => MasterKeySource::File(f),
        (None, None) => MasterKeySource::Generated(&generated_path),
    };
    let master_generated = matches!(source, MasterKeySource::Generated(_));
    let master = load_master_key(source)?;
    let replica = args.replica_id.clone().unwrap_or_else(default_replica_id);
    let audit = Arc::new(
        match args.audit_log.as_deref() {
            Some("off") => AuditLog::disabled(),
            Some("stdout") => AuditLog::stdout(),
            other => {
                let path = other.map(PathBuf::from).unwrap_or_else(|| data_dir.join("audit.log"));
                AuditLog::open(&path).map_err(|source| StartError::DataDir { path: path.display().to_string(), source })?
            }
        }
        .with_replica(replica.clone()),
    );
    let metrics = Arc::new(Metrics::new());

    let remote = match &args.upstream {
        Some(url) => Some(RemoteUpstream {
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
        }),
        None => None,
    };
    let (upstream, upstream_desc) = match &remote {
        Some(remote) => (upstream::remote(remote)?, remote.endpoint.clone()),
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
    let gateway_default = parse_gateway_default(args.default_encryption.as_deref().unwrap_or("none"))
        .map_err(|e| ConfigError::Invalid(format!("--default-encryption: {e}")))?;
    let (state, state_bucket) = open_state(args, &data_dir, &master, master_generated, remote.as_ref()).await?;
    let (credentials, generated_credentials, credentials_store) = match &state_bucket {
        None => {
            let (c, generated) = resolve_credentials(args, &data_dir)?;
            (c, generated, data_dir.join("credentials.json").display().to_string())
        }
        Some(bucket) => {
            let (c, generated) = cluster_credentials(args, &state).await?;
            (c, generated, format!("the cluster state (bucket {bucket})"))
        }
    };
    // Seals what multipart state must keep secret (an upload's layout key).
    let state_seal = master.derive(b"kms-gateway/v2/upload-state");
    let identities = Arc::new(Identities::new(state.clone(), &master, &credentials.access_key, &credentials.admin_access_key));
    let jobs = Jobs::new(state.clone(), replica.clone());
    let defaults = Arc::new(EncryptionDefaults::new(state.clone(), gateway_default, args.require_encryption.unwrap_or_default()));
    let kms = boot_kms(
        args,
        &data_dir,
        master,
        state.clone(),
        jobs.clone(),
        &defaults,
        Arc::new(Observer { metrics: metrics.clone(), audit: audit.clone() }),
    )
    .await?;
    let opts = GatewayOptions {
        params,
        wrong_key_status,
        allow_insecure_sse_c: args.allow_insecure_sse_c.unwrap_or(false),
        state_bucket: state_bucket.clone(),
    };
    let limits = Limits {
        deadline: std::time::Duration::from_millis(args.policy_timeout_ms.unwrap_or(50).clamp(1, 10_000)),
        memory_bytes: args.policy_memory_mib.unwrap_or(16).clamp(1, 1024) << 20,
        runtime_memory_bytes: args.policy_runtime_memory_mib.unwrap_or(128).clamp(1, 4096) << 20,
        ..Limits::default()
    };
    let engine = Arc::new(PolicyEngine::new(limits)?);
    let policies = Arc::new(PolicyRegistry::open(engine, data_dir.join("policies"), state.clone()).await?);
    policies.spawn_cluster_watch();
    let rotation = Arc::new(RotationScheduler {
        kms: kms.clone(),
        policies: policies.clone(),
        metrics: metrics.clone(),
        audit: audit.clone(),
        jobs,
    });
    rotation.spawn(std::time::Duration::from_secs(args.policy_rotation_interval_seconds.unwrap_or(3600)));
    let parts = GatewayParts {
        upstream: upstream.clone(),
        metrics: metrics.clone(),
        state: state.clone(),
        state_seal,
        decider: Arc::new(Decider::new(DeciderParts {
            defaults: defaults.clone(),
            bucket_policies: BucketPolicies::new(state.clone()),
            policies: policies.clone(),
            kms: kms.clone(),
            params,
            metrics: metrics.clone(),
            identities: Some(identities.clone()),
            audit: Some(audit.clone()),
        })),
    };
    let gateway = Gateway::new(parts, opts);

    let mut b = S3ServiceBuilder::new(gateway);
    b.set_auth(GatewayAuth::new(
        vec![
            (credentials.access_key.clone(), credentials.secret_key.clone().into()),
            (credentials.admin_access_key.clone(), credentials.admin_secret_key.clone().into()),
        ],
        identities.clone(),
    ));
    b.set_access(DataPlaneAccess { admin_access_key: credentials.admin_access_key.clone(), state_bucket: state_bucket.clone() });
    // Cluster mode: a heartbeat per poll interval (at least every 5 s).
    let replicas = state.is_shared().then(|| Arc::new(Replicas::new(state.clone(), replica.clone())));
    if let Some(r) = &replicas {
        let k = kms.clone();
        let every = args.state_poll().min(std::time::Duration::from_secs(5));
        r.spawn(every, Arc::new(move || k.config_fingerprint()));
    }
    let admin = AdminRoute {
        admin_access_key: credentials.admin_access_key.clone(),
        kms: KmsAdmin {
            manager: kms.clone(),
            metrics: metrics.clone(),
            allow_immediate_deletion: args.kms_allow_immediate_deletion.unwrap_or(false),
            replicas: replicas.clone(),
        },
        policies: PolicyAdmin { registry: policies, rotation },
        identities: IdentityAdmin { identities: identities.clone() },
        metrics: metrics.clone(),
        audit,
        cluster: state.is_shared().then(|| state.clone()),
    };
    let metrics_out = metrics.clone();
    let bucket_encryption =
        BucketEncryptionRoute { defaults, upstream: upstream.clone(), domain: args.domain.clone(), state_bucket };
    b.set_route(RouteChain(vec![
        Box::new(OpsRoute::new(metrics, kms, upstream)),
        Box::new(admin),
        Box::new(DataPlaneRoute { inner: bucket_encryption, admin_access_key: credentials.admin_access_key.clone() }),
    ]));
    if let Some(domain) = &args.domain {
        b.set_host(GatewayHost::new(domain));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(load_tls(cert, key)?),
        _ => None,
    };
    Ok(Built {
        service: b.build(),
        credentials,
        generated_credentials,
        credentials_store,
        data_dir,
        upstream_desc,
        tls,
        metrics: metrics_out,
        limits: connection_limits,
        data_dir_lock,
    })
}

/// The state store `--state` names, and the reserved bucket in cluster
/// mode. Replicas share state only if they share the key it is sealed
/// with: the master key must be configured, not generated per replica.
async fn open_state(
    args: &ServeArgs,
    data_dir: &Path,
    master: &crate::crypto::SealingKey,
    master_generated: bool,
    remote: Option<&RemoteUpstream>,
) -> Result<(StateStore, Option<String>), StartError> {
    if args.state.unwrap_or_default() == StateMode::Local {
        return Ok((StateStore::open(&data_dir.join("state"))?, None));
    }
    let cluster = |what: &str| ConfigError::Invalid(format!("cluster mode (--state upstream) needs {what}"));
    let remote = remote.ok_or_else(|| cluster("--upstream: the store the replicas share"))?;
    if master_generated {
        return Err(cluster("--kms-master-key-file (or KMS_GATEWAY_KMS_MASTER_KEY), the same for every replica").into());
    }
    let bucket = args.state_bucket().to_owned();
    let seal = master.derive(b"kms-gateway/v2/cluster-state");
    let backend = UpstreamBackend::connect(upstream::remote_client(remote)?, bucket.clone(), seal).await?;
    let state = StateStore::new(Arc::new(backend));
    state.spawn_watch(args.state_poll());
    Ok((state, Some(bucket)))
}

/// Cluster mode: credentials not configured come from the cluster state,
/// where the first replica to need them generated them (write-once, so
/// replicas starting together agree). Returns whether this one generated.
async fn cluster_credentials(args: &ServeArgs, state: &StateStore) -> Result<(Credentials, bool), StartError> {
    const NS: &str = "gateway";
    const DOC: &str = "credentials";
    if args.all_credentials_given() {
        return Ok(pick_credentials(args, None)?);
    }
    for _ in 0..3 {
        let stored: Option<Credentials> = state.get(NS, DOC).await?;
        let (creds, generated) = pick_credentials(args, stored.as_ref())?;
        if !generated || state.create(NS, DOC, &creds).await? {
            return Ok((creds, generated));
        }
        // Another replica stored its credentials first: take those.
    }
    Err(ConfigError::Invalid("the cluster's stored credentials keep changing".into()).into())
}

/// Start the KMS: flags (`--kms-backend …`) win; otherwise the stored
/// state; otherwise the embedded local backend, or `NotConfigured` with
/// `--kms-not-configured`.
async fn boot_kms(
    args: &ServeArgs,
    data_dir: &Path,
    master: crate::crypto::SealingKey,
    store: StateStore,
    jobs: Jobs,
    defaults: &Arc<EncryptionDefaults>,
    observer: Arc<Observer>,
) -> Result<Arc<KmsManager>, StartError> {
    let fallback_key = KeyId::new(args.kms_default_key_id.clone().unwrap_or_else(|| "gateway-default".into()))
        .map_err(crate::kms::KmsError::from)?;
    let startup = match args.kms_config_json()? {
        Some(v) => Startup::Explicit(
            KmsConfig::from_value(v, SecretSource::Request, &fallback_key)
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
        jobs,
        observer,
        references: Arc::new(move |k| {
            let d = d.clone();
            Box::pin(async move { d.buckets_using(&k).await })
        }),
        probe_interval: std::time::Duration::from_secs(args.kms_probe_interval_seconds.unwrap_or(30)),
        fallback_key,
        secret_files: SecretFilePolicy::new(
            args.kms_secret_file_dirs.as_deref().unwrap_or(&[PathBuf::from("/run/secrets")]),
            data_dir,
            args.kms_master_key_file.as_deref(),
        )
        .with_vaults(args.kms_secret_file_vaults.iter().flatten().chain(args.kms_vault_address.as_ref())),
    };
    Ok(KmsManager::boot(ctx, startup).await?)
}

/// `<host name>-<4 random hex>`: unique per process, readable in logs.
fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let mut r = [0u8; 2];
    let _ = crate::crypto::random_bytes(&mut r);
    format!("{}-{}", if host.is_empty() { "kgw" } else { &host }, hex::encode(r))
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
