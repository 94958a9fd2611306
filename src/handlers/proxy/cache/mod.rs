//! A shared HTTP cache for proxied responses (RFC 9111), in front of the app as
//! nginx's `proxy_cache` or Varnish are.
//!
//! - [`control`]: `Cache-Control` of requests and responses.
//! - [`entry`]: a stored response, its age, freshness lifetime and `Vary` variant.
//! - [`store`]: the index, least-recently-used eviction within the memory and disk
//!   budgets; [`disk`]: the files of the disk tier.
//! - [`fill`]: a response stored while it passes to the client.
//! - [`collapse`]: one upstream request for many concurrent misses.
//! - [`serve`]: answering from a stored response (304, 412, 206, HEAD, `Age`,
//!   `Cache-Status`).
//! - [`flow`]: what a request does: hit, validation, miss, stale answers,
//!   invalidation by unsafe methods.
//!
//! The key is the route, the host the client addressed and the path and query the
//! upstream is asked for; the cache answers GET and HEAD (a HEAD miss is asked of
//! the upstream as GET, so that it can be stored).

pub mod collapse;
pub mod control;
pub mod disk;
pub mod entry;
pub mod fill;
pub mod flow;
pub mod serve;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;

use http::header;
use http::request::Parts;

/// What the cache is given at startup (`--proxy-cache`, `--proxy-cache-dir`,
/// `--proxy-cache-max-disk`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bytes of memory for stored responses.
    pub memory: u64,
    /// The disk tier's folder, if any.
    pub dir: Option<PathBuf>,
    /// Bytes the disk tier may hold.
    pub max_disk: u64,
}

/// The shared cache of every proxy route that has it on.
#[derive(Debug)]
pub struct Cache {
    /// The stored responses.
    pub store: store::Store,
    /// Requests on their way upstream, for collapsed forwarding.
    pub flights: Arc<collapse::Flights>,
}

impl Cache {
    /// An empty cache, or one loaded from its folder; an error names the folder.
    pub fn new(settings: &Settings) -> Result<Cache, String> {
        let disk = settings.dir.as_ref().map(|dir| store::DiskTier {
            dir: dir.clone(),
            max: settings.max_disk,
        });
        Ok(Cache {
            store: store::Store::new(settings.memory, disk)?,
            flights: Arc::new(collapse::Flights::default()),
        })
    }
}

/// The host a request addressed, lowercased: its target's authority (an
/// absolute-form target's, which wins over `Host` by RFC 9112 §3.2.2, or HTTP/2's
/// `:authority`), else `Host` — the one the app is told, so that what is stored
/// under a host is what the app answered for it.
pub fn host_of(head: &Parts) -> String {
    head.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| head.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The primary key of a response of `route_prefix` for `host`, the path as the
/// request spelled it (`target`, after a rule's rewrite) and the query. Two
/// spellings of one path are two keys, each holding the answer to what it asks of
/// the upstream (as nginx's default key, `$request_uri`, does).
pub fn key(route_prefix: &str, host: &str, target: &str, query: Option<&str>) -> String {
    let mut key = String::with_capacity(
        route_prefix.len() + host.len() + target.len() + query.map_or(0, |q| q.len() + 1) + 2,
    );
    for part in [route_prefix, "\n", host, "\n", target] {
        key.push_str(part);
    }
    if let Some(q) = query {
        key.push('?');
        key.push_str(q);
    }
    key
}
