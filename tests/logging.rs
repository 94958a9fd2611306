//! Access log on stdout: formats, escaping, and --quiet.

mod common;

use common::*;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn start(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "hello");
    write_file(&root, "b.txt", "bee");
    let server = Server::start(&root, extra);
    (tmp, server)
}

/// `127.0.0.1 - - [dd/Mon/yyyy:HH:MM:SS +0000] ...`
fn assert_clf_prefix(line: &str) {
    let rest = line
        .strip_prefix("127.0.0.1 - - [")
        .unwrap_or_else(|| panic!("line does not start with '127.0.0.1 - - [': {line:?}"));
    let end = rest
        .find(']')
        .unwrap_or_else(|| panic!("no ']' in {line:?}"));
    let ts = &rest[..end];
    let b = ts.as_bytes();
    let digits = |from: usize, to: usize| b[from..to].iter().all(u8::is_ascii_digit);
    let ok = ts.is_ascii()
        && b.len() == 26
        && digits(0, 2)
        && b[2] == b'/'
        && MONTHS.contains(&&ts[3..6])
        && b[6] == b'/'
        && digits(7, 11)
        && b[11] == b':'
        && digits(12, 14)
        && b[14] == b':'
        && digits(15, 17)
        && b[17] == b':'
        && digits(18, 20)
        && &ts[20..] == " +0000";
    assert!(ok, "timestamp {ts:?} is not dd/Mon/yyyy:HH:MM:SS +0000");
    assert!(rest[end..].starts_with("] \""), "after timestamp: {line:?}");
}

#[test]
fn default_log_is_combined_format() {
    let (_tmp, server) = start(&[]);
    let response = request(
        &server,
        "GET",
        "/a.txt",
        &[
            ("User-Agent", "curl-test"),
            ("Referer", "http://example.com/start"),
        ],
    );
    assert_eq!(response.status, 200);
    let line = server.wait_for_log(|l| l.contains("/a.txt"));
    assert_clf_prefix(&line);
    assert!(
        line.contains("\"GET /a.txt HTTP/1.1\" 200 5 \"http://example.com/start\" \"curl-test\""),
        "combined line: {line:?}"
    );
    assert!(line.ends_with("\"curl-test\""), "combined line: {line:?}");
}

#[test]
fn missing_referer_and_user_agent_are_dashes() {
    let (_tmp, server) = start(&[]);
    assert_eq!(get(&server, "/b.txt").status, 200);
    let line = server.wait_for_log(|l| l.contains("/b.txt"));
    assert_clf_prefix(&line);
    assert!(
        line.ends_with("\"GET /b.txt HTTP/1.1\" 200 3 \"-\" \"-\""),
        "line: {line:?}"
    );
}

#[test]
fn one_line_per_request_with_status() {
    let (_tmp, server) = start(&[]);
    assert_eq!(get(&server, "/a.txt").status, 200);
    assert_eq!(get(&server, "/missing.txt").status, 404);
    server.wait_for_log(|l| l.contains("/a.txt"));
    let missing = server.wait_for_log(|l| l.contains("/missing.txt"));
    assert!(
        missing.contains("\"GET /missing.txt HTTP/1.1\" 404 "),
        "404 line: {missing:?}"
    );
    let lines = server.stdout_lines();
    assert_eq!(
        lines.iter().filter(|l| l.contains("/a.txt")).count(),
        1,
        "lines: {lines:?}"
    );
}

#[test]
fn common_format_omits_referer_and_user_agent() {
    let (_tmp, server) = start(&["--log-format", "common"]);
    let response = request(&server, "GET", "/a.txt", &[("User-Agent", "curl-test")]);
    assert_eq!(response.status, 200);
    let line = server.wait_for_log(|l| l.contains("/a.txt"));
    assert_clf_prefix(&line);
    assert!(
        line.ends_with("\"GET /a.txt HTTP/1.1\" 200 5"),
        "common line: {line:?}"
    );
    assert!(!line.contains("curl-test"), "common line: {line:?}");
}

#[test]
fn json_format_writes_one_object_per_line() {
    let (_tmp, server) = start(&["--log-format", "json"]);
    let response = request(&server, "GET", "/a.txt", &[("User-Agent", "curl-test")]);
    assert_eq!(response.status, 200);
    let line = server.wait_for_log(|l| l.contains("a.txt"));
    let trimmed = line.trim();
    assert!(
        trimmed.starts_with('{') && trimmed.ends_with('}'),
        "json line: {line:?}"
    );
    let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(compact.contains("\"status\":200"), "json line: {line:?}");
    assert!(
        compact.contains("\"/a.txt"),
        "json line lacks the path: {line:?}"
    );
    assert!(
        compact.contains("curl-test"),
        "json line lacks the user agent: {line:?}"
    );
}

#[test]
fn control_characters_are_escaped_in_log() {
    let (_tmp, server) = start(&[]);
    assert_eq!(get(&server, "/%1b[31m").status, 404);
    let mut ua_request =
        b"GET /b.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: x\x1b[31my\r\n".to_vec();
    ua_request.extend_from_slice(b"Connection: close\r\n\r\n");
    let ua_response = server.exchange(&ua_request, false);

    server.wait_for_log(|l| l.contains("[31m") && !l.contains("/b.txt"));
    if ua_response.status == 200 {
        server.wait_for_log(|l| l.contains("/b.txt"));
    } else {
        assert_eq!(ua_response.status, 400, "raw ESC in User-Agent");
    }
    for line in server.stdout_lines() {
        assert!(!line.contains('\x1b'), "raw ESC in log line {line:?}");
    }
}

#[test]
fn quotes_in_user_agent_cannot_forge_fields() {
    let (_tmp, server) = start(&[]);
    let response = request(
        &server,
        "GET",
        "/a.txt",
        &[("User-Agent", "evil\" \"forged")],
    );
    assert_eq!(response.status, 200);
    let line = server.wait_for_log(|l| l.contains("/a.txt"));
    assert!(
        !line.contains("evil\" \"forged"),
        "unescaped quotes in log line {line:?}"
    );
}

#[test]
fn every_request_of_a_burst_is_logged_once_even_at_exit() {
    let (_tmp, mut server) = start(&["--workers", "2"]);
    // Keep-alive connections in parallel, so lines are collected on both workers and
    // handed over in batches.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = server.addr().to_string();
            std::thread::spawn(move || {
                let mut conn = Conn::new(connect(&addr));
                for i in 0..300 {
                    conn.send(
                        format!("GET /a.txt?t{t}-{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
                    );
                    assert_eq!(conn.read_response(false).status, 200);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // The last lines must reach stdout before the process exits.
    server.signal("TERM");
    assert!(server.expect_exit().success());
    let lines = server.stdout_lines();
    for t in 0..4 {
        for i in 0..300 {
            let needle = format!("/a.txt?t{t}-{i} ");
            let n = lines.iter().filter(|l| l.contains(&needle)).count();
            assert_eq!(n, 1, "{needle}: {n} lines");
        }
    }
    assert!(
        lines.iter().all(|l| l.ends_with('"')),
        "a line was cut or merged"
    );
}

#[test]
fn a_stdout_nobody_reads_costs_log_lines_not_answers() {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "hello");
    let mut server = Server::start_with_stdout_unread(&root, &["--workers", "1"]);
    // Far more lines than the pipe, the writer's buffer and the queue hold together:
    // if the event loop waited for stdout, a request would time out.
    let mut conn = Conn::new(connect(server.addr()));
    for i in 0..5000 {
        conn.send(format!("GET /a.txt?{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(conn.read_response(false).status, 200, "request {i}");
    }
    // Said while it happens, not only at the end.
    server.wait_for_stderr(
        |l| l.contains("access log lines are being dropped"),
        std::time::Duration::from_secs(10),
    );
    server.signal("TERM");
    assert!(server.expect_exit().success());
    let stderr = server.stderr_lines();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("access log lines dropped")),
        "no report of dropped lines: {stderr:?}"
    );
    drop(tmp);
}

#[test]
fn quiet_disables_access_log() {
    let (_tmp, mut server) = start(&["--quiet"]);
    assert_eq!(get(&server, "/a.txt").status, 200);
    assert_eq!(get(&server, "/missing").status, 404);
    server.signal("TERM");
    let status = server.expect_exit();
    assert!(status.success(), "exit status {status}");
    assert_eq!(server.stdout_lines(), Vec::<String>::new());
}

#[test]
fn short_quiet_flag_disables_access_log() {
    let (_tmp, mut server) = start(&["-q"]);
    assert_eq!(get(&server, "/a.txt").status, 200);
    server.signal("TERM");
    let status = server.expect_exit();
    assert!(status.success(), "exit status {status}");
    assert_eq!(server.stdout_lines(), Vec::<String>::new());
}

#[test]
fn requests_rejected_before_parsing_are_logged() {
    let (_tmp, server) = start(&[]);
    for (raw, status) in [
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(), 505),
    ] {
        let response = parse_response(&server.send_raw(&raw), false);
        assert_eq!(response.status, status);
        // The bytes of the error page sent, as for any answer.
        let sent = response.body.len();
        let line = server.wait_for_log(|l| l.contains(&format!("\"-\" {status} {sent} ")));
        assert_clf_prefix(&line);
    }
    let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    // Past hyper's head buffer (the header limit plus 68 KiB): hyper itself refuses.
    huge.extend(std::iter::repeat_n(b'a', 128 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse_response(&server.send_raw(&huge), false).status, 431);
    server.wait_for_log(|l| l.contains("\"-\" 431 0"));
}

/// A head that does not arrive within the header timeout is logged as 408, as nginx
/// does; a connection that never sent a byte is not a request and is not logged.
#[test]
fn a_head_cut_by_the_header_timeout_is_logged_as_408() {
    use std::io::{Read, Write};
    let (_tmp, mut server) = start(&["--header-timeout", "1s"]);
    let mut silent = connect(server.addr());
    let mut partial = connect(server.addr());
    partial
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    for stream in [&mut partial, &mut silent] {
        let mut rest = Vec::new();
        // Ends when the server closes the connection (or resets it).
        let _ = stream.read_to_end(&mut rest);
        assert!(rest.is_empty(), "an answer was sent: {rest:?}");
    }
    let line = server.wait_for_log(|l| l.contains("\"-\" 408 0"));
    assert_clf_prefix(&line);
    server.signal("TERM");
    assert!(server.expect_exit().success());
    let lines = server.stdout_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[test]
fn verbose_prints_request_heads_escaped_with_credentials_redacted() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let server = Server::start(&root, &["--verbose"]);
    let res = request(
        &server,
        "GET",
        "/a.txt?x=1",
        &[
            ("Authorization", "Basic c2VjcmV0OnB3"),
            ("Cookie", "session=abc"),
            ("X-Odd", "a\u{e9}b"),
        ],
    );
    assert_eq!(res.status, 200);
    let line = poll_until(std::time::Duration::from_secs(10), || {
        server
            .stderr_lines()
            .into_iter()
            .find(|l| l.contains("GET /a.txt?x=1 HTTP/1.1"))
    })
    .expect("the request line is printed");
    assert!(line.starts_with("wharf: 127.0.0.1:"), "{line}");
    let lines = server.stderr_lines();
    assert!(
        lines
            .iter()
            .any(|l| l == "wharf:   authorization: [redacted]"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "wharf:   cookie: [redacted]"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "wharf:   x-odd: a\\xc3\\xa9b"),
        "{lines:?}"
    );
    assert!(!lines
        .iter()
        .any(|l| l.contains("c2VjcmV0") || l.contains("session=abc")));
}

/// A download the client breaks off is logged as such: the bytes that left, not the
/// file's size, and `complete: false` — also when the file goes out with `sendfile`,
/// where the body ends as soon as hyper has taken it.
#[test]
fn a_download_broken_off_is_logged_with_the_bytes_sent() {
    use std::io::{Read, Write};
    const SIZE: usize = 48 * 1024 * 1024;
    let (tmp, root) = temp_root();
    std::fs::write(root.join("big.bin"), vec![b'x'; SIZE]).unwrap();
    write_file(&root, "small.txt", "tiny");
    let server = Server::start(&root, &["--log-format", "json"]);

    let mut stream = connect(server.addr());
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = vec![0u8; 1024 * 1024];
    stream.read_exact(&mut first).unwrap();
    drop(stream);

    let line = server.wait_for_log(|l| l.contains("/big.bin"));
    let entry: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(entry["status"], 200, "{line}");
    assert_eq!(entry["complete"], false, "{line}");
    let bytes = entry["bytes"].as_u64().unwrap();
    assert!(
        bytes < SIZE as u64,
        "logged {bytes} of {SIZE} bytes: {line}"
    );

    // A download read to its end is complete, with every byte counted.
    let response = get(&server, "/big.bin");
    assert_eq!(response.body.len(), SIZE);
    let whole = server.wait_for_log(|l| l.contains("/big.bin") && l.contains("\"complete\":true"));
    let entry: serde_json::Value = serde_json::from_str(whole.trim()).unwrap();
    assert_eq!(entry["bytes"], SIZE as u64, "{whole}");
    drop(tmp);
}

/// Diagnostics on a stderr that is not a terminal (a file, journald) carry no
/// colour codes.
#[test]
fn debug_lines_to_a_file_carry_no_colour_codes() {
    use std::ffi::OsStr;
    let (_tmp, root) = temp_root();
    let server = Server::spawn_with_env(
        &[
            root.as_os_str(),
            OsStr::new("-p"),
            OsStr::new("0"),
            OsStr::new("-b"),
            OsStr::new("127.0.0.1"),
        ],
        &[("WHARF_LOG", OsStr::new("debug"))],
    );
    // An HTTP/2 connection that breaks the protocol: debug lines with fields.
    server.send_raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x01\x09\x00\x00\x00\x00\x00x");
    server.wait_for_stderr(
        |l| l.contains("debug:") && l.contains("error"),
        std::time::Duration::from_secs(10),
    );
    for line in server.stderr_lines() {
        assert!(!line.contains('\x1b'), "{line:?}");
    }
}

/// A stdout that refuses lines (a full disk: `/dev/full`) loses them, and says so:
/// on stderr when it starts, with how many at the end, and in the metrics.
#[test]
fn a_stdout_that_takes_no_lines_is_said_to() {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "hello");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let admin_port = free_port().to_string();
    let admin = format!("127.0.0.1:{admin_port}");
    let mut server = Server::start_with_stdout(
        &root,
        &["--workers", "1", "--admin", &admin],
        std::process::Stdio::from(full),
    );
    let mut conn = Conn::new(connect(server.addr()));
    for i in 0..200 {
        conn.send(format!("GET /a.txt?{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(conn.read_response(false).status, 200, "request {i}");
    }
    server.wait_for_stderr(
        |l| l.contains("access log lines cannot be written to stdout"),
        std::time::Duration::from_secs(10),
    );
    let metrics = poll_until(std::time::Duration::from_secs(10), || {
        let mut admin = Conn::new(connect(&admin));
        admin.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let text = admin.read_response(false).body_text();
        let dropped: u64 = text
            .lines()
            .find(|l| l.starts_with("wharf_access_log_dropped_total "))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()?;
        (dropped >= 200).then_some(dropped)
    });
    assert!(metrics.is_some(), "the dropped lines are not counted");
    server.signal("TERM");
    assert!(server.expect_exit().success());
    drop(tmp);
}
