//! Accepted TCP connections that join the event loop only when they must wait.
//!
//! Registering a socket with epoll and removing it again costs two system calls. A
//! client that sends its request with the connection (most do: the request is usually
//! in the socket by the time it is accepted) and is answered at once never has to wait
//! for readiness, so a [`LazyTcp`] first reads and writes the socket directly and only
//! registers it with tokio the first time a call would block. A `Connection: close`
//! exchange answered from the hot cache then costs accept, read, a read of the inotify
//! queue (or an `fstatat`), write and close: no epoll bookkeeping at all.
//!
//! Once registered, the connection behaves exactly as a [`tokio::net::TcpStream`]; it
//! leaves the event loop again only when it is parked (see `parking`).

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::http::zero_copy::{self, SendFile};

/// An accepted connection, registered with the event loop on first need.
#[derive(Debug)]
pub struct LazyTcp {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Not registered: used with direct, non-blocking system calls.
    Direct(std::net::TcpStream),
    /// Registered with the event loop.
    Registered(TcpStream),
    /// Registration failed; the socket is gone and every call reports the failure.
    Failed,
}

impl LazyTcp {
    /// Wraps a freshly accepted, non-blocking socket.
    pub fn new(stream: std::net::TcpStream) -> LazyTcp {
        LazyTcp {
            state: State::Direct(stream),
        }
    }

    /// The tokio stream, registering the socket first if needed.
    pub fn registered(&mut self) -> io::Result<&mut TcpStream> {
        if matches!(self.state, State::Direct(_)) {
            if let State::Direct(std) = std::mem::replace(&mut self.state, State::Failed) {
                self.state = State::Registered(TcpStream::from_std(std)?);
            }
        }
        match &mut self.state {
            State::Registered(stream) => Ok(stream),
            _ => Err(failed()),
        }
    }

    /// The tokio stream, for protocols (TLS) that need one from the start.
    pub fn into_registered(mut self) -> io::Result<TcpStream> {
        self.registered()?;
        match self.state {
            State::Registered(stream) => Ok(stream),
            _ => Err(failed()),
        }
    }

    /// The socket alone, out of the event loop (non-blocking still), for parking.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        match self.state {
            State::Direct(s) => Ok(s),
            State::Registered(s) => s.into_std(),
            State::Failed => Err(failed()),
        }
    }

    /// Sends the FIN after what was written; reading stays open.
    pub fn shutdown_write(&self) -> io::Result<()> {
        let how = std::net::Shutdown::Write;
        match &self.state {
            State::Direct(s) => s.shutdown(how),
            State::Registered(s) => socket2::SockRef::from(s).shutdown(how),
            State::Failed => Err(failed()),
        }
    }

    /// Turns Nagle's algorithm off.
    pub fn set_nodelay(&self) -> io::Result<()> {
        match &self.state {
            State::Direct(s) => s.set_nodelay(true),
            State::Registered(s) => s.set_nodelay(true),
            State::Failed => Err(failed()),
        }
    }

    /// Whether the socket is still outside the event loop (nothing has had to wait).
    pub fn is_direct(&self) -> bool {
        matches!(self.state, State::Direct(_))
    }

    /// The socket's descriptor number, for a `getsockopt`.
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match &self.state {
            State::Direct(s) => Some(s.as_raw_fd()),
            State::Registered(s) => Some(s.as_raw_fd()),
            State::Failed => None,
        }
    }

    /// Peeks at what the peer has sent, without waiting: `None` when nothing is there
    /// yet (the socket is then registered, ready to wait).
    pub fn peek_now(&mut self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        self.direct(|s| s.peek(buf))
    }

    /// Waits until the peer has sent something (or closed), without consuming it.
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.registered()?.poll_read_ready(cx)
    }

    /// Runs `op` directly while unregistered; on `WouldBlock` registers and returns
    /// `None` so the caller goes on through tokio.
    fn direct<R>(
        &mut self,
        op: impl FnOnce(&std::net::TcpStream) -> io::Result<R>,
    ) -> Option<io::Result<R>> {
        let State::Direct(std) = &self.state else {
            return None;
        };
        match op(std) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.registered() {
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            },
            other => Some(other),
        }
    }
}

fn failed() -> io::Error {
    io::Error::other("the connection could not join the event loop")
}

impl AsyncRead for LazyTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let direct = self.direct(|s| {
            // SAFETY: the unfilled part is only written by read(2) (through rustix,
            // which never de-initialises bytes), and only the `n` bytes it reports
            // are then marked initialised.
            unsafe {
                let (read, _) = rustix::io::read(s, buf.unfilled_mut())?;
                let n = read.len();
                buf.assume_init(n);
                buf.advance(n);
            }
            Ok(())
        });
        match direct {
            Some(result) => Poll::Ready(result),
            None => Pin::new(self.registered()?).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for LazyTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.direct(|mut s| s.write(buf)) {
            Some(result) => Poll::Ready(result),
            None => Pin::new(self.registered()?).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.direct(|mut s| s.write_vectored(bufs)) {
            Some(result) => Poll::Ready(result),
            None => Pin::new(self.registered()?).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// A TCP shutdown never waits (tokio's own is the same single call).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown_write())
    }
}

impl SendFile for LazyTcp {
    fn poll_sendfile(
        &mut self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        match self.direct(|s| zero_copy::sendfile_now(s, file, offset, len)) {
            Some(result) => Poll::Ready(result),
            None => self.registered()?.poll_sendfile(cx, file, offset, len),
        }
    }
}

/// Accepts one connection from a non-blocking listener without registering it:
/// `accept4` with the socket already non-blocking and close-on-exec.
pub fn accept(listener: &std::net::TcpListener) -> io::Result<(LazyTcp, SocketAddr)> {
    use rustix::net::{acceptfrom_with, SocketFlags};
    let (fd, addr) = acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    let remote = addr
        .and_then(|a| SocketAddr::try_from(a).ok())
        .ok_or_else(|| io::Error::other("accepted a connection with no IP peer address"))?;
    Ok((LazyTcp::new(std::net::TcpStream::from(fd)), remote))
}
