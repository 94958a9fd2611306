//! Word from the kernel that a listed folder changed, for the hot cache's listings.
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
//! What inotify does not report still waits for the listing's lifetime: a change
//! inside a subfolder (which moves only that subfolder's time), a file changed
//! through a hard link in another folder or through `mmap`, a symlink's target, a
//! change another machine makes on a network file system.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

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

/// How many new watches between two sweeps of those no listing needs any more.
const SWEEP_EVERY: usize = 256;
/// The most folders watched at once: the kernel's watches are counted per user
/// (`max_user_watches`), shared with every other program the user runs.
const MAX_WATCHED: usize = 4096;

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

/// The watched folders of one served root, by watch descriptor.
#[derive(Debug)]
pub struct FolderWatch {
    /// `None` when the kernel gave no inotify instance.
    inner: Option<Mutex<Watched>>,
    added: AtomicUsize,
}

#[derive(Debug)]
struct Watched {
    fd: OwnedFd,
    /// The marks of each watch's listings; a mark no listing holds is gone.
    marks: HashMap<i32, Vec<Weak<AtomicBool>>>,
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
                    marks: HashMap::new(),
                })
            }),
            added: AtomicUsize::new(0),
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
        let mut watched = self.lock()?;
        // Before adding: a sweep may remove the very watch about to be added to.
        if self.added.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1
            || watched.marks.len() >= MAX_WATCHED
        {
            watched.sweep();
        }
        if watched.marks.len() >= MAX_WATCHED {
            return None;
        }
        // The open folder itself, whatever its path has become meanwhile.
        let path = format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd());
        let wd = inotify::add_watch(&watched.fd, path, CHANGES).ok()?;
        let mark = Arc::new(AtomicBool::new(false));
        let marks = watched.marks.entry(wd).or_default();
        marks.retain(|m| m.strong_count() > 0);
        marks.push(Arc::downgrade(&mark));
        Some(Mark(mark))
    }

    /// Reads what the kernel queued since the last time and marks the listings of
    /// the folders that changed.
    pub fn catch_up(&self) {
        let Some(mut watched) = self.lock() else {
            return;
        };
        let watched = &mut *watched;
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&watched.fd, &mut buf);
        // Until the queue is empty (EAGAIN) or cannot be read.
        while let Ok(event) = reader.next() {
            let flags = event.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                // Events were lost: any folder may have changed.
                for marks in watched.marks.values() {
                    set(marks);
                }
                continue;
            }
            if let Some(marks) = watched.marks.get(&event.wd()) {
                set(marks);
            }
            if flags.contains(ReadFlags::IGNORED) {
                // The folder is gone, or its watch was removed.
                watched.marks.remove(&event.wd());
            }
        }
    }
}

impl Default for FolderWatch {
    fn default() -> FolderWatch {
        FolderWatch::new()
    }
}

impl Watched {
    /// Stops watching the folders no cached listing needs any more.
    fn sweep(&mut self) {
        let fd = &self.fd;
        self.marks.retain(|&wd, marks| {
            marks.retain(|m| m.strong_count() > 0);
            let needed = !marks.is_empty();
            if !needed {
                let _ = inotify::remove_watch(fd, wd);
            }
            needed
        });
    }
}

fn set(marks: &[Weak<AtomicBool>]) {
    for mark in marks.iter().filter_map(Weak::upgrade) {
        mark.store(true, Ordering::Release);
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
        assert_eq!(watch.lock().unwrap().marks.len(), SWEEP_EVERY - 1);
        // The next one sweeps them, then watches its own folder.
        let last = &dirs[SWEEP_EVERY - 1];
        let mark = watch.watch(open(last)).unwrap();
        assert_eq!(watch.lock().unwrap().marks.len(), 1);
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
}
