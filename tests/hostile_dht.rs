//! A hostile DHT of 300 nodes on 127.74.x.y: every `get_peers` reply names 16 more of
//! them and 120 peer addresses in four /24 networks of someone else's (127.75.0–3.x),
//! and 100 further addresses only send queries to btda. btda's node takes at most the
//! caps from a lookup, lets only nodes that answered its own queries into its routing
//! table, and the peer queue keeps at most its per-source bound of what the lookups
//! found and dials those never-answered addresses within the dial budget.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use btda::book::{PeerKeyer, PeerQueue, Source, VisitResult};
use btda::dht::krpc::{Body, Message, NodeInfo, Query, Response};
use btda::dht::node::{DhtNode, NodeSettings};
use btda::run::Shutdown;
use btda::schedule::Policy;
use btda::torrent::{InfoHash, TorrentId, TorrentRegistry};

const HOSTILE: usize = 300;
const QUERIERS: usize = 100;
const HASH: InfoHash = InfoHash([0x74; 20]);

fn hostile_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 74, (i / 200) as u8, (i % 200) as u8 + 1], 7000))
}

/// The hostile nodes: answer every query with 16 more of them and 120 victims.
fn run_hostile(sockets: Vec<UdpSocket>, stop: Arc<AtomicBool>) {
    let mut seed = 0x2545_f491_u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for s in &sockets {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                continue;
            };
            idle = false;
            let Ok(q) = Message::decode(&buf[..n]) else {
                continue;
            };
            if !matches!(q.body, Body::Query(_)) {
                continue;
            }
            let nodes = (0..16)
                .map(|_| {
                    let mut id = [0u8; 20];
                    for b in &mut id {
                        *b = next() as u8;
                    }
                    NodeInfo {
                        id,
                        addr: hostile_addr(next() as usize % HOSTILE),
                    }
                })
                .collect();
            let values = (0..120)
                .map(|_| {
                    let r = next();
                    SocketAddr::from((
                        [127, 75, (r % 4) as u8, (r >> 8) as u8 % 250 + 1],
                        1024 + (r >> 16) as u16 % 10,
                    ))
                })
                .collect();
            let mut id = [0u8; 20];
            id[..4].copy_from_slice(&next().to_be_bytes());
            let reply = Message {
                tid: q.tid,
                id: Some(id),
                body: Body::Response(Response {
                    nodes,
                    values,
                    token: Some(b"tk".to_vec()),
                    ..Response::default()
                }),
            };
            let _ = s.send_to(&reply.encode(), from);
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn a_hostile_dht_adds_at_most_the_caps_and_btda_dials_within_the_budget() {
    let stop = Shutdown::new();
    let node = DhtNode::start(
        SocketAddr::from(([127, 74, 9, 1], 0)),
        [0x11; 20],
        &[],
        NodeSettings {
            alpha: 8,
            query_timeout: Duration::from_millis(300),
            max_queries: 200,
            rate_per_sec: 5_000,
        },
        stop.clone(),
    )
    .unwrap();
    let to = node.local_addr().unwrap();
    let sockets: Vec<UdpSocket> = (0..HOSTILE)
        .map(|i| {
            let s = UdpSocket::bind(hostile_addr(i)).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let hostile_stop = Arc::new(AtomicBool::new(false));
    let hostile = {
        let stop = Arc::clone(&hostile_stop);
        std::thread::spawn(move || run_hostile(sockets, stop))
    };
    // Addresses that only query btda (and never answer its pings).
    let queriers: Vec<UdpSocket> = (0..QUERIERS)
        .map(|i| UdpSocket::bind(SocketAddr::from(([127, 74, 5, i as u8 + 1], 7000))).unwrap())
        .collect();
    for (i, q) in queriers.iter().enumerate() {
        let mut id = [0x22; 20];
        id[19] = i as u8;
        let msg = Message {
            tid: vec![1, i as u8],
            id: Some(id),
            body: Body::Query(Query::FindNode([0x33; 20], Default::default())),
        };
        q.send_to(&msg.encode(), to).unwrap();
    }

    let queue = PeerQueue::new(
        TorrentRegistry::with_thresholds(&[Some(100)]),
        Policy::from_config(&btda::config::Peer::default()),
        PeerKeyer::new([0; 32]),
    )
    .allow_private(true)
    .with_max_peers_per_ip(10)
    .with_max_peers_per_source(1_500)
    .with_dial_budget(2_000, 10);
    let torrent = TorrentId::new(0);
    let mut found = 0;
    for _ in 0..3 {
        let lookup = node.get_peers(HASH, &[hostile_addr(0)]);
        assert!(
            lookup.peers.len() <= 2_000,
            "at most 2,000 peers per lookup: {}",
            lookup.peers.len()
        );
        assert!(
            lookup.queried <= 200,
            "at most max_queries: {}",
            lookup.queried
        );
        assert!(lookup.answered > 10, "the hostile DHT answered");
        found += lookup.peers.len();
        for p in &lookup.peers {
            queue.add(torrent, *p, Source::Dht);
        }
    }
    hostile_stop.store(true, Ordering::Relaxed);
    hostile.join().unwrap();

    // Routing table: only nodes that answered a query of ours.
    let table: Vec<NodeInfo> = node.nodes();
    let querier_ips: HashSet<_> = queriers
        .iter()
        .map(|q| q.local_addr().unwrap().ip())
        .collect();
    assert!(!table.is_empty());
    assert!(
        table
            .iter()
            .all(|n| !querier_ips.contains(&n.addr.ip()) && n.addr.port() == 7000),
        "{table:?}"
    );
    stop.request();
    node.join();

    // The queue kept at most its bound from the DHT; the rest is counted.
    let counts = queue.counts();
    assert!(
        found > 1_500,
        "the lookups found more than the bound: {found}"
    );
    assert_eq!(counts.peers.known, 1_500);
    assert!(counts.source_full > 0, "{counts:?}");

    // Workers dial for 2 s (every address dead): at most one sweep of each /24 (256)
    // and 10 a second after it, into four networks.
    let started = Instant::now();
    let mut dials = 0;
    let closer = Arc::new(queue);
    let q = Arc::clone(&closer);
    let timer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        q.close();
    });
    while let Some(job) = closer.next_job() {
        dials += 1;
        closer.finish(&job, VisitResult::Failure { connected: false });
    }
    timer.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let budget = 4.0 * (256.0 + 10.0 * elapsed);
    assert!(
        dials > 900 && f64::from(dials) <= budget + 4.0,
        "{dials} dials in {elapsed:.1} s, budget {budget:.0}"
    );
    assert!(closer.counts().dials_deferred > 0);
}
