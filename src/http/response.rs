//! Responses that are the same whichever handler produces them: error pages,
//! redirects, OPTIONS and 405.
//!
//! Error pages are fixed text chosen by status alone: they never echo anything from
//! the request, so they cannot reflect markup or header bytes back to a client.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::http::body::Body;

/// `text/html; charset=utf-8`, for every HTML page wharf writes.
pub const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// Whether `time` can be written as an HTTP-date or RFC 3339 timestamp: from 1970
/// through 9999. File times outside that (a file dated 1960) are simply not sent.
pub fn is_writable_date(time: std::time::SystemTime) -> bool {
    time.duration_since(std::time::UNIX_EPOCH)
        .is_ok_and(|d| d.as_secs() < 253_402_300_800)
}

/// The `Last-Modified`-style value for `time`, when it has one.
pub fn http_date(time: std::time::SystemTime) -> Option<HeaderValue> {
    is_writable_date(time)
        .then(|| HeaderValue::from_str(&httpdate::fmt_http_date(time)).ok())
        .flatten()
}

/// A small HTML page for `status`, with its Content-Length.
pub fn error(status: StatusCode) -> Response<Body> {
    html(status, error_page_text(status))
}

/// A small HTML page for a `status` HTTP does not name (tus's 460), whose `reason`
/// is sent in the status line (hyper would send none) and shown on the page.
pub fn error_with_reason(status: StatusCode, reason: &'static str) -> Response<Body> {
    let mut res = html(status, page_text(status, reason));
    res.extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
    res
}

/// The text of the built-in error page for `status`.
pub fn error_page_text(status: StatusCode) -> String {
    page_text(status, status.canonical_reason().unwrap_or("Error"))
}

/// The text of an error page for `status` with `reason`.
fn page_text(status: StatusCode, reason: &str) -> String {
    error_page_with(status, reason, "")
}

/// The text of an error page for `status` with `reason` and `details`, HTML the
/// caller has escaped, between the heading and the footer.
pub fn error_page_with(status: StatusCode, reason: &str, details: &str) -> String {
    let code = status.as_u16();
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\n\
         <body><h1>{code} {reason}</h1>{details}<hr><p>wharf</p></body></html>\n"
    )
}

/// An HTML response with an explicit Content-Length.
pub fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HTML);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(page.len()));
    *res.body_mut() = Body::bytes(page);
    res
}

/// 301 to `location`, which the caller built from a parsed path (never from raw
/// request bytes), so it always starts with a single `/`.
pub fn moved_permanently(location: &str) -> Response<Body> {
    redirect(StatusCode::MOVED_PERMANENTLY, location)
}

/// A redirect with `status` to `location`.
pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut res = error(status);
    match HeaderValue::try_from(location) {
        Ok(value) => {
            res.headers_mut().insert(header::LOCATION, value);
            res
        }
        // Unreachable: locations made by SitePath, or checked when the config was
        // read. Wharf's own fault if not, never sent as a bad header.
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// 405 with the methods the resource does support.
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut res = error(StatusCode::METHOD_NOT_ALLOWED);
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// 405 for `refused` where the site supports `allow` in general: the resource
/// at hand does not take `refused` (MKCOL where a folder is, a form POST to a
/// file), so its `Allow` leaves it out (RFC 9110 §10.2.1).
pub fn method_not_allowed_here(allow: &str, refused: &http::Method) -> Response<Body> {
    let here: Vec<&str> = allow
        .split(", ")
        .filter(|m| *m != refused.as_str())
        .collect();
    let mut res = error(StatusCode::METHOD_NOT_ALLOWED);
    if let Ok(value) = HeaderValue::from_str(&here.join(", ")) {
        res.headers_mut().insert(header::ALLOW, value);
    }
    res
}

/// The answer to OPTIONS, listing what the resource supports.
pub fn options(allow: &'static str) -> Response<Body> {
    // 200 with `Content-Length: 0`, not 204: RFC 9110 §9.3.7 asks a contentless
    // OPTIONS answer for that field, which a 204 may not carry.
    let mut res = Response::new(Body::empty());
    let headers = res.headers_mut();
    headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    res
}

/// Marks a response that an upstream app produced (a proxied one): the site leaves
/// its status and body as the app made them (no custom error page).
#[derive(Debug, Clone, Copy)]
pub struct Relayed;

/// The other end of a connection that switches protocols (an app's `101`, e.g. a
/// WebSocket): once the `101` has gone out, the network layer joins the client's
/// connection to it, bytes both ways.
#[derive(Clone)]
pub struct Tunnel(pub std::sync::Arc<std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>>);

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tunnel")
    }
}

/// An app's `X-Accel-Redirect` (or `X-Sendfile`): the app decided, wharf serves the
/// file at this path under the root with full static semantics.
#[derive(Debug, Clone)]
pub struct InternalRedirect(pub String);

/// Which app server answered a proxied request (its URL as configured), and how long
/// its response head took: for the access log.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The upstream as configured (shared: one is made for every proxied request).
    pub address: std::sync::Arc<str>,
    /// From sending the request to its response head.
    pub head_time: std::time::Duration,
}

/// A program's answer naming a local path (CGI's local redirect, RFC 3875 §6.2.2):
/// the site answers that path instead, as a new GET request.
#[derive(Debug, Clone)]
pub struct LocalRedirect(pub String);
