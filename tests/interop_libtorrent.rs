//! Interop with a real client: Debian's python3-libtorrent runs a seeder and a
//! rate-limited leecher on 127.31.0.x (DHT, LSD, UPnP, NAT-PMP off); `btda run` is
//! given both addresses and must record the seeder as complete, the leecher's growing
//! piece counts, and exactly one confirmed download.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::wait_with_limit;

const SEEDER: &str = "127.31.0.1:51501";
const LEECHER: &str = "127.31.0.2:51502";

#[test]
fn btda_follows_a_libtorrent_leecher_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_swarm.py");
    let mut swarm = Command::new("/usr/bin/python3")
        .arg(&script)
        .args([
            "--dir",
            dir.path().to_str().unwrap(),
            "--seeder",
            SEEDER,
            "--leecher",
            LEECHER,
        ])
        .args(["--rate", "32768", "--max-seconds", "240"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3-libtorrent is installed by `make deps`");
    let mut out = BufReader::new(swarm.stdout.take().unwrap()).lines();
    let ready: serde_json::Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
    let hash = ready["ready"].as_str().unwrap().to_string();
    let pieces = ready["pieces"].as_i64().unwrap();
    assert_eq!(pieces, 64);
    // libtorrent closes connections while its torrents are still starting: begin once
    // the leecher is connected to the seeder (btda's backoff would cover it, slowly).
    let mut early = Vec::new();
    for line in out.by_ref().map_while(Result::ok) {
        let connected = line.contains("\"leecher_peers\": 1");
        early.push(line);
        if connected {
            break;
        }
    }
    // Keep the client's own progress for the report at the end.
    let progress = std::thread::spawn(move || {
        early
            .into_iter()
            .chain(out.map_while(Result::ok))
            .collect::<Vec<String>>()
    });

    let input = dir.path().join("input");
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 4\nlisten_address = \"127.31.0.3\"\nlisten_port = 0\n\
             revisit_delay_secs = 2\nstate_window_ms = 300\nretry_backoff_secs = [1, 2, 5]\n\
             [[torrents]]\ninfo_hash = \"{hash}\"\npeers = [\"{SEEDER}\", \"{LEECHER}\"]\n"
        ),
    )
    .unwrap();
    let output = dir.path().join("output");
    let (mut btda, _, _lines) = common::start_run(&input, &output);
    let db = common::database_in(&output).unwrap();

    // The download takes about 30 s at 32 KiB/s; wait for btda to see it complete.
    let start = Instant::now();
    let confirmed = loop {
        let n =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| {
                    c.query_row("SELECT count(*) FROM confirmed_download", [], |r| {
                        r.get::<_, i64>(0)
                    })
                })
                .unwrap_or(0);
        if n > 0 || start.elapsed() > Duration::from_secs(150) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    common::interrupt_and_wait(&mut btda);
    drop(swarm.stdin.take()); // closing stdin stops the swarm
    let _ = wait_with_limit(&mut swarm, Duration::from_secs(30));
    let client_progress = progress.join().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let seen: Vec<String> = common::column(
        &conn,
        "SELECT ifnull(peer_id, '-') || ' ' || outcome || ' ' || ifnull(pieces, '-') || ' ' || ifnull(state, '-') FROM visit ORDER BY id",
    );
    assert_eq!(
        confirmed,
        1,
        "no confirmed download.\nbtda saw:\n{}\nthe client said:\n{}",
        seen.join("\n"),
        client_progress.join("\n")
    );

    let rows: Vec<(String, i64, i64, i64, String, String)> = conn
        .prepare(
            "SELECT p.peer_key, p.first_pieces, p.last_pieces, p.visits, p.client, p.client_version FROM peer p ORDER BY p.first_pieces DESC",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (seeder, leecher) = (&rows[0], &rows[1]);
    assert_eq!(
        (seeder.1, seeder.2, seeder.3),
        (64, 64, 1),
        "seeder complete at the first visit"
    );
    assert!(leecher.1 < 63 && leecher.2 == 64, "leecher {leecher:?}");
    for r in &rows {
        assert_eq!(
            (r.4.as_str(), r.5.as_str()),
            ("libtorrent (Rasterbar)", "2.0.8")
        );
    }
    // Growing piece counts, never decreasing, seen over several visits.
    let counts: Vec<i64> = conn
        .prepare(
            "SELECT v.pieces FROM visit v JOIN peer p ON p.id = v.peer_id
             WHERE p.peer_key = ?1 AND v.outcome = 'ok' ORDER BY v.id",
        )
        .unwrap()
        .query_map([&leecher.0], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    let mut distinct = counts.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 3,
        "leecher progress seen in steps: {counts:?}"
    );
}
