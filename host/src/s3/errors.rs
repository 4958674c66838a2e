//! The one place where domain errors become S3 errors (code, status, text).
//! Each keeps the domain error as its source, for logs; clients see only
//! the code and the message chosen here (never key material or paths).

use hyper::StatusCode;
use s3s::{S3Error, S3ErrorCode};

use crate::crypto::CryptoError;
use crate::decide::DecisionError;
use crate::decide::keys::KeyError;
use crate::kms::KmsError;
use crate::sse::SseError;
use crate::sse::record::RecordError;

fn custom(code: &'static str, status: StatusCode, msg: String) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), msg);
    e.set_status_code(status);
    e
}

/// How a wrong SSE-C key is answered (AWS: 403; some suites expect 400).
pub fn wrong_customer_key(status: StatusCode) -> S3Error {
    let code = if status == StatusCode::FORBIDDEN { S3ErrorCode::AccessDenied } else { S3ErrorCode::InvalidRequest };
    let mut e = S3Error::with_message(code, SseError::WrongCustomerKey.to_string());
    e.set_status_code(status);
    e
}

/// `err` with `source` kept.
fn sourced(mut err: S3Error, source: impl std::error::Error + Send + Sync + 'static) -> S3Error {
    err.set_source(Box::new(source));
    err
}

pub fn sse_error(e: SseError) -> S3Error {
    let msg = e.to_string();
    let err = match &e {
        SseError::InvalidArgument(_) => S3Error::with_message(S3ErrorCode::InvalidArgument, msg),
        SseError::InvalidRequest(_) => S3Error::with_message(S3ErrorCode::InvalidRequest, msg),
        SseError::InvalidEncryptionAlgorithm => S3Error::with_message(S3ErrorCode::InvalidEncryptionAlgorithmError, msg),
        SseError::WrongCustomerKey => wrong_customer_key(StatusCode::FORBIDDEN),
    };
    sourced(err, e)
}

pub fn kms_error(e: KmsError) -> S3Error {
    use crate::kms::KmsErrorClass as C;
    let msg = e.to_string();
    let err = match e.class() {
        C::NotFound => custom("KMS.NotFoundException", StatusCode::BAD_REQUEST, msg),
        C::InvalidState if matches!(e, KmsError::Disabled(_)) => custom("KMS.DisabledException", StatusCode::BAD_REQUEST, msg),
        C::InvalidState => custom("KMS.KMSInvalidStateException", StatusCode::BAD_REQUEST, msg),
        C::NotRunning => S3Error::with_message(
            S3ErrorCode::ServiceUnavailable,
            "The KMS is not running; an administrator must configure and start it.",
        ),
        C::Unavailable | C::Denied => {
            tracing::warn!(error = %e, "KMS unavailable");
            S3Error::with_message(S3ErrorCode::ServiceUnavailable, "The KMS is unavailable; retry later.")
        }
        C::AlreadyExists | C::UnwrapFailed | C::Rejected | C::Unsupported | C::Internal => {
            tracing::error!(error = %e, "KMS failure");
            S3Error::with_message(S3ErrorCode::InternalError, "The object's data key could not be unwrapped.")
        }
    };
    sourced(err, e)
}

pub fn record_error(e: RecordError) -> S3Error {
    tracing::error!(error = %e, "unreadable encryption record");
    sourced(S3Error::with_message(S3ErrorCode::InternalError, "The object's encryption metadata is damaged."), e)
}

pub fn crypto_error(e: CryptoError) -> S3Error {
    tracing::error!(error = %e, "object failed authentication");
    sourced(S3Error::with_message(S3ErrorCode::InternalError, "The stored object failed integrity verification."), e)
}

/// An object key that could not be sealed or opened.
pub fn key_error(e: KeyError) -> S3Error {
    match e {
        KeyError::Kms(e) => kms_error(e),
        KeyError::Crypto(e) => crypto_error(e),
        KeyError::Record(e) => record_error(e),
    }
}

/// A write the decision refused, or could not decide.
pub fn decision_error(e: DecisionError) -> S3Error {
    let err = match &e {
        DecisionError::BucketPolicyDenied => S3Error::with_message(S3ErrorCode::AccessDenied, "Access Denied"),
        DecisionError::CustomerKeysBlocked => {
            S3Error::with_message(S3ErrorCode::AccessDenied, "This bucket blocks writes encrypted with SSE-C.")
        }
        DecisionError::EncryptionRequired => S3Error::with_message(
            S3ErrorCode::AccessDenied,
            "This gateway requires encryption: send SSE headers or set a bucket default encryption.",
        ),
        // The policy chose the code; its own status, else 403.
        DecisionError::PolicyDenied(p) => {
            let code = S3ErrorCode::from_bytes(p.code.as_bytes()).unwrap_or(S3ErrorCode::AccessDenied);
            let status = code.status_code().unwrap_or(StatusCode::FORBIDDEN);
            let mut err = S3Error::with_message(code, p.message.clone());
            err.set_status_code(status);
            err
        }
        DecisionError::PolicyFailed { name, hook, why } => S3Error::with_message(
            S3ErrorCode::AccessDenied,
            format!("Request denied: policy '{name}' ({}) failed: {why}", hook.name()),
        ),
        DecisionError::State(_) => {
            tracing::error!(error = %e, "gateway state unavailable");
            S3Error::with_message(S3ErrorCode::InternalError, "The gateway state could not be read or written.")
        }
    };
    sourced(err, e)
}

pub fn not_implemented(what: &'static str) -> S3Error {
    S3Error::with_message(S3ErrorCode::NotImplemented, what)
}

pub fn state_error(e: crate::state::StateError) -> S3Error {
    tracing::error!(error = %e, "gateway state unavailable");
    sourced(S3Error::with_message(S3ErrorCode::InternalError, "The gateway state could not be read or written."), e)
}
