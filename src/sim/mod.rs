//! Simulation: fake peers, trackers and whole swarms on loopback
//! with known truth, for tests, benchmarks and `make demo`.

pub mod demo;
pub mod fake_peer;
pub mod fake_tracker;
pub mod harness;
pub mod reactor;
pub mod script;
pub mod swarm;

pub use fake_peer::{Behaviour, FakePeer};
pub use harness::{Harness, HarnessOptions};
