//! When to visit a peer next.

use std::time::Duration;

/// What happens to a peer after a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Visit again after this delay.
    After(Duration),
    /// At or above the threshold: nothing more to learn.
    Finished,
    /// Failed at every backoff step and not kept: stop trying (it comes back when a
    /// source lists it again after the cool-down).
    Drop,
}

/// Why a peer's next visit happens: stored per visit (`visit.reason`) and, for the
/// visit that confirmed a download, per peer (`peer.crossed_how`), so a report can say
/// how each crossing was witnessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reason {
    /// The first attempt at a newly listed peer (or one back after its cool-down).
    #[default]
    First,
    /// The fixed revisit delay: no measured rate, or the predicted crossing is later.
    Fixed,
    /// The peer's own rate predicts it passes T by then.
    Predicted,
    /// A retry after a failed attempt.
    Retry,
    /// The peer connected to btda (an incoming visit).
    Incoming,
}

impl Reason {
    /// The database value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Fixed => "fixed",
            Self::Predicted => "predicted",
            Self::Retry => "retry",
            Self::Incoming => "incoming",
        }
    }
}

/// Revisit and retry delays (from `[peer]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// After a successful visit below T: the upper bound of every revisit delay.
    pub revisit_delay: Duration,
    /// The shortest revisit delay, however soon a peer is predicted to pass T
    /// (politeness: a peer is not visited more often than this).
    pub min_revisit: Duration,
    /// After the first successful visit of a peer below T with no measured rate (its
    /// visit saw no progress): a sooner second look, whose pieces give the rate to
    /// predict its crossing from. Between `min_revisit` and `revisit_delay`.
    pub first_revisit: Duration,
    /// After a first failure in a row in which the TCP connection was made (the
    /// handshake failed, timed out or was reset): the peer is alive, so the retry comes
    /// sooner than the first backoff step meant for addresses that never answer.
    pub transient_retry: Duration,
    /// After the 1st, 2nd, … failure in a row.
    pub backoff: Vec<Duration>,
    /// Retries of an address that never answered a SYN (every attempt a connect
    /// timeout or a refusal): dropped after this many, before the backoff runs out. In
    /// 2015's mix such addresses are 63 % of all; each retry costs a connect timeout.
    pub silent_retries: u32,
    /// The most visits to addresses that never answered a SYN under way at once (their
    /// retries, and their first attempts again after a cool-down): a separate budget of
    /// workers, so that dead addresses, 63 % of a campaign's, cannot hold every worker
    /// while revisits of live peers and first contacts of fresh ones wait (issue 26).
    pub silent_slots: u32,
    /// How long a dropped peer is ignored; also how long a listing keeps a reached peer
    /// from being dropped.
    pub cooldown: Duration,
}

impl Default for Policy {
    /// The documented defaults of `[peer]` (a test in `run::settings` keeps them equal
    /// to the configuration's).
    fn default() -> Self {
        Self {
            revisit_delay: Duration::from_secs(180),
            min_revisit: Duration::from_secs(15),
            first_revisit: Duration::from_secs(30),
            transient_retry: Duration::from_secs(15),
            backoff: [60, 300, 900].map(Duration::from_secs).to_vec(),
            silent_retries: 2,
            silent_slots: 512,
            cooldown: Duration::from_secs(3_600),
        }
    }
}

impl Policy {
    /// After a successful visit: finished when complete; otherwise at the predicted
    /// crossing (`eta` from now, from the peer's own rate) plus a small margin when
    /// that comes before the fixed revisit delay, never sooner than the minimum
    /// revisit interval; else after the fixed delay — or, after a peer's `first`
    /// successful visit with no measured rate, the first revisit delay: with the fixed
    /// delay, a peer seen once that crossed within three minutes and left soon after
    /// was missed (the million round: most of the 317 crossings btda saw only below T).
    pub(crate) fn after_success(
        &self,
        complete: bool,
        eta: Option<Duration>,
        first: bool,
    ) -> (Next, Reason) {
        if complete {
            return (Next::Finished, Reason::Fixed);
        }
        match eta {
            Some(eta) => {
                // Not sooner than the minimum; a prediction that the minimum pushes to
                // the fixed delay (or beyond) is the fixed revisit.
                let at = (eta + self.margin(eta)).max(self.min_revisit);
                if at < self.revisit_delay {
                    (Next::After(at), Reason::Predicted)
                } else {
                    (Next::After(self.revisit_delay), Reason::Fixed)
                }
            }
            None if first => (Next::After(self.first_revisit), Reason::Fixed),
            None => (Next::After(self.revisit_delay), Reason::Fixed),
        }
    }

    /// How long after the predicted crossing the visit comes: a twentieth of the time
    /// to go (rates wobble), at least 1 s, and at most half the minimum revisit
    /// interval, so that a peer which stays `min_revisit` after crossing is still there.
    fn margin(&self, eta: Duration) -> Duration {
        (eta / 20)
            .max(Duration::from_secs(1))
            .min(self.min_revisit / 2)
    }

    /// After the `failures_in_row`-th failure in a row (1 for the first). A peer that
    /// is `kept` (reached before and still listed by a source) is retried at the last
    /// backoff step for as long as that holds; any other is dropped after the last step.
    /// A first failure after which the connection had been made (`transient`) is
    /// retried after the short transient step instead of the first backoff step. An
    /// address that never answered (`silent`) is dropped after `silent_retries` retries.
    pub(crate) fn after_failure(
        &self,
        failures_in_row: u32,
        kept: bool,
        transient: bool,
        silent: bool,
    ) -> Next {
        if transient && failures_in_row <= 1 {
            return Next::After(self.transient_retry);
        }
        if silent && !kept && failures_in_row > self.silent_retries {
            return Next::Drop;
        }
        match self.backoff.get(failures_in_row.saturating_sub(1) as usize) {
            Some(&d) => Next::After(d),
            None => match self.backoff.last() {
                Some(&d) if kept => Next::After(d),
                _ => Next::Drop,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_then_drop() {
        let p = Policy::default();
        let secs = Duration::from_secs;
        assert_eq!(
            p.after_success(false, None, false),
            (Next::After(secs(180)), Reason::Fixed)
        );
        assert_eq!(p.after_success(true, None, false).0, Next::Finished);
        // A peer seen once, with no rate yet: looked at again sooner, not with a rate.
        assert_eq!(
            p.after_success(false, None, true),
            (Next::After(secs(30)), Reason::Fixed)
        );
        assert_eq!(
            p.after_success(false, Some(secs(400)), true),
            (Next::After(secs(180)), Reason::Fixed)
        );
        assert_eq!(
            p.after_failure(1, false, false, false),
            Next::After(secs(60))
        );
        assert_eq!(
            p.after_failure(3, false, false, false),
            Next::After(secs(900))
        );
        assert_eq!(p.after_failure(4, false, false, false), Next::Drop);
        assert_eq!(
            p.after_failure(9, true, false, false),
            Next::After(secs(900))
        );
        // A peer that accepted the connection is retried sooner, once.
        assert_eq!(
            p.after_failure(1, false, true, false),
            Next::After(secs(15))
        );
        assert_eq!(
            p.after_failure(2, false, true, false),
            Next::After(secs(300))
        );
        // An address that never answered: two retries, then dropped.
        assert_eq!(
            p.after_failure(1, false, false, true),
            Next::After(secs(60))
        );
        assert_eq!(
            p.after_failure(2, false, false, true),
            Next::After(secs(300))
        );
        assert_eq!(p.after_failure(3, false, false, true), Next::Drop);
    }

    #[test]
    fn predicted_revisits_lie_between_the_minimum_and_the_fixed_delay() {
        let p = Policy::default();
        let secs = Duration::from_secs;
        // 100 s to go: 5 s margin.
        assert_eq!(
            p.after_success(false, Some(secs(100)), false),
            (Next::After(secs(105)), Reason::Predicted)
        );
        // 2 s to go: not sooner than the 15 s minimum.
        assert_eq!(
            p.after_success(false, Some(secs(2)), false),
            (Next::After(secs(15)), Reason::Predicted)
        );
        // Already past the prediction (a late peer): the minimum again.
        assert_eq!(
            p.after_success(false, Some(Duration::ZERO), false),
            (Next::After(secs(15)), Reason::Predicted)
        );
        // Later than the fixed delay: the fixed delay, which stays the upper bound.
        assert_eq!(
            p.after_success(false, Some(secs(400)), false),
            (Next::After(secs(180)), Reason::Fixed)
        );
        // A minimum as long as the fixed delay (the old cadence): always the fixed visit.
        let old = Policy {
            min_revisit: secs(180),
            ..p.clone()
        };
        assert_eq!(
            old.after_success(false, Some(secs(2)), false),
            (Next::After(secs(180)), Reason::Fixed)
        );
        // The margin never exceeds half the minimum interval.
        assert_eq!(
            p.after_success(false, Some(secs(170)), false),
            (
                Next::After(secs(170) + Duration::from_millis(7_500)),
                Reason::Predicted
            )
        );
    }
}
