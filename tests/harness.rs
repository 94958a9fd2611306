//! The test harness itself: a connection reset before any byte of the response (a
//! loaded machine's kernel short of socket memory) is retried as a failed setup, while
//! the exchange's result is never retried.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;

/// Closes `stream` with a reset instead of a FIN (SO_LINGER with a zero timeout).
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    drop(stream);
}

/// A server that resets its first `resets` connections after reading the request,
/// then answers `ok`; returns its address and how many connections it saw.
fn flaky_server(resets: usize) -> (String, thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let mut seen = 0;
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            seen += 1;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            if seen <= resets {
                reset(stream);
                continue;
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .unwrap();
            return seen;
        }
        seen
    });
    (addr, handle)
}

#[test]
fn a_reset_before_the_response_is_retried_as_setup() {
    let (addr, server) = flaky_server(1);
    let raw = send_raw_to(&addr, &request_bytes("GET", "/", &[]));
    let response = parse_response(&raw, false);
    assert_eq!(
        (response.status, response.body_text().as_str()),
        (200, "ok")
    );
    assert_eq!(server.join().unwrap(), 2);
}

#[test]
fn resets_are_retried_a_bounded_number_of_times() {
    let (addr, _server) = flaky_server(SETUP_ATTEMPTS);
    let outcome = thread::spawn(move || send_raw_to(&addr, &request_bytes("GET", "/", &[])));
    assert!(
        outcome.join().is_err(),
        "a persistent reset must fail the test"
    );
}
