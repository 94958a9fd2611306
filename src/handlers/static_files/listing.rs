//! Directory listings: HTML for people, JSON for scripts.
//!
//! Every name is written twice, differently escaped: HTML-escaped as the text people
//! read, and percent-encoded (then HTML-escaped) as the href, so that following any
//! link fetches exactly that file whatever bytes its name holds.
//!
//! Listings of up to 20,000 entries are rendered whole on the blocking pool, sent with a
//! Content-Length and cached. Larger ones are rendered on the blocking pool into a
//! bounded channel, a chunk at a time, so a directory of 100,000 entries neither holds
//! its whole page in memory nor occupies an async worker while it is written.

use std::fmt::Write as _;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};

use crate::fs::{Entry, EntryKind};
use crate::http::body::Body;
use crate::http::conditional::{self, Precondition, Validators};
use crate::http::path::{encode_segment, SitePath};

/// Listings with at most this many entries are rendered whole (on the blocking pool)
/// and cached; larger ones are streamed.
const IN_MEMORY_ENTRIES: usize = 20_000;
/// Size of each chunk a streamed listing sends.
const CHUNK: usize = 64 * 1024;
/// Chunks that may wait in the channel for a slow client.
const CHANNEL_DEPTH: usize = 4;

/// Which representation to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `text/html; charset=utf-8`.
    Html,
    /// `application/json`: `{"path": …, "entries": [{name, type, size, mtime, href}]}`.
    Json,
}

/// Directories first, then by name ignoring case, then by exact bytes.
pub fn sort(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        a.kind
            .cmp(&b.kind)
            .then_with(|| {
                let (la, lb) = (a.name.to_ascii_lowercase(), b.name.to_ascii_lowercase());
                la.cmp(&lb)
            })
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// A directory's sorted entries, ready to render.
#[derive(Debug)]
pub struct Listing {
    path: SitePath,
    entries: Vec<Entry>,
    format: Format,
}

impl Listing {
    /// `entries` must already be filtered and sorted.
    pub fn new(path: SitePath, entries: Vec<Entry>, format: Format) -> Listing {
        Listing {
            path,
            entries,
            format,
        }
    }

    /// Whether this listing is small enough to render whole (and cache).
    pub fn fits_in_memory(&self) -> bool {
        self.entries.len() <= IN_MEMORY_ENTRIES
    }

    /// The whole page.
    pub fn render_page(&self) -> Bytes {
        let mut page = String::with_capacity(256 + self.entries.len() * 200);
        self.render(|chunk| {
            page.push_str(chunk);
            true
        });
        Bytes::from(page)
    }

    /// The response (200, or what a precondition decides), streamed: rendered on the blocking pool into a bounded
    /// channel, so neither the page nor an async worker is held for it.
    pub fn into_streamed_response(self, req: &Parts) -> Response<Body> {
        if let Some(res) = unmet_precondition(req) {
            return res;
        }
        let format = self.format;
        let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_DEPTH);
        tokio::task::spawn_blocking(move || {
            let mut buf = String::with_capacity(CHUNK + 1024);
            let sent_all = self.render(|chunk| {
                buf.push_str(chunk);
                if buf.len() < CHUNK {
                    return true;
                }
                let full = std::mem::replace(&mut buf, String::with_capacity(CHUNK + 1024));
                tx.blocking_send(Ok(Bytes::from(full))).is_ok()
            });
            if sent_all && !buf.is_empty() {
                let _ = tx.blocking_send(Ok(Bytes::from(buf)));
            }
        });
        response(Body::channel(rx), format)
    }

    /// Renders into `emit`, piece by piece; stops early (returning false) when `emit`
    /// says the client has gone.
    fn render(&self, mut emit: impl FnMut(&str) -> bool) -> bool {
        let mut piece = String::with_capacity(512);
        match self.format {
            Format::Html => html_head(&self.path, &mut piece),
            Format::Json => json_head(&self.path, &mut piece),
        }
        if !emit(&piece) {
            return false;
        }
        for (i, entry) in self.entries.iter().enumerate() {
            piece.clear();
            match self.format {
                Format::Html => html_entry(entry, &mut piece),
                Format::Json => json_entry(entry, i == 0, &mut piece),
            }
            if !emit(&piece) {
                return false;
            }
        }
        emit(match self.format {
            Format::Html => "</tbody></table>\n</body></html>\n",
            Format::Json => "]}\n",
        })
    }
}

/// The response for a rendered page: 200, or what a precondition decides.
pub fn page_response(req: &Parts, page: Bytes, format: Format) -> Response<Body> {
    unmet_precondition(req).unwrap_or_else(|| response(Body::bytes(page), format))
}

/// The answer to a listing request whose preconditions fail. A listing has no
/// validators, so only `*` can match it (RFC 9110 §13.1.1-2): `If-None-Match: *` gets
/// 304, an `If-Match` naming tags 412; date conditions do not apply.
fn unmet_precondition(req: &Parts) -> Option<Response<Body>> {
    let none = Validators {
        etag: None,
        last_modified: None,
    };
    match conditional::evaluate(&req.method, &req.headers, none) {
        Precondition::Proceed => None,
        Precondition::NotModified => {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            res.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept"));
            Some(res)
        }
        Precondition::Failed => Some(crate::http::response::error(
            StatusCode::PRECONDITION_FAILED,
        )),
    }
}

fn response(body: Body, format: Format) -> Response<Body> {
    let content_type = match format {
        Format::Html => crate::http::response::HTML,
        Format::Json => HeaderValue::from_static("application/json"),
    };
    let len = body.exact_len();
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::OK;
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    res
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse}td,th{padding:.2em 1.5em .2em 0;text-align:left}\
td.s{text-align:right;font-variant-numeric:tabular-nums}a{text-decoration:none}\
a:hover{text-decoration:underline}";

fn html_head(path: &SitePath, out: &mut String) {
    let title = escape_html(&path.display());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Index of {title}</title><style>{STYLE}</style></head>\n\
         <body><h1>Index of {title}</h1>\n<table><thead><tr><th>Name</th>\
         <th class=\"s\">Size</th><th>Modified</th></tr></thead><tbody>\n"
    );
    if !path.is_root() {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td class=\"s\">-</td><td></td></tr>\n");
    }
}

fn html_entry(entry: &Entry, out: &mut String) {
    let is_dir = entry.kind == EntryKind::Dir;
    let slash = if is_dir { "/" } else { "" };
    let href = escape_html(&encode_segment(&entry.name));
    let name = escape_html(&String::from_utf8_lossy(&entry.name));
    let size = if is_dir {
        "<td class=\"s\">-</td>".to_string()
    } else {
        let unit = if entry.size == 1 { "byte" } else { "bytes" };
        format!(
            "<td class=\"s\" title=\"{} {unit}\">{}</td>",
            entry.size,
            human_size(entry.size)
        )
    };
    let _ = writeln!(
        out,
        "<tr><td><a href=\"{href}{slash}\">{name}{slash}</a></td>{size}<td>{}</td></tr>",
        mtime_text(entry.mtime)
            .replacen('T', " ", 1)
            .trim_end_matches('Z'),
    );
}

fn json_head(path: &SitePath, out: &mut String) {
    let _ = write!(
        out,
        "{{\"path\":{},\"entries\":[",
        serde_json::Value::from(path.display())
    );
}

fn json_entry(entry: &Entry, first: bool, out: &mut String) {
    let is_dir = entry.kind == EntryKind::Dir;
    let mut href = encode_segment(&entry.name);
    if is_dir {
        href.push('/');
    }
    let value = serde_json::json!({
        "name": String::from_utf8_lossy(&entry.name),
        "type": if is_dir { "dir" } else { "file" },
        "size": entry.size,
        "mtime": entry.mtime.map(|t| mtime_text(Some(t))),
        "href": href,
    });
    if !first {
        out.push(',');
    }
    out.push_str(&value.to_string());
}

fn mtime_text(mtime: Option<SystemTime>) -> String {
    mtime.map_or_else(String::new, |t| {
        if crate::http::response::is_writable_date(t) {
            humantime::format_rfc3339_seconds(t).to_string()
        } else {
            String::new()
        }
    })
}

/// Escapes text for HTML content and double-quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: EntryKind) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind,
            size: 2048,
            mtime: Some(SystemTime::UNIX_EPOCH),
        }
    }

    fn render(listing: &Listing) -> String {
        let mut page = String::new();
        listing.render(|c| {
            page.push_str(c);
            true
        });
        page
    }

    #[test]
    fn directories_first_then_names() {
        let mut entries = vec![
            entry("b.txt", EntryKind::File),
            entry("Z", EntryKind::Dir),
            entry("a.txt", EntryKind::File),
            entry("a", EntryKind::Dir),
        ];
        sort(&mut entries);
        let names: Vec<_> = entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect();
        assert_eq!(names, ["a", "Z", "a.txt", "b.txt"]);
    }

    #[test]
    fn html_escapes_names_and_encodes_hrefs() {
        let path = SitePath::parse("/sub/", false).unwrap();
        let listing = Listing::new(
            path,
            vec![entry("<b>&\"x\" #?.txt", EntryKind::File)],
            Format::Html,
        );
        let page = render(&listing);
        assert!(page.contains("href=\"../\""));
        assert!(
            page.contains("&lt;b&gt;&amp;&quot;x&quot; #?.txt"),
            "{page}"
        );
        assert!(
            page.contains("href=\"%3Cb%3E%26%22x%22%20%23%3F.txt\""),
            "{page}"
        );
        assert!(!page.contains("<b>"));
        assert!(page.contains("2.0 KiB"));
    }

    #[test]
    fn exact_sizes_are_titles_of_files_only() {
        let mut one = entry("one.txt", EntryKind::File);
        one.size = 1;
        let listing = Listing::new(
            SitePath::root(),
            vec![
                entry("d", EntryKind::Dir),
                one,
                entry("k.bin", EntryKind::File),
            ],
            Format::Html,
        );
        let page = render(&listing);
        assert!(page.contains("title=\"1 byte\">1 B<"), "{page}");
        assert!(page.contains("title=\"2048 bytes\">2.0 KiB<"), "{page}");
        assert_eq!(page.matches("title=").count(), 2, "{page}");
    }

    #[test]
    fn json_is_valid_and_complete() {
        let listing = Listing::new(
            SitePath::root(),
            vec![
                entry("d", EntryKind::Dir),
                entry("\"q\".txt", EntryKind::File),
            ],
            Format::Json,
        );
        let v: serde_json::Value = serde_json::from_str(&render(&listing)).unwrap();
        assert_eq!(v["path"], "/");
        assert_eq!(v["entries"][0]["type"], "dir");
        assert_eq!(v["entries"][0]["href"], "d/");
        assert_eq!(v["entries"][1]["name"], "\"q\".txt");
        assert_eq!(v["entries"][1]["size"], 2048);
        assert_eq!(v["entries"][1]["mtime"], "1970-01-01T00:00:00Z");
    }
}
