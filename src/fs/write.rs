//! Changing what is under the root: the write side of the one path resolver.
//!
//! A folder to write in is resolved exactly as a read is (kernel-confined, symlinks
//! followed only while they stay beneath the root), and every change is then made
//! relative to that folder's descriptor by name: a symlink *at* the name is replaced
//! or removed itself, never followed. New content goes to a temporary file in the
//! target's folder ([`TempFile`]), is fsynced, and is renamed over the name in one
//! step, so a reader sees the old file or the new one and never a part; a temporary
//! file that is not persisted is removed when dropped; a copied folder is built
//! the same way, as a temporary folder ([`Staged`]). wharf's own secrets are never
//! replaced, moved or removed.
//!
//! All functions here block; callers run them on the blocking pool.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

use super::{map_err, stat_id, Root};
use crate::http::path::{SitePath, RESERVED_PREFIX};

/// Names of temporary files: reserved (never served, listed or written by clients),
/// recognisable after a crash.
const TEMP_PREFIX: &str = ".wharf-tmp-";

/// Distinguishes temporary files made by one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A folder under the root, open for changing its entries.
#[derive(Debug)]
pub struct WriteDir {
    fd: Arc<OwnedFd>,
}

/// What a name in a [`WriteDir`] is, without following a symlink there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    /// Nothing by that name.
    Missing,
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// A symlink or a special file: replaced or removed as an entry.
    Other,
}

impl Root {
    /// Opens the folder `dir` for writing in it; with `create`, missing folders on the
    /// way are made (as `mkdir -p`). A file where a folder should be is
    /// `NotADirectory`; a missing folder without `create` is `NotFound`.
    pub fn write_dir(&self, dir: &SitePath, create: bool) -> io::Result<WriteDir> {
        if create {
            return self.write_dir_making(dir).map(|(dir, made)| {
                made.keep();
                dir
            });
        }
        self.open_dir_fd(dir)
            .map(|fd| WriteDir { fd: Arc::new(fd) })
    }

    /// Opens the folder `dir` for writing in it, making the missing folders on the
    /// way; those are removed again when the returned [`MadeFolders`] is dropped
    /// unless it is kept, so that a write that fails leaves no trace.
    pub fn write_dir_making(&self, dir: &SitePath) -> io::Result<(WriteDir, MadeFolders)> {
        let mut made = MadeFolders(Vec::new());
        match self.open_dir_fd(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !dir.is_root() => {}
            other => return other.map(|fd| (WriteDir { fd: Arc::new(fd) }, made)),
        }
        // Walk down from the root, making what is missing. Each step resolves its
        // prefix from the root again, confined as every read is.
        let mut at = SitePath::root();
        for name in dir.segments() {
            let next = at.join(name);
            match self.open_dir_fd(&next) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let parent = self.open_dir_fd(&at)?;
                    match rustix::fs::mkdirat(&parent, name.as_slice(), Mode::from_raw_mode(0o755))
                    {
                        Ok(()) => made.0.push((parent, name.clone())),
                        Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(map_write_err(e)),
                    }
                }
                Err(e) => return Err(e),
            }
            at = next;
        }
        let fd = self.open_dir_fd(dir)?;
        Ok((WriteDir { fd: Arc::new(fd) }, made))
    }

    /// The folder `dir`, opened beneath the root; a file there is `NotADirectory`.
    fn open_dir_fd(&self, dir: &SitePath) -> io::Result<OwnedFd> {
        // Confined whatever `--follow-symlinks` allows reads: a write never leaves
        // the folder through a linked one.
        let fd = self.open_fd_following(&dir.relative_fs_path(), false)?;
        let st = rustix::fs::fstat(&fd).map_err(io::Error::from)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Ok(fd),
            FileType::RegularFile => Err(io::ErrorKind::NotADirectory.into()),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }

    /// Whether the entry `name` of `dir` is one of wharf's own secrets (or a
    /// compressed copy of one), which no client may replace, move or remove.
    pub fn is_secret(&self, dir: &WriteDir, name: &[u8]) -> bool {
        let ids = self.withheld.ids();
        if ids.is_empty() {
            return false;
        }
        let named = |n: &[u8]| {
            rustix::fs::statat(&*dir.fd, n, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| ids.contains(&stat_id(&st)))
        };
        named(name) || super::compressed_stem(name).is_some_and(named)
    }

    /// Whether the tree at `name` in `dir` holds one of wharf's own secrets.
    pub fn tree_holds_secret(&self, dir: &WriteDir, name: &[u8]) -> io::Result<bool> {
        if self.is_secret(dir, name) {
            return Ok(true);
        }
        if dir.entry_type(name)? != EntryType::Dir {
            return Ok(false);
        }
        let sub = dir.child(name)?;
        for entry in sub.names()? {
            if self.tree_holds_secret(&sub, &entry)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes temporary files left by a process that was killed mid-upload: every
    /// temporary file under the root named by a process that no longer runs, and last
    /// changed before `started`. Files of uploads under way — in this process, or in
    /// another serving the same folder (the one handing over in an upgrade, a
    /// neighbour with `--reuse-port`) — stay, as does any other `.wharf-tmp-` name
    /// wharf did not make. Returns how many went.
    pub fn remove_stale_temps(&self, started: SystemTime) -> usize {
        let Ok(top) = self.open_dir_fd(&SitePath::root()) else {
            return 0;
        };
        let mut removed = 0;
        let mut todo = vec![top];
        while let Some(dir) = todo.pop() {
            let dir = WriteDir { fd: Arc::new(dir) };
            let Ok(names) = dir.all_names() else {
                continue;
            };
            for name in names {
                let Ok(st) =
                    rustix::fs::statat(&*dir.fd, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                else {
                    continue;
                };
                let changed = SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_secs(u64::try_from(st.st_mtime).unwrap_or(0));
                let stale = match left_by(&name) {
                    Writer::Ended => changed < started,
                    // Another process with the PID, in this PID namespace: a
                    // container's PID 1 after a restart, or a neighbour's in its
                    // own namespace sharing the folder, whose upload may still be
                    // under way. Only one untouched for longer than any write
                    // waits for its client is a leftover.
                    Writer::PidReused => changed + PID_REUSED_AFTER < started,
                    Writer::Running => false,
                };
                match FileType::from_raw_mode(st.st_mode) {
                    // A copied tree being built when its process was killed.
                    FileType::Directory if stale && dir.remove(&name).is_ok() => removed += 1,
                    FileType::Directory => {
                        let flags =
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                        if let Ok(fd) =
                            rustix::fs::openat(&*dir.fd, name.as_slice(), flags, Mode::empty())
                        {
                            todo.push(fd);
                        }
                    }
                    FileType::RegularFile
                        if stale
                            && rustix::fs::unlinkat(
                                &*dir.fd,
                                name.as_slice(),
                                AtFlags::empty(),
                            )
                            .is_ok() =>
                    {
                        removed += 1
                    }
                    _ => {}
                }
            }
        }
        removed
    }
}

/// What became of the process that made a temporary file.
#[derive(Debug, PartialEq, Eq)]
enum Writer {
    /// No process has its PID.
    Ended,
    /// The process with its PID started at another time than it did.
    PidReused,
    /// It may still run (or the name is not a temporary file's).
    Running,
}

/// How long a temporary file whose PID another process has must be left untouched
/// before it counts as left over (see [`Writer::PidReused`]).
const PID_REUSED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// The writer of a temporary file named `.wharf-tmp-PID-N-NANOS-START`: ended
/// when no process has the PID; when the one that has it started at another time
/// than START, the PID was used again (but in a PID namespace of its own, the same
/// PID and another start is also a neighbour's). A name without START (made where
/// `/proc` is not mounted) is judged by the PID alone.
fn left_by(name: &[u8]) -> Writer {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX.as_bytes()) else {
        return Writer::Running;
    };
    let mut parts = rest.split(|b| *b == b'-').map(|p| {
        std::str::from_utf8(p)
            .ok()
            .and_then(|p| p.parse::<u64>().ok())
    });
    let Some(pid) = parts
        .next()
        .flatten()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Writer::Running;
    };
    // Signal 0 asks only whether the process exists (EPERM: it does, as another
    // user's).
    if rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH) {
        return Writer::Ended;
    }
    match parts.nth(2).flatten() {
        Some(start) if process_start(pid.as_raw_nonzero().get()).is_some_and(|s| s != start) => {
            Writer::PidReused
        }
        _ => Writer::Running,
    }
}

/// When the process `pid` started, in clock ticks since boot (`/proc/PID/stat`'s
/// 22nd field): with the PID, it names one process for as long as the machine runs.
fn process_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (2nd field) may hold spaces and parentheses; it ends at the
    // last `)`, after which fields 3 onwards follow.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// This process's start ([`process_start`]), looked up once.
fn own_start() -> Option<u64> {
    static START: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *START.get_or_init(|| process_start(i32::try_from(std::process::id()).ok()?))
}

impl WriteDir {
    /// What `name` is here, not following a symlink.
    pub fn entry_type(&self, name: &[u8]) -> io::Result<EntryType> {
        match rustix::fs::statat(&*self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => EntryType::File,
                FileType::Directory => EntryType::Dir,
                _ => EntryType::Other,
            }),
            Err(rustix::io::Errno::NOENT) => Ok(EntryType::Missing),
            Err(e) => Err(map_write_err(e)),
        }
    }

    /// This folder's (device, inode).
    pub fn identity(&self) -> io::Result<(u64, u64)> {
        let st = rustix::fs::fstat(&*self.fd).map_err(map_write_err)?;
        Ok((st.st_dev, st.st_ino))
    }

    /// The (device, inode) of what `name` here is, through a symlink, and whether it
    /// is a folder; `None` when nothing is there. Only compared, never opened: it
    /// tells two names of one file or folder apart from two files.
    pub fn identity_of(&self, name: &[u8]) -> Option<((u64, u64), bool)> {
        let st = rustix::fs::statat(&*self.fd, name, AtFlags::empty()).ok()?;
        let folder = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        Some(((st.st_dev, st.st_ino), folder))
    }

    /// The folder `name` inside this one (not through a symlink).
    pub fn child(&self, name: &[u8]) -> io::Result<WriteDir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd =
            rustix::fs::openat(&*self.fd, name, flags, Mode::empty()).map_err(map_write_err)?;
        Ok(WriteDir { fd: Arc::new(fd) })
    }

    /// The names in this folder, reserved ones left out.
    pub fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        Ok(self
            .all_names()?
            .into_iter()
            .filter(|n| !n.starts_with(RESERVED_PREFIX))
            .collect())
    }

    /// Every name in this folder, reserved ones included.
    pub fn all_names(&self) -> io::Result<Vec<Vec<u8>>> {
        let dup = rustix::io::dup(&*self.fd).map_err(io::Error::from)?;
        let mut reader = Dir::new(dup).map_err(io::Error::from)?;
        let mut names = Vec::new();
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(io::Error::from)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        Ok(names)
    }

    /// A new, empty temporary file in this folder, removed unless persisted.
    pub fn temp_file(&self) -> io::Result<TempFile> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        loop {
            let name = temp_name()?;
            match rustix::fs::openat(&*self.fd, &name, flags, Mode::from_raw_mode(0o644)) {
                Ok(fd) => {
                    return Ok(TempFile {
                        dir: Arc::clone(&self.fd),
                        name,
                        file: Arc::new(File::from(fd)),
                        kept: false,
                        made: None,
                    })
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(map_write_err(e)),
            }
        }
    }

    /// A new, empty temporary folder in this folder, removed with all it holds
    /// unless put in place ([`Staged::put`]): a copied tree is built there and
    /// appears whole or not at all.
    pub fn temp_dir(&self) -> io::Result<Staged> {
        loop {
            let name = temp_name()?;
            match rustix::fs::mkdirat(&*self.fd, &name, Mode::from_raw_mode(0o755)) {
                Ok(()) => {
                    return Ok(Staged {
                        dir: WriteDir {
                            fd: Arc::clone(&self.fd),
                        },
                        name,
                        placed: false,
                    })
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(map_write_err(e)),
            }
        }
    }

    /// Makes the folder `name` here; `AlreadyExists` if the name is taken.
    pub fn mkdir(&self, name: &[u8]) -> io::Result<()> {
        rustix::fs::mkdirat(&*self.fd, name, Mode::from_raw_mode(0o755)).map_err(map_write_err)
    }

    /// Removes `name` here: a file or symlink, or a folder with everything in it.
    pub fn remove(&self, name: &[u8]) -> io::Result<()> {
        if self.entry_type(name)? == EntryType::Dir {
            let sub = self.child(name)?;
            for entry in sub.all_names()? {
                sub.remove(&entry)?;
            }
            rustix::fs::unlinkat(&*self.fd, name, AtFlags::REMOVEDIR).map_err(map_write_err)
        } else {
            rustix::fs::unlinkat(&*self.fd, name, AtFlags::empty()).map_err(map_write_err)
        }
    }

    /// Removes `name` here as [`WriteDir::remove`] does, but goes on past what
    /// cannot be removed: returns each such entry (its path below this folder, as
    /// names, and why), never a folder that stayed only because something in it
    /// did.
    pub fn remove_what_can_be(&self, name: &[u8]) -> Vec<(Vec<Vec<u8>>, io::Error)> {
        let mut failed = Vec::new();
        self.remove_into(name, &mut Vec::new(), &mut failed);
        failed
    }

    fn remove_into(
        &self,
        name: &[u8],
        at: &mut Vec<Vec<u8>>,
        failed: &mut Vec<(Vec<Vec<u8>>, io::Error)>,
    ) {
        at.push(name.to_vec());
        let before = failed.len();
        let removed = match self.entry_type(name) {
            Ok(EntryType::Dir) => match self.child(name).and_then(|sub| {
                for entry in sub.all_names()? {
                    sub.remove_into(&entry, at, failed);
                }
                Ok(())
            }) {
                Ok(()) => {
                    rustix::fs::unlinkat(&*self.fd, name, AtFlags::REMOVEDIR).map_err(map_write_err)
                }
                Err(e) => Err(e),
            },
            Ok(_) => rustix::fs::unlinkat(&*self.fd, name, AtFlags::empty()).map_err(map_write_err),
            Err(e) => Err(e),
        };
        // A folder left because of what is in it was no failure of its own.
        if let Err(e) = removed {
            if failed.len() == before {
                failed.push((at.clone(), e));
            }
        }
        at.pop();
    }

    /// Renames `name` here to `to_name` in `to`, in one step; with `replace` an entry
    /// there is replaced (a folder only by a folder, and only an empty one), else the
    /// rename fails with `AlreadyExists`.
    pub fn rename(
        &self,
        name: &[u8],
        to: &WriteDir,
        to_name: &[u8],
        replace: bool,
    ) -> io::Result<()> {
        rename_at(&self.fd, name, &to.fd, to_name, replace)
    }

    /// Makes what was written to this folder durable (its entries, after a rename).
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&*self.fd).map_err(io::Error::from)
    }

    /// Opens the regular file `name` here for reading (not through a symlink).
    pub fn open_file(&self, name: &[u8]) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd =
            rustix::fs::openat(&*self.fd, name, flags, Mode::empty()).map_err(map_write_err)?;
        Ok(File::from(fd))
    }

    /// Opens the existing regular file `name` here for reading and writing at any offset (not
    /// through a symlink).
    pub fn open_file_rw(&self, name: &[u8]) -> io::Result<File> {
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd =
            rustix::fs::openat(&*self.fd, name, flags, Mode::empty()).map_err(map_write_err)?;
        Ok(File::from(fd))
    }

    /// The descriptor, for extended attributes and other per-folder calls.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

/// Folders a write made on its way to its target (each as its parent and name),
/// removed again, deepest first and only while still empty, when this is dropped
/// without [`MadeFolders::keep`].
#[derive(Debug)]
pub struct MadeFolders(Vec<(OwnedFd, Vec<u8>)>);

impl MadeFolders {
    /// The folders stay: what was written into them was stored.
    pub fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for MadeFolders {
    fn drop(&mut self) {
        for (parent, name) in self.0.iter().rev() {
            // Not empty: another write put something there meanwhile, so it stays.
            let _ = rustix::fs::unlinkat(parent, name.as_slice(), AtFlags::REMOVEDIR);
        }
    }
}

/// A name for a temporary file or folder: reserved, and naming this process so
/// that what a killed one left is recognised ([`Root::remove_stale_temps`]).
fn temp_name() -> io::Result<CString> {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let pid = std::process::id();
    let name = match own_start() {
        Some(start) => format!("{TEMP_PREFIX}{pid}-{n}-{nanos:08x}-{start}"),
        None => format!("{TEMP_PREFIX}{pid}-{n}-{nanos:08x}"),
    };
    CString::new(name).map_err(io::Error::other)
}

/// A temporary entry (a folder, see [`WriteDir::temp_dir`]) being filled in its
/// target's folder; removed when dropped unless put in place.
#[derive(Debug)]
pub struct Staged {
    dir: WriteDir,
    name: CString,
    placed: bool,
}

impl Staged {
    /// The temporary folder, to fill.
    pub fn open(&self) -> io::Result<WriteDir> {
        self.dir.child(self.name.to_bytes())
    }

    /// Gives the staged entry the name `name` in its folder in one step. Without
    /// `replace`, a name that is taken fails with `AlreadyExists` (and the staged
    /// entry is removed). With it, whatever is there (a file, a folder and its
    /// tree) is exchanged for the staged entry in one step and then removed: a
    /// reader sees the old entry or the new one, never neither. Returns whether
    /// something was replaced.
    pub fn put(mut self, name: &[u8], replace: bool) -> io::Result<bool> {
        let replaced = put_in_place(&self.dir, self.name.to_bytes(), name, replace)?;
        self.placed = true;
        Ok(replaced)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.placed {
            let _ = self.dir.remove(self.name.to_bytes());
        }
    }
}

/// Gives the temporary entry `temp` of `dir` the name `name`, as [`Staged::put`]
/// describes: without `replace` a taken name is `AlreadyExists`; with it, what is
/// there is exchanged for `temp` and then removed. The folder is synced. Returns
/// whether something was replaced.
fn put_in_place(dir: &WriteDir, temp: &[u8], name: &[u8], replace: bool) -> io::Result<bool> {
    let replaced = match rename_at(&dir.fd, temp, &dir.fd, name, false) {
        Ok(()) => false,
        Err(e) if replace && e.kind() == io::ErrorKind::AlreadyExists => {
            exchange_at(&dir.fd, temp, name)?;
            true
        }
        Err(e) => return Err(e),
    };
    // What was replaced now has the temporary name. Should removing it fail, the
    // next start's clean-up finds it.
    if replaced {
        let _ = dir.remove(temp);
    }
    rustix::fs::fsync(&*dir.fd).map_err(io::Error::from)?;
    Ok(replaced)
}

/// Swaps the entries `a` and `b` of one folder in one step.
fn exchange_at(dir: &OwnedFd, a: &[u8], b: &[u8]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::renameat_with(dir, a, dir, b, rustix::fs::RenameFlags::EXCHANGE)
            .map_err(map_write_err)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (dir, a, b);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "replacing a folder in one step needs Linux",
        ))
    }
}

/// A temporary file being written in its target's folder.
#[derive(Debug)]
pub struct TempFile {
    dir: Arc<OwnedFd>,
    name: CString,
    file: Arc<File>,
    kept: bool,
    /// Folders made for this file: removed after it, unless it is kept (fields drop
    /// after [`Drop::drop`] has removed the file, so the folders are empty by then).
    made: Option<MadeFolders>,
}

impl TempFile {
    /// The open file, for positional writes.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// This file with the folders made for it, which go when it goes.
    pub fn with_made_folders(mut self, made: MadeFolders) -> TempFile {
        self.made = Some(made);
        self
    }

    /// The temporary name in its folder.
    pub fn name(&self) -> &CStr {
        &self.name
    }

    /// Makes the content durable and gives it the name `name` in the same folder, in
    /// one step: an existing file there is replaced when `replace` (else
    /// `AlreadyExists` and the temporary file is removed). The folder is synced too,
    /// so the new name survives a crash.
    pub fn persist(mut self, name: &[u8], replace: bool) -> io::Result<()> {
        self.file.sync_all()?;
        rename_at(&self.dir, self.name.to_bytes(), &self.dir, name, replace)?;
        self.kept = true;
        if let Some(made) = self.made.take() {
            made.keep();
        }
        rustix::fs::fsync(&*self.dir).map_err(io::Error::from)
    }
}

impl TempFile {
    /// Makes the content durable and gives it the name `name`, as
    /// [`Staged::put`] does: without `replace` a taken name is `AlreadyExists`;
    /// with it, whatever is there, a folder too, is exchanged for the file in one
    /// step and then removed. Returns whether something was replaced.
    pub fn put(mut self, name: &[u8], replace: bool) -> io::Result<bool> {
        self.file.sync_all()?;
        let dir = WriteDir {
            fd: Arc::clone(&self.dir),
        };
        let replaced = put_in_place(&dir, self.name.to_bytes(), name, replace)?;
        self.kept = true;
        if let Some(made) = self.made.take() {
            made.keep();
        }
        Ok(replaced)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = rustix::fs::unlinkat(&*self.dir, &self.name, AtFlags::empty());
        }
    }
}

fn rename_at(
    from_dir: &OwnedFd,
    from: &[u8],
    to_dir: &OwnedFd,
    to: &[u8],
    replace: bool,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::RenameFlags;
        let flags = if replace {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        rustix::fs::renameat_with(from_dir, from, to_dir, to, flags).map_err(map_write_err)
    }
    #[cfg(not(target_os = "linux"))]
    {
        if !replace && rustix::fs::statat(to_dir, to, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        rustix::fs::renameat(from_dir, from, to_dir, to).map_err(map_write_err)
    }
}

/// Errors of writing calls, with the kinds callers turn into statuses; what the read
/// side folds into `NotFound` (escapes) still is.
fn map_write_err(err: rustix::io::Errno) -> io::Error {
    use rustix::io::Errno;
    match err {
        Errno::EXIST => io::ErrorKind::AlreadyExists.into(),
        Errno::NOTEMPTY => io::ErrorKind::DirectoryNotEmpty.into(),
        Errno::ISDIR => io::ErrorKind::IsADirectory.into(),
        Errno::NOTDIR => io::ErrorKind::NotADirectory.into(),
        Errno::NOSPC | Errno::DQUOT => io::ErrorKind::StorageFull.into(),
        Errno::ROFS => io::ErrorKind::ReadOnlyFilesystem.into(),
        Errno::ACCESS | Errno::PERM => io::ErrorKind::PermissionDenied.into(),
        other => map_err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::{left_by, Writer};

    #[test]
    fn only_temporaries_of_ended_processes_are_stale() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let ended = child.id();
        child.wait().unwrap();
        let name = |pid: &str| format!(".wharf-tmp-{pid}-0-0000abcd").into_bytes();
        assert_eq!(left_by(&name(&ended.to_string())), Writer::Ended);
        let own = std::process::id().to_string();
        assert_eq!(left_by(&name(&own)), Writer::Running);
        // With the process's start: the same PID in an earlier run is another
        // process (a container's PID 1 after a restart).
        let start = super::own_start().unwrap();
        let made = |start: u64| format!(".wharf-tmp-{own}-0-0000abcd-{start}").into_bytes();
        assert_eq!(left_by(&made(start)), Writer::Running);
        assert_eq!(left_by(&made(start + 1)), Writer::PidReused);
        assert_eq!(
            left_by(super::temp_name().unwrap().as_bytes()),
            Writer::Running
        );
        assert_eq!(left_by(b".wharf-tmp-keepme"), Writer::Running);
        assert_eq!(left_by(b".wharf-tmp--1-0-0"), Writer::Running);
        assert_eq!(left_by(b"other-123-0-0"), Writer::Running);
    }
}
