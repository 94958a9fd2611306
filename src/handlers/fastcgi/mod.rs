//! FastCGI: scripts run by an application server over a socket — PHP's `php-fpm`
//! above all — with `handler = "fastcgi"` rules.
//!
//! The script is found as CGI's is, by the one resolver, but never by a prefix of
//! the path alone: the whole path names it, or the rule's `split-path` pattern (as
//! nginx's `fastcgi_split_path_info`) divides it into the script and `PATH_INFO`.
//! So `/uploads/photo.jpg/x.php` never runs `photo.jpg`. A path naming a folder runs
//! its `index` script. The body is received whole first, then sent as `STDIN`
//! records while the answer is read from `STDOUT` records and handled as CGI output
//! ([`crate::handlers::cgi::output`]); `STDERR` goes to wharf's stderr. Connections
//! are kept open for the next request (`FCGI_KEEP_CONN`) and pooled, for a few
//! seconds at most: each one holds a worker of the application.

pub mod records;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use self::records::kind;
use crate::fs::Root;
use crate::handlers::cgi::{self, meta, output, Cgi};
// The proxy's connection to an app server: TCP or a unix socket here (never TLS).
use crate::handlers::proxy::upstream::Stream;
use crate::handlers::spool::Spooled;
use crate::handlers::Request;
use crate::http::body::Body;
use crate::http::path::SitePath;
use crate::http::response;

/// How long connecting to the application may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests in flight to one application by default (see [`Route::new`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4;
/// The request id on every connection (one request at a time on each).
const REQUEST_ID: u16 = 1;
/// How long an unused connection to the application is kept open. Each holds one of
/// its workers (a php-fpm child serves one connection at a time), which its other
/// clients may be waiting for: another server, or this one after a reload. Under
/// load a connection is taken again long before.
const IDLE_KEEP: Duration = Duration::from_secs(5);

/// Where the application listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `unix:/run/php/php-fpm.sock`
    Unix(PathBuf),
    /// `tcp:127.0.0.1:9000`
    Tcp(String),
}

impl Address {
    /// Parses `unix:PATH` or `tcp:HOST:PORT`.
    pub fn parse(text: &str) -> Result<Address, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("{text:?}: the socket path is missing"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Some(host_port) = text.strip_prefix("tcp:") {
            let port = host_port.rsplit_once(':').and_then(|(h, p)| {
                (!h.is_empty()).then_some(())?;
                p.parse::<u16>().ok().filter(|p| *p > 0)
            });
            if port.is_none() {
                return Err(format!("{text:?}: expected tcp:HOST:PORT"));
            }
            return Ok(Address::Tcp(host_port.to_string()));
        }
        Err(format!(
            "{text:?}: expected unix:/path/to.sock or tcp:HOST:PORT"
        ))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Tcp(host_port) => write!(f, "tcp:{host_port}"),
        }
    }
}

/// One FastCGI rule: its application and options, and its idle connections.
pub struct Route {
    /// The application's socket.
    pub upstream: Address,
    /// The script that answers for a folder (`index.php`).
    pub index: Option<String>,
    /// Divides a path into the script and `PATH_INFO`: two capture groups.
    pub split_path: Option<regex::Regex>,
    /// Params added to (or replacing) the meta-variables.
    pub params: Vec<(String, String)>,
    /// Which file names are scripts (`*.php`): a path whose script is not one is a
    /// plain file, served as such and never handed to the application. `None`:
    /// every path goes to the application.
    pub scripts: Option<crate::handlers::cgi::ScriptPattern>,
    /// Largest request body; `None`: the server's (`--max-upload-size`).
    pub max_body: Option<u64>,
    /// Unused connections, and since when; the newest is taken first.
    idle: Mutex<Vec<(Stream, Instant)>>,
    /// Set while a task is due to close the connections unused for [`IDLE_KEEP`].
    reaping: AtomicBool,
    /// One per request in flight, so at most this many connections are open.
    slots: Arc<tokio::sync::Semaphore>,
    max_connections: usize,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("upstream", &self.upstream)
            .field("index", &self.index)
            .field("split_path", &self.split_path)
            .field("params", &self.params)
            .field("scripts", &self.scripts.is_some())
            .field("max_body", &self.max_body)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Route {
    /// A route to `upstream` with at most `max_connections` requests in flight.
    ///
    /// A kept-open connection holds one of the application's workers (a php-fpm
    /// child serves one connection at a time), so more open connections than it has
    /// workers would leave the extra ones queued behind idle ones: the limit should
    /// not exceed the pool's size (php-fpm's `pm.max_children`, 5 by default). Every
    /// request takes an idle connection before a new one is made, so the open
    /// connections never outnumber the requests in flight.
    pub fn new(upstream: Address, max_connections: usize) -> Route {
        let max_connections = max_connections.max(1);
        Route {
            upstream,
            index: None,
            split_path: None,
            params: Vec::new(),
            scripts: None,
            max_body: None,
            idle: Mutex::new(Vec::new()),
            reaping: AtomicBool::new(false),
            slots: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            max_connections,
        }
    }

    /// The most requests in flight to the application.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// An idle connection (unless `fresh`), or a new one; and whether it was reused.
    /// `once`: the request must not be lost on a connection the application closed,
    /// since it will not be sent again (see [`still_open`]).
    async fn connection(&self, fresh: bool, once: bool) -> io::Result<(Stream, bool)> {
        while let Some((stream, since)) = (!fresh)
            .then(|| self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop())
            .flatten()
        {
            // One the application has closed meanwhile (a php-fpm child that
            // served its `pm.max_requests`, a reload) is let go before a request
            // is lost on it: a request that is not safe to repeat is not repeated.
            if since.elapsed() < IDLE_KEEP && still_open(&stream, once) {
                return Ok((stream, true));
            }
        }
        let connect = async {
            match &self.upstream {
                Address::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
                Address::Tcp(host_port) => {
                    let stream = TcpStream::connect(host_port.as_str()).await?;
                    let _ = stream.set_nodelay(true);
                    Ok(Stream::Tcp(stream))
                }
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(stream) => Ok((stream?, false)),
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Closes every idle connection: one was found closed by the application (a
    /// restart or reload of php-fpm closes them all).
    fn forget_idle(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn put_back(self: &Arc<Self>, stream: Stream) {
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() >= self.max_connections {
                return;
            }
            idle.push((stream, Instant::now()));
        }
        if !self.reaping.swap(true, Ordering::AcqRel) {
            reap_idle(Arc::downgrade(self));
        }
    }

    /// Closes the connections unused for [`IDLE_KEEP`]; when the next one is due,
    /// or `None` when none is left.
    fn close_unused(&self) -> Option<Instant> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|(_, since)| since.elapsed() < IDLE_KEEP);
        let oldest = idle.iter().map(|(_, since)| *since).min();
        if oldest.is_none() {
            // Under the lock: a connection put back after this starts a new task.
            self.reaping.store(false, Ordering::Release);
        }
        oldest.map(|since| since + IDLE_KEEP)
    }

    /// Whether the file at `target`, which the script answering `asked` handed back
    /// (`X-Accel-Redirect`), may go out as a file: never one the application would
    /// run, whose source is not for clients — one the rule's `scripts` names, or
    /// without them one whose name ends as the answering script's does (`.php`).
    pub fn may_hand_back(&self, asked: &SitePath, target: &SitePath) -> bool {
        if self.scripts.is_some() {
            return !self.runs(target);
        }
        let extension = |name: &[u8]| {
            name.iter()
                .rposition(|&b| b == b'.')
                .map(|dot| name[dot..].to_ascii_lowercase())
        };
        let script = self
            .script_of(asked)
            .ok()
            .and_then(|(script, _)| script.split_last().map(|(_, name)| name.to_vec()));
        match (script, target.file_name()) {
            (Some(script), Some(name)) => match (extension(&script), extension(name)) {
                (Some(runs), Some(handed)) => runs != handed,
                _ => script != name,
            },
            _ => true,
        }
    }

    /// Whether the application answers `path`: its script is named as the rule's
    /// `scripts` says (or the rule names none).
    pub fn runs(&self, path: &SitePath) -> bool {
        let Some(scripts) = &self.scripts else {
            return true;
        };
        match self.script_of(path) {
            Ok((script, _)) => script
                .split_last()
                .is_some_and(|(_, name)| scripts(&String::from_utf8_lossy(name))),
            // Its error is the application route's to give.
            Err(_) => true,
        }
    }

    /// The script `path` names, and its `PATH_INFO`: split by `split-path` when it
    /// matches, a folder's `index` appended.
    fn script_of(&self, path: &SitePath) -> Result<(SitePath, Vec<u8>), StatusCode> {
        let mut script = path.clone();
        let mut path_info = Vec::new();
        if let Some(split) = &self.split_path {
            let decoded = path.rule_path();
            if let Some(caps) = split.captures(&decoded) {
                let (Some(name), Some(info)) = (caps.get(1), caps.get(2)) else {
                    return Err(StatusCode::NOT_FOUND);
                };
                script = SitePath::parse(&crate::http::path::encode_path(name.as_str()), true)
                    .map_err(|_| StatusCode::NOT_FOUND)?;
                path_info = info.as_str().as_bytes().to_vec();
            }
        }
        if path_info.is_empty() && (script.has_trailing_slash() || script.is_root()) {
            let index = self.index.as_deref().ok_or(StatusCode::FORBIDDEN)?;
            script = script.join(index.as_bytes());
        }
        Ok((script, path_info))
    }
}

/// How the request reaches the application.
enum Link {
    /// Written whole before the answer is read (no body, or a small one).
    Whole(Stream),
    /// A large body still being written by a task while the answer is read; the
    /// task gives the writing half back.
    Split(
        tokio::io::ReadHalf<Stream>,
        Option<tokio::task::JoinHandle<io::Result<tokio::io::WriteHalf<Stream>>>>,
    ),
}

/// The application's `STDOUT`, record by record; `STDERR` is copied to wharf's on
/// the way. At `END_REQUEST` the connection goes back to the route's pool; dropped
/// before that, it is closed (the application sees the request abandoned).
/// Reading is cancel-safe: what has arrived waits in `buf` until a whole record is
/// there.
struct Answer {
    link: Option<Link>,
    buf: BytesMut,
    route: Arc<Route>,
    /// A `STDOUT` piece read before the answer was handed on.
    first: Option<Bytes>,
    name: Arc<Label>,
    /// Bytes of `STDERR` still to be copied to wharf's for this request.
    stderr_left: usize,
    /// This request's place among those in flight, given back when it ends.
    _slot: Arc<tokio::sync::OwnedSemaphorePermit>,
}

/// `STDERR` copied to wharf's per request; the rest is dropped (and said so once).
const STDERR_PER_REQUEST: usize = 64 * 1024;

/// `FCGI_OVERLOADED`: the application refused the request for lack of resources.
const OVERLOADED: u8 = 2;

impl Answer {
    /// The next record's type and content.
    async fn record(&mut self) -> io::Result<(u8, Bytes)> {
        loop {
            if let Some(record) = records::take(&mut self.buf, REQUEST_ID)? {
                return Ok(record);
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            let read = match self.link.as_mut() {
                Some(Link::Whole(stream)) => stream.read_buf(&mut self.buf).await?,
                Some(Link::Split(reader, _)) => reader.read_buf(&mut self.buf).await?,
                None => return Err(io::Error::other("the answer has ended")),
            };
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The request is over: the connection is reused when the request completed,
    /// the body was all sent and nothing more arrived.
    async fn finish(&mut self, status: Option<u8>) {
        let Some(link) = self.link.take() else { return };
        if status != Some(0) || !self.buf.is_empty() {
            return;
        }
        match link {
            Link::Whole(stream) => self.route.put_back(stream),
            // An application may answer without reading all of a large body: then
            // the writer is stuck and the connection is not reusable.
            Link::Split(reader, Some(writer)) if writer.is_finished() => {
                if let Ok(Ok(writer)) = writer.await {
                    self.route.put_back(reader.unsplit(writer));
                }
            }
            Link::Split(_, Some(writer)) => writer.abort(),
            Link::Split(_, None) => {}
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(Link::Split(_, Some(writer))) = self.link.take() {
            writer.abort();
        }
    }
}

impl output::Output for Answer {
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        loop {
            if self.link.is_none() {
                return Ok(None);
            }
            let (kind, content) = self.record().await?;
            match kind {
                kind::STDOUT if !content.is_empty() => return Ok(Some(content)),
                kind::STDERR => {
                    if self.stderr_left == 0 {
                        continue;
                    }
                    let shown = content.len().min(self.stderr_left);
                    self.stderr_left -= shown;
                    for line in content[..shown].split(|&b| b == b'\n') {
                        if !line.is_empty() {
                            crate::handlers::cgi::process::log_line(&self.name.to_string(), line);
                        }
                    }
                    if self.stderr_left == 0 {
                        crate::handlers::cgi::process::log_line(
                            &self.name.to_string(),
                            b"(more STDERR for this request is not shown)",
                        );
                    }
                }
                kind::END_REQUEST => {
                    let status = records::end_request_status(&content);
                    if status == Some(OVERLOADED) {
                        self.finish(status).await;
                        return Err(io::Error::new(
                            io::ErrorKind::ResourceBusy,
                            "the application is overloaded",
                        ));
                    }
                    self.finish(status).await;
                    return Ok(None);
                }
                // The empty STDOUT that ends the stream, and record types a
                // Responder's client has no use for.
                _ => {}
            }
        }
    }
}

/// Names a request's script and its application in log lines. The text is only
/// made when a line is written, not for every request.
struct Label {
    filename: PathBuf,
    route: Arc<Route>,
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.filename.display(), self.route.upstream)
    }
}

/// As a quoted, escaped string, the way log lines show a CGI program's name.
impl std::fmt::Debug for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.to_string(), f)
    }
}

/// The whole of a request without a large body, in one buffer.
fn whole_request(params: &[u8], body: Option<&Bytes>) -> BytesMut {
    let mut out = BytesMut::with_capacity(params.len() + 64 + body.map_or(0, |b| b.len() + 64));
    records::put_begin(&mut out, REQUEST_ID);
    records::put_params(&mut out, REQUEST_ID, params);
    if let Some(body) = body {
        records::put_stream(&mut out, kind::STDIN, REQUEST_ID, body);
    }
    records::put_record(&mut out, kind::STDIN, REQUEST_ID, &[]);
    out
}

/// Sends the request, then `STDIN` in pieces as the application takes it.
async fn send(
    mut writer: tokio::io::WriteHalf<Stream>,
    params: Bytes,
    body: Option<Arc<Spooled>>,
) -> io::Result<tokio::io::WriteHalf<Stream>> {
    let mut out = BytesMut::with_capacity(4096);
    records::put_begin(&mut out, REQUEST_ID);
    records::put_params(&mut out, REQUEST_ID, &params);
    if let Some(body) = body {
        let mut offset = 0;
        while offset < body.len() {
            let piece = body.piece(offset).await?;
            if piece.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            offset += piece.len() as u64;
            records::put_stream(&mut out, kind::STDIN, REQUEST_ID, &piece);
            writer.write_all(&out).await?;
            out.clear();
        }
    }
    records::put_record(&mut out, kind::STDIN, REQUEST_ID, &[]);
    writer.write_all(&out).await?;
    writer.flush().await?;
    Ok(writer)
}

/// Answers `req` with the application behind `route`, taking a request body of
/// at most `max_body`.
pub async fn respond(
    cgi: &Cgi,
    route: &Arc<Route>,
    (root, hidden): (&Arc<Root>, bool),
    max_body: u64,
    mut req: Request<'_>,
) -> Response<Body> {
    let (script_path, path_info) = match route.script_of(&req.path) {
        Ok(found) => found,
        Err(status) => return response::error(status),
    };
    // The whole script path must name the script: never a shorter prefix.
    let filename = match cgi.find(root, &script_path, hidden) {
        Ok(found) if found.path_info.is_empty() => found.filename.clone(),
        Ok(_) => return response::error(StatusCode::NOT_FOUND),
        Err(status) => return response::error(status),
    };
    let timeout = cgi.timeout();
    let body = match cgi::receive_body(&mut req, max_body, timeout).await {
        Ok(body) => body.map(Arc::new),
        Err(res) => return res,
    };
    let script = meta::Script {
        name: script_path.rule_path(),
        path_info,
        filename: &filename,
    };
    let exchange = cgi::exchange(&req, root, body.as_deref());
    // The meta-variables, then the rule's params (which replace any of the same
    // name), encoded as they are made.
    let mut encoded = BytesMut::with_capacity(1024);
    let configured = |name: &str| route.params.iter().any(|(n, _)| n == name);
    meta::write_meta_variables(req.head, &script, exchange, &mut |name, value| {
        if !configured(name) {
            records::put_pair(&mut encoded, name, value);
        }
    });
    // PHP built with force-cgi-redirect wants this; nginx's fastcgi_params sends it.
    if !configured("REDIRECT_STATUS") {
        records::put_pair(&mut encoded, "REDIRECT_STATUS", b"200");
    }
    for (name, value) in &route.params {
        records::put_pair(&mut encoded, name, value.as_bytes());
    }
    let params = encoded.freeze();
    let name = Arc::new(Label {
        filename,
        route: Arc::clone(route),
    });
    let free = Arc::clone(&route.slots).try_acquire_owned().ok();
    let slot = match free {
        Some(slot) => Arc::new(slot),
        None => match tokio::time::timeout(timeout, Arc::clone(&route.slots).acquire_owned()).await
        {
            Ok(Ok(slot)) => Arc::new(slot),
            _ => {
                tracing::warn!(
                    "{name}: {} requests in flight for {timeout:?}",
                    route.max_connections
                );
                return cgi::busy();
            }
        },
    };
    // A pooled connection the application has closed since fails at once: the
    // request is sent again on a new one, and the other idle ones are let go (the
    // application closed them too, if it restarted).
    for attempt in 0..2 {
        if attempt > 0 {
            route.forget_idle();
        }
        let once = !req.head.method.is_idempotent();
        let (stream, reused) = match route.connection(attempt > 0, once).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("FastCGI application {} unreachable: {e}", route.upstream);
                return response::error(StatusCode::BAD_GATEWAY);
            }
        };
        let in_memory = match body.as_deref() {
            None => Some(None),
            Some(Spooled::Memory(bytes)) => Some(Some(bytes)),
            Some(Spooled::File(..)) => None,
        };
        let link = match in_memory {
            Some(small) => {
                let mut stream = stream;
                let out = whole_request(&params, small);
                match stream.write_all(&out).await {
                    Ok(()) => Link::Whole(stream),
                    Err(e) if reused && attempt == 0 && is_stale(&e) => continue,
                    Err(e) => {
                        tracing::warn!("{name}: {e}");
                        return response::error(StatusCode::BAD_GATEWAY);
                    }
                }
            }
            None => {
                let (reader, writer) = tokio::io::split(stream);
                let writer = tokio::spawn(send(writer, params.clone(), body.clone()));
                Link::Split(reader, Some(writer))
            }
        };
        let mut answer = Answer {
            link: Some(link),
            buf: BytesMut::with_capacity(16 * 1024),
            route: Arc::clone(route),
            first: None,
            name: Arc::clone(&name),
            stderr_left: STDERR_PER_REQUEST,
            _slot: Arc::clone(&slot),
        };
        let first = tokio::time::timeout(timeout, output::Output::next(&mut answer)).await;
        match first {
            Err(_) => {
                tracing::warn!("{name}: no answer within {timeout:?}");
                return response::error(StatusCode::GATEWAY_TIMEOUT);
            }
            // Nothing came back on a kept connection: it was closed while idle, or
            // the worker died on this request; only a request that is safe to run
            // twice is sent again.
            Ok(Err(e))
                if reused && attempt == 0 && is_stale(&e) && req.head.method.is_idempotent() =>
            {
                continue
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ResourceBusy => {
                tracing::warn!("{name}: {e}");
                return crate::handlers::cgi::busy();
            }
            Ok(Err(e)) => {
                tracing::warn!("{name}: {e}");
                return response::error(StatusCode::BAD_GATEWAY);
            }
            Ok(Ok(first)) => {
                answer.first = first;
                let head_request = req.head.method == http::Method::HEAD;
                let waits = (timeout, req.client);
                return output::respond(answer, output::Framing::Cgi, head_request, waits, &*name)
                    .await;
            }
        }
    }
    response::error(StatusCode::BAD_GATEWAY)
}

/// Closes `route`'s unused connections as they pass [`IDLE_KEEP`], until none is
/// left or the route is gone (a reload drops it, and its connections with it).
fn reap_idle(route: Weak<Route>) {
    tokio::spawn(async move {
        let mut due = Instant::now() + IDLE_KEEP;
        loop {
            tokio::time::sleep_until(due.into()).await;
            let Some(route) = route.upgrade() else { return };
            match route.close_unused() {
                Some(next) => due = next,
                None => return,
            }
        }
    });
}

/// Whether an unused connection is still open: nothing to read, not even its end.
/// (An idle FastCGI connection has nothing to say; anything it does say, or an
/// error, makes it unusable.)
///
/// For a request that is sent `once` (not idempotent) the socket is always asked,
/// with a non-blocking `MSG_PEEK`. For the others, which are sent again on a new
/// connection if this one turns out closed, it is asked only when the event loop
/// has heard of something on it since its last read came up short (its end, once
/// reported, stays reported): no system call per request on a live connection.
/// That word can lag: the close may not have been read from the socket's event
/// loop yet, which may be another worker's.
fn still_open(stream: &Stream, once: bool) -> bool {
    use rustix::net::RecvFlags;
    use std::os::fd::{AsFd, BorrowedFd};
    use tokio::io::Interest;
    fn peek(fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut byte = [0u8; 1];
        match rustix::net::recv(fd, &mut byte[..], RecvFlags::PEEK | RecvFlags::DONTWAIT) {
            // Nothing there: the readiness was stale, and is cleared.
            Err(rustix::io::Errno::AGAIN) => Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => Err(e.into()),
            // Its end, or bytes nobody asked for.
            Ok(_) => Ok(()),
        }
    }
    let heard = match stream {
        Stream::Tcp(s) if once => peek(s.as_fd()),
        Stream::Unix(s) if once => peek(s.as_fd()),
        Stream::Tcp(s) => s.try_io(Interest::READABLE, || peek(s.as_fd())),
        Stream::Unix(s) => s.try_io(Interest::READABLE, || peek(s.as_fd())),
        Stream::Tls(_) => return true,
    };
    matches!(heard, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Whether `e` is what a connection the other side closed while idle gives.
fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}
