//! Handlers: what produces the response for a request the site has accepted, and the
//! one seam through which the site reaches them.
//!
//! The seam is small on purpose. A handler gets a [`Request`] — the parsed
//! [`SitePath`], the request head, the body as a stream with back-pressure, the
//! client's address, whether the connection is TLS — and returns a `Response<Body>`.
//! [`Handler`] names which handler serves a path, carrying the options its rule gave
//! it; [`Handlers`] holds each handler's shared state and dispatches.
//!
//! The static handler's folder is read by `static_files` and changed by `uploads`
//! (PUT, forms, tus, WebDAV), which share the one [`Root`].
//!
//! Handlers depend on [`crate::http`] and [`crate::fs`] only: they never import the
//! site (rules, auth, the router) or the network layer. Adding one is a folder here,
//! a [`Handler`] variant with its rule options, and one arm in each `match` below.

pub mod cgi;
pub mod fastcgi;
pub mod handed_file;
pub mod proxy;
pub mod spool;
pub mod static_files;
pub mod uploads;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;
use http::{Method, Response};

use crate::fs::Root;
use crate::handlers::cgi::Cgi;
use crate::handlers::static_files::listing::Offers;
use crate::handlers::static_files::StaticFiles;
use crate::handlers::uploads::Uploads;
use crate::http::body::Body;
use crate::http::client::Client;
use crate::http::path::SitePath;
use crate::http::request_body::RequestBody;
use crate::http::response;

/// Which handler serves a path, with the options its rule gave it.
#[derive(Debug, Clone)]
pub enum Handler {
    /// Files, index files and listings from the served folder; uploads, deletes and
    /// WebDAV where [`Access`] allows them.
    Static(Access),
    /// An app server behind wharf (`--proxy`, or `handler = "proxy"`).
    Proxy(Arc<proxy::Route>),
    /// Programs under the root run per request (`--cgi`, or `handler = "cgi"`).
    Cgi(Arc<cgi::Route>),
    /// Scripts run by a FastCGI application such as php-fpm (`handler = "fastcgi"`).
    FastCgi(Arc<fastcgi::Route>),
}

/// What may be changed under a path, from `--upload`, `--delete`,
/// `--max-upload-size` and the rules' `upload`, `delete`, `max-upload-size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// Writes: PUT, POST uploads, tus, MKCOL, COPY, MOVE (destination), PROPPATCH,
    /// LOCK, UNLOCK.
    pub upload: bool,
    /// DELETE, and the source side of MOVE.
    pub delete: bool,
    /// Largest upload, in bytes.
    pub max_upload_size: u64,
}

impl Access {
    /// Whether anything may be changed.
    pub fn writes(&self) -> bool {
        self.upload || self.delete
    }
}

impl Handler {
    /// Parses the `handler` value of a rule (its options come from the rule's other
    /// keys, which the site applies).
    pub fn parse(name: &str) -> Result<Handler, String> {
        match name {
            "static" => Ok(Handler::Static(Access::default())),
            "proxy" => Err("a proxy rule needs its upstreams (upstreams = [...])".into()),
            "cgi" => Ok(Handler::Cgi(Arc::new(cgi::Route::default()))),
            "fastcgi" => {
                Err("a fastcgi rule needs its application (upstream = \"unix:...\")".into())
            }
            other => Err(format!(
                "unknown handler {other:?} (available: static, proxy, cgi, fastcgi)"
            )),
        }
    }

    /// The methods this handler answers, as an `Allow` value (for `OPTIONS` and 405).
    /// What the metrics call this handler.
    pub fn kind(&self) -> crate::metrics::HandlerKind {
        use crate::metrics::HandlerKind;
        match self {
            Handler::Static(_) => HandlerKind::Static,
            Handler::Proxy(_) => HandlerKind::Proxy,
            Handler::Cgi(_) => HandlerKind::Cgi,
            Handler::FastCgi(_) => HandlerKind::FastCgi,
        }
    }

    pub fn allow(&self) -> &'static str {
        match self {
            Handler::Static(access) => uploads::allow(access),
            Handler::Proxy(_) | Handler::Cgi(_) | Handler::FastCgi(_) => {
                "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"
            }
        }
    }

    /// The answer to `OPTIONS` on a path this handler serves, when the site gives it
    /// (`None`: the handler's own answer stands, as a proxied app's does).
    pub fn options(&self, head: &Parts) -> Option<Response<Body>> {
        match self {
            Handler::Static(access) => Some(uploads::options(access, head)),
            Handler::Proxy(_) | Handler::Cgi(_) | Handler::FastCgi(_) => None,
        }
    }

    /// Whether this handler reads the body of the request `head` starts; the bodies
    /// of requests it answers are otherwise disposed of before it runs.
    pub fn reads_body(&self, head: &Parts) -> bool {
        match self {
            Handler::Static(access) => self.allows(head) && uploads::reads_body(access, head),
            Handler::Proxy(_) | Handler::Cgi(_) | Handler::FastCgi(_) => self.allows(head),
        }
    }

    /// Whether this handler answers the request `head` starts (others get 405 or 501
    /// from the site).
    pub fn allows(&self, head: &Parts) -> bool {
        match self {
            Handler::Static(access) => {
                static_files::allows(&head.method) || uploads::allows(access, head)
            }
            // The app decides; CONNECT names no path, but for the extended CONNECT
            // of an HTTP/2 WebSocket (RFC 8441), which the proxy tunnels.
            // TRACE never goes further (it would echo the client's cookies and
            // credentials back to a script: cross-site tracing), as with nginx.
            Handler::Proxy(_) => {
                head.method != Method::TRACE
                    && (head.method != Method::CONNECT
                        || proxy::forward::wants_upgrade(head).is_some())
            }
            // The program decides.
            Handler::Cgi(_) | Handler::FastCgi(_) => {
                head.method != Method::CONNECT && head.method != Method::TRACE
            }
        }
    }

    /// Whether `method` is one this handler defines, allowed here or not (WebDAV's
    /// methods where changes are on): 405 rather than 501 when refused.
    pub fn knows(&self, method: &Method) -> bool {
        match self {
            Handler::Static(access) => access.writes() && uploads::is_dav_method(method),
            Handler::Proxy(_) | Handler::Cgi(_) | Handler::FastCgi(_) => false,
        }
    }

    /// Whether `method` changes what is under the path (refusals of its path are
    /// then 403 or 400 rather than 404).
    pub fn writes(&self, method: &Method) -> bool {
        match self {
            Handler::Static(_) => uploads::changes(method),
            Handler::Proxy(_) | Handler::Cgi(_) | Handler::FastCgi(_) => false,
        }
    }
}

impl Handlers {
    /// Whether `path` names a regular file under the root (files-first serves files,
    /// never folders' listings or redirects).
    async fn is_file(&self, path: &SitePath) -> bool {
        if path.has_slash_in_name() {
            // Spelled with `%2F`: a path for the app, never a file's.
            return false;
        }
        let files = Arc::clone(&self.static_files);
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            matches!(files.root().open(&path), Ok(crate::fs::Node::File(_)))
        })
        .await
        .unwrap_or(false)
    }

    /// Serves the file an app handed back (`X-Accel-Redirect: /to`) for the request
    /// `head`, with every static semantic (ranges, conditionals, compression); the
    /// app's cookies and the like (in `from_app`) are kept. Paths under `internal`
    /// rules are reachable this way only.
    async fn serve_internal(
        &self,
        head: &Parts,
        to: &str,
        from_app: Response<Body>,
        (remote, tls, local_port): (SocketAddr, bool, u16),
        readable: Option<ReadPolicy>,
    ) -> Response<Body> {
        let path_only = to.split('?').next().unwrap_or("");
        let Ok(path) = SitePath::parse(path_only, self.static_files.hidden()) else {
            return response::error(http::StatusCode::NOT_FOUND);
        };
        // The site's rules for the file's path hold for this client as for a request
        // of its own: an app that builds the path from what a client sent cannot
        // lead around them.
        if readable.is_some_and(|policy| !(policy.0)(&path)) {
            return response::error(http::StatusCode::FORBIDDEN);
        }
        let method = if head.method == Method::HEAD {
            Method::HEAD
        } else {
            Method::GET
        };
        let Ok(mut fetch) = http::Request::builder()
            .method(method)
            .uri(path_only)
            .body(())
            .map(|r| r.into_parts().0)
        else {
            return response::error(http::StatusCode::NOT_FOUND);
        };
        fetch.headers = head.headers.clone();
        fetch.version = head.version;
        fetch.extensions.insert(HandedBack);
        let mut res = match self.static_files.from_cache(&fetch, path_only) {
            Some(res) => res,
            None => {
                let req = Request {
                    head: &fetch,
                    path,
                    target: path_only,
                    body: RequestBody::empty(),
                    remote,
                    tls,
                    local_port,
                    client: Client::UNWATCHED,
                    destination: None,
                    user: None,
                    readable: None,
                };
                Arc::clone(&self.static_files)
                    .serve_uncached(req, None)
                    .await
            }
        };
        // The app's word on the file (its type, as for a download of `report` it
        // names `application/pdf`; its caching) replaces the file's own, when the
        // file is what is sent; cookies and the rest are added.
        let file_sent = res.status().is_success() || res.status() == http::StatusCode::NOT_MODIFIED;
        for name in from_app.headers().keys() {
            let replaces = name == http::header::CONTENT_TYPE
                || name == http::header::EXPIRES
                || name == http::header::CACHE_CONTROL;
            if replaces {
                if file_sent {
                    res.headers_mut().remove(name);
                } else {
                    continue;
                }
            }
            for value in from_app.headers().get_all(name) {
                res.headers_mut().append(name.clone(), value.clone());
            }
        }
        if let Some(upstream) = from_app.extensions().get::<response::Upstream>() {
            res.extensions_mut().insert(upstream.clone());
        }
        res
    }
}

/// `answer`, unless the client leaves first: the work behind it (a program, a
/// request to an app server) is then dropped, which stops it, and the exchange is
/// logged with nginx's 499 (client closed request). Nobody reads that answer.
///
/// `answer` comes boxed: `select!` moves it into a state of its own, and a large
/// future would be copied, and kept twice over.
async fn unless_client_leaves(
    client: Client,
    answer: Pin<Box<impl std::future::Future<Output = Response<Body>>>>,
) -> Response<Body> {
    tokio::select! {
        biased;
        res = answer => res,
        () = client.left() => match http::StatusCode::from_u16(499) {
            Ok(closed) => response::error_with_reason(closed, "Client Closed Request"),
            Err(_) => response::error(http::StatusCode::BAD_REQUEST),
        },
    }
}

/// Whether the static handler's read side answers `head` (a tus HEAD goes to the
/// write side).
fn reads_files(head: &Parts) -> bool {
    static_files::allows(&head.method) && !uploads::tus::is_tus(head)
}

/// The other end of a COPY or MOVE (RFC 4918 §10.3), checked by the site like the
/// request's own path.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The path named by the `Destination` header.
    pub path: SitePath,
    /// What the rules allow there.
    pub access: Access,
}

/// The site's word on which paths this client may read as plain files (its access
/// lists, authentication, internal-only paths, and paths another handler answers):
/// an archive of a folder includes only those, and an app may hand back
/// (`X-Accel-Redirect`) only those. Built by the router, where rules exist, for
/// requests that ask for an archive or go to an app.
#[derive(Clone)]
pub struct ReadPolicy(pub Arc<dyn Fn(&SitePath) -> bool + Send + Sync>);

impl std::fmt::Debug for ReadPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadPolicy")
    }
}

/// One request as a handler sees it.
#[derive(Debug)]
pub struct Request<'a> {
    /// The request head: method, URI, version, headers.
    pub head: &'a Parts,
    /// The path served: the request's own, or a rule's rewrite of it.
    pub path: SitePath,
    /// `path` as it was spelled (before decoding), which keys per-path state.
    pub target: &'a str,
    /// The request body, read as the handler asks for it.
    pub body: RequestBody,
    /// The client's address.
    pub remote: SocketAddr,
    /// Whether the request came over TLS.
    pub tls: bool,
    /// The port the connection came in on.
    pub local_port: u16,
    /// The client's connection, watched by handlers that wait on a program or an
    /// app server, to stop it when the client leaves.
    pub client: Client,
    /// For COPY and MOVE, where to; `None` when the header is missing.
    pub destination: Option<Destination>,
    /// The user the site authenticated, if it asked for credentials.
    pub user: Option<&'a str>,
    /// Which paths below this one the client may read, when the site has rules and
    /// the request asks for more than one path (a folder's archive); `None`: all.
    pub readable: Option<ReadPolicy>,
}

/// Marks the request for a file an app handed back (`X-Accel-Redirect`): its path is
/// the app's, never the client's, so nothing about its spelling is told back.
#[derive(Debug, Clone, Copy)]
pub struct HandedBack;

/// The handlers and their shared state, built once at startup.
#[derive(Debug)]
pub struct Handlers {
    static_files: Arc<StaticFiles>,
    uploads: Arc<Uploads>,
    cgi: Arc<Cgi>,
    /// The largest body for a program whose rule sets none (`--max-upload-size`):
    /// this configuration's, while the slots in `cgi` outlive reloads.
    program_max_body: u64,
    /// The shared cache of proxied responses (`--proxy-cache`), if on.
    proxy_cache: Option<Arc<proxy::cache::Cache>>,
}

impl Handlers {
    /// The handlers serving from `static_files`' root, changing it through `uploads`,
    /// running programs as `cgi` says, storing proxied responses in `proxy_cache`.
    pub fn new(
        static_files: Arc<StaticFiles>,
        uploads: Uploads,
        cgi: cgi::Settings,
        proxy_cache: Option<Arc<proxy::cache::Cache>>,
    ) -> Handlers {
        Handlers {
            static_files,
            uploads: Arc::new(uploads),
            program_max_body: cgi.max_body,
            cgi: Arc::new(Cgi::new(cgi)),
            proxy_cache,
        }
    }

    /// These handlers with the state that must outlive a configuration reload taken
    /// from `old`: the file caches, WebDAV locks and resumable uploads in progress
    /// (the same folder, served the same way), and the CGI and FastCGI slots.
    pub fn keeping_state_of(mut self, old: &Handlers, same_folder: bool) -> Handlers {
        if same_folder {
            self.static_files = Arc::clone(&old.static_files);
            self.uploads = Arc::clone(&old.uploads);
            self.cgi = Arc::clone(&old.cgi);
        } else {
            // Programs found in the old folder are not this one's (a release with
            // hard-linked files keeps their inodes, which would pass the check).
            self.cgi = Arc::new(old.cgi.for_another_folder());
        }
        self
    }

    /// The served folder: the one resolver every handler reads and writes through.
    pub fn root(&self) -> &Root {
        self.static_files.root()
    }

    /// An answer available without waiting (a hot-cache hit), or `None`. Never
    /// blocks beyond a `stat`, so it runs inside the connection's `Service::call`;
    /// when it returns `None`, [`Handlers::respond`] gives the answer.
    pub fn ready(&self, handler: &Handler, head: &Parts, target: &str) -> Option<Response<Body>> {
        match handler {
            Handler::Static(_) if reads_files(head) => self.static_files.from_cache(head, target),
            Handler::Static(_) => None,
            // Files only: a cached listing of a folder is the app's to answer.
            Handler::Proxy(route)
                if route.files_first
                    && static_files::allows(&head.method)
                    && !target.ends_with('/') =>
            {
                self.static_files.from_cache(head, target)
            }
            // A fresh hit of the shared cache, from memory.
            Handler::Proxy(route) if route.cache => self
                .proxy_cache
                .as_ref()
                .and_then(|cache| proxy::cache::flow::ready(route, cache, head, target)),
            Handler::Proxy(_) | Handler::Cgi(_) | Handler::FastCgi(_) => None,
        }
    }

    /// The answer to `req`, after [`Handlers::ready`] had none.
    ///
    /// Each handler's future is boxed on its own: the connection boxes the future of
    /// a whole exchange, and without this it would be as large as the largest handler
    /// (kilobytes, copied into place for every request), whichever handler answers.
    pub async fn respond(&self, handler: &Handler, req: Request<'_>) -> Response<Body> {
        match handler {
            Handler::Static(access) if reads_files(req.head) => {
                let offers = Offers {
                    upload: access.upload,
                    delete: access.delete,
                };
                Box::pin(Arc::clone(&self.static_files).serve_uncached(req, Some(offers))).await
            }
            Handler::Static(access) => {
                Box::pin(Arc::clone(&self.uploads).respond(*access, req)).await
            }
            Handler::Cgi(route) => {
                let root = self.static_files.root_handle();
                let client = req.client;
                let folder = (root, self.static_files.hidden());
                let answer = Box::pin(self.cgi.respond(route, folder, self.program_max_body, req));
                let mut res = unless_client_leaves(client, answer).await;
                // A CGI program hands files back with a local `Location`; its notes
                // to a server in front (`X-Accel-*`, `X-Sendfile`, which name paths
                // on this machine) are for no client.
                handed_file::remove_notes(res.headers_mut());
                res
            }
            // A plain file under a PHP site's rule (a stylesheet, an upload) is
            // served as one, never handed to the application.
            Handler::FastCgi(route) if !route.runs(&req.path) => {
                if !static_files::allows(&req.head.method) {
                    return response::method_not_allowed(static_files::ALLOW);
                }
                // The path may hold dot segments for a script's PATH_INFO; a file's
                // may not.
                if !self.static_files.hidden() && req.path.is_hidden() {
                    return response::error(http::StatusCode::NOT_FOUND);
                }
                Box::pin(self.serve_file(req)).await
            }
            Handler::FastCgi(route) => {
                let root = self.static_files.root_handle();
                let max_body = route.max_body.unwrap_or(self.program_max_body);
                let (head, client, asked) = (req.head, req.client, req.path.clone());
                let peer = (req.remote, req.tls, req.local_port);
                let readable = req.readable.clone();
                let folder = (root, self.static_files.hidden());
                let answer = Box::pin(fastcgi::respond(&self.cgi, route, folder, max_body, req));
                let res = unless_client_leaves(client, answer).await;
                // A PHP app's X-Accel-Redirect, as nginx follows it after fastcgi_pass.
                let (mut parts, body) = res.into_parts();
                let Some((to, handed)) = handed_file::handed_back(&parts) else {
                    handed_file::remove_notes(&mut parts.headers);
                    return Response::from_parts(parts, body);
                };
                // The app's own body is not wanted: dropping it ends its answer.
                drop(body);
                let path_only = to.split('?').next().unwrap_or("");
                let source = SitePath::parse(path_only, self.static_files.hidden())
                    .is_ok_and(|target| !route.may_hand_back(&asked, &target));
                if source {
                    let asked = asked.rule_path();
                    tracing::warn!("{to:?} handed back by {asked:?} is a script: not sent");
                    return response::error(http::StatusCode::NOT_FOUND);
                }
                Box::pin(self.serve_internal(head, &to, handed, peer, readable)).await
            }
            // A response being stored for the shared cache is finished for the
            // requests that wait on it, and the next ones.
            Handler::Proxy(route) if route.cache && self.proxy_cache.is_some() => {
                Box::pin(self.respond_proxy(route, req)).await
            }
            Handler::Proxy(route) => {
                let client = req.client;
                unless_client_leaves(client, Box::pin(self.respond_proxy(route, req))).await
            }
        }
    }

    /// `req` answered from the files, by the read side alone (no writes, listing
    /// offers or archives of another handler's path).
    async fn serve_file(&self, req: Request<'_>) -> Response<Body> {
        Arc::clone(&self.static_files)
            .serve_uncached(req, None)
            .await
    }

    /// The proxy's answer: a file first when the route says so, then the shared cache
    /// or the upstream, then an `X-Accel-Redirect` followed.
    async fn respond_proxy(&self, route: &Arc<proxy::Route>, req: Request<'_>) -> Response<Body> {
        // nginx's `try_files $uri @app`: a file that exists is served, the rest goes
        // to the app.
        // A dotfile is never one of the files (unless `--hidden`): its path is the
        // app's.
        let shown = !req.path.is_hidden() || self.static_files.hidden();
        if route.files_first
            && shown
            && static_files::allows(&req.head.method)
            && self.is_file(&req.path).await
        {
            let files_req = Request {
                head: req.head,
                path: req.path.clone(),
                target: req.target,
                body: RequestBody::empty(),
                remote: req.remote,
                tls: req.tls,
                local_port: req.local_port,
                client: req.client,
                destination: None,
                user: req.user,
                readable: None,
            };
            let res = Box::pin(self.serve_file(files_req)).await;
            if res.status() != http::StatusCode::NOT_FOUND {
                return res;
            }
        }
        let head = req.head;
        let peer = (req.remote, req.tls, req.local_port);
        let readable = req.readable.clone();
        let res = match (&self.proxy_cache, route.cache) {
            (Some(cache), true) => {
                Box::pin(proxy::cache::flow::answer(
                    Arc::clone(route),
                    Arc::clone(cache),
                    req,
                ))
                .await
            }
            _ => proxy::forward::forward(Arc::clone(route), req).await,
        };
        match res.extensions().get::<response::InternalRedirect>() {
            Some(response::InternalRedirect(to)) => {
                let to = to.clone();
                Box::pin(self.serve_internal(head, &to, res, peer, readable)).await
            }
            None => res,
        }
    }
}
