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
}

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

/// Every series, with the handles requests use.
pub struct Metrics {
    registry: Registry,
    requests: Vec<Counter>,
    duration: Histogram,
    bytes_out: Counter,
    connections: Vec<Gauge>,
    cache: Vec<Counter>,
    cgi_running: Gauge,
    cgi_stopped: Counter,
    reloads: Vec<Counter>,
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
                requests.push(
                    requests_family
                        .get_or_create(&RequestLabels { method, status })
                        .clone(),
                );
            }
        }
        registry.register(
            "requests",
            "Requests answered, by method and status class",
            requests_family,
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
        let reloads_family = Family::<OutcomeLabels, Counter>::default();
        let reloads = ["applied", "failed"]
            .iter()
            .map(|outcome| {
                reloads_family
                    .get_or_create(&OutcomeLabels { outcome })
                    .clone()
            })
            .collect();
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP), applied or failed",
            reloads_family,
        );
        Metrics {
            registry,
            reloads,
            requests,
            duration,
            bytes_out,
            connections,
            cache,
            cgi_running,
            cgi_stopped,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, method: &Method, status: u16, body_bytes: u64, took: Duration) {
        let m = METHODS
            .iter()
            .position(|name| *name == method.as_str())
            .unwrap_or(METHODS.len() - 1);
        let class =
            StatusCode::from_u16(status).map_or(4, |s| (s.as_u16() / 100).clamp(1, 5) as usize - 1);
        if let Some(counter) = self.requests.get(m * CLASSES.len() + class) {
            counter.inc();
        }
        self.duration.observe(took.as_secs_f64());
        self.bytes_out.inc_by(body_bytes);
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

    /// Counts a reload of the configuration, `applied` or failed.
    pub fn reload(&self, applied: bool) {
        self.reloads[usize::from(!applied)].inc();
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
        m.request(&Method::GET, 200, 5, Duration::from_millis(3));
        m.request(
            &Method::from_bytes(b"BREW").unwrap(),
            501,
            0,
            Duration::ZERO,
        );
        m.cache(CacheOutcome::Hit);
        let guard = m.connection(Protocol::H2);
        let text = m.encode();
        assert!(
            text.contains("wharf_requests_total{method=\"GET\",status=\"2xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("wharf_requests_total{method=\"other\",status=\"5xx\"} 1"));
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
