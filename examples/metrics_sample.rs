//! Prints a `/metrics` exposition after recording one of every kind of event, for
//! `scripts/check-prometheus.sh` (which feeds it to `promtool check metrics`) and for a look at
//! the metric names without starting the server.

use cdn_origin::metrics::{
    BreakerState, CacheLabel, ConnectionEnd, ContentClass, Metrics, RequestRecord, StoreOp,
    StoreOutcome,
};
use std::time::Duration;

fn main() {
    let m = Metrics::new();
    let get = http::Method::GET;
    let requests = [
        (
            &get,
            200,
            CacheLabel::Hit,
            ContentClass::Image,
            10_240,
            0,
            0,
        ),
        (
            &get,
            200,
            CacheLabel::Miss,
            ContentClass::CssJs,
            2_000,
            0,
            6_000,
        ),
        (
            &get,
            304,
            CacheLabel::Stale,
            ContentClass::Html,
            0,
            4_096,
            0,
        ),
        (
            &http::Method::HEAD,
            200,
            CacheLabel::Bypass,
            ContentClass::Video,
            0,
            0,
            0,
        ),
        (
            &http::Method::DELETE,
            405,
            CacheLabel::Bypass,
            ContentClass::Other,
            18,
            0,
            0,
        ),
    ];
    for (method, status, cache, class, body, not_modified, compression) in requests {
        m.record_request(&RequestRecord {
            method,
            status: http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK),
            cache,
            class,
            body_bytes: body,
            saved_not_modified: not_modified,
            saved_compression: compression,
            latency: Duration::from_millis(3),
        });
    }
    m.record_store(
        "main",
        StoreOp::Get,
        StoreOutcome::Ok,
        Duration::from_millis(40),
        8_000,
    );
    m.record_store(
        "main",
        StoreOp::Head,
        StoreOutcome::NotFound,
        Duration::from_millis(9),
        0,
    );
    m.record_store(
        "main",
        StoreOp::Get,
        StoreOutcome::Timeout,
        Duration::from_secs(5),
        0,
    );
    for end in ConnectionEnd::ALL {
        m.connection_opened();
        m.connection_closed(end);
    }
    m.connection_opened();
    m.set_cache_usage(1 << 20, 42);
    m.cache_evicted(3);
    m.set_breaker_state("main", BreakerState::Closed);
    m.breaker_transition("main", BreakerState::Open);
    m.set_db_pool(3, 2, 0, 10);
    m.record_db_check(Duration::from_millis(4), true);
    print!("{}", m.encode());
}
