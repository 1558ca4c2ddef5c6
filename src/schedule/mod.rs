//! Scheduling: which peer to visit when, and what its visits add up to.

pub mod identity;
pub mod policy;
pub mod progress;
pub mod queue;

pub use identity::{PeerAddr, PeerKeyer, Source};
pub use policy::{Next, Policy};
pub use progress::Progress;
pub use queue::{Added, Job, PeerQueue, QueueCounts, Recorded, VisitResult};

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
