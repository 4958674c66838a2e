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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The client sent no byte of its request body for this long.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no byte of its request body for {}s", .0.as_secs())]
pub(super) struct BodyStalled(pub(super) Duration);

/// `inner`, failed with [`BodyStalled`] once its consumer has waited
/// `timeout` for a frame without getting one. `fired` tells the request's
/// handler, which answers `RequestTimeout` whatever error the layers in
/// between made of it (s3s keeps only the message of a body error, or
/// answers `InternalError` for the body of an XML request).
pub(super) struct StallGuard<B> {
    inner: B,
    timeout: Duration,
    fired: Arc<AtomicBool>,
    /// Allocated at the first wait, then reset at each new one.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer runs for the current wait (a frame disarms it).
    armed: bool,
}

impl<B> StallGuard<B> {
    pub(super) fn new(inner: B, timeout: Duration, fired: Arc<AtomicBool>) -> Self {
        Self { inner, timeout, fired, timer: None, armed: false }
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
            this.armed = false;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timeout = this.timeout;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !std::mem::replace(&mut this.armed, true) {
            timer.as_mut().reset(Instant::now() + timeout);
        }
        ready!(timer.as_mut().poll(cx));
        this.fired.store(true, Ordering::Relaxed);
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
        (tx, StallGuard::new(Fed(rx), timeout, Arc::default()))
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
        assert!(!body.fired.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_client_silent_for_the_timeout_fails_the_body() {
        let (tx, mut body) = guarded(T);
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        next(&mut body).await.unwrap().unwrap();
        let start = Instant::now();
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await.unwrap();
        assert!(frame.unwrap_err().is::<BodyStalled>());
        assert!(body.fired.load(Ordering::Relaxed), "the handler is told");
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
