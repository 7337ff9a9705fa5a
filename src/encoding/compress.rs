//! Compression bodies: which types to compress, and how.
//!
//! On-the-fly compression (RFC 9110 section 8.4) streams: the async-compression encoders read
//! the input stream through a `StreamReader` and hand out chunks of [`STREAM_CHUNK`] bytes, so
//! memory per response stays bounded and each poll does a bounded amount of work at a fast
//! level. Whole-buffer compression for cached variants runs on the blocking pool with the
//! plain brotli, zstd and flate2 encoders, never on the async workers. Levels: see the table in
//! the parent module doc.

use super::Encoding;
use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::io::{self, Write};
use tokio_util::io::{ReaderStream, StreamReader};

/// Output chunk size of [`compress_stream`].
pub const STREAM_CHUNK: usize = 32 * 1024;

const STREAM_LEVEL_BROTLI: i32 = 4;
const STREAM_LEVEL_ZSTD: i32 = 3;
const STREAM_LEVEL_GZIP: i32 = 4;
const CACHED_LEVEL_BROTLI: u32 = 6;
const CACHED_LEVEL_ZSTD: i32 = 9;
const CACHED_LEVEL_GZIP: u32 = 6;
/// Brotli window: 2^22 bytes, the encoder's default.
const BROTLI_LGWIN: u32 = 22;

/// Whether a media type is worth compressing: text and text-like structured formats (JSON,
/// XML and their `+json`/`+xml` suffixes, JavaScript, SVG, glTF JSON, wasm, TrueType/OpenType
/// fonts), icons and BMPs. Never other images, video, audio, woff/woff2 fonts, PDF, archives
/// or already compressed formats: their bytes are compressed already and a second pass only
/// costs CPU.
/// Parameters (`; charset=utf-8`) and case are ignored.
pub fn is_compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    const APPLICATION: [&str; 13] = [
        "javascript",
        "x-javascript",
        "ecmascript",
        "json",
        "xml",
        "wasm",
        "yaml",
        "x-yaml",
        "toml",
        "x-sh",
        "graphql",
        "vnd.ms-fontobject",
        "vnd.apple.mpegurl",
    ];
    const FONT: [&str; 4] = ["ttf", "otf", "sfnt", "collection"];
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let has_suffix = |suffix: &str| {
        subtype.len() > suffix.len()
            && subtype.is_char_boundary(subtype.len() - suffix.len())
            && is(&subtype[subtype.len() - suffix.len()..], suffix)
    };
    if is(kind, "text") {
        return !subtype.is_empty();
    }
    if has_suffix("+json") || has_suffix("+xml") {
        // application/ld+json, application/rss+xml, image/svg+xml, model/gltf+json, ...
        return is(kind, "application") || is(kind, "image") || is(kind, "model");
    }
    if is(kind, "image") {
        // Icons and bitmaps are often stored uncompressed (as in h5bp's server configs).
        return ["x-icon", "vnd.microsoft.icon", "bmp"]
            .iter()
            .any(|s| is(subtype, s));
    }
    if is(kind, "application") {
        return APPLICATION.iter().any(|s| is(subtype, s));
    }
    if is(kind, "font") {
        return FONT.iter().any(|s| is(subtype, s));
    }
    false
}

/// Compresses a body stream with `enc` at a fast level, in chunks of `STREAM_CHUNK` bytes.
/// Identity returns the input unchanged. An error from the input ends the output with that
/// error, so a truncated upstream never looks like a complete compressed body.
pub fn compress_stream(
    enc: Encoding,
    input: BoxStream<'static, io::Result<Bytes>>,
) -> BoxStream<'static, io::Result<Bytes>> {
    let reader = StreamReader::new(input);
    match enc {
        Encoding::Identity => reader.into_inner(),
        Encoding::Brotli => {
            let encoder = BrotliEncoder::with_quality(reader, Level::Precise(STREAM_LEVEL_BROTLI));
            ReaderStream::with_capacity(encoder, STREAM_CHUNK).boxed()
        }
        Encoding::Zstd => {
            let encoder = ZstdEncoder::with_quality(reader, Level::Precise(STREAM_LEVEL_ZSTD));
            ReaderStream::with_capacity(encoder, STREAM_CHUNK).boxed()
        }
        Encoding::Gzip => {
            let encoder = GzipEncoder::with_quality(reader, Level::Precise(STREAM_LEVEL_GZIP));
            ReaderStream::with_capacity(encoder, STREAM_CHUNK).boxed()
        }
    }
}

/// Compresses a whole buffer with `enc` on `tokio::task::spawn_blocking`, at a level higher
/// than the stream's (the result is cached and served many times). Identity returns `data`.
pub async fn compress_bytes(enc: Encoding, data: Bytes) -> io::Result<Bytes> {
    if enc == Encoding::Identity {
        return Ok(data);
    }
    tokio::task::spawn_blocking(move || compress_blocking(enc, &data).map(Bytes::from))
        .await
        .map_err(io::Error::other)?
}

fn compress_blocking(enc: Encoding, data: &[u8]) -> io::Result<Vec<u8>> {
    // Compressed text is usually well under half the input; start there to limit regrowth.
    let capacity = data.len() / 2 + 64;
    match enc {
        Encoding::Identity => Ok(data.to_vec()),
        Encoding::Brotli => {
            let mut out = Vec::with_capacity(capacity);
            {
                let mut writer = brotli::CompressorWriter::new(
                    &mut out,
                    STREAM_CHUNK,
                    CACHED_LEVEL_BROTLI,
                    BROTLI_LGWIN,
                );
                writer.write_all(data)?;
                writer.flush()?;
            }
            Ok(out)
        }
        Encoding::Zstd => zstd::bulk::compress(data, CACHED_LEVEL_ZSTD),
        Encoding::Gzip => {
            let out = Vec::with_capacity(capacity);
            let level = flate2::Compression::new(CACHED_LEVEL_GZIP);
            let mut writer = flate2::write::GzEncoder::new(out, level);
            writer.write_all(data)?;
            writer.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use std::io::Read;

    /// Independent decoders (the codec crates' readers, not async-compression).
    fn decode(enc: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match enc {
            Encoding::Identity => out.extend_from_slice(data),
            Encoding::Brotli => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Zstd => out = zstd::stream::decode_all(data).unwrap(),
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
        }
        out
    }

    /// Text-like input with some randomness so it is neither trivial nor incompressible.
    fn sample(len: usize) -> Vec<u8> {
        let words = [
            &b"function "[..],
            b"return ",
            b"const x = ",
            b"{ }\n",
            b"\"key\": ",
        ];
        let mut state = 0x2545_f491_u32;
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            out.extend_from_slice(words[state as usize % words.len()]);
            out.push(b'a' + (state >> 8) as u8 % 26);
        }
        out.truncate(len);
        out
    }

    fn chunked(data: &[u8], size: usize) -> BoxStream<'static, io::Result<Bytes>> {
        let chunks: Vec<io::Result<Bytes>> = data
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(chunks).boxed()
    }

    const ALL: [Encoding; 4] = [
        Encoding::Identity,
        Encoding::Brotli,
        Encoding::Zstd,
        Encoding::Gzip,
    ];

    #[tokio::test]
    async fn compress_stream_round_trips_multi_chunk_input() {
        for len in [0, 1, 1000, 200_000] {
            let original = sample(len);
            for enc in ALL {
                let chunks: Vec<Bytes> = compress_stream(enc, chunked(&original, 7_777))
                    .try_collect()
                    .await
                    .unwrap();
                assert!(
                    chunks.iter().all(|c| c.len() <= STREAM_CHUNK),
                    "{enc} chunk size"
                );
                let encoded: Vec<u8> = chunks.concat();
                assert_eq!(decode(enc, &encoded), original, "{enc} with {len} bytes");
                if enc != Encoding::Identity && len >= 1000 {
                    assert!(encoded.len() < original.len() / 2, "{enc} did not compress");
                }
            }
        }
    }

    #[tokio::test]
    async fn compress_bytes_round_trips() {
        for len in [0, 1, 1000, 200_000] {
            let original = sample(len);
            for enc in ALL {
                let encoded = compress_bytes(enc, Bytes::from(original.clone()))
                    .await
                    .unwrap();
                assert_eq!(decode(enc, &encoded), original, "{enc} with {len} bytes");
                if enc != Encoding::Identity && len >= 1000 {
                    assert!(encoded.len() < original.len() / 2, "{enc} did not compress");
                }
            }
        }
    }

    #[tokio::test]
    async fn compress_stream_propagates_input_errors() {
        for enc in ALL {
            let input = futures::stream::iter(vec![
                Ok(Bytes::from(sample(10_000))),
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "upstream gone",
                )),
            ])
            .boxed();
            let result: io::Result<Vec<Bytes>> = compress_stream(enc, input).try_collect().await;
            let err = result.expect_err("the input error must reach the output");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{enc}");
        }
    }

    #[test]
    fn compressible_types() {
        let table = [
            ("text/html", true),
            ("text/html; charset=utf-8", true),
            ("TEXT/CSS", true),
            ("text/plain", true),
            ("text/javascript", true),
            ("application/javascript", true),
            ("application/json", true),
            ("application/ld+json", true),
            ("application/manifest+json", true),
            ("application/xml", true),
            ("application/rss+xml", true),
            ("application/atom+xml; charset=utf-8", true),
            ("image/svg+xml", true),
            ("application/wasm", true),
            ("font/ttf", true),
            ("font/otf", true),
            ("application/vnd.ms-fontobject", true),
            ("application/vnd.apple.mpegurl", true),
            ("application/dash+xml", true),
            ("model/gltf+json", true),
            ("image/x-icon", true),
            ("image/vnd.microsoft.icon", true),
            ("image/png", false),
            ("video/mp2t", false),
            ("video/iso.segment", false),
            ("image/jpeg", false),
            ("image/webp", false),
            ("video/mp4", false),
            ("audio/mpeg", false),
            ("font/woff", false),
            ("font/woff2", false),
            ("application/pdf", false),
            ("application/zip", false),
            ("application/gzip", false),
            ("application/zstd", false),
            ("application/x-tar", false),
            ("application/octet-stream", false),
            ("application/+json", false),
            ("video/x+xml", false),
            ("text/", false),
            ("", false),
            ("garbage", false),
        ];
        for (content_type, expected) in table {
            assert_eq!(is_compressible(content_type), expected, "{content_type:?}");
        }
    }
}
