//! btda, the BitTorrent Download Analyzer: counts confirmed downloads of torrents by
//! visiting their peers repeatedly and recording how many pieces each one has.
//!
//! The library holds everything; `src/main.rs` is only the command line. See
//! `../shared/DESIGN.md` for the architecture and the counting rules.

pub mod book;
pub mod clock;
pub mod config;
pub mod counting;
pub mod dht;
pub mod geo;
pub mod histogram;
mod idle;
mod lifo_pool;
pub mod monitor;
pub mod offline;
pub mod peer;
pub mod resolve;
pub mod run;
pub mod schedule;
pub mod shutdown;
pub mod sim;
pub mod store;
pub mod text;
pub mod thread_caches;
pub mod torrent;
pub mod tracker;
pub mod utp;
pub mod wire;
