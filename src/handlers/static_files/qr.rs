//! QR codes of the site's address on the local network, so a phone can open what
//! the screen shows: drawn in the terminal at start (`--qr`, `--dev`) and as an SVG
//! on listing pages when wharf listens on a non-loopback address.

use std::sync::OnceLock;

use qrcode::render::{svg, unicode};
use qrcode::QrCode;

/// `scheme://address:port` of the first non-loopback listener, once bound.
static LAN_ORIGIN: OnceLock<String> = OnceLock::new();

/// Records the origin (`http://192.168.1.20:8000`) phones on the network can reach.
pub fn set_lan_origin(origin: String) {
    let _ = LAN_ORIGIN.set(origin);
}

/// The origin set by [`set_lan_origin`], if wharf listens beyond loopback.
pub fn lan_origin() -> Option<&'static str> {
    LAN_ORIGIN.get().map(String::as_str)
}

/// `url` as an SVG image; `None` if it is too long for a QR code.
pub fn svg(url: &str) -> Option<String> {
    let code = QrCode::new(url.as_bytes()).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(160, 160)
            .quiet_zone(true)
            .dark_color(svg::Color("#000"))
            .light_color(svg::Color("#fff"))
            .build(),
    )
}

/// `url` drawn with half blocks (two modules per character cell), for a terminal.
pub fn terminal(url: &str) -> Option<String> {
    let code = QrCode::new(url.as_bytes()).ok()?;
    Some(
        code.render::<unicode::Dense1x2>()
            .dark_color(unicode::Dense1x2::Light)
            .light_color(unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_ways() {
        let image = svg("http://192.168.1.20:8000/photos/").unwrap();
        assert!(
            image.starts_with("<?xml") || image.starts_with("<svg"),
            "{image}"
        );
        assert!(image.contains("</svg>"));
        let text = terminal("http://192.168.1.20:8000/").unwrap();
        assert!(text.lines().count() > 10);
        assert!(svg(&"x".repeat(8000)).is_none());
    }
}
