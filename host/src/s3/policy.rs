//! The S3 edge of the write decision (`crate::decide`): the intent built
//! from a request (what a policy may see of it), and the decision's answer
//! mapped once to S3 errors.

use s3s::{S3Request, S3Result};

use super::errors::decision_error;
use super::{Gateway, principal};
use crate::decide::WriteIntent;
use crate::sse::SseRequest;

/// Headers a policy never sees: credentials and SSE-C key material.
const HIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-security-token",
    "cookie",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
    "x-amz-copy-source-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key-md5",
];

/// A write of `bucket/key` by `op`, as the decision sees it.
pub(super) fn intent_of<T>(req: &S3Request<T>, op: &'static str, bucket: &str, key: &str) -> WriteIntent {
    let transport = req.extensions.get::<crate::routes::Transport>();
    let headers = req
        .headers
        .iter()
        .filter(|(n, _)| !HIDDEN_HEADERS.contains(&n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    WriteIntent {
        op,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        principal: principal(req),
        source_ip: transport.and_then(|t| t.peer).map(|p| p.ip().to_string()),
        secure_transport: transport.is_some_and(|t| t.tls),
        headers,
    }
}

impl Gateway {
    /// The SSE a new object gets: the bucket policy, defaults and bound
    /// policies applied to the SSE its request sent.
    pub(super) async fn decide_write<T>(
        &self,
        req: &S3Request<T>,
        op: &'static str,
        (bucket, key): (&str, &str),
        sse: SseRequest,
    ) -> S3Result<SseRequest> {
        self.decider.decide(&intent_of(req, op, bucket, key), sse).await.map_err(decision_error)
    }
}
