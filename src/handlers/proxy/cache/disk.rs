//! The disk tier: one file per stored response in the cache folder, so entries
//! survive a restart.
//!
//! A file is the body, then the rest of the entry as JSON, then the JSON's length
//! (u32, little-endian) and the magic `WHARFC01`: the body comes first so a large
//! one is written as it arrives, and the entry only once it is complete. Files are
//! written under a `.tmp-` name and renamed into place, so a crash never leaves a
//! half entry under a real name; temporary leftovers are removed at startup. A file
//! whose length or trailer does not add up is a miss and is removed; the body's
//! hash is checked the first time the file is used. Names are hex digests, never
//! anything a client chose.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::entry::{DiskCopy, Entry, Facts};

/// The end of every entry file.
const MAGIC: &[u8; 8] = b"WHARFC01";
/// Bytes after the JSON: its length and the magic.
const TRAILER: u64 = 4 + MAGIC.len() as u64;
/// Prefix of files being written.
const TEMP_PREFIX: &str = ".tmp-";
/// The largest JSON part wharf writes or reads.
const MAX_META: u64 = 1 << 20;

/// The entry's fields other than the body, as written.
#[derive(Serialize, Deserialize)]
struct Meta {
    key: String,
    variant: Vec<(String, Option<String>)>,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    request_time_ms: u64,
    response_time_ms: u64,
    len: u64,
    body_hash: u64,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// A name for a new file of `key`'s entry: unique, so a replaced entry's file can
/// be removed without touching its successor's.
pub fn new_name(key: &str) -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{key}
{:?}
{}
{}",
        SystemTime::now(),
        std::process::id(),
        COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let unique = xxhash_rust::xxh3::xxh3_128(seed.as_bytes());
    let keyed = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
    format!("{keyed:016x}-{unique:032x}")
}

/// A file being written in the cache folder: the body as it arrives, then the
/// entry; removed unless [`Writing::commit`] renames it into place.
pub struct Writing {
    file: tempfile::NamedTempFile,
    hasher: xxhash_rust::xxh3::Xxh3Default,
    written: u64,
}

impl Writing {
    /// A new temporary file in `dir`.
    pub fn create(dir: &Path) -> io::Result<Writing> {
        let file = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)?;
        Ok(Writing {
            file,
            hasher: xxhash_rust::xxh3::Xxh3Default::new(),
            written: 0,
        })
    }

    /// Appends body bytes.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.as_file_mut().write_all(data)?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Body bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes `entry`'s fields after the body and renames the file to `name`;
    /// returns where the body is.
    pub fn commit(mut self, dir: &Path, name: &str, entry: &Entry) -> io::Result<DiskCopy> {
        let body_hash = self.hasher.digest();
        let meta = Meta {
            key: entry.key.clone(),
            variant: entry.variant.clone(),
            status: entry.status.as_u16(),
            headers: entry
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                .collect(),
            request_time_ms: millis(entry.request_time),
            response_time_ms: millis(entry.response_time),
            len: self.written,
            body_hash,
        };
        let json = serde_json::to_vec(&meta).map_err(io::Error::other)?;
        let file = self.file.as_file_mut();
        file.write_all(&json)?;
        file.write_all(&(json.len() as u32).to_le_bytes())?;
        file.write_all(MAGIC)?;
        self.file.persist(dir.join(name)).map_err(|e| e.error)?;
        Ok(DiskCopy {
            name: name.to_string(),
            body_hash,
            size: self.written + json.len() as u64 + TRAILER,
        })
    }
}

/// Writes a whole entry whose body is `body` as file `name`.
pub fn write_whole(dir: &Path, name: &str, entry: &Entry, body: &[u8]) -> io::Result<DiskCopy> {
    let mut w = Writing::create(dir)?;
    w.write(body)?;
    w.commit(dir, name, entry)
}

/// Writes `entry` (whose body is in the file `from`) again as file `name`: its
/// header section changed (a 304 refreshed it).
pub fn rewrite(dir: &Path, from: &DiskCopy, name: &str, entry: &Entry) -> io::Result<DiskCopy> {
    let mut w = Writing::create(dir)?;
    let mut source = File::open(dir.join(&from.name))?.take(entry.len);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            break;
        }
        w.write(&buf[..n])?;
    }
    if w.written() != entry.len {
        return Err(io::Error::other("cache file shorter than its entry"));
    }
    w.commit(dir, name, entry)
}

/// Reads the entry of one file; `None` when the file is not a whole entry.
fn read_entry(path: &Path) -> Option<Entry> {
    let mut file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    if size < TRAILER {
        return None;
    }
    let mut trailer = [0u8; TRAILER as usize];
    file.read_exact_at(&mut trailer, size - TRAILER).ok()?;
    if &trailer[4..] != MAGIC {
        return None;
    }
    let meta_len = u64::from(u32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ]));
    if meta_len > MAX_META || meta_len + TRAILER > size {
        return None;
    }
    let body_len = size - TRAILER - meta_len;
    let mut json = vec![0u8; meta_len as usize];
    file.seek(SeekFrom::Start(body_len)).ok()?;
    file.read_exact(&mut json).ok()?;
    let meta: Meta = serde_json::from_slice(&json).ok()?;
    if meta.len != body_len {
        return None;
    }
    let mut headers = HeaderMap::new();
    for (name, value) in meta.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_bytes(&value).ok()?,
        );
    }
    let status = StatusCode::from_u16(meta.status).ok()?;
    let response_time = from_millis(meta.response_time_ms);
    Some(Entry {
        key: meta.key,
        variant: meta.variant,
        status,
        facts: Facts::of(status, &headers, response_time),
        headers,
        request_time: from_millis(meta.request_time_ms),
        response_time,
        len: meta.len,
        memory: None,
        disk: Some(DiskCopy {
            name: path.file_name()?.to_str()?.to_string(),
            body_hash: meta.body_hash,
            size,
        }),
        verified: AtomicBool::new(false),
        used: AtomicU64::new(0),
        id: 0,
    })
}

/// The entries of the cache folder, oldest first (by when they were received);
/// temporary files and files that are not whole entries are removed.
pub fn scan(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut found = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        if !item.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = item.path();
        if name.starts_with(TEMP_PREFIX) {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        match read_entry(&path) {
            Some(entry) => found.push(entry),
            None => {
                tracing::warn!("cache: removed {} (not a whole entry)", path.display());
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    found.sort_by_key(|e| e.response_time);
    Ok(found)
}

/// The body of a disk entry, opened and checked: its file still has the length it
/// was written with and, the first time, a body matching its hash. `None` (and the
/// file removed) otherwise.
pub fn open_body(dir: &Path, entry: &Entry) -> Option<File> {
    let disk = entry.disk.as_ref()?;
    let path: PathBuf = dir.join(&disk.name);
    let file = File::open(&path).ok()?;
    let whole = file
        .metadata()
        .ok()
        .is_some_and(|m| m.len() > entry.len + TRAILER)
        && (entry.verified.load(std::sync::atomic::Ordering::Relaxed)
            || hash_of(&file, entry.len).ok() == Some(disk.body_hash));
    if !whole {
        tracing::warn!("cache: removed {} (damaged)", path.display());
        let _ = std::fs::remove_file(&path);
        return None;
    }
    entry
        .verified
        .store(true, std::sync::atomic::Ordering::Relaxed);
    Some(file)
}

/// xxh3-64 of the first `len` bytes of `file`.
fn hash_of(file: &File, len: u64) -> io::Result<u64> {
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = 0;
    while at < len {
        let want = (len - at).min(buf.len() as u64) as usize;
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher.digest())
}

/// Removes an entry's file.
pub fn remove(dir: &Path, disk: &DiskCopy) {
    let _ = std::fs::remove_file(dir.join(&disk.name));
}
