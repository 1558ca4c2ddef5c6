//! Timeouts measured from the run itself. The internet is not loopback: most first
//! contacts never answer a SYN (61 % in 2015), so every millisecond of connect timeout
//! is paid on most dials. btda keeps a histogram of the connect and handshake times of
//! successful contacts and, after a warm-up, uses a high percentile of them times a
//! safety factor, clamped to configured bounds (`peer.connect_timeout_ms = "auto"`).
//! Until the warm-up the upper bound applies. Each later attempt at a peer doubles the
//! timeout, up to the upper bound, so a slow but live peer is not lost while a dead
//! address stays cheap for its first retries. A number in the configuration fixes a
//! timeout instead.
//!
//! The times go into a [`Histogram`] (lock-free, 72 counters per timeout, whatever the
//! number of visits).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::visit::{Timeouts, VisitReport};
use crate::clock::millis;
use crate::histogram::Histogram;

/// How one timeout is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// Always this.
    Fixed(Duration),
    /// `percentile` of the successful times × `factor`, within `[min, max]`, once
    /// `warmup` successes were seen; `max` before.
    Auto {
        /// Which quantile of successful times (e.g. 0.99).
        percentile: f64,
        /// Safety factor on it.
        factor: f64,
        /// Lower bound.
        min: Duration,
        /// Upper bound, also used before the warm-up and for retries.
        max: Duration,
        /// Successes needed before measuring.
        warmup: u64,
    },
}

/// One timeout that follows its measurements.
#[derive(Debug)]
pub struct Adaptive {
    times: Histogram,
    rule: Rule,
    current_ms: AtomicU64,
}

impl Adaptive {
    /// A timeout chosen by `rule`.
    pub fn new(rule: Rule) -> Self {
        let start = match rule {
            Rule::Fixed(d) | Rule::Auto { max: d, .. } => d,
        };
        Self {
            times: Histogram::default(),
            rule,
            current_ms: AtomicU64::new(millis(start)),
        }
    }

    /// The timeout in force.
    pub fn current(&self) -> Duration {
        Duration::from_millis(self.current_ms.load(Ordering::Relaxed))
    }

    /// The upper bound (a fixed timeout is its own bound).
    pub fn upper(&self) -> Duration {
        match self.rule {
            Rule::Fixed(d) | Rule::Auto { max: d, .. } => d,
        }
    }

    /// The timeout for the `attempt`-th contact with a peer (1 = first): the current
    /// one, doubled for each attempt after the first, at most the upper bound.
    pub(crate) fn for_attempt(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.current()
            .saturating_mul(1 << doublings)
            .min(self.upper().max(self.current()))
    }

    /// Counts a successful time and, every 16 of them, chooses the timeout anew.
    pub fn record(&self, ms: u32) {
        let n = self.times.record(ms);
        if n.is_multiple_of(16) {
            self.choose(n);
        }
    }

    fn choose(&self, n: u64) {
        let Rule::Auto {
            percentile,
            factor,
            min,
            max,
            warmup,
        } = self.rule
        else {
            return;
        };
        let chosen = match self.times.quantile(percentile) {
            Some(q) if n >= warmup => {
                let scaled = (q as f64 * factor).ceil() as u64;
                scaled.clamp(millis(min), millis(max))
            }
            _ => millis(max),
        };
        self.current_ms.store(chosen, Ordering::Relaxed);
    }
}

/// The connect and handshake timeouts of outgoing visits, measured or fixed.
#[derive(Debug)]
pub struct MeasuredTimeouts {
    /// TCP connect.
    pub connect: Adaptive,
    /// The peer's handshake after connecting.
    pub handshake: Adaptive,
    /// An incoming peer's whole handshake after btda accepted its connection (MSE
    /// included): the deadline of incoming handshakes, so a connection that sends
    /// nothing holds its handler about as long as real peers need, not the upper bound.
    pub incoming: Adaptive,
}

impl MeasuredTimeouts {
    /// Connect and handshake timeouts chosen by these rules; incoming handshakes follow
    /// the handshake rule, measured apart.
    pub fn new(connect: Rule, handshake: Rule) -> Self {
        Self {
            connect: Adaptive::new(connect),
            handshake: Adaptive::new(handshake),
            incoming: Adaptive::new(handshake),
        }
    }

    /// Counts what an outgoing visit measured: connect and handshake times of the
    /// phases that succeeded (failures say nothing about how long success takes).
    pub fn observe(&self, r: &VisitReport) {
        if let Some(ms) = r.connect_ms {
            self.connect.record(ms);
        }
        if let Some(ms) = r.handshake_ms {
            self.handshake.record(ms);
        }
    }

    /// Counts what an incoming visit measured: its whole handshake, when it arrived.
    pub(crate) fn observe_incoming(&self, r: &VisitReport) {
        if let Some(ms) = r.handshake_ms {
            self.incoming.record(ms);
        }
    }

    /// `base` with the handshake deadline of incoming connections in force.
    pub fn incoming(&self, base: &Timeouts) -> Timeouts {
        Timeouts {
            handshake: self.incoming.current(),
            ..*base
        }
    }

    /// `base` with the connect and handshake timeouts for the `attempt`-th contact
    /// with a peer (see [`Adaptive::for_attempt`]).
    pub fn apply(&self, base: &Timeouts, attempt: u32) -> Timeouts {
        Timeouts {
            connect: self.connect.for_attempt(attempt),
            handshake: self.handshake.for_attempt(attempt),
            ..*base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(min_ms: u64, max_ms: u64, warmup: u64) -> Adaptive {
        Adaptive::new(Rule::Auto {
            percentile: 0.99,
            factor: 2.0,
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(max_ms),
            warmup,
        })
    }

    #[test]
    fn the_timeout_follows_the_measurements_after_the_warm_up_and_is_clamped() {
        let t = auto(300, 5000, 100);
        assert_eq!(
            t.current(),
            Duration::from_millis(5000),
            "before the warm-up"
        );
        // 2015-like internet: connects of 20-400 ms.
        for i in 0..96u32 {
            t.record(20 + (i * 4) % 380);
        }
        assert_eq!(t.current(), Duration::from_millis(5000), "96 < warm-up");
        for i in 0..304u32 {
            t.record(20 + (i * 4) % 380);
        }
        let chosen = t.current().as_millis() as f64;
        // p99 (392 ms of 20-396 ms) × 2, within a bucket.
        assert!(
            (2.0 * 392.0..=2.0 * 396.0 * 1.091).contains(&chosen),
            "{chosen}"
        );
        assert_eq!(t.for_attempt(1), t.current());
        assert_eq!(t.for_attempt(2), t.current() * 2);
        assert_eq!(
            t.for_attempt(4),
            Duration::from_millis(5000),
            "at most the upper bound"
        );
        assert_eq!(t.for_attempt(u32::MAX), Duration::from_millis(5000));
        // Loopback: ~0 ms, clamped to the lower bound.
        let fast = auto(300, 5000, 16);
        for _ in 0..32 {
            fast.record(0);
        }
        assert_eq!(fast.current(), Duration::from_millis(300));
        // Very slow successes: clamped to the upper bound.
        let slow = auto(300, 5000, 16);
        for _ in 0..32 {
            slow.record(20_000);
        }
        assert_eq!(slow.current(), Duration::from_millis(5000));
    }

    #[test]
    fn failures_are_not_measured_and_fixed_timeouts_stay() {
        let m = MeasuredTimeouts::new(
            Rule::Fixed(Duration::from_millis(300)),
            Rule::Fixed(Duration::from_millis(500)),
        );
        let mut failed = VisitReport::bare(super::super::outcome::Outcome::ConnectTimeout);
        failed.duration_ms = 5000;
        for _ in 0..1000 {
            m.observe(&failed);
        }
        assert_eq!(m.connect.times.count(), 0);
        let fixed = Adaptive::new(Rule::Fixed(Duration::from_millis(1234)));
        for _ in 0..64 {
            fixed.record(1);
        }
        assert_eq!(fixed.current(), Duration::from_millis(1234));
    }
}
