//! The response cache never serves a stale or wrong file: every change to a file —
//! rewrite, same-size rewrite, replacement by rename, truncation, deletion — is seen by
//! the very next request, and requests running concurrently with the changes only ever
//! see one whole version.

mod common;

use std::collections::HashSet;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use common::*;

fn versions() -> Vec<Vec<u8>> {
    vec![
        b"version one of the file\n".repeat(40),
        b"VERSION ONE OF THE FILE\n".repeat(40), // same size, new bytes
        b"version three, via rename\n".repeat(10),
        b"4".to_vec(),
        Vec::new(),
    ]
}

/// Requests `/f.txt` in a loop on keep-alive connections until `stop`, recording every
/// 200 body; any response whose Content-Length disagrees with its body is a failure.
fn load(server_addr: String, stop: Arc<AtomicBool>, seen: Arc<Mutex<Vec<Vec<u8>>>>) {
    while !stop.load(Ordering::Relaxed) {
        let mut conn = Conn::new(connect(&server_addr));
        for _ in 0..50 {
            conn_send(&mut conn, b"GET /f.txt HTTP/1.1\r\nHost: t\r\n\r\n");
            let res = conn.read_response(false);
            match res.status {
                200 => {
                    assert_eq!(res.content_length(), Some(res.body.len()));
                    seen.lock().unwrap().push(res.body);
                }
                // 503 (with Retry-After) is the answer for a file that keeps changing
                // while it is read.
                404 | 503 => {}
                other => panic!("unexpected status {other} under load"),
            }
        }
    }
}

fn conn_send(conn: &mut Conn<std::net::TcpStream>, bytes: &[u8]) {
    use std::io::Write;
    conn.stream().write_all(bytes).unwrap();
}

#[test]
fn every_change_is_seen_at_once_and_load_never_sees_a_mix() {
    let (tmp, root) = temp_root();
    let server = Server::start(&root, &[]);
    let versions = versions();
    let file = root.join("f.txt");
    fs::write(&file, &versions[0]).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let loaders: Vec<_> = (0..2)
        .map(|_| {
            let (addr, stop, seen) = (server.addr().to_string(), stop.clone(), seen.clone());
            thread::spawn(move || load(addr, stop, seen))
        })
        .collect();

    for round in 0..20 {
        // Rewrite in place.
        fs::write(&file, &versions[0]).unwrap();
        assert_eq!(get(&server, "/f.txt").body, versions[0], "round {round}");
        // Same size, different bytes.
        fs::write(&file, &versions[1]).unwrap();
        assert_eq!(get(&server, "/f.txt").body, versions[1], "round {round}");
        // Replace by rename (a new inode), as deploy tools do.
        let staged = tmp.path().join("staged");
        fs::write(&staged, &versions[2]).unwrap();
        fs::rename(&staged, &file).unwrap();
        assert_eq!(get(&server, "/f.txt").body, versions[2], "round {round}");
        // Truncate in place.
        fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(1)
            .unwrap();
        fs::write(&file, &versions[3]).unwrap();
        assert_eq!(get(&server, "/f.txt").body, versions[3], "round {round}");
        fs::File::create(&file).unwrap();
        let empty = get(&server, "/f.txt");
        assert_eq!((empty.status, empty.body.len()), (200, 0), "round {round}");
        // Delete.
        fs::remove_file(&file).unwrap();
        assert_eq!(get(&server, "/f.txt").status, 404, "round {round}");
        fs::write(&file, &versions[0]).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.join().expect("load thread");
    }
    let allowed: HashSet<Vec<u8>> = versions.into_iter().collect();
    // Truncation to one byte before the rewrite is a legitimate intermediate state.
    let seen = seen.lock().unwrap();
    assert!(
        !seen.is_empty(),
        "the load threads made no successful requests"
    );
    for body in seen.iter() {
        assert!(
            allowed.contains(body) || body.as_slice() == b"v",
            "served a body that was never a whole version: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
    }
}

#[test]
fn compressed_variants_follow_the_file() {
    let (_tmp, root) = temp_root();
    let server = Server::start(&root, &[]);
    let file = root.join("app.js");
    for round in 0..5 {
        let text = format!("console.log('round {round}');\n").repeat(200);
        fs::write(&file, &text).unwrap();
        let res = request(&server, "GET", "/app.js", &[("Accept-Encoding", "gzip")]);
        assert_eq!(res.header("content-encoding").as_deref(), Some("gzip"));
        assert_eq!(gunzip(&res.body), text.as_bytes(), "round {round}");
    }
}

#[test]
fn listings_show_added_and_removed_entries_at_once() {
    let (_tmp, root) = temp_root();
    fs::create_dir(root.join("d")).unwrap();
    let server = Server::start(&root, &[]);
    for i in 0..10 {
        let name = format!("entry-{i}.txt");
        fs::write(root.join("d").join(&name), "x").unwrap();
        let page = get(&server, "/d/").body_text();
        assert!(page.contains(&name), "new {name} missing");
        fs::remove_file(root.join("d").join(&name)).unwrap();
        let page = get(&server, "/d/").body_text();
        assert!(!page.contains(&name), "removed {name} still listed");
    }
}

#[test]
fn an_index_file_added_or_removed_takes_effect_at_once() {
    let (_tmp, root) = temp_root();
    fs::create_dir(root.join("d")).unwrap();
    let server = Server::start(&root, &[]);
    assert!(get(&server, "/d/").body_text().contains("Index of"));
    fs::write(root.join("d/index.html"), "<p>home</p>").unwrap();
    assert_eq!(get(&server, "/d/").body, b"<p>home</p>");
    fs::remove_file(root.join("d/index.html")).unwrap();
    assert!(get(&server, "/d/").body_text().contains("Index of"));
}

#[test]
fn a_file_replaced_by_a_symlink_out_of_the_root_is_not_served_from_cache() {
    let (tmp, root) = temp_root();
    fs::write(tmp.path().join("secret.txt"), "TOPSECRET").unwrap();
    fs::write(root.join("f.txt"), "public").unwrap();
    let server = Server::start(&root, &[]);
    assert_eq!(get(&server, "/f.txt").body, b"public");
    fs::remove_file(root.join("f.txt")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("f.txt")).unwrap();
    let res = get(&server, "/f.txt");
    assert_eq!(res.status, 404);
    assert!(!res.body_text().contains("TOPSECRET"));
}

#[test]
fn a_preferred_index_file_appearing_takes_over_at_once() {
    let (_tmp, root) = temp_root();
    fs::create_dir(root.join("d")).unwrap();
    fs::write(root.join("d/index.htm"), "old index").unwrap();
    let server = Server::start(&root, &[]);
    assert_eq!(get(&server, "/d/").body, b"old index");
    assert_eq!(get(&server, "/d/").body, b"old index");
    fs::write(root.join("d/index.html"), "new index").unwrap();
    assert_eq!(get(&server, "/d/").body, b"new index");
}

#[test]
fn a_file_written_through_a_name_outside_the_root_is_seen_at_once() {
    let (tmp, root) = temp_root();
    fs::create_dir(root.join("d")).unwrap();
    let file = root.join("d/f.txt");
    fs::write(&file, "first").unwrap();
    // Another name for the same file, in a folder the server knows nothing of.
    let other = tmp.path().join("other-name.txt");
    fs::hard_link(&file, &other).unwrap();
    let server = Server::start(&root, &[]);
    for round in 0..10 {
        assert_eq!(get(&server, "/d/f.txt").body, b"first", "round {round}");
        assert_eq!(get(&server, "/d/f.txt").body, b"first", "round {round}");
        // In place (same inode), same size, through the other name.
        fs::write(&other, "FIRST").unwrap();
        assert_eq!(get(&server, "/d/f.txt").body, b"FIRST", "round {round}");
        // A change beside it, then one to it again.
        fs::write(root.join(format!("d/beside-{round}")), "x").unwrap();
        assert_eq!(get(&server, "/d/f.txt").body, b"FIRST", "round {round}");
        fs::write(&other, "first").unwrap();
    }
}

#[test]
fn a_folder_on_the_path_renamed_away_and_replaced_is_seen_at_once() {
    let (_tmp, root) = temp_root();
    let server = Server::start(&root, &[]);
    for round in 0..10 {
        let _ = fs::remove_dir_all(root.join("a"));
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/f.txt"), format!("old {round}")).unwrap();
        assert_eq!(
            get(&server, "/a/b/f.txt").body_text(),
            format!("old {round}")
        );
        assert_eq!(
            get(&server, "/a/b/f.txt").body_text(),
            format!("old {round}")
        );
        // The outer folder moves away, a new one takes its place: the file that
        // was cached still exists, unchanged, under another path.
        let aside = root.join(format!("aside-{round}"));
        fs::rename(root.join("a"), &aside).unwrap();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/f.txt"), format!("new {round}")).unwrap();
        assert_eq!(
            get(&server, "/a/b/f.txt").body_text(),
            format!("new {round}")
        );
        fs::remove_dir_all(&aside).unwrap();
    }
}

#[test]
fn a_sidecar_passed_over_as_older_is_served_once_it_is_newer() {
    use std::time::{Duration, SystemTime};
    let (_tmp, root) = temp_root();
    let original = "console.log('compressed by the server');\n".repeat(40);
    let shipped = "console.log('compressed by the site');\n".repeat(40);
    fs::write(root.join("app.js"), &original).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, shipped.as_bytes()).unwrap();
    fs::write(root.join("app.js.gz"), gz.finish().unwrap()).unwrap();
    let set_age = |name: &str, secs: u64| {
        let file = fs::File::options()
            .write(true)
            .open(root.join(name))
            .unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    };
    set_age("app.js.gz", 200);
    set_age("app.js", 100);
    let server = Server::start(&root, &[]);
    let gzipped = || {
        let res = request(&server, "GET", "/app.js", &[("Accept-Encoding", "gzip")]);
        assert_eq!(res.header("content-encoding").as_deref(), Some("gzip"));
        String::from_utf8(gunzip(&res.body)).unwrap()
    };
    // Older than the file: made from an earlier version, passed over.
    assert_eq!(gzipped(), original);
    assert_eq!(gzipped(), original);
    // Touched newer, in place: the folder does not change, the sidecar does.
    set_age("app.js.gz", 50);
    assert_eq!(gzipped(), shipped);
}

#[test]
fn a_large_file_rewritten_in_place_under_compressed_load_is_whole_once_written() {
    // Over the hot cache's 1 MiB: compressed from the file on each variant miss.
    let version = |n: usize| format!("<v{n:07}>").repeat(2_100_000 / 10).into_bytes();
    let (_tmp, root) = temp_root();
    let file = root.join("big.js");
    fs::write(&file, version(0)).unwrap();
    let server = Server::start(&root, &["--workers", "2"]);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (addr, stop) = (server.addr().to_string(), stop.clone());
            thread::spawn(move || {
                let mut conn = Conn::new(connect(&addr));
                while !stop.load(Ordering::Relaxed) {
                    conn_send(
                        &mut conn,
                        b"GET /big.js HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n",
                    );
                    let res = conn.read_response(false);
                    assert!(matches!(res.status, 200 | 503), "{}", res.status);
                }
            })
        })
        .collect();
    for n in 1..=20 {
        // One write(2) of the whole new version over the old one: readers may see a
        // mix while it runs, never once it has returned.
        let mut open = fs::File::options().write(true).open(&file).unwrap();
        std::io::Write::write_all(&mut open, &version(n)).unwrap();
        drop(open);
        let res = request(&server, "GET", "/big.js", &[("Accept-Encoding", "gzip")]);
        assert_eq!(res.status, 200, "change {n}");
        let body = if res.header("content-encoding").is_some() {
            gunzip(&res.body)
        } else {
            res.body
        };
        assert!(
            body == version(n),
            "change {n}: not the whole of the version written"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader");
    }
}
