//! `btda writer-load`: the writer load generator. Sends `records` visit rows as fast
//! as the channel takes them and prints the committed count as it grows, to see how
//! the one writer thread keeps up (the bench measures the same in-process).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::shutdown::Shutdown;
use crate::store::{Record, StoreError, VisitRow, Writer, WriterSettings};

/// Writes `records` visit rows into a new database at `database`; returns the rows
/// committed and the transactions they took.
pub fn run(
    database: &std::path::Path,
    records: u64,
    settings: WriterSettings,
) -> Result<(u64, u64), StoreError> {
    let writer = Writer::start(database, settings)?;
    let stats = writer.stats();
    let done = Shutdown::new();
    let reporter = {
        let (stats, done) = (stats.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last = 0;
            while !done.requested() {
                let now = stats.committed.load(Ordering::Relaxed);
                if now != last {
                    println!("committed {now}");
                    last = now;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let sender = writer.sender();
    for i in 0..records {
        let row = Record::Visit(VisitRow {
            torrent_id: 1,
            started_at: i64::try_from(i).unwrap_or(i64::MAX),
            direction: "out",
            outcome: "ok",
            pieces: Some((i % 1000) as u32),
            state: Some("bitfield"),
            ..VisitRow::default()
        });
        if sender.send(row).is_err() {
            break; // the writer stopped: its error comes from finish
        }
    }
    drop(sender);
    let summary = writer.finish();
    done.request();
    let _ = reporter.join();
    let summary = summary?;
    Ok((summary.committed, summary.batches))
}
