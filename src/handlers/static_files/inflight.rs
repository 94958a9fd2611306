//! One cache miss per path at a time.
//!
//! When a path is cold, every request for it would otherwise read, hash and compress
//! the file on its own: fifty clients arriving together after a deploy would compress
//! the same large script fifty times. A miss first takes the path's [`Turn`]; requests
//! that had to wait for it look in the cache again, where the first one's work now
//! is, before doing any of their own. Paths whose answers are not cached (files sent
//! with sendfile) still gain: their content hash is computed once and remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Per path: its lock, and how many turns refer to it (the entry goes with the last).
type Lines = HashMap<Box<str>, (Arc<AsyncMutex<()>>, usize)>;

/// The paths with a miss under way.
#[derive(Debug, Default)]
pub struct InFlight {
    paths: Mutex<Lines>,
}

/// A request's place in line for one path; leaving the line (dropping it, done or
/// cancelled) lets the next one in.
#[derive(Debug)]
pub struct Turn<'a> {
    inflight: &'a InFlight,
    key: Box<str>,
    lock: Arc<AsyncMutex<()>>,
    held: Option<OwnedMutexGuard<()>>,
}

impl InFlight {
    fn paths(&self) -> MutexGuard<'_, Lines> {
        self.paths.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the line for `key`.
    pub fn enter(&self, key: &str) -> Turn<'_> {
        let mut paths = self.paths();
        let entry = paths.entry(key.into()).or_default();
        entry.1 += 1;
        Turn {
            inflight: self,
            key: key.into(),
            lock: Arc::clone(&entry.0),
            held: None,
        }
    }

    /// How many paths have turns outstanding.
    pub fn len(&self) -> usize {
        self.paths().len()
    }

    /// Whether no path has a turn outstanding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Turn<'_> {
    /// Waits until it is this request's turn; true when another request had it first
    /// (and so may have filled the cache meanwhile).
    pub async fn wait(&mut self) -> bool {
        if self.held.is_some() {
            return false;
        }
        if let Ok(guard) = Arc::clone(&self.lock).try_lock_owned() {
            self.held = Some(guard);
            return false;
        }
        self.held = Some(Arc::clone(&self.lock).lock_owned().await);
        true
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.held = None;
        let mut paths = self.inflight.paths();
        if let Some(entry) = paths.get_mut(&self.key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                paths.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_turn_per_path_and_nothing_left_behind() {
        let inflight = Arc::new(InFlight::default());
        let mut first = inflight.enter("/a");
        assert!(!first.wait().await, "an uncontended turn does not wait");
        let mut other_path = inflight.enter("/b");
        assert!(!other_path.wait().await, "paths do not wait for each other");

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let waiter = {
            let inflight = Arc::clone(&inflight);
            tokio::spawn(async move {
                let mut second = inflight.enter("/a");
                let waited = second.wait().await;
                tx.send(waited).unwrap();
            })
        };
        // The second request cannot get its turn while the first holds it.
        let early = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
        assert!(early.is_err(), "two turns for one path at once");
        drop(first);
        assert_eq!(
            rx.recv().await,
            Some(true),
            "the second turn reports its wait"
        );
        waiter.await.unwrap();

        // A request that gives up while waiting leaves nothing behind either.
        let mut holder = inflight.enter("/c");
        holder.wait().await;
        let (entered_tx, entered) = tokio::sync::oneshot::channel();
        let abandoned = {
            let inflight = Arc::clone(&inflight);
            tokio::spawn(async move {
                let mut turn = inflight.enter("/c");
                let _ = entered_tx.send(());
                turn.wait().await;
            })
        };
        entered.await.unwrap();
        abandoned.abort();
        let _ = abandoned.await;
        drop(holder);
        drop(other_path);
        assert!(inflight.is_empty(), "{} paths left", inflight.len());
    }
}
