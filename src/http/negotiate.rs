//! Content negotiation on request headers (RFC 9110 §12).

use http::header::{self, HeaderMap, HeaderName};

/// The members of a list-based field, across all its field lines: several lines are
/// one comma-separated list (RFC 9110 §5.3). Lines that are not text are skipped.
pub fn list_members<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
}

/// The q-value the request's Accept gives `media_type` (e.g. `application/json`): that
/// of the most specific matching range (`type/subtype` over `type/*` over `*/*`), 0 if
/// none matches. A missing header accepts everything (q = 1).
pub fn media_quality(headers: &HeaderMap, media_type: &str) -> f32 {
    media_match(headers, media_type).0
}

/// [`media_quality`], and how specific the range that gave it was: 3 for the type
/// itself, 2 for `type/*`, 1 for `*/*`, 0 when nothing (or no Accept) matched.
fn media_match(headers: &HeaderMap, media_type: &str) -> (f32, u8) {
    if !headers.contains_key(header::ACCEPT) {
        return (1.0, 0);
    }
    let (ty, _) = media_type.split_once('/').unwrap_or((media_type, ""));
    let mut best: Option<(u8, f32)> = None;
    for item in list_members(headers, &header::ACCEPT) {
        let mut params = item.split(';');
        let range = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let specificity = if range == media_type {
            3
        } else if range.strip_suffix("/*") == Some(ty) {
            2
        } else if range == "*/*" {
            1
        } else {
            continue;
        };
        // An invalid weight makes the member unusable, as if it were absent.
        let Some(q) = weight(params) else { continue };
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map_or((0.0, 0), |(specificity, q)| (q, specificity))
}

/// The weight a list member's parameters give it: its `q` parameter (name matched
/// case-insensitively), 1 without one, `None` when the value is not a valid `qvalue`.
pub fn weight<'a>(mut params: impl Iterator<Item = &'a str>) -> Option<f32> {
    let q = params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
    });
    match q {
        None => Some(1.0),
        Some(q) => qvalue(q),
    }
}

/// A `qvalue` (RFC 9110 §12.4.2): `0` to `1` with at most three decimals,
/// `( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`. Anything else (`abc`, `2`,
/// `0.1234`, `-0`, `.5`, `1.5`) is `None`.
pub fn qvalue(text: &str) -> Option<f32> {
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (text, ""),
    };
    let digits_ok = frac.len() <= 3 && frac.bytes().all(|b| b.is_ascii_digit());
    match int {
        "0" if digits_ok => {
            let thousandths: u32 = format!("{frac:0<3}").parse().ok()?;
            Some(thousandths as f32 / 1000.0)
        }
        "1" if digits_ok && frac.bytes().all(|b| b == b'0') => Some(1.0),
        _ => None,
    }
}

/// Whether a listing should be JSON: the client rates `application/json` above HTML,
/// or as high but by name where HTML only falls under a wider range (axios's
/// `application/json, text/plain, */*`).
pub fn prefers_json(headers: &HeaderMap) -> bool {
    let (json, json_by) = media_match(headers, "application/json");
    let (html, html_by) = media_match(headers, "text/html");
    json > 0.0 && (json > html || (json == html && json_by > html_by))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(header::ACCEPT, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    fn json(value: &str) -> bool {
        prefers_json(&accept(&[value]))
    }

    #[test]
    fn chooses_json_only_when_preferred() {
        assert!(json("application/json"));
        assert!(json("application/json, text/html;q=0.9"));
        assert!(json("application/*"));
        assert!(!json(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!json("*/*"));
        assert!(!json("application/json;q=0, */*"));
        assert!(!json("text/html, application/json"));
        // Named beats a wider range at the same weight; not a lower weight.
        assert!(json("application/json, text/plain, */*"));
        assert!(!json("application/json;q=0.9, */*"));
        assert!(json("text/*, application/json"));
        assert!(!prefers_json(&HeaderMap::new()));
        assert!(prefers_json(&accept(&[
            "text/html;q=0.5",
            "application/json"
        ])));
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        assert_eq!(qvalue("0"), Some(0.0));
        assert_eq!(qvalue("0."), Some(0.0));
        assert_eq!(qvalue("0.5"), Some(0.5));
        assert_eq!(qvalue("0.125"), Some(0.125));
        assert_eq!(qvalue("1"), Some(1.0));
        assert_eq!(qvalue("1.000"), Some(1.0));
        for bad in [
            "abc", "2", "0.1234", "1.001", "1.5", "-0", ".5", "", "0.5x", "01",
        ] {
            assert_eq!(qvalue(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_invalid_weight_is_no_preference() {
        // Each of these once counted as q=1 and won over HTML.
        for bad in ["abc", "2", "0.1234"] {
            assert!(
                !json(&format!("application/json;q={bad}, text/html;q=0.5")),
                "q={bad}"
            );
        }
        assert!(json("application/json;Q=0.9, text/html;q=0.5"));
    }

    #[test]
    fn most_specific_range_wins() {
        let v = accept(&["*/*;q=0.1, application/*;q=0.5, application/json;q=0.9"]);
        assert_eq!(media_quality(&v, "application/json"), 0.9);
        assert_eq!(media_quality(&v, "application/xml"), 0.5);
        assert_eq!(media_quality(&v, "text/html"), 0.1);
    }
}

/// A representation's possible content codings, in the server's order of preference
/// among equally acceptable ones: smaller output first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
    /// `gzip`.
    Gzip,
    /// No coding.
    Identity,
}

impl Encoding {
    /// Every encoding, in server preference order.
    pub const ALL: [Encoding; 4] = [
        Encoding::Brotli,
        Encoding::Zstd,
        Encoding::Gzip,
        Encoding::Identity,
    ];

    /// The content-coding token (`identity` for none).
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }
}

/// The encodings `accept_encoding` allows, best first (RFC 9110 §12.5.3): by q-value,
/// then by server preference. A coding is acceptable when named with q > 0, or covered
/// by `*` with q > 0; identity is acceptable unless `identity;q=0`, or `*;q=0` without
/// an `identity` entry, excludes it; when the client does not name it, it ranks last.
/// Without the header only identity is offered, as
/// clients that do not send it rarely decode anything. Several field lines count as
/// one list.
pub fn encoding_preferences(headers: &HeaderMap) -> Preferences {
    if !headers.contains_key(header::ACCEPT_ENCODING) {
        return Preferences::identity();
    }
    let mut explicit: [Option<f32>; 4] = [None; 4];
    let mut star: Option<f32> = None;
    for item in list_members(headers, &header::ACCEPT_ENCODING) {
        let mut params = item.split(';');
        let token = params.next().unwrap_or("").trim();
        if token.is_empty() {
            continue;
        }
        // A malformed q-value makes the entry unusable; skip it.
        let Some(q) = weight(params) else { continue };
        let is = |name: &str| token.eq_ignore_ascii_case(name);
        let slot = if is("br") {
            Some(0)
        } else if is("zstd") {
            Some(1)
        } else if is("gzip") || is("x-gzip") {
            Some(2)
        } else if is("identity") {
            Some(3)
        } else {
            if token == "*" {
                star = Some(q);
            }
            None
        };
        if let Some(i) = slot {
            explicit[i] = Some(explicit[i].map_or(q, |old: f32| old.max(q)));
        }
    }
    let quality = |i: usize| match (explicit[i], star) {
        (Some(q), _) => q,
        (None, Some(q)) => q,
        // Implicitly acceptable, but below anything the client named.
        (None, None) if Encoding::ALL[i] == Encoding::Identity => f32::MIN_POSITIVE,
        (None, None) => 0.0,
    };
    let mut order = [0usize, 1, 2, 3];
    // Stable: equal q-values keep the server's order.
    order.sort_by(|&a, &b| quality(b).total_cmp(&quality(a)));
    let mut prefs = Preferences {
        list: Encoding::ALL,
        len: 0,
    };
    for i in order.into_iter().filter(|&i| quality(i) > 0.0) {
        prefs.list[prefs.len] = Encoding::ALL[i];
        prefs.len += 1;
    }
    prefs
}

/// Acceptable encodings, best first; at most one of each, so it lives on the stack.
#[derive(Debug, Clone, Copy)]
pub struct Preferences {
    list: [Encoding; 4],
    len: usize,
}

impl Preferences {
    fn identity() -> Preferences {
        Preferences {
            list: [Encoding::Identity; 4],
            len: 1,
        }
    }
}

impl std::ops::Deref for Preferences {
    type Target = [Encoding];
    fn deref(&self) -> &[Encoding] {
        &self.list[..self.len]
    }
}

#[cfg(test)]
mod encoding_tests {
    use super::*;
    use http::HeaderValue;
    use Encoding::*;

    fn lines(values: &[&str]) -> Vec<Encoding> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        encoding_preferences(&headers).to_vec()
    }

    fn prefs(value: &str) -> Vec<Encoding> {
        lines(&[value])
    }

    #[test]
    fn several_field_lines_are_one_list() {
        assert_eq!(lines(&["identity;q=0", "gzip"]), [Gzip]);
        assert_eq!(lines(&["gzip", "br"]), [Brotli, Gzip, Identity]);
        assert_eq!(lines(&["foo", "gzip"]), [Gzip, Identity]);
    }

    #[test]
    fn q_values_then_server_preference() {
        assert_eq!(
            prefs("gzip, deflate, br, zstd"),
            [Brotli, Zstd, Gzip, Identity]
        );
        assert_eq!(prefs("gzip;q=1, br;q=0.5"), [Gzip, Brotli, Identity]);
        assert_eq!(prefs("gzip;q=0.5, identity"), [Identity, Gzip]);
        assert_eq!(prefs("br;q=0, gzip"), [Gzip, Identity]);
        assert_eq!(prefs(""), [Identity]);
        assert_eq!(*encoding_preferences(&HeaderMap::new()), [Identity]);
        assert_eq!(prefs("x-gzip"), [Gzip, Identity]);
        assert_eq!(prefs("GZIP;Q=0.8"), [Gzip, Identity]);
    }

    #[test]
    fn identity_and_star_are_honoured() {
        assert_eq!(prefs("identity;q=0"), Vec::<Encoding>::new());
        assert_eq!(prefs("gzip, identity;q=0"), [Gzip]);
        assert_eq!(prefs("*"), [Brotli, Zstd, Gzip, Identity]);
        assert_eq!(prefs("*;q=0"), Vec::<Encoding>::new());
        assert_eq!(prefs("*;q=0, identity"), [Identity]);
        assert_eq!(prefs("br, *;q=0"), [Brotli]);
        assert_eq!(prefs("gzip;q=abc"), [Identity]);
        assert_eq!(prefs("gzip;q=0.1234"), [Identity]);
        assert_eq!(prefs("gzip;q=2"), [Identity]);
        assert_eq!(prefs("gzip;q=1.001, br;q=0.5"), [Brotli, Identity]);
        assert_eq!(prefs("identity;q=0.1234, gzip"), [Gzip, Identity]);
    }
}
