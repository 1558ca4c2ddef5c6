//! A loopback swarm of real clients from Debian, measured by `btda run`: opentracker
//! (HTTP and UDP) on 127.0.0.20, a transmission-daemon seeder on 127.0.0.1, two
//! python3-libtorrent leechers on 127.0.0.22 and .23 (the second wants only the first
//! half of the pieces, so it stops at about half and stays), and an aria2 leecher on
//! 127.0.0.24. Every leecher is rate-limited so its download takes about a minute; DHT,
//! LSD, UPnP, NAT-PMP and peer exchange are off; each is stopped by PID.
//!
//! btda must see the seeder complete, record growing piece counts for each leecher,
//! confirm the two that finish and not the partial one, record the tracker's scrape
//! figures, and every piece count it recorded must agree with the client's own progress
//! (libtorrent's status, aria2's and Transmission's RPC) at the time of the visit.
//!
//! Transmission announces from 127.0.0.1 (it cannot bind its tracker requests), so it
//! is the client that owns 127.0.0.1. btda has its own address (listen and outgoing
//! source), as a measuring host does; libtorrent keeps its default of one connection
//! per IP, and btda must not appear among the peers it counts.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Reaped;
use parking_lot::Mutex;

const KEY: &str = "0303030303030303030303030303030303030303030303030303030303030303";
const TRACKER_IP: &str = "127.0.0.20";
const TRACKER_PORT: u16 = 16970;
const SEEDER: &str = "127.0.0.1:16913";
const SEEDER_RPC: &str = "127.0.0.1:16914";
const LT_FULL: &str = "127.0.0.22:16922";
const LT_HALF: &str = "127.0.0.23:16923";
const ARIA: &str = "127.0.0.24:16924";
const ARIA_RPC_PORT: u16 = 16925;
const BTDA: &str = "127.0.0.30:16930";
const PIECE: u64 = 16 * 1024;
const PIECES: u64 = 192;
/// Each leecher's download limit, bytes/s: 192 pieces of 16 KiB take about 75 s.
const RATE: u64 = 40 * 1024;

/// Samples of one client's own progress: (unix seconds, pieces).
type Progress = Arc<Mutex<Vec<(f64, u64)>>>;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// aria2, bound to its own address, its progress read every 0.3 s over JSON-RPC
/// (`bitfield` of `aria2.tellActive`).
fn start_aria2(dir: &Path, torrent: &Path, progress: Progress) -> Reaped {
    let (ip, port) = ARIA.split_once(':').unwrap();
    let child = Command::new("aria2c")
        .arg(format!("--interface={ip}"))
        .arg(format!("--listen-port={port}"))
        .arg(format!("--max-download-limit={RATE}"))
        .args([
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--disable-ipv6=true",
            "--seed-ratio=0.0",
            "--enable-rpc=true",
            "--rpc-listen-all=false",
            "--quiet=true",
            "--file-allocation=none",
            "--bt-tracker-interval=5",
        ])
        .arg(format!("--rpc-listen-port={ARIA_RPC_PORT}"))
        .arg(format!("--dir={}", dir.display()))
        .arg(torrent)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aria2 is installed by `make deps`");
    let aria = Reaped(child);
    std::thread::spawn(move || {
        let url = format!("http://127.0.0.1:{ARIA_RPC_PORT}/jsonrpc");
        let body = r#"{"jsonrpc":"2.0","id":"1","method":"aria2.tellActive","params":[["bitfield","numPieces"]]}"#;
        let deadline = Instant::now() + Duration::from_secs(400);
        while Instant::now() < deadline {
            let reply = attohttpc::post(&url)
                .header("Content-Type", "application/json")
                .text(body)
                .timeout(Duration::from_secs(2))
                .send()
                .and_then(attohttpc::Response::text);
            if let Ok(text) = reply
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(bits) = v["result"][0]["bitfield"].as_str()
            {
                let have: u64 = bits
                    .chars()
                    .filter_map(|c| c.to_digit(16))
                    .map(|d| u64::from(d.count_ones()))
                    .sum();
                progress.lock().push((unix_now(), have));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    aria
}

/// The client's progress around a visit: the last sample at or before `from` and the
/// first at or after `to` (samples only grow).
fn bounds(samples: &[(f64, u64)], from: f64, to: f64) -> (u64, u64) {
    let low = samples
        .iter()
        .filter(|s| s.0 <= from)
        .map(|s| s.1)
        .next_back()
        .unwrap_or(0);
    let high = samples
        .iter()
        .find(|s| s.0 >= to)
        .or(samples.last())
        .map_or(u64::MAX, |s| s.1);
    (low, high)
}

#[test]
fn btda_measures_a_swarm_of_real_clients() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    // The content, the torrent (announce = opentracker) and the seeder's copy.
    let tracker_url = format!("http://{TRACKER_IP}:{TRACKER_PORT}/announce");
    let made = Command::new("/usr/bin/python3")
        .arg(script("lt_swarm.py"))
        .args(["--dir", dir.to_str().unwrap(), "--hash-only"])
        .args([
            "--size",
            &(PIECE * PIECES).to_string(),
            "--tracker",
            &tracker_url,
        ])
        .args(["--seeder", "127.0.0.1:1", "--leecher", "127.0.0.1:2"])
        .output()
        .expect("python3-libtorrent is installed by `make deps`");
    let ready: serde_json::Value =
        serde_json::from_slice(&made.stdout).unwrap_or_else(|e| panic!("{e}: {made:?}"));
    let hash = btda::torrent::InfoHash::parse(ready["ready"].as_str().unwrap()).unwrap();
    assert_eq!(ready["pieces"].as_u64(), Some(PIECES));
    let torrent = PathBuf::from(ready["torrent"].as_str().unwrap());

    let _tracker = common::start_opentracker(TRACKER_IP, TRACKER_PORT, &[hash]);
    let _seeder =
        common::start_transmission(dir, SEEDER, SEEDER_RPC, &dir.join("seed"), &torrent, &[]);

    // The libtorrent leechers, their own progress kept as they print it.
    let lt_full: Progress = Arc::default();
    let lt_half: Progress = Arc::default();
    let mut leechers = Command::new("/usr/bin/python3")
        .arg(script("lt_leechers.py"))
        .args(["--torrent", torrent.to_str().unwrap()])
        .args(["--dir", dir.to_str().unwrap()])
        .args(["--full", LT_FULL, "--half", LT_HALF])
        .args(["--rate", &RATE.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = leechers.stdout.take().unwrap();
    let _leechers = Reaped(leechers);
    {
        let (full, half) = (Arc::clone(&lt_full), Arc::clone(&lt_half));
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let t = v["t"].as_f64().unwrap_or_default();
                full.lock()
                    .push((t, v["full"].as_u64().unwrap_or_default()));
                half.lock()
                    .push((t, v["half"].as_u64().unwrap_or_default()));
            }
        });
    }
    let aria: Progress = Arc::default();
    let aria_dir = dir.join("aria");
    std::fs::create_dir_all(&aria_dir).unwrap();
    let _aria = start_aria2(&aria_dir, &torrent, Arc::clone(&aria));

    // btda, with a short revisit delay and visit cap.
    let input = dir.join("input");
    let output = dir.join("output");
    let (btda_ip, btda_port) = BTDA.split_once(':').unwrap();
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 8\nlisten_address = \"{btda_ip}\"\nlisten_port = {btda_port}\n\
             revisit_delay_secs = 3\nstate_window_ms = 500\nvisit_cap_ms = 3000\nretry_backoff_secs = [2, 2, 4, 8]\n\
             [tracker]\ninterval_secs = 5\nmax_min_interval_secs = 5\nscrape_interval_secs = 5\nstopped_timeout_ms = 1000\n\
             [privacy]\nkey = \"{KEY}\"\n"
        ),
    )
    .unwrap();
    let (mut btda, _, _lines) = common::start_run(&input, &output);

    let half = PIECES / 2;
    let last = |p: &Progress| p.lock().last().map_or(0, |s| s.1);
    let done = common::eventually(Duration::from_secs(240), || {
        last(&lt_full) == PIECES && last(&aria) == PIECES && last(&lt_half) >= half
    });
    // Time for btda to revisit the ones that just finished.
    std::thread::sleep(Duration::from_secs(8));
    common::interrupt_and_wait(&mut btda);
    assert!(
        done,
        "the clients did not finish: libtorrent {} and {} (half), aria2 {} of {PIECES}",
        last(&lt_full),
        last(&lt_half),
        last(&aria)
    );

    let keyer = common::keyer(KEY);
    let conn = rusqlite::Connection::open(common::database_in(&output).unwrap()).unwrap();
    let peers: HashMap<String, (i64, i64, i64, Option<i64>)> = conn
        .prepare("SELECT peer_key, id, first_pieces, last_pieces, crossed_at FROM peer")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let row = |addr: &str| {
        let key = keyer.key(&addr.parse().unwrap());
        *peers
            .get(&key)
            .unwrap_or_else(|| panic!("no peer row for {addr}: {peers:?}"))
    };

    // The seeder is seen complete.
    let seeder = row(SEEDER);
    assert_eq!(
        seeder.2,
        PIECES.cast_signed(),
        "Transmission seeder: {seeder:?}"
    );
    assert_eq!(common::transmission_percent(SEEDER_RPC), Some(100.0));

    // Each leecher: growing counts that agree with its own progress; confirmed iff it
    // finished.
    let mut report = Vec::new();
    for (addr, progress, finishes) in [
        (LT_FULL, &lt_full, true),
        (LT_HALF, &lt_half, false),
        (ARIA, &aria, true),
    ] {
        let (id, _first, _last, crossed) = row(addr);
        let visits: Vec<(i64, i64, i64, String)> = conn
            .prepare(
                "SELECT started_at, coalesce(duration_ms, 0), pieces, direction FROM visit \
                 WHERE peer_id = ?1 AND outcome = 'ok' AND pieces IS NOT NULL ORDER BY started_at, id",
            )
            .unwrap()
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let samples = progress.lock().clone();
        let counts: Vec<i64> = visits.iter().map(|v| v.2).collect();
        report.push(format!("{addr}: visits {counts:?}, crossed {crossed:?}"));
        let distinct: std::collections::BTreeSet<i64> = counts.iter().copied().collect();
        assert!(
            distinct.len() >= 3,
            "{addr}: piece counts do not grow: {counts:?}"
        );
        for (started, duration, pieces, direction) in &visits {
            // started_at is whole seconds: allow one second either side.
            let from = *started as f64 - 1.0;
            let to = *started as f64 + *duration as f64 / 1000.0 + 1.0;
            let (low, high) = bounds(&samples, from, to);
            assert!(
                (low.cast_signed()..=high.cast_signed()).contains(pieces),
                "{addr}: {direction} visit at {started} (+{duration} ms) recorded {pieces} pieces; \
                 the client reported {low}..={high} around it"
            );
        }
        assert_eq!(crossed.is_some(), finishes, "{addr}: {report:?}");
    }
    println!("{}", report.join("\n"));
    let confirmed: i64 = conn
        .query_row("SELECT count(*) FROM confirmed_download", [], |r| r.get(0))
        .unwrap();
    assert_eq!(confirmed, 2, "{report:?}");

    // btda, on its own 127.x source address, never counted itself: opentracker lists it,
    // and it was skipped as ours.
    let btda_rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM peer WHERE client_v LIKE 'btda%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let (own, selfs): (Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT max(own_addresses_skipped), max(self_connections) FROM statistic",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    println!("btda rows {btda_rows}, own address skipped {own:?}, self connections {selfs:?}");
    assert_eq!(btda_rows, 0, "no peer row for btda itself");
    assert_eq!(selfs, Some(0), "btda never connected to itself");

    // opentracker's scrape figures are recorded.
    let scrapes: Vec<(i64, i64, Option<i64>)> = conn
        .prepare(
            "SELECT seeders, leechers, completed FROM request \
             WHERE source = 'tracker' AND kind = 'scrape' AND ok = 1 ORDER BY at",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    println!("scrapes (seeders, leechers, completed): {scrapes:?}");
    assert!(scrapes.len() >= 2, "{scrapes:?}");
    let end = *scrapes.last().unwrap();
    assert!(
        end.0 >= 3,
        "the seeder and the finished leechers are seeders: {scrapes:?}"
    );
    assert_eq!(
        end.2,
        Some(confirmed),
        "the tracker's completed count agrees with btda: {scrapes:?}"
    );
}
