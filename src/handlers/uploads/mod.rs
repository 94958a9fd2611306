//! Changing the served folder: PUT, DELETE, WebDAV (RFC 4918: MKCOL, COPY, MOVE,
//! PROPFIND, PROPPATCH, LOCK, UNLOCK) and, in later modules, form and resumable
//! uploads. The write side of the static handler: the same folder, the same
//! [`Root`], allowed per path by [`Access`].
//!
//! Every change goes through [`crate::fs::write`]: confined like every read, new
//! content in a temporary file in the target's folder, fsynced, renamed into place in
//! one step, removed on any failure. Request bodies stream to disk with back-pressure
//! ([`body`]). All file-system work runs on the blocking pool.

pub mod body;
pub mod dav;
pub mod form;
pub mod locks;
pub mod props;
pub mod put;
pub mod tus;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use crate::fs::{Node, Root};
use crate::handlers::static_files::StaticFiles;
use crate::handlers::{Access, Request};
use crate::http::body::Body;
use crate::http::conditional::{self, Precondition, Validators};
use crate::http::etag::EntityTag;
use crate::http::path::SitePath;
use crate::http::response;

/// What the write side is told at startup.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether dotfile names may be written (`--hidden`).
    pub hidden: bool,
    /// A request body that sends nothing for this long is abandoned.
    pub body_timeout: Duration,
    /// How long an incomplete resumable upload is kept.
    pub upload_expiry: Duration,
}

/// The write side's state, shared by every request.
#[derive(Debug)]
pub struct Uploads {
    root: Arc<Root>,
    /// The read side, whose ETags new files get and whose cache they invalidate.
    files: Arc<StaticFiles>,
    settings: Settings,
    locks: locks::Locks,
    /// Resumable uploads being appended to now: one request at a time each, and
    /// how to ask the one holding the turn to give it up.
    tus_busy: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
    /// Told whenever a resumable upload's turn is given back.
    tus_released: tokio::sync::Notify,
    /// Held by a conditional write from its last check of the preconditions until
    /// its rename, so two writers cannot both pass the same check.
    commit: std::sync::Mutex<()>,
}

/// A resumable upload's turn to be appended to; given back when dropped.
pub(crate) struct TusTurn<'a> {
    up: &'a Uploads,
    id: String,
    /// Told when another request for the same upload waits for the turn.
    wanted: Arc<tokio::sync::Notify>,
}

impl TusTurn<'_> {
    /// Resolves once another request for the upload asks for the turn: a tus
    /// client sends one request per upload at a time, so a new one means the
    /// client started over (its old connection may not be known dead for a
    /// while), and the request holding the turn stops where it is, as tusd's do.
    pub(crate) async fn wanted_elsewhere(&self) {
        self.wanted.notified().await;
    }
}

impl Drop for TusTurn<'_> {
    fn drop(&mut self) {
        self.up
            .tus_busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        self.up.tus_released.notify_waiters();
    }
}

impl Uploads {
    /// The write side of `files`' folder.
    pub fn new(files: Arc<StaticFiles>, settings: Settings) -> Uploads {
        Uploads {
            root: Arc::clone(files.root_handle()),
            files,
            settings,
            locks: locks::Locks::default(),
            tus_busy: Default::default(),
            tus_released: tokio::sync::Notify::new(),
            commit: std::sync::Mutex::new(()),
        }
    }

    /// Answers a changing (or WebDAV) request allowed by `access`.
    pub async fn respond(self: Arc<Self>, access: Access, req: Request<'_>) -> Response<Body> {
        if let Some(status) = name_problem(&req.path) {
            return response::error(status);
        }
        if tus::is_tus(req.head) {
            return tus::respond(self, access, req).await;
        }
        if req.head.headers.contains_key("if") {
            let (path, headers) = (req.path.clone(), req.head.headers.clone());
            match self
                .run(move |up| locks::check_if(up, &path, &headers))
                .await
            {
                Ok(()) => {}
                Err(status) => return response::error(status),
            }
        }
        let method = req.head.method.as_str();
        match method {
            "PUT" => put::put(self, access, req).await,
            "POST" => form::post(self, access, req).await,
            "DELETE" => dav::delete(self, req).await,
            "MKCOL" => dav::mkcol(self, access, req).await,
            "COPY" | "MOVE" => dav::copy_or_move(self, req).await,
            "PROPFIND" => props::propfind(self, req).await,
            "PROPPATCH" => props::proppatch(self, req).await,
            "LOCK" => locks::lock(self, req).await,
            "UNLOCK" => locks::unlock(self, req).await,
            _ => response::method_not_allowed_here(allow(&access), &req.head.method),
        }
    }

    /// The turn to read or append to upload `id`, waiting up to `patience` for a
    /// request that has it (often one whose client has just gone, still writing what
    /// it received), which is asked to stop; `None` if it is not given back in time.
    pub(crate) async fn tus_turn(&self, id: &str, patience: Duration) -> Option<TusTurn<'_>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let released = self.tus_released.notified();
            {
                let mut busy = self.tus_busy.lock().unwrap_or_else(|p| p.into_inner());
                match busy.entry(id.to_string()) {
                    std::collections::hash_map::Entry::Vacant(free) => {
                        let wanted = Arc::clone(free.insert(Arc::default()));
                        return Some(TusTurn {
                            up: self,
                            id: id.to_string(),
                            wanted,
                        });
                    }
                    // Kept as a permit if the holder is not listening yet.
                    std::collections::hash_map::Entry::Occupied(held) => held.get().notify_one(),
                }
            }
            tokio::time::timeout_at(deadline, released).await.ok()?;
        }
    }

    /// What `path` names, opened as a read does: a file named with a trailing `/` is
    /// not found, as GET answers 404 for it, so that no method acts on it either.
    /// Blocks.
    fn open(&self, path: &SitePath) -> io::Result<Node> {
        match self.root.open(path)? {
            Node::File(_) if path.has_trailing_slash() => Err(io::ErrorKind::NotFound.into()),
            node => Ok(node),
        }
    }

    /// Evaluates the request's preconditions (`If-Match`, `If-None-Match`,
    /// `If-Unmodified-Since`: RFC 9110 §13.1) against what `path` names now, as a GET
    /// would describe it, before a change is made to it; `Err(412)` when one fails.
    /// A folder has no validator, so only `If-Match: *` matches it; where nothing is,
    /// only `If-Match` fails (RFC 9110 §13.1.1). Only asked for, the current file's
    /// tag costs a read of it. Blocks.
    fn preconditions(
        &self,
        path: &SitePath,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<(), StatusCode> {
        if !is_conditional(headers) {
            return Ok(());
        }
        let verdict = match self.open(path) {
            Ok(Node::File(open)) => {
                let tag = self.files.etag(&open).map_err(|e| io_status(&e))?;
                let last_modified = open.meta.modified().ok();
                let judge = |etag: &EntityTag| {
                    let validators = Validators {
                        etag: Some(etag),
                        last_modified,
                    };
                    conditional::evaluate(method, headers, validators)
                };
                // The tag of a compressed form that a GET sent names the same
                // content: a client that read it so may write back with it.
                let tags = tag.with_encodings();
                let proceeds = |t: &EntityTag| judge(t) == Precondition::Proceed;
                let proceed = if headers.contains_key(header::IF_NONE_MATCH) {
                    tags.iter().all(proceeds)
                } else {
                    tags.iter().any(proceeds)
                };
                if proceed {
                    Precondition::Proceed
                } else {
                    judge(&tag)
                }
            }
            Ok(Node::Dir(_)) => {
                let validators = Validators {
                    etag: None,
                    last_modified: None,
                };
                conditional::evaluate(method, headers, validators)
            }
            Err(_) if headers.contains_key(header::IF_MATCH) => Precondition::Failed,
            Err(_) => Precondition::Proceed,
        };
        match verdict {
            Precondition::Proceed => Ok(()),
            _ => Err(StatusCode::PRECONDITION_FAILED),
        }
    }

    /// The turn of a conditional write to check its preconditions and commit (on the
    /// blocking pool: the wait is short, a rename).
    fn commit_turn(&self) -> std::sync::MutexGuard<'_, ()> {
        self.commit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `work`, which answers with a status when it cannot go on, on the blocking
    /// pool (a task that died is a 500).
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Uploads) -> Result<T, StatusCode> + Send + 'static,
    ) -> Result<T, StatusCode> {
        self.blocking(work)
            .await
            .unwrap_or(Err(StatusCode::INTERNAL_SERVER_ERROR))
    }

    /// Runs `work` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Uploads) -> T + Send + 'static,
    ) -> io::Result<T> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(&this))
            .await
            .map_err(io::Error::other)
    }
}

/// Whether a write names preconditions (`If-Match`, `If-None-Match`,
/// `If-Unmodified-Since`; a write has no use for the others).
fn is_conditional(headers: &HeaderMap) -> bool {
    [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_UNMODIFIED_SINCE,
    ]
    .iter()
    .any(|h| headers.contains_key(h))
}

/// The methods a path with `access` answers. PATCH is not among them: only a
/// resumable upload's own URL takes it, and says so itself (`tus.rs`).
pub fn allow(access: &Access) -> &'static str {
    match (access.upload, access.delete) {
        (false, false) => "GET, HEAD, OPTIONS",
        (true, false) => {
            "GET, HEAD, OPTIONS, PUT, POST, MKCOL, COPY, PROPFIND, PROPPATCH, LOCK, UNLOCK"
        }
        (false, true) => "GET, HEAD, OPTIONS, DELETE, PROPFIND",
        (true, true) => {
            "GET, HEAD, OPTIONS, PUT, POST, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK"
        }
    }
}

/// Whether a path with `access` answers the request `head` starts (reads are the
/// read side's).
pub fn allows(access: &Access, head: &Parts) -> bool {
    if tus::is_tus(head) {
        return tus::allows(access, head);
    }
    match head.method.as_str() {
        "PUT" | "POST" | "MKCOL" | "COPY" | "PROPPATCH" | "LOCK" | "UNLOCK" => access.upload,
        // The source side of a move is a delete; its destination is checked too.
        "DELETE" | "MOVE" => access.delete,
        "PROPFIND" => access.writes(),
        _ => false,
    }
}

/// Whether the body of the request `head` starts is read (the others' are disposed
/// of).
pub fn reads_body(_access: &Access, head: &Parts) -> bool {
    if tus::is_tus(head) {
        return matches!(head.method, Method::POST | Method::PATCH);
    }
    matches!(
        head.method.as_str(),
        "PUT" | "POST" | "MKCOL" | "PROPFIND" | "PROPPATCH" | "LOCK"
    )
}

/// Whether `method` is one of WebDAV's (RFC 4918).
pub fn is_dav_method(method: &Method) -> bool {
    matches!(
        method.as_str(),
        "PROPFIND" | "PROPPATCH" | "MKCOL" | "COPY" | "MOVE" | "LOCK" | "UNLOCK"
    )
}

/// Whether `method` changes what is under its path.
pub fn changes(method: &Method) -> bool {
    matches!(
        method.as_str(),
        "PUT"
            | "POST"
            | "PATCH"
            | "DELETE"
            | "MKCOL"
            | "COPY"
            | "MOVE"
            | "PROPPATCH"
            | "LOCK"
            | "UNLOCK"
    )
}

/// `OPTIONS` for the request `head` to a path with `access`: `Allow`, and
/// `DAV: 1, 2` where WebDAV is on (so file managers offer to mount it). A resumable
/// upload's own URL lists what it answers, PATCH among them.
pub fn options(access: &Access, head: &Parts) -> Response<Body> {
    let allowed = if access.upload && tus::upload_id(head).is_some() {
        tus::UPLOAD_ALLOWS
    } else {
        allow(access)
    };
    let mut res = response::options(allowed);
    if access.writes() {
        res.headers_mut()
            .insert("dav", HeaderValue::from_static("1, 2"));
        res.headers_mut()
            .insert("ms-author-via", HeaderValue::from_static("DAV"));
    }
    if access.upload {
        tus::advertise(access, res.headers_mut());
    }
    res
}

/// The longest file name, in bytes, that Linux file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Whether a file name holds control characters: C0, DEL or C1 (U+0080–U+009F,
/// where U+009B is a one-character CSI to some terminals). A `/` or NUL inside a
/// name is refused when the path is parsed.
pub(crate) fn has_control(name: &[u8]) -> bool {
    String::from_utf8_lossy(name).chars().any(char::is_control)
}

/// The refusal of a path no file may be given: a name with control characters
/// (400), or longer than a file system takes (414, as nginx answers).
pub(crate) fn name_problem(path: &SitePath) -> Option<StatusCode> {
    let segments = path.segments();
    if segments.iter().any(|s| s.len() > NAME_MAX) {
        return Some(StatusCode::URI_TOO_LONG);
    }
    segments
        .iter()
        .any(|s| has_control(s))
        .then_some(StatusCode::BAD_REQUEST)
}

/// The status for a failed change.
fn io_status(err: &io::Error) -> StatusCode {
    match err.kind() {
        io::ErrorKind::NotFound => StatusCode::NOT_FOUND,
        io::ErrorKind::NotADirectory
        | io::ErrorKind::IsADirectory
        | io::ErrorKind::DirectoryNotEmpty => StatusCode::CONFLICT,
        io::ErrorKind::AlreadyExists => StatusCode::PRECONDITION_FAILED,
        io::ErrorKind::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            StatusCode::FORBIDDEN
        }
        _ => {
            tracing::error!("file system error while writing: {err}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// A response with no body.
fn empty(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = status;
    res
}

/// `201 Created` for a new resource at `path` (a folder when `dir`).
fn created(path: &SitePath, dir: bool) -> Response<Body> {
    let mut res = empty(StatusCode::CREATED);
    if let Ok(location) = HeaderValue::from_str(&path.to_url(dir)) {
        res.headers_mut().insert(header::LOCATION, location);
    }
    res
}

/// The declared length of the request body, if any.
fn declared_length(head: &Parts) -> Option<u64> {
    crate::http::request_body::declared_length(&head.headers)
}

/// Whether the request has a body (announced by length or chunked).
fn has_body(head: &Parts) -> bool {
    declared_length(head).is_some_and(|n| n > 0)
        || head.headers.contains_key(header::TRANSFER_ENCODING)
}
