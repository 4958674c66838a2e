//! Bucket default encryption: `PUT/GET/DELETE /<bucket>?encryption`, kept in
//! the gateway state (never sent upstream), and applied to writes that
//! carry no SSE headers. A gateway-wide default covers buckets without one.
//!
//! Served as a custom route with its own XML model because the S3 layer's
//! model predates `BlockedEncryptionTypes`.

use std::sync::Arc;

use hyper::http::Extensions;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use super::errors::state_error;
use crate::config::RequireEncryption;
use crate::kms::KeyId;
use crate::sse::{SseMode, SseRequest};
use crate::state::{CachedDocs, StateStore};

const NS: &str = "bucket-encryption";
const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// A bucket's default encryption, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    /// SSE-S3 or SSE-KMS, stored as `AES256` or `aws:kms`.
    #[serde(with = "crate::sse::managed_mode")]
    pub algorithm: SseMode,
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: bool,
    /// Encryption types writes may not use (`SSE-C`).
    pub blocked: Vec<String>,
}

/// The default for buckets without their own configuration, from
/// `--default-encryption` (`none`, `sse-s3`, `sse-kms`).
pub fn parse_gateway_default(s: &str) -> Result<Option<SseMode>, String> {
    match s {
        "none" => Ok(None),
        "sse-s3" => Ok(Some(SseMode::S3)),
        "sse-kms" => Ok(Some(SseMode::Kms)),
        other => Err(format!("expected none, sse-s3 or sse-kms, got {other}")),
    }
}

/// Bucket defaults with a read-through cache over the state store.
pub struct EncryptionDefaults {
    docs: CachedDocs<BucketEncryption>,
    /// SSE-S3 or SSE-KMS for buckets without a default of their own.
    gateway: Option<SseMode>,
    /// `--require-encryption`: where nothing is stored or served unencrypted.
    require: RequireEncryption,
}

impl EncryptionDefaults {
    pub fn new(store: StateStore, gateway: Option<SseMode>, require: RequireEncryption) -> Self {
        Self { docs: CachedDocs::new(store, NS), gateway, require }
    }

    /// Buckets whose default encryption names `key` (for deletion checks).
    pub async fn buckets_using(&self, key: &crate::kms::KeyId) -> Vec<String> {
        let docs = match self.docs.list().await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot list bucket defaults; treating the key as referenced");
                return vec!["(bucket defaults unreadable)".into()];
            }
        };
        docs.into_iter()
            .filter(|(_, d)| {
                d.kms_key_id.as_deref().and_then(|k| crate::kms::KeyId::from_client(k).ok()).is_some_and(|k| &k == key)
            })
            .map(|(b, _)| format!("bucket '{b}' default encryption"))
            .collect()
    }

    /// Must every object of `bucket` be in the gateway's format? With
    /// `bucket-defaults`, a bucket default that cannot be read counts as
    /// set (fail closed).
    pub async fn encryption_required(&self, bucket: &str) -> bool {
        match self.require {
            RequireEncryption::Off => false,
            RequireEncryption::All => true,
            RequireEncryption::BucketDefaults => self.get(bucket).await.map_or(true, |d| d.is_some()),
        }
    }

    pub async fn get(&self, bucket: &str) -> S3Result<Option<Arc<BucketEncryption>>> {
        self.docs.get(bucket).await.map_err(state_error)
    }

    pub(crate) async fn set(&self, bucket: &str, cfg: Option<BucketEncryption>) -> S3Result<()> {
        self.docs.set(bucket, cfg).await.map_err(state_error)
    }

    /// The SSE a write gets: its own headers, else the bucket's default,
    /// else the gateway's. SSE-C on a bucket that blocks it is refused.
    pub async fn resolve(&self, bucket: &str, sse: SseRequest) -> S3Result<SseRequest> {
        let resolved = self.resolve_default(bucket, sse).await?;
        if matches!(resolved, SseRequest::None) && self.encryption_required(bucket).await {
            return Err(s3_error!(
                AccessDenied,
                "This gateway requires encryption: send SSE headers or set a bucket default encryption."
            ));
        }
        Ok(resolved)
    }

    async fn resolve_default(&self, bucket: &str, sse: SseRequest) -> S3Result<SseRequest> {
        let cfg = self.get(bucket).await?;
        match (sse, cfg) {
            (SseRequest::Customer(_), Some(c)) if c.blocked.iter().any(|t| t == "SSE-C") => {
                Err(s3_error!(AccessDenied, "This bucket blocks writes encrypted with SSE-C."))
            }
            (SseRequest::None, Some(c)) => Ok(managed(c.algorithm, c.kms_key_id.clone())),
            (SseRequest::None, None) => Ok(self.gateway.map_or(SseRequest::None, |m| managed(m, None))),
            (explicit, _) => Ok(explicit),
        }
    }
}

/// The request a managed default stands for.
fn managed(mode: SseMode, key_id: Option<String>) -> SseRequest {
    match mode {
        SseMode::Kms => SseRequest::Kms { key_id, context: Default::default() },
        _ => SseRequest::S3,
    }
}

// ---- XML model (AWS PutBucketEncryption / GetBucketEncryption) ----------

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "ServerSideEncryptionConfiguration")]
struct XmlConfig {
    #[serde(rename = "@xmlns", default, skip_serializing_if = "Option::is_none")]
    xmlns: Option<String>,
    #[serde(rename = "Rule", default)]
    rules: Vec<XmlRule>,
}

#[derive(Debug, Serialize, Deserialize)]
struct XmlRule {
    #[serde(rename = "ApplyServerSideEncryptionByDefault", skip_serializing_if = "Option::is_none")]
    apply: Option<XmlApply>,
    #[serde(rename = "BucketKeyEnabled", skip_serializing_if = "Option::is_none")]
    bucket_key_enabled: Option<bool>,
    #[serde(rename = "BlockedEncryptionTypes", skip_serializing_if = "Option::is_none")]
    blocked: Option<XmlBlocked>,
}

#[derive(Debug, Serialize, Deserialize)]
struct XmlApply {
    #[serde(rename = "SSEAlgorithm")]
    algorithm: String,
    #[serde(rename = "KMSMasterKeyID", skip_serializing_if = "Option::is_none")]
    kms_key_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct XmlBlocked {
    #[serde(rename = "EncryptionType", default)]
    types: Vec<String>,
}

fn malformed() -> S3Error {
    s3_error!(MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema.")
}

/// Parse and validate a PutBucketEncryption body.
pub fn parse_config(body: &[u8]) -> S3Result<BucketEncryption> {
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    let cfg: XmlConfig = quick_xml::de::from_str(text).map_err(|_| malformed())?;
    let [rule] = cfg.rules.as_slice() else { return Err(malformed()) };
    let apply = rule.apply.as_ref().ok_or_else(malformed)?;
    let algorithm = apply.algorithm.trim();
    match (algorithm, &apply.kms_key_id) {
        ("AES256", Some(_)) => {
            return Err(s3_error!(
                InvalidArgument,
                "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms"
            ));
        }
        ("AES256", None) => {}
        ("aws:kms", Some(k)) => {
            KeyId::from_client(k).map_err(|_| s3_error!(InvalidArgument, "The KMSMasterKeyID is not a valid key id."))?;
        }
        ("aws:kms", None) => {}
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "The SSE algorithm specified is not supported. The valid values are AES256 or aws:kms."
            ));
        }
    }
    let blocked = rule.blocked.as_ref().map(|b| b.types.clone()).unwrap_or_default();
    if blocked.iter().any(|t| t != "SSE-C" && t != "NONE") {
        return Err(s3_error!(InvalidArgument, "BlockedEncryptionTypes may contain only SSE-C or NONE."));
    }
    Ok(BucketEncryption {
        algorithm: SseMode::from_header_value(algorithm).expect("checked above"),
        kms_key_id: apply.kms_key_id.clone(),
        bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
        blocked: blocked.into_iter().filter(|t| t == "SSE-C").collect(),
    })
}

/// Render a stored configuration as AWS returns it.
pub fn render_config(c: &BucketEncryption) -> String {
    let xml = XmlConfig {
        xmlns: Some(XMLNS.into()),
        rules: vec![XmlRule {
            apply: Some(XmlApply {
                algorithm: c.algorithm.header_value().expect("a managed mode").to_owned(),
                kms_key_id: c.kms_key_id.clone(),
            }),
            bucket_key_enabled: Some(c.bucket_key_enabled),
            blocked: (!c.blocked.is_empty()).then(|| XmlBlocked { types: c.blocked.clone() }),
        }],
    };
    let body = quick_xml::se::to_string(&xml).expect("configuration serialises");
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{body}")
}

/// The `?encryption` sub-resource of buckets.
pub struct BucketEncryptionRoute {
    pub defaults: Arc<EncryptionDefaults>,
    pub upstream: Arc<dyn s3s::S3>,
    /// Base domain for virtual-host-style requests, if enabled.
    pub domain: Option<String>,
}

impl BucketEncryptionRoute {
    fn bucket_of(&self, uri: &Uri, headers: &HeaderMap) -> Option<String> {
        if let (Some(domain), Some(host)) = (&self.domain, headers.get(hyper::header::HOST).and_then(|h| h.to_str().ok())) {
            let host = host.split(':').next().unwrap_or(host);
            if let Some(b) = host.strip_suffix(domain.as_str()).and_then(|b| b.strip_suffix('.'))
                && !b.is_empty()
            {
                return Some(b.to_owned());
            }
        }
        let path = uri.path().trim_matches('/');
        (!path.is_empty() && !path.contains('/')).then(|| path.to_owned())
    }
}

fn has_encryption_query(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| q.split('&').any(|p| p == "encryption" || p == "encryption="))
}

#[async_trait::async_trait]
impl S3Route for BucketEncryptionRoute {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, _: &mut Extensions) -> bool {
        matches!(*method, Method::PUT | Method::GET | Method::DELETE)
            && has_encryption_query(uri)
            && self.bucket_of(uri, headers).is_some()
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let bucket = self.bucket_of(&req.uri, &req.headers).ok_or_else(|| s3_error!(InvalidRequest))?;
        super::require_bucket(self.upstream.as_ref(), &req, &bucket).await?;
        match req.method {
            Method::PUT => {
                let mut body = req.input;
                let bytes = body.store_all_limited(64 << 10).await.map_err(|_| malformed())?;
                let cfg = parse_config(&bytes)?;
                self.defaults.set(&bucket, Some(cfg)).await?;
                Ok(status_only(StatusCode::OK))
            }
            Method::DELETE => {
                self.defaults.set(&bucket, None).await?;
                Ok(status_only(StatusCode::NO_CONTENT))
            }
            _ => match self.defaults.get(&bucket).await? {
                Some(c) => {
                    let mut resp = S3Response::new(Body::from(render_config(&c)));
                    resp.status = Some(StatusCode::OK);
                    resp.headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/xml"));
                    Ok(resp)
                }
                None => {
                    let mut e = S3Error::with_message(
                        S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError,
                        "The server side encryption configuration was not found",
                    );
                    // As AWS and MinIO answer it (the S3 layer's table says 400).
                    e.set_status_code(StatusCode::NOT_FOUND);
                    Err(e)
                }
            },
        }
    }
}

fn status_only(status: StatusCode) -> S3Response<Body> {
    let mut r = S3Response::new(Body::empty());
    r.status = Some(status);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aws_bodies_and_rejects_bad_ones() {
        let kms = r#"<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>arn:aws:kms:us-east-1:1:key/k1</KMSMasterKeyID></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled><BlockedEncryptionTypes><EncryptionType>SSE-C</EncryptionType></BlockedEncryptionTypes></Rule></ServerSideEncryptionConfiguration>"#;
        let c = parse_config(kms.as_bytes()).unwrap();
        assert_eq!(c.algorithm, SseMode::Kms);
        // Stored as AWS spells it, as the first stored documents were.
        let stored = serde_json::to_value(&c).unwrap();
        assert_eq!(stored["algorithm"], "aws:kms");
        assert_eq!(serde_json::from_value::<BucketEncryption>(stored.clone()).unwrap(), c);
        let mut customer = stored;
        customer["algorithm"] = "SSE-C".into();
        assert!(serde_json::from_value::<BucketEncryption>(customer).is_err());
        assert!(c.bucket_key_enabled);
        assert_eq!(c.blocked, vec!["SSE-C".to_string()]);
        let back = parse_config(render_config(&c).as_bytes()).unwrap();
        assert_eq!(back, c);
        let aes_with_key = kms.replace("aws:kms</SSEAlgorithm>", "AES256</SSEAlgorithm>");
        assert_eq!(parse_config(aes_with_key.as_bytes()).unwrap_err().code(), &S3ErrorCode::InvalidArgument);
        let no_rules = r#"<ServerSideEncryptionConfiguration></ServerSideEncryptionConfiguration>"#;
        assert_eq!(parse_config(no_rules.as_bytes()).unwrap_err().code(), &S3ErrorCode::MalformedXML);
        assert_eq!(parse_config(b"not xml <").unwrap_err().code(), &S3ErrorCode::MalformedXML);
    }
}
