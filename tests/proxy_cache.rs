//! The shared cache of proxied responses (`--proxy-cache`), against an app started
//! here that counts what reaches it: hits, validation, what may not be stored,
//! `Vary`, request directives, invalidation, collapsed forwarding, stale answers
//! when the app fails, eviction, and the disk tier across restarts.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use common::*;

/// One request as the app received it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn method(&self) -> &str {
        self.head.split(' ').next().unwrap_or("")
    }

    fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }
}

type Answer = dyn Fn(&Seen, usize) -> Vec<u8> + Send + Sync;

/// Holds the app's answers until opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// An HTTP/1.1 app on a loopback port that answers each request with what
/// `answer` makes of it (and how many requests for its path came before, counting
/// it), closing every connection after one exchange.
struct App {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stopped: Arc<AtomicBool>,
}

impl App {
    fn start(answer: impl Fn(&Seen, usize) -> Vec<u8> + Send + Sync + 'static) -> App {
        App::start_gated(answer, None)
    }

    fn start_gated(
        answer: impl Fn(&Seen, usize) -> Vec<u8> + Send + Sync + 'static,
        gate: Option<Arc<Gate>>,
    ) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(AtomicBool::new(false));
        let answer: Arc<Answer> = Arc::new(answer);
        let (record, stop) = (Arc::clone(&seen), Arc::clone(&stopped));
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let (answer, record, gate) =
                    (Arc::clone(&answer), Arc::clone(&record), gate.clone());
                thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let request = Seen { head };
                    if let Some(n) = request
                        .header("content-length")
                        .and_then(|v| v.parse::<usize>().ok())
                    {
                        let mut body = vec![0; n];
                        let _ = reader.read_exact(&mut body);
                    }
                    let count = {
                        let mut seen = record.lock().unwrap();
                        seen.push(request.clone());
                        seen.iter().filter(|s| s.path() == request.path()).count()
                    };
                    if let Some(gate) = gate {
                        gate.wait();
                    }
                    let _ = reader.get_mut().write_all(&answer(&request, count));
                });
            }
        });
        App {
            addr,
            seen,
            stopped,
        }
    }

    /// Requests that reached the app for `path`.
    fn hits(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path() == path)
            .cloned()
            .collect()
    }

    /// Closes the listening socket: later connections are refused.
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        poll_until(Duration::from_secs(10), || {
            TcpStream::connect(&self.addr).is_err().then_some(())
        })
        .expect("the app stops listening");
    }
}

/// A 200 with `fields` (one per line, without CRLF) and `body`.
fn ok(fields: &[&str], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len());
    for f in fields {
        out.push_str(f);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// wharf proxying everything to `app` with a cache, plus `extra` arguments.
fn cached(app: &App, extra: &[&str]) -> (tempfile::TempDir, Server) {
    let (tmp, root) = temp_root();
    let arg = format!("/=http://{}", app.addr);
    let mut args = vec!["--proxy", &arg, "--proxy-cache", "16MiB"];
    args.extend_from_slice(extra);
    let server = Server::start(&root, &args);
    (tmp, server)
}

fn cache_status(res: &Response) -> String {
    res.header("cache-status").unwrap_or_default()
}

#[test]
fn a_fresh_response_is_answered_from_the_cache_with_its_age() {
    let app = App::start(|_, n| {
        ok(
            &["Cache-Control: max-age=600", "ETag: \"v1\""],
            &format!("hello {n}"),
        )
    });
    let (_t, server) = cached(&app, &[]);
    let first = get(&server, "/page");
    assert_eq!((first.status, first.body_text().as_str()), (200, "hello 1"));
    assert!(cache_status(&first).contains("fwd=uri-miss"), "{first:?}");
    assert!(cache_status(&first).contains("stored"));
    let second = get(&server, "/page");
    assert_eq!(
        (second.status, second.body_text().as_str()),
        (200, "hello 1")
    );
    assert!(
        cache_status(&second).starts_with("wharf; hit"),
        "{second:?}"
    );
    assert!(second.header("age").is_some());
    assert_eq!(app.hits("/page").len(), 1);
    // HEAD from the stored GET, with its length.
    let head = request(&server, "HEAD", "/page", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(7));
    // The client's own conditionals and ranges, answered here.
    let not_modified = request(&server, "GET", "/page", &[("If-None-Match", "\"v1\"")]);
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag").as_deref(), Some("\"v1\""));
    let part = request(&server, "GET", "/page", &[("Range", "bytes=0-3")]);
    assert_eq!((part.status, part.body_text().as_str()), (206, "hell"));
    assert_eq!(part.header("content-range").as_deref(), Some("bytes 0-3/7"));
    let beyond = request(&server, "GET", "/page", &[("Range", "bytes=100-")]);
    assert_eq!(beyond.status, 416);
    let failed = request(&server, "GET", "/page", &[("If-Match", "\"other\"")]);
    assert_eq!(failed.status, 412);
    assert!(cache_status(&failed).contains("hit"), "{failed:?}");
    assert_eq!(app.hits("/page").len(), 1, "none of these reached the app");
    // Never asked of the app: the client's range and conditionals.
    assert!(app.hits("/page")[0].header("if-none-match").is_none());
}

#[test]
fn fields_kept_private_reach_the_user_who_asked_but_are_not_stored() {
    let app = App::start(|_, n| {
        ok(
            &[
                "Cache-Control: max-age=600, private=\"Set-Cookie\"",
                &format!("Set-Cookie: session={n}"),
            ],
            "page",
        )
    });
    let (_t, server) = cached(&app, &[]);
    let first = get(&server, "/login");
    assert_eq!(first.status, 200);
    assert!(cache_status(&first).contains("stored"), "{first:?}");
    // RFC 9111 §5.2.2.7: only the stored copy goes without them.
    assert_eq!(first.header("set-cookie").as_deref(), Some("session=1"));
    // Fresh from the app: no Age (RFC 9111 §5.1).
    assert_eq!(first.header("age"), None);
    let second = get(&server, "/login");
    assert!(
        cache_status(&second).starts_with("wharf; hit"),
        "{second:?}"
    );
    assert_eq!(second.header("set-cookie"), None);
    assert_eq!(app.hits("/login").len(), 1);
}

#[test]
fn what_a_shared_cache_may_not_store_always_reaches_the_app() {
    let app = App::start(|req, n| {
        let cc = match req.path() {
            "/no-store" => "Cache-Control: no-store, max-age=600",
            "/private" => "Cache-Control: private, max-age=600",
            "/nothing" => "X-Nothing: 1",
            "/star" => "Vary: *",
            _ => "Cache-Control: max-age=600",
        };
        let mut fields = vec![cc];
        if req.path() == "/star" {
            fields.push("Cache-Control: max-age=600");
        }
        ok(&fields, &format!("answer {n}"))
    });
    let (_t, server) = cached(&app, &[]);
    for path in ["/no-store", "/private", "/nothing", "/star"] {
        assert_eq!(get(&server, path).body_text(), "answer 1");
        assert_eq!(
            get(&server, path).body_text(),
            "answer 2",
            "{path} was stored"
        );
    }
    // Authorization: stored only when the response says it is for everyone.
    let auth = [("Authorization", "Bearer x")];
    request(&server, "GET", "/auth", &auth);
    request(&server, "GET", "/auth", &auth);
    assert_eq!(app.hits("/auth").len(), 2);
    // The request's own no-store keeps it out too.
    let no_store = [("Cache-Control", "no-store")];
    request(&server, "GET", "/fresh", &no_store);
    assert_eq!(get(&server, "/fresh").body_text(), "answer 2");
}

#[test]
fn vary_keeps_one_response_per_variant() {
    let app = App::start(|req, n| {
        let lang = req.header("accept-language").unwrap_or_default();
        ok(
            &["Cache-Control: max-age=600", "Vary: Accept-Language"],
            &format!("{lang} {n}"),
        )
    });
    let (_t, server) = cached(&app, &[]);
    let en = [("Accept-Language", "en")];
    let fr = [("Accept-Language", "fr")];
    assert_eq!(request(&server, "GET", "/v", &en).body_text(), "en 1");
    assert_eq!(request(&server, "GET", "/v", &fr).body_text(), "fr 2");
    assert_eq!(request(&server, "GET", "/v", &en).body_text(), "en 1");
    let fr_again = request(&server, "GET", "/v", &fr);
    assert_eq!(fr_again.body_text(), "fr 2");
    assert!(cache_status(&fr_again).contains("hit"));
    let none = get(&server, "/v");
    assert!(cache_status(&none).contains("fwd=vary-miss"), "{none:?}");
    assert_eq!(app.hits("/v").len(), 3);
}

#[test]
fn stale_responses_are_validated_and_a_304_refreshes_them() {
    let app = App::start(|req, n| {
        if req.header("if-none-match").as_deref() == Some("\"t1\"") {
            format!(
                "HTTP/1.1 304 Not Modified\r\nETag: \"t1\"\r\nCache-Control: max-age=0\r\nX-Version: {n}\r\nConnection: close\r\n\r\n"
            )
            .into_bytes()
        } else {
            ok(
                &["Cache-Control: max-age=0", "ETag: \"t1\"", "X-Version: 1"],
                "body",
            )
        }
    });
    let (_t, server) = cached(&app, &[]);
    assert_eq!(get(&server, "/s").body_text(), "body");
    let second = get(&server, "/s");
    assert_eq!((second.status, second.body_text().as_str()), (200, "body"));
    assert_eq!(second.header("x-version").as_deref(), Some("2"));
    assert!(
        cache_status(&second).contains("fwd-status=304"),
        "{second:?}"
    );
    let hits = app.hits("/s");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[1].header("if-none-match").as_deref(), Some("\"t1\""));
    // The refreshed fields are what the next answer carries.
    assert_eq!(get(&server, "/s").header("x-version").as_deref(), Some("3"));
}

/// A 304 that adds `Vary` (an app adding `Vary: Origin` with its CORS fields only
/// when a request has an `Origin`): the refreshed response is kept for requests
/// with the same `Origin` only, never given to others (RFC 9111 §4.1).
#[test]
fn a_304_that_adds_vary_keeps_the_response_for_its_variant_only() {
    let app = App::start(|req, _| {
        let origin = req.header("origin");
        if req.header("if-none-match").as_deref() == Some("\"c1\"") {
            let cors = origin
                .map(|o| format!("Vary: Origin\r\nAccess-Control-Allow-Origin: {o}\r\n"))
                .unwrap_or_default();
            format!(
                "HTTP/1.1 304 Not Modified\r\nETag: \"c1\"\r\nCache-Control: max-age=600\r\n{cors}Connection: close\r\n\r\n"
            )
            .into_bytes()
        } else {
            let allow = origin.map(|o| format!("Access-Control-Allow-Origin: {o}"));
            let mut fields = vec!["Cache-Control: max-age=0", "ETag: \"c1\""];
            if let Some(allow) = &allow {
                fields.extend(["Vary: Origin", allow]);
            }
            ok(&fields, "body")
        }
    });
    let (_t, server) = cached(&app, &[]);
    assert_eq!(get(&server, "/cors").body_text(), "body");
    let a = request(&server, "GET", "/cors", &[("Origin", "https://a.example")]);
    assert_eq!(
        a.header("access-control-allow-origin").as_deref(),
        Some("https://a.example")
    );
    assert!(cache_status(&a).contains("fwd-status=304"), "{a:?}");
    // The variant it was kept for is a hit.
    let again = request(&server, "GET", "/cors", &[("Origin", "https://a.example")]);
    assert!(cache_status(&again).contains("hit"), "{again:?}");
    assert_eq!(
        again.header("access-control-allow-origin").as_deref(),
        Some("https://a.example")
    );
    let b = request(&server, "GET", "/cors", &[("Origin", "https://b.example")]);
    assert_eq!(
        b.header("access-control-allow-origin").as_deref(),
        Some("https://b.example"),
        "{b:?}"
    );
    let none = get(&server, "/cors");
    assert_eq!(none.header("access-control-allow-origin"), None, "{none:?}");
}

#[test]
fn a_304_naming_another_validator_does_not_refresh_the_stored_response() {
    // The app's response changed to "t2" and its 304 says so: the stored "t1"
    // response must not be refreshed by it (RFC 9111 §4.3.4); the response is
    // asked for whole instead. Likewise for `Last-Modified`.
    let app = App::start(|req, n| {
        let asked = |name: &str| req.header(name).is_some();
        if asked("if-none-match") || asked("if-modified-since") {
            let validator = if req.path() == "/tag" {
                "ETag: \"t2\""
            } else {
                "Last-Modified: Tue, 01 Dec 2026 11:00:00 GMT"
            };
            format!(
                "HTTP/1.1 304 Not Modified\r\n{validator}\r\nCache-Control: max-age=600\r\nConnection: close\r\n\r\n"
            )
            .into_bytes()
        } else if n == 1 {
            let validator = if req.path() == "/tag" {
                "ETag: \"t1\""
            } else {
                "Last-Modified: Tue, 01 Dec 2026 10:00:00 GMT"
            };
            ok(&["Cache-Control: max-age=0", validator], "old")
        } else {
            ok(&["Cache-Control: max-age=600"], "new")
        }
    });
    let (_t, server) = cached(&app, &[]);
    for path in ["/tag", "/date"] {
        assert_eq!(get(&server, path).body_text(), "old", "{path}");
        let second = get(&server, path);
        assert_eq!(second.body_text(), "new", "{path}: {second:?}");
        assert_eq!(get(&server, path).body_text(), "new", "{path}");
        let hits = app.hits(path);
        assert_eq!(hits.len(), 3, "{path}");
        assert!(hits[2].header("if-none-match").is_none(), "{path}");
        assert!(hits[2].header("if-modified-since").is_none(), "{path}");
    }
}

#[test]
fn request_directives_are_honoured() {
    let app = App::start(|_, n| ok(&["Cache-Control: max-age=600"], &format!("v{n}")));
    let (_t, server) = cached(&app, &[]);
    let only = [("Cache-Control", "only-if-cached")];
    let miss = request(&server, "GET", "/r", &only);
    assert_eq!(miss.status, 504);
    assert!(app.hits("/r").is_empty());
    // Nothing went forward, so nothing says it did (RFC 9211 §2.2).
    assert!(!cache_status(&miss).contains("fwd"), "{miss:?}");
    assert_eq!(get(&server, "/r").body_text(), "v1");
    assert_eq!(request(&server, "GET", "/r", &only).body_text(), "v1");
    let no_cache = [("Cache-Control", "no-cache")];
    assert_eq!(request(&server, "GET", "/r", &no_cache).body_text(), "v2");
    let min_fresh = [("Cache-Control", "min-fresh=100000")];
    assert_eq!(request(&server, "GET", "/r", &min_fresh).body_text(), "v3");
    assert_eq!(get(&server, "/r").body_text(), "v3");
}

#[test]
fn unsafe_requests_invalidate_their_target_and_its_location() {
    let app = App::start(|req, n| {
        if req.method() == "POST" {
            b"HTTP/1.1 201 Created\r\nLocation: /other\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec()
        } else {
            ok(&["Cache-Control: max-age=600"], &format!("v{n}"))
        }
    });
    let (_t, server) = cached(&app, &[]);
    assert_eq!(get(&server, "/item").body_text(), "v1");
    assert_eq!(get(&server, "/other").body_text(), "v1");
    assert_eq!(get(&server, "/item").body_text(), "v1");
    let posted = server.exchange(
        b"POST /item HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        false,
    );
    assert_eq!(posted.status, 201);
    assert_eq!(cache_status(&posted), "wharf; fwd=method");
    assert_eq!(
        get(&server, "/item").body_text(),
        "v3",
        "the target was dropped"
    );
    assert_eq!(
        get(&server, "/other").body_text(),
        "v2",
        "the Location was dropped"
    );
}

#[test]
fn a_hundred_concurrent_misses_make_one_upstream_request() {
    let gate = Arc::new(Gate::default());
    let app = App::start_gated(
        |_, n| ok(&["Cache-Control: max-age=600"], &format!("only {n}")),
        Some(Arc::clone(&gate)),
    );
    let (_t, server) = cached(&app, &[]);
    let addr = server.addr().to_string();
    // Every client has sent its request before the app answers the first.
    let mut clients = Vec::new();
    for _ in 0..100 {
        let mut stream = connect(&addr);
        stream
            .write_all(b"GET /hot HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        clients.push(stream);
    }
    poll_until(Duration::from_secs(10), || {
        (!app.hits("/hot").is_empty()).then_some(())
    })
    .expect("the first request reaches the app");
    gate.open();
    for mut stream in clients {
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("only 1"), "{answer}");
    }
    assert_eq!(app.hits("/hot").len(), 1);
}

#[test]
fn stale_if_error_answers_while_the_app_is_down_or_failing() {
    let app = App::start(|req, n| {
        match (req.path(), n) {
        ("/failing", 2) => {
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops".to_vec()
        }
        ("/strict", _) => ok(&["Cache-Control: max-age=0, must-revalidate", "ETag: \"s\""], "strict"),
        ("/plain", _) => ok(&["Cache-Control: max-age=0", "ETag: \"p\""], "plain"),
        _ => ok(&["Cache-Control: max-age=0, stale-if-error=600", "ETag: \"e\""], &format!("kept {n}")),
    }
    });
    let (_t, server) = cached(&app, &[]);
    assert_eq!(get(&server, "/failing").body_text(), "kept 1");
    let failed = get(&server, "/failing");
    assert_eq!(
        (failed.status, failed.body_text().as_str()),
        (200, "kept 1")
    );
    assert!(
        cache_status(&failed).contains("stale-if-error"),
        "{failed:?}"
    );
    assert_eq!(get(&server, "/down").body_text(), "kept 1");
    assert_eq!(get(&server, "/strict").body_text(), "strict");
    assert_eq!(get(&server, "/plain").body_text(), "plain");
    app.stop();
    let down = get(&server, "/down");
    assert_eq!((down.status, down.body_text().as_str()), (200, "kept 1"));
    assert!(cache_status(&down).contains("stale-if-error"), "{down:?}");
    // must-revalidate: no stale answer, and a 504 (RFC 9111 §5.2.2.2).
    let strict = get(&server, "/strict");
    assert_eq!(strict.status, 504);
    assert!(
        cache_status(&strict).contains("fwd=stale; detail=unreachable"),
        "{strict:?}"
    );
    // Stale without a word on it: not answered stale either (as nginx), the app's
    // failure shows as it is.
    let plain = get(&server, "/plain");
    assert_eq!(plain.status, 502);
}

#[test]
fn the_memory_bound_evicts_the_least_recently_used() {
    let body = "x".repeat(4000);
    let app = App::start(move |_, _| ok(&["Cache-Control: max-age=600"], &body));
    let (_tmp, root) = temp_root();
    let arg = format!("/=http://{}", app.addr);
    let server = Server::start(&root, &["--proxy", &arg, "--proxy-cache", "64KiB"]);
    get(&server, "/0");
    for i in 1..40 {
        get(&server, &format!("/{i}"));
        // /0 stays the most recently used.
        assert!(
            cache_status(&get(&server, "/0")).contains("hit"),
            "/0 evicted at {i}"
        );
    }
    let old = get(&server, "/1");
    assert!(cache_status(&old).contains("fwd=uri-miss"), "{old:?}");
    assert_eq!(app.hits("/1").len(), 2);
    assert!(cache_status(&get(&server, "/39")).contains("hit"));
    assert_eq!(app.hits("/0").len(), 1);
}

#[test]
fn large_bodies_are_stored_as_they_stream() {
    let big = "b".repeat(3 << 20);
    let sent = big.clone();
    let app = App::start(move |req, _| {
        if req.path() == "/chunked" {
            let mut out = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
            for piece in sent.as_bytes().chunks(100_000) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        } else {
            ok(&["Cache-Control: max-age=600"], &sent)
        }
    });
    // 32 MiB of memory stores objects up to 4 MiB.
    let (_tmp, root) = temp_root();
    let arg = format!("/=http://{}", app.addr);
    let server = Server::start(&root, &["--proxy", &arg, "--proxy-cache", "32MiB"]);
    for path in ["/big", "/chunked"] {
        assert_eq!(get(&server, path).body, big.as_bytes());
        let again = get(&server, path);
        assert_eq!(again.body, big.as_bytes(), "{path}");
        assert!(
            cache_status(&again).contains("hit"),
            "{path}: {:?}",
            again.headers
        );
        assert_eq!(app.hits(path).len(), 1);
    }
}

/// The entry files in a cache folder.
fn entry_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_disk_tier_survives_a_restart_and_damaged_entries_are_misses() {
    let app = App::start(|req, n| {
        ok(
            &["Cache-Control: max-age=600"],
            &format!("{} {n}", req.path()),
        )
    });
    let (tmp, root) = temp_root();
    let dir = tmp.path().join("cache");
    let arg = format!("/=http://{}", app.addr);
    let args = [
        "--proxy",
        arg.as_str(),
        "--proxy-cache",
        "1MiB",
        "--proxy-cache-dir",
        dir.to_str().unwrap(),
    ];
    let mut server = Server::start(&root, &args);
    for path in ["/kept", "/cut", "/flipped"] {
        get(&server, path);
    }
    poll_until(Duration::from_secs(10), || {
        (entry_files(&dir).len() == 3).then_some(())
    })
    .expect("three entry files are written");
    server.signal("TERM");
    server.expect_exit();
    // One file truncated, one with a byte of its body changed.
    let files = entry_files(&dir);
    let find = |body: &str| {
        files
            .iter()
            .find(|p| std::fs::read(p).unwrap().starts_with(body.as_bytes()))
            .unwrap()
            .clone()
    };
    let cut = find("/cut 1");
    let len = std::fs::metadata(&cut).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let flipped = find("/flipped 1");
    let mut bytes = std::fs::read(&flipped).unwrap();
    bytes[1] = b'F';
    std::fs::write(&flipped, bytes).unwrap();

    let server = Server::start(&root, &args);
    let kept = get(&server, "/kept");
    assert_eq!(kept.body_text(), "/kept 1");
    assert!(cache_status(&kept).contains("hit"), "{kept:?}");
    assert_eq!(get(&server, "/cut").body_text(), "/cut 2");
    assert!(!cut.exists(), "the truncated entry is removed");
    assert_eq!(get(&server, "/flipped").body_text(), "/flipped 2");
    assert!(!flipped.exists(), "the damaged entry is removed");
    assert_eq!(app.hits("/kept").len(), 1);
}

#[test]
fn a_rule_can_turn_the_cache_off() {
    let app = App::start(|_, n| ok(&["Cache-Control: max-age=600"], &format!("v{n}")));
    let (tmp, root) = temp_root();
    let conf = tmp.path().join("wharf.toml");
    std::fs::write(
        &conf,
        format!(
            "proxy-cache = \"1MiB\"\n[[rule]]\npath = \"/live/**\"\nhandler = \"proxy\"\nupstreams = [\"http://{0}\"]\ncache = false\n\n[[rule]]\npath = \"/**\"\nhandler = \"proxy\"\nupstreams = [\"http://{0}\"]\n",
            app.addr
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    get(&server, "/live/x");
    assert_eq!(get(&server, "/live/x").body_text(), "v2");
    get(&server, "/kept");
    assert_eq!(get(&server, "/kept").body_text(), "v1");
}

#[test]
fn bad_cache_settings_fail_at_startup() {
    let (tmp, root) = temp_root();
    let r = root.to_str().unwrap();
    let inside = root.join("cache");
    let elsewhere = tmp.path().join("c");
    for (args, says) in [
        (vec!["--proxy-cache", "lots"], "invalid size"),
        (
            vec!["--proxy-cache-dir", elsewhere.to_str().unwrap()],
            "--proxy-cache-dir needs",
        ),
        (
            vec![
                "--proxy-cache",
                "1MiB",
                "--proxy-cache-dir",
                inside.to_str().unwrap(),
            ],
            "inside the served folder",
        ),
    ] {
        let mut all = vec![r, "-p", "0"];
        all.extend(args.iter().copied());
        let out = run_to_exit(&all, None);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    let conf = tmp.path().join("bad.toml");
    std::fs::write(
        &conf,
        "[[rule]]\npath = \"/\"\nhandler = \"proxy\"\nupstreams = [\"http://127.0.0.1:1\"]\ncache = \"yes\"\n",
    )
    .unwrap();
    let out = run_to_exit(&[r, "--config", conf.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(out.stderr.contains("bad.toml:5"), "{}", out.stderr);
}

#[test]
fn a_miss_passes_the_clients_range_and_conditionals_on() {
    let app = App::start(|req, n| {
        if let Some(range) = req.header("range") {
            assert_eq!(range, "bytes=0-1");
            return b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-1/5\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhe".to_vec();
        }
        if req.header("if-none-match").as_deref() == Some("\"x\"") {
            return b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nConnection: close\r\n\r\n"
                .to_vec();
        }
        ok(
            &["Cache-Control: no-store", "ETag: \"x\""],
            &format!("hello{n}"),
        )
    });
    let (_t, server) = cached(&app, &[]);
    let part = request(&server, "GET", "/media", &[("Range", "bytes=0-1")]);
    assert_eq!((part.status, part.body_text().as_str()), (206, "he"));
    let same = request(&server, "GET", "/media", &[("If-None-Match", "\"x\"")]);
    assert_eq!(same.status, 304);
    assert_eq!(app.hits("/media").len(), 2);
}

#[test]
fn a_failing_validation_keeps_the_stored_response() {
    let app = App::start(|req, n| {
        match n {
        2 => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy".to_vec(),
        _ if req.header("if-none-match").is_some() => {
            b"HTTP/1.1 304 Not Modified\r\nETag: \"k\"\r\nConnection: close\r\n\r\n".to_vec()
        }
        _ => ok(&["Cache-Control: max-age=0", "ETag: \"k\""], "kept"),
    }
    });
    let (_t, server) = cached(&app, &[]);
    assert_eq!(get(&server, "/v").body_text(), "kept");
    assert_eq!(get(&server, "/v").status, 503);
    let third = get(&server, "/v");
    assert_eq!((third.status, third.body_text().as_str()), (200, "kept"));
    assert!(cache_status(&third).contains("fwd-status=304"), "{third:?}");
}

#[test]
fn an_absolute_form_target_is_stored_under_the_host_the_app_was_told() {
    let app = App::start(|seen, _| {
        let host = seen.header("host").unwrap_or_default();
        ok(&["Cache-Control: max-age=600"], &format!("for {host}"))
    });
    let (_t, server) = cached(&app, &[]);
    // The target's authority wins over Host (RFC 9112 §3.2.2): the app answers
    // for c.example, and that answer is c.example's, never a.example's.
    let raw = b"GET http://c.example/page HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n";
    let first = server.exchange(raw, false);
    assert_eq!(first.body_text(), "for c.example");
    let for_host = |host: &str| {
        let raw = format!("GET /page HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        server.exchange(raw.as_bytes(), false)
    };
    let other = for_host("a.example");
    assert_eq!(other.body_text(), "for a.example", "{other:?}");
    let again = for_host("c.example");
    assert_eq!(again.body_text(), "for c.example");
    assert!(cache_status(&again).starts_with("wharf; hit"), "{again:?}");
}

/// A part of a stored response describes its bytes as the whole response does: an
/// app's response without `Content-Type` gets none on its 206 either.
#[test]
fn a_part_of_an_untyped_response_gets_no_type() {
    let app = App::start(|_, _| ok(&["Cache-Control: max-age=600"], "hello"));
    let (_t, server) = cached(&app, &[]);
    let whole = get(&server, "/untyped");
    assert_eq!(whole.header("content-type"), None);
    let part = request(&server, "GET", "/untyped", &[("Range", "bytes=1-2")]);
    assert_eq!((part.status, part.body_text().as_str()), (206, "el"));
    assert!(cache_status(&part).contains("hit"), "{part:?}");
    assert_eq!(part.header("content-type"), None, "{part:?}");
    assert_eq!(part.header("content-range").as_deref(), Some("bytes 1-2/5"));
}
