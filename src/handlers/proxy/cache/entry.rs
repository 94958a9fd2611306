//! A stored response (RFC 9111 §3): its header section, its body (in memory, on
//! disk, or both), the request fields it was selected by (`Vary`), and the times
//! its age is computed from (§4.2.3).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::StatusCode;

use super::control::ResponseDirectives;

/// Statuses whose responses may be given a heuristic lifetime (RFC 9110 §15.1).
const HEURISTICALLY_CACHEABLE: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// The age of a response whose `Age` field is malformed: older than any lifetime.
const UNKNOWN_AGE: Duration = Duration::from_secs(1 << 32);

/// The share of the time since `Last-Modified` a heuristic lifetime takes (§4.2.2).
const HEURISTIC_FRACTION: u32 = 10;

/// The longest heuristic lifetime.
const HEURISTIC_MAX: Duration = Duration::from_secs(24 * 3600);

/// Where a stored body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCopy {
    /// The entry's file name in the cache folder.
    pub name: String,
    /// xxh3-64 of the body, checked the first time the file is used.
    pub body_hash: u64,
    /// The whole file's size.
    pub size: u64,
}

/// One stored response.
#[derive(Debug)]
pub struct Entry {
    /// The primary cache key (see [`super::key`]).
    pub key: String,
    /// For each field the response's `Vary` names, the request's value (`None`:
    /// absent), normalised.
    pub variant: Vec<(String, Option<String>)>,
    /// The status.
    pub status: StatusCode,
    /// The header section as stored: hop-by-hop fields and `Content-Length` left
    /// out (the body's length is known).
    pub headers: HeaderMap,
    /// What the header section says, read once when it is stored or refreshed.
    pub facts: Facts,
    /// When the request that got it was sent.
    pub request_time: SystemTime,
    /// When its head arrived.
    pub response_time: SystemTime,
    /// The body's length.
    pub len: u64,
    /// The body, when it is held in memory.
    pub memory: Option<Bytes>,
    /// The body's file, when there is a disk tier.
    pub disk: Option<DiskCopy>,
    /// Whether the file's body has been checked against its hash.
    pub verified: AtomicBool,
    /// Its place in the least-recently-used order (the store's clock).
    pub used: AtomicU64,
    /// Its identity in the store.
    pub id: u64,
}

/// What a stored header section says, read once: a hit reads no field text.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Its `Cache-Control` (and `Surrogate-Control` for wharf).
    pub cc: ResponseDirectives,
    /// Its freshness lifetime.
    pub lifetime: Duration,
    /// Its `Date`, or when it arrived.
    pub date: SystemTime,
    /// Its `Age` as sent; `None` when malformed.
    pub age_value: Option<Duration>,
    /// Its `ETag` when strong.
    pub strong_tag: Option<crate::http::etag::EntityTag>,
    /// Its `Last-Modified`.
    pub last_modified: Option<SystemTime>,
}

impl Facts {
    /// What `headers` of a `status` response that arrived at `received` say.
    pub fn of(status: StatusCode, headers: &HeaderMap, received: SystemTime) -> Facts {
        let cc = ResponseDirectives::of(headers);
        Facts {
            lifetime: lifetime(status, headers, &cc, received),
            cc,
            date: single_date(headers, &header::DATE).unwrap_or(received),
            age_value: age_value(headers),
            strong_tag: headers
                .get(header::ETAG)
                .and_then(crate::http::etag::EntityTag::from_header),
            last_modified: single_date(headers, &header::LAST_MODIFIED),
        }
    }
}

impl Entry {
    /// The response's `Cache-Control`.
    pub fn directives(&self) -> &ResponseDirectives {
        &self.facts.cc
    }

    /// `current_age` of RFC 9111 §4.2.3, at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        let Some(age_value) = self.facts.age_value else {
            // An `Age` that cannot be read says nothing reliable: treated as old.
            return UNKNOWN_AGE;
        };
        let apparent = self
            .response_time
            .duration_since(self.facts.date)
            .unwrap_or_default();
        let delay = self
            .response_time
            .duration_since(self.request_time)
            .unwrap_or_default();
        let corrected_initial = apparent.max(age_value.saturating_add(delay));
        let resident = now.duration_since(self.response_time).unwrap_or_default();
        corrected_initial + resident
    }

    /// How long it is fresh for, from its origin (RFC 9111 §4.2.1).
    pub fn lifetime(&self) -> Duration {
        self.facts.lifetime
    }

    /// Reads its fields again (after they changed).
    pub fn refresh_facts(&mut self) {
        self.facts = Facts::of(self.status, &self.headers, self.response_time);
    }

    /// Whether the request fields it was selected by are those of `request`.
    pub fn matches(&self, request: &HeaderMap) -> bool {
        self.variant
            .iter()
            .all(|(name, value)| request_value(request, name) == *value)
    }

    /// Bytes it holds in memory, headers included (roughly).
    pub fn memory_cost(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        (self.key.len() + headers + 256) as u64 + self.memory.as_ref().map_or(0, |b| b.len() as u64)
    }

    /// Its strong or weak `ETag` value, as sent.
    pub fn etag(&self) -> Option<&http::HeaderValue> {
        self.headers.get(header::ETAG)
    }

    /// Its `Last-Modified`.
    pub fn last_modified(&self) -> Option<SystemTime> {
        self.facts.last_modified
    }

    /// What `If-Modified-Since` is compared with: `Last-Modified`, else `Date`
    /// (RFC 9111 §4.3.2).
    pub fn modified_for_conditionals(&self) -> SystemTime {
        self.facts.last_modified.unwrap_or(self.facts.date)
    }

    /// A copy with `memory`, `disk`, headers or times replaced by the caller.
    pub fn derive(&self) -> Entry {
        Entry {
            key: self.key.clone(),
            variant: self.variant.clone(),
            status: self.status,
            headers: self.headers.clone(),
            facts: self.facts.clone(),
            request_time: self.request_time,
            response_time: self.response_time,
            len: self.len,
            memory: self.memory.clone(),
            disk: self.disk.clone(),
            verified: AtomicBool::new(self.verified.load(Ordering::Relaxed)),
            used: AtomicU64::new(0),
            id: 0,
        }
    }
}

/// The freshness lifetime a response's fields give it: `s-maxage`, else `max-age`,
/// else `Expires` − `Date`, else (for a status that allows it, or a `public`
/// response) a tenth of the time since `Last-Modified`, at most a day.
pub fn lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    cc: &ResponseDirectives,
    received: SystemTime,
) -> Duration {
    if let Some(s) = cc.surrogate_max_age.or(cc.s_maxage).or(cc.max_age) {
        return Duration::from_secs(s);
    }
    let date = single_date(headers, &header::DATE).unwrap_or(received);
    if headers.contains_key(header::EXPIRES) {
        // An invalid or repeated Expires means "already expired" (§5.3).
        return match single_date(headers, &header::EXPIRES) {
            Some(expires) => expires.duration_since(date).unwrap_or_default(),
            None => Duration::ZERO,
        };
    }
    if heuristic_allowed(status, cc) {
        if let Some(modified) = single_date(headers, &header::LAST_MODIFIED) {
            let since = date.duration_since(modified).unwrap_or_default();
            return (since / HEURISTIC_FRACTION).min(HEURISTIC_MAX);
        }
    }
    Duration::ZERO
}

/// Whether a response without explicit freshness may be given a heuristic one.
pub fn heuristic_allowed(status: StatusCode, cc: &ResponseDirectives) -> bool {
    HEURISTICALLY_CACHEABLE.contains(&status.as_u16()) || cc.public
}

/// Whether a response has explicit freshness of its own.
pub fn has_explicit_lifetime(headers: &HeaderMap, cc: &ResponseDirectives) -> bool {
    cc.surrogate_max_age.is_some()
        || cc.s_maxage.is_some()
        || cc.max_age.is_some()
        || headers.contains_key(header::EXPIRES)
}

/// A date field sent once and parseable; `None` otherwise.
pub fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut lines = headers.get_all(name).iter();
    let value = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

/// `Age` as sent: zero when absent, `None` when it is not one line of digits (a
/// list, a sign, a fraction, a parameter).
fn age_value(headers: &HeaderMap) -> Option<Duration> {
    let mut lines = headers.get_all(header::AGE).iter();
    let Some(line) = lines.next() else {
        return Some(Duration::ZERO);
    };
    let text = line.to_str().ok()?.trim();
    if lines.next().is_some() || text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(
        text.parse::<u64>().unwrap_or(1 << 31).min(1 << 31),
    ))
}

/// A request's value of a field named in `Vary`: every line joined with `, `, runs
/// of spaces collapsed (§4.1 lets a cache normalise so).
pub fn request_value(request: &HeaderMap, name: &str) -> Option<String> {
    let mut lines = request.get_all(name).iter().peekable();
    lines.peek()?;
    let joined = lines
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    let mut parts: Vec<String> = joined
        .split(',')
        .map(|part| part.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if ORDERLESS.contains(&name) {
        // Preference lists whose order and case carry no meaning (the weights do).
        for part in &mut parts {
            *part = part.to_ascii_lowercase().replace(' ', "");
        }
        parts.sort();
    }
    Some(parts.join(","))
}

/// Request fields compared for `Vary` without regard to order or case.
const ORDERLESS: [&str; 2] = ["accept-language", "accept-encoding"];

/// The field names a response's `Vary` lists, lowercased; `None` for `Vary: *`,
/// which no request ever matches.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for line in headers.get_all(header::VARY) {
        for name in String::from_utf8_lossy(line.as_bytes()).split(',') {
            let name = name.trim().to_ascii_lowercase();
            if name == "*" {
                return None;
            }
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(lines: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in lines {
            h.append(*n, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn lifetime_prefers_s_maxage_then_max_age_then_expires_then_heuristic() {
        let now = SystemTime::now();
        let date = httpdate::fmt_http_date(now);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(100));
        let long_ago = httpdate::fmt_http_date(now - Duration::from_secs(1000));
        let h = with(&[("cache-control", "max-age=5, s-maxage=7"), ("date", &date)]);
        let ok = StatusCode::OK;
        assert_eq!(
            lifetime(ok, &h, &ResponseDirectives::of(&h), now).as_secs(),
            7
        );
        let h = with(&[("expires", &later), ("date", &date)]);
        assert_eq!(
            lifetime(ok, &h, &ResponseDirectives::of(&h), now).as_secs(),
            100
        );
        let h = with(&[("expires", "0"), ("date", &date)]);
        assert_eq!(
            lifetime(ok, &h, &ResponseDirectives::of(&h), now).as_secs(),
            0
        );
        let h = with(&[("last-modified", &long_ago), ("date", &date)]);
        assert_eq!(
            lifetime(ok, &h, &ResponseDirectives::of(&h), now).as_secs(),
            100
        );
        let h = with(&[("last-modified", &long_ago), ("date", &date)]);
        let found = StatusCode::FOUND;
        assert_eq!(
            lifetime(found, &h, &ResponseDirectives::of(&h), now).as_secs(),
            0
        );
    }

    #[test]
    fn vary_values_normalise_and_star_never_matches() {
        let h = with(&[
            ("vary", "Accept-Encoding, x-a"),
            ("vary", "accept-encoding"),
        ]);
        assert_eq!(
            vary_names(&h),
            Some(vec!["accept-encoding".into(), "x-a".into()])
        );
        assert_eq!(vary_names(&with(&[("vary", "x, *")])), None);
        let r = with(&[("x-a", "a,  b"), ("x-a", "c")]);
        assert_eq!(request_value(&r, "x-a").as_deref(), Some("a,b,c"));
        let one = with(&[("accept-language", "en-GB, FR;q=0.5")]);
        let other = with(&[("accept-language", "fr;q=0.5,en-gb")]);
        assert_eq!(
            request_value(&one, "accept-language"),
            request_value(&other, "accept-language")
        );
    }
}
