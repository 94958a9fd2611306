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

/// The line where `key` is set inside the section starting at line `base`.
pub fn line_in_section(text: &str, base: usize, key: &str) -> usize {
    for (i, line) in text.lines().enumerate().skip(base) {
        let t = line.trim_start();
        if t.starts_with('[') {
            break;
        }
        let name = t.split('=').next().unwrap_or("").trim().trim_matches('"');
        if t.contains('=') && name == key {
            return i + 1;
        }
    }
    base
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
