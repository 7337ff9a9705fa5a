//! CORS (the Fetch standard's CORS protocol) for the content types browsers fetch
//! cross-origin in CORS mode: fonts and media by default (`cors_types`), for the origins of
//! the settings (`cors_origins`).
//!
//! - Every response for such a type, the errors about it included (403 for a bad signature,
//!   404, 406, 412, 416: a browser hides a response without `Access-Control-Allow-Origin`
//!   from the page as a network error; not the store's 5xx), gets
//!   `Access-Control-Allow-Origin` (`*`, or the request's `Origin` when it is on the list)
//!   and `Access-Control-Expose-Headers` for what a range reader needs (`Content-Range`,
//!   `Accept-Ranges`, `ETag`); with a list, `Vary: Origin` on every such response, whether
//!   the origin was allowed or not (the answer depends on it).
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`), which a
//!   browser sends before a cross-origin request with a header outside the CORS safelist
//!   (`Range: bytes=-500`, a multi-range, `If-Range`, `If-None-Match`), is answered 204 with
//!   the methods (`GET, HEAD`) and the request fields (ranges and preconditions) allowed.
//!
//! Credentials (`Access-Control-Allow-Credentials`) are never allowed: public assets need
//! none, and `*` cannot go with them.

use http::header::{self, HeaderMap, HeaderValue};

/// `Access-Control-Allow-Methods` of a preflight.
static ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET, HEAD");
/// `Access-Control-Allow-Headers` of a preflight: the fields a range reader or a revalidating
/// fetch sets that are not on the CORS safelist.
static ALLOW_HEADERS: HeaderValue = HeaderValue::from_static(
    "range, if-range, if-match, if-none-match, if-modified-since, if-unmodified-since",
);
/// `Access-Control-Expose-Headers`: the fields beyond the safelisted ones (`Content-Type`,
/// `Content-Length`, `Last-Modified`, `Cache-Control`, ...) that a script reading ranges needs.
static EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("content-range, accept-ranges, etag");
/// `Access-Control-Max-Age` of a preflight, in seconds (Chromium keeps at most 2 hours).
static MAX_AGE: HeaderValue = HeaderValue::from_static("7200");
static ANY: HeaderValue = HeaderValue::from_static("*");

/// One `cors_types` member: every type, a top-level type (`font/*`) or one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypePattern {
    /// `*`.
    Any,
    /// `font/*`: the top-level type, with its `/`.
    TopLevel(String),
    /// `text/vtt`.
    Exact(String),
}

impl TypePattern {
    /// Parses a lowercase pattern; `None` when it is no content type.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "*" || s == "*/*" {
            return Some(Self::Any);
        }
        let (top, sub) = s.split_once('/')?;
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$&-^_.+".contains(&b)
                })
        };
        if !token(top) {
            return None;
        }
        if sub == "*" {
            Some(Self::TopLevel(format!("{top}/")))
        } else {
            token(sub).then(|| Self::Exact(s.to_owned()))
        }
    }

    fn matches(&self, mime: &str) -> bool {
        match self {
            Self::Any => true,
            Self::TopLevel(prefix) => mime.starts_with(prefix.as_str()),
            Self::Exact(t) => mime == t,
        }
    }
}

/// The CORS rules of the settings.
#[derive(Debug, Clone, Default)]
pub struct CorsRules {
    any_origin: bool,
    origins: Vec<HeaderValue>,
    types: Vec<TypePattern>,
}

/// The CORS answer for one response.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    /// `Access-Control-Allow-Origin` value, if any.
    pub allow_origin: Option<HeaderValue>,
    /// Whether the answer depends on `Origin` (then `Vary: Origin`).
    pub varies: bool,
}

impl CorsRules {
    /// From the settings' `cors_origins` (normalised: no trailing `/`) and `cors_types`
    /// (validated; a pattern that does not parse is skipped).
    pub fn new(origins: &[String], types: &[String]) -> Self {
        CorsRules {
            any_origin: origins.iter().any(|o| o == "*"),
            origins: origins
                .iter()
                .filter(|o| *o != "*")
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
            types: types.iter().filter_map(|t| TypePattern::parse(t)).collect(),
        }
    }

    /// Whether any origin is allowed (else no response gets CORS fields).
    pub fn is_on(&self) -> bool {
        self.any_origin || !self.origins.is_empty()
    }

    /// The answer for a response of content type `mime` (its essence: no parameters) to a
    /// request with `origin`.
    pub fn for_response(&self, origin: Option<&HeaderValue>, mime: &str) -> Cors {
        if (!self.any_origin && self.origins.is_empty())
            || !self.types.iter().any(|t| t.matches(mime))
        {
            return Cors::default();
        }
        if self.any_origin {
            return Cors {
                allow_origin: Some(ANY.clone()),
                varies: false,
            };
        }
        Cors {
            allow_origin: origin.filter(|o| self.origins.contains(o)).cloned(),
            varies: true,
        }
    }

    /// The answer for a response about `key` with no object at hand (a 404, a 403, a
    /// preflight): its type is the one its name says, as the server would send it.
    pub fn for_key(&self, origin: Option<&HeaderValue>, key: &str) -> Cors {
        if !self.is_on() {
            return Cors::default();
        }
        self.for_response(origin, &crate::content_type::essence_for(key))
    }

    /// The fields of a 204 answering `OPTIONS` for `key`: a preflight's, when `headers` make
    /// the request one (`Origin` and `Access-Control-Request-Method`) and the key's type takes
    /// CORS; `Vary: Origin` with a list. Empty when it is no preflight here.
    pub fn preflight(&self, headers: &HeaderMap, key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            return h;
        }
        let cors = self.for_key(headers.get(header::ORIGIN), key);
        if cors.varies {
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(origin) = cors.allow_origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS.clone());
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS.clone());
            h.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE.clone());
        }
        h
    }
}

impl Cors {
    /// Writes the fields of an allowed origin into `h` ([`write_allowed`]); `Vary` is the
    /// response's own ([`crate::response::Vary`]).
    pub fn write(&self, h: &mut HeaderMap) {
        if let Some(origin) = &self.allow_origin {
            write_allowed(h, origin.clone());
        }
    }
}

/// Writes `Access-Control-Allow-Origin: origin` and `Access-Control-Expose-Headers` into `h`:
/// the one place a response to an allowed origin gets its CORS fields.
pub fn write_allowed(h: &mut HeaderMap, origin: HeaderValue) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        EXPOSE_HEADERS.clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(origins: &[&str]) -> CorsRules {
        let types: Vec<String> = crate::config::DEFAULT_CORS_TYPES
            .iter()
            .map(|t| t.to_string())
            .collect();
        let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
        CorsRules::new(&origins, &types)
    }

    #[test]
    fn allowed_origins_are_echoed_for_fonts_and_media_only() {
        let rules = rules(&["https://app.example"]);
        let app = HeaderValue::from_static("https://app.example");
        for mime in [
            "font/woff2",
            "video/mp4",
            "text/vtt",
            "application/dash+xml",
        ] {
            let c = rules.for_response(Some(&app), mime);
            assert_eq!(c.allow_origin.as_ref(), Some(&app), "{mime}");
            assert!(c.varies);
        }
        let css = rules.for_response(Some(&app), "text/css");
        assert!(css.allow_origin.is_none() && !css.varies);
        let evil = HeaderValue::from_static("https://evil.example");
        let c = rules.for_response(Some(&evil), "font/woff2");
        assert!(c.allow_origin.is_none() && c.varies);
        assert!(rules.for_response(None, "font/woff2").varies);
    }

    #[test]
    fn any_origin_is_a_star_without_vary_and_no_origins_is_no_cors() {
        let c = rules(&["*"]).for_response(None, "audio/ogg");
        assert_eq!(c.allow_origin.unwrap(), "*");
        assert!(!c.varies);
        let none = rules(&[]).for_response(None, "font/woff2");
        assert!(none.allow_origin.is_none() && !none.varies);
        let all = CorsRules::new(&["*".into()], &["*".into()]);
        assert!(all.for_response(None, "text/css").allow_origin.is_some());
    }

    #[test]
    fn a_preflight_allows_ranges_and_preconditions() {
        let rules = rules(&["https://app.example"]);
        let mut req = HeaderMap::new();
        req.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example"),
        );
        // Not a preflight without the requested method.
        assert!(rules.preflight(&req, "video/clip.mp4").is_empty());
        req.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("GET"),
        );
        let h = rules.preflight(&req, "video/clip.mp4");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, HEAD");
        assert!(
            h[header::ACCESS_CONTROL_ALLOW_HEADERS]
                .to_str()
                .unwrap()
                .contains("if-range")
        );
        assert_eq!(h[header::VARY], "Origin");
        // Another type, or another origin: no permission (the latter still varies).
        assert!(rules.preflight(&req, "style.css").is_empty());
        req.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        let h = rules.preflight(&req, "video/clip.mp4");
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(h[header::VARY], "Origin");
    }

    #[test]
    fn type_patterns_are_content_types() {
        assert_eq!(TypePattern::parse("*"), Some(TypePattern::Any));
        assert_eq!(
            TypePattern::parse("font/*"),
            Some(TypePattern::TopLevel("font/".into()))
        );
        assert!(TypePattern::parse("application/vnd.apple.mpegurl").is_some());
        assert_eq!(TypePattern::parse("*/*"), Some(TypePattern::Any));
        for bad in [
            "font",
            "font/",
            "/woff",
            "*/*x",
            "font/woff2; q=1",
            "te xt/css",
        ] {
            assert_eq!(TypePattern::parse(bad), None, "{bad}");
        }
    }
}
