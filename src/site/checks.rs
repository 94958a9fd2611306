//! The checks RFC 9112 and RFC 9110 ask of every request before its target is looked
//! at: one Host, and a valid one (agreeing with `:authority` on HTTP/2), no userinfo,
//! transfer codings hyper can decode, and the target and header section within limits.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{StatusCode, Version};

use crate::http::negotiate;

/// Limits on the request head that the site enforces with its own error pages.
#[derive(Debug, Clone)]
pub struct HeadLimits {
    /// Longest request target, in bytes; longer gets 414.
    pub max_target_len: usize,
    /// Largest request header section, in bytes; larger gets 431.
    pub max_header_size: usize,
}

/// The checks RFC 9112 asks of every request before its target is looked at: the
/// status to refuse it with, or `None` when it may go on.
pub fn reject(req: &Parts, limits: &HeadLimits) -> Option<StatusCode> {
    let mut hosts = req.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Some(StatusCode::BAD_REQUEST),
        (None, None) if req.version == Version::HTTP_11 => return Some(StatusCode::BAD_REQUEST),
        // HTTP/2 names the authority in `:authority` or Host: with neither, an http(s)
        // request is malformed (RFC 9113 §8.3.1).
        (None, None) if req.version == Version::HTTP_2 && req.uri.authority().is_none() => {
            return Some(StatusCode::BAD_REQUEST);
        }
        (Some(host), None) if !valid_host(host) => return Some(StatusCode::BAD_REQUEST),
        // An http URI with an empty host is invalid (RFC 9110 §4.2.1), unless the
        // target names the authority itself (absolute form, RFC 9112 §3.2.2).
        (Some(host), None) if host.is_empty() && req.uri.authority().is_none() => {
            return Some(StatusCode::BAD_REQUEST);
        }
        _ => {}
    }
    // HTTP/2: a Host naming another authority than `:authority` is malformed
    // (RFC 9113 §8.3.1); one of the two would be believed, and not the same by all.
    if req.version == Version::HTTP_2 {
        if let (Some(authority), Some(host)) = (req.uri.authority(), req.headers.get(header::HOST))
        {
            if !same_authority(authority, host, req.uri.scheme()) {
                return Some(StatusCode::BAD_REQUEST);
            }
        }
    }
    // Userinfo in an http(s) target is an error (RFC 9110 §4.2.4), and a port is
    // digits (RFC 3986 §3.2.3).
    if req
        .uri
        .authority()
        .is_some_and(|a| a.as_str().contains('@') || !port_is_digits(a))
    {
        return Some(StatusCode::BAD_REQUEST);
    }
    if let Some(status) = transfer_coding_problem(req) {
        return Some(status);
    }
    if target_len(req) > limits.max_target_len {
        return Some(StatusCode::URI_TOO_LONG);
    }
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > limits.max_header_size {
        return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    None
}

/// Whether what follows the host in `authority` is nothing or `:` and digits.
fn port_is_digits(authority: &http::uri::Authority) -> bool {
    let rest = &authority.as_str()[authority.host().len()..];
    rest.strip_prefix(':').map_or(rest.is_empty(), |port| {
        port.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Whether a Host field names `authority`: hosts compared without regard to case,
/// ports with the scheme's default filled in (`example.com` is `example.com:443` over
/// HTTPS).
pub fn same_authority(
    authority: &http::uri::Authority,
    host: &HeaderValue,
    scheme: Option<&http::uri::Scheme>,
) -> bool {
    let Ok(host) = http::uri::Authority::try_from(host.as_bytes()) else {
        return false;
    };
    // Something after the host that is no port number.
    if host.as_str().len() > host.host().len() && host.port_u16().is_none() {
        return false;
    }
    let default = if scheme == Some(&http::uri::Scheme::HTTPS) {
        443
    } else {
        80
    };
    host.host().eq_ignore_ascii_case(authority.host())
        && host.port_u16().unwrap_or(default) == authority.port_u16().unwrap_or(default)
}

/// Host is `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2): an IP literal in
/// brackets, or a reg-name / IPv4 address (unreserved, pct-encoded, sub-delims), then
/// an optional port of digits. No userinfo.
fn valid_host(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    let (host_ok, rest) = if let Some(literal) = bytes.strip_prefix(b"[") {
        match literal.iter().position(|&b| b == b']') {
            Some(end) => {
                let inside = std::str::from_utf8(&literal[..end]).unwrap_or("");
                (
                    inside.parse::<std::net::Ipv6Addr>().is_ok(),
                    &literal[end + 1..],
                )
            }
            None => (false, &b""[..]),
        }
    } else {
        let end = bytes.iter().position(|&b| b == b':').unwrap_or(bytes.len());
        (is_reg_name(&bytes[..end]), &bytes[end..])
    };
    let port_ok = match rest.split_first() {
        None => true,
        Some((b':', port)) => port.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    host_ok && port_ok
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (RFC 3986 §3.2.2).
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => {
                let hex = name.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// What is wrong with the request's transfer codings, if anything: hyper accepts any
/// list that ends in `chunked`, but a coding it cannot decode is not implemented
/// (RFC 9112 §6.1: 501), and `chunked` applied twice is malformed (§7: 400).
fn transfer_coding_problem(req: &Parts) -> Option<StatusCode> {
    if !req.headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    let mut chunked = 0;
    for coding in negotiate::list_members(&req.headers, &header::TRANSFER_ENCODING) {
        match coding.trim() {
            "" => {}
            c if c.eq_ignore_ascii_case("chunked") => chunked += 1,
            _ => return Some(StatusCode::NOT_IMPLEMENTED),
        }
    }
    (chunked != 1).then_some(StatusCode::BAD_REQUEST)
}

fn target_len(req: &Parts) -> usize {
    let uri = &req.uri;
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let rest = uri.path_and_query().map_or(0, |p| p.as_str().len());
    scheme + authority + rest
}

#[cfg(test)]
mod tests {
    use super::{port_is_digits, same_authority};
    use http::uri::{Authority, Scheme};
    use http::HeaderValue;

    #[test]
    fn host_and_authority_agree_up_to_case_and_default_port() {
        let same = |authority: &str, host: &str, scheme: &Scheme| {
            same_authority(
                &Authority::try_from(authority).unwrap(),
                &HeaderValue::from_str(host).unwrap(),
                Some(scheme),
            )
        };
        assert!(same("example.com", "EXAMPLE.com", &Scheme::HTTPS));
        assert!(same("example.com", "example.com:443", &Scheme::HTTPS));
        assert!(same("example.com:80", "example.com", &Scheme::HTTP));
        assert!(!same("example.com", "example.com:80", &Scheme::HTTPS));
        assert!(!same("example.com", "other.com", &Scheme::HTTP));
        assert!(!same("example.com", "example.com:x", &Scheme::HTTP));
    }

    #[test]
    fn a_port_is_digits_or_absent() {
        let ok = |a: &str| port_is_digits(&Authority::try_from(a).unwrap());
        for good in ["x", "x:80", "x:", "[::1]", "[::1]:8080", "127.0.0.1:99999"] {
            assert!(ok(good), "{good}");
        }
        for bad in ["x:abc", "x:8a", "[::1]:x"] {
            assert!(!ok(bad), "{bad}");
        }
    }
}
