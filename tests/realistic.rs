//! A small realistic simulated internet: 400 peers listed, in 2015's first-contact
//! proportions (63 % never answer a SYN, 15 % refuse, 11 % close and 1.4 % reset in
//! the handshake; 9.4 % answer, of every behaviour), with round-trip times of 20–400 ms,
//! behind a simulated tracker and DHT. btda runs with measured ("auto") timeouts: the
//! connect timeout it chooses ends far below the old fixed 5 s, no peer that can be
//! observed is lost to it, and the count stays exact (confirmed == observable truth).

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use btda::sim::reactor::{ReactorOptions, SimTorrent};
use btda::sim::swarm::{Kind, Swarm, TrackerAddrs, realistic_lives};
use btda::torrent::InfoHash;

const KEY: &str = "0404040404040404040404040404040404040404040404040404040404040404";
const PIECES: u32 = 100;
const SPAN_MS: u64 = 16_000;
const LISTEN: &str = "127.95.0.2:16895";

#[test]
fn measured_timeouts_keep_the_count_exact_on_a_realistic_swarm() {
    let info = format!(
        "d6:lengthi{}e4:name4:real12:piece lengthi16384e6:pieces{}:{}e",
        PIECES * 16384,
        PIECES * 20,
        "y".repeat(PIECES as usize * 20)
    );
    let hash = InfoHash::of_info_bytes(info.as_bytes());
    let lives = realistic_lives(Ipv4Addr::new(127, 94, 0, 1), 400, PIECES, SPAN_MS);
    let options = ReactorOptions {
        dial: Some(LISTEN.parse().unwrap()),
        dial_every_ms: 1_500,
        batch_every_ms: 700,
        hold_ms: 3_000,
        busy: (3_000, 6_000),
        also_listed: vec![LISTEN.parse().unwrap()],
        rtt_ms: Some((20, 400)),
        ..ReactorOptions::default()
    };
    let sim = SimTorrent {
        info_hash: hash,
        total: PIECES,
        lives: lives.clone(),
    };
    let trackers = [TrackerAddrs {
        http: "127.95.0.1:0".parse().unwrap(),
        udp: Some("127.95.0.1:0".parse().unwrap()),
    }];
    let mut swarm = Swarm::start(vec![sim], &trackers, options).unwrap();
    swarm
        .start_dht("127.96.0.1:0".parse().unwrap(), 10)
        .unwrap();
    let router = swarm.dht_router.unwrap();
    let (_root, input, output) = common::run_dirs_with_fixture();
    std::fs::remove_file(input.join("a.torrent")).unwrap();
    std::fs::write(input.join("real.torrent"), swarm.torrent_file(0, &info)).unwrap();
    let listen: SocketAddr = LISTEN.parse().unwrap();
    // 256 workers: before the warm-up every dead address holds one for the upper bound.
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[dht]\nenabled = true\nlisten_address = \"{ip}\"\nport = 0\nbootstrap = [\"{router}\"]\n\
             interval_secs = 1\nquery_timeout_ms = 500\n\
             [peer]\nallow_private_addresses = true\nworkers = 256\nlisten_address = \"{ip}\"\n\
             listen_port = {port}\nrevisit_delay_secs = 1\nstate_window_ms = 800\n\
             silence_timeout_ms = 1000\nvisit_cap_ms = 2000\nretry_backoff_secs = [1, 1, 1]\n\
             auto_timeout_warmup = 16\nauto_connect_timeout_ms = [300, 2000]\n\
             [tracker]\ninterval_secs = 1\nstopped_timeout_ms = 1000\n\
             [monitor]\nstatistics_interval_secs = 1\n[privacy]\nkey = \"{KEY}\"\n",
            ip = listen.ip(),
            port = listen.port()
        ),
    )
    .unwrap();
    let (mut child, _, _lines) = common::start_run(&input, &output);
    std::thread::sleep(Duration::from_millis(SPAN_MS - 1_000));
    common::interrupt_and_wait(&mut child);
    let ended_ms = swarm.reactor.now_ms();
    println!("simulator: {:?}", swarm.reactor.counters);

    let keyer = common::keyer(KEY);
    let conn = rusqlite::Connection::open(common::database_in(&output).unwrap()).unwrap();
    let crossed: HashMap<String, bool> = conn
        .prepare("SELECT peer_key, crossed_at IS NOT NULL FROM peer")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut wrong = Vec::new();
    let mut truth = 0;
    for s in &lives {
        let addr = swarm.addr_of(s);
        let completes = s.completes_at(PIECES).is_some_and(|ms| ms < ended_ms);
        let confirmed = crossed.get(&keyer.key(&addr)).copied().unwrap_or(false);
        let expected = completes && s.kind.observable();
        truth += u32::from(expected);
        if confirmed != expected {
            wrong.push(format!(
                "{addr} {}: completes {completes}, confirmed {confirmed}",
                s.kind.name()
            ));
        }
    }
    let outcomes: Vec<String> = common::column(
        &conn,
        "SELECT outcome || ' ' || count(*) || ' visits, ' || ifnull(max(duration_ms), 0) \
         || ' ms longest' FROM visit GROUP BY outcome ORDER BY outcome",
    );
    println!(
        "observable completions {truth}; outcomes:\n{}",
        outcomes.join("\n")
    );
    assert!(truth >= 10, "a swarm with something to count: {truth}");
    assert!(wrong.is_empty(), "{wrong:#?}");

    // The measured timeouts: far below the old 5 s, and the dead addresses cut at them.
    let (connect, handshake): (i64, i64) = conn
        .query_row(
            "SELECT connect_timeout_ms, handshake_timeout_ms FROM statistic
             ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    println!("timeouts chosen: connect {connect} ms, handshake {handshake} ms");
    assert_eq!(connect, 300, "loopback connects: the lower bound");
    assert!(
        (800..=2 * 400 * 2).contains(&handshake),
        "about twice the slowest simulated round trip (400 ms): {handshake}"
    );
    let fast_timeouts: i64 = conn
        .query_row(
            "SELECT count(*) FROM visit WHERE outcome = 'connect_timeout' AND duration_ms < 1000",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let no_syn = lives.iter().filter(|l| l.kind == Kind::NoSyn).count() as i64;
    assert!(
        fast_timeouts >= no_syn / 2,
        "dead addresses cost the measured timeout: {fast_timeouts} of {no_syn}"
    );
}
