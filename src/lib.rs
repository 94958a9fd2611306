//! wharf: serve a folder over HTTP, safely.
//!
//! A request flows one way: [`net`] (listeners, connections, protocols, timeouts) →
//! [`site`] (request checks, method policy, rules) → one of [`handlers`] (through
//! their seam) → a [`http::body::Body`] back out. [`http`] holds the pieces every
//! layer speaks, [`fs`] is the one resolver of paths under the served root, [`log`]
//! the access log; [`config`] builds every layer's settings, and this file wires
//! them together. ARCHITECTURE.md describes the whole.

#[cfg(not(unix))]
compile_error!("wharf needs a Unix-like system (it resolves paths with openat/openat2)");

/// `eprintln!` that never panics: a line for stderr is dropped when stderr cannot
/// take it (its reader gone, a full disk), as nginx goes on when its error log
/// cannot be written. A reload or a shutdown must not end in a panic because
/// nobody reads their news.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod config;
pub mod fs;
pub mod handlers;
pub mod http;
pub mod log;
pub mod metrics;
pub mod net;
pub mod properties;
pub mod site;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::cli::Config;
use crate::fs::Root;
use crate::handlers::static_files::{self, StaticFiles};
use crate::handlers::uploads::{self, Uploads};
use crate::handlers::Handlers;
use crate::log::access::AccessLog;
use crate::net::connection::{Limits, ListenerKind};
use crate::net::parking::ParkingLot;
use crate::net::tls::{self, Tls};
use crate::site::checks::HeadLimits;
use crate::site::dev::Dev;
use crate::site::{router, Router};

/// Blocking-pool threads per worker (file I/O, listings, compression).
const BLOCKING_THREADS_PER_WORKER: usize = 64;

/// Checks what `--explain` can check without listening: the root opens as a folder
/// and the certificate files load. Returns what is worth a warning (see
/// [`Router::warnings`]), or the error `run` would stop with.
pub fn check(config: &Config) -> Result<Vec<String>, String> {
    // The cache folder is left as it is: a running wharf may be using it. That it
    // could be made is checked, as is the self-signed certificate's place.
    let mut config = config.clone();
    if let Some(cache) = &mut config.proxy_cache {
        if let Some(dir) = cache.dir.take() {
            crate::fs::folder_could_be_made(&dir)
                .map_err(|e| format!("--proxy-cache-dir {}: {e}", dir.display()))?;
        }
    }
    if matches!(config.tls, Some(tls::CertSource::SelfSigned)) {
        let dir = tls::self_signed_dir()?;
        crate::fs::folder_could_be_made(&dir).map_err(|e| {
            format!(
                "cannot store the self-signed certificate in {}: {e}",
                dir.display()
            )
        })?;
    }
    let config = &config;
    let router = build_router(config, AccessLog::quiet(), proxy_cache(config)?, None)?;
    if let Some(tls::CertSource::Files { cert, key }) = &config.tls {
        tls::load(cert, key)?;
    }
    Ok(router.warnings())
}

/// The site's rules with the `--proxy` routes first (longest prefix first), so they
/// win over rules from the file; the file's proxy routes, shared with `site`, are
/// given `max_upload_size` as the limit where they set none.
fn with_proxies(
    site: &crate::site::rules::Site,
    proxies: &[handlers::proxy::RouteSettings],
    max_upload_size: u64,
) -> Result<crate::site::rules::Site, String> {
    let mut site = site.clone();
    // A proxy rule without its own `max-upload-size` takes the server's.
    for rule in &site.rules {
        if let Some(handlers::Handler::Proxy(route)) = &rule.handler {
            route.use_server_limit(max_upload_size);
        }
    }
    let mut rules = Vec::new();
    for settings in proxies {
        let glob = if settings.prefix.ends_with('/') {
            settings.prefix.clone()
        } else {
            format!("{}/", settings.prefix)
        };
        let route = handlers::proxy::Route::new(settings.clone())
            .map_err(|e| format!("--proxy {}: {e}", settings.prefix))?;
        rules.push(crate::site::rules::Rule::for_handler(
            crate::site::rules::Glob::parse(&glob)
                .map_err(|e| format!("--proxy {}: {e}", settings.prefix))?,
            handlers::Handler::Proxy(Arc::new(route)),
        ));
    }
    rules.append(&mut site.rules);
    site.rules = rules;
    Ok(site)
}

/// The site's rules with `--cgi`'s after them: `/cgi-bin/` and `/htbin/` run
/// programs, unless a rule of the file says otherwise for a path.
fn with_cgi(
    mut site: crate::site::rules::Site,
    cgi: bool,
) -> Result<crate::site::rules::Site, String> {
    if cgi {
        for folder in ["/cgi-bin/**", "/htbin/**"] {
            let glob =
                crate::site::rules::Glob::parse(folder).map_err(|e| format!("--cgi: {e}"))?;
            let route = handlers::cgi::Route {
                scripts: Some(config::site_tables::script_pattern(glob.clone())),
                ..Default::default()
            };
            site.rules.push(crate::site::rules::Rule::for_handler(
                glob,
                handlers::Handler::Cgi(Arc::new(route)),
            ));
        }
    }
    Ok(site)
}

/// Whether anything may be written under the root (by flag or by a rule).
fn writes_anywhere(config: &Config) -> bool {
    config.access.writes()
        || config
            .site
            .rules
            .iter()
            .any(|r| r.upload == Some(true) || r.delete == Some(true))
}

/// The shared cache of proxied responses `config` asks for: made once per process,
/// and kept across reloads.
fn proxy_cache(config: &Config) -> Result<Option<Arc<handlers::proxy::cache::Cache>>, String> {
    match &config.proxy_cache {
        Some(settings) => Ok(Some(Arc::new(handlers::proxy::cache::Cache::new(
            settings,
        )?))),
        None => Ok(None),
    }
}

/// How the configuration is read again on SIGHUP: the command line, environment
/// and configuration file of the start, re-read.
pub type Reload = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// The site and its handlers as `config` describes them; fails (for a startup
/// message) when the root cannot be opened.
pub fn build_router(
    config: &Config,
    log: AccessLog,
    proxy_cache: Option<Arc<handlers::proxy::cache::Cache>>,
    dev: Option<Arc<Dev>>,
) -> Result<Router, String> {
    rebuild_router(config, log, proxy_cache, dev, None)
}

/// [`build_router`], keeping the state of `previous` (a reload): the file caches,
/// WebDAV locks and resumable uploads when the settings are the same and name the
/// same folder (by device and inode), and the CGI slots.
fn rebuild_router(
    config: &Config,
    log: AccessLog,
    proxy_cache: Option<Arc<handlers::proxy::cache::Cache>>,
    dev: Option<Arc<Dev>>,
    previous: Option<(&Router, bool)>,
) -> Result<Router, String> {
    let root =
        Root::open_dir(&config.root, config.follow_symlinks)?.withholding(config.withheld.clone());
    let static_files = StaticFiles::new(
        Arc::new(root),
        static_files::Settings {
            hidden: config.hidden,
            no_compress: config.no_compress,
            cache_size: config.cache_size,
            compress_cache_size: config.compress_cache_size,
        },
    );
    let static_files = Arc::new(static_files);
    let uploads = Uploads::new(
        Arc::clone(&static_files),
        uploads::Settings {
            hidden: config.hidden,
            body_timeout: config.idle_timeout,
            upload_expiry: config.upload_expiry,
        },
    );
    let settings = router::Settings {
        hidden: config.hidden,
        limits: HeadLimits {
            max_target_len: config.max_target_len,
            max_header_size: config.max_header_size,
        },
        https: config.tls.is_some(),
        access: config.access,
        rules: Arc::new(with_cgi(
            with_proxies(&config.site, &config.proxies, config.access.max_upload_size)?,
            config.cgi,
        )?),
        dev,
    };
    let mut handlers = Handlers::new(static_files, uploads, config.cgi_settings, proxy_cache);
    if let Some((old, same_settings)) = previous {
        // The same settings name the same path; a release renamed into place, or a
        // symlink swapped, since then makes it another folder, whose files the
        // old folder's caches and watches know nothing of.
        let same_folder = same_settings && handlers.root().same_folder_as(old.handlers().root());
        handlers = handlers.keeping_state_of(old.handlers(), same_folder);
    }
    Ok(Router::new(settings, handlers, log))
}

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully.
///
/// Each of `config.workers` threads runs its own single-threaded event loop and
/// accepts from its own duplicate of every listening socket, so a connection lives on
/// one thread from accept to close with no cross-thread hand-offs. Returns an error
/// message (for one line on stderr) when startup fails.
pub fn run(config: Config, reload: Reload) -> Result<(), String> {
    raise_fd_limit();
    handlers::cgi::process::close_inherited_descriptors_on_exec();
    let log = if config.quiet {
        AccessLog::quiet()
    } else {
        AccessLog::stdout(config.log_format)
    }
    .with_verbose(config.verbose);
    let started = std::time::SystemTime::now();
    let cache = proxy_cache(&config)?;
    let shutdown = CancellationToken::new();
    // Stops the accepting (and asks connections to end after their next answer);
    // shutdown implies it.
    let draining = shutdown.child_token();
    let dev = if config.dev {
        // Its event streams end as the process stops serving: they would otherwise
        // hold the shutdown for the whole grace period.
        Some(Dev::start(&config.root, draining.clone())?)
    } else {
        None
    };
    let router = Arc::new(build_router(
        &config,
        log.clone(),
        cache.clone(),
        dev.clone(),
    )?);
    for warning in router.warnings() {
        tracing::warn!("{warning}");
    }
    if writes_anywhere(&config) {
        // Temporary files of uploads cut short by a crash are removed in the
        // background: never served meanwhile (their names are reserved), and the walk
        // must not hold up startup on a large tree.
        let router = Arc::clone(&router);
        std::thread::Builder::new()
            .name("wharf-cleanup".into())
            .spawn(move || {
                let removed = router.root().remove_stale_temps(started);
                if removed > 0 {
                    tracing::info!("removed {removed} temporary file(s) of interrupted uploads");
                }
            })
            .map_err(|e| format!("cannot start the cleanup thread: {e}"))?;
    }
    // Signal handlers go in first, on the runtime that will poll them, so a signal sent
    // as soon as the URL is printed already means "shut down".
    let main_runtime = build_runtime(&log)?;
    let signals = {
        let _guard = main_runtime.enter();
        Signals::install()?
    };
    // Sockets an upgrading wharf passed, else those of a systemd socket unit.
    let inherited = match net::upgrade::inherited() {
        Some(passed) => passed?,
        None => net::systemd::inherited_listeners()?,
    };
    let (passed_admin, passed): (Vec<_>, Vec<_>) = inherited
        .into_iter()
        .partition(|p| p.name.as_deref() == Some(net::systemd::ADMIN_NAME));
    let (passed_redirects, passed_site): (Vec<_>, Vec<_>) = passed
        .into_iter()
        .partition(|p| p.name.as_deref() == Some(net::systemd::REDIRECT_NAME));
    // Bound first: the site's listeners say where they serve, which must not be
    // said by a process that then fails to start.
    let admin = match (passed_admin.into_iter().next(), config.admin) {
        (Some(passed), _) => Some(admin_passed(passed.listener, config.admin_public)?),
        (None, None) => None,
        (None, Some(addr)) => Some(
            // Never shared: each process's metrics are its own.
            net::listener::bind(addr, false).map_err(|e| format!("--admin {addr}: {e}"))?,
        ),
    };
    let (listeners, tls, urls, configured) = bind_all(
        &config,
        &router,
        passed_site.into_iter().map(|p| p.listener).collect(),
        passed_redirects.into_iter().map(|p| p.listener).collect(),
    )?;
    let limits = Arc::new(arc_swap::ArcSwap::from_pointee(limits_of(&config)));
    let handover = Arc::new(std::sync::Mutex::new(handover(&listeners, admin.as_ref())?));
    announce(&config, &urls);
    if let Some(local) = admin.as_ref().and_then(|a| a.local_addr().ok()) {
        say!("wharf: admin (metrics, health) at http://{local}/metrics");
    }
    // The local addresses of the site listeners, in the order of `config.listen`.
    let bound_addrs: Vec<SocketAddr> = listeners
        .iter()
        .filter(|(_, kind)| !matches!(kind, ListenerKind::RedirectToHttps { .. }))
        .filter_map(|(l, _)| l.local_addr().ok())
        .collect();
    let force = CancellationToken::new();
    let finished = Finished::new(config.workers);
    let routers: router::Routers = Arc::new(arc_swap::ArcSwap::new(Arc::clone(&router)));
    // Each worker hears of listeners a reload adds or removes.
    let mut changes = Vec::new();
    let mut worker = |listeners: Vec<Bound>| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        changes.push(tx);
        Worker {
            listeners,
            changes: rx,
            router: Arc::clone(&routers),
            limits: Arc::clone(&limits),
            shutdown: shutdown.clone(),
            draining: draining.clone(),
            force: force.clone(),
            finished: finished.clone(),
            grace: config.grace_period,
            admin: None,
            reload: None,
            handover: None,
        }
    };

    let mut threads = Vec::new();
    for i in 1..config.workers {
        let dups = listeners
            .iter()
            .map(|(l, kind)| l.try_clone().map(|l| (l, kind.clone())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot share the listening socket: {e}"))?;
        let w = worker(dups);
        let thread = std::thread::Builder::new()
            .name(format!("wharf-worker-{i}"))
            .spawn(move || {
                let runtime = build_runtime(w.router.load().log())?;
                w.run(runtime, None)
            })
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        threads.push(thread);
    }
    let mut main_worker = worker(listeners);
    main_worker.admin = admin;
    main_worker.handover = Some(Arc::clone(&handover));
    main_worker.reload = Some(Arc::new(Reloading {
        reload,
        applied: std::sync::Mutex::new(folder_settings(&config)),
        running: config.clone(),
        log: log.clone(),
        cache,
        dev,
        limits: Arc::clone(&limits),
        listening: configured.map(|addrs| {
            std::sync::Mutex::new(Listening {
                bound: addrs.into_iter().zip(bound_addrs.iter().copied()).collect(),
                workers: changes,
                tls: tls.clone(),
                reuse_port: config.reuse_port,
                handover,
            })
        }),
    }));
    net::systemd::notify("READY=1");
    let result = main_worker.run(main_runtime, Some((signals, tls)));
    for thread in threads {
        if let Ok(Err(e)) = thread.join() {
            say!("wharf: {e}");
        }
    }
    if force.is_cancelled() {
        // Stopping now: what stdout has not taken within a moment is left behind.
        log.flush(Duration::from_millis(200));
        return result.and(Err(
            "stopped at once (interrupted again); unfinished responses were cut off".into(),
        ));
    }
    log.flush(Duration::from_secs(2));
    result
}

/// A listening socket and what its connections speak.
type Bound = (TcpListener, ListenerKind);

/// The listeners, the TLS settings they share, and every URL they can be reached at.
type BoundSite = (
    Vec<Bound>,
    Option<Tls>,
    Vec<String>,
    Option<Vec<SocketAddr>>,
);

/// Binds every listener the configuration asks for and prints where it serves:
/// the site on each `--bind` address (HTTPS when TLS is configured), and the
/// plain-HTTP redirect listeners of `--redirect-http`. Nothing is printed unless
/// every socket could be bound.
fn bind_all(
    config: &Config,
    router: &Router,
    passed: Vec<TcpListener>,
    passed_redirects: Vec<TcpListener>,
) -> Result<BoundSite, String> {
    let bind = |addr: SocketAddr| -> Result<(TcpListener, SocketAddr), String> {
        let listener = net::listener::bind(addr, config.reuse_port)?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        Ok((listener, local))
    };
    // Sockets a systemd socket unit passed replace the configured addresses.
    let from_config = passed.is_empty();
    let site = if passed.is_empty() {
        config
            .listen
            .iter()
            .map(|addr| bind(*addr))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        with_local_addresses(passed)?
    };
    let redirects = match config.redirect_http {
        None => Vec::new(),
        // An upgrading wharf passed its redirect listeners too.
        Some(_) if !passed_redirects.is_empty() => with_local_addresses(passed_redirects)?,
        Some(port) => config
            .listen
            .iter()
            .map(|addr| bind(SocketAddr::new(addr.ip(), port)))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let tls = match &config.tls {
        None => None,
        Some(source) => {
            let bound: Vec<_> = site.iter().map(|(_, a)| a.ip()).collect();
            Some(Tls::new(source, &tls::local_names(&bound))?)
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Redirects go to the port the first site listener got (it may have been 0).
    let https_port = site.first().map_or(443, |(_, local)| local.port());
    let mut listeners = Vec::new();
    let mut every_url = Vec::new();
    for (listener, local) in site {
        every_url.extend(usable_urls(scheme, local));
        let mut urls = usable_urls(scheme, local).into_iter();
        let first = urls
            .next()
            .unwrap_or_else(|| format!("{scheme}://{local}/"));
        let others: Vec<String> = urls.collect();
        let also = if others.is_empty() {
            String::new()
        } else {
            format!(" (every interface: also {})", others.join(", "))
        };
        say!(
            "wharf: serving {} at {first}{also}",
            router.root().path().display()
        );
        let kind = match &tls {
            Some(tls) => ListenerKind::Tls {
                tls: tls.clone(),
                port: local.port(),
            },
            None => ListenerKind::Plain,
        };
        listeners.push((listener, kind));
    }
    if let Some(tls) = &tls {
        say!(
            "wharf: TLS certificate SHA-256 fingerprint {}",
            tls.fingerprint()
        );
    }
    for (listener, local) in redirects {
        say!("wharf: redirecting http://{local}/ to HTTPS on port {https_port}");
        listeners.push((listener, ListenerKind::RedirectToHttps { https_port }));
    }
    // Addresses bound from the configuration, which a reload may change; none when
    // the sockets were passed (systemd, an upgrade), or when plain-HTTP listeners
    // redirect to the site's port: those stay until a restart.
    let configured = (from_config && config.redirect_http.is_none()).then(|| config.listen.clone());
    Ok((listeners, tls, every_url, configured))
}

/// Passed listening sockets, each with the address it is bound to.
fn with_local_addresses(
    passed: Vec<TcpListener>,
) -> Result<Vec<(TcpListener, SocketAddr)>, String> {
    passed
        .into_iter()
        .map(|listener| {
            let local = listener
                .local_addr()
                .map_err(|e| format!("cannot read the passed socket's address: {e}"))?;
            Ok((listener, local))
        })
        .collect()
}

/// What `--qr`, `--dev` and `--open` do once the listeners are bound, given their
/// URLs (loopback first): the address on the network is remembered for listing
/// pages' QR codes, printed as one in the terminal, and the first URL opened in a
/// browser.
fn announce(config: &Config, urls: &[String]) {
    let on_network = urls.iter().find(|url| !is_loopback_url(url));
    if let Some(url) = on_network {
        static_files::qr::set_lan_origin(url.trim_end_matches('/').to_string());
    }
    let shown = on_network.or(urls.first());
    if let Some(url) = shown.filter(|_| config.qr || config.dev) {
        if let Some(code) = static_files::qr::terminal(url) {
            say!("{code}");
        }
        if on_network.is_none() {
            say!(
                "wharf: {url} is reachable from this machine only; \
                 --bind 0.0.0.0 serves the network"
            );
        }
    }
    if config.open {
        if let Some(url) = urls.first() {
            open_in_browser(url);
        }
    }
}

/// Whether `url`'s host is a loopback address.
fn is_loopback_url(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    host.parse::<SocketAddr>()
        .map(|addr| addr.ip().is_loopback())
        .unwrap_or(host.starts_with("localhost"))
}

/// Opens `url` with the desktop's opener (`xdg-open`; `open` on macOS), detached;
/// a missing opener is a warning, not an error.
fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        // Reaped in the background so it leaves no zombie.
        Ok(mut child) => {
            let _ = std::thread::Builder::new()
                .name("wharf-open".into())
                .spawn(move || child.wait());
        }
        Err(e) => tracing::warn!("--open: cannot run {opener}: {e}"),
    }
}

/// URLs a browser can use for a listener bound to `local`: the address itself, or for
/// an unspecified address (`0.0.0.0`, `::`) the loopback URL first and then each
/// interface's address (IPv4 for `0.0.0.0`; both families for the dual-stack `::`;
/// link-local IPv6 addresses, which need a zone, left out).
fn usable_urls(scheme: &str, local: SocketAddr) -> Vec<String> {
    let interfaces: Vec<std::net::IpAddr> = if local.ip().is_unspecified() {
        if_addrs::get_if_addrs()
            .unwrap_or_default()
            .iter()
            .map(if_addrs::Interface::ip)
            .collect()
    } else {
        Vec::new()
    };
    urls_for(scheme, local, &interfaces)
}

/// [`usable_urls`] given the interfaces' addresses.
fn urls_for(scheme: &str, local: SocketAddr, interfaces: &[std::net::IpAddr]) -> Vec<String> {
    let url = |ip: std::net::IpAddr| format!("{scheme}://{}/", SocketAddr::new(ip, local.port()));
    let ip = local.ip();
    if !ip.is_unspecified() {
        return vec![url(ip)];
    }
    let v6 = ip.is_ipv6();
    let mut ips: Vec<std::net::IpAddr> = vec![std::net::Ipv4Addr::LOCALHOST.into()];
    if v6 {
        ips.push(std::net::Ipv6Addr::LOCALHOST.into());
    }
    for &ip in interfaces.iter().filter(|ip| !ip.is_loopback()) {
        let usable = match ip {
            std::net::IpAddr::V4(_) => true,
            std::net::IpAddr::V6(a) => v6 && (a.segments()[0] & 0xffc0) != 0xfe80,
        };
        if usable && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips.into_iter().map(url).collect()
}

/// One worker thread: an event loop serving connections from its listeners.
struct Worker {
    listeners: Vec<Bound>,
    router: router::Routers,
    limits: Arc<arc_swap::ArcSwap<Limits>>,
    shutdown: CancellationToken,
    /// Cancelled when this process stops accepting: at shutdown, or once a new
    /// process took over (upgrade).
    draining: CancellationToken,
    /// Cancelled by a second SIGINT/SIGTERM during the grace period: stop now.
    force: CancellationToken,
    /// Counts the workers whose connections are done, so that the worker listening
    /// for signals listens until every worker is done.
    finished: Finished,
    grace: Duration,
    /// The admin listener, served by the worker that listens for signals.
    admin: Option<std::net::TcpListener>,
    /// What SIGHUP needs to apply a new configuration (that worker's too).
    reload: Option<Arc<Reloading>>,
    /// What SIGUSR2 needs to start a new process on the same sockets (that worker's).
    handover: Option<Arc<std::sync::Mutex<net::upgrade::Handover>>>,
    /// Listeners a reload adds or removes.
    changes: tokio::sync::mpsc::UnboundedReceiver<ListenerChange>,
}

/// A listener a reload adds to, or removes from, every worker.
enum ListenerChange {
    /// Accept on this socket too (each worker gets its own duplicate).
    Add(TcpListener, ListenerKind),
    /// Stop accepting on the socket bound to this local address.
    Remove(SocketAddr),
}

/// The site listeners bound from the configuration, and what a reload needs to
/// change them.
struct Listening {
    /// Configured address → the local address it was bound to.
    bound: Vec<(SocketAddr, SocketAddr)>,
    /// Each worker's channel for listener changes.
    workers: Vec<tokio::sync::mpsc::UnboundedSender<ListenerChange>>,
    tls: Option<Tls>,
    reuse_port: bool,
    /// The sockets an upgrade hands over, kept in step.
    handover: Arc<std::sync::Mutex<net::upgrade::Handover>>,
}

impl Listening {
    /// Binds what `wanted` adds and closes what it drops; all of it or (when an
    /// address cannot be bound) none of it. Lines for stderr saying what changed.
    fn apply(&mut self, wanted: &[SocketAddr]) -> Result<Vec<String>, String> {
        let added: Vec<SocketAddr> = wanted
            .iter()
            .filter(|a| !self.bound.iter().any(|(c, _)| c == *a))
            .copied()
            .collect();
        let removed: Vec<(SocketAddr, SocketAddr)> = self
            .bound
            .iter()
            .filter(|(c, _)| !wanted.contains(c))
            .copied()
            .collect();
        let mut fresh = Vec::new();
        for addr in &added {
            // The error names the address already.
            let listener = net::listener::bind(*addr, self.reuse_port)?;
            let local = listener
                .local_addr()
                .map_err(|e| format!("cannot read the bound address: {e}"))?;
            fresh.push((*addr, local, listener));
        }
        let mut said = Vec::new();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        for (configured, local, listener) in fresh {
            let kind = match &self.tls {
                Some(tls) => ListenerKind::Tls {
                    tls: tls.clone(),
                    port: local.port(),
                },
                None => ListenerKind::Plain,
            };
            for worker in &self.workers {
                if let Ok(dup) = listener.try_clone() {
                    let _ = worker.send(ListenerChange::Add(dup, kind.clone()));
                }
            }
            if let Ok(dup) = listener.try_clone() {
                self.handover
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add(std::os::fd::OwnedFd::from(dup), "");
            }
            self.bound.push((configured, local));
            said.push(format!("wharf: now also serving at {scheme}://{local}/"));
        }
        for (configured, local) in removed {
            for worker in &self.workers {
                let _ = worker.send(ListenerChange::Remove(local));
            }
            self.handover
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(local);
            self.bound.retain(|(c, _)| *c != configured);
            said.push(format!("wharf: stopped listening on {local}"));
        }
        Ok(said)
    }
}

/// Every listening socket, duplicated, with the name a new process knows it by.
fn handover(
    listeners: &[Bound],
    admin: Option<&TcpListener>,
) -> Result<net::upgrade::Handover, String> {
    let mut sockets = Vec::new();
    for (listener, kind) in listeners {
        let name = match kind {
            ListenerKind::RedirectToHttps { .. } => net::systemd::REDIRECT_NAME,
            _ => "",
        };
        sockets.push((listener, name));
    }
    if let Some(admin) = admin {
        sockets.push((admin, net::systemd::ADMIN_NAME));
    }
    let sockets = sockets
        .into_iter()
        .map(|(l, name)| {
            l.try_clone()
                .map(|l| (std::os::fd::OwnedFd::from(l), name.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot keep the listening sockets for an upgrade: {e}"))?;
    net::upgrade::Handover::new(sockets)
}

/// What a reload builds the new site from.
struct Reloading {
    reload: Reload,
    /// The configuration the process started with: what only a restart changes is
    /// compared with it.
    running: Config,
    /// The folder settings of the configuration in effect (see [`folder_settings`]).
    applied: std::sync::Mutex<String>,
    log: AccessLog,
    cache: Option<Arc<handlers::proxy::cache::Cache>>,
    /// `--dev`'s watcher, started once.
    dev: Option<Arc<Dev>>,
    /// The listeners, when a reload may change them (bound from the configuration).
    listening: Option<std::sync::Mutex<Listening>>,
    /// The connections' limits, which new connections take from here.
    limits: Arc<arc_swap::ArcSwap<Limits>>,
}

/// The per-connection limits `config` sets.
fn limits_of(config: &Config) -> Limits {
    let proxy_waits = config.proxies.iter().map(|p| p.response_timeout).chain(
        config
            .site
            .rules
            .iter()
            .filter_map(|rule| match &rule.handler {
                Some(handlers::Handler::Proxy(route)) => Some(route.response_timeout),
                _ => None,
            }),
    );
    Limits {
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
        max_header_size: config.max_header_size,
        handler_wait: proxy_waits
            .chain([config.cgi_settings.timeout])
            .max()
            .unwrap_or(config.cgi_settings.timeout),
    }
}

impl Reloading {
    /// Reads the configuration again and, when it is valid, swaps the new site in
    /// for the requests that arrive from now on; otherwise nothing changes. One line
    /// on stderr says which, and the metrics count it.
    /// Builds the site again and swaps it in; `why` names the cause in what is said.
    fn apply(&self, routers: &router::Routers, why: &str) {
        let current = routers.load_full();
        let built = (self.reload)().and_then(|config| {
            let wanted = config.listen.clone();
            let mut kept = restart_only_changes(&self.running, &config);
            if self.listening.is_some() {
                // Bound below instead.
                kept.retain(|k| *k != LISTEN_ADDRESSES);
            }
            let config = with_restart_only_settings_of(&self.running, config);
            let applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
            let same_folder = *applied == folder_settings(&config);
            drop(applied);
            let router = rebuild_router(
                &config,
                self.log.clone(),
                self.cache.clone(),
                self.dev.clone(),
                Some((&current, same_folder)),
            )?;
            // Last: the one step with an effect outside this process's memory.
            let said = match &self.listening {
                Some(listening) => listening
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply(&wanted)?,
                None => Vec::new(),
            };
            Ok((
                kept,
                router,
                folder_settings(&config),
                said,
                limits_of(&config),
            ))
        });
        match built {
            Ok((kept, router, folder, said, limits)) => {
                self.limits.store(Arc::new(limits));
                for line in said {
                    say!("{line}");
                }
                *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = folder;
                for warning in router.warnings() {
                    tracing::warn!("{warning}");
                }
                routers.store(Arc::new(router));
                metrics::metrics().reload(true);
                if kept.is_empty() {
                    say!("wharf: reloaded the configuration ({why})");
                } else {
                    say!(
                        "wharf: reloaded the configuration ({why}); applied only at a restart: {}",
                        kept.join(", ")
                    );
                }
            }
            Err(e) => {
                metrics::metrics().reload(false);
                say!("wharf: reload failed, the configuration is unchanged: {e}");
            }
        }
    }
}

/// How a reload names a change of listen addresses it cannot apply.
const LISTEN_ADDRESSES: &str = "listen addresses";

/// `new` with the settings only a restart changes set back to those `running` has,
/// so that none of them is half applied (a new worker count, say, that no thread
/// would follow). Listen addresses are applied by [`Listening`] when it can.
fn with_restart_only_settings_of(running: &Config, mut new: Config) -> Config {
    new.listen = running.listen.clone();
    new.reuse_port = running.reuse_port;
    new.workers = running.workers;
    new.tls = running.tls.clone();
    new.redirect_http = running.redirect_http;
    new.admin = running.admin;
    new.proxy_cache = running.proxy_cache.clone();
    new.dev = running.dev;
    new.log_format = running.log_format;
    new.quiet = running.quiet;
    new.verbose = running.verbose;
    new.grace_period = running.grace_period;
    // Slots and timeouts stay; the body limit follows --max-upload-size.
    new.cgi_settings = crate::handlers::cgi::Settings {
        max_body: new.cgi_settings.max_body,
        ..running.cgi_settings
    };
    new
}

/// What the file handlers are made from: when it is unchanged by a reload, their
/// caches, locks and uploads in progress carry over.
fn folder_settings(c: &Config) -> String {
    format!(
        "{:?}",
        (
            &c.root,
            c.follow_symlinks,
            &c.withheld,
            c.hidden,
            c.no_compress,
            c.cache_size,
            c.compress_cache_size,
            c.upload_expiry,
        )
    )
}

/// The settings that differ between `running` and `new` but take effect only when
/// the process starts (its sockets, threads, log and caches are made then).
fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut kept = Vec::new();
    let pairs: [(&'static str, bool); 12] = [
        (LISTEN_ADDRESSES, differs(&running.listen, &new.listen)),
        ("reuse-port", running.reuse_port != new.reuse_port),
        ("workers", running.workers != new.workers),
        ("TLS settings", differs(&running.tls, &new.tls)),
        ("redirect-http", running.redirect_http != new.redirect_http),
        ("admin", running.admin != new.admin),
        (
            "proxy-cache",
            differs(&running.proxy_cache, &new.proxy_cache),
        ),
        (
            "log settings",
            differs(
                &(running.log_format, running.quiet, running.verbose),
                &(new.log_format, new.quiet, new.verbose),
            ),
        ),
        ("grace-period", running.grace_period != new.grace_period),
        ("dev", running.dev != new.dev),
        (
            "cgi-timeout",
            running.cgi_settings.timeout != new.cgi_settings.timeout,
        ),
        ("cgi-max", running.cgi_settings.max != new.cgi_settings.max),
    ];
    for (name, changed) in pairs {
        if changed {
            kept.push(name);
        }
    }
    kept
}

/// Workers not done yet, and a token cancelled when none is left.
#[derive(Clone)]
struct Finished {
    left: Arc<std::sync::atomic::AtomicUsize>,
    all: CancellationToken,
}

impl Finished {
    fn new(workers: usize) -> Finished {
        Finished {
            left: Arc::new(std::sync::atomic::AtomicUsize::new(workers)),
            all: CancellationToken::new(),
        }
    }
}

/// One worker's part of [`Finished`]: done when dropped, however the worker ends.
struct Done(Finished);

impl Drop for Done {
    fn drop(&mut self) {
        if self
            .0
            .left
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.0.all.cancel();
        }
    }
}

impl Worker {
    /// Serves until shutdown, then lets open responses finish within the grace period.
    /// The worker given `signals` is the one that turns SIGINT/SIGTERM into shutdown
    /// and SIGHUP (or changed certificate files) into a certificate reload.
    fn run(
        self,
        runtime: tokio::runtime::Runtime,
        signals: Option<(Signals, Option<Tls>)>,
    ) -> Result<(), String> {
        let log = self.router.load().log().clone();
        log.batch_on_this_thread();
        let done = Done(self.finished.clone());
        runtime.block_on(async move {
            let tasks = TaskTracker::new();
            let shared = Arc::new(net::connection::Shared {
                router: Arc::clone(&self.router),
                limits: Arc::clone(&self.limits),
                shutdown: self.shutdown.clone(),
                draining: self.draining.clone(),
                tasks: tasks.clone(),
                lot: ParkingLot::new(),
            });
            if let Some(lot) = &shared.lot {
                let resumed = Arc::clone(&shared);
                tokio::spawn(Arc::clone(lot).run(self.shutdown.clone(), move |parked| {
                    let shared = Arc::clone(&resumed);
                    resumed.tasks.spawn(net::connection::resume(parked, shared));
                }));
            }
            // Each listener's accept loop, stopped by its own token when a reload
            // closes it (or by draining, for all of them).
            let mut accepting: Vec<(SocketAddr, CancellationToken)> = Vec::new();
            for (listener, kind) in self.listeners {
                accepting.push(start_accepting(listener, kind, &shared)?);
            }
            if signals.is_some() {
                // This worker accepts: an upgrading parent may stop now.
                net::upgrade::ready();
            }
            let mut changes = self.changes;
            let changing = Arc::clone(&shared);
            tokio::spawn(async move {
                while let Some(change) = changes.recv().await {
                    match change {
                        ListenerChange::Add(listener, kind) => {
                            match start_accepting(listener, kind, &changing) {
                                Ok(started) => accepting.push(started),
                                Err(e) => tracing::warn!("{e}"),
                            }
                        }
                        ListenerChange::Remove(local) => accepting.retain(|(addr, stop)| {
                            if *addr == local {
                                stop.cancel();
                            }
                            *addr != local
                        }),
                    }
                }
            });
            // Cancelled once a new process took over (upgrade): it answers scrapes
            // and probes on the same admin socket from then on.
            let handed_over = CancellationToken::new();
            if let Some(admin) = self.admin {
                let listener = admin
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(admin))
                    .map_err(|e| format!("cannot use the admin listener: {e}"))?;
                // At shutdown it goes on until the process ends: probes learn from
                // /readyz that it is going, and the last scrape sees the drain.
                tokio::spawn(net::admin::serve(
                    listener,
                    Arc::clone(&self.router),
                    handed_over.clone(),
                    self.shutdown.clone(),
                ));
            }
            let listens = signals.is_some();
            if let Some((mut signals, tls)) = signals {
                let certs = tls.as_ref().map(|t| Arc::clone(t.certs()));
                let reloading = self.reload.clone();
                let routers = Arc::clone(&self.router);
                let housekeeping = tokio::spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(1));
                    // The folder last found in the root's place, tried once.
                    let mut tried = None;
                    loop {
                        every.tick().await;
                        net::connection::release_parked_memory();
                        // A folder replaced on disk is served as nginx would, by
                        // its path: the site is built again on the new one.
                        let replaced = routers.load().root().replaced_by();
                        if let (Some(now), Some(reloading)) = (replaced, &reloading) {
                            if tried != Some(now) {
                                tried = Some(now);
                                let (reloading, routers) =
                                    (Arc::clone(reloading), Arc::clone(&routers));
                                let _ = tokio::task::spawn_blocking(move || {
                                    reloading.apply(&routers, "the served folder was replaced");
                                })
                                .await;
                            }
                        }
                        if let Some(certs) = certs.as_ref().filter(|c| c.files_changed()) {
                            reload_certificate(certs, "its files changed");
                        }
                        match certs.as_ref().and_then(|c| c.renew_if_due()) {
                            Some(Ok(())) => {
                                say!("wharf: renewed the self-signed TLS certificate")
                            }
                            Some(Err(e)) => {
                                say!("wharf: kept the current TLS certificate; renewal failed: {e}")
                            }
                            None => {}
                        }
                    }
                });
                let upgraded = loop {
                    match signals.wait().await {
                        Signal::Shutdown => break None,
                        Signal::Reload => {
                            if let Some(reloading) = &self.reload {
                                net::systemd::reloading();
                                // Reading files and building the site blocks: done on
                                // the blocking pool, so this worker's connections go on.
                                let reloading = Arc::clone(reloading);
                                let routers = Arc::clone(&self.router);
                                let applied = tokio::task::spawn_blocking(move || {
                                    reloading.apply(&routers, "SIGHUP");
                                })
                                .await;
                                if applied.is_err() {
                                    say!("wharf: reload failed, the configuration is unchanged");
                                }
                                net::systemd::notify("READY=1");
                            }
                            if let Some(tls) = &tls {
                                reload_certificate(tls.certs(), "SIGHUP");
                            }
                        }
                        Signal::ReopenLogs => say!(
                            "wharf: SIGUSR1: the logs go to stdout and stderr; nothing to reopen"
                        ),
                        Signal::Upgrade => {
                            let Some(handover) = &self.handover else {
                                continue;
                            };
                            // The sockets as they are now; the lock is not held while
                            // the new process starts.
                            let handover = handover
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .snapshot();
                            let handover = match handover {
                                Ok(handover) => handover,
                                Err(e) => {
                                    say!("wharf: upgrade failed, still serving: {e}");
                                    continue;
                                }
                            };
                            // Signals still count while the new process starts: a stop
                            // abandons the upgrade (the new process is killed) and
                            // shuts down as usual.
                            let mut starting = std::pin::pin!(handover.start());
                            let started = loop {
                                tokio::select! {
                                    started = &mut starting => break Some(started),
                                    signal = signals.wait() => match signal {
                                        Signal::Shutdown => break None,
                                        Signal::ReopenLogs => {}
                                        Signal::Reload | Signal::Upgrade => say!(
                                            "wharf: an upgrade is starting; signal ignored"
                                        ),
                                    },
                                }
                            };
                            match started {
                                Some(Ok(pid)) => {
                                    say!(
                                        "wharf: upgrade: process {pid} is serving; this one ({}) \
                                         stops accepting and exits when its connections are done",
                                        std::process::id()
                                    );
                                    break Some(pid);
                                }
                                Some(Err(e)) => {
                                    say!("wharf: upgrade failed, still serving: {e}")
                                }
                                None => {
                                    say!("wharf: upgrade abandoned: shutting down");
                                    break None;
                                }
                            }
                        }
                    }
                };
                housekeeping.abort();
                if let Some(handover) = &self.handover {
                    handover.lock().unwrap_or_else(|p| p.into_inner()).close();
                }
                match upgraded {
                    // The service manager follows the new process from now on.
                    Some(pid) => net::systemd::notify(&format!("MAINPID={pid}\nREADY=1")),
                    None => net::systemd::notify("STOPPING=1"),
                }
                let open = net::clock::responses_in_flight();
                let plural = if open == 1 { "" } else { "s" };
                // Tunnels (WebSockets) end at a shutdown; after an upgrade they go on
                // within the grace period, as the responses do.
                let tunnels = match net::tunnel::open_tunnels() {
                    0 => String::new(),
                    1 if upgraded.is_some() => " and 1 tunnel".to_string(),
                    n if upgraded.is_some() => format!(" and {n} tunnels"),
                    1 => ", closing 1 tunnel".to_string(),
                    n => format!(", closing {n} tunnels"),
                };
                say!(
                    "wharf: shutting down: finishing {open} response{plural}{tunnels} (waiting up \
                     to {}); Ctrl-C again stops now",
                    humantime::format_duration(self.grace)
                );
                if upgraded.is_some() {
                    // Connections end after their next answer; idle ones are closed
                    // when the grace period is over.
                    net::clock::start_draining();
                    self.draining.cancel();
                    handed_over.cancel();
                    let shutdown = self.shutdown.clone();
                    let grace = self.grace;
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        shutdown.cancel();
                    });
                } else {
                    self.shutdown.cancel();
                }
                // A second interrupt (or SIGTERM) during the grace period stops at once.
                let force = self.force.clone();
                tokio::spawn(async move {
                    while !matches!(signals.wait().await, Signal::Shutdown) {}
                    force.cancel();
                });
            } else {
                self.draining.cancelled().await;
            }
            tasks.close();
            tokio::select! {
                waited = tokio::time::timeout(self.grace, tasks.wait()) => {
                    if waited.is_err() {
                        tracing::warn!("grace period over; closing remaining connections");
                    }
                }
                _ = self.force.cancelled() => {}
            }
            drop(done);
            if listens {
                // Other workers may still be finishing responses: a second signal must
                // reach them too.
                tokio::select! {
                    _ = self.finished.all.cancelled() => {}
                    _ = self.force.cancelled() => {}
                }
            }
            Ok::<(), String>(())
        })?;
        // Connections still open after the grace period are dropped here.
        runtime.shutdown_timeout(Duration::from_millis(100));
        log.hand_over();
        Ok(())
    }
}

/// Starts accepting on `listener` in this worker; its local address and the token
/// that stops it.
fn start_accepting(
    listener: TcpListener,
    kind: ListenerKind,
    shared: &Arc<net::connection::Shared>,
) -> Result<(SocketAddr, CancellationToken), String> {
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening socket's address: {e}"))?;
    // SAFETY: a std TcpListener owns its descriptor: it stays open, and `as_raw_fd`
    // returns the same one, for as long as the AsyncFd holds it.
    let listener = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE)
    }
    .map_err(|e| format!("cannot register the listening socket: {e}"))?;
    let stop = shared.draining.child_token();
    tokio::spawn(net::listener::accept_loop(
        listener,
        Arc::clone(shared),
        kind,
        stop.clone(),
    ));
    Ok((local, stop))
}

/// One worker's event loop. Before it waits for events it hands the access-log lines
/// it collected to the log's writer (see `access_log`).
fn build_runtime(log: &AccessLog) -> Result<tokio::runtime::Runtime, String> {
    let log = log.clone();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(move || log.hand_over())
        .max_blocking_threads(BLOCKING_THREADS_PER_WORKER)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn reload_certificate(certs: &tls::ReloadingCert, why: &str) {
    let result = certs.reload();
    metrics::metrics().certificate_reload(result.is_ok());
    match result {
        Ok(()) => say!("wharf: reloaded the TLS certificate ({why})"),
        Err(e) => say!("wharf: kept the current TLS certificate; reload ({why}) failed: {e}"),
    }
}

/// The admin socket a socket unit passed (named `admin`), held to the rule of
/// `--admin`: metrics and health on a non-loopback address need `--admin-public`.
fn admin_passed(
    listener: std::net::TcpListener,
    public: bool,
) -> Result<std::net::TcpListener, String> {
    match listener.local_addr() {
        Ok(addr) if !addr.ip().is_loopback() && !public => Err(format!(
            "the admin socket passed by systemd listens on {addr}, not a loopback address; \
             add --admin-public to let other hosts read the metrics"
        )),
        _ => Ok(listener),
    }
}

/// What a signal asks for.
enum Signal {
    /// SIGINT, SIGTERM.
    Shutdown,
    /// SIGHUP.
    Reload,
    /// SIGUSR2: start the executable again on the same sockets, then drain.
    Upgrade,
    /// SIGUSR1, which nginx and others take as "reopen the log files": the logs go to
    /// stdout and stderr, so there is nothing to reopen, and the signal must not end
    /// the process (its default action) when a log-rotation job sends it.
    ReopenLogs,
}

/// SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2, installed before serving so none can
/// kill the process.
/// The first SIGINT or SIGTERM starts a graceful shutdown; a second one during the
/// grace period stops at once.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers on the runtime entered by the caller.
    fn install() -> Result<Signals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate())
            .map_err(|e| format!("cannot install the SIGTERM handler: {e}"))?;
        let int = signal(SignalKind::interrupt())
            .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;
        let hup = signal(SignalKind::hangup())
            .map_err(|e| format!("cannot install the SIGHUP handler: {e}"))?;
        let usr1 = signal(SignalKind::user_defined1())
            .map_err(|e| format!("cannot install the SIGUSR1 handler: {e}"))?;
        let usr2 = signal(SignalKind::user_defined2())
            .map_err(|e| format!("cannot install the SIGUSR2 handler: {e}"))?;
        Ok(Signals {
            term,
            int,
            hup,
            usr1,
            usr2,
        })
    }

    async fn wait(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Shutdown,
            _ = self.int.recv() => Signal::Shutdown,
            _ = self.hup.recv() => Signal::Reload,
            _ = self.usr2.recv() => Signal::Upgrade,
            _ = self.usr1.recv() => Signal::ReopenLogs,
        }
    }
}

/// Lets the process use as many file descriptors as its hard limit allows: each
/// connection is one, and the default soft limit (often 1024) is far below what a
/// server needs.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_print_usable_urls() {
        let interfaces: Vec<std::net::IpAddr> =
            ["127.0.0.1", "192.0.2.7", "::1", "fe80::1", "2001:db8::5"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
        let at = |addr: &str| urls_for("http", addr.parse().unwrap(), &interfaces);
        assert_eq!(
            at("0.0.0.0:8000"),
            ["http://127.0.0.1:8000/", "http://192.0.2.7:8000/"]
        );
        assert_eq!(
            at("[::]:8000"),
            [
                "http://127.0.0.1:8000/",
                "http://[::1]:8000/",
                "http://192.0.2.7:8000/",
                "http://[2001:db8::5]:8000/"
            ]
        );
        assert_eq!(at("192.0.2.7:443"), ["http://192.0.2.7:443/"]);
        assert_eq!(
            urls_for("https", "[::1]:9".parse().unwrap(), &[]),
            ["https://[::1]:9/"]
        );
    }
}
