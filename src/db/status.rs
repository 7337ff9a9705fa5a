//! What the database layer reports: reachability, the last check and the pool figures, all
//! `serde::Serialize` for `/health/detailed`.

use serde::{Serialize, Serializer};
use std::time::{Duration, SystemTime};

/// Whether the database is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbState {
    /// No connection attempt has finished yet.
    Connecting,
    /// The last connection attempt or check succeeded.
    Up,
    /// The last connection attempt or check failed.
    Down,
}

impl std::fmt::Display for DbState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbState::Connecting => "connecting",
            DbState::Up => "up",
            DbState::Down => "down",
        })
    }
}

fn as_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

fn as_unix_seconds<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    s.serialize_u64(secs)
}

/// The result of one `SELECT 1`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbCheck {
    /// Whether the query answered.
    pub ok: bool,
    /// Round trip of the query; on failure, the time until the failure.
    #[serde(rename = "latency_ms", serialize_with = "as_millis")]
    pub latency: Duration,
    /// Time spent getting a connection from the pool (may include connecting).
    #[serde(rename = "acquire_ms", serialize_with = "as_millis")]
    pub acquire: Duration,
    /// `latency` is above `slow_check`.
    pub slow: bool,
    /// The error, with its causes.
    pub error: Option<String>,
    /// When the check ran.
    #[serde(rename = "at_unix", serialize_with = "as_unix_seconds")]
    pub at: SystemTime,
}

/// Pool figures, as deadpool reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolFigures {
    /// Open connections (idle and in use).
    pub size: usize,
    /// Idle connections.
    pub idle: usize,
    /// Tasks waiting for a connection.
    pub waiting: usize,
    /// Maximum size.
    pub max: usize,
    /// Configured minimum idle.
    pub min_idle: usize,
}

/// Everything `/health/detailed` shows about the database.
#[derive(Debug, Clone, Serialize)]
pub struct DbStatus {
    /// Reachability.
    pub state: DbState,
    /// Seconds in the current state.
    pub state_seconds: f64,
    /// Where the pool connects (`host:port/dbname`, never the credentials).
    pub target: String,
    /// Pool figures.
    pub pool: PoolFigures,
    /// The last check, if any ran.
    pub last_check: Option<DbCheck>,
    /// The last connection or query error, kept after recovery for diagnosis.
    pub last_error: Option<String>,
}
