//! Content negotiation on request headers (RFC 9110 §12).

use http::HeaderValue;

/// The q-value `accept` gives `media_type` (e.g. `application/json`): that of the most
/// specific matching range (`type/subtype` over `type/*` over `*/*`), 0 if none matches.
/// A missing header accepts everything (q = 1).
pub fn media_quality(accept: Option<&HeaderValue>, media_type: &str) -> f32 {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return 1.0;
    };
    let (ty, _) = media_type.split_once('/').unwrap_or((media_type, ""));
    let mut best: Option<(u8, f32)> = None;
    for item in accept.split(',') {
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
        let q = params
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q))
            .unwrap_or(1.0);
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

/// Whether a listing should be JSON: the client rates `application/json` above HTML.
pub fn prefers_json(accept: Option<&HeaderValue>) -> bool {
    let json = media_quality(accept, "application/json");
    json > 0.0 && json > media_quality(accept, "text/html")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(accept: &str) -> bool {
        prefers_json(Some(&HeaderValue::from_str(accept).unwrap()))
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
        assert!(!prefers_json(None));
    }

    #[test]
    fn most_specific_range_wins() {
        let v = HeaderValue::from_static("*/*;q=0.1, application/*;q=0.5, application/json;q=0.9");
        assert_eq!(media_quality(Some(&v), "application/json"), 0.9);
        assert_eq!(media_quality(Some(&v), "application/xml"), 0.5);
        assert_eq!(media_quality(Some(&v), "text/html"), 0.1);
    }
}
