//! `btda run` on a loopback DHT: library nodes on 127.75.0.x, bootstrapped only to each
//! other; a fake seeder announced there is found and visited by btda, btda's own
//! announce is found by another node, and the node state is saved for the next run.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btda::dht::node::{DhtNode, NodeSettings};
use btda::run::Shutdown;
use btda::sim::{Behaviour, FakePeer};
use common::eventually;

fn settings() -> NodeSettings {
    NodeSettings {
        alpha: 3,
        query_timeout: Duration::from_millis(500),
        max_queries: 200,
        rate_per_sec: 2000,
    }
}

/// A temporary root with `input/` holding a torrent (fe553347…), `output/`, a DHT
/// state folder, and the torrent's hash.
fn dirs() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
    btda::torrent::InfoHash,
) {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input");
    let output = root.path().join("output");
    let state_dir = root.path().join("state");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(
        common::fixtures().join("inputs/hand/non-canonical.torrent"),
        input.join("a.torrent"),
    )
    .unwrap();
    let hash = btda::torrent::InfoHash::parse("fe553347d875639130a5b1a125da7b9536c4cef5").unwrap();
    (root, input, output, state_dir, hash)
}

#[test]
fn btda_finds_peers_on_the_dht_and_announces_itself() {
    let stop = Shutdown::new();
    let settings = settings();
    let nodes: Vec<DhtNode> = (1..=12u8)
        .map(|i| {
            DhtNode::start(
                SocketAddr::from(([127, 75, 0, i], 0)),
                rand::random(),
                &[],
                settings.clone(),
                stop.clone(),
            )
            .unwrap()
        })
        .collect();
    let first = nodes[0].local_addr().unwrap();
    for n in &nodes[1..] {
        n.bootstrap(&[first]);
    }

    let (_root, input, output, state_dir, hash) = dirs();
    // A seeder on node 5's address, announced by node 5.
    let seeder = FakePeer::start(
        "127.75.0.5:7000".parse().unwrap(),
        hash,
        3,
        3,
        Behaviour::HaveAll,
    )
    .unwrap();
    let lookup = nodes[4].get_peers(hash, &[]);
    assert!(nodes[4].announce(hash, 7000, &lookup) > 0);

    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[peer]\nallow_private_addresses = true\nworkers = 2\nlisten_address = \"127.75.0.100\"\nlisten_port = 16882\n\
             [dht]\nlisten_address = \"127.75.0.100\"\nport = 0\nbootstrap = [\"{first}\"]\n\
             interval_secs = 1\nquery_timeout_ms = 500\nstate_dir = \"{}\"\n",
            state_dir.display()
        ),
    )
    .unwrap();
    let (mut child, _, _lines) = common::start_run(&input, &output);
    assert!(
        eventually(Duration::from_secs(20), || seeder.served() >= 1),
        "the DHT peer was never visited"
    );
    let ours = SocketAddr::from(([127, 75, 0, 100], 16882));
    assert!(
        eventually(Duration::from_secs(20), || nodes[9]
            .get_peers(hash, &[])
            .peers
            .contains(&ours)),
        "btda's announce was not found"
    );
    common::interrupt_and_wait(&mut child);

    let conn = rusqlite::Connection::open(common::database_in(&output).unwrap()).unwrap();
    let source: String = conn
        .query_row("SELECT source FROM peer", [], |r| r.get(0))
        .unwrap();
    assert_eq!(source, "dht");
    let (ok, queried, received): (bool, i64, i64) = conn
        .query_row(
            "SELECT ok, nodes_queried, received_peers FROM request WHERE source = 'dht' ORDER BY id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(
        ok && queried > 0 && received >= 1,
        "{ok} {queried} {received}"
    );
    let state = btda::dht::service::load_state(&state_dir.join(btda::dht::service::STATE_FILE))
        .expect("state saved in dht.state_dir");
    assert!(!state.1.is_empty(), "the routing table was saved");
    assert!(
        !output.join(btda::dht::service::STATE_FILE).exists(),
        "no DHT state in the output folder"
    );
    stop.request();
}

/// BEP 32 in a run: with `dht.ipv6 = "on"` btda runs a second node on ::1, joins an
/// IPv6 DHT of library nodes through it, finds the IPv6 seeder announced there and
/// visits it; its lookups are recorded with url `ipv6`, and the IPv6 nodes are saved
/// with the state.
#[test]
fn btda_finds_ipv6_peers_through_its_ipv6_node() {
    let stop = Shutdown::new();
    let settings = settings();
    let v6 = |port: u16| SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    let nodes: Vec<DhtNode> = (0..10)
        .map(|_| {
            DhtNode::start(v6(0), rand::random(), &[], settings.clone(), stop.clone()).unwrap()
        })
        .collect();
    let first = nodes[0].local_addr().unwrap();
    for n in &nodes[1..] {
        n.bootstrap(&[first]);
    }
    let (_root, input, output, state_dir, hash) = dirs();
    let seeder = FakePeer::start(v6(17_006), hash, 3, 3, Behaviour::HaveAll).unwrap();
    let lookup = nodes[4].get_peers(hash, &[]);
    assert!(nodes[4].announce(hash, 17_006, &lookup) > 0);
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[peer]\nallow_private_addresses = true\nworkers = 2\nlisten_address = \"127.75.1.100\"\nlisten_port = 16883\n\
             [dht]\nlisten_address = \"127.75.1.100\"\nport = 0\nipv6 = \"on\"\nipv6_listen_address = \"::1\"\n\
             bootstrap = [\"{first}\"]\ninterval_secs = 1\nquery_timeout_ms = 500\nstate_dir = \"{}\"\n",
            state_dir.display()
        ),
    )
    .unwrap();
    let (mut child, _, _lines) = common::start_run(&input, &output);
    assert!(
        eventually(Duration::from_secs(20), || seeder.served() >= 1),
        "the IPv6 DHT peer was never visited"
    );
    // The visit is recorded once it ends (a seeder's ends at its have_all).
    let db = common::database_in(&output).unwrap();
    let recorded = || {
        rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row("SELECT count(*) FROM peer", [], |r| r.get::<_, i64>(0)))
            .is_ok_and(|n| n >= 1)
    };
    assert!(eventually(Duration::from_secs(20), recorded), "no peer row");
    common::interrupt_and_wait(&mut child);

    let conn = rusqlite::Connection::open(common::database_in(&output).unwrap()).unwrap();
    let (source, visits): (String, i64) = conn
        .query_row("SELECT source, visits FROM peer", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(source, "dht");
    assert!(visits >= 1);
    let v6_lookups: i64 = conn
        .query_row(
            "SELECT count(*) FROM request WHERE source = 'dht' AND url = 'ipv6' AND ok = 1
             AND received_peers >= 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(v6_lookups >= 1, "IPv6 lookups recorded");
    let state = btda::dht::service::load_state(&state_dir.join(btda::dht::service::STATE_FILE))
        .expect("state saved");
    assert!(
        state.1.iter().any(|n| n.addr.is_ipv6()),
        "IPv6 nodes saved: {:?}",
        state.1
    );
    stop.request();
}
