//! From a parsed request to exactly one handler, and back.
//!
//! The router owns everything that is the same for every handler: the request checks
//! RFC 9112 asks of a server (Host, userinfo, transfer codings, target length, header
//! size), the method policy,
//! parsing the path into a [`SitePath`], HEAD (same headers, no body), and the end of
//! each exchange (the access-log line and the connection clock).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::access_log::{AccessLog, Record};
use crate::auth::{self, Verdict};
use crate::body::{Body, Finish};
use crate::cache::HotCache;
use crate::compress::VariantCache;
use crate::config::Config;
use crate::connection::Clock;
use crate::cors::Cors;
use crate::etag::EtagCache;
use crate::fs::Root;
use crate::negotiate;
use crate::path::{PathError, SitePath};
use crate::response;
use crate::rules::{self, Handler};
use crate::static_files;
use crate::zero_copy::SendfileQueue;

/// Methods the static handler answers.
pub const STATIC_ALLOW: &str = "GET, HEAD, OPTIONS";

/// Shared, immutable state for every request.
#[derive(Debug)]
pub struct Router {
    /// The served folder.
    pub root: Root,
    /// Settings.
    pub config: Config,
    /// Where exchanges are logged.
    pub log: AccessLog,
    /// Content hashes of files, for ETags.
    pub etags: EtagCache,
    /// Responses compressed on the fly.
    pub variants: VariantCache,
    /// Ready responses for recently requested paths.
    pub cache: HotCache,
    /// Cache misses under way, one per path.
    pub inflight: crate::inflight::InFlight,
    /// Password verifications allowed at once.
    auth_permits: tokio::sync::Semaphore,
}

/// ETags remembered; each entry is about 100 bytes.
const ETAG_CACHE_ENTRIES: usize = 64 * 1024;

impl Router {
    /// Builds the router; fails (for a startup message) when the root cannot be opened.
    pub fn new(config: Config, log: AccessLog) -> Result<Router, String> {
        let root = Root::open_dir(&config.root, config.follow_symlinks)?
            .withholding(config.withheld.clone());
        Ok(Router {
            root,
            etags: EtagCache::new(ETAG_CACHE_ENTRIES),
            variants: VariantCache::new(config.compress_cache_size),
            cache: HotCache::new(config.cache_size),
            inflight: Default::default(),
            auth_permits: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
            config,
            log,
        })
    }

    /// What can be decided about a request without waiting: the answer itself for
    /// a bad request, a redirect or a hot-cache hit (so the common case never builds
    /// or boxes the async handler's state), or what is left to do.
    fn answer_now(&self, req: &Parts) -> Answer {
        // The request's own problems come before any rule or handler sees it.
        if let Some(status) = self.reject(req) {
            return Answer::Now(response::error(status));
        }
        if !self.config.site.is_empty() {
            return Answer::WithRules;
        }
        let path = req.uri.path();
        match self.route(req, path) {
            Route::Done(res) => Answer::Now(res),
            Route::Static(site_path) => match static_files::from_cache(self, req, path) {
                Some(res) => Answer::Now(options_answer(req, res)),
                None => Answer::Uncached(site_path),
            },
        }
    }

    /// The answer of plain HTTP to an HTTPS site: the request checks of the site
    /// itself (a bad or doubled Host is a 400, not somewhere to redirect to), `*` as
    /// the site answers it, and otherwise the redirect to HTTPS on `https_port`.
    fn redirect_to_https(&self, req: &Parts, https_port: u16) -> Response<Body> {
        if let Some(status) = self.reject(req) {
            return response::error(status);
        }
        if req.uri.path() == "*" {
            if let Route::Done(res) = self.route(req, "*") {
                return res;
            }
        }
        crate::https_redirect::respond(req, https_port)
    }

    /// The checks and parsing every handler needs first (`*`, methods, a path that
    /// does not parse); the request's own problems were answered by `reject` before.
    fn route(&self, req: &Parts, path: &str) -> Route {
        let method = &req.method;
        if path == "*" {
            return Route::Done(if method == Method::OPTIONS {
                response::options(STATIC_ALLOW)
            } else {
                response::error(StatusCode::BAD_REQUEST)
            });
        }
        let is_read = method == Method::GET || method == Method::HEAD;
        if !is_read && method != Method::OPTIONS {
            // A method defined by RFC 9110 or RFC 5789 is known, just not allowed
            // here: 405. Anything else is not implemented (RFC 9110 §9.1): 501.
            return Route::Done(if KNOWN_METHODS.contains(method) {
                response::method_not_allowed(STATIC_ALLOW)
            } else {
                response::error(StatusCode::NOT_IMPLEMENTED)
            });
        }
        match SitePath::parse(path, self.config.hidden) {
            Ok(site_path) => Route::Static(site_path),
            Err(PathError::BadRequest) => Route::Done(response::error(StatusCode::BAD_REQUEST)),
            Err(PathError::NotFound) => Route::Done(response::error(StatusCode::NOT_FOUND)),
        }
    }

    /// The request as if its path were `path` (the request's own, or a rewrite).
    async fn handle_path(
        self: Arc<Self>,
        req: &Parts,
        path: &str,
        handler: Handler,
    ) -> Response<Body> {
        let site_path = match self.route(req, path) {
            Route::Done(res) => return res,
            Route::Static(site_path) => site_path,
        };
        let res = match handler {
            Handler::Static => static_files::serve(Arc::clone(&self), req, site_path, path).await,
        };
        options_answer(req, res)
    }

    /// The request with the configuration file's rules applied around the handler:
    /// access lists, then a redirect, or a rewrite, the handler and the SPA fallback;
    /// then the custom error page and the rules' headers.
    async fn handle_with_rules(self: Arc<Self>, req: &Parts, remote: IpAddr) -> Response<Body> {
        let site = &self.config.site;
        let path = req.uri.path();
        // Rules match the decoded, normalised path, never the raw spelling; a path that
        // does not parse gets its 400/404 from the handler, with no rule applied.
        let rule_path = SitePath::parse(path, self.config.hidden)
            .map(|p| p.rule_path())
            .unwrap_or_default();
        let matched = if rule_path.is_empty() {
            Vec::new()
        } else {
            site.matching(&rule_path)
        };
        let rewritten = matched.iter().find_map(|(rule, caps)| {
            rule.rewrite
                .as_ref()
                .map(|t| rules::expand(t, &encoded(caps)))
        });
        // A rewrite must not lead around the rules of where it lands: the access rules
        // of the rewritten path are checked as well as the request's own.
        let landed = rewritten
            .as_deref()
            .and_then(|t| SitePath::parse(t, self.config.hidden).ok())
            .map(|p| p.rule_path())
            .unwrap_or_default();
        let landed_rules = if landed.is_empty() {
            Vec::new()
        } else {
            site.matching(&landed)
        };
        let guards: Vec<&rules::Rule> = matched
            .iter()
            .chain(landed_rules.iter())
            .map(|(rule, _)| *rule)
            .collect();
        let cors = matched.iter().find_map(|(rule, _)| rule.cors.as_ref());
        let mut res = if guards.iter().any(|rule| !rule.admits(remote)) {
            response::error(StatusCode::FORBIDDEN)
        } else if let Some(cors) = cors.filter(|_| Cors::is_preflight(req)) {
            // Preflights carry no credentials: they are answered before authentication.
            return cors.preflight(req);
        } else if let Some(refused) = self.authenticate(req, remote, &guards).await {
            refused
        } else if let Some((redirect, caps)) = matched
            .iter()
            .find_map(|(rule, caps)| rule.redirect.as_ref().map(|r| (r, caps)))
        {
            let to = rules::expand(&redirect.to, &encoded(caps));
            response::redirect(redirect.status, &keep_query(to, req.uri.query()))
        } else {
            let target = rewritten.as_deref().unwrap_or(path);
            // The handler of the path actually served: the rewrite's target, if any.
            let served_rules = if rewritten.is_some() {
                &landed_rules
            } else {
                &matched
            };
            let handler = first_handler(served_rules);
            let mut res = Arc::clone(&self).handle_path(req, target, handler).await;
            let spa = matched.iter().find_map(|(rule, _)| rule.spa.as_deref());
            if let (Some(spa), StatusCode::NOT_FOUND) = (spa, res.status()) {
                if wants_a_page(req) {
                    let handler = self.handler_for(spa);
                    let fallback = Arc::clone(&self).handle_path(req, spa, handler).await;
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
        if status.is_client_error() || status.is_server_error() {
            if let Some(page) = site.error_page(status) {
                res = Arc::clone(&self).error_page(req, page, res).await;
            }
        }
        // As nginx's add_header: on successes, redirects and 304, never on errors, so
        // that e.g. a year-long Cache-Control never pins a 404.
        if adds_rule_headers(res.status()) {
            for (rule, _) in &matched {
                for (name, value) in &rule.headers {
                    res.headers_mut().insert(name.clone(), value.clone());
                }
            }
        }
        if let Some(cors) = cors {
            cors.decorate(req, &mut res);
        }
        if site.security_headers {
            let headers = res.headers_mut();
            for (name, value) in SECURITY_HEADERS {
                headers.insert(name.clone(), HeaderValue::from_static(value));
            }
            if self.config.tls.is_some() {
                headers.insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static("max-age=31536000"),
                );
            }
        }
        res
    }

    /// The handler the rules assign to `path` (static when none names one).
    fn handler_for(&self, path: &str) -> Handler {
        SitePath::parse(path, self.config.hidden)
            .map(|p| first_handler(&self.config.site.matching(&p.rule_path())))
            .unwrap_or_default()
    }

    /// Checks HTTP Basic credentials when a matching rule asks for them: `None` to go
    /// on, or the refusal (401 with a challenge, 403 for a user the rule does not
    /// admit, 429 after too many failures from this client).
    async fn authenticate(
        &self,
        req: &Parts,
        remote: IpAddr,
        guards: &[&rules::Rule],
    ) -> Option<Response<Body>> {
        let required: Vec<&rules::AuthRule> =
            guards.iter().filter_map(|r| r.auth.as_ref()).collect();
        if required.is_empty() {
            return None;
        }
        let users = Arc::clone(&self.config.site.users);
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
            Verdict::User(user) if required.iter().all(|r| r.admits(&user)) => None,
            Verdict::User(_) => Some(response::error(StatusCode::FORBIDDEN)),
            Verdict::Denied => {
                let mut res = response::error(StatusCode::UNAUTHORIZED);
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, auth::challenge());
                Some(res)
            }
            Verdict::Throttled => {
                let mut res = response::error(StatusCode::TOO_MANY_REQUESTS);
                res.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(auth::FAIL_WINDOW.as_secs()),
                );
                Some(res)
            }
        }
    }

    /// `original` (an error) with its body replaced by the custom page at `page`; the
    /// status and the headers that explain the error (Allow, Content-Range,
    /// Retry-After, Vary) stay.
    async fn error_page(
        self: Arc<Self>,
        req: &Parts,
        page: &str,
        original: Response<Body>,
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
        let handler = self.handler_for(page);
        let mut res = self.handle_path(&fetch, page, handler).await;
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

    /// The checks RFC 9112 asks of every request before its target is looked at.
    fn reject(&self, req: &Parts) -> Option<StatusCode> {
        let mut hosts = req.headers.get_all(header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (_, Some(_)) => return Some(StatusCode::BAD_REQUEST),
            (None, None) if req.version == Version::HTTP_11 => {
                return Some(StatusCode::BAD_REQUEST)
            }
            (Some(host), None) if !valid_host(host) => return Some(StatusCode::BAD_REQUEST),
            _ => {}
        }
        // HTTP/2: a Host naming another authority than `:authority` is malformed
        // (RFC 9113 §8.3.1); one of the two would be believed, and not the same by all.
        if req.version == Version::HTTP_2 {
            if let (Some(authority), Some(host)) =
                (req.uri.authority(), req.headers.get(header::HOST))
            {
                if !same_authority(authority, host, req.uri.scheme()) {
                    return Some(StatusCode::BAD_REQUEST);
                }
            }
        }
        // Userinfo in an http(s) target is an error (RFC 9110 §4.2.4).
        if req
            .uri
            .authority()
            .is_some_and(|a| a.as_str().contains('@'))
        {
            return Some(StatusCode::BAD_REQUEST);
        }
        if let Some(status) = transfer_coding_problem(req) {
            return Some(status);
        }
        if target_len(req) > self.config.max_target_len {
            return Some(StatusCode::URI_TOO_LONG);
        }
        let header_bytes: usize = req
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if header_bytes > self.config.max_header_size {
            return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        None
    }
}

/// Whether a Host field names `authority`: hosts compared without regard to case,
/// ports with the scheme's default filled in (`example.com` is `example.com:443` over
/// HTTPS).
fn same_authority(
    authority: &http::uri::Authority,
    host: &HeaderValue,
    scheme: Option<&http::uri::Scheme>,
) -> bool {
    let Ok(host) = http::uri::Authority::try_from(host.as_bytes()) else {
        return false;
    };
    // Something after the host that is no port number.
    if host.as_str().len() > host.host().len() && host.port_u16().is_none() {
        return false;
    }
    let default = if scheme == Some(&http::uri::Scheme::HTTPS) {
        443
    } else {
        80
    };
    host.host().eq_ignore_ascii_case(authority.host())
        && host.port_u16().unwrap_or(default) == authority.port_u16().unwrap_or(default)
}

/// What [`Router::answer_now`] could decide.
enum Answer {
    /// The response, ready.
    Now(Response<Body>),
    /// A static path the hot cache could not answer: the blocking pool must.
    Uncached(SitePath),
    /// The site has rules, which may authenticate (and so wait): all of it is async.
    WithRules,
}

/// What [`Router::route`] found.
enum Route {
    /// The request is answered already (an error, or `OPTIONS *`).
    Done(Response<Body>),
    /// A path the static handler should serve.
    Static(SitePath),
}

/// OPTIONS on a path that exists lists the methods; any other answer stands.
fn options_answer(req: &Parts, res: Response<Body>) -> Response<Body> {
    if req.method == Method::OPTIONS && res.status().is_success() {
        response::options(STATIC_ALLOW)
    } else {
        res
    }
}

/// The first handler named by `rules` (static when none is).
fn first_handler(rules: &[(&rules::Rule, Vec<&str>)]) -> Handler {
    rules
        .iter()
        .find_map(|(rule, _)| rule.handler)
        .unwrap_or_default()
}

/// Captures (decoded text) percent-encoded for a URL or path.
fn encoded(caps: &[&str]) -> Vec<String> {
    caps.iter().map(|c| crate::path::encode_path(c)).collect()
}

/// A redirect target with the request's query kept, as nginx's `rewrite` does: after
/// the target's own query with `&`, or as the query when it has none; a target ending
/// in `?` asks for the request's query to be dropped.
fn keep_query(mut to: String, query: Option<&str>) -> String {
    if to.ends_with('?') {
        to.pop();
        return to;
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        to.push(if to.contains('?') { '&' } else { '?' });
        to.push_str(query);
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

/// Methods this server knows, whether or not a resource allows them.
const KNOWN_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::OPTIONS,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::TRACE,
    Method::CONNECT,
];

/// Host is `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2): an IP literal in
/// brackets, or a reg-name / IPv4 address (unreserved, pct-encoded, sub-delims), then
/// an optional port of digits. No userinfo. An empty Host is allowed.
fn valid_host(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    let (host_ok, rest) = if let Some(literal) = bytes.strip_prefix(b"[") {
        match literal.iter().position(|&b| b == b']') {
            Some(end) => {
                let inside = std::str::from_utf8(&literal[..end]).unwrap_or("");
                (
                    inside.parse::<std::net::Ipv6Addr>().is_ok(),
                    &literal[end + 1..],
                )
            }
            None => (false, &b""[..]),
        }
    } else {
        let end = bytes.iter().position(|&b| b == b':').unwrap_or(bytes.len());
        (is_reg_name(&bytes[..end]), &bytes[end..])
    };
    let port_ok = match rest.split_first() {
        None => true,
        Some((b':', port)) => port.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    host_ok && port_ok
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (RFC 3986 §3.2.2).
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => {
                let hex = name.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// What is wrong with the request's transfer codings, if anything: hyper accepts any
/// list that ends in `chunked`, but a coding it cannot decode is not implemented
/// (RFC 9112 §6.1: 501), and `chunked` applied twice is malformed (§7: 400).
fn transfer_coding_problem(req: &Parts) -> Option<StatusCode> {
    if !req.headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    let mut chunked = 0;
    for coding in negotiate::list_members(&req.headers, &header::TRANSFER_ENCODING) {
        match coding.trim() {
            "" => {}
            c if c.eq_ignore_ascii_case("chunked") => chunked += 1,
            _ => return Some(StatusCode::NOT_IMPLEMENTED),
        }
    }
    (chunked != 1).then_some(StatusCode::BAD_REQUEST)
}

fn target_len(req: &Parts) -> usize {
    let uri = &req.uri;
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let rest = uri.path_and_query().map_or(0, |p| p.as_str().len());
    scheme + authority + rest
}

/// The hyper service for one connection: tags each exchange with the connection's
/// clock and the client address.
#[derive(Debug, Clone)]
pub struct ConnectionService {
    router: Arc<Router>,
    remote: SocketAddr,
    clock: Arc<Clock>,
    sendfile: Option<Arc<SendfileQueue>>,
    redirect_to: Option<u16>,
}

impl ConnectionService {
    /// A service for the connection from `remote`; `sendfile` when its transport can
    /// send file ranges itself; `redirect_to` to answer everything with a redirect to
    /// HTTPS on that port.
    pub fn new(
        router: Arc<Router>,
        remote: SocketAddr,
        clock: Arc<Clock>,
        sendfile: Option<Arc<SendfileQueue>>,
        redirect_to: Option<u16>,
    ) -> Self {
        ConnectionService {
            router,
            remote,
            clock,
            sendfile,
            redirect_to,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Reply;

    fn call(&self, req: Request<Incoming>) -> Reply {
        let has_body = !http_body::Body::is_end_stream(req.body());
        let keep_alive = keeps_alive(&req);
        let http10 = req.version() == Version::HTTP_10;
        if http10 {
            self.clock.answering_http10();
        }
        self.clock.request_started(keep_alive, has_body);
        let exchange = Exchange::begin(&self.router, &req, self.remote, Arc::clone(&self.clock));
        let (parts, body) = req.into_parts();
        let answer = match self.redirect_to {
            Some(port) => Answer::Now(self.router.redirect_to_https(&parts, port)),
            None => self.router.answer_now(&parts),
        };
        let finish = Finishing {
            head: parts.method == Method::HEAD,
            http1: matches!(parts.version, Version::HTTP_10 | Version::HTTP_11),
            http10,
            client_closes: http10 && !keep_alive,
            sendfile: self.sendfile.clone(),
            exchange,
        };
        let router = Arc::clone(&self.router);
        let remote = self.remote.ip();
        // Only HTTP/1 needs the body gone to go on (an HTTP/2 stream's unread body
        // costs that stream alone), and not when the answer ends the connection anyway.
        let discard_first = has_body
            && finish.http1
            && worth_discarding(&parts)
            && !matches!(&answer, Answer::Now(res) if ends_connection(res.status()));
        if !discard_first {
            // Dropped: on HTTP/1 with a body, hyper then closes after the answer.
            drop(body);
            return reply(answer, parts, finish, router, remote);
        }
        let clock = Arc::clone(&self.clock);
        Reply::Later(Box::pin(async move {
            match discard(body).await {
                Ok(true) => clock.body_read(),
                Ok(false) => {}
                // The framing is lost: the 400 also ends the connection.
                Err(_) => return finish.apply(response::error(StatusCode::BAD_REQUEST)),
            }
            match reply(answer, parts, finish, router, remote).await {
                Ok(res) => res,
                Err(never) => match never {},
            }
        }))
    }
}

/// The exchange's future for what `answer_now` decided.
fn reply(
    answer: Answer,
    parts: Parts,
    finish: Finishing,
    router: Arc<Router>,
    remote: IpAddr,
) -> Reply {
    match answer {
        Answer::Now(res) => Reply::Now(Some(finish.apply(res))),
        Answer::Uncached(site_path) => Reply::Later(Box::pin(async move {
            let path = parts.uri.path();
            let res = static_files::serve_uncached(router, &parts, site_path, path).await;
            finish.apply(options_answer(&parts, res))
        })),
        Answer::WithRules => Reply::Later(Box::pin(async move {
            let res = router.handle_with_rules(&parts, remote).await;
            finish.apply(res)
        })),
    }
}

/// Request bodies read and dropped, at most: beyond this the connection is closed
/// after the answer rather than spend the time.
const DISCARD_LIMIT: u64 = 64 * 1024;
/// How long a body being discarded may take to arrive.
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a request body no handler reads should be read and dropped (as nginx
/// discards one), so that the connection stays usable and a body that breaks its own
/// framing is answered 400. Not when the client waits for `100 Continue` (the answer
/// does not need the body, so it is not invited), nor when the body is announced
/// larger than [`DISCARD_LIMIT`].
fn worth_discarding(parts: &Parts) -> bool {
    let expects = parts.headers.contains_key(header::EXPECT);
    let too_long = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > DISCARD_LIMIT);
    !expects && !too_long
}

/// Reads and drops `body`: true when it was read to its end, an error when its framing
/// is broken (a malformed chunk, a connection closed short of the announced length).
/// Gives up quietly past [`DISCARD_LIMIT`] bytes or [`DISCARD_TIME`]; hyper then
/// closes the connection after the answer.
async fn discard(mut body: Incoming) -> Result<bool, hyper::Error> {
    let read = async {
        let mut seen: u64 = 0;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Some(data) = frame?.data_ref() {
                seen += data.len() as u64;
                if seen > DISCARD_LIMIT {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    tokio::time::timeout(DISCARD_TIME, read)
        .await
        .unwrap_or(Ok(false))
}

/// The future of one exchange: ready at once when the router could answer without
/// waiting, which is the common case and costs no allocation.
pub enum Reply {
    /// Answered; taken by the first poll.
    Now(Option<Response<Body>>),
    /// Waiting on the disk, the blocking pool or a password check.
    Later(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl Future for Reply {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            Reply::Now(res) => match res.take() {
                Some(res) => std::task::Poll::Ready(Ok(res)),
                None => std::task::Poll::Pending,
            },
            Reply::Later(fut) => fut.as_mut().poll(cx).map(Ok),
        }
    }
}

/// What every response gets on its way out, whichever way it was produced.
struct Finishing {
    head: bool,
    /// HTTP/1.x, where a response can say that the connection closes.
    http1: bool,
    /// HTTP/1.0, whose responses hyper frames without chunked coding.
    http10: bool,
    /// An HTTP/1.0 client that did not ask for keep-alive: its response, labelled
    /// HTTP/1.1, says the connection closes, as a 1.1 client would be told.
    client_closes: bool,
    sendfile: Option<Arc<SendfileQueue>>,
    exchange: Exchange,
}

impl Finishing {
    fn apply(self, mut res: Response<Body>) -> Response<Body> {
        if self.head {
            strip_body(&mut res);
        }
        let refused = ends_connection(res.status());
        // A close-delimited body (length unknown) ends an HTTP/1.0 connection too.
        let unframed = self.http10 && res.body().exact_len().is_none();
        if self.http1 && (self.client_closes || refused || unframed) {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            if self.http10 {
                // So hyper closes, instead of replacing `close` with the `keep-alive`
                // a 1.0 client asked for; the status line still says HTTP/1.1.
                *res.version_mut() = Version::HTTP_10;
            }
            if refused {
                self.exchange.clock.closing_on_error();
            }
        }
        if let Some(queue) = self.sendfile {
            res.body_mut().use_sendfile(queue);
        }
        self.exchange.attach(&mut res);
        res
    }
}

/// Whether an HTTP/1 connection ends after a response with `status`: a request that
/// was malformed or too large may have been misread (and what follows it with it), and
/// after a server fault a fresh connection is the safe retry; nginx closes after the
/// same statuses.
fn ends_connection(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::URI_TOO_LONG
            | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::NOT_IMPLEMENTED
    )
}

/// Whether the client expects the connection to stay open after this exchange: HTTP/2
/// always, HTTP/1.1 unless it says `close`, HTTP/1.0 only when it asks (RFC 9112 §9.3).
fn keeps_alive<B>(req: &Request<B>) -> bool {
    let says = |token: &str| {
        req.headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match req.version() {
        Version::HTTP_10 | Version::HTTP_09 => says("keep-alive"),
        Version::HTTP_11 => !says("close"),
        _ => true,
    }
}

/// HEAD: the headers GET would send, including Content-Length, and no body. Responses
/// that have no content by definition (304, 204) get no Content-Length either.
fn strip_body(res: &mut Response<Body>) {
    let contentless = matches!(
        res.status(),
        StatusCode::NOT_MODIFIED | StatusCode::NO_CONTENT
    );
    if let Some(len) = res.body().exact_len().filter(|_| !contentless) {
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    res.body_mut().clear();
}

/// What is known of an exchange from its request; completed when its body is dropped.
struct Exchange {
    clock: Arc<Clock>,
    /// When the request arrived; only measured when it will be logged.
    started: Option<Instant>,
    record: Option<Record>,
    log: AccessLog,
}

impl Exchange {
    fn begin<B>(router: &Router, req: &Request<B>, remote: SocketAddr, clock: Arc<Clock>) -> Self {
        let record = router.log.enabled().then(|| Record {
            remote: remote.ip(),
            time: SystemTime::now(),
            method: req.method().clone(),
            // HTTP/2 has no request line; log what an HTTP/1 client would have sent.
            target: match (req.version(), req.uri().path_and_query()) {
                (Version::HTTP_2, Some(pq)) => pq.as_str().to_string(),
                _ => req.uri().to_string(),
            },
            version: req.version(),
            status: 0,
            bytes: 0,
            referer: header_bytes(req, header::REFERER),
            user_agent: header_bytes(req, header::USER_AGENT),
            duration: Default::default(),
            complete: false,
        });
        Exchange {
            clock,
            started: record.as_ref().map(|_| Instant::now()),
            record,
            log: router.log.clone(),
        }
    }

    fn attach(mut self, res: &mut Response<Body>) {
        if let Some(record) = &mut self.record {
            record.status = res.status().as_u16();
        }
        res.body_mut().on_finish(Box::new(self));
    }
}

impl Finish for Exchange {
    fn finish(mut self: Box<Self>, bytes_sent: u64, complete: bool) {
        if let Some(mut record) = self.record.take() {
            record.bytes = bytes_sent;
            record.complete = complete;
            record.duration = self.started.map(|t| t.elapsed()).unwrap_or_default();
            self.log.log(&record);
        }
    }
}

impl Drop for Exchange {
    /// Runs whether the exchange completed, or its future was dropped before a
    /// response existed (the client went away), so the clock never leaks a request.
    fn drop(&mut self) {
        self.clock.request_finished();
    }
}

fn header_bytes<B>(req: &Request<B>, name: header::HeaderName) -> Option<Vec<u8>> {
    req.headers().get(name).map(|v| v.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::same_authority;
    use http::uri::{Authority, Scheme};
    use http::HeaderValue;

    #[test]
    fn host_and_authority_agree_up_to_case_and_default_port() {
        let same = |authority: &str, host: &str, scheme: &Scheme| {
            same_authority(
                &Authority::try_from(authority).unwrap(),
                &HeaderValue::from_str(host).unwrap(),
                Some(scheme),
            )
        };
        assert!(same("example.com", "EXAMPLE.com", &Scheme::HTTPS));
        assert!(same("example.com", "example.com:443", &Scheme::HTTPS));
        assert!(same("example.com:80", "example.com", &Scheme::HTTP));
        assert!(!same("example.com", "example.com:80", &Scheme::HTTPS));
        assert!(!same("example.com", "other.com", &Scheme::HTTP));
        assert!(!same("example.com", "example.com:x", &Scheme::HTTP));
    }
}
