//! One accepted connection: protocol settings, timeouts and graceful shutdown.
//!
//! hyper parses and writes HTTP/1.x; this module decides how long a connection may
//! live. A [`Clock`] per connection tracks three phases — waiting idle between
//! requests, receiving a request head, and answering — and the driver closes the
//! connection when the current phase's deadline passes:
//!
//! * a new connection, or one that has sent the first bytes of a request, must complete
//!   the request head within `header_timeout` (slow-loris clients are dropped);
//! * a keep-alive connection with nothing to say is closed after `idle_timeout`;
//! * while a response is being produced or sent, neither applies.
//!
//! hyper's own `header_read_timeout` is not used because its timer also runs while a
//! keep-alive connection is idle, which would tie the two limits together.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::router::Router;

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// Per-connection timing state, shared by the I/O wrapper, the service and the driver.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    header_timeout: Duration,
    idle_timeout: Duration,
    phase: AtomicU8,
    /// Milliseconds after `start` when the current phase expires.
    deadline_ms: AtomicU64,
    in_flight: AtomicU32,
    /// Bytes of a following request arrived while a response was under way.
    read_while_busy: AtomicBool,
}

impl Clock {
    fn new(header_timeout: Duration, idle_timeout: Duration) -> Clock {
        let clock = Clock {
            start: Instant::now(),
            header_timeout,
            idle_timeout,
            phase: AtomicU8::new(HEAD),
            deadline_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            read_while_busy: AtomicBool::new(false),
        };
        clock.set_deadline(header_timeout);
        clock
    }

    fn set_deadline(&self, after: Duration) {
        let at = self.start.elapsed() + after;
        let ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    fn deadline(&self) -> Instant {
        self.start + Duration::from_millis(self.deadline_ms.load(Ordering::Relaxed))
    }

    /// Bytes arrived from the client.
    fn on_read(&self) {
        match self.phase.load(Ordering::Relaxed) {
            IDLE => {
                self.phase.store(HEAD, Ordering::Relaxed);
                self.set_deadline(self.header_timeout);
            }
            BUSY => self.read_while_busy.store(true, Ordering::Relaxed),
            _ => {}
        }
    }

    /// A request head was parsed and handed to the router.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.phase.store(BUSY, Ordering::Relaxed);
        self.read_while_busy.store(false, Ordering::Relaxed);
    }

    /// A response body was fully sent or abandoned.
    pub fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            if self.read_while_busy.swap(false, Ordering::Relaxed) {
                self.phase.store(HEAD, Ordering::Relaxed);
                self.set_deadline(self.header_timeout);
            } else {
                self.phase.store(IDLE, Ordering::Relaxed);
                self.set_deadline(self.idle_timeout);
            }
        }
    }
}

/// The socket, reporting reads to the connection's [`Clock`].
struct ClockedIo<T> {
    inner: T,
    clock: Arc<Clock>,
}

impl<T: AsyncRead + Unpin> AsyncRead for ClockedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.on_read();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClockedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
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

/// Protocol limits applied to every connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// See [`crate::config::Config::header_timeout`].
    pub header_timeout: Duration,
    /// See [`crate::config::Config::idle_timeout`].
    pub idle_timeout: Duration,
    /// See [`crate::config::Config::max_header_size`].
    pub max_header_size: usize,
}

impl Limits {
    /// hyper's read buffer must hold a whole request head. It is sized above our own
    /// limits so that the router, not hyper, answers most oversized heads, with a
    /// proper error page; anything beyond it still gets hyper's bare 431.
    fn read_buffer(&self) -> usize {
        (self.max_header_size + crate::config::MAX_TARGET_LEN + 4096).max(8192)
    }
}

/// Serves one accepted connection until it closes, times out, or shutdown is asked
/// for and its in-flight response has been sent.
pub async fn serve<T>(
    stream: T,
    remote: SocketAddr,
    router: Arc<Router>,
    limits: Limits,
    shutdown: CancellationToken,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let clock = Arc::new(Clock::new(limits.header_timeout, limits.idle_timeout));
    let io = TokioIo::new(ClockedIo {
        inner: stream,
        clock: Arc::clone(&clock),
    });
    let service = crate::router::ConnectionService::new(router, remote, Arc::clone(&clock));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(limits.read_buffer())
        .keep_alive(true)
        .half_close(false);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep_until(clock.deadline()));
    let cancelled = shutdown.cancelled();
    let mut cancelled = std::pin::pin!(cancelled);
    let mut closing = false;

    let result = poll_fn(|cx| {
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        if !closing && cancelled.as_mut().poll(cx).is_ready() {
            closing = true;
            conn.as_mut().graceful_shutdown();
            // hyper closes an idle connection at once; one mid-response finishes first.
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
        }
        loop {
            let deadline = clock.deadline();
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            match clock.phase.load(Ordering::Relaxed) {
                // Dropping the connection closes the socket.
                HEAD => return Poll::Ready(Ok(())),
                IDLE => {
                    if !closing {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    return conn.as_mut().poll(cx);
                }
                // No deadline while answering; look again once the phase changes.
                _ => {
                    clock.set_deadline(limits.idle_timeout.max(limits.header_timeout));
                }
            }
        }
    })
    .await;
    if let Err(err) = result {
        tracing::debug!(%remote, "connection ended with an error: {err}");
    }
}
