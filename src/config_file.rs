//! Layered settings: command line over `WHARF_*` environment over the TOML file over
//! defaults.
//!
//! Every setting has one definition, the clap argument in [`Cli`]; the file does not
//! get parsers of its own. Each file entry is turned into the flag it stands for and
//! checked by clap on its own (so a bad value is reported with the file, line and key),
//! then the file's flags are placed before the real command line, where later
//! occurrences win (`args_override_self`). File entries for settings given on the
//! command line or in the environment are dropped, which puts the environment above
//! the file.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use ipnet::IpNet;

use crate::config::{Cli, Config};
use crate::cors::Cors;
use crate::rules::{placeholders, AuthRule, Glob, Handler, Redirect, Rule, Site};

/// How a setting is written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `--flag VALUE`.
    Value,
    /// `--flag PATH`; relative paths in the file are relative to the file.
    Path,
    /// `--flag` alone, for `true`.
    Switch,
}

/// One setting: its key in the file, its clap id, its flag and its variable.
#[derive(Debug)]
struct Setting {
    key: &'static str,
    id: &'static str,
    kind: Kind,
}

const SETTINGS: &[Setting] = &[
    Setting {
        key: "root",
        id: "directory",
        kind: Kind::Path,
    },
    Setting {
        key: "port",
        id: "port",
        kind: Kind::Value,
    },
    Setting {
        key: "bind",
        id: "bind",
        kind: Kind::Value,
    },
    Setting {
        key: "workers",
        id: "workers",
        kind: Kind::Value,
    },
    Setting {
        key: "tls-cert",
        id: "tls_cert",
        kind: Kind::Path,
    },
    Setting {
        key: "tls-key",
        id: "tls_key",
        kind: Kind::Path,
    },
    Setting {
        key: "tls-self-signed",
        id: "tls_self_signed",
        kind: Kind::Switch,
    },
    Setting {
        key: "redirect-http",
        id: "redirect_http",
        kind: Kind::Value,
    },
    Setting {
        key: "follow-symlinks",
        id: "follow_symlinks",
        kind: Kind::Switch,
    },
    Setting {
        key: "hidden",
        id: "hidden",
        kind: Kind::Switch,
    },
    Setting {
        key: "header-timeout",
        id: "header_timeout",
        kind: Kind::Value,
    },
    Setting {
        key: "idle-timeout",
        id: "idle_timeout",
        kind: Kind::Value,
    },
    Setting {
        key: "max-header-size",
        id: "max_header_size",
        kind: Kind::Value,
    },
    Setting {
        key: "log-format",
        id: "log_format",
        kind: Kind::Value,
    },
    Setting {
        key: "no-compress",
        id: "no_compress",
        kind: Kind::Switch,
    },
    Setting {
        key: "compress-cache-size",
        id: "compress_cache_size",
        kind: Kind::Value,
    },
    Setting {
        key: "cache-size",
        id: "cache_size",
        kind: Kind::Value,
    },
    Setting {
        key: "quiet",
        id: "quiet",
        kind: Kind::Switch,
    },
    Setting {
        key: "grace-period",
        id: "grace_period",
        kind: Kind::Value,
    },
];

/// Where a setting's value came from, for `--explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built in.
    Default,
    /// The TOML file, at this line.
    File(PathBuf, usize),
    /// A `WHARF_*` variable.
    Env(String),
    /// The command line.
    CommandLine,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path, line) => write!(f, "{}:{line}", path.display()),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::CommandLine => f.write_str("command line"),
        }
    }
}

/// The command line with the file and environment merged in, and where each setting
/// came from.
#[derive(Debug)]
pub struct Layered {
    /// The merged arguments.
    pub cli: Cli,
    /// Path rules, error pages and header presets (file only).
    pub site: Site,
    /// `(key, source)` for every setting, in a stable order.
    pub sources: Vec<(&'static str, Source)>,
}

/// What went wrong: a clap error (printed by clap, with usage) or a one-line message.
#[derive(Debug)]
pub enum LayerError {
    /// From the command line itself.
    Clap(clap::Error),
    /// From the configuration file.
    File(String),
}

/// Parses `args` (the program's arguments, program name first) with the file named by
/// `--config`/`WHARF_CONFIG` merged in.
pub fn parse(args: Vec<OsString>) -> Result<Layered, LayerError> {
    let matches = Cli::command()
        .try_get_matches_from(&args)
        .map_err(LayerError::Clap)?;
    let first = Cli::from_arg_matches(&matches).map_err(LayerError::Clap)?;
    let explicit = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let mut sources: Vec<(&'static str, Source)> = SETTINGS
        .iter()
        .map(|s| {
            let source = match matches.value_source(s.id) {
                Some(ValueSource::CommandLine) => Source::CommandLine,
                Some(ValueSource::EnvVariable) => Source::Env(env_name(s.id)),
                _ => Source::Default,
            };
            (s.key, source)
        })
        .collect();
    // The positional ROOT|PORT is the command line's word on one of the two.
    let positional = first.target.as_deref().map(|target| {
        if crate::config::target_is_port(target) {
            "port"
        } else {
            "root"
        }
    });
    if let Some(slot) = sources.iter_mut().find(|(k, _)| Some(*k) == positional) {
        slot.1 = Source::CommandLine;
    }
    let Some(path) = first.config.clone() else {
        return Ok(Layered {
            cli: first,
            sources,
            site: Site::default(),
        });
    };
    let (entries, site) = read_file(&path)?;
    let mut merged: Vec<OsString> = vec![args.first().cloned().unwrap_or_else(|| "wharf".into())];
    for entry in entries {
        let setting = entry.setting;
        if explicit(setting.id) || positional == Some(setting.key) {
            continue;
        }
        merged.extend(entry.args);
        if let Some(slot) = sources.iter_mut().find(|(k, _)| *k == setting.key) {
            slot.1 = Source::File(path.clone(), entry.line);
        }
    }
    merged.extend(args.into_iter().skip(1));
    let matches = Cli::command()
        .try_get_matches_from(&merged)
        .map_err(LayerError::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(LayerError::Clap)?;
    Ok(Layered { cli, sources, site })
}

fn env_name(id: &str) -> String {
    match id {
        "directory" => "WHARF_ROOT".into(),
        other => format!("WHARF_{}", other.to_ascii_uppercase()),
    }
}

/// One file entry as command-line arguments.
struct Entry {
    setting: &'static Setting,
    line: usize,
    args: Vec<OsString>,
}

/// Reads and checks the file: TOML syntax, known keys, types, and each value through
/// the same parser as its flag. Errors name the file, the line and the key.
fn read_file(path: &Path) -> Result<(Vec<Entry>, Site), LayerError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| LayerError::File(format!("cannot read configuration file {shown}: {e}")))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e.span().map_or(1, |s| line_of(&text, s.start));
        let message = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_string();
        LayerError::File(format!("{shown}:{line}: {message}"))
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut entries = Vec::new();
    let mut site = Site::default();
    for (key, value) in &table {
        let line = key_line(&text, key);
        if SITE_KEYS.contains(&key.as_str()) {
            site_entry(&mut site, key, value, &text)
                .map_err(|(line, m)| LayerError::File(format!("{shown}:{line}: {m}")))?;
            continue;
        }
        let fail =
            |what: String| LayerError::File(format!("{shown}:{line}: key \"{key}\": {what}"));
        let Some(setting) = SETTINGS.iter().find(|s| s.key == key) else {
            let known: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
            return Err(LayerError::File(format!(
                "{shown}:{line}: unknown key \"{key}\" (known keys: {}, {})",
                known.join(", "),
                SITE_KEYS.join(", ")
            )));
        };
        let flag = format!("--{}", setting.id.replace('_', "-"));
        let args: Vec<OsString> = match (setting.kind, value) {
            (Kind::Switch, toml::Value::Boolean(true)) => vec![flag.into()],
            (Kind::Switch, toml::Value::Boolean(false)) => Vec::new(),
            (Kind::Switch, other) => {
                return Err(fail(format!(
                    "expected true or false, found {}",
                    other.type_str()
                )))
            }
            (Kind::Path, toml::Value::String(p)) => {
                let p = PathBuf::from(p);
                let p = if p.is_relative() { dir.join(p) } else { p };
                vec![flag.into(), p.into()]
            }
            (Kind::Value, toml::Value::String(v)) => vec![flag.into(), v.into()],
            (Kind::Value, toml::Value::Integer(n)) => vec![flag.into(), n.to_string().into()],
            (Kind::Value, toml::Value::Float(x)) => vec![flag.into(), x.to_string().into()],
            (_, other) => {
                return Err(fail(format!(
                    "expected a string or a number, found {}",
                    other.type_str()
                )))
            }
        };
        // The flag's own parser judges the value, exactly as on the command line.
        let mut alone: Vec<OsString> = vec!["wharf".into()];
        alone.extend(args.iter().cloned());
        if let Err(e) = Cli::command()
            .mut_args(|a| {
                a.env(None::<&str>)
                    .required(false)
                    .requires(clap::builder::Resettable::Reset)
            })
            .try_get_matches_from(alone)
        {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or("invalid value");
            return Err(fail(first.trim_start_matches("error: ").to_string()));
        }
        entries.push(Entry {
            setting,
            line,
            args,
        });
    }
    for (i, rule) in site.rules.iter().enumerate() {
        let line = line_in_section(&text, section_line(&text, "[[rule]]", i), "auth");
        let missing = match &rule.auth {
            None => None,
            Some(_) if site.users.is_empty() => {
                Some("auth needs users: add a [users] table".to_string())
            }
            Some(AuthRule::Users(names)) => names
                .iter()
                .find(|n| !site.users.contains(n))
                .map(|n| format!("auth names \"{n}\", who is not in [users]")),
            Some(AuthRule::AnyUser) => None,
        };
        if let Some(message) = missing {
            return Err(LayerError::File(format!(
                "{shown}:{line}: key \"rule.auth\": {message}"
            )));
        }
    }
    Ok((entries, site))
}

/// File-only keys: they describe the site rather than the server.
const SITE_KEYS: &[&str] = &["rule", "error-pages", "security-headers", "users"];

type SiteError = (usize, String);

/// Reads one site-level key into `site`.
fn site_entry(
    site: &mut Site,
    key: &str,
    value: &toml::Value,
    text: &str,
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
                hashes.insert(name.clone(), hash.to_string());
            }
            site.users = std::sync::Arc::new(
                crate::auth::Users::new(hashes)
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
                site.rules.push(parse_rule(rule, text, base)?);
            }
        }
        _ => return Err((line, format!("key \"{key}\": expected [[{key}]] tables"))),
    }
    Ok(())
}

const RULE_KEYS: &[&str] = &[
    "path", "handler", "headers", "redirect", "status", "rewrite", "spa", "allow", "deny", "cors",
    "auth",
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

fn parse_rule(rule: &toml::Table, text: &str, base: usize) -> Result<Rule, SiteError> {
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
                let bad = |what: String| (at("headers"), format!("key \"rule.headers\": {what}"));
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| bad(format!("invalid header name {name:?}")))?;
                if FRAMING_HEADERS.contains(&name.as_str()) {
                    return Err(bad(format!(
                        "{name} describes the message framing, which wharf sets"
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
    let redirect = string("redirect")?.map(|to| Redirect {
        to,
        status: status.unwrap_or(StatusCode::FOUND),
    });
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
                        at("cors"),
                        format!("key \"rule.cors.{key}\": expected a list of strings"),
                    ))
                })
                .collect(),
            Some(_) => Err((
                at("cors"),
                format!("key \"rule.cors.{key}\": expected a list of strings"),
            )),
        }
    };
    let cors = match rule.get("cors") {
        None => None,
        Some(toml::Value::Table(t)) => {
            if let Some(k) = t.keys().find(|k| {
                !["origins", "methods", "headers", "credentials", "max-age"].contains(&k.as_str())
            }) {
                return Err((at("cors"), format!("unknown key \"rule.cors.{k}\" (known: origins, methods, headers, credentials, max-age)")));
            }
            let credentials = match t.get("credentials") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => {
                    return Err((
                        at("cors"),
                        "key \"rule.cors.credentials\": expected true or false".into(),
                    ))
                }
            };
            let max_age = match t.get("max-age") {
                None => None,
                Some(toml::Value::Integer(n)) => Some(u32::try_from(*n).map_err(|_| {
                    (
                        at("cors"),
                        "key \"rule.cors.max-age\": expected seconds (0 or more)".to_string(),
                    )
                })?),
                Some(_) => {
                    return Err((
                        at("cors"),
                        "key \"rule.cors.max-age\": expected a number of seconds".into(),
                    ))
                }
            };
            Some(
                Cors::new(
                    &strings(t, "origins")?,
                    &strings(t, "methods")?,
                    &strings(t, "headers")?,
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
    let handler = match string("handler")? {
        None => None,
        Some(name) => Some(
            Handler::parse(&name)
                .map_err(|e| (at("handler"), format!("key \"rule.handler\": {e}")))?,
        ),
    };
    let rewrite = local("rewrite")?;
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
        allow: nets("allow")?,
        deny: nets("deny")?,
        cors,
        auth,
    })
}

/// The line of the `n`-th occurrence of a table header such as `[[rule]]`.
fn section_line(text: &str, header: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.split('#').next().unwrap_or("").trim() == header)
        .nth(n)
        .map_or(1, |(i, _)| i + 1)
}

/// The line where `key` is set inside the section starting at line `base`.
fn line_in_section(text: &str, base: usize, key: &str) -> usize {
    for (i, line) in text.lines().enumerate().skip(base) {
        let t = line.trim_start();
        if t.starts_with('[') {
            break;
        }
        let name = t.split('=').next().unwrap_or("").trim().trim_matches('"');
        if t.contains('=') && name == key {
            return i + 1;
        }
    }
    base
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The line where top-level `key` is assigned (1 if it cannot be found).
fn key_line(text: &str, key: &str) -> usize {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('[') {
            break;
        }
        let name = t.split('=').next().unwrap_or("").trim().trim_matches('"');
        if t.contains('=') && name == key {
            return i + 1;
        }
    }
    1
}

fn shown_root(config: &Config) -> String {
    std::fs::canonicalize(&config.root)
        .unwrap_or_else(|_| config.root.clone())
        .display()
        .to_string()
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
        Some(crate::tls::CertSource::SelfSigned) => "self-signed".to_string(),
        Some(crate::tls::CertSource::Files { cert, key }) => {
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
            config.max_header_size.to_string(),
            "max-header-size",
        ),
        (
            "log-format",
            format!("{:?}", config.log_format).to_lowercase(),
            "log-format",
        ),
        ("quiet", onoff(config.quiet), "quiet"),
        ("no-compress", onoff(config.no_compress), "no-compress"),
        (
            "compress-cache-size",
            config.compress_cache_size.to_string(),
            "compress-cache-size",
        ),
        ("cache-size", config.cache_size.to_string(), "cache-size"),
        ("grace-period", dur(config.grace_period), "grace-period"),
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
                Some(crate::tls::CertSource::SelfSigned) => source("tls-self-signed"),
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
            Some(crate::rules::AuthRule::AnyUser) => {
                let _ = writeln!(
                    out,
                    "  - {path} needs a user from [users] (HTTP Basic; use HTTPS on open networks)."
                );
            }
            Some(crate::rules::AuthRule::Users(names)) => {
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
    out.push_str(
        "  - Uploads and other writes: not available; only GET, HEAD and OPTIONS are answered.\n",
    );
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

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wharf.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn every_file_setting_is_also_a_flag_and_a_variable() {
        let command = Cli::command();
        for setting in SETTINGS {
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == setting.id)
                .unwrap_or_else(|| panic!("{}: no flag", setting.key));
            assert!(arg.get_long().is_some(), "{}: no long flag", setting.key);
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env_name(setting.id).as_str()),
                "{}",
                setting.key
            );
        }
    }

    fn run(path: &Path, extra: &[&str]) -> Result<Layered, String> {
        let mut args: Vec<OsString> = vec!["wharf".into(), "--config".into(), path.into()];
        args.extend(extra.iter().map(OsString::from));
        parse(args).map_err(|e| match e {
            LayerError::Clap(e) => e.to_string(),
            LayerError::File(m) => m,
        })
    }

    #[test]
    fn file_values_apply_and_the_command_line_wins() {
        let (_d, path) = write("port = 9001\nhidden = true\nheader-timeout = \"3s\"\n");
        let layered = run(&path, &["-p", "9002"]).unwrap();
        let config = layered.cli.into_config().unwrap();
        assert_eq!(config.listen[0].port(), 9002);
        assert!(config.hidden);
        assert_eq!(config.header_timeout, std::time::Duration::from_secs(3));
        let source = |k: &str| layered_source(&layered.sources, k);
        assert_eq!(source("port"), "command line");
        assert!(
            source("hidden").ends_with("wharf.toml:2"),
            "{}",
            source("hidden")
        );
    }

    fn layered_source(sources: &[(&'static str, Source)], key: &str) -> String {
        sources
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap()
            .1
            .to_string()
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let (dir, path) = write("root = \"site\"\n");
        std::fs::create_dir(dir.path().join("site")).unwrap();
        let config = run(&path, &[]).unwrap().cli.into_config().unwrap();
        assert_eq!(config.root, dir.path().join("site"));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            (
                "port = 1\nprot = 8000\n",
                "wharf.toml:2: unknown key \"prot\"",
            ),
            (
                "hidden = true\nport = \"abc\"\n",
                "wharf.toml:2: key \"port\":",
            ),
            ("\n\nport = 70000\n", "wharf.toml:3: key \"port\":"),
            (
                "log-format = \"xml\"\n",
                "wharf.toml:1: key \"log-format\":",
            ),
            (
                "header-timeout = \"soon\"\n",
                "wharf.toml:1: key \"header-timeout\":",
            ),
            (
                "hidden = \"yes\"\n",
                "wharf.toml:1: key \"hidden\": expected true or false",
            ),
            (
                "bind = [1, 2]\n",
                "wharf.toml:1: key \"bind\": expected a string or a number",
            ),
            ("port = = 1\n", "wharf.toml:1:"),
        ];
        for (text, expected) in cases {
            let (_d, path) = write(text);
            let err = run(&path, &[]).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

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
