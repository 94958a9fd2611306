//! A file an app hands back instead of a body of its own (`X-Accel-Redirect: /path`,
//! nginx's name for it, or `X-Sendfile`), from a proxied app or a FastCGI one
//! alike: the app decides who gets which file, wharf serves it from the root with
//! every static semantic (ranges, conditionals, compression, sendfile).

use http::Response;

use crate::http::body::Body;

/// Fields of an app's response that stay when it hands a file back: the ones about
/// the client, not about the bytes.
const KEPT: [&str; 5] = [
    "set-cookie",
    "content-disposition",
    "cache-control",
    "content-type",
    "expires",
];

/// The path of the file `parts` hands back, and the app's fields to keep around it;
/// `None` when the app answered with a body of its own.
pub fn handed_back(parts: &http::response::Parts) -> Option<(String, Response<Body>)> {
    let target = parts
        .headers
        .get("x-accel-redirect")
        .or_else(|| parts.headers.get("x-sendfile"))?
        .to_str()
        .ok()?
        .trim()
        .to_string();
    let mut res = Response::new(Body::empty());
    for name in KEPT {
        for value in parts.headers.get_all(name) {
            res.headers_mut().append(name, value.clone());
        }
    }
    Some((target, res))
}
