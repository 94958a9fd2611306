//! PUT: the body becomes the file at the path, whole or not at all.
//!
//! The body streams into a temporary file in the target's folder (missing folders on
//! the way are made), which is fsynced and renamed over the target: `201 Created` for
//! a new file, `204 No Content` for a replaced one, both with the new content's ETag.
//! Preconditions (`If-Match`, `If-None-Match: *`, `If-Unmodified-Since`) are evaluated
//! against the current file before a byte is read, so no update is lost; everything
//! that can refuse the request is checked before the body is read, so a client sending
//! `Expect: 100-continue` is told without sending it.

use std::sync::Arc;

use http::header;
use http::{Response, StatusCode};
use xxhash_rust::xxh3::Xxh3;

use super::body::receive;
use super::{created, declared_length, empty, io_status, Uploads};
use crate::fs::write::{EntryType, TempFile};
use crate::handlers::{Access, Request};
use crate::http::body::Body;
use crate::http::etag::EntityTag;
use crate::http::response;

/// Answers a PUT allowed by `access`.
pub async fn put(up: Arc<Uploads>, access: Access, req: Request<'_>) -> Response<Body> {
    let Request {
        head,
        path,
        mut body,
        ..
    } = req;
    // A partial PUT would be applied as the whole content (RFC 9110 §14.5).
    if head.headers.contains_key(header::CONTENT_RANGE) {
        return response::error(StatusCode::BAD_REQUEST);
    }
    if path.has_trailing_slash() {
        return response::error(StatusCode::CONFLICT);
    }
    let Some((parent, name)) = path.split_last() else {
        return response::error(StatusCode::CONFLICT);
    };
    let name = name.to_vec();
    if declared_length(head).is_some_and(|n| n > access.max_upload_size) {
        return response::error(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let headers = head.headers.clone();
    let method = head.method.clone();
    let target = path.clone();
    let prepared = up
        .run(move |up| -> Result<TempFile, StatusCode> {
            let dir = up
                .root
                .write_dir(&parent, true)
                .map_err(|e| io_status(&e))?;
            if up.root.is_secret(&dir, &name) {
                return Err(StatusCode::FORBIDDEN);
            }
            if dir.entry_type(&name).map_err(|e| io_status(&e))? == EntryType::Dir {
                return Err(StatusCode::CONFLICT);
            }
            if up.locks.blocks(&target, &headers) {
                return Err(StatusCode::LOCKED);
            }
            up.preconditions(&target, &method, &headers)?;
            dir.temp_file().map_err(|e| io_status(&e))
        })
        .await;
    let temp = match prepared {
        Ok(temp) => temp,
        Err(status) => return response::error(status),
    };
    let mut hasher = Xxh3::new();
    let received = receive(
        &mut body,
        temp.file(),
        0,
        access.max_upload_size,
        up.settings.body_timeout,
        Some(&mut hasher),
    )
    .await;
    if let Err(e) = received.outcome {
        // `temp` is dropped, and with it the partial file.
        return response::error(e.status());
    }
    let tag = EntityTag::from_hash(hasher.digest(), received.written);
    let (parent, name) = match path.split_last() {
        Some((parent, name)) => (parent, name.to_vec()),
        None => return response::error(StatusCode::CONFLICT),
    };
    let new_tag = tag.clone();
    let stored = up
        .run(move |up| -> Result<bool, StatusCode> {
            let dir = up
                .root
                .write_dir(&parent, false)
                .map_err(|e| io_status(&e))?;
            let existed = match dir.entry_type(&name).map_err(|e| io_status(&e))? {
                // A folder appeared meanwhile: a file never replaces one.
                EntryType::Dir => return Err(StatusCode::CONFLICT),
                EntryType::Missing => false,
                _ => true,
            };
            let file = Arc::clone(temp.file());
            temp.persist(&name, true).map_err(|e| io_status(&e))?;
            if let Ok(meta) = file.metadata() {
                up.files.remember_etag(&meta, new_tag);
            }
            Ok(existed)
        })
        .await;
    let mut res = match stored {
        Ok(true) => empty(StatusCode::NO_CONTENT),
        Ok(false) => created(&path, false),
        Err(status) => return response::error(status),
    };
    res.headers_mut().insert(header::ETAG, tag.header_value());
    res
}
