//! Blocking peer drivers: outgoing and incoming visits, the worker pool, the listener.

pub mod encryption;
pub mod engine;
mod finished;
mod gate;
pub mod measured;
pub mod metadata;
mod outcome;
pub mod stream;
mod tcp;
mod visit;

pub use engine::{Engine, EngineStats, Running};
pub use outcome::Outcome;
pub use visit::{Identity, Timeouts, TransportChoice, VisitReport};
