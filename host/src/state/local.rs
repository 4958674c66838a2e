//! The data-directory backend: one file per document under
//! `<data-dir>/state/<namespace>/`, written atomically and fsynced.
//!
//! A document's file is named by the SHA-256 of its key (`<hex>.doc`), so a
//! name never grows with a client- or store-chosen key (upload ids can be
//! hundreds of bytes long). Files of the first layout (`<hex(key)>.json`,
//! the bare document) are still read, and replaced on the next write.

use std::path::{Path, PathBuf};

use super::{StateBackend, StateError, digest_name};
use crate::fsutil::{create_private_dir, write_private_atomic, write_private_new};

const DOC_EXT: &str = "doc";
const LEGACY_EXT: &str = "json";
/// Longest key a first-layout file name could hold (hex doubles it).
const LEGACY_MAX_KEY: usize = 120;

/// Documents in a directory.
#[derive(Debug)]
pub struct DirBackend {
    dir: PathBuf,
    /// Makes compare-and-set atomic: one process owns the data directory.
    replacing: std::sync::Mutex<()>,
}

fn io_err(path: &Path, source: std::io::Error) -> StateError {
    StateError::Io { path: path.display().to_string(), source }
}

fn not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

fn digest_tag(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

fn remove_file(path: &Path) -> Result<bool, StateError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if not_found(&e) => Ok(false),
        Err(e) => Err(io_err(path, e)),
    }
}

/// A first-layout file (the bare document) as an envelope.
fn legacy_envelope(path: &Path, key: &str, bytes: &[u8]) -> Result<Vec<u8>, StateError> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|source| StateError::Corrupt { path: path.display().to_string(), source })?;
    Ok(serde_json::to_vec(&serde_json::json!({ "key": key, "doc": doc })).expect("JSON values serialise"))
}

/// The key of a first-layout file, from its hex name.
fn legacy_key(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    String::from_utf8(hex::decode(stem).ok()?).ok()
}

impl DirBackend {
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        create_private_dir(dir).map_err(|e| io_err(dir, e))?;
        Ok(Self { dir: dir.to_owned(), replacing: std::sync::Mutex::new(()) })
    }

    fn ns_dir(&self, ns: &str) -> PathBuf {
        self.dir.join(ns)
    }

    fn path(&self, ns: &str, key: &str) -> PathBuf {
        self.ns_dir(ns).join(format!("{}.{DOC_EXT}", digest_name(key)))
    }

    fn legacy_path(&self, ns: &str, key: &str) -> Option<PathBuf> {
        (key.len() <= LEGACY_MAX_KEY).then(|| self.ns_dir(ns).join(format!("{}.{LEGACY_EXT}", hex::encode(key))))
    }

    /// Document files of `ns` with their extension (temporaries skipped).
    fn files(&self, ns: &str) -> Result<Vec<(PathBuf, &'static str)>, StateError> {
        let dir = self.ns_dir(ns);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let path = e.map_err(|e| io_err(&dir, e))?.path();
            let ext = match path.extension().and_then(|x| x.to_str()) {
                Some(DOC_EXT) => DOC_EXT,
                Some(LEGACY_EXT) => LEGACY_EXT,
                _ => continue,
            };
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.')) {
                out.push((path, ext));
            }
        }
        Ok(out)
    }
}

impl DirBackend {
    fn read_doc(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(bytes) = read_file(&self.path(ns, key))? {
            return Ok(Some(bytes));
        }
        let Some(legacy) = self.legacy_path(ns, key) else { return Ok(None) };
        match read_file(&legacy)? {
            Some(bytes) => legacy_envelope(&legacy, key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn write_doc(&self, ns: &str, key: &str, envelope: &[u8]) -> Result<(), StateError> {
        let path = self.path(ns, key);
        write_private_atomic(&path, envelope).map_err(|e| io_err(&path, e))?;
        // The new file shadows a first-layout one; remove it so a later
        // delete cannot resurrect the old value.
        if let Some(legacy) = self.legacy_path(ns, key) {
            remove_file(&legacy)?;
        }
        Ok(())
    }
}

// Small files on a local disk: plain blocking calls, as cheap as a hop to
// a blocking thread would be.
#[async_trait::async_trait]
impl StateBackend for DirBackend {
    async fn read(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.read_doc(ns, key)
    }

    async fn write(&self, ns: &str, key: &str, envelope: &[u8]) -> Result<(), StateError> {
        let _after_any_replace = self.replacing.lock().expect("replace lock");
        self.write_doc(ns, key, envelope)
    }

    async fn create(&self, ns: &str, key: &str, envelope: &[u8]) -> Result<bool, StateError> {
        let path = self.path(ns, key);
        write_private_new(&path, envelope).map_err(|e| io_err(&path, e))
    }

    async fn read_tagged(&self, ns: &str, key: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
        Ok(self.read_doc(ns, key)?.map(|bytes| {
            let tag = digest_tag(&bytes);
            (bytes, tag)
        }))
    }

    async fn replace(&self, ns: &str, key: &str, envelope: &[u8], tag: &str) -> Result<bool, StateError> {
        let _one_at_a_time = self.replacing.lock().expect("replace lock");
        match self.read_doc(ns, key)? {
            Some(current) if digest_tag(&current) == tag => self.write_doc(ns, key, envelope).map(|()| true),
            _ => Ok(false),
        }
    }

    async fn remove(&self, ns: &str, key: &str) -> Result<bool, StateError> {
        let current = remove_file(&self.path(ns, key))?;
        let legacy = match self.legacy_path(ns, key) {
            Some(p) => remove_file(&p)?,
            None => false,
        };
        Ok(current || legacy)
    }

    async fn entries(&self, ns: &str) -> Result<Vec<Vec<u8>>, StateError> {
        let mut current = Vec::new();
        let mut keys = std::collections::HashSet::new();
        let mut legacy = Vec::new();
        for (path, ext) in self.files(ns)? {
            if ext == LEGACY_EXT {
                legacy.push(path);
                continue;
            }
            let Some(bytes) = read_file(&path)? else { continue };
            let env: super::Envelope<serde_json::Value> = serde_json::from_slice(&bytes)
                .map_err(|source| StateError::Corrupt { path: path.display().to_string(), source })?;
            keys.insert(env.key);
            current.push(bytes);
        }
        for path in legacy {
            let Some(key) = legacy_key(&path) else { continue };
            if !keys.contains(&key)
                && let Some(bytes) = read_file(&path)?
            {
                current.push(legacy_envelope(&path, &key, &bytes)?);
            }
        }
        Ok(current)
    }

    async fn remove_namespace(&self, ns: &str) -> Result<(), StateError> {
        let dir = self.ns_dir(ns);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if !not_found(&e) => Err(io_err(&dir, e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::StateStore;

    #[tokio::test]
    async fn documents_roundtrip_and_keys_cannot_escape() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::open(&d.path().join("state")).unwrap();
        s.put("ns", "../../etc/passwd", &vec![1, 2, 3]).await.unwrap();
        assert_eq!(s.get::<Vec<i32>>("ns", "../../etc/passwd").await.unwrap(), Some(vec![1, 2, 3]));
        assert!(d.path().join("state/ns").read_dir().unwrap().count() == 1);
        assert!(s.delete("ns", "../../etc/passwd").await.unwrap());
        assert!(!s.delete("ns", "../../etc/passwd").await.unwrap());
        assert_eq!(s.get::<Vec<i32>>("ns", "missing").await.unwrap(), None);
        for k in ["up1/1", "up1/2", "up10/1"] {
            s.put("p", k, &1).await.unwrap();
        }
        assert_eq!(
            s.list::<i32>("p").await.unwrap().iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["up1/1", "up1/2", "up10/1"]
        );
        assert_eq!(s.delete_prefix("p", "up1/").await.unwrap(), 2);
        assert_eq!(s.get::<i32>("p", "up10/1").await.unwrap(), Some(1));
    }

    #[tokio::test]
    async fn create_refuses_an_existing_key() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::open(d.path()).unwrap();
        assert!(s.create("c", "1.0", &1).await.unwrap());
        assert!(!s.create("c", "1.0", &2).await.unwrap());
        assert_eq!(s.get::<i32>("c", "1.0").await.unwrap(), Some(1));
        s.put("c", "1.0", &3).await.unwrap();
        assert_eq!(s.get::<i32>("c", "1.0").await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn replace_is_compare_and_set() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::open(d.path()).unwrap();
        s.put("k", "a", &1).await.unwrap();
        let (v, tag) = s.get_tagged::<i32>("k", "a").await.unwrap().unwrap();
        assert_eq!(v, 1);
        assert!(s.replace("k", "a", &2, &tag).await.unwrap());
        // The tag read before that write is stale now.
        assert!(!s.replace("k", "a", &3, &tag).await.unwrap());
        assert_eq!(s.get::<i32>("k", "a").await.unwrap(), Some(2));
        let (_, fresh) = s.get_tagged::<i32>("k", "a").await.unwrap().unwrap();
        s.delete("k", "a").await.unwrap();
        assert!(!s.replace("k", "a", &4, &fresh).await.unwrap(), "a deleted document is not recreated");
        assert_eq!(s.get::<i32>("k", "a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn long_keys_get_short_names() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::open(d.path()).unwrap();
        // A RustFS upload id is 124 characters; ids may be longer still.
        let key = "x".repeat(1000);
        s.put("uploads", &key, &7).await.unwrap();
        assert_eq!(s.get::<i32>("uploads", &key).await.unwrap(), Some(7));
        assert_eq!(s.list::<i32>("uploads").await.unwrap(), vec![(key.clone(), 7)]);
        let names: Vec<_> = d.path().join("uploads").read_dir().unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| n.len() < 80), "{names:?}");
        s.delete_namespace("uploads").await.unwrap();
        assert_eq!(s.get::<i32>("uploads", &key).await.unwrap(), None);
    }

    #[tokio::test]
    async fn first_layout_documents_are_read_listed_and_replaced() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::open(d.path()).unwrap();
        let ns = d.path().join("bucket-encryption");
        std::fs::create_dir_all(&ns).unwrap();
        std::fs::write(ns.join(format!("{}.json", hex::encode("old-bucket"))), b"5").unwrap();
        std::fs::write(ns.join(format!("{}.json", hex::encode("both"))), b"1").unwrap();
        s.put("bucket-encryption", "both", &2).await.unwrap();
        assert_eq!(s.get::<i32>("bucket-encryption", "old-bucket").await.unwrap(), Some(5));
        assert_eq!(s.get::<i32>("bucket-encryption", "both").await.unwrap(), Some(2));
        assert_eq!(
            s.list::<i32>("bucket-encryption").await.unwrap(),
            vec![("both".to_string(), 2), ("old-bucket".to_string(), 5)]
        );
        assert!(s.delete("bucket-encryption", "old-bucket").await.unwrap());
        assert_eq!(s.get::<i32>("bucket-encryption", "old-bucket").await.unwrap(), None);
        assert!(s.delete("bucket-encryption", "both").await.unwrap());
        assert_eq!(s.get::<i32>("bucket-encryption", "both").await.unwrap(), None, "no older value resurfaces");
    }
}
