//! Magnet interop with a real client: btda fetches the metadata of a torrent seeded by
//! Debian's python3-libtorrent (DHT, LSD, UPnP, NAT-PMP off) from a magnet link with only
//! `x.pe`, and from one with only a loopback opentracker, and the info-hash and piece
//! count match the client's torrent file.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, signal, wait_with_limit};

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_swarm.py")
}

/// Runs lt_swarm.py; returns the child (None for --hash-only) and its ready line.
fn swarm(dir: &Path, seeder: &str, extra: &[&str]) -> (Option<Child>, serde_json::Value) {
    let mut child = Command::new("/usr/bin/python3")
        .arg(script())
        .args([
            "--dir",
            dir.to_str().unwrap(),
            "--seeder",
            seeder,
            "--leecher",
            "127.0.0.1:1",
            "--seeder-only",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3-libtorrent is installed by `make deps`");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready: serde_json::Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
    if !extra.contains(&"--hash-only") {
        // libtorrent refuses connections while its torrent starts: wait for two status lines.
        let _ = out.next();
        let _ = out.next();
    }
    std::thread::spawn(move || out.for_each(drop));
    if extra.contains(&"--hash-only") {
        let _ = child.wait();
        return (None, ready);
    }
    (Some(child), ready)
}

/// Runs btda on `magnet` until the metadata is saved; returns the parsed torrent.
fn fetch_with_btda(root: &Path, magnet: &str, net: u8) -> btda::torrent::Metainfo {
    let input = root.join("btda-input");
    let output = root.join("btda-output");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("magnet.txt"), format!("{magnet}\n")).unwrap();
    std::fs::write(
        input.join("btda.toml"),
        format!("[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 2\nlisten_address = \"127.{net}.0.100\"\nlisten_port = 0\n[tracker]\nstopped_timeout_ms = 500\n"),
    )
    .unwrap();
    let (mut child, _, _lines) = common::start_run(&input, &output);
    let hash = magnet.split("btih:").nth(1).unwrap()[..40].to_string();
    let saved = output.join(format!("{hash}.torrent"));
    let ok = eventually(Duration::from_secs(60), || saved.exists());
    signal(&child, "INT");
    let _ = wait_with_limit(&mut child, Duration::from_secs(30));
    assert!(ok, "no metadata fetched for {magnet}");
    btda::torrent::metainfo::parse(&std::fs::read(saved).unwrap()).unwrap()
}

fn stop(mut child: Child) {
    drop(child.stdin.take());
    let _ = wait_with_limit(&mut child, Duration::from_secs(20));
}

#[test]
fn metadata_from_a_libtorrent_seeder_named_by_x_pe() {
    let dir = tempfile::tempdir().unwrap();
    let (child, ready) = swarm(dir.path(), "127.32.0.1:51601", &[]);
    let hash = ready["ready"].as_str().unwrap();
    let meta = fetch_with_btda(
        dir.path(),
        &format!("magnet:?xt=urn:btih:{hash}&x.pe=127.32.0.1:51601"),
        32,
    );
    stop(child.unwrap());
    assert_eq!(meta.info_hash.to_hex(), hash);
    assert_eq!(
        i64::from(meta.pieces_count),
        ready["pieces"].as_i64().unwrap()
    );
    let client =
        btda::torrent::metainfo::parse(&std::fs::read(ready["torrent"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(
        (meta.piece_size, meta.total_size),
        (client.piece_size, client.total_size)
    );
}

#[test]
fn metadata_from_a_libtorrent_seeder_found_through_a_loopback_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = "http://127.62.0.1:16971/announce";
    let (_, ready) = swarm(dir.path(), "127.33.0.1:51602", &["--hash-only"]);
    let hash = btda::torrent::InfoHash::parse(ready["ready"].as_str().unwrap()).unwrap();
    let _ot = common::start_opentracker("127.62.0.1", 16971, &[hash]);
    let (child, _) = swarm(dir.path(), "127.33.0.1:51602", &["--tracker", tracker]);
    let magnet =
        format!("magnet:?xt=urn:btih:{hash}&tr=http%3A%2F%2F127.62.0.1%3A16971%2Fannounce");
    let meta = fetch_with_btda(dir.path(), &magnet, 33);
    stop(child.unwrap());
    assert_eq!(meta.info_hash, hash);
    assert_eq!(
        i64::from(meta.pieces_count),
        ready["pieces"].as_i64().unwrap()
    );
    assert_eq!(
        meta.trackers,
        vec![tracker.to_string()],
        "the magnet's trackers go into the saved torrent"
    );
}
