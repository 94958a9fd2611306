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

use crate::connection::{self, ListenerKind, Shared};
use crate::lazy_tcp::{self, LazyTcp};

/// Pending connections the kernel may queue for us.
const BACKLOG: i32 = 1024;

/// Binds one listening socket, reporting failures in words an operator can act on.
/// Each worker registers its own duplicate of it with its event loop.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
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
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `::` serves IPv4 too, as Python's server does.
        let _ = socket.set_only_v6(false);
    }
    socket
        .bind(&addr.into())
        .map_err(|e| fail("listen on", e))?;
    socket.listen(BACKLOG).map_err(|e| fail("listen on", e))?;
    defer_accept(&socket);
    socket
        .set_nonblocking(true)
        .map_err(|e| fail("configure", e))?;
    Ok(socket.into())
}

/// Seconds the kernel may hold a new connection back until its first bytes arrive.
#[cfg(target_os = "linux")]
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// How long a connection that is accepted with nothing to read has already waited
/// in the kernel (see [`defer_accept`]): its header timeout has run that long.
#[cfg(target_os = "linux")]
pub const SILENT_BEFORE_ACCEPT: std::time::Duration =
    std::time::Duration::from_secs(DEFER_ACCEPT_SECS as u64);
/// Connections are accepted at once where `TCP_DEFER_ACCEPT` is not used.
#[cfg(not(target_os = "linux"))]
pub const SILENT_BEFORE_ACCEPT: std::time::Duration = std::time::Duration::ZERO;

/// Whether the accepted connection on `socket`, found with nothing to read, was held
/// back by the kernel first: its SYN-ACK was sent again, which is how
/// `TCP_DEFER_ACCEPT` waits (a lost SYN-ACK costs the client the same second). Not so
/// for connections accepted at once (deferral unavailable, SYN cookies), whose
/// header timeout must not be shortened. One `getsockopt`, on silent connections only.
/// `socket` must be an open socket the caller holds (a stale number only makes the
/// call fail or describe another socket).
pub fn held_back_before_accept(socket: std::os::fd::RawFd) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: all-zero bytes are a valid `tcp_info` (plain integers).
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `info`, a local of that
        // size, for a socket this function borrows.
        let rc = unsafe {
            libc::getsockopt(
                socket,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        rc == 0 && info.tcpi_total_retrans > 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        false
    }
}

/// Asks the kernel to hand over connections once the client's first bytes are in
/// (`TCP_DEFER_ACCEPT`, nginx's `deferred`): every client speaks first in HTTP and
/// TLS, so a connection is accepted with its request already readable and is usually
/// answered without waiting on the event loop at all. A client that stays silent is
/// still handed over after about a second, which counts against its header timeout
/// (see [`held_back_before_accept`]).
/// Best effort: without it connections are accepted at once.
fn defer_accept(socket: &Socket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: setsockopt reads exactly `size_of::<c_int>()` bytes from a valid
        // pointer to a local integer, on a socket this function borrows.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&DEFER_ACCEPT_SECS as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// Accepts connections on `listener` until `shutdown` is cancelled. Accepted sockets
/// are not registered with the event loop until they must wait (see `lazy_tcp`).
pub async fn accept_loop(
    listener: AsyncFd<std::net::TcpListener>,
    shared: Arc<Shared>,
    kind: ListenerKind,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return,
            accepted = accept(&listener) => accepted,
        };
        match accepted {
            // TCP_NODELAY is set later, only on connections that outlive one response
            // (see `connection`).
            Ok((stream, remote)) => {
                let mut conn = Box::pin(connection::serve(
                    stream,
                    remote,
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
                // Out of file descriptors or similar: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
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
