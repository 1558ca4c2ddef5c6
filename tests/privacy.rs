//! Privacy: a finished run's output folder (database, log at default verbosity, anything
//! else) holds no peer address and no DHT node address, peer keys are keyed hashes with
//! the configured key, and the geolocation databases in use are recorded in the `run`
//! row.

mod common;

use std::time::Duration;

use btda::sim::{Behaviour, FakePeer};
use btda::torrent::InfoHash;
use common::eventually;

const KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";

#[test]
fn no_peer_address_reaches_the_disk() {
    // 4 pieces, T = 4 (fixture from mktorrent).
    let (_root, input, output) = common::run_dirs_with_fixture();
    let hash = InfoHash::parse("be8df057e534fb76e0340a7445936fe58671ac84").unwrap();
    let peers: Vec<FakePeer> = (1..=3u8)
        .map(|i| {
            FakePeer::start(
                format!("127.77.0.{i}:0").parse().unwrap(),
                hash,
                4,
                u32::from(i),
                Behaviour::Bitfield,
            )
            .unwrap()
        })
        .collect();
    let list: Vec<String> = peers.iter().map(|p| format!("\"{}\"", p.addr)).collect();
    // A DHT node for btda to join: its address must not reach output/ either.
    let stop = btda::run::Shutdown::new();
    let node = btda::dht::node::DhtNode::start(
        "127.77.2.1:0".parse().unwrap(),
        [7; 20],
        &[],
        btda::dht::node::NodeSettings {
            alpha: 3,
            query_timeout: Duration::from_millis(300),
            max_queries: 20,
            rate_per_sec: 100,
        },
        stop.clone(),
    )
    .unwrap();
    let node_addr = node.local_addr().unwrap();
    let geo = common::fixtures().join("geo");
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[dht]\nenabled = true\nlisten_address = \"127.78.0.100\"\nport = 0\nbootstrap = [\"{node_addr}\"]\n\
             interval_secs = 1\nquery_timeout_ms = 300\n\
             [peer]\nallow_private_addresses = true\nworkers = 2\nlisten_address = \"127.78.0.100\"\nlisten_port = 0\n\
             [geo]\ncity = [\"{}\"]\nasn = [\"{}\"]\n[privacy]\nkey = \"{KEY}\"\n\
             [[torrents]]\ninfo_hash = \"{hash}\"\npeers = [{}]\n",
            geo.join("GeoIP2-City-Test.mmdb").display(),
            geo.join("GeoLite2-ASN-Test.mmdb").display(),
            list.join(", ")
        ),
    )
    .unwrap();
    let (mut child, _, _lines) = common::start_run(&input, &output);
    assert!(eventually(Duration::from_secs(20), || peers
        .iter()
        .all(|p| p.served() >= 1)));
    assert!(
        eventually(Duration::from_secs(20), || !node.nodes().is_empty()),
        "btda joined the DHT node"
    );
    std::thread::sleep(Duration::from_millis(800));
    common::interrupt_and_wait(&mut child);
    stop.request();
    node.join();

    let db = common::database_in(&output).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut keys: Vec<String> = common::column(&conn, "SELECT peer_key FROM peer");
    keys.sort();
    let keyer = common::keyer(KEY);
    let mut want: Vec<String> = peers.iter().map(|p| keyer.key(&p.addr)).collect();
    want.sort();
    assert_eq!(
        keys, want,
        "peer keys are keyed hashes with the configured key"
    );
    let (city, asn, config): (String, String, String) = conn
        .query_row("SELECT geo_city, geo_asn, config FROM run", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert!(
        city.starts_with("GeoIP2-City") && asn.starts_with("GeoLite2-ASN"),
        "{city} / {asn}"
    );
    assert!(!config.contains(KEY), "the privacy key is not stored");
    drop(conn);

    let mut files = vec![db.clone(), db.with_extension("log")];
    files.extend(
        std::fs::read_dir(&output)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path()),
    );
    assert!(
        !output.join(btda::dht::service::STATE_FILE).exists(),
        "no DHT state in output/"
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let node_ip = node_addr.ip().to_string();
        assert!(
            !text.contains(&node_ip) && !bytes.windows(4).any(|w| w == [127, 77, 2, 1]),
            "{} contains the DHT node address {node_ip}",
            file.display()
        );
        for p in &peers {
            let ip = p.addr.ip().to_string();
            assert!(
                !text.contains(&ip),
                "{} contains the peer address {ip}",
                file.display()
            );
            assert!(!bytes.windows(4).any(|w| {
                w == [
                    127,
                    77,
                    0,
                    p.addr
                        .ip()
                        .to_string()
                        .rsplit('.')
                        .next()
                        .unwrap()
                        .parse::<u8>()
                        .unwrap(),
                ]
            }));
        }
    }
}
