//! HTTP Basic authentication and CORS configured per path rule, against the real
//! binary with real configuration files.

mod common;

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use common::*;

fn hash(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// A site with /private/ for any user, /admin/ for alice only, and CORS on /api/.
fn start(tmp: &Path) -> Server {
    let root = tmp.join("root");
    for (path, body) in [
        ("private/p.txt", "private"),
        ("admin/a.txt", "admin"),
        ("api/data.json", "{}"),
        ("open/o.txt", "open"),
        ("wild/w.txt", "wild"),
    ] {
        write_file(&root, path, body);
    }
    let config = tmp.join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            r#"root = "root"
port = 0
bind = "127.0.0.1"

[[rule]]
path = "/private/"
auth = true

[[rule]]
path = "/admin/"
auth = ["alice"]

[[rule]]
path = "/api/"
cors = {{ origins = ["https://app.example.com", "https://*.example.org"], methods = ["GET", "POST"], headers = ["X-Token"], credentials = true, max-age = 600 }}

[[rule]]
path = "/wild/"
cors = {{ origins = ["*"] }}

[users]
alice = "{}"
bob = "{}"
"#,
            hash("alice-pw"),
            hash("bob-pw")
        ),
    )
    .unwrap();
    Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None)
}

#[test]
fn hash_password_prints_an_argon2id_hash_and_refuses_empty_input() {
    let h = hash("secret");
    assert!(h.starts_with("$argon2id$"), "{h}");
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("hash-password")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("wharf: no password given"));
}

/// Runs `wharf hash-password` with a pseudo-terminal as standard input, typing each of
/// `lines` once the prompt that asks for it is on stderr; returns (success, stdout,
/// stderr).
fn hash_on_a_terminal(lines: &[&str]) -> (bool, String, String) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, slave) = {
        let (mut m, mut s) = (-1, -1);
        // SAFETY: openpty writes two descriptors into the given ints; the other pointer
        // arguments may be null.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned by nobody else.
        unsafe {
            (
                std::fs::File::from(OwnedFd::from_raw_fd(m)),
                OwnedFd::from_raw_fd(s),
            )
        }
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("hash-password")
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let stderr = std::sync::Arc::clone(&stderr);
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut byte = [0u8; 1];
            while let Ok(1) = std::io::Read::read(&mut pipe, &mut byte) {
                stderr.lock().unwrap().push(byte[0] as char);
            }
        })
    };
    for (i, line) in lines.iter().enumerate() {
        let asked = poll_until(LOG_TIMEOUT, || {
            (stderr.lock().unwrap().matches(": ").count() > i).then_some(())
        });
        assert!(asked.is_some(), "prompt {i}: {:?}", stderr.lock().unwrap());
        master.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    reader.join().unwrap();
    let stderr = stderr.lock().unwrap().clone();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn hash_password_on_a_terminal_asks_twice() {
    let (ok, stdout, stderr) = hash_on_a_terminal(&["s3cret", "s3cret"]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("$argon2id$"), "{stdout}");
    assert!(stderr.contains("again"), "{stderr}");
    let (ok, stdout, stderr) = hash_on_a_terminal(&["s3cret", "s3cert"]);
    assert!(!ok, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("wharf: the two passwords differ"),
        "{stderr}"
    );
}

#[test]
fn hash_password_has_help_and_refuses_arguments() {
    let run = |arg: &str| {
        Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["hash-password", arg])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let help = run("--help");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: wharf hash-password"));
    let extra = run("secret");
    assert_eq!(extra.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&extra.stderr).contains("takes no arguments"));
    // Most likely the password itself: never echoed.
    assert!(!String::from_utf8_lossy(&extra.stderr).contains("secret"));
    let listed = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("wharf hash-password"));
}

#[test]
fn basic_auth_guards_the_rule_paths_only() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let res = get(&server, "/private/p.txt");
    assert_eq!(res.status, 401);
    assert_eq!(
        res.header("www-authenticate").as_deref(),
        Some("Basic realm=\"wharf\", charset=\"UTF-8\"")
    );
    let wrong = request(
        &server,
        "GET",
        "/private/p.txt",
        &[("Authorization", &basic("alice", "nope"))],
    );
    assert_eq!(wrong.status, 401);
    let unknown = request(
        &server,
        "GET",
        "/private/p.txt",
        &[("Authorization", &basic("mallory", "x"))],
    );
    assert_eq!(unknown.status, 401);
    let ok = request(
        &server,
        "GET",
        "/private/p.txt",
        &[("Authorization", &basic("bob", "bob-pw"))],
    );
    assert_eq!((ok.status, ok.body_text().as_str()), (200, "private"));
    // /admin/ names alice only.
    let bob = request(
        &server,
        "GET",
        "/admin/a.txt",
        &[("Authorization", &basic("bob", "bob-pw"))],
    );
    assert_eq!(bob.status, 403);
    let alice = request(
        &server,
        "GET",
        "/admin/a.txt",
        &[("Authorization", &basic("alice", "alice-pw"))],
    );
    assert_eq!(alice.status, 200);
    // No spelling of the path gets around the rule.
    for spelling in [
        "/%70rivate/p.txt",
        "//private/p.txt",
        "/./private/p.txt",
        "/open/../private/p.txt",
    ] {
        let res = get(&server, spelling);
        assert_eq!(res.status, 401, "{spelling}");
        assert!(!res.body_text().contains("private"), "{spelling}");
    }
    // Other paths need nothing.
    assert_eq!(get(&server, "/open/o.txt").status, 200);
    // Credentials never reach the access log.
    server.wait_for_log(|l| l.contains("/admin/a.txt") && l.contains(" 200 "));
    for line in server.stdout_lines() {
        assert!(
            !line.contains("alice-pw") && !line.contains("bob-pw"),
            "{line}"
        );
        assert!(!line.contains(&basic("alice", "alice-pw")[6..]), "{line}");
    }
}

#[test]
fn the_access_log_names_the_authenticated_user() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let auth = basic("alice", "alice-pw");
    let ok = request(
        &server,
        "GET",
        "/private/p.txt?as=alice",
        &[("Authorization", &auth)],
    );
    assert_eq!(ok.status, 200);
    let line = server.wait_for_log(|l| l.contains("/private/p.txt?as=alice"));
    assert!(line.starts_with("127.0.0.1 - alice ["), "{line}");
    assert!(!line.contains("alice-pw"), "{line}");
    // No user: a dash, also when the credentials were wrong.
    let wrong = basic("alice", "nope");
    let denied = request(
        &server,
        "GET",
        "/private/p.txt?as=wrong",
        &[("Authorization", &wrong)],
    );
    assert_eq!(denied.status, 401);
    let line = server.wait_for_log(|l| l.contains("/private/p.txt?as=wrong"));
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    let open = request(&server, "GET", "/open/o.txt", &[("Authorization", &auth)]);
    assert_eq!(open.status, 200);
    let line = server.wait_for_log(|l| l.contains("/open/o.txt"));
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
}

#[test]
fn repeated_failures_from_one_client_are_throttled() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    for _ in 0..10 {
        let res = request(
            &server,
            "GET",
            "/private/p.txt",
            &[("Authorization", &basic("bob", "wrong"))],
        );
        assert_eq!(res.status, 401);
    }
    let res = request(
        &server,
        "GET",
        "/private/p.txt",
        &[("Authorization", &basic("bob", "bob-pw"))],
    );
    assert_eq!(res.status, 429);
    assert_eq!(res.header("retry-after").as_deref(), Some("60"));
}

#[test]
fn cors_actual_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let allowed = request(
        &server,
        "GET",
        "/api/data.json",
        &[("Origin", "https://app.example.com")],
    );
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        allowed
            .header("access-control-allow-credentials")
            .as_deref(),
        Some("true")
    );
    assert!(allowed
        .headers_all("vary")
        .iter()
        .any(|v| v.contains("Origin")));
    let sub = request(
        &server,
        "GET",
        "/api/data.json",
        &[("Origin", "https://a.b.example.org")],
    );
    assert_eq!(
        sub.header("access-control-allow-origin").as_deref(),
        Some("https://a.b.example.org")
    );
    let refused = request(
        &server,
        "GET",
        "/api/data.json",
        &[("Origin", "https://evil.com")],
    );
    assert_eq!(refused.status, 200);
    assert_eq!(refused.header("access-control-allow-origin"), None);
    assert!(refused
        .headers_all("vary")
        .iter()
        .any(|v| v.contains("Origin")));
    let none = get(&server, "/api/data.json");
    assert!(none
        .headers_all("vary")
        .iter()
        .any(|v| v.contains("Origin")));
    let star = request(
        &server,
        "GET",
        "/wild/w.txt",
        &[("Origin", "https://any.where")],
    );
    assert_eq!(
        star.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    // Paths without a cors rule say nothing about CORS.
    let plain = request(
        &server,
        "GET",
        "/open/o.txt",
        &[("Origin", "https://app.example.com")],
    );
    assert_eq!(plain.header("access-control-allow-origin"), None);
}

#[test]
fn cors_preflights() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let ok = request(
        &server,
        "OPTIONS",
        "/api/data.json",
        &[
            ("Origin", "https://app.example.com"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "X-Token, Content-Type"),
        ],
    );
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        ok.header("access-control-allow-methods").as_deref(),
        Some("GET, POST")
    );
    assert_eq!(
        ok.header("access-control-allow-headers").as_deref(),
        Some("x-token")
    );
    assert_eq!(ok.header("access-control-max-age").as_deref(), Some("600"));
    for (origin, method, headers) in [
        ("https://evil.com", "GET", ""),
        ("https://app.example.com", "DELETE", ""),
        ("https://app.example.com", "GET", "X-Secret"),
    ] {
        let mut extra = vec![
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
        ];
        if !headers.is_empty() {
            extra.push(("Access-Control-Request-Headers", headers));
        }
        let res = request(&server, "OPTIONS", "/api/data.json", &extra);
        assert_eq!(res.status, 403, "{origin} {method} {headers}");
        assert_eq!(res.header("access-control-allow-origin"), None);
    }
    // A plain OPTIONS is still the ordinary answer with Allow.
    let plain = request(&server, "OPTIONS", "/api/data.json", &[]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("allow").as_deref(), Some("GET, HEAD, OPTIONS"));
}

#[test]
fn invalid_auth_and_cors_configurations_are_refused() {
    let cases = [
        ("[[rule]]\npath = \"/p/\"\nauth = true\n", "auth needs users"),
        (
            "[[rule]]\npath = \"/p/\"\nauth = [\"carol\"]\n[users]\nalice = \"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0+Qhk6Jd6eMbAqCwTd0gqMZV0S5M8ZdrJ0CdnwA2rM0\"\n",
            "\"carol\", who is not in [users]",
        ),
        ("[users]\nalice = \"plaintext\"\n", "not a password hash"),
        ("[[rule]]\npath = \"/a/\"\ncors = { origins = [\"*\"], credentials = true }\n", "cannot be combined with credentials"),
        ("[[rule]]\npath = \"/a/\"\ncors = { origins = [\"https://x\"], bogus = 1 }\n", "unknown key \"rule.cors.bogus\""),
        ("[[rule]]\npath = \"/a/\"\ncors = { origins = [] }\n", "list at least one origin"),
        ("[[rule]]\npath = \"/a/\"\nauth = \"yes\"\n", "expected true or a list of user names"),
    ];
    for (content, expected) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("wharf.toml");
        std::fs::write(&config, content).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args([OsStr::new("--config"), config.as_os_str()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{content:?} accepted");
        assert!(stderr.contains(expected), "{content:?}: {stderr}");
        assert!(stderr.contains("wharf.toml:"), "{content:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn a_rewrite_cannot_lead_around_the_rules_where_it_lands() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    write_file(&root, "admin/s.txt", "secret");
    write_file(&root, "versions/a.txt", "doc");
    let config = tmp.path().join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            "root = \"root\"\nport = 0\nbind = \"127.0.0.1\"\n\n[[rule]]\npath = \"/admin/\"\nauth = true\n\n[[rule]]\npath = \"/local/\"\nallow = [\"10.0.0.0/8\"]\n\n[[rule]]\npath = \"/docs/v**\"\nrewrite = \"/versions/{{1}}\"\n\n[users]\nalice = \"{}\"\n",
            hash("pw")
        ),
    )
    .unwrap();
    write_file(&root, "local/l.txt", "local");
    let server = Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None);
    assert_eq!(get(&server, "/docs/v/a.txt").body_text(), "doc");
    for sneaky in ["/docs/v../admin/s.txt", "/docs/v%2e%2e/admin/s.txt"] {
        let res = get(&server, sneaky);
        assert_eq!(res.status, 401, "{sneaky}");
        assert!(!res.body_text().contains("secret"), "{sneaky}");
    }
    let res = get(&server, "/docs/v../local/l.txt");
    assert_eq!(res.status, 403);
    let with_user = request(
        &server,
        "GET",
        "/docs/v../admin/s.txt",
        &[("Authorization", &basic("alice", "pw"))],
    );
    assert_eq!(with_user.body_text(), "secret");
}

#[test]
fn a_cors_rule_lets_its_origin_upload_and_read_the_upload_fields() {
    let tmp = tempfile::tempdir().unwrap();
    write_file(&tmp.path().join("root"), "inbox/.keep", "");
    let config = tmp.path().join("wharf.toml");
    std::fs::write(
        &config,
        r#"root = "root"
port = 0
bind = "127.0.0.1"

[[rule]]
path = "/inbox/"
upload = true
cors = { origins = ["https://app.example.com"], methods = ["POST", "PATCH", "HEAD"], headers = ["Tus-Resumable", "Upload-Length", "Upload-Metadata", "Upload-Offset"], expose = ["X-Request-Id"] }
"#,
    )
    .unwrap();
    let server = Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None);
    let create = |origin: &str| {
        request(
            &server,
            "POST",
            "/inbox/",
            &[
                ("Origin", origin),
                ("Sec-Fetch-Site", "cross-site"),
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Length", "3"),
                ("Upload-Metadata", "filename YS50eHQ="),
                ("Content-Length", "0"),
            ],
        )
    };
    let res = create("https://app.example.com");
    assert_eq!(res.status, 201);
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    let exposed = res
        .header("access-control-expose-headers")
        .unwrap_or_default();
    for name in [
        "x-request-id",
        "location",
        "tus-resumable",
        "upload-expires",
    ] {
        assert!(exposed.contains(name), "{name} in {exposed:?}");
    }
    assert!(
        !exposed.contains("upload-offset"),
        "not carried: {exposed:?}"
    );
    // Another origin is not granted the write.
    assert_eq!(create("https://evil.example").status, 403);
}

/// A DELETE, COPY or MOVE of a whole folder answers to the rules of what is
/// inside it: a guarded subfolder is neither copied out, moved away, replaced
/// nor deleted past its rule, nor a program's folder read or filled that way.
#[test]
fn folder_copies_moves_and_deletes_answer_to_the_rules_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    for (path, body) in [
        ("team/notes.txt", "notes"),
        ("team/secret/plan.txt", "classified"),
        ("vault/inner/key.txt", "key"),
        ("cgi-bin/app.sh", "#!/bin/sh\n# password=hunter2\n"),
        ("tools/pkg/run.sh", "#!/bin/sh\necho ran\n"),
        ("kept/locked/x.txt", "x"),
        ("stage/secret/plan.txt", "replaced"),
        ("scratch/a.txt", "a"),
        ("open/inner/x.txt", "x"),
        ("frozen/2019/x.txt", "x"),
        ("api/local.txt", "on disk"),
    ] {
        write_file(&root, path, body);
    }
    let config = tmp.path().join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            "root = \"root\"\nport = 0\nbind = \"127.0.0.1\"\nupload = true\ndelete = true\n\n\
             [[rule]]\npath = \"/team/secret/\"\nauth = [\"alice\"]\n\n\
             [[rule]]\npath = \"/vault/inner/\"\ndeny = [\"127.0.0.1\"]\n\n\
             [[rule]]\npath = \"/cgi-bin/**\"\nhandler = \"cgi\"\n\n\
             [[rule]]\npath = \"/kept/locked/\"\ndelete = false\n\n\
             [[rule]]\npath = \"/open/\"\ndelete = true\n\n\
             [[rule]]\npath = \"/open/inner/\"\ndelete = false\n\n\
             [[rule]]\npath = \"/frozen/\"\nupload = false\n\n\
             [[rule]]\npath = \"/alias/**\"\nrewrite = \"/team/{{1}}\"\n\n\
             [[rule]]\npath = \"/api/**\"\nhandler = \"proxy\"\nupstreams = [\"http://127.0.0.1:1\"]\n\n\
             [users]\nalice = \"{}\"\n",
            hash("alice-pw")
        ),
    )
    .unwrap();
    let server = Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None);
    let to = |dest: &str| vec![("Destination", dest.to_string()), ("Overwrite", "T".into())];
    let dav = |method: &str, path: &str, headers: &[(&str, String)]| {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        request(&server, method, path, &headers).status
    };
    let refused = [
        ("COPY", "/team/", to("/loot/"), 401),
        ("COPY", "/team", to("/loot"), 401),
        ("MOVE", "/team/", to("/moved/"), 401),
        ("DELETE", "/team/", vec![], 401),
        ("COPY", "/stage/", to("/team/"), 401),
        ("DELETE", "/vault", vec![], 403),
        ("COPY", "/cgi-bin", to("/leak"), 403),
        ("MOVE", "/tools/pkg", to("/cgi-bin"), 403),
        ("DELETE", "/cgi-bin", vec![], 403),
        ("DELETE", "/kept/", vec![], 403),
        // A rewrite leads to the folder it names, and to its rules inside.
        ("DELETE", "/alias/", vec![], 401),
        ("COPY", "/alias/", to("/loot/"), 401),
    ];
    for (method, path, headers, status) in &refused {
        assert_eq!(dav(method, path, headers), *status, "{method} {path}");
    }
    assert_eq!(get(&server, "/loot/secret/plan.txt").status, 404);
    assert_eq!(get(&server, "/leak/app.sh").status, 404);
    assert!(root.join("team/secret/plan.txt").exists());
    assert!(root.join("cgi-bin/app.sh").exists());
    assert!(root.join("tools/pkg/run.sh").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("team/secret/plan.txt")).unwrap(),
        "classified"
    );

    // What has no rule inside is free; a file is no folder; with the credentials
    // the rule asks for, the folder goes.
    assert_eq!(dav("COPY", "/team/notes.txt", &to("/notes.txt")), 201);
    assert_eq!(dav("COPY", "/kept/", &to("/kept-copy/")), 201);
    assert_eq!(dav("DELETE", "/scratch/", &[]), 204);
    // A rule that would refuse, ruled out by one ahead of it (the first that says
    // decides, for the folder's members as for the folder).
    assert_eq!(dav("DELETE", "/open/inner/x.txt", &[]), 204);
    assert_eq!(dav("DELETE", "/open/", &[]), 204);
    // Deleting asks only whether deleting is allowed inside, not uploading.
    assert_eq!(dav("DELETE", "/frozen/2019/", &[]), 204);
    // An app's path is the app's to answer, whatever folder is on disk there.
    assert_eq!(dav("DELETE", "/api/", &[]), 502);
    let mut with_alice = vec![("Authorization", basic("alice", "alice-pw"))];
    assert_eq!(dav("DELETE", "/team/", &with_alice), 204);
    with_alice.extend(to("/moved-tools/"));
    assert_eq!(dav("MOVE", "/tools/", &with_alice), 201);
}
