//! Where s3s-fs keeps an object's files, so that the journal can save
//! them. Mirrors s3s-fs 0.14 (pinned in Cargo.toml); the unit tests below
//! fail if a new version names them differently.

use std::path::{Component, Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The store's files for `bucket/key`, under `root`: data, metadata,
/// checksums. `None` for a path that s3s-fs refuses itself (one that
/// climbs out of the root).
pub(super) fn object_files(root: &Path, bucket: &str, key: &str) -> Option<Vec<PathBuf>> {
    let data = under(root, &Path::new(bucket).join(key))?;
    let name = side_name(bucket, key);
    Some(vec![data, root.join(format!("{name}.metadata.json")), root.join(format!("{name}.internal.json"))])
}

/// The files of an upload that its completion removes: the upload's
/// record, its metadata and the parts named in the request. Empty for an
/// upload id s3s-fs cannot have issued (it refuses those itself).
pub(super) fn upload_files(root: &Path, bucket: &str, key: &str, upload_id: &str, parts: &[i32]) -> Vec<PathBuf> {
    let Ok(id) = uuid::Uuid::parse_str(upload_id) else { return Vec::new() };
    let name = side_name(bucket, key);
    let mut files = vec![upload_record(root, &id.to_string()), root.join(format!("{name}.upload-{id}.metadata.json"))];
    files.extend(parts.iter().map(|n| root.join(format!(".upload_id-{id}.part-{n}"))));
    files
}

/// The record s3s-fs keeps while an upload is in progress.
pub(super) fn upload_record(root: &Path, upload_id: &str) -> PathBuf {
    root.join(format!(".upload-{upload_id}.json"))
}

/// How the names of a bucket's side files (metadata, checksums, uploads)
/// begin; the object key follows, base64url.
pub(super) fn side_prefix(bucket: &str) -> String {
    format!(".bucket-{}.object-", URL_SAFE_NO_PAD.encode(bucket))
}

fn side_name(bucket: &str, key: &str) -> String {
    format!("{}{}", side_prefix(bucket), URL_SAFE_NO_PAD.encode(key))
}

/// `root/relative`, resolved lexically as s3s-fs does.
fn under(root: &Path, relative: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in relative.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().fold(root.to_owned(), |p, c| p.join(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_like_the_store() {
        let root = Path::new("/r");
        let files = object_files(root, "b", "a/./x/../y").unwrap();
        assert_eq!(files[0], Path::new("/r/b/a/y"));
        assert!(object_files(root, "b", "../../etc").is_none());
        assert!(upload_files(root, "b", "k", "not-a-uuid", &[1]).is_empty());
        let id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        let up = upload_files(root, "b", "k", id, &[1, 2]);
        assert_eq!(up[0], Path::new("/r/.upload-6f9619ff-8b86-d011-b42d-00c04fc964ff.json"));
        assert_eq!(up.len(), 4);
    }
}
