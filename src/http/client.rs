//! The client's connection, as a handler that waits on something slow (a program,
//! an app server) watches it: when the client has gone, the work it asked for is
//! stopped rather than finished for no one, as nginx stops an upstream request
//! whose client closed the connection.
//!
//! Only HTTP/1 needs watching. hyper drops an HTTP/2 stream's handler when the
//! client resets the stream or the connection ends; an HTTP/1 connection is not
//! read while its request is answered (a client may half-close once its request is
//! out, RFC 9112 §9.6), so a client's leaving shows on the socket alone.

use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// How long an answer may take before the client's connection is watched: most
/// are over sooner, and watching costs a descriptor and an event-loop entry.
const GRACE: Duration = Duration::from_millis(200);

/// The client's connection, or nothing to watch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client {
    socket: Option<RawFd>,
}

impl Client {
    /// A client whose leaving the handler need not watch for: an HTTP/2 stream
    /// (hyper drops its handler), a request made inside wharf.
    pub const UNWATCHED: Client = Client { socket: None };

    /// The client on the other end of `socket`, an HTTP/1 connection's socket. The
    /// descriptor is only read while [`Client::left`] runs, which the connection's
    /// own request future drives (or a task that stops as soon as the connection
    /// drops its response body, checked first).
    pub fn on_socket(socket: RawFd) -> Client {
        Client {
            socket: Some(socket),
        }
    }

    /// Finishes once the client has closed its connection, or it failed; never when
    /// there is nothing to watch. Watching starts a short while after the first
    /// poll, on a copy of the descriptor (the connection's own stays as the
    /// connection registered it), and sees the end of the client's sending side,
    /// as nginx does: a client that half-closes is taken to have gone.
    pub async fn left(self) {
        let Some(socket) = self.socket else {
            return std::future::pending().await;
        };
        tokio::time::sleep(GRACE).await;
        // SAFETY: the descriptor is the connection's, open while the future
        // that polls this one runs (see `on_socket`); it is only copied here.
        let Ok(copy) = unsafe { BorrowedFd::borrow_raw(socket) }.try_clone_to_owned() else {
            return std::future::pending().await;
        };
        // SAFETY: the copy is owned by the AsyncFd, open for as long as it is.
        let Ok(watch) = (unsafe { AsyncFd::register_with_interest(copy, Interest::READABLE) })
        else {
            return std::future::pending().await;
        };
        loop {
            let Ok(mut ready) = watch.readable().await else {
                return;
            };
            let seen = ready.ready();
            if seen.is_read_closed() || seen.is_error() {
                return;
            }
            // Bytes of a pipelined request: the client is still there.
            ready.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[tokio::test]
    async fn a_closed_connection_is_seen_and_an_open_one_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let watched = Client::on_socket(server.as_raw_fd());
        // Pipelined bytes are no leaving.
        client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let early = tokio::time::timeout(GRACE * 3, watched.left()).await;
        assert!(
            early.is_err(),
            "a client still connected was taken to have left"
        );
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), watched.left())
            .await
            .expect("a closed connection was not seen");
        drop(server);
    }

    #[tokio::test]
    async fn nothing_to_watch_never_finishes() {
        let early = tokio::time::timeout(GRACE * 3, Client::UNWATCHED.left()).await;
        assert!(early.is_err());
    }
}
