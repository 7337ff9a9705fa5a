//! Registration of every metric family under its exported name, help text and unit.
//!
//! Names follow the Prometheus conventions: base units (`_seconds`, `_bytes`), `_total` on
//! counters (added by the encoder), snake_case. The full list with labels is in
//! `docs/operations.md`.

use super::Metrics;
use prometheus_client::registry::Unit;

impl Metrics {
    pub(super) fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "requests",
            "Responses sent, by method, status class, cache status and content class",
            self.requests.clone(),
        );
        r.register_with_unit(
            "response_body",
            "Response body bytes sent",
            Unit::Bytes,
            self.body_bytes.clone(),
        );
        r.register_with_unit(
            "saved",
            "Body bytes not sent: by 304 Not Modified (the size of the 200) and by compression \
             (original minus encoded)",
            Unit::Bytes,
            self.saved_bytes.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Time from request head to end of response",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        r.register(
            "store_requests",
            "Object store calls by store, operation and outcome",
            self.store_requests.clone(),
        );
        r.register_with_unit(
            "store_request_duration",
            "Object store call latency",
            Unit::Seconds,
            self.store_duration.clone(),
        );
        r.register_with_unit(
            "store_read",
            "Bytes read from the object store",
            Unit::Bytes,
            self.store_bytes.clone(),
        );
        r.register(
            "open_connections",
            "Client connections currently open",
            self.open_connections.clone(),
        );
        r.register(
            "connections",
            "Client connections accepted",
            self.connections.clone(),
        );
        r.register(
            "connections_closed",
            "Client connections ended, by how they ended",
            self.connections_closed.clone(),
        );
        r.register(
            "connections_refused",
            "Client connections refused over max_connections, answered 503",
            self.connections_refused.clone(),
        );
        r.register_with_unit(
            "cache",
            "Hot cache size (bodies, variants and metadata)",
            Unit::Bytes,
            self.cache_bytes.clone(),
        );
        r.register_with_unit(
            "sendfile",
            "Response bytes sent from the body arena with sendfile (no copy)",
            Unit::Bytes,
            self.sendfile_bytes.clone(),
        );
        r.register(
            "cache_entries",
            "Hot cache entries",
            self.cache_entries.clone(),
        );
        r.register(
            "cache_evictions",
            "Hot cache entries evicted to stay under the byte budget",
            self.cache_evictions.clone(),
        );
        r.register(
            "breaker_state",
            "Circuit breaker state per store (1 for the current state)",
            self.breaker_state.clone(),
        );
        r.register(
            "breaker_transitions",
            "Circuit breaker state changes per store and new state",
            self.breaker_transitions.clone(),
        );
        r.register(
            "db_up",
            "1 when the database answered the last check or connection attempt",
            self.db_up.clone(),
        );
        r.register(
            "db_pool_size",
            "Database pool connections open (idle and in use)",
            self.db_pool_size.clone(),
        );
        r.register(
            "db_pool_idle",
            "Database pool connections idle",
            self.db_pool_idle.clone(),
        );
        r.register(
            "db_pool_waiting",
            "Tasks waiting for a database connection",
            self.db_pool_waiting.clone(),
        );
        r.register(
            "db_pool_max",
            "Database pool maximum size (0 when no database is configured)",
            self.db_pool_max.clone(),
        );
        r.register_with_unit(
            "db_check_duration",
            "Database check (SELECT 1) latency",
            Unit::Seconds,
            self.db_check_duration.clone(),
        );
        r.register_with_unit(
            "db_check_last_duration",
            "Latency of the last database check",
            Unit::Seconds,
            self.db_check_last.clone(),
        );
        r.register(
            "db_checks",
            "Database checks by outcome",
            self.db_checks.clone(),
        );
    }
}
