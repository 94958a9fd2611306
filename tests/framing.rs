//! Malformed and unusual HTTP/1.1 framings (RFC 9112), table-driven: the status
//! each request gets and whether the connection then closes — so that no framing
//! wharf accepts can be read two ways (request smuggling) and no bad one is
//! answered as if it were good.

mod common;

use common::*;

/// What must happen to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Answered with this status, and the request behind it on the same
    /// connection answered too.
    Kept(u16),
    /// Answered with this status, then the connection closed without answering
    /// the request behind it.
    Closed(u16),
}

/// The request sent behind each case, to see whether the connection goes on.
const NEXT: &str = "GET /b.txt HTTP/1.1\r\nHost: x\r\n\r\n";

fn fate(server: &Server, request: &str) -> Fate {
    let mut conn = Conn::open(server);
    conn.send(format!("{request}{NEXT}").as_bytes());
    let first = conn.read_response(false);
    match conn.try_read_response(false) {
        Ok(second) => {
            assert_eq!(second.status, 200, "{request:?}: the next request");
            assert_eq!(second.body_text(), "b", "{request:?}: the next request");
            Fate::Kept(first.status)
        }
        // A connection that hangs is neither: it must have been closed.
        Err(e) if is_timeout(&e) => panic!("{request:?}: neither answered nor closed"),
        Err(_) => {
            assert!(
                conn.wait_for_close_within(std::time::Duration::from_secs(10)),
                "{request:?}: the connection is closed"
            );
            Fate::Closed(first.status)
        }
    }
}

#[test]
fn every_framing_gets_its_status_and_connection_fate() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    write_file(&root, "b.txt", "b");
    let server = Server::start(&root, &[]);
    let cases: &[(&str, &str, Fate)] = &[
        ("plain", "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n", Fate::Kept(200)),
        (
            "identical Content-Length twice",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
            Fate::Kept(200),
        ),
        (
            "conflicting Content-Length",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi",
            Fate::Closed(400),
        ),
        (
            "Content-Length list with two values",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 3\r\n\r\nhi",
            Fate::Closed(400),
        ),
        (
            "signed Content-Length",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\nhi",
            Fate::Closed(400),
        ),
        (
            "negative Content-Length",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "Content-Length beyond 64 bits",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "Transfer-Encoding and Content-Length (TE wins, then the connection closes)",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            Fate::Closed(200),
        ),
        // Not chunked last: the length cannot be known (RFC 9112 §6.3: 400, close).
        (
            "obfuscated Transfer-Encoding value",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            Fate::Closed(400),
        ),
        // hyper's parser wants the field's last member to be `chunked` itself; an
        // empty element after it (which RFC 9110 §5.6.1 lets a list have) is
        // refused, safely: nothing of it is read as a body (nginx answers 501).
        (
            "Transfer-Encoding with a trailing comma",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "whitespace before the colon",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "obs-fold",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "bare CR in a field value",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "NUL in a field value",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "control byte in a field name",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX\x01A: a\r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "chunk extensions",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;name=value\r\nhi\r\n0\r\n\r\n",
            Fate::Kept(200),
        ),
        (
            "trailer fields",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Trailer: 1\r\n\r\n",
            Fate::Kept(200),
        ),
        (
            "trailer line ended by a bare LF",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Trailer: 1\n\r\n",
            Fate::Closed(400),
        ),
        (
            "trailer section ended by a bare LF",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\n",
            Fate::Closed(400),
        ),
        (
            "absolute-form target with a port that is not a number",
            "GET http://x:abc/a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "chunk size beyond 64 bits",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhi\r\n0\r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "chunk longer than its size",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "absolute-form target",
            "GET http://x/a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            Fate::Kept(200),
        ),
        (
            "an empty Host (an http URI with no host, RFC 9110 §4.2.1)",
            "GET /a.txt HTTP/1.1\r\nHost: \r\n\r\n",
            Fate::Closed(400),
        ),
        (
            "an empty Host beside an absolute-form target, which names the host",
            "GET http://x/a.txt HTTP/1.1\r\nHost: \r\n\r\n",
            Fate::Kept(200),
        ),
        (
            "two spaces in the request line",
            "GET  /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            Fate::Closed(400),
        ),
    ];
    let mut wrong = Vec::new();
    for (name, request, expected) in cases {
        let got = fate(&server, request);
        if got != *expected {
            wrong.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_body_nobody_reads_that_stops_short_is_answered_with_close() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let server = Server::start(&root, &[]);
    let mut conn = Conn::open(&server);
    // Two of the five bytes announced never come: wharf stops waiting for them,
    // answers, and closes, saying so (RFC 9112 §9.6).
    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel");
    let res = conn.read_response(false);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("connection").as_deref(), Some("close"));
    assert!(conn.wait_for_close_within(std::time::Duration::from_secs(10)));
}
