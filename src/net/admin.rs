//! The admin listener (`--admin ADDR:PORT`): the metrics in the Prometheus text
//! format (`GET /metrics`), liveness (`GET /healthz`: the process answers) and
//! readiness (`GET /readyz`: the site's listeners are bound and its configuration
//! loaded, and every proxy route has an upstream that is not resting after
//! failures; else 503 naming what is not ready). On a port of its own, so that
//! the site's rules, authentication and logs never see it; HTTP/1.1 only. During a
//! shutdown's grace period it still answers, `/readyz` with 503 (so that a load
//! balancer stops sending) and `/healthz` with 200 (so that the process is not
//! killed while it finishes responses), as Envoy and Kubernetes expect; after an
//! upgrade it stops, the new process answering on the same socket.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::site::checks::{self, HeadLimits};
use crate::site::methods;
use crate::site::router::{Router, Routers};

/// The media types of the two exposition formats: OpenMetrics (what Prometheus
/// asks for first) and the older Prometheus text format (for everyone else).
const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Admin connections held at once; when one more comes, the oldest is closed.
const MAX_CONNECTIONS: usize = 256;

/// The admin connections open, oldest first, each with the token that closes it.
/// Making room by closing the oldest, rather than making a new connection wait,
/// keeps a few silent or half-sent connections from starving the probes and
/// scrapers: a probe is answered in a moment, long before 256 newer connections
/// could push it out.
#[derive(Default)]
struct Open {
    next: u64,
    held: std::collections::VecDeque<(u64, CancellationToken)>,
}

impl Open {
    /// Registers a new connection, closing the oldest when full.
    fn admit(&mut self) -> (u64, CancellationToken) {
        while self.held.len() >= MAX_CONNECTIONS {
            if let Some((_, oldest)) = self.held.pop_front() {
                oldest.cancel();
            }
        }
        let id = self.next;
        self.next += 1;
        let token = CancellationToken::new();
        self.held.push_back((id, token.clone()));
        (id, token)
    }

    fn leave(&mut self, id: u64) {
        self.held.retain(|(held, _)| *held != id);
    }
}

fn lock(open: &std::sync::Mutex<Open>) -> std::sync::MutexGuard<'_, Open> {
    open.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves the admin listener until `stop` (or the process ends); once `closing` is
/// cancelled (shutdown under way) it reports the process not ready.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routers: Routers,
    stop: CancellationToken,
    closing: CancellationToken,
) {
    let open = Arc::new(std::sync::Mutex::new(Open::default()));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors, say: try again shortly rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (id, evicted) = lock(&open).admit();
        let routers = Arc::clone(&routers);
        let closing = closing.clone();
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<_>| {
                let (head, _body) = req.into_parts();
                let res = answer(&routers.load(), &head, closing.is_cancelled());
                async move { Ok::<_, Infallible>(res) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            // Closed by dropping it when a newer connection needs the room.
            tokio::select! {
                _ = connection => {}
                () = evicted.cancelled() => {}
            }
            lock(&open).leave(id);
        });
    }
}

/// Whether the scraper asks for OpenMetrics by name, weighted at least as the
/// classic text format (RFC 9110 §12.5.1; `q=0` is "not acceptable"). Without
/// such a request, the classic format, which every scraper reads.
fn wants_openmetrics(headers: &http::HeaderMap) -> bool {
    let named = crate::http::negotiate::list_members(headers, &header::ACCEPT).any(|member| {
        member.split(';').next().is_some_and(|range| {
            range
                .trim()
                .eq_ignore_ascii_case("application/openmetrics-text")
        })
    });
    let openmetrics =
        crate::http::negotiate::media_quality(headers, "application/openmetrics-text");
    named
        && openmetrics > 0.0
        && openmetrics >= crate::http::negotiate::media_quality(headers, "text/plain")
}

/// What a request head may hold here: a shorter target than the site allows by
/// default, and more than a scraper or a probe sends.
const HEAD_LIMITS: HeadLimits = HeadLimits {
    max_target_len: 4096,
    max_header_size: 16 * 1024,
};

fn answer(router: &Router, req: &Parts, closing: bool) -> Response<Full<Bytes>> {
    // The request checks RFC 9112 asks of any server (one valid Host, framing),
    // as the site's port makes them.
    if let Some(status) = checks::reject(req, &HEAD_LIMITS) {
        return text(status, format!("{status}\n"));
    }
    if !methods::is_known(&req.method) {
        return text(StatusCode::NOT_IMPLEMENTED, "only GET and HEAD\n".into());
    }
    if req.method != Method::GET && req.method != Method::HEAD {
        let mut res = if req.method == Method::OPTIONS {
            text(StatusCode::OK, String::new())
        } else {
            text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into())
        };
        res.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        return res;
    }
    match req.uri.path() {
        "/metrics" => {
            let metrics = crate::metrics::metrics();
            metrics.log_dropped_total(router.log().dropped_total());
            let (body, kind) = if wants_openmetrics(&req.headers) {
                (metrics.encode_openmetrics(), OPENMETRICS_TYPE)
            } else {
                (metrics.encode(), TEXT_TYPE)
            };
            let mut res = text(StatusCode::OK, body);
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            res.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept"));
            res
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" if closing => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready:\nshutting down\n".into(),
        ),
        "/readyz" => match router.not_ready() {
            problems if problems.is_empty() => text(StatusCode::OK, "ready\n".into()),
            problems => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready:\n{}\n", problems.join("\n")),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz, /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
