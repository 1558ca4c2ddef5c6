//! The one thread that writes to the run database.
//!
//! Everyone else sends typed [`Record`]s over a bounded channel; the writer groups them
//! into short transactions (at most `batch_records` records, committed at most
//! `batch_interval_ms` after the first record of the batch arrived). One writing
//! connection means no "database is locked" losses, the failure that cost the 2015 tool
//! data under load.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::records::Record;
use super::schema;

/// Writer settings (from `[writer]` in the config).
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    /// Channel size in records.
    pub channel_capacity: usize,
    /// Most records per transaction.
    pub batch_records: usize,
    /// Longest wait before a commit.
    pub batch_interval: Duration,
}

impl From<&crate::config::Writer> for WriterSettings {
    fn from(w: &crate::config::Writer) -> Self {
        Self {
            channel_capacity: w.channel_capacity,
            batch_records: w.batch_records,
            batch_interval: Duration::from_millis(w.batch_interval_ms),
        }
    }
}

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening or preparing the database failed.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// Database file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The writer thread could not be started or died.
    #[error("writer thread: {0}")]
    Thread(String),
    /// The writer has stopped; the record was not stored.
    #[error("the database writer has stopped")]
    Closed,
}

/// Counters shared between the writer and everyone who watches it.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records handed to the channel.
    pub sent: AtomicU64,
    /// Records inside committed transactions.
    pub committed: AtomicU64,
    /// Records SQLite refused (logged, not retried).
    pub failed: AtomicU64,
    /// Committed transactions.
    pub batches: AtomicU64,
}

impl WriterStats {
    /// Records sent but not yet committed or refused.
    pub fn backlog(&self) -> u64 {
        let done = self.committed.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed);
        self.sent.load(Ordering::Relaxed).saturating_sub(done)
    }
}

/// What the writer did, reported when it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterSummary {
    /// Records committed.
    pub committed: u64,
    /// Records refused by SQLite.
    pub failed: u64,
    /// Transactions committed.
    pub batches: u64,
}

/// A cloneable handle for sending records to the writer.
#[derive(Clone)]
pub struct RecordSender {
    tx: SyncSender<Record>,
    stats: Arc<WriterStats>,
}

impl RecordSender {
    /// Queues a record, waiting while the channel is full (back-pressure).
    pub fn send(&self, record: Record) -> Result<(), StoreError> {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        self.tx.send(record).map_err(|_| {
            self.stats.sent.fetch_sub(1, Ordering::Relaxed);
            StoreError::Closed
        })
    }

    /// Queues a record unless the channel is full; returns whether it was queued. For
    /// senders that must never block (e.g. monitoring samples).
    pub fn try_send(&self, record: Record) -> bool {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.sent.fetch_sub(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// The running writer thread.
pub struct Writer {
    sender: RecordSender,
    handle: JoinHandle<WriterSummary>,
}

impl Writer {
    /// Opens (creates) the database at `path` with the full schema, then starts the
    /// writer thread. Errors opening the file are returned here, before any thread runs.
    pub fn start(path: &Path, settings: WriterSettings) -> Result<Self, StoreError> {
        let conn = schema::open_for_writing(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.set_prepared_statement_cache_capacity(32);
        let (tx, rx) = sync_channel(settings.channel_capacity);
        let stats = Arc::new(WriterStats::default());
        let thread_stats = Arc::clone(&stats);
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, rx, settings, &thread_stats))
            .map_err(|e| StoreError::Thread(e.to_string()))?;
        Ok(Self {
            sender: RecordSender { tx, stats },
            handle,
        })
    }

    /// A new sender for another thread.
    pub fn sender(&self) -> RecordSender {
        self.sender.clone()
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<WriterStats> {
        Arc::clone(&self.sender.stats)
    }

    /// Drops this handle's sender and waits until every record sent (by any sender, all
    /// of which must be dropped by then) is committed; then closes the database.
    pub fn finish(self) -> Result<WriterSummary, StoreError> {
        drop(self.sender);
        self.handle
            .join()
            .map_err(|_| StoreError::Thread("the writer thread panicked".into()))
    }
}

fn write_loop(
    conn: rusqlite::Connection,
    rx: Receiver<Record>,
    settings: WriterSettings,
    stats: &WriterStats,
) -> WriterSummary {
    let mut disconnected = false;
    while !disconnected {
        let Ok(first) = rx.recv() else { break };
        let deadline = Instant::now() + settings.batch_interval;
        if let Err(e) = conn.execute_batch("BEGIN") {
            log::error!("database: cannot begin a transaction: {e}");
        }
        let mut batch_ok = 0u64;
        let mut apply = |record: Record| match record.apply(&conn) {
            Ok(()) => batch_ok += 1,
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                log::warn!("database: record not stored: {e}");
            }
        };
        apply(first);
        let mut taken = 1;
        while taken < settings.batch_records {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(record) => {
                    apply(record);
                    taken += 1;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                stats.committed.fetch_add(batch_ok, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failed.fetch_add(batch_ok, Ordering::Relaxed);
                log::error!("database: commit of {batch_ok} records failed: {e}");
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
    // Fold the WAL back into the main file so the database is one self-contained file.
    if let Err(e) = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
        log::warn!("database: final checkpoint failed: {e}");
    }
    if let Err((_, e)) = conn.close() {
        log::warn!("database: close failed: {e}");
    }
    WriterSummary {
        committed: stats.committed.load(Ordering::Relaxed),
        failed: stats.failed.load(Ordering::Relaxed),
        batches: stats.batches.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::{Record, VisitRow};

    fn settings(batch: usize, ms: u64) -> WriterSettings {
        WriterSettings {
            channel_capacity: 64,
            batch_records: batch,
            batch_interval: Duration::from_millis(ms),
        }
    }

    fn visit(i: i64) -> Record {
        Record::Visit(VisitRow {
            torrent_id: 1,
            started_at: i,
            direction: "out",
            outcome: "ok",
            ..VisitRow::default()
        })
    }

    #[test]
    fn commits_within_the_interval_without_waiting_for_a_full_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sqlite");
        let writer = Writer::start(&path, settings(1_000_000, 50)).unwrap();
        writer.sender().send(visit(1)).unwrap();
        let stats = writer.stats();
        let start = Instant::now();
        while stats.committed.load(Ordering::Relaxed) < 1 {
            assert!(start.elapsed() < Duration::from_secs(10), "never committed");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Another connection sees the committed row while the writer still runs.
        let reader = schema::open_read_only(&path).unwrap();
        let n: i64 = reader
            .query_row("SELECT count(*) FROM visit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(writer.finish().unwrap().committed, 1);
    }

    #[test]
    fn refused_records_are_counted_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sqlite");
        let writer = Writer::start(&path, settings(10, 1000)).unwrap();
        let s = writer.sender();
        let bad = Record::Visit(VisitRow {
            direction: "sideways", // violates the CHECK constraint
            ..VisitRow::default()
        });
        for r in [visit(1), bad, visit(2)] {
            s.send(r).unwrap();
        }
        drop(s);
        let summary = writer.finish().unwrap();
        assert_eq!((summary.committed, summary.failed), (2, 1));
    }
}
