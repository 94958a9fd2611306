//! Conditional requests (RFC 9110 §13), evaluated in the order of §13.2.2.
//!
//! This is the one place preconditions are decided; handlers describe their
//! representation's validators and act on the [`Precondition`] they get back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use http::{HeaderValue, Method};

use crate::etag::{EntityTag, TagList};

/// The outcome of evaluating a request's preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Carry on with the request.
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition the client set does not hold.
    Failed,
}

/// The validators of the selected representation.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// Its strong entity tag.
    pub etag: Option<&'a EntityTag>,
    /// Its modification time.
    pub last_modified: Option<SystemTime>,
}

/// Evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since, in
/// that order. Malformed fields are ignored, never an error.
pub fn evaluate(method: &Method, headers: &HeaderMap, v: Validators<'_>) -> Precondition {
    let read = method == Method::GET || method == Method::HEAD;
    // 1. If-Match: strong comparison; else 2. If-Unmodified-Since.
    if let Some(list) = TagList::parse(headers.get_all(header::IF_MATCH).iter()) {
        let ok = v.etag.is_some_and(|tag| list.matches_strong(tag));
        if !ok {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(modified)) = (
        http_date(headers.get(header::IF_UNMODIFIED_SINCE)),
        v.last_modified,
    ) {
        if whole_seconds(modified) > since {
            return Precondition::Failed;
        }
    }
    // 3. If-None-Match: weak comparison; else 4. If-Modified-Since (GET/HEAD only).
    if let Some(list) = TagList::parse(headers.get_all(header::IF_NONE_MATCH).iter()) {
        if v.etag.is_some_and(|tag| list.matches_weak(tag)) {
            return if read {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if read {
        if let (Some(since), Some(modified)) = (
            http_date(headers.get(header::IF_MODIFIED_SINCE)),
            v.last_modified,
        ) {
            if whole_seconds(modified) <= since {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// Whether an If-Range value lets a Range request through: a strong tag equal to ours,
/// or an HTTP-date equal to our Last-Modified (RFC 9110 §13.1.5). Anything else,
/// including a weak tag or a malformed value, means "send the whole representation".
pub fn if_range_matches(value: &HeaderValue, v: Validators<'_>) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let text = text.trim();
    if text.starts_with('"') || text.starts_with("W/") {
        return TagList::parse(std::iter::once(value)).is_some_and(|list| {
            !matches!(list, TagList::Any) && v.etag.is_some_and(|t| list.matches_strong(t))
        });
    }
    match (httpdate::parse_http_date(text), v.last_modified) {
        (Ok(date), Some(modified)) => whole_seconds(modified) == date,
        _ => false,
    }
}

fn http_date(value: Option<&HeaderValue>) -> Option<SystemTime> {
    httpdate::parse_http_date(value?.to_str().ok()?.trim()).ok()
}

/// HTTP dates have one-second resolution; compare at that resolution.
pub fn whole_seconds(time: SystemTime) -> SystemTime {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn tag() -> EntityTag {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "x").unwrap();
        let f = std::fs::File::open(&p).unwrap();
        crate::etag::EtagCache::new(1)
            .tag(&f, &f.metadata().unwrap(), Some(b"x"))
            .unwrap()
    }

    const MODIFIED: u64 = 1_000_000_000;
    const BEFORE: &str = "Sat, 08 Sep 2001 00:00:00 GMT";
    const AT: &str = "Sun, 09 Sep 2001 01:46:40 GMT";

    fn eval(method: Method, pairs: &[(&str, &str)]) -> Precondition {
        let t = tag();
        let v = Validators {
            etag: Some(&t),
            last_modified: Some(UNIX_EPOCH + Duration::from_millis(MODIFIED * 1000 + 500)),
        };
        evaluate(&method, &headers(pairs), v)
    }

    #[test]
    fn order_of_evaluation() {
        let t = tag();
        let ours = t.header_value();
        let ours = ours.to_str().unwrap();
        use Precondition::*;
        assert_eq!(eval(Method::GET, &[]), Proceed);
        assert_eq!(eval(Method::GET, &[("if-match", "\"nope\"")]), Failed);
        assert_eq!(eval(Method::GET, &[("if-match", "*")]), Proceed);
        assert_eq!(eval(Method::GET, &[("if-match", ours)]), Proceed);
        let weak = format!("W/{ours}");
        assert_eq!(eval(Method::GET, &[("if-match", &weak)]), Failed);
        // If-Match wins over If-Unmodified-Since.
        assert_eq!(
            eval(
                Method::GET,
                &[("if-match", ours), ("if-unmodified-since", BEFORE)]
            ),
            Proceed
        );
        assert_eq!(
            eval(Method::GET, &[("if-unmodified-since", BEFORE)]),
            Failed
        );
        assert_eq!(eval(Method::GET, &[("if-unmodified-since", AT)]), Proceed);
        assert_eq!(
            eval(Method::GET, &[("if-unmodified-since", "garbage")]),
            Proceed
        );
        // If-None-Match: weak comparison, 304 on GET/HEAD.
        assert_eq!(eval(Method::GET, &[("if-none-match", &weak)]), NotModified);
        assert_eq!(eval(Method::HEAD, &[("if-none-match", "*")]), NotModified);
        assert_eq!(
            eval(Method::GET, &[("if-none-match", "\"a\", \"b\"")]),
            Proceed
        );
        // If-None-Match present: If-Modified-Since is ignored.
        assert_eq!(
            eval(
                Method::GET,
                &[("if-none-match", "\"a\""), ("if-modified-since", AT)]
            ),
            Proceed
        );
        assert_eq!(eval(Method::GET, &[("if-modified-since", AT)]), NotModified);
        assert_eq!(eval(Method::GET, &[("if-modified-since", BEFORE)]), Proceed);
        assert_eq!(
            eval(Method::GET, &[("if-modified-since", "yesterday")]),
            Proceed
        );
        // A failed If-Match beats a matching If-None-Match.
        assert_eq!(
            eval(
                Method::GET,
                &[("if-match", "\"x\""), ("if-none-match", ours)]
            ),
            Failed
        );
        // Malformed If-None-Match is ignored, so If-Modified-Since applies.
        assert_eq!(
            eval(
                Method::GET,
                &[("if-none-match", "bad"), ("if-modified-since", AT)]
            ),
            NotModified
        );
    }

    #[test]
    fn if_range_needs_a_strong_match_or_the_exact_date() {
        let t = tag();
        let v = Validators {
            etag: Some(&t),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(MODIFIED)),
        };
        let hv = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(if_range_matches(&t.header_value(), v));
        let weak = format!("W/{}", t.header_value().to_str().unwrap());
        assert!(!if_range_matches(&hv(&weak), v));
        assert!(!if_range_matches(&hv("\"other\""), v));
        assert!(if_range_matches(&hv(AT), v));
        assert!(!if_range_matches(&hv(BEFORE), v));
        assert!(!if_range_matches(&hv("*"), v));
        assert!(!if_range_matches(&hv("nonsense"), v));
    }
}
