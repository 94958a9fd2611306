//! The response body every handler returns.
//!
//! A body is one piece of bytes (kept inline: the common case costs no allocation), a
//! queue of [`Segment`]s — bytes in memory or a byte range of an open file —
//! or a bounded channel of chunks produced elsewhere (a streamed listing). Keeping file
//! ranges symbolic until the moment they are sent is what lets ranges, multipart
//! responses and a future zero-copy path reuse handlers unchanged.
//!
//! File ranges are read with positional reads (`pread`) on the blocking pool, one chunk
//! at a time, so a slow client never holds more than one chunk in memory and a slow
//! disk never stalls an async worker.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::http::zero_copy::{SendfileQueue, SENDFILE_MIN};

/// How much of a file one blocking read fetches.
const FILE_CHUNK: u64 = 256 * 1024;
/// How much the first read of a body fetches: a client that takes nothing (an
/// HTTP/2 stream whose window it keeps shut) holds this much, not a whole
/// [`FILE_CHUNK`]; one that reads gets full chunks from the second on.
const FIRST_FILE_CHUNK: u64 = 64 * 1024;

/// A byte range of an open file.
#[derive(Debug, Clone)]
pub struct FileRange {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl FileRange {
    /// `len` bytes of `file` from `offset`. The caller has checked the range against the
    /// file's size; if the file shrinks meanwhile the body fails rather than send short.
    pub fn new(file: Arc<File>, offset: u64, len: u64) -> FileRange {
        FileRange { file, offset, len }
    }
}

/// One piece of a body.
#[derive(Debug, Clone)]
pub enum Segment {
    /// Bytes already in memory.
    Bytes(Bytes),
    /// A range of an open file, read when it is sent.
    File(FileRange),
}

impl Segment {
    fn len(&self) -> u64 {
        match self {
            Segment::Bytes(b) => b.len() as u64,
            Segment::File(r) => r.len,
        }
    }
}

/// Called once when a body is done: after its last byte was handed to the connection
/// (for `sendfile` ranges, once sent), or early when the client went away. Used to log
/// and to time the exchange.
pub trait Finish: Send {
    /// `bytes_sent` counts body bytes handed to the connection; `complete` is false when
    /// the body was dropped before its end.
    fn finish(self: Box<Self>, bytes_sent: u64, complete: bool);
}

/// The bodies of one connection that handed out a piece and have not been asked for
/// the next: on HTTP/2, a stream whose client keeps its flow-control window shut
/// shows as such, while its connection may take no bytes at all. The connection
/// then counts as not reading (its send timeout runs), as an HTTP/1 one whose
/// socket is full does.
#[derive(Debug, Default)]
pub struct Handed {
    waiting: AtomicU32,
    /// [`coarse_now`] in milliseconds when a body last started waiting or was
    /// asked again: when response data last moved.
    moved_ms: AtomicU64,
}

impl Handed {
    /// How many bodies wait to be asked again.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// When response data last moved ([`coarse_now`]'s time).
    pub fn moved(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.moved_ms.load(Ordering::Relaxed))
    }

    fn stamp(&self) {
        let now = u64::try_from(coarse_now().as_millis()).unwrap_or(u64::MAX);
        self.moved_ms.store(now, Ordering::Relaxed);
    }
}

/// Monotonic time from the kernel's coarse clock: a few milliseconds of resolution,
/// plenty for timeouts counted in seconds, and several times cheaper to read than the
/// precise clock (connections read it several times per request).
pub fn coarse_now() -> std::time::Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
        std::time::Duration::new(
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

/// The response body type of every handler.
pub struct Body {
    inner: Inner,
    sent: u64,
    /// Set when the connection counts its bodies waiting to be asked ([`Handed`]);
    /// `holding` says whether this one is counted now.
    handed: Option<Arc<Handed>>,
    holding: bool,
    /// Set when the producer ended the body with an error (an app that broke off
    /// its answer): the response was cut short, however its channel ended.
    failed: bool,
    on_finish: Option<Box<dyn Finish>>,
    /// Set when the connection can send file ranges with `sendfile`.
    sendfile: Option<Arc<SendfileQueue>>,
    /// The queue position of this body's first `sendfile` placeholder.
    sendfile_start: Option<u64>,
}

enum Inner {
    /// At most one piece of bytes: the common case (a cached file, an error page),
    /// kept inline so that it costs no allocation.
    One(Option<Bytes>),
    Segments {
        queue: VecDeque<Segment>,
        reading: Option<JoinHandle<io::Result<Bytes>>>,
    },
    /// Chunks from a producer, with the total length when it is known in advance.
    Channel(mpsc::Receiver<io::Result<Bytes>>, Option<u64>),
}

impl Body {
    /// A body with no bytes.
    pub fn empty() -> Body {
        Body::with(Inner::One(None))
    }

    /// A body of bytes in memory.
    pub fn bytes(bytes: impl Into<Bytes>) -> Body {
        let bytes = bytes.into();
        Body::with(Inner::One((!bytes.is_empty()).then_some(bytes)))
    }

    /// A body made of the given segments, sent in order.
    pub fn from_segments(segments: Vec<Segment>) -> Body {
        if let [Segment::Bytes(_)] | [] = segments.as_slice() {
            return match segments.into_iter().next() {
                Some(Segment::Bytes(bytes)) => Body::bytes(bytes),
                _ => Body::empty(),
            };
        }
        let queue = segments.into_iter().filter(|s| s.len() > 0).collect();
        Body::with(Inner::Segments {
            queue,
            reading: None,
        })
    }

    /// A body whose chunks arrive on a channel; its length is not known in advance.
    pub fn channel(rx: mpsc::Receiver<io::Result<Bytes>>) -> Body {
        Body::with(Inner::Channel(rx, None))
    }

    /// Chunks from `rx` that add up to `len` bytes (an error or a short end breaks
    /// the response off rather than end it early).
    pub fn channel_of_len(rx: mpsc::Receiver<io::Result<Bytes>>, len: u64) -> Body {
        Body::with(Inner::Channel(rx, Some(len)))
    }

    fn with(inner: Inner) -> Body {
        Body {
            inner,
            sent: 0,
            handed: None,
            holding: false,
            failed: false,
            on_finish: None,
            sendfile: None,
            sendfile_start: None,
        }
    }

    /// The exact length, when it is known before sending.
    pub fn exact_len(&self) -> Option<u64> {
        match &self.inner {
            Inner::One(bytes) => Some(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Segments { queue, .. } => Some(queue.iter().map(Segment::len).sum()),
            Inner::Channel(_, len) => *len,
        }
    }

    /// Runs `finish` when this body is dropped. Replaces any earlier one.
    pub fn on_finish(&mut self, finish: Box<dyn Finish>) {
        self.on_finish = Some(finish);
    }

    /// Lets large file ranges go out as `sendfile` placeholders (see
    /// [`crate::http::zero_copy`]); only for connections whose transport supports it.
    pub fn use_sendfile(&mut self, queue: Arc<SendfileQueue>) {
        self.sendfile = Some(queue);
    }

    /// Counts this body in `handed` while it waits to be asked for its next piece.
    pub fn count_handed(&mut self, handed: Arc<Handed>) {
        self.handed = Some(handed);
    }

    /// Ends this body's turn in its [`Handed`] count, if it is counted.
    fn asked_again(&mut self) {
        if std::mem::take(&mut self.holding) {
            if let Some(handed) = &self.handed {
                handed.stamp();
                handed.waiting.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Replaces the content with nothing, keeping the finish hook (for HEAD).
    pub fn clear(&mut self) {
        self.inner = Inner::One(None);
    }

    fn is_done(&self) -> bool {
        match &self.inner {
            Inner::One(bytes) => bytes.is_none(),
            Inner::Segments { queue, reading } => queue.is_empty() && reading.is_none(),
            Inner::Channel(rx, _) => rx.is_closed() && rx.is_empty(),
        }
    }
}

impl Drop for Body {
    /// Reports the end; with `sendfile`, once the bytes hyper took as placeholders
    /// have actually been sent (or the connection ended without them).
    fn drop(&mut self) {
        self.asked_again();
        if let Some(finish) = self.on_finish.take() {
            let complete = self.is_done() && !self.failed;
            match &self.sendfile {
                Some(queue) => queue.finish_when_sent(
                    Box::new(move |sent, complete| finish.finish(sent, complete)),
                    self.sent,
                    complete,
                    self.sendfile_start,
                ),
                None => finish.finish(self.sent, complete),
            }
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("exact_len", &self.exact_len())
            .field("sent", &self.sent)
            .finish()
    }
}

fn read_range(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while it was being sent",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Bytes::from(buf))
}

fn poll_segments(
    queue: &mut VecDeque<Segment>,
    reading: &mut Option<JoinHandle<io::Result<Bytes>>>,
    sendfile: Option<&SendfileQueue>,
    sendfile_start: &mut Option<u64>,
    first: bool,
    cx: &mut Context<'_>,
) -> Poll<Option<io::Result<Bytes>>> {
    loop {
        if let Some(handle) = reading {
            let result = ready!(Pin::new(handle).poll(cx));
            *reading = None;
            let chunk = match result {
                Ok(Ok(chunk)) => chunk,
                Ok(Err(e)) => return Poll::Ready(Some(Err(e))),
                Err(join) => return Poll::Ready(Some(Err(io::Error::other(join)))),
            };
            if let Some(Segment::File(range)) = queue.front_mut() {
                range.offset += chunk.len() as u64;
                range.len -= chunk.len() as u64;
                if range.len == 0 {
                    queue.pop_front();
                }
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        match queue.front() {
            None => return Poll::Ready(None),
            Some(Segment::Bytes(_)) => {
                if let Some(Segment::Bytes(b)) = queue.pop_front() {
                    return Poll::Ready(Some(Ok(b)));
                }
            }
            Some(Segment::File(range)) => {
                if let Some(zero_copy) = sendfile.filter(|_| range.len >= SENDFILE_MIN) {
                    if let Some((placeholder, at)) =
                        zero_copy.placeholder(&range.file, range.offset, range.len)
                    {
                        sendfile_start.get_or_insert(at);
                        let n = placeholder.len() as u64;
                        if let Some(Segment::File(range)) = queue.front_mut() {
                            range.offset += n;
                            range.len -= n;
                            if range.len == 0 {
                                queue.pop_front();
                            }
                        }
                        return Poll::Ready(Some(Ok(placeholder)));
                    }
                }
                let file = Arc::clone(&range.file);
                let offset = range.offset;
                // Bounded by FILE_CHUNK, so the cast cannot truncate.
                let chunk = if first { FIRST_FILE_CHUNK } else { FILE_CHUNK };
                let len = range.len.min(chunk) as usize;
                *reading = Some(tokio::task::spawn_blocking(move || {
                    read_range(&file, offset, len)
                }));
            }
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        this.asked_again();
        let next = match &mut this.inner {
            Inner::One(bytes) => bytes.take().map(Ok),
            Inner::Segments { queue, reading } => {
                let first = this.sent == 0;
                ready!(poll_segments(
                    queue,
                    reading,
                    this.sendfile.as_deref(),
                    &mut this.sendfile_start,
                    first,
                    cx
                ))
            }
            Inner::Channel(rx, _) => ready!(rx.poll_recv(cx)),
        };
        if matches!(next, Some(Err(_))) {
            this.failed = true;
        }
        Poll::Ready(next.map(|chunk| {
            chunk.map(|bytes| {
                this.sent += bytes.len() as u64;
                if let Some(handed) = &this.handed {
                    // The first to wait starts the wait's clock.
                    if handed.waiting.fetch_add(1, Ordering::Relaxed) == 0 {
                        handed.stamp();
                    }
                    this.holding = true;
                }
                Frame::data(bytes)
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Channel(..) => false,
            _ => self.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact_len() {
            Some(len) => SizeHint::with_exact(len),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Write;
    use std::sync::Mutex;

    struct Record(Arc<Mutex<Option<(u64, bool)>>>);
    impl Finish for Record {
        fn finish(self: Box<Self>, sent: u64, complete: bool) {
            *self.0.lock().unwrap() = Some((sent, complete));
        }
    }

    #[tokio::test]
    async fn file_ranges_and_bytes_are_sent_in_order() {
        let mut tmp = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        tmp.write_all(&content).unwrap();
        let file = Arc::new(tmp);
        let body = Body::from_segments(vec![
            Segment::Bytes(Bytes::from_static(b"head")),
            Segment::File(FileRange::new(Arc::clone(&file), 10, 500_000)),
            Segment::Bytes(Bytes::new()),
            Segment::File(FileRange::new(file, 0, 3)),
        ]);
        assert_eq!(body.exact_len(), Some(4 + 500_000 + 3));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..4], b"head");
        assert_eq!(&all[4..500_004], &content[10..500_010]);
        assert_eq!(&all[500_004..], &content[..3]);
    }

    #[tokio::test]
    async fn a_file_that_shrinks_fails_instead_of_sending_short() {
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(b"short").unwrap();
        let body = Body::from_segments(vec![Segment::File(FileRange::new(Arc::new(tmp), 0, 100))]);
        assert!(body.collect().await.is_err());
    }

    #[tokio::test]
    async fn one_piece_and_empty_bodies_report_their_length_and_end() {
        use http_body::Body as _;
        let one = Body::from_segments(vec![Segment::Bytes(Bytes::from_static(b"abc"))]);
        assert_eq!(one.exact_len(), Some(3));
        assert!(!one.is_end_stream());
        assert_eq!(&one.collect().await.unwrap().to_bytes()[..], b"abc");
        for empty in [
            Body::empty(),
            Body::bytes(""),
            Body::from_segments(Vec::new()),
        ] {
            assert_eq!(empty.exact_len(), Some(0));
            assert!(empty.is_end_stream());
        }
        let mut cleared = Body::bytes("gone");
        cleared.clear();
        assert!(cleared.is_end_stream());
        assert_eq!(cleared.collect().await.unwrap().to_bytes().len(), 0);
    }

    #[tokio::test]
    async fn finish_reports_bytes_and_completion() {
        let seen = Arc::new(Mutex::new(None));
        let mut body = Body::bytes("hello");
        body.on_finish(Box::new(Record(Arc::clone(&seen))));
        let _ = body.collect().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), Some((5, true)));

        let mut early = Body::bytes("never sent");
        early.on_finish(Box::new(Record(Arc::clone(&seen))));
        drop(early);
        assert_eq!(*seen.lock().unwrap(), Some((0, false)));
    }
}
