//! A folder as a ZIP archive (`?zip`, or `?zip=deflate`), streamed as it is read.
//!
//! Only a folder that would be listed is archived (one with an index file serves
//! that instead), only for GET and HEAD. The folder is walked first (names, sizes
//! and states only; no file is read), through the one resolver and with the
//! listing's own filters: dotfiles only with `--hidden`, wharf's secrets never,
//! symlinks as serving treats them, each path only if the site's rules would let
//! this client read it as a plain file, and subfolders that cannot be read left
//! out. From that walk a stored archive's exact length and layout follow
//! ([`zip::stored_layout`]), so it is sent with `Content-Length`, a strong ETag made
//! of what was walked (every file's state, inode and change time included), and
//! `Range` support: a download manager can resume a large folder. The walk's list is
//! held in memory (about a hundred bytes per entry, at most [`MAX_MEMBERS`] and
//! [`MAX_WALK_BYTES`]); the
//! bytes are produced on the blocking pool into a bounded channel, one file at a
//! time, so whatever the files' sizes the memory per download stays small. At most
//! [`MAX_ARCHIVES`] are produced at once (then 503), since each holds a blocking
//! thread for as long as its client takes. The CRC-32 of every file sent is kept
//! (by file state, bounded), so a resumed download does not read again what came
//! before its range. A file that changes while it is being archived breaks the
//! response off rather than send bytes the length and ETag did not promise.
//! `?zip=deflate` compresses each member and is streamed without a length.

pub mod zip;

use std::collections::{HashMap, HashSet};
use std::io::{self, Write as _};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method as HttpMethod, Response, StatusCode};
use tokio::sync::mpsc;

use crate::fs::{Entry, EntryKind, FileState, Node, Root};
use crate::handlers::ReadPolicy;
use crate::http::body::Body;
use crate::http::conditional::{self, Precondition, Validators};
use crate::http::etag::EntityTag;
use crate::http::path::SitePath;
use crate::http::range::{self, RangeRequest};
use crate::http::response;
use zip::{Member, Method, Written};

/// Members one archive may hold: beyond this the walk itself would hold too much.
const MAX_MEMBERS: usize = 1_000_000;
/// Bytes the walk's list may hold: each member keeps its path and its name, which
/// grow with its depth, so a deep tree costs the square of its depth (2,000 nested
/// folders would hold over 100 MB) where a wide one costs a hundred bytes a member.
const MAX_WALK_BYTES: usize = 64 * 1024 * 1024;
/// Archives produced at once, process-wide.
const MAX_ARCHIVES: usize = 16;
/// CRC-32s remembered, by file state (about 60 bytes each).
const CRC_ENTRIES: usize = 200_000;
/// Bytes read from a file at a time, and roughly the size of each chunk sent.
const CHUNK: usize = 256 * 1024;
/// Chunks that may wait in the channel for a slow client.
const CHANNEL_DEPTH: usize = 4;

/// What a request's query asks of a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The listing (no `zip` parameter).
    Listing,
    /// The folder as an archive, members stored or deflated.
    Archive(Method),
    /// A `zip` value wharf does not know (400).
    Unknown,
}

/// What the query of `req` asks for: `?zip` (or `zip=stored`) is a stored archive,
/// `zip=deflate` a deflated one.
pub fn asked(req: &Parts) -> Ask {
    let Some(query) = req.uri.query() else {
        return Ask::Listing;
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "zip" {
            return match value {
                "" | "stored" | "store" => Ask::Archive(Method::Stored),
                "deflate" | "deflated" => Ask::Archive(Method::Deflated),
                _ => Ask::Unknown,
            };
        }
    }
    Ask::Listing
}

/// A walked file or folder: where it is, and what the archive calls it.
#[derive(Debug)]
struct Source {
    path: SitePath,
    member: Member,
    /// The file's state when walked (`None` for folders).
    state: Option<FileState>,
}

impl Source {
    /// About what this member holds in memory: its path's segments (each its own
    /// allocation, which the allocator rounds up to at least 32 bytes) and its name.
    fn held(&self) -> usize {
        let segments = self.path.segments();
        std::mem::size_of::<Source>()
            + std::mem::size_of_val(segments)
            + segments.iter().map(|s| s.len().max(16) + 16).sum::<usize>()
            + self.member.name.len()
    }
}

/// A folder walked for archiving.
#[derive(Debug)]
pub struct Archive {
    sources: Vec<Source>,
    method: Method,
    /// The archive's file name (the folder's name, or `root`, plus `.zip`).
    name: String,
    etag: EntityTag,
    last_modified: Option<SystemTime>,
    /// The exact length of a stored archive.
    total: Option<u64>,
}

impl Archive {
    /// Walks the folder at `dir` (a directory path). Blocks.
    pub fn walk(
        root: &Root,
        dir: &SitePath,
        hidden: bool,
        readable: Option<&ReadPolicy>,
        method: Method,
    ) -> io::Result<Archive> {
        let mut sources = Vec::new();
        // How many names each folder was archived under so far.
        let mut names_of: HashMap<(u64, u64), usize> = HashMap::new();
        // Member names given so far: two files whose names read alike once made
        // valid (`\` as `_`, bytes that are not UTF-8 as U+FFFD) must not be one
        // member twice, which an extractor would write over.
        let mut taken: HashSet<String> = HashSet::new();
        // (folder path, its name inside the archive, the folders it is inside)
        let mut pending = vec![(dir.clone(), String::new(), Vec::new())];
        let mut top_modified = None;
        let mut held = 0;
        while let Some((path, prefix, mut inside)) = pending.pop() {
            let top = prefix.is_empty();
            // The folder asked for must be readable; a subfolder that is not (or
            // that went away) is left out, as a listing would fail for it alone.
            let open = match root.open(&path) {
                Ok(Node::Dir(open)) => open,
                Ok(Node::File(_)) => continue,
                Err(e) if top => return Err(e),
                Err(_) => continue,
            };
            if top {
                top_modified = open.meta.modified().ok();
            }
            // A folder inside itself (a symlink to a folder above it) is a loop,
            // archived once; one reached under two names beside each other (a
            // symlink to a sibling) is archived under both, as each name lists it.
            let id = (open.meta.dev(), open.meta.ino());
            let names = names_of.entry(id).or_default();
            // Folders linked to one another would otherwise be walked along every
            // path through them: each is archived under a few names at most.
            if inside.contains(&id) || *names >= crate::fs::MAX_NAMES_PER_FOLDER {
                continue;
            }
            *names += 1;
            inside.push(id);
            let mut entries = match root.list(open, &path) {
                Ok(entries) => entries,
                Err(e) if top => return Err(e),
                Err(_) => continue,
            };
            if !hidden {
                entries.retain(|e| !e.name.starts_with(b"."));
            }
            super::listing::sort(&mut entries);
            let names = member_names(&prefix, &entries, &mut taken);
            // Folders are walked after the files beside them, in name order.
            let mut subfolders = Vec::new();
            for (entry, name) in entries.into_iter().zip(names) {
                let entry_path = path.join(&entry.name);
                if name.len() >= usize::from(u16::MAX) {
                    continue;
                }
                match entry.kind {
                    EntryKind::Dir => {
                        let entry_path = entry_path.as_directory();
                        if readable.is_some_and(|policy| !(policy.0)(&entry_path)) {
                            continue;
                        }
                        let name = format!("{name}/");
                        sources.push(Source {
                            path: entry_path.clone(),
                            member: Member {
                                name: name.clone(),
                                size: 0,
                                mtime: entry.mtime,
                            },
                            state: None,
                        });
                        subfolders.push((entry_path, name));
                    }
                    EntryKind::File => {
                        if readable.is_some_and(|policy| !(policy.0)(&entry_path)) {
                            continue;
                        }
                        // The state is taken by opening the file as a request would.
                        let Ok(Node::File(file)) = root.open(&entry_path) else {
                            continue;
                        };
                        sources.push(Source {
                            path: entry_path,
                            member: Member {
                                name,
                                size: file.meta.len(),
                                mtime: file.meta.modified().ok(),
                            },
                            state: Some(FileState::of(&file.meta)),
                        });
                    }
                }
                if sources.len() > MAX_MEMBERS {
                    return Err(io::Error::other(format!(
                        "more than {MAX_MEMBERS} entries to archive"
                    )));
                }
                held += sources.last().map_or(0, Source::held);
                if held > MAX_WALK_BYTES {
                    return Err(io::Error::other(
                        "the folder's names are too many or too deep to archive",
                    ));
                }
            }
            pending.extend(
                subfolders
                    .into_iter()
                    .rev()
                    .map(|(path, name)| (path, name, inside.clone())),
            );
        }
        // The folder's own name; the served folder's for the root.
        let name = dir
            .file_name()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .or_else(|| {
                let served = root.path().file_name()?;
                Some(served.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "root".to_string());
        let mut archive = Archive {
            sources,
            method,
            name: format!("{name}.zip"),
            etag: EntityTag::from_hash(0, 0),
            last_modified: None,
            total: None,
        };
        archive.etag = archive.tag();
        archive.last_modified = archive
            .sources
            .iter()
            .filter_map(|s| s.member.mtime)
            .chain(top_modified)
            .max()
            .map(|t| t.min(SystemTime::now()));
        if method == Method::Stored {
            let members: Vec<Member> = archive.sources.iter().map(|s| s.member.clone()).collect();
            archive.total = Some(zip::stored_layout(&members).1);
        }
        Ok(archive)
    }

    /// A strong ETag of the archive: a hash of everything its bytes are made from
    /// (the writer's version, the method, and each member's name, time and file
    /// state — inode, size, change time), so equal tags mean identical archives.
    fn tag(&self) -> EntityTag {
        use std::hash::{Hash, Hasher};
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        (self.method as u8).hash(&mut hasher);
        for source in &self.sources {
            source.member.name.hash(&mut hasher);
            source.member.size.hash(&mut hasher);
            source.member.mtime.hash(&mut hasher);
            source.state.hash(&mut hasher);
        }
        EntityTag::from_hash(hasher.finish(), self.sources.len() as u64)
    }

    /// The response: 200 with the whole archive, 206 for one range of a stored one,
    /// 304/412 as the preconditions decide, 416 for a range outside it.
    pub fn into_response(self, root: Arc<Root>, req: &Parts) -> Response<Body> {
        let etag = self.etag.clone();
        let last_modified = self.last_modified;
        let validators = Validators {
            etag: Some(&etag),
            last_modified,
        };
        let mut res = match conditional::evaluate(&req.method, &req.headers, validators) {
            Precondition::Proceed => self.body_response(root, req, &etag, last_modified),
            Precondition::NotModified => {
                let mut res = Response::new(Body::empty());
                *res.status_mut() = StatusCode::NOT_MODIFIED;
                res
            }
            Precondition::Failed => response::error(StatusCode::PRECONDITION_FAILED),
        };
        let headers = res.headers_mut();
        headers.insert(header::ETAG, etag.header_value());
        if let Some(value) = last_modified.and_then(response::http_date) {
            headers.insert(header::LAST_MODIFIED, value);
        }
        res
    }

    fn body_response(
        self,
        root: Arc<Root>,
        req: &Parts,
        etag: &EntityTag,
        last_modified: Option<SystemTime>,
    ) -> Response<Body> {
        let disposition = content_disposition(&self.name);
        let head = req.method == HttpMethod::HEAD;
        let mut res = if self.method == Method::Deflated {
            // Sizes are learned while compressing: no length, no ranges.
            let mut res = Response::new(if head {
                unsent(None)
            } else {
                let Some(permit) = Permit::try_acquire() else {
                    return busy();
                };
                self.spawn(root, None, permit)
            });
            res.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
            res
        } else {
            let total = self.total.unwrap_or(0);
            let validators = Validators {
                etag: Some(etag),
                last_modified,
            };
            let asked = match range::range_field(&req.headers) {
                Some(value) if req.method == HttpMethod::GET && total > 0 => match value.to_str() {
                    Ok(text) if conditional::range_allowed(&req.headers, validators) => {
                        range::parse(text, total)
                    }
                    _ => RangeRequest::Full,
                },
                _ => RangeRequest::Full,
            };
            // Several ranges of one archive would each mean reading it up to there:
            // the whole archive is sent instead, as RFC 9110 §14.2 allows.
            let window = match asked {
                RangeRequest::Ranges(ranges) if ranges.len() == 1 => Some(ranges[0]),
                RangeRequest::Unsatisfiable => {
                    let mut res = response::error(StatusCode::RANGE_NOT_SATISFIABLE);
                    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{total}")) {
                        res.headers_mut().insert(header::CONTENT_RANGE, value);
                    }
                    return res;
                }
                _ => None,
            };
            let (start, end) = window.map_or((0, total), |r| (r.start, r.end));
            let mut res = Response::new(if head {
                unsent(Some(end - start))
            } else {
                let Some(permit) = Permit::try_acquire() else {
                    return busy();
                };
                self.spawn(root, Some((start, end)), permit)
            });
            let headers = res.headers_mut();
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            if let Some(r) = window {
                if let Ok(value) = HeaderValue::from_str(&r.content_range(total)) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
                *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            }
            res
        };
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/zip"),
        );
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        res
    }

    /// The archive's bytes in `window` (all of them when `None`), produced on the
    /// blocking pool.
    fn spawn(self, root: Arc<Root>, window: Option<(u64, u64)>, permit: Permit) -> Body {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let len = window.map(|(start, end)| end - start);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let (start, end) = window.unwrap_or((0, u64::MAX));
            let mut out = Window::new(start, end, &tx);
            let result = self.write(&root, &mut out).and_then(|()| out.flush());
            if let Err(e) = result {
                if e.kind() != io::ErrorKind::BrokenPipe {
                    tracing::warn!("archive {}: {e}", self.name);
                }
                let _ = tx.blocking_send(Err(e));
            }
        });
        match len {
            Some(len) => Body::channel_of_len(rx, len),
            None => Body::channel(rx),
        }
    }

    /// Writes the whole archive into `out`, which keeps only its window.
    fn write(&self, root: &Root, out: &mut Window<'_>) -> io::Result<()> {
        let mut written = Vec::with_capacity(self.sources.len());
        for source in &self.sources {
            let member = &source.member;
            let mut record = Written {
                offset: out.position(),
                ..Written::default()
            };
            out.put(&zip::local_header(member, self.method))?;
            if let Some(state) = source.state {
                let (crc, compressed) = self.write_data(root, source, state, out)?;
                record.crc = crc;
                record.compressed = compressed;
            }
            out.put(&zip::descriptor(member, self.method, &record))?;
            written.push(record);
            if out.done() {
                return Ok(());
            }
        }
        let central_offset = out.position();
        for (source, record) in self.sources.iter().zip(&written) {
            out.put(&zip::central_header(&source.member, self.method, record))?;
        }
        let central_size = out.position() - central_offset;
        out.put(&zip::end(
            self.sources.len() as u64,
            central_offset,
            central_size,
        ))
    }

    /// Writes one file's data; its CRC-32 and stored length. A stored file wholly
    /// before the window is still read for its CRC, which the central directory needs
    /// (unless the window ends before that, when nothing after it matters).
    fn write_data(
        &self,
        root: &Root,
        source: &Source,
        state: FileState,
        out: &mut Window<'_>,
    ) -> io::Result<(u32, u64)> {
        let size = source.member.size;
        // Wholly before the range asked for, and its CRC known: nothing to read.
        if self.method == Method::Stored && out.before_window(size) {
            if let Some(crc) = known_crc(&state) {
                out.skip(size);
                return Ok((crc, size));
            }
        }
        let changed =
            || io::Error::other(format!("{} changed while archived", source.path.display()));
        let Node::File(file) = root.open(&source.path)? else {
            return Err(changed());
        };
        if FileState::of(&file.meta) != state || file.meta.len() != size {
            return Err(changed());
        }
        let mut crc = crc32fast::Hasher::new();
        let mut buf = vec![0u8; CHUNK.min(size as usize).max(1)];
        let mut at = 0u64;
        let compressed = match self.method {
            Method::Stored => {
                while at < size {
                    let n = buf.len().min((size - at) as usize);
                    file.file.read_exact_at(&mut buf[..n], at)?;
                    crc.update(&buf[..n]);
                    out.put(&buf[..n])?;
                    at += n as u64;
                }
                size
            }
            Method::Deflated => {
                let mut encoder =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                let mut compressed = 0u64;
                while at < size {
                    let n = buf.len().min((size - at) as usize);
                    file.file.read_exact_at(&mut buf[..n], at)?;
                    crc.update(&buf[..n]);
                    encoder.write_all(&buf[..n])?;
                    let ready = std::mem::take(encoder.get_mut());
                    compressed += ready.len() as u64;
                    out.put(&ready)?;
                    at += n as u64;
                }
                let rest = encoder.finish()?;
                compressed += rest.len() as u64;
                out.put(&rest)?;
                compressed
            }
        };
        // Rewritten while it was read: the bytes sent may be a mix.
        if FileState::of(&file.file.metadata()?) != state {
            return Err(changed());
        }
        let crc = crc.finalize();
        remember_crc(state, crc);
        Ok((crc, compressed))
    }
}

/// Archives being produced, process-wide.
static PRODUCING: AtomicUsize = AtomicUsize::new(0);

/// One of the [`MAX_ARCHIVES`] slots, held while an archive is produced.
struct Permit;

impl Permit {
    fn try_acquire() -> Option<Permit> {
        PRODUCING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_ARCHIVES).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        PRODUCING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The member names of a folder's `entries` (under `prefix`), in their order. `/`
/// separates folders in ZIP names (APPNOTE 4.4.17), so a `\` in a name, a
/// separator to some extractors, is written `_`, and bytes that are not UTF-8
/// U+FFFD; the names that need neither are given first, so that a file called
/// `a_b` keeps its name and `a\b` becomes `a_b (2)`.
fn member_names(prefix: &str, entries: &[Entry], taken: &mut HashSet<String>) -> Vec<String> {
    let mut names = vec![String::new(); entries.len()];
    for as_they_are in [true, false] {
        for (entry, name) in entries.iter().zip(names.iter_mut()) {
            let readable = String::from_utf8_lossy(&entry.name).replace('\\', "_");
            if (readable.as_bytes() == entry.name.as_slice()) == as_they_are {
                let folder = matches!(entry.kind, EntryKind::Dir);
                *name = unique_name(prefix, &readable, folder, taken);
            }
        }
    }
    names
}

/// `prefix` + `name` if no member has that name yet, else the first free
/// `name (2)`, `name (3)`, … (before a file's extension, as browsers name a second
/// download); recorded as taken. A folder's name is taken without its `/`, so that
/// a file and a folder never share one either.
fn unique_name(prefix: &str, name: &str, folder: bool, taken: &mut HashSet<String>) -> String {
    let whole = format!("{prefix}{name}");
    if taken.insert(whole.clone()) {
        return whole;
    }
    let (stem, extension) = match name.rfind('.') {
        Some(dot) if dot > 0 && !folder => name.split_at(dot),
        _ => (name, ""),
    };
    let mut n = 2u64;
    loop {
        let candidate = format!("{prefix}{stem} ({n}){extension}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

/// 503 with `Retry-After`: every archive slot is taken.
fn busy() -> Response<Body> {
    let mut res = response::error(StatusCode::SERVICE_UNAVAILABLE);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

/// CRC-32s of files already archived, by their state: a resumed download's range
/// need not read again the files before it.
static CRCS: LazyLock<Mutex<HashMap<FileState, u32>>> = LazyLock::new(Mutex::default);

fn known_crc(state: &FileState) -> Option<u32> {
    CRCS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(state)
        .copied()
}

fn remember_crc(state: FileState, crc: u32) {
    let mut crcs = CRCS.lock().unwrap_or_else(|p| p.into_inner());
    if crcs.len() >= CRC_ENTRIES {
        // Simple and bounded: start over rather than track use.
        crcs.clear();
    }
    crcs.insert(state, crc);
}

/// The body of a HEAD answer: nothing will be sent, but its length is the GET's.
fn unsent(len: Option<u64>) -> Body {
    let (_, rx) = mpsc::channel(1);
    match len {
        Some(len) => Body::channel_of_len(rx, len),
        None => Body::channel(rx),
    }
}

/// Characters a RFC 8187 value may hold unencoded (`attr-char`).
const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment` with the name twice: quoted ASCII for old clients, RFC 8187 UTF-8
/// for the rest.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, ATTR_CHAR);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The part of the archive's byte stream the client asked for: bytes before `start`
/// are counted and dropped, bytes from `end` on are never produced; what is kept is
/// sent in chunks of about [`CHUNK`] bytes.
struct Window<'a> {
    position: u64,
    start: u64,
    end: u64,
    pending: Vec<u8>,
    tx: &'a mpsc::Sender<io::Result<Bytes>>,
}

impl<'a> Window<'a> {
    fn new(start: u64, end: u64, tx: &'a mpsc::Sender<io::Result<Bytes>>) -> Window<'a> {
        Window {
            position: 0,
            start,
            end,
            pending: Vec::with_capacity(CHUNK),
            tx,
        }
    }

    /// Bytes of the archive written so far, sent or not.
    fn position(&self) -> u64 {
        self.position
    }

    /// Whether everything in the window has been produced.
    fn done(&self) -> bool {
        self.position >= self.end
    }

    /// Whether `len` bytes from here all fall before the window.
    fn before_window(&self, len: u64) -> bool {
        self.position + len <= self.start
    }

    /// Counts `len` bytes that fall before the window without producing them.
    fn skip(&mut self, len: u64) {
        self.position += len;
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        // A client that went away ends the work, even while bytes before its range
        // are being read.
        if self.tx.is_closed() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let from = self.position;
        let to = from + bytes.len() as u64;
        self.position = to;
        let keep_from = from.max(self.start);
        let keep_to = to.min(self.end);
        if keep_from < keep_to {
            let slice = &bytes[(keep_from - from) as usize..(keep_to - from) as usize];
            self.pending.extend_from_slice(slice);
            if self.pending.len() >= CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::ErrorKind::BrokenPipe.into())
    }
}
