//! Cross-origin resource sharing (the Fetch standard's CORS protocol) for paths that
//! opt in with a rule's `cors` table.
//!
//! Allowed origins are exact (`https://app.example.com`), a subdomain wildcard
//! (`https://*.example.com`), or `*` (any origin, without credentials). Responses on a
//! CORS path always carry `Vary: Origin`, so caches keep one copy per origin.

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use crate::http::body::Body;
use crate::http::response;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Any,
    Exact(String),
    /// `scheme://*.suffix`: any subdomain of `suffix` under `scheme`.
    Subdomains {
        scheme: String,
        suffix: String,
    },
}

/// A path's CORS policy.
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Vec<Origin>,
    methods: Vec<Method>,
    headers: Vec<HeaderName>,
    /// Response fields a page's script may read besides the safelisted ones.
    expose: Vec<HeaderName>,
    credentials: bool,
    max_age: Option<u32>,
}

impl Cors {
    /// Builds a policy, refusing combinations browsers reject (`*` with credentials).
    pub fn new(
        origins: &[String],
        methods: &[String],
        headers: &[String],
        expose: &[String],
        credentials: bool,
        max_age: Option<u32>,
    ) -> Result<Cors, String> {
        if origins.is_empty() {
            return Err("origins: list at least one origin (or \"*\")".into());
        }
        let origins = origins
            .iter()
            .map(|o| parse_origin(o))
            .collect::<Result<Vec<_>, _>>()?;
        if credentials && origins.contains(&Origin::Any) {
            return Err("origins: \"*\" cannot be combined with credentials = true".into());
        }
        let methods = if methods.is_empty() {
            vec![Method::GET, Method::HEAD]
        } else {
            methods
                .iter()
                .map(|m| {
                    Method::from_bytes(m.as_bytes())
                        .map_err(|_| format!("methods: {m:?} is not a method"))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let names = |list: &[String], key: &str| {
            list.iter()
                .map(|h| {
                    HeaderName::from_bytes(h.as_bytes())
                        .map_err(|_| format!("{key}: {h:?} is not a header name"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Cors {
            origins,
            methods,
            headers: names(headers, "headers")?,
            expose: names(expose, "expose")?,
            credentials,
            max_age,
        })
    }

    /// Whether a request from `origin` with `method` is one this policy admits.
    pub fn grants(&self, origin: &str, method: &Method) -> bool {
        self.allows(origin) && self.methods.contains(method)
    }

    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| match o {
            Origin::Any => true,
            Origin::Exact(e) => e.eq_ignore_ascii_case(origin),
            Origin::Subdomains { scheme, suffix } => {
                origin.strip_prefix(scheme.as_str()).is_some_and(|host| {
                    host.len() > suffix.len()
                        && host.to_ascii_lowercase().ends_with(suffix.as_str())
                        && !host.contains('/')
                })
            }
        })
    }

    /// A preflight: OPTIONS with Origin and Access-Control-Request-Method.
    pub fn is_preflight(req: &Parts) -> bool {
        req.method == Method::OPTIONS
            && req.headers.contains_key(header::ORIGIN)
            && req
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to a preflight: 204 with the policy when the origin, method and
    /// headers are allowed, else 403.
    pub fn preflight(&self, req: &Parts) -> Response<Body> {
        let origin = req
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let method = req
            .headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| Method::from_bytes(v.as_bytes()).ok());
        let requested: Vec<String> = req
            .headers
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let headers_ok = requested
            .iter()
            .all(|h| self.headers.iter().any(|a| a.as_str() == h) || is_safelisted(h));
        let allowed = match (origin, &method) {
            (Some(o), Some(m)) => self.allows(o) && self.methods.contains(m) && headers_ok,
            _ => false,
        };
        let mut res = if allowed {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::NO_CONTENT;
            res
        } else {
            response::error(StatusCode::FORBIDDEN)
        };
        let h = res.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        h.append(
            header::VARY,
            HeaderValue::from_static("Access-Control-Request-Method"),
        );
        h.append(
            header::VARY,
            HeaderValue::from_static("Access-Control-Request-Headers"),
        );
        if allowed {
            self.allow_origin(h, origin.unwrap_or(""));
            let methods: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
            if let Ok(v) = HeaderValue::from_str(&methods.join(", ")) {
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
            }
            if !self.headers.is_empty() {
                let names: Vec<&str> = self.headers.iter().map(HeaderName::as_str).collect();
                if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
                    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
                }
            }
            if let Some(age) = self.max_age {
                h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
            }
        }
        res
    }

    /// Adds the CORS headers to an actual (non-preflight) response.
    pub fn decorate(&self, req: &Parts, res: &mut Response<Body>) {
        let headers = res.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = req
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        {
            if self.allows(origin) {
                self.allow_origin(headers, origin);
                self.expose(headers);
            }
        }
    }

    /// Lets the page read the configured fields and those of [`WRITE_FIELDS`] the
    /// response carries: a script that uploads needs the new file's `Location`
    /// and `ETag`, and a tus client its `Upload-*` and `Tus-*` fields.
    fn expose(&self, headers: &mut http::HeaderMap) {
        let carried = WRITE_FIELDS
            .iter()
            .copied()
            .filter(|name| headers.contains_key(*name));
        let mut names: Vec<&str> = self.expose.iter().map(HeaderName::as_str).collect();
        for name in carried {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                names.push(name);
            }
        }
        if let Ok(value) = HeaderValue::from_str(&names.join(", ")) {
            if !names.is_empty() {
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, value);
            }
        }
    }

    fn allow_origin(&self, headers: &mut http::HeaderMap, origin: &str) {
        let any = !self.credentials && self.origins.contains(&Origin::Any);
        let value = if any {
            Some(HeaderValue::from_static("*"))
        } else {
            HeaderValue::from_str(origin).ok()
        };
        if let Some(value) = value {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

/// Response fields of writes that a script reads: exposed whenever a response on a
/// CORS path carries them.
const WRITE_FIELDS: [&str; 11] = [
    "location",
    "etag",
    "upload-offset",
    "upload-length",
    "upload-metadata",
    "upload-expires",
    "tus-resumable",
    "tus-version",
    "tus-max-size",
    "tus-extension",
    "tus-checksum-algorithm",
];

/// Request headers a browser may send without a preflight naming them.
fn is_safelisted(name: &str) -> bool {
    matches!(
        name,
        "accept" | "accept-language" | "content-language" | "content-type" | "range"
    )
}

fn parse_origin(text: &str) -> Result<Origin, String> {
    if text == "*" {
        return Ok(Origin::Any);
    }
    let (scheme, host) = text
        .split_once("://")
        .ok_or_else(|| format!("origins: {text:?} is not scheme://host[:port] or \"*\""))?;
    if scheme.is_empty() || host.is_empty() || host.contains('/') {
        return Err(format!("origins: {text:?} is not scheme://host[:port]"));
    }
    match host.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') && suffix.len() > 1 => Ok(Origin::Subdomains {
            scheme: format!("{scheme}://"),
            suffix: suffix.to_ascii_lowercase(),
        }),
        Some(_) => Err(format!(
            "origins: {text:?}: a wildcard must be \"*.\" before a domain"
        )),
        None if host.contains('*') => Err(format!("origins: {text:?}: a wildcard must come first")),
        None => Ok(Origin::Exact(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        let origins: Vec<String> = origins.iter().map(|s| s.to_string()).collect();
        Cors::new(
            &origins,
            &[],
            &["X-Token".into()],
            &[],
            credentials,
            Some(600),
        )
        .unwrap()
    }

    fn parts(method: Method, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri("/api/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        let c = cors(&["https://app.example.com", "https://*.example.org"], false);
        assert!(c.allows("https://app.example.com"));
        assert!(c.allows("https://a.example.org"));
        assert!(c.allows("https://a.b.example.org"));
        assert!(!c.allows("https://example.org"));
        assert!(!c.allows("http://a.example.org"));
        assert!(!c.allows("https://evil.com"));
        assert!(!c.allows("https://a.example.org.evil.com"));
    }

    #[test]
    fn preflight_answers() {
        let c = cors(&["https://app.example.com"], true);
        let ok = c.preflight(&parts(
            Method::OPTIONS,
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "x-token"),
            ],
        ));
        assert_eq!(ok.status(), 204);
        let h = ok.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(h["access-control-max-age"], "600");
        assert!(h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET"));
        for bad in [
            vec![
                ("origin", "https://evil.com"),
                ("access-control-request-method", "GET"),
            ],
            vec![
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "DELETE"),
            ],
            vec![
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "x-other"),
            ],
        ] {
            let res = c.preflight(&parts(Method::OPTIONS, &bad));
            assert_eq!(res.status(), 403, "{bad:?}");
            assert!(!res.headers().contains_key("access-control-allow-origin"));
        }
    }

    #[test]
    fn invalid_policies_are_refused() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(Cors::new(&s(&["*"]), &[], &[], &[], true, None).is_err());
        assert!(Cors::new(&s(&[]), &[], &[], &[], false, None).is_err());
        assert!(Cors::new(&s(&["example.com"]), &[], &[], &[], false, None).is_err());
        assert!(Cors::new(&s(&["https://a*.com"]), &[], &[], &[], false, None).is_err());
        assert!(Cors::new(&s(&["*"]), &s(&["GE T"]), &[], &[], false, None).is_err());
    }
}
