//! The admin listener (`--admin`): metrics in the Prometheus formats (checked by
//! Debian's `promtool`, and scraped by a real Prometheus), liveness and readiness.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// wharf with an admin listener on a free port; returns it and the admin address.
fn with_admin(extra: &[&str]) -> (tempfile::TempDir, Server, String) {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "hello");
    let mut args = vec!["--admin", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&root, &args);
    let admin = poll_until(Duration::from_secs(10), || {
        server.stderr_lines().iter().find_map(|l| {
            let rest = l.split("admin (metrics, health) at http://").nth(1)?;
            Some(rest.trim_end_matches("/metrics").to_string())
        })
    })
    .expect("the admin address is printed");
    (tmp, server, admin)
}

/// `GET path` on the admin listener.
fn admin_get(admin: &str, path: &str, extra: &[(&str, &str)]) -> Response {
    let mut conn = Conn::new(connect(admin));
    conn.send(&request_bytes("GET", path, extra));
    conn.read_response(false)
}

#[test]
fn metrics_count_requests_and_health_answers() {
    let (_t, server, admin) = with_admin(&[]);
    assert_eq!(get(&server, "/a.txt").status, 200);
    assert_eq!(get(&server, "/missing").status, 404);
    // Each exchange is counted when its response is done with, which may be just
    // after the client has its last byte.
    let metrics = poll_until(Duration::from_secs(10), || {
        let res = admin_get(&admin, "/metrics", &[]);
        res.body_text()
            .contains("wharf_request_duration_seconds_count 2")
            .then_some(res)
    })
    .expect("both requests are counted");
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = metrics.body_text();
    assert!(
        text.contains("wharf_requests_total{method=\"GET\",status=\"2xx\",handler=\"static\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("wharf_requests_total{method=\"GET\",status=\"4xx\",handler=\"static\"} 1"),
        "{text}"
    );
    // Bytes in, the caches' lookups, and the series that are zero until used.
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert!(value("wharf_received_bytes_total") > 0.0, "{text}");
    assert!(
        value("wharf_hot_cache_total{outcome=\"miss\"}") >= 1.0,
        "{text}"
    );
    for zero in [
        "wharf_access_log_dropped_total",
        "wharf_tls_handshakes_total{outcome=\"failed\"}",
        "wharf_upload_bytes_total",
        "wharf_upstream_requests_total{outcome=\"error\"}",
        "wharf_upstream_rests_total",
    ] {
        assert_eq!(value(zero), 0.0, "{zero}");
    }
    assert!(text.contains("wharf_response_body_bytes_total "), "{text}");
    assert!(
        text.contains("wharf_request_duration_seconds_count 2"),
        "{text}"
    );
    // Prometheus asks for OpenMetrics first.
    let open = admin_get(
        &admin,
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
    );
    assert!(open.body_text().ends_with("# EOF\n"));
    assert_eq!(open.header("vary").as_deref(), Some("Accept"));
    // Prometheus's own Accept, and ones that weigh it below the classic format or
    // refuse it (q=0).
    let chosen = |accept: &str| {
        let res = admin_get(&admin, "/metrics", &[("Accept", accept)]);
        res.header("content-type").unwrap_or_default()
    };
    let scraper = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
                   application/openmetrics-text;version=0.0.1;q=0.5,\
                   text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    assert!(chosen(scraper).starts_with("application/openmetrics-text"));
    for classic in [
        "application/openmetrics-text;q=0, text/plain",
        "text/plain;version=0.0.4;q=1, application/openmetrics-text;version=1.0.0;q=0.5",
        "*/*",
    ] {
        assert!(chosen(classic).starts_with("text/plain"), "{classic}");
    }
    assert_eq!(admin_get(&admin, "/healthz", &[]).status, 200);
    assert_eq!(admin_get(&admin, "/readyz", &[]).status, 200);
    assert_eq!(admin_get(&admin, "/other", &[]).status, 404);
    let mut conn = Conn::new(connect(&admin));
    conn.send(&request_bytes(
        "POST",
        "/metrics",
        &[("Content-Length", "0")],
    ));
    assert_eq!(conn.read_response(false).status, 405);
    // The checks RFC 9112 and RFC 9110 ask of every request, as on the site's port:
    // one valid Host (400), unknown methods 501, OPTIONS answered with Allow.
    let exchange = |raw: &str| {
        let mut conn = Conn::new(connect(&admin));
        conn.send(raw.as_bytes());
        conn.read_response(false)
    };
    for (raw, status) in [
        ("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
        (
            "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
            400,
        ),
        ("GET /healthz HTTP/1.0\r\n\r\n", 200),
        (
            "BREW /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            501,
        ),
        (
            "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            200,
        ),
    ] {
        let res = exchange(raw);
        assert_eq!(res.status, status, "{raw}");
        if status == 200 && raw.starts_with("OPTIONS") {
            assert_eq!(res.header("allow").as_deref(), Some("GET, HEAD, OPTIONS"));
        }
    }
    // The site itself knows nothing of these paths.
    assert_eq!(get(&server, "/metrics").status, 404);

    if !have("promtool") {
        eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install prometheus"
        );
        return;
    }
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn readiness_fails_while_every_upstream_of_a_proxy_rests() {
    // A port with nothing behind it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let route = format!("/app/=http://127.0.0.1:{port}");
    let (_t, server, admin) = with_admin(&["--proxy", &route]);
    assert_eq!(admin_get(&admin, "/readyz", &[]).status, 200);
    for _ in 0..3 {
        assert_eq!(get(&server, "/app/x").status, 502);
    }
    let ready = admin_get(&admin, "/readyz", &[]);
    assert_eq!(ready.status, 503);
    assert!(ready.body_text().contains("/app/"), "{}", ready.body_text());
    assert_eq!(admin_get(&admin, "/healthz", &[]).status, 200);
}

#[test]
fn a_public_admin_address_needs_saying_so() {
    let (_t, root) = temp_root();
    let r = root.to_str().unwrap();
    let out = run_to_exit(&[r, "-p", "0", "--admin", "0.0.0.0:0"], None);
    assert!(!out.status.success());
    assert!(out.stderr.contains("--admin-public"), "{}", out.stderr);
    let out = run_to_exit(&[r, "-p", "0", "--admin", "nonsense"], None);
    assert!(!out.status.success());
}

#[test]
fn a_real_prometheus_scrapes_the_request_counter() {
    if !have("prometheus") {
        eprintln!("skipped: prometheus is not installed (apt-get install prometheus)");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install prometheus"
        );
        return;
    }
    let (tmp, server, admin) = with_admin(&[]);
    assert_eq!(get(&server, "/a.txt").status, 200);
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: wharf\n    static_configs:\n      - targets: ['{admin}']\n"
        ),
    )
    .unwrap();
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web_addr = web.local_addr().unwrap().to_string();
    drop(web);
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web_addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let query =
        "/api/v1/query?query=wharf_requests_total%7Bmethod%3D%22GET%22%2Cstatus%3D%222xx%22%7D";
    let found = poll_until(Duration::from_secs(60), || {
        let mut conn = Conn::new(std::net::TcpStream::connect(&web_addr).ok()?);
        conn.send(&request_bytes("GET", query, &[]));
        let res = conn.try_read_response(false).ok()?;
        let body = res.body_text();
        (res.status == 200 && body.contains("\"value\"")).then_some(body)
    });
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let body = found.expect("Prometheus scraped wharf's request counter");
    assert!(body.contains("\"1\""), "{body}");
}

#[test]
fn metrics_count_uploads_and_upstream_failures_by_handler() {
    let port = free_port();
    let app = format!("/app/=http://127.0.0.1:{port}");
    let (_t, server, admin) = with_admin(&["--upload", "--proxy", &app]);
    let mut conn = Conn::open(&server);
    conn.send(b"PUT /up2.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    conn.send(&[b'x'; 1000]);
    assert_eq!(conn.read_response(false).status, 201);
    assert_eq!(get(&server, "/app/x").status, 502);
    let text = poll_until(Duration::from_secs(10), || {
        let text = admin_get(&admin, "/metrics", &[]).body_text();
        text.contains("handler=\"proxy\"} 1").then_some(text)
    })
    .expect("the proxied request is counted");
    assert!(
        text.contains("wharf_requests_total{method=\"GET\",status=\"5xx\",handler=\"proxy\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("wharf_requests_total{method=\"PUT\",status=\"2xx\",handler=\"static\"} 1"),
        "{text}"
    );
    assert!(text.contains("wharf_upload_bytes_total 1000"), "{text}");
    assert!(
        text.contains("wharf_upstream_requests_total{outcome=\"error\"} 1"),
        "{text}"
    );
}

#[test]
fn health_answers_through_a_shutdown_and_readiness_says_it_is_going() {
    let (tmp, mut server, admin) = with_admin(&["--grace-period", "60s"]);
    let size = 64 * 1024 * 1024;
    write_file(
        tmp.path().join("root").as_path(),
        "big.bin",
        vec![7u8; size],
    );
    assert_eq!(admin_get(&admin, "/readyz", &[]).status, 200);
    // A download whose client stops reading keeps the process in its grace period.
    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/big.bin", &[]));
    let head = conn.read_head().expect("response head");
    assert_eq!(head.status, 200);
    conn.read_exact_bytes(4096).expect("first bytes");
    server.signal("TERM");
    server.wait_for_stderr(|l| l.contains("shutting down"), LOG_TIMEOUT);

    // (The message comes just before the shutdown starts.)
    let ready = poll_until(Duration::from_secs(10), || {
        let ready = admin_get(&admin, "/readyz", &[]);
        (ready.status == 503).then_some(ready)
    })
    .expect("/readyz answers 503 during the grace period");
    assert!(
        ready.body_text().contains("shutting down"),
        "{}",
        ready.body_text()
    );
    assert_eq!(admin_get(&admin, "/healthz", &[]).status, 200);
    let metrics = admin_get(&admin, "/metrics", &[]);
    assert_eq!(metrics.status, 200);

    // The download is finished, and then the process ends.
    let rest = conn
        .read_exact_bytes(size - 4096)
        .expect("the rest of the body");
    assert_eq!(rest.len(), size - 4096);
    let status = server.expect_exit();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn requests_refused_before_they_are_read_are_counted() {
    let (_t, server, admin) = with_admin(&[]);
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/3.0\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    ] {
        let res = server.exchange(raw, false);
        assert!(res.status == 400 || res.status == 505, "{}", res.status);
    }
    let metrics = poll_until(Duration::from_secs(10), || {
        let text = admin_get(&admin, "/metrics", &[]).body_text();
        text.contains("wharf_requests_total{method=\"other\",status=\"4xx\",handler=\"none\"} 2")
            .then_some(text)
    })
    .expect("the two 400s are counted");
    assert!(
        metrics
            .contains("wharf_requests_total{method=\"other\",status=\"5xx\",handler=\"none\"} 1"),
        "{metrics}"
    );
}

/// Half-sent connections cannot starve the probes: when the admin listener is
/// full, the oldest connection makes room for the newest.
#[test]
fn idle_connections_do_not_starve_health_checks() {
    // One worker: each worker's admin listener keeps its own 256.
    let (_tmp, _server, admin) = with_admin(&["--workers", "1"]);
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut stream = connect(&admin);
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost:").unwrap();
        held.push(stream);
    }
    let mut conn = Conn::new(connect(&admin));
    // Answered at once; before, it waited for a slot (ten seconds).
    conn.stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    conn.send(&request_bytes("GET", "/healthz", &[]));
    let res = conn.read_response(false);
    assert_eq!(res.status, 200);
    // The oldest was closed to make room.
    let oldest = &mut held[0];
    oldest
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = oldest.read(&mut byte);
    assert!(matches!(read, Ok(0)), "closed: {read:?}");
}
