//! Streaming a request body to a file: read from the connection only as fast as the
//! disk takes it, written off the event loop, bounded in size and in memory.
//!
//! Chunks are gathered into a buffer of [`WRITE_SIZE`] bytes; a full buffer is
//! written with one positional write on the blocking pool while the next one fills.
//! At most two buffers exist per upload, so memory stays at about 512 KiB whatever the
//! body's size, and when the disk is slower than the client the body is not polled,
//! hyper stops reading the socket, and TCP's window pushes back on the client.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use tokio::task::JoinHandle;
use xxhash_rust::xxh3::Xxh3;

use crate::http::request_body::RequestBody;

/// Bytes written per system call.
const WRITE_SIZE: usize = 256 * 1024;

/// Why a body did not arrive whole.
#[derive(Debug)]
pub enum BodyError {
    /// It grew past the limit.
    TooLarge,
    /// The client sent nothing for the idle time.
    TimedOut,
    /// The connection broke or the body's framing was invalid.
    Aborted,
    /// Another request for the same resumable upload took over.
    Superseded,
    /// Writing failed.
    Disk(std::io::Error),
}

impl BodyError {
    /// The status that answers a body that did not arrive whole.
    pub fn status(&self) -> http::StatusCode {
        match self {
            BodyError::TooLarge => http::StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut => http::StatusCode::REQUEST_TIMEOUT,
            BodyError::Aborted | BodyError::Superseded => http::StatusCode::BAD_REQUEST,
            BodyError::Disk(e) => super::io_status(e),
        }
    }
}

/// What arrived.
#[derive(Debug)]
pub struct Received {
    /// Bytes written, from `offset`.
    pub written: u64,
    /// How the body ended: whole, or why not (what arrived before is written).
    pub outcome: Result<(), BodyError>,
}

/// Where uploaded bytes come from: a request body, or one part of a form.
pub trait Chunks {
    /// The next piece of data; `None` at the end; `Err` when the stream broke or
    /// outgrew its own limit.
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Option<Result<Bytes, BodyError>>> + Send;
}

impl Chunks for RequestBody {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        loop {
            let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *self).poll_frame(cx));
            match frame.await? {
                Err(_) => return Some(Err(BodyError::Aborted)),
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(Ok(data));
                    }
                    // Trailers carry no content.
                }
            }
        }
    }
}

impl Chunks for multer::Field<'_> {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        // The form's whole-stream limit (a chunked body declares no length to check
        // up front) is the upload limit: 413 like any other upload past it.
        self.chunk()
            .await
            .map_err(|e| match e {
                multer::Error::StreamSizeExceeded { .. } => BodyError::TooLarge,
                _ => BodyError::Aborted,
            })
            .transpose()
    }
}

/// Writes `body` into `file` from `offset`, at most `limit` bytes in all, each chunk
/// within `idle` of the one before; feeds every byte to `hasher`. What arrived before
/// a failure is written too (a resumable upload keeps it).
pub async fn receive(
    body: &mut impl Chunks,
    file: &Arc<File>,
    offset: u64,
    limit: u64,
    idle: Duration,
    mut hasher: Option<&mut Xxh3>,
) -> Received {
    let mut buf = BytesMut::with_capacity(WRITE_SIZE);
    let mut written: u64 = 0;
    let mut pending: Option<JoinHandle<std::io::Result<()>>> = None;
    let mut at = offset;
    let outcome = loop {
        let data = match tokio::time::timeout(idle, body.next_chunk()).await {
            Err(_) => break Err(BodyError::TimedOut),
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => break Err(e),
            Ok(Some(Ok(data))) => data,
        };
        if written + (buf.len() + data.len()) as u64 > limit {
            break Err(BodyError::TooLarge);
        }
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&data);
        }
        buf.extend_from_slice(&data);
        if buf.len() >= WRITE_SIZE {
            if let Err(e) = finish(pending.take()).await {
                break Err(BodyError::Disk(e));
            }
            let chunk = buf.split().freeze();
            let len = chunk.len() as u64;
            let file = Arc::clone(file);
            let pos = at;
            pending = Some(tokio::task::spawn_blocking(move || {
                file.write_all_at(&chunk, pos)
            }));
            at += len;
            written += len;
        }
    };
    // What is buffered is written whatever the outcome, except past the limit.
    let mut outcome = outcome;
    if let Err(e) = finish(pending.take()).await {
        outcome = Err(BodyError::Disk(e));
    }
    let keep_rest = !matches!(outcome, Err(BodyError::TooLarge) | Err(BodyError::Disk(_)));
    if keep_rest && !buf.is_empty() {
        let chunk = buf.split().freeze();
        let len = chunk.len() as u64;
        let file = Arc::clone(file);
        let pos = at;
        let done = tokio::task::spawn_blocking(move || file.write_all_at(&chunk, pos)).await;
        match done {
            Ok(Ok(())) => written += len,
            Ok(Err(e)) => outcome = Err(BodyError::Disk(e)),
            Err(e) => outcome = Err(BodyError::Disk(std::io::Error::other(e))),
        }
    }
    crate::metrics::metrics().uploaded(written);
    Received { written, outcome }
}

/// Waits for the write under way, if any.
async fn finish(pending: Option<JoinHandle<std::io::Result<()>>>) -> std::io::Result<()> {
    match pending {
        None => Ok(()),
        Some(handle) => handle
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e))),
    }
}

/// Reads a small XML request body whole as text: 413 past `limit` bytes, 408 when
/// it stalls for `idle`, 400 when it breaks off or is not text in its encoding
/// (see [`xml_text`]).
pub async fn read_xml(
    body: &mut RequestBody,
    limit: u64,
    idle: Duration,
) -> Result<String, http::StatusCode> {
    let mut bytes = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx));
        match tokio::time::timeout(idle, frame).await {
            Err(_) => return Err(http::StatusCode::REQUEST_TIMEOUT),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(http::StatusCode::BAD_REQUEST),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if (bytes.len() + data.len()) as u64 > limit {
                        return Err(http::StatusCode::PAYLOAD_TOO_LARGE);
                    }
                    bytes.extend_from_slice(&data);
                }
            }
        }
    }
    xml_text(&bytes)
        .filter(|text| text.trim().is_empty() || well_formed(text))
        .ok_or(http::StatusCode::BAD_REQUEST)
}

/// Whether `xml` is one well-formed document (XML 1.0 §2.1): a declaration only
/// first, one root element, no text outside it, every element closed, and no
/// character XML excludes (§2.2), written or referenced. The parsers of each
/// method's body judge the rest; this is what they would otherwise let by.
pub fn well_formed(xml: &str) -> bool {
    if xml.chars().any(|c| !is_xml_char(c)) {
        return false;
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let (mut depth, mut roots, mut first) = (0usize, 0usize, true);
    loop {
        let Ok(event) = reader.read_event() else {
            return false;
        };
        let starts_document = std::mem::replace(&mut first, false);
        match event {
            quick_xml::events::Event::Decl(_) if !starts_document => return false,
            quick_xml::events::Event::Start(_) | quick_xml::events::Event::Empty(_)
                if depth == 0 && roots > 0 =>
            {
                return false
            }
            quick_xml::events::Event::Start(_) => {
                roots += usize::from(depth == 0);
                depth += 1;
            }
            quick_xml::events::Event::Empty(_) => roots += usize::from(depth == 0),
            quick_xml::events::Event::End(_) => depth = depth.saturating_sub(1),
            quick_xml::events::Event::Text(text)
                if depth == 0 && !text.iter().all(u8::is_ascii_whitespace) =>
            {
                return false
            }
            quick_xml::events::Event::Text(text) if !references_xml_chars(&text) => return false,
            quick_xml::events::Event::CData(_) if depth == 0 => return false,
            quick_xml::events::Event::Eof => return roots == 1 && depth == 0,
            _ => {}
        }
    }
}

/// Whether `c` may appear in an XML 1.0 document (§2.2 `Char`).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// Whether every character reference in `text` (`&#1;`, `&#x1;`) names a
/// character XML allows (§4.1, well-formedness constraint "Legal Character").
fn references_xml_chars(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    text.split("&#").skip(1).all(|rest| {
        let Some((number, _)) = rest.split_once(';') else {
            return false;
        };
        let code = match number.strip_prefix('x') {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => number.parse::<u32>(),
        };
        code.ok().and_then(char::from_u32).is_some_and(is_xml_char)
    })
}

/// An XML document's bytes as text, in the encoding its byte order mark or else its
/// declaration names, UTF-8 by default: every XML processor reads UTF-8 and UTF-16
/// (XML 1.0 §4.3.3), and RFC 4918 §8.2 asks for such a processor. `None` when the
/// bytes are not text in that encoding, or it is unknown.
pub fn xml_text(bytes: &[u8]) -> Option<String> {
    let (encoding, bom) = match encoding_rs::Encoding::for_bom(bytes) {
        Some(found) => found,
        None => (declared_encoding(bytes)?, 0),
    };
    encoding
        .decode_without_bom_handling_and_without_replacement(&bytes[bom..])
        .map(std::borrow::Cow::into_owned)
}

/// The encoding an XML declaration (`<?xml version="1.0" encoding="…"?>`) names;
/// UTF-8 without one; `None` for a name not known.
fn declared_encoding(bytes: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let Some(rest) = bytes.strip_prefix(b"<?xml") else {
        return Some(encoding_rs::UTF_8);
    };
    let end = rest
        .windows(2)
        .position(|w| w == b"?>")
        .unwrap_or(rest.len());
    let declaration = &rest[..end];
    let Some(at) = declaration.windows(8).position(|w| w == b"encoding") else {
        return Some(encoding_rs::UTF_8);
    };
    let value = declaration[at + 8..]
        .trim_ascii_start()
        .strip_prefix(b"=")?;
    let value = value.trim_ascii_start();
    let quote = *value.first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let label = &value[1..];
    let label = &label[..label.iter().position(|&b| b == quote)?];
    // A declaration that names UTF-16 without a byte order mark was not sent as
    // UTF-16 (its own bytes read as ASCII here): taken as what it is, UTF-8.
    match encoding_rs::Encoding::for_label(label)? {
        e if e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE => Some(encoding_rs::UTF_8),
        e => Some(e),
    }
}

#[cfg(test)]
mod xml_tests {
    use super::xml_text;

    #[test]
    fn only_one_well_formed_document_passes() {
        use super::well_formed;
        for good in [
            "<a/>",
            "<?xml version=\"1.0\"?>\n<a><b>t &#233; &#x10000;</b></a>\n",
            "<!-- note --><a/>",
        ] {
            assert!(well_formed(good), "{good}");
        }
        for bad in [
            "<a/><b/>",
            "junk<?xml version=\"1.0\"?><a/>",
            "<a/>junk",
            "<a>",
            "<a>&#x1;</a>",
            "<a>&#1;</a>",
            "<a>\u{1}</a>",
            "<a>&#xfffe;</a>",
            "<a></b>",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn xml_is_read_in_the_encoding_it_names() {
        let doc = "<?xml version=\"1.0\" encoding=\"utf-16\"?><a>é</a>";
        let mut le = vec![0xff, 0xfe];
        le.extend(doc.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(xml_text(&le).as_deref(), Some(doc));
        let mut be = vec![0xfe, 0xff];
        be.extend(doc.encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(xml_text(&be).as_deref(), Some(doc));
        // A UTF-8 byte order mark, and none.
        let utf8 = "<?xml version=\"1.0\"?><a>é</a>";
        let mut marked = vec![0xef, 0xbb, 0xbf];
        marked.extend(utf8.as_bytes());
        assert_eq!(xml_text(&marked).as_deref(), Some(utf8));
        assert_eq!(xml_text(utf8.as_bytes()).as_deref(), Some(utf8));
        // Latin-1 by its declaration, single or double quotes.
        for declaration in [
            &b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"[..],
            b"<?xml version='1.0' encoding = 'latin1' ?>",
        ] {
            let mut latin = declaration.to_vec();
            latin.extend(b"<a>\xe9</a>");
            let text = xml_text(&latin).unwrap();
            assert!(text.ends_with("<a>é</a>"), "{text}");
        }
        // Not UTF-8 though it says nothing else; an encoding nobody knows.
        assert_eq!(xml_text(b"<a>\xe9</a>"), None);
        assert_eq!(
            xml_text(b"<?xml version=\"1.0\" encoding=\"klingon\"?><a/>"),
            None
        );
    }
}
