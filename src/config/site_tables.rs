//! The configuration file's site tables — `[[rule]]`, `[error-pages]`, `[users]` and
//! `security-headers` — read into a [`Site`]: globs, handlers, redirects, rewrites,
//! headers, address lists, CORS and auth, each checked with errors that name the
//! file's line.

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use ipnet::IpNet;

use crate::config::lines::{key_line, line_in_section, line_in_table, section_line};
use crate::handlers::proxy::{Route, RouteSettings};
use crate::handlers::Handler;
use crate::site::cors::Cors;
use crate::site::rules::{placeholders, AuthRule, Glob, Redirect, Rule, Site};

/// File-only keys: they describe the site rather than the server.
pub(super) const SITE_KEYS: &[&str] = &["rule", "error-pages", "security-headers", "users"];

pub(super) type SiteError = (usize, String);

/// Reads one site-level key into `site`.
/// Relative paths in it (a proxy's `tls-ca`) are relative to `dir`, the file's folder.
pub(super) fn site_entry(
    site: &mut Site,
    key: &str,
    value: &toml::Value,
    text: &str,
    dir: &std::path::Path,
) -> Result<(), SiteError> {
    let line = key_line(text, key);
    match (key, value) {
        ("security-headers", toml::Value::Boolean(on)) => site.security_headers = *on,
        ("security-headers", other) => {
            return Err((
                line,
                format!(
                    "key \"security-headers\": expected true or false, found {}",
                    other.type_str()
                ),
            ))
        }
        ("error-pages", toml::Value::Table(pages)) => {
            let base = section_line(text, "[error-pages]", 0);
            for (code, page) in pages {
                let line = line_in_section(text, base, code);
                let status = code
                    .parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .filter(|s| s.is_client_error() || s.is_server_error())
                    .ok_or((
                        line,
                        format!("key \"error-pages.{code}\": not a 4xx or 5xx status"),
                    ))?;
                let page = page.as_str().filter(|p| p.starts_with('/')).ok_or((
                    line,
                    format!("key \"error-pages.{code}\": expected a path starting with /"),
                ))?;
                site.error_pages.push((status, page.to_string()));
            }
        }
        ("users", toml::Value::Table(users)) => {
            let base = section_line(text, "[users]", 0);
            let mut hashes = std::collections::HashMap::new();
            for (name, hash) in users {
                let line = line_in_section(text, base, name);
                let hash = hash.as_str().ok_or((
                    line,
                    format!("key \"users.{name}\": expected a password hash string"),
                ))?;
                crate::site::auth::check_hash(name, hash)
                    .map_err(|e| (line, format!("key \"users.{name}\": {e}")))?;
                hashes.insert(name.clone(), hash.to_string());
            }
            site.users = std::sync::Arc::new(
                crate::site::auth::Users::new(hashes)
                    .map_err(|e| (base, format!("key \"users\": {e}")))?,
            );
        }
        ("users", _) => {
            return Err((
                line,
                "key \"users\": expected a table of name = \"hash\"".into(),
            ))
        }
        ("error-pages", _) => {
            return Err((
                line,
                "key \"error-pages\": expected a table of status = \"/page.html\"".into(),
            ))
        }
        ("rule", toml::Value::Array(rules)) => {
            for (i, rule) in rules.iter().enumerate() {
                let base = section_line(text, "[[rule]]", i);
                let toml::Value::Table(rule) = rule else {
                    return Err((base, "key \"rule\": each rule is a [[rule]] table".into()));
                };
                site.rules.push(parse_rule(rule, text, base, dir)?);
            }
        }
        _ => return Err((line, format!("key \"{key}\": expected [[{key}]] tables"))),
    }
    Ok(())
}

const RULE_KEYS: &[&str] = &[
    "path",
    "handler",
    "headers",
    "redirect",
    "status",
    "rewrite",
    "spa",
    "allow",
    "deny",
    "cors",
    "auth",
    "upload",
    "delete",
    "max-upload-size",
    "upstreams",
    "files-first",
    "buffer-request",
    "connect-timeout",
    "response-timeout",
    "upstream-headers",
    "trusted-proxies",
    "balance",
    "tls-ca",
    "cache",
    "health-uri",
    "health-interval",
    "internal",
    "interpreter",
    "upstream",
    "index",
    "split-path",
    "scripts",
    "params",
    "max-connections",
];

/// The shortest `health-interval`: checks more often than this would load the
/// upstreams more than the traffic they stand for.
const MIN_HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Keys that only a proxy rule takes.
const PROXY_KEYS: &[&str] = &[
    "upstreams",
    "files-first",
    "buffer-request",
    "connect-timeout",
    "response-timeout",
    "upstream-headers",
    "trusted-proxies",
    "balance",
    "tls-ca",
    "cache",
    "health-uri",
    "health-interval",
];

/// Keys that only a CGI rule takes.
const CGI_KEYS: &[&str] = &["interpreter"];

/// Keys that only a FastCGI rule takes.
const FASTCGI_KEYS: &[&str] = &[
    "upstream",
    "index",
    "split-path",
    "scripts",
    "params",
    "max-connections",
];

/// Headers a rule may not set: they frame the message, and a wrong value would
/// corrupt the connection.
const FRAMING_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

/// Headers a rule may not set either: they describe the very bytes sent (which
/// coding, which part, which version), and one value for every response would
/// make caches and conditional requests go wrong.
const REPRESENTATION_HEADERS: &[&str] =
    &["content-encoding", "content-range", "etag", "last-modified"];

fn parse_rule(
    rule: &toml::Table,
    text: &str,
    base: usize,
    dir: &std::path::Path,
) -> Result<Rule, SiteError> {
    let at = |key: &str| line_in_section(text, base, key);
    let string = |key: &str| -> Result<Option<String>, SiteError> {
        match rule.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err((
                at(key),
                format!(
                    "key \"rule.{key}\": expected a string, found {}",
                    other.type_str()
                ),
            )),
        }
    };
    if let Some(key) = rule.keys().find(|k| !RULE_KEYS.contains(&k.as_str())) {
        return Err((
            at(key),
            format!(
                "unknown key \"rule.{key}\" (known: {})",
                RULE_KEYS.join(", ")
            ),
        ));
    }
    let path = string("path")?.ok_or((
        base,
        "key \"rule.path\": every rule needs a path".to_string(),
    ))?;
    let path = Glob::parse(&path).map_err(|e| (at("path"), format!("key \"rule.path\": {e}")))?;
    let mut headers = Vec::new();
    match rule.get("headers") {
        None => {}
        Some(toml::Value::Table(h)) => {
            for (name, value) in h {
                let line = line_in_table(text, base, "headers", name);
                let bad = |what: String| (line, format!("key \"rule.headers\": {what}"));
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| bad(format!("invalid header name {name:?}")))?;
                if FRAMING_HEADERS.contains(&name.as_str()) {
                    return Err(bad(format!(
                        "{name} describes the message framing, which wharf sets"
                    )));
                }
                if REPRESENTATION_HEADERS.contains(&name.as_str()) {
                    return Err(bad(format!(
                        "{name} describes the content sent, which wharf sets for each response"
                    )));
                }
                let value = value
                    .as_str()
                    .and_then(|v| HeaderValue::from_str(v).ok())
                    .ok_or_else(|| bad(format!("invalid value for {name}")))?;
                headers.push((name, value));
            }
        }
        Some(_) => {
            return Err((
                at("headers"),
                "key \"rule.headers\": expected a table of name = \"value\"".into(),
            ))
        }
    }
    let status = match rule.get("status") {
        None => None,
        Some(toml::Value::Integer(code)) => Some(
            u16::try_from(*code)
                .ok()
                .filter(|c| [301, 302, 303, 307, 308].contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or((
                    at("status"),
                    format!("key \"rule.status\": {code} is not a redirect status (301, 302, 303, 307, 308)"),
                ))?,
        ),
        Some(_) => return Err((at("status"), "key \"rule.status\": expected a number".into())),
    };
    let redirect = match string("redirect")? {
        Some(to) => {
            if let Err(why) = redirect_target(&to) {
                return Err((at("redirect"), format!("key \"rule.redirect\": {why}")));
            }
            Some(Redirect {
                to,
                status: status.unwrap_or(StatusCode::FOUND),
            })
        }
        None => None,
    };
    if status.is_some() && redirect.is_none() {
        return Err((
            at("status"),
            "key \"rule.status\": only meaningful with redirect".into(),
        ));
    }
    let local = |key: &str| -> Result<Option<String>, SiteError> {
        match string(key)? {
            Some(p) if !p.starts_with('/') => Err((
                at(key),
                format!("key \"rule.{key}\": expected a path starting with /"),
            )),
            other => Ok(other),
        }
    };
    let nets = |key: &str| -> Result<Vec<IpNet>, SiteError> {
        let Some(value) = rule.get(key) else {
            return Ok(Vec::new());
        };
        let toml::Value::Array(items) = value else {
            return Err((
                at(key),
                format!("key \"rule.{key}\": expected a list of addresses or networks"),
            ));
        };
        items
            .iter()
            .map(|item| {
                let s = item.as_str().unwrap_or("");
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        (
                            at(key),
                            format!(
                                "key \"rule.{key}\": {s:?} is not an IP address or CIDR network"
                            ),
                        )
                    })
            })
            .collect()
    };
    let strings = |table: &toml::Table, key: &str| -> Result<Vec<String>, SiteError> {
        match table.get(key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().map(String::from).ok_or((
                        line_in_table(text, base, "cors", key),
                        format!("key \"rule.cors.{key}\": expected a list of strings"),
                    ))
                })
                .collect(),
            Some(_) => Err((
                line_in_table(text, base, "cors", key),
                format!("key \"rule.cors.{key}\": expected a list of strings"),
            )),
        }
    };
    let cors = match rule.get("cors") {
        None => None,
        Some(toml::Value::Table(t)) => {
            if let Some(k) = t.keys().find(|k| {
                ![
                    "origins",
                    "methods",
                    "headers",
                    "expose",
                    "credentials",
                    "max-age",
                ]
                .contains(&k.as_str())
            }) {
                return Err((line_in_table(text, base, "cors", k), format!("unknown key \"rule.cors.{k}\" (known: origins, methods, headers, expose, credentials, max-age)")));
            }
            let credentials = match t.get("credentials") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => {
                    return Err((
                        line_in_table(text, base, "cors", "credentials"),
                        "key \"rule.cors.credentials\": expected true or false".into(),
                    ))
                }
            };
            let max_age = match t.get("max-age") {
                None => None,
                Some(toml::Value::Integer(n)) => Some(u32::try_from(*n).map_err(|_| {
                    (
                        line_in_table(text, base, "cors", "max-age"),
                        "key \"rule.cors.max-age\": expected seconds (0 or more)".to_string(),
                    )
                })?),
                Some(_) => {
                    return Err((
                        line_in_table(text, base, "cors", "max-age"),
                        "key \"rule.cors.max-age\": expected a number of seconds".into(),
                    ))
                }
            };
            Some(
                Cors::new(
                    &strings(t, "origins")?,
                    &strings(t, "methods")?,
                    &strings(t, "headers")?,
                    &strings(t, "expose")?,
                    credentials,
                    max_age,
                )
                .map_err(|e| (at("cors"), format!("key \"rule.cors\": {e}")))?,
            )
        }
        Some(_) => return Err((at("cors"), "key \"rule.cors\": expected a table".into())),
    };
    let auth = match rule.get("auth") {
        None | Some(toml::Value::Boolean(false)) => None,
        Some(toml::Value::Boolean(true)) => Some(AuthRule::AnyUser),
        Some(toml::Value::Array(items)) => Some(AuthRule::Users(
            items
                .iter()
                .map(|i| {
                    i.as_str().map(String::from).ok_or((
                        at("auth"),
                        "key \"rule.auth\": expected true or a list of user names".to_string(),
                    ))
                })
                .collect::<Result<Vec<_>, _>>()?,
        )),
        Some(_) => {
            return Err((
                at("auth"),
                "key \"rule.auth\": expected true or a list of user names".into(),
            ))
        }
    };
    let handler = match string("handler")?.as_deref() {
        None => None,
        Some("proxy") => Some(proxy_handler(rule, &path, (text, base, dir), &nets)?),
        Some("cgi") => Some(cgi_handler(rule, &path, (text, base))?),
        Some("fastcgi") => Some(fastcgi_handler(rule, (text, base))?),
        Some(name) => Some(
            Handler::parse(name)
                .map_err(|e| (at("handler"), format!("key \"rule.handler\": {e}")))?,
        ),
    };
    for (keys, name, applies) in [
        (
            PROXY_KEYS,
            "proxy",
            matches!(handler, Some(Handler::Proxy(_))),
        ),
        (CGI_KEYS, "cgi", matches!(handler, Some(Handler::Cgi(_)))),
        (
            FASTCGI_KEYS,
            "fastcgi",
            matches!(handler, Some(Handler::FastCgi(_))),
        ),
    ] {
        if applies {
            continue;
        }
        if let Some(key) = keys.iter().find(|k| rule.contains_key(**k)) {
            return Err((
                at(key),
                format!("key \"rule.{key}\": only a rule with handler = \"{name}\" takes it"),
            ));
        }
    }
    let boolean = |key: &str| -> Result<Option<bool>, SiteError> {
        match rule.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err((
                at(key),
                format!(
                    "key \"rule.{key}\": expected true or false, found {}",
                    other.type_str()
                ),
            )),
        }
    };
    let max_upload_size = match rule.get("max-upload-size") {
        None => None,
        Some(toml::Value::Integer(n)) if *n >= 0 => u64::try_from(*n).ok(),
        Some(toml::Value::String(text)) => Some(
            crate::config::cli::parse_size(text)
                .map(|n| n as u64)
                .map_err(|e| {
                    (
                        at("max-upload-size"),
                        format!("key \"rule.max-upload-size\": {e}"),
                    )
                })?,
        ),
        Some(_) => {
            return Err((
                at("max-upload-size"),
                "key \"rule.max-upload-size\": expected a size such as \"10MiB\"".into(),
            ))
        }
    };
    let rewrite = local("rewrite")?;
    // A rewrite changes the path served; the query stays the request's.
    if rewrite.as_ref().is_some_and(|t| t.contains(['?', '#'])) {
        return Err((
            at("rewrite"),
            "key \"rule.rewrite\": a rewrite names a path, without ? or # (the request's query is kept)".into(),
        ));
    }
    let spa = local("spa")?;
    // A capture the path cannot yield would silently expand to nothing.
    for (key, template) in [
        ("redirect", redirect.as_ref().map(|r| &r.to)),
        ("rewrite", rewrite.as_ref()),
    ] {
        let Some(template) = template else { continue };
        let count = path.wildcards();
        if let Some(n) = placeholders(template).find(|&n| n == 0 || n > count) {
            return Err((
                at(key),
                format!(
                    "key \"rule.{key}\": {{{n}}} names no capture: the path {:?} has {count} wildcard(s)",
                    path.as_str()
                ),
            ));
        }
    }
    // A redirect answers before any file is looked at: a rewrite or fallback beside it
    // would never apply.
    if redirect.is_some() {
        if let Some(key) = ["rewrite", "spa"]
            .into_iter()
            .find(|k| rule.contains_key(*k))
        {
            return Err((
                at(key),
                format!("key \"rule.{key}\": a rule that redirects serves nothing, so it cannot {key} too"),
            ));
        }
    }
    Ok(Rule {
        handler,
        path,
        headers,
        redirect,
        rewrite,
        spa,
        allow: match nets("allow")? {
            // No one at all is what `deny` says; an empty `allow` reads as "no
            // limit" to some and "no one" to others.
            allow if allow.is_empty() && rule.contains_key("allow") => {
                return Err((
                    at("allow"),
                    "key \"rule.allow\": an empty list would admit no one; to refuse \
                     every client write deny = [\"0.0.0.0/0\", \"::/0\"], or leave allow out"
                        .into(),
                ))
            }
            allow => allow,
        },
        deny: nets("deny")?,
        cors,
        auth,
        internal: boolean("internal")?.unwrap_or(false),
        upload: boolean("upload")?,
        delete: boolean("delete")?,
        max_upload_size,
    })
}

/// A `handler = "proxy"` rule's route: its upstreams and options, each checked with
/// the line it is on.
/// `(text, base, dir)`: the file's text, the rule's first line, the file's folder.
fn proxy_handler(
    rule: &toml::Table,
    path: &Glob,
    (text, base, base_dir): (&str, usize, &std::path::Path),
    nets: &dyn Fn(&str) -> Result<Vec<IpNet>, SiteError>,
) -> Result<Handler, SiteError> {
    let at = |key: &str| line_in_section(text, base, key);
    let fail = |key: &str, what: String| (at(key), format!("key \"rule.{key}\": {what}"));
    let upstreams = match rule.get("upstreams") {
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| fail("upstreams", "expected a list of URLs".into()))?,
        Some(toml::Value::String(one)) => vec![one.clone()],
        Some(_) => return Err(fail("upstreams", "expected a list of URLs".into())),
        None => {
            return Err(fail(
                "handler",
                "a proxy rule needs upstreams = [...]".into(),
            ))
        }
    };
    let prefix = path.as_str().trim_end_matches("**").to_string();
    let mut settings = RouteSettings::new(prefix, upstreams);
    let flag = |key: &str| -> Result<Option<bool>, SiteError> {
        match rule.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(_) => Err(fail(key, "expected true or false".into())),
        }
    };
    if let Some(b) = flag("files-first")? {
        settings.files_first = b;
    }
    if let Some(b) = flag("buffer-request")? {
        settings.buffer_request = b;
    }
    if let Some(b) = flag("cache")? {
        settings.cache = b;
    }
    let duration = |key: &str| -> Result<Option<std::time::Duration>, SiteError> {
        match rule.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if *n > 0 => {
                Ok(Some(std::time::Duration::from_secs(*n as u64)))
            }
            // Longer than zero and at most a year, as on the command line.
            Some(toml::Value::String(s)) => crate::config::cli::parse_timeout(s)
                .map(Some)
                .map_err(|e| fail(key, e)),
            Some(_) => Err(fail(key, "expected a duration such as \"5s\"".into())),
        }
    };
    if let Some(d) = duration("connect-timeout")? {
        settings.connect_timeout = d;
    }
    if let Some(d) = duration("response-timeout")? {
        settings.response_timeout = d;
    }
    match rule.get("max-upload-size") {
        Some(toml::Value::Integer(n)) => settings.max_body = Some(u64::try_from(*n).unwrap_or(0)),
        Some(toml::Value::String(text)) => {
            let size =
                crate::config::cli::parse_size(text).map_err(|e| fail("max-upload-size", e))?;
            settings.max_body = Some(size as u64);
        }
        _ => {}
    }
    match rule.get("upstream-headers") {
        None => {}
        Some(toml::Value::Table(h)) => {
            for (name, value) in h {
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    fail("upstream-headers", format!("invalid header name {name:?}"))
                })?;
                let value = value
                    .as_str()
                    .and_then(|v| HeaderValue::from_str(v).ok())
                    .ok_or_else(|| fail("upstream-headers", format!("invalid value for {name}")))?;
                settings.add_headers.push((name, value));
            }
        }
        Some(_) => return Err(fail("upstream-headers", "expected a table".into())),
    }
    settings.trusted = nets("trusted-proxies")?;
    match rule.get("tls-ca") {
        None => {}
        Some(toml::Value::String(p)) => {
            let roots = [base_dir.join(p)];
            // Read here, so that a file that will not do is blamed on this key.
            crate::handlers::proxy::upstream::tls_connector(&roots)
                .map_err(|e| fail("tls-ca", e))?;
            settings.tls_roots.extend(roots);
        }
        Some(_) => return Err(fail("tls-ca", "expected the path of a PEM file".into())),
    }
    match rule.get("balance").map(|v| v.as_str()) {
        None => {}
        Some(Some("least-outstanding")) => {}
        Some(Some("round-robin")) => settings.round_robin = true,
        Some(_) => {
            return Err(fail(
                "balance",
                "expected \"least-outstanding\" or \"round-robin\"".into(),
            ))
        }
    }
    match rule.get("health-uri") {
        None => {}
        Some(toml::Value::String(uri))
            if uri.starts_with('/') && uri.parse::<http::uri::PathAndQuery>().is_ok() =>
        {
            settings.health_uri = Some(uri.clone());
        }
        Some(_) => {
            return Err(fail(
                "health-uri",
                "expected a path such as \"/health\"".into(),
            ))
        }
    }
    if let Some(d) = duration("health-interval")? {
        if settings.health_uri.is_none() {
            return Err(fail(
                "health-interval",
                "needs health-uri, the path to check".into(),
            ));
        }
        if d < MIN_HEALTH_INTERVAL {
            return Err(fail(
                "health-interval",
                format!("at least {MIN_HEALTH_INTERVAL:?}"),
            ));
        }
        settings.health_interval = d;
    }
    let route = Route::new(settings).map_err(|e| fail("upstreams", e))?;
    Ok(Handler::Proxy(std::sync::Arc::new(route)))
}

/// A rule's `max-upload-size` for a handler that receives bodies whole, if it has one.
fn body_limit(
    rule: &toml::Table,
    fail: &dyn Fn(&str, String) -> SiteError,
) -> Result<Option<u64>, SiteError> {
    match rule.get("max-upload-size") {
        Some(toml::Value::Integer(n)) => Ok(Some(u64::try_from(*n).unwrap_or(0))),
        Some(toml::Value::String(text)) => crate::config::cli::parse_size(text)
            .map(|n| Some(n as u64))
            .map_err(|e| fail("max-upload-size", e)),
        _ => Ok(None),
    }
}

/// A `handler = "cgi"` rule: interpreters by extension, each found on the programs'
/// `PATH` now rather than at the first request.
fn cgi_handler(
    rule: &toml::Table,
    path: &Glob,
    (text, base): (&str, usize),
) -> Result<Handler, SiteError> {
    let at = |key: &str| line_in_section(text, base, key);
    let fail = |key: &str, what: String| (at(key), format!("key \"rule.{key}\": {what}"));
    let mut route = crate::handlers::cgi::Route {
        scripts: Some(script_pattern(path.clone())),
        ..Default::default()
    };
    match rule.get("interpreter") {
        None => {}
        Some(toml::Value::Table(table)) => {
            for (ext, program) in table {
                if !ext.starts_with('.') || ext.len() < 2 {
                    return Err(fail(
                        "interpreter",
                        format!("{ext:?}: expected an extension such as \".py\""),
                    ));
                }
                let program = program.as_str().ok_or_else(|| {
                    fail("interpreter", format!("{ext:?}: expected a program name"))
                })?;
                let found = crate::handlers::cgi::find_interpreter(program)
                    .map_err(|e| fail("interpreter", e))?;
                route.interpreters.push((ext.clone(), found));
            }
        }
        Some(_) => {
            return Err(fail(
                "interpreter",
                "expected a table such as { \".py\" = \"python3\" }".into(),
            ))
        }
    }
    route.max_body = body_limit(rule, &fail)?;
    Ok(Handler::Cgi(std::sync::Arc::new(route)))
}

/// A `handler = "fastcgi"` rule: its application's socket, index script, path
/// split and extra params.
fn fastcgi_handler(rule: &toml::Table, (text, base): (&str, usize)) -> Result<Handler, SiteError> {
    use crate::handlers::fastcgi::{Address, Route};
    let at = |key: &str| line_in_section(text, base, key);
    let fail = |key: &str, what: String| (at(key), format!("key \"rule.{key}\": {what}"));
    let upstream = match rule.get("upstream") {
        Some(toml::Value::String(u)) => Address::parse(u).map_err(|e| fail("upstream", e))?,
        Some(_) => {
            return Err(fail(
                "upstream",
                "expected \"unix:/path\" or \"tcp:HOST:PORT\"".into(),
            ))
        }
        None => {
            return Err(fail(
                "handler",
                "a fastcgi rule needs upstream = \"unix:/path\" or \"tcp:HOST:PORT\"".into(),
            ))
        }
    };
    let max_connections = match rule.get("max-connections") {
        None => crate::handlers::fastcgi::DEFAULT_MAX_CONNECTIONS,
        Some(toml::Value::Integer(n)) if (1..=10_000).contains(n) => *n as usize,
        Some(_) => {
            return Err(fail(
                "max-connections",
                "expected a number of connections from 1 to 10000".into(),
            ))
        }
    };
    let mut route = Route::new(upstream, max_connections);
    match rule.get("index") {
        None => {}
        Some(toml::Value::String(index)) if !index.is_empty() && !index.contains('/') => {
            route.index = Some(index.clone());
        }
        Some(_) => {
            return Err(fail(
                "index",
                "expected a file name such as \"index.php\"".into(),
            ))
        }
    }
    match rule.get("split-path") {
        None => {}
        Some(toml::Value::String(pattern)) => {
            let regex = regex::Regex::new(pattern)
                .map_err(|e| fail("split-path", format!("invalid pattern: {e}")))?;
            if regex.captures_len() != 3 {
                return Err(fail(
                    "split-path",
                    "expected two groups, the script and PATH_INFO, e.g. \"^(.+\\\\.php)(/.*)$\""
                        .into(),
                ));
            }
            route.split_path = Some(regex);
        }
        Some(_) => return Err(fail("split-path", "expected a pattern".into())),
    }
    match rule.get("scripts") {
        None => {}
        Some(toml::Value::String(pattern)) if !pattern.is_empty() && !pattern.contains('/') => {
            let glob = Glob::parse(&format!("/{pattern}")).map_err(|e| fail("scripts", e))?;
            route.scripts = Some(std::sync::Arc::new(move |name: &str| {
                glob.captures(&format!("/{name}")).is_some()
            }));
        }
        Some(_) => {
            return Err(fail(
                "scripts",
                "expected a file name pattern such as \"*.php\"".into(),
            ))
        }
    }
    match rule.get("params") {
        None => {}
        Some(toml::Value::Table(table)) => {
            for (name, value) in table {
                let value = value
                    .as_str()
                    .ok_or_else(|| fail("params", format!("{name}: expected a string")))?;
                if name.is_empty()
                    || name.contains('=')
                    || name.contains('\0')
                    || value.contains('\0')
                {
                    return Err(fail("params", format!("invalid param {name:?}")));
                }
                route.params.push((name.clone(), value.to_string()));
            }
        }
        Some(_) => return Err(fail("params", "expected a table".into())),
    }
    route.max_body = body_limit(rule, &fail)?;
    Ok(Handler::FastCgi(std::sync::Arc::new(route)))
}

/// The check that a program's own path is one `glob` names (see
/// [`crate::handlers::cgi::Route::scripts`]).
pub fn script_pattern(glob: Glob) -> crate::handlers::cgi::ScriptPattern {
    std::sync::Arc::new(move |script: &str| glob.captures(script).is_some())
}

/// Whether `to` can be a redirect's `Location` (a URI reference, RFC 9110 §10.2.2,
/// RFC 3986 §4.1) once its `{…}` captures are filled in; why not, if not.
fn redirect_target(to: &str) -> Result<(), String> {
    if to.is_empty() {
        return Err("an empty target would send the client back where it was".into());
    }
    if let Some(c) = to
        .chars()
        .find(|&c| !c.is_ascii_graphic() || matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '|'))
    {
        return Err(format!(
            "{to:?} holds {c:?}, which a URI cannot (percent-encode it)"
        ));
    }
    // Before the first `/`, `?` or `#`, a `:` ends a scheme: letters first, then
    // letters, digits, `+`, `-`, `.` (RFC 3986 §3.1); else it is no URI at all.
    let head = to.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((scheme, _)) = head.split_once(':') {
        let mut chars = scheme.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid {
            return Err(format!("{to:?} does not start with a valid scheme"));
        }
    }
    Ok(())
}
