//! BEP 32 interop: btda's IPv6 DHT node against real libtorrent DHT nodes on [::1]
//! (python3-libtorrent, DHT on, LSD/UPnP/NAT-PMP off, loopback restrictions off). btda's
//! node joins through them and must get their answers over IPv6 (its table then holds
//! them) and answers to `get_peers`. Seen with libtorrent 2.0.8: its IPv6 nodes on one
//! loopback address keep empty routing tables (`dht_nodes` 0), so their `nodes6` lists
//! are empty and this test cannot show btda learning nodes from them.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use btda::dht::node::{DhtNode, NodeSettings};
use btda::run::Shutdown;
use btda::torrent::InfoHash;

#[test]
fn btdas_ipv6_node_joins_a_libtorrent_ipv6_dht() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_dht6.py");
    let mut lt = Command::new("/usr/bin/python3")
        .arg(script)
        .args([
            "--port",
            "51810",
            "--extra",
            "[::1]:16893",
            "--max-seconds",
            "90",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3-libtorrent is installed by `make deps`");
    let lines = common::stdout_lines(&mut lt);
    let ready: serde_json::Value =
        serde_json::from_str(&lines.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    let theirs: Vec<SocketAddr> = ready["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().parse().unwrap())
        .collect();
    let stop = Shutdown::new();
    let settings = NodeSettings {
        alpha: 3,
        query_timeout: Duration::from_millis(800),
        max_queries: 100,
        rate_per_sec: 500,
    };
    let ours = DhtNode::start(
        "[::1]:16893".parse().unwrap(),
        rand::random(),
        &[],
        settings,
        stop.clone(),
    )
    .unwrap();
    // libtorrent answers once its own bootstrap is under way: try for a while.
    let mut known = 0;
    let mut answered = 0;
    for _ in 0..20 {
        ours.bootstrap(&theirs);
        known = ours.nodes().len();
        answered = ours.get_peers(InfoHash(rand::random()), &theirs).answered;
        if known >= 3 && answered >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(lt.stdin.take()); // stops the sessions
    common::wait_with_limit(&mut lt, Duration::from_secs(20));
    stop.request();
    let nodes = ours.nodes();
    ours.join();
    assert!(
        known >= 3
            && nodes
                .iter()
                .all(|n| n.addr.is_ipv6() && theirs.contains(&n.addr)),
        "libtorrent nodes answered over IPv6: {nodes:?}"
    );
    assert!(
        answered >= 2,
        "libtorrent nodes answered get_peers: {answered}"
    );
}
