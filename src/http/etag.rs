//! Entity tags: ours, and parsing and comparing the client's.
//!
//! wharf's ETags are strong and derived from content: `"<xxh3-64 of the bytes>-<length
//! in hex>"`. A byte-identical file therefore keeps its tag across deploys, copies and
//! `touch`, which mtime-based tags (nginx, Caddy) do not, and any change of content
//! changes it. Each encoding of a resource gets its own tag (see
//! [`EntityTag::for_encoding`]). Hashing files, and remembering their hashes, is the
//! static handler's (`etag_cache`).

use http::HeaderValue;

/// A strong entity tag of ours, quotes included (`"…"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityTag(String);

impl EntityTag {
    /// The tag of content with this xxh3-64 hash and length.
    pub fn from_hash(hash: u64, len: u64) -> EntityTag {
        EntityTag(format!("\"{hash:016x}-{len:x}\""))
    }

    /// The tag of `content`.
    pub fn of_content(content: &[u8]) -> EntityTag {
        EntityTag::from_hash(xxhash_rust::xxh3::xxh3_64(content), content.len() as u64)
    }

    /// The tag of an encoded variant (`gzip`, `br`, `zstd`) of the content this tag
    /// names: distinct from the identity tag, as RFC 9110 §8.8.3 requires of strong tags.
    pub fn for_encoding(&self, coding: &str) -> EntityTag {
        let inner = self.opaque();
        EntityTag(format!("\"{inner}-{coding}\""))
    }

    /// This tag and those of the encoded variants of the same content: each names the
    /// current content, for a client that read it compressed and writes it back.
    pub fn with_encodings(&self) -> [EntityTag; 4] {
        [
            self.clone(),
            self.for_encoding("gzip"),
            self.for_encoding("br"),
            self.for_encoding("zstd"),
        ]
    }

    /// A strong tag another server sent (an upstream's `ETag`); `None` when it is
    /// weak or malformed.
    pub fn from_header(value: &HeaderValue) -> Option<EntityTag> {
        match TagList::parse_line(value.to_str().ok()?.trim())?.as_slice() {
            [(false, opaque)] => Some(EntityTag(format!("\"{opaque}\""))),
            _ => None,
        }
    }

    /// Whether `list` (an If-None-Match) matches the tag `value` another server
    /// sent, strong or weak, by weak comparison.
    pub fn weakly_matched(list: &TagList, value: &HeaderValue) -> bool {
        let Some(tags) = value
            .to_str()
            .ok()
            .and_then(|v| TagList::parse_line(v.trim()))
        else {
            return false;
        };
        match (list, tags.as_slice()) {
            (TagList::Any, _) => true,
            (TagList::Tags(listed), [(_, opaque)]) => listed.iter().any(|(_, t)| t == opaque),
            _ => false,
        }
    }

    /// The tag without its quotes.
    fn opaque(&self) -> &str {
        self.0.trim_matches('"')
    }

    /// As a header value.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&self.0).unwrap_or(HeaderValue::from_static("\"\""))
    }
}

/// A client-sent entity-tag list (`If-Match`, `If-None-Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList {
    /// `*`: any current representation.
    Any,
    /// Tags with their weakness flag, in order.
    Tags(Vec<(bool, String)>),
}

impl TagList {
    /// Parses all field lines of one header; `None` when it is absent. A malformed
    /// line lists no tag: the condition holds only for `*` or a listed tag (RFC 9110
    /// §13.1.1), so a garbled If-Match fails, as nginx's does, and a garbled
    /// If-None-Match matches nothing.
    pub fn parse<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<TagList> {
        let mut tags = Vec::new();
        let mut any = false;
        let mut seen = false;
        for value in values {
            seen = true;
            match value.to_str().ok().map(str::trim) {
                Some("*") => any = true,
                Some(line) => tags.extend(Self::parse_line(line).unwrap_or_default()),
                None => {}
            }
        }
        if !seen {
            return None;
        }
        if any {
            return Some(TagList::Any);
        }
        Some(TagList::Tags(tags))
    }

    /// The tags of one field line, `None` when it is not a valid list.
    fn parse_line(mut rest: &str) -> Option<Vec<(bool, String)>> {
        let mut tags = Vec::new();
        loop {
            // Empty elements (`, "a",, "b"`) are ignored (RFC 9110 §5.6.1.2).
            rest = rest.trim_start_matches([',', ' ', '\t']);
            if rest.is_empty() {
                break;
            }
            let (weak, after) = match rest.strip_prefix("W/") {
                Some(after) => (true, after),
                None => (false, rest),
            };
            let after = after.strip_prefix('"')?;
            let end = after.find('"')?;
            let opaque = &after[..end];
            // etagc = %x21 / %x23-7E / obs-text
            if !opaque
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
            {
                return None;
            }
            tags.push((weak, opaque.to_string()));
            rest = after[end + 1..].trim_start_matches([' ', '\t']);
            if !rest.is_empty() && !rest.starts_with(',') {
                return None;
            }
        }
        Some(tags)
    }

    /// Strong comparison (If-Match, If-Range): both tags strong and identical.
    pub fn matches_strong(&self, ours: &EntityTag) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|(weak, t)| !weak && t == ours.opaque()),
        }
    }

    /// Weak comparison (If-None-Match): opaque tags identical, weakness ignored.
    pub fn matches_weak(&self, ours: &EntityTag) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|(_, t)| t == ours.opaque()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> Option<TagList> {
        let v = HeaderValue::from_str(s).unwrap();
        TagList::parse(std::iter::once(&v))
    }

    #[test]
    fn parses_lists_and_lists_nothing_for_garbage() {
        assert_eq!(list("*"), Some(TagList::Any));
        assert_eq!(
            list("\"a\", W/\"b\",\"c\""),
            Some(TagList::Tags(vec![
                (false, "a".into()),
                (true, "b".into()),
                (false, "c".into())
            ]))
        );
        assert_eq!(
            list("\"\""),
            Some(TagList::Tags(vec![(false, String::new())]))
        );
        // Empty elements are no tags, and no error (RFC 9110 §5.6.1.2).
        for spaced in [",\"a\"", " , \"a\"", "\"a\",,", "\"a\" , ,"] {
            assert_eq!(
                list(spaced),
                Some(TagList::Tags(vec![(false, "a".into())])),
                "{spaced}"
            );
        }
        assert_eq!(
            list("\"a\",, W/\"b\""),
            Some(TagList::Tags(vec![(false, "a".into()), (true, "b".into())]))
        );
        for bad in ["a", "\"a", "\"a\" \"b\"", "W/a", "\"a\",,x", "\"a b\""] {
            assert_eq!(list(bad), Some(TagList::Tags(Vec::new())), "{bad}");
        }
        assert_eq!(TagList::parse(std::iter::empty()), None);
    }

    #[test]
    fn strong_and_weak_comparison() {
        let ours = EntityTag::from_hash(1, 2);
        let opaque = ours.opaque().to_string();
        let strong = list(&format!("\"x\", \"{opaque}\"")).unwrap();
        let weak = list(&format!("W/\"{opaque}\"")).unwrap();
        assert!(strong.matches_strong(&ours) && strong.matches_weak(&ours));
        assert!(!weak.matches_strong(&ours) && weak.matches_weak(&ours));
        assert!(!list("\"other\"").unwrap().matches_weak(&ours));
    }

    #[test]
    fn encodings_get_their_own_tags() {
        let ours = EntityTag::from_hash(0xabc, 10);
        assert_ne!(ours.for_encoding("gzip"), ours);
        assert_ne!(ours.for_encoding("gzip"), ours.for_encoding("br"));
        assert!(ours.for_encoding("gzip").0.starts_with('"'));
    }
}
