//! Accuracy against a simulated swarm with known truth: 80 peers of every behaviour
//! (have_all seeders, bitfield and no-bitfield leechers, re-sent bitfields, batched
//! haves, NAT-like peers that only connect in, closed ports, silent peers) behind a
//! simulated HTTP and UDP tracker and, for a few of them, only on a loopback DHT.
//! Every completion btda can observe is confirmed exactly once; no other peer is; the
//! tracker figures in `request` are exactly what the trackers served. The test prints
//! truth and btda side by side.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use btda::sim::fake_tracker::Served;
use btda::sim::reactor::{ReactorOptions, SimTorrent};
use btda::sim::swarm::{Kind, Swarm, TrackerAddrs, mixed_lives};
use btda::torrent::InfoHash;

const KEY: &str = "0202020202020202020202020202020202020202020202020202020202020202";
const PIECES: u32 = 100;
const SPAN_MS: u64 = 16_000;
const LISTEN: &str = "127.91.0.2:16891";

#[test]
fn confirmed_downloads_match_the_simulated_truth() {
    let info = format!(
        "d6:lengthi{}e4:name3:sim12:piece lengthi16384e6:pieces{}:{}e",
        PIECES * 16384,
        PIECES * 20,
        "x".repeat(PIECES as usize * 20)
    );
    let hash = InfoHash::of_info_bytes(info.as_bytes());
    let lives = mixed_lives(Ipv4Addr::new(127, 90, 0, 1), 80, PIECES, SPAN_MS);
    let sim = SimTorrent {
        info_hash: hash,
        total: PIECES,
        lives: lives.clone(),
    };
    let trackers = [TrackerAddrs {
        http: "127.91.0.1:0".parse().unwrap(),
        udp: Some("127.91.0.1:0".parse().unwrap()),
    }];
    let options = ReactorOptions {
        dial: Some(LISTEN.parse().unwrap()),
        dial_every_ms: 1_500,
        batch_every_ms: 700,
        hold_ms: 3_000,
        ..ReactorOptions::default()
    };
    let mut swarm = Swarm::start(vec![sim], &trackers, options).unwrap();
    let announced = swarm
        .start_dht("127.92.0.1:0".parse().unwrap(), 10)
        .unwrap();
    assert!(
        announced >= 3,
        "untracked peers announced on the DHT: {announced}"
    );
    let router = swarm.dht_router.unwrap();
    let urls = swarm.announce_urls(0);
    let (_root, input, output) = common::run_dirs_with_fixture();
    std::fs::remove_file(input.join("a.torrent")).unwrap();
    let list: String = urls.iter().map(|u| format!("l{}:{u}e", u.len())).collect();
    std::fs::write(
        input.join("sim.torrent"),
        format!(
            "d8:announce{}:{}13:announce-listl{list}e4:info{info}e",
            urls[0].len(),
            urls[0]
        ),
    )
    .unwrap();
    let listen: SocketAddr = LISTEN.parse().unwrap();
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[dht]\nenabled = true\nlisten_address = \"{}\"\nport = 0\nbootstrap = [\"{router}\"]\n\
             interval_secs = 1\nquery_timeout_ms = 500\n[peer]\nallow_private_addresses = true\nworkers = 16\nlisten_address = \"{}\"\nlisten_port = {}\n\
             revisit_delay_secs = 1\nstate_window_ms = 150\nsilence_timeout_ms = 1000\nvisit_cap_ms = 1000\nretry_backoff_secs = [1, 1, 1]\n\
             [tracker]\ninterval_secs = 1\nstopped_timeout_ms = 1000\n[privacy]\nkey = \"{KEY}\"\n",
            listen.ip(),
            listen.ip(),
            listen.port()
        ),
    )
    .unwrap();
    let (mut child, _, _lines) = common::start_run(&input, &output);
    std::thread::sleep(Duration::from_millis(SPAN_MS - 1_000));
    common::interrupt_and_wait(&mut child);
    let ended_ms = swarm.reactor.now_ms();
    let counters = &swarm.reactor.counters;
    println!("simulator: {counters:?}");

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
    let from_dht: i64 = conn
        .query_row("SELECT count(*) FROM peer WHERE source = 'dht'", [], |r| {
            r.get(0)
        })
        .unwrap();

    println!(
        "{:<20} {:<16} {:>9} {:>6} {:>6} {:>9}",
        "peer", "kind", "truth", "first", "last", "confirmed"
    );
    let mut unexplained = Vec::new();
    let mut confirmed_truth = 0;
    let mut observable_truth = 0;
    let mut incoming_confirmed = 0;
    let mut untracked_incoming_confirmed = 0;
    for s in &lives {
        let addr = swarm.addr_of(s);
        let row = rows.get(&keyer.key(&addr));
        let completes = s.completes_at(PIECES).filter(|&ms| ms < ended_ms);
        let crossed = row.and_then(|r| r.2).is_some();
        println!(
            "{:<20} {:<16} {:>9} {:>6} {:>6} {:>9}",
            addr,
            s.kind.name(),
            completes.map_or("-".to_string(), |ms| format!("{ms} ms")),
            row.map_or("-".into(), |r| r.0.to_string()),
            row.map_or("-".into(), |r| r.1.to_string()),
            crossed
        );
        match completes {
            None if crossed => unexplained.push(format!("{addr} confirmed but never completed")),
            None => {}
            Some(_) if !s.kind.observable() && crossed => {
                unexplained.push(format!("{addr} ({}) confirmed", s.kind.name()));
            }
            Some(_) if !s.kind.observable() => {}
            Some(_) => {
                observable_truth += 1;
                if crossed {
                    confirmed_truth += 1;
                    incoming_confirmed += i32::from(s.kind == Kind::IncomingOnly);
                    untracked_incoming_confirmed +=
                        i32::from(s.kind == Kind::IncomingOnly && !s.tracked);
                } else {
                    unexplained.push(format!(
                        "{addr} ({}) completed but was not confirmed (row {row:?})",
                        s.kind.name()
                    ));
                }
            }
        }
    }
    println!(
        "truth: {observable_truth} observable completions; btda {confirmed} confirmed \
         ({confirmed_truth} of them true, {incoming_confirmed} incoming-only)"
    );
    assert!(unexplained.is_empty(), "{unexplained:#?}");
    assert_eq!(
        confirmed, confirmed_truth,
        "each completion confirmed exactly once"
    );
    assert!(incoming_confirmed >= 1, "incoming-only peers are counted");
    assert!(
        untracked_incoming_confirmed >= 1,
        "an incoming-only peer no tracker lists is counted under the port it names in `p`"
    );
    assert!(
        from_dht as usize >= announced,
        "the DHT-only peers were found there: {from_dht} of {announced}"
    );
    assert!(observable_truth >= 20, "the mix completes enough peers");

    // The tracker figures btda recorded are what the trackers served.
    for (scheme, served) in [
        ("http", swarm.http[0].served.lock().clone()),
        ("udp", swarm.udp[0].as_ref().unwrap().served.lock().clone()),
    ] {
        for kind in ["announce", "scrape", "stopped"] {
            let mut want: Vec<(u32, u32, u32)> = served
                .iter()
                .filter(|s: &&Served| s.kind == kind)
                .map(|s| {
                    (
                        s.seeders,
                        s.leechers,
                        if kind == "scrape" { s.downloaded } else { 0 },
                    )
                })
                .collect();
            let mut got: Vec<(u32, u32, u32)> = conn
                .prepare(
                    "SELECT seeders, leechers, coalesce(completed, 0), kind FROM request \
                     WHERE source = 'tracker' AND kind = ?1 AND url LIKE ?2 AND (ok = 1 OR kind = 'stopped')",
                )
                .unwrap()
                .query_map((kind, format!("{scheme}://%")), |r| {
                    Ok((
                        r.get::<_, Option<u32>>(0)?.unwrap_or(0),
                        r.get::<_, Option<u32>>(1)?.unwrap_or(0),
                        if kind == "scrape" { r.get(2)? } else { 0 },
                    ))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            want.sort_unstable();
            got.sort_unstable();
            println!(
                "{scheme} {kind}: served {}, recorded {}",
                want.len(),
                got.len()
            );
            if kind != "stopped" {
                assert!(!want.is_empty(), "{scheme} {kind}: nothing served");
                assert_eq!(got, want, "{scheme} {kind}: recorded figures differ");
            } else {
                assert_eq!(got.len(), want.len(), "{scheme} stopped announces");
            }
        }
    }
}
