//! Content-Type from a file name.
//!
//! The extension table is mime_guess's; the policy on top is ours: text types are
//! declared UTF-8 (what nearly every text file served today is, and what browsers
//! otherwise guess wrongly) but XML, whose own declaration names its encoding and
//! which a charset parameter would override (RFC 7303 §4.2); JavaScript is
//! `text/javascript` per RFC 9239, fonts have their `font/` types (RFC 8081), and
//! anything unknown is `application/octet-stream`, so a browser downloads rather
//! than sniffs it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use http::HeaderValue;

/// The Content-Type for a file called `name`.
pub fn content_type(name: &[u8]) -> HeaderValue {
    let guess = mime_guess::from_path(Path::new(OsStr::from_bytes(name))).first_raw();
    let value = match guess {
        None => return HeaderValue::from_static("application/octet-stream"),
        Some("application/javascript") => "text/javascript",
        Some("application/font-woff") => "font/woff",
        Some("application/font-sfnt") => "font/otf",
        Some(other) => other,
    };
    if value.starts_with("text/") && value != "text/xml" {
        HeaderValue::from_str(&format!("{value}; charset=utf-8"))
            .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    } else {
        HeaderValue::from_static(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_on_top_of_the_table() {
        let ct = |n: &str| content_type(n.as_bytes()).to_str().unwrap().to_owned();
        assert_eq!(ct("a.html"), "text/html; charset=utf-8");
        assert_eq!(ct("a.txt"), "text/plain; charset=utf-8");
        assert_eq!(ct("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(ct("a.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(ct("a.json"), "application/json");
        assert_eq!(ct("a.PNG"), "image/png");
        assert_eq!(ct("a.unknownext"), "application/octet-stream");
        assert_eq!(ct("Makefile"), "application/octet-stream");
        assert_eq!(ct("feed.xml"), "text/xml");
        assert_eq!(ct("a.woff"), "font/woff");
        assert_eq!(ct("a.otf"), "font/otf");
        assert_eq!(ct("a.ttf"), "font/ttf");
        assert_eq!(ct("a.woff2"), "font/woff2");
    }
}
