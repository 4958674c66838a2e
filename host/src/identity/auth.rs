//! The SigV4 secret lookup s3s calls for every signed request: the
//! configured S3 pair, the admin pair, then the managed identities. An
//! unknown or disabled access key gets `InvalidAccessKeyId`, as on AWS.

use std::sync::Arc;

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use subtle::ConstantTimeEq;

use super::Identities;

/// The gateway's credentials, configured and managed.
pub struct GatewayAuth {
    configured: Vec<(String, SecretKey)>,
    identities: Arc<Identities>,
}

impl GatewayAuth {
    /// `configured`: the default S3 pair and the admin pair.
    pub fn new(configured: Vec<(String, SecretKey)>, identities: Arc<Identities>) -> Self {
        Self { configured, identities }
    }
}

#[async_trait::async_trait]
impl S3Auth for GatewayAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        // Access keys are not secret, but compare them the same way.
        if let Some((_, sk)) = self.configured.iter().find(|(ak, _)| ak.as_bytes().ct_eq(access_key.as_bytes()).into()) {
            return Ok(sk.clone());
        }
        match self.identities.secret_of(access_key).await {
            Ok(Some(secret)) => Ok(SecretKey::from(secret.as_str())),
            Ok(None) => Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.")),
            Err(e) => {
                tracing::error!(error = %e, "identity lookup failed");
                Err(s3_error!(InternalError, "The identity could not be looked up."))
            }
        }
    }
}
