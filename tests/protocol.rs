//! HTTP/1.x protocol handling over raw sockets.

mod common;

use common::*;

const ALLOW: &str = "GET, HEAD, OPTIONS";
const HTML: &str = "text/html; charset=utf-8";

fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "hello");
    write_file(&root, "b.txt", "second file");
    write_file(&root, "c.txt", "third");
    write_file(&root, "dir/x.txt", "x");
    (tmp, root)
}

fn start(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let (tmp, root) = fixture();
    let server = Server::start(&root, extra);
    (tmp, server)
}

fn raw(server: &Server, request: &str) -> Response {
    server.exchange(request.as_bytes(), false)
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let (_tmp, server) = start(&[]);
    let mut conn = Conn::open(&server);
    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let first = conn.read_response(false);
    assert_eq!(first.status, 200);
    assert_eq!(first.body, b"hello");
    conn.send(b"GET /b.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let second = conn.read_response(false);
    assert_eq!(second.status, 200);
    assert_eq!(second.body, b"second file");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_tmp, server) = start(&[]);
    let mut conn = Conn::open(&server);
    conn.send(
        b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /b.txt HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /c.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    for expected in [&b"hello"[..], b"second file", b"third"] {
        let response = conn.read_response(false);
        assert_eq!(response.status, 200);
        assert_eq!(response.body, expected);
    }
}

#[test]
fn http10_connection_closes_after_response() {
    let (_tmp, server) = start(&[]);
    let mut conn = Conn::open(&server);
    conn.send(b"GET /a.txt HTTP/1.0\r\n\r\n");
    let response = conn.read_response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    // RFC 9110 §6.2: the response carries the highest version the server speaks, and
    // says the connection closes, as it would to an HTTP/1.1 client.
    assert_eq!(response.version, 1, "status line of {response:?}");
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    let rest = conn
        .read_to_eof()
        .expect("server should close the HTTP/1.0 connection");
    assert!(rest.is_empty(), "unexpected bytes after response: {rest:?}");
}

#[test]
fn http10_keep_alive_keeps_connection_open() {
    let (_tmp, server) = start(&[]);
    let mut conn = Conn::open(&server);
    conn.send(b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let first = conn.read_response(false);
    assert_eq!(first.status, 200);
    assert_eq!(first.body, b"hello");
    assert_eq!(first.version, 1);
    assert_eq!(first.header("connection").as_deref(), Some("keep-alive"));
    conn.send(b"GET /b.txt HTTP/1.0\r\n\r\n");
    let second = conn
        .try_read_response(false)
        .expect("second request on an HTTP/1.0 keep-alive connection");
    assert_eq!(second.status, 200);
    assert_eq!(second.body, b"second file");
}

#[test]
fn pipelined_http10_responses_are_labelled_http11() {
    let (_tmp, server) = start(&[]);
    let mut conn = Conn::open(&server);
    conn.send(
        b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\
          HEAD /b.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\
          GET /missing HTTP/1.0\r\n\r\n",
    );
    let first = conn.read_response(false);
    let second = conn.read_response(true);
    let third = conn.read_response(false);
    assert_eq!((first.status, first.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(second.status, 200);
    assert_eq!(second.header("content-length").as_deref(), Some("11"));
    assert_eq!(third.status, 404);
    for r in [&first, &second, &third] {
        assert_eq!(r.version, 1, "status line of {r:?}");
    }
    assert_eq!(third.header("connection").as_deref(), Some("close"));
    assert!(conn.read_to_eof().is_ok_and(|rest| rest.is_empty()));
}

#[test]
fn http11_without_host_is_bad_request() {
    let (_tmp, server) = start(&[]);
    let response = raw(&server, "GET /a.txt HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(response.status, 400);
}

#[test]
fn duplicate_host_is_bad_request() {
    let (_tmp, server) = start(&[]);
    let response = raw(
        &server,
        "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nHost: other\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 400);
}

#[test]
fn http10_without_host_is_served() {
    let (_tmp, server) = start(&[]);
    let response = raw(&server, "GET /a.txt HTTP/1.0\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
}

#[test]
fn long_request_target_is_uri_too_long() {
    let (_tmp, server) = start(&[]);
    let target = format!("/{}", "a".repeat(9000));
    let response = server.exchange(&request_bytes("GET", &target, &[]), false);
    assert_eq!(response.status, 414);
}

#[test]
fn oversized_header_is_rejected() {
    let (_tmp, server) = start(&[]);
    let big = "x".repeat(17_000);
    let response = server.exchange(&request_bytes("GET", "/a.txt", &[("X-Big", &big)]), false);
    assert_eq!(response.status, 431);
}

#[test]
fn many_headers_over_limit_are_rejected() {
    let (_tmp, server) = start(&[]);
    let value = "y".repeat(500);
    let names: Vec<String> = (0..40).map(|i| format!("X-Filler-{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), value.as_str())).collect();
    let response = server.exchange(&request_bytes("GET", "/a.txt", &headers), false);
    assert_eq!(response.status, 431);
}

#[test]
fn max_header_size_flag_raises_limit() {
    let (_tmp, server) = start(&["--max-header-size", "32768"]);
    let big = "x".repeat(20_000);
    let response = server.exchange(&request_bytes("GET", "/a.txt", &[("X-Big", &big)]), false);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
}

#[test]
fn unsupported_methods_get_405_with_allow() {
    let (_tmp, server) = start(&[]);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let response = request(&server, method, "/a.txt", &[("Content-Length", "0")]);
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.header("allow").as_deref(), Some(ALLOW), "{method}");
    }
}

#[test]
fn a_later_minor_version_is_served_as_http_1_1() {
    let (_tmp, server) = start(&[]);
    for version in ["HTTP/1.2", "HTTP/1.9"] {
        let bytes = server.send_raw(
            format!("GET /a.txt {version}\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(
            bytes.starts_with(b"HTTP/1.1 200 "),
            "{version}: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn unknown_methods_are_not_implemented() {
    let (_tmp, server) = start(&[]);
    for method in ["FOO", "get", "PROPFIN"] {
        let response = raw(
            &server,
            &format!("{method} /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(response.status, 501, "{method}");
    }
    // WebDAV's are known, and not allowed where nothing may be written.
    for method in ["PROPFIND", "LOCK", "MKCOL"] {
        let response = raw(
            &server,
            &format!("{method} /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(response.status, 405, "{method}");
    }
    for method in ["TRACE", "CONNECT"] {
        let target = if method == "CONNECT" {
            "localhost:80"
        } else {
            "/a.txt"
        };
        let response = raw(
            &server,
            &format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        );
        assert!(
            matches!(response.status, 400 | 405),
            "{method}: {}",
            response.status
        );
    }
}

#[test]
fn hosts_and_targets_with_userinfo_or_bad_ports_are_bad_requests() {
    let (_tmp, server) = start(&[]);
    let ask = |host: &str, target: &str| {
        raw(
            &server,
            &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .status
    };
    for host in ["u@x", "x:abc", "x:8o", "[::1", "[::1]x", "[nope]:80", "a b"] {
        assert_eq!(ask(host, "/a.txt"), 400, "Host: {host}");
    }
    for host in [
        "localhost",
        "localhost:8000",
        "127.0.0.1:1",
        "[::1]:80",
        "a%20b",
        "x:",
    ] {
        assert_eq!(ask(host, "/a.txt"), 200, "Host: {host}");
    }
    assert_eq!(ask("x", "http://u@x/a.txt"), 400, "userinfo in the target");
    assert_eq!(ask("x", "http://x/a.txt"), 200, "absolute form");
}

#[test]
fn transfer_codings_other_than_one_chunked_are_refused() {
    let (_tmp, server) = start(&[]);
    let send = |codings: &[&str]| {
        let lines: String = codings
            .iter()
            .map(|c| format!("Transfer-Encoding: {c}\r\n"))
            .collect();
        raw(
            &server,
            &format!("GET /a.txt HTTP/1.1\r\nHost: x\r\n{lines}\r\n0\r\n\r\n"),
        )
        .status
    };
    assert_eq!(send(&["gzip, chunked"]), 501);
    assert_eq!(send(&["gzip", "chunked"]), 501);
    assert_eq!(send(&["chunked", "chunked"]), 400);
    assert_eq!(send(&["chunked, chunked"]), 400);
    assert_eq!(send(&["chunked"]), 200);
}

/// Sends `requests` (a refused one, then another behind it) on a fresh connection and
/// returns the first answer, a 400 that says `Connection: close` and after which the
/// server closes without answering what followed.
fn refused_and_closed(server: &Server, requests: &[u8]) -> Response {
    let mut conn = Conn::open(server);
    conn.send(requests);
    let response = conn.read_response(false);
    let what = String::from_utf8_lossy(requests);
    assert_eq!(response.status, 400, "{what:?}");
    assert_eq!(
        response.headers_all("connection"),
        ["close"],
        "{what:?}: {response:?}"
    );
    let rest = conn.read_to_eof().expect("the connection closes");
    assert!(rest.is_empty(), "{what:?}: went on to answer {rest:?}");
    response
}

#[test]
fn a_bad_request_ends_the_connection() {
    let (_tmp, server) = start(&[]);
    for bad in [
        "GET /a.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        "GET /a.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /a.txt HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n",
    ] {
        let requests = format!("{bad}GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        refused_and_closed(&server, requests.as_bytes());
    }
}

#[test]
fn stray_percent_signs_in_the_path_are_bad_requests() {
    let (_tmp, server) = start(&[]);
    for target in ["/index%zz.txt", "/a.txt%", "/%4"] {
        assert_eq!(request(&server, "GET", target, &[]).status, 400, "{target}");
    }
    assert_eq!(request(&server, "GET", "/%61.txt", &[]).status, 200);
}

#[test]
fn an_unread_request_body_does_not_cost_the_client_its_answer() {
    let (_tmp, server) = start(&[]);
    // The client is still sending a body the server never reads when the answer is
    // complete; closing with those bytes unread would reset the connection and the
    // client would see an error instead of the 405.
    for _ in 0..3 {
        let mut conn = Conn::open(&server);
        let head = "POST /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n";
        conn.send(head.as_bytes());
        conn.send(&vec![b'x'; 1_000_000]);
        let response = conn
            .try_read_response(false)
            .expect("the 405 arrives intact");
        assert_eq!(response.status, 405);
        assert_eq!(response.header("allow").as_deref(), Some(ALLOW));
    }
}

#[test]
fn small_request_bodies_are_read_so_the_connection_goes_on() {
    let (_tmp, server) = start(&[]);
    let mut conn = Conn::open(&server);
    // A POST with a body (405), then a GET with a chunked body, then a plain GET:
    // each body is read and dropped, and the pipelined requests behind are answered.
    conn.send(
        b"POST /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
          GET /b.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n0\r\n\r\n\
          GET /c.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let post = conn.read_response(false);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("connection"), None, "{post:?}");
    let chunked = conn.read_response(false);
    assert_eq!(
        (chunked.status, chunked.body.as_slice()),
        (200, &b"second file"[..])
    );
    let last = conn.read_response(false);
    assert_eq!((last.status, last.body.as_slice()), (200, &b"third"[..]));
}

#[test]
fn a_body_sent_after_its_head_leaves_the_connection_idle_not_timed_out() {
    let (_tmp, server) = start(&["--header-timeout", "1s"]);
    let mut conn = Conn::open(&server);
    conn.send(b"POST /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n");
    // The body follows in a later segment, as browsers send it.
    std::thread::sleep(std::time::Duration::from_millis(100));
    conn.send(b"hello");
    assert_eq!(conn.read_response(false).status, 405);
    // Idle for longer than the header timeout (but well within the idle timeout):
    // the body's bytes must not have been taken for the start of another request.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    conn.send(b"GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let next = conn
        .try_read_response(false)
        .expect("the connection was kept for the next request");
    assert_eq!(
        (next.status, next.body.as_slice()),
        (200, &b"second file"[..])
    );
}

#[test]
fn http10_keep_alive_clients_are_told_when_a_refusal_closes() {
    let (_tmp, server) = start(&[]);
    let response = refused_and_closed(
        &server,
        b"GET /a%zz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b.txt HTTP/1.0\r\n\r\n",
    );
    assert_eq!(response.version, 1);
}

#[test]
fn a_malformed_chunked_body_is_a_bad_request_and_ends_the_connection() {
    let (_tmp, server) = start(&[]);
    for body in ["zz\r\nhello\r\n0\r\n\r\n", "5\r\nhello world\r\n0\r\n\r\n"] {
        let requests = format!(
            "GET /a.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}\
             GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n"
        );
        refused_and_closed(&server, requests.as_bytes());
    }
}

#[test]
fn a_client_waiting_for_100_continue_gets_the_answer_instead() {
    let (_tmp, server) = start(&[]);
    let mut conn = Conn::open(&server);
    conn.send(
        b"PUT /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let response = conn.read_response(false);
    assert_eq!(response.status, 405, "{response:?}");
}

#[test]
fn request_lines_up_to_64_kib_get_414_not_431() {
    let (_tmp, server) = start(&[]);
    for len in [9_000, 30_000, 65_000, 70_000] {
        let target = format!("/{}", "a".repeat(len));
        let response = server.exchange(&request_bytes("GET", &target, &[]), false);
        assert_eq!(response.status, 414, "target of {len} bytes");
    }
    // Headers past the limit are still 431, whatever the size.
    for len in [20_000, 100_000] {
        let big = "x".repeat(len);
        let response = server.exchange(&request_bytes("GET", "/a.txt", &[("X-Big", &big)]), false);
        assert_eq!(response.status, 431, "header of {len} bytes");
    }
}

#[test]
fn options_on_file_lists_allowed_methods() {
    let (_tmp, server) = start(&[]);
    let response = request(&server, "OPTIONS", "/a.txt", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("allow").as_deref(), Some(ALLOW));
    assert_eq!(response.content_length(), Some(0));
}

#[test]
fn options_asterisk_is_empty_with_content_length_zero() {
    let (_tmp, server) = start(&[]);
    let response = request(&server, "OPTIONS", "*", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.content_length(), Some(0));
    assert!(response.body.is_empty());
}

#[test]
fn malformed_request_lines_are_bad_request() {
    let (_tmp, server) = start(&[]);
    let requests = [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1 extra\r\nHost: localhost\r\n\r\n",
        "GET / HTTX/1.1\r\nHost: localhost\r\n\r\n",
    ];
    for request in requests {
        let bytes = server.send_raw(request.as_bytes());
        let response = parse_response(&bytes, false);
        assert_eq!(response.status, 400, "{request:?}");
    }
}

#[test]
fn unsupported_http_versions_are_rejected() {
    let (_tmp, server) = start(&[]);
    for version in ["HTTP/2.0", "HTTP/3.0"] {
        let request = format!("GET /a.txt {version}\r\nHost: localhost\r\n\r\n");
        let bytes = server.send_raw(request.as_bytes());
        let response = parse_response(&bytes, false);
        assert_eq!(response.status, 505, "{version}");
        assert_eq!(response.content_length(), Some(response.body.len()));
        assert!(response.body_text().contains("505"));
    }
    // A HEAD's 505 has the GET's length and no body (the server closes after it).
    let bytes = server.send_raw(b"HEAD /a.txt HTTP/2.0\r\nHost: localhost\r\n\r\n");
    let head = parse_response(&bytes, true);
    assert_eq!(head.status, 505);
    assert!(head.content_length().is_some_and(|n| n > 0));
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    assert_eq!(bytes.len(), end, "no body after a HEAD's head");
    // A malformed version is a bad request, not an unsupported one.
    let bytes = server.send_raw(b"GET /a.txt HTTP/x.y\r\nHost: localhost\r\n\r\n");
    assert_eq!(parse_response(&bytes, false).status, 400);
}

#[test]
fn error_responses_are_html_with_exact_length() {
    let (_tmp, server) = start(&[]);
    let cases = [
        (request(&server, "GET", "/missing.txt", &[]), 404),
        (
            request(&server, "POST", "/a.txt", &[("Content-Length", "0")]),
            405,
        ),
        (request(&server, "GET", "/a.txt%00", &[]), 400),
    ];
    for (response, status) in cases {
        assert_eq!(response.status, status);
        assert_eq!(
            response.header("content-type").as_deref(),
            Some(HTML),
            "{status}"
        );
        assert_eq!(
            response.content_length(),
            Some(response.body.len()),
            "{status}: Content-Length vs body"
        );
    }
}

#[test]
fn error_body_does_not_echo_path() {
    let (_tmp, server) = start(&[]);
    let encoded = get(&server, "/%3Cscript%3Ealert(1)%3C/script%3E");
    assert_eq!(encoded.status, 404);
    let rawish = get(&server, "/<script>alert(1)</script>");
    assert!(
        matches!(rawish.status, 400 | 404),
        "raw markup: {}",
        rawish.status
    );
    for response in [encoded, rawish] {
        let body = response.body_text();
        assert!(!body.contains("<script>"), "body echoes markup: {body}");
        assert!(!body.contains("alert(1)"), "body echoes path: {body}");
    }
}

#[test]
fn crlf_in_path_cannot_inject_headers() {
    let (_tmp, root) = fixture();
    // A directory whose name contains CRLF gets a redirect built from the path.
    std::fs::create_dir(root.join("x\r\nX-Injected: yes")).unwrap();
    let server = Server::start(&root, &[]);
    for target in [
        "/dir%0d%0aX-Injected:%20yes",
        "/x%0d%0aX-Injected:%20yes",
        "/dir?%0d%0aX-Injected:%20yes",
        "/dir%0aX-Injected:%20yes",
    ] {
        let response = get(&server, target);
        assert!(
            response.headers_all("x-injected").is_empty(),
            "{target}: injected header"
        );
        for (name, value) in &response.headers {
            assert!(
                !value.contains(&b'\r') && !value.contains(&b'\n'),
                "{target}: CR/LF in header {name}"
            );
        }
    }
}

#[test]
fn slow_header_client_is_disconnected() {
    let (_tmp, server) = start(&["--header-timeout", "1"]);
    let mut conn = Conn::open(&server);
    conn.send(b"GET / HTTP/1.1\r\n");
    assert!(
        conn.wait_for_close(),
        "server kept a connection with an incomplete header open"
    );
}

#[test]
fn slow_clients_do_not_block_others() {
    let (_tmp, server) = start(&[]);
    let slow: Vec<Conn> = (0..50)
        .map(|_| {
            let mut conn = Conn::open(&server);
            conn.send(b"GET / HTTP/1.1\r\n");
            conn
        })
        .collect();
    let response = get(&server, "/a.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    drop(slow);
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let (_tmp, server) = start(&["--idle-timeout", "1"]);
    let mut conn = Conn::open(&server);
    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let response = conn.read_response(false);
    assert_eq!(response.status, 200);
    assert!(conn.wait_for_close(), "idle connection was not closed");
}

#[test]
fn request_split_across_writes_is_served() {
    let (_tmp, server) = start(&[]);
    let mut conn = Conn::open(&server);
    let request = b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    for chunk in request.chunks(7) {
        conn.send(chunk);
    }
    let response = conn.read_response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
}
