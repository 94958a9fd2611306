//! Where things are in the configuration file's text, so that every error names its
//! line: a top-level key, a table header, a key inside a section, a byte offset.

/// The line of the `n`-th occurrence of a table header such as `[[rule]]`.
pub fn section_line(text: &str, header: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.split('#').next().unwrap_or("").trim() == header)
        .nth(n)
        .map_or(1, |(i, _)| i + 1)
}

/// The line where `key` is set inside the section starting at line `base`: as
/// `key = …`, as dotted keys `key.x = …`, or as a sub-table of the section's own
/// (`[rule.key]` after `[[rule]]`, up to the next `[[…]]`); `base` if none.
pub fn line_in_section(text: &str, base: usize, key: &str) -> usize {
    let mut own = true;
    for (i, line) in text.lines().enumerate().skip(base) {
        let t = uncommented(line).trim();
        if t.starts_with("[[") {
            break;
        }
        if let Some(header) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            own = false;
            if header.contains('.') && dotted(header).last() == Some(key) {
                return i + 1;
            }
            continue;
        }
        if own && t.contains('=') {
            let name = t.split('=').next().unwrap_or("");
            if dotted(name).next() == Some(key) {
                return i + 1;
            }
        }
    }
    base
}

/// The line where `key` is set inside the table `table` of the section starting at
/// line `base` (`[rule.table]` then `key = …`, or `table.key = …`); else the line
/// of the table itself.
pub fn line_in_table(text: &str, base: usize, table: &str, key: &str) -> usize {
    let mut inside = false;
    for (i, line) in text.lines().enumerate().skip(base) {
        let t = uncommented(line).trim();
        if t.starts_with("[[") {
            break;
        }
        if let Some(header) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            inside = header.contains('.') && dotted(header).last() == Some(table);
            continue;
        }
        let Some((name, _)) = t.split_once('=') else {
            continue;
        };
        let mut parts = dotted(name);
        let found = if inside {
            parts.next() == Some(key)
        } else {
            parts.next() == Some(table) && parts.next() == Some(key)
        };
        if found {
            return i + 1;
        }
    }
    line_in_section(text, base, table)
}

/// `line` without its comment: from the first `#` outside a quoted string.
fn uncommented(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('#', None) => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The parts of a dotted key (`a."b.c"` is `a`, `b.c`), unquoted and trimmed.
fn dotted(name: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quote = None;
    for (i, c) in name.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('.', None) => {
                parts.push(&name[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&name[start..]);
    parts
        .into_iter()
        .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\''))
}

/// 1-based line of byte offset `at`.
pub fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The line where top-level `key` is assigned (1 if it cannot be found).
pub fn key_line(text: &str, key: &str) -> usize {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('[') {
            break;
        }
        let name = t.split('=').next().unwrap_or("").trim().trim_matches('"');
        if t.contains('=') && name == key {
            return i + 1;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "port = 1\n[[rule]]\npath = \"/a\"\ncors.max-age = \"ten\"\n\n[rule.headers]\nX-Ok = \"1\"\n\"Bad Name\" = \"2\"\n[[rule]]\nheaders = { \"A B\" = \"1\" }\n";

    #[test]
    fn keys_are_found_in_sub_tables_and_dotted_keys() {
        assert_eq!(line_in_section(TEXT, 2, "path"), 3);
        assert_eq!(line_in_section(TEXT, 2, "cors"), 4);
        assert_eq!(line_in_section(TEXT, 2, "headers"), 6);
        assert_eq!(line_in_table(TEXT, 2, "headers", "Bad Name"), 8);
        assert_eq!(line_in_table(TEXT, 2, "cors", "max-age"), 4);
        // Not past the next rule; an inline table is its own key's line.
        assert_eq!(line_in_section(TEXT, 2, "nothing"), 2);
        assert_eq!(line_in_section(TEXT, 9, "headers"), 10);
        assert_eq!(line_in_table(TEXT, 9, "headers", "A B"), 10);
        // A `#` in a quoted key is no comment.
        let text = "[[rule]]\n[rule.headers] # the rule's\n\"X-Bad#Name\" = \"1\" # bad\n";
        assert_eq!(line_in_table(text, 1, "headers", "X-Bad#Name"), 3);
        assert_eq!(line_in_section(text, 1, "headers"), 2);
    }
}
