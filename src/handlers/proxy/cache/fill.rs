//! Storing a response while it passes to the client: its body is collected in
//! memory, or, past the memory tier's object size and with a disk tier, written to
//! a temporary file in the cache folder; the entry is stored only once the body is
//! complete, so a response that breaks off is never served from the cache (one
//! whose end is only its connection closing cannot be told from a whole one, as
//! for any HTTP/1.1 recipient). Bodies being collected hold at most half the memory
//! budget between them; beyond that, or beyond the object size, one is not stored.

use std::sync::Arc;

use bytes::Bytes;

use super::collapse::FlightGuard;
use super::disk::{self, Writing};
use super::entry::Entry;
use super::Cache;
use crate::metrics::{metrics, CacheOutcome};

/// A response on its way into the cache.
pub struct Filling {
    cache: Arc<Cache>,
    entry: Entry,
    chunks: Vec<Bytes>,
    held: u64,
    writing: Option<Writing>,
    failed: bool,
    /// Others waiting for this key wake when the filling ends.
    _flight: Option<FlightGuard>,
}

impl Drop for Filling {
    fn drop(&mut self) {
        self.drop_held();
    }
}

impl Filling {
    /// Starts storing a response described by `entry` (its body still to come).
    /// Boxed: a filling is about a kilobyte, and it rides in the futures of every
    /// cacheable proxied response, which would otherwise copy it at each move.
    pub fn new(cache: Arc<Cache>, entry: Entry, flight: Option<FlightGuard>) -> Box<Filling> {
        Box::new(Filling {
            cache,
            entry,
            chunks: Vec::new(),
            held: 0,
            writing: None,
            failed: false,
            _flight: flight,
        })
    }

    /// Adds the next piece of the body.
    pub async fn push(&mut self, data: Bytes) {
        if self.failed {
            return;
        }
        let written = self.writing.as_ref().map_or(0, Writing::written);
        if written + self.held + data.len() as u64 > self.cache.store.object_max() {
            // Too large to store: what was collected is dropped (a temporary file
            // removes itself).
            self.give_up();
            return;
        }
        if !self.cache.store.reserve_filling(data.len() as u64) {
            self.give_up();
            return;
        }
        self.held += data.len() as u64;
        self.chunks.push(data);
        if self.held > self.cache.store.memory_object_max() && !self.flush().await {
            self.give_up();
        }
    }

    fn give_up(&mut self) {
        self.failed = true;
        self.drop_held();
        self.writing = None;
        // Nothing will be stored: whoever waits for it may go upstream now.
        self._flight = None;
    }

    /// Whether the body will not be stored.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Lets go of the pieces held in memory.
    fn drop_held(&mut self) {
        self.chunks.clear();
        self.cache.store.release_filling(self.held);
        self.held = 0;
    }

    /// Moves the collected pieces to the entry's file; false when there is no disk
    /// tier or writing failed.
    async fn flush(&mut self) -> bool {
        let Some(dir) = self.cache.store.disk().map(|t| t.dir.clone()) else {
            return false;
        };
        let chunks = std::mem::take(&mut self.chunks);
        self.cache.store.release_filling(self.held);
        self.held = 0;
        let writing = self.writing.take();
        let done = tokio::task::spawn_blocking(move || {
            let mut w = match writing {
                Some(w) => w,
                None => Writing::create(&dir)?,
            };
            for c in &chunks {
                w.write(c)?;
            }
            Ok::<_, std::io::Error>(w)
        })
        .await;
        match done {
            Ok(Ok(w)) => {
                self.writing = Some(w);
                true
            }
            Ok(Err(e)) => {
                tracing::warn!("cache: cannot write an entry: {e}");
                false
            }
            Err(_) => false,
        }
    }

    /// Ends the body: when it arrived `complete`, the entry is stored.
    pub async fn finish(mut self, complete: bool) {
        if !complete || self.failed {
            return;
        }
        if self.writing.is_none() {
            let whole = match self.chunks.as_slice() {
                [one] => one.clone(),
                chunks => {
                    let mut whole = bytes::BytesMut::with_capacity(self.held as usize);
                    for c in chunks {
                        whole.extend_from_slice(c);
                    }
                    whole.freeze()
                }
            };
            self.drop_held();
            self.store_whole(whole);
            return;
        }
        if !self.flush().await {
            return;
        }
        let (Some(writing), Some(dir)) = (
            self.writing.take(),
            self.cache.store.disk().map(|t| t.dir.clone()),
        ) else {
            return;
        };
        let mut entry = self.entry.derive();
        entry.len = writing.written();
        let committed = tokio::task::spawn_blocking(move || {
            let name = disk::new_name(&entry.key);
            let copy = writing.commit(&dir, &name, &entry)?;
            entry.disk = Some(copy);
            entry
                .verified
                .store(true, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, std::io::Error>(entry)
        })
        .await;
        match committed {
            Ok(Ok(entry)) => {
                self.cache.store.insert(entry);
                metrics().cache(CacheOutcome::Stored);
            }
            Ok(Err(e)) => tracing::warn!("cache: cannot write an entry: {e}"),
            Err(_) => {}
        }
    }

    /// Stores the entry with `body`, whole: in memory at once, and in a file in the
    /// background when there is a disk tier.
    pub fn store_whole(self, body: Bytes) -> Arc<Entry> {
        let mut entry = self.entry.derive();
        entry.len = body.len() as u64;
        // In memory until its file is written (then only if small enough).
        entry.memory = Some(body.clone());
        let disk = self.cache.store.disk().map(|t| t.dir.clone());
        let stored = self.cache.store.insert(entry);
        metrics().cache(CacheOutcome::Stored);
        if let Some(dir) = disk {
            let cache = Arc::clone(&self.cache);
            let stored = Arc::clone(&stored);
            tokio::spawn(async move {
                let name = disk::new_name(&stored.key);
                let writer = Arc::clone(&stored);
                let written = tokio::task::spawn_blocking(move || {
                    disk::write_whole(&dir, &name, &writer, &body)
                })
                .await;
                match written {
                    Ok(Ok(copy)) => cache.store.attach_file(&stored.key, stored.id, copy),
                    Ok(Err(e)) => tracing::warn!("cache: cannot write an entry: {e}"),
                    Err(_) => {}
                }
            });
        }
        stored
    }
}
