//! Magnet links in `btda run`: metadata fetched over ut_metadata from the peer named by
//! `x.pe`, verified, saved as `<info-hash>.torrent`, analysed, and reused next run.

mod common;

use std::time::Duration;

use btda::sim::{Behaviour, FakePeer};
use btda::torrent::InfoHash;
use common::eventually;

#[test]
fn a_magnet_with_only_x_pe_is_fetched_analysed_and_reused() {
    // 1000 pieces: the info dictionary is over 16 KiB, so it comes in two pieces.
    let mut info =
        b"d6:lengthi16384000e4:name6:magnet12:piece lengthi16384e6:pieces20000:".to_vec();
    info.extend((0..20000u32).map(|i| (i % 251) as u8));
    info.push(b'e');
    let hash = InfoHash::of_info_bytes(&info);
    let peer = FakePeer::start(
        "127.76.0.1:0".parse().unwrap(),
        hash,
        1000,
        1000,
        Behaviour::Metadata { info: info.clone() },
    )
    .unwrap();

    // A tracker that lists nobody: it only records what btda tells it.
    let tracker = btda::sim::fake_tracker::FakeHttpTracker::start(
        "127.76.0.2:0".parse().unwrap(),
        btda::sim::fake_tracker::HttpBehaviour::Normal {
            peers: vec![],
            counts: (1, 0, 0),
            interval: (1, None),
        },
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input");
    let output = root.path().join("output");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("magnet.txt"),
        format!(
            "magnet:?xt=urn:btih:{hash}&dn=Pending&x.pe={}&tr=http%3A%2F%2F{}%2Fannounce\n",
            peer.addr, tracker.addr
        ),
    )
    .unwrap();
    std::fs::write(input.join("btda.toml"), "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 2\nlisten_address = \"127.76.0.100\"\nlisten_port = 0\n[tracker]\ninterval_secs = 1\nstopped_timeout_ms = 500\n").unwrap();

    let (mut child, first, _lines) = common::start_run(&input, &output);
    assert!(first.starts_with("btda: analysing 1 torrents"), "{first}");
    let saved = output.join(format!("{hash}.torrent"));
    assert!(
        eventually(Duration::from_secs(20), || saved.exists()),
        "metadata never saved"
    );
    assert!(
        eventually(Duration::from_secs(20), || peer.served() >= 2),
        "the peer was not visited after the metadata"
    );
    // Trackers are told `left` = 1 GiB while the size is unknown, then the real share
    // (left_share 0.5 of 16,384,000 bytes) once the metadata is in.
    let lefts = || -> Vec<String> {
        tracker
            .requests
            .lock()
            .iter()
            .filter(|r| r.starts_with("/announce"))
            .filter_map(|r| {
                r.split('&')
                    .find_map(|kv| kv.strip_prefix("left="))
                    .map(String::from)
            })
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(20), || lefts()
            .iter()
            .any(|l| l == "8192000")),
        "the real left was never announced: {:?}",
        lefts()
    );
    assert_eq!(
        lefts()[0],
        "1073741824",
        "before the metadata: {:?}",
        lefts()
    );
    std::thread::sleep(Duration::from_millis(800));
    common::interrupt_and_wait(&mut child);

    let meta = btda::torrent::metainfo::parse(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(
        (meta.info_hash, meta.pieces_count, meta.name.as_str()),
        (hash, 1000, "magnet")
    );
    let db = common::database_in(&output).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let row: (i64, i64, String, String) = conn
        .query_row(
            "SELECT pieces_count, complete_threshold, source, name FROM torrent",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(row, (1000, 980, "magnet".to_string(), "magnet".to_string()));
    let (pieces, source): (i64, String) = conn
        .query_row("SELECT last_pieces, source FROM peer", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((pieces, source.as_str()), (1000, "manual"));
    drop(conn);
    std::fs::remove_file(&db).unwrap();

    // The next run starts with the saved metadata: nothing pending.
    let served = peer.served();
    let (mut child, _, lines) = common::start_run(&input, &output);
    std::thread::sleep(Duration::from_millis(500));
    common::interrupt_and_wait(&mut child);
    let summary: String = lines.try_iter().collect::<Vec<_>>().join("\n");
    assert!(
        summary.contains("torrents: 1 (0 waiting for metadata)"),
        "{summary}"
    );
    let log = std::fs::read_to_string(common::database_in(&output).unwrap().with_extension("log"))
        .unwrap();
    assert!(log.contains("metadata from an earlier run"), "{log}");
    assert!(
        peer.served() <= served + 1,
        "no second metadata fetch, at most a visit"
    );
}
