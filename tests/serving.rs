//! Serving files: bytes, headers, HEAD, redirects, index files, URL mapping.

mod common;

use common::*;
use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, SystemTime};

fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

fn fixture(root: &Path) {
    write_file(root, "a.txt", "hello");
    write_file(root, "a b.txt", "space in name");
    write_file(root, "bin.dat", all_bytes());
    write_file(root, "empty.txt", "");
    write_file(root, "page.html", "<p>page</p>");
    write_file(root, "style.css", "p {}");
    write_file(root, "app.js", "let x = 1;");
    write_file(root, "img.png", b"\x89PNG\r\n\x1a\n");
    write_file(root, "data.json", "{}");
    write_file(root, "noext", "no extension");
    write_file(root, "odd.zzqx", "unknown extension");
    write_file(root, "dir/index.html", "dir index");
    write_file(root, "dir/other.txt", "other");
    write_file(
        root,
        "dir2/index.html/inner.txt",
        "index.html is a directory",
    );
    // Lets `//evil.com/dir` reach a real directory, so its redirect is exercised.
    write_file(root, "evil.com/dir/x.txt", "x");
}

fn start() -> (tempfile::TempDir, Server) {
    let (tmp, root) = temp_root();
    fixture(&root);
    let server = Server::start(&root, &[]);
    (tmp, server)
}

#[test]
fn get_returns_exact_bytes_of_binary_file() {
    let (_tmp, server) = start();
    let response = get(&server, "/bin.dat");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, all_bytes());
    assert_eq!(response.content_length(), Some(256));
}

#[test]
fn get_of_empty_file_has_zero_length() {
    let (_tmp, server) = start();
    let response = get(&server, "/empty.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.content_length(), Some(0));
    assert!(response.body.is_empty());
}

#[test]
fn content_type_follows_extension() {
    let (_tmp, server) = start();
    let cases = [
        ("/page.html", "text/html; charset=utf-8"),
        ("/a.txt", "text/plain; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/img.png", "image/png"),
        ("/data.json", "application/json"),
        ("/noext", "application/octet-stream"),
        ("/odd.zzqx", "application/octet-stream"),
    ];
    for (path, expected) in cases {
        let response = get(&server, path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(
            response.header("content-type").as_deref(),
            Some(expected),
            "Content-Type of {path}"
        );
    }
}

#[test]
fn date_and_last_modified_are_http_dates() {
    let (_tmp, server) = start();
    let response = get(&server, "/a.txt");
    let date = response.header("date").expect("Date header");
    assert!(date.ends_with(" GMT"), "Date: {date:?}");
    let modified = response
        .header("last-modified")
        .expect("Last-Modified header");
    assert!(modified.ends_with(" GMT"), "Last-Modified: {modified:?}");
}

#[test]
fn last_modified_equals_file_mtime() {
    let (_tmp, root) = temp_root();
    write_file(&root, "old.txt", "old");
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::options()
        .write(true)
        .open(root.join("old.txt"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let server = Server::start(&root, &[]);
    let response = get(&server, "/old.txt");
    assert_eq!(
        response.header("last-modified").as_deref(),
        Some("Sun, 09 Sep 2001 01:46:40 GMT")
    );
}

#[test]
fn head_has_get_headers_and_no_body() {
    let (_tmp, server) = start();
    let full = get(&server, "/page.html");

    // HEAD then GET on one keep-alive connection: if the HEAD response carried
    // any body bytes, the GET response would not parse.
    let mut conn = Conn::open(&server);
    conn.send(
        b"HEAD /page.html HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let head = conn.read_response(true);
    assert_eq!(head.status, 200);
    for name in ["content-length", "content-type", "last-modified"] {
        assert_eq!(
            head.header(name),
            full.header(name),
            "{name} of HEAD vs GET"
        );
    }
    let next = conn.read_response(false);
    assert_eq!(next.status, 200);
    assert_eq!(next.body, b"hello");
}

#[test]
fn directory_without_slash_redirects() {
    let (_tmp, server) = start();
    let response = get(&server, "/dir");
    assert_eq!(response.status, 301);
    assert_eq!(response.header("location").as_deref(), Some("/dir/"));
}

#[test]
fn directory_redirect_keeps_query() {
    let (_tmp, server) = start();
    let response = get(&server, "/dir?x=1");
    assert_eq!(response.status, 301);
    assert_eq!(response.header("location").as_deref(), Some("/dir/?x=1"));
    // An empty query is none.
    let response = get(&server, "/dir?");
    assert_eq!(response.header("location").as_deref(), Some("/dir/"));
}

#[test]
fn redirects_never_leave_the_site() {
    let (_tmp, server) = start();
    let targets = [
        "//evil.com/dir",
        "/\\evil.com",
        "//evil.com",
        "/%2fevil.com",
        "/%5cevil.com",
        "///dir",
        "/.//dir",
        "//evil.com/dir?x=1",
        "/%2f%2fevil.com/dir",
        "/%5c%5cevil.com/dir",
    ];
    let mut redirects = 0;
    for target in targets {
        let response = server.exchange(&request_bytes("GET", target, &[]), false);
        let Some(location) = response.header("location") else {
            continue;
        };
        redirects += 1;
        assert!(
            location.starts_with('/')
                && !location.starts_with("//")
                && !location.starts_with("/\\"),
            "{target}: Location {location:?} is not a same-site path"
        );
        assert!(
            !location.contains("://") && !location.bytes().any(|b| b.is_ascii_control()),
            "{target}: suspicious Location {location:?}"
        );
    }
    assert!(redirects >= 3, "expected the directory targets to redirect");
}

#[test]
fn directory_serves_index_html() {
    let (_tmp, server) = start();
    let response = get(&server, "/dir/");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"dir index");
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
}

#[test]
fn index_html_that_is_a_directory_gives_listing() {
    let (_tmp, server) = start();
    let response = get(&server, "/dir2/");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(
        response.body_text().contains("index.html"),
        "listing should show the index.html directory: {}",
        response.body_text()
    );
}

#[test]
fn query_string_does_not_change_file_served() {
    let (_tmp, server) = start();
    for target in [
        "/a.txt?x=../../etc/passwd",
        "/a.txt?",
        "/a.txt?/bin.dat",
        "/a.txt?x=%2e%2e%2f",
    ] {
        let response = get(&server, target);
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(response.body, b"hello", "{target}");
    }
}

#[test]
fn encoded_slash_after_file_name_is_not_found() {
    let (_tmp, server) = start();
    assert_eq!(get(&server, "/a.txt%2f").status, 404);
}

#[test]
fn percent_encoded_space_maps_to_file_name() {
    let (_tmp, server) = start();
    let response = get(&server, "/a%20b.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"space in name");
}

#[test]
fn percent_encoded_letters_are_decoded() {
    let (_tmp, server) = start();
    let response = get(&server, "/%61.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
}

#[test]
fn missing_file_is_not_found() {
    let (_tmp, server) = start();
    assert_eq!(get(&server, "/nope.txt").status, 404);
    assert_eq!(get(&server, "/dir/nope.txt").status, 404);
    assert_eq!(get(&server, "/nodir/").status, 404);
}

#[test]
fn file_removed_after_start_is_not_found() {
    let (tmp, server) = start();
    let root = tmp.path().join("root");
    assert_eq!(get(&server, "/noext").status, 200);
    fs::remove_file(root.join("noext")).unwrap();
    assert_eq!(get(&server, "/noext").status, 404);
}

#[test]
fn files_dated_before_1970_are_served_without_last_modified() {
    let (_tmp, root) = temp_root();
    write_file(&root, "old.txt", "vintage");
    let then = std::time::UNIX_EPOCH - Duration::from_secs(10 * 365 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(root.join("old.txt"))
        .unwrap()
        .set_modified(then)
        .unwrap();
    let server = Server::start(&root, &[]);
    let res = get(&server, "/old.txt");
    assert_eq!((res.status, res.body_text().as_str()), (200, "vintage"));
    assert_eq!(res.header("last-modified"), None);
    let listing = get(&server, "/");
    assert_eq!(listing.status, 200);
    assert!(listing.body_text().contains("old.txt"));
}
