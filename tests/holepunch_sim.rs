//! Hole punching against the simulator's NAT peers (`btda::sim::nat`): peers with no
//! TCP listener and a uTP socket that drops what comes from addresses it has not sent
//! to, and a relay whose PEX names them. With `peer.transport = "both"` btda reaches
//! them only by punches through the relay and confirms exactly the downloads that
//! finished while it watched; with "tcp" it never sees them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btda::sim::nat::{NatGroup, NatPlan};

const PIECES: u32 = 40;

fn plans(base: u8) -> Vec<(SocketAddr, NatPlan)> {
    let mut v = Vec::new();
    // Eight leechers finishing 8-11.5 s in (btda's first punches come 1-4 s in, after
    // a direct dial's 1 s timeout), online 6 s after; four seeds.
    for k in 0..8u8 {
        let finish = 8.0 + 0.5 * f64::from(k);
        v.push((
            SocketAddr::from(([127, 37, base, 10 + k], 52_100 + u16::from(k))),
            NatPlan {
                start_pieces: u32::from(k),
                pieces_per_sec: f64::from(PIECES - u32::from(k)) / finish,
                linger: Duration::from_secs(6),
            },
        ));
    }
    for k in 0..4u8 {
        v.push((
            SocketAddr::from(([127, 37, base, 30 + k], 52_200 + u16::from(k))),
            NatPlan {
                start_pieces: PIECES,
                pieces_per_sec: 0.0,
                linger: Duration::from_secs(600),
            },
        ));
    }
    v
}

/// Runs btda with `transport` against a fresh NAT group for `ms`; returns (peers
/// observed, confirmed downloads, NAT peers reached by a punch, NAT peers that finished
/// while watched) and the visits for a failure message.
fn measure(transport: &str, base: u8, ms: u64) -> (i64, i64, i64, usize, String) {
    let (info, hash) = common::sim_info("nat", 'n', PIECES);
    let relay = SocketAddr::from(([127, 37, base, 1], 52_001));
    let group = NatGroup::start(hash, PIECES, relay, &plans(base)).unwrap();
    let listed: Vec<String> = std::iter::once(relay)
        .chain(group.truth().iter().map(|t| t.addr))
        .map(|a| format!("\"{a}\""))
        .collect();
    let config = format!(
        "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 16\n\
         listen_address = \"127.37.{base}.2\"\nlisten_port = 52002\ntransport = \"{transport}\"\n\
         revisit_delay_secs = 2\nstate_window_ms = 200\nretry_backoff_secs = [1, 1, 2]\n\
         new_dials_per_network_per_sec = 1000\nconnect_timeout_ms = 1000\n\
         [[torrents]]\ninfo_hash = \"{hash}\"\npeers = [{}]\n",
        listed.join(", ")
    );
    let torrent = format!("d4:info{info}e");
    let (_root, db) = common::measure(&torrent, &config, ms);
    let watched = Duration::from_millis(ms.saturating_sub(2_000));
    let finished = group
        .truth()
        .iter()
        .filter(|t| {
            t.finishes_after
                .is_some_and(|f| f > Duration::ZERO && f < watched)
        })
        .count();
    drop(group);
    let c = rusqlite::Connection::open(&db).unwrap();
    let one = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    let observed = one("SELECT count(*) FROM peer");
    let confirmed = one("SELECT count(*) FROM confirmed_download");
    let punched =
        one("SELECT count(DISTINCT peer_id) FROM visit WHERE via = 'holepunch' AND outcome = 'ok'");
    let mut s = c
        .prepare(
            "SELECT coalesce(peer_id, 0) || ' ' || direction || ' ' || outcome || ' ' || \
             coalesce(transport, '-') || ' ' || via || ' ' || coalesce(pieces, -1) FROM visit",
        )
        .unwrap();
    let visits: Vec<String> = s
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (observed, confirmed, punched, finished, visits.join("\n"))
}

#[test]
fn btda_reaches_simulated_nat_peers_only_by_punching_and_counts_them_exactly() {
    let (observed, confirmed, punched, finished, visits) = measure("both", 1, 16_000);
    let explain = format!(
        "observed {observed}, confirmed {confirmed}, punched {punched}, finished {finished}\n{visits}"
    );
    assert_eq!(finished, 8, "the plan: eight leechers finish while watched");
    // The relay and the twelve NAT peers; every NAT peer reached by a punch (≥ 80 %
    // of the punchable peers online is the bar; here all are online).
    assert_eq!(observed, 13, "{explain}");
    assert_eq!(punched, 12, "{explain}");
    // Exactly the eight finished downloads, no seed, nothing twice.
    assert_eq!(confirmed, 8, "{explain}");

    let (observed, confirmed, punched, _, visits) = measure("tcp", 2, 5_000);
    // Over TCP alone nobody answers: the relay speaks uTP only, the NAT peers have no
    // TCP port.
    assert_eq!((observed, confirmed, punched), (0, 0, 0), "{visits}");
}
