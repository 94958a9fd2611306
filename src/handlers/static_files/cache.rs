//! The hot cache: ready-to-send responses for recently requested paths.
//!
//! A hit answers on the async worker with no trip to the blocking pool: the entry holds
//! the representation in memory and its 200 header section pre-built. Every hit is
//! revalidated with one `fstatat` of the file it came from (and of the sidecar, when a
//! sidecar is what it serves): if the device, inode, size, mtime or ctime differ — the
//! file was written, truncated, replaced, or deleted — the entry is ignored and the
//! request takes the full path through [`crate::fs::Root::open`], which refreshes it.
//! Where the kernel watches the file and the folders on its path ([`PathWatch`]), a
//! look at its (empty) queue stands in for the file's and folders' `fstatat`s until it
//! reports something, or for at most [`RECHECK_EVERY`](crate::handlers::static_files::folder_watch::RECHECK_EVERY).
//! An answer that rests on a sidecar's absence (identity or an on-the-fly variant for a
//! client that would take the sidecar) also checks the directory's state, which any
//! file added to it changes. A file is therefore never served stale. Listings are
//! revalidated against the directory's own state (entries added, removed or renamed)
//! and against what the kernel reported of the folder since it was read
//! ([`FolderWatch`]: a file in it written or touched), and re-rendered at least every
//! [`LISTING_TTL`], the bound on how stale what neither reports may be (a
//! subfolder's modification time, or any change in a folder that cannot be watched).
//!
//! Only representations whose bytes are in memory (files up to
//! [`CACHEABLE_FILE`], compressed variants, listings) are cached; the cache is bounded
//! in bytes and evicts the least recently used entries.

use std::collections::HashMap;
use std::ffi::CString;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::header::HeaderMap;
use http::request::Parts;
use http::Response;

use crate::fs::{FileState, Root};
use crate::handlers::static_files::etag_cache::RACY;
use crate::handlers::static_files::folder_watch::{FolderWatch, Mark, PathWatch};
use crate::handlers::static_files::listing::{self, Format};
use crate::http::body::Body;
use crate::http::negotiate::Encoding;
use crate::http::path::SitePath;
use crate::http::representation::{self, Content, Representation};

/// Files up to this size are read into memory and may be cached.
pub const CACHEABLE_FILE: u64 = 1024 * 1024;
/// The longest a cached listing is served before it is rendered again.
pub const LISTING_TTL: Duration = Duration::from_secs(1);
const SHARDS: usize = 16;
/// Rough per-entry overhead counted against the byte budget.
const ENTRY_OVERHEAD: usize = 512;

/// One representation, ready to send.
#[derive(Debug)]
pub struct Ready {
    rep: Representation,
    headers: HeaderMap,
}

impl Ready {
    fn new(rep: Representation) -> Ready {
        let headers = representation::ok_headers(&rep);
        Ready { rep, headers }
    }

    fn size(&self) -> usize {
        match &self.rep.content {
            Content::Bytes(b) => b.len(),
            Content::File(_) => 0,
        }
    }

    fn respond(&self, req: &Parts) -> Response<Body> {
        if representation::is_plain(req) {
            let mut res = Response::new(representation::full_body(&self.rep));
            *res.headers_mut() = self.headers.clone();
            res
        } else {
            representation::respond(req, self.rep.clone())
        }
    }
}

/// What is known about one coding of a cached file.
#[derive(Debug)]
pub enum Slot {
    /// Not looked at yet: a request preferring it takes the full path.
    Unknown,
    /// No sidecar, and whether an on-the-fly variant is worth it is not known yet.
    NoSidecar,
    /// Neither a sidecar nor a useful on-the-fly variant exists.
    Unavailable,
    /// Compressed on the fly from the identity content.
    Derived(Arc<Ready>),
    /// A precompressed sidecar file, revalidated on its own.
    Sidecar(Arc<Ready>, CString, FileState),
}

/// A cached file: its identity representation and what is known of its codings.
#[derive(Debug)]
pub struct FileEntry {
    /// See [`FileFill::index_of`].
    pub index_of: Option<(CString, FileState)>,
    /// See [`FileFill::dir`].
    pub dir: Option<(CString, FileState)>,
    /// The file, relative to the root.
    pub path: CString,
    /// Its state when cached.
    pub state: FileState,
    /// Whether its type is negotiable (compressible).
    pub negotiated: bool,
    /// See [`FileFill::watch`].
    watch: Option<PathWatch>,
    /// See [`FileFill::outdated`].
    outdated: Vec<SidecarSource>,
    identity: Ready,
    /// Brotli, zstd, gzip, in [`Encoding::ALL`] order.
    codings: [Slot; 3],
}

/// A cached listing of one directory.
#[derive(Debug)]
pub struct ListingEntry {
    dir: CString,
    state: FileState,
    /// Set when the kernel reports a change in the folder since it was read.
    mark: Option<Mark>,
    rendered: Instant,
    html: Option<Arc<ListingPage>>,
    json: Option<Arc<ListingPage>>,
}

/// One format of a cached listing: the page and what is known of its codings
/// (compressed on the fly, or not worth it).
#[derive(Debug)]
pub struct ListingPage {
    identity: Ready,
    /// Brotli, zstd, gzip, in [`Encoding::ALL`] order.
    codings: [Slot; 3],
}

impl ListingPage {
    fn size(&self) -> usize {
        self.identity.size()
            + self
                .codings
                .iter()
                .map(|s| match s {
                    Slot::Derived(r) => r.size(),
                    _ => 0,
                })
                .sum::<usize>()
    }

    /// The representation for a client accepting `encodings`, as the full path would
    /// choose it; `None` when that needs the full path (a coding not tried yet).
    fn choose(&self, encodings: &[Encoding]) -> Option<&Ready> {
        for &encoding in encodings {
            let Some(i) = coding_index(encoding) else {
                return Some(&self.identity);
            };
            match &self.codings[i] {
                Slot::Unavailable => {}
                Slot::Derived(ready) => return Some(ready),
                _ => return None,
            }
        }
        None
    }
}

impl ListingEntry {
    /// Whether no change was reported since the folder was read, and the page is
    /// young enough for what is not reported.
    fn current(&self) -> bool {
        self.rendered.elapsed() < LISTING_TTL && !self.mark.as_ref().is_some_and(Mark::changed)
    }

    /// The page in the wanted format, if rendered recently enough for a directory that
    /// has not changed since.
    fn page(&self, root: &Root, format: Format) -> Option<&Arc<ListingPage>> {
        if !self.current() || root.state_of(&self.dir) != Some(self.state) {
            return None;
        }
        match format {
            Format::Json => self.json.as_ref(),
            Format::Html => self.html.as_ref(),
        }
    }
}

/// What the full path rendered for a listing, to be merged into the cache.
#[derive(Debug)]
pub struct PageFill {
    /// The directory, relative to the root.
    pub dir: CString,
    /// Its state when listed.
    pub state: FileState,
    /// Its mark from [`HotCache::watch_folder`], made before it was read.
    pub mark: Option<Mark>,
    /// The page's format.
    pub format: Format,
    /// The page, uncompressed.
    pub identity: Representation,
    /// Codings examined, in order.
    pub learned: Vec<Learned>,
}

#[derive(Debug)]
enum Entry {
    File(Box<FileEntry>),
    Listing(ListingEntry),
}

impl Entry {
    fn size(&self) -> usize {
        ENTRY_OVERHEAD
            + match self {
                Entry::File(f) => {
                    f.identity.size()
                        + f.codings
                            .iter()
                            .map(|s| match s {
                                Slot::Derived(r) | Slot::Sidecar(r, ..) => r.size(),
                                _ => 0,
                            })
                            .sum::<usize>()
                }
                Entry::Listing(l) => {
                    l.html.as_ref().map_or(0, |p| p.size())
                        + l.json.as_ref().map_or(0, |p| p.size())
                }
            }
    }
}

struct Slotted {
    entry: Arc<Entry>,
    last_used: AtomicU64,
}

/// A sidecar file: its path relative to the root and its state when read.
pub type SidecarSource = (CString, FileState);

/// One coding examined by the full path, and what was found for it.
pub type Learned = (Encoding, Found);

/// What the full path found for one coding of a file.
#[derive(Debug)]
pub enum Found {
    /// No sidecar; on-the-fly compression was not tried.
    NoSidecar,
    /// Neither a sidecar nor a useful on-the-fly variant.
    Unavailable,
    /// Compressed on the fly.
    Derived(Representation),
    /// A precompressed sidecar file and where it came from.
    Sidecar(Representation, SidecarSource),
}

/// What the full path learned about a file, to be merged into the cache.
#[derive(Debug)]
pub struct FileFill {
    /// For a directory's index file: the directory and its state, which must not
    /// change either (another index file may have appeared).
    pub index_of: Option<(CString, FileState)>,
    /// For a negotiable file: its directory and the directory's state before sidecars
    /// were looked for. What the cache knows of a coding without a sidecar ("none",
    /// "compressed on the fly") holds only while no file was added to the directory.
    pub dir: Option<(CString, FileState)>,
    /// The file, relative to the root.
    pub path: CString,
    /// Its state as opened.
    pub state: FileState,
    /// Whether its type is negotiable.
    pub negotiated: bool,
    /// The kernel's watch on the file and the folders on its path, from
    /// [`HotCache::watch_file`]; `None` when it is checked by its state only.
    pub watch: Option<PathWatch>,
    /// Sidecars passed over for being older than the file: touched or rewritten,
    /// one may become the answer without the folder changing.
    pub outdated: Vec<SidecarSource>,
    /// Its identity representation.
    pub identity: Representation,
    /// Codings examined, in the order they were; a later finding for a coding
    /// replaces an earlier one.
    pub learned: Vec<Learned>,
}

/// The cache. Shared by every worker; lookups take a shard's read lock only.
pub struct HotCache {
    shards: Vec<RwLock<HashMap<Box<str>, Slotted, KeyHasher>>>,
    /// Picks the shard; seeded apart from the shards' own maps, whose buckets would
    /// otherwise all share the bits that chose the shard.
    hasher: KeyHasher,
    bytes: AtomicUsize,
    capacity: usize,
    tick: AtomicU64,
    /// What the kernel says of the listed folders.
    folders: FolderWatch,
}

impl std::fmt::Debug for HotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotCache")
            .field("bytes", &self.bytes.load(Ordering::Relaxed))
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Hashes cache keys with one-shot xxh3 and a per-process random seed, so that clients
/// cannot aim requests at one bucket. (SipHash, and xxh3's streaming hasher, showed in
/// profiles of the 1 KiB test; a path is hashed in one call.)
#[derive(Debug, Clone, Copy)]
struct KeyHasher {
    seed: u64,
}

impl BuildHasher for KeyHasher {
    type Hasher = OneShot;
    fn build_hasher(&self) -> OneShot {
        OneShot { hash: self.seed }
    }
}

/// Folds each `write` into the hash with one xxh3 call: a `str` key arrives as one
/// write of its bytes and one terminator byte.
struct OneShot {
    hash: u64,
}

impl std::hash::Hasher for OneShot {
    fn write(&mut self, bytes: &[u8]) {
        self.hash = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.hash);
    }
    fn write_u8(&mut self, byte: u8) {
        self.hash = self.hash.rotate_left(8) ^ u64::from(byte);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

fn random_seeded() -> KeyHasher {
    let seed = std::collections::hash_map::RandomState::new().hash_one(0u64);
    KeyHasher { seed }
}

fn coding_index(encoding: Encoding) -> Option<usize> {
    match encoding {
        Encoding::Brotli => Some(0),
        Encoding::Zstd => Some(1),
        Encoding::Gzip => Some(2),
        Encoding::Identity => None,
    }
}

impl HotCache {
    /// A cache of at most `capacity` bytes; 0 disables it.
    pub fn new(capacity: usize) -> HotCache {
        HotCache {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::with_hasher(random_seeded())))
                .collect(),
            hasher: random_seeded(),
            bytes: AtomicUsize::new(0),
            capacity,
            tick: AtomicU64::new(0),
            folders: FolderWatch::new(),
        }
    }

    /// Starts watching the folder open as `dir` for a listing about to be read
    /// from it (see [`FolderWatch`]); `None` when listings are not cached.
    pub fn watch_folder(&self, dir: impl std::os::fd::AsFd) -> Option<Mark> {
        if self.capacity == 0 {
            return None;
        }
        self.folders.watch(dir)
    }

    /// Starts watching the file open as `file` at `path`, whose state is `state`,
    /// before its content is read for the cache (see [`PathWatch`]); `None` when it
    /// cannot be watched, when the path leads through a symlink, or when the path no
    /// longer names that file.
    pub fn watch_file(
        &self,
        root: &Root,
        path: &SitePath,
        rel: &std::ffi::CStr,
        file: impl std::os::fd::AsFd,
        state: FileState,
    ) -> Option<PathWatch> {
        if self.capacity == 0 {
            return None;
        }
        let folders = root.folders_on(path)?;
        let watch = self.folders.watch_path(&folders, file)?;
        // Watched from here on: the path must name that very file now.
        (root.own_state_of(rel) == Some(state)).then_some(watch)
    }

    fn shard(&self, key: &str) -> &RwLock<HashMap<Box<str>, Slotted, KeyHasher>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    fn get(&self, key: &str) -> Option<Arc<Entry>> {
        if self.capacity == 0 {
            return None;
        }
        let shard = self.shard(key).read().unwrap_or_else(|p| p.into_inner());
        let slotted = shard.get(key)?;
        slotted
            .last_used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(Arc::clone(&slotted.entry))
    }

    /// Answers a request for the raw path `key` from the cache, if a valid entry can.
    /// `encodings` is the client's acceptable encodings, best first; `json` whether a
    /// listing should be JSON.
    pub fn respond(
        &self,
        root: &Root,
        key: &str,
        req: &Parts,
        encodings: &[Encoding],
        format: impl FnOnce() -> Format,
    ) -> Option<Response<Body>> {
        let entry = self.get(key)?;
        let file = match &*entry {
            Entry::File(file) => file,
            Entry::Listing(listing) => {
                self.folders.catch_up();
                let ready = listing.page(root, format())?.choose(encodings)?;
                return Some(listing::with_listing_headers(ready.respond(req)));
            }
        };
        // Read before any state is looked at, so that a check that finds the file
        // unchanged vouches from there on.
        let total = file.watch.as_ref().and_then(|watch| {
            self.folders.catch_up();
            watch.total()
        });
        if file.watch.as_ref().is_some_and(PathWatch::file_changed) {
            return None;
        }
        if (file.outdated.iter()).any(|(path, state)| root.state_of(path) != Some(*state)) {
            return None;
        }
        let vouched = file
            .watch
            .as_ref()
            .zip(total)
            .is_some_and(|(watch, total)| watch.vouches_at(total));
        if !vouched {
            if root.state_of(&file.path) != Some(file.state) {
                return None;
            }
            if let Some((dir, state)) = &file.index_of {
                if root.state_of(dir) != Some(*state) {
                    return None;
                }
            }
            // Found unchanged by its state: the watch vouches again, from the counts
            // read before that was looked at.
            if let (Some(watch), Some(total)) = (&file.watch, total) {
                let dir_too = file
                    .dir
                    .as_ref()
                    .is_none_or(|(dir, state)| root.state_of(dir) == Some(*state));
                if dir_too {
                    watch.confirm(total);
                }
            }
        }
        // Whether the answer rests on a sidecar being absent, which only the
        // directory's state (or the watch on it) can vouch for: a sidecar may have
        // appeared since.
        let mut without_sidecar = false;
        let dir_unchanged = || {
            vouched
                || file
                    .dir
                    .as_ref()
                    .is_some_and(|(dir, state)| root.state_of(dir) == Some(*state))
        };
        // As the full path chooses: first a sidecar for any coding preferred to
        // identity, then the first of them that can be had at all.
        if file.negotiated {
            for &encoding in encodings {
                let Some(i) = coding_index(encoding) else {
                    break;
                };
                match &file.codings[i] {
                    Slot::Unknown => return None,
                    Slot::Sidecar(ready, path, state) => {
                        if root.state_of(path) != Some(*state)
                            || without_sidecar && !dir_unchanged()
                        {
                            return None;
                        }
                        return Some(ready.respond(req));
                    }
                    Slot::NoSidecar | Slot::Unavailable | Slot::Derived(_) => {
                        without_sidecar = true;
                    }
                }
            }
        }
        for &encoding in encodings {
            let Some(i) = coding_index(encoding) else {
                if without_sidecar && !dir_unchanged() {
                    return None;
                }
                return Some(file.identity.respond(req));
            };
            if !file.negotiated {
                continue;
            }
            match &file.codings[i] {
                Slot::Unavailable => {}
                Slot::Derived(ready) => {
                    if !dir_unchanged() {
                        return None;
                    }
                    return Some(ready.respond(req));
                }
                Slot::Unknown | Slot::NoSidecar | Slot::Sidecar(..) => return None,
            }
        }
        // Nothing acceptable: the full path words the 406.
        None
    }

    /// Records what the full path learned about a file served for `key`.
    pub fn fill_file(&self, key: &str, fill: FileFill) {
        if self.capacity == 0 || !matches!(fill.identity.content, Content::Bytes(_)) {
            return;
        }
        // Unwatched, and changed so recently that what was read may be a mix of two
        // versions under the state of the second: its state alone cannot vouch.
        if fill.watch.is_none() && fill.state.is_recent(RACY) {
            return;
        }
        let mut codings = [Slot::Unknown, Slot::Unknown, Slot::Unknown];
        let mut outdated = fill.outdated;
        // Keep what an earlier request learned about the same file state.
        if let Some(old) = self.get(key) {
            if let Entry::File(old) = &*old {
                if old.state == fill.state
                    && old.path == fill.path
                    && old.index_of == fill.index_of
                    && old.dir == fill.dir
                {
                    for (i, slot) in old.codings.iter().enumerate() {
                        codings[i] = match slot {
                            Slot::Unknown => Slot::Unknown,
                            Slot::NoSidecar => Slot::NoSidecar,
                            Slot::Unavailable => Slot::Unavailable,
                            Slot::Derived(r) => Slot::Derived(Arc::clone(r)),
                            Slot::Sidecar(r, p, s) => Slot::Sidecar(Arc::clone(r), p.clone(), *s),
                        };
                    }
                    for sidecar in &old.outdated {
                        if !outdated.iter().any(|(path, _)| *path == sidecar.0) {
                            outdated.push(sidecar.clone());
                        }
                    }
                }
            }
        }
        for (encoding, learned) in fill.learned {
            let Some(i) = coding_index(encoding) else {
                continue;
            };
            codings[i] = match learned {
                // Says less than what an earlier request learned of the same state.
                Found::NoSidecar => match std::mem::replace(&mut codings[i], Slot::Unknown) {
                    known @ (Slot::Unavailable | Slot::Derived(_)) => known,
                    _ => Slot::NoSidecar,
                },
                Found::Unavailable => Slot::Unavailable,
                Found::Derived(rep) | Found::Sidecar(rep, _)
                    if !matches!(rep.content, Content::Bytes(_)) =>
                {
                    Slot::Unknown
                }
                Found::Derived(rep) => Slot::Derived(Arc::new(Ready::new(rep))),
                Found::Sidecar(rep, (path, state)) => {
                    Slot::Sidecar(Arc::new(Ready::new(rep)), path, state)
                }
            };
        }
        let entry = Entry::File(Box::new(FileEntry {
            index_of: fill.index_of,
            dir: fill.dir,
            path: fill.path,
            state: fill.state,
            negotiated: fill.negotiated,
            watch: fill.watch,
            outdated,
            identity: Ready::new(fill.identity),
            codings,
        }));
        self.insert(key, entry);
    }

    /// Records a rendered listing for `key`, and what was learned of its codings.
    pub fn fill_listing(&self, key: &str, fill: PageFill) {
        if self.capacity == 0 {
            return;
        }
        let PageFill {
            dir,
            state,
            mark,
            format,
            identity,
            learned,
        } = fill;
        let mut entry = ListingEntry {
            dir,
            state,
            mark,
            rendered: Instant::now(),
            html: None,
            json: None,
        };
        let mut codings = [Slot::Unknown, Slot::Unknown, Slot::Unknown];
        self.folders.catch_up();
        if let Some(old) = self.get(key) {
            if let Entry::Listing(old) = &*old {
                // Not when the older pages were never watched and this one is: its
                // mark would be lost for theirs.
                let watched_as_well = old.mark.is_some() || entry.mark.is_none();
                if old.state == state && old.current() && watched_as_well {
                    // The other format's page stays, and with it the older mark,
                    // which has watched since before either was read.
                    entry.mark = old.mark.clone();
                    entry.rendered = old.rendered;
                    entry.html = old.html.clone();
                    entry.json = old.json.clone();
                    // Codings known for the very same page stay known.
                    let same = match format {
                        Format::Json => old.json.as_ref(),
                        Format::Html => old.html.as_ref(),
                    }
                    .filter(|p| p.identity.rep.etag == identity.etag);
                    for (i, slot) in same.iter().flat_map(|p| p.codings.iter().enumerate()) {
                        codings[i] = match slot {
                            Slot::Unavailable => Slot::Unavailable,
                            Slot::Derived(r) => Slot::Derived(Arc::clone(r)),
                            _ => Slot::Unknown,
                        };
                    }
                }
            }
        }
        for (encoding, found) in learned {
            let Some(i) = coding_index(encoding) else {
                continue;
            };
            codings[i] = match found {
                Found::Derived(rep) if matches!(rep.content, Content::Bytes(_)) => {
                    Slot::Derived(Arc::new(Ready::new(rep)))
                }
                Found::Unavailable => Slot::Unavailable,
                _ => Slot::Unknown,
            };
        }
        let page = Some(Arc::new(ListingPage {
            identity: Ready::new(identity),
            codings,
        }));
        match format {
            Format::Json => entry.json = page,
            Format::Html => entry.html = page,
        }
        self.insert(key, Entry::Listing(entry));
    }

    fn insert(&self, key: &str, entry: Entry) {
        let size = entry.size();
        if size > self.capacity / 4 {
            return;
        }
        let slotted = Slotted {
            entry: Arc::new(entry),
            last_used: AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed)),
        };
        {
            let mut shard = self.shard(key).write().unwrap_or_else(|p| p.into_inner());
            if let Some(old) = shard.insert(key.into(), slotted) {
                self.bytes.fetch_sub(old.entry.size(), Ordering::Relaxed);
            }
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.evict();
        crate::metrics::metrics().hot_cache_size(self.size());
    }

    /// Drops least recently used entries, a shard at a time, until under budget.
    fn evict(&self) {
        let mut start = self.tick.load(Ordering::Relaxed) as usize;
        let mut idle_passes = 0;
        while self.bytes.load(Ordering::Relaxed) > self.capacity && idle_passes < SHARDS {
            start = start.wrapping_add(1);
            let mut shard = self.shards[start % SHARDS]
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let oldest = shard
                .iter()
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            match oldest.and_then(|key| shard.remove(&key)) {
                Some(old) => {
                    idle_passes = 0;
                    self.bytes.fetch_sub(old.entry.size(), Ordering::Relaxed);
                }
                None => idle_passes += 1,
            }
        }
    }

    /// Bytes currently accounted.
    pub fn size(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}
