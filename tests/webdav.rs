//! WebDAV judged by an outside suite: `litmus` (Debian package `litmus`), every test of
//! its basic, copymove, props, locks and http groups, against the real binary.

mod common;

use std::process::Command;

use common::*;

#[test]
fn litmus_passes_every_group() {
    let found = Command::new("litmus").arg("--version").output().is_ok();
    if !found {
        eprintln!("skipped: litmus is not installed (apt-get install litmus)");
        assert!(std::env::var_os("CI").is_none(), "CI must install litmus");
        return;
    }
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload", "--delete"]);
    let url = format!("http://{}/", server.addr());
    let out = Command::new("timeout")
        .args(["300", "litmus"])
        .arg(&url)
        .env("TESTS", "basic copymove props locks http")
        // litmus writes its debug.log and child.log where it runs.
        .current_dir(_t.path())
        .output()
        .expect("litmus runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let summaries: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("<- summary for"))
        .collect();
    assert_eq!(summaries.len(), 5, "every group ran:\n{text}");
    for line in &summaries {
        assert!(line.contains(" 0 failed"), "{line}\n{text}");
    }
    assert!(
        out.status.success(),
        "litmus exit status {:?}\n{text}",
        out.status
    );
}

#[test]
fn propfind_lists_members_and_refuses_infinity() {
    let (_t, root) = temp_root();
    write_file(&root, "dir/a.txt", "abc");
    write_file(&root, "dir/.hidden", "h");
    let server = Server::start(&root, &["--upload"]);
    let res = request(&server, "PROPFIND", "/dir/", &[("Depth", "1")]);
    assert_eq!(res.status, 207);
    let body = res.body_text();
    assert!(body.contains("<D:href>/dir/</D:href>"), "{body}");
    assert!(body.contains("<D:href>/dir/a.txt</D:href>"), "{body}");
    assert!(
        body.contains("<D:getcontentlength>3</D:getcontentlength>"),
        "{body}"
    );
    assert!(!body.contains(".hidden"), "{body}");
    let res = request(&server, "PROPFIND", "/dir/", &[("Depth", "infinity")]);
    assert_eq!(res.status, 403);
    assert!(res.body_text().contains("propfind-finite-depth"));
    assert_eq!(
        request(&server, "PROPFIND", "/missing/", &[("Depth", "0")]).status,
        404
    );
    // Without writes there is no WebDAV: known methods, not allowed (RFC 9110
    // §15.5.6), with what is.
    let plain = Server::start(&root, &[]);
    let res = request(&plain, "PROPFIND", "/dir/", &[("Depth", "1")]);
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow").as_deref(), Some("GET, HEAD, OPTIONS"));
}

/// A PROPFIND body asking for `body`'s properties (`<D:allprop/>`, `<D:propname/>`,
/// `<D:prop>…</D:prop>`).
fn propfind(server: &Server, path: &str, depth: Option<&str>, body: &str) -> Response {
    let xml = format!("<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\">{body}</D:propfind>");
    let mut req = format!(
        "PROPFIND {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        xml.len()
    );
    if let Some(depth) = depth {
        req.push_str(&format!("Depth: {depth}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&xml);
    server.exchange(req.as_bytes(), false)
}

/// XML bodies in UTF-16 (which every XML processor reads, XML 1.0 §4.3.3) or in the
/// encoding their declaration names are read as such.
#[test]
fn xml_bodies_in_utf_16_or_a_declared_encoding_are_read() {
    let (_t, root) = temp_root();
    write_file(&root, "doc.txt", "abc");
    let server = Server::start(&root, &["--upload"]);
    let send = |method: &str, body: &[u8]| {
        let mut req = format!(
            "{method} /doc.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nDepth: 0\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        server.exchange(&req, false)
    };
    let update = "<?xml version=\"1.0\" encoding=\"utf-16\"?><D:propertyupdate xmlns:D=\"DAV:\">\
                  <D:set><D:prop><z:note xmlns:z=\"urn:z\">caf\u{e9}</z:note></D:prop></D:set>\
                  </D:propertyupdate>";
    let mut utf16 = vec![0xff, 0xfe];
    utf16.extend(update.encode_utf16().flat_map(u16::to_le_bytes));
    let res = send("PROPPATCH", &utf16);
    assert_eq!(res.status, 207, "{}", res.body_text());
    assert!(res.body_text().contains("200 OK"), "{}", res.body_text());
    // Latin-1, by its declaration: é is one byte, 0xE9, which UTF-8 would refuse.
    let summer =
        b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><D:propertyupdate xmlns:D=\"DAV:\">\
                   <D:set><D:prop><z:summer xmlns:z=\"urn:z\">\xe9t\xe9</z:summer></D:prop></D:set>\
                   </D:propertyupdate>";
    let res = send("PROPPATCH", summer);
    assert_eq!(res.status, 207, "{}", res.body_text());
    let mut latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><D:propfind xmlns:D=\"DAV:\">\
                       <D:prop><z:note xmlns:z=\"urn:z\"/><z:summer xmlns:z=\"urn:z\"/></D:prop></D:propfind>"
        .to_vec();
    let res = send("PROPFIND", &latin1);
    assert_eq!(res.status, 207, "{}", res.body_text());
    assert!(res.body_text().contains("caf\u{e9}"), "{}", res.body_text());
    assert!(
        res.body_text().contains("\u{e9}t\u{e9}"),
        "{}",
        res.body_text()
    );
    // Bytes that are not text in the encoding named: still a bad request.
    latin1.clear();
    latin1.extend(b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><z:\xe9 xmlns:z=\"urn:z\"/></D:prop></D:propfind>");
    assert_eq!(send("PROPFIND", &latin1).status, 400);
}

#[test]
fn propfind_reports_the_etag_a_get_sends() {
    let (_t, root) = temp_root();
    write_file(&root, "dir/a.txt", "abc");
    let server = Server::start(&root, &["--upload"]);
    let etag = get(&server, "/dir/a.txt").header("etag").expect("an ETag");
    let element = format!("<D:getetag>{etag}</D:getetag>");
    for body in ["<D:allprop/>", "<D:prop><D:getetag/></D:prop>"] {
        let res = propfind(&server, "/dir/a.txt", Some("0"), body);
        assert_eq!(res.status, 207);
        assert!(res.body_text().contains(&element), "{}", res.body_text());
        // And for a member listed at Depth 1.
        let res = propfind(&server, "/dir/", Some("1"), body);
        assert!(res.body_text().contains(&element), "{}", res.body_text());
    }
    let names = propfind(&server, "/dir/a.txt", Some("0"), "<D:propname/>");
    assert!(
        names.body_text().contains("<D:getetag/>"),
        "{}",
        names.body_text()
    );
}

#[test]
fn allprop_reads_no_large_file_for_its_etag() {
    let (_t, root) = temp_root();
    write_file(&root, "dir/big.bin", vec![7u8; 2 * 1024 * 1024]);
    let server = Server::start(&root, &["--upload"]);
    // A file manager's listing: no large file read for a hash.
    let res = propfind(&server, "/dir/", Some("1"), "<D:allprop/>");
    assert_eq!(res.status, 207);
    assert!(res.body_text().contains("<D:getcontentlength>2097152<"));
    assert!(
        !res.body_text().contains("<D:getetag>"),
        "{}",
        res.body_text()
    );
    // Asked for by name, it is taken: the ETag a GET sends.
    let res = propfind(
        &server,
        "/dir/big.bin",
        Some("0"),
        "<D:prop><D:getetag/></D:prop>",
    );
    let etag = get(&server, "/dir/big.bin")
        .header("etag")
        .expect("an ETag");
    assert!(
        res.body_text()
            .contains(&format!("<D:getetag>{etag}</D:getetag>")),
        "{}",
        res.body_text()
    );
    // Known now, so allprop has it too.
    let res = propfind(&server, "/dir/", Some("1"), "<D:allprop/>");
    assert!(res
        .body_text()
        .contains(&format!("<D:getetag>{etag}</D:getetag>")));
}

#[test]
fn propfind_of_a_file_at_infinite_depth_is_depth_0() {
    let (_t, root) = temp_root();
    write_file(&root, "dir/a.txt", "abc");
    let server = Server::start(&root, &["--upload"]);
    for depth in [None, Some("infinity")] {
        let res = propfind(&server, "/dir/a.txt", depth, "<D:allprop/>");
        assert_eq!(res.status, 207, "{depth:?}");
        assert!(res.body_text().contains("<D:href>/dir/a.txt</D:href>"));
        // A collection's stays refused.
        let res = propfind(&server, "/dir/", depth, "<D:allprop/>");
        assert_eq!(res.status, 403, "{depth:?}");
        assert!(res.body_text().contains("propfind-finite-depth"));
    }
}

/// `METHOD path` with `headers` and `body`, on its own connection.
fn dav(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    server.exchange(req.as_bytes(), false)
}

/// A LOCK of `path` (`exclusive` or `shared`, depth `depth`); its `Lock-Token` value.
fn lock(server: &Server, path: &str, scope: &str, depth: &str) -> String {
    let info = format!(
        "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:{scope}/></D:lockscope>\
         <D:locktype><D:write/></D:locktype></D:lockinfo>"
    );
    let res = dav(server, "LOCK", path, &[("Depth", depth)], &info);
    assert!(
        matches!(res.status, 200 | 201),
        "LOCK {path}: {}",
        res.status
    );
    res.header("lock-token").expect("a Lock-Token")
}

/// What each lock protects (RFC 4918 §6, §7.4): any holder of a shared lock may
/// write; a depth-0 lock on a folder guards its membership, not its members'
/// content; a tus upload into a locked folder needs the token too.
#[test]
fn locks_guard_what_rfc_4918_says_and_no_more() {
    let (_tmp, root) = temp_root();
    std::fs::create_dir_all(root.join("shared")).unwrap();
    std::fs::write(root.join("shared/doc.txt"), "v1").unwrap();
    std::fs::create_dir_all(root.join("members")).unwrap();
    std::fs::write(root.join("members/kept.txt"), "v1").unwrap();
    std::fs::create_dir_all(root.join("guarded")).unwrap();
    let server = Server::start(&root, &["--upload", "--delete"]);

    // Two shared locks: either holder's token is enough; none is not.
    let first = lock(&server, "/shared/doc.txt", "shared", "0");
    let second = lock(&server, "/shared/doc.txt", "shared", "0");
    assert_ne!(first, second);
    assert_eq!(dav(&server, "PUT", "/shared/doc.txt", &[], "x").status, 423);
    for token in [&first, &second] {
        let condition = format!("({token})");
        let res = dav(
            &server,
            "PUT",
            "/shared/doc.txt",
            &[("If", &condition)],
            "v2",
        );
        assert_eq!(res.status, 204, "with {token}");
    }
    // A deep lock over them: 207, naming the member in the way (423) and the
    // folder asked for (424), as RFC 4918 §9.10.6 has it.
    let info = "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/>\
                </D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>";
    let res = dav(&server, "LOCK", "/shared/", &[("Depth", "infinity")], info);
    assert_eq!(res.status, 207, "{}", res.body_text());
    let text = res.body_text();
    assert!(
        text.contains("<D:href>/shared/doc.txt</D:href><D:status>HTTP/1.1 423 Locked</D:status>")
            && text.contains(
                "<D:href>/shared/</D:href><D:status>HTTP/1.1 424 Failed Dependency</D:status>"
            ),
        "{text}"
    );
    assert!(res.header("lock-token").is_none());

    // A depth-0 lock on a folder: its members' content is free, its membership not.
    let folder = lock(&server, "/members/", "exclusive", "0");
    assert_eq!(
        dav(&server, "PUT", "/members/kept.txt", &[], "v2").status,
        204
    );
    let update = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>\
                  <z:note xmlns:z=\"urn:z\">1</z:note></D:prop></D:set></D:propertyupdate>";
    assert_eq!(
        dav(&server, "PROPPATCH", "/members/kept.txt", &[], update).status,
        207
    );
    // 423 names the lock in the way (RFC 4918 §16).
    let res = dav(&server, "PUT", "/members/new.txt", &[], "x");
    assert_eq!(res.status, 423);
    assert!(
        res.body_text().contains(
            "<D:lock-token-submitted><D:href>/members/</D:href></D:lock-token-submitted>"
        ),
        "{}",
        res.body_text()
    );
    let info = "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/>\
                </D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>";
    let res = dav(&server, "LOCK", "/members/", &[], info);
    assert_eq!(res.status, 423);
    assert!(
        res.body_text()
            .contains("<D:no-conflicting-lock><D:href>/members/</D:href></D:no-conflicting-lock>"),
        "{}",
        res.body_text()
    );
    assert_eq!(
        dav(&server, "DELETE", "/members/kept.txt", &[], "").status,
        423
    );
    // Nor may a folder PUT makes on the way join it without the token.
    let res = dav(&server, "PUT", "/members/made/new.txt", &[], "x");
    assert_eq!(res.status, 423);
    assert!(
        res.body_text().contains("<D:href>/members/</D:href>"),
        "{}",
        res.body_text()
    );
    assert!(!root.join("members/made").exists());
    // The token is the folder's: a list tagged with it (RFC 4918 §10.4.3).
    let condition = format!("</members/> ({folder})");
    let res = dav(
        &server,
        "PUT",
        "/members/made/new.txt",
        &[("If", &condition)],
        "x",
    );
    assert_eq!(res.status, 201);
    let res = dav(
        &server,
        "PUT",
        "/members/new.txt",
        &[("If", &condition)],
        "x",
    );
    assert_eq!(res.status, 201);

    // tus: a new member of a locked folder, at creation.
    let guard = lock(&server, "/guarded/", "exclusive", "infinity");
    let tus = [
        ("Tus-Resumable", "1.0.0"),
        ("Upload-Length", "3"),
        ("Upload-Metadata", "filename dHVzLnR4dA=="),
    ];
    assert_eq!(dav(&server, "POST", "/guarded/", &tus, "").status, 423);
    let condition = format!("({guard})");
    let mut with_token = tus.to_vec();
    with_token.push(("If", &condition));
    assert_eq!(
        dav(&server, "POST", "/guarded/", &with_token, "").status,
        201
    );
    assert!(!root.join("guarded/tus.txt").exists());

    // A refresh names its lock in If; a LOCK with neither a body nor an If is
    // malformed.
    assert_eq!(dav(&server, "LOCK", "/guarded/", &[], "").status, 400);
    // A refresh: more time, and no Lock-Token, which the client has (§9.10.2).
    let condition = format!("({guard})");
    let res = dav(&server, "LOCK", "/guarded/", &[("If", &condition)], "");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("lock-token"), None);
    assert!(
        res.body_text().contains("<D:activelock>"),
        "{}",
        res.body_text()
    );
}

/// A LOCK answers to the request's preconditions as any method does (RFC 9110
/// §13.2.1), makes no file of a name ending in `/`, and reports the time a lock
/// has left (RFC 4918 §14.29).
#[test]
fn lock_checks_preconditions_and_names() {
    let (_tmp, root) = temp_root();
    write_file(&root, "doc.txt", "v1");
    let server = Server::start(&root, &["--upload"]);
    let info = "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/>\
                </D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>";
    let refused = [
        ("/new.txt", ("If-Match", "*")),
        ("/doc.txt", ("If-Match", "\"wrong\"")),
        ("/doc.txt", ("If-None-Match", "*")),
        (
            "/doc.txt",
            ("If-Unmodified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"),
        ),
    ];
    for (path, condition) in refused {
        let res = dav(&server, "LOCK", path, &[condition], info);
        assert_eq!(res.status, 412, "{path} {condition:?}");
    }
    assert!(!root.join("new.txt").exists());
    assert_eq!(dav(&server, "LOCK", "/folder/", &[], info).status, 409);
    assert!(!root.join("folder").exists());
    let res = dav(
        &server,
        "LOCK",
        "/doc.txt",
        &[("Timeout", "Second-100"), ("If-Match", "*")],
        info,
    );
    assert_eq!(res.status, 200);
    let text = res.body_text();
    let left: u64 = text
        .split("<D:timeout>Second-")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .and_then(|n| n.parse().ok())
        .expect("a timeout");
    assert!((1..=100).contains(&left), "{text}");
}

/// UNLOCK with a token that is not this resource's says which precondition
/// failed (RFC 4918 §9.11.1); a `Timeout` is read whatever its case.
#[test]
fn unlock_names_its_failed_precondition_and_timeouts_ignore_case() {
    let (_tmp, root) = temp_root();
    std::fs::write(root.join("a.txt"), "a").unwrap();
    std::fs::write(root.join("b.txt"), "b").unwrap();
    let server = Server::start(&root, &["--upload"]);
    let token = lock(&server, "/a.txt", "exclusive", "0");
    let res = dav(&server, "UNLOCK", "/b.txt", &[("Lock-Token", &token)], "");
    assert_eq!(res.status, 409);
    assert!(
        res.body_text()
            .contains("<D:lock-token-matches-request-uri"),
        "{}",
        res.body_text()
    );
    let info = "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/>\
                </D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>";
    let res = dav(
        &server,
        "LOCK",
        "/b.txt",
        &[("Timeout", "second-100")],
        info,
    );
    assert_eq!(res.status, 200);
    assert!(
        res.body_text()
            .contains("<D:timeout>Second-100</D:timeout>"),
        "{}",
        res.body_text()
    );
}

/// A COPY changes nothing at its source: a lock on the source's folder neither
/// stops it nor is named when a lock on the destination does (RFC 4918 §7.5,
/// `lock-token-submitted` names the locked resource).
#[test]
fn a_copy_answers_only_to_the_destinations_lock() {
    let (_tmp, root) = temp_root();
    write_file(&root, "w/b.txt", "b");
    write_file(&root, "dst.txt", "old");
    let server = Server::start(&root, &["--upload"]);
    let folder_token = lock(&server, "/w/", "shared", "infinity");
    let copied = dav(
        &server,
        "COPY",
        "/w/b.txt",
        &[("Destination", "http://localhost/free.txt")],
        "",
    );
    assert_eq!(copied.status, 201, "{}", copied.body_text());
    let dst_token = lock(&server, "/dst.txt", "exclusive", "0");
    for if_header in [None, Some(format!("</w/> ({folder_token})"))] {
        let mut headers = vec![("Destination", "http://localhost/dst.txt")];
        if let Some(value) = &if_header {
            headers.push(("If", value.as_str()));
        }
        let res = dav(&server, "COPY", "/w/b.txt", &headers, "");
        assert_eq!(res.status, 423, "{if_header:?}");
        let text = res.body_text();
        assert!(
            text.contains("<D:lock-token-submitted><D:href>/dst.txt</D:href>"),
            "{if_header:?}: {text}"
        );
    }
    let res = dav(
        &server,
        "COPY",
        "/w/b.txt",
        &[
            ("Destination", "http://localhost/dst.txt"),
            ("If", &format!("</dst.txt> ({dst_token})")),
        ],
        "",
    );
    assert_eq!(res.status, 204, "{}", res.body_text());
    assert_eq!(std::fs::read_to_string(root.join("dst.txt")).unwrap(), "b");
}

/// A `Destination` with raw UTF-8 names what its percent-encoded form names, as
/// the same bytes in a request line do (nginx and Apache take both); bytes that
/// are not UTF-8, control characters and userinfo are still malformed.
#[test]
fn a_destination_in_raw_utf_8_is_taken() {
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let server = Server::start(&root, &["--upload"]);
    for (dest, name) in [
        ("http://localhost/caf\u{e9}.txt", "caf\u{e9}.txt"),
        ("/r\u{e9}sum\u{e9} 2.txt", "r\u{e9}sum\u{e9} 2.txt"),
        ("/%C3%BC.txt", "\u{fc}.txt"),
    ] {
        let res = dav(&server, "COPY", "/a.txt", &[("Destination", dest)], "");
        assert_eq!(res.status, 201, "{dest}");
        assert_eq!(std::fs::read_to_string(root.join(name)).unwrap(), "a");
    }
    for bad in [
        &b"/\xe9.txt"[..],
        b"/a\tb.txt",
        b"http://evil\\@localhost/x.txt",
        b"http://u@localhost/x.txt",
    ] {
        let mut req = b"COPY /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                        Destination: "
            .to_vec();
        req.extend_from_slice(bad);
        req.extend_from_slice(b"\r\n\r\n");
        assert_eq!(server.exchange(&req, false).status, 400, "{bad:?}");
    }
}

/// A PROPPATCH is all or nothing (RFC 4918 §9.2): when one property cannot be
/// stored (too large for any file system's extended attributes), the changes made
/// before it are undone, as the 424s say.
#[test]
fn a_proppatch_that_fails_part_way_changes_nothing() {
    let (_tmp, root) = temp_root();
    std::fs::write(root.join("doc.txt"), "v1").unwrap();
    let server = Server::start(&root, &["--upload"]);
    let update = |body: &str| {
        let xml = format!(
            "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:z\">\
             {body}</D:propertyupdate>"
        );
        dav(&server, "PROPPATCH", "/doc.txt", &[], &xml)
    };
    let first = update("<D:set><D:prop><Z:keep>old</Z:keep><Z:gone>here</Z:gone></D:prop></D:set>");
    assert!(
        first.body_text().contains("200 OK"),
        "{}",
        first.body_text()
    );
    let huge = "A".repeat(70_000);
    let res = update(&format!(
        "<D:set><D:prop><Z:keep>new</Z:keep><Z:fresh>x</Z:fresh></D:prop></D:set>\
         <D:remove><D:prop><Z:gone/></D:prop></D:remove>\
         <D:set><D:prop><Z:huge>{huge}</Z:huge></D:prop></D:set>"
    ));
    assert_eq!(res.status, 207);
    let text = res.body_text();
    assert_eq!(text.matches("424 Failed Dependency").count(), 3, "{text}");
    assert!(text.contains("507 Insufficient Storage"), "{text}");
    let found = propfind(
        &server,
        "/doc.txt",
        Some("0"),
        "<D:prop xmlns:Z=\"urn:z\"><Z:keep/><Z:gone/><Z:fresh/><Z:huge/></D:prop>",
    );
    let text = found.body_text();
    assert!(text.contains(">old</"), "{text}");
    assert!(text.contains(">here</"), "{text}");
    assert!(!text.contains(">x</") && !text.contains(">new</"), "{text}");
}

/// Every `response` in a multistatus carries a propstat or a status (RFC 4918
/// §14.24), also when the request named no property.
#[test]
fn a_request_naming_no_property_still_gets_a_propstat() {
    let (_tmp, root) = temp_root();
    std::fs::write(root.join("doc.txt"), "v1").unwrap();
    let server = Server::start(&root, &["--upload"]);
    let found = propfind(&server, "/doc.txt", Some("0"), "<D:prop/>");
    let patched = dav(
        &server,
        "PROPPATCH",
        "/doc.txt",
        &[],
        "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop/></D:set>\
         </D:propertyupdate>",
    );
    for res in [found, patched] {
        assert_eq!(res.status, 207);
        let text = res.body_text();
        assert!(
            text.contains("<D:propstat>") && text.contains("HTTP/1.1 200 OK"),
            "{text}"
        );
    }
}

/// `displayname` is the client's to set (RFC 4918 §15.2); a computed property is
/// refused with the reason §9.2 names; a `propfind` naming nothing is malformed.
#[test]
fn proppatch_sets_displayname_and_explains_refusals() {
    let (_tmp, root) = temp_root();
    std::fs::write(root.join("doc.txt"), "v1").unwrap();
    let server = Server::start(&root, &["--upload"]);
    let set = |inner: &str| {
        let xml = format!(
            "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>{inner}\
             </D:prop></D:set></D:propertyupdate>"
        );
        dav(&server, "PROPPATCH", "/doc.txt", &[], &xml)
    };
    let res = set("<D:displayname>Report &amp; notes</D:displayname>");
    assert_eq!(res.status, 207);
    assert!(
        res.body_text().contains("HTTP/1.1 200 OK"),
        "{}",
        res.body_text()
    );
    for body in ["<D:prop><D:displayname/></D:prop>", "<D:allprop/>"] {
        let res = propfind(&server, "/doc.txt", Some("0"), body);
        assert_eq!(res.status, 207);
        let text = res.body_text();
        assert!(
            text.contains("<D:displayname>Report &amp; notes</D:displayname>"),
            "{text}"
        );
        assert_eq!(text.matches("displayname>").count(), 2, "{text}");
    }
    // The language a value was set in comes back with it (RFC 4918 §14.26).
    let xml = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set>\
               <D:prop xml:lang=\"fr\"><D:displayname>Rapport</D:displayname>\
               <Z:title xmlns:Z=\"urn:z\" xml:lang=\"en-GB\">Colour</Z:title></D:prop>\
               </D:set></D:propertyupdate>";
    assert_eq!(dav(&server, "PROPPATCH", "/doc.txt", &[], xml).status, 207);
    let ask = "<D:prop><D:displayname/><Z:title xmlns:Z=\"urn:z\"/></D:prop>";
    for body in [ask, "<D:allprop/>"] {
        let text = propfind(&server, "/doc.txt", Some("0"), body).body_text();
        assert!(
            text.contains("<D:displayname xml:lang=\"fr\">Rapport</D:displayname>"),
            "{text}"
        );
        assert!(
            text.contains("<P:title xmlns:P=\"urn:z\" xml:lang=\"en-GB\">Colour</P:title>"),
            "{text}"
        );
        assert_eq!(text.matches("displayname").count(), 2, "{text}");
    }

    let res = set("<D:getetag>\"x\"</D:getetag>");
    assert_eq!(res.status, 207);
    let text = res.body_text();
    assert!(text.contains("HTTP/1.1 403 Forbidden"), "{text}");
    assert!(
        text.contains("<D:cannot-modify-protected-property/>"),
        "{text}"
    );

    assert_eq!(propfind(&server, "/doc.txt", Some("0"), "").status, 400);
}

/// Two names of one file or folder (a symlink inside the root) are one resource:
/// a copy or move of one onto the other, or of a folder into itself by another
/// name, is refused, and nothing is lost (RFC 4918 §9.8.5).
#[test]
fn copy_and_move_see_through_links_to_the_same_thing() {
    let (_t, root) = temp_root();
    write_file(&root, "release.tgz", "the release");
    std::os::unix::fs::symlink("release.tgz", root.join("latest.tgz")).unwrap();
    write_file(&root, "loop/a/f.txt", "f");
    std::os::unix::fs::symlink("loop", root.join("alias")).unwrap();
    let server = Server::start(&root, &["--upload", "--delete"]);
    let to = |path: &str| format!("http://localhost{path}");
    for method in ["COPY", "MOVE"] {
        let onto_itself = dav(
            &server,
            method,
            "/latest.tgz",
            &[("Destination", &to("/release.tgz"))],
            "",
        );
        assert_eq!(onto_itself.status, 403, "{method}");
        assert_eq!(
            std::fs::read_to_string(root.join("release.tgz")).unwrap(),
            "the release",
            "{method}"
        );
        let into_itself = dav(
            &server,
            method,
            "/loop/",
            &[("Destination", &to("/alias/inner/"))],
            "",
        );
        assert_eq!(into_itself.status, 403, "{method}");
        assert!(!root.join("loop/inner").exists(), "{method}");
        // Over a folder that holds the source, by another name.
        let over_its_folder = dav(
            &server,
            method,
            "/loop/a/f.txt",
            &[("Destination", &to("/alias"))],
            "",
        );
        assert_eq!(over_its_folder.status, 403, "{method}");
        assert_eq!(
            std::fs::read_to_string(root.join("loop/a/f.txt")).unwrap(),
            "f"
        );
    }
    // The server is still there.
    assert_eq!(get(&server, "/release.tgz").status, 200);
}

/// A folder's copy holds what PROPFIND lists in it: a symlinked member inside the
/// root is copied as what it names (as a COPY of it alone is); a link to a folder
/// that holds it (`.`, `..`) is left out rather than copied without end, and so
/// are links that name nothing readable.
#[test]
fn a_folder_copy_takes_its_linked_members() {
    let (_t, root) = temp_root();
    write_file(&root, "a.txt", "outside the folder");
    write_file(&root, "site/ok.txt", "ok");
    write_file(&root, "shared/lib/x.js", "x");
    std::os::unix::fs::symlink("ok.txt", root.join("site/inlink")).unwrap();
    std::os::unix::fs::symlink("../a.txt", root.join("site/uplink")).unwrap();
    std::os::unix::fs::symlink("../shared/lib", root.join("site/lib")).unwrap();
    std::os::unix::fs::symlink("..", root.join("site/up")).unwrap();
    std::os::unix::fs::symlink(".", root.join("site/self")).unwrap();
    std::os::unix::fs::symlink("missing", root.join("site/dangling")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("site/etc")).unwrap();
    let server = Server::start(&root, &["--upload", "--delete"]);
    let copied = dav(
        &server,
        "COPY",
        "/site/",
        &[("Destination", "http://localhost/copy/")],
        "",
    );
    assert_eq!(copied.status, 201, "{}", copied.body_text());
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    assert_eq!(read("copy/ok.txt").as_deref(), Some("ok"));
    assert_eq!(read("copy/inlink").as_deref(), Some("ok"));
    assert_eq!(read("copy/uplink").as_deref(), Some("outside the folder"));
    assert_eq!(read("copy/lib/x.js").as_deref(), Some("x"));
    // Copies, not links: changing the copy leaves the original alone.
    assert!(!root.join("copy/inlink").is_symlink());
    assert!(!root.join("copy/lib").is_symlink());
    for left_out in ["self", "up", "dangling", "etc"] {
        assert!(
            std::fs::symlink_metadata(root.join("copy").join(left_out)).is_err(),
            "{left_out}"
        );
    }
    assert_eq!(get(&server, "/copy/inlink").status, 200);

    // Folders linked to one another, each to the next twice: copied along every
    // path through them, the last would be copied 2^6 times. Each folder is
    // copied under a few names at most.
    for i in 0..7 {
        std::fs::create_dir(root.join(format!("c{i}"))).unwrap();
        if i < 6 {
            for link in ["a", "b"] {
                let to = format!("../c{}", i + 1);
                std::os::unix::fs::symlink(to, root.join(format!("c{i}/{link}"))).unwrap();
            }
        }
    }
    write_file(&root, "c6/f.txt", "f");
    let copied = dav(
        &server,
        "COPY",
        "/c0/",
        &[("Destination", "http://localhost/chain/")],
        "",
    );
    assert_eq!(copied.status, 201);
    let mut found = 0;
    let mut todo = vec![root.join("chain")];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                todo.push(entry.path());
            } else if entry.file_name() == "f.txt" {
                found += 1;
            }
        }
    }
    assert!((1..=4).contains(&found), "{found} copies of c6/f.txt");
}

/// What `dir` holds that a write left under a temporary name.
fn temporaries_in(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".wharf-tmp-") {
                found.push(entry.path().display().to_string());
            } else if entry.file_type().unwrap().is_dir() {
                todo.push(entry.path());
            }
        }
    }
    found
}

/// A copy is built under a temporary name and put in place in one step: of copies
/// racing to one new name without overwriting, one wins and the rest get 412
/// (RFC 4918 §10.6); a copy that fails leaves the destination as it was; one that
/// replaces a folder or a locked file leaves nothing of the old behind.
#[test]
fn copies_appear_whole_or_not_at_all() {
    let (_t, root) = temp_root();
    for i in 0..10 {
        write_file(&root, &format!("src{i}.txt"), format!("source {i}"));
    }
    let server = Server::start(&root, &["--upload", "--delete"]);
    let to = |path: &str| format!("http://localhost{path}");
    let statuses: Vec<(usize, u16)> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..10)
            .map(|i| {
                let (server, dest) = (&server, to("/won.txt"));
                s.spawn(move || {
                    let headers = [("Destination", dest.as_str()), ("Overwrite", "F")];
                    let res = dav(server, "COPY", &format!("/src{i}.txt"), &headers, "");
                    (i, res.status)
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let winners: Vec<usize> = statuses
        .iter()
        .filter(|(_, status)| *status == 201)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|(_, s)| [201, 412].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("won.txt")).unwrap(),
        format!("source {}", winners[0])
    );

    // A tree too deep to copy fails before the destination changes.
    let deep: std::path::PathBuf = std::iter::repeat_n("d", 300).collect();
    std::fs::create_dir_all(root.join("deep").join(&deep)).unwrap();
    write_file(&root, "keep/important.txt", "kept");
    let res = dav(
        &server,
        "COPY",
        "/deep/",
        &[("Destination", &to("/keep/"))],
        "",
    );
    assert!(res.status >= 400, "{}", res.status);
    assert_eq!(
        std::fs::read_to_string(root.join("keep/important.txt")).unwrap(),
        "kept"
    );
    assert!(!root.join("keep/d").exists());
    assert_eq!(temporaries_in(&root), Vec::<String>::new());

    // A folder replaces a folder, and a file a folder, whole.
    write_file(&root, "tree/new.txt", "new");
    let res = dav(
        &server,
        "COPY",
        "/tree/",
        &[("Destination", &to("/keep/"))],
        "",
    );
    assert_eq!(res.status, 204);
    assert!(!root.join("keep/important.txt").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("keep/new.txt")).unwrap(),
        "new"
    );
    let res = dav(
        &server,
        "COPY",
        "/src1.txt",
        &[("Destination", &to("/keep"))],
        "",
    );
    assert_eq!(res.status, 204);
    assert_eq!(
        std::fs::read_to_string(root.join("keep")).unwrap(),
        "source 1"
    );
    assert_eq!(temporaries_in(&root), Vec::<String>::new());

    // A locked file replaced with its token takes its lock with it.
    let token = lock(&server, "/won.txt", "exclusive", "0");
    // Tagged: an untagged list would be the source's (RFC 4918 §10.4.3).
    let if_header = format!("<{}> ({token})", to("/won.txt"));
    let res = dav(
        &server,
        "COPY",
        "/src2.txt",
        &[("Destination", &to("/won.txt")), ("If", &if_header)],
        "",
    );
    assert_eq!(res.status, 204);
    let put = dav(&server, "PUT", "/won.txt", &[], "unlocked now");
    assert_eq!(put.status, 204);
}

/// A body that is not one well-formed XML document is 400 and changes nothing
/// (XML 1.0 §2.1, §2.2), where the elements a method reads would be there.
#[test]
fn bodies_that_are_not_one_xml_document_are_400() {
    let (_t, root) = temp_root();
    write_file(&root, "t.txt", "t");
    let server = Server::start(&root, &["--upload", "--delete"]);
    let update = |name: &str| {
        format!(
            "<D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:z\"><D:set><D:prop><Z:{name}>1</Z:{name}>\
             </D:prop></D:set></D:propertyupdate>"
        )
    };
    for body in [
        format!("{}{}", update("r1"), update("r2")),
        format!("junk<?xml version=\"1.0\"?>{}", update("r3")),
        update("r4").replace(">1<", ">&#x1;<"),
        // No `set` or `remove` (RFC 4918 §14.19: one or more).
        "<D:propertyupdate xmlns:D=\"DAV:\"/>".to_string(),
        "<D:propertyupdate xmlns:D=\"DAV:\"></D:propertyupdate>".to_string(),
    ] {
        let res = dav(&server, "PROPPATCH", "/t.txt", &[], &body);
        assert_eq!(res.status, 400, "{body}");
    }
    let found = propfind(&server, "/t.txt", Some("0"), "");
    for name in ["r1", "r2", "r3", "r4"] {
        assert!(
            !found.body_text().contains(&format!("{name}>")),
            "{name} stored"
        );
    }
    let two = "<D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind><D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>";
    assert_eq!(propfind(&server, "/t.txt", Some("0"), two).status, 400);
}

/// A folder's DELETE goes on past a member it cannot remove, and names each such
/// member in a 207 (RFC 4918 §9.6.1), never the folders left only to hold them.
#[test]
fn a_delete_that_leaves_members_names_them() {
    let (_t, root) = temp_root();
    for i in 0..5 {
        write_file(&root, &format!("box/f{i}.txt"), "f");
    }
    std::fs::create_dir_all(root.join("box/inner/stuck")).unwrap();
    let stuck = root.join("box/inner/stuck");
    let Some(_mounted) = mount_tmpfs(&stuck, "ro,size=64k") else {
        return;
    };
    let server = Server::start(&root, &["--upload", "--delete"]);
    let res = dav(&server, "DELETE", "/box/", &[], "");
    assert_eq!(res.status, 207);
    let text = res.body_text();
    assert!(text.contains("<D:href>/box/inner/stuck</D:href>"), "{text}");
    assert_eq!(text.matches("<D:response>").count(), 1, "{text}");
    for i in 0..5 {
        assert!(!root.join(format!("box/f{i}.txt")).exists(), "f{i}");
    }
    // A file alone is its own answer.
    write_file(&root, "gone.txt", "g");
    assert_eq!(dav(&server, "DELETE", "/gone.txt", &[], "").status, 204);

    // A MOVE over a folder deletes it first (RFC 4918 §9.9.3): members that stay
    // are named as a DELETE names them, and the source stays where it was.
    write_file(&root, "new/n.txt", "n");
    write_file(&root, "box/kept.txt", "k");
    let res = dav(
        &server,
        "MOVE",
        "/new/",
        &[("Destination", "http://localhost/box/")],
        "",
    );
    assert_eq!(res.status, 207);
    let text = res.body_text();
    assert!(text.contains("<D:href>/box/inner/stuck</D:href>"), "{text}");
    assert_eq!(text.matches("<D:response>").count(), 1, "{text}");
    assert_eq!(
        std::fs::read_to_string(root.join("new/n.txt")).unwrap(),
        "n"
    );
    assert!(!root.join("box/n.txt").exists());
}
