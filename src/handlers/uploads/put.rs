//! PUT: the body becomes the file at the path, whole or not at all.
//!
//! The body streams into a temporary file in the target's folder (missing folders on
//! the way are made, and removed again if the PUT fails), which is fsynced and renamed
//! over the target: `201 Created` for a new file, `204 No Content` for a replaced one,
//! both with the new content's ETag; a replaced file's dead properties (WebDAV) pass
//! to the new one, as RFC 4918 §9.7.1 asks, and so do its permissions and owner. Preconditions (`If-Match`,
//! `If-None-Match: *`, `If-Unmodified-Since`) and locks are checked against the
//! current file before a byte is read or a folder made, so a client sending
//! `Expect: 100-continue` is told without sending its body; a conditional PUT checks
//! its preconditions again as it replaces the file, one at a time, so that of two
//! writers holding the same tag only one wins (RFC 9110 §13.1: no lost update).

use std::sync::Arc;

use http::header;
use http::{Response, StatusCode};
use xxhash_rust::xxh3::Xxh3;

use super::body::receive;
use super::locks::Change;
use super::{created, declared_length, empty, io_status, is_conditional, props, Uploads};
use crate::fs::write::{EntryType, TempFile};
use crate::handlers::{Access, Request};
use crate::http::body::Body;
use crate::http::etag::EntityTag;
use crate::http::path::SitePath;
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
    // Over HTTP/1, a body framed neither by length nor by chunks is no body at all
    // (RFC 9112 §6.3): whatever the client sent after the head would be taken for
    // the next request, and the file emptied. Its length is asked for instead.
    let http1 = matches!(
        head.version,
        http::Version::HTTP_09 | http::Version::HTTP_10 | http::Version::HTTP_11
    );
    if http1
        && !head.headers.contains_key(header::CONTENT_LENGTH)
        && !head.headers.contains_key(header::TRANSFER_ENCODING)
    {
        return response::error(StatusCode::LENGTH_REQUIRED);
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
        .blocking(move |up| -> Result<TempFile, Refused> {
            // Over a file: its content changes; a new name: its folder's members.
            let change = match up.root.open(&target) {
                Ok(_) => Change::Content,
                Err(_) => Change::Existence,
            };
            if up.locks.blocks(&target, &headers, change) {
                return Err(Refused(StatusCode::LOCKED, None));
            }
            up.preconditions(&target, &method, &headers)?;
            // A folder made on the way is a new member of the last one that exists.
            if let Some(first) = first_missing(&up.root, &parent) {
                if up.locks.blocks(&first, &headers, Change::Existence) {
                    return Err(Refused(StatusCode::LOCKED, Some(first)));
                }
            }
            let (dir, made) = up
                .root
                .write_dir_making(&parent)
                .map_err(|e| io_status(&e))?;
            if up.root.is_secret(&dir, &name) {
                return Err(StatusCode::FORBIDDEN.into());
            }
            if dir.entry_type(&name).map_err(|e| io_status(&e))? == EntryType::Dir {
                return Err(StatusCode::CONFLICT.into());
            }
            let temp = dir.temp_file().map_err(|e| io_status(&e))?;
            // Dropped on every way out but success: the folders made go with it.
            Ok(temp.with_made_folders(made))
        })
        .await
        .unwrap_or_else(|_| Err(StatusCode::INTERNAL_SERVER_ERROR.into()));
    let temp = match prepared {
        Ok(temp) => temp,
        Err(Refused(StatusCode::LOCKED, at)) => {
            return up
                .locks
                .locked(&[at.as_ref().unwrap_or(&path)], &head.headers)
        }
        Err(Refused(status, _)) => return response::error(status),
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
    let headers = head.headers.clone();
    let method = head.method.clone();
    let target = path.clone();
    let stored = up
        .run(move |up| -> Result<(bool, EntityTag), StatusCode> {
            let dir = up
                .root
                .write_dir(&parent, false)
                .map_err(|e| io_status(&e))?;
            let conditional = is_conditional(&headers);
            // The written file is made durable first, outside the turn.
            temp.file().sync_all().map_err(|e| io_status(&e))?;
            let _turn = conditional.then(|| up.commit_turn());
            if conditional {
                up.preconditions(&target, &method, &headers)?;
            }
            let existed = match dir.entry_type(&name).map_err(|e| io_status(&e))? {
                // A folder appeared meanwhile: a file never replaces one.
                EntryType::Dir => return Err(StatusCode::CONFLICT),
                EntryType::Missing => false,
                _ => true,
            };
            if existed {
                if let Ok(old) = dir.open_file(&name) {
                    props::copy_dead_file(&old, temp.file());
                    keep_owner_and_mode(&old, temp.file());
                }
            }
            let file = Arc::clone(temp.file());
            // `If-None-Match: *` holds against writers outside wharf too.
            let replace = headers
                .get(header::IF_NONE_MATCH)
                .is_none_or(|v| v.as_bytes().trim_ascii() != b"*");
            temp.persist(&name, replace).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => StatusCode::PRECONDITION_FAILED,
                _ => io_status(&e),
            })?;
            // The tag GET will send (not the content's hash for a large file).
            let tag = match file.metadata() {
                Ok(meta) => up.files.remember_etag(&meta, tag),
                Err(_) => tag,
            };
            Ok((existed, tag))
        })
        .await;
    let (mut res, tag) = match stored {
        Ok((true, tag)) => (empty(StatusCode::NO_CONTENT), tag),
        Ok((false, tag)) => (created(&path, false), tag),
        Err(status) => return response::error(status),
    };
    res.headers_mut().insert(header::ETAG, tag.header_value());
    res
}

/// Why a PUT is refused before its body is read: the status, and for a 423 about a
/// folder that would have been made on the way, that folder (else the target).
struct Refused(StatusCode, Option<SitePath>);

impl From<StatusCode> for Refused {
    fn from(status: StatusCode) -> Refused {
        Refused(status, None)
    }
}

/// The first folder on the way to `dir` (itself included) that does not exist.
fn first_missing(root: &crate::fs::Root, dir: &SitePath) -> Option<SitePath> {
    let mut at = SitePath::root();
    for name in dir.segments() {
        at = at.join(name);
        if matches!(root.open(&at), Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            return Some(at);
        }
    }
    None
}

/// Gives the new content of a replaced file the old one's permissions (a private
/// file stays private, a program stays runnable) and, where wharf may, its owner.
/// Best effort: the content is what was asked for.
pub(super) fn keep_owner_and_mode(old: &std::fs::File, new: &std::fs::File) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(meta) = old.metadata() else {
        return;
    };
    let _ = rustix::fs::fchown(
        new,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
    );
    // After the owner: a change of owner may clear set-id bits, which are not
    // kept anyway.
    let _ = new.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o777));
}
