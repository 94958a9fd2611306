//! Validators on file responses: `Last-Modified` and strong, content-derived `ETag`s,
//! one per content coding (RFC 9110 §8.8).

mod common;

use common::*;
use std::fs;
use std::path::Path;

/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000;
/// A day later.
const T1: u64 = T0 + 86_400;

/// Larger than the server's in-memory threshold (64 KiB), so it is streamed from disk.
const LARGE: usize = 300 * 1024;

fn start_with(files: &[(&str, &[u8], u64)]) -> (tempfile::TempDir, std::path::PathBuf, Server) {
    let (tmp, root) = temp_root();
    for (name, contents, mtime) in files {
        write_file(&root, name, contents);
        set_mtime(&root.join(name), unix_time(*mtime));
    }
    let server = Server::start(&root, &[]);
    (tmp, root, server)
}

fn get_ok(server: &Server, path: &str) -> Response {
    let response = get(server, path);
    assert_eq!(response.status, 200, "GET {path}");
    response
}

#[test]
fn every_file_response_has_last_modified_and_strong_etag() {
    let large = pseudo_random_bytes(1, LARGE);
    let text = compressible_text("text", 3000);
    let files: [(&str, &[u8], u64); 5] = [
        ("a.txt", b"hello", T0),
        ("empty.txt", b"", T0),
        ("img.png", b"\x89PNG\r\n\x1a\nnot really", T0),
        ("page.html", text.as_bytes(), T0),
        ("large.bin", &large, T0),
    ];
    let (_tmp, _root, server) = start_with(&files);
    for (name, contents, _) in files {
        let path = format!("/{name}");
        let response = get_ok(&server, &path);
        assert_eq!(response.body, contents, "{path}");
        let etag = strong_etag(&response);
        assert!(!etag.starts_with("W/"), "{path}: weak ETag {etag:?}");
        assert_eq!(
            response.header("last-modified").as_deref(),
            Some(http_date(unix_time(T0)).as_str()),
            "{path}: Last-Modified"
        );
    }
}

#[test]
fn a_modification_time_in_the_future_is_not_sent_as_last_modified() {
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(10 * 365 * 86_400);
    let (_tmp, root, server) = start_with(&[("future.txt", b"from the future", T0)]);
    set_mtime(&root.join("future.txt"), future);
    for _ in 0..2 {
        let response = get_ok(&server, "/future.txt");
        let modified = response.header("last-modified").expect("Last-Modified");
        let date = response.header("date").expect("Date");
        let modified = httpdate::parse_http_date(&modified).expect("an HTTP date");
        let date = httpdate::parse_http_date(&date).expect("an HTTP date");
        assert!(modified <= date, "Last-Modified after Date");
    }
}

#[test]
fn head_carries_the_same_validators_as_get() {
    let text = compressible_text("head", 2000);
    let (_tmp, _root, server) = start_with(&[("a.txt", text.as_bytes(), T0)]);
    let got = get_ok(&server, "/a.txt");
    let head = request(&server, "HEAD", "/a.txt", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(strong_etag(&head), strong_etag(&got));
    assert_eq!(head.header("last-modified"), got.header("last-modified"));
}

#[test]
fn etag_is_stable_across_requests() {
    let (_tmp, _root, server) = start_with(&[("a.txt", b"stable", T0)]);
    let first = strong_etag(&get_ok(&server, "/a.txt"));
    for _ in 0..3 {
        assert_eq!(strong_etag(&get_ok(&server, "/a.txt")), first);
    }
}

#[test]
fn identical_content_under_different_names_and_mtimes_has_the_same_etag() {
    let (_tmp, _root, server) = start_with(&[
        ("one.txt", b"same bytes in both files", T0),
        ("two.txt", b"same bytes in both files", T1),
    ]);
    let one = get_ok(&server, "/one.txt");
    let two = get_ok(&server, "/two.txt");
    assert_ne!(
        one.header("last-modified"),
        two.header("last-modified"),
        "fixture: the mtimes differ"
    );
    assert_eq!(strong_etag(&one), strong_etag(&two));
}

#[test]
fn identical_large_files_have_the_same_etag() {
    let large = pseudo_random_bytes(2, LARGE);
    let (_tmp, _root, server) = start_with(&[("one.bin", &large, T0), ("two.bin", &large, T1)]);
    assert_eq!(
        strong_etag(&get_ok(&server, "/one.bin")),
        strong_etag(&get_ok(&server, "/two.bin"))
    );
}

#[test]
fn different_content_has_different_etags() {
    let (_tmp, _root, server) = start_with(&[
        ("one.txt", b"content number one", T0),
        ("two.txt", b"content number two", T0),
    ]);
    assert_ne!(
        strong_etag(&get_ok(&server, "/one.txt")),
        strong_etag(&get_ok(&server, "/two.txt"))
    );
}

#[test]
fn large_files_differing_only_in_their_last_byte_have_different_etags() {
    let one = pseudo_random_bytes(3, LARGE);
    let mut two = one.clone();
    *two.last_mut().unwrap() ^= 0xff;
    let (_tmp, _root, server) = start_with(&[("one.bin", &one, T0), ("two.bin", &two, T0)]);
    assert_ne!(
        strong_etag(&get_ok(&server, "/one.bin")),
        strong_etag(&get_ok(&server, "/two.bin"))
    );
}

#[test]
fn changing_only_the_mtime_keeps_the_etag_and_changes_last_modified() {
    let (_tmp, root, server) = start_with(&[("a.txt", b"touch me", T0)]);
    let before = get_ok(&server, "/a.txt");
    assert_eq!(
        before.header("last-modified").as_deref(),
        Some(http_date(unix_time(T0)).as_str())
    );

    set_mtime(&root.join("a.txt"), unix_time(T1));
    let after = get_ok(&server, "/a.txt");
    assert_eq!(
        after.header("last-modified").as_deref(),
        Some(http_date(unix_time(T1)).as_str()),
        "Last-Modified must follow the new mtime"
    );
    assert_eq!(strong_etag(&after), strong_etag(&before));
}

#[test]
fn rewriting_the_same_bytes_keeps_the_etag() {
    let (_tmp, root, server) = start_with(&[("a.txt", b"rewritten but identical", T0)]);
    let before = get_ok(&server, "/a.txt");

    // Rewriting moves the mtime from 2023 to now.
    fs::write(root.join("a.txt"), b"rewritten but identical").unwrap();
    let after = get_ok(&server, "/a.txt");
    assert_ne!(
        after.header("last-modified"),
        before.header("last-modified"),
        "Last-Modified must follow the rewrite"
    );
    assert_eq!(strong_etag(&after), strong_etag(&before));
}

fn assert_rewrite_changes_etag(root: &Path, server: &Server, name: &str, new: &[u8]) {
    let path = format!("/{name}");
    let before = get_ok(server, &path);
    fs::write(root.join(name), new).unwrap();
    set_mtime(&root.join(name), unix_time(T1));
    let after = get_ok(server, &path);
    assert_eq!(after.body, new, "{path}: new content is served");
    assert_ne!(
        strong_etag(&after),
        strong_etag(&before),
        "{path}: ETag must change with the content"
    );
}

#[test]
fn changing_the_content_changes_the_etag() {
    let large = pseudo_random_bytes(4, LARGE);
    let (_tmp, root, server) = start_with(&[
        ("same-len.txt", b"aaaaaaaa", T0),
        ("other-len.txt", b"short", T0),
        ("large.bin", &large, T0),
    ]);
    assert_rewrite_changes_etag(&root, &server, "same-len.txt", b"bbbbbbbb");
    assert_rewrite_changes_etag(&root, &server, "other-len.txt", b"a longer text");
    let mut changed = large.clone();
    changed[LARGE / 2] ^= 0x55;
    assert_rewrite_changes_etag(&root, &server, "large.bin", &changed);
}

/// Above 16 MiB a file is not read for its tag (a first response would wait for the
/// whole file): the tag names the file's state, and changes with any write.
#[test]
fn files_too_large_to_hash_get_a_tag_from_their_state() {
    use std::os::unix::fs::FileExt;
    let (_tmp, root) = temp_root();
    let path = root.join("big.bin");
    let file = fs::File::create(&path).unwrap();
    file.set_len(17 * 1024 * 1024).unwrap();
    set_mtime(&path, unix_time(T0));
    let server = Server::start(&root, &[]);
    let first = strong_etag(&request(&server, "HEAD", "/big.bin", &[]));
    assert_eq!(
        strong_etag(&request(&server, "HEAD", "/big.bin", &[])),
        first,
        "the same state, the same tag"
    );
    let revalidated = request(&server, "GET", "/big.bin", &[("If-None-Match", &first)]);
    assert_eq!(revalidated.status, 304);
    let ranged = request(
        &server,
        "GET",
        "/big.bin",
        &[("Range", "bytes=0-3"), ("If-Range", &first)],
    );
    assert_eq!(ranged.status, 206, "the tag is strong: If-Range holds");

    // Not read for its tag: the same bytes written again (a zero over a zero) make
    // a new tag, as the file's state changed.
    file.write_all_at(b"\0", 5000).unwrap();
    set_mtime(&path, unix_time(T0));
    let rewritten = strong_etag(&request(&server, "HEAD", "/big.bin", &[]));
    assert_ne!(rewritten, first, "a tag from the state, not the bytes");
    // One byte changed in place, the size and even the mtime kept: still a new tag.
    file.write_all_at(b"x", 1000).unwrap();
    set_mtime(&path, unix_time(T0));
    let after = request(&server, "HEAD", "/big.bin", &[]);
    assert_ne!(strong_etag(&after), first);
    assert_ne!(strong_etag(&after), rewritten);
    let stale = request(&server, "GET", "/big.bin", &[("If-None-Match", &first)]);
    assert_eq!(stale.status, 200);
}

#[test]
fn each_content_coding_has_its_own_strong_etag() {
    let text = compressible_text("codings", 20 * 1024);
    let (_tmp, _root, server) = start_with(&[("a.txt", text.as_bytes(), T0)]);
    let mut seen: Vec<(String, String)> = Vec::new();
    for coding in ["identity", "gzip", "br", "zstd"] {
        let response = request(&server, "GET", "/a.txt", &[("Accept-Encoding", coding)]);
        assert_eq!(response.status, 200, "Accept-Encoding: {coding}");
        let served = response
            .header("content-encoding")
            .unwrap_or_else(|| "identity".into());
        assert_eq!(
            served, coding,
            "Content-Encoding for Accept-Encoding: {coding}"
        );
        assert_eq!(decoded_body(&response), text.as_bytes(), "{coding} body");
        let etag = strong_etag(&response);
        for (other, other_etag) in &seen {
            assert_ne!(
                &etag, other_etag,
                "{coding} and {other} representations share an ETag"
            );
        }
        seen.push((coding.to_string(), etag));
    }
}

#[test]
fn compressed_etag_is_stable_and_tracks_content() {
    let text = compressible_text("gz-etag", 20 * 1024);
    let (_tmp, root, server) = start_with(&[("a.txt", text.as_bytes(), T0)]);
    let gz = |server: &Server| {
        let response = request(server, "GET", "/a.txt", &[("Accept-Encoding", "gzip")]);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-encoding").as_deref(), Some("gzip"));
        response
    };
    let first = gz(&server);
    assert_eq!(strong_etag(&gz(&server)), strong_etag(&first));

    let new_text = compressible_text("gz-etag-changed", 20 * 1024);
    fs::write(root.join("a.txt"), &new_text).unwrap();
    set_mtime(&root.join("a.txt"), unix_time(T1));
    let changed = gz(&server);
    assert_eq!(
        gunzip(&changed.body),
        new_text.as_bytes(),
        "stale variant served"
    );
    assert_ne!(strong_etag(&changed), strong_etag(&first));
}
