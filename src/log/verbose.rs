//! `--verbose`: every request head printed to stderr as it arrives, the habit of
//! the simplest socket servers ("show me what the browser sent"). Bytes a client
//! chose are escaped, so nothing it sends can forge a line or a terminal control;
//! credentials (`Authorization`, `Proxy-Authorization`, `Cookie`) are redacted.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;

use http::request::Parts;

/// Fields whose values are never printed.
const REDACTED: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// The head of a request from `remote`, as printed: the request line, then each
/// field on a line of its own.
pub fn format_head(remote: SocketAddr, head: &Parts) -> String {
    let mut out = String::with_capacity(256);
    let target = head
        .uri
        .path_and_query()
        .map_or_else(|| head.uri.to_string(), |p| p.as_str().to_string());
    let _ = writeln!(
        out,
        "wharf: {remote} {} {} {:?}",
        escaped(head.method.as_str().as_bytes()),
        escaped(target.as_bytes()),
        head.version
    );
    for (name, value) in &head.headers {
        let shown = if REDACTED.contains(&name.as_str()) {
            "[redacted]".to_string()
        } else {
            escaped(value.as_bytes())
        };
        let _ = writeln!(out, "wharf:   {}: {shown}", name.as_str());
    }
    out
}

/// Prints the head of a request to stderr, in one write.
pub fn print_head(remote: SocketAddr, head: &Parts) {
    let text = format_head(remote, head);
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Printable ASCII as it is; every other byte as `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_and_control_bytes_escaped() {
        let req = http::Request::builder()
            .uri("/a?b=1")
            .header("authorization", "Basic c2VjcmV0")
            .header("cookie", "session=1")
            .header(
                "x-odd",
                http::HeaderValue::from_bytes(b"a\tb\xff\\").unwrap(),
            )
            .body(())
            .unwrap();
        let (head, ()) = req.into_parts();
        let text = format_head("127.0.0.1:5".parse().unwrap(), &head);
        assert!(
            text.starts_with("wharf: 127.0.0.1:5 GET /a?b=1 HTTP/1.1\n"),
            "{text}"
        );
        assert!(text.contains("authorization: [redacted]"));
        assert!(text.contains("cookie: [redacted]"));
        assert!(!text.contains("c2VjcmV0") && !text.contains("session"));
        assert!(text.contains("x-odd: a\\x09b\\xff\\x5c\n"), "{text}");
    }
}
