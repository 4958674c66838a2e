//! A plain S3 store over HTTP: the embedded store (s3s-fs), no encryption.
//! Benchmarks use it as "the same upstream, reached directly".
//!
//! `cargo run --release --example plain_store -- ROOT ADDR ACCESS_KEY SECRET_KEY`

use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, addr, ak, sk] = args.as_slice() else {
        anyhow::bail!("usage: plain_store ROOT ADDR ACCESS_KEY SECRET_KEY");
    };
    let store = kms_gateway::upstream::embedded_store(std::path::Path::new(root))?;
    let mut b = S3ServiceBuilder::new(store);
    b.set_auth(SimpleAuth::from_single(ak.clone(), sk.clone()));
    let listener = tokio::net::TcpListener::bind(addr.as_str()).await?;
    println!("plain store on http://{}", listener.local_addr()?);
    kms_gateway::server::run(listener, b.build(), None, None, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
