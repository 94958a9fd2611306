//! `--dev`: nothing stored by browsers, the reload script in HTML pages only, an event
//! stream that says when files change, and pages' own security policies kept working.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// An open `/.wharf-dev/events` stream.
struct Events {
    stream: TcpStream,
    seen: String,
}

impl Events {
    fn open(server: &Server) -> Events {
        let mut stream = connect(server.addr());
        stream
            .write_all(
                b"GET /.wharf-dev/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
            )
            .unwrap();
        let mut events = Events {
            stream,
            seen: String::new(),
        };
        events.until(": connected");
        assert!(events.seen.starts_with("HTTP/1.1 200"), "{}", events.seen);
        assert!(events.seen.contains("content-type: text/event-stream"));
        assert!(events.seen.contains("cache-control: no-store"));
        events.seen.clear();
        events
    }

    /// Reads until `text` has arrived (at most 10 s); everything read so far.
    fn until(&mut self, text: &str) -> &str {
        assert!(
            self.within(text, Duration::from_secs(10)),
            "no {text:?} in {:?}",
            self.seen
        );
        &self.seen
    }

    /// Reads until `text` has arrived or `limit` has passed; whether it arrived.
    fn within(&mut self, text: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        while !self.seen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("stream closed; got {:?}", self.seen),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if is_timeout(&e) => {}
                Err(e) => panic!("{e}"),
            }
        }
        true
    }
}

#[test]
fn html_gets_the_script_and_nothing_is_stored() {
    let (_tmp, root) = temp_root();
    write_file(
        &root,
        "index.html",
        "<!doctype html><title>t</title><BODY><p>hi</p></BODY>",
    );
    write_file(&root, "style.css", "p{color:red}");
    write_file(&root, "bare.html", "<p>no body tag");
    let server = Server::start(&root, &["--dev", "--no-open"]);

    // Asked compressed, the page still comes as text with the script.
    let page = request(&server, "GET", "/", &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-encoding"), None);
    assert_eq!(
        page.body_text(),
        "<!doctype html><title>t</title><BODY><p>hi</p>\
         <script src=\"/.wharf-dev/reload.js\"></script></BODY>"
    );
    assert_eq!(page.content_length(), Some(page.body.len()));
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(page.header("etag"), None);

    let bare = get(&server, "/bare.html");
    assert!(bare
        .body_text()
        .ends_with("<p>no body tag<script src=\"/.wharf-dev/reload.js\"></script>"));

    // Other types are untouched, but not stored either.
    let css = get(&server, "/style.css");
    assert_eq!(css.body_text(), "p{color:red}");
    assert_eq!(css.header("cache-control").as_deref(), Some("no-store"));
    let missing = get(&server, "/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("cache-control").as_deref(), Some("no-store"));
    assert!(!missing.body_text().contains("wharf-dev"));

    // The listing keeps its policy, which already allows same-origin scripts.
    std::fs::remove_file(root.join("index.html")).unwrap();
    let listing = get(&server, "/");
    assert!(listing.body_text().contains("/.wharf-dev/reload.js"));
    let csp = listing.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("nonce"), "{csp}");

    let script = get(&server, "/.wharf-dev/reload.js");
    assert_eq!(script.status, 200);
    assert!(script.body_text().contains("EventSource"));
    assert_eq!(get(&server, "/.wharf-dev/other").status, 404);

    // Without --dev none of it exists.
    let plain = Server::start(&root, &[]);
    assert_eq!(get(&plain, "/.wharf-dev/reload.js").status, 404);
    assert!(!get(&plain, "/bare.html").body_text().contains("script"));
}

#[test]
fn a_range_of_a_page_is_the_whole_page_with_the_script() {
    let (_tmp, root) = temp_root();
    write_file(&root, "page.html", "<p>a page of some length</p></body>");
    write_file(&root, "style.css", "p{color:red}");
    let server = Server::start(&root, &["--dev", "--no-open"]);
    for range in ["bytes=0-3", "bytes=0-", "bytes=0-1,5-6", "bytes=999-"] {
        let page = request(&server, "GET", "/page.html", &[("Range", range)]);
        assert_eq!(page.status, 200, "{range}");
        assert!(
            page.body_text().contains("/.wharf-dev/reload.js"),
            "{range}"
        );
        assert_eq!(page.header("content-range"), None, "{range}");
        assert_eq!(page.header("accept-ranges"), None, "{range}");
        assert_eq!(page.content_length(), Some(page.body.len()), "{range}");
    }
    // Other files keep their ranges.
    let css = request(&server, "GET", "/style.css", &[("Range", "bytes=0-1")]);
    assert_eq!((css.status, css.body_text().as_str()), (206, "p{"));
    let css = request(&server, "GET", "/style.css", &[("Range", "bytes=99-")]);
    assert_eq!(css.status, 416);
    // The loop's own URLs are read-only.
    for path in ["/.wharf-dev/reload.js", "/.wharf-dev/events"] {
        let res = request(&server, "POST", path, &[("Content-Length", "0")]);
        assert_eq!(res.status, 405, "{path}");
        assert_eq!(res.header("allow").as_deref(), Some("GET, HEAD"));
    }
}

#[test]
fn validators_kept_from_a_run_without_dev_get_the_page_with_the_script() {
    let (_tmp, root) = temp_root();
    write_file(&root, "page.html", "<p>a page</p></body>");
    let plain = Server::start(&root, &[]);
    let before = get(&plain, "/page.html");
    let tag = before.header("etag").expect("an etag without --dev");
    let modified = before
        .header("last-modified")
        .expect("a date without --dev");
    let server = Server::start(&root, &["--dev", "--no-open"]);
    for (name, value) in [("If-None-Match", &tag), ("If-Modified-Since", &modified)] {
        let page = request(&server, "GET", "/page.html", &[(name, value.as_str())]);
        assert_eq!(page.status, 200, "{name}");
        assert!(page.body_text().contains("/.wharf-dev/reload.js"), "{name}");
        assert_eq!(page.header("etag"), None, "{name}");
    }
}

#[test]
fn changes_are_pushed_to_open_pages() {
    let (_tmp, root) = temp_root();
    write_file(&root, "index.html", "<body>1</body>");
    let server = Server::start(&root, &["--dev", "--no-open"]);
    let mut events = Events::open(&server);

    write_file(&root, "index.html", "<body>2</body>");
    events.until("event: reload\n");
    events.seen.clear();

    // A stylesheet alone: swapped, not reloaded. A new folder is watched from a
    // moment after its creation is reported, so the sheet is written again until
    // a change to it is seen.
    std::fs::create_dir(root.join("css")).unwrap();
    events.until("event: reload\n");
    events.seen.clear();
    let mut writes = 0;
    loop {
        writes += 1;
        write_file(&root, "css/site.css", format!("body{{}}/* {writes} */"));
        if events.within("event: css\n", Duration::from_millis(500)) {
            break;
        }
        assert!(writes < 20, "no event: css in {:?}", events.seen);
    }
    let seen = events.seen.clone();
    assert!(!seen.contains("event: reload"), "{seen}");
    events.seen.clear();

    // A new file: the listing that shows it reloads.
    write_file(&root, "later.txt", "x");
    events.until("event: reload\n");
}

#[test]
fn strict_page_policies_admit_the_script_by_nonce() {
    let (tmp, root) = temp_root();
    write_file(&root, "app/index.html", "<body>app</body>");
    let config = tmp.path().join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            "root = {root:?}\nport = 0\nbind = \"127.0.0.1\"\ndev = true\n\
             [[rule]]\npath = \"/app/**\"\n\
             headers = {{ Content-Security-Policy = \"default-src 'none'; style-src 'unsafe-inline'\" }}\n"
        ),
    )
    .unwrap();
    let server = Server::spawn(
        &[
            std::ffi::OsStr::new("--config"),
            config.as_os_str(),
            std::ffi::OsStr::new("--no-open"),
        ],
        None,
    );
    let page = get(&server, "/app/");
    let csp = page.header("content-security-policy").unwrap();
    let body = page.body_text();
    let nonce = body
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no nonce in {body}"));
    assert!(
        csp.contains(&format!("script-src 'nonce-{nonce}'")),
        "{csp}"
    );
    assert!(csp.contains("connect-src "), "{csp}");
    assert!(csp.contains("/.wharf-dev/events"), "{csp}");
    // The page's own directives stay.
    assert!(
        csp.starts_with("default-src 'none'; style-src 'unsafe-inline'"),
        "{csp}"
    );
}

#[test]
fn qr_code_and_open_at_start() {
    let (tmp, root) = temp_root();
    // A stand-in for the desktop's opener that records what it was asked to open.
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let opened = tmp.path().join("opened");
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> {:?}\n", opened),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&opener).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&opener, perms).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let server = Server::start_configured(&root, &["--qr", "--open"], |cmd| {
        cmd.env("PATH", &path);
    });
    let url = poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&opened)
            .ok()
            .filter(|s| s.ends_with('\n'))
    })
    .expect("the opener ran");
    assert_eq!(url, format!("http://{}/\n", server.addr()));
    let url = url.trim_end().to_string();
    let note = poll_until(Duration::from_secs(10), || {
        server
            .stderr_lines()
            .into_iter()
            .find(|l| l.contains("reachable from this machine only"))
    })
    .expect("a note that the address is local");
    assert!(note.contains(&url), "{note}");
    // The code itself: rows of half blocks.
    let blocks = server
        .stderr_lines()
        .iter()
        .filter(|l| l.chars().filter(|c| matches!(c, '█' | '▀' | '▄')).count() > 10)
        .count();
    assert!(blocks > 10, "{:?}", server.stderr_lines());

    // --dev opens the browser too, unless --no-open: of a --no-open server and a
    // --dev one started after it, only the second runs the opener.
    std::fs::remove_file(&opened).unwrap();
    let quiet = Server::start_configured(&root, &["--dev", "--no-open"], |cmd| {
        cmd.env("PATH", &path);
    });
    assert_eq!(get(&quiet, "/").status, 200);
    let dev = Server::start_configured(&root, &["--dev"], |cmd| {
        cmd.env("PATH", &path);
    });
    let opened_urls = poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&opened)
            .ok()
            .filter(|s| s.ends_with('\n'))
    })
    .expect("--dev ran the opener");
    assert_eq!(opened_urls, format!("http://{}/\n", dev.addr()));
}

#[test]
fn pages_too_large_to_hold_pass_unchanged() {
    let (_tmp, root) = temp_root();
    let big = format!("<html><body>{}</body></html>", "x".repeat(17 << 20));
    write_file(&root, "big.html", &big);
    let server = Server::start(&root, &["--dev", "--no-open"]);
    let res = get(&server, "/big.html");
    assert_eq!(res.status, 200);
    assert_eq!(res.body.len(), big.len());
    assert!(!res.body_text().contains("wharf-dev"));
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
}

/// An open page's event stream never ends by itself: at shutdown it is ended, so
/// that it does not hold the process for the whole grace period, and the page
/// reconnects to whatever serves next.
#[test]
fn open_event_streams_end_at_shutdown() {
    let (_tmp, root) = temp_root();
    write_file(&root, "index.html", "<html><body>hi</body></html>");
    // A grace period longer than the wait for the exit below.
    let mut server = Server::start(&root, &["--dev", "--no-open", "--grace-period", "600s"]);
    let mut events = Events::open(&server);
    server.signal("TERM");
    let status = server.expect_exit();
    assert!(status.success(), "exit status {status}");
    // The stream was ended as a chunked body ends, not cut.
    events.until("0\r\n\r\n");
}
