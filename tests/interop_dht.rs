//! DHT interop with real libtorrent DHT nodes (python3-libtorrent, DHT on, LSD/UPnP/
//! NAT-PMP off, loopback restrictions off) on 127.35.0.x. They bootstrap to each other
//! and to a btda DHT node on 127.35.0.100 (bootstrapped only to each other, libtorrent
//! 2.0.8's nodes on one /24 were seen to keep empty tables); a libtorrent seeder
//! announces only to the DHT.
//! `btda run`, bootstrapped to the same node, must find the seeder and see it complete (by
//! its own dial or the seeder's uTP dial in), and a libtorrent lookup must find btda's announce.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use btda::dht::node::{DhtNode, NodeSettings};
use btda::run::Shutdown;
use common::{signal, wait_with_limit};

#[test]
fn btda_and_libtorrent_find_each_other_on_the_dht() {
    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/interop")
            .join(name)
    };
    let hashed = Command::new("/usr/bin/python3")
        .arg(script("lt_swarm.py"))
        .args([
            "--dir",
            dir.path().to_str().unwrap(),
            "--seeder",
            "127.35.0.2:51700",
            "--leecher",
            "127.0.0.1:1",
            "--hash-only",
        ])
        .output()
        .expect("python3-libtorrent is installed by `make deps`");
    let ready: serde_json::Value = serde_json::from_slice(&hashed.stdout).unwrap();
    let hash = ready["ready"].as_str().unwrap().to_string();

    let stop = Shutdown::new();
    let settings = NodeSettings {
        alpha: 3,
        query_timeout: Duration::from_millis(500),
        max_queries: 100,
        rate_per_sec: 500,
    };
    let hub = DhtNode::start(
        "127.35.0.100:16890".parse().unwrap(),
        rand::random(),
        &[],
        settings,
        stop.clone(),
    )
    .unwrap();

    let mut lt = Command::new("/usr/bin/python3")
        .arg(script("lt_dht.py"))
        .args([
            "--torrent",
            ready["torrent"].as_str().unwrap(),
            "--seed-dir",
        ])
        .arg(dir.path().join("seed"))
        .args(["--extra", "127.35.0.100:16890", "--max-seconds", "120"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = common::stdout_lines(&mut lt);

    let input = dir.path().join("input");
    std::fs::write(
        input.join("btda.toml"),
        "[peer]\nallow_private_addresses = true\nworkers = 2\nlisten_address = \"127.35.0.101\"\nlisten_port = 16891\n\
         retry_backoff_secs = [2, 5, 10]\ntransient_retry_secs = 2\n\
         [dht]\nlisten_address = \"127.35.0.101\"\nport = 16892\nbootstrap = [\"127.35.0.100:16890\"]\n\
         interval_secs = 2\nquery_timeout_ms = 500\n",
    )
    .unwrap();
    let output = dir.path().join("output");
    let (mut btda, _, _l) = common::start_run(&input, &output);

    // libtorrent finds btda's announce (127.35.0.101:16891)…
    let ours = "127.35.0.101:16891";
    let start = Instant::now();
    let mut seen_by_lt = false;
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(60) && !seen_by_lt {
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
            seen_by_lt = line.contains(ours);
            last = line;
        }
    }
    // …and btda finds the libtorrent seeder (127.35.0.2:51700) in its lookups and sees it
    // complete. Who connects first is a race: libtorrent also found btda's announce and,
    // now that btda speaks uTP, its uTP-first dial usually gets in before btda's own (the
    // seeder's row then has source `incoming`, and btda does not dial a peer it already
    // saw complete).
    let db = common::database_in(&output).unwrap();
    let seeder_visited = common::eventually(Duration::from_secs(60), || {
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.query_row(
                    "SELECT (SELECT count(*) FROM peer WHERE source IN ('dht', 'incoming')
                               AND last_pieces = 64)
                          * (SELECT count(*) FROM request WHERE source = 'dht'
                               AND received_peers >= 1)",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .is_ok_and(|n| n >= 1)
    });
    signal(&btda, "INT");
    let _ = wait_with_limit(&mut btda, Duration::from_secs(30));
    if let Ok(c) = rusqlite::Connection::open(&db) {
        let rows: Vec<String> = common::column(
            &c,
            "SELECT ok || ' q=' || nodes_queried || ' a=' || nodes_announced || ' peers=' || received_peers FROM request WHERE source = 'dht'",
        );
        eprintln!("btda DHT lookups: {rows:?}");
        let visits: Vec<String> = common::column(
            &c,
            "SELECT k || ' ' || count(*) FROM (SELECT ifnull(p.source, '-') || ' ' || \
             v.direction || ' ' || v.outcome || ' ' || ifnull(v.pieces, -1) AS k FROM visit v \
             LEFT JOIN peer p ON p.id = v.peer_id) GROUP BY k",
        );
        eprintln!("btda visits (source direction outcome pieces count): {visits:?}");
    }
    drop(lt.stdin.take());
    let _ = wait_with_limit(&mut lt, Duration::from_secs(20));
    stop.request();
    hub.join();
    assert!(
        seen_by_lt,
        "libtorrent never found btda's announce; last status: {last}"
    );
    assert!(
        seeder_visited,
        "btda never found the libtorrent seeder on the DHT and saw it complete"
    );
    assert!(!hash.is_empty());
}
