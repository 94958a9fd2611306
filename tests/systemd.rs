//! systemd: socket activation (a listening socket passed by systemd's own
//! `systemd-socket-activate`), readiness notification on `$NOTIFY_SOCKET`, and
//! `--reuse-port` for several processes on one port.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Whether systemd's `systemd-socket-activate` is here (CI must have it).
fn activator_present() -> bool {
    let present = have("systemd-socket-activate");
    if !present {
        eprintln!("skipped: systemd-socket-activate is not installed (Debian: systemd)");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have systemd-socket-activate"
        );
    }
    present
}

/// Starts wharf on `root` under `systemd-socket-activate` with `listen` options,
/// then GETs `path` on `port` (the connection is what starts wharf, on the socket
/// already listening); returns the whole answer.
fn activated_get(listen: &[String], root: &std::path::Path, port: u16, path: &str) -> String {
    let mut activator = Command::new("systemd-socket-activate")
        .args(listen)
        .arg(env!("CARGO_BIN_EXE_wharf"))
        .arg(root)
        .arg("-q")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stream = poll_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("systemd-socket-activate listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let _ = activator.kill();
    let _ = activator.wait();
    answer
}

#[test]
fn a_socket_passed_by_systemd_is_served() {
    if !activator_present() {
        return;
    }
    let (_tmp, root) = temp_root();
    write_file(&root, "a.txt", "activated");
    let port = free_port();
    let answer = activated_get(
        &[format!("--listen=127.0.0.1:{port}")],
        &root,
        port,
        "/a.txt",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("activated"), "{answer}");
}

#[test]
fn a_socket_passed_by_systemd_gets_the_bound_on_unsent_bytes() {
    if !activator_present() {
        return;
    }
    let (_tmp, root) = temp_root();
    write_file(&root, "1m.bin", pseudo_random_bytes(5, 1024 * 1024));
    let port = free_port();
    // Stopped however the test ends (systemd-socket-activate execs wharf).
    struct Stopped(std::process::Child);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _wharf = Stopped(
        Command::new("systemd-socket-activate")
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(env!("CARGO_BIN_EXE_wharf"))
            .arg(&root)
            .arg("-q")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The first connection starts wharf; it was queued before wharf could set
    // anything on the socket, so the check uses the next one.
    let started = poll_until(Duration::from_secs(10), || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
        stream
            .write_all(b"HEAD /1m.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        answer.starts_with("HTTP/1.1 200").then_some(())
    });
    started.expect("wharf answers on the passed socket");
    let (_reader, queued) = queued_for_a_reader_that_reads_nothing(port, "/1m.bin");
    assert!(
        queued <= UNSENT_BOUND_AND_WINDOW,
        "{queued} bytes queued in the kernel for a client that reads nothing"
    );
}

#[test]
fn readiness_reload_and_stopping_are_notified() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notify.sock");
    let listener = UnixDatagram::bind(&path).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (_t, root) = temp_root();
    let mut server = Server::start_configured(&root, &[], |cmd| {
        cmd.env("NOTIFY_SOCKET", &path);
    });
    let next = || {
        let mut buf = [0u8; 512];
        let n = listener.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1");
    server.signal("HUP");
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(next(), "READY=1");
    server.signal("TERM");
    assert_eq!(next(), "STOPPING=1");
    assert!(server.expect_exit().success());
}

#[test]
fn reuse_port_lets_two_processes_share_a_port_and_is_needed_for_it() {
    let (_t, root) = temp_root();
    write_file(&root, "a.txt", "a");
    let port = free_port().to_string();
    let first = Server::start(&root, &["-p", &port, "--reuse-port"]);
    let second = Server::start(&root, &["-p", &port, "--reuse-port"]);
    assert_eq!(get(&first, "/a.txt").status, 200);
    assert_eq!(get(&second, "/a.txt").status, 200);
    let r = root.to_str().unwrap();
    let refused = run_to_exit(&[r, "-b", "127.0.0.1", "-p", &port], None);
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("address already in use"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_passed_socket_named_admin_is_the_admin_listener_and_a_datagram_one_is_refused() {
    if !activator_present() {
        return;
    }
    let (_tmp, root) = temp_root();
    let (site, admin) = (free_port(), free_port());
    let listen = [
        format!("--listen=127.0.0.1:{site}"),
        format!("--listen=127.0.0.1:{admin}"),
        "--fdname=site:admin".to_string(),
    ];
    let answer = activated_get(&listen, &root, admin, "/healthz");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");

    // A datagram socket is not something wharf can serve: it says so and exits.
    let port = free_port();
    let mut activator = Command::new("systemd-socket-activate")
        .arg("--datagram")
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(env!("CARGO_BIN_EXE_wharf"))
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut said = String::new();
    let mut stderr = activator.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    poll_until(Duration::from_secs(10), || {
        udp.send_to(b"x", ("127.0.0.1", port)).ok()?;
        activator.try_wait().ok().flatten()
    })
    .expect("wharf started by the datagram exits");
    said.push_str(&reader.join().unwrap());
    assert!(said.contains("not a listening stream socket"), "{said}");
}

/// A passed admin socket is held to `--admin`'s rule: on an address other hosts
/// reach it needs `--admin-public`, else wharf says so and exits (inside a network
/// namespace of its own, where listening on every address reaches no one).
#[test]
fn a_passed_admin_socket_beyond_loopback_needs_admin_public() {
    if !activator_present() {
        return;
    }
    if !have_all(&["unshare", "ip", "curl"]) {
        return;
    }
    let (tmp, root) = temp_root();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // The first connection starts wharf; `wait` then gives its exit status when it
    // refuses the socket, or the second run answers the admin's health check.
    let script = r#"
set -u
wharf="$1"; root="$2"; out="$3"
ip link set lo up
systemd-socket-activate --listen=127.0.0.1:8001 --listen=0.0.0.0:8002 \
    --fdname=site:admin "$wharf" "$root" 2>"$out/refused.log" >/dev/null &
pid=$!
curl -s -o /dev/null --max-time 5 http://127.0.0.1:8001/
for _ in $(seq 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.025; done
if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"; echo served > "$out/refused.status"
else
    wait "$pid"; echo $? > "$out/refused.status"
fi
systemd-socket-activate --listen=127.0.0.1:8003 --listen=0.0.0.0:8004 \
    --fdname=site:admin "$wharf" "$root" --admin-public 2>"$out/public.log" >/dev/null &
pid=$!
for _ in $(seq 400); do curl -s -o "$out/health" http://127.0.0.1:8004/healthz && break; \
    sleep 0.025; done
kill "$pid"
"#;
    let status = in_network_namespace(
        script,
        &[
            std::path::Path::new(env!("CARGO_BIN_EXE_wharf")),
            root.as_path(),
            out.as_path(),
        ],
    );
    assert!(status.success());
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    assert_eq!(
        read("refused.status").trim(),
        "1",
        "{}",
        read("refused.log")
    );
    assert!(
        read("refused.log").contains("--admin-public"),
        "{}",
        read("refused.log")
    );
    assert_eq!(read("health"), "ok\n", "{}", read("public.log"));
}
