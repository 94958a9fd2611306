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
use crate::handlers::static_files::compress::StreamEncoder;
use crate::http::body::Body;
use crate::http::conditional::{self, Precondition, Validators};
use crate::http::etag::EntityTag;
use crate::http::negotiate::Encoding;
use crate::http::path::{encode_segment, SitePath};
use crate::http::representation::{self, Content, Representation};

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
    Order::default().sort(entries);
}

/// What a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Name, ignoring case.
    #[default]
    Name,
    /// Size in bytes.
    Size,
    /// Modification time.
    Modified,
}

/// A listing's order, from the query (`?sort=size&order=desc`): folders always come
/// first; within each group, by the key, ties broken by name. Unknown values are
/// ignored (the default order), as links made by hand should still show the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Order {
    /// The column sorted by.
    pub key: SortKey,
    /// Largest, latest or last name first.
    pub descending: bool,
}

impl Order {
    /// The order `req`'s query asks for.
    pub fn of(req: &Parts) -> Order {
        let mut order = Order::default();
        for pair in req.uri.query().unwrap_or("").split('&') {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("sort", "name") => order.key = SortKey::Name,
                ("sort", "size") => order.key = SortKey::Size,
                ("sort", "modified" | "mtime" | "time" | "date") => order.key = SortKey::Modified,
                ("order", "desc") => order.descending = true,
                ("order", "asc") => order.descending = false,
                _ => {}
            }
        }
        order
    }

    /// Sorts `entries` in this order.
    pub fn sort(&self, entries: &mut [Entry]) {
        let by_name = |a: &Entry, b: &Entry| {
            let (la, lb) = (a.name.to_ascii_lowercase(), b.name.to_ascii_lowercase());
            la.cmp(&lb).then_with(|| a.name.cmp(&b.name))
        };
        entries.sort_by(|a, b| {
            let within = match self.key {
                SortKey::Name => by_name(a, b),
                SortKey::Size => a.size.cmp(&b.size).then_with(|| by_name(a, b)),
                SortKey::Modified => a.mtime.cmp(&b.mtime).then_with(|| by_name(a, b)),
            };
            let within = if self.descending {
                within.reverse()
            } else {
                within
            };
            a.kind.cmp(&b.kind).then(within)
        });
    }

    /// The query of the link that sorts by `key`: the other direction when already
    /// sorted by it.
    fn link(&self, key: SortKey) -> &'static str {
        let flip = self.key == key && !self.descending;
        match (key, flip) {
            (SortKey::Name, false) => "?sort=name",
            (SortKey::Name, true) => "?sort=name&amp;order=desc",
            (SortKey::Size, false) => "?sort=size",
            (SortKey::Size, true) => "?sort=size&amp;order=desc",
            (SortKey::Modified, false) => "?sort=modified",
            (SortKey::Modified, true) => "?sort=modified&amp;order=desc",
        }
    }

    /// The `aria-sort` state of `key`'s column header.
    fn aria(&self, key: SortKey) -> &'static str {
        match (self.key == key, self.descending) {
            (false, _) => "none",
            (true, false) => "ascending",
            (true, true) => "descending",
        }
    }
}

/// A directory's sorted entries, ready to render.
#[derive(Debug)]
pub struct Listing {
    path: SitePath,
    entries: Vec<Entry>,
    format: Format,
    /// The directory's own modification time (entries added, removed or renamed).
    dir_modified: Option<SystemTime>,
    /// The order the entries are in (the page's column headers say it).
    order: Order,
    /// What the page offers besides links.
    offers: Offers,
}

/// What a listing page offers besides links: the controls that change the folder,
/// shown only where the site allows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offers {
    /// Uploads, new folders (and, with `delete`, renames).
    pub upload: bool,
    /// Deletes.
    pub delete: bool,
}

impl Listing {
    /// `entries` must already be filtered and sorted; `dir_modified` is the
    /// directory's modification time.
    pub fn new(
        path: SitePath,
        entries: Vec<Entry>,
        format: Format,
        dir_modified: Option<SystemTime>,
        order: Order,
        offers: Offers,
    ) -> Listing {
        Listing {
            path,
            entries,
            format,
            dir_modified,
            order,
            offers,
        }
    }

    /// The listing's Last-Modified: the latest of the directory's modification time and
    /// its entries' (what the listing shows changes with one of them), never later
    /// than now.
    fn last_modified(&self) -> Option<SystemTime> {
        self.entries
            .iter()
            .filter_map(|e| e.mtime)
            .chain(self.dir_modified)
            .max()
            .map(|t| t.min(SystemTime::now()))
    }

    /// The rendered page as a representation: a strong ETag of its bytes (it is
    /// derived from exactly what it shows), [`Listing::last_modified`], negotiable
    /// (compressible text).
    pub fn page_representation(&self, page: Bytes) -> Representation {
        Representation {
            etag: Some(EntityTag::of_content(&page)),
            len: page.len() as u64,
            content: Content::Bytes(page),
            content_type: content_type(self.format),
            last_modified: self.last_modified(),
            encoding: None,
            negotiated: true,
        }
    }

    /// A strong ETag for a listing too large to render before its head is sent: a
    /// hash of everything the rendering is made from (the renderer's version, format,
    /// path, and each entry's name, kind, size and modification time), so equal tags
    /// mean byte-identical pages.
    fn streamed_tag(&self) -> EntityTag {
        let mut hashed = Vec::with_capacity(64 + self.entries.len() * 48);
        hashed.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
        hashed.push(self.format as u8);
        hashed.push(self.order.key as u8);
        hashed.push(u8::from(self.order.descending));
        hashed.push(u8::from(self.offers.upload) | u8::from(self.offers.delete) << 1);
        hashed.extend_from_slice(self.path.display().as_bytes());
        for e in &self.entries {
            hashed.push(0);
            hashed.extend_from_slice(&e.name);
            hashed.push(e.kind as u8);
            hashed.extend_from_slice(&e.size.to_le_bytes());
            // What the page shows of the time (before 1970 too), and whether it
            // shows one at all.
            hashed.extend_from_slice(mtime_text(e.mtime).as_bytes());
            hashed.push(u8::from(e.mtime.is_some()));
        }
        EntityTag::from_hash(
            xxhash_rust::xxh3::xxh3_64(&hashed),
            self.entries.len() as u64,
        )
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

    /// The response (200, or what a precondition decides), streamed in `encoding`:
    /// rendered and compressed on the blocking pool into a bounded channel, so neither
    /// the page nor an async worker is held for it.
    pub fn into_streamed_response(self, req: &Parts, encoding: Encoding) -> Response<Body> {
        let identity_tag = self.streamed_tag();
        let etag = match encoding {
            Encoding::Identity => identity_tag,
            coding => identity_tag.for_encoding(coding.token()),
        };
        let last_modified = self.last_modified();
        let validators = Validators {
            etag: Some(&etag),
            last_modified,
        };
        let format = self.format;
        let mut res = match conditional::evaluate(&req.method, &req.headers, validators) {
            Precondition::Proceed => {
                let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_DEPTH);
                tokio::task::spawn_blocking(move || self.stream_into(&tx, encoding));
                let mut res = Response::new(Body::channel(rx));
                res.headers_mut()
                    .insert(header::CONTENT_TYPE, content_type(format));
                if encoding != Encoding::Identity {
                    res.headers_mut().insert(
                        header::CONTENT_ENCODING,
                        HeaderValue::from_static(encoding.token()),
                    );
                }
                res
            }
            Precondition::NotModified => {
                let mut res = Response::new(Body::empty());
                *res.status_mut() = StatusCode::NOT_MODIFIED;
                res
            }
            Precondition::Failed => crate::http::response::error(StatusCode::PRECONDITION_FAILED),
        };
        let headers = res.headers_mut();
        headers.insert(header::ETAG, etag.header_value());
        if let Some(value) = last_modified.and_then(crate::http::response::http_date) {
            headers.insert(header::LAST_MODIFIED, value);
        }
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        with_listing_headers(res)
    }

    /// Renders through `encoding` into `tx`, a chunk of about [`CHUNK`] bytes at a
    /// time; stops when the client has gone.
    fn stream_into(
        &self,
        tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
        encoding: Encoding,
    ) {
        let mut encoder = match StreamEncoder::new(encoding) {
            Ok(encoder) => encoder,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut failed = None;
        let sent_all = self.render(|piece| {
            if let Err(e) = encoder.write(piece.as_bytes()) {
                failed = Some(e);
                return false;
            }
            if encoder.pending() < CHUNK {
                return true;
            }
            tx.blocking_send(Ok(Bytes::from(encoder.take()))).is_ok()
        });
        if let Some(e) = failed {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        if sent_all {
            match encoder.finish() {
                Ok(rest) if rest.is_empty() => {}
                Ok(rest) => {
                    let _ = tx.blocking_send(Ok(Bytes::from(rest)));
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                }
            }
        }
    }

    /// Renders into `emit`, piece by piece; stops early (returning false) when `emit`
    /// says the client has gone.
    fn render(&self, mut emit: impl FnMut(&str) -> bool) -> bool {
        let mut piece = String::with_capacity(512);
        match self.format {
            Format::Html => html_head(&self.path, self.order, self.offers, &mut piece),
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
        piece.clear();
        match self.format {
            Format::Html => html_foot(self.offers, &mut piece),
            Format::Json => piece.push_str("]}\n"),
        }
        emit(&piece)
    }
}

/// The response for a rendered page in its chosen representation (identity or
/// compressed): 200, 206, or what a precondition decides, as for any file, plus
/// `Vary: Accept` (HTML or JSON was chosen by it).
pub fn respond(req: &Parts, rep: Representation) -> Response<Body> {
    with_listing_headers(representation::respond(req, rep))
}

/// The page's policy: its own script and style only, nothing inline, nothing from
/// elsewhere; requests back to this site only (uploads, renames, deletes).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
base-uri 'none'; frame-ancestors 'self'";

/// `res` (a listing) with `Vary: Accept` (HTML or JSON was chosen by it) and the
/// page's `Content-Security-Policy`.
pub fn with_listing_headers(mut res: Response<Body>) -> Response<Body> {
    let headers = res.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    res
}

fn content_type(format: Format) -> HeaderValue {
    match format {
        Format::Html => crate::http::response::HTML,
        Format::Json => HeaderValue::from_static("application/json"),
    }
}

fn html_head(path: &SitePath, order: Order, offers: Offers, out: &mut String) {
    let title = escape_html(&path.display());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>Index of {title}</title>\
         <link rel=\"stylesheet\" href=\"?wharf=listing.css\">\
         <script src=\"?wharf=listing.js\" defer></script></head>\n\
         <body data-upload=\"{}\" data-delete=\"{}\">\n<header>",
        offers.upload, offers.delete
    );
    breadcrumbs(path, out);
    out.push_str(
        "\n<div class=\"tools\"><input type=\"search\" id=\"filter\" \
         placeholder=\"Filter\" aria-label=\"Filter this folder\" hidden>\
         <a class=\"zip\" href=\"?zip\" download>Download folder as ZIP</a>",
    );
    if super::qr::lan_origin().is_some() {
        out.push_str(
            "<details class=\"qr\"><summary>QR code</summary><img src=\"?wharf=qr.svg\" \
             width=\"160\" height=\"160\" alt=\"QR code of this folder's address on the \
             local network\"></details>",
        );
    }
    out.push_str("</div></header>\n<main><table id=\"list\"><thead><tr>");
    for (key, label, class) in [
        (SortKey::Name, "Name", "n"),
        (SortKey::Size, "Size", "s"),
        (SortKey::Modified, "Modified", "m"),
    ] {
        let _ = write!(
            out,
            "<th class=\"{class}\" aria-sort=\"{}\"><a href=\"{}\">{label}</a></th>",
            order.aria(key),
            order.link(key)
        );
    }
    out.push_str("</tr></thead><tbody>\n");
    if !path.is_root() {
        out.push_str(
            "<tr class=\"up\"><td class=\"n\"><a href=\"../\">Parent folder</a>\
             <td class=\"s\"><td class=\"m\">\n",
        );
    }
}

/// The path as links, one per folder, the last one the current page.
fn breadcrumbs(path: &SitePath, out: &mut String) {
    let segments = path.segments();
    let _ = write!(
        out,
        "<nav aria-label=\"Breadcrumb\"><h1><a href=\"{}\">Index of /</a>",
        "../".repeat(segments.len())
    );
    for (i, segment) in segments.iter().enumerate() {
        let up = "../".repeat(segments.len() - i - 1);
        let href = if up.is_empty() { "./".to_string() } else { up };
        let current = if i + 1 == segments.len() {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<a href=\"{href}\"{current}>{}/</a>",
            escape_html(&shown_name(segment))
        );
    }
    // The heading inside the navigation: a heading holds text, not sections.
    out.push_str("</h1></nav>");
}

fn html_foot(offers: Offers, out: &mut String) {
    out.push_str("</tbody></table>\n");
    if offers.upload {
        // Works without script; the script turns it into drag and drop with progress.
        out.push_str(
            "<form id=\"upload\" method=\"post\" enctype=\"multipart/form-data\">\
             <label>Upload files <input type=\"file\" name=\"file\" multiple></label> \
             <button type=\"submit\">Upload</button></form>\n",
        );
    }
    out.push_str("</main></body></html>\n");
}

/// The icon class of a file, by its extension.
fn kind_class(name: &[u8]) -> &'static str {
    let ext = name
        .iter()
        .rposition(|&b| b == b'.')
        .map(|dot| name[dot + 1..].to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_slice() {
        b"png" | b"jpg" | b"jpeg" | b"gif" | b"webp" | b"svg" | b"avif" | b"ico" | b"bmp" => "i",
        b"mp3" | b"ogg" | b"oga" | b"flac" | b"wav" | b"m4a" | b"opus" => "a",
        b"mp4" | b"webm" | b"mkv" | b"mov" | b"avi" | b"ogv" => "v",
        b"zip" | b"gz" | b"tgz" | b"xz" | b"zst" | b"bz2" | b"7z" | b"rar" | b"tar" => "z",
        b"pdf" => "p",
        b"html" | b"htm" | b"css" | b"js" | b"mjs" | b"ts" | b"json" | b"rs" | b"py" | b"c"
        | b"h" | b"go" | b"java" | b"sh" | b"toml" | b"yaml" | b"yml" | b"xml" => "c",
        b"txt" | b"md" | b"csv" | b"log" | b"rst" => "t",
        _ => "f",
    }
}

fn html_entry(entry: &Entry, out: &mut String) {
    let is_dir = entry.kind == EntryKind::Dir;
    let href = escape_html(&encode_segment(&entry.name));
    let name = escape_html(&shown_name(&entry.name));
    let (class, slash) = if is_dir {
        ("d", "/")
    } else {
        (kind_class(&entry.name), "")
    };
    let _ = write!(
        out,
        "<tr class=\"{class}\"><td class=\"n\"><a href=\"{href}{slash}\">{name}{slash}</a>"
    );
    if is_dir {
        out.push_str("<td class=\"s\">-");
    } else {
        let unit = if entry.size == 1 { "byte" } else { "bytes" };
        let _ = write!(
            out,
            "<td class=\"s\" title=\"{} {unit}\">{}",
            entry.size,
            human_size(entry.size)
        );
    }
    // The exact time (RFC 3339, UTC) stays in the datetime attribute; the text says
    // its zone.
    let exact = mtime_text(entry.mtime);
    if exact.is_empty() {
        out.push_str("<td class=\"m\">\n");
    } else {
        let shown = exact.replacen('T', " ", 1);
        let _ = writeln!(
            out,
            "<td class=\"m\"><time datetime=\"{exact}\">{} UTC</time>",
            shown.trim_end_matches('Z')
        );
    }
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
        "mtime": Some(mtime_text(entry.mtime)).filter(|t| !t.is_empty()),
        "href": href,
    });
    if !first {
        out.push(',');
    }
    out.push_str(&value.to_string());
}

/// A modification time as RFC 3339 in UTC, to the second (`1969-07-20T20:17:40Z`);
/// empty for none, or one outside the years 0000 to 9999 that RFC 3339 can write.
fn mtime_text(mtime: Option<SystemTime>) -> String {
    // Whole seconds since 1970, rounded down (before it too).
    let secs = match mtime.map(|t| t.duration_since(SystemTime::UNIX_EPOCH)) {
        None => return String::new(),
        Some(Ok(after)) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Some(Err(before)) => {
            let d = before.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -whole - i64::from(d.subsec_nanos() > 0)
        }
    };
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return String::new();
    };
    if !(0..=9999).contains(&t.year()) {
        return String::new();
    }
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Escapes text for HTML content and double-quoted attributes.
/// A file name as the page shows it: control characters, which HTML cannot show,
/// and the bidirectional controls, which would make `gnp.exe` behind a U+202E read
/// as `exe.png`, become U+FFFD; the link itself names the file exactly.
fn shown_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .map(|c| {
            let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

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

/// A size as people read it: bytes below 1 KiB, else one decimal of the largest unit
/// that the value, rounded as shown, reaches (1,048,575 bytes is "1.0 MiB", not
/// "1024.0 KiB").
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_round_up_to_a_unit_are_shown_in_it() {
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1_048_524), "1023.9 KiB");
        assert_eq!(human_size(1_048_575), "1.0 MiB");
        assert_eq!(human_size(1_048_576), "1.0 MiB");
        assert_eq!(human_size(1_073_741_823), "1.0 GiB");
        assert_eq!(human_size(1_099_511_627_775), "1.0 TiB");
    }

    #[test]
    fn times_before_1970_are_written_too() {
        let at = |secs: i64| {
            let t = if secs < 0 {
                SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
            } else {
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
            };
            mtime_text(Some(t))
        };
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(-1), "1969-12-31T23:59:59Z");
        assert_eq!(at(-14_182_940), "1969-07-20T20:17:40Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(253_402_300_800), "", "year 10000");
        assert_eq!(at(i64::MAX / 2), "", "far beyond");
        assert_eq!(at(-62_167_219_201), "", "year -1");
        let half_before = SystemTime::UNIX_EPOCH - std::time::Duration::from_millis(500);
        assert_eq!(mtime_text(Some(half_before)), "1969-12-31T23:59:59Z");
        assert_eq!(mtime_text(None), "");
    }

    #[test]
    fn names_are_shown_without_controls_but_linked_exactly() {
        let mut out = String::new();
        html_entry(&entry("rtl\u{202E}gnp.exe", EntryKind::File), &mut out);
        assert!(out.contains(">rtl\u{FFFD}gnp.exe</a>"), "{out}");
        assert!(out.contains("href=\"rtl%E2%80%AEgnp.exe\""), "{out}");
        let mut out = String::new();
        html_entry(&entry("esc\u{1b}[31m.txt", EntryKind::File), &mut out);
        assert!(!out.contains('\u{1b}'), "{out}");
    }

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
            None,
            Order::default(),
            Offers::default(),
        );
        let page = render(&listing);
        assert!(page.contains("href=\"../\">Parent folder"));
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
            None,
            Order::default(),
            Offers::default(),
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
            None,
            Order::default(),
            Offers::default(),
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
