//! Outgoing visits over uTP (BEP 29) on loopback: a peer that only speaks uTP (no TCP
//! listener on its port) is reached with `peer.transport = "both"` after TCP is refused,
//! and its visit row says `utp`; with "tcp" it stays unreached. Addresses 127.79.x.y.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use btda::peer::TransportChoice;
use btda::peer::stream::Transport;
use btda::run::Shutdown;
use btda::sim::{Harness, HarnessOptions};
use btda::torrent::InfoHash;
use btda::utp::{Settings, UtpSocket};
use btda::wire::{Handshake, Message};

const PIECES: u32 = 100;
const HASH: InfoHash = InfoHash([0x79; 20]);

/// A uTP-only peer at `at`: answers each connection with its handshake and a bitfield
/// of 60 pieces, until `stop`.
fn utp_peer(at: SocketAddr, stop: Shutdown) -> (SocketAddr, std::thread::JoinHandle<u32>) {
    let socket = UtpSocket::bind(at, true, Settings::default(), stop.clone()).unwrap();
    let addr = socket.local_addr().unwrap();
    let serve = std::thread::spawn(move || {
        let mut served = 0;
        while !stop.requested() {
            let Some(mut s) = socket.accept(Duration::from_millis(200)) else {
                continue;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let mut theirs = [0u8; 68];
            if s.read_exact(&mut theirs).is_err() {
                continue;
            }
            let ours = Handshake::ours(HASH, *b"-UT3550-utponlypeer0").encode();
            let bits = btda::sim::fake_peer::bitfield(PIECES, 60);
            let _ = s.write_all(&ours);
            let _ = s.write_all(&Message::Bitfield(bits).encode());
            served += 1;
            // Until btda ends the visit.
            let mut sink = [0u8; 1024];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        }
        served
    });
    (addr, serve)
}

/// A visit row: outcome, pieces, transport.
type Row = (String, Option<i64>, Option<String>);

/// Visits the uTP-only peer once with `transport`: the visit rows and how many uTP
/// connections the peer served.
fn visit_rows(transport: TransportChoice, net: u8) -> (Vec<Row>, u32) {
    let stop = Shutdown::new();
    let (peer, serve) = utp_peer(SocketAddr::from(([127, 79, net, 2], 0)), stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let options = HarnessOptions {
        info_hash: HASH,
        pieces: PIECES,
        threshold: 98,
        workers: 2,
        peer: btda::config::Peer {
            state_window_ms: Duration::from_millis(100),
            connect_timeout_ms: btda::config::Timeout::Fixed(Duration::from_secs(1)),
            listen_address: std::net::IpAddr::from([127, 79, net, 1]),
            listen_port: 0,
            allow_private_addresses: true,
            transport,
            ..btda::config::Peer::default()
        },
        revisit: Duration::from_secs(60),
        backoff: vec![Duration::from_secs(60)],
    };
    let h = Harness::start(dir.path(), &options, None).unwrap();
    h.add(peer);
    assert!(h.wait_until(Duration::from_secs(10), |h| h.visits() >= 1));
    let db = h.finish().unwrap();
    stop.request();
    let served = serve.join().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows = conn
        .prepare("SELECT outcome, pieces, transport FROM visit ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (rows, served)
}

#[test]
fn a_utp_only_peer_is_reached_over_utp_after_tcp_is_refused() {
    let (rows, served) = visit_rows(TransportChoice::Both, 1);
    assert_eq!(served, 1, "the peer answered one uTP connection");
    assert_eq!(
        rows[0],
        ("ok".to_string(), Some(60), Some("utp".to_string())),
        "{rows:?}"
    );
}

#[test]
fn with_tcp_only_the_utp_peer_is_refused_and_no_transport_is_recorded() {
    let (rows, served) = visit_rows(TransportChoice::Tcp, 2);
    assert_eq!(served, 0);
    assert_eq!(rows[0].0, "refused", "{rows:?}");
    assert_eq!(rows[0].2, None);
}
