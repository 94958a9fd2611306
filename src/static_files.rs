//! The static handler: a file, a directory's index file, a redirect to the
//! directory's canonical URL, or a listing.
//!
//! All file-system work for one request happens in one trip to the blocking pool
//! (open, fstat, index lookup, and for small files the read itself), so the async
//! workers never wait on the disk and a request costs at most one hop.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};

use crate::body::{Body, FileRange, Segment};
use crate::fs::{Entry, Node, OpenFile};
use crate::listing::{self, Listing};
use crate::mime;
use crate::path::SitePath;
use crate::response;
use crate::router::Router;

/// Files up to this size are read whole in the same blocking call that opens them.
const INLINE_READ: u64 = 64 * 1024;

/// Names tried, in order, when a directory is requested.
const INDEX_FILES: [&[u8]; 2] = [b"index.html", b"index.htm"];

enum Resolved {
    File {
        open: OpenFile,
        /// The name the Content-Type comes from (the index file's, for a directory).
        name: Vec<u8>,
        /// The whole content, when small enough to have been read already.
        content: Option<Bytes>,
    },
    /// The directory exists; its canonical URL ends in `/`.
    AddSlash(SitePath),
    Listing(SitePath, Vec<Entry>),
}

/// Answers GET/HEAD/OPTIONS for `path`.
pub async fn serve(router: Arc<Router>, req: &Parts, path: SitePath) -> Response<Body> {
    let json = crate::negotiate::prefers_json(req.headers.get(header::ACCEPT));
    let resolver = Arc::clone(&router);
    let resolved = match tokio::task::spawn_blocking(move || resolve(&resolver, path)).await {
        Ok(resolved) => resolved,
        Err(join) => Err(io::Error::other(join)),
    };
    match resolved {
        Ok(Resolved::File {
            open,
            name,
            content,
        }) => file_response(open, &name, content),
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

fn resolve(router: &Router, path: SitePath) -> io::Result<Resolved> {
    let root = &router.root;
    match root.open(&path)? {
        // `/file.txt/` names a directory that does not exist.
        Node::File(_) if path.has_trailing_slash() => Err(io::ErrorKind::NotFound.into()),
        Node::File(open) => {
            let name = path.file_name().unwrap_or_default().to_vec();
            file(open, name)
        }
        Node::Dir(_) if !path.has_trailing_slash() => Ok(Resolved::AddSlash(path)),
        Node::Dir(dir) => {
            for index in INDEX_FILES {
                // A directory called index.html is not an index.
                if let Ok(Node::File(open)) = root.open(&path.join(index)) {
                    return file(open, index.to_vec());
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

fn file(open: OpenFile, name: Vec<u8>) -> io::Result<Resolved> {
    let len = open.meta.len();
    let content = if len <= INLINE_READ {
        let mut buf = vec![0u8; len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&open.file, &mut buf, 0)?;
        Some(Bytes::from(buf))
    } else {
        None
    };
    Ok(Resolved::File {
        open,
        name,
        content,
    })
}

fn file_response(open: OpenFile, name: &[u8], content: Option<Bytes>) -> Response<Body> {
    let len = open.meta.len();
    let mut res = Response::new(Body::empty());
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, mime::content_type(name));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(modified) = open.meta.modified() {
        if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
            headers.insert(header::LAST_MODIFIED, value);
        }
    }
    *res.body_mut() = match content {
        Some(bytes) => Body::bytes(bytes),
        None => Body::from_segments(vec![Segment::File(FileRange::new(
            Arc::new(open.file),
            0,
            len,
        ))]),
    };
    res
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
