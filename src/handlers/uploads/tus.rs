//! Resumable uploads with the tus protocol 1.0.0 (https://tus.io/protocols/resumable-upload):
//! core, creation, creation-with-upload, termination, expiration and checksum (sha1),
//! at any folder where uploads are allowed.
//!
//! `POST` with `Tus-Resumable` to a folder URL creates an upload; its URL is the
//! folder's with `?tus=<id>` (so the folder's rules and auth apply to every request
//! of it), the id 128 random bits. State lives on disk in the reserved folder
//! `.wharf-tus/` under the root — `<id>` holds the bytes so far (its length is the
//! offset), `<id>.json` what the upload is — so an upload resumes after a restart.
//! `PATCH` appends at the offset the client names; a broken connection keeps what
//! arrived. When the last byte is in, the file is fsynced and renamed into its folder
//! in one step: under its name or, when that was taken meanwhile, as `name (1).ext`
//! (a name taken at creation is 409, unless `overwrite` in `Upload-Metadata` asks
//! for the file to replace it).
//! The offset reaches the length only with the file in place: a last PATCH whose
//! file cannot be placed (its folder gone or locked) takes its bytes back and fails,
//! and an upload found with every byte in but no file (the process stopped between
//! the two) is placed by the next HEAD or PATCH, which otherwise fail with the
//! reason. Concatenation is not offered (501, as tusd). An upload of no bytes is
//! complete when it is created. Incomplete uploads are invisible, and removed once
//! they expire (`--upload-expiry` after their last change), when they are next asked
//! for and whenever an upload is created.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use sha1::Digest as _;

use super::body::{receive, BodyError, Chunks};
use super::locks::Change;
use super::{form, io_status, TusTurn, Uploads};
use crate::fs::write::{EntryType, WriteDir};
use crate::handlers::{Access, Request};
use crate::http::body::Body;
use crate::http::path::SitePath;
use crate::http::request_body::RequestBody;
use crate::http::response;

/// The protocol version spoken.
const VERSION: &str = "1.0.0";
/// The extensions supported.
const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
/// The reserved folder under the root that holds uploads under way.
const STATE_DIR: &[u8] = b".wharf-tus";
/// The media type of a chunk.
const CHUNK_TYPE: &str = "application/offset+octet-stream";
/// tus's status for a checksum that does not match.
const CHECKSUM_MISMATCH: u16 = 460;
/// Its reason phrase, which HTTP does not know.
const CHECKSUM_MISMATCH_REASON: &str = "Checksum Mismatch";
/// How long a request waits for an earlier one on the same upload to end (a client
/// that resumes right after its connection broke is faster than the server noticing).
const TURN_PATIENCE: Duration = Duration::from_secs(10);

/// What an upload is, kept beside its bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    /// The folder's URL path (`/a/b/`).
    folder: String,
    /// The file's name in it.
    name: String,
    /// Its whole length.
    length: u64,
    /// `Upload-Metadata` as the client sent it.
    metadata: Option<String>,
    /// Seconds since the epoch after which it is gone.
    expires: u64,
    /// Complete: the file is in its folder. Kept until it expires, so that a client
    /// that lost the last answer learns from HEAD that nothing is missing.
    #[serde(default)]
    done: bool,
    /// The file replaces one of its name (`overwrite` in `Upload-Metadata`, as a
    /// form's `overwrite` field), instead of going in beside it.
    #[serde(default)]
    replace: bool,
}

/// Whether the request is one of tus's: it names an upload (`?tus=`) with a method
/// other than a read, or says which protocol it speaks and is not a read of the
/// folder or a file (a GET, or a HEAD of no upload, is served whatever its headers).
/// A change naming an upload never reaches the folder the upload's URL is also the
/// URL of (a DELETE there would delete the folder): without `Tus-Resumable` it is
/// refused with 412, as tusd does. OPTIONS is the site's, which advertises the
/// protocol ([`advertise`]), header or not.
pub fn is_tus(head: &Parts) -> bool {
    let speaks = head.headers.contains_key("tus-resumable");
    match head.method {
        Method::OPTIONS | Method::GET => false,
        Method::HEAD => speaks && upload_id(head).is_some(),
        _ => speaks || upload_id(head).is_some(),
    }
}

/// The method a tus request means: a POST carrying `X-HTTP-Method-Override` (for
/// clients behind proxies that pass only GET and POST) means the method it names,
/// which tus requires servers to honour.
fn method(head: &Parts) -> Method {
    let overridden = head
        .headers
        .get("x-http-method-override")
        .and_then(|v| Method::from_bytes(v.as_bytes()).ok());
    match overridden {
        Some(m) if head.method == Method::POST => m,
        _ => head.method.clone(),
    }
}

/// The methods an upload's URL answers.
pub(super) const UPLOAD_ALLOWS: &str = "GET, HEAD, OPTIONS, PATCH, DELETE";

/// The upload the request's query names (`tus=<id>`), if any.
pub(super) fn upload_id(head: &Parts) -> Option<&str> {
    head.uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("tus=")))
}

/// Whether the request speaks the protocol version this server does.
fn speaks_version(head: &Parts) -> bool {
    head.headers.get("tus-resumable").map(|v| v.as_bytes()) == Some(VERSION.as_bytes())
}

/// Whether a tus request with `access` is allowed: everything takes uploads (ending
/// one's own upload too). Where they are, every method is answered here: one that
/// does not speak this version gets 412 (so that the client learns the versions
/// spoken), one tus has no use for 405 with what an upload's URL allows.
pub fn allows(access: &Access, _head: &Parts) -> bool {
    access.upload
}

/// The headers `OPTIONS` adds where uploads are allowed.
pub fn advertise(access: &Access, headers: &mut HeaderMap) {
    headers.insert("tus-resumable", HeaderValue::from_static(VERSION));
    headers.insert("tus-version", HeaderValue::from_static(VERSION));
    headers.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    headers.insert("tus-max-size", HeaderValue::from(access.max_upload_size));
    headers.insert("tus-checksum-algorithm", HeaderValue::from_static("sha1"));
}

/// Answers a tus request allowed by `access`.
pub async fn respond(up: Arc<Uploads>, access: Access, req: Request<'_>) -> Response<Body> {
    let head = req.head;
    let id = upload_id(head).map(str::to_string);
    let mut res = match (&method(head), id) {
        _ if !speaks_version(head) => {
            let mut res = response::error(StatusCode::PRECONDITION_FAILED);
            res.headers_mut()
                .insert("tus-version", HeaderValue::from_static(VERSION));
            res
        }
        (&Method::POST, None) => create(up, access, req).await,
        (_, None) => response::error(StatusCode::NOT_FOUND),
        (&Method::HEAD, Some(id)) => status(up, head, &req.path, &id).await,
        (&Method::PATCH, Some(id)) => append(up, req, &id).await,
        (&Method::DELETE, Some(id)) => terminate(up, &req.path, &id).await,
        // An upload's URL is also its folder's, which GET reads.
        _ => response::method_not_allowed(UPLOAD_ALLOWS),
    };
    // Every answer but OPTIONS' says the version spoken (tus 1.0.0, "Tus-Resumable").
    res.headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(VERSION));
    res
}

/// The error page for `status`, with tus's own reason phrase for its own status.
fn error(status: StatusCode) -> Response<Body> {
    if status.as_u16() == CHECKSUM_MISMATCH {
        response::error_with_reason(status, CHECKSUM_MISMATCH_REASON)
    } else {
        response::error(status)
    }
}

/// An id: 32 hex digits, nothing else (it names files).
fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn new_id() -> Option<String> {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn expires_header(meta: &Meta) -> Option<HeaderValue> {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(meta.expires);
    HeaderValue::from_str(&httpdate::fmt_http_date(at)).ok()
}

/// The filename in `Upload-Metadata` (`key base64,key base64`): `None` when there
/// is no `filename` key, `Some(None)` when its value is missing or not UTF-8 text.
fn filename(metadata: &str) -> Option<Option<String>> {
    metadata_value(metadata, "filename")
}

/// Whether `Upload-Metadata` asks for the file to replace one of its name: a key
/// `overwrite` whose value is true (`1`, `true`, `yes`, `on`), as a form's field.
fn overwrite(metadata: &str) -> bool {
    metadata_value(metadata, "overwrite")
        .flatten()
        .is_some_and(|v| form::is_true(v.trim()))
}

/// The value of `key` in `Upload-Metadata`: `None` when the key is not there,
/// `Some(None)` when its value is missing or not UTF-8 text.
fn metadata_value(metadata: &str, key: &str) -> Option<Option<String>> {
    metadata.split(',').find_map(|pair| {
        let mut parts = pair.trim().splitn(2, ' ');
        (parts.next() == Some(key)).then(|| {
            parts.next().and_then(|value| {
                base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
            })
        })
    })
}

/// Whether `Upload-Metadata` is as tus defines it: comma-separated pairs of a key
/// (ASCII, no space or comma, not empty, each once) and an optional base64 value.
fn well_formed_metadata(metadata: &str) -> bool {
    let mut keys = std::collections::HashSet::new();
    metadata.split(',').all(|pair| {
        let mut parts = pair.trim().splitn(2, ' ');
        let key = parts.next().unwrap_or("");
        let value_ok = parts.next().is_none_or(|value| {
            base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .is_ok()
        });
        !key.is_empty() && key.is_ascii() && value_ok && keys.insert(key)
    })
}

/// A length or offset: digits only (tus: "a non-negative integer"; no sign).
fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    // Sent twice, the field has no one value (a 400, as a malformed one is).
    let mut values = headers.get_all(name).iter();
    let text = values.next()?.to_str().ok()?.trim();
    if values.next().is_some() {
        return None;
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl Uploads {
    /// The folder holding uploads under way.
    fn tus_dir(&self) -> io::Result<WriteDir> {
        self.root.write_dir(&SitePath::root().join(STATE_DIR), true)
    }

    /// The upload `id` begun in `folder`, unless it does not exist, belongs to
    /// another folder, or has expired (then it is removed): `Err(404 or 410)`.
    fn load(&self, folder: &SitePath, id: &str) -> Result<(WriteDir, Meta), StatusCode> {
        if !valid_id(id) {
            return Err(StatusCode::NOT_FOUND);
        }
        let dir = self.tus_dir().map_err(|e| io_status(&e))?;
        let file = dir
            .open_file(format!("{id}.json").as_bytes())
            .map_err(|_| StatusCode::NOT_FOUND)?;
        let meta: Meta =
            serde_json::from_reader(io::BufReader::new(file)).map_err(|_| StatusCode::NOT_FOUND)?;
        if meta.folder != folder.to_url(true) {
            return Err(StatusCode::NOT_FOUND);
        }
        if meta.expires <= now_secs() {
            forget(&dir, id);
            return Err(StatusCode::GONE);
        }
        Ok((dir, meta))
    }

    /// Removes every expired upload.
    fn sweep_expired(&self) {
        let Ok(dir) = self.tus_dir() else { return };
        let Ok(names) = dir.all_names() else { return };
        let now = now_secs();
        for name in names {
            let Some(id) = name.strip_suffix(b".json") else {
                continue;
            };
            let Ok(id) = std::str::from_utf8(id) else {
                continue;
            };
            let expired = dir
                .open_file(&name)
                .ok()
                .and_then(|f| serde_json::from_reader::<_, Meta>(io::BufReader::new(f)).ok())
                .is_none_or(|m| m.expires <= now);
            if expired {
                forget(&dir, id);
            }
        }
    }
}

/// Removes an upload's bytes and description.
fn forget(dir: &WriteDir, id: &str) {
    let _ = dir.remove(id.as_bytes());
    let _ = dir.remove(format!("{id}.json").as_bytes());
}

/// Writes `meta` as `<id>.json`, atomically.
fn save(dir: &WriteDir, id: &str, meta: &Meta) -> io::Result<()> {
    let temp = dir.temp_file()?;
    serde_json::to_writer(&**temp.file(), meta).map_err(io::Error::other)?;
    temp.persist(format!("{id}.json").as_bytes(), true)
}

/// The bytes received so far.
fn offset(dir: &WriteDir, id: &str) -> io::Result<u64> {
    Ok(dir.open_file(id.as_bytes())?.metadata()?.len())
}

/// POST: a new upload (creation), perhaps with its first bytes.
async fn create(up: Arc<Uploads>, access: Access, req: Request<'_>) -> Response<Body> {
    let Request {
        head,
        path,
        mut body,
        ..
    } = req;
    // A length given later (creation-defer-length) is not offered.
    if head.headers.contains_key("upload-defer-length") {
        return response::error(StatusCode::BAD_REQUEST);
    }
    // Nor is concatenation: a partial upload taken for a whole one would be put in
    // its folder under its id (tusd answers the same 501).
    if head.headers.contains_key("upload-concat") {
        return response::error(StatusCode::NOT_IMPLEMENTED);
    }
    let Some(length) = number(&head.headers, "upload-length") else {
        return response::error(StatusCode::BAD_REQUEST);
    };
    if length > access.max_upload_size {
        return response::error(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let metadata = head
        .headers
        .get("upload-metadata")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if metadata
        .as_deref()
        .is_some_and(|m| !well_formed_metadata(m))
    {
        return response::error(StatusCode::BAD_REQUEST);
    }
    let Some(id) = new_id() else {
        return response::error(StatusCode::INTERNAL_SERVER_ERROR);
    };
    // The name the client gives, else (metadata is optional in tus) the upload's id;
    // a name given that cannot be read or used is refused, not replaced.
    let name = match metadata.as_deref().and_then(filename) {
        Some(given) => match given
            .and_then(|g| form::file_name(&g, up.settings.hidden))
            .and_then(|n| String::from_utf8(n).ok())
        {
            Some(name) => name,
            None => return response::error(StatusCode::BAD_REQUEST),
        },
        None => id.clone(),
    };
    let replace = metadata.as_deref().is_some_and(overwrite);
    let meta = Meta {
        folder: path.to_url(true),
        name: name.clone(),
        length,
        metadata,
        expires: now_secs() + up.settings.upload_expiry.as_secs(),
        done: false,
        replace,
    };
    let (folder, saved, new_id) = (path.clone(), meta.clone(), id.clone());
    let headers = head.headers.clone();
    let made = up
        .run(move |up| -> Result<WriteDir, StatusCode> {
            up.sweep_expired();
            let target = up
                .root
                .write_dir(&folder, false)
                .map_err(|e| io_status(&e))?;
            // wharf's own files (its configuration, a TLS key) are never written.
            if up.root.is_secret(&target, name.as_bytes()) {
                return Err(StatusCode::FORBIDDEN);
            }
            let change = match target
                .entry_type(name.as_bytes())
                .map_err(|e| io_status(&e))?
            {
                EntryType::Missing => Change::Existence,
                EntryType::File if replace => Change::Content,
                _ => return Err(StatusCode::CONFLICT),
            };
            // The file will be a new member of a folder a WebDAV lock may guard, or
            // the new content of a file one may.
            if up
                .locks
                .blocks(&folder.join(name.as_bytes()), &headers, change)
            {
                return Err(StatusCode::LOCKED);
            }
            let dir = up.tus_dir().map_err(|e| io_status(&e))?;
            dir.temp_file()
                .and_then(|t| t.persist(new_id.as_bytes(), false))
                .and_then(|()| save(&dir, &new_id, &saved))
                .map_err(|e| io_status(&e))?;
            Ok(dir)
        })
        .await;
    let dir = match made {
        Ok(dir) => dir,
        Err(status) => return response::error(status),
    };
    let location = format!("{}?tus={id}", path.to_url(true));
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::CREATED;
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(v) = expires_header(&meta) {
        res.headers_mut().insert("upload-expires", v);
    }
    // creation-with-upload: the first bytes came with it.
    let with_bytes = head
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(CHUNK_TYPE.as_bytes()));
    // An upload of nothing is complete at once (its file is made now).
    if (with_bytes && !http_body::Body::is_end_stream(&body)) || length == 0 {
        match write_chunk(&up, &dir, &id, &meta, 0, &mut body, &head.headers).await {
            Ok((new_offset, renewed)) => {
                res.headers_mut()
                    .insert("upload-offset", HeaderValue::from(new_offset));
                // The expiry the first bytes renewed, as HEAD will say it.
                if let Some(v) = expires_header(&renewed) {
                    res.headers_mut().insert("upload-expires", v);
                }
            }
            Err(status) => {
                // The client is not told the upload's URL: nothing may stay of it.
                let key = id.clone();
                let _ = up
                    .blocking(move |up| {
                        if let Ok(dir) = up.tus_dir() {
                            forget(&dir, &key);
                        }
                    })
                    .await;
                return error(status);
            }
        }
    }
    res
}

/// HEAD: where the upload stands.
async fn status(up: Arc<Uploads>, head: &Parts, folder: &SitePath, id: &str) -> Response<Body> {
    // The offset reported is settled: no earlier request is still appending.
    let Some(_turn) = up.tus_turn(id, TURN_PATIENCE).await else {
        return super::empty(StatusCode::LOCKED);
    };
    let (folder, id, headers) = (folder.clone(), id.to_string(), head.headers.clone());
    let found = up
        .run(move |up| -> Result<(Meta, u64), StatusCode> {
            let (dir, mut meta) = up.load(&folder, &id)?;
            if meta.done {
                return Ok((meta.clone(), meta.length));
            }
            let at = offset(&dir, &id).map_err(|e| io_status(&e))?;
            // Reported complete only with its file in place.
            publish_if_complete(up, &dir, &id, &mut meta, at, &headers)?;
            Ok((meta, at))
        })
        .await;
    let (meta, at) = match found {
        Ok(found) => found,
        Err(status) => return super::empty(status),
    };
    let mut res = Response::new(Body::empty());
    let headers = res.headers_mut();
    headers.insert("upload-offset", HeaderValue::from(at));
    headers.insert("upload-length", HeaderValue::from(meta.length));
    if let Some(v) = meta
        .metadata
        .as_deref()
        .and_then(|m| HeaderValue::from_str(m).ok())
    {
        headers.insert("upload-metadata", v);
    }
    if let Some(v) = expires_header(&meta) {
        headers.insert("upload-expires", v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// PATCH: bytes appended at the offset the client names.
async fn append(up: Arc<Uploads>, req: Request<'_>, id: &str) -> Response<Body> {
    let Request {
        head,
        path,
        mut body,
        ..
    } = req;
    if head
        .headers
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| !v.as_bytes().eq_ignore_ascii_case(CHUNK_TYPE.as_bytes()))
    {
        return response::error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let Some(claimed) = number(&head.headers, "upload-offset") else {
        return response::error(StatusCode::BAD_REQUEST);
    };
    if !valid_id(id) {
        return response::error(StatusCode::NOT_FOUND);
    }
    let Some(turn) = up.tus_turn(id, TURN_PATIENCE).await else {
        return response::error(StatusCode::LOCKED);
    };
    let (folder, key, headers) = (path.clone(), id.to_string(), head.headers.clone());
    let found = up
        .run(move |up| -> Result<(WriteDir, Meta, u64), StatusCode> {
            let (dir, mut meta) = up.load(&folder, &key)?;
            let at = if meta.done {
                meta.length
            } else {
                offset(&dir, &key).map_err(|e| io_status(&e))?
            };
            if claimed == at {
                publish_if_complete(up, &dir, &key, &mut meta, at, &headers)?;
            }
            Ok((dir, meta, at))
        })
        .await;
    let (dir, meta, at) = match found {
        Ok(found) => found,
        Err(status) => return response::error(status),
    };
    if claimed != at {
        return response::error(StatusCode::CONFLICT);
    }
    // More than is missing, said up front: refused before a byte is sent (no
    // `100 Continue` for a body that cannot be taken).
    if super::declared_length(head).is_some_and(|n| n > meta.length - at.min(meta.length)) {
        return response::error(StatusCode::PAYLOAD_TOO_LARGE);
    }
    if meta.done {
        // Complete already: the client missed the answer to its last PATCH.
        let mut res = super::empty(StatusCode::NO_CONTENT);
        res.headers_mut()
            .insert("upload-offset", HeaderValue::from(at));
        if let Some(v) = expires_header(&meta) {
            res.headers_mut().insert("upload-expires", v);
        }
        return res;
    }
    let mut body = UntilWanted {
        body: &mut body,
        turn: &turn,
    };
    match write_chunk(&up, &dir, id, &meta, at, &mut body, &head.headers).await {
        Ok((new_offset, renewed)) => {
            let mut res = super::empty(StatusCode::NO_CONTENT);
            res.headers_mut()
                .insert("upload-offset", HeaderValue::from(new_offset));
            // The expiry this PATCH renewed, not the one before it; the one that
            // completed the upload too, whose URL answers until then (the
            // expiration extension: in every PATCH response while it will expire).
            if let Some(v) = expires_header(&renewed) {
                res.headers_mut().insert("upload-expires", v);
            }
            res
        }
        Err(status) => error(status),
    }
}

/// A PATCH's body, ended early when another request for the upload asks for the
/// turn (see [`TusTurn::wanted_elsewhere`]).
struct UntilWanted<'b, 't> {
    body: &'b mut RequestBody,
    turn: &'t TusTurn<'t>,
}

impl Chunks for UntilWanted<'_, '_> {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        tokio::select! {
            biased;
            () = self.turn.wanted_elsewhere() => Some(Err(BodyError::Superseded)),
            chunk = self.body.next_chunk() => chunk,
        }
    }
}

/// Appends the body at `at`, checks `Upload-Checksum`, renews the expiry, and
/// completes the upload when its last byte is in. The new offset and the upload's
/// renewed state, or the status. A chunk with a checksum counts only whole and
/// verified: one cut short leaves the offset where it was (the checksum
/// extension's "discarded").
async fn write_chunk(
    up: &Arc<Uploads>,
    dir: &WriteDir,
    id: &str,
    meta: &Meta,
    at: u64,
    body: &mut impl Chunks,
    headers: &HeaderMap,
) -> Result<(u64, Meta), StatusCode> {
    // A checksum is checked for its form before any byte is written.
    let checksum = match headers.get("upload-checksum") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("sha1 "))
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .ok_or(StatusCode::BAD_REQUEST)?,
        ),
    };
    let file = dir.open_file_rw(id.as_bytes()).map_err(|e| io_status(&e))?;
    let file = Arc::new(file);
    let room = meta.length - at.min(meta.length);
    let received = receive(body, &file, at, room, up.settings.body_timeout, None).await;
    let end = at + received.written;
    if let Err(e) = received.outcome {
        // What arrived is kept (that is what resuming is for), past the limit is not;
        // nor is a chunk whose checksum could not be checked.
        if checksum.is_some() {
            let file = Arc::clone(&file);
            up.run(move |_| file.set_len(at).map_err(|e| io_status(&e)))
                .await?;
        }
        return Err(e.status());
    }
    let (key, mut renewed) = (id.to_string(), meta.clone());
    renewed.expires = now_secs() + up.settings.upload_expiry.as_secs();
    let headers = headers.clone();
    let finished = up
        .run(move |up| -> Result<(u64, Meta), StatusCode> {
            let dir = up.tus_dir().map_err(|e| io_status(&e))?;
            if let Some(expected) = checksum {
                // Read back in pieces: memory stays bounded whatever the chunk's size.
                let mut hasher = sha1::Sha1::new();
                let mut piece = vec![0u8; 256 * 1024];
                let mut pos = at;
                while pos < end {
                    let n = piece.len().min((end - pos) as usize);
                    std::os::unix::fs::FileExt::read_exact_at(&*file, &mut piece[..n], pos)
                        .map_err(|e| io_status(&e))?;
                    hasher.update(&piece[..n]);
                    pos += n as u64;
                }
                if hasher.finalize().as_slice() != expected.as_slice() {
                    file.set_len(at).map_err(|e| io_status(&e))?;
                    return Err(
                        StatusCode::from_u16(CHECKSUM_MISMATCH).unwrap_or(StatusCode::BAD_REQUEST)
                    );
                }
            }
            if end < renewed.length {
                save(&dir, &key, &renewed).map_err(|e| io_status(&e))?;
                return Ok((end, renewed));
            }
            // The last byte: the file goes into its folder, whole, in one step.
            file.sync_all().map_err(|e| io_status(&e))?;
            match publish(up, &dir, &key, &mut renewed, &headers) {
                Ok(()) => Ok((end, renewed)),
                Err(status) => {
                    // Not in place: the offset goes back to where this PATCH began,
                    // so that no HEAD reports complete an upload with no file, and
                    // the client sends its last chunk again (and learns whether what
                    // stood in the way is gone).
                    if !renewed.done {
                        let _ = file.set_len(at);
                    }
                    Err(status)
                }
            }
        })
        .await;
    finished
}

/// Puts an upload whose every byte is in (fsynced) into its folder, under its name
/// or, when that was taken meanwhile, the first free of [`free_names`], and marks it
/// done. `Err` with `meta.done` unset leaves the bytes where they were.
fn publish(
    up: &Uploads,
    dir: &WriteDir,
    key: &str,
    meta: &mut Meta,
    headers: &HeaderMap,
) -> Result<(), StatusCode> {
    let folder = SitePath::parse(&meta.folder, true).map_err(|_| StatusCode::NOT_FOUND)?;
    let target = up
        .root
        .write_dir(&folder, false)
        .map_err(|e| io_status(&e))?;
    let change = match target.entry_type(meta.name.as_bytes()) {
        Ok(EntryType::Missing) => Change::Existence,
        _ => Change::Content,
    };
    // Checked again as the file goes in: the folder (or the file replaced) may have
    // been locked since. The last PATCH may be sent again with a token.
    if up
        .locks
        .blocks(&folder.join(meta.name.as_bytes()), headers, change)
    {
        return Err(StatusCode::LOCKED);
    }
    if meta.replace {
        // Whatever file has the name now is replaced, in one step; a folder is not,
        // nor one of wharf's own files.
        if up.root.is_secret(&target, meta.name.as_bytes()) {
            return Err(StatusCode::FORBIDDEN);
        }
        match target
            .entry_type(meta.name.as_bytes())
            .map_err(|e| io_status(&e))?
        {
            EntryType::Dir => return Err(StatusCode::CONFLICT),
            // As a PUT's replacement: the old file's properties, mode and owner.
            EntryType::File => {
                if let (Ok(old), Ok(new)) = (
                    target.open_file(meta.name.as_bytes()),
                    dir.open_file(key.as_bytes()),
                ) {
                    super::props::copy_dead_file(&old, &new);
                    super::put::keep_owner_and_mode(&old, &new);
                }
            }
            _ => {}
        }
        dir.rename(key.as_bytes(), &target, meta.name.as_bytes(), true)
            .map_err(|e| io_status(&e))?;
        meta.done = true;
        let _ = save(dir, key, meta);
        return target.sync().map_err(|e| io_status(&e));
    }
    // Its name may have been taken meanwhile (another upload of the same name
    // finished first): the file then goes in as `name (1).ext`, the way browsers keep
    // a second download, rather than lose its bytes.
    let mut placed = None;
    for candidate in free_names(&meta.name) {
        let path = folder.join(candidate.as_bytes());
        if up.locks.blocks(&path, headers, Change::Existence)
            || up.root.is_secret(&target, candidate.as_bytes())
        {
            continue;
        }
        match dir.rename(key.as_bytes(), &target, candidate.as_bytes(), false) {
            Ok(()) => {
                placed = Some(candidate);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_status(&e)),
        }
    }
    let Some(placed) = placed else {
        return Err(StatusCode::CONFLICT);
    };
    meta.name = placed;
    meta.done = true;
    let _ = save(dir, key, meta);
    target.sync().map_err(|e| io_status(&e))
}

/// An upload found with every byte in but not done (its last PATCH was cut off
/// between the two, or the process was), put in place now, so that the offset a
/// HEAD or PATCH reports as complete has its file; `Err` when it cannot be.
fn publish_if_complete(
    up: &Uploads,
    dir: &WriteDir,
    key: &str,
    meta: &mut Meta,
    at: u64,
    headers: &HeaderMap,
) -> Result<(), StatusCode> {
    if meta.done || at < meta.length {
        return Ok(());
    }
    dir.open_file(key.as_bytes())
        .and_then(|f| f.sync_all())
        .map_err(|e| io_status(&e))?;
    publish(up, dir, key, meta, headers)
}

/// The names an upload called `name` may take, in order: its own, then
/// `stem (1).ext` to `stem (99).ext`, the stem shortened where the number would
/// make the name longer than a file system takes.
fn free_names(name: &str) -> impl Iterator<Item = String> + '_ {
    // `.tar.gz` and `.bashrc` alike: the extension is after the last dot, and a
    // leading dot starts no extension.
    let (stem, ext) = match name.rfind('.') {
        Some(0) | None => (name, ""),
        Some(dot) => name.split_at(dot),
    };
    std::iter::once(name.to_string()).chain((1..100).filter_map(move |n| {
        let suffix = format!(" ({n}){ext}");
        let mut cut = stem.len().min(super::NAME_MAX.checked_sub(suffix.len())?);
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        (cut > 0).then(|| format!("{}{suffix}", &stem[..cut]))
    }))
}

/// DELETE: the upload is abandoned (termination).
async fn terminate(up: Arc<Uploads>, folder: &SitePath, id: &str) -> Response<Body> {
    let Some(_turn) = up.tus_turn(id, TURN_PATIENCE).await else {
        return response::error(StatusCode::LOCKED);
    };
    let (folder, key) = (folder.clone(), id.to_string());
    let done = up
        .run(move |up| -> Result<(), StatusCode> {
            let (dir, _) = up.load(&folder, &key)?;
            forget(&dir, &key);
            Ok(())
        })
        .await;
    match done {
        Ok(()) => super::empty(StatusCode::NO_CONTENT),
        Err(status) => response::error(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_ids() {
        assert_eq!(
            filename("filename d29ybGQ=,is_confidential"),
            Some(Some("world".to_string()))
        );
        assert_eq!(filename("other eA=="), None);
        // There, but no text: Latin-1 "café.txt", or no value at all.
        assert_eq!(filename("filename Y2Fm6S50eHQ="), Some(None));
        assert_eq!(filename("filename"), Some(None));
        assert!(valid_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_id("../../etc/passwd"));
        assert!(!valid_id("0123"));
        assert!(new_id().is_some_and(|id| valid_id(&id)));
    }

    #[test]
    fn a_taken_name_gives_way_to_a_numbered_one() {
        let names: Vec<String> = free_names("report.tar.gz").take(3).collect();
        assert_eq!(
            names,
            ["report.tar.gz", "report.tar (1).gz", "report.tar (2).gz"]
        );
        assert_eq!(free_names("notes").nth(1).as_deref(), Some("notes (1)"));
        assert_eq!(free_names(".env").nth(1).as_deref(), Some(".env (1)"));
        assert_eq!(free_names("a").count(), 100);
    }

    #[test]
    fn metadata_must_be_key_and_base64_pairs() {
        assert!(well_formed_metadata("filename d29ybGQ=,is_confidential"));
        assert!(well_formed_metadata("filename d29ybGQ=, type dGV4dA=="));
        assert!(!well_formed_metadata("filename d29ybGQ=,type !!!"));
        assert!(!well_formed_metadata("filename d29ybGQ=,filename eA=="));
        assert!(!well_formed_metadata("filename d29ybGQ=,,x"));
        assert!(!well_formed_metadata("filename d29ybGQ=,kéy eA=="));
    }
}
