//! Listening sockets, the accept loop, and shutdown.
//!
//! Each listener is bound with SO_REUSEADDR (a restart binds at once even with
//! connections in TIME_WAIT), accepts until shutdown is asked for, and hands every
//! connection to its own task. On shutdown the listeners close first, then open
//! connections finish their in-flight response within the grace period.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::{self, Limits, ListenerKind};
use crate::router::Router;

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
    socket
        .set_nonblocking(true)
        .map_err(|e| fail("configure", e))?;
    Ok(socket.into())
}

/// Accepts connections on `listener` until `shutdown` is cancelled.
pub async fn accept_loop(
    listener: TcpListener,
    router: Arc<Router>,
    limits: Limits,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    kind: ListenerKind,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                tasks.spawn(connection::serve(
                    stream,
                    remote,
                    Arc::clone(&router),
                    limits.clone(),
                    shutdown.clone(),
                    kind.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors or similar: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}
