//! Incoming fairness: one address floods btda's listener with connections that send
//! the 96 bytes of an MSE start and fall silent (each would hold an incoming handler
//! for the whole handshake deadline), while real peers at other addresses connect one
//! after another. With 4 handlers, every real peer must still be handled: the flooder
//! is held to its per-IP share of handshakes and, when the pool is full, loses its
//! oldest connection to the newcomer. The deadline of incoming handshakes follows the
//! measured handshakes of real peers. Addresses 127.67.x.y.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use btda::peer::engine;
use btda::sim::{Harness, HarnessOptions};
use btda::torrent::InfoHash;
use btda::wire::{Handshake, Message};

const PIECES: u32 = 100;
const HASH: InfoHash = InfoHash([0x67; 20]);
const REAL_PEERS: u8 = 24;

/// A real (plaintext) peer from `from`: handshake, btda's handshake back, a bitfield.
/// True when btda answered.
fn real_peer(from: [u8; 4], to: SocketAddr) -> bool {
    let Ok(mut s) = common::connect_from(from, to) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let mut id = *b"-TR4050-realpeer0000";
    id[19] = from[3];
    if s.write_all(&Handshake::ours(HASH, id).encode()).is_err() {
        return false;
    }
    let mut theirs = [0u8; 68];
    if s.read_exact(&mut theirs).is_err() {
        return false;
    }
    let bits = btda::sim::fake_peer::bitfield(PIECES, 60);
    let _ = s.write_all(&Message::Bitfield(bits).encode());
    std::thread::sleep(Duration::from_millis(250));
    Handshake::parse(&theirs).is_ok_and(|h| h.info_hash == HASH)
}

/// btda's engine in-process, listening on `listen` with `handlers` incoming handlers
/// (100 ms state window; `warmup` real handshakes before the incoming deadline is
/// measured); returns it and the listen address.
fn listening(
    dir: &tempfile::TempDir,
    listen: [u8; 4],
    handlers: usize,
    warmup: u64,
) -> (Harness, SocketAddr) {
    let listener = engine::bind_listener(SocketAddr::from((listen, 0))).unwrap();
    let at = listener.local_addr().unwrap();
    let options = HarnessOptions {
        info_hash: HASH,
        pieces: PIECES,
        threshold: 98,
        workers: 4,
        peer: btda::config::Peer {
            state_window_ms: Duration::from_millis(100),
            incoming_handlers: handlers,
            auto_timeout_warmup: warmup,
            allow_private_addresses: true,
            ..btda::config::Peer::default()
        },
        revisit: Duration::from_secs(60),
        backoff: vec![Duration::from_secs(60)],
    };
    (
        Harness::start(dir.path(), &options, Some(listener)).unwrap(),
        at,
    )
}

#[test]
fn a_slow_mse_flood_from_one_address_does_not_turn_real_peers_away() {
    let dir = tempfile::tempdir().unwrap();
    let (h, at) = listening(&dir, [127, 67, 0, 1], 4, 16);
    assert_eq!(
        h.engine.measured.incoming.current(),
        Duration::from_secs(6),
        "before any measurement: the upper bound"
    );

    // The flood: 60 connections a second from 127.67.9.9, each 96 bytes of an MSE
    // start, then silence; kept open (as the attacker would) until the end.
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
        std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut seed = 0x9e37_79b9_u32;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut s) = common::connect_from([127, 67, 9, 9], at) {
                    let junk: Vec<u8> = (0..96)
                        .map(|_| {
                            seed ^= seed << 13;
                            seed ^= seed >> 17;
                            seed ^= seed << 5;
                            seed as u8
                        })
                        .collect();
                    let _ = s.write_all(&junk);
                    held.push(s);
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(16));
            }
            held.len()
        })
    };
    std::thread::sleep(Duration::from_millis(500)); // the flood fills the pool first

    let answered = (1..=REAL_PEERS)
        .filter(|&n| {
            std::thread::sleep(Duration::from_millis(150));
            real_peer([127, 67, 1, n], at)
        })
        .count();
    stop.store(true, Ordering::Relaxed);
    let flood_held = flood.join().unwrap();
    let stats = &h.engine.stats;
    let refused_per_ip = stats.incoming_refused_per_ip.load(Ordering::Relaxed);
    let shed = stats.incoming_shed.load(Ordering::Relaxed);
    let deadline = h.engine.measured.incoming.current();
    let db = h.finish().unwrap();

    assert!(flood_held > 100, "the flood ran: {flood_held} connections");
    assert_eq!(
        answered,
        usize::from(REAL_PEERS),
        "every real peer was handled (flood: {} connections, {refused_per_ip} refused per IP, {shed} shed)",
        opened.load(Ordering::Relaxed)
    );
    assert!(
        refused_per_ip > 50,
        "the flooder was held to its share: {refused_per_ip}"
    );
    assert!(shed >= 1, "the full pool shed the flooder's connections");
    assert!(
        deadline <= Duration::from_millis(1_000),
        "after {REAL_PEERS} real handshakes on loopback the incoming deadline is the lower bound, not 6 s: {deadline:?}"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ok_in: i64 = conn
        .query_row(
            "SELECT count(*) FROM visit WHERE direction = 'in' AND outcome = 'ok' AND pieces = 60",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        ok_in,
        i64::from(REAL_PEERS),
        "each real peer's visit is stored"
    );
}

/// One identity from `from`: its own peer id and BEP 10 `p` port, an empty bitfield,
/// then a have for every piece (a download finished before btda's eyes). False when
/// btda closed the connection before its handshake (the gate refused it).
fn identity(from: [u8; 4], to: SocketAddr, n: u16) -> bool {
    let Ok(mut s) = common::connect_from(from, to) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let mut id = *b"-XX0001-000000000000";
    id[8..12].copy_from_slice(format!("{n:04}").as_bytes());
    if s.write_all(&Handshake::ours(HASH, id).encode()).is_err() {
        return false;
    }
    let mut theirs = [0u8; 68];
    if s.read_exact(&mut theirs).is_err() {
        return false;
    }
    let mut out = Message::Extended {
        id: 0,
        payload: btda::wire::extended::our_handshake(10_000 + n, "sybil"),
    }
    .encode();
    out.extend(Message::Bitfield(vec![0; PIECES.div_ceil(8) as usize]).encode());
    for piece in 0..PIECES {
        out.extend(Message::Have(piece).encode());
    }
    let _ = s.write_all(&out);
    // Until btda ends the visit (its state window), so nothing is cut short.
    let mut sink = [0u8; 4096];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    true
}

#[test]
fn three_hundred_identities_from_one_address_are_at_most_ten_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let (h, at) = listening(&dir, [127, 67, 2, 1], 16, 100);
    // Four at a time (the address's share of handshakes), each identity until btda
    // took it.
    let workers: Vec<_> = (0..4u16)
        .map(|k| {
            std::thread::spawn(move || {
                for n in (k..300).step_by(4) {
                    while !identity([127, 67, 3, 3], at, n) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let crowded = h.engine.queue.counts().crowded;
    let db = h.finish().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM peer"),
        10,
        "at most 10 peers at one IP"
    );
    assert_eq!(
        count("SELECT count(*) FROM confirmed_download"),
        10,
        "at most the bound's downloads"
    );
    assert_eq!(
        count("SELECT count(*) FROM peer WHERE crossed_strict = 1"),
        0,
        "crossings seen only through incoming connections from a crowded IP leave the strict count"
    );
    // Each of the other 290 identities is refused and counted when its visit succeeds
    // (under load a visit may fail and record nothing, which counts no identity).
    assert!(
        (280..=290).contains(&crowded),
        "the other identities were refused and counted: {crowded}"
    );
}
