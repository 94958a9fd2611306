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
