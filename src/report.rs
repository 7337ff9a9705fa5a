//! `cdn-origin report --since 24h`: hit rate and bandwidth per hour from the per-minute table,
//! summed across every instance that writes to the same database.
//!
//! It prints a table (requests, hit ratio, bytes sent, saved and read from the stores per
//! hour, in UTC) and two small terminal bar charts (hit ratio and bytes sent per hour). The
//! hit ratio is `hits / (hits + misses + stale)`, the definition used everywhere (see
//! [`crate::metrics`]). Fetching ([`fetch_hours`]) and drawing ([`render`]) are separate so the
//! drawing is tested without a database.

use crate::db::MINUTE_TABLE;
use crate::db::error_chain;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// Figures of one hour, summed over instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourRow {
    /// `YYYY-MM-DD HH:00` in UTC.
    pub hour: String,
    /// Instances that wrote rows in this hour.
    pub instances: u64,
    /// Responses.
    pub requests: u64,
    /// Cache hits.
    pub hits: u64,
    /// Cache misses.
    pub misses: u64,
    /// Stale answers.
    pub stale: u64,
    /// Body bytes sent.
    pub bytes_sent: u64,
    /// Bytes saved by 304s and compression.
    pub bytes_saved: u64,
    /// Bytes read from the stores.
    pub store_bytes: u64,
}

impl HourRow {
    /// `hits / (hits + misses + stale)`, `None` without cache decisions.
    pub fn hit_ratio(&self) -> Option<f64> {
        crate::metrics::hit_ratio(self.hits, self.misses, self.stale)
    }
}

const HOURS_SQL: &str =
    "SELECT to_char(date_trunc('hour', minute AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24:00'),
        count(DISTINCT instance)::bigint, sum(requests)::bigint, sum(hits)::bigint,
        sum(misses)::bigint, sum(stale)::bigint, sum(bytes_sent)::bigint,
        sum(bytes_saved)::bigint, sum(store_bytes)::bigint
    FROM cdn_origin_minute_stats WHERE minute >= $1 GROUP BY 1 ORDER BY 1";

/// Connects to `database_url`, reads the hours of the last `since` and renders them.
pub async fn report(database_url: &str, since: Duration) -> anyhow::Result<String> {
    match fetch_hours(database_url, since).await? {
        Some(rows) => Ok(render(&rows, since)),
        None => Ok(format!(
            "no data: the table {MINUTE_TABLE} does not exist yet (it is created by a server \
             running with a database configured, at its first minute)\n"
        )),
    }
}

/// The hourly rows of the last `since`; `None` when the table does not exist.
pub async fn fetch_hours(
    database_url: &str,
    since: Duration,
) -> anyhow::Result<Option<Vec<HourRow>>> {
    let (mut config, connector) =
        crate::db::tls::prepare(database_url).map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?;
    config.connect_timeout(Duration::from_secs(10));
    if config.get_application_name().is_none() {
        config.application_name("cdn-origin report");
    }
    let (client, connection) = config
        .connect(connector)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the database: {}", error_chain(&e)))?;
    let conn_task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "report connection closed");
        }
    });
    let from = SystemTime::now()
        .checked_sub(since)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let result = client.query(HOURS_SQL, &[&from]).await;
    drop(client);
    conn_task.abort();
    let rows = match result {
        Ok(rows) => rows,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            return Ok(None);
        }
        Err(e) => anyhow::bail!("reading {MINUTE_TABLE}: {}", error_chain(&e)),
    };
    let num = |row: &tokio_postgres::Row, i: usize| -> anyhow::Result<u64> {
        let v: Option<i64> = row.try_get(i)?;
        Ok(u64::try_from(v.unwrap_or(0)).unwrap_or(0))
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(HourRow {
            hour: row.try_get(0)?,
            instances: num(row, 1)?,
            requests: num(row, 2)?,
            hits: num(row, 3)?,
            misses: num(row, 4)?,
            stale: num(row, 5)?,
            bytes_sent: num(row, 6)?,
            bytes_saved: num(row, 7)?,
            store_bytes: num(row, 8)?,
        });
    }
    Ok(Some(out))
}

/// Bytes in binary units, one decimal (`1.5 GiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn percent(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

/// A bar of `fraction` (0..=1) of `width` cells, in eighths of a cell.
pub fn bar(fraction: f64, width: usize) -> String {
    const PARTS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let eighths = (fraction.clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    s.push_str(PARTS[eighths % 8]);
    s
}

const BAR_WIDTH: usize = 40;

/// Draws the table and the two charts.
pub fn render(rows: &[HourRow], since: Duration) -> String {
    let mut out = String::new();
    let instances = rows.iter().map(|r| r.instances).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "cdn-origin report: last {}, per hour (UTC), up to {instances} instance(s)\n",
        humantime::format_duration(Duration::from_secs(since.as_secs()))
    );
    if rows.is_empty() {
        out.push_str("no rows in this period\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<16}  {:>4}  {:>10}  {:>7}  {:>11}  {:>11}  {:>11}",
        "hour (UTC)", "inst", "requests", "hit", "sent", "saved", "from store"
    );
    let mut total = HourRow {
        hour: "total".to_owned(),
        instances,
        requests: 0,
        hits: 0,
        misses: 0,
        stale: 0,
        bytes_sent: 0,
        bytes_saved: 0,
        store_bytes: 0,
    };
    for r in rows.iter() {
        total.requests += r.requests;
        total.hits += r.hits;
        total.misses += r.misses;
        total.stale += r.stale;
        total.bytes_sent += r.bytes_sent;
        total.bytes_saved += r.bytes_saved;
        total.store_bytes += r.store_bytes;
    }
    for r in rows.iter().chain(std::iter::once(&total)) {
        let _ = writeln!(
            out,
            "{:<16}  {:>4}  {:>10}  {:>7}  {:>11}  {:>11}  {:>11}",
            r.hour,
            r.instances,
            r.requests,
            percent(r.hit_ratio()),
            human_bytes(r.bytes_sent),
            human_bytes(r.bytes_saved),
            human_bytes(r.store_bytes)
        );
    }
    let _ = writeln!(out, "\nhit ratio per hour (full bar = 100 %)");
    for r in rows {
        let ratio = r.hit_ratio();
        let _ = writeln!(
            out,
            "{:<16} |{:<width$}| {}",
            r.hour,
            bar(ratio.unwrap_or(0.0), BAR_WIDTH),
            percent(ratio),
            width = BAR_WIDTH
        );
    }
    let peak = rows.iter().map(|r| r.bytes_sent).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "\nbytes sent per hour (full bar = {})",
        human_bytes(peak)
    );
    for r in rows {
        let fraction = if peak == 0 {
            0.0
        } else {
            r.bytes_sent as f64 / peak as f64
        };
        let _ = writeln!(
            out,
            "{:<16} |{:<width$}| {}",
            r.hour,
            bar(fraction, BAR_WIDTH),
            human_bytes(r.bytes_sent),
            width = BAR_WIDTH
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(h: &str, hits: u64, misses: u64, sent: u64) -> HourRow {
        HourRow {
            hour: h.to_owned(),
            instances: 2,
            requests: hits + misses,
            hits,
            misses,
            stale: 0,
            bytes_sent: sent,
            bytes_saved: 10,
            store_bytes: 5,
        }
    }

    #[test]
    fn bars_are_measured_in_eighths_of_a_cell() {
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.5, 4), "██");
        assert_eq!(bar(1.0 / 32.0, 4), "▏");
        assert_eq!(bar(0.0, 4), "");
        assert_eq!(bar(7.0, 2), "██", "clamped to the width");
    }

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn report_lists_each_hour_a_total_and_both_charts() {
        let rows = [
            hour("2025-01-01 10:00", 90, 10, 2048),
            hour("2025-01-01 11:00", 0, 0, 1024),
        ];
        let text = render(&rows, Duration::from_secs(24 * 3600));
        assert!(text.contains("last 1day"), "{text}");
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap()
                .to_owned()
        };
        assert!(line("2025-01-01 10:00  ").contains("90.0 %"), "{text}");
        assert!(
            line("2025-01-01 11:00  ").contains(" - "),
            "no cache decisions: {text}"
        );
        let total = line("total");
        assert!(
            total.contains(" 100 ") && total.contains("3.0 KiB"),
            "{total}"
        );
        let bars: Vec<&str> = text.lines().filter(|l| l.contains('|')).collect();
        assert_eq!(bars.len(), 4, "{text}");
        assert_eq!(
            bars[0].matches('█').count(),
            36,
            "90 % of 40 cells: {}",
            bars[0]
        );
        assert_eq!(
            bars[2].matches('█').count(),
            40,
            "the peak hour fills the bar"
        );
        assert_eq!(bars[3].matches('█').count(), 20, "half the peak");
    }

    #[test]
    fn empty_period_says_so() {
        assert!(render(&[], Duration::from_secs(3600)).contains("no rows in this period"));
    }
}
