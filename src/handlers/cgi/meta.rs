//! The meta-variables a program is given (RFC 3875 §4.1), for CGI's environment and
//! FastCGI's params alike.
//!
//! What comes from the client is passed as the RFC says and nothing else: request
//! fields become `HTTP_*` (never `HTTP_PROXY`, which libraries would take for their
//! own proxy setting — "httpoxy"; never a field whose name has an `_`, which would
//! pass for another's after the `-` → `_` mapping); the client's credentials are
//! withheld when wharf itself checked them.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use http::header::{self, HeaderMap};
use http::request::Parts;

/// The one `PATH` a program gets: wharf's own is not inherited.
pub const SAFE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The program a request runs, as the meta-variables describe it.
#[derive(Debug)]
pub struct Script<'a> {
    /// `SCRIPT_NAME`: the URL path naming the program, decoded.
    pub name: String,
    /// `PATH_INFO`: what follows it in the path, decoded (may be empty).
    pub path_info: Vec<u8>,
    /// `SCRIPT_FILENAME`: the program's file.
    pub filename: &'a Path,
}

/// What the exchange contributes besides the request head.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The client's address.
    pub remote: SocketAddr,
    /// Whether the request came over TLS.
    pub tls: bool,
    /// The port the request came in on (`SERVER_PORT`).
    pub local_port: u16,
    /// The user wharf authenticated, if any.
    pub user: Option<&'a str>,
    /// The served folder (`DOCUMENT_ROOT`).
    pub document_root: &'a Path,
    /// The exact length of the (buffered) body, or the declared one (0) of an empty
    /// body; `None` when the request has none.
    pub content_length: Option<u64>,
}

/// Name-value pairs, in the order they were set (the RFC's names are not copied).
pub type MetaVars = Vec<(Cow<'static, str>, Vec<u8>)>;

/// The meta-variables for `head`, run as `script`.
pub fn meta_variables(head: &Parts, script: &Script, exchange: Exchange) -> MetaVars {
    let mut vars: MetaVars = Vec::with_capacity(32);
    write_meta_variables(head, script, exchange, &mut |name, value| {
        vars.push((Cow::Owned(name.to_string()), value.to_vec()))
    });
    vars
}

/// The meta-variables for `head`, run as `script`, each given to `set` as it is
/// made (FastCGI encodes them straight into its records).
pub fn write_meta_variables(
    head: &Parts,
    script: &Script,
    exchange: Exchange,
    set: &mut dyn FnMut(&str, &[u8]),
) {
    let server_name = server_name(head);
    let server_port = exchange.local_port;
    let mut number = [0u8; 20];
    set("GATEWAY_INTERFACE", b"CGI/1.1");
    set(
        "SERVER_SOFTWARE",
        concat!("wharf/", env!("CARGO_PKG_VERSION")).as_bytes(),
    );
    set("SERVER_NAME", server_name.as_bytes());
    set("SERVER_PORT", decimal(&mut number, u64::from(server_port)));
    set("SERVER_PROTOCOL", protocol(head.version).as_bytes());
    set("REQUEST_METHOD", head.method.as_str().as_bytes());
    set("SCRIPT_NAME", script.name.as_bytes());
    set("SCRIPT_FILENAME", script.filename.as_os_str().as_bytes());
    set("PATH_INFO", &script.path_info);
    if !script.path_info.is_empty() {
        let mut translated = exchange.document_root.as_os_str().as_bytes().to_vec();
        translated.extend_from_slice(&script.path_info);
        set("PATH_TRANSLATED", &translated);
    }
    set(
        "QUERY_STRING",
        head.uri.query().unwrap_or_default().as_bytes(),
    );
    let request_uri = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
    set("REQUEST_URI", request_uri.as_bytes());
    set(
        "DOCUMENT_ROOT",
        exchange.document_root.as_os_str().as_bytes(),
    );
    let remote_ip = exchange.remote.ip().to_canonical().to_string();
    set("REMOTE_ADDR", remote_ip.as_bytes());
    // No name is looked up for the client: RFC 3875 §4.1.9 has its address stand in.
    set("REMOTE_HOST", remote_ip.as_bytes());
    set(
        "REMOTE_PORT",
        decimal(&mut number, u64::from(exchange.remote.port())),
    );
    set(
        "REQUEST_SCHEME",
        if exchange.tls { b"https" } else { b"http" },
    );
    if exchange.tls {
        set("HTTPS", b"on");
    }
    if let Some(user) = exchange.user {
        set("AUTH_TYPE", b"Basic");
        set("REMOTE_USER", user.as_bytes());
    }
    if let Some(length) = exchange.content_length {
        set("CONTENT_LENGTH", decimal(&mut number, length));
    }
    if let Some(kind) = head.headers.get(header::CONTENT_TYPE) {
        set("CONTENT_TYPE", kind.as_bytes());
    }
    set("PATH", SAFE_PATH.as_bytes());
    // The target's authority wins over `Host`: an absolute-form target's (RFC 9112
    // §3.2.2), HTTP/2's `:authority`; HTTP_HOST then agrees with SERVER_NAME.
    let authority = head.uri.authority();
    if let Some(authority) = authority {
        set("HTTP_HOST", authority.as_str().as_bytes());
    }
    let withheld = Withheld {
        authorization: exchange.user.is_some(),
        host: authority.is_some(),
    };
    write_request_fields(&head.headers, withheld, set);
}

/// `SERVER_PROTOCOL`'s value.
fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `n` in decimal, written into `buf`.
fn decimal(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Fields kept from the program for this request.
#[derive(Clone, Copy)]
struct Withheld {
    /// `Authorization`: wharf checked it, and the program gets REMOTE_USER.
    authorization: bool,
    /// `Host`: the target named the host itself.
    host: bool,
}

/// The request's fields as `HTTP_*` variables: one per name, repeated fields
/// joined (cookies with `; `, as HTTP/1.1 sends them, others with `, `).
fn write_request_fields(headers: &HeaderMap, withheld: Withheld, set: &mut dyn FnMut(&str, &[u8])) {
    let mut var = String::with_capacity(64);
    let mut joined = Vec::new();
    for name in headers.keys() {
        let text = name.as_str();
        // The body reaches the program whole, with CONTENT_LENGTH, and wharf met
        // any expectation: the fields that framed or awaited it would mislead. A
        // name with anything but letters, digits and `-` (`X_Real_IP`,
        // `X.Real.IP`) would pass for another field once PHP or a CGI library
        // reads its variable (`HTTP_X_REAL_IP`), so it is not passed on (Apache
        // drops it too).
        let skipped = name == header::CONTENT_TYPE
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || text == "proxy"
            || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || (withheld.authorization && name == header::AUTHORIZATION)
            || (withheld.host && name == header::HOST);
        if skipped {
            continue;
        }
        var.clear();
        var.push_str("HTTP_");
        var.extend(text.chars().map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        }));
        let mut values = headers.get_all(name).iter();
        let first = values.next().map_or(&b""[..], |v| v.as_bytes());
        let Some(second) = values.next() else {
            set(&var, first);
            continue;
        };
        let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
        joined.clear();
        joined.extend_from_slice(first);
        for v in std::iter::once(second).chain(values) {
            joined.extend_from_slice(separator);
            joined.extend_from_slice(v.as_bytes());
        }
        set(&var, &joined);
    }
}

/// `SERVER_NAME`: the host the client addressed (an absolute-form target's, else
/// its `Host`, or HTTP/2's `:authority`), as servers building self-referential URLs
/// from the request do. `SERVER_PORT` is the port the request came in on instead
/// (RFC 3875 §4.1.15), as nginx's `$server_port`.
fn server_name(head: &Parts) -> String {
    let authority = head.uri.authority().cloned().or_else(|| {
        head.headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
    });
    // An IPv6 address keeps its brackets (RFC 3875 §4.1.14).
    authority.map_or_else(|| "localhost".to_string(), |a| a.host().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(req: http::Request<()>) -> Parts {
        req.into_parts().0
    }

    fn get<'a>(vars: &'a MetaVars, name: &str) -> Option<&'a [u8]> {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn fields_become_http_variables_except_the_dangerous_ones() {
        let head = head(
            http::Request::get("/cgi-bin/env.py/a/b?x=1")
                .header("host", "example.test:8080")
                .header("proxy", "http://evil.test/")
                .header("x_forwarded_for", "1.2.3.4")
                .header("x-custom", "one")
                .header("x-custom", "two")
                .header("cookie", "a=1")
                .header("cookie", "b=2")
                .header("authorization", "Basic dTpw")
                .header("transfer-encoding", "chunked")
                .header("expect", "100-continue")
                .body(())
                .unwrap(),
        );
        let script = Script {
            name: "/cgi-bin/env.py".into(),
            path_info: b"/a/b".to_vec(),
            filename: Path::new("/srv/cgi-bin/env.py"),
        };
        let exchange = Exchange {
            remote: "[::ffff:10.0.0.1]:4000".parse().unwrap(),
            tls: false,
            local_port: 8080,
            user: Some("alice"),
            document_root: Path::new("/srv"),
            content_length: None,
        };
        let vars = meta_variables(&head, &script, exchange);
        assert_eq!(get(&vars, "HTTP_PROXY"), None);
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR"), None);
        assert_eq!(get(&vars, "HTTP_AUTHORIZATION"), None);
        assert_eq!(get(&vars, "HTTP_TRANSFER_ENCODING"), None);
        assert_eq!(get(&vars, "HTTP_EXPECT"), None);
        assert_eq!(get(&vars, "REMOTE_USER"), Some(&b"alice"[..]));
        assert_eq!(get(&vars, "HTTP_X_CUSTOM"), Some(&b"one, two"[..]));
        assert_eq!(get(&vars, "HTTP_COOKIE"), Some(&b"a=1; b=2"[..]));
        assert_eq!(get(&vars, "SERVER_NAME"), Some(&b"example.test"[..]));
        assert_eq!(get(&vars, "SERVER_PORT"), Some(&b"8080"[..]));
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some(&b"10.0.0.1"[..]));
        assert_eq!(get(&vars, "REMOTE_HOST"), Some(&b"10.0.0.1"[..]));
        assert_eq!(get(&vars, "PATH_TRANSLATED"), Some(&b"/srv/a/b"[..]));
        assert_eq!(get(&vars, "QUERY_STRING"), Some(&b"x=1"[..]));
        assert_eq!(get(&vars, "CONTENT_LENGTH"), None);
    }

    #[test]
    fn an_ipv6_server_name_keeps_its_brackets() {
        let head = head(
            http::Request::get("/s")
                .header("host", "[::1]:9")
                .body(())
                .unwrap(),
        );
        assert_eq!(server_name(&head), "[::1]");
    }
}
