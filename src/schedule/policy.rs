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

/// Revisit and retry delays (from `[peer]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// After a successful visit below T.
    pub revisit_delay: Duration,
    /// After the 1st, 2nd, … failure in a row.
    pub backoff: Vec<Duration>,
    /// How long a dropped peer is ignored; also how long a listing keeps a reached peer
    /// from being dropped.
    pub cooldown: Duration,
}

impl Policy {
    /// From the configuration.
    pub fn from_config(p: &crate::config::Peer) -> Self {
        Self {
            revisit_delay: p.revisit_delay_secs,
            backoff: p.retry_backoff_secs.clone(),
            cooldown: p.drop_cooldown_secs,
        }
    }

    /// After a successful visit.
    pub fn after_success(&self, complete: bool) -> Next {
        if complete {
            Next::Finished
        } else {
            Next::After(self.revisit_delay)
        }
    }

    /// After the `failures_in_row`-th failure in a row (1 for the first). A peer that
    /// is `kept` (reached before and still listed by a source) is retried at the last
    /// backoff step for as long as that holds; any other is dropped after the last step.
    pub fn after_failure(&self, failures_in_row: u32, kept: bool) -> Next {
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
        let p = Policy::from_config(&crate::config::Peer::default());
        assert_eq!(
            p.after_success(false),
            Next::After(Duration::from_secs(180))
        );
        assert_eq!(p.after_success(true), Next::Finished);
        assert_eq!(
            p.after_failure(1, false),
            Next::After(Duration::from_secs(60))
        );
        assert_eq!(
            p.after_failure(3, false),
            Next::After(Duration::from_secs(900))
        );
        assert_eq!(p.after_failure(4, false), Next::Drop);
        assert_eq!(
            p.after_failure(9, true),
            Next::After(Duration::from_secs(900))
        );
    }
}
