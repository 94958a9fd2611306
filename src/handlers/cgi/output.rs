//! A program's answer (RFC 3875 §6), from CGI's stdout or FastCGI's `STDOUT`
//! records alike: the header block parsed by `httparse`, then the body streamed to
//! the client as the program writes it, with back-pressure.
//!
//! The program is stopped (its process group killed, or its FastCGI connection
//! closed) by dropping its [`Output`]: when the header block is malformed or late,
//! when the client leaves, or when the output stalls.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use hyper::ext::ReasonPhrase;

use crate::http::body::Body;
use crate::http::client::Client;
use crate::http::response;

/// The largest header block a program may write.
const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in it.
const MAX_FIELDS: usize = 100;
/// Chunks of output in flight between the program and the client.
const IN_FLIGHT: usize = 8;

/// Where a program's output comes from.
pub trait Output: Send + 'static {
    /// The next bytes it wrote, or `None` once it is done. Must be cancel-safe:
    /// dropped before it is ready, it loses nothing.
    fn next(&mut self) -> impl Future<Output = io::Result<Option<Bytes>>> + Send;

    /// Whether the program may still be writing once [`Output::next`] has said the
    /// answer is done (its framing ended, not its output): more reads drain it.
    fn outlives_the_answer(&self) -> bool {
        false
    }
}

/// How a program's header block is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// CGI fields (`Status`, `Location`, `Content-Type`, ...).
    Cgi,
    /// A "non-parsed header" program (`nph-` name): a whole HTTP/1 response head,
    /// status line first, taken as the program wrote it.
    Nph,
}

/// A CGI header block, interpreted.
#[derive(Debug)]
enum Head {
    /// A response to send, with the body that follows.
    Document {
        status: StatusCode,
        /// The program's own reason phrase, when it is not the usual one.
        reason: Option<ReasonPhrase>,
        headers: HeaderMap,
        length: Option<u64>,
        /// The body is in chunked framing, to be taken out of it (an `nph-`
        /// program's `Transfer-Encoding: chunked`).
        chunked: bool,
    },
    /// `Location` naming a local path: the server answers that path instead
    /// (RFC 3875 §6.2.2).
    LocalRedirect(String),
}

/// The response `output` makes: 504 when no header block comes within `timeout`,
/// 502 when it is malformed; its body then streams, and stops when the program
/// pauses for longer than `timeout`, or the client leaves. `head_request`: the
/// answer has no body. `program` names it in log lines.
pub async fn respond<O: Output>(
    mut output: O,
    framing: Framing,
    head_request: bool,
    (timeout, client): (Duration, Client),
    program: &(dyn std::fmt::Debug + Sync),
) -> Response<Body> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = BytesMut::new();
    let (head, used) = loop {
        match parse_head(&buf, framing) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) if buf.len() > MAX_HEAD => {
                tracing::warn!("{program:?}: header block larger than {MAX_HEAD} bytes");
                return response::error(StatusCode::BAD_GATEWAY);
            }
            Ok(None) => {}
            Err(why) => {
                tracing::warn!("{program:?}: malformed header block: {why}");
                return response::error(StatusCode::BAD_GATEWAY);
            }
        }
        match tokio::time::timeout_at(deadline, output.next()).await {
            Err(_) => {
                tracing::warn!("{program:?}: no response header within {timeout:?}");
                return response::error(StatusCode::GATEWAY_TIMEOUT);
            }
            Ok(Ok(Some(bytes))) => buf.extend_from_slice(&bytes),
            Ok(Ok(None)) => {
                tracing::warn!("{program:?}: ended without a complete header block");
                return response::error(StatusCode::BAD_GATEWAY);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ResourceBusy => {
                tracing::warn!("{program:?}: {e}");
                return super::busy();
            }
            Ok(Err(e)) => {
                tracing::warn!("{program:?}: {e}");
                return response::error(StatusCode::BAD_GATEWAY);
            }
        }
    };
    let (status, headers, length, chunked) = match head {
        Head::LocalRedirect(to) => {
            let mut res = response::error(StatusCode::FOUND);
            res.extensions_mut().insert(response::LocalRedirect(to));
            return res;
        }
        Head::Document {
            status,
            reason,
            headers,
            length,
            chunked,
        } => ((status, reason), headers, length, chunked),
    };
    // No body goes out (HEAD, 204, 304): a declared length describes the body a GET
    // would get, and is passed on as such, not checked against nothing.
    let code = status.0;
    if head_request || code == StatusCode::NO_CONTENT || code == StatusCode::NOT_MODIFIED {
        // A body of the declared length that never sends a byte: HEAD's finishing
        // states the length and drops the body. Without a declared length, one of
        // unknown length: a HEAD must not claim the GET's body is empty (RFC 9110
        // §8.6).
        let body = match length {
            Some(len) if head_request => Body::channel_of_len(tokio::sync::mpsc::channel(1).1, len),
            None if head_request => Body::channel(tokio::sync::mpsc::channel(1).1),
            _ => Body::empty(),
        };
        return document(status, headers, body);
    }
    let rest = buf.split_off(used);
    let answer = Answer {
        status,
        headers,
        length,
    };
    if chunked {
        let decoded = Dechunked {
            inner: output,
            buf: rest,
            state: Chunk::Size,
        };
        stream(decoded, BytesMut::new(), answer, (timeout, client), program)
    } else {
        stream(output, rest, answer, (timeout, client), program)
    }
}

/// A document's status line and fields, and its declared length.
struct Answer {
    status: (StatusCode, Option<ReasonPhrase>),
    headers: HeaderMap,
    length: Option<u64>,
}

/// The response for `answer`, whose body is `rest` then what `output` writes.
fn stream<O: Output>(
    mut output: O,
    mut rest: BytesMut,
    Answer {
        status,
        headers,
        length,
    }: Answer,
    (timeout, client): (Duration, Client),
    program: &(dyn std::fmt::Debug + Sync),
) -> Response<Body> {
    // A short answer is often complete already: sent as one body, without a task.
    loop {
        if rest.len() > MAX_HEAD {
            break;
        }
        match ready_now(output.next()) {
            Some(Ok(Some(more))) => rest.extend_from_slice(&more),
            Some(Ok(None)) => {
                let whole = rest.freeze();
                let whole = whole.slice(
                    ..whole.len().min(
                        length.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)),
                    ),
                );
                if length.is_some_and(|l| l != whole.len() as u64) {
                    tracing::warn!("{program:?}: output shorter than its Content-Length");
                    return response::error(StatusCode::BAD_GATEWAY);
                }
                if output.outlives_the_answer() {
                    tokio::spawn(drain(output, timeout));
                }
                return document(status, headers, Body::bytes(whole));
            }
            Some(Err(e)) => {
                tracing::warn!("{program:?}: {e}");
                return response::error(StatusCode::BAD_GATEWAY);
            }
            None => break,
        }
    }
    let rest = rest.freeze();
    let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
    let body = match length {
        Some(len) => Body::channel_of_len(rx, len),
        None => Body::channel(rx),
    };
    // Quoted and escaped once, for the task's log lines (a streamed answer).
    let program = format!("{program:?}");
    tokio::spawn(async move {
        let mut left = length.unwrap_or(u64::MAX);
        let mut next = (!rest.is_empty()).then_some(rest);
        // The connection is watched only while it holds the body's other end
        // (`tx.closed()` is checked first): the socket is the connection's.
        let client_left = client.left();
        tokio::pin!(client_left);
        loop {
            let chunk = match next.take() {
                Some(chunk) => chunk,
                None => {
                    let read = tokio::select! {
                        biased;
                        // The response is no longer sent (the connection ended).
                        () = tx.closed() => return,
                        // The client left while the program was quiet.
                        () = &mut client_left => return,
                        read = tokio::time::timeout(timeout, output.next()) => read,
                    };
                    match read {
                        Ok(Ok(Some(chunk))) => chunk,
                        Ok(Ok(None)) => break,
                        Ok(Err(e)) => {
                            tracing::warn!("{program}: {e}");
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        Err(_) => {
                            tracing::warn!("{program}: output paused for {timeout:?}");
                            let _ = tx.send(Err(io::ErrorKind::TimedOut.into())).await;
                            return;
                        }
                    }
                }
            };
            // Past a declared length there is nothing the client would read.
            let chunk = chunk.slice(..chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX)));
            left -= chunk.len() as u64;
            if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                return;
            }
            if left == 0 {
                break;
            }
        }
        // The answer is whole: the client has it now. A program that goes on
        // writing (past its Content-Length, after its last chunk) or only exits
        // later is given `timeout` to finish before it is stopped.
        drop(tx);
        drain(output, timeout).await;
    });
    document(status, headers, body)
}

/// Reads what `output` still writes once its answer is whole, for at most
/// `timeout`; dropping it then stops the program.
async fn drain<O: Output>(mut output: O, timeout: Duration) {
    let drained = async { while let Ok(Some(_)) = output.next().await {} };
    let _ = tokio::time::timeout(timeout, drained).await;
}

/// A program's output in chunked framing (RFC 9112 §7.1), as the bytes it frames:
/// the client's connection frames them anew. Trailer fields are dropped.
struct Dechunked<O> {
    inner: O,
    /// Output read and not yet decoded.
    buf: BytesMut,
    state: Chunk,
}

/// What a read of [`Dechunked`] once its body is whole gives for more output: no
/// body bytes, only the sign that the program still writes.
const AFTER_THE_BODY: Bytes = Bytes::new();

/// Where [`Dechunked`] is in the framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, in the trailer section.
    Trailer,
    Done,
}

impl<O: Output> Dechunked<O> {
    /// The next piece of the body in what is buffered, or `None` when more output
    /// is needed first.
    fn decode(&mut self) -> io::Result<Option<Option<Bytes>>> {
        let malformed = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        loop {
            match self.state {
                Chunk::Done => return Ok(Some(None)),
                Chunk::Data(left) => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let take = self
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    };
                    return Ok(Some(Some(self.buf.split_to(take).freeze())));
                }
                // httparse takes a line without a digit for size 0, the last chunk.
                Chunk::Size if self.buf.first().is_some_and(|b| !b.is_ascii_hexdigit()) => {
                    return Err(malformed("invalid chunk size"))
                }
                Chunk::Size => match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        let _ = self.buf.split_to(used);
                        self.state = if size == 0 {
                            Chunk::Trailer
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => {
                        return Err(malformed("chunk-size line too long"))
                    }
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(_) => return Err(malformed("invalid chunk size")),
                },
                Chunk::DataEnd => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err(malformed("chunk not followed by CRLF"));
                    }
                    let _ = self.buf.split_to(2);
                    self.state = Chunk::Size;
                }
                Chunk::Trailer => {
                    let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                        if self.buf.len() > MAX_HEAD {
                            return Err(malformed("trailer section too long"));
                        }
                        return Ok(None);
                    };
                    let line = self.buf.split_to(end + 1);
                    if line.as_ref() == b"\r\n" || line.as_ref() == b"\n" {
                        self.state = Chunk::Done;
                    }
                }
            }
        }
    }
}

impl<O: Output> Output for Dechunked<O> {
    fn outlives_the_answer(&self) -> bool {
        true
    }

    /// The body's next piece; `None` once it is whole, and from then on what the
    /// program writes after it, as empty pieces, until it ends.
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        if self.state == Chunk::Done {
            return Ok(self.inner.next().await?.map(|_| AFTER_THE_BODY));
        }
        loop {
            if let Some(piece) = self.decode()? {
                return Ok(piece);
            }
            match self.inner.next().await? {
                Some(more) => self.buf.extend_from_slice(&more),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "output ended inside its chunked framing",
                    ))
                }
            }
        }
    }
}

/// The program's own answer (its status and reason phrase), errors included: no
/// custom error page over it.
fn document(
    (status, reason): (StatusCode, Option<ReasonPhrase>),
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    if let Some(reason) = reason {
        res.extensions_mut().insert(reason);
    }
    res.extensions_mut().insert(response::Relayed);
    res
}

/// `future`'s output if it is ready at once, polled a single time. Only for
/// cancel-safe futures: a pending one is dropped.
fn ready_now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// The header block at the start of `buf`, and how many bytes it took; `None`
/// while it is incomplete.
fn parse_head(buf: &[u8], framing: Framing) -> Result<Option<(Head, usize)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    match framing {
        Framing::Cgi => match httparse::parse_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete((used, fields))) => {
                cgi_head(fields).map(|head| Some((head, used)))
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(e) => Err(e.to_string()),
        },
        Framing::Nph => {
            let mut parsed = httparse::Response::new(&mut fields);
            match parsed.parse(buf) {
                Ok(httparse::Status::Complete(used)) => {
                    let status = parsed.code.and_then(final_status).ok_or("invalid status")?;
                    let reason = reason_phrase(status, parsed.reason.unwrap_or(""));
                    let (headers, length) = response_fields(parsed.headers)?;
                    // Chunked framing, when it is the last coding, delimits the body
                    // and overrides a Content-Length (RFC 9112 §6.3).
                    let chunked = parsed
                        .headers
                        .iter()
                        .rev()
                        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
                        .flat_map(|h| h.value.rsplit(|&b| b == b','))
                        .find(|coding| !coding.trim_ascii().is_empty())
                        .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                    Ok(Some((
                        Head::Document {
                            status,
                            reason,
                            headers,
                            length: if chunked { None } else { length },
                            chunked,
                        },
                        used,
                    )))
                }
                Ok(httparse::Status::Partial) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

/// Interprets CGI header fields (RFC 3875 §6.2, §6.3).
fn cgi_head(fields: &[httparse::Header]) -> Result<Head, String> {
    let (mut headers, length) = response_fields(fields)?;
    let location = headers.get(header::LOCATION).cloned();
    let (status, reason) = match headers.remove("status") {
        // `Status: 200` with a Location is read as the Location alone, as Apache
        // reads it: a 200 that names another place to look makes no sense, and a
        // script that always prints a status line gets the redirect it meant.
        Some(value) => match parse_status(&value)? {
            (StatusCode::OK, _) if location.is_some() => (None, None),
            (status, reason) => (Some(status), reason),
        },
        None => (None, None),
    };
    // A program should name its body's type, but the server is not to guess it
    // (RFC 3875 §6.3.1): a head without Content-Type goes out without one. Only a
    // head with no field at all is taken for a broken program.
    if fields.is_empty() {
        return Err("no header field before the blank line".into());
    }
    let status = match (status, &location) {
        (Some(status), _) => status,
        (None, Some(location)) => {
            let to = location.to_str().map_err(|_| "invalid Location")?;
            // `local-pathquery = abs-path` (RFC 3875 §6.2.2), and an abs-path may
            // start with an empty segment: `//host/x` is this server's path, never
            // a way out to another site (as Apache reads it too).
            if to.starts_with('/') {
                return Ok(Head::LocalRedirect(to.to_string()));
            }
            StatusCode::FOUND
        }
        (None, None) => StatusCode::OK,
    };
    Ok(Head::Document {
        status,
        reason,
        headers,
        length,
        chunked: false,
    })
}

/// `Status: 404 Not Found` → 404, and the phrase when it is not the usual one. A
/// program's answer is final: 200 to 599 (RFC 9110 §15 defines no class beyond 5xx).
fn parse_status(value: &HeaderValue) -> Result<(StatusCode, Option<ReasonPhrase>), String> {
    let text = value.to_str().map_err(|_| "invalid Status field")?;
    let (code, phrase) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    let status = code
        .parse::<u16>()
        .ok()
        .and_then(final_status)
        .ok_or_else(|| format!("invalid Status field {text:?}"))?;
    Ok((status, reason_phrase(status, phrase)))
}

/// The reason phrase to send with `status` for the program's `phrase`: its own when
/// it says something other than the usual one; none needed when that is what it
/// says; for a code HTTP does not name and no phrase, an empty one (rather than
/// a placeholder).
fn reason_phrase(status: StatusCode, phrase: &str) -> Option<ReasonPhrase> {
    let phrase = phrase.trim();
    if status
        .canonical_reason()
        .is_some_and(|usual| usual == phrase)
        || (phrase.is_empty() && status.canonical_reason().is_some())
    {
        return None;
    }
    ReasonPhrase::try_from(phrase.as_bytes().to_vec()).ok()
}

/// `code` as a final status (200 to 599).
fn final_status(code: u16) -> Option<StatusCode> {
    (200..=599)
        .contains(&code)
        .then(|| StatusCode::from_u16(code).ok())
        .flatten()
}

/// The fields a program sent, as response fields: hop-by-hop ones (which describe
/// the program's stream, not the client's connection) dropped, a declared
/// `Content-Length` taken out as the body's length.
fn response_fields(fields: &[httparse::Header]) -> Result<(HeaderMap, Option<u64>), String> {
    let mut headers = HeaderMap::with_capacity(fields.len());
    let mut length = None;
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| format!("invalid field name {:?}", field.name))?;
        let value =
            HeaderValue::from_bytes(field.value).map_err(|_| format!("invalid value of {name}"))?;
        if name == header::CONTENT_LENGTH {
            let n = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length fields".into());
            }
            length = Some(n);
            continue;
        }
        let hop_by_hop = matches!(
            name.as_str(),
            "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "te"
                | "trailer"
                | "upgrade"
                | "proxy-connection"
        );
        if hop_by_hop {
            continue;
        }
        // A response has one media type, one location and one status (RFC 9110
        // §8.3, §10.2.2; RFC 3875 §6.3.3): of two, the later stands, as Apache's
        // CGI reader takes each.
        if name == header::CONTENT_TYPE || name == header::LOCATION || name.as_str() == "status" {
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }
    Ok((headers, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_two_media_types_the_later_stands() {
        let fields = [
            httparse::Header {
                name: "Content-Type",
                value: b"text/plain",
            },
            httparse::Header {
                name: "Set-Cookie",
                value: b"a=1",
            },
            httparse::Header {
                name: "Content-Type",
                value: b"text/html",
            },
            httparse::Header {
                name: "Set-Cookie",
                value: b"b=2",
            },
        ];
        let (headers, _) = response_fields(&fields).unwrap();
        let types: Vec<_> = headers.get_all(header::CONTENT_TYPE).iter().collect();
        assert_eq!(types, ["text/html"]);
        assert_eq!(headers.get_all(header::SET_COOKIE).iter().count(), 2);
    }

    #[test]
    fn of_two_statuses_the_later_stands() {
        let Ok(Some((Head::Document { status, .. }, _))) =
            cgi("Status: 200 OK\r\nStatus: 404 Nope\r\nContent-Type: text/plain\r\n\r\n")
        else {
            panic!("not a document");
        };
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_programs_own_reason_phrase_is_kept() {
        let phrase = |status: u16, text: &str| {
            reason_phrase(StatusCode::from_u16(status).unwrap(), text)
                .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        };
        assert_eq!(phrase(200, "OK"), None);
        assert_eq!(phrase(200, ""), None);
        assert_eq!(phrase(200, "Fine Thanks"), Some("Fine Thanks".into()));
        assert_eq!(phrase(299, "Custom"), Some("Custom".into()));
        assert_eq!(phrase(299, ""), Some(String::new()));
    }

    fn cgi(text: &str) -> Result<Option<(Head, usize)>, String> {
        parse_head(text.as_bytes(), Framing::Cgi)
    }

    #[test]
    fn a_document_with_status_and_fields() {
        let Ok(Some((Head::Document { status, headers, length, .. }, used))) = cgi(
            "Status: 404 Not Here\r\nContent-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\nConnection: close\n\nbody",
        ) else {
            panic!("not parsed");
        };
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers.get_all("set-cookie").iter().count(), 2);
        assert!(!headers.contains_key("connection"));
        assert!(!headers.contains_key("status"));
        assert_eq!(length, None);
        assert_eq!(used, "Status: 404 Not Here\r\nContent-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\nConnection: close\n\n".len());
    }

    #[test]
    fn redirects_local_and_remote() {
        assert!(matches!(
            cgi("Location: /other?x=1\n\n"),
            Ok(Some((Head::LocalRedirect(to), _))) if to == "/other?x=1"
        ));
        assert!(matches!(
            cgi("Location: https://example.test/\n\n"),
            Ok(Some((
                Head::Document {
                    status: StatusCode::FOUND,
                    ..
                },
                _
            )))
        ));
        // With `Status: 200`, as without a status.
        assert!(matches!(
            cgi("Status: 200 Fine\nLocation: https://example.test/\n\n"),
            Ok(Some((
                Head::Document {
                    status: StatusCode::FOUND,
                    reason: None,
                    ..
                },
                _
            )))
        ));
        assert!(matches!(
            cgi("Status: 200\nLocation: /other\n\n"),
            Ok(Some((Head::LocalRedirect(to), _))) if to == "/other"
        ));
        assert!(matches!(
            cgi("Status: 201 Created\nLocation: /made/1\n\n"),
            Ok(Some((
                Head::Document {
                    status: StatusCode::CREATED,
                    ..
                },
                _
            )))
        ));
        assert!(matches!(
            cgi("Location: //evil.test/\n\n"),
            Ok(Some((Head::LocalRedirect(to), _))) if to == "//evil.test/"
        ));
    }

    /// A head without Content-Type is a document without one (RFC 3875 §6.3.1).
    #[test]
    fn a_head_without_content_type_is_a_document() {
        assert!(matches!(
            cgi("X-Only: 1\n\n"),
            Ok(Some((
                Head::Document {
                    status: StatusCode::OK,
                    ..
                },
                _
            )))
        ));
    }

    #[test]
    fn malformed_blocks_are_errors() {
        assert!(cgi("\nbody").is_err());
        assert!(cgi("Status: banana\n\n").is_err());
        assert!(cgi("Status: 99 Low\n\n").is_err());
        assert!(cgi("Content-Type text/html\n\n").is_err());
        assert!(cgi("Content-Type: text/html\nContent-Length: x\n\n").is_err());
        assert!(matches!(cgi("Content-Type: text/html\n"), Ok(None)));
    }

    #[test]
    fn nph_output_is_a_response_head() {
        let Ok(Some((Head::Document { status, length, .. }, _))) = parse_head(
            b"HTTP/1.1 201 Made\r\nContent-Length: 2\r\n\r\nok",
            Framing::Nph,
        ) else {
            panic!("not parsed");
        };
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(length, Some(2));
    }

    /// Output handed over in pieces of `size` bytes.
    struct Pieces(std::collections::VecDeque<Bytes>);

    impl Output for Pieces {
        async fn next(&mut self) -> io::Result<Option<Bytes>> {
            Ok(self.0.pop_front())
        }
    }

    fn dechunked(framed: &[u8], size: usize) -> io::Result<Vec<u8>> {
        let pieces = framed.chunks(size).map(Bytes::copy_from_slice).collect();
        let mut decoded = Dechunked {
            inner: Pieces(pieces),
            buf: BytesMut::new(),
            state: Chunk::Size,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut body = Vec::new();
            while let Some(piece) = decoded.next().await? {
                body.extend_from_slice(&piece);
            }
            Ok(body)
        })
    }

    #[test]
    fn chunked_output_is_decoded_however_it_is_split() {
        let framed = b"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n";
        for size in 1..framed.len() {
            assert_eq!(dechunked(framed, size).unwrap(), b"abc0123456789abcdef");
        }
        for broken in [
            &b"3\r\nabc"[..],
            b"3\r\nabcXY0\r\n\r\n",
            b"zz\r\n",
            b"0\r\nT: 1\r\n",
            b"3\r\nabc\r\n\r\n",
            b";x\r\n",
        ] {
            assert!(dechunked(broken, 2).is_err(), "{broken:?}");
        }
    }
}
