//! Nothing outside the root (or hidden inside it) is ever served.

mod common;

use common::*;
use std::os::unix::fs::symlink;

const SECRET: &str = "TOPSECRET";

/// tmp/secret.txt and tmp/outside/secret2.txt live outside tmp/root.
fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, root) = temp_root();
    write_file(tmp.path(), "secret.txt", SECRET);
    write_file(tmp.path(), "outside/secret2.txt", SECRET);
    write_file(&root, "a.txt", "hello");
    write_file(&root, "sub/b.txt", "bee");
    write_file(&root, ".env", "DOTENV");
    write_file(&root, ".git/config", "[core]");
    write_file(&root, ".well-known/x.txt", "well known");
    symlink("../secret.txt", root.join("rel_secret_link")).unwrap();
    symlink(tmp.path().join("secret.txt"), root.join("abs_secret_link")).unwrap();
    symlink("a.txt", root.join("alias.txt")).unwrap();
    symlink("../a.txt", root.join("sub/up_alias.txt")).unwrap();
    symlink("../outside", root.join("outdir")).unwrap();
    (tmp, root)
}

fn assert_refused(response: &Response, what: &str) {
    assert!(
        matches!(response.status, 400 | 404),
        "{what}: expected 400 or 404, got {}",
        response.status
    );
    assert!(
        !response.body_text().contains(SECRET),
        "{what}: secret leaked in body"
    );
}

fn raw_get(server: &Server, target: &str) -> Response {
    server.exchange(&request_bytes("GET", target, &[]), false)
}

#[test]
fn traversal_attempts_never_escape_root() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    let targets = [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/%252e%252e/secret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/./../secret.txt",
        "/../../../../../../../../etc/passwd",
        "/%c0%ae%c0%ae/secret.txt",
        "/..;/secret.txt",
        "http://localhost/../secret.txt",
        "http://localhost/%2e%2e/secret.txt",
    ];
    for target in targets {
        assert_refused(&raw_get(&server, target), target);
    }
}

#[test]
fn nul_byte_in_path_is_bad_request() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    let response = get(&server, "/a.txt%00.html");
    assert_eq!(response.status, 400);
    assert!(!response.body_text().contains("hello"));
}

#[test]
fn symlink_to_outside_file_is_not_followed_by_default() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    for path in ["/rel_secret_link", "/abs_secret_link"] {
        let response = get(&server, path);
        assert_eq!(response.status, 404, "{path}");
        assert!(!response.body_text().contains(SECRET), "{path}");
    }
}

#[test]
fn follow_symlinks_flag_serves_outside_target() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &["--follow-symlinks"]);
    for path in ["/rel_secret_link", "/abs_secret_link"] {
        let response = get(&server, path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.body_text(), SECRET, "{path}");
    }
}

#[test]
fn symlink_within_root_is_served() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    for path in ["/alias.txt", "/sub/up_alias.txt"] {
        let response = get(&server, path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.body, b"hello", "{path}");
    }
}

/// A link whose path leaves the root but ends inside it (absolute, or out and back
/// in) is inside: served and listed. One ending beside the root, in a folder whose
/// name only starts like the root's, is not.
#[test]
fn symlink_leaving_and_reentering_root_is_served() {
    let (tmp, root) = fixture();
    let name = root.file_name().unwrap().to_str().unwrap().to_string();
    write_file(tmp.path(), &format!("{name}-beside/secret.txt"), SECRET);
    symlink(root.join("a.txt"), root.join("abs_alias.txt")).unwrap();
    symlink(format!("../{name}/a.txt"), root.join("out_and_in.txt")).unwrap();
    symlink(root.join("sub"), root.join("abs_sub")).unwrap();
    symlink(
        tmp.path().join(format!("{name}-beside/secret.txt")),
        root.join("beside_link"),
    )
    .unwrap();
    let server = Server::start(&root, &[]);
    for (path, body) in [
        ("/abs_alias.txt", "hello"),
        ("/out_and_in.txt", "hello"),
        ("/abs_sub/b.txt", "bee"),
    ] {
        let response = get(&server, path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.body_text(), body, "{path}");
    }
    assert_refused(&get(&server, "/beside_link"), "/beside_link");
    let listing = request(&server, "GET", "/", &[("Accept", "application/json")]);
    let text = listing.body_text();
    for listed in ["abs_alias.txt", "out_and_in.txt", "abs_sub"] {
        assert!(text.contains(listed), "{listed} not listed: {text}");
    }
    assert!(!text.contains("beside_link"), "{text}");
}

#[test]
fn symlinked_directory_leaving_root_is_not_served() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    let response = get(&server, "/outdir/secret2.txt");
    assert_eq!(response.status, 404);
    assert!(!response.body_text().contains(SECRET));
    let listing = get(&server, "/outdir/");
    assert_ne!(listing.status, 200, "listing of a directory outside root");
    assert!(!listing.body_text().contains("secret2.txt"));
}

/// A folder whose index page is there but cannot be served (here a symlink out of
/// the root) is not listed or archived instead: its contents stay off show.
#[test]
fn a_folder_with_an_index_that_cannot_be_served_is_not_listed() {
    let (tmp, root) = fixture();
    write_file(&root, "site/private.txt", "not on show");
    symlink(tmp.path().join("secret.txt"), root.join("site/index.html")).unwrap();
    let server = Server::start(&root, &[]);
    for target in ["/site/", "/site/?zip"] {
        let res = get(&server, target);
        assert_eq!(res.status, 403, "{target}");
        let body = res.body_text();
        assert!(
            !body.contains("private.txt") && !body.contains(SECRET),
            "{target}: {body}"
        );
    }
    assert_eq!(get(&server, "/site/private.txt").status, 200);
    // A symlink to nothing is no index: the folder is listed (or its next index
    // served), as nginx and CPython do.
    write_file(&root, "broken/a.txt", "listed");
    symlink(root.join("nowhere"), root.join("broken/index.html")).unwrap();
    write_file(&root, "next/index.htm", "the next index");
    symlink(root.join("nowhere"), root.join("next/index.html")).unwrap();
    let server = Server::start(&root, &[]);
    let res = get(&server, "/broken/");
    assert_eq!(res.status, 200);
    assert!(res.body_text().contains("a.txt"));
    assert_eq!(get(&server, "/next/").body_text(), "the next index");
}

#[test]
fn dotfiles_are_hidden_by_default() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    for path in ["/.env", "/.git/config", "/.git/", "/%2eenv", "/sub/../.env"] {
        let response = raw_get(&server, path);
        assert!(
            matches!(response.status, 400 | 404),
            "{path}: got {}",
            response.status
        );
        assert!(!response.body_text().contains("DOTENV"), "{path}");
    }
    let listing = get(&server, "/").body_text();
    assert!(!listing.contains(".env"), "root listing shows .env");
    assert!(!listing.contains(".git"), "root listing shows .git");
    assert!(listing.contains("a.txt"), "root listing lacks a.txt");
}

#[test]
fn well_known_is_served() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &[]);
    let response = get(&server, "/.well-known/x.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"well known");
}

#[test]
fn hidden_flag_serves_and_lists_dotfiles() {
    let (_tmp, root) = fixture();
    let server = Server::start(&root, &["--hidden"]);
    let response = get(&server, "/.env");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"DOTENV");
    let listing = get(&server, "/").body_text();
    assert!(listing.contains(".env"), "listing with --hidden lacks .env");
}

#[test]
fn root_itself_is_resolved_safely_when_given_with_dots() {
    // ROOT given as a path containing `..` still confines requests to it.
    let (tmp, _root) = fixture();
    let dotted = tmp.path().join("outside/../root");
    let server = Server::start(&dotted, &[]);
    assert_eq!(get(&server, "/a.txt").body, b"hello");
    assert_refused(&raw_get(&server, "/../secret.txt"), "dotted root");
}
