//! Counters, gauges and histograms for `GET /metrics`, plus the hit-rate figures for
//! `/health/detailed` and the per-minute database rows.
//!
//! The pipeline's last step (see the architecture guide: *record*) calls
//! [`Metrics::record_request`] once per response with a [`RequestRecord`]; the store, the cache,
//! the server and the database pool report through the other methods. Everything is `&self`
//! and lock-free on the request path (series handles resolved once, latency in an
//! `histogram::AtomicHistogram`), and never holds a lock across an `.await`.
//!
//! **Bounded labels.** Every label value comes from a closed enum in [`labels`], except the
//! store name, which comes from the configuration and is capped at [`MAX_STORE_NAMES`]
//! distinct values (later names are counted as `other`).
//!
//! **Hit ratio.** `hits / (hits + misses + stale)`. A stale answer counts against the ratio: it
//! means the entry was out of date and the store had to be asked (revalidation in the
//! background, or the store failed). `bypass` requests (not cacheable, errors, OPTIONS) are not
//! cache decisions and are excluded. With no cache decision in the span the ratio is `None`
//! (`null` in JSON), not 0 or 1. The same definition is used by the Prometheus alert rules in
//! `deploy/`, `/health/detailed` and `cdn-origin report`.
//!
//! **Exposition.** prometheus-client writes OpenMetrics text; [`Metrics::encode`] converts it
//! to the Prometheus 0.0.4 text format (see [`expose`]) so that `promtool check metrics` and
//! every scraper read it; serve it with [`CONTENT_TYPE`].

pub mod expose;
mod histogram;
pub mod labels;
mod register;
mod traffic;
mod window;

pub use expose::CONTENT_TYPE;
pub use labels::{
    BreakerState, CacheLabel, ConnectionEnd, ContentClass, MethodLabel, StatusClass, StoreOp,
    StoreOutcome,
};
pub use traffic::{
    BytesSaved, HitRatios, MinuteTotals, Rates, RequestCounts, TrafficSnapshot, hit_ratio,
};

use histogram::AtomicHistogram;
use labels::{
    BreakerLabels, BreakerTransitionLabels, CacheOnlyLabels, CheckLabels, CheckOutcome,
    ConnectionEndLabels, RequestLabels, SavedLabels, SavedReason, StoreLabels, StoreNameLabels,
    StoreOpLabels,
};
use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use window::{AtomicTally, Tally, Window};

/// Request latency buckets in seconds: 0.5 ms (a hot-cache hit) up to 5 s (a slow store).
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Database check buckets in seconds; 0.1 is the "slow" threshold of the alert rules.
pub const DB_CHECK_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// At most this many distinct store names become label values; more are counted as `other`.
pub const MAX_STORE_NAMES: usize = 32;

type HistogramFamily<S> = Family<S, AtomicHistogram, fn() -> AtomicHistogram>;

/// Everything known about one finished response, for [`Metrics::record_request`].
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    /// The request method.
    pub method: &'a http::Method,
    /// The response status.
    pub status: http::StatusCode,
    /// How the cache answered.
    pub cache: CacheLabel,
    /// Content class of the object (from its Content-Type); `Other` for errors.
    pub class: ContentClass,
    /// Body bytes actually sent (0 for HEAD and 304). If the body was counted while streaming
    /// with [`Metrics::add_body_bytes`], pass 0 here so it is not counted twice.
    pub body_bytes: u64,
    /// For a 304: the body size the 200 would have sent (RFC 9110 section 15.4.5); else 0.
    pub saved_not_modified: u64,
    /// For an encoded body: original size minus encoded size (0 if it grew or was identity).
    pub saved_compression: u64,
    /// Time from the request head to the response head (the origin's time to first byte; a
    /// body's transfer is not included).
    pub latency: Duration,
}

/// Handles to the per-request series, by dense label index ([`RequestLabels::index`]), each
/// filled on its first use. A handle shares its value with the series in the family (the
/// metric types are `Arc`s inside), so the request path costs an array index instead of the
/// family's read lock and a hash of the label set, and the exposition is unchanged: a series
/// still appears only once it has been used.
#[derive(Debug)]
struct RequestHandles {
    requests: Box<[OnceLock<Counter>]>,
    body_bytes: Box<[OnceLock<Counter>]>,
    duration: [OnceLock<AtomicHistogram>; CacheLabel::COUNT],
    /// `bytes_saved` by reason and class, at `reason.index() * ContentClass::COUNT + class`.
    saved: [OnceLock<Counter>; SavedReason::COUNT * ContentClass::COUNT],
    /// `connections_closed` by reason.
    connection_ends: [OnceLock<Counter>; ConnectionEnd::COUNT],
}

impl Default for RequestHandles {
    fn default() -> RequestHandles {
        RequestHandles {
            requests: (0..RequestLabels::COUNT).map(|_| OnceLock::new()).collect(),
            body_bytes: (0..RequestLabels::COUNT).map(|_| OnceLock::new()).collect(),
            duration: std::array::from_fn(|_| OnceLock::new()),
            saved: std::array::from_fn(|_| OnceLock::new()),
            connection_ends: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

/// The process-wide metrics, shared as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    started: Instant,
    requests: Family<RequestLabels, Counter>,
    body_bytes: Family<RequestLabels, Counter>,
    saved_bytes: Family<SavedLabels, Counter>,
    request_duration: HistogramFamily<CacheOnlyLabels>,
    store_requests: Family<StoreLabels, Counter>,
    store_duration: HistogramFamily<StoreOpLabels>,
    store_bytes: Family<StoreNameLabels, Counter>,
    open_connections: Gauge,
    connections: Counter,
    connections_closed: Family<ConnectionEndLabels, Counter>,
    connections_refused: Counter,
    cache_bytes: Gauge<u64, AtomicU64>,
    cache_entries: Gauge<u64, AtomicU64>,
    cache_evictions: Counter,
    sendfile_bytes: Counter,
    breaker_state: Family<BreakerLabels, Gauge>,
    breaker_transitions: Family<BreakerTransitionLabels, Counter>,
    db_up: Gauge,
    db_pool_size: Gauge<u64, AtomicU64>,
    db_pool_idle: Gauge<u64, AtomicU64>,
    db_pool_waiting: Gauge<u64, AtomicU64>,
    db_pool_max: Gauge<u64, AtomicU64>,
    db_check_duration: Histogram,
    db_check_last: Gauge<f64, AtomicU64>,
    db_checks: Family<CheckLabels, Counter>,
    store_names: RwLock<HashSet<Arc<str>>>,
    other_store: Arc<str>,
    handles: RequestHandles,
    totals: AtomicTally,
    window: Window,
    taken: Mutex<Tally>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

fn latency_histogram() -> AtomicHistogram {
    AtomicHistogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    /// Creates and registers every metric (all under the `cdn_origin_` prefix).
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("cdn_origin"),
            started: Instant::now(),
            requests: Family::default(),
            body_bytes: Family::default(),
            saved_bytes: Family::default(),
            request_duration: Family::new_with_constructor(
                latency_histogram as fn() -> AtomicHistogram,
            ),
            store_requests: Family::default(),
            store_duration: Family::new_with_constructor(
                latency_histogram as fn() -> AtomicHistogram,
            ),
            store_bytes: Family::default(),
            open_connections: Gauge::default(),
            connections: Counter::default(),
            connections_closed: Family::default(),
            connections_refused: Counter::default(),
            cache_bytes: Gauge::default(),
            cache_entries: Gauge::default(),
            cache_evictions: Counter::default(),
            sendfile_bytes: Counter::default(),
            breaker_state: Family::default(),
            breaker_transitions: Family::default(),
            db_up: Gauge::default(),
            db_pool_size: Gauge::default(),
            db_pool_idle: Gauge::default(),
            db_pool_waiting: Gauge::default(),
            db_pool_max: Gauge::default(),
            db_check_duration: Histogram::new(DB_CHECK_BUCKETS),
            db_check_last: Gauge::default(),
            db_checks: Family::default(),
            store_names: RwLock::new(HashSet::new()),
            other_store: Arc::from("other"),
            handles: RequestHandles::default(),
            totals: AtomicTally::default(),
            window: Window::new(),
            taken: Mutex::new(Tally::default()),
        };
        m.register();
        m
    }

    fn elapsed_second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Counts one response: requests, body bytes, latency, bytes saved, and the rolling
    /// hit-rate windows.
    pub fn record_request(&self, r: &RequestRecord<'_>) {
        self.record_request_ended(r, Instant::now());
    }

    /// [`Metrics::record_request`] for a response recorded at `ended`, a clock reading the
    /// caller already has (the pipeline's, from which it measured the latency).
    pub fn record_request_ended(&self, r: &RequestRecord<'_>, ended: Instant) {
        self.record_request_at(r, ended.saturating_duration_since(self.started).as_secs());
    }

    pub(crate) fn record_request_at(&self, r: &RequestRecord<'_>, second: u64) {
        let labels = RequestLabels {
            method: MethodLabel::from(r.method),
            status: StatusClass::from(r.status),
            cache: r.cache,
            class: r.class,
        };
        let i = labels.index();
        self.handles.requests[i]
            .get_or_init(|| self.requests.get_or_create(&labels).clone())
            .inc();
        if r.body_bytes > 0 {
            self.body_bytes_handle(&labels, i).inc_by(r.body_bytes);
        }
        for (reason, n) in [
            (SavedReason::NotModified, r.saved_not_modified),
            (SavedReason::Compression, r.saved_compression),
        ] {
            if n > 0 {
                self.saved_handle(reason, r.class).inc_by(n);
            }
        }
        self.handles.duration[r.cache.index()]
            .get_or_init(|| {
                self.request_duration
                    .get_or_create(&CacheOnlyLabels { cache: r.cache })
                    .clone()
            })
            .observe(r.latency.as_secs_f64());
        let tally = Tally {
            requests: 1,
            hits: u64::from(r.cache == CacheLabel::Hit),
            misses: u64::from(r.cache == CacheLabel::Miss),
            stale: u64::from(r.cache == CacheLabel::Stale),
            bypass: u64::from(r.cache == CacheLabel::Bypass),
            bytes_sent: r.body_bytes,
            saved_not_modified: r.saved_not_modified,
            saved_compression: r.saved_compression,
            store_bytes: 0,
        };
        self.add_traffic(&tally, second);
    }

    /// Adds body bytes as a streamed body sends them (without counting a request). Use this or
    /// `RequestRecord::body_bytes`, not both, for the same response.
    pub fn add_body_bytes(
        &self,
        method: &http::Method,
        status: http::StatusCode,
        cache: CacheLabel,
        class: ContentClass,
        n: u64,
    ) {
        if n == 0 {
            return;
        }
        let labels = RequestLabels {
            method: MethodLabel::from(method),
            status: StatusClass::from(status),
            cache,
            class,
        };
        self.body_bytes_handle(&labels, labels.index()).inc_by(n);
        let tally = Tally {
            bytes_sent: n,
            ..Tally::default()
        };
        self.add_traffic(&tally, self.elapsed_second());
    }

    /// Adds the bytes content coding saved on a streamed body, known only once it has ended
    /// (original size minus the bytes sent). Use this or `RequestRecord::saved_compression`,
    /// not both, for the same response.
    pub fn add_saved_compression(&self, class: ContentClass, n: u64) {
        if n == 0 {
            return;
        }
        self.saved_handle(SavedReason::Compression, class).inc_by(n);
        let tally = Tally {
            saved_compression: n,
            ..Tally::default()
        };
        self.add_traffic(&tally, self.elapsed_second());
    }

    /// Adds to the traffic totals since start and to the rolling windows (at `second`).
    fn add_traffic(&self, tally: &Tally, second: u64) {
        self.totals.add(tally);
        self.window.add(second, tally);
    }

    /// The `saved_bytes` counter of one reason and class.
    fn saved_handle(&self, reason: SavedReason, class: ContentClass) -> &Counter {
        self.handles.saved[reason.index() * ContentClass::COUNT + class.index()].get_or_init(|| {
            self.saved_bytes
                .get_or_create(&SavedLabels { reason, class })
                .clone()
        })
    }

    /// The `body_bytes` counter of one label set (`i` is `labels.index()`).
    fn body_bytes_handle(&self, labels: &RequestLabels, i: usize) -> &Counter {
        self.handles.body_bytes[i].get_or_init(|| self.body_bytes.get_or_create(labels).clone())
    }

    /// The interned label value for a store name; bounded by [`MAX_STORE_NAMES`].
    fn store_label(&self, store: &str) -> Arc<str> {
        if let Some(name) = self.store_names.read().get(store) {
            return name.clone();
        }
        let mut names = self.store_names.write();
        if let Some(name) = names.get(store) {
            return name.clone();
        }
        if names.len() >= MAX_STORE_NAMES {
            return self.other_store.clone();
        }
        let name: Arc<str> = Arc::from(store);
        names.insert(name.clone());
        name
    }

    /// Counts one object-store call with its latency and the body bytes it read.
    pub fn record_store(
        &self,
        store: &str,
        op: StoreOp,
        outcome: StoreOutcome,
        latency: Duration,
        bytes: u64,
    ) {
        let store = self.store_label(store);
        self.store_requests
            .get_or_create(&StoreLabels {
                store: store.clone(),
                op,
                outcome,
            })
            .inc();
        self.store_duration
            .get_or_create(&StoreOpLabels {
                store: store.clone(),
                op,
            })
            .observe(latency.as_secs_f64());
        if bytes > 0 {
            self.store_bytes
                .get_or_create(&StoreNameLabels { store })
                .inc_by(bytes);
            self.totals.add(&Tally {
                store_bytes: bytes,
                ..Tally::default()
            });
        }
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        self.connections.inc();
        self.open_connections.inc();
    }

    /// A client connection ended, in the way `end` says.
    pub fn connection_closed(&self, end: ConnectionEnd) {
        self.open_connections.dec();
        self.handles.connection_ends[end.index()]
            .get_or_init(|| {
                self.connections_closed
                    .get_or_create(&ConnectionEndLabels { reason: end })
                    .clone()
            })
            .inc();
    }

    /// A connection was refused over `max_connections` (it is not counted as accepted).
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Current hot-cache size in bytes and entries.
    pub fn set_cache_usage(&self, bytes: u64, entries: u64) {
        self.cache_bytes.set(bytes);
        self.cache_entries.set(entries);
    }

    /// `n` response bytes were sent from the body arena with `sendfile`.
    pub fn add_sendfile_bytes(&self, n: u64) {
        self.sendfile_bytes.inc_by(n);
    }

    /// `n` entries were evicted from the hot cache.
    pub fn cache_evicted(&self, n: u64) {
        self.cache_evictions.inc_by(n);
    }

    /// Sets the one-hot breaker state gauge of `store` without counting a transition.
    pub fn set_breaker_state(&self, store: &str, state: BreakerState) {
        let store = self.store_label(store);
        for s in BreakerState::ALL {
            self.breaker_state
                .get_or_create(&BreakerLabels {
                    store: store.clone(),
                    state: s,
                })
                .set(i64::from(s == state));
        }
    }

    /// Counts a breaker state change of `store` to `to` and sets the state gauge.
    pub fn breaker_transition(&self, store: &str, to: BreakerState) {
        let label = self.store_label(store);
        self.breaker_transitions
            .get_or_create(&BreakerTransitionLabels { store: label, to })
            .inc();
        self.set_breaker_state(store, to);
    }

    /// Database pool figures (deadpool's `Status`).
    pub fn set_db_pool(&self, size: u64, idle: u64, waiting: u64, max: u64) {
        self.db_pool_size.set(size);
        self.db_pool_idle.set(idle);
        self.db_pool_waiting.set(waiting);
        self.db_pool_max.set(max);
    }

    /// Whether the database is reachable.
    pub fn set_db_up(&self, up: bool) {
        self.db_up.set(i64::from(up));
    }

    /// One database check (`SELECT 1`) and its latency.
    pub fn record_db_check(&self, latency: Duration, ok: bool) {
        let secs = latency.as_secs_f64();
        self.db_check_duration.observe(secs);
        self.db_check_last.set(secs);
        let outcome = if ok {
            CheckOutcome::Ok
        } else {
            CheckOutcome::Error
        };
        self.db_checks.get_or_create(&CheckLabels { outcome }).inc();
        self.set_db_up(ok);
    }

    /// The Prometheus text exposition (format 0.0.4, see [`CONTENT_TYPE`]) for `GET /metrics`.
    pub fn encode(&self) -> String {
        let mut om = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail; an error here would only come from a broken
        // encoder, in which case the partial text is still the best answer.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut om, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        let mut out = expose::to_prometheus_text(&om);
        let start = SystemTime::now()
            .checked_sub(self.started.elapsed())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        out.push_str(
            "# HELP cdn_origin_start_time_seconds Start time of the process since the Unix epoch.\n",
        );
        out.push_str("# TYPE cdn_origin_start_time_seconds gauge\n");
        out.push_str(&format!("cdn_origin_start_time_seconds {start:.3}\n"));
        out
    }

    /// Hit ratio, request rates and byte counts since start and over the last 1, 5, 15 minutes.
    pub fn traffic(&self) -> TrafficSnapshot {
        self.traffic_at(self.started.elapsed())
    }

    pub(crate) fn traffic_at(&self, uptime: Duration) -> TrafficSnapshot {
        TrafficSnapshot::build(&self.totals.load(), &self.window, uptime)
    }

    /// The totals accumulated since the previous call (the first call: since start).
    pub fn take_minute(&self) -> MinuteTotals {
        let now = self.totals.load();
        let mut taken = self.taken.lock();
        let delta = now.since(&taken);
        *taken = now;
        MinuteTotals::from(delta)
    }
}

#[cfg(test)]
mod tests;
