//! The `kms-gateway` binary: parse the command line, set up logging, run.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kms_gateway::config::ServeArgs;
use kms_gateway::server;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "kms-gateway", version, about = "Encrypting S3 gateway with keys in a KMS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway
    Serve(ServeArgs),
}

fn init_tracing(format: Option<&str>) {
    // s3s logs request inputs at debug level; keep it at info whatever
    // RUST_LOG says, so SSE headers can never reach a log.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("s3s=info".parse().expect("static directive"))
        .add_directive("s3s_aws=info".parse().expect("static directive"))
        .add_directive("s3s_fs=info".parse().expect("static directive"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == Some("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve(args) = Cli::parse().command;
    let args = args.merge_file()?;
    init_tracing(args.log_format.as_deref());
    let built = server::build(&args).await.context("cannot start the gateway")?;
    let listener =
        tokio::net::TcpListener::bind(args.listen()).await.with_context(|| format!("cannot listen on {}", args.listen()))?;
    let addr = listener.local_addr()?;
    let scheme = if built.tls.is_some() { "https" } else { "http" };
    println!("kms-gateway listening on {scheme}://{addr}");
    println!("upstream: {}", built.upstream_desc);
    println!("S3 credentials: access key {}  secret key {}", built.credentials.access_key, built.credentials.secret_key);
    if built.generated_credentials {
        println!("(generated and saved in {}/credentials.json)", built.data_dir.display());
    }
    tracing::info!(%addr, upstream = %built.upstream_desc, "kms-gateway started");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    server::run(listener, built.service, built.tls, shutdown).await?;
    tracing::info!("kms-gateway stopped");
    Ok(())
}
