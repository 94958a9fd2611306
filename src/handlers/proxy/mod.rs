//! The reverse proxy: requests under a prefix go to an app server (gunicorn,
//! uvicorn, a Node or Go process) over HTTP/1.1 or a unix socket, whatever the client
//! spoke to wharf, or over TLS (`https://`, certificates checked against the
//! system's roots and any `tls-ca` the route adds).
//!
//! wharf protects the app from slow clients: by default a request body is received
//! whole (in memory up to 64 KiB, then in an unnamed temporary file) before the
//! upstream is contacted, so a slow upload never holds an app worker. Requests are
//! re-serialised by hyper's client — never forwarded as raw bytes — so no framing
//! ambiguity reaches the app. Hop-by-hop fields are dropped both ways; the client's
//! address, scheme and host go in `X-Forwarded-*` and `Forwarded` (replacing what
//! the client sent, unless it is a trusted proxy); `Via` is added. Connections to
//! upstreams are pooled and kept alive (hyper-util's client); a request whose
//! connection cannot be made is tried on the next upstream, and one that keeps
//! failing rests for a while. Unreachable → 502; no response head in time → 504; an
//! upstream that dies mid-body breaks the client's response off rather than end it
//! short.

pub mod buffer;
pub mod cache;
pub mod forward;
pub mod health;
pub mod upstream;
pub mod websocket;

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ipnet::IpNet;

use crate::handlers::proxy::forward::ProxyBody;
use crate::handlers::proxy::upstream::{Balance, Connector, Pool, Upstream};

/// How long an idle upstream connection is kept for reuse.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// The most an upstream connection reads at once, which bounds a response head too
/// (at 64 to 128 KiB, as hyper's reads fall; nginx's default bound is 4 or 8 KiB). hyper's default, about 400 KiB,
/// would let one slow client's response hold that much memory.
pub(crate) const UPSTREAM_READ_BUFFER: usize = 64 * 1024;

/// One proxied prefix and its options.
#[derive(Debug)]
pub struct Route {
    /// The decoded path prefix the route serves (`/api/`), replaced by an upstream
    /// URL's own path when it has one.
    pub prefix: String,
    /// Serve a file under the root when one exists, else proxy (`files-first`).
    pub files_first: bool,
    /// Receive the whole request body before contacting the upstream.
    pub buffer_request: bool,
    /// Largest request body; `None`: the server's (`--max-upload-size`), which
    /// the site sets with [`Route::use_server_limit`].
    pub max_body: Option<u64>,
    server_max_body: std::sync::atomic::AtomicU64,
    /// How long a response head may take once the request is sent.
    pub response_timeout: Duration,
    /// Fields added to every proxied request.
    pub add_headers: Vec<(HeaderName, HeaderValue)>,
    /// Clients whose `X-Forwarded-*` and `Forwarded` fields are kept (and added to).
    pub trusted: Vec<IpNet>,
    /// Whether its responses go through the shared cache, when there is one.
    pub cache: bool,
    pool: Arc<Pool>,
    client: Client<Connector, ProxyBody>,
    /// The same client without a pool: a request sent again after its kept
    /// connection closed unanswered goes out on a new connection, never on another
    /// kept one that may have closed the same way.
    fresh_client: Client<Connector, ProxyBody>,
    /// Active health checks, started with the first request.
    health: Option<(health::HealthCheck, std::sync::Once)>,
}

/// What a proxy route is built from (the command line or a `[[rule]]`).
#[derive(Debug, Clone)]
pub struct RouteSettings {
    /// See [`Route::prefix`].
    pub prefix: String,
    /// Upstream URLs: `http://host:port[/path]` or `unix:/path`.
    pub upstreams: Vec<String>,
    /// See [`Route::files_first`].
    pub files_first: bool,
    /// See [`Route::buffer_request`].
    pub buffer_request: bool,
    /// See [`Route::max_body`].
    pub max_body: Option<u64>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// See [`Route::response_timeout`].
    pub response_timeout: Duration,
    /// See [`Route::add_headers`].
    pub add_headers: Vec<(HeaderName, HeaderValue)>,
    /// See [`Route::trusted`].
    pub trusted: Vec<IpNet>,
    /// Round robin instead of least outstanding requests.
    pub round_robin: bool,
    /// PEM certificates trusted for https upstreams besides the system's.
    pub tls_roots: Vec<std::path::PathBuf>,
    /// See [`Route::cache`] (a rule's `cache = false` turns it off).
    pub cache: bool,
    /// The path asked of each upstream by the active health checks (`health-uri`).
    pub health_uri: Option<String>,
    /// Between two rounds of health checks (`health-interval`).
    pub health_interval: Duration,
}

impl RouteSettings {
    /// Defaults for `prefix` proxied to `upstreams`.
    pub fn new(prefix: String, upstreams: Vec<String>) -> RouteSettings {
        RouteSettings {
            prefix,
            upstreams,
            files_first: false,
            buffer_request: true,
            max_body: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            add_headers: Vec::new(),
            trusted: Vec::new(),
            round_robin: false,
            tls_roots: Vec::new(),
            cache: true,
            health_uri: None,
            health_interval: health::DEFAULT_INTERVAL,
        }
    }
}

impl Drop for Route {
    /// A route replaced (by a reload) or gone takes its health checks with it.
    fn drop(&mut self) {
        if let Some((check, _)) = &self.health {
            check.stop.cancel();
        }
    }
}

impl Route {
    /// The largest request body this route takes.
    pub fn max_body(&self) -> u64 {
        self.max_body.unwrap_or_else(|| {
            self.server_max_body
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Sets the server's body limit (`--max-upload-size`), which holds where the
    /// route sets none.
    pub fn use_server_limit(&self, limit: u64) {
        self.server_max_body
            .store(limit, std::sync::atomic::Ordering::Relaxed);
    }

    /// The route `settings` describe; an upstream URL that does not parse is an error
    /// naming it.
    pub fn new(settings: RouteSettings) -> Result<Route, String> {
        if settings.upstreams.is_empty() {
            return Err("a proxy needs at least one upstream".into());
        }
        let upstreams = settings
            .upstreams
            .iter()
            .map(|u| Upstream::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        let balance = if settings.round_robin {
            Balance::RoundRobin
        } else {
            Balance::LeastOutstanding
        };
        let pool = Arc::new(Pool::new(upstreams, balance));
        let needs_tls = pool
            .upstreams
            .iter()
            .any(|u| matches!(u.address, upstream::Address::Tls(..)));
        let tls = if needs_tls {
            Some(upstream::tls_connector(&settings.tls_roots)?)
        } else {
            None
        };
        let health = settings.health_uri.map(|uri| {
            let check = health::HealthCheck {
                uri,
                interval: settings.health_interval,
                connect_timeout: settings.connect_timeout,
                response_timeout: settings.response_timeout.min(health::MAX_WAIT),
                tls: tls.clone(),
                add_headers: settings.add_headers.clone(),
                stop: tokio_util::sync::CancellationToken::new(),
            };
            (check, std::sync::Once::new())
        });
        let connector = Connector {
            pool: Arc::clone(&pool),
            connect_timeout: settings.connect_timeout,
            tls,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .http1_max_buf_size(UPSTREAM_READ_BUFFER)
            .set_host(false)
            .build(connector.clone());
        let fresh_client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .http1_max_buf_size(UPSTREAM_READ_BUFFER)
            .set_host(false)
            .build(connector);
        Ok(Route {
            prefix: settings.prefix,
            files_first: settings.files_first,
            buffer_request: settings.buffer_request,
            max_body: settings.max_body,
            server_max_body: std::sync::atomic::AtomicU64::new(
                crate::handlers::cgi::DEFAULT_MAX_BODY,
            ),
            response_timeout: settings.response_timeout,
            add_headers: settings.add_headers,
            trusted: settings.trusted,
            cache: settings.cache,
            pool,
            client,
            fresh_client,
            health,
        })
    }

    /// Starts the active health checks, if the route has them and they have not
    /// started yet.
    pub fn start_health_checks(&self) {
        if let Some((check, once)) = &self.health {
            once.call_once(|| health::start(&self.pool, check.clone()));
        }
    }

    /// The path the active health checks ask for, if any (for `--explain`).
    pub fn health_uri(&self) -> Option<&str> {
        self.health.as_ref().map(|(check, _)| check.uri.as_str())
    }

    /// Whether some upstream is in the rotation (not resting after failures).
    pub fn healthy(&self) -> bool {
        self.pool.upstreams.iter().any(|u| !u.is_resting())
    }

    /// The upstreams, for `--explain`.
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        self.pool.upstreams.iter().map(|u| &*u.shown)
    }
}
