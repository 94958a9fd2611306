//! The handler of plain-HTTP connections to an HTTPS site: a request that passes the
//! site's own checks (`Router::redirect_to_https`) is answered with a permanent
//! redirect (308, which keeps the method and body) to the same path on HTTPS. Used by
//! `--redirect-http` and for plain HTTP that reaches the TLS port.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::Authority;
use http::{Response, StatusCode};

use crate::http::body::Body;
use crate::http::response;

/// The 308 to `https://<host>[:port]<path>?<query>`; 400 when the request names no
/// valid host (there is nowhere to send it).
pub fn respond(req: &Parts, https_port: u16) -> Response<Body> {
    let host = req
        .uri
        .authority()
        .cloned()
        .or_else(|| {
            let value = req.headers.get(header::HOST)?;
            Authority::try_from(value.as_bytes()).ok()
        })
        .filter(|a| !a.host().is_empty() && !a.as_str().contains('@'));
    let Some(host) = host else {
        return response::error(StatusCode::BAD_REQUEST);
    };
    let mut location = format!("https://{}", host.host());
    if https_port != 443 {
        location.push_str(&format!(":{https_port}"));
    }
    location.push_str(req.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut res = response::error(StatusCode::PERMANENT_REDIRECT);
    match HeaderValue::try_from(location) {
        Ok(value) => {
            res.headers_mut().insert(header::LOCATION, value);
            res
        }
        Err(_) => response::error(StatusCode::BAD_REQUEST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(target: &str, host: Option<&str>, port: u16) -> (u16, Option<String>) {
        let mut req = http::Request::get(target);
        if let Some(h) = host {
            req = req.header("host", h);
        }
        let (parts, _) = req.body(()).unwrap().into_parts();
        let res = respond(&parts, port);
        let loc = res
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        (res.status().as_u16(), loc)
    }

    #[test]
    fn keeps_host_path_and_query() {
        assert_eq!(
            location("/a/b?x=1", Some("example.com:8080"), 8443),
            (308, Some("https://example.com:8443/a/b?x=1".into()))
        );
        assert_eq!(
            location("/", Some("example.com"), 443),
            (308, Some("https://example.com/".into()))
        );
        assert_eq!(
            location("/", Some("[::1]:80"), 8443),
            (308, Some("https://[::1]:8443/".into()))
        );
    }

    #[test]
    fn refuses_requests_without_a_usable_host() {
        assert_eq!(location("/", None, 443).0, 400);
        assert_eq!(location("/", Some("a b"), 443).0, 400);
        assert_eq!(location("/", Some("user@evil"), 443).0, 400);
    }
}
