//! The KMS endpoints: lifecycle, status, keys, data keys.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde::Serialize;
use time::{Duration as TimeDuration, OffsetDateTime};

use super::actions::KmsAction;
use super::dto::{
    CacheCleared, Capabilities, ClusterStatus, ConfigReply, CreateKey, DataKeyReply, DeleteReply, Done, GenerateDataKey, KeyList,
    KeyListEntry, KeyOp, KeyReply, KmsStatusReply, StartRequest, StatusOnly, parse, parse_status_filter,
};
use super::error::ApiError;
use super::{AdminCall, Reply};
use crate::kms::config::{KmsConfig, SecretSink, SecretSource};
use crate::kms::manager::{KmsManager, KmsStatus};
use crate::kms::service::{KeyUse, KmsService};
use crate::kms::{CreateKeyRequest, KeyId, KeyInfo, KeyUpdate};
use crate::metrics::Metrics;
use crate::state::replicas::Replicas;

pub struct KmsAdmin {
    pub manager: Arc<KmsManager>,
    pub metrics: Arc<Metrics>,
    /// Operators must opt in to deleting keys without a waiting period.
    pub allow_immediate_deletion: bool,
    /// Cluster mode: the replicas' heartbeats.
    pub replicas: Option<Arc<Replicas>>,
}

fn ok(message: &'static str, body: impl Serialize) -> Reply {
    Reply::json(Done::new(message, body))
}

impl KmsAdmin {
    pub async fn handle(&self, action: KmsAction, call: &AdminCall) -> Result<Reply, ApiError> {
        match action {
            KmsAction::Configure => self.configure(call, false).await,
            KmsAction::Reconfigure => self.configure(call, true).await,
            KmsAction::Start => {
                let r: StartRequest = parse(&call.body)?;
                self.manager.start(r.force).await?;
                Ok(ok("KMS service started successfully", StatusOnly { status: self.manager.status() }))
            }
            KmsAction::Stop => {
                self.manager.stop().await?;
                Ok(ok("KMS service stopped successfully", StatusOnly { status: self.manager.status() }))
            }
            KmsAction::Status => Ok(Reply::json(self.status().await)),
            KmsAction::Config => {
                let cfg = self.manager.config().map(|c| c.to_json(SecretSink::Redact));
                Ok(Reply::json(ConfigReply { status: self.manager.status(), config: cfg }))
            }
            KmsAction::ClearCache => {
                self.manager.service()?.clear_cache();
                Ok(Reply::json(CacheCleared::default()))
            }
            KmsAction::CreateKey => self.create_key(call).await,
            KmsAction::ListKeys => self.list_keys(call).await,
            KmsAction::DescribeKey => {
                let id = match call.rest.strip_prefix("keys/") {
                    Some(id) => KeyId::new(id)?,
                    None => key_id_of(call, None)?,
                };
                let info = self.manager.service()?.backend().describe_key(&id).await?;
                Ok(ok("key described successfully", KeyReply::of(&info)).about(&id))
            }
            KmsAction::DeleteKey => self.delete_key(call).await,
            KmsAction::GenerateDataKey => self.generate_data_key(call).await,
            KmsAction::RotateKey
            | KmsAction::EnableKey
            | KmsAction::DisableKey
            | KmsAction::CancelKeyDeletion
            | KmsAction::UpdateKeyDescription
            | KmsAction::TagKey
            | KmsAction::UntagKey => self.key_update(action, call).await,
        }
    }

    async fn configure(&self, call: &AdminCall, re: bool) -> Result<Reply, ApiError> {
        if call.body.is_empty() {
            return Err(ApiError::bad_request("Request body is required"));
        }
        // A body without a default key keeps the current one, or gets the
        // gateway's own (`--kms-default-key-id`), never a second constant.
        let fallback = self.manager.config().map(|c| c.default_key_id).unwrap_or_else(|| self.manager.fallback_key().clone());
        let cfg = KmsConfig::parse(&call.body, SecretSource::Request, &fallback)?;
        if re {
            self.manager.reconfigure(cfg).await?;
            Ok(ok("KMS reconfigured and restarted successfully", StatusOnly { status: self.manager.status() }))
        } else {
            self.manager.configure(cfg).await?;
            Ok(ok("KMS configured successfully", StatusOnly { status: self.manager.status() }))
        }
    }

    async fn cluster_status(&self) -> Option<ClusterStatus> {
        let r = self.replicas.as_ref()?;
        let replicas = r.seen(Duration::from_secs(30)).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list the cluster's replicas");
            Vec::new()
        });
        let kms_config = self.manager.config_fingerprint();
        let diverged = replicas.iter().any(|x| x.kms_config != kms_config);
        Some(ClusterStatus { replica: r.id().to_owned(), generation: r.generation(), kms_config, replicas, diverged })
    }

    /// Works in every state; `healthy` comes from a real backend call.
    async fn status(&self) -> KmsStatusReply {
        let status = self.manager.status();
        let cfg = self.manager.config();
        let service = self.manager.service().ok();
        let (healthy, health_error) = match &service {
            Some(s) => match s.health().await {
                Ok(()) => (true, None),
                Err(e) => (false, Some(e.to_string())),
            },
            None => (false, None),
        };
        let backend = service.as_ref().map(|s| s.backend());
        KmsStatusReply {
            running: matches!(status, KmsStatus::Running) || service.is_some(),
            status,
            backend_type: cfg.as_ref().map(KmsConfig::backend_type),
            backend_status: if service.is_none() {
                "stopped"
            } else if healthy {
                "healthy"
            } else {
                "unhealthy"
            },
            healthy,
            health_error,
            ready: self.manager.ready(),
            generation: service.as_ref().map(|s| s.generation),
            default_key_id: cfg.as_ref().map(|c| c.default_key_id.clone()),
            cache_enabled: cfg.as_ref().map(|c| c.cache.enabled),
            bucket_keys: cfg.as_ref().map(|c| c.cache.enabled && c.cache.bucket_keys),
            cache_offline_grace_seconds: cfg.as_ref().map(|c| c.cache.offline_grace.as_secs()),
            cache_stats: service.as_ref().map(|s| s.caches().stats()),
            circuit_breaker: if backend.is_some_and(|b| b.circuit_open()) { "open" } else { "closed" },
            capabilities: backend.map(|b| Capabilities::of(b.as_ref())),
            config_summary: cfg.map(|c| c.to_json(SecretSink::Redact)),
            cluster: self.cluster_status().await,
        }
    }

    async fn create_key(&self, call: &AdminCall) -> Result<Reply, ApiError> {
        let r: CreateKey = parse(&call.body)?;
        if let Some(u) = &r.key_usage
            && !u.eq_ignore_ascii_case("EncryptDecrypt")
            && !u.eq_ignore_ascii_case("encrypt_decrypt")
        {
            return Err(ApiError::bad_request(format!("field `key_usage`: only EncryptDecrypt is supported, not '{u}'")));
        }
        if let Some(s) = &r.key_spec
            && !matches!(s.to_ascii_uppercase().replace('_', "").as_str(), "AES256")
        {
            return Err(ApiError::bad_request(format!("field `key_spec`: only AES_256 is supported, not '{s}'")));
        }
        let tags = r.tags.unwrap_or_default();
        // RustFS names keys by their `name` tag; an explicit key_id wins.
        let key_id = match r.key_id.as_deref().or(tags.get("name").map(String::as_str)) {
            Some(id) => Some(KeyId::new(id)?),
            None => None,
        };
        let req = CreateKeyRequest { key_id, description: r.description.unwrap_or_default(), tags };
        let info = self.manager.service()?.admin().create_key(req).await?;
        Ok(ok("key created successfully", KeyReply::of(&info)).about(&info.key_id))
    }

    async fn list_keys(&self, call: &AdminCall) -> Result<Reply, ApiError> {
        let limit = match call.query("limit") {
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|l| *l > 0)
                .ok_or_else(|| ApiError::bad_request("query `limit` must be a positive integer"))?
                .min(1000),
            None => 100,
        };
        let status = call.query("status").map(parse_status_filter).transpose()?;
        if let Some(u) = call.query("usage")
            && !u.replace('_', "").eq_ignore_ascii_case("EncryptDecrypt")
        {
            if u.replace('_', "").eq_ignore_ascii_case("SignVerify") {
                return Ok(ok("keys listed successfully", KeyList { keys: Vec::new(), truncated: false, next_marker: None }));
            }
            return Err(ApiError::bad_request(format!("query `usage`: '{u}' is not EncryptDecrypt or SignVerify")));
        }
        let marker = call.query("marker").map(str::to_owned);
        let all = self.manager.service()?.admin().list_keys().await?;
        let filtered: Vec<&KeyInfo> = all
            .iter()
            .filter(|k| status.is_none_or(|s| k.state == s))
            .filter(|k| marker.as_deref().is_none_or(|m| k.key_id.as_str() > m))
            .collect();
        let truncated = filtered.len() > limit;
        let keys = filtered.iter().take(limit).map(|k| KeyListEntry::of(k)).collect();
        let next_marker = truncated.then(|| filtered[limit - 1].key_id.to_string());
        Ok(ok("keys listed successfully", KeyList { keys, truncated, next_marker }))
    }

    async fn delete_key(&self, call: &AdminCall) -> Result<Reply, ApiError> {
        let r: KeyOp = parse(&call.body)?;
        let id = key_id_of(call, r.key_id.as_deref())?;
        let days = match (r.pending_window_in_days, call.query("pending_window_in_days")) {
            (Some(d), _) => d,
            (None, Some(q)) => q.parse().map_err(|_| ApiError::bad_request("query `pending_window_in_days` must be a number"))?,
            (None, None) => 30,
        };
        let service = self.manager.service()?;
        if r.force_immediate == Some(true) {
            if call.body.is_empty() {
                return Err(ApiError::bad_request("immediate deletion must be requested in the JSON body"));
            }
            if !self.allow_immediate_deletion {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "ImmediateDeletionDisabled",
                    "immediate key deletion is disabled on this gateway (--kms-allow-immediate-deletion)",
                ));
            }
            if r.confirm_key_id.as_deref() != Some(id.as_str()) {
                return Err(ApiError::bad_request("immediate deletion needs `confirm_key_id` equal to `key_id`"));
            }
            self.refuse_if_referenced(&service, &id).await?;
            service.backend().describe_key(&id).await?;
            service.admin().delete_key(&id).await?;
            service.clear_cache();
            return Ok(ok("key deleted successfully", DeleteReply::deleted(&id)).about(&id));
        }
        if !(7..=30).contains(&days) {
            return Err(ApiError::bad_request("`pending_window_in_days` must be between 7 and 30"));
        }
        let when = OffsetDateTime::now_utc() + TimeDuration::days(i64::from(days));
        let info = service.admin().update_key(&id, KeyUpdate::ScheduleDeletion(when)).await?;
        service.clear_cache();
        Ok(ok("key scheduled for deletion", DeleteReply::scheduled(&info)).about(&id))
    }

    async fn refuse_if_referenced(&self, service: &KmsService, id: &KeyId) -> Result<(), ApiError> {
        let mut refs = self.manager.references(id).await;
        if service.default_key_id() == id {
            refs.insert(0, "the KMS default key".into());
        }
        if refs.is_empty() {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "KeyStillReferenced",
            format!("key '{id}' is still referenced by: {}", refs.join(", ")),
        ))
    }

    async fn key_update(&self, action: KmsAction, call: &AdminCall) -> Result<Reply, ApiError> {
        let r: KeyOp = parse(&call.body)?;
        let id = key_id_of(call, r.key_id.as_deref())?;
        let service = self.manager.service()?;
        let admin = service.admin();
        let (info, message) = match action {
            KmsAction::RotateKey => (admin.rotate_key(&id).await?, "key rotated successfully"),
            KmsAction::EnableKey => (admin.update_key(&id, KeyUpdate::Enable).await?, "key enabled successfully"),
            KmsAction::DisableKey => (admin.update_key(&id, KeyUpdate::Disable).await?, "key disabled successfully"),
            KmsAction::CancelKeyDeletion => (admin.update_key(&id, KeyUpdate::CancelDeletion).await?, "key deletion cancelled"),
            KmsAction::UpdateKeyDescription => {
                let d = r.description.ok_or_else(|| ApiError::bad_request("field `description` is required"))?;
                (admin.update_key(&id, KeyUpdate::Description(d)).await?, "key description updated")
            }
            KmsAction::TagKey => {
                let t = r.tags.filter(|t| !t.is_empty()).ok_or_else(|| ApiError::bad_request("field `tags` is required"))?;
                (admin.update_key(&id, KeyUpdate::Tag(t)).await?, "key tagged successfully")
            }
            KmsAction::UntagKey => {
                let k = r.tag_keys.ok_or_else(|| ApiError::bad_request("field `tag_keys` is required"))?;
                (admin.update_key(&id, KeyUpdate::Untag(k)).await?, "key untagged successfully")
            }
            other => {
                let msg = format!("{} is not a key update", other.name());
                return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", msg));
            }
        };
        // State changes take effect at once, not after the cache TTL.
        service.clear_cache();
        Ok(ok(message, KeyReply::of(&info)).about(&id))
    }

    async fn generate_data_key(&self, call: &AdminCall) -> Result<Reply, ApiError> {
        let r: GenerateDataKey = parse(&call.body)?;
        let id = key_id_of(call, r.key_id.as_deref())?;
        if let Some(spec) = &r.key_spec
            && !matches!(spec.to_ascii_uppercase().replace('_', "").as_str(), "AES256")
        {
            return Err(ApiError::bad_request(format!("field `key_spec`: only Aes256 / AES_256 is supported, not '{spec}'")));
        }
        let ctx = r.encryption_context.unwrap_or_default();
        let service = self.manager.service()?;
        let who = KeyUse { principal: Some(&call.principal), ..Default::default() };
        let dk = service.generate_data_key(&id, &ctx, false, &who).await?;
        Ok(Reply::json(DataKeyReply::new(&id, dk.key_version, dk.plaintext.as_bytes(), &dk.wrapped)).about(&id))
    }
}

/// The target key: the body's `key_id`, else `?keyId` / `?key-id` / `?key`.
fn key_id_of(call: &AdminCall, body: Option<&str>) -> Result<KeyId, ApiError> {
    let raw = body
        .or_else(|| call.query("keyId"))
        .or_else(|| call.query("key-id"))
        .or_else(|| call.query("key_id"))
        .or_else(|| call.query("key"))
        .ok_or_else(|| ApiError::bad_request("field `key_id` is required"))?;
    Ok(KeyId::new(raw)?)
}
