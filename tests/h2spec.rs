//! h2spec (github.com/summerwind/h2spec), the HTTP/2 conformance suite, in strict
//! mode: its 147 cases over TLS (ALPN h2) and with prior knowledge (h2c). Ignored by
//! a plain `cargo test`: h2spec is built from source with Go (no distribution
//! packages it), so it runs with `cargo test --test h2spec -- --ignored` where
//! `h2spec` is on the PATH.
//!
//! One h2c case is expected to differ: "3.5/2 Sends invalid connection preface"
//! sends `INVALID CONNECTION PREFACE\r\n\r\n`, which on a port that also speaks
//! HTTP/1.1 is a malformed HTTP/1 request and gets a 400, as RFC 9112 §2.2 asks,
//! where h2spec expects the connection closed without an answer.

mod common;

use std::process::Command;

use common::*;

/// Runs h2spec against `port`; the summary line and the failed cases' titles.
fn h2spec(port: u16, tls: bool) -> (String, Vec<String>) {
    let mut cmd = Command::new("h2spec");
    // Strict: the cases that check SHOULDs too.
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-o", "5", "-S"]);
    if tls {
        cmd.args(["-t", "-k"]);
    }
    let out = cmd.output().expect("h2spec runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = text
        .lines()
        .find(|l| l.contains(" tests, "))
        .unwrap_or_default()
        .trim()
        .to_string();
    let failures = text
        .split("Failures:")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("× "))
        .map(str::to_string)
        .collect();
    (summary, failures)
}

#[test]
#[ignore = "needs h2spec on the PATH, built from source"]
fn h2spec_passes_over_tls_and_h2c() {
    assert!(have("h2spec"), "h2spec is not on the PATH");
    let (tmp, root) = temp_root();
    write_file(&root, "index.html", "<p>hello</p>");
    // The self-signed certificate is kept under the state directory: a fresh one.
    let state = tmp.path().join("state");
    let tls = Server::start_with_env(
        &root,
        &["--tls-self-signed"],
        &[("XDG_STATE_HOME", state.as_os_str())],
    );
    let (summary, failures) = h2spec(tls.port(), true);
    eprintln!("h2 over TLS: {summary}");
    assert!(failures.is_empty(), "{summary}: {failures:?}");
    assert!(summary.contains(" 0 failed"), "{summary}");

    let plain = Server::start(&root, &[]);
    let (summary, failures) = h2spec(plain.port(), false);
    eprintln!("h2c: {summary}");
    assert!(
        failures
            .iter()
            .all(|f| f == "2: Sends invalid connection preface"),
        "{summary}: {failures:?}"
    );
}
