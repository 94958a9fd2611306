//! WebDAV's namespace methods (RFC 4918 §9.3, §9.6, §9.8, §9.9): MKCOL, DELETE,
//! COPY and MOVE.
//!
//! DELETE of a folder removes its whole tree; the root itself is never deleted (403).
//! COPY and MOVE take their destination from the site, which checked it like the
//! request's own path (same host, rules, access); an existing destination is
//! replaced only with `Overwrite: T` (the default), else 412. A file copied is written
//! to a temporary file and renamed into place, as PUT does; a move is one rename.
//! Trees holding wharf's own secrets are neither moved nor deleted, and secrets are
//! left out of copies.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::sync::Arc;

use http::{Response, StatusCode};

use super::locks::Change;
use super::{created, empty, has_body, io_status, props, Uploads};
use crate::fs::write::{EntryType, TempFile, WriteDir};
use crate::fs::{Node, Root, MAX_NAMES_PER_FOLDER};
use crate::handlers::{Access, Request};
use crate::http::body::Body;
use crate::http::path::{SitePath, RESERVED_PREFIX};
use crate::http::response;

/// DELETE: a file, or a folder with everything in it.
pub async fn delete(up: Arc<Uploads>, req: Request<'_>) -> Response<Body> {
    let Some((parent, name)) = req.path.split_last() else {
        return response::error(StatusCode::FORBIDDEN);
    };
    let name = name.to_vec();
    let path = req.path.clone();
    let (method, headers) = (req.head.method.clone(), req.head.headers.clone());
    let done = up
        .run(
            move |up| -> Result<Vec<(SitePath, StatusCode)>, StatusCode> {
                let dir = existing(up, &path, &parent, &name)?;
                // A folder goes with everything in it: a client asking for less (Depth 0
                // or 1) did not mean that (RFC 4918 §9.6.1).
                let partial = headers
                    .get("depth")
                    .is_some_and(|d| !d.as_bytes().trim_ascii().eq_ignore_ascii_case(b"infinity"));
                if partial && dir.entry_type(&name).map_err(|e| io_status(&e))? == EntryType::Dir {
                    return Err(StatusCode::BAD_REQUEST);
                }
                if up.locks.blocks_tree(&path, &headers) {
                    return Err(StatusCode::LOCKED);
                }
                up.preconditions(&path, &method, &headers)?;
                if up
                    .root
                    .tree_holds_secret(&dir, &name)
                    .map_err(|e| io_status(&e))?
                {
                    return Err(StatusCode::FORBIDDEN);
                }
                let left = remove_reporting(&dir, &parent, &name)?;
                if left.is_empty() {
                    up.locks.forget_tree(&path);
                }
                Ok(left)
            },
        )
        .await;
    match done {
        Ok(left) if left.is_empty() => empty(StatusCode::NO_CONTENT),
        Ok(left) => members_left(left),
        Err(StatusCode::LOCKED) => up.locks.locked(&[&req.path], &req.head.headers),
        Err(status) => response::error(status),
    }
}

/// Removes `name` (at `parent`) from `dir` with everything in it, going on past
/// what cannot be removed: each member that stayed, with why; `Err` with the
/// status of the target itself when nothing but it failed.
fn remove_reporting(
    dir: &WriteDir,
    parent: &SitePath,
    name: &[u8],
) -> Result<Vec<(SitePath, StatusCode)>, StatusCode> {
    let failed = dir.remove_what_can_be(name);
    match failed.as_slice() {
        [] => Ok(Vec::new()),
        [(at, e)] if at.len() == 1 => Err(io_status(e)),
        _ => Ok(failed
            .iter()
            .map(|(at, e)| {
                let mut member = parent.clone();
                for segment in at {
                    member = member.join(segment);
                }
                (member, io_status(e))
            })
            .collect()),
    }
}

/// 207 naming the members a removal left, each with why (RFC 4918 §9.6.1); the
/// folders holding them are not named (no 424 for DELETE).
fn members_left(left: Vec<(SitePath, StatusCode)>) -> Response<Body> {
    let mut xml = props::multistatus_head();
    for (member, status) in left {
        let _ = write!(
            xml,
            "<D:response><D:href>{}</D:href><D:status>HTTP/1.1 {} {}</D:status></D:response>",
            quick_xml::escape::escape(member.to_url(false).as_str()),
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
    }
    xml.push_str("</D:multistatus>");
    props::multistatus(xml)
}

/// The folder holding what `path` names, which must exist (404 otherwise, and for a
/// file named as a folder, as for reads); wharf's own secrets are not there for
/// clients either. `parent` and `name` are `path` split.
fn existing(
    up: &Uploads,
    path: &SitePath,
    parent: &SitePath,
    name: &[u8],
) -> Result<WriteDir, StatusCode> {
    if path.has_trailing_slash() {
        up.open(path).map_err(|e| io_status(&e))?;
    }
    let dir = up
        .root
        .write_dir(parent, false)
        .map_err(|e| io_status(&e))?;
    if dir.entry_type(name).map_err(|e| io_status(&e))? == EntryType::Missing
        || up.root.is_secret(&dir, name)
    {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(dir)
}

/// MKCOL: a new, empty folder whose parent exists. Where something is, 405 with the
/// methods that are allowed there, as OPTIONS lists them (`access` says which).
pub async fn mkcol(up: Arc<Uploads>, access: Access, req: Request<'_>) -> Response<Body> {
    // No body format for MKCOL is defined here (RFC 4918 §9.3).
    if has_body(req.head) {
        return response::error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let Some((parent, name)) = req.path.split_last() else {
        return response::method_not_allowed_here(super::allow(&access), &req.head.method);
    };
    let name = name.to_vec();
    let path = req.path.clone();
    let (method, headers) = (req.head.method.clone(), req.head.headers.clone());
    let done = up
        .run(move |up| -> Result<(), StatusCode> {
            let dir = up
                .root
                .write_dir(&parent, false)
                .map_err(|e| match e.kind() {
                    // The parent must exist (RFC 4918 §9.3.1).
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => StatusCode::CONFLICT,
                    _ => io_status(&e),
                })?;
            if dir.entry_type(&name).map_err(|e| io_status(&e))? != EntryType::Missing {
                return Err(StatusCode::METHOD_NOT_ALLOWED);
            }
            if up.locks.blocks(&path, &headers, Change::Existence) {
                return Err(StatusCode::LOCKED);
            }
            up.preconditions(&path, &method, &headers)?;
            dir.mkdir(&name).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => StatusCode::METHOD_NOT_ALLOWED,
                _ => io_status(&e),
            })
        })
        .await;
    match done {
        Ok(()) => created(&req.path, true),
        Err(StatusCode::METHOD_NOT_ALLOWED) => {
            response::method_not_allowed_here(super::allow(&access), &req.head.method)
        }
        Err(StatusCode::LOCKED) => up.locks.locked(&[&req.path], &req.head.headers),
        Err(status) => response::error(status),
    }
}

/// What a COPY or MOVE did.
enum Moved {
    /// Done: whether something was replaced, and whether a folder was copied or
    /// moved.
    Done { existed: bool, folder: bool },
    /// Not done: what was at the destination could not all be deleted; these
    /// members stayed.
    Left(Vec<(SitePath, StatusCode)>),
}

/// COPY or MOVE to the request's destination.
pub async fn copy_or_move(up: Arc<Uploads>, req: Request<'_>) -> Response<Body> {
    let moving = req.head.method.as_str() == "MOVE";
    let Some(dest) = req.destination.clone() else {
        return response::error(StatusCode::BAD_REQUEST);
    };
    if !dest.access.upload {
        return response::error(StatusCode::FORBIDDEN);
    }
    // The destination's names are held to what any upload's are.
    if let Some(status) = super::name_problem(&dest.path) {
        return response::error(status);
    }
    let headers = &req.head.headers;
    let overwrite = match headers.get("overwrite").map(|v| v.as_bytes()) {
        None | Some(b"T") | Some(b"t") => true,
        Some(b"F") | Some(b"f") => false,
        Some(_) => return response::error(StatusCode::BAD_REQUEST),
    };
    let deep = match headers.get("depth").map(|v| v.as_bytes()) {
        None => true,
        Some(d) if d.eq_ignore_ascii_case(b"infinity") => true,
        Some(b"0") => false,
        Some(_) => return response::error(StatusCode::BAD_REQUEST),
    };
    let (Some((src_parent, src_name)), Some((dst_parent, dst_name))) =
        (req.path.split_last(), dest.path.split_last())
    else {
        // The root is neither moved nor replaced.
        return response::error(StatusCode::FORBIDDEN);
    };
    // Onto itself, into itself, or over a folder that holds it (replacing that
    // folder would delete the source first).
    if dest.path.segments().starts_with(req.path.segments())
        || req.path.segments().starts_with(dest.path.segments())
    {
        return response::error(StatusCode::FORBIDDEN);
    }
    let (src_name, dst_name) = (src_name.to_vec(), dst_name.to_vec());
    let (src, dst) = (req.path.clone(), dest.path.clone());
    let (method, headers) = (req.head.method.clone(), headers.clone());
    let dest_can_delete = dest.access.delete;
    let done = up
        .run(move |up| -> Result<Moved, StatusCode> {
            let src_dir = existing(up, &src, &src_parent, &src_name)?;
            let folder = src_dir.entry_type(&src_name).ok() == Some(EntryType::Dir);
            // A folder moves whole (RFC 4918 §9.9.2); a file's Depth means nothing.
            if moving && !deep && folder {
                return Err(StatusCode::BAD_REQUEST);
            }
            let dst_dir = up
                .root
                .write_dir(&dst_parent, false)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => StatusCode::CONFLICT,
                    _ => io_status(&e),
                })?;
            if up.root.is_secret(&dst_dir, &dst_name) {
                return Err(StatusCode::FORBIDDEN);
            }
            if moving && up.locks.blocks_tree(&src, &headers) {
                return Err(StatusCode::LOCKED);
            }
            if up.locks.blocks_tree(&dst, &headers) {
                return Err(StatusCode::LOCKED);
            }
            same_or_inside(
                &up.root,
                (&src_dir, &src_name, &src_parent),
                (&dst_dir, &dst_name, &dst_parent),
            )?;
            // The preconditions are the source's: it is the request's target.
            up.preconditions(&src, &method, &headers)?;
            let there = dst_dir.entry_type(&dst_name).map_err(|e| io_status(&e))?;
            let mut existed = there != EntryType::Missing;
            if existed && !overwrite {
                return Err(StatusCode::PRECONDITION_FAILED);
            }
            // Replacing a folder deletes its tree: that takes the right to delete
            // there, and never takes wharf's own secrets with it.
            if there == EntryType::Dir && !dest_can_delete {
                return Err(StatusCode::FORBIDDEN);
            }
            if existed
                && up
                    .root
                    .tree_holds_secret(&dst_dir, &dst_name)
                    .map_err(|e| io_status(&e))?
            {
                return Err(StatusCode::FORBIDDEN);
            }
            if moving {
                if up
                    .root
                    .tree_holds_secret(&src_dir, &src_name)
                    .map_err(|e| io_status(&e))?
                {
                    return Err(StatusCode::FORBIDDEN);
                }
                if existed {
                    // What is there is deleted first (RFC 4918 §9.9.3); members
                    // that stay are named as a DELETE names them, and the
                    // source is not moved (§9.8.5: 207 for such a failure).
                    let left = remove_reporting(&dst_dir, &dst_parent, &dst_name)?;
                    if !left.is_empty() {
                        return Ok(Moved::Left(left));
                    }
                }
                src_dir
                    .rename(&src_name, &dst_dir, &dst_name, false)
                    .map_err(|e| io_status(&e))?;
                up.locks.forget_tree(&src);
                dst_dir.sync().map_err(|e| io_status(&e))?;
            } else {
                // Built under a temporary name, then put in place in one step: a
                // copy that fails leaves the destination as it was, and of two
                // copies to one new name without overwriting, one wins.
                let replaced = copy_top(&up.root, &src, &dst_dir, &dst_name, deep, overwrite)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::AlreadyExists => StatusCode::PRECONDITION_FAILED,
                        _ => io_status(&e),
                    })?;
                existed = replaced;
            }
            // What was replaced took its locks with it (RFC 4918 §9.8.4: it is
            // deleted first).
            if existed {
                up.locks.forget_tree(&dst);
            }
            Ok(Moved::Done { existed, folder })
        })
        .await;
    match done {
        Ok(Moved::Done { existed: true, .. }) => empty(StatusCode::NO_CONTENT),
        // Named as what it is: a file copied to `x/` is the file `x`.
        Ok(Moved::Done { folder, .. }) => created(&dest.path, folder),
        Ok(Moved::Left(left)) => members_left(left),
        // A COPY leaves its source as it was: only a lock on the destination
        // stands in its way.
        Err(StatusCode::LOCKED) if moving => {
            up.locks.locked(&[&dest.path, &req.path], &req.head.headers)
        }
        Err(StatusCode::LOCKED) => up.locks.locked(&[&dest.path], &req.head.headers),
        Err(status) => response::error(status),
    }
}

/// 403 when the source and the destination are one file or folder by two names
/// (a symlink), or one holds the other: what the URLs compared before cannot
/// show. Copying a folder into itself would never end, and replacing what is the
/// source, or holds it, would delete it first (RFC 4918 §9.8.5, §9.9.4).
fn same_or_inside(
    root: &Root,
    (src_dir, src_name, src_parent): (&WriteDir, &[u8], &SitePath),
    (dst_dir, dst_name, dst_parent): (&WriteDir, &[u8], &SitePath),
) -> Result<(), StatusCode> {
    let Some((source, source_is_folder)) = src_dir.identity_of(src_name) else {
        return Ok(());
    };
    let target = dst_dir.identity_of(dst_name);
    if target.is_some_and(|(id, _)| id == source) {
        return Err(StatusCode::FORBIDDEN);
    }
    // Each folder from the root down to `parent`, as a write resolves it.
    let holds = |parent: &SitePath, id: (u64, u64)| -> Result<bool, StatusCode> {
        let segments = parent.segments();
        for end in 0..=segments.len() {
            let folder = SitePath::from_segments(segments[..end].to_vec());
            let dir = root.write_dir(&folder, false).map_err(|e| io_status(&e))?;
            if dir.identity().map_err(|e| io_status(&e))? == id {
                return Ok(true);
            }
        }
        Ok(false)
    };
    if source_is_folder && holds(dst_parent, source)? {
        return Err(StatusCode::FORBIDDEN);
    }
    match target {
        Some((id, true)) if holds(src_parent, id)? => Err(StatusCode::FORBIDDEN),
        _ => Ok(()),
    }
}

/// Copies what `src` names (a file, or a folder: its tree when `deep`) to `name` in
/// `to`, built under a temporary name and put in place in one step: whatever is
/// there is replaced when `replace`, else a taken name is `AlreadyExists`. Returns
/// whether something was replaced. The source is resolved as a read is, so a link
/// inside the root is copied as what it names.
fn copy_top(
    root: &Root,
    src: &SitePath,
    to: &WriteDir,
    name: &[u8],
    deep: bool,
    replace: bool,
) -> io::Result<bool> {
    match root.open(src)? {
        Node::File(open) => copy_file(&open.file, to)?.put(name, replace),
        Node::Dir(_) => {
            let from = root.write_dir(src, false)?;
            let staged = to.temp_dir()?;
            let made = staged.open()?;
            props::copy_dead_dir(&from, &made);
            if deep {
                // Every folder from the root down: a link to one of them would
                // hold the copy's own source. One that cannot be opened to be
                // asked is still bounded by the names a folder is copied under.
                let segments = src.segments();
                let mut walk = Walk {
                    ancestors: (0..segments.len())
                        .filter_map(|end| {
                            let folder = SitePath::from_segments(segments[..end].to_vec());
                            root.write_dir(&folder, false).ok()?.identity().ok()
                        })
                        .collect(),
                    names: HashMap::new(),
                };
                walk.ancestors.push(from.identity()?);
                copy_children(root, (&from, src), &made, &mut walk, 1)?;
            }
            staged.put(name, replace)
        }
    }
}

/// How deep a copied tree may go: deeper is refused rather than risk the
/// blocking thread's stack (a tree can only get so deep by a loop this did not
/// foresee).
const MAX_COPY_DEPTH: usize = 256;

/// The folders a tree's copy is inside, and how many names each folder was
/// copied under so far.
struct Walk {
    /// Identities of the folders from the root down to the one being copied.
    ancestors: Vec<(u64, u64)>,
    names: HashMap<(u64, u64), usize>,
}

/// Copies every entry of `from` (the folder at `from_path`, `depth` folders below
/// the copied one, the last of `walk`'s ancestors) into `to`, leaving out reserved
/// names, wharf's secrets and special files. A symlink is copied as what a read of
/// it gives (as PROPFIND lists it and a COPY of it alone copies it): a file's
/// content, a folder's tree. Left out: a link that names nothing a read could
/// open (dangling, withheld, outside the root: a folder always, a file unless
/// `--follow-symlinks` lets reads out), a link to a folder that holds it (a
/// loop), and a folder met under more than [`MAX_NAMES_PER_FOLDER`] names.
fn copy_children(
    root: &Root,
    (from, from_path): (&WriteDir, &SitePath),
    to: &WriteDir,
    walk: &mut Walk,
    depth: usize,
) -> io::Result<()> {
    if depth > MAX_COPY_DEPTH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a folder tree deeper than {MAX_COPY_DEPTH} levels is not copied"),
        ));
    }
    for name in from.names()? {
        if name.starts_with(RESERVED_PREFIX) || root.is_secret(from, &name) {
            continue;
        }
        let sub = match from.entry_type(&name)? {
            EntryType::File => {
                copy_file(&from.open_file(&name)?, to)?.persist(&name, false)?;
                continue;
            }
            EntryType::Dir => from.child(&name)?,
            EntryType::Missing => continue,
            EntryType::Other => match root.open(&from_path.join(&name)) {
                Ok(Node::File(open)) => {
                    copy_file(&open.file, to)?.persist(&name, false)?;
                    continue;
                }
                Ok(Node::Dir(_)) => match root.write_dir(&from_path.join(&name), false) {
                    Ok(sub) => sub,
                    Err(_) => continue,
                },
                Err(_) => continue,
            },
        };
        let identity = sub.identity()?;
        let names = walk.names.entry(identity).or_default();
        if walk.ancestors.contains(&identity) || *names >= MAX_NAMES_PER_FOLDER {
            continue;
        }
        *names += 1;
        to.mkdir(&name)?;
        let made = to.child(&name)?;
        props::copy_dead_dir(&sub, &made);
        walk.ancestors.push(identity);
        let copied = copy_children(root, (&sub, &from_path.join(&name)), &made, walk, depth + 1);
        walk.ancestors.pop();
        copied?;
    }
    Ok(())
}

/// The content and dead properties of `file` in a new temporary file in `to`, to
/// be given its name.
fn copy_file(file: &std::fs::File, to: &WriteDir) -> io::Result<TempFile> {
    let temp = to.temp_file()?;
    let mut reader = file;
    let mut writer: &std::fs::File = temp.file();
    io::copy(&mut reader, &mut writer)?;
    props::copy_dead_file(file, temp.file());
    Ok(temp)
}
