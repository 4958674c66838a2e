//! Paths that an S3 store behind the gateway serves as something other than
//! S3. The gateway forwards S3 requests signed with its own upstream
//! credentials, often the store's administrator: a client that could name
//! `rustfs/admin/…` as a bucket and key (or as a copy source) would reach
//! the store's admin API, RPC or table catalog as that administrator.
//! These paths are refused before any operation runs.

use s3s::dto::CopySource;

/// `(bucket, key prefix)` of the routes RustFS (and MinIO, which RustFS
/// mirrors) take before S3 routing; an empty prefix is the whole bucket.
/// `rustfs` holds RustFS's admin API, internode RPC, peer and console
/// routes; it cannot be a bucket on RustFS anyway.
const STORE_ROUTES: &[(&str, &str)] = &[("rustfs", ""), ("minio", "admin"), ("minio", "health"), ("iceberg", "v1")];

/// The store route `bucket/key` falls in, if any (`"rustfs/admin"` style).
/// Judged on the path as a store that normalises it would route it: empty
/// and `.` segments dropped, `..` resolved, so that neither
/// `data/../rustfs/admin/…` nor `minio//admin/…` slips past.
pub fn store_route(bucket: &str, key: Option<&str>) -> Option<String> {
    let path = normalised(bucket, key);
    let first = *path.first()?;
    STORE_ROUTES.iter().find_map(|(b, prefix)| {
        let inside = first.eq_ignore_ascii_case(b) && (prefix.is_empty() || path.get(1) == Some(prefix));
        inside.then(|| if prefix.is_empty() { format!("/{b}") } else { format!("/{b}/{prefix}") })
    })
}

/// The segments of `bucket/key` as a store that normalises paths sees them.
fn normalised<'a>(bucket: &'a str, key: Option<&'a str>) -> Vec<&'a str> {
    let mut path: Vec<&str> = Vec::new();
    for seg in std::iter::once(bucket).chain(key.unwrap_or("").split('/')) {
        match seg {
            "" | "." => {}
            ".." => {
                path.pop();
            }
            s => path.push(s),
        }
    }
    path
}

/// Does `bucket/key` (normalised) fall in the reserved state bucket?
pub fn in_bucket(bucket: &str, key: Option<&str>, reserved: &str) -> bool {
    normalised(bucket, key).first().is_some_and(|b| b.eq_ignore_ascii_case(reserved))
}

/// [`in_bucket`] for an `x-amz-copy-source` header.
pub fn copy_source_in_bucket(header: &str, reserved: &str) -> bool {
    match CopySource::parse(header) {
        Ok(CopySource::Bucket { bucket, key, .. }) => in_bucket(&bucket, Some(&key), reserved),
        _ => false,
    }
}

/// The refusal of a request that names the reserved state bucket.
pub fn reserved_refused(bucket: &str) -> s3s::S3Error {
    s3s::s3_error!(AccessDenied, "Bucket {bucket} holds the gateway's cluster state; S3 clients cannot use it.")
}

/// The refusal of a request that falls in store route `route`.
pub fn refused(route: &str) -> s3s::S3Error {
    s3s::s3_error!(AccessDenied, "{route} is a route of the store's own API, not S3; the gateway does not forward it.")
}

/// [`store_route`] of an `x-amz-copy-source` header (a copy reads its
/// source through the store with the gateway's credentials too).
pub fn copy_source_route(header: &str) -> Option<String> {
    match CopySource::parse(header) {
        Ok(CopySource::Bucket { bucket, key, .. }) => store_route(&bucket, Some(&key)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_bucket_is_recognised_however_the_path_is_spelled() {
        let r = "kms-gateway-state";
        assert!(in_bucket(r, None, r));
        assert!(in_bucket(r, Some("uploads/x"), r));
        assert!(in_bucket("KMS-Gateway-State", Some("a"), r));
        assert!(in_bucket("data", Some("../kms-gateway-state/uploads/x"), r));
        assert!(in_bucket("", Some("kms-gateway-state/x"), r));
        assert!(!in_bucket("data", Some("kms-gateway-state/x"), r));
        assert!(!in_bucket("kms-gateway-state2", None, r));
        assert!(copy_source_in_bucket("kms-gateway-state/uploads/x", r));
        assert!(copy_source_in_bucket("/data/../kms-gateway-state/x", r));
        assert!(!copy_source_in_bucket("data/kms-gateway-state", r));
    }

    #[test]
    fn admin_rpc_and_catalog_paths_are_store_routes() {
        for (bucket, key) in [
            ("rustfs", Some("admin/v3/info")),
            ("rustfs", Some("admin/v2/list-users")),
            ("rustfs", Some("rpc/read_file_stream")),
            ("rustfs", None),
            ("RustFS", Some("peer/health")),
            ("minio", Some("admin/v3/info")),
            ("minio", Some("admin")),
            ("iceberg", Some("v1/config")),
            ("data", Some("../rustfs/admin/v3/info")),
            ("minio", Some("x/../admin/v2/info")),
            ("minio", Some("/admin/v2/info")),
            ("minio", Some("./admin")),
        ] {
            assert!(store_route(bucket, key).is_some(), "{bucket}/{key:?}");
        }
        for (bucket, key) in [
            ("minio", Some("administration.txt")),
            ("minio", None),
            ("iceberg", Some("v10/x")),
            ("data", Some("rustfs/admin/v3/info")),
            ("minio", Some("admin/../data")),
        ] {
            assert!(store_route(bucket, key).is_none(), "{bucket}/{key:?}");
        }
        assert_eq!(copy_source_route("/rustfs/admin/v3/info").as_deref(), Some("/rustfs"));
        assert_eq!(copy_source_route("minio/admin%2Fv3%2Finfo").as_deref(), Some("/minio/admin"));
        assert!(copy_source_route("data/k?versionId=1").is_none());
    }
}
