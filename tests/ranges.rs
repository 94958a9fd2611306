//! Range requests (RFC 9110 §14): single ranges, 416, ignored syntax errors,
//! multipart/byteranges, abuse limits, If-Range, and the headers a 206 carries.

mod common;

use common::*;

/// 2023-11-14T22:13:20Z: the mtime of every fixture file.
const T0: u64 = 1_700_000_000;
const DAY: u64 = 86_400;

const TEN: &[u8] = b"0123456789";
/// Larger than the server's in-memory threshold (64 KiB) and its 256 KiB read chunk.
const LARGE: usize = 300 * 1024;

struct Fixture {
    _tmp: tempfile::TempDir,
    server: Server,
    large: Vec<u8>,
    text: Vec<u8>,
    kilo: Vec<u8>,
    small_text: Vec<u8>,
}

fn start() -> Fixture {
    let (tmp, root) = temp_root();
    let large = pseudo_random_bytes(7, LARGE);
    let text = compressible_text("ranges", 20 * 1024).into_bytes();
    let kilo = pseudo_random_bytes(8, 4000);
    let small_text = compressible_text("small", 400).into_bytes();
    let files: [(&str, &[u8]); 6] = [
        ("empty.bin", b""),
        ("ten.bin", TEN),
        ("large.bin", &large),
        ("text.txt", &text),
        ("kilo.bin", &kilo),
        ("small.txt", &small_text),
    ];
    for (name, contents) in files {
        write_file(&root, name, contents);
        set_mtime(&root.join(name), unix_time(T0));
    }
    let server = Server::start(&root, &[]);
    Fixture {
        _tmp: tmp,
        server,
        large,
        text,
        kilo,
        small_text,
    }
}

fn get_range(fx: &Fixture, path: &str, range: &str) -> Response {
    request(&fx.server, "GET", path, &[("Range", range)])
}

/// `Content-Range: bytes FIRST-LAST/LEN` → (first, last, len).
fn parse_content_range(value: &str) -> (usize, usize, usize) {
    let parse = || -> Option<(usize, usize, usize)> {
        let rest = value.trim().strip_prefix("bytes ")?;
        let (span, len) = rest.split_once('/')?;
        let (first, last) = span.split_once('-')?;
        Some((first.parse().ok()?, last.parse().ok()?, len.parse().ok()?))
    };
    parse().unwrap_or_else(|| panic!("malformed Content-Range {value:?}"))
}

/// Assert a single-part 206 for `first..=last` of `file`.
fn assert_single_part(response: &Response, file: &[u8], first: usize, last: usize, what: &str) {
    assert_eq!(response.status, 206, "{what}: status");
    assert_eq!(
        response.header("content-range"),
        Some(format!("bytes {first}-{last}/{}", file.len())),
        "{what}: Content-Range"
    );
    assert_eq!(
        response.content_length(),
        Some(last - first + 1),
        "{what}: Content-Length"
    );
    assert_eq!(response.body, &file[first..=last], "{what}: bytes");
}

fn assert_full(response: &Response, file: &[u8], what: &str) {
    assert_eq!(response.status, 200, "{what}: status");
    assert!(
        response.header("content-range").is_none(),
        "{what}: Content-Range on a 200"
    );
    assert_eq!(response.body, file, "{what}: body");
}

fn assert_unsatisfiable(response: &Response, len: usize, what: &str) {
    assert_eq!(response.status, 416, "{what}: status");
    assert_eq!(
        response.header("content-range"),
        Some(format!("bytes */{len}")),
        "{what}: Content-Range"
    );
}

// --- multipart/byteranges -----------------------------------------------------

#[derive(Debug)]
struct Part {
    content_type: Option<String>,
    first: usize,
    last: usize,
    total: usize,
    data: Vec<u8>,
}

/// The boundary parameter of `multipart/byteranges; boundary=...`.
fn boundary_of(content_type: &str) -> String {
    let (essence, params) = content_type
        .split_once(';')
        .unwrap_or_else(|| panic!("no boundary parameter in {content_type:?}"));
    assert!(
        essence.trim().eq_ignore_ascii_case("multipart/byteranges"),
        "Content-Type {content_type:?}"
    );
    params
        .split(';')
        .find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| value.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("no boundary parameter in {content_type:?}"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parse a multipart/byteranges body (RFC 9110 §14.6, RFC 2046 §5.1.1). Each part's
/// data is read by the length its Content-Range gives and must be followed by the
/// next delimiter; the body must end with the close delimiter.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<Part> {
    let dash_boundary = format!("--{boundary}").into_bytes();
    let lossy = || String::from_utf8_lossy(body).into_owned();
    // Optional preamble; the first delimiter is at the start or after a CRLF.
    let mut pos = if body.starts_with(&dash_boundary) {
        dash_boundary.len()
    } else {
        let mut needle = b"\r\n".to_vec();
        needle.extend_from_slice(&dash_boundary);
        find(body, &needle).unwrap_or_else(|| panic!("no opening delimiter in {:?}", lossy()))
            + needle.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        assert!(
            !rest.is_empty(),
            "body ends without the close delimiter: {:?}",
            lossy()
        );
        if let Some(epilogue) = rest.strip_prefix(b"--") {
            assert!(
                epilogue.iter().all(|b| b.is_ascii_whitespace()),
                "unexpected bytes after the close delimiter: {:?}",
                String::from_utf8_lossy(epilogue)
            );
            assert!(!parts.is_empty(), "multipart body without parts");
            return parts;
        }
        // Transport padding, then the CRLF ending the delimiter line.
        let padding = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        assert!(
            rest[padding..].starts_with(b"\r\n"),
            "delimiter line not ended by CRLF at offset {pos}: {:?}",
            lossy()
        );
        pos += padding + 2;

        let mut headers = [httparse::EMPTY_HEADER; 16];
        let (header_len, parsed) = match httparse::parse_headers(&body[pos..], &mut headers) {
            Ok(httparse::Status::Complete(done)) => done,
            other => panic!("bad part headers ({other:?}) in {:?}", lossy()),
        };
        let header = |name: &str| {
            parsed
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let content_type = header("content-type");
        let content_range = header("content-range")
            .unwrap_or_else(|| panic!("part without Content-Range in {:?}", lossy()));
        let (first, last, total) = parse_content_range(&content_range);
        assert!(first <= last, "part range {content_range:?}");
        pos += header_len;

        let len = last - first + 1;
        assert!(
            body.len() >= pos + len,
            "part {content_range:?} truncated: {:?}",
            lossy()
        );
        let data = body[pos..pos + len].to_vec();
        pos += len;
        let delimiter = [b"\r\n".as_slice(), &dash_boundary].concat();
        assert!(
            body[pos..].starts_with(&delimiter),
            "part {content_range:?} not followed by CRLF--boundary: {:?}",
            lossy()
        );
        pos += delimiter.len();
        parts.push(Part {
            content_type,
            first,
            last,
            total,
            data,
        });
    }
}

/// GET `path` with `range`, asserting a multipart/byteranges 206 whose
/// Content-Length matches what arrived and whose parts are exact slices of `file`.
fn get_multipart(fx: &Fixture, path: &str, range: &str, file: &[u8]) -> Vec<Part> {
    let full_type = get(&fx.server, path).header("content-type");
    let (head, body) = request_raw(&fx.server, "GET", path, &[("Range", range)]);
    assert_eq!(head.status, 206, "Range: {range}: status");
    assert!(
        head.header("content-range").is_none(),
        "Range: {range}: top-level Content-Range on a multipart response"
    );
    assert_eq!(
        head.content_length(),
        Some(body.len()),
        "Range: {range}: Content-Length vs bytes received"
    );
    let content_type = head
        .header("content-type")
        .unwrap_or_else(|| panic!("Range: {range}: no Content-Type"));
    let parts = parse_multipart(&body, &boundary_of(&content_type));
    for part in &parts {
        assert_eq!(
            part.total,
            file.len(),
            "Range: {range}: part total {part:?}"
        );
        assert!(part.last < file.len(), "Range: {range}: part past EOF");
        assert_eq!(
            part.data,
            &file[part.first..=part.last],
            "Range: {range}: bytes of part {}-{}",
            part.first,
            part.last
        );
        assert_eq!(
            part.content_type, full_type,
            "Range: {range}: part Content-Type"
        );
    }
    parts
}

fn spans(parts: &[Part]) -> Vec<(usize, usize)> {
    parts.iter().map(|p| (p.first, p.last)).collect()
}

/// Whatever the server made of `range` (one 206 or a multipart 206), the returned
/// spans with their bytes, checked against `file`.
fn served_spans(fx: &Fixture, path: &str, range: &str, file: &[u8]) -> Vec<(usize, usize)> {
    let response = get_range(fx, path, range);
    assert_eq!(response.status, 206, "Range: {range}: status");
    let content_type = response.header("content-type").unwrap_or_default();
    if content_type.starts_with("multipart/byteranges") {
        spans(&get_multipart(fx, path, range, file))
    } else {
        let (first, last, total) =
            parse_content_range(&response.header("content-range").unwrap_or_default());
        assert_eq!(total, file.len(), "Range: {range}");
        assert_single_part(&response, file, first, last, &format!("Range: {range}"));
        vec![(first, last)]
    }
}

fn covers(spans: &[(usize, usize)], first: usize, last: usize) -> bool {
    (first..=last).all(|i| spans.iter().any(|(a, b)| (*a..=*b).contains(&i)))
}

// --- Accept-Ranges --------------------------------------------------------------

#[test]
fn file_responses_advertise_byte_ranges() {
    let fx = start();
    for (method, path) in [
        ("GET", "/ten.bin"),
        ("HEAD", "/ten.bin"),
        ("GET", "/text.txt"),
    ] {
        let response = request(&fx.server, method, path, &[]);
        assert_eq!(response.status, 200, "{method} {path}");
        assert_eq!(
            response.header("accept-ranges").as_deref(),
            Some("bytes"),
            "{method} {path}"
        );
    }
}

// --- Single ranges ------------------------------------------------------------------

#[test]
fn first_bytes_range() {
    let fx = start();
    let response = get_range(&fx, "/ten.bin", "bytes=0-4");
    assert_single_part(&response, TEN, 0, 4, "bytes=0-4");
    assert_eq!(response.body, b"01234");
}

/// `Range` takes one value (RFC 9110 §14.2): two fields are no valid range
/// request, and one that is not valid is ignored (200).
#[test]
fn two_range_fields_are_ignored() {
    let fx = start();
    let response = request(
        &fx.server,
        "GET",
        "/ten.bin",
        &[("Range", "bytes=0-1"), ("Range", "bytes=3-4")],
    );
    assert_full(&response, TEN, "two Range fields");
    let response = request(
        &fx.server,
        "GET",
        "/ten.bin",
        &[("Range", "bytes=0-1, 3-4")],
    );
    assert_eq!(response.status, 206);
}

#[test]
fn open_ended_range() {
    let fx = start();
    let response = get_range(&fx, "/ten.bin", "bytes=5-");
    assert_single_part(&response, TEN, 5, 9, "bytes=5-");
    assert_eq!(response.body, b"56789");
}

#[test]
fn suffix_range() {
    let fx = start();
    let response = get_range(&fx, "/ten.bin", "bytes=-3");
    assert_single_part(&response, TEN, 7, 9, "bytes=-3");
    assert_eq!(response.body, b"789");
}

#[test]
fn single_byte_ranges_at_both_ends() {
    let fx = start();
    assert_single_part(
        &get_range(&fx, "/ten.bin", "bytes=0-0"),
        TEN,
        0,
        0,
        "bytes=0-0",
    );
    assert_single_part(
        &get_range(&fx, "/ten.bin", "bytes=9-9"),
        TEN,
        9,
        9,
        "bytes=9-9",
    );
}

#[test]
fn range_end_past_eof_is_clamped() {
    let fx = start();
    let response = get_range(&fx, "/ten.bin", "bytes=5-999999");
    assert_single_part(&response, TEN, 5, 9, "bytes=5-999999");
}

#[test]
fn suffix_longer_than_the_file_selects_all_of_it() {
    let fx = start();
    let response = get_range(&fx, "/ten.bin", "bytes=-20");
    // RFC 9110 §14.1.2: the entire representation is used.
    assert_single_part(&response, TEN, 0, 9, "bytes=-20");
}

#[test]
fn ranges_of_a_large_file_streamed_from_disk() {
    let fx = start();
    let len = fx.large.len();
    // Straddles the 256 KiB read-chunk boundary.
    let response = get_range(&fx, "/large.bin", "bytes=262000-262999");
    assert_single_part(&response, &fx.large, 262_000, 262_999, "straddling range");
    let response = get_range(&fx, "/large.bin", "bytes=-1000");
    assert_single_part(&response, &fx.large, len - 1000, len - 1, "suffix");
    let response = get_range(&fx, "/large.bin", "bytes=100-");
    assert_single_part(&response, &fx.large, 100, len - 1, "open-ended");
}

#[test]
fn range_request_is_case_insensitive_on_the_unit() {
    let fx = start();
    // RFC 9110 §14.1: range units are compared case-insensitively.
    let response = get_range(&fx, "/ten.bin", "Bytes=0-4");
    assert_single_part(&response, TEN, 0, 4, "Bytes=0-4");
}

// --- Unsatisfiable and invalid --------------------------------------------------

#[test]
fn range_starting_at_or_after_eof_is_416() {
    let fx = start();
    for range in ["bytes=10-", "bytes=999-1000", "bytes=10-10"] {
        assert_unsatisfiable(&get_range(&fx, "/ten.bin", range), TEN.len(), range);
    }
}

#[test]
fn all_ranges_unsatisfiable_is_416() {
    let fx = start();
    let range = "bytes=20-30,40-50";
    assert_unsatisfiable(&get_range(&fx, "/ten.bin", range), TEN.len(), range);
}

#[test]
fn unsatisfiable_ranges_are_dropped_when_another_is_satisfiable() {
    let fx = start();
    let spans = served_spans(&fx, "/ten.bin", "bytes=0-1,20-30", TEN);
    assert!(covers(&spans, 0, 1), "spans {spans:?}");
    assert!(
        spans.iter().all(|(_, last)| *last < TEN.len()),
        "spans {spans:?}"
    );
}

#[test]
fn syntactically_invalid_ranges_are_ignored() {
    let fx = start();
    for range in [
        "bytes=5-1",
        "bytes=abc",
        "items=0-1",
        "bytes=",
        "bytes=1-2-3",
    ] {
        assert_full(&get_range(&fx, "/ten.bin", range), TEN, range);
    }
}

// --- Multiple ranges ----------------------------------------------------------------

#[test]
fn two_disjoint_ranges_are_multipart() {
    let fx = start();
    for range in ["bytes=0-1,5-6", "bytes=0-1, 5-6"] {
        let parts = get_multipart(&fx, "/ten.bin", range, TEN);
        assert_eq!(spans(&parts), [(0, 1), (5, 6)], "Range: {range}");
        assert_eq!(parts[0].data, b"01");
        assert_eq!(parts[1].data, b"56");
    }
}

#[test]
fn first_and_last_byte_are_multipart() {
    let fx = start();
    let parts = get_multipart(&fx, "/ten.bin", "bytes=0-0,-1", TEN);
    assert_eq!(spans(&parts), [(0, 0), (9, 9)]);
    assert_eq!(parts[0].data, b"0");
    assert_eq!(parts[1].data, b"9");
}

#[test]
fn multipart_of_a_text_file_carries_its_content_type_in_each_part() {
    let fx = start();
    let parts = get_multipart(&fx, "/text.txt", "bytes=0-99,10000-10099", &fx.text);
    assert_eq!(spans(&parts), [(0, 99), (10_000, 10_099)]);
    for part in &parts {
        assert_eq!(
            part.content_type.as_deref(),
            Some("text/plain; charset=utf-8")
        );
    }
}

#[test]
fn multipart_ranges_of_a_large_file_streamed_from_disk() {
    let fx = start();
    let len = fx.large.len();
    let parts = get_multipart(
        &fx,
        "/large.bin",
        "bytes=0-99,200000-262999,-100",
        &fx.large,
    );
    assert_eq!(
        spans(&parts),
        [(0, 99), (200_000, 262_999), (len - 100, len - 1)]
    );
}

#[test]
fn overlapping_ranges_may_be_coalesced_but_bytes_are_exact() {
    let fx = start();
    let spans = served_spans(&fx, "/ten.bin", "bytes=0-4,2-8", TEN);
    assert!(covers(&spans, 0, 8), "0-8 not covered: {spans:?}");
    assert!(spans.iter().all(|(_, last)| *last <= 8), "{spans:?}");
    let spans = served_spans(&fx, "/ten.bin", "bytes=0-2,3-5", TEN);
    assert!(covers(&spans, 0, 5), "0-5 not covered: {spans:?}");
    assert!(spans.iter().all(|(_, last)| *last <= 5), "{spans:?}");
}

// --- Abuse ----------------------------------------------------------------------------

/// Status and total body bytes received (read to EOF, not trusting Content-Length).
fn abusive(fx: &Fixture, path: &str, range: &str) -> (u16, usize) {
    let (head, body) = request_raw(&fx.server, "GET", path, &[("Range", range)]);
    assert!(
        [200, 206, 416].contains(&head.status),
        "status {} for an abusive Range",
        head.status
    );
    (head.status, body.len())
}

#[test]
fn many_whole_file_ranges_do_not_amplify_the_response() {
    let fx = start();
    let range = format!("bytes={}", "0-,".repeat(200));
    let (status, body_len) = abusive(&fx, "/kilo.bin", &range);
    assert!(
        body_len <= fx.kilo.len() + 10 * 1024,
        "{status} response of {body_len} bytes for a {}-byte file",
        fx.kilo.len()
    );
}

#[test]
fn many_small_disjoint_ranges_do_not_amplify_the_response() {
    let fx = start();
    let specs: Vec<String> = (0..200).map(|i| format!("{0}-{0}", 2 * i)).collect();
    let range = format!("bytes={}", specs.join(","));
    let len = fx.small_text.len();
    let (status, body_len) = abusive(&fx, "/small.txt", &range);
    assert!(
        body_len <= 2 * len + 16 * 1024,
        "{status} response of {body_len} bytes for a {len}-byte file"
    );
}

#[test]
fn ranges_on_an_empty_file_are_ignored() {
    let fx = start();
    for range in ["bytes=-1", "bytes=0-", "bytes=0-0", "bytes=-0", "bytes=5-9"] {
        let response = get_range(&fx, "/empty.bin", range);
        assert_eq!(response.status, 200, "Range: {range} on an empty file");
        assert_eq!(response.content_length(), Some(0), "Range: {range}");
        assert!(response.body.is_empty(), "Range: {range}");
        assert_eq!(response.header("content-range"), None, "Range: {range}");
    }
}

// --- If-Range ---------------------------------------------------------------------------

#[test]
fn if_range_with_a_list_of_tags_serves_the_full_file() {
    let fx = start();
    let etag = strong_etag(&get(&fx.server, "/ten.bin"));
    for value in [format!("\"a\", {etag}"), format!("{etag}, \"a\"")] {
        let response = request(
            &fx.server,
            "GET",
            "/ten.bin",
            &[("Range", "bytes=0-4"), ("If-Range", &value)],
        );
        assert_full(&response, TEN, "If-Range: a list");
    }
}

#[test]
fn if_range_with_a_date_within_the_modification_second_serves_the_full_file() {
    let (_tmp, root) = temp_root();
    write_file(&root, "fresh.bin", TEN);
    let server = Server::start(&root, &[]);
    let first = get(&server, "/fresh.bin");
    let modified = first.header("last-modified").expect("Last-Modified");
    // Only meaningful while the file's second is the current one; a slow machine that
    // crossed it makes the date strong, which the range then rightly honours.
    let response = request(
        &server,
        "GET",
        "/fresh.bin",
        &[("Range", "bytes=0-4"), ("If-Range", &modified)],
    );
    if response.header("date").as_deref() == Some(modified.as_str()) {
        assert_full(&response, TEN, "If-Range: a weak date");
    }
}

#[test]
fn if_range_with_the_current_etag_serves_the_range() {
    let fx = start();
    let etag = strong_etag(&get(&fx.server, "/ten.bin"));
    let response = request(
        &fx.server,
        "GET",
        "/ten.bin",
        &[("Range", "bytes=0-4"), ("If-Range", &etag)],
    );
    assert_single_part(&response, TEN, 0, 4, "If-Range: current ETag");
}

#[test]
fn if_range_with_another_etag_serves_the_full_file() {
    let fx = start();
    let response = request(
        &fx.server,
        "GET",
        "/ten.bin",
        &[("Range", "bytes=0-4"), ("If-Range", "\"other\"")],
    );
    assert_full(&response, TEN, "If-Range: other ETag");
}

#[test]
fn if_range_with_a_weak_etag_serves_the_full_file() {
    let fx = start();
    let etag = strong_etag(&get(&fx.server, "/ten.bin"));
    let weak = format!("W/{etag}");
    let response = request(
        &fx.server,
        "GET",
        "/ten.bin",
        &[("Range", "bytes=0-4"), ("If-Range", &weak)],
    );
    assert_full(&response, TEN, "If-Range: weak current ETag");
}

#[test]
fn if_range_with_the_last_modified_date_serves_the_range() {
    let fx = start();
    let last_modified = get(&fx.server, "/ten.bin").header("last-modified");
    assert_eq!(last_modified, Some(http_date(unix_time(T0))));
    let response = request(
        &fx.server,
        "GET",
        "/ten.bin",
        &[
            ("Range", "bytes=0-4"),
            ("If-Range", &http_date(unix_time(T0))),
        ],
    );
    assert_single_part(&response, TEN, 0, 4, "If-Range: Last-Modified");
}

#[test]
fn if_range_with_an_older_date_serves_the_full_file() {
    let fx = start();
    let response = request(
        &fx.server,
        "GET",
        "/ten.bin",
        &[
            ("Range", "bytes=0-4"),
            ("If-Range", &http_date(unix_time(T0 - DAY))),
        ],
    );
    assert_full(&response, TEN, "If-Range: older date");
}

// --- Ranges and other preconditions -------------------------------------------------

#[test]
fn matching_if_none_match_takes_precedence_over_range() {
    let fx = start();
    let etag = strong_etag(&get(&fx.server, "/ten.bin"));
    let response = request(
        &fx.server,
        "GET",
        "/ten.bin",
        &[("Range", "bytes=0-4"), ("If-None-Match", &etag)],
    );
    assert_eq!(response.status, 304);
}

#[test]
fn failed_if_match_takes_precedence_over_range() {
    let fx = start();
    let response = request(
        &fx.server,
        "GET",
        "/ten.bin",
        &[("Range", "bytes=0-4"), ("If-Match", "\"other\"")],
    );
    assert_eq!(response.status, 412);
}

// --- Headers on 206 -------------------------------------------------------------------------

#[test]
fn partial_content_carries_validators_and_vary_for_compressible_files() {
    let fx = start();
    let full = get(&fx.server, "/text.txt");
    assert_eq!(full.status, 200);
    let etag = strong_etag(&full);

    let single = get_range(&fx, "/text.txt", "bytes=100-199");
    assert_single_part(&single, &fx.text, 100, 199, "text.txt bytes=100-199");
    let multi = get_range(&fx, "/text.txt", "bytes=0-9,1000-1009");
    assert_eq!(multi.status, 206);
    for (what, response) in [("single-part", &single), ("multipart", &multi)] {
        assert_eq!(strong_etag(response), etag, "{what} 206 ETag");
        assert_eq!(
            response.header("last-modified"),
            full.header("last-modified"),
            "{what} 206 Last-Modified"
        );
        assert!(
            varies_on_accept_encoding(response),
            "{what} 206 Vary: {:?}",
            response.headers_all("vary")
        );
        assert!(
            response.header("content-encoding").is_none(),
            "{what} 206 of identity has Content-Encoding"
        );
    }
}

// --- The multipart parser itself ------------------------------------------------------

const SAMPLE_BOUNDARY: &str = "sep";

fn sample_part(range: &str, data: &str) -> String {
    format!(
        "--sep\r\nContent-Type: text/plain\r\nContent-Range: bytes {range}/10\r\n\r\n{data}\r\n"
    )
}

#[test]
fn multipart_parser_reads_well_formed_bodies() {
    let body = format!(
        "{}{}--sep--\r\n",
        sample_part("0-1", "01"),
        sample_part("5-6", "56")
    );
    let parts = parse_multipart(body.as_bytes(), SAMPLE_BOUNDARY);
    assert_eq!(spans(&parts), [(0, 1), (5, 6)]);
    assert_eq!(parts[1].data, b"56");
    assert_eq!(parts[0].content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        boundary_of("multipart/byteranges; boundary=\"sep\""),
        SAMPLE_BOUNDARY
    );
}

#[test]
#[should_panic(expected = "not followed by CRLF--boundary")]
fn multipart_parser_rejects_a_part_longer_than_its_range() {
    let body = format!("{}--sep--\r\n", sample_part("0-1", "012"));
    parse_multipart(body.as_bytes(), SAMPLE_BOUNDARY);
}

#[test]
#[should_panic(expected = "truncated")]
fn multipart_parser_rejects_a_part_shorter_than_its_range() {
    let body = sample_part("0-4", "01");
    parse_multipart(body.as_bytes(), SAMPLE_BOUNDARY);
}

#[test]
#[should_panic(expected = "without the close delimiter")]
fn multipart_parser_rejects_a_missing_close_delimiter() {
    let body = format!("{}--sep", sample_part("0-1", "01"));
    parse_multipart(body.as_bytes(), SAMPLE_BOUNDARY);
}
