//! The upstream backend (cluster mode): documents as objects of a reserved
//! bucket of the upstream store, shared by every replica given the same
//! upstream and master key.
//!
//! Layout: `<namespace>/<sha256(key)>` per document, `_cluster/generation`
//! for the change counter. The store is not trusted: every object is the
//! envelope sealed (AES-256-GCM) under a key derived from the master key,
//! its name in the AAD, so the store can neither read nor alter nor move a
//! document. It can still delete one or put back an older one; what the
//! security floor must not depend on belongs in flags (`docs/deployment.md`).
//!
//! Consistency comes from the store's conditional writes: `create` is a PUT
//! with `If-None-Match: *`, the change counter is a compare-and-set on the
//! ETag (`If-Match`). [`UpstreamBackend::connect`] checks that the store
//! honours both before a replica starts, rather than risk lost updates.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{StateBackend, StateError, digest_name};
use crate::crypto::SealingKey;

const GENERATION: &str = "_cluster/generation";
const PROBE_PREFIX: &str = "_cluster/probe-";
/// Reads in flight while listing a namespace.
const LIST_READS: usize = 8;
/// Compare-and-set attempts before a change gives up (each lost race means
/// another replica's change went in).
const CAS_ATTEMPTS: usize = 64;

/// Documents in a bucket of the upstream store.
pub struct UpstreamBackend {
    client: Client,
    bucket: String,
    seal: SealingKey,
}

impl std::fmt::Debug for UpstreamBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBackend").field("bucket", &self.bucket).finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct GenerationDoc {
    generation: u64,
}

fn upstream_err<E: std::error::Error + Send + Sync + 'static>(what: String) -> impl FnOnce(SdkError<E>) -> StateError {
    move |e| StateError::Upstream { what, source: Box::new(e) }
}

fn status<E>(e: &SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

impl UpstreamBackend {
    /// Open the state bucket (created if missing) and check that the store
    /// refuses a second `If-None-Match: *` write and a stale `If-Match`.
    pub async fn connect(client: Client, bucket: String, seal: SealingKey) -> Result<Self, StateError> {
        let me = Self { client, bucket, seal };
        me.ensure_bucket().await?;
        me.probe_conditional_writes().await?;
        Ok(me)
    }

    async fn ensure_bucket(&self) -> Result<(), StateError> {
        if self.client.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            return Ok(());
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            // Another replica created it first.
            Err(e) if status(&e) == Some(409) => Ok(()),
            Err(e) => Err(upstream_err(format!("creating state bucket {}", self.bucket))(e)),
        }
    }

    async fn probe_conditional_writes(&self) -> Result<(), StateError> {
        let name = format!("{PROBE_PREFIX}{}", uuid::Uuid::new_v4());
        let first = self.put(&name, b"1", Precondition::Absent).await?;
        let Some(etag) = first else {
            return Err(StateError::NoConditionalWrites("a create-only PUT of a new object was refused".into()));
        };
        let second = self.put(&name, b"2", Precondition::Absent).await?;
        let stale = self.put(&name, b"3", Precondition::Matches("\"0000\"".into())).await?;
        let fresh = self.put(&name, b"4", Precondition::Matches(etag)).await?;
        let _ = self.client.delete_object().bucket(&self.bucket).key(&name).send().await;
        match (second, stale, fresh) {
            (None, None, Some(_)) => Ok(()),
            (Some(_), _, _) => Err(StateError::NoConditionalWrites("If-None-Match: * did not stop an overwrite".into())),
            (_, Some(_), _) => Err(StateError::NoConditionalWrites("If-Match with a stale ETag did not stop a write".into())),
            (_, _, None) => Err(StateError::NoConditionalWrites("If-Match with the current ETag was refused".into())),
        }
    }

    fn object(ns: &str, key: &str) -> String {
        format!("{ns}/{}", digest_name(key))
    }

    fn aad(object: &str) -> Vec<u8> {
        [b"kms-gateway/v2/cluster-state\0".as_slice(), object.as_bytes()].concat()
    }

    fn open(&self, object: &str, sealed: &[u8]) -> Result<Vec<u8>, StateError> {
        self.seal
            .open_bytes(sealed, &Self::aad(object))
            .map(|plain| plain.to_vec())
            .map_err(|_| StateError::Forged { path: format!("{}/{object}", self.bucket) })
    }

    fn sealed(&self, object: &str, plain: &[u8]) -> Vec<u8> {
        self.seal.seal_bytes(plain, &Self::aad(object)).expect("sealing a state document")
    }

    /// The object's bytes (opened) and ETag, if it exists.
    async fn get(&self, object: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
        let out = match self.client.get_object().bucket(&self.bucket).key(object).send().await {
            Ok(out) => out,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(upstream_err(format!("reading {object}"))(e)),
        };
        let etag = out.e_tag.clone().unwrap_or_default();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StateError::Upstream { what: format!("reading {object}"), source: Box::new(e) })?;
        Ok(Some((self.open(object, &body.into_bytes())?, etag)))
    }

    /// PUT `plain` (sealed) under `pre`; the new ETag, or `None` when the
    /// store answered 412 (the precondition did not hold).
    async fn put(&self, object: &str, plain: &[u8], pre: Precondition) -> Result<Option<String>, StateError> {
        let body = self.sealed(object, plain);
        let mut req = self.client.put_object().bucket(&self.bucket).key(object).body(ByteStream::from(body));
        req = match pre {
            Precondition::None => req,
            Precondition::Absent => req.if_none_match("*"),
            Precondition::Matches(etag) => req.if_match(etag),
        };
        match req.send().await {
            Ok(out) => Ok(Some(out.e_tag.unwrap_or_default())),
            // 409: a conditional write racing another on the same key.
            Err(e) if matches!(status(&e), Some(412 | 409)) => Ok(None),
            Err(e) => Err(upstream_err(format!("writing {object}"))(e)),
        }
    }

    async fn object_names(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .delimiter("/")
                .set_continuation_token(token)
                .send()
                .await
                .map_err(upstream_err(format!("listing {prefix}")))?;
            names.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            token = out.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    async fn delete(&self, object: &str) -> Result<(), StateError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(object)
            .send()
            .await
            .map(|_| ())
            .map_err(upstream_err(format!("deleting {object}")))
    }
}

enum Precondition {
    None,
    Absent,
    Matches(String),
}

#[async_trait::async_trait]
impl StateBackend for UpstreamBackend {
    fn shared(&self) -> bool {
        true
    }

    async fn read(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.get(&Self::object(ns, key)).await?.map(|(bytes, _)| bytes))
    }

    async fn write(&self, ns: &str, key: &str, envelope: &[u8]) -> Result<(), StateError> {
        self.put(&Self::object(ns, key), envelope, Precondition::None).await.map(|_| ())
    }

    async fn create(&self, ns: &str, key: &str, envelope: &[u8]) -> Result<bool, StateError> {
        Ok(self.put(&Self::object(ns, key), envelope, Precondition::Absent).await?.is_some())
    }

    async fn read_tagged(&self, ns: &str, key: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
        self.get(&Self::object(ns, key)).await
    }

    async fn replace(&self, ns: &str, key: &str, envelope: &[u8], tag: &str) -> Result<bool, StateError> {
        let pre = Precondition::Matches(tag.to_owned());
        Ok(self.put(&Self::object(ns, key), envelope, pre).await?.is_some())
    }

    async fn remove(&self, ns: &str, key: &str) -> Result<bool, StateError> {
        let object = Self::object(ns, key);
        // S3 deletes answer alike whether or not the object existed.
        let existed = match self.client.head_object().bucket(&self.bucket).key(&object).send().await {
            Ok(_) => true,
            Err(e) if status(&e) == Some(404) => false,
            Err(e) => return Err(upstream_err(format!("reading {object}"))(e)),
        };
        if existed {
            self.delete(&object).await?;
        }
        Ok(existed)
    }

    async fn entries(&self, ns: &str) -> Result<Vec<Vec<u8>>, StateError> {
        let names = self.object_names(&format!("{ns}/")).await?;
        let reads: Vec<_> = names.into_iter().map(|n| async move { self.get(&n).await }).collect();
        let docs: Vec<Option<(Vec<u8>, String)>> =
            futures::stream::iter(reads).buffer_unordered(LIST_READS).try_collect().await?;
        // A document deleted between the listing and its read is gone.
        Ok(docs.into_iter().flatten().map(|(bytes, _)| bytes).collect())
    }

    async fn remove_namespace(&self, ns: &str) -> Result<(), StateError> {
        for name in self.object_names(&format!("{ns}/")).await? {
            self.delete(&name).await?;
        }
        Ok(())
    }

    async fn generation(&self) -> Result<u64, StateError> {
        Ok(match self.get(GENERATION).await? {
            Some((bytes, _)) => generation_of(&bytes)?,
            None => 0,
        })
    }

    async fn bump(&self) -> Result<u64, StateError> {
        for _ in 0..CAS_ATTEMPTS {
            let (next, pre) = match self.get(GENERATION).await? {
                Some((bytes, etag)) => (generation_of(&bytes)? + 1, Precondition::Matches(etag)),
                None => (1, Precondition::Absent),
            };
            let doc = serde_json::to_vec(&GenerationDoc { generation: next }).expect("serialises");
            if self.put(GENERATION, &doc, pre).await?.is_some() {
                return Ok(next);
            }
        }
        Err(StateError::Contended(GENERATION.into()))
    }
}

fn generation_of(bytes: &[u8]) -> Result<u64, StateError> {
    serde_json::from_slice::<GenerationDoc>(bytes)
        .map(|d| d.generation)
        .map_err(|source| StateError::Corrupt { path: GENERATION.into(), source })
}
