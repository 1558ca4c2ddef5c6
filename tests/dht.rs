//! An in-process Mainline DHT of many nodes on distinct 127.72.0.x addresses: nodes
//! bootstrap through one of them, an announce is found by another node's lookup, and
//! malformed packets get KRPC errors or silence, never a crash.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use btda::dht::krpc::{Body, Message};
use btda::dht::node::{DhtNode, NodeSettings};
use btda::run::Shutdown;
use btda::torrent::InfoHash;

fn settings() -> NodeSettings {
    NodeSettings {
        alpha: 3,
        query_timeout: Duration::from_millis(500),
        max_queries: 200,
        rate_per_sec: 2000,
    }
}

fn swarm(n: u8, stop: &Shutdown) -> Vec<DhtNode> {
    let nodes: Vec<DhtNode> = (1..=n)
        .map(|i| {
            let addr = SocketAddr::from(([127, 72, 0, i], 0));
            DhtNode::start(addr, rand::random(), &[], settings(), stop.clone()).unwrap()
        })
        .collect();
    let first = nodes[0].local_addr().unwrap();
    for _ in 0..2 {
        for node in &nodes[1..] {
            node.bootstrap(&[first]);
        }
    }
    nodes
}

#[test]
fn an_announce_is_found_by_another_nodes_lookup() {
    let stop = Shutdown::new();
    let nodes = swarm(30, &stop);
    assert!(
        nodes.iter().all(|n| n.nodes().len() >= 5),
        "every node knows some others"
    );
    let hash = InfoHash(rand::random());
    let announcer = &nodes[4];
    let lookup = announcer.get_peers(hash, &[]);
    assert!(lookup.peers.is_empty() && !lookup.closest.is_empty());
    assert!(lookup.answered > 0 && lookup.queried >= lookup.answered);
    let accepted = announcer.announce(hash, 7000, &lookup);
    assert!(
        accepted >= 3,
        "the closest nodes accepted the announce: {accepted}"
    );
    let finder = &nodes[19];
    let found = finder.get_peers(hash, &[]);
    let want = SocketAddr::from(([127, 72, 0, 5], 7000));
    assert!(found.peers.contains(&want), "{:?}", found.peers);
    stop.request();
    for n in nodes {
        n.join();
    }
}

#[test]
fn malformed_packets_get_errors_or_silence() {
    let stop = Shutdown::new();
    let node = DhtNode::start(
        SocketAddr::from(([127, 73, 0, 1], 0)),
        [1; 20],
        &[],
        settings(),
        stop.clone(),
    )
    .unwrap();
    let to = node.local_addr().unwrap();
    let probe = UdpSocket::bind("127.73.0.2:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // The node's answer (skipping the ping it sends a querier it does not know yet).
    let ask = |packet: &[u8]| -> Option<Message> {
        probe.send_to(packet, to).unwrap();
        let mut buf = [0u8; 2048];
        loop {
            let n = probe.recv(&mut buf).ok()?;
            let m = Message::decode(&buf[..n]).unwrap();
            if !matches!(m.body, Body::Query(_)) {
                return Some(m);
            }
        }
    };
    // Garbage, deep nesting, a huge packet, no transaction id: silence, and the node lives.
    for p in [
        b"garbage".to_vec(),
        format!("d{}{}e", "l".repeat(500), "e".repeat(500)).into_bytes(),
        vec![b'x'; 1400],
        b"d1:y1:qe".to_vec(),
    ] {
        assert!(ask(&p).is_none());
    }
    // An unknown method: error 204. Missing arguments: error 203.
    let unknown = ask(b"d1:ad2:id20:abcdefghij0123456789e1:q5:steal1:t2:t11:y1:qe").unwrap();
    assert_eq!(
        (unknown.tid.as_slice(), unknown.body),
        (&b"t1"[..], Body::Error(204, "Method Unknown".into()))
    );
    let missing = ask(b"d1:ad2:id20:abcdefghij0123456789e1:q9:get_peers1:t2:t21:y1:qe").unwrap();
    assert!(matches!(missing.body, Body::Error(203, _)));
    // A bad token for announce_peer is refused.
    let announce = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:abcdefghij01234567894:porti7000e5:token4:nopee1:q13:announce_peer1:t2:t31:y1:qe";
    assert!(matches!(ask(announce).unwrap().body, Body::Error(203, _)));
    // And it still answers a ping.
    let pong = ask(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:t41:y1:qe").unwrap();
    assert_eq!(pong.id, Some([1; 20]));
    stop.request();
    node.join();
}

/// BEP 32: a DHT of IPv6 nodes on ::1 (distinct ports). Nodes learn each other through
/// `nodes6`, an announce over IPv6 is found as an IPv6 peer, and an IPv4 node on the
/// same port number next to them keeps its own table of IPv4 nodes only.
#[test]
fn an_ipv6_dht_on_loopback_finds_an_ipv6_announce() {
    let stop = Shutdown::new();
    let v6 = |port: u16| SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    let nodes: Vec<DhtNode> = (0..12)
        .map(|_| DhtNode::start(v6(0), rand::random(), &[], settings(), stop.clone()).unwrap())
        .collect();
    let router = nodes[0].local_addr().unwrap();
    assert!(router.is_ipv6());
    for _ in 0..2 {
        for node in &nodes[1..] {
            node.bootstrap(&[router]);
        }
    }
    assert!(
        nodes.iter().all(|n| n.nodes().len() >= 3),
        "IPv6 nodes found each other through nodes6: {:?}",
        nodes.iter().map(|n| n.nodes().len()).collect::<Vec<_>>()
    );
    assert!(
        nodes
            .iter()
            .all(|n| n.nodes().iter().all(|k| k.addr.is_ipv6()))
    );
    // An IPv4 node on the same port number as an IPv6 one (IPv6-only sockets).
    let port = nodes[3].local_addr().unwrap().port();
    let v4 = DhtNode::start(
        SocketAddr::from(([127, 72, 1, 1], port)),
        rand::random(),
        &[],
        settings(),
        stop.clone(),
    )
    .unwrap();
    // It hears from IPv4 nodes only: a bootstrap towards the IPv6 router is dropped.
    v4.bootstrap(&[router]);
    assert!(v4.nodes().is_empty(), "{:?}", v4.nodes());

    let hash = InfoHash(rand::random());
    let lookup = nodes[4].get_peers(hash, &[]);
    assert!(nodes[4].announce(hash, 7000, &lookup) >= 2);
    let found = nodes[9].get_peers(hash, &[]);
    assert!(found.peers.contains(&v6(7000)), "{:?}", found.peers);
    assert!(found.peers.iter().all(SocketAddr::is_ipv6));
    stop.request();
    for n in nodes {
        n.join();
    }
    v4.join();
}

/// BEP 32 `want`: an IPv6 node paired with the run's IPv4 node answers `n4` from the
/// IPv4 node's table and `n6` from its own; without `want`, its own family only.
#[test]
fn want_gets_nodes_of_both_families_from_paired_nodes() {
    use btda::dht::krpc::{NodeInfo, Query, Want};
    let stop = Shutdown::new();
    let known = |v6: bool| -> Vec<NodeInfo> {
        (1..=3u8)
            .map(|i| NodeInfo {
                id: [i; 20],
                addr: if v6 {
                    SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 9000 + u16::from(i)))
                } else {
                    SocketAddr::from(([127, 72, 3, i], 9000))
                },
            })
            .collect()
    };
    let v4 = DhtNode::start(
        SocketAddr::from(([127, 72, 2, 1], 0)),
        [7; 20],
        &known(false),
        settings(),
        stop.clone(),
    )
    .unwrap();
    let v6 = DhtNode::start(
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
        [7; 20],
        &known(true),
        settings(),
        stop.clone(),
    )
    .unwrap();
    v4.pair(&v6);
    let asker = UdpSocket::bind("[::1]:0").unwrap();
    asker
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let pinged = std::cell::Cell::new(0);
    let ask = |want: Want| {
        let q = Message {
            tid: b"w1".to_vec(),
            id: Some([9; 20]),
            body: Body::Query(Query::FindNode([5; 20], want)),
        };
        asker
            .send_to(&q.encode(), v6.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 1500];
        loop {
            let (n, _) = asker.recv_from(&mut buf).unwrap();
            match Message::decode(&buf[..n]).unwrap().body {
                Body::Response(r) => return (r.nodes.len(), r.nodes6.len()),
                Body::Query(_) => pinged.set(pinged.get() + 1), // the node checks the asker
                other => panic!("{other:?}"),
            }
        }
    };
    // Its three known IPv6 nodes; the asker, who queried but never answered the
    // node's ping, is not among them.
    assert_eq!(
        ask(Want {
            n4: true,
            n6: true,
            ..Want::default()
        }),
        (3, 3)
    );
    assert_eq!(
        ask(Want {
            n4: true,
            ..Want::default()
        }),
        (3, 0)
    );
    assert_eq!(ask(Want::default()), (0, 3), "its own family without want");
    assert!(pinged.get() >= 1, "the node pinged the unknown asker");
    stop.request();
    v4.join();
    v6.join();
}

/// A reply counts only from the address asked, with an unguessable transaction id, and
/// a hostile node's endless peer list is capped: a forger that learned the id (as an
/// on-path observer would) answers first from another address with an address of its
/// choosing; the genuine node then answers with 150 peers. The lookup keeps the
/// genuine reply, capped at 100 values, and none of the forger's.
#[test]
fn forged_replies_are_ignored_and_peer_lists_are_capped() {
    let stop = Shutdown::new();
    let node = DhtNode::start(
        SocketAddr::from(([127, 73, 1, 1], 0)),
        [9; 20],
        &[],
        settings(),
        stop.clone(),
    )
    .unwrap();
    let genuine = UdpSocket::bind("127.73.1.2:0").unwrap();
    let forger = UdpSocket::bind("127.73.1.3:0").unwrap();
    genuine
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let to = node.local_addr().unwrap();
    let target = genuine.local_addr().unwrap();
    let lookup = std::thread::spawn(move || node.get_peers(InfoHash([7; 20]), &[target]));
    let mut buf = [0u8; 2048];
    let (n, from) = genuine.recv_from(&mut buf).unwrap();
    assert_eq!(from, to);
    let query = Message::decode(&buf[..n]).unwrap();
    assert_eq!(query.tid.len(), 4, "32-bit transaction ids");
    let reply = |values: Vec<SocketAddr>| {
        Message {
            tid: query.tid.clone(),
            id: Some([5; 20]),
            body: Body::Response(btda::dht::krpc::Response {
                values,
                token: Some(b"tok".to_vec()),
                ..Default::default()
            }),
        }
        .encode()
    };
    let planted: SocketAddr = "127.73.9.9:6881".parse().unwrap();
    forger.send_to(&reply(vec![planted]), to).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let flood: Vec<SocketAddr> = (0..150u16)
        .map(|i| SocketAddr::from(([127, 73, 2, (i % 250) as u8 + 1], 1000 + i)))
        .collect();
    genuine.send_to(&reply(flood), to).unwrap();
    let result = lookup.join().unwrap();
    assert!(!result.peers.contains(&planted), "{:?}", result.peers);
    assert_eq!(result.peers.len(), 100, "at most 100 values from one reply");
    stop.request();
}

/// BEP 33: a lookup asks with `scrape` = 1 and merges the seed and peer filters of the
/// answers; two nodes that stored overlapping peers give the union's estimate.
#[test]
fn a_lookup_scrapes_and_merges_the_answers_bloom_filters() {
    use btda::dht::bloom::ScrapeFilter;
    use btda::dht::krpc::{Query, Response};
    let stop = Shutdown::new();
    let node = DhtNode::start(
        SocketAddr::from(([127, 73, 3, 1], 0)),
        [8; 20],
        &[],
        settings(),
        stop.clone(),
    )
    .unwrap();
    let answerers: Vec<UdpSocket> = (2..=3u8)
        .map(|i| {
            let s = UdpSocket::bind(SocketAddr::from(([127, 73, 3, i], 0))).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s
        })
        .collect();
    let targets: Vec<SocketAddr> = answerers.iter().map(|s| s.local_addr().unwrap()).collect();
    let lookup = std::thread::spawn(move || node.get_peers(InfoHash([6; 20]), &targets));
    // Node 2 stored peers 0..60 (10 of them seeds), node 3 peers 40..100 (none seeds):
    // 100 distinct peers, 10 seeds.
    for (n, (s, range)) in answerers.iter().zip([(0u8, 60u8), (40, 100)]).enumerate() {
        let mut buf = [0u8; 2048];
        let (len, from) = s.recv_from(&mut buf).unwrap();
        let query = Message::decode(&buf[..len]).unwrap();
        let Body::Query(Query::GetPeers(_, want)) = query.body else {
            panic!("{query:?}");
        };
        assert!(want.scrape, "scrape = 1 asked");
        let (mut seeds, mut peers) = (ScrapeFilter::default(), ScrapeFilter::default());
        for i in range.0..range.1 {
            let ip = std::net::IpAddr::from([203, 0, 113, i]);
            peers.insert(ip);
            if n == 0 && i < 10 {
                seeds.insert(ip);
            }
        }
        let reply = Message {
            tid: query.tid,
            id: Some([n as u8 + 1; 20]),
            body: Body::Response(Response {
                token: Some(b"tk".to_vec()),
                seeds_filter: Some(Box::new(seeds)),
                peers_filter: Some(Box::new(peers)),
                ..Response::default()
            }),
        };
        s.send_to(&reply.encode(), from).unwrap();
    }
    let result = lookup.join().unwrap();
    let scrape = result.scrape.expect("filters merged");
    assert_eq!(scrape.nodes, 2);
    assert!((90.0..110.0).contains(&scrape.peers), "{scrape:?}");
    assert!((8.0..12.0).contains(&scrape.seeds), "{scrape:?}");
    stop.request();
}

/// A node on the port of a uTP socket (as real clients share one port): KRPC reaches
/// it through the uTP driver, its lookups and announces work, and uTP connections on
/// the same port still do.
#[test]
fn a_node_shares_the_port_of_a_utp_socket() {
    use std::io::{Read, Write};
    let stop = Shutdown::new();
    let nodes = swarm(6, &stop);
    let first = nodes[0].local_addr().unwrap();
    let utp = btda::utp::UtpSocket::bind(
        SocketAddr::from(([127, 72, 1, 1], 0)),
        true,
        btda::utp::Settings::default(),
        stop.clone(),
    )
    .unwrap();
    let port = utp.krpc_port().unwrap();
    let shared =
        DhtNode::start_shared(port, rand::random(), &[], settings(), stop.clone()).unwrap();
    assert_eq!(shared.local_addr().unwrap(), utp.local_addr().unwrap());
    assert!(shared.bootstrap(&[first]) >= 3, "the shared node joined");
    // Others reach it on the shared port: an announce through it is found elsewhere.
    let hash = InfoHash([0x5a; 20]);
    let lookup = shared.get_peers(hash, &[first]);
    assert!(shared.announce(hash, 7777, &lookup) >= 1);
    let found = nodes[3].get_peers(hash, &[first]);
    assert!(
        found.peers.iter().any(|p| p.port() == 7777),
        "{:?}",
        found.peers
    );
    // And uTP still works on that port.
    let client = btda::utp::UtpSocket::bind(
        SocketAddr::from(([127, 72, 1, 2], 0)),
        false,
        btda::utp::Settings::default(),
        stop.clone(),
    )
    .unwrap();
    let mut out = client
        .connect(utp.local_addr().unwrap(), Duration::from_secs(2))
        .unwrap();
    let mut inc = utp.accept(Duration::from_secs(2)).expect("accepted");
    out.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    btda::peer::stream::Transport::set_read_timeout(&inc, Some(Duration::from_secs(2))).unwrap();
    inc.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    assert_eq!(utp.foreign(), 0, "every KRPC datagram went to the node");
    stop.request();
}
