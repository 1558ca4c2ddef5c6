//! Measured timeouts on loopback: after a warm-up on live peers the connect and
//! handshake timeouts of first contacts drop from their upper bounds to what the run
//! measured (here the lower bounds: loopback answers in a millisecond), so addresses
//! that never answer a SYN cost 0.3 s instead of 5 s; a slow but live peer cut by the
//! short handshake timeout is reached at its retry, whose timeout is doubled.
//!
//! "Never answers a SYN" without root or traffic shaping: the simulator's
//! [`BlackHole`], a listener whose accept queue is full, so the kernel drops SYNs.

use std::net::SocketAddr;
use std::time::Duration;

use btda::config::Timeout;
use btda::sim::reactor::BlackHole;
use btda::sim::{Behaviour, FakePeer, Harness, HarnessOptions};
use btda::torrent::InfoHash;

const PIECES: u32 = 50;
const HASH: InfoHash = InfoHash([0x7e; 20]);

#[test]
fn measured_timeouts_cut_dead_addresses_short_and_keep_slow_live_peers() {
    let dir = tempfile::tempdir().unwrap();
    let options = HarnessOptions {
        info_hash: HASH,
        pieces: PIECES,
        threshold: 49,
        workers: 8,
        peer: btda::config::Peer {
            connect_timeout_ms: Timeout::Auto,
            handshake_timeout_ms: Timeout::Auto,
            auto_timeout_warmup: 16,
            allow_private_addresses: true,
            ..btda::config::Peer::default()
        },
        revisit: Duration::from_secs(60),
        backoff: vec![Duration::from_millis(300)],
    };
    let h = Harness::start(dir.path(), &options, None).unwrap();
    let m = &h.engine.measured;
    assert_eq!(
        (m.connect.current(), m.handshake.current()),
        (Duration::from_secs(5), Duration::from_secs(6)),
        "the upper bounds before any measurement"
    );
    let live: Vec<FakePeer> = (1..=32)
        .map(|i| {
            FakePeer::start(
                SocketAddr::from(([127, 70, 0, i], 0)),
                HASH,
                PIECES,
                PIECES,
                Behaviour::HaveAll,
            )
            .unwrap()
        })
        .collect();
    for p in &live {
        h.add(p.addr);
    }
    assert!(h.wait_until(Duration::from_secs(20), |h| h.visits() >= 32));
    assert_eq!(
        (m.connect.current(), m.handshake.current()),
        (Duration::from_millis(300), Duration::from_millis(500)),
        "loopback times are far below the lower bounds"
    );

    let hole = BlackHole::open().unwrap();
    for i in 1..=4 {
        h.add(SocketAddr::from(([127, 70, 1, i], hole.port)));
    }
    let slow = FakePeer::start(
        SocketAddr::from(([127, 70, 2, 1], 0)),
        HASH,
        PIECES,
        PIECES,
        Behaviour::SlowHandshake { delay_ms: 800 },
    )
    .unwrap();
    h.add(slow.addr);
    // The slow seeder, once reached, is finished like the 32 others.
    assert!(h.wait_until(Duration::from_secs(20), |h| {
        h.engine.queue.counts().peers.finished >= 33
    }));
    let db = h.finish().unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    let dead: Vec<(String, i64)> = conn
        .prepare(
            "SELECT outcome, duration_ms FROM visit WHERE outcome = 'connect_timeout' ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(dead.len() >= 4, "{dead:?}");
    for (_, ms) in &dead[..4] {
        assert!(
            (250..1500).contains(ms),
            "a dead address costs the measured 300 ms, not 5 s: {ms} ms"
        );
    }
    let slow_visits: Vec<(String, i64)> = conn
        .prepare(
            "SELECT outcome, attempt FROM visit WHERE outcome IN ('handshake_timeout', 'ok')
             AND attempt IS NOT NULL ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        slow_visits.contains(&("handshake_timeout".into(), 1))
            && slow_visits.contains(&("ok".into(), 2)),
        "the slow peer is cut at its first contact and reached at its retry: {slow_visits:?}"
    );
    let ok: i64 = conn
        .query_row(
            "SELECT count(DISTINCT peer_id) FROM visit WHERE outcome = 'ok'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ok, 33, "every live peer reached");
    drop(hole);
}
