//! FastCGI against Debian's php-fpm (CI installs it; elsewhere the tests say what is
//! missing): phpinfo(), forms, uploads, headers and status set by PHP, a large
//! streamed answer, PATH_INFO, errors, timeouts and connection reuse.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// php-fpm's binary (`php-fpm8.2` and the like), if installed.
fn php_fpm() -> Option<PathBuf> {
    let found = ["/usr/sbin", "/usr/local/sbin", "/usr/bin"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("php-fpm"))
        })
        .min();
    if found.is_none() {
        eprintln!("skipped: php-fpm is not installed (apt-get install php-fpm)");
        assert!(std::env::var_os("CI").is_none(), "CI must install php-fpm");
    }
    found
}

/// A php-fpm pool of its own, stopped (by its PID) when dropped.
struct Fpm {
    child: Child,
    listen: String,
    _dir: tempfile::TempDir,
}

impl Drop for Fpm {
    /// SIGTERM first: the master then stops its workers, which a SIGKILL of the
    /// master would leave running.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        if poll_until(Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten()
        })
        .is_none()
        {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Fpm {
    /// A pool listening on `listen` (a socket path, or `127.0.0.1:PORT`).
    fn start(binary: &Path, listen: &str) -> Fpm {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("php-fpm.conf");
        std::fs::write(
            &config,
            format!(
                "[global]\nerror_log = /proc/self/fd/2\ndaemonize = no\n\n[www]\nlisten = {listen}\n\
                 pm = static\npm.max_children = 2\nclear_env = yes\n\
                 php_admin_value[output_buffering] = 0\nphp_admin_value[upload_max_filesize] = 16M\n\
                 php_admin_value[post_max_size] = 16M\n"
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .args(["--nodaemonize", "--allow-to-run-as-root", "--fpm-config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ready = poll_until(Duration::from_secs(20), || {
            match listen.parse::<std::net::SocketAddr>() {
                Ok(addr) => std::net::TcpStream::connect(addr).ok().map(|_| ()),
                Err(_) => std::os::unix::net::UnixStream::connect(listen)
                    .ok()
                    .map(|_| ()),
            }
        });
        assert!(ready.is_some(), "php-fpm did not listen on {listen}");
        Fpm {
            child,
            listen: listen.to_string(),
            _dir: dir,
        }
    }

    fn upstream(&self) -> String {
        if self.listen.starts_with('/') {
            format!("unix:{}", self.listen)
        } else {
            format!("tcp:{}", self.listen)
        }
    }
}

const PAGES: &[(&str, &str)] = &[
    ("info.php", "<?php phpinfo();"),
    (
        "form.php",
        "<?php echo 'name=', $_POST['name'] ?? '-', ' q=', $_GET['q'] ?? '-', ' method=', $_SERVER['REQUEST_METHOD'];",
    ),
    (
        "upload.php",
        "<?php $f = $_FILES['file']; echo $f['name'], ' ', $f['size'], ' ', md5_file($f['tmp_name']), ' err=', $f['error'];",
    ),
    (
        "headers.php",
        "<?php http_response_code(201); header('X-From-Php: yes'); header('X-Accel-Expires: 60'); header('X-Pad: avoid browser bug'); setcookie('a', '1'); setcookie('b', '2'); echo 'made';",
    ),
    (
        "redirect.php",
        "<?php header('Location: https://example.test/there'); ",
    ),
    (
        "big.php",
        "<?php $chunk = str_repeat('0123456789abcdef', 65536); for ($i = 0; $i < 20; $i++) { echo $chunk; flush(); }",
    ),
    (
        "server.php",
        "<?php foreach (['SCRIPT_NAME','PATH_INFO','SCRIPT_FILENAME','REQUEST_URI','QUERY_STRING','SERVER_SOFTWARE','GATEWAY_INTERFACE','REMOTE_ADDR','HTTP_PROXY','MY_PARAM'] as $k) { echo $k, '=', $_SERVER[$k] ?? '(unset)', \"\\n\"; }",
    ),
    ("slow.php", "<?php sleep(5); echo 'late';"),
    ("nap.php", "<?php usleep(100000); echo 'rested';"),
    ("log.php", "<?php error_log('oops from php'); echo 'logged';"),
    ("sub/index.php", "<?php echo 'index of sub';"),
    (
        "download.php",
        "<?php header('Content-Type: application/pdf'); header('Content-Disposition: attachment; filename=\"r.pdf\"'); header('X-Accel-Redirect: /protected/report.pdf'); echo 'not this';",
    ),
    ("protected/report.pdf", "the protected report"),
    (
        "leak.php",
        "<?php header('X-Accel-Redirect: /server.php'); echo 'not this';",
    ),
];

/// A site of PHP pages served through `fpm`, with `extra` rule lines.
fn site(fpm: &Fpm, extra_rule: &str, args: &[&str]) -> (tempfile::TempDir, Server) {
    let (tmp, root) = temp_root();
    for (name, text) in PAGES {
        write_file(&root, name, text);
    }
    write_file(&root, "style.css", "body {}");
    let config = tmp.path().join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            "root = \"root\"\nbind = \"127.0.0.1\"\nport = 0\n\n[[rule]]\npath = \"/**\"\nhandler = \"fastcgi\"\n\
             upstream = \"{}\"\nmax-connections = 2\nindex = \"index.php\"\nsplit-path = '^(.+\\.php)(/.*)$'\nparams = {{ MY_PARAM = \"from-config\" }}\n{extra_rule}\n",
            fpm.upstream()
        ),
    )
    .unwrap();
    let mut all: Vec<&OsStr> = vec![OsStr::new("--config"), config.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    let server = Server::spawn(&all, None);
    (tmp, server)
}

fn with_fpm(test: impl FnOnce(&Fpm)) {
    let Some(binary) = php_fpm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fpm.sock");
    let fpm = Fpm::start(&binary, socket.to_str().unwrap());
    test(&fpm);
}

#[test]
fn phpinfo_and_the_params_php_sees() {
    with_fpm(|fpm| {
        let (tmp, server) = site(fpm, "", &[]);
        let res = get(&server, "/info.php");
        assert_eq!(res.status, 200);
        assert!(res.body_text().contains("PHP Version"));
        let res = request(
            &server,
            "GET",
            "/server.php/extra/bit?x=1",
            &[("Proxy", "http://evil.test/")],
        );
        let text = res.body_text();
        let root = std::fs::canonicalize(tmp.path().join("root")).unwrap();
        for line in [
            "SCRIPT_NAME=/server.php".to_string(),
            "PATH_INFO=/extra/bit".to_string(),
            format!("SCRIPT_FILENAME={}/server.php", root.display()),
            "REQUEST_URI=/server.php/extra/bit?x=1".to_string(),
            "QUERY_STRING=x=1".to_string(),
            "GATEWAY_INTERFACE=CGI/1.1".to_string(),
            "REMOTE_ADDR=127.0.0.1".to_string(),
            "HTTP_PROXY=(unset)".to_string(),
            "MY_PARAM=from-config".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in {text}");
        }
        assert!(text.contains("SERVER_SOFTWARE=wharf/"));
        // A dot segment after the script is its PATH_INFO (nginx's
        // fastcgi_split_path_info passes it); one before it hides the script.
        let res = get(&server, "/server.php/.well-known/acme");
        assert_eq!(res.status, 200);
        let text = res.body_text();
        assert!(
            text.lines().any(|l| l == "PATH_INFO=/.well-known/acme"),
            "{text}"
        );
        let root = tmp.path().join("root");
        write_file(&root, ".private/server.php", "<?php echo 'ran';");
        write_file(&root, ".env.php", "<?php echo 'ran';");
        for path in ["/.private/server.php", "/.env.php", "/.env.php/x"] {
            let res = get(&server, path);
            assert_eq!(res.status, 404, "{path}");
            assert!(!res.body_text().contains("ran"), "{path}");
        }
    });
}

/// A PHP page hands a file back with `X-Accel-Redirect`, as it does behind
/// nginx: wharf serves the file (ranges included) with the page's type and
/// disposition, and the file itself is reachable that way only.
#[test]
fn x_accel_redirect_from_php_serves_the_file() {
    with_fpm(|fpm| {
        let internal = "\n[[rule]]\npath = \"/protected/**\"\ninternal = true\n";
        let (_tmp, server) = site(fpm, internal, &[]);
        let res = get(&server, "/download.php");
        assert_eq!(res.status, 200);
        assert_eq!(res.body_text(), "the protected report");
        assert_eq!(
            res.header("content-type").as_deref(),
            Some("application/pdf")
        );
        assert_eq!(
            res.header("content-disposition").as_deref(),
            Some("attachment; filename=\"r.pdf\"")
        );
        assert!(res.header("x-accel-redirect").is_none());
        let part = request(&server, "GET", "/download.php", &[("Range", "bytes=4-12")]);
        assert_eq!((part.status, part.body_text().as_str()), (206, "protected"));
        assert_eq!(get(&server, "/protected/report.pdf").status, 404);
        // A script handed back is never sent as its source.
        let leak = get(&server, "/leak.php");
        assert_eq!(leak.status, 404);
        assert!(!leak.body_text().contains("<?php"));
    });
}

#[test]
fn forms_uploads_headers_and_status_from_php() {
    with_fpm(|fpm| {
        let (_tmp, server) = site(fpm, "", &[]);
        let body = "name=Ada";
        let raw = format!(
            "POST /form.php?q=2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let res = parse_response(&server.send_raw(raw.as_bytes()), false);
        assert_eq!(res.body_text(), "name=Ada q=2 method=POST");
        // A multipart upload of 1 MiB lands in $_FILES.
        let file: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        let mut multipart = Vec::new();
        multipart.extend_from_slice(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
        );
        multipart.extend_from_slice(&file);
        multipart.extend_from_slice(b"\r\n--XyZ--\r\n");
        let mut raw = format!(
            "POST /upload.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            multipart.len()
        )
        .into_bytes();
        raw.extend_from_slice(&multipart);
        let res = parse_response(&server.send_raw(&raw), false);
        let md5 = Command::new("md5sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                std::io::Write::write_all(&mut c.stdin.take().unwrap(), &file)?;
                c.wait_with_output()
            })
            .unwrap();
        let md5 = String::from_utf8_lossy(&md5.stdout)
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(res.body_text(), format!("data.bin 1048576 {md5} err=0"));
        let res = get(&server, "/headers.php");
        assert_eq!(res.status, 201);
        assert_eq!(res.header("x-from-php").as_deref(), Some("yes"));
        // Notes to the server in front stay there, as nginx keeps them.
        assert_eq!(res.header("x-accel-expires"), None);
        assert_eq!(res.header("x-pad"), None);
        assert_eq!(res.headers_all("set-cookie").len(), 2);
        assert_eq!(res.body_text(), "made");
        let res = get(&server, "/redirect.php");
        assert_eq!(res.status, 302);
        assert_eq!(
            res.header("location").as_deref(),
            Some("https://example.test/there")
        );
    });
}

#[test]
fn a_large_answer_streams_whole() {
    with_fpm(|fpm| {
        let (_tmp, server) = site(fpm, "", &[]);
        let res = get(&server, "/big.php");
        assert_eq!(res.status, 200);
        assert_eq!(res.body.len(), 20 * 1024 * 1024);
        assert!(res.body.chunks(16).all(|c| c == b"0123456789abcdef"));
    });
}

#[test]
fn scripts_folders_and_errors() {
    with_fpm(|fpm| {
        let (tmp, server) = site(fpm, "", &["--cgi-timeout", "1s"]);
        assert_eq!(get(&server, "/sub/").body_text(), "index of sub");
        assert_eq!(get(&server, "/missing.php").status, 404);
        assert_eq!(get(&server, "/missing.php/x").status, 404);
        // Never a prefix that is not a script: the image is not run as PHP.
        write_file(&tmp.path().join("root"), "photo.jpg", "<?php echo 'ran';");
        let res = get(&server, "/photo.jpg/x.php");
        assert_eq!(res.status, 404);
        assert!(!res.body_text().contains("ran"));
        assert_eq!(get(&server, "/slow.php").status, 504);
        assert_eq!(get(&server, "/log.php").body_text(), "logged");
        let line = poll_until(Duration::from_secs(10), || {
            server
                .stderr_lines()
                .into_iter()
                .find(|l| l.contains("oops from php"))
        });
        assert!(line.is_some(), "{:?}", server.stderr_lines());
    });
}

#[test]
fn an_unreachable_application_is_502() {
    let (tmp, root) = temp_root();
    write_file(&root, "index.php", "<?php echo 1;");
    let config = tmp.path().join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            "root = \"root\"\nbind = \"127.0.0.1\"\nport = 0\n\n[[rule]]\npath = \"/**\"\nhandler = \"fastcgi\"\nupstream = \"unix:{}\"\n",
            tmp.path().join("nobody.sock").display()
        ),
    )
    .unwrap();
    let server = Server::spawn(&[OsStr::new("--config"), config.as_os_str()], None);
    assert_eq!(get(&server, "/index.php").status, 502);
    // No index configured: a folder is not a script.
    assert_eq!(get(&server, "/").status, 403);
    let explained = run_to_exit(
        &[
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--explain"),
        ],
        None,
    );
    assert!(
        explained
            .stdout
            .contains("Scripts at /** are run by the FastCGI application at unix:"),
        "{}",
        explained.stdout
    );
    assert!(
        explained.stdout.contains("(at most 4 at once)"),
        "{}",
        explained.stdout
    );
}

#[test]
fn bad_fastcgi_configuration_is_a_startup_error_naming_the_line() {
    let (tmp, _root) = temp_root();
    for (rule, complaint) in [
        ("handler = \"fastcgi\"", "needs upstream"),
        (
            "handler = \"fastcgi\"\nupstream = \"http://x\"",
            "expected unix:",
        ),
        (
            "handler = \"fastcgi\"\nupstream = \"tcp:nohost\"",
            "tcp:HOST:PORT",
        ),
        (
            "handler = \"fastcgi\"\nupstream = \"unix:/x\"\nsplit-path = \"(.+\"",
            "invalid pattern",
        ),
        (
            "handler = \"fastcgi\"\nupstream = \"unix:/x\"\nsplit-path = \"^(.+)$\"",
            "two groups",
        ),
        (
            "handler = \"fastcgi\"\nupstream = \"unix:/x\"\nindex = \"a/b.php\"",
            "file name",
        ),
        (
            "handler = \"fastcgi\"\nupstream = \"unix:/x\"\nscripts = \"php/*.php\"",
            "file name pattern",
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
        assert!(done.stderr.contains(complaint), "{rule}: {}", done.stderr);
    }
}

/// Connections to php-fpm's TCP port in any state (established or closing).
fn connections_to(port: u16) -> usize {
    let hex = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // remote address ends with the port, and the state is not LISTEN (0A)
            fields.get(2).is_some_and(|r| r.ends_with(&hex)) && fields.get(3) != Some(&"0A")
        })
        .count()
}

#[test]
fn connections_are_kept_and_reused_and_a_restarted_pool_is_reconnected() {
    let Some(binary) = php_fpm() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let fpm = Fpm::start(&binary, &listen);
    let (_tmp, server) = site(&fpm, "", &[]);
    let before = connections_to(port);
    let mut conn = Conn::open(&server);
    for _ in 0..20 {
        conn.send(b"GET /form.php?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(
            conn.read_response(false).body_text(),
            "name=- q=1 method=GET"
        );
    }
    // One request at a time: one connection, kept, not twenty.
    let used = connections_to(port) - before;
    assert_eq!(used, 1, "connections to php-fpm after 20 requests");
    drop(fpm);
    let fpm = Fpm::start(&binary, &listen);
    // The pooled connection died with the old pool: the request goes on a new one.
    conn.send(b"GET /form.php?q=2 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(
        conn.read_response(false).body_text(),
        "name=- q=2 method=GET"
    );
    drop(fpm);
}

#[test]
fn the_php_example() {
    let Some(binary) = php_fpm() else { return };
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/php");
    // The example's own pool configuration, with the socket moved to a private folder.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("php.sock");
    let fpm_conf = std::fs::read_to_string(example.join("php-fpm.conf"))
        .unwrap()
        .replace("/tmp/wharf-example-php.sock", socket.to_str().unwrap());
    std::fs::write(dir.path().join("php-fpm.conf"), fpm_conf).unwrap();
    let child = Command::new(&binary)
        .args(["--nodaemonize", "--allow-to-run-as-root", "--fpm-config"])
        .arg(dir.path().join("php-fpm.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let fpm = Fpm {
        child,
        listen: socket.to_str().unwrap().to_string(),
        _dir: tempfile::tempdir().unwrap(),
    };
    assert!(poll_until(Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&socket).ok()
    })
    .is_some());
    let wharf_conf = std::fs::read_to_string(example.join("wharf.toml"))
        .unwrap()
        .replace("/tmp/wharf-example-php.sock", socket.to_str().unwrap())
        .replace(
            "root = \"site\"",
            &format!("root = {:?}", example.join("site").display().to_string()),
        )
        .replace("port = 8000", "port = 0\nbind = \"127.0.0.1\"");
    std::fs::write(dir.path().join("wharf.toml"), wharf_conf).unwrap();
    let server = Server::spawn(
        &[
            OsStr::new("--config"),
            dir.path().join("wharf.toml").as_os_str(),
        ],
        None,
    );
    let res = get(&server, "/");
    assert_eq!(res.status, 200);
    assert!(
        res.body_text().contains("Hello from PHP"),
        "{}",
        res.body_text()
    );
    let res = get(&server, "/index.php/a/b?name=Zoe");
    assert!(res.body_text().contains("Hello, Zoe from PHP"));
    assert!(res.body_text().contains("<p id=\"path-info\">/a/b</p>"));
    let style = get(&server, "/style.css");
    assert_eq!(style.status, 200);
    assert!(style
        .header("content-type")
        .unwrap()
        .starts_with("text/css"));
    drop(fpm);
}

#[test]
fn only_the_rules_scripts_reach_the_application() {
    with_fpm(|fpm| {
        let (tmp, server) = site(fpm, "scripts = \"*.php\"", &[]);
        let root = tmp.path().join("root");
        // PHP code in an uploaded image: served as the bytes it is, never run.
        write_file(&root, "uploads/evil.jpg", "<?php echo 'ran';");
        let evil = get(&server, "/uploads/evil.jpg");
        assert_eq!(evil.status, 200);
        assert_eq!(evil.body_text(), "<?php echo 'ran';");
        assert_eq!(evil.header("content-type").as_deref(), Some("image/jpeg"));
        let style = get(&server, "/style.css");
        assert_eq!((style.status, style.body_text().as_str()), (200, "body {}"));
        // A folder without its slash goes to it; with it, to its index script.
        let folder = get(&server, "/sub");
        assert_eq!(folder.status, 301);
        assert_eq!(folder.header("location").as_deref(), Some("/sub/"));
        assert_eq!(get(&server, "/sub/").body_text(), "index of sub");
        // Scripts, with PATH_INFO, still run; a plain file takes no POST.
        let form = get(&server, "/form.php/x?q=7");
        assert_eq!(form.body_text(), "name=- q=7 method=GET");
        let post = request(&server, "POST", "/style.css", &[("Content-Length", "0")]);
        assert_eq!(post.status, 405);
        // A dotfile is not served as a plain file either.
        write_file(&root, ".secret/key.txt", "secret");
        write_file(&root, "sub/.htpasswd", "secret");
        for path in ["/.secret/key.txt", "/sub/.htpasswd"] {
            let res = get(&server, path);
            assert_eq!(res.status, 404, "{path}");
            assert!(!res.body_text().contains("secret"), "{path}");
        }
    });
}

#[test]
fn more_requests_than_workers_wait_their_turn() {
    with_fpm(|fpm| {
        // Two php-fpm workers, `max-connections = 2`: eight requests at once are all
        // answered, none stuck behind a connection that holds a worker idle.
        let (_tmp, server) = site(fpm, "", &[]);
        let addr = server.addr().to_string();
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    parse_response(
                        &send_raw_to(&addr, &request_bytes("GET", "/nap.php", &[])),
                        false,
                    )
                })
            })
            .collect();
        for client in clients {
            let res = client.join().unwrap();
            assert_eq!((res.status, res.body_text().as_str()), (200, "rested"));
        }
    });
}

/// A FastCGI application of a few lines: for each connection it reads one request
/// (to its empty `STDIN`) and writes `answer`'s records.
fn fake_application(answer: fn() -> Vec<u8>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            loop {
                let mut head = [0u8; 8];
                if stream.read_exact(&mut head).is_err() {
                    break;
                }
                let len = u16::from_be_bytes([head[4], head[5]]) as usize + head[6] as usize;
                let mut content = vec![0; len];
                if stream.read_exact(&mut content).is_err() {
                    break;
                }
                // STDIN (5) with no content ends the request.
                if head[1] == 5 && u16::from_be_bytes([head[4], head[5]]) == 0 {
                    let _ = stream.write_all(&answer());
                    break;
                }
            }
        }
    });
    addr
}

/// One FastCGI record of request 1.
fn record(kind: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![1, kind, 0, 1];
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(content);
    out
}

/// `END_REQUEST` with this protocol status.
fn end_request(protocol_status: u8) -> Vec<u8> {
    record(3, &[0, 0, 0, 0, protocol_status, 0, 0, 0])
}

#[test]
fn an_overloaded_application_is_503_and_its_stderr_is_bounded() {
    let overloaded = fake_application(|| end_request(2));
    let chatty = fake_application(|| {
        let mut out = Vec::new();
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        for _ in 0..40 {
            out.extend(record(7, &line.repeat(600)));
        }
        out.extend(record(6, b"Content-Type: text/plain\r\n\r\nfine"));
        out.extend(record(6, b""));
        out.extend(end_request(0));
        out
    });
    let (tmp, root) = temp_root();
    std::fs::write(root.join("a.php"), "").unwrap();
    std::fs::create_dir(root.join("chatty")).unwrap();
    std::fs::write(root.join("chatty/b.php"), "").unwrap();
    let conf = tmp.path().join("wharf.toml");
    std::fs::write(
        &conf,
        format!(
            "[[rule]]\npath = \"/chatty/**\"\nhandler = \"fastcgi\"\nupstream = \"tcp:{chatty}\"\n\n[[rule]]\npath = \"/a.php\"\nhandler = \"fastcgi\"\nupstream = \"tcp:{overloaded}\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    let busy = get(&server, "/a.php");
    assert_eq!(busy.status, 503);
    assert_eq!(busy.header("retry-after").as_deref(), Some("1"));
    let fine = get(&server, "/chatty/b.php");
    assert_eq!((fine.status, fine.body_text().as_str()), (200, "fine"));
    poll_until(Duration::from_secs(10), || {
        server
            .stderr_lines()
            .iter()
            .any(|l| l.contains("more STDERR for this request is not shown"))
            .then_some(())
    })
    .expect("wharf says the rest of STDERR is not shown");
    let copied = server
        .stderr_lines()
        .iter()
        .filter(|l| l.ends_with(&"x".repeat(99)))
        .count();
    // 64 KiB of 100-byte lines, not the 2.4 MB sent.
    assert!((600..=700).contains(&copied), "{copied} lines copied");
}

/// A FastCGI application that keeps its connections: each answers every request
/// on it with "ok". The first `together` connections answer their first request
/// only once all of them have one (so wharf holds that many at once). Returns its
/// address, its connections (to close as a restart would) and how many of them
/// wharf has closed.
fn keeping_application(
    together: usize,
) -> (
    String,
    Arc<Mutex<Vec<std::net::TcpStream>>>,
    Arc<AtomicUsize>,
) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let open = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::clone(&open);
    let closed = Arc::new(AtomicUsize::new(0));
    let closed_seen = Arc::clone(&closed);
    let barrier = Arc::new(std::sync::Barrier::new(together));
    std::thread::spawn(move || {
        for (n, mut stream) in listener.incoming().flatten().enumerate() {
            held.lock().unwrap().push(stream.try_clone().unwrap());
            let barrier = (n < together).then(|| Arc::clone(&barrier));
            let closed = Arc::clone(&closed_seen);
            std::thread::spawn(move || {
                let mut first = true;
                loop {
                    let mut head = [0u8; 8];
                    if stream.read_exact(&mut head).is_err() {
                        closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    let len = u16::from_be_bytes([head[4], head[5]]) as usize + head[6] as usize;
                    let mut content = vec![0; len];
                    if stream.read_exact(&mut content).is_err() {
                        return;
                    }
                    if head[1] == 5 && u16::from_be_bytes([head[4], head[5]]) == 0 {
                        if let (true, Some(barrier)) = (first, &barrier) {
                            barrier.wait();
                        }
                        first = false;
                        let mut out = record(6, b"Content-Type: text/plain\r\n\r\nok");
                        out.extend(record(6, b""));
                        out.extend(end_request(0));
                        if stream.write_all(&out).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, open, closed)
}

#[test]
fn every_kept_connection_a_restarted_application_closed_is_let_go() {
    let (app, open, _) = keeping_application(3);
    let (_tmp, server) = php_site(&app);
    // Three requests at once: three connections, kept by wharf afterwards.
    let answers: Vec<_> = (0..3)
        .map(|_| {
            let addr = server.addr().to_string();
            std::thread::spawn(move || {
                let raw = b"GET /a.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                parse_response(&send_raw_to(&addr, raw), false).body_text()
            })
        })
        .collect();
    for answer in answers {
        assert_eq!(answer.join().unwrap(), "ok");
    }
    assert_eq!(open.lock().unwrap().len(), 3);
    // The application restarts: every connection it had is closed.
    for stream in open.lock().unwrap().drain(..) {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    let res = get(&server, "/a.php");
    assert_eq!((res.status, res.body_text().as_str()), (200, "ok"));
}

/// A server with one FastCGI rule, `/a.php` to the application at `app`.
fn php_site(app: &str) -> (tempfile::TempDir, Server) {
    let (tmp, root) = temp_root();
    std::fs::write(root.join("a.php"), "").unwrap();
    let conf = tmp.path().join("wharf.toml");
    std::fs::write(
        &conf,
        format!("[[rule]]\npath = \"/a.php\"\nhandler = \"fastcgi\"\nupstream = \"tcp:{app}\"\n"),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    (tmp, server)
}

/// A kept connection the application closed since (a php-fpm child that served its
/// `pm.max_requests`) is let go before it is used: a POST, which is not sent twice,
/// is not lost on it.
#[test]
fn a_post_after_the_application_closed_its_kept_connection_is_answered() {
    let (app, open, _) = keeping_application(1);
    let (_tmp, server) = php_site(&app);
    assert_eq!(get(&server, "/a.php").body_text(), "ok");
    for stream in open.lock().unwrap().drain(..) {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    let raw =
        b"POST /a.php HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=1";
    let res = parse_response(&send_raw_to(server.addr(), raw), false);
    assert_eq!((res.status, res.body_text().as_str()), (200, "ok"));
}

/// An unused connection holds one of the application's workers, which another of
/// its clients may be waiting for: it is closed after a few seconds.
#[test]
fn an_unused_connection_to_the_application_is_closed() {
    let (app, _open, closed) = keeping_application(1);
    let (_tmp, server) = php_site(&app);
    assert_eq!(get(&server, "/a.php").body_text(), "ok");
    poll_until(Duration::from_secs(30), || {
        (closed.load(Ordering::SeqCst) == 1).then_some(())
    })
    .expect("the unused connection is closed");
    // The next request makes a new one.
    assert_eq!(get(&server, "/a.php").body_text(), "ok");
}

/// An application that takes a request and never answers: the client leaving
/// closes wharf's connection to it, as nginx closes its upstream's, long before the
/// timeout.
#[test]
fn a_client_that_leaves_closes_the_applications_connection() {
    let (addr, seen) = silent_app();
    let (tmp, root) = temp_root();
    std::fs::write(root.join("slow.php"), "").unwrap();
    let conf = tmp.path().join("wharf.toml");
    std::fs::write(
        &conf,
        format!("[[rule]]\npath = \"/*.php\"\nhandler = \"fastcgi\"\nupstream = \"tcp:{addr}\"\n"),
    )
    .unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    let mut conn = Conn::open(&server);
    conn.send(&request_bytes("GET", "/slow.php", &[]));
    assert_eq!(seen.recv_timeout(Duration::from_secs(10)), Ok("connected"));
    drop(conn);
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(10)),
        Ok("closed"),
        "the application's connection outlived the client"
    );
}
