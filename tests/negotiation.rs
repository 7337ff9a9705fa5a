//! Issue 3 over real sockets: the shipped policy table type by type, Accept-Encoding
//! negotiation, precompressed sidecars, on-the-fly compression decoded back to the exact bytes,
//! per-encoding ETags, and Vary on 200/206/304/406/416.

mod common;

use common::*;
use reqwest::StatusCode;
use tokio::io::AsyncReadExt;

fn h<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

async fn get(srv: &TestServer, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(srv.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn decode(encoding: &str, data: &[u8]) -> Vec<u8> {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
    let mut out = Vec::new();
    match encoding {
        "br" => BrotliDecoder::new(data)
            .read_to_end(&mut out)
            .await
            .unwrap(),
        "gzip" => GzipDecoder::new(data).read_to_end(&mut out).await.unwrap(),
        "zstd" => ZstdDecoder::new(data).read_to_end(&mut out).await.unwrap(),
        "" => {
            out.extend_from_slice(data);
            data.len()
        }
        other => panic!("unexpected encoding {other}"),
    };
    out
}

#[tokio::test]
async fn shipped_policy_table_type_by_type() {
    let dir = local_fixtures();
    std::fs::write(dir.path().join("app.css"), css_of(2000)).unwrap();
    std::fs::write(dir.path().join("app.js"), css_of(2000)).unwrap();
    let srv = start(args(dir.path()), None).await;
    let table = [
        (
            "/img/logo.png",
            "public, max-age=86400, stale-while-revalidate=8640",
        ),
        (
            "/video/clip.mp4",
            "public, max-age=604800, stale-if-error=86400",
        ),
        (
            "/fonts/a.woff2",
            "public, max-age=2592000, stale-while-revalidate=86400",
        ),
        (
            "/app.css",
            "public, max-age=86400, stale-while-revalidate=8640",
        ),
        (
            "/app.js",
            "public, max-age=86400, stale-while-revalidate=8640",
        ),
        ("/doc.pdf", "public, max-age=43200"),
        ("/index.html", "no-cache"),
        (
            "/assets/app.3f9a1c2e.js",
            "public, max-age=31536000, immutable",
        ),
        ("/missing.png", "max-age=60"),
    ];
    for (path, want) in table {
        let res = get(&srv, path, &[]).await;
        assert_eq!(h(&res, "cache-control"), want, "{path}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn every_encoding_decodes_to_the_original_with_its_own_etag() {
    let dir = local_fixtures();
    let srv = start(args(dir.path()), None).await;
    let original = css_of(20_000);
    let mut etags = std::collections::HashSet::new();
    for (accept, want) in [
        ("br", "br"),
        ("gzip", "gzip"),
        ("zstd", "zstd"),
        ("x-gzip", "gzip"),
        ("GZIP;q=0.5, br;q=0.9", "br"),
        ("br;q=0, gzip", "gzip"),
        ("*", "br"),
        ("identity", ""),
        ("", ""),
    ] {
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            vec![]
        } else {
            vec![("accept-encoding", accept)]
        };
        let res = get(&srv, "/style.css", &headers).await;
        assert_eq!(res.status(), StatusCode::OK, "{accept}");
        assert_eq!(h(&res, "content-encoding"), want, "{accept}");
        assert_eq!(h(&res, "vary"), "Accept-Encoding", "{accept}");
        assert_eq!(h(&res, "content-type"), "text/css; charset=utf-8");
        let etag = h(&res, "etag").to_string();
        let len: usize = h(&res, "content-length").parse().unwrap();
        let body = res.bytes().await.unwrap();
        assert_eq!(body.len(), len);
        assert_eq!(decode(want, &body).await, original, "{accept}");
        etags.insert((want, etag));
        // HEAD reports the same encoding and length as GET.
        let mut head = client().head(srv.url("/style.css"));
        if !accept.is_empty() {
            head = head.header("accept-encoding", accept);
        }
        let head = head.send().await.unwrap();
        assert_eq!(h(&head, "content-encoding"), want);
        assert_eq!(h(&head, "content-length"), len.to_string());
    }
    let distinct: std::collections::HashSet<_> = etags.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(distinct.len(), 4, "one ETag per representation: {etags:?}");
    srv.stop().await;
}

#[tokio::test]
async fn conditional_and_range_requests_use_the_selected_representation() {
    let dir = local_fixtures();
    let srv = start(args(dir.path()), None).await;
    let br = get(&srv, "/style.css", &[("accept-encoding", "br")]).await;
    let br_tag = h(&br, "etag").to_string();
    let br_body = br.bytes().await.unwrap();
    let gz_tag = h(
        &get(&srv, "/style.css", &[("accept-encoding", "gzip")]).await,
        "etag",
    )
    .to_string();

    let res = get(
        &srv,
        "/style.css",
        &[("accept-encoding", "br"), ("if-none-match", &br_tag)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(h(&res, "vary"), "Accept-Encoding");
    assert_eq!(h(&res, "etag"), br_tag);
    // The gzip ETag does not validate the br representation.
    let res = get(
        &srv,
        "/style.css",
        &[("accept-encoding", "br"), ("if-none-match", &gz_tag)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Ranges over a cached compressed variant are ranges of the encoded bytes.
    let res = get(
        &srv,
        "/style.css",
        &[("accept-encoding", "br"), ("range", "bytes=0-99")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(h(&res, "vary"), "Accept-Encoding");
    assert_eq!(h(&res, "content-encoding"), "br");
    assert_eq!(
        h(&res, "content-range"),
        format!("bytes 0-99/{}", br_body.len())
    );
    assert_eq!(res.bytes().await.unwrap(), br_body.slice(0..100));
    // Several ranges of an encoded representation: the whole of it, never a multipart body
    // labelled `Content-Encoding: br`, which a client would try to decode.
    let res = get(
        &srv,
        "/style.css",
        &[("accept-encoding", "br"), ("range", "bytes=0-9,200-209")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h(&res, "content-encoding"), "br");
    assert_eq!(res.bytes().await.unwrap(), br_body);
    // Identity still gets its parts.
    let res = get(&srv, "/style.css", &[("range", "bytes=0-9,200-209")]).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(h(&res, "content-encoding"), "");
    assert!(h(&res, "content-type").starts_with("multipart/byteranges"));

    let res = get(&srv, "/style.css", &[("range", "bytes=999999-")]).await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(h(&res, "vary"), "Accept-Encoding");

    // Every coding refused, identity included: 406 (RFC 9110 §12.5.3 asks for identity only
    // when identity is not refused), varying as the 200 does; a type we never compress is not
    // negotiated at all, and is served (§12.1 lets a server disregard the header).
    let refused = [("accept-encoding", "identity;q=0, *;q=0")];
    let res = get(&srv, "/style.css", &refused).await;
    assert_eq!(res.status(), StatusCode::NOT_ACCEPTABLE);
    assert_eq!(h(&res, "vary"), "Accept-Encoding");
    let res = get(&srv, "/img/logo.png", &refused).await;
    assert_eq!(res.status(), StatusCode::OK);

    // Images are never compressed and do not vary.
    let res = get(&srv, "/img/logo.png", &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(h(&res, "content-encoding"), "");
    assert_eq!(h(&res, "vary"), "");
    srv.stop().await;
}

#[tokio::test]
async fn identity_fallback_serves_identity_when_every_coding_is_refused() {
    let dir = local_fixtures();
    let mut a = args(dir.path());
    a.identity_fallback = Some(true);
    let srv = start(a, None).await;
    let refused = [("accept-encoding", "identity;q=0, *;q=0")];
    let res = get(&srv, "/style.css", &refused).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h(&res, "content-encoding"), "");
    assert_eq!(h(&res, "vary"), "Accept-Encoding");
    // Still served when a coding is acceptable.
    let res = get(
        &srv,
        "/style.css",
        &[("accept-encoding", "gzip, identity;q=0")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h(&res, "content-encoding"), "gzip");
    srv.stop().await;
}

#[tokio::test]
async fn precompressed_sidecars_are_served_with_ranges() {
    let dir = local_fixtures();
    let original = css_of(30_000);
    std::fs::write(dir.path().join("site.css"), &original).unwrap();
    let gz = cdn_origin::encoding::compress_bytes(
        cdn_origin::encoding::Encoding::Gzip,
        original.clone().into(),
    )
    .await
    .unwrap();
    std::fs::write(dir.path().join("site.css.gz"), &gz).unwrap();
    let mut a = args(dir.path());
    // No on-the-fly compression: only the sidecar can give gzip.
    a.compress_min_size = Some("1GiB".parse().unwrap());
    let srv = start(a, None).await;
    let res = get(&srv, "/site.css", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(h(&res, "content-encoding"), "gzip");
    assert_eq!(h(&res, "content-type"), "text/css; charset=utf-8");
    assert_eq!(h(&res, "vary"), "Accept-Encoding");
    assert_eq!(res.bytes().await.unwrap().as_ref(), gz.as_ref());
    let res = get(&srv, "/site.css", &[("accept-encoding", "br")]).await;
    assert_eq!(h(&res, "content-encoding"), "");
    assert_eq!(res.bytes().await.unwrap().as_ref(), original.as_slice());
    let res = get(
        &srv,
        "/site.css",
        &[("accept-encoding", "gzip"), ("range", "bytes=10-19")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &gz[10..20]);
    srv.stop().await;
}

/// A sidecar older than its original was made from an older version (the original was
/// deployed, the sidecar not regenerated): it is left out, so gzip clients get the current
/// content, and it stays left out at revalidation without the object being reloaded each time.
#[tokio::test]
async fn a_sidecar_older_than_its_original_is_not_served() {
    let dir = local_fixtures();
    let old = css_of(30_000);
    let gz = cdn_origin::encoding::compress_bytes(
        cdn_origin::encoding::Encoding::Gzip,
        old.clone().into(),
    )
    .await
    .unwrap();
    let sidecar = dir.path().join("site.css.gz");
    std::fs::write(&sidecar, &gz).unwrap();
    let current = css_of(31_000);
    std::fs::write(dir.path().join("site.css"), &current).unwrap();
    backdate(&sidecar, std::time::Duration::from_secs(3600));
    let mut a = args(dir.path());
    a.compress_min_size = Some("1GiB".parse().unwrap());
    a.revalidate_after = Some(cdn_origin::config::Seconds(
        std::time::Duration::from_millis(100),
    ));
    let srv = start(a, None).await;
    let read_bytes = || {
        srv.app
            .metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with("cdn_origin_store_read_bytes_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let mut loaded = None;
    for _ in 0..4 {
        let res = get(&srv, "/site.css", &[("accept-encoding", "gzip")]).await;
        assert_eq!(h(&res, "content-encoding"), "");
        assert_eq!(res.bytes().await.unwrap().as_ref(), current.as_slice());
        // Revalidations (every 100 ms) find nothing new: no second read of the file.
        let read = read_bytes();
        assert!(read >= 31_000.0);
        assert_eq!(
            *loaded.get_or_insert(read),
            read,
            "reloaded at revalidation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn large_objects_compress_as_a_stream_and_ranges_fall_back_to_identity() {
    let dir = local_fixtures();
    let original = css_of(3_000_000);
    std::fs::write(dir.path().join("big.css"), &original).unwrap();
    let mut a = args(dir.path());
    a.cache_max_object = Some("64KiB".parse().unwrap());
    let srv = start(a, None).await;
    let res = get(&srv, "/big.css", &[("accept-encoding", "zstd")]).await;
    assert_eq!(h(&res, "content-encoding"), "zstd");
    assert_eq!(
        h(&res, "accept-ranges"),
        "",
        "no ranges over a compression stream"
    );
    assert_eq!(h(&res, "content-length"), "");
    // A stream's bytes are not those a held variant would have (another level, cut where
    // the store's chunks fall): the same content, so a weak tag (RFC 9110 §8.8.1).
    let streamed_tag = h(&res, "etag").to_string();
    assert!(
        streamed_tag.starts_with("W/\"") && streamed_tag.ends_with("-zstd-stream\""),
        "{streamed_tag}"
    );
    let body = res.bytes().await.unwrap();
    assert!(body.len() < original.len() / 2);
    assert_eq!(decode("zstd", &body).await, original);
    // Weak comparison for If-None-Match: a 304; strong for If-Match: a 412, whose answer
    // varies on Accept-Encoding as the 200 does.
    let res = get(
        &srv,
        "/big.css",
        &[
            ("accept-encoding", "zstd"),
            ("if-none-match", &streamed_tag),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(h(&res, "etag"), streamed_tag);
    let res = get(
        &srv,
        "/big.css",
        &[("accept-encoding", "zstd"), ("if-match", &streamed_tag)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(h(&res, "vary"), "Accept-Encoding");
    let res = get(
        &srv,
        "/big.css",
        &[("accept-encoding", "zstd"), ("range", "bytes=100-199")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(h(&res, "content-encoding"), "");
    assert_eq!(res.bytes().await.unwrap().as_ref(), &original[100..200]);
    srv.stop().await;
}

#[tokio::test]
async fn cors_answers_allowed_origins_for_fonts_and_varies_on_origin() {
    let dir = local_fixtures();
    let mut a = args(dir.path());
    a.cors_origins = vec!["https://app.example".into()];
    let srv = start(a, None).await;
    let res = get(&srv, "/fonts/a.woff2", &[("origin", "https://app.example")]).await;
    assert_eq!(
        h(&res, "access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(h(&res, "vary"), "Origin");
    let etag = h(&res, "etag").to_string();
    let res = get(
        &srv,
        "/fonts/a.woff2",
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(h(&res, "access-control-allow-origin"), "");
    assert_eq!(h(&res, "vary"), "Origin");
    let res = get(
        &srv,
        "/fonts/a.woff2",
        &[("origin", "https://app.example"), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(h(&res, "vary"), "Origin");
    assert_eq!(
        h(&res, "access-control-allow-origin"),
        "https://app.example"
    );
    // Stylesheets are not cross-origin media: no CORS headers, no Vary: Origin.
    let res = get(&srv, "/style.css", &[("origin", "https://app.example")]).await;
    assert_eq!(h(&res, "access-control-allow-origin"), "");
    assert_eq!(h(&res, "vary"), "Accept-Encoding");
    srv.stop().await;
}

/// What a browser needs to read fonts and media cross-origin beyond the plain GET: a
/// preflight answered (a suffix range, a multi-range or `If-Range` are not on the CORS
/// safelist), error answers it may read (404, 412, 416), the range fields exposed, and text
/// tracks and streaming manifests counted as media; `cors_types` widens it to every type.
#[tokio::test]
async fn cors_preflights_errors_and_media_types() {
    let dir = local_fixtures();
    let cues = "00:00.000 --> 00:01.000\nA line of captions.\n\n".repeat(60);
    std::fs::write(
        dir.path().join("video/clip.vtt"),
        format!("WEBVTT\n\n{cues}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("video/clip.m3u8"), b"#EXTM3U\n").unwrap();
    let mut a = args(dir.path());
    a.cors_origins = vec!["https://app.example".into()];
    let srv = start(a, None).await;
    let app = ("origin", "https://app.example");
    let preflight = |path: &str, origin: &str| {
        client()
            .request(reqwest::Method::OPTIONS, srv.url(path))
            .header("origin", origin.to_string())
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "if-range,range")
            .send()
    };

    let res = preflight("/video/clip.mp4", "https://app.example")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        h(&res, "access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(h(&res, "access-control-allow-methods"), "GET, HEAD");
    let allowed = h(&res, "access-control-allow-headers");
    assert!(
        allowed.contains("range") && allowed.contains("if-range"),
        "{allowed}"
    );
    assert_eq!(h(&res, "vary"), "Origin");
    assert_eq!(h(&res, "allow"), "GET, HEAD, OPTIONS");
    // Another origin, or a type without CORS: no permission.
    let res = preflight("/video/clip.mp4", "https://evil.example")
        .await
        .unwrap();
    assert_eq!(h(&res, "access-control-allow-origin"), "");
    let res = preflight("/style.css", "https://app.example")
        .await
        .unwrap();
    assert_eq!(h(&res, "access-control-allow-origin"), "");
    assert_eq!(h(&res, "allow"), "GET, HEAD, OPTIONS");

    // The request after the preflight: a suffix range, with the fields a reader needs.
    let res = get(&srv, "/video/clip.mp4", &[app, ("range", "bytes=-100")]).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        h(&res, "access-control-allow-origin"),
        "https://app.example"
    );
    let exposed = h(&res, "access-control-expose-headers");
    assert!(
        exposed.contains("content-range") && exposed.contains("etag"),
        "{exposed}"
    );

    // Errors a page may read.
    let res = get(&srv, "/video/clip.mp4", &[app, ("range", "bytes=9999999-")]).await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        h(&res, "access-control-allow-origin"),
        "https://app.example"
    );
    let res = get(&srv, "/fonts/a.woff2", &[app, ("if-match", "\"other\"")]).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        h(&res, "access-control-allow-origin"),
        "https://app.example"
    );
    let res = get(&srv, "/fonts/missing.woff2", &[app]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        h(&res, "access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(h(&res, "vary"), "Origin");
    let res = get(&srv, "/missing.css", &[app]).await;
    assert_eq!(h(&res, "access-control-allow-origin"), "");
    assert_eq!(h(&res, "vary"), "");
    // A 406 (for a compressible CORS type: a text track) has CORS and is not stored.
    let res = get(
        &srv,
        "/video/clip.vtt",
        &[app, ("accept-encoding", "identity;q=0")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_ACCEPTABLE);
    assert_eq!(h(&res, "cache-control"), "no-store");
    assert_eq!(
        h(&res, "access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(h(&res, "vary"), "Accept-Encoding, Origin");

    // Text tracks and manifests are media.
    for path in ["/video/clip.vtt", "/video/clip.m3u8"] {
        let res = get(&srv, path, &[app]).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(
            h(&res, "access-control-allow-origin"),
            "https://app.example",
            "{path}"
        );
    }
    srv.stop().await;

    // Every type, for a site whose scripts and styles load cross-origin (`crossorigin`).
    let mut a = args(dir.path());
    a.cors_origins = vec!["*".into()];
    a.cors_types = vec!["*".into()];
    let srv = start(a, None).await;
    let res = get(&srv, "/style.css", &[app]).await;
    assert_eq!(h(&res, "access-control-allow-origin"), "*");
    assert_eq!(h(&res, "vary"), "Accept-Encoding");
    srv.stop().await;
}

/// An object too big to hold is compressed as it is sent, with no length: chunked on
/// HTTP/1.1, where a cut-off stream is told from a whole one. On HTTP/1.0 it would end with
/// the connection and a failed one would look complete to a cache (nginx proxies with
/// HTTP/1.0 by default), so HTTP/1.0 gets identity with its length instead.
#[tokio::test]
async fn http_1_0_gets_no_compression_stream_of_unknown_length() {
    let dir = local_fixtures();
    let mut a = args(dir.path());
    a.cache_max_object = Some("1KiB".parse().unwrap());
    let srv = start(a, None).await;
    let ask = |version: &str| {
        format!(
            "GET /style.css {version}\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
        )
    };
    let old = raw(srv.addr, ask("HTTP/1.0").as_bytes()).await;
    let (head, body) = old.split_once("\r\n\r\n").unwrap();
    assert_eq!(raw_status(&old), 200, "{head}");
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(head.contains("content-length: 20000"), "{head}");
    assert!(head.contains("vary: Accept-Encoding"), "{head}");
    assert_eq!(body.len(), 20_000);
    let new = raw(srv.addr, ask("HTTP/1.1").as_bytes()).await;
    let head = new.split("\r\n\r\n").next().unwrap();
    assert!(
        head.contains("content-encoding: gzip") && head.contains("transfer-encoding: chunked"),
        "{head}"
    );
    srv.stop().await;
}

/// `Range` is no list (RFC 9110 §14.2): sent twice, it is invalid and ignored.
#[tokio::test]
async fn two_range_fields_are_ignored() {
    let dir = local_fixtures();
    let srv = start(args(dir.path()), None).await;
    let res = raw(
        srv.addr,
        b"GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\nRange: bytes=10-19\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&res), 200, "{}", &res[..200]);
    srv.stop().await;
}
