//! Serving HTTP connections with hyper, one task each, with the timers `axum::serve` does not
//! set: without them a client that sends half a request head, or keeps a connection open and
//! silent, holds its socket for ever.
//!
//! Each connection has a [`Clock`], which its socket, its requests and its task share:
//! - a request head must arrive whole within the header timeout of its first byte (of the
//!   connection's opening, for the first request);
//! - a kept-alive connection with no request in progress and no byte of a next one is closed after
//!   the idle timeout;
//! - while a request is being answered, a connection on which nothing arrives for the idle
//!   timeout is closed too: a request body sent by halves holds its place no longer than an idle
//!   connection (the handlers bound their own work, which reads nothing).
//!
//! hyper's own `header_read_timeout` is not used: it also runs while a kept-alive connection waits
//! for its next request, so the idle timeout could never be longer than it. A connection that
//! becomes a WebSocket leaves this module at the upgrade, timers and all: the WebSocket's own
//! liveness rules take over. Open connections (not counting the WebSockets they became) are
//! counted, and one beyond the limit is closed at once.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::service::Service as HyperService;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpConfig;

/// How connections are served: the timers and the count from [`HttpConfig`], and the kernel
/// send buffer of each socket (`None`: the kernel's autotuning).
#[derive(Debug, Clone, Copy)]
pub struct Serving {
    pub http: HttpConfig,
    pub send_buffer: Option<usize>,
}

/// The routes a service serves, which may change once while it runs: from its start-up routes
/// ([`crate::starting`]) to its own. Each request takes the routes in place when it arrives.
#[derive(Clone)]
pub struct Routes(Arc<RwLock<Router>>);

impl Routes {
    pub fn new(router: Router) -> Routes {
        Routes(Arc::new(RwLock::new(router)))
    }

    /// Serves `router` from the next request on, on every connection.
    pub fn replace(&self, router: Router) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = router;
    }

    fn current(&self) -> Router {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Accepts connections until `shutdown` and serves each with `router` in a task of
/// `connections`; then asks each to finish (an idle one closes at once, a busy one after its
/// answer). Returns when the listener is closed; the caller waits for `connections`.
pub async fn accept(
    listener: TcpListener,
    routes: Routes,
    serving: Serving,
    shutdown: CancellationToken,
    connections: &TaskTracker,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // The peer gave up before the accept: nothing is wrong with the listener.
            Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) => {
                continue;
            }
            Err(e) => {
                // Out of file descriptors, most likely: accepting again at once would spin.
                tracing::warn!(error = %e, "cannot accept a connection; pausing for a second");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
        };
        let Some(slot) = Slot::take(&open, serving.http.max_connections) else {
            tracing::debug!(limit = serving.http.max_connections, "connection refused: HTTP_MAX_CONNECTIONS are open");
            continue;
        };
        tune(&stream, serving.send_buffer);
        connections.spawn(serve_connection(stream, routes.clone(), serving.http, shutdown.clone(), slot));
    }
}

/// No Nagle: a bid's answer and the live events are small frames that must leave at once, not
/// wait for the peer's delayed acknowledgement of the previous one.
fn tune(stream: &TcpStream, send_buffer: Option<usize>) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    if let Some(bytes) = send_buffer
        && let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(bytes)
    {
        tracing::debug!(error = %e, "cannot set SO_SNDBUF");
    }
}

/// One open connection's place among [`HttpConfig::max_connections`]; given back on drop.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one connection until it closes, upgrades, or a timer of its [`Clock`] runs out.
async fn serve_connection(
    stream: TcpStream,
    routes: Routes,
    http: HttpConfig,
    shutdown: CancellationToken,
    _slot: Slot,
) {
    let clock = Arc::new(Clock::new());
    let io = TokioIo::new(Watched { inner: stream, clock: clock.clone() });
    let service = Counted { routes, clock: clock.clone() };
    // HTTP/1.1, as `axum::serve` serves without its `http2` feature. The timers are this
    // module's (see above), so hyper's own header timer stays off.
    let connection = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let deadline = clock.deadline(&http);
        let timer = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = timer => {
                // The state may have changed since the deadline was taken: check it again.
                if clock.deadline(&http).is_some_and(|d| d <= Instant::now()) {
                    let why = match (clock.in_flight.load(Ordering::Acquire), clock.head_since.load(Ordering::Acquire)) {
                        (0, 0) => "idle between requests",
                        (0, _) => "its request head took too long",
                        _ => "its request stalled",
                    };
                    tracing::debug!("closing a connection: {why}");
                    return;
                }
            }
            _ = clock.changed.notified() => {}
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What one connection is doing, as its socket (bytes arriving), its service (requests starting
/// and ending) and its task (the timers) see it. Times are milliseconds since `start`.
struct Clock {
    start: Instant,
    /// Requests whose answer is not yet ready.
    in_flight: AtomicUsize,
    /// 1 + when the request head now arriving began; 0 while none is.
    head_since: AtomicU64,
    /// When the connection last had no request in progress.
    idle_since: AtomicU64,
    /// When bytes last arrived.
    last_read: AtomicU64,
    /// Wakes the task when a deadline moves earlier or appears.
    changed: Notify,
}

impl Clock {
    fn new() -> Clock {
        // The first request's head is timed from the connection's opening.
        Clock {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            head_since: AtomicU64::new(1),
            idle_since: AtomicU64::new(0),
            last_read: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// When the connection is to be closed unless something happens first.
    fn deadline(&self, http: &HttpConfig) -> Option<Instant> {
        let at = |ms: u64, after: Duration| self.start + Duration::from_millis(ms) + after;
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Some(at(self.last_read.load(Ordering::Acquire), http.idle_timeout));
        }
        match self.head_since.load(Ordering::Acquire) {
            0 => Some(at(self.idle_since.load(Ordering::Acquire), http.idle_timeout)),
            since => Some(at(since - 1, http.header_timeout)),
        }
    }

    /// Bytes arrived: if the connection was idle, a request head has begun.
    fn bytes_arrived(&self) {
        self.last_read.store(self.now(), Ordering::Release);
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == 0
            && self.head_since.compare_exchange(0, self.now() + 1, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// A request head arrived whole and its answer is being made.
    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
    }

    /// An answer is ready; with no other in progress, the connection is idle from now.
    fn request_answered(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.changed.notify_one();
        }
    }
}

/// A socket that tells its [`Clock`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router as hyper calls it, telling the [`Clock`] when each request starts and is answered.
#[derive(Clone)]
struct Counted {
    routes: Routes,
    clock: Arc<Clock>,
}

/// A request being answered; answered when dropped, whether the answer was made or abandoned.
struct InFlight(Arc<Clock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_answered();
    }
}

impl HyperService<hyper::Request<Incoming>> for Counted {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.clock.request_started();
        let in_flight = InFlight(self.clock.clone());
        let answer = TowerToHyperService::new(self.routes.current()).call(request);
        Box::pin(async move {
            let response = answer.await;
            drop(in_flight);
            response
        })
    }
}
