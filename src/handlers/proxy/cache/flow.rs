//! What a proxied request does with the cache (RFC 9111 §4):
//!
//! - GET and HEAD look for a stored response selected by the key and `Vary`.
//!   A fresh one that the request's directives accept is the answer (a hit). One
//!   the request accepts stale (`max-stale`), or one within its
//!   `stale-while-revalidate` window (refreshed in the background), is too.
//! - Otherwise the upstream is asked — with the stored response's validators when
//!   there is one — by one request per key at a time (collapsed forwarding). A 304
//!   refreshes the stored fields (§4.3.4); a storable full response is stored as it
//!   passes; an error or a 5xx answer is replaced by the stale response when
//!   `stale-if-error` allows.
//! - The client's own conditionals and ranges are kept from the upstream and
//!   evaluated here, against what is stored.
//! - A successful unsafe request removes what is stored for its target and for the
//!   same-origin `Location` and `Content-Location` (§4.4).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};

use super::collapse::{FlightGuard, Turn};
use super::control::{RequestDirectives, ResponseDirectives, SURROGATE_CONTROL};
use super::entry::{self, Entry};
use super::fill::Filling;
use super::serve;
use super::{host_of, key, Cache};
use crate::handlers::proxy::forward::{self, Sent};
use crate::handlers::proxy::Route;
use crate::handlers::Request as Incoming;
use crate::http::body::Body;
use crate::http::path::SitePath;
use crate::http::response;
use crate::metrics::{metrics, CacheOutcome};

/// How long a request waits for another one's answer for the same key.
const COLLAPSE_WAIT: Duration = Duration::from_secs(5);

/// Bodies up to this size are read whole before the answer starts (and answered
/// from the stored entry, with ranges and conditionals).
const SMALL_BODY: u64 = 64 * 1024;

/// The client's fields the cache evaluates itself instead of passing on.
const CLIENT_ONLY: [header::HeaderName; 6] = [
    header::RANGE,
    header::IF_RANGE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
];

/// Statuses whose meaning the cache knows (RFC 9110 §15), for `must-understand`.
const UNDERSTOOD: [u16; 40] = [
    200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402, 403,
    404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 500, 501,
    502, 503,
];

/// Fields a 304 does not change in the stored response (RFC 9111 §3.2): they
/// describe the stored bytes, which the 304 did not send.
const KEPT_ON_304: [&str; 5] = [
    "content-encoding",
    "content-length",
    "content-md5",
    "content-range",
    "etag",
];

/// What wharf tells upstreams it understands of `Surrogate-Control`.
const SURROGATE_CAPABILITY: &str = "wharf=\"Surrogate/1.0\"";

/// What the cache needs of a GET or HEAD request.
#[derive(Clone, Copy)]
struct Asking<'a> {
    head: &'a http::request::Parts,
    path: &'a SitePath,
    /// `path` as spelled in the request (or the rewrite) it was parsed from.
    spelled: &'a str,
    remote: std::net::SocketAddr,
    tls: bool,
}

/// What to do with a stored response for this request.
#[derive(Debug, PartialEq, Eq)]
enum Reuse {
    /// Answer with it.
    Fresh,
    /// Answer with it, stale, as the request allows (`max-stale`).
    Stale,
    /// Answer with it, stale, and refresh it in the background.
    WhileRevalidating,
    /// Ask the upstream first.
    Validate,
}

/// Answers `req` through the cache.
pub async fn answer(route: Arc<Route>, cache: Arc<Cache>, req: Incoming<'_>) -> Response<Body> {
    let head = req.head;
    if forward::wants_upgrade(head).is_some() {
        // A protocol switch (a WebSocket) is a tunnel, not a response to store.
        return forward::forward(route, req).await;
    }
    let host = host_of(head);
    let trusted = route
        .trusted
        .iter()
        .any(|net| net.contains(&req.remote.ip()));
    let origin = origin(head, &host, trusted);
    let key = key(&route.prefix, &origin, req.target, head.uri.query());
    if head.method != Method::GET && head.method != Method::HEAD {
        let unsafe_method = !is_safe(&head.method);
        let target = req.target;
        let mut res = forward::forward(Arc::clone(&route), req).await;
        // Not a method whose answers are looked up (RFC 9211 §2.4).
        serve::add_status(res.headers_mut(), "fwd=method");
        if unsafe_method && (res.status().is_success() || res.status().is_redirection()) {
            invalidate(
                &cache,
                &route.prefix,
                (&host, &origin),
                &key,
                target,
                res.headers(),
            );
        }
        return res;
    }
    let rcc = RequestDirectives::of(&head.headers);
    if rcc.no_store || !http_body::Body::is_end_stream(&req.body) {
        // Neither this request nor its answer may be stored: straight through.
        let mut res = forward::forward(route, req).await;
        serve::add_status(res.headers_mut(), "fwd=request");
        return res;
    }
    let req = Asking {
        head,
        path: &req.path,
        spelled: req.target,
        remote: req.remote,
        tls: req.tls,
    };
    let mut may_wait = true;
    let mut collapsed = false;
    loop {
        let found = cache.store.find(&key, &head.headers);
        let mut fwd = if found.key_known {
            "vary-miss"
        } else {
            "uri-miss"
        };
        let mut stored = None;
        if let Some(entry) = found.entry {
            let now = SystemTime::now();
            let (age, life) = (entry.age(now), entry.lifetime());
            let reuse = reuse(&rcc, entry.directives(), age, life);
            let detail = match reuse {
                Reuse::Fresh if collapsed => {
                    Some(format!("hit; ttl={}; collapsed", ttl(age, life)))
                }
                Reuse::Fresh => Some(format!("hit; ttl={}", ttl(age, life))),
                Reuse::Stale => Some(format!("hit; ttl={}", ttl(age, life))),
                Reuse::WhileRevalidating => {
                    refresh_in_background(&route, &cache, req, &key, &entry);
                    Some(format!(
                        "hit; ttl={}; detail=stale-while-revalidate",
                        ttl(age, life)
                    ))
                }
                Reuse::Validate => None,
            };
            if let Some(detail) = detail {
                match serve::respond(&cache.store, &entry, head, &detail).await {
                    Some(res) => {
                        metrics().cache(if reuse == Reuse::Fresh {
                            CacheOutcome::Hit
                        } else {
                            CacheOutcome::Stale
                        });
                        return res;
                    }
                    // Its file was damaged and is gone: look again.
                    None => continue,
                }
            }
            // RFC 9211: `request` when the client's directives sent it forward.
            fwd = if rcc.no_cache || rcc.max_age.is_some() || rcc.min_fresh.is_some() {
                "request"
            } else {
                "stale"
            };
            stored = Some(entry);
        }
        if rcc.only_if_cached {
            let mut res = response::error(StatusCode::GATEWAY_TIMEOUT);
            // Not sent forward (RFC 9211 §2.2): no `fwd`.
            serve::add_status(res.headers_mut(), "detail=only-if-cached");
            return res;
        }
        let flight = if may_wait {
            match cache.flights.join(&key) {
                Turn::Lead(guard) => Some(guard),
                Turn::Follow(flight) => {
                    // Someone is asking the upstream for this already: its answer
                    // will do, if it can be stored.
                    may_wait = false;
                    collapsed = flight.wait(COLLAPSE_WAIT).await;
                    continue;
                }
            }
        } else {
            None
        };
        return fetch(&route, &cache, req, &key, stored, fwd, flight, &rcc).await;
    }
}

/// A fresh stored response from memory for a GET or HEAD that asks nothing of the
/// cache (no `Cache-Control` or `Pragma`), answered without waiting; `None`
/// whenever anything more is needed (then [`answer`] decides).
pub fn ready(
    route: &Route,
    cache: &Cache,
    head: &http::request::Parts,
    target: &str,
) -> Option<Response<Body>> {
    let plain = (head.method == Method::GET || head.method == Method::HEAD)
        && !head.headers.contains_key(header::CACHE_CONTROL)
        && !head.headers.contains_key(header::PRAGMA);
    if !plain {
        return None;
    }
    // Forwarded fields count as a trusted proxy's here; when the sender is not
    // one, the key differs from the stored one and the full path answers.
    let key = key(
        &route.prefix,
        &origin(head, &host_of(head), true),
        target,
        head.uri.query(),
    );
    let entry = cache.store.find(&key, &head.headers).entry?;
    entry.memory.as_ref()?;
    let (age, life) = (entry.age(SystemTime::now()), entry.lifetime());
    if reuse(&RequestDirectives::default(), entry.directives(), age, life) != Reuse::Fresh {
        return None;
    }
    let res = serve::from_memory(&entry, head, &format!("hit; ttl={}", ttl(age, life)), age)?;
    metrics().cache(CacheOutcome::Hit);
    Some(res)
}

/// The origin part of the key: the host, and the scheme a trusted proxy in front
/// says the client used (the app sees it in `X-Forwarded-Proto`/`Forwarded` and may
/// answer differently, e.g. redirect plain HTTP). wharf's own scheme is the same
/// for every request it proxies (with TLS on, plain HTTP only redirects).
fn origin(head: &http::request::Parts, host: &str, trusted: bool) -> String {
    let mut origin = host.to_string();
    if trusted {
        for name in [&forward::X_FORWARDED_PROTO, &forward::FORWARDED] {
            for value in head.headers.get_all(name) {
                origin.push(' ');
                origin.push_str(&String::from_utf8_lossy(value.as_bytes()));
            }
        }
    }
    origin
}

/// Whether a method is safe (RFC 9110 §9.2.1): it changes nothing stored.
fn is_safe(method: &Method) -> bool {
    matches!(
        method.as_str(),
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PROPFIND" | "SEARCH" | "REPORT"
    )
}

/// Seconds of freshness left (negative when stale), for `Cache-Status`'s `ttl`.
fn ttl(age: Duration, life: Duration) -> i64 {
    life.as_secs() as i64 - age.as_secs() as i64
}

/// How a stored response of `age` and lifetime `life` may be used for a request
/// with directives `rcc` (RFC 9111 §4.2, §5.2.1; RFC 5861 §3).
fn reuse(rcc: &RequestDirectives, cc: &ResponseDirectives, age: Duration, life: Duration) -> Reuse {
    if rcc.no_cache || cc.no_cache {
        return Reuse::Validate;
    }
    let fresh = life > age;
    let stale_for = age.saturating_sub(life).as_secs();
    let age_ok = rcc.max_age.is_none_or(|m| age.as_secs() <= m);
    if fresh && age_ok {
        let left = (life - age).as_secs();
        if rcc.min_fresh.is_none_or(|m| left >= m) {
            return Reuse::Fresh;
        }
        return Reuse::Validate;
    }
    if !fresh {
        let origin_forbids = cc.must_revalidate || cc.proxy_revalidate;
        let client_allows = rcc
            .max_stale
            .is_some_and(|m| m.is_none_or(|n| stale_for <= n));
        if client_allows && !origin_forbids && cc.s_maxage.is_none() && rcc.min_fresh.is_none() {
            return Reuse::Stale;
        }
        let window = cc.stale_while_revalidate.is_some_and(|w| stale_for <= w);
        if window && !origin_forbids && rcc.max_age.is_none() && rcc.min_fresh.is_none() {
            return Reuse::WhileRevalidating;
        }
    }
    Reuse::Validate
}

/// Whether `stale-if-error` (the response's or the request's) lets a stored
/// response of `entry` answer for a failed upstream.
fn stale_if_error(entry: &Entry, rcc: &RequestDirectives) -> bool {
    let cc = entry.directives();
    if cc.must_revalidate || cc.proxy_revalidate || cc.no_cache {
        return false;
    }
    let stale_for = entry
        .age(SystemTime::now())
        .saturating_sub(entry.lifetime())
        .as_secs();
    cc.stale_if_error
        .or(rcc.stale_if_error)
        .is_some_and(|w| stale_for <= w)
}

/// The request's fields for the upstream. When `stored` is being revalidated, its
/// validators replace the client's conditionals and range, which are answered
/// from it here; on a miss the client's go along (a 206 or 304 is then passed on,
/// not stored).
fn upstream_fields(route: &Route, req: Asking<'_>, stored: Option<&Entry>) -> HeaderMap {
    let mut headers = forward::upstream_headers(route, req.head, req.remote, req.tls);
    if stored.is_some() {
        for name in &CLIENT_ONLY {
            headers.remove(name);
        }
    }
    headers.append(
        "surrogate-capability",
        HeaderValue::from_static(SURROGATE_CAPABILITY),
    );
    if let Some(entry) = stored {
        if let Some(tag) = entry.etag() {
            headers.insert(header::IF_NONE_MATCH, tag.clone());
        }
        if let Some(modified) = entry.headers.get(header::LAST_MODIFIED) {
            headers.insert(header::IF_MODIFIED_SINCE, modified.clone());
        }
    }
    headers
}

/// Asks the upstream (revalidating `stored` if there is one) and answers.
#[allow(clippy::too_many_arguments)]
async fn fetch(
    route: &Arc<Route>,
    cache: &Arc<Cache>,
    req: Asking<'_>,
    key: &str,
    stored: Option<Arc<Entry>>,
    fwd: &str,
    flight: Option<FlightGuard>,
    rcc: &RequestDirectives,
) -> Response<Body> {
    let head = req.head;
    metrics().cache(if stored.is_some() {
        CacheOutcome::Revalidated
    } else {
        CacheOutcome::Miss
    });
    let headers = upstream_fields(route, req, stored.as_deref());
    let target = forward::Target {
        path: req.path,
        spelled: req.spelled,
        query: head.uri.query(),
    };
    let sent = forward::send(route, &Method::GET, target, &headers, None, None).await;
    let sent = match sent {
        Ok(sent) => sent,
        Err(status) => {
            // Cut off from the upstream, a stale response answers only where
            // `stale-if-error` allows (as nginx's `proxy_cache_use_stale` is off
            // unless asked for).
            if let Some(entry) = stored.as_ref().filter(|e| stale_if_error(e, rcc)) {
                let detail = "fwd=stale; detail=stale-if-error";
                if let Some(res) = serve::respond(&cache.store, entry, head, detail).await {
                    return res;
                }
            }
            // A stored response that must be validated, and cannot be: 504 (RFC
            // 9111 §5.2.2.2).
            let status = match &stored {
                Some(entry)
                    if status == StatusCode::BAD_GATEWAY && entry.directives().forbids_stale() =>
                {
                    StatusCode::GATEWAY_TIMEOUT
                }
                _ => status,
            };
            let mut res = response::error(status);
            serve::add_status(res.headers_mut(), &format!("fwd={fwd}; detail=unreachable"));
            return res;
        }
    };
    let status = sent.res.status();
    if let Some(entry) = &stored {
        if status == StatusCode::NOT_MODIFIED && !selects(entry, sent.res.headers()) {
            // The upstream's current response has another validator: the stored
            // one is not it, and is not refreshed (RFC 9111 §4.3.4). Asked for
            // whole instead, as a miss.
            cache.store.remove(entry);
            drop(sent);
            let whole = fetch(route, cache, req, key, None, fwd, flight, rcc);
            return Box::pin(whole).await;
        }
        if status == StatusCode::NOT_MODIFIED {
            let refreshed = refreshed(cache, entry, &sent, &head.headers);
            drop(flight);
            let detail = "fwd=stale; fwd-status=304";
            if let Some(mut res) = serve::respond(&cache.store, &refreshed, head, detail).await {
                res.extensions_mut().insert(sent.answered);
                return res;
            }
            return response::error(StatusCode::BAD_GATEWAY);
        }
        if status.is_server_error() && stale_if_error(entry, rcc) {
            let detail = format!(
                "fwd=stale; fwd-status={}; detail=stale-if-error",
                status.as_u16()
            );
            if let Some(res) = serve::respond(&cache.store, entry, head, &detail).await {
                return res;
            }
        }
    }
    let head_request = head.method == Method::HEAD;
    let template = storable(key, req, &sent, rcc);
    let Sent {
        res,
        lease,
        answered,
        ..
    } = sent;
    let Some(template) = template else {
        if let Some(entry) = stored.as_ref().filter(|_| !status.is_server_error()) {
            // Replaced upstream by something that may not be stored (a failure
            // leaves it: the next validation may bring it back).
            cache.store.remove(entry);
        }
        drop(flight);
        let mut out = forward::relay(res, head_request, lease, route.response_timeout, None).await;
        out.headers_mut().remove(SURROGATE_CONTROL);
        serve::add_status(
            out.headers_mut(),
            &format!("fwd={fwd}; fwd-status={}", status.as_u16()),
        );
        out.extensions_mut().insert(answered);
        return out;
    };
    let detail = format!("fwd={fwd}; fwd-status={}; stored", status.as_u16());
    let length = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bodiless = status == StatusCode::NO_CONTENT;
    if bodiless || length.is_some_and(|n| n <= SMALL_BODY) {
        // Small: read whole, stored, and answered from the entry (so with the
        // client's ranges and conditionals).
        let own = users_own_fields(res.headers());
        let had_age = res.headers().contains_key(header::AGE);
        let (_, mut incoming) = res.into_parts();
        let whole = if bodiless {
            Some(bytes::Bytes::new())
        } else {
            let n = length.unwrap_or(0);
            tokio::time::timeout(
                route.response_timeout,
                forward::read_whole(&mut incoming, n),
            )
            .await
            .ok()
            .flatten()
        };
        drop(lease);
        let Some(whole) = whole else {
            return response::error(StatusCode::BAD_GATEWAY);
        };
        let entry = Filling::new(Arc::clone(cache), template, flight).store_whole(whole);
        return match serve::respond(&cache.store, &entry, head, &detail).await {
            Some(mut res) => {
                // Fresh from the app: the fields a qualified `private` keeps out of
                // the cache are still this user's (RFC 9111 §5.2.2.7), and an `Age`
                // would say the app was not asked (§5.1).
                for (name, value) in own {
                    res.headers_mut().append(name, value);
                }
                if !had_age {
                    res.headers_mut().remove(header::AGE);
                }
                res.extensions_mut().insert(answered);
                res
            }
            None => response::error(StatusCode::BAD_GATEWAY),
        };
    }
    // Stored once the body is through, if it is whole and within bounds.
    let detail = format!("fwd={fwd}; fwd-status={}", status.as_u16());
    let filling = Filling::new(Arc::clone(cache), template, flight);
    let mut out = forward::relay(
        res,
        head_request,
        lease,
        route.response_timeout,
        Some(filling),
    )
    .await;
    out.headers_mut().remove(SURROGATE_CONTROL);
    serve::add_status(out.headers_mut(), &detail);
    out.extensions_mut().insert(answered);
    out
}

/// The fields of an app's response that its qualified `private` names: never
/// stored, but the requesting user's.
fn users_own_fields(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let Some(names) = ResponseDirectives::of(headers).private else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .flat_map(|name| {
            headers
                .get_all(&name)
                .iter()
                .map(|v| (name.clone(), v.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether a 304 with `fields` validates `entry` (RFC 9111 §4.3.4): the same
/// strong entity tag; else the same weak one, or the same `Last-Modified`. A 304
/// with no validator at all answers the validators `entry` was asked about with.
fn selects(entry: &Entry, fields: &HeaderMap) -> bool {
    if let Some(tag) = fields.get(header::ETAG) {
        let Some(stored) = entry.etag() else {
            return false;
        };
        let (new, old) = (tag.as_bytes().trim_ascii(), stored.as_bytes().trim_ascii());
        // A strong tag names only a response with that very strong tag; a weak
        // one, any with the same opaque tag.
        return match (new.strip_prefix(b"W/"), old.strip_prefix(b"W/")) {
            (None, None) => new == old,
            (None, Some(_)) => false,
            (Some(new), Some(old)) => new == old,
            (Some(new), None) => new == old,
        };
    }
    if fields.contains_key(header::LAST_MODIFIED) {
        let modified = super::entry::single_date(fields, &header::LAST_MODIFIED);
        return modified.is_some() && modified == entry.last_modified();
    }
    true
}

/// The stored response `entry` with the fields of the 304 that validated it
/// (RFC 9111 §3.2, §4.3.4), stored in its place. `request` is the request the 304
/// answered: when the 304 changes what the response varies on, the entry is kept
/// for requests like it only (§4.1).
fn refreshed(
    cache: &Arc<Cache>,
    entry: &Arc<Entry>,
    sent: &Sent,
    request: &http::HeaderMap,
) -> Arc<Entry> {
    let mut fresh = entry.derive();
    let mut update = sent.res.headers().clone();
    forward::clean(&mut update, StatusCode::NOT_MODIFIED, sent.res.version());
    for name in KEPT_ON_304 {
        update.remove(name);
    }
    update.remove("via");
    for name in update.keys() {
        fresh.headers.remove(name);
    }
    for (name, value) in &update {
        fresh.headers.append(name.clone(), value.clone());
    }
    if !update.contains_key(header::AGE) {
        fresh.headers.remove(header::AGE);
    }
    fresh.request_time = sent.sent_at;
    fresh.response_time = SystemTime::now();
    if !update.contains_key(header::DATE) {
        if let Some(date) = response::http_date(fresh.response_time) {
            fresh.headers.insert(header::DATE, date);
        }
    }
    fresh.refresh_facts();
    let stored_by: Vec<&str> = entry.variant.iter().map(|(n, _)| n.as_str()).collect();
    match entry::vary_names(&fresh.headers) {
        // `Vary: *`: no later request can be matched to it.
        None => {
            cache.store.remove(entry);
            return Arc::new(fresh);
        }
        Some(names) if names != stored_by => {
            fresh.variant = names
                .into_iter()
                .map(|name| {
                    let value = entry::request_value(request, &name);
                    (name, value)
                })
                .collect();
        }
        Some(_) => {}
    }
    let cc = fresh.directives().clone();
    if let Some(fields) = cc.private.as_ref().filter(|f| !f.is_empty()) {
        for name in fields {
            fresh.headers.remove(name.as_str());
        }
    }
    let unqualified_private = cc.private.as_ref().is_some_and(Vec::is_empty);
    if (cc.no_store && cc.surrogate_max_age.is_none()) || unqualified_private {
        // The origin no longer lets it be stored: this answer only, then gone.
        cache.store.remove(entry);
        return Arc::new(fresh);
    }
    let stored = cache.store.insert_in_place_of(fresh, Some(entry));
    if let (Some(tier), Some(old)) = (cache.store.disk(), entry.disk.clone()) {
        // The file still holds the old fields: written again with the new ones.
        let dir = tier.dir.clone();
        let cache = Arc::clone(cache);
        let stored = Arc::clone(&stored);
        tokio::spawn(async move {
            let writer = Arc::clone(&stored);
            let rewritten = tokio::task::spawn_blocking(move || {
                let name = super::disk::new_name(&writer.key);
                super::disk::rewrite(&dir, &old, &name, &writer)
            })
            .await;
            if let Ok(Ok(copy)) = rewritten {
                cache.store.attach_file(&stored.key, stored.id, copy);
            }
        });
    }
    stored
}

/// The entry (without its body yet) that a response would be stored as, or `None`
/// when a shared cache may not store it (RFC 9111 §3, §3.5).
fn storable(key: &str, req: Asking<'_>, sent: &Sent, rcc: &RequestDirectives) -> Option<Entry> {
    let status = sent.res.status();
    let mut headers = sent.res.headers().clone();
    forward::clean(&mut headers, status, sent.res.version());
    let cc = ResponseDirectives::of(&headers);
    let final_and_whole = !status.is_informational()
        && status != StatusCode::PARTIAL_CONTENT
        && status != StatusCode::NOT_MODIFIED;
    // `Surrogate-Control: max-age` for wharf overrides what `Cache-Control` says
    // about storing; `must-understand` lifts `no-store` for a status the cache
    // understands, and forbids storing any other.
    let surrogate = cc.surrogate_max_age.is_some();
    let understood = UNDERSTOOD.contains(&status.as_u16());
    let no_store = if cc.must_understand {
        !understood
    } else {
        !surrogate && cc.no_store
    };
    let no_store = no_store || cc.surrogate_no_store;
    let shared_ok = surrogate || !matches!(&cc.private, Some(fields) if fields.is_empty());
    let authorized = req.head.headers.contains_key(header::AUTHORIZATION);
    let explicitly_shared = cc.public || cc.s_maxage.is_some() || cc.must_revalidate;
    // Asked of the fields as received: cleaning takes `X-Accel-*` away.
    let received_fields = sent.res.headers();
    let handed_back = received_fields.contains_key("x-accel-redirect")
        || received_fields.contains_key("x-sendfile");
    if !final_and_whole
        || rcc.no_store
        || no_store
        || !shared_ok
        || (authorized && !explicitly_shared)
        || handed_back
    {
        return None;
    }
    let vary = entry::vary_names(&headers)?;
    let received = SystemTime::now();
    let explicit = entry::has_explicit_lifetime(&headers, &cc) || cc.public;
    if !explicit && !entry::heuristic_allowed(status, &cc) {
        return None;
    }
    let life = entry::lifetime(status, &headers, &cc, received);
    let validators =
        headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
    let useful = !life.is_zero()
        || validators
        || cc.stale_if_error.is_some()
        || cc.stale_while_revalidate.is_some();
    if !useful {
        return None;
    }
    if let Some(fields) = &cc.private {
        // Qualified `private`: those fields are the user's alone.
        for name in fields {
            headers.remove(name.as_str());
        }
    }
    headers.remove(header::CONTENT_LENGTH);
    if !headers.contains_key(header::DATE) {
        if let Some(date) = response::http_date(received) {
            headers.insert(header::DATE, date);
        }
    }
    let variant = vary
        .into_iter()
        .map(|name| {
            let value = entry::request_value(&req.head.headers, &name);
            (name, value)
        })
        .collect();
    Some(Entry {
        key: key.to_string(),
        variant,
        status,
        facts: entry::Facts::of(status, &headers, received),
        headers,
        request_time: sent.sent_at,
        response_time: received,
        len: 0,
        memory: None,
        disk: None,
        verified: std::sync::atomic::AtomicBool::new(true),
        used: std::sync::atomic::AtomicU64::new(0),
        id: 0,
    })
}

/// Refreshes `entry` in the background (`stale-while-revalidate`), unless a
/// request for its key is already on its way upstream.
fn refresh_in_background(
    route: &Arc<Route>,
    cache: &Arc<Cache>,
    req: Asking<'_>,
    key: &str,
    entry: &Arc<Entry>,
) {
    let Turn::Lead(flight) = cache.flights.join(key) else {
        return;
    };
    let headers = upstream_fields(route, req, Some(entry));
    let (route, cache, entry) = (Arc::clone(route), Arc::clone(cache), Arc::clone(entry));
    let path = req.path.clone();
    let query = req.head.uri.query().map(str::to_string);
    let spelled = req.spelled.to_string();
    let head = req.head.clone();
    let (remote, tls) = (req.remote, req.tls);
    let key = key.to_string();
    tokio::spawn(async move {
        let _flight = flight;
        let target = forward::Target {
            path: &path,
            spelled: &spelled,
            query: query.as_deref(),
        };
        let sent = forward::send(&route, &Method::GET, target, &headers, None, None).await;
        let Ok(sent) = sent else { return };
        if sent.res.status() == StatusCode::NOT_MODIFIED {
            if selects(&entry, sent.res.headers()) {
                refreshed(&cache, &entry, &sent, &head.headers);
            } else {
                // Not the upstream's current response: the next request asks.
                cache.store.remove(&entry);
            }
            return;
        }
        let background = Asking {
            head: &head,
            path: &path,
            spelled: &spelled,
            remote,
            tls,
        };
        let Some(template) = storable(&key, background, &sent, &RequestDirectives::default())
        else {
            cache.store.remove(&entry);
            return;
        };
        let Sent { res, lease, .. } = sent;
        let (tx, _) = tokio::sync::mpsc::channel(1);
        let length = res
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (_, incoming) = res.into_parts();
        let filling = Filling::new(Arc::clone(&cache), template, None);
        crate::handlers::proxy::buffer::spawn(
            incoming,
            length,
            tx,
            lease,
            Some(filling),
            route.response_timeout,
        );
    });
}

/// Removes what is stored for the target of a successful unsafe request and for
/// the same-origin URLs its response names (RFC 9111 §4.4).
fn invalidate(
    cache: &Cache,
    prefix: &str,
    (host, origin): (&str, &str),
    key: &str,
    target: &str,
    res: &HeaderMap,
) {
    cache.store.remove_key(key);
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(value) = res.get(&name) else {
            continue;
        };
        if let Some((path, query)) = same_origin(value, host, target) {
            cache
                .store
                .remove_key(&super::key(prefix, origin, &path, query.as_deref()));
        }
    }
}

/// The path and query a `Location`-like value names on `host`, a relative one
/// resolved against `base` (the request's path); `None` for another origin or a
/// malformed value.
fn same_origin(value: &HeaderValue, host: &str, base: &str) -> Option<(String, Option<String>)> {
    let text = value.to_str().ok()?.trim();
    let (raw, query) = if text.starts_with('/') || text.contains("://") {
        let uri: http::Uri = text.parse().ok()?;
        if let Some(authority) = uri.authority() {
            if !authority.as_str().eq_ignore_ascii_case(host) {
                return None;
            }
        }
        (uri.path().to_string(), uri.query().map(str::to_string))
    } else {
        // A relative reference (`c`, `c?x`), against the request's folder.
        let (path, query) = match text.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (text, None),
        };
        let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
        (format!("{dir}{path}"), query)
    };
    Some((raw, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn fresh_stale_and_the_request_directives() {
        let none = RequestDirectives::default();
        let cc = ResponseDirectives::default();
        assert_eq!(reuse(&none, &cc, secs(5), secs(10)), Reuse::Fresh);
        assert_eq!(reuse(&none, &cc, secs(10), secs(10)), Reuse::Validate);
        let old_enough = RequestDirectives {
            max_age: Some(3),
            ..Default::default()
        };
        assert_eq!(reuse(&old_enough, &cc, secs(5), secs(10)), Reuse::Validate);
        let stale_ok = RequestDirectives {
            max_stale: Some(Some(20)),
            ..Default::default()
        };
        assert_eq!(reuse(&stale_ok, &cc, secs(25), secs(10)), Reuse::Stale);
        assert_eq!(reuse(&stale_ok, &cc, secs(35), secs(10)), Reuse::Validate);
        let must = ResponseDirectives {
            must_revalidate: true,
            ..Default::default()
        };
        assert_eq!(reuse(&stale_ok, &must, secs(25), secs(10)), Reuse::Validate);
        let swr = ResponseDirectives {
            stale_while_revalidate: Some(30),
            ..Default::default()
        };
        assert_eq!(
            reuse(&none, &swr, secs(25), secs(10)),
            Reuse::WhileRevalidating
        );
        let min_fresh = RequestDirectives {
            min_fresh: Some(8),
            ..Default::default()
        };
        assert_eq!(reuse(&min_fresh, &cc, secs(5), secs(10)), Reuse::Validate);
    }

    #[test]
    fn the_capability_names_the_token_surrogate_control_targets() {
        let token = SURROGATE_CAPABILITY.split('=').next();
        assert_eq!(token, Some(super::super::control::SURROGATE_TOKEN));
    }

    #[test]
    fn same_origin_locations_only() {
        let base = "/a/b";
        let v = |s: &'static str| HeaderValue::from_static(s);
        let (p, q) = same_origin(&v("/x?y=1"), "h:1", base).unwrap();
        assert_eq!((p.as_str(), q.as_deref()), ("/x", Some("y=1")));
        let (p, _) = same_origin(&v("c"), "h:1", base).unwrap();
        assert_eq!(p, "/a/c");
        assert!(same_origin(&v("http://other/x"), "h:1", base).is_none());
        assert!(same_origin(&v("http://H:1/x"), "h:1", base).is_some());
    }
}
