//! An incoming burst: simulated NAT-ed peers that each connect to btda once, from their
//! own 127.x.y.z address, at a steady rate — what a popular torrent's swarm does to a
//! measuring host that announces itself (2015: ~80 incoming connections per second per
//! host). Half are seeders (their visit ends at the bitfield), half download and send
//! haves (their visit lasts the state window); each keeps its connection at most
//! `hold_ms`. btda's engine runs in-process ([`super::Harness`]) with its listener; the
//! result says how many connections it took, turned away, and recorded as peers.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::reactor::{Reactor, ReactorOptions, SimTorrent};
use super::script::{Kind, PeerScript};
use super::{Harness, HarnessOptions};
use crate::torrent::InfoHash;

/// Pieces of the burst's torrent.
const PIECES: u32 = 1_000;

/// What a burst did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BurstResult {
    /// Connections the simulated peers opened to btda.
    pub dialled: u64,
    /// Of those, the ones that connected.
    pub connected: u64,
    /// Connections btda handed to an incoming handler.
    pub accepted: u64,
    /// Connections btda closed at once because every handler was busy.
    pub refused_busy: u64,
    /// Peer rows in the database (each dialling peer is its own address and client).
    pub peers: u64,
    /// Peer rows with more than one successful visit (a peer recorded twice would show
    /// as two rows; one visit twice as a row with two visits).
    pub peers_visited_twice: u64,
    /// Incoming visits recorded (the `visit` table, direction `in`).
    pub visits_in: u64,
    /// Incoming handlers btda ran.
    pub handlers: usize,
}

/// Runs a burst of `rate` connections per second for `seconds` against an engine with
/// `workers` workers and `handlers` incoming handlers (0: as many as workers), listening
/// on `listen`; each peer holds its connection at most `hold_ms`. The database goes to
/// `dir`.
pub fn run_burst(
    rate: u32,
    seconds: u32,
    (workers, handlers): (usize, usize),
    listen: SocketAddr,
    hold_ms: u64,
    dir: &Path,
) -> Result<BurstResult, String> {
    let n = rate.saturating_mul(seconds);
    let info_hash = InfoHash::of_info_bytes(format!("burst-{rate}-{seconds}").as_bytes());
    let lives: Vec<PeerScript> = (0..n)
        .map(|i| {
            // 127.120.0.1 upwards: 65,000 addresses per second octet.
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 120, 0, 1)) + i);
            let seeder = i % 2 == 0;
            PeerScript {
                ip,
                kind: Kind::IncomingOnly,
                arrive_ms: u64::from(i) * 1000 / u64::from(rate.max(1)),
                leave_ms: u64::from(seconds) * 1000 + 60_000,
                start_pieces: if seeder { PIECES } else { PIECES / 10 },
                rate: if seeder { 0.0 } else { 20.0 },
                tracked: false,
            }
        })
        .collect();
    let listener =
        crate::peer::engine::bind_listener(listen).map_err(|e| format!("{listen}: {e}"))?;
    let peer = crate::config::Peer {
        incoming_handlers: handlers,
        allow_private_addresses: true,
        ..crate::config::Peer::default()
    };
    let options = HarnessOptions {
        info_hash,
        pieces: PIECES,
        threshold: crate::torrent::threshold_pieces(0.98, PIECES),
        workers,
        revisit: peer.revisit_delay_secs,
        backoff: peer.retry_backoff_secs.clone(),
        peer,
    };
    let harness = Harness::start(dir, &options, Some(listener)).map_err(|e| e.to_string())?;
    let handlers = harness.handlers;
    let reactor = Reactor::start(
        vec![SimTorrent {
            info_hash,
            total: PIECES,
            lives,
        }],
        ReactorOptions {
            dial: Some(listen),
            // Once each: a NAT-ed client dials a peer it learned of, not every few seconds.
            dial_every_ms: u64::MAX / 4,
            hold_ms,
            ..ReactorOptions::default()
        },
    )
    .map_err(|e| format!("simulator: {e}"))?;
    let end = Duration::from_millis(u64::from(seconds) * 1000 + hold_ms + 2_000);
    std::thread::sleep(end);
    let counters = &reactor.counters;
    let (dialled, connected) = (
        counters.dials.load(Ordering::Relaxed),
        counters.dials_connected.load(Ordering::Relaxed),
    );
    drop(reactor);
    let stats = &harness.engine.stats;
    let (accepted, refused_busy) = (
        stats.incoming_accepted.load(Ordering::Relaxed),
        stats.incoming_refused_busy.load(Ordering::Relaxed),
    );
    let db = harness.finish().map_err(|e| e.to_string())?;
    let conn = crate::store::schema::open_read_only(&db).map_err(|e| e.to_string())?;
    let count = |sql: &str| {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .unwrap_or(-1)
    };
    Ok(BurstResult {
        dialled,
        connected,
        accepted,
        refused_busy,
        peers: u64::try_from(count("SELECT count(*) FROM peer")).unwrap_or(0),
        peers_visited_twice: u64::try_from(count("SELECT count(*) FROM peer WHERE visits > 1"))
            .unwrap_or(0),
        visits_in: u64::try_from(count(
            "SELECT count(*) FROM visit WHERE direction = 'in' AND outcome = 'ok'",
        ))
        .unwrap_or(0),
        handlers,
    })
}
