//! Simulation: fake peers, trackers and whole swarms on loopback
//! with known truth, for tests, benchmarks and `make demo`.

pub mod burst;
pub mod demo;
pub mod fake_peer;
pub mod fake_tracker;
mod harness;
pub mod nat;
pub mod reactor;
pub mod script;
pub mod serve;
pub mod swarm;

pub use fake_peer::{Behaviour, FakePeer};
pub use harness::{Harness, HarnessOptions};

/// Polls `check` every 10 ms until it returns true (then true) or `limit` passes (then
/// false): the one way tests and benchmarks wait for something that happens on other
/// threads.
pub fn eventually(limit: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
