//! A classic Prometheus histogram whose `observe` takes no lock.
//!
//! prometheus-client's `Histogram` keeps its buckets behind a mutex shared by every thread that
//! records into it. Each event loop records every response into the same latency histogram, and
//! on a machine with fewer cores than busy threads the lock holder can be descheduled while it
//! holds the lock: the other loops then wait for a whole time slice, which showed as the long
//! latency tail of the 1,000-connection load test. Here every bucket, the count and the sum are
//! atomics; a scrape reads them one by one, so it may see an observation in a bucket before its
//! share of the sum, never a count that disagrees with the buckets (the count *is* the sum of
//! the buckets).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// See the module docs. Clones share the same series.
#[derive(Debug, Clone)]
pub struct AtomicHistogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Upper bounds, ascending, ending with `f64::INFINITY` (exposed as `+Inf`).
    bounds: Box<[f64]>,
    /// Observations per bucket (not cumulative), parallel to `bounds`.
    counts: Box<[AtomicU64]>,
    /// The sum of the observations, as `f64` bits.
    sum: AtomicU64,
}

impl AtomicHistogram {
    /// A histogram with these upper bounds (ascending) and a final `+Inf` bucket.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> AtomicHistogram {
        let bounds: Box<[f64]> = bounds
            .into_iter()
            .filter(|b| *b < f64::INFINITY)
            .chain([f64::INFINITY])
            .collect();
        let counts = bounds.iter().map(|_| AtomicU64::new(0)).collect();
        AtomicHistogram(Arc::new(Inner {
            bounds,
            counts,
            sum: AtomicU64::new(0f64.to_bits()),
        }))
    }

    /// Records one value. NaN goes to the `+Inf` bucket, as in prometheus-client.
    pub fn observe(&self, v: f64) {
        let inner = &*self.0;
        let last = inner.bounds.len() - 1;
        let i = inner.bounds.iter().position(|b| v <= *b).unwrap_or(last);
        inner.counts[i].fetch_add(1, Ordering::Relaxed);
        let _ = inner
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// `(sum, count, per-bucket counts with their upper bounds)`.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let inner = &*self.0;
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .zip(inner.counts.iter())
            .map(|(b, c)| (*b, c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        (
            f64::from_bits(inner.sum.load(Ordering::Relaxed)),
            count,
            buckets,
        )
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    /// The same observations give byte-identical exposition with prometheus-client's own
    /// histogram, so dashboards and alert rules see no difference.
    #[test]
    fn exposes_exactly_what_prometheus_client_histogram_does() {
        let bounds = [0.001, 0.01, 0.1, 1.0];
        let ours = AtomicHistogram::new(bounds);
        let theirs = Histogram::new(bounds);
        for v in [0.0005, 0.001, 0.002, 0.05, 0.5, 2.0, 7.5, f64::NAN] {
            ours.observe(v);
            theirs.observe(v);
        }
        let text = |register: &dyn Fn(&mut Registry)| {
            let mut registry = Registry::default();
            register(&mut registry);
            let mut out = String::new();
            encode(&mut out, &registry).unwrap();
            out
        };
        let a = text(&|r| r.register("latency", "help", ours.clone()));
        let b = text(&|r| r.register("latency", "help", theirs.clone()));
        // NaN makes both sums NaN; compare everything else line by line.
        assert_eq!(a, b);
        assert!(a.contains("latency_bucket{le=\"+Inf\"} 8"), "{a}");
        assert!(a.contains("latency_count 8"), "{a}");
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let h = AtomicHistogram::new([0.5]);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..10_000 {
                        h.observe(if i % 2 == 0 { 0.25 } else { 1.0 });
                    }
                });
            }
        });
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 40_000);
        assert_eq!(buckets, [(0.5, 20_000), (f64::INFINITY, 20_000)]);
        assert_eq!(sum, 20_000.0 * 0.25 + 20_000.0);
    }
}
