//! The byte stream under hyper: the [`Transport`] a connection runs on (plain TCP or
//! TLS), and `ConnIo`, the wrapper that replays bytes read before, reports reads to
//! the connection's [`Clock`], turns `sendfile` placeholders into `sendfile(2)`, and
//! labels responses to HTTP/1.0 requests HTTP/1.1 (`Restamp`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::http::zero_copy::{SendFile, SendfileQueue};
use crate::net::clock::Clock;
use crate::net::lazy_tcp::LazyTcp;

/// A byte stream a connection can run on.
pub trait Transport: AsyncRead + AsyncWrite + SendFile + Unpin + Send + 'static {
    /// Whether an idle connection can be parked: the transport keeps no buffered
    /// state of its own, so readiness of the socket is readiness of the stream.
    const CAN_PARK: bool;
    /// Whether file bytes can go to the peer unchanged (`sendfile`).
    const CAN_SENDFILE: bool;
    /// Whether the stream is encrypted (TLS).
    const SECURE: bool;
    /// Waits until the peer has sent something (or closed) without consuming it.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Turns Nagle's algorithm off, so the last small segment of a response is not
    /// held back waiting for the client's acknowledgement.
    fn set_nodelay(&self);
    /// The plain socket underneath, for parking and lingering; `None` for transports
    /// that keep state of their own (TLS).
    fn into_lazy(self) -> Option<LazyTcp>;
    /// The socket's descriptor, for a handler to notice the client leaving.
    fn raw_fd(&self) -> Option<std::os::fd::RawFd>;
    /// Ends the sending side before the transport is dropped.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_shutdown(cx)
    }
}

impl Transport for LazyTcp {
    const CAN_PARK: bool = true;
    const CAN_SENDFILE: bool = true;
    const SECURE: bool = false;
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }
    fn set_nodelay(&self) {
        let _ = LazyTcp::set_nodelay(self);
    }
    fn into_lazy(self) -> Option<LazyTcp> {
        Some(self)
    }
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        LazyTcp::raw_fd(self)
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
    const SECURE: bool = true;
    fn poll_readable(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
    fn set_nodelay(&self) {
        let _ = self.get_ref().0.set_nodelay(true);
    }
    fn into_lazy(self) -> Option<LazyTcp> {
        None
    }
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        Some(self.get_ref().0.as_raw_fd())
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

/// The transport as hyper sees it: replays bytes read by a previous hyper connection,
/// reports reads to the [`Clock`], sends `sendfile` placeholders, and labels
/// responses to HTTP/1.0 requests HTTP/1.1 ([`Restamp`]).
pub(super) struct ConnIo<T> {
    pub(super) inner: T,
    pub(super) replay: Bytes,
    pub(super) clock: Arc<Clock>,
    /// HTTP/1 only: HTTP/2 control frames arrive while idle and are no request.
    pub(super) report_reads: bool,
    pub(super) sendfile: Option<Arc<SendfileQueue>>,
    pub(super) restamp: Restamp,
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
pub(super) struct Restamp {
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
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            crate::metrics::metrics().received((buf.filled().len() - before) as u64);
            // HTTP/2's progress is counted by streams (see `Clock::body_progress`).
            if self.report_reads {
                self.clock.on_read();
            }
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
        let was_blocked = this.clock.write_blocked.swap(!drained, Ordering::Relaxed);
        if patched.is_some() {
            match result {
                Poll::Ready(Ok(n)) => this.restamp.advance(Some(n)),
                Poll::Ready(Err(_)) => this.restamp.advance(None),
                Poll::Pending => {}
            }
        }
        // Progress, or the moment output starts waiting for the client: the send
        // timeout counts from whichever came last, not from a write made before the
        // response's producer paused.
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) || (!drained && !was_blocked) {
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

#[cfg(test)]
mod tests {
    use super::Restamp;
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
}
