//! The reverse proxy, against upstreams started here that record exactly what they
//! received: forwarding, path mapping, the headers a proxy must set and drop, request
//! buffering, unix sockets, every error status, a body broken off upstream, and
//! request-smuggling attempts.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

use common::*;

/// One request as an upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }
}

/// An HTTP/1.1 upstream on a loopback port (or a unix socket) answering every request
/// with `answer` and recording what it received.
struct Upstream {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

fn read_request(reader: &mut impl BufRead) -> Option<Seen> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let seen = Seen {
        head: head.clone(),
        body: Vec::new(),
    };
    let mut body = Vec::new();
    if let Some(n) = seen
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(n, 0);
        reader.read_exact(&mut body).ok()?;
    } else if seen
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Seen { head, body })
}

fn serve_connection<S: Read + Write>(stream: S, answer: Arc<Vec<u8>>, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        seen.lock().unwrap().push(request);
        if reader.get_mut().write_all(&answer).is_err() {
            return;
        }
    }
}

impl Upstream {
    fn start(answer: &[u8]) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer.to_vec());
        let record = Arc::clone(&seen);
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (answer, record) = (Arc::clone(&answer), Arc::clone(&record));
                thread::spawn(move || serve_connection(stream, answer, record));
            }
        });
        Upstream {
            addr,
            seen,
            connections,
        }
    }

    fn start_unix(path: &std::path::Path, answer: &[u8]) -> Upstream {
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer.to_vec());
        let record = Arc::clone(&seen);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (answer, record) = (Arc::clone(&answer), Arc::clone(&record));
                thread::spawn(move || serve_connection(stream, answer, record));
            }
        });
        Upstream {
            addr: path.display().to_string(),
            seen,
            connections: Default::default(),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn last(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("the upstream got a request")
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-App: yes\r\n\r\nhello";

fn proxied(upstream: &Upstream, prefix_url: &str) -> (tempfile::TempDir, Server) {
    let (tmp, root) = temp_root();
    write_file(&root, "local.txt", "from disk");
    let arg = format!("{prefix_url}{}", upstream.addr);
    let server = Server::start(&root, &["--proxy", &arg]);
    (tmp, server)
}

/// A request body over the limit gets 413 before the app is asked: the route's
/// own `max-upload-size`, else the server's `--max-upload-size`. A body without a
/// length (chunked) is measured as it arrives, passed through unbuffered too.
#[test]
fn bodies_over_the_limit_never_reach_the_app() {
    let app = Upstream::start(OK);
    let (tmp, root) = temp_root();
    let conf = tmp.path().join("limits.toml");
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/own/**\"\nhandler = \"proxy\"\nupstreams = [\"http://{0}\"]\n\
             max-upload-size = 5\n\n[[rule]]\npath = \"/stream/**\"\nhandler = \"proxy\"\n\
             upstreams = [\"http://{0}\"]\nbuffer-request = false\n\n\
             [[rule]]\npath = \"/**\"\nhandler = \"proxy\"\n\
             upstreams = [\"http://{0}\"]\n",
            app.addr
        ),
    )
    .unwrap();
    let server = Server::start(
        &root,
        &[
            "--config",
            conf.to_str().unwrap(),
            "--max-upload-size",
            "10",
        ],
    );
    let post = |path: &str, body: &str| {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        server.exchange(raw.as_bytes(), false).status
    };
    let post_chunked = |path: &str, chunks: &[&str]| {
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        for chunk in chunks {
            raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
        }
        raw.push_str("0\r\n\r\n");
        server.exchange(raw.as_bytes(), false).status
    };
    assert_eq!(post("/any", "hello world"), 413);
    assert_eq!(post("/own/x", "hello!"), 413);
    assert_eq!(post_chunked("/any", &["hello", " world"]), 413);
    assert_eq!(post_chunked("/stream/x", &["hello", " world"]), 413);
    assert!(app.seen().is_empty());
    assert_eq!(post("/any", "hello"), 200);
    assert_eq!(post("/own/x", "hello"), 200);
    assert_eq!(post_chunked("/stream/x", &["hello", "world"]), 200);
    assert_eq!(app.last().body, b"helloworld");
}

#[test]
fn requests_under_the_prefix_reach_the_app_and_the_rest_is_static() {
    let app = Upstream::start(OK);
    let (_t, server) = proxied(&app, "/api/=http://");
    let res = get(&server, "/api/items?id=7");
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"hello");
    assert_eq!(app.last().request_line(), "GET /api/items?id=7 HTTP/1.1");
    assert_eq!(get(&server, "/local.txt").body, b"from disk");
    assert_eq!(app.seen().len(), 1, "static paths never reach the app");
    // Response: hop-by-hop fields gone, the app's own kept, Via added.
    assert_eq!(res.header("x-app").as_deref(), Some("yes"));
    assert_eq!(res.header("x-secret"), None, "listed in Connection");
    assert_eq!(res.header("keep-alive"), None);
    assert_eq!(res.header("via").as_deref(), Some("1.1 wharf"));
}

/// The app's notes to the server in front are not passed on, as nginx passes none:
/// `X-Accel-*` and `X-Pad`.
#[test]
fn notes_to_the_front_server_stay_there() {
    let app = Upstream::start(
        b"HTTP/1.1 200 OK\r\nX-Accel-Expires: 100\r\nX-Accel-Limit-Rate: 10\r\nX-Accel-Charset: utf-8\r\nX-Accel-Buffering: yes\r\nX-Pad: avoid browser bug\r\nX-Accelerated: kept\r\nContent-Length: 2\r\n\r\nok",
    );
    let (_t, server) = proxied(&app, "/=http://");
    let res = get(&server, "/x");
    assert_eq!(res.status, 200);
    for name in [
        "x-accel-expires",
        "x-accel-limit-rate",
        "x-accel-charset",
        "x-accel-buffering",
        "x-pad",
    ] {
        assert_eq!(res.header(name), None, "{name}");
    }
    assert_eq!(res.header("x-accelerated").as_deref(), Some("kept"));
}

#[test]
fn a_connection_token_that_is_not_text_hides_no_other() {
    // obs-text in one token of the line (RFC 9110 §5.5): it names no field, and
    // `X-Secret` on the same line is still hop-by-hop.
    let app = Upstream::start(
        b"HTTP/1.1 200 OK\r\nConnection: X-Secret, \xe9t\xe9\r\nX-Secret: 1\r\nContent-Length: 2\r\n\r\nok",
    );
    let (_t, server) = proxied(&app, "/=http://");
    let res = get(&server, "/x");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-secret"), None, "listed in Connection");
}

#[test]
fn an_upstream_path_replaces_the_prefix() {
    let app = Upstream::start(OK);
    let (tmp, root) = temp_root();
    let arg = format!("/api/=http://{}/v1/", app.addr);
    let server = Server::start(&root, &["--proxy", &arg]);
    get(&server, "/api/x/y?q=1");
    assert_eq!(app.last().request_line(), "GET /v1/x/y?q=1 HTTP/1.1");
    // Normalised before it is forwarded.
    get(&server, "/api/a/../b%20c");
    assert_eq!(app.last().request_line(), "GET /v1/b%20c HTTP/1.1");
    drop(tmp);
}

#[test]
fn paths_reach_the_app_as_the_client_spelled_them() {
    let app = Upstream::start(OK);
    let (tmp, root) = temp_root();
    let whole = format!("/p/=http://{}", app.addr);
    let mapped = format!("/api/=http://{}/v1/", app.addr);
    let server = Server::start(&root, &["--proxy", &whole, "--proxy", &mapped]);
    // Reserved characters and their escapes are different URIs to the app.
    for (asked, forwarded) in [
        ("/p/a;b=c", "/p/a;b=c"),
        ("/p/a!$&'()*+,;=:@b", "/p/a!$&'()*+,;=:@b"),
        ("/p/a%3Bb/%7Ec", "/p/a%3Bb/%7Ec"),
        ("/api/x;jsessionid=1?q=a+b", "/v1/x;jsessionid=1?q=a+b"),
        // Something to normalise: the normalised path, its escapes as they were.
        ("/p/a/../b;c", "/p/b;c"),
        ("/p/a/./b+c%3Bd/%2e/", "/p/a/b+c%3Bd/"),
        ("/api/x/%2E%2E/y;z=1,2", "/v1/y;z=1,2"),
        ("/p//x", "/p/x"),
        // An encoded slash is the app's to read, as nginx passes it on.
        ("/p/a%2Fb", "/p/a%2Fb"),
        ("/api/a%2fb?q", "/v1/a%2fb?q"),
    ] {
        assert_eq!(get(&server, asked).status, 200, "{asked}");
        assert_eq!(
            app.last().request_line(),
            format!("GET {forwarded} HTTP/1.1"),
            "{asked}"
        );
    }
    // Not with a dot segment behind it, nor outside the app's prefix.
    let before = app.seen().len();
    assert_eq!(get(&server, "/p/..%2Fsecret").status, 404);
    assert_eq!(get(&server, "/local%2Ftxt").status, 404);
    assert_eq!(app.seen().len(), before);
    drop(tmp);
}

#[test]
fn the_apps_own_reason_phrase_reaches_the_client() {
    let app = Upstream::start(b"HTTP/1.1 299 Whatever Happened\r\nContent-Length: 0\r\n\r\n");
    let (_t, server) = proxied(&app, "/=http://");
    let raw = server.send_raw(b"GET /r HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 299 Whatever Happened\r\n"),
        "{text}"
    );
}

#[test]
fn an_app_folder_asked_for_without_its_slash_is_redirected_into() {
    let app = Upstream::start(OK);
    let (_t, server) = proxied(&app, "/api/=http://");
    let res = get(&server, "/api?x=1");
    assert_eq!(res.status, 301);
    assert_eq!(res.header("location").as_deref(), Some("/api/?x=1"));
    assert!(app.seen().is_empty());
    assert_eq!(get(&server, "/apix").status, 404);
}

#[test]
fn max_forwards_is_counted_down_and_trace_goes_no_further() {
    let app = Upstream::start(OK);
    let (_t, server) = proxied(&app, "/=http://");
    // RFC 9110 §7.6.2: at 0 the proxy answers itself; otherwise one less.
    let res = request(&server, "OPTIONS", "/x", &[("Max-Forwards", "0")]);
    assert_eq!(res.status, 200);
    assert!(res.header("allow").is_some_and(|a| a.contains("GET")));
    assert!(app.seen().is_empty());
    assert_eq!(
        request(&server, "OPTIONS", "/x", &[("Max-Forwards", "3")]).status,
        200
    );
    assert_eq!(app.last().header("max-forwards").as_deref(), Some("2"));
    // Too large to count: the largest wharf counts, less one; not a number: none.
    let huge = "99999999999999999999999";
    request(&server, "OPTIONS", "/x", &[("Max-Forwards", huge)]);
    let passed = app.last().header("max-forwards");
    assert_eq!(passed, Some((u64::MAX - 1).to_string()));
    for bad in ["-1", "3, 2", "abc"] {
        request(&server, "OPTIONS", "/x", &[("Max-Forwards", bad)]);
        assert_eq!(app.last().header("max-forwards"), None, "{bad}");
    }
    // Sent twice, the smaller count holds: at 0, wharf answers.
    let before = app.seen().len();
    let twice = [("Max-Forwards", "5"), ("Max-Forwards", "0")];
    assert_eq!(request(&server, "OPTIONS", "/x", &twice).status, 200);
    assert_eq!(app.seen().len(), before);
    // TRACE would echo the client's credentials to a script (cross-site tracing).
    let before = app.seen().len();
    assert_eq!(request(&server, "TRACE", "/x", &[]).status, 405);
    assert_eq!(app.seen().len(), before);
}

#[test]
fn the_app_gets_the_host_the_request_named() {
    let app = Upstream::start(OK);
    let (_t, server) = proxied(&app, "/=http://");
    // An absolute-form target's host wins over Host (RFC 9112 §3.2.2).
    let res = server.exchange(
        b"GET http://other.example/abs HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        false,
    );
    assert_eq!(res.status, 200);
    let seen = app.last();
    assert_eq!(seen.request_line(), "GET /abs HTTP/1.1");
    assert_eq!(seen.header("host").as_deref(), Some("other.example"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("other.example")
    );
    // An HTTP/1.0 client without Host: the upstream's own, since an HTTP/1.1
    // request must have one; and Via names the protocol the request came in with.
    let res = server.exchange(b"GET /nohost HTTP/1.0\r\n\r\n", false);
    assert_eq!(res.status, 200);
    let seen = app.last();
    assert_eq!(seen.request_line(), "GET /nohost HTTP/1.1");
    assert_eq!(seen.header("host").as_deref(), Some(app.addr.as_str()));
    assert_eq!(seen.header("via").as_deref(), Some("1.0 wharf"));
}

#[test]
fn an_expectation_wharf_met_is_not_asked_of_the_app_again() {
    let app = Upstream::start(OK);
    let (_t, server) = proxied(&app, "/=http://");
    let mut client = Conn::open(&server);
    client
        .send(b"PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(client.read_head().unwrap().status, 100);
    client.send(b"12345");
    assert_eq!(client.read_response(false).status, 200);
    let seen = app.last();
    assert_eq!(seen.body, b"12345");
    assert_eq!(seen.header("expect"), None);
}

#[test]
fn a_kept_connection_the_app_closed_is_not_a_502() {
    // An app that answers the first request on each connection and closes the
    // connection when the next one arrives on it, unanswered (its idle timeout
    // firing as wharf reuses the connection).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&answered);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let count = Arc::clone(&count);
            thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                if read_request(&mut reader).is_some() {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = reader.get_mut().write_all(OK);
                }
                let _ = read_request(&mut reader);
            });
        }
    });
    let (tmp, root) = temp_root();
    let arg = format!("/=http://{addr}");
    let server = Server::start(&root, &["--proxy", &arg]);
    for i in 0..3 {
        assert_eq!(get(&server, &format!("/r{i}")).status, 200, "request {i}");
    }
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 3);
    // A request that is not idempotent is never sent twice: a 502.
    let res = request(&server, "POST", "/post", &[("Content-Length", "0")]);
    assert_eq!(res.status, 502);
    drop(tmp);
}

#[test]
fn a_request_the_app_closes_a_new_connection_on_is_not_sent_again() {
    // An app that reads each request and closes its connection unanswered: one
    // that dies on the request. Nothing was kept, so nothing is sent again (RFC
    // 9110 §9.2.2), whatever the method.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            if read_request(&mut reader).is_some() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let (tmp, root) = temp_root();
    let arg = format!("/=http://{addr}");
    let server = Server::start(&root, &["--proxy", &arg]);
    for (i, method) in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]
        .iter()
        .enumerate()
    {
        let res = request(&server, method, "/x", &[("Content-Length", "0")]);
        assert_eq!(res.status, 502, "{method}");
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            i + 1,
            "{method}"
        );
    }
    drop(tmp);
}

#[test]
fn forwarding_headers_are_set_and_client_supplied_ones_replaced() {
    let app = Upstream::start(OK);
    let (_t, server) = proxied(&app, "/=http://");
    let res = request(
        &server,
        "GET",
        "/x",
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("Forwarded", "for=6.6.6.6"),
            ("X-Forwarded-Host", "evil.example"),
            ("Connection", "X-Drop"),
            ("X-Drop", "1"),
            ("Keep-Alive", "timeout=1"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("X-Keep", "kept"),
            // What else a proxy in front would say, and a spelling WSGI and CGI
            // read as X-Forwarded-For.
            ("X-Real-IP", "6.6.6.6"),
            ("X-Forwarded-Ssl", "on"),
            ("X-Forwarded-Port", "443"),
            ("X_Forwarded_For", "6.6.6.6"),
            // An app that makes variables of fields would take it for its
            // outgoing proxy (HTTP_PROXY).
            ("Proxy", "http://evil.test/"),
        ],
    );
    assert_eq!(res.status, 200);
    let seen = app.last();
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("localhost")
    );
    assert_eq!(
        seen.header("forwarded").as_deref(),
        Some("for=127.0.0.1;proto=http;host=\"localhost\"")
    );
    assert_eq!(
        seen.header("host").as_deref(),
        Some("localhost"),
        "Host as the client sent it"
    );
    assert_eq!(seen.header("via").as_deref(), Some("1.1 wharf"));
    assert_eq!(seen.header("x-keep").as_deref(), Some("kept"));
    for gone in [
        "x-drop",
        "keep-alive",
        "te",
        "proxy-authorization",
        "x-real-ip",
        "x-forwarded-ssl",
        "x-forwarded-port",
        "x_forwarded_for",
        "proxy",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} reached the app");
    }
    // A POST without content says so (RFC 9110 §8.6).
    let res = request(&server, "POST", "/x", &[("Content-Length", "0")]);
    assert_eq!(res.status, 200);
    assert_eq!(app.last().header("content-length").as_deref(), Some("0"));
}

#[test]
fn trusted_proxies_keep_their_forwarding_headers() {
    let app = Upstream::start(OK);
    let (_t, root) = temp_root();
    let conf = root.parent().unwrap().join("wharf.toml");
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"http://{}\"]\ntrusted-proxies = [\"127.0.0.0/8\"]\nupstream-headers = {{ \"X-From\" = \"wharf\" }}\n",
            app.addr
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    // Several lines of a list are one list (RFC 9110 §5.3): none is lost, and
    // the last, the hop nearest wharf, stays next to the address wharf adds.
    request(
        &server,
        "GET",
        "/",
        &[
            ("X-Forwarded-For", "203.0.113.9, 198.51.100.1"),
            ("X-Forwarded-For", "198.51.100.2"),
            ("Forwarded", "for=203.0.113.9"),
            ("Forwarded", "for=198.51.100.2"),
            ("Via", "1.1 edge"),
            ("Via", "1.1 lb"),
        ],
    );
    let seen = app.last();
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 198.51.100.1, 198.51.100.2, 127.0.0.1")
    );
    assert_eq!(
        seen.header("forwarded").as_deref(),
        Some("for=203.0.113.9, for=198.51.100.2, for=127.0.0.1;proto=http;host=\"localhost\"")
    );
    assert_eq!(
        seen.header("via").as_deref(),
        Some("1.1 edge, 1.1 lb, 1.1 wharf")
    );
    assert_eq!(seen.header("x-from").as_deref(), Some("wharf"));
    // A list with a quoted string left open would take wharf's element into it:
    // it is replaced, not added to.
    let (open, closed) = ("for=\"evil\\", "for=\"a\\\"b\"");
    request(&server, "GET", "/", &[("Forwarded", open)]);
    assert_eq!(
        app.last().header("forwarded").as_deref(),
        Some("for=127.0.0.1;proto=http;host=\"localhost\"")
    );
    request(&server, "GET", "/", &[("Forwarded", closed)]);
    assert_eq!(
        app.last().header("forwarded"),
        Some(format!(
            "{closed}, for=127.0.0.1;proto=http;host=\"localhost\""
        ))
    );
}

#[test]
fn request_bodies_arrive_whole_with_a_length() {
    let app = Upstream::start(OK);
    let (_t, server) = proxied(&app, "/=http://");
    // Chunked from the client, and larger than what is kept in memory.
    let data = vec![b'q'; 200_000];
    let mut body = Vec::new();
    for piece in data.chunks(30_000) {
        body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        body.extend_from_slice(piece);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut req = b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(&body);
    let res = server.exchange(&req, false);
    assert_eq!(res.status, 200);
    let seen = app.last();
    assert_eq!(seen.header("content-length").as_deref(), Some("200000"));
    assert_eq!(seen.header("transfer-encoding"), None);
    assert_eq!(seen.body, data);
}

/// A configuration file `name` beside `root` that proxies everything, with a 1 s
/// `response-timeout`, to an app that accepts, reads the request head, sends
/// `answer` (nothing, or the start of a response) and then holds the connection.
fn held_app_route(root: &std::path::Path, name: &str, answer: &'static [u8]) -> std::path::PathBuf {
    let app = TcpListener::bind("127.0.0.1:0").unwrap();
    let app_addr = app.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in app.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = s.write_all(answer);
            held.push(s);
        }
    });
    let conf = root.parent().unwrap().join(name);
    std::fs::write(
        &conf,
        format!("[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"http://{app_addr}\"]\nresponse-timeout = \"1s\"\n"),
    )
    .unwrap();
    conf
}

#[test]
fn unreachable_silent_and_stalling_upstreams_get_502_and_504() {
    let (_t, root) = temp_root();
    // Nothing listens here.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let server = Server::start(&root, &["--proxy", &format!("/=http://{dead_addr}")]);
    assert_eq!(get(&server, "/x").status, 502);

    let conf = held_app_route(&root, "slow.toml", b"");
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    assert_eq!(get(&server, "/x").status, 504);

    // The client's idle timeout is not the app's: a request still waiting for its
    // answer gets the 504, not a dropped connection.
    let server = Server::start(
        &root,
        &[
            "--config",
            conf.to_str().unwrap(),
            "--idle-timeout",
            "300ms",
        ],
    );
    let res = get(&server, "/x");
    assert_eq!(res.status, 504);

    // An app that stops half-way through a small body has not answered in time
    // either.
    let conf = held_app_route(
        &root,
        "stall.toml",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.",
    );
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    assert_eq!(get(&server, "/x").status, 504);
}

/// With `buffer-request = false` the app answers only once the body is in, so
/// an upload that takes longer than `response-timeout` is not the app's delay:
/// the clock starts when the body has gone out whole, as nginx's
/// `proxy_read_timeout` starts from its last write.
#[test]
fn a_streamed_upload_slower_than_the_response_timeout_still_reaches_the_app() {
    let app = Upstream::start(OK);
    let (tmp, root) = temp_root();
    let conf = tmp.path().join("stream.toml");
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"http://{}\"]\n\
             buffer-request = false\nresponse-timeout = \"1s\"\n",
            app.addr
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    let mut conn = Conn::open(&server);
    conn.send(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\nConnection: close\r\n\r\n",
    );
    // A slow client: the parts 700 ms apart, so the body takes 2.1 s in all.
    for part in ["first", "again", "final"] {
        std::thread::sleep(std::time::Duration::from_millis(700));
        conn.send(part.as_bytes());
    }
    let res = conn.read_response(false);
    assert_eq!(res.status, 200);
    assert_eq!(app.last().body, b"firstagainfinal");

    // Once the body is out, the clock runs: an app that never answers is a 504.
    let conf = held_app_route(&root, "held.toml", b"");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("buffer-request = false\n");
    std::fs::write(&conf, text).unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    let res = server.exchange(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        false,
    );
    assert_eq!(res.status, 504);

    // An app that stops taking the body is silent too (nginx's
    // `proxy_send_timeout`): 504, not a wait for as long as the client sends.
    let size = 256 * 1024 * 1024;
    let mut conn = Conn::open(&server);
    conn.send(
        format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n").as_bytes(),
    );
    let mut writer = conn.stream().try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let piece = vec![b'u'; 64 * 1024];
        for _ in 0..size / piece.len() {
            if writer.write_all(&piece).is_err() {
                break;
            }
        }
    });
    let head = conn
        .read_head()
        .expect("an answer while the body is still going out");
    assert_eq!(head.status, 504);
    // The writer stops at once, wherever it is.
    let _ = conn.stream().shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
}

/// An app that never takes the connection (its accept queue full, so the kernel
/// drops the handshake) has not answered in time: 504 once `connect-timeout` runs
/// out, as nginx's `proxy_connect_timeout`.
#[test]
fn an_upstream_that_never_accepts_is_a_gateway_timeout() {
    let (_t, root) = temp_root();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    // Fill the queue: the first connection waits in it, later handshakes are dropped.
    let fillers: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)))
        .collect();
    assert!(fillers[0].is_ok(), "the first connection fits the queue");
    assert!(
        fillers[1..].iter().any(|f| f.is_err()),
        "fixture: the queue is full"
    );
    let conf = root.parent().unwrap().join("blackhole.toml");
    std::fs::write(
        &conf,
        format!("[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"http://{addr}\"]\nconnect-timeout = \"1s\"\n"),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    assert_eq!(get(&server, "/x").status, 504);
    drop(socket);
}

#[test]
fn a_second_upstream_takes_what_the_first_cannot() {
    let app = Upstream::start(OK);
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let (_t, root) = temp_root();
    let conf = root.parent().unwrap().join("two.toml");
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"http://{dead_addr}\", \"http://{}\"]\nbalance = \"round-robin\"\n",
            app.addr
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    for _ in 0..4 {
        let res = request(&server, "POST", "/p", &[("Content-Length", "0")]);
        assert_eq!(res.status, 200);
    }
    assert_eq!(app.seen().len(), 4);
}

#[test]
fn unix_socket_upstreams() {
    let (tmp, root) = temp_root();
    let sock = tmp.path().join("app.sock");
    let app = Upstream::start_unix(&sock, OK);
    let server = Server::start(&root, &["--proxy", &format!("/app/=unix:{}", app.addr)]);
    let res = get(&server, "/app/z");
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"hello");
    assert_eq!(app.last().request_line(), "GET /app/z HTTP/1.1");
}

#[test]
fn an_upstream_dying_mid_body_breaks_the_response_off() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            if read_request(&mut reader).is_some() {
                let s = reader.get_mut();
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
                let _ = s.write_all(&[b'p'; 1000]);
            }
            // Dropped: the connection closes 99,000 bytes short.
        }
    });
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--proxy", &format!("/=http://{addr}")]);
    let raw = server.send_raw(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
    assert!(head.contains("content-length: 100000"), "{head}");
    assert!(
        raw.len() - end < 100_000,
        "the client cannot take it for a whole body"
    );
}

#[test]
fn smuggling_attempts_reach_the_app_as_one_well_framed_request() {
    let app = Upstream::start(OK);
    let (_t, server) = proxied(&app, "/=http://");
    // Both framings: Transfer-Encoding wins, and the connection ends after.
    let req = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let raw = server.send_raw(req);
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));
    let seen = app.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].body, b"hello");
    assert_eq!(seen[0].header("content-length").as_deref(), Some("5"));
    assert_eq!(seen[0].header("transfer-encoding"), None);
    // An obfuscated coding never reaches the app.
    for te in ["xchunked", "chunked, identity", " chunked\t,x"] {
        let req =
            format!("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n");
        let raw = server.send_raw(req.as_bytes());
        let status = String::from_utf8_lossy(&raw[..12]).to_string();
        assert!(
            status.starts_with("HTTP/1.1 4") || status.starts_with("HTTP/1.1 5"),
            "{te}: {status}"
        );
    }
    // An h2c upgrade request is not passed on as one.
    request(
        &server,
        "GET",
        "/c",
        &[
            ("Upgrade", "h2c"),
            ("Connection", "Upgrade, HTTP2-Settings"),
            ("HTTP2-Settings", "AAMAAABkAAQAAP__"),
        ],
    );
    let last = app.last();
    assert_eq!(last.header("upgrade"), None);
    assert_eq!(last.header("http2-settings"), None);
    assert_eq!(app.seen().len(), 2);
}

#[test]
fn files_first_serves_what_exists_and_proxies_the_rest() {
    let app = Upstream::start(OK);
    let (_t, root) = temp_root();
    write_file(&root, "static/app.css", "body{}");
    let conf = root.parent().unwrap().join("ff.toml");
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"http://{}\"]\nfiles-first = true\n",
            app.addr
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    assert_eq!(get(&server, "/static/app.css").body, b"body{}");
    assert!(app.seen().is_empty());
    assert_eq!(get(&server, "/dynamic").body, b"hello");
    assert_eq!(app.seen().len(), 1);
    // A dotfile on disk is not one of the files: its path goes to the app.
    write_file(&root, ".env", "SECRET=1");
    assert_eq!(get(&server, "/.env").body, b"hello");
    assert_eq!(app.seen().len(), 2);
}

#[test]
fn paths_with_dot_segments_are_the_apps() {
    let app = Upstream::start(OK);
    let (_t, server) = proxied(&app, "/api/=http://");
    for (method, path) in [
        ("GET", "/api/.well-known/x"),
        ("POST", "/api/.hidden"),
        ("GET", "/api/a/.b/c"),
    ] {
        let res = request(&server, method, path, &[("Content-Length", "0")]);
        assert_eq!(
            (res.status, res.body.as_slice()),
            (200, &b"hello"[..]),
            "{method} {path}"
        );
        assert_eq!(
            app.last().request_line(),
            format!("{method} {path} HTTP/1.1")
        );
    }
    // Outside the proxied prefix a dotfile is still nobody's.
    assert_eq!(get(&server, "/.hidden").status, 404);
}

#[test]
fn bad_proxy_settings_fail_at_startup() {
    let (_t, root) = temp_root();
    for bad in [
        "api=http://x:1",
        "/api/=ftp://x",
        "/api/=unix:relative.sock",
        "/api/",
        "/api/=http://127.0.0.1:99999",
        "/api/=http://127.0.0.1:0/",
        "/api/=http://:80",
    ] {
        let out = run_to_exit(&[root.to_str().unwrap(), "-p", "0", "--proxy", bad], None);
        assert!(!out.status.success(), "{bad} was accepted");
        assert!(out.stderr.contains("--proxy"), "{bad}: {}", out.stderr);
    }
    let conf = root.parent().unwrap().join("bad.toml");
    std::fs::write(
        &conf,
        "[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"gopher://x\"]\n",
    )
    .unwrap();
    let out = run_to_exit(
        &[root.to_str().unwrap(), "--config", conf.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    assert!(out.stderr.contains("bad.toml:4"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_reaches_an_http1_app() {
    let app = Upstream::start(OK);
    let (_t, server) = proxied(&app, "/=http://");
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    // Browsers send each cookie as a field of its own over HTTP/2.
    let req = http::Request::get(format!("http://{}/h2path", server.addr()))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("cookie", "c=3")
        .body(())
        .unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let seen = app.last();
    assert_eq!(seen.request_line(), "GET /h2path HTTP/1.1");
    assert_eq!(seen.header("host").as_deref(), Some(server.addr()));
    // HTTP/1.1 has one Cookie line (RFC 9113 §8.2.3).
    let lines = seen.head.lines();
    let cookies: Vec<&str> = lines
        .filter(|l| l.to_ascii_lowercase().starts_with("cookie:"))
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert_eq!(seen.header("cookie").as_deref(), Some("a=1; b=2; c=3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_waiting_for_its_app_gets_the_routes_504() {
    let (_t, root) = temp_root();
    let conf = held_app_route(&root, "slow.toml", b"");
    // The client's idle timeout is shorter than the app's: the stream waits for
    // the route's answer, not for the connection's idle timeout.
    let server = Server::start(
        &root,
        &[
            "--config",
            conf.to_str().unwrap(),
            "--idle-timeout",
            "300ms",
        ],
    );
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let req = http::Request::get(format!("http://{}/slow", server.addr()))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    let response = response.await.expect("an answer, not a closed connection");
    assert_eq!(response.status(), 504);
}

#[test]
fn proxied_connections_are_reused() {
    let app = Upstream::start(OK);
    let (_t, server) = proxied(&app, "/=http://");
    for _ in 0..20 {
        assert_eq!(get(&server, "/r").status, 200);
    }
    assert_eq!(app.seen().len(), 20);
    // A connection goes back to the pool a moment after its response ends, so a
    // request right behind may open another; but not one per request.
    let opened = app.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(opened <= 4, "{opened} upstream connections for 20 requests");
}

#[test]
fn protocol_switches_are_tunnelled_both_ways() {
    tunnel_through(&[]);
}

#[test]
fn protocol_switches_pass_a_cached_route_by() {
    tunnel_through(&["--proxy-cache", "1MiB"]);
}

/// An app that switches to an echo protocol after its 101; the request it switched
/// on is recorded.
fn echo_app() -> (std::net::SocketAddr, Arc<Mutex<Option<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let Some(request) = read_request(&mut reader) else {
                continue;
            };
            *record.lock().unwrap() = Some(request);
            let s = reader.get_mut();
            let _ = s.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n",
            );
            let mut buf = [0u8; 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = reader.get_mut().write_all(&buf[..n]);
                    }
                    _ => break,
                }
            }
        }
    });
    (addr, seen)
}

/// Asks `server` for the echo switch at `/ws/chat`; returns the connection after
/// the 101's head.
fn open_echo_tunnel(server: &Server) -> std::net::TcpStream {
    let mut client = connect(server.addr());
    client
        .write_all(
            b"GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n",
        )
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        client.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    client
}

/// A WebSocket-like switch through wharf started with `extra` arguments.
fn tunnel_through(extra: &[&str]) {
    let (addr, seen) = echo_app();
    let (_t, root) = temp_root();
    let route = format!("/ws/=http://{addr}");
    let mut args = vec!["--proxy", route.as_str()];
    args.extend_from_slice(extra);
    let server = Server::start(&root, &args);
    let mut client = open_echo_tunnel(&server);
    for message in [&b"ping"[..], b"a longer message", b"x"] {
        client.write_all(message).unwrap();
        let mut back = vec![0u8; message.len()];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, message);
    }
    // A half-close passes through: the app still answers after the client's FIN,
    // and its own FIN ends the client's reading.
    client.write_all(b"last words").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"last words");
    let request = seen.lock().unwrap().clone().unwrap();
    assert_eq!(request.header("upgrade").as_deref(), Some("echo"));
    assert_eq!(request.header("connection").as_deref(), Some("upgrade"));
}

/// An app's 101 to a protocol the client did not offer is not passed on (RFC 9110
/// §7.8): the two ends would speak different protocols.
#[test]
fn a_switch_to_a_protocol_not_offered_is_a_bad_gateway() {
    let (addr, _) = echo_app();
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--proxy", &format!("/ws/=http://{addr}")]);
    let ask = |offer: &str| {
        let mut conn = Conn::open(&server);
        conn.send(
            format!(
                "GET /ws/x HTTP/1.1\r\nHost: x\r\nUpgrade: {offer}\r\nConnection: Upgrade\r\n\r\n"
            )
            .as_bytes(),
        );
        conn.read_response(false).status
    };
    assert_eq!(ask("foo"), 502);
    // Offered among others, in another case and with a version: a switch.
    assert_eq!(ask("foo, ECHO/2"), 101);
}

/// A shutdown closes the tunnels open (they have no end of their own to wait for)
/// and says how many.
#[test]
fn a_shutdown_closes_open_tunnels_and_says_so() {
    let (addr, _) = echo_app();
    let (_t, root) = temp_root();
    let route = format!("/ws/=http://{addr}");
    let mut server = Server::start(&root, &["--proxy", &route]);
    let mut client = open_echo_tunnel(&server);
    client.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    client.read_exact(&mut back).unwrap();
    server.signal("TERM");
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    assert!(server.expect_exit().success());
    let said = server.stderr_lines().join("\n");
    assert!(
        said.contains("finishing 0 responses, closing 1 tunnel "),
        "{said}"
    );
}

/// wharf with `/protected/report.txt` in an `internal` folder and `/download/`
/// proxied to `app`, which hands files back from there.
fn handing_back(app: &Upstream) -> (tempfile::TempDir, Server) {
    let (tmp, root) = temp_root();
    write_file(&root, "protected/report.txt", "0123456789");
    let conf = root.parent().unwrap().join("accel.toml");
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/protected/\"\ninternal = true\n[[rule]]\npath = \"/download/\"\nhandler = \"proxy\"\nupstreams = [\"http://{}\"]\n",
            app.addr
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    (tmp, server)
}

#[test]
fn an_app_hands_files_back_with_x_accel_redirect() {
    let app = Upstream::start(
        b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: /protected/report.txt\r\nSet-Cookie: seen=1\r\nContent-Type: application/pdf\r\nExpires: Thu, 01 Jan 2099 00:00:00 GMT\r\nContent-Length: 3\r\n\r\napp",
    );
    let (_t, server) = handing_back(&app);
    let res = get(&server, "/download/report");
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"0123456789", "the file, not the app's body");
    assert_eq!(res.header("set-cookie").as_deref(), Some("seen=1"));
    // The app's word on the file's type and freshness, as nginx keeps it.
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/pdf")
    );
    assert_eq!(
        res.header("expires").as_deref(),
        Some("Thu, 01 Jan 2099 00:00:00 GMT")
    );
    let etag = res.header("etag").expect("static validators");
    // Ranges and conditionals as for any file.
    let part = request(
        &server,
        "GET",
        "/download/report",
        &[("Range", "bytes=2-4")],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, b"234");
    let cached = request(
        &server,
        "GET",
        "/download/report",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(cached.status, 304);
    // Not reachable directly.
    assert_eq!(get(&server, "/protected/report.txt").status, 404);
}

/// An app's hand-back does not lead around the site's rules for the file's path,
/// as nginx applies a location's access rules to an internal redirect: an address
/// the path refuses is refused, and a path that wants credentials the request did
/// not give is not handed out; `internal` paths are what hand-backs are for.
#[test]
fn a_file_handed_back_keeps_the_rules_of_its_path() {
    let refused = Upstream::start(
        b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: /adm/x.txt\r\nContent-Length: 0\r\n\r\n",
    );
    let guarded = Upstream::start(
        b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: /priv/p.txt\r\nContent-Length: 0\r\n\r\n",
    );
    let internal = Upstream::start(
        b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: /protected/r.txt\r\nContent-Length: 0\r\n\r\n",
    );
    let (_t, root) = temp_root();
    write_file(&root, "adm/x.txt", "admin");
    write_file(&root, "priv/p.txt", "private");
    write_file(&root, "protected/r.txt", "report");
    let conf = root.parent().unwrap().join("rules.toml");
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/adm/\"\ndeny = [\"0.0.0.0/0\", \"::/0\"]\n\
             [[rule]]\npath = \"/priv/\"\nauth = true\n\
             [[rule]]\npath = \"/protected/\"\ninternal = true\n\
             [[rule]]\npath = \"/a/\"\nhandler = \"proxy\"\nupstreams = [\"http://{}\"]\n\
             [[rule]]\npath = \"/b/\"\nhandler = \"proxy\"\nupstreams = [\"http://{}\"]\n\
             [[rule]]\npath = \"/c/\"\nhandler = \"proxy\"\nupstreams = [\"http://{}\"]\n\
             [users]\nalice = \"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0+Qhk6Jd6eMbAqCwTd0gqMZV0S5M8ZdrJ0CdnwA2rM0\"\n",
            refused.addr, guarded.addr, internal.addr
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    assert_eq!(get(&server, "/adm/x.txt").status, 403);
    let res = get(&server, "/a/x");
    assert_eq!(res.status, 403);
    assert!(!res.body_text().contains("admin"));
    assert_eq!(get(&server, "/priv/p.txt").status, 401);
    let res = get(&server, "/b/x");
    assert_eq!(res.status, 403);
    assert!(!res.body_text().contains("private"));
    let res = get(&server, "/c/x");
    assert_eq!((res.status, res.body_text().as_str()), (200, "report"));

    // The README's layout: the whole site proxied, files first, one folder internal.
    let app = Upstream::start(
        b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: /protected/r.txt\r\nContent-Length: 0\r\n\r\n",
    );
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nfiles-first = true\nupstreams = [\"http://{}\"]\n\
             [[rule]]\npath = \"/protected/\"\ninternal = true\n",
            app.addr
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    let res = get(&server, "/download");
    assert_eq!((res.status, res.body_text().as_str()), (200, "report"));
    assert_eq!(get(&server, "/protected/r.txt").status, 404);
}

/// A folder handed back under a loose spelling is served, not redirected: the
/// path is the app's, and a redirect would name an internal place to the client.
#[test]
fn a_folder_handed_back_loosely_is_served_not_redirected() {
    let app = Upstream::start(
        b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: /protected//\r\nContent-Length: 0\r\n\r\n",
    );
    let (_t, server) = handing_back(&app);
    let res = get(&server, "/download/all");
    assert_eq!(res.status, 200, "{:?}", res.header("location"));
    assert!(
        res.body_text().contains("report.txt"),
        "{}",
        res.body_text()
    );
}

/// wharf proxying every path to an app that reads one request and hands its socket
/// to `answer`; returns wharf's temporary root, wharf, and a client connection on
/// which `GET /big` (`Connection: close`) has been sent.
fn ask_one_answer_app(
    answer: impl FnOnce(&mut std::net::TcpStream) + Send + 'static,
) -> (tempfile::TempDir, Server, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let Some(stream) = listener.incoming().flatten().next() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        if read_request(&mut reader).is_some() {
            answer(reader.get_mut());
        }
    });
    let (tmp, root) = temp_root();
    let server = Server::start(&root, &["--proxy", &format!("/=http://{addr}")]);
    let mut client = connect(server.addr());
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    (tmp, server, client)
}

#[test]
fn a_slow_client_never_holds_the_app() {
    // 32 MiB, far more than the sockets between them can hold.
    const SIZE: usize = 32 * 1024 * 1024;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = Arc::clone(&done);
    let (_t, _server, mut client) = ask_one_answer_app(move |s| {
        let _ =
            s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes());
        if s.write_all(&vec![b'b'; SIZE]).is_ok() {
            finished.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    // The client reads nothing, yet the app gets its whole answer out.
    let app_done = poll_until(IO_TIMEOUT, || {
        done.load(std::sync::atomic::Ordering::SeqCst).then_some(())
    });
    assert!(
        app_done.is_some(),
        "the app was held by a client that does not read"
    );
    let mut all = Vec::new();
    client.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(all.len() - end, SIZE);
    assert!(all[end..].iter().all(|&b| b == b'b'));
}

/// The byte at `offset` of a body made of 4-byte words each holding its own index,
/// so that a piece delivered out of place cannot go unnoticed.
fn patterned(offset: usize) -> u8 {
    ((offset / 4) as u32).to_le_bytes()[offset % 4]
}

#[test]
fn a_response_buffered_to_a_file_and_back_to_memory_keeps_its_order() {
    // The first part goes to the file while the client reads nothing; the second
    // comes while the client has read some of the file and stalls again (it must
    // queue behind the rest of the file); the third comes once the client has
    // caught up (memory, then the file again).
    // 32 MiB: far more than the sockets between them can hold.
    const PARTS: [usize; 3] = [32 << 20, 100_000, 32 << 20];
    const READ_EARLY: usize = 1 << 20;
    let size: usize = PARTS.iter().sum();
    let (next_tx, next_rx) = std::sync::mpsc::channel::<()>();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app_sent = Arc::clone(&sent);
    let (_t, _server, client) = ask_one_answer_app(move |s| {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
        let _ = s.write_all(head.as_bytes());
        let mut offset = 0;
        for (i, part) in PARTS.iter().enumerate() {
            if i > 0 && next_rx.recv().is_err() {
                return;
            }
            let bytes: Vec<u8> = (offset..offset + part).map(patterned).collect();
            if s.write_all(&bytes).is_err() {
                return;
            }
            offset += part;
            app_sent.store(offset, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let sent_by = |n: usize| {
        poll_until(IO_TIMEOUT, || {
            (sent.load(std::sync::atomic::Ordering::SeqCst) >= n).then_some(())
        })
    };
    assert!(
        sent_by(PARTS[0]).is_some(),
        "the app was held by the client"
    );
    let mut reader = BufReader::new(client);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 2 {
        line.clear();
    }
    let mut body = vec![0u8; READ_EARLY];
    reader.read_exact(&mut body).unwrap();
    next_tx.send(()).unwrap();
    assert!(sent_by(PARTS[0] + PARTS[1]).is_some());
    let mut rest = vec![0u8; PARTS[0] + PARTS[1] - READ_EARLY];
    reader.read_exact(&mut rest).unwrap();
    body.extend_from_slice(&rest);
    next_tx.send(()).unwrap();
    assert!(sent_by(size).is_some(), "the app was held by the client");
    reader.read_to_end(&mut body).unwrap();
    assert_eq!(body.len(), size, "the body is complete");
    let wrong = (0..size).find(|&i| body[i] != patterned(i));
    assert_eq!(wrong, None, "the body is out of order from that offset");
}

#[test]
fn server_sent_events_arrive_one_by_one() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            if read_request(&mut reader).is_some() {
                let s = reader.get_mut();
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
                for i in 0..3 {
                    let event = format!("data: {i}\n\n");
                    let _ = s.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
                    let _ = s.flush();
                    // The next event only after the client saw this one.
                    if go_rx.recv().is_err() {
                        return;
                    }
                }
                let _ = s.write_all(b"0\r\n\r\n");
            }
        }
    });
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--proxy", &format!("/=http://{addr}")]);
    let mut client = BufReader::new(connect(server.addr()));
    client
        .get_mut()
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut seen = String::new();
    for i in 0..3 {
        let want = format!("data: {i}");
        while !seen.contains(&want) {
            let mut line = String::new();
            assert!(
                client.read_line(&mut line).unwrap() > 0,
                "ended before {want}: {seen}"
            );
            seen.push_str(&line);
        }
        go_tx.send(()).unwrap();
    }
    assert!(seen
        .to_lowercase()
        .contains("content-type: text/event-stream"));
}

#[test]
fn https_upstreams_are_verified() {
    let (tmp, root) = temp_root();
    let app_root = tmp.path().join("app");
    write_file(&app_root, "secure.txt", "over tls");
    let cert = common::client::localhost_cert();
    let (c, k) = common::client::write_cert(tmp.path(), &cert);
    let app = Server::start_https(
        &app_root,
        &[
            "--tls-cert",
            c.to_str().unwrap(),
            "--tls-key",
            k.to_str().unwrap(),
        ],
    );
    let url = format!("https://localhost:{}", app.port());
    let rule = |extra: &str| {
        format!("[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"{url}\"]\n{extra}")
    };
    // Trusted through tls-ca (relative to the file): served.
    let conf = tmp.path().join("trusting.toml");
    std::fs::write(&conf, rule("tls-ca = \"cert.pem\"\n")).unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    let res = get(&server, "/secure.txt");
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"over tls");
    // A self-signed certificate nobody vouches for: refused.
    let conf = tmp.path().join("plain.toml");
    std::fs::write(&conf, rule("")).unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    assert_eq!(get(&server, "/secure.txt").status, 502);
}

#[test]
fn malformed_upstream_answers_are_502() {
    let (_t, root) = temp_root();
    let long_header = format!(
        "HTTP/1.1 200 OK\r\nX-Long: {}\r\nContent-Length: 0\r\n\r\n",
        "v".repeat(1024 * 1024)
    );
    // Response heads are bounded by the 64 KiB read buffer (hyper may take up to
    // twice that in one read): one of 48 KiB passes, 130 KiB does not.
    let head_of = |kib: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nX-Long: {}\r\nContent-Length: 0\r\n\r\n",
            "v".repeat(kib * 1024)
        )
    };
    let app = Upstream::start(head_of(48).as_bytes());
    let server = Server::start(&root, &["--proxy", &format!("/=http://{}", app.addr)]);
    assert_eq!(get(&server, "/x").status, 200, "a 48 KiB head");
    for answer in [
        b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
        b"HTTP/1.1 2000 Weird\r\n\r\n".to_vec(),
        // Three digits, but no status HTTP defines (RFC 9110 §15).
        b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        b"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n".to_vec(),
        // A transfer coding besides the chunks, which would reach the client coded.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
            .to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nConnection: close\r\n\r\nhi".to_vec(),
        head_of(130).into_bytes(),
        long_header.into_bytes(),
    ] {
        let app = Upstream::start(&answer);
        let server = Server::start(&root, &["--proxy", &format!("/=http://{}", app.addr)]);
        let res = get(&server, "/x");
        assert_eq!(
            res.status,
            502,
            "{}",
            String::from_utf8_lossy(&answer[..answer.len().min(60)])
        );
    }
}

#[test]
fn the_json_log_names_the_upstream_and_its_time() {
    let app = Upstream::start(OK);
    let (_t, root) = temp_root();
    let upstream = format!("http://{}", app.addr);
    let server = Server::start(
        &root,
        &[
            "--proxy",
            &format!("/api/={upstream}"),
            "--log-format",
            "json",
        ],
    );
    get(&server, "/api/x");
    let line = server.wait_for_log(|l| l.contains("/api/x"));
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["upstream"], upstream.as_str());
    assert!(
        entry["upstream_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{line}"
    );
    get(&server, "/static");
    let line = server.wait_for_log(|l| l.contains("/static"));
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(entry["upstream"].is_null(), "{line}");
}

#[test]
fn files_first_never_lists_folders() {
    let app = Upstream::start(OK);
    let (_t, root) = temp_root();
    write_file(&root, "sub/x.txt", "x");
    let conf = root.parent().unwrap().join("ff2.toml");
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"http://{}\"]\nfiles-first = true\n",
            app.addr
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    assert_eq!(get(&server, "/").body, b"hello", "the app answers the root");
    assert_eq!(get(&server, "/sub").body, b"hello");
    assert_eq!(get(&server, "/sub/x.txt").body, b"x");
}

/// The status an extended CONNECT for `path` with `protocol` gets.
async fn extended_connect(server: &Server, path: &str, protocol: &'static str) -> u16 {
    h2_extended_connect(server, path, protocol)
        .await
        .0
        .status()
        .as_u16()
}

/// An extended CONNECT is a tunnel only through the proxy, for a protocol an app can
/// switch to, and only when the app's handshake answers the key wharf made:
/// elsewhere, or for h2c, 405; a wrong `Sec-WebSocket-Accept` 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_connect_needs_the_proxy_and_a_right_websocket_answer() {
    // An app that switches, answering every key with the same wrong accept value.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            if read_request(&mut reader).is_none() {
                continue;
            }
            let _ = reader.get_mut().write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
            );
        }
    });
    let (_t, root) = temp_root();
    let route = format!("/ws/=http://{addr}");
    let server = Server::start(&root, &["--proxy", route.as_str()]);
    assert_eq!(extended_connect(&server, "/ws/", "websocket").await, 502);
    assert_eq!(
        extended_connect(&server, "/static/", "websocket").await,
        405
    );
}

/// A tunnel whose client stops reading while the app keeps sending ends after the
/// idle timeout: a write blocked on the client is no movement, and the app's
/// connection is closed rather than held.
#[test]
fn a_tunnel_whose_client_stops_reading_ends_at_the_idle_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let app_done = Arc::new(Mutex::new(false));
    let done = Arc::clone(&app_done);
    thread::spawn(move || {
        if let Some(stream) = listener.incoming().flatten().next() {
            let mut reader = BufReader::new(stream);
            if read_request(&mut reader).is_none() {
                return;
            }
            let s = reader.get_mut();
            let _ = s.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n",
            );
            // Sends until wharf lets go of the connection.
            let chunk = vec![b'x'; 64 * 1024];
            while s.write_all(&chunk).is_ok() {}
            *done.lock().unwrap() = true;
        }
    });
    let (_t, root) = temp_root();
    let route = format!("/ws/=http://{addr}");
    let server = Server::start(&root, &["--proxy", &route, "--idle-timeout", "1s"]);
    let mut client = connect(server.addr());
    client
        .write_all(b"GET /ws/ HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    client.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 101");
    // The client reads nothing more; the app's writes block, then fail.
    let ended = poll_until(std::time::Duration::from_secs(20), || {
        app_done.lock().unwrap().then_some(())
    });
    assert!(
        ended.is_some(),
        "the tunnel still holds the app's connection"
    );
    drop(client);
}

/// An app answering its own name, and `GET /health` with 200 or 503 as `healthy`
/// says.
fn named_app(name: &'static str, healthy: Arc<std::sync::atomic::AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let healthy = Arc::clone(&healthy);
            thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                while let Some(request) = read_request(&mut reader) {
                    let up = healthy.load(std::sync::atomic::Ordering::SeqCst);
                    let (status, body) = match request.request_line().contains("/health") {
                        true if up => ("200 OK", "ok"),
                        true => ("503 Service Unavailable", "down"),
                        false => ("200 OK", name),
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr.to_string()
}

/// `health-uri`: an upstream failing its check leaves the rotation, and comes back
/// once it passes again.
#[test]
fn health_checks_take_a_failing_upstream_out_and_back() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let b_healthy = Arc::new(AtomicBool::new(false));
    let a = named_app("a", Arc::new(AtomicBool::new(true)));
    let b = named_app("b", Arc::clone(&b_healthy));
    let (_t, root) = temp_root();
    let conf = root.parent().unwrap().join("health.toml");
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"http://{a}\", \"http://{b}\"]\n\
             balance = \"round-robin\"\nhealth-uri = \"/health\"\nhealth-interval = \"100ms\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    let answers = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| String::from_utf8_lossy(&get(&server, "/x").body).into_owned())
            .collect()
    };
    // The first requests start the checks; b fails its check, and then only a answers.
    let only_a = poll_until(std::time::Duration::from_secs(10), || {
        answers(6).iter().all(|t| t == "a").then_some(())
    });
    assert!(only_a.is_some(), "b is still in rotation");
    b_healthy.store(true, Ordering::SeqCst);
    let b_back = poll_until(std::time::Duration::from_secs(10), || {
        answers(4).iter().any(|t| t == "b").then_some(())
    });
    assert!(b_back.is_some(), "b did not come back");
}

#[test]
fn an_app_pausing_mid_body_is_cut_off_at_the_routes_response_timeout() {
    // Sends its head and 10 of 1,000,000 bytes (more than is read whole before
    // answering), then nothing, holding the connection.
    let app = TcpListener::bind("127.0.0.1:0").unwrap();
    let app_addr = app.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in app.incoming().flatten() {
            let mut reader = BufReader::new(s.try_clone().unwrap());
            if read_request(&mut reader).is_some() {
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nContent-Type: text/plain\r\n\r\n0123456789",
                );
            }
            held.push(s);
        }
    });
    let (_t, root) = temp_root();
    let conf = root.parent().unwrap().join("pause.toml");
    std::fs::write(
        &conf,
        format!("[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"http://{app_addr}\"]\nresponse-timeout = \"1s\"\n"),
    )
    .unwrap();
    // The client's idle timeout is longer than the wait allowed here (10 s): only
    // the route's timeout can end the response within it.
    let server = Server::start(
        &root,
        &["--config", conf.to_str().unwrap(), "--log-format", "json"],
    );
    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/x", &[]));
    let head = conn.read_head().expect("the head");
    assert_eq!(head.status, 200);
    // Broken off: the connection closes with the body short, well within the wait.
    let rest = conn.read_to_eof().expect("closed, not timed out");
    assert!(rest.len() < 1_000_000, "{} bytes", rest.len());
    let log = server.wait_for_stderr(|l| l.contains("broken off"), LOG_TIMEOUT);
    assert!(log.contains("paused too long"), "{log}");
    // And the access log says the answer was cut short.
    let line = server.wait_for_log(|l| l.contains("\"/x\""));
    let entry: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(entry["complete"], false, "{line}");
    assert_eq!(entry["bytes"], 10, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_204_reaches_an_h2_client_without_a_length() {
    // A Content-Length on a 204 is the app's mistake (RFC 9110 §8.6); an HTTP/2
    // client would refuse the stream that carried it.
    let app = Upstream::start(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
    let (_t, server) = proxied(&app, "/=http://");
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let req = http::Request::get(format!("http://{}/nothing", server.addr()))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    let response = response.await.expect("a well-formed response");
    assert_eq!(response.status(), 204);
    assert!(response.headers().get("content-length").is_none());
    let mut body = response.into_body();
    assert!(body.data().await.is_none(), "no body, and no stream error");
}

#[test]
fn an_apps_redirect_to_its_own_address_is_rewritten_to_where_the_client_finds_it() {
    // An app answering every request with a redirect to `location(its address)`.
    let app_redirecting = |location: fn(&str) -> String| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let answer = format!(
            "HTTP/1.1 302 Found\r\nLocation: {0}\r\nRefresh: 0; URL=\"{0}\"\r\nContent-Length: 0\r\n\r\n",
            location(&addr)
        );
        thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                while read_request(&mut reader).is_some() {
                    if stream.write_all(answer.as_bytes()).is_err() {
                        break;
                    }
                }
            }
        });
        addr
    };
    let (_t, root) = temp_root();
    let own = app_redirecting(|addr| format!("http://{addr}/v1/login?next=%2F"));
    let top = app_redirecting(|addr| format!("HTTP://{addr}/v1"));
    let elsewhere = app_redirecting(|_| "https://accounts.example/login".to_string());
    let slashes = app_redirecting(|addr| format!("http://{addr}//evil.example/x"));
    let backslash = app_redirecting(|addr| format!("http://{addr}/\\evil.example/"));
    let server = Server::start(
        &root,
        &[
            "--proxy",
            &format!("/api/=http://{own}/v1/"),
            "--proxy",
            &format!("/top/=http://{top}/v1/"),
            "--proxy",
            &format!("/out/=http://{elsewhere}/"),
            "--proxy",
            &format!("/s/=http://{slashes}"),
            "--proxy",
            &format!("/b/=http://{backslash}"),
        ],
    );
    // A path on the app that would read as another host once its origin is cut
    // off stays a path on this site.
    let res = get(&server, "/s/x");
    assert_eq!(
        res.header("location").as_deref(),
        Some("/%2Fevil.example/x")
    );
    assert_eq!(
        res.header("refresh").as_deref(),
        Some("0; URL=\"/%2Fevil.example/x\"")
    );
    assert_eq!(
        get(&server, "/b/x").header("location").as_deref(),
        Some("/%5Cevil.example/")
    );
    // As nginx's `proxy_redirect default` does.
    let res = get(&server, "/api/x");
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location").as_deref(),
        Some("/api/login?next=%2F")
    );
    // `Refresh` names a place too, and is rewritten the same way.
    assert_eq!(
        res.header("refresh").as_deref(),
        Some("0; URL=\"/api/login?next=%2F\"")
    );
    assert_eq!(
        get(&server, "/top/x").header("location").as_deref(),
        Some("/top/")
    );
    let res = get(&server, "/out/x");
    assert_eq!(
        res.header("location").as_deref(),
        Some("https://accounts.example/login")
    );
    assert_eq!(
        res.header("refresh").as_deref(),
        Some("0; URL=\"https://accounts.example/login\"")
    );
}

/// An app that takes a request and never answers: the client leaving closes
/// wharf's connection to it (nginx's default, `proxy_ignore_client_abort off`),
/// long before the response timeout.
#[test]
fn a_client_that_leaves_closes_the_upstream_connection() {
    let (app_addr, seen) = silent_app();
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--proxy", &format!("/=http://{app_addr}")]);
    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/wait", &[]));
    assert_eq!(
        seen.recv_timeout(std::time::Duration::from_secs(10)),
        Ok("connected")
    );
    drop(conn);
    assert_eq!(
        seen.recv_timeout(std::time::Duration::from_secs(10)),
        Ok("closed"),
        "the upstream connection outlived the client"
    );
}

/// An access rule on a folder the app answers guards the folder's own name too:
/// `/app/admin` never reaches the app past an `/app/admin/**` allow list, as the
/// app may well answer it as `/app/admin/`.
#[test]
fn an_app_folders_access_rule_guards_its_name_without_the_slash() {
    let app = Upstream::start(OK);
    let (tmp, root) = temp_root();
    let conf = tmp.path().join("wharf.toml");
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/app/**\"\nhandler = \"proxy\"\nupstreams = [\"http://{}\"]\n\n\
             [[rule]]\npath = \"/app/admin/**\"\nallow = [\"10.0.0.0/8\"]\n",
            app.addr
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    for path in [
        "/app/admin",
        "/app/admin/",
        "/app/admin/users",
        "/app/admin?x=1",
    ] {
        assert_eq!(get(&server, path).status, 403, "{path}");
    }
    assert!(app.seen().is_empty(), "a guarded path reached the app");
    assert_eq!(get(&server, "/app/administrators").status, 200);
    assert_eq!(app.seen().len(), 1);
}
