//! The upstream S3 store: a remote endpoint through `aws-sdk-s3` (re-signed
//! with the upstream's own credentials), or the embedded filesystem store.

use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation, StalledStreamProtectionConfig,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

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
    Ok(Arc::new(s3s_aws::Proxy::from(remote_client(u)?)))
}

/// The SDK client [`remote`] forwards through; the cluster state backend
/// uses it directly.
pub fn remote_client(u: &RemoteUpstream) -> Result<aws_sdk_s3::Client, UpstreamError> {
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
        .interceptor(StripSseHeaders)
        // An upload's body is the client's: a client that pauses (a slow
        // link, a busy machine) must not have its upload cut as a stalled
        // upstream (the SDK's detector did that after 5 s). Downloads keep
        // the detector, with the same 5 s: a stalled upstream ends the read.
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .upload_enabled(false)
                .grace_period(std::time::Duration::from_secs(5))
                .build(),
        )
        .build();
    Ok(aws_sdk_s3::Client::from_conf(conf))
}

/// Header prefixes the upstream must never receive: SSE is the gateway's
/// job (a store that saw them would encrypt a second time), and an SSE-C
/// key or its MD5 must never leave the gateway.
const SSE_HEADER_PREFIXES: [&str; 2] = ["x-amz-server-side-encryption", "x-amz-copy-source-server-side-encryption"];

/// Is `name` an SSE request header (any case)?
pub fn is_sse_header(name: &str) -> bool {
    SSE_HEADER_PREFIXES.iter().any(|p| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p))
}

/// The last hop before a request is signed and sent: every SSE header is
/// removed, whatever operation carries it, so no code path (an operation
/// forwarded unchanged, a field a handler forgot to clear) can send a
/// customer key upstream.
#[derive(Debug)]
struct StripSseHeaders;

impl Intercept for StripSseHeaders {
    fn name(&self) -> &'static str {
        "StripSseHeaders"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.request_mut().headers_mut();
        let names: Vec<String> = headers.iter().map(|(n, _)| n.to_owned()).filter(|n| is_sse_header(n)).collect();
        for n in names {
            headers.remove(n);
        }
        Ok(())
    }
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
    crate::embedded::EmbeddedStore::open(fs, dir.to_owned()).map_err(|e| err(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::is_sse_header;

    #[test]
    fn sse_headers_are_recognised_in_any_case() {
        for h in [
            "x-amz-server-side-encryption-customer-key",
            "X-Amz-Server-Side-Encryption-Customer-Key-MD5",
            "x-amz-copy-source-server-side-encryption-customer-key",
            "x-amz-server-side-encryption",
            "x-amz-server-side-encryption-aws-kms-key-id",
        ] {
            assert!(is_sse_header(h), "{h}");
        }
        for h in ["x-amz-meta-x-amz-server-side-encryption", "x-amz-content-sha256", "x-amz-se"] {
            assert!(!is_sse_header(h), "{h}");
        }
    }
}
