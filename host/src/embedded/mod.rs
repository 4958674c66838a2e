//! The embedded object store: s3s-fs in-process, with the fixes a store
//! needs to face real clients and crashes.
//!
//! - `mod.rs`: the wrapper (which calls are serialised and journaled);
//! - `journal.rs`: the undo journal that makes a write all-or-nothing;
//! - `layout.rs`: which files of s3s-fs a write touches;
//! - `read.rs`: GetObject's body in large reads;
//! - `listing.rs`: the ETags s3s-fs leaves out of listings;
//! - `uploads.rs`: ListMultipartUploads, which s3s-fs lacks.

mod journal;
mod layout;
mod listing;
mod read;
mod uploads;

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;

use s3s::dto::{
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput, CopySource,
    DeleteObjectInput, DeleteObjectOutput, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput,
    ListMultipartUploadsInput, ListMultipartUploadsOutput, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, Object, PutObjectInput, PutObjectOutput,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};
use tokio::sync::Mutex;

use self::journal::{Journal, Save};
use crate::s3::forward::s3_forwarding_impl;

/// Writer locks, striped by (bucket, key): enough to keep unrelated keys
/// apart, bounded in memory.
const WRITE_STRIPES: usize = 64;

/// Where the journal lives, under the store root: not a valid bucket name,
/// so never listed or addressable as one.
const JOURNAL_DIR: &str = ".kgw-journal";

/// s3s-fs behind a thin wrapper:
/// - a key that names a directory of the store (a common prefix, e.g. `dir`
///   when `dir/file` exists) is answered with `NoSuchKey`, as S3 does, where
///   s3s-fs fails with `InternalError` (which clients such as rclone retry
///   for minutes);
/// - writes of one key are serialised and journaled. s3s-fs replaces an
///   object's data file and then its metadata files; a writer interleaving
///   with another, an error between the steps (a bad Content-MD5 is found
///   after the data is in place) or a crash left data of one write with
///   metadata of another, an object that never reads again. Each write now
///   runs to its end in its own task (a client that hangs up does not stop
///   it halfway), and a write that fails, or never finished before a
///   crash, is rolled back. A reader racing a writer may still see a mixed
///   pair for a moment (the gateway then fails closed).
pub struct EmbeddedStore {
    fs: Arc<s3s_fs::FileSystem>,
    root: PathBuf,
    journal: Journal,
    writers: Vec<Arc<Mutex<()>>>,
    hasher: RandomState,
    /// Set when a write could be neither committed nor rolled back.
    broken: Arc<AtomicBool>,
}

impl EmbeddedStore {
    /// Wrap `fs`, rooted at `root`, rolling back the writes a crash left
    /// unfinished.
    pub fn open(fs: s3s_fs::FileSystem, root: PathBuf) -> io::Result<Self> {
        let (journal, rolled_back) = Journal::open(&root, &root.join(JOURNAL_DIR))?;
        if rolled_back > 0 {
            tracing::warn!(rolled_back, "embedded store: rolled back writes that a crash left unfinished");
        }
        let writers = (0..WRITE_STRIPES).map(|_| Arc::new(Mutex::new(()))).collect();
        Ok(Self { fs: Arc::new(fs), root, journal, writers, hasher: RandomState::new(), broken: Arc::default() })
    }

    fn writer(&self, bucket: &str, key: &str) -> Arc<Mutex<()>> {
        self.writers[(self.hasher.hash_one((bucket, key)) as usize) % WRITE_STRIPES].clone()
    }

    fn names_a_directory(&self, bucket: &str, key: &str) -> bool {
        // Bucket and key were validated by the S3 layer; `..` cannot escape
        // because s3s-fs resolves paths under its root the same way.
        !key.ends_with('/') && !key.split('/').any(|s| s == "..") && self.root.join(bucket).join(key).is_dir()
    }

    /// Run `write` on `bucket/key` under its writer lock and an intent
    /// saving `targets`, in a task of its own; commit it if it succeeds,
    /// roll it back if not (a panic included).
    async fn journaled<T, F>(&self, bucket: &str, key: &str, targets: Vec<PathBuf>, save: Save, write: F) -> S3Result<T>
    where
        T: Send + 'static,
        F: Future<Output = S3Result<T>> + Send + 'static,
    {
        if self.broken.load(Ordering::Acquire) {
            return Err(store_error("has a write it could neither finish nor undo; restart the gateway", &"refused"));
        }
        let lock = self.writer(bucket, key);
        let journal = self.journal.clone();
        let broken = self.broken.clone();
        let task = tokio::spawn(async move {
            let _w = lock.lock_owned().await;
            let intent = match tokio::task::spawn_blocking(move || journal.begin(&targets, save)).await {
                Ok(Ok(intent)) => intent,
                Ok(Err(e)) => return Err(store_error("could not record the write", &e)),
                Err(e) => return Err(store_error("could not record the write", &e)),
            };
            let out = match AssertUnwindSafe(write).catch_unwind().await {
                Ok(out) => out,
                Err(_) => Err(store_error("write panicked", &"rolled back")),
            };
            let ok = out.is_ok();
            let end = tokio::task::spawn_blocking(move || {
                if ok {
                    match intent.commit() {
                        Ok(()) => return Ok(true),
                        Err(e) => tracing::error!(error = %e, "embedded store: could not commit a write; rolling it back"),
                    }
                }
                intent.roll_back().map(|()| false)
            })
            .await;
            match end {
                Ok(Ok(true)) => out,
                Ok(Ok(false)) if ok => Err(store_error("could not make the write durable", &"rolled back")),
                Ok(Ok(false)) => out,
                // Left as the intent says, for the next start to roll back.
                // Later writes of the key would be undone with it: refuse
                // every write until then.
                Ok(Err(e)) => {
                    broken.store(true, Ordering::Release);
                    Err(store_error("could not undo a failed write", &e))
                }
                Err(e) => {
                    broken.store(true, Ordering::Release);
                    Err(store_error("could not finish the write", &e))
                }
            }
        });
        task.await.map_err(|e| store_error("the write stopped", &e))?
    }

    /// `partNumber` reads, which s3s-fs ignores: a single-PUT object is its
    /// part 1 (then read whole); s3s-fs keeps no part boundaries of a
    /// completed upload, so those are refused rather than answered wrong.
    async fn check_part_number<T>(&self, req: &S3Request<T>, bucket: &str, key: &str, n: i32) -> S3Result<()> {
        let head = HeadObjectInput::builder().bucket(bucket.to_owned()).key(key.to_owned()).build().expect("set");
        let out = s3s::S3::head_object(&*self.fs, crate::s3::sub_request_of(req, head)).await?.output;
        if out.e_tag.as_ref().is_some_and(|e| e.value().contains('-')) {
            return Err(s3_error!(NotImplemented, "The embedded store does not keep the parts of a multipart object."));
        }
        if n != 1 {
            return Err(s3_error!(InvalidPart, "The requested part number {n} does not exist in this object."));
        }
        Ok(())
    }

    /// `objects` of `bucket` with their ETags (s3s-fs lists none).
    async fn with_etags(&self, bucket: String, mut objects: Vec<Object>) -> S3Result<Vec<Object>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            listing::fill_etags(&root, &bucket, &mut objects);
            objects
        })
        .await
        .map_err(|e| store_error("could not read the listed ETags", &e))
    }

    fn object_files(&self, bucket: &str, key: &str) -> Vec<PathBuf> {
        // A path s3s-fs refuses touches nothing, so nothing to save.
        layout::object_files(&self.root, bucket, key).unwrap_or_default()
    }
}

fn store_error(what: &str, e: &dyn std::fmt::Display) -> s3s::S3Error {
    tracing::error!(error = %e, "embedded store: {what}");
    s3_error!(InternalError, "The embedded store {what}.")
}

/// The source object of a copy, when it names one in this store.
fn copy_source(source: &CopySource) -> Option<(&str, &str)> {
    match source {
        CopySource::Bucket { bucket, key, .. } => Some((bucket, key)),
        _ => None,
    }
}

fn same_file(a: &[PathBuf], b: &[PathBuf]) -> bool {
    a.first().zip(b.first()).is_some_and(|(a, b)| a == b)
}

s3_forwarding_impl! {
    $ EmbeddedStore,
    fs,
    hand {
        async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
            let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
            let fs = self.fs.clone();
            self.journaled(&bucket, &key, self.object_files(&bucket, &key), Save::Link, async move { fs.put_object(req).await }).await
        }
        async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
            let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
            let targets = self.object_files(&bucket, &key);
            // s3s-fs copies into the destination's files in place (a link
            // would share them): move them aside, unless the copy is onto
            // itself (then only the metadata is replaced, by rename).
            let onto_itself = copy_source(&req.input.copy_source).is_some_and(|(b, k)| same_file(&self.object_files(b, k), &targets));
            let save = if onto_itself { Save::Link } else { Save::Move };
            let fs = self.fs.clone();
            self.journaled(&bucket, &key, targets, save, async move { fs.copy_object(req).await }).await
        }
        async fn complete_multipart_upload(&self, req: S3Request<CompleteMultipartUploadInput>) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
            let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
            // A failed or interrupted completion puts the upload back too,
            // so that the client can retry it.
            let mut parts: Vec<i32> = req.input.multipart_upload.iter().flat_map(|m| m.parts.iter().flatten()).filter_map(|p| p.part_number).collect();
            // A client repeating numbers gets one saved copy of each part.
            parts.sort_unstable();
            parts.dedup();
            let mut targets = self.object_files(&bucket, &key);
            targets.extend(layout::upload_files(&self.root, &bucket, &key, &req.input.upload_id, &parts));
            let fs = self.fs.clone();
            self.journaled(&bucket, &key, targets, Save::Link, async move { fs.complete_multipart_upload(req).await }).await
        }
        async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
            // One unlink: atomic as it is; serialised with the writers.
            let _w = self.writer(&req.input.bucket, &req.input.key).lock_owned().await;
            self.fs.delete_object(req).await
        }
        async fn list_multipart_uploads(&self, req: S3Request<ListMultipartUploadsInput>) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
            let root = self.root.clone();
            let out = tokio::task::spawn_blocking(move || uploads::list(&root, &req.input))
                .await
                .map_err(|e| store_error("could not list uploads", &e))??;
            Ok(S3Response::new(out))
        }
        async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
            let bucket = req.input.bucket.clone();
            let mut resp = self.fs.list_objects_v2(req).await?;
            if let Some(objects) = resp.output.contents.take() {
                resp.output.contents = Some(self.with_etags(bucket, objects).await?);
            }
            Ok(resp)
        }
        async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
            let bucket = req.input.bucket.clone();
            let mut resp = self.fs.list_objects(req).await?;
            if let Some(objects) = resp.output.contents.take() {
                resp.output.contents = Some(self.with_etags(bucket, objects).await?);
            }
            Ok(resp)
        }
        async fn head_object(&self, mut req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
            if self.names_a_directory(&req.input.bucket, &req.input.key) {
                return Err(s3_error!(NoSuchKey));
            }
            if let Some(n) = req.input.part_number.take() {
                self.check_part_number(&req, &req.input.bucket, &req.input.key, n).await?;
            }
            let lock = self.writer(&req.input.bucket, &req.input.key);
            let _consistent = lock.lock().await;
            self.fs.head_object(req).await
        }
        async fn get_object(&self, mut req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
            if self.names_a_directory(&req.input.bucket, &req.input.key) {
                return Err(s3_error!(NoSuchKey));
            }
            if let Some(n) = req.input.part_number.take() {
                self.check_part_number(&req, &req.input.bucket, &req.input.key, n).await?;
            }
            // s3s-fs renames the new content into place, then writes its
            // metadata and ETag: read under the key's writer lock, so an
            // answer never pairs one write's body with another's metadata
            // or ETag (compare-and-set on the ETag depends on it). The body
            // streams from the file opened under it, after the lock is gone.
            let lock = self.writer(&req.input.bucket, &req.input.key);
            let _consistent = lock.lock().await;
            let data = layout::object_files(&self.root, &req.input.bucket, &req.input.key)
                .and_then(|files| files.into_iter().next());
            let range = req.input.range;
            let mut resp = self.fs.get_object(req).await?;
            // Still under the lock: the file opened here is the one s3s-fs
            // answered for. A small answer keeps s3s-fs's body (one or a
            // few reads; a second open would cost more than it saves).
            if let Some(path) = data.filter(|_| resp.output.content_length.is_some_and(read::worth_reopening)) {
                let ours = read::open(&path, range.as_ref()).await;
                if let Some(body) = ours.and_then(|o| o.body(resp.output.content_length)) {
                    resp.output.body = Some(body);
                }
            }
            Ok(resp)
        }
    }
}

#[cfg(test)]
mod tests {
    use s3s::dto::{CreateBucketInput, CreateMultipartUploadInput, ETag, StreamingBlob, UploadPartInput};

    use s3s::S3;

    use super::*;

    fn req<T>(input: T) -> S3Request<T> {
        S3Request {
            input,
            method: Default::default(),
            uri: Default::default(),
            headers: Default::default(),
            extensions: Default::default(),
            credentials: None,
            region: None,
            service: None,
            trailing_headers: None,
        }
    }

    fn body(b: &'static [u8]) -> Option<StreamingBlob> {
        Some(StreamingBlob::from(s3s::Body::from(bytes::Bytes::from_static(b))))
    }

    /// The journal saves the files s3s-fs really writes: if a new s3s-fs
    /// names them differently, this fails (and writes would not be atomic).
    #[tokio::test]
    async fn the_journal_knows_where_the_store_keeps_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let fs = s3s_fs::FileSystem::new(dir.path()).unwrap();
        fs.create_bucket(req(CreateBucketInput::builder().bucket("b".into()).build().unwrap())).await.unwrap();
        let mut put = PutObjectInput::builder().bucket("b".into()).key("dir/k".into()).build().unwrap();
        put.body = body(b"hello");
        put.metadata = Some([("m".to_owned(), "v".to_owned())].into());
        fs.put_object(req(put)).await.unwrap();
        for f in layout::object_files(dir.path(), "b", "dir/k").unwrap() {
            assert!(f.is_file(), "{} is where s3s-fs keeps it", f.display());
        }
        let mut create = CreateMultipartUploadInput::builder().bucket("b".into()).key("u".into()).build().unwrap();
        create.metadata = Some([("m".to_owned(), "v".to_owned())].into());
        let upload_id = fs.create_multipart_upload(req(create)).await.unwrap().output.upload_id.unwrap();
        let mut part = UploadPartInput::builder()
            .bucket("b".into())
            .key("u".into())
            .upload_id(upload_id.clone())
            .part_number(1)
            .build()
            .unwrap();
        part.body = body(b"part");
        fs.upload_part(req(part)).await.unwrap();
        let files = layout::upload_files(dir.path(), "b", "u", &upload_id, &[1]);
        assert_eq!(files.len(), 3);
        for f in files {
            assert!(f.is_file(), "{} is where s3s-fs keeps it", f.display());
        }
    }

    async fn store_with(dir: &std::path::Path, key: &str, body_bytes: &'static [u8]) -> EmbeddedStore {
        let fs = s3s_fs::FileSystem::new(dir).unwrap();
        let store = EmbeddedStore::open(fs, dir.to_owned()).unwrap();
        store.create_bucket(req(CreateBucketInput::builder().bucket("b".into()).build().unwrap())).await.unwrap();
        let mut put = PutObjectInput::builder().bucket("b".into()).key(key.into()).build().unwrap();
        put.body = body(body_bytes);
        put.metadata = Some([("m".to_owned(), "old".to_owned())].into());
        store.put_object(req(put)).await.unwrap();
        store
    }

    async fn read(store: &EmbeddedStore, key: &str) -> (Vec<u8>, Option<String>) {
        let out =
            store.get_object(req(GetObjectInput::builder().bucket("b".into()).key(key.into()).build().unwrap())).await.unwrap();
        let mut data = Vec::new();
        let mut blob = out.output.body.unwrap();
        while let Some(chunk) = futures::StreamExt::next(&mut blob).await {
            data.extend_from_slice(&chunk.unwrap());
        }
        (data, out.output.metadata.and_then(|m| m.get("m").cloned()))
    }

    /// s3s-fs puts the new data in place before it checks Content-MD5: a
    /// PUT with a wrong digest used to leave new data under old metadata.
    #[tokio::test]
    async fn a_refused_put_leaves_the_old_object_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), "k", b"old body").await;
        let mut put = PutObjectInput::builder().bucket("b".into()).key("k".into()).build().unwrap();
        put.body = body(b"new body!");
        put.metadata = Some([("m".to_owned(), "new".to_owned())].into());
        put.content_md5 = Some("1B2M2Y8AsgTpgAmY7PhCfg==".into());
        assert!(store.put_object(req(put)).await.is_err());
        assert_eq!(read(&store, "k").await, (b"old body".to_vec(), Some("old".into())));
    }

    /// A copy onto a key moves its files aside first (s3s-fs copies in
    /// place); a copy that fails puts them back.
    #[tokio::test]
    async fn a_failed_copy_puts_the_destination_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), "dst", b"destination").await;
        let mut copy = CopyObjectInput::builder()
            .bucket("b".into())
            .key("dst".into())
            .copy_source(CopySource::Bucket { bucket: "b".into(), key: "missing".into(), version_id: None })
            .build()
            .unwrap();
        copy.metadata_directive = None;
        assert!(store.copy_object(req(copy)).await.is_err());
        assert_eq!(read(&store, "dst").await, (b"destination".to_vec(), Some("old".into())));
        let copy = CopyObjectInput::builder()
            .bucket("b".into())
            .key("dst".into())
            .copy_source(CopySource::Bucket { bucket: "b".into(), key: "dst".into(), version_id: None })
            .build()
            .unwrap();
        store.copy_object(req(copy)).await.unwrap();
        assert_eq!(read(&store, "dst").await, (b"destination".to_vec(), Some("old".into())), "a copy onto itself");
    }

    /// Listings carry each object's ETag, the one HEAD answers with
    /// (s3s-fs lists none), in both ListObjects versions.
    #[tokio::test]
    async fn listings_carry_the_etags_heads_answer_with() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), "a", b"first").await;
        let mut put = PutObjectInput::builder().bucket("b".into()).key("dir/b".into()).build().unwrap();
        put.body = body(b"second");
        store.put_object(req(put)).await.unwrap();
        let mut heads = Vec::new();
        for key in ["a", "dir/b"] {
            let head = HeadObjectInput::builder().bucket("b".into()).key(key.into()).build().unwrap();
            heads.push((key.to_owned(), store.head_object(req(head)).await.unwrap().output.e_tag.unwrap()));
        }
        assert_eq!(heads[0].1.value(), hex::encode(<md5::Md5 as md5::Digest>::digest(b"first")));
        let listed = |objects: Option<Vec<Object>>| -> Vec<(String, ETag)> {
            objects.unwrap().into_iter().map(|o| (o.key.unwrap(), o.e_tag.expect("listed with its ETag"))).collect()
        };
        let v2 = ListObjectsV2Input::builder().bucket("b".into()).build().unwrap();
        assert_eq!(listed(store.list_objects_v2(req(v2)).await.unwrap().output.contents), heads);
        let v1 = ListObjectsInput::builder().bucket("b".into()).build().unwrap();
        assert_eq!(listed(store.list_objects(req(v1)).await.unwrap().output.contents), heads);
    }

    /// GetObject streams the data file in blocks of `READ_BLOCK` (s3s-fs
    /// reads 4 KiB at a time), whole or ranged, byte for byte.
    #[tokio::test]
    async fn get_streams_large_blocks_and_exact_ranges() {
        use s3s::dto::Range;
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), "small", b"x").await;
        let data: Vec<u8> = (0..(2 * read::READ_BLOCK + 12_345)).map(|i| (i % 251) as u8).collect();
        let mut put = PutObjectInput::builder().bucket("b".into()).key("big".into()).build().unwrap();
        put.body = Some(StreamingBlob::from(s3s::Body::from(bytes::Bytes::from(data.clone()))));
        store.put_object(req(put)).await.unwrap();
        let get = |range: Option<Range>| {
            let mut input = GetObjectInput::builder().bucket("b".into()).key("big".into()).build().unwrap();
            input.range = range;
            store.get_object(req(input))
        };
        let mut chunks = Vec::new();
        let mut blob = get(None).await.unwrap().output.body.unwrap();
        while let Some(c) = futures::StreamExt::next(&mut blob).await {
            chunks.push(c.unwrap());
        }
        assert_eq!(chunks.len(), 3, "three reads, not {} small ones", chunks.len());
        assert_eq!(chunks.concat(), data);
        let n = data.len() as u64;
        for (range, want) in [
            (Range::Int { first: 1_000_000, last: Some(1_100_000) }, &data[1_000_000..=1_100_000]),
            (Range::Int { first: n - 5, last: None }, &data[data.len() - 5..]),
            (Range::Suffix { length: 10 }, &data[data.len() - 10..]),
            (Range::Int { first: 0, last: Some(n + 100) }, &data[..]),
        ] {
            let out = get(Some(range)).await.unwrap().output;
            assert_eq!(out.content_length, Some(want.len() as i64), "{range:?}");
            let mut got = Vec::new();
            let mut blob = out.body.unwrap();
            while let Some(c) = futures::StreamExt::next(&mut blob).await {
                got.extend_from_slice(&c.unwrap());
            }
            assert_eq!(got, want, "{range:?}");
        }
        let err = get(Some(Range::Int { first: n, last: None })).await.unwrap_err();
        assert_eq!(*err.code(), s3s::S3ErrorCode::InvalidRange);
    }
}
