//! Word from the kernel that a cached listing's folder, or a cached file, changed.
//!
//! A cached listing shows each entry's size and modification time, which a write to
//! a file changes without changing the folder's own state. Each folder is watched
//! with inotify from before it is read for a listing; the kernel queues an event
//! for every change to the folder or to a file in it by the time the change returns
//! to its writer, and the queue is read before each listing is answered from the
//! cache. So a request sent after such a change never gets the listing from before
//! it. A folder that cannot be watched (the kernel's limit on watches reached, or no
//! inotify) is only revalidated by its own state and the listing's lifetime.
//!
//! A cached file is watched the same way ([`PathWatch`]): the file itself, whatever
//! name it is written through, and every folder from the root down to it, in which
//! a rename or a new entry could put another file at its path. While none of them
//! reported anything, catching up with the queue (usually one ioctl that finds it
//! empty) vouches for the file in place of an `fstatat` of its path, which walks the
//! path and costs more. A report on the file itself drops it from the cache (see
//! [`PathWatch::file_changed`]); after a report on a folder the file is checked by
//! its state again, and a check that finds it unchanged re-arms the watch.
//!
//! What inotify does not report still waits for the listing's lifetime, or for a
//! file's next check by state ([`RECHECK_EVERY`]): a change inside a subfolder
//! (which moves only that subfolder's time), a file changed through a hard link in
//! another folder (listings) or through `mmap`, a symlink's target, a change another
//! machine makes on a network file system. Paths through a symlinked folder are not
//! watched at all; their files are checked by state on every request.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

/// Everything that changes what a listing of the folder shows.
const CHANGES: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::CREATE)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

/// Everything that changes a file's content or what its state says, through any of
/// its names.
const FILE_CHANGES: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF);

/// The longest a watched file is vouched for without a check of its state: the
/// bound on how long a change inotify does not report (see the module's text) may
/// go unseen.
pub const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// A report count that can never match again: the watch is gone.
const GONE: u64 = u64::MAX;

/// How many new watches between two sweeps of those nothing needs any more.
const SWEEP_EVERY: usize = 256;
/// The most folders and files watched at once: the kernel's watches are counted per
/// user (`max_user_watches`), shared with every other program the user runs.
const MAX_WATCHED: usize = 4096;
/// How many of those cached files' watches may take, so that many cached files do
/// not leave listings to be revalidated by time only.
const MAX_WATCHED_FOR_FILES: usize = MAX_WATCHED - 1024;

/// One listing's "its folder changed" mark, set when the kernel says so.
#[derive(Debug, Clone)]
pub struct Mark(Arc<AtomicBool>);

impl Mark {
    /// Whether the folder changed since the mark was made (as of the last
    /// [`FolderWatch::catch_up`]).
    pub fn changed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The watched folders and files of one served root, by watch descriptor.
#[derive(Debug)]
pub struct FolderWatch {
    /// `None` when the kernel gave no inotify instance.
    inner: Option<Mutex<Watched>>,
    added: AtomicUsize,
    /// How many catch-ups were asked for, numbered from 1 ...
    asked: AtomicU64,
    /// ... and the number of the last one the queue was read for, or after: every
    /// catch-up up to it has all it asked for (see [`FolderWatch::catch_up`]).
    read_for: AtomicU64,
}

/// The watches vouching that a cached file has not changed (see the module's text).
#[derive(Debug)]
pub struct PathWatch {
    /// Each watch's count of reports, shared with the watch: the folders' from the
    /// root down, then the file's.
    counts: Vec<Arc<AtomicU64>>,
    /// The file's count when the watch was made, before the file was read.
    file_count: u64,
    /// The sum of the counts when the file was last known unchanged.
    seen: AtomicU64,
    /// When that was, in [`clock`] milliseconds.
    checked: AtomicU64,
}

impl PathWatch {
    /// The sum of the counts now (as of the last [`FolderWatch::catch_up`]); `None`
    /// when a watch is gone.
    pub fn total(&self) -> Option<u64> {
        self.counts.iter().try_fold(0u64, |sum, count| {
            let count = count.load(Ordering::Acquire);
            (count != GONE).then(|| sum.wrapping_add(count))
        })
    }

    /// Whether the kernel reported a change to the file itself since before it was
    /// read (as of the last [`FolderWatch::catch_up`]). Its state cannot clear it: a
    /// write under way while the file was read changes the state when it begins and
    /// is reported when it ends, so what was read may be a mix of two versions under
    /// the state of the second.
    pub fn file_changed(&self) -> bool {
        self.counts
            .last()
            .is_none_or(|count| count.load(Ordering::Acquire) != self.file_count)
    }

    /// Whether nothing was reported since the file was last known unchanged at
    /// `total`, and that was recently enough.
    pub fn vouches_at(&self, total: u64) -> bool {
        total == self.seen.load(Ordering::Acquire)
            && clock().saturating_sub(self.checked.load(Ordering::Relaxed))
                < RECHECK_EVERY.as_millis() as u64
    }

    /// Records that the file was found unchanged after the counts summed to `total`.
    pub fn confirm(&self, total: u64) {
        self.seen.store(total, Ordering::Release);
        self.checked.store(clock(), Ordering::Relaxed);
    }
}

/// Milliseconds of the kernel's coarse monotonic clock: a few milliseconds of
/// resolution is plenty for [`RECHECK_EVERY`], and it is cheaper to read than the
/// precise clock on every hit.
fn clock() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    let ms = u64::try_from(t.tv_sec).unwrap_or(0).saturating_mul(1000);
    ms.saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0) / 1_000_000)
}

#[derive(Debug)]
struct Watched {
    fd: OwnedFd,
    /// What hears of each watch.
    watches: HashMap<i32, Listeners>,
}

/// Who hears of one watch's reports.
#[derive(Debug, Default)]
struct Listeners {
    /// Listings' marks; a mark no listing holds is gone.
    marks: Vec<Weak<AtomicBool>>,
    /// The count the [`PathWatch`]es through here share, while any is held.
    count: Weak<AtomicU64>,
}

impl Listeners {
    fn report(&self) {
        for mark in self.marks.iter().filter_map(Weak::upgrade) {
            mark.store(true, Ordering::Release);
        }
        if let Some(count) = self.count.upgrade() {
            // Never onto GONE: a gone watch stays gone.
            let _ = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c != GONE).then(|| c.wrapping_add(1) % GONE)
            });
        }
    }

    fn needed(&mut self) -> bool {
        self.marks.retain(|m| m.strong_count() > 0);
        !self.marks.is_empty() || self.count.strong_count() > 0
    }
}

impl FolderWatch {
    /// A watch with no folders yet.
    pub fn new() -> FolderWatch {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK);
        if let Err(e) = &fd {
            tracing::debug!("listings revalidated by time only: no inotify ({e})");
        }
        FolderWatch {
            inner: fd.ok().map(|fd| {
                Mutex::new(Watched {
                    fd,
                    watches: HashMap::new(),
                })
            }),
            added: AtomicUsize::new(0),
            asked: AtomicU64::new(0),
            read_for: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> Option<MutexGuard<'_, Watched>> {
        self.inner
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Starts watching the folder open as `dir`, before it is read: the mark of a
    /// listing of it, or `None` when it cannot be watched.
    pub fn watch(&self, dir: impl AsFd) -> Option<Mark> {
        let mut watched = self.make_room(1, MAX_WATCHED)?;
        let wd = watched.add(dir.as_fd(), CHANGES)?;
        let mark = Arc::new(AtomicBool::new(false));
        let marks = &mut watched.watches.entry(wd).or_default().marks;
        marks.retain(|m| m.strong_count() > 0);
        marks.push(Arc::downgrade(&mark));
        Some(Mark(mark))
    }

    /// Starts watching a file about to be cached: `folders` (the root and each
    /// folder down to the file's, see [`crate::fs::Root::folders_on`]) and the open
    /// `file`. The caller then confirms that the path still names `file`; only
    /// then does the watch vouch for it. `None` when something cannot be watched.
    pub fn watch_path(&self, folders: &[OwnedFd], file: impl AsFd) -> Option<PathWatch> {
        let mut watched = self.make_room(folders.len() + 1, MAX_WATCHED_FOR_FILES)?;
        let file = (file.as_fd(), FILE_CHANGES);
        let all = folders.iter().map(|f| (f.as_fd(), CHANGES)).chain([file]);
        let mut counts = Vec::with_capacity(folders.len() + 1);
        for (fd, changes) in all {
            let wd = watched.add(fd, changes)?;
            let listeners = watched.watches.entry(wd).or_default();
            let count = listeners.count.upgrade().unwrap_or_else(|| {
                let count = Arc::new(AtomicU64::new(0));
                listeners.count = Arc::downgrade(&count);
                count
            });
            counts.push(count);
        }
        // The file's own watch comes last.
        let file_count = counts.last()?.load(Ordering::Acquire);
        let watch = PathWatch {
            counts,
            file_count,
            seen: AtomicU64::new(0),
            checked: AtomicU64::new(0),
        };
        watch.confirm(watch.total()?);
        Some(watch)
    }

    /// The lock, with room for `more` watches within `limit` (sweeping those nothing
    /// needs any more every [`SWEEP_EVERY`] calls, whether they found room or not, so
    /// that a full set is not swept on every call); `None` without inotify or room.
    fn make_room(&self, more: usize, limit: usize) -> Option<MutexGuard<'_, Watched>> {
        let mut watched = self.lock()?;
        // Before adding: a sweep may remove the very watch about to be added to.
        if self.added.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            watched.sweep();
        }
        (watched.watches.len() + more <= limit).then_some(watched)
    }

    /// Reads what the kernel queued since the last time and marks the listings of
    /// the folders that changed, and counts the reports of cached files' watches.
    ///
    /// Every worker catches up on each hit, so the queue's reads are shared: one
    /// that began after this call began reads whatever this call needs read (all
    /// the kernel queued before it), and a caller that waited for the lock while
    /// such a read was made returns without a read of its own.
    pub fn catch_up(&self) {
        let asked = self.asked.fetch_add(1, Ordering::AcqRel) + 1;
        let Some(mut watched) = self.lock() else {
            return;
        };
        if self.read_for.load(Ordering::Acquire) >= asked {
            return;
        }
        // This read serves every catch-up asked for up to here.
        let serves = self.asked.load(Ordering::Acquire);
        let watched = &mut *watched;
        // Asking how much is queued is cheaper than a read that finds nothing (which
        // joins and leaves the queue's wait list); it is the usual answer.
        if rustix::io::ioctl_fionread(&watched.fd) == Ok(0) {
            self.read_for.store(serves, Ordering::Release);
            return;
        }
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&watched.fd, &mut buf);
        loop {
            let event = match reader.next() {
                Ok(event) => event,
                // The queue is empty.
                Err(rustix::io::Errno::AGAIN) => break,
                Err(_) => {
                    // Unread events may be left: anything may have changed.
                    watched.watches.values().for_each(Listeners::report);
                    break;
                }
            };
            let flags = event.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                // Events were lost: anything may have changed.
                watched.watches.values().for_each(Listeners::report);
                continue;
            }
            if let Some(listeners) = watched.watches.get(&event.wd()) {
                listeners.report();
            }
            if flags.contains(ReadFlags::IGNORED) {
                // The folder or file is gone, or its watch was removed.
                if let Some(count) = watched
                    .watches
                    .remove(&event.wd())
                    .and_then(|l| l.count.upgrade())
                {
                    count.store(GONE, Ordering::Release);
                }
            }
        }
        self.read_for.store(serves, Ordering::Release);
    }
}

impl Default for FolderWatch {
    fn default() -> FolderWatch {
        FolderWatch::new()
    }
}

impl Watched {
    /// Watches what `fd` is open as, whatever its path has become meanwhile.
    fn add(&self, fd: std::os::fd::BorrowedFd<'_>, changes: WatchFlags) -> Option<i32> {
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        inotify::add_watch(&self.fd, path, changes).ok()
    }

    /// Stops the watches no cached listing or file needs any more.
    fn sweep(&mut self) {
        let fd = &self.fd;
        self.watches.retain(|&wd, listeners| {
            let needed = listeners.needed();
            if !needed {
                let _ = inotify::remove_watch(fd, wd);
            }
            needed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_seen_by_the_next_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one").unwrap();
        let watch = FolderWatch::new();
        let open = std::fs::File::open(dir.path()).unwrap();
        let mark = watch.watch(&open).expect("inotify is available");
        watch.catch_up();
        assert!(!mark.changed(), "nothing changed yet");
        // A file's content: the folder's own state does not move.
        std::fs::write(dir.path().join("a.txt"), "three").unwrap();
        assert!(!mark.changed(), "only a catch-up reads the queue");
        watch.catch_up();
        assert!(mark.changed());
        // A new mark starts clean; a touch of a file marks it too.
        let second = watch.watch(&open).unwrap();
        watch.catch_up();
        let file = std::fs::File::options()
            .write(true)
            .open(dir.path().join("a.txt"))
            .unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        watch.catch_up();
        assert!(second.changed());
    }

    #[test]
    fn watches_no_listing_holds_are_swept() {
        let dirs: Vec<_> = (0..SWEEP_EVERY)
            .map(|_| tempfile::tempdir().unwrap())
            .collect();
        let open = |d: &tempfile::TempDir| std::fs::File::open(d.path()).unwrap();
        let watch = FolderWatch::new();
        for dir in &dirs[..SWEEP_EVERY - 1] {
            drop(watch.watch(open(dir)));
        }
        assert_eq!(watch.lock().unwrap().watches.len(), SWEEP_EVERY - 1);
        // The next one sweeps them, then watches its own folder.
        let last = &dirs[SWEEP_EVERY - 1];
        let mark = watch.watch(open(last)).unwrap();
        assert_eq!(watch.lock().unwrap().watches.len(), 1);
        std::fs::write(last.path().join("x"), "x").unwrap();
        watch.catch_up();
        assert!(mark.changed());
        // A sweep that removes the watch of the very folder asked for: the new
        // mark still hears of it.
        let again = &dirs[0];
        for _ in 0..SWEEP_EVERY - 1 {
            drop(watch.watch(open(again)));
        }
        let mark = watch.watch(open(again)).unwrap();
        watch.catch_up();
        assert!(!mark.changed());
        std::fs::write(again.path().join("y"), "y").unwrap();
        watch.catch_up();
        assert!(mark.changed());
    }

    #[test]
    fn a_path_watch_hears_of_its_file_and_folders_until_confirmed_again() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("f.txt");
        std::fs::write(&path, "one").unwrap();
        let watch = FolderWatch::new();
        let folders: Vec<OwnedFd> = [dir.path(), &sub]
            .iter()
            .map(|p| std::fs::File::open(p).unwrap().into())
            .collect();
        let file = std::fs::File::open(&path).unwrap();
        let paths = watch
            .watch_path(&folders, &file)
            .expect("inotify is available");
        watch.catch_up();
        let total = paths.total().unwrap();
        assert!(paths.vouches_at(total));
        assert!(!paths.file_changed());
        // A change beside the file: the watch no longer vouches, but the file
        // itself was not reported.
        std::fs::write(sub.join("beside"), "x").unwrap();
        watch.catch_up();
        let total = paths.total().unwrap();
        assert!(!paths.vouches_at(total));
        assert!(!paths.file_changed());
        paths.confirm(total);
        // The file, through another name.
        let other = dir.path().join("other");
        std::fs::hard_link(&path, &other).unwrap();
        watch.catch_up();
        let total = paths.total().unwrap();
        assert!(
            !paths.vouches_at(total),
            "a new link changes the file's state"
        );
        paths.confirm(total);
        assert!(paths.vouches_at(total));
        assert!(paths.file_changed(), "for good: its state cannot clear it");
        std::fs::write(&other, "two").unwrap();
        watch.catch_up();
        let total = paths.total().unwrap();
        assert!(!paths.vouches_at(total));
        paths.confirm(total);
        // The outer folder: an entry renamed in it.
        std::fs::rename(&other, dir.path().join("renamed")).unwrap();
        watch.catch_up();
        assert!(!paths.vouches_at(paths.total().unwrap()));
        // The file gone for good: its watch is, too, and never vouches again.
        drop(file);
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(dir.path().join("renamed")).unwrap();
        watch.catch_up();
        assert_eq!(paths.total(), None);
    }

    #[test]
    fn cached_files_leave_room_for_listings() {
        let dir = tempfile::tempdir().unwrap();
        let watch = FolderWatch::new();
        let folders: Vec<OwnedFd> = vec![std::fs::File::open(dir.path()).unwrap().into()];
        let mut held = Vec::new();
        for i in 0..MAX_WATCHED {
            let path = dir.path().join(format!("{i}"));
            std::fs::write(&path, "x").unwrap();
            let file = std::fs::File::open(&path).unwrap();
            match watch.watch_path(&folders, &file) {
                Some(paths) => held.push(paths),
                None => break,
            }
        }
        // The folder's watch and one per file, up to the files' share (room is
        // asked for the folder's watch each time, though it is there already).
        assert_eq!(held.len() + 2, MAX_WATCHED_FOR_FILES);
        let listed = tempfile::tempdir().unwrap();
        assert!(watch
            .watch(std::fs::File::open(listed.path()).unwrap())
            .is_some());
    }
}
