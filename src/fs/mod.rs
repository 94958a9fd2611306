//! The only code that opens anything under the served root.
//!
//! Every handler asks [`Root`] for a [`SitePath`]; nothing else joins request data onto
//! a file-system path. Resolution is done by the kernel where it can be: on Linux,
//! `openat2(2)` with `RESOLVE_BENEATH` refuses any path, `..` or symlink that would leave
//! the root fd, atomically, so a file swapped for a symlink between a check and an open
//! cannot escape. Where `openat2` is unavailable (old kernels, seccomp filters, other
//! Unixes) a component-by-component walk with `O_NOFOLLOW`, expanding symlinks by hand
//! from directory fds, gives the same guarantee.
//!
//! All functions here block; callers run them on the blocking pool.

use std::collections::VecDeque;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

use crate::http::path::{SitePath, RESERVED_PREFIX};

pub mod write;

/// Whether a folder could be made at `path` (`create_dir_all`), judged without
/// making anything: the nearest part of it that exists must be a folder. For
/// checks that must not touch the disk (`--explain`).
pub fn folder_could_be_made(path: &Path) -> Result<(), String> {
    for part in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        match std::fs::metadata(part) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) => return Err(format!("{} is not a folder", part.display())),
            // Not there, or under a file (which a part nearer the root shows).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("{}: {e}", part.display())),
        }
    }
    Ok(())
}

/// How many symlinks one resolution may expand before it is refused, as Linux's own
/// limit (`MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// The served directory, held open, plus the policy for leaving it.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    path: PathBuf,
    /// The path as configured (perhaps a symlink a deploy swaps).
    given: PathBuf,
    follow_symlinks: bool,
    /// Cleared the first time the kernel says `openat2` is not available.
    use_openat2: AtomicBool,
    /// Files never opened or listed, whatever path leads to them (see
    /// [`Root::withholding`]).
    withheld: Withheld,
}

/// wharf's own secret files, by path and by every identity they have had.
#[derive(Debug, Default)]
struct Withheld {
    paths: Vec<PathBuf>,
    /// Every (device, inode) the paths have named since startup: the file actually
    /// loaded stays withheld after a rename moved it aside (an editor's backup, a
    /// rotated key), and so does one opened just before such a rename.
    seen: Mutex<Vec<(u64, u64)>>,
}

impl Withheld {
    /// What the paths name now, added to what they named before; all of it (nothing,
    /// and no system call, when there are no paths).
    fn ids(&self) -> Vec<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        if self.paths.is_empty() {
            return Vec::new();
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for meta in self.paths.iter().filter_map(|p| std::fs::metadata(p).ok()) {
            let id = (meta.dev(), meta.ino());
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        seen.clone()
    }
}

/// The most names one folder is archived or copied under in one walk of a tree
/// (symlinks to it beside each other): folders linked to one another would
/// otherwise be walked along every path through them, a tree of a few folders
/// growing without bound.
pub const MAX_NAMES_PER_FOLDER: usize = 4;

/// Extensions of precompressed copies: `wharf.toml.gz` is withheld with `wharf.toml`.
const COMPRESSED_COPY: [&str; 3] = ["gz", "br", "zst"];

/// The name of what `name` would be a compressed copy of, if it is one.
fn compressed_stem(name: &[u8]) -> Option<&[u8]> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let ext = std::str::from_utf8(&name[dot + 1..]).ok()?;
    COMPRESSED_COPY.contains(&ext).then_some(&name[..dot])
}

/// What a path names: a regular file or a directory, already open. Anything else
/// (FIFOs, sockets, devices) is reported as not found.
#[derive(Debug)]
pub enum Node {
    /// A regular file.
    File(OpenFile),
    /// A directory, opened for reading its entries.
    Dir(OpenDir),
}

/// What [`Root::locate`] found.
#[derive(Debug)]
pub enum Located {
    /// A regular file named by the path or by one of its prefixes.
    Program(Box<Program>),
    /// Every component of the path is a folder.
    Folder,
}

/// A program found under the root.
#[derive(Debug)]
pub struct Program {
    /// The file, open, with its metadata (mode bits tell whether it is executable).
    pub file: OpenFile,
    /// Its absolute path as the kernel resolved it: what is executed.
    pub real_path: PathBuf,
    /// How many segments of the request path name it; the rest is `PATH_INFO`.
    pub depth: usize,
}

/// A regular file opened read-only, with the metadata read from the same descriptor.
#[derive(Debug)]
pub struct OpenFile {
    /// The open file; reads use positional I/O so it can be shared.
    pub file: File,
    /// `fstat` of `file`, so size and mtime describe exactly what will be read.
    pub meta: Metadata,
}

/// A directory opened read-only.
#[derive(Debug)]
pub struct OpenDir {
    fd: OwnedFd,
    /// `fstat` of the directory.
    pub meta: Metadata,
}

impl std::os::fd::AsFd for OpenDir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl OpenDir {
    /// Whether the directory holds an entry `name` that is not a directory (a
    /// file, whether or not it can be opened, a symlink to something, wherever it
    /// is, anything else). A symlink to nothing holds nothing.
    pub fn holds_non_dir(&self, name: &[u8]) -> bool {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => false,
                // Only asked whether its target exists; nothing of it is read.
                FileType::Symlink => {
                    rustix::fs::statat(&self.fd, name, AtFlags::empty()).err()
                        != Some(rustix::io::Errno::NOENT)
                }
                _ => true,
            },
            Err(_) => false,
        }
    }
}

/// What a listed directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    /// Sorted first in listings.
    Dir,
    /// A regular file (or a symlink to one inside the root).
    File,
}

/// One directory entry, as listings show it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The raw file name bytes.
    pub name: Vec<u8>,
    /// Directory or file.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time, when the file system reports one.
    pub mtime: Option<SystemTime>,
}

/// What identifies one state of one file: if none of it changed, neither did the
/// bytes (a rewrite changes mtime and ctime; a replacement changes the inode; even a
/// deliberate reset of mtime changes ctime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileState {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileState {
    /// Whether the file changed so recently (its mtime or ctime less than `within`
    /// ago, or later than now) that a write may still be under way. A write moves
    /// the state when it begins, not when it ends, so bytes read now may be a mix
    /// of two versions under the state the second will keep: what is learned of them
    /// must not be kept by that state alone.
    pub fn is_recent(&self, within: Duration) -> bool {
        let nanos = |(secs, nsec): (i64, i64)| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        let changed = nanos(self.mtime).max(nanos(self.ctime));
        let now = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(_) => return true,
        };
        now - changed < within.as_nanos() as i128
    }

    /// The file's length in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Every field as fixed little-endian bytes (device, inode, size, mtime and ctime
    /// as seconds and nanoseconds): the same state is the same bytes on any build.
    pub fn to_bytes(&self) -> [u8; 56] {
        let mut out = [0u8; 56];
        let fields = [
            self.dev.to_le_bytes(),
            self.ino.to_le_bytes(),
            self.size.to_le_bytes(),
            self.mtime.0.to_le_bytes(),
            self.mtime.1.to_le_bytes(),
            self.ctime.0.to_le_bytes(),
            self.ctime.1.to_le_bytes(),
        ];
        for (chunk, field) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&field);
        }
        out
    }

    /// The state `meta` (from `fstat`) describes.
    pub fn of(meta: &Metadata) -> FileState {
        use std::os::unix::fs::MetadataExt;
        FileState {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    fn from_stat(st: &rustix::fs::Stat) -> FileState {
        // Field widths differ between targets; these conversions are lossless on Linux.
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        FileState {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }
}

impl Root {
    /// The current state of what `rel` (relative to the root, as stored from a
    /// [`SitePath`] that was opened before) names, by one `fstatat`. Used to revalidate
    /// cached responses: a match means the very file (same inode, same content state)
    /// that was resolved beneath the root earlier; anything else, including a path that
    /// now leads elsewhere, is a mismatch and goes back through [`Root::open`].
    pub fn state_of(&self, rel: &std::ffi::CStr) -> Option<FileState> {
        rustix::fs::statat(&self.dir, rel, AtFlags::empty())
            .ok()
            .map(|st| FileState::from_stat(&st))
    }

    /// Like [`Root::state_of`], but of `rel` itself when it is a symlink: a match with
    /// the state of a file opened through `rel` means `rel` is that very file and no
    /// symlink to it.
    pub fn own_state_of(&self, rel: &std::ffi::CStr) -> Option<FileState> {
        rustix::fs::statat(&self.dir, rel, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileState::from_stat(&st))
    }

    /// The root and every folder between it and what `path` names, held open (as
    /// `O_PATH`, nothing read) in that order, for watches that must see any of them
    /// renamed or replaced. `None` when a folder on the way is a symlink (whose
    /// target's own surroundings could change unseen) or cannot be opened. Each
    /// folder is opened from the one before by a single name, never following a
    /// symlink, so nothing outside the root is opened.
    pub fn folders_on(&self, path: &SitePath) -> Option<Vec<OwnedFd>> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let (_, parents) = path.segments().split_last()?;
        let mut folders = vec![rustix::fs::openat(&self.dir, ".", flags, Mode::empty()).ok()?];
        for name in parents {
            let at = folders.last()?;
            folders.push(rustix::fs::openat(at, name.as_slice(), flags, Mode::empty()).ok()?);
        }
        Some(folders)
    }

    /// Opens `path` as the root to serve.
    ///
    /// Fails with a message fit for a startup error when it is missing, not a
    /// directory, or unreadable.
    pub fn open_dir(path: &Path, follow_symlinks: bool) -> Result<Root, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("root directory {shown} does not exist"),
            _ => format!("cannot open root directory {shown}: {e}"),
        })?;
        if !meta.is_dir() {
            return Err(format!("root {shown} is not a directory"));
        }
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open root directory {shown}: {e}"))?;
        let given = path.to_path_buf();
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(Root {
            dir,
            path,
            given,
            follow_symlinks,
            use_openat2: AtomicBool::new(cfg!(target_os = "linux")),
            withheld: Withheld::default(),
        })
    }

    /// Never serves nor lists the files at `paths` (wharf's configuration file and TLS
    /// key) or their compressed copies (`.gz`, `.br`, `.zst`), by any name or link
    /// under the root. What each path names is looked up again whenever a file is
    /// opened or a folder listed, so a key replaced on disk stays withheld too, and
    /// what it named before is remembered. This costs a `stat` per path for each
    /// file opened on a cache miss, and nothing when `paths` is empty.
    pub fn withholding(mut self, paths: Vec<PathBuf>) -> Root {
        self.withheld.paths = paths;
        // What was loaded at startup, before anything can move it.
        self.withheld.ids();
        self
    }

    /// Whether `other` is open on the very folder this root is: the same device
    /// and inode, not merely the same path. A deploy that renames a new release
    /// into place, or swaps a symlink, leaves the path as it was and changes this.
    pub fn same_folder_as(&self, other: &Root) -> bool {
        match (rustix::fs::fstat(&self.dir), rustix::fs::fstat(&other.dir)) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        }
    }

    /// The (device, inode) of the folder the configured path names now, when that
    /// is not the folder served: a new release renamed into place, a swapped
    /// symlink, a folder deleted and made again. `None` while it is the same, or
    /// names nothing (nothing to serve instead).
    pub fn replaced_by(&self) -> Option<(u64, u64)> {
        let now = rustix::fs::stat(&self.given).ok()?;
        let held = rustix::fs::fstat(&self.dir).ok()?;
        let is_dir = rustix::fs::FileType::from_raw_mode(now.st_mode).is_dir();
        (is_dir && (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino))
            .then_some((now.st_dev, now.st_ino))
    }

    /// The canonical path of the root, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens what `path` names, never leaving the root unless symlinks may be followed.
    ///
    /// Escapes, loops and special files come back as `NotFound`, so a client learns
    /// nothing about what lies outside the root.
    pub fn open(&self, path: &SitePath) -> io::Result<Node> {
        let fd = self.open_fd(&path.relative_fs_path())?;
        let file = File::from(fd);
        let meta = file.metadata()?;
        if meta.is_file() {
            if self.is_withheld(path, &meta) {
                return Err(not_found());
            }
            Ok(Node::File(OpenFile { file, meta }))
        } else if meta.is_dir() {
            Ok(Node::Dir(OpenDir {
                fd: file.into(),
                meta,
            }))
        } else {
            Err(not_found())
        }
    }

    /// Whether the file opened at `path` (with `meta`) is a withheld one or a
    /// compressed copy of one.
    fn is_withheld(&self, path: &SitePath, meta: &Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        let ids = self.withheld.ids();
        if ids.is_empty() {
            return false;
        }
        if ids.contains(&(meta.dev(), meta.ino())) {
            return true;
        }
        let rel = path.relative_fs_path();
        let stem = compressed_stem(rel.as_os_str().as_bytes())
            .map(|stem| Path::new(std::ffi::OsStr::from_bytes(stem)));
        stem.and_then(|stem| self.open_fd(stem).ok())
            .and_then(|fd| rustix::fs::fstat(&fd).ok())
            .is_some_and(|st| ids.contains(&stat_id(&st)))
    }

    fn open_fd(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.open_fd_following(rel, self.follow_symlinks)
    }

    /// [`Root::open_fd`], following symlinks out of the root only when `follow`
    /// (reads, with `--follow-symlinks`); writes never do.
    fn open_fd_following(&self, rel: &Path, follow: bool) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        if follow {
            // `rel` holds no `..` (see SitePath), so only a symlink can lead out, and
            // the operator has allowed exactly that.
            return rustix::fs::openat(&self.dir, rel, flags, Mode::empty()).map_err(map_err);
        }
        #[cfg(target_os = "linux")]
        if self.use_openat2.load(Ordering::Relaxed) {
            use rustix::fs::ResolveFlags;
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.dir, rel, flags, Mode::empty(), resolve) {
                Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) => {
                    tracing::warn!(
                        "openat2 is unavailable; resolving paths component by component"
                    );
                    self.use_openat2.store(false, Ordering::Relaxed);
                }
                Err(rustix::io::Errno::AGAIN) => {
                    // The kernel saw a concurrent rename and refuses to guess; the walk
                    // below is just as strict.
                }
                Err(rustix::io::Errno::XDEV) => return self.open_left(rel, flags),
                other => return other.map_err(map_err),
            }
        }
        match walk_beneath(&self.dir, rel, flags) {
            Err(rustix::io::Errno::XDEV) => self.open_left(rel, flags),
            other => other.map_err(map_err),
        }
    }

    /// A path whose resolution left the root (an absolute symlink, or `../site/a`
    /// from the root `site`) may still end inside it, as `/srv/site/a` does: opened
    /// as the kernel resolves it, and kept only when what it opened is under the
    /// root. Nothing is read before that is known.
    fn open_left(&self, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        use std::os::fd::AsRawFd;
        let fd = rustix::fs::openat(&self.dir, rel, flags, Mode::empty()).map_err(map_err)?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|_| not_found())?;
        if real.starts_with(&self.path) {
            Ok(fd)
        } else {
            Err(not_found())
        }
    }

    /// Finds the program a request path names (a CGI script, a FastCGI app's
    /// script): the longest prefix of `path` that is a regular file, as
    /// [`Root::open`] resolves it, and what is left of the path after it
    /// (`PATH_INFO`). A path that is folders all the way down is a [`Located::Folder`].
    pub fn locate(&self, path: &SitePath) -> io::Result<Located> {
        let segments = path.segments();
        for depth in 1..=segments.len() {
            let prefix = SitePath::from_segments(segments[..depth].to_vec());
            match self.open(&prefix)? {
                Node::Dir(_) => continue,
                Node::File(file) => {
                    let real_path = self.real_path(&file.file)?;
                    return Ok(Located::Program(Box::new(Program {
                        file,
                        real_path,
                        depth,
                    })));
                }
            }
        }
        Ok(Located::Folder)
    }

    /// Where the kernel found `file`: the absolute path, symlinks resolved, that a
    /// program is executed by. Unless symlinks may be followed it must lie beneath
    /// the root (it does, as the resolver opened it; this is the check that says so).
    fn real_path(&self, file: &File) -> io::Result<PathBuf> {
        use std::os::fd::AsRawFd;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        if !self.follow_symlinks && !real.starts_with(&self.path) {
            return Err(not_found());
        }
        Ok(real)
    }

    /// Lists a directory opened by [`Root::open`]. `path` is where it was found, so
    /// that symlinked entries are listed only when they resolve inside the root.
    pub fn list(&self, dir: OpenDir, path: &SitePath) -> io::Result<Vec<Entry>> {
        let dir_fd = dir.fd.try_clone()?;
        let mut reader = Dir::new(dir.fd).map_err(io::Error::from)?;
        let mut entries = Vec::new();
        let withheld = self.withheld.ids();
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(io::Error::from)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." || name.starts_with(RESERVED_PREFIX) {
                continue;
            }
            let stat = match entry.file_type() {
                FileType::Symlink | FileType::Unknown => self.stat_link(path, name),
                _ => rustix::fs::statat(&dir_fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW).ok(),
            };
            let is_withheld = |st: &rustix::fs::Stat| {
                withheld.contains(&stat_id(st))
                    || compressed_stem(name).is_some_and(|stem| {
                        rustix::fs::statat(&dir_fd, stem, AtFlags::empty())
                            .is_ok_and(|st| withheld.contains(&stat_id(&st)))
                    })
            };
            let found = stat
                .filter(|st| withheld.is_empty() || !is_withheld(st))
                .and_then(|st| describe_stat(name, &st));
            if let Some(e) = found {
                entries.push(e);
            }
        }
        Ok(entries)
    }

    /// Stats a symlink (or an entry of unknown type) by resolving it the same way a
    /// request for it would be, so a link that leaves the root is not listed.
    fn stat_link(&self, dir: &SitePath, name: &[u8]) -> Option<rustix::fs::Stat> {
        let fd = self.open_fd(&dir.join(name).relative_fs_path()).ok()?;
        rustix::fs::fstat(&fd).ok()
    }
}

/// The (device, inode) a stat describes.
fn stat_id(st: &rustix::fs::Stat) -> (u64, u64) {
    // Field widths differ between targets; lossless on Linux.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    (st.st_dev as u64, st.st_ino as u64)
}

fn describe_stat(name: &[u8], st: &rustix::fs::Stat) -> Option<Entry> {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => EntryKind::Dir,
        FileType::RegularFile => EntryKind::File,
        _ => return None,
    };
    let mtime = u64::try_from(st.st_mtime)
        .ok()
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    Some(Entry {
        name: name.to_vec(),
        kind,
        size: if kind == EntryKind::File {
            u64::try_from(st.st_size).unwrap_or(0)
        } else {
            0
        },
        mtime,
    })
}

/// Resolves `rel` beneath `root` one component at a time. Every component is opened with
/// `O_NOFOLLOW` relative to the fd of its parent; a symlink is read and its target
/// pushed back onto the queue, and `..` pops back to the parent fd. An absolute
/// target or a `..` at the root is an escape and fails with `EXDEV`, as `openat2` does.
fn walk_beneath(root: &OwnedFd, rel: &Path, last_flags: OFlags) -> rustix::io::Result<OwnedFd> {
    use rustix::io::Errno;

    let mut pending: VecDeque<Vec<u8>> = components(rel.as_os_str().as_bytes());
    let mut parents: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        match name.as_slice() {
            b"" | b"." => continue,
            b".." => {
                if parents.pop().is_none() {
                    return Err(Errno::XDEV);
                }
                continue;
            }
            _ => {}
        }
        let at = parents.last().map_or(root.as_fd(), |fd| fd.as_fd());
        let is_last = pending.iter().all(|c| c.is_empty() || c == b".");
        let flags = if is_last {
            last_flags | OFlags::NOFOLLOW
        } else {
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW
        };
        match rustix::fs::openat(at, name.as_slice(), flags, Mode::empty()) {
            Ok(fd) if is_last => return Ok(fd),
            Ok(fd) => parents.push(fd),
            Err(err @ (Errno::LOOP | Errno::NOTDIR | Errno::MLINK)) => {
                let target = match rustix::fs::readlinkat(at, name.as_slice(), Vec::new()) {
                    Ok(target) => target.into_bytes(),
                    Err(_) => return Err(err),
                };
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP);
                }
                if target.starts_with(b"/") {
                    return Err(Errno::XDEV);
                }
                for component in components(&target).into_iter().rev() {
                    pending.push_front(component);
                }
            }
            Err(err) => return Err(err),
        }
    }
    // Every component was consumed by directories: reopen the last one for reading.
    let at = parents.last().map_or(root.as_fd(), |fd| fd.as_fd());
    rustix::fs::openat(at, ".", last_flags, Mode::empty())
}

fn components(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect()
}

/// Folds every "this path leads nowhere we serve" errno into `NotFound`, so escapes and
/// loops are indistinguishable from absent files.
fn map_err(err: rustix::io::Errno) -> io::Error {
    use rustix::io::Errno;
    match err {
        Errno::NOENT
        | Errno::NOTDIR
        | Errno::XDEV
        | Errno::LOOP
        | Errno::NAMETOOLONG
        | Errno::MLINK
        | Errno::NXIO => not_found(),
        other => io::Error::from(other),
    }
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_state_is_recent_for_a_while_after_its_last_change() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let at = |ago: i64| (now.as_secs() as i64 - ago, i64::from(now.subsec_nanos()));
        let state = |mtime, ctime| FileState {
            dev: 1,
            ino: 2,
            size: 3,
            mtime,
            ctime,
        };
        let second = Duration::from_secs(1);
        assert!(!state(at(10), at(5)).is_recent(second));
        // A reset modification time still leaves the change time recent.
        assert!(state(at(100), at(0)).is_recent(second));
        // Stamped in the future.
        assert!(state(at(-60), at(10)).is_recent(second));
    }

    use super::*;
    use std::os::unix::fs::symlink;

    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "TOPSECRET").unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("sub/deeper/b.txt"), "b").unwrap();
        symlink("../secret.txt", root.join("out")).unwrap();
        symlink(tmp.path().join("secret.txt"), root.join("abs")).unwrap();
        symlink("..", root.join("up")).unwrap();
        symlink("a.txt", root.join("in")).unwrap();
        symlink("../a.txt", root.join("sub/back")).unwrap();
        symlink("sub/deeper", root.join("deep")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        (tmp, root)
    }

    fn read(root: &Root, url: &str) -> io::Result<String> {
        match root.open(&SitePath::parse(url, true).unwrap())? {
            Node::File(f) => {
                let mut s = String::new();
                io::Read::read_to_string(&mut &f.file, &mut s)?;
                Ok(s)
            }
            Node::Dir(_) => Ok("<dir>".into()),
        }
    }

    /// Both resolvers must agree on every case, so the fallback is tested directly.
    fn check_resolver(root: &Root) {
        assert_eq!(read(root, "/a.txt").unwrap(), "a");
        assert_eq!(read(root, "/in").unwrap(), "a");
        assert_eq!(read(root, "/sub/back").unwrap(), "a");
        assert_eq!(read(root, "/deep/b.txt").unwrap(), "b");
        assert_eq!(read(root, "/sub").unwrap(), "<dir>");
        assert_eq!(read(root, "/").unwrap(), "<dir>");
        for escape in ["/out", "/abs", "/up/secret.txt", "/up", "/loop", "/missing"] {
            let err = read(root, escape).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{escape}");
        }
    }

    #[test]
    fn kernel_resolution_stays_beneath_root() {
        let (_tmp, dir) = fixture();
        check_resolver(&Root::open_dir(&dir, false).unwrap());
    }

    #[test]
    fn fallback_walk_stays_beneath_root() {
        let (_tmp, dir) = fixture();
        let root = Root::open_dir(&dir, false).unwrap();
        root.use_openat2.store(false, Ordering::Relaxed);
        check_resolver(&root);
    }

    #[test]
    fn follow_symlinks_allows_leaving_root() {
        let (_tmp, dir) = fixture();
        let root = Root::open_dir(&dir, true).unwrap();
        assert_eq!(read(&root, "/out").unwrap(), "TOPSECRET");
    }

    #[test]
    fn special_files_are_not_found() {
        let (_tmp, dir) = fixture();
        let fifo = dir.join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let root = Root::open_dir(&dir, false).unwrap();
        let err = read(&root, "/fifo").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn listing_skips_links_that_leave_root() {
        let (_tmp, dir) = fixture();
        let root = Root::open_dir(&dir, false).unwrap();
        let Node::Dir(d) = root.open(&SitePath::root()).unwrap() else {
            panic!("root is a directory")
        };
        let mut names: Vec<String> = root
            .list(d, &SitePath::root())
            .unwrap()
            .into_iter()
            .map(|e| String::from_utf8(e.name).unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a.txt", "deep", "in", "sub"]);
    }

    #[test]
    fn startup_errors_name_the_problem() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = Root::open_dir(&tmp.path().join("nope"), false).unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
        let file = tmp.path().join("f");
        std::fs::write(&file, "").unwrap();
        let not_dir = Root::open_dir(&file, false).unwrap_err();
        assert!(not_dir.contains("not a directory"), "{not_dir}");
    }
}
