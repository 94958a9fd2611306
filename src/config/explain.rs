//! `--explain`: every effective setting with where it came from, then what is exposed
//! and how it is limited, in plain words.

use std::fmt::Write as _;

use ipnet::IpNet;

use crate::config::cli::Config;
use crate::config::file::Source;

fn shown_root(config: &Config) -> String {
    std::fs::canonicalize(&config.root)
        .unwrap_or_else(|_| config.root.clone())
        .display()
        .to_string()
}

/// `; cached` for a proxy whose responses go through the cache.
fn cached(config: &Config, on: bool) -> &'static str {
    match (&config.proxy_cache, on) {
        (Some(_), true) => "; cached",
        _ => "",
    }
}

/// The folder under `root` that a rule `pattern` allowing writes starts at (its
/// part before any wildcard, up to a `/`), when it exists and this process may not
/// write to it: every write there would be refused.
fn unwritable_folder(root: &std::path::Path, pattern: &str) -> Option<std::path::PathBuf> {
    let literal = pattern
        .split(['*', '?', '[', '{'])
        .next()
        .unwrap_or_default();
    let folder = literal.rsplit_once('/').map_or("", |(folder, _)| folder);
    let path = match folder.trim_start_matches('/') {
        "" => root.to_path_buf(),
        folder => root.join(folder),
    };
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let writable = rustix::fs::access(&path, rustix::fs::Access::WRITE_OK).is_ok();
    (path.is_dir() && !writable).then_some(path)
}

/// Where writes are allowed, and a warning for each place the network can write to
/// without a password.
fn writes(config: &Config, out: &mut String) {
    let open_network = config.listen.iter().any(|a| !a.ip().is_loopback());
    let what = |upload: bool, delete: bool| match (upload, delete) {
        (true, true) => "uploads, changes and deletes",
        (true, false) => "uploads and changes (no deletes)",
        (false, true) => "deletes",
        (false, false) => "",
    };
    let mut any = false;
    // `path` as shown, the rule's `pattern`, what it allows.
    let mut say = |path: &str, pattern: &str, upload: bool, delete: bool, authed: bool| {
        if !(upload || delete) {
            return;
        }
        any = true;
        let _ = writeln!(out, "  - {path}: {} allowed.", what(upload, delete));
        if open_network && !authed {
            let _ = writeln!(
                out,
                "    WARNING: anyone who can reach this server may write under {path} (no auth rule)."
            );
        }
        if let Some(folder) = unwritable_folder(&config.root, pattern) {
            let _ = writeln!(
                out,
                "    WARNING: {} is not writable by this user: writes there get 403.",
                folder.display()
            );
        }
    };
    let access = config.access;
    let root_authed = config
        .site
        .rules
        .iter()
        .any(|r| r.path.as_str() == "/" && r.auth.is_some());
    say(
        "/ (everything)",
        "/",
        access.upload,
        access.delete,
        root_authed,
    );
    for rule in &config.site.rules {
        if rule.upload.is_some() || rule.delete.is_some() {
            say(
                rule.path.as_str(),
                rule.path.as_str(),
                rule.upload.unwrap_or(access.upload),
                rule.delete.unwrap_or(access.delete),
                rule.auth.is_some() || root_authed,
            );
        }
    }
    if !any {
        out.push_str(
            "  - Uploads and other writes: not allowed anywhere (--upload, --delete or a rule's upload/delete turn them on).\n",
        );
    } else {
        let _ = writeln!(
            out,
            "  - Largest upload: {} bytes (--max-upload-size).",
            access.max_upload_size
        );
    }
}

/// The `--explain` report: every effective value with its source, then what is exposed
/// and how it is limited, in plain words.
pub fn explain(config: &Config, sources: &[(&'static str, Source)]) -> String {
    let source = |key: &str| {
        sources
            .iter()
            .find(|(k, _)| *k == key)
            .map_or_else(|| "default".to_string(), |(_, s)| s.to_string())
    };
    let dur = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let onoff = |b: bool| if b { "on" } else { "off" }.to_string();
    let tls = match &config.tls {
        None => "off".to_string(),
        Some(crate::net::tls::CertSource::SelfSigned) => "self-signed".to_string(),
        Some(crate::net::tls::CertSource::Files { cert, key }) => {
            format!("{} + {}", cert.display(), key.display())
        }
    };
    let listen: Vec<String> = config.listen.iter().map(ToString::to_string).collect();
    let rows: Vec<(&str, String, &str)> = vec![
        ("root", shown_root(config), "root"),
        ("listen", listen.join(", "), "bind"),
        ("workers", config.workers.to_string(), "workers"),
        ("tls", tls, "tls-cert"),
        (
            "redirect-http",
            config.redirect_http.map_or("off".into(), |p| p.to_string()),
            "redirect-http",
        ),
        (
            "follow-symlinks",
            onoff(config.follow_symlinks),
            "follow-symlinks",
        ),
        ("hidden", onoff(config.hidden), "hidden"),
        (
            "header-timeout",
            dur(config.header_timeout),
            "header-timeout",
        ),
        ("idle-timeout", dur(config.idle_timeout), "idle-timeout"),
        (
            "max-header-size",
            crate::config::cli::format_size(config.max_header_size),
            "max-header-size",
        ),
        (
            "log-format",
            format!("{:?}", config.log_format).to_lowercase(),
            "log-format",
        ),
        ("dev", onoff(config.dev), "dev"),
        ("open", onoff(config.open), "open"),
        ("qr", onoff(config.qr), "qr"),
        ("quiet", onoff(config.quiet), "quiet"),
        ("verbose", onoff(config.verbose), "verbose"),
        ("no-compress", onoff(config.no_compress), "no-compress"),
        (
            "compress-cache-size",
            crate::config::cli::format_size(config.compress_cache_size),
            "compress-cache-size",
        ),
        (
            "cache-size",
            crate::config::cli::format_size(config.cache_size),
            "cache-size",
        ),
        ("upload", onoff(config.access.upload), "upload"),
        ("delete", onoff(config.access.delete), "delete"),
        (
            "max-upload-size",
            crate::config::cli::format_size(
                usize::try_from(config.access.max_upload_size).unwrap_or(usize::MAX),
            ),
            "max-upload-size",
        ),
        ("upload-expiry", dur(config.upload_expiry), "upload-expiry"),
        ("grace-period", dur(config.grace_period), "grace-period"),
        ("reuse-port", onoff(config.reuse_port), "reuse-port"),
        (
            "admin",
            config.admin.map_or("off".to_string(), |a| {
                format!("{a} (/metrics, /healthz, /readyz)")
            }),
            "admin",
        ),
        (
            "proxy-cache",
            config.proxy_cache.as_ref().map_or("off".to_string(), |c| {
                crate::config::cli::format_size(c.memory as usize)
            }),
            "proxy-cache",
        ),
        (
            "proxy-cache-dir",
            config
                .proxy_cache
                .as_ref()
                .and_then(|c| c.dir.as_ref())
                .map_or("none".to_string(), |d| d.display().to_string()),
            "proxy-cache-dir",
        ),
        (
            "proxy-cache-max-disk",
            config
                .proxy_cache
                .as_ref()
                .filter(|c| c.dir.is_some())
                .map_or("none".to_string(), |c| {
                    crate::config::cli::format_size(
                        usize::try_from(c.max_disk).unwrap_or(usize::MAX),
                    )
                }),
            "proxy-cache-max-disk",
        ),
        ("cgi", onoff(config.cgi), "cgi"),
        (
            "cgi-timeout",
            dur(config.cgi_settings.timeout),
            "cgi-timeout",
        ),
        ("cgi-max", config.cgi_settings.max.to_string(), "cgi-max"),
    ];
    let mut out = String::from("Effective configuration:\n");
    for (name, value, key) in rows {
        let from = if name == "listen" {
            let (b, p) = (source("bind"), source("port"));
            if b == p {
                b
            } else {
                format!("bind: {b}; port: {p}")
            }
        } else if name == "tls" {
            match config.tls {
                Some(crate::net::tls::CertSource::SelfSigned) => source("tls-self-signed"),
                _ => source("tls-cert"),
            }
        } else {
            source(key)
        };
        let _ = writeln!(out, "  {name:<20} {value:<40} ({from})");
    }
    out.push_str("\nSecurity summary:\n");
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    for addr in &config.listen {
        let reach = if addr.ip().is_loopback() {
            "this machine only"
        } else if addr.ip().is_unspecified() {
            "every network interface: anyone who can reach this machine"
        } else {
            "that address's network"
        };
        let _ = writeln!(
            out,
            "  - {} is served on {scheme}://{addr}/ ({reach}); nothing outside it is.",
            shown_root(config)
        );
    }
    if config.tls.is_none() && config.listen.iter().any(|a| !a.ip().is_loopback()) {
        out.push_str("  - Traffic is not encrypted (no TLS) on a non-loopback address.\n");
    }
    let _ = writeln!(
        out,
        "  - Dotfiles and dot-directories: {}.",
        if config.hidden {
            "served and listed (--hidden)"
        } else {
            "hidden (404), except /.well-known/"
        }
    );
    let _ = writeln!(
        out,
        "  - Symlinks leading outside the folder: {}.",
        if config.follow_symlinks {
            "followed (--follow-symlinks)"
        } else {
            "refused (404)"
        }
    );
    for rule in &config.site.rules {
        let path = rule.path.as_str();
        match &rule.auth {
            Some(crate::site::rules::AuthRule::AnyUser) => {
                let _ = writeln!(
                    out,
                    "  - {path} needs a user from [users] (HTTP Basic; use HTTPS on open networks)."
                );
            }
            Some(crate::site::rules::AuthRule::Users(names)) => {
                let _ = writeln!(
                    out,
                    "  - {path} needs one of these users: {} (HTTP Basic).",
                    names.join(", ")
                );
            }
            None => {}
        }
        if !rule.allow.is_empty() || !rule.deny.is_empty() {
            let list = |nets: &[IpNet]| {
                nets.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let allowed = if rule.allow.is_empty() {
                "everyone".to_string()
            } else {
                list(&rule.allow)
            };
            let denied = if rule.deny.is_empty() {
                "nobody".to_string()
            } else {
                list(&rule.deny)
            };
            let _ = writeln!(
                out,
                "  - {path} is limited by address: allowed {allowed}; denied {denied} (others get 403)."
            );
        }
        if rule.cors.is_some() {
            let _ = writeln!(
                out,
                "  - {path} may be read by scripts from other origins (CORS rule)."
            );
        }
    }
    if config.site.security_headers {
        out.push_str("  - Security headers are added to every response.\n");
    }
    writes(config, &mut out);
    for proxy in &config.proxies {
        let _ = writeln!(
            out,
            "  - {} is passed to {} (--proxy; request bodies buffered: {}{}).",
            proxy.prefix,
            proxy.upstreams.join(", "),
            if proxy.buffer_request { "yes" } else { "no" },
            cached(config, proxy.cache)
        );
    }
    if let Some(cache) = &config.proxy_cache {
        let _ = writeln!(
            out,
            "  - Proxied responses are cached as RFC 9111 allows a shared cache: {} in memory{}.",
            crate::config::cli::format_size(cache.memory as usize),
            cache
                .dir
                .as_ref()
                .map(|d| format!(
                    ", up to {} in {}",
                    crate::config::cli::format_size(cache.max_disk as usize),
                    d.display()
                ))
                .unwrap_or_default()
        );
    }
    if config.cgi {
        out.push_str("  - Programs under /cgi-bin/ and /htbin/ are run, not served (--cgi).\n");
    }
    for rule in &config.site.rules {
        if let Some(crate::handlers::Handler::Cgi(route)) = &rule.handler {
            let interpreters: Vec<String> = route
                .interpreters
                .iter()
                .map(|(ext, program)| format!("{ext} by {}", program.display()))
                .collect();
            let _ = writeln!(
                out,
                "  - Programs at {} are run, not served (CGI rule{}{}).",
                rule.path.as_str(),
                if interpreters.is_empty() { "" } else { "; " },
                interpreters.join(", ")
            );
        }
        if let Some(crate::handlers::Handler::FastCgi(route)) = &rule.handler {
            let _ = writeln!(
                out,
                "  - Scripts at {} are run by the FastCGI application at {} (at most {} at once){}.",
                rule.path.as_str(),
                route.upstream,
                route.max_connections(),
                route
                    .index
                    .as_deref()
                    .map(|i| format!(" (folders: {i})"))
                    .unwrap_or_default()
            );
        }
        if let Some(crate::handlers::Handler::Proxy(route)) = &rule.handler {
            let _ = writeln!(
                out,
                "  - {} is passed to {} (proxy rule{}{}{}).",
                rule.path.as_str(),
                route.upstreams().collect::<Vec<_>>().join(", "),
                if route.files_first {
                    ", files first"
                } else {
                    ""
                },
                cached(config, route.cache),
                route
                    .health_uri()
                    .map(|uri| format!(", health checks of {uri}"))
                    .unwrap_or_default()
            );
        }
        if rule.internal {
            let _ = writeln!(
                out,
                "  - {} is internal: only an app's X-Accel-Redirect reaches it.",
                rule.path.as_str()
            );
        }
    }
    let _ = writeln!(
        out,
        "  - Limits: request head within {}, idle connections closed after {}, header section {} bytes, request target {} bytes.",
        dur(config.header_timeout),
        dur(config.idle_timeout),
        config.max_header_size,
        config.max_target_len
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::tests::{run, write};

    #[test]
    fn explain_reports_sources_and_exposure() {
        let (_d, path) = write("bind = \"0.0.0.0\"\nhidden = true\n");
        let layered = run(&path, &["-p", "8123"]).unwrap();
        let sources = layered.sources.clone();
        let config = layered.cli.into_config().unwrap();
        let text = explain(&config, &sources);
        assert!(text.contains("0.0.0.0:8123"), "{text}");
        assert!(text.contains("every network interface"), "{text}");
        assert!(text.contains("not encrypted"), "{text}");
        assert!(text.contains("served and listed"), "{text}");
    }
}
