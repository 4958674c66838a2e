//! Serving the built service: the accept loop, connection limits (head
//! read and idle timeouts, a connection cap), TLS, and the per-request
//! handler (request ids, error metrics, transport info).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use s3s::service::S3Service;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::stall::StallGuard;
use crate::config::{ConfigError, ServeArgs};
use crate::metrics::Metrics;
use crate::routes::{RequestId, Transport};

/// The `<Code>` of an S3 XML error body (or the `code` of a JSON one).
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let code = match text.find("<Code>") {
        Some(i) => text[i + 6..].split('<').next()?.to_owned(),
        None => serde_json::from_str::<serde_json::Value>(text).ok()?.get("code")?.as_str()?.to_owned(),
    };
    // Label values must stay a small set: only S3-style code words.
    (code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')).then_some(code)
}

/// Unsent bytes the kernel queues per connection (`TCP_NOTSENT_LOWAT`).
#[cfg(any(target_os = "linux", target_os = "android"))]
const NOTSENT_LOWAT: u32 = 128 << 10;

/// The longest timeout taken as given (ten years): a deadline past it
/// would overflow the clock.
const MAX_TIMEOUT_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// How [`run_with`] bounds connections. A client must send each request
/// head within `header_read_timeout` of its first byte (of the accept, TLS
/// handshake included, for a connection's first request); a keep-alive
/// connection with no request in flight waits at most `idle_timeout` for
/// the next one. A request in flight is cut only when its client stalls:
/// no byte of the body while the gateway waits for one, or no byte of the
/// response taken, for `stall_timeout`. A slow client is not a stalled
/// one: large objects take as long as they take.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    /// `None`: idle connections stay open.
    pub idle_timeout: Option<Duration>,
    /// `None`: a stalled client keeps its request in flight.
    pub stall_timeout: Option<Duration>,
    /// Connections served at once. When all slots are taken the gateway
    /// stops accepting: new connections wait in the listen backlog and are
    /// served as slots free up, instead of being accepted only to be
    /// dropped (clients see a slow start, not an error). Stalled clients
    /// free their slots through the two timeouts.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(60)),
            stall_timeout: Some(Duration::from_secs(60)),
            max_connections: 4096,
        }
    }
}

impl ConnectionLimits {
    /// The limits the arguments set, defaults for the others.
    pub fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
        let d = Self::default();
        let header_read_timeout = match args.header_read_timeout_seconds {
            Some(0) => return Err(ConfigError::Invalid("--header-read-timeout-seconds must be at least 1".into())),
            Some(s) => Duration::from_secs(s.min(MAX_TIMEOUT_SECONDS)),
            None => d.header_read_timeout,
        };
        let idle_timeout = match args.idle_timeout_seconds {
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s.min(MAX_TIMEOUT_SECONDS))),
            None => d.idle_timeout,
        };
        let stall_timeout = match args.stall_timeout_seconds {
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s.min(MAX_TIMEOUT_SECONDS))),
            None => d.stall_timeout,
        };
        let max_connections = match args.max_connections {
            Some(0) => return Err(ConfigError::Invalid("--max-connections must be at least 1".into())),
            // The semaphore's own ceiling.
            Some(n) => n.min(Semaphore::MAX_PERMITS),
            None => d.max_connections,
        };
        Ok(Self { header_read_timeout, idle_timeout, stall_timeout, max_connections })
    }
}

/// Serve `service` on `listener` with the default [`ConnectionLimits`]; see
/// [`run_with`].
pub async fn run(
    listener: TcpListener,
    service: S3Service,
    tls: Option<TlsAcceptor>,
    metrics: Option<Arc<Metrics>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run_with(listener, service, tls, metrics, ConnectionLimits::default(), shutdown).await
}

/// Serve `service` on `listener` (HTTPS when `tls` is set) within `limits`
/// until `shutdown` resolves, then drain connections for up to 10 s.
/// Errors answered are counted by S3 code in `metrics` when given.
pub async fn run_with(
    listener: TcpListener,
    service: S3Service,
    tls: Option<TlsAcceptor>,
    metrics: Option<Arc<Metrics>>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // HTTP/1.1 only, as TLS advertises: an HTTP/2 client could hold a
    // response forever by not opening its stream's window, never filling
    // the socket, so the stall timeout would never see it.
    let mut http = ConnBuilder::new(TokioExecutor::new()).http1_only();
    // Not hyper's header-read timeout: hyper starts it as soon as a
    // connection waits for a request head, so it would also be the idle
    // timeout of keep-alive connections. The watchdog keeps the two apart.
    http.http1().header_read_timeout(None);
    let shared = Arc::new(Shared { http, service, tls, metrics, limits });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    while let Some((slot, socket, peer)) = next_connection(&listener, &slots, shutdown.as_mut()).await {
        let shared = shared.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            connection(&shared, socket, peer, watcher).await;
            drop(slot);
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
    Ok(())
}

/// What every connection of one listener shares.
struct Shared {
    http: ConnBuilder<TokioExecutor>,
    service: S3Service,
    tls: Option<TlsAcceptor>,
    metrics: Option<Arc<Metrics>>,
    limits: ConnectionLimits,
}

/// The next connection, accepted once a slot is free; `None` at shutdown.
async fn next_connection(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Option<(OwnedSemaphorePermit, TcpStream, std::net::SocketAddr)> {
    let slot = tokio::select! {
        // Nothing closes the semaphore: acquiring cannot fail.
        slot = slots.clone().acquire_owned() => slot.ok()?,
        () = shutdown.as_mut() => return None,
    };
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((socket, peer)) => {
                    // Small answers (a HEAD, an error, a 4 KiB GET) go out
                    // at once, not after the client's delayed ACK (40 ms).
                    if let Err(e) = socket.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                    // Writable again once less than this is unsent, however
                    // large the send buffer grew: a slow reader's progress
                    // shows as writes at least every NOTSENT_LOWAT / 2 bytes,
                    // so only a silent one meets the stall timeout.
                    #[cfg(any(target_os = "linux", target_os = "android"))]
                    if let Err(e) = socket2::SockRef::from(&socket).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
                        tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT not set");
                    }
                    return Some((slot, socket, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    // Out of file descriptors, say: retrying at once would spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = shutdown.as_mut() => return None,
        }
    }
}

/// One connection, from the TLS handshake (if any) to its end.
async fn connection(shared: &Shared, socket: TcpStream, peer: std::net::SocketAddr, watcher: Watcher) {
    let activity = Arc::new(Activity::new());
    let transport = Transport { tls: shared.tls.is_some(), peer: Some(peer) };
    let Some(acceptor) = &shared.tls else {
        return serve_io(shared, socket, transport, activity, watcher).await;
    };
    // The handshake counts against the first request head's time.
    let deadline = Instant::now() + shared.limits.header_read_timeout;
    match tokio::time::timeout_at(deadline, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => serve_io(shared, stream, transport, activity, watcher).await,
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serve HTTP on `io` until the client closes, the watchdog closes, or a
/// graceful shutdown ends the connection.
async fn serve_io<S>(shared: &Shared, io: S, transport: Transport, activity: Arc<Activity>, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handler = Handler {
        service: shared.service.clone(),
        metrics: shared.metrics.clone(),
        transport,
        activity: activity.clone(),
        stall_timeout: shared.limits.stall_timeout,
    };
    let io = TokioIo::new(Watched { inner: io, activity: activity.clone(), send_blocked: false });
    let conn = watcher.watch(shared.http.serve_connection(io, handler).into_owned());
    tokio::select! {
        res = conn => if let Err(e) = res {
            tracing::debug!(error = %e, "connection ended with an error");
        },
        // Dropping the connection closes the socket.
        () = watchdog(&activity, &shared.limits) => tracing::debug!(peer = ?transport.peer, "closing a slow or idle connection"),
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting, since then, for the first byte of the next request.
    Idle(Instant),
    /// Reading a request head whose first byte came then (or, for a
    /// connection's first request, that was accepted then).
    Head(Instant),
    /// This many requests in flight (a pipelining client may have several).
    Busy(usize),
}

/// What one connection is doing, for its [`watchdog`].
struct Activity {
    phase: Mutex<Phase>,
    /// Since when the client has taken no byte of what the gateway sends
    /// (the socket's send buffer full), if it has not.
    send_blocked: Mutex<Option<Instant>>,
    /// Signalled when a head begins or sending blocks (a deadline may
    /// appear or move earlier) and when the last request ends.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self { phase: Mutex::new(Phase::Head(Instant::now())), send_blocked: Mutex::new(None), changed: Notify::new() }
    }

    /// The client stopped (`true`) or resumed taking what is sent.
    fn sending(&self, blocked: bool) {
        *self.send_blocked.lock().unwrap_or_else(PoisonError::into_inner) = blocked.then(Instant::now);
        if blocked {
            self.changed.notify_one();
        }
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        // The lock guards a plain value: a panic elsewhere cannot leave it torn.
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = f(*phase);
    }

    fn bytes_read(&self) {
        let mut began = false;
        self.update(|p| match p {
            Phase::Idle(_) => {
                began = true;
                Phase::Head(Instant::now())
            }
            other => other,
        });
        if began {
            self.changed.notify_one();
        }
    }

    /// A request head is complete: the request is in flight until the
    /// returned guard drops (with the response body, or with the request).
    fn request_started(self: &Arc<Self>) -> InFlight {
        self.update(|p| match p {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Idle(_) | Phase::Head(_) => Phase::Busy(1),
        });
        InFlight(self.clone())
    }

    fn request_ended(&self) {
        let mut idle = false;
        self.update(|p| match p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => {
                idle = true;
                Phase::Idle(Instant::now())
            }
        });
        if idle {
            self.changed.notify_one();
        }
    }

    /// When the connection is to be closed if nothing happens until then.
    /// (A request body's stall is its [`StallGuard`]'s to find: only the
    /// body knows whether the gateway is waiting for it.)
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let blocked = *self.send_blocked.lock().unwrap_or_else(PoisonError::into_inner);
        let stalled = blocked.zip(limits.stall_timeout).map(|(since, t)| since + t);
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            // The end of the last response may still be unsent (the request
            // counts as done once hyper has it): a client that stopped
            // taking it is stalled, whatever the idle timeout.
            Phase::Idle(since) => earliest(limits.idle_timeout.map(|t| since + t), stalled),
            Phase::Head(since) => Some(since + limits.header_read_timeout),
            Phase::Busy(_) => stalled,
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A request in flight on its connection.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// Resolves when the connection has missed its deadline: a request head
/// not complete in time, no next request in time, or a response its
/// client stopped taking.
async fn watchdog(activity: &Activity, limits: &ConnectionLimits) {
    loop {
        match activity.deadline(limits) {
            Some(at) if at <= Instant::now() => return,
            Some(at) => tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = activity.changed.notified() => {}
            },
            None => activity.changed.notified().await,
        }
    }
}

/// A connection's transport, noting when bytes arrive and when the
/// client stops taking them.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    /// The last write found the send buffer full.
    send_blocked: bool,
}

impl<S> Watched<S> {
    /// Note a write's outcome; only changes reach the shared activity.
    fn wrote<T>(&mut self, res: Poll<T>) -> Poll<T> {
        if res.is_pending() != self.send_blocked {
            self.send_blocked = res.is_pending();
            self.activity.sending(self.send_blocked);
        }
        res
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_read();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_flush(cx);
        this.wrote(res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A response body that keeps its request in flight until it is sent.
struct TrackedBody {
    inner: Pin<Box<s3s::Body>>,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = <s3s::Body as hyper::body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        self.get_mut().inner.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The per-connection HTTP service: request ids, transport info, error
/// metrics and in-flight tracking around the S3 service.
struct Handler {
    service: S3Service,
    metrics: Option<Arc<Metrics>>,
    transport: Transport,
    activity: Arc<Activity>,
    stall_timeout: Option<Duration>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Handler {
    type Response = hyper::Response<TrackedBody>;
    type Error = s3s::HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.request_started();
        let id = RequestId::new();
        let span = tracing::info_span!("request", request_id = %id.0, method = %req.method(), path = %req.uri().path());
        let header = hyper::header::HeaderValue::from_str(&id.0).expect("hex request id");
        let stalled = Arc::new(AtomicBool::new(false));
        let mut req = match self.stall_timeout {
            Some(t) => req.map(|b| s3s::Body::http_body(StallGuard::new(b, t, stalled.clone()))),
            None => req.map(s3s::Body::from),
        };
        req.extensions_mut().insert(self.transport);
        req.extensions_mut().insert(id);
        let has_body = hyper::body::Body::size_hint(req.body()).upper() != Some(0);
        let attributes = crate::s3::listing::is_get_object_attributes(req.method(), req.uri());
        let service = self.service.clone();
        let fut = tracing::Instrument::instrument(async move { service.call(req).await }, span);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let mut resp = fut.await?;
            if stalled.load(Ordering::Relaxed) && resp.status().as_u16() >= 400 {
                resp = request_timeout()?;
            }
            resp.headers_mut().insert("x-amz-request-id", header);
            if attributes && resp.status().is_success() {
                unquote_attributes_etag(&mut resp);
            }
            if let (Some(m), true) = (&metrics, resp.status().as_u16() >= 400) {
                let code = resp.body().bytes().and_then(|b| error_code(&b)).unwrap_or_else(|| resp.status().as_str().to_owned());
                m.s3_errors.with_label_values(&[&code]).inc();
            }
            // An error may be answered before the request body was read;
            // close the connection so unread body bytes can never be
            // taken for the client's next request.
            if has_body && resp.status().as_u16() >= 400 {
                resp.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
            }
            Ok(resp.map(|body| TrackedBody { inner: Box::pin(body), _in_flight: in_flight }))
        })
    }
}

/// AWS's answer to a client that went silent mid-body.
fn request_timeout() -> Result<hyper::Response<s3s::Body>, s3s::HttpError> {
    let e = s3s::S3Error::with_message(
        s3s::S3ErrorCode::RequestTimeout,
        "Your socket connection to the server was not read from or written to within the timeout period.",
    );
    e.to_http_response().map_err(|e| s3s::HttpError::new(Box::new(e)))
}

/// GetObjectAttributes answers its `ETag` unquoted, as AWS does.
fn unquote_attributes_etag(resp: &mut hyper::Response<s3s::Body>) {
    let Some(fixed) = resp.body().bytes().and_then(|b| crate::s3::listing::unquote_attributes_etag(&b)) else { return };
    resp.headers_mut().insert(hyper::header::CONTENT_LENGTH, fixed.len().into());
    *resp.body_mut() = s3s::Body::from(fixed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_from_args() {
        let d = ConnectionLimits::from_args(&ServeArgs::default()).unwrap();
        assert_eq!(
            (d.header_read_timeout.as_secs(), d.idle_timeout.map(|t| t.as_secs()), d.max_connections),
            (10, Some(60), 4096)
        );
        assert_eq!(d.stall_timeout, Some(Duration::from_secs(60)));
        let args = ServeArgs {
            idle_timeout_seconds: Some(0),
            stall_timeout_seconds: Some(0),
            max_connections: Some(3),
            ..Default::default()
        };
        let l = ConnectionLimits::from_args(&args).unwrap();
        assert_eq!((l.idle_timeout, l.stall_timeout, l.max_connections), (None, None, 3));
        let huge =
            ServeArgs { stall_timeout_seconds: Some(u64::MAX), idle_timeout_seconds: Some(u64::MAX), ..Default::default() };
        let l = ConnectionLimits::from_args(&huge).unwrap();
        assert_eq!(l.stall_timeout, Some(Duration::from_secs(MAX_TIMEOUT_SECONDS)), "capped: a deadline must not overflow");
        assert!(Instant::now().checked_add(l.stall_timeout.unwrap()).is_some());
        assert!(ConnectionLimits::from_args(&ServeArgs { max_connections: Some(0), ..Default::default() }).is_err());
        assert!(ConnectionLimits::from_args(&ServeArgs { header_read_timeout_seconds: Some(0), ..Default::default() }).is_err());
    }

    #[tokio::test]
    async fn deadlines_follow_the_connection() {
        let limits = ConnectionLimits { header_read_timeout: Duration::from_millis(50), ..Default::default() };
        let phase = |a: &Activity| *a.phase.lock().unwrap();
        let a = Arc::new(Activity::new());
        let Phase::Head(accepted) = phase(&a) else { panic!("a new connection waits for a head") };
        assert_eq!(a.deadline(&limits), Some(accepted + limits.header_read_timeout));
        let (first, second) = (a.request_started(), a.request_started());
        assert!(matches!(phase(&a), Phase::Busy(2)) && a.deadline(&limits).is_none());
        drop(first);
        assert!(matches!(phase(&a), Phase::Busy(1)), "one request still in flight");
        drop(second);
        let Phase::Idle(idle) = phase(&a) else { panic!("idle once the last response is sent") };
        assert_eq!(a.deadline(&limits), Some(idle + Duration::from_secs(60)));
        a.bytes_read();
        let Phase::Head(head) = phase(&a) else { panic!("a byte starts a head") };
        a.bytes_read();
        assert!(head >= idle && a.deadline(&limits) == Some(head + limits.header_read_timeout), "more bytes do not extend it");
        tokio::time::timeout(Duration::from_secs(5), watchdog(&a, &limits)).await.expect("the watchdog fires");
        assert!(Instant::now() >= head + limits.header_read_timeout);
    }

    /// A request in flight has a deadline only while its client takes
    /// nothing of the response, counted from when sending blocked.
    #[tokio::test]
    async fn a_response_the_client_stops_taking_is_cut() {
        let stall = Duration::from_millis(600);
        let limits = ConnectionLimits { stall_timeout: Some(stall), ..Default::default() };
        let a = Arc::new(Activity::new());
        let req = a.request_started();
        assert_eq!(a.deadline(&limits), None, "a busy connection that is sending");
        a.sending(true);
        let blocked = a.deadline(&limits).expect("sending blocked");
        assert!(blocked <= Instant::now() + stall);
        a.sending(false);
        assert_eq!(a.deadline(&limits), None, "the client took a byte");
        let off = ConnectionLimits { stall_timeout: None, ..limits };
        a.sending(true);
        assert_eq!(a.deadline(&off), None, "0 disables it");
        // The response's end still unsent after its request ended: stalled
        // even with idle connections kept forever.
        drop(req);
        let forever = ConnectionLimits { idle_timeout: None, ..limits };
        assert!(a.deadline(&forever).is_some_and(|d| d <= Instant::now() + stall));
        let start = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), watchdog(&a, &limits)).await.expect("the watchdog fires");
        assert!(start.elapsed() >= stall - Duration::from_millis(50));
    }
}
