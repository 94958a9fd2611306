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
    let path = Path::new(OsStr::from_bytes(name));
    // Where the table is missing or behind what browsers and the registry say.
    let ext = path.extension().map(|e| e.to_ascii_lowercase());
    let overridden = match ext.as_ref().and_then(|e| e.to_str()) {
        // CommonJS modules are JavaScript (RFC 9239 §6).
        Some("cjs") => Some("text/javascript"),
        // Source maps are JSON.
        Some("map") => Some("application/json"),
        // AAC in an MPEG-4 container: `audio/m4a` is not a registered type.
        Some("m4a") => Some("audio/mp4"),
        // MPEG transport streams (HLS segments), as nginx and the registry name
        // them.
        Some("ts") => Some("video/mp2t"),
        Some("mid" | "midi") => Some("audio/midi"),
        // Zstandard frames (RFC 8878 §7.1), as `.gz` is `application/gzip`.
        Some("zst") => Some("application/zstd"),
        // Patches and source code a browser should show, not download.
        Some("diff" | "patch") => Some("text/x-diff"),
        Some("go" | "rb" | "java" | "kt" | "swift" | "scala" | "tsx" | "jsx" | "lua") => {
            Some("text/plain")
        }
        _ => None,
    };
    let guess = overridden.or_else(|| mime_guess::from_path(path).first_raw());
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
        assert_eq!(ct("a.cjs"), "text/javascript; charset=utf-8");
        assert_eq!(ct("app.js.map"), "application/json");
        assert_eq!(ct("a.M4A"), "audio/mp4");
        assert_eq!(ct("seg1.ts"), "video/mp2t");
        assert_eq!(ct("a.mid"), "audio/midi");
        assert_eq!(ct("logs.tar.zst"), "application/zstd");
        assert_eq!(ct("logs.tar.gz"), "application/gzip");
        assert_eq!(ct("fix.patch"), "text/x-diff; charset=utf-8");
        assert_eq!(ct("main.go"), "text/plain; charset=utf-8");
        assert_eq!(ct("App.tsx"), "text/plain; charset=utf-8");
    }
}
