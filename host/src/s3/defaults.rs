//! Bucket default encryption's S3 surface: `PUT/GET/DELETE /<bucket>?encryption`,
//! kept in the gateway state (never sent upstream). How the defaults apply
//! to writes is the decision layer's (`decide/defaults.rs`).
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
pub use crate::decide::defaults::{BucketEncryption, EncryptionDefaults, parse_gateway_default};
use crate::kms::KeyId;
use crate::sse::SseMode;

const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

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
    /// The reserved bucket of cluster state, in cluster mode.
    pub state_bucket: Option<String>,
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
        if let Some(r) = super::store_routes::store_route(&bucket, None) {
            return Err(super::store_routes::refused(&r));
        }
        if let Some(reserved) = self.state_bucket.as_deref().filter(|r| super::store_routes::in_bucket(&bucket, None, r)) {
            return Err(super::store_routes::reserved_refused(reserved));
        }
        super::require_bucket(self.upstream.as_ref(), &req, &bucket).await?;
        match req.method {
            Method::PUT => {
                let mut body = req.input;
                let bytes = body.store_all_limited(64 << 10).await.map_err(|_| malformed())?;
                let cfg = parse_config(&bytes)?;
                self.defaults.set(&bucket, Some(cfg)).await.map_err(state_error)?;
                Ok(status_only(StatusCode::OK))
            }
            Method::DELETE => {
                self.defaults.set(&bucket, None).await.map_err(state_error)?;
                Ok(status_only(StatusCode::NO_CONTENT))
            }
            _ => match self.defaults.get(&bucket).await.map_err(state_error)? {
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
