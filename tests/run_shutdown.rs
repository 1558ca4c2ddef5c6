//! `btda run` end to end: start on real inputs, Ctrl+C (SIGINT), and the database and
//! summary it leaves; a second signal; and a run with nothing to analyse.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::{database_in, eventually, signal, wait_with_limit};

/// An input folder with two good torrents, one magnet link and one broken file.
fn input_dir(root: &Path) -> PathBuf {
    let input = root.join("input");
    let src = common::fixtures().join("inputs");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(
        src.join("mktorrent-single.torrent"),
        input.join("a.torrent"),
    )
    .unwrap();
    std::fs::copy(
        src.join("hand/non-canonical.torrent"),
        input.join("b.torrent"),
    )
    .unwrap();
    std::fs::copy(src.join("bad/truncated.torrent"), input.join("c.torrent")).unwrap();
    std::fs::write(
        input.join("magnet.txt"),
        "# test\nmagnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=M\n",
    )
    .unwrap();
    std::fs::write(
        input.join("btda.toml"),
        "[monitor]\nstatus_interval_secs = 1\n[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 8\nlisten_address = \"127.0.0.1\"\nlisten_port = 0\n",
    )
    .unwrap();
    input
}

fn run_row_committed(db: &Path) -> bool {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT count(*) FROM run", [], |r| r.get::<_, i64>(0)))
        .is_ok_and(|n| n == 1)
}

/// Starts `btda run` on [`input_dir`] and waits until its `run` row is committed.
/// Returns the child, its database and the rest of its stdout.
fn start_run(root: &Path) -> (std::process::Child, PathBuf, mpsc::Receiver<String>) {
    let input = input_dir(root);
    let output = root.join("output");
    let (child, first, lines) = common::start_run(&input, &output);
    assert!(first.starts_with("btda: analysing 3 torrents"), "{first}");
    let db = database_in(&output).expect("database created at start");
    assert!(
        eventually(Duration::from_secs(10), || run_row_committed(&db)),
        "run row never committed"
    );
    (child, db, lines)
}

#[test]
fn sigint_stops_the_run_and_leaves_a_complete_database() {
    let root = tempfile::tempdir().unwrap();
    let (mut child, db, lines) = start_run(root.path());
    // The run executed itself again with glibc's per-thread caches off, under the same
    // process id (the one a user stops), without a tunable of its own environment.
    let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ
            .split('\0')
            .any(|v| v == "GLIBC_TUNABLES=glibc.malloc.tcache_count=0"),
        "the run keeps glibc's per-thread caches"
    );
    std::thread::sleep(Duration::from_millis(1500)); // let one status line pass

    signal(&child, "INT");
    let status = wait_with_limit(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "exit status after one SIGINT");
    let summary: Vec<String> = lines.try_iter().collect();
    let summary = summary.join("\n");
    assert!(summary.contains("btda run ended (signal)"), "{summary}");
    assert!(
        summary.contains("torrents: 3 (1 waiting for metadata)"),
        "{summary}"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("c.torrent"),
        "skipped input not reported: {stderr}"
    );
    assert!(
        stderr.contains("torrents 3 (1 waiting for metadata)"),
        "no status line: {stderr}"
    );

    // File names follow <date>_<host>.sqlite / .log, and the WAL was folded back.
    let name = db.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.len() > 20 && name.as_bytes()[4] == b'-' && name.as_bytes()[10] == b'_',
        "{name}"
    );
    let log = db.with_extension("log");
    let log_text = std::fs::read_to_string(&log).expect("log file");
    assert!(log_text.contains("run started: 3 torrents"), "{log_text}");
    assert!(
        log_text.contains("GLIBC_TUNABLES: glibc.malloc.tcache_count=0"),
        "{log_text}"
    );
    assert!(
        log_text.contains("c.torrent"),
        "skip reason missing from the log"
    );

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (started, ended, host, version, config, reason): (
        i64,
        i64,
        String,
        String,
        String,
        String,
    ) = conn
        .query_row(
            "SELECT started_at, ended_at, hostname, version, config, end_reason FROM run",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .unwrap();
    assert!(ended >= started && started > 1_700_000_000);
    assert!(
        !host.is_empty()
            && name.contains(&host.replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-' && c != '_',
                "_"
            ))
    );
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert!(config.contains("status_interval_secs = 1"), "{config}");
    assert_eq!(reason, "signal");
    for table in [
        "run",
        "torrent",
        "peer",
        "visit",
        "request",
        "statistic",
        "confirmed_download",
    ] {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_or_else(|e| panic!("{table}: {e}"));
    }
    let mut hashes: Vec<(String, Option<i64>, Option<i64>, String)> = conn
        .prepare("SELECT info_hash, pieces_count, complete_threshold, source FROM torrent ORDER BY info_hash")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    hashes.sort();
    assert_eq!(
        hashes,
        vec![
            (
                "be8df057e534fb76e0340a7445936fe58671ac84".into(),
                Some(4),
                Some(4),
                "file".into()
            ),
            (
                "c12fe1c06bba254a9dc9f519b335aa7c1367a88a".into(),
                None,
                None,
                "magnet".into()
            ),
            (
                "fe553347d875639130a5b1a125da7b9536c4cef5".into(),
                Some(3),
                Some(3),
                "file".into()
            ),
        ]
    );
}

#[test]
fn a_second_signal_exits_at_once_with_a_consistent_database() {
    let root = tempfile::tempdir().unwrap();
    let (mut child, db, _lines) = start_run(root.path());
    // Two different signals, so the kernel cannot merge them into one.
    signal(&child, "INT");
    signal(&child, "TERM");
    let status = wait_with_limit(&mut child, Duration::from_secs(20));
    assert_eq!(
        status.code(),
        Some(130),
        "second signal must exit at once, non-zero"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let runs: i64 = conn
        .query_row("SELECT count(*) FROM run", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1);
    let torrents: i64 = conn
        .query_row("SELECT count(*) FROM torrent", [], |r| r.get(0))
        .unwrap();
    assert_eq!(torrents, 3);
}

#[test]
fn run_without_inputs_fails_and_points_at_the_demo() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("magnet.txt"), "# nothing here yet\n").unwrap();
    let out = common::btda()
        .args(["run", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(root.path().join("output"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no valid torrent or magnet link"),
        "{stderr}"
    );
    assert!(
        stderr.contains("magnet.txt") && stderr.contains("make demo"),
        "{stderr}"
    );
    assert!(
        !root.path().join("output").exists(),
        "no output files for a run that never started"
    );
}

#[test]
fn unknown_config_keys_are_named() {
    let root = tempfile::tempdir().unwrap();
    let input = input_dir(root.path());
    std::fs::write(
        input.join("btda.toml"),
        "[monitor]\nstatus_intervall_secs = 1\n",
    )
    .unwrap();
    let out = common::btda()
        .args(["import", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("status_intervall_secs"), "{stderr}");
}

/// Ctrl+C while an announce hangs on a tracker that never answers and fast peers are
/// due every second: the queue closes first, so no visit starts after the signal, and
/// the hanging announce does not hold the exit up beyond the stopped budget.
#[test]
fn sigint_starts_no_new_visit_and_a_hanging_tracker_does_not_hold_exit() {
    use btda::sim::fake_tracker::{FakeHttpTracker, HttpBehaviour};
    use btda::sim::{Behaviour, FakePeer};
    const PIECES: u32 = 40;
    let info = format!(
        "d6:lengthi{}e4:name4:hang12:piece lengthi16384e6:pieces{}:{}e",
        PIECES * 16384,
        PIECES * 20,
        "h".repeat(PIECES as usize * 20)
    );
    let hash = btda::torrent::InfoHash::of_info_bytes(info.as_bytes());
    let tracker =
        FakeHttpTracker::start("127.23.0.1:0".parse().unwrap(), HttpBehaviour::Silent).unwrap();
    let peers: Vec<FakePeer> = (1..=20u8)
        .map(|i| {
            FakePeer::start(
                std::net::SocketAddr::from(([127, 23, 1, i], 0)),
                hash,
                PIECES,
                PIECES / 2,
                Behaviour::Bitfield,
            )
            .unwrap()
        })
        .collect();
    let (_root, input, output) = common::run_dirs_with_fixture();
    std::fs::remove_file(input.join("a.torrent")).unwrap();
    let url = tracker.url();
    std::fs::write(
        input.join("hang.torrent"),
        format!("d8:announce{}:{url}4:info{info}e", url.len()),
    )
    .unwrap();
    let list: Vec<String> = peers.iter().map(|p| format!("\"{}\"", p.addr)).collect();
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 8\n\
             listen_address = \"127.23.0.100\"\nlisten_port = 0\nrevisit_delay_secs = 1\n\
             state_window_ms = 100\nvisit_cap_ms = 3000\n\
             [tracker]\nhttp_timeout_ms = 20000\nstopped_timeout_ms = 500\n\
             [[torrents]]\ninfo_hash = \"{}\"\npeers = [{}]\n",
            hash.to_hex(),
            list.join(", ")
        ),
    )
    .unwrap();
    let (mut child, _, _lines) = common::start_run(&input, &output);
    let db = database_in(&output).unwrap();
    // Let the peers be visited a few times, the announce hanging all along.
    std::thread::sleep(Duration::from_millis(3_500));
    assert!(
        !tracker.requests.lock().is_empty(),
        "the announce is under way"
    );
    let signalled = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .cast_signed();
    let t0 = std::time::Instant::now();
    signal(&child, "INT");
    let status = wait_with_limit(&mut child, Duration::from_secs(30));
    let took = t0.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        took < Duration::from_millis(3_000 + 2_000),
        "exit took {took:?}: longer than the visit cap + 2 s"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (before, after): (i64, i64) = conn
        .query_row(
            "SELECT sum(started_at <= ?1), sum(started_at > ?1) FROM visit",
            [signalled],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    println!("visits before the signal {before}, after {after}; exit in {took:?}");
    assert!(before >= 20, "the peers were visited: {before}");
    assert_eq!(after, 0, "visits started after the signal");
}

/// An output folder that cannot be created: one clear line, the OS error said once.
#[test]
fn an_unusable_output_folder_is_reported_once() {
    let root = tempfile::tempdir().unwrap();
    let input = input_dir(root.path());
    let blocker = root.path().join("a-file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let out = common::btda()
        .args(["run", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(blocker.join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("btda: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(line.matches("os error").count(), 1, "{line}");
}

/// A run whose database fills up (SQLite's page limit standing in for a full disk): the
/// status line says writing fails; when it keeps failing past `writer.max_stall_secs`,
/// or on Ctrl+C meanwhile, btda stops with a non-zero exit, a clear message, and a
/// database whose peer rows add up to their visit rows.
#[test]
fn a_full_database_stops_the_run_with_a_clear_error() {
    use btda::sim::{Behaviour, FakePeer};
    for (stall_secs, interrupt) in [(2, false), (600, true)] {
        let hash =
            btda::torrent::InfoHash::parse("be8df057e534fb76e0340a7445936fe58671ac84").unwrap();
        let peers: Vec<FakePeer> = (1..=20u8)
            .map(|i| {
                FakePeer::start(
                    std::net::SocketAddr::from(([127, 24, 1, i], 0)),
                    hash,
                    4,
                    1,
                    Behaviour::Bitfield,
                )
                .unwrap()
            })
            .collect();
        let (_root, input, output) = common::run_dirs_with_fixture();
        let list: Vec<String> = peers.iter().map(|p| format!("\"{}\"", p.addr)).collect();
        std::fs::write(
            input.join("btda.toml"),
            format!(
                "[dht]\nenabled = false\n[monitor]\nstatus_interval_secs = 1\n\
                 [writer]\nmax_page_count = 16\nmax_stall_secs = {stall_secs}\n\
                 [peer]\nallow_private_addresses = true\nworkers = 8\n\
                 listen_address = \"127.24.0.100\"\nlisten_port = 0\nrevisit_delay_secs = 1\n\
                 state_window_ms = 50\n\
                 [[torrents]]\ninfo_hash = \"{}\"\npeers = [{}]\n",
                hash.to_hex(),
                list.join(", ")
            ),
        )
        .unwrap();
        let (mut child, _, lines) = common::start_run(&input, &output);
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let t0 = std::time::Instant::now();
        while !seen.contains("DATABASE WRITES FAILING") {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap_or(0) == 0
                || t0.elapsed() > Duration::from_secs(60)
            {
                break;
            }
            seen.push_str(&line);
        }
        assert!(seen.contains("DATABASE WRITES FAILING"), "{seen}");
        if interrupt {
            signal(&child, "INT");
        }
        let status = wait_with_limit(&mut child, Duration::from_secs(30));
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        let summary: Vec<String> = lines.try_iter().collect();
        let summary = summary.join("\n");
        assert_eq!(status.code(), Some(2), "{summary}\n{rest}");
        assert!(
            rest.contains("the run stopped because database writes failed")
                && rest.contains("full"),
            "{rest}"
        );
        assert!(
            summary.contains("NOT ALL RECORDS WERE WRITTEN"),
            "{summary}"
        );
        let conn = rusqlite::Connection::open(database_in(&output).unwrap()).unwrap();
        common::assert_database_adds_up(&conn);
        // The summary's figures are the database's.
        let visits: i64 = conn
            .query_row("SELECT count(*) FROM visit", [], |r| r.get(0))
            .unwrap();
        assert!(
            summary.contains(&format!("visits: {visits} (")),
            "{summary}"
        );
    }
}

/// Ctrl+C during a wave of 5,000 dials: from the signal on, no connection is opened.
/// 5,000 peers on 127.24.0–19.x that close every connection after 50 ms (so each
/// worker dials again soon: ~2,500 new connections a second) are dialled by 128
/// workers; one thread accepts on every listener in passes. A connection accepted in a
/// pass was established after the previous pass began (that pass found its listener
/// empty), so one whose previous pass began after `kill` returned (plus 10 ms for the
/// handler to run) was opened after the signal, however slow the passes are.
#[test]
fn sigint_opens_no_connection_after_the_signal() {
    use std::net::{SocketAddr, TcpListener};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;
    const PEERS: usize = 5_000;
    let listeners: Vec<TcpListener> = (0..PEERS)
        .map(|i| {
            let l = TcpListener::bind(SocketAddr::from((
                [127, 24, (i / 250) as u8, (i % 250) as u8 + 1],
                0,
            )))
            .unwrap();
            l.set_nonblocking(true).unwrap();
            l
        })
        .collect();
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| format!("\"{}\"", l.local_addr().unwrap()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let acceptor = {
        let (stop, accepted) = (Arc::clone(&stop), Arc::clone(&accepted));
        std::thread::spawn(move || {
            let mut times = Vec::new();
            let mut open: std::collections::VecDeque<(Instant, std::net::TcpStream)> =
                std::collections::VecDeque::new();
            let mut previous = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let pass = Instant::now();
                for l in &listeners {
                    while let Ok((s, _)) = l.accept() {
                        // Established after the previous pass began: a lower bound.
                        times.push(previous);
                        open.push_back((Instant::now() + Duration::from_millis(50), s));
                    }
                }
                // Closed after 50 ms: the visit ends, the worker dials on.
                while open.front().is_some_and(|(at, _)| *at <= Instant::now()) {
                    open.pop_front();
                }
                accepted.store(times.len(), Ordering::Relaxed);
                previous = pass;
                std::thread::sleep(Duration::from_millis(1));
            }
            times
        })
    };
    let info = "d6:lengthi655360e4:name4:door12:piece lengthi16384e6:pieces800:".to_string()
        + &"d".repeat(800)
        + "e";
    let hash = btda::torrent::InfoHash::of_info_bytes(info.as_bytes());
    let (_root, input, output) = common::run_dirs_with_fixture();
    std::fs::remove_file(input.join("a.torrent")).unwrap();
    std::fs::write(input.join("door.torrent"), format!("d4:info{info}e")).unwrap();
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 128\n\
             listen_address = \"127.24.250.1\"\nlisten_port = 0\n\
             connect_timeout_ms = 1000\nhandshake_timeout_ms = 1000\n\
             [[torrents]]\ninfo_hash = \"{}\"\npeers = [{}]\n",
            hash.to_hex(),
            addrs.join(", ")
        ),
    )
    .unwrap();
    let (mut child, _, _lines) = common::start_run(&input, &output);
    assert!(
        common::eventually(Duration::from_secs(20), || accepted.load(Ordering::Relaxed)
            >= 1_000),
        "the wave of dials began"
    );
    signal(&child, "INT");
    let signalled = Instant::now();
    let status = wait_with_limit(&mut child, Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    let times = acceptor.join().unwrap();
    assert_eq!(status.code(), Some(0));
    let handler = Duration::from_millis(10);
    let after = times
        .iter()
        .filter(|t| t.saturating_duration_since(signalled) > handler)
        .count();
    let before = times.len() - after;
    println!("connections before the signal {before}, surely after it {after}");
    assert!((1_000..PEERS * 4).contains(&before), "{before}");
    assert_eq!(after, 0, "connections opened after the signal");
}
