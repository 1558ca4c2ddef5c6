//! A histogram of durations in milliseconds: eighth-octave buckets of atomic counters
//! (1 ms to about 4.3 hours, within 9 %), lock-free and of fixed size, for measurements
//! taken on every visit (measured timeouts, how late the scheduler hands peers out).
//! Eighth octaves, not quarters: a wait near a target (the million round's ten minutes)
//! was reported as 741 s for anything from 624 s up.

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets per octave of `ms + 1`.
const PER_OCTAVE: f64 = 8.0;
/// Buckets: 24 octaves, the last bucket open-ended.
const BUCKETS: usize = 192;

fn bucket(ms: u32) -> usize {
    let octaves = (f64::from(ms) + 1.0).log2();
    ((octaves * PER_OCTAVE) as usize).min(BUCKETS - 1)
}

/// The largest value that falls into bucket `i`.
fn upper(i: usize) -> u64 {
    (2f64.powf((i + 1) as f64 / PER_OCTAVE) - 1.0).ceil() as u64
}

/// A histogram of durations in milliseconds.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Counts one duration; returns how many were counted in all.
    pub(crate) fn record(&self, ms: u32) -> u64 {
        self.buckets[bucket(ms)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Durations counted.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The share of durations in buckets that end at or below `ms` (whole buckets: a
    /// slight under-count near `ms`); `None` when empty.
    pub(crate) fn share_at_most(&self, ms: u64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let within: u64 = self
            .buckets
            .iter()
            .enumerate()
            .take_while(|(i, _)| upper(*i) <= ms)
            .map(|(_, b)| b.load(Ordering::Relaxed))
            .sum();
        Some(within as f64 / total as f64)
    }

    /// The `q` quantile (0 < q ≤ 1) as the upper end of its bucket; `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        // A snapshot on the stack: counts keep moving while it is read.
        let counts: [u64; BUCKETS] =
            std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(upper(i));
            }
        }
        Some(upper(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution_are_within_a_bucket() {
        let h = Histogram::default();
        // 1..=1000 ms, uniform: the 99th percentile is 990 ms.
        for ms in 1..=1000 {
            h.record(ms);
        }
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((990.0..=990.0 * 1.091).contains(&p99), "{p99}");
        let p50 = h.quantile(0.5).unwrap() as f64;
        assert!((500.0..=500.0 * 1.091).contains(&p50), "{p50}");
        assert_eq!(Histogram::default().quantile(0.5), None);
        for ms in [0, 1, 2, 3, 100, 4_000_000_000] {
            assert!(upper(bucket(ms)) >= u64::from(ms).min(upper(BUCKETS - 2)));
        }
    }

    #[test]
    fn shares_at_most_a_value_count_whole_buckets() {
        let h = Histogram::default();
        assert_eq!(h.share_at_most(10), None);
        for ms in [1, 2, 3, 5_000, 6_000] {
            h.record(ms);
        }
        assert_eq!(h.share_at_most(10), Some(0.6));
        assert_eq!(h.share_at_most(100_000), Some(1.0));
    }
}
