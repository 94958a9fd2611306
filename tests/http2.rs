//! HTTP/2: prior knowledge (h2c) on the plain port, h2 over TLS, many concurrent
//! streams on one connection, and rapid-reset (CVE-2023-44487) resilience.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::client::*;
use common::*;
use http_body_util::Full;
use hyper::client::conn::http2::SendRequest;

const A_TXT: &str = "hello over HTTP/2\n";
/// Distinct files served by the concurrency tests.
const FILES: usize = 20;

fn file_body(i: usize) -> String {
    // Sizes differ per file so a mixed-up response cannot pass.
    format!(
        "file {i}\n{}",
        compressible_text(&format!("f{i}"), 100 + i * 997)
    )
}

fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", A_TXT);
    for i in 0..FILES {
        write_file(&root, &format!("many/{i}.txt"), file_body(i));
    }
    (tmp, root)
}

/// An HTTPS server with a fresh certificate; returns the certificate to trust.
fn start_tls(root: &Path, tmp: &Path) -> (Server, TestCert) {
    let cert = localhost_cert();
    let (c, k) = write_cert(tmp, &cert);
    let server = Server::start_https(
        root,
        &[
            "--tls-cert",
            c.to_str().unwrap(),
            "--tls-key",
            k.to_str().unwrap(),
        ],
    );
    (server, cert)
}

async fn h2c_connect(server: &Server) -> SendRequest<Full<Bytes>> {
    h2_handshake(tcp(server.addr()).await).await
}

async fn h2_tls_connect(server: &Server, cert: &TestCert) -> SendRequest<Full<Bytes>> {
    let config = client_config(std::slice::from_ref(&cert.der), &[b"h2"], &[]);
    let stream = tls_connect(server.addr(), config, "localhost").await;
    assert_eq!(alpn(&stream).as_deref(), Some(&b"h2"[..]), "ALPN");
    h2_handshake(stream).await
}

async fn h2_get(sender: &mut SendRequest<Full<Bytes>>, base: &str, path: &str) -> Reply {
    h2_send(
        sender,
        build_request("GET", &format!("{base}{path}"), &[], b""),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_get() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    let base = format!("http://localhost:{}", server.port());
    let mut h2 = h2c_connect(&server).await;
    let reply = h2_get(&mut h2, &base, "/a.txt").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.text(), A_TXT);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    // A second request on the same connection.
    let again = h2_get(&mut h2, &base, "/many/3.txt").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.text(), file_body(3));
    let missing = h2_get(&mut h2, &base, "/nope.txt").await;
    assert_eq!(missing.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_port_serves_http1_and_h2c_side_by_side() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    let base = format!("http://localhost:{}", server.port());
    let mut h2 = h2c_connect(&server).await;
    assert_eq!(h2_get(&mut h2, &base, "/a.txt").await.text(), A_TXT);

    // Raw HTTP/1.1 on the same port, while the h2c connection stays open.
    let response = get(&server, "/a.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.version, 1, "answered as HTTP/1.1");
    assert_eq!(response.body, A_TXT.as_bytes());

    // hyper's HTTP/1 client too.
    let mut h1 = h1_handshake(tcp(server.addr()).await).await;
    let host = format!("localhost:{}", server.port());
    let reply = h1_send(
        &mut h1,
        build_request("GET", "/many/1.txt", &[("host", &host)], b""),
    )
    .await;
    assert_eq!(reply.version, http::Version::HTTP_11);
    assert_eq!(reply.text(), file_body(1));

    // And the h2c connection still works afterwards.
    assert_eq!(
        h2_get(&mut h2, &base, "/many/2.txt").await.text(),
        file_body(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_get() {
    let (tmp, root) = fixture();
    let (server, cert) = start_tls(&root, tmp.path());
    let base = format!("https://localhost:{}", server.port());
    let mut h2 = h2_tls_connect(&server, &cert).await;
    let reply = h2_get(&mut h2, &base, "/a.txt").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.text(), A_TXT);
    let again = h2_get(&mut h2, &base, "/many/7.txt").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.text(), file_body(7));
}

/// `count` GETs at once on one connection, spread over the fixture files; every
/// response must carry its own file.
async fn many_concurrent_streams(sender: SendRequest<Full<Bytes>>, base: &str, count: usize) {
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        let mut sender = sender.clone();
        let i = n % FILES;
        let uri = format!("{base}/many/{i}.txt");
        tasks.push(tokio::spawn(async move {
            let reply = h2_send(&mut sender, build_request("GET", &uri, &[], b"")).await;
            (n, i, reply)
        }));
    }
    let mut done = 0;
    for task in tasks {
        let (n, i, reply) = timed("concurrent stream", task)
            .await
            .expect("request task panicked");
        assert_eq!(reply.status, 200, "stream {n} for /many/{i}.txt");
        assert_eq!(reply.version, http::Version::HTTP_2, "stream {n}");
        assert!(
            reply.body == file_body(i).as_bytes(),
            "stream {n}: wrong body for /many/{i}.txt ({} bytes, expected {})",
            reply.body.len(),
            file_body(i).len()
        );
        done += 1;
    }
    assert_eq!(done, count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_streams_on_h2c() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &["--quiet"]);
    let base = format!("http://localhost:{}", server.port());
    let h2 = h2c_connect(&server).await;
    many_concurrent_streams(h2, &base, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_streams_on_h2_over_tls() {
    let (tmp, root) = fixture();
    let (server, cert) = start_tls(&root, tmp.path());
    let base = format!("https://localhost:{}", server.port());
    let h2 = h2_tls_connect(&server, &cert).await;
    many_concurrent_streams(h2, &base, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_field_naming_another_authority_is_a_bad_request() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &["--quiet"]);
    let mut sender = h2c_connect(&server).await;
    let base = format!("http://localhost:{}", server.port());
    let url = format!("{base}/a.txt");
    let same = format!("localhost:{}", server.port());
    let agreeing = h2_send(
        &mut sender,
        build_request("GET", &url, &[("host", &same)], b""),
    )
    .await;
    assert_eq!(agreeing.status, 200);
    // The same authority in other letter case.
    let upper = format!("LOCALHOST:{}", server.port());
    let reply = h2_send(
        &mut sender,
        build_request("GET", &url, &[("host", &upper)], b""),
    )
    .await;
    assert_eq!(reply.status, 200, "Host: {upper}");
    let other = h2_send(
        &mut sender,
        build_request("GET", &url, &[("host", "elsewhere.test")], b""),
    )
    .await;
    assert_eq!(other.status, 400);
    // A stream-level answer: the connection serves on.
    assert_eq!(h2_get(&mut sender, &base, "/a.txt").await.status, 200);
}

/// Open and at once cancel `count` streams on one h2c connection with the `h2`
/// crate. Returns how many resets were sent before the server refused more (a
/// GOAWAY from the server is an acceptable defence).
async fn rapid_reset(server: &Server, count: usize) -> usize {
    let io = tcp(server.addr()).await;
    let (send, conn) = timed("h2 handshake", h2::client::handshake(io))
        .await
        .expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let uri = format!("http://localhost:{}/a.txt", server.port());
    let mut sent = 0;
    let mut handle = Some(send);
    while sent < count {
        let Some(send) = handle.take() else { break };
        // An error means the server closed the connection (GOAWAY).
        let Ok(mut send) = timed("h2 ready", send.ready()).await else {
            break;
        };
        let request = http::Request::get(&uri).body(()).unwrap();
        let Ok((response, mut stream)) = send.send_request(request, true) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        drop(response);
        sent += 1;
        handle = Some(send);
    }
    drop(handle);
    // The connection ends: either the server sent GOAWAY, or we dropped our handle.
    let _ = timed("abusive connection to end", driver).await;
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_does_not_take_the_server_down() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &["--quiet"]);
    let sent = rapid_reset(&server, 500).await;
    assert!(sent > 0, "not a single stream could be opened and reset");
    eprintln!("rapid reset: {sent} streams opened and reset before the connection ended");

    // A fresh HTTP/2 connection is served normally.
    let base = format!("http://localhost:{}", server.port());
    let mut h2 = h2c_connect(&server).await;
    let reply = h2_get(&mut h2, &base, "/a.txt").await;
    assert_eq!(reply.status, 200, "after {sent} rapid resets");
    assert_eq!(reply.text(), A_TXT);
    // And so is HTTP/1.1.
    let response = get(&server, "/a.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, A_TXT.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_connections_in_a_row_leave_other_clients_served() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &["--quiet"]);
    let base = format!("http://localhost:{}", server.port());
    // A well-behaved client connected before the abuse keeps being served.
    let mut good = h2c_connect(&server).await;
    assert_eq!(h2_get(&mut good, &base, "/a.txt").await.text(), A_TXT);
    for round in 0..3 {
        let sent = rapid_reset(&server, 500).await;
        assert!(sent > 0, "round {round}: no stream opened");
        let reply = h2_get(&mut good, &base, &format!("/many/{round}.txt")).await;
        assert_eq!(reply.status, 200, "round {round}");
        assert_eq!(reply.text(), file_body(round), "round {round}");
    }
}

/// One HTTP/2 frame: length, type, flags, stream, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The client preface, an empty SETTINGS frame and a HEADERS frame (END_HEADERS, the
/// stream left open) asking `GET /a.txt` on stream 1, with a `content-length` field
/// when `content_length` is given. HPACK: `:method GET` and `:scheme http` from the
/// static table, `:path`, `:authority x` and `content-length` as literals without
/// indexing.
fn opening_get_a_txt(content_length: Option<&str>) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    let mut block = vec![0x82, 0x86];
    block.extend([0x04, 6]);
    block.extend(b"/a.txt");
    block.extend([0x01, 1, b'x']);
    if let Some(len) = content_length {
        block.extend([0x0f, 0x0d, len.len() as u8]);
        block.extend(len.as_bytes());
    }
    out.extend(frame(0x1, 0x4, 1, &block)); // HEADERS, END_HEADERS
    out
}

/// Frames read from `stream` until `stop` says so or the read times out; what stop
/// said, or `"quiet"` on the timeout, `"closed"` at the end.
fn read_frames(
    stream: &mut std::net::TcpStream,
    buf: &mut Vec<u8>,
    stop: impl Fn(u8, u32, &[u8]) -> Option<&'static str>,
) -> &'static str {
    use std::io::Read;
    let mut chunk = [0u8; 4096];
    loop {
        let mut at = 0;
        while buf.len() >= at + 9 {
            let len =
                ((buf[at] as usize) << 16) | ((buf[at + 1] as usize) << 8) | buf[at + 2] as usize;
            if buf.len() < at + 9 + len {
                break;
            }
            let id = u32::from_be_bytes([buf[at + 5], buf[at + 6], buf[at + 7], buf[at + 8]])
                & 0x7fff_ffff;
            if let Some(said) = stop(buf[at + 3], id, &buf[at + 9..at + 9 + len]) {
                return said;
            }
            at += 9 + len;
        }
        buf.drain(..at);
        match stream.read(&mut chunk) {
            Ok(0) => return "closed",
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => return "quiet",
            Err(e) if is_reset(&e) => return "closed",
            Err(e) => panic!("{e}"),
        }
    }
}

/// An http request names its authority in `:authority` or Host; with neither it is
/// malformed (RFC 9113 §8.3.1): 400, where the same request with `:authority` is
/// served.
#[test]
fn a_request_without_authority_or_host_is_a_bad_request() {
    use std::io::Write;
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    let mut stream = connect(server.addr());
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
                                       // Stream 1: `:method GET`, `:scheme http`, `:path /a.txt`, nothing else.
    let mut block = vec![0x82, 0x86, 0x04, 6];
    block.extend(b"/a.txt");
    out.extend(frame(0x1, 0x5, 1, &block)); // HEADERS, END_HEADERS | END_STREAM
                                            // Stream 3: the same with `:authority x`.
    block.extend([0x01, 1, b'x']);
    out.extend(frame(0x1, 0x5, 3, &block));
    stream.write_all(&out).unwrap();
    let mut buf = Vec::new();
    // The first field of each answer: `:status` from HPACK's static table (0x88 is
    // 200, 0x8c is 400).
    let statuses = std::cell::RefCell::new([None::<u8>; 2]);
    let said = read_frames(&mut stream, &mut buf, |kind, id, payload| {
        let mut seen = statuses.borrow_mut();
        let slot = match id {
            1 => 0,
            3 => 1,
            _ => return None,
        };
        match kind {
            0x1 => seen[slot] = payload.first().copied(),
            // A stream error instead of a 400 is what the RFC allows too.
            0x3 => seen[slot] = Some(0x8c),
            _ => {}
        }
        seen.iter().all(Option::is_some).then_some("both")
    });
    assert_eq!(said, "both", "answers: {:?}", statuses.borrow());
    assert_eq!(statuses.borrow()[0], Some(0x8c), "no authority: 400");
    assert_eq!(statuses.borrow()[1], Some(0x88), ":authority given: 200");
}

/// A request whose DATA frames do not add up to its Content-Length is malformed
/// (RFC 9113 §8.1.1): a stream error, never answered — even by a handler that does
/// not read bodies, which must therefore not answer before the body is in.
#[test]
fn content_length_that_data_frames_contradict_is_a_stream_error() {
    use std::io::Write;
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    let mut stream = connect(server.addr());
    let mut out = opening_get_a_txt(Some("5"));
    out.extend(frame(0x0, 0, 1, b"ab")); // DATA
    stream.write_all(&out).unwrap();
    // While the body is incomplete, no answer: a window in which one would come
    // at once if the handler answered without the body.
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut buf = Vec::new();
    let early = read_frames(&mut stream, &mut buf, |kind, id, _| {
        (kind == 0x1 && id == 1).then_some("answered")
    });
    assert_eq!(early, "quiet", "answered before the body was complete");
    // The rest: 3 bytes in all, not 5.
    stream.write_all(&frame(0x0, 0x1, 1, b"c")).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let verdict = read_frames(&mut stream, &mut buf, |kind, id, _| match (kind, id) {
        (0x1, 1) => Some("answered"),
        (0x3, 1) | (0x7, _) => Some("refused"),
        _ => None,
    });
    assert!(matches!(verdict, "refused" | "closed"), "{verdict}");
}

/// What a request with a two-byte body followed by a trailer section `trailers`
/// (an HPACK block) gets on stream 1: "answered", or "protocol error" for a
/// RST_STREAM or GOAWAY with PROTOCOL_ERROR.
fn request_with_trailers(server: &Server, trailers: &[u8]) -> &'static str {
    use std::io::Write;
    let mut stream = connect(server.addr());
    let mut out = opening_get_a_txt(Some("2"));
    out.extend(frame(0x0, 0, 1, b"ab")); // DATA
    out.extend(frame(0x1, 0x5, 1, trailers)); // HEADERS, END_HEADERS | END_STREAM
    stream.write_all(&out).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    read_frames(&mut stream, &mut buf, |kind, id, payload| {
        let protocol_error = payload.len() >= 4 && payload[payload.len() - 4..] == [0, 0, 0, 1];
        match (kind, id) {
            (0x1, 1) => Some("answered"),
            (0x3, 1) if protocol_error => Some("protocol error"),
            // GOAWAY: last stream id, then the error code.
            (0x7, 0) if payload.len() >= 8 && payload[4..8] == [0, 0, 0, 1] => {
                Some("protocol error")
            }
            (0x3, _) | (0x7, _) => Some("another error"),
            _ => None,
        }
    })
}

/// Trailers must not carry pseudo-header fields (RFC 9113 §8.1): such a request is
/// malformed, a stream error of type PROTOCOL_ERROR; the same request with a plain
/// trailer field is answered.
#[test]
fn a_pseudo_header_in_trailers_is_a_protocol_error() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    // x-t: 1, a literal field without indexing.
    let plain = [0x00, 3, b'x', b'-', b't', 1, b'1'];
    assert_eq!(request_with_trailers(&server, &plain), "answered");
    // :path /b, a literal with the static table's :path name, then x-t: 1.
    let mut pseudo = vec![0x04, 2, b'/', b'b'];
    pseudo.extend(plain);
    assert_eq!(request_with_trailers(&server, &pseudo), "protocol error");
    // :status 200 (indexed), also a pseudo-header field.
    assert_eq!(request_with_trailers(&server, &[0x88]), "protocol error");
}

/// A request whose stream stays open without a Content-Length is read to its end
/// before it is answered, so that what makes it malformed counts whenever it comes:
/// here a second HEADERS frame without END_STREAM (RFC 9113 §8.1), a stream error
/// rather than an answer.
#[test]
fn a_malformed_request_is_refused_whenever_its_last_frames_come() {
    use std::io::Write;
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    let mut stream = connect(server.addr());
    // No Content-Length: the stream stays open.
    let mut out = opening_get_a_txt(None);
    out.extend(frame(0x0, 0, 1, b"ab")); // DATA
    stream.write_all(&out).unwrap();
    // A window in which an answer would come at once if it did not wait (well
    // inside the 1 s the body is waited for).
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let mut buf = Vec::new();
    let early = read_frames(&mut stream, &mut buf, |kind, id, _| {
        (kind == 0x1 && id == 1).then_some("answered")
    });
    assert_eq!(early, "quiet", "answered before the request was complete");
    // x-t: 1, in a HEADERS frame without END_STREAM: malformed.
    let fields = [0x00, 3, b'x', b'-', b't', 1, b'1'];
    stream.write_all(&frame(0x1, 0x4, 1, &fields)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let verdict = read_frames(&mut stream, &mut buf, |kind, id, payload| {
        match (kind, id) {
            (0x1, 1) => Some("answered"),
            (0x3, 1) if payload == [0, 0, 0, 1] => Some("protocol error"),
            (0x3, _) | (0x7, _) => Some("another error"),
            _ => None,
        }
    });
    assert_eq!(verdict, "protocol error");
}

/// SIGTERM reaches an h2c connection whose preface came with its first packet
/// (answered in the accept loop's first poll, before it had a task of its own): a
/// GOAWAY at once (RFC 9113 §6.8), not silence until the grace period is over.
#[test]
fn an_h2c_connection_gets_a_goaway_on_shutdown() {
    use std::io::Write;
    let (_tmp, root) = fixture();
    // Neither the grace period nor the idle timeout ends the connection first.
    let server = Server::start(&root, &["--grace-period", "120s", "--idle-timeout", "120s"]);
    let mut stream = connect(server.addr());
    let mut out = opening_get_a_txt(None);
    // END_STREAM as well, a whole GET: the flags of the HEADERS frame, after the
    // 24-byte preface and the 9-byte SETTINGS frame.
    out[24 + 9 + 4] |= 0x1;
    stream.write_all(&out).unwrap();
    let mut buf = Vec::new();
    let answered = read_frames(&mut stream, &mut buf, |kind, id, _| {
        (kind == 0x0 && id == 1).then_some("answered")
    });
    assert_eq!(answered, "answered");
    server.signal("TERM");
    // Sooner than the header timeout (10 s), which would end it too.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let verdict = read_frames(&mut stream, &mut buf, |kind, _, _| {
        (kind == 0x7).then_some("goaway")
    });
    assert_eq!(verdict, "goaway");
}

/// The preface, an empty SETTINGS frame, and a whole `GET /a.txt` on stream 1 whose
/// field block ends with `extra` (HPACK).
fn get_a_txt_with(extra: &[u8]) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    let mut block = vec![0x82, 0x86, 0x04, 6];
    block.extend(b"/a.txt");
    block.extend([0x01, 1, b'x']);
    block.extend(extra);
    out.extend(frame(0x1, 0x5, 1, &block)); // HEADERS, END_HEADERS | END_STREAM
    out
}

/// What stream 1 of `request` gets: "answered", "reset N" or "goaway N" (error code).
fn fate_of(server: &Server, request: &[u8]) -> String {
    use std::io::Write;
    let mut stream = connect(server.addr());
    stream.write_all(request).unwrap();
    let mut buf = Vec::new();
    let code = |p: &[u8], at: usize| u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
    let said = std::cell::RefCell::new(String::new());
    let verdict = read_frames(&mut stream, &mut buf, |kind, id, payload| {
        match (kind, id) {
            (0x1, 1) => Some("answered"),
            (0x3, 1) => {
                *said.borrow_mut() = format!("reset {}", code(payload, 0));
                Some("said")
            }
            (0x7, _) => {
                *said.borrow_mut() = format!("goaway {}", code(payload, 4));
                Some("said")
            }
            _ => None,
        }
    });
    match verdict {
        "said" => said.into_inner(),
        other => other.to_string(),
    }
}

/// RFC 9113 §4.3: a field block that does not decode is a COMPRESSION_ERROR (0x9);
/// §8.2.1: a field value with whitespace at either end makes the request malformed
/// (a stream error, PROTOCOL_ERROR); `TE: trailers` in any case is allowed.
#[test]
fn field_blocks_are_judged_as_rfc_9113_says() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    // Indexed field 0 (RFC 7541 §6.1), an index past both tables.
    for bad in [&[0x80u8][..], &[0xbe]] {
        assert_eq!(
            fate_of(&server, &get_a_txt_with(bad)),
            "goaway 9",
            "{bad:?}"
        );
    }
    let literal = |name: &[u8], value: &[u8]| {
        let mut out = vec![0x00, name.len() as u8];
        out.extend(name);
        out.push(value.len() as u8);
        out.extend(value);
        out
    };
    for value in [&b" lead"[..], b"trail\t"] {
        assert_eq!(
            fate_of(&server, &get_a_txt_with(&literal(b"x-a", value))),
            "reset 1",
            "{value:?}"
        );
    }
    assert_eq!(
        fate_of(&server, &get_a_txt_with(&literal(b"te", b"Trailers"))),
        "answered"
    );
    assert_eq!(
        fate_of(&server, &get_a_txt_with(&literal(b"x-a", b"in side"))),
        "answered"
    );
}

/// A control frame of a length its type does not have is a FRAME_SIZE_ERROR
/// (0x6): a connection error, but for PRIORITY's stream error (RFC 9113 §6.3-6.9);
/// an initial window over 2^31-1 a FLOW_CONTROL_ERROR (0x3, §6.5.2); a field
/// without a name is malformed, not undecodable (PROTOCOL_ERROR, 0x1).
#[test]
fn malformed_frames_get_the_error_codes_rfc_9113_names() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    let after_preface = |bad: Vec<u8>| {
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        out.extend(bad);
        out
    };
    for (what, bad, fate) in [
        (
            "SETTINGS of 5 octets",
            frame(0x4, 0, 0, &[0; 5]),
            "goaway 6",
        ),
        (
            "SETTINGS ACK with a payload",
            frame(0x4, 0x1, 0, &[0; 6]),
            "goaway 6",
        ),
        (
            "SETTINGS_INITIAL_WINDOW_SIZE 2^31",
            frame(0x4, 0, 0, &[0, 0x4, 0x80, 0, 0, 0]),
            "goaway 3",
        ),
        ("PING of 7 octets", frame(0x6, 0, 0, &[0; 7]), "goaway 6"),
        (
            "RST_STREAM of 3 octets",
            frame(0x3, 0, 1, &[0; 3]),
            "goaway 6",
        ),
        (
            "WINDOW_UPDATE of 3 octets",
            frame(0x8, 0, 0, &[0, 0, 1]),
            "goaway 6",
        ),
        ("PRIORITY of 4 octets", frame(0x2, 0, 1, &[0; 4]), "reset 6"),
    ] {
        assert_eq!(fate_of(&server, &after_preface(bad)), fate, "{what}");
    }
    let nameless = [0x00, 0, 1, b'v'];
    assert_eq!(fate_of(&server, &get_a_txt_with(&nameless)), "goaway 1");
}

/// A PUT over h2c whose client sends part of the body, then resets its stream with
/// `reason`: the file it would have replaced must stay as it was.
async fn put_reset_midway(reason: h2::Reason, announce_length: bool) {
    let (_t, root) = temp_root();
    write_file(&root, "doc.bin", "the good version");
    let server = Server::start(&root, &["--upload"]);
    let io = tcp(server.addr()).await;
    let (send, conn) = timed("h2 handshake", h2::client::handshake(io))
        .await
        .expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let mut send = timed("h2 ready", send.ready()).await.expect("ready");
    let mut request = http::Request::put(format!("http://localhost:{}/doc.bin", server.port()));
    if announce_length {
        request = request.header("content-length", "200000");
    }
    let (_response, mut stream) = send
        .send_request(request.body(()).unwrap(), false)
        .expect("request sent");
    stream
        .send_data(Bytes::from(vec![b'x'; 50_000]), false)
        .unwrap();
    // The handler is receiving once its temporary file exists.
    let receiving = poll_until(IO_TIMEOUT, || {
        std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".wharf-tmp-"))
            .then_some(())
    });
    assert!(receiving.is_some(), "the PUT never started");
    stream.send_reset(reason);
    // Done once the temporary file is gone: renamed into place, or removed.
    let done = poll_until(IO_TIMEOUT, || {
        (!std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".wharf-tmp-")))
        .then_some(())
    });
    assert!(done.is_some(), "the PUT never ended");
    let kept = std::fs::read(root.join("doc.bin")).unwrap();
    assert!(
        kept == b"the good version",
        "{reason:?}, length announced: {announce_length}: {} bytes stored",
        kept.len()
    );
    drop(send);
    driver.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_whose_stream_is_reset_stores_nothing() {
    for reason in [h2::Reason::NO_ERROR, h2::Reason::CANCEL] {
        for announce_length in [true, false] {
            put_reset_midway(reason, announce_length).await;
        }
    }
}

/// An idle HTTP/2 connection is told to go away at the idle timeout, and closed
/// even when its client never answers (no SETTINGS or PING acknowledgement).
#[test]
fn an_idle_connection_that_never_answers_is_closed() {
    use std::io::{Read, Write};
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &["--idle-timeout", "1s"]);
    let mut stream = connect(server.addr());
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // An empty SETTINGS frame, then HEADERS on stream 1 (END_STREAM | END_HEADERS):
    // GET http://localhost/a.txt, from HPACK's static table and literals.
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let mut block = vec![0x82, 0x86, 0x41, 9];
    block.extend_from_slice(b"localhost");
    block.extend_from_slice(&[0x44, 6]);
    block.extend_from_slice(b"/a.txt");
    hello.extend_from_slice(&[0, 0, block.len() as u8, 1, 0x05, 0, 0, 0, 1]);
    hello.extend_from_slice(&block);
    stream.write_all(&hello).unwrap();
    // Frames until the server closes; the type of each one seen.
    let mut seen = Vec::new();
    let mut frames = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) => panic!("not closed: {e}; frame types {frames:?}"),
        }
        while seen.len() >= 9 {
            let len =
                (usize::from(seen[0]) << 16) | (usize::from(seen[1]) << 8) | usize::from(seen[2]);
            if seen.len() < 9 + len {
                break;
            }
            frames.push(seen[3]);
            seen.drain(..9 + len);
        }
    }
    // The response (HEADERS, DATA), then GOAWAY.
    assert!(frames.contains(&1), "{frames:?}");
    assert!(frames.contains(&0), "{frames:?}");
    assert!(frames.contains(&7), "no GOAWAY: {frames:?}");
}

/// A client that keeps its flow-control window shut takes no response bytes, as an
/// HTTP/1 client that stops reading does: its connection is dropped at the idle
/// timeout, not kept (with the file it holds open) for as long as handlers may take,
/// even while it sends a PING now and then.
#[test]
fn a_stream_whose_window_stays_shut_ends_its_connection_at_the_idle_timeout() {
    use std::io::Write;
    let (_tmp, root) = fixture();
    // Past the hot cache's size: read from the file, in another task.
    write_file(&root, "big.bin", vec![7u8; 4 << 20]);
    let server = Server::start(&root, &["--idle-timeout", "1s"]);
    let mut stream = connect(server.addr());
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: no stream may be sent a byte of DATA.
    hello.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    let mut block = vec![0x82, 0x86, 0x41, 9];
    block.extend_from_slice(b"localhost");
    block.extend_from_slice(&[0x44, 8]);
    block.extend_from_slice(b"/big.bin");
    hello.extend(frame(0x1, 0x5, 1, &block)); // HEADERS, END_STREAM | END_HEADERS
    stream.write_all(&hello).unwrap();
    // A PING every 200 ms until the server closes.
    let mut pinger = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        while pinger.write_all(&frame(0x6, 0, 0, &[0; 8])).is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    // Handlers may take a minute; this gives up after 20 s ("quiet", or "late" while
    // PING acknowledgements keep coming).
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let data = std::cell::Cell::new(0usize);
    let fate = read_frames(&mut stream, &mut buf, |kind, _, payload| {
        if kind == 0x0 {
            data.set(data.get() + payload.len());
        }
        (started.elapsed() > std::time::Duration::from_secs(20)).then_some("late")
    });
    assert_eq!(fate, "closed", "the connection outlived a shut window");
    assert_eq!(data.get(), 0, "DATA sent past a window of 0");
}
