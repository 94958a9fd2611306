//! One line per request on stdout, in Common, Combined or JSON format.
//!
//! Lines are formatted on the connection's task and written by one dedicated thread,
//! so a slow terminal or pipe never blocks request handling. When stdout falls so far
//! behind that the (bounded) queue is full, lines are dropped and counted, and the
//! count is reported on stderr: a stuck reader of stdout (a pipe nobody drains) costs
//! log lines, never the server's availability. A worker's event loop collects its
//! lines and hands them to the writer in batches, when it is about to wait for events or when a batch fills: waking the
//! writer for every line cost more than serving a small file. Every byte that came
//! from the client is escaped before it is written: a request can never put a control
//! sequence on the operator's terminal.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{Method, Version};

/// How many messages (lines, or batches of up to [`BATCH_BYTES`]) may wait for the
/// writer before further lines are dropped: at most 32 MiB of lines when stdout is
/// stuck.
const QUEUE: usize = 1024;
/// Bytes of lines an event loop collects before it hands them to the writer anyway.
const BATCH_BYTES: usize = 32 * 1024;

thread_local! {
    /// Lines formatted on this thread and not yet handed to the writer; `None` on
    /// threads that do not batch (see [`AccessLog::batch_on_this_thread`]).
    static PENDING: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The access-log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// NCSA Common Log Format.
    Common,
    /// Common plus Referer and User-Agent (nginx's and Apache's default).
    Combined,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// What is logged about one exchange.
#[derive(Debug, Clone)]
pub struct Record {
    /// The client's address.
    pub remote: IpAddr,
    /// When the request arrived.
    pub time: SystemTime,
    /// The request method.
    pub method: Method,
    /// The request target as received.
    pub target: String,
    /// The protocol version.
    pub version: Version,
    /// The response status.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// The Referer header, raw.
    pub referer: Option<Vec<u8>>,
    /// The User-Agent header, raw.
    pub user_agent: Option<Vec<u8>>,
    /// The user the request authenticated as (HTTP Basic), as the client sent the
    /// name; never the password.
    pub user: Option<String>,
    /// The app server a proxied request went to, and how long its response head
    /// took once the request was sent.
    pub upstream: Option<(std::sync::Arc<str>, Duration)>,
    /// Time from request to the end of the response.
    pub duration: Duration,
    /// False when the client went away before the body was sent.
    pub complete: bool,
}

enum Message {
    Line(String),
    Flush(SyncSender<()>),
}

/// The access log sink. Cheap to share; a quiet log formats nothing.
#[derive(Debug, Clone)]
pub struct AccessLog {
    format: LogFormat,
    /// Whether request heads are printed to stderr (`--verbose`).
    verbose: bool,
    tx: Option<SyncSender<Message>>,
    /// Lines dropped because the queue was full and not yet reported.
    dropped: Arc<AtomicU64>,
    /// Lines dropped since the start.
    dropped_total: Arc<AtomicU64>,
}

impl AccessLog {
    /// A log that writes to stdout from a background thread.
    pub fn stdout(format: LogFormat) -> AccessLog {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let dropped_total = Arc::new(AtomicU64::new(0));
        let counters = Dropped {
            unreported: Arc::clone(&dropped),
            total: Arc::clone(&dropped_total),
        };
        std::thread::Builder::new()
            .name("wharf-access-log".into())
            .spawn(move || write_lines(rx, io::stdout(), &counters))
            .map(|_| AccessLog {
                format,
                verbose: false,
                tx: Some(tx),
                dropped,
                dropped_total,
            })
            .unwrap_or_else(|e| {
                tracing::error!("cannot start the access-log thread, logging disabled: {e}");
                AccessLog::quiet()
            })
    }

    /// Lines dropped since the start (the queue was full).
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// A log that discards everything (`--quiet`).
    pub fn quiet() -> AccessLog {
        AccessLog {
            format: LogFormat::Combined,
            verbose: false,
            tx: None,
            dropped: Arc::default(),
            dropped_total: Arc::default(),
        }
    }

    /// This log, printing request heads to stderr as well when `verbose`.
    pub fn with_verbose(mut self, verbose: bool) -> AccessLog {
        self.verbose = verbose;
        self
    }

    /// Whether request heads are printed (`--verbose`).
    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// Whether records are wanted at all (lets callers skip building them).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one record.
    pub fn log(&self, record: &Record) {
        self.emit(|out| format_record_into(out, self.format, record));
    }

    /// Logs a request that could not be parsed (hyper answered it before it became a
    /// request, or its head did not arrive in time): the request is shown as `"-"`,
    /// as nginx does; `bytes` of body were sent.
    pub fn log_rejected(&self, remote: IpAddr, status: u16, bytes: u64) {
        self.emit(|out| {
            format_rejected_into(out, self.format, remote, SystemTime::now(), status, bytes)
        });
    }

    /// Makes the calling thread collect its lines instead of handing each to the
    /// writer. The thread must then call [`AccessLog::hand_over`] whenever it goes idle
    /// (an event loop does, before it waits for events) and before it ends.
    pub fn batch_on_this_thread(&self) {
        if self.tx.is_some() {
            PENDING.with(|p| *p.borrow_mut() = Some(String::with_capacity(BATCH_BYTES)));
        }
    }

    /// Hands the lines this thread collected to the writer.
    pub fn hand_over(&self) {
        let batch = PENDING.with(|p| {
            p.borrow_mut()
                .as_mut()
                .filter(|buf| !buf.is_empty())
                .map(|buf| std::mem::replace(buf, String::with_capacity(BATCH_BYTES)))
        });
        if let Some(batch) = batch {
            self.send(Message::Line(batch));
        }
    }

    /// Formats one line, into this thread's batch or as a message of its own.
    fn emit(&self, format: impl FnOnce(&mut String)) {
        if self.tx.is_none() {
            return;
        }
        let mut format = Some(format);
        let full = PENDING.with(|p| {
            let mut pending = p.borrow_mut();
            let buf = pending.as_mut()?;
            (format.take()?)(buf);
            (buf.len() >= BATCH_BYTES)
                .then(|| std::mem::replace(buf, String::with_capacity(BATCH_BYTES)))
        });
        if let Some(format) = format {
            let mut line = String::with_capacity(192);
            format(&mut line);
            self.send(Message::Line(line));
        } else if let Some(batch) = full {
            self.send(Message::Line(batch));
        }
    }

    /// Queues a message, or counts its lines as dropped when the queue is full: an
    /// event loop must not wait for whoever reads stdout.
    fn send(&self, msg: Message) {
        let Some(tx) = &self.tx else { return };
        if let Err(TrySendError::Full(Message::Line(lines))) = tx.try_send(msg) {
            let n = lines.bytes().filter(|&b| b == b'\n').count();
            let unreported = self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            self.dropped_total.fetch_add(n as u64, Ordering::Relaxed);
            // Said when it starts, not only once stdout moves again (which a reader
            // that is gone never does); how many is said then, or at exit.
            if unreported == 0 && !stderr_is_stdout() {
                tracing::warn!(
                    "access log lines are being dropped: stdout is not being read fast enough"
                );
            }
        }
    }

    /// Waits (up to `timeout`) until every queued line has been written; says on
    /// stderr how many lines were dropped and not yet reported, unless stderr is the
    /// very pipe that stopped taking lines (the report would never finish).
    pub fn flush(&self, timeout: Duration) {
        let Some(tx) = &self.tx else { return };
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let mut flush = Message::Flush(ack_tx);
        // The queue may be full of lines for a stdout that is not being read.
        let flushed = loop {
            match tx.try_send(flush) {
                Ok(()) => {
                    break ack_rx
                        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                        .is_ok();
                }
                Err(TrySendError::Full(msg)) if Instant::now() < deadline => {
                    flush = msg;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => break false,
            }
        };
        if flushed || !stderr_is_stdout() {
            report_dropped(&self.dropped);
        }
    }
}

/// Says on stderr how many lines were dropped since the last report; whether any were.
fn report_dropped(dropped: &AtomicU64) -> bool {
    let n = dropped.swap(0, Ordering::Relaxed);
    if n > 0 {
        tracing::warn!("{n} access log lines dropped: stdout was not being read fast enough");
    }
    n > 0
}

/// Whether stderr and stdout are the same file or pipe (`2>&1`).
fn stderr_is_stdout() -> bool {
    let id = |fd: std::os::fd::BorrowedFd<'_>| {
        rustix::fs::fstat(fd).ok().map(|st| (st.st_dev, st.st_ino))
    };
    let (out, err) = (id(io::stdout().as_fd()), id(io::stderr().as_fd()));
    out.is_none() || out == err
}

/// The least time between two reports of dropped lines from the writer.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);

/// The writer's share of the log's counts of dropped lines.
struct Dropped {
    /// Not yet said on stderr.
    unreported: Arc<AtomicU64>,
    /// Since the start.
    total: Arc<AtomicU64>,
}

/// Writes each batch of lines as it comes; a batch stdout does not take (a reader
/// gone, a full disk) is counted as dropped and said on stderr, as lines dropped
/// for a slow reader are.
fn write_lines(rx: Receiver<Message>, mut out: impl Write, dropped: &Dropped) {
    let mut last_report: Option<Instant> = None;
    let mut failing = false;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Message::Line(lines) => match out.write_all(lines.as_bytes()) {
                    Ok(()) => failing = false,
                    Err(e) => {
                        let n = lines.bytes().filter(|&b| b == b'\n').count() as u64;
                        dropped.unreported.fetch_add(n, Ordering::Relaxed);
                        dropped.total.fetch_add(n, Ordering::Relaxed);
                        // Said when it starts; how many, as below.
                        if !failing && !stderr_is_stdout() {
                            tracing::warn!("access log lines cannot be written to stdout: {e}");
                        }
                        failing = true;
                    }
                },
                Message::Flush(ack) => {
                    let _ = out.flush();
                    let _ = ack.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
        // Stdout moves again, or keeps failing: say what was lost, at most every
        // few seconds.
        if last_report.is_none_or(|t| t.elapsed() >= DROP_REPORT_EVERY)
            && report_dropped(&dropped.unreported)
        {
            last_report = Some(Instant::now());
        }
    }
}

/// Formats a record as one line, newline included.
pub fn format_record(format: LogFormat, r: &Record) -> String {
    let mut line = String::with_capacity(192);
    format_record_into(&mut line, format, r);
    line
}

/// Appends a record's line, newline included, to `out`.
pub fn format_record_into(out: &mut String, format: LogFormat, r: &Record) {
    match format {
        LogFormat::Common | LogFormat::Combined => {
            let _ = write!(out, "{} - ", r.remote);
            match r.user.as_deref().filter(|u| !u.is_empty()) {
                // A space would split the field: escaped like the other controls.
                Some(user) => {
                    for chunk in user.as_bytes().split_inclusive(|&b| b == b' ') {
                        match chunk.split_last() {
                            Some((b' ', rest)) => {
                                escape_into(out, rest);
                                out.push_str("\\x20");
                            }
                            _ => escape_into(out, chunk),
                        }
                    }
                }
                None => out.push('-'),
            }
            out.push_str(" [");
            push_clf_time(out, r.time);
            out.push_str("] \"");
            escape_into(out, r.method.as_str().as_bytes());
            out.push(' ');
            escape_into(out, r.target.as_bytes());
            let _ = write!(out, " {:?}\" {} {}", r.version, r.status, r.bytes);
            if format == LogFormat::Combined {
                for field in [&r.referer, &r.user_agent] {
                    out.push_str(" \"");
                    match field {
                        Some(value) => escape_into(out, value),
                        None => out.push('-'),
                    }
                    out.push('"');
                }
            }
        }
        // JSON strings carry the values themselves: serde_json escapes quotes,
        // backslashes and C0 controls; DEL and C1 controls (U+009B is a one-character
        // CSI to some terminals), which it would write raw, bidirectional controls
        // (U+202E shows the rest of a line reversed) and bytes that are not UTF-8
        // become U+FFFD. No escape sequence reaches a terminal.
        LogFormat::Json => {
            let text = |bytes: &[u8]| -> String {
                String::from_utf8_lossy(bytes)
                    .chars()
                    .map(|c| match c {
                        '\u{7f}'..='\u{9f}' => '\u{fffd}',
                        c if is_bidi_control(c) => '\u{fffd}',
                        c => c,
                    })
                    .collect()
            };
            let value = serde_json::json!({
                "time": humantime::format_rfc3339_millis(r.time).to_string(),
                "remote": r.remote.to_string(),
                "method": text(r.method.as_str().as_bytes()),
                "target": text(r.target.as_bytes()),
                "version": format!("{:?}", r.version),
                "status": r.status,
                "bytes": r.bytes,
                "referer": r.referer.as_deref().map(text),
                "user_agent": r.user_agent.as_deref().map(text),
                "user": r.user.as_deref().map(|u| text(u.as_bytes())),
                "upstream": r.upstream.as_ref().map(|(addr, _)| text(addr.as_bytes())),
                "upstream_ms": r.upstream.as_ref().map(|(_, t)| millis(*t)),
                "duration_ms": millis(r.duration),
                "complete": r.complete,
            });
            let _ = write!(out, "{value}");
        }
    }
    out.push('\n');
}

/// Milliseconds to the microsecond (`1.234`, not `1.2345678900000001`).
fn millis(d: std::time::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// Characters that reorder how the text after them is shown (RFC 9839's
/// "problematic" class has them too): a log line must read as it is.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}')
}

/// A line for a request that never parsed: no request line, no headers.
pub fn format_rejected(
    format: LogFormat,
    remote: IpAddr,
    time: SystemTime,
    status: u16,
    bytes: u64,
) -> String {
    let mut line = String::with_capacity(96);
    format_rejected_into(&mut line, format, remote, time, status, bytes);
    line
}

fn format_rejected_into(
    out: &mut String,
    format: LogFormat,
    remote: IpAddr,
    time: SystemTime,
    status: u16,
    bytes: u64,
) {
    match format {
        LogFormat::Json => {
            let value = serde_json::json!({
                "time": humantime::format_rfc3339_millis(time).to_string(),
                "remote": remote.to_string(),
                "method": null,
                "target": null,
                "version": null,
                "status": status,
                "bytes": bytes,
                "referer": null,
                "user_agent": null,
                "user": null,
                "upstream": null,
                "upstream_ms": null,
                "duration_ms": null,
                "complete": true,
            });
            let _ = write!(out, "{value}");
        }
        LogFormat::Common | LogFormat::Combined => {
            let _ = write!(out, "{remote} - - [");
            push_clf_time(out, time);
            let _ = write!(out, "] \"-\" {status} {bytes}");
            if format == LogFormat::Combined {
                out.push_str(" \"-\" \"-\"");
            }
        }
    }
    out.push('\n');
}

/// Escapes client bytes for a log line: printable ASCII stays, `"` and `\` are
/// backslash-escaped, and every other byte (controls, DEL, non-ASCII) becomes `\xHH`,
/// as nginx does.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    escape_into(&mut out, bytes);
    out
}

/// [`escape`], appending to `out`.
fn escape_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02X}");
            }
        }
    }
}

/// Appends [`clf_time`] of `time`, formatted once per second per thread.
fn push_clf_time(out: &mut String, time: SystemTime) {
    thread_local! {
        static LAST: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, clf_time(time));
        }
        out.push_str(&last.1);
    });
}

/// `[10/Oct/2000:13:55:36 +0000]`-style time, always in UTC.
fn clf_time(time: SystemTime) -> String {
    // RFC 3339 in UTC: "2000-10-10T13:55:36Z".
    let iso = humantime::format_rfc3339_seconds(time).to_string();
    let (date, clock) = match iso.split_once('T') {
        Some(parts) => parts,
        None => return iso,
    };
    let mut ymd = date.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (ymd.next(), ymd.next(), ymd.next()) else {
        return iso;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = m
        .parse::<usize>()
        .ok()
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)))
        .unwrap_or(&"???");
    format!("{d}/{month}/{y}:{} +0000", clock.trim_end_matches('Z'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            remote: "127.0.0.1".parse().unwrap(),
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(971_186_136),
            method: Method::GET,
            target: "/a%1b[31m\u{1b}\"x".into(),
            version: Version::HTTP_11,
            status: 200,
            bytes: 42,
            referer: None,
            user_agent: Some(b"curl/8\x1b[0m \xff".to_vec()),
            user: None,
            upstream: None,
            duration: Duration::from_millis(3),
            complete: true,
        }
    }

    #[test]
    fn combined_line_escapes_client_bytes() {
        let line = format_record(LogFormat::Combined, &record());
        assert_eq!(
            line,
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /a%1b[31m\\x1B\\\"x HTTP/1.1\" 200 42 \"-\" \"curl/8\\x1B[0m \\xFF\"\n"
        );
        assert!(!line.bytes().any(|b| b < 0x20 && b != b'\n'));
    }

    #[test]
    fn the_user_field_is_the_escaped_user_or_a_dash() {
        let line = format_record(LogFormat::Common, &record());
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        let named = Record {
            user: Some("al ice\u{1b}\"".into()),
            ..record()
        };
        let line = format_record(LogFormat::Combined, &named);
        assert!(
            line.starts_with("127.0.0.1 - al\\x20ice\\x1B\\\" ["),
            "{line}"
        );
        let v: serde_json::Value =
            serde_json::from_str(format_record(LogFormat::Json, &named).trim_end()).unwrap();
        assert_eq!(v["user"], "al ice\u{1b}\"");
        let v: serde_json::Value =
            serde_json::from_str(format_record(LogFormat::Json, &record()).trim_end()).unwrap();
        assert!(v["user"].is_null());
    }

    #[test]
    fn common_line_has_no_referer_or_agent() {
        let line = format_record(LogFormat::Common, &record());
        assert!(line.ends_with("HTTP/1.1\" 200 42\n"), "{line}");
    }

    #[test]
    fn rejected_requests_have_a_dash_for_the_request() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(971_186_136);
        let ip = "127.0.0.1".parse().unwrap();
        assert_eq!(
            format_rejected(LogFormat::Combined, ip, t, 400, 0),
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"-\" 400 0 \"-\" \"-\"\n"
        );
        let v: serde_json::Value =
            serde_json::from_str(format_rejected(LogFormat::Json, ip, t, 431, 0).trim_end())
                .unwrap();
        assert_eq!(v["status"], 431);
        // The same fields as any other line, so that a log reader needs one schema.
        let full: serde_json::Value =
            serde_json::from_str(format_record(LogFormat::Json, &record()).trim_end()).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(keys(&v), keys(&full));
    }

    #[test]
    fn json_line_is_one_escaped_object() {
        let line = format_record(LogFormat::Json, &record());
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["target"], "/a%1b[31m\u{1b}\"x");
        assert_eq!(v["user_agent"], "curl/8\u{1b}[0m \u{fffd}");
        assert!(!line.trim_end().contains('\n') && !line.contains('\u{1b}'));
        let csi = Record {
            user_agent: Some("a\u{9b}31m\u{7f}".as_bytes().to_vec()),
            ..record()
        };
        let line = format_record(LogFormat::Json, &csi);
        assert!(
            !line.contains('\u{9b}') && !line.contains('\u{7f}'),
            "{line:?}"
        );
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["user_agent"], "a\u{fffd}31m\u{fffd}");
        let reversed = Record {
            user_agent: Some("a\u{202e}gpj.exe".as_bytes().to_vec()),
            duration: Duration::from_nanos(1_234_567_891),
            ..record()
        };
        let line = format_record(LogFormat::Json, &reversed);
        assert!(!line.contains('\u{202e}'), "{line:?}");
        assert!(line.contains("\"duration_ms\":1234.567,"), "{line:?}");
    }
}
