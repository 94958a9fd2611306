//! Connection life cycle beyond single requests: connections parked while idle come
//! back for the next request, clients that half-close or wait before speaking are
//! answered, large file bodies sent with sendfile arrive intact, whole or in
//! ranges, and a client that stops reading holds little of the server's memory.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

/// Blocks until `wait` has passed with nothing from the server, and fails if the
/// server closed the connection meanwhile.
fn stay_idle(conn: &Conn<std::net::TcpStream>, wait: Duration) {
    let stream = conn.stream();
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    match (&*stream).read(&mut byte) {
        Err(e) if is_timeout(&e) => {}
        Ok(0) => panic!("server closed an idle keep-alive connection"),
        other => panic!("unexpected read while idle: {other:?}"),
    }
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
}

#[test]
fn idle_connection_serves_again_after_being_parked() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "first");
    write_file(&root, "b.txt", "second");
    let server = Server::start(&root, &[]);
    let mut conn = Conn::open(&server);
    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_response(false).body, b"first");
    // Well past the 100 ms after which an idle connection is parked.
    stay_idle(&conn, Duration::from_millis(400));
    conn.send(b"GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_response(false).body, b"second");
    assert_eq!(conn.read_response(false).body, b"first");
    stay_idle(&conn, Duration::from_millis(400));
    // A request arriving in pieces across a park.
    conn.send(b"GET /b.tx");
    stay_idle(&conn, Duration::from_millis(200));
    conn.send(b"t HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_response(false).body, b"second");
}

#[test]
fn many_parked_connections_each_come_back() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "first");
    write_file(&root, "b.txt", "second");
    let server = Server::start(&root, &[]);
    let mut conns: Vec<Conn> = (0..200).map(|_| Conn::open(&server)).collect();
    for conn in &mut conns {
        conn.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(conn.read_response(false).body, b"first");
    }
    stay_idle(&conns[0], Duration::from_millis(400));
    // Every connection is parked now; they come back in another order.
    for conn in conns.iter_mut().rev() {
        conn.send(b"GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    for conn in &mut conns {
        assert_eq!(conn.read_response(false).body, b"second");
    }
    // Parked a second time, then the client hangs up after one last request.
    stay_idle(&conns[0], Duration::from_millis(400));
    for conn in &mut conns {
        conn.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        conn.stream().shutdown(std::net::Shutdown::Write).unwrap();
    }
    for conn in &mut conns {
        assert_eq!(conn.read_response(false).body, b"first");
        assert!(conn.wait_for_close());
    }
}

#[test]
fn parked_connections_close_at_shutdown() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "x");
    let mut server = Server::start(&root, &["--grace-period", "30s"]);
    let mut conns: Vec<Conn> = (0..20).map(|_| Conn::open(&server)).collect();
    for conn in &mut conns {
        conn.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(conn.read_response(false).status, 200);
    }
    stay_idle(&conns[0], Duration::from_millis(400));
    server.signal("TERM");
    // Idle connections hold nothing up: no waiting for the 30 s grace period.
    for conn in &mut conns {
        assert!(
            conn.wait_for_close(),
            "a parked connection outlived shutdown"
        );
    }
    assert!(server.expect_exit().success());
}

#[test]
fn a_partial_head_behind_a_pipelined_request_meets_the_header_timeout() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "first");
    write_file(&root, "b.txt", "second");
    let server = Server::start(&root, &["--header-timeout", "1", "--idle-timeout", "60"]);
    // The second request's first bytes arrive with the first request: the connection
    // is mid-head, not idle, and is neither parked nor given the idle timeout.
    let mut conn = Conn::open(&server);
    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /b.tx");
    assert_eq!(conn.read_response(false).body, b"first");
    assert!(
        conn.wait_for_close(),
        "an unfinished head was kept past the header timeout"
    );
    // Finished in time, the same pipelining works.
    let mut conn = Conn::open(&server);
    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /b.tx");
    assert_eq!(conn.read_response(false).body, b"first");
    stay_idle(&conn, Duration::from_millis(300));
    conn.send(b"t HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_response(false).body, b"second");
}

#[test]
fn parked_connection_still_closes_at_the_idle_timeout() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "x");
    let server = Server::start(&root, &["--idle-timeout", "1"]);
    let mut conn = Conn::open(&server);
    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_response(false).status, 200);
    assert!(conn.wait_for_close(), "idle connection was not closed");
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "half");
    std::fs::write(root.join("big.bin"), vec![7u8; 3 * 1024 * 1024]).unwrap();
    let server = Server::start(&root, &[]);
    // Twice each: the first answer takes the full path, the second the cache.
    for (path, len) in [
        ("/a.txt", 4),
        ("/a.txt", 4),
        ("/big.bin", 3 << 20),
        ("/big.bin", 3 << 20),
    ] {
        let mut conn = Conn::open(&server);
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        conn.stream().shutdown(std::net::Shutdown::Write).unwrap();
        let response = conn.read_response(false);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.body.len(), len, "{path}");
        assert!(
            conn.wait_for_close(),
            "{path}: connection left open after EOF"
        );
    }
}

#[test]
fn a_client_that_waits_before_sending_is_served() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "late");
    let server = Server::start(&root, &[]);
    let mut conn = Conn::open(&server);
    // Past the second for which the kernel may hold a silent connection back from
    // accept: the connection is then accepted empty and must wait for its request.
    stay_idle(&conn, Duration::from_millis(1500));
    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_response(false).body, b"late");
    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(conn.read_response(false).body, b"late");
    assert!(conn.wait_for_close());
}

#[test]
fn a_silent_client_is_dropped_after_the_header_timeout() {
    let (_tmp, root) = temp_root();
    let server = Server::start(&root, &["--header-timeout", "1"]);
    let mut conn = Conn::open(&server);
    assert!(
        conn.wait_for_close(),
        "a client that sends nothing was kept"
    );
}

#[test]
fn a_silent_client_gets_the_header_timeout_from_when_it_connected() {
    let (_tmp, root) = temp_root();
    let server = Server::start(&root, &["--header-timeout", "1"]);
    let mut conn = Conn::open(&server);
    // The kernel holds a silent connection back from accept for about a second; that
    // second is part of its header timeout, not added to it (which would close it
    // after about two).
    assert!(
        conn.wait_for_close_within(Duration::from_millis(1700)),
        "a silent client was kept past its header timeout"
    );
}

fn big_file(root: &std::path::Path) -> Vec<u8> {
    // Over the 1 MiB in-memory limit, so it is sent from the file.
    let content = pseudo_random_bytes(7, 3 * 1024 * 1024 + 12_345);
    write_file(root, "big.bin", &content);
    content
}

#[test]
fn large_files_arrive_intact_whole_and_in_ranges() {
    let (_tmp, root) = temp_root();
    let content = big_file(&root);
    let server = Server::start(&root, &[]);
    let mut conn = Conn::open(&server);
    // Whole, twice on one connection (the second from the same open state).
    for _ in 0..2 {
        conn.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
        let res = conn.read_response(false);
        assert_eq!(res.status, 200);
        assert!(res.body == content, "whole body differs");
    }
    // A large single range at an odd offset.
    conn.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=100001-2200002\r\n\r\n");
    let res = conn.read_response(false);
    assert_eq!(res.status, 206);
    assert!(
        res.body[..] == content[100_001..=2_200_002],
        "range differs"
    );
    // A suffix range that is the tail of the file.
    conn.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-700000\r\n\r\n");
    let res = conn.read_response(false);
    assert!(
        res.body[..] == content[content.len() - 700_000..],
        "suffix differs"
    );
}

#[test]
fn multipart_ranges_mix_part_headers_and_large_file_ranges() {
    let (_tmp, root) = temp_root();
    let content = big_file(&root);
    let server = Server::start(&root, &[]);
    let res = request(
        &server,
        "GET",
        "/big.bin",
        &[("Range", "bytes=10-200009,1000000-1300000,3000000-")],
    );
    assert_eq!(res.status, 206);
    let ct = res.header("content-type").unwrap();
    let boundary = ct.split("boundary=").nth(1).expect("boundary").to_string();
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = &res.body[..];
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    while let Some(at) = find(rest, delimiter.as_bytes()) {
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").expect("part head") + 4;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: bytes "))
            .expect("Content-Range")
            .to_string();
        let (span, _) = range.split_once('/').unwrap();
        let (a, b) = span.split_once('-').unwrap();
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        let body = &rest[head_end..head_end + (b - a + 1)];
        assert!(body == &content[a..=b], "part {a}-{b} differs");
        parts.push((a, b));
        rest = &rest[head_end + (b - a + 1)..];
    }
    assert_eq!(
        parts,
        [
            (10, 200_009),
            (1_000_000, 1_300_000),
            (3_000_000, content.len() - 1)
        ]
    );
}

#[test]
fn a_client_reading_slowly_gets_every_byte() {
    let (_tmp, root) = temp_root();
    let content = big_file(&root);
    let server = Server::start(&root, &[]);
    let mut stream = connect(server.addr());
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Small reads keep the socket buffer full, so sendfile keeps hitting EAGAIN.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 1500];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    let res = parse_response(&raw, false);
    assert_eq!(res.status, 200);
    assert!(res.body == content, "slowly read body differs");
}

#[test]
fn a_slow_but_steady_reader_is_not_cut_off_at_the_idle_timeout() {
    let (_tmp, root) = temp_root();
    let content = big_file(&root);
    let server = Server::start(&root, &["--idle-timeout", "1"]);
    let mut stream = connect(server.addr());
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Pacing, not synchronisation: the transfer takes well over the 1 s idle timeout,
    // while every read makes progress.
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 128 * 1024];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        std::thread::sleep(Duration::from_millis(40));
    }
    let res = parse_response(&raw, false);
    assert_eq!(res.status, 200);
    assert!(
        res.body == content,
        "got {} of {} bytes",
        res.body.len(),
        content.len()
    );
}

#[test]
fn a_client_that_stops_reading_is_dropped() {
    let (_tmp, root) = temp_root();
    write_file(&root, "huge.bin", pseudo_random_bytes(9, 48 * 1024 * 1024));
    let server = Server::start(&root, &["--idle-timeout", "1"]);
    let mut stream = connect(server.addr());
    stream
        .write_all(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // The stall under test: take nothing for well over the 1 s timeout. Socket buffers
    // hold a few MiB; everything after that was never sent, so the stream ends early.
    std::thread::sleep(Duration::from_secs(3));
    let mut received = 0usize;
    let mut chunk = vec![0u8; 1024 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(
        received < 48 * 1024 * 1024,
        "a stalled client got the whole body"
    );
}

#[test]
fn a_client_that_reads_nothing_has_little_queued_for_it() {
    // A 1 MiB file is answered from memory; without a bound on unsent bytes the
    // kernel takes all of it into the socket, per slow connection (slow-read attack).
    let (_tmp, root) = temp_root();
    write_file(&root, "1m.bin", pseudo_random_bytes(3, 1024 * 1024));
    let server = Server::start(&root, &[]);
    let (stream, queued) = queued_for_a_reader_that_reads_nothing(server.port(), "/1m.bin");
    assert!(
        queued <= UNSENT_BOUND_AND_WINDOW,
        "{queued} bytes queued in the kernel for a client that reads nothing"
    );
    // The bound only paces the transfer: once read, the whole file arrives.
    let mut conn = Conn::new(stream);
    let res = conn.read_response(false);
    assert_eq!(res.status, 200);
    assert_eq!(res.body.len(), 1024 * 1024);
}

/// Out of file descriptors, accepting pauses (half a second, as nginx's does) and
/// is said now and then, not once for every connection waiting; the server takes
/// connections again when descriptors are free.
#[test]
fn running_out_of_descriptors_pauses_accepting_quietly() {
    let (_t, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--nofile=64:64")
        .arg(env!("CARGO_BIN_EXE_wharf"))
        .args(loopback_args(&root, &["--workers", "1", "--quiet"]))
        .env("WHARF_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = Server::spawn_command(cmd);
    let held: Vec<_> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(server.addr()).ok())
        .collect();
    let failures = || {
        server
            .stderr_lines()
            .iter()
            .filter(|l| l.contains("accept failed"))
            .count()
    };
    server.wait_for_stderr(|l| l.contains("accept failed"), Duration::from_secs(10));
    // A second of backlog waiting: a line for each try would be twenty.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(failures(), 1, "{:?}", server.stderr_lines());
    drop(held);
    // Waits in the listen queue until the pause ends and the descriptors are free.
    assert_eq!(get(&server, "/a.txt").status, 200);
}
