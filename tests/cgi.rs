//! CGI (RFC 3875): `--cgi` and `handler = "cgi"` rules, against real programs (sh and
//! python3 scripts), including the behaviours CPython's CGIHTTPRequestHandler was
//! tested for, and the runnable examples in `examples/`.

mod common;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;

/// Writes an executable program at `root/rel`.
fn program(root: &Path, rel: &str, text: &str) {
    write_file(root, rel, text);
    std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A Python CGI program printing its environment as JSON, plus what it read on stdin.
const ENV_DUMP: &str = r#"#!/usr/bin/env python3
import json, os, sys
body = sys.stdin.buffer.read().decode("latin-1")
sys.stdout.write("Content-Type: application/json\r\n\r\n")
sys.stdout.write(json.dumps({"env": dict(os.environ), "stdin": body, "cwd": os.getcwd()}))
"#;

fn env_of(res: &Response) -> (HashMap<String, String>, String, String) {
    assert_eq!(res.status, 200, "{}", res.body_text());
    let doc: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    let env = doc["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let text = |key: &str| doc[key].as_str().unwrap_or_default().to_string();
    (env, text("stdin"), text("cwd"))
}

fn cgi_server(root: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--cgi"];
    args.extend_from_slice(extra);
    Server::start(root, &args)
}

/// Sends `raw` and parses the answer.
fn exchange(server: &Server, raw: &[u8]) -> Response {
    parse_response(&server.send_raw(raw), false)
}

#[test]
fn meta_variables_are_those_of_rfc_3875() {
    let (_tmp, root) = temp_root();
    program(&root, "cgi-bin/env.py", ENV_DUMP);
    let server = Server::start_configured(&root, &["--cgi"], |cmd| {
        cmd.env("WHARF_TEST_SECRET", "must-not-leak");
    });
    let body = "a=1&b=2";
    let raw = format!(
        "POST /cgi-bin/env.py/extra/path?x=1&y=%20z HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         X-Custom: one\r\nX-Custom: two\r\nProxy: http://evil.test/\r\nX_Under: sneaky\r\n\
         X.Dotted: sneaky\r\nX~Tilde: sneaky\r\nAuthorization: Basic dXNlcjpwdw==\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        port = server.port()
    );
    let res = exchange(&server, raw.as_bytes());
    let (env, stdin, cwd) = env_of(&res);
    let expect = |name: &str, value: &str| {
        assert_eq!(
            env.get(name).map(String::as_str),
            Some(value),
            "{name} in {env:?}"
        )
    };
    expect("GATEWAY_INTERFACE", "CGI/1.1");
    expect(
        "SERVER_SOFTWARE",
        &format!("wharf/{}", env!("CARGO_PKG_VERSION")),
    );
    expect("SERVER_NAME", "127.0.0.1");
    expect("SERVER_PORT", &server.port().to_string());
    expect("SERVER_PROTOCOL", "HTTP/1.1");
    expect("REQUEST_METHOD", "POST");
    expect("SCRIPT_NAME", "/cgi-bin/env.py");
    expect("PATH_INFO", "/extra/path");
    let real_root = std::fs::canonicalize(&root).unwrap();
    expect(
        "PATH_TRANSLATED",
        &format!("{}/extra/path", real_root.display()),
    );
    expect("QUERY_STRING", "x=1&y=%20z");
    expect("REQUEST_URI", "/cgi-bin/env.py/extra/path?x=1&y=%20z");
    expect("REMOTE_ADDR", "127.0.0.1");
    assert!(env["REMOTE_PORT"].parse::<u16>().is_ok());
    expect("CONTENT_TYPE", "application/x-www-form-urlencoded");
    expect("CONTENT_LENGTH", &body.len().to_string());
    expect("DOCUMENT_ROOT", &real_root.display().to_string());
    expect(
        "SCRIPT_FILENAME",
        &format!("{}/cgi-bin/env.py", real_root.display()),
    );
    expect("PATH", "/usr/local/bin:/usr/bin:/bin");
    expect("HTTP_X_CUSTOM", "one, two");
    expect("HTTP_HOST", &format!("127.0.0.1:{}", server.port()));
    // Not authenticated by wharf: the program may check credentials itself.
    expect("HTTP_AUTHORIZATION", "Basic dXNlcjpwdw==");
    assert!(!env.contains_key("REMOTE_USER"));
    // httpoxy, and a field that would pass for another after `-` → `_`.
    assert!(!env.contains_key("HTTP_PROXY"), "{env:?}");
    assert!(!env.contains_key("HTTP_X_UNDER"), "{env:?}");
    assert!(
        !env.keys()
            .any(|k| k.starts_with("HTTP_X.") || k.starts_with("HTTP_X~")),
        "{env:?}"
    );
    // No framing fields, and nothing of wharf's own environment.
    assert!(!env.contains_key("HTTP_CONTENT_LENGTH"));
    assert!(!env.contains_key("WHARF_TEST_SECRET"), "{env:?}");
    assert!(!env.contains_key("HTTPS"));
    assert_eq!(stdin, body);
    assert_eq!(cwd, format!("{}/cgi-bin", real_root.display()));
    // SERVER_PORT is the port the request came in on, whatever Host says
    // (RFC 3875 §4.1.15); SERVER_NAME the host it addressed.
    let port = server.port().to_string();
    for (raw, name) in [
        (
            "GET /cgi-bin/env.py HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n",
            "example.test",
        ),
        ("GET /cgi-bin/env.py HTTP/1.0\r\n\r\n", "localhost"),
    ] {
        let (env, _, _) = env_of(&exchange(&server, raw.as_bytes()));
        assert_eq!(env["SERVER_PORT"], port, "{raw}");
        assert_eq!(env["SERVER_NAME"], name, "{raw}");
    }
    // An absolute-form target names the host, not `Host` (RFC 9112 §3.2.2): both
    // variables say the same.
    let raw = "GET http://Other.Example:77/cgi-bin/env.py HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let (env, _, _) = env_of(&exchange(&server, raw.as_bytes()));
    assert_eq!(env["SERVER_NAME"], "Other.Example");
    assert_eq!(env["HTTP_HOST"], "Other.Example:77");
}

#[test]
fn a_chunked_body_reaches_the_program_with_its_length() {
    let (_tmp, root) = temp_root();
    program(&root, "cgi-bin/env.py", ENV_DUMP);
    let server = cgi_server(&root, &[]);
    let raw = b"POST /cgi-bin/env.py HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
                Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let (env, stdin, _) = env_of(&exchange(&server, raw));
    assert_eq!(stdin, "hello world");
    assert_eq!(env["CONTENT_LENGTH"], "11");
    // An empty body still has its length and type.
    let res = request(
        &server,
        "POST",
        "/cgi-bin/env.py",
        &[("Content-Length", "0"), ("Content-Type", "text/plain")],
    );
    let (env, stdin, _) = env_of(&res);
    assert_eq!(
        (env["CONTENT_LENGTH"].as_str(), env["CONTENT_TYPE"].as_str()),
        ("0", "text/plain")
    );
    assert_eq!(stdin, "");
    // A GET has no body: no CONTENT_LENGTH, and stdin is empty.
    let (env, stdin, _) = env_of(&get(&server, "/cgi-bin/env.py"));
    assert!(!env.contains_key("CONTENT_LENGTH"));
    assert_eq!(stdin, "");
    assert_eq!(env["PATH_INFO"], "");
    assert!(!env.contains_key("PATH_TRANSLATED"));
}

#[test]
fn a_body_over_the_limit_is_413_before_the_program_runs() {
    let (_tmp, root) = temp_root();
    let marker = root.join("ran");
    program(
        &root,
        "cgi-bin/touch.sh",
        &format!(
            "#!/bin/sh\ntouch {}\nprintf 'Content-Type: text/plain\\n\\nok'\n",
            marker.display()
        ),
    );
    let config = root.join("../wharf.toml");
    std::fs::write(
        &config,
        format!(
            "root = {:?}\nbind = \"127.0.0.1\"\nport = 0\n\n[[rule]]\npath = \"/cgi-bin/**\"\nhandler = \"cgi\"\nmax-upload-size = 10\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    let server = Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None);
    let res = request(
        &server,
        "POST",
        "/cgi-bin/touch.sh",
        &[("Content-Length", "11")],
    );
    assert_eq!(res.status, 413);
    assert!(!marker.exists());
    let res = get(&server, "/cgi-bin/touch.sh");
    assert_eq!(res.status, 200);
    assert!(marker.exists());
    std::fs::remove_file(&marker).unwrap();

    // Without a rule's own limit, --max-upload-size is the limit, as for uploads.
    let server = Server::start(&root, &["--cgi", "--max-upload-size", "10"]);
    for (framing, body) in [
        ("Content-Length: 11\r\n", "hello world".to_string()),
        (
            "Transfer-Encoding: chunked\r\n",
            "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n".to_string(),
        ),
    ] {
        let raw = format!(
            "POST /cgi-bin/touch.sh HTTP/1.1\r\nHost: x\r\n{framing}Connection: close\r\n\r\n{body}"
        );
        assert_eq!(exchange(&server, raw.as_bytes()).status, 413, "{framing}");
    }
    assert!(!marker.exists());
}

#[test]
fn authenticated_requests_get_auth_type_and_remote_user_but_not_the_password() {
    let (tmp, root) = temp_root();
    program(&root, "cgi-bin/env.py", ENV_DUMP);
    let hash = {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
            .arg("hash-password")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let config = tmp.path().join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            "root = \"root\"\nbind = \"127.0.0.1\"\nport = 0\ncgi = true\n\n[[rule]]\npath = \"/cgi-bin/**\"\nauth = true\n\n[users]\nalice = \"{hash}\"\n"
        ),
    )
    .unwrap();
    let server = Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None);
    assert_eq!(get(&server, "/cgi-bin/env.py").status, 401);
    let res = request(
        &server,
        "GET",
        "/cgi-bin/env.py",
        &[("Authorization", "Basic YWxpY2U6cHc=")],
    );
    let (env, _, _) = env_of(&res);
    assert_eq!(env["AUTH_TYPE"], "Basic");
    assert_eq!(env["REMOTE_USER"], "alice");
    assert!(!env.contains_key("HTTP_AUTHORIZATION"), "{env:?}");
}

#[test]
fn scripts_are_found_by_the_resolver_and_never_served_as_source() {
    let (tmp, root) = temp_root();
    program(
        &root,
        "cgi-bin/hello.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nHello World\\n'\n",
    );
    program(
        &root,
        "cgi-bin/sub/deeper.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s' \"$PATH_INFO\"\n",
    );
    program(&root, "cgi-bin/.hidden.sh", "#!/bin/sh\necho secret\n");
    program(&root, "cgi-bin/.git/in.sh", "#!/bin/sh\necho secret\n");
    write_file(
        &root,
        "cgi-bin/plain.sh",
        "#!/bin/sh\necho not executable\n",
    );
    program(
        &root,
        "nocgi/hello.sh",
        "#!/bin/sh\necho served as a file\n",
    );
    program(
        tmp.path(),
        "outside.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nescaped'\n",
    );
    std::os::unix::fs::symlink(tmp.path().join("outside.sh"), root.join("cgi-bin/link.sh"))
        .unwrap();
    let server = cgi_server(&root, &[]);
    let ok = |path: &str| {
        let res = get(&server, path);
        assert_eq!(res.status, 200, "{path}: {}", res.body_text());
        assert_eq!(res.body_text(), "Hello World\n", "{path}");
    };
    ok("/cgi-bin/hello.sh");
    // Dot segments and encodings resolve before the CGI folder is recognised.
    ok("/cgi-bin/../cgi-bin/hello.sh");
    ok("/nocgi/../cgi-bin/hello.sh");
    ok("/%63gi-bin/hello.sh");
    ok("//cgi-bin//hello.sh");
    ok("/cgi-bin/./hello.sh");
    // Nested folders, the rest of the path being PATH_INFO.
    let res = get(&server, "/cgi-bin/sub/deeper.sh/a/b/");
    assert_eq!((res.status, res.body_text().as_str()), (200, "/a/b/"));
    // A path ending at the program's `/`: PATH_INFO is that `/` (RFC 3875 §4.1.5).
    let res = get(&server, "/cgi-bin/sub/deeper.sh/");
    assert_eq!((res.status, res.body_text().as_str()), (200, "/"));
    // PATH_INFO names no file: dot segments there are the program's to read (an
    // ACME or OpenID route of a front controller).
    for info in ["/.well-known/x", "/a/.b"] {
        let res = get(&server, &format!("/cgi-bin/sub/deeper.sh{info}"));
        assert_eq!((res.status, res.body_text().as_str()), (200, info));
    }
    for (path, status) in [
        ("/cgi-bin/nothere.sh", 404),
        ("///////////nocgi.py/../cgi-bin/nothere.sh", 404),
        ("/cgi-bin/.hidden.sh", 404),
        ("/cgi-bin/.hidden.sh/x", 404),
        ("/cgi-bin/.git/in.sh", 404),
        ("/cgi-bin/.git/", 404),
        ("/cgi-bin/plain.sh", 403),
        ("/cgi-bin/", 403),
        ("/cgi-bin/sub", 403),
        ("/cgi-bin/link.sh", 404),
        ("/cgi-bin/../../outside.sh", 400),
        // No file has a `/` in its name: never the script's text.
        ("/cgi-bin%2fhello.sh", 404),
    ] {
        let res = get(&server, path);
        assert_eq!(res.status, status, "{path}: {}", res.body_text());
        assert!(!res.body_text().contains("#!/bin/sh"), "{path}");
    }
    // Outside /cgi-bin/ and /htbin/, programs are files like any other.
    let res = get(&server, "/nocgi/hello.sh");
    assert_eq!(res.status, 200);
    assert!(res.body_text().starts_with("#!/bin/sh"));
}

#[test]
fn htbin_is_a_cgi_folder_too_and_head_runs_the_program() {
    let (_tmp, root) = temp_root();
    program(
        &root,
        "htbin/hi.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\nX-Ran: yes\\n\\nhi'\n",
    );
    let server = cgi_server(&root, &[]);
    assert_eq!(get(&server, "/htbin/hi.sh").body_text(), "hi");
    let res = request(&server, "HEAD", "/htbin/hi.sh", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-ran").as_deref(), Some("yes"));
    assert!(res.body.is_empty());
    // Not a length the GET's body does not have (RFC 9110 §8.6).
    assert!(
        matches!(res.header("content-length").as_deref(), None | Some("2")),
        "{:?}",
        res.header("content-length")
    );
    // A program that answers HEAD itself: the length of the body a GET would get,
    // and no body.
    program(
        &root,
        "htbin/sized.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\nContent-Length: 5\\n\\n'\n[ \"$REQUEST_METHOD\" = HEAD ] || printf 'sized'\n",
    );
    let res = request(&server, "HEAD", "/htbin/sized.sh", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(res.content_length(), Some(5));
    assert_eq!(get(&server, "/htbin/sized.sh").body_text(), "sized");
}

#[test]
fn status_location_and_other_fields() {
    let (_tmp, root) = temp_root();
    program(
        &root,
        "cgi-bin/status.sh",
        "#!/bin/sh\nprintf 'Status: 418 I am a teapot\\nContent-Type: text/plain\\nSet-Cookie: a=1\\nSet-Cookie: b=2\\nConnection: keep-alive\\n\\nshort and stout'\n",
    );
    program(
        &root,
        "cgi-bin/away.sh",
        "#!/bin/sh\nprintf 'Location: https://example.test/else\\n\\n'\n",
    );
    program(
        &root,
        "cgi-bin/local.sh",
        "#!/bin/sh\nprintf 'Location: /cgi-bin/env.py/from-redirect?q=1\\n\\n'\n",
    );
    program(
        &root,
        "cgi-bin/loop.sh",
        "#!/bin/sh\nprintf 'Location: /cgi-bin/loop.sh\\n\\n'\n",
    );
    program(
        &root,
        "cgi-bin/double.sh",
        "#!/bin/sh\nprintf 'Location: //evil.test/x\\n\\n'\n",
    );
    write_file(&root, "evil.test/x", "a local file");
    program(
        &root,
        "cgi-bin/moved.sh",
        "#!/bin/sh\nprintf 'Status: 301 Moved\\nLocation: /new\\n\\n'\n",
    );
    program(
        &root,
        "cgi-bin/missing.sh",
        "#!/bin/sh\nprintf 'Status: 404 Not Found\\nContent-Type: text/plain\\n\\nthe program says no'\n",
    );
    program(&root, "cgi-bin/env.py", ENV_DUMP);
    let server = cgi_server(&root, &[]);
    let res = get(&server, "/cgi-bin/status.sh");
    assert_eq!(res.status, 418);
    assert_eq!(res.headers_all("set-cookie"), ["a=1", "b=2"]);
    assert!(res.header("status").is_none());
    assert_eq!(res.body_text(), "short and stout");
    let res = get(&server, "/cgi-bin/away.sh");
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location").as_deref(),
        Some("https://example.test/else")
    );
    // A local path is answered by the server, as a new GET request.
    let res = request(
        &server,
        "POST",
        "/cgi-bin/local.sh",
        &[("Content-Length", "0")],
    );
    let (env, _, _) = env_of(&res);
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["PATH_INFO"], "/from-redirect");
    assert_eq!(env["QUERY_STRING"], "q=1");
    assert_eq!(get(&server, "/cgi-bin/loop.sh").status, 500);
    // `//host/x` is an abs-path (RFC 3875 §6.2.2): this server's, never another
    // site's.
    let res = get(&server, "/cgi-bin/double.sh");
    assert_eq!(
        (res.status, res.body_text().as_str()),
        (200, "a local file")
    );
    assert!(res.header("location").is_none());
    let res = get(&server, "/cgi-bin/moved.sh");
    assert_eq!(
        (res.status, res.header("location").as_deref()),
        (301, Some("/new"))
    );
    // The program's own error page stands.
    let res = get(&server, "/cgi-bin/missing.sh");
    assert_eq!(
        (res.status, res.body_text().as_str()),
        (404, "the program says no")
    );
    // Notes to a server in front are for no client.
    program(
        &root,
        "cgi-bin/notes.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\nX-Accel-Redirect: /hello.txt\\nX-Accel-Buffering: no\\nX-Sendfile: /etc/passwd\\nX-Pad: avoid browser bug\\nX-Own: kept\\n\\nbody'\n",
    );
    let res = get(&server, "/cgi-bin/notes.sh");
    assert_eq!((res.status, res.body_text().as_str()), (200, "body"));
    for name in [
        "x-accel-redirect",
        "x-accel-buffering",
        "x-sendfile",
        "x-pad",
    ] {
        assert_eq!(res.header(name), None, "{name}");
    }
    assert_eq!(res.header("x-own").as_deref(), Some("kept"));
    // A local path no request could have is the program's fault: 502.
    for (name, to) in [
        ("nul", "/hello.txt%00"),
        ("climb", "/../../outside.sh"),
        ("space", "/cgi-bin/env.py/a b"),
    ] {
        program(
            &root,
            &format!("cgi-bin/bad-{name}.sh"),
            &format!("#!/bin/sh\nprintf 'Location: {to}\\n\\n'\n"),
        );
        let res = get(&server, &format!("/cgi-bin/bad-{name}.sh"));
        assert_eq!(res.status, 502, "{to}");
    }
}

#[test]
fn nph_programs_give_their_own_status_line() {
    let (_tmp, root) = temp_root();
    program(
        &root,
        "cgi-bin/nph-raw.sh",
        "#!/bin/sh\nprintf 'HTTP/1.1 202 Taken\\r\\nContent-Type: text/plain\\r\\nContent-Length: 5\\r\\nX-Nph: 1\\r\\n\\r\\nraw!!'\n",
    );
    let server = cgi_server(&root, &[]);
    let res = get(&server, "/cgi-bin/nph-raw.sh");
    assert_eq!(res.status, 202);
    assert_eq!(res.header("x-nph").as_deref(), Some("1"));
    assert_eq!(res.content_length(), Some(5));
    assert_eq!(res.body_text(), "raw!!");

    // A chunked body is the bytes it frames, whatever framing the client's
    // connection gives them; a Content-Length beside it is not believed.
    program(
        &root,
        "cgi-bin/nph-chunked.sh",
        "#!/bin/sh\nprintf 'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 99\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n'\nprintf '5;ext=1\\r\\nhello\\r\\n'\nsleep 0.1\nprintf '7\\r\\n, world\\r\\n0\\r\\nX-Trailer: t\\r\\n\\r\\n'\n",
    );
    let res = get(&server, "/cgi-bin/nph-chunked.sh");
    assert_eq!(res.status, 200);
    assert_eq!(res.body_text(), "hello, world");
    assert_eq!(res.content_length(), None);
    // Framing that breaks off, or is not chunked framing, ends the response early
    // rather than passing on a body that was not sent.
    program(
        &root,
        "cgi-bin/nph-broken.sh",
        "#!/bin/sh\nprintf 'HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n'\nsleep 0.1\nprintf 'zz\\r\\nnot a chunk'\n",
    );
    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/cgi-bin/nph-broken.sh", &[]));
    let mut head = conn.read_head().unwrap();
    // 502 when the whole output was there before the head went out.
    if head.status != 502 {
        assert_eq!(head.status, 200);
        assert!(
            conn.read_body(&mut head, false).is_err(),
            "a broken chunked body was passed on as complete: {:?}",
            head.body_text()
        );
    }
}

#[test]
fn malformed_output_is_502() {
    let (_tmp, root) = temp_root();
    for (name, text) in [
        ("nohead.sh", "#!/bin/sh\necho just a line\n"),
        ("silent.sh", "#!/bin/sh\nexit 0\n"),
        (
            "badfield.sh",
            "#!/bin/sh\nprintf 'Content Type: x\\n\\nbody'\n",
        ),
        ("nofield.sh", "#!/bin/sh\nprintf '\\nbody'\n"),
        ("badstatus.sh", "#!/bin/sh\nprintf 'Status: soon\\n\\n'\n"),
        (
            "status700.sh",
            "#!/bin/sh\nprintf 'Status: 700 Beyond\\nContent-Type: text/plain\\n\\nx'\n",
        ),
        (
            "status100.sh",
            "#!/bin/sh\nprintf 'Status: 100 Continue\\nContent-Type: text/plain\\n\\nx'\n",
        ),
        (
            "nph-status999",
            "#!/bin/sh\nprintf 'HTTP/1.1 999 Odd\\r\\nContent-Type: text/plain\\r\\n\\r\\nx'\n",
        ),
        ("crash.sh", "#!/bin/sh\nkill -SEGV $$\n"),
        ("badshebang.sh", "#!/nonexistent/interpreter\n"),
    ] {
        program(&root, &format!("cgi-bin/{name}"), text);
    }
    let server = cgi_server(&root, &[]);
    for name in [
        "nohead.sh",
        "silent.sh",
        "badfield.sh",
        "nofield.sh",
        "badstatus.sh",
        "status700.sh",
        "status100.sh",
        "nph-status999",
        "crash.sh",
        "badshebang.sh",
    ] {
        assert_eq!(
            get(&server, &format!("/cgi-bin/{name}")).status,
            502,
            "{name}"
        );
    }
}

/// A head that names no type is passed on without one: the server is not to guess
/// it (RFC 3875 §6.3.1), and a body-less head needs none.
#[test]
fn a_head_without_content_type_goes_out_without_one() {
    let (_tmp, root) = temp_root();
    program(
        &root,
        "cgi-bin/untyped.sh",
        "#!/bin/sh\nprintf 'X-Only: 1\\n\\nbody'\n",
    );
    program(
        &root,
        "cgi-bin/headonly.sh",
        "#!/bin/sh\nprintf 'X-Foo: bar\\n\\n'\n",
    );
    let server = cgi_server(&root, &[]);
    let res = get(&server, "/cgi-bin/untyped.sh");
    assert_eq!((res.status, res.body_text().as_str()), (200, "body"));
    assert_eq!(res.header("x-only").as_deref(), Some("1"));
    assert_eq!(res.header("content-type"), None);
    let res = get(&server, "/cgi-bin/headonly.sh");
    assert_eq!((res.status, res.body_text().as_str()), (200, ""));
    assert_eq!(res.header("x-foo").as_deref(), Some("bar"));
}

/// Whether the process `pid` is gone (or a zombie nobody will reap... which is
/// checked separately).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// The PIDs a program wrote to `file`, once it has written `n` of them.
fn pids_in(file: &Path, n: usize) -> Vec<u32> {
    poll_until(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(file).ok()?;
        let pids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        (pids.len() >= n).then_some(pids)
    })
    .expect("the program wrote its PIDs")
}

/// Asserts that process `pid` ends within ten seconds; `what` says what it outlived.
fn assert_stops(pid: u32, what: &str) {
    assert!(
        poll_until(Duration::from_secs(10), || gone(pid).then_some(())).is_some(),
        "process {pid} survived {what}"
    );
}

/// A program at `rel` that writes its PID to `pid_file`, then waits without a word.
fn quiet_program(root: &Path, rel: &str, pid_file: &Path) {
    let text = format!(
        "#!/bin/sh\necho $$ > {}\nexec sleep 300\n",
        pid_file.display()
    );
    program(root, rel, &text);
}

#[test]
fn a_program_without_an_answer_in_time_is_504_and_its_group_is_killed() {
    let (tmp, root) = temp_root();
    let pids = tmp.path().join("pids");
    program(
        &root,
        "cgi-bin/slow.sh",
        &format!(
            "#!/bin/sh\ntrap '' TERM\nsleep 300 &\necho $$ > {0}\necho $! >> {0}\nwait\n",
            pids.display()
        ),
    );
    let server = cgi_server(&root, &["--cgi-timeout", "1s"]);
    let res = get(&server, "/cgi-bin/slow.sh");
    assert_eq!(res.status, 504);
    // The script ignores TERM: the group gets KILL after the grace period, the
    // background `sleep` with it.
    for pid in pids_in(&pids, 2) {
        assert_stops(pid, "its timeout");
    }
}

/// A program that has answered and exited while something it started in the
/// background still holds its output: the answer waits for the output's end, and
/// once `--cgi-timeout` gives up on it the background process is stopped too.
#[test]
fn a_background_child_holding_the_output_is_stopped_at_the_timeout() {
    let (tmp, root) = temp_root();
    let pids = tmp.path().join("pids");
    program(
        &root,
        "cgi-bin/detach.sh",
        &format!(
            "#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nok'
sleep 300 &
echo $! > {0}
exec >&- 2>&-
",
            pids.display()
        ),
    );
    let server = cgi_server(&root, &["--cgi-timeout", "1s"]);
    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/cgi-bin/detach.sh", &[]));
    let head = conn.read_head().unwrap();
    assert_eq!(head.status, 200);
    let pid = pids_in(&pids, 1)[0];
    assert_stops(pid, "the timeout (a background process)");
}

/// A program whose answer is whole (its Content-Length sent, its last chunk) but
/// which goes on to finish its own work is not stopped for it: the client has its
/// answer at once, and the program its `--cgi-timeout` to exit.
#[test]
fn a_program_that_finishes_after_its_answer_is_not_stopped() {
    let (tmp, root) = temp_root();
    let marks = tmp.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    program(
        &root,
        "cgi-bin/sized.sh",
        &format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\nContent-Length: 2\\n\\nok'\nsleep 0.3\necho tidy\necho done > {}/sized\n",
            marks.display()
        ),
    );
    program(
        &root,
        "cgi-bin/nph-framed.sh",
        &format!(
            "#!/bin/sh\nprintf 'HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n2\\r\\nok\\r\\n0\\r\\n\\r\\n'\nsleep 0.3\necho done > {}/framed\n",
            marks.display()
        ),
    );
    let server = cgi_server(&root, &[]);
    for (path, mark) in [
        ("/cgi-bin/sized.sh", "sized"),
        ("/cgi-bin/nph-framed.sh", "framed"),
    ] {
        let res = get(&server, path);
        assert_eq!(
            (res.status, res.body_text().as_str()),
            (200, "ok"),
            "{path}"
        );
        let written = poll_until(Duration::from_secs(10), || {
            marks.join(mark).exists().then_some(())
        });
        assert!(written.is_some(), "{path} was stopped before it finished");
    }
}

/// A client that leaves while the program writes its output.
#[test]
fn a_client_that_leaves_stops_the_program() {
    let (tmp, root) = temp_root();
    let pids = tmp.path().join("pids");
    program(
        &root,
        "cgi-bin/forever.sh",
        &format!(
            "#!/bin/sh\necho $$ > {0}\nprintf 'Content-Type: text/plain\\n\\nstarted\\n'\nsleep 300 &\necho $! >> {0}\nwhile true; do echo tick; sleep 0.1; done\n",
            pids.display()
        ),
    );
    let server = cgi_server(&root, &[]);
    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/cgi-bin/forever.sh", &[]));
    let head = conn.read_head().unwrap();
    assert_eq!(head.status, 200);
    let pids = pids_in(&pids, 2);
    drop(conn);
    for pid in pids {
        assert_stops(pid, "the client");
    }
}

/// A client that leaves while the program is quiet, before its header block and
/// after it: the program is stopped long before `--cgi-timeout`.
#[test]
fn a_client_that_leaves_stops_a_quiet_program() {
    let (tmp, root) = temp_root();
    let before = tmp.path().join("before");
    let after = tmp.path().join("after");
    quiet_program(&root, "cgi-bin/quiet.sh", &before);
    program(
        &root,
        "cgi-bin/pause.sh",
        &format!(
            "#!/bin/sh\necho $$ > {0}\nprintf 'Content-Type: text/plain\\n\\nstarted\\n'\nexec sleep 300\n",
            after.display()
        ),
    );
    let server = cgi_server(&root, &["--cgi-timeout", "300s"]);

    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/cgi-bin/quiet.sh", &[]));
    let pid = pids_in(&before, 1)[0];
    drop(conn);
    assert_stops(pid, "its client (no answer yet)");

    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/cgi-bin/pause.sh", &[]));
    assert_eq!(conn.read_head().unwrap().status, 200);
    let pid = pids_in(&after, 1)[0];
    drop(conn);
    assert_stops(pid, "its client (output paused)");
    // The server goes on answering.
    program(
        &root,
        "cgi-bin/ok.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok'\n",
    );
    assert_eq!(get(&server, "/cgi-bin/ok.sh").body, b"ok");
}

#[test]
fn output_streams_as_the_program_writes_it() {
    let (tmp, root) = temp_root();
    let go = tmp.path().join("go");
    program(
        &root,
        "cgi-bin/stream.sh",
        &format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nfirst\\n'\nwhile [ ! -e {0} ]; do sleep 0.05; done\necho second\n",
            go.display()
        ),
    );
    let server = cgi_server(&root, &[]);
    let mut stream = connect(server.addr());
    stream
        .write_all(&request_bytes("GET", "/cgi-bin/stream.sh", &[]))
        .unwrap();
    // "first" arrives while the program still waits for `go`.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("first") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the first line");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).contains("transfer-encoding: chunked"));
    assert!(!String::from_utf8_lossy(&seen).contains("second"));
    std::fs::write(&go, "").unwrap();
    stream.read_to_end(&mut seen).unwrap();
    assert!(String::from_utf8_lossy(&seen).contains("second"));
}

#[test]
fn stderr_goes_to_wharfs_stderr_with_the_script_path() {
    let (_tmp, root) = temp_root();
    program(
        &root,
        "cgi-bin/warn.sh",
        "#!/bin/sh\necho 'something odd \x1b[31m' >&2\nprintf 'Content-Type: text/plain\\n\\nok'\n",
    );
    let server = cgi_server(&root, &[]);
    assert_eq!(get(&server, "/cgi-bin/warn.sh").status, 200);
    let line = poll_until(Duration::from_secs(10), || {
        server
            .stderr_lines()
            .into_iter()
            .find(|l| l.contains("something odd"))
    })
    .expect("the program's stderr line");
    assert!(line.contains("cgi-bin/warn.sh: something odd"), "{line}");
    // Escaped: no terminal control sequence reaches the log.
    assert!(!line.contains('\x1b'), "{line:?}");
}

#[test]
fn beyond_cgi_max_requests_get_503_with_retry_after() {
    let (tmp, root) = temp_root();
    let go = tmp.path().join("go");
    let started = tmp.path().join("started");
    program(
        &root,
        "cgi-bin/hold.sh",
        &format!(
            "#!/bin/sh\ntouch {1}\nwhile [ ! -e {0} ]; do sleep 0.05; done\nprintf 'Content-Type: text/plain\\n\\nheld'\n",
            go.display(),
            started.display()
        ),
    );
    let server = cgi_server(&root, &["--cgi-max", "1"]);
    let addr = server.addr().to_string();
    let first = std::thread::spawn(move || {
        parse_response(
            &send_raw_to(&addr, &request_bytes("GET", "/cgi-bin/hold.sh", &[])),
            false,
        )
    });
    poll_until(Duration::from_secs(10), || started.exists().then_some(()))
        .expect("the first program started");
    let res = get(&server, "/cgi-bin/hold.sh");
    assert_eq!(res.status, 503);
    assert_eq!(res.header("retry-after").as_deref(), Some("1"));
    std::fs::write(&go, "").unwrap();
    assert_eq!(first.join().unwrap().body_text(), "held");
}

#[test]
fn programs_get_only_their_three_descriptors_and_their_own_process_group() {
    let (_tmp, root) = temp_root();
    program(
        &root,
        "cgi-bin/fds.py",
        "#!/usr/bin/env python3\nimport os\nopen_fds = []\nfor fd in range(3, 1024):\n    try:\n        os.fstat(fd)\n        open_fds.append(fd)\n    except OSError:\n        pass\nprint('Content-Type: text/plain\\n')\nprint(open_fds, os.getpgrp() == os.getpid())\n",
    );
    // wharf itself inherits a descriptor that is not close-on-exec.
    let inherited = std::fs::File::open("/dev/null").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&inherited);
    let server = Server::start_configured(&root, &["--cgi"], |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: fcntl is async-signal-safe and only clears a descriptor flag.
        unsafe {
            cmd.pre_exec(move || {
                libc::fcntl(fd, libc::F_SETFD, 0);
                Ok(())
            });
        }
    });
    let inherited_by_wharf = std::fs::read_link(format!("/proc/{}/fd/{fd}", server.pid()));
    assert!(inherited_by_wharf.is_ok(), "the test setup failed");
    let res = get(&server, "/cgi-bin/fds.py");
    assert_eq!(res.body_text().trim(), "[] True");
}

/// wharf's open descriptors, and its children that are zombies.
fn descriptors_and_zombies(pid: u32) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let zombies = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            stat.rsplit_once(") ").is_some_and(|(_, rest)| {
                let mut fields = rest.split(' ');
                let state = fields.next();
                let ppid = fields.next();
                state == Some("Z") && ppid == Some(&pid.to_string())
            })
        })
        .count();
    (fds, zombies)
}

#[test]
fn a_thousand_requests_leak_no_descriptor_and_leave_no_zombie() {
    let (_tmp, root) = temp_root();
    program(
        &root,
        "cgi-bin/ok.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok'\n",
    );
    program(&root, "cgi-bin/broken.sh", "#!/bin/sh\necho broken\n");
    let server = cgi_server(&root, &[]);
    let mut conn = Conn::open(&server);
    let ask = |conn: &mut Conn, path: &str| {
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        conn.read_response(false)
    };
    assert_eq!(ask(&mut conn, "/cgi-bin/ok.sh").status, 200);
    let (fds_before, _) = descriptors_and_zombies(server.pid());
    for i in 0..1000 {
        let (path, status) = if i % 10 == 0 {
            ("/cgi-bin/broken.sh", 502)
        } else {
            ("/cgi-bin/ok.sh", 200)
        };
        assert_eq!(ask(&mut conn, path).status, status, "request {i}");
    }
    let settled = poll_until(Duration::from_secs(10), || {
        let (fds, zombies) = descriptors_and_zombies(server.pid());
        (fds <= fds_before && zombies == 0).then_some(())
    });
    assert!(
        settled.is_some(),
        "before: {fds_before} descriptors; after: {:?}",
        descriptors_and_zombies(server.pid())
    );
}

#[test]
fn cgi_rules_run_any_glob_with_interpreters_by_extension() {
    let (tmp, root) = temp_root();
    // Not executable: the interpreter runs it.
    write_file(
        &root,
        "app/hello.py",
        "import os\nprint('Content-Type: text/plain')\nprint()\nprint('python', os.environ['SCRIPT_NAME'], end='')\n",
    );
    program(
        &root,
        "pages/page.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\ncgi'\n",
    );
    program(
        &root,
        "pages/info.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s %s' \"$SCRIPT_NAME\" \"$PATH_INFO\"\n",
    );
    write_file(&root, "pages/readme.txt", "a file");
    // Executable, but not a name the `*.cgi` rule covers.
    program(
        &root,
        "pages/tool.bin",
        &format!(
            "#!/bin/sh\ntouch {}\nprintf 'Content-Type: text/plain\\n\\nran'\n",
            tmp.path().join("tool-ran").display()
        ),
    );
    let config = tmp.path().join("wharf.toml");
    std::fs::write(
        &config,
        "root = \"root\"\nbind = \"127.0.0.1\"\nport = 0\n\n\
         [[rule]]\npath = \"/app/**\"\nhandler = \"cgi\"\ninterpreter = { \".py\" = \"python3\" }\n\n\
         [[rule]]\npath = \"/**/*.cgi\"\nhandler = \"cgi\"\n\n\
         [[rule]]\npath = \"/api/**\"\nrewrite = \"/pages/info.cgi/{1}\"\n",
    )
    .unwrap();
    let server = Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None);
    // A rewrite to a program keeps the dot segments of its PATH_INFO too.
    assert_eq!(
        get(&server, "/api/.well-known/x").body_text(),
        "/pages/info.cgi /.well-known/x"
    );
    assert_eq!(
        get(&server, "/app/hello.py").body_text(),
        "python /app/hello.py"
    );
    assert_eq!(get(&server, "/pages/page.cgi").body_text(), "cgi");
    // What follows the program's name is its PATH_INFO.
    assert_eq!(
        get(&server, "/pages/info.cgi/extra/x").body_text(),
        "/pages/info.cgi /extra/x"
    );
    assert_eq!(get(&server, "/pages/readme.txt").body_text(), "a file");
    // The rule matched the whole path; the program it leads to must match too.
    assert_eq!(get(&server, "/pages/tool.bin/x.cgi").status, 404);
    assert!(!tmp.path().join("tool-ran").exists());
    let explained = run_to_exit(
        &[
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--explain"),
        ],
        None,
    );
    assert!(
        explained.stdout.contains("Programs at /app/** are run"),
        "{}",
        explained.stdout
    );
}

#[test]
fn bad_cgi_configuration_is_a_startup_error_naming_the_line() {
    let (tmp, _root) = temp_root();
    for (rule, complaint) in [
        (
            "handler = \"cgi\"\ninterpreter = { \".py\" = \"no-such-interpreter-here\" }",
            "not found",
        ),
        (
            "handler = \"cgi\"\ninterpreter = { \"py\" = \"python3\" }",
            "extension",
        ),
        (
            "handler = \"cgi\"\nupstream = \"unix:/x\"",
            "only a rule with handler = \\\"fastcgi\\\"",
        ),
        (
            "interpreter = { \".py\" = \"python3\" }",
            "only a rule with handler = \\\"cgi\\\"",
        ),
    ] {
        let config = tmp.path().join("wharf.toml");
        std::fs::write(
            &config,
            format!("root = \"root\"\n\n[[rule]]\npath = \"/x/**\"\n{rule}\n"),
        )
        .unwrap();
        let done = run_to_exit(&[OsStr::new("--config"), config.as_os_str()], None);
        assert_eq!(done.status.code(), Some(1), "{rule}");
        assert!(
            done.stderr.contains("wharf.toml:"),
            "{rule}: {}",
            done.stderr
        );
        assert!(
            done.stderr.contains(&complaint.replace("\\\"", "\"")),
            "{rule}: {}",
            done.stderr
        );
    }
    for bad in [["--cgi-timeout", "0"], ["--cgi-max", "0"]] {
        let done = run_to_exit(&bad, None);
        assert_ne!(done.status.code(), Some(0), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------
// The examples
// ---------------------------------------------------------------------------

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn the_live_date_page_example() {
    let server = cgi_server(&example("date"), &[]);
    let res = get(&server, "/cgi-bin/date.sh");
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let page = res.body_text();
    assert!(
        page.contains("<meta http-equiv=\"refresh\" content=\"1\">"),
        "{page}"
    );
    let year = page
        .split("<p id=\"now\">")
        .nth(1)
        .and_then(|rest| rest.get(..4))
        .unwrap_or_default()
        .to_string();
    let now = std::process::Command::new("date")
        .arg("+%Y")
        .output()
        .unwrap();
    assert_eq!(year, String::from_utf8_lossy(&now.stdout).trim(), "{page}");
}

#[test]
fn the_form_example_over_get_and_post() {
    let server = cgi_server(&example("form"), &[]);
    let res = get(&server, "/cgi-bin/form.py?name=Ada%20%3Cb%3E");
    assert!(
        res.body_text().contains("Hello, Ada &lt;b&gt;! (GET)"),
        "{}",
        res.body_text()
    );
    let body = "name=Grace";
    let raw = format!(
        "POST /cgi-bin/form.py HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let res = exchange(&server, raw.as_bytes());
    assert!(
        res.body_text().contains("Hello, Grace! (POST)"),
        "{}",
        res.body_text()
    );
    let res = request(&server, "DELETE", "/cgi-bin/form.py", &[]);
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow").as_deref(), Some("GET, HEAD, POST"));
}

#[test]
fn the_wsgi_example_through_cgihandler() {
    let server = cgi_server(&example("wsgi"), &[]);
    let res = get(&server, "/cgi-bin/app.py/some/page");
    assert_eq!(res.status, 200, "{}", res.body_text());
    assert!(
        res.body_text().contains("WSGI says hello from /some/page"),
        "{}",
        res.body_text()
    );
    assert!(res.body_text().contains("wharf/"));
}

/// The production route for the same WSGI application: gunicorn behind `--proxy`.
#[test]
fn the_wsgi_example_behind_gunicorn() {
    let has_gunicorn = std::process::Command::new("python3")
        .args(["-c", "import gunicorn"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_gunicorn {
        eprintln!("skipped: python3 cannot import gunicorn (pip install gunicorn)");
        assert!(std::env::var_os("CI").is_none(), "CI must install gunicorn");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _gunicorn = Stop(
        std::process::Command::new("python3")
            .args(["-m", "gunicorn", "--chdir"])
            .arg(example("wsgi"))
            .args(["-b", &format!("127.0.0.1:{port}"), "app:application"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(poll_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .is_some());
    let proxy = format!("/app/=http://127.0.0.1:{port}/");
    let server = Server::start(&example("wsgi"), &["--proxy", &proxy]);
    let res = get(&server, "/app/some/page");
    assert_eq!(res.status, 200, "{}", res.body_text());
    assert!(res.body_text().contains("WSGI says hello from /some/page"));
}

/// Over HTTP/2 the program's output goes out in DATA frames, and the host comes
/// from `:authority`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_answer_over_http2() {
    use common::client::*;
    let (_tmp, root) = temp_root();
    program(&root, "cgi-bin/env.py", ENV_DUMP);
    let server = cgi_server(&root, &[]);
    let base = format!("http://127.0.0.1:{}", server.port());
    let mut h2 = h2_handshake(tcp(server.addr()).await).await;
    let reply = h2_send(
        &mut h2,
        build_request(
            "POST",
            &format!("{base}/cgi-bin/env.py/p?q=1"),
            &[("cookie", "a=1"), ("cookie", "b=2")],
            b"over h2",
        ),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_2);
    let doc: serde_json::Value = serde_json::from_str(&reply.text()).unwrap();
    assert_eq!(doc["stdin"], "over h2");
    assert_eq!(doc["env"]["SERVER_PROTOCOL"], "HTTP/2.0");
    assert_eq!(
        doc["env"]["HTTP_HOST"],
        format!("127.0.0.1:{}", server.port())
    );
    assert_eq!(doc["env"]["SERVER_PORT"], server.port().to_string());
    assert_eq!(doc["env"]["HTTP_COOKIE"], "a=1; b=2");
    assert_eq!(doc["env"]["PATH_INFO"], "/p");
    // A local redirect keeps the host the client addressed.
    program(
        &root,
        "cgi-bin/elsewhere.sh",
        "#!/bin/sh\nprintf 'Location: /cgi-bin/env.py/after\\n\\n'\n",
    );
    let reply = h2_send(
        &mut h2,
        build_request("GET", &format!("{base}/cgi-bin/elsewhere.sh"), &[], b""),
    )
    .await;
    assert_eq!(reply.status, 200);
    let doc: serde_json::Value = serde_json::from_str(&reply.text()).unwrap();
    assert_eq!(doc["env"]["PATH_INFO"], "/after");
    assert_eq!(doc["env"]["SERVER_NAME"], "127.0.0.1");
    assert_eq!(doc["env"]["SERVER_PORT"], server.port().to_string());
}

/// A client that half-closes its connection once its request is out is taken to
/// have gone, as nginx takes it: the program is stopped and the connection closed
/// after a 499 (which only a client still reading sees).
#[test]
fn a_half_closing_client_stops_the_program_as_with_nginx() {
    use std::io::{Read, Write};
    let (tmp, root) = temp_root();
    let pids = tmp.path().join("pids");
    quiet_program(&root, "cgi-bin/quiet.sh", &pids);
    let server = cgi_server(&root, &["--cgi-timeout", "300s"]);
    let mut socket = std::net::TcpStream::connect(server.addr()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    socket
        .write_all(b"GET /cgi-bin/quiet.sh HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    socket.shutdown(std::net::Shutdown::Write).unwrap();
    let pid = pids_in(&pids, 1)[0];
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 499 "), "{answer}");
    assert_stops(pid, "its client (half-closed)");
}

/// An HTTP/2 client that cancels its request (RST_STREAM) stops the program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_http2_request_stops_its_program() {
    use common::client::*;
    let (tmp, root) = temp_root();
    let pids = tmp.path().join("pids");
    quiet_program(&root, "cgi-bin/quiet.sh", &pids);
    let server = cgi_server(&root, &["--cgi-timeout", "300s"]);
    let url = format!("http://127.0.0.1:{}/cgi-bin/quiet.sh", server.port());
    let mut h2 = h2_handshake(tcp(server.addr()).await).await;
    h2.ready().await.unwrap();
    let pending = h2.send_request(build_request("GET", &url, &[], b""));
    let pid = tokio::task::spawn_blocking(move || pids_in(&pids, 1)[0])
        .await
        .unwrap();
    drop(pending);
    let stopped = tokio::task::spawn_blocking(move || {
        poll_until(Duration::from_secs(10), || gone(pid).then_some(()))
    })
    .await
    .unwrap();
    assert!(
        stopped.is_some(),
        "the program outlived its cancelled stream"
    );
}

/// A program still running when wharf stops does not outlive it.
#[test]
fn programs_do_not_outlive_the_server() {
    let (tmp, root) = temp_root();
    let pids = tmp.path().join("pids");
    program(
        &root,
        "cgi-bin/long.sh",
        &format!(
            "#!/bin/sh\necho $$ > {0}\nprintf 'Content-Type: text/plain\\n\\nworking\\n'\nsleep 300 &\necho $! >> {0}\nwait\n",
            pids.display()
        ),
    );
    let mut server = cgi_server(&root, &["--grace-period", "1s"]);
    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/cgi-bin/long.sh", &[]));
    assert_eq!(conn.read_head().unwrap().status, 200);
    let pids = pids_in(&pids, 2);
    server.signal("TERM");
    server.expect_exit();
    for pid in pids {
        assert_stops(pid, "wharf");
    }
}

#[test]
fn a_programs_reason_phrase_reaches_the_client() {
    let (_tmp, root) = temp_root();
    for (name, status) in [
        ("custom.sh", "299 Custom"),
        ("fine.sh", "200 Fine Thanks"),
        ("bare.sh", "299"),
    ] {
        program(
            &root,
            &format!("cgi-bin/{name}"),
            &format!("#!/bin/sh\nprintf 'Status: {status}\\nContent-Type: text/plain\\n\\nok'\n"),
        );
    }
    program(
        &root,
        "cgi-bin/nph-said.sh",
        "#!/bin/sh\nprintf 'HTTP/1.1 404 Gone Fishing\\r\\nContent-Type: text/plain\\r\\n\\r\\nno'\n",
    );
    let server = cgi_server(&root, &[]);
    for (path, line) in [
        ("/cgi-bin/custom.sh", "HTTP/1.1 299 Custom\r\n"),
        ("/cgi-bin/fine.sh", "HTTP/1.1 200 Fine Thanks\r\n"),
        ("/cgi-bin/bare.sh", "HTTP/1.1 299 \r\n"),
        ("/cgi-bin/nph-said.sh", "HTTP/1.1 404 Gone Fishing\r\n"),
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = server.send_raw(raw.as_bytes());
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with(line), "{path}: {text:?}");
    }
}

/// A request field longer than the kernel passes to a program in one
/// meta-variable (128 KiB) is the request's fault: 431, not a 502 that blames the
/// program.
#[test]
fn a_field_too_long_for_a_meta_variable_is_431() {
    let (_tmp, root) = temp_root();
    program(
        &root,
        "cgi-bin/hello.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello'\n",
    );
    let server = cgi_server(&root, &["--max-header-size", "1MiB"]);
    let big = "b".repeat(200_000);
    let res = request(&server, "GET", "/cgi-bin/hello.sh", &[("X-Big", &big)]);
    assert_eq!(res.status, 431);
    let fits = "b".repeat(100_000);
    let res = request(&server, "GET", "/cgi-bin/hello.sh", &[("X-Big", &fits)]);
    assert_eq!((res.status, res.body_text().as_str()), (200, "hello"));
}
