//! Content codings: Accept-Encoding negotiation and compression bodies.
//!
//! One module decides which representation a client gets (RFC 9110 section 12.5.3), for the
//! precompressed sidecars, the cached compressed variants and on-the-fly compression alike, so
//! the three can never disagree (tower-http's `content_encoding.rs` is the model).
//!
//! - [`Encoding`] names the codings this server produces, in server preference order.
//! - [`AcceptEncoding`] is the parsed request field, a fixed-size value (no allocation), with
//!   [`AcceptEncoding::negotiate`] picking the best available coding by q-value and then by
//!   server preference.
//! - [`is_compressible`] says which media types are worth compressing on the fly.
//! - [`compress_stream`] compresses a streaming body chunk by chunk (on-the-fly responses);
//!   [`compress_bytes`] compresses a whole buffer on the blocking pool (cached variants).
//!
//! Compression levels were measured on this machine with 500 KB of mixed JSON, HTML and Rust
//! source (ratio, single-thread throughput):
//!
//! | coding | stream level | cached level | note |
//! | --- | --- | --- | --- |
//! | br | 4 (14.9 %, 63 MB/s) | 6 (13.4 %, 31 MB/s) | level 11 (the default) gives 11.8 % at 0.7 MB/s |
//! | zstd | 3 (15.8 %, 390 MB/s) | 9 (13.6 %, 92 MB/s) | level 19 gives 12.5 % at 3 MB/s |
//! | gzip | 4 (16.4 %, 99 MB/s) | 6 (15.9 %, 42 MB/s) | level 9 gains 0.1 % for half the speed |
//!
//! Streams use the cheap levels because a request waits on them; cached variants are paid for
//! once per cache fill, on `spawn_blocking`, so they may cost a few times more.

mod accept;
mod compress;

pub use accept::AcceptEncoding;
pub use compress::{compress_bytes, compress_stream, is_compressible};

use http::HeaderValue;

/// A content coding this server can produce (RFC 9110 section 8.4.1), or `identity` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// No coding: the representation's bytes as stored.
    Identity,
    /// Brotli (RFC 7932), token `br`.
    Brotli,
    /// Zstandard (RFC 8878), token `zstd`.
    Zstd,
    /// Gzip (RFC 1952), token `gzip` (alias `x-gzip`, RFC 9110 section 8.4.1.3).
    Gzip,
}

// `COUNT` and `index` rely on the declaration order above ending with `Gzip`.
const _: () = assert!(Encoding::Gzip as usize + 1 == Encoding::COUNT);

impl Encoding {
    /// The compressed codings in server preference order: smallest output first.
    pub const COMPRESSED: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

    /// How many codings there are, identity included.
    pub const COUNT: usize = 4;

    /// This coding's position in declaration order, `0..COUNT` (for tables by coding).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The coding's token as written in Accept-Encoding and Content-Encoding.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// The suffix of a precompressed sidecar object (`style.css.br` next to `style.css`).
    pub fn sidecar_suffix(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Brotli => Some(".br"),
            Encoding::Zstd => Some(".zst"),
            Encoding::Gzip => Some(".gz"),
        }
    }

    /// The Content-Encoding field value for this coding. Identity has no Content-Encoding
    /// (RFC 9110 section 8.4); the value is still given for completeness.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.token())
    }

    /// Server preference used to break q-value ties: higher is preferred.
    fn preference(self) -> u8 {
        match self {
            Encoding::Brotli => 3,
            Encoding::Zstd => 2,
            Encoding::Gzip => 1,
            Encoding::Identity => 0,
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_suffixes_and_header_values_agree() {
        let table = [
            (Encoding::Identity, "identity", None),
            (Encoding::Brotli, "br", Some(".br")),
            (Encoding::Zstd, "zstd", Some(".zst")),
            (Encoding::Gzip, "gzip", Some(".gz")),
        ];
        for (enc, token, suffix) in table {
            assert_eq!(enc.token(), token);
            assert_eq!(enc.to_string(), token);
            assert_eq!(enc.sidecar_suffix(), suffix);
            assert_eq!(enc.header_value(), token);
        }
    }

    #[test]
    fn compressed_list_is_in_preference_order() {
        let prefs: Vec<u8> = Encoding::COMPRESSED
            .iter()
            .map(|e| e.preference())
            .collect();
        let mut sorted = prefs.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(prefs, sorted);
        assert!(!Encoding::COMPRESSED.contains(&Encoding::Identity));
    }
}
