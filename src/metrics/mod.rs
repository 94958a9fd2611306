//! What wharf counts, for `GET /metrics` on the admin listener (Prometheus text
//! format, encoded by the `prometheus-client` crate).
//!
//! One process-wide set of series, reached through [`metrics()`] from wherever a
//! thing happens (the connection layer, the proxy cache, CGI). Every labelled
//! series a request touches is created once, at startup, and kept as a handle: a
//! request costs atomic increments and one histogram observation, never a lookup
//! by labels.

use std::sync::OnceLock;
use std::time::Duration;

use http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Methods counted by name; the rest count as `other`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "other",
];
/// Status classes.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    status: &'static str,
    handler: &'static str,
}

/// Which handler answered a request; `none` for answers the site gave itself
/// (rejections, redirects, `--dev`'s own). A response carries it in its extensions,
/// except the static handler's, whose answers (the common case, cache hits among
/// them) go unmarked: a missing mark means `Static`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandlerKind {
    /// No handler.
    None,
    /// Files, listings, archives, and changes to them.
    #[default]
    Static,
    /// An app server.
    Proxy,
    /// A CGI program.
    Cgi,
    /// A FastCGI application.
    FastCgi,
}

const HANDLERS: [&str; 5] = ["none", "static", "proxy", "cgi", "fastcgi"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The protocol a connection is being served with.
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// HTTP/1.x, plain.
    Http1,
    /// HTTP/1.x over TLS.
    Http1Tls,
    /// HTTP/2 with prior knowledge (h2c).
    H2c,
    /// HTTP/2 over TLS.
    H2,
}

impl Protocol {
    fn index(self) -> usize {
        self as usize
    }
}

const PROTOCOLS: [&str; 4] = ["http1", "http1-tls", "h2c", "h2"];

/// What the shared proxy cache did with a request.
#[derive(Debug, Clone, Copy)]
pub enum CacheOutcome {
    /// Answered from a stored response.
    Hit,
    /// Nothing stored: asked upstream.
    Miss,
    /// A stored response was validated upstream.
    Revalidated,
    /// A stale response answered (stale-while-revalidate, stale-if-error).
    Stale,
    /// A response was stored.
    Stored,
}

const CACHE_OUTCOMES: [&str; 5] = ["hit", "miss", "revalidated", "stale", "stored"];

/// A two-way outcome counted by the caches and the TLS layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Found (a cache hit; a completed handshake).
    Hit,
    /// Not found (a cache miss; a failed handshake).
    Miss,
}

/// Every series, with the handles requests use.
pub struct Metrics {
    registry: Registry,
    requests: Vec<Counter>,
    received: Counter,
    hot_cache: Vec<Counter>,
    hot_cache_bytes: Gauge,
    compression_cache: Vec<Counter>,
    compression_cache_bytes: Gauge,
    log_dropped: Counter,
    tls_handshakes: Vec<Counter>,
    upload_bytes: Counter,
    upstream_requests: Vec<Counter>,
    upstream_time: Histogram,
    upstream_rests: Counter,
    duration: Histogram,
    bytes_out: Counter,
    connections: Vec<Gauge>,
    cache: Vec<Counter>,
    cgi_running: Gauge,
    cgi_stopped: Counter,
    reloads: Vec<Counter>,
    certificate_reloads: Vec<Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("wharf");
        let requests_family = Family::<RequestLabels, Counter>::default();
        let mut requests = Vec::new();
        for method in METHODS {
            for status in CLASSES {
                for handler in HANDLERS {
                    requests.push(
                        requests_family
                            .get_or_create(&RequestLabels {
                                method,
                                status,
                                handler,
                            })
                            .clone(),
                    );
                }
            }
        }
        registry.register(
            "requests",
            "Requests answered, by method, status class and handler",
            requests_family,
        );
        let received = Counter::default();
        registry.register_with_unit(
            "received",
            "Bytes received from clients (request heads and bodies)",
            prometheus_client::registry::Unit::Bytes,
            received.clone(),
        );
        let hot_cache = outcomes(
            &mut registry,
            "hot_cache",
            "Static requests the ready-response cache answered (hit) or not (miss)",
            &["hit", "miss"],
        );
        let hot_cache_bytes = Gauge::default();
        registry.register_with_unit(
            "hot_cache_size",
            "Memory held by the ready-response cache",
            prometheus_client::registry::Unit::Bytes,
            hot_cache_bytes.clone(),
        );
        let compression_cache = outcomes(
            &mut registry,
            "compression_cache",
            "Compressed variants found in the variant cache (hit) or compressed (miss)",
            &["hit", "miss"],
        );
        let compression_cache_bytes = Gauge::default();
        registry.register_with_unit(
            "compression_cache_size",
            "Memory held by compressed variants",
            prometheus_client::registry::Unit::Bytes,
            compression_cache_bytes.clone(),
        );
        let log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access-log lines dropped because the log's writer could not keep up",
            log_dropped.clone(),
        );
        let tls_handshakes = outcomes(
            &mut registry,
            "tls_handshakes",
            "TLS handshakes, completed or failed (including timeouts)",
            &["ok", "failed"],
        );
        let upload_bytes = Counter::default();
        registry.register_with_unit(
            "upload",
            "Bytes of uploads stored (PUT, forms, tus)",
            prometheus_client::registry::Unit::Bytes,
            upload_bytes.clone(),
        );
        let upstream_requests = outcomes(
            &mut registry,
            "upstream_requests",
            "Requests sent to app servers: answered, or failed (no connection, timeout, broken answer)",
            &["ok", "error"],
        );
        let upstream_time = Histogram::new(exponential_buckets(0.0005, 4.0, 10));
        registry.register_with_unit(
            "upstream_response_time",
            "Time from sending a request to an app server to its response head",
            prometheus_client::registry::Unit::Seconds,
            upstream_time.clone(),
        );
        let upstream_rests = Counter::default();
        registry.register(
            "upstream_rests",
            "Times an upstream was taken out of rotation after failing to connect",
            upstream_rests.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        registry.register_with_unit(
            "request_duration",
            "Time from a request's head being read to the end of its response",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        let bytes_out = Counter::default();
        registry.register_with_unit(
            "response_body",
            "Response body bytes sent",
            prometheus_client::registry::Unit::Bytes,
            bytes_out.clone(),
        );
        let connections_family = Family::<ProtocolLabels, Gauge>::default();
        let connections = PROTOCOLS
            .iter()
            .map(|protocol| {
                connections_family
                    .get_or_create(&ProtocolLabels { protocol })
                    .clone()
            })
            .collect();
        registry.register(
            "connections_active",
            "Connections being served, by protocol (idle kept-alive HTTP/1 connections waiting in the parking lot are not counted)",
            connections_family,
        );
        let cache_family = Family::<OutcomeLabels, Counter>::default();
        let cache = CACHE_OUTCOMES
            .iter()
            .map(|outcome| {
                cache_family
                    .get_or_create(&OutcomeLabels { outcome })
                    .clone()
            })
            .collect();
        registry.register(
            "proxy_cache",
            "What the shared proxy cache did with requests",
            cache_family,
        );
        let cgi_running = Gauge::default();
        registry.register("cgi_running", "CGI programs running", cgi_running.clone());
        let cgi_stopped = Counter::default();
        registry.register(
            "cgi_stopped",
            "CGI programs stopped by wharf (answer abandoned, timeout, shutdown)",
            cgi_stopped.clone(),
        );
        let reloads = outcomes(
            &mut registry,
            "config_reloads",
            "Configuration reloads (SIGHUP), applied or failed",
            &["applied", "failed"],
        );
        let certificate_reloads = outcomes(
            &mut registry,
            "tls_certificate_reloads",
            "TLS certificate reloads (SIGHUP or changed files), applied or failed \
             (a failed one keeps the certificate in use)",
            &["applied", "failed"],
        );
        Metrics {
            registry,
            reloads,
            certificate_reloads,
            requests,
            received,
            hot_cache,
            hot_cache_bytes,
            compression_cache,
            compression_cache_bytes,
            log_dropped,
            tls_handshakes,
            upload_bytes,
            upstream_requests,
            upstream_time,
            upstream_rests,
            duration,
            bytes_out,
            connections,
            cache,
            cgi_running,
            cgi_stopped,
        }
    }

    /// Counts one answered request.
    pub fn request(
        &self,
        method: &Method,
        status: u16,
        handler: HandlerKind,
        body_bytes: u64,
        took: Duration,
    ) {
        let m = METHODS
            .iter()
            .position(|name| *name == method.as_str())
            .unwrap_or(METHODS.len() - 1);
        self.count(m, status, handler, body_bytes, took);
    }

    /// Counts one request whose method is `METHODS[m]`.
    fn count(&self, m: usize, status: u16, handler: HandlerKind, body_bytes: u64, took: Duration) {
        let class =
            StatusCode::from_u16(status).map_or(4, |s| (s.as_u16() / 100).clamp(1, 5) as usize - 1);
        let index = (m * CLASSES.len() + class) * HANDLERS.len() + handler as usize;
        if let Some(counter) = self.requests.get(index) {
            counter.inc();
        }
        self.duration.observe(took.as_secs_f64());
        self.bytes_out.inc_by(body_bytes);
    }

    /// Counts a request refused before it could be read (a head hyper could not
    /// parse, an unsupported version): its method is unknown ("other") and no
    /// handler saw it.
    pub fn rejected(&self, status: u16) {
        self.count(
            METHODS.len() - 1,
            status,
            HandlerKind::None,
            0,
            Duration::ZERO,
        );
    }

    /// A connection starts being served with `protocol`; it is counted until the
    /// returned guard is dropped.
    pub fn connection(&self, protocol: Protocol) -> ConnectionGuard {
        let gauge = self.connections[protocol.index()].clone();
        gauge.inc();
        ConnectionGuard(gauge)
    }

    /// Counts what the proxy cache did.
    pub fn cache(&self, outcome: CacheOutcome) {
        self.cache[outcome as usize].inc();
    }

    /// A CGI program started; counted as running until the guard is dropped.
    pub fn cgi_started(&self) -> ProgramGuard {
        self.cgi_running.inc();
        ProgramGuard(self.cgi_running.clone())
    }

    /// Wharf stopped a CGI program.
    pub fn cgi_stopped(&self) {
        self.cgi_stopped.inc();
    }

    /// Counts bytes received from a client.
    pub fn received(&self, bytes: u64) {
        self.received.inc_by(bytes);
    }

    /// Counts a lookup of the ready-response cache; `size` is what it holds now.
    pub fn hot_cache(&self, outcome: Lookup) {
        self.hot_cache[outcome as usize].inc();
    }

    /// The memory the ready-response cache holds.
    pub fn hot_cache_size(&self, bytes: usize) {
        self.hot_cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Counts a lookup of the compressed-variant cache.
    pub fn compression_cache(&self, outcome: Lookup) {
        self.compression_cache[outcome as usize].inc();
    }

    /// The memory compressed variants hold.
    pub fn compression_cache_size(&self, bytes: usize) {
        self.compression_cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Brings the count of access-log lines dropped up to `total` (the log keeps
    /// its own count; it is read when the metrics are).
    pub fn log_dropped_total(&self, total: u64) {
        let counted = self.log_dropped.get();
        if total > counted {
            self.log_dropped.inc_by(total - counted);
        }
    }

    /// Counts a TLS handshake: completed (`Hit`) or failed.
    pub fn tls_handshake(&self, outcome: Lookup) {
        self.tls_handshakes[outcome as usize].inc();
    }

    /// Counts bytes of an upload written.
    pub fn uploaded(&self, bytes: u64) {
        self.upload_bytes.inc_by(bytes);
    }

    /// Counts a request to an app server: its response head after `took`, or an
    /// error (`None`).
    pub fn upstream(&self, took: Option<Duration>) {
        match took {
            Some(took) => {
                self.upstream_requests[0].inc();
                self.upstream_time.observe(took.as_secs_f64());
            }
            None => {
                self.upstream_requests[1].inc();
            }
        }
    }

    /// Counts an upstream taken out of rotation.
    pub fn upstream_rested(&self) {
        self.upstream_rests.inc();
    }

    /// Counts a reload of the configuration, `applied` or failed.
    pub fn reload(&self, applied: bool) {
        self.reloads[usize::from(!applied)].inc();
    }

    /// Counts a reload of the TLS certificate, `applied` or failed.
    pub fn certificate_reload(&self, applied: bool) {
        self.certificate_reloads[usize::from(!applied)].inc();
    }

    /// Every series in the OpenMetrics text format (what the crate writes, and
    /// what Prometheus asks for first).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Every series in the older Prometheus text format (0.0.4), which tools such
    /// as `promtool check metrics` read: a counter's `HELP` and `TYPE` name its
    /// `_total` samples, and there are no `UNIT` or `EOF` lines.
    pub fn encode(&self) -> String {
        to_text_format(&self.encode_openmetrics())
    }
}

/// A counter family with one label, `outcome`, registered as `name`; one handle per
/// outcome, in order.
fn outcomes(
    registry: &mut Registry,
    name: &str,
    help: &str,
    outcomes: &[&'static str],
) -> Vec<Counter> {
    let family = Family::<OutcomeLabels, Counter>::default();
    let handles = outcomes
        .iter()
        .map(|outcome| family.get_or_create(&OutcomeLabels { outcome }).clone())
        .collect();
    registry.register(name, help, family);
    handles
}

/// OpenMetrics text as Prometheus text format 0.0.4.
fn to_text_format(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|kind| {
            let rest = line.strip_prefix(kind)?;
            let (name, after) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{kind}{name}_total {after}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Counts a connection as active while it lives.
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a CGI program as running while it lives.
pub struct ProgramGuard(Gauge);

impl Drop for ProgramGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_encoded_with_their_labels() {
        let m = Metrics::new();
        m.request(
            &Method::GET,
            200,
            HandlerKind::Static,
            5,
            Duration::from_millis(3),
        );
        m.request(
            &Method::from_bytes(b"BREW").unwrap(),
            501,
            HandlerKind::None,
            0,
            Duration::ZERO,
        );
        m.upstream(None);
        m.tls_handshake(Lookup::Hit);
        m.cache(CacheOutcome::Hit);
        let guard = m.connection(Protocol::H2);
        let text = m.encode();
        assert!(
            text.contains(
                "wharf_requests_total{method=\"GET\",status=\"2xx\",handler=\"static\"} 1"
            ),
            "{text}"
        );
        assert!(text
            .contains("wharf_requests_total{method=\"other\",status=\"5xx\",handler=\"none\"} 1"));
        assert!(text.contains("wharf_upstream_requests_total{outcome=\"error\"} 1"));
        assert!(text.contains("wharf_tls_handshakes_total{outcome=\"ok\"} 1"));
        assert!(text.contains("wharf_proxy_cache_total{outcome=\"hit\"} 1"));
        assert!(text.contains("wharf_connections_active{protocol=\"h2\"} 1"));
        assert!(text.contains("wharf_response_body_bytes_total 5"));
        assert!(
            text.contains("# TYPE wharf_requests_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        assert!(m.encode_openmetrics().ends_with("# EOF\n"));
        drop(guard);
        assert!(m
            .encode()
            .contains("wharf_connections_active{protocol=\"h2\"} 0"));
    }
}
