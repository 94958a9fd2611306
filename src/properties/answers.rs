//! Properties of what programs answer, whatever bytes they write: CGI output (the
//! header block, then the body) and the FastCGI records that carry it from an
//! application server. The answer is read piece by piece as it arrives, so the
//! central property is that the pieces do not matter: the client gets the same
//! answer however the output was split and paced.

use std::collections::VecDeque;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt;

use crate::handlers::cgi::output::{self, Framing, Output};
use crate::handlers::fastcgi::records::{self, kind, HEADER_LEN};
use crate::http::client::Client;
use crate::http::response::{LocalRedirect, Relayed};

/// Longer inputs could meet the header block's size limit, where the pieces
/// legitimately decide whether a block just over it is complete in time.
const MAX_INPUT: usize = 32 * 1024;

/// One runtime for every input: the answer path spawns tasks and sets timers.
pub(super) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

/// `data` in pieces of `step` bytes.
pub(super) fn pieces(data: &[u8], step: usize) -> Vec<Bytes> {
    data.chunks(step.max(1))
        .map(Bytes::copy_from_slice)
        .collect()
}

/// A program's output from memory, in the given pieces. With `pause`, each piece
/// is ready only when asked a second time, as from a pipe a program writes slowly:
/// the answer path then takes its streaming route instead of its one-piece one.
struct Scripted {
    pieces: VecDeque<Bytes>,
    pause: bool,
}

impl Output for Scripted {
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        if self.pause {
            tokio::task::yield_now().await;
        }
        Ok(self.pieces.pop_front())
    }
}

/// What a client gets from a program's answer, as far as it can tell.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// wharf's own error response: the output was unusable. A body shorter than
    /// its `Content-Length` counts as 502 whether it was found out before the
    /// response head went out or after (then the response is broken off).
    Refused(StatusCode),
    /// A local redirect (RFC 3875 §6.2.2) to this path.
    Redirect(String),
    /// The program's response: status, fields, the length a HEAD answer states,
    /// and the whole body.
    Relayed(StatusCode, HeaderMap, Option<u64>, Bytes),
}

/// The answer the client gets when a program writes `pieces`.
fn answer(pieces: Vec<Bytes>, pause: bool, framing: Framing, head_request: bool) -> Outcome {
    let program = Scripted {
        pieces: pieces.into(),
        pause,
    };
    runtime().block_on(async move {
        let timeout = Duration::from_secs(3600);
        let res = output::respond(
            program,
            framing,
            head_request,
            (timeout, Client::UNWATCHED),
            &"fuzz",
        )
        .await;
        if let Some(LocalRedirect(to)) = res.extensions().get::<LocalRedirect>() {
            return Outcome::Redirect(to.clone());
        }
        if res.extensions().get::<Relayed>().is_none() {
            return Outcome::Refused(res.status());
        }
        let (parts, body) = res.into_parts();
        let length = body.exact_len();
        let Ok(collected) = body.collect().await else {
            return Outcome::Refused(StatusCode::BAD_GATEWAY);
        };
        let bytes = collected.to_bytes();
        if head_request {
            assert!(bytes.is_empty(), "a body for HEAD");
            return Outcome::Relayed(parts.status, parts.headers, length, bytes);
        }
        match length {
            Some(n) if (bytes.len() as u64) < n => Outcome::Refused(StatusCode::BAD_GATEWAY),
            Some(n) => {
                assert_eq!(bytes.len() as u64, n, "more body than announced");
                Outcome::Relayed(parts.status, parts.headers, None, bytes)
            }
            None => Outcome::Relayed(parts.status, parts.headers, None, bytes),
        }
    })
}

/// Hop-by-hop fields: they describe the program's stream, never the client's.
const NEVER_RELAYED: [header::HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::CONTENT_LENGTH,
];

/// A program's output, CGI or non-parsed-header: the answer is the same whether
/// the output comes in one piece, in small pieces or slowly; a relayed answer has a
/// final status, no hop-by-hop field, and exactly the bytes after the header block
/// (cut at a declared `Content-Length`). The first byte chooses the framing (bit 0),
/// HEAD (bit 1) and the piece size (the rest).
pub fn program_output(data: &[u8]) {
    let Some((&flags, out)) = data.split_first() else {
        return;
    };
    if out.len() > MAX_INPUT {
        return;
    }
    let framing = if flags & 1 == 0 {
        Framing::Cgi
    } else {
        Framing::Nph
    };
    let head_request = flags & 2 != 0;
    let step = usize::from(flags >> 2) + 1;
    let whole = answer(pieces(out, out.len()), false, framing, head_request);
    for (pieces, pause) in [(pieces(out, step), false), (pieces(out, step), true)] {
        let again = answer(pieces, pause, framing, head_request);
        assert_eq!(whole, again, "pieces of {step} bytes, pause {pause}");
    }
    if out.len() <= 512 {
        let again = answer(pieces(out, 1), true, framing, head_request);
        assert_eq!(whole, again, "one byte at a time");
    }
    check_relayed(&whole, out, framing, head_request);
}

/// The properties of one relayed answer against the output it came from.
fn check_relayed(outcome: &Outcome, out: &[u8], framing: Framing, head_request: bool) {
    match outcome {
        Outcome::Refused(status) => {
            assert!(
                [StatusCode::BAD_GATEWAY, StatusCode::GATEWAY_TIMEOUT].contains(status),
                "refused with {status}"
            );
        }
        Outcome::Redirect(to) => {
            // An abs-path, `//host/x` included (RFC 3875 §6.2.2): this server's.
            assert!(to.starts_with('/'), "{to:?}");
        }
        Outcome::Relayed(status, headers, _, body) => {
            assert!((200..=599).contains(&status.as_u16()), "status {status}");
            for name in &NEVER_RELAYED {
                assert!(!headers.contains_key(name), "{name} relayed");
            }
            if framing == Framing::Cgi {
                assert!(!headers.contains_key("status"), "Status relayed");
            }
            let no_body = head_request
                || *status == StatusCode::NO_CONTENT
                || *status == StatusCode::NOT_MODIFIED;
            if no_body {
                assert!(body.is_empty());
                return;
            }
            let (used, declared) = head_block(out, framing);
            let rest = &out[used..];
            let expected = declared.map_or(rest, |n| &rest[..rest.len().min(n as usize)]);
            assert_eq!(
                &body[..],
                expected,
                "the body is not what followed the head"
            );
        }
    }
}

/// Where the header block of `out` ends, and the `Content-Length` it declares:
/// read again here, with `httparse` directly, to check the streaming reader.
fn head_block(out: &[u8], framing: Framing) -> (usize, Option<u64>) {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let (used, fields): (usize, &[httparse::Header]) = match framing {
        Framing::Cgi => match httparse::parse_headers(out, &mut fields) {
            Ok(httparse::Status::Complete((used, fields))) => (used, fields),
            other => panic!("relayed, yet the header block reads {other:?}"),
        },
        Framing::Nph => {
            let mut res = httparse::Response::new(&mut fields);
            match res.parse(out) {
                Ok(httparse::Status::Complete(used)) => (used, res.headers),
                other => panic!("relayed, yet the response head reads {other:?}"),
            }
        }
    };
    let declared = fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("content-length"))
        .and_then(|f| std::str::from_utf8(f.value).ok())
        .and_then(|v| v.trim().parse().ok());
    (used, declared)
}

/// How a stream of FastCGI records ends.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// With this many bytes of an incomplete record left over.
    Incomplete(usize),
    /// With bytes that are not a record of the request.
    Invalid,
}

/// The records in `pieces` as the client reads them, arriving piece by piece.
fn read_records(pieces: &[Bytes], request_id: u16) -> (Vec<(u8, Bytes)>, End) {
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match records::take(&mut buf, request_id) {
                Ok(Some(record)) => got.push(record),
                Ok(None) => break,
                Err(_) => return (got, End::Invalid),
            }
        }
    }
    (got, End::Incomplete(buf.len()))
}

/// The same records read the plain way, from the whole stream at once
/// (FastCGI 1.0 §3.3): version 1, the request id, content, padding.
fn reference_records(stream: &[u8], request_id: u16) -> (Vec<(u8, Bytes)>, End) {
    let mut got = Vec::new();
    let mut at = 0;
    while stream.len() - at >= HEADER_LEN {
        let h = &stream[at..at + HEADER_LEN];
        if h[0] != 1 || u16::from_be_bytes([h[2], h[3]]) != request_id {
            return (got, End::Invalid);
        }
        let content = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let total = HEADER_LEN + content + usize::from(h[6]);
        if stream.len() - at < total {
            break;
        }
        let body = &stream[at + HEADER_LEN..at + HEADER_LEN + content];
        got.push((h[1], Bytes::copy_from_slice(body)));
        at += total;
    }
    (got, End::Incomplete(stream.len() - at))
}

/// An application server's records: read piece by piece they are the records read
/// whole, and the program output their `STDOUT` records carry gets the same answer
/// in record-sized pieces as in one. The first byte chooses the piece size.
pub fn fastcgi_records(data: &[u8]) {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    if stream.len() > MAX_INPUT {
        return;
    }
    let request_id = 1;
    let expected = reference_records(stream, request_id);
    let whole = read_records(&[Bytes::copy_from_slice(stream)], request_id);
    assert_eq!(whole, expected, "read whole");
    let step = usize::from(step) + 1;
    let pieced = read_records(&pieces(stream, step), request_id);
    assert_eq!(pieced, expected, "read in pieces of {step} bytes");
    // STDOUT up to END_REQUEST, as the FastCGI handler passes it on.
    let stdout: Vec<Bytes> = whole
        .0
        .iter()
        .take_while(|(k, _)| *k != kind::END_REQUEST)
        .filter(|(k, content)| *k == kind::STDOUT && !content.is_empty())
        .map(|(_, content)| content.clone())
        .collect();
    let joined: Vec<u8> = stdout.concat();
    let one = answer(
        vec![Bytes::from(joined.clone())],
        false,
        Framing::Cgi,
        false,
    );
    let by_record = answer(stdout, true, Framing::Cgi, false);
    assert_eq!(one, by_record, "STDOUT record by record");
    check_relayed(&one, &joined, Framing::Cgi, false);
}
