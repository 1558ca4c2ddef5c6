//! The one thread that writes to the run database.
//!
//! Everyone else sends typed [`Record`]s over a bounded channel; the writer groups them
//! into short transactions (at most `batch_records` records, committed at most
//! `batch_interval_ms` after the first record of the batch arrived). One writing
//! connection means no "database is locked" losses, the failure that cost the 2015 tool
//! data under load.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::records::Record;
use super::schema;
use crate::shutdown::Shutdown;

/// Writer settings (from `[writer]` in the config).
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    /// Channel size in records.
    pub channel_capacity: usize,
    /// Most records per transaction.
    pub batch_records: usize,
    /// Longest wait before a commit.
    pub batch_interval: Duration,
    /// How long commits may keep failing before the writer gives up.
    pub max_stall: Duration,
    /// Largest database in pages (0: no limit).
    pub max_page_count: u64,
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
    /// Records SQLite refused as invalid (a constraint; logged, not retried).
    pub failed: AtomicU64,
    /// Committed transactions.
    pub batches: AtomicU64,
    /// Records never written because the writer gave up (see [`Self::gave_up`]).
    pub lost: AtomicU64,
    /// Unix ms since which commits have been failing (0: writing works).
    stalled_since_ms: AtomicU64,
    /// The writer gave up after failing for `max_stall` (or on a stop while failing).
    gave_up: AtomicBool,
    /// Why the last commit failed.
    last_error: parking_lot::Mutex<String>,
    /// Page limit asked for at run time (0: none asked; u64::MAX: no limit).
    page_limit: AtomicU64,
}

impl WriterStats {
    /// Records sent but not yet committed, refused or lost.
    pub fn backlog(&self) -> u64 {
        let done = self.committed.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.lost.load(Ordering::Relaxed);
        self.sent.load(Ordering::Relaxed).saturating_sub(done)
    }

    /// While commits are failing: for how long, and why.
    pub fn stalled(&self) -> Option<(Duration, String)> {
        let since = self.stalled_since_ms.load(Ordering::Relaxed);
        (since != 0).then(|| {
            let now = crate::clock::unix_now_ms().max(0) as u64;
            (
                Duration::from_millis(now.saturating_sub(since)),
                self.last_error.lock().clone(),
            )
        })
    }

    /// Whether the writer gave up (nothing more is written).
    pub fn gave_up(&self) -> bool {
        self.gave_up.load(Ordering::Relaxed)
    }

    /// Why commits failed last (empty if they never did).
    pub(crate) fn last_error(&self) -> String {
        self.last_error.lock().clone()
    }
}

/// What the writer did, reported when it closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterSummary {
    /// Records committed.
    pub committed: u64,
    /// Records refused by SQLite as invalid.
    pub failed: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Records never written: the writer gave up.
    pub lost: u64,
    /// Why it gave up, if it did.
    pub gave_up: Option<String>,
}

/// A cloneable handle for sending records to the writer. The channel carries boxes: a
/// [`Record`] is 424 bytes, and a bounded channel of records by value allocates its
/// whole capacity at once and writes to every slot (65,536 slots: 28 MB resident from
/// the start, found with heaptrack in the soak, whatever the backlog). Boxed, a slot is
/// 8 bytes and a record's memory lives only while it waits.
#[derive(Clone)]
pub struct RecordSender {
    tx: SyncSender<Box<Record>>,
    stats: Arc<WriterStats>,
}

impl RecordSender {
    /// Queues a record, waiting while the channel is full (back-pressure).
    pub fn send(&self, record: Record) -> Result<(), StoreError> {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        self.tx.send(Box::new(record)).map_err(|_| {
            self.stats.sent.fetch_sub(1, Ordering::Relaxed);
            StoreError::Closed
        })
    }

    /// Queues a record unless the channel is full; returns whether it was queued. For
    /// senders that must never block (e.g. monitoring samples).
    pub(crate) fn try_send(&self, record: Record) -> bool {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Box::new(record)) {
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
        Self::start_with_stop(path, settings, Shutdown::new())
    }

    /// As [`Self::start`]; while commits are failing, a set `stop` flag (Ctrl+C) makes
    /// the writer give up at once instead of waiting out `max_stall`.
    pub(crate) fn start_with_stop(
        path: &Path,
        settings: WriterSettings,
        stop: Shutdown,
    ) -> Result<Self, StoreError> {
        let conn = schema::open_for_writing(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.set_prepared_statement_cache_capacity(32);
        let (tx, rx) = sync_channel(settings.channel_capacity);
        let stats = Arc::new(WriterStats::default());
        if settings.max_page_count > 0 {
            stats
                .page_limit
                .store(settings.max_page_count, Ordering::Relaxed);
        }
        let thread_stats = Arc::clone(&stats);
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, rx, settings, &thread_stats, &stop))
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

    /// Sets the database's page limit from now on (`None`: no limit). A database at its
    /// limit fails like a full disk; raising it is like freeing space.
    pub fn limit_pages(&self, pages: Option<u64>) {
        self.sender
            .stats
            .page_limit
            .store(pages.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Drops this handle's sender and waits until every record sent (by any sender, all
    /// of which must be dropped by then) is committed, or the writer gave up; then
    /// closes the database.
    pub fn finish(self) -> Result<WriterSummary, StoreError> {
        drop(self.sender);
        self.handle
            .join()
            .map_err(|_| StoreError::Thread("the writer thread panicked".into()))
    }
}

/// Whether an SQLite error is the storage's (full, I/O, locked, read-only): the batch
/// is kept and retried. Any other error is the record's own (a constraint) and only
/// that record is refused.
fn is_storage_error(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            C::DiskFull
                | C::SystemIoFailure
                | C::DatabaseBusy
                | C::DatabaseLocked
                | C::CannotOpen
                | C::ReadOnly
                | C::OutOfMemory
                | C::FileLockingProtocolFailed
        ),
        _ => false,
    }
}

/// Writes `batch` in one transaction. `Ok(refused)` when committed (the records SQLite
/// refused as invalid are counted, not retried); `Err` when the storage failed and
/// nothing of the batch was kept.
fn commit(conn: &rusqlite::Connection, batch: &[Record]) -> Result<u64, rusqlite::Error> {
    conn.execute_batch("BEGIN")?;
    let mut refused = 0;
    for record in batch {
        match record.apply(conn) {
            Ok(()) => {}
            Err(e) if is_storage_error(&e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
            Err(e) => {
                refused += 1;
                log::warn!("database: record not stored: {e}");
            }
        }
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e);
    }
    Ok(refused)
}

/// First and longest wait between retries of a failing commit.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often a failing writer says so in the log.
const LOG_EVERY: Duration = Duration::from_secs(30);

fn write_loop(
    conn: rusqlite::Connection,
    rx: Receiver<Box<Record>>,
    settings: WriterSettings,
    stats: &WriterStats,
    stop: &Shutdown,
) -> WriterSummary {
    let mut disconnected = false;
    let mut batch: Vec<Record> = Vec::new();
    let mut page_limit = 0;
    let mut gave_up = None;
    loop {
        if batch.is_empty() {
            if disconnected {
                break;
            }
            let Ok(first) = rx.recv() else { break };
            let deadline = Instant::now() + settings.batch_interval;
            batch.push(*first);
            while batch.len() < settings.batch_records {
                let wait = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(record) => batch.push(*record),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
        }
        // The batch is kept until it commits: a failing commit is retried with a
        // backoff while the channel fills and its senders wait.
        let mut wait = RETRY_FIRST;
        let mut failing_since: Option<Instant> = None;
        let mut logged: Option<Instant> = None;
        loop {
            let wanted = stats.page_limit.load(Ordering::Relaxed);
            if wanted != 0 && wanted != page_limit {
                let pages = if wanted == u64::MAX { 1 << 40 } else { wanted };
                if let Err(e) = conn.pragma_update(None, "max_page_count", pages) {
                    log::warn!("database: cannot set max_page_count: {e}");
                }
                page_limit = wanted;
            }
            match commit(&conn, &batch) {
                Ok(refused) => {
                    let n = batch.len() as u64;
                    stats.committed.fetch_add(n - refused, Ordering::Relaxed);
                    stats.failed.fetch_add(refused, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    batch.clear();
                    if failing_since.is_some() {
                        log::warn!("database: writing works again; nothing was lost");
                        stats.stalled_since_ms.store(0, Ordering::Relaxed);
                    }
                    break;
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(|| {
                        let now_ms = crate::clock::unix_now_ms().max(1) as u64;
                        stats.stalled_since_ms.store(now_ms, Ordering::Relaxed);
                        Instant::now()
                    });
                    *stats.last_error.lock() = e.to_string();
                    if logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                        log::error!(
                            "database: commit of {} records failed ({e}); keeping them and retrying \
                             (btda stops after {} s of this, or on Ctrl+C)",
                            batch.len(),
                            settings.max_stall.as_secs()
                        );
                        logged = Some(Instant::now());
                    }
                    if since.elapsed() >= settings.max_stall || stop.requested() {
                        gave_up = Some(format!(
                            "database writes failed for {} s: {e}",
                            since.elapsed().as_secs()
                        ));
                        break;
                    }
                    stop.wait(wait);
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
        if gave_up.is_some() {
            break;
        }
    }
    if let Some(why) = &gave_up {
        // Nothing more can be written: what is queued is lost, and the senders must be
        // released (they wait on a full channel) so that btda can stop.
        let mut lost = batch.len() as u64;
        drop(batch);
        while let Ok(r) = rx.try_recv() {
            drop(r);
            lost += 1;
        }
        stats.lost.fetch_add(lost, Ordering::Relaxed);
        stats.gave_up.store(true, Ordering::Relaxed);
        log::error!("database: giving up: {why}; {lost} records not written");
        drop(rx);
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
        lost: stats.lost.load(Ordering::Relaxed),
        gave_up,
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
            max_stall: Duration::from_secs(60),
            max_page_count: 0,
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
