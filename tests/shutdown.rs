//! Graceful shutdown on SIGTERM / SIGINT, and signals that must not stop wharf.

mod common;

use common::*;
use std::net::TcpStream;
use std::time::Duration;

const BIG_LEN: usize = 64 * 1024 * 1024;

fn big_content() -> Vec<u8> {
    (0..BIG_LEN).map(|i| (i % 251) as u8).collect()
}

fn exits_cleanly_on(signal: &str) {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "hello");
    let mut server = Server::start(&root, &[]);
    // Make sure the server is fully up (and serving) before signalling it.
    assert_eq!(get(&server, "/a.txt").status, 200);
    server.signal(signal);
    let status = server.expect_exit();
    assert!(status.success(), "SIG{signal}: exit status {status}");
    let stderr = server.stderr_lines().join("\n");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

#[test]
fn sigterm_exits_with_status_zero() {
    exits_cleanly_on("TERM");
}

#[test]
fn sigint_exits_with_status_zero() {
    exits_cleanly_on("INT");
}

/// SIGUSR1 (what log rotation sends nginx to reopen its logs) neither ends wharf,
/// which its default action would, nor disturbs serving.
#[test]
fn sigusr1_is_answered_without_stopping() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "hello");
    let mut server = Server::start(&root, &[]);
    assert_eq!(get(&server, "/a.txt").status, 200);
    server.signal("USR1");
    let said = poll_until(Duration::from_secs(10), || {
        server
            .stderr_lines()
            .into_iter()
            .find(|l| l.contains("SIGUSR1"))
    });
    assert!(said.is_some(), "stderr: {:?}", server.stderr_lines());
    assert_eq!(get(&server, "/a.txt").status, 200);
    server.signal("TERM");
    assert!(server.expect_exit().success());
}

#[test]
fn idle_keep_alive_connection_does_not_delay_exit_past_grace() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "hello");
    let mut server = Server::start(&root, &["--grace-period", "2s"]);
    let mut conn = Conn::open(&server);
    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(conn.read_response(false).status, 200);
    // The connection stays open and idle while the server shuts down.
    server.signal("TERM");
    let status = server.expect_exit();
    assert!(status.success(), "exit status {status}");
    drop(conn);
}

#[test]
fn in_flight_download_completes_after_sigterm() {
    let (_tmp, root) = temp_root();
    let content = big_content();
    write_file(&root, "big.bin", &content);
    let mut server = Server::start(&root, &[]);
    let addr = server.socket_addr();

    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/big.bin", &[]));
    let mut head = conn.read_head().expect("response head");
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(BIG_LEN));
    let start = conn.read_exact_bytes(4096).expect("first bytes of body");

    server.signal("TERM");

    // The listener goes away while the download is still unfinished.
    let refused = poll_until(Duration::from_secs(10), || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .is_err()
            .then_some(())
    });
    assert!(
        refused.is_some(),
        "new connections still accepted after SIGTERM"
    );

    // ... yet the in-flight response is delivered in full.
    let rest = conn
        .read_exact_bytes(BIG_LEN - start.len())
        .expect("rest of the in-flight body after SIGTERM");
    head.body = [start, rest].concat();
    assert!(head.body == content, "in-flight body corrupted");
    let tail = conn.read_to_eof().unwrap_or_default();
    assert!(tail.is_empty(), "{} extra bytes after the body", tail.len());

    let status = server.expect_exit();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_second_interrupt_stops_at_once() {
    let (_tmp, root) = temp_root();
    write_file(&root, "big.bin", big_content());
    // A grace period far beyond the exit deadline: only a forced stop ends in time.
    let mut server = Server::start(&root, &["--grace-period", "300s"]);

    // A download whose client stops reading: its response stays in flight.
    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/big.bin", &[]));
    let head = conn.read_head().expect("response head");
    assert_eq!(head.status, 200);
    conn.read_exact_bytes(4096).expect("first bytes of body");

    server.signal("INT");
    let said = server.wait_for_stderr(|l| l.contains("shutting down"), LOG_TIMEOUT);
    assert!(said.starts_with("wharf: "), "{said}");
    assert!(said.contains("finishing 1 response "), "{said}");
    assert!(said.contains("Ctrl-C again stops now"), "{said}");

    server.signal("INT");
    let status = server.expect_exit();
    assert!(!status.success(), "a forced stop exited with {status}");
    let stderr = server.stderr_lines().join("\n");
    assert!(stderr.contains("wharf: stopped at once"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(conn);
}

/// A stderr nobody reads any more (`wharf 2>&1 | tee log` with tee gone) takes
/// no line, and that is all: a reload still reloads and a shutdown still lets the
/// answers finish and exits 0, where a failed write used to end wharf in a panic.
#[test]
fn a_gone_stderr_reader_stops_neither_reload_nor_shutdown() {
    use std::io::{BufRead, BufReader, Read, Write};
    let (_t, root) = temp_root();
    write_file(&root, "f.txt", "served");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["--port", "0", "--bind", "127.0.0.1", "--quiet"])
        .arg(&root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    err.read_line(&mut banner).unwrap();
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .to_string();
    drop(err);
    let fetch = || {
        let mut conn = TcpStream::connect(&addr).unwrap();
        conn.write_all(b"GET /f.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        answer
    };
    let kill = |signal: &str| {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    };
    kill("HUP");
    kill("USR1");
    // Whenever the signals are taken, the server is still there to answer, and
    // its exit status below tells whether it was all along.
    for _ in 0..3 {
        assert!(fetch().ends_with("served"));
    }
    kill("TERM");
    let status = poll_until(Duration::from_secs(10), || child.try_wait().unwrap());
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");
}
