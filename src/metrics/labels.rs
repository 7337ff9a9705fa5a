//! Bounded label values for the Prometheus metrics.
//!
//! Every label on every metric comes from a closed enum here (or from the configured store names,
//! capped in [`super::Metrics`]), so a client cannot create new time series by sending odd
//! methods, status codes or content types: the number of series is fixed by the code, not by
//! the traffic. Values are lower-case snake_case, the Prometheus convention.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use serde::Serialize;
use std::fmt::Write;
use std::sync::Arc;

/// Implements `as_str`, `EncodeLabelValue` and `Display` for a label enum from one table.
macro_rules! label_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The label value as exported (`snake_case`).
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            /// Every value, in the order of the table above.
            // Not every label needs ALL, COUNT and index; the crate-private ones may not use them.
            #[allow(dead_code)]
            pub const ALL: [$ty; [$($text),+].len()] = [$($ty::$variant),+];

            /// How many values the label has.
            #[allow(dead_code)]
            pub const COUNT: usize = Self::ALL.len();

            /// This value's position in declaration order, `0..COUNT`.
            #[allow(dead_code)]
            pub const fn index(self) -> usize {
                self as usize
            }
        }
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// How the hot cache answered a request (RFC 9211 `Cache-Status` in short).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheLabel {
    /// Served from a fresh cache entry without asking the store.
    Hit,
    /// Fetched from the store (not in the cache, or changed on revalidation).
    Miss,
    /// Served from a stale entry (stale-while-revalidate or stale-if-error).
    Stale,
    /// The cache was not involved: not cacheable (too large, a range of a big object), an error
    /// response, OPTIONS, or a path that never reaches the cache. Excluded from the hit ratio.
    Bypass,
}
label_enum!(CacheLabel { Hit => "hit", Miss => "miss", Stale => "stale", Bypass => "bypass" });

/// A coarse content class derived from the response `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentClass {
    /// `image/*`.
    Image,
    /// `video/*` and `audio/*`: large, ranged media.
    Video,
    /// `font/*` and the legacy font media types.
    Font,
    /// Style sheets and scripts.
    CssJs,
    /// HTML and XHTML documents.
    Html,
    /// Anything else, or no content type.
    Other,
}
label_enum!(ContentClass {
    Image => "image", Video => "video", Font => "font", CssJs => "css_js", Html => "html",
    Other => "other",
});

impl ContentClass {
    /// Classifies a `Content-Type` value (RFC 9110 section 8.3.1): only the media type before
    /// any parameter counts, compared case-insensitively (section 8.3.1 says type and subtype
    /// are case-insensitive).
    pub fn from_content_type(content_type: &str) -> ContentClass {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let (top, sub) = match essence.split_once('/') {
            Some((top, sub)) => (top.trim(), sub.trim()),
            None => return ContentClass::Other,
        };
        let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        if is(top, "image") {
            ContentClass::Image
        } else if is(top, "video") || is(top, "audio") {
            ContentClass::Video
        } else if is(top, "font") {
            ContentClass::Font
        } else if (is(top, "text") && is(sub, "html"))
            || (is(top, "application") && is(sub, "xhtml+xml"))
        {
            ContentClass::Html
        } else if (is(top, "text") && (is(sub, "css") || is(sub, "javascript")))
            || (is(top, "application")
                && (is(sub, "javascript") || is(sub, "x-javascript") || is(sub, "ecmascript")))
        {
            ContentClass::CssJs
        } else if is(top, "application")
            && (is(sub, "font-woff")
                || is(sub, "font-woff2")
                || is(sub, "font-sfnt")
                || is(sub, "vnd.ms-fontobject")
                || sub.get(..7).is_some_and(|p| is(p, "x-font-")))
        {
            ContentClass::Font
        } else {
            ContentClass::Other
        }
    }
}

/// The class of a status code (RFC 9110 section 15: the first digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum StatusClass {
    /// 1xx.
    #[serde(rename = "1xx")]
    Informational,
    /// 2xx.
    #[serde(rename = "2xx")]
    Success,
    /// 3xx (including 304 Not Modified).
    #[serde(rename = "3xx")]
    Redirection,
    /// 4xx.
    #[serde(rename = "4xx")]
    ClientError,
    /// 5xx.
    #[serde(rename = "5xx")]
    ServerError,
}
label_enum!(StatusClass {
    Informational => "1xx", Success => "2xx", Redirection => "3xx", ClientError => "4xx",
    ServerError => "5xx",
});

impl From<http::StatusCode> for StatusClass {
    fn from(status: http::StatusCode) -> StatusClass {
        // `http::StatusCode` only holds 100..=999; 6xx-9xx are not defined by RFC 9110 and are
        // counted as server errors rather than opening a new series.
        match status.as_u16() {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }
}

/// The request method, folded to the methods the origin serves (anything else is `other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodLabel {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// OPTIONS.
    Options,
    /// Every other method (405 for a method of RFC 9110 that a path does not take; an
    /// unknown one is refused with 501 before routing and not counted here).
    Other,
}
label_enum!(MethodLabel { Get => "GET", Head => "HEAD", Options => "OPTIONS", Other => "other" });

impl From<&http::Method> for MethodLabel {
    fn from(method: &http::Method) -> MethodLabel {
        match *method {
            http::Method::GET => MethodLabel::Get,
            http::Method::HEAD => MethodLabel::Head,
            http::Method::OPTIONS => MethodLabel::Options,
            _ => MethodLabel::Other,
        }
    }
}

/// The kind of object-store call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreOp {
    /// A GET (whole object or range, conditional or not).
    Get,
    /// A HEAD (metadata only).
    Head,
    /// A LIST (directory probe, prefix listing).
    List,
}
label_enum!(StoreOp { Get => "get", Head => "head", List => "list" });

/// How an object-store call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreOutcome {
    /// Success (including a 304-style "not modified" answer).
    Ok,
    /// The object does not exist: a normal answer, not an error.
    NotFound,
    /// Any other failure.
    Error,
    /// The call ran past its timeout.
    Timeout,
    /// The object was not the one asked for any more (replaced, resized or deleted since it
    /// was looked up): a normal answer during deploys, not an error.
    Changed,
}
label_enum!(StoreOutcome { Ok => "ok", NotFound => "not_found", Error => "error", Timeout => "timeout", Changed => "changed" });

impl StoreOutcome {
    /// Whether the outcome counts towards the store error rate.
    pub const fn is_failure(self) -> bool {
        matches!(self, StoreOutcome::Error | StoreOutcome::Timeout)
    }
}

/// The state of a store's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests flow to the store.
    Closed,
    /// The store is skipped until the cooldown ends.
    Open,
    /// One probe request decides whether to close again.
    HalfOpen,
}
label_enum!(BreakerState { Closed => "closed", Open => "open", HalfOpen => "half_open" });

/// Why bytes were not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SavedReason {
    /// A 304 instead of the 200 (RFC 9110 section 15.4.5).
    NotModified,
    /// Content coding made the body smaller (RFC 9110 section 8.4).
    Compression,
}
label_enum!(SavedReason { NotModified => "not_modified", Compression => "compression" });

/// How a client connection ended (`cdn_origin_connections_closed_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionEnd {
    /// Closed in good order: by the client, after `Connection: close`, or on shutdown.
    Closed,
    /// No traffic for `idle_timeout`: idle between requests, or a client that stopped reading
    /// a response.
    IdleTimeout,
    /// No complete request head within `header_read_timeout` (slow or silent clients).
    HeaderTimeout,
    /// A request that could not be parsed (answered 400, 414 or 431 where it still could be).
    BadRequest,
    /// An HTTP/2 protocol error.
    Protocol,
    /// The client went away in the middle of an exchange (reset, broken pipe, cut message).
    ClientGone,
    /// Anything else, such as a response body whose store read failed halfway.
    Other,
}
label_enum!(ConnectionEnd {
    Closed => "closed",
    IdleTimeout => "idle_timeout",
    HeaderTimeout => "header_timeout",
    BadRequest => "bad_request",
    Protocol => "protocol",
    ClientGone => "client_gone",
    Other => "other",
});

/// Outcome of a database check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CheckOutcome {
    Ok,
    Error,
}
label_enum!(CheckOutcome { Ok => "ok", Error => "error" });

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub method: MethodLabel,
    pub status: StatusClass,
    pub cache: CacheLabel,
    pub class: ContentClass,
}

impl RequestLabels {
    /// How many distinct label sets there are.
    pub const COUNT: usize =
        MethodLabel::COUNT * StatusClass::COUNT * CacheLabel::COUNT * ContentClass::COUNT;

    /// A dense index of this label set, `0..COUNT`, for tables of metric handles.
    pub fn index(&self) -> usize {
        ((self.method.index() * StatusClass::COUNT + self.status.index()) * CacheLabel::COUNT
            + self.cache.index())
            * ContentClass::COUNT
            + self.class.index()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct SavedLabels {
    pub reason: SavedReason,
    pub class: ContentClass,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ConnectionEndLabels {
    pub reason: ConnectionEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct CacheOnlyLabels {
    pub cache: CacheLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct StoreLabels {
    pub store: Arc<str>,
    pub op: StoreOp,
    pub outcome: StoreOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct StoreOpLabels {
    pub store: Arc<str>,
    pub op: StoreOp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct StoreNameLabels {
    pub store: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct BreakerLabels {
    pub store: Arc<str>,
    pub state: BreakerState,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct BreakerTransitionLabels {
    pub store: Arc<str>,
    pub to: BreakerState,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct CheckLabels {
    pub outcome: CheckOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn request_label_index_is_dense_and_one_to_one() {
        let mut seen = vec![false; RequestLabels::COUNT];
        for method in MethodLabel::ALL {
            for status in StatusClass::ALL {
                for cache in CacheLabel::ALL {
                    for class in ContentClass::ALL {
                        let labels = RequestLabels {
                            method,
                            status,
                            cache,
                            class,
                        };
                        let i = labels.index();
                        assert!(i < RequestLabels::COUNT, "{labels:?} -> {i}");
                        assert!(!seen[i], "{labels:?} shares index {i}");
                        seen[i] = true;
                    }
                }
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn content_types_fall_into_their_class() {
        let table = [
            ("image/png", ContentClass::Image),
            ("IMAGE/SVG+XML", ContentClass::Image),
            ("video/mp4", ContentClass::Video),
            ("audio/mpeg", ContentClass::Video),
            ("font/woff2", ContentClass::Font),
            ("application/font-woff", ContentClass::Font),
            ("application/x-font-ttf", ContentClass::Font),
            ("application/vnd.ms-fontobject", ContentClass::Font),
            ("text/css; charset=utf-8", ContentClass::CssJs),
            ("text/javascript;charset=utf-8", ContentClass::CssJs),
            ("application/javascript", ContentClass::CssJs),
            ("text/html; charset=utf-8", ContentClass::Html),
            ("application/xhtml+xml", ContentClass::Html),
            ("application/json", ContentClass::Other),
            ("text/plain", ContentClass::Other),
            ("application/octet-stream", ContentClass::Other),
            ("", ContentClass::Other),
            ("garbage", ContentClass::Other),
        ];
        for (ct, want) in table {
            assert_eq!(ContentClass::from_content_type(ct), want, "{ct}");
        }
    }

    #[test]
    fn status_codes_map_to_their_first_digit() {
        let table = [
            (StatusCode::CONTINUE, "1xx"),
            (StatusCode::OK, "2xx"),
            (StatusCode::PARTIAL_CONTENT, "2xx"),
            (StatusCode::NOT_MODIFIED, "3xx"),
            (StatusCode::PERMANENT_REDIRECT, "3xx"),
            (StatusCode::RANGE_NOT_SATISFIABLE, "4xx"),
            (StatusCode::BAD_GATEWAY, "5xx"),
        ];
        for (status, want) in table {
            assert_eq!(StatusClass::from(status).as_str(), want, "{status}");
        }
        let odd = StatusCode::from_u16(799).unwrap();
        assert_eq!(StatusClass::from(odd), StatusClass::ServerError);
    }

    #[test]
    fn unknown_methods_fold_into_other() {
        assert_eq!(MethodLabel::from(&http::Method::GET), MethodLabel::Get);
        assert_eq!(MethodLabel::from(&http::Method::HEAD), MethodLabel::Head);
        let custom = http::Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(MethodLabel::from(&custom), MethodLabel::Other);
        assert_eq!(MethodLabel::from(&http::Method::POST), MethodLabel::Other);
    }
}
