//! WebDAV write locks (RFC 4918 §6, §9.10, §9.11, §10.4): LOCK, UNLOCK, and the `If`
//! header that carries lock tokens and entity tags.
//!
//! Locks are kept in memory (a restart releases them, as their timeouts would):
//! exclusive or shared, depth 0 or infinity, at most an hour before they must be
//! refreshed. A change to a locked resource, or to the membership of a locked folder,
//! needs one of the lock's tokens in `If`, else 423; an `If` header whose conditions
//! all fail is 412. LOCK on a name that does not exist yet makes an empty file there,
//! which is what file managers expect before they write.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SecureRandom as _;
use http::header::{HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use quick_xml::events::Event;

use super::body::read_xml;
use super::{io_status, Uploads};
use crate::fs::write::EntryType;
use crate::fs::Node;
use crate::handlers::Request;
use crate::http::body::Body;
use crate::http::etag::EntityTag;
use crate::http::path::SitePath;
use crate::http::response;

/// The `supportedlock` property's value.
pub const SUPPORTED: &str = "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope>\
<D:locktype><D:write/></D:locktype></D:lockentry><D:lockentry><D:lockscope><D:shared/>\
</D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>";

/// Locks held at once, at most: a client that keeps taking them gets 503 rather
/// than grow the table without bound.
const MAX_LOCKS: usize = 10_000;

/// The longest a lock lasts without a refresh.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// One lock.
#[derive(Debug, Clone)]
struct Lock {
    token: String,
    root: Vec<Vec<u8>>,
    root_url: String,
    deep: bool,
    exclusive: bool,
    /// The `owner` element's content, as sent.
    owner: String,
    timeout: Duration,
    expires: Instant,
}

impl Lock {
    /// Whether the lock applies to `path` itself.
    fn covers(&self, path: &[Vec<u8>]) -> bool {
        path == self.root.as_slice() || (self.deep && path.starts_with(&self.root))
    }

    fn active(&self, out: &mut String) {
        let scope = if self.exclusive {
            "exclusive"
        } else {
            "shared"
        };
        let depth = if self.deep { "infinity" } else { "0" };
        let _ = write!(
            out,
            "<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:{scope}/>\
             </D:lockscope><D:depth>{depth}</D:depth>{}<D:timeout>Second-{}</D:timeout>\
             <D:locktoken><D:href>{}</D:href></D:locktoken><D:lockroot><D:href>{}</D:href>\
             </D:lockroot></D:activelock>",
            if self.owner.is_empty() {
                String::new()
            } else {
                format!("<D:owner>{}</D:owner>", self.owner)
            },
            // What is left of it (RFC 4918 §14.29), at least a second while held.
            self.expires
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
                .ceil()
                .max(1.0) as u64,
            self.token,
            self.root_url,
        );
    }
}

/// The locks held now.
#[derive(Debug, Default)]
pub struct Locks {
    table: Mutex<Vec<Lock>>,
}

impl Locks {
    fn live(&self) -> std::sync::MutexGuard<'_, Vec<Lock>> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        table.retain(|l| l.expires > now);
        table
    }

    /// Whether `change` at `path` needs a lock token the request did not submit.
    pub fn blocks(&self, path: &SitePath, headers: &HeaderMap, change: Change) -> bool {
        let submitted = submitted_tokens(headers);
        let table = self.live();
        let segments = path.segments();
        let membership = change == Change::Existence && !segments.is_empty();
        unsubmitted(&table, segments, &submitted)
            || (membership && unsubmitted(&table, &segments[..segments.len() - 1], &submitted))
    }

    /// Like [`Locks::blocks`], for the existence of the whole tree at `path`
    /// (DELETE, MOVE, the destination of COPY): what is locked below counts too.
    pub fn blocks_tree(&self, path: &SitePath, headers: &HeaderMap) -> bool {
        let submitted = submitted_tokens(headers);
        let below = {
            let table = self.live();
            let segments = path.segments();
            table.iter().any(|l| {
                l.root.len() > segments.len()
                    && l.root.starts_with(segments)
                    && unsubmitted(&table, &l.root, &submitted)
            })
        };
        below || self.blocks(path, headers, Change::Existence)
    }

    /// The 423 for a change at `paths` that [`Locks::blocks`] or
    /// [`Locks::blocks_tree`] refused, naming a lock that stood in its way (RFC 4918
    /// §16, `lock-token-submitted`).
    pub fn locked(&self, paths: &[&SitePath], headers: &HeaderMap) -> Response<Body> {
        let submitted = submitted_tokens(headers);
        let root = self.live().iter().find_map(|l| {
            let blocking = paths.iter().any(|path| {
                let segments = path.segments();
                let parent = &segments[..segments.len().saturating_sub(1)];
                l.covers(segments) || l.covers(parent) || l.root.starts_with(segments)
            });
            (blocking && !submitted.contains(&l.token)).then(|| l.root_url.clone())
        });
        failed_condition(StatusCode::LOCKED, "lock-token-submitted", root)
    }

    /// The answer to a LOCK that conflicts with a lock held on `path`, below it, or
    /// on the folder a new name would join: 423 (RFC 4918 §16,
    /// `no-conflicting-lock`), or, when only a lock below stands in the way of a
    /// deep one, 207 with 423 for that member and 424 for `path` (§9.10.6: "a
    /// Multi-Status response with a 'response' element for at least one resource
    /// that prevented the lock").
    fn conflicting(&self, path: &SitePath) -> Response<Body> {
        let segments = path.segments();
        let parent = &segments[..segments.len().saturating_sub(1)];
        let table = self.live();
        let on_path = table
            .iter()
            .find(|l| l.covers(segments) || l.covers(parent));
        if let Some(lock) = on_path {
            return failed_condition(
                StatusCode::LOCKED,
                "no-conflicting-lock",
                Some(lock.root_url.clone()),
            );
        }
        let Some(below) = table.iter().find(|l| l.root.starts_with(segments)) else {
            return failed_condition(StatusCode::LOCKED, "no-conflicting-lock", None);
        };
        let href = |url: &str| quick_xml::escape::escape(url).into_owned();
        let mut xml = super::props::multistatus_head();
        xml.push_str(&format!(
            "<D:response><D:href>{}</D:href><D:status>HTTP/1.1 423 Locked</D:status>\
             <D:error><D:no-conflicting-lock/></D:error></D:response>\
             <D:response><D:href>{}</D:href><D:status>HTTP/1.1 424 Failed Dependency</D:status>\
             </D:response></D:multistatus>",
            href(&below.root_url),
            href(&path.to_url(true)),
        ));
        super::props::multistatus(xml)
    }

    /// Forgets the locks on `path` and below (it was deleted or moved away).
    pub fn forget_tree(&self, path: &SitePath) {
        self.live().retain(|l| !l.root.starts_with(path.segments()));
    }

    /// The `lockdiscovery` property's value for `path`.
    pub fn discovery(&self, path: &SitePath) -> String {
        let mut out = String::new();
        for lock in self.live().iter().filter(|l| l.covers(path.segments())) {
            lock.active(&mut out);
        }
        out
    }

    /// Whether `token` is a lock on `path` now.
    fn holds(&self, path: &[Vec<u8>], token: &str) -> bool {
        self.live()
            .iter()
            .any(|l| l.token == token && l.covers(path))
    }
}

/// `status` with the precondition `element` of RFC 4918 §16 that failed, naming
/// `root`, the locked resource, when known.
fn failed_condition(status: StatusCode, element: &str, root: Option<String>) -> Response<Body> {
    let href = root.map_or_else(String::new, |url| {
        format!(
            "<D:href>{}</D:href>",
            quick_xml::escape::escape(url.as_str())
        )
    });
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\"><D:{element}>{href}</D:{element}></D:error>"
    );
    let mut res = Response::new(Body::bytes(xml));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    res
}

/// What a request changes at its path, which decides the locks it answers to
/// (RFC 4918 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The content or properties of what is there (PUT over a file, PROPPATCH):
    /// the locks on the resource. A depth-0 lock on its folder protects the
    /// folder's membership only, not its members' content.
    Content,
    /// Whether it is there at all (a new name, MKCOL, DELETE): its folder's
    /// membership changes too, so the folder's locks count as well.
    Existence,
}

/// Whether `target` is locked and none of its locks' tokens was submitted. One is
/// enough: each holder of a shared lock may write (RFC 4918 §6.2).
fn unsubmitted(table: &[Lock], target: &[Vec<u8>], submitted: &[String]) -> bool {
    let mut covering = table.iter().filter(|l| l.covers(target)).peekable();
    covering.peek().is_some() && !covering.any(|l| submitted.contains(&l.token))
}

/// Every lock token named in the `If` header: submitted, whether or not its condition
/// holds (RFC 4918 §10.4.1).
fn submitted_tokens(headers: &HeaderMap) -> Vec<String> {
    let mut tokens = Vec::new();
    for value in headers.get_all("if") {
        let text = String::from_utf8_lossy(value.as_bytes());
        let mut rest = text.as_ref();
        while let Some(start) = rest.find('<') {
            let Some(end) = rest[start..].find('>') else {
                break;
            };
            let inner = &rest[start + 1..start + end];
            if inner.starts_with("opaquelocktoken:") || inner.starts_with("urn:uuid:") {
                tokens.push(inner.to_string());
            }
            rest = &rest[start + end + 1..];
        }
    }
    tokens
}

/// One condition of an `If` list.
#[derive(Debug)]
enum Condition {
    Token(String),
    Etag(String),
}

/// An `If` header: lists of (negated?, condition), each with the resource it is
/// about (`None`: the request's).
type IfLists = Vec<(Option<String>, Vec<(bool, Condition)>)>;

/// Parses the `If` header (RFC 4918 §10.4.2); `None` when malformed.
fn parse_if(value: &str) -> Option<IfLists> {
    let mut lists = Vec::new();
    let mut tag: Option<String> = None;
    let mut rest = value.trim_start();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            let end = after.find('>')?;
            tag = Some(after[..end].to_string());
            rest = after[end + 1..].trim_start();
        } else if let Some(after) = rest.strip_prefix('(') {
            let end = after.find(')')?;
            let mut body = after[..end].trim();
            let mut conditions = Vec::new();
            while !body.is_empty() {
                let mut not = false;
                if let Some(after_not) = body.strip_prefix("Not") {
                    not = true;
                    body = after_not.trim_start();
                }
                if let Some(b) = body.strip_prefix('<') {
                    let e = b.find('>')?;
                    conditions.push((not, Condition::Token(b[..e].to_string())));
                    body = b[e + 1..].trim_start();
                } else if let Some(b) = body.strip_prefix('[') {
                    let e = b.find(']')?;
                    conditions.push((not, Condition::Etag(b[..e].trim().to_string())));
                    body = b[e + 1..].trim_start();
                } else {
                    return None;
                }
            }
            if conditions.is_empty() {
                return None;
            }
            lists.push((tag.clone(), conditions));
            rest = after[end + 1..].trim_start();
        } else {
            return None;
        }
    }
    (!lists.is_empty()).then_some(lists)
}

/// Evaluates the request's `If` header, blocking (entity tags may need hashing):
/// `Err(412)` when no list holds, `Err(400)` when it is malformed.
pub fn check_if(up: &Uploads, path: &SitePath, headers: &HeaderMap) -> Result<(), StatusCode> {
    let Some(value) = headers.get("if") else {
        return Ok(());
    };
    let text = value.to_str().map_err(|_| StatusCode::BAD_REQUEST)?;
    let lists = parse_if(text).ok_or(StatusCode::BAD_REQUEST)?;
    let holds = lists.iter().any(|(tag, conditions)| {
        // A tagged list is about the resource its tag names (by path).
        let resource = match tag {
            None => Some(path.clone()),
            Some(url) => tagged_path(url),
        };
        let Some(resource) = resource else {
            return false;
        };
        conditions.iter().all(|(not, condition)| {
            let met = match condition {
                Condition::Token(token) => up.locks.holds(resource.segments(), token),
                Condition::Etag(etag) => {
                    current_etag(up, &resource).is_some_and(|e| e.contains(etag))
                }
            };
            met != *not
        })
    });
    if holds {
        Ok(())
    } else {
        Err(StatusCode::PRECONDITION_FAILED)
    }
}

/// The path a tagged list's URL names (absolute or absolute-path).
fn tagged_path(url: &str) -> Option<SitePath> {
    let path = match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            &after[after.find('/')?..]
        }
        None => url,
    };
    SitePath::parse(path, true).ok()
}

/// The entity tags a GET of `path` may carry (one per encoding), quotes included.
fn current_etag(up: &Uploads, path: &SitePath) -> Option<Vec<String>> {
    match up.root.open(path).ok()? {
        Node::File(open) => {
            let tag = up.files.etag(&open).ok()?;
            let tags = tag.with_encodings();
            let text = |t: &EntityTag| t.header_value().to_str().ok().map(String::from);
            tags.iter().map(text).collect()
        }
        Node::Dir(_) => None,
    }
}

/// LOCK: a new lock, or the refresh of one named in `If`.
pub async fn lock(up: Arc<Uploads>, req: Request<'_>) -> Response<Body> {
    let Request {
        head,
        path,
        mut body,
        ..
    } = req;
    let deep = match head.headers.get("depth").map(|v| v.as_bytes()) {
        None => true,
        Some(d) if d.eq_ignore_ascii_case(b"infinity") => true,
        Some(b"0") => false,
        Some(_) => return response::error(StatusCode::BAD_REQUEST),
    };
    let timeout = requested_timeout(&head.headers);
    let xml = match read_xml(&mut body, 64 * 1024, up.settings.body_timeout).await {
        Ok(xml) => xml,
        Err(status) => return response::error(status),
    };
    let headers = head.headers.clone();
    let method = head.method.clone();
    let asked = path.clone();
    let answer = up
        .run(move |up| -> Result<(Lock, Granted), StatusCode> {
            // `If-Match`, `If-Unmodified-Since` and the like hold for a LOCK as
            // for any other method (RFC 9110 §13.2.1).
            up.preconditions(&path, &method, &headers)?;
            if xml.trim().is_empty() {
                // A refresh: the token is in If (RFC 4918 §9.10.2); a LOCK with
                // neither a body nor an If is malformed.
                if !headers.contains_key("if") {
                    return Err(StatusCode::BAD_REQUEST);
                }
                let submitted = submitted_tokens(&headers);
                let mut table = up.locks.live();
                let lock = table
                    .iter_mut()
                    .find(|l| submitted.contains(&l.token) && l.covers(path.segments()))
                    .ok_or(StatusCode::PRECONDITION_FAILED)?;
                lock.timeout = timeout;
                lock.expires = Instant::now() + timeout;
                return Ok((lock.clone(), Granted::Refreshed));
            }
            let (exclusive, owner) = parse_lockinfo(&xml).ok_or(StatusCode::BAD_REQUEST)?;
            // Lock-null: a name that does not exist yet becomes an empty file, once
            // the lock is known to be granted.
            let missing = match path.split_last() {
                // A name with a `/` after it names a folder; none is there, and a
                // lock makes a file (RFC 4918 §7.3), as a PUT of it is refused.
                Some(_) if path.has_trailing_slash() && up.open(&path).is_err() => {
                    return Err(StatusCode::CONFLICT);
                }
                Some((parent, name)) => {
                    let dir =
                        up.root
                            .write_dir(&parent, false)
                            .map_err(|e| match e.kind() {
                                std::io::ErrorKind::NotFound
                                | std::io::ErrorKind::NotADirectory => StatusCode::CONFLICT,
                                _ => io_status(&e),
                            })?;
                    (dir.entry_type(name).map_err(|e| io_status(&e))? == EntryType::Missing)
                        .then(|| (dir, name.to_vec()))
                }
                None => None,
            };
            if missing.is_some() && up.locks.blocks(&path, &headers, Change::Existence) {
                return Err(StatusCode::LOCKED);
            }
            let mut table = up.locks.live();
            let segments = path.segments();
            let conflict = table.iter().any(|l| {
                let overlaps = l.covers(segments) || (deep && l.root.starts_with(segments));
                overlaps && (l.exclusive || exclusive)
            });
            if conflict {
                return Err(StatusCode::LOCKED);
            }
            if table.len() >= MAX_LOCKS {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            let granted = if missing.is_some() {
                Granted::Created
            } else {
                Granted::New
            };
            if let Some((dir, name)) = missing {
                let temp = dir.temp_file().map_err(|e| io_status(&e))?;
                temp.persist(&name, false).map_err(|e| io_status(&e))?;
            }
            let is_dir = matches!(up.root.open(&path), Ok(Node::Dir(_)));
            let lock = Lock {
                token: new_token().ok_or(StatusCode::INTERNAL_SERVER_ERROR)?,
                root: segments.to_vec(),
                root_url: path.to_url(is_dir),
                deep,
                exclusive,
                owner,
                timeout,
                expires: Instant::now() + timeout,
            };
            table.push(lock.clone());
            Ok((lock, granted))
        })
        .await;
    let (lock, granted) = match answer {
        Ok(done) => done,
        Err(StatusCode::LOCKED) => return up.locks.conflicting(&asked),
        Err(status) => return response::error(status),
    };
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>",
    );
    lock.active(&mut xml);
    xml.push_str("</D:lockdiscovery></D:prop>");
    let mut res = Response::new(Body::bytes(xml));
    *res.status_mut() = if granted == Granted::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    // A refresh's client has the token already (RFC 4918 §9.10.2).
    if granted != Granted::Refreshed {
        if let Ok(token) = HeaderValue::from_str(&format!("<{}>", lock.token)) {
            res.headers_mut().insert("lock-token", token);
        }
    }
    res
}

/// What a LOCK request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Granted {
    /// A lock on what was there.
    New,
    /// A lock on a name that did not exist, now an empty file.
    Created,
    /// More time for a lock the client holds.
    Refreshed,
}

/// UNLOCK: releases the lock named in `Lock-Token`.
pub async fn unlock(up: Arc<Uploads>, req: Request<'_>) -> Response<Body> {
    let token = req
        .head
        .headers
        .get("lock-token")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        });
    let Some(token) = token else {
        return response::error(StatusCode::BAD_REQUEST);
    };
    let path = req.path.clone();
    let mut table = up.locks.live();
    let before = table.len();
    table.retain(|l| !(l.token == token && l.covers(path.segments())));
    if table.len() < before {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NO_CONTENT;
        res
    } else {
        // The token names no lock on this resource (RFC 4918 §9.11.1).
        failed_condition(StatusCode::CONFLICT, "lock-token-matches-request-uri", None)
    }
}

/// The timeout asked for in `Timeout` (`Second-N` or `Infinite`), at most an hour.
fn requested_timeout(headers: &HeaderMap) -> Duration {
    let asked = headers
        .get("timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The grammar's literals are case-insensitive (RFC 5234 §2.3).
            v.split(',').map(str::trim).find_map(|t| {
                if t.eq_ignore_ascii_case("Infinite") {
                    return Some(MAX_TIMEOUT);
                }
                let (unit, n) = t.split_at_checked("Second-".len())?;
                unit.eq_ignore_ascii_case("Second-")
                    .then(|| n.parse::<u64>().ok())?
                    .map(Duration::from_secs)
            })
        });
    asked.unwrap_or(MAX_TIMEOUT).min(MAX_TIMEOUT)
}

/// A new lock token, random (RFC 4918 §6.5: unique across all time).
fn new_token() -> Option<String> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut b).ok()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "opaquelocktoken:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// The `lockinfo` body: whether the lock is exclusive, and the owner element's
/// content; `None` when malformed or not a write lock.
fn parse_lockinfo(xml: &str) -> Option<(bool, String)> {
    let mut r = quick_xml::NsReader::from_str(xml);
    let mut exclusive = None;
    let mut write = false;
    let mut owner = String::new();
    let mut stack: Vec<String> = Vec::new();
    loop {
        let (resolved, event) = r.read_resolved_event().ok()?;
        let dav = matches!(&resolved, quick_xml::name::ResolveResult::Bound(ns) if ns.as_ref() == b"DAV:");
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let parent = stack.last().map(String::as_str);
                match (parent, local.as_str()) {
                    (None, "lockinfo") if dav => {}
                    (None, _) => return None,
                    (Some("lockscope"), "exclusive") if dav => exclusive = Some(true),
                    (Some("lockscope"), "shared") if dav => exclusive = Some(false),
                    (Some("locktype"), "write") if dav => write = true,
                    (Some("lockinfo"), "owner") if dav && matches!(event, Event::Start(_)) => {
                        owner = super::props::inner_xml(&mut r)?;
                        continue;
                    }
                    _ => {}
                }
                if matches!(event, Event::Start(_)) {
                    stack.push(local);
                }
            }
            Event::End(_) => {
                stack.pop()?;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    (write && stack.is_empty()).then_some((exclusive?, owner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_headers_parse() {
        let lists = parse_if("(<opaquelocktoken:a> [\"e\"]) (Not <DAV:no-lock>)").unwrap();
        assert_eq!(lists.len(), 2);
        assert!(matches!(&lists[1].1[0], (true, Condition::Token(t)) if t == "DAV:no-lock"));
        let tagged = parse_if("<http://h/x> (<opaquelocktoken:b>)").unwrap();
        assert_eq!(tagged[0].0.as_deref(), Some("http://h/x"));
        for bad in ["", "(", "()", "junk", "(<a>"] {
            assert!(parse_if(bad).is_none(), "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            "if",
            HeaderValue::from_static("(<opaquelocktoken:x>) (<urn:uuid:y>)"),
        );
        assert_eq!(submitted_tokens(&h), ["opaquelocktoken:x", "urn:uuid:y"]);
    }

    #[test]
    fn lockinfo_bodies() {
        let xml = "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope>\
                   <D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>\
                   <D:owner>me &amp; you</D:owner></D:lockinfo>";
        assert_eq!(parse_lockinfo(xml), Some((true, "me &amp; you".into())));
        assert_eq!(parse_lockinfo("<x/>"), None);
    }
}
