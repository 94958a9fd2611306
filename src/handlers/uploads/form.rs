//! Browser and `curl -F` uploads: `POST multipart/form-data` to a folder URL.
//!
//! Each file part streams to its own temporary file in the folder (the same path as
//! PUT: bounded memory, fsync, one rename), under the last component of the name the
//! client gave. An existing name is never replaced silently: the upload stops with
//! 409 naming it, unless the form (a field `overwrite` with a true value, before the
//! files) or the query (`?overwrite=1`) asks for it. Browsers get `303 See Other` back
//! to the listing; clients asking for `Accept: application/json` get a summary.
//!
//! Each file is stored whole or not at all; a form that fails part-way (a name taken,
//! a part cut off, the limit reached) keeps the files stored before the failure, and
//! the error says which they are (JSON, or an HTML page for a plain form).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyDataStream;
use xxhash_rust::xxh3::Xxh3;

use super::body::receive;
use super::locks::Change;
use super::{declared_length, io_status, Uploads};
use crate::fs::write::EntryType;
use crate::handlers::{Access, Request};
use crate::http::body::Body;
use crate::http::etag::EntityTag;
use crate::http::negotiate;
use crate::http::path::{SitePath, RESERVED_PREFIX};
use crate::http::response;

/// One file stored.
struct Stored {
    name: Vec<u8>,
    size: u64,
}

impl Stored {
    /// Its URL path, in `folder`.
    fn href(&self, folder: &SitePath) -> String {
        folder.join(&self.name).to_url(false)
    }
}

/// Answers a form POST to the folder `req.path`.
pub async fn post(up: Arc<Uploads>, access: Access, req: Request<'_>) -> Response<Body> {
    let Request {
        head, path, body, ..
    } = req;
    let boundary = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let Some(boundary) = boundary else {
        return response::error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    };
    if declared_length(head).is_some_and(|n| n > access.max_upload_size) {
        let wants_json = negotiate::prefers_json(&head.headers);
        return failed(StatusCode::PAYLOAD_TOO_LARGE, &[], &path, wants_json);
    }
    // The folder must exist, and be one.
    let folder = path.clone();
    let checked = up
        .run(move |up| match up.root.write_dir(&folder, false) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                Err(StatusCode::METHOD_NOT_ALLOWED)
            }
            Err(e) => Err(io_status(&e)),
        })
        .await;
    match checked {
        Ok(()) => {}
        Err(StatusCode::METHOD_NOT_ALLOWED) => {
            return response::method_not_allowed_here(super::allow(&access), &head.method)
        }
        Err(status) => return response::error(status),
    }
    let mut overwrite = head
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| is_true_pair(kv, "overwrite")));
    let wants_json = negotiate::prefers_json(&head.headers);
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(access.max_upload_size));
    let gate = Arc::new(PartGate::default());
    let stream = BodyDataStream::new(GatedBody {
        inner: body,
        gate: Arc::clone(&gate),
    });
    let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut stored: Vec<Stored> = Vec::new();
    loop {
        gate.arm();
        let next = form.next_field().await;
        gate.disarm();
        let mut field = match next {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(multer::Error::StreamSizeExceeded { .. }) => {
                return failed(StatusCode::PAYLOAD_TOO_LARGE, &stored, &path, wants_json)
            }
            Err(_) if gate.overflowed() => {
                return failed(StatusCode::PAYLOAD_TOO_LARGE, &stored, &path, wants_json)
            }
            Err(_) => return failed(StatusCode::BAD_REQUEST, &stored, &path, wants_json),
        };
        let raw_name = match part_file_name(&field) {
            Ok(name) => name,
            Err(UnreadableName) => {
                return failed(StatusCode::BAD_REQUEST, &stored, &path, wants_json)
            }
        };
        let Some(raw_name) = raw_name else {
            // A plain field: only `overwrite` means something here.
            if field.name() == Some("overwrite") {
                match short_text(&mut field).await {
                    Some(value) => overwrite = is_true(value.trim()),
                    None => {
                        return failed(StatusCode::PAYLOAD_TOO_LARGE, &stored, &path, wants_json)
                    }
                }
            }
            continue;
        };
        if raw_name.is_empty() {
            // An empty file input: the browser sends a part with no name.
            continue;
        }
        let Some(name) = file_name(&raw_name, up.settings.hidden) else {
            return failed(StatusCode::BAD_REQUEST, &stored, &path, wants_json);
        };
        let folder = path.clone();
        let target = name.clone();
        let headers = head.headers.clone();
        let prepared = up
            .run(move |up| -> Result<_, StatusCode> {
                let dir = up
                    .root
                    .write_dir(&folder, false)
                    .map_err(|e| io_status(&e))?;
                if up.root.is_secret(&dir, &target) {
                    return Err(StatusCode::FORBIDDEN);
                }
                let change = match dir.entry_type(&target).map_err(|e| io_status(&e))? {
                    EntryType::Dir => return Err(StatusCode::CONFLICT),
                    EntryType::Missing => Change::Existence,
                    _ if !overwrite => return Err(StatusCode::CONFLICT),
                    _ => Change::Content,
                };
                if up.locks.blocks(&folder.join(&target), &headers, change) {
                    return Err(StatusCode::LOCKED);
                }
                dir.temp_file().map_err(|e| io_status(&e))
            })
            .await;
        let temp = match prepared {
            Ok(p) => p,
            Err(StatusCode::CONFLICT) => return conflict(&name, &stored, &path, wants_json),
            Err(status) => return failed(status, &stored, &path, wants_json),
        };
        let used: u64 = stored.iter().map(|s| s.size).sum();
        let mut hasher = Xxh3::new();
        let received = receive(
            &mut field,
            temp.file(),
            0,
            access.max_upload_size.saturating_sub(used),
            up.settings.body_timeout,
            Some(&mut hasher),
        )
        .await;
        if let Err(e) = received.outcome {
            return failed(e.status(), &stored, &path, wants_json);
        }
        let tag = EntityTag::from_hash(hasher.digest(), received.written);
        let target = name.clone();
        let persisted = up
            .run(move |up| -> Result<(), StatusCode> {
                let file = Arc::clone(temp.file());
                temp.persist(&target, overwrite)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::AlreadyExists => StatusCode::CONFLICT,
                        _ => io_status(&e),
                    })?;
                if let Ok(meta) = file.metadata() {
                    // The tag is not sent: a form's answer names files only.
                    up.files.remember_etag(&meta, tag);
                }
                Ok(())
            })
            .await;
        match persisted {
            Ok(()) => stored.push(Stored {
                name,
                size: received.written,
            }),
            Err(StatusCode::CONFLICT) => return conflict(&name, &stored, &path, wants_json),
            Err(status) => return failed(status, &stored, &path, wants_json),
        }
    }
    if wants_json {
        let mut res = Response::new(Body::bytes(summary(&stored, &path, None)));
        *res.status_mut() = if stored.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
        // One file made: it is the resource created (RFC 9110 §15.3.2).
        if let [only] = stored.as_slice() {
            if let Ok(v) = HeaderValue::from_str(&only.href(&path)) {
                res.headers_mut().insert(header::LOCATION, v);
            }
        }
        return res;
    }
    let mut res = response::redirect(StatusCode::SEE_OTHER, &path.to_url(true));
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    res
}

/// 409 naming the file that exists, with what was stored before it.
fn conflict(name: &[u8], stored: &[Stored], folder: &SitePath, json: bool) -> Response<Body> {
    let problem = Problem {
        conflict: Some(name),
        error: "a file of that name exists",
    };
    report(StatusCode::CONFLICT, stored, folder, problem, json)
}

/// The error page for `status`; when files were stored before the failure, a report
/// naming them instead; for a client that asked for JSON, the JSON summary always.
fn failed(status: StatusCode, stored: &[Stored], folder: &SitePath, json: bool) -> Response<Body> {
    if stored.is_empty() && !json {
        return response::error(status);
    }
    let problem = Problem {
        conflict: None,
        error: status.canonical_reason().unwrap_or("error"),
    };
    report(status, stored, folder, problem, json)
}

/// Why a form stopped.
struct Problem<'a> {
    /// The name that exists, for a conflict.
    conflict: Option<&'a [u8]>,
    /// What went wrong, in words.
    error: &'static str,
}

/// `status` with what was stored and why the rest was not: JSON ([`summary`]) when
/// asked for, else a small HTML page.
fn report(
    status: StatusCode,
    stored: &[Stored],
    folder: &SitePath,
    problem: Problem<'_>,
    json: bool,
) -> Response<Body> {
    let mut res = if json {
        let mut res = Response::new(Body::bytes(summary(stored, folder, Some(&problem))));
        *res.status_mut() = status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    } else {
        response::html(status, report_page(status, stored, folder, &problem))
    };
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    res
}

/// The most a part's headers, with whatever is skipped of the part before them
/// (a plain field nobody reads), may take: multer holds them in memory.
const PART_HEAD_LIMIT: u64 = 64 * 1024;

/// The most a plain field that is read (`overwrite`) may hold.
const FIELD_LIMIT: usize = 1024;

/// Counts the bytes multer takes while it looks for the next part, so that no
/// part's headers (which it holds in memory until they end) grow past
/// [`PART_HEAD_LIMIT`]: the body stream fails instead.
#[derive(Default)]
struct PartGate {
    armed: std::sync::atomic::AtomicBool,
    seen: std::sync::atomic::AtomicU64,
    overflowed: std::sync::atomic::AtomicBool,
}

impl PartGate {
    fn arm(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.seen.store(0, Relaxed);
        self.armed.store(true, Relaxed);
    }

    fn disarm(&self) {
        self.armed
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the stream failed because a part's head was too long.
    fn overflowed(&self) -> bool {
        self.overflowed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether `len` more bytes may pass.
    fn admits(&self, len: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.armed.load(Relaxed) {
            return true;
        }
        let seen = self.seen.fetch_add(len as u64, Relaxed) + len as u64;
        if seen > PART_HEAD_LIMIT {
            self.overflowed.store(true, Relaxed);
            return false;
        }
        true
    }
}

/// The request body, its data through a [`PartGate`].
struct GatedBody<B> {
    inner: B,
    gate: Arc<PartGate>,
}

impl<B> http_body::Body for GatedBody<B>
where
    B: http_body::Body<Data = bytes::Bytes, Error = std::io::Error> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        let frame = std::task::ready!(std::pin::Pin::new(&mut self.inner).poll_frame(cx));
        std::task::Poll::Ready(frame.map(|frame| match frame {
            Ok(frame) => match frame.data_ref() {
                Some(data) if !self.gate.admits(data.len()) => {
                    Err(std::io::Error::other("a form part's headers are too long"))
                }
                _ => Ok(frame),
            },
            Err(e) => Err(e),
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// A plain field's text, or `None` past [`FIELD_LIMIT`] bytes.
async fn short_text(field: &mut multer::Field<'_>) -> Option<String> {
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = field.chunk().await {
        if text.len() + chunk.len() > FIELD_LIMIT {
            return None;
        }
        text.extend_from_slice(&chunk);
    }
    Some(String::from_utf8_lossy(&text).into_owned())
}

/// The HTML report of a form that stopped: the problem, then the files stored.
fn report_page(
    status: StatusCode,
    stored: &[Stored],
    folder: &SitePath,
    problem: &Problem<'_>,
) -> String {
    use crate::handlers::static_files::listing::escape_html;
    let mut details = String::from("\n<p>");
    match problem.conflict {
        Some(name) => details.push_str(&format!(
            "{}: {}.",
            escape_html(&String::from_utf8_lossy(name)),
            problem.error
        )),
        None => details.push_str(&format!("The upload stopped: {}.", problem.error)),
    }
    details.push_str("</p>\n");
    if !stored.is_empty() {
        details.push_str("<p>Stored before it:</p>\n<ul>\n");
        for s in stored {
            let href = s.href(folder);
            details.push_str(&format!(
                "<li><a href=\"{}\">{}</a> ({} bytes)</li>\n",
                escape_html(&href),
                escape_html(&String::from_utf8_lossy(&s.name)),
                s.size
            ));
        }
        details.push_str("</ul>\n");
    }
    details.push_str(&format!(
        "<p><a href=\"{}\">Back to the folder</a></p>\n",
        escape_html(&folder.to_url(true))
    ));
    let reason = status.canonical_reason().unwrap_or("Error");
    response::error_page_with(status, reason, &details)
}

/// `{"uploaded": [{"name", "size", "href"}], "conflict": name, "error": text}`.
fn summary(stored: &[Stored], folder: &SitePath, problem: Option<&Problem<'_>>) -> String {
    let uploaded: Vec<serde_json::Value> = stored
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": String::from_utf8_lossy(&s.name),
                "size": s.size,
                "href": s.href(folder),
            })
        })
        .collect();
    let mut out = serde_json::json!({ "uploaded": uploaded });
    if let Some(problem) = problem {
        if let Some(name) = problem.conflict {
            out["conflict"] = serde_json::Value::from(String::from_utf8_lossy(name).into_owned());
        }
        out["error"] = serde_json::Value::from(problem.error);
    }
    out.to_string()
}

/// The file name a part carries: `filename*` (RFC 8187: UTF-8, percent-encoded; what
/// some clients send for names beyond ASCII) over `filename`; `None` for a plain
/// field; `Err` for a file part whose name cannot be read (not UTF-8, another
/// charset), which is refused rather than taken for a plain field and dropped.
/// Parameter names are matched without regard to case (RFC 2183 §2, by way of RFC
/// 7578 §4.2), which multer's own reading of `filename` does not do.
pub fn part_file_name(field: &multer::Field<'_>) -> Result<Option<String>, UnreadableName> {
    let disposition = field
        .headers()
        .get(header::CONTENT_DISPOSITION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if let Some(value) = disposition_param(disposition, b"filename*") {
        return decode_extended(&value).map(Some).ok_or(UnreadableName);
    }
    match field.file_name() {
        Some(name) => Ok(Some(name.to_string())),
        None => match disposition_param(disposition, b"filename") {
            Some(value) => String::from_utf8(value)
                .map(Some)
                .map_err(|_| UnreadableName),
            None => Ok(None),
        },
    }
}

/// A file part's name that is not UTF-8 text (or in a charset other than UTF-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnreadableName;

/// The value of parameter `name` (any letter case) in a `Content-Disposition`
/// value: a token, or a quoted string with its quotes and escapes taken off.
fn disposition_param(disposition: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    // Past the disposition type.
    let mut rest = &disposition[disposition.iter().position(|&b| b == b';')? + 1..];
    loop {
        rest = rest.trim_ascii_start();
        let key_end = rest.iter().position(|&b| b == b'=' || b == b';')?;
        let key = rest[..key_end].trim_ascii();
        if rest[key_end] == b';' {
            rest = &rest[key_end + 1..];
            continue;
        }
        rest = rest[key_end + 1..].trim_ascii_start();
        let mut value = Vec::new();
        if let Some(quoted) = rest.strip_prefix(b"\"") {
            let mut bytes = quoted.iter().enumerate();
            let mut end = quoted.len();
            while let Some((i, &b)) = bytes.next() {
                match b {
                    b'\\' => value.extend(bytes.next().map(|(_, &c)| c)),
                    b'"' => {
                        end = i + 1;
                        break;
                    }
                    _ => value.push(b),
                }
            }
            rest = &quoted[end..];
            rest = rest
                .iter()
                .position(|&b| b == b';')
                .map_or(&[][..], |at| &rest[at + 1..]);
        } else {
            let end = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
            value.extend_from_slice(rest[..end].trim_ascii());
            rest = rest.get(end + 1..).unwrap_or_default();
        }
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
        if rest.is_empty() {
            return None;
        }
    }
}

/// An RFC 8187 value (`UTF-8'lang'percent-encoded`) as text; only UTF-8 is taken.
fn decode_extended(value: &[u8]) -> Option<String> {
    let mut pieces = value.splitn(3, |&b| b == b'\'');
    let (charset, _language, encoded) = (pieces.next()?, pieces.next()?, pieces.next()?);
    if !charset.eq_ignore_ascii_case(b"utf-8") {
        return None;
    }
    let bytes: Vec<u8> = percent_encoding::percent_decode(encoded).collect();
    String::from_utf8(bytes).ok()
}

/// The name a part is stored under: the last component of what the client sent (a
/// browser may send a path), refused when no file may be called that.
pub(crate) fn file_name(raw: &str, hidden: bool) -> Option<Vec<u8>> {
    let last = raw.rsplit(['/', '\\']).next()?.trim();
    let bytes = last.as_bytes();
    let refused = bytes.is_empty()
        || last == "."
        || last == ".."
        || bytes.len() > super::NAME_MAX
        || super::has_control(bytes)
        || bytes.starts_with(RESERVED_PREFIX)
        || (!hidden && bytes.starts_with(b"."));
    (!refused).then(|| bytes.to_vec())
}

pub(super) fn is_true(value: &str) -> bool {
    matches!(value, "1" | "true" | "on" | "yes")
}

fn is_true_pair(pair: &str, key: &str) -> bool {
    match pair.split_once('=') {
        Some((k, v)) => k == key && is_true(v),
        None => pair == key,
    }
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn extended_file_names_are_decoded() {
        use super::{decode_extended, disposition_param};
        let header = b"form-data; name=\"f\"; filename*=UTF-8''%E2%82%AC%20rates.txt";
        let value = disposition_param(header, b"filename*").unwrap();
        assert_eq!(
            decode_extended(&value).as_deref(),
            Some("\u{20ac} rates.txt")
        );
        assert_eq!(disposition_param(header, b"filename"), None);
        assert_eq!(decode_extended(b"iso-8859-1'en'%A3%20rates"), None);
        assert_eq!(decode_extended(b"UTF-8''%FF"), None);
        assert_eq!(decode_extended(b"no quotes"), None);
    }

    #[test]
    fn disposition_parameters_are_read_in_any_case_and_quoting() {
        use super::disposition_param;
        let header = b"form-data; NAME=\"f; x\"; FileName=\"a \\\"q\\\"; b.txt\" ; size=3";
        assert_eq!(
            disposition_param(header, b"filename").as_deref(),
            Some(&b"a \"q\"; b.txt"[..])
        );
        assert_eq!(
            disposition_param(header, b"name").as_deref(),
            Some(&b"f; x"[..])
        );
        assert_eq!(
            disposition_param(header, b"size").as_deref(),
            Some(&b"3"[..])
        );
        assert_eq!(disposition_param(header, b"x"), None);
        assert_eq!(disposition_param(b"form-data", b"name"), None);
        assert_eq!(
            disposition_param(b"form-data; flag; filename=plain.txt", b"filename").as_deref(),
            Some(&b"plain.txt"[..])
        );
        // Cut short: what there is.
        assert_eq!(
            disposition_param(b"form-data; filename=\"open", b"filename").as_deref(),
            Some(&b"open"[..])
        );
    }

    #[test]
    fn names_are_reduced_to_their_last_component() {
        assert_eq!(file_name("a.txt", false).as_deref(), Some(&b"a.txt"[..]));
        assert_eq!(
            file_name("dir/sub/a.txt", false).as_deref(),
            Some(&b"a.txt"[..])
        );
        assert_eq!(
            file_name("C:\\Users\\me\\a.txt", false).as_deref(),
            Some(&b"a.txt"[..])
        );
        for bad in ["", "..", "a/..", "x\u{1}y", ".env", ".wharf-tmp-1", "dir/"] {
            assert_eq!(file_name(bad, false), None, "{bad:?}");
        }
        assert_eq!(file_name(".env", true).as_deref(), Some(&b".env"[..]));
    }
}
