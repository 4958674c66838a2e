//! Durable, private file writes for keys, credentials and state.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Write `data` to `path` atomically and durably with mode 0600: write a
/// temporary file in the same directory, fsync it, rename it over `path`,
/// then fsync the directory so the rename survives a crash.
pub fn write_private_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    if path.file_name().is_none() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"));
    }
    // Short and unique per call: concurrent writers of one path (threads or
    // processes) never share a temporary file, and a long target name
    // cannot push the temporary name past the file-name limit.
    let mut nonce = [0u8; 8];
    crate::crypto::random_bytes(&mut nonce).map_err(io::Error::other)?;
    let tmp = dir.join(format!(".tmp.{}", hex::encode(nonce)));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        // The mode above only applies on creation; enforce it for a stale file.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Like [`write_private_atomic`], but only if `path` does not exist yet:
/// `Ok(false)` when it does. The file appears whole or not at all (a hard
/// link of a synced temporary file), and of two racing writers exactly
/// one wins.
pub fn write_private_new(path: &Path, data: &[u8]) -> io::Result<bool> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut nonce = [0u8; 8];
    crate::crypto::random_bytes(&mut nonce).map_err(io::Error::other)?;
    let tmp = dir.join(format!(".tmp.{}", hex::encode(nonce)));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        match fs::hard_link(&tmp, path) {
            Ok(()) => File::open(dir)?.sync_all().map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// Create `dir` (and parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_private_and_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/secret.key");
        write_private_atomic(&p, b"one").unwrap();
        write_private_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }

    #[test]
    fn exclusive_writes_have_exactly_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("claim");
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u8)
                .map(|t| {
                    let p = &p;
                    s.spawn(move || write_private_new(p, &[t; 64]).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(wins, 1);
        assert_eq!(fs::read(&p).unwrap().len(), 64);
        assert!(!write_private_new(&p, b"again").unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary files left behind");
    }

    #[test]
    fn concurrent_writers_of_one_path_never_fail_or_tear() {
        let dir = tempfile::tempdir().unwrap();
        // A name near the 255-byte limit still leaves room for the temporary.
        let p = dir.path().join(format!("{}.json", "a".repeat(250)));
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_private_atomic(p, &[t; 4096]).unwrap();
                    }
                });
            }
        });
        let data = fs::read(&p).unwrap();
        assert_eq!(data.len(), 4096);
        assert!(data.iter().all(|b| *b == data[0]), "one writer's bytes, whole");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

/// An exclusive lock on a data directory, held while the value lives. Two
/// gateway processes on one directory would each cache the same state and
/// write over each other's documents (and the embedded store's journal).
/// The lock is the kernel's (`flock`): a crashed holder releases it.
#[derive(Debug)]
pub struct DirLock {
    _held: File,
}

/// Lock `dir` for this process: `Ok(Err(holder))` when another process
/// holds it, with the process id it wrote, if readable.
pub fn lock_dir(dir: &Path) -> io::Result<Result<DirLock, Option<String>>> {
    let path = dir.join("gateway.lock");
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
            return Ok(Err(holder));
        }
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    f.set_len(0)?;
    writeln!(f, "{}", std::process::id())?;
    Ok(Ok(DirLock { _held: f }))
}
