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
    server.signal("HUP");
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
    std::fs::write(&conf, format!("{}header-timeout = \"3s\"\n", "")).unwrap();
    let line = reload(&server, 3);
    assert!(
        line.contains("header-timeout change only at a restart"),
        "{line}"
    );
    assert_eq!(get(&server, "/a.txt").header("x-version"), None);
}

#[test]
fn ten_reloads_under_load_fail_no_request() {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let conf = tmp.path().join("wharf.toml");
    std::fs::write(&conf, site_file("0")).unwrap();
    let server = Arc::new(Server::start(&root, &["--config", conf.to_str().unwrap()]));
    let running = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for kept_alive in [true, false] {
        let (server, running, seen) =
            (Arc::clone(&server), Arc::clone(&running), Arc::clone(&seen));
        clients.push(std::thread::spawn(move || {
            let mut conn = Conn::open(&server);
            while running.load(Ordering::SeqCst) {
                let res = if kept_alive {
                    conn.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
                    conn.read_response(false)
                } else {
                    get(&server, "/a.txt")
                };
                seen.lock()
                    .unwrap()
                    .push((res.status, res.header("x-version").unwrap_or_default()));
            }
        }));
    }
    for n in 1..=10 {
        std::fs::write(&conf, site_file(&n.to_string())).unwrap();
        let line = reload(&server, n);
        assert_eq!(line, "wharf: reloaded the configuration (SIGHUP)");
        // Requests are answered between reloads.
        let before = seen.lock().unwrap().len();
        poll_until(Duration::from_secs(10), || {
            (seen.lock().unwrap().len() > before + 20).then_some(())
        })
        .expect("requests go on");
    }
    running.store(false, Ordering::SeqCst);
    for client in clients {
        client.join().expect("no client failed");
    }
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 200, "{} requests", seen.len());
    for (status, version) in seen.iter() {
        assert_eq!(*status, 200);
        let v: u32 = version
            .parse()
            .expect("every answer has a configuration's header");
        assert!(v <= 10);
    }
    let last = seen.last().unwrap();
    assert_eq!(last.1, "10");
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
