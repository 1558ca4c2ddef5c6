//! Storage: the SQLite schema, the single writer thread and the queries `report` uses.

pub mod merge;
pub mod records;
pub mod report;
pub mod schema;
pub mod trust;
pub mod writer;

pub use records::{PeerRow, Record, RequestRow, RunStart, StatisticRow, TorrentRow, VisitRow};
pub use writer::{RecordSender, StoreError, Writer, WriterSettings, WriterStats, WriterSummary};
