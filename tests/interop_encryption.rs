//! Interop with real clients that require encryption: a python3-libtorrent seeder and a
//! rate-limited leecher with `out_enc_policy` and `in_enc_policy` forced and
//! `allowed_enc_level` RC4 (127.33.0.1 and .2), and a transmission-daemon seeder with
//! `encryption` 2 ("required", 127.33.0.5); DHT, LSD, UPnP, NAT-PMP and PEX off.
//!
//! `btda run` with the default policy (`fallback`) must reach all three with MSE, read
//! the leecher's own encrypted connections to btda's listener, and confirm the leecher
//! exactly once when it finishes. A second btda with `encryption = "plaintext"` is then
//! refused by every one of them: the difference MSE makes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::wait_with_limit;

const SEEDER: &str = "127.33.0.1:51601";
const LEECHER: &str = "127.33.0.2:51602";
const BTDA: &str = "127.33.0.3:51603";
const BTDA_PLAIN: &str = "127.33.0.4";
const TRANSMISSION: &str = "127.33.0.5:51605";
const TRANSMISSION_RPC: &str = "127.33.0.5:51606";

fn config(hash: &str, listen: &str, port: u16, encryption: &str) -> String {
    format!(
        "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 4\n\
         listen_address = \"{listen}\"\nlisten_port = {port}\nencryption = \"{encryption}\"\n\
         revisit_delay_secs = 2\nstate_window_ms = 300\nretry_backoff_secs = [1, 2, 5]\n\
         [[torrents]]\ninfo_hash = \"{hash}\"\n\
         peers = [\"{SEEDER}\", \"{LEECHER}\", \"{TRANSMISSION}\"]\n"
    )
}

fn read_only(db: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn count(db: &Path, sql: &str) -> i64 {
    read_only(db).query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

#[test]
fn btda_reaches_clients_that_require_encryption_and_a_plaintext_btda_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_swarm.py");
    let mut swarm = Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["--dir", dir.path().to_str().unwrap()])
        .args(["--seeder", SEEDER, "--leecher", LEECHER, "--connect", BTDA])
        .args([
            "--encryption",
            "forced",
            "--rate",
            "32768",
            "--max-seconds",
            "240",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3-libtorrent is installed by `make deps`");
    let mut out = BufReader::new(swarm.stdout.take().unwrap()).lines();
    let ready: serde_json::Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
    let hash = ready["ready"].as_str().unwrap().to_string();
    let torrent = ready["torrent"].as_str().unwrap().to_string();
    // Wait until the two libtorrent clients talk (both forced: encrypted).
    for line in out.by_ref().map_while(Result::ok) {
        if line.contains("\"leecher_peers\": 1") {
            break;
        }
    }
    let drain = std::thread::spawn(move || out.map_while(Result::ok).count());
    let _transmission = common::start_transmission(
        dir.path(),
        TRANSMISSION,
        TRANSMISSION_RPC,
        &dir.path().join("seed"),
        Path::new(&torrent),
        &[("encryption", serde_json::json!(2))],
    );

    let input = dir.path().join("input");
    let (ip, port) = BTDA.split_once(':').unwrap();
    std::fs::write(
        input.join("btda.toml"),
        config(&hash, ip, port.parse().unwrap(), "fallback"),
    )
    .unwrap();
    let output = dir.path().join("output");
    let (mut btda, _, _lines) = common::start_run(&input, &output);
    let db = common::database_in(&output).unwrap();
    let start = Instant::now();
    let seen_all = |db: &Path| {
        count(db, "SELECT count(*) FROM confirmed_download") >= 1
            && count(
                db,
                "SELECT count(*) FROM visit WHERE direction = 'in' AND outcome = 'ok' \
                 AND encryption IS NOT NULL",
            ) >= 1
            && count(
                db,
                "SELECT count(DISTINCT peer_id) FROM visit WHERE outcome = 'ok'",
            ) >= 3
    };
    while !seen_all(&db) && start.elapsed() < Duration::from_secs(150) {
        std::thread::sleep(Duration::from_millis(500));
    }
    common::interrupt_and_wait(&mut btda);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let seen: Vec<String> = common::column(
        &conn,
        "SELECT direction || ' ' || ifnull(peer_id, '-') || ' ' || outcome || ' ' || \
         ifnull(pieces, '-') || ' ' || ifnull(encryption, 'none') || ' ' || ifnull(fallback, 0) \
         FROM visit ORDER BY id",
    );
    let report = seen.join("\n");
    assert_eq!(
        count(&db, "SELECT count(*) FROM confirmed_download"),
        1,
        "the libtorrent leecher is one confirmed download:\n{report}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM visit WHERE outcome = 'ok' AND encryption IS NULL"
        ),
        0,
        "every client requires encryption: no plaintext visit succeeds\n{report}"
    );
    assert!(
        count(
            &db,
            "SELECT count(DISTINCT peer_id) FROM visit WHERE outcome = 'ok' AND direction = 'out' \
             AND encryption = 'rc4' AND fallback = 1"
        ) >= 3,
        "all three reached outgoing by falling back to MSE:\n{report}"
    );
    assert!(
        count(
            &db,
            "SELECT count(*) FROM visit WHERE direction = 'in' AND outcome = 'ok' \
             AND encryption = 'rc4'"
        ) >= 1,
        "the leecher's own encrypted connections are read:\n{report}"
    );
    let accepted: i64 = conn
        .query_row("SELECT max(mse_accepted) FROM statistic", [], |r| r.get(0))
        .unwrap_or(0);
    assert!(accepted >= 1, "statistic counts incoming MSE: {accepted}");

    // The same clients refuse a btda that speaks only plaintext.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain_input = plain_dir.path().join("input");
    std::fs::create_dir_all(&plain_input).unwrap();
    std::fs::copy(&torrent, plain_input.join("swarm.torrent")).unwrap();
    std::fs::write(
        plain_input.join("btda.toml"),
        config(&hash, BTDA_PLAIN, 0, "plaintext"),
    )
    .unwrap();
    let plain_output = plain_dir.path().join("output");
    let (mut plain, _, _plain_lines) = common::start_run(&plain_input, &plain_output);
    let plain_db = common::database_in(&plain_output).unwrap();
    let refused = |db: &Path| {
        count(db, "SELECT count(DISTINCT peer_key) FROM peer") == 0
            && count(
                db,
                "SELECT count(*) FROM visit WHERE outcome IN ('closed_in_handshake', 'reset')",
            ) >= 3
    };
    assert!(
        common::eventually(Duration::from_secs(30), || refused(&plain_db)),
        "a plaintext btda is refused by all three"
    );
    common::interrupt_and_wait(&mut plain);
    assert_eq!(
        count(&plain_db, "SELECT count(*) FROM visit WHERE outcome = 'ok'"),
        0
    );
    drop(swarm.stdin.take());
    let _ = wait_with_limit(&mut swarm, Duration::from_secs(30));
    let _ = drain.join();
}
