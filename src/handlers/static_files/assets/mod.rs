//! The listing page's own style and script, built into the binary and served at
//! `?wharf=NAME` below any folder, so they come from the same place as the page, under
//! the same rules, and fit its `Content-Security-Policy` (`'self'`, nothing inline).

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};

use crate::http::body::Body;
use crate::http::etag::EntityTag;
use crate::http::path::SitePath;
use crate::http::representation::{self, Content, Representation};
use crate::http::response;

use super::qr;

/// One of the page's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// `listing.css`: layout, themes, icons.
    Style,
    /// `listing.js`: filter, keyboard, uploads with progress, folder operations.
    Script,
    /// `qr.svg`: the QR code of the folder's address on the local network.
    Qr,
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
        "wharf=qr.svg" => Some(Asset::Qr),
        _ => None,
    })
}

/// The answer for `asset` below the folder `folder`: 200, 304 or a range, cacheable
/// for an hour (a new wharf may bring new ones; the ETag tells). The QR code exists
/// only where wharf listens beyond loopback (404 otherwise).
pub fn respond(req: &Parts, asset: Asset, folder: &SitePath) -> Response<Body> {
    let rep = match asset {
        Asset::Style => READY[0].clone(),
        Asset::Script => READY[1].clone(),
        Asset::Qr => {
            let image = qr::lan_origin()
                .and_then(|origin| qr::svg(&format!("{origin}{}", folder.to_url(true))));
            let Some(image) = image else {
                return response::error(StatusCode::NOT_FOUND);
            };
            Representation {
                etag: Some(EntityTag::of_content(image.as_bytes())),
                len: image.len() as u64,
                content: Content::Bytes(Bytes::from(image)),
                content_type: HeaderValue::from_static("image/svg+xml"),
                last_modified: None,
                encoding: None,
                negotiated: false,
            }
        }
    };
    let mut res = representation::respond(req, rep);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}
