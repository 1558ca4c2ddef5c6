//! Work on finished runs, apart from the measurement: `btda report` (read a run
//! database back), `btda merge` (several hosts' runs into one, with the checks of what
//! it accepts), the `btda import` listing and the writer load generator. Reads the
//! store's schema and the counting rule; of the online rooms only `run` uses it (the
//! summary printed when a run ends).

pub mod listing;
pub mod merge;
pub mod report;
mod trust;
pub mod writer_load;
