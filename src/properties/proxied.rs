//! Properties of what an app server answers through the reverse proxy, whatever
//! bytes it writes: the response is parsed by hyper's client (with the proxy's
//! read bound), then made fit for the client by the proxy's relay. As for programs,
//! the central property is that the pieces do not matter; besides, a relayed
//! answer carries no hop-by-hop field, and its body is what followed the head —
//! cut at a declared `Content-Length`, or broken off when shorter than that, never
//! a complete-looking short body.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::answers::pieces;
use crate::handlers::proxy::forward::{defined_status, relay, HOP_BY_HOP};
use crate::handlers::proxy::upstream::{Balance, Pool, Upstream};
use crate::handlers::proxy::UPSTREAM_READ_BUFFER;
use crate::http::response::{InternalRedirect, Relayed};

/// Inputs stay well inside the in-memory pipe and the proxy's memory buffer.
const MAX_INPUT: usize = 32 * 1024;

/// What a client gets from an app's answer, as far as it can tell.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// wharf's own error response (the answer was unusable), with this status.
    Refused(StatusCode),
    /// A 101: not relayed as a response but, when a client asked for the switch,
    /// turned into a tunnel (`forward`; not followed here).
    Switched,
    /// The app handed a file back (`X-Accel-Redirect`).
    Redirect(String),
    /// The app's response: status, fields, the length its body announces, and the
    /// body — `None` when it was broken off.
    Relayed(StatusCode, HeaderMap, Option<u64>, Option<Bytes>),
}

/// The answer a client asking with `method` gets when the app writes `pieces`
/// (yielding after each one when `pause`), then closes the connection.
fn answer(pieces: Vec<Bytes>, pause: bool, method: Method) -> Outcome {
    // A runtime of its own, dropped with every task still on it (the connection's,
    // the buffer's) when the exchange is over: nothing of one input outlives it.
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return Outcome::Refused(StatusCode::INTERNAL_SERVER_ERROR);
    };
    runtime.block_on(async move {
        let (wharf_end, mut app_end) = tokio::io::duplex(2 * MAX_INPUT);
        let app = tokio::spawn(async move {
            // The answer comes after the request, as from an app.
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match app_end.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            for piece in pieces {
                if app_end.write_all(&piece).await.is_err() {
                    return;
                }
                if pause {
                    tokio::task::yield_now().await;
                }
            }
            let _ = app_end.shutdown().await;
        });
        let outcome = relayed(wharf_end, method).await;
        app.abort();
        outcome
    })
}

/// The proxy's side of one exchange on `io`.
async fn relayed(io: tokio::io::DuplexStream, method: Method) -> Outcome {
    let handshake = hyper::client::conn::http1::Builder::new()
        .max_buf_size(UPSTREAM_READ_BUFFER)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await;
    let Ok((mut sender, conn)) = handshake else {
        return Outcome::Refused(StatusCode::BAD_GATEWAY);
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let head_request = method == Method::HEAD;
    let mut req = Request::new(Empty::new());
    *req.method_mut() = method;
    *req.uri_mut() = http::Uri::from_static("/app");
    req.headers_mut()
        .insert(header::HOST, http::HeaderValue::from_static("app"));
    let Ok(res) = sender.send_request(req).await else {
        return Outcome::Refused(StatusCode::BAD_GATEWAY);
    };
    // As `forward::send` takes the answer, then `forward` and the cache relay it.
    if !defined_status(res.status()) {
        return Outcome::Refused(StatusCode::BAD_GATEWAY);
    }
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Outcome::Switched;
    }
    let Some(lease) = lease() else {
        return Outcome::Refused(StatusCode::BAD_GATEWAY);
    };
    let res = relay(res, head_request, lease, Duration::from_secs(3600), None).await;
    if let Some(InternalRedirect(to)) = res.extensions().get::<InternalRedirect>() {
        return Outcome::Redirect(to.clone());
    }
    if res.extensions().get::<Relayed>().is_none() {
        return Outcome::Refused(res.status());
    }
    let (parts, body) = res.into_parts();
    let length = body.exact_len();
    if head_request {
        return Outcome::Relayed(parts.status, parts.headers, length, Some(Bytes::new()));
    }
    let bytes = body.collect().await.ok().map(|c| c.to_bytes());
    if let (Some(bytes), Some(n)) = (&bytes, length) {
        assert_eq!(bytes.len() as u64, n, "a body other than announced");
    }
    Outcome::Relayed(parts.status, parts.headers, length, bytes)
}

/// An upstream counted busy for the exchange, as the proxy holds one.
fn lease() -> Option<crate::handlers::proxy::upstream::Lease> {
    let upstream = Upstream::parse("http://127.0.0.1:9").ok()?;
    Pool::new(vec![upstream], Balance::LeastOutstanding).choose(&[])
}

/// An app's answer through the proxy: the same whether it comes in one piece, in
/// small pieces or slowly; a relayed answer has a final status, no hop-by-hop field
/// (nor one its `Connection` names), no note meant for wharf, a `Via`; its body is
/// what followed the head (see [`check_body`]). The first byte chooses HEAD (bit 0)
/// and the piece size (the rest).
pub fn proxy_response(data: &[u8]) {
    let Some((&flags, out)) = data.split_first() else {
        return;
    };
    if out.len() > MAX_INPUT {
        return;
    }
    let method = if flags & 1 == 0 {
        Method::GET
    } else {
        Method::HEAD
    };
    let step = usize::from(flags >> 1) + 1;
    let whole = answer(pieces(out, out.len()), false, method.clone());
    for pause in [false, true] {
        let again = answer(pieces(out, step), pause, method.clone());
        assert_eq!(whole, again, "pieces of {step} bytes, pause {pause}");
    }
    let Outcome::Relayed(status, headers, _, body) = &whole else {
        return;
    };
    assert!((200..=599).contains(&status.as_u16()), "status {status}");
    let head = final_head(out);
    let named = head.as_ref().map_or(Vec::new(), named_by_connection);
    for name in headers.keys() {
        let name = name.as_str();
        assert!(!HOP_BY_HOP.contains(&name), "{name} relayed");
        // The app's `Via` may be named and go; wharf's own is then the only one
        // (naming the version the app answered with).
        let own_via = name == "via" && {
            let vias: Vec<&[u8]> = headers
                .get_all(header::VIA)
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            vias == [b"1.1 wharf".as_slice()] || vias == [b"1.0 wharf".as_slice()]
        };
        assert!(
            own_via || !named.iter().any(|n| n == name),
            "{name} relayed though named"
        );
    }
    assert!(
        !headers.contains_key("x-accel-buffering"),
        "a note for wharf relayed"
    );
    assert!(headers.contains_key(header::VIA), "no Via");
    if let (Some(head), Method::GET) = (head, method) {
        check_body(out, &head, *status, body.as_ref());
    }
}

/// The response head hyper's client acts on, read again with `httparse`: the
/// first one that is not an interim 1xx (101 counts as final).
struct Head {
    /// Where its header block ends in the app's bytes.
    end: usize,
    code: u16,
    /// Names lowercase.
    fields: Vec<(String, Vec<u8>)>,
}

fn final_head(out: &[u8]) -> Option<Head> {
    let mut at = 0;
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut res = httparse::Response::new(&mut fields);
        let httparse::Status::Complete(used) = res.parse(&out[at..]).ok()? else {
            return None;
        };
        let code = res.code?;
        if (100..200).contains(&code) && code != 101 {
            at += used;
            continue;
        }
        let fields = res
            .headers
            .iter()
            .map(|f| (f.name.to_ascii_lowercase(), f.value.to_vec()))
            .collect();
        return Some(Head {
            end: at + used,
            code,
            fields,
        });
    }
}

impl Head {
    /// The values of the field `name` (lowercase).
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// The field names the `Connection` fields of `head` list (lowercase; a token
/// that is not text names nothing).
fn named_by_connection(head: &Head) -> Vec<String> {
    head.values("connection")
        .flat_map(|v| v.split(|&b| b == b','))
        .filter_map(|t| std::str::from_utf8(t.trim_ascii()).ok())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// A GET's body against the bytes after the final head, where that head is framed
/// by one `Content-Length` or by the end of the connection: with a length, exactly
/// that many bytes, or broken off when fewer came; without one, everything to the
/// end.
fn check_body(out: &[u8], head: &Head, status: StatusCode, body: Option<&Bytes>) {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return;
    }
    if head.code != status.as_u16() || head.values("transfer-encoding").next().is_some() {
        return;
    }
    let rest = &out[head.end..];
    let lengths: Vec<&[u8]> = head.values("content-length").collect();
    match lengths.as_slice() {
        [] => assert_eq!(body.map(|b| &b[..]), Some(rest), "not the bytes to the end"),
        [one] => {
            let Some(n) = std::str::from_utf8(one)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
            else {
                return;
            };
            match body {
                Some(b) => assert_eq!(&b[..], &rest[..n.min(rest.len())], "not the body"),
                None => assert!(rest.len() < n, "broken off, yet all {n} bytes came"),
            }
            if rest.len() < n {
                assert!(body.is_none(), "a short body that looks complete");
            }
        }
        _ => {}
    }
}
