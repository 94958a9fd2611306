//! From a selected representation to its response: preconditions (304/412), ranges
//! (206/416, multipart/byteranges), and the validator and negotiation headers.
//!
//! Every file response — identity, precompressed sidecar, or compressed on the fly —
//! goes through [`respond`], so the HTTP caching rules live in exactly one place.

use std::fs::File;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use crate::http::body::{Body, FileRange, Segment};
use crate::http::conditional::{self, Precondition, Validators};
use crate::http::etag::EntityTag;
use crate::http::range::{self, ByteRange, RangeRequest};
use crate::http::response;

/// Where a representation's bytes are.
#[derive(Debug, Clone)]
pub enum Content {
    /// In memory (small files, compressed variants).
    Bytes(Bytes),
    /// In an open file, read when sent.
    File(Arc<File>),
}

impl Content {
    fn slice(&self, r: ByteRange) -> Segment {
        match self {
            // Ranges come from `range::parse` against this content's length.
            Content::Bytes(b) => Segment::Bytes(b.slice(r.start as usize..r.end as usize)),
            Content::File(f) => Segment::File(FileRange::new(Arc::clone(f), r.start, r.len())),
        }
    }
}

/// One selected representation of a resource.
#[derive(Debug, Clone)]
pub struct Representation {
    /// The bytes.
    pub content: Content,
    /// Its length.
    pub len: u64,
    /// Its media type.
    pub content_type: HeaderValue,
    /// Its strong validator.
    pub etag: Option<EntityTag>,
    /// Its modification time.
    pub last_modified: Option<SystemTime>,
    /// Its content coding, if not identity.
    pub encoding: Option<&'static str>,
    /// Whether other encodings could have been chosen (sends `Vary: Accept-Encoding`).
    pub negotiated: bool,
}

/// The response to GET or HEAD for `rep`.
pub fn respond(req: &Parts, rep: Representation) -> Response<Body> {
    let validators = Validators {
        etag: rep.etag.as_ref(),
        last_modified: rep.last_modified,
    };
    match conditional::evaluate(&req.method, &req.headers, validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            validator_headers(res.headers_mut(), &rep);
            return res;
        }
        Precondition::Failed => {
            let mut res = response::error(StatusCode::PRECONDITION_FAILED);
            if rep.negotiated {
                res.headers_mut().insert(header::VARY, accept_encoding());
            }
            return res;
        }
    }

    match partial(req, &rep) {
        Some(res) => res,
        None => {
            let mut res = Response::new(full_body(&rep));
            *res.headers_mut() = ok_headers(&rep);
            res
        }
    }
}

/// The 206 or 416 a `Range` request (GET, honoured by its `If-Range`) gets for
/// `rep`; `None` when the whole representation is to be sent. Preconditions are the
/// caller's, evaluated before.
pub fn partial(req: &Parts, rep: &Representation) -> Option<Response<Body>> {
    let validators = Validators {
        etag: rep.etag.as_ref(),
        last_modified: rep.last_modified,
    };
    let ranges = match range::range_field(&req.headers) {
        // An empty representation has no range to send: ranges are ignored (as nginx
        // does; RFC 9110 §14.2 lets a server ignore Range), never a 416.
        Some(value) if req.method == Method::GET && rep.len > 0 => {
            let honoured = conditional::range_allowed(&req.headers, validators);
            match value.to_str() {
                Ok(text) if honoured => range::parse(text, rep.len),
                _ => RangeRequest::Full,
            }
        }
        _ => RangeRequest::Full,
    };

    let mut res = match ranges {
        RangeRequest::Full => return None,
        RangeRequest::Unsatisfiable => {
            let mut res = response::error(StatusCode::RANGE_NOT_SATISFIABLE);
            let value = HeaderValue::from_str(&format!("bytes */{}", rep.len));
            if let Ok(value) = value {
                res.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            if rep.negotiated {
                res.headers_mut().insert(header::VARY, accept_encoding());
            }
            return Some(res);
        }
        RangeRequest::Ranges(ranges) if ranges.len() == 1 => {
            let r = ranges[0];
            let mut res = Response::new(Body::from_segments(vec![rep.content.slice(r)]));
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            let headers = res.headers_mut();
            headers.insert(header::CONTENT_TYPE, rep.content_type.clone());
            if let Ok(value) = HeaderValue::from_str(&r.content_range(rep.len)) {
                headers.insert(header::CONTENT_RANGE, value);
            }
            res
        }
        RangeRequest::Ranges(ranges) => multipart(rep, &ranges),
    };
    let len = res.body().exact_len().unwrap_or(0);
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(coding) = rep.encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    validator_headers(headers, rep);
    Some(res)
}

/// Whether `req` asks nothing of a representation beyond its plain 200: no
/// precondition and no range. Such requests may be answered with [`ok_headers`] built
/// in advance.
pub fn is_plain(req: &Parts) -> bool {
    let h = &req.headers;
    !(h.contains_key(header::IF_MATCH)
        || h.contains_key(header::IF_NONE_MATCH)
        || h.contains_key(header::IF_MODIFIED_SINCE)
        || h.contains_key(header::IF_UNMODIFIED_SINCE)
        || (req.method == Method::GET && h.contains_key(header::RANGE)))
}

/// The complete header section of the 200 response for `rep`.
pub fn ok_headers(rep: &Representation) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(header::CONTENT_TYPE, rep.content_type.clone());
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(rep.len));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(coding) = rep.encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    validator_headers(&mut headers, rep);
    headers
}

/// The whole content of `rep` as a body.
pub fn full_body(rep: &Representation) -> Body {
    Body::from_segments(vec![rep.content.slice(ByteRange {
        start: 0,
        end: rep.len,
    })])
}

/// ETag, Last-Modified and Vary: sent on 200, 206 and 304 alike.
fn validator_headers(headers: &mut HeaderMap, rep: &Representation) {
    if let Some(tag) = &rep.etag {
        headers.insert(header::ETAG, tag.header_value());
    }
    if let Some(modified) = rep.last_modified {
        if let Some(value) = response::http_date(modified) {
            headers.insert(header::LAST_MODIFIED, value);
        }
    }
    if rep.negotiated {
        headers.insert(header::VARY, accept_encoding());
    }
}

fn accept_encoding() -> HeaderValue {
    HeaderValue::from_static("Accept-Encoding")
}

/// A `multipart/byteranges` 206 (RFC 9110 §14.6): each part's bytes stay symbolic
/// (file ranges), only the part headers are in memory.
fn multipart(rep: &Representation, ranges: &[ByteRange]) -> Response<Body> {
    let boundary = boundary(rep);
    let content_type = String::from_utf8_lossy(rep.content_type.as_bytes()).into_owned();
    let mut segments = Vec::with_capacity(ranges.len() * 2 + 1);
    for (i, r) in ranges.iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        let head = format!(
            "{lead}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
            r.content_range(rep.len)
        );
        segments.push(Segment::Bytes(Bytes::from(head)));
        segments.push(rep.content.slice(*r));
    }
    segments.push(Segment::Bytes(Bytes::from(format!(
        "\r\n--{boundary}--\r\n"
    ))));
    let mut res = Response::new(Body::from_segments(segments));
    *res.status_mut() = StatusCode::PARTIAL_CONTENT;
    let value = HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"));
    if let Ok(value) = value {
        res.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    res
}

/// A boundary that will not occur in the content: 128 bits from the representation's
/// tag and the clock, hashed.
fn boundary(rep: &Representation) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{:?}{nanos}{}", rep.etag, rep.len);
    let hash = xxhash_rust::xxh3::xxh3_128(seed.as_bytes());
    format!("wharf-{hash:032x}")
}
