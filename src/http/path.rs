//! Request paths, parsed once into a form that cannot name anything outside the root.
//!
//! A [`SitePath`] is the only way a request path reaches the file system: it holds
//! percent-decoded segments, none of which is empty, `.`, `..`, or contains `/` or
//! NUL. (`\` is an ordinary file-name byte on Unix and is resolved as one.) Everything downstream can therefore join segments without re-checking.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters left as they are when a segment is written back into a URL: the RFC 3986
/// unreserved set. Everything else is percent-encoded, which keeps hrefs and `Location`
/// values safe to embed in HTML and headers.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Names that belong to wharf itself (temporary and partial uploads): never served,
/// listed or written by a client, whatever `--hidden` says.
pub const RESERVED_PREFIX: &[u8] = b".wharf-";

/// Why a request path was refused; each maps to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path is malformed (NUL byte, a stray `%`, climbs above the root, not
    /// origin-form): 400.
    BadRequest,
    /// The path could name nothing we serve (a hidden name while hidden files are
    /// off, or a name reserved by wharf): 404 for a read, 403 for a write.
    NotFound,
    /// An encoded `/` inside a segment: no file can have that name (404 for a read,
    /// 400 for a write).
    SlashInName,
}

/// Whether every `%` starts a two-digit hex escape (RFC 3986 §2.1); a stray `%` makes
/// the target invalid, which nginx also answers with 400.
fn well_encoded(raw: &[u8]) -> bool {
    raw.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || raw
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

/// A decoded, normalised request path below the served root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SitePath {
    segments: Vec<Vec<u8>>,
    trailing_slash: bool,
}

impl SitePath {
    /// Parses the path component of a request target.
    ///
    /// Percent-decoding happens exactly once, per segment, so `%2f` never splits a
    /// segment and `%252e` stays the literal name `%2e`. Dot segments are removed as
    /// RFC 3986 §5.2.4 says (an encoded dot is the same character as a literal one);
    /// a `..` that would climb above the root is a bad request, as in nginx.
    pub fn parse(raw: &str, allow_hidden: bool) -> Result<SitePath, PathError> {
        SitePath::parse_with(raw, allow_hidden, false)
    }

    /// [`SitePath::parse`] for a path an app answers (a proxied one): an encoded
    /// `/` (`%2F`) stays inside its segment, as the app may mean it (nginx passes it
    /// on), instead of making the path a 404. Such a path never names a file: the
    /// file system sees only paths from [`SitePath::parse`].
    pub fn parse_for_app(raw: &str, allow_hidden: bool) -> Result<SitePath, PathError> {
        SitePath::parse_with(raw, allow_hidden, true)
    }

    /// Whether a segment holds a `/` (only from [`SitePath::parse_for_app`]).
    pub fn has_slash_in_name(&self) -> bool {
        self.segments.iter().any(|s| s.contains(&b'/'))
    }

    fn parse_with(
        raw: &str,
        allow_hidden: bool,
        slash_in_name: bool,
    ) -> Result<SitePath, PathError> {
        if !raw.starts_with('/') {
            return Err(PathError::BadRequest);
        }
        let mut segments: Vec<Vec<u8>> = Vec::new();
        let mut trailing_slash = true;
        if !well_encoded(raw.as_bytes()) {
            return Err(PathError::BadRequest);
        }
        for raw_segment in raw[1..].split('/') {
            trailing_slash = raw_segment.is_empty();
            let decoded: Vec<u8> = percent_decode(raw_segment.as_bytes()).collect();
            if decoded.contains(&0) {
                return Err(PathError::BadRequest);
            }
            match decoded.as_slice() {
                b"" => {}
                b"." => trailing_slash = true,
                b".." => {
                    trailing_slash = true;
                    if segments.pop().is_none() {
                        return Err(PathError::BadRequest);
                    }
                }
                name => {
                    if name.contains(&b'/') {
                        // Even for an app, no `.`, `..` or empty piece hides behind
                        // an encoded `/`: the app could resolve it around the rules.
                        let hidden_dots = name
                            .split(|&b| b == b'/')
                            .any(|piece| matches!(piece, b"" | b"." | b".."));
                        if !slash_in_name || hidden_dots {
                            return Err(PathError::SlashInName);
                        }
                    }
                    if name.starts_with(RESERVED_PREFIX) {
                        return Err(PathError::NotFound);
                    }
                    segments.push(decoded);
                }
            }
        }
        let path = SitePath {
            segments,
            trailing_slash,
        };
        if !allow_hidden && path.is_hidden() {
            return Err(PathError::NotFound);
        }
        Ok(path)
    }

    /// The path made of `segments` (already decoded and checked, e.g. a prefix of
    /// another path's).
    pub fn from_segments(segments: Vec<Vec<u8>>) -> SitePath {
        SitePath {
            segments,
            trailing_slash: false,
        }
    }

    /// The root itself.
    pub fn root() -> SitePath {
        SitePath {
            segments: Vec::new(),
            trailing_slash: true,
        }
    }

    /// True when a segment is a dotfile name, outside the `/.well-known/` tree (RFC 8615),
    /// which exists to be served.
    pub fn is_hidden(&self) -> bool {
        self.segments
            .iter()
            .enumerate()
            .any(|(i, s)| s.starts_with(b".") && !(i == 0 && s == b".well-known"))
    }

    /// The decoded segments, outermost first.
    pub fn segments(&self) -> &[Vec<u8>] {
        &self.segments
    }

    /// The folder holding this path, and its last segment; `None` for the root.
    pub fn split_last(&self) -> Option<(SitePath, &[u8])> {
        let (last, rest) = self.segments.split_last()?;
        let parent = SitePath {
            segments: rest.to_vec(),
            trailing_slash: true,
        };
        Some((parent, last.as_slice()))
    }

    /// Whether the request path ended in `/` (after dot-segment removal).
    pub fn has_trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// This path with one more segment, e.g. `index.html` below a directory.
    pub fn join(&self, name: &[u8]) -> SitePath {
        let mut segments = self.segments.clone();
        segments.push(name.to_vec());
        SitePath {
            segments,
            trailing_slash: false,
        }
    }

    /// This path as a directory's: ending in `/`.
    pub fn as_directory(&self) -> SitePath {
        SitePath {
            segments: self.segments.clone(),
            trailing_slash: true,
        }
    }

    /// This path with `suffix` appended to its last segment (`app.js` → `app.js.gz`),
    /// for precompressed sidecars. The root has no last segment and stays as it is.
    pub fn with_suffix(&self, suffix: &[u8]) -> SitePath {
        let mut path = self.clone();
        if let Some(last) = path.segments.last_mut() {
            last.extend_from_slice(suffix);
        }
        path
    }

    /// A relative file-system path (empty for the root), for opening beneath the root fd.
    pub fn relative_fs_path(&self) -> PathBuf {
        let mut path = PathBuf::new();
        for segment in &self.segments {
            path.push(OsStr::from_bytes(segment));
        }
        path
    }

    /// The last segment, if any: the name the client asked for.
    pub fn file_name(&self) -> Option<&[u8]> {
        self.segments.last().map(Vec::as_slice)
    }

    /// The canonical URL path, every segment percent-encoded, ending in `/` when
    /// `directory` is set. It starts with exactly one `/` and never names a host,
    /// so it is safe as a `Location`.
    pub fn to_url(&self, directory: bool) -> String {
        let mut url = String::from("/");
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                url.push('/');
            }
            url.push_str(&encode_segment(segment));
        }
        if directory && !self.segments.is_empty() {
            url.push('/');
        }
        url
    }

    /// The path for display (titles, logs): decoded, lossily converted to UTF-8.
    pub fn display(&self) -> String {
        let mut out = String::from("/");
        for segment in &self.segments {
            out.push_str(&String::from_utf8_lossy(segment));
            out.push('/');
        }
        out
    }

    /// The decoded path that configuration rules match against: `/` plus the segments
    /// joined with `/`, ending in `/` when the request did. Every spelling of a path
    /// (percent-encoding, `//`, `.` and `..`) gives the same string, so a rule cannot be
    /// bypassed by writing the path differently.
    pub fn rule_path(&self) -> String {
        let len: usize = self.segments.iter().map(|s| s.len() + 1).sum();
        let mut out = String::with_capacity(len + 2);
        out.push('/');
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&String::from_utf8_lossy(segment));
        }
        if self.trailing_slash && !self.segments.is_empty() {
            out.push('/');
        }
        out
    }

    /// True for the root path.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }
}

/// Percent-encodes a decoded path fragment (possibly several segments) for use in a
/// URL, keeping its `/` separators.
pub fn encode_path(decoded: &str) -> String {
    decoded
        .split('/')
        .map(|s| encode_segment(s.as_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// The sub-delims (RFC 3986 §2.2), which a path may carry as they are: encoding them
/// would change the URI, and a `;v=1` or `+` in a captured piece must reach a
/// redirect's target as it came. (`:` and `@` stay encoded: a capture may land in a
/// target's authority, where they would change the host.)
const PATH_DELIMS: &AsciiSet = &SEGMENT
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=');

/// Percent-encodes a decoded path fragment as [`encode_path`] does, but leaves the
/// sub-delims as they are, as nginx's `rewrite` does with what it captured.
pub fn encode_path_keeping_delims(decoded: &str) -> String {
    decoded
        .split('/')
        .map(|s| utf8_percent_encode(s, PATH_DELIMS).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes one path segment (a file name) so that it round-trips through
/// [`SitePath::parse`] to the same bytes.
pub fn encode_segment(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(s) => utf8_percent_encode(s, SEGMENT).to_string(),
        Err(_) => percent_encoding::percent_encode(name, SEGMENT).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &SitePath) -> Vec<String> {
        p.segments
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    #[test]
    fn an_app_path_keeps_an_encoded_slash_but_no_dot_segment_behind_one() {
        let p = SitePath::parse_for_app("/api/a%2Fb", false).unwrap();
        assert_eq!(segs(&p), ["api", "a/b"]);
        assert!(p.has_slash_in_name());
        assert_eq!(p.rule_path(), "/api/a/b");
        assert_eq!(
            SitePath::parse("/api/a%2Fb", false),
            Err(PathError::SlashInName)
        );
        for raw in [
            "/api/..%2Fadmin",
            "/api/a%2F..",
            "/api/a%2F%2Fb",
            "/api/.%2Fa",
            "/api/%2Fa",
        ] {
            assert_eq!(
                SitePath::parse_for_app(raw, false),
                Err(PathError::SlashInName),
                "{raw}"
            );
        }
    }

    #[test]
    fn decodes_each_segment_once() {
        let p = SitePath::parse("/a%20b/c%252e", false).unwrap();
        assert_eq!(segs(&p), ["a b", "c%2e"]);
        assert!(!p.has_trailing_slash());
    }

    #[test]
    fn keeps_trailing_slash_and_drops_empty_segments() {
        let p = SitePath::parse("//a///b/", false).unwrap();
        assert_eq!(segs(&p), ["a", "b"]);
        assert!(p.has_trailing_slash());
        assert_eq!(p.to_url(true), "/a/b/");
    }

    #[test]
    fn traversal_corpus_never_climbs_above_root() {
        let bad_request = [
            "/..",
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/.%2e/x",
            "/%2e./x",
            "/a/../../x",
            "/a/%2e%2e/%2e%2e/x",
            "/./../x",
            "/a%00b",
            "/%00",
            "/a/%00/..",
            "/index%zz.txt",
            "/50%",
            "/%4",
            "relative/path",
            "",
            "*",
        ];
        for raw in bad_request {
            assert_eq!(
                SitePath::parse(raw, true),
                Err(PathError::BadRequest),
                "{raw}"
            );
        }
        // An encoded slash names nothing: 404 for a read, 400 for a write.
        let slash_in_name = [
            "/..%2fetc/passwd",
            "/..%2Fetc",
            "/a%2f..%2f..%2fx",
            "/file.txt%2f",
            "/%2fetc/passwd",
        ];
        for raw in slash_in_name {
            assert_eq!(
                SitePath::parse(raw, true),
                Err(PathError::SlashInName),
                "{raw}"
            );
        }
        // wharf's own temporary and partial files are never named by a request.
        for raw in ["/.wharf-tmp-1", "/a/.wharf-tus/x", "/.wharf-"] {
            assert_eq!(
                SitePath::parse(raw, true),
                Err(PathError::NotFound),
                "{raw}"
            );
        }
        // A backslash is a literal byte of one name, never a separator.
        for raw in ["/..%5cetc", "/..%5C..%5Cx", "/..\\etc"] {
            let p = SitePath::parse(raw, true).unwrap();
            assert_eq!(p.segments.len(), 1, "{raw}");
            assert!(p.segments[0].contains(&b'\\'), "{raw}");
        }
    }

    #[test]
    fn every_spelling_has_one_rule_path() {
        for raw in [
            "/private/s.txt",
            "/%70rivate/s.txt",
            "//private/s.txt",
            "/./private/s.txt",
            "/x/../private/s.txt",
            "/private//s.txt",
        ] {
            let p = SitePath::parse(raw, false).unwrap();
            assert_eq!(p.rule_path(), "/private/s.txt", "{raw}");
        }
        assert_eq!(
            SitePath::parse("/a%20b/", false).unwrap().rule_path(),
            "/a b/"
        );
        assert_eq!(SitePath::root().rule_path(), "/");
        assert_eq!(encode_path("a b/c?d"), "a%20b/c%3Fd");
        assert_eq!(
            encode_path_keeping_delims("a;v=1/b+c,d:e@f/x y?z#w%"),
            "a;v=1/b+c,d%3Ae%40f/x%20y%3Fz%23w%25"
        );
    }

    #[test]
    fn double_encoding_is_a_literal_name() {
        let p = SitePath::parse("/%252e%252e/x", true).unwrap();
        assert_eq!(segs(&p), ["%2e%2e", "x"]);
        assert_eq!(p.relative_fs_path(), PathBuf::from("%2e%2e/x"));
    }

    #[test]
    fn dot_segments_inside_root_are_resolved() {
        let p = SitePath::parse("/a/b/../c/./d", false).unwrap();
        assert_eq!(segs(&p), ["a", "c", "d"]);
        let p = SitePath::parse("/a/..", false).unwrap();
        assert!(p.is_root());
        assert!(p.has_trailing_slash());
    }

    #[test]
    fn hidden_names_are_refused_unless_allowed() {
        for raw in ["/.env", "/.git/config", "/a/.secret", "/a/.well-known/x"] {
            assert_eq!(
                SitePath::parse(raw, false),
                Err(PathError::NotFound),
                "{raw}"
            );
            assert!(SitePath::parse(raw, true).is_ok(), "{raw}");
        }
        assert!(SitePath::parse("/.well-known/acme", false).is_ok());
        assert!(SitePath::parse("/%2eenv", false).is_err());
    }

    #[test]
    fn urls_round_trip_awkward_names() {
        for name in [
            "a b", "q?x", "h#1", "a&b", "<b>", "\"q\"", "100%", "é", "日本", "x+y", "~u",
        ] {
            let url = SitePath::root().join(name.as_bytes()).to_url(false);
            assert!(url.starts_with('/') && !url.starts_with("//"), "{url}");
            let back = SitePath::parse(&url, false).unwrap();
            assert_eq!(back.file_name(), Some(name.as_bytes()), "{url}");
        }
        let raw = SitePath::root().join(b"\xff\xfe");
        assert_eq!(raw.to_url(false), "/%FF%FE");
        assert_eq!(
            SitePath::parse("/%FF%FE", false).unwrap().file_name(),
            Some(&b"\xff\xfe"[..])
        );
    }
}
