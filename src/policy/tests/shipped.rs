//! The shipped files under `policies/`: each loads, and the defaults give issue 3's table.

use super::header;
use crate::policy::{ERRORS_MAX_LIFETIME, PolicySet};
use std::path::PathBuf;

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn toml_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            toml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn every_shipped_policy_file_loads() {
    let mut files = Vec::new();
    toml_files(&shipped(), &mut files);
    assert!(
        files.len() >= 2,
        "expected default.toml and an example, found {files:?}"
    );
    for file in &files {
        let s = PolicySet::load(file).unwrap_or_else(|e| panic!("{e}"));
        let errors = s.error_policy();
        assert!(!errors.directives.immutable, "{}", file.display());
        assert!(
            errors
                .directives
                .longest()
                .is_none_or(|(_, d)| d <= ERRORS_MAX_LIFETIME)
        );
    }
    // the directory load (the default `--policies policies/`) reads only the top level
    let dir = PolicySet::load(&shipped()).unwrap();
    assert!(
        dir.sources().iter().all(|s| !s.contains("examples")),
        "{:?}",
        dir.sources()
    );
}

/// Issue 3 point 2, type by type.
#[test]
fn default_policies_give_the_documented_table() {
    let s = PolicySet::load(&shipped().join("default.toml")).unwrap();
    let table = [
        (
            "/img/logo.png",
            "image/png",
            "public, max-age=86400, stale-while-revalidate=8640",
        ),
        (
            "/img/photo.jpg",
            "image/jpeg",
            "public, max-age=86400, stale-while-revalidate=8640",
        ),
        (
            "/img/icon.svg",
            "image/svg+xml",
            "public, max-age=86400, stale-while-revalidate=8640",
        ),
        (
            "/v/clip.mp4",
            "video/mp4",
            "public, max-age=604800, stale-if-error=86400",
        ),
        (
            "/v/clip.webm",
            "video/webm",
            "public, max-age=604800, stale-if-error=86400",
        ),
        (
            "/f/a.woff2",
            "font/woff2",
            "public, max-age=2592000, stale-while-revalidate=86400",
        ),
        (
            "/f/a.ttf",
            "font/ttf",
            "public, max-age=2592000, stale-while-revalidate=86400",
        ),
        (
            "/f/a.eot",
            "application/vnd.ms-fontobject",
            "public, max-age=2592000, stale-while-revalidate=86400",
        ),
        (
            "/style.css",
            "text/css",
            "public, max-age=86400, stale-while-revalidate=8640",
        ),
        (
            "/app.js",
            "text/javascript",
            "public, max-age=86400, stale-while-revalidate=8640",
        ),
        (
            "/app.js",
            "application/javascript",
            "public, max-age=86400, stale-while-revalidate=8640",
        ),
        ("/doc.pdf", "application/pdf", "public, max-age=43200"),
        (
            "/live/index.m3u8",
            "application/vnd.apple.mpegurl; charset=utf-8",
            "public, max-age=1",
        ),
        (
            "/vod/manifest.mpd",
            "application/dash+xml",
            "public, max-age=1",
        ),
        ("/radio.m3u", "audio/x-mpegurl", "public, max-age=1"),
        ("/index.html", "text/html; charset=utf-8", "no-cache"),
        ("/", "text/html", "no-cache"),
        (
            "/app.3f9a1c2e.js",
            "text/javascript",
            "public, max-age=31536000, immutable",
        ),
        (
            "/assets/style.3f9a1c2e0b.css",
            "text/css",
            "public, max-age=31536000, immutable",
        ),
        (
            "/img/logo.3f9a1c2e.png",
            "image/png",
            "public, max-age=31536000, immutable",
        ),
        ("/data.json", "application/json", "public, max-age=3600"),
        (
            "/file.bin",
            "application/octet-stream",
            "public, max-age=3600",
        ),
    ];
    for (path, content_type, expected) in table {
        let policy = s.select(path, content_type);
        assert_eq!(
            header(&policy.cache_control),
            Some(expected),
            "{path} ({content_type}): rule {}",
            policy.name
        );
        assert!(policy.cdn_cache_control.is_none() && policy.surrogate_key.is_none());
        assert!(
            policy.extra_headers.is_empty(),
            "security headers are off by default"
        );
    }
    assert_eq!(header(&s.error_policy().cache_control), Some("max-age=60"));
}

#[test]
fn strict_cdn_example_caches_longer_at_the_cdn() {
    let s = PolicySet::load(&shipped().join("examples/strict-cdn.toml")).unwrap();
    // Live manifests change with every segment: a second at the CDN too.
    let manifest = s.select("/live/index.m3u8", "application/vnd.apple.mpegurl");
    assert_eq!(manifest.name, "manifests");
    assert_eq!(header(&manifest.cache_control), Some("public, max-age=1"));
    assert_eq!(header(&manifest.cdn_cache_control), Some("max-age=1"));
    for policy in s
        .policies()
        .filter(|p| !["errors", "fingerprinted", "manifests"].contains(&p.name.as_str()))
    {
        let cdn = policy
            .cdn_directives
            .as_ref()
            .expect("every CDN-cached policy has CDN-Cache-Control");
        let browser = policy.directives.max_age.unwrap_or_default();
        assert!(cdn.max_age.unwrap() > browser, "{}", policy.name);
        assert!(
            header(&policy.surrogate_key).unwrap().contains("all"),
            "{}",
            policy.name
        );
    }
    let css = s.select("/style.css", "text/css");
    assert_eq!(
        header(&css.cache_control),
        Some(
            "public, max-age=3600, s-maxage=604800, stale-while-revalidate=3600, stale-if-error=86400"
        )
    );
    assert_eq!(
        header(&css.cdn_cache_control),
        Some("max-age=2592000, stale-while-revalidate=86400, stale-if-error=604800")
    );
    assert_eq!(header(&css.surrogate_key), Some("all assets"));
    assert_eq!(
        header(&s.select("/", "text/html").cache_control),
        Some("no-cache")
    );
}
