//! The gateway's dynamic state: small JSON documents (bucket encryption
//! defaults, in-progress encrypted multipart uploads) under
//! `<data-dir>/state/<namespace>/<hex(key)>.json`, written atomically.
//!
//! Documents hold no secret in clear (sealed keys only). Writes fsync, so
//! they suit low-rate control operations, not the data path.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::fsutil::{create_private_dir, write_private_atomic};

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
}

/// A directory of JSON documents grouped by namespace.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        create_private_dir(dir).map_err(|source| StateError::Io { path: dir.display().to_string(), source })?;
        Ok(Self { dir: dir.to_owned() })
    }

    fn path(&self, ns: &str, key: &str) -> PathBuf {
        // Hex keeps any key (upload ids, bucket names) a plain file name.
        self.dir.join(ns).join(format!("{}.json", hex::encode(key)))
    }

    pub fn get<T: DeserializeOwned>(&self, ns: &str, key: &str) -> Result<Option<T>, StateError> {
        let path = self.path(ns, key);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path: path.display().to_string(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path: path.display().to_string(), source }),
        }
    }

    pub fn put<T: Serialize>(&self, ns: &str, key: &str, doc: &T) -> Result<(), StateError> {
        let path = self.path(ns, key);
        let json = serde_json::to_vec_pretty(doc).expect("state documents serialise");
        write_private_atomic(&path, &json).map_err(|source| StateError::Io { path: path.display().to_string(), source })
    }

    /// Remove a document; `Ok(false)` when there was none.
    pub fn delete(&self, ns: &str, key: &str) -> Result<bool, StateError> {
        let path = self.path(ns, key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StateError::Io { path: path.display().to_string(), source }),
        }
    }
}

impl StateStore {
    /// Every document of `ns`, with its key. Unreadable documents are errors.
    pub fn list<T: DeserializeOwned>(&self, ns: &str) -> Result<Vec<(String, T)>, StateError> {
        let dir = self.dir.join(ns);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StateError::Io { path: dir.display().to_string(), source }),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".json").and_then(|h| hex::decode(h).ok()).and_then(|k| String::from_utf8(k).ok())
            else {
                continue;
            };
            if let Some(doc) = self.get(ns, &key)? {
                out.push((key, doc));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Remove every document of `ns` whose key starts with `prefix`.
    pub fn delete_prefix(&self, ns: &str, prefix: &str) -> Result<usize, StateError> {
        let dir = self.dir.join(ns);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => return Err(StateError::Io { path: dir.display().to_string(), source }),
        };
        // hex(prefix ‖ rest) = hex(prefix) ‖ hex(rest): a file-name prefix.
        let want = hex::encode(prefix);
        let mut n = 0;
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&want) {
                std::fs::remove_file(e.path())
                    .map_err(|source| StateError::Io { path: e.path().display().to_string(), source })?;
                n += 1;
            }
        }
        Ok(n)
    }
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
}
