//! The static handler: a file, a directory's index file, a redirect to the
//! directory's canonical URL, or a listing.
//!
//! All file-system work for one request happens in one trip to the blocking pool
//! (open, fstat, index lookup, ETag, choice of encoding, sidecar lookup, compression on
//! a cache miss, and for small files the read itself), so the async workers never wait
//! on the disk or the CPU-heavy parts and a request costs at most one hop.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use http::header;
use http::request::Parts;
use http::{Response, StatusCode};

use crate::body::Body;
use crate::compress;
use crate::fs::{Entry, Node, OpenFile};
use crate::listing::{self, Listing};
use crate::mime;
use crate::negotiate::{self, Encoding};
use crate::path::SitePath;
use crate::representation::{self, Content, Representation};
use crate::response;
use crate::router::Router;

/// Files up to this size are read whole in the same blocking call that opens them.
const INLINE_READ: u64 = 64 * 1024;

/// Names tried, in order, when a directory is requested.
const INDEX_FILES: [&[u8]; 2] = [b"index.html", b"index.htm"];

enum Resolved {
    /// The representation chosen for the client.
    File(Box<Representation>),
    /// A file exists, but in no encoding the client accepts.
    NotAcceptable {
        negotiated: bool,
    },
    /// The directory exists; its canonical URL ends in `/`.
    AddSlash(SitePath),
    Listing(SitePath, Vec<Entry>),
}

/// Answers GET/HEAD/OPTIONS for `path`.
pub async fn serve(router: Arc<Router>, req: &Parts, path: SitePath) -> Response<Body> {
    let json = negotiate::prefers_json(req.headers.get(header::ACCEPT));
    let encodings = negotiate::encoding_preferences(req.headers.get(header::ACCEPT_ENCODING));
    let resolver = Arc::clone(&router);
    let resolved = tokio::task::spawn_blocking(move || resolve(&resolver, path, &encodings))
        .await
        .unwrap_or_else(|join| Err(io::Error::other(join)));
    match resolved {
        Ok(Resolved::File(rep)) => representation::respond(req, *rep),
        Ok(Resolved::NotAcceptable { negotiated }) => {
            let mut res = response::error(StatusCode::NOT_ACCEPTABLE);
            if negotiated {
                res.headers_mut().insert(
                    header::VARY,
                    header::HeaderValue::from_static("Accept-Encoding"),
                );
            }
            res
        }
        Ok(Resolved::AddSlash(path)) => {
            let mut location = path.to_url(true);
            if let Some(query) = req.uri.query() {
                location.push('?');
                location.push_str(query);
            }
            response::moved_permanently(&location)
        }
        Ok(Resolved::Listing(path, entries)) => {
            let format = if json {
                listing::Format::Json
            } else {
                listing::Format::Html
            };
            Listing::new(path, entries, format).into_response()
        }
        Err(err) => io_error(&err),
    }
}

fn resolve(router: &Router, path: SitePath, encodings: &[Encoding]) -> io::Result<Resolved> {
    let root = &router.root;
    match root.open(&path)? {
        // `/file.txt/` names a directory that does not exist.
        Node::File(_) if path.has_trailing_slash() => Err(io::ErrorKind::NotFound.into()),
        Node::File(open) => represent(router, &path, open, encodings),
        Node::Dir(_) if !path.has_trailing_slash() => Ok(Resolved::AddSlash(path)),
        Node::Dir(dir) => {
            for index in INDEX_FILES {
                let index_path = path.join(index);
                // A directory called index.html is not an index.
                if let Ok(Node::File(open)) = root.open(&index_path) {
                    return represent(router, &index_path, open, encodings);
                }
            }
            let mut entries = root.list(dir, &path)?;
            if !router.config.hidden {
                entries.retain(|e| !e.name.starts_with(b"."));
            }
            listing::sort(&mut entries);
            Ok(Resolved::Listing(path, entries))
        }
    }
}

/// Chooses the representation of the file at `path` for a client accepting
/// `encodings` (best first): for each acceptable coding, a precompressed sidecar
/// (`app.js.br`, `.zst`, `.gz`) if one exists, else a variant compressed on the fly
/// (cached); identity when it comes first or nothing better exists.
fn represent(
    router: &Router,
    path: &SitePath,
    open: OpenFile,
    encodings: &[Encoding],
) -> io::Result<Resolved> {
    let len = open.meta.len();
    let small = if len <= INLINE_READ {
        let mut buf = vec![0u8; len as usize];
        open.file.read_exact_at(&mut buf, 0)?;
        Some(Bytes::from(buf))
    } else {
        None
    };
    let content_type = mime::content_type(path.file_name().unwrap_or_default());
    let negotiated = compress::is_compressible(&content_type);
    let etag = router.etags.tag(&open.file, &open.meta, small.as_deref())?;
    let file = Arc::new(open.file);
    let identity = Representation {
        content: small.map_or_else(|| Content::File(Arc::clone(&file)), Content::Bytes),
        len,
        content_type,
        etag: Some(etag.clone()),
        last_modified: open.meta.modified().ok(),
        encoding: None,
        negotiated,
    };
    for &encoding in encodings {
        if encoding == Encoding::Identity {
            return Ok(Resolved::File(Box::new(identity)));
        }
        if !negotiated {
            continue;
        }
        if let Ok(Node::File(sidecar)) = router
            .root
            .open(&path.with_suffix(sidecar_suffix(encoding)))
        {
            let tag = router.etags.tag(&sidecar.file, &sidecar.meta, None)?;
            return Ok(Resolved::File(Box::new(Representation {
                content: Content::File(Arc::new(sidecar.file)),
                len: sidecar.meta.len(),
                etag: Some(tag),
                encoding: Some(encoding.token()),
                ..identity
            })));
        }
        if router.config.no_compress || !(compress::MIN_SIZE..=compress::MAX_SIZE).contains(&len) {
            continue;
        }
        let variant =
            router
                .variants
                .get_or_encode(&etag, encoding, || match &identity.content {
                    Content::Bytes(bytes) => Ok(bytes.clone()),
                    Content::File(file) => {
                        let mut buf = vec![0u8; len as usize];
                        file.read_exact_at(&mut buf, 0)?;
                        Ok(Bytes::from(buf))
                    }
                })?;
        if let Some(bytes) = variant {
            return Ok(Resolved::File(Box::new(Representation {
                len: bytes.len() as u64,
                content: Content::Bytes(bytes),
                etag: Some(etag.for_encoding(encoding.token())),
                encoding: Some(encoding.token()),
                ..identity
            })));
        }
    }
    Ok(Resolved::NotAcceptable { negotiated })
}

fn sidecar_suffix(encoding: Encoding) -> &'static [u8] {
    match encoding {
        Encoding::Brotli => b".br",
        Encoding::Zstd => b".zst",
        Encoding::Gzip => b".gz",
        Encoding::Identity => b"",
    }
}

/// The status for a file-system error: missing → 404, unreadable → 403, else 500.
fn io_error(err: &io::Error) -> Response<Body> {
    match err.kind() {
        io::ErrorKind::NotFound => response::error(StatusCode::NOT_FOUND),
        io::ErrorKind::PermissionDenied => response::error(StatusCode::FORBIDDEN),
        _ => {
            tracing::error!("file system error: {err}");
            response::error(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}
