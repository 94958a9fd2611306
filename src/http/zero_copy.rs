//! Zero-copy file bodies: `sendfile(2)` under hyper's HTTP/1 framing.
//!
//! hyper writes every body through user space, which costs a copy per byte. Rather
//! than leave hyper, a body on a plain-TCP connection hands hyper *placeholder* buffers
//! for large file ranges: slices of a read-only, never-touched anonymous mapping whose
//! addresses identify them. hyper frames them like any bytes (Content-Length
//! accounting, ordering) and passes them, uncopied, to the connection's
//! `poll_write_vectored` (its queued write strategy, which the connection forces). There
//! [`SendfileQueue::poll_write`] writes ordinary buffers as usual and, where a
//! placeholder stands, sends the registered file range with `sendfile(2)` instead.
//!
//! Invariants that keep this safe:
//! * placeholders are only produced for a connection whose transport can `sendfile`
//!   (plain TCP) and whose hyper connection uses the queued (vectored) strategy;
//! * each placeholder is registered, in order, with the exact file range it stands for,
//!   and a write whose placeholder does not match the front registration fails the
//!   connection rather than send anything else;
//! * the mapping is `PROT_READ` and never written, so should a placeholder ever be read
//!   it yields zeros, never another response's bytes.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;

/// Size of the placeholder mapping, and so the largest range one placeholder covers.
const REGION_LEN: usize = 64 * 1024 * 1024;
/// File ranges at least this long are sent with `sendfile`; shorter ones are cheaper
/// to read.
pub const SENDFILE_MIN: u64 = 64 * 1024;
/// The most one `sendfile` call is asked to send, as nginx's `sendfile_max_chunk`: a
/// bounded call keeps other connections on the same event loop served.
const SENDFILE_CHUNK: usize = 2 * 1024 * 1024;

fn region() -> Option<&'static [u8]> {
    static REGION: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    *REGION.get_or_init(|| {
        use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
        // SAFETY: a fresh private anonymous mapping aliases nothing; it is read-only
        // and never unmapped, so a 'static shared slice over it is sound. Its pages are
        // never touched by wharf (placeholders are recognised by address), so it costs
        // address space only.
        unsafe {
            let ptr = mmap_anonymous(
                std::ptr::null_mut(),
                REGION_LEN,
                ProtFlags::READ,
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
            .ok()?;
            Some(std::slice::from_raw_parts(ptr.cast::<u8>(), REGION_LEN))
        }
    })
}

fn is_placeholder(buf: &[u8]) -> bool {
    region().is_some_and(|r| {
        let start = r.as_ptr() as usize;
        let p = buf.as_ptr() as usize;
        !buf.is_empty() && p >= start && p < start + r.len()
    })
}

/// A transport that can send file bytes itself.
pub trait SendFile {
    /// Sends up to `len` bytes of `file` from `offset` straight to the peer; returns how
    /// many were sent. Must register for writability when it would block.
    fn poll_sendfile(
        &mut self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>>;
}

/// One `sendfile(2)` call on a non-blocking socket, at most [`SENDFILE_CHUNK`] bytes;
/// `WouldBlock` when the socket's buffer is full.
pub fn sendfile_now(
    socket: impl std::os::fd::AsFd,
    file: &File,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (socket, file, offset, len);
        Err(io::ErrorKind::Unsupported.into())
    }
    #[cfg(target_os = "linux")]
    {
        let mut off = offset;
        match rustix::fs::sendfile(socket, file, Some(&mut off), len.min(SENDFILE_CHUNK)) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being sent",
            )),
            Ok(n) => Ok(n),
            Err(e) => Err(e.into()),
        }
    }
}

impl SendFile for tokio::net::TcpStream {
    fn poll_sendfile(
        &mut self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.poll_write_ready(cx))?;
            match self.try_io(tokio::io::Interest::WRITABLE, || {
                sendfile_now(&*self, file, offset, len)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

#[derive(Debug)]
struct Pending {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

/// The file ranges a connection's placeholders stand for, in the order sent.
#[derive(Debug, Default)]
pub struct SendfileQueue {
    pending: Mutex<VecDeque<Pending>>,
}

impl SendfileQueue {
    /// A queue for one connection, or `None` when placeholders or `sendfile(2)` are
    /// unavailable (outside Linux, file bodies are read with `pread` instead).
    pub fn new() -> Option<Arc<SendfileQueue>> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        region().map(|_| Arc::new(SendfileQueue::default()))
    }

    /// Registers up to [`REGION_LEN`] bytes of `file` from `offset` and returns the
    /// placeholder that stands for them.
    pub fn placeholder(&self, file: &Arc<File>, offset: u64, len: u64) -> Option<Bytes> {
        let region = region()?;
        let n = len.min(REGION_LEN as u64);
        self.lock().push_back(Pending {
            file: Arc::clone(file),
            offset,
            len: n,
        });
        Some(Bytes::from_static(&region[..n as usize]))
    }

    /// Whether registered ranges remain unsent.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `bufs` to `io`: ordinary buffers with `write_vectored`, placeholders with
    /// `sendfile`. Like any vectored write it may write only a prefix.
    pub fn poll_write<T>(
        &self,
        io: &mut T,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>>
    where
        T: tokio::io::AsyncWrite + SendFile + Unpin,
    {
        match bufs.iter().position(|b| is_placeholder(b)) {
            None => std::pin::Pin::new(io).poll_write_vectored(cx, bufs),
            Some(0) => {
                let want = bufs[0].len() as u64;
                let (file, offset) = {
                    let queue = self.lock();
                    match queue.front() {
                        Some(p) if p.len == want => (Arc::clone(&p.file), p.offset),
                        _ => {
                            return Poll::Ready(Err(io::Error::other(
                                "placeholder does not match the registered file range",
                            )))
                        }
                    }
                };
                let n = std::task::ready!(io.poll_sendfile(cx, &file, offset, want as usize))?;
                let mut queue = self.lock();
                if let Some(front) = queue.front_mut() {
                    front.offset += n as u64;
                    front.len -= n as u64;
                    if front.len == 0 {
                        queue.pop_front();
                    }
                }
                Poll::Ready(Ok(n))
            }
            Some(i) => std::pin::Pin::new(io).poll_write_vectored(cx, &bufs[..i]),
        }
    }
}
