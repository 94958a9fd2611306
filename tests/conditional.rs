//! Conditional requests (RFC 9110 §13): If-Match, If-Unmodified-Since, If-None-Match,
//! If-Modified-Since, their precedence, malformed values, and what a 304 carries.

mod common;

use common::*;

/// 2023-11-14T22:13:20Z, a Tuesday: the mtime of every fixture file.
const T0: u64 = 1_700_000_000;
const DAY: u64 = 86_400;

const BODY: &str = "conditional requests fixture\n";

struct Fixture {
    _tmp: tempfile::TempDir,
    server: Server,
    /// The identity ETag of /a.txt.
    etag: String,
}

fn start() -> Fixture {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", BODY);
    set_mtime(&root.join("a.txt"), unix_time(T0));
    let text = compressible_text("conditional", 20 * 1024);
    write_file(&root, "big.txt", &text);
    set_mtime(&root.join("big.txt"), unix_time(T0));
    let server = Server::start(&root, &[]);
    let response = get(&server, "/a.txt");
    assert_eq!(response.status, 200);
    let etag = strong_etag(&response);
    Fixture {
        _tmp: tmp,
        server,
        etag,
    }
}

fn last_modified() -> String {
    http_date(unix_time(T0))
}

fn earlier() -> String {
    http_date(unix_time(T0 - DAY))
}

fn later() -> String {
    http_date(unix_time(T0 + DAY))
}

/// GET /a.txt with `headers`.
fn get_with(fx: &Fixture, headers: &[(&str, &str)]) -> Response {
    request(&fx.server, "GET", "/a.txt", headers)
}

fn assert_full(response: &Response, what: &str) {
    assert_eq!(response.status, 200, "{what}: status");
    assert_eq!(response.body, BODY.as_bytes(), "{what}: body");
}

fn assert_status(response: &Response, status: u16, what: &str) {
    assert_eq!(
        response.status, status,
        "{what}: status (headers {:?})",
        response.headers
    );
}

// --- If-Match ---------------------------------------------------------------

#[test]
fn if_match_with_the_current_etag_proceeds() {
    let fx = start();
    assert_full(
        &get_with(&fx, &[("If-Match", &fx.etag)]),
        "If-Match: current",
    );
}

#[test]
fn if_match_star_proceeds() {
    let fx = start();
    assert_full(&get_with(&fx, &[("If-Match", "*")]), "If-Match: *");
}

#[test]
fn if_match_list_containing_the_current_etag_proceeds() {
    let fx = start();
    let list = format!("\"nope\", {}", fx.etag);
    assert_full(&get_with(&fx, &[("If-Match", &list)]), &list);
    let list = format!("{},\"nope\"", fx.etag);
    assert_full(&get_with(&fx, &[("If-Match", &list)]), &list);
    // Empty list elements are ignored (RFC 9110 §5.6.1.2).
    for list in [format!(", {}", fx.etag), format!("\"nope\",,{}", fx.etag)] {
        assert_full(&get_with(&fx, &[("If-Match", &list)]), &list);
        let res = get_with(&fx, &[("If-None-Match", &list)]);
        assert_status(&res, 304, &list);
    }
}

#[test]
fn if_match_with_another_etag_is_412() {
    let fx = start();
    let response = get_with(&fx, &[("If-Match", "\"some-other-tag\"")]);
    assert_status(&response, 412, "If-Match: other");
}

#[test]
fn if_match_list_without_the_current_etag_is_412() {
    let fx = start();
    let response = get_with(&fx, &[("If-Match", "\"a\", \"b\"")]);
    assert_status(&response, 412, "If-Match: \"a\", \"b\"");
}

#[test]
fn if_match_uses_strong_comparison_so_weak_current_etag_is_412() {
    let fx = start();
    let weak = format!("W/{}", fx.etag);
    let response = get_with(&fx, &[("If-Match", &weak)]);
    assert_status(&response, 412, &format!("If-Match: {weak}"));
}

#[test]
fn if_match_failure_applies_to_head() {
    let fx = start();
    let response = request(&fx.server, "HEAD", "/a.txt", &[("If-Match", "\"other\"")]);
    assert_status(&response, 412, "HEAD If-Match: other");
}

// --- If-Unmodified-Since ----------------------------------------------------

#[test]
fn if_unmodified_since_before_last_modified_is_412() {
    let fx = start();
    let response = get_with(&fx, &[("If-Unmodified-Since", &earlier())]);
    assert_status(&response, 412, "If-Unmodified-Since: earlier");
}

#[test]
fn if_unmodified_since_at_or_after_last_modified_proceeds() {
    let fx = start();
    for date in [last_modified(), later()] {
        assert_full(
            &get_with(&fx, &[("If-Unmodified-Since", &date)]),
            &format!("If-Unmodified-Since: {date}"),
        );
    }
}

#[test]
fn if_unmodified_since_is_ignored_when_if_match_is_present() {
    let fx = start();
    let response = get_with(
        &fx,
        &[("If-Match", &fx.etag), ("If-Unmodified-Since", &earlier())],
    );
    assert_full(&response, "matching If-Match + failing If-Unmodified-Since");
}

#[test]
fn malformed_if_unmodified_since_is_ignored() {
    let fx = start();
    let response = get_with(&fx, &[("If-Unmodified-Since", "not a date")]);
    assert_full(&response, "If-Unmodified-Since: garbage");
}

// --- If-None-Match ----------------------------------------------------------

#[test]
fn if_none_match_with_the_current_etag_is_304_for_get_and_head() {
    let fx = start();
    for method in ["GET", "HEAD"] {
        let response = request(&fx.server, method, "/a.txt", &[("If-None-Match", &fx.etag)]);
        assert_status(&response, 304, &format!("{method} If-None-Match: current"));
        // A 304 carries no representation metadata such as Content-Length.
        assert_eq!(response.header("content-length"), None, "{method}");
    }
}

#[test]
fn if_none_match_star_is_304() {
    let fx = start();
    assert_status(
        &get_with(&fx, &[("If-None-Match", "*")]),
        304,
        "If-None-Match: *",
    );
}

#[test]
fn if_none_match_list_containing_the_current_etag_is_304() {
    let fx = start();
    for list in [
        format!("\"x\", \"y\", {}", fx.etag),
        format!("{},\"x\"", fx.etag),
        format!("W/\"x\" , {} ", fx.etag),
    ] {
        assert_status(&get_with(&fx, &[("If-None-Match", &list)]), 304, &list);
    }
}

#[test]
fn if_none_match_uses_weak_comparison() {
    let fx = start();
    let weak = format!("W/{}", fx.etag);
    assert_status(&get_with(&fx, &[("If-None-Match", &weak)]), 304, &weak);
}

#[test]
fn if_none_match_with_other_etags_is_200() {
    let fx = start();
    for value in ["\"other\"", "\"a\", \"b\"", "W/\"other\""] {
        assert_full(&get_with(&fx, &[("If-None-Match", value)]), value);
    }
}

// --- If-Modified-Since ------------------------------------------------------

#[test]
fn if_modified_since_at_or_after_last_modified_is_304() {
    let fx = start();
    for date in [last_modified(), later()] {
        for method in ["GET", "HEAD"] {
            let response = request(
                &fx.server,
                method,
                "/a.txt",
                &[("If-Modified-Since", &date)],
            );
            assert_status(
                &response,
                304,
                &format!("{method} If-Modified-Since: {date}"),
            );
        }
    }
}

#[test]
fn if_modified_since_in_the_future_is_ignored() {
    let fx = start();
    for method in ["GET", "HEAD"] {
        let response = request(
            &fx.server,
            method,
            "/a.txt",
            &[("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")],
        );
        assert_status(&response, 200, &format!("{method} If-Modified-Since: 2100"));
    }
}

#[test]
fn if_modified_since_before_last_modified_is_200() {
    let fx = start();
    assert_full(
        &get_with(&fx, &[("If-Modified-Since", &earlier())]),
        "If-Modified-Since: earlier",
    );
}

#[test]
fn if_modified_since_accepts_obsolete_date_formats() {
    let fx = start();
    // RFC 9110 §5.6.7: recipients must accept RFC 850 and asctime dates too.
    for date in [
        "Tuesday, 14-Nov-23 22:13:20 GMT",
        "Tue Nov 14 22:13:20 2023",
    ] {
        assert_eq!(
            httpdate::parse_http_date(date).ok(),
            Some(unix_time(T0)),
            "fixture date {date:?}"
        );
        assert_status(
            &get_with(&fx, &[("If-Modified-Since", date)]),
            304,
            &format!("If-Modified-Since: {date}"),
        );
    }
}

#[test]
fn a_date_with_the_wrong_day_name_is_read_as_the_date_it_spells() {
    let fx = start();
    // T0 was a Tuesday; nginx, Apache and CPython do not check the day name either.
    for date in [
        "Fri, 14 Nov 2023 22:13:20 GMT",
        "Friday, 14-Nov-23 22:13:20 GMT",
        "Fri Nov 14 22:13:20 2023",
    ] {
        assert!(httpdate::parse_http_date(date).is_err(), "{date:?}");
        assert_status(
            &get_with(&fx, &[("If-Modified-Since", date)]),
            304,
            &format!("If-Modified-Since: {date}"),
        );
    }
    assert_status(
        &get_with(
            &fx,
            &[("If-Unmodified-Since", "Fri, 13 Nov 2023 22:13:20 GMT")],
        ),
        412,
        "If-Unmodified-Since a day early, under the wrong day name",
    );
}

#[test]
fn if_modified_since_is_ignored_when_if_none_match_is_present() {
    let fx = start();
    let response = get_with(
        &fx,
        &[
            ("If-None-Match", "\"other\""),
            ("If-Modified-Since", &last_modified()),
        ],
    );
    assert_full(
        &response,
        "non-matching If-None-Match + matching If-Modified-Since",
    );
}

#[test]
fn malformed_if_modified_since_is_ignored() {
    let fx = start();
    for value in ["garbage", "Tue, 99 Nov 2023 22:13:20 GMT", ""] {
        assert_full(
            &get_with(&fx, &[("If-Modified-Since", value)]),
            &format!("If-Modified-Since: {value:?}"),
        );
    }
}

#[test]
fn malformed_if_none_match_matches_nothing_and_still_overrides_if_modified_since() {
    // RFC 9110 §13.2.2: If-Modified-Since is evaluated only when If-None-Match is
    // absent; a garbled one is present and lists no tag (as nginx and CPython's server
    // treat it).
    let fx = start();
    let response = get_with(
        &fx,
        &[
            ("If-None-Match", "bogus"),
            ("If-Modified-Since", &last_modified()),
        ],
    );
    assert_full(
        &response,
        "If-None-Match: bogus + matching If-Modified-Since",
    );
    let response = get_with(&fx, &[("If-None-Match", "bogus")]);
    assert_full(&response, "If-None-Match: bogus alone");
}

#[test]
fn malformed_if_match_fails() {
    let fx = start();
    for value in ["garbage", "\"unterminated", "W/x"] {
        let response = get_with(&fx, &[("If-Match", value)]);
        assert_status(&response, 412, &format!("If-Match: {value}"));
    }
    // A garbled line beside a matching tag: the tag still counts.
    let response = get_with(&fx, &[("If-Match", "garbage"), ("If-Match", &fx.etag)]);
    assert_full(&response, "garbled line + matching tag");
}

// --- Precedence (RFC 9110 §13.2.2) ------------------------------------------

#[test]
fn failed_if_match_beats_matching_if_none_match() {
    let fx = start();
    let response = get_with(
        &fx,
        &[("If-Match", "\"other\""), ("If-None-Match", &fx.etag)],
    );
    assert_status(&response, 412, "failing If-Match + matching If-None-Match");
}

#[test]
fn failed_if_unmodified_since_beats_matching_if_none_match() {
    let fx = start();
    let response = get_with(
        &fx,
        &[
            ("If-Unmodified-Since", &earlier()),
            ("If-None-Match", &fx.etag),
        ],
    );
    assert_status(
        &response,
        412,
        "failing If-Unmodified-Since + matching If-None-Match",
    );
}

#[test]
fn matching_if_match_and_matching_if_none_match_is_304() {
    let fx = start();
    let response = get_with(&fx, &[("If-Match", &fx.etag), ("If-None-Match", &fx.etag)]);
    assert_status(&response, 304, "matching If-Match + matching If-None-Match");
}

#[test]
fn matching_if_none_match_wins_over_failing_if_modified_since() {
    let fx = start();
    let response = get_with(
        &fx,
        &[
            ("If-None-Match", &fx.etag),
            ("If-Modified-Since", &earlier()),
        ],
    );
    assert_status(
        &response,
        304,
        "matching If-None-Match + old If-Modified-Since",
    );
}

// --- What a 304 looks like ----------------------------------------------------

#[test]
fn not_modified_carries_validators_and_vary_and_no_body() {
    let fx = start();
    let conditions: [(&str, String); 2] = [
        ("If-None-Match", fx.etag.clone()),
        ("If-Modified-Since", last_modified()),
    ];
    for (name, value) in &conditions {
        let (head, rest) = request_raw(&fx.server, "GET", "/a.txt", &[(name, value)]);
        let what = format!("{name}: {value}");
        assert_status(&head, 304, &what);
        assert_eq!(
            head.header("etag").as_deref(),
            Some(fx.etag.as_str()),
            "{what}"
        );
        assert_eq!(
            head.header("last-modified"),
            Some(last_modified()),
            "{what}"
        );
        assert!(
            varies_on_accept_encoding(&head),
            "{what}: Vary {:?}",
            head.headers_all("vary")
        );
        assert!(
            rest.is_empty(),
            "{what}: 304 has a body: {:?}",
            String::from_utf8_lossy(&rest)
        );
        assert!(
            head.header("content-encoding").is_none(),
            "{what}: Content-Encoding on a 304 for an identity request"
        );
    }
}

// --- Conditionals on a compressed representation ------------------------------

#[test]
fn if_none_match_with_the_gzip_etag_is_304_for_gzip_requests() {
    let fx = start();
    let gz = request(
        &fx.server,
        "GET",
        "/big.txt",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding").as_deref(), Some("gzip"));
    let gz_etag = strong_etag(&gz);

    let (head, rest) = request_raw(
        &fx.server,
        "GET",
        "/big.txt",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_etag)],
    );
    assert_status(&head, 304, "gzip request with the gzip ETag");
    assert_eq!(head.header("etag"), Some(gz_etag));
    assert!(
        varies_on_accept_encoding(&head),
        "Vary {:?}",
        head.headers_all("vary")
    );
    assert!(rest.is_empty(), "304 has a body");
}

#[test]
fn etag_of_one_coding_does_not_validate_another() {
    let fx = start();
    let identity = get(&fx.server, "/big.txt");
    assert_eq!(identity.status, 200);
    let identity_etag = strong_etag(&identity);
    let gz = request(
        &fx.server,
        "GET",
        "/big.txt",
        &[("Accept-Encoding", "gzip")],
    );
    let gz_etag = strong_etag(&gz);

    // The identity tag does not match the gzip representation...
    let response = request(
        &fx.server,
        "GET",
        "/big.txt",
        &[
            ("Accept-Encoding", "gzip"),
            ("If-None-Match", &identity_etag),
        ],
    );
    assert_status(&response, 200, "gzip request with the identity ETag");
    assert_eq!(response.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(response.body, gz.body);

    // ...and the gzip tag does not match the identity representation.
    let response = request(&fx.server, "GET", "/big.txt", &[("If-Match", &gz_etag)]);
    assert_status(&response, 412, "identity request with If-Match: gzip ETag");
}
