//! SIGHUP re-reads the configuration and swaps the new site in whole: requests see
//! the old configuration or the new one, never none; an invalid file changes
//! nothing and says why in one line.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

fn site_file(version: &str) -> String {
    format!("[[rule]]\npath = \"/\"\nheaders = {{ \"X-Version\" = \"{version}\" }}\n")
}

/// Sends SIGHUP and waits for the `n`th line saying how a reload went.
fn reload(server: &Server, n: usize) -> String {
    reload_pid(server, server.pid(), n)
}

#[test]
fn sighup_applies_a_new_configuration_and_refuses_a_broken_one() {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let conf = tmp.path().join("wharf.toml");
    std::fs::write(&conf, site_file("1")).unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    assert_eq!(
        get(&server, "/a.txt").header("x-version").as_deref(),
        Some("1")
    );

    std::fs::write(&conf, site_file("2")).unwrap();
    let line = reload(&server, 1);
    assert_eq!(line, "wharf: reloaded the configuration (SIGHUP)");
    assert_eq!(
        get(&server, "/a.txt").header("x-version").as_deref(),
        Some("2")
    );

    std::fs::write(&conf, "[[rule]]\npath = \"/\"\nheaders = 3\n").unwrap();
    let line = reload(&server, 2);
    assert!(
        line.starts_with("wharf: reload failed, the configuration is unchanged"),
        "{line}"
    );
    assert!(line.contains("wharf.toml:3"), "{line}");
    assert_eq!(
        get(&server, "/a.txt").header("x-version").as_deref(),
        Some("2")
    );

    // What only a restart changes is said so.
    std::fs::write(&conf, "workers = 3\n").unwrap();
    let line = reload(&server, 3);
    assert!(
        line.ends_with("; applied only at a restart: workers"),
        "{line}"
    );
    std::fs::write(&conf, "workers = 3\ncgi-max = 2\n").unwrap();
    let line = reload(&server, 4);
    assert!(
        line.ends_with("; applied only at a restart: workers, cgi-max"),
        "{line}"
    );
    assert_eq!(get(&server, "/a.txt").header("x-version"), None);
}

/// A process started by the test indirectly (the new wharf of an upgrade), stopped
/// by its PID when the test ends.
struct Adopted(u32);

impl Drop for Adopted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.to_string())
            .status();
    }
}

/// What the clients saw: status and configuration version of every answer, and the
/// HTTP/2 requests the client had to send again because the connection was going
/// away before they were sent (GOAWAY: never processed, RFC 9113 §6.8).
#[derive(Default)]
struct Seen {
    answers: Vec<(u16, String)>,
    h2_resent: usize,
}

/// Keep-alive and new HTTP/1.1 connections and an HTTP/2 connection, each in a loop
/// while `running`, recording every answer in `seen`. A client follows
/// `Connection: close` and GOAWAY by opening a new connection, as clients do; any
/// other error fails its thread.
fn clients(
    addr: &str,
    running: &Arc<AtomicBool>,
    seen: &Arc<Mutex<Seen>>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    for kept_alive in [true, false] {
        let (addr, running, seen) = (addr.to_string(), Arc::clone(running), Arc::clone(seen));
        threads.push(std::thread::spawn(move || {
            let mut conn = Conn::new(connect(&addr));
            while running.load(Ordering::SeqCst) {
                let res = if kept_alive {
                    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
                    let res = conn.read_response(false);
                    if res.header("connection").as_deref() == Some("close") {
                        conn = Conn::new(connect(&addr));
                    }
                    res
                } else {
                    let raw = send_raw_to(
                        &addr,
                        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    );
                    parse_response(&raw, false)
                };
                seen.lock()
                    .unwrap()
                    .answers
                    .push((res.status, res.header("x-version").unwrap_or_default()));
            }
        }));
    }
    let (addr, running, seen) = (addr.to_string(), Arc::clone(running), Arc::clone(seen));
    threads.push(std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            use common::client::*;
            let uri = format!("http://{addr}/a.txt");
            let mut sender = h2_handshake(tcp(&addr).await).await;
            while running.load(Ordering::SeqCst) {
                // A connection going away takes no new requests: open another.
                if sender.ready().await.is_err() {
                    sender = h2_handshake(tcp(&addr).await).await;
                    seen.lock().unwrap().h2_resent += 1;
                    continue;
                }
                let res = match sender
                    .send_request(build_request("GET", &uri, &[], b""))
                    .await
                {
                    Ok(res) => res,
                    Err(e) => {
                        let refused = std::error::Error::source(&e)
                            .and_then(|s| s.downcast_ref::<h2::Error>())
                            .is_some_and(|h| {
                                h.is_go_away() || h.reason() == Some(h2::Reason::REFUSED_STREAM)
                            });
                        assert!(refused || e.is_canceled(), "HTTP/2 request failed: {e:?}");
                        seen.lock().unwrap().h2_resent += 1;
                        continue;
                    }
                };
                let status = res.status().as_u16();
                let version = res
                    .headers()
                    .get("x-version")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                http_body_util::BodyExt::collect(res.into_body())
                    .await
                    .expect("HTTP/2 body");
                seen.lock().unwrap().answers.push((status, version));
            }
        });
    }));
    threads
}

/// Sends SIGHUP to `pid` (the server's process, or the one an upgrade started,
/// which writes to the same stderr) and waits for the `n`th line saying how a
/// reload went.
fn reload_pid(server: &Server, pid: u32, n: usize) -> String {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    poll_until(Duration::from_secs(10), || {
        let lines: Vec<String> = server
            .stderr_lines()
            .into_iter()
            .filter(|l| l.contains("wharf: reload"))
            .collect();
        lines.get(n - 1).cloned()
    })
    .expect("the reload is reported")
}

/// Sends SIGUSR2 and waits for the line saying the upgrade worked; the new
/// process's id.
fn upgrade(server: &Server) -> u32 {
    server.signal("USR2");
    let line = poll_until(Duration::from_secs(20), || {
        server
            .stderr_lines()
            .into_iter()
            .find(|l| l.starts_with("wharf: upgrade: process "))
    })
    .expect("the upgrade is reported");
    line.strip_prefix("wharf: upgrade: process ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

/// Steady load — keep-alive and new HTTP/1.1 connections, and HTTP/2 — across ten
/// reloads and, between the fifth and the sixth, a binary upgrade (SIGUSR2, the
/// executable's file replaced first): no request fails, every answer comes from one
/// configuration or the next, and the old process exits once drained.
#[test]
fn ten_reloads_and_an_upgrade_under_load_fail_no_request() {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let conf = tmp.path().join("wharf.toml");
    std::fs::write(&conf, site_file("0")).unwrap();
    // A copy of the binary, so that the upgrade can replace the file.
    let exe = tmp.path().join("wharf");
    std::fs::copy(env!("CARGO_BIN_EXE_wharf"), &exe).unwrap();
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(loopback_args(
        &root,
        &["--config", conf.to_str().unwrap(), "--grace-period", "3s"],
    ))
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut server = Server::spawn_command(cmd);
    let old_pid = server.pid();
    let running = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let threads = clients(server.addr(), &running, &seen);
    let answered = |more: usize| {
        let before = seen.lock().unwrap().answers.len();
        poll_until(Duration::from_secs(10), || {
            (seen.lock().unwrap().answers.len() > before + more).then_some(())
        })
        .expect("requests go on");
    };
    let mut pid = old_pid;
    let mut adopted = None;
    for n in 1..=10 {
        if n == 6 {
            // A new binary in place of the old, then SIGUSR2.
            let staged = tmp.path().join("wharf.new");
            std::fs::copy(env!("CARGO_BIN_EXE_wharf"), &staged).unwrap();
            std::fs::rename(&staged, &exe).unwrap();
            pid = upgrade(&server);
            adopted = Some(Adopted(pid));
            assert_ne!(pid, old_pid);
            answered(50);
        }
        std::fs::write(&conf, site_file(&n.to_string())).unwrap();
        let line = reload_pid(&server, pid, n);
        assert_eq!(line, "wharf: reloaded the configuration (SIGHUP)");
        // Requests are answered between reloads.
        answered(20);
    }
    // The old process drained and left while the new one served.
    assert!(
        server.wait_exit(Duration::from_secs(20)).is_some(),
        "the old process exited"
    );
    answered(20);
    running.store(false, Ordering::SeqCst);
    for client in threads {
        client.join().expect("no client failed");
    }
    let seen = seen.lock().unwrap();
    assert!(seen.answers.len() > 500, "{} requests", seen.answers.len());
    let mut versions = std::collections::BTreeSet::new();
    for (status, version) in &seen.answers {
        assert_eq!(*status, 200);
        let v: u32 = version
            .parse()
            .expect("every answer has a configuration's header");
        assert!(v <= 10);
        versions.insert(v);
    }
    assert_eq!(seen.answers.last().unwrap().1, "10");
    assert!(versions.len() >= 10, "{versions:?}");
    eprintln!(
        "{} answers, versions {versions:?}, {} HTTP/2 requests sent again after GOAWAY",
        seen.answers.len(),
        seen.h2_resent
    );
    drop(adopted);
}

#[test]
fn a_reload_keeps_webdav_locks() {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let conf = tmp.path().join("wharf.toml");
    std::fs::write(&conf, site_file("1")).unwrap();
    let server = Server::start(&root, &["--upload", "--config", conf.to_str().unwrap()]);
    let body = "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>";
    let lock = server.exchange(
        format!(
            "LOCK /a.txt HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
        false,
    );
    assert_eq!(lock.status, 200, "{}", lock.body_text());
    assert!(lock.header("lock-token").is_some());
    let put = || {
        server.exchange(
            b"PUT /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nb",
            false,
        )
    };
    assert_eq!(put().status, 423);
    std::fs::write(&conf, site_file("2")).unwrap();
    assert_eq!(
        reload(&server, 1),
        "wharf: reloaded the configuration (SIGHUP)"
    );
    assert_eq!(put().status, 423, "the lock outlives the reload");
}

/// A deploy that puts a new release at the root's path (a symlink swapped, a
/// folder renamed into place, or deleted and made again) is served from then on,
/// as nginx serves its `root` by path, though no setting changed: the site is
/// built again on the folder the path names now, within about a second.
#[test]
fn the_folder_the_root_path_names_now_is_served() {
    let (tmp, _) = temp_root();
    let release = |name: &str, text: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), text).unwrap();
    };
    let serves = |server: &Server, text: &str| {
        poll_until(Duration::from_secs(10), || {
            (get(server, "/a.txt").body_text() == text).then_some(())
        })
        .is_some()
    };
    release("r1", "one");
    let current = tmp.path().join("current");
    std::os::unix::fs::symlink("r1", &current).unwrap();
    let server = Server::start(&current, &[]);
    // Twice: the second answer comes from the file cache.
    assert_eq!(get(&server, "/a.txt").body_text(), "one");
    assert_eq!(get(&server, "/a.txt").body_text(), "one");

    release("r2", "two");
    let next = tmp.path().join("current.next");
    std::os::unix::fs::symlink("r2", &next).unwrap();
    std::fs::rename(&next, &current).unwrap();
    assert!(serves(&server, "two"), "the swapped symlink");
    assert!(server
        .stderr_lines()
        .iter()
        .any(|l| l == "wharf: reloaded the configuration (the served folder was replaced)"));
    assert_eq!(get(&server, "/a.txt").body_text(), "two");

    std::fs::rename(tmp.path().join("r2"), tmp.path().join("r2.old")).unwrap();
    release("r2", "three");
    assert!(serves(&server, "three"), "a folder renamed into place");

    std::fs::remove_dir_all(tmp.path().join("r2")).unwrap();
    release("r2", "four");
    assert!(serves(&server, "four"), "a folder deleted and made again");
    // A reload by hand finds nothing new to do.
    assert_eq!(
        reload(&server, 4),
        "wharf: reloaded the configuration (SIGHUP)"
    );
    assert_eq!(get(&server, "/a.txt").body_text(), "four");
}

/// A release made with hard links (`cp -al`, `rsync --link-dest`) keeps its
/// programs' inodes: once the swap is seen, the program that runs is the new
/// release's, not the one found in the old folder.
#[test]
fn programs_run_from_the_folder_the_root_path_names_now() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, _) = temp_root();
    let r1 = tmp.path().join("r1");
    std::fs::create_dir_all(r1.join("cgi-bin")).unwrap();
    let program = r1.join("cgi-bin/where.sh");
    std::fs::write(
        &program,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s' \"$SCRIPT_FILENAME\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The next release is made (linking changes the file's ctime) before the old
    // one's program is found, as a deploy that prepares it ahead does.
    let r2 = tmp.path().join("r2");
    std::fs::create_dir_all(r2.join("cgi-bin")).unwrap();
    std::fs::hard_link(&program, r2.join("cgi-bin/where.sh")).unwrap();
    let current = tmp.path().join("current");
    std::os::unix::fs::symlink("r1", &current).unwrap();
    let server = Server::start(&current, &["--cgi"]);
    let ran = get(&server, "/cgi-bin/where.sh");
    assert!(ran.body_text().contains("/r1/"), "{}", ran.body_text());

    let next = tmp.path().join("current.next");
    std::os::unix::fs::symlink("r2", &next).unwrap();
    std::fs::rename(&next, &current).unwrap();
    let ran = poll_until(Duration::from_secs(10), || {
        let ran = get(&server, "/cgi-bin/where.sh").body_text();
        ran.contains("/r2/").then_some(ran)
    });
    assert!(ran.is_some(), "still the old release's program");
}

/// A new executable that cannot start leaves the old process serving; one that can
/// takes every socket over, the admin listener too.
#[test]
fn a_failed_upgrade_keeps_serving_and_a_good_one_takes_every_socket() {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    // wharf runs from a copy of the binary, which the test replaces as a package
    // upgrade would: first with a program that fails, then with wharf again.
    let real = tmp.path().join("real-wharf");
    std::fs::copy(env!("CARGO_BIN_EXE_wharf"), &real).unwrap();
    let mut cmd = std::process::Command::new(&real);
    cmd.args(loopback_args(&root, &["--admin", "127.0.0.1:0"]))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut server = Server::spawn_command(cmd);
    let admin = poll_until(Duration::from_secs(10), || {
        server.stderr_lines().into_iter().find_map(|l| {
            l.strip_prefix("wharf: admin (metrics, health) at http://")
                .and_then(|rest| rest.split('/').next())
                .map(str::to_string)
        })
    })
    .expect("the admin address is printed");

    // The broken one: it exits before serving.
    let broken = tmp.path().join("broken");
    std::fs::write(&broken, "#!/bin/sh\necho 'not a wharf' >&2\nexit 3\n").unwrap();
    let mut perms = std::fs::metadata(&broken).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&broken, perms).unwrap();
    std::fs::rename(&broken, &real).unwrap();
    server.signal("USR2");
    let line = poll_until(Duration::from_secs(20), || {
        server
            .stderr_lines()
            .into_iter()
            .find(|l| l.starts_with("wharf: upgrade"))
    })
    .expect("the upgrade is reported");
    assert!(
        line.starts_with(
            "wharf: upgrade failed, still serving: the new process exited before serving"
        ),
        "{line}"
    );
    assert_eq!(get(&server, "/a.txt").status, 200);

    // A real one.
    let staged = tmp.path().join("staged");
    std::fs::copy(env!("CARGO_BIN_EXE_wharf"), &staged).unwrap();
    std::fs::rename(&staged, &real).unwrap();
    let _adopted = Adopted(upgrade(&server));
    assert!(server.wait_exit(Duration::from_secs(20)).is_some());
    // The same ports, now the new process's.
    assert_eq!(get(&server, "/a.txt").body_text(), "a");
    let health = send_raw_to(
        &admin,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        health.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&health)
    );
}

/// Listen addresses are part of what a reload applies: a new port is bound, a port
/// no longer configured is closed, and connections already open carry on.
#[test]
fn a_reload_binds_new_ports_and_closes_removed_ones() {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let (first, second) = (free_port(), free_port());
    let conf = tmp.path().join("wharf.toml");
    let listening_on =
        |port: u16| format!("root = {root:?}\nbind = \"127.0.0.1\"\nport = {port}\n");
    std::fs::write(&conf, listening_on(first)).unwrap();
    let server = Server::spawn(&["--config", conf.to_str().unwrap()], None);
    assert_eq!(server.port(), first);
    let mut kept = Conn::open(&server);
    kept.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(kept.read_response(false).status, 200);

    std::fs::write(&conf, listening_on(second)).unwrap();
    let line = reload(&server, 1);
    assert_eq!(line, "wharf: reloaded the configuration (SIGHUP)");
    let lines = server.stderr_lines();
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("wharf: now also serving at http://127.0.0.1:{second}/")),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l == &format!("wharf: stopped listening on 127.0.0.1:{first}")));
    let moved = send_raw_to(
        &format!("127.0.0.1:{second}"),
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(moved.starts_with(b"HTTP/1.1 200"));
    // The old port refuses new connections (every worker closed its copy)...
    let refused = poll_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", first))
            .err()
            .filter(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    assert!(refused.is_some(), "port {first} still accepts");
    // ...while the connection made on it goes on.
    kept.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(kept.read_response(false).status, 200);

    // A port that cannot be bound fails the reload and changes nothing.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    std::fs::write(&conf, listening_on(busy)).unwrap();
    let line = reload(&server, 2);
    assert!(
        line.starts_with("wharf: reload failed, the configuration is unchanged: cannot listen on"),
        "{line}"
    );
    let still = send_raw_to(
        &format!("127.0.0.1:{second}"),
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(still.starts_with(b"HTTP/1.1 200"));
}

/// Connection limits are part of a reload: connections accepted after it take the
/// new header timeout.
#[test]
fn a_reload_changes_the_limits_of_new_connections() {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let conf = tmp.path().join("wharf.toml");
    std::fs::write(&conf, "header-timeout = \"60s\"\n").unwrap();
    let server = Server::start(&root, &["--config", conf.to_str().unwrap()]);
    std::fs::write(&conf, "header-timeout = \"1s\"\n").unwrap();
    let line = reload(&server, 1);
    assert_eq!(line, "wharf: reloaded the configuration (SIGHUP)");
    // A client that sends nothing is dropped after the new timeout, not the old.
    let mut silent = Conn::open(&server);
    assert!(
        silent.wait_for_close_within(Duration::from_secs(20)),
        "a silent connection outlived the new header timeout"
    );
}
