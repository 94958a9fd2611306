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

/// Whether `name` is one of an app's notes to the server in front (nginx's
/// `X-Accel-*`, and `X-Pad`, which old servers sent), not to the client: nginx
/// passes none of them on from a proxied or a FastCGI app.
pub fn is_note_to_front(name: &http::HeaderName) -> bool {
    name.as_str().starts_with("x-accel-") || name.as_str() == "x-pad"
}

/// Removes an app's notes to the server in front from `headers`, and a file
/// handed back that is not taken (`X-Sendfile`).
pub fn remove_notes(headers: &mut http::HeaderMap) {
    headers.remove("x-sendfile");
    let notes: Vec<http::HeaderName> = headers
        .keys()
        .filter(|n| is_note_to_front(n))
        .cloned()
        .collect();
    for name in notes {
        headers.remove(name);
    }
}
