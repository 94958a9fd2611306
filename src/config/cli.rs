//! Command-line parsing and the validated settings the server runs with.
//!
//! [`Cli`] is what the user typed; [`Config`] is what it means, with every value checked
//! once here so the rest of the server never re-validates.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::log::access::LogFormat;
use crate::net::tls::CertSource;

const EXAMPLES: &str = "\
Examples:
  wharf                      serve the current folder on http://127.0.0.1:8000/
  wharf ./site               serve ./site
  wharf 9000                 serve the current folder on port 9000
  wharf -d ./site -p 0       serve ./site on a free port (printed at start)
  wharf -b 0.0.0.0 ./site    serve ./site to the whole network (IPv4)
  wharf -b :: ./site         serve ./site on every IPv6 and IPv4 address
  wharf --log-format json    one JSON object per request on stdout
  wharf --tls-self-signed    HTTPS on https://localhost:8000/ with a local certificate
  wharf --tls-cert fullchain.pem --tls-key key.pem -b 0.0.0.0 -p 443 --redirect-http 80
  wharf hash-password        read a password, print its hash for the [users] table";

/// The usage lines of `--help`: serving, and the one subcommand.
const USAGE: &str = "wharf [OPTIONS] [ROOT|PORT]\n       wharf hash-password\n       wharf completions bash|zsh|fish|elvish|powershell\n       wharf man";

/// The words wharf takes as its first argument besides a folder or a port, for
/// suggestions when a folder of the name typed does not exist.
pub const SUBCOMMANDS: &[&str] = &["hash-password", "completions", "man"];

/// `wharf [ROOT|PORT] [OPTIONS]`: serve a folder over HTTP.
#[derive(Debug, Parser)]
#[command(name = "wharf", version, about, after_help = EXAMPLES, args_override_self = true,
          override_usage = USAGE)]
pub struct Cli {
    /// Read settings from this TOML file (command-line flags and WHARF_* variables
    /// override it).
    #[arg(long, value_name = "FILE", env = "WHARF_CONFIG")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration, where each value came from, and a security
    /// summary, then exit.
    #[arg(long)]
    pub explain: bool,

    /// Folder to serve (default: the current folder). A lone number that is not an
    /// existing folder is the port, as with `python3 -m http.server 9000`.
    #[arg(value_name = "ROOT|PORT")]
    pub target: Option<OsString>,

    /// Folder to serve (like python3 -m http.server --directory).
    #[arg(
        short = 'd',
        long = "directory",
        value_name = "DIR",
        env = "WHARF_ROOT"
    )]
    directory: Option<PathBuf>,

    /// TCP port to listen on; 0 picks a free port [default: 8000].
    #[arg(short, long, value_name = "PORT", env = "WHARF_PORT")]
    port: Option<u16>,

    /// Address to listen on: an IPv4 or IPv6 address (0.0.0.0, ::) or a host name.
    #[arg(
        short,
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1",
        env = "WHARF_BIND"
    )]
    bind: String,

    /// Worker threads, each running its own event loop [default: number of CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024), env = "WHARF_WORKERS")]
    workers: Option<u16>,

    /// Serve HTTPS with this certificate chain (PEM, leaf first).
    // Paired with --tls-key in `into_config`, once the file and environment are in:
    // the two may come from different places.
    #[arg(long, value_name = "FILE", env = "WHARF_TLS_CERT")]
    tls_cert: Option<PathBuf>,

    /// Private key for --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", env = "WHARF_TLS_KEY")]
    tls_key: Option<PathBuf>,

    /// Serve HTTPS with a self-signed certificate for localhost, made once and kept in
    /// $XDG_STATE_HOME/wharf or ~/.local/state/wharf.
    #[arg(long, env = "WHARF_TLS_SELF_SIGNED",
          value_parser = clap::builder::BoolishValueParser::new())]
    tls_self_signed: bool,

    /// Also listen for plain HTTP on this port and redirect every request to HTTPS.
    #[arg(long, value_name = "PORT", env = "WHARF_REDIRECT_HTTP")]
    redirect_http: Option<u16>,

    /// Follow symlinks that point outside the served folder.
    #[arg(long, env = "WHARF_FOLLOW_SYMLINKS", value_parser = clap::builder::BoolishValueParser::new())]
    follow_symlinks: bool,

    /// Serve and list dotfiles and dot-directories.
    #[arg(long, env = "WHARF_HIDDEN", value_parser = clap::builder::BoolishValueParser::new())]
    hidden: bool,

    /// Drop a client that has not sent a complete request head within this time.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout, env = "WHARF_HEADER_TIMEOUT")]
    header_timeout: Duration,

    /// Close a keep-alive connection idle for this long, and drop a client that takes
    /// no response bytes for this long.
    #[arg(long, value_name = "DURATION", default_value = "75s", value_parser = parse_timeout, env = "WHARF_IDLE_TIMEOUT")]
    idle_timeout: Duration,

    /// Largest request header section accepted (1KiB to 1MiB); larger gets 431.
    #[arg(long, value_name = "SIZE", default_value = "16KiB",
          value_parser = parse_header_size, env = "WHARF_MAX_HEADER_SIZE")]
    max_header_size: u32,

    /// Access-log format on stdout.
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "combined",
        env = "WHARF_LOG_FORMAT"
    )]
    log_format: LogFormat,

    /// Do not compress responses on the fly (precompressed .br/.zst/.gz files next to
    /// the originals are still served).
    #[arg(long, env = "WHARF_NO_COMPRESS", value_parser = clap::builder::BoolishValueParser::new())]
    no_compress: bool,

    /// Memory for caching responses compressed on the fly.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size,
          env = "WHARF_COMPRESS_CACHE_SIZE")]
    compress_cache_size: usize,

    /// Memory for the cache of ready responses (small files, compressed variants,
    /// listings); 0 turns it off.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size,
          env = "WHARF_CACHE_SIZE")]
    cache_size: usize,

    /// Preview mode: nothing cached by browsers (Cache-Control: no-store), and open
    /// HTML pages reload when a file under the folder changes (stylesheets are
    /// swapped in place). Prints the URL's QR code too.
    #[arg(long, env = "WHARF_DEV", value_parser = clap::builder::BoolishValueParser::new())]
    dev: bool,

    /// Open the served URL in the default browser at start (--dev does, unless
    /// --no-open).
    #[arg(long, env = "WHARF_OPEN", value_parser = clap::builder::BoolishValueParser::new())]
    open: bool,

    /// With --dev, do not open a browser (this wins over --open, WHARF_OPEN and the
    /// file's open).
    #[arg(long)]
    no_open: bool,

    /// Print a QR code of the URL at start, for a phone on the same network.
    #[arg(long, env = "WHARF_QR", value_parser = clap::builder::BoolishValueParser::new())]
    qr: bool,

    /// Do not write the access log.
    #[arg(short, long, env = "WHARF_QUIET", value_parser = clap::builder::BoolishValueParser::new())]
    quiet: bool,

    /// Print every request head to stderr as it arrives (escaped; credentials and
    /// cookies redacted).
    #[arg(short, long, env = "WHARF_VERBOSE", value_parser = clap::builder::BoolishValueParser::new())]
    verbose: bool,

    /// Allow writes under the whole folder: PUT, browser and form uploads (POST),
    /// resumable uploads (tus), and WebDAV's MKCOL, COPY, MOVE, PROPPATCH, LOCK.
    #[arg(long, env = "WHARF_UPLOAD", value_parser = clap::builder::BoolishValueParser::new())]
    upload: bool,

    /// Allow DELETE (and moving files away with MOVE) under the whole folder.
    #[arg(long, env = "WHARF_DELETE", value_parser = clap::builder::BoolishValueParser::new())]
    delete: bool,

    /// Largest upload accepted; a larger one gets 413 and is not kept (files of a form stored before it stay).
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_upload_size,
          env = "WHARF_MAX_UPLOAD_SIZE")]
    max_upload_size: u64,

    /// Send requests under PREFIX to the app server at URL (http://HOST:PORT[/PATH]
    /// or unix:/PATH); repeatable, the longest prefix wins. With a path in URL,
    /// PREFIX is replaced by it (/api/=http://127.0.0.1:9000/v1/: /api/x → /v1/x).
    /// WHARF_PROXY lists several, separated by commas.
    #[arg(long, value_name = "PREFIX=URL", env = "WHARF_PROXY")]
    proxy: Vec<String>,

    /// Let several wharf processes listen on the same port (SO_REUSEPORT; the kernel
    /// spreads connections). Without it a second one on the port fails to start.
    #[arg(long, env = "WHARF_REUSE_PORT", value_parser = clap::builder::BoolishValueParser::new())]
    reuse_port: bool,

    /// Serve /metrics (Prometheus), /healthz and /readyz on this address, apart from
    /// the site (off by default; a loopback address unless --admin-public).
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_admin, env = "WHARF_ADMIN")]
    admin: Option<SocketAddr>,

    /// Allow --admin on an address other hosts can reach (the metrics name the
    /// site's traffic; put a firewall or a private network in front).
    #[arg(long, env = "WHARF_ADMIN_PUBLIC", value_parser = clap::builder::BoolishValueParser::new())]
    admin_public: bool,

    /// Keep proxied responses in a shared HTTP cache (RFC 9111) of this much memory,
    /// for every proxied path (a rule's `cache = false` opts out).
    #[arg(long, value_name = "SIZE", value_parser = parse_upload_size, env = "WHARF_PROXY_CACHE")]
    proxy_cache: Option<u64>,

    /// Also keep the cache's responses in this folder, so that they survive a
    /// restart (needs --proxy-cache; the folder must not be inside the served one).
    #[arg(long, value_name = "DIR", env = "WHARF_PROXY_CACHE_DIR")]
    proxy_cache_dir: Option<PathBuf>,

    /// Largest size of the cache's folder.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_upload_size,
          env = "WHARF_PROXY_CACHE_MAX_DISK")]
    proxy_cache_max_disk: u64,

    /// Run programs under /cgi-bin/ and /htbin/ (CGI, RFC 3875) instead of serving
    /// them, as CPython's http.server --cgi did.
    #[arg(long, env = "WHARF_CGI")]
    cgi: bool,

    /// How long a CGI or FastCGI program may take to start its answer, or pause in
    /// it; then 504 (or the answer is cut) and the program is stopped.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_timeout, env = "WHARF_CGI_TIMEOUT")]
    cgi_timeout: Duration,

    /// CGI programs running at once; more requests wait briefly, then get 503
    /// [default: 4 × CPUs]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), env = "WHARF_CGI_MAX")]
    cgi_max: Option<u32>,

    /// Incomplete resumable uploads are removed after this long.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_expiry, env = "WHARF_UPLOAD_EXPIRY")]
    upload_expiry: Duration,

    /// On SIGINT/SIGTERM, how long in-flight responses may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "WHARF_GRACE_PERIOD")]
    grace_period: Duration,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The folder served.
    pub root: PathBuf,
    /// Every address to listen on.
    pub listen: Vec<SocketAddr>,
    /// Worker threads.
    pub workers: usize,
    /// Where the TLS certificate comes from; `None` serves plain HTTP.
    pub tls: Option<CertSource>,
    /// Port of the plain-HTTP listener that redirects to HTTPS.
    pub redirect_http: Option<u16>,
    /// Whether symlinks may lead outside the root.
    pub follow_symlinks: bool,
    /// Whether dotfiles are served and listed.
    pub hidden: bool,
    /// Deadline for a complete request head.
    pub header_timeout: Duration,
    /// Deadline for an idle keep-alive connection.
    pub idle_timeout: Duration,
    /// Largest request header section, in bytes.
    pub max_header_size: usize,
    /// Largest request target, in bytes; longer gets 414.
    pub max_target_len: usize,
    /// No on-the-fly compression.
    pub no_compress: bool,
    /// Bytes of compressed variants kept in memory.
    pub compress_cache_size: usize,
    /// Bytes of ready responses kept in memory.
    pub cache_size: usize,
    /// Access-log format.
    pub log_format: LogFormat,
    /// Preview mode (`--dev`).
    pub dev: bool,
    /// Open the URL in a browser at start.
    pub open: bool,
    /// Print the URL's QR code at start.
    pub qr: bool,
    /// No access log.
    pub quiet: bool,
    /// Request heads printed to stderr.
    pub verbose: bool,
    /// What may be changed under the folder, unless a rule says otherwise.
    pub access: crate::handlers::Access,
    /// How long an incomplete resumable upload is kept.
    pub upload_expiry: Duration,
    /// Prefixes proxied to app servers (`--proxy`), longest first.
    pub proxies: Vec<crate::handlers::proxy::RouteSettings>,
    /// Time allowed for in-flight responses at shutdown.
    pub grace_period: Duration,
    /// The shared cache of proxied responses (`--proxy-cache`), if on.
    pub proxy_cache: Option<crate::handlers::proxy::cache::Settings>,
    /// Where the admin listener listens (`--admin`).
    pub admin: Option<SocketAddr>,
    /// Other hosts may reach the admin listener (`--admin-public`).
    pub admin_public: bool,
    /// SO_REUSEPORT on every listener (`--reuse-port`).
    pub reuse_port: bool,
    /// Whether `/cgi-bin/` and `/htbin/` run programs (`--cgi`).
    pub cgi: bool,
    /// Limits on running programs (`--cgi-timeout`, `--cgi-max`).
    pub cgi_settings: crate::handlers::cgi::Settings,
    /// Path rules, error pages and header presets from the configuration file.
    pub site: crate::site::rules::Site,
    /// Files holding wharf's own secrets (the configuration file, the TLS private
    /// key): never served or listed, even when they lie under the root.
    pub withheld: Vec<PathBuf>,
}

/// The longest request target accepted, as nginx's default large header buffer (8 KiB).
pub const MAX_TARGET_LEN: usize = 8 * 1024;

const DEFAULT_PORT: u16 = 8000;

/// Whether the positional ROOT|PORT argument is a port: all digits, and no folder of
/// that name exists (as `python3 -m http.server 9000`).
pub fn target_is_port(target: &std::ffi::OsStr) -> bool {
    target
        .to_str()
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        && !Path::new(target).is_dir()
}

impl Cli {
    /// `WHARF_PROXY` lists several mappings separated by commas; each `--proxy` on
    /// the command line is one whole, whose URL may hold a comma.
    pub fn split_proxies_from_env(&mut self, proxy_from_env: bool) {
        if proxy_from_env {
            self.proxy = self
                .proxy
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
                .collect();
        }
    }

    /// `WHARF_OPEN=false` says no to `--dev`'s opening too, as `--no-open` does.
    pub fn take_open_from_env(&mut self, open_from_env: bool) {
        if open_from_env && !self.open {
            self.no_open = true;
        }
    }

    /// The positional ROOT|PORT is the command line's word: a `WHARF_PORT` or
    /// `WHARF_ROOT` from the environment gives way to it (as every variable gives way
    /// to the command line), rather than conflict with it.
    pub fn prefer_positional_over_env(&mut self, port_from_env: bool, root_from_env: bool) {
        let Some(target) = self.target.as_deref() else {
            return;
        };
        if target_is_port(target) {
            if port_from_env {
                self.port = None;
            }
        } else if root_from_env {
            self.directory = None;
        }
    }

    /// Resolves the command line into a [`Config`], or a one-line error.
    pub fn into_config(self) -> Result<Config, String> {
        let positional_root = self.target.is_some();
        let (root, positional_port) = match (self.target, self.directory) {
            (None, dir) => (dir.unwrap_or_else(|| PathBuf::from(".")), None),
            (Some(target), dir) => {
                let as_path = PathBuf::from(&target);
                match target.to_str().filter(|_| target_is_port(&target)) {
                    Some(digits) => {
                        let port = digits.parse::<u16>().map_err(|_| {
                            format!("invalid port {digits}: must be between 0 and 65535")
                        })?;
                        (dir.unwrap_or_else(|| PathBuf::from(".")), Some(port))
                    }
                    _ if dir.is_some() => {
                        return Err(
                            "give the folder either as ROOT or with --directory, not both".into(),
                        )
                    }
                    _ => (as_path, None),
                }
            }
        };
        if positional_port.is_none() && positional_root {
            not_a_command(&root)?;
        }
        let port = match (self.port, positional_port) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!("two different ports given: {b} and --port {a}"))
            }
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => DEFAULT_PORT,
        };
        // Checked here rather than by clap, which would also count
        // WHARF_TLS_SELF_SIGNED=0 as the flag given.
        let tls = match (self.tls_cert, self.tls_key, self.tls_self_signed) {
            (Some(_), _, true) | (_, Some(_), true) => {
                return Err("--tls-self-signed cannot be combined with --tls-cert/--tls-key".into())
            }
            (Some(cert), Some(key), false) => Some(CertSource::Files { cert, key }),
            (Some(_), None, false) => return Err("--tls-cert needs --tls-key".into()),
            (None, Some(_), false) => return Err("--tls-key needs --tls-cert".into()),
            (_, _, true) => Some(CertSource::SelfSigned),
            (None, None, false) => None,
        };
        if self.redirect_http.is_some() && tls.is_none() {
            return Err(
                "--redirect-http needs HTTPS (--tls-cert/--tls-key or --tls-self-signed)".into(),
            );
        }
        if self.redirect_http.is_some_and(|p| p != 0 && p == port) {
            return Err(format!("--redirect-http {port} is the HTTPS port itself"));
        }
        let withheld = self
            .config
            .into_iter()
            .chain(match &tls {
                Some(CertSource::Files { key, .. }) => Some(key.clone()),
                Some(CertSource::SelfSigned) => crate::net::tls::self_signed_key_path(),
                None => None,
            })
            .collect();
        if let Some(admin) = self.admin {
            if !admin.ip().is_loopback() && !self.admin_public {
                return Err(format!(
                    "--admin {admin}: not a loopback address; add --admin-public to let \
                     other hosts read the metrics"
                ));
            }
        }
        let proxy_cache = proxy_cache(
            self.proxy_cache,
            self.proxy_cache_dir.as_deref(),
            self.proxy_cache_max_disk,
            &root,
        )?;
        Ok(Config {
            withheld,
            tls,
            redirect_http: self.redirect_http,
            root,
            listen: resolve_bind(&self.bind, port)?,
            workers: self.workers.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                usize::from,
            ),
            follow_symlinks: self.follow_symlinks,
            hidden: self.hidden,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_header_size: self.max_header_size as usize,
            max_target_len: MAX_TARGET_LEN,
            no_compress: self.no_compress,
            compress_cache_size: self.compress_cache_size,
            cache_size: self.cache_size,
            log_format: self.log_format,
            dev: self.dev,
            open: !self.no_open && (self.open || self.dev),
            qr: self.qr,
            quiet: self.quiet,
            verbose: self.verbose,
            access: crate::handlers::Access {
                upload: self.upload,
                delete: self.delete,
                max_upload_size: self.max_upload_size,
            },
            upload_expiry: self.upload_expiry,
            proxies: parse_proxies(&self.proxy, self.max_upload_size)?,
            grace_period: self.grace_period,
            proxy_cache,
            admin: self.admin,
            admin_public: self.admin_public,
            reuse_port: self.reuse_port,
            cgi: self.cgi,
            cgi_settings: {
                let mut cgi = crate::handlers::cgi::Settings {
                    timeout: self.cgi_timeout,
                    max_body: self.max_upload_size,
                    ..Default::default()
                };
                if let Some(max) = self.cgi_max {
                    cgi.max = max as usize;
                }
                cgi
            },
            site: crate::site::rules::Site::default(),
        })
    }
}

/// `--proxy PREFIX=URL` values as routes, longest prefix first; each URL checked.
fn parse_proxies(
    values: &[String],
    max_body: u64,
) -> Result<Vec<crate::handlers::proxy::RouteSettings>, String> {
    let mut routes = Vec::new();
    for value in values {
        let (prefix, url) = value
            .split_once('=')
            .ok_or_else(|| format!("--proxy {value:?}: expected PREFIX=URL"))?;
        if !prefix.starts_with('/') {
            return Err(format!("--proxy {value:?}: the prefix must start with /"));
        }
        let mut settings =
            crate::handlers::proxy::RouteSettings::new(prefix.to_string(), vec![url.to_string()]);
        settings.max_body = Some(max_body);
        crate::handlers::proxy::upstream::Upstream::parse(url)
            .map_err(|e| format!("--proxy {value:?}: {e}"))?;
        routes.push(settings);
    }
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    Ok(routes)
}

/// The cache settings of `--proxy-cache`, `--proxy-cache-dir` and
/// `--proxy-cache-max-disk`: a folder needs the cache on, and may not be inside
/// the served folder (its files would be served).
fn proxy_cache(
    memory: Option<u64>,
    dir: Option<&Path>,
    max_disk: u64,
    root: &Path,
) -> Result<Option<crate::handlers::proxy::cache::Settings>, String> {
    let Some(memory) = memory else {
        return match dir {
            Some(_) => Err("--proxy-cache-dir needs --proxy-cache SIZE".into()),
            None => Ok(None),
        };
    };
    let dir = match dir {
        None => None,
        Some(dir) => {
            let absolute = std::path::absolute(dir)
                .map_err(|e| format!("--proxy-cache-dir {}: {e}", dir.display()))?;
            let real_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
            // The folder may not exist yet: its nearest existing ancestor decides.
            let mut probe = absolute.clone();
            let real = loop {
                if let Ok(real) = probe.canonicalize() {
                    break real.join(absolute.strip_prefix(&probe).unwrap_or(Path::new("")));
                }
                if !probe.pop() {
                    break absolute.clone();
                }
            };
            if real.starts_with(&real_root) {
                return Err(format!(
                    "--proxy-cache-dir {}: inside the served folder, where its files would be served",
                    dir.display()
                ));
            }
            Some(absolute)
        }
    };
    Ok(Some(crate::handlers::proxy::cache::Settings {
        memory,
        dir,
        max_disk,
    }))
}

/// An upload size limit, with units as every size.
fn parse_upload_size(text: &str) -> Result<u64, String> {
    parse_size(text).map(|n| n as u64)
}

/// Refuses a positional ROOT that names nothing and looks like a mistyped
/// subcommand (a bare word), saying so and suggesting the closest subcommand, rather
/// than report a missing folder.
fn not_a_command(root: &Path) -> Result<(), String> {
    let Some(word) = root.to_str() else {
        return Ok(());
    };
    let bare = !word.is_empty() && !word.contains('/') && !word.starts_with('.');
    if !bare || root.exists() {
        return Ok(());
    }
    let mut message = format!("{word} is not a command or a folder");
    let closest = SUBCOMMANDS
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .min();
    if word.eq_ignore_ascii_case("help") {
        message.push_str("; for help, run `wharf --help`");
    } else if let Some((_, command)) = closest.filter(|(d, c)| *d <= c.len() / 3) {
        message.push_str(&format!("; did you mean `wharf {command}`?"));
    } else {
        message.push_str("; see `wharf --help`");
    }
    Err(message)
}

/// A size in bytes: a number, optionally followed by a unit (`64MiB`, `16 KiB`, `1GiB`;
/// `K`, `M` and `G` are binary as well, `KB`, `MB` and `GB` decimal; units ignore
/// case).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let invalid = || format!("invalid size {text:?}: use e.g. 65536, 64KiB, 16MiB or 1GiB");
    let number: u64 = digits.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(multiplier)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// `--max-header-size`: a size from 1 KiB to 1 MiB.
fn parse_header_size(text: &str) -> Result<u32, String> {
    let n = parse_size(text)?;
    if !(1024..=1024 * 1024).contains(&n) {
        return Err(format!("{text} is out of range: 1KiB to 1MiB"));
    }
    u32::try_from(n).map_err(|_| format!("{text} is out of range: 1KiB to 1MiB"))
}

/// A byte count as people write it: with the largest binary unit that divides it
/// (`64 MiB`, `16 KiB`), or in bytes.
pub fn format_size(bytes: usize) -> String {
    const UNITS: [(&str, usize); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    UNITS
        .iter()
        .find(|(_, n)| bytes != 0 && bytes.is_multiple_of(*n))
        .map_or_else(
            || format!("{bytes} bytes"),
            |(unit, n)| format!("{} {unit}", bytes / n),
        )
}

/// Turns `--bind` into socket addresses: an IP literal (brackets allowed for IPv6) or a
/// host name resolved once at startup (`localhost` gives both 127.0.0.1 and ::1).
fn resolve_bind(bind: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let literal = bind.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let valid_name = !bind.is_empty()
        && bind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid_name {
        return Err(format!(
            "--bind {bind:?}: invalid bind address: expected an IP address or a host name"
        ));
    }
    let mut addrs: Vec<SocketAddr> = (bind, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve bind address {bind}: {e}"))?
        .collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(format!("bind address {bind} resolves to no address"));
    }
    Ok(addrs)
}

/// The longest duration accepted: deadlines are instants, and a deadline beyond what
/// the clock can represent would be an overflow, not a very long wait.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration: plain seconds (`10`, `1.5`) or with a unit (`500ms`, `10s`, `2m`), at
/// most a year.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = if let Ok(secs) = s.parse::<f64>() {
        Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {s:?}"))?
    } else {
        humantime::parse_duration(s)
            .map_err(|_| format!("invalid duration {s:?}: use e.g. 10, 10s, 500ms or 2m"))?
    };
    if d > MAX_DURATION {
        return Err(format!("duration {s:?} is too long: at most 365 days"));
    }
    Ok(d)
}

/// `--admin`: an address and port; `localhost:PORT` and a bare `PORT` mean the IPv4
/// loopback address (what a metrics listener usually wants, and what is typed).
fn parse_admin(value: &str) -> Result<SocketAddr, String> {
    let loopback = |port: &str| {
        port.parse::<u16>()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .map_err(|_| format!("{port:?} is not a port number"))
    };
    if let Some(port) = value.strip_prefix("localhost:") {
        return loopback(port);
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return loopback(value);
    }
    value
        .parse()
        .map_err(|_| format!("{value:?} is not ADDR:PORT (e.g. 127.0.0.1:9464, [::1]:9464)"))
}

/// A duration that must be positive: a zero timeout would drop every client.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("a timeout must be longer than zero".into()),
        // Shorter than the time a packet takes to cross a network: every client
        // would be cut off (`1ns` is a slip, not a policy).
        d if d < Duration::from_millis(1) => {
            Err(format!("{s:?} is too short for a timeout: 1ms or more"))
        }
        d => Ok(d),
    }
}

/// `--upload-expiry`: kept in whole seconds (an upload's state on disk), so 1s or more.
fn parse_expiry(s: &str) -> Result<Duration, String> {
    match parse_timeout(s)? {
        d if d < Duration::from_secs(1) => Err(format!("{s:?} is too short: 1s or more")),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["wharf"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .into_config()
    }

    #[test]
    fn timeouts_under_a_millisecond_are_refused() {
        for value in ["1ns", "999us", "0s"] {
            assert!(parse_timeout(value).is_err(), "{value}");
        }
        assert_eq!(parse_timeout("1ms"), Ok(Duration::from_millis(1)));
        assert!(config(&["--header-timeout", "1ns"]).is_err());
        assert!(config(&["--upload-expiry", "500ms"]).is_err());
        assert!(config(&["--upload-expiry", "1s"]).is_ok());
    }

    #[test]
    fn durations_beyond_a_year_are_refused() {
        for flag in ["--idle-timeout", "--header-timeout", "--grace-period"] {
            for value in [
                "9223372036854775807s",
                "18446744073709551615s",
                "366d",
                "1e30",
            ] {
                assert!(config(&[flag, value]).is_err(), "{flag} {value}");
            }
            assert!(config(&[flag, "365d"]).is_ok(), "{flag} 365d");
        }
    }

    #[test]
    fn admin_takes_localhost_and_a_bare_port_as_loopback() {
        let at = |value: &str| config(&["--admin", value]).map(|c| c.admin);
        let loopback = Some("127.0.0.1:9464".parse().unwrap());
        assert_eq!(at("localhost:9464").unwrap(), loopback);
        assert_eq!(at("9464").unwrap(), loopback);
        assert_eq!(
            at("[::1]:9464").unwrap(),
            Some("[::1]:9464".parse().unwrap())
        );
        for bad in ["localhost:http", "99999", "example.org:9464", ""] {
            assert!(at(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_lone_number_is_the_port() {
        let c = config(&["9000"]).unwrap();
        assert_eq!(c.listen, vec!["127.0.0.1:9000".parse().unwrap()]);
        assert_eq!(c.root, PathBuf::from("."));
    }

    #[test]
    fn an_existing_numeric_folder_is_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("123");
        std::fs::create_dir(&dir).unwrap();
        let c = config(&[dir.to_str().unwrap()]).unwrap();
        assert_eq!(c.root, dir);
        assert_eq!(c.listen[0].port(), 8000);
    }

    #[test]
    fn python_style_directory_and_port() {
        let c = config(&["-d", "/srv", "8080", "-b", "::"]).unwrap();
        assert_eq!(c.root, PathBuf::from("/srv"));
        assert_eq!(c.listen, vec!["[::]:8080".parse().unwrap()]);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(config(&["99999"]).unwrap_err().contains("invalid port"));
        assert!(config(&["--port", "abc"]).is_err());
        assert!(config(&["-b", "bad addr!"])
            .unwrap_err()
            .contains("invalid bind"));
        assert!(config(&["--header-timeout", "soon"]).is_err());
        assert!(config(&["--idle-timeout", "0"]).is_err());
        assert!(config(&["--log-format", "xml"]).is_err());
        assert!(config(&["./a", "-d", "./b"])
            .unwrap_err()
            .contains("not both"));
        assert!(config(&["9000", "-p", "9001"])
            .unwrap_err()
            .contains("two different"));
    }

    #[test]
    fn sizes_accept_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("16 KiB"), Ok(16 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("16k"), Ok(16 << 10));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in [
            "",
            "MiB",
            "-1",
            "1.5MiB",
            "12 parsecs",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(parse_size("99999999TiB").is_err());
        let c = config(&[
            "--cache-size",
            "8MiB",
            "--compress-cache-size",
            "1GiB",
            "--max-header-size",
            "32KiB",
        ])
        .unwrap();
        assert_eq!(c.cache_size, 8 << 20);
        assert_eq!(c.compress_cache_size, 1 << 30);
        assert_eq!(c.max_header_size, 32 << 10);
        assert!(config(&["--max-header-size", "512"]).is_err());
        assert!(config(&["--max-header-size", "2MiB"]).is_err());
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(1000), "1000 bytes");
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("-1").is_err());
    }
}
