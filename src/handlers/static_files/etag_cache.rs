//! Content hashes of files, for their ETags ([`EntityTag`]): hashing costs one read
//! of the file, so results are cached per file identity and state — (device, inode,
//! size, mtime, ctime) — and recomputed only when one of those changes.
//!
//! Files larger than [`CONTENT_HASHED_MAX`] are not read for their tag: a first
//! request would wait for the whole file to be read (seconds for a video on a
//! cold disk, before the first byte). Their tag is derived from that state instead,
//! as nginx's is from mtime and size: it changes whenever the file may have.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use xxhash_rust::xxh3::Xxh3;

use crate::fs::FileState;
use crate::http::etag::EntityTag;

/// Bytes hashed per read when a file is not already in memory.
const HASH_CHUNK: usize = 256 * 1024;

/// The largest file whose tag is its content's hash (the compression limit too).
pub const CONTENT_HASHED_MAX: u64 = 16 * 1024 * 1024;

/// How long after a file last changed a hash of what was read of it is taken again
/// before it is served (see [`FileState::is_recent`]).
pub const RACY: std::time::Duration = std::time::Duration::from_secs(1);

/// One file state's tag.
#[derive(Debug)]
struct Hashed {
    tag: EntityTag,
    /// Taken from what was read less than [`RACY`] after the file changed: told as
    /// what is known (a listing's `getetag`), but taken again before a response is
    /// built on it.
    racy: bool,
}

/// Content hashes of files, keyed by file state, bounded in entries.
#[derive(Debug)]
pub struct EtagCache {
    entries: Mutex<HashMap<FileState, Hashed>>,
    capacity: usize,
}

impl EtagCache {
    /// A cache holding at most `capacity` tags.
    pub fn new(capacity: usize) -> EtagCache {
        EtagCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The tag for `file`, hashing it (or `content`, when the caller already read the
    /// whole file) unless a tag for this exact file state is cached. Blocks.
    pub fn tag(
        &self,
        file: &File,
        meta: &std::fs::Metadata,
        content: Option<&[u8]>,
    ) -> io::Result<EntityTag> {
        let state = FileState::of(meta);
        if meta.len() > CONTENT_HASHED_MAX {
            return Ok(state_tag(&state));
        }
        if let Some(hashed) = self.lock().get(&state).filter(|h| !h.racy) {
            return Ok(hashed.tag.clone());
        }
        let tag = match content {
            Some(bytes) => EntityTag::of_content(bytes),
            None => hash_file(file, meta.len())?,
        };
        // Maybe read in the middle of a write: hashed again before it is served again.
        let racy = state.is_recent(RACY);
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            // Entries stay valid forever (a new state is a new key), so dropping any of
            // them is only a cost, never a correctness issue; drop half.
            let keep = self.capacity / 2;
            let mut n = 0;
            entries.retain(|_, _| {
                n += 1;
                n <= keep
            });
        }
        let hashed = Hashed {
            tag: tag.clone(),
            racy,
        };
        entries.insert(state, hashed);
        Ok(tag)
    }

    /// The tag for the file state `meta` describes, if it takes no reading: cached,
    /// or of a file too large to hash.
    pub fn known(&self, meta: &std::fs::Metadata) -> Option<EntityTag> {
        let state = FileState::of(meta);
        if meta.len() > CONTENT_HASHED_MAX {
            return Some(state_tag(&state));
        }
        // A racy tag too: it is what the last GET sent.
        self.lock().get(&state).map(|hashed| hashed.tag.clone())
    }

    /// Records `content_tag`, the hash of what was just written, for the file state
    /// `meta` describes; the file's tag from now on (derived from its state instead
    /// when it is too large to hash).
    pub fn remember(&self, meta: &std::fs::Metadata, content_tag: EntityTag) -> EntityTag {
        let state = FileState::of(meta);
        if meta.len() > CONTENT_HASHED_MAX {
            return state_tag(&state);
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        let hashed = Hashed {
            tag: content_tag.clone(),
            racy: false,
        };
        entries.insert(state, hashed);
        content_tag
    }

    /// Drops `tag` wherever it is cached: it was found not to name the content of
    /// the file it was taken from (read while the file was being rewritten).
    pub fn forget(&self, tag: &EntityTag) {
        self.lock().retain(|_, hashed| hashed.tag != *tag);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileState, Hashed>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The tag of a file too large to hash: its state's hash and its length. The state's
/// fields are hashed as fixed little-endian bytes, so the tag of an unchanged file
/// stays the same across restarts and builds.
fn state_tag(state: &FileState) -> EntityTag {
    EntityTag::from_hash(xxhash_rust::xxh3::xxh3_64(&state.to_bytes()), state.size())
}

fn hash_file(file: &File, size: u64) -> io::Result<EntityTag> {
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut offset = 0u64;
    while offset < size {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(EntityTag::from_hash(hasher.digest(), offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn same_bytes_same_tag_across_copies_and_touch() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EtagCache::new(8);
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, vec![7u8; 600_000]).unwrap();
        std::fs::copy(&a, &b).unwrap();
        let tag = |p: &std::path::Path| {
            let f = File::open(p).unwrap();
            cache.tag(&f, &f.metadata().unwrap(), None).unwrap()
        };
        let first = tag(&a);
        assert_eq!(tag(&b), first);
        // Same content read in memory hashes the same.
        let f = File::open(&a).unwrap();
        let mem = EtagCache::new(1)
            .tag(&f, &f.metadata().unwrap(), Some(&vec![7u8; 600_000]))
            .unwrap();
        assert_eq!(mem, first);
        // A content change (same size) changes the tag.
        let mut w = std::fs::OpenOptions::new().write(true).open(&a).unwrap();
        w.write_all(b"x").unwrap();
        drop(w);
        assert_ne!(tag(&a), first);
    }

    #[test]
    fn a_hash_taken_just_after_a_change_is_taken_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, "one").unwrap();
        let cache = EtagCache::new(8);
        let f = File::open(&path).unwrap();
        let meta = f.metadata().unwrap();
        // As if the bytes read were a mix of two versions: the file changed less
        // than a second ago, so what was read then is not served by its state.
        let mixed = cache.tag(&f, &meta, Some(b"o-e")).unwrap();
        assert_eq!(cache.known(&meta), Some(mixed.clone()));
        let whole = cache.tag(&f, &meta, Some(b"one")).unwrap();
        assert_ne!(mixed, whole);
        assert_eq!(whole, EntityTag::of_content(b"one"));
        assert_eq!(cache.known(&meta), Some(whole));
    }
}
