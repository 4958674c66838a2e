//! A request body whose client stops sending: [`StallGuard`] fails it
//! after the stall timeout. Time counts only while the gateway waits for
//! the client's next bytes: a handler that is busy elsewhere (an upstream
//! slow to take what it was given) is not the client's stall.
//!
//! Without it, a client that sends a request head and part of a body, then
//! nothing, held its connection, its request's buffers and (through the
//! gateway) an upstream connection for as long as it kept the socket open:
//! a few thousand such clients took every connection slot.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The client sent no byte of its request body for this long.
#[derive(Debug, thiserror::Error)]
#[error("{STALLED} for {}s", .0.as_secs())]
pub struct BodyStalled(pub Duration);

const STALLED: &str = "the client sent no byte of its request body";

impl BodyStalled {
    /// Is `e`, or what it wraps, a stalled body? s3s wraps body errors
    /// without a source (only their message), hence the message too.
    pub fn is_in(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cause = Some(e);
        while let Some(c) = cause {
            if c.is::<Self>() || c.to_string().contains(STALLED) {
                return true;
            }
            cause = c.source();
        }
        false
    }
}

/// `inner`, failed with [`BodyStalled`] once its consumer has waited
/// `timeout` for a frame without getting one.
pub(super) struct StallGuard<B> {
    inner: B,
    timeout: Duration,
    /// Armed at the first wait for a frame; disarmed by a frame.
    waiting: Option<Pin<Box<Sleep>>>,
    /// A disarmed timer, kept to be reset rather than allocated again.
    spare: Option<Pin<Box<Sleep>>>,
}

impl<B> StallGuard<B> {
    pub(super) fn new(inner: B, timeout: Duration) -> Self {
        Self { inner, timeout, waiting: None, spare: None }
    }
}

impl<B> Body for StallGuard<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.spare = this.waiting.take().or(this.spare.take());
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timeout = this.timeout;
        let timer = this.waiting.get_or_insert_with(|| match this.spare.take() {
            Some(mut t) => {
                t.as_mut().reset(Instant::now() + timeout);
                t
            }
            None => Box::pin(tokio::time::sleep(timeout)),
        });
        ready!(timer.as_mut().poll(cx));
        tracing::debug!(seconds = timeout.as_secs(), "a client stopped sending its request body");
        Poll::Ready(Some(Err(Box::new(BodyStalled(timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::sync::mpsc;

    use super::*;

    /// A body fed by a channel: the test plays the client.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            self.0.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c))))
        }
    }

    fn guarded(timeout: Duration) -> (mpsc::Sender<Bytes>, StallGuard<Fed>) {
        let (tx, rx) = mpsc::channel(4);
        (tx, StallGuard::new(Fed(rx), timeout))
    }

    async fn next(body: &mut StallGuard<Fed>) -> Option<Result<Bytes, String>> {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
        Some(frame.map(|f| f.into_data().expect("data")).map_err(|e| e.to_string()))
    }

    // Real time, under a second: paused time needs a tokio feature
    // that would build the dependency tree a second time for the tests.
    const T: Duration = Duration::from_millis(800);
    const SHORT: Duration = Duration::from_millis(500);

    #[tokio::test]
    async fn a_body_that_keeps_coming_is_never_cut() {
        let (tx, mut body) = guarded(T);
        let feeder = tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(SHORT).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
            }
        });
        for _ in 0..4 {
            assert_eq!(next(&mut body).await, Some(Ok(Bytes::from_static(b"x"))));
        }
        feeder.await.unwrap();
        assert!(next(&mut body).await.is_none(), "the end passes through");
    }

    #[tokio::test]
    async fn a_client_silent_for_the_timeout_fails_the_body() {
        let (tx, mut body) = guarded(T);
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        next(&mut body).await.unwrap().unwrap();
        let start = Instant::now();
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await.unwrap();
        let err = frame.unwrap_err();
        assert!(err.is::<BodyStalled>());
        // As s3s passes it on: by its message only.
        let wrapped = std::io::Error::other(format!("UploadStreamError: Underlying: {err}"));
        assert!(BodyStalled::is_in(&wrapped) && !BodyStalled::is_in(&std::io::Error::other("Incomplete")));
        assert!(start.elapsed() >= T);
        drop(tx);
    }

    /// Time the consumer spends elsewhere is not the client's: the bytes
    /// were there when it came back.
    #[tokio::test]
    async fn only_waiting_for_the_client_counts() {
        let (tx, mut body) = guarded(T);
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        next(&mut body).await.unwrap().unwrap();
        tx.send(Bytes::from_static(b"b")).await.unwrap();
        tokio::time::sleep(2 * T).await;
        assert_eq!(next(&mut body).await, Some(Ok(Bytes::from_static(b"b"))));
        // Two waits shorter than the timeout, a frame between them.
        for c in [&b"c"[..], &b"d"[..]] {
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SHORT).await;
                tx.send(Bytes::from_static(c)).await.unwrap();
            });
            assert_eq!(next(&mut body).await, Some(Ok(Bytes::from_static(c))));
        }
    }
}
