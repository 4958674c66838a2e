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

/// The id of one request: sent back as `x-amz-request-id`, recorded in
/// the tracing span and the audit trail.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    pub fn new() -> Self {
        let mut b = [0u8; 8];
        // A failed random source only makes ids less unique.
        let _ = crate::crypto::random_bytes(&mut b);
        Self(hex::encode_upper(b))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

/// How a request reached the gateway; inserted into every request.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub tls: bool,
    /// The client's address.
    pub peer: Option<std::net::SocketAddr>,
}

/// Virtual-host-style addressing for `--domain`: `bucket.DOMAIN[:port]`
/// names a bucket; any other host (an IP, `DOMAIN` itself, another name)
/// is path style. Unlike the S3 layer's own `SingleDomain`, ports are
/// ignored and unknown hosts are not taken for bucket names.
pub struct GatewayHost {
    domain: String,
}

impl GatewayHost {
    pub fn new(domain: &str) -> Self {
        Self { domain: domain.trim_end_matches('.').to_ascii_lowercase() }
    }
}

impl s3s::host::S3Host for GatewayHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        // Drop the port: `[v6]:port` or `name:port` (names have no colons).
        let name = match host.find(']') {
            Some(end) if host.starts_with('[') => &host[..=end],
            _ => host.split(':').next().unwrap_or(host),
        };
        let bucket = name
            .len()
            .checked_sub(self.domain.len() + 1)
            .filter(|&cut| name[cut..].eq_ignore_ascii_case(&format!(".{}", self.domain)) && cut > 0)
            .map(|cut| &name[..cut]);
        Ok(match bucket {
            Some(b) => s3s::host::VirtualHost::new(self.domain.as_str()).with_bucket(b.to_ascii_lowercase()),
            None => s3s::host::VirtualHost::new(name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::host::S3Host;

    #[test]
    fn hosts_map_to_buckets_only_under_the_domain() {
        let h = GatewayHost::new("s3.example.test");
        let b = |host: &str| h.parse_host_header(host).unwrap().bucket().map(str::to_owned);
        assert_eq!(b("photos.s3.example.test:9000").as_deref(), Some("photos"));
        assert_eq!(b("Photos.S3.Example.Test").as_deref(), Some("photos"));
        assert_eq!(b("s3.example.test:9000"), None);
        assert_eq!(b("127.0.0.1:9000"), None);
        assert_eq!(b("other.host"), None);
    }
}
