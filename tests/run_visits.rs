//! `btda run` end to end against a fake leecher given by hand in the config: the
//! leecher completes between visits, and `btda report` shows one confirmed download.

mod common;

use std::time::Duration;

use btda::sim::{Behaviour, FakePeer};
use btda::torrent::InfoHash;
use common::{eventually, signal, stdout_lines, wait_with_limit};

#[test]
fn a_leecher_given_in_the_config_is_confirmed_by_btda_run() {
    // 4 pieces, T = 4 (fixture from mktorrent).
    let (_root, input, output) = common::run_dirs_with_fixture();
    let hash = InfoHash::parse("be8df057e534fb76e0340a7445936fe58671ac84").unwrap();
    let leecher = FakePeer::start(
        "127.20.0.1:0".parse().unwrap(),
        hash,
        4,
        1,
        Behaviour::Bitfield,
    )
    .unwrap();
    let seeder = FakePeer::start(
        "127.20.0.2:0".parse().unwrap(),
        hash,
        4,
        4,
        Behaviour::HaveAll,
    )
    .unwrap();
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[monitor]\nstatus_interval_secs = 1\nstatistics_interval_secs = 1\n\
             [dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 4\nlisten_address = \"127.20.0.100\"\nlisten_port = 0\n\
             revisit_delay_secs = 1\nstate_window_ms = 200\nsilence_timeout_ms = 1000\n\
             [[torrents]]\ninfo_hash = \"{hash}\"\npeers = [\"{}\", \"{}\"]\n",
            leecher.addr, seeder.addr
        ),
    )
    .unwrap();
    let (mut child, _, lines) = common::start_run(&input, &output);
    assert!(
        eventually(Duration::from_secs(20), || leecher.served() >= 1),
        "leecher never visited"
    );
    leecher.set_pieces(4);
    assert!(
        eventually(Duration::from_secs(20), || leecher.served() >= 2),
        "leecher never revisited"
    );
    std::thread::sleep(Duration::from_millis(1500)); // a statistic row and the last commit
    signal(&child, "INT");
    let status = wait_with_limit(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    let summary: String = lines.try_iter().collect::<Vec<_>>().join("\n");
    assert!(summary.contains("confirmed downloads: 1"), "{summary}");

    let db = common::database_in(&output).unwrap();
    let out = common::btda()
        .args(["report", "--json"])
        .arg(&db)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The timeouts in force: few visits, so still the upper bounds of "auto".
    assert_eq!(
        json["run"]["timeouts_ms"],
        serde_json::json!([5000, 6000]),
        "{json}"
    );
    let text = common::btda().arg("report").arg(&db).output().unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("timeouts of first contacts at the end: connect 5000 ms, handshake 6000 ms"),
        "the text report names the timeouts"
    );
    let t = &json["torrents"][0];
    assert_eq!(
        (
            t["confirmed"].as_i64(),
            t["peers"].as_i64(),
            t["complete_peers"].as_i64()
        ),
        (Some(1), Some(2), Some(2))
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stats: i64 = conn
        .query_row(
            "SELECT count(*) FROM statistic WHERE peers_known = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stats >= 1, "statistic rows are written");
    let sources: i64 = conn
        .query_row(
            "SELECT count(*) FROM peer WHERE source = 'manual'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sources, 2);
}

#[test]
fn a_low_open_file_limit_shrinks_the_pools_with_a_warning() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(
        common::fixtures().join("inputs/mktorrent-single.torrent"),
        input.join("a.torrent"),
    )
    .unwrap();
    std::fs::write(
        input.join("btda.toml"),
        "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nlisten_address = \"127.21.0.1\"\nlisten_port = 0\n",
    )
    .unwrap();
    // 1,024 workers by default, but only 200 descriptors (soft and hard) allowed.
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 200 && exec {} run --input {} --output {}",
            env!("CARGO_BIN_EXE_btda"),
            input.display(),
            root.path().join("output").display()
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stdout_lines(&mut child);
    lines
        .recv_timeout(Duration::from_secs(30))
        .expect("btda run starts");
    common::interrupt_and_wait(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("open-file limit 200 is too low for 2048 workers"),
        "{stderr}"
    );
}

#[test]
fn peers_from_a_tracker_are_visited_by_btda_run() {
    use btda::sim::fake_tracker::{FakeHttpTracker, HttpBehaviour};
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input");
    let output = root.path().join("output");
    std::fs::create_dir_all(&input).unwrap();
    // A seeder the tracker knows about; its torrent is written by the test.
    let seeder_at: std::net::SocketAddr = "127.22.0.2:0".parse().unwrap();
    let listener = std::net::TcpListener::bind(seeder_at).unwrap();
    let seeder_at = listener.local_addr().unwrap();
    drop(listener);
    let tracker = FakeHttpTracker::start(
        "127.22.0.1:0".parse().unwrap(),
        HttpBehaviour::Normal {
            peers: vec![seeder_at],
            counts: (1, 0, 4),
            interval: (60, None),
        },
    )
    .unwrap();
    let url = tracker.url();
    let info = format!(
        "d6:lengthi40000e4:name1:x12:piece lengthi16384e6:pieces60:{}e",
        "p".repeat(60)
    );
    let torrent = format!("d8:announce{}:{url}4:info{info}e", url.len());
    std::fs::write(input.join("t.torrent"), &torrent).unwrap();
    let hash = btda::torrent::metainfo::parse(torrent.as_bytes())
        .unwrap()
        .info_hash;
    let seeder = FakePeer::start(seeder_at, hash, 3, 3, Behaviour::HaveAll).unwrap();
    std::fs::write(
        input.join("btda.toml"),
        "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 2\nlisten_address = \"127.22.0.3\"\nlisten_port = 16881\n[tracker]\nstopped_timeout_ms = 500\n",
    )
    .unwrap();
    let (mut child, _, _lines) = common::start_run(&input, &output);
    assert!(
        eventually(Duration::from_secs(20), || seeder.served() >= 1),
        "the tracker's peer was never visited"
    );
    std::thread::sleep(Duration::from_millis(700));
    common::interrupt_and_wait(&mut child);
    let conn = rusqlite::Connection::open(common::database_in(&output).unwrap()).unwrap();
    let (source, last): (String, i64) = conn
        .query_row("SELECT source, last_pieces FROM peer", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((source.as_str(), last), ("tracker", 3));
    let kinds: Vec<String> =
        common::column(&conn, "SELECT kind || ':' || ok FROM request ORDER BY id");
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("announce:1"),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"scrape:1".to_string())
            && kinds.last().map(String::as_str) == Some("stopped:1"),
        "{kinds:?}"
    );
    let requests = tracker.requests.lock().clone();
    assert!(
        requests[0].contains("port=16881") && requests[0].contains("event=started"),
        "{requests:?}"
    );
}
