//! Resumable uploads (tus 1.0.0): creation, creation-with-upload, offsets, appends,
//! checksums, termination, expiry, resuming after a broken connection and after a
//! restart, and invisibility of what is incomplete.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;

/// A tus request with `body`.
fn tus(
    server: &Server,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTus-Resumable: 1.0.0\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    server.exchange(&bytes, method == "HEAD")
}

fn metadata(name: &str) -> String {
    format!(
        "filename {},filetype dGV4dC9wbGFpbg==",
        base64::engine::general_purpose::STANDARD.encode(name)
    )
}

/// Creates an upload of `length` bytes named `name` in `folder`; its URL.
fn create(server: &Server, folder: &str, name: &str, length: usize) -> String {
    let meta = metadata(name);
    let len = length.to_string();
    let res = tus(
        server,
        "POST",
        folder,
        &[("Upload-Length", &len), ("Upload-Metadata", &meta)],
        b"",
    );
    assert_eq!(res.status, 201, "{}", res.body_text());
    assert_eq!(res.header("tus-resumable").as_deref(), Some("1.0.0"));
    assert!(res.header("upload-expires").is_some());
    res.header("location").expect("the upload's URL")
}

fn patch(server: &Server, url: &str, offset: usize, bytes: &[u8]) -> Response {
    let at = offset.to_string();
    tus(
        server,
        "PATCH",
        url,
        &[
            ("Upload-Offset", &at),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        bytes,
    )
}

/// A connection on which a PATCH from offset 0 announcing `len` bytes has sent its
/// head (and `extra` fields), and no body yet: the test sends what it likes of it.
fn patch_started(server: &Server, url: &str, len: usize, extra: &[(&str, &str)]) -> Conn {
    let mut head = format!(
        "PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {len}\r\n"
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut conn = Conn::open(server);
    conn.send(head.as_bytes());
    conn
}

/// The file that holds the bytes of the upload at `url` so far.
fn upload_bytes_file(root: &std::path::Path, url: &str) -> std::path::PathBuf {
    root.join(".wharf-tus")
        .join(url.split("tus=").nth(1).expect("an id in the URL"))
}

fn offset_of(server: &Server, url: &str) -> Option<String> {
    let res = tus(server, "HEAD", url, &[], b"");
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    res.header("upload-offset")
}

#[test]
fn options_advertise_the_protocol() {
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload", "--max-upload-size", "1MiB"]);
    let res = request(&server, "OPTIONS", "/", &[]);
    assert_eq!(res.header("tus-version").as_deref(), Some("1.0.0"));
    assert_eq!(res.header("tus-max-size").as_deref(), Some("1048576"));
    let ext = res.header("tus-extension").unwrap();
    for e in [
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    ] {
        assert!(ext.split(',').any(|x| x == e), "{ext}");
    }
    assert_eq!(
        res.header("tus-checksum-algorithm").as_deref(),
        Some("sha1")
    );
    let readonly = Server::start(&root, &[]);
    assert_eq!(
        request(&readonly, "OPTIONS", "/", &[]).header("tus-version"),
        None
    );
    let meta = metadata("a.txt");
    let refused = tus(
        &readonly,
        "POST",
        "/",
        &[("Upload-Length", "3"), ("Upload-Metadata", &meta)],
        b"",
    );
    assert_eq!(refused.status, 405);
}

#[test]
fn an_upload_in_pieces_becomes_the_file() {
    let (_t, root) = temp_root();
    std::fs::create_dir(root.join("in")).unwrap();
    let server = Server::start(&root, &["--upload"]);
    let url = create(&server, "/in/", "report.txt", 11);
    assert!(url.starts_with("/in/?tus="), "{url}");
    assert_eq!(offset_of(&server, &url).as_deref(), Some("0"));
    let res = tus(&server, "HEAD", &url, &[], b"");
    assert_eq!(res.header("upload-length").as_deref(), Some("11"));
    assert!(res.header("upload-metadata").unwrap().contains("filename"));

    let res = patch(&server, &url, 0, b"hello ");
    assert_eq!(res.status, 204);
    assert_eq!(res.header("upload-offset").as_deref(), Some("6"));
    // Incomplete: nowhere to be seen.
    assert_eq!(get(&server, "/in/report.txt").status, 404);
    assert!(!get(&server, "/in/").body_text().contains("report"));
    assert_eq!(patch(&server, &url, 3, b"xxx").status, 409, "wrong offset");
    let twice = tus(
        &server,
        "PATCH",
        &url,
        &[
            ("Upload-Offset", "6"),
            ("Upload-Offset", "6"),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        b"x",
    );
    assert_eq!(twice.status, 400, "an offset twice");
    let wrong_type = tus(
        &server,
        "PATCH",
        &url,
        &[("Upload-Offset", "6"), ("Content-Type", "text/plain")],
        b"x",
    );
    assert_eq!(wrong_type.status, 415);
    assert_eq!(
        patch(&server, &url, 6, b"world and more").status,
        413,
        "past the length"
    );
    assert_eq!(offset_of(&server, &url).as_deref(), Some("6"));

    // Media types are case-insensitive (RFC 9110 §8.3.1).
    let res = tus(
        &server,
        "PATCH",
        &url,
        &[
            ("Upload-Offset", "6"),
            ("Content-Type", "Application/Offset+Octet-Stream"),
        ],
        b"world",
    );
    assert_eq!(res.status, 204);
    assert_eq!(get(&server, "/in/report.txt").body, b"hello world");
    // A client that missed the last answer learns that nothing is missing.
    assert_eq!(offset_of(&server, &url).as_deref(), Some("11"));
    assert_eq!(patch(&server, &url, 11, b"").status, 204);
    assert_eq!(get(&server, "/in/report.txt").body, b"hello world");
}

#[test]
fn creation_with_upload_and_checksums() {
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload"]);
    let meta = metadata("c.bin");
    let res = tus(
        &server,
        "POST",
        "/",
        &[
            ("Upload-Length", "8"),
            ("Upload-Metadata", &meta),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        b"abcd",
    );
    assert_eq!(res.status, 201);
    assert_eq!(res.header("upload-offset").as_deref(), Some("4"));
    let url = res.header("location").unwrap();
    let sum = |b: &[u8]| {
        use sha1::Digest as _;
        format!(
            "sha1 {}",
            base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(b))
        )
    };
    let bad = sum(b"nope");
    let res = tus(
        &server,
        "PATCH",
        &url,
        &[
            ("Upload-Offset", "4"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Checksum", &bad),
        ],
        b"efgh",
    );
    assert_eq!(res.status, 460);
    assert_eq!(res.reason, "Checksum Mismatch");
    assert!(res.body_text().contains("460 Checksum Mismatch"));
    assert_eq!(
        offset_of(&server, &url).as_deref(),
        Some("4"),
        "the chunk was discarded"
    );
    let good = sum(b"efgh");
    let res = tus(
        &server,
        "PATCH",
        &url,
        &[
            ("Upload-Offset", "4"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Checksum", &good),
        ],
        b"efgh",
    );
    assert_eq!(res.status, 204);
    assert_eq!(std::fs::read(root.join("c.bin")).unwrap(), b"abcdefgh");
}

#[test]
fn bad_creations_and_termination() {
    let (_t, root) = temp_root();
    write_file(&root, "taken.txt", "x");
    let server = Server::start(&root, &["--upload", "--max-upload-size", "100"]);
    let meta = metadata("big.bin");
    assert_eq!(
        tus(
            &server,
            "POST",
            "/",
            &[("Upload-Length", "101"), ("Upload-Metadata", &meta)],
            b""
        )
        .status,
        413
    );
    assert_eq!(
        tus(&server, "POST", "/", &[("Upload-Metadata", &meta)], b"").status,
        400,
        "no length"
    );
    for (headers, why) in [
        (
            &[
                ("Upload-Length", "5"),
                ("Upload-Metadata", "filename YS50eHQ=,type !!!"),
            ][..],
            "a value that is not base64",
        ),
        (
            &[
                ("Upload-Length", "5"),
                ("Upload-Metadata", "filename YS50eHQ=,filename Yg=="),
            ],
            "a key twice",
        ),
        (
            &[
                ("Upload-Defer-Length", "1"),
                ("Upload-Metadata", "filename YS50eHQ="),
            ],
            "a length deferred (not offered)",
        ),
        (
            &[
                ("Upload-Length", "5"),
                ("Upload-Defer-Length", "2"),
                ("Upload-Metadata", "filename YS50eHQ="),
            ],
            "a length and a deferral",
        ),
        (
            &[
                ("Upload-Length", "5"),
                ("Upload-Length", "5"),
                ("Upload-Metadata", "filename YS50eHQ="),
            ],
            "a length twice",
        ),
    ] {
        assert_eq!(tus(&server, "POST", "/", headers, b"").status, 400, "{why}");
    }
    // A name longer than a file system takes (255 bytes).
    let long = metadata(&"n".repeat(300));
    assert_eq!(
        tus(
            &server,
            "POST",
            "/",
            &[("Upload-Length", "5"), ("Upload-Metadata", &long)],
            b""
        )
        .status,
        400,
        "a name too long"
    );
    // Metadata is optional in tus: without a name, the file is named by the
    // upload's id.
    let unnamed = tus(&server, "POST", "/", &[("Upload-Length", "5")], b"");
    assert_eq!(unnamed.status, 201, "no metadata");
    let url = unnamed.header("location").expect("the upload's URL");
    let id = url.rsplit("?tus=").next().unwrap().to_string();
    assert_eq!(patch(&server, &url, 0, b"hello").status, 204);
    assert_eq!(std::fs::read(root.join(&id)).unwrap(), b"hello");
    let other_keys = tus(
        &server,
        "POST",
        "/",
        &[
            ("Upload-Length", "0"),
            ("Upload-Metadata", "filetype dGV4dC9wbGFpbg=="),
        ],
        b"",
    );
    assert_eq!(other_keys.status, 201, "metadata without a filename");
    // A name given that is no text (Latin-1 "café.txt") is refused, not replaced.
    let latin1 = tus(
        &server,
        "POST",
        "/",
        &[
            ("Upload-Length", "0"),
            ("Upload-Metadata", "filename Y2Fm6S50eHQ="),
        ],
        b"",
    );
    assert_eq!(latin1.status, 400);
    let taken = metadata("taken.txt");
    assert_eq!(
        tus(
            &server,
            "POST",
            "/",
            &[("Upload-Length", "5"), ("Upload-Metadata", &taken)],
            b""
        )
        .status,
        409
    );
    let hidden = metadata(".env");
    assert_eq!(
        tus(
            &server,
            "POST",
            "/",
            &[("Upload-Length", "5"), ("Upload-Metadata", &hidden)],
            b""
        )
        .status,
        400
    );
    let res = server.exchange(
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTus-Resumable: 0.2.2\r\nUpload-Length: 5\r\nContent-Length: 0\r\n\r\n",
        false,
    );
    assert_eq!(res.status, 412);
    assert_eq!(res.header("tus-version").as_deref(), Some("1.0.0"));

    let url = create(&server, "/", "gone.bin", 10);
    assert_eq!(tus(&server, "DELETE", &url, &[], b"").status, 204);
    assert_eq!(tus(&server, "HEAD", &url, &[], b"").status, 404);
    assert_eq!(
        tus(&server, "HEAD", "/?tus=../../etc", &[], b"").status,
        404
    );
    // An upload is its folder's: another folder's URL does not reach it.
    std::fs::create_dir(root.join("other")).unwrap();
    let url = create(&server, "/", "mine.bin", 10);
    let id = url.split("tus=").nth(1).unwrap();
    assert_eq!(
        tus(&server, "HEAD", &format!("/other/?tus={id}"), &[], b"").status,
        404
    );
}

#[test]
fn an_upload_resumes_after_a_broken_connection_and_a_restart() {
    let (_t, root) = temp_root();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut server = Server::start(&root, &["--upload"]);
    let url = create(&server, "/", "big.bin", data.len());
    // The connection breaks 1 MB into a PATCH meant to carry everything.
    let mut conn = patch_started(&server, &url, data.len(), &[]);
    conn.send(&data[..1_000_000]);
    drop(conn);
    // The server keeps what arrived: all of it once the PATCH has seen the end
    // (a HEAD asked earlier would stop it where it was).
    let file = upload_bytes_file(&root, &url);
    let kept = poll_until(IO_TIMEOUT, || {
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        (len == 1_000_000).then_some(())
    });
    assert!(kept.is_some(), "{:?}", std::fs::metadata(&file));
    assert_eq!(offset_of(&server, &url).as_deref(), Some("1000000"));
    // A restart loses nothing.
    server.signal("TERM");
    server.expect_exit();
    let server = Server::start(&root, &["--upload"]);
    let at: usize = offset_of(&server, &url).unwrap().parse().unwrap();
    assert_eq!(at, 1_000_000);
    assert_eq!(patch(&server, &url, at, &data[at..]).status, 204);
    assert_eq!(std::fs::read(root.join("big.bin")).unwrap(), data);
}

/// A client that starts over while its old PATCH still waits for bytes (its
/// connection not yet known dead) is not kept waiting: the new request stops the
/// old one where it is, keeping what arrived, as tusd does.
#[test]
fn a_new_request_stops_an_older_patch_of_the_same_upload() {
    let (_t, root) = temp_root();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let server = Server::start(&root, &["--upload"]);
    let url = create(&server, "/", "stalled.bin", data.len());
    let mut conn = patch_started(&server, &url, data.len(), &[]);
    conn.send(&data[..800_000]);
    let file = upload_bytes_file(&root, &url);
    let arrived = poll_until(IO_TIMEOUT, || {
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        (len >= 500_000).then_some(())
    });
    assert!(arrived.is_some(), "{:?}", std::fs::metadata(&file));
    // The old connection stays open and silent; a HEAD is answered, not 423.
    let res = tus(&server, "HEAD", &url, &[], b"");
    assert_eq!(res.status, 200);
    let at: usize = res
        .header("upload-offset")
        .expect("Upload-Offset")
        .parse()
        .unwrap();
    assert!((500_000..=800_000).contains(&at), "{at}");
    assert_eq!(patch(&server, &url, at, &data[at..]).status, 204);
    assert_eq!(std::fs::read(root.join("stalled.bin")).unwrap(), data);
    drop(conn);
}

#[test]
fn incomplete_uploads_expire() {
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload", "--upload-expiry", "2s"]);
    let url = create(&server, "/", "late.bin", 10);
    // On a loaded machine the expiry may come before this first PATCH does.
    let first = patch(&server, &url, 0, b"12345").status;
    assert!(first == 204 || first == 410, "{first}");
    let gone = poll_until(Duration::from_secs(10), || {
        let status = tus(&server, "HEAD", &url, &[], b"").status;
        (status == 410 || status == 404).then_some(status)
    });
    assert!(gone.is_some(), "the upload outlived its expiry");
    assert_eq!(patch(&server, &url, 5, b"67890").status, 404);
    assert!(!root.join("late.bin").exists());
    let state = root.join(".wharf-tus");
    let left: Vec<_> = std::fs::read_dir(&state).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The folder of the tus-js-client scripts, if node and the client are installed
/// (CI installs them: there, their absence fails the test).
fn tus_client() -> Option<std::path::PathBuf> {
    let client = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tus-client");
    let ready = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && client.join("node_modules/tus-js-client").exists();
    if !ready {
        eprintln!("skipped: needs node and `npm ci` in tests/tus-client");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install node and tus-js-client"
        );
        return None;
    }
    Some(client)
}

#[test]
fn tus_js_client_resumes_a_100_mib_upload() {
    let Some(client) = tus_client() else { return };
    let (tmp, root) = temp_root();
    let data: Vec<u8> = (0..100 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let source = tmp.path().join("source.bin");
    std::fs::write(&source, &data).unwrap();
    let server = Server::start(&root, &["--upload"]);
    let out = std::process::Command::new("timeout")
        .args(["120", "node"])
        .arg(client.join("upload.mjs"))
        .arg(format!("http://{}/", server.addr()))
        .arg(&source)
        .arg("uploaded.bin")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let resumed: usize = stdout
        .trim()
        .strip_prefix("resumed-from ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        resumed > 0 && resumed < data.len(),
        "resumed from {resumed}"
    );
    assert!(
        std::fs::read(root.join("uploaded.bin")).unwrap() == data,
        "bytes differ"
    );
}

#[test]
fn a_request_naming_an_upload_never_acts_on_its_folder() {
    let (_t, root) = temp_root();
    write_file(&root, "up/kept.txt", "kept");
    let server = Server::start(&root, &["--upload", "--delete"]);
    let url = create(&server, "/up/", "part.bin", 10);
    // Without Tus-Resumable: 412 with the versions spoken, whatever the method.
    for method in ["DELETE", "PATCH", "PUT", "POST", "MKCOL"] {
        let res = request(&server, method, &url, &[]);
        assert_eq!(res.status, 412, "{method}");
        assert_eq!(res.header("tus-version").as_deref(), Some("1.0.0"));
        assert_eq!(res.header("tus-resumable").as_deref(), Some("1.0.0"));
    }
    assert!(root.join("up/kept.txt").exists(), "the folder is untouched");
    assert_eq!(offset_of(&server, &url).as_deref(), Some("0"));
    // A version not spoken: 412, which says the one that is.
    let res = server.exchange(
        format!(
            "DELETE {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTus-Resumable: 9.9.9\r\n\r\n"
        )
        .as_bytes(),
        false,
    );
    assert_eq!(res.status, 412);
    assert_eq!(res.header("tus-version").as_deref(), Some("1.0.0"));
    assert_eq!(res.header("tus-resumable").as_deref(), Some("1.0.0"));
    // Reads of the URL are the folder's.
    assert_eq!(get(&server, &url).status, 200);
    assert_eq!(offset_of(&server, &url).as_deref(), Some("0"));
    // OPTIONS tells the protocol, whatever version the client says it speaks.
    for version in [None, Some("1.0.0"), Some("9.9.9")] {
        for target in ["/up/", url.as_str()] {
            let headers: Vec<_> = version.map(|v| ("Tus-Resumable", v)).into_iter().collect();
            let res = request(&server, "OPTIONS", target, &headers);
            assert_eq!(res.status, 200, "{target} {version:?}");
            assert_eq!(res.header("tus-version").as_deref(), Some("1.0.0"));
            // The upload's URL lists the methods it answers; its folder, its own.
            let allow = res.header("allow").unwrap_or_default();
            let patch = allow.split(", ").any(|m| m == "PATCH");
            assert_eq!(patch, target == url, "{target}: {allow}");
        }
    }
}

/// What tus-js-client makes of an upload in `mode` (edge.mjs): its last line.
fn tus_js_client_edge(server: &Server, mode: &str, name: &str, taken: &std::path::Path) -> String {
    let client = tus_client().expect("checked by the caller");
    let out = std::process::Command::new("timeout")
        .args(["60", "node"])
        .arg(client.join("edge.mjs"))
        .arg(format!("http://{}/", server.addr()))
        .arg(mode)
        .arg(name)
        .arg(taken)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn tus_js_client_sees_empty_overridden_and_taken_uploads_as_they_are() {
    if tus_client().is_none() {
        return;
    }
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload"]);
    let nowhere = root.join("unused");
    assert_eq!(
        tus_js_client_edge(&server, "empty", "empty.txt", &nowhere),
        "success"
    );
    assert_eq!(std::fs::read(root.join("empty.txt")).unwrap(), b"");
    assert_eq!(
        tus_js_client_edge(&server, "override", "over.txt", &nowhere),
        "success"
    );
    assert_eq!(
        std::fs::read(root.join("over.txt")).unwrap(),
        b"tus-js-client was here\n"
    );
    // Another writer takes the name between creation and the last byte: the
    // other writer's file stays, and the upload goes in beside it.
    let taken = root.join("taken.txt");
    assert_eq!(
        tus_js_client_edge(&server, "taken", "taken.txt", &taken),
        "success"
    );
    assert_eq!(std::fs::read(&taken).unwrap(), b"another writer\n");
    assert!(root.join("taken (1).txt").exists());
}

#[test]
fn empty_uploads_method_overrides_and_names_taken_meanwhile() {
    let (_t, root) = temp_root();
    write_file(&root, "plain.txt", "plain");
    let server = Server::start(&root, &["--upload"]);
    let tus_state = |root: &std::path::Path| {
        std::fs::read_dir(root.join(".wharf-tus"))
            .map(|d| d.count())
            .unwrap_or(0)
    };

    // An upload of nothing is complete when created.
    let url = create(&server, "/", "empty.txt", 0);
    assert_eq!(std::fs::read(root.join("empty.txt")).unwrap(), b"");
    assert_eq!(offset_of(&server, &url).as_deref(), Some("0"));

    // The name is taken before the last byte (another upload of the same name
    // finished first): the other file stays, and this one goes in beside it under
    // a numbered name, its bytes kept.
    let url = create(&server, "/", "race.txt", 3);
    let second = create(&server, "/", "race.txt", 3);
    write_file(&root, "race.txt", "other");
    let res = patch(&server, &url, 0, b"abc");
    assert_eq!(res.status, 204);
    assert_eq!(res.header("tus-resumable").as_deref(), Some("1.0.0"));
    assert_eq!(patch(&server, &second, 0, b"def").status, 204);
    assert_eq!(std::fs::read(root.join("race.txt")).unwrap(), b"other");
    assert_eq!(std::fs::read(root.join("race (1).txt")).unwrap(), b"abc");
    assert_eq!(std::fs::read(root.join("race (2).txt")).unwrap(), b"def");
    assert_eq!(offset_of(&server, &url).as_deref(), Some("3"));

    // X-HTTP-Method-Override on a POST: PATCH, HEAD and DELETE as tus requires.
    let url = create(&server, "/", "over.txt", 4);
    let res = tus(
        &server,
        "POST",
        &url,
        &[
            ("X-HTTP-Method-Override", "PATCH"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        b"ab",
    );
    assert_eq!(res.status, 204);
    assert_eq!(res.header("upload-offset").as_deref(), Some("2"));
    let res = tus(
        &server,
        "POST",
        &url,
        &[("X-HTTP-Method-Override", "HEAD")],
        b"",
    );
    assert_eq!(res.status, 200);
    assert_eq!(res.header("upload-offset").as_deref(), Some("2"));
    let res = tus(
        &server,
        "POST",
        &url,
        &[("X-HTTP-Method-Override", "DELETE")],
        b"",
    );
    assert_eq!(res.status, 204);
    assert_eq!(tus(&server, "HEAD", &url, &[], b"").status, 404);

    // A method tus has no use for, on an upload: 405 saying what is allowed.
    let url = create(&server, "/", "put.txt", 4);
    let res = tus(&server, "PUT", &url, &[], b"abcd");
    assert_eq!(res.status, 405);
    assert_eq!(
        res.header("allow").as_deref(),
        Some("GET, HEAD, OPTIONS, PATCH, DELETE")
    );

    // A read that says it speaks tus is still a read.
    let res = tus(&server, "GET", "/plain.txt", &[], b"");
    assert_eq!((res.status, res.body_text().as_str()), (200, "plain"));
    let res = tus(&server, "HEAD", "/plain.txt", &[], b"");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-length").as_deref(), Some("5"));
    assert_eq!(tus(&server, "GET", "/", &[], b"").status, 200);

    // More than is missing, announced with Expect: refused before the body is sent,
    // and bytes past the end of a finished upload are refused too.
    let url = create(&server, "/", "expect.txt", 4);
    let mut conn = Conn::open(&server);
    conn.send(
        format!(
            "PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n\
             Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n\
             Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(
        conn.read_response(false).status,
        413,
        "no 100 Continue first"
    );
    assert_eq!(patch(&server, &url, 0, b"abcd").status, 204);
    assert_eq!(patch(&server, &url, 4, b"more").status, 413);
    assert_eq!(std::fs::read(root.join("expect.txt")).unwrap(), b"abcd");

    // A signed length is not a length.
    let meta = metadata("signed.txt");
    let res = tus(
        &server,
        "POST",
        "/",
        &[("Upload-Length", "+5"), ("Upload-Metadata", &meta)],
        b"",
    );
    assert_eq!(res.status, 400);

    // Creation whose first bytes fail their checksum: 460, and nothing is left of
    // an upload whose URL the client never learnt.
    let before = tus_state(&root);
    let res = tus(
        &server,
        "POST",
        "/",
        &[
            ("Upload-Length", "8"),
            ("Upload-Metadata", &metadata("sum.bin")),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Checksum", "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ],
        b"abcd",
    );
    assert_eq!(res.status, 460);
    assert_eq!(res.header("location"), None);
    assert_eq!(tus_state(&root), before);
}

#[test]
fn a_chunk_with_a_checksum_counts_only_whole() {
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload"]);
    let data = vec![7u8; 2_000_000];
    let url = create(&server, "/", "c.bin", data.len());
    let sum = {
        use sha1::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(&data))
    };
    let checksum = format!("sha1 {sum}");
    let mut conn = patch_started(&server, &url, data.len(), &[("Upload-Checksum", &checksum)]);
    conn.send(&data[..1_000_000]);
    // The bytes are in the upload's file (the upload is busy until the PATCH ends).
    let file = upload_bytes_file(&root, &url);
    let arrived = poll_until(IO_TIMEOUT, || {
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        // Some of what was sent may still wait in buffers on the way.
        (len >= 500_000).then_some(())
    });
    assert!(arrived.is_some(), "{:?}", std::fs::metadata(&file));
    drop(conn);
    // Cut short, it could not be checked: none of it stays (the checksum
    // extension discards such a chunk).
    let discarded = poll_until(IO_TIMEOUT, || offset_of(&server, &url).filter(|o| o == "0"));
    assert!(discarded.is_some(), "offset {:?}", offset_of(&server, &url));
    let header = format!("sha1 {sum}");
    let res = tus(
        &server,
        "PATCH",
        &url,
        &[
            ("Upload-Offset", "0"),
            ("Upload-Checksum", &header),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        &data,
    );
    assert_eq!(res.status, 204);
    assert_eq!(std::fs::read(root.join("c.bin")).unwrap(), data);
}

#[test]
fn a_patch_tells_the_expiry_it_renewed() {
    let (_t, root) = temp_root();
    let server = Server::start(&root, &["--upload"]);
    let url = create(&server, "/", "e.bin", 10);
    let res = patch(&server, &url, 0, b"12345");
    assert_eq!(res.status, 204);
    let head = tus(&server, "HEAD", &url, &[], b"");
    assert_eq!(res.header("upload-expires"), head.header("upload-expires"));
    // The last PATCH completes the upload, whose URL still answers until it
    // expires: that PATCH says when too (the expiration extension asks it of
    // every PATCH response while the upload will expire).
    let last = patch(&server, &url, 5, b"67890");
    assert_eq!(last.status, 204);
    assert!(last.header("upload-expires").is_some());
    let head = tus(&server, "HEAD", &url, &[], b"");
    assert_eq!(last.header("upload-expires"), head.header("upload-expires"));
    // A PATCH at the end of the finished upload is answered the same way.
    let again = patch(&server, &url, 10, b"");
    assert_eq!(again.status, 204);
    assert_eq!(
        again.header("upload-expires"),
        head.header("upload-expires")
    );
}

#[test]
fn an_upload_is_reported_complete_only_with_its_file_in_place() {
    let (_t, root) = temp_root();
    std::fs::create_dir(root.join("drop")).unwrap();
    std::fs::create_dir(root.join("gone")).unwrap();
    let server = Server::start(&root, &["--upload"]);

    // The folder is removed before the last byte: that PATCH fails, and takes its
    // bytes back, so that the client sends them again rather than take an offset
    // equal to the length for a file in place.
    let url = create(&server, "/drop/", "f.txt", 4);
    assert_eq!(patch(&server, &url, 0, b"ab").status, 204);
    std::fs::remove_dir(root.join("drop")).unwrap();
    assert_eq!(patch(&server, &url, 2, b"cd").status, 404);
    assert_eq!(offset_of(&server, &url).as_deref(), Some("2"));
    std::fs::create_dir(root.join("drop")).unwrap();
    assert_eq!(patch(&server, &url, 2, b"cd").status, 204);
    assert_eq!(std::fs::read(root.join("drop/f.txt")).unwrap(), b"abcd");

    // Every byte in but the file not placed (the process stopped between the two):
    // the next HEAD places it before it says the upload is complete...
    let url = create(&server, "/", "stuck.txt", 3);
    std::fs::write(upload_bytes_file(&root, &url), b"xyz").unwrap();
    assert_eq!(offset_of(&server, &url).as_deref(), Some("3"));
    assert_eq!(std::fs::read(root.join("stuck.txt")).unwrap(), b"xyz");
    // ... and so does an empty PATCH at the end.
    let url = create(&server, "/", "stuck2.txt", 3);
    std::fs::write(upload_bytes_file(&root, &url), b"uvw").unwrap();
    let res = patch(&server, &url, 3, b"");
    assert_eq!(res.status, 204);
    assert_eq!(res.header("upload-offset").as_deref(), Some("3"));
    assert_eq!(std::fs::read(root.join("stuck2.txt")).unwrap(), b"uvw");
    // Where it cannot be placed, HEAD says why instead.
    let url = create(&server, "/gone/", "g.txt", 3);
    std::fs::write(upload_bytes_file(&root, &url), b"xyz").unwrap();
    std::fs::remove_dir(root.join("gone")).unwrap();
    let res = tus(&server, "HEAD", &url, &[], b"");
    assert_eq!(res.status, 404);
    assert_eq!(res.header("upload-offset"), None);

    // A name as long as names may be, taken meanwhile: the numbered name is
    // shortened to fit.
    let long = format!("{}.txt", "M".repeat(251));
    let url = create(&server, "/", &long, 2);
    write_file(&root, &long, "other");
    assert_eq!(patch(&server, &url, 0, b"ok").status, 204);
    let numbered = format!("{} (1).txt", "M".repeat(247));
    assert_eq!(numbered.len(), 255);
    assert_eq!(std::fs::read(root.join(&numbered)).unwrap(), b"ok");

    // Concatenation is not offered: a partial upload is refused, not taken for a
    // whole one to be put in the folder under its id.
    let res = tus(
        &server,
        "POST",
        "/",
        &[("Upload-Length", "3"), ("Upload-Concat", "partial")],
        b"",
    );
    assert_eq!(res.status, 501);
    let res = tus(
        &server,
        "POST",
        "/",
        &[("Upload-Concat", "final;/?tus=a /?tus=b")],
        b"",
    );
    assert_eq!(res.status, 501);
}

/// `overwrite` in `Upload-Metadata` (as a form's field) lets an upload replace a
/// file of its name, in one step; without it the name is refused up front.
#[test]
fn an_upload_asking_to_overwrite_replaces_the_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_t, root) = temp_root();
    write_file(&root, "same.txt", "old");
    std::fs::set_permissions(
        root.join("same.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::create_dir(root.join("folder.txt")).unwrap();
    write_file(&root, "wharf.toml", "");
    let config = root.join("wharf.toml");
    let server = Server::start(&root, &["--upload", "--config", config.to_str().unwrap()]);
    let create_with = |name: &str, extra: &str| {
        let meta = format!("{},{extra}", metadata(name));
        tus(
            &server,
            "POST",
            "/",
            &[("Upload-Length", "3"), ("Upload-Metadata", &meta)],
            b"",
        )
    };
    let no = base64::engine::general_purpose::STANDARD.encode("0");
    assert_eq!(
        create_with("same.txt", &format!("overwrite {no}")).status,
        409
    );
    let yes = base64::engine::general_purpose::STANDARD.encode("1");
    let res = create_with("same.txt", &format!("overwrite {yes}"));
    assert_eq!(res.status, 201);
    let url = res.header("location").unwrap();
    assert_eq!(std::fs::read(root.join("same.txt")).unwrap(), b"old");
    assert_eq!(patch(&server, &url, 0, b"new").status, 204);
    assert_eq!(std::fs::read(root.join("same.txt")).unwrap(), b"new");
    assert!(!root.join("same (1).txt").exists());
    // As a PUT's replacement, the file keeps its mode.
    let mode = std::fs::metadata(root.join("same.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // wharf's own configuration is never written.
    assert_eq!(
        create_with("wharf.toml", &format!("overwrite {yes}")).status,
        403
    );
    // A folder is never replaced.
    assert_eq!(
        create_with("folder.txt", &format!("overwrite {yes}")).status,
        409
    );
}
