//! The hyper service of one connection: the glue between hyper and the site. Each
//! request gets an [`Exchange`] (its access-log record and the connection clock's
//! bookkeeping), the site's answer (at once when it can, else a future), and on its
//! way out the same finishing for every response: HEAD stripped, `Connection: close`
//! where the connection ends, sendfile switched on, the exchange attached.
//!
//! Also decides what happens to a request body no handler will read: small ones are
//! read and dropped so that an HTTP/1 connection goes on, as nginx discards them.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use crate::http::body::Body;
use crate::http::request_body::RequestBody;
use crate::http::response;
use crate::http::zero_copy::SendfileQueue;
use crate::net::clock::Clock;
use crate::net::exchange::Exchange;
use crate::net::tunnel::TunnelLimits;
use crate::site::router::{Answer, Peer, Routers};
use crate::site::Router;

/// The hyper service for one connection: tags each exchange with the connection's
/// clock and the client address.
#[derive(Debug, Clone)]
pub struct ConnectionService {
    routers: Routers,
    peer: Peer,
    clock: Arc<Clock>,
    tunnel: Arc<TunnelSlot>,
    tunnel_limits: TunnelLimits,
    sendfile: Option<Arc<SendfileQueue>>,
    redirect_to: Option<u16>,
}

impl ConnectionService {
    /// A service for the connection from `peer`; `sendfile` when its transport can
    /// send file ranges itself; `redirect_to` to answer everything with a redirect to
    /// HTTPS on that port; `tunnels`: where an HTTP/1 switch leaves the app's end, and
    /// the limits of every tunnel.
    pub fn new(
        routers: Routers,
        peer: Peer,
        clock: Arc<Clock>,
        tunnels: (Arc<TunnelSlot>, TunnelLimits),
        sendfile: Option<Arc<SendfileQueue>>,
        redirect_to: Option<u16>,
    ) -> Self {
        ConnectionService {
            routers,
            peer,
            clock,
            tunnel: tunnels.0,
            tunnel_limits: tunnels.1,
            sendfile,
            redirect_to,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Reply;

    fn call(&self, mut req: Request<Incoming>) -> Reply {
        // An HTTP/2 extended CONNECT (RFC 8441): the stream becomes a tunnel if the
        // answer is a success.
        let h2_tunnel = req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some()
            .then(|| (hyper::upgrade::on(&mut req), self.tunnel_limits.clone()));
        let has_body = !http_body::Body::is_end_stream(req.body());
        let keep_alive = keeps_alive(&req);
        let http10 = req.version() == Version::HTTP_10;
        if http10 {
            self.clock.answering_http10();
        }
        self.clock.request_started(keep_alive, has_body);
        let router = self.routers.load_full();
        let exchange = Exchange::begin(
            router.log(),
            &req,
            self.peer.remote,
            Arc::clone(&self.clock),
        );
        let (parts, body) = req.into_parts();
        if router.log().verbose() {
            crate::log::verbose::print_head(self.peer.remote, &parts);
        }
        let answer = match self.redirect_to {
            Some(port) => Answer::Now(router.redirect_to_https(&parts, port)),
            None => router.answer_now(&parts),
        };
        let finish = Finishing {
            head: parts.method == Method::HEAD,
            http1: matches!(parts.version, Version::HTTP_10 | Version::HTTP_11),
            http10,
            client_closes: http10 && !keep_alive,
            awaits_continue: has_body && expects_continue(&parts),
            body_abandoned: false,
            sendfile: self.sendfile.clone(),
            tunnel: Arc::clone(&self.tunnel),
            h2_tunnel,
            exchange,
        };
        let peer = self.peer;
        let unwanted = match &answer {
            Answer::Now(_) => true,
            Answer::Later(pending) => has_body && !router.reads_body(pending, &parts),
        };
        if !unwanted {
            let clock = Arc::clone(&self.clock);
            let http2 = parts.version == Version::HTTP_2;
            let mut body = RequestBody::new(body, http2, move || clock.body_read());
            if http2 {
                let clock = Arc::clone(&self.clock);
                body = body.on_data(move || clock.body_progress());
            }
            return reply(answer, parts, body, finish, router, peer);
        }
        // HTTP/1 needs the body gone to go on. On HTTP/2 an unread body costs its
        // stream alone, but reading it to its end first is what finds a malformed
        // request (DATA frames that do not add up to a Content-Length, trailers
        // without END_STREAM or with pseudo-headers: RFC 9113 §8.1), which must be a
        // stream error rather than answered, whether its frames come before or after
        // the answer would have. The answer waits for it (at most 64 KiB and 1 s: a
        // client that keeps its stream open past that gets the answer then). Not
        // when the answer ends the connection anyway.
        let discard_first = has_body
            && worth_discarding(&parts)
            && !matches!(&answer, Answer::Now(res) if ends_connection(res.status()));
        if !discard_first {
            // Dropped: on HTTP/1 with a body, hyper then closes after the answer.
            drop(body);
            return reply(answer, parts, RequestBody::empty(), finish, router, peer);
        }
        let clock = Arc::clone(&self.clock);
        Reply::Later(Box::pin(async move {
            let mut finish = finish;
            match discard(body).await {
                Ok(true) => clock.body_read(),
                Ok(false) => finish.body_abandoned = true,
                // The framing is lost: the 400 also ends the connection.
                Err(_) => return finish.apply(response::error(StatusCode::BAD_REQUEST)),
            }
            match reply(answer, parts, RequestBody::empty(), finish, router, peer).await {
                Ok(res) => res,
                Err(never) => match never {},
            }
        }))
    }
}

/// The exchange's future for what `answer_now` decided; `body` goes to the handler.
fn reply(
    answer: Answer,
    parts: Parts,
    body: RequestBody,
    finish: Finishing,
    router: Arc<Router>,
    peer: Peer,
) -> Reply {
    match answer {
        Answer::Now(res) => Reply::Now(Some(finish.apply(res))),
        Answer::Later(pending) => Reply::Later(Box::pin(async move {
            let res = router.answer(pending, &parts, body, peer).await;
            finish.apply(res)
        })),
    }
}

/// Request bodies read and dropped, at most: beyond this the connection is closed
/// after the answer rather than spend the time.
const DISCARD_LIMIT: u64 = 64 * 1024;
/// How long a body being discarded may take to arrive.
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a request body no handler reads should be read and dropped (as nginx
/// discards one), so that the connection stays usable and a body that breaks its own
/// framing is answered 400. Not when the client waits for `100 Continue` (the answer
/// does not need the body, so it is not invited), nor when the body is announced
/// larger than [`DISCARD_LIMIT`].
fn worth_discarding(parts: &Parts) -> bool {
    let expects = expects_continue(parts);
    let too_long = crate::http::request_body::declared_length(&parts.headers)
        .is_some_and(|n| n > DISCARD_LIMIT);
    !expects && !too_long
}

/// Whether the client holds its body back until it is told `100 Continue`.
fn expects_continue(parts: &Parts) -> bool {
    parts.headers.contains_key(header::EXPECT)
}

/// Reads and drops `body`: true when it was read to its end, an error when its framing
/// is broken (a malformed chunk, a connection closed short of the announced length).
/// Gives up quietly past [`DISCARD_LIMIT`] bytes or [`DISCARD_TIME`]; hyper then
/// closes the connection after the answer.
async fn discard(mut body: Incoming) -> Result<bool, hyper::Error> {
    let read = async {
        let mut seen: u64 = 0;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Some(data) = frame?.data_ref() {
                seen += data.len() as u64;
                if seen > DISCARD_LIMIT {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    tokio::time::timeout(DISCARD_TIME, read)
        .await
        .unwrap_or(Ok(false))
}

/// The future of one exchange: ready at once when the router could answer without
/// waiting, which is the common case and costs no allocation.
pub enum Reply {
    /// Answered; taken by the first poll.
    Now(Option<Response<Body>>),
    /// Waiting on the disk, the blocking pool or a password check.
    Later(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl Future for Reply {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            Reply::Now(res) => match res.take() {
                Some(res) => std::task::Poll::Ready(Ok(res)),
                None => std::task::Poll::Pending,
            },
            Reply::Later(fut) => fut.as_mut().poll(cx).map(Ok),
        }
    }
}

/// What every response gets on its way out, whichever way it was produced.
struct Finishing {
    head: bool,
    /// HTTP/1.x, where a response can say that the connection closes.
    http1: bool,
    /// HTTP/1.0, whose responses hyper frames without chunked coding.
    http10: bool,
    /// An HTTP/1.0 client that did not ask for keep-alive: its response, labelled
    /// HTTP/1.1, says the connection closes, as a 1.1 client would be told.
    client_closes: bool,
    /// The request has a body its client sends only after `100 Continue`.
    awaits_continue: bool,
    /// A body no handler wanted was neither read to its end nor found broken (too
    /// long, or too slow to come): the connection closes after the answer.
    body_abandoned: bool,
    sendfile: Option<Arc<SendfileQueue>>,
    tunnel: Arc<TunnelSlot>,
    /// The stream of an extended CONNECT, to become a tunnel on a success.
    h2_tunnel: Option<(OnUpgrade, TunnelLimits)>,
    exchange: Exchange,
}

/// Where a `101` response leaves the other end of its tunnel for the connection.
pub type TunnelSlot = std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>;

impl Finishing {
    fn apply(self, mut res: Response<Body>) -> Response<Body> {
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            let other_end = res
                .extensions_mut()
                .remove::<response::Tunnel>()
                .and_then(|t| t.0.lock().unwrap_or_else(|p| p.into_inner()).take());
            match other_end {
                // Only HTTP/1 switches protocols on a connection.
                Some(other_end) if self.http1 => {
                    *self.tunnel.lock().unwrap_or_else(|p| p.into_inner()) = Some(other_end);
                }
                _ => res = response::error(StatusCode::BAD_GATEWAY),
            }
        } else if let Some((client_end, limits)) = self.h2_tunnel {
            if res.status().is_success() {
                let other_end = res
                    .extensions_mut()
                    .remove::<response::Tunnel>()
                    .and_then(|t| t.0.lock().unwrap_or_else(|p| p.into_inner()).take());
                match other_end {
                    Some(other_end) => {
                        let clock = Arc::clone(&self.exchange.clock);
                        crate::net::tunnel::spawn_h2(client_end, other_end, clock, limits);
                    }
                    // A success with nothing behind it would leave the client's
                    // stream open to nobody.
                    None => res = response::error(StatusCode::BAD_GATEWAY),
                }
            }
        }
        if self.head {
            strip_body(&mut res);
        }
        let refused = ends_connection(res.status());
        // A close-delimited body (length unknown) ends an HTTP/1.0 connection too.
        let unframed = self.http10 && res.body().exact_len().is_none();
        let draining = crate::net::clock::draining();
        // A refusal given before a body held back for `100 Continue` was asked for:
        // hyper does not wait for that body but closes, so the answer says so.
        let withheld = self.awaits_continue
            && (res.status().is_client_error() || res.status().is_server_error())
            && self.exchange.clock.body_unread();
        let closes = self.client_closes || self.body_abandoned;
        if self.http1 && (closes || refused || unframed || draining || withheld) {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            if self.http10 {
                // So hyper closes, instead of replacing `close` with the `keep-alive`
                // a 1.0 client asked for; the status line still says HTTP/1.1.
                *res.version_mut() = Version::HTTP_10;
            }
            if refused {
                self.exchange.clock.closing_on_error();
            }
        }
        if let Some(queue) = self.sendfile {
            res.body_mut().use_sendfile(queue);
        }
        if !self.http1 {
            res.body_mut()
                .count_handed(Arc::clone(&self.exchange.clock.handed));
        }
        self.exchange.attach(&mut res);
        res
    }
}

/// Whether an HTTP/1 connection ends after a response with `status`: a request that
/// was malformed or too large may have been misread (and what follows it with it), and
/// after a server fault a fresh connection is the safe retry; nginx closes after the
/// same statuses.
fn ends_connection(status: StatusCode) -> bool {
    // 499: the client was taken to have gone (it closed, or half-closed, its side).
    status.as_u16() == 499
        || matches!(
            status,
            StatusCode::BAD_REQUEST
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::URI_TOO_LONG
                | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
                | StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::NOT_IMPLEMENTED
        )
}

/// Whether the client expects the connection to stay open after this exchange: HTTP/2
/// always, HTTP/1.1 unless it says `close`, HTTP/1.0 only when it asks (RFC 9112 §9.3).
fn keeps_alive<B>(req: &Request<B>) -> bool {
    let says = |token: &str| {
        req.headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match req.version() {
        Version::HTTP_10 | Version::HTTP_09 => says("keep-alive"),
        Version::HTTP_11 => !says("close"),
        _ => true,
    }
}

/// HEAD: the headers GET would send, including Content-Length, and no body. Responses
/// that have no content by definition (304, 204) get no Content-Length either.
fn strip_body(res: &mut Response<Body>) {
    let contentless = matches!(
        res.status(),
        StatusCode::NOT_MODIFIED | StatusCode::NO_CONTENT
    );
    if let Some(len) = res.body().exact_len().filter(|_| !contentless) {
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    res.body_mut().clear();
}
