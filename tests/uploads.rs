//! Writes: PUT, form uploads, DELETE, MKCOL, COPY, MOVE — every status the write side
//! promises, atomicity, failures that leave nothing behind, and bounded memory.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use common::*;

/// `METHOD path` with `body` and `headers`, on a fresh connection.
fn send(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    let has_length = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    if !has_length {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    server.exchange(&bytes, method == "HEAD")
}

fn put(server: &Server, path: &str, body: &[u8]) -> Response {
    send(server, "PUT", path, &[], body)
}

/// The reserved temporary files left in `dir`.
fn temps_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".wharf-tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

fn writable(root: &Path) -> Server {
    Server::start(root, &["--upload", "--delete"])
}

#[test]
fn put_creates_then_replaces_with_content_etags() {
    let (_t, root) = temp_root();
    let server = writable(&root);
    let created = put(&server, "/docs/new/a.txt", b"hello");
    assert_eq!(created.status, 201);
    assert_eq!(
        created.header("location").as_deref(),
        Some("/docs/new/a.txt")
    );
    let etag = created.header("etag").expect("an ETag");
    assert_eq!(
        std::fs::read(root.join("docs/new/a.txt")).unwrap(),
        b"hello"
    );
    let got = get(&server, "/docs/new/a.txt");
    assert_eq!(got.body, b"hello");
    assert_eq!(
        got.header("etag"),
        Some(etag.clone()),
        "GET carries the tag PUT gave"
    );

    let replaced = put(&server, "/docs/new/a.txt", b"world!");
    assert_eq!(replaced.status, 204);
    assert_ne!(replaced.header("etag"), Some(etag));
    assert_eq!(
        replaced.header("content-length"),
        None,
        "a 204 has no length"
    );
    assert_eq!(get(&server, "/docs/new/a.txt").body, b"world!");
    assert!(temps_in(&root.join("docs/new")).is_empty());
}

/// A file too large to hash for its tag: PUT answers with the tag GET sends.
#[test]
fn put_of_a_large_file_gives_the_tag_get_sends() {
    let (_t, root) = temp_root();
    let server = writable(&root);
    let body = pseudo_random_bytes(9, 17 * 1024 * 1024);
    let created = put(&server, "/big.bin", &body);
    assert_eq!(created.status, 201);
    let tag = created.header("etag").expect("an ETag");
    let got = request(&server, "HEAD", "/big.bin", &[]);
    assert_eq!(got.header("etag"), Some(tag.clone()));
    let replaced = put(&server, "/big.bin", &body[1..]);
    assert_eq!(replaced.status, 204);
    let new_tag = replaced.header("etag").expect("an ETag");
    assert_ne!(new_tag, tag);
    assert_eq!(
        request(&server, "HEAD", "/big.bin", &[]).header("etag"),
        Some(new_tag)
    );
}

/// A replaced file keeps its permissions: a private one stays private, a program
/// stays runnable.
#[test]
fn a_replaced_file_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (_t, root) = temp_root();
    let server = writable(&root);
    for mode in [0o600, 0o755, 0o640] {
        let name = format!("f{mode:o}.txt");
        write_file(&root, &name, "old");
        std::fs::set_permissions(root.join(&name), std::fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(put(&server, &format!("/{name}"), b"new").status, 204);
        let meta = std::fs::metadata(root.join(&name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
        assert_eq!(std::fs::read(root.join(&name)).unwrap(), b"new");
    }
}

#[test]
fn writes_need_the_flags() {
    let (_t, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let server = Server::start(&root, &[]);
    let res = put(&server, "/a.txt", b"x");
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow").as_deref(), Some("GET, HEAD, OPTIONS"));
    assert_eq!(send(&server, "DELETE", "/a.txt", &[], b"").status, 405);
    let uploads_only = Server::start(&root, &["--upload"]);
    let res = send(&uploads_only, "DELETE", "/a.txt", &[], b"");
    assert_eq!(res.status, 405);
    assert!(!res.header("allow").unwrap().contains("DELETE"));
    assert_eq!(std::fs::read(root.join("a.txt")).unwrap(), b"a");
    let options = request(&uploads_only, "OPTIONS", "/", &[]);
    assert!(options.header("allow").unwrap().contains("PUT"));
    assert_eq!(options.header("dav").as_deref(), Some("1, 2"));
}

#[test]
fn put_preconditions_prevent_lost_updates() {
    let (_t, root) = temp_root();
    let server = writable(&root);
    let etag = put(&server, "/f.txt", b"one").header("etag").unwrap();
    let star = [("If-None-Match", "*")];
    assert_eq!(send(&server, "PUT", "/f.txt", &star, b"two").status, 412);
    assert_eq!(send(&server, "PUT", "/g.txt", &star, b"two").status, 201);
    let wrong = [("If-Match", "\"nope\"")];
    assert_eq!(send(&server, "PUT", "/f.txt", &wrong, b"two").status, 412);
    assert_eq!(
        send(&server, "PUT", "/missing.txt", &[("If-Match", "*")], b"x").status,
        412
    );
    let old = http_date(unix_time(1_000_000));
    let since = [("If-Unmodified-Since", old.as_str())];
    assert_eq!(send(&server, "PUT", "/f.txt", &since, b"two").status, 412);
    assert_eq!(std::fs::read(root.join("f.txt")).unwrap(), b"one");
    let right = [("If-Match", etag.as_str())];
    assert_eq!(send(&server, "PUT", "/f.txt", &right, b"two").status, 204);
    assert_eq!(std::fs::read(root.join("f.txt")).unwrap(), b"two");
}

#[test]
fn bad_puts_get_their_statuses() {
    let (_t, root) = temp_root();
    write_file(&root, "file.txt", "f");
    std::fs::create_dir(root.join("dir")).unwrap();
    let server = writable(&root);
    let range = [("Content-Range", "bytes 0-1/2")];
    assert_eq!(send(&server, "PUT", "/x.txt", &range, b"ab").status, 400);
    // Neither length nor chunks: the bytes after the head are no body (RFC 9112
    // §6.3), and the file must not be emptied for them.
    for version in ["1.1", "1.0"] {
        let raw =
            format!("PUT /file.txt HTTP/{version}\r\nHost: x\r\nConnection: close\r\n\r\nNEW");
        let res = server.exchange(raw.as_bytes(), false);
        assert_eq!(res.status, 411, "HTTP/{version} without Content-Length");
    }
    assert_eq!(put(&server, "/dir", b"x").status, 409, "onto a folder");
    assert_eq!(put(&server, "/dir/", b"x").status, 409);
    assert_eq!(put(&server, "/", b"x").status, 409);
    assert_eq!(
        put(&server, "/file.txt/child", b"x").status,
        409,
        "under a file"
    );
    assert_eq!(
        put(&server, "/a%2Fb", b"x").status,
        400,
        "a slash in a name"
    );
    assert_eq!(
        put(&server, "/bad%01name", b"x").status,
        400,
        "a control character"
    );
    assert_eq!(put(&server, "/bad%00name", b"x").status, 400, "a NUL");
    assert_eq!(
        put(&server, "/bad%C2%9Bname", b"x").status,
        400,
        "a C1 control character (U+009B)"
    );
    let long = format!("/{}", "n".repeat(256));
    assert_eq!(put(&server, &long, b"x").status, 414, "a name too long");
    assert_eq!(put(&server, "/.env", b"x").status, 403, "a dotfile");
    assert_eq!(
        put(&server, "/.wharf-tmp-1", b"x").status,
        403,
        "a reserved name"
    );
    assert!(!root.join(".env").exists());
    assert_eq!(std::fs::read(root.join("file.txt")).unwrap(), b"f");
    let hidden = Server::start(&root, &["--upload", "--hidden"]);
    assert_eq!(put(&hidden, "/.env", b"x").status, 201);
}

#[test]
fn oversized_bodies_are_refused_and_nothing_is_kept() {
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload", "--max-upload-size", "1000"]);
    // Announced too large: refused before any byte is read, so no 100 Continue.
    let mut conn = Conn::open(&server);
    conn.send(
        b"PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n",
    );
    let res = conn.read_response(false);
    assert_eq!(res.status, 413);
    // Chunked, crossing the limit on the way.
    let mut body = Vec::new();
    for _ in 0..3 {
        body.extend_from_slice(b"190\r\n");
        body.extend_from_slice(&[b'x'; 400]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let res = send(
        &server,
        "PUT",
        "/big",
        &[("Transfer-Encoding", "chunked")],
        &body,
    );
    assert_eq!(res.status, 413);
    assert!(!root.join("big").exists());
    assert!(
        poll_until(IO_TIMEOUT, || temps_in(&root).is_empty().then_some(())).is_some(),
        "temporary file left: {:?}",
        temps_in(&root)
    );
    // Within the limit, chunked: fine.
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    let res = send(
        &server,
        "PUT",
        "/small",
        &[("Transfer-Encoding", "chunked")],
        body,
    );
    assert_eq!(res.status, 201);
}

#[test]
fn continue_comes_only_after_auth_and_permission() {
    let (_t, root) = temp_root();
    let conf = root.parent().unwrap().join("wharf.toml");
    // The hash of "secret" is made by the binary itself.
    let hash = {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
            .arg("hash-password")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    std::fs::write(
        &conf,
        format!(
            "[users]\nalice = \"{hash}\"\n[[rule]]\npath = \"/in/\"\nupload = true\nauth = true\n"
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    let head = "PUT /in/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n";
    // No credentials: 401, and the body is never invited.
    let mut conn = Conn::open(&server);
    conn.send(format!("{head}\r\n").as_bytes());
    assert_eq!(conn.read_response(false).status, 401);
    // Not writable here: 405.
    let mut conn = Conn::open(&server);
    conn.send(
        b"PUT /out.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(conn.read_response(false).status, 405);
    // Authenticated and allowed: 100, then the body, then 201.
    let mut conn = Conn::open(&server);
    conn.send(format!("{head}Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n").as_bytes());
    let interim = conn.read_response(false);
    assert_eq!(interim.status, 100);
    conn.send(b"hello");
    assert_eq!(conn.read_response(false).status, 201);
    assert_eq!(std::fs::read(root.join("in/a.txt")).unwrap(), b"hello");
}

#[test]
fn delete_files_and_trees_but_never_the_root() {
    let (_t, root) = temp_root();
    write_file(&root, "a.txt", "a");
    write_file(&root, "tree/b/c.txt", "c");
    let server = writable(&root);
    assert_eq!(send(&server, "DELETE", "/a.txt", &[], b"").status, 204);
    assert!(!root.join("a.txt").exists());
    assert_eq!(send(&server, "DELETE", "/a.txt", &[], b"").status, 404);
    assert_eq!(send(&server, "DELETE", "/tree/", &[], b"").status, 204);
    assert!(!root.join("tree").exists());
    assert_eq!(send(&server, "DELETE", "/", &[], b"").status, 403);
    assert!(root.exists());
}

#[test]
fn mkcol_copy_and_move() {
    let (_t, root) = temp_root();
    write_file(&root, "src/f.txt", "data");
    let server = writable(&root);
    assert_eq!(send(&server, "MKCOL", "/made", &[], b"").status, 201);
    assert!(root.join("made").is_dir());
    let again = send(&server, "MKCOL", "/made", &[], b"");
    assert_eq!(again.status, 405);
    // Allow names what this resource takes, which MKCOL no longer is.
    let allow = again.header("allow").expect("Allow on a 405");
    assert!(
        allow.contains("PROPFIND") && !allow.contains("MKCOL"),
        "{allow}"
    );
    assert_eq!(
        send(&server, "MKCOL", "/src/f.txt", &[], b"").status,
        405,
        "a file is there"
    );
    assert_eq!(send(&server, "MKCOL", "/no/parent", &[], b"").status, 409);
    assert_eq!(send(&server, "MKCOL", "/withbody", &[], b"x").status, 415);

    let to = |p: &str| format!("http://localhost{p}");
    let copy = |dest: &str, extra: &[(&str, &str)]| {
        let d = to(dest);
        let mut h = vec![("Destination", d.as_str())];
        h.extend_from_slice(extra);
        send(&server, "COPY", "/src/", &h, b"")
    };
    let made = copy("/copy/", &[]);
    assert_eq!(made.status, 201);
    assert_eq!(made.header("location").as_deref(), Some("/copy/"));
    assert_eq!(std::fs::read(root.join("copy/f.txt")).unwrap(), b"data");
    // A file copied to a name with a slash is a file: Location names it as one.
    let file_copy = send(
        &server,
        "COPY",
        "/src/f.txt",
        &[("Destination", "/file-copy/")],
        b"",
    );
    assert_eq!(file_copy.status, 201);
    assert_eq!(file_copy.header("location").as_deref(), Some("/file-copy"));
    assert_eq!(get(&server, "/file-copy").body, b"data");
    assert_eq!(copy("/copy/", &[("Overwrite", "F")]).status, 412);
    assert_eq!(copy("/copy/", &[]).status, 204, "replaced");
    assert_eq!(copy("/src/inner/", &[]).status, 403, "into itself");
    assert_eq!(copy("/nowhere/x/", &[]).status, 409, "no parent");
    let other = [("Destination", "http://elsewhere.example/x")];
    assert_eq!(send(&server, "COPY", "/src/", &other, b"").status, 502);
    // Destinations that name nothing HTTP can reach, or no file may be called.
    for malformed in [
        "rel.txt",
        "copy/",
        "//localhost/x",
        "localhost",
        "htt://localhost/x",
        "ftp://localhost/x",
        "http://[zz]/x",
        "/y%0D%0ASet-Cookie:%20a=1.txt",
        "/m%01%7F%C2%9B.txt",
    ] {
        let res = send(&server, "COPY", "/src/", &[("Destination", malformed)], b"");
        assert_eq!(res.status, 400, "{malformed}");
    }
    let long = format!("/{}", "n".repeat(256));
    let res = send(&server, "COPY", "/src/", &[("Destination", &long)], b"");
    assert_eq!(res.status, 414);
    let absolute_path = send(&server, "COPY", "/src/", &[("Destination", "/copy2/")], b"");
    assert_eq!(absolute_path.status, 201);
    assert_eq!(
        send(&server, "COPY", "/src/", &[], b"").status,
        400,
        "no destination"
    );

    let dest = to("/moved.txt");
    let res = send(
        &server,
        "MOVE",
        "/src/f.txt",
        &[("Destination", &dest)],
        b"",
    );
    assert_eq!(res.status, 201);
    assert!(!root.join("src/f.txt").exists());
    assert_eq!(std::fs::read(root.join("moved.txt")).unwrap(), b"data");
    assert_eq!(
        send(
            &server,
            "MOVE",
            "/src/f.txt",
            &[("Destination", &dest)],
            b""
        )
        .status,
        404
    );
}

#[test]
fn symlinks_are_replaced_not_followed_and_never_lead_out() {
    let (tmp, root) = temp_root();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, "precious").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(tmp.path(), root.join("out")).unwrap();
    let server = writable(&root);
    assert_eq!(put(&server, "/link.txt", b"new").status, 204);
    assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
    assert!(
        !root.join("link.txt").is_symlink(),
        "the link itself was replaced"
    );
    assert_eq!(put(&server, "/out/evil.txt", b"x").status, 404);
    assert!(!tmp.path().join("evil.txt").exists());
    assert_eq!(
        send(&server, "DELETE", "/out/outside.txt", &[], b"").status,
        404
    );
    assert!(outside.exists());
}

#[test]
fn wharfs_own_secrets_are_never_written() {
    let (_t, root) = temp_root();
    let conf = root.join("wharf.toml");
    std::fs::write(&conf, "upload = true\ndelete = true\n").unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    assert_eq!(put(&server, "/wharf.toml", b"upload = false").status, 403);
    assert_eq!(send(&server, "DELETE", "/wharf.toml", &[], b"").status, 404);
    assert_eq!(send(&server, "DELETE", "/", &[], b"").status, 403);
    let dest = [("Destination", "http://localhost/stolen.toml")];
    assert_eq!(send(&server, "MOVE", "/wharf.toml", &dest, b"").status, 404);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "upload = true\ndelete = true\n"
    );
}

#[test]
fn a_client_gone_mid_upload_leaves_the_old_file() {
    let (_t, root) = temp_root();
    write_file(&root, "f.bin", "old");
    let server = writable(&root);
    let mut conn = Conn::open(&server);
    conn.send(b"PUT /f.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
    conn.send(&[b'n'; 300_000]);
    // The temporary file exists while the body arrives…
    assert!(poll_until(IO_TIMEOUT, || (!temps_in(&root).is_empty()).then_some(())).is_some());
    drop(conn);
    // …and goes with the client.
    assert!(
        poll_until(IO_TIMEOUT, || temps_in(&root).is_empty().then_some(())).is_some(),
        "left behind: {:?}",
        temps_in(&root)
    );
    assert_eq!(std::fs::read(root.join("f.bin")).unwrap(), b"old");
}

#[test]
fn a_second_server_on_the_folder_leaves_the_first_ones_upload_alone() {
    let (_t, root) = temp_root();
    write_file(&root, "sub/.wharf-tmp-notes", "mine");
    let first = writable(&root);
    let mut conn = Conn::open(&first);
    conn.send(b"PUT /sub/f.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 600000\r\n\r\n");
    conn.send(&[b'n'; 300_000]);
    let sub = root.join("sub");
    let in_flight = |names: Vec<String>| names.into_iter().any(|n| n != ".wharf-tmp-notes");
    assert!(poll_until(IO_TIMEOUT, || in_flight(temps_in(&sub)).then_some(())).is_some());
    // And one a crashed process left.
    let mut ended = std::process::Command::new("true").spawn().unwrap();
    let dead = ended.id();
    ended.wait().unwrap();
    write_file(&sub, &format!(".wharf-tmp-{dead}-0-00000000"), "stale");
    for name in temps_in(&sub) {
        set_mtime(&sub.join(name), unix_time(1_000_000));
    }
    // A neighbour starting on the same folder (an upgrade's new process, or one
    // with --reuse-port) sweeps for stale files.
    let second = Server::spawn_with_env(
        &loopback_args(&root, &["--upload", "--delete"]),
        &[("WHARF_LOG", std::ffi::OsStr::new("info"))],
    );
    let swept = poll_until(IO_TIMEOUT, || {
        let lines = second.stderr_lines();
        lines
            .iter()
            .any(|l| l.contains("removed 1 temporary file"))
            .then_some(())
    });
    assert!(swept.is_some(), "{:?}", second.stderr_lines());
    conn.send(&[b'n'; 300_000]);
    let res = conn.read_response(false);
    assert_eq!(res.status, 201);
    assert_eq!(std::fs::read(sub.join("f.bin")).unwrap().len(), 600_000);
    assert_eq!(
        std::fs::read(sub.join(".wharf-tmp-notes")).unwrap(),
        b"mine"
    );
}

#[test]
fn a_killed_server_leaves_temporaries_that_the_next_start_removes() {
    let (_t, root) = temp_root();
    write_file(&root, "keep.txt", "k");
    let mut server = writable(&root);
    let mut conn = Conn::open(&server);
    conn.send(b"PUT /sub/f.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
    conn.send(&[b'n'; 300_000]);
    let sub = root.join("sub");
    assert!(poll_until(IO_TIMEOUT, || (!temps_in(&sub).is_empty()).then_some(())).is_some());
    server.signal("KILL");
    server.expect_exit();
    let left = temps_in(&sub);
    assert_eq!(left.len(), 1, "the temporary file outlives the process");
    // Made before the next start, so it is stale then.
    set_mtime(&sub.join(&left[0]), unix_time(1_000_000));
    // And a copied folder being built when its process was killed.
    let mut ended = std::process::Command::new("true").spawn().unwrap();
    let dead = ended.id();
    ended.wait().unwrap();
    let building = sub.join(format!(".wharf-tmp-{dead}-1-00000000"));
    write_file(&building, "inner/part.txt", "half a copy");
    set_mtime(&building, unix_time(1_000_000));
    let again = writable(&root);
    assert_eq!(get(&again, &format!("/sub/{}", left[0])).status, 404);
    assert!(
        poll_until(IO_TIMEOUT, || temps_in(&sub).is_empty().then_some(())).is_some(),
        "not removed: {:?}",
        temps_in(&sub)
    );
    assert!(!sub.join("f.bin").exists());
    assert_eq!(get(&again, "/keep.txt").body, b"k");
}

#[test]
fn concurrent_puts_leave_one_whole_file() {
    let (_t, root) = temp_root();
    let server = writable(&root);
    let size = 2_000_000usize;
    let mut a = Conn::open(&server);
    let mut b = Conn::open(&server);
    let head = format!("PUT /same.bin HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
    a.send(head.as_bytes());
    b.send(head.as_bytes());
    // Interleave the two bodies.
    for _ in 0..(size / 100_000) {
        a.send(&[b'a'; 100_000]);
        b.send(&[b'b'; 100_000]);
    }
    let (ra, rb) = (a.read_response(false), b.read_response(false));
    assert!([201, 204].contains(&ra.status) && [201, 204].contains(&rb.status));
    let content = std::fs::read(root.join("same.bin")).unwrap();
    assert_eq!(content.len(), size);
    assert!(
        content.iter().all(|&c| c == b'a') || content.iter().all(|&c| c == b'b'),
        "a mix of both uploads"
    );
}

/// A multipart/form-data body with `files` (field name, file name, bytes) and
/// plain `fields`.
fn form(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----wharfboundary7MA4YWxk";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    for (name, file, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn form_uploads_store_files_and_never_overwrite_silently() {
    let (_t, root) = temp_root();
    std::fs::create_dir(root.join("inbox")).unwrap();
    let server = writable(&root);
    let (ct, body) = form(&[], &[("f", "a.txt", b"A"), ("f", "../../b.txt", b"B")]);
    let res = send(&server, "POST", "/inbox/", &[("Content-Type", &ct)], &body);
    assert_eq!(res.status, 303, "browsers go back to the listing");
    assert_eq!(res.header("location").as_deref(), Some("/inbox/"));
    assert_eq!(std::fs::read(root.join("inbox/a.txt")).unwrap(), b"A");
    assert_eq!(
        std::fs::read(root.join("inbox/b.txt")).unwrap(),
        b"B",
        "last component only"
    );

    let (ct, body) = form(&[], &[("f", "a.txt", b"changed")]);
    // A form goes to a folder; a file does not take POST, and says so.
    let res = send(
        &server,
        "POST",
        "/inbox/a.txt",
        &[("Content-Type", &ct)],
        &body,
    );
    assert_eq!(res.status, 405);
    let allow = res.header("allow").expect("Allow on a 405");
    assert!(allow.contains("PUT") && !allow.contains("POST"), "{allow}");
    let json = [
        ("Content-Type", ct.as_str()),
        ("Accept", "application/json"),
    ];
    let res = send(&server, "POST", "/inbox/", &json, &body);
    assert_eq!(res.status, 409);
    assert!(res.body_text().contains("a.txt"));
    assert_eq!(std::fs::read(root.join("inbox/a.txt")).unwrap(), b"A");

    let (ct, body) = form(&[("overwrite", "1")], &[("f", "a.txt", b"changed")]);
    let json = [
        ("Content-Type", ct.as_str()),
        ("Accept", "application/json"),
    ];
    let res = send(&server, "POST", "/inbox/", &json, &body);
    assert_eq!(res.status, 201);
    assert_eq!(res.header("location").as_deref(), Some("/inbox/a.txt"));
    let summary: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(summary["uploaded"][0]["name"], "a.txt");
    assert_eq!(summary["uploaded"][0]["size"], 7);
    assert_eq!(std::fs::read(root.join("inbox/a.txt")).unwrap(), b"changed");

    let (ct, body) = form(&[], &[("f", ".hidden", b"x")]);
    assert_eq!(
        send(&server, "POST", "/inbox/", &[("Content-Type", &ct)], &body).status,
        400
    );
    assert_eq!(
        send(
            &server,
            "POST",
            "/inbox/",
            &[("Content-Type", "text/plain")],
            b"x"
        )
        .status,
        415
    );
    assert!(temps_in(&root.join("inbox")).is_empty());
}

/// `body` in chunks of at most `size` bytes (chunked transfer coding).
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn a_form_that_fails_part_way_says_what_it_stored() {
    let (_t, root) = temp_root();
    std::fs::create_dir(root.join("inbox")).unwrap();
    let server = Server::start(&root, &["--upload", "--max-upload-size", "1000"]);
    let big = vec![b'x'; 2000];

    // Past the limit with no length declared (chunked): 413 like any other upload.
    let (ct, body) = form(&[], &[("f", "big.bin", &big)]);
    let headers = [
        ("Content-Type", ct.as_str()),
        ("Transfer-Encoding", "chunked"),
    ];
    let res = send(&server, "POST", "/inbox/", &headers, &chunked(&body, 300));
    assert_eq!(res.status, 413);
    assert!(!root.join("inbox/big.bin").exists());
    // Announced too large: refused before the body, in JSON when asked for.
    let json = [
        ("Content-Type", ct.as_str()),
        ("Accept", "application/json"),
    ];
    let res = send(&server, "POST", "/inbox/", &json, &body);
    assert_eq!(res.status, 413);
    let summary: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(summary["uploaded"], serde_json::json!([]), "{summary}");

    // The first file fits, the second does not: the first is kept, and the answer
    // names it (JSON when asked for, else a page linking to it).
    let (ct, body) = form(&[], &[("f", "small.txt", b"small"), ("f", "big.bin", &big)]);
    let headers = [
        ("Content-Type", ct.as_str()),
        ("Transfer-Encoding", "chunked"),
        ("Accept", "application/json"),
    ];
    let res = send(&server, "POST", "/inbox/", &headers, &chunked(&body, 300));
    assert_eq!(res.status, 413);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/json")
    );
    let summary: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(summary["uploaded"][0]["name"], "small.txt");
    assert_eq!(summary["uploaded"][0]["href"], "/inbox/small.txt");
    assert_eq!(summary["error"], "Payload Too Large");
    assert_eq!(
        std::fs::read(root.join("inbox/small.txt")).unwrap(),
        b"small"
    );
    assert!(!root.join("inbox/big.bin").exists());

    // A plain form whose second part is cut off: 400, with a page naming the first.
    let (ct, body) = form(&[], &[("f", "one.txt", b"one"), ("f", "two.txt", b"two")]);
    let cut = &body[..body.len() - 20];
    let res = send(&server, "POST", "/inbox/", &[("Content-Type", &ct)], cut);
    assert_eq!(res.status, 400);
    assert!(res
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
    let page = res.body_text();
    assert!(
        page.contains("<a href=\"/inbox/one.txt\">one.txt</a>"),
        "{page}"
    );
    assert!(root.join("inbox/one.txt").exists());
    assert!(!root.join("inbox/two.txt").exists());

    // A name taken, from a plain form: an HTML page (JSON only when asked for).
    let (ct, body) = form(&[], &[("f", "three.txt", b"3"), ("f", "one.txt", b"1")]);
    let res = send(&server, "POST", "/inbox/", &[("Content-Type", &ct)], &body);
    assert_eq!(res.status, 409);
    let page = res.body_text();
    assert!(
        page.contains("one.txt: a file of that name exists"),
        "{page}"
    );
    assert!(page.contains("/inbox/three.txt"), "{page}");
    assert_eq!(res.header("vary").as_deref(), Some("Accept"));
    assert!(temps_in(&root.join("inbox")).is_empty());
}

/// A form of one file part whose `Content-Disposition` parameters after the field's
/// name are `params` (raw bytes).
fn form_with_disposition(params: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----wharfboundaryQ2x";
    let mut body =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; ").into_bytes();
    body.extend_from_slice(params);
    body.extend_from_slice(b"\r\nContent-Type: text/plain\r\n\r\ncontent\r\n");
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn file_parts_named_by_filename_star_are_stored_and_unreadable_names_refused() {
    let (_t, root) = temp_root();
    let server = writable(&root);
    let json = |ct: &str| {
        [
            ("Content-Type", ct.to_string()),
            ("Accept", "application/json".to_string()),
        ]
    };
    // RFC 8187's extended notation, alone (as some HTTP libraries send it).
    let (ct, body) = form_with_disposition(b"filename*=UTF-8''%E2%82%AC%20rates.txt");
    let headers = json(&ct);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let res = send(&server, "POST", "/", &headers, &body);
    assert_eq!(res.status, 201, "{}", res.body_text());
    assert_eq!(
        std::fs::read(root.join("\u{20ac} rates.txt")).unwrap(),
        b"content"
    );
    // Both: the extended one wins.
    let (ct, body) =
        form_with_disposition(b"filename=\"plain.txt\"; filename*=utf-8'en'better.txt");
    assert_eq!(
        send(&server, "POST", "/", &[("Content-Type", &ct)], &body).status,
        303
    );
    assert!(root.join("better.txt").exists());
    assert!(!root.join("plain.txt").exists());
    // Parameter names in any letter case (RFC 2183 §2).
    let (ct, body) = form_with_disposition(b"FileName=\"upper; case.txt\"");
    assert_eq!(
        send(&server, "POST", "/", &[("Content-Type", &ct)], &body).status,
        303
    );
    assert_eq!(
        std::fs::read(root.join("upper; case.txt")).unwrap(),
        b"content"
    );
    // A name that is not UTF-8, or in another charset: 400, never a silent success.
    for params in [
        &b"filename=\"caf\xe9.txt\""[..],
        b"filename*=iso-8859-1''caf%E9.txt",
    ] {
        let (ct, body) = form_with_disposition(params);
        let res = send(&server, "POST", "/", &[("Content-Type", &ct)], &body);
        assert_eq!(res.status, 400, "{}", String::from_utf8_lossy(params));
    }
    // A name longer than a file system takes (255 bytes): 400, as it is no target.
    let long = format!("filename=\"{}.txt\"", "n".repeat(300));
    let (ct, body) = form_with_disposition(long.as_bytes());
    assert_eq!(
        send(&server, "POST", "/", &[("Content-Type", &ct)], &body).status,
        400
    );
    assert!(temps_in(&root).is_empty());
}

#[test]
fn a_full_disk_is_507_and_leaves_nothing() {
    let (_t, root) = temp_root();
    let small = root.join("small");
    std::fs::create_dir(&small).unwrap();
    let Some(_mounted) = mount_tmpfs(&small, "size=256k") else {
        return;
    };
    let server = writable(&root);
    let res = put(&server, "/small/big.bin", &vec![7u8; 1024 * 1024]);
    assert_eq!(res.status, 507);
    assert!(!small.join("big.bin").exists());
    assert!(temps_in(&small).is_empty());
}

#[test]
fn slow_uploaders_do_not_hold_up_other_requests() {
    let (_t, root) = temp_root();
    write_file(&root, "page.html", "<p>hi</p>");
    let server = Server::start(&root, &["--upload", "--workers", "1"]);
    let mut trickling = Vec::new();
    for i in 0..50 {
        let mut conn = Conn::open(&server);
        conn.send(
            format!("PUT /slow/{i}.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
                .as_bytes(),
        );
        conn.send(&[b's'; 1024]);
        trickling.push(conn);
    }
    // Every upload is still open, waiting for the rest of its body.
    for _ in 0..3 {
        assert_eq!(get(&server, "/page.html").status, 200);
        for conn in &mut trickling {
            conn.send(&[b's'; 1024]);
        }
    }
    // Each upload's temporary file appears once the server has taken its body up,
    // which a loaded machine may do a little after the bytes were sent.
    let under_way = poll_until(Duration::from_secs(10), || {
        (temps_in(&root.join("slow")).len() >= 40).then_some(())
    });
    assert!(under_way.is_some(), "the uploads are under way");
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_large_upload_streams_in_bounded_memory() {
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload", "--max-upload-size", "8589934592"]);
    let before = rss_kib(server.pid());
    let total: u64 = 4 * 1024 * 1024 * 1024;
    let mut stream = connect(server.addr());
    stream
        .write_all(format!("PUT /huge.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {total}\r\n\r\n").as_bytes())
        .unwrap();
    let chunk = vec![b'z'; 4 * 1024 * 1024];
    let mut peak = before;
    let mut sent = 0u64;
    while sent < total {
        stream.write_all(&chunk).unwrap();
        sent += chunk.len() as u64;
        if sent.is_multiple_of(256 * 1024 * 1024) {
            peak = peak.max(rss_kib(server.pid()));
        }
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let res = parse_response(&answer, false);
    assert_eq!(res.status, 201);
    assert_eq!(
        std::fs::metadata(root.join("huge.bin")).unwrap().len(),
        total
    );
    let grew = peak.saturating_sub(before);
    assert!(
        grew < 32 * 1024,
        "RSS grew by {grew} KiB during a 4 GiB upload"
    );
    std::fs::remove_file(root.join("huge.bin")).unwrap();
}

/// Pacing of a deliberately slow client (the behaviour under test, not a wait for the
/// server): six pieces, 400 ms apart, so the upload lasts well past a 1 s idle timeout.
const PIECES: usize = 6;
const PACE: Duration = Duration::from_millis(400);

#[test]
fn a_slow_upload_outlives_the_idle_timeout_while_bytes_keep_coming() {
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload", "--idle-timeout", "1s"]);
    let mut conn = Conn::open(&server);
    conn.send(
        format!(
            "PUT /slow.bin HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            PIECES * 1000
        )
        .as_bytes(),
    );
    for _ in 0..PIECES {
        conn.send(&[b'x'; 1000]);
        std::thread::sleep(PACE);
    }
    assert_eq!(conn.read_response(false).status, 201);
    assert_eq!(
        std::fs::metadata(root.join("slow.bin")).unwrap().len(),
        (PIECES * 1000) as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_over_h2_outlives_the_idle_timeout() {
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload", "--idle-timeout", "1s"]);
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let req = http::Request::put(format!("http://{}/slow.bin", server.addr()))
        .body(())
        .unwrap();
    let (response, mut stream) = client.send_request(req, false).unwrap();
    for _ in 0..PIECES {
        stream
            .send_data(bytes::Bytes::from(vec![b'y'; 1000]), false)
            .unwrap();
        tokio::time::sleep(PACE).await;
    }
    stream.send_data(bytes::Bytes::new(), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        std::fs::metadata(root.join("slow.bin")).unwrap().len(),
        (PIECES * 1000) as u64
    );
}

#[test]
fn a_file_never_replaces_a_folder_nor_the_reverse_unasked() {
    let (_t, root) = temp_root();
    write_file(&root, "file.txt", "f");
    write_file(&root, "dir/inner.txt", "i");
    let server = writable(&root);
    assert_eq!(put(&server, "/dir", b"x").status, 409);
    assert_eq!(send(&server, "MKCOL", "/file.txt", &[], b"").status, 405);
    // WebDAV replaces across kinds only when the client says Overwrite: T (RFC 4918
    // §9.8.4, its default); with F it is refused.
    let keep = [("Destination", "http://localhost/dir"), ("Overwrite", "F")];
    assert_eq!(send(&server, "MOVE", "/file.txt", &keep, b"").status, 412);
    assert_eq!(std::fs::read(root.join("file.txt")).unwrap(), b"f");
    assert_eq!(std::fs::read(root.join("dir/inner.txt")).unwrap(), b"i");
}

/// A folder moves whole: Depth 0 on its MOVE is a 400 (RFC 4918 §9.9.2); on a
/// file's, Depth means nothing, as clients renaming a file send it.
#[test]
fn move_depth_matters_for_folders_only() {
    let (_t, root) = temp_root();
    write_file(&root, "file.txt", "f");
    write_file(&root, "dir/inner.txt", "i");
    let server = writable(&root);
    let to = |dest: &'static str| [("Destination", dest), ("Depth", "0")];
    assert_eq!(
        send(
            &server,
            "MOVE",
            "/dir/",
            &to("http://localhost/moved/"),
            b""
        )
        .status,
        400
    );
    assert!(root.join("dir/inner.txt").exists());
    assert_eq!(
        send(
            &server,
            "MOVE",
            "/file.txt",
            &to("http://localhost/renamed.txt"),
            b""
        )
        .status,
        201
    );
    assert_eq!(std::fs::read(root.join("renamed.txt")).unwrap(), b"f");
}

#[test]
fn copy_and_move_never_delete_their_source_or_wharfs_secrets() {
    let (_t, root) = temp_root();
    write_file(&root, "a/b.txt", "b");
    let conf = root.join("box/wharf.toml");
    write_file(&root, "box/wharf.toml", "upload = true\n");
    write_file(&root, "small.txt", "s");
    let server = Server::start(&root, &["--config", conf.to_str().unwrap(), "--delete"]);
    // Over the folder that holds the source.
    let onto_parent = [("Destination", "http://localhost/a")];
    assert_eq!(
        send(&server, "MOVE", "/a/b.txt", &onto_parent, b"").status,
        403
    );
    assert_eq!(std::fs::read(root.join("a/b.txt")).unwrap(), b"b");
    // Over a folder holding wharf's configuration.
    let onto_box = [("Destination", "http://localhost/box")];
    assert_eq!(
        send(&server, "COPY", "/small.txt", &onto_box, b"").status,
        403
    );
    assert!(conf.exists());
    // Replacing a folder needs the right to delete there.
    let uploads_only = Server::start(&root, &["--upload"]);
    let onto_a = [("Destination", "http://localhost/a")];
    assert_eq!(
        send(&uploads_only, "COPY", "/small.txt", &onto_a, b"").status,
        403
    );
    assert_eq!(std::fs::read(root.join("a/b.txt")).unwrap(), b"b");
}

#[test]
fn delete_copy_move_proppatch_and_mkcol_honour_preconditions() {
    let (_t, root) = temp_root();
    write_file(&root, "f.txt", "one");
    write_file(&root, "dir/a.txt", "a");
    let server = writable(&root);
    let tag = get(&server, "/f.txt").header("etag").expect("an ETag");
    let dest = "http://localhost/g.txt";
    let patch = b"<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>\
                  <Z:p xmlns:Z=\"http://z/\">v</Z:p></D:prop></D:set></D:propertyupdate>";
    let failing: [(&str, &str); 3] = [
        ("If-Match", "\"other\""),
        ("If-Unmodified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"),
        ("If-None-Match", "*"),
    ];
    for condition in failing {
        for (method, body) in [
            ("DELETE", &b""[..]),
            ("COPY", b""),
            ("MOVE", b""),
            ("PROPPATCH", patch),
        ] {
            let res = send(
                &server,
                method,
                "/f.txt",
                &[condition, ("Destination", dest)],
                body,
            );
            assert_eq!(res.status, 412, "{method} {condition:?}");
        }
    }
    let same = send(&server, "PROPFIND", "/f.txt", &[("Depth", "0")], b"");
    assert!(!same.body_text().contains("http://z/"), "nothing was set");
    assert_eq!(std::fs::read(root.join("f.txt")).unwrap(), b"one");
    assert!(!root.join("g.txt").exists());
    // A folder has no tag: only `*` matches it.
    for condition in [("If-Match", "\"other\""), ("If-None-Match", "*")] {
        assert_eq!(
            send(&server, "DELETE", "/dir/", &[condition], b"").status,
            412
        );
    }
    assert!(root.join("dir/a.txt").exists());
    // Nothing there: If-Match fails, If-None-Match: * holds.
    assert_eq!(
        send(&server, "MKCOL", "/new", &[("If-Match", "*")], b"").status,
        412
    );
    assert_eq!(
        send(&server, "MKCOL", "/new", &[("If-None-Match", "*")], b"").status,
        201
    );
    // Conditions that hold.
    let res = send(
        &server,
        "MOVE",
        "/f.txt",
        &[("If-Match", &tag), ("Destination", dest)],
        b"",
    );
    assert_eq!(res.status, 201);
    assert_eq!(
        send(&server, "DELETE", "/dir/", &[("If-Match", "*")], b"").status,
        204
    );
}

#[test]
fn a_file_named_with_a_trailing_slash_is_not_found_for_writes_too() {
    let (_t, root) = temp_root();
    write_file(&root, "f.txt", "data");
    let server = writable(&root);
    assert_eq!(get(&server, "/f.txt/").status, 404);
    let dest = [("Destination", "http://localhost/g.txt")];
    let patch = b"<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>\
                  <Z:p xmlns:Z=\"http://z/\">v</Z:p></D:prop></D:set></D:propertyupdate>";
    for (method, headers, body) in [
        ("DELETE", &[][..], &b""[..]),
        ("COPY", &dest[..], b""),
        ("MOVE", &dest[..], b""),
        ("PROPFIND", &[("Depth", "0")][..], b""),
        ("PROPPATCH", &[][..], patch),
    ] {
        let res = send(&server, method, "/f.txt/", headers, body);
        assert_eq!(res.status, 404, "{method}");
    }
    assert_eq!(std::fs::read(root.join("f.txt")).unwrap(), b"data");
    assert!(!root.join("g.txt").exists());
}

#[test]
fn mkcol_where_something_is_allows_what_options_lists_but_mkcol() {
    let (_t, root) = temp_root();
    write_file(&root, "dir/f.txt", "data");
    for flags in [&["--upload", "--delete"][..], &["--upload"]] {
        let server = Server::start(&root, flags);
        let listed = request(&server, "OPTIONS", "/dir/", &[])
            .header("allow")
            .expect("Allow");
        // What the site takes, less MKCOL, which a place already taken does not.
        let here: Vec<&str> = listed.split(", ").filter(|m| *m != "MKCOL").collect();
        assert!(here.len() < listed.split(", ").count(), "{listed}");
        for path in ["/dir", "/dir/f.txt", "/"] {
            let res = send(&server, "MKCOL", path, &[], b"");
            assert_eq!(res.status, 405, "{flags:?} {path}");
            assert_eq!(
                res.header("allow"),
                Some(here.join(", ")),
                "{flags:?} {path}"
            );
        }
    }
}

#[test]
fn a_refusal_before_a_continued_body_says_the_connection_closes() {
    let (_t, root) = temp_root();
    write_file(&root, "f.txt", "data");
    let server = writable(&root);
    for (head, status) in [
        ("PUT /f.txt HTTP/1.1\r\nIf-None-Match: *\r\n", 412),
        ("PUT /nodir/x/ HTTP/1.1\r\n", 409),
        ("PATCH /f.txt HTTP/1.1\r\n", 405),
        (
            "PUT /big HTTP/1.1\r\nContent-Length: 5000000000000\r\n",
            413,
        ),
    ] {
        let length = if head.contains("Content-Length") {
            ""
        } else {
            "Content-Length: 5\r\n"
        };
        let mut conn = Conn::open(&server);
        conn.send(format!("{head}Host: x\r\n{length}Expect: 100-continue\r\n\r\n").as_bytes());
        let res = conn.read_response(false);
        assert_eq!(res.status, status, "{head}");
        assert_eq!(res.header("connection").as_deref(), Some("close"), "{head}");
        if status == 405 {
            // What is refused here is not said to be allowed (RFC 9110 §15.5.6).
            let allow = res.header("allow").expect("Allow");
            assert!(!allow.split(", ").any(|m| m == "PATCH"), "{allow}");
            assert!(allow.split(", ").any(|m| m == "PUT"), "{allow}");
        }
        assert!(conn.wait_for_close(), "{head}");
    }
    assert_eq!(std::fs::read(root.join("f.txt")).unwrap(), b"data");
    // Nor does OPTIONS offer what the 405 refuses.
    let options = request(&server, "OPTIONS", "/f.txt", &[]);
    let allow = options.header("allow").expect("Allow");
    assert!(!allow.split(", ").any(|m| m == "PATCH"), "{allow}");
    assert!(allow.split(", ").any(|m| m == "PUT"), "{allow}");
}

#[test]
fn writes_from_another_sites_page_are_refused() {
    let (_t, root) = temp_root();
    std::fs::create_dir(root.join("inbox")).unwrap();
    write_file(&root, "inbox/keep.txt", "keep");
    let server = writable(&root);
    let (ct, body) = form(&[("overwrite", "1")], &[("f", "keep.txt", b"evil")]);
    // A form another site's page submits: named by Sec-Fetch-Site, or by Origin
    // alone for browsers that do not send it.
    for from in [
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Origin", "https://evil.example"),
        ][..],
        &[
            ("Sec-Fetch-Site", "same-site"),
            ("Origin", "https://evil.localhost"),
        ],
        &[("Origin", "https://evil.example")],
        &[("Origin", "null")],
    ] {
        let mut headers = vec![("Content-Type", ct.as_str())];
        headers.extend_from_slice(from);
        let res = send(&server, "POST", "/inbox/", &headers, &body);
        assert_eq!(res.status, 403, "{from:?}");
        let res = send(&server, "DELETE", "/inbox/keep.txt", from, b"");
        assert_eq!(res.status, 403, "{from:?}");
        let res = send(&server, "PUT", "/inbox/keep.txt", from, b"evil");
        assert_eq!(res.status, 403, "{from:?}");
    }
    assert_eq!(std::fs::read(root.join("inbox/keep.txt")).unwrap(), b"keep");
    assert!(temps_in(&root.join("inbox")).is_empty());

    // The site's own page (the listing's upload form), and clients that name no
    // page at all, write as before.
    for from in [
        &[
            ("Sec-Fetch-Site", "same-origin"),
            ("Origin", "http://localhost"),
        ][..],
        &[("Origin", "http://localhost")],
        &[],
    ] {
        let mut headers = vec![("Content-Type", ct.as_str())];
        headers.extend_from_slice(from);
        let res = send(&server, "POST", "/inbox/", &headers, &body);
        assert_eq!(res.status, 303, "{from:?}");
        write_file(&root, "inbox/keep.txt", "keep");
    }
}

#[test]
fn a_put_that_fails_leaves_no_folder_it_made() {
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload", "--max-upload-size", "1000"]);
    // Refused before the body: a precondition, a range.
    let res = send(&server, "PUT", "/q1/q2/x.txt", &[("If-Match", "*")], b"x");
    assert_eq!(res.status, 412);
    let range = [("Content-Range", "bytes 0-0/1")];
    assert_eq!(send(&server, "PUT", "/r1/x.txt", &range, b"x").status, 400);
    // Refused on the way: too long once it is read.
    let res = send(
        &server,
        "PUT",
        "/n1/n2/big.bin",
        &[("Transfer-Encoding", "chunked")],
        &chunked(&[b'z'; 3000], 500),
    );
    assert_eq!(res.status, 413);
    // Cut short by its client.
    let mut conn = Conn::open(&server);
    conn.send(b"PUT /c1/c2/cut.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n");
    conn.send(&[b'c'; 300]);
    assert!(poll_until(IO_TIMEOUT, || root.join("c1/c2").exists().then_some(())).is_some());
    drop(conn);
    let gone = poll_until(IO_TIMEOUT, || (!root.join("c1").exists()).then_some(()));
    assert!(gone.is_some(), "the cut PUT's folders stay");
    for made in ["q1", "r1", "n1"] {
        assert!(!root.join(made).exists(), "{made}");
    }
    // A PUT that succeeds keeps them.
    assert_eq!(put(&server, "/k1/k2/kept.txt", b"k").status, 201);
    assert_eq!(std::fs::read(root.join("k1/k2/kept.txt")).unwrap(), b"k");
}

/// Starts `count` PUTs of `body` to `/name` with `headers`, and completes them only
/// when all are past their first check of preconditions (each has its temporary
/// file in `root`); their statuses.
fn racing_puts(server: &Server, root: &Path, name: &str, headers: &str, count: usize) -> Vec<u16> {
    let body = [b'r'; 64];
    let mut conns: Vec<Conn> = (0..count).map(|_| Conn::open(server)).collect();
    for conn in &mut conns {
        conn.send(
            format!(
                "PUT /{name} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        conn.send(&body[..32]);
    }
    let all_in = poll_until(IO_TIMEOUT, || (temps_in(root).len() == count).then_some(()));
    assert!(all_in.is_some(), "{:?}", temps_in(root));
    for conn in &mut conns {
        conn.send(&body[32..]);
    }
    let mut statuses: Vec<u16> = conns
        .iter_mut()
        .map(|conn| conn.read_response(false).status)
        .collect();
    statuses.sort_unstable();
    statuses
}

#[test]
fn racing_conditional_puts_lose_no_update() {
    let (_t, root) = temp_root();
    let server = writable(&root);
    // Four writers of a new name, each only if none exists: one creates it.
    let statuses = racing_puts(&server, &root, "new.txt", "If-None-Match: *\r\n", 4);
    assert_eq!(statuses, [201, 412, 412, 412]);
    // Three writers holding the same tag: one replaces, the others find it changed.
    write_file(&root, "doc.txt", "v1");
    let tag = get(&server, "/doc.txt").header("etag").unwrap();
    let if_match = format!("If-Match: {tag}\r\n");
    let statuses = racing_puts(&server, &root, "doc.txt", &if_match, 3);
    assert_eq!(statuses, [204, 412, 412]);
    assert!(temps_in(&root).is_empty());
}

#[test]
fn a_put_keeps_the_dead_properties_of_the_file_it_replaces() {
    let (_t, root) = temp_root();
    write_file(&root, "t.txt", "one");
    let server = writable(&root);
    let patch = b"<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>\
                  <Z:k xmlns:Z=\"urn:z\">keep me</Z:k></D:prop></D:set></D:propertyupdate>";
    let res = send(&server, "PROPPATCH", "/t.txt", &[], patch);
    assert_eq!(res.status, 207);
    assert_eq!(put(&server, "/t.txt", b"two").status, 204);
    let find = b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop>\
                 <Z:k xmlns:Z=\"urn:z\"/></D:prop></D:propfind>";
    let res = send(&server, "PROPFIND", "/t.txt", &[("Depth", "0")], find);
    assert_eq!(res.status, 207);
    let text = res.body_text();
    assert!(
        text.contains("keep me") && text.contains("200 OK"),
        "{text}"
    );
    assert_eq!(std::fs::read(root.join("t.txt")).unwrap(), b"two");
}

#[test]
fn a_form_part_with_endless_headers_or_overwrite_value_is_refused() {
    let (_t, root) = temp_root();
    std::fs::create_dir(root.join("inbox")).unwrap();
    let server = writable(&root);
    let boundary = "XyZ";
    let ct = format!("multipart/form-data; boundary={boundary}");
    let file_part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nA\r\n--{boundary}--\r\n"
    );
    // Fields and headers are held in memory while they are read: neither may grow
    // without bound (the body as a whole may be far larger).
    let long_value = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\n{}\r\n{file_part}",
        "1".repeat(300_000)
    );
    let long_head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"b.txt\"\r\nX-Pad: {}\r\n\r\nB\r\n{file_part}",
        "p".repeat(300_000)
    );
    for body in [long_value, long_head] {
        let res = send(
            &server,
            "POST",
            "/inbox/",
            &[("Content-Type", &ct)],
            body.as_bytes(),
        );
        assert_eq!(res.status, 413);
    }
    assert!(std::fs::read_dir(root.join("inbox"))
        .unwrap()
        .next()
        .is_none());
    // The same form with short ones is stored.
    let short = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\n1\r\n{file_part}"
    );
    let res = send(
        &server,
        "POST",
        "/inbox/",
        &[("Content-Type", &ct)],
        short.as_bytes(),
    );
    assert_eq!(res.status, 303);
    assert_eq!(std::fs::read(root.join("inbox/a.txt")).unwrap(), b"A");
}

#[test]
fn a_folder_is_deleted_only_whole() {
    let (_t, root) = temp_root();
    write_file(&root, "d/inner.txt", "x");
    write_file(&root, "f.txt", "f");
    let server = writable(&root);
    for depth in ["0", "1"] {
        let res = send(&server, "DELETE", "/d/", &[("Depth", depth)], b"");
        assert_eq!(res.status, 400, "Depth: {depth}");
    }
    assert!(root.join("d/inner.txt").exists());
    let res = send(&server, "DELETE", "/d/", &[("Depth", "infinity")], b"");
    assert_eq!(res.status, 204);
    assert!(!root.join("d").exists());
    // A file has no depth to speak of.
    assert_eq!(
        send(&server, "DELETE", "/f.txt", &[("Depth", "0")], b"").status,
        204
    );
}

#[test]
fn a_name_xml_cannot_carry_leaves_the_listing_readable() {
    let (_t, root) = temp_root();
    write_file(&root, "odd/ctl\u{1}x.txt", "x");
    write_file(&root, "odd/plain.txt", "p");
    let server = writable(&root);
    let res = send(&server, "PROPFIND", "/odd/", &[("Depth", "1")], b"");
    assert_eq!(res.status, 207);
    assert!(
        !res.body.contains(&1u8),
        "a raw U+0001 makes the XML malformed"
    );
    let text = res.body_text();
    assert!(text.contains("ctl\u{FFFD}x.txt"), "{text}");
    assert!(
        text.contains("ctl%01x.txt"),
        "the href names the file exactly: {text}"
    );
    assert!(text.contains("plain.txt"));
}

#[test]
fn the_tag_of_a_compressed_read_names_the_file_for_a_write() {
    let (_t, root) = temp_root();
    write_file(&root, "z.txt", compressible_text("z", 20_000));
    let server = writable(&root);
    let zipped = request(&server, "GET", "/z.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!(zipped.header("content-encoding").as_deref(), Some("gzip"));
    let tag = zipped.header("etag").unwrap();
    let plain = get(&server, "/z.txt").header("etag").unwrap();
    assert_ne!(tag, plain);
    // A client that read the file compressed writes it back with that tag.
    let res = send(&server, "PUT", "/z.txt", &[("If-Match", &tag)], b"new");
    assert_eq!(res.status, 204);
    // That tag named the old content: the next write with it is refused.
    let res = send(&server, "PUT", "/z.txt", &[("If-Match", &tag)], b"newer");
    assert_eq!(res.status, 412);
    assert_eq!(std::fs::read(root.join("z.txt")).unwrap(), b"new");
    // WebDAV's If header compares tags the same way.
    write_file(&root, "y.txt", compressible_text("y", 20_000));
    let zipped = request(&server, "GET", "/y.txt", &[("Accept-Encoding", "gzip")]);
    let tag = zipped.header("etag").unwrap();
    let if_header = format!("([{tag}])");
    let res = send(&server, "PUT", "/y.txt", &[("If", &if_header)], b"new");
    assert_eq!(res.status, 204);
}

#[test]
fn a_form_refused_before_storing_anything_answers_json_when_asked() {
    let (_t, root) = temp_root();
    std::fs::create_dir(root.join("inbox")).unwrap();
    let server = writable(&root);
    let (ct, body) = form(&[], &[("f", ".hidden", b"h")]);
    let json = [
        ("Content-Type", ct.as_str()),
        ("Accept", "application/json"),
    ];
    let res = send(&server, "POST", "/inbox/", &json, &body);
    assert_eq!(res.status, 400);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/json")
    );
    let doc: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(doc["uploaded"], serde_json::json!([]));
    assert!(doc["error"].is_string(), "{doc}");
    // A browser gets the error page.
    let res = send(
        &server,
        "POST",
        "/inbox/",
        &[("Content-Type", ct.as_str())],
        &body,
    );
    assert_eq!(res.status, 400);
    assert!(res.header("content-type").unwrap().starts_with("text/html"));
}

/// `--follow-symlinks` lets reads through a link out of the folder; writes never
/// go that way (no PUT, MKCOL, DELETE, COPY or MOVE lands outside).
#[test]
fn writes_never_leave_the_folder_even_when_reads_follow_links() {
    let (tmp, root) = temp_root();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("s.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("ol")).unwrap();
    write_file(&root, "in.txt", "inside");
    let server = Server::start(&root, &["--upload", "--delete", "--follow-symlinks"]);
    assert_eq!(get(&server, "/ol/s.txt").body_text(), "outside");
    let destination = [("Destination", "http://localhost/ol/copied.txt")];
    for (method, path, headers) in [
        ("PUT", "/ol/new.txt", &[][..]),
        ("PUT", "/ol/s.txt", &[][..]),
        ("MKCOL", "/ol/made/", &[][..]),
        ("DELETE", "/ol/s.txt", &[][..]),
        ("COPY", "/in.txt", &destination[..]),
        ("MOVE", "/in.txt", &destination[..]),
    ] {
        let res = send(&server, method, path, headers, b"");
        assert!(res.status >= 400, "{method} {path}: {}", res.status);
    }
    let mut names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["s.txt"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("s.txt")).unwrap(),
        "outside"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("in.txt")).unwrap(),
        "inside"
    );
}
