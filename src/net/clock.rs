//! The per-connection [`Clock`]: which phase a connection is in (idle between
//! requests, receiving a head, answering), when that phase expires, and the small
//! facts about the latest exchange that the connection's driver and I/O wrapper act
//! on (body left unread, Nagle to turn off, an HTTP/1.0 head to re-stamp).
//!
//! Shared by the I/O wrapper, the service and the driver of one connection; knows
//! nothing of sockets or HTTP.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::http::body::{coarse_now, Handed};
use crate::net::deferred_accept::SILENT_BEFORE_ACCEPT;

/// How long a keep-alive connection must be idle before it is parked.
pub const PARK_AFTER: Duration = Duration::from_millis(100);

pub(super) const IDLE: u8 = 0;
pub(super) const HEAD: u8 = 1;
pub(super) const BUSY: u8 = 2;

/// Per-connection timing state, shared by the I/O wrapper, the service and the driver.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    /// `start` on the coarse clock, which timestamps the connection's events.
    start_coarse: Duration,
    header_timeout: Duration,
    idle_timeout: Duration,
    phase: AtomicU8,
    /// Milliseconds after `start` when the current phase expires.
    deadline_ms: AtomicU64,
    /// Milliseconds after `start` when the current idle period began.
    idle_since_ms: AtomicU64,
    in_flight: AtomicU32,
    /// Bytes of a following request arrived while a response was under way.
    read_while_busy: AtomicBool,
    /// Bytes of a request head have arrived and no request was made of them yet: a
    /// connection cut at the header timeout now had a request (logged as 408).
    head_begun: AtomicBool,
    /// The last write did not take everything offered: output is still buffered.
    pub(super) write_blocked: AtomicBool,
    /// HTTP/2 response bodies handed to their streams and not asked again yet:
    /// output waiting for the client's flow-control window.
    pub(super) handed: Arc<Handed>,
    /// Milliseconds after `start` of the last progress of an exchange: a write that
    /// took bytes, request body bytes arriving, or the start of the request.
    pub(super) last_write_ms: AtomicU64,
    /// Milliseconds after `start` of the last piece of an HTTP/2 request body a
    /// handler took.
    last_upload_ms: AtomicU64,
    /// A request expects the connection to stay open: Nagle's algorithm must go before
    /// its response is written. A connection that closes after one response never
    /// pays for the system call, since `close` flushes.
    pub(super) wants_nodelay: AtomicBool,
    /// TCP_NODELAY is on already.
    pub(super) nodelay: AtomicBool,
    /// The latest request came with a body left unread, or was refused with a status
    /// that ends the connection: if the connection closes after it, the client may
    /// still be sending (see `linger`).
    pub(super) unread_body: AtomicBool,
    /// The next response head answers an HTTP/1.0 request and will be the first
    /// bytes of the next write; [`ConnIo`] sends its status line as HTTP/1.1.
    pub(super) restamp_head: AtomicBool,
}

impl Clock {
    pub(super) fn new(header_timeout: Duration, idle_timeout: Duration) -> Clock {
        let clock = Clock {
            start: Instant::now(),
            start_coarse: coarse_now(),
            header_timeout,
            idle_timeout,
            phase: AtomicU8::new(HEAD),
            deadline_ms: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            read_while_busy: AtomicBool::new(false),
            head_begun: AtomicBool::new(false),
            write_blocked: AtomicBool::new(false),
            handed: Arc::default(),
            last_write_ms: AtomicU64::new(0),
            last_upload_ms: AtomicU64::new(0),
            wants_nodelay: AtomicBool::new(false),
            nodelay: AtomicBool::new(false),
            unread_body: AtomicBool::new(false),
            restamp_head: AtomicBool::new(false),
        };
        clock.set_deadline(header_timeout);
        clock
    }

    pub(super) fn now_ms(&self) -> u64 {
        let elapsed = coarse_now().saturating_sub(self.start_coarse);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    fn set_deadline(&self, after: Duration) {
        self.set_deadline_from(self.now_ms(), after);
    }

    fn set_deadline_from(&self, now_ms: u64, after: Duration) {
        let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        self.deadline_ms
            .store(now_ms.saturating_add(after), Ordering::Relaxed);
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    pub(super) fn deadline(&self) -> Instant {
        self.at(self.deadline_ms.load(Ordering::Relaxed))
    }

    pub(super) fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }

    /// The connection was accepted with nothing to read: the kernel held it back
    /// for [`SILENT_BEFORE_ACCEPT`] first, which counts against its header timeout.
    pub(super) fn accepted_silent(&self) {
        let waited = u64::try_from(SILENT_BEFORE_ACCEPT.as_millis()).unwrap_or(0);
        let deadline = self.deadline_ms.load(Ordering::Relaxed);
        self.deadline_ms
            .store(deadline.saturating_sub(waited), Ordering::Relaxed);
    }

    /// When an idle connection should be parked.
    pub(super) fn park_at(&self) -> Instant {
        self.at(self.idle_since_ms.load(Ordering::Relaxed)) + PARK_AFTER
    }

    /// Bytes arrived from the client.
    pub(super) fn on_read(&self) {
        match self.phase() {
            IDLE => {
                self.phase.store(HEAD, Ordering::Relaxed);
                self.set_deadline(self.header_timeout);
                self.head_begun.store(true, Ordering::Relaxed);
            }
            HEAD => self.head_begun.store(true, Ordering::Relaxed),
            BUSY => {
                self.read_while_busy.store(true, Ordering::Relaxed);
                // A request body arriving is progress: a long upload is not a
                // stalled response.
                if self.unread_body.load(Ordering::Relaxed) {
                    self.last_write_ms.store(self.now_ms(), Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    /// A handler took a piece of an HTTP/2 request body: while streams are under
    /// way it counts as progress, so a long upload is not taken for a stalled
    /// response. (Bytes merely arriving do not: a client that grants no window
    /// could keep its connection with a PING now and then.)
    pub(super) fn body_progress(&self) {
        if self.phase() == BUSY {
            let now = self.now_ms();
            self.last_write_ms.store(now, Ordering::Relaxed);
            self.last_upload_ms.store(now, Ordering::Relaxed);
        }
    }

    /// When output held by streams waiting for their windows is given up: `timeout`
    /// after response data last moved on any stream (or a request body did). Bytes
    /// written do not count here: they may be the answers to the client's PINGs.
    pub(super) fn handed_deadline(&self, timeout: Duration) -> Instant {
        let moved = self.handed.moved().saturating_sub(self.start_coarse);
        let moved_ms = u64::try_from(moved.as_millis()).unwrap_or(u64::MAX);
        let upload_ms = self.last_upload_ms.load(Ordering::Relaxed);
        self.at(moved_ms.max(upload_ms)) + timeout
    }

    /// When a response that makes no progress is given up: `send_timeout` after the
    /// last write that took bytes.
    pub(super) fn send_deadline(&self, send_timeout: Duration) -> Instant {
        self.at(self.last_write_ms.load(Ordering::Relaxed)) + send_timeout
    }

    /// An HTTP/1.0 request was parsed; called before [`Clock::request_started`].
    ///
    /// hyper labels every response to such a request `HTTP/1.0`, while RFC 9110 §6.2
    /// asks for the highest version the server speaks, as nginx sends. The label can
    /// be changed safely only when this response's head will start the next write:
    /// no earlier response is still being produced or waiting to be sent. Otherwise
    /// (pipelined requests behind a slow reader) the response keeps hyper's label.
    pub fn answering_http10(&self) {
        let nothing_pending = self.in_flight.load(Ordering::Relaxed) == 0
            && !self.write_blocked.load(Ordering::Relaxed);
        self.restamp_head.store(nothing_pending, Ordering::Relaxed);
    }

    /// A request head was parsed and handed to the router; `keep_alive` when the
    /// client expects the connection to stay open after the response, `has_body` when
    /// a request body follows the head.
    pub fn request_started(&self, keep_alive: bool, has_body: bool) {
        self.unread_body.store(has_body, Ordering::Relaxed);
        if keep_alive && !self.nodelay.swap(true, Ordering::Relaxed) {
            self.wants_nodelay.store(true, Ordering::Relaxed);
        }
        self.last_write_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.phase.store(BUSY, Ordering::Relaxed);
        self.read_while_busy.store(false, Ordering::Relaxed);
        self.head_begun.store(false, Ordering::Relaxed);
    }

    /// Whether the connection is waiting for the rest of a request head it has begun
    /// to receive.
    pub(super) fn head_unfinished(&self) -> bool {
        self.phase() == HEAD && self.head_begun.load(Ordering::Relaxed)
    }

    /// The latest request's body was read to its end: closing after the answer needs
    /// no lingering, and the bytes that arrived while it was read were that body, not
    /// the start of another request (the connection goes idle after the answer, not
    /// under the header timeout).
    pub fn body_read(&self) {
        self.unread_body.store(false, Ordering::Relaxed);
        self.read_while_busy.store(false, Ordering::Relaxed);
    }

    /// Whether the latest request's body has not been read to its end.
    pub fn body_unread(&self) -> bool {
        self.unread_body.load(Ordering::Relaxed)
    }

    /// The connection closes after the answer while the client may still be sending
    /// (a request judged malformed, with more possibly behind it): it lingers.
    pub fn closing_on_error(&self) {
        self.unread_body.store(true, Ordering::Relaxed);
    }

    /// A tunnel opened on this connection (an HTTP/2 stream after an extended
    /// CONNECT): a response under way until [`Clock::request_finished`].
    pub fn tunnel_opened(&self) {
        self.last_write_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.phase.store(BUSY, Ordering::Relaxed);
    }

    /// A response body was fully sent or abandoned (or a tunnel closed).
    pub fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            if self.read_while_busy.swap(false, Ordering::Relaxed) {
                self.head_begun.store(true, Ordering::Relaxed);
                self.phase.store(HEAD, Ordering::Relaxed);
                self.set_deadline(self.header_timeout);
            } else {
                let now = self.now_ms();
                self.phase.store(IDLE, Ordering::Relaxed);
                self.idle_since_ms.store(now, Ordering::Relaxed);
                self.set_deadline_from(now, self.idle_timeout);
            }
        }
    }
}

/// Connections producing or sending a response right now, in the whole process: what
/// a graceful shutdown waits for.
static SENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Set once this process drains (a new one took its sockets over).
static DRAINING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on every HTTP/1 response ends its connection (`Connection: close`), so
/// clients move to the process that now accepts, between two requests rather than
/// in the middle of one.
pub fn start_draining() {
    DRAINING.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`start_draining`] was called.
pub fn draining() -> bool {
    DRAINING.load(std::sync::atomic::Ordering::Relaxed)
}

/// How many connections are producing or sending a response.
pub fn responses_in_flight() -> usize {
    SENDING.load(Ordering::Relaxed)
}

/// One connection's share of [`responses_in_flight`], kept by its driver: counted
/// while the driver sees a response under way, and no longer once the connection ends.
#[derive(Debug, Default)]
pub(super) struct Sending {
    counted: bool,
}

impl Sending {
    /// Records whether a response is under way; touches the shared count only when
    /// that changes.
    pub(super) fn set(&mut self, sending: bool) {
        if sending != self.counted {
            self.counted = sending;
            if sending {
                SENDING.fetch_add(1, Ordering::Relaxed);
            } else {
                SENDING.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.set(false);
    }
}
