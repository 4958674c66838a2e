//! Who may use the data plane: S3 requests need a signature that is not
//! the admin's, and never name one of the store's own (non-S3) routes nor
//! the reserved bucket of cluster state.

use s3s::route::S3Route;

use crate::s3::store_routes::{copy_source_in_bucket, copy_source_route, in_bucket, refused, reserved_refused, store_route};

/// Data-plane requests need a signature, fresh as AWS requires it, and not
/// one made with the admin credentials: those are for the admin API only.
pub(super) fn data_plane_check(
    credentials: Option<&s3s::auth::Credentials>,
    uri: &hyper::Uri,
    headers: &hyper::HeaderMap,
    admin_access_key: &str,
) -> s3s::S3Result<()> {
    if credentials.is_some() {
        crate::identity::freshness::check_freshness(uri, headers, std::time::SystemTime::now())?;
    }
    match credentials {
        None => Err(s3s::s3_error!(AccessDenied, "Signature is required")),
        Some(c) if c.access_key == admin_access_key => {
            Err(s3s::s3_error!(AccessDenied, "Admin credentials cannot be used for S3 requests."))
        }
        Some(_) => Ok(()),
    }
}

/// [`data_plane_check`] for S3 operations.
pub(super) struct DataPlaneAccess {
    pub(super) admin_access_key: String,
    /// The state bucket of cluster mode, if the gateway runs in it.
    pub(super) state_bucket: Option<String>,
}

#[async_trait::async_trait]
impl s3s::access::S3Access for DataPlaneAccess {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        data_plane_check(cx.credentials(), cx.uri(), cx.headers(), &self.admin_access_key)?;
        let route = match cx.s3_path() {
            s3s::path::S3Path::Root => None,
            s3s::path::S3Path::Bucket { bucket } => store_route(bucket, None),
            s3s::path::S3Path::Object { bucket, key } => store_route(bucket, Some(key)),
        };
        let copy_source = cx.headers().get("x-amz-copy-source").and_then(|v| v.to_str().ok());
        if let Some(reserved) = &self.state_bucket {
            let named = match cx.s3_path() {
                s3s::path::S3Path::Root => false,
                s3s::path::S3Path::Bucket { bucket } => in_bucket(bucket, None, reserved),
                s3s::path::S3Path::Object { bucket, key } => in_bucket(bucket, Some(key), reserved),
            };
            if named || copy_source.is_some_and(|c| copy_source_in_bucket(c, reserved)) {
                return Err(reserved_refused(reserved));
            }
        }
        let copied = copy_source.and_then(copy_source_route);
        match route.or(copied) {
            Some(r) => Err(refused(&r)),
            None => Ok(()),
        }
    }
}

/// [`data_plane_check`] for a custom route that serves S3 requests (the
/// bucket `?encryption` sub-resource): custom routes bypass `S3Access`.
pub(super) struct DataPlaneRoute<R> {
    pub(super) inner: R,
    pub(super) admin_access_key: String,
}

#[async_trait::async_trait]
impl<R: S3Route> S3Route for DataPlaneRoute<R> {
    fn is_match(
        &self,
        method: &hyper::Method,
        uri: &hyper::Uri,
        headers: &hyper::HeaderMap,
        ext: &mut hyper::http::Extensions,
    ) -> bool {
        self.inner.is_match(method, uri, headers, ext)
    }

    async fn check_access(&self, req: &mut s3s::S3Request<s3s::Body>) -> s3s::S3Result<()> {
        data_plane_check(req.credentials.as_ref(), &req.uri, &req.headers, &self.admin_access_key)?;
        self.inner.check_access(req).await
    }

    async fn call(&self, req: s3s::S3Request<s3s::Body>) -> s3s::S3Result<s3s::S3Response<s3s::Body>> {
        self.inner.call(req).await
    }
}
