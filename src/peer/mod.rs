//! Blocking peer drivers: outgoing and incoming visits, the worker pool, the listener.

pub mod encryption;
pub mod engine;
pub mod finished;
pub mod gate;
pub mod measured;
pub mod metadata;
pub mod outcome;
pub mod stream;
pub mod tcp;
pub mod visit;

pub use engine::{Engine, EngineStats, Running};
pub use outcome::Outcome;
pub use visit::{Identity, Timeouts, VisitReport};
