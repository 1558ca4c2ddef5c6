//! `btda sim` on its own: it serves a simulated swarm (trackers, DHT, peers) that a
//! real client can join (the simulated tracker lists peers to it and it completes a
//! BitTorrent handshake with at least one of them). Debian's python3-libtorrent adds the .torrent `btda sim` wrote,
//! announces to the simulated trackers and connects to the simulated peers; on Ctrl+C
//! `btda sim` writes the truth file.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{signal, wait_with_limit};

#[test]
fn a_libtorrent_client_joins_a_swarm_served_by_btda_sim() {
    let dir = tempfile::tempdir().unwrap();
    let sim_dir = dir.path().join("sim");
    // Lives of 40 s: the peers arrive within the first 10.
    let mut sim = common::Reaped(
        common::btda()
            .args(["sim", "--peers", "40", "--seconds", "40", "--dir"])
            .arg(&sim_dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(sim.0.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    assert!(
        banner.starts_with("btda sim: 1 torrents of 40 peers"),
        "{banner}"
    );
    let torrent = lines.next().unwrap().unwrap();
    let torrent = torrent.strip_prefix("torrent: ").unwrap().to_string();
    assert!(Path::new(&torrent).is_file());

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_join.py");
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["--torrent", &torrent, "--at", "127.34.0.1:51701", "--dir"])
        .arg(dir.path())
        .args(["--min-peers", "1", "--max-seconds", "60"])
        .output()
        .expect("python3-libtorrent is installed by `make deps`");
    let seen: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let last = seen.last().expect("the client reported");
    assert!(
        last["connected"].as_i64().unwrap_or(0) >= 1 && last["listed"].as_i64().unwrap_or(0) >= 1,
        "libtorrent found and connected to the simulated peers: {seen:?}"
    );

    signal(&sim.0, "INT");
    let status = wait_with_limit(&mut sim.0, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.starts_with("truth: ")), "{rest:?}");
    let truth = std::fs::read_to_string(sim_dir.join("truth.tsv")).unwrap();
    assert_eq!(
        truth.lines().count(),
        1 + 40,
        "a header and one line per peer"
    );
}
