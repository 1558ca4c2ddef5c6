//! `btda merge` (issue 17): runs of the same torrents from several hosts become one
//! database. Hand-made runs check the rules (a crossing seen only across hosts counts,
//! refusals); two btda instances on two loopback addresses measuring one simulated
//! swarm check the merged count against the simulator's truth.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use btda::offline::merge::{MergeError, merge};
use btda::sim::swarm::mixed_lives;

/// A visit made up for a hand-made run: started at (s), first pieces, end pieces.
type Visit = (i64, i64, i64);

/// A hand-made run database: one torrent of 100 pieces (T = 98) and the given peers,
/// each with its successful visits (started_at s, first pieces, end pieces).
fn run_db(
    dir: &Path,
    name: &str,
    host: &str,
    key_check: Option<&str>,
    threshold: i64,
    peers: &[(&str, &[Visit])],
) -> PathBuf {
    let path = dir.join(name);
    let conn = btda::store::schema::open_for_writing(&path).unwrap();
    conn.execute(
        "INSERT INTO run (id, started_at, hostname, version, config, key_check)
         VALUES (1, 1000, ?1, 'v', '', ?2)",
        rusqlite::params![host, key_check],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO torrent (id, info_hash, name, pieces_count, piece_size, total_size,
            complete_threshold, threshold, source, trackers, added_at)
         VALUES (1, 'abababababababababababababababababababab', 't', 100, 16384, 1638400, ?1,
            0.98, 'file', '[]', 1000)",
        [threshold],
    )
    .unwrap();
    for (i, (key, visits)) in peers.iter().enumerate() {
        let id = i64::try_from(i).unwrap() + 1;
        // The row as a single run makes it: crossed only when its own visits show it.
        let first = visits[0];
        let last = visits[visits.len() - 1];
        let below = visits
            .iter()
            .position(|v| v.1 < threshold || v.2 < threshold);
        let crossed = below.and_then(|b| {
            visits[b..]
                .iter()
                .find(|v| v.2 >= threshold)
                .map(|v| v.0 + 1)
        });
        conn.execute(
            "INSERT INTO peer (id, torrent_id, peer_key, source, first_seen, first_pieces,
                last_seen, last_pieces, visits, failed_visits, crossed_at)
             VALUES (?1, 1, ?2, 'tracker', ?3, ?4, ?5, ?6, ?7, 0, ?8)",
            rusqlite::params![
                id,
                key,
                first.0,
                first.1,
                last.0 + 1,
                last.2,
                i64::try_from(visits.len()).unwrap(),
                crossed
            ],
        )
        .unwrap();
        for v in *visits {
            conn.execute(
                "INSERT INTO visit (peer_id, torrent_id, started_at, direction, outcome,
                    duration_ms, pieces, state, first_pieces, first_state_ms)
                 VALUES (?1, 1, ?2, 'out', 'ok', 1200, ?3, 'bitfield', ?4, 100)",
                rusqlite::params![id, v.0, v.2, v.1],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO request (torrent_id, at, source, url, kind, ok)
             VALUES (1, 1000, 'tracker', 'udp://127.0.0.1:6969/announce', 'announce', 1)",
            [],
        )
        .unwrap();
    }
    path
}

fn confirmed(db: &Path) -> Vec<String> {
    common::column(
        &rusqlite::Connection::open(db).unwrap(),
        "SELECT peer_key FROM peer WHERE crossed_at IS NOT NULL ORDER BY peer_key",
    )
}

#[test]
fn a_crossing_seen_only_across_two_hosts_is_one_download_and_bad_merges_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Host a sees p1 at 40 pieces, p2 crossing on its own, p3 at 10; host b sees p1
    // later at 100 (below T on a, at T on b: one download), p3 earlier at 99 than a's
    // 10 (time order: no crossing), p4 only it, complete.
    let a = run_db(
        dir.path(),
        "a.sqlite",
        "host-a",
        Some("k"),
        98,
        &[
            ("p1", &[(2000, 40, 41)]),
            ("p2", &[(2000, 10, 20), (2200, 90, 100)]),
            ("p3", &[(3000, 10, 10)]),
        ],
    );
    let b = run_db(
        dir.path(),
        "b.sqlite",
        "host-b",
        Some("k"),
        98,
        &[
            ("p1", &[(2500, 100, 100)]),
            ("p3", &[(2500, 99, 99)]),
            ("p4", &[(2500, 100, 100)]),
        ],
    );
    assert_eq!(confirmed(&a), ["p2"]);
    assert!(confirmed(&b).is_empty());
    let out = dir.path().join("merged.sqlite");
    let s = merge(&out, &[a.clone(), b.clone()]).unwrap();
    assert_eq!((s.peers, s.confirmed, s.across_hosts), (4, 2, 1), "{s:?}");
    assert_eq!(confirmed(&out), ["p1", "p2"]);
    let conn = rusqlite::Connection::open(&out).unwrap();
    let (first, last, visits, crossed): (i64, i64, i64, i64) = conn
        .query_row(
            "SELECT first_pieces, last_pieces, visits, crossed_at FROM peer WHERE peer_key = 'p1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((first, last, visits, crossed), (40, 100, 2, 2500));
    // Every visit and request is kept, with the host that made it.
    let hosts: Vec<String> = common::column(
        &conn,
        "SELECT r.hostname || ' ' || count(*) FROM visit v JOIN run r ON r.id = v.run_id
         GROUP BY r.hostname ORDER BY r.hostname",
    );
    assert_eq!(hosts, ["host-a 4", "host-b 3"]);
    let requests: i64 = conn
        .query_row(
            "SELECT count(*) FROM request WHERE run_id IN (1, 2)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(requests, 6);
    // The merged database reads like a run: `btda report` names both hosts.
    let report = common::btda().arg("report").arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{text}");
    assert!(text.contains("host-a") && text.contains("host-b"), "{text}");

    // Refusals, each with its reason.
    let err = merge(&out, &[a.clone(), b.clone()]).unwrap_err();
    assert!(matches!(err, MergeError::Exists(_)), "{err}");
    let other_key = run_db(
        dir.path(),
        "c.sqlite",
        "host-c",
        Some("x"),
        98,
        &[("p1", &[(1, 1, 1)])],
    );
    let err = merge(&dir.path().join("m2.sqlite"), &[a.clone(), other_key]).unwrap_err();
    assert!(err.to_string().contains("privacy.key"), "{err}");
    let random = run_db(
        dir.path(),
        "d.sqlite",
        "host-d",
        None,
        98,
        &[("p1", &[(1, 1, 1)])],
    );
    let err = merge(&dir.path().join("m3.sqlite"), &[a.clone(), random]).unwrap_err();
    assert!(err.to_string().contains("random privacy key"), "{err}");
    let other_t = run_db(
        dir.path(),
        "e.sqlite",
        "host-e",
        Some("k"),
        90,
        &[("p1", &[(1, 1, 1)])],
    );
    let err = merge(&dir.path().join("m4.sqlite"), &[a, other_t]).unwrap_err();
    assert!(err.to_string().contains("threshold"), "{err}");
    assert_no_output(dir.path(), "m4.sqlite");
}

/// Neither OUT nor a temporary file of it is left in `dir`.
fn assert_no_output(dir: &Path, out: &str) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n == out || n.starts_with(&format!(".{out}.merging")))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A copy of `db` named `name` with `sql` applied to it.
fn altered(db: &Path, name: &str, sql: &str) -> PathBuf {
    let path = db.with_file_name(name);
    std::fs::copy(db, &path).unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
    path
}

/// The same run twice (the same file, a copy, a merged database and one of its runs,
/// two files with one run id) and absurd values are refused, each naming what, and
/// every refusal leaves no output behind.
#[test]
fn the_same_run_twice_and_absurd_values_are_refused_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let peers: &[(&str, &[Visit])] = &[("p1", &[(2000, 40, 41)]), ("p2", &[(2100, 99, 100)])];
    let a = run_db(dir.path(), "a.sqlite", "host-a", Some("k"), 98, peers);
    let b = run_db(dir.path(), "b.sqlite", "host-b", Some("k"), 98, peers);
    let refused = |inputs: &[PathBuf], out: &str| -> String {
        let err = merge(&dir.path().join(out), inputs).unwrap_err();
        assert_no_output(dir.path(), out);
        err.to_string()
    };
    let err = refused(&[a.clone(), a.clone()], "o1.sqlite");
    assert!(err.contains("same run merged twice"), "{err}");
    let copy = dir.path().join("a-copy.sqlite");
    std::fs::copy(&a, &copy).unwrap();
    let err = refused(&[a.clone(), b.clone(), copy], "o2.sqlite");
    assert!(err.contains("host host-a, started at 1000"), "{err}");
    let merged = dir.path().join("ab.sqlite");
    merge(&merged, &[a.clone(), b.clone()]).unwrap();
    let err = refused(&[merged.clone(), b.clone()], "o3.sqlite");
    assert!(err.contains("same run"), "{err}");
    // Runs with a run id: told apart by it, whatever their host and start.
    let ua = altered(&a, "ua.sqlite", "UPDATE run SET run_uid = 'u1'");
    let ub = altered(&b, "ub.sqlite", "UPDATE run SET run_uid = 'u1'");
    let err = refused(&[ua.clone(), ub], "o4.sqlite");
    assert!(err.contains("run id u1"), "{err}");
    let ub2 = altered(&a, "ub2.sqlite", "UPDATE run SET run_uid = 'u2'");
    merge(&dir.path().join("o5.sqlite"), &[ua, ub2]).expect("same host and start, two run ids");

    // Absurd values, each named.
    for (n, sql, named) in [
        (
            1,
            "UPDATE peer SET crossed_at = -1 WHERE id = 1",
            "peer row 1, crossed_at: -1",
        ),
        (
            2,
            "UPDATE peer SET visits = 9000000000000000000 WHERE id = 2",
            "peer row 2, visits: 9000000000000000000 is out of range",
        ),
        (
            3,
            "UPDATE visit SET duration_ms = 'long' WHERE id = 1",
            "visit row 1, duration_ms: text \"long\" where an integer is expected",
        ),
        (
            4,
            "UPDATE peer SET latitude = 500.0",
            "peer row 1, latitude: 500 is out of range",
        ),
    ] {
        let bad = altered(&b, &format!("bad{n}.sqlite"), sql);
        let err = refused(&[a.clone(), bad], &format!("bad-out{n}.sqlite"));
        assert!(err.contains(named) && err.contains("bad"), "{err}");
    }
}

/// Runs big enough for a merge that takes a while: `peers` peers of 4 visits each.
fn big_run_db(dir: &Path, name: &str, host: &str, peers: i64) -> PathBuf {
    let path = run_db(dir, name, host, Some("k"), 98, &[]);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "BEGIN;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {peers})
             INSERT INTO peer (id, torrent_id, peer_key, source, first_seen, first_pieces,
                last_seen, last_pieces, visits, failed_visits)
             SELECT i, 1, 'k' || i, 'tracker', 2000, 10, 2400, 50, 4, 0 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {peers} * 4)
             INSERT INTO visit (peer_id, torrent_id, started_at, direction, outcome, duration_ms,
                pieces, state, first_pieces, first_state_ms)
             SELECT (i + 3) / 4, 1, 2000 + i % 4 * 100, 'out', 'ok', 1200, 10 + i % 4 * 10,
                'bitfield', 10 + i % 4 * 10, 100 FROM n;
             COMMIT;"
        ))
        .unwrap();
    path
}

/// A merge killed (SIGKILL at 10, 50 and 90 % of its time) or interrupted (SIGINT)
/// leaves no OUT, and the rerun works.
#[test]
fn a_killed_or_interrupted_merge_leaves_no_output_and_the_rerun_works() {
    let dir = tempfile::tempdir().unwrap();
    let a = big_run_db(dir.path(), "a.sqlite", "host-a", 10_000);
    let b = big_run_db(dir.path(), "b.sqlite", "host-b", 10_000);
    let out = dir.path().join("m.sqlite");
    let run = || {
        common::btda()
            .arg("merge")
            .arg(&out)
            .args([&a, &b])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let started = std::time::Instant::now();
    assert!(run().wait().unwrap().success());
    let full = started.elapsed();
    std::fs::remove_file(&out).unwrap();
    println!("a whole merge: {full:?}");
    // A merge that ended before its signal (this machine's speed varies) must have
    // left a complete OUT; at least two of the four signals must land mid-merge.
    let mut interrupted = 0;
    for (signal, share) in [("KILL", 0.1), ("KILL", 0.5), ("KILL", 0.9), ("INT", 0.5)] {
        let mut child = run();
        std::thread::sleep(full.mul_f64(share));
        let killed = std::process::Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        if killed.success() && !status.success() {
            interrupted += 1;
            assert!(!out.exists(), "{signal} at {share} left OUT behind");
        } else {
            assert_eq!(peers_in(&out), 10_000, "{signal} at {share}: a whole OUT");
            std::fs::remove_file(&out).unwrap();
        }
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} signals landed mid-merge"
    );
    assert!(run().wait().unwrap().success(), "the rerun works");
    assert_eq!(peers_in(&out), 10_000);
}

/// Peers in a merged database.
fn peers_in(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM peer", [], |r| r.get(0))
        .unwrap()
}

const KEY: &str = "0505050505050505050505050505050505050505050505050505050505050505";
const PIECES: u32 = 100;
const SPAN_MS: u64 = 16_000;

#[test]
fn two_vantage_points_merged_count_the_simulated_truth() {
    let info = common::sim_info("merge", 'm', PIECES);
    let lives = mixed_lives(Ipv4Addr::new(127, 86, 0, 1), 140, PIECES, SPAN_MS);
    // Host b measures the whole time and is the one NAT-like peers dial; host a, on
    // another address, only the first 60 %.
    let a: SocketAddr = "127.87.0.2:16871".parse().unwrap();
    let b: SocketAddr = "127.87.0.3:16872".parse().unwrap();
    let options = common::compressed(b, vec![a, b]);
    let (swarm, _, torrent) = common::start_sim(
        &info,
        lives.clone(),
        PIECES,
        options,
        "127.85.0.1",
        "127.84.0.1",
    );
    let router = swarm.dht_router.unwrap();
    let config = |listen| common::sim_config(listen, router, 128, (800, 2_000), KEY, "");
    let (t2, c2) = (torrent.clone(), config(a));
    let host_a = std::thread::spawn(move || common::measure(&t2, &c2, SPAN_MS * 6 / 10));
    let (_keep_b, db_b) = common::measure(&torrent, &config(b), SPAN_MS - 1_000);
    let (_keep_a, db_a) = host_a.join().unwrap();
    let ended_ms = swarm.reactor.now_ms();

    let out = tempfile::tempdir().unwrap();
    let merged_db = out.path().join("merged.sqlite");
    let status = common::btda()
        .arg("merge")
        .arg(&merged_db)
        .arg(&db_a)
        .arg(&db_b)
        .status()
        .unwrap();
    assert!(status.success());

    let keyer = common::keyer(KEY);
    let (in_a, in_b, merged) = (
        common::crossed_by_key(&db_a),
        common::crossed_by_key(&db_b),
        common::crossed_by_key(&merged_db),
    );
    let count = |m: &HashMap<String, bool>| m.values().filter(|c| **c).count();
    let judged = common::judge(&swarm, &lives, &merged, &keyer, PIECES, 1_000, ended_ms);
    let truth = judged.must;
    println!(
        "truth {truth}; host a {}, host b {}, merged {}",
        count(&in_a),
        count(&in_b),
        count(&merged)
    );
    assert!(truth >= 10, "a swarm with something to count: {truth}");
    assert!(judged.false_confirmed.is_empty(), "{judged:#?}");
    assert!(judged.missed.is_empty(), "{judged:#?}");
    assert!(count(&merged) >= count(&in_a).max(count(&in_b)));
    // How each merged crossing was witnessed is carried over (or, for a crossing seen
    // across hosts, taken from the visit whose observation crossed).
    let report = btda::offline::report::read(&merged_db).unwrap();
    for t in &report.torrents {
        let w = t.witnessed.clone().unwrap();
        assert_eq!(w.total(), t.confirmed, "{w:?}");
    }

    // `make stats` reads the merged database and names its runs' hosts.
    let stats = std::process::Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-s", "stats"])
        .arg(format!("DB={}", merged_db.display()))
        .output()
        .unwrap();
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let report = std::process::Command::new("pdftotext")
        .arg(merged_db.with_extension("").join("report.pdf"))
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("Merged from 2 runs"), "{text}");
}
