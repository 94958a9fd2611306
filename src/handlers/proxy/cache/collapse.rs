//! Collapsed forwarding: while one request for a key is on its way to the
//! upstream, others for that key wait for its answer to be stored instead of
//! asking the upstream too (Varnish's request coalescing, nginx's
//! `proxy_cache_lock`). The wait is bounded; after it, or when the answer was not
//! stored, a waiting request goes upstream itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// One request on its way upstream, for one key.
#[derive(Debug, Default)]
pub struct Flight {
    done: AtomicBool,
    landed: Notify,
}

/// The requests on their way upstream, by key.
#[derive(Debug, Default)]
pub struct Flights {
    by_key: Mutex<HashMap<String, Arc<Flight>>>,
}

/// What a request for a key does: go upstream (holding the guard until the answer
/// is stored or given up), or wait for the one that does.
pub enum Turn {
    /// Go upstream; the others wake when this is dropped.
    Lead(FlightGuard),
    /// Wait for this flight.
    Follow(Arc<Flight>),
}

/// Held by the request that went upstream for a key.
pub struct FlightGuard {
    flights: Arc<Flights>,
    key: String,
    flight: Arc<Flight>,
}

impl Flights {
    /// Joins the flight for `key`, or starts it.
    pub fn join(self: &Arc<Self>, key: &str) -> Turn {
        let mut map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = map.get(key) {
            return Turn::Follow(Arc::clone(flight));
        }
        let flight = Arc::new(Flight::default());
        map.insert(key.to_string(), Arc::clone(&flight));
        Turn::Lead(FlightGuard {
            flights: Arc::clone(self),
            key: key.to_string(),
            flight,
        })
    }
}

impl Flight {
    /// Waits until the flight has landed, at most `limit`; whether it did.
    pub async fn wait(&self, limit: Duration) -> bool {
        let landed = self.landed.notified();
        if self.done.load(Ordering::Acquire) {
            return true;
        }
        tokio::time::timeout(limit, landed).await.is_ok()
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut map = self
            .flights
            .by_key
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            map.remove(&self.key);
        }
        drop(map);
        self.flight.done.store(true, Ordering::Release);
        self.flight.landed.notify_waiters();
    }
}
