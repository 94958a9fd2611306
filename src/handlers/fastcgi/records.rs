//! The FastCGI protocol's records (FastCGI 1.0 specification, §3 and §5), as far as
//! a web server sending Responder requests needs them.

use std::io;

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol version every record carries.
const VERSION: u8 = 1;
/// A record's header length.
pub const HEADER_LEN: usize = 8;
/// Most content one record carries.
pub const MAX_CONTENT: usize = 65535;

/// Record types.
pub mod kind {
    /// Starts a request.
    pub const BEGIN_REQUEST: u8 = 1;
    /// Ends one (from the application).
    pub const END_REQUEST: u8 = 3;
    /// Name-value pairs of the request (the meta-variables).
    pub const PARAMS: u8 = 4;
    /// The request body.
    pub const STDIN: u8 = 5;
    /// The response.
    pub const STDOUT: u8 = 6;
    /// The application's error output.
    pub const STDERR: u8 = 7;
}

/// The Responder role (the one that answers HTTP requests).
const ROLE_RESPONDER: u16 = 1;
/// `FCGI_KEEP_CONN`: the application keeps the connection open for the next request.
const KEEP_CONN: u8 = 1;

/// A record header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The record type.
    pub kind: u8,
    /// The request it belongs to.
    pub request_id: u16,
    /// Content bytes that follow.
    pub content_len: usize,
    /// Padding bytes after the content.
    pub padding_len: usize,
}

impl Header {
    /// Parses the 8 bytes of a header; `None` for a version this client does not speak.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Option<Header> {
        (bytes[0] == VERSION).then(|| Header {
            kind: bytes[1],
            request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
            content_len: usize::from(u16::from_be_bytes([bytes[4], bytes[5]])),
            padding_len: usize::from(bytes[6]),
        })
    }
}

/// The record complete at the start of `buf`, taken out of it: its type and its
/// content (padding dropped); `None` while it is incomplete (room for the rest is
/// reserved). An error for bytes that are not a record of `request_id`: the
/// connection is out of step and is not used again.
pub fn take(buf: &mut BytesMut, request_id: u16) -> io::Result<Option<(u8, Bytes)>> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = Header::parse(head)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a FastCGI record"))?;
    if header.request_id != request_id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a record for another request",
        ));
    }
    let total = HEADER_LEN + header.content_len + header.padding_len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut record = buf.split_to(total);
    let _ = record.split_to(HEADER_LEN);
    record.truncate(header.content_len);
    Ok(Some((header.kind, record.freeze())))
}

/// Appends one record of `kind` with `content` (at most [`MAX_CONTENT`] bytes).
pub fn put_record(out: &mut BytesMut, kind: u8, request_id: u16, content: &[u8]) {
    debug_assert!(content.len() <= MAX_CONTENT);
    let padding = (8 - content.len() % 8) % 8;
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u16(request_id);
    out.put_u16(content.len() as u16);
    out.put_u8(padding as u8);
    out.put_u8(0);
    out.put_slice(content);
    out.put_bytes(0, padding);
}

/// Appends a stream's bytes as records of `kind` (none for empty `data`: the empty
/// record that ends a stream is written by the caller).
pub fn put_stream(out: &mut BytesMut, kind: u8, request_id: u16, data: &[u8]) {
    for piece in data.chunks(MAX_CONTENT) {
        put_record(out, kind, request_id, piece);
    }
}

/// The `BEGIN_REQUEST` record of a Responder request that keeps the connection.
pub fn put_begin(out: &mut BytesMut, request_id: u16) {
    let mut body = [0u8; 8];
    body[..2].copy_from_slice(&ROLE_RESPONDER.to_be_bytes());
    body[2] = KEEP_CONN;
    put_record(out, kind::BEGIN_REQUEST, request_id, &body);
}

/// Appends one name-value pair to the params stream being built (`encoded`); a
/// name or value too long for the protocol's 31-bit lengths is left out.
pub fn put_pair(encoded: &mut BytesMut, name: &str, value: &[u8]) {
    let (Ok(n), Ok(v)) = (u32::try_from(name.len()), u32::try_from(value.len())) else {
        return;
    };
    if n > 0x7fff_ffff || v > 0x7fff_ffff {
        return;
    }
    for len in [n, v] {
        if len < 128 {
            encoded.put_u8(len as u8);
        } else {
            encoded.put_u32(len | 0x8000_0000);
        }
    }
    encoded.put_slice(name.as_bytes());
    encoded.put_slice(value);
}

/// `PARAMS` records for the pairs in `encoded` (see [`put_pair`]), then the empty
/// one that ends them.
pub fn put_params(out: &mut BytesMut, request_id: u16, encoded: &[u8]) {
    put_stream(out, kind::PARAMS, request_id, encoded);
    put_record(out, kind::PARAMS, request_id, &[]);
}

/// The outcome an `END_REQUEST` record reports: the protocol status (0 when the
/// request completed).
pub fn end_request_status(content: &Bytes) -> Option<u8> {
    content.get(4).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_padded_to_eight_bytes() {
        let mut out = BytesMut::new();
        put_record(&mut out, kind::STDIN, 1, b"hello");
        assert_eq!(out.len(), 16);
        let header: [u8; 8] = out[..8].try_into().unwrap();
        assert_eq!(
            Header::parse(&header),
            Some(Header {
                kind: kind::STDIN,
                request_id: 1,
                content_len: 5,
                padding_len: 3
            })
        );
    }

    #[test]
    fn params_use_short_and_long_lengths() {
        let mut out = BytesMut::new();
        let mut encoded = BytesMut::new();
        put_pair(&mut encoded, "A", &[b'x'; 200]);
        put_params(&mut out, 1, &encoded);
        // 1-byte name length, 4-byte value length with the high bit set.
        assert_eq!(&out[8..13], &[1, 0x80, 0, 0, 200]);
        // Ends with the empty PARAMS record.
        assert_eq!(&out[out.len() - 8..], &[1, kind::PARAMS, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn a_long_stream_is_split() {
        let mut out = BytesMut::new();
        put_stream(&mut out, kind::STDIN, 1, &vec![0; MAX_CONTENT + 1]);
        // 65535 + 1 padding, then 1 + 7 padding, each with its header.
        assert_eq!(out.len(), 8 + 65536 + 8 + 8);
    }
}
