//! Body plumbing: classifying client body errors, a verifying pass-through
//! stream for plaintext uploads, and a stream with a pre-read first chunk.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use s3s::dto::StreamingBlob;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{S3Error, S3ErrorCode};

use super::checksum::SharedOutcome;
use crate::crypto::CryptoError;
use crate::crypto::stream::{BODY_LONGER, BODY_SHORTER, PlaintextObserver, StdError};

const LONGER: &str = "The request body is longer than the declared Content-Length.";

/// A body that ran past its declared length.
pub(super) fn body_longer_error() -> S3Error {
    S3Error::with_message(S3ErrorCode::IncompleteBody, LONGER)
}

/// Map an error raised while reading the client's body. The gateway's own
/// length checks are typed; s3s keeps its error types private, so its
/// errors go by their names, pinned by the end-to-end test
/// `test_s3s_body_error_names_are_pinned`.
pub(super) fn client_body_error(e: &StdError) -> S3Error {
    const SHORTER: &str = "You did not provide the number of bytes specified by the Content-Length HTTP header.";
    if let Some(CryptoError::Length(what)) = e.downcast_ref::<CryptoError>() {
        if *what == BODY_LONGER {
            return body_longer_error();
        }
        return S3Error::with_message(S3ErrorCode::IncompleteBody, SHORTER);
    }
    let s = e.to_string();
    let (code, msg) = if s.contains("SignatureMismatch") {
        (S3ErrorCode::SignatureDoesNotMatch, "The request signature we calculated does not match the signature you provided.")
    } else if s.contains("Sha256Mismatch") {
        (
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    } else if s.contains("LengthMismatch") {
        (S3ErrorCode::IncompleteBody, LONGER)
    } else {
        (S3ErrorCode::IncompleteBody, SHORTER)
    };
    let custom = matches!(code, S3ErrorCode::Custom(_));
    let mut err = S3Error::with_message(code, msg);
    if custom {
        // A custom code has no status of its own (AWS answers 400).
        err.set_status_code(hyper::StatusCode::BAD_REQUEST);
    }
    err
}

/// Record the first client-body error in `outcome`, so the upload's real
/// cause survives the upstream client's generic dispatch error.
pub(super) fn record_body_errors(
    body: StreamingBlob,
    outcome: SharedOutcome,
) -> impl Stream<Item = Result<Bytes, StdError>> + Send + Sync + Unpin {
    body.map(move |r| {
        r.inspect_err(|e| {
            let mut o = outcome.lock().expect("outcome lock");
            if o.error.is_none() {
                o.error = Some(client_body_error(e));
            }
        })
    })
}

/// Plaintext pass-through that holds the last chunk back until the
/// observer accepts the whole body.
pub(super) struct VerifiedBody<S> {
    inner: S,
    held: Option<Bytes>,
    observer: Box<dyn PlaintextObserver>,
    total: u64,
    /// The plaintext length the request declared: the body must have it.
    declared: Option<u64>,
    remaining: Option<u64>,
    /// The inner body has ended; the observer's verdict is awaited.
    ended: bool,
    done: bool,
}

impl<S> VerifiedBody<S> {
    /// End the stream with `e`, reported to the observer first.
    fn fail(&mut self, e: StdError) -> Poll<Option<Result<Bytes, StdError>>> {
        self.done = true;
        self.observer.failed(&e);
        Poll::Ready(Some(Err(e)))
    }

    pub(super) fn new(inner: S, observer: Box<dyn PlaintextObserver>, len: Option<u64>) -> Self {
        Self { inner, held: None, observer, total: 0, declared: len, remaining: len, ended: false, done: false }
    }

    /// The body ended: release the held chunk once the observer accepts it.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StdError>>> {
        match ready!(self.observer.poll_finish(cx, self.total)) {
            Err(e) => self.fail(e),
            Ok(()) => {
                self.done = true;
                Poll::Ready(self.held.take().map(Ok))
            }
        }
    }
}

impl<S> Stream for VerifiedBody<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    type Item = Result<Bytes, StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if this.ended {
                return this.poll_end(cx);
            }
            if this.observer.poll_ready(cx).is_pending() {
                return Poll::Pending;
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    this.observer.update(&chunk);
                    this.total += chunk.len() as u64;
                    if this.declared.is_some_and(|d| this.total > d) {
                        return this.fail(Box::new(CryptoError::Length(BODY_LONGER)));
                    }
                    if let Some(prev) = this.held.replace(chunk) {
                        this.remaining = this.remaining.map(|r| r.saturating_sub(prev.len() as u64));
                        return Poll::Ready(Some(Ok(prev)));
                    }
                }
                Poll::Ready(Some(Err(e))) => return this.fail(e),
                Poll::Ready(None) => {
                    if this.declared.is_some_and(|d| this.total != d) {
                        return this.fail(Box::new(CryptoError::Length(BODY_SHORTER)));
                    }
                    this.ended = true;
                }
            }
        }
    }
}

impl<S> ByteStream for VerifiedBody<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    fn remaining_length(&self) -> RemainingLength {
        match self.remaining {
            Some(r) => RemainingLength::new_exact(r as usize),
            None => RemainingLength::unknown(),
        }
    }
}

/// A byte stream whose first chunk was already read (to fail before the
/// response headers go out when the first segment does not authenticate).
pub(super) struct Prefixed<S> {
    head: Option<Bytes>,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(super) fn new(head: Option<Bytes>, inner: S) -> Self {
        Self { head, inner }
    }
}

impl<S> Stream for Prefixed<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    type Item = Result<Bytes, StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(h) = this.head.take() {
            return Poll::Ready(Some(Ok(h)));
        }
        Pin::new(&mut this.inner).poll_next(cx)
    }
}

impl<S> ByteStream for Prefixed<S>
where
    S: ByteStream<Item = Result<Bytes, StdError>> + Unpin,
{
    fn remaining_length(&self) -> RemainingLength {
        let h = self.head.as_ref().map_or(0, Bytes::len);
        match self.inner.remaining_length().exact() {
            Some(n) => RemainingLength::new_exact(n + h),
            None => RemainingLength::unknown(),
        }
    }
}

/// Remove `aws-chunked` from a Content-Encoding value: it describes the
/// client's transfer framing, not the object (s3s leaves it in).
pub(super) fn strip_aws_chunked(ce: &mut Option<String>) {
    if let Some(v) = ce {
        let kept: Vec<&str> =
            v.split(',').map(str::trim).filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("aws-chunked")).collect();
        *ce = if kept.is_empty() { None } else { Some(kept.join(",")) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_removed_from_content_encoding() {
        let mut a = Some("aws-chunked".to_string());
        strip_aws_chunked(&mut a);
        assert_eq!(a, None);
        let mut b = Some("aws-chunked, gzip".to_string());
        strip_aws_chunked(&mut b);
        assert_eq!(b.as_deref(), Some("gzip"));
    }
}
