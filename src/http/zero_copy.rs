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

/// How a body's end is reported: with the bytes sent and whether it was complete.
pub type EndReport = Box<dyn FnOnce(u64, bool) + Send>;

/// A body's end, reported once the connection has sent its registered bytes: a body
/// ends when hyper has taken its last placeholder, long before `sendfile` has sent
/// what the placeholder stands for (up to [`REGION_LEN`] bytes), and a client that
/// goes away meanwhile must not be logged as having received the whole file.
struct Deferred {
    /// Called with the bytes sent and whether the body was complete.
    finish: EndReport,
    /// What the body counted as handed over, and whether it reached its end.
    sent: u64,
    complete: bool,
    /// The queue positions of the body's own registered bytes.
    start: u64,
    end: u64,
}

/// The ranges registered and not yet sent, and the ends that wait for them.
#[derive(Default)]
struct Queue {
    ranges: VecDeque<Pending>,
    /// Bytes registered, and sent, since the connection began: positions in the
    /// stream of placeholder bytes.
    registered: u64,
    written: u64,
    deferred: VecDeque<Deferred>,
}

/// The file ranges a connection's placeholders stand for, in the order sent.
#[derive(Default)]
pub struct SendfileQueue {
    pending: Mutex<Queue>,
}

impl std::fmt::Debug for SendfileQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.lock();
        f.debug_struct("SendfileQueue")
            .field("ranges", &queue.ranges)
            .field("deferred", &queue.deferred.len())
            .finish()
    }
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
    /// placeholder that stands for them, with the queue position of its first byte.
    pub fn placeholder(&self, file: &Arc<File>, offset: u64, len: u64) -> Option<(Bytes, u64)> {
        let region = region()?;
        let n = len.min(REGION_LEN as u64);
        let mut queue = self.lock();
        let at = queue.registered;
        queue.registered += n;
        queue.ranges.push_back(Pending {
            file: Arc::clone(file),
            offset,
            len: n,
        });
        Some((Bytes::from_static(&region[..n as usize]), at))
    }

    /// Whether registered ranges remain unsent.
    pub fn is_empty(&self) -> bool {
        self.lock().ranges.is_empty()
    }

    /// Reports a body's end through `finish` once every range registered so far is
    /// sent — at once when none is pending. `start` is the position of the body's
    /// first placeholder, if it had any.
    pub fn finish_when_sent(
        &self,
        finish: EndReport,
        sent: u64,
        complete: bool,
        start: Option<u64>,
    ) {
        let mut queue = self.lock();
        if queue.ranges.is_empty() {
            drop(queue);
            finish(sent, complete);
            return;
        }
        let end = queue.registered;
        queue.deferred.push_back(Deferred {
            finish,
            sent,
            complete,
            start: start.unwrap_or(end),
            end,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
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
                    match queue.ranges.front() {
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
                queue.written += n as u64;
                if let Some(front) = queue.ranges.front_mut() {
                    front.offset += n as u64;
                    front.len -= n as u64;
                    if front.len == 0 {
                        queue.ranges.pop_front();
                    }
                }
                let mut done = Vec::new();
                while queue
                    .deferred
                    .front()
                    .is_some_and(|d| d.end <= queue.written)
                {
                    done.extend(queue.deferred.pop_front());
                }
                drop(queue);
                for d in done {
                    (d.finish)(d.sent, d.complete);
                }
                Poll::Ready(Ok(n))
            }
            Some(i) => std::pin::Pin::new(io).poll_write_vectored(cx, &bufs[..i]),
        }
    }
}

impl Drop for SendfileQueue {
    /// The connection ended with registered bytes unsent: the bodies waiting for
    /// them are reported incomplete, short of what never left.
    fn drop(&mut self) {
        let queue = std::mem::take(self.pending.get_mut().unwrap_or_else(|p| p.into_inner()));
        for d in queue.deferred {
            let unsent = d.end.saturating_sub(queue.written.max(d.start));
            (d.finish)(d.sent.saturating_sub(unsent), false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn seen(into: &Arc<Mutex<Vec<(u64, bool)>>>) -> EndReport {
        let into = Arc::clone(into);
        Box::new(move |sent, complete| into.lock().unwrap().push((sent, complete)))
    }

    #[test]
    fn an_end_waits_for_its_ranges_and_is_incomplete_when_they_never_leave() {
        let Some(queue) = SendfileQueue::new() else {
            return;
        };
        let ends = Arc::new(Mutex::new(Vec::new()));
        // Nothing pending: reported at once.
        queue.finish_when_sent(seen(&ends), 5, true, None);
        assert_eq!(*ends.lock().unwrap(), [(5, true)]);

        let file = Arc::new(tempfile::tempfile().unwrap());
        let (placeholder, at) = queue.placeholder(&file, 0, 100_000).unwrap();
        assert_eq!((placeholder.len(), at), (100_000, 0));
        queue.finish_when_sent(seen(&ends), 100_010, true, Some(at));
        assert_eq!(
            ends.lock().unwrap().len(),
            1,
            "reported before its bytes left"
        );
        drop(queue);
        assert_eq!(ends.lock().unwrap()[1], (10, false));
    }
}
