//! Custom (non-S3) routes: s3s takes one route, so a chain tries each in
//! order and remembers which matched.

use hyper::http::Extensions;
use hyper::{HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

/// Several routes behind the one slot s3s offers.
pub struct RouteChain(pub Vec<Box<dyn S3Route>>);

/// Which route of the chain matched this request.
#[derive(Clone, Copy)]
struct Matched(usize);

impl RouteChain {
    fn pick(&self, ext: &Extensions) -> S3Result<&dyn S3Route> {
        let Matched(i) = ext.get::<Matched>().copied().ok_or_else(|| s3_error!(InternalError, "route not resolved"))?;
        Ok(self.0[i].as_ref())
    }
}

#[async_trait::async_trait]
impl S3Route for RouteChain {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, ext: &mut Extensions) -> bool {
        match self.0.iter().position(|r| r.is_match(method, uri, headers, ext)) {
            Some(i) => {
                ext.insert(Matched(i));
                true
            }
            None => false,
        }
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        self.pick(&req.extensions)?.check_access(req).await
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        self.pick(&req.extensions)?.call(req).await
    }
}

/// How a request reached the gateway; inserted into every request.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub tls: bool,
}
