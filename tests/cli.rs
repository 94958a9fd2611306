//! Command-line interface: arguments, defaults, startup banner and startup errors.

mod common;

use common::*;
use std::fs;
use std::net::TcpListener;

/// A startup failure must be a short, clean message, never a panic.
fn assert_clean_failure(run: &Finished, what: &str) {
    assert!(
        !run.status.success(),
        "{what}: expected a non-zero exit, got {}",
        run.status
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "{what}: stderr looks like a panic: {:?}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("wharf: serving"),
        "{what}: server announced it was serving: {:?}",
        run.stderr
    );
}

/// wharf's own startup errors are exactly one `wharf: ` line.
fn assert_one_line_wharf_error(run: &Finished, what: &str) {
    assert_clean_failure(run, what);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected a one-line error, got {:?}",
        run.stderr
    );
    assert!(
        lines[0].starts_with("wharf: "),
        "{what}: error should start with 'wharf: ', got {:?}",
        lines[0]
    );
}

#[test]
fn help_exits_zero_and_shows_examples() {
    let run = run_to_exit(&["--help"], None);
    assert!(run.status.success(), "--help exit status: {}", run.status);
    assert!(
        run.stdout.contains("Examples"),
        "--help output lacks Examples: {:?}",
        run.stdout
    );
}

#[test]
fn version_prints_name_and_version() {
    let run = run_to_exit(&["--version"], None);
    assert!(
        run.status.success(),
        "--version exit status: {}",
        run.status
    );
    let expected = format!("wharf {}", env!("CARGO_PKG_VERSION"));
    assert!(
        run.stdout.trim().starts_with(&expected),
        "--version printed {:?}, expected {expected:?}",
        run.stdout
    );
}

#[test]
fn banner_names_absolute_root_and_url() {
    let (_tmp, root) = temp_root();
    let server = Server::start(&root, &[]);
    let canonical = fs::canonicalize(&root).unwrap();
    let expected_prefix = format!(
        "wharf: serving {} at http://127.0.0.1:",
        canonical.display()
    );
    assert!(
        server.banner().starts_with(&expected_prefix),
        "banner {:?} should start with {expected_prefix:?}",
        server.banner()
    );
    assert!(
        server.banner().ends_with('/'),
        "banner: {:?}",
        server.banner()
    );
    assert_ne!(server.port(), 0, "banner must report the real port");
}

#[test]
fn relative_root_is_resolved_against_current_directory() {
    let tmp = tempfile::tempdir().unwrap();
    write_file(tmp.path(), "site/hello.txt", "from site");
    let server = Server::spawn(
        &["site", "--port", "0", "-b", "127.0.0.1"],
        Some(tmp.path()),
    );
    let expected = fs::canonicalize(tmp.path().join("site")).unwrap();
    assert!(
        server
            .banner()
            .contains(&format!("serving {} at", expected.display())),
        "banner should show the absolute root {expected:?}: {:?}",
        server.banner()
    );
    assert_eq!(get(&server, "/hello.txt").body, b"from site");
}

#[test]
fn default_root_is_current_directory() {
    let tmp = tempfile::tempdir().unwrap();
    write_file(tmp.path(), "cwd.txt", "current dir");
    let server = Server::spawn(&["--port", "0", "-b", "127.0.0.1"], Some(tmp.path()));
    let response = get(&server, "/cwd.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"current dir");
}

#[test]
fn directory_flag_sets_root() {
    let (_tmp, root) = temp_root();
    write_file(&root, "d.txt", "via -d");
    for flag in ["-d", "--directory"] {
        let server = Server::spawn(
            &[
                flag,
                root.to_str().unwrap(),
                "--port",
                "0",
                "-b",
                "127.0.0.1",
            ],
            None,
        );
        let response = get(&server, "/d.txt");
        assert_eq!(response.status, 200, "{flag}");
        assert_eq!(response.body, b"via -d", "{flag}");
    }
}

#[test]
fn long_port_and_bind_flags_work() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "long flags");
    let server = Server::spawn(
        &[root.to_str().unwrap(), "--port", "0", "--bind", "127.0.0.1"],
        None,
    );
    assert!(
        server.banner().contains("http://127.0.0.1:"),
        "{}",
        server.banner()
    );
    assert_eq!(get(&server, "/a.txt").body, b"long flags");
}

#[test]
fn lone_number_is_port_when_no_such_directory() {
    let tmp = tempfile::tempdir().unwrap();
    write_file(tmp.path(), "here.txt", "cwd served");
    // `wharf 0`: "0" is not a directory, so it is the port and the cwd is served.
    let server = Server::spawn(&["0", "-b", "127.0.0.1"], Some(tmp.path()));
    assert_ne!(server.port(), 0);
    let expected = fs::canonicalize(tmp.path()).unwrap();
    assert!(
        server
            .banner()
            .contains(&format!("serving {} at", expected.display())),
        "banner should name the cwd {expected:?}: {:?}",
        server.banner()
    );
    let response = get(&server, "/here.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"cwd served");
}

#[test]
fn lone_number_is_root_when_directory_exists() {
    let tmp = tempfile::tempdir().unwrap();
    write_file(tmp.path(), "0/inner.txt", "numbered dir");
    let server = Server::spawn(&["0", "--port", "0", "-b", "127.0.0.1"], Some(tmp.path()));
    let response = get(&server, "/inner.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"numbered dir");
}

#[test]
fn binds_ipv6_loopback() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("IPv6 loopback unavailable; skipping");
        return;
    }
    let (_tmp, root) = temp_root();
    write_file(&root, "six.txt", "ipv6");
    let server = Server::spawn(&[root.to_str().unwrap(), "-p", "0", "-b", "::1"], None);
    assert!(
        server.banner().contains("http://[::1]:"),
        "IPv6 banner should bracket the address: {:?}",
        server.banner()
    );
    assert!(server.socket_addr().is_ipv6());
    let response = get(&server, "/six.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ipv6");
}

#[test]
fn accepts_all_duration_formats() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "ok");
    let server = Server::start(
        &root,
        &[
            "--header-timeout",
            "10",
            "--idle-timeout",
            "2m",
            "--grace-period",
            "500ms",
        ],
    );
    assert_eq!(get(&server, "/a.txt").status, 200);
    let server = Server::start(&root, &["--header-timeout", "10s", "--grace-period", "10s"]);
    assert_eq!(get(&server, "/a.txt").status, 200);
}

#[test]
fn port_in_use_is_a_clean_error() {
    let (_tmp, root) = temp_root();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let run = run_to_exit(
        &[
            root.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "-b",
            "127.0.0.1",
        ],
        None,
    );
    assert_one_line_wharf_error(&run, "port in use");
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{port}")),
        "error should name the address: {:?}",
        run.stderr
    );
}

#[test]
fn missing_root_is_a_clean_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("does-not-exist");
    let run = run_to_exit(
        &[missing.to_str().unwrap(), "--port", "0", "-b", "127.0.0.1"],
        None,
    );
    assert_one_line_wharf_error(&run, "missing root");
    assert!(
        run.stderr.contains("does-not-exist"),
        "error should mention the path: {:?}",
        run.stderr
    );
}

#[test]
fn root_that_is_a_file_is_a_clean_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_file(tmp.path(), "plain.txt", "not a dir");
    let file = tmp.path().join("plain.txt");
    let run = run_to_exit(
        &[file.to_str().unwrap(), "--port", "0", "-b", "127.0.0.1"],
        None,
    );
    assert_one_line_wharf_error(&run, "root is a file");
    assert!(
        run.stderr.contains("plain.txt"),
        "error should mention the path: {:?}",
        run.stderr
    );
}

#[test]
fn invalid_flag_values_are_rejected_cleanly() {
    let (_tmp, root) = temp_root();
    let root = root.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["--port", "abc", "-b", "127.0.0.1"],
        &["--port", "70000", "-b", "127.0.0.1"],
        &["--port", "0", "-b", "127.0.0.1", "--log-format", "xml"],
        &["--port", "0", "-b", "127.0.0.1", "--header-timeout", "soon"],
        &[
            "--port",
            "0",
            "-b",
            "127.0.0.1",
            "--idle-timeout",
            "forever",
        ],
        &[
            "--port",
            "0",
            "-b",
            "127.0.0.1",
            "--grace-period",
            "10 parsecs",
        ],
        &["--port", "0", "-b", "127.0.0.1", "--max-header-size", "big"],
        &["--port", "0", "-b", "notanaddress!!"],
        &["--port", "0", "-b", "127.0.0.1", "--no-such-flag"],
        &[
            "--port",
            "0",
            "-b",
            "127.0.0.1",
            "--tls-cert",
            "/nonexistent",
        ],
    ];
    for case in cases {
        let mut args = vec![root];
        args.extend_from_slice(case);
        let run = run_to_exit(&args, None);
        let what = format!("{case:?}");
        // Usage errors too: one `wharf: ` line, as the README promises.
        assert_one_line_wharf_error(&run, &what);
        let first = run.stderr.lines().next().unwrap_or("");
        assert!(
            first.starts_with("wharf: "),
            "{what}: stderr should start with 'wharf: ', got {:?}",
            run.stderr
        );
    }
}

#[test]
fn a_mistyped_subcommand_is_not_taken_for_a_folder() {
    let (tmp, _root) = temp_root();
    let run = run_to_exit(&["hash-pasword"], Some(tmp.path()));
    assert_one_line_wharf_error(&run, "hash-pasword");
    assert!(
        run.stderr
            .contains("hash-pasword is not a command or a folder"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("`wharf hash-password`"),
        "{}",
        run.stderr
    );
    let run = run_to_exit(&["help"], Some(tmp.path()));
    assert_one_line_wharf_error(&run, "help");
    assert!(
        run.stderr.contains("help is not a command"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("wharf --help"), "{}", run.stderr);
    // A path that does not exist is still a missing folder.
    let run = run_to_exit(&["./nope"], Some(tmp.path()));
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    // And a folder of that name is served.
    fs::create_dir(tmp.path().join("help")).unwrap();
    let server = Server::spawn(&["help", "-p", "0", "-b", "127.0.0.1"], Some(tmp.path()));
    assert_eq!(get(&server, "/").status, 200);
}

#[test]
fn usage_lists_hash_password() {
    let run = run_to_exit(&["--help"], None);
    let usage: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Usage:"))
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(
        usage
            .iter()
            .any(|l| l.trim_end().ends_with("wharf hash-password")),
        "{usage:?}"
    );
}

#[test]
fn completions_and_the_manual_page_come_from_the_option_definitions() {
    let bash = run_to_exit(&["completions", "bash"], None);
    assert!(bash.status.success(), "{}", bash.stderr);
    assert!(bash.stdout.contains("--proxy-cache"), "{}", bash.stdout);
    assert!(bash.stdout.contains("--admin"));
    for shell in ["zsh", "fish"] {
        assert!(run_to_exit(&["completions", shell], None).status.success());
    }
    let bad = run_to_exit(&["completions", "cmd.exe"], None);
    assert!(!bad.status.success());
    assert!(
        bad.stderr.contains("usage: wharf completions"),
        "{}",
        bad.stderr
    );
    let man = run_to_exit(&["man"], None);
    assert!(man.status.success(), "{}", man.stderr);
    assert!(man.stdout.contains(".TH wharf 1"), "{}", man.stdout);
    assert!(man.stdout.contains("proxy\\-cache"), "{}", man.stdout);
    let typo = run_to_exit(&["completion"], None);
    assert!(typo.stderr.contains("wharf completions"), "{}", typo.stderr);
}
