//! Entity tags: computing ours, and parsing and comparing the client's.
//!
//! wharf's ETags are strong and derived from content: `"<xxh3-64 of the bytes>-<length
//! in hex>"`. A byte-identical file therefore keeps its tag across deploys, copies and
//! `touch`, which mtime-based tags (nginx, Caddy) do not, and any change of content
//! changes it. Hashing costs one read of the file, so results are cached per file
//! identity and state — (device, inode, size, mtime, ctime) — and recomputed only when
//! one of those changes. Each encoding of a resource gets its own tag (see
//! [`EntityTag::for_encoding`]).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use http::HeaderValue;
use xxhash_rust::xxh3::Xxh3;

use crate::fs::FileState;

/// Bytes hashed per read when a file is not already in memory.
const HASH_CHUNK: usize = 256 * 1024;

/// A strong entity tag of ours, quotes included (`"…"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityTag(String);

impl EntityTag {
    /// The tag of content with this hash and length.
    fn from_hash(hash: u64, len: u64) -> EntityTag {
        EntityTag(format!("\"{hash:016x}-{len:x}\""))
    }

    /// The tag of an encoded variant (`gzip`, `br`, `zstd`) of the content this tag
    /// names: distinct from the identity tag, as RFC 9110 §8.8.3 requires of strong tags.
    pub fn for_encoding(&self, coding: &str) -> EntityTag {
        let inner = self.opaque();
        EntityTag(format!("\"{inner}-{coding}\""))
    }

    /// The tag without its quotes.
    fn opaque(&self) -> &str {
        self.0.trim_matches('"')
    }

    /// As a header value.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&self.0).unwrap_or(HeaderValue::from_static("\"\""))
    }
}

/// A client-sent entity-tag list (`If-Match`, `If-None-Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList {
    /// `*`: any current representation.
    Any,
    /// Tags with their weakness flag, in order.
    Tags(Vec<(bool, String)>),
}

impl TagList {
    /// Parses all field lines of one header; `None` when it is absent. A malformed
    /// line lists no tag: the condition holds only for `*` or a listed tag (RFC 9110
    /// §13.1.1), so a garbled If-Match fails, as nginx's does, and a garbled
    /// If-None-Match matches nothing.
    pub fn parse<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<TagList> {
        let mut tags = Vec::new();
        let mut any = false;
        let mut seen = false;
        for value in values {
            seen = true;
            match value.to_str().ok().map(str::trim) {
                Some("*") => any = true,
                Some(line) => tags.extend(Self::parse_line(line).unwrap_or_default()),
                None => {}
            }
        }
        if !seen {
            return None;
        }
        if any {
            return Some(TagList::Any);
        }
        Some(TagList::Tags(tags))
    }

    /// The tags of one field line, `None` when it is not a valid list.
    fn parse_line(mut rest: &str) -> Option<Vec<(bool, String)>> {
        let mut tags = Vec::new();
        while !rest.is_empty() {
            let (weak, after) = match rest.strip_prefix("W/") {
                Some(after) => (true, after),
                None => (false, rest),
            };
            let after = after.strip_prefix('"')?;
            let end = after.find('"')?;
            let opaque = &after[..end];
            // etagc = %x21 / %x23-7E / obs-text
            if !opaque
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
            {
                return None;
            }
            tags.push((weak, opaque.to_string()));
            rest = after[end + 1..].trim_start();
            if let Some(next) = rest.strip_prefix(',') {
                rest = next.trim_start();
            } else if !rest.is_empty() {
                return None;
            }
        }
        Some(tags)
    }

    /// Strong comparison (If-Match, If-Range): both tags strong and identical.
    pub fn matches_strong(&self, ours: &EntityTag) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|(weak, t)| !weak && t == ours.opaque()),
        }
    }

    /// Weak comparison (If-None-Match): opaque tags identical, weakness ignored.
    pub fn matches_weak(&self, ours: &EntityTag) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|(_, t)| t == ours.opaque()),
        }
    }
}

/// Content hashes of files, keyed by file state, bounded in entries.
#[derive(Debug)]
pub struct EtagCache {
    entries: Mutex<HashMap<FileState, EntityTag>>,
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
        if let Some(tag) = self.lock().get(&state) {
            return Ok(tag.clone());
        }
        let tag = match content {
            Some(bytes) => EntityTag::from_hash(xxhash_rust::xxh3::xxh3_64(bytes), meta.len()),
            None => hash_file(file, meta.len())?,
        };
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
        entries.insert(state, tag.clone());
        Ok(tag)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileState, EntityTag>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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

    fn list(s: &str) -> Option<TagList> {
        let v = HeaderValue::from_str(s).unwrap();
        TagList::parse(std::iter::once(&v))
    }

    #[test]
    fn parses_lists_and_lists_nothing_for_garbage() {
        assert_eq!(list("*"), Some(TagList::Any));
        assert_eq!(
            list("\"a\", W/\"b\",\"c\""),
            Some(TagList::Tags(vec![
                (false, "a".into()),
                (true, "b".into()),
                (false, "c".into())
            ]))
        );
        assert_eq!(
            list("\"\""),
            Some(TagList::Tags(vec![(false, String::new())]))
        );
        for bad in ["a", "\"a", "\"a\" \"b\"", "W/a", "\"a\",,x", "\"a b\""] {
            assert_eq!(list(bad), Some(TagList::Tags(Vec::new())), "{bad}");
        }
        assert_eq!(TagList::parse(std::iter::empty()), None);
    }

    #[test]
    fn strong_and_weak_comparison() {
        let ours = EntityTag::from_hash(1, 2);
        let opaque = ours.opaque().to_string();
        let strong = list(&format!("\"x\", \"{opaque}\"")).unwrap();
        let weak = list(&format!("W/\"{opaque}\"")).unwrap();
        assert!(strong.matches_strong(&ours) && strong.matches_weak(&ours));
        assert!(!weak.matches_strong(&ours) && weak.matches_weak(&ours));
        assert!(!list("\"other\"").unwrap().matches_weak(&ours));
    }

    #[test]
    fn encodings_get_their_own_tags() {
        let ours = EntityTag::from_hash(0xabc, 10);
        assert_ne!(ours.for_encoding("gzip"), ours);
        assert_ne!(ours.for_encoding("gzip"), ours.for_encoding("br"));
        assert!(ours.for_encoding("gzip").0.starts_with('"'));
    }

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
}
