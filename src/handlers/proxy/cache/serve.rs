//! Answering from a stored response: its fields with `Age` and `Cache-Status`
//! added, the client's own preconditions evaluated against it (304 or 412 without
//! asking the upstream), `Range` served from it (206, multipart, 416), and HEAD
//! answered from a stored GET.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use super::disk;
use super::entry::Entry;
use super::store::Store;
use crate::http::body::{Body, FileRange, Segment};
use crate::http::conditional::{self, Precondition, Validators};
use crate::http::etag::{EntityTag, TagList};
use crate::http::representation::{self, Content, Representation};
use crate::http::response;

/// The field that says what the cache did (RFC 9211).
pub const CACHE_STATUS: header::HeaderName = header::HeaderName::from_static("cache-status");

/// Fields a 304 carries (RFC 9110 §15.4.5), besides `Age` and `Cache-Status`.
const NOT_MODIFIED_FIELDS: [header::HeaderName; 7] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
    header::LAST_MODIFIED,
];

/// Adds wharf's member, e.g. `wharf; hit; ttl=57`, to the end of `Cache-Status`
/// (RFC 9211 §2: after those of caches nearer the origin).
pub fn add_status(headers: &mut HeaderMap, detail: &str) {
    let before = (headers.get(&CACHE_STATUS))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    let mut value = String::with_capacity(before.map_or(0, |b| b.len() + 2) + detail.len() + 7);
    if let Some(before) = before {
        value.push_str(before);
        value.push_str(", ");
    }
    value.push_str("wharf; ");
    value.push_str(detail);
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(CACHE_STATUS, value);
    }
}

/// The answer to `req` from `entry`; `None` when its file turned out damaged
/// (the entry is removed: a miss).
pub async fn respond(
    store: &Store,
    entry: &Arc<Entry>,
    req: &Parts,
    cache_status: &str,
) -> Option<Response<Body>> {
    let age = entry.age(SystemTime::now());
    if let Some(res) = from_memory(entry, req, cache_status, age) {
        return Some(res);
    }
    let dir = store.disk()?.dir.clone();
    let e = Arc::clone(entry);
    let opened = tokio::task::spawn_blocking(move || disk::open_body(&dir, &e))
        .await
        .ok()
        .flatten();
    match opened {
        Some(file) => Some(answer(
            entry,
            req,
            stored_headers(entry, cache_status, age),
            Content::File(Arc::new(file)),
        )),
        None => {
            store.remove(entry);
            None
        }
    }
}

/// The answer to `req` from `entry`, of `age`, when its body is in memory (no
/// waiting).
pub fn from_memory(
    entry: &Entry,
    req: &Parts,
    cache_status: &str,
    age: Duration,
) -> Option<Response<Body>> {
    let bytes = entry.memory.as_ref()?;
    Some(answer(
        entry,
        req,
        stored_headers(entry, cache_status, age),
        Content::Bytes(bytes.clone()),
    ))
}

/// The stored fields as sent: with `Age` and `Cache-Status`, without what was
/// meant for wharf only.
fn stored_headers(entry: &Entry, cache_status: &str, age: Duration) -> HeaderMap {
    // Made at its size: a clone has no room for the two fields added, and would
    // be copied again to make some.
    let room = (entry.headers.keys_len() + 2).min(crate::handlers::proxy::forward::ROOM_HINT);
    let mut headers = HeaderMap::with_capacity(room);
    for (name, value) in &entry.headers {
        headers.append(name.clone(), value.clone());
    }
    headers.insert(header::AGE, HeaderValue::from(age.as_secs().min(1 << 31)));
    add_status(&mut headers, cache_status);
    headers.remove(super::control::SURROGATE_CONTROL);
    headers
}

/// The response from the stored fields (`headers`, `Age` included) and body.
fn answer(entry: &Entry, req: &Parts, mut headers: HeaderMap, content: Content) -> Response<Body> {
    let read = req.method == Method::GET || req.method == Method::HEAD;
    if read && entry.status.is_success() {
        let strong = entry.facts.strong_tag.clone();
        let validators = Validators {
            etag: strong.as_ref(),
            last_modified: Some(entry.modified_for_conditionals()),
        };
        let mut outcome = conditional::evaluate(&req.method, &req.headers, validators);
        if outcome == Precondition::Proceed && strong.is_none() {
            // A weak tag still answers If-None-Match (weak comparison).
            let list = TagList::parse(req.headers.get_all(header::IF_NONE_MATCH).iter());
            if let (Some(list), Some(tag)) = (list, entry.etag()) {
                if EntityTag::weakly_matched(&list, tag) {
                    outcome = Precondition::NotModified;
                }
            }
        }
        match outcome {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                let mut res = Response::new(Body::empty());
                *res.status_mut() = StatusCode::NOT_MODIFIED;
                for name in NOT_MODIFIED_FIELDS
                    .iter()
                    .chain([&header::AGE, &CACHE_STATUS])
                {
                    for value in headers.get_all(name) {
                        res.headers_mut().append(name.clone(), value.clone());
                    }
                }
                res.extensions_mut().insert(response::Relayed);
                return res;
            }
            Precondition::Failed => {
                let mut res = response::error(StatusCode::PRECONDITION_FAILED);
                if let Some(value) = headers.get(&CACHE_STATUS) {
                    res.headers_mut().insert(CACHE_STATUS, value.clone());
                }
                return res;
            }
        }
        if entry.status == StatusCode::OK && req.headers.contains_key(header::RANGE) {
            let typed = headers.contains_key(header::CONTENT_TYPE);
            let rep = Representation {
                content: content.clone(),
                len: entry.len,
                content_type: headers
                    .get(header::CONTENT_TYPE)
                    .cloned()
                    .unwrap_or(HeaderValue::from_static("application/octet-stream")),
                etag: strong.clone(),
                last_modified: entry.last_modified(),
                encoding: None,
                negotiated: false,
            };
            if let Some(mut partial) = representation::partial(req, &rep) {
                // The stored fields, but the part's own description of its bytes.
                for name in [
                    header::CONTENT_TYPE,
                    header::CONTENT_RANGE,
                    header::CONTENT_LENGTH,
                ] {
                    headers.remove(&name);
                }
                for (name, value) in partial.headers().iter() {
                    // A part describes its bytes as the whole response would: with
                    // no type when the app gave none (a multipart answer has its
                    // own).
                    let multipart = value.as_bytes().starts_with(b"multipart/");
                    if name == header::CONTENT_TYPE && !typed && !multipart {
                        continue;
                    }
                    headers.insert(name.clone(), value.clone());
                }
                *partial.headers_mut() = headers;
                partial.extensions_mut().insert(response::Relayed);
                return partial;
            }
        }
    }
    let body = match content {
        Content::Bytes(bytes) => Body::bytes(bytes),
        Content::File(file) => {
            Body::from_segments(vec![Segment::File(FileRange::new(file, 0, entry.len))])
        }
    };
    let mut res = Response::new(body);
    *res.status_mut() = entry.status;
    let bodiless = entry.status == StatusCode::NO_CONTENT || entry.status.is_informational();
    if !bodiless {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.len));
    }
    *res.headers_mut() = headers;
    res.extensions_mut().insert(response::Relayed);
    res
}
