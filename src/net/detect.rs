//! What a new connection speaks, told from its first bytes: the HTTP/2 preface or an
//! HTTP/1 request line on the plain port, a TLS ClientHello or plain HTTP on the TLS
//! port; request lines whose version hyper's parser refuses (a later major version
//! gets 505, a later 1.x minor version is read as 1.1).
//!
//! Reads only what it must, and hands the bytes read back for replay.

use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use bytes::Bytes;

use crate::net::clock::Clock;
use crate::net::deferred_accept::held_back_before_accept;
use crate::net::lazy_tcp::LazyTcp;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub(super) const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// TLS records of type handshake start with this byte; a ClientHello is one.
pub(super) const TLS_HANDSHAKE: u8 = 0x16;

/// Reads the first bytes of a plain connection, enough to tell the HTTP/2 preface
/// from an HTTP/1 request line; returns whether it is HTTP/2 and the bytes read, which
/// the protocol then gets replayed (so detection costs no extra system call). `None`
/// when the client closed or sent nothing before the header deadline.
pub(super) async fn sniff_h2(stream: &mut LazyTcp, clock: &Clock) -> Option<(bool, Bytes)> {
    use tokio::io::AsyncReadExt;
    let fresh = stream.is_direct().then(|| stream.raw_fd()).flatten();
    let heard = AtomicBool::new(false);
    let read = async {
        let mut seen: Vec<u8> = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            heard.store(true, Ordering::Relaxed);
            crate::metrics::metrics().received(n as u64);
            seen.extend_from_slice(&buf[..n]);
            let k = seen.len().min(H2_PREFACE.len());
            if seen[..k] != H2_PREFACE[..k] {
                return Some((false, Bytes::from(seen)));
            }
            if k == H2_PREFACE.len() {
                return Some((true, Bytes::from(seen)));
            }
        }
    };
    let mut read = std::pin::pin!(read);
    // The first read is a direct one: it finds the request, or finds nothing when
    // the kernel gave up holding a silent connection back.
    if let Poll::Ready(done) = poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
        return done;
    }
    // `stream` is still open: the read future borrows it.
    if let Some(fd) = fresh.filter(|_| !heard.load(Ordering::Relaxed)) {
        if held_back_before_accept(fd) {
            clock.accepted_silent();
        }
    }
    tokio::time::timeout_at(clock.deadline(), read)
        .await
        .ok()
        .flatten()
}

/// The method, target and version of the request line in `first` when httparse,
/// hyper's own parser, refuses that line for its version alone; `None` otherwise.
fn line_with_refused_version(first: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let mut headers = [httparse::EMPTY_HEADER; 0];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(first), Err(httparse::Error::Version)) {
        return None;
    }
    let line = first.split(|&b| b == b'\n').next().unwrap_or(first);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some(method), Some(target), Some(version), None) => Some((method, target, version)),
        _ => None,
    }
}

/// Whether the request line in `first` is well formed but for a major version above
/// 1 (`GET / HTTP/2.0`, `HTTP/3.0`), which deserves 505 rather than hyper's 400.
/// httparse, hyper's own parser, judges the line; only its version is looked at here.
pub(super) fn unsupported_major_version(first: &[u8]) -> bool {
    let Some((method, target, version)) = line_with_refused_version(first) else {
        return false;
    };
    let well_formed = !method.is_empty() && (target.starts_with(b"/") || target == b"*");
    well_formed
        && matches!(
            version.strip_prefix(b"HTTP/"),
            Some([b'2'..=b'9', b'.', b'0'..=b'9'])
        )
}

/// The first bytes with an `HTTP/1.2`..`HTTP/1.9` request line read as `HTTP/1.1`:
/// RFC 9110 §2.5 asks a server to process a later minor version as the highest it
/// speaks, but httparse, hyper's parser, knows only 1.0 and 1.1. Only the connection's
/// first request line on a plain-HTTP connection can be seen here (the bytes read to
/// tell HTTP/2 from HTTP/1); a later one, or one over TLS, gets hyper's 400.
pub(super) fn as_http_11(first: Bytes) -> Bytes {
    let Some((
        method,
        target,
        b"HTTP/1.2" | b"HTTP/1.3" | b"HTTP/1.4" | b"HTTP/1.5" | b"HTTP/1.6" | b"HTTP/1.7"
        | b"HTTP/1.8" | b"HTTP/1.9",
    )) = line_with_refused_version(&first)
    else {
        return first;
    };
    let minor = method.len() + 1 + target.len() + 1 + "HTTP/1.".len();
    let mut bytes = first.to_vec();
    bytes[minor] = b'1';
    Bytes::from(bytes)
}

/// The first byte a client sends on the TLS port, without consuming it.
pub(super) async fn peek_first_byte(stream: &mut LazyTcp, clock: &Clock) -> Option<u8> {
    let mut byte = [0u8; 1];
    let fresh = stream.is_direct();
    match stream.peek_now(&mut byte) {
        Some(Ok(1)) => return Some(byte[0]),
        Some(_) => return None,
        // Nothing yet: perhaps the kernel gave up holding a silent connection back.
        None => {
            if fresh && stream.raw_fd().is_some_and(held_back_before_accept) {
                clock.accepted_silent();
            }
        }
    }
    let stream = stream.registered().ok()?;
    match tokio::time::timeout_at(clock.deadline(), stream.peek(&mut byte)).await {
        Ok(Ok(1)) => Some(byte[0]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{as_http_11, unsupported_major_version};
    use bytes::Bytes;

    #[test]
    fn later_minor_versions_are_read_as_1_1() {
        let read = |s: &'static str| as_http_11(Bytes::from_static(s.as_bytes()));
        assert_eq!(
            read("GET / HTTP/1.2\r\nHost: x\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        assert_eq!(read("OPTIONS * HTTP/1.9\r\n"), "OPTIONS * HTTP/1.1\r\n");
        for same in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.0\r\n",
            "GET / HTTP/1.10\r\n",
            "GET / HTTP/2.0\r\n",
            "GET /a b HTTP/1.2\r\n",
            "GET / HTTP/1.",
        ] {
            assert_eq!(read(same), same, "{same:?}");
        }
    }

    #[test]
    fn only_well_formed_lines_with_a_later_major_version_get_505() {
        for line in [
            "GET / HTTP/2.0\r\n",
            "GET /a HTTP/3.0\r\nHost: x\r\n\r\n",
            "OPTIONS * HTTP/2.0\r\n",
        ] {
            assert!(unsupported_major_version(line.as_bytes()), "{line:?}");
        }
        for line in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.0\r\n",
            "GET / HTTX/2.0\r\n",
            "GET / HTTP/2\r\n",
            "GET / HTTP/0.9\r\n",
            "GET /a b HTTP/2.0\r\n",
            "GARBAGE\r\n\r\n",
            "GET relative HTTP/2.0\r\n",
        ] {
            assert!(!unsupported_major_version(line.as_bytes()), "{line:?}");
        }
    }
}
