//! Properties of the parsers that read what clients send, checked on arbitrary
//! input: by the fuzz targets under `fuzz/` (libFuzzer, `cargo fuzz`), and by
//! `tests/fuzz_corpus.rs`, which replays the inputs they found interesting so that
//! every `cargo test` checks them again. Each function panics when a property does
//! not hold; none may panic on its own account, whatever the input.

mod answers;
mod forms;
mod proxied;

pub use answers::{fastcgi_records, program_output};
pub use forms::{multipart_form, BOUNDARY as MULTIPART_BOUNDARY};
pub use proxied::proxy_response;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;

use crate::handlers::proxy::cache::control::{RequestDirectives, ResponseDirectives};
use crate::handlers::static_files::archive::zip::{self, Member, Method as ZipMethod, Written};
use crate::http::conditional::{self, Validators};
use crate::http::etag::{EntityTag, TagList};
use crate::http::negotiate;
use crate::http::path::SitePath;
use crate::http::range::{self, RangeRequest, MAX_RANGES};

/// A request path: a parsed path never leads above the root, names no `.` or `..`
/// segment and no NUL, and its canonical URL parses back to itself.
pub fn request_path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for hidden in [false, true] {
        let Ok(path) = SitePath::parse(raw, hidden) else {
            continue;
        };
        for segment in path.segments() {
            assert!(!segment.is_empty(), "{raw:?}: empty segment");
            assert!(segment != b"." && segment != b"..", "{raw:?}: dot segment");
            assert!(!segment.contains(&0) && !segment.contains(&b'/'), "{raw:?}");
        }
        let fs = path.relative_fs_path();
        assert!(
            fs.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{raw:?} leads to {fs:?}"
        );
        assert!(path.rule_path().starts_with('/'));
        let url = path.to_url(path.has_trailing_slash());
        let again = SitePath::parse(&url, hidden).expect("a canonical URL parses");
        assert_eq!(again.segments(), path.segments(), "{raw:?} → {url:?}");
    }
}

/// A `Range` header against lengths: the ranges asked for lie inside the
/// representation, are not empty, do not overlap, and are at most [`MAX_RANGES`].
pub fn byte_ranges(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for len in [0u64, 1, 100, 10_000, u64::MAX / 2] {
        if let RangeRequest::Ranges(ranges) = range::parse(text, len) {
            assert!(!ranges.is_empty() && ranges.len() <= MAX_RANGES, "{text:?}");
            for (i, r) in ranges.iter().enumerate() {
                assert!(r.start < r.end && r.end <= len, "{text:?} / {len}: {r:?}");
                for other in &ranges[i + 1..] {
                    assert!(
                        r.end <= other.start || other.end <= r.start,
                        "{text:?}: {r:?} overlaps {other:?}"
                    );
                }
            }
        }
    }
}

/// Request and response header fields: every parser of conditionals, ranges, entity
/// tags, content negotiation and cache directives takes any of them without
/// panicking. Lines are `name: value`, separated by newlines.
pub fn header_fields(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let tag = EntityTag::from_hash(0x1234, 5);
    let validators = Validators {
        etag: Some(&tag),
        last_modified: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000)),
    };
    for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
        let _ = conditional::evaluate(&method, &headers, validators);
    }
    let _ = conditional::range_allowed(&headers, validators);
    for name in [http::header::IF_MATCH, http::header::IF_NONE_MATCH] {
        if let Some(list) = TagList::parse(headers.get_all(&name).iter()) {
            let _ = list.matches_strong(&tag);
            let _ = list.matches_weak(&tag);
        }
    }
    let _ = negotiate::encoding_preferences(&headers);
    let _ = negotiate::prefers_json(&headers);
    let _ = negotiate::media_quality(&headers, "text/html");
    let _ = RequestDirectives::of(&headers);
    let _ = ResponseDirectives::of(&headers);
}

/// ZIP layout: for members made from `data`, the length [`zip::stored_layout`]
/// announces is exactly the length of the archive written front to back.
pub fn zip_layout(data: &[u8]) {
    let mut members = Vec::new();
    for chunk in data.chunks(6).take(200) {
        let name_len = usize::from(chunk[0] % 16) + 1;
        let mut name: String = (0..name_len)
            .map(|i| char::from(b'a' + (i as u8 % 26)))
            .collect();
        if chunk.get(1).is_some_and(|b| b % 4 == 0) {
            name.push('/');
        }
        let size = if name.ends_with('/') {
            0
        } else {
            // Sizes around the 32-bit limits, where ZIP64 fields start.
            match chunk.get(2).map_or(0, |b| b % 4) {
                0 => u64::from(chunk.get(3).copied().unwrap_or(0)),
                1 => 0xFFFF_FFFF,
                2 => 0xFFFF_FFFE,
                _ => 5 << 30,
            }
        };
        let secs = u64::from(chunk.get(4).copied().unwrap_or(0)) << 24;
        members.push(Member {
            name,
            size,
            mtime: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)),
        });
    }
    let (offsets, total) = zip::stored_layout(&members);
    let mut at = 0u64;
    let mut written = Vec::new();
    for (member, offset) in members.iter().zip(&offsets) {
        assert_eq!(at, *offset, "offset of {}", member.name);
        let record = Written {
            offset: at,
            crc: 0xDEAD_BEEF,
            compressed: member.size,
        };
        at += zip::local_header(member, ZipMethod::Stored).len() as u64;
        at += member.size;
        at += zip::descriptor(member, ZipMethod::Stored, &record).len() as u64;
        written.push(record);
    }
    let central = at;
    for (member, record) in members.iter().zip(&written) {
        at += zip::central_header(member, ZipMethod::Stored, record).len() as u64;
    }
    at += zip::end(members.len() as u64, central, at - central).len() as u64;
    assert_eq!(at, total);
}

/// A configuration file: any text is read without panicking, and is either accepted
/// or refused with one line that names the file and a line of it.
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("/nonexistent/wharf.toml");
    if let Err(message) = crate::config::file::check_text(text, path) {
        assert!(!message.contains('\n'), "{message:?}");
        assert!(
            message.starts_with("/nonexistent/wharf.toml:"),
            "{message:?}"
        );
    }
}

/// A rule's glob against paths: any pattern parses or is refused without
/// panicking; one without special characters matches exactly itself; and what a
/// pattern captures from a path is what a regular expression made from it
/// captures (`*` as `[^/]*?`, `**` as `.*?`: each wildcard the shortest that lets
/// the rest match), or, failing that, what the pattern with its first `/**/` as
/// `/` captures, with an empty capture in that wildcard's place.
pub fn glob(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, path) = text.split_once('\n').unwrap_or((text, "/a/b.txt"));
    if let Ok(glob) = crate::site::rules::Glob::parse(pattern) {
        let _ = glob.captures(pattern);
        let plain = !pattern.contains(['*', '?', '[', ']', '{', '}', '\\']);
        if plain && pattern.starts_with('/') {
            assert!(
                glob.captures(pattern).is_some(),
                "{pattern:?} does not match itself"
            );
        }
        // Short ones only: building the expression costs far more than the match,
        // and a mistake in the table shows on small inputs as well.
        let small = pattern.len() <= 64 && path.len() <= 256;
        if let Some(expected) = small.then(|| reference_captures(pattern, path)).flatten() {
            let got = glob.captures(path);
            let got: Option<Vec<&str>> = got.as_ref().map(|c| c.to_vec());
            let expected: Option<Vec<&str>> = expected
                .as_ref()
                .map(|c| c.iter().map(String::as_str).collect());
            assert_eq!(got, expected, "{pattern:?} against {path:?}");
        }
    }
}

/// The captures of `pattern` on `path` by way of the `regex` crate; `None` when
/// the expression is too large to build (no verdict), `Some(None)` for no match.
fn reference_captures(pattern: &str, path: &str) -> Option<Option<Vec<String>>> {
    let (expression, _) = glob_expression(pattern);
    let re = regex::Regex::new(&expression).ok()?;
    if let Some(found) = re.captures(path) {
        let caps = found
            .iter()
            .skip(1)
            .map(|c| c.map_or(String::new(), |m| m.as_str().to_string()))
            .collect();
        return Some(Some(caps));
    }
    let Some(at) = pattern.find("/**/") else {
        return Some(None);
    };
    // The wildcards before it (no trailing `/` rule: this is not a whole pattern).
    let before = glob_expression(&pattern[..at]).1 - usize::from(pattern[..at].ends_with('/'));
    let without = format!("{}{}", &pattern[..at], &pattern[at + 3..]);
    let mut caps = reference_captures(&without, path)?;
    if let Some(caps) = caps.as_mut() {
        caps.insert(before, String::new());
    }
    Some(caps)
}

/// An anchored expression for a glob, and how many wildcards it has.
fn glob_expression(pattern: &str) -> (String, usize) {
    let mut expression = String::from("(?s)^");
    let mut wildcards = 0;
    let mut literal = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '*' {
            literal.push(c);
            continue;
        }
        expression.push_str(&regex::escape(&std::mem::take(&mut literal)));
        wildcards += 1;
        if chars.peek() == Some(&'*') {
            chars.next();
            expression.push_str("(.*?)");
        } else {
            expression.push_str("([^/]*?)");
        }
    }
    expression.push_str(&regex::escape(&literal));
    if pattern.ends_with('/') {
        expression.push_str("(.*?)");
        wildcards += 1;
    }
    expression.push('$');
    (expression, wildcards)
}
