//! The listing page's own style and script, built into the binary and served at
//! `?wharf=NAME` below any folder, so they come from the same place as the page, under
//! the same rules, and fit its `Content-Security-Policy` (`'self'`, nothing inline).

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::Response;

use crate::http::body::Body;
use crate::http::etag::EntityTag;
use crate::http::representation::{self, Content, Representation};

/// One of the page's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// `listing.css`: layout, themes, icons.
    Style,
    /// `listing.js`: filter, keyboard, uploads with progress, folder operations.
    Script,
}

static STYLE: &str = include_str!("listing.css");
static SCRIPT: &str = include_str!("listing.js");

/// Both files' representations, tagged once.
static READY: LazyLock<[Representation; 2]> = LazyLock::new(|| {
    let make = |text: &'static str, content_type: &'static str| Representation {
        etag: Some(EntityTag::of_content(text.as_bytes())),
        len: text.len() as u64,
        content: Content::Bytes(Bytes::from_static(text.as_bytes())),
        content_type: HeaderValue::from_static(content_type),
        last_modified: None,
        encoding: None,
        negotiated: false,
    };
    [
        make(STYLE, "text/css; charset=utf-8"),
        make(SCRIPT, "text/javascript; charset=utf-8"),
    ]
});

/// The asset `req`'s query names, if any.
pub fn asked(req: &Parts) -> Option<Asset> {
    req.uri.query()?.split('&').find_map(|pair| match pair {
        "wharf=listing.css" => Some(Asset::Style),
        "wharf=listing.js" => Some(Asset::Script),
        _ => None,
    })
}

/// The answer for `asset`: 200, 304 or a range, cacheable for an hour (a new wharf
/// may bring new ones; the ETag tells).
pub fn respond(req: &Parts, asset: Asset) -> Response<Body> {
    let rep = match asset {
        Asset::Style => READY[0].clone(),
        Asset::Script => READY[1].clone(),
    };
    let mut res = representation::respond(req, rep);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}
