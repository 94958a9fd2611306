//! The configuration file and WHARF_* variables, against the real binary: values take
//! effect, precedence is command line > environment > file > defaults, every invalid
//! configuration is one clear error naming file, line and key, and `--explain` tells
//! what is exposed.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

/// Runs wharf to completion with `args` and `env` (nothing else from WHARF_*).
fn run(args: &[&OsStr], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
    cmd.args(args).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("WHARF_") {
            cmd.env_remove(name);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run wharf")
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("wharf.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn settings_in_the_file_take_effect() {
    let (tmp, root) = temp_root();
    write_file(&root, ".env", "SECRET=1");
    let config = write_config(
        tmp.path(),
        "root = \"root\"\nport = 0\nbind = \"127.0.0.1\"\nhidden = true\nlog-format = \"common\"\n",
    );
    let server = Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None);
    let res = get(&server, "/.env");
    assert_eq!((res.status, res.body_text().as_str()), (200, "SECRET=1"));
    let line = server.wait_for_log(|l| l.contains("GET /.env"));
    assert!(line.ends_with("200 8"), "common format expected: {line}");
}

#[test]
fn the_configuration_file_is_never_served_from_the_folder_it_configures() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "public");
    let config = write_config(
        &root,
        "root = \".\"\nport = 0\nbind = \"127.0.0.1\"\n[users]\nadmin = \"$argon2id$v=19$m=19456,t=2,p=1$bzBbXuTeqoof7ZHvwCPXQg$/XkfcwCQCm4bgi4u/ULHoinGWKSNKuYKNLru7JYdWtg\"\n",
    );
    std::os::unix::fs::symlink("wharf.toml", root.join("alias.txt")).unwrap();
    // A deploy step that precompresses the whole folder.
    write_file(&root, "wharf.toml.gz", gzip_compress(b"[users]"));
    let server = Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None);
    let withheld = |paths: &[&str]| {
        for path in paths {
            let res = get(&server, path);
            assert_eq!(res.status, 404, "GET {path}: {}", res.body_text());
            let gz = request(&server, "GET", path, &[("Accept-Encoding", "gzip")]);
            assert_eq!(gz.status, 404, "GET {path} (gzip): {}", gz.body_text());
        }
        let listing = get(&server, "/").body_text();
        for path in paths {
            assert!(!listing.contains(&path[1..]), "{path} listed: {listing}");
        }
    };
    withheld(&["/wharf.toml", "/alias.txt", "/wharf.toml.gz"]);
    assert_eq!(get(&server, "/./wharf.toml").status, 404);
    // Saved by an editor that renames the old file aside: the file wharf read stays
    // withheld under its new name, and the new file under the old one.
    std::fs::rename(&config, root.join("wharf.toml~")).unwrap();
    write_file(&root, "wharf.toml", "port = 0\n");
    withheld(&["/wharf.toml", "/wharf.toml~"]);
    assert_eq!(get(&server, "/a.txt").body_text(), "public");
}

/// The certificate and its key may come from different places (file, environment,
/// command line), each overridden on its own; one without the other is an error.
#[test]
fn certificate_and_key_come_from_any_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let both = write_config(
        tmp.path(),
        "tls-cert = \"/nonexistent/file-c.pem\"\ntls-key = \"/nonexistent/file-k.pem\"\n",
    );
    let out = run(
        &[
            OsStr::new("--config"),
            both.as_os_str(),
            OsStr::new("--tls-cert"),
            OsStr::new("/nonexistent/cli-c.pem"),
            OsStr::new("--explain"),
        ],
        &[],
    );
    let report = text(&out.stdout);
    assert!(
        report.contains("cli-c.pem"),
        "{report}{}",
        text(&out.stderr)
    );
    assert!(report.contains("file-k.pem"), "{report}");
    assert!(!report.contains("file-c.pem"), "{report}");

    let key_only = write_config(tmp.path(), "tls-key = \"/nonexistent/file-k.pem\"\n");
    let out = run(
        &[
            OsStr::new("--config"),
            key_only.as_os_str(),
            OsStr::new("--explain"),
        ],
        &[("WHARF_TLS_CERT", "/nonexistent/env-c.pem")],
    );
    let report = text(&out.stdout);
    assert!(
        report.contains("env-c.pem"),
        "{report}{}",
        text(&out.stderr)
    );
    assert!(report.contains("file-k.pem"), "{report}");

    let alone = run(
        &[
            OsStr::new("--tls-cert"),
            OsStr::new("/nonexistent/c.pem"),
            OsStr::new("--explain"),
        ],
        &[],
    );
    assert_eq!(alone.status.code(), Some(1));
    assert!(
        text(&alone.stderr).contains("--tls-cert needs --tls-key"),
        "{}",
        text(&alone.stderr)
    );
}

#[test]
fn a_false_tls_self_signed_variable_leaves_certificate_files_alone() {
    let args = [
        OsStr::new("--tls-cert"),
        OsStr::new("/nonexistent/c.pem"),
        OsStr::new("--tls-key"),
        OsStr::new("/nonexistent/k.pem"),
        OsStr::new("--explain"),
    ];
    for off in ["0", "false", "no"] {
        let out = run(&args, &[("WHARF_TLS_SELF_SIGNED", off)]);
        let report = text(&out.stdout);
        assert!(
            report.contains("/nonexistent/c.pem"),
            "{off}: {report}{}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("combined"), "{off}");
    }
    let on = run(&args, &[("WHARF_TLS_SELF_SIGNED", "1")]);
    assert_eq!(on.status.code(), Some(1));
    assert!(text(&on.stderr).contains("--tls-self-signed cannot be combined"));
}

#[test]
fn environment_alone_configures_the_server() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "from env");
    let server = Server::spawn_with_env(
        &[OsStr::new("-b"), OsStr::new("127.0.0.1")],
        &[
            ("WHARF_ROOT", root.as_os_str()),
            ("WHARF_PORT", OsStr::new("0")),
        ],
    );
    assert_eq!(get(&server, "/a.txt").body_text(), "from env");
}

#[test]
fn the_positional_root_or_port_beats_the_environment_too() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "from the command line");
    let (_other, elsewhere) = temp_root();
    let port = free_port().to_string();
    // `wharf ROOT` with WHARF_ROOT set, `wharf PORT` with WHARF_PORT set (in a
    // shell profile or a unit file): the word on the command line wins.
    let server = Server::spawn_with_env(
        &[root.as_os_str(), OsStr::new("-b"), OsStr::new("127.0.0.1")],
        &[
            ("WHARF_ROOT", elsewhere.as_os_str()),
            ("WHARF_PORT", OsStr::new("0")),
        ],
    );
    assert_eq!(get(&server, "/a.txt").body_text(), "from the command line");
    let server = Server::spawn_with_env(
        &[OsStr::new(&port), OsStr::new("-b"), OsStr::new("127.0.0.1")],
        &[
            ("WHARF_ROOT", root.as_os_str()),
            ("WHARF_PORT", OsStr::new("9")),
        ],
    );
    assert_eq!(server.port().to_string(), port);
    assert_eq!(get(&server, "/a.txt").body_text(), "from the command line");
}

#[test]
fn command_line_beats_environment_beats_file() {
    let (tmp, _root) = temp_root();
    let config = write_config(
        tmp.path(),
        "port = 7001\nheader-timeout = \"3s\"\nidle-timeout = \"30s\"\nquiet = true\n",
    );
    let out = run(
        &[
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("-p"),
            OsStr::new("7003"),
            OsStr::new("--explain"),
        ],
        &[("WHARF_PORT", "7002"), ("WHARF_HEADER_TIMEOUT", "4s")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let row = |key: &str| {
        report
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no {key} row in:\n{report}"))
            .to_string()
    };
    assert!(
        row("listen").contains("127.0.0.1:7003"),
        "{}",
        row("listen")
    );
    assert!(
        row("listen").contains("port: command line"),
        "{}",
        row("listen")
    );
    assert!(
        row("header-timeout").contains("4s"),
        "{}",
        row("header-timeout")
    );
    assert!(row("header-timeout").contains("WHARF_HEADER_TIMEOUT"));
    assert!(row("idle-timeout").contains("30s") && row("idle-timeout").contains("wharf.toml:3"));
    assert!(row("quiet").contains("on") && row("quiet").contains("wharf.toml:4"));
    assert!(
        row("grace-period").contains("(default)"),
        "{}",
        row("grace-period")
    );
}

#[test]
fn invalid_configurations_name_file_line_and_key() {
    let cases = [
        ("port = 1\nprot = 8000\n", ":2: unknown key \"prot\""),
        (
            "hidden = true\nport = \"abc\"\n",
            ":2: key \"port\": invalid value 'abc'",
        ),
        ("\n\nport = 70000\n", ":3: key \"port\":"),
        (
            "log-format = \"xml\"\n",
            ":1: key \"log-format\": invalid value 'xml'",
        ),
        (
            "header-timeout = \"soon\"\n",
            ":1: key \"header-timeout\": invalid value 'soon'",
        ),
        ("idle-timeout = 0\n", ":1: key \"idle-timeout\":"),
        // A value starting with "-" is judged as a value, not taken for a flag.
        (
            "header-timeout = -5\n",
            ":1: key \"header-timeout\": invalid value '-5'",
        ),
        (
            "max-upload-size = \"-1\"\n",
            ":1: key \"max-upload-size\": invalid value '-1'",
        ),
        ("max-header-size = 10\n", ":1: key \"max-header-size\":"),
        ("workers = 0\n", ":1: key \"workers\":"),
        (
            "hidden = \"yes\"\n",
            ":1: key \"hidden\": expected true or false",
        ),
        (
            "bind = [1, 2]\n",
            ":1: key \"bind\": expected a string or a number",
        ),
        // Found once every layer is in, and still named by file, line and key.
        (
            "bind = \"not an address!\"\n",
            ":1: key \"bind\": --bind \"not an address!\": invalid bind address",
        ),
        (
            "\nredirect-http = 8080\n",
            ":2: key \"redirect-http\": --redirect-http needs HTTPS",
        ),
        (
            "admin = \"0.0.0.0:9\"\n",
            ":1: key \"admin\": --admin 0.0.0.0:9: not a loopback address",
        ),
        (
            "tls-cert = \"x.pem\"\n",
            ":1: key \"tls-cert\": --tls-cert needs --tls-key",
        ),
        ("port = = 1\n", ":1:"),
        ("[section]\nkey = 1\n", "unknown key \"section\""),
        (
            "[[rule]]\npath = \"/x/\"\nhandler = \"magic\"\n",
            ":3: key \"rule.handler\": unknown handler",
        ),
        (
            "[[rule]]\npath = \"/x/\"\nhandler = \"proxy\"\n",
            ":3: key \"rule.handler\": a proxy rule needs upstreams",
        ),
        (
            "[[rule]]\npath = \"/x/\"\nhandler = \"proxy\"\nupstreams = [\"https://a:1\"]\ntls-ca = \"nope.pem\"\n",
            ":5: key \"rule.tls-ca\": cannot read",
        ),
        (
            "[[rule]]\npath = \"/x/\"\nhandler = \"proxy\"\nupstreams = [\"http://a:1\"]\nhealth-uri = \"health\"\n",
            ":5: key \"rule.health-uri\": expected a path",
        ),
        (
            "[[rule]]\npath = \"/x/\"\nhandler = \"proxy\"\nupstreams = [\"http://a:1\"]\nhealth-interval = \"1s\"\n",
            ":5: key \"rule.health-interval\": needs health-uri",
        ),
        (
            "[[rule]]\npath = \"/x/\"\nhandler = \"proxy\"\nupstreams = [\"http://a:1\"]\nhealth-uri = \"/h\"\nhealth-interval = \"10ms\"\n",
            ":6: key \"rule.health-interval\": at least 100ms",
        ),
        (
            "[[rule]]\npath = \"/x/\"\nhandler = \"proxy\"\nupstreams = [\"http://a:1\"]\nconnect-timeout = \"0s\"\n",
            ":5: key \"rule.connect-timeout\": a timeout must be longer than zero",
        ),
        (
            "[[rule]]\npath = \"/x/\"\nupstreams = [\"http://a:1\"]\n",
            ":3: key \"rule.upstreams\": only a rule with handler = \"proxy\" takes it",
        ),
        (
            "[[rule]]\npath = \"/old/*\"\nredirect = \"/new/{1}\"\nrewrite = \"/x\"\n",
            ":4: key \"rule.rewrite\": a rule that redirects serves nothing",
        ),
        (
            "[[rule]]\npath = \"/app/*\"\nspa = \"/index.html\"\nredirect = \"/\"\n",
            ":3: key \"rule.spa\": a rule that redirects serves nothing",
        ),
        // A Location that could not be sent, or would not be a URI.
        (
            "[[rule]]\npath = \"/crlf\"\nredirect = \"/a\\r\\nSet-Cookie: x=1\"\n",
            ":3: key \"rule.redirect\":",
        ),
        (
            "[[rule]]\npath = \"/bad\"\nredirect = \"ht!tp://bad\"\n",
            ":3: key \"rule.redirect\": \"ht!tp://bad\" does not start with a valid scheme",
        ),
        (
            "[[rule]]\npath = \"/sp\"\nredirect = \"/a b\"\n",
            ":3: key \"rule.redirect\":",
        ),
        (
            "[[rule]]\npath = \"/e\"\nredirect = \"\"\n",
            ":3: key \"rule.redirect\": an empty target",
        ),
        (
            "[[rule]]\npath = \"/none/*\"\nallow = []\n",
            ":3: key \"rule.allow\": an empty list would admit no one",
        ),
        (
            "header-timeout = \"1ns\"\n",
            ":1: key \"header-timeout\":",
        ),
        // A rule's sub-tables and dotted keys: the line of the key at fault.
        (
            "port = 1\n[[rule]]\npath = \"/a/*\"\n\n[rule.headers]\nX-Ok = \"1\"\n\"Bad Name\" = \"2\"\n",
            ":7: key \"rule.headers\": invalid header name",
        ),
        (
            "[[rule]]\npath = \"/a/*\"\n[rule.cors]\norigins = [\"*\"]\nbogus = 1\n",
            ":5: unknown key \"rule.cors.bogus\"",
        ),
        (
            "[[rule]]\npath = \"/a/*\"\n\n\ncors.max-age = \"ten\"\n",
            ":5: key \"rule.cors.max-age\"",
        ),
    ];
    for (content, expected) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let config = write_config(tmp.path(), content);
        let out = run(&[OsStr::new("--config"), config.as_os_str()], &[]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{content:?} was accepted");
        assert!(stderr.contains(expected), "{content:?}: {stderr}");
        assert!(stderr.starts_with("wharf: "), "{content:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{content:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn a_missing_config_file_is_an_error() {
    let out = run(
        &[
            OsStr::new("--config"),
            OsStr::new("/nonexistent/wharf.toml"),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr)
        .starts_with("wharf: cannot read configuration file /nonexistent/wharf.toml"));
}

#[test]
fn the_example_configuration_loads() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("wharf.example.toml");
    let out = run(
        &[
            OsStr::new("--config"),
            example.as_os_str(),
            OsStr::new("--explain"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("Effective configuration:"), "{report}");
    assert!(report.contains("Security summary:"), "{report}");
}

#[test]
fn explain_tells_what_is_exposed() {
    let (_tmp, root) = temp_root();
    let out = run(
        &[
            root.as_os_str(),
            OsStr::new("-b"),
            OsStr::new("0.0.0.0"),
            OsStr::new("--hidden"),
            OsStr::new("--explain"),
        ],
        &[],
    );
    assert!(out.status.success());
    let report = text(&out.stdout);
    assert!(report.contains("every network interface"), "{report}");
    assert!(report.contains("not encrypted"), "{report}");
    assert!(report.contains("served and listed (--hidden)"), "{report}");
    assert!(report.contains("refused (404)"), "{report}");
    let local = run(&[root.as_os_str(), OsStr::new("--explain")], &[]);
    let report = text(&local.stdout);
    assert!(report.contains("this machine only"), "{report}");
    assert!(!report.contains("not encrypted"), "{report}");
}

#[test]
fn explain_names_the_positional_argument_as_the_source() {
    let (tmp, root) = temp_root();
    let config = write_config(tmp.path(), "port = 7005\n");
    let folder = run(
        &[
            root.as_os_str(),
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--explain"),
        ],
        &[],
    );
    assert!(folder.status.success(), "{}", text(&folder.stderr));
    let report = text(&folder.stdout);
    let root_row = report.lines().find(|l| l.contains(" root ")).unwrap_or("");
    assert!(root_row.ends_with("(command line)"), "{report}");
    // The positional folder leaves the file's port in force.
    assert!(report.contains("127.0.0.1:7005"), "{report}");
    assert!(report.contains("port: "), "{report}");
    let port = run(&[OsStr::new("7006"), OsStr::new("--explain")], &[]);
    let report = text(&port.stdout);
    assert!(
        report.contains("127.0.0.1:7006") && report.contains("port: command line"),
        "{report}"
    );
    let tls = run(
        &[
            root.as_os_str(),
            OsStr::new("--tls-self-signed"),
            OsStr::new("--explain"),
        ],
        &[],
    );
    let report = text(&tls.stdout);
    let tls_row = report.lines().find(|l| l.contains(" tls ")).unwrap_or("");
    assert!(
        tls_row.contains("self-signed") && tls_row.ends_with("(command line)"),
        "{report}"
    );
}

#[test]
fn open_false_anywhere_keeps_dev_from_opening_a_browser() {
    let (tmp, root) = temp_root();
    let open_row = |args: &[&OsStr], env: &[(&str, &str)]| {
        let out = run(args, env);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report = text(&out.stdout);
        let row = report.lines().find(|l| l.trim_start().starts_with("open "));
        row.unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let explain = OsStr::new("--explain");
    let dev = OsStr::new("--dev");
    assert_eq!(
        open_row(&[root.as_os_str(), dev, explain], &[]),
        "on (default)"
    );
    let config = write_config(tmp.path(), "dev = true\nopen = false\n");
    let with_file = [
        root.as_os_str(),
        OsStr::new("--config"),
        config.as_os_str(),
        explain,
    ];
    assert!(
        open_row(&with_file, &[]).starts_with("off ("),
        "the file's open = false"
    );
    assert_eq!(
        open_row(
            &[root.as_os_str(), dev, explain],
            &[("WHARF_OPEN", "false")]
        ),
        "off (environment WHARF_OPEN)"
    );
    assert_eq!(
        open_row(
            &[root.as_os_str(), dev, OsStr::new("--no-open"), explain],
            &[]
        ),
        "off (command line)"
    );
    // The command line still beats both.
    let open = OsStr::new("--open");
    assert_eq!(
        open_row(
            &[root.as_os_str(), dev, open, explain],
            &[("WHARF_OPEN", "false")]
        ),
        "on (command line)"
    );
    let no_open = OsStr::new("--no-open");
    for value in ["false", "true"] {
        assert_eq!(
            open_row(
                &[root.as_os_str(), dev, no_open, explain],
                &[("WHARF_OPEN", value)]
            ),
            "off (command line)",
            "WHARF_OPEN={value}"
        );
    }
    let says_open = write_config(tmp.path(), "dev = true\nopen = true\n");
    let args = [
        root.as_os_str(),
        OsStr::new("--config"),
        says_open.as_os_str(),
        no_open,
        explain,
    ];
    assert_eq!(open_row(&args, &[]), "off (command line)");
}

#[test]
fn a_proxy_url_may_hold_a_comma_and_the_variable_lists_several() {
    let (_tmp, root) = temp_root();
    let explain = OsStr::new("--explain");
    let passed = |out: Output| -> Vec<String> {
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .filter(|l| l.contains(" is passed to "))
            .map(|l| l.trim().to_string())
            .collect()
    };
    let one = OsStr::new("/api/=http://127.0.0.1:9000/v1,beta/");
    let rows = passed(run(
        &[root.as_os_str(), OsStr::new("--proxy"), one, explain],
        &[],
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].contains("http://127.0.0.1:9000/v1,beta/"),
        "{rows:?}"
    );
    let two = "/a/=http://127.0.0.1:1, /b/=http://127.0.0.1:2";
    let rows = passed(run(&[root.as_os_str(), explain], &[("WHARF_PROXY", two)]));
    assert_eq!(rows.len(), 2, "{rows:?}");
}

#[test]
fn explain_fails_on_what_would_stop_the_server() {
    let (tmp, root) = temp_root();
    let missing = tmp.path().join("missing");
    let out = run(&[missing.as_os_str(), OsStr::new("--explain")], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
    let not_a_key = root.join("a.txt");
    write_file(&root, "a.txt", "not a key");
    let out = run(
        &[
            root.as_os_str(),
            OsStr::new("--tls-cert"),
            not_a_key.as_os_str(),
            OsStr::new("--tls-key"),
            not_a_key.as_os_str(),
            OsStr::new("--explain"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("wharf: "),
        "{}",
        text(&out.stderr)
    );
    // Folders that could not be made, named without making anything.
    let a_file = tmp.path().join("a-file");
    std::fs::write(&a_file, "").unwrap();
    let cache_dir = a_file.join("cache");
    let out = run(
        &[
            root.as_os_str(),
            OsStr::new("--proxy"),
            OsStr::new("/=http://127.0.0.1:9"),
            OsStr::new("--proxy-cache"),
            OsStr::new("1MiB"),
            OsStr::new("--proxy-cache-dir"),
            cache_dir.as_os_str(),
            OsStr::new("--explain"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("not a folder"),
        "{}",
        text(&out.stderr)
    );
    let state = a_file.to_str().unwrap();
    let self_signed = [
        root.as_os_str(),
        OsStr::new("--tls-self-signed"),
        OsStr::new("--explain"),
    ];
    let out = run(&self_signed, &[("XDG_STATE_HOME", state)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("self-signed"),
        "{}",
        text(&out.stderr)
    );
    let fresh = tmp.path().join("state");
    let out = run(&self_signed, &[("XDG_STATE_HOME", fresh.to_str().unwrap())]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!fresh.exists(), "--explain makes nothing");
}

#[test]
fn a_missing_error_page_is_a_warning() {
    let (tmp, root) = temp_root();
    write_file(&root, "404.html", "custom");
    write_file(&root, "bare/a.txt", "a");
    write_file(&root, "indexed/index.html", "sorry");
    let config = write_config(
        tmp.path(),
        "[error-pages]\n404 = \"/404.html\"\n500 = \"/oops.html\"\n\
         403 = \"/bare/\"\n410 = \"/indexed/\"\n",
    );
    let out = run(
        &[
            root.as_os_str(),
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--explain"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let warnings: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_string)
        .collect();
    // A folder without an index file would send its listing: warned about too; one
    // with an index file is a page.
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings.iter().any(|w| w.contains("500: /oops.html")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("403: /bare/")),
        "{warnings:?}"
    );
    // Served, the listing is not sent as the page: the built-in one is.
    let listing_page = tmp.path().join("listing.toml");
    std::fs::write(&listing_page, "[error-pages]\n404 = \"/bare/\"\n").unwrap();
    let server = Server::start(&root, &["--config", listing_page.to_str().unwrap()]);
    let missing = get(&server, "/nope");
    assert_eq!(missing.status, 404);
    assert!(
        !missing.body_text().contains("a.txt"),
        "{}",
        missing.body_text()
    );
    let indexed_page = tmp.path().join("indexed.toml");
    std::fs::write(&indexed_page, "[error-pages]\n404 = \"/indexed/\"\n").unwrap();
    let server = Server::start(&root, &["--config", indexed_page.to_str().unwrap()]);
    let missing = get(&server, "/nope");
    assert_eq!(
        (missing.status, missing.body_text().as_str()),
        (404, "sorry")
    );
}

/// The hash `wharf.example.toml` ships (its password is printed in that file).
const EXAMPLE_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bzBbXuTeqoof7ZHvwCPXQg$/XkfcwCQCm4bgi4u/ULHoinGWKSNKuYKNLru7JYdWtg";

#[test]
fn sizes_take_units_everywhere() {
    let (tmp, root) = temp_root();
    let config = write_config(
        tmp.path(),
        "cache-size = \"8MiB\"\ncompress-cache-size = \"1GiB\"\n",
    );
    let out = run(
        &[
            root.as_os_str(),
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--max-header-size"),
            OsStr::new("32KiB"),
            OsStr::new("--explain"),
        ],
        &[("WHARF_CACHE_SIZE", "2MiB")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let row = |key: &str| {
        report
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no {key} row: {report}"))
            .to_string()
    };
    assert!(row("max-header-size").contains("32 KiB"), "{report}");
    assert!(row("compress-cache-size").contains("1 GiB"), "{report}");
    // The environment wins over the file.
    assert!(row("cache-size").contains("2 MiB"), "{report}");
    let help = run(&[OsStr::new("--help")], &[]);
    let help = text(&help.stdout);
    assert!(help.contains("[default: 64MiB]"), "{help}");
    assert!(help.contains("[default: 16KiB]"), "{help}");
    // And a server starts with them.
    let server = Server::start(
        &root,
        &[
            "--cache-size",
            "64MiB",
            "--max-header-size",
            "16KiB",
            "--compress-cache-size",
            "1GiB",
        ],
    );
    assert_eq!(get(&server, "/").status, 200);
}

#[test]
fn an_invalid_variable_is_named() {
    let (_tmp, root) = temp_root();
    for (var, value) in [
        ("WHARF_HIDDEN", ""),
        ("WHARF_PORT", "eighty"),
        ("WHARF_CACHE_SIZE", "lots"),
    ] {
        let out = run(&[root.as_os_str()], &[(var, value)]);
        assert!(!out.status.success(), "{var}={value:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with(&format!("wharf: {var}: invalid value")),
            "{var}={value:?}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    // So is one whose value is judged once every layer is in.
    let out = run(&[root.as_os_str()], &[("WHARF_BIND", "")]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("wharf: WHARF_BIND: --bind \"\""),
        "{stderr}"
    );
    // On the command line the flag's own error stands.
    let out = run(
        &[root.as_os_str(), OsStr::new("--port"), OsStr::new("x")],
        &[("WHARF_PORT", "80")],
    );
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("WHARF_PORT"), "{stderr}");
    assert!(stderr.contains("'x'"), "{stderr}");
}

#[test]
fn a_bad_user_entry_names_its_own_line() {
    let (tmp, root) = temp_root();
    let config = write_config(
        tmp.path(),
        &format!("[users]\nalice = \"{EXAMPLE_HASH}\"\nbob = \"plaintext\"\n"),
    );
    let out = run(
        &[root.as_os_str(), OsStr::new("--config"), config.as_os_str()],
        &[],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("wharf.toml:3: key \"users.bob\""),
        "{stderr}"
    );
    // A name Basic credentials cannot carry (they split at the first ":").
    let config = write_config(
        tmp.path(),
        &format!("[users]\nalice = \"{EXAMPLE_HASH}\"\n\"a:b\" = \"{EXAMPLE_HASH}\"\n"),
    );
    let out = run(
        &[root.as_os_str(), OsStr::new("--config"), config.as_os_str()],
        &[],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("wharf.toml:3:"), "{stderr}");
    assert!(stderr.contains("RFC 7617"), "{stderr}");
}

#[test]
fn the_example_password_hash_is_warned_about() {
    let (tmp, root) = temp_root();
    let config = write_config(
        tmp.path(),
        &format!("[users]\nadmin = \"{EXAMPLE_HASH}\"\n"),
    );
    let args = [root.as_os_str(), OsStr::new("--config"), config.as_os_str()];
    let out = run(&[&args[..], &[OsStr::new("--explain")]].concat(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let warning = report
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("\"admin\""))
        .unwrap_or_else(|| panic!("no warning about admin: {report}"));
    assert!(warning.contains("wharf.example.toml"), "{warning}");
    // Starting with it says the same on stderr.
    let server = Server::spawn(
        &[
            &args[..],
            &[
                OsStr::new("-p"),
                OsStr::new("0"),
                OsStr::new("-b"),
                OsStr::new("127.0.0.1"),
            ],
        ]
        .concat(),
        None,
    );
    server.wait_for_stderr(
        |l| l.starts_with("wharf: warning:") && l.contains("\"admin\"") && l.contains("example"),
        LOG_TIMEOUT,
    );
    // A hash of its own is not warned about.
    let own = write_config(
        tmp.path(),
        "[users]\nadmin = \"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0+Qhk6Jd6eMbAqCwTd0gqMZV0S5M8ZdrJ0CdnwA2rM0\"\n",
    );
    let out = run(
        &[
            root.as_os_str(),
            OsStr::new("--config"),
            own.as_os_str(),
            OsStr::new("--explain"),
        ],
        &[],
    );
    assert!(
        !text(&out.stdout).contains("warning:"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn diagnostics_on_stderr_share_the_wharf_style() {
    let (tmp, root) = temp_root();
    let config = write_config(tmp.path(), "[error-pages]\n404 = \"/missing.html\"\n");
    let args = [
        root.as_os_str(),
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("-p"),
        OsStr::new("0"),
        OsStr::new("-b"),
        OsStr::new("127.0.0.1"),
    ];
    let server = Server::spawn(&args, None);
    server.wait_for_stderr(
        |l| l.starts_with("wharf: warning: error page for 404"),
        LOG_TIMEOUT,
    );
    for line in server.stderr_lines() {
        assert!(line.starts_with("wharf: "), "{line:?}");
        assert!(!line.contains("WARN"), "{line:?}");
    }
    drop(server);
    // WHARF_LOG=debug still shows diagnostics, in the same style.
    let server = Server::spawn_with_env(&args, &[("WHARF_LOG", OsStr::new("debug"))]);
    let _ = server.send_raw(b"\x01\x02 not http\r\n\r\n");
    let line = server.wait_for_stderr(
        |l| l.contains("connection ended with an error"),
        LOG_TIMEOUT,
    );
    assert!(line.starts_with("wharf: debug: "), "{line:?}");
}

#[test]
fn an_access_rule_naming_a_folder_without_its_slash_is_warned_about() {
    let (tmp, root) = temp_root();
    std::fs::create_dir(root.join("private")).unwrap();
    std::fs::create_dir(root.join("open")).unwrap();
    write_file(&root, "secret.txt", "s");
    let config = write_config(
        tmp.path(),
        "[[rule]]\npath = \"/private\"\ndeny = [\"0.0.0.0/0\", \"::/0\"]\n\
         [[rule]]\npath = \"/open/\"\ndeny = [\"0.0.0.0/0\", \"::/0\"]\n\
         [[rule]]\npath = \"/secret.txt\"\ndeny = [\"0.0.0.0/0\", \"::/0\"]\n",
    );
    let args = [
        root.as_os_str(),
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("--explain"),
    ];
    let out = run(&args, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let warnings: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("\"/private\""), "{warnings:?}");
    assert!(warnings[0].contains("\"/private/\""), "{warnings:?}");
}

#[test]
fn explain_shows_the_write_settings_with_their_sources() {
    let (_tmp, root) = temp_root();
    let out = run(
        &[
            root.as_os_str(),
            OsStr::new("--upload"),
            OsStr::new("--upload-expiry"),
            OsStr::new("2h"),
            OsStr::new("--explain"),
        ],
        &[("WHARF_MAX_UPLOAD_SIZE", "10MiB")],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line in:\n{text}"))
            .to_string()
    };
    assert!(line("upload").contains("on") && line("upload").contains("(command line)"));
    assert!(line("delete").contains("off"));
    let size = line("max-upload-size");
    assert!(
        size.contains("10 MiB") && size.contains("WHARF_MAX_UPLOAD_SIZE"),
        "{size}"
    );
    let expiry = line("upload-expiry");
    assert!(
        expiry.contains("2h") && expiry.contains("(command line)"),
        "{expiry}"
    );
    assert!(line("cgi").contains("off"), "{}", line("cgi"));
}

/// Writes allowed in a folder this process may not write to would all be refused:
/// `--explain` says so, for the root and for a rule's own folder.
#[test]
fn explain_warns_of_writes_allowed_where_none_can_succeed() {
    let (tmp, root) = temp_root();
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    std::fs::create_dir_all(root.join("open")).unwrap();
    let inbox = root.join("inbox");
    let Some(_mounted) = mount_tmpfs(&inbox, "ro,size=64k") else {
        return;
    };
    let conf = write_config(
        tmp.path(),
        "[[rule]]\npath = \"/inbox/**\"\nupload = true\n\n[[rule]]\npath = \"/open/*.txt\"\nupload = true\n",
    );
    let out = run(
        &[
            OsStr::new("--config"),
            conf.as_os_str(),
            root.as_os_str(),
            OsStr::new("--explain"),
        ],
        &[],
    );
    let report = text(&out.stdout);
    let warnings: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("is not writable by this user"))
        .collect();
    assert_eq!(warnings.len(), 1, "{report}");
    assert!(warnings[0].contains("inbox"), "{report}");
}
