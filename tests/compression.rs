//! Content codings (RFC 9110 §8.4, §12.5.3): Accept-Encoding negotiation, on-the-fly
//! br/zstd/gzip, types that are never compressed, ranges of a compressed representation,
//! the variant cache, `--no-compress`, and precompressed `.gz`/`.br` sidecars.

mod common;

use common::*;
use std::path::Path;

/// 2023-11-14T22:13:20Z: the mtime of every fixture file.
const T0: u64 = 1_700_000_000;
const TEXT_LEN: usize = 20 * 1024;

/// Files that must never be compressed; their (repetitive) content would compress well.
const INCOMPRESSIBLE: [&str; 6] = [
    "img.png",
    "photo.jpg",
    "movie.mp4",
    "archive.zip",
    "bundle.gz",
    "font.woff2",
];

fn text() -> String {
    compressible_text("compression", TEXT_LEN)
}

fn script() -> String {
    compressible_text("console.log('from app.js');", TEXT_LEN)
}

fn gz_sidecar_text() -> String {
    "console.log('from sidecar');\n".repeat(300)
}

fn br_sidecar_text() -> String {
    "console.log('from brotli sidecar');\n".repeat(300)
}

fn fixture(root: &Path) {
    write_file(root, "big.txt", text());
    write_file(root, "other.txt", compressible_text("other", TEXT_LEN));
    write_file(root, "app.js", script());
    write_file(
        root,
        "style.css",
        compressible_text("p { color: red }", TEXT_LEN),
    );
    write_file(root, "huge.txt", compressible_text("huge", 600 * 1024));
    for name in INCOMPRESSIBLE {
        write_file(root, name, compressible_text(name, TEXT_LEN));
    }
    write_file(
        root,
        "app.js.gz",
        gzip_compress(gz_sidecar_text().as_bytes()),
    );
    write_file(
        root,
        "app.js.br",
        brotli_compress(br_sidecar_text().as_bytes()),
    );
    for entry in std::fs::read_dir(root).unwrap() {
        set_mtime(&entry.unwrap().path(), unix_time(T0));
    }
}

fn start_with(args: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, Server) {
    let (tmp, root) = temp_root();
    fixture(&root);
    let server = Server::start(&root, args);
    (tmp, root, server)
}

fn start() -> (tempfile::TempDir, Server) {
    let (tmp, _root, server) = start_with(&[]);
    (tmp, server)
}

fn get_encoded(server: &Server, path: &str, accept_encoding: &str) -> Response {
    let response = request(server, "GET", path, &[("Accept-Encoding", accept_encoding)]);
    assert_eq!(
        response.status, 200,
        "GET {path} with Accept-Encoding: {accept_encoding}"
    );
    response
}

fn content_encoding(response: &Response) -> Option<String> {
    response
        .header("content-encoding")
        .map(|v| v.trim().to_ascii_lowercase())
}

/// GET /big.txt with `accept_encoding`; asserts `Content-Encoding` is `expected`
/// (`None`: no header) and that the body decodes to the file.
fn assert_negotiates(server: &Server, accept_encoding: &str, expected: Option<&str>) {
    let response = get_encoded(server, "/big.txt", accept_encoding);
    assert_eq!(
        content_encoding(&response).as_deref(),
        expected,
        "Content-Encoding for Accept-Encoding: {accept_encoding:?}"
    );
    assert_eq!(
        decoded_body(&response),
        text().as_bytes(),
        "decoded body for Accept-Encoding: {accept_encoding:?}"
    );
    assert!(
        varies_on_accept_encoding(&response),
        "Vary for Accept-Encoding: {accept_encoding:?}: {:?}",
        response.headers_all("vary")
    );
}

#[test]
fn a_crowd_of_first_requests_gets_one_consistent_answer() {
    // Cold cache, many clients at once, mixed codings: each gets the file whole and
    // correctly encoded, and all requests for one coding get the same bytes and tag
    // (the first computes, the others wait for it and answer from the cache).
    let (_tmp, server) = start();
    let codings = ["br", "gzip", "zstd", "identity"];
    let answers: Vec<(&str, Response)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let coding = codings[i % codings.len()];
                let server = &server;
                scope.spawn(move || (coding, get_encoded(server, "/big.txt", coding)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for coding in codings {
        let same: Vec<&Response> = answers
            .iter()
            .filter(|(c, _)| *c == coding)
            .map(|(_, r)| r)
            .collect();
        for response in &same {
            assert_eq!(decoded_body(response), text().as_bytes(), "{coding}");
            assert_eq!(response.header("etag"), same[0].header("etag"), "{coding}");
            assert_eq!(response.body, same[0].body, "{coding}");
        }
    }
}

// --- Each coding --------------------------------------------------------------------

#[test]
fn gzip_is_served_when_accepted() {
    let (_tmp, server) = start();
    let response = get_encoded(&server, "/big.txt", "gzip");
    assert_eq!(content_encoding(&response).as_deref(), Some("gzip"));
    assert!(response.body.len() < TEXT_LEN / 2, "gzip body not smaller");
    assert_eq!(gunzip(&response.body), text().as_bytes());
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert!(varies_on_accept_encoding(&response));
}

#[test]
fn brotli_is_served_when_accepted() {
    let (_tmp, server) = start();
    let response = get_encoded(&server, "/big.txt", "br");
    assert_eq!(content_encoding(&response).as_deref(), Some("br"));
    assert!(response.body.len() < TEXT_LEN / 2, "br body not smaller");
    assert_eq!(unbrotli(&response.body), text().as_bytes());
    assert!(varies_on_accept_encoding(&response));
}

#[test]
fn zstd_is_served_when_accepted() {
    let (_tmp, server) = start();
    let response = get_encoded(&server, "/big.txt", "zstd");
    assert_eq!(content_encoding(&response).as_deref(), Some("zstd"));
    assert!(response.body.len() < TEXT_LEN / 2, "zstd body not smaller");
    assert_eq!(unzstd(&response.body), text().as_bytes());
    assert!(varies_on_accept_encoding(&response));
}

#[test]
fn javascript_and_css_are_compressed() {
    let (_tmp, server) = start();
    // app.js has sidecars for gzip and br only, so zstd is compressed on the fly.
    for (path, coding) in [("/style.css", "gzip"), ("/app.js", "zstd")] {
        let response = get_encoded(&server, path, coding);
        assert_eq!(
            content_encoding(&response).as_deref(),
            Some(coding),
            "{path}"
        );
        let plain = get(&server, path);
        assert_eq!(decoded_body(&response), plain.body, "{path}");
    }
}

// --- Negotiation ----------------------------------------------------------------------

#[test]
fn server_preference_breaks_ties_br_then_zstd_then_gzip() {
    let (_tmp, server) = start();
    assert_negotiates(&server, "gzip, br", Some("br"));
    assert_negotiates(&server, "gzip, zstd, br", Some("br"));
    assert_negotiates(&server, "gzip, zstd", Some("zstd"));
    assert_negotiates(&server, "gzip;q=0.5, br;q=0.5", Some("br"));
}

#[test]
fn q_values_beat_server_preference() {
    let (_tmp, server) = start();
    assert_negotiates(&server, "br;q=0.5, gzip", Some("gzip"));
    assert_negotiates(&server, "gzip;q=0.8, zstd;q=0.9, br;q=0.1", Some("zstd"));
    assert_negotiates(&server, "br;q=0.3, identity;q=0.9", None);
}

#[test]
fn q_zero_refuses_a_coding() {
    let (_tmp, server) = start();
    assert_negotiates(&server, "gzip;q=0", None);
    assert_negotiates(&server, "br;q=0, gzip", Some("gzip"));
    assert_negotiates(&server, "*, br;q=0, zstd;q=0", Some("gzip"));
}

#[test]
fn refused_identity_still_allows_gzip() {
    let (_tmp, server) = start();
    assert_negotiates(&server, "identity;q=0, gzip", Some("gzip"));
}

#[test]
fn wildcard_accepts_some_coding() {
    let (_tmp, server) = start();
    let response = get_encoded(&server, "/big.txt", "*");
    let coding = content_encoding(&response);
    assert!(
        matches!(coding.as_deref(), Some("br" | "zstd" | "gzip")),
        "Accept-Encoding: * gave Content-Encoding {coding:?}"
    );
    assert_eq!(decoded_body(&response), text().as_bytes());
}

#[test]
fn coding_names_are_case_insensitive() {
    let (_tmp, server) = start();
    assert_negotiates(&server, "GZip", Some("gzip"));
}

#[test]
fn no_accept_encoding_is_identity_with_vary() {
    let (_tmp, server) = start();
    let response = get(&server, "/big.txt");
    assert_eq!(response.status, 200);
    assert_eq!(content_encoding(&response), None);
    assert_eq!(response.body, text().as_bytes());
    assert!(
        varies_on_accept_encoding(&response),
        "Vary: {:?}",
        response.headers_all("vary")
    );
}

#[test]
fn nothing_acceptable_is_406() {
    let (_tmp, server) = start();
    for (path, accept_encoding) in [
        ("/img.png", "identity;q=0"),
        ("/img.png", "*;q=0"),
        ("/big.txt", "identity;q=0"),
        ("/big.txt", "*;q=0"),
    ] {
        let response = request(
            &server,
            "GET",
            path,
            &[("Accept-Encoding", accept_encoding)],
        );
        assert_eq!(
            response.status, 406,
            "GET {path} with Accept-Encoding: {accept_encoding}"
        );
        assert!(
            varies_on_accept_encoding(&response),
            "406 for {path} without Vary: {:?}",
            response.headers_all("vary")
        );
    }
}

/// Refusing identity while accepting a coding gets that coding, even for a file
/// too small to be worth it or of a type never compressed: 406 is for when no
/// acceptable coding is available (RFC 9110 §12.5.3).
#[test]
fn identity_refused_gets_an_acceptable_coding_whatever_the_file() {
    let (_tmp, root, server) = start_with(&[]);
    std::fs::write(root.join("tiny.txt"), "tiny\n").unwrap();
    for (path, accept_encoding, coding) in [
        ("/tiny.txt", "gzip, identity;q=0", "gzip"),
        ("/tiny.txt", "br, *;q=0", "br"),
        ("/img.png", "gzip;q=0.5, zstd, identity;q=0", "zstd"),
    ] {
        let response = request(
            &server,
            "GET",
            path,
            &[("Accept-Encoding", accept_encoding)],
        );
        assert_eq!(response.status, 200, "{path} {accept_encoding}");
        assert_eq!(content_encoding(&response).as_deref(), Some(coding));
        assert!(varies_on_accept_encoding(&response), "{path}");
        let plain = get(&server, path);
        assert_eq!(decoded_body(&response), plain.body, "{path}");
        assert_ne!(response.header("etag"), plain.header("etag"), "{path}");
        // So the plain file's answer depends on Accept-Encoding too, whatever its
        // type, and says so (RFC 9110 §12.5.5): from the hot cache and in a 304.
        for res in [plain, get(&server, path)] {
            assert!(varies_on_accept_encoding(&res), "{path}: {:?}", res.headers);
        }
        let tag = get(&server, path).header("etag").unwrap();
        let not_modified = request(&server, "GET", path, &[("If-None-Match", &tag)]);
        assert_eq!(not_modified.status, 304);
        assert!(varies_on_accept_encoding(&not_modified), "{path} 304");
    }
    // Someone accepting identity still gets the plain file.
    let response = request(&server, "GET", "/tiny.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!(content_encoding(&response), None);
}

// --- What is never compressed ------------------------------------------------------

#[test]
fn already_compressed_types_are_not_compressed() {
    let (_tmp, server) = start();
    for name in INCOMPRESSIBLE {
        let path = format!("/{name}");
        let response = get_encoded(&server, &path, "br, zstd, gzip");
        assert_eq!(content_encoding(&response), None, "{path} was compressed");
        assert_eq!(
            response.body,
            compressible_text(name, TEXT_LEN).as_bytes(),
            "{path}"
        );
    }
}

// --- Lengths, HEAD, ranges, caching -------------------------------------------------

#[test]
fn content_length_is_the_compressed_length() {
    let (_tmp, server) = start();
    for coding in ["gzip", "br", "zstd"] {
        let (head, body) = request_raw(&server, "GET", "/big.txt", &[("Accept-Encoding", coding)]);
        assert_eq!(head.status, 200);
        assert_eq!(content_encoding(&head).as_deref(), Some(coding));
        assert_eq!(
            head.content_length(),
            Some(body.len()),
            "{coding}: Content-Length vs bytes received"
        );
    }
}

#[test]
fn head_matches_get_for_a_compressed_response() {
    let (_tmp, server) = start();
    for coding in ["gzip", "br", "zstd"] {
        let got = get_encoded(&server, "/big.txt", coding);
        let (head, rest) = request_raw(&server, "HEAD", "/big.txt", &[("Accept-Encoding", coding)]);
        assert_eq!(head.status, 200, "{coding}");
        assert!(rest.is_empty(), "{coding}: HEAD response has a body");
        assert_eq!(content_encoding(&head).as_deref(), Some(coding));
        assert_eq!(head.content_length(), Some(got.body.len()), "{coding}");
        assert_eq!(head.header("etag"), got.header("etag"), "{coding}");
        assert!(varies_on_accept_encoding(&head), "{coding}");
    }
}

#[test]
fn range_applies_to_the_compressed_representation() {
    let (_tmp, server) = start();
    let full = get_encoded(&server, "/big.txt", "gzip");
    assert_eq!(content_encoding(&full).as_deref(), Some("gzip"));
    let total = full.body.len();

    for (range, first, last) in [
        ("bytes=0-9", 0, 9),
        ("bytes=100-199", 100, 199),
        ("bytes=-10", total - 10, total - 1),
    ] {
        let response = request(
            &server,
            "GET",
            "/big.txt",
            &[("Accept-Encoding", "gzip"), ("Range", range)],
        );
        assert_eq!(response.status, 206, "{range}");
        assert_eq!(
            content_encoding(&response).as_deref(),
            Some("gzip"),
            "{range}"
        );
        assert_eq!(
            response.header("content-range"),
            Some(format!("bytes {first}-{last}/{total}")),
            "{range}"
        );
        assert_eq!(response.body, &full.body[first..=last], "{range}");
        assert_eq!(response.header("etag"), full.header("etag"), "{range}");
        assert!(varies_on_accept_encoding(&response), "{range}");
    }
}

#[test]
fn repeated_requests_get_identical_compressed_bytes() {
    let (_tmp, server) = start();
    for coding in ["gzip", "br", "zstd"] {
        let first = get_encoded(&server, "/big.txt", coding);
        for _ in 0..3 {
            let again = get_encoded(&server, "/big.txt", coding);
            assert_eq!(again.body, first.body, "{coding} bytes changed");
            assert_eq!(
                strong_etag(&again),
                strong_etag(&first),
                "{coding} ETag changed"
            );
        }
    }
}

#[test]
fn tiny_compress_cache_still_serves_consistent_variants() {
    let (_tmp, root, server) = start_with(&["--compress-cache-size", "1024"]);
    let other = std::fs::read(root.join("other.txt")).unwrap();
    let big_first = get_encoded(&server, "/big.txt", "gzip");
    let other_first = get_encoded(&server, "/other.txt", "gzip");
    let big_again = get_encoded(&server, "/big.txt", "gzip");
    let other_again = get_encoded(&server, "/other.txt", "gzip");
    assert_eq!(gunzip(&big_first.body), text().as_bytes());
    assert_eq!(gunzip(&other_first.body), other);
    // A strong ETag promises identical bytes, evicted or not.
    for (first, again) in [(&big_first, &big_again), (&other_first, &other_again)] {
        assert_eq!(strong_etag(again), strong_etag(first));
        assert_eq!(again.body, first.body);
    }
    let range = request(
        &server,
        "GET",
        "/big.txt",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")],
    );
    assert_eq!(range.status, 206);
    assert_eq!(range.body, &big_first.body[..10]);
}

#[test]
fn large_file_body_decodes_to_the_file_whatever_the_coding() {
    let (_tmp, root, server) = start_with(&[]);
    let huge = std::fs::read(root.join("huge.txt")).unwrap();
    for coding in ["gzip", "br", "zstd"] {
        let (head, body) = request_raw(&server, "GET", "/huge.txt", &[("Accept-Encoding", coding)]);
        assert_eq!(head.status, 200, "{coding}");
        let mut response = head;
        if let Some(len) = response.content_length() {
            assert_eq!(
                len,
                body.len(),
                "{coding}: Content-Length vs bytes received"
            );
            response.body = body;
        } else {
            response = request(&server, "GET", "/huge.txt", &[("Accept-Encoding", coding)]);
        }
        let served = content_encoding(&response);
        assert!(
            served.is_none() || served.as_deref() == Some(coding),
            "asked for {coding}, got {served:?}"
        );
        assert!(
            decoded_body(&response) == huge,
            "{coding}: decoded body differs"
        );
    }
}

// --- --no-compress ---------------------------------------------------------------------

#[test]
fn no_compress_serves_identity() {
    let (_tmp, _root, server) = start_with(&["--no-compress"]);
    for coding in ["gzip", "br", "zstd", "*"] {
        let response = get_encoded(&server, "/big.txt", coding);
        assert_eq!(content_encoding(&response), None, "{coding}");
        assert_eq!(response.body, text().as_bytes(), "{coding}");
    }
}

// --- Precompressed sidecars ------------------------------------------------------------

fn assert_sidecar(response: &Response, coding: &str, expected_text: &str) {
    assert_eq!(content_encoding(response).as_deref(), Some(coding));
    assert_eq!(
        decoded_body(response),
        expected_text.as_bytes(),
        "{coding}: not the sidecar's content"
    );
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8"),
        "{coding}: Content-Type"
    );
    assert!(
        varies_on_accept_encoding(response),
        "{coding}: Vary {:?}",
        response.headers_all("vary")
    );
    assert_eq!(
        response.content_length(),
        Some(response.body.len()),
        "{coding}: Content-Length"
    );
    strong_etag(response);
}

#[test]
fn gzip_sidecar_is_served_for_gzip() {
    let (_tmp, server) = start();
    let response = get_encoded(&server, "/app.js", "gzip");
    assert_sidecar(&response, "gzip", &gz_sidecar_text());
}

#[test]
fn brotli_sidecar_is_served_for_br() {
    let (_tmp, server) = start();
    let response = get_encoded(&server, "/app.js", "br");
    assert_sidecar(&response, "br", &br_sidecar_text());
    let response = get_encoded(&server, "/app.js", "gzip, br");
    assert_sidecar(&response, "br", &br_sidecar_text());
}

#[test]
fn sidecar_has_its_own_etag() {
    let (_tmp, server) = start();
    let identity = get(&server, "/app.js");
    assert_eq!(identity.body, script().as_bytes());
    let gz = get_encoded(&server, "/app.js", "gzip");
    let br = get_encoded(&server, "/app.js", "br");
    let tags = [strong_etag(&identity), strong_etag(&gz), strong_etag(&br)];
    assert_ne!(tags[0], tags[1]);
    assert_ne!(tags[0], tags[2]);
    assert_ne!(tags[1], tags[2]);

    let response = request(
        &server,
        "GET",
        "/app.js",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &tags[1])],
    );
    assert_eq!(response.status, 304, "If-None-Match with the sidecar ETag");
    assert_eq!(response.header("etag").as_deref(), Some(tags[1].as_str()));
}

/// A sidecar older than its file was made from an earlier version: the file is
/// compressed on the fly instead, so every client gets the same content.
#[test]
fn a_sidecar_older_than_its_file_is_not_sent() {
    let (_tmp, root, server) = start_with(&[]);
    assert_sidecar(
        &get_encoded(&server, "/app.js", "gzip"),
        "gzip",
        &gz_sidecar_text(),
    );
    let edited = "console.log('edited');\n".repeat(300);
    std::fs::write(root.join("app.js"), &edited).unwrap();
    set_mtime(&root.join("app.js"), unix_time(T0 + 60));
    for coding in ["gzip", "br"] {
        let response = get_encoded(&server, "/app.js", coding);
        assert_eq!(content_encoding(&response).as_deref(), Some(coding));
        assert_eq!(decoded_body(&response), edited.as_bytes(), "{coding}");
    }
    // Made again after the file: sent again (its text tells it from compressing
    // on the fly).
    let remade = "console.log('remade sidecar');\n".repeat(300);
    std::fs::write(root.join("app.js.gz"), gzip_compress(remade.as_bytes())).unwrap();
    set_mtime(&root.join("app.js.gz"), unix_time(T0 + 120));
    std::fs::remove_file(root.join("app.js.br")).unwrap();
    let response = get_encoded(&server, "/app.js", "gzip");
    assert_sidecar(&response, "gzip", &remade);
}

#[test]
fn sidecars_are_served_with_no_compress() {
    let (_tmp, _root, server) = start_with(&["--no-compress"]);
    assert_sidecar(
        &get_encoded(&server, "/app.js", "gzip"),
        "gzip",
        &gz_sidecar_text(),
    );
    assert_sidecar(
        &get_encoded(&server, "/app.js", "br"),
        "br",
        &br_sidecar_text(),
    );
    // No .zst sidecar and no on-the-fly compression: identity.
    let response = get_encoded(&server, "/app.js", "zstd");
    assert_eq!(content_encoding(&response), None);
    assert_eq!(response.body, script().as_bytes());
}

#[test]
fn a_sidecar_beats_compressing_on_the_fly_for_a_coding_ranked_as_high_or_higher() {
    let (_tmp, root, server) = start_with(&[]);
    // Only a .gz: a browser's list (every coding at q=1, br first by server preference)
    // gets the shipped file, not brotli made on the fly; twice, so the cache agrees.
    std::fs::remove_file(root.join("app.js.br")).unwrap();
    for accept in ["gzip, deflate, br, zstd", "br;q=1, gzip;q=0.5", "br, gzip"] {
        for round in 0..2 {
            let response = get_encoded(&server, "/app.js", accept);
            assert_eq!(
                content_encoding(&response).as_deref(),
                Some("gzip"),
                "{accept}, round {round}"
            );
            assert_sidecar(&response, "gzip", &gz_sidecar_text());
        }
    }
    // Identity ranked above gzip: the file itself.
    for round in 0..2 {
        let response = get_encoded(&server, "/app.js", "identity, gzip;q=0.5");
        assert_eq!(content_encoding(&response), None, "round {round}");
        assert_eq!(response.body, script().as_bytes());
    }
    // Without the sidecar, brotli is made on the fly again.
    std::fs::remove_file(root.join("app.js.gz")).unwrap();
    let response = get_encoded(&server, "/app.js", "gzip, deflate, br, zstd");
    assert_eq!(content_encoding(&response).as_deref(), Some("br"));
    assert_eq!(decoded_body(&response), script().as_bytes());
    // And a sidecar that appears is preferred at once, over the cached brotli. (The
    // folder's own stamp is moved too: on file systems with coarse timestamps a
    // removal and a creation within one tick leave it unchanged, see
    // ARCHITECTURE.md.)
    write_file(
        &root,
        "app.js.gz",
        gzip_compress(gz_sidecar_text().as_bytes()),
    );
    set_mtime(&root, unix_time(T0 + 777));
    let response = get_encoded(&server, "/app.js", "gzip, deflate, br, zstd");
    assert_sidecar(&response, "gzip", &gz_sidecar_text());
}

#[test]
fn without_a_sidecar_for_the_coding_the_original_is_used() {
    let (_tmp, server) = start();
    // zstd: compressed on the fly from app.js itself, not from a sidecar.
    let response = get_encoded(&server, "/app.js", "zstd");
    assert_eq!(decoded_body(&response), script().as_bytes());
    // Identity is app.js itself.
    let response = get(&server, "/app.js");
    assert_eq!(response.body, script().as_bytes());
}

#[test]
fn a_sidecar_that_appears_later_is_served_at_once() {
    let (_tmp, root, server) = start_with(&[]);
    // other.txt is compressed on the fly; short.txt is too small to compress, so a
    // gzip client gets identity. Both answers are cached, twice over.
    write_file(&root, "short.txt", "tiny text\n");
    for _ in 0..2 {
        let response = get_encoded(&server, "/other.txt", "gzip");
        assert_eq!(content_encoding(&response).as_deref(), Some("gzip"));
        let response = get_encoded(&server, "/short.txt", "gzip");
        assert_eq!(content_encoding(&response), None);
    }
    let later = "console.log('a sidecar made later');\n".repeat(50);
    write_file(&root, "other.txt.gz", gzip_compress(later.as_bytes()));
    write_file(&root, "short.txt.gz", gzip_compress(later.as_bytes()));
    for path in ["/other.txt", "/short.txt"] {
        let response = get_encoded(&server, path, "gzip");
        assert_eq!(
            content_encoding(&response).as_deref(),
            Some("gzip"),
            "{path}"
        );
        assert_eq!(
            decoded_body(&response),
            later.as_bytes(),
            "{path}: not the new sidecar"
        );
    }
    // Clients that never take the sidecar still get the file.
    assert_eq!(get(&server, "/short.txt").body, b"tiny text\n");
}

#[test]
fn a_sidecar_has_its_own_last_modified() {
    let (_tmp, root, server) = start_with(&[]);
    let sidecar_time = unix_time(T0 + 86_400);
    set_mtime(&root.join("app.js.gz"), sidecar_time);
    let response = get_encoded(&server, "/app.js", "gzip");
    assert_sidecar(&response, "gzip", &gz_sidecar_text());
    assert_eq!(
        response.header("last-modified"),
        Some(http_date(sidecar_time)),
        "the sidecar's modification time"
    );
    let response = get(&server, "/app.js");
    assert_eq!(
        response.header("last-modified"),
        Some(http_date(unix_time(T0)))
    );
}

#[test]
fn sidecars_are_listed_as_ordinary_files() {
    let (_tmp, root, server) = start_with(&[]);
    let response = request(&server, "GET", "/", &[("Accept", "application/json")]);
    assert_eq!(response.status, 200);
    let listing: serde_json::Value = serde_json::from_slice(&decoded_body(&response))
        .unwrap_or_else(|e| panic!("listing is not JSON ({e}): {}", response.body_text()));
    let entries = listing["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries array: {listing}"));
    for name in ["app.js", "app.js.gz", "app.js.br"] {
        let entry = entries
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {listing}"));
        assert_eq!(entry["type"], "file", "{name}: {entry}");
        let size = std::fs::metadata(root.join(name)).unwrap().len();
        assert_eq!(entry["size"].as_u64(), Some(size), "{name}: {entry}");
    }
}

#[test]
fn sidecar_requested_directly_is_served_as_is() {
    let (_tmp, root, server) = start_with(&[]);
    for (name, accept_encoding) in [
        ("app.js.gz", None),
        ("app.js.gz", Some("gzip")),
        ("app.js.br", Some("br, gzip")),
    ] {
        let path = format!("/{name}");
        let headers: Vec<(&str, &str)> = accept_encoding
            .map(|v| vec![("Accept-Encoding", v)])
            .unwrap_or_default();
        let response = request(&server, "GET", &path, &headers);
        let what = format!("{path} with Accept-Encoding {accept_encoding:?}");
        assert_eq!(response.status, 200, "{what}");
        assert_eq!(content_encoding(&response), None, "{what}");
        assert_eq!(
            response.body,
            std::fs::read(root.join(name)).unwrap(),
            "{what}"
        );
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(
            !content_type.starts_with("text/javascript"),
            "{what}: Content-Type {content_type:?}"
        );
    }
}
