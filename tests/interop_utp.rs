//! uTP (BEP 29) against real clients on loopback: a libtorrent seeder and a
//! rate-limited libtorrent leecher with TCP disabled (uTP only, in and out; the leecher
//! also requires encryption), and a Transmission seeder with uTP on. btda
//! (`peer.transport = "utp"`) visits all three over uTP — the leecher with MSE after
//! it refused plaintext —, the leecher also dials btda over uTP with MSE (incoming),
//! and btda confirms the leecher's download exactly once.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SEEDER: &str = "127.36.0.1:51801";
const LEECHER: &str = "127.36.0.2:51802";
const BTDA: &str = "127.36.0.3:51803";
const TRANSMISSION: &str = "127.36.0.4:51804";
const TRANSMISSION_RPC: &str = "127.36.0.4:51805";
/// Pieces of 16 KiB: the leecher takes about 16 s at 16 KiB/s.
const PIECES: i64 = 16;

fn rows(db: &Path, sql: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c.prepare(sql).unwrap();
    s.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn btda_visits_utp_only_libtorrent_and_transmission_over_utp_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("seed");
    let made = Command::new("/usr/bin/python3")
        .arg(common::lt_peer_script())
        .args(["make", "--dir", content.to_str().unwrap()])
        .args(["--pieces", &PIECES.to_string()])
        .output()
        .expect("python3-libtorrent");
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).expect("JSON");
    let hash = made["hash"].as_str().unwrap().to_string();
    let torrent = made["torrent"].as_str().unwrap().to_string();
    let (_seeder, seeder_lines) = common::lt_peer(
        None,
        &[
            "seed",
            "--torrent",
            &torrent,
            "--save",
            content.to_str().unwrap(),
            "--listen",
            SEEDER,
            "--utp-only",
        ],
    );
    let leech = dir.path().join("leech");
    let (_leecher, leecher_lines) = common::lt_peer(
        None,
        &[
            "leech",
            "--torrent",
            &torrent,
            "--save",
            leech.to_str().unwrap(),
            "--listen",
            LEECHER,
            "--rate",
            "16384",
            "--connect",
            &format!("{SEEDER},{BTDA}"),
            "--utp-only",
            "--encryption",
            "forced",
        ],
    );
    assert!(seeder_lines.recv_timeout(Duration::from_secs(20)).is_ok());
    let _transmission = common::start_transmission(
        dir.path(),
        TRANSMISSION,
        TRANSMISSION_RPC,
        &content,
        Path::new(&torrent),
        &[("utp-enabled", serde_json::json!(true))],
    );

    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(&torrent, input.join("utp.torrent")).unwrap();
    let (ip, port) = BTDA.split_once(':').unwrap();
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 4\n\
             listen_address = \"{ip}\"\nlisten_port = {port}\ntransport = \"utp\"\n\
             revisit_delay_secs = 2\nstate_window_ms = 300\nretry_backoff_secs = [1, 2, 5]\n\
             [[torrents]]\ninfo_hash = \"{hash}\"\npeers = [\"{SEEDER}\", \"{LEECHER}\", \"{TRANSMISSION}\"]\n"
        ),
    )
    .unwrap();
    let output = dir.path().join("output");
    let (mut btda, _, _lines) = common::start_run(&input, &output);
    let db = common::database_in(&output).unwrap();
    let (mut pieces, start) = (0i64, Instant::now());
    let mut done_at = None;
    while start.elapsed() < Duration::from_secs(120) {
        while let Ok(line) = leecher_lines.try_recv() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                pieces = v["pieces"].as_i64().unwrap_or(pieces);
            }
        }
        if pieces >= PIECES && done_at.is_none() {
            done_at = Some(Instant::now());
        }
        if done_at.is_some_and(|t| t.elapsed() > Duration::from_secs(6)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    common::interrupt_and_wait(&mut btda);
    let visits = rows(
        &db,
        "SELECT coalesce(p.client, '?') || ' ' || v.direction || ' ' || v.outcome || ' ' || \
         coalesce(v.transport, '-') || ' ' || coalesce(v.pieces, -1) \
         FROM visit v LEFT JOIN peer p ON p.id = v.peer_id ORDER BY v.id",
    );
    let explain = format!("leecher at {pieces}\n{}", visits.join("\n"));
    assert_eq!(pieces, PIECES, "the leecher finished\n{explain}");
    let c = rusqlite::Connection::open(&db).unwrap();
    let one = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(
        one("SELECT count(*) FROM confirmed_download"),
        1,
        "{explain}"
    );
    assert_eq!(one("SELECT count(*) FROM visit WHERE transport = 'tcp'"), 0);
    // Every client answered over uTP; the seeders complete, the leecher seen growing.
    let answered = rows(
        &db,
        "SELECT DISTINCT coalesce(p.client, '?') || ' ' || v.direction FROM visit v \
         JOIN peer p ON p.id = v.peer_id WHERE v.outcome = 'ok' AND v.transport = 'utp'",
    );
    assert!(
        answered.iter().any(|a| a.starts_with("Transmission out")),
        "{explain}"
    );
    assert!(
        answered
            .iter()
            .any(|a| a.starts_with("libtorrent") && a.ends_with(" out")),
        "{explain}"
    );
    assert!(
        answered
            .iter()
            .any(|a| a.starts_with("libtorrent") && a.ends_with(" in")),
        "the uTP-only leecher's own connection in\n{explain}"
    );
    // MSE over uTP, both ways: the leecher accepts nothing else.
    let encrypted = rows(
        &db,
        "SELECT DISTINCT v.direction FROM visit v JOIN peer p ON p.id = v.peer_id \
         WHERE v.outcome = 'ok' AND v.transport = 'utp' AND v.encryption = 'rc4' \
         AND p.crossed_at IS NOT NULL",
    );
    assert_eq!(
        encrypted.len(),
        2,
        "MSE over uTP out and in: {encrypted:?}\n{explain}"
    );
    let complete = one(&format!(
        "SELECT count(*) FROM peer WHERE crossed_at IS NOT NULL OR last_pieces = {PIECES}"
    ));
    assert_eq!(
        complete, 3,
        "two seeders and the finished leecher\n{explain}"
    );
}
