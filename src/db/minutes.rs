//! One row per minute and instance of traffic figures, so the history survives restarts and
//! several instances behind one CDN add up (`cdn-origin report` reads it back).
//!
//! At every wall-clock minute boundary the writer takes [`Metrics::take_minute`] and queues a
//! row labelled with the minute it covers. Queued rows are written in one transaction; when the
//! database is down they stay queued (up to [`DEFAULT_BUFFER_MINUTES`], oldest dropped first
//! with a warning) and go out with the next successful write, so a short outage loses nothing.
//! The writer creates its table itself (`CREATE TABLE IF NOT EXISTS`) before its first write and
//! again after any failed write. Rows are keyed by `(instance, minute)`; writing a key twice
//! (a restart within the same minute) adds the figures instead of replacing them.
//!
//! The table lives in the connection's `search_path`, so a deployment (or a test) can keep it
//! in its own schema with `?options=-c%20search_path%3Dmy_schema` in the URL.

use super::{Database, DbError, error_chain};
use crate::metrics::{Metrics, MinuteTotals};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Name of the per-minute table.
pub const MINUTE_TABLE: &str = "cdn_origin_minute_stats";

/// Rows kept while the database is unreachable: one day.
pub const DEFAULT_BUFFER_MINUTES: usize = 24 * 60;

/// The table, created by the writer if missing.
pub const CREATE_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS cdn_origin_minute_stats (
    instance    text        NOT NULL,
    minute      timestamptz NOT NULL,
    requests    bigint      NOT NULL DEFAULT 0,
    hits        bigint      NOT NULL DEFAULT 0,
    misses      bigint      NOT NULL DEFAULT 0,
    stale       bigint      NOT NULL DEFAULT 0,
    bypass      bigint      NOT NULL DEFAULT 0,
    bytes_sent  bigint      NOT NULL DEFAULT 0,
    bytes_saved bigint      NOT NULL DEFAULT 0,
    store_bytes bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (instance, minute)
);
CREATE INDEX IF NOT EXISTS cdn_origin_minute_stats_minute ON cdn_origin_minute_stats (minute);";

const INSERT_SQL: &str = "INSERT INTO cdn_origin_minute_stats AS s
    (instance, minute, requests, hits, misses, stale, bypass, bytes_sent, bytes_saved, store_bytes)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (instance, minute) DO UPDATE SET
        requests = s.requests + EXCLUDED.requests,
        hits = s.hits + EXCLUDED.hits,
        misses = s.misses + EXCLUDED.misses,
        stale = s.stale + EXCLUDED.stale,
        bypass = s.bypass + EXCLUDED.bypass,
        bytes_sent = s.bytes_sent + EXCLUDED.bytes_sent,
        bytes_saved = s.bytes_saved + EXCLUDED.bytes_saved,
        store_bytes = s.store_bytes + EXCLUDED.store_bytes";

/// One queued row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteRow {
    /// Start of the minute the figures cover.
    pub minute: SystemTime,
    /// The figures.
    pub totals: MinuteTotals,
}

/// Queues and writes the per-minute rows of one instance.
#[derive(Debug)]
pub struct MinuteWriter {
    db: Arc<Database>,
    metrics: Arc<Metrics>,
    instance: String,
    pending: VecDeque<MinuteRow>,
    capacity: usize,
    table_ready: bool,
}

/// The start of the minute containing `t`.
pub fn minute_floor(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs - secs % 60)
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl MinuteWriter {
    /// A writer for `instance` (e.g. the host name) with a one-day buffer.
    pub fn new(db: Arc<Database>, metrics: Arc<Metrics>, instance: String) -> MinuteWriter {
        MinuteWriter {
            db,
            metrics,
            instance,
            pending: VecDeque::new(),
            capacity: DEFAULT_BUFFER_MINUTES,
            table_ready: false,
        }
    }

    /// Sets how many unsent rows are kept (at least 1).
    pub fn with_capacity(mut self, rows: usize) -> MinuteWriter {
        self.capacity = rows.max(1);
        self
    }

    /// Rows waiting to be written.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes the figures since the last call and queues them as the row of `minute` (floored
    /// to the minute). When the queue is full the oldest row is dropped, with a warning.
    pub fn collect(&mut self, minute: SystemTime) {
        let totals = self.metrics.take_minute();
        let minute = minute_floor(minute);
        // Two collections in the same minute (a shutdown right after a tick) share one row.
        if let Some(last) = self.pending.back_mut().filter(|r| r.minute == minute) {
            let t = &mut last.totals;
            t.requests += totals.requests;
            t.hits += totals.hits;
            t.misses += totals.misses;
            t.stale += totals.stale;
            t.bypass += totals.bypass;
            t.bytes_sent += totals.bytes_sent;
            t.bytes_saved += totals.bytes_saved;
            t.store_bytes += totals.store_bytes;
            return;
        }
        if self.pending.len() >= self.capacity {
            self.pending.pop_front();
            tracing::warn!(
                event = "db_minute_dropped",
                capacity = self.capacity,
                "database unreachable too long: oldest unsent minute row dropped"
            );
        }
        self.pending.push_back(MinuteRow { minute, totals });
    }

    /// Writes every queued row in one transaction (creating the table first if needed).
    /// Returns how many rows were written; on error the rows stay queued.
    pub async fn flush(&mut self) -> Result<usize, DbError> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let timeout = self.db.query_timeout();
        let result = match tokio::time::timeout(timeout, self.write_pending()).await {
            Ok(result) => result,
            Err(_) => Err(DbError::Timeout(timeout)),
        };
        match result {
            Ok(n) => {
                self.pending.clear();
                Ok(n)
            }
            Err(e) => {
                // The table may have been dropped, or the server replaced: create it again.
                self.table_ready = false;
                Err(e)
            }
        }
    }

    async fn write_pending(&mut self) -> Result<usize, DbError> {
        let mut client = self.db.get().await?;
        let query = |e: tokio_postgres::Error| DbError::Query(error_chain(&e));
        if !self.table_ready {
            client
                .batch_execute(CREATE_TABLE_SQL)
                .await
                .map_err(query)?;
            self.table_ready = true;
        }
        let tx = client.transaction().await.map_err(query)?;
        let insert = tx.prepare(INSERT_SQL).await.map_err(query)?;
        for row in &self.pending {
            let t = &row.totals;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
                &self.instance,
                &row.minute,
                &as_i64(t.requests),
                &as_i64(t.hits),
                &as_i64(t.misses),
                &as_i64(t.stale),
                &as_i64(t.bypass),
                &as_i64(t.bytes_sent),
                &as_i64(t.bytes_saved),
                &as_i64(t.store_bytes),
            ];
            tx.execute(&insert, &params).await.map_err(query)?;
        }
        tx.commit().await.map_err(query)?;
        Ok(self.pending.len())
    }

    /// Collects and writes at every minute boundary until `shutdown` turns true, then collects
    /// the partial minute and tries one last write. Failures are logged, never fatal.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let now = SystemTime::now();
            let next = minute_floor(now) + Duration::from_secs(60);
            let wait = next.duration_since(now).unwrap_or(Duration::from_secs(60));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            // Just past the boundary: the figures belong to the minute that ended.
            let minute = minute_floor(SystemTime::now()) - Duration::from_secs(60);
            self.collect(minute);
            self.flush_logged(false).await;
        }
        self.collect(SystemTime::now());
        self.flush_logged(true).await;
    }

    /// Writes the pending rows; `last`: no attempt follows (shutdown), so rows that fail
    /// are lost, and the log says so.
    async fn flush_logged(&mut self, last: bool) {
        match self.flush().await {
            Ok(n) => tracing::debug!(event = "db_minute_written", rows = n, "minute rows written"),
            Err(e) if last => tracing::warn!(
                event = "db_minute_write_failed",
                lost = self.pending.len(),
                error = %e,
                "minute rows not written at shutdown: lost"
            ),
            Err(e) => tracing::warn!(
                event = "db_minute_write_failed",
                pending = self.pending.len(),
                error = %e,
                "minute rows kept for the next attempt"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_floor_drops_the_seconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_059_999);
        assert_eq!(
            minute_floor(t),
            UNIX_EPOCH + Duration::from_secs(1_700_000_040)
        );
        let exact = UNIX_EPOCH + Duration::from_secs(1_700_000_040);
        assert_eq!(minute_floor(exact), exact);
    }
}
