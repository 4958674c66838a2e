//! The gateway's dynamic state: small JSON documents (bucket encryption
//! defaults, in-progress encrypted multipart uploads) grouped by namespace,
//! written atomically under `<data-dir>/state/<namespace>/`.
//!
//! A document's file is named by the SHA-256 of its key
//! (`<hex>.doc`, holding `{"key": …, "doc": …}`), so a name never grows
//! with a client- or store-chosen key (upload ids can be hundreds of bytes
//! long). Files of the first layout (`<hex(key)>.json`, the bare document)
//! are still read, and replaced on the next write.
//!
//! Documents hold no secret in clear (sealed keys only). Writes fsync, so
//! they suit low-rate control operations, not the data path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::fsutil::{create_private_dir, write_private_atomic, write_private_new};

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state I/O error at {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt state document {path}")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("state document {path} belongs to another key")]
    Misplaced { path: String },
}

/// A document as written: its key travels with it, since the file name is a hash.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    key: String,
    doc: T,
}

const DOC_EXT: &str = "doc";
const LEGACY_EXT: &str = "json";
/// Longest key a first-layout file name could hold (hex doubles it).
const LEGACY_MAX_KEY: usize = 120;

/// A directory of JSON documents grouped by namespace.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

/// The hex SHA-256 of `s`: a fixed-length file-name-safe digest of any key.
pub fn digest_name(s: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, s.as_bytes()))
}

fn io_err(path: &Path, source: std::io::Error) -> StateError {
    StateError::Io { path: path.display().to_string(), source }
}

fn not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

impl StateStore {
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        create_private_dir(dir).map_err(|e| io_err(dir, e))?;
        Ok(Self { dir: dir.to_owned() })
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

    fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path: path.display().to_string(), source }),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(io_err(path, e)),
        }
    }

    pub fn get<T: DeserializeOwned>(&self, ns: &str, key: &str) -> Result<Option<T>, StateError> {
        let path = self.path(ns, key);
        if let Some(env) = Self::read::<Envelope<T>>(&path)? {
            if env.key != key {
                return Err(StateError::Misplaced { path: path.display().to_string() });
            }
            return Ok(Some(env.doc));
        }
        match self.legacy_path(ns, key) {
            Some(legacy) => Self::read(&legacy),
            None => Ok(None),
        }
    }

    pub fn put<T: Serialize>(&self, ns: &str, key: &str, doc: &T) -> Result<(), StateError> {
        let path = self.path(ns, key);
        let json = serde_json::to_vec_pretty(&Envelope { key: key.to_owned(), doc }).expect("state documents serialise");
        write_private_atomic(&path, &json).map_err(|e| io_err(&path, e))?;
        // The new file shadows a first-layout one; remove it so a later
        // delete cannot resurrect the old value.
        if let Some(legacy) = self.legacy_path(ns, key) {
            Self::remove(&legacy)?;
        }
        Ok(())
    }

    /// Write a document only if `key` has none yet; `Ok(false)` if it has.
    /// Of concurrent creators of one key, exactly one succeeds.
    pub fn create<T: Serialize>(&self, ns: &str, key: &str, doc: &T) -> Result<bool, StateError> {
        let path = self.path(ns, key);
        let json = serde_json::to_vec_pretty(&Envelope { key: key.to_owned(), doc }).expect("state documents serialise");
        write_private_new(&path, &json).map_err(|e| io_err(&path, e))
    }

    fn remove(path: &Path) -> Result<bool, StateError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(io_err(path, e)),
        }
    }

    /// Remove a document; `Ok(false)` when there was none.
    pub fn delete(&self, ns: &str, key: &str) -> Result<bool, StateError> {
        let current = Self::remove(&self.path(ns, key))?;
        let legacy = match self.legacy_path(ns, key) {
            Some(p) => Self::remove(&p)?,
            None => false,
        };
        Ok(current || legacy)
    }

    /// Remove a whole namespace (e.g. the parts of one finished upload).
    pub fn delete_namespace(&self, ns: &str) -> Result<(), StateError> {
        let dir = self.ns_dir(ns);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if !not_found(&e) => Err(io_err(&dir, e)),
            _ => Ok(()),
        }
    }

    /// Every document of `ns` with its key, sorted by key. Unreadable
    /// documents are errors.
    pub fn list<T: DeserializeOwned>(&self, ns: &str) -> Result<Vec<(String, T)>, StateError> {
        let mut out = BTreeMap::new();
        let mut legacy = Vec::new();
        for (path, ext) in self.entries(ns)? {
            if ext == DOC_EXT {
                if let Some(env) = Self::read::<Envelope<T>>(&path)? {
                    out.insert(env.key, env.doc);
                }
            } else {
                legacy.push(path);
            }
        }
        for path in legacy {
            let Some(key) = legacy_key(&path) else { continue };
            if !out.contains_key(&key)
                && let Some(doc) = Self::read(&path)?
            {
                out.insert(key, doc);
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Remove every document of `ns` whose key starts with `prefix`.
    pub fn delete_prefix(&self, ns: &str, prefix: &str) -> Result<usize, StateError> {
        let mut n = 0;
        for (path, ext) in self.entries(ns)? {
            let key =
                if ext == DOC_EXT { Self::read::<Envelope<serde_json::Value>>(&path)?.map(|e| e.key) } else { legacy_key(&path) };
            if key.is_some_and(|k| k.starts_with(prefix)) && Self::remove(&path)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Document files of `ns` with their extension (temporaries skipped).
    fn entries(&self, ns: &str) -> Result<Vec<(PathBuf, &'static str)>, StateError> {
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

/// The key of a first-layout file, from its hex name.
fn legacy_key(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    String::from_utf8(hex::decode(stem).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_roundtrip_and_keys_cannot_escape() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::open(&d.path().join("state")).unwrap();
        s.put("ns", "../../etc/passwd", &vec![1, 2, 3]).unwrap();
        assert_eq!(s.get::<Vec<i32>>("ns", "../../etc/passwd").unwrap(), Some(vec![1, 2, 3]));
        assert!(d.path().join("state/ns").read_dir().unwrap().count() == 1);
        assert!(s.delete("ns", "../../etc/passwd").unwrap());
        assert!(!s.delete("ns", "../../etc/passwd").unwrap());
        assert_eq!(s.get::<Vec<i32>>("ns", "missing").unwrap(), None);
        for k in ["up1/1", "up1/2", "up10/1"] {
            s.put("p", k, &1).unwrap();
        }
        assert_eq!(s.list::<i32>("p").unwrap().iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["up1/1", "up1/2", "up10/1"]);
        assert_eq!(s.delete_prefix("p", "up1/").unwrap(), 2);
        assert_eq!(s.get::<i32>("p", "up10/1").unwrap(), Some(1));
    }

    #[test]
    fn create_refuses_an_existing_key() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::open(d.path()).unwrap();
        assert!(s.create("c", "1.0", &1).unwrap());
        assert!(!s.create("c", "1.0", &2).unwrap());
        assert_eq!(s.get::<i32>("c", "1.0").unwrap(), Some(1));
        s.put("c", "1.0", &3).unwrap();
        assert_eq!(s.get::<i32>("c", "1.0").unwrap(), Some(3));
    }

    #[test]
    fn long_keys_get_short_names() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::open(d.path()).unwrap();
        // A RustFS upload id is 124 characters; ids may be longer still.
        let key = "x".repeat(1000);
        s.put("uploads", &key, &7).unwrap();
        assert_eq!(s.get::<i32>("uploads", &key).unwrap(), Some(7));
        assert_eq!(s.list::<i32>("uploads").unwrap(), vec![(key.clone(), 7)]);
        let names: Vec<_> = d.path().join("uploads").read_dir().unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| n.len() < 80), "{names:?}");
        s.delete_namespace("uploads").unwrap();
        assert_eq!(s.get::<i32>("uploads", &key).unwrap(), None);
    }

    #[test]
    fn first_layout_documents_are_read_listed_and_replaced() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::open(d.path()).unwrap();
        let ns = d.path().join("bucket-encryption");
        std::fs::create_dir_all(&ns).unwrap();
        std::fs::write(ns.join(format!("{}.json", hex::encode("old-bucket"))), b"5").unwrap();
        std::fs::write(ns.join(format!("{}.json", hex::encode("both"))), b"1").unwrap();
        s.put("bucket-encryption", "both", &2).unwrap();
        assert_eq!(s.get::<i32>("bucket-encryption", "old-bucket").unwrap(), Some(5));
        assert_eq!(s.get::<i32>("bucket-encryption", "both").unwrap(), Some(2));
        assert_eq!(s.list::<i32>("bucket-encryption").unwrap(), vec![("both".to_string(), 2), ("old-bucket".to_string(), 5)]);
        assert!(s.delete("bucket-encryption", "old-bucket").unwrap());
        assert_eq!(s.get::<i32>("bucket-encryption", "old-bucket").unwrap(), None);
        assert!(s.delete("bucket-encryption", "both").unwrap());
        assert_eq!(s.get::<i32>("bucket-encryption", "both").unwrap(), None, "no older value resurfaces");
    }
}
