//! Scheduling: which peer to visit when. Knows due times, visit states and the retry
//! policy, nothing of what visits found (that is [`crate::book`]).

mod budget;
mod policy;
pub mod scheduler;

pub use budget::DialBudget;
pub use policy::{Next, Policy, Reason};
pub use scheduler::{Added, Ended, Reach, Scheduler, State};
