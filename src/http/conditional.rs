//! Conditional requests (RFC 9110 §13), evaluated in the order of §13.2.2.
//!
//! This is the one place preconditions are decided; handlers describe their
//! representation's validators and act on the [`Precondition`] they get back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use http::Method;

use crate::http::etag::{EntityTag, TagList};

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

impl Validators<'_> {
    /// As a response states them: a modification time no HTTP date can say (before
    /// 1970, a file `touch`ed to 1960) goes out as no `Last-Modified`, so no
    /// date-based condition is held against it either.
    fn as_stated(self) -> Self {
        Validators {
            last_modified: self
                .last_modified
                .filter(|t| super::response::is_writable_date(*t)),
            ..self
        }
    }
}

/// Evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since, in
/// that order. Malformed dates are ignored; a malformed tag list lists no tag, so a
/// garbled If-Match fails (see [`TagList::parse`]).
pub fn evaluate(method: &Method, headers: &HeaderMap, v: Validators<'_>) -> Precondition {
    let v = v.as_stated();
    // RFC 9110 §13.2.1: preconditions are ignored for CONNECT, OPTIONS and TRACE.
    if [Method::OPTIONS, Method::CONNECT, Method::TRACE].contains(method) {
        return Precondition::Proceed;
    }
    let read = method == Method::GET || method == Method::HEAD;
    // 1. If-Match: strong comparison; else 2. If-Unmodified-Since.
    if let Some(list) = TagList::parse(headers.get_all(header::IF_MATCH).iter()) {
        // `*` matches any current representation, even one without a tag.
        let ok = list == TagList::Any || v.etag.is_some_and(|tag| list.matches_strong(tag));
        if !ok {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(modified)) = (
        http_date(headers, &header::IF_UNMODIFIED_SINCE),
        v.last_modified,
    ) {
        if whole_seconds(modified) > since {
            return Precondition::Failed;
        }
    }
    // 3. If-None-Match: weak comparison; else 4. If-Modified-Since (GET/HEAD only).
    if let Some(list) = TagList::parse(headers.get_all(header::IF_NONE_MATCH).iter()) {
        if list == TagList::Any || v.etag.is_some_and(|tag| list.matches_weak(tag)) {
            return if read {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if read {
        if let (Some(since), Some(modified)) = (
            http_date(headers, &header::IF_MODIFIED_SINCE),
            v.last_modified,
        ) {
            // A date later than now is invalid and ignored (RFC 9110 §13.1.3): it
            // says nothing about the client's copy.
            if whole_seconds(modified) <= since && since <= SystemTime::now() {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// Whether a Range request may be answered with parts: when it has no If-Range, or
/// one whose value is a single strong tag equal to ours, or an HTTP-date equal to a
/// Last-Modified that is a strong validator (RFC 9110 §13.1.5). Anything else — a weak
/// tag, a list, several field lines, a date within the second of the modification, a
/// malformed value — means "send the whole representation".
pub fn range_allowed(headers: &HeaderMap, v: Validators<'_>) -> bool {
    let mut lines = headers.get_all(header::IF_RANGE).into_iter();
    let Some(value) = lines.next() else {
        return true;
    };
    let v = v.as_stated();
    if lines.next().is_some() {
        return false;
    }
    let Ok(text) = value.to_str() else {
        return false;
    };
    let text = text.trim();
    if text.starts_with('"') || text.starts_with("W/") {
        return match TagList::parse(std::iter::once(value)) {
            Some(TagList::Tags(tags)) if tags.len() == 1 => v
                .etag
                .is_some_and(|ours| TagList::Tags(tags).matches_strong(ours)),
            _ => false,
        };
    }
    match (parse_date(text), v.last_modified) {
        (Some(date), Some(modified)) => {
            whole_seconds(modified) == date && is_strong_date(modified, SystemTime::now())
        }
        _ => false,
    }
}

/// A Last-Modified time is a strong validator only when the response's Date is at
/// least a second after it (RFC 9110 §8.8.2.2): within the same second the file may
/// have changed again without the date showing it.
fn is_strong_date(modified: SystemTime, now: SystemTime) -> bool {
    whole_seconds(now) >= whole_seconds(modified) + Duration::from_secs(1)
}

/// The date in a single-valued date field; `None` when it is missing, malformed, or
/// sent more than once (a list, which RFC 9110 §13.1.3-4 says to ignore).
fn http_date(headers: &HeaderMap, name: &header::HeaderName) -> Option<SystemTime> {
    let mut lines = headers.get_all(name).into_iter();
    let value = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    parse_date(value.to_str().ok()?.trim())
}

/// Day names as HTTP dates spell them: short in IMF-fixdate and asctime, long in
/// RFC 850 dates.
const DAY_NAMES: [[&str; 7]; 2] = [
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ],
];

/// A date in any of the three formats of RFC 9110 §5.6.7, its day name (one of
/// the seven) not checked against the date: the name is redundant, and nginx, Apache and CPython's server
/// all read a date whose day name is wrong (a hand-written `If-Modified-Since`,
/// say) as the date it spells.
fn parse_date(text: &str) -> Option<SystemTime> {
    if let Ok(date) = httpdate::parse_http_date(text) {
        return Some(date);
    }
    let at = text.find([',', ' '])?;
    let (name, rest) = text.split_at(at);
    let names = DAY_NAMES.iter().find(|names| names.contains(&name))?;
    names
        .iter()
        .find_map(|n| httpdate::parse_http_date(&format!("{n}{rest}")).ok())
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
    use http::HeaderValue;

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
        EntityTag::of_content(b"x")
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
        // A date in the future is invalid, and ignored.
        assert_eq!(
            eval(
                Method::GET,
                &[("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT")]
            ),
            Proceed
        );
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
        // A date field sent twice is a list, and ignored.
        assert_eq!(
            eval(
                Method::GET,
                &[("if-modified-since", AT), ("if-modified-since", BEFORE)]
            ),
            Proceed
        );
        assert_eq!(
            eval(
                Method::GET,
                &[("if-unmodified-since", BEFORE), ("if-unmodified-since", AT)]
            ),
            Proceed
        );
        // A malformed If-None-Match matches nothing, and If-Modified-Since is then
        // not evaluated; a malformed If-Match fails.
        assert_eq!(
            eval(
                Method::GET,
                &[("if-none-match", "bad"), ("if-modified-since", AT)]
            ),
            Proceed
        );
        assert_eq!(eval(Method::GET, &[("if-match", "bad")]), Failed);
    }

    #[test]
    fn without_validators_only_a_star_can_match() {
        let none = Validators {
            etag: None,
            last_modified: None,
        };
        let eval = |pairs: &[(&str, &str)]| evaluate(&Method::GET, &headers(pairs), none);
        use Precondition::*;
        assert_eq!(eval(&[]), Proceed);
        assert_eq!(eval(&[("if-match", "*")]), Proceed);
        assert_eq!(eval(&[("if-match", "\"a\"")]), Failed);
        assert_eq!(eval(&[("if-none-match", "*")]), NotModified);
        assert_eq!(eval(&[("if-none-match", "\"a\"")]), Proceed);
        assert_eq!(eval(&[("if-modified-since", AT)]), Proceed);
        assert_eq!(eval(&[("if-unmodified-since", BEFORE)]), Proceed);
        let options = |pairs: &[(&str, &str)]| evaluate(&Method::OPTIONS, &headers(pairs), none);
        assert_eq!(options(&[("if-match", "\"a\"")]), Proceed);
        assert_eq!(options(&[("if-none-match", "*")]), Proceed);
    }

    #[test]
    fn a_time_before_1970_is_no_validator() {
        // Sent without Last-Modified: no date is compared with it.
        let old = Validators {
            etag: None,
            last_modified: Some(UNIX_EPOCH - Duration::from_secs(10 * 365 * 86_400)),
        };
        let since = "Mon, 01 Jan 2001 00:00:00 GMT";
        let epoch = "Thu, 01 Jan 1970 00:00:00 GMT";
        let get = |pairs: &[(&str, &str)]| evaluate(&Method::GET, &headers(pairs), old);
        assert_eq!(get(&[("if-modified-since", since)]), Precondition::Proceed);
        assert_eq!(
            get(&[("if-unmodified-since", epoch)]),
            Precondition::Proceed
        );
        assert!(!range_allowed(&headers(&[("if-range", epoch)]), old));
    }

    #[test]
    fn if_range_needs_a_strong_match_or_the_exact_date() {
        let t = tag();
        let v = Validators {
            etag: Some(&t),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(MODIFIED)),
        };
        let ours = t.header_value();
        let ours = ours.to_str().unwrap();
        let allowed = |lines: &[&str]| {
            range_allowed(
                &headers(&lines.iter().map(|l| ("if-range", *l)).collect::<Vec<_>>()),
                v,
            )
        };
        assert!(allowed(&[]));
        assert!(allowed(&[ours]));
        assert!(!allowed(&[&format!("W/{ours}")]));
        assert!(!allowed(&["\"other\""]));
        assert!(!allowed(&[&format!("\"a\", {ours}")]));
        assert!(!allowed(&[&format!("{ours}, \"a\"")]));
        assert!(!allowed(&[ours, ours]));
        assert!(allowed(&[AT]));
        assert!(!allowed(&[BEFORE]));
        assert!(!allowed(&["*"]));
        assert!(!allowed(&["nonsense"]));
    }

    #[test]
    fn a_wrong_day_name_does_not_spoil_a_date() {
        // 6 November 1994 was a Sunday.
        let sunday = parse_date("Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(sunday.is_some());
        for wrong in [
            "Wed, 06 Nov 1994 08:49:37 GMT",
            "Wednesday, 06-Nov-94 08:49:37 GMT",
            "Wed Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_date(wrong), sunday, "{wrong}");
        }
        // Only the name is forgiven.
        for bad in [
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06 Nov 1994 08:49:37 GMT",
            "06 Nov 1994 08:49:37 GMT",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_modification_time_within_the_current_second_is_weak() {
        let now = SystemTime::now();
        assert!(!is_strong_date(now, now));
        assert!(!is_strong_date(now, now + Duration::from_millis(1)));
        assert!(is_strong_date(now, now + Duration::from_secs(2)));
        let t = tag();
        let v = Validators {
            etag: Some(&t),
            last_modified: Some(now),
        };
        let date = httpdate::fmt_http_date(now);
        assert!(!range_allowed(&headers(&[("if-range", &date)]), v));
    }
}
