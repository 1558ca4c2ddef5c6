//! The SQLite writer under load and under a hard kill, and `btda report` over a database
//! whose confirmed downloads are known.

mod common;

use std::time::Duration;

use btda::store::{PeerRow, Record, TorrentRow, VisitRow, Writer, WriterSettings};
use common::{signal, spawn, stdout_lines, wait_with_limit};

#[test]
fn a_million_visit_records_all_arrive() {
    const N: i64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("million.sqlite");
    let writer = Writer::start(
        &path,
        WriterSettings::from(&btda::config::Writer::default()),
    )
    .unwrap();
    // Four sending threads, as workers would.
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let s = writer.sender();
            std::thread::spawn(move || {
                for i in (t..N).step_by(4) {
                    s.send(Record::Visit(VisitRow {
                        torrent_id: 1 + i % 7,
                        started_at: i,
                        direction: "out",
                        outcome: "ok",
                        pieces: Some((i % 5000) as u32),
                        ..VisitRow::default()
                    }))
                    .unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let summary = writer.finish().unwrap();
    assert_eq!(summary.committed, N as u64);
    assert_eq!(summary.failed, 0);
    assert!(
        summary.batches >= (N as u64) / 10_000,
        "batches are capped at 10,000 records"
    );

    let conn = rusqlite::Connection::open(&path).unwrap();
    let (count, distinct, sum): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), count(DISTINCT started_at), sum(started_at) FROM visit",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((count, distinct, sum), (N, N, N * (N - 1) / 2));
    // The WAL was checkpointed into the main file on close.
    let wal = path.with_extension("sqlite-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
}

#[test]
fn sigkill_mid_run_keeps_every_committed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("killed.sqlite");
    let config = dir.path().join("btda.toml");
    std::fs::write(
        &config,
        "[writer]\nbatch_records = 1000\nbatch_interval_ms = 20\n",
    )
    .unwrap();
    let mut child = spawn(&[
        "--config",
        config.to_str().unwrap(),
        "writer-load",
        "--database",
        db.to_str().unwrap(),
        "--records",
        "50000000",
    ]);
    let lines = stdout_lines(&mut child);
    let mut last_committed = 0u64;
    while last_committed < 30_000 {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("writer-load reports progress");
        if let Some(n) = line.strip_prefix("committed ") {
            last_committed = n.parse().unwrap();
        }
    }
    signal(&child, "KILL");
    let status = wait_with_limit(&mut child, Duration::from_secs(10));
    assert!(status.code().is_none(), "killed by a signal");
    // Anything reported after our last read was committed too; it can only add rows.
    for line in lines.try_iter() {
        if let Some(n) = line.strip_prefix("committed ") {
            last_committed = n.parse().unwrap();
        }
    }

    let conn = rusqlite::Connection::open(&db).expect("database opens after SIGKILL");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (rows, max_started): (i64, i64) = conn
        .query_row("SELECT count(*), max(started_at) FROM visit", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(
        rows as u64 >= last_committed,
        "{rows} rows < {last_committed} reported committed"
    );
    // Records are sent in order from one thread, so the committed ones are a prefix.
    assert_eq!(
        max_started,
        rows - 1,
        "committed rows are exactly the first {rows} sent"
    );
    assert!(rows < 50_000_000, "the kill happened mid-run");
}

fn torrent(id: i64, hash: char, pieces: u32, t: u32) -> Record {
    Record::Torrent(TorrentRow {
        id,
        info_hash: hash.to_string().repeat(40),
        name: format!("torrent {id}"),
        pieces_count: Some(pieces),
        piece_size: Some(16384),
        total_size: Some(u64::from(pieces) * 16384),
        complete_threshold: Some(t),
        threshold: 0.98,
        source: "file",
        trackers: vec![
            format!("http://x/{id}\nnot a row"),
            "udp://y:1/announce".into(),
        ],
        private: false,
        added_at: 1,
    })
}

fn peer(id: i64, torrent_id: i64, first: u32, last: u32, crossed: Option<i64>) -> Record {
    Record::Peer(PeerRow {
        id,
        torrent_id,
        peer_key: format!("k{id}"),
        source: "tracker",
        first_seen: 10,
        first_pieces: first,
        last_seen: 20,
        last_pieces: last,
        visits: 2,
        crossed_at: crossed,
        ..PeerRow::default()
    })
}

/// A successful tracker request for torrent 1 with `completed` and `seeders`.
fn scrape(url: &str, kind: &'static str, completed: u32, seeders: u32) -> Record {
    Record::Request(btda::store::RequestRow {
        torrent_id: Some(1),
        at: 1,
        source: "tracker",
        url: Some(url.into()),
        kind,
        ok: true,
        seeders: Some(seeders),
        leechers: Some(1),
        completed: Some(completed),
        ..btda::store::RequestRow::default()
    })
}

#[test]
fn report_counts_confirmed_downloads_from_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sqlite");
    let writer = Writer::start(
        &path,
        WriterSettings::from(&btda::config::Writer::default()),
    )
    .unwrap();
    let s = writer.sender();
    let records = vec![
        Record::RunStart(btda::store::RunStart {
            run_uid: btda::store::records::new_run_uid(),
            started_at: 1_700_000_000,
            hostname: "h".into(),
            version: "v".into(),
            config: String::new(),
            geo_city: None,
            geo_asn: None,
            key_check: None,
        }),
        torrent(1, 'a', 100, 98),
        torrent(2, 'b', 10, 10),
        peer(1, 1, 10, 99, Some(20)),  // crossed: confirmed
        peer(2, 1, 98, 100, None),     // seeder from the start: complete, not confirmed
        peer(3, 1, 5, 50, None),       // still downloading
        peer(4, 1, 99, 100, Some(20)), // first seen above T, later below, then above: confirmed
        peer(5, 2, 0, 10, Some(20)),   // confirmed on torrent 2
        Record::Visit(VisitRow {
            peer_id: Some(1),
            torrent_id: 1,
            direction: "out",
            outcome: "ok",
            ..VisitRow::default()
        }),
        Record::Visit(VisitRow {
            peer_id: None,
            torrent_id: 1,
            direction: "out",
            outcome: "refused",
            ..VisitRow::default()
        }),
        scrape("http://x/announce", "scrape", 10, 1),
        scrape("http://x/announce", "announce", 12, 2),
        scrape("http://x/announce", "scrape", 15, 3),
        scrape("udp://y:1/announce", "scrape", 3, 4),
        scrape("udp://y:1/announce", "scrape", 4, 9),
        Record::RunEnd {
            ended_at: 1_700_003_661,
            reason: "signal".into(),
        },
    ];
    for r in records {
        s.send(r).unwrap();
    }
    drop(s);
    writer.finish().unwrap();

    let out = common::btda()
        .args(["report", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // `torrent.trackers` is a JSON array: a URL with a newline stays one element.
    let stored: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT trackers FROM torrent WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let urls: Vec<String> = serde_json::from_str(&stored).unwrap();
    assert_eq!(urls, ["http://x/1\nnot a row", "udp://y:1/announce"]);
    let t = &json["torrents"];
    assert_eq!(t[0]["confirmed"], 2);
    assert_eq!(t[0]["complete_peers"], 3);
    assert_eq!(t[0]["peers"], 4);
    assert_eq!(
        (t[0]["visits"].as_i64(), t[0]["visits_ok"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(t[1]["confirmed"], 1);
    assert_eq!(json["run"]["end_reason"], "signal");
    // Tracker figures: latest scrape per tracker, and the completed-count increase.
    let trackers = &t[0]["trackers"];
    assert_eq!(trackers[0]["url"], "http://x/announce");
    assert_eq!(
        (
            trackers[0]["completed"].as_i64(),
            trackers[0]["seeders"].as_i64()
        ),
        (Some(15), Some(3))
    );
    assert_eq!(
        (
            trackers[0]["completed_increase"].as_i64(),
            trackers[0]["announces"].as_i64()
        ),
        (Some(5), Some(1))
    );
    assert_eq!(
        (
            trackers[1]["completed"].as_i64(),
            trackers[1]["completed_increase"].as_i64()
        ),
        (Some(4), Some(1))
    );
    assert_eq!(t[0]["completed_increase"], 5);
    assert_eq!(t[0]["completed_increase_tracker"], "http://x/announce");
    assert!(t[1]["trackers"].as_array().unwrap().is_empty());

    let text = common::btda().arg("report").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("ran 1:01:01"), "{text}");
    assert!(text.contains("2 torrents, 3 confirmed downloads"), "{text}");
    assert!(
        text.contains("largest completed increase: +5 (http://x/announce)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(&"a".repeat(40)) && l.trim_end().ends_with(" 2")),
        "{text}"
    );
}

/// Sends `visits` visits for each of `peers` peers from four threads, each visit with
/// its peer's updated row in one record (as the engine does); returns how many sends
/// the writer accepted.
fn send_peer_visits(writer: &Writer, peers: i64, visits: u32) -> Vec<std::thread::JoinHandle<u64>> {
    (0..4)
        .map(|t| {
            let s = writer.sender();
            std::thread::spawn(move || {
                let mut accepted = 0;
                for v in 1..=visits {
                    for id in (1 + t..=peers).step_by(4) {
                        let sent = s.send(Record::PeerVisit {
                            peer: Some(Box::new(PeerRow {
                                id,
                                torrent_id: 1,
                                peer_key: format!("key-{id}"),
                                source: "tracker",
                                first_seen: 1,
                                first_pieces: 0,
                                last_seen: i64::from(v),
                                last_pieces: v,
                                visits: v,
                                ..PeerRow::default()
                            })),
                            visit: VisitRow {
                                peer_id: Some(id),
                                torrent_id: 1,
                                started_at: i64::from(v),
                                direction: "out",
                                outcome: "ok",
                                pieces: Some(v),
                                ..VisitRow::default()
                            },
                        });
                        if sent.is_err() {
                            return accepted; // the writer gave up
                        }
                        accepted += 1;
                    }
                }
                accepted
            })
        })
        .collect()
}

/// Every peer row counts exactly its visit rows, and the file is sound.
fn assert_consistent(path: &std::path::Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    common::assert_database_adds_up(&conn);
    conn.query_row(
        "SELECT (SELECT count(*) FROM peer), (SELECT count(*) FROM visit)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// Visits sent per peer in the full-database tests: far more than 60 pages hold even
/// when the WAL delays the page count (so the database always fills while they send).
const VISITS: u32 = 200;

fn small_writer(path: &std::path::Path, max_stall: Duration, pages: u64) -> Writer {
    Writer::start(
        path,
        WriterSettings {
            channel_capacity: 2_000,
            batch_records: 500,
            batch_interval: Duration::from_millis(50),
            max_stall,
            max_page_count: pages,
        },
    )
    .unwrap()
}

/// A database that fills up (SQLite's page limit, as a full disk): the writer keeps the
/// records, the senders wait on the full channel, the stall is reported; once there is
/// room again everything arrives and every peer row adds up.
#[test]
fn a_full_database_loses_nothing_when_space_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.sqlite");
    let writer = small_writer(&path, Duration::from_secs(120), 60);
    let stats = writer.stats();
    let senders = send_peer_visits(&writer, 400, VISITS);
    assert!(
        common::eventually(Duration::from_secs(30), || stats.stalled().is_some()),
        "the database never filled"
    );
    // Back-pressure: the senders wait instead of piling records up in memory.
    std::thread::sleep(Duration::from_millis(1_000));
    let (stalled_for, why) = stats.stalled().expect("still stalled");
    assert!(why.contains("full"), "{why}");
    assert!(stalled_for >= Duration::from_millis(900), "{stalled_for:?}");
    let backlog = stats.backlog();
    assert!(
        backlog <= 2_000 + 500 + 4,
        "memory is bounded by the channel and one batch: {backlog}"
    );
    assert!(senders.iter().any(|s| !s.is_finished()), "senders wait");
    writer.limit_pages(None); // space comes back
    let accepted: u64 = senders.into_iter().map(|s| s.join().unwrap()).sum();
    assert!(stats.stalled().is_none(), "writing works again");
    let summary = writer.finish().unwrap();
    assert_eq!(accepted, 400 * u64::from(VISITS));
    assert_eq!((summary.lost, summary.gave_up.clone()), (0, None));
    assert_eq!(summary.committed, 400 * u64::from(VISITS));
    assert_eq!(assert_consistent(&path), (400, 400 * i64::from(VISITS)));
}

/// When the database stays full past `max_stall`, the writer gives up: the senders are
/// released, the loss is counted, and what was committed still adds up.
#[test]
fn a_database_that_stays_full_ends_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stuck.sqlite");
    let writer = small_writer(&path, Duration::from_millis(1_500), 60);
    let stats = writer.stats();
    let senders = send_peer_visits(&writer, 400, VISITS);
    let accepted: u64 = senders.into_iter().map(|s| s.join().unwrap()).sum();
    assert!(stats.gave_up());
    let summary = writer.finish().unwrap();
    let why = summary.gave_up.clone().expect("gave up");
    assert!(why.contains("database writes failed"), "{why}");
    assert!(
        summary.lost > 0 && accepted < 400 * u64::from(VISITS),
        "{summary:?}"
    );
    let (_, visits) = assert_consistent(&path);
    assert_eq!(visits as u64, summary.committed);
}
