//! One accepted connection: protocol settings, timeouts, parking and graceful shutdown.
//!
//! hyper parses and writes HTTP/1.x; this module decides how long a connection may
//! live and what it holds while it waits. A [`Clock`] per connection tracks three
//! phases — waiting idle between requests, receiving a request head, and answering —
//! and the driver acts when the current phase's deadline passes:
//!
//! * a new connection, or one that has sent the first bytes of a request, must complete
//!   the request head within `header_timeout` (slow-loris clients are dropped);
//! * a keep-alive connection with nothing to say is closed after `idle_timeout`;
//! * while a response is being produced or sent, neither applies.
//!
//! hyper's own `header_read_timeout` is not used because its timer also runs while a
//! keep-alive connection is idle, which would tie the two limits together.
//!
//! **Parking.** hyper keeps an 8 KiB read buffer and its protocol state for as long as
//! a connection lives. A connection idle for [`PARK_AFTER`] is therefore parked: hyper
//! is asked to finish (it does at once when idle), the socket is taken back, the task
//! ends, and the socket waits in the worker's [`ParkingLot`] until the client speaks,
//! when [`resume`] gives it a fresh task and hyper connection. The idle deadline keeps
//! running across. Without a lot (outside Linux) the task stays and waits itself.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::lazy_tcp::LazyTcp;
use crate::parking::{Parked, ParkingLot};
use crate::router::{ConnectionService, Router};
use crate::server::{held_back_before_accept, SILENT_BEFORE_ACCEPT};
use crate::tls::Tls;
use crate::zero_copy::{SendFile, SendfileQueue};

/// HTTP/2 limits. Streams per connection, as nginx's default.
const H2_MAX_STREAMS: u32 = 128;
/// Receive windows: large enough that uploads are not throttled by round trips.
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// Bytes a stream may queue for sending, so large downloads keep the pipe full.
const H2_SEND_BUFFER: usize = 1024 * 1024;
/// Rapid-reset protection (CVE-2023-44487): streams reset by the client before the
/// server accepted them; past this the connection is closed with ENHANCE_YOUR_CALM.
const H2_MAX_PENDING_RESETS: usize = 32;
/// Streams the server may reset for protocol errors before it gives up on the client.
const H2_MAX_ERROR_RESETS: usize = 256;

/// How long a keep-alive connection must be idle before it is parked.
pub const PARK_AFTER: Duration = Duration::from_millis(100);

/// Connections parked since the allocator last returned free memory to the system.
static PARKED_SINCE_TRIM: AtomicU64 = AtomicU64::new(0);

/// Returns memory freed by parked connections to the operating system, when any were
/// parked since the last call. glibc keeps freed heap pages mapped, so without this a
/// burst of connections would leave the process at its high-water mark for good. Meant
/// to run about once a second; a no-op elsewhere than glibc.
pub fn release_parked_memory() {
    if PARKED_SINCE_TRIM.swap(0, Ordering::Relaxed) == 0 {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims glibc's own heap; it has no
    // preconditions and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// A byte stream a connection can run on.
pub trait Transport: AsyncRead + AsyncWrite + SendFile + Unpin + Send + 'static {
    /// Whether an idle connection can be parked: the transport keeps no buffered
    /// state of its own, so readiness of the socket is readiness of the stream.
    const CAN_PARK: bool;
    /// Whether file bytes can go to the peer unchanged (`sendfile`).
    const CAN_SENDFILE: bool;
    /// Waits until the peer has sent something (or closed) without consuming it.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Turns Nagle's algorithm off, so the last small segment of a response is not
    /// held back waiting for the client's acknowledgement.
    fn set_nodelay(&self);
    /// The plain socket underneath, for parking and lingering; `None` for transports
    /// that keep state of their own (TLS).
    fn into_lazy(self) -> Option<LazyTcp>;
    /// Ends the sending side before the transport is dropped.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_shutdown(cx)
    }
}

impl Transport for LazyTcp {
    const CAN_PARK: bool = true;
    const CAN_SENDFILE: bool = true;
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }
    fn set_nodelay(&self) {
        let _ = LazyTcp::set_nodelay(self);
    }
    fn into_lazy(self) -> Option<LazyTcp> {
        Some(self)
    }
    /// Nothing: the socket is closed right after, and `close` sends the FIN (and
    /// anything Nagle still held) itself, one system call fewer per connection.
    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// TLS: rustls buffers records of its own, and the bytes on the wire are encrypted.
impl Transport for TlsStream<TcpStream> {
    const CAN_PARK: bool = false;
    const CAN_SENDFILE: bool = false;
    fn poll_readable(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
    fn set_nodelay(&self) {
        let _ = self.get_ref().0.set_nodelay(true);
    }
    fn into_lazy(self) -> Option<LazyTcp> {
        None
    }
}

impl SendFile for TlsStream<TcpStream> {
    fn poll_sendfile(
        &mut self,
        _cx: &mut Context<'_>,
        _file: &std::fs::File,
        _offset: u64,
        _len: usize,
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
}

/// What the connections of one listener speak.
#[derive(Debug, Clone)]
pub enum ListenerKind {
    /// HTTP/1.x, and HTTP/2 with prior knowledge (h2c), told apart by the preface.
    Plain,
    /// TLS with ALPN (h2, or HTTP/1); plain HTTP arriving here is redirected to
    /// HTTPS on `port`, this listener's own.
    Tls {
        /// Certificates and configuration.
        tls: Tls,
        /// The port clients reach this listener on.
        port: u16,
    },
    /// Plain HTTP answered with redirects to HTTPS on `https_port`.
    RedirectToHttps {
        /// Where the HTTPS listener is.
        https_port: u16,
    },
}

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// TLS records of type handshake start with this byte; a ClientHello is one.
const TLS_HANDSHAKE: u8 = 0x16;

/// Per-connection timing state, shared by the I/O wrapper, the service and the driver.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    /// `start` on the coarse clock, which timestamps the connection's events.
    start_coarse: Duration,
    header_timeout: Duration,
    idle_timeout: Duration,
    phase: AtomicU8,
    /// Milliseconds after `start` when the current phase expires.
    deadline_ms: AtomicU64,
    /// Milliseconds after `start` when the current idle period began.
    idle_since_ms: AtomicU64,
    in_flight: AtomicU32,
    /// Bytes of a following request arrived while a response was under way.
    read_while_busy: AtomicBool,
    /// The last write did not take everything offered: output is still buffered.
    write_blocked: AtomicBool,
    /// Milliseconds after `start` of the last progress sending a response (a write
    /// that took bytes, or the start of the request).
    last_write_ms: AtomicU64,
    /// A request expects the connection to stay open: Nagle's algorithm must go before
    /// its response is written. A connection that closes after one response never
    /// pays for the system call, since `close` flushes.
    wants_nodelay: AtomicBool,
    /// TCP_NODELAY is on already.
    nodelay: AtomicBool,
    /// The latest request came with a body left unread, or was refused with a status
    /// that ends the connection: if the connection closes after it, the client may
    /// still be sending (see `linger`).
    unread_body: AtomicBool,
    /// The next response head answers an HTTP/1.0 request and will be the first
    /// bytes of the next write; [`ConnIo`] sends its status line as HTTP/1.1.
    restamp_head: AtomicBool,
}

impl Clock {
    fn new(header_timeout: Duration, idle_timeout: Duration) -> Clock {
        let clock = Clock {
            start: Instant::now(),
            start_coarse: coarse_now(),
            header_timeout,
            idle_timeout,
            phase: AtomicU8::new(HEAD),
            deadline_ms: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            read_while_busy: AtomicBool::new(false),
            write_blocked: AtomicBool::new(false),
            last_write_ms: AtomicU64::new(0),
            wants_nodelay: AtomicBool::new(false),
            nodelay: AtomicBool::new(false),
            unread_body: AtomicBool::new(false),
            restamp_head: AtomicBool::new(false),
        };
        clock.set_deadline(header_timeout);
        clock
    }

    fn now_ms(&self) -> u64 {
        let elapsed = coarse_now().saturating_sub(self.start_coarse);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    fn set_deadline(&self, after: Duration) {
        self.set_deadline_from(self.now_ms(), after);
    }

    fn set_deadline_from(&self, now_ms: u64, after: Duration) {
        let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        self.deadline_ms
            .store(now_ms.saturating_add(after), Ordering::Relaxed);
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    fn deadline(&self) -> Instant {
        self.at(self.deadline_ms.load(Ordering::Relaxed))
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }

    /// The connection was accepted with nothing to read: the kernel held it back
    /// for [`SILENT_BEFORE_ACCEPT`] first, which counts against its header timeout.
    fn accepted_silent(&self) {
        let waited = u64::try_from(SILENT_BEFORE_ACCEPT.as_millis()).unwrap_or(0);
        let deadline = self.deadline_ms.load(Ordering::Relaxed);
        self.deadline_ms
            .store(deadline.saturating_sub(waited), Ordering::Relaxed);
    }

    /// When an idle connection should be parked.
    fn park_at(&self) -> Instant {
        self.at(self.idle_since_ms.load(Ordering::Relaxed)) + PARK_AFTER
    }

    /// Bytes arrived from the client.
    fn on_read(&self) {
        match self.phase() {
            IDLE => {
                self.phase.store(HEAD, Ordering::Relaxed);
                self.set_deadline(self.header_timeout);
            }
            BUSY => self.read_while_busy.store(true, Ordering::Relaxed),
            _ => {}
        }
    }

    /// When a response that makes no progress is given up: `send_timeout` after the
    /// last write that took bytes.
    fn send_deadline(&self, send_timeout: Duration) -> Instant {
        self.at(self.last_write_ms.load(Ordering::Relaxed)) + send_timeout
    }

    /// An HTTP/1.0 request was parsed; called before [`Clock::request_started`].
    ///
    /// hyper labels every response to such a request `HTTP/1.0`, while RFC 9110 §6.2
    /// asks for the highest version the server speaks, as nginx sends. The label can
    /// be changed safely only when this response's head will start the next write:
    /// no earlier response is still being produced or waiting to be sent. Otherwise
    /// (pipelined requests behind a slow reader) the response keeps hyper's label.
    pub fn answering_http10(&self) {
        let nothing_pending = self.in_flight.load(Ordering::Relaxed) == 0
            && !self.write_blocked.load(Ordering::Relaxed);
        self.restamp_head.store(nothing_pending, Ordering::Relaxed);
    }

    /// A request head was parsed and handed to the router; `keep_alive` when the
    /// client expects the connection to stay open after the response, `has_body` when
    /// a request body follows the head.
    pub fn request_started(&self, keep_alive: bool, has_body: bool) {
        self.unread_body.store(has_body, Ordering::Relaxed);
        if keep_alive && !self.nodelay.swap(true, Ordering::Relaxed) {
            self.wants_nodelay.store(true, Ordering::Relaxed);
        }
        self.last_write_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.phase.store(BUSY, Ordering::Relaxed);
        self.read_while_busy.store(false, Ordering::Relaxed);
    }

    /// The latest request's body was read to its end: closing after the answer needs
    /// no lingering, and the bytes that arrived while it was read were that body, not
    /// the start of another request (the connection goes idle after the answer, not
    /// under the header timeout).
    pub fn body_read(&self) {
        self.unread_body.store(false, Ordering::Relaxed);
        self.read_while_busy.store(false, Ordering::Relaxed);
    }

    /// The connection closes after the answer while the client may still be sending
    /// (a request judged malformed, with more possibly behind it): it lingers.
    pub fn closing_on_error(&self) {
        self.unread_body.store(true, Ordering::Relaxed);
    }

    /// A response body was fully sent or abandoned.
    pub fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            if self.read_while_busy.swap(false, Ordering::Relaxed) {
                self.phase.store(HEAD, Ordering::Relaxed);
                self.set_deadline(self.header_timeout);
            } else {
                let now = self.now_ms();
                self.phase.store(IDLE, Ordering::Relaxed);
                self.idle_since_ms.store(now, Ordering::Relaxed);
                self.set_deadline_from(now, self.idle_timeout);
            }
        }
    }
}

/// Monotonic time from the kernel's coarse clock: a few milliseconds of resolution,
/// plenty for timeouts counted in seconds, and several times cheaper to read than the
/// precise clock (it is read three times per request).
fn coarse_now() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        EPOCH.get_or_init(std::time::Instant::now).elapsed()
    }
}

/// The transport as hyper sees it: replays bytes read by a previous hyper connection,
/// reports reads to the [`Clock`], sends `sendfile` placeholders, and labels
/// responses to HTTP/1.0 requests HTTP/1.1 ([`Restamp`]).
struct ConnIo<T> {
    inner: T,
    replay: Bytes,
    clock: Arc<Clock>,
    /// HTTP/1 only: HTTP/2 control frames arrive while idle and are no request.
    report_reads: bool,
    sendfile: Option<Arc<SendfileQueue>>,
    restamp: Restamp,
}

/// Sends the status line hyper writes as `HTTP/1.0` as `HTTP/1.1` instead, once
/// [`Clock::answering_http10`] has found that the head starts the next write.
///
/// That finding rests on how hyper 1.x's HTTP/1 dispatcher writes (checked against
/// 1.12): one request in flight at a time; a response head is encoded only when no
/// body bytes are queued, and first in the vectored write; every turn of its loop
/// flushes before it reads the next request. The tests of pipelined HTTP/1.0 requests
/// (tests/protocol.rs) and of short writes (below) pin this down. Only a buffer that
/// begins with `HTTP/1.0 ` is touched, and only its one digit.
#[derive(Debug, Default)]
struct Restamp {
    /// Where, in the bytes still to be written, the minor version digit is.
    at: Option<usize>,
}

impl Restamp {
    /// The status line hyper writes for responses to HTTP/1.0 requests.
    const HTTP10: &'static [u8] = b"HTTP/1.0 ";
    /// Where its minor version digit is.
    const MINOR_DIGIT: usize = 7;

    /// Expects `bufs`, about to be written, to start with the head to re-stamp.
    fn arm(&mut self, bufs: &[io::IoSlice<'_>]) {
        if bufs.first().is_some_and(|b| b.starts_with(Self::HTTP10)) {
            self.at = Some(Self::MINOR_DIGIT);
        }
    }

    /// What to write instead of `bufs`: the same bytes with the digit changed, or
    /// `None` when nothing is to change.
    fn apply<'b>(&mut self, bufs: &'b [io::IoSlice<'_>]) -> Option<Vec<io::IoSlice<'b>>> {
        let at = self.at?;
        let Some((first, rest)) = bufs.split_first() else {
            self.at = None;
            return None;
        };
        let first: &'b [u8] = first;
        if first.get(at) != Some(&b'0') {
            self.at = None;
            return None;
        }
        let mut out = Vec::with_capacity(bufs.len() + 2);
        out.extend(
            [&first[..at], b"1".as_slice(), &first[at + 1..]]
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(io::IoSlice::new),
        );
        out.extend(rest.iter().map(|b| io::IoSlice::new(b)));
        Some(out)
    }

    /// `written` bytes went out (`None`: the write failed or was refused).
    fn advance(&mut self, written: Option<usize>) {
        self.at = match (self.at, written) {
            // The digit is still ahead when the write stopped short of it.
            (Some(at), Some(n)) if n <= at => Some(at - n),
            _ => None,
        };
    }
}

impl<T: Transport> AsyncRead for ConnIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.replay.is_empty() {
            let n = self.replay.len().min(buf.remaining());
            buf.put_slice(&self.replay[..n]);
            self.replay.advance(n);
            // Bytes of a request read before (pipelined, or across a park) start its
            // head as much as fresh ones: the header timeout applies, and the
            // connection is not idle.
            if self.report_reads && n > 0 {
                self.clock.on_read();
            }
            if self.replay.is_empty() {
                // Release the buffer the bytes were read into.
                self.replay = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.report_reads && matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before
        {
            self.clock.on_read();
        }
        result
    }
}

impl<T: Transport> AsyncWrite for ConnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.clock.wants_nodelay.swap(false, Ordering::Relaxed) {
            this.inner.set_nodelay();
        }
        if this.clock.restamp_head.load(Ordering::Relaxed) {
            this.clock.restamp_head.store(false, Ordering::Relaxed);
            this.restamp.arm(bufs);
        }
        let patched = this.restamp.apply(bufs);
        let bufs = patched.as_deref().unwrap_or(bufs);
        let result = match &this.sendfile {
            Some(queue) => queue.poll_write(&mut this.inner, cx, bufs),
            None => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        };
        let offered: usize = bufs.iter().map(|b| b.len()).sum();
        let drained = matches!(result, Poll::Ready(Ok(n)) if n == offered);
        this.clock.write_blocked.store(!drained, Ordering::Relaxed);
        if patched.is_some() {
            match result {
                Poll::Ready(Ok(n)) => this.restamp.advance(Some(n)),
                Poll::Ready(Err(_)) => this.restamp.advance(None),
                Poll::Pending => {}
            }
        }
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.clock
                .last_write_ms
                .store(this.clock.now_ms(), Ordering::Relaxed);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_finish(cx)
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
    /// limits so that the router, not hyper, answers oversized heads, with a proper
    /// error page: request targets up to 64 KiB (CPython's line limit) get 414 rather
    /// than a 431 for the whole head; only heads beyond that get hyper's bare 431. The
    /// buffer grows only as a client actually sends, and a head must be complete within
    /// the header timeout.
    fn read_buffer(&self) -> usize {
        self.max_header_size + 64 * 1024 + 4096
    }
}

/// Everything one connection needs, for its whole life.
struct Session {
    remote: SocketAddr,
    shared: Arc<Shared>,
    clock: Arc<Clock>,
    /// Answer every request with a redirect to HTTPS on this port.
    redirect_to: Option<u16>,
}

/// What every connection of one worker shares.
#[derive(Debug)]
pub struct Shared {
    /// Answers requests.
    pub router: Arc<Router>,
    /// Protocol limits.
    pub limits: Limits,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// The worker's connection tasks, waited for on shutdown.
    pub tasks: TaskTracker,
    /// Where idle connections wait, when the platform has one (see `parking`).
    pub lot: Option<Arc<ParkingLot>>,
}

type Http1Conn<T> = hyper::server::conn::http1::Connection<TokioIo<ConnIo<T>>, ConnectionService>;

/// How one hyper connection over the socket ended.
enum Ended<T> {
    /// Closed, timed out, failed, or shut down: drop the socket.
    Closed,
    /// Answered, but the client may still be sending (a body nobody read, or a head
    /// hyper rejected): close gently, or the unread bytes make the kernel reset the
    /// connection and the client may lose the answer.
    Linger(T),
    /// Parked while idle: the socket, and any bytes hyper had read but not used.
    Parked(T, Bytes),
}

/// Serves one accepted connection until it closes, times out, or shutdown is asked
/// for and its in-flight responses have been sent.
pub async fn serve(stream: LazyTcp, remote: SocketAddr, shared: Arc<Shared>, kind: ListenerKind) {
    let session = Session::new(remote, shared, None);
    // Each protocol's state is boxed, so that a connection's task is only as large as
    // what it is doing now.
    match kind {
        ListenerKind::Plain => Box::pin(session.serve_plain(stream)).await,
        ListenerKind::Tls { tls, port } => Box::pin(session.serve_tls(stream, tls, port)).await,
        ListenerKind::RedirectToHttps { https_port } => {
            let session = Session {
                redirect_to: Some(https_port),
                ..session
            };
            // Spoken to like the site's plain port (h2c, version checks), answered
            // with redirects.
            Box::pin(session.serve_plain(stream)).await;
        }
    }
}

/// Serves a connection the parking lot hands back: its client has spoken again.
pub async fn resume(parked: Parked, shared: Arc<Shared>) {
    let session = Session::new(parked.remote, shared, parked.redirect_to);
    // Set before it was first parked: a parked connection is a kept-alive one.
    session.clock.nodelay.store(true, Ordering::Relaxed);
    Box::pin(session.run_http1(LazyTcp::new(parked.socket), Bytes::new())).await;
}

impl Session {
    fn new(remote: SocketAddr, shared: Arc<Shared>, redirect_to: Option<u16>) -> Session {
        let limits = &shared.limits;
        Session {
            remote,
            clock: Arc::new(Clock::new(limits.header_timeout, limits.idle_timeout)),
            shared,
            redirect_to,
        }
    }

    /// A plain listener: HTTP/1, or HTTP/2 with prior knowledge.
    async fn serve_plain(self, mut stream: LazyTcp) {
        match Box::pin(sniff_h2(&mut stream, &self.clock)).await {
            Some((true, seen)) => Box::pin(self.run_h2(stream, seen)).await,
            Some((false, seen)) if unsupported_major_version(&seen) => {
                Box::pin(version_not_supported(stream, &self)).await;
            }
            Some((false, seen)) => Box::pin(self.run_http1(stream, as_http_11(seen))).await,
            None => {}
        }
    }

    /// A TLS listener: the handshake, then HTTP/2 or HTTP/1 as ALPN chose; plain HTTP
    /// arriving here is redirected to HTTPS on `port`.
    async fn serve_tls(self, mut stream: LazyTcp, tls: Tls, port: u16) {
        match Box::pin(peek_first_byte(&mut stream, &self.clock)).await {
            Some(TLS_HANDSHAKE) => {}
            Some(_) => {
                let session = Session {
                    redirect_to: Some(port),
                    ..self
                };
                return Box::pin(session.serve_plain(stream)).await;
            }
            None => return,
        }
        let Ok(stream) = stream.into_registered() else {
            return;
        };
        // The handshake's flights must not wait on Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        self.clock.nodelay.store(true, Ordering::Relaxed);
        let handshake = Box::pin(tokio::time::timeout_at(
            self.clock.deadline(),
            tls.acceptor().accept(stream),
        ));
        let remote = self.remote;
        let stream = match handshake.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%remote, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%remote, "TLS handshake timed out");
                return;
            }
        };
        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            Box::pin(self.run_h2(stream, Bytes::new())).await;
        } else {
            Box::pin(self.run_http1(stream, Bytes::new())).await;
        }
    }
}

/// Tells a connection's driver that shutdown was asked for. The wait is polled once,
/// which leaves the task's waker registered with the token (the wait stays alive, so it
/// stays registered); later polls only read the flag, where polling the wait again
/// would take the token's lock on every poll of the connection.
struct ShutdownWatch<'a> {
    token: &'a CancellationToken,
    wait: Pin<Box<tokio_util::sync::WaitForCancellationFuture<'a>>>,
    registered: bool,
}

impl<'a> ShutdownWatch<'a> {
    fn new(token: &'a CancellationToken) -> Self {
        ShutdownWatch {
            token,
            wait: Box::pin(token.cancelled()),
            registered: false,
        }
    }

    /// Whether shutdown was asked for; registers `cx`'s waker the first time.
    fn asked(&mut self, cx: &mut Context<'_>) -> bool {
        if self.token.is_cancelled() {
            return true;
        }
        if self.registered {
            return false;
        }
        self.registered = true;
        self.wait.as_mut().poll(cx).is_ready()
    }
}

/// How long a lingering close waits in all, and for each read (nginx's
/// `lingering_time` and `lingering_timeout`).
const LINGER_TOTAL: Duration = Duration::from_secs(30);
const LINGER_QUIET: Duration = Duration::from_secs(5);

/// Closes a connection whose client may still be sending, as nginx's lingering close
/// does: the answer is already in the socket; the FIN follows it, and what the client
/// still sends is read and dropped until it closes its side, goes quiet, or the time
/// is up. Closing with unread bytes instead makes the kernel answer with a reset,
/// which can destroy the answer before the client has read it.
async fn linger(mut stream: LazyTcp, shutdown: &CancellationToken) {
    use tokio::io::AsyncReadExt;
    if stream.shutdown_write().is_err() {
        return;
    }
    let give_up = Instant::now() + LINGER_TOTAL;
    let mut sink = vec![0u8; 4096];
    loop {
        let quiet = (Instant::now() + LINGER_QUIET).min(give_up);
        tokio::select! {
            read = tokio::time::timeout_at(quiet, stream.read(&mut sink)) => match read {
                Ok(Ok(n)) if n > 0 => continue,
                _ => return,
            },
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Keeps `timer` due no later than `wake` and polls it; true once `wake` has passed.
///
/// Deadlines move on with every request, but the timer is only moved earlier: when it
/// fires before a deadline that was pushed back, it is set again then. A busy
/// connection so touches the timer wheel about once per deadline period instead of
/// twice per request.
fn rearm(timer: &mut Pin<Box<Sleep>>, wake: Instant, cx: &mut Context<'_>) -> bool {
    if wake < timer.deadline() {
        timer.as_mut().reset(wake);
    }
    loop {
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        if Instant::now() >= wake {
            return true;
        }
        timer.as_mut().reset(wake);
    }
}

/// Reads the first bytes of a plain connection, enough to tell the HTTP/2 preface
/// from an HTTP/1 request line; returns whether it is HTTP/2 and the bytes read, which
/// the protocol then gets replayed (so detection costs no extra system call). `None`
/// when the client closed or sent nothing before the header deadline.
async fn sniff_h2(stream: &mut LazyTcp, clock: &Clock) -> Option<(bool, Bytes)> {
    use tokio::io::AsyncReadExt;
    let fresh = stream.is_direct().then(|| stream.raw_fd()).flatten();
    let heard = AtomicBool::new(false);
    let read = async {
        let mut seen: Vec<u8> = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            heard.store(true, Ordering::Relaxed);
            seen.extend_from_slice(&buf[..n]);
            let k = seen.len().min(H2_PREFACE.len());
            if seen[..k] != H2_PREFACE[..k] {
                return Some((false, Bytes::from(seen)));
            }
            if k == H2_PREFACE.len() {
                return Some((true, Bytes::from(seen)));
            }
        }
    };
    let mut read = std::pin::pin!(read);
    // The first read is a direct one: it finds the request, or finds nothing when
    // the kernel gave up holding a silent connection back.
    if let Poll::Ready(done) = poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
        return done;
    }
    // `stream` is still open: the read future borrows it.
    if let Some(fd) = fresh.filter(|_| !heard.load(Ordering::Relaxed)) {
        if held_back_before_accept(fd) {
            clock.accepted_silent();
        }
    }
    tokio::time::timeout_at(clock.deadline(), read)
        .await
        .ok()
        .flatten()
}

/// The status hyper answered a request head it could not parse with, if that is how
/// the connection ended (400, or 431/414 for heads beyond its buffer).
fn rejected_status(err: &hyper::Error) -> Option<u16> {
    if err.is_parse_too_large() {
        Some(if err.to_string().contains("URI") {
            414
        } else {
            431
        })
    } else if err.is_parse() {
        Some(400)
    } else {
        None
    }
}

/// The method, target and version of the request line in `first` when httparse,
/// hyper's own parser, refuses that line for its version alone; `None` otherwise.
fn line_with_refused_version(first: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let mut headers = [httparse::EMPTY_HEADER; 0];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(first), Err(httparse::Error::Version)) {
        return None;
    }
    let line = first.split(|&b| b == b'\n').next().unwrap_or(first);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some(method), Some(target), Some(version), None) => Some((method, target, version)),
        _ => None,
    }
}

/// Whether the request line in `first` is well formed but for a major version above
/// 1 (`GET / HTTP/2.0`, `HTTP/3.0`), which deserves 505 rather than hyper's 400.
/// httparse, hyper's own parser, judges the line; only its version is looked at here.
fn unsupported_major_version(first: &[u8]) -> bool {
    let Some((method, target, version)) = line_with_refused_version(first) else {
        return false;
    };
    let well_formed = !method.is_empty() && (target.starts_with(b"/") || target == b"*");
    well_formed
        && matches!(
            version.strip_prefix(b"HTTP/"),
            Some([b'2'..=b'9', b'.', b'0'..=b'9'])
        )
}

/// The first bytes with an `HTTP/1.2`..`HTTP/1.9` request line read as `HTTP/1.1`:
/// RFC 9110 §2.5 asks a server to process a later minor version as the highest it
/// speaks, but httparse, hyper's parser, knows only 1.0 and 1.1. Only the connection's
/// first request line on a plain-HTTP connection can be seen here (the bytes read to
/// tell HTTP/2 from HTTP/1); a later one, or one over TLS, gets hyper's 400.
fn as_http_11(first: Bytes) -> Bytes {
    let Some((
        method,
        target,
        b"HTTP/1.2" | b"HTTP/1.3" | b"HTTP/1.4" | b"HTTP/1.5" | b"HTTP/1.6" | b"HTTP/1.7"
        | b"HTTP/1.8" | b"HTTP/1.9",
    )) = line_with_refused_version(&first)
    else {
        return first;
    };
    let minor = method.len() + 1 + target.len() + 1 + "HTTP/1.".len();
    let mut bytes = first.to_vec();
    bytes[minor] = b'1';
    Bytes::from(bytes)
}

/// Answers 505 (the usual small error page) and closes.
async fn version_not_supported(mut stream: LazyTcp, session: &Session) {
    session
        .shared
        .router
        .log
        .log_rejected(session.remote.ip(), 505);
    use tokio::io::AsyncWriteExt;
    let page = crate::response::error_page_text(http::StatusCode::HTTP_VERSION_NOT_SUPPORTED);
    let head = format!(
        "HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/html; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\ndate: {}\r\n\r\n",
        page.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(page.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The first byte a client sends on the TLS port, without consuming it.
async fn peek_first_byte(stream: &mut LazyTcp, clock: &Clock) -> Option<u8> {
    let mut byte = [0u8; 1];
    let fresh = stream.is_direct();
    match stream.peek_now(&mut byte) {
        Some(Ok(1)) => return Some(byte[0]),
        Some(_) => return None,
        // Nothing yet: perhaps the kernel gave up holding a silent connection back.
        None => {
            if fresh && stream.raw_fd().is_some_and(held_back_before_accept) {
                clock.accepted_silent();
            }
        }
    }
    let stream = stream.registered().ok()?;
    match tokio::time::timeout_at(clock.deadline(), stream.peek(&mut byte)).await {
        Ok(Ok(1)) => Some(byte[0]),
        _ => None,
    }
}

impl Session {
    /// Serves HTTP/1 on `stream` (starting with bytes already read), parking it between
    /// requests when the transport allows.
    async fn run_http1<T: Transport>(&self, stream: T, first: Bytes) {
        let sendfile = if T::CAN_SENDFILE {
            SendfileQueue::new()
        } else {
            None
        };
        let mut stream = stream;
        let mut replay = first;
        loop {
            // Boxed: the hyper phase's state is freed while the connection is parked.
            match Box::pin(self.run_hyper(stream, replay, sendfile.clone())).await {
                Ended::Closed => return,
                Ended::Linger(stream) => {
                    if let Some(stream) = stream.into_lazy() {
                        linger(stream, &self.shared.shutdown).await;
                    }
                    return;
                }
                Ended::Parked(parked, leftover) => {
                    PARKED_SINCE_TRIM.fetch_add(1, Ordering::Relaxed);
                    let mut parked = parked;
                    if leftover.is_empty() {
                        if let Some(lot) = &self.shared.lot {
                            // The task ends here; the lot keeps the socket.
                            if let Some(Ok(socket)) = parked.into_lazy().map(LazyTcp::into_std) {
                                let parked = Parked {
                                    socket,
                                    remote: self.remote,
                                    redirect_to: self.redirect_to,
                                };
                                lot.park(parked, self.clock.deadline());
                            }
                            return;
                        }
                        if !self.wait_parked(&mut parked).await {
                            return;
                        }
                    }
                    stream = parked;
                    replay = leftover;
                }
            }
        }
    }

    fn service(&self, sendfile: Option<Arc<SendfileQueue>>) -> ConnectionService {
        ConnectionService::new(
            Arc::clone(&self.shared.router),
            self.remote,
            Arc::clone(&self.clock),
            sendfile,
            self.redirect_to,
        )
    }

    /// Serves HTTP/2 on `stream` until the client leaves, it idles out, or shutdown.
    async fn run_h2<T: Transport>(&self, stream: T, first: Bytes) {
        // Every HTTP/2 connection is long-lived: frames must not wait on Nagle.
        if !self.clock.nodelay.swap(true, Ordering::Relaxed) {
            stream.set_nodelay();
        }
        let io = TokioIo::new(ConnIo {
            inner: stream,
            replay: first,
            clock: Arc::clone(&self.clock),
            report_reads: false,
            sendfile: None,
            restamp: Restamp::default(),
        });
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_header_list_size(
                u32::try_from(self.shared.limits.max_header_size).unwrap_or(u32::MAX),
            )
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_send_buf_size(H2_SEND_BUFFER)
            .max_pending_accept_reset_streams(Some(H2_MAX_PENDING_RESETS))
            .max_local_error_reset_streams(Some(H2_MAX_ERROR_RESETS));
        let conn = builder.serve_connection(io, self.service(None));
        let mut conn = std::pin::pin!(conn);
        let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep_until(self.clock.deadline()));
        let mut shutdown = ShutdownWatch::new(&self.shared.shutdown);
        let mut closing = false;
        let result = poll_fn(|cx| {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            if !closing && shutdown.asked(cx) {
                closing = true;
                // GOAWAY: streams under way finish, no new ones start.
                conn.as_mut().graceful_shutdown();
                if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                    return Poll::Ready(result);
                }
            }
            loop {
                let phase = self.clock.phase();
                // Streams under way: the deadline is the send timeout, which any write
                // that takes bytes moves on.
                let deadline = if phase == BUSY {
                    self.clock.send_deadline(self.shared.limits.idle_timeout)
                } else {
                    self.clock.deadline()
                };
                if !rearm(&mut timer, deadline, cx) {
                    return Poll::Pending;
                }
                match phase {
                    BUSY if Instant::now()
                        < self.clock.send_deadline(self.shared.limits.idle_timeout) =>
                    {
                        continue;
                    }
                    IDLE if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                        return conn.as_mut().poll(cx);
                    }
                    // No bytes taken for the idle timeout while streams are open, no
                    // request within the header timeout, or past the deadline while
                    // closing: drop the connection.
                    _ => return Poll::Ready(Ok(())),
                }
            }
        })
        .await;
        if let Err(err) = result {
            tracing::debug!(remote = %self.remote, "HTTP/2 connection ended with an error: {err}");
        }
    }

    /// Waits while parked; true when the client has something to say.
    async fn wait_parked<T: Transport>(&self, stream: &mut T) -> bool {
        let deadline = tokio::time::sleep_until(self.clock.deadline());
        tokio::select! {
            ready = poll_fn(|cx| stream.poll_readable(cx)) => ready.is_ok(),
            _ = deadline => false,
            _ = self.shared.shutdown.cancelled() => false,
        }
    }

    /// Runs a hyper HTTP/1 connection over `stream` until it ends or is parked.
    async fn run_hyper<T: Transport>(
        &self,
        stream: T,
        replay: Bytes,
        sendfile: Option<Arc<SendfileQueue>>,
    ) -> Ended<T> {
        let io = TokioIo::new(ConnIo {
            inner: stream,
            replay,
            clock: Arc::clone(&self.clock),
            report_reads: true,
            sendfile: sendfile.clone(),
            restamp: Restamp::default(),
        });
        let service = self.service(sendfile.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(self.shared.limits.read_buffer())
            .keep_alive(true)
            // A client may shut down its sending side once its request is out and
            // still wait for the answer (RFC 9112 §9.6); hyper then also skips a read
            // per request that only looks for such an end.
            .half_close(true)
            // Queued writes hand body buffers to ConnIo uncopied (see zero_copy).
            .writev(true);
        // Boxed so that a parked connection's task does not keep room for it.
        let mut conn = Box::new(builder.serve_connection(io, service));
        let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep_until(self.clock.deadline()));
        let mut shutdown = ShutdownWatch::new(&self.shared.shutdown);
        let mut closing = false;
        let mut parking = false;
        // Ended by a timeout rather than by hyper: nothing was answered.
        let mut dropped = false;

        // Parking takes the socket back with `poll_without_shutdown`; every other end
        // goes through `poll`, which flushes what hyper still buffers before the
        // shutdown.
        let poll_conn = |conn: &mut Box<Http1Conn<T>>, parking: bool, cx: &mut Context<'_>| {
            if parking {
                conn.poll_without_shutdown(cx)
            } else {
                Pin::new(&mut **conn).poll(cx)
            }
        };
        let result = poll_fn(|cx| {
            if let Poll::Ready(result) = poll_conn(&mut conn, parking, cx) {
                return Poll::Ready(result);
            }
            if !closing && shutdown.asked(cx) {
                closing = true;
                Pin::new(&mut *conn).graceful_shutdown();
                // hyper ends an idle connection at once; one mid-response finishes first.
                if let Poll::Ready(result) = poll_conn(&mut conn, parking, cx) {
                    return Poll::Ready(result);
                }
            }
            loop {
                let phase = self.clock.phase();
                // A response is still going out while the handler is busy, and also
                // after its body ended while hyper or sendfile still hold bytes for it.
                let draining = self.clock.write_blocked.load(Ordering::Relaxed)
                    || sendfile.as_ref().is_some_and(|q| !q.is_empty());
                let sending = phase == BUSY || (phase == IDLE && draining);
                let deadline = if sending {
                    self.clock.send_deadline(self.shared.limits.idle_timeout)
                } else {
                    self.clock.deadline()
                };
                let wake = if phase == IDLE && !sending && !closing && T::CAN_PARK {
                    deadline.min(self.clock.park_at())
                } else {
                    deadline
                };
                if !rearm(&mut timer, wake, cx) {
                    return Poll::Pending;
                }
                if sending {
                    // A client that takes no bytes for the idle timeout is dropped
                    // (nginx's send_timeout); any progress moves the deadline.
                    if Instant::now() >= self.clock.send_deadline(self.shared.limits.idle_timeout) {
                        dropped = true;
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
                match phase {
                    // Idle past the timeout: ask hyper to end (at once, nothing is in
                    // flight), flushing and shutting down.
                    IDLE if !closing && Instant::now() >= deadline => {
                        closing = true;
                        Pin::new(&mut *conn).graceful_shutdown();
                        return poll_conn(&mut conn, parking, cx);
                    }
                    // Idle long enough to park, all output gone: hyper ends at once and
                    // the socket is kept.
                    IDLE if !closing && T::CAN_PARK => {
                        closing = true;
                        parking = true;
                        Pin::new(&mut *conn).graceful_shutdown();
                        return poll_conn(&mut conn, parking, cx);
                    }
                    // A head not finished in time, or still idle past the deadline while
                    // closing: drop the connection, which closes the socket.
                    _ => {
                        dropped = true;
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        })
        .await;
        let linger = match &result {
            Err(err) => {
                tracing::debug!(remote = %self.remote, "connection ended with an error: {err}");
                let rejected = rejected_status(err);
                if let Some(status) = rejected {
                    self.shared
                        .router
                        .log
                        .log_rejected(self.remote.ip(), status);
                }
                rejected.is_some()
            }
            // Closed by hyper itself after a request with a body (not by a timeout or
            // shutdown of ours, when the client has gone quiet).
            Ok(()) => !closing && !dropped && self.clock.unread_body.load(Ordering::Relaxed),
        };
        if linger {
            return Ended::Linger(conn.into_parts().io.into_inner().inner);
        }
        if result.is_err() || !parking {
            return Ended::Closed;
        }
        let parts = conn.into_parts();
        let io = parts.io.into_inner();
        let mut leftover = parts.read_buf;
        if leftover.is_empty() {
            leftover = io.replay;
        }
        Ended::Parked(io.inner, leftover)
    }
}

#[cfg(test)]
mod tests {
    use super::{as_http_11, unsupported_major_version, Restamp};
    use bytes::Bytes;
    use std::io::IoSlice;

    /// Writes `bufs` through a [`Restamp`] `step` bytes at a time, as a socket taking
    /// short writes would, and returns what reached the wire.
    fn write_restamped(bufs: &[&[u8]], step: usize) -> Vec<u8> {
        let all: Vec<u8> = bufs.concat();
        let mut restamp = Restamp::default();
        let mut sent = 0;
        let mut wire = Vec::new();
        while sent < all.len() {
            // hyper offers what is left, from the first unsent byte.
            let rest = &all[sent..];
            let offered = [IoSlice::new(rest)];
            if sent == 0 {
                restamp.arm(&offered);
            }
            let patched = restamp.apply(&offered);
            let bytes: Vec<u8> = patched
                .as_deref()
                .unwrap_or(&offered)
                .iter()
                .flat_map(|b| b.iter().copied())
                .collect();
            let n = step.min(bytes.len());
            wire.extend_from_slice(&bytes[..n]);
            if patched.is_some() {
                restamp.advance(Some(n));
            }
            sent += n;
        }
        wire
    }

    #[test]
    fn http10_status_lines_go_out_as_http11_whatever_the_write_sizes() {
        let head: &[u8] = b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n";
        let expected = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi".to_vec();
        for step in [1, 3, 7, 8, 9, 100] {
            assert_eq!(
                write_restamped(&[head, b"hi"], step),
                expected,
                "step {step}"
            );
        }
        // Only a status line is touched, and only an HTTP/1.0 one.
        for other in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.0",
            b"hello, HTTP/1.0 ",
        ] {
            assert_eq!(write_restamped(&[other], 4), other);
        }
    }

    #[test]
    fn restamping_changes_one_byte_in_the_head_only() {
        let (head, body) = (&b"HTTP/1.0 404 Not Found\r\n\r\n"[..], &b"HTTP/1.0 "[..]);
        let offered = [IoSlice::new(head), IoSlice::new(body)];
        let mut restamp = Restamp::default();
        restamp.arm(&offered);
        let patched = restamp.apply(&offered).expect("armed on a status line");
        let bytes: Vec<u8> = patched.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(bytes, b"HTTP/1.1 404 Not Found\r\n\r\nHTTP/1.0 ");
    }

    #[test]
    fn later_minor_versions_are_read_as_1_1() {
        let read = |s: &'static str| as_http_11(Bytes::from_static(s.as_bytes()));
        assert_eq!(
            read("GET / HTTP/1.2\r\nHost: x\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        assert_eq!(read("OPTIONS * HTTP/1.9\r\n"), "OPTIONS * HTTP/1.1\r\n");
        for same in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.0\r\n",
            "GET / HTTP/1.10\r\n",
            "GET / HTTP/2.0\r\n",
            "GET /a b HTTP/1.2\r\n",
            "GET / HTTP/1.",
        ] {
            assert_eq!(read(same), same, "{same:?}");
        }
    }

    #[test]
    fn only_well_formed_lines_with_a_later_major_version_get_505() {
        for line in [
            "GET / HTTP/2.0\r\n",
            "GET /a HTTP/3.0\r\nHost: x\r\n\r\n",
            "OPTIONS * HTTP/2.0\r\n",
        ] {
            assert!(unsupported_major_version(line.as_bytes()), "{line:?}");
        }
        for line in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.0\r\n",
            "GET / HTTX/2.0\r\n",
            "GET / HTTP/2\r\n",
            "GET / HTTP/0.9\r\n",
            "GET /a b HTTP/2.0\r\n",
            "GARBAGE\r\n\r\n",
            "GET relative HTTP/2.0\r\n",
        ] {
            assert!(!unsupported_major_version(line.as_bytes()), "{line:?}");
        }
    }
}
