//! Accuracy against a simulated swarm with known truth: peers with scripted lives behind
//! a simulated tracker, found by `btda run` only through that tracker. Every peer that
//! completes while btda can watch it is confirmed exactly once; no other peer is. The
//! test prints truth and btda side by side.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use btda::sim::swarm::{PeerScript, Swarm};
use btda::torrent::InfoHash;
use common::{signal, wait_with_limit};

const KEY: &str = "0202020202020202020202020202020202020202020202020202020202020202";
const PIECES: u32 = 100;
const T: i64 = 98;

fn peer(i: u8, arrive: u64, leave: u64, start: u32, rate: f64) -> PeerScript {
    PeerScript {
        addr: SocketAddr::from(([127, 90, 0, i], 6881)),
        arrive_ms: arrive,
        leave_ms: leave,
        start_pieces: start,
        rate,
    }
}

#[test]
fn confirmed_downloads_match_the_simulated_truth() {
    let mut scripts = Vec::new();
    let mut kind: HashMap<SocketAddr, &str> = HashMap::new();
    for i in 1..=8u8 {
        scripts.push(peer(i, 0, 60_000, PIECES, 0.0));
        kind.insert(scripts.last().unwrap().addr, "seeder");
    }
    for j in 0..16u8 {
        let arrive = u64::from(j) * 100;
        let start = u32::from(j) * 2;
        let done_at = 4_000 + u64::from(j) * 300;
        let rate = f64::from(PIECES - start) / ((done_at - arrive) as f64 / 1000.0);
        scripts.push(peer(20 + j, arrive, 60_000, start, rate));
        kind.insert(scripts.last().unwrap().addr, "completes");
    }
    for j in 0..6u8 {
        scripts.push(peer(40 + j, 0, 60_000, 10, 1.0));
        kind.insert(scripts.last().unwrap().addr, "slow");
    }
    for j in 0..6u8 {
        scripts.push(peer(50 + j, 0, 5_000, 0, 10.0));
        kind.insert(scripts.last().unwrap().addr, "leaves");
    }
    let truth: Vec<&PeerScript> = scripts
        .iter()
        .filter(|s| s.completes_at(PIECES).is_some())
        .collect();
    assert_eq!(truth.len(), 16);

    // The torrent: announce = the simulated tracker.
    let swarm_tracker: SocketAddr = "127.91.0.1:0".parse().unwrap();
    let info = format!(
        "d6:lengthi{}e4:name3:sim12:piece lengthi16384e6:pieces{}:{}e",
        PIECES * 16384,
        PIECES * 20,
        "x".repeat(PIECES as usize * 20)
    );
    let hash = InfoHash::of_info_bytes(info.as_bytes());
    let swarm = Swarm::start(swarm_tracker, hash, PIECES, scripts.clone()).unwrap();
    let url = swarm.tracker.url();
    let (_root, input, output) = common::run_dirs_with_fixture();
    std::fs::remove_file(input.join("a.torrent")).unwrap();
    std::fs::write(
        input.join("sim.torrent"),
        format!("d8:announce{}:{url}4:info{info}e", url.len()),
    )
    .unwrap();
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[dht]\nenabled = false\n[peer]\nworkers = 16\nlisten_address = \"127.91.0.2\"\nlisten_port = 0\n\
             revisit_delay_secs = 1\nquiet_grace_ms = 150\nsilence_timeout_ms = 1000\nretry_backoff_secs = [1, 1, 1]\n\
             [tracker]\ninterval_secs = 1\nstopped_timeout_ms = 300\n[privacy]\nkey = \"{KEY}\"\n"
        ),
    )
    .unwrap();
    let (mut child, _, _lines) = common::start_run(&input, &output);
    std::thread::sleep(Duration::from_secs(12));
    signal(&child, "INT");
    assert_eq!(
        wait_with_limit(&mut child, Duration::from_secs(30)).code(),
        Some(0)
    );
    drop(swarm);

    let keyer = common::keyer(KEY);
    let conn = rusqlite::Connection::open(common::database_in(&output).unwrap()).unwrap();
    let rows: HashMap<String, (i64, i64, Option<i64>)> = conn
        .prepare("SELECT peer_key, first_pieces, last_pieces, crossed_at FROM peer")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let confirmed: i64 = conn
        .query_row("SELECT count(*) FROM confirmed_download", [], |r| r.get(0))
        .unwrap();

    println!(
        "{:<18} {:<10} {:>10} {:>6} {:>6} {:>10}",
        "peer", "kind", "truth", "first", "last", "confirmed"
    );
    let mut unexplained = Vec::new();
    let mut confirmed_truth = 0;
    for s in &scripts {
        let row = rows.get(&keyer.key(&s.addr));
        let completes = s.completes_at(PIECES);
        let crossed = row.and_then(|r| r.2).is_some();
        println!(
            "{:<18} {:<10} {:>10} {:>6} {:>6} {:>10}",
            s.addr,
            kind[&s.addr],
            completes.map_or("-".to_string(), |ms| format!("{ms} ms")),
            row.map_or("-".into(), |r| r.0.to_string()),
            row.map_or("-".into(), |r| r.1.to_string()),
            crossed
        );
        match (completes, row) {
            (None, _) if crossed => {
                unexplained.push(format!("{} confirmed but never completed", s.addr))
            }
            // Confirmable only if btda saw it below T first and at/above T later.
            (Some(_), Some(&(first, _, _))) if first < T && !crossed => {
                unexplained.push(format!(
                    "{} completed after a visit at {first} pieces but was not confirmed",
                    s.addr
                ));
            }
            (Some(_), _) if crossed => confirmed_truth += 1,
            _ => {}
        }
    }
    println!(
        "truth {} completions; btda {confirmed} confirmed ({confirmed_truth} of them true)",
        truth.len()
    );
    assert!(unexplained.is_empty(), "{unexplained:#?}");
    assert_eq!(
        confirmed, confirmed_truth,
        "each completion confirmed exactly once"
    );
    assert!(
        confirmed_truth >= 12,
        "most completions are seen: {confirmed_truth} of 16"
    );
}
