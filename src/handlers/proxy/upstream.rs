//! Upstreams: where a proxied request goes (`http://host:port[/path]` or
//! `unix:/path/to.sock`), the connector that reaches them, and the choice among
//! several (least outstanding requests, or round robin; an upstream that keeps
//! failing to connect rests for a while).

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Consecutive failures that take an upstream out of the rotation.
const FAILS_TO_REST: u32 = 3;
/// How long it rests.
const REST: Duration = Duration::from_secs(10);

/// Where an upstream listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `host:port` over TCP.
    Tcp(String),
    /// `host:port` over TCP, then TLS with the certificate checked for `host`.
    Tls(String, String),
    /// A unix socket.
    Unix(PathBuf),
}

/// One upstream server.
#[derive(Debug)]
pub struct Upstream {
    /// Where it listens.
    pub address: Address,
    /// The path its URL gave, replacing the matched prefix (`None`: the request path
    /// is passed unchanged).
    pub path: Option<String>,
    /// What the URL said, for messages.
    pub shown: Arc<str>,
    outstanding: AtomicUsize,
    failures: AtomicU32,
    resting_until: Mutex<Option<Instant>>,
    /// Its last active health check failed (see `health.rs`).
    checked_down: AtomicBool,
}

impl Upstream {
    /// Its `host:port` as a Host field names it (`localhost` for a unix socket).
    pub fn authority(&self) -> String {
        match &self.address {
            Address::Tcp(host_port) | Address::Tls(host_port, _) => host_port.clone(),
            Address::Unix(_) => "localhost".to_string(),
        }
    }

    /// The origins (`http://host:port`, and `http://host` at the scheme's default
    /// port) the app may name itself by in a redirect; none for a unix socket.
    pub fn origins(&self) -> Vec<String> {
        let (scheme, host_port, default) = match &self.address {
            Address::Tcp(host_port) => ("http", host_port, ":80"),
            Address::Tls(host_port, _) => ("https", host_port, ":443"),
            Address::Unix(_) => return Vec::new(),
        };
        let mut out = vec![format!("{scheme}://{host_port}")];
        if let Some(host) = host_port.strip_suffix(default) {
            out.push(format!("{scheme}://{host}"));
        }
        out
    }

    /// Parses `http://host:port[/path]` or `unix:/path`.
    pub fn parse(url: &str) -> Result<Upstream, String> {
        let (address, path) = if let Some(sock) = url.strip_prefix("unix:") {
            if !sock.starts_with('/') {
                return Err(format!("{url:?}: a unix socket needs an absolute path"));
            }
            (Address::Unix(PathBuf::from(sock)), None)
        } else {
            let uri: Uri = url
                .parse()
                .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
            let tls = match uri.scheme_str() {
                Some("http") => false,
                Some("https") => true,
                _ => {
                    return Err(format!(
                        "{url:?}: expected http://HOST:PORT, https://HOST:PORT or unix:/PATH"
                    ))
                }
            };
            let authority = uri.authority().ok_or_else(|| format!("{url:?}: no host"))?;
            if let Some((_, host)) = authority.as_str().rsplit_once('@') {
                // Not repeated: it may hold a password.
                let scheme = uri.scheme_str().unwrap_or("http");
                return Err(format!(
                    "\"{scheme}://…@{host}\": no user information in upstream URLs"
                ));
            }
            // A port beyond 65535, or 0, would fail each request, not the start.
            let port = match authority.as_str().rsplit_once(':') {
                Some((_, digits)) if !digits.ends_with(']') => digits
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("{url:?}: invalid port {digits:?}"))?,
                _ => {
                    if tls {
                        443
                    } else {
                        80
                    }
                }
            };
            let host = authority.host();
            if host.is_empty() || host == "[]" {
                return Err(format!("{url:?}: no host"));
            }
            if uri.query().is_some() {
                return Err(format!("{url:?}: an upstream URL has no query"));
            }
            let path = match uri.path() {
                "" | "/" if !url.trim_end().ends_with('/') => None,
                p => Some(p.to_string()),
            };
            let hostport = format!("{host}:{port}");
            let address = if tls {
                Address::Tls(hostport, host.trim_matches(['[', ']']).to_string())
            } else {
                Address::Tcp(hostport)
            };
            (address, path)
        };
        Ok(Upstream {
            address,
            path,
            shown: Arc::from(url),
            outstanding: AtomicUsize::new(0),
            failures: AtomicU32::new(0),
            resting_until: Mutex::new(None),
            checked_down: AtomicBool::new(false),
        })
    }

    /// Whether it is out of the rotation after repeated failures.
    pub fn is_resting(&self) -> bool {
        self.resting(Instant::now())
    }

    fn resting(&self, now: Instant) -> bool {
        if self.checked_down.load(Ordering::Relaxed) {
            return true;
        }
        let until = self.resting_until.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|t| t > now)
    }

    /// Its active health check passed (`true`) or failed; says so when that changes.
    pub fn checked(&self, healthy: bool) {
        let was_down = self.checked_down.swap(!healthy, Ordering::Relaxed);
        if was_down == healthy {
            if healthy {
                tracing::warn!("upstream {} passes its health check again", self.shown);
            } else {
                tracing::warn!(
                    "upstream {} fails its health check; out of rotation",
                    self.shown
                );
            }
        }
    }

    /// A request to it ended: it answered (`ok`) or could not be reached.
    pub fn outcome(&self, ok: bool) {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
        } else if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= FAILS_TO_REST {
            self.failures.store(0, Ordering::Relaxed);
            let mut until = self.resting_until.lock().unwrap_or_else(|p| p.into_inner());
            *until = Some(Instant::now() + REST);
            crate::metrics::metrics().upstream_rested();
            tracing::warn!(
                "upstream {} failed {FAILS_TO_REST} times; resting it for {REST:?}",
                self.shown
            );
        }
    }
}

/// How the next upstream is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// The one with the fewest requests under way.
    #[default]
    LeastOutstanding,
    /// Each in turn.
    RoundRobin,
}

/// The upstreams of one proxy route.
#[derive(Debug)]
pub struct Pool {
    /// In the order configured.
    pub upstreams: Vec<Arc<Upstream>>,
    balance: Balance,
    turn: AtomicUsize,
}

/// An upstream chosen for one request: counted as outstanding until dropped.
#[derive(Debug)]
pub struct Lease {
    /// Which one.
    pub upstream: Arc<Upstream>,
    /// Its index in the pool (names its connections).
    pub index: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.upstream.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// The pool of `upstreams`.
    pub fn new(upstreams: Vec<Upstream>, balance: Balance) -> Pool {
        Pool {
            upstreams: upstreams.into_iter().map(Arc::new).collect(),
            balance,
            turn: AtomicUsize::new(0),
        }
    }

    /// The upstream for the next attempt, not one of `tried`; resting ones only when
    /// nothing else is left.
    pub fn choose(&self, tried: &[usize]) -> Option<Lease> {
        let now = Instant::now();
        let n = self.upstreams.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| !tried.contains(i));
        let pick = |allow_resting: bool| {
            let live = candidates
                .clone()
                .filter(|&i| allow_resting || !self.upstreams[i].resting(now));
            match self.balance {
                Balance::RoundRobin => live.into_iter().next(),
                Balance::LeastOutstanding => {
                    live.min_by_key(|&i| self.upstreams[i].outstanding.load(Ordering::Relaxed))
                }
            }
        };
        let index = pick(false).or_else(|| pick(true))?;
        let upstream = Arc::clone(&self.upstreams[index]);
        upstream.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(Lease { upstream, index })
    }
}

/// The connector hyper's client uses: the host of the URI it is given names the
/// upstream (`u<index>.upstream`), which says where to connect.
#[derive(Clone)]
pub struct Connector {
    pub(super) pool: Arc<Pool>,
    pub(super) connect_timeout: Duration,
    /// For https upstreams: the system's roots, and any the route adds.
    pub(super) tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// The TLS client for https upstreams: certificates checked against the system's
/// roots and the PEM certificates in `extra_roots` (an internal CA).
pub fn tls_connector(
    extra_roots: &[std::path::PathBuf],
) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for cert in system.certs {
        let _ = roots.add(cert);
    }
    for path in extra_roots {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut added = 0;
        for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls_pki_types::CertificateDer<'static> =
                cert.map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{}: no certificate in it", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The host name that stands for upstream `index` in request URIs.
pub fn host_of(index: usize) -> String {
    format!("u{index}.upstream")
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let index = uri
            .host()
            .and_then(|h| h.strip_prefix('u'))
            .and_then(|h| h.split('.').next())
            .and_then(|n| n.parse::<usize>().ok());
        let address = index
            .and_then(|i| self.pool.upstreams.get(i))
            .map(|u| u.address.clone());
        let timeout = self.connect_timeout;
        let tls = self.tls.clone();
        Box::pin(async move {
            let address = address.ok_or_else(|| io::Error::other("no such upstream"))?;
            connect(&address, timeout, tls).await.map(TokioIo::new)
        })
    }
}

/// A connection to the upstream at `address` (TLS with `tls`), within `timeout`.
pub async fn connect(
    address: &Address,
    timeout: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
) -> io::Result<Stream> {
    let connect = async {
        match address {
            Address::Tcp(hostport) => {
                let tcp = TcpStream::connect(hostport.as_str()).await?;
                let _ = tcp.set_nodelay(true);
                Ok(Stream::Tcp(tcp))
            }
            Address::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
            Address::Tls(hostport, host) => {
                let tcp = TcpStream::connect(hostport.as_str()).await?;
                let _ = tcp.set_nodelay(true);
                let name = rustls_pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let tls = tls.ok_or_else(|| io::Error::other("no TLS client"))?;
                tls.connect(name, tcp)
                    .await
                    .map(|s| Stream::Tls(Box::new(s)))
            }
        }
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(stream) => stream,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// A connection to an upstream.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// A unix socket.
    Unix(UnixStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new().extra(Opened(std::time::Instant::now()))
    }
}

/// When a connection to an upstream was made; hyper's client keeps it with the
/// connection, and with an error on it. A request that failed on a connection
/// opened before the request was sent failed on a kept one, which the upstream may
/// have closed while it was idle.
#[derive(Debug, Clone, Copy)]
pub struct Opened(pub std::time::Instant);

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let u = Upstream::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(u.address, Address::Tcp("127.0.0.1:9000".into()));
        assert_eq!(u.path, None);
        let u = Upstream::parse("http://app:9000/v1/").unwrap();
        assert_eq!(u.path.as_deref(), Some("/v1/"));
        assert_eq!(u.address, Address::Tcp("app:9000".into()));
        let u = Upstream::parse("http://[::1]").unwrap();
        assert_eq!(u.address, Address::Tcp("[::1]:80".into()));
        let u = Upstream::parse("https://[::1]:8443/").unwrap();
        assert_eq!(u.address, Address::Tls("[::1]:8443".into(), "::1".into()));
        let u = Upstream::parse("unix:/run/app.sock").unwrap();
        assert_eq!(u.address, Address::Unix("/run/app.sock".into()));
        for bad in [
            "ftp://x",
            "unix:rel.sock",
            "http://u:p@h/",
            "nonsense",
            "http://h/?q=1",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:0/",
            "http://h:/",
            "http://:80",
            "http://:0",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
        // A password in a refused URL is not repeated in the message.
        let said = Upstream::parse("http://user:s3cr3t@h:1/").unwrap_err();
        assert!(!said.contains("s3cr3t") && said.contains("h:1"), "{said}");
    }

    #[test]
    fn least_outstanding_and_resting() {
        let pool = Pool::new(
            vec![
                Upstream::parse("http://a:1").unwrap(),
                Upstream::parse("http://b:1").unwrap(),
            ],
            Balance::LeastOutstanding,
        );
        let first = pool.choose(&[]).unwrap();
        let second = pool.choose(&[]).unwrap();
        assert_ne!(first.index, second.index, "the idle one is chosen");
        drop(second);
        for _ in 0..FAILS_TO_REST {
            pool.upstreams[1].outcome(false);
        }
        let next = pool.choose(&[]).unwrap();
        assert_eq!(next.index, 0, "the failing one rests");
        assert_eq!(
            pool.choose(&[0]).map(|l| l.index),
            Some(1),
            "unless nothing else is left"
        );
    }
}
