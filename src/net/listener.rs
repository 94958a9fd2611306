//! Listening sockets, the accept loop, and shutdown.
//!
//! Each listener is bound with SO_REUSEADDR (a restart binds at once even with
//! connections in TIME_WAIT), accepts until shutdown is asked for, and hands every
//! connection to its own task. On shutdown the listeners close first, then open
//! connections finish their in-flight response within the grace period.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::net::connection::{self, ListenerKind, Shared};
use crate::net::deferred_accept::defer_accept;
use crate::net::lazy_tcp::{self, LazyTcp};

/// Pending connections the kernel may queue for us.
const BACKLOG: i32 = 1024;

/// About the most bytes a connection may have queued in the kernel but not yet
/// sent (`TCP_NOTSENT_LOWAT`, inherited by every accepted socket; the kernel checks
/// it per segment, so it may go over by one). Without a bound the kernel lets each
/// socket queue up to its send buffer's maximum (4 MiB by default), so a reader
/// that opens its window 512 to 1,024 bytes at a time (slowhttptest's slow read)
/// makes wharf copy a whole cached file into socket memory per connection: with a
/// thousand of them the event loop spends seconds allocating socket buffers while
/// other clients wait. With the bound a slow reader holds about this much, and a
/// fast one is topped up as soon as half of it has gone out.
const UNSENT_BOUND: u32 = 128 * 1024;

/// Binds one listening socket, reporting failures in words an operator can act on.
/// Each worker registers its own duplicate of it with its event loop.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> Result<std::net::TcpListener, String> {
    let fail = |what: &str, e: io::Error| {
        let reason = match e.kind() {
            io::ErrorKind::AddrInUse => "address already in use".to_string(),
            io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges)".to_string()
            }
            io::ErrorKind::AddrNotAvailable => "address not available on this machine".to_string(),
            _ => e.to_string(),
        };
        format!("cannot {what} {addr}: {reason}")
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| fail("create a socket for", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| fail("configure", e))?;
    if reuse_port {
        // Several processes on one port, the kernel spreading connections (opt-in:
        // without it a second wharf on the port fails, as it should by mistake).
        socket
            .set_reuse_port(true)
            .map_err(|e| fail("configure", e))?;
    }
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `::` serves IPv4 too, as Python's server does.
        let _ = socket.set_only_v6(false);
    }
    socket
        .bind(&addr.into())
        .map_err(|e| fail("listen on", e))?;
    // Before `listen`: with SO_REUSEPORT connections may arrive at once, and each
    // takes the listener's options as they are when it is made.
    bound_unsent(&socket);
    socket.listen(BACKLOG).map_err(|e| fail("listen on", e))?;
    defer_accept(&socket);
    socket
        .set_nonblocking(true)
        .map_err(|e| fail("configure", e))?;
    Ok(socket.into())
}

/// Sets [`UNSENT_BOUND`] on a listening socket, for the sockets it accepts: the
/// ones wharf binds and the ones a service manager passes in. Best effort: where
/// the option is missing, writes are bounded by the send buffer only.
pub fn bound_unsent(socket: &impl std::os::fd::AsFd) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket2::SockRef::from(socket).set_tcp_notsent_lowat(UNSENT_BOUND);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = socket;
}

/// Accepts connections on `listener` until `stop` is cancelled: a reload closed this
/// listener, or draining started (shutdown, or an upgrade). Accepted sockets are not
/// registered with the event loop until they must wait (see `lazy_tcp`).
pub async fn accept_loop(
    listener: AsyncFd<std::net::TcpListener>,
    shared: Arc<Shared>,
    kind: ListenerKind,
    stop: tokio_util::sync::CancellationToken,
) {
    let local_port = listener.get_ref().local_addr().map_or(0, |a| a.port());
    let mut failures = AcceptFailures::default();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            accepted = accept(&listener) => accepted,
        };
        match accepted {
            // TCP_NODELAY is set later, only on connections that outlive one response
            // (see `connection`).
            Ok((stream, remote)) => {
                let mut conn = Box::pin(connection::serve(
                    stream,
                    (remote, local_port),
                    Arc::clone(&shared),
                    kind.clone(),
                ));
                // Polled here first: a connection whose request is already in and
                // answered from the cache is done in this one poll, without a task.
                // Only one that has to wait gets a task of its own.
                let first = std::future::poll_fn(|cx| Poll::Ready(conn.as_mut().poll(cx))).await;
                if first.is_pending() {
                    shared.tasks.spawn(conn);
                }
            }
            Err(e) => {
                // Out of file descriptors or similar: back off instead of spinning,
                // and say so now and then, not for every connection waiting.
                let pause = failures.failed(&e);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// How often a listener whose accepts keep failing says so.
const ACCEPT_FAILURE_REPORT_EVERY: Duration = Duration::from_secs(10);

/// A listener's failed accepts, said at most every
/// [`ACCEPT_FAILURE_REPORT_EVERY`].
#[derive(Default)]
struct AcceptFailures {
    last_said: Option<std::time::Instant>,
    unsaid: u64,
}

impl AcceptFailures {
    /// Notes the failure `e`; how long to wait before accepting again. Running out
    /// of descriptors or memory lasts until connections end: accepting pauses for
    /// half a second, as nginx's does; anything else for a moment.
    fn failed(&mut self, e: &io::Error) -> Duration {
        let exhausted = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if self
            .last_said
            .is_none_or(|t| t.elapsed() >= ACCEPT_FAILURE_REPORT_EVERY)
        {
            match std::mem::take(&mut self.unsaid) {
                0 => tracing::warn!("accept failed: {e}"),
                n => tracing::warn!("accept failed: {e} ({n} more since the last report)"),
            }
            self.last_said = Some(std::time::Instant::now());
        } else {
            self.unsaid += 1;
        }
        Duration::from_millis(if exhausted { 500 } else { 50 })
    }
}

/// The next connection on `listener`.
async fn accept(listener: &AsyncFd<std::net::TcpListener>) -> io::Result<(LazyTcp, SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        match ready.try_io(|l| lazy_tcp::accept(l.get_ref())) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}
