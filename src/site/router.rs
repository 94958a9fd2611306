//! From a parsed request to exactly one handler, and back.
//!
//! The router owns what is the same for every handler: the request checks
//! ([`checks`]), the method policy (405 with the handler's `Allow`, 501 for unknown
//! methods), parsing the path into a [`SitePath`], `OPTIONS`, and with a configuration
//! file the rules around the handler. It reaches handlers only through
//! [`Handlers`]' seam.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use crate::handlers::{Access, Destination, Handler, Handlers, ReadPolicy, Request};
use crate::http::body::Body;
use crate::http::client::Client;
use crate::http::negotiate;
use crate::http::path::{PathError, SitePath};
use crate::http::request_body::RequestBody;
use crate::http::response;
use crate::log::access::AccessLog;
use crate::site::auth::{self, Verdict};
use crate::site::checks::{self, HeadLimits};
use crate::site::cors::Cors;
use crate::site::cross_origin;
use crate::site::dev;
use crate::site::methods::{self, options_answer};
use crate::site::rules::{self, Site};

/// How many local redirects one request may follow.
const MAX_LOCAL_REDIRECTS: usize = 10;

/// What the site is told at startup.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether dotfiles are served (else their paths are 404).
    pub hidden: bool,
    /// Limits on the request head.
    pub limits: HeadLimits,
    /// Whether the site is served over HTTPS (for HSTS).
    pub https: bool,
    /// What may be changed where no rule says otherwise.
    pub access: Access,
    /// Path rules, error pages and header presets from the configuration file.
    pub rules: Arc<Site>,
    /// `--dev`'s preview loop, when on.
    pub dev: Option<Arc<dev::Dev>>,
}

/// Shared, immutable state for every request.
#[derive(Debug)]
pub struct Router {
    settings: Settings,
    handlers: Handlers,
    /// Where exchanges are logged.
    log: AccessLog,
    /// Password verifications allowed at once.
    auth_permits: tokio::sync::Semaphore,
    /// Error pages that name a folder without an index file, found when the router
    /// is built (never by the event loop at each error): its listing is no page.
    listing_pages: Vec<String>,
}

/// The site's current router, swapped whole when the configuration is reloaded:
/// each request loads it once and keeps it to the end, so it sees the old
/// configuration or the new one, never a mix.
pub type Routers = Arc<arc_swap::ArcSwap<Router>>;

/// Who sent a request, and how.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client's address.
    pub remote: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The port the connection came in on (CGI's `SERVER_PORT`).
    pub local_port: u16,
    /// The connection, for handlers that stop when the client leaves.
    pub client: Client,
}

/// What [`Router::answer_now`] could decide.
pub enum Answer {
    /// The response, ready.
    Now(Response<Body>),
    /// What is left to do, by [`Router::answer`].
    Later(Pending),
}

/// A request [`Router::answer_now`] could not answer without waiting.
pub struct Pending(Left);

enum Left {
    /// A static path the hot cache could not answer: the blocking pool must.
    Uncached(SitePath),
    /// The site has rules, which may authenticate (and so wait): all of it is async.
    WithRules,
    /// `--dev`: every request is answered as usual, then finished by the preview loop.
    Dev,
}

impl Router {
    /// The site answering with `handlers`, logging to `log`.
    pub fn new(settings: Settings, handlers: Handlers, log: AccessLog) -> Router {
        let mut router = Router {
            settings,
            handlers,
            log,
            auth_permits: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
            listing_pages: Vec::new(),
        };
        let listing_pages = router
            .settings
            .rules
            .error_pages
            .iter()
            .map(|(_, page)| page)
            .filter(|page| matches!(router.handler_for(page), Handler::Static(_)))
            .filter(|page| {
                SitePath::parse(page, router.settings.hidden).is_ok_and(|p| {
                    matches!(router.handlers.root().open(&p), Ok(crate::fs::Node::Dir(_)))
                        && !crate::handlers::static_files::is_page(router.handlers.root(), &p)
                })
            })
            .cloned()
            .collect();
        router.listing_pages = listing_pages;
        router
    }

    /// What keeps the site from being ready to serve (for `/readyz`): each proxy
    /// route whose upstreams are all resting after failures.
    pub fn not_ready(&self) -> Vec<String> {
        self.settings
            .rules
            .rules
            .iter()
            .filter_map(|rule| match &rule.handler {
                Some(Handler::Proxy(route)) if !route.healthy() => Some(format!(
                    "proxy {}: every upstream is resting after failures",
                    rule.path.as_str()
                )),
                _ => None,
            })
            .collect()
    }

    /// The handlers, whose state a reloaded router keeps.
    pub fn handlers(&self) -> &Handlers {
        &self.handlers
    }

    /// The served folder.
    pub fn root(&self) -> &crate::fs::Root {
        self.handlers.root()
    }

    /// Where exchanges are logged.
    pub fn log(&self) -> &AccessLog {
        &self.log
    }

    /// Settings that are valid but probably not what the operator meant: custom error
    /// pages that name nothing under the root (the plain page is sent instead), users
    /// whose password hash is the example file's (whose password it prints), and
    /// access rules whose path names a folder without its `/` (they guard that one
    /// URL, which only redirects to the folder, and nothing in it).
    pub fn warnings(&self) -> Vec<String> {
        let root = self.handlers.root();
        let bare_folders = self.settings.rules.rules.iter().filter_map(|rule| {
            let guards = rule.auth.is_some() || !rule.allow.is_empty() || !rule.deny.is_empty();
            let pattern = rule.path.as_str();
            if !guards || rule.path.wildcards() > 0 || pattern.ends_with('/') {
                return None;
            }
            let path = SitePath::parse(pattern, true).ok()?;
            matches!(root.open(&path), Ok(crate::fs::Node::Dir(_))).then(|| {
                format!(
                    "rule path {pattern:?} names a folder but guards only that URL, not                      what is in it: write \"{pattern}/\" to cover the folder"
                )
            })
        });
        let example_users = self.settings.rules.users.with_example_hash();
        let example = example_users.into_iter().map(|user| {
            format!(
                "user \"{user}\" has the password hash from wharf.example.toml, whose \
                 password is printed in that file: make a new one with `wharf hash-password`"
            )
        });
        self.settings
            .rules
            .error_pages
            .iter()
            .filter(|(_, page)| {
                // A folder is served by its index file, so it may do; a folder
                // without one, whose listing would go out, may not.
                !SitePath::parse(page, self.settings.hidden)
                    .is_ok_and(|p| crate::handlers::static_files::is_page(root, &p))
            })
            .map(|(status, page)| {
                format!(
                    "error page for {}: {page} is not a file (or a folder with an index \
                     file) under {}",
                    status.as_u16(),
                    root.path().display()
                )
            })
            .chain(example)
            .chain(bare_folders)
            .collect()
    }

    /// What can be decided about a request without waiting: the answer itself for
    /// a bad request, a redirect or a hot-cache hit (so the common case never builds
    /// or boxes the async handler's state), or what is left to do.
    pub fn answer_now(&self, req: &Parts) -> Answer {
        // The request's own problems come before any rule or handler sees it.
        if let Some(status) = checks::reject(req, &self.settings.limits) {
            return Answer::Now(by_site(response::error(status)));
        }
        if self.settings.dev.is_some() {
            return Answer::Later(Pending(Left::Dev));
        }
        self.answer_now_plainly(req)
    }

    /// [`Router::answer_now`] after the request's checks, without `--dev`.
    fn answer_now_plainly(&self, req: &Parts) -> Answer {
        if !self.settings.rules.is_empty() {
            return match self.hit_under_plain_rules(req) {
                Some(res) => Answer::Now(res),
                None => Answer::Later(Pending(Left::WithRules)),
            };
        }
        let path = req.uri.path();
        let handler = self.default_handler();
        match self.route(req, path, &handler) {
            Route::Done(res) => Answer::Now(res),
            Route::Path(_) if cross_origin::refuses(req, &handler, None) => {
                Answer::Now(by_site(response::error(StatusCode::FORBIDDEN)))
            }
            Route::Path(site_path) => match self.handlers.ready(&handler, req, path) {
                Some(res) => Answer::Now(options_answer(req, res, &handler)),
                None => Answer::Later(Pending(Left::Uncached(site_path))),
            },
        }
    }

    /// A hit (the static hot cache, a fresh proxy-cache entry) for a GET or HEAD
    /// whose rules only name a handler or add headers — no access list,
    /// credentials, CORS, redirect, rewrite, SPA fallback or internal path, so
    /// nothing to wait for — with the rules' headers added as
    /// [`Router::handle_with_rules`] adds them. Anything else (an error, which may
    /// have a custom page) is left to that path.
    fn hit_under_plain_rules(&self, req: &Parts) -> Option<Response<Body>> {
        if req.method != Method::GET && req.method != Method::HEAD {
            return None;
        }
        let path = req.uri.path();
        let rule_path = SitePath::parse(path, self.settings.hidden)
            .ok()?
            .rule_path();
        let matched = self.settings.rules.matching(&rule_path);
        let plain = matched.iter().all(|(rule, _)| {
            rule.redirect.is_none()
                && rule.rewrite.is_none()
                && rule.spa.is_none()
                && rule.cors.is_none()
                && !rule.guards()
        });
        if !plain
            || self
                .settings
                .rules
                .guarding_folder(&rule_path)
                .next()
                .is_some()
        {
            return None;
        }
        let handler = self.handler_of(&matched);
        if methods::refuse(req, &handler).is_some() {
            return None;
        }
        let mut res = self.handlers.ready(&handler, req, path)?;
        if res.status().is_client_error() || res.status().is_server_error() {
            return None;
        }
        self.add_site_headers(&mut res, &matched);
        Some(res)
    }

    /// The rules' own headers (on successes, redirects and 304 only, as nginx's
    /// add_header, so that e.g. a year-long Cache-Control never pins a 404) and the
    /// security headers when the site asks for them.
    fn add_site_headers(&self, res: &mut Response<Body>, matched: &[(&rules::Rule, Vec<&str>)]) {
        self.add_security_headers(res);
        // After the preset: a rule that says otherwise (a stricter frame policy)
        // is what the site asked for.
        if adds_rule_headers(res.status()) {
            for (rule, _) in matched {
                for (name, value) in &rule.headers {
                    // What the response varies on stays; a rule adds to it.
                    if name == header::VARY {
                        res.headers_mut().append(name.clone(), value.clone());
                    } else {
                        res.headers_mut().insert(name.clone(), value.clone());
                    }
                }
            }
        }
    }

    /// The security-headers preset, each field only where the response has none of
    /// its own (an app's, a listing's policy).
    fn add_security_headers(&self, res: &mut Response<Body>) {
        if self.settings.rules.security_headers {
            let headers = res.headers_mut();
            for (name, value) in SECURITY_HEADERS {
                // Policies the response brings (a listing's, an app's) are kept; the
                // frame policy is added as a policy of its own (browsers enforce
                // every one) unless one of them already says it.
                if *name == header::CONTENT_SECURITY_POLICY
                    && headers.contains_key(header::CONTENT_SECURITY_POLICY)
                {
                    let framed = headers
                        .get_all(header::CONTENT_SECURITY_POLICY)
                        .iter()
                        .any(|v| v.to_str().is_ok_and(|v| v.contains("frame-ancestors")));
                    if !framed {
                        headers.append(name.clone(), HeaderValue::from_static(value));
                    }
                    continue;
                }
                if !headers.contains_key(name) {
                    headers.insert(name.clone(), HeaderValue::from_static(value));
                }
            }
            if self.settings.https && !headers.contains_key(header::STRICT_TRANSPORT_SECURITY) {
                headers.insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static("max-age=31536000"),
                );
            }
        }
    }

    /// The answer to what [`Router::answer_now`] left pending; a program's local
    /// redirect (RFC 3875 §6.2.2) is followed here, as a new GET request for its path
    /// with every rule applied, at most [`MAX_LOCAL_REDIRECTS`] times (then 500).
    pub async fn answer(
        self: Arc<Self>,
        pending: Pending,
        req: &Parts,
        body: RequestBody,
        peer: Peer,
    ) -> Response<Body> {
        if let (Left::Dev, Some(dev)) = (&pending.0, self.settings.dev.clone()) {
            // Boxed: the dev path is rare, and its state would enlarge every answer.
            return Box::pin(self.answer_dev(&dev, req, body, peer)).await;
        }
        let mut res = Arc::clone(&self)
            .answer_once(pending, req, body, peer)
            .await;
        for _ in 0..MAX_LOCAL_REDIRECTS {
            let Some(response::LocalRedirect(to)) =
                res.extensions().get::<response::LocalRedirect>().cloned()
            else {
                return res;
            };
            let method = if req.method == Method::HEAD {
                Method::HEAD
            } else {
                Method::GET
            };
            // A target that is no request's (a raw space, a NUL, a climb above the
            // root) is the program's malformed output, not the client's request.
            let well_formed = |next: &Parts| {
                !matches!(
                    SitePath::parse_for_app(next.uri.path(), true),
                    Err(crate::http::path::PathError::BadRequest)
                )
            };
            let Some(mut next) = http::Request::builder()
                .method(method)
                .uri(to.as_str())
                .version(req.version)
                .body(())
                .ok()
                .map(|r| r.into_parts().0)
                .filter(|next| next.uri.scheme().is_none() && well_formed(next))
            else {
                tracing::warn!("a program redirected to {to:?}, which is not a local path");
                return response::error(StatusCode::BAD_GATEWAY);
            };
            next.headers = req.headers.clone();
            for name in [
                header::CONTENT_LENGTH,
                header::CONTENT_TYPE,
                header::TRANSFER_ENCODING,
            ] {
                next.headers.remove(name);
            }
            // HTTP/2 carries the host in the URI (`:authority`): the new request
            // keeps it as a Host field, so the answer knows whom it was for.
            if let Some(authority) = req.uri.authority() {
                if !next.headers.contains_key(header::HOST) {
                    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                        next.headers.insert(header::HOST, host);
                    }
                }
            }
            res = match self.answer_now(&next) {
                Answer::Now(res) => res,
                Answer::Later(pending) => {
                    Box::pin(Arc::clone(&self).answer_once(
                        pending,
                        &next,
                        RequestBody::empty(),
                        peer,
                    ))
                    .await
                }
            };
        }
        if res.extensions().get::<response::LocalRedirect>().is_some() {
            tracing::warn!("local redirects loop at {:?}", req.uri.path());
            return response::error(StatusCode::INTERNAL_SERVER_ERROR);
        }
        res
    }

    /// A request in `--dev` mode: the live-reload endpoints, or the site's answer with
    /// the reload script put into pages.
    async fn answer_dev(
        self: Arc<Self>,
        dev: &dev::Dev,
        req: &Parts,
        body: RequestBody,
        peer: Peer,
    ) -> Response<Body> {
        if let Some(res) = dev.endpoint(req) {
            return by_site(res);
        }
        // Pages come back uncompressed, so the script can go into them.
        let mut plain = req.clone();
        plain.headers.remove(header::ACCEPT_ENCODING);
        if plain.method == Method::GET || plain.method == Method::HEAD {
            // A validator a browser kept from a run without `--dev` names the file
            // without the script: a 304 would leave the page without it. Nothing
            // `--dev` sends is stored (`no-store`), so it is always sent whole.
            plain.headers.remove(header::IF_NONE_MATCH);
            plain.headers.remove(header::IF_MODIFIED_SINCE);
        }
        let res = Arc::clone(&self).answer_plainly(&plain, body, peer).await;
        // A range of a page is a range of the file without the script: a page is
        // sent whole instead (RFC 9110 §14.2 lets a server ignore Range).
        let ranged = matches!(
            res.status(),
            StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE
        );
        if ranged && plain.method == Method::GET {
            plain.headers.remove(header::RANGE);
            plain.headers.remove(header::IF_RANGE);
            let whole = self
                .answer_plainly(&plain, RequestBody::empty(), peer)
                .await;
            if dev::is_injectable(&whole) {
                return dev.finish(&plain, whole).await;
            }
        }
        dev.finish(&plain, res).await
    }

    /// [`Router::answer_now_plainly`]'s answer, with what it leaves pending answered.
    async fn answer_plainly(
        self: Arc<Self>,
        req: &Parts,
        body: RequestBody,
        peer: Peer,
    ) -> Response<Body> {
        match self.answer_now_plainly(req) {
            Answer::Now(res) => res,
            Answer::Later(pending) => Box::pin(self.answer(pending, req, body, peer)).await,
        }
    }

    /// One answer to a pending request, redirects not followed.
    async fn answer_once(
        self: Arc<Self>,
        pending: Pending,
        req: &Parts,
        body: RequestBody,
        peer: Peer,
    ) -> Response<Body> {
        match pending.0 {
            Left::Uncached(path) => {
                let handler = self.default_handler();
                let destination = match self.destination(req) {
                    Ok(d) => d,
                    Err(status) => return response::error(status),
                };
                let request = Request {
                    head: req,
                    path,
                    target: req.uri.path(),
                    body,
                    remote: peer.remote,
                    local_port: peer.local_port,
                    client: peer.client,
                    tls: peer.tls,
                    destination,
                    user: None,
                    readable: None,
                };
                let res = self.handlers.respond(&handler, request).await;
                options_answer(req, res, &handler)
            }
            Left::WithRules | Left::Dev => self.handle_with_rules(req, body, peer).await,
        }
    }

    /// Whether the handler that will answer `pending` reads the request body (else the
    /// connection layer disposes of it). With rules, that is the handler the rules
    /// assign to the request's own path.
    pub fn reads_body(&self, pending: &Pending, req: &Parts) -> bool {
        match &pending.0 {
            Left::Uncached(_) => self.default_handler().reads_body(req),
            Left::WithRules => self.handler_for(req.uri.path()).reads_body(req),
            Left::Dev => {
                !req.uri.path().starts_with(dev::PREFIX)
                    && self.handler_for(req.uri.path()).reads_body(req)
            }
        }
    }

    /// The answer of plain HTTP to an HTTPS site: the request checks of the site
    /// itself (a bad or doubled Host is a 400, not somewhere to redirect to), `*` as
    /// the site answers it, and otherwise the redirect to HTTPS on `https_port`.
    pub fn redirect_to_https(&self, req: &Parts, https_port: u16) -> Response<Body> {
        if let Some(status) = checks::reject(req, &self.settings.limits) {
            return by_site(response::error(status));
        }
        if req.uri.path() == "*" {
            if let Route::Done(res) = self.route(req, "*", &self.default_handler()) {
                return res;
            }
        }
        by_site(crate::site::https_redirect::respond(req, https_port))
    }

    /// The checks and parsing every handler needs first (`*`, methods `handler`
    /// answers, a path that does not parse). The request's own problems were
    /// answered by `checks::reject` before.
    fn route(&self, req: &Parts, path: &str, handler: &Handler) -> Route {
        let method = &req.method;
        if path == "*" {
            return Route::Done(by_site(if method == Method::OPTIONS {
                handler
                    .options(req)
                    .unwrap_or_else(|| response::options(handler.allow()))
            } else {
                response::error(StatusCode::BAD_REQUEST)
            }));
        }
        if let Some(refused) = methods::refuse(req, handler) {
            return Route::Done(by_site(refused));
        }
        // A path an app answers is the app's, dot segments and encoded `/` as well:
        // it names no file (files-first serves no hidden one). A program's path
        // may hold dot segments after the program (its PATH_INFO), never before.
        let parsed = match handler {
            Handler::Proxy(_) => SitePath::parse_for_app(path, true),
            Handler::Cgi(_) | Handler::FastCgi(_) => SitePath::parse(path, true),
            Handler::Static(_) => SitePath::parse(path, self.settings.hidden),
        };
        match parsed {
            Ok(site_path) => Route::Path(site_path),
            Err(e) => Route::Done(by_site(response::error(refusal(e, handler.writes(method))))),
        }
    }

    /// The request as if its path were `path` (the request's own, or a rewrite),
    /// answered by `handler`.
    async fn handle_path(
        &self,
        req: &Parts,
        path: &str,
        handler: &Handler,
        body: RequestBody,
        peer: Peer,
        user: Option<&str>,
    ) -> Response<Body> {
        let site_path = match self.route(req, path, handler) {
            Route::Done(res) => return res,
            Route::Path(site_path) => site_path,
        };
        let res = match self.handlers.ready(handler, req, path) {
            Some(res) => res,
            None => {
                let destination = match self.destination(req) {
                    Ok(d) => d,
                    Err(status) => return response::error(status),
                };
                let readable = self.read_policy(req, handler, peer.remote.ip(), user);
                let request = Request {
                    head: req,
                    path: site_path,
                    target: path,
                    body,
                    remote: peer.remote,
                    local_port: peer.local_port,
                    client: peer.client,
                    tls: peer.tls,
                    destination,
                    user,
                    readable,
                };
                self.handlers.respond(handler, request).await
            }
        };
        options_answer(req, res, handler)
    }

    /// The request with the configuration file's rules applied around the handler:
    /// access lists, then a redirect, or a rewrite, the handler and the SPA fallback;
    /// then the custom error page and the rules' headers.
    async fn handle_with_rules(
        self: Arc<Self>,
        req: &Parts,
        body: RequestBody,
        peer: Peer,
    ) -> Response<Body> {
        let remote = peer.remote.ip();
        let site = &self.settings.rules;
        let path = req.uri.path();
        // Rules match the decoded, normalised path, never the raw spelling; a path that
        // does not parse gets its 400/404 from the handler, with no rule applied.
        // An encoded `/` counts as one here, and a dot segment matches as any other:
        // both are refused later unless an app answers the path.
        let rule_path = SitePath::parse_for_app(path, true)
            .map(|p| p.rule_path())
            .unwrap_or_default();
        let matched = if rule_path.is_empty() {
            Vec::new()
        } else {
            site.matching(&rule_path)
        };
        let rewritten = matched
            .iter()
            .find_map(|(rule, caps)| rule.rewrite.as_ref().map(|t| filled(t, caps)));
        // A rewrite must not lead around the rules of where it lands: the access rules
        // of the rewritten path are checked as well as the request's own.
        let landed = rewritten
            .as_deref()
            .and_then(|t| SitePath::parse_for_app(t, true).ok())
            .map(|p| p.rule_path())
            .unwrap_or_default();
        let landed_rules = if landed.is_empty() {
            Vec::new()
        } else {
            site.matching(&landed)
        };
        // Nor may a COPY or MOVE lead around the rules of its destination.
        let destination = self.destination(req).ok().flatten().map(|d| d.path);
        let destination_path = destination
            .as_ref()
            .map(SitePath::rule_path)
            .unwrap_or_default();
        // Nor around the rules of what is inside a folder deleted, copied or moved
        // whole: the folder served, the rewrite's target if there is one, and only
        // where the files are wharf's own business (an app answers its paths).
        // The rules of the path actually served: the rewrite's target, if any.
        let served_rules = if rewritten.is_some() {
            &landed_rules
        } else {
            &matched
        };
        let served_path = rewritten.as_deref().unwrap_or(path);
        let serves_files = matches!(self.handler_of(served_rules), Handler::Static(_));
        let trees = if serves_files {
            self.trees(req, served_path, destination.as_ref())
        } else {
            Vec::new()
        };
        let inside: Vec<(&rules::Rule, &str, Change)> = trees
            .iter()
            .flat_map(|(folder, changed)| {
                site.inside(folder)
                    .map(move |r| (r, folder.as_str(), *changed))
            })
            .collect();
        let destination_rules = if destination_path.is_empty() {
            Vec::new()
        } else {
            site.matching(&destination_path)
        };
        let guards: Vec<&rules::Rule> = matched
            .iter()
            .chain(landed_rules.iter())
            .chain(destination_rules.iter())
            .map(|(rule, _)| *rule)
            .chain(site.guarding_folder(&rule_path))
            .chain(site.guarding_folder(&landed))
            .chain(site.guarding_folder(&destination_path))
            .chain(
                inside
                    .iter()
                    .map(|(rule, ..)| *rule)
                    .filter(|r| !r.internal),
            )
            .collect();
        // What no request may do inside: an app's or a program's paths (a copy would
        // show a script's source; a move would make a file a program), files only
        // an app hands out, or what its rules keep from being changed.
        let inside_refused = inside.iter().any(|(rule, folder, change)| {
            // A flag set to no, unless a rule ahead of it already says yes for all
            // of the folder (the first rule that says decides).
            let forbids = |flag: fn(&rules::Rule) -> Option<bool>| {
                flag(rule) == Some(false) && site.said_before(rule, folder, flag) != Some(true)
            };
            rule.internal
                || rule
                    .handler
                    .as_ref()
                    .is_some_and(|h| !matches!(h, Handler::Static(_)))
                || match change {
                    Change::Read => false,
                    Change::Removed => forbids(|r| r.delete),
                    Change::Written => forbids(|r| r.upload) || forbids(|r| r.delete),
                }
        });
        let cors = matched.iter().find_map(|(rule, _)| rule.cors.as_ref());
        let mut authenticated = None;
        let mut res = if guards.iter().any(|rule| rule.internal) {
            // Files only an app may hand out (X-Accel-Redirect) are not there for
            // clients.
            by_site(response::error(StatusCode::NOT_FOUND))
        } else if inside_refused || guards.iter().any(|rule| !rule.admits(remote)) {
            by_site(response::error(StatusCode::FORBIDDEN))
        } else if let Some(cors) = cors.filter(|_| Cors::is_preflight(req)) {
            // Preflights carry no credentials: they are answered before authentication.
            return by_site(cors.preflight(req));
        } else if cross_origin::refuses(req, &self.handler_of(served_rules), cors) {
            by_site(response::error(StatusCode::FORBIDDEN))
        } else if let Err(refused) = self
            .authenticate(req, remote, &guards)
            .await
            .map(|user| authenticated = user)
        {
            by_site(refused)
        } else if let Some((redirect, caps)) = matched
            .iter()
            .find_map(|(rule, caps)| rule.redirect.as_ref().map(|r| (r, caps)))
        {
            let to = filled(&redirect.to, caps);
            by_site(response::redirect(
                redirect.status,
                &keep_query(to, req.uri.query()),
            ))
        } else if matches!(self.handler_of(&matched), Handler::Static(_))
            && site.is_app_folder_without_slash(&rule_path)
        {
            let folder = crate::http::path::encode_path(&format!("{rule_path}/"));
            by_site(response::redirect(
                StatusCode::MOVED_PERMANENTLY,
                &keep_query(folder, req.uri.query()),
            ))
        } else {
            let target = rewritten.as_deref().unwrap_or(path);
            let handler = self.handler_of(served_rules);
            let mut res = self
                .handle_path(req, target, &handler, body, peer, authenticated.as_deref())
                .await;
            let spa = matched.iter().find_map(|(rule, _)| rule.spa.as_deref());
            if let (Some(spa), StatusCode::NOT_FOUND) = (spa, res.status()) {
                if wants_a_page(req) {
                    let handler = self.handler_for(spa);
                    let fallback = self
                        .handle_path(req, spa, &handler, RequestBody::empty(), peer, None)
                        .await;
                    if fallback.status().is_success()
                        || fallback.status() == StatusCode::NOT_MODIFIED
                    {
                        res = fallback;
                    }
                }
                // Page or 404 was decided by Accept: caches must key on it.
                res.headers_mut()
                    .append(header::VARY, HeaderValue::from_static("Accept"));
            }
            res
        };
        let status = res.status();
        let relayed = res.extensions().get::<response::Relayed>().is_some();
        if (status.is_client_error() || status.is_server_error()) && !relayed {
            if let Some(page) = site.error_page(status) {
                // Boxed: rare, and the future of every answer would carry its size.
                res = Box::pin(self.error_page(req, page, res, peer)).await;
            }
        }
        self.add_site_headers(&mut res, &matched);
        // After the rules' headers, which it may override.
        if let Some(cors) = cors {
            cors.decorate(req, &mut res);
        }
        if let Some(user) = authenticated {
            res.extensions_mut().insert(auth::RemoteUser(user));
        }
        res
    }

    /// For a request that reads many paths at once (a folder's archive), which of
    /// them this client may read as plain files: none that a rule keeps internal,
    /// refuses its address, guards with credentials it did not give, redirects,
    /// rewrites or hands to another handler. For a request to an app (which may hand
    /// a file back with `X-Accel-Redirect`), which files it may be handed: as nginx
    /// applies the access rules of an internal redirect's target, none whose rules
    /// refuse its address or want credentials it did not give, and no program's
    /// script; internal paths are what hand-backs are for. `None` for every other
    /// request.
    fn read_policy(
        &self,
        req: &Parts,
        handler: &Handler,
        remote: IpAddr,
        user: Option<&str>,
    ) -> Option<ReadPolicy> {
        let hand_back = matches!(handler, Handler::Proxy(_) | Handler::FastCgi(_));
        let by_fastcgi = matches!(handler, Handler::FastCgi(_));
        let asks_archive = matches!(handler, Handler::Static(_))
            && matches!(
                crate::handlers::static_files::archive::asked(req),
                crate::handlers::static_files::archive::Ask::Archive(_)
            );
        if !asks_archive && !hand_back {
            return None;
        }
        let site = Arc::clone(&self.settings.rules);
        let user = user.map(str::to_owned);
        Some(ReadPolicy(Arc::new(move |path: &SitePath| {
            let rule_path = path.rule_path();
            let guards = site.matching(&rule_path);
            let admitted = |rule: &rules::Rule| {
                rule.admits(remote)
                    && rule
                        .auth
                        .as_ref()
                        .is_none_or(|auth| user.as_deref().is_some_and(|u| auth.admits(u)))
            };
            let plain = |rule: &rules::Rule| match &rule.handler {
                None | Some(Handler::Static(_)) => true,
                // Under an app's rule (`/` proxied, files first), a PHP site's plain
                // files (not its scripts): files an app may hand back. A PHP app's
                // own hand-backs are judged by its route (`may_hand_back`), which
                // knows the script that asked.
                Some(Handler::Proxy(_)) => hand_back,
                Some(Handler::FastCgi(route)) => hand_back && (by_fastcgi || !route.runs(path)),
                Some(Handler::Cgi(_)) => false,
            };
            guards.iter().all(|(rule, _)| {
                admitted(rule)
                    && plain(rule)
                    && (hand_back
                        || (!rule.internal && rule.redirect.is_none() && rule.rewrite.is_none()))
            }) && site.guarding_folder(&rule_path).all(admitted)
        })))
    }

    /// The handler the rules assign to `path` (static when none names one).
    fn handler_for(&self, path: &str) -> Handler {
        SitePath::parse_for_app(path, true)
            .map(|p| self.handler_of(&self.settings.rules.matching(&p.rule_path())))
            .unwrap_or_else(|_| self.default_handler())
    }

    /// The handler where no rule names one: static files, changed as the command
    /// line allows.
    fn default_handler(&self) -> Handler {
        Handler::Static(self.settings.access)
    }

    /// The handler `rules` (all matching one path) give it: the first one named, or
    /// the default; what may be changed, each from the first rule that says.
    fn handler_of(&self, rules: &[(&rules::Rule, Vec<&str>)]) -> Handler {
        let named = rules.iter().find_map(|(rule, _)| rule.handler.clone());
        match named.unwrap_or_else(|| self.default_handler()) {
            Handler::Static(_) => Handler::Static(self.access_of(rules)),
            other => other,
        }
    }

    /// What may be changed under a path the `rules` match, each from the first rule
    /// that says.
    fn access_of(&self, rules: &[(&rules::Rule, Vec<&str>)]) -> Access {
        let mut access = self.settings.access;
        if let Some(upload) = rules.iter().find_map(|(r, _)| r.upload) {
            access.upload = upload;
        }
        if let Some(delete) = rules.iter().find_map(|(r, _)| r.delete) {
            access.delete = delete;
        }
        if let Some(max) = rules.iter().find_map(|(r, _)| r.max_upload_size) {
            access.max_upload_size = max;
        }
        access
    }

    /// The folders a DELETE, COPY or MOVE acts on as a whole (as rule paths, ending
    /// in `/`), each with what is done to it: the request's path when it is a
    /// folder, and the destination when a folder goes there or one there would be
    /// replaced.
    fn trees(
        &self,
        req: &Parts,
        path: &str,
        destination: Option<&SitePath>,
    ) -> Vec<(String, Change)> {
        let method = req.method.as_str();
        if !matches!(method, "DELETE" | "COPY" | "MOVE") {
            return Vec::new();
        }
        let Ok(source) = SitePath::parse(path, self.settings.hidden) else {
            return Vec::new();
        };
        let root = self.handlers.root();
        let is_folder = |p: &SitePath| matches!(root.open(p), Ok(crate::fs::Node::Dir(_)));
        let folder = |p: &SitePath| {
            let mut path = p.rule_path();
            if !path.ends_with('/') {
                path.push('/');
            }
            path
        };
        let mut trees = Vec::new();
        let source_is_folder = is_folder(&source);
        if source_is_folder {
            let change = if method == "COPY" {
                Change::Read
            } else {
                Change::Removed
            };
            trees.push((folder(&source), change));
        }
        if let Some(dest) = destination {
            if source_is_folder || is_folder(dest) {
                trees.push((folder(dest), Change::Written));
            }
        }
        trees
    }

    /// The destination of a COPY or MOVE (RFC 4918 §10.3), checked as a request path
    /// is: `Ok(None)` for other methods or no header (the handler answers 400), an
    /// error response for a destination on another host (502, §9.8.5), one that is
    /// neither an absolute URI nor an absolute path (400), or a path no request could
    /// name.
    fn destination(&self, req: &Parts) -> Result<Option<Destination>, StatusCode> {
        if !matches!(req.method.as_str(), "COPY" | "MOVE") {
            return Ok(None);
        }
        let Some(value) = req.headers.get("destination") else {
            return Ok(None);
        };
        let text = ascii_destination(value.as_bytes()).ok_or(StatusCode::BAD_REQUEST)?;
        let text = text.as_ref();
        let uri: http::Uri = text.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
        // An absolute URI or an absolute path (§10.3); anything else is malformed,
        // though one such as `rel.txt` parses as an authority, not another host's.
        // `//host/x` (a network-path reference) is neither.
        if uri.scheme().is_none() && (!text.starts_with('/') || text.starts_with("//")) {
            return Err(StatusCode::BAD_REQUEST);
        }
        // Only an HTTP URI names a resource here or on another server (502); other
        // schemes and IP literals that are not addresses are malformed.
        if uri
            .scheme_str()
            .is_some_and(|s| !s.eq_ignore_ascii_case("http") && !s.eq_ignore_ascii_case("https"))
        {
            return Err(StatusCode::BAD_REQUEST);
        }
        if let Some(literal) = uri.host().and_then(|h| h.strip_prefix('[')) {
            let inner = literal.strip_suffix(']').unwrap_or(literal);
            if inner.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(StatusCode::BAD_REQUEST);
            }
        }
        // Userinfo is an error in an http(s) URI (RFC 9110 §4.2.4), as in a
        // request's own target; parsers disagree on where such an authority's
        // host begins.
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(StatusCode::BAD_REQUEST);
        }
        if let Some(authority) = uri.authority() {
            // Over HTTP/2 without Host, the request's own `:authority`.
            let host = req.headers.get(header::HOST);
            let same = match (host, req.uri.authority()) {
                (Some(host), _) => checks::same_authority(authority, host, uri.scheme()),
                (None, Some(own)) => own.as_str().eq_ignore_ascii_case(authority.as_str()),
                (None, None) => false,
            };
            if !same {
                return Err(StatusCode::BAD_GATEWAY);
            }
        }
        let path =
            SitePath::parse(uri.path(), self.settings.hidden).map_err(|e| refusal(e, true))?;
        let access = match self.handler_for(uri.path()) {
            Handler::Static(access) => access,
            // Nothing is copied or moved onto an app's or a program's paths.
            Handler::Proxy(_) | Handler::Cgi(_) | Handler::FastCgi(_) => Access::default(),
        };
        Ok(Some(Destination { path, access }))
    }

    /// Checks HTTP Basic credentials when a matching rule asks for them: `Ok` to go
    /// on, with the user when one authenticated, or the refusal (401 with a
    /// challenge, 403 for a user the rule does not admit, 429 after too many failures
    /// from this client).
    async fn authenticate(
        &self,
        req: &Parts,
        remote: IpAddr,
        guards: &[&rules::Rule],
    ) -> Result<Option<String>, Response<Body>> {
        let required: Vec<&rules::AuthRule> =
            guards.iter().filter_map(|r| r.auth.as_ref()).collect();
        if required.is_empty() {
            return Ok(None);
        }
        let users = Arc::clone(&self.settings.rules.users);
        let verdict = if users.throttled(remote) {
            Verdict::Throttled
        } else {
            // argon2 takes tens of milliseconds and ~19 MiB per check by design: at most
            // one check per CPU runs at a time, the rest wait their turn.
            let _permit = self.auth_permits.acquire().await;
            let headers = req.headers.clone();
            tokio::task::spawn_blocking(move || users.verify(&headers, remote))
                .await
                .unwrap_or(Verdict::Denied)
        };
        match verdict {
            Verdict::User(user) if required.iter().all(|r| r.admits(&user)) => Ok(Some(user)),
            Verdict::User(_) => Err(response::error(StatusCode::FORBIDDEN)),
            Verdict::Denied => {
                let mut res = response::error(StatusCode::UNAUTHORIZED);
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, auth::challenge());
                Err(res)
            }
            Verdict::Throttled => {
                let mut res = response::error(StatusCode::TOO_MANY_REQUESTS);
                res.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(auth::FAIL_WINDOW.as_secs()),
                );
                Err(res)
            }
        }
    }

    /// `original` (an error) with its body replaced by the custom page at `page`; the
    /// status and the headers that explain the error (Allow, Content-Range,
    /// Retry-After, Vary) stay.
    async fn error_page(
        &self,
        req: &Parts,
        page: &str,
        original: Response<Body>,
        peer: Peer,
    ) -> Response<Body> {
        let mut fetch = http::Request::get(page).body(()).map(|r| r.into_parts().0);
        if let Ok(fetch) = &mut fetch {
            for ae in req.headers.get_all(header::ACCEPT_ENCODING) {
                fetch.headers.append(header::ACCEPT_ENCODING, ae.clone());
            }
            fetch
                .headers
                .insert(header::HOST, HeaderValue::from_static("localhost"));
        }
        let Ok(fetch) = fetch else { return original };
        // The page is read for this client: never one its address lists or
        // credentials keep from it (an `internal` page is what error pages are for).
        let guarded = SitePath::parse(page, self.settings.hidden).map_or(true, |p| {
            let rule_path = p.rule_path();
            self.settings
                .rules
                .matching(&rule_path)
                .iter()
                .any(|(rule, _)| rule.auth.is_some() || !rule.admits(peer.remote.ip()))
        });
        if guarded {
            return original;
        }
        // A folder's listing is no page: its links lead nowhere from another URL.
        if self.listing_pages.iter().any(|p| p == page) {
            return original;
        }
        let handler = self.handler_for(page);
        let mut res = self
            .handle_path(&fetch, page, &handler, RequestBody::empty(), peer, None)
            .await;
        if res.status() != StatusCode::OK {
            return original;
        }
        *res.status_mut() = original.status();
        let headers = res.headers_mut();
        for name in [header::ETAG, header::LAST_MODIFIED, header::ACCEPT_RANGES] {
            headers.remove(name);
        }
        for name in [
            header::ALLOW,
            header::CONTENT_RANGE,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
        ] {
            if let Some(value) = original.headers().get(&name) {
                headers.insert(name, value.clone());
            }
        }
        // What the error depended on (e.g. Accept, for an SPA fallback's 404) still
        // varies the answer, along with what the page's own negotiation added.
        for value in original.headers().get_all(header::VARY) {
            headers.append(header::VARY, value.clone());
        }
        res
    }
}

/// What [`Router::route`] found.
enum Route {
    /// The request is answered already (an error, or `OPTIONS *`).
    Done(Response<Body>),
    /// The parsed path, for the handler.
    Path(SitePath),
}

/// The status for a path that does not parse: for a write, a hidden or reserved
/// name is forbidden and a `/` in a name is malformed; for a read both are simply
/// not found.
fn refusal(err: PathError, writing: bool) -> StatusCode {
    match err {
        PathError::BadRequest => StatusCode::BAD_REQUEST,
        PathError::SlashInName if writing => StatusCode::BAD_REQUEST,
        PathError::NotFound if writing => StatusCode::FORBIDDEN,
        PathError::SlashInName | PathError::NotFound => StatusCode::NOT_FOUND,
    }
}

/// A redirect or rewrite `template` with its `{n}` filled from `caps` (decoded
/// text), percent-encoded for where each lands: before the `?` the sub-delims stay
/// as they were (`;v=1`, `+`), after it they are encoded, so that a capture cannot
/// add a query parameter (`a&admin=1`).
fn filled(template: &str, caps: &[&str]) -> String {
    use crate::http::path::{encode_path, encode_path_keeping_delims};
    let in_path: Vec<String> = caps.iter().map(|c| encode_path_keeping_delims(c)).collect();
    match template.split_once('?') {
        None => rules::expand(template, &in_path),
        Some((path, query)) => {
            let in_query: Vec<String> = caps.iter().map(|c| encode_path(c)).collect();
            format!(
                "{}?{}",
                rules::expand(path, &in_path),
                rules::expand(query, &in_query)
            )
        }
    }
}

/// `res`, marked as the site's own answer (no handler gave it) for the metrics.
fn by_site(mut res: Response<Body>) -> Response<Body> {
    res.extensions_mut()
        .insert(crate::metrics::HandlerKind::None);
    res
}

/// A redirect target with the request's query kept, as nginx's `rewrite` does: after
/// the target's own query with `&`, or as the query when it has none; a target ending
/// in `?` asks for the request's query to be dropped. A fragment in the target
/// stays last, after the query (RFC 3986 §3).
fn keep_query(to: String, query: Option<&str>) -> String {
    let (mut to, fragment) = match to.split_once('#') {
        Some((before, fragment)) => (before.to_string(), Some(fragment.to_string())),
        None => (to, None),
    };
    if to.ends_with('?') {
        to.pop();
    } else if let Some(query) = query.filter(|q| !q.is_empty()) {
        to.push(if to.contains('?') { '&' } else { '?' });
        to.push_str(query);
    }
    if let Some(fragment) = fragment {
        to.push('#');
        to.push_str(&fragment);
    }
    to
}

/// The security-headers preset (HSTS is added only when serving TLS).
const SECURITY_HEADERS: &[(HeaderName, &str)] = &[
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
    (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
    (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'self'"),
];

/// What a DELETE, COPY or MOVE does to a folder it acts on as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Read only: a COPY's source.
    Read,
    /// Taken away: a DELETE's or a MOVE's source.
    Removed,
    /// Written, and what was there replaced: a destination.
    Written,
}

/// A GET or HEAD that asks for HTML by name, as browsers navigating do; scripts asking
/// for `*/*` do not count, so a missing asset stays a 404 under an SPA fallback.
fn wants_a_page(req: &Parts) -> bool {
    (req.method == Method::GET || req.method == Method::HEAD)
        && negotiate::list_members(&req.headers, &header::ACCEPT).any(|range| {
            range
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("text/html")
        })
        && negotiate::media_quality(&req.headers, "text/html") > 0.0
}

/// The statuses a rule's `headers` are added to (nginx's `add_header` without
/// `always`).
fn adds_rule_headers(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// A `Destination` value as URI text: raw UTF-8 and spaces in it (which some
/// clients send, and nginx and Apache take, as they take them in a request line)
/// percent-encoded, with the other characters a URI may not hold and that are
/// never delimiters, so that it names what the same bytes in a request line name.
/// `None` for control characters, and for bytes that are not UTF-8.
fn ascii_destination(value: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    use std::fmt::Write;
    let text = std::str::from_utf8(value).ok()?;
    if text.bytes().any(|b| b.is_ascii_control()) {
        return None;
    }
    let unfit = |b: u8| !b.is_ascii() || b" \"<>\\^`{|}".contains(&b);
    if !text.bytes().any(unfit) {
        return Some(std::borrow::Cow::Borrowed(text));
    }
    let mut encoded = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        if !unfit(b) {
            encoded.push(b as char);
        } else {
            let _ = write!(encoded, "%{b:02X}");
        }
    }
    Some(std::borrow::Cow::Owned(encoded))
}

#[cfg(test)]
mod tests {
    use super::keep_query;

    #[test]
    fn a_redirect_keeps_the_query_before_its_fragment() {
        let keep = |to: &str, q: Option<&str>| keep_query(to.to_string(), q);
        assert_eq!(keep("/t", Some("b=2")), "/t?b=2");
        assert_eq!(keep("/t?a=1", Some("b=2")), "/t?a=1&b=2");
        assert_eq!(keep("/t#frag", Some("b=2")), "/t?b=2#frag");
        assert_eq!(keep("/t?a=1#frag", Some("b=2")), "/t?a=1&b=2#frag");
        assert_eq!(keep("/t?#frag", Some("b=2")), "/t#frag");
        assert_eq!(keep("/t?", Some("b=2")), "/t");
        assert_eq!(keep("/t", None), "/t");
    }
}
