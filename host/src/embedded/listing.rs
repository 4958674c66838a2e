//! ETags in listings. s3s-fs 0.14 lists objects without them, although it
//! keeps each object's ETag in its internal record (GET and HEAD answer
//! with it). Clients compare listed ETags (sync tools), and the gateway's
//! listing cache is keyed by them: without one, every listed
//! object cost the gateway a HEAD.

use std::path::Path;

use s3s::dto::{ETag, Object};

/// Fill in the ETag of each listed object of `bucket` that has none, from
/// its internal record. An object without a readable record keeps none
/// (s3s-fs would compute one from the data, too slow for a listing).
///
/// Read without the key's writer lock, as s3s-fs reads the listed sizes: a
/// write racing the listing may pair one write's size with another's ETag
/// for a moment, as a store listing concurrently with writers may.
pub(super) fn fill_etags(root: &Path, bucket: &str, objects: &mut [Object]) {
    for o in objects.iter_mut().filter(|o| o.e_tag.is_none()) {
        let Some(key) = o.key.as_deref() else { continue };
        o.e_tag = recorded_etag(root, bucket, key).map(ETag::Strong);
    }
}

fn recorded_etag(root: &Path, bucket: &str, key: &str) -> Option<String> {
    let info = super::layout::object_files(root, bucket, key)?.into_iter().nth(2)?;
    let record: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&std::fs::read(info).ok()?).ok()?;
    record.get("e_tag")?.as_str().map(str::to_owned)
}
