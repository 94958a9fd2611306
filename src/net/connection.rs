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
//! a connection lives. A connection idle for [`PARK_AFTER`](crate::net::clock::PARK_AFTER) is therefore parked: hyper
//! is asked to finish (it does at once when idle), the socket is taken back, the task
//! ends, and the socket waits in the worker's [`ParkingLot`] until the client speaks,
//! when [`resume`] gives it a fresh task and hyper connection. The idle deadline keeps
//! running across. Without a lot (outside Linux) the task stays and waits itself.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::client::Client;
use crate::http::zero_copy::SendfileQueue;
use crate::net::clock::{Clock, Sending, BUSY, IDLE};
use crate::net::detect::{
    as_http_11, peek_first_byte, sniff_h2, unsupported_major_version, TLS_HANDSHAKE,
};
use crate::net::io::{ConnIo, Restamp, Transport};
use crate::net::lazy_tcp::LazyTcp;
use crate::net::parking::{Parked, ParkingLot};
use crate::net::service::{ConnectionService, TunnelSlot};
use crate::net::tls::Tls;
use crate::net::tunnel::TunnelLimits;
use crate::site::router::Peer;
pub use crate::site::router::Routers;

/// HTTP/2 limits. Streams per connection, as nginx's default.
const H2_MAX_STREAMS: u32 = 128;
/// How long an idle HTTP/2 connection told to go away (GOAWAY, then a PING) may take
/// to acknowledge before it is dropped.
const H2_GOAWAY_GRACE: Duration = Duration::from_secs(1);
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

/// Connections parked since the allocator last returned free memory to the system.
/// Time a handler's own timeout has to answer (a 504, a body broken off) before its
/// connection is taken for stuck.
const HANDLER_MARGIN: Duration = Duration::from_secs(5);

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

/// Protocol limits applied to every connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// See [`crate::config::cli::Config::header_timeout`].
    pub header_timeout: Duration,
    /// See [`crate::config::cli::Config::idle_timeout`].
    pub idle_timeout: Duration,
    /// See [`crate::config::cli::Config::max_header_size`].
    pub max_header_size: usize,
    /// The longest a handler may go without producing anything before its own
    /// timeout answers or cuts its response (the longest proxy `response-timeout`,
    /// `--cgi-timeout`): a response that makes no progress for longer (plus a margin)
    /// is stuck, and its connection is dropped.
    pub handler_wait: Duration,
}

impl Limits {
    /// How long a response under way may make no progress while its output is not
    /// waiting for the client: past its handler's own timeouts.
    fn producer_deadline(&self) -> Duration {
        self.idle_timeout.max(self.handler_wait + HANDLER_MARGIN)
    }

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
    /// The port of the listener that accepted it.
    local_port: u16,
    shared: Arc<Shared>,
    /// The limits in force when the connection was accepted.
    limits: Arc<Limits>,
    clock: Arc<Clock>,
    /// The other end of a protocol switch a response asked for.
    tunnel: Arc<TunnelSlot>,
    /// Answer every request with a redirect to HTTPS on this port.
    redirect_to: Option<u16>,
}

/// What every connection of one worker shares.
#[derive(Debug)]
pub struct Shared {
    /// Answers requests.
    /// The site as configured now; a reload swaps in a new one, which requests
    /// arriving after it see (one already started keeps the one it began with).
    pub router: Routers,
    /// Protocol limits as configured now; a reload swaps in new ones, which
    /// connections accepted after it use (each keeps the ones it started with).
    pub limits: Arc<arc_swap::ArcSwap<Limits>>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Cancelled when this process stops accepting (shutdown, or an upgrade handed
    /// the sockets to a new process): HTTP/2 connections get a graceful GOAWAY, and
    /// HTTP/1 ones end after their next response.
    pub draining: CancellationToken,
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
    /// Switched protocols (`101`): the connection, the bytes the client already sent
    /// past the request, and the other end to join it to.
    Tunnel(ConnIo<T>, Bytes, hyper::upgrade::OnUpgrade),
}

/// Serves one accepted connection until it closes, times out, or shutdown is asked
/// for and its in-flight responses have been sent.
pub async fn serve(
    stream: LazyTcp,
    (remote, local_port): (SocketAddr, u16),
    shared: Arc<Shared>,
    kind: ListenerKind,
) {
    let session = Session::new((remote, local_port), shared, None);
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
    let session = Session::new(
        (parked.remote, parked.local_port),
        shared,
        parked.redirect_to,
    );
    // Set before it was first parked: a parked connection is a kept-alive one.
    session.clock.nodelay.store(true, Ordering::Relaxed);
    Box::pin(session.run_http1(LazyTcp::new(parked.socket), Bytes::new())).await;
}

impl Session {
    fn new(
        (remote, local_port): (SocketAddr, u16),
        shared: Arc<Shared>,
        redirect_to: Option<u16>,
    ) -> Session {
        let limits = shared.limits.load_full();
        Session {
            remote,
            local_port,
            clock: Arc::new(Clock::new(limits.header_timeout, limits.idle_timeout)),
            limits,
            tunnel: Arc::default(),
            shared,
            redirect_to,
        }
    }

    /// A plain listener: HTTP/1, or HTTP/2 with prior knowledge.
    async fn serve_plain(self, mut stream: LazyTcp) {
        match Box::pin(sniff_h2(&mut stream, &self.clock)).await {
            Some((true, seen)) => Box::pin(self.run_h2(stream, seen)).await,
            Some((false, seen)) if unsupported_major_version(&seen) => {
                let head = seen.starts_with(b"HEAD ");
                Box::pin(version_not_supported(stream, &self, head)).await;
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
        let handshake = handshake.await;
        let outcome = if matches!(handshake, Ok(Ok(_))) {
            crate::metrics::Lookup::Hit
        } else {
            crate::metrics::Lookup::Miss
        };
        crate::metrics::metrics().tls_handshake(outcome);
        let stream = match handshake {
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
}

impl<'a> ShutdownWatch<'a> {
    fn new(token: &'a CancellationToken) -> Self {
        ShutdownWatch {
            token,
            wait: Box::pin(token.cancelled()),
        }
    }

    /// Whether shutdown was asked for; registers `cx`'s waker on every poll, since
    /// the task polling may change: a connection is first polled by the accept loop
    /// and only then given a task of its own.
    fn asked(&mut self, cx: &mut Context<'_>) -> bool {
        self.token.is_cancelled() || self.wait.as_mut().poll(cx).is_ready()
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

/// Answers 505 (the usual small error page, without it for a HEAD) and closes.
async fn version_not_supported(mut stream: LazyTcp, session: &Session, head: bool) {
    use tokio::io::AsyncWriteExt;
    let page = crate::http::response::error_page_text(http::StatusCode::HTTP_VERSION_NOT_SUPPORTED);
    session.rejected(505, if head { 0 } else { page.len() as u64 });
    let head_text = format!(
        "HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/html; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\ndate: {}\r\n\r\n",
        page.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    let _ = stream.write_all(head_text.as_bytes()).await;
    // A HEAD's answer has no body, whatever its status (RFC 9110 §9.3.2).
    if !head {
        let _ = stream.write_all(page.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

impl Session {
    /// Logs and counts a request refused before it became one (a head that did not
    /// parse or did not arrive in time), answered with `status` and `bytes` of body.
    fn rejected(&self, status: u16, bytes: u64) {
        self.shared
            .router
            .load()
            .log()
            .log_rejected(self.remote.ip(), status, bytes);
        crate::metrics::metrics().rejected(status);
    }

    /// Serves HTTP/1 on `stream` (starting with bytes already read), parking it between
    /// requests when the transport allows.
    async fn run_http1<T: Transport>(&self, stream: T, first: Bytes) {
        let _active = crate::metrics::metrics().connection(if T::CAN_SENDFILE {
            crate::metrics::Protocol::Http1
        } else {
            crate::metrics::Protocol::Http1Tls
        });
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
                Ended::Tunnel(client, early, other_end) => {
                    let limits = self.tunnel_limits();
                    // The transport itself, whose write shutdown is the FIN that a
                    // half-close passes on; bytes hyper read but did not use come
                    // first, then those it was never given.
                    let early = if client.replay.is_empty() {
                        early
                    } else {
                        Bytes::from([&early[..], &client.replay[..]].concat())
                    };
                    crate::net::tunnel::relay(client.inner, early, other_end, &limits).await;
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
                                    local_port: self.local_port,
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

    fn service<T: Transport>(
        &self,
        sendfile: Option<Arc<SendfileQueue>>,
        client: Client,
    ) -> ConnectionService {
        let peer = Peer {
            remote: self.remote,
            tls: T::SECURE,
            local_port: self.local_port,
            client,
        };
        ConnectionService::new(
            Arc::clone(&self.shared.router),
            peer,
            Arc::clone(&self.clock),
            (Arc::clone(&self.tunnel), self.tunnel_limits()),
            sendfile,
            self.redirect_to,
        )
    }

    fn tunnel_limits(&self) -> TunnelLimits {
        TunnelLimits {
            idle: self.limits.idle_timeout,
            shutdown: self.shared.shutdown.clone(),
        }
    }

    /// Serves HTTP/2 on `stream` until the client leaves, it idles out, or shutdown.
    async fn run_h2<T: Transport>(&self, stream: T, first: Bytes) {
        let _active = crate::metrics::metrics().connection(if T::CAN_SENDFILE {
            crate::metrics::Protocol::H2c
        } else {
            crate::metrics::Protocol::H2
        });
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
            .max_header_list_size(u32::try_from(self.limits.max_header_size).unwrap_or(u32::MAX))
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_send_buf_size(H2_SEND_BUFFER)
            .max_pending_accept_reset_streams(Some(H2_MAX_PENDING_RESETS))
            .max_local_error_reset_streams(Some(H2_MAX_ERROR_RESETS))
            // WebSockets over HTTP/2 (RFC 8441), for the proxy's tunnels.
            .enable_connect_protocol();
        let conn = builder.serve_connection(io, self.service::<T>(None, Client::UNWATCHED));
        let mut conn = std::pin::pin!(conn);
        let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep_until(self.clock.deadline()));
        let mut shutdown = ShutdownWatch::new(&self.shared.draining);
        let mut closing = false;
        // Counted in `responses_in_flight` while a response is under way.
        let mut in_flight = Sending::default();
        // When to look again whether output waits for the client (see below).
        let mut look_again_at = Instant::now();
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
                in_flight.set(phase == BUSY);
                // Streams under way: the deadline is the send timeout, which any write
                // that takes bytes moves on, while output waits for the client (the
                // socket is full, or a stream holds a piece its flow-control window
                // has no room for); otherwise streams are waiting for their handlers,
                // bounded by the handlers' own timeouts.
                let idle = self.limits.idle_timeout;
                let socket_full = self.clock.write_blocked.load(Ordering::Relaxed);
                let windows_shut = self.clock.handed.waiting() > 0;
                let waiting_for_client = socket_full || windows_shut;
                // A full socket is timed by writes taking bytes (a slow reader that
                // reads goes on); a shut window by response data moving.
                let stalled = if windows_shut && !socket_full {
                    self.clock.handed_deadline(idle)
                } else {
                    self.clock.send_deadline(idle)
                };
                let send_deadline = if waiting_for_client {
                    stalled
                } else {
                    self.clock.send_deadline(self.limits.producer_deadline())
                };
                // A stream's body starts waiting for its window in the stream's own
                // task, which does not wake this one: while nothing is written, this
                // looks again at each idle timeout.
                let look_again = stalled.max(look_again_at);
                let deadline = if phase == BUSY {
                    send_deadline.min(look_again)
                } else {
                    self.clock.deadline()
                };
                if !rearm(&mut timer, deadline, cx) {
                    return Poll::Pending;
                }
                match phase {
                    BUSY if Instant::now() < send_deadline => {
                        if Instant::now() >= look_again {
                            look_again_at = Instant::now() + self.limits.idle_timeout;
                        }
                        continue;
                    }
                    IDLE if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                            return Poll::Ready(result);
                        }
                        // The client's answer to the GOAWAY's PING ends the connection;
                        // a client that never answers is dropped a moment later.
                        if !rearm(&mut timer, Instant::now() + H2_GOAWAY_GRACE, cx) {
                            return Poll::Pending;
                        }
                        return Poll::Ready(Ok(()));
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
        let client = stream.raw_fd().map_or(Client::UNWATCHED, Client::on_socket);
        let io = TokioIo::new(ConnIo {
            inner: stream,
            replay,
            clock: Arc::clone(&self.clock),
            report_reads: true,
            sendfile: sendfile.clone(),
            restamp: Restamp::default(),
        });
        let service = self.service::<T>(sendfile.clone(), client);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(self.limits.read_buffer())
            .keep_alive(true)
            // A client may shut down its sending side once its request is out and
            // still wait for the answer (RFC 9112 §9.6); hyper then also skips a read
            // per request that only looks for such an end. (Handlers that wait on a
            // program or an app server watch the socket themselves, and take such an
            // end for the client's leaving, as nginx does: http::client.)
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
        // Counted in `responses_in_flight` while a response is under way.
        let mut in_flight = Sending::default();
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
                in_flight.set(sending);
                // The send timeout runs only while output waits for the client: a
                // handler still producing (an app thinking, a program paused) is
                // bounded by its own timeouts, which answer 504 or cut the body.
                let send_deadline = if draining {
                    self.clock.send_deadline(self.limits.idle_timeout)
                } else {
                    self.clock.send_deadline(self.limits.producer_deadline())
                };
                let deadline = if sending {
                    send_deadline
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
                    if Instant::now() >= send_deadline {
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
        if dropped && self.clock.head_unfinished() {
            // A head begun and not finished within the header timeout: nginx logs
            // such a request as 408 (and sends nothing, as here).
            self.rejected(http::StatusCode::REQUEST_TIMEOUT.as_u16(), 0);
        }
        let linger = match &result {
            Err(err) => {
                tracing::debug!(remote = %self.remote, "connection ended with an error: {err}");
                let rejected = rejected_status(err);
                if let Some(status) = rejected {
                    self.rejected(status, 0);
                }
                rejected.is_some()
            }
            // Closed by hyper itself after a request with a body (not by a timeout or
            // shutdown of ours, when the client has gone quiet).
            Ok(()) => !closing && !dropped && self.clock.unread_body.load(Ordering::Relaxed),
        };
        let switched = self.tunnel.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Ok(()), Some(other_end)) = (&result, switched) {
            let parts = conn.into_parts();
            return Ended::Tunnel(parts.io.into_inner(), parts.read_buf, other_end);
        }
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
