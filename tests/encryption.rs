//! Message stream encryption against simulated clients that require it, on loopback:
//! which `peer.encryption` policies reach them, what the visit rows say, and incoming
//! MSE connections (accepted, for an unknown torrent, garbage). Every test uses its own
//! 127.N.0.x addresses.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use btda::config::Encryption;
use btda::peer::encryption::initiate;
use btda::peer::engine;
use btda::run::Shutdown;
use btda::sim::{Behaviour, FakePeer, Harness, HarnessOptions};
use btda::torrent::InfoHash;
use btda::wire::mse::{CRYPTO_PLAINTEXT, CRYPTO_RC4};
use btda::wire::{Handshake, Message};

const PIECES: u32 = 100;
const HASH: InfoHash = InfoHash([0x5e; 20]);

fn harness(
    dir: &tempfile::TempDir,
    encryption: Encryption,
    listener: Option<std::net::TcpListener>,
) -> Harness {
    let options = HarnessOptions {
        info_hash: HASH,
        pieces: PIECES,
        threshold: 98,
        workers: 4,
        peer: btda::config::Peer {
            connect_timeout_ms: btda::config::Timeout::Fixed(Duration::from_millis(1000)),
            handshake_timeout_ms: btda::config::Timeout::Fixed(Duration::from_millis(1500)),
            silence_timeout_ms: Duration::from_millis(1000),
            state_window_ms: Duration::from_millis(150),
            visit_cap_ms: Duration::from_millis(3000),
            incoming_handlers: 4,
            allow_private_addresses: true,
            encryption,
            ..btda::config::Peer::default()
        },
        revisit: Duration::from_millis(300),
        backoff: vec![Duration::from_millis(200)],
    };
    Harness::start(dir.path(), &options, listener).unwrap()
}

type Row = (String, Option<i64>, Option<String>, i64, String);

/// (outcome, pieces, encryption, fallback, direction) of every visit, in order.
fn rows(db: &std::path::Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT outcome, pieces, encryption, fallback, direction FROM visit ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn confirmed(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM confirmed_download", [], |r| r.get(0))
        .unwrap()
}

/// One visit to a client that requires encryption, under `policy`: the visit row and
/// the report's count of peers reached only with encryption.
fn visit_requiring(policy: Encryption, net: u8) -> (Row, i64) {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(&dir, policy, None);
    let peer = FakePeer::start_encrypted(
        SocketAddr::from(([127, net, 0, 1], 0)),
        HASH,
        PIECES,
        40,
        Behaviour::Bitfield,
    )
    .unwrap();
    h.add(peer.addr);
    assert!(h.wait_until(Duration::from_secs(10), |h| h.visits() >= 1));
    let db = h.finish().unwrap();
    let report = btda::offline::report::read(&db).unwrap();
    let only = report.torrents[0].encrypted_only;
    if only > 0 {
        // The text report gives the share of the peers too.
        let text = btda::offline::report::render_text(&report);
        assert!(text.contains(&format!("{only} (100.0 %)")), "{text}");
    }
    (rows(&db).remove(0), only)
}

#[test]
fn fallback_and_require_reach_a_client_that_requires_encryption_plaintext_does_not() {
    let ((outcome, pieces, crypto, fallback, _), only) = visit_requiring(Encryption::Fallback, 60);
    assert_eq!(
        (outcome.as_str(), pieces, crypto.as_deref(), fallback),
        ("ok", Some(40), Some("rc4"), 1),
        "fallback: plaintext refused, then MSE in the same visit"
    );
    assert_eq!(
        only, 1,
        "the report counts the peer as reachable only encrypted"
    );
    let ((outcome, pieces, crypto, fallback, _), only) = visit_requiring(Encryption::Require, 61);
    assert_eq!(
        (outcome.as_str(), pieces, crypto.as_deref(), fallback),
        ("ok", Some(40), Some("rc4"), 0)
    );
    assert_eq!(only, 0, "without a plaintext attempt there is no evidence");
    let ((outcome, pieces, crypto, _, _), _) = visit_requiring(Encryption::Plaintext, 62);
    assert!(
        outcome == "closed_in_handshake" || outcome == "reset",
        "a plaintext btda is refused: {outcome}"
    );
    assert_eq!((pieces, crypto), (None, None));
}

#[test]
fn an_encrypted_leecher_that_finishes_is_one_confirmed_download() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(&dir, Encryption::Fallback, None);
    let peer = FakePeer::start_encrypted(
        SocketAddr::from(([127, 63, 0, 1], 0)),
        HASH,
        PIECES,
        10,
        Behaviour::Bitfield,
    )
    .unwrap();
    h.add(peer.addr);
    assert!(h.wait_until(Duration::from_secs(10), |h| h.visits() >= 1));
    peer.set_pieces(PIECES);
    assert!(h.wait_until(Duration::from_secs(10), |h| {
        h.engine.queue.counts().confirmed == 1
    }));
    let db = h.finish().unwrap();
    assert_eq!(confirmed(&db), 1);
    let pieces: Vec<_> = rows(&db).into_iter().map(|r| r.1).collect();
    assert_eq!(pieces, [Some(10), Some(100)]);
}

#[test]
fn a_plaintext_only_peer_is_still_reached_with_fallback_and_prefer() {
    for (policy, net) in [(Encryption::Fallback, 64), (Encryption::Prefer, 65)] {
        let dir = tempfile::tempdir().unwrap();
        let h = harness(&dir, policy, None);
        let peer = FakePeer::start(
            SocketAddr::from(([127, net, 0, 1], 0)),
            HASH,
            PIECES,
            30,
            Behaviour::Bitfield,
        )
        .unwrap();
        h.add(peer.addr);
        assert!(h.wait_until(Duration::from_secs(10), |h| h.visits() >= 1));
        let db = h.finish().unwrap();
        let (outcome, pieces, crypto, fallback, _) = rows(&db).remove(0);
        assert_eq!(
            (outcome.as_str(), pieces, crypto, fallback),
            ("ok", Some(30), None, 0),
            "{policy:?}"
        );
    }
}

/// Connects to btda from `from` with MSE for `hash` and, once established, sends a
/// bitfield of `pieces`.
fn encrypted_client(to: SocketAddr, from: [u8; 4], hash: InfoHash, pieces: u32) -> bool {
    let tcp = common::connect_from(from, to).unwrap();
    let ours = Handshake::ours(hash, *b"-TR4050-mseclient001").encode();
    let deadline = Instant::now() + Duration::from_secs(5);
    let stop = Shutdown::new();
    let Ok(mut s) = initiate(
        tcp,
        hash,
        CRYPTO_RC4 | CRYPTO_PLAINTEXT,
        &ours,
        deadline,
        &stop,
    ) else {
        return false;
    };
    let mut theirs = [0u8; 68];
    if std::io::Read::read_exact(&mut s, &mut theirs).is_err() {
        return false;
    }
    let bits = btda::sim::fake_peer::bitfield(PIECES, pieces);
    s.write_all(&Message::Bitfield(bits).encode()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Handshake::parse(&theirs).is_ok_and(|h| h.info_hash == hash)
}

#[test]
fn incoming_mse_is_read_and_unknown_or_malformed_handshakes_are_counted() {
    let listener = engine::bind_listener(SocketAddr::from(([127, 66, 0, 1], 0))).unwrap();
    let at = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let h = harness(&dir, Encryption::Fallback, Some(listener));
    assert!(
        encrypted_client(at, [127, 66, 0, 2], HASH, 55),
        "btda answers MSE"
    );
    assert!(h.wait_until(Duration::from_secs(10), |h| h.visits() >= 1));
    // A torrent btda does not analyse: refused after the req2 hash.
    assert!(!encrypted_client(at, [127, 66, 0, 3], InfoHash([1; 20]), 5));
    // Garbage that is neither a BitTorrent handshake nor MSE.
    let mut junk = std::net::TcpStream::connect(at).unwrap();
    junk.write_all(&[0x5a; 700]).unwrap();
    let stats = &h.engine.stats;
    assert!(h.wait_until(Duration::from_secs(10), |_| {
        stats.mse_unknown.load(Ordering::Relaxed) == 1
            && stats.mse_malformed.load(Ordering::Relaxed) == 1
    }));
    assert_eq!(stats.mse_accepted.load(Ordering::Relaxed), 1);
    drop(junk);
    let db = h.finish().unwrap();
    let incoming: Vec<Row> = rows(&db).into_iter().filter(|r| r.4 == "in").collect();
    let ok: Vec<&Row> = incoming.iter().filter(|r| r.0 == "ok").collect();
    assert_eq!(ok.len(), 1, "{incoming:?}");
    assert_eq!(
        (ok[0].1, ok[0].2.as_deref()),
        (Some(55), Some("rc4")),
        "offered RC4 and plaintext, btda's responder chooses RC4"
    );
}
