//! `--dev`: the preview loop. Nothing is cached by the browser (`Cache-Control:
//! no-store` on every response), and every HTML page reloads itself when a file
//! under the root changes; a change to stylesheets only swaps them in place.
//!
//! A watcher on the root (the `notify` crate: inotify on Linux) publishes changes on
//! a broadcast channel. Pages learn of them over server-sent events from
//! `/.wharf-dev/events`, through a small script at `/.wharf-dev/reload.js` that is
//! injected into HTML responses just before `</body>`. Both URLs are under a reserved
//! name no file can have, are answered before any rule or handler, and take only GET
//! and HEAD. A range of a page would be a range of the file without the script, so a
//! page asked for in part is sent whole (the router asks again without `Range`). Requests are
//! passed on without `Accept-Encoding`, so that HTML arrives as text the script can be
//! injected into; a page larger than 16 MiB is passed on as it is. A page's own
//! `Content-Security-Policy` headers are kept working: when one would refuse the
//! script or its event stream, exactly those are added to it (a nonce, or the URL
//! itself where a nonce would disable `'unsafe-inline'`). A policy in a `<meta>`
//! element is the page's own business and is not changed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::BodyExt as _;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::http::body::Body;
use crate::http::response;

/// Where the script and the event stream are.
pub const PREFIX: &str = "/.wharf-dev/";
const SCRIPT_PATH: &str = "/.wharf-dev/reload.js";
const EVENTS_PATH: &str = "/.wharf-dev/events";

/// HTML pages larger than this are passed on without the script.
const MAX_PAGE: usize = 16 * 1024 * 1024;
/// A comment line on idle event streams, so that a page that went away is noticed.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The page's side: one reload (or stylesheet swap) per burst of changes, as saving
/// a file is often several events.
const SCRIPT: &str = "\"use strict\";(function(){\
var es=new EventSource(\"/.wharf-dev/events\"),t=null,css=true;\
function later(onlyCss){css=css&&onlyCss;clearTimeout(t);t=setTimeout(function(){\
if(!css){location.reload();return;}css=true;\
document.querySelectorAll('link[rel~=\"stylesheet\"]').forEach(function(l){\
var u=new URL(l.href);u.searchParams.set(\"wharf-dev\",Date.now());l.href=u.href;});},50);}\
es.addEventListener(\"reload\",function(){later(false);});\
es.addEventListener(\"css\",function(){later(true);});\
})();\n";

/// What changed under the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Something a page may show: reload it.
    Reload,
    /// Stylesheets only: swap them.
    Style,
}

impl Change {
    fn event(self) -> &'static str {
        match self {
            Change::Reload => "event: reload\ndata: {}\n\n",
            Change::Style => "event: css\ndata: {}\n\n",
        }
    }
}

/// The running preview loop: the watcher and the channel it publishes on.
pub struct Dev {
    changes: broadcast::Sender<Change>,
    /// Cancelled when the process stops serving: every event stream ends then.
    ending: CancellationToken,
    /// Kept so the watch lasts as long as the process.
    _watcher: Mutex<notify::RecommendedWatcher>,
}

impl std::fmt::Debug for Dev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dev")
    }
}

impl Dev {
    /// Watches `root` (recursively) for changes; the event streams end with
    /// `ending`.
    pub fn start(root: &Path, ending: CancellationToken) -> Result<Arc<Dev>, String> {
        use notify::Watcher as _;
        let (changes, _) = broadcast::channel(64);
        let sender = changes.clone();
        let base = root.to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Some(change) = event.ok().and_then(|e| classify(&base, &e)) {
                    // No page listening is not an error.
                    let _ = sender.send(change);
                }
            })
            .map_err(|e| format!("--dev: cannot watch {}: {e}", root.display()))?;
        watcher
            .watch(root, notify::RecursiveMode::Recursive)
            .map_err(|e| format!("--dev: cannot watch {}: {e}", root.display()))?;
        Ok(Arc::new(Dev {
            changes,
            ending,
            _watcher: Mutex::new(watcher),
        }))
    }

    /// Tells every open page that something changed (what the watcher does).
    pub fn publish(&self, change: Change) {
        let _ = self.changes.send(change);
    }

    /// The answer for the loop's own URLs; `None` for every other request.
    pub fn endpoint(&self, req: &Parts) -> Option<Response<Body>> {
        let path = req.uri.path();
        if !path.starts_with(PREFIX) {
            return None;
        }
        let read = matches!(req.method, http::Method::GET | http::Method::HEAD);
        let mut res = match path {
            SCRIPT_PATH | EVENTS_PATH if !read => response::method_not_allowed("GET, HEAD"),
            SCRIPT_PATH => {
                let mut res = Response::new(Body::bytes(SCRIPT));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/javascript; charset=utf-8"),
                );
                res
            }
            EVENTS_PATH => self.events(),
            _ => response::error(StatusCode::NOT_FOUND),
        };
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(res)
    }

    /// An event stream that lasts until the page goes away.
    fn events(&self) -> Response<Body> {
        let mut changes = self.changes.subscribe();
        let ending = self.ending.clone();
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
        tokio::spawn(async move {
            // Sent at once, so the page knows it is connected; reconnect quickly.
            if tx
                .send(Ok(Bytes::from_static(b"retry: 500\n: connected\n\n")))
                .await
                .is_err()
            {
                return;
            }
            loop {
                let line: &'static str = tokio::select! {
                    change = changes.recv() => match change {
                        Ok(change) => change.event(),
                        // Missed some: whatever they were, a reload covers them.
                        Err(broadcast::error::RecvError::Lagged(_)) => Change::Reload.event(),
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    () = tokio::time::sleep(HEARTBEAT) => ": heartbeat\n\n",
                    () = tx.closed() => return,
                    // The page reconnects (to the next process, after an upgrade).
                    () = ending.cancelled() => return,
                };
                if tx
                    .send(Ok(Bytes::from_static(line.as_bytes())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let mut res = Response::new(Body::channel(rx));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        res
    }

    /// `res` as `--dev` sends it: never stored, and with the reload script in HTML.
    pub async fn finish(&self, req: &Parts, res: Response<Body>) -> Response<Body> {
        let mut res = if is_injectable(&res) {
            inject(req, res).await
        } else {
            res
        };
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// The change an event means, if it is one a page cares about: content created,
/// changed, renamed or removed, outside dot-folders (wharf's own temporary files
/// among them).
fn classify(base: &Path, event: &notify::Event) -> Option<Change> {
    use notify::EventKind;
    match event.kind {
        EventKind::Create(_) | EventKind::Remove(_) => {}
        EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => return None,
        EventKind::Modify(_) => {}
        _ => return None,
    }
    let visible: Vec<&PathBuf> = event
        .paths
        .iter()
        .filter(|p| {
            let rel = p.strip_prefix(base).unwrap_or(p);
            !rel.components().any(|c| {
                c.as_os_str()
                    .to_str()
                    .is_some_and(|name| name.starts_with('.'))
            })
        })
        .collect();
    if visible.is_empty() {
        return None;
    }
    let styles_only = visible
        .iter()
        .all(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("css")));
    Some(if styles_only {
        Change::Style
    } else {
        Change::Reload
    })
}

/// A whole HTML page, in identity coding.
pub fn is_injectable(res: &Response<Body>) -> bool {
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("text/html")
        });
    html && res.status() == StatusCode::OK
        && !res.headers().contains_key(header::CONTENT_ENCODING)
        && res.body().exact_len().is_none_or(|n| n <= MAX_PAGE as u64)
}

/// The page with the script tag before its last `</body>` (or at its end), its
/// length and policy adjusted, and its validators dropped (they describe the file,
/// not this).
async fn inject(req: &Parts, res: Response<Body>) -> Response<Body> {
    let (mut parts, mut body) = res.into_parts();
    // Read up to the limit; a longer page goes on as it is, what was read first.
    let mut page = BytesMut::new();
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    page.extend_from_slice(&data);
                }
                if page.len() > MAX_PAGE {
                    return Response::from_parts(parts, prefixed(page.freeze(), body));
                }
            }
            Some(Err(e)) => {
                tracing::warn!("--dev: page not read for the reload script: {e}");
                return response::error(StatusCode::BAD_GATEWAY);
            }
        }
    }
    let page = page.freeze();
    let host = req
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .filter(|h| is_plain_host(h));
    let policies: Vec<String> = parts
        .headers
        .get_all(header::CONTENT_SECURITY_POLICY)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let mut nonce = None;
    if !policies.is_empty() {
        parts.headers.remove(header::CONTENT_SECURITY_POLICY);
        for policy in policies {
            let policy = admit(&policy, host, &mut nonce);
            if let Ok(value) = HeaderValue::from_str(&policy) {
                parts.headers.append(header::CONTENT_SECURITY_POLICY, value);
            }
        }
    }
    let tag = match &nonce {
        Some(n) => format!("<script src=\"{SCRIPT_PATH}\" nonce=\"{n}\"></script>"),
        None => format!("<script src=\"{SCRIPT_PATH}\"></script>"),
    };
    let at = rfind_ignore_case(&page, b"</body>").unwrap_or(page.len());
    let mut out = BytesMut::with_capacity(page.len() + tag.len());
    out.extend_from_slice(&page[..at]);
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(&page[at..]);
    for name in [
        header::CONTENT_LENGTH,
        header::ETAG,
        header::LAST_MODIFIED,
        header::ACCEPT_RANGES,
    ] {
        parts.headers.remove(name);
    }
    Response::from_parts(parts, Body::bytes(out.freeze()))
}

/// `head` followed by what is left of `rest`.
fn prefixed(head: Bytes, mut rest: Body) -> Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::spawn(async move {
        if tx.send(Ok(head)).await.is_err() {
            return;
        }
        while let Some(frame) = rest.frame().await {
            let item = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => Ok(data),
                    Err(_) => continue,
                },
                Err(e) => Err(e),
            };
            if tx.send(item).await.is_err() {
                return;
            }
        }
    });
    Body::channel(rx)
}

/// A host (and port) fit to name in a policy: letters, digits, dots, dashes,
/// brackets and colons only, not empty.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

fn rfind_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|w| w.eq_ignore_ascii_case(needle))
}

/// `policy` changed so that it admits the reload script and its event stream. A
/// nonce, when one is needed, is `nonce` (made on first use and shared by every
/// policy of the page, which the script tag then carries). Nothing is added that the
/// policy already allows. `host` is the request's `Host`, when it is fit to name in
/// a policy; without it, `'self'` is added instead of the exact URL.
fn admit(policy: &str, host: Option<&str>, nonce: &mut Option<String>) -> String {
    let mut directives: Vec<(String, Vec<String>)> = policy
        .split(';')
        .filter_map(|d| {
            let mut words = d.split_ascii_whitespace();
            let name = words.next()?.to_ascii_lowercase();
            Some((name, words.map(str::to_owned).collect()))
        })
        .collect();
    let url = |path: &str| host.map_or_else(|| "'self'".to_string(), |h| format!("{h}{path}"));
    // Scripts: the first of these that the policy has decides.
    if let Some((at, values)) = effective(
        &directives,
        &["script-src-elem", "script-src", "default-src"],
    ) {
        if !allows_same_origin(&values) {
            let lower: Vec<String> = values.iter().map(|v| v.to_ascii_lowercase()).collect();
            let has_token = lower
                .iter()
                .any(|v| v.starts_with("'nonce-") || v.starts_with("'sha"));
            let inline = lower.iter().any(|v| v == "'unsafe-inline'");
            // With 'strict-dynamic' only a nonce lets a script in (and
            // 'unsafe-inline' is ignored anyway).
            let dynamic = lower.iter().any(|v| v == "'strict-dynamic'");
            let addition = if inline && !has_token && !dynamic {
                // A nonce would switch 'unsafe-inline' off: name the script instead.
                url(SCRIPT_PATH)
            } else {
                format!("'nonce-{}'", nonce.get_or_insert_with(new_nonce))
            };
            add_to(&mut directives, at, "script-src", addition);
        }
    }
    if let Some((at, values)) = effective(&directives, &["connect-src", "default-src"]) {
        if !allows_same_origin(&values) {
            add_to(&mut directives, at, "connect-src", url(EVENTS_PATH));
        }
    }
    directives
        .iter()
        .map(|(name, values)| {
            if values.is_empty() {
                name.clone()
            } else {
                format!("{name} {}", values.join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The index and values of the first of `names` present.
fn effective(directives: &[(String, Vec<String>)], names: &[&str]) -> Option<(usize, Vec<String>)> {
    names.iter().find_map(|name| {
        directives
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| (i, directives[i].1.clone()))
    })
}

/// Whether a source list lets a same-origin URL through.
fn allows_same_origin(values: &[String]) -> bool {
    let lower: Vec<String> = values.iter().map(|v| v.to_ascii_lowercase()).collect();
    !lower.iter().any(|v| v == "'strict-dynamic'")
        && lower.iter().any(|v| v == "'self'" || v == "*")
}

/// Adds `value` to the directive at `at`; when that is `default-src`, to a new
/// `kind` directive that starts from its values instead (changing `default-src`
/// would change every other fetch it governs).
fn add_to(directives: &mut Vec<(String, Vec<String>)>, at: usize, kind: &str, value: String) {
    if directives[at].0 == "default-src" {
        let mut values: Vec<String> = directives[at]
            .1
            .iter()
            .filter(|v| v.as_str() != "'none'")
            .cloned()
            .collect();
        values.push(value);
        directives.push((kind.to_string(), values));
    } else {
        directives[at].1.retain(|v| v != "'none'");
        directives[at].1.push(value);
    }
}

fn new_nonce() -> String {
    use aws_lc_rs::rand::SecureRandom as _;
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .is_err()
    {
        // Without randomness a fixed nonce is no protection; it still lets the script
        // run, and this is a development mode.
        bytes = *b"wharf-dev-nonce!";
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(policy: &str, host: Option<&str>) -> (String, Option<String>) {
        let mut nonce = None;
        let policy = admit(policy, host, &mut nonce);
        (policy, nonce)
    }

    #[test]
    fn policies_that_allow_self_are_kept() {
        let (p, n) = admitted("default-src 'self'", Some("h:1"));
        assert_eq!((p.as_str(), n), ("default-src 'self'", None));
        let (p, n) = admitted("img-src *", Some("h:1"));
        assert_eq!((p.as_str(), n), ("img-src *", None));
    }

    #[test]
    fn strict_policies_get_a_nonce_and_the_event_url() {
        let (p, n) = admitted("default-src 'none'; style-src 'unsafe-inline'", Some("h:1"));
        let n = n.expect("a nonce");
        assert_eq!(
            p,
            format!(
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{n}'; \
                 connect-src h:1/.wharf-dev/events"
            )
        );
        let (p, n) = admitted(
            "script-src 'strict-dynamic' 'nonce-abc'; connect-src 'self'",
            Some("h"),
        );
        let n = n.expect("a nonce");
        assert_eq!(
            p,
            format!("script-src 'strict-dynamic' 'nonce-abc' 'nonce-{n}'; connect-src 'self'")
        );
        // 'strict-dynamic' ignores URLs: a nonce even beside 'unsafe-inline'.
        let (p, n) = admitted("script-src 'unsafe-inline' 'strict-dynamic'", Some("h"));
        let n = n.expect("a nonce");
        assert!(p.ends_with(&format!("'nonce-{n}'")), "{p}");
    }

    #[test]
    fn unsafe_inline_is_not_switched_off() {
        let (p, n) = admitted(
            "script-src 'unsafe-inline' https://cdn.example",
            Some("h:8"),
        );
        assert_eq!(n, None);
        assert_eq!(
            p,
            "script-src 'unsafe-inline' https://cdn.example h:8/.wharf-dev/reload.js"
        );
        // Without a usable host, the site's own origin.
        let (p, _) = admitted("script-src 'unsafe-inline'", None);
        assert_eq!(p, "script-src 'unsafe-inline' 'self'");
    }

    #[test]
    fn hosts_that_could_change_a_policy_are_not_used() {
        assert!(is_plain_host("example.com:8080"));
        assert!(is_plain_host("[::1]:80"));
        assert!(!is_plain_host(""));
        assert!(!is_plain_host("evil; script-src *"));
    }

    #[test]
    fn changes_are_classified() {
        use notify::event::{CreateKind, DataChange, MetadataKind, ModifyKind};
        let base = Path::new("/srv");
        let event = |kind, path: &str| notify::Event::new(kind).add_path(PathBuf::from(path));
        let data = notify::EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert_eq!(
            classify(base, &event(data, "/srv/a.html")),
            Some(Change::Reload)
        );
        assert_eq!(
            classify(base, &event(data, "/srv/s/x.CSS")),
            Some(Change::Style)
        );
        assert_eq!(classify(base, &event(data, "/srv/.wharf-tus/1")), None);
        let meta = notify::EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
        assert_eq!(classify(base, &event(meta, "/srv/a.html")), None);
        let created = notify::EventKind::Create(CreateKind::File);
        assert_eq!(
            classify(base, &event(created, "/srv/n.txt")),
            Some(Change::Reload)
        );
    }
}
