//! Path rules from the configuration file, against the real binary: `[[rule]]` headers,
//! redirects, rewrites, the single-page-app fallback and IP allow/deny lists, the
//! `[error-pages]` table and the `security-headers` preset, plus the startup errors
//! each invalid rule gives (file, line and key on one stderr line).

mod common;

use std::ffi::OsStr;
use std::path::PathBuf;

use common::client::*;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The server-level keys every configuration below starts with (3 lines).
const BASE: &str = "root = \"root\"\nport = 0\nbind = \"127.0.0.1\"\n";

/// The four headers of the security preset that do not depend on TLS.
const SECURITY: [(&str, &str); 4] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Content-Security-Policy", "frame-ancestors 'self'"),
];

const HTML_ACCEPT: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

/// A temp dir holding `root/` with `files` and `wharf.toml` = [`BASE`] + `site`.
fn site_fixture(site: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let (tmp, root) = temp_root();
    for (rel, contents) in files {
        write_file(&root, rel, contents);
    }
    let config = tmp.path().join("wharf.toml");
    std::fs::write(&config, format!("{BASE}{site}")).unwrap();
    (tmp, config)
}

/// Starts wharf with `--config` on a fixture made by [`site_fixture`].
fn start_site(site: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Server) {
    let (tmp, config) = site_fixture(site, files);
    let server = Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None);
    (tmp, server)
}

/// `HEAD path`, read until the server closes: the head, and every byte after it.
fn head_raw(server: &Server, path: &str, extra: &[(&str, &str)]) -> (Response, Vec<u8>) {
    request_raw(server, "HEAD", path, extra)
}

/// Asserts `name` is present exactly once with `value`.
fn assert_header(res: &Response, name: &str, value: &str, what: &str) {
    assert_eq!(
        res.headers_all(name),
        vec![value.to_string()],
        "{what}: {name} (status {})",
        res.status
    );
}

fn assert_security_headers(res: &Response, what: &str) {
    for (name, value) in SECURITY {
        assert_header(res, name, value, what);
    }
}

fn assert_no_security_headers(res: &Response, what: &str) {
    for name in SECURITY
        .iter()
        .map(|(n, _)| *n)
        .chain(["Strict-Transport-Security"])
    {
        assert_eq!(
            res.header(name),
            None,
            "{what}: unexpected {name} on a {} response",
            res.status
        );
    }
}

// --- headers ---------------------------------------------------------------------

#[test]
fn rule_headers_apply_to_matching_paths_but_not_to_errors() {
    let (_tmp, server) = start_site(
        "[[rule]]\npath = \"/assets/*\"\nheaders = { \"Cache-Control\" = \"public, max-age=31536000, immutable\", \"X-Asset\" = \"yes\" }\n",
        &[
            ("assets/x.css", "body { color: red }"),
            ("assets/deep/y.css", "deep"),
            ("other/z.css", "other"),
            ("a.txt", "plain"),
        ],
    );
    let cache = "public, max-age=31536000, immutable";

    let res = get(&server, "/assets/x.css");
    assert_eq!(res.status, 200);
    assert_eq!(res.body_text(), "body { color: red }");
    assert_header(&res, "Cache-Control", cache, "GET /assets/x.css");
    assert_header(&res, "X-Asset", "yes", "GET /assets/x.css");

    // A year-long Cache-Control must never pin an error (nginx's add_header).
    let res = get(&server, "/assets/missing.css");
    assert_eq!(res.status, 404);
    assert_eq!(res.header("X-Asset"), None, "GET /assets/missing.css");
    assert_ne!(res.header("Cache-Control").as_deref(), Some(cache));
    let res = request(&server, "POST", "/assets/x.css", &[("Content-Length", "0")]);
    assert_eq!(res.status, 405);
    assert_eq!(res.header("X-Asset"), None, "POST /assets/x.css");

    let etag = get(&server, "/assets/x.css").header("etag").expect("ETag");
    let res = request(&server, "GET", "/assets/x.css", &[("If-None-Match", &etag)]);
    assert_eq!(res.status, 304);
    assert_header(&res, "X-Asset", "yes", "304 for /assets/x.css");

    let (res, rest) = head_raw(&server, "/assets/x.css", &[]);
    assert_eq!(res.status, 200);
    assert!(rest.is_empty(), "HEAD has no body");
    assert_header(&res, "X-Asset", "yes", "HEAD /assets/x.css");

    // `*` stays within one segment; other paths get nothing.
    for path in [
        "/assets/deep/y.css",
        "/other/z.css",
        "/a.txt",
        "/assetsx.css",
    ] {
        let res = get(&server, path);
        assert_eq!(res.header("X-Asset"), None, "GET {path} ({})", res.status);
        assert_ne!(
            res.header("Cache-Control").as_deref(),
            Some(cache),
            "GET {path}"
        );
    }
    assert_eq!(get(&server, "/assets/deep/y.css").status, 200);
}

#[test]
fn a_later_rule_replaces_an_earlier_header_of_the_same_name() {
    let (_tmp, server) = start_site(
        "[[rule]]\npath = \"/assets/\"\nheaders = { \"X-Layer\" = \"outer\", \"X-Outer\" = \"1\" }\n\
         [[rule]]\npath = \"/assets/*.css\"\nheaders = { \"x-layer\" = \"inner\" }\n",
        &[("assets/a.css", "css"), ("assets/a.js", "js")],
    );
    let res = get(&server, "/assets/a.css");
    assert_eq!(res.status, 200);
    assert_header(&res, "X-Layer", "inner", "both rules match /assets/a.css");
    assert_header(&res, "X-Outer", "1", "headers of every matching rule apply");

    let res = get(&server, "/assets/a.js");
    assert_eq!(res.status, 200);
    assert_header(&res, "X-Layer", "outer", "only the first rule matches a.js");
    assert_header(&res, "X-Outer", "1", "GET /assets/a.js");
}

// --- redirects -------------------------------------------------------------------

#[test]
fn redirects_fill_captures_keep_the_query_and_use_the_configured_status() {
    let (_tmp, server) = start_site(
        "[[rule]]\npath = \"/old/**\"\nredirect = \"/new/{1}\"\nstatus = 301\n\
         [[rule]]\npath = \"/temp/*\"\nredirect = \"/now/{1}\"\n\
         [[rule]]\npath = \"/see/*\"\nredirect = \"/other/{1}\"\nstatus = 303\n\
         [[rule]]\npath = \"/t/*/*\"\nredirect = \"/tt/{2}/{1}\"\nstatus = 307\n\
         [[rule]]\npath = \"/p/*\"\nredirect = \"/pp/{1}\"\nstatus = 308\n\
         [[rule]]\npath = \"/q/*\"\nredirect = \"/search?term={1}\"\nstatus = 302\n\
         [[rule]]\npath = \"/ext/**\"\nredirect = \"https://example.com/{1}\"\nstatus = 301\n\
         [[rule]]\npath = \"/drop/*\"\nredirect = \"/dropped/{1}?\"\n",
        &[("a.txt", "a")],
    );
    let cases = [
        ("/old/a/b?x=1", 301, "/new/a/b?x=1"),
        ("/old/a/b", 301, "/new/a/b"),
        ("/temp/x", 302, "/now/x"),
        ("/temp/x?y=2&z", 302, "/now/x?y=2&z"),
        ("/see/s", 303, "/other/s"),
        ("/t/one/two?k=v", 307, "/tt/two/one?k=v"),
        ("/p/page.html", 308, "/pp/page.html"),
        // The target's own query first, then the request's (as nginx's rewrite).
        ("/q/abc?x=1", 302, "/search?term=abc&x=1"),
        ("/q/abc", 302, "/search?term=abc"),
        // A target ending in `?` drops the request's query.
        ("/drop/d?x=1", 302, "/dropped/d"),
        ("/drop/d", 302, "/dropped/d"),
        ("/ext/a/b?x=1", 301, "https://example.com/a/b?x=1"),
        // Sub-delims in a path stay as they came (encoding them changes the URI)...
        (
            "/ext/a;v=1/b+c,d=e",
            301,
            "https://example.com/a;v=1/b+c,d=e",
        ),
        ("/p/a%20b%3Fc", 308, "/pp/a%20b%3Fc"),
        // ... but not in a query, where they would add parameters.
        ("/q/a&admin=1", 302, "/search?term=a%26admin%3D1"),
    ];
    for (target, status, location) in cases {
        let res = get(&server, target);
        assert_eq!(
            (res.status, res.header("Location").as_deref()),
            (status, Some(location)),
            "GET {target}"
        );
    }
    // A path outside every redirect is served normally.
    let res = get(&server, "/a.txt");
    assert_eq!((res.status, res.header("Location")), (200, None));
}

#[test]
fn the_first_matching_redirect_answers_before_any_rewrite() {
    let (_tmp, server) = start_site(
        "[[rule]]\npath = \"/m/*\"\nrewrite = \"/target.txt\"\n\
         [[rule]]\npath = \"/m/*\"\nredirect = \"/first/{1}\"\nstatus = 307\n\
         [[rule]]\npath = \"/m/*\"\nredirect = \"/second/{1}\"\nstatus = 308\n",
        &[("target.txt", "rewritten")],
    );
    let res = get(&server, "/m/x");
    assert_eq!(
        (res.status, res.header("Location").as_deref()),
        (307, Some("/first/x"))
    );
}

// --- rewrites --------------------------------------------------------------------

#[test]
fn rewrites_serve_the_target_with_its_status() {
    let (_tmp, server) = start_site(
        "[[rule]]\npath = \"/blog/*\"\nrewrite = \"/posts/{1}.html\"\nheaders = { \"X-Blog\" = \"1\" }\n\
         [[rule]]\npath = \"/blog/*\"\nrewrite = \"/never/{1}.html\"\n",
        &[
            ("posts/hello.html", "<h1>Hello post</h1>"),
            ("never/hello.html", "wrong rewrite"),
        ],
    );
    let res = get(&server, "/blog/hello");
    assert_eq!(res.status, 200, "GET /blog/hello");
    assert_eq!(res.body_text(), "<h1>Hello post</h1>");
    assert!(
        res.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/html")),
        "Content-Type of the target: {:?}",
        res.header("Content-Type")
    );
    assert_eq!(res.header("Location"), None, "a rewrite is internal");
    assert_header(&res, "X-Blog", "1", "headers still apply to a rewrite");

    let res = get(&server, "/blog/missing");
    assert_eq!(res.status, 404, "GET /blog/missing");
    assert!(!res.body_text().contains("wrong rewrite"));
}

// --- single-page-app fallback ----------------------------------------------------

const APP_INDEX: &str = "<!doctype html><title>app</title><div id=root></div>";

fn start_spa() -> (tempfile::TempDir, Server) {
    start_site(
        "[[rule]]\npath = \"/app/\"\nspa = \"/app/index.html\"\n",
        &[
            ("app/index.html", APP_INDEX),
            ("app/real.js", "console.log(1)"),
            ("elsewhere.txt", "x"),
        ],
    )
}

#[test]
fn spa_fallback_answers_page_requests_only() {
    let (_tmp, server) = start_spa();

    let res = request(
        &server,
        "GET",
        "/app/some/route",
        &[("Accept", HTML_ACCEPT)],
    );
    assert_eq!(res.status, 200, "browser navigation to a client route");
    assert_eq!(res.body_text(), APP_INDEX);
    assert!(
        varies_on(&res, "accept"),
        "fallback: {:?}",
        res.headers_all("vary")
    );

    let res = request(&server, "GET", "/app/some/route", &[("Accept", "*/*")]);
    assert_eq!(res.status, 404, "Accept */* does not name text/html");
    assert_ne!(res.body_text(), APP_INDEX);
    assert!(
        varies_on(&res, "accept"),
        "404: {:?}",
        res.headers_all("vary")
    );

    let res = get(&server, "/app/missing.js");
    assert_eq!(res.status, 404, "no Accept header");
    let res = request(&server, "GET", "/app/missing.js", &[("Accept", "*/*")]);
    assert_eq!(res.status, 404, "script-style Accept */*");

    let res = request(&server, "GET", "/app/real.js", &[("Accept", HTML_ACCEPT)]);
    assert_eq!(res.status, 200);
    assert_eq!(
        res.body_text(),
        "console.log(1)",
        "an existing file is itself"
    );

    let res = request(&server, "GET", "/nowhere", &[("Accept", HTML_ACCEPT)]);
    assert_eq!(res.status, 404, "outside the rule there is no fallback");

    let res = request(
        &server,
        "POST",
        "/app/some/route",
        &[("Accept", HTML_ACCEPT)],
    );
    assert_ne!(res.status, 200, "only GET and HEAD fall back");
}

#[test]
fn spa_fallback_for_head_has_length_and_no_body() {
    let (_tmp, server) = start_spa();
    let (res, rest) = head_raw(&server, "/app/some/route", &[("Accept", HTML_ACCEPT)]);
    assert_eq!(res.status, 200);
    assert_eq!(res.content_length(), Some(APP_INDEX.len()));
    assert!(
        rest.is_empty(),
        "HEAD got a body: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

// --- error pages -----------------------------------------------------------------

const PAGE_404: &str = "<!doctype html><p>Custom not found page</p>\n";
const PAGE_405: &str = "<!doctype html><p>Custom method page</p>\n";

#[test]
fn custom_404_page_keeps_the_status() {
    let (_tmp, server) = start_site(
        "[error-pages]\n404 = \"/404.html\"\n",
        &[("404.html", PAGE_404), ("a.txt", "a")],
    );
    let res = get(&server, "/no/such/file");
    assert_eq!(res.status, 404);
    assert_eq!(res.body_text(), PAGE_404);
    assert!(
        res.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/html")),
        "Content-Type {:?}",
        res.header("Content-Type")
    );

    let (head, rest) = head_raw(&server, "/no/such/file", &[]);
    assert_eq!(head.status, 404);
    assert!(
        rest.is_empty(),
        "HEAD got a body: {:?}",
        String::from_utf8_lossy(&rest)
    );
    if let Some(len) = head.content_length() {
        assert_eq!(len, PAGE_404.len(), "HEAD Content-Length is GET's");
    }

    let res = get(&server, "/a.txt");
    assert_eq!((res.status, res.body_text().as_str()), (200, "a"));
}

#[test]
fn a_405_without_its_own_page_is_the_built_in_one_with_allow() {
    let files = [("404.html", PAGE_404), ("a.txt", "a")];
    let (_tmp, server) = start_site("[error-pages]\n404 = \"/404.html\"\n", &files);
    let (_plain_tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let plain = Server::start(&root, &[]);

    let res = request(&server, "POST", "/a.txt", &[("Content-Length", "0")]);
    let built_in = request(&plain, "POST", "/a.txt", &[("Content-Length", "0")]);
    assert_eq!(res.status, 405);
    assert_eq!(built_in.status, 405);
    let allow = res.header("Allow").expect("405 has Allow");
    assert!(
        allow.contains("GET") && allow.contains("HEAD"),
        "Allow: {allow:?}"
    );
    assert_eq!(res.header("Allow"), built_in.header("Allow"));
    assert_eq!(res.body_text(), built_in.body_text(), "built-in 405 page");
    assert_ne!(res.body_text(), PAGE_404);
}

#[test]
fn a_configured_405_page_keeps_allow() {
    let (_tmp, server) = start_site(
        "[error-pages]\n404 = \"/404.html\"\n405 = \"/405.html\"\n",
        &[
            ("404.html", PAGE_404),
            ("405.html", PAGE_405),
            ("a.txt", "a"),
        ],
    );
    let res = request(&server, "POST", "/a.txt", &[("Content-Length", "0")]);
    assert_eq!(res.status, 405);
    assert_eq!(res.body_text(), PAGE_405);
    let allow = res.header("Allow").expect("405 page keeps Allow");
    assert!(
        allow.contains("GET") && allow.contains("HEAD"),
        "Allow: {allow:?}"
    );
}

// --- security headers ------------------------------------------------------------

#[test]
fn security_headers_on_200_404_and_304_without_hsts_over_http() {
    let (_tmp, server) = start_site(
        "security-headers = true\n",
        &[("a.txt", "secure"), ("index.html", "<p>home</p>")],
    );
    let ok = get(&server, "/a.txt");
    assert_eq!(ok.status, 200);
    assert_security_headers(&ok, "200");

    let missing = get(&server, "/missing");
    assert_eq!(missing.status, 404);
    assert_security_headers(&missing, "404");

    let etag = ok.header("ETag").expect("200 has an ETag");
    let not_modified = request(&server, "GET", "/a.txt", &[("If-None-Match", &etag)]);
    assert_eq!(not_modified.status, 304);
    assert_security_headers(&not_modified, "304");

    for res in [&ok, &missing, &not_modified] {
        assert_eq!(
            res.header("Strict-Transport-Security"),
            None,
            "no HSTS over plain HTTP ({})",
            res.status
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_include_hsts_over_tls() {
    let (tmp, config) = site_fixture("security-headers = true\n", &[("a.txt", "tls")]);
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let server = Server::spawn_with_env(
        &[
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--tls-self-signed"),
        ],
        &[("XDG_STATE_HOME", state.as_os_str())],
    );
    assert!(server.banner().contains("https://"), "{}", server.banner());
    let pem = std::fs::read(state.join("wharf/self-signed-cert.pem")).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).expect("kept certificate is PEM");
    let stream = tls_connect(
        server.addr(),
        client_config(&[der], &[b"http/1.1"], &[]),
        "localhost",
    )
    .await;
    let mut sender = h1_handshake(stream).await;
    let host = format!("localhost:{}", server.port());
    for (path, status) in [("/a.txt", 200), ("/missing", 404)] {
        let reply = h1_send(
            &mut sender,
            build_request("GET", path, &[("host", &host)], b""),
        )
        .await;
        assert_eq!(reply.status, status, "GET {path} over TLS");
        let hsts = reply
            .header("strict-transport-security")
            .unwrap_or_else(|| panic!("no HSTS on GET {path} over TLS: {:?}", reply.headers));
        assert!(hsts.contains("max-age="), "HSTS value {hsts:?}");
        for (name, value) in SECURITY {
            assert_eq!(
                reply.header(name).as_deref(),
                Some(value),
                "{name} on {path}"
            );
        }
    }
}

// --- allow / deny ----------------------------------------------------------------

const SECRET: &str = "top secret contents";

fn start_access() -> (tempfile::TempDir, Server) {
    start_site(
        "[[rule]]\npath = \"/private/\"\nallow = [\"10.0.0.0/8\"]\n\
         [[rule]]\npath = \"/local/\"\nallow = [\"127.0.0.0/8\", \"::1\"]\n\
         [[rule]]\npath = \"/blocked/\"\ndeny = [\"127.0.0.1\"]\n\
         [[rule]]\npath = \"/both/\"\nallow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.1\"]\n\
         [[rule]]\npath = \"/mixed/\"\nallow = [\"127.0.0.0/8\"]\n\
         [[rule]]\npath = \"/mixed/inner/\"\nallow = [\"10.0.0.0/8\"]\n\
         [[rule]]\npath = \"/blocked/*\"\nredirect = \"/elsewhere/{1}\"\n",
        &[
            ("private/secret.txt", SECRET),
            ("local/ok.txt", "local ok"),
            ("blocked/x.txt", SECRET),
            ("both/x.txt", SECRET),
            ("mixed/ok.txt", "mixed ok"),
            ("mixed/inner/x.txt", SECRET),
            ("public.txt", "public"),
        ],
    )
}

/// The folder's own name is guarded as the destination of a MOVE and as the
/// target of a rewrite too: neither leads around the folder's rule.
#[test]
fn a_guarded_folders_name_is_guarded_as_a_destination_and_a_rewrite() {
    let (_tmp, server) = start_site(
        "[[rule]]\npath = \"/\"\nupload = true\ndelete = true\n\
         [[rule]]\npath = \"/private/\"\nallow = [\"10.0.0.0/8\"]\n\
         [[rule]]\npath = \"/r/*\"\nrewrite = \"/{1}\"\n",
        &[("private/secret.txt", SECRET), ("junk.txt", "junk")],
    );
    let moved = request(
        &server,
        "MOVE",
        "/junk.txt",
        &[("Destination", "/private"), ("Overwrite", "T")],
    );
    assert_eq!(moved.status, 403);
    assert_eq!(get(&server, "/private/secret.txt").status, 403);
    assert_eq!(get(&server, "/r/private").status, 403);
    assert_eq!(
        get(&server, "/junk.txt").status,
        200,
        "the MOVE did not happen"
    );
}

#[test]
fn allow_and_deny_lists_decide_access() {
    let (_tmp, server) = start_access();
    let cases = [
        ("/private/secret.txt", 403, "allow 10/8 excludes 127.0.0.1"),
        ("/private/missing.txt", 403, "refused before the lookup"),
        ("/private", 403, "the folder's own name is guarded too"),
        ("/privatex", 404, "a longer name is not the folder"),
        ("/local/ok.txt", 200, "allow 127/8 admits 127.0.0.1"),
        ("/blocked/x.txt", 403, "deny 127.0.0.1, before any redirect"),
        ("/both/x.txt", 403, "deny wins over allow"),
        ("/mixed/ok.txt", 200, "only the outer rule matches"),
        (
            "/mixed/inner/x.txt",
            403,
            "every matching rule's list applies",
        ),
        ("/public.txt", 200, "no rule"),
    ];
    for (path, status, why) in cases {
        let res = get(&server, path);
        assert_eq!(res.status, status, "GET {path}: {why}");
        if status == 403 {
            assert!(!res.body_text().contains(SECRET), "GET {path} leaked");
            assert_eq!(res.header("Location"), None, "GET {path}");
        }
    }
    let (head, rest) = head_raw(&server, "/private/secret.txt", &[]);
    assert_eq!(head.status, 403, "HEAD is refused too");
    assert!(rest.is_empty());
}

#[test]
fn access_lists_hold_for_every_spelling_of_a_path() {
    let (_tmp, server) = start_access();
    // Each of these names /private/secret.txt (or /both/x.txt) once the path is
    // percent-decoded and normalised, as the file lookup does.
    let bypasses: Vec<String> = [
        "/%70rivate/secret.txt",
        "/private/secret%2Etxt",
        "//private/secret.txt",
        "/./private/secret.txt",
        "/public/../private/secret.txt",
        "/%62oth/x.txt",
    ]
    .into_iter()
    .filter_map(|target| {
        let res = get(&server, target);
        (res.status / 100 == 2 || res.body_text().contains(SECRET))
            .then(|| format!("GET {target} -> {} {:?}", res.status, res.body_text()))
    })
    .collect();
    assert!(
        bypasses.is_empty(),
        "the access lists were bypassed (expected 403, or at least no content):\n{}",
        bypasses.join("\n")
    );
}

// --- without rules ---------------------------------------------------------------

#[test]
fn no_configuration_means_no_extra_headers() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "plain");
    let server = Server::start(&root, &[]);
    let ok = get(&server, "/a.txt");
    assert_eq!(ok.status, 200);
    assert_no_security_headers(&ok, "no config, 200");
    let missing = get(&server, "/missing");
    assert_eq!(missing.status, 404);
    assert_no_security_headers(&missing, "no config, 404");
    let etag = ok.header("ETag").expect("200 has an ETag");
    let nm = request(&server, "GET", "/a.txt", &[("If-None-Match", &etag)]);
    assert_eq!(nm.status, 304);
    assert_no_security_headers(&nm, "no config, 304");

    // A file with only server keys, or the preset turned off, adds nothing either.
    for site in ["", "security-headers = false\n"] {
        let (_tmp, server) = start_site(site, &[("a.txt", "plain")]);
        let res = get(&server, "/a.txt");
        assert_eq!(res.status, 200);
        assert_no_security_headers(&res, &format!("config {site:?}"));
        assert_eq!(get(&server, "/missing").status, 404);
    }
}

// --- invalid configurations ------------------------------------------------------

/// Runs wharf with `--config FILE EXTRA...` on a file holding `text`, waiting (bounded)
/// for it to exit by itself.
fn run_config(text: &str, extra: &[&str]) -> Finished {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let path = tmp.path().join("wharf.toml");
    std::fs::write(&path, text).unwrap();
    let mut args = vec![OsStr::new("--config"), path.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    run_to_exit(&args, None)
}

fn assert_rejected(text: &str, line: usize, needles: &[&str]) {
    let out = run_config(text, &[]);
    let stderr = out.stderr;
    assert!(!out.status.success(), "accepted:\n{text}");
    assert!(stderr.starts_with("wharf: "), "{text:?}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line for {text:?}: {stderr}"
    );
    assert!(
        stderr.contains(&format!("wharf.toml:{line}: ")),
        "expected line {line} for {text:?}: {stderr}"
    );
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} for {text:?}: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A valid first rule, so errors in the second show which `[[rule]]` is meant
/// (lines 4-6).
const FIRST_RULE: &str = "[[rule]]\npath = \"/ok/\"\nheaders = { \"X-Ok\" = \"1\" }\n";

#[test]
fn invalid_rules_name_file_line_and_key() {
    let second = |body: &str| format!("{BASE}{FIRST_RULE}[[rule]]\n{body}");
    // The second [[rule]] header is line 7; its first key line 8.
    let cases: Vec<(String, usize, Vec<&str>)> = vec![
        (
            second("path = \"/a/\"\nfoo = 1\n"),
            9,
            vec!["unknown key \"rule.foo\""],
        ),
        (
            second("headers = { \"X-A\" = \"1\" }\n"),
            7,
            vec!["rule.path", "every rule needs a path"],
        ),
        (
            second("path = \"assets/*\"\n"),
            8,
            vec!["rule.path", "must start with /"],
        ),
        (
            second("path = \"/old/*\"\nredirect = \"/new/{1}\"\nstatus = 404\n"),
            10,
            vec!["rule.status", "is not a redirect status"],
        ),
        (
            second("path = \"/old/*\"\nstatus = 301\n"),
            9,
            vec!["rule.status", "only meaningful with redirect"],
        ),
        (
            second("path = \"/old/*\"\nredirect = \"/new/{2}\"\n"),
            9,
            vec!["rule.redirect", "{2} names no capture", "has 1 wildcard"],
        ),
        (
            second("path = \"/exact\"\nrewrite = \"/p/{1}.html\"\n"),
            9,
            vec!["rule.rewrite", "{1} names no capture", "has 0 wildcard"],
        ),
        (
            second("path = \"/p/\"\nallow = [\"nonsense\"]\n"),
            9,
            vec!["rule.allow", "is not an IP address or CIDR network"],
        ),
        (
            second("path = \"/p/\"\ndeny = [\"10.0.0.0/99\"]\n"),
            9,
            vec!["rule.deny", "is not an IP address or CIDR network"],
        ),
        (
            second("path = \"/blog/*\"\nrewrite = \"relative\"\n"),
            9,
            vec!["rule.rewrite", "expected a path starting with /"],
        ),
        (
            second("path = \"/app/\"\nspa = \"index.html\"\n"),
            9,
            vec!["rule.spa", "expected a path starting with /"],
        ),
        (
            second("path = \"/h/\"\nheaders = { \"bad name\" = \"x\" }\n"),
            9,
            vec!["rule.headers", "invalid header name"],
        ),
        (
            second("path = \"/h/\"\nheaders = { \"ETag\" = \"\\\"z\\\"\" }\n"),
            9,
            vec!["rule.headers", "etag describes the content sent"],
        ),
        (
            second("path = \"/h/\"\nheaders = { \"Content-Encoding\" = \"gzip\" }\n"),
            9,
            vec![
                "rule.headers",
                "content-encoding describes the content sent",
            ],
        ),
        (
            second("path = \"/g/***\"\nredirect = \"/x/{1}\"\n"),
            8,
            vec!["rule.path", "is not a wildcard"],
        ),
        (
            second("path = \"/posts/*\"\nrewrite = \"/p/{1}.html?x=1\"\n"),
            9,
            vec!["rule.rewrite", "without ? or #"],
        ),
        (
            format!("{BASE}{FIRST_RULE}[error-pages]\n404 = \"/404.html\"\n200 = \"/ok.html\"\n"),
            9,
            vec!["error-pages.200", "not a 4xx or 5xx status"],
        ),
        (
            format!("{BASE}[error-pages]\n\n404 = \"404.html\"\n"),
            6,
            vec!["error-pages.404"],
        ),
        (
            format!("{BASE}security-headers = \"yes\"\n{FIRST_RULE}"),
            4,
            vec!["security-headers", "expected true or false"],
        ),
    ];
    for (text, line, needles) in &cases {
        assert_rejected(text, *line, needles);
    }
}

#[test]
fn rule_error_lines_survive_comments_on_table_headers() {
    // Comments after a table header are ordinary TOML; the line must still be the
    // offending key's (or the header's), never another rule's or line 1.
    let cases = [
        (
            format!(
                "{BASE}[[rule]]   # long-lived assets\npath = \"/ok/\"\n\
                 [[rule]] # legacy URLs\npath = \"/old/*\"\nstatus = 301\n"
            ),
            8,
            "only meaningful with redirect",
        ),
        (
            format!("{BASE}[[rule]] # no path here\nheaders = {{ \"X-A\" = \"1\" }}\n"),
            4,
            "every rule needs a path",
        ),
        (
            format!(
                "{BASE}[[rule]] # first\npath = \"/a/\"\nstatus = 301\n\
                 [[rule]]\npath = \"/b/\"\nstatus = 301\n"
            ),
            6,
            "only meaningful with redirect",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(text, line, needle)| {
            let out = run_config(text, &[]);
            let ok = !out.status.success()
                && out.stderr.contains(&format!("wharf.toml:{line}: "))
                && out.stderr.contains(needle);
            (!ok).then(|| {
                format!(
                    "expected line {line} ({needle}) for {text:?}, got: {}",
                    out.stderr.trim_end()
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_valid_rule_file_loads() {
    let out = run_config(
        &format!(
            "{BASE}security-headers = true\n{FIRST_RULE}\
         [[rule]]\npath = \"/old/**\"\nredirect = \"/new/{{1}}\"\nstatus = 301\n\
         [[rule]]\npath = \"/p/\"\nallow = [\"10.0.0.0/8\", \"::1\"]\ndeny = [\"10.1.2.3\"]\n\
         [error-pages]\n404 = \"/404.html\"\n"
        ),
        &["--explain"],
    );
    assert!(out.status.success(), "{}", out.stderr);
}

#[test]
fn a_custom_404_keeps_the_vary_of_the_spa_decision() {
    let (_tmp, server) = start_site(
        "[error-pages]\n404 = \"/404.html\"\n[[rule]]\npath = \"/app/\"\nspa = \"/app/index.html\"\n",
        &[("app/index.html", "<p>app</p>"), ("404.html", "<p>custom 404</p>")],
    );
    let res = request(&server, "GET", "/app/missing.js", &[("Accept", "*/*")]);
    assert_eq!(res.status, 404);
    assert_eq!(res.body_text(), "<p>custom 404</p>");
    assert!(
        varies_on(&res, "accept"),
        "Vary: {:?}",
        res.headers_all("vary")
    );
}

#[test]
fn an_error_page_a_client_may_not_read_is_not_shown_to_it() {
    let (_tmp, server) = start_site(
        "[error-pages]\n403 = \"/admin/page.html\"\n404 = \"/pages/404.html\"\n\n\
         [[rule]]\npath = \"/admin/\"\nallow = [\"10.0.0.0/8\"]\n\n\
         [[rule]]\npath = \"/pages/\"\ninternal = true\n",
        &[
            ("admin/page.html", "ADMIN ONLY"),
            ("admin/x.txt", "adm"),
            ("pages/404.html", "custom 404"),
        ],
    );
    // The page lies where this client is refused: the built-in page instead.
    let res = get(&server, "/admin/x.txt");
    assert_eq!(res.status, 403);
    assert!(
        !res.body_text().contains("ADMIN ONLY"),
        "{}",
        res.body_text()
    );
    // An internal page is what error pages are for.
    let res = get(&server, "/missing");
    assert_eq!((res.status, res.body_text().as_str()), (404, "custom 404"));
}

#[test]
fn a_rules_own_headers_win_over_the_security_preset_and_vary_is_added_to() {
    let (_tmp, server) = start_site(
        "security-headers = true\n\n[[rule]]\npath = \"/strict/\"\n\
         headers = { \"X-Frame-Options\" = \"DENY\", \"Referrer-Policy\" = \"no-referrer\", \"Vary\" = \"Cookie\" }\n",
        &[("strict/big.txt", &"compress me ".repeat(2000))],
    );
    let res = request(
        &server,
        "GET",
        "/strict/big.txt",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(res.status, 200);
    assert_header(&res, "x-frame-options", "DENY", "the rule's");
    assert_header(&res, "referrer-policy", "no-referrer", "the rule's");
    assert_header(&res, "x-content-type-options", "nosniff", "the preset's");
    assert_eq!(res.header("content-encoding").as_deref(), Some("gzip"));
    let vary = res.headers_all("vary").join(", ").to_ascii_lowercase();
    assert!(
        vary.contains("accept-encoding") && vary.contains("cookie"),
        "{vary}"
    );
}
