//! Issue 2 over real sockets: the same conformance suite against the local-folder, in-memory and
//! S3-compatible backends, plus raw-socket traversal attempts, HTTP/2, and graceful shutdown.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(data)))
}

async fn get(srv: &TestServer, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(srv.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn h<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

/// Every numbered point of issue 2 that does not depend on the backend.
async fn conformance(srv: &TestServer) {
    let hello = b"hello, world\n";
    // 5. content type, validators, Accept-Ranges
    let res = get(srv, "/hello.txt", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h(&res, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(h(&res, "x-content-type-options"), "nosniff");
    assert_eq!(h(&res, "accept-ranges"), "bytes");
    assert_eq!(h(&res, "etag"), etag_of(hello));
    let lm = h(&res, "last-modified").to_string();
    let lm_time = httpdate::parse_http_date(&lm).expect("IMF-fixdate");
    let date = httpdate::parse_http_date(h(&res, "date")).unwrap();
    assert!(lm_time <= date, "Last-Modified later than Date");
    assert!(!h(&res, "cache-status").is_empty());
    assert_eq!(res.bytes().await.unwrap().as_ref(), hello);
    assert_eq!(
        h(&get(srv, "/data.bin", &[]).await, "content-type"),
        "application/octet-stream"
    );

    // 4. HEAD = GET headers without a body (both warm, so both are cache hits)
    let _warm = get(srv, "/style.css", &[]).await;
    let g = client().get(srv.url("/style.css")).send().await.unwrap();
    let head = client().head(srv.url("/style.css")).send().await.unwrap();
    for name in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "cache-control",
        "vary",
        "accept-ranges",
        "cache-status",
    ] {
        assert_eq!(
            h(&g, name),
            h(&head, name),
            "header {name} differs between GET and HEAD"
        );
    }

    // 4. methods
    let res = client()
        .request(reqwest::Method::OPTIONS, srv.url("/hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(h(&res, "allow").contains("GET"));
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let res = client()
            .request(
                reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
                srv.url("/hello.txt"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert!(h(&res, "allow").contains("HEAD"));
    }

    // 7. conditionals, RFC 9110 §13.2.2
    let tag = etag_of(hello);
    let weak = format!("W/{tag}");
    type Case<'a> = (Vec<(&'a str, String)>, u16);
    let cases: Vec<Case> = vec![
        (vec![("if-none-match", tag.clone())], 304),
        (vec![("if-none-match", weak.clone())], 304),
        (vec![("if-none-match", format!("\"nope\", {tag}"))], 304),
        (vec![("if-none-match", "*".into())], 304),
        (vec![("if-none-match", "\"nope\"".into())], 200),
        (vec![("if-match", "\"nope\"".into())], 412),
        (vec![("if-match", weak.clone())], 412),
        (vec![("if-match", "*".into())], 200),
        (vec![("if-match", format!("\"a\", {tag}"))], 200),
        (vec![("if-modified-since", lm.clone())], 304),
        (
            vec![("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT".into())],
            200,
        ),
        (vec![("if-modified-since", "not a date".into())], 200),
        // A date in the future is invalid and ignored (RFC 9110 §13.1.3 lineage): a broken clock
        // must not pin a 304 on every later change.
        (
            vec![(
                "if-modified-since",
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600)),
            )],
            200,
        ),
        (
            vec![
                ("if-none-match", "\"nope\"".into()),
                ("if-modified-since", lm.clone()),
            ],
            200,
        ),
        (
            vec![(
                "if-unmodified-since",
                "Sun, 06 Nov 1994 08:49:37 GMT".into(),
            )],
            412,
        ),
        (vec![("if-unmodified-since", lm.clone())], 200),
        (
            vec![
                ("if-match", tag.clone()),
                (
                    "if-unmodified-since",
                    "Sun, 06 Nov 1994 08:49:37 GMT".into(),
                ),
            ],
            200,
        ),
        (
            vec![
                ("if-match", "\"nope\"".into()),
                ("if-none-match", tag.clone()),
            ],
            412,
        ),
    ];
    for (headers, want) in cases {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = get(srv, "/hello.txt", &hs).await;
        assert_eq!(res.status().as_u16(), want, "{headers:?}");
        if want == 304 {
            assert_eq!(h(&res, "etag"), tag);
            assert_eq!(h(&res, "last-modified"), lm);
            assert!(!h(&res, "cache-control").is_empty());
            assert!(res.bytes().await.unwrap().is_empty());
        }
    }
    // RFC 850 and asctime dates are accepted too.
    let t = httpdate::parse_http_date(&lm).unwrap();
    let dt: chrono_like::Dt = chrono_like::Dt::from(t);
    for form in [dt.rfc850(), dt.asctime()] {
        let res = get(srv, "/hello.txt", &[("if-modified-since", &form)]).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{form}");
    }
    // Preconditions never turn a 404 into something else.
    let res = get(
        srv,
        "/missing.txt",
        &[("if-match", "*"), ("if-none-match", "*")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.bytes().await.unwrap().len() < 64);

    // 8. byte ranges, RFC 9110 §14
    let data = bytes_of(100_000, 1);
    let size = data.len();
    type RangeCase<'a> = (&'a str, u16, Option<(usize, usize)>);
    let ranges: Vec<RangeCase> = vec![
        ("bytes=0-9", 206, Some((0, 10))),
        ("BYTES=0-9", 206, Some((0, 10))),
        ("bytes=-10", 206, Some((size - 10, size))),
        ("bytes=99990-", 206, Some((99_990, size))),
        ("bytes=0-", 206, Some((0, size))),
        ("bytes=-200000", 206, Some((0, size))),
        ("bytes=99000-200000", 206, Some((99_000, size))),
        ("bytes=100000-", 416, None),
        ("bytes=200000-300000", 416, None),
        ("items=0-9", 200, None),
        ("bytes=9-0", 200, None),
        ("bytes=abc", 200, None),
    ];
    for (range, want, slice) in ranges {
        let res = get(srv, "/data.bin", &[("range", range)]).await;
        assert_eq!(res.status().as_u16(), want, "{range}");
        match (want, slice) {
            (206, Some((a, b))) => {
                assert_eq!(
                    h(&res, "content-range"),
                    format!("bytes {a}-{}/{size}", b - 1),
                    "{range}"
                );
                assert_eq!(res.bytes().await.unwrap().as_ref(), &data[a..b], "{range}");
            }
            (416, _) => {
                assert_eq!(h(&res, "content-range"), format!("bytes */{size}"));
                // Not kept by any cache: `Range` is not part of a cache key.
                assert_eq!(h(&res, "cache-control"), "no-store");
            }
            _ => assert_eq!(res.bytes().await.unwrap().len(), size),
        }
    }
    let res = get(srv, "/empty.txt", &[("range", "bytes=0-")]).await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(h(&res, "content-range"), "bytes */0");
    // §14.1.1: on an empty object a non-zero suffix is satisfiable, and a 206 cannot say
    // so: the Range is ignored (§14.2), and the empty 200 sent.
    let res = get(srv, "/empty.txt", &[("range", "bytes=-5")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h(&res, "content-length"), "0");
    assert!(res.bytes().await.unwrap().is_empty());
    // Range is ignored on HEAD.
    let res = client()
        .head(srv.url("/data.bin"))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Several ranges: multipart/byteranges, overlapping ones coalesced.
    let res = get(
        srv,
        "/data.bin",
        &[("range", "bytes=0-9, 5-19, 50000-50009")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let ct = h(&res, "content-type").to_string();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let boundary = ct
        .split("boundary=")
        .nth(1)
        .unwrap()
        .trim_matches('"')
        .to_string();
    let body = res.bytes().await.unwrap();
    let parts = parse_multipart(&body, &boundary);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].0, format!("bytes 0-19/{size}"));
    assert_eq!(parts[0].1, &data[0..20]);
    assert_eq!(parts[1].0, format!("bytes 50000-50009/{size}"));
    assert_eq!(parts[1].1, &data[50_000..50_010]);
    // If-Range: a matching strong ETag gives the range, else the whole object; so does the
    // exact date of a fixture written just now, which is not yet a strong validator (it could
    // still change within its second: `an_if_range_date_is_strong_once_a_minute_old`).
    let tag = etag_of(&data);
    let lm = h(&get(srv, "/data.bin", &[]).await, "last-modified").to_string();
    for (if_range, want) in [
        (tag.as_str(), 206),
        ("\"other\"", 200),
        (lm.as_str(), 200),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 200),
    ] {
        let res = get(
            srv,
            "/data.bin",
            &[("range", "bytes=0-9"), ("if-range", if_range)],
        )
        .await;
        assert_eq!(res.status().as_u16(), want, "If-Range {if_range}");
    }

    // 3 and 9. mapping and errors
    let res = get(srv, "/nope.txt", &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = get(srv, "/docs", &[]).await;
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(h(&res, "location"), "/docs/");
    let res = get(srv, "/docs/", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("docs"));
    assert!(
        get(srv, "/", &[])
            .await
            .text()
            .await
            .unwrap()
            .contains("home")
    );
    assert_eq!(get(srv, "/.env", &[]).await.status(), StatusCode::NOT_FOUND);
    let res = get(srv, "/na%C3%AFve%20caf%C3%A9.txt", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    for path in ["/a%2fb", "/..%2f..%2fetc/passwd", "/a%00b"] {
        let status = get(srv, path, &[]).await.status().as_u16();
        assert!(status == 400 || status == 404, "{path}: {status}");
    }
    // Traversal attempts sent verbatim over a raw socket.
    for path in [
        "/../../../../etc/passwd",
        "/..%2f..%2fetc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/.%2e/.%2e/etc/passwd",
        "/..\\..\\etc\\passwd",
        "/docs/../../etc/passwd",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let out = raw(srv.addr, req.as_bytes()).await;
        let status = raw_status(&out);
        assert!(status == 400 || status == 404, "{path}: {out}");
        assert!(!out.contains("root:"), "{path} escaped");
    }
}

/// Splits a multipart/byteranges body into (Content-Range, bytes) parts.
fn parse_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<(String, &'a [u8])> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(pos) = find(rest, delim.as_bytes()) {
        rest = &rest[pos + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let cr = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("Content-Range: ")
                    .or_else(|| l.strip_prefix("content-range: "))
            })
            .unwrap()
            .to_string();
        let data_start = head_end + 4;
        let next = find(&rest[data_start..], format!("\r\n{delim}").as_bytes()).unwrap();
        parts.push((cr, &rest[data_start..data_start + next]));
        rest = &rest[data_start + next..];
    }
    parts
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Tiny date formatter for the two obsolete HTTP date forms (RFC 9110 §5.6.7).
mod chrono_like {
    use std::time::{SystemTime, UNIX_EPOCH};
    pub struct Dt {
        y: i64,
        mo: usize,
        d: i64,
        h: i64,
        mi: i64,
        s: i64,
        wd: usize,
    }
    impl From<SystemTime> for Dt {
        fn from(t: SystemTime) -> Dt {
            let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
            let days = secs.div_euclid(86_400);
            let rem = secs.rem_euclid(86_400);
            // civil-from-days (Howard Hinnant)
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z - era * 146_097;
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let d = doy - (153 * mp + 2) / 5 + 1;
            let m = if mp < 10 { mp + 3 } else { mp - 9 };
            let y = yoe + era * 400 + i64::from(m <= 2);
            Dt {
                y,
                mo: m as usize,
                d,
                h: rem / 3600,
                mi: rem % 3600 / 60,
                s: rem % 60,
                wd: ((days + 4).rem_euclid(7)) as usize,
            }
        }
    }
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const DAY: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    impl Dt {
        pub fn rfc850(&self) -> String {
            format!(
                "{}, {:02}-{}-{:02} {:02}:{:02}:{:02} GMT",
                DAY[self.wd],
                self.d,
                MON[self.mo - 1],
                self.y % 100,
                self.h,
                self.mi,
                self.s
            )
        }
        pub fn asctime(&self) -> String {
            format!(
                "{} {} {:>2} {:02}:{:02}:{:02} {}",
                &DAY[self.wd][..3],
                MON[self.mo - 1],
                self.d,
                self.h,
                self.mi,
                self.s,
                self.y
            )
        }
    }
}

#[tokio::test]
async fn conformance_local_folder() {
    let dir = local_fixtures();
    let srv = start(args(dir.path()), None).await;
    conformance(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn conformance_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(object_store::memory::InMemory::new());
    put_fixtures(store.as_ref()).await;
    let srv = start(
        args(dir.path()),
        Some(vec![cdn_origin::store::Source::custom("memory", store)]),
    )
    .await;
    conformance(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn conformance_s3_compatible() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = unique("core");
    let store = s3_bucket(&endpoint, &bucket).await;
    put_fixtures(store.as_ref()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    // Through the real configuration path: s3:// URL, endpoint, allow-http, AWS_* credentials.
    a.sources = vec![format!("s3://{bucket}").parse().unwrap()];
    a.s3_endpoint = Some(endpoint);
    a.s3_allow_http = Some(true);
    a.s3_region = Some("us-east-1".into());
    let srv = start(a, None).await;
    conformance(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), b"top secret").unwrap();
    let dir = local_fixtures();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        dir.path().join("link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("linkdir")).unwrap();
    let srv = start(args(dir.path()), None).await;
    for path in ["/link.txt", "/linkdir/secret.txt"] {
        let res = get(&srv, path, &[]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn several_sources_are_searched_in_order() {
    let first = tempfile::tempdir().unwrap();
    let second = local_fixtures();
    std::fs::write(first.path().join("hello.txt"), b"from the first source\n").unwrap();
    let mut a = args(first.path());
    a.sources.push(cdn_origin::config::StoreSpec::Local(
        second.path().to_path_buf(),
    ));
    let srv = start(a, None).await;
    assert_eq!(
        get(&srv, "/hello.txt", &[]).await.text().await.unwrap(),
        "from the first source\n"
    );
    assert_eq!(
        get(&srv, "/data.bin", &[])
            .await
            .bytes()
            .await
            .unwrap()
            .len(),
        100_000
    );
    srv.stop().await;
}

#[tokio::test]
async fn large_objects_get_a_derived_etag_and_ranges_read_only_their_bytes() {
    let dir = local_fixtures();
    let mut a = args(dir.path());
    a.etag_hash_limit = Some("64KiB".parse().unwrap());
    a.cache_max_object = Some("64KiB".parse().unwrap());
    let srv = start(a, None).await;
    let res = get(
        &srv,
        "/video/clip.mp4",
        &[("range", "bytes=1000000-1000099")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let tag = h(&res, "etag").to_string();
    assert!(tag.starts_with('"') && tag != etag_of(&bytes_of(2_000_000, 4)));
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        &bytes_of(2_000_000, 4)[1_000_000..1_000_100]
    );
    // The same ETag from a second server over the same bytes (no inode, no per-process state).
    let srv2 = start(
        {
            let mut b = args(dir.path());
            b.etag_hash_limit = Some("64KiB".parse().unwrap());
            b
        },
        None,
    )
    .await;
    assert_eq!(h(&get(&srv2, "/video/clip.mp4", &[]).await, "etag"), tag);
    srv.stop().await;
    srv2.stop().await;
}

#[tokio::test]
async fn charset_utf_8_is_sent_only_for_text_whose_bytes_are_utf_8() {
    let dir = local_fixtures();
    // A legacy page and feed: their own declarations must decide, not a charset we add.
    let legacy = b"<!doctype html><meta charset=windows-1252><p>caf\xe9 \x93quoted\x94</p>\n";
    std::fs::write(dir.path().join("legacy.html"), legacy.repeat(50)).unwrap();
    std::fs::write(
        dir.path().join("feed.xml"),
        b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><t>\xe9t\xe9</t>\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("utf8.html"), "<p>café</p>\n".repeat(20_000)).unwrap();
    let mut big_latin1 = legacy.repeat(3_000);
    big_latin1.truncate(100_000);
    std::fs::write(dir.path().join("big.txt"), &big_latin1).unwrap();
    let mut a = args(dir.path());
    a.etag_hash_limit = Some("64KiB".parse().unwrap());
    let srv = start(a, None).await;
    for (path, want) in [
        ("/legacy.html", "text/html"),
        ("/feed.xml", "text/xml"),
        // Over 64 KiB (checked on the blocking pool): valid, so it says so.
        ("/utf8.html", "text/html; charset=utf-8"),
        // Over etag_hash_limit: not read before its head, the web's default is said.
        ("/big.txt", "text/plain; charset=utf-8"),
    ] {
        for _ in 0..2 {
            let res = get(&srv, path, &[]).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(h(&res, "content-type"), want, "{path}");
        }
        let res = client().head(srv.url(path)).send().await.unwrap();
        assert_eq!(h(&res, "content-type"), want, "HEAD {path}");
    }
    // A compressed variant is the same text: the same type.
    let res = get(&srv, "/legacy.html", &[("accept-encoding", "gzip")]).await;
    assert_eq!(h(&res, "content-encoding"), "gzip");
    assert_eq!(h(&res, "content-type"), "text/html");
    srv.stop().await;
}

#[tokio::test]
async fn http2_cleartext_is_served() {
    let dir = local_fixtures();
    let srv = start(args(dir.path()), None).await;
    let res = h2_client().get(srv.url("/hello.txt")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.text().await.unwrap(), "hello, world\n");
    srv.stop().await;
}

/// RFC 9110 §13.1.5 and §8.8.2.2: an `If-Range` date allows the range when it is the exact
/// Last-Modified and that is old enough to be strong (a minute); a recent one, or another
/// date, gets the whole object.
#[tokio::test]
async fn an_if_range_date_is_strong_once_a_minute_old() {
    let dir = local_fixtures();
    let hour_ago = backdate(
        &dir.path().join("data.bin"),
        std::time::Duration::from_secs(3600),
    );
    let srv = start(args(dir.path()), None).await;
    let lm = h(&get(&srv, "/data.bin", &[]).await, "last-modified").to_string();
    assert_eq!(lm, httpdate::fmt_http_date(hour_ago));
    let earlier = httpdate::fmt_http_date(hour_ago - std::time::Duration::from_secs(1));
    for (if_range, want) in [(lm.as_str(), 206), (earlier.as_str(), 200)] {
        let res = get(
            &srv,
            "/data.bin",
            &[("range", "bytes=0-9"), ("if-range", if_range)],
        )
        .await;
        assert_eq!(res.status().as_u16(), want, "If-Range {if_range}");
    }
    srv.stop().await;
}

/// RFC 9110 §9.3.2: a HEAD answer has no content, on HTTP/2 too, error answers included
/// (hyper sends an error's body as DATA there, which clients take as a protocol error).
#[tokio::test]
async fn head_answers_carry_no_content_on_http2() {
    let dir = local_fixtures();
    let srv = start(args(dir.path()), None).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, headers, status, len) in [
        ("/missing.txt", vec![], 404, "10"),
        ("/docs", vec![], 308, ""),
        ("/hello.txt", vec![("if-match", "\"other\"")], 412, ""),
        (
            "/style.css",
            vec![("accept-encoding", "identity;q=0")],
            406,
            "",
        ),
        ("/a%00b", vec![], 400, ""),
        ("/hello.txt", vec![], 200, "13"),
    ] {
        let mut req = h2.head(srv.url(path));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.version(), reqwest::Version::HTTP_2);
        assert_eq!(res.status().as_u16(), status, "{path}");
        if !len.is_empty() {
            assert_eq!(h(&res, "content-length"), len, "{path}");
        }
        let body = res.bytes().await;
        assert!(matches!(&body, Ok(b) if b.is_empty()), "{path}: {body:?}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_a_download_finish() {
    let dir = local_fixtures();
    let big = bytes_of(8_000_000, 9);
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    let mut srv = start(args(dir.path()), None).await;
    let res = client().get(srv.url("/big.bin")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let done = srv.signal_stop();
    // The download in flight completes in full after the shutdown signal.
    let body = res.bytes().await.unwrap();
    assert_eq!(body.len(), big.len());
    assert!(body.as_ref() == big.as_slice());
    tokio::time::timeout(Duration::from_secs(15), done)
        .await
        .expect("server exits after draining")
        .unwrap();
    // New connections are refused once it stopped.
    assert!(
        client()
            .get(format!("http://{}/hello.txt", srv.addr))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn request_heads_over_the_limit_get_431() {
    let dir = local_fixtures();
    let srv = start(args(dir.path()), None).await;
    let big = "x".repeat(200 * 1024);
    let req = format!("GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let out = raw(srv.addr, req.as_bytes()).await;
    let status = raw_status(&out);
    assert!(
        status == 431 || out.is_empty(),
        "{}",
        &out[..out.len().min(200)]
    );
    // Normal requests still work.
    assert_eq!(get(&srv, "/hello.txt", &[]).await.status(), StatusCode::OK);
    srv.stop().await;
}

#[tokio::test]
async fn a_public_symlink_into_the_private_prefix_is_not_followed() {
    let dir = local_fixtures();
    std::os::unix::fs::symlink(
        dir.path().join("private/report.txt"),
        dir.path().join("pub.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path().join("hello.txt"), dir.path().join("alias.txt")).unwrap();
    let mut a = args(dir.path());
    a.private_prefix = Some("private/".into());
    a.signing_secret = Some("0123456789abcdef0123456789abcdef".into());
    let srv = start(a, None).await;
    let res = get(&srv, "/pub.txt", &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(!res.text().await.unwrap().contains("private report"));
    // A link that stays in the public part of the root is served.
    assert_eq!(
        get(&srv, "/alias.txt", &[]).await.text().await.unwrap(),
        "hello, world\n"
    );
    srv.stop().await;
}

/// TCP lets a client close its sending side once the request is out (RFC 9293 section 3.6);
/// it still wants the answer (`nc -N`, some proxies). Both a miss (a store read) and a hit are
/// answered, and the connection then closes rather than hang.
#[tokio::test]
async fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = local_fixtures();
    let srv = start(args(dir.path()), None).await;
    for (round, status) in [
        ("miss", "cache-status: cdn-origin; fwd=uri-miss"),
        ("hit", "cache-status: cdn-origin; hit"),
    ] {
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .unwrap_or_else(|_| panic!("{round}: the connection did not close"))
            .unwrap();
        let out = String::from_utf8_lossy(&out);
        assert_eq!(raw_status(&out), 200, "{round}: {out}");
        assert!(out.ends_with("\r\n\r\nhello, world\n"), "{round}: {out}");
        assert!(out.to_ascii_lowercase().contains(status), "{round}: {out}");
    }
    srv.stop().await;
}

/// RFC 9112 §3.2, RFC 9110 §9.1 and RFC 9113 §8.3.1: what every request message must be,
/// checked before routing, on our HTTP/1 layer and on hyper's path alike.
#[tokio::test]
async fn request_messages_are_checked_before_routing() {
    let dir = local_fixtures();
    for fast_http1 in [true, false] {
        let mut a = args(dir.path());
        a.fast_http1 = Some(fast_http1);
        let srv = start(a, None).await;
        let close = "Connection: close\r\n\r\n";
        let cases: Vec<(String, u16)> = vec![
            (
                format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\n{close}"),
                200,
            ),
            (
                format!("GET /hello.txt HTTP/1.1\r\nHost: t:8080\r\n{close}"),
                200,
            ),
            (
                format!("GET /hello.txt HTTP/1.1\r\nHost: [::1]:80\r\n{close}"),
                200,
            ),
            (format!("GET /hello.txt HTTP/1.1\r\nHost:\r\n{close}"), 200),
            (format!("GET /hello.txt HTTP/1.1\r\n{close}"), 400),
            (
                format!("GET /hello.txt HTTP/1.1\r\nHost: a b\r\n{close}"),
                400,
            ),
            (
                format!("GET /hello.txt HTTP/1.1\r\nHost: a/b\r\n{close}"),
                400,
            ),
            (
                format!("GET /hello.txt HTTP/1.1\r\nHost: a:xyz\r\n{close}"),
                400,
            ),
            (
                format!("GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: a\r\n{close}"),
                400,
            ),
            (format!("HEAD /health HTTP/1.1\r\n{close}"), 400),
            (format!("GET http://t/hello.txt HTTP/1.1\r\n{close}"), 400),
            (format!("GET /hello.txt HTTP/1.0\r\n{close}"), 200),
            (
                format!("GET /hello.txt HTTP/1.0\r\nHost: a b\r\n{close}"),
                400,
            ),
            (
                format!("FOO /hello.txt HTTP/1.1\r\nHost: t\r\n{close}"),
                501,
            ),
            (format!("FOO /health HTTP/1.1\r\nHost: t\r\n{close}"), 501),
            (
                format!("PUT /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n{close}"),
                405,
            ),
            (
                format!("OPTIONS /health HTTP/1.1\r\nHost: t\r\n{close}"),
                204,
            ),
            (
                format!("OPTIONS /metrics HTTP/1.1\r\nHost: t\r\n{close}"),
                204,
            ),
            (
                format!("DELETE /health HTTP/1.1\r\nHost: t\r\n{close}"),
                405,
            ),
            // An authority in the target is checked as Host is.
            (
                format!("GET http://u@t/hello.txt HTTP/1.1\r\nHost: t\r\n{close}"),
                400,
            ),
            (
                format!("GET http://t:bad/hello.txt HTTP/1.1\r\nHost: t\r\n{close}"),
                400,
            ),
            (
                format!("GET http://t:8080/hello.txt HTTP/1.1\r\nHost: t\r\n{close}"),
                200,
            ),
            // Transfer codings: only chunked, once (RFC 9112 §6.1), as nginx answers.
            (
                "GET /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
                    .to_string(),
                501,
            ),
            (
                "GET /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"
                    .to_string(),
                400,
            ),
            (
                "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
                    .to_string(),
                405,
            ),
        ];
        for (request, want) in cases {
            let out = raw(srv.addr, request.as_bytes()).await;
            let first = out.lines().next().unwrap_or("");
            assert_eq!(
                raw_status(&out),
                want,
                "fast_http1 {fast_http1}: {request:?} got {first}"
            );
            let lower = out.to_ascii_lowercase();
            if want == 204 || want == 405 {
                assert!(lower.contains("\r\nallow: "), "{request:?}: {out}");
            }
            if want == 204 && request.contains("/health") {
                assert!(lower.contains("allow: get, head, options"), "{out}");
            }
            if want == 400 || want == 501 {
                assert!(lower.contains("cache-control: no-store"), "{out}");
            }
            if request.contains("Transfer-Encoding: gzip") || request.contains("chunked, chunked") {
                assert!(lower.contains("\r\nconnection: close\r\n"), "{out}");
            }
        }
        srv.stop().await;
    }

    // HTTP/2: `Host` must name the `:authority`; the field limit holds there too.
    let srv = start(args(dir.path()), None).await;
    let h2 = h2_client();
    let authority = srv.addr.to_string();
    let res = h2
        .get(srv.url("/hello.txt"))
        .header("host", &authority)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    let res = h2
        .get(srv.url("/hello.txt"))
        .header("host", "elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let mut many = h2.get(srv.url("/hello.txt"));
    for i in 0..101 {
        many = many.header(format!("x-field-{i}"), "1");
    }
    let res = many.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    srv.stop().await;
}

/// RFC 9112 §3: a request line longer than the server reads is a 414, even when it is longer
/// than the whole head may be (which would otherwise be a 431 for the head).
#[tokio::test]
async fn a_request_line_past_the_head_limit_gets_414() {
    let dir = local_fixtures();
    let srv = start(args(dir.path()), None).await;
    // Just past the default 64 KiB head limit: the server reads all of it before answering.
    let req = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(64 * 1024 + 10)
    );
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut rd, mut wr) = s.split();
    let send = async {
        let _ = wr.write_all(req.as_bytes()).await;
    };
    let mut out = Vec::new();
    let read = async {
        let _ = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut out)).await;
    };
    tokio::join!(send, read);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(
        raw_status(&out),
        414,
        "{}",
        out.lines().next().unwrap_or("")
    );
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    assert_eq!(get(&srv, "/hello.txt", &[]).await.status(), StatusCode::OK);
    srv.stop().await;
}

/// A file whose modification time is in the future (a clock skew on the machine that wrote
/// it) is stated with a Last-Modified no later than the response's Date (RFC 9110 §8.8.2.1),
/// and an `If-Modified-Since` carrying exactly that value is a 304: preconditions are judged
/// against what we sent, not against the file's own clock.
#[tokio::test]
async fn a_future_modification_time_is_clamped_and_revalidates() {
    let dir = local_fixtures();
    let path = dir.path().join("future.txt");
    std::fs::write(&path, b"from the future\n").unwrap();
    let next_year = SystemTime::now() + Duration::from_secs(365 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(next_year)
        .unwrap();
    let srv = start(args(dir.path()), None).await;
    let res = get(&srv, "/future.txt", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let lm = h(&res, "last-modified").to_string();
    let stated = httpdate::parse_http_date(&lm).unwrap();
    let date = httpdate::parse_http_date(h(&res, "date")).unwrap();
    assert!(stated <= date, "Last-Modified {lm} after Date");
    let res = get(&srv, "/future.txt", &[("if-modified-since", &lm)]).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    srv.stop().await;
}
