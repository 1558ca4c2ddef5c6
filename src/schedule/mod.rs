//! Scheduling: which peer to visit when. Knows due times, visit states and the retry
//! policy, nothing of what visits found (that is [`crate::book`]).

pub mod policy;
pub mod scheduler;

pub use policy::{Next, Policy};
pub use scheduler::{Added, Ended, Reach, Scheduler, State};

#[cfg(test)]
pub(crate) mod tests_support {
    /// Polls `check` for up to five seconds.
    pub fn eventually(mut check: impl FnMut() -> bool) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(5) {
            if check() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        false
    }
}
