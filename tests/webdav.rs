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
    // Without writes there is no WebDAV.
    let plain = Server::start(&root, &[]);
    assert_eq!(
        request(&plain, "PROPFIND", "/dir/", &[("Depth", "1")]).status,
        501
    );
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
