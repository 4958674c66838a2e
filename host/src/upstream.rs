//! The upstream S3 store: a remote endpoint through `aws-sdk-s3` (re-signed
//! with the upstream's own credentials), or the embedded filesystem store.

use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};

/// Errors while setting up the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("embedded store at {path}")]
    Embedded {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("invalid upstream: {0}")]
    Invalid(String),
}

/// A remote S3 endpoint.
#[derive(Debug, Clone)]
pub struct RemoteUpstream {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// Build the forwarding client for a remote upstream. Path-style
/// addressing works with every S3 store; the SDK adds no checksums of its
/// own (the gateway already verified the client's over the plaintext).
pub fn remote(u: &RemoteUpstream) -> Result<Arc<dyn s3s::S3>, UpstreamError> {
    if !(u.endpoint.starts_with("http://") || u.endpoint.starts_with("https://")) {
        return Err(UpstreamError::Invalid(format!("upstream URL must start with http:// or https://, got {}", u.endpoint)));
    }
    let creds = Credentials::new(&u.access_key, &u.secret_key, None, None, "kms-gateway");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&u.endpoint)
        .region(Region::new(u.region.clone()))
        .credentials_provider(creds)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Ok(Arc::new(s3s_aws::Proxy::from(aws_sdk_s3::Client::from_conf(conf))))
}

/// The embedded filesystem store rooted at `dir` (created if missing).
pub fn embedded(dir: &Path) -> Result<Arc<dyn s3s::S3>, UpstreamError> {
    Ok(Arc::new(embedded_store(dir)?))
}

/// [`embedded`], as its concrete type.
pub fn embedded_store(dir: &Path) -> Result<crate::embedded::EmbeddedStore, UpstreamError> {
    let err =
        |source: Box<dyn std::error::Error + Send + Sync>| UpstreamError::Embedded { path: dir.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(|e| err(Box::new(e)))?;
    let fs = s3s_fs::FileSystem::new(dir).map_err(|e| err(format!("{e:?}").into()))?;
    Ok(crate::embedded::EmbeddedStore::new(fs, dir.to_owned()))
}
