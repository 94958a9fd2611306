//! Folders as ZIP archives (`?zip`, `?zip=deflate`): what goes in (and what never
//! does), that the announced length is what is sent, that ranges resume a download,
//! and that real readers — Python's `zipfile` and Info-ZIP's `unzip -t` — accept the
//! result, ZIP64 included.

mod common;

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use common::*;

/// Runs `script` with Python, the archive's path as `sys.argv[1]`; its stdout.
fn python(script: &str, zip: &Path) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(zip)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Member names, one per line, after `zipfile` has checked every CRC.
const LIST_AND_TEST: &str = "import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
bad = z.testzip()
assert bad is None, bad
for i in z.infolist():
    print(i.filename, i.file_size, i.compress_type)";

fn save(bytes: &[u8], dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn fixture(root: &Path) {
    write_file(root, "a.txt", "hello\n");
    write_file(
        root,
        "sub/b.bin",
        (0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    );
    write_file(root, "sub/deep/ü name.txt", "ünïcödé\n");
    write_file(root, ".env", "SECRET=1\n");
    write_file(root, "sub/.git/config", "[core]\n");
    std::fs::create_dir_all(root.join("empty")).unwrap();
}

#[test]
fn stored_archive_holds_the_folder_and_its_length_is_exact() {
    let (tmp, root) = temp_root();
    fixture(&root);
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, "not served\n").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link-out.txt")).unwrap();
    let server = Server::start(&root, &[]);

    let res = get(&server, "/?zip");
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/zip")
    );
    assert_eq!(res.content_length(), Some(res.body.len()));
    assert_eq!(res.header("accept-ranges").as_deref(), Some("bytes"));
    let disposition = res.header("content-disposition").unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    let zip = save(&res.body, tmp.path(), "all.zip");
    let listed = python(LIST_AND_TEST, &zip);
    let names: Vec<&str> = listed
        .lines()
        .map(|l| l.rsplitn(3, ' ').nth(2).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "empty/",
            "sub/",
            "a.txt",
            "sub/deep/",
            "sub/b.bin",
            "sub/deep/ü name.txt"
        ],
        "{listed}"
    );
    // Stored, not compressed.
    assert!(listed.contains("sub/b.bin 200000 0"), "{listed}");

    // The bytes are the files' bytes.
    let extract = tmp.path().join("x");
    python(
        &format!("import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall({extract:?})"),
        &zip,
    );
    for rel in ["a.txt", "sub/b.bin", "sub/deep/ü name.txt"] {
        assert_eq!(
            std::fs::read(extract.join(rel)).unwrap(),
            std::fs::read(root.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert!(extract.join("empty").is_dir());

    assert!(
        have("unzip") || std::env::var_os("CI").is_none(),
        "CI must install unzip"
    );
    if have("unzip") {
        let out = Command::new("unzip").arg("-t").arg(&zip).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // HEAD announces the same length; a second GET is the same archive.
    let head = request(&server, "HEAD", "/?zip", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(res.body.len()));
    let again = get(&server, "/?zip");
    assert_eq!(again.header("etag"), res.header("etag"));
    assert_eq!(again.body, res.body);
}

#[test]
fn a_subfolder_is_archived_under_its_own_name() {
    let (tmp, root) = temp_root();
    fixture(&root);
    let server = Server::start(&root, &["--hidden"]);
    let res = get(&server, "/sub/?zip");
    assert_eq!(res.status, 200);
    assert!(res
        .header("content-disposition")
        .unwrap()
        .contains("filename=\"sub.zip\""));
    let listed = python(LIST_AND_TEST, &save(&res.body, tmp.path(), "sub.zip"));
    // --hidden lists dotfiles, so they are archived too.
    assert!(listed.contains(".git/config 7 0"), "{listed}");
    assert!(listed.contains("b.bin 200000 0"), "{listed}");
    assert!(!listed.contains("a.txt"), "{listed}");
    // Without the slash, the folder's canonical URL keeps the query.
    let res = get(&server, "/sub?zip");
    assert_eq!(res.status, 301);
    assert_eq!(res.header("location").as_deref(), Some("/sub/?zip"));
}

#[test]
fn ranges_resume_a_download() {
    let (tmp, root) = temp_root();
    fixture(&root);
    let server = Server::start(&root, &[]);
    let full = get(&server, "/?zip");
    let etag = full.header("etag").unwrap();
    let total = full.body.len();
    for cut in [1, 100, total / 2, total - 22, total - 1] {
        let rest = request(
            &server,
            "GET",
            "/?zip",
            &[("Range", &format!("bytes={cut}-")), ("If-Range", &etag)],
        );
        assert_eq!(rest.status, 206, "cut at {cut}");
        assert_eq!(
            rest.header("content-range").unwrap(),
            format!("bytes {cut}-{}/{total}", total - 1)
        );
        assert_eq!(rest.content_length(), Some(total - cut));
        assert_eq!(rest.body, &full.body[cut..], "cut at {cut}");
    }
    // A middle slice.
    let mid = request(&server, "GET", "/?zip", &[("Range", "bytes=50-149")]);
    assert_eq!(mid.status, 206);
    assert_eq!(mid.body, &full.body[50..150]);
    // An archive that changed since: the whole new one.
    write_file(&root, "a.txt", "changed\n");
    let stale = request(
        &server,
        "GET",
        "/?zip",
        &[("Range", "bytes=100-"), ("If-Range", &etag)],
    );
    assert_eq!(stale.status, 200);
    assert_ne!(stale.header("etag").unwrap(), etag);
    python(LIST_AND_TEST, &save(&stale.body, tmp.path(), "new.zip"));
    // Beyond the end: 416 with the length.
    let past = request(
        &server,
        "GET",
        "/?zip",
        &[("Range", &format!("bytes={}-", total + 10))],
    );
    assert_eq!(past.status, 416);
    assert!(past
        .header("content-range")
        .unwrap()
        .starts_with("bytes */"));
    // Conditionals: the ETag revalidates.
    let new_tag = stale.header("etag").unwrap();
    let not_modified = request(&server, "GET", "/?zip", &[("If-None-Match", &new_tag)]);
    assert_eq!(not_modified.status, 304);
    // A file replaced by one of the same size and time (`cp -p`) is a new archive.
    let kept = std::fs::metadata(root.join("a.txt"))
        .unwrap()
        .modified()
        .unwrap();
    write_file(&root, "a.txt", "CHANGED\n");
    set_mtime(&root.join("a.txt"), kept);
    let replaced = get(&server, "/?zip");
    assert_ne!(replaced.header("etag").unwrap(), new_tag);
}

#[test]
fn folders_with_an_index_page_are_not_archived_and_only_get_and_head_ask() {
    let (_tmp, root) = temp_root();
    fixture(&root);
    write_file(&root, "site/index.html", "<p>home</p>");
    write_file(&root, "site/unlinked.txt", "not on show");
    let server = Server::start(&root, &[]);
    let res = get(&server, "/site/?zip");
    assert_eq!(res.status, 200);
    assert_eq!(res.body_text(), "<p>home</p>");
    let options = request(&server, "OPTIONS", "/?zip", &[]);
    assert_eq!(options.status, 200);
    assert_ne!(
        options.header("content-type").as_deref(),
        Some("application/zip")
    );
}

/// Each archive holds a blocking thread while its client reads: a client that
/// opens many and reads none finds a limit (503), which frees as they go.
#[test]
fn archives_produced_at_once_are_bounded() {
    let (_tmp, root) = temp_root();
    std::fs::File::create(root.join("big.img"))
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let server = Server::start(&root, &[]);
    let mut readers = Vec::new();
    for _ in 0..16 {
        let mut conn = Conn::open(&server);
        conn.send(b"GET /?zip HTTP/1.1\r\nHost: x\r\n\r\n");
        let head = conn.read_head().unwrap();
        assert_eq!(head.status, 200);
        readers.push(conn);
    }
    let refused = get(&server, "/?zip");
    assert_eq!(refused.status, 503);
    assert!(refused.header("retry-after").is_some());
    // Listings and files are not held up.
    assert_eq!(get(&server, "/").status, 200);
    drop(readers);
    poll_until(std::time::Duration::from_secs(20), || {
        (request(&server, "HEAD", "/?zip", &[]).status == 200 && get_head_status(&server) == 200)
            .then_some(())
    })
    .expect("slots free once the clients have gone");
}

/// The status of a GET of the archive, reading only its head.
fn get_head_status(server: &Server) -> u16 {
    let mut conn = Conn::open(server);
    conn.send(b"GET /?zip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    conn.read_head().unwrap().status
}

#[test]
fn deflated_archive_streams_and_unzips_to_the_same_bytes() {
    let (tmp, root) = temp_root();
    fixture(&root);
    let server = Server::start(&root, &[]);
    let res = get(&server, "/?zip=deflate");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-length"), None);
    let zip = save(&res.body, tmp.path(), "d.zip");
    let listed = python(LIST_AND_TEST, &zip);
    assert!(listed.contains("sub/b.bin 200000 8"), "{listed}");
    assert!(res.body.len() < 100_000, "compressed: {}", res.body.len());
    let b = python(
        "import sys, zipfile, hashlib; print(hashlib.sha256(zipfile.ZipFile(sys.argv[1]).read('sub/b.bin')).hexdigest())",
        &zip,
    );
    let want = Command::new("sha256sum")
        .arg(root.join("sub/b.bin"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&want.stdout).starts_with(b.trim()));
    assert!(
        have("unzip") || std::env::var_os("CI").is_none(),
        "CI must install unzip"
    );
    if have("unzip") {
        let out = Command::new("unzip").arg("-t").arg(&zip).output().unwrap();
        assert!(out.status.success());
    }
}

#[test]
fn unknown_archive_kinds_are_bad_requests_and_files_ignore_the_query() {
    let (_tmp, root) = temp_root();
    fixture(&root);
    let server = Server::start(&root, &[]);
    assert_eq!(get(&server, "/?zip=rar").status, 400);
    let file = get(&server, "/a.txt?zip");
    assert_eq!(file.status, 200);
    assert_eq!(file.body_text(), "hello\n");
    assert_eq!(get(&server, "/missing/?zip").status, 404);
}

#[test]
fn rules_keep_paths_out_of_archives() {
    let (tmp, root) = temp_root();
    fixture(&root);
    write_file(&root, "private/p.txt", "private\n");
    write_file(&root, "internal/i.txt", "internal\n");
    write_file(&root, "tools/run.cgi", "#!/bin/sh\necho secret source\n");
    write_file(&root, "public/ok.txt", "ok\n");
    // The configuration file sits in the served folder: a secret, never archived.
    let config = root.join("wharf.toml");
    let mut f = std::fs::File::create(&config).unwrap();
    write!(
        f,
        "root = {root:?}\nport = 0\nbind = \"127.0.0.1\"\n\
         [[rule]]\npath = \"/private/\"\ndeny = [\"0.0.0.0/0\", \"::/0\"]\n\
         [[rule]]\npath = \"/internal/**\"\ninternal = true\n\
         [[rule]]\npath = \"/**/*.cgi\"\nhandler = \"cgi\"\n"
    )
    .unwrap();
    drop(f);
    let server = Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None);
    let res = get(&server, "/?zip");
    assert_eq!(res.status, 200);
    let listed = python(LIST_AND_TEST, &save(&res.body, tmp.path(), "r.zip"));
    assert!(listed.contains("public/ok.txt"), "{listed}");
    for refused in ["p.txt", "i.txt", "run.cgi", "wharf.toml"] {
        assert!(!listed.contains(refused), "{refused} in {listed}");
    }
    // The folder denied to this client is not there at all.
    assert!(!listed.contains("private/"), "{listed}");
}

/// More than 65,535 members, a member of more than 4 GiB (a sparse file), and one
/// after it, past 4 GiB: ZIP64 end records and extra fields, read back by `zipfile`.
#[test]
fn zip64_for_many_members_and_large_files() {
    let (tmp, root) = temp_root();
    let many = root.join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..66_000 {
        std::fs::File::create(many.join(format!("{i:05}"))).unwrap();
    }
    let server = Server::start(&root, &[]);
    let res = get(&server, "/many/?zip");
    assert_eq!(res.status, 200);
    let count = python(
        "import sys, zipfile; print(len(zipfile.ZipFile(sys.argv[1]).infolist()))",
        &save(&res.body, tmp.path(), "many.zip"),
    );
    assert_eq!(count.trim(), "66000");
    std::fs::remove_dir_all(&many).unwrap();

    let big = root.join("big");
    std::fs::create_dir(&big).unwrap();
    let size = (4u64 << 30) + 4096;
    std::fs::File::create(big.join("one.img"))
        .unwrap()
        .set_len(size)
        .unwrap();
    write_file(&big, "z-last.txt", "after the big ones\n");
    // Streamed to disk by curl, not held in memory.
    let zip = tmp.path().join("big.zip");
    let url = format!("http://{}/big/?zip", server.addr());
    let out = Command::new("curl")
        .args(["-sS", "-f", "-o"])
        .arg(&zip)
        .args(["-w", "%{size_download} %header{content-length}"])
        .arg(&url)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sizes = String::from_utf8_lossy(&out.stdout).into_owned();
    let (got, announced) = sizes.split_once(' ').unwrap();
    assert_eq!(got, announced, "bytes sent = Content-Length");
    let listed = python(
        "import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for i in z.infolist(): print(i.filename, i.file_size, i.header_offset)
print(z.read('z-last.txt').decode(), end='')
with z.open('one.img') as f:
    f.seek(4 << 30)
    assert f.read() == bytes(4096)",
        &zip,
    );
    assert!(listed.contains(&format!("one.img {size} 0")), "{listed}");
    let last_offset: u64 = listed
        .lines()
        .find_map(|l| l.strip_prefix("z-last.txt 19 "))
        .and_then(|o| o.parse().ok())
        .expect("z-last.txt listed");
    assert!(last_offset > size, "{listed}");
    assert!(listed.ends_with("after the big ones\n"), "{listed}");
    // A range at the end (the central directory, past 4 GiB) matches the whole
    // download; the CRCs before it are remembered, not read again.
    let total = std::fs::metadata(&zip).unwrap().len();
    let mut end = vec![0u8; 5000];
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&zip).unwrap();
        f.seek(SeekFrom::Start(total - 5000)).unwrap();
        f.read_exact(&mut end).unwrap();
    }
    let tail = request(
        &server,
        "GET",
        "/big/?zip",
        &[("Range", &format!("bytes={}-", total - 5000))],
    );
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, end);
    std::fs::remove_file(&zip).unwrap();
}

#[test]
fn names_that_read_alike_in_an_archive_are_kept_apart() {
    use std::os::unix::ffi::OsStrExt as _;
    let (tmp, root) = temp_root();
    // Two names that are not UTF-8 and one that is what they read as, and a "\"
    // beside the "_" it is written as; then a folder that reads like a file.
    for (name, content) in [
        (&b"x\xff.txt"[..], "one"),
        (b"x\xfe.txt", "two"),
        ("x\u{fffd}.txt".as_bytes(), "three"),
        (b"a\\b", "backslash"),
        (b"a_b", "underscore"),
        (b"f\xff", "file"),
    ] {
        std::fs::write(root.join(OsStr::from_bytes(name)), content).unwrap();
    }
    std::fs::create_dir(root.join(OsStr::from_bytes(b"f\xfe"))).unwrap();
    std::fs::write(root.join(OsStr::from_bytes(b"f\xfe/in.txt")), "in").unwrap();
    let server = Server::start(&root, &[]);
    let res = get(&server, "/?zip");
    assert_eq!(res.status, 200);
    let zip = save(&res.body, tmp.path(), "alike.zip");
    let listed = python(
        "import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = [i.filename for i in z.infolist()]
assert len(names) == len(set(names)), names
print(sorted(z.read(n).decode() for n in names if not n.endswith('/')))
print(len(names))",
        &zip,
    );
    // Every file is there with its own bytes; none was written over another.
    assert!(
        listed.starts_with("['backslash', 'file', 'in', 'one', 'three', 'two', 'underscore']\n"),
        "{listed}"
    );
    assert!(
        listed.ends_with("\n8\n"),
        "seven files and a folder: {listed}"
    );
    // A name that needed no change keeps it; the changed one gives way.
    let kept = python(
        "import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
print(z.read('a_b').decode(), z.read('x\u{fffd}.txt').decode())",
        &zip,
    );
    assert_eq!(kept.trim(), "underscore three");
}

/// A folder nested thousands deep costs the square of its depth to list (each
/// member holds its whole path): it is refused, not held in memory.
#[test]
fn a_tree_too_deep_to_hold_is_refused() {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let (_t, root) = temp_root();
    // Deeper than a path the kernel takes whole: made one folder at a time.
    let mut dir: std::os::fd::OwnedFd = std::fs::File::open(&root).unwrap().into();
    for _ in 0..2000 {
        mkdirat(&dir, "k", Mode::from_raw_mode(0o755)).unwrap();
        dir = openat(&dir, "k", OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    }
    openat(
        &dir,
        "f.txt",
        OFlags::CREATE | OFlags::WRONLY,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    write_file(&root, "flat/a.txt", "a");
    let server = Server::start(&root, &[]);
    let deep = get(&server, "/k/?zip");
    assert!(deep.status >= 400, "status {}", deep.status);
    assert_eq!(get(&server, "/flat/?zip").status, 200);
}

/// A folder reached under two names beside each other (symlinks to it) is in the
/// archive under each, as each name lists it; a link to a folder above is a loop,
/// followed once.
#[test]
fn a_folder_linked_beside_itself_is_archived_under_each_name() {
    let (tmp, root) = temp_root();
    write_file(&root, "z/real/deep/r.txt", "r");
    write_file(&root, "z/real/top.txt", "t");
    std::os::unix::fs::symlink("real", root.join("z/alias")).unwrap();
    std::os::unix::fs::symlink("real", root.join("z/zalias")).unwrap();
    std::os::unix::fs::symlink("..", root.join("z/real/loop")).unwrap();
    let server = Server::start(&root, &[]);
    let res = get(&server, "/z/?zip");
    assert_eq!(res.status, 200);
    let zip = save(&res.body, tmp.path(), "linked.zip");
    let listed = python(
        "import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
print(' '.join(sorted(i.filename for i in z.infolist() if not i.filename.endswith('/'))))",
        &zip,
    );
    let files: Vec<&str> = listed.split_whitespace().collect();
    for name in ["real", "alias", "zalias"] {
        for file in ["top.txt", "deep/r.txt"] {
            let member = format!("{name}/{file}");
            assert!(files.contains(&member.as_str()), "{member}: {listed}");
        }
    }
    // Through the loop, each folder once more at most: the walk ends.
    assert!(files.len() < 30, "{listed}");

    // Folders each linked to all the others: every path through them would be
    // 9! walks; each is archived under a few names, and the archive is made.
    for i in 0..9 {
        write_file(&root, &format!("web/f{i}/x.txt"), "x");
    }
    for i in 0..9 {
        for j in (0..9).filter(|&j| j != i) {
            std::os::unix::fs::symlink(format!("../f{j}"), root.join(format!("web/f{i}/to{j}")))
                .unwrap();
        }
    }
    let res = get(&server, "/web/?zip");
    assert_eq!(res.status, 200);
}
