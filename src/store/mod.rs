//! Storage: the SQLite schema, the records and the single writer thread. What reads
//! finished runs (report, merge) is [`crate::offline`].

pub mod records;
pub mod schema;
mod writer;

pub use records::{PeerRow, Record, RequestRow, RunStart, StatisticRow, TorrentRow, VisitRow};
pub use writer::{RecordSender, StoreError, Writer, WriterSettings, WriterStats, WriterSummary};
