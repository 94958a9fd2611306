//! Byte ranges (RFC 9110 §14): parsing `Range`, and the abuse policy for multiple ranges.

/// A half-open byte range `[start, end)` of a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Never true for ranges this module returns; here for completeness.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The `Content-Range` value for this range of a representation of `total` bytes.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end - 1, total)
    }
}

/// What a `Range` header asks of a representation of known length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// Absent, malformed, another unit, or not worth honouring: send the whole (200).
    Full,
    /// Send these ranges (206), in this order.
    Ranges(Vec<ByteRange>),
    /// Nothing requested overlaps the representation (416).
    Unsatisfiable,
}

/// Requests with more ranges than this (after coalescing) get the whole representation:
/// no real client needs more, and each part costs a header.
pub const MAX_RANGES: usize = 64;

/// The request's `Range` value; `None` without one, and with more than one: the
/// field takes a single value (RFC 9110 §14.2), so two fields do not make one
/// valid range request, and one that is not valid is ignored.
pub fn range_field(headers: &http::HeaderMap) -> Option<&http::HeaderValue> {
    let mut fields = headers.get_all(http::header::RANGE).iter();
    match (fields.next(), fields.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// Parses a `Range` value against a representation of `len` bytes.
///
/// Overlapping or adjacent ranges are merged (so the parts never add up to more than
/// the representation); the order the client gave is kept otherwise.
pub fn parse(value: &str, len: u64) -> RangeRequest {
    let Some((unit, spec)) = value.split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeRequest::Full;
    }
    let mut ranges = Vec::new();
    let mut any = false;
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            // RFC 9110 allows empty list elements.
            continue;
        }
        any = true;
        let Some((first, last)) = item.split_once('-') else {
            return RangeRequest::Full;
        };
        let (first, last) = (first.trim(), last.trim());
        let range = if first.is_empty() {
            // Suffix: the last N bytes.
            let Some(n) = digits(last) else {
                return RangeRequest::Full;
            };
            if n == 0 || len == 0 {
                continue;
            }
            ByteRange {
                start: len.saturating_sub(n),
                end: len,
            }
        } else {
            let Some(start) = digits(first) else {
                return RangeRequest::Full;
            };
            let end = if last.is_empty() {
                len
            } else {
                let Some(last) = digits(last) else {
                    return RangeRequest::Full;
                };
                if last < start {
                    return RangeRequest::Full;
                }
                last.saturating_add(1).min(len)
            };
            if start >= len {
                continue;
            }
            ByteRange { start, end }
        };
        ranges.push(range);
    }
    if !any {
        return RangeRequest::Full;
    }
    if ranges.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    let ranges = coalesce(ranges);
    if ranges.len() > MAX_RANGES {
        return RangeRequest::Full;
    }
    RangeRequest::Ranges(ranges)
}

/// Merges ranges that overlap or touch. If none do, the client's order is kept; if any
/// do, the result is sorted (RFC 9110 §14.2 lets a server coalesce).
fn coalesce(mut ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    if ranges.len() < 2 {
        return ranges;
    }
    let mut sorted = ranges.clone();
    sorted.sort_by_key(|r| r.start);
    let touching = sorted.windows(2).any(|w| w[1].start <= w[0].end);
    if !touching {
        return ranges;
    }
    ranges.clear();
    for r in sorted {
        match ranges.last_mut() {
            Some(prev) if r.start <= prev.end => prev.end = prev.end.max(r.end),
            _ => ranges.push(r),
        }
    }
    ranges
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Overlong numbers are still valid syntax: they saturate.
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse("bytes=0-4", 10), RangeRequest::Ranges(vec![r(0, 5)]));
        assert_eq!(parse("bytes=5-", 10), RangeRequest::Ranges(vec![r(5, 10)]));
        assert_eq!(parse("bytes=-3", 10), RangeRequest::Ranges(vec![r(7, 10)]));
        assert_eq!(parse("bytes=-30", 10), RangeRequest::Ranges(vec![r(0, 10)]));
        assert_eq!(
            parse("bytes=8-100", 10),
            RangeRequest::Ranges(vec![r(8, 10)])
        );
        assert_eq!(
            parse("BYTES = 1-1", 10),
            RangeRequest::Ranges(vec![r(1, 2)])
        );
        assert_eq!(
            parse("bytes=0-99999999999999999999999", 10),
            RangeRequest::Ranges(vec![r(0, 10)])
        );
    }

    #[test]
    fn unsatisfiable_and_invalid() {
        assert_eq!(parse("bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse("bytes=10-20, 30-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse("bytes=-5", 0), RangeRequest::Unsatisfiable);
        for bad in [
            "bytes=5-1",
            "bytes=a-b",
            "bytes=1",
            "bytes=--1",
            "bytes=",
            "items=0-1",
            "0-1",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x1-2",
        ] {
            assert_eq!(parse(bad, 10), RangeRequest::Full, "{bad}");
        }
    }

    #[test]
    fn multiple_ranges_keep_order_unless_they_touch() {
        assert_eq!(
            parse("bytes=6-7,0-1", 10),
            RangeRequest::Ranges(vec![r(6, 8), r(0, 2)])
        );
        assert_eq!(
            parse("bytes=0-0,-1", 10),
            RangeRequest::Ranges(vec![r(0, 1), r(9, 10)])
        );
        assert_eq!(
            parse("bytes=4-6,0-2,3-3", 10),
            RangeRequest::Ranges(vec![r(0, 7)])
        );
        assert_eq!(
            parse("bytes=0-5, 20-30, 2-8", 10),
            RangeRequest::Ranges(vec![r(0, 9)])
        );
    }

    #[test]
    fn abusive_lists_never_exceed_one_copy() {
        let many = format!("bytes={}", vec!["0-"; 200].join(","));
        assert_eq!(parse(&many, 1000), RangeRequest::Ranges(vec![r(0, 1000)]));
        let small: Vec<String> = (0..200).map(|i| format!("{}-{}", i * 3, i * 3)).collect();
        let small = format!("bytes={}", small.join(","));
        assert_eq!(parse(&small, 10_000), RangeRequest::Full);
        let overlapping: Vec<String> = (0..200).map(|i| format!("{i}-{}", i + 50)).collect();
        let overlapping = format!("bytes={}", overlapping.join(","));
        assert_eq!(
            parse(&overlapping, 10_000),
            RangeRequest::Ranges(vec![r(0, 250)])
        );
    }
}
