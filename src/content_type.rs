//! Content-Type by a key's extension: `mime_guess`, corrected where its first guess is not what
//! browsers and players expect of a web asset, with `charset=utf-8` on text whose bytes are
//! UTF-8.
//!
//! The charset is a claim about the bytes, and it overrides what a document says of itself
//! (HTML's `<meta charset>`, an XML declaration's `encoding`): a legacy page in windows-1252
//! sent as `charset=utf-8` is shown garbled. So a text object whose bytes were read (every one
//! up to `etag_hash_limit`, which are hashed) gets `charset=utf-8` only when they are valid
//! UTF-8 (ASCII is), and no charset otherwise, which leaves the document's own declaration or
//! the browser's sniffing to decide. One too big to hash is not read before its head is sent,
//! and keeps `charset=utf-8`, the encoding of the web's text.
//!
//! Every response carries `X-Content-Type-Options: nosniff`, so the type is what a browser
//! goes by: a module script sent as anything but a JavaScript type is refused, and an HLS
//! player is handed a segment type it knows or not. The type also picks the cache policy
//! (`font/*`, `video/*`), whether a body is compressed, and CORS for fonts and media, so a
//! font sent as `application/font-sfnt` would miss the font rules entirely.
//!
//! The corrections follow today's registrations (RFC 9239 for JavaScript, RFC 8081 for fonts,
//! IANA's `video/iso.segment`, Apple's HLS types); nginx's `mime.types` sends the same for
//! `.woff`, `.ts` and `.m3u8`. `.ts` is TypeScript too, but a CDN origin serves it as HLS
//! segments (`mime_guess` already called it video).
//!
//! | extension | `mime_guess` | sent |
//! | --- | --- | --- |
//! | `.mjs`, `.cjs` | `application/javascript` | `text/javascript` (RFC 9239, as `.js`) |
//! | `.woff`, `.otf` | `application/font-woff`, `application/font-sfnt` | `font/woff`, `font/otf` (RFC 8081) |
//! | `.ts` | `video/vnd.dlna.mpeg-tts` | `video/mp2t` (HLS segments) |
//! | `.m4s` | `application/octet-stream` | `video/iso.segment` (fMP4 segments of HLS and DASH) |
//! | `.m3u8` | `audio/x-mpegurl` | `application/vnd.apple.mpegurl` (HLS playlists) |
//! | `.map` | `text/plain` | `application/json` (source maps) |
//! | `.m4a` | `audio/m4a` | `audio/mp4` (the registered type, RFC 4337) |

use http::HeaderValue;

/// The corrected types, by lower-case extension.
const CORRECTIONS: [(&str, &str); 9] = [
    ("mjs", "text/javascript"),
    ("cjs", "text/javascript"),
    ("woff", "font/woff"),
    ("otf", "font/otf"),
    ("ts", "video/mp2t"),
    ("m4s", "video/iso.segment"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("map", "application/json"),
    ("m4a", "audio/mp4"),
];

/// What is known of an object's bytes, for its charset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextBytes {
    /// Read and valid UTF-8 (or not text at all).
    Utf8,
    /// Read, and not valid UTF-8: a legacy encoding, UTF-16, or binary under a text name.
    NotUtf8,
    /// Not read (too big to hash): taken as UTF-8.
    Unread,
}

impl TextBytes {
    /// Checks `bytes` (only worth it for a text type, see [`is_text`]).
    pub fn check(bytes: &[u8]) -> TextBytes {
        if std::str::from_utf8(bytes).is_ok() {
            TextBytes::Utf8
        } else {
            TextBytes::NotUtf8
        }
    }
}

/// The essence (`text/css`, no parameters) of the type a key's name says.
pub fn essence_for(key: &str) -> String {
    guess(key).essence_str().to_string()
}

/// Whether a type's essence is text that takes a charset: `text/*`, and JavaScript, JSON, XML,
/// SVG and HLS playlists.
pub fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "image/svg+xml"
                | "application/vnd.apple.mpegurl"
        )
}

/// Content-Type and its essence for a key, by extension; `charset=utf-8` on text types (see
/// [`is_text`]) unless `bytes` were found not to be UTF-8; `application/octet-stream` when
/// unknown.
pub fn content_type_for(key: &str, bytes: TextBytes) -> (HeaderValue, String) {
    let essence = essence_for(key);
    (header_for(&essence, bytes), essence)
}

/// The Content-Type field for a type's `essence` (as [`essence_for`] gives it: no
/// parameters): `charset=utf-8` added on text unless `bytes` were found not to be UTF-8.
pub fn header_for(essence: &str, bytes: TextBytes) -> HeaderValue {
    let value = if is_text(essence) && bytes != TextBytes::NotUtf8 {
        HeaderValue::from_str(&format!("{essence}; charset=utf-8"))
    } else {
        HeaderValue::from_str(essence)
    };
    value.unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// The type by a key's extension, corrected (see the module docs).
fn guess(key: &str) -> mime_guess::Mime {
    let name = key.rsplit('/').next().unwrap_or(key);
    let corrected = name.rsplit_once('.').and_then(|(_, ext)| {
        CORRECTIONS
            .iter()
            .find(|(e, _)| e.eq_ignore_ascii_case(ext))
            .map(|(_, m)| *m)
    });
    match corrected {
        Some(m) => m
            .parse()
            .unwrap_or(mime_guess::mime::APPLICATION_OCTET_STREAM),
        None => mime_guess::from_path(key).first_or_octet_stream(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(key: &str) -> String {
        content_type_for(key, TextBytes::Utf8)
            .0
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn web_assets_get_the_types_browsers_and_players_expect() {
        for (key, want) in [
            ("a/app.js", "text/javascript; charset=utf-8"),
            ("a/app.mjs", "text/javascript; charset=utf-8"),
            ("a/APP.MJS", "text/javascript; charset=utf-8"),
            ("lib.cjs", "text/javascript; charset=utf-8"),
            ("app.js.map", "application/json; charset=utf-8"),
            ("site.css", "text/css; charset=utf-8"),
            ("index.html", "text/html; charset=utf-8"),
            ("data.json", "application/json; charset=utf-8"),
            ("logo.svg", "image/svg+xml; charset=utf-8"),
            ("f.woff", "font/woff"),
            ("f.woff2", "font/woff2"),
            ("f.otf", "font/otf"),
            ("f.ttf", "font/ttf"),
            ("hls/seg-001.ts", "video/mp2t"),
            ("hls/seg-001.m4s", "video/iso.segment"),
            (
                "hls/index.m3u8",
                "application/vnd.apple.mpegurl; charset=utf-8",
            ),
            ("dash/manifest.mpd", "application/dash+xml"),
            ("clip.mp4", "video/mp4"),
            ("song.m4a", "audio/mp4"),
            ("captions.vtt", "text/vtt; charset=utf-8"),
            ("m.wasm", "application/wasm"),
            ("photo.avif", "image/avif"),
            ("no-extension", "application/octet-stream"),
            ("dir.v2/no-extension", "application/octet-stream"),
            (".hidden", "application/octet-stream"),
        ] {
            assert_eq!(sent(key), want, "{key}");
        }
    }

    #[test]
    fn the_essence_has_no_parameters() {
        assert_eq!(content_type_for("a.css", TextBytes::Utf8).1, "text/css");
        assert_eq!(essence_for("a.woff"), "font/woff");
    }

    #[test]
    fn the_charset_is_said_only_of_bytes_that_are_utf8() {
        let latin1 = b"<meta charset=windows-1252><p>caf\xe9</p>";
        assert_eq!(TextBytes::check(latin1), TextBytes::NotUtf8);
        assert_eq!(TextBytes::check("<p>café</p>".as_bytes()), TextBytes::Utf8);
        let (value, _) = content_type_for("old.html", TextBytes::check(latin1));
        assert_eq!(value, "text/html");
        let (value, _) = content_type_for("big.csv", TextBytes::Unread);
        assert_eq!(value, "text/csv; charset=utf-8");
        // Not text: never a charset, whatever the bytes.
        let (value, _) = content_type_for("a.png", TextBytes::NotUtf8);
        assert_eq!(value, "image/png");
    }
}
