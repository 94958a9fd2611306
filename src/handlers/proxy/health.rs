//! Active health checks (a rule's `health-uri`): every `health-interval`, each
//! upstream of the route is asked `GET health-uri`; one that does not answer with a
//! 2xx or 3xx in time leaves the rotation until a check passes again. The passive
//! check (connection failures in real requests) works alongside.
//!
//! The checks run on a thread of their own, started with the route's first
//! proxied request (a route built only to validate a configuration starts none),
//! every upstream at once, and end when the route is dropped (a reload replaced
//! it): the route cancels them, and the thread holds the pool only weakly. Each
//! check is a short connection of its own, with the route's `upstream-headers` and
//! `Host` naming the upstream's address.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

use super::upstream::{self, Address, Pool, Upstream};

/// What a route's checks need.
#[derive(Clone)]
pub struct HealthCheck {
    /// The path and query asked of each upstream.
    pub uri: String,
    /// Between two rounds of checks.
    pub interval: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long the answer may take once connected.
    pub response_timeout: Duration,
    /// For https upstreams.
    pub tls: Option<tokio_rustls::TlsConnector>,
    /// The route's `upstream-headers`, sent with each check as with each request.
    pub add_headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Cancelled when the route is dropped.
    pub stop: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthCheck")
            .field("uri", &self.uri)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The longest a check waits for its answer once connected, whatever the route's
/// `response-timeout` (a health endpoint answers at once, or is not healthy).
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// The default `health-interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Starts checking the upstreams of `pool` on a thread of its own; returns once it
/// runs. Nothing starts when no thread or runtime can be made (said once); the
/// passive checks go on.
pub fn start(pool: &Arc<Pool>, check: HealthCheck) {
    let pool = Arc::downgrade(pool);
    let started = std::thread::Builder::new()
        .name("wharf-health".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::warn!("health checks not started: {e}");
                    return;
                }
            };
            let stop = check.stop.clone();
            runtime.block_on(async move {
                tokio::select! {
                    () = run(pool, check) => {}
                    () = stop.cancelled() => {}
                }
            });
        });
    if let Err(e) = started {
        tracing::warn!("health checks not started: {e}");
    }
}

/// Rounds of checks, every upstream at once, until the pool is gone.
async fn run(pool: Weak<Pool>, check: HealthCheck) {
    let check = Arc::new(check);
    loop {
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let upstreams: Vec<Arc<Upstream>> = pool.upstreams.clone();
        drop(pool);
        let mut round = tokio::task::JoinSet::new();
        for upstream in upstreams {
            let check = Arc::clone(&check);
            round.spawn(async move {
                let healthy = passes(&upstream, &check).await;
                upstream.checked(healthy);
            });
        }
        while round.join_next().await.is_some() {}
        tokio::time::sleep(check.interval).await;
    }
}

/// Whether `upstream` answers the check with a 2xx or 3xx in time.
async fn passes(upstream: &Upstream, check: &HealthCheck) -> bool {
    let Ok(stream) =
        upstream::connect(&upstream.address, check.connect_timeout, check.tls.clone()).await
    else {
        return false;
    };
    let exchange = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(connection);
        let host = match &upstream.address {
            Address::Tcp(hostport) | Address::Tls(hostport, _) => hostport.as_str(),
            Address::Unix(_) => "localhost",
        };
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(check.uri.as_str())
            .header(header::HOST, HeaderValue::from_str(host).ok()?)
            .header(header::USER_AGENT, "wharf health check")
            .header(header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .ok()?;
        for (name, value) in &check.add_headers {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        let res = sender.send_request(req).await.ok()?;
        Some(res.status())
    };
    match tokio::time::timeout(check.response_timeout, exchange).await {
        Ok(Some(status)) => status.is_success() || status.is_redirection(),
        _ => false,
    }
}
