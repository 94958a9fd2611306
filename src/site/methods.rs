//! The method policy: which methods a path answers is its handler's to say; the site
//! turns the rest into 405 with the handler's `Allow` (a method RFC 9110, RFC 5789 or
//! RFC 4918 defines) or 501 (any other, RFC 9110 §9.1), and answers `OPTIONS` with `Allow`.

use http::request::Parts;
use http::{Method, Response, StatusCode};

use crate::handlers::Handler;
use crate::http::body::Body;
use crate::http::response;

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

/// WebDAV's methods (RFC 4918), which wharf answers where writes are allowed: on a
/// read-only path they are known but not allowed (405), as PUT is.
const WEBDAV_METHODS: [&str; 7] = [
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
];

/// Whether RFC 9110, RFC 5789 or RFC 4918 defines `method`: refused with 405 where
/// it is not allowed, not 501.
pub fn is_known(method: &Method) -> bool {
    KNOWN_METHODS.contains(method) || WEBDAV_METHODS.contains(&method.as_str())
}

/// The refusal of the request `head` starts by `handler`: 405 with its `Allow` for a
/// known method, 501 for an unknown one; `None` when the handler answers it.
pub fn refuse(head: &Parts, handler: &Handler) -> Option<Response<Body>> {
    if handler.allows(head) {
        return None;
    }
    let method = &head.method;
    let known = is_known(method) || handler.knows(method);
    Some(if known {
        // The methods allowed in general, less the one refused here (a PATCH that
        // names no resumable upload).
        response::method_not_allowed_here(handler.allow(), method)
    } else {
        response::error(StatusCode::NOT_IMPLEMENTED)
    })
}

/// OPTIONS on a path that exists lists the methods `handler` answers; any other
/// answer stands.
pub fn options_answer(req: &Parts, res: Response<Body>, handler: &Handler) -> Response<Body> {
    let mut res = if req.method == Method::OPTIONS && res.status().is_success() {
        handler.options(req).unwrap_or(res)
    } else {
        res
    };
    // Which handler answered, for the metrics; an answer without the mark is the
    // static handler's (the common case costs nothing), see `metrics::HandlerKind`.
    let kind = handler.kind();
    if kind != crate::metrics::HandlerKind::Static {
        res.extensions_mut().insert(kind);
    }
    res
}
