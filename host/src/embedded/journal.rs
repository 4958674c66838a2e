//! An undo journal that makes one store write all-or-nothing.
//!
//! s3s-fs writes an object as several files (data, metadata, checksums)
//! replaced one after the other, and a multipart completion also removes
//! the upload's files. A crash or an error between two of those steps
//! leaves a key whose data and metadata come from different writes: an
//! object that never reads again. Before a write, the files it may touch
//! are saved in an *intent* (hard links, or the files themselves for a
//! write that modifies files in place); after it, the intent is dropped
//! (commit) or its files put back (roll back). An intent found at start-up
//! belongs to a write that never finished and is rolled back, so a key
//! holds the old object or the new one, never a mix.
//!
//! Durability: the intent is synced before the write starts, and a
//! committed write's files and directories are synced before the intent is
//! dropped, so an acknowledged write survives a power loss as well.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::write_private_atomic;

const INTENT: &str = "intent.json";

/// How an intent saves a file that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Save {
    /// A hard link: for writes that replace files by rename or unlink.
    Link,
    /// The file itself, moved aside: for writes that modify files in place
    /// (readers see the key absent until the write ends).
    Move,
}

#[derive(Debug, Clone)]
pub(super) struct Journal {
    root: PathBuf,
    dir: PathBuf,
}

/// One write in progress: its targets.
#[derive(Serialize, Deserialize)]
struct Record {
    targets: Vec<Target>,
}

/// A file a write may touch, relative to the store root; if it existed,
/// its saved copy is `<intent>/<slot>`.
#[derive(Serialize, Deserialize)]
struct Target {
    path: String,
    existed: bool,
    slot: usize,
}

#[must_use = "an intent must be committed or rolled back"]
pub(super) struct Intent {
    dir: PathBuf,
    root: PathBuf,
    record: Record,
}

impl Journal {
    /// Open the journal in `dir` (under the store `root`, on the same
    /// filesystem) and roll back every write that never finished; returns
    /// the journal and how many writes were rolled back.
    pub(super) fn open(root: &Path, dir: &Path) -> io::Result<(Self, usize)> {
        fs::create_dir_all(dir)?;
        let journal = Self { root: root.to_owned(), dir: dir.to_owned() };
        let mut rolled_back = 0;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if !path.is_dir() {
                continue;
            }
            match fs::read(path.join(INTENT)) {
                Ok(bytes) => {
                    let record: Record = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
                    Intent { dir: path, root: root.to_owned(), record }.roll_back()?;
                    rolled_back += 1;
                }
                // Never recorded: the write had not started.
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::remove_dir_all(&path)?,
                Err(e) => return Err(e),
            }
        }
        sync_dir(dir)?;
        Ok((journal, rolled_back))
    }

    /// Save `targets` (paths under the root) before a write touches them.
    pub(super) fn begin(&self, targets: &[PathBuf], save: Save) -> io::Result<Intent> {
        let mut nonce = [0u8; 8];
        crate::crypto::random_bytes(&mut nonce).map_err(io::Error::other)?;
        let dir = self.dir.join(hex::encode(nonce));
        fs::create_dir(&dir)?;
        let result = (|| {
            let mut record = Record { targets: Vec::with_capacity(targets.len()) };
            for (i, target) in targets.iter().enumerate() {
                let relative = target
                    .strip_prefix(&self.root)
                    .ok()
                    .and_then(Path::to_str)
                    .ok_or_else(|| io::Error::other("journal target outside the store root"))?;
                let saved = dir.join(i.to_string());
                let existed = match fs::symlink_metadata(target) {
                    // A directory object is created, never replaced.
                    Ok(m) if m.is_dir() => continue,
                    Ok(_) => {
                        match save {
                            Save::Link => fs::hard_link(target, &saved)?,
                            Save::Move => fs::rename(target, &saved)?,
                        }
                        true
                    }
                    Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => false,
                    Err(e) => return Err(e),
                };
                record.targets.push(Target { path: relative.to_owned(), existed, slot: i });
            }
            // The intent exists once this file does (synced with its
            // directory, hence with the saved links).
            write_private_atomic(&dir.join(INTENT), &serde_json::to_vec(&record).map_err(io::Error::other)?)?;
            sync_dir(&self.dir)?;
            Ok(record)
        })();
        match result {
            Ok(record) => Ok(Intent { dir, root: self.root.clone(), record }),
            Err(e) => {
                // Put back what was moved aside, then forget the attempt.
                if save == Save::Move {
                    for (i, target) in targets.iter().enumerate() {
                        let _ = fs::rename(dir.join(i.to_string()), target);
                    }
                }
                let _ = fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }
}

impl Intent {
    /// The write succeeded: make its files durable, then drop the intent.
    pub(super) fn commit(&self) -> io::Result<()> {
        let mut dirs = BTreeSet::new();
        for t in &self.record.targets {
            let target = self.root.join(&t.path);
            match File::open(&target) {
                Ok(f) if f.metadata()?.is_file() => f.sync_all()?,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {}
                Err(e) => return Err(e),
            }
            if let Some(parent) = target.parent() {
                dirs.insert(parent.to_owned());
            }
        }
        for dir in dirs {
            match sync_dir(&dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.forget()
    }

    /// The write failed (or never finished): put every target back as it
    /// was. Idempotent, so a crash during a roll-back is rolled back again.
    pub(super) fn roll_back(&self) -> io::Result<()> {
        for t in &self.record.targets {
            let target = self.root.join(&t.path);
            if t.existed {
                let saved = self.dir.join(t.slot.to_string());
                if saved.exists() {
                    if let Some(parent) = target.parent() {
                        fs::create_dir_all(parent)?;
                    }
                    fs::rename(&saved, &target)?;
                }
            } else {
                match fs::remove_file(&target) {
                    // A directory object made by the write stays.
                    Err(e) if !matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) && !target.is_dir() => {
                        return Err(e);
                    }
                    _ => {}
                }
            }
        }
        for t in &self.record.targets {
            if let Some(parent) = self.root.join(&t.path).parent() {
                let _ = sync_dir(parent);
            }
        }
        self.forget()
    }

    /// Drop the intent: removing its record is the commit point.
    fn forget(&self) -> io::Result<()> {
        fs::remove_file(self.dir.join(INTENT))?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&self.dir)?;
        self.dir.parent().map_or(Ok(()), sync_dir)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Journal, PathBuf, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let (journal, n) = Journal::open(root.path(), &root.path().join(".j")).unwrap();
        assert_eq!(n, 0);
        let data = root.path().join("b/k");
        let meta = root.path().join(".meta");
        fs::create_dir_all(data.parent().unwrap()).unwrap();
        fs::write(&data, b"old data").unwrap();
        fs::write(&meta, b"old meta").unwrap();
        (root, journal, data, meta)
    }

    /// What s3s-fs does: data replaced by rename, then metadata.
    fn replace(path: &Path, body: &[u8]) {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, body).unwrap();
        fs::rename(tmp, path).unwrap();
    }

    #[test]
    fn a_failed_write_is_rolled_back_and_a_new_file_removed() {
        let (root, journal, data, meta) = setup();
        let fresh = root.path().join(".new");
        let intent = journal.begin(&[data.clone(), meta.clone(), fresh.clone()], Save::Link).unwrap();
        replace(&data, b"new data");
        fs::write(&fresh, b"x").unwrap();
        intent.roll_back().unwrap();
        assert_eq!(fs::read(&data).unwrap(), b"old data");
        assert_eq!(fs::read(&meta).unwrap(), b"old meta");
        assert!(!fresh.exists());
        assert_eq!(fs::read_dir(root.path().join(".j")).unwrap().count(), 0);
    }

    #[test]
    fn a_write_a_crash_interrupted_is_rolled_back_at_the_next_open() {
        let (root, journal, data, meta) = setup();
        let intent = journal.begin(&[data.clone(), meta.clone()], Save::Link).unwrap();
        replace(&data, b"new data");
        // The process dies here: nothing runs after the data file.
        std::mem::forget(intent);
        let (_, rolled_back) = Journal::open(root.path(), &root.path().join(".j")).unwrap();
        assert_eq!(rolled_back, 1);
        assert_eq!(fs::read(&data).unwrap(), b"old data");
        assert_eq!(fs::read(&meta).unwrap(), b"old meta");
        // A second open finds nothing left to do.
        assert_eq!(Journal::open(root.path(), &root.path().join(".j")).unwrap().1, 0);
    }

    #[test]
    fn an_in_place_write_is_rolled_back_when_its_files_were_moved_aside() {
        let (_root, journal, data, meta) = setup();
        let intent = journal.begin(&[data.clone(), meta.clone()], Save::Move).unwrap();
        assert!(!data.exists(), "moved aside");
        fs::write(&data, b"copied in place").unwrap();
        intent.roll_back().unwrap();
        assert_eq!(fs::read(&data).unwrap(), b"old data");
        assert_eq!(fs::read(&meta).unwrap(), b"old meta");
    }

    #[test]
    fn a_committed_write_stays_and_leaves_no_intent() {
        let (root, journal, data, meta) = setup();
        let intent = journal.begin(&[data.clone(), meta.clone()], Save::Link).unwrap();
        replace(&data, b"new data");
        replace(&meta, b"new meta");
        intent.commit().unwrap();
        assert_eq!(fs::read(&data).unwrap(), b"new data");
        assert_eq!(fs::read(&meta).unwrap(), b"new meta");
        assert_eq!(Journal::open(root.path(), &root.path().join(".j")).unwrap().1, 0);
        assert_eq!(fs::read(&data).unwrap(), b"new data");
    }

    #[test]
    fn an_intent_never_recorded_is_dropped_without_touching_anything() {
        let (root, _journal, data, _meta) = setup();
        // A crash after the links were made but before the record.
        let half = root.path().join(".j/deadbeef");
        fs::create_dir_all(&half).unwrap();
        fs::hard_link(&data, half.join("0")).unwrap();
        replace(&data, b"unrelated later write");
        assert_eq!(Journal::open(root.path(), &root.path().join(".j")).unwrap().1, 0);
        assert!(!half.exists());
        assert_eq!(fs::read(&data).unwrap(), b"unrelated later write");
    }
}
