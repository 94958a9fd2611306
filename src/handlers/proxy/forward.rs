//! One proxied exchange: the request re-built for the upstream, sent (and tried on
//! another upstream when no connection could be made), and the response brought
//! back with its hop-by-hop fields removed.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body as _, Frame, SizeHint};

use super::cache::fill::Filling;
use super::upstream::host_of;
use super::websocket;
use super::Route;
use crate::handlers::handed_file;
use crate::handlers::spool::{spool, Spooled};
use crate::handlers::Request as Incoming;
use crate::http::body::{Body, FileRange, Segment};
use crate::http::request_body::RequestBody;
use crate::http::response;

/// `exchange`'s outcome, or `Err` when the upstream was silent for `timeout`: no
/// response head within it of the request's body going out whole, or, while a
/// streamed body goes out, no piece of it taken for that long (nginx's
/// `proxy_send_timeout`). A body waiting on its client holds the clock: a slow
/// upload is not the app's delay (the connection's own timeouts watch a client
/// that stalls).
async fn answered_in_time<F: std::future::Future>(
    exchange: F,
    timeout: std::time::Duration,
    streamed: Option<&BodyWatch>,
) -> Result<F::Output, TimedOut> {
    let Some(watch) = streamed else {
        return tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| TimedOut);
    };
    let mut exchange = std::pin::pin!(exchange);
    loop {
        let now = tokio::time::Instant::now();
        let deadline = watch.silent_since(now) + timeout;
        if deadline <= now {
            return Err(TimedOut);
        }
        if let Ok(out) = tokio::time::timeout_at(deadline, &mut exchange).await {
            return Ok(out);
        }
    }
}

/// The upstream did not answer in time.
#[derive(Debug)]
struct TimedOut;

/// What `Via` says: the protocol the message came in with (RFC 9110 §7.6.3), and
/// wharf.
fn via(received: Version) -> HeaderValue {
    HeaderValue::from_static(match received {
        Version::HTTP_09 => "0.9 wharf",
        Version::HTTP_10 => "1.0 wharf",
        Version::HTTP_2 => "2 wharf",
        Version::HTTP_3 => "3 wharf",
        _ => "1.1 wharf",
    })
}

// The forwarding fields wharf writes, named once: a name looked up as text is
// parsed again on every use.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(super) const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
/// The most fields a header map is made with room for in advance; more grow it.
pub(super) const ROOM_HINT: usize = 256;
/// Bodies up to this size are read whole before the response starts.
const SMALL_BODY: u64 = 64 * 1024;
/// Chunks of a response in flight between the buffer and the client's connection
/// (which queues a few more itself): few, since each is up to 64 KiB.
const RESPONSE_CHUNKS: usize = 2;
/// How long a streamed request body may pause (when not buffered).
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// A request body on its way to an upstream.
pub enum ProxyBody {
    /// Received whole before (memory or file): can be sent again.
    Whole(Body),
    /// Passed through as it arrives (`buffer-request = false`).
    Stream(Capped),
}

/// A request body passed through as it arrives, cut off with an error once it
/// grows past the route's limit: a body without `Content-Length` (chunked, or an
/// HTTP/2 stream) is measured only as it goes.
pub struct Capped {
    body: RequestBody,
    left: u64,
    /// What the sending side knows of the body: why it stopped short, if it did
    /// (the client's fault, not the app's), and when it ended.
    watch: Arc<BodyWatch>,
}

/// A streamed body's state, shared with [`send`], whose response timeout starts
/// only when the body has gone out whole: an upload slower than that timeout is
/// not the app's delay (nginx times `proxy_read_timeout` from the last write).
#[derive(Debug)]
struct BodyWatch {
    /// [`OVER_LIMIT`], [`BROKEN`] or 0.
    fault: AtomicU8,
    /// Milliseconds from `since` to the body's end, plus one; 0 while it flows.
    ended: AtomicU64,
    /// Milliseconds from `since` to when the sender last took a piece.
    taken: AtomicU64,
    /// Whether the body is waiting for the client's next piece (rather than for
    /// the sender to take one).
    waiting: AtomicBool,
    since: std::time::Instant,
}

impl BodyWatch {
    fn new() -> BodyWatch {
        BodyWatch {
            fault: AtomicU8::new(0),
            ended: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            since: std::time::Instant::now(),
        }
    }

    fn fault(&self) -> u8 {
        self.fault.load(Relaxed)
    }

    /// Milliseconds since `since`.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, ms: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.since) + std::time::Duration::from_millis(ms)
    }

    fn end(&self) {
        self.ended.store(self.now_ms().saturating_add(1), Relaxed);
    }

    /// A piece was taken by the sender (`waiting`: none came from the client yet).
    fn polled(&self, waiting: bool) {
        self.waiting.store(waiting, Relaxed);
        if !waiting {
            self.taken.store(self.now_ms(), Relaxed);
        }
    }

    /// When the upstream's silence began, as of `now`: the body's end once it is
    /// out; while it goes out, the last piece the sender took, unless the body is
    /// waiting on its client (then nobody is silent but the client).
    fn silent_since(&self, now: tokio::time::Instant) -> tokio::time::Instant {
        match self.ended.load(Relaxed) {
            0 if self.waiting.load(Relaxed) => now,
            0 => self.at(self.taken.load(Relaxed)),
            ms => self.at(ms - 1),
        }
    }
}

/// [`Capped::fault`]: the body went past the limit.
const OVER_LIMIT: u8 = 1;
/// [`Capped::fault`]: the client's body broke off (a bad chunk, the client gone).
const BROKEN: u8 = 2;

impl Capped {
    /// `body`, allowed at most `limit` bytes.
    pub fn new(body: RequestBody, limit: u64) -> Capped {
        Capped {
            body,
            left: limit,
            watch: Arc::new(BodyWatch::new()),
        }
    }

    fn fail(&self, fault: u8) {
        self.watch.fault.store(fault, Relaxed);
    }
}

impl http_body::Body for Capped {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        this.watch.polled(polled.is_pending());
        let frame = match std::task::ready!(polled) {
            None => {
                this.watch.end();
                return Poll::Ready(None);
            }
            Some(Err(e)) => {
                this.fail(BROKEN);
                return Poll::Ready(Some(Err(e.into())));
            }
            Some(Ok(frame)) => only_data(frame),
        };
        let len = frame.data_ref().map_or(0, |d| d.len() as u64);
        match this.left.checked_sub(len) {
            Some(left) => this.left = left,
            None => {
                this.fail(OVER_LIMIT);
                return Poll::Ready(Some(Err("the request body is over the limit".into())));
            }
        }
        if this.body.is_end_stream() {
            // Its sender may not ask again once the length says it has all.
            this.watch.end();
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        let ended = self.body.is_end_stream();
        if ended && self.watch.ended.load(Relaxed) == 0 {
            self.watch.end();
        }
        ended
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProxyBody::Whole(_) => "ProxyBody::Whole",
            ProxyBody::Stream(_) => "ProxyBody::Stream",
        })
    }
}

impl http_body::Body for ProxyBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ProxyBody::Whole(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ProxyBody::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Whole(body) => body.is_end_stream(),
            ProxyBody::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Whole(body) => body.size_hint(),
            ProxyBody::Stream(body) => body.size_hint(),
        }
    }
}

/// Trailers of a client's body are not forwarded (they are hop-by-hop unless the
/// upstream asked for them, which HTTP/1.1 cannot tell us).
fn only_data(frame: Frame<Bytes>) -> Frame<Bytes> {
    match frame.into_data() {
        Ok(data) => Frame::data(data),
        Err(_) => Frame::data(Bytes::new()),
    }
}

/// Fields that describe one connection and never cross a proxy (RFC 9110 §7.6.1,
/// and `Trailer` and `Proxy-Authenticate` from RFC 2616 §13.5.1's list).
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "proxy-authenticate",
];

/// Whether `name` is hop-by-hop, given the `Connection` fields of its message.
fn is_hop_by_hop(name: &HeaderName, listed: &[String]) -> bool {
    let n = name.as_str();
    HOP_BY_HOP.contains(&n)
        || n.starts_with("proxy-")
        || listed.iter().any(|l| l.eq_ignore_ascii_case(n))
}

/// The field names a message's `Connection` header lists. Split as bytes: a token
/// that is not text (obs-text) names no field, but must not hide the others on
/// its line.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| std::str::from_utf8(t.trim_ascii()).ok())
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Answers `req` from the route's upstreams.
pub async fn forward(route: Arc<Route>, req: Incoming<'_>) -> Response<Body> {
    let Incoming {
        head,
        path,
        target,
        mut body,
        remote,
        tls,
        ..
    } = req;
    if crate::http::request_body::declared_length(&head.headers)
        .is_some_and(|n| n > route.max_body())
    {
        return response::error(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let forwards_left = max_forwards(head);
    if forwards_left == Some(0) {
        // RFC 9110 §7.6.2: the last recipient answers itself.
        return response::options(crate::handlers::Handler::Proxy(Arc::clone(&route)).allow());
    }
    let has_body = !http_body::Body::is_end_stream(&body);
    // Received whole first, unless asked not to: the upstream sees it at loopback
    // speed, and it can be sent again to another upstream.
    let mut spooled = None;
    if has_body && route.buffer_request {
        match spool(&mut body, route.max_body(), BODY_IDLE).await {
            Ok(s) => spooled = Some(s),
            Err(status) => return response::error(status),
        }
    }
    let mut stream_body =
        (has_body && !route.buffer_request).then(|| Capped::new(body, route.max_body()));
    let mut headers = upstream_headers(&route, head, remote, tls);
    match forwards_left {
        Some(left) => {
            headers.insert(header::MAX_FORWARDS, HeaderValue::from(left - 1));
        }
        // Not a number: no count to pass on.
        None if head.method == Method::OPTIONS => {
            headers.remove(header::MAX_FORWARDS);
        }
        None => {}
    }
    // A protocol switch (a WebSocket) is asked of the app too; the rest of Upgrade's
    // uses (h2c) are hop-by-hop and end here.
    let upgrade = wants_upgrade(head);
    let mut websocket_key = None;
    if let Some(protocol) = &upgrade {
        headers.insert(header::UPGRADE, protocol.clone());
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if head.version == Version::HTTP_2 {
            // RFC 8441 §5: an HTTP/2 client's WebSocket has no key, which the app's
            // HTTP/1.1 handshake needs (RFC 6455 §4.1); wharf makes one and checks
            // the app's answer to it.
            if protocol.as_bytes().eq_ignore_ascii_case(b"websocket") {
                let Some(key) = websocket::new_key() else {
                    return response::error(StatusCode::INTERNAL_SERVER_ERROR);
                };
                headers.insert(header::SEC_WEBSOCKET_KEY, key.clone());
                headers
                    .entry(header::SEC_WEBSOCKET_VERSION)
                    .or_insert(HeaderValue::from_static("13"));
                websocket_key = Some(key);
            }
        }
    }
    // An extended CONNECT asks the app with the HTTP/1.1 handshake: a GET. No other
    // CONNECT reaches here (the handler refuses it), nor goes to an app.
    let method = match (&upgrade, &head.method) {
        (Some(_), &Method::CONNECT) => Method::GET,
        (None, &Method::CONNECT) => return response::error(StatusCode::BAD_REQUEST),
        (_, method) => method.clone(),
    };
    let target = Target {
        path: &path,
        spelled: target,
        query: head.uri.query(),
    };
    let sent = send(
        &route,
        &method,
        target,
        &headers,
        spooled.as_ref(),
        stream_body.take(),
    )
    .await;
    let Sent {
        mut res,
        lease,
        answered,
        ..
    } = match sent {
        Ok(sent) => sent,
        Err(status) => return response::error(status),
    };
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(asked) = &upgrade else {
            // Not asked for: the app's answer cannot be passed on.
            return response::error(StatusCode::BAD_GATEWAY);
        };
        if head.version != Version::HTTP_2 && !offered(res.headers().get(header::UPGRADE), asked) {
            // A switch to what the client did not offer (RFC 9110 §7.8 forbids it):
            // the client would speak one protocol and the app another.
            tracing::warn!(
                "upstream {}: a 101 to a protocol the client did not offer",
                answered.address
            );
            return response::error(StatusCode::BAD_GATEWAY);
        }
        if head.version == Version::HTTP_2 {
            // The app must have switched to the one protocol asked for, and, for a
            // WebSocket, answered the key wharf made (RFC 6455 §4.1).
            let switched_to = res.headers().get(header::UPGRADE);
            let same = match (switched_to, &upgrade) {
                (Some(to), Some(asked)) => to.as_bytes().eq_ignore_ascii_case(asked.as_bytes()),
                _ => false,
            };
            let key_answered = websocket_key
                .as_ref()
                .is_none_or(|key| websocket::accepts(res.headers(), key));
            if !same || !key_answered {
                tracing::warn!(
                    "upstream {}: a 101 that does not answer the handshake",
                    answered.address
                );
                return response::error(StatusCode::BAD_GATEWAY);
            }
        }
        let mut out = switched(&mut res, head.version);
        out.extensions_mut().insert(answered);
        return out;
    }
    let head_request = head.method == Method::HEAD;
    let mut out = relay(res, head_request, lease, route.response_timeout, None).await;
    out.extensions_mut().insert(answered);
    out
}

/// An upstream's answer to a request, with what the access log and the cache
/// want to know about it.
pub struct Sent {
    /// The response head, its body still to be read.
    pub res: Response<hyper::body::Incoming>,
    /// The upstream, counted busy while this is held.
    pub lease: super::upstream::Lease,
    /// Who answered and how fast, for the access log.
    pub answered: response::Upstream,
    /// When the request was sent (for the age of a stored response).
    pub sent_at: std::time::SystemTime,
}

/// What an upstream is asked for: the routed path, as decoded and as the client
/// spelled it, and the query.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The path as routed (decoded, normalised).
    pub path: &'a crate::http::path::SitePath,
    /// The string `path` was parsed from: the request's own path, or a rule's
    /// rewrite of it (before decoding).
    pub spelled: &'a str,
    /// The query, passed unchanged.
    pub query: Option<&'a str>,
}

/// Sends a request for `target` with `headers` (already made for the upstream) and
/// its body, if any, to an upstream of the route, trying the next one when no
/// connection could be made. Unreachable → 502; no response head in time → 504.
pub async fn send(
    route: &Route,
    method: &Method,
    target: Target<'_>,
    headers: &HeaderMap,
    spooled: Option<&Spooled>,
    mut stream_body: Option<Capped>,
) -> Result<Sent, StatusCode> {
    route.start_health_checks();
    let no_body = spooled.is_none() && stream_body.is_none();
    let body_watch = stream_body.as_ref().map(|b| Arc::clone(&b.watch));
    // The status for a request that failed because of the client's own body.
    let client_fault = || match body_watch.as_deref().map(BodyWatch::fault) {
        Some(OVER_LIMIT) => Some(StatusCode::PAYLOAD_TOO_LARGE),
        Some(BROKEN) => Some(StatusCode::BAD_REQUEST),
        _ => None,
    };
    let mut tried = Vec::new();
    let mut resent = 0;
    loop {
        let Some(lease) = route.pool.choose(&tried) else {
            return Err(StatusCode::BAD_GATEWAY);
        };
        tried.push(lease.index);
        let body = match (spooled, stream_body.take()) {
            (Some(Spooled::Memory(bytes)), _) => ProxyBody::Whole(Body::bytes(bytes.clone())),
            (Some(Spooled::File(file, len)), _) => {
                ProxyBody::Whole(Body::from_segments(vec![Segment::File(FileRange::new(
                    Arc::clone(file),
                    0,
                    *len,
                ))]))
            }
            (None, Some(stream)) => ProxyBody::Stream(stream),
            (None, None) => ProxyBody::Whole(Body::empty()),
        };
        let resend_possible = !matches!(body, ProxyBody::Stream(_));
        let asked_for = upstream_target(route, &lease.upstream.path, target);
        let uri = Uri::builder()
            .scheme("http")
            .authority(host_of(lease.index))
            .path_and_query(asked_for)
            .build()
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        let mut upstream_req = Request::new(body);
        *upstream_req.method_mut() = method.clone();
        *upstream_req.uri_mut() = uri;
        *upstream_req.version_mut() = Version::HTTP_11;
        *upstream_req.headers_mut() = headers.clone();
        if !headers.contains_key(header::HOST) {
            // Every HTTP/1.1 request has a Host (RFC 9112 §3.2); a client that sent
            // none (HTTP/1.0) has the upstream's own named, as nginx's `$proxy_host`.
            if let Ok(host) = HeaderValue::from_str(&lease.upstream.authority()) {
                upstream_req.headers_mut().insert(header::HOST, host);
            }
        }
        if let Some(spooled) = spooled {
            upstream_req
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(spooled.len()));
        } else if no_body && matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            // No content, said so: a method that defines content gets its length
            // (RFC 9110 §8.6; some servers answer 411 without one), as nginx sends.
            upstream_req
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
        }
        let asked = std::time::Instant::now();
        let sent_at = std::time::SystemTime::now();
        let client = if resent == 0 {
            &route.client
        } else {
            &route.fresh_client
        };
        let sent = answered_in_time(
            client.request(upstream_req),
            route.response_timeout,
            body_watch.as_deref(),
        )
        .await;
        if let (Ok(Err(_)), Some(status)) = (&sent, client_fault()) {
            // The body the client sent went wrong, not the upstream.
            return Err(status);
        }
        match sent {
            Err(_) => {
                lease.upstream.outcome(false);
                crate::metrics::metrics().upstream(None);
                tracing::warn!(
                    "upstream {} sent no response within {:?}",
                    lease.upstream.shown,
                    route.response_timeout
                );
                return Err(StatusCode::GATEWAY_TIMEOUT);
            }
            Ok(Err(e)) if e.is_connect() => {
                lease.upstream.outcome(false);
                crate::metrics::metrics().upstream(None);
                tracing::warn!(
                    "upstream {} unreachable: {}",
                    lease.upstream.shown,
                    with_causes(&e)
                );
                // Nothing was sent: another upstream may take it.
                if resend_possible && tried.len() < route.pool.upstreams.len() {
                    continue;
                }
                // An upstream that never took the connection did not answer in
                // time (504, as nginx's `proxy_connect_timeout`); one that refused
                // it is a bad gateway.
                return Err(if connect_timed_out(&e) {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                });
            }
            Ok(Err(e))
                if resend_possible
                    && method.is_idempotent()
                    && closed_unanswered(&e)
                    && opened_before(&e, asked)
                    && resent < RESENDS =>
            {
                // A kept-alive connection the app closed as the request went out
                // (its idle timeout against wharf's reuse): nothing was answered,
                // and an idempotent request may be sent again (RFC 9112 §9.3.1),
                // once, on a new connection, as nginx does. A request that fails
                // on a new connection is not sent again (RFC 9110 §9.2.2): an app
                // that dies on it gets it once.
                resent += 1;
                tried.pop();
                tracing::debug!("upstream {}: sent again after {e}", lease.upstream.shown);
                continue;
            }
            Ok(Err(e)) => {
                lease.upstream.outcome(false);
                crate::metrics::metrics().upstream(None);
                tracing::warn!(
                    "upstream {} failed: {}",
                    lease.upstream.shown,
                    with_causes(&e)
                );
                return Err(StatusCode::BAD_GATEWAY);
            }
            Ok(Ok(res)) if !defined_status(res.status()) => {
                // Its body is not read: hyper keeps the connection only when that
                // body had already arrived whole (well framed, then).
                lease.upstream.outcome(false);
                crate::metrics::metrics().upstream(None);
                tracing::warn!(
                    "upstream {} answered with status {}, which HTTP does not define",
                    lease.upstream.shown,
                    res.status().as_u16()
                );
                return Err(StatusCode::BAD_GATEWAY);
            }
            Ok(Ok(res)) if has_body(method, res.status()) && !only_chunked(res.headers()) => {
                // hyper takes off the chunks, and nothing else: a body in another
                // transfer coding (`gzip, chunked`) would reach the client still
                // coded, with nothing saying so (RFC 9112 §6.1), as nginx refuses it.
                lease.upstream.outcome(false);
                crate::metrics::metrics().upstream(None);
                tracing::warn!(
                    "upstream {} answered in a transfer coding other than chunked",
                    lease.upstream.shown
                );
                return Err(StatusCode::BAD_GATEWAY);
            }
            Ok(Ok(mut res)) => {
                lease.upstream.outcome(true);
                type Rewrite = fn(&Route, &super::upstream::Upstream, &str) -> Option<String>;
                let rewrites: [(header::HeaderName, Rewrite); 2] = [
                    (header::LOCATION, client_location),
                    (header::REFRESH, client_refresh),
                ];
                for (name, rewrite) in rewrites {
                    if let Some(to) = res
                        .headers()
                        .get(&name)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| rewrite(route, &lease.upstream, v))
                        .and_then(|v| HeaderValue::from_str(&v).ok())
                    {
                        res.headers_mut().insert(name, to);
                    }
                }
                crate::metrics::metrics().upstream(Some(asked.elapsed()));
                let answered = response::Upstream {
                    address: lease.upstream.shown.clone(),
                    head_time: asked.elapsed(),
                };
                return Ok(Sent {
                    res,
                    lease,
                    answered,
                    sent_at,
                });
            }
        }
    }
}

/// An OPTIONS request's `Max-Forwards` (RFC 9110 §7.6.2: only OPTIONS and TRACE
/// have one, and TRACE goes no further than wharf), one too large to count read as
/// the largest wharf counts, and of several fields the smallest (the field is one
/// number; the count must not grow); `None` when it has none, or one that is not
/// a number (`-1`, `3, 2`), which goes no further.
fn max_forwards(head: &http::request::Parts) -> Option<u64> {
    if head.method != Method::OPTIONS {
        return None;
    }
    let mut smallest: Option<u64> = None;
    for value in head.headers.get_all(header::MAX_FORWARDS) {
        let value = value.to_str().ok()?.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n = value.parse().unwrap_or(u64::MAX);
        smallest = Some(smallest.map_or(n, |s| s.min(n)));
    }
    smallest
}

/// How many times a request is sent again after its connection closed unanswered.
/// The resend goes out on a new connection (`fresh_client`), so one is enough
/// however many of the pool's kept connections the app closed.
const RESENDS: u32 = 1;

/// Whether connecting failed because the connect timeout ran out.
fn connect_timed_out(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// Whether a request failed on a connection opened before `asked`: a kept one.
fn opened_before(e: &hyper_util::client::legacy::Error, asked: std::time::Instant) -> bool {
    let Some(info) = e.connect_info() else {
        return false;
    };
    let mut extras = http::Extensions::new();
    info.get_extras(&mut extras);
    extras
        .get::<super::upstream::Opened>()
        .is_some_and(|opened| opened.0 < asked)
}

/// Whether a request failed because its connection closed (or was reset) before
/// any answer came: what a kept-alive connection the app has since closed gives.
fn closed_unanswered(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) {
                return true;
            }
        }
        source = err.source();
    }
    false
}

/// Whether the answer to `method` with `status` has a body at all (a HEAD's, a
/// 1xx, 204 or 304 has none, whatever fields describe the GET's).
fn has_body(method: &Method, status: StatusCode) -> bool {
    *method != Method::HEAD
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

/// Whether a response's `Transfer-Encoding`, if any, is `chunked` alone.
fn only_chunked(headers: &HeaderMap) -> bool {
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => true,
        (Some(coding), None) => coding.eq_ignore_ascii_case(b"chunked"),
        (Some(_), Some(_)) => false,
    }
}

/// Whether an app's status code is one HTTP defines (RFC 9110 §15: 100 to 599).
/// hyper's client passes on any code from 100 to 999; a 600 or a 999 is a
/// malformed answer (502), not something to pass on to the client or the cache.
pub fn defined_status(status: StatusCode) -> bool {
    (100..=599).contains(&status.as_u16())
}

/// The protocol a client asks to switch to: on HTTP/1.1 `Upgrade` with `Connection:
/// upgrade`, other than HTTP/2 (h2c, which is wharf's own business); on HTTP/2 an
/// extended CONNECT's `:protocol` (RFC 8441).
pub fn wants_upgrade(head: &http::request::Parts) -> Option<HeaderValue> {
    if head.version == Version::HTTP_2 {
        // One protocol name (RFC 8441 §4: an HTTP Upgrade Token, a token).
        let protocol = head.extensions.get::<hyper::ext::Protocol>()?.as_str();
        let token = !protocol.is_empty()
            && protocol
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
        let h2c = protocol.to_ascii_lowercase().contains("h2c");
        return (head.method == Method::CONNECT && token && !h2c)
            .then(|| HeaderValue::from_str(protocol).ok())
            .flatten();
    }
    let listed = connection_listed(&head.headers);
    let protocol = head.headers.get(header::UPGRADE)?;
    let h2c = protocol
        .to_str()
        .map_or(true, |p| p.to_ascii_lowercase().contains("h2c"));
    (head.version == Version::HTTP_11 && listed.iter().any(|l| l == "upgrade") && !h2c)
        .then(|| protocol.clone())
}

/// Whether a 101's `Upgrade` names protocols, each one the client's `Upgrade`
/// offered (by name, whatever its case or version).
fn offered(switched_to: Option<&HeaderValue>, asked: &HeaderValue) -> bool {
    let names = |value: &HeaderValue| -> Option<Vec<String>> {
        let names = value.to_str().ok()?.split(',').map(|protocol| {
            let name = protocol.trim().split('/').next().unwrap_or("");
            name.to_ascii_lowercase()
        });
        Some(names.filter(|name| !name.is_empty()).collect())
    };
    match (switched_to.and_then(names), names(asked)) {
        (Some(to), Some(asked)) => !to.is_empty() && to.iter().all(|name| asked.contains(name)),
        _ => false,
    }
}

/// The app's `101`, and the other end of the tunnel for the network layer. To an
/// HTTP/1.1 client: a `101` with the app's fields as they are (Upgrade and
/// Connection included, which the switch needs). To an HTTP/2 client's extended
/// CONNECT: a `200` without the HTTP/1.1 handshake's own fields (RFC 8441 §5).
fn switched(res: &mut Response<hyper::body::Incoming>, client: Version) -> Response<Body> {
    let other_end = hyper::upgrade::on(&mut *res);
    let mut out = Response::new(Body::empty());
    *out.headers_mut() = res.headers().clone();
    if client == Version::HTTP_2 {
        *out.status_mut() = StatusCode::OK;
        let listed = connection_listed(res.headers());
        let names: Vec<HeaderName> = res.headers().keys().cloned().collect();
        for name in names {
            if is_hop_by_hop(&name, &listed) {
                out.headers_mut().remove(&name);
            }
        }
        for name in [
            header::SEC_WEBSOCKET_ACCEPT,
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
        ] {
            out.headers_mut().remove(name);
        }
    } else {
        *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        out.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    append_list(out.headers_mut(), header::VIA, via(res.version()));
    out.extensions_mut()
        .insert(response::Tunnel(Arc::new(std::sync::Mutex::new(Some(
            other_end,
        )))));
    out.extensions_mut().insert(response::Relayed);
    out
}

/// The path and query the upstream is asked for, with the route's prefix replaced
/// by the upstream URL's own path when it has one (`/api/x` → `/v1/x`, as nginx's
/// `proxy_pass` with a URI). The path goes as the client spelled it when that
/// spelling names the routed path with nothing to normalise: a reserved character
/// and its escape are different URIs to the app (RFC 3986 §2.2, `;` against
/// `%3B`). Otherwise (dot segments, `//`, a rewrite) it is the normalised path with
/// every segment re-encoded.
fn upstream_target(route: &Route, upstream_path: &Option<String>, target: Target<'_>) -> String {
    let canonical = || target.path.to_url(target.path.has_trailing_slash());
    let mapped = |url: &str| -> Option<String> {
        let Some(base) = upstream_path else {
            return Some(url.to_string());
        };
        let prefix = crate::http::path::encode_path(&route.prefix);
        let rest = url.strip_prefix(prefix.trim_end_matches('/'))?;
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        Some(format!("{}/{}", base.trim_end_matches('/'), rest))
    };
    let mut out = as_spelled(target)
        .and_then(|spelled| mapped(&spelled))
        .or_else(|| mapped(&canonical()))
        .unwrap_or_else(canonical);
    if let Some(q) = target.query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// An app's redirect to its own address (`http://127.0.0.1:9000/v1/login`) as the
/// client reaches that place (`/api/login`), as nginx's `proxy_redirect default`
/// rewrites it; `None` for a `Location` naming anywhere else, left as it is.
fn client_location(
    route: &Route,
    upstream: &super::upstream::Upstream,
    location: &str,
) -> Option<String> {
    let rest = upstream.origins().into_iter().find_map(|origin| {
        let head = location.get(..origin.len())?;
        head.eq_ignore_ascii_case(&origin)
            .then(|| &location[origin.len()..])
    })?;
    let prefix = crate::http::path::encode_path(&route.prefix);
    let (from, to) = match &upstream.path {
        None => ("", ""),
        Some(base) => (base.trim_end_matches('/'), prefix.trim_end_matches('/')),
    };
    let tail = rest.strip_prefix(from)?;
    match tail.bytes().next() {
        None => Some(format!("{to}/")),
        Some(b'/') => Some(same_origin(format!("{to}{tail}"))),
        Some(b'?') => Some(format!("{to}/{tail}")),
        Some(_) => None,
    }
}

/// A path that a browser cannot read as another host's: the app's
/// `http://app//evil.example/x` (a path on the app) cut to `//evil.example/x` would
/// be a link to `evil.example`, and so would `/\evil.example` (browsers read `\` as
/// `/`, and drop tabs and line breaks). The second character is escaped instead,
/// which keeps the redirect on this site.
fn same_origin(path: String) -> String {
    let after = path
        .strip_prefix('/')
        .map(|rest| rest.trim_start_matches(['\t', '\n', '\r']));
    match after {
        Some(rest) if rest.starts_with(['/', '\\']) => {
            format!("/%{:02X}{}", rest.as_bytes()[0], &rest[1..])
        }
        _ => path,
    }
}

/// `Refresh: 0; url=http://127.0.0.1:9000/v1/x` with its URL rewritten as
/// [`client_location`] rewrites a `Location` (nginx's `proxy_redirect` does both);
/// `None` when it names no URL or one elsewhere.
fn client_refresh(
    route: &Route,
    upstream: &super::upstream::Upstream,
    refresh: &str,
) -> Option<String> {
    let at = refresh.to_ascii_lowercase().find("url=")? + "url=".len();
    let value = refresh[at..].trim_start();
    let skipped = refresh.len() - at - value.len();
    let quote = value.get(..1).filter(|q| *q == "\"" || *q == "'");
    let inner = &value[quote.map_or(0, str::len)..];
    let end = match quote {
        Some(q) => inner.find(q)?,
        None => inner.trim_end().len(),
    };
    let url = client_location(route, upstream, &inner[..end])?;
    Some(format!(
        "{}{}{}{url}{}",
        &refresh[..at],
        &refresh[at..at + skipped],
        quote.unwrap_or(""),
        &inner[end..]
    ))
}

/// `target.spelled` (which `target.path` was parsed from) with its empty, `.` and
/// `..` segments resolved as they were for `target.path` (RFC 3986 §5.2.4), every
/// other segment as the client spelled it: normalising changes no escape, since
/// `;` and `%3B` are different URIs to an app.
fn as_spelled(target: Target<'_>) -> Option<String> {
    let rest = target.spelled.strip_prefix('/')?;
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = true;
    for segment in rest.split('/') {
        trailing_slash = segment.is_empty();
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(segment).collect();
        match decoded.as_slice() {
            b"" => {}
            b"." => trailing_slash = true,
            b".." => {
                trailing_slash = true;
                kept.pop()?;
            }
            _ => kept.push(segment),
        }
    }
    let mut out = format!("/{}", kept.join("/"));
    if trailing_slash && !kept.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// The request's fields as the upstream gets them: hop-by-hop ones removed, the
/// client's address, scheme and host recorded, `Via` added, the route's own added.
pub fn upstream_headers(
    route: &Route,
    head: &http::request::Parts,
    remote: SocketAddr,
    tls: bool,
) -> HeaderMap {
    let listed = connection_listed(&head.headers);
    let trusted = route.trusted.iter().any(|net| net.contains(&remote.ip()));
    // What a proxy in front says of the client (its address, scheme, host, port,
    // prefix, TLS), which an app may believe: only a trusted proxy's is kept.
    let forwarding =
        |name: &str| name.starts_with("x-forwarded-") || name == "forwarded" || name == "x-real-ip";
    // Room for what wharf adds (Host, the forwarding fields, Via), so that the map
    // is made once (a hint, kept small: a map cannot be made past its limit).
    let mut out = HeaderMap::with_capacity((head.headers.keys_len() + 7).min(ROOM_HINT));
    for (name, value) in &head.headers {
        // `Expect` too: wharf itself answered it, and it has the body (or streams
        // it); the app asked again could refuse what it never has to wait for.
        if is_hop_by_hop(name, &listed) || name == header::CONTENT_LENGTH || name == header::EXPECT
        {
            continue;
        }
        if !trusted && forwarding(name.as_str()) {
            continue;
        }
        // `Proxy` is no standard field, and an app that turns fields into
        // variables would take it for its outgoing proxy (`HTTP_PROXY`, "httpoxy").
        if name == "proxy" {
            continue;
        }
        // A name with `_` is dropped, as nginx does by default: CGI, WSGI and PHP
        // read `X_Forwarded_For` and `X-Forwarded-For` as the same variable.
        if name.as_str().contains('_') {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    // HTTP/2 splits `Cookie` into one field per cookie; HTTP/1.1 has one line, and
    // many apps read only the first (RFC 9113 §8.2.3: joined with "; ").
    if out.get_all(header::COOKIE).iter().nth(1).is_some() {
        let joined: Vec<u8> = out
            .get_all(header::COOKIE)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect::<Vec<_>>()
            .join(&b"; "[..]);
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            out.insert(header::COOKIE, value);
        }
    }
    // The target's authority wins over `Host`: an absolute-form target's (RFC
    // 9112 §3.2.2), HTTP/2's `:authority`.
    let host = head
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or_else(|| head.headers.get(header::HOST).cloned());
    if let Some(host) = &host {
        out.insert(header::HOST, host.clone());
    }
    let ip = remote.ip();
    let ip_text = ip.to_string();
    let proto = if tls { "https" } else { "http" };
    if let Ok(for_ip) = HeaderValue::from_str(&ip_text) {
        append_list(&mut out, X_FORWARDED_FOR, for_ip);
    }
    if !out.contains_key(X_FORWARDED_PROTO) {
        out.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if let (false, Some(host)) = (out.contains_key(X_FORWARDED_HOST), &host) {
        out.insert(X_FORWARDED_HOST, host.clone());
    }
    // `for=192.0.2.1;proto=http;host="example.com"`, an IPv6 node quoted and
    // bracketed (RFC 7239 §4, §6).
    let mut forwarded = String::with_capacity(64);
    forwarded.push_str("for=");
    match ip {
        IpAddr::V4(_) => forwarded.push_str(&ip_text),
        IpAddr::V6(_) => {
            forwarded.push_str("\"[");
            forwarded.push_str(&ip_text);
            forwarded.push_str("]\"");
        }
    }
    forwarded.push_str(";proto=");
    forwarded.push_str(proto);
    if let Some(h) = host.as_ref().and_then(|h| h.to_str().ok()) {
        if h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            forwarded.push_str(";host=\"");
            forwarded.push_str(h);
            forwarded.push('"');
        }
    }
    // A list wharf cannot read (a quoted string left open) would swallow wharf's
    // own element into it: it is replaced, not added to (RFC 7239 §4).
    if !out
        .get_all(FORWARDED)
        .iter()
        .all(|v| quotes_closed(v.as_bytes()))
    {
        out.remove(FORWARDED);
    }
    if let Ok(forwarded) = HeaderValue::from_str(&forwarded) {
        append_list(&mut out, FORWARDED, forwarded);
    }
    append_list(&mut out, header::VIA, via(head.version));
    for (name, value) in &route.add_headers {
        out.insert(name.clone(), value.clone());
    }
    out
}

/// Whether every quoted string in a field line is closed (`\` escaping the byte
/// after it inside one, RFC 9110 §5.6.4).
fn quotes_closed(line: &[u8]) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    for &b in line {
        match (quoted, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (_, false, b'"') => quoted = !quoted,
            _ => {}
        }
    }
    !quoted
}

/// Adds `value` to a comma-separated list field, after what is there: every line
/// of it, in order, since several lines are one list (RFC 9110 §5.3) and the last
/// is the hop nearest wharf.
fn append_list(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    let mut joined: Vec<u8> = Vec::new();
    for line in headers.get_all(&name) {
        let line = line.as_bytes().trim_ascii();
        if !line.is_empty() {
            joined.extend_from_slice(line);
            joined.extend_from_slice(b", ");
        }
    }
    if joined.is_empty() {
        headers.insert(name, value);
        return;
    }
    joined.extend_from_slice(value.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(name, v);
    }
}

/// A body of exactly `len` bytes, read whole; `None` if it breaks off or differs.
pub async fn read_whole(incoming: &mut hyper::body::Incoming, len: u64) -> Option<Bytes> {
    let mut data = bytes::BytesMut::with_capacity(len as usize);
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut *incoming).poll_frame(cx)).await
    {
        if let Ok(chunk) = frame.ok()?.into_data() {
            if (data.len() + chunk.len()) as u64 > len {
                return None;
            }
            data.extend_from_slice(&chunk);
        }
    }
    (data.len() as u64 == len).then(|| data.freeze())
}

/// Whether a response must reach the client as the app makes it (server-sent
/// events, or the app's `X-Accel-Buffering: no`) rather than be buffered.
fn streams(headers: &HeaderMap) -> bool {
    let event_stream = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let kind = b"text/event-stream";
            let v = v.trim_start().as_bytes();
            v.get(..kind.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(kind))
        });
    let asked = headers
        .get("x-accel-buffering")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"no"));
    event_stream || asked
}

/// Passes an unbuffered response through chunk by chunk; a body shorter than its
/// announced `length` is broken off.
async fn stream_through(
    mut incoming: hyper::body::Incoming,
    length: Option<u64>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    lease: super::upstream::Lease,
    idle: std::time::Duration,
) {
    // Counted as outstanding until the body is through.
    let _lease = lease;
    let mut seen: u64 = 0;
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut incoming).poll_frame(cx));
        // An app silent for the route's response timeout is given up, as between
        // any two reads (nginx's proxy_read_timeout).
        let Ok(frame) = tokio::time::timeout(idle, next).await else {
            tracing::warn!("proxy: the app paused its response too long; broken off");
            let _ = tx
                .send(Err(std::io::Error::other("upstream paused too long")))
                .await;
            return;
        };
        let chunk = match frame {
            None => break,
            Some(Err(e)) => Err(std::io::Error::other(e)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => Ok(data),
                Err(_) => continue,
            },
        };
        let failed = chunk.is_err();
        if let Ok(data) = &chunk {
            seen += data.len() as u64;
        }
        if tx.send(chunk).await.is_err() || failed {
            return;
        }
    }
    if length.is_some_and(|n| seen < n) {
        let _ = tx
            .send(Err(std::io::Error::other("upstream ended early")))
            .await;
    }
}

/// Makes the fields of an app's response with `status` fit for the client:
/// hop-by-hop fields and the app's notes to wharf removed, `Via` added, and no
/// `Content-Length` where the status forbids one (1xx, 204: RFC 9110 §8.6; an
/// HTTP/2 client refuses the stream). Returns whether the body must reach the
/// client as it is made (see [`streams`]).
pub fn clean(headers: &mut HeaderMap, status: StatusCode, received: Version) -> bool {
    let streamed = streams(headers);
    let listed = connection_listed(headers);
    // Only the names to drop are gathered (most answers have none).
    let drop: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name, &listed) || handed_file::is_note_to_front(name))
        .cloned()
        .collect();
    for name in drop {
        headers.remove(&name);
    }
    if status.is_informational() || status == StatusCode::NO_CONTENT {
        headers.remove(header::CONTENT_LENGTH);
    }
    append_list(headers, header::VIA, via(received));
    streamed
}

/// `error` and what caused it, outermost first (`client error (SendRequest): invalid
/// HTTP header parsed`): hyper's own message names only the step that failed.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

/// The upstream's response for the client: hop-by-hop fields removed, `Via` added,
/// the body streamed through a bounded channel (a break upstream breaks it off).
/// With `filling`, the body is also stored in the cache as it passes (read to its
/// end even when the client leaves or asked with HEAD).
pub async fn relay(
    res: Response<hyper::body::Incoming>,
    head_request: bool,
    lease: super::upstream::Lease,
    wait: std::time::Duration,
    filling: Option<Box<Filling>>,
) -> Response<Body> {
    let (mut parts, mut incoming) = res.into_parts();
    if let Some((to, mut handed)) = crate::handlers::handed_file::handed_back(&parts) {
        // The app's own body is not wanted.
        drop(incoming);
        handed
            .extensions_mut()
            .insert(response::InternalRedirect(to));
        return handed;
    }
    let streamed = clean(&mut parts.headers, parts.status, parts.version);
    let filling = filling.filter(|_| !streamed);
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let no_body = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    // A small body of known length is read here, whole, and sent as one piece:
    // no task, no channel (most API answers are a few KiB).
    let small = length.filter(|&n| n <= SMALL_BODY && !head_request && !no_body && !streamed);
    let body = if let Some(n) = small {
        parts.headers.remove(header::CONTENT_LENGTH);
        let whole = tokio::time::timeout(wait, read_whole(&mut incoming, n)).await;
        if whole.is_err() {
            tracing::warn!(
                "upstream {} stalled in a response body for {:?}",
                lease.upstream.shown,
                wait
            );
        }
        drop(lease);
        match whole {
            Ok(Some(bytes)) => {
                if let Some(filling) = filling {
                    filling.store_whole(bytes.clone());
                }
                Body::bytes(bytes)
            }
            // Broken off, or longer or shorter than announced.
            Ok(None) => return response::error(StatusCode::BAD_GATEWAY),
            // Stalled: the app did not answer in time (RFC 9110 §15.6.5).
            Err(_) => return response::error(StatusCode::GATEWAY_TIMEOUT),
        }
    } else if head_request {
        if let Some(filling) = filling {
            // Nobody reads this body but the cache.
            let (tx, _) = tokio::sync::mpsc::channel(1);
            super::buffer::spawn(incoming, length, tx, lease, Some(filling), wait);
        }
        // No body, but the length a GET would have, as the upstream said.
        let (_, rx) = tokio::sync::mpsc::channel(1);
        match length {
            Some(n) => Body::channel_of_len(rx, n),
            None => Body::channel(rx),
        }
    } else if no_body {
        Body::empty()
    } else {
        parts.headers.remove(header::CONTENT_LENGTH);
        let (tx, rx) = tokio::sync::mpsc::channel(RESPONSE_CHUNKS);
        if streamed {
            tokio::spawn(stream_through(incoming, length, tx, lease, wait));
        } else {
            super::buffer::spawn(incoming, length, tx, lease, filling, wait);
        }
        match length {
            Some(n) => Body::channel_of_len(rx, n),
            None => Body::channel(rx),
        }
    };
    let mut res = Response::new(body);
    *res.status_mut() = parts.status;
    *res.headers_mut() = parts.headers;
    // The app's own reason phrase, when it is not the usual one (HTTP/1 only).
    if let Some(reason) = parts.extensions.remove::<hyper::ext::ReasonPhrase>() {
        res.extensions_mut().insert(reason);
    }
    res.extensions_mut().insert(response::Relayed);
    res
}
