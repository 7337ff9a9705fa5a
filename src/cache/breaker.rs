//! A per-store circuit breaker (issue 4, point 6).
//!
//! A dead store must not make every request wait for a timeout. After `failure_threshold`
//! consecutive failures the breaker *opens*: [`CircuitBreaker::try_acquire`] answers at once
//! with the time left until a retry makes sense, so the caller can serve a stale copy or a 503
//! with `Retry-After` (RFC 9110 section 10.2.3). When the cooldown is over, exactly one caller
//! gets a *probe* permit (half-open); its outcome decides: success closes the breaker, failure
//! reopens it for another cooldown. Everyone else keeps failing fast until the probe reports.
//!
//! Design: the state is a few words behind a `parking_lot` mutex that is held for a handful of
//! instructions and never across an await, which is simpler to get right than an atomic state
//! machine and costs nothing next to a store request. Each opening starts a new *epoch*; a
//! permit remembers the epoch it was issued in, so a slow request that started before the
//! breaker opened cannot, when it finally reports, count against (or close) a later period.
//!
//! Permits are reported explicitly with [`BreakerPermit::success`] or
//! [`BreakerPermit::failure`]. A permit dropped unreported (the request was cancelled, or the
//! answer says nothing about the store's health) counts as neither, but a dropped probe frees
//! the probe slot so the next caller can probe instead of the breaker staying half-open forever.
//!
//! State changes are logged with the stable fields `store`, `from` and `to`, and counted
//! ([`CircuitBreaker::transitions`]) for metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests flow; failures are counted.
    Closed,
    /// Requests fail fast until the cooldown is over.
    Open,
    /// One probe request is allowed to decide.
    HalfOpen,
}

impl BreakerState {
    /// A stable lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Retry hint given to callers while a probe is in flight: the probe will decide soon, so a
/// full cooldown would overstate the wait.
const PROBE_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Instant,
    probe_out: bool,
    epoch: u64,
}

/// Called on every state change with the store name and the new state (metrics).
pub type TransitionObserver = std::sync::Arc<dyn Fn(&str, BreakerState) + Send + Sync>;

/// A circuit breaker for one store.
pub struct CircuitBreaker {
    name: String,
    failure_threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
    transitions: AtomicU64,
    observer: Option<TransitionObserver>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("transitions", &self.transitions())
            .finish_non_exhaustive()
    }
}

/// Permission to send one request to the store; report its outcome.
#[must_use = "report the outcome with success() or failure()"]
#[derive(Debug)]
pub struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    epoch: u64,
    reported: bool,
}

impl CircuitBreaker {
    /// A closed breaker that opens after `failure_threshold` consecutive failures (at least 1)
    /// and stays open for `cooldown`.
    pub fn new(name: String, failure_threshold: u32, cooldown: Duration) -> CircuitBreaker {
        CircuitBreaker {
            name,
            failure_threshold: failure_threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: Instant::now(),
                probe_out: false,
                epoch: 0,
            }),
            transitions: AtomicU64::new(0),
            observer: None,
        }
    }

    /// Reports every state change to `observer` (the metrics counter of transitions).
    pub fn set_observer(&mut self, observer: TransitionObserver) {
        self.observer = Some(observer);
    }

    /// The store name this breaker guards.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closed: a permit. Open within the cooldown: `Err(time left)` at once. Cooldown over:
    /// exactly one caller gets a probe permit (half-open); others get `Err` until it reports.
    pub fn try_acquire(&self) -> Result<BreakerPermit<'_>, Duration> {
        let mut inner = self.inner.lock();
        match inner.state {
            BreakerState::Closed => Ok(self.permit(false, inner.epoch)),
            BreakerState::Open => {
                let elapsed = inner.opened_at.elapsed();
                if elapsed < self.cooldown {
                    return Err(self.cooldown - elapsed);
                }
                self.transition(&mut inner, BreakerState::HalfOpen);
                inner.probe_out = true;
                Ok(self.permit(true, inner.epoch))
            }
            BreakerState::HalfOpen if inner.probe_out => Err(PROBE_RETRY_AFTER
                .min(self.cooldown)
                .max(Duration::from_millis(1))),
            BreakerState::HalfOpen => {
                // The previous probe was dropped unreported: this caller probes instead.
                inner.probe_out = true;
                Ok(self.permit(true, inner.epoch))
            }
        }
    }

    /// The current state. An open breaker whose cooldown is over still reads `Open` until a
    /// caller takes the probe.
    pub fn state(&self) -> BreakerState {
        self.inner.lock().state
    }

    /// How many state changes happened since creation.
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    fn permit(&self, probe: bool, epoch: u64) -> BreakerPermit<'_> {
        BreakerPermit {
            breaker: self,
            probe,
            epoch,
            reported: false,
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        let from = inner.state;
        if from == to {
            return;
        }
        inner.state = to;
        self.transitions.fetch_add(1, Ordering::Relaxed);
        if to == BreakerState::Closed {
            tracing::info!(store = %self.name, from = from.as_str(), to = to.as_str(), "circuit breaker state change");
        } else {
            tracing::warn!(store = %self.name, from = from.as_str(), to = to.as_str(), "circuit breaker state change");
        }
        if let Some(observer) = &self.observer {
            observer(&self.name, to);
        }
    }

    fn open(&self, inner: &mut Inner) {
        self.transition(inner, BreakerState::Open);
        inner.opened_at = Instant::now();
        inner.probe_out = false;
        inner.consecutive_failures = 0;
        inner.epoch += 1;
    }

    fn report(&self, probe: bool, epoch: u64, ok: Option<bool>) {
        let mut inner = self.inner.lock();
        if inner.epoch != epoch {
            return; // issued before the breaker last opened: says nothing about now
        }
        match (inner.state, probe, ok) {
            (BreakerState::HalfOpen, true, Some(true)) => {
                inner.consecutive_failures = 0;
                inner.probe_out = false;
                self.transition(&mut inner, BreakerState::Closed);
            }
            (BreakerState::HalfOpen, true, Some(false)) => self.open(&mut inner),
            (BreakerState::HalfOpen, true, None) => inner.probe_out = false,
            (BreakerState::Closed, false, Some(true)) => inner.consecutive_failures = 0,
            (BreakerState::Closed, false, Some(false)) => {
                inner.consecutive_failures += 1;
                if inner.consecutive_failures >= self.failure_threshold {
                    self.open(&mut inner);
                }
            }
            _ => {}
        }
    }
}

impl BreakerPermit<'_> {
    /// The store answered (a not-found answer is an answer too).
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.report(self.probe, self.epoch, Some(true));
    }

    /// The store failed or timed out.
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.report(self.probe, self.epoch, Some(false));
    }

    /// True when this permit is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.report(self.probe, self.epoch, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_millis(150);

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new("test".into(), 5, COOLDOWN)
    }

    fn fail(b: &CircuitBreaker, n: u32) {
        for _ in 0..n {
            b.try_acquire().unwrap().failure();
        }
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = breaker();
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.transitions(), 1);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = breaker();
        fail(&b, 4);
        b.try_acquire().unwrap().success();
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn open_breaker_fails_fast_with_time_left() {
        let b = CircuitBreaker::new("slow".into(), 5, Duration::from_secs(30));
        fail(&b, 5);
        let started = Instant::now();
        let left = b.try_acquire().unwrap_err();
        // Far less than the cooldown: the caller never waits on the dead store.
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            left > Duration::from_secs(25) && left <= Duration::from_secs(30),
            "{left:?}"
        );
    }

    #[test]
    fn one_probe_after_cooldown_and_success_closes() {
        let b = breaker();
        fail(&b, 5);
        std::thread::sleep(COOLDOWN + Duration::from_millis(10));
        let probe = b.try_acquire().unwrap();
        assert!(probe.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        for _ in 0..10 {
            assert!(b.try_acquire().is_err(), "only one probe while half-open");
        }
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(!b.try_acquire().unwrap().is_probe());
        assert_eq!(b.transitions(), 3); // closed->open->half_open->closed
    }

    #[test]
    fn failed_probe_reopens_for_another_cooldown() {
        let b = breaker();
        fail(&b, 5);
        std::thread::sleep(COOLDOWN + Duration::from_millis(10));
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        // The old opening is more than a cooldown ago, so only a fresh cooldown refuses here.
        assert!(b.try_acquire().is_err());
    }

    #[test]
    fn dropped_probe_frees_the_slot() {
        let b = breaker();
        fail(&b, 5);
        std::thread::sleep(COOLDOWN + Duration::from_millis(10));
        drop(b.try_acquire().unwrap());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let next = b.try_acquire().unwrap();
        assert!(next.is_probe());
        next.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn dropped_permit_counts_as_neither() {
        let b = breaker();
        fail(&b, 4);
        for _ in 0..10 {
            drop(b.try_acquire().unwrap());
        }
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn reports_from_before_an_opening_are_ignored() {
        let b = breaker();
        let slow = b.try_acquire().unwrap();
        fail(&b, 5);
        std::thread::sleep(COOLDOWN + Duration::from_millis(10));
        let probe = b.try_acquire().unwrap();
        slow.success(); // started while closed: must not close the half-open breaker
        assert_eq!(b.state(), BreakerState::HalfOpen);
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn concurrent_callers_get_exactly_one_probe() {
        let b = std::sync::Arc::new(breaker());
        fail(&b, 5);
        std::thread::sleep(COOLDOWN + Duration::from_millis(10));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (b, barrier) = (b.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    // Hold a granted probe until every thread has tried.
                    let got = b.try_acquire().map(std::mem::forget).is_ok();
                    got as u32
                })
            })
            .collect();
        let probes: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(probes, 1);
    }

    #[test]
    fn state_serializes_as_snake_case() {
        assert_eq!(
            serde_json::to_string(&BreakerState::HalfOpen).unwrap(),
            "\"half_open\""
        );
    }
}
