//! Handlers: what produces the response for a request the site has accepted, and the
//! one seam through which the site reaches them.
//!
//! The seam is small on purpose. A handler gets a [`Request`] — the parsed
//! [`SitePath`], the request head, the body as a stream with back-pressure, the
//! client's address, whether the connection is TLS — and returns a `Response<Body>`.
//! [`Handler`] names which handler serves a path, carrying the options its rule gave
//! it; [`Handlers`] holds each handler's shared state and dispatches.
//!
//! Handlers depend on [`crate::http`] and [`crate::fs`] only: they never import the
//! site (rules, auth, the router) or the network layer. Adding one is a folder here,
//! a [`Handler`] variant with its rule options, and one arm in each `match` below.

pub mod static_files;

use std::net::SocketAddr;

use http::request::Parts;
use http::{Method, Response};

use crate::fs::Root;
use crate::handlers::static_files::StaticFiles;
use crate::http::body::Body;
use crate::http::path::SitePath;
use crate::http::request_body::RequestBody;

/// Which handler serves a path, with the options its rule gave it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Handler {
    /// Files, index files and listings from the served folder.
    #[default]
    Static,
}

impl Handler {
    /// Parses the `handler` value of a rule.
    pub fn parse(name: &str) -> Result<Handler, String> {
        match name {
            "static" => Ok(Handler::Static),
            other => Err(format!("unknown handler {other:?} (available: static)")),
        }
    }

    /// The methods this handler answers, as an `Allow` value (for `OPTIONS` and 405).
    pub fn allow(&self) -> &'static str {
        match self {
            Handler::Static => static_files::ALLOW,
        }
    }

    /// Whether this handler reads request bodies; the bodies of requests it answers
    /// are otherwise disposed of before it runs.
    pub fn reads_body(&self) -> bool {
        match self {
            Handler::Static => false,
        }
    }

    /// Whether this handler answers `method` (others get 405 or 501 from the site).
    pub fn allows(&self, method: &Method) -> bool {
        match self {
            Handler::Static => static_files::allows(method),
        }
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
}

/// The handlers and their shared state, built once at startup.
#[derive(Debug)]
pub struct Handlers {
    static_files: std::sync::Arc<StaticFiles>,
}

impl Handlers {
    /// The handlers serving from `static_files`' root.
    pub fn new(static_files: StaticFiles) -> Handlers {
        Handlers {
            static_files: std::sync::Arc::new(static_files),
        }
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
            Handler::Static => self.static_files.from_cache(head, target),
        }
    }

    /// The answer to `req`, after [`Handlers::ready`] had none.
    pub async fn respond(&self, handler: &Handler, req: Request<'_>) -> Response<Body> {
        match handler {
            Handler::Static => {
                std::sync::Arc::clone(&self.static_files)
                    .serve_uncached(req)
                    .await
            }
        }
    }
}
