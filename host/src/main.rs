//! The `kms-gateway` binary: parse the command line, set up logging, run.

mod cli;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kms_gateway::config::ServeArgs;
use kms_gateway::server;
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kms-gateway", version, about = "Encrypting S3 gateway with keys in a KMS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway
    Serve(Box<ServeArgs>),
    /// Call the admin API of a running gateway (signed with SigV4)
    Admin(Box<cli::admin::AdminArgs>),
    /// Check and test a WebAssembly policy offline (the authors' test kit)
    Policy(Box<cli::policy::PolicyArgs>),
    /// Serve the embedded object store over S3 on its own, unencrypted (a
    /// cluster's shared upstream on one machine; benchmarks' direct side)
    Store(Box<cli::store::StoreArgs>),
}

fn init_tracing(format: Option<&str>) {
    // s3s logs request inputs at debug level; keep it at info whatever
    // RUST_LOG says, so SSE headers can never reach a log.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("s3s=info".parse().expect("static directive"))
        .add_directive("s3s_aws=info".parse().expect("static directive"))
        .add_directive("s3s_fs=info".parse().expect("static directive"));
    // Colour only on a terminal: a log file or journald gets plain text.
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    if format == Some("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The access keys on stdout (never in the log). A generated S3 secret key
/// is shown once, on the start that generates it; later starts point to
/// the file. A configured secret is the operator's to know, and the admin
/// secret is never shown.
fn print_credentials(args: &ServeArgs, built: &server::Built) {
    let file = &built.credentials_store;
    let stored = |configured: bool| if configured { "(as configured)".to_owned() } else { format!("in {file}") };
    let c = &built.credentials;
    let secret = match (args.secret_key.is_some(), built.generated_credentials) {
        (false, true) => c.secret_key.clone(),
        (configured, _) => stored(configured),
    };
    println!("S3 credentials: access key {}  secret key {secret}", c.access_key);
    println!("admin credentials: access key {}  secret key {}", c.admin_access_key, stored(args.admin_secret_key.is_some()));
    if built.generated_credentials {
        println!("(generated and saved in {file}; a generated secret key is shown only this once)");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = match Cli::parse().command {
        Command::Serve(args) => *args,
        Command::Admin(a) => return cli::admin::run(*a).await.map(|()| std::process::ExitCode::SUCCESS),
        // Compiling a component blocks: off the async workers.
        Command::Policy(p) => return tokio::task::spawn_blocking(move || cli::policy::run(*p)).await?,
        Command::Store(s) => {
            init_tracing(None);
            return cli::store::run(*s).await.map(|()| std::process::ExitCode::SUCCESS);
        }
    };
    let args = args.merge_file()?;
    // The process-wide TLS provider for every rustls user (Vault client,
    // HTTPS listener): aws-lc-rs, already the AEAD of the data path.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    init_tracing(args.log_format.as_deref());
    let built = server::build(&args).await.context("cannot start the gateway")?;
    let listener =
        tokio::net::TcpListener::bind(args.listen()).await.with_context(|| format!("cannot listen on {}", args.listen()))?;
    let addr = listener.local_addr()?;
    let scheme = if built.tls.is_some() { "https" } else { "http" };
    println!("kms-gateway listening on {scheme}://{addr}");
    println!("upstream: {}", built.upstream_desc);
    print_credentials(&args, &built);
    tracing::info!(%addr, upstream = %built.upstream_desc, "kms-gateway started");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    // Held until the last connection is drained.
    let _data_dir_lock = built.data_dir_lock;
    server::run_with(listener, built.service, built.tls, Some(built.metrics), built.limits, shutdown).await?;
    tracing::info!("kms-gateway stopped");
    Ok(std::process::ExitCode::SUCCESS)
}
