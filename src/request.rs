//! Step 1 of the pipeline: the raw request becomes an [`ObjectRequest`]. Nothing after this
//! step reads raw request headers.
//!
//! URL paths map to store keys safely (issue 2, point 3):
//! - the path is percent-decoded exactly once, and must then be valid UTF-8 (overlong UTF-8
//!   forms are invalid UTF-8 and refused);
//! - an encoded slash or backslash (`%2F`, `%5C`), a raw backslash, a NUL or any other control
//!   character is a 400: it could only ever be an attempt to smuggle a separator;
//! - `.` and `..` segments are a 400, never resolved (RFC 3986 dot-segment removal is the
//!   client's job; an origin that resolves them invites escapes);
//! - empty segments (`//`) are a 404: merging them would give one object many cache keys;
//! - dotfiles (`.env`, `.git/…`) are not served unless configured (`.well-known` always is);
//! - `/dir/` maps to `dir/index.html`; `/` to `index.html`.
//!
//! The store layer adds a second guard for local folders: keys are canonicalised and must stay
//! under the root, so a symlink out of it is never followed.

use http::{HeaderMap, HeaderValue, Method, Uri};

use crate::conditional::Conditions;
use crate::encoding::AcceptEncoding;

/// Longest decoded path we accept (RFC 9112 §3 recommends supporting at least 8000 octets).
pub const MAX_PATH_LEN: usize = 8 * 1024;

/// Why a path cannot name an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Malformed or hostile: answered with 400.
    #[error("bad request path: {0}")]
    Bad(&'static str),
    /// Well-formed but never served (dotfiles, empty segments): answered with 404.
    #[error("not served: {0}")]
    Hidden(&'static str),
    /// Longer than [`MAX_PATH_LEN`]: answered with 414.
    #[error("request path too long")]
    TooLong,
}

/// A URL path mapped to a store key.
///
/// Both live in one string: the path, then for a path ending in `/` the rest of the key
/// (`/a/b/` is held as `/a/b/index.html`), so the key is the string after its leading slash
/// and mapping a path costs one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedPath {
    text: String,
    path_len: usize,
    /// True when the path ended in `/` and `index.html` was appended.
    pub is_index: bool,
}

impl MappedPath {
    /// The decoded URL path, starting with `/` (for policies and logs).
    pub fn path(&self) -> &str {
        &self.text[..self.path_len]
    }

    /// The store key (no leading slash).
    pub fn key(&self) -> &str {
        &self.text[1..]
    }
}

/// Maps the path of `uri` to a key.
pub fn map_path(uri: &Uri, serve_dotfiles: bool) -> Result<MappedPath, PathError> {
    let raw = uri.path();
    if raw.len() > MAX_PATH_LEN * 3 {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::Bad("path must start with /"));
    }
    // Most paths are plain: printable ASCII with nothing to decode. One pass over the bytes
    // proves that, and the checks below (each a pass of its own) are all for the others.
    // Without an early exit, so that the compiler can check many bytes at a time.
    let plain = raw.bytes().fold(true, |plain, b| {
        plain & (b.wrapping_sub(0x21) < 0x5e) & (b != b'%') & (b != b'\\')
    });
    let decoded = if plain {
        std::borrow::Cow::Borrowed(raw)
    } else {
        decode(raw)?
    };
    if decoded.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    let trimmed = &decoded[1..];
    let is_index = trimmed.is_empty() || trimmed.ends_with('/');
    let body = trimmed.strip_suffix('/').unwrap_or(trimmed);
    // The key is the path without its leading slash, once every segment is allowed (all but
    // `/` itself have one; `//` has an empty one).
    if !trimmed.is_empty() {
        let bytes = body.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'/' {
                check_segment(&bytes[start..i], serve_dotfiles)?;
                start = i + 1;
            }
        }
        check_segment(&bytes[start..], serve_dotfiles)?;
    }
    const INDEX: &str = "index.html";
    let mut text = String::with_capacity(decoded.len() + if is_index { INDEX.len() } else { 0 });
    text.push_str(&decoded);
    if is_index {
        text.push_str(INDEX);
    }
    Ok(MappedPath {
        path_len: decoded.len(),
        text,
        is_index,
    })
}

/// Decodes a path that is not plain: separators smuggled in encoded or as backslashes,
/// percent-decoding once, UTF-8 and control characters (400s).
fn decode(raw: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    if has_encoded_separator(raw) || raw.contains('\\') {
        return Err(PathError::Bad("encoded or backslash separator"));
    }
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::Bad("path is not UTF-8"))?;
    if decoded.chars().any(|c| c.is_control()) {
        return Err(PathError::Bad("control character in path"));
    }
    Ok(decoded)
}

/// One segment of a path's body: not empty (404), not `.` or `..` (400), not a dotfile unless
/// those are served (404; `.well-known` always is).
fn check_segment(segment: &[u8], serve_dotfiles: bool) -> Result<(), PathError> {
    match segment {
        b"" => Err(PathError::Hidden("empty path segment")),
        b"." | b".." => Err(PathError::Bad("dot segment")),
        [b'.', ..] if !serve_dotfiles && segment != b".well-known" => {
            Err(PathError::Hidden("dotfile"))
        }
        _ => Ok(()),
    }
}

/// True when `raw` contains `%2F` or `%5C` in any case (checked without allocating: this runs
/// on every request).
fn has_encoded_separator(raw: &str) -> bool {
    raw.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && (w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f')
                || w[1] == b'5' && w[2].eq_ignore_ascii_case(&b'c'))
    })
}

/// The methods an object answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectMethod {
    /// GET.
    Get,
    /// HEAD: the headers GET would send, no body.
    Head,
}

impl ObjectMethod {
    /// The `http::Method`.
    pub fn as_method(self) -> &'static Method {
        match self {
            ObjectMethod::Get => &Method::GET,
            ObjectMethod::Head => &Method::HEAD,
        }
    }
}

/// Everything the pipeline needs from a request for an object.
#[derive(Debug)]
pub struct ObjectRequest {
    /// GET or HEAD.
    pub method: ObjectMethod,
    /// Path and key.
    pub target: MappedPath,
    /// The query string, for signed URLs.
    pub query: Option<String>,
    /// Preconditions.
    pub conditions: Conditions,
    /// The Range header, parsed later against the selected representation's length.
    pub range: Option<HeaderValue>,
    /// Accept-Encoding preferences.
    pub accept_encoding: AcceptEncoding,
    /// The Origin header, for CORS.
    pub origin: Option<HeaderValue>,
    /// The response can carry a body of unknown length that the client tells from one cut
    /// short: chunked (HTTP/1.1) or framed (HTTP/2). On HTTP/1.0 such a body ends with the
    /// connection, so an aborted one looks complete (RFC 9112 §6.3).
    pub open_length: bool,
}

impl ObjectRequest {
    /// Builds the request from its parts (method already checked).
    pub fn new(
        method: ObjectMethod,
        target: MappedPath,
        uri: &Uri,
        headers: &HeaderMap,
        version: http::Version,
    ) -> Self {
        ObjectRequest {
            method,
            target,
            query: uri.query().map(str::to_string),
            conditions: Conditions::from_headers(headers),
            // Range is ignored on HEAD (RFC 9110 §14.2: only GET defines range handling).
            range: match method {
                ObjectMethod::Get => single(headers, &http::header::RANGE),
                ObjectMethod::Head => None,
            },
            accept_encoding: AcceptEncoding::from_headers(headers),
            origin: single(headers, &http::header::ORIGIN),
            open_length: version >= http::Version::HTTP_11,
        }
    }
}

/// The value of a field that is no list (`Range`, `Origin`): none when it was sent twice,
/// since two such fields are one invalid field (RFC 9110 §5.3), which is ignored.
fn single(headers: &HeaderMap, name: &http::HeaderName) -> Option<HeaderValue> {
    let mut all = headers.get_all(name).iter();
    all.next().filter(|_| all.next().is_none()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(p: &str) -> Result<MappedPath, PathError> {
        map_path(&p.parse::<Uri>().unwrap(), false)
    }

    #[test]
    fn range_and_origin_sent_twice_are_ignored() {
        let uri: Uri = "/a.mp4".parse().unwrap();
        let ask = |fields: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for &(k, v) in fields {
                h.append(k, HeaderValue::from_str(v).unwrap());
            }
            let target = map_path(&uri, false).unwrap();
            ObjectRequest::new(ObjectMethod::Get, target, &uri, &h, http::Version::HTTP_11)
        };
        let once = ask(&[("range", "bytes=0-1"), ("origin", "https://a.example")]);
        assert!(once.range.is_some() && once.origin.is_some());
        let twice = ask(&[
            ("range", "bytes=0-1"),
            ("range", "bytes=2-3"),
            ("origin", "https://a.example"),
            ("origin", "https://b.example"),
        ]);
        assert!(twice.range.is_none() && twice.origin.is_none());
    }

    /// The rules of the module doc, written plainly (the decoding pass always, `str::split`,
    /// path and key built apart): what [`map_path`]'s fast paths must agree with.
    fn reference(raw: &str, serve_dotfiles: bool) -> Result<(String, String, bool), PathError> {
        if raw.len() > MAX_PATH_LEN * 3 {
            return Err(PathError::TooLong);
        }
        if !raw.starts_with('/') {
            return Err(PathError::Bad("path must start with /"));
        }
        let decoded = decode(raw)?;
        if decoded.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let trimmed = &decoded[1..];
        let is_index = trimmed.is_empty() || trimmed.ends_with('/');
        let body = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if !trimmed.is_empty() {
            for segment in body.split('/') {
                match segment {
                    "" => return Err(PathError::Hidden("empty path segment")),
                    "." | ".." => return Err(PathError::Bad("dot segment")),
                    s if s.starts_with('.') && !serve_dotfiles && s != ".well-known" => {
                        return Err(PathError::Hidden("dotfile"));
                    }
                    _ => {}
                }
            }
        }
        let key = match (is_index, body.is_empty()) {
            (false, _) => body.to_owned(),
            (true, true) => "index.html".to_owned(),
            (true, false) => format!("{body}/index.html"),
        };
        Ok((decoded.into_owned(), key, is_index))
    }

    proptest::proptest! {
        #[test]
        fn map_path_agrees_with_the_plain_rules(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "/", "/", "a", "b.css", ".", "..", ".env", ".well-known", "%2e", "%2F",
                    "%5c", "%41", "%", "%zz", "%c3%a9", "%ff", "%00", "%7f", "~", "!", "index.html",
                ]),
                0..10,
            ),
            dotfiles in proptest::bool::ANY,
        ) {
            let raw = format!("/{}", parts.concat());
            let Ok(uri) = raw.parse::<Uri>() else { return Ok(()) };
            let got = map_path(&uri, dotfiles)
                .map(|m| (m.path().to_owned(), m.key().to_owned(), m.is_index));
            proptest::prop_assert_eq!(got, reference(uri.path(), dotfiles), "{}", raw);
        }
    }

    #[test]
    fn paths_map_to_keys_and_indexes() {
        let cases = [
            ("/", "index.html", true),
            ("/a/b.css", "a/b.css", false),
            ("/blog/", "blog/index.html", true),
            ("/with%20space.txt", "with space.txt", false),
            ("/na%C3%AFve%20caf%C3%A9.txt", "naïve café.txt", false),
            (
                "/.well-known/security.txt",
                ".well-known/security.txt",
                false,
            ),
        ];
        for (path, key, index) in cases {
            let m = map(path).unwrap();
            assert_eq!((m.key(), m.is_index), (key, index), "{path}");
        }
    }

    #[test]
    fn hostile_paths_are_refused() {
        let bad = [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/a/%2E%2E/%2E%2E/etc",
            "/a%2fb",
            "/a%5Cb",
            "/a%00b",
            "/%c0%ae%c0%ae/etc",
            "/%ff",
            "/./a",
        ];
        for path in bad {
            assert!(matches!(map(path), Err(PathError::Bad(_))), "{path}");
        }
        assert!(matches!(map("/.env"), Err(PathError::Hidden(_))));
        assert!(matches!(map("/.git/config"), Err(PathError::Hidden(_))));
        assert!(matches!(map("//etc/passwd"), Err(PathError::Hidden(_))));
        assert!(
            matches!(map("//"), Err(PathError::Hidden(_))),
            "a second key for /"
        );
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN + 1));
        assert_eq!(map(&long), Err(PathError::TooLong));
    }

    #[test]
    fn dotfiles_are_served_when_configured() {
        let m = map_path(&"/.env".parse::<Uri>().unwrap(), true).unwrap();
        assert_eq!(m.key(), ".env");
    }

    #[test]
    fn double_encoding_is_decoded_once_only() {
        // %252e decodes to the literal text "%2e", a harmless file name, not a dot segment.
        let m = map("/%252e%252e/x").unwrap();
        assert_eq!(m.key(), "%2e%2e/x");
    }
}
