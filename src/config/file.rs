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
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::config::cli::Cli;
use crate::config::lines::{key_line, line_in_section, line_of, section_line};
use crate::config::site_tables::{site_entry, SITE_KEYS};
use crate::site::rules::{AuthRule, Site};

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
        key: "dev",
        id: "dev",
        kind: Kind::Switch,
    },
    Setting {
        key: "open",
        id: "open",
        kind: Kind::Switch,
    },
    Setting {
        key: "qr",
        id: "qr",
        kind: Kind::Switch,
    },
    Setting {
        key: "quiet",
        id: "quiet",
        kind: Kind::Switch,
    },
    Setting {
        key: "verbose",
        id: "verbose",
        kind: Kind::Switch,
    },
    Setting {
        key: "upload",
        id: "upload",
        kind: Kind::Switch,
    },
    Setting {
        key: "delete",
        id: "delete",
        kind: Kind::Switch,
    },
    Setting {
        key: "max-upload-size",
        id: "max_upload_size",
        kind: Kind::Value,
    },
    Setting {
        key: "upload-expiry",
        id: "upload_expiry",
        kind: Kind::Value,
    },
    Setting {
        key: "grace-period",
        id: "grace_period",
        kind: Kind::Value,
    },
    Setting {
        key: "reuse-port",
        id: "reuse_port",
        kind: Kind::Switch,
    },
    Setting {
        key: "admin",
        id: "admin",
        kind: Kind::Value,
    },
    Setting {
        key: "admin-public",
        id: "admin_public",
        kind: Kind::Switch,
    },
    Setting {
        key: "proxy-cache",
        id: "proxy_cache",
        kind: Kind::Value,
    },
    Setting {
        key: "proxy-cache-dir",
        id: "proxy_cache_dir",
        kind: Kind::Path,
    },
    Setting {
        key: "proxy-cache-max-disk",
        id: "proxy_cache_max_disk",
        kind: Kind::Value,
    },
    Setting {
        key: "cgi",
        id: "cgi",
        kind: Kind::Switch,
    },
    Setting {
        key: "cgi-timeout",
        id: "cgi_timeout",
        kind: Kind::Value,
    },
    Setting {
        key: "cgi-max",
        id: "cgi_max",
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

/// `message`, an error found once every layer is in ([`Cli::into_config`]) about
/// the setting whose flag it starts with, told where that setting came from: a
/// file's `path:line: key "name": …` or a variable's `WHARF_NAME: …`, as errors found
/// while each layer is read say it. Other messages are returned as they are.
pub fn attribute(message: &str, sources: &[(&'static str, Source)]) -> String {
    let flag = message
        .strip_prefix("--")
        .and_then(|rest| rest.split([' ', ':']).next());
    let setting = flag.and_then(|flag| SETTINGS.iter().find(|s| s.id.replace('_', "-") == flag));
    let source = setting.and_then(|setting| {
        sources
            .iter()
            .find(|(key, _)| *key == setting.key)
            .map(|(key, source)| (key, source))
    });
    match source {
        Some((key, Source::File(path, line))) => {
            format!("{}:{line}: key \"{key}\": {message}", path.display())
        }
        Some((_, Source::Env(var))) => format!("{var}: {message}"),
        _ => message.to_string(),
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
    let matches =
        Cli::command().try_get_matches_from(&args).map_err(|e| {
            match from_environment(&e, &args) {
                Some(message) => LayerError::File(message),
                None => LayerError::Clap(e),
            }
        })?;
    let from_env = |matches: &clap::ArgMatches, id: &str| {
        matches.value_source(id) == Some(ValueSource::EnvVariable)
    };
    let mut first = Cli::from_arg_matches(&matches).map_err(LayerError::Clap)?;
    first.prefer_positional_over_env(from_env(&matches, "port"), from_env(&matches, "directory"));
    first.take_open_from_env(from_env(&matches, "open"));
    first.split_proxies_from_env(from_env(&matches, "proxy"));
    let explicit = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) || (id == "open" && matches.value_source("no_open") == Some(ValueSource::CommandLine))
    };
    let mut sources: Vec<(&'static str, Source)> = SETTINGS
        .iter()
        .map(|s| {
            // `--no-open` is the command line's word on `open`.
            let id = if s.id == "open"
                && matches.value_source("no_open") == Some(ValueSource::CommandLine)
            {
                "no_open"
            } else {
                s.id
            };
            let source = match matches.value_source(id) {
                Some(ValueSource::CommandLine) => Source::CommandLine,
                Some(ValueSource::EnvVariable) => Source::Env(env_name(s.id)),
                _ => Source::Default,
            };
            (s.key, source)
        })
        .collect();
    // The positional ROOT|PORT is the command line's word on one of the two.
    let positional = first.target.as_deref().map(|target| {
        if crate::config::cli::target_is_port(target) {
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
    let mut cli = Cli::from_arg_matches(&matches).map_err(LayerError::Clap)?;
    cli.prefer_positional_over_env(from_env(&matches, "port"), from_env(&matches, "directory"));
    cli.take_open_from_env(from_env(&matches, "open"));
    cli.split_proxies_from_env(from_env(&matches, "proxy"));
    Ok(Layered { cli, sources, site })
}

/// When clap refused a value that came from a `WHARF_*` variable (the flag is not on
/// the command line, the variable is set), the message names the variable first:
/// `WHARF_HIDDEN: invalid value '' for '--hidden': …`.
fn from_environment(e: &clap::Error, args: &[OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(shown)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    // `--port <PORT>` or `--hidden`.
    let long = shown.split_whitespace().next()?.strip_prefix("--")?;
    let command = Cli::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?;
    let var = arg.get_env()?;
    let short = arg.get_short().map(|c| format!("-{c}"));
    let flag = format!("--{long}");
    let on_command_line = args.iter().skip(1).filter_map(|a| a.to_str()).any(|a| {
        a == flag
            || a.strip_prefix(flag.as_str())
                .is_some_and(|rest| rest.starts_with('='))
            || short.as_deref().is_some_and(|s| a.starts_with(s))
    });
    if on_command_line || std::env::var_os(var).is_none() {
        return None;
    }
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or("invalid value");
    Some(format!(
        "{}: {}",
        var.to_string_lossy(),
        first.trim_start_matches("error: ")
    ))
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
    let text = std::fs::read_to_string(path).map_err(|e| {
        LayerError::File(format!(
            "cannot read configuration file {}: {e}",
            path.display()
        ))
    })?;
    from_text(&text, path)
}

/// Reads a configuration file's `text` as if from `path`: `Ok`, or the one-line
/// message naming `file:line` that wharf would exit with.
pub fn check_text(text: &str, path: &Path) -> Result<(), String> {
    from_text(text, path).map(|_| ()).map_err(|e| match e {
        LayerError::File(message) => message,
        LayerError::Clap(e) => e.to_string(),
    })
}

/// The settings and site of a configuration file's `text`, read from `path` (which
/// errors name, and relative paths in it are resolved against). An error is one
/// line: control characters quoted from the file (a newline in a string value)
/// are escaped.
fn from_text(text: &str, path: &Path) -> Result<(Vec<Entry>, Site), LayerError> {
    read_text(text, path).map_err(|e| match e {
        LayerError::File(message) => LayerError::File(one_line(&message)),
        other => other,
    })
}

/// `message` with its control characters escaped (`\n`, `\u{1b}`).
fn one_line(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn read_text(text: &str, path: &Path) -> Result<(Vec<Entry>, Site), LayerError> {
    let text = text.to_string();
    let shown = path.display();
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
            site_entry(&mut site, key, value, &text, dir)
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
            // `open = false` says no to `--dev`'s opening too.
            (Kind::Switch, toml::Value::Boolean(false)) if setting.key == "open" => {
                vec!["--no-open".into()]
            }
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
            (Kind::Path, other) => {
                return Err(fail(format!(
                    "expected a path (a string), found {}",
                    other.type_str()
                )))
            }
            // One `--flag=value` word: a value starting with `-` is the flag's to
            // judge, not taken for another flag.
            (Kind::Value, toml::Value::String(v)) => vec![format!("{flag}={v}").into()],
            (Kind::Value, toml::Value::Integer(n)) => vec![format!("{flag}={n}").into()],
            (Kind::Value, toml::Value::Float(x)) => vec![format!("{flag}={x}").into()],
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
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

    pub(crate) fn run(path: &Path, extra: &[&str]) -> Result<Layered, String> {
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
            (
                "root = 5\n",
                "wharf.toml:1: key \"root\": expected a path (a string), found integer",
            ),
        ];
        for (text, expected) in cases {
            let (_d, path) = write(text);
            let err = run(&path, &[]).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
