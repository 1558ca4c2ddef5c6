//! Peer evaluation against fake peers on loopback: the real engine (queue, workers,
//! writer) visits scripted peers, and each test asserts the recorded visits, pieces,
//! outcomes and confirmed downloads. Every test uses its own 127.N.0.x addresses.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use btda::peer::Engine;
use btda::peer::engine;
use btda::sim::{Behaviour, FakePeer, Harness, HarnessOptions};
use btda::torrent::{InfoHash, TorrentId};

const PIECES: u32 = 100;
const T: u32 = 98;
const HASH: InfoHash = InfoHash([0x42; 20]);

/// The database of a finished harness, with the folder that holds it.
struct Finished {
    conn: rusqlite::Connection,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Finished {
    type Target = rusqlite::Connection;
    fn deref(&self) -> &rusqlite::Connection {
        &self.conn
    }
}

/// The engine under test, with test timeouts: connect 1 s, handshake 0.8 s, silence 1 s,
/// cap 3 s, revisits after 0.3 s, two retries after 0.2 s.
struct H {
    dir: tempfile::TempDir,
    inner: Harness,
}

impl H {
    fn new(grace_ms: u64, listener: Option<std::net::TcpListener>) -> Self {
        Self::with(grace_ms, listener, true)
    }

    /// With `allow_private` false, addresses that PEX names on loopback are refused as
    /// on a real network (peers added by hand still are visited).
    fn with(grace_ms: u64, listener: Option<std::net::TcpListener>, allow_private: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let options = HarnessOptions {
            info_hash: HASH,
            pieces: PIECES,
            threshold: T,
            workers: 4,
            peer: btda::config::Peer {
                connect_timeout_ms: btda::config::Timeout::Fixed(Duration::from_millis(1000)),
                handshake_timeout_ms: btda::config::Timeout::Fixed(Duration::from_millis(800)),
                silence_timeout_ms: Duration::from_millis(1000),
                state_window_ms: Duration::from_millis(grace_ms),
                visit_cap_ms: Duration::from_millis(3000),
                incoming_handlers: 4,
                allow_private_addresses: allow_private,
                ..btda::config::Peer::default()
            },
            revisit: Duration::from_millis(300),
            backoff: vec![Duration::from_millis(200), Duration::from_millis(200)],
        };
        let inner = Harness::start(dir.path(), &options, listener).unwrap();
        Self { dir, inner }
    }

    fn add(&self, addr: SocketAddr) {
        self.inner.add(addr);
    }

    fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    fn wait_for(&self, what: &str, limit: Duration, mut check: impl FnMut(&Engine) -> bool) {
        assert!(
            self.inner.wait_until(limit, |h| check(&h.engine)),
            "timed out waiting for {what}"
        );
    }

    fn finish(self) -> Finished {
        let db = self.inner.finish().unwrap();
        Finished {
            conn: rusqlite::Connection::open(db).unwrap(),
            _dir: self.dir,
        }
    }
}

fn addr(net: u8, host: u8) -> SocketAddr {
    SocketAddr::from(([127, net, 0, host], 0))
}

fn fake(net: u8, host: u8, pieces: u32, b: Behaviour) -> FakePeer {
    FakePeer::start(addr(net, host), HASH, PIECES, pieces, b).unwrap()
}

/// (outcome, pieces, state, duration_ms, peer_id, invalid) of every outgoing visit to
/// the peer with this `peer_key`-less identity: visits are matched by order instead.
type VisitTuple = (String, Option<i64>, Option<String>, i64, Option<i64>, i64);

fn visits(conn: &rusqlite::Connection) -> Vec<VisitTuple> {
    conn.prepare(
        "SELECT outcome, pieces, state, duration_ms, peer_id, invalid_messages FROM visit ORDER BY id",
    )
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn seeders_end_at_once_and_are_not_revisited() {
    let h = H::new(150, None);
    let have_all = fake(10, 1, PIECES, Behaviour::HaveAll);
    let bitfield = fake(10, 2, PIECES, Behaviour::Bitfield);
    h.add(have_all.addr);
    h.add(bitfield.addr);
    h.wait_for("both seeders finished", Duration::from_secs(10), |e| {
        e.queue.counts().peers.finished == 2
    });
    std::thread::sleep(Duration::from_millis(700)); // two revisit delays: nothing more happens
    assert_eq!((have_all.served(), bitfield.served()), (1, 1));
    let conn = h.finish();
    let v = visits(&conn);
    assert_eq!(v.len(), 2);
    let states: Vec<_> = v.iter().map(|x| x.2.clone().unwrap()).collect();
    assert!(
        states.contains(&"have_all".into()) && states.contains(&"bitfield".into()),
        "{states:?}"
    );
    for (outcome, pieces, _, duration, peer_id, _) in &v {
        assert_eq!(outcome, "ok");
        assert_eq!(*pieces, Some(i64::from(PIECES)));
        assert!(
            *duration < 500,
            "a seeder visit ends at once, not after the silence timeout: {duration} ms"
        );
        assert!(peer_id.is_some());
    }
    assert_eq!(
        count(&conn, "SELECT count(*) FROM confirmed_download"),
        0,
        "seeders from the start are not downloads"
    );
    let client: String = conn
        .query_row(
            "SELECT client || ' ' || client_version FROM peer LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(client, "Transmission 3.00");
}

#[test]
fn a_growing_leecher_becomes_exactly_one_confirmed_download() {
    let h = H::new(150, None);
    let leecher = fake(11, 1, 10, Behaviour::Bitfield);
    h.add(leecher.addr);
    h.wait_for("first visit", Duration::from_secs(10), |_| {
        leecher.served() >= 1
    });
    h.wait_for("first visit recorded", Duration::from_secs(10), |e| {
        e.stats.visits.load(Ordering::Relaxed) >= 1
    });
    leecher.set_pieces(50);
    h.wait_for("second visit", Duration::from_secs(10), |e| {
        e.stats.visits.load(Ordering::Relaxed) >= 2
    });
    leecher.set_pieces(PIECES);
    h.wait_for("crossing", Duration::from_secs(10), |e| {
        e.queue.counts().confirmed == 1
    });
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(leecher.served(), 3, "a complete peer is not revisited");
    let conn = h.finish();
    let pieces: Vec<Option<i64>> = visits(&conn).into_iter().map(|v| v.1).collect();
    assert_eq!(pieces, vec![Some(10), Some(50), Some(100)]);
    assert_eq!(count(&conn, "SELECT count(*) FROM confirmed_download"), 1);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM confirmed_download_strict"),
        1
    );
    let (first, last, visits, speed, crossed, seen): (i64, i64, i64, f64, i64, i64) = conn
        .query_row(
            "SELECT first_pieces, last_pieces, visits, max_speed, crossed_at, last_seen FROM peer",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .unwrap();
    assert_eq!((first, last, visits), (10, 100, 3));
    assert!(speed > 0.0);
    assert_eq!(crossed, seen);
}

/// Visits one fake peer (127.`net`.0.1) once; returns that visit and the database.
fn one_visit(grace_ms: u64, net: u8, pieces: u32, b: Behaviour) -> (VisitTuple, Finished) {
    let h = H::new(grace_ms, None);
    let peer = fake(net, 1, pieces, b);
    h.add(peer.addr);
    h.wait_for("a visit", Duration::from_secs(10), |e| {
        e.stats.visits.load(Ordering::Relaxed) >= 1
    });
    let conn = h.finish();
    (visits(&conn).remove(0), conn)
}

#[test]
fn a_peer_without_bitfield_counts_as_zero_with_state_none() {
    let (v, _) = one_visit(150, 12, 0, Behaviour::NoBitfield);
    assert_eq!(
        (v.0.as_str(), v.1, v.2.as_deref()),
        ("ok", Some(0), Some("none"))
    );
    assert!(v.3 >= 900, "ended by the silence timeout: {} ms", v.3);
}

#[test]
fn a_re_sent_bitfield_replaces_the_first() {
    let (v, _) = one_visit(
        400,
        13,
        20,
        Behaviour::ResendBitfield {
            later: 60,
            delay_ms: 100,
        },
    );
    assert_eq!(
        (v.0.as_str(), v.1, v.2.as_deref()),
        ("ok", Some(60), Some("bitfield"))
    );
}

#[test]
fn batched_haves_count_when_they_arrive_within_the_visit() {
    let batch = Behaviour::BatchedHaves {
        count: 30,
        delay_ms: 600,
    };
    // Grace longer than the batch delay: the haves are part of this visit.
    let (v, conn) = one_visit(900, 14, 10, batch.clone());
    assert_eq!((v.0.as_str(), v.1), ("ok", Some(40)));
    let (messages, gap): (i64, i64) = conn
        .query_row("SELECT messages, max_gap_ms FROM visit", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(messages, 31);
    assert!(
        gap >= 500,
        "the silence before the batch is the longest gap: {gap}"
    );

    // Grace shorter than the delay: the visit ends after the bitfield, quietly.
    let (v, _) = one_visit(150, 14, 10, batch);
    assert_eq!((v.0.as_str(), v.1), ("ok", Some(10)));
    assert!(v.3 < 600, "ended after the quiet grace: {} ms", v.3);
}

#[test]
fn failing_peers_are_classified_retried_and_dropped() {
    let h = H::new(150, None);
    let silent = fake(15, 1, 0, Behaviour::Silent);
    let closer = fake(15, 2, 0, Behaviour::CloseAfterHandshake);
    let other = fake(15, 3, 0, Behaviour::OtherInfoHash);
    let huge = fake(15, 4, 0, Behaviour::HugeMessage);
    // A closed port: bind, learn the port, close.
    let closed = std::net::TcpListener::bind(addr(15, 5))
        .unwrap()
        .local_addr()
        .unwrap();
    for a in [silent.addr, closer.addr, other.addr, huge.addr, closed] {
        h.add(a);
    }
    // One attempt and two backoff retries each, then dropped.
    h.wait_for("all dropped", Duration::from_secs(20), |e| {
        e.queue.counts().peers.dropped == 5
    });
    let conn = h.finish();
    let mut outcomes: Vec<(String, i64)> = conn
        .prepare("SELECT outcome, count(*) FROM visit GROUP BY outcome ORDER BY outcome")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    outcomes.sort();
    assert_eq!(
        outcomes,
        vec![
            ("closed_after_handshake".into(), 3),
            ("handshake_timeout".into(), 3),
            ("infohash_mismatch".into(), 3),
            ("protocol_error".into(), 3),
            ("refused".into(), 3),
        ]
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM visit WHERE peer_id IS NOT NULL"
        ),
        0
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM peer"),
        0,
        "no successful visit, no peer row"
    );
    assert_eq!(count(&conn, "SELECT count(DISTINCT attempt) FROM visit"), 3);
    assert_eq!(silent.served(), 3);
}

#[test]
fn an_invalid_bitfield_is_ignored_and_counted() {
    let (v, _) = one_visit(150, 16, 7, Behaviour::BadBitfieldThenHaves);
    assert_eq!(
        (v.0.as_str(), v.1, v.2.as_deref(), v.5),
        ("ok", Some(7), Some("haves"), 1)
    );
}

#[test]
fn pex_peers_are_queued_with_source_pex() {
    let h = H::new(150, None);
    let seeder = fake(17, 2, PIECES, Behaviour::HaveAll);
    let gossip = fake(
        17,
        1,
        5,
        Behaviour::Pex {
            peers: vec![seeder.addr],
        },
    );
    h.add(gossip.addr);
    h.wait_for("the pex peer visited", Duration::from_secs(10), |_| {
        seeder.served() >= 1
    });
    h.wait_for("two peers recorded", Duration::from_secs(10), |e| {
        e.stats.visits_ok.load(Ordering::Relaxed) >= 2
    });
    assert_eq!(h.engine().stats.pex_new.load(Ordering::Relaxed), 1);
    let conn = h.finish();
    let sources: Vec<String> = common::column(&conn, "SELECT source FROM peer ORDER BY id");
    assert_eq!(sources, vec!["manual", "pex"]);
    let v: String = conn
        .query_row(
            "SELECT client_v FROM peer WHERE source = 'manual'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, "FakePeer 1.0");
}

/// A client that connects to btda and speaks first, like an incoming peer.
fn connect_in(
    to: SocketAddr,
    from: std::net::IpAddr,
    hash: InfoHash,
    pieces: u32,
    listen_port: Option<u16>,
) -> Vec<u8> {
    use std::io::{Read, Write};
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(from, 0).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let mut s: std::net::TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Every host its own client, with its own peer id.
    let mut id = *b"-qB4630-incoming0000";
    if let std::net::IpAddr::V4(v4) = from {
        id[16..].copy_from_slice(&v4.octets());
    }
    let mut hs = btda::wire::Handshake::ours(hash, id);
    if listen_port.is_none() {
        hs.reserved = [0; 8];
    }
    s.write_all(&hs.encode()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 68];
    if s.read_exact(&mut buf).is_ok() {
        answer.extend_from_slice(&buf);
        if let Some(p) = listen_port {
            let hello = format!("d1:md6:ut_pexi1ee1:pi{p}e1:v17:qBittorrent/4.6.3e");
            s.write_all(
                &btda::wire::Message::Extended {
                    id: 0,
                    payload: hello.into_bytes(),
                }
                .encode(),
            )
            .unwrap();
        }
        s.write_all(
            &btda::wire::Message::Bitfield(btda::sim::fake_peer::bitfield(PIECES, pieces)).encode(),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    } else {
        let _ = s.read_to_end(&mut answer);
    }
    answer
}

#[test]
fn incoming_peers_are_matched_counted_once_and_unknown_hashes_refused() {
    let listener = engine::bind_listener(SocketAddr::from(([127, 18, 0, 1], 0))).unwrap();
    let at = listener.local_addr().unwrap();
    let h = H::new(150, Some(listener));
    // A known leecher, visited outgoing first…
    let leecher = fake(18, 2, 10, Behaviour::Bitfield);
    h.add(leecher.addr);
    h.wait_for("outgoing visit", Duration::from_secs(10), |e| {
        e.stats.visits_ok.load(Ordering::Relaxed) >= 1
    });
    // …then connects in from the same host, complete: matched, one confirmed download.
    let answer = connect_in(at, leecher.addr.ip(), HASH, PIECES, None);
    assert_eq!(answer.len(), 68, "btda answered the handshake");
    // A new host connects in with a listen port: a new incoming peer.
    connect_in(at, "127.18.0.3".parse().unwrap(), HASH, 5, Some(7777));
    // An info-hash btda does not analyse: closed right after the handshake, no answer.
    let start = Instant::now();
    let answer = connect_in(
        at,
        "127.18.0.4".parse().unwrap(),
        InfoHash([1; 20]),
        0,
        None,
    );
    assert!(
        answer.is_empty() && start.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    h.wait_for("incoming visits", Duration::from_secs(10), |e| {
        e.stats.visits.load(Ordering::Relaxed) >= 3
    });
    h.wait_for("unknown counted", Duration::from_secs(5), |e| {
        e.stats.incoming_unknown.load(Ordering::Relaxed) == 1
    });
    let conn = h.finish();
    assert_eq!(count(&conn, "SELECT count(*) FROM peer"), 2);
    assert_eq!(count(&conn, "SELECT count(*) FROM confirmed_download"), 1);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM visit WHERE direction = 'in' AND outcome = 'ok'"
        ),
        2
    );
    let (source, client): (String, String) = conn
        .query_row(
            "SELECT source, client_v FROM peer WHERE source = 'incoming'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (source.as_str(), client.as_str()),
        ("incoming", "qBittorrent/4.6.3")
    );
}

#[test]
fn btda_never_counts_itself() {
    // Listening on 127.18.1.1 but not told that this address is ours: only the peer id
    // in the handshakes can tell.
    let listener = engine::bind_listener(SocketAddr::from(([127, 18, 1, 1], 0))).unwrap();
    let me = listener.local_addr().unwrap();
    let h = H::new(150, Some(listener));
    h.add(me);
    h.wait_for(
        "both ends of the self-connection",
        Duration::from_secs(10),
        |e| e.stats.self_connections.load(Ordering::Relaxed) >= 2,
    );
    let q = h.engine().queue.clone();
    assert_eq!(
        q.add(TorrentId::new(0), me, btda::book::Source::Tracker),
        btda::book::Added::Ours,
        "never queued again"
    );
    assert_eq!(q.counts().ours, 2, "found by its peer id, then named again");
    let conn = h.finish();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM peer"),
        0,
        "no peer row for btda"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM visit"),
        0,
        "no visit of itself"
    );
}

#[test]
fn pex_cannot_steer_btda_to_non_global_addresses() {
    let h = H::with(150, None, false);
    let victim = fake(19, 2, PIECES, Behaviour::HaveAll);
    let gossip = fake(
        19,
        1,
        5,
        Behaviour::Pex {
            // Loopback and unspecified only: a test never names an address it could
            // reach outside this machine, even if the filter failed.
            peers: vec![
                victim.addr,
                SocketAddr::from(([127, 19, 0, 3], 6881)),
                SocketAddr::from(([0, 0, 0, 0], victim.addr.port())),
            ],
        },
    );
    h.add(gossip.addr);
    h.wait_for("the pex message read", Duration::from_secs(10), |e| {
        e.queue.counts().not_global_pex >= 3
    });
    std::thread::sleep(Duration::from_millis(500));
    let c = h.engine().queue.counts();
    // Three per visit of the gossiping peer (it is revisited).
    assert!(
        c.not_global_pex >= 3 && c.not_global_pex.is_multiple_of(3),
        "{c:?}"
    );
    assert_eq!(c.peers.known, 1, "{c:?}");
    assert_eq!(
        victim.served(),
        0,
        "the addresses PEX named were not dialled"
    );
    let conn = h.finish();
    let sources: Vec<String> = common::column(&conn, "SELECT source FROM peer");
    assert_eq!(sources, vec!["manual"]);
}
