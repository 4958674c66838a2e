//! `kms-gateway store`: the embedded object store served over S3 on its
//! own, without encryption. It is the shared upstream of a cluster of
//! replicas on one machine (it honours `If-None-Match`/`If-Match` on PUT,
//! which cluster state needs), and the "direct" side of benchmarks.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

#[derive(Args)]
pub(crate) struct StoreArgs {
    /// Directory holding the buckets (created if missing)
    #[arg(long, env = "KMS_GATEWAY_STORE_ROOT", default_value = "./store")]
    root: PathBuf,
    /// Address to listen on
    #[arg(long, env = "KMS_GATEWAY_STORE_LISTEN", default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Access key clients sign with
    #[arg(long, env = "KMS_GATEWAY_STORE_ACCESS_KEY")]
    access_key: String,
    /// Secret key clients sign with
    #[arg(long, env = "KMS_GATEWAY_STORE_SECRET_KEY", hide_env_values = true)]
    secret_key: String,
}

pub(crate) async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let store = kms_gateway::upstream::embedded_store(&args.root)?;
    let mut b = S3ServiceBuilder::new(store);
    b.set_auth(SimpleAuth::from_single(args.access_key, args.secret_key));
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("embedded store on http://{} (root {})", listener.local_addr()?, args.root.display());
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    kms_gateway::server::run(listener, b.build(), None, None, shutdown).await?;
    Ok(())
}
