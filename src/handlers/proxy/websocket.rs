//! The parts of the WebSocket opening handshake (RFC 6455 §4) that fall to wharf
//! when an HTTP/2 client's WebSocket (RFC 8441, which has no key) meets an app that
//! speaks HTTP/1.1: a fresh key for the app, and the check of the app's answer.

use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderValue};
use sha1::Digest as _;

/// RFC 6455 §1.3: appended to the key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A `Sec-WebSocket-Key`: 16 random bytes in base64; `None` if the system has no
/// randomness to give.
pub fn new_key() -> Option<HeaderValue> {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    HeaderValue::from_str(&text).ok()
}

/// Whether the app's `101` answers `key`: its `Sec-WebSocket-Accept` is the base64
/// SHA-1 of the key and the GUID.
pub fn accepts(headers: &HeaderMap, key: &HeaderValue) -> bool {
    let mut hash = sha1::Sha1::new();
    hash.update(key.as_bytes());
    hash.update(GUID);
    let expected = base64::engine::general_purpose::STANDARD.encode(hash.finalize());
    headers
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_is_accepted() {
        // RFC 6455 §1.3's example key and answer.
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        );
        assert!(accepts(&headers, &key));
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOp="),
        );
        assert!(!accepts(&headers, &key));
    }

    #[test]
    fn keys_are_sixteen_random_bytes() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
    }
}
