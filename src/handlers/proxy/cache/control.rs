//! `Cache-Control` directives (RFC 9111 §5.2), of requests and of responses.
//!
//! All field lines of the header are read as one list. A directive given twice
//! keeps its first value (§4.2.1 allows that or "stale"); a number that does not
//! parse, or is negative, counts as 0 — stale, the safe reading; a huge one is
//! capped at 2³¹ seconds (§1.2.2). Quoted values are accepted everywhere.

use http::header::{self, HeaderMap, HeaderName};

/// The largest delta-seconds value wharf keeps (RFC 9111 §1.2.2).
const MAX_DELTA: u64 = 1 << 31;

/// What a response's `Cache-Control` says to a shared cache.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResponseDirectives {
    /// `max-age`.
    pub max_age: Option<u64>,
    /// `s-maxage`: for shared caches, over `max-age`; also forbids serving stale.
    pub s_maxage: Option<u64>,
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache`, with or without field names (both mean "validate first").
    pub no_cache: bool,
    /// `private`: `Some(vec![])` unqualified (never stored), else the fields that
    /// must not be stored.
    pub private: Option<Vec<String>>,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `must-understand`.
    pub must_understand: bool,
    /// `stale-while-revalidate` (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861).
    pub stale_if_error: Option<u64>,
    /// `Surrogate-Control: max-age` meant for wharf (Edge Architecture 1.0): over
    /// every `Cache-Control` directive about storing and freshness.
    pub surrogate_max_age: Option<u64>,
    /// `Surrogate-Control: no-store` meant for wharf.
    pub surrogate_no_store: bool,
}

/// The device token wharf announces in `Surrogate-Capability` and answers to in
/// `Surrogate-Control` (`max-age=60;wharf`).
pub const SURROGATE_TOKEN: &str = "wharf";

/// The field by which an origin instructs surrogates (reverse-proxy caches).
pub const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// What a request's `Cache-Control` (or `Pragma: no-cache`) asks of a cache.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestDirectives {
    /// `max-age`: a stored response older than this is not wanted unvalidated.
    pub max_age: Option<u64>,
    /// `max-stale`: `Some(None)` any staleness, `Some(Some(n))` up to n seconds.
    pub max_stale: Option<Option<u64>>,
    /// `min-fresh`.
    pub min_fresh: Option<u64>,
    /// `no-cache` (or `Pragma: no-cache` without `Cache-Control`).
    pub no_cache: bool,
    /// `no-store`.
    pub no_store: bool,
    /// `only-if-cached`.
    pub only_if_cached: bool,
    /// `stale-if-error` (RFC 5861).
    pub stale_if_error: Option<u64>,
}

/// The directives of every `Cache-Control` line, in order: `(name, value)`.
fn directives(headers: &HeaderMap) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for line in headers.get_all(header::CACHE_CONTROL) {
        let Ok(text) = line.to_str() else { continue };
        for item in split_list(text) {
            // No spaces around `=` (RFC 9111 §5.2's grammar): `max-age =5` is
            // another directive, `max-age= 5` a malformed value.
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n, Some(unquote(v))),
                None => (item, None),
            };
            let name = name.to_ascii_lowercase();
            if !name.is_empty() {
                out.push((name, value));
            }
        }
    }
    out
}

/// Splits a list at commas outside quoted strings.
fn split_list(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(text[start..].trim());
    items.retain(|i| !i.is_empty());
    items
}

/// A token or quoted-string value, without its quotes and escapes.
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if c == '\\' && !escaped {
                    escaped = true;
                } else {
                    out.push(c);
                    escaped = false;
                }
            }
            out
        }
        None => value.to_string(),
    }
}

/// delta-seconds: digits only; anything else (a sign, a fraction, nothing) is 0.
fn seconds(value: &Option<String>) -> u64 {
    match value {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse::<u64>().unwrap_or(MAX_DELTA).min(MAX_DELTA)
        }
        _ => 0,
    }
}

/// Field names of a qualified `private` or `no-cache`.
fn field_names(value: &Option<String>) -> Vec<String> {
    value
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Sets `slot` to `value` unless an earlier occurrence did.
fn first<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

impl ResponseDirectives {
    /// The directives of a response's header section.
    pub fn of(headers: &HeaderMap) -> ResponseDirectives {
        let mut d = ResponseDirectives::default();
        for (name, value) in directives(headers) {
            match name.as_str() {
                "max-age" => first(&mut d.max_age, seconds(&value)),
                "s-maxage" => first(&mut d.s_maxage, seconds(&value)),
                "no-store" => d.no_store = true,
                "no-cache" => d.no_cache = true,
                "private" => {
                    let names = field_names(&value);
                    match &mut d.private {
                        Some(listed) if !listed.is_empty() && !names.is_empty() => {
                            listed.extend(names)
                        }
                        Some(_) => {}
                        None => d.private = Some(names),
                    }
                }
                "public" => d.public = true,
                "must-revalidate" => d.must_revalidate = true,
                "proxy-revalidate" => d.proxy_revalidate = true,
                "must-understand" => d.must_understand = true,
                "stale-while-revalidate" => first(&mut d.stale_while_revalidate, seconds(&value)),
                "stale-if-error" => first(&mut d.stale_if_error, seconds(&value)),
                _ => {}
            }
        }
        for line in headers.get_all(&SURROGATE_CONTROL) {
            let Ok(text) = line.to_str() else { continue };
            for item in split_list(text) {
                // `directive[;device-token]`: without a token it is for every
                // surrogate.
                let (directive, target) = match item.split_once(';') {
                    Some((d, t)) => (d, Some(t.trim())),
                    None => (item, None),
                };
                if target.is_some_and(|t| !t.eq_ignore_ascii_case(SURROGATE_TOKEN)) {
                    continue;
                }
                let (name, value) = match directive.split_once('=') {
                    Some((n, v)) => (n.to_ascii_lowercase(), Some(v.to_string())),
                    None => (directive.to_ascii_lowercase(), None),
                };
                match name.as_str() {
                    "max-age" => {
                        // `max-age=N+M`: the freshness is N (the M seconds stale it
                        // also allows are not used).
                        let fresh = value.map(|v| unquote(v.split('+').next().unwrap_or("")));
                        first(&mut d.surrogate_max_age, seconds(&fresh));
                    }
                    "no-store" => d.surrogate_no_store = true,
                    _ => {}
                }
            }
        }
        d
    }

    /// Whether a shared cache may never answer with this response once stale
    /// without validating it (§4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.10).
    pub fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some() || self.no_cache
    }
}

impl RequestDirectives {
    /// The directives of a request's header section; `Pragma: no-cache` counts as
    /// `no-cache` when there is no `Cache-Control` (RFC 9111 §5.4).
    pub fn of(headers: &HeaderMap) -> RequestDirectives {
        let mut d = RequestDirectives::default();
        for (name, value) in directives(headers) {
            match name.as_str() {
                "max-age" => first(&mut d.max_age, seconds(&value)),
                "max-stale" => first(&mut d.max_stale, value.as_ref().map(|_| seconds(&value))),
                "min-fresh" => first(&mut d.min_fresh, seconds(&value)),
                "no-cache" => d.no_cache = true,
                "no-store" => d.no_store = true,
                "only-if-cached" => d.only_if_cached = true,
                "stale-if-error" => first(&mut d.stale_if_error, seconds(&value)),
                _ => {}
            }
        }
        if !headers.contains_key(header::CACHE_CONTROL) {
            d.no_cache = headers
                .get_all(header::PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(split_list)
                .any(|p| p.eq_ignore_ascii_case("no-cache"));
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append(header::CACHE_CONTROL, line.parse().unwrap());
        }
        h
    }

    #[test]
    fn response_directives_across_lines_keep_first_values() {
        let d = ResponseDirectives::of(&headers(&[
            "max-age=10, public",
            "max-age=99, s-maxage=\"5\"",
        ]));
        assert_eq!(d.max_age, Some(10));
        assert_eq!(d.s_maxage, Some(5));
        assert!(d.public);
    }

    #[test]
    fn bad_numbers_are_stale_and_huge_ones_capped() {
        assert_eq!(
            ResponseDirectives::of(&headers(&["max-age=-1"])).max_age,
            Some(0)
        );
        assert_eq!(
            ResponseDirectives::of(&headers(&["max-age=1.5"])).max_age,
            Some(0)
        );
        assert_eq!(
            ResponseDirectives::of(&headers(&["max-age=99999999999999999999"])).max_age,
            Some(MAX_DELTA)
        );
    }

    #[test]
    fn qualified_private_lists_fields_and_commas_inside_quotes_stay() {
        let d = ResponseDirectives::of(&headers(&["private=\"set-cookie, x-a\", max-age=3"]));
        assert_eq!(d.private, Some(vec!["set-cookie".into(), "x-a".into()]));
        assert_eq!(d.max_age, Some(3));
        let d = ResponseDirectives::of(&headers(&["private"]));
        assert_eq!(d.private, Some(vec![]));
    }

    #[test]
    fn request_directives_and_pragma() {
        let d = RequestDirectives::of(&headers(&["max-stale, min-fresh=4, only-if-cached"]));
        assert_eq!(d.max_stale, Some(None));
        assert_eq!(d.min_fresh, Some(4));
        assert!(d.only_if_cached);
        let mut h = HeaderMap::new();
        h.insert(header::PRAGMA, "no-cache".parse().unwrap());
        assert!(RequestDirectives::of(&h).no_cache);
        h.insert(header::CACHE_CONTROL, "max-age=5".parse().unwrap());
        assert!(!RequestDirectives::of(&h).no_cache);
    }
}
