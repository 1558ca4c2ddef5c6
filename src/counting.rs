//! A peer's progress over its observations, and the confirmed-download rule.
//!
//! Pure bookkeeping: observations (Unix ms, pieces) go in, the `peer` row's figures come
//! out. A successful visit makes up to two observations: the piece count at its first
//! piece-state message and at its end. A peer observed below T and at or above T at a
//! later observation — in the same visit or a later one — crossed: one confirmed
//! download, at the time of that later observation.

/// What the visits of one peer showed so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// First observation (Unix ms) and its pieces.
    pub first: Option<(i64, u32)>,
    /// Latest observation (Unix ms) and its pieces.
    pub last: Option<(i64, u32)>,
    /// Successful visits (an `invalid` one too, though it observes nothing).
    pub visits: u32,
    /// Failed visits.
    pub failed_visits: u32,
    /// Highest pieces per second between consecutive observations.
    pub max_speed: Option<f64>,
    /// When the peer was first observed at or above T after an observation below T.
    pub crossed_at: Option<i64>,
    /// Whether any observation was below T.
    pub below: bool,
    /// Whether a below-T observation came from a real piece-state message (not state
    /// `none`); the strict count requires it.
    pub below_with_state: bool,
    /// The peer's download rate, pieces per second, as the latest visit measured it: an
    /// upper bound (one piece more than seen) over its own two observations and over the
    /// span since the previous visit's last one, the faster of the two (a revisit that
    /// comes early costs one more visit; one that comes late can miss a finisher that
    /// leaves). None: not measured or no progress.
    pub rate: Option<f64>,
    /// The crossing time (Unix ms) that rate predicted at the latest visit below T;
    /// frozen once the peer crossed, so it is the prediction the crossing is compared to.
    pub predicted_ms: Option<i64>,
    /// Whether the crossing was seen inside one visit (its first observation below T,
    /// its last at or above).
    pub crossed_within_visit: bool,
}

impl Progress {
    /// Records a successful visit and its observations in time order. `with_state` is
    /// false for a visit in which the peer sent no piece-state message (state `none`,
    /// observed as 0 pieces); a visit whose state messages were all invalid passes no
    /// observation at all.
    pub fn success(&mut self, observations: &[(i64, u32)], with_state: bool, threshold: u32) {
        let before = self.last;
        let crossed_before = self.crossed_at.is_some();
        for &(at_ms, pieces) in observations {
            self.observe(at_ms, pieces, with_state, threshold);
        }
        self.visits += 1;
        if let (Some(&first), Some(&last)) = (observations.first(), observations.last()) {
            if !crossed_before && self.crossed_at.is_some() {
                self.crossed_within_visit = first.1 < threshold && last.1 >= threshold;
            }
            // Whole pieces over a short span: n pieces seen in dt means fewer than n + 1
            // completed, so (n + 1) / dt bounds the rate from above. A visit predicted
            // too early finds the peer below T and predicts again from a longer span; one
            // predicted too late can miss a finisher that leaves.
            let rates = [Some(first), before]
                .into_iter()
                .flatten()
                .filter_map(|(at, p)| {
                    let dt = last.0 - at;
                    let gained = last.1.saturating_sub(p);
                    (dt > 0 && gained > 0).then(|| f64::from(gained + 1) * 1000.0 / dt as f64)
                });
            self.rate = rates.fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
            if self.crossed_at.is_none() {
                self.predicted_ms = self.eta_ms(threshold).map(|eta| last.0 + eta);
            }
        }
    }

    /// Milliseconds from the latest observation until the peer's rate makes it pass T;
    /// None when it is already there or has no measured rate.
    fn eta_ms(&self, threshold: u32) -> Option<i64> {
        let (_, pieces) = self.last?;
        let rate = self.rate?;
        let to_go = threshold.checked_sub(pieces).filter(|&n| n > 0)?;
        let ms = (f64::from(to_go) / rate * 1000.0).ceil();
        // Beyond a year the prediction says nothing useful (and must not overflow).
        (ms < 3.2e10).then_some(ms as i64)
    }

    /// How long from `now_ms` until the predicted crossing (zero when it is past);
    /// None for a peer at or above T or without a measured rate.
    pub(crate) fn eta_from(&self, now_ms: i64, threshold: u32) -> Option<std::time::Duration> {
        if self.complete(threshold) {
            return None;
        }
        let at = self.predicted_ms?;
        Some(std::time::Duration::from_millis(
            u64::try_from(at - now_ms).unwrap_or(0),
        ))
    }

    fn observe(&mut self, at_ms: i64, pieces: u32, with_state: bool, threshold: u32) {
        if let Some((prev_at, prev_pieces)) = self.last {
            let dt = (at_ms - prev_at) as f64 / 1000.0;
            if dt > 0.0 && pieces > prev_pieces {
                let speed = f64::from(pieces - prev_pieces) / dt;
                self.max_speed = Some(self.max_speed.map_or(speed, |m| m.max(speed)));
            }
        }
        if pieces < threshold {
            self.below = true;
            self.below_with_state |= with_state;
        } else if self.below && self.crossed_at.is_none() {
            self.crossed_at = Some(at_ms);
        }
        if self.first.is_none() {
            self.first = Some((at_ms, pieces));
        }
        self.last = Some((at_ms, pieces));
    }

    /// Records a failed visit.
    pub fn failure(&mut self) {
        self.failed_visits += 1;
    }

    /// Whether the latest observation was at or above T (the peer is not revisited).
    pub fn complete(&self, threshold: u32) -> bool {
        self.last.is_some_and(|(_, p)| p >= threshold)
    }

    /// A confirmed download under the strict rule (the below-T evidence was a real
    /// piece-state message, not silence).
    pub fn crossed_strict(&self) -> bool {
        self.crossed_at.is_some() && self.below_with_state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leecher_crossing_once() {
        let mut p = Progress::default();
        p.success(&[(0, 10)], true, 98);
        p.success(&[(180_000, 50)], true, 98);
        assert!(p.crossed_at.is_none() && !p.complete(98));
        p.success(&[(360_000, 98)], true, 98);
        assert_eq!(p.crossed_at, Some(360_000));
        p.success(&[(540_000, 100)], true, 98); // later visits do not move the crossing
        assert_eq!(p.crossed_at, Some(360_000));
        assert_eq!(p.visits, 4);
        assert_eq!(p.first, Some((0, 10)));
        assert!(p.crossed_strict());
        // 48 pieces in 180 s is the fastest step.
        assert!((p.max_speed.unwrap() - 48.0 / 180.0).abs() < 1e-9);
    }

    #[test]
    fn a_crossing_inside_one_visit_counts() {
        let mut p = Progress::default();
        p.success(&[(1_000, 90), (2_000, 100)], true, 98);
        assert_eq!(p.crossed_at, Some(2_000));
        assert_eq!((p.first, p.last), (Some((1_000, 90)), Some((2_000, 100))));
        assert_eq!(p.max_speed, Some(10.0));
        assert!(p.crossed_strict() && p.complete(98));
    }

    #[test]
    fn the_rate_predicts_the_crossing() {
        let mut p = Progress::default();
        // 10 pieces in the 1 s state window: fewer than 11 pieces/s, 48 to go: 4.364 s.
        p.success(&[(1_000, 40), (2_000, 50)], true, 98);
        assert_eq!(p.rate, Some(11.0));
        assert_eq!(p.predicted_ms, Some(6_364));
        assert_eq!(
            p.eta_from(2_000, 98),
            Some(std::time::Duration::from_millis(4_364))
        );
        // No have inside the next visit, but 20 pieces in 10 s since the last one.
        p.success(&[(11_000, 70), (12_000, 70)], true, 98);
        assert_eq!(p.rate, Some(2.1));
        assert_eq!(p.predicted_ms, Some(25_334));
        assert_eq!(p.eta_from(30_000, 98), Some(std::time::Duration::ZERO));
        // No progress at all: no rate, no prediction.
        p.success(&[(20_000, 70), (21_000, 70)], true, 98);
        p.success(&[(22_000, 70)], true, 98);
        assert_eq!((p.rate, p.predicted_ms), (None, None));
        // The crossing freezes the last prediction and says how it was seen.
        p.success(&[(30_000, 80), (31_000, 90)], true, 98);
        let predicted = p.predicted_ms;
        assert!(predicted.is_some());
        p.success(&[(40_000, 99), (41_000, 100)], true, 98);
        assert_eq!((p.crossed_at, p.predicted_ms), (Some(40_000), predicted));
        assert!(!p.crossed_within_visit, "below T was the visit before");
        assert_eq!(p.eta_from(41_000, 98), None, "complete");
        let mut q = Progress::default();
        q.success(&[(1_000, 97), (2_000, 99)], true, 98);
        assert!(q.crossed_within_visit);
    }

    #[test]
    fn seeder_from_the_start_never_crosses() {
        let mut p = Progress::default();
        p.success(&[(0, 100), (900, 100)], true, 98);
        assert!(p.complete(98));
        assert!(p.crossed_at.is_none());
        assert_eq!(p.max_speed, None);
    }

    #[test]
    fn silent_zero_counts_leniently_only() {
        let mut p = Progress::default();
        p.success(&[(0, 0)], false, 5);
        p.success(&[(1000, 5)], true, 5);
        assert_eq!(p.crossed_at, Some(1000));
        assert!(!p.crossed_strict());
    }

    #[test]
    fn an_invalid_visit_is_a_contact_but_no_sighting() {
        let mut p = Progress::default();
        p.success(&[], false, 5);
        p.success(&[(1000, 5)], true, 5);
        assert_eq!(p.visits, 2);
        assert_eq!(p.crossed_at, None, "no observation below T");
        assert_eq!(p.first, Some((1000, 5)));
    }

    #[test]
    fn no_division_by_zero_and_no_negative_speed() {
        let mut p = Progress::default();
        p.success(&[(5, 1)], true, 10);
        p.success(&[(5, 3)], true, 10); // same millisecond
        p.success(&[(10, 2)], true, 10); // fewer pieces (a re-check)
        assert_eq!(p.max_speed, None);
        p.failure();
        assert_eq!((p.visits, p.failed_visits), (3, 1));
    }
}
