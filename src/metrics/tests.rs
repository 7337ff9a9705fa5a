//! Metrics figures checked against known request sequences.

use super::*;
use http::{Method, StatusCode};

fn rec<'a>(method: &'a Method, status: u16, cache: CacheLabel, body: u64) -> RequestRecord<'a> {
    RequestRecord {
        method,
        status: StatusCode::from_u16(status).unwrap(),
        cache,
        class: ContentClass::Image,
        body_bytes: body,
        saved_not_modified: 0,
        saved_compression: 0,
        latency: Duration::from_micros(800),
    }
}

/// The value of the one sample line `name{labels}` in `text`, parsed as f64.
fn sample(text: &str, series: &str) -> f64 {
    let found: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .collect();
    assert_eq!(found.len(), 1, "expected one sample {series} in:\n{text}");
    found[0].parse().unwrap()
}

#[test]
fn ten_misses_then_ninety_hits_give_a_ratio_of_nine_tenths() {
    let m = Metrics::new();
    let get = Method::GET;
    for _ in 0..10 {
        m.record_request_at(&rec(&get, 200, CacheLabel::Miss, 1_000), 0);
    }
    for _ in 0..90 {
        m.record_request_at(&rec(&get, 200, CacheLabel::Hit, 1_000), 1);
    }
    let t = m.traffic_at(Duration::from_secs(2));
    assert_eq!(t.hit_ratio.since_start, Some(0.9));
    assert_eq!(t.hit_ratio.last_1m, Some(0.9));
    assert_eq!(t.requests.total, 100);
    assert_eq!((t.requests.hits, t.requests.misses), (90, 10));
    assert_eq!(t.bytes_sent, 100_000);
    assert_eq!(
        t.requests_per_second.last_1m, 50.0,
        "100 requests over 2 s of uptime"
    );

    let text = m.encode();
    let labels = |cache: &str| {
        format!("{{method=\"GET\",status=\"2xx\",cache=\"{cache}\",class=\"image\"}}")
    };
    assert_eq!(
        sample(
            &text,
            &format!("cdn_origin_requests_total{}", labels("hit"))
        ),
        90.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("cdn_origin_requests_total{}", labels("miss"))
        ),
        10.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("cdn_origin_response_body_bytes_total{}", labels("hit"))
        ),
        90_000.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("cdn_origin_response_body_bytes_total{}", labels("miss"))
        ),
        10_000.0
    );
    // 0.8 ms lands in the 1 ms bucket and every bucket above, not in the 0.5 ms one.
    let bucket = |le: &str| {
        format!("cdn_origin_request_duration_seconds_bucket{{le=\"{le}\",cache=\"hit\"}}")
    };
    assert_eq!(sample(&text, &bucket("0.0005")), 0.0);
    assert_eq!(sample(&text, &bucket("0.001")), 90.0);
    assert_eq!(sample(&text, &bucket("+Inf")), 90.0);
    assert_eq!(
        sample(
            &text,
            "cdn_origin_request_duration_seconds_count{cache=\"miss\"}"
        ),
        10.0
    );
}

#[test]
fn windows_forget_old_requests_but_the_total_does_not() {
    let m = Metrics::new();
    let get = Method::GET;
    for _ in 0..10 {
        m.record_request_at(&rec(&get, 200, CacheLabel::Miss, 10), 0);
    }
    for _ in 0..90 {
        m.record_request_at(&rec(&get, 200, CacheLabel::Hit, 10), 400);
    }
    let t = m.traffic_at(Duration::from_secs(400));
    assert_eq!(t.hit_ratio.last_1m, Some(1.0));
    assert_eq!(
        t.hit_ratio.last_5m,
        Some(1.0),
        "the misses at 0 s are 400 s old"
    );
    assert_eq!(t.hit_ratio.last_15m, Some(0.9));
    let later = m.traffic_at(Duration::from_secs(1_000));
    assert_eq!(later.hit_ratio.last_1m, None, "nothing in the last minute");
    assert_eq!(
        later.hit_ratio.last_15m,
        Some(1.0),
        "the misses left the 15-minute window"
    );
    assert_eq!(later.hit_ratio.since_start, Some(0.9));
    assert_eq!(later.requests_per_second.last_1m, 0.0);
    assert_eq!(
        later.requests_per_second.last_15m, 0.1,
        "90 requests in 900 s"
    );
}

#[test]
fn bypass_is_left_out_of_the_hit_ratio_and_stale_counts_against_it() {
    let m = Metrics::new();
    let get = Method::GET;
    m.record_request_at(&rec(&get, 404, CacheLabel::Bypass, 9), 0);
    m.record_request_at(&rec(&get, 200, CacheLabel::Bypass, 9), 0);
    m.record_request_at(&rec(&get, 200, CacheLabel::Hit, 9), 0);
    assert_eq!(
        m.traffic_at(Duration::from_secs(1)).hit_ratio.since_start,
        Some(1.0)
    );
    m.record_request_at(&rec(&get, 200, CacheLabel::Stale, 9), 0);
    let t = m.traffic_at(Duration::from_secs(1));
    assert_eq!(t.hit_ratio.since_start, Some(0.5));
    assert_eq!(t.requests.bypass, 2);
    assert_eq!(t.bytes_sent, 36);
}

#[test]
fn no_cache_decision_gives_no_ratio_and_null_in_json() {
    let m = Metrics::new();
    let t = m.traffic_at(Duration::from_secs(5));
    assert_eq!(t.hit_ratio.since_start, None);
    let json = serde_json::to_value(&t).unwrap();
    assert!(json["hit_ratio"]["since_start"].is_null());
    assert_eq!(json["requests"]["total"], 0);
}

#[test]
fn saved_bytes_are_counted_by_reason_and_class() {
    let m = Metrics::new();
    let get = Method::GET;
    let mut not_modified = rec(&get, 304, CacheLabel::Hit, 0);
    not_modified.class = ContentClass::CssJs;
    not_modified.saved_not_modified = 5_000;
    m.record_request_at(&not_modified, 0);
    let mut compressed = rec(&get, 200, CacheLabel::Hit, 700);
    compressed.class = ContentClass::CssJs;
    compressed.saved_compression = 300;
    m.record_request_at(&compressed, 0);

    let t = m.traffic_at(Duration::from_secs(1));
    assert_eq!(t.bytes_saved.not_modified, 5_000);
    assert_eq!(t.bytes_saved.compression, 300);
    assert_eq!(t.bytes_saved.total, 5_300);
    assert_eq!(t.bytes_sent, 700);
    let text = m.encode();
    assert_eq!(
        sample(
            &text,
            "cdn_origin_saved_bytes_total{reason=\"not_modified\",class=\"css_js\"}"
        ),
        5_000.0
    );
    assert_eq!(
        sample(
            &text,
            "cdn_origin_saved_bytes_total{reason=\"compression\",class=\"css_js\"}"
        ),
        300.0
    );
    assert_eq!(
        sample(
            &text,
            "cdn_origin_requests_total{method=\"GET\",status=\"3xx\",cache=\"hit\",class=\"css_js\"}"
        ),
        1.0
    );
}

#[test]
fn take_minute_returns_deltas_between_calls() {
    let m = Metrics::new();
    let get = Method::GET;
    for _ in 0..3 {
        m.record_request_at(&rec(&get, 200, CacheLabel::Miss, 100), 0);
    }
    m.record_store(
        "main",
        StoreOp::Get,
        StoreOutcome::Ok,
        Duration::from_millis(20),
        300,
    );
    let first = m.take_minute();
    assert_eq!(
        first,
        MinuteTotals {
            requests: 3,
            misses: 3,
            bytes_sent: 300,
            store_bytes: 300,
            ..MinuteTotals::default()
        }
    );
    assert!(
        m.take_minute().is_empty(),
        "nothing happened since the last call"
    );
    m.record_request_at(&rec(&get, 200, CacheLabel::Hit, 50), 61);
    m.add_body_bytes(
        &get,
        StatusCode::OK,
        CacheLabel::Hit,
        ContentClass::Image,
        25,
    );
    let third = m.take_minute();
    assert_eq!((third.requests, third.hits, third.bytes_sent), (1, 1, 75));
}

#[test]
fn store_calls_are_counted_by_store_operation_and_outcome() {
    let m = Metrics::new();
    m.record_store(
        "s3",
        StoreOp::Get,
        StoreOutcome::Ok,
        Duration::from_millis(30),
        1_234,
    );
    m.record_store(
        "s3",
        StoreOp::Head,
        StoreOutcome::NotFound,
        Duration::from_millis(5),
        0,
    );
    m.record_store(
        "s3",
        StoreOp::Get,
        StoreOutcome::Timeout,
        Duration::from_secs(5),
        0,
    );
    let text = m.encode();
    assert_eq!(
        sample(
            &text,
            "cdn_origin_store_requests_total{store=\"s3\",op=\"get\",outcome=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "cdn_origin_store_requests_total{store=\"s3\",op=\"get\",outcome=\"timeout\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "cdn_origin_store_requests_total{store=\"s3\",op=\"head\",outcome=\"not_found\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "cdn_origin_store_read_bytes_total{store=\"s3\"}"),
        1_234.0
    );
    assert_eq!(
        sample(
            &text,
            "cdn_origin_store_request_duration_seconds_count{store=\"s3\",op=\"get\"}"
        ),
        2.0
    );
    assert_eq!(m.traffic().bytes_from_store, 1_234);
}

#[test]
fn store_names_beyond_the_cap_share_one_label() {
    let m = Metrics::new();
    for i in 0..(MAX_STORE_NAMES + 8) {
        m.record_store(
            &format!("s{i}"),
            StoreOp::Get,
            StoreOutcome::Ok,
            Duration::ZERO,
            1,
        );
    }
    let text = m.encode();
    let series = text
        .lines()
        .filter(|l| l.starts_with("cdn_origin_store_read_bytes_total{"))
        .count();
    assert_eq!(series, MAX_STORE_NAMES + 1);
    assert_eq!(
        sample(&text, "cdn_origin_store_read_bytes_total{store=\"other\"}"),
        8.0
    );
}

#[test]
fn breaker_state_is_one_hot_and_transitions_are_counted() {
    let m = Metrics::new();
    m.set_breaker_state("main", BreakerState::Closed);
    m.breaker_transition("main", BreakerState::Open);
    let text = m.encode();
    assert_eq!(
        sample(
            &text,
            "cdn_origin_breaker_state{store=\"main\",state=\"open\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "cdn_origin_breaker_state{store=\"main\",state=\"closed\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "cdn_origin_breaker_state{store=\"main\",state=\"half_open\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "cdn_origin_breaker_transitions_total{store=\"main\",to=\"open\"}"
        ),
        1.0
    );
}

#[test]
fn gauges_follow_connections_cache_and_pool() {
    let m = Metrics::new();
    m.connection_opened();
    m.connection_opened();
    m.connection_closed(ConnectionEnd::IdleTimeout);
    m.set_cache_usage(4_096, 3);
    m.cache_evicted(2);
    m.set_db_pool(4, 3, 0, 10);
    m.record_db_check(Duration::from_millis(150), true);
    let text = m.encode();
    assert_eq!(sample(&text, "cdn_origin_open_connections"), 1.0);
    assert_eq!(sample(&text, "cdn_origin_connections_total"), 2.0);
    assert_eq!(
        sample(
            &text,
            "cdn_origin_connections_closed_total{reason=\"idle_timeout\"}"
        ),
        1.0
    );
    assert_eq!(sample(&text, "cdn_origin_cache_bytes"), 4_096.0);
    assert_eq!(sample(&text, "cdn_origin_cache_entries"), 3.0);
    assert_eq!(sample(&text, "cdn_origin_cache_evictions_total"), 2.0);
    assert_eq!(sample(&text, "cdn_origin_db_pool_size"), 4.0);
    assert_eq!(sample(&text, "cdn_origin_db_pool_max"), 10.0);
    assert_eq!(sample(&text, "cdn_origin_db_up"), 1.0);
    assert_eq!(
        sample(&text, "cdn_origin_db_check_last_duration_seconds"),
        0.15
    );
    assert_eq!(
        sample(
            &text,
            "cdn_origin_db_check_duration_seconds_bucket{le=\"0.1\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "cdn_origin_db_check_duration_seconds_bucket{le=\"0.25\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "cdn_origin_db_checks_total{outcome=\"ok\"}"),
        1.0
    );
}

/// Records one of everything, for the exposition checks.
pub(crate) fn sample_metrics() -> Metrics {
    let m = Metrics::new();
    let get = Method::GET;
    m.record_request(&rec(&get, 200, CacheLabel::Hit, 10));
    m.record_request(&rec(&Method::HEAD, 304, CacheLabel::Miss, 0));
    m.record_request(&rec(&Method::DELETE, 405, CacheLabel::Bypass, 0));
    let mut saved = rec(&get, 304, CacheLabel::Stale, 0);
    saved.saved_not_modified = 100;
    saved.saved_compression = 1;
    m.record_request(&saved);
    m.record_store(
        "main",
        StoreOp::Get,
        StoreOutcome::Error,
        Duration::from_millis(3),
        7,
    );
    m.connection_opened();
    m.set_cache_usage(1, 1);
    m.cache_evicted(1);
    m.breaker_transition("main", BreakerState::HalfOpen);
    m.set_db_pool(2, 2, 0, 10);
    m.record_db_check(Duration::from_millis(2), true);
    m
}

#[test]
fn exposition_passes_promtool_check_metrics() {
    let text = sample_metrics().encode();
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    let Some(output) = run_promtool(&text) else {
        return;
    };
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}\n{}\n--- input ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_rejects_the_unconverted_openmetrics_text() {
    // Proves the check above can fail: the library's own OpenMetrics text names counter
    // families without `_total`, which promtool's 0.0.4 parser reports.
    let m = sample_metrics();
    let mut om = String::new();
    prometheus_client::encoding::text::encode(&mut om, &m.registry).unwrap();
    let Some(output) = run_promtool(&om) else {
        return;
    };
    assert!(
        !output.status.success(),
        "promtool accepted OpenMetrics text:\n{om}"
    );
}

/// Runs `promtool check metrics` on `text`; `None` (with the reason printed) when promtool is
/// absent outside CI; panics when it is absent in CI.
fn run_promtool(text: &str) -> Option<std::process::Output> {
    use std::io::Write as _;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is required in CI: {e}"
            );
            eprintln!("skipping: promtool not runnable ({e}); install Debian's prometheus package");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}
