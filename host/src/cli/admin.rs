//! `kms-gateway admin …`: the admin API from the command line. Requests are
//! signed with SigV4 (service `s3`) like `awscurl` would, so operators need
//! nothing else installed.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Args)]
pub(crate) struct AdminArgs {
    /// Gateway URL
    #[arg(long, env = "KMS_GATEWAY_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    endpoint: String,
    /// Admin access key [default: from DATA_DIR/credentials.json]
    #[arg(long, env = "KMS_GATEWAY_ADMIN_ACCESS_KEY")]
    access_key: Option<String>,
    /// Admin secret key
    #[arg(long, env = "KMS_GATEWAY_ADMIN_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Data directory of a local gateway, to read its generated credentials
    #[arg(long, env = "KMS_GATEWAY_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// CA certificate (PEM) of an HTTPS gateway
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Region used in the signature
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// KMS status (works in every state)
    Status,
    /// The KMS configuration, secrets redacted
    Config,
    /// Store a configuration (JSON file, admin API format) without starting it
    Configure {
        #[arg(long)]
        file: PathBuf,
    },
    /// Replace the configuration and (re)start on it
    Reconfigure {
        #[arg(long)]
        file: PathBuf,
    },
    /// Start the configured KMS
    Start {
        /// Restart if already running
        #[arg(long)]
        force: bool,
    },
    /// Stop the KMS (managed-SSE requests then get 503)
    Stop,
    /// Drop cached data keys
    ClearCache,
    /// Key management
    #[command(subcommand)]
    Keys(KeysCommand),
    /// WebAssembly policies
    #[command(subcommand)]
    Policies(PoliciesCommand),
    /// S3 identities (access keys with attributes for policies)
    #[command(subcommand)]
    Identities(IdentitiesCommand),
    /// Any admin endpoint: METHOD PATH [--data JSON], PATH relative to /rustfs/admin/v3/
    Call {
        method: String,
        path: String,
        #[arg(long)]
        data: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    Create {
        #[arg(long)]
        key_id: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    List {
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        marker: Option<String>,
    },
    Describe {
        key_id: String,
    },
    Rotate {
        key_id: String,
    },
    Enable {
        key_id: String,
    },
    Disable {
        key_id: String,
    },
    /// Schedule deletion after a 7-30 day window
    Delete {
        key_id: String,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    CancelDeletion {
        key_id: String,
    },
}

#[derive(Subcommand)]
enum PoliciesCommand {
    /// Policies and bindings
    List,
    /// Upload (or replace) a component
    Upload {
        name: String,
        /// The component (.wasm)
        #[arg(long)]
        file: PathBuf,
    },
    Describe {
        name: String,
    },
    Delete {
        name: String,
    },
    /// Bind a policy to a hook and scope
    Bind {
        name: String,
        #[command(flatten)]
        scope: Scope,
    },
    Unbind {
        #[command(flatten)]
        scope: Scope,
    },
    /// Dry-run a policy on a sample (JSON file: {"request": …} or {"key": …, "now": …})
    Evaluate {
        name: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Run the bound rotation policy over every key now
    Rotate,
}

#[derive(Subcommand)]
enum IdentitiesCommand {
    /// Every identity (never a secret)
    List,
    /// Create one; its secret key is printed this once
    Create {
        #[arg(long)]
        access_key: Option<String>,
        #[command(flatten)]
        labels: Labels,
    },
    Describe {
        access_key: String,
    },
    /// Replace the description, attributes or groups given
    Update {
        access_key: String,
        #[command(flatten)]
        labels: Labels,
    },
    Enable {
        access_key: String,
    },
    Disable {
        access_key: String,
    },
    /// A new secret key (printed this once); the old one stops working
    RotateSecret {
        access_key: String,
    },
    Remove {
        access_key: String,
    },
}

/// What policies learn of an identity.
#[derive(Args)]
struct Labels {
    #[arg(long)]
    description: Option<String>,
    /// NAME=VALUE, repeatable
    #[arg(long = "attribute", value_parser = parse_attribute)]
    attributes: Vec<(String, String)>,
    /// Repeatable
    #[arg(long = "group")]
    groups: Vec<String>,
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("'{s}' is not NAME=VALUE"))
}

impl Labels {
    fn json(&self, access_key: Option<&String>) -> Value {
        let mut v = json!({});
        if let Some(ak) = access_key {
            v["access_key"] = json!(ak);
        }
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        if !self.attributes.is_empty() {
            v["attributes"] =
                self.attributes.iter().map(|(k, x)| (k.clone(), json!(x))).collect::<serde_json::Map<_, _>>().into();
        }
        if !self.groups.is_empty() {
            v["groups"] = json!(self.groups);
        }
        v
    }
}

/// A hook (key-select, sse-validate, rotation) and where it applies.
#[derive(Args)]
struct Scope {
    #[arg(long)]
    hook: String,
    #[arg(long)]
    bucket: Option<String>,
    #[arg(long)]
    prefix: Option<String>,
    /// A shadow binding: evaluated and recorded, never enforced
    #[arg(long)]
    shadow: bool,
}

impl Scope {
    fn json(&self) -> Value {
        let mut v = json!({ "hook": self.hook });
        if self.shadow {
            v["shadow"] = json!(true);
        }
        if let Some(b) = &self.bucket {
            v["bucket"] = json!(b);
        }
        if let Some(p) = &self.prefix {
            v["prefix"] = json!(p);
        }
        v
    }
}

/// Run one admin command; prints the JSON answer, fails on an error status.
pub(crate) async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let (method, path, body) = request_of(&args.command)?;
    let (ak, sk) = credentials(&args)?;
    let url = format!("{}/rustfs/admin/v3/{path}", args.endpoint.trim_end_matches('/'));
    let (data, ctype) = match body {
        Body::Json(v) => (serde_json::to_vec(&v)?, "application/json"),
        Body::Wasm(w) => (w, "application/wasm"),
        Body::None => (Vec::new(), "application/json"),
    };
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let identity = Credentials::new(ak, sk, None, None, "kms-gateway-cli").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&args.region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .context("signing parameters")?
        .into();
    let content_type = [("content-type", ctype)];
    let headers: &[(&str, &str)] = if data.is_empty() { &[] } else { &content_type };
    let signable =
        SignableRequest::new(method, &url, headers.iter().copied(), SignableBody::Bytes(&data)).context("request to sign")?;
    let (instructions, _) = sign(signable, &params).context("signing")?.into_parts();

    let mut client = reqwest::Client::builder().tls_backend_rustls();
    if let Some(ca) = &args.ca_cert {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let mut req = client.build()?.request(method.parse()?, &url);
    for (k, v) in headers.iter().copied().chain(instructions.headers()) {
        req = req.header(k, v);
    }
    let resp = req.body(data).send().await.with_context(|| format!("calling {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
        Err(_) => println!("{text}"),
    }
    if !status.is_success() {
        bail!("the gateway answered {status}");
    }
    Ok(())
}

enum Body {
    None,
    Json(Value),
    Wasm(Vec<u8>),
}

impl From<Option<Value>> for Body {
    fn from(v: Option<Value>) -> Self {
        v.map_or(Body::None, Body::Json)
    }
}

fn request_of(cmd: &AdminCommand) -> anyhow::Result<(&'static str, String, Body)> {
    if let AdminCommand::Policies(p) = cmd {
        return policies_request(p);
    }
    if let AdminCommand::Identities(i) = cmd {
        return Ok(identities_request(i));
    }
    let (m, p, b) = kms_request(cmd)?;
    Ok((m, p, b.into()))
}

fn policies_request(cmd: &PoliciesCommand) -> anyhow::Result<(&'static str, String, Body)> {
    Ok(match cmd {
        PoliciesCommand::List => ("GET", "policies".into(), Body::None),
        PoliciesCommand::Upload { name, file } => (
            "PUT",
            format!("policies/{name}"),
            Body::Wasm(std::fs::read(file).with_context(|| format!("reading {}", file.display()))?),
        ),
        PoliciesCommand::Describe { name } => ("GET", format!("policies/{name}"), Body::None),
        PoliciesCommand::Delete { name } => ("DELETE", format!("policies/{name}"), Body::None),
        PoliciesCommand::Bind { name, scope } => {
            let mut v = scope.json();
            v["policy"] = json!(name);
            ("POST", "policies/bind".into(), Body::Json(v))
        }
        PoliciesCommand::Unbind { scope } => ("POST", "policies/unbind".into(), Body::Json(scope.json())),
        PoliciesCommand::Evaluate { name, file } => {
            let body = match file {
                Some(f) => serde_json::from_str(&std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?)
                    .with_context(|| format!("{} is not JSON", f.display()))?,
                None => json!({}),
            };
            ("POST", format!("policies/{name}/evaluate"), Body::Json(body))
        }
        PoliciesCommand::Rotate => ("POST", "policies/rotation/run".into(), Body::None),
    })
}

fn identities_request(cmd: &IdentitiesCommand) -> (&'static str, String, Body) {
    use IdentitiesCommand as C;
    match cmd {
        C::List => ("GET", "identities".into(), Body::None),
        C::Create { access_key, labels } => ("POST", "identities".into(), Body::Json(labels.json(access_key.as_ref()))),
        C::Describe { access_key } => ("GET", format!("identities/{access_key}"), Body::None),
        C::Update { access_key, labels } => ("POST", format!("identities/{access_key}"), Body::Json(labels.json(None))),
        C::Enable { access_key } => ("POST", format!("identities/{access_key}/enable"), Body::None),
        C::Disable { access_key } => ("POST", format!("identities/{access_key}/disable"), Body::None),
        C::RotateSecret { access_key } => ("POST", format!("identities/{access_key}/rotate-secret"), Body::None),
        C::Remove { access_key } => ("DELETE", format!("identities/{access_key}"), Body::None),
    }
}

fn kms_request(cmd: &AdminCommand) -> anyhow::Result<(&'static str, String, Option<Value>)> {
    let read = |f: &PathBuf| -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", f.display()))
    };
    let key = |k: &str| json!({ "key_id": k });
    Ok(match cmd {
        AdminCommand::Status => ("GET", "kms/status".into(), None),
        AdminCommand::Config => ("GET", "kms/config".into(), None),
        AdminCommand::Configure { file } => ("POST", "kms/configure".into(), Some(read(file)?)),
        AdminCommand::Reconfigure { file } => ("POST", "kms/reconfigure".into(), Some(read(file)?)),
        AdminCommand::Start { force } => ("POST", "kms/start".into(), Some(json!({ "force": force }))),
        AdminCommand::Stop => ("POST", "kms/stop".into(), None),
        AdminCommand::ClearCache => ("POST", "kms/clear-cache".into(), None),
        AdminCommand::Keys(k) => match k {
            KeysCommand::Create { key_id, description } => {
                ("POST", "kms/keys".into(), Some(json!({ "key_id": key_id, "description": description })))
            }
            KeysCommand::List { limit, marker } => {
                let mut q = format!("kms/keys?limit={}", limit.unwrap_or(100));
                if let Some(m) = marker {
                    q += &format!("&marker={}", url::form_urlencoded::byte_serialize(m.as_bytes()).collect::<String>());
                }
                ("GET", q, None)
            }
            KeysCommand::Describe { key_id } => ("GET", format!("kms/keys/{key_id}"), None),
            KeysCommand::Rotate { key_id } => ("POST", "kms/keys/rotate".into(), Some(key(key_id))),
            KeysCommand::Enable { key_id } => ("POST", "kms/keys/enable".into(), Some(key(key_id))),
            KeysCommand::Disable { key_id } => ("POST", "kms/keys/disable".into(), Some(key(key_id))),
            KeysCommand::Delete { key_id, days } => {
                ("DELETE", "kms/keys/delete".into(), Some(json!({ "key_id": key_id, "pending_window_in_days": days })))
            }
            KeysCommand::CancelDeletion { key_id } => ("POST", "kms/keys/cancel-deletion".into(), Some(key(key_id))),
        },
        AdminCommand::Policies(_) | AdminCommand::Identities(_) => unreachable!("handled by their own request builders"),
        AdminCommand::Call { method, path, data } => {
            let m = match method.to_ascii_uppercase().as_str() {
                "GET" => "GET",
                "POST" => "POST",
                "PUT" => "PUT",
                "DELETE" => "DELETE",
                other => bail!("unsupported method {other}"),
            };
            let body = data.as_deref().map(serde_json::from_str).transpose().context("--data is not JSON")?;
            (m, path.trim_start_matches('/').to_owned(), body)
        }
    })
}

fn credentials(args: &AdminArgs) -> anyhow::Result<(String, String)> {
    if let (Some(a), Some(s)) = (&args.access_key, &args.secret_key) {
        return Ok((a.clone(), s.clone()));
    }
    let path = args.data_dir.join("credentials.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no --access-key/--secret-key given and {} is unreadable", path.display()))?;
    // A syntax error's message quotes no input: safe with secrets inside.
    let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned).with_context(|| format!("{k} missing"));
    Ok((field("admin_access_key")?, field("admin_secret_key")?))
}
