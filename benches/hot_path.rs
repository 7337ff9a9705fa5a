//! Micro benchmarks of the per-request hot path (issue 6, point 3): the pure steps every
//! request of a cache hit goes through, one group per step, plus the steps chained the way
//! the pipeline chains them for a hot-cache hit.
//!
//! - `map_path`: URL path to store key (`request::map_path`), plain, index and percent-encoded;
//! - `policy_select`: `PolicySet::select` on the shipped `policies/default.toml`, from the first
//!   rule to the fall-through to `[default]` (the worst case: every rule is tried);
//! - `conditional`: reading the precondition headers (`Conditions::from_headers`) and
//!   `conditional::evaluate` for a matching and a non-matching `If-None-Match`;
//! - `range`: `range::decide` for no Range, one range, a suffix and a multi-range header;
//! - `accept_encoding`: `AcceptEncoding::parse` and `negotiate` for browser headers;
//! - `object_headers`: the fields of a 200 with a policy written one by one into a fresh
//!   `HeaderMap` (`RepresentationHeaders`, `content_headers`, `RequestHeaders`, as for a
//!   representation whose length is not settled), and the same from a `Prepared` copy, as
//!   for every 200/304 of a hit;
//! - `hit_path`: all of the above for one request, the CPU floor of a hit before any I/O.
//!
//! Run with `cargo bench --bench hot_path` (results in `target/criterion/`); see
//! `benches/README.md` for the numbers of the last run and what they mean.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use cdn_origin::conditional::{self, Conditions, Validators};
use cdn_origin::encoding::{AcceptEncoding, Encoding};
use cdn_origin::etag::ETag;
use cdn_origin::policy::PolicySet;
use cdn_origin::range;
use cdn_origin::request::map_path;
use cdn_origin::response::{
    Prepared, RepresentationHeaders, RequestHeaders, Vary, content_headers,
};
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::{ACCEPT_ENCODING, IF_NONE_MATCH, RANGE};
use http::{HeaderMap, HeaderValue, Method, Uri};

/// The shipped policies, compiled in so the benchmark does not depend on the working directory.
const DEFAULT_POLICIES: &str = include_str!("../policies/default.toml");

const AVAILABLE: [Encoding; 4] = [
    Encoding::Brotli,
    Encoding::Zstd,
    Encoding::Gzip,
    Encoding::Identity,
];

fn policies() -> PolicySet {
    match PolicySet::from_str(DEFAULT_POLICIES, "policies/default.toml") {
        Ok(set) => set,
        Err(e) => panic!("policies/default.toml does not load: {e}"),
    }
}

fn etag() -> ETag {
    ETag::from_sha256(&[0x5a; 32])
}

fn last_modified() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn bench_map_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("map_path");
    for (name, uri) in [
        ("fingerprinted_js", "/assets/js/app.3f9a1c2e.js"),
        ("index", "/blog/"),
        ("percent_encoded", "/files/na%C3%AFve%20caf%C3%A9.txt"),
        ("deep", "/images/gallery/2026/06/summer/photo-01.jpg"),
    ] {
        let uri = Uri::from_static(uri);
        g.bench_function(name, |b| b.iter(|| map_path(black_box(&uri), false)));
    }
    g.finish();
}

fn bench_policy(c: &mut Criterion) {
    let set = policies();
    let mut g = c.benchmark_group("policy_select");
    for (name, path, content_type) in [
        ("html_first_rule", "/index.html", "text/html; charset=utf-8"),
        (
            "fingerprinted",
            "/assets/js/app.3f9a1c2e.js",
            "text/javascript; charset=utf-8",
        ),
        ("image", "/images/gallery/photo-01.jpg", "image/jpeg"),
        (
            "default_fallthrough",
            "/data/blob.bin",
            "application/octet-stream",
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                set.select(black_box(path), black_box(content_type))
                    .name
                    .len()
            })
        });
    }
    g.finish();
}

fn bench_conditional(c: &mut Criterion) {
    let tag = etag();
    let validators = Validators {
        etag: &tag,
        last_modified: Some(last_modified()),
    };
    let mut matching = HeaderMap::new();
    matching.insert(IF_NONE_MATCH, tag.header_value());
    let mut other = HeaderMap::new();
    other.insert(
        IF_NONE_MATCH,
        HeaderValue::from_static(
            "\"0000000000000000000000000000000000000000000000000000000000000000\"",
        ),
    );
    let none = HeaderMap::new();

    let mut g = c.benchmark_group("conditional");
    for (name, headers) in [
        ("inm_match", &matching),
        ("inm_other", &other),
        ("none", &none),
    ] {
        g.bench_function(format!("parse_{name}"), |b| {
            b.iter(|| Conditions::from_headers(black_box(headers)))
        });
        let parsed = Conditions::from_headers(headers);
        g.bench_function(format!("evaluate_{name}"), |b| {
            b.iter(|| {
                conditional::evaluate(black_box(&parsed), &Method::GET, black_box(&validators))
            })
        });
    }
    g.finish();
}

fn bench_range(c: &mut Criterion) {
    let size = 6 * 1024 * 1024;
    let mut g = c.benchmark_group("range");
    g.bench_function("absent", |b| {
        b.iter(|| range::decide(black_box(None), black_box(size)))
    });
    for (name, value) in [
        ("one_mib_at_offset", "bytes=1048576-2097151"),
        ("suffix", "bytes=-500"),
        ("open_ended", "bytes=4194304-"),
        ("multi_3", "bytes=0-99,200-299,1000-1999"),
    ] {
        let value = HeaderValue::from_static(value);
        g.bench_function(name, |b| {
            b.iter(|| range::decide(black_box(Some(&value)), black_box(size)))
        });
    }
    g.finish();
}

fn bench_accept_encoding(c: &mut Criterion) {
    let mut g = c.benchmark_group("accept_encoding");
    for (name, value) in [
        ("chrome", "gzip, deflate, br, zstd"),
        ("qvalues", "br;q=1.0, gzip;q=0.8, *;q=0.1"),
        ("identity_only", "identity"),
    ] {
        g.bench_function(format!("parse_negotiate_{name}"), |b| {
            b.iter(|| AcceptEncoding::parse(black_box(value)).negotiate(black_box(&AVAILABLE)))
        });
    }
    g.finish();
}

/// The representation fields of a negotiable object (`Vary: Accept-Encoding`).
fn negotiable<'a>(
    etag: &'a HeaderValue,
    last_modified: &'a HeaderValue,
    policy: &'a cdn_origin::policy::Policy,
) -> RepresentationHeaders<'a> {
    RepresentationHeaders {
        etag,
        last_modified,
        policy,
        vary: Vary {
            accept_encoding: true,
            origin: false,
        },
    }
}

fn bench_object_headers(c: &mut Criterion) {
    let set = policies();
    let tag = etag();
    // Rendered once per object at load in the server, so once per benchmark here.
    let tag_value = tag.header_value();
    let lm_value = cdn_origin::response::http_date(last_modified());
    let status = HeaderValue::from_static("cdn-origin; hit");
    let mut g = c.benchmark_group("object_headers");
    for (name, path, content_type) in [
        ("css_with_vary", "/assets/css/site.css", "text/css"),
        ("html", "/index.html", "text/html; charset=utf-8"),
    ] {
        let policy = set.select(path, content_type);
        let content_type = HeaderValue::from_static(content_type);
        let representation = negotiable(&tag_value, &lm_value, policy);
        let request = || RequestHeaders {
            cache_status: status.clone(),
            private: false,
            cors: None,
        };
        g.bench_function(format!("write_{name}"), |b| {
            b.iter(|| {
                let mut h = HeaderMap::with_capacity(16);
                representation.write(&mut h);
                content_headers(&mut h, &content_type, Encoding::Brotli, Some(40_000));
                request().write(&mut h);
                h
            })
        });
        let prepared = Prepared::new(
            &representation,
            &content_type,
            Encoding::Brotli,
            Some(40_000),
        );
        g.bench_function(format!("prepared_{name}"), |b| {
            b.iter(|| prepared.ok(request()))
        });
    }
    g.finish();
}

/// The pure steps of one hot-cache hit, chained as the pipeline chains them: a precompressed
/// style sheet (200 with `br`), a 304 revalidation and a 1 MiB video range (206).
fn bench_hit_path(c: &mut Criterion) {
    let set = policies();
    let tag = etag();
    // Rendered once per object at load in the server, so once per benchmark here.
    let tag_value = tag.header_value();
    let lm_value = cdn_origin::response::http_date(last_modified());
    let status = HeaderValue::from_static("cdn-origin; hit");
    let mut css = HeaderMap::new();
    css.insert(
        ACCEPT_ENCODING,
        HeaderValue::from_static("gzip, deflate, br, zstd"),
    );
    let mut revalidate = css.clone();
    revalidate.insert(IF_NONE_MATCH, tag.header_value());
    let mut video = HeaderMap::new();
    video.insert(RANGE, HeaderValue::from_static("bytes=1048576-2097151"));
    let cases = [
        (
            "css_200_br",
            "/assets/css/site.css",
            "text/css; charset=utf-8",
            css,
            184_320,
        ),
        (
            "html_304",
            "/index.html",
            "text/html; charset=utf-8",
            revalidate,
            8_079,
        ),
        (
            "video_206",
            "/video/clip.mp4",
            "video/mp4",
            video,
            6 * 1024 * 1024,
        ),
    ];

    let mut g = c.benchmark_group("hit_path");
    for (name, uri, content_type, headers, size) in &cases {
        let uri = Uri::from_static(uri);
        let content_type_value = HeaderValue::from_static(content_type);
        let prepared = std::sync::OnceLock::new();
        g.bench_function(*name, |b| {
            b.iter(|| {
                let headers = black_box(headers);
                let mapped = map_path(black_box(&uri), false).ok()?;
                let accept = AcceptEncoding::from_headers(headers);
                let conditions = Conditions::from_headers(headers);
                let encoding = accept.negotiate(&AVAILABLE)?;
                let validators = Validators {
                    etag: &tag,
                    last_modified: Some(last_modified()),
                };
                let outcome = conditional::evaluate(&conditions, &Method::GET, &validators);
                let ranges = range::decide(headers.get(RANGE), *size);
                let policy = set.select(mapped.path(), content_type);
                // Prepared once per object and representation in the server: the first
                // request pays this, later ones only the copy below.
                let representation = negotiable(&tag_value, &lm_value, policy);
                let prepared = prepared.get_or_init(|| {
                    Prepared::new(&representation, &content_type_value, encoding, Some(*size))
                });
                let request = RequestHeaders {
                    cache_status: status.clone(),
                    private: false,
                    cors: None,
                };
                let h = match outcome {
                    conditional::Precondition::NotModified => prepared.not_modified(request),
                    _ => prepared.ok(request),
                };
                Some((outcome, ranges, h))
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_map_path,
    bench_policy,
    bench_conditional,
    bench_range,
    bench_accept_encoding,
    bench_object_headers,
    bench_hit_path
);
criterion_main!(benches);
