//! The same table of checks through HTTP/1.1 (plain TCP), HTTP/2 with prior knowledge
//! (h2c, plain TCP) and HTTP/2 over TLS: what a client sees must not depend on the
//! protocol it speaks. Every failure message names the protocol.

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::client::*;
use common::*;
use http_body_util::Full;
use hyper::client::conn::http2::SendRequest;

const A_TXT: &str = "hello, matrix\n";
const INDEX_HTML: &str = "<!doctype html><h1>dir index</h1>\n";
const JS_LEN: usize = 20 * 1024;
const BIG_LEN: usize = 3 * 1024 * 1024;
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    /// HTTP/1.1 over plain TCP.
    Http1,
    /// HTTP/2 with prior knowledge over plain TCP.
    H2c,
    /// HTTP/2 over TLS (ALPN h2).
    H2Tls,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Http1 => "HTTP/1.1",
            Proto::H2c => "h2c",
            Proto::H2Tls => "h2 over TLS",
        }
    }
}

fn js_text() -> String {
    compressible_text("matrix.js", JS_LEN)
}

fn big_bytes() -> Vec<u8> {
    pseudo_random_bytes(0x5eed, BIG_LEN)
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

fn fixture() -> Fixture {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", A_TXT);
    write_file(&root, "dir/index.html", INDEX_HTML);
    write_file(&root, "list/one.txt", "1");
    write_file(&root, "list/two.txt", "2");
    write_file(&root, ".env", "SECRET=1");
    write_file(&root, "app.js", js_text());
    write_file(&root, "big.bin", big_bytes());
    // Outside the served root.
    write_file(tmp.path(), "secret", "outside the root");
    Fixture { _tmp: tmp, root }
}

/// One protocol's way of sending a request to its own wharf.
struct Client {
    proto: Proto,
    server: Server,
    cert: Option<TestCert>,
    /// The HTTP/2 connection, reused across requests (reopened if it closed).
    h2: Option<SendRequest<Full<Bytes>>>,
    /// Requests sent so far (each must add one access-log line).
    sent: usize,
}

impl Client {
    fn start(proto: Proto, fx: &Fixture) -> Client {
        let (server, cert) = match proto {
            Proto::Http1 | Proto::H2c => (Server::start(&fx.root, &[]), None),
            Proto::H2Tls => {
                let cert = localhost_cert();
                let (c, k) = write_cert(fx._tmp.path(), &cert);
                let server = Server::start_https(
                    &fx.root,
                    &[
                        "--tls-cert",
                        c.to_str().unwrap(),
                        "--tls-key",
                        k.to_str().unwrap(),
                    ],
                );
                (server, Some(cert))
            }
        };
        Client {
            proto,
            server,
            cert,
            h2: None,
            sent: 0,
        }
    }

    fn name(&self) -> &'static str {
        self.proto.name()
    }

    async fn h2_sender(&mut self) -> &mut SendRequest<Full<Bytes>> {
        if self.h2.as_ref().is_none_or(|s| s.is_closed()) {
            let sender = match self.proto {
                Proto::H2c => h2_handshake(tcp(self.server.addr()).await).await,
                Proto::H2Tls => {
                    let cert = self.cert.as_ref().expect("TLS client has a certificate");
                    let config = client_config(std::slice::from_ref(&cert.der), &[b"h2"], &[]);
                    let stream = tls_connect(self.server.addr(), config, "localhost").await;
                    assert_eq!(alpn(&stream).as_deref(), Some(&b"h2"[..]), "ALPN");
                    h2_handshake(stream).await
                }
                Proto::Http1 => unreachable!("HTTP/1.1 has no HTTP/2 connection"),
            };
            self.h2 = Some(sender);
        }
        self.h2.as_mut().unwrap()
    }

    /// Send `method path` (the path exactly as given, percent-escapes and all) with
    /// `headers`; check that it was logged; return the response.
    async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let body: &[u8] = if method == "POST" { b"data" } else { b"" };
        let port = self.server.port();
        let reply = match self.proto {
            Proto::Http1 => {
                let mut sender = h1_handshake(tcp(self.server.addr()).await).await;
                let host = format!("localhost:{port}");
                let mut all = vec![("host", host.as_str())];
                all.extend_from_slice(headers);
                h1_send(&mut sender, build_request(method, path, &all, body)).await
            }
            Proto::H2c | Proto::H2Tls => {
                let scheme = if self.proto == Proto::H2c {
                    "http"
                } else {
                    "https"
                };
                let uri = format!("{scheme}://localhost:{port}{path}");
                let request = build_request(method, &uri, headers, body);
                let reply = h2_send(self.h2_sender().await, request).await;
                assert_eq!(
                    reply.version,
                    http::Version::HTTP_2,
                    "{}: {method} {path} answered over HTTP/2",
                    self.name()
                );
                reply
            }
        };
        if self.proto == Proto::Http1 {
            assert_eq!(
                reply.version,
                http::Version::HTTP_11,
                "{}: {method} {path} answered over HTTP/1.1",
                self.name()
            );
        }
        self.sent += 1;
        let lines = self.server.wait_for_stdout_count(self.sent);
        let line = &lines[self.sent - 1];
        assert!(
            line.contains(method),
            "{}: access-log line for {method} {path} does not name the method: {line:?}",
            self.name()
        );
        reply
    }

    async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", path, headers).await
    }
}

/// The single strong ETag of `reply`.
fn strong_etag_of(p: &str, reply: &Reply, what: &str) -> String {
    let tags = reply.headers_all("etag");
    assert_eq!(
        tags.len(),
        1,
        "{p}: {what}: one ETag expected, got {tags:?}"
    );
    let tag = tags[0].clone();
    assert!(
        tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/"),
        "{p}: {what}: ETag is not strong and quoted: {tag:?}"
    );
    tag
}

fn varies_on_accept_encoding(reply: &Reply) -> bool {
    reply.headers_all("vary").iter().any(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("accept-encoding"))
    })
}

fn content_length(p: &str, reply: &Reply, what: &str) -> usize {
    let value = reply.header("content-length").unwrap_or_else(|| {
        panic!(
            "{p}: {what}: no Content-Length; headers {:?}",
            reply.headers
        )
    });
    value
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{p}: {what}: bad Content-Length {value:?}"))
}

/// The parts of a `multipart/byteranges` body: (Content-Range, bytes).
fn multipart_parts(p: &str, reply: &Reply) -> Vec<(String, Vec<u8>)> {
    let content_type = reply.header("content-type").unwrap_or_default();
    let boundary = content_type
        .strip_prefix("multipart/byteranges")
        .and_then(|rest| rest.split_once("boundary="))
        .map(|(_, b)| b.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("{p}: not multipart/byteranges: {content_type:?}"));
    let delimiter = format!("--{boundary}");
    let body = &reply.body;
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(pos) = body[i..]
        .windows(delimiter.len())
        .position(|w| w == delimiter.as_bytes())
    {
        starts.push(i + pos);
        i += pos + delimiter.len();
    }
    assert!(
        starts.len() >= 2,
        "{p}: multipart body has no complete part: {:?}",
        String::from_utf8_lossy(body)
    );
    let mut parts = Vec::new();
    for pair in starts.windows(2) {
        let part = &body[pair[0] + delimiter.len()..pair[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let split = part
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("{p}: part without a header section"));
        let head = String::from_utf8_lossy(&part[..split]).into_owned();
        let range = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("content-range")
                    .then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| panic!("{p}: part without Content-Range: {head:?}"));
        parts.push((range, part[split + 4..].to_vec()));
    }
    let tail = &body[*starts.last().unwrap() + delimiter.len()..];
    assert!(tail.starts_with(b"--"), "{p}: multipart body not closed");
    parts
}

/// The whole table, through `proto`.
async fn run_matrix(proto: Proto) {
    let fx = fixture();
    let mut c = Client::start(proto, &fx);
    let p = c.name();
    let len = A_TXT.len();

    // GET a file: body and representation headers.
    let get = c.get("/a.txt", &[]).await;
    assert_eq!(get.status, 200, "{p}: GET /a.txt status");
    assert_eq!(get.text(), A_TXT, "{p}: GET /a.txt body");
    assert_eq!(
        get.header("content-type").as_deref(),
        Some(TEXT_PLAIN),
        "{p}: GET /a.txt Content-Type"
    );
    assert_eq!(
        content_length(p, &get, "GET /a.txt"),
        len,
        "{p}: Content-Length"
    );
    let etag = strong_etag_of(p, &get, "GET /a.txt");
    let modified = get
        .header("last-modified")
        .unwrap_or_else(|| panic!("{p}: GET /a.txt has no Last-Modified"));
    assert!(
        modified.ends_with(" GMT"),
        "{p}: Last-Modified {modified:?}"
    );
    assert_eq!(
        get.header("accept-ranges").as_deref(),
        Some("bytes"),
        "{p}: Accept-Ranges"
    );
    assert!(
        varies_on_accept_encoding(&get),
        "{p}: Vary should list Accept-Encoding: {:?}",
        get.headers_all("vary")
    );

    // HEAD: same status, length and validator, no body.
    let head = c.send("HEAD", "/a.txt", &[]).await;
    assert_eq!(head.status, 200, "{p}: HEAD status");
    assert!(
        head.body.is_empty(),
        "{p}: HEAD body should be empty: {:?}",
        head.text()
    );
    assert_eq!(
        content_length(p, &head, "HEAD /a.txt"),
        len,
        "{p}: HEAD Content-Length"
    );
    assert_eq!(
        strong_etag_of(p, &head, "HEAD /a.txt"),
        etag,
        "{p}: HEAD ETag"
    );
    assert_eq!(
        head.header("content-type").as_deref(),
        Some(TEXT_PLAIN),
        "{p}: HEAD Content-Type"
    );

    // Missing file: HTML error page.
    let missing = c.get("/no-such-file.txt", &[]).await;
    assert_eq!(missing.status, 404, "{p}: missing file status");
    assert_eq!(
        missing.header("content-type").as_deref(),
        Some(HTML),
        "{p}: 404 Content-Type"
    );
    assert!(!missing.body.is_empty(), "{p}: 404 has an error page");

    // Directories.
    let dir = c.get("/dir", &[]).await;
    assert_eq!(dir.status, 301, "{p}: /dir status");
    assert_eq!(
        dir.header("location").as_deref(),
        Some("/dir/"),
        "{p}: /dir Location"
    );
    let index = c.get("/dir/", &[]).await;
    assert_eq!(index.status, 200, "{p}: /dir/ status");
    assert_eq!(index.text(), INDEX_HTML, "{p}: /dir/ serves index.html");
    assert_eq!(
        index.header("content-type").as_deref(),
        Some(HTML),
        "{p}: /dir/ Content-Type"
    );
    let listing = c.get("/list/", &[]).await;
    assert_eq!(listing.status, 200, "{p}: /list/ status");
    assert!(
        listing
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{p}: listing Content-Type {:?}",
        listing.header("content-type")
    );
    for name in ["one.txt", "two.txt"] {
        assert!(
            listing.text().contains(name),
            "{p}: HTML listing lacks {name}: {}",
            listing.text()
        );
    }
    let json = c.get("/list/", &[("accept", "application/json")]).await;
    assert_eq!(json.status, 200, "{p}: JSON listing status");
    assert!(
        json.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{p}: JSON listing Content-Type {:?}",
        json.header("content-type")
    );
    let text = json.text();
    assert!(
        text.contains("\"entries\""),
        "{p}: JSON listing has no \"entries\": {text}"
    );
    for name in ["one.txt", "two.txt"] {
        assert!(
            text.contains(name),
            "{p}: JSON listing lacks {name}: {text}"
        );
    }

    // Safety: dotfiles and traversal. The path goes out exactly as written (hyper
    // and h2 keep percent-escapes in :path as they are).
    let dotenv = c.get("/.env", &[]).await;
    assert_eq!(dotenv.status, 404, "{p}: /.env status");
    assert!(
        !dotenv.text().contains("SECRET"),
        "{p}: /.env leaked its content"
    );
    let traversal = c.get("/%2e%2e/secret", &[]).await;
    assert_eq!(traversal.status, 400, "{p}: /%2e%2e/secret status");
    assert!(
        !traversal.text().contains("outside the root"),
        "{p}: traversal leaked the file"
    );

    // Methods.
    let post = c
        .send("POST", "/a.txt", &[("content-type", "text/plain")])
        .await;
    assert_eq!(post.status, 405, "{p}: POST status");
    assert_eq!(
        post.header("allow").as_deref(),
        Some("GET, HEAD, OPTIONS"),
        "{p}: POST Allow"
    );

    // Conditional requests.
    let not_modified = c.get("/a.txt", &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, 304, "{p}: If-None-Match status");
    assert!(
        not_modified.body.is_empty(),
        "{p}: 304 has a body: {:?}",
        not_modified.text()
    );
    assert_eq!(
        not_modified.header("etag").as_deref(),
        Some(etag.as_str()),
        "{p}: 304 ETag"
    );
    let failed = c.get("/a.txt", &[("if-match", "\"x\"")]).await;
    assert_eq!(failed.status, 412, "{p}: If-Match \"x\" status");

    // Ranges.
    let range = c.get("/a.txt", &[("range", "bytes=0-3")]).await;
    assert_eq!(range.status, 206, "{p}: bytes=0-3 status");
    assert_eq!(range.text(), &A_TXT[..4], "{p}: bytes=0-3 body");
    assert_eq!(
        range.header("content-range"),
        Some(format!("bytes 0-3/{len}")),
        "{p}: bytes=0-3 Content-Range"
    );
    assert_eq!(
        content_length(p, &range, "bytes=0-3"),
        4,
        "{p}: bytes=0-3 Content-Length"
    );
    let unsatisfiable = c.get("/a.txt", &[("range", "bytes=999999-")]).await;
    assert_eq!(unsatisfiable.status, 416, "{p}: bytes=999999- status");
    assert_eq!(
        unsatisfiable.header("content-range"),
        Some(format!("bytes */{len}")),
        "{p}: 416 Content-Range"
    );
    let multi = c.get("/a.txt", &[("range", "bytes=0-1,4-5")]).await;
    assert_eq!(multi.status, 206, "{p}: bytes=0-1,4-5 status");
    let parts = multipart_parts(p, &multi);
    assert_eq!(
        parts,
        vec![
            (format!("bytes 0-1/{len}"), A_TXT.as_bytes()[0..2].to_vec()),
            (format!("bytes 4-5/{len}"), A_TXT.as_bytes()[4..6].to_vec()),
        ],
        "{p}: multipart parts"
    );
    assert_eq!(
        content_length(p, &multi, "multipart 206"),
        multi.body.len(),
        "{p}: multipart Content-Length"
    );

    // Compression of a 20 KiB script.
    let js = js_text();
    for (coding, decode) in [
        ("gzip", gunzip as fn(&[u8]) -> Vec<u8>),
        ("br", unbrotli),
        ("zstd", unzstd),
    ] {
        let reply = c.get("/app.js", &[("accept-encoding", coding)]).await;
        assert_eq!(reply.status, 200, "{p}: {coding} status");
        assert_eq!(
            reply.header("content-encoding").as_deref(),
            Some(coding),
            "{p}: Content-Encoding for Accept-Encoding: {coding}"
        );
        assert!(
            reply.body.len() < JS_LEN / 2,
            "{p}: {coding} body is not compressed ({} bytes)",
            reply.body.len()
        );
        assert!(
            decode(&reply.body) == js.as_bytes(),
            "{p}: {coding} body does not decode to app.js"
        );
        assert!(
            varies_on_accept_encoding(&reply),
            "{p}: {coding} response lacks Vary: Accept-Encoding"
        );
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("text/javascript; charset=utf-8"),
            "{p}: {coding} Content-Type"
        );
    }

    // A 3 MiB binary file, byte for byte.
    let big = c.get("/big.bin", &[]).await;
    assert_eq!(big.status, 200, "{p}: big.bin status");
    assert_eq!(big.body.len(), BIG_LEN, "{p}: big.bin length");
    assert!(big.body == big_bytes(), "{p}: big.bin bytes differ");
    assert_eq!(
        content_length(p, &big, "big.bin"),
        BIG_LEN,
        "{p}: big.bin Content-Length"
    );

    // Access log: one line per request, no more.
    let lines = c.server.wait_for_stdout_count(c.sent);
    assert_eq!(
        lines.len(),
        c.sent,
        "{p}: {} requests but {} access-log lines: {lines:#?}",
        c.sent,
        lines.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_http1_plain() {
    run_matrix(Proto::Http1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_h2c_prior_knowledge() {
    run_matrix(Proto::H2c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_h2_over_tls() {
    run_matrix(Proto::H2Tls).await;
}
