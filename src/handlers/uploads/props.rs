//! WebDAV properties (RFC 4918 §9.1, §9.2, §15): PROPFIND and PROPPATCH.
//!
//! Live properties come from the file system (type, length, modification time,
//! media type, locks). Dead properties — anything a client sets with PROPPATCH — are
//! kept in the file's own extended attributes (`user.wharf.p.*`), so they move with
//! the file, survive restarts and need no database; a file system without them answers
//! 507 for the property. A property's value is stored as XML in which every element
//! declares its own namespace, so it comes back meaning what was sent.
//!
//! PROPFIND answers Depth 0 and 1; `infinity` (also what a missing Depth means) on a
//! collection is refused with 403 and `propfind-finite-depth`, as RFC 4918 §9.1
//! allows, and on a file is Depth 0 (it has no members). Files report `getetag`, the
//! ETag a GET sends.

use std::fmt::Write as _;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::body::read_xml;
use super::Uploads;
use crate::fs::write::WriteDir;
use crate::fs::{EntryKind, Node};
use crate::handlers::Request;
use crate::http::body::Body;
use crate::http::path::SitePath;
use crate::http::{mime, response};

/// The DAV: namespace.
const DAV: &str = "DAV:";
/// Extended attributes holding dead properties start with this.
const XATTR_PREFIX: &str = "user.wharf.p.";
/// Largest PROPFIND/PROPPATCH body read.
const MAX_XML: u64 = 1024 * 1024;

/// A property name: namespace and local name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropName {
    ns: String,
    local: String,
}

impl PropName {
    fn dav(local: &str) -> PropName {
        PropName {
            ns: DAV.into(),
            local: local.into(),
        }
    }

    /// The extended attribute holding this property.
    fn xattr(&self) -> String {
        let raw = format!("{}\n{}", self.ns, self.local);
        format!(
            "{XATTR_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        )
    }

    fn from_xattr(name: &str) -> Option<PropName> {
        let encoded = name.strip_prefix(XATTR_PREFIX)?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (ns, local) = raw.split_once('\n')?;
        Some(PropName {
            ns: ns.into(),
            local: local.into(),
        })
    }

    /// `<p:local xmlns:p="ns">inner</p:local>` (or the empty element).
    fn element(&self, inner: &str, out: &mut String) {
        self.element_in(None, inner, out);
    }

    /// [`PropName::element`], tagged with the language `lang` when there is one.
    fn element_in(&self, lang: Option<&str>, inner: &str, out: &mut String) {
        let lang = lang.map_or_else(String::new, |l| format!(" xml:lang=\"{}\"", escape(l)));
        if self.ns == DAV {
            if inner.is_empty() {
                let _ = write!(out, "<D:{}{lang}/>", self.local);
            } else {
                let _ = write!(out, "<D:{0}{lang}>{inner}</D:{0}>", self.local);
            }
        } else if self.ns.is_empty() {
            let _ = write!(out, "<{0} xmlns=\"\"{lang}>{inner}</{0}>", self.local);
        } else {
            let ns = escape(&self.ns);
            let _ = write!(
                out,
                "<P:{0} xmlns:P=\"{ns}\"{lang}>{inner}</P:{0}>",
                self.local
            );
        }
    }
}

/// A dead property's value: its XML, and the language (`xml:lang`) in scope
/// where it was set, which RFC 4918 §14.26 has stored and given back with it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    lang: Option<String>,
    xml: String,
}

impl Stored {
    /// As kept in the extended attribute: the XML, after `NUL lang NUL` when it
    /// has a language (no stored XML starts with NUL, which XML cannot carry).
    fn encode(&self) -> Vec<u8> {
        match &self.lang {
            Some(lang) => format!("\0{lang}\0{}", self.xml).into_bytes(),
            None => self.xml.clone().into_bytes(),
        }
    }

    fn decode(raw: &[u8]) -> Stored {
        let text = String::from_utf8_lossy(raw);
        if let Some((lang, xml)) = text.strip_prefix('\0').and_then(|t| t.split_once('\0')) {
            return Stored {
                lang: Some(lang.to_string()),
                xml: xml.to_string(),
            };
        }
        Stored {
            lang: None,
            xml: text.into_owned(),
        }
    }

    /// `name`'s element with this value.
    fn element(&self, name: &PropName, out: &mut String) {
        name.element_in(self.lang.as_deref(), &self.xml, out);
    }
}

/// The largest file whose content `allprop` hashes for its `getetag`.
const ALLPROP_HASHED: u64 = 1024 * 1024;

/// The live properties wharf reports.
const LIVE: [&str; 8] = [
    "resourcetype",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "getlastmodified",
    "displayname",
    "supportedlock",
    "lockdiscovery",
];

/// What a PROPFIND asks for.
enum Wanted {
    All,
    Names,
    Some(Vec<PropName>),
}

/// PROPFIND: properties of the resource and, with Depth 1, of its members.
pub async fn propfind(up: Arc<Uploads>, req: Request<'_>) -> Response<Body> {
    let Request {
        head,
        path,
        mut body,
        ..
    } = req;
    // `None`: infinity, also what a missing Depth means (RFC 4918 §9.1).
    let depth_one = match head.headers.get("depth").map(|v| v.as_bytes()) {
        Some(b"0") => Some(false),
        Some(b"1") => Some(true),
        None => None,
        Some(d) if d.eq_ignore_ascii_case(b"infinity") => None,
        Some(_) => return response::error(StatusCode::BAD_REQUEST),
    };
    let xml = match read_xml(&mut body, MAX_XML, up.settings.body_timeout).await {
        Ok(xml) => xml,
        Err(status) => return response::error(status),
    };
    let wanted = match parse_propfind(&xml) {
        Some(w) => w,
        None => return response::error(StatusCode::BAD_REQUEST),
    };
    let hidden = up.settings.hidden;
    let answer = up
        .run(move |up| -> Result<Option<String>, StatusCode> {
            let mut out = multistatus_head();
            let node = up.open(&path).map_err(|e| super::io_status(&e))?;
            let is_dir = matches!(node, Node::Dir(_));
            // Infinity is unbounded on a collection only: a file has no members, so
            // for it every depth is Depth 0.
            let depth_one = match depth_one {
                Some(one) => one,
                None if !is_dir => false,
                None => return Ok(None),
            };
            describe(up, &path, is_dir, &wanted, &mut out);
            if let (true, Node::Dir(dir)) = (depth_one, node) {
                let mut entries = up.root.list(dir, &path).map_err(|e| super::io_status(&e))?;
                entries.retain(|e| hidden || !e.name.starts_with(b"."));
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                for entry in entries {
                    let child = path.join(&entry.name);
                    describe(up, &child, entry.kind == EntryKind::Dir, &wanted, &mut out);
                }
            }
            out.push_str("</D:multistatus>");
            Ok(Some(out))
        })
        .await;
    match answer {
        Ok(Some(xml)) => multistatus(xml),
        Ok(None) => finite_depth(),
        Err(status) => response::error(status),
    }
}

/// 403 for a Depth this server does not walk (RFC 4918 §9.1).
fn finite_depth() -> Response<Body> {
    let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
               <D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>";
    xml_response(StatusCode::FORBIDDEN, xml.to_string())
}

/// The start of a 207's body (RFC 4918 §13).
pub(super) fn multistatus_head() -> String {
    String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">")
}

/// A 207 carrying `xml`.
pub(super) fn multistatus(xml: String) -> Response<Body> {
    xml_response(StatusCode::MULTI_STATUS, xml)
}

fn xml_response(status: StatusCode, xml: String) -> Response<Body> {
    let mut res = Response::new(Body::bytes(xml));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    res
}

/// One `<D:response>` for the resource at `path`.
fn describe(up: &Uploads, path: &SitePath, is_dir: bool, wanted: &Wanted, out: &mut String) {
    let Ok(node) = up.root.open(path) else {
        return;
    };
    let meta = match &node {
        Node::File(open) => &open.meta,
        Node::Dir(dir) => &dir.meta,
    };
    let dead = dead_props(up, path);
    let _ = write!(
        out,
        "<D:response><D:href>{}</D:href>",
        escape(&path.to_url(is_dir))
    );
    let mut found = String::new();
    let mut missing = String::new();
    let live_value = |name: &str| -> Option<String> {
        match name {
            "resourcetype" => Some(if is_dir {
                "<D:collection/>".into()
            } else {
                String::new()
            }),
            "getcontentlength" if !is_dir => Some(meta.len().to_string()),
            "getcontenttype" if !is_dir => {
                let name = path.file_name().unwrap_or_default();
                mime::content_type(name).to_str().ok().map(escape)
            }
            // The ETag a GET sends (RFC 4918 §15.6), quotes included; a folder's
            // depends on how its listing is rendered. The tag is a hash of the
            // content: taken when asked for by name, but for `allprop` (what file
            // managers send for every folder they show) only when it costs no
            // reading of a large file, so listing a folder of videos reads none.
            "getetag" => match (&node, wanted) {
                (Node::File(_), Wanted::Names) => Some(String::new()),
                (Node::File(open), Wanted::All) => up
                    .files
                    .etag_if_cheap(open, ALLPROP_HASHED)
                    .and_then(|tag| tag.header_value().to_str().ok().map(str::to_string)),
                (Node::File(open), Wanted::Some(_)) => up
                    .files
                    .etag(open)
                    .ok()
                    .and_then(|tag| tag.header_value().to_str().ok().map(str::to_string)),
                (Node::Dir(_), _) => None,
            },
            "getlastmodified" => meta
                .modified()
                .ok()
                .map(|t| httpdate::fmt_http_date(t.min(SystemTime::now()))),
            // Its file name, unless a client gave it one (stored, a dead property).
            "displayname" if !dead.iter().any(|(n, _)| is_displayname(n)) => Some(escape(
                &String::from_utf8_lossy(path.file_name().unwrap_or(b"")),
            )),
            "supportedlock" => Some(super::locks::SUPPORTED.into()),
            "lockdiscovery" => Some(up.locks.discovery(path)),
            _ => None,
        }
    };
    match wanted {
        Wanted::All | Wanted::Names => {
            for name in LIVE {
                if let Some(value) = live_value(name) {
                    let value = if matches!(wanted, Wanted::Names) {
                        String::new()
                    } else {
                        value
                    };
                    PropName::dav(name).element(&value, &mut found);
                }
            }
            // The one DAV: property a client may set (`displayname`) among them.
            let shown = dead
                .iter()
                .filter(|(n, _)| n.ns != DAV || is_displayname(n));
            for (name, value) in shown {
                if matches!(wanted, Wanted::Names) {
                    name.element("", &mut found);
                } else {
                    value.element(name, &mut found);
                }
            }
        }
        Wanted::Some(names) => {
            for name in names {
                let live = if name.ns == DAV {
                    live_value(&name.local)
                } else {
                    None
                };
                let stored = || dead.iter().find(|(n, _)| n == name).map(|(_, v)| v);
                match (live, stored()) {
                    (Some(value), _) => name.element(&value, &mut found),
                    (None, Some(value)) => value.element(name, &mut found),
                    (None, None) => name.element("", &mut missing),
                }
            }
        }
    }
    // A response holds a propstat or a status (RFC 4918 §14.24), even for a
    // `prop` that names nothing.
    let nothing = found.is_empty() && missing.is_empty();
    for (props, status) in [(found, "200 OK"), (missing, "404 Not Found")] {
        if !props.is_empty() || (nothing && status == "200 OK") {
            let _ = write!(
                out,
                "<D:propstat><D:prop>{props}</D:prop><D:status>HTTP/1.1 {status}</D:status></D:propstat>"
            );
        }
    }
    out.push_str("</D:response>");
}

/// Whether `name` is `DAV:displayname`, the one DAV: property a client may set.
fn is_displayname(name: &PropName) -> bool {
    name.ns == DAV && name.local == "displayname"
}

/// The dead properties of what `path` names.
fn dead_props(up: &Uploads, path: &SitePath) -> Vec<(PropName, Stored)> {
    let Ok(fd) = open_for_props(up, path) else {
        return Vec::new();
    };
    let mut names = vec![0u8; 64 * 1024];
    let Ok(len) = rustix::fs::flistxattr(&fd, &mut names) else {
        return Vec::new();
    };
    names.truncate(len);
    let mut out = Vec::new();
    for raw in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else {
            continue;
        };
        let Some(prop) = PropName::from_xattr(name) else {
            continue;
        };
        let mut value = vec![0u8; 64 * 1024];
        if let Ok(n) = rustix::fs::fgetxattr(&fd, name, &mut value) {
            value.truncate(n);
            out.push((prop, Stored::decode(&value)));
        }
    }
    out
}

/// What `path` names, opened for reading and writing its properties.
fn open_for_props(up: &Uploads, path: &SitePath) -> io::Result<std::os::fd::OwnedFd> {
    Ok(match up.open(path)? {
        Node::File(open) => open.file.into(),
        Node::Dir(_) => up.root.write_dir(path, false)?.fd().try_clone()?,
    })
}

/// Copies the dead properties of one file to another (COPY); best effort.
pub fn copy_dead_file(from: &std::fs::File, to: &std::fs::File) {
    copy_dead(from.as_fd(), to.as_fd());
}

/// Copies the dead properties of one folder to another (COPY); best effort.
pub fn copy_dead_dir(from: &WriteDir, to: &WriteDir) {
    copy_dead(from.fd().as_fd(), to.fd().as_fd());
}

fn copy_dead(from: std::os::fd::BorrowedFd<'_>, to: std::os::fd::BorrowedFd<'_>) {
    let mut names = vec![0u8; 64 * 1024];
    let Ok(len) = rustix::fs::flistxattr(from, &mut names) else {
        return;
    };
    names.truncate(len);
    for raw in names
        .split(|&b| b == 0)
        .filter(|n| n.starts_with(XATTR_PREFIX.as_bytes()))
    {
        let Ok(name) = std::str::from_utf8(raw) else {
            continue;
        };
        let mut value = vec![0u8; 64 * 1024];
        if let Ok(n) = rustix::fs::fgetxattr(from, name, &mut value) {
            let _ = rustix::fs::fsetxattr(to, name, &value[..n], rustix::fs::XattrFlags::empty());
        }
    }
}

/// One instruction of a PROPPATCH, in document order.
enum Change {
    Set(PropName, Stored),
    Remove(PropName),
}

/// PROPPATCH: sets and removes dead properties, all or none (RFC 4918 §9.2).
pub async fn proppatch(up: Arc<Uploads>, req: Request<'_>) -> Response<Body> {
    let Request {
        head,
        path,
        mut body,
        ..
    } = req;
    let xml = match read_xml(&mut body, MAX_XML, up.settings.body_timeout).await {
        Ok(xml) => xml,
        Err(status) => return response::error(status),
    };
    let Some(changes) = parse_propertyupdate(&xml) else {
        return response::error(StatusCode::BAD_REQUEST);
    };
    let (method, headers) = (head.method.clone(), head.headers.clone());
    let asked = path.clone();
    let answer = up
        .run(move |up| -> Result<String, StatusCode> {
            let fd = open_for_props(up, &path).map_err(|e| super::io_status(&e))?;
            if up.locks.blocks(&path, &headers, super::locks::Change::Content) {
                return Err(StatusCode::LOCKED);
            }
            up.preconditions(&path, &method, &headers)?;
            let name_of = |c: &Change| match c {
                Change::Set(n, _) | Change::Remove(n) => n.clone(),
            };
            // Live properties are computed, not stored: changing one fails, and then
            // nothing is changed (424 for the rest). `displayname` is the client's
            // to set (RFC 4918 §15.2), stored as a dead property is.
            let protected = |n: &PropName| n.ns == DAV && !is_displayname(n);
            let refused = changes.iter().any(|c| protected(&name_of(c)));
            let mut results: Vec<(PropName, &str)> = Vec::new();
            if refused {
                for c in &changes {
                    let n = name_of(c);
                    let status = if protected(&n) {
                        "403 Forbidden"
                    } else {
                        "424 Failed Dependency"
                    };
                    results.push((n, status));
                }
            } else {
                let mut failed = None;
                // Each property's value before its first change, to put back if a
                // later change fails: all or nothing (RFC 4918 §9.2).
                let mut before: Vec<(String, Option<Vec<u8>>)> = Vec::new();
                for c in &changes {
                    let xattr = name_of(c).xattr();
                    if !before.iter().any(|(n, _)| *n == xattr) {
                        match stored_value(&fd, &xattr) {
                            Ok(value) => before.push((xattr, value)),
                            // What could not be read could not be put back.
                            Err(e) => {
                                failed = Some((name_of(c), e));
                                break;
                            }
                        }
                    }
                    let outcome = match c {
                        Change::Set(n, value) => rustix::fs::fsetxattr(
                            &fd,
                            n.xattr().as_str(),
                            &value.encode(),
                            rustix::fs::XattrFlags::empty(),
                        ),
                        Change::Remove(n) => match rustix::fs::fremovexattr(&fd, n.xattr().as_str()) {
                            Err(rustix::io::Errno::NODATA) => Ok(()),
                            other => other,
                        },
                    };
                    if let Err(e) = outcome {
                        failed = Some((name_of(c), e));
                        break;
                    }
                }
                if failed.is_some() {
                    for (xattr, value) in before.iter().rev() {
                        let _ = match value {
                            Some(v) => rustix::fs::fsetxattr(
                                &fd,
                                xattr.as_str(),
                                v,
                                rustix::fs::XattrFlags::empty(),
                            ),
                            None => rustix::fs::fremovexattr(&fd, xattr.as_str()),
                        };
                    }
                }
                for c in &changes {
                    let n = name_of(c);
                    let status = match &failed {
                        None => "200 OK",
                        Some((f, rustix::io::Errno::NOSPC | rustix::io::Errno::NOTSUP
                        | rustix::io::Errno::TOOBIG | rustix::io::Errno::RANGE)) if *f == n => {
                            "507 Insufficient Storage"
                        }
                        Some((f, _)) if *f == n => "403 Forbidden",
                        Some(_) => "424 Failed Dependency",
                    };
                    results.push((n, status));
                }
            }
            let is_dir = matches!(up.root.open(&path), Ok(Node::Dir(_)));
            let mut out = multistatus_head();
            let _ = write!(
                out,
                "<D:response><D:href>{}</D:href>",
                escape(&path.to_url(is_dir))
            );
            if results.is_empty() {
                // Nothing asked, nothing changed: still a propstat (RFC 4918 §14.24).
                out.push_str(
                    "<D:propstat><D:prop/><D:status>HTTP/1.1 200 OK</D:status></D:propstat>",
                );
            }
            for (name, status) in results {
                let mut prop = String::new();
                name.element("", &mut prop);
                // Why, as RFC 4918 §9.2 asks of a protected property.
                let error = if protected(&name) {
                    "<D:error><D:cannot-modify-protected-property/></D:error>"
                } else {
                    ""
                };
                let _ = write!(
                    out,
                    "<D:propstat><D:prop>{prop}</D:prop><D:status>HTTP/1.1 {status}</D:status>{error}</D:propstat>"
                );
            }
            out.push_str("</D:response></D:multistatus>");
            Ok(out)
        })
        .await;
    match answer {
        Ok(xml) => multistatus(xml),
        Err(StatusCode::LOCKED) => up.locks.locked(&[&asked], &head.headers),
        Err(status) => response::error(status),
    }
}

/// The stored value of extended attribute `xattr`; `None` when it is not set.
fn stored_value(
    fd: &std::os::fd::OwnedFd,
    xattr: &str,
) -> Result<Option<Vec<u8>>, rustix::io::Errno> {
    // Linux holds at most 64 KiB in one extended attribute.
    let mut value = vec![0; 64 * 1024];
    match rustix::fs::fgetxattr(fd, xattr, &mut value) {
        Ok(len) => {
            value.truncate(len);
            Ok(Some(value))
        }
        Err(rustix::io::Errno::NODATA) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The namespace an element or attribute resolved to; `None` for an undeclared
/// prefix (malformed).
fn namespace(resolved: &ResolveResult<'_>) -> Option<String> {
    match resolved {
        // The name is the attribute's value, its references decoded (`&amp;`,
        // `&#68;`): the namespace a client reads back is the one it sent.
        ResolveResult::Bound(ns) => {
            let raw = String::from_utf8_lossy(ns.as_ref());
            quick_xml::escape::unescape(&raw)
                .ok()
                .map(|n| n.into_owned())
        }
        ResolveResult::Unbound => Some(String::new()),
        ResolveResult::Unknown(_) => None,
    }
}

/// A reader that refuses what XML Namespaces 1.0 does not allow (`xmlns:p=""`).
fn reader(xml: &str) -> NsReader<&[u8]> {
    let mut reader = NsReader::from_str(xml);
    reader.config_mut().trim_text(false);
    reader
}

/// The namespace and local name of an element just started; `None` when it is
/// malformed (an undeclared prefix, or `xmlns:p=""`).
fn element_name(
    resolved: &ResolveResult<'_>,
    start: &quick_xml::events::BytesStart<'_>,
) -> Option<(String, String)> {
    if bad_namespace_declaration(start) {
        return None;
    }
    let ns = namespace(resolved)?;
    Some((
        ns,
        String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
    ))
}

/// Whether `start` undeclares a prefix (`xmlns:p=""`), which is malformed.
fn bad_namespace_declaration(start: &quick_xml::events::BytesStart<'_>) -> bool {
    start.attributes().any(|a| match a {
        Ok(a) => a.key.as_ref().starts_with(b"xmlns:") && a.value.is_empty(),
        Err(_) => true,
    })
}

/// The PROPFIND body: empty (allprop), `allprop`, `propname` or `prop`; `None` when
/// it is not well-formed XML or not a `propfind`.
fn parse_propfind(xml: &str) -> Option<Wanted> {
    if xml.trim().is_empty() {
        return Some(Wanted::All);
    }
    let mut r = reader(xml);
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut in_prop = false;
    let mut wanted = None;
    let mut props = Vec::new();
    loop {
        let (resolved, event) = r.read_resolved_event().ok()?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let (ns, local) = element_name(&resolved, e)?;
                let is_empty = matches!(event, Event::Empty(_));
                match depth {
                    0 => {
                        if ns != DAV || local != "propfind" {
                            return None;
                        }
                        seen_root = true;
                    }
                    1 if ns == DAV => match local.as_str() {
                        "allprop" => wanted = Some(Wanted::All),
                        "propname" => wanted = Some(Wanted::Names),
                        "prop" => {
                            in_prop = !is_empty;
                            wanted = Some(Wanted::Some(Vec::new()));
                        }
                        _ => {}
                    },
                    2 if in_prop => props.push(PropName { ns, local }),
                    _ => {}
                }
                if !is_empty {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.checked_sub(1)?;
                if depth == 1 {
                    in_prop = false;
                }
            }
            Event::Text(ref t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return None;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root || depth != 0 {
        return None;
    }
    // An empty body is `allprop`; an empty `propfind` element names none of the
    // three it must hold (RFC 4918 §14.20).
    match wanted? {
        Wanted::Some(_) => Some(Wanted::Some(props)),
        w => Some(w),
    }
}

/// The PROPPATCH body's instructions; `None` when malformed.
fn parse_propertyupdate(xml: &str) -> Option<Vec<Change>> {
    let mut r = reader(xml);
    let mut changes = Vec::new();
    // Where we are: 0 outside, 1 in propertyupdate, 2 in set/remove, 3 in prop.
    let mut depth = 0usize;
    // The `xml:lang` in scope inside each of those (RFC 4918 §14.26).
    let mut langs: [Option<String>; 4] = Default::default();
    let mut setting = false;
    let mut seen_root = false;
    // At least one `set` or `remove` (RFC 4918 §14.19: `(remove | set)+`).
    let mut instructed = false;
    loop {
        let (resolved, event) = r.read_resolved_event().ok()?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let (ns, local) = element_name(&resolved, e)?;
                let is_empty = matches!(event, Event::Empty(_));
                let lang = xml_lang(e)?.or_else(|| langs.get(depth).cloned().flatten());
                match depth {
                    0 if ns == DAV && local == "propertyupdate" => seen_root = true,
                    0 => return None,
                    1 if ns == DAV && (local == "set" || local == "remove") => {
                        setting = local == "set";
                        instructed = true;
                    }
                    2 if ns == DAV && local == "prop" => {}
                    // An element this does not know, with all it holds, is
                    // ignored (RFC 4918 §17), never read as properties.
                    1 | 2 => {
                        if !is_empty {
                            inner_xml(&mut r)?;
                        }
                        continue;
                    }
                    3 => {
                        let name = PropName { ns, local };
                        let change = if setting {
                            let xml = if is_empty {
                                String::new()
                            } else {
                                // `inner_xml` consumes the end tag.
                                inner_xml(&mut r)?
                            };
                            Change::Set(name, Stored { lang, xml })
                        } else {
                            if !is_empty {
                                inner_xml(&mut r)?;
                            }
                            Change::Remove(name)
                        };
                        changes.push(change);
                        continue;
                    }
                    _ => {}
                }
                if !is_empty {
                    depth += 1;
                    if let Some(scope) = langs.get_mut(depth) {
                        *scope = lang;
                    }
                }
            }
            Event::End(_) => depth = depth.checked_sub(1)?,
            Event::Eof => break,
            _ => {}
        }
    }
    (seen_root && instructed && depth == 0).then_some(changes)
}

/// The `xml:lang` an element carries, if any; `None` when it is malformed: a
/// language tag is letters, digits and `-` (BCP 47), or empty (none).
fn xml_lang(e: &quick_xml::events::BytesStart<'_>) -> Option<Option<String>> {
    for attr in e.attributes() {
        let attr = attr.ok()?;
        if attr.key.as_ref() == b"xml:lang" {
            let lang = attr.unescape_value().ok()?;
            if !lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return None;
            }
            return Some(Some(lang.into_owned()));
        }
    }
    Some(None)
}

/// The content of the element just started, up to and including its end tag,
/// re-written so that every element declares its namespace itself.
pub(super) fn inner_xml(r: &mut NsReader<&[u8]>) -> Option<String> {
    let mut out = String::new();
    let mut depth = 0usize;
    loop {
        let (resolved, event) = r.read_resolved_event().ok()?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let (ns, local) = element_name(&resolved, e)?;
                let _ = write!(out, "<{local} xmlns=\"{}\"", escape(&ns));
                // Attributes keep their namespaces (RFC 4918 §4.3): `xml:` ones as
                // they are, others under a prefix declared here.
                for (n, attr) in e.attributes().enumerate() {
                    let attr = attr.ok()?;
                    let key = attr.key.as_ref();
                    if key == b"xmlns" || key.starts_with(b"xmlns:") {
                        continue;
                    }
                    let value = escape(&attr.unescape_value().ok()?);
                    let name = String::from_utf8_lossy(key);
                    if !key.contains(&b':') || key.starts_with(b"xml:") {
                        let _ = write!(out, " {name}=\"{value}\"");
                        continue;
                    }
                    let (bound, attr_local) = r.resolve_attribute(attr.key);
                    if !matches!(bound, ResolveResult::Bound(_)) {
                        return None;
                    }
                    let attr_ns = namespace(&bound)?;
                    let _ = write!(
                        out,
                        " xmlns:a{n}=\"{}\" a{n}:{}=\"{value}\"",
                        escape(&attr_ns),
                        String::from_utf8_lossy(attr_local.as_ref())
                    );
                }
                if matches!(event, Event::Empty(_)) {
                    out.push_str("/>");
                } else {
                    out.push('>');
                    depth += 1;
                }
            }
            Event::End(ref e) => {
                if depth == 0 {
                    return Some(out);
                }
                depth -= 1;
                let _ = write!(
                    out,
                    "</{}>",
                    String::from_utf8_lossy(e.local_name().as_ref())
                );
            }
            Event::Text(ref t) => out.push_str(&escape(&t.unescape().ok()?)),
            Event::CData(ref t) => out.push_str(&escape(&String::from_utf8_lossy(t))),
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// `text` escaped for XML content and attribute values. Characters XML 1.0 cannot
/// carry at all, escaped or not (control characters a file name may hold), become
/// U+FFFD, so that one odd name never makes a whole listing unreadable.
fn escape(text: &str) -> String {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    };
    if text.chars().all(allowed) {
        return quick_xml::escape::escape(text).into_owned();
    }
    let carried: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
        .collect();
    quick_xml::escape::escape(&carried).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_property_values_keep_their_attributes_namespaces() {
        let body = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>\
                    <Z:b xmlns:Z=\"urn:z\"><Q:x xmlns:Q=\"urn:q\" Q:at=\"v\" plain=\"p\" \
                    xml:lang=\"fr\">t</Q:x></Z:b></D:prop></D:set></D:propertyupdate>";
        let changes = parse_propertyupdate(body).expect("parses");
        let Some(Change::Set(_, Stored { xml: value, .. })) = changes.first() else {
            panic!("one property set");
        };
        assert!(value.contains("xmlns=\"urn:q\""), "{value}");
        assert!(value.contains("plain=\"p\""), "{value}");
        assert!(value.contains("xml:lang=\"fr\""), "{value}");
        assert!(value.contains("xmlns:a1=\"urn:q\" a1:at=\"v\""), "{value}");
    }

    /// Elements it does not know are ignored with what they hold (RFC 4918 §17):
    /// the properties inside one are neither set nor removed.
    #[test]
    fn unknown_elements_hold_no_instructions() {
        let body = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" \
                    xmlns:Z=\"urn:z\"><D:set><D:prop><Z:a>1</Z:a></D:prop></D:set>\
                    <Z:future><D:prop><Z:b/></D:prop></Z:future>\
                    <D:remove><Z:other><Z:c/></Z:other></D:remove></D:propertyupdate>";
        let changes = parse_propertyupdate(body).expect("parses");
        let names: Vec<&str> = changes
            .iter()
            .map(|c| match c {
                Change::Set(n, _) | Change::Remove(n) => n.local.as_str(),
            })
            .collect();
        assert_eq!(names, ["a"]);
        let only_unknown = "<D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:z\">\
                            <Z:future><D:prop><Z:b/></D:prop></Z:future></D:propertyupdate>";
        assert!(parse_propertyupdate(only_unknown).is_none());
    }

    /// RFC 4918 §14.26: the language in scope is kept with the value, from the
    /// property's own element or any around it.
    #[test]
    fn values_keep_the_language_in_scope() {
        let body = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xml:lang=\"en\">\
                    <D:set><D:prop xml:lang=\"de\"><Z:a xmlns:Z=\"urn:z\">x</Z:a>\
                    <Z:b xmlns:Z=\"urn:z\" xml:lang=\"fr\">y</Z:b></D:prop></D:set>\
                    <D:set><D:prop><Z:c xmlns:Z=\"urn:z\"/></D:prop></D:set>\
                    </D:propertyupdate>";
        let langs: Vec<Option<String>> = parse_propertyupdate(body)
            .expect("parses")
            .into_iter()
            .map(|c| match c {
                Change::Set(_, stored) => stored.lang,
                Change::Remove(_) => None,
            })
            .collect();
        let some = |l: &str| Some(l.to_string());
        assert_eq!(langs, [some("de"), some("fr"), some("en")]);
        // Nothing but a tag's characters: the stored form could not be read back.
        let odd = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>\
                   <Z:a xmlns:Z=\"urn:z\" xml:lang=\"x\u{0}&lt;/D:prop&gt;\">x</Z:a>\
                   </D:prop></D:set></D:propertyupdate>";
        assert!(parse_propertyupdate(odd).is_none());
        let plain = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>\
                     <Z:a xmlns:Z=\"urn:z\">x</Z:a></D:prop></D:set></D:propertyupdate>";
        assert!(matches!(
            parse_propertyupdate(plain).as_deref(),
            Some([Change::Set(_, Stored { lang: None, .. })])
        ));
        for stored in [
            Stored {
                lang: Some("en-GB".into()),
                xml: "<b xmlns=\"\">x</b>".into(),
            },
            Stored {
                lang: None,
                xml: "text".into(),
            },
        ] {
            assert_eq!(Stored::decode(&stored.encode()), stored);
        }
    }

    /// A namespace name is an attribute value: its references are decoded.
    #[test]
    fn namespace_names_are_decoded() {
        let body = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"&#68;AV:\"><D:set>\
                    <D:prop><A:y xmlns:A=\"http://ex.com/?a=1&amp;b=2\">v</A:y></D:prop>\
                    </D:set></D:propertyupdate>";
        let changes = parse_propertyupdate(body).expect("parses");
        let Some(Change::Set(name, _)) = changes.first() else {
            panic!("one property set");
        };
        assert_eq!(name.ns, "http://ex.com/?a=1&b=2");
        let mut out = String::new();
        name.element("v", &mut out);
        assert_eq!(out, "<P:y xmlns:P=\"http://ex.com/?a=1&amp;b=2\">v</P:y>");
    }

    #[test]
    fn what_xml_cannot_carry_is_replaced() {
        assert_eq!(escape("a\u{1}b<c>"), "a\u{FFFD}b&lt;c&gt;");
        assert_eq!(escape("tab\tok"), "tab\tok");
    }

    #[test]
    fn propfind_bodies() {
        assert!(matches!(parse_propfind(""), Some(Wanted::All)));
        let some = parse_propfind(
            "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop>\
             <D:getcontentlength/><x:foo xmlns:x=\"http://example.com/\"/></D:prop></D:propfind>",
        );
        match some {
            Some(Wanted::Some(names)) => {
                assert_eq!(names[0], PropName::dav("getcontentlength"));
                assert_eq!(names[1].ns, "http://example.com/");
                assert_eq!(names[1].local, "foo");
            }
            _ => panic!("a prop list"),
        }
        for bad in [
            "<foo>",
            "<D:propfind xmlns:D=\"DAV:\"><D:prop><bar:foo xmlns:bar=\"\"/></D:prop></D:propfind>",
            "<D:propfind xmlns:D=\"DAV:\"><x:prop/></D:propfind>",
            "not xml",
        ] {
            assert!(parse_propfind(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn values_keep_their_namespaces() {
        let changes = parse_propertyupdate(
            "<D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"http://z/\"><D:set><D:prop>\
             <Z:p>a <Z:b attr=\"1\">x&amp;y</Z:b></Z:p></D:prop></D:set>\
             <D:remove><D:prop><Z:q/></D:prop></D:remove></D:propertyupdate>",
        )
        .expect("well-formed");
        match &changes[..] {
            [Change::Set(n, v), Change::Remove(r)] => {
                assert_eq!((n.ns.as_str(), n.local.as_str()), ("http://z/", "p"));
                assert_eq!(v.xml, "a <b xmlns=\"http://z/\" attr=\"1\">x&amp;y</b>");
                assert_eq!(r.local, "q");
            }
            _ => panic!("one set, one remove"),
        }
        let name = PropName {
            ns: "http://z/".into(),
            local: "p".into(),
        };
        assert_eq!(PropName::from_xattr(&name.xattr()), Some(name));
    }
}
