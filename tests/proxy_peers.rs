//! The proxy with the app servers people put behind it: gunicorn (one sync worker,
//! the classic victim of slow clients) and a WebSocket app on the `websockets`
//! library (PyPI). CI installs both; elsewhere the tests say what is missing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// Whether `python3` can import `module`; in CI its absence is a failure.
fn python_has(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: python3 cannot import {module} (pip install {module})");
        assert!(std::env::var_os("CI").is_none(), "CI must install {module}");
    }
    ok
}

/// A child process stopped (by its PID) when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let up = poll_until(Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(up.is_some(), "the app did not listen on {port}");
}

const APP: &str = r#"
def app(environ, start_response):
    if environ["PATH_INFO"] == "/upload":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        got = len(environ["wsgi.input"].read(n))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(got).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fast"]
"#;

fn gunicorn(dir: &Path) -> (Peer, u16) {
    std::fs::write(dir.join("wsgiapp.py"), APP).unwrap();
    let port = free_port();
    let child = Command::new("python3")
        .args(["-m", "gunicorn", "--workers", "1", "--timeout", "60"])
        .args(["--bind", &format!("127.0.0.1:{port}"), "wsgiapp:app"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    (Peer(child), port)
}

/// `count` uploads of 1 MiB begun towards `addr`, 16 KiB of each sent: what clients
/// on slow links look like a second into their uploads.
fn slow_uploads(addr: &str, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 1048576\r\n\r\n")
                .unwrap();
            s.write_all(&[b'u'; 16 * 1024]).unwrap();
            s
        })
        .collect()
}

/// `GET /fast` on `addr`, waiting at most `limit` for the answer.
fn fast_request(addr: &str, limit: Duration) -> Option<String> {
    let mut s = connect(addr);
    s.set_read_timeout(Some(limit)).unwrap();
    s.write_all(b"GET /fast HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[test]
fn slow_uploads_through_wharf_leave_gunicorn_free() {
    if !python_has("gunicorn") {
        return;
    }
    let (tmp, root) = temp_root();
    let (_app, port) = gunicorn(tmp.path());
    let server = Server::start(&root, &["--proxy", &format!("/=http://127.0.0.1:{port}")]);
    let _uploads = slow_uploads(server.addr(), 20);
    // wharf holds the unfinished bodies; the one worker is free for this.
    let answer = fast_request(server.addr(), IO_TIMEOUT).expect("answered while uploads trickle");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap_or(0)..];
    assert!(body.contains("fast"), "{answer}");

    // The same load sent to gunicorn directly holds its worker: the fast request
    // waits behind an upload that will take a minute.
    let direct = format!("127.0.0.1:{port}");
    let _direct_uploads = slow_uploads(&direct, 1);
    assert_eq!(
        fast_request(&direct, Duration::from_secs(2)),
        None,
        "gunicorn's one worker answered while reading a slow upload"
    );
}

/// A WebSocket echo app on the `websockets` library, listening on the port returned.
fn websocket_echo_app(dir: &Path) -> (Peer, u16) {
    std::fs::write(
        dir.join("echo.py"),
        "import asyncio, sys, websockets\n\
         async def echo(ws):\n    async for m in ws:\n        await ws.send(m)\n\
         async def main():\n    async with websockets.serve(echo, '127.0.0.1', int(sys.argv[1])):\n        await asyncio.Future()\n\
         asyncio.run(main())\n",
    )
    .unwrap();
    let port = free_port();
    let app = Peer(
        Command::new("python3")
            .arg(dir.join("echo.py"))
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port);
    (app, port)
}

#[test]
fn a_websocket_app_talks_through_wharf() {
    if !python_has("websockets") {
        return;
    }
    let (tmp, root) = temp_root();
    std::fs::write(
        tmp.path().join("client.py"),
        "import asyncio, sys, websockets\n\
         async def main():\n    async with websockets.connect(sys.argv[1]) as ws:\n        for i in range(3):\n            await ws.send(f'hello {i}')\n            print(await ws.recv())\n\
         asyncio.run(main())\n",
    )
    .unwrap();
    let (_app, port) = websocket_echo_app(tmp.path());
    let server = Server::start(
        &root,
        &["--proxy", &format!("/ws/=http://127.0.0.1:{port}")],
    );
    let out = Command::new("timeout")
        .args(["20", "python3"])
        .arg(tmp.path().join("client.py"))
        .arg(format!("ws://{}/ws/", server.addr()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello 0\nhello 1\nhello 2\n"
    );
}

/// A WebSocket frame from a client: final, text, masked (RFC 6455 §5.2), short.
fn masked_text_frame(text: &[u8]) -> Vec<u8> {
    assert!(text.len() < 126);
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend(mask);
    frame.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// An HTTP/2 client's WebSocket (an extended CONNECT, RFC 8441) reaches an app that
/// speaks the HTTP/1.1 handshake: wharf answers 200, makes the key the app needs,
/// and the stream carries the WebSocket's frames both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_over_http2_talks_through_wharf() {
    if !python_has("websockets") {
        return;
    }
    let (tmp, root) = temp_root();
    let (_app, port) = websocket_echo_app(tmp.path());
    let server = Server::start(
        &root,
        &["--proxy", &format!("/ws/=http://127.0.0.1:{port}")],
    );
    let (answer, mut send) = h2_extended_connect(&server, "/ws/", "websocket").await;
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().get("sec-websocket-accept").is_none());
    let mut recv = answer.into_body();
    let mut got = Vec::new();
    for i in 0..3 {
        let text = format!("hello {i}");
        send.send_data(masked_text_frame(text.as_bytes()).into(), false)
            .unwrap();
        // The echo: final text frame, unmasked, short length.
        let expected_len = 2 + text.len();
        while got.len() < expected_len {
            let data = tokio::time::timeout(IO_TIMEOUT, recv.data())
                .await
                .expect("the echo in time")
                .expect("the stream stays open")
                .unwrap();
            let _ = recv.flow_control().release_capacity(data.len());
            got.extend_from_slice(&data);
        }
        let frame: Vec<u8> = got.drain(..expected_len).collect();
        assert_eq!(frame[0], 0x81, "{frame:?}");
        assert_eq!(usize::from(frame[1]), text.len(), "{frame:?}");
        assert_eq!(&frame[2..], text.as_bytes());
    }
}
