//! Where stored responses are kept and found: an index by primary key (each key's
//! variants, newest first), with one least-recently-used order over all entries.
//!
//! Memory holds every entry's header section and, within the memory budget, bodies;
//! with a disk tier, every body is also in a file and memory keeps copies of the
//! recently used small ones. Over the memory budget the least recently used memory
//! copies go (an entry without a file goes with its copy); over the disk budget the
//! least recently used entries go, files and all.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use http::header::HeaderMap;

use super::disk;
use super::entry::{DiskCopy, Entry};

/// The disk tier's folder and budget.
#[derive(Debug, Clone)]
pub struct DiskTier {
    /// The cache folder.
    pub dir: PathBuf,
    /// Bytes of files it may hold.
    pub max: u64,
}

#[derive(Default)]
struct Index {
    by_key: HashMap<String, Vec<Arc<Entry>>>,
    /// Last use → (key, entry id).
    order: BTreeMap<u64, (String, u64)>,
    memory_used: u64,
    disk_used: u64,
}

/// The stored responses.
pub struct Store {
    index: Mutex<Index>,
    /// Body bytes held in memory by responses being stored (not yet entries).
    filling: AtomicU64,
    clock: AtomicU64,
    next_id: AtomicU64,
    memory_max: u64,
    disk: Option<DiskTier>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("memory_max", &self.memory_max)
            .field("disk", &self.disk)
            .finish()
    }
}

/// What a lookup found.
pub struct Found {
    /// The newest entry whose variant matches the request.
    pub entry: Option<Arc<Entry>>,
    /// Whether the key had entries (so a miss is a variant miss).
    pub key_known: bool,
}

impl Store {
    /// An empty store with these budgets; with a disk tier, the entries already in
    /// its folder are loaded (their bodies stay on disk).
    pub fn new(memory_max: u64, disk: Option<DiskTier>) -> Result<Store, String> {
        let store = Store {
            index: Mutex::new(Index::default()),
            filling: AtomicU64::new(0),
            clock: AtomicU64::new(1),
            next_id: AtomicU64::new(1),
            memory_max,
            disk,
        };
        if let Some(tier) = &store.disk {
            std::fs::create_dir_all(&tier.dir).map_err(|e| {
                format!("cannot create the cache folder {}: {e}", tier.dir.display())
            })?;
            let found = disk::scan(&tier.dir)
                .map_err(|e| format!("cannot read the cache folder {}: {e}", tier.dir.display()))?;
            let count = found.len();
            for entry in found {
                store.insert(entry);
            }
            if count > 0 {
                tracing::info!(
                    "cache: {count} stored response(s) loaded from {}",
                    tier.dir.display()
                );
            }
        }
        Ok(store)
    }

    /// The disk tier, if there is one.
    pub fn disk(&self) -> Option<&DiskTier> {
        self.disk.as_ref()
    }

    /// The largest body kept in memory.
    pub fn memory_object_max(&self) -> u64 {
        match self.disk {
            // Memory is for hot copies: many small bodies beat a few large ones.
            Some(_) => self.memory_max / 64,
            None => self.memory_max / 8,
        }
    }

    /// The largest body stored at all.
    pub fn object_max(&self) -> u64 {
        match &self.disk {
            Some(tier) => tier.max / 8,
            None => self.memory_max / 8,
        }
    }

    /// Reserves `n` bytes for a body being collected; false when responses being
    /// stored already hold half the memory budget (then this one is not stored).
    pub fn reserve_filling(&self, n: u64) -> bool {
        let before = self.filling.fetch_add(n, Ordering::Relaxed);
        if before + n > self.memory_max / 2 {
            self.filling.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Gives back bytes reserved with [`Store::reserve_filling`].
    pub fn release_filling(&self, n: u64) {
        self.filling.fetch_sub(n, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// The entry of `key` selected by `request`'s fields, marked as just used.
    pub fn find(&self, key: &str, request: &HeaderMap) -> Found {
        let mut index = self.lock();
        let Some(variants) = index.by_key.get(key) else {
            return Found {
                entry: None,
                key_known: false,
            };
        };
        let entry = variants.iter().find(|e| e.matches(request)).cloned();
        if let Some(e) = &entry {
            let now = self.tick();
            let before = e.used.swap(now, Ordering::Relaxed);
            index.order.remove(&before);
            index.order.insert(now, (key.to_string(), e.id));
        }
        Found {
            entry,
            key_known: true,
        }
    }

    /// Stores `entry`, replacing the key's entry for the same variant; returns it
    /// as stored.
    pub fn insert(&self, entry: Entry) -> Arc<Entry> {
        self.insert_in_place_of(entry, None)
    }

    /// Stores `entry` as [`Store::insert`] does, and removes `old` (the entry it
    /// refreshes, which its fields may have given another variant) if it is still
    /// stored, found by its id (it may have been stored again since with its file);
    /// a file the two share stays.
    pub fn insert_in_place_of(&self, mut entry: Entry, old: Option<&Arc<Entry>>) -> Arc<Entry> {
        entry.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = self.tick();
        entry.used = AtomicU64::new(now);
        let entry = Arc::new(entry);
        let mut gone = Vec::new();
        {
            let mut index = self.lock();
            let index = &mut *index;
            let variants = index.by_key.entry(entry.key.clone()).or_default();
            let (old, kept): (Vec<_>, Vec<_>) = std::mem::take(variants)
                .into_iter()
                .partition(|e| e.variant == entry.variant || old.is_some_and(|o| e.id == o.id));
            *variants = kept;
            variants.insert(0, Arc::clone(&entry));
            let surplus = variants.len().saturating_sub(MAX_VARIANTS);
            let mut old = old;
            old.extend(variants.drain(variants.len() - surplus..));
            for e in old {
                index.order.remove(&e.used.load(Ordering::Relaxed));
                index.memory_used -= e.memory_cost();
                index.disk_used -= disk_size(&e);
                // A refreshed entry keeps its predecessor's file until rewritten.
                gone.extend(e.disk.clone().filter(|d| Some(d) != entry.disk.as_ref()));
            }
            index.order.insert(now, (entry.key.clone(), entry.id));
            index.memory_used += entry.memory_cost();
            index.disk_used += disk_size(&entry);
            self.evict(index, &mut gone);
        }
        self.remove_files(&gone);
        entry
    }

    /// Gives the entry `id` of `key` its file (written after it was stored, or
    /// written again with new fields), removing the file it had; the new file is
    /// removed instead when the entry is gone or replaced meanwhile.
    pub fn attach_file(&self, key: &str, id: u64, copy: DiskCopy) {
        let mut gone = Vec::new();
        {
            let mut index = self.lock();
            let index = &mut *index;
            let slot = index
                .by_key
                .get_mut(key)
                .and_then(|v| v.iter_mut().find(|e| e.id == id));
            match slot {
                Some(slot) => {
                    let mut with_file = slot.derive();
                    with_file.id = slot.id;
                    with_file.used = AtomicU64::new(slot.used.load(Ordering::Relaxed));
                    with_file.disk = Some(copy);
                    with_file
                        .verified
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    if with_file.len > self.memory_object_max() {
                        with_file.memory = None;
                    }
                    index.memory_used -= slot.memory_cost() - with_file.memory_cost();
                    index.disk_used -= disk_size(slot);
                    index.disk_used += disk_size(&with_file);
                    gone.extend(slot.disk.clone());
                    *slot = Arc::new(with_file);
                    self.evict(index, &mut gone);
                }
                None => gone.push(copy),
            }
        }
        self.remove_files(&gone);
    }

    /// Removes every variant of `key`.
    pub fn remove_key(&self, key: &str) {
        let mut gone = Vec::new();
        {
            let mut index = self.lock();
            if let Some(variants) = index.by_key.remove(key) {
                for e in variants {
                    index.order.remove(&e.used.load(Ordering::Relaxed));
                    index.memory_used -= e.memory_cost();
                    index.disk_used -= disk_size(&e);
                    gone.extend(e.disk.clone());
                }
            }
        }
        self.remove_files(&gone);
    }

    /// Removes `entry` if it is still the one stored (its file turned out
    /// damaged), with its file.
    pub fn remove(&self, entry: &Arc<Entry>) {
        let mut gone = Vec::new();
        {
            let mut index = self.lock();
            let index = &mut *index;
            if let Some(variants) = index.by_key.get_mut(&entry.key) {
                if let Some(at) = variants.iter().position(|e| Arc::ptr_eq(e, entry)) {
                    let e = variants.remove(at);
                    if variants.is_empty() {
                        index.by_key.remove(&entry.key);
                    }
                    index.order.remove(&e.used.load(Ordering::Relaxed));
                    index.memory_used -= e.memory_cost();
                    index.disk_used -= disk_size(&e);
                    gone.extend(e.disk.clone());
                }
            }
        }
        self.remove_files(&gone);
    }

    /// Brings both budgets back within bounds, least recently used first; files to
    /// remove are added to `gone`.
    fn evict(&self, index: &mut Index, gone: &mut Vec<DiskCopy>) {
        let disk_max = self.disk.as_ref().map_or(0, |t| t.max);
        let mut cursor = 0;
        while index.memory_used > self.memory_max || index.disk_used > disk_max {
            let Some((&tick, (key, id))) = index.order.range(cursor..).next() else {
                break;
            };
            cursor = tick + 1;
            let (key, id) = (key.clone(), *id);
            let Some(variants) = index.by_key.get_mut(&key) else {
                index.order.remove(&tick);
                continue;
            };
            let Some(at) = variants.iter().position(|e| e.id == id) else {
                index.order.remove(&tick);
                continue;
            };
            let over_disk = index.disk_used > disk_max;
            let e = &variants[at];
            // Over the memory budget, an entry without a memory copy still holds
            // its fields and key in memory: it goes whole.
            let drop_whole = if over_disk {
                e.disk.is_some()
            } else {
                e.disk.is_none() || e.memory.is_none()
            };
            if drop_whole {
                let e = variants.remove(at);
                if variants.is_empty() {
                    index.by_key.remove(&key);
                }
                index.order.remove(&tick);
                index.memory_used -= e.memory_cost();
                index.disk_used -= disk_size(&e);
                gone.extend(e.disk.clone());
            } else if !over_disk && e.memory.is_some() {
                // Over the memory budget only: the file stays, the copy goes.
                let mut lighter = e.derive();
                lighter.memory = None;
                lighter.id = e.id;
                lighter.used = AtomicU64::new(tick);
                index.memory_used -= e.memory_cost() - lighter.memory_cost();
                variants[at] = Arc::new(lighter);
            }
        }
    }

    fn remove_files(&self, gone: &[DiskCopy]) {
        if let Some(tier) = &self.disk {
            for copy in gone {
                disk::remove(&tier.dir, copy);
            }
        }
    }
}

/// Bytes an entry's file counts against the disk budget: the whole file, in
/// 4 KiB blocks (an empty body still takes a block).
fn disk_size(e: &Entry) -> u64 {
    e.disk
        .as_ref()
        .map_or(0, |d| d.size.div_ceil(4096).max(1) * 4096)
}

/// Responses kept per key (variants by `Vary`); a new one beyond that replaces the
/// least recently stored.
const MAX_VARIANTS: usize = 32;
