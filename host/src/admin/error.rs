//! Admin API errors: JSON `{"success": false, "code", "message"}` with an
//! HTTP status, mapped once from the domain errors.

use hyper::StatusCode;

use crate::kms::KmsError;
use crate::kms::config::ConfigError;
use crate::kms::manager::LifecycleError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    pub fn body(&self) -> serde_json::Value {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            success: bool,
            code: &'a str,
            message: &'a str,
        }
        serde_json::to_value(Body { success: false, code: self.code, message: &self.message }).expect("strings serialise")
    }
}

impl From<crate::kms::types::InvalidKeyId> for ApiError {
    fn from(e: crate::kms::types::InvalidKeyId) -> Self {
        KmsError::from(e).into()
    }
}

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> Self {
        use crate::kms::KmsErrorClass as C;
        let msg = e.to_string();
        match e.class() {
            C::NotFound if matches!(e, KmsError::InvalidKeyId(_)) => Self::new(StatusCode::BAD_REQUEST, "InvalidKeyId", msg),
            C::NotFound => Self::new(StatusCode::NOT_FOUND, "KeyNotFound", msg),
            C::AlreadyExists => Self::new(StatusCode::CONFLICT, "KeyAlreadyExists", msg),
            C::InvalidState => Self::new(StatusCode::CONFLICT, "InvalidKeyState", msg),
            C::Unsupported => Self::new(StatusCode::NOT_IMPLEMENTED, "UnsupportedCapability", msg),
            C::NotRunning => Self::new(StatusCode::SERVICE_UNAVAILABLE, "KMSNotRunning", "KMS is not running; start it first"),
            C::Rejected => Self::new(StatusCode::BAD_REQUEST, "BackendRejected", msg),
            C::Denied | C::Unavailable => Self::new(StatusCode::SERVICE_UNAVAILABLE, "KMSUnavailable", msg),
            C::UnwrapFailed | C::Internal => {
                tracing::error!(error = %e, "KMS failure in an admin call");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "internal KMS error; see the gateway log")
            }
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Invalid(m) => Self::new(StatusCode::BAD_REQUEST, "InvalidConfiguration", m),
            LifecycleError::Conflict(m) => Self::new(StatusCode::CONFLICT, "InvalidStateTransition", m),
            LifecycleError::Backend(e) if e.is_unavailable() || matches!(e, KmsError::Denied(_)) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "BackendCheckFailed", format!("the KMS backend failed its check: {e}"))
            }
            LifecycleError::Backend(e) => {
                Self::new(StatusCode::BAD_REQUEST, "BackendCheckFailed", format!("the KMS backend failed its check: {e}"))
            }
            LifecycleError::State(e) => {
                tracing::error!(error = %e, "KMS state not persisted");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "the KMS state could not be persisted")
            }
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidConfiguration", e.0)
    }
}
