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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedPath {
    /// The decoded URL path, starting with `/` (for policies and logs).
    pub path: String,
    /// The store key (no leading slash).
    pub key: String,
    /// True when the path ended in `/` and `index.html` was appended.
    pub is_index: bool,
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
    let plain = raw
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'%' && b != b'\\');
    let decoded = if plain {
        std::borrow::Cow::Borrowed(raw)
    } else {
        if has_encoded_separator(raw) || raw.contains('\\') {
            return Err(PathError::Bad("encoded or backslash separator"));
        }
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| PathError::Bad("path is not UTF-8"))?;
        if decoded.chars().any(|c| c.is_control()) {
            return Err(PathError::Bad("control character in path"));
        }
        decoded
    };
    if decoded.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    let path = decoded.into_owned();
    let trimmed = &path[1..];
    let is_index = trimmed.is_empty() || trimmed.ends_with('/');
    let body = trimmed.strip_suffix('/').unwrap_or(trimmed);
    // The key is the path without its leading slash, once every segment is allowed.
    if !body.is_empty() {
        for segment in body.as_bytes().split(|&b| b == b'/') {
            match segment {
                b"" => return Err(PathError::Hidden("empty path segment")),
                b"." | b".." => return Err(PathError::Bad("dot segment")),
                [b'.', ..] if !serve_dotfiles && segment != b".well-known" => {
                    return Err(PathError::Hidden("dotfile"));
                }
                _ => {}
            }
        }
    }
    let mut key = String::with_capacity(body.len() + 11);
    key.push_str(body);
    if is_index {
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str("index.html");
    }
    Ok(MappedPath {
        path,
        key,
        is_index,
    })
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
}

impl ObjectRequest {
    /// Builds the request from its parts (method already checked).
    pub fn new(method: ObjectMethod, target: MappedPath, uri: &Uri, headers: &HeaderMap) -> Self {
        ObjectRequest {
            method,
            target,
            query: uri.query().map(str::to_string),
            conditions: Conditions::from_headers(headers),
            // Range is ignored on HEAD (RFC 9110 §14.2: only GET defines range handling).
            range: match method {
                ObjectMethod::Get => headers.get(http::header::RANGE).cloned(),
                ObjectMethod::Head => None,
            },
            accept_encoding: AcceptEncoding::from_headers(headers),
            origin: headers.get(http::header::ORIGIN).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(p: &str) -> Result<MappedPath, PathError> {
        map_path(&p.parse::<Uri>().unwrap(), false)
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
            assert_eq!((m.key.as_str(), m.is_index), (key, index), "{path}");
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
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN + 1));
        assert_eq!(map(&long), Err(PathError::TooLong));
    }

    #[test]
    fn dotfiles_are_served_when_configured() {
        let m = map_path(&"/.env".parse::<Uri>().unwrap(), true).unwrap();
        assert_eq!(m.key, ".env");
    }

    #[test]
    fn double_encoding_is_decoded_once_only() {
        // %252e decodes to the literal text "%2e", a harmless file name, not a dot segment.
        let m = map("/%252e%252e/x").unwrap();
        assert_eq!(m.key, "%2e%2e/x");
    }
}
