//! Directory listings: HTML structure, ordering, escaping, link round-trips,
//! JSON variant, and very large directories.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::Path;
use std::thread;

const HTML: &str = "text/html; charset=utf-8";

/// Names that need escaping in HTML and/or percent-encoding in URLs.
const SPECIAL_NAMES: &[&str] = &[
    "sp ace.txt",
    "q?mark.txt",
    "hash#tag.txt",
    "amp&er.txt",
    "<b>.txt",
    "quo\"te.txt",
    "apos'.txt",
    "pct%.txt",
    "pct%41.txt",
    "semi;colon.txt",
    "plus+.txt",
    "é.txt",
    "日本.txt",
    "&amp;.txt",
];

// ---------------------------------------------------------------------------
// Tiny HTML/URL helpers that mimic what a browser does with a listing link.
// ---------------------------------------------------------------------------

/// Every `href="..."` attribute value, raw (still HTML-escaped), in order.
fn raw_hrefs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("href=\"") {
        rest = &rest[start + "href=\"".len()..];
        let end = rest.find('"').expect("unterminated href attribute");
        out.push(rest[..end].to_string());
        rest = &rest[end + 1..];
    }
    out
}

fn html_unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if entity.starts_with("#x") || entity.starts_with("#X") => {
                u32::from_str_radix(&entity[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
            }
            _ if entity.starts_with('#') => entity[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encode what a browser would before putting a URL on the wire.
fn encode_for_wire(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        if b <= b' ' || b >= 0x7f || b"\"<>`".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

fn has_scheme(href: &str) -> bool {
    let Some(colon) = href.find(':') else {
        return false;
    };
    let scheme = &href[..colon];
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate().skip(1) {
        let last = i == segments.len() - 1;
        match *segment {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

/// Resolve an (unescaped) href against the directory URL `base` (ending in
/// `/`) the way a browser would for an http URL. Returns the request target
/// (path and query, not yet wire-encoded), or `None` if it leaves the site.
fn resolve(base: &str, href: &str) -> Option<String> {
    let href = href.trim_matches(|c: char| c <= ' ');
    let href: String = href
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let href = href.split('#').next().unwrap().to_string();
    let (path, query) = match href.find('?') {
        Some(q) => (href[..q].to_string(), Some(href[q..].to_string())),
        None => (href.clone(), None),
    };
    // Browsers treat `\` as `/` in http(s) URL paths.
    let path = path.replace('\\', "/");
    if has_scheme(&path) || path.starts_with("//") {
        return None;
    }
    let joined = if path.starts_with('/') {
        path
    } else {
        format!("{base}{path}")
    };
    Some(remove_dot_segments(&joined) + query.as_deref().unwrap_or(""))
}

/// The child entries a listing links to, in document order: (name, is_dir).
fn listing_entries(html: &str, base: &str) -> Vec<(String, bool)> {
    let mut entries: Vec<(String, bool)> = Vec::new();
    for href in raw_hrefs(html) {
        let Some(target) = resolve(base, &html_unescape(&href)) else {
            continue;
        };
        let path = target.split('?').next().unwrap();
        let Some(rest) = path.strip_prefix(base) else {
            continue;
        };
        let (segment, is_dir) = match rest.strip_suffix('/') {
            Some(s) => (s, true),
            None => (rest, false),
        };
        if segment.is_empty() || segment.contains('/') {
            continue;
        }
        let entry = (percent_decode(segment), is_dir);
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    entries
}

/// Follow every child link of the listing at `base`; returns the set of file
/// bodies reached (each fixture file contains its own name).
fn follow_links(server: &Server, base: &str) -> BTreeSet<String> {
    let listing = get(server, base);
    assert_eq!(listing.status, 200);
    let html = listing.body_text();
    let mut reached = BTreeSet::new();
    for href in raw_hrefs(&html) {
        let href = html_unescape(&href);
        let Some(target) = resolve(base, &href) else {
            continue;
        };
        let path = target.split('?').next().unwrap();
        let Some(rest) = path.strip_prefix(base) else {
            continue;
        };
        if rest.is_empty() || rest.trim_end_matches('/').contains('/') {
            continue;
        }
        let wire = encode_for_wire(&target);
        let response = get(server, &wire);
        assert_eq!(
            response.status, 200,
            "link href=\"{href}\" (requested as {wire}) is broken"
        );
        reached.insert(response.body_text());
    }
    reached
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn fixture(root: &Path) {
    write_file(root, "top.txt", "top");
    write_file(root, "sorted/zz.txt", "zz");
    write_file(root, "sorted/aa.txt", "aa");
    write_file(root, "sorted/kk.txt", "kk");
    fs::create_dir_all(root.join("sorted/mdir")).unwrap();
    fs::create_dir_all(root.join("sorted/bdir")).unwrap();
    for name in SPECIAL_NAMES {
        write_file(root, &format!("special/{name}"), name);
    }
    write_file(root, "json/a.txt", "a");
    write_file(root, "json/b.txt", "b");
    write_file(root, "json/.secret", "hidden");
    fs::create_dir_all(root.join("json/adir")).unwrap();
}

fn start() -> (tempfile::TempDir, Server) {
    let (tmp, root) = temp_root();
    fixture(&root);
    let server = Server::start(&root, &[]);
    (tmp, server)
}

#[test]
fn listing_is_html_with_parent_link() {
    let (_tmp, server) = start();
    let response = get(&server, "/sorted/");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type").as_deref(), Some(HTML));
    let hrefs: Vec<String> = raw_hrefs(&response.body_text())
        .iter()
        .map(|h| html_unescape(h))
        .collect();
    assert!(
        hrefs.iter().any(|h| h == "../"),
        "listing lacks a ../ link: {hrefs:?}"
    );
    // The breadcrumb's heading sits in its navigation, not the other way round (a
    // heading holds phrasing content only).
    let body = response.body_text();
    assert!(
        body.contains("<nav aria-label=\"Breadcrumb\"><h1>") && !body.contains("<h1><nav"),
        "{body}"
    );
}

#[test]
fn root_listing_has_no_parent_link() {
    let (_tmp, server) = start();
    let response = get(&server, "/");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type").as_deref(), Some(HTML));
    let html = response.body_text();
    assert!(
        !html.contains("href=\"../\""),
        "root listing has a ../ link"
    );
    let entries = listing_entries(&html, "/");
    assert!(
        entries.contains(&("top.txt".to_string(), false)),
        "root listing should link top.txt: {entries:?}"
    );
}

#[test]
fn listing_puts_directories_first_sorted_by_name() {
    let (_tmp, server) = start();
    let html = get(&server, "/sorted/").body_text();
    let entries = listing_entries(&html, "/sorted/");
    let expected: Vec<(String, bool)> = [
        ("bdir", true),
        ("mdir", true),
        ("aa.txt", false),
        ("kk.txt", false),
        ("zz.txt", false),
    ]
    .iter()
    .map(|(n, d)| (n.to_string(), *d))
    .collect();
    assert_eq!(entries, expected);
}

#[test]
fn listing_escapes_special_names() {
    let (_tmp, server) = start();
    let html = get(&server, "/special/").body_text();
    assert!(html.contains("&lt;"), "'<' in a name should appear as &lt;");
    assert!(!html.contains("<b>.txt"), "raw '<b>.txt' markup in listing");
    assert!(
        !html.contains("quo\"te.txt\""),
        "unescaped quote in an attribute"
    );
    assert!(
        html.contains("日本") || html.contains("&#"),
        "non-ASCII name missing"
    );
}

#[test]
fn every_listing_link_serves_the_named_file() {
    let (_tmp, server) = start();
    let reached = follow_links(&server, "/special/");
    assert_eq!(reached, names(SPECIAL_NAMES));
}

#[test]
fn listing_links_survive_browser_url_parsing() {
    // A relative href "a:b.txt" is a URL with scheme "a:", and browsers strip
    // leading spaces and tabs; links must be written so none of that happens.
    let (_tmp, root) = temp_root();
    let tricky = ["a:b.txt", " lead.txt", "tab\there.txt", "trail.txt "];
    for name in tricky {
        write_file(&root, &format!("tricky/{name}"), name);
    }
    let server = Server::start(&root, &[]);
    let reached = follow_links(&server, "/tricky/");
    assert_eq!(reached, names(&tricky));
}

#[test]
fn listed_backslash_names_are_reachable() {
    // Browsers turn "\" into "/" in http URLs, so the link must encode it,
    // and whatever the listing links to must then be served.
    let (_tmp, root) = temp_root();
    write_file(&root, "bs/back\\slash.txt", "back\\slash.txt");
    write_file(&root, "bs/plain.txt", "plain.txt");
    let server = Server::start(&root, &[]);
    let reached = follow_links(&server, "/bs/");
    assert_eq!(reached, names(&["back\\slash.txt", "plain.txt"]));
}

#[test]
fn json_listing_when_requested() {
    let (_tmp, server) = start();
    let response = request(&server, "GET", "/json/", &[("Accept", "application/json")]);
    assert_eq!(response.status, 200);
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "Content-Type: {content_type:?}"
    );
    let body: String = response
        .body_text()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(
        body.starts_with('[') || body.starts_with('{'),
        "not JSON: {body}"
    );
    assert_eq!(body.matches("\"name\":").count(), 3, "entries: {body}");
    for name in ["a.txt", "b.txt", "adir"] {
        assert!(
            body.contains(&format!("\"name\":\"{name}\"")),
            "{name} missing: {body}"
        );
    }
    assert!(body.contains("\"type\":\"dir\""), "{body}");
    assert!(body.contains("\"type\":\"file\""), "{body}");
    assert!(!body.contains(".secret"), "dotfile listed: {body}");
}

/// A folder asked for by a loose spelling goes to its own URL, from where its
/// page's relative links (the parent's `../`) lead where they say.
#[test]
fn a_folder_spelled_loosely_redirects_to_its_own_url() {
    let (_tmp, server) = start();
    for (asked, canonical) in [
        ("/json//", "/json/"),
        ("//json/", "/json/"),
        ("/json/./", "/json/"),
        ("/json/adir/%2e%2e/", "/json/"),
        ("/json//adir/?sort=size", "/json/adir/?sort=size"),
        ("//", "/"),
    ] {
        let res = get(&server, asked);
        assert_eq!(res.status, 301, "{asked}");
        assert_eq!(
            res.header("location").as_deref(),
            Some(canonical),
            "{asked}"
        );
    }
    assert_eq!(get(&server, "/json/").status, 200);
    // A file under a loose spelling is served as before.
    assert_eq!(get(&server, "/json//a.txt").body, b"a");
    // A file with a dot segment after it names no folder: 404, not a redirect to
    // a URL that is one (as nginx answers).
    for asked in ["/json/a.txt/.", "/json/a.txt/./", "/json/nothing/./"] {
        let res = get(&server, asked);
        assert_eq!(res.status, 404, "{asked}");
        assert_eq!(res.header("location"), None, "{asked}");
    }
}

/// A file written in place changes its size and time, not its folder's state: the
/// next listing shows it all the same, and its old ETag no longer matches.
#[test]
fn a_listing_shows_a_file_changed_in_place_at_once() {
    let (_tmp, root) = temp_root();
    write_file(&root, "log/a.txt", "a");
    let server = Server::start(&root, &[]);
    let json = [("Accept", "application/json")];
    let first = request(&server, "GET", "/log/", &json);
    assert!(
        first.body_text().contains("\"size\":1,"),
        "{}",
        first.body_text()
    );
    let tag = first.header("etag").expect("an ETag");
    // Served from the cache, as long as nothing changes.
    let again = request(&server, "GET", "/log/", &[json[0], ("If-None-Match", &tag)]);
    assert_eq!(again.status, 304);
    for size in [100, 2000] {
        std::fs::write(root.join("log/a.txt"), "x".repeat(size)).unwrap();
        let after = request(&server, "GET", "/log/", &[json[0], ("If-None-Match", &tag)]);
        assert_eq!(after.status, 200, "the old tag is stale");
        assert!(
            after.body_text().contains(&format!("\"size\":{size},")),
            "{}",
            after.body_text()
        );
    }
}

#[test]
fn browser_accept_header_gets_html() {
    let (_tmp, server) = start();
    let response = request(
        &server,
        "GET",
        "/json/",
        &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type").as_deref(), Some(HTML));
}

#[test]
fn huge_directory_lists_without_blocking_other_requests() {
    const COUNT: usize = 100_000;
    let (_tmp, root) = temp_root();
    write_file(&root, "small.txt", "small");
    let big = root.join("big");
    fs::create_dir(&big).unwrap();
    // Spread file creation over a few threads to keep the test quick.
    thread::scope(|scope| {
        for part in 0..4 {
            let big = &big;
            scope.spawn(move || {
                for i in (part..COUNT).step_by(4) {
                    File::create(big.join(format!("f{i:06}"))).unwrap();
                }
            });
        }
    });
    let server = Server::start(&root, &[]);

    let mut listing = Conn::open(&server);
    listing.send(&request_bytes("GET", "/big/", &[]));
    // While that listing is in flight, another connection is served.
    let small = get(&server, "/small.txt");
    assert_eq!(small.status, 200);
    assert_eq!(small.body, b"small");

    let response = listing.read_response(false);
    assert_eq!(response.status, 200);
    let links = response.body_text().matches("href=").count();
    assert!(links >= COUNT, "only {links} links for {COUNT} files");
}

#[test]
fn listings_answer_star_preconditions() {
    let (_tmp, root) = temp_root();
    write_file(&root, "d/a.txt", "a");
    let server = Server::start(&root, &[]);
    for accept in ["text/html", "application/json"] {
        let with = |name: &str, value: &str| {
            request(&server, "GET", "/d/", &[("Accept", accept), (name, value)])
        };
        let response = with("If-None-Match", "*");
        assert_eq!(response.status, 304, "{accept}: If-None-Match: *");
        assert!(response.body.is_empty());
        assert_eq!(
            with("If-Match", "\"nope\"").status,
            412,
            "{accept}: If-Match"
        );
        assert_eq!(with("If-Match", "*").status, 200, "{accept}: If-Match: *");
        assert_eq!(with("If-None-Match", "\"nope\"").status, 200, "{accept}");
    }
}

/// A folder of `count` empty files `f000000`… under `root/name`.
fn many_files(root: &Path, name: &str, count: usize) {
    let dir = root.join(name);
    fs::create_dir(&dir).unwrap();
    thread::scope(|scope| {
        for part in 0..4 {
            let dir = &dir;
            scope.spawn(move || {
                for i in (part..count).step_by(4) {
                    File::create(dir.join(format!("f{i:06}"))).unwrap();
                }
            });
        }
    });
}

#[test]
fn listings_are_compressed_for_clients_that_accept_it() {
    let (_tmp, root) = temp_root();
    for i in 0..200 {
        write_file(&root, &format!("d/file-{i:03}.txt"), "x");
    }
    let server = Server::start(&root, &[]);
    for accept in ["text/html", "application/json"] {
        let plain = request(&server, "GET", "/d/", &[("Accept", accept)]);
        assert_eq!(plain.status, 200);
        assert_eq!(plain.header("content-encoding"), None);
        assert!(varies_on_accept_encoding(&plain), "{accept}");
        assert!(varies_on(&plain, "accept"), "{accept}");
        // Twice: the first fills the cache, the second is answered from it.
        for (coding, round) in [("br", 0), ("br", 1), ("gzip", 0), ("zstd", 0)] {
            let res = request(
                &server,
                "GET",
                "/d/",
                &[("Accept", accept), ("Accept-Encoding", coding)],
            );
            assert_eq!(res.status, 200, "{accept} {coding} {round}");
            assert_eq!(res.header("content-encoding").as_deref(), Some(coding));
            assert!(res.body.len() < plain.body.len() / 2, "{accept} {coding}");
            assert_eq!(decoded_body(&res), plain.body, "{accept} {coding} {round}");
            assert!(varies_on_accept_encoding(&res) && varies_on(&res, "accept"));
        }
    }
}

#[test]
fn streamed_listings_are_compressed_as_they_stream() {
    let (_tmp, root) = temp_root();
    many_files(&root, "big", 25_000);
    let server = Server::start(&root, &[]);
    let plain = get(&server, "/big/");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.content_length(), None, "expected a streamed listing");
    let res = request(&server, "GET", "/big/", &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-encoding").as_deref(), Some("br"));
    assert!(varies_on_accept_encoding(&res) && varies_on(&res, "accept"));
    assert!(res.body.len() < plain.body.len() / 4);
    assert_eq!(decoded_body(&res), plain.body);
}

#[test]
fn listings_have_validators_from_what_they_show() {
    let (_tmp, root) = temp_root();
    // Enough entries for the pages to be worth compressing.
    for i in 0..20 {
        write_file(&root, &format!("d/a{i:02}.txt"), "a");
    }
    many_files(&root, "big", 20_001);
    let server = Server::start(&root, &[]);
    for (path, accept) in [
        ("/d/", "text/html"),
        ("/d/", "application/json"),
        ("/big/", "text/html"),
    ] {
        let first = request(&server, "GET", path, &[("Accept", accept)]);
        assert_eq!(first.status, 200);
        let etag = first
            .header("etag")
            .unwrap_or_else(|| panic!("{path} {accept}: no ETag"));
        let modified = first
            .header("last-modified")
            .unwrap_or_else(|| panic!("{path} {accept}: no Last-Modified"));
        let again = request(
            &server,
            "GET",
            path,
            &[("Accept", accept), ("If-None-Match", &etag)],
        );
        assert_eq!(again.status, 304, "{path} {accept}: If-None-Match");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag").as_deref(), Some(etag.as_str()));
        let since = request(
            &server,
            "GET",
            path,
            &[("Accept", accept), ("If-Modified-Since", &modified)],
        );
        assert_eq!(since.status, 304, "{path} {accept}: If-Modified-Since");
        // A compressed listing has a tag of its own.
        let br = request(
            &server,
            "GET",
            path,
            &[("Accept", accept), ("Accept-Encoding", "br")],
        );
        assert_eq!(br.header("content-encoding").as_deref(), Some("br"));
        let br_tag = br.header("etag").unwrap();
        assert_ne!(br_tag, etag, "{path} {accept}");
        let br_again = request(
            &server,
            "GET",
            path,
            &[
                ("Accept", accept),
                ("Accept-Encoding", "br"),
                ("If-None-Match", &br_tag),
            ],
        );
        assert_eq!(br_again.status, 304, "{path} {accept}: compressed");
    }
    // What the listing shows changes: so does its tag.
    let before = get(&server, "/d/").header("etag").unwrap();
    write_file(&root, "d/b.txt", "b");
    let after = poll_until(LOG_TIMEOUT, || {
        let res = request(&server, "GET", "/d/", &[("If-None-Match", &before)]);
        (res.status == 200).then_some(res)
    })
    .expect("the listing still matched its old tag after a file was added");
    assert!(after.body_text().contains("b.txt"));
    assert_ne!(after.header("etag").unwrap(), before);
}

#[test]
fn modification_times_name_their_zone_and_keep_the_exact_time() {
    let (_tmp, root) = temp_root();
    write_file(&root, "d/a.txt", "a");
    set_mtime(&root.join("d/a.txt"), unix_time(1_700_000_000));
    let server = Server::start(&root, &[]);
    let page = get(&server, "/d/").body_text();
    assert!(
        page.contains("<time datetime=\"2023-11-14T22:13:20Z\">2023-11-14 22:13:20 UTC</time>"),
        "{page}"
    );
}

// ---------------------------------------------------------------------------
// The page: sorting by query, size, policy, its own files, what it offers.
// ---------------------------------------------------------------------------

/// Entry names in page order.
fn page_names(html: &str) -> Vec<String> {
    listing_entries(html, "/")
        .into_iter()
        .map(|(name, _)| name)
        .filter(|n| n != "/")
        .collect()
}

#[test]
fn sorting_by_query_keeps_folders_first() {
    let (_tmp, root) = temp_root();
    write_file(&root, "small.txt", "1");
    write_file(&root, "large.txt", "1".repeat(5000));
    write_file(&root, "medium.txt", "1".repeat(100));
    std::fs::create_dir(root.join("zdir")).unwrap();
    std::fs::create_dir(root.join("adir")).unwrap();
    set_mtime(&root.join("small.txt"), unix_time(3_000_000));
    set_mtime(&root.join("large.txt"), unix_time(1_000_000));
    set_mtime(&root.join("medium.txt"), unix_time(2_000_000));
    let server = Server::start(&root, &[]);
    let order = |query: &str| page_names(&get(&server, &format!("/{query}")).body_text());
    // The plain page first, so that it is cached: a sorted view is not it.
    assert_eq!(
        order(""),
        ["adir", "zdir", "large.txt", "medium.txt", "small.txt"]
    );
    assert_eq!(
        order("?sort=size"),
        ["adir", "zdir", "small.txt", "medium.txt", "large.txt"]
    );
    assert_eq!(
        order("?sort=size&order=desc"),
        ["zdir", "adir", "large.txt", "medium.txt", "small.txt"]
    );
    assert_eq!(
        order("?sort=modified"),
        ["adir", "zdir", "large.txt", "medium.txt", "small.txt"]
    );
    assert_eq!(
        order("?sort=name&order=desc"),
        ["zdir", "adir", "small.txt", "medium.txt", "large.txt"]
    );
    // Unknown values: the default order, not an error.
    assert_eq!(
        order("?sort=colour&order=sideways"),
        ["adir", "zdir", "large.txt", "medium.txt", "small.txt"]
    );
    // The header says which column is sorted, and its link flips the direction.
    let page = get(&server, "/?sort=size").body_text();
    assert!(
        page.contains(
            "<th class=\"s\" aria-sort=\"ascending\"><a href=\"?sort=size&amp;order=desc\">"
        ),
        "{page}"
    );
    // The plain listing is still the default order after sorted ones were served.
    assert_eq!(
        order(""),
        ["adir", "zdir", "large.txt", "medium.txt", "small.txt"]
    );
    // JSON follows the same order.
    let json = request(
        &server,
        "GET",
        "/?sort=size&order=desc",
        &[("Accept", "application/json")],
    );
    let v: serde_json::Value = serde_json::from_str(&json.body_text()).unwrap();
    assert_eq!(v["entries"][2]["name"], "large.txt");
}

#[test]
fn page_is_small_strict_and_brings_its_own_files() {
    let (_tmp, root) = temp_root();
    for i in 0..100 {
        write_file(
            &root,
            &format!("photo-2024-06-{i:03}-holiday.jpg"),
            vec![0u8; 1000 + i * 1000],
        );
    }
    let server = Server::start(&root, &[]);
    let res = get(&server, "/");
    assert_eq!(res.status, 200);
    assert!(
        res.body.len() < 30 * 1024,
        "{} bytes for 100 entries",
        res.body.len()
    );
    let csp = res.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let page = res.body_text();
    // No inline script or style: both come from wharf.
    assert!(
        !page.contains("<script>") && !page.contains("<style"),
        "{page}"
    );
    assert!(page.contains("<script src=\"?wharf=listing.js\" defer></script>"));
    assert!(page.contains("href=\"?zip\""));
    // Without uploads, no upload form; the script is told so.
    assert!(!page.contains("<form"));
    assert!(page.contains("data-upload=\"false\" data-delete=\"false\""));
    for (asset, kind) in [
        ("listing.js", "text/javascript"),
        ("listing.css", "text/css"),
    ] {
        let res = get(&server, &format!("/?wharf={asset}"));
        assert_eq!(res.status, 200, "{asset}");
        assert!(res.header("content-type").unwrap().starts_with(kind));
        assert!(res.header("etag").is_some());
        let tag = res.header("etag").unwrap();
        let again = request(
            &server,
            "GET",
            &format!("/?wharf={asset}"),
            &[("If-None-Match", &tag)],
        );
        assert_eq!(again.status, 304);
    }
    // The QR code exists only when wharf listens beyond loopback.
    assert_eq!(get(&server, "/?wharf=qr.svg").status, 404);
    assert!(!page.contains("qr.svg"));
    // A file with the same query is just the file.
    write_file(&root, "x.txt", "x");
    assert_eq!(get(&server, "/x.txt?wharf=listing.js").body_text(), "x");
    // Below no folder, nothing: not a page's asset at a path that has no page.
    assert_eq!(get(&server, "/nope/?wharf=listing.js").status, 404);
    assert_eq!(get(&server, "/x.txt/?wharf=listing.css").status, 404);
}

#[test]
fn upload_form_appears_where_uploads_are_allowed_and_works_without_script() {
    let (_tmp, root) = temp_root();
    let server = Server::start(&root, &["--upload"]);
    let page = get(&server, "/").body_text();
    assert!(
        page.contains("<form id=\"upload\" method=\"post\" enctype=\"multipart/form-data\">"),
        "{page}"
    );
    assert!(page.contains("data-upload=\"true\" data-delete=\"false\""));
    let boundary = "XyZ";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hi.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    );
    let raw = server.send_raw(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let res = String::from_utf8_lossy(&raw);
    assert!(res.starts_with("HTTP/1.1 303"), "{res}");
    assert_eq!(
        std::fs::read_to_string(root.join("hi.txt")).unwrap(),
        "hello"
    );
}

/// Listening beyond loopback (inside a network namespace of its own, with a
/// network address added), the page offers a QR code of the folder's network
/// address.
#[test]
fn qr_code_on_the_page_when_listening_on_the_network() {
    if !have_all(&["unshare", "ip", "curl"]) {
        return;
    }
    let (tmp, root) = temp_root();
    write_file(&root, "photos/a.jpg", "x");
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let script = r#"
set -eu
wharf="$1"; root="$2"; out="$3"
ip link set lo up
ip addr add 10.77.0.1/32 dev lo
"$wharf" "$root" -b 0.0.0.0 -p 0 2>"$out/log" >/dev/null &
pid=$!
url=""
for _ in $(seq 400); do
    url=$(grep -o 'http://10\.77\.0\.1:[0-9]*/' "$out/log" | head -n 1 || true)
    [ -n "$url" ] && break
    sleep 0.025
done
curl -sS "${url}photos/" > "$out/page.html"
curl -sS -o "$out/qr.svg" -w '%{http_code} %{content_type}' "${url}photos/?wharf=qr.svg" > "$out/qr.status"
echo "$url" > "$out/url"
kill "$pid"
"#;
    let status = in_network_namespace(
        script,
        &[
            Path::new(env!("CARGO_BIN_EXE_wharf")),
            root.as_path(),
            out.as_path(),
        ],
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    assert!(status.success(), "namespace script failed: {}", read("log"));
    assert!(
        read("url").starts_with("http://10.77.0.1:"),
        "{}",
        read("log")
    );
    let page = read("page.html");
    assert!(page.contains("<img src=\"?wharf=qr.svg\""), "{page}");
    assert_eq!(read("qr.status"), "200 image/svg+xml");
    let svg = read("qr.svg");
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
}
