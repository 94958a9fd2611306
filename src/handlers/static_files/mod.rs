//! The static handler: a file, a directory's index file, a redirect to the
//! directory's canonical URL, or a listing.
//!
//! A request is first offered to the hot cache ([`cache`]), which answers on the
//! async worker after one non-blocking system call (a read of the inotify queue, or an
//! `fstatat`). Otherwise all file-system work for the request
//! happens in one trip to the blocking pool (open, fstat, index lookup, ETag, choice of
//! encoding, sidecar lookup, compression on a variant-cache miss, the read of files up
//! to 1 MiB, listing and rendering), so the async workers never wait on the disk or on
//! CPU-heavy work; what that trip learned is then put in the hot cache.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header;
use http::request::Parts;
use http::{Response, StatusCode};

pub mod archive;
pub mod assets;
pub mod cache;
pub mod compress;
pub mod etag_cache;
pub mod folder_watch;
pub mod inflight;
pub mod listing;
pub mod qr;

use http::Method;

use crate::fs::{FileState, Node, OpenFile, Root};
use crate::handlers::{ReadPolicy, Request};
use crate::http::body::Body;
use crate::http::mime;
use crate::http::negotiate::{self, Encoding};
use crate::http::path::SitePath;
use crate::http::representation::{self, Content, Representation};
use crate::http::response;
use archive::Archive;
use cache::{FileFill, Found, HotCache, Learned, PageFill, CACHEABLE_FILE};
use compress::VariantCache;
use etag_cache::EtagCache;
use inflight::InFlight;
use listing::{Format, Listing, Offers};

/// Methods the static handler answers.
pub const ALLOW: &str = "GET, HEAD, OPTIONS";

/// Whether the static handler answers `method`.
pub fn allows(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// ETags remembered; each entry is about 100 bytes.
const ETAG_CACHE_ENTRIES: usize = 64 * 1024;

/// What the static handler is told at startup.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether dotfiles are listed (they are served or refused by [`SitePath`]).
    pub hidden: bool,
    /// No on-the-fly compression.
    pub no_compress: bool,
    /// Bytes of ready responses kept in memory.
    pub cache_size: usize,
    /// Bytes of compressed variants kept in memory.
    pub compress_cache_size: usize,
}

/// The static handler's state, shared by every request.
#[derive(Debug)]
pub struct StaticFiles {
    /// The served folder.
    root: Arc<Root>,
    settings: Settings,
    /// Content hashes of files, for ETags.
    etags: EtagCache,
    /// Responses compressed on the fly.
    variants: VariantCache,
    /// Ready responses for recently requested paths.
    cache: HotCache,
    /// Cache misses under way, one per path.
    inflight: InFlight,
}

/// How often a request is resolved again when its file changes while being read.
const CHANGED_RETRIES: usize = 3;

/// Names tried, in order, when a directory is requested.
const INDEX_FILES: [&[u8]; 2] = [b"index.html", b"index.htm"];

/// Whether `path` names a page of its own: a file, or a folder with an index file
/// (never a folder's listing, whose links are relative to the folder and lead
/// nowhere from another URL: what an error page must not be).
pub fn is_page(root: &Root, path: &SitePath) -> bool {
    match root.open(path) {
        Ok(Node::File(_)) => true,
        Ok(Node::Dir(_)) => INDEX_FILES
            .iter()
            .any(|index| matches!(root.open(&path.join(index)), Ok(Node::File(_)))),
        Err(_) => false,
    }
}

enum Resolved {
    /// The representation chosen for the client, and what to cache about the file.
    File(Box<Representation>, Box<FileFill>),
    /// A file exists, but in no encoding the client accepts.
    NotAcceptable,
    /// The directory exists; its canonical URL ends in `/`.
    AddSlash(SitePath),
    /// A listing rendered whole, in the representation chosen for the client, and
    /// what to cache about it.
    Page(Box<Representation>, Box<PageFill>),
    /// A listing too large to render whole: streamed in this coding.
    Stream(Listing, Encoding),
    /// The folder as an archive, walked.
    Archive(Box<Archive>),
    /// A query the folder does not understand.
    BadQuery,
}

impl StaticFiles {
    /// The handler serving `root`.
    pub fn new(root: Arc<Root>, settings: Settings) -> StaticFiles {
        StaticFiles {
            root,
            etags: EtagCache::new(ETAG_CACHE_ENTRIES),
            variants: VariantCache::new(settings.compress_cache_size),
            cache: HotCache::new(settings.cache_size),
            inflight: InFlight::default(),
            settings,
        }
    }

    /// The served folder.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Whether dotfiles are served (`--hidden`).
    pub fn hidden(&self) -> bool {
        self.settings.hidden
    }

    /// The served folder, to share with the write side.
    pub fn root_handle(&self) -> &Arc<Root> {
        &self.root
    }

    /// The ETag of the file `open` (its content hash, read once per change, unless
    /// it is large). Blocks.
    pub fn etag(&self, open: &OpenFile) -> io::Result<crate::http::etag::EntityTag> {
        self.etags.tag(&open.file, &open.meta, None)
    }

    /// [`StaticFiles::etag`] when it costs no reading: known already, or of a file
    /// of at most `small` bytes; else `None`.
    pub fn etag_if_cheap(
        &self,
        open: &OpenFile,
        small: u64,
    ) -> Option<crate::http::etag::EntityTag> {
        self.etags.known(&open.meta).or_else(|| {
            (open.meta.len() <= small)
                .then(|| self.etag(open).ok())
                .flatten()
        })
    }

    /// Records `content_tag` as the ETag of the file whose state `meta` describes (a
    /// file just written, whose hash was taken as it arrived); the tag GET will send
    /// for it.
    pub fn remember_etag(
        &self,
        meta: &std::fs::Metadata,
        content_tag: crate::http::etag::EntityTag,
    ) -> crate::http::etag::EntityTag {
        self.etags.remember(meta, content_tag)
    }

    /// The answer the hot cache holds for `key` (the raw request path, or what a rule
    /// rewrote it to), revalidated; `None` on a miss. Never blocks beyond a read of
    /// the inotify queue or an `fstatat`, so it may run on an async worker.
    pub fn from_cache(&self, req: &Parts, key: &str) -> Option<Response<Body>> {
        let found = self.lookup(req, key);
        let outcome = if found.is_some() {
            crate::metrics::Lookup::Hit
        } else {
            crate::metrics::Lookup::Miss
        };
        crate::metrics::metrics().hot_cache(outcome);
        found
    }

    /// [`StaticFiles::from_cache`] without counting: for a request already counted
    /// as a miss that looks again after waiting for another one's work.
    fn lookup(&self, req: &Parts, key: &str) -> Option<Response<Body>> {
        if !View::of(req).is_plain() {
            return None;
        }
        let encodings = negotiate::encoding_preferences(&req.headers);
        self.cache
            .respond(&self.root, key, req, &encodings, || listing_format(req))
    }

    /// The full path, after a cache miss: everything that touches the disk happens in
    /// one blocking task, and what it learned fills the cache. The request body, if
    /// any, is not wanted: it is dropped unread.
    /// `offers` says which controls a listing page shows (what the site lets this
    /// path's visitors change); `None` when the caller does not know, in which case a
    /// listing shows none and is not cached (the cache must hold the path's own).
    pub async fn serve_uncached(
        self: Arc<Self>,
        req: Request<'_>,
        offers: Option<Offers>,
    ) -> Response<Body> {
        let Request {
            head,
            path,
            target,
            readable,
            ..
        } = req;
        // A folder asked for by a loose spelling (`/sub//`, `/a/./sub/`) goes to its
        // own URL first: its page's relative links (the parent's `../`) are meant
        // from there. Not after a rewrite, nor for a file an app handed back, whose
        // paths the client never named.
        let clients_own = target == head.uri.path()
            && head
                .extensions
                .get::<crate::handlers::HandedBack>()
                .is_none();
        if path.has_trailing_slash() && clients_own && is_loose(target) && self.is_dir(&path).await
        {
            let mut location = path.to_url(true);
            if let Some(query) = head.uri.query().filter(|q| !q.is_empty()) {
                location.push('?');
                location.push_str(query);
            }
            return response::moved_permanently(&location);
        }
        self.serve_path(head, path, target, readable, offers).await
    }

    /// Whether `path` is a folder (a file's `/file.txt/.` is a 404, not a redirect
    /// to a URL that is one).
    async fn is_dir(self: &Arc<Self>, path: &SitePath) -> bool {
        let (files, path) = (Arc::clone(self), path.clone());
        tokio::task::spawn_blocking(move || matches!(files.root.open(&path), Ok(Node::Dir(_))))
            .await
            .unwrap_or(false)
    }
}

/// Whether a request path has empty or dot segments inside it (`//`, `/./`, `/../`,
/// encoded dots too), which its canonical spelling does not.
fn is_loose(raw: &str) -> bool {
    let inner = raw.strip_prefix('/').unwrap_or(raw);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    !inner.is_empty()
        && inner.split('/').any(|segment| {
            let decoded: Vec<u8> = percent_encoding::percent_decode_str(segment).collect();
            matches!(decoded.as_slice(), b"" | b"." | b"..")
        })
        || raw.starts_with("//")
}

/// What the query asks of a folder: the listing in some order, or an archive. Only
/// the plain listing is cached; the query is ignored for files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    ask: archive::Ask,
    order: listing::Order,
    /// One of the listing page's own files (`?wharf=listing.js`), asked of a folder.
    asset: Option<assets::Asset>,
}

impl View {
    fn of(req: &Parts) -> View {
        // Archives are for GET and HEAD; other methods see the folder as usual.
        let ask = if matches!(req.method, Method::GET | Method::HEAD) {
            archive::asked(req)
        } else {
            archive::Ask::Listing
        };
        View {
            ask,
            order: listing::Order::of(req),
            asset: assets::asked(req),
        }
    }

    /// The view the hot cache holds.
    fn is_plain(&self) -> bool {
        self.ask == archive::Ask::Listing
            && self.order == listing::Order::default()
            && self.asset.is_none()
    }
}

fn listing_format(req: &Parts) -> Format {
    if negotiate::prefers_json(&req.headers) {
        Format::Json
    } else {
        Format::Html
    }
}

impl StaticFiles {
    async fn serve_path(
        self: Arc<Self>,
        req: &Parts,
        path: SitePath,
        key: &str,
        readable: Option<ReadPolicy>,
        offers: Option<Offers>,
    ) -> Response<Body> {
        let files = self;
        let cache_listing = offers.is_some();
        let offers = offers.unwrap_or_default();
        let view = View::of(req);
        if let Some(asset) = view.asset.filter(|_| path.has_trailing_slash()) {
            // Below a folder that exists, as the page that asks for them is.
            if !matches!(files.root.open(&path), Ok(crate::fs::Node::Dir(_))) {
                return response::error(StatusCode::NOT_FOUND);
            }
            return assets::respond(req, asset, &path);
        }
        // One miss per path at a time; a request that waited finds the first one's work
        // in the cache. The turn is held until the cache is filled, at the end.
        let mut turn = files.inflight.enter(key);
        if view.is_plain() && turn.wait().await {
            if let Some(res) = files.lookup(req, key) {
                return res;
            }
        }
        let encodings = negotiate::encoding_preferences(&req.headers);
        let format = listing_format(req);
        let resolver = Arc::clone(&files);
        let resolved = tokio::task::spawn_blocking(move || {
            // A file that shrinks between its fstat and its read is being rewritten: look
            // again rather than fail, a few times.
            let mut attempt = 0;
            loop {
                match resolve(
                    &resolver,
                    path.clone(),
                    &encodings,
                    format,
                    view,
                    readable.as_ref(),
                    offers,
                ) {
                    Err(e)
                        if e.kind() == io::ErrorKind::UnexpectedEof
                            && attempt < CHANGED_RETRIES =>
                    {
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
        .await
        .unwrap_or_else(|join| Err(io::Error::other(join)));
        match resolved {
            Ok(Resolved::File(rep, fill)) => {
                let res = representation::respond(req, *rep);
                files.cache.fill_file(key, *fill);
                res
            }
            Ok(Resolved::NotAcceptable) => {
                // Whatever the file's type, this answer came from Accept-Encoding.
                let mut res = response::error(StatusCode::NOT_ACCEPTABLE);
                res.headers_mut().insert(
                    header::VARY,
                    header::HeaderValue::from_static("Accept-Encoding"),
                );
                res
            }
            Ok(Resolved::AddSlash(path)) => {
                let mut location = path.to_url(true);
                // An empty query (`/dir?`) is no query, as CPython and nginx take it.
                if let Some(query) = req.uri.query().filter(|q| !q.is_empty()) {
                    location.push('?');
                    location.push_str(query);
                }
                response::moved_permanently(&location)
            }
            Ok(Resolved::Page(rep, fill)) => {
                let res = listing::respond(req, *rep);
                if view.is_plain() && cache_listing {
                    files.cache.fill_listing(key, *fill);
                }
                res
            }
            Ok(Resolved::Archive(archive)) => archive.into_response(Arc::clone(&files.root), req),
            Ok(Resolved::BadQuery) => response::error(StatusCode::BAD_REQUEST),
            Ok(Resolved::Stream(listing, encoding)) => {
                listing.into_streamed_response(req, encoding)
            }
            Err(err) => io_error(&err),
        }
    }
}

fn resolve(
    files: &StaticFiles,
    path: SitePath,
    encodings: &[Encoding],
    format: Format,
    view: View,
    readable: Option<&ReadPolicy>,
    offers: Offers,
) -> io::Result<Resolved> {
    let root = &files.root;
    match root.open(&path)? {
        // `/file.txt/` names a directory that does not exist.
        Node::File(_) if path.has_trailing_slash() => Err(io::ErrorKind::NotFound.into()),
        Node::File(open) => represent(files, &path, open, encodings, None),
        Node::Dir(_) if !path.has_trailing_slash() => Ok(Resolved::AddSlash(path)),
        Node::Dir(dir) => {
            let dir_state = (c_path(&path), FileState::of(&dir.meta));
            for index in INDEX_FILES {
                let index_path = path.join(index);
                match root.open(&index_path) {
                    // Cached with the directory's state too: another index file
                    // appearing changes it.
                    Ok(Node::File(open)) => {
                        return represent(files, &index_path, open, encodings, Some(dir_state));
                    }
                    // A directory called index.html is not an index.
                    Ok(Node::Dir(_)) => {}
                    // One that is there but cannot be served (unreadable, a symlink
                    // out of the root) still keeps the folder's contents off show,
                    // as nginx answers 403; a symlink to nothing is no index, as
                    // nginx and CPython go on past an index that is not found.
                    Err(_) if dir.holds_non_dir(index) => {
                        return Err(io::ErrorKind::PermissionDenied.into());
                    }
                    Err(_) => {}
                }
            }
            // Archives of folders that would be listed, not of those with an index
            // page, whose contents are not on show.
            match view.ask {
                archive::Ask::Archive(method) => {
                    let walked =
                        Archive::walk(root, &path, files.settings.hidden, readable, method)?;
                    return Ok(Resolved::Archive(Box::new(walked)));
                }
                archive::Ask::Unknown => return Ok(Resolved::BadQuery),
                archive::Ask::Listing => {}
            }
            let state = dir_state.1;
            let dir_modified = dir.meta.modified().ok();
            // Watched from before it is read: no change after the reading is missed.
            let mark = files.cache.watch_folder(&dir);
            let mut entries = root.list(dir, &path)?;
            if !files.settings.hidden {
                entries.retain(|e| !e.name.starts_with(b"."));
            }
            view.order.sort(&mut entries);
            let dir_path = dir_state.0;
            let listing = Listing::new(path, entries, format, dir_modified, view.order, offers);
            if !listing.fits_in_memory() {
                // Compressed as it streams, in the client's first choice.
                let encoding = encodings
                    .iter()
                    .copied()
                    .find(|&e| e == Encoding::Identity || !files.settings.no_compress);
                return Ok(match encoding {
                    Some(encoding) => Resolved::Stream(listing, encoding),
                    None => Resolved::NotAcceptable,
                });
            }
            let identity = listing.page_representation(listing.render_page());
            let mut fill = PageFill {
                dir: dir_path,
                state,
                mark,
                format,
                identity: identity.clone(),
                learned: Vec::new(),
            };
            match on_the_fly(files, &identity, true, encodings, &mut fill.learned)? {
                Some(rep) => Ok(Resolved::Page(Box::new(rep), Box::new(fill))),
                None => Ok(Resolved::NotAcceptable),
            }
        }
    }
}

/// `path` relative to the root, as a C string for `fstatat` (`.` for the root).
fn c_path(path: &SitePath) -> CString {
    let rel = path.relative_fs_path();
    let bytes = if rel.as_os_str().is_empty() {
        b".".to_vec()
    } else {
        rel.as_os_str().as_bytes().to_vec()
    };
    // SitePath segments never contain NUL.
    CString::new(bytes).unwrap_or_default()
}

/// Reads a whole file when it is small enough to keep in memory.
fn read_small(open: &OpenFile) -> io::Result<Option<Bytes>> {
    let len = open.meta.len();
    if len > CACHEABLE_FILE {
        return Ok(None);
    }
    let mut buf = vec![0u8; len as usize];
    open.file.read_exact_at(&mut buf, 0)?;
    Ok(Some(Bytes::from(buf)))
}

/// Chooses the representation of the file at `path` for a client accepting
/// `encodings` (best first): a precompressed sidecar (`app.js.br`, `.zst`, `.gz`) for
/// the first coding preferred to identity that has one; else the first coding that
/// can be compressed on the fly (cached); identity when it comes first or nothing
/// better exists.
fn represent(
    files: &StaticFiles,
    path: &SitePath,
    open: OpenFile,
    encodings: &[Encoding],
    index_of: Option<(CString, FileState)>,
) -> io::Result<Resolved> {
    let len = open.meta.len();
    let modified = open.meta.modified().ok();
    let file_path = c_path(path);
    let state = FileState::of(&open.meta);
    // Watched before it is read, so that no change after the reading goes unreported;
    // and only if the folder whose index it is did not change before that.
    let watch = (len <= CACHEABLE_FILE)
        .then(|| {
            files
                .cache
                .watch_file(&files.root, path, &file_path, &open.file, state)
        })
        .flatten()
        .filter(|_| {
            index_of
                .as_ref()
                .is_none_or(|(dir, was)| files.root.state_of(dir) == Some(*was))
        });
    let small = read_small(&open)?;
    let content_type = mime::content_type(path.file_name().unwrap_or_default());
    let negotiated = compress::is_compressible(&content_type);
    // Taken before any sidecar is looked for, so that a sidecar created from here on
    // changes the directory after this snapshot and the cache notices it.
    let dir = negotiated.then(|| parent_dir(&file_path)).and_then(|dir| {
        let state = files.root.state_of(&dir)?;
        Some((dir, state))
    });
    let etag = files.etags.tag(&open.file, &open.meta, small.as_deref())?;
    // Which coding is sent depends on Accept-Encoding for every file a client that
    // refuses identity is sent compressed (`refused_identity`), an image too: a
    // shared cache must not give its plain copy to such a client.
    let varies = negotiated || refusal_answered(files, len);
    let identity = Representation {
        content: small.map_or_else(|| Content::File(Arc::new(open.file)), Content::Bytes),
        len,
        content_type,
        etag: Some(etag.clone()),
        last_modified: last_modified(&open.meta),
        encoding: None,
        negotiated: varies,
    };
    let mut fill = FileFill {
        index_of,
        dir,
        path: file_path,
        state,
        negotiated,
        watch,
        outdated: Vec::new(),
        identity: identity.clone(),
        learned: Vec::new(),
    };
    let chosen =
        |rep: Representation, fill: FileFill| Ok(Resolved::File(Box::new(rep), Box::new(fill)));
    // A sidecar for any coding the client prefers to identity comes first: the site
    // shipped it (often more tightly compressed than on the fly), and it costs no CPU.
    let sidecar_turn = encodings.iter().take_while(|&&e| e != Encoding::Identity);
    for &encoding in sidecar_turn.filter(|_| negotiated) {
        let sidecar_path = path.with_suffix(sidecar_suffix(encoding));
        // A sidecar older than its file was made from an earlier version of it:
        // sending it would give compressing clients other content than the rest.
        let current = |sidecar: &OpenFile| match (sidecar.meta.modified().ok(), modified) {
            (Some(made), Some(changed)) => made >= changed,
            _ => true,
        };
        if let Ok(Node::File(sidecar)) = files.root.open(&sidecar_path) {
            if !current(&sidecar) {
                let source = (c_path(&sidecar_path), FileState::of(&sidecar.meta));
                fill.outdated.push(source);
                fill.learned.push((encoding, Found::NoSidecar));
                continue;
            }
            let content = read_small(&sidecar)?;
            let tag = files
                .etags
                .tag(&sidecar.file, &sidecar.meta, content.as_deref())?;
            let rep = Representation {
                len: sidecar.meta.len(),
                content: content
                    .map_or_else(|| Content::File(Arc::new(sidecar.file)), Content::Bytes),
                etag: Some(tag),
                // The sidecar is the representation sent: its own modification time.
                last_modified: last_modified(&sidecar.meta),
                encoding: Some(encoding.token()),
                ..identity
            };
            let source = (c_path(&sidecar_path), FileState::of(&sidecar.meta));
            fill.learned
                .push((encoding, Found::Sidecar(rep.clone(), source)));
            return chosen(rep, fill);
        }
        fill.learned.push((encoding, Found::NoSidecar));
    }
    match on_the_fly(files, &identity, negotiated, encodings, &mut fill.learned)? {
        Some(rep) => chosen(rep, fill),
        None => Ok(Resolved::NotAcceptable),
    }
}

/// Whether a client refusing identity gets a file of `len` bytes compressed
/// whatever its type, rather than 406 (see [`refused_identity`]).
fn refusal_answered(files: &StaticFiles, len: u64) -> bool {
    !files.settings.no_compress && len <= compress::MAX_SIZE
}

/// The first of `encodings` that can be had from `identity` without a sidecar:
/// identity itself, or a variant compressed on the fly (kept in the variant cache
/// under the identity's tag) when its type is `compressible`; `None` when none can.
/// What was found for each coding looked at is added to `learned`, for the hot
/// cache.
fn on_the_fly(
    files: &StaticFiles,
    identity: &Representation,
    compressible: bool,
    encodings: &[Encoding],
    learned: &mut Vec<Learned>,
) -> io::Result<Option<Representation>> {
    let len = identity.len;
    for &encoding in encodings {
        if encoding == Encoding::Identity {
            return Ok(Some(identity.clone()));
        }
        let Some(etag) = identity.etag.as_ref().filter(|_| compressible) else {
            continue;
        };
        if files.settings.no_compress || !(compress::MIN_SIZE..=compress::MAX_SIZE).contains(&len) {
            learned.push((encoding, Found::Unavailable));
            continue;
        }
        let variant = files
            .variants
            .get_or_encode(etag, encoding, || match &identity.content {
                Content::Bytes(bytes) => Ok(bytes.clone()),
                Content::File(file) => read_tagged(files, file, len, etag),
            })?;
        match variant {
            Some(bytes) => {
                let rep = Representation {
                    len: bytes.len() as u64,
                    content: Content::Bytes(bytes),
                    etag: Some(etag.for_encoding(encoding.token())),
                    encoding: Some(encoding.token()),
                    ..identity.clone()
                };
                learned.push((encoding, Found::Derived(rep.clone())));
                return Ok(Some(rep));
            }
            None => learned.push((encoding, Found::Unavailable)),
        }
    }
    refused_identity(files, identity, encodings)
}

/// For a client that refuses identity, its first choice of coding even where wharf
/// would not compress (a small file, an image): a 406 is for when no acceptable
/// coding is available (RFC 9110 §12.5.3). Made for each such request, never kept:
/// only such clients ask for it, and the hot cache keeps what others are sent.
fn refused_identity(
    files: &StaticFiles,
    identity: &Representation,
    encodings: &[Encoding],
) -> io::Result<Option<Representation>> {
    let (Some(&encoding), Some(etag)) = (encodings.first(), identity.etag.as_ref()) else {
        return Ok(None);
    };
    let len = identity.len;
    if encoding == Encoding::Identity
        || encodings.contains(&Encoding::Identity)
        || !refusal_answered(files, len)
    {
        return Ok(None);
    }
    let data = match &identity.content {
        Content::Bytes(bytes) => bytes.clone(),
        Content::File(file) => read_tagged(files, file, len, etag)?,
    };
    let bytes = Bytes::from(compress::encode(&data, encoding)?);
    Ok(Some(Representation {
        len: bytes.len() as u64,
        content: Content::Bytes(bytes),
        etag: Some(etag.for_encoding(encoding.token())),
        encoding: Some(encoding.token()),
        negotiated: true,
        ..identity.clone()
    }))
}

/// The whole of a file not held in memory, read to be compressed: the content its
/// tag (a hash of the content, for every file small enough to compress) names. A
/// file rewritten in place while it is read gives a mix of two versions, which must
/// be neither sent nor kept under the tag of one; that is an `UnexpectedEof` error,
/// on which the request is resolved again. The tag is forgotten too, in case it was
/// the one taken from a mix.
fn read_tagged(
    files: &StaticFiles,
    file: &std::fs::File,
    len: u64,
    etag: &crate::http::etag::EntityTag,
) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0)?;
    if crate::http::etag::EntityTag::of_content(&buf) != *etag {
        files.etags.forget(etag);
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file changed while it was read",
        ));
    }
    Ok(Bytes::from(buf))
}

/// A file's modification time as a Last-Modified value: never later than now (RFC 9110
/// §8.8.2.1 forbids a Last-Modified after the response's Date; a file stamped in the
/// future gets the time its representation was built, i.e. when it was cached, or
/// each request for files too large to cache).
fn last_modified(meta: &std::fs::Metadata) -> Option<SystemTime> {
    meta.modified().ok().map(|m| m.min(SystemTime::now()))
}

/// The directory holding the file at `path` (relative to the root).
fn parent_dir(path: &CString) -> CString {
    let bytes = path.as_bytes();
    match bytes.iter().rposition(|&b| b == b'/') {
        // A prefix of a CString holds no NUL.
        Some(slash) => CString::new(&bytes[..slash]).unwrap_or_default(),
        None => c".".to_owned(),
    }
}

fn sidecar_suffix(encoding: Encoding) -> &'static [u8] {
    match encoding {
        Encoding::Brotli => b".br",
        Encoding::Zstd => b".zst",
        Encoding::Gzip => b".gz",
        Encoding::Identity => b"",
    }
}

/// The status for a file-system error: missing → 404, unreadable → 403, still
/// changing after retries → 503 (try again), else 500.
fn io_error(err: &io::Error) -> Response<Body> {
    match err.kind() {
        io::ErrorKind::NotFound => response::error(StatusCode::NOT_FOUND),
        io::ErrorKind::PermissionDenied => response::error(StatusCode::FORBIDDEN),
        io::ErrorKind::UnexpectedEof => {
            let mut res = response::error(StatusCode::SERVICE_UNAVAILABLE);
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            res
        }
        _ => {
            tracing::error!("file system error: {err}");
            response::error(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}
