//! Writes from another site's pages refused. A page anywhere can make a visitor's
//! browser send a form POST to this server without asking first (no CORS preflight
//! for a form), and with uploads allowed that would store or replace files here.
//! Browsers say where a request comes from: `Sec-Fetch-Site` (every current
//! browser) or, from older ones, `Origin`. A write whose page is not this site's
//! is refused with 403 unless the path's CORS rule grants that origin the method.
//! Requests that name no origin at all (curl, WebDAV and tus clients, scripts)
//! come from no page, and go on. The same test as Go's `CrossOriginProtection`.

use http::header::{self, HeaderValue};
use http::request::Parts;

use crate::handlers::Handler;
use crate::site::cors::Cors;

/// Whether the request `req` starts, which `handler` would answer with a change to
/// the files, comes from another site's page without that site being granted it.
pub fn refuses(req: &Parts, handler: &Handler, cors: Option<&Cors>) -> bool {
    if !handler.writes(&req.method) {
        return false;
    }
    let origin = req.headers.get(header::ORIGIN);
    let from_elsewhere = match req.headers.get("sec-fetch-site") {
        Some(site) => !matches!(site.as_bytes(), b"same-origin" | b"none"),
        None => origin.is_some_and(|o| !is_this_site(o, req)),
    };
    from_elsewhere && !granted(req, origin, cors)
}

/// Whether the path's CORS rule lets `origin` use the request's method.
fn granted(req: &Parts, origin: Option<&HeaderValue>, cors: Option<&Cors>) -> bool {
    let origin = origin.and_then(|o| o.to_str().ok());
    match (origin, cors) {
        (Some(origin), Some(cors)) => cors.grants(origin, &req.method),
        _ => false,
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the host and port the request
/// was sent to (its target's authority, else `Host`), a default port written or not.
fn is_this_site(origin: &HeaderValue, req: &Parts) -> bool {
    let Some((scheme, authority)) = origin.to_str().ok().and_then(|o| o.split_once("://")) else {
        return false;
    };
    let asked = req
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()));
    let Some(asked) = asked else {
        return false;
    };
    let default = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return false,
    };
    let with_port = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        // A port follows the last `:`, unless that is inside an IPv6 literal.
        match a.rsplit_once(':') {
            Some((_, port)) if !port.contains(']') => a,
            _ => format!("{a}:{default}"),
        }
    };
    with_port(authority) == with_port(asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::Access;

    fn request(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().method(method).uri("/up/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn writable() -> Handler {
        Handler::Static(Access {
            upload: true,
            delete: true,
            ..Access::default()
        })
    }

    #[test]
    fn a_write_from_another_site_is_refused() {
        let handler = writable();
        for headers in [
            &[("Host", "files.test"), ("Sec-Fetch-Site", "cross-site")][..],
            &[("Host", "files.test"), ("Sec-Fetch-Site", "same-site")],
            &[("Host", "files.test"), ("Origin", "https://evil.test")],
            &[("Host", "files.test:8000"), ("Origin", "http://files.test")],
            &[("Host", "files.test"), ("Origin", "null")],
        ] {
            assert!(
                refuses(&request("POST", headers), &handler, None),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn a_write_from_this_site_or_from_no_page_goes_on() {
        let handler = writable();
        for headers in [
            &[("Host", "files.test")][..],
            &[("Host", "files.test"), ("Sec-Fetch-Site", "same-origin")],
            &[("Host", "files.test"), ("Sec-Fetch-Site", "none")],
            &[("Host", "files.test"), ("Origin", "http://files.test")],
            &[("Host", "files.test:80"), ("Origin", "http://FILES.test")],
            &[("Host", "[::1]:8000"), ("Origin", "http://[::1]:8000")],
        ] {
            assert!(
                !refuses(&request("POST", headers), &handler, None),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn reads_and_other_handlers_are_not_this_policy() {
        let cross = [("Host", "files.test"), ("Origin", "https://evil.test")];
        assert!(!refuses(&request("GET", &cross), &writable(), None));
        let app = Handler::Cgi(std::sync::Arc::default());
        assert!(!refuses(&request("POST", &cross), &app, None));
    }

    #[test]
    fn a_cors_rule_grants_its_origins_their_methods() {
        let cors = Cors::new(
            &["https://app.test".into()],
            &["POST".into()],
            &[],
            &[],
            false,
            None,
        )
        .unwrap();
        let handler = writable();
        let from = |origin: &str, method: &str| {
            request(
                method,
                &[
                    ("Host", "files.test"),
                    ("Origin", origin),
                    ("Sec-Fetch-Site", "cross-site"),
                ],
            )
        };
        assert!(!refuses(
            &from("https://app.test", "POST"),
            &handler,
            Some(&cors)
        ));
        assert!(refuses(
            &from("https://app.test", "DELETE"),
            &handler,
            Some(&cors)
        ));
        assert!(refuses(
            &from("https://evil.test", "POST"),
            &handler,
            Some(&cors)
        ));
    }
}
