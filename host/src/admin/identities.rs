//! The identity endpoints under `…/admin/v3/identities`: create (the
//! secret is in this answer only), list, describe, update attributes,
//! enable, disable, rotate the secret, remove.

use std::sync::Arc;

use hyper::StatusCode;
use serde::Serialize;

use super::actions::IdentityAction;
use super::dto::{Done, parse};
use super::error::ApiError;
use super::{AdminCall, Reply};
use crate::identity::{Identities, IdentityError, IdentityInfo, IdentitySpec};

pub struct IdentityAdmin {
    pub identities: Arc<Identities>,
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        let msg = e.to_string();
        match e {
            IdentityError::Invalid(_) => Self::bad_request(msg),
            IdentityError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "NoSuchIdentity", msg),
            IdentityError::Exists(_) => Self::new(StatusCode::CONFLICT, "IdentityAlreadyExists", msg),
            IdentityError::Configured(_) => Self::new(StatusCode::CONFLICT, "IdentityConfigured", msg),
            IdentityError::State(_) | IdentityError::Seal => {
                tracing::error!(error = %msg, "identity registry failure");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "the identity registry failed")
            }
        }
    }
}

#[derive(Serialize)]
struct One {
    identity: IdentityInfo,
}

/// An answer that carries a secret: shown once, never stored in clear.
#[derive(Serialize)]
struct WithSecret<'a> {
    identity: IdentityInfo,
    secret_key: &'a str,
}

#[derive(Serialize)]
struct List {
    identities: Vec<IdentityInfo>,
}

impl IdentityAdmin {
    pub async fn handle(&self, action: IdentityAction, call: &AdminCall) -> Result<Reply, ApiError> {
        let ak = call.rest.trim_matches('/').split('/').next().unwrap_or_default().to_owned();
        let one = |message, identity| Reply::json(Done::new(message, One { identity })).about(&ak);
        Ok(match action {
            IdentityAction::List => Reply::json(List { identities: self.identities.list().await? }),
            IdentityAction::Create => {
                let spec: IdentitySpec = if call.body.is_empty() { IdentitySpec::default() } else { parse(&call.body)? };
                let (identity, secret) = self.identities.create(spec).await?;
                let about = identity.access_key.clone();
                Reply::json(Done::new("identity created", WithSecret { identity, secret_key: &secret })).about(&about)
            }
            IdentityAction::Get => Reply::json(One { identity: self.identities.get(&ak).await? }).about(&ak),
            IdentityAction::Update => one("identity updated", self.identities.update(&ak, parse(&call.body)?).await?),
            IdentityAction::Enable => one("identity enabled", self.identities.set_enabled(&ak, true).await?),
            IdentityAction::Disable => one("identity disabled", self.identities.set_enabled(&ak, false).await?),
            IdentityAction::RotateSecret => {
                let (identity, secret) = self.identities.rotate_secret(&ak).await?;
                Reply::json(Done::new("secret key rotated", WithSecret { identity, secret_key: &secret })).about(&ak)
            }
            IdentityAction::Remove => {
                self.identities.remove(&ak).await?;
                Reply::json(Done::new("identity removed", ())).about(&ak)
            }
        })
    }
}
