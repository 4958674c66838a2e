//! ListMultipartUploads for the embedded store (s3s-fs answers 501): the
//! uploads in progress are the upload records s3s-fs keeps at its root,
//! each named after its bucket and key.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use s3s::dto::{CommonPrefix, ListMultipartUploadsInput, ListMultipartUploadsOutput, MultipartUpload, Timestamp};
use s3s::{S3Result, s3_error};

/// One upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Upload {
    key: String,
    initiated: std::time::SystemTime,
    id: String,
}

/// The uploads of `bucket` in progress: metadata files
/// `.bucket-<b64 bucket>.object-<b64 key>.upload-<id>.metadata.json` whose
/// upload record `.upload-<id>.json` still exists.
fn uploads_of(root: &Path, bucket: &str) -> std::io::Result<Vec<Upload>> {
    let head = super::layout::side_prefix(bucket);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&head)).and_then(|n| n.strip_suffix(".metadata.json")) else {
            continue;
        };
        let Some((key, id)) = rest.split_once(".upload-") else { continue };
        let Some(key) = URL_SAFE_NO_PAD.decode(key).ok().and_then(|k| String::from_utf8(k).ok()) else { continue };
        let Ok(record) = std::fs::metadata(super::layout::upload_record(root, id)) else { continue };
        out.push(Upload { key, initiated: record.modified()?, id: id.to_owned() });
    }
    out.sort();
    Ok(out)
}

/// The page S3 would answer: uploads sorted by key then initiation time,
/// after the markers, under the prefix, rolled up at the delimiter.
pub(super) fn list(root: &Path, input: &ListMultipartUploadsInput) -> S3Result<ListMultipartUploadsOutput> {
    if !root.join(&input.bucket).is_dir() {
        return Err(s3_error!(NoSuchBucket));
    }
    let all = uploads_of(root, &input.bucket).map_err(|e| {
        tracing::error!(error = %e, "embedded store: cannot list uploads");
        s3_error!(InternalError, "The embedded store could not list its uploads.")
    })?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let max = input.max_uploads.unwrap_or(1000).clamp(1, 1000) as usize;
    let key_marker = input.key_marker.clone().unwrap_or_default();
    // After the key marker; with an upload-id marker, the rest of that key too.
    let after_marker = |u: &Upload| match (&input.upload_id_marker, key_marker.is_empty()) {
        (_, true) => true,
        (Some(id_marker), false) if u.key == key_marker => {
            all.iter().position(|x| x.key == u.key && &x.id == id_marker) < all.iter().position(|x| x == u)
        }
        _ => u.key > key_marker,
    };
    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    let mut last: Option<(String, String)> = None;
    for u in all.iter().filter(|u| u.key.starts_with(&prefix) && after_marker(u)) {
        let rolled = input
            .delimiter
            .as_deref()
            .filter(|d| !d.is_empty())
            .and_then(|d| u.key[prefix.len()..].find(d).map(|i| u.key[..prefix.len() + i + d.len()].to_owned()));
        if rolled.as_ref().is_some_and(|p| prefixes.last() == Some(p)) {
            continue;
        }
        if uploads.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        last = Some((u.key.clone(), u.id.clone()));
        match rolled {
            Some(p) => prefixes.push(p),
            None => uploads.push(MultipartUpload {
                key: Some(u.key.clone()),
                upload_id: Some(u.id.clone()),
                initiated: Some(Timestamp::from(u.initiated)),
                storage_class: Some(s3s::dto::StorageClass::from_static(s3s::dto::StorageClass::STANDARD)),
                ..Default::default()
            }),
        }
    }
    Ok(ListMultipartUploadsOutput {
        bucket: Some(input.bucket.clone()),
        prefix: input.prefix.clone(),
        delimiter: input.delimiter.clone(),
        key_marker: input.key_marker.clone(),
        upload_id_marker: input.upload_id_marker.clone(),
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: truncated.then(|| last.clone().map(|l| l.0)).flatten(),
        next_upload_id_marker: truncated.then(|| last.map(|l| l.1)).flatten(),
        common_prefixes: (!prefixes.is_empty()).then(|| prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect()),
        uploads: Some(uploads),
        ..Default::default()
    })
}
