//! The tracker loop against fake HTTP and UDP trackers on loopback: well-behaved ones
//! and every hostile case of the issue, asserted through the `request` rows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use btda::book::{PeerKeyer, PeerQueue};
use btda::run::Shutdown;
use btda::schedule::Policy;
use btda::sim::fake_tracker::{
    FakeHttpTracker, FakeUdpTracker, HttpBehaviour, UdpBehaviour, percent_decode,
};
use btda::store::{Writer, WriterSettings};
use btda::torrent::{Figures, InfoHash, TorrentId, TorrentRegistry};
use btda::tracker::service::{Announcer, TrackedTorrent, TrackerService};

const A: InfoHash = InfoHash([0x2b; 20]); // 0x2b is '+': must be sent as %2B
const B: InfoHash = InfoHash([0xb2; 20]);
const SIZE: u64 = 1 << 20;

fn http(host: u8, b: HttpBehaviour) -> FakeHttpTracker {
    FakeHttpTracker::start(SocketAddr::from(([127, 50, 0, host], 0)), b).unwrap()
}

fn udp(host: u8, b: UdpBehaviour) -> FakeUdpTracker {
    FakeUdpTracker::start(SocketAddr::from(([127, 51, 0, host], 0)), b).unwrap()
}

/// `n` peers on 127.`net`.0.x (each tracker its own, so "new" is unambiguous).
fn peers(net: u8, n: u8) -> Vec<SocketAddr> {
    (1..=n)
        .map(|i| SocketAddr::from(([127, net, 0, i], 6881)))
        .collect()
}

fn normal(net: u8, interval: (u64, Option<u64>)) -> HttpBehaviour {
    HttpBehaviour::Normal {
        peers: peers(net, 2),
        counts: (5, 3, 17),
        interval,
    }
}

type Row = (
    String,
    String,
    bool,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
);

#[test]
fn every_tracker_is_announced_scraped_and_classified() {
    let good = http(1, normal(52, (1800, None)));
    let no_interval = http(2, normal(53, (0, None)));
    let ten_years = http(3, normal(54, (0, Some(315_360_000))));
    let not_dict = http(4, HttpBehaviour::Body(b"li1ee".to_vec()));
    let garbage = http(5, HttpBehaviour::Body(b"<html>busy</html>".to_vec()));
    let huge = http(6, HttpBehaviour::Huge(3 << 20));
    let odd = http(
        7,
        HttpBehaviour::Body(b"d8:intervali60e5:peers8:\x7f\x34\x00\x09\x1a\xe1\x01\x02e".to_vec()),
    );
    let redirect = http(8, HttpBehaviour::RedirectLoop);
    let silent = http(9, HttpBehaviour::Silent);
    let failure = http(
        10,
        HttpBehaviour::Body(b"d14:failure reason17:torrent not founde".to_vec()),
    );
    let status = http(11, HttpBehaviour::Status(500));
    let u_good = udp(
        1,
        UdpBehaviour::Normal {
            peers: peers(55, 3),
            counts: (7, 2, 40),
        },
    );
    let u_short = udp(2, UdpBehaviour::Truncated);
    let u_txid = udp(3, UdpBehaviour::WrongTransaction);
    let u_error = udp(4, UdpBehaviour::Error("unregistered torrent".into()));
    let refused = "http://127.50.1.1:9/announce".to_string(); // nothing listens there

    let all_a: Vec<String> = vec![
        good.url(),
        no_interval.url(),
        ten_years.url(),
        not_dict.url(),
        garbage.url(),
        huge.url(),
        odd.url(),
        redirect.url(),
        silent.url(),
        failure.url(),
        status.url(),
        u_good.url(),
        u_short.url(),
        u_txid.url(),
        u_error.url(),
        refused.clone(),
    ];
    let torrents = vec![
        TrackedTorrent {
            torrent: TorrentId::new(0),
            info_hash: A,
            trackers: all_a,
        },
        TrackedTorrent {
            torrent: TorrentId::new(1),
            info_hash: B,
            trackers: vec![u_good.url()],
        },
    ];
    let config = btda::config::Tracker {
        interval_secs: Duration::from_secs(1),
        max_min_interval_secs: Duration::from_secs(3),
        retry_backoff_secs: vec![Duration::from_secs(1)],
        http_timeout_ms: Duration::from_millis(800),
        udp_retransmit_ms: vec![Duration::from_millis(300), Duration::from_millis(300)],
        dns_timeout_ms: Duration::from_millis(500),
        stopped_timeout_ms: Duration::from_millis(1000),
        threads: 16,
        ..btda::config::Tracker::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.sqlite");
    let writer =
        Writer::start(&db, WriterSettings::from(&btda::config::Writer::default())).unwrap();
    let policy = Policy {
        revisit_delay: Duration::from_secs(60),
        min_revisit: Duration::from_secs(60),
        first_revisit: Duration::from_secs(60),
        transient_retry: Duration::from_secs(60),
        backoff: vec![],
        silent_retries: 2,
        silent_slots: 256,
        cooldown: Duration::ZERO,
    };
    let figures = Figures {
        pieces: 100,
        size: SIZE,
        threshold: 98,
    };
    let registry = Arc::new(TorrentRegistry::new([
        (A, Some(figures)),
        (B, Some(figures)),
    ]));
    let queue = Arc::new(
        PeerQueue::new(Arc::clone(&registry), policy, PeerKeyer::random()).allow_private(true),
    );
    let stop = Shutdown::new();
    let me = Announcer {
        source_ip: Some("127.0.0.1".parse().unwrap()),
        peer_id: *b"-BD0100-trackertest1",
        port: 51413,
        key: 0x0102_0304,
    };
    let service = TrackerService::start(
        &torrents,
        registry,
        &(&config).into(),
        me,
        Arc::clone(&queue) as Arc<dyn btda::book::PeerSink>,
        writer.sender(),
        stop.clone(),
    );
    assert_eq!(service.trackers(), 16);
    std::thread::sleep(Duration::from_millis(4500));
    stop.request();
    let t0 = std::time::Instant::now();
    service.stop();
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "shutdown took {:?}",
        t0.elapsed()
    );
    writer.finish().unwrap();

    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<Row> = conn
        .prepare("SELECT url, kind, ok, error, received_peers, new_peers, duplicate_peers, completed, torrent_id FROM request ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let of = |url: &str, kind: &str| -> Vec<&Row> {
        rows.iter()
            .filter(|r| r.0 == url && r.1 == kind && r.8 == 1)
            .collect()
    };
    let first_error = |url: &str| {
        of(url, "announce")
            .first()
            .and_then(|r| r.3.clone())
            .unwrap_or_default()
    };

    // The good HTTP tracker: peers, counts, scrape, `stopped`; new peers once, then duplicates.
    let ann = of(&good.url(), "announce");
    // btda's own interval (1 s) is used; the tracker's `interval` (1800 s) does not bind.
    assert!(ann.len() >= 3, "{ann:?}");
    assert!(
        ann[0].2 && ann[0].4 == Some(2) && ann[0].5 == Some(2) && ann[0].7 == Some(17),
        "{:?}",
        ann[0]
    );
    assert!(
        ann[1].2 && ann[1].5 == Some(0) && ann[1].6 == Some(2),
        "then duplicates: {:?}",
        ann[1]
    );
    let scrape = of(&good.url(), "scrape");
    assert!(
        !scrape.is_empty() && scrape.iter().all(|r| r.2 && r.7 == Some(17)),
        "{scrape:?}"
    );
    assert!(
        of(&good.url(), "stopped").first().is_some_and(|r| r.2),
        "stopped sent"
    );
    let reqs = good.requests.lock().clone();
    let first = &reqs[0];
    assert!(
        first.starts_with("/announce?info_hash=%2B%2B%2B") && !first.contains('+'),
        "{first}"
    );
    let params: HashMap<&str, &str> = first
        .split(['?', '&'])
        .filter_map(|kv| kv.split_once('='))
        .collect();
    assert_eq!(percent_decode(params["info_hash"]), A.0.to_vec());
    assert_eq!(
        (
            params["port"],
            params["left"],
            params["downloaded"],
            params["compact"]
        ),
        ("51413", "524288", "524288", "1")
    );
    assert_eq!(params.get("event"), Some(&"started"));
    assert!(reqs.iter().any(|r| r.starts_with("/scrape?info_hash=")));
    assert!(reqs.last().unwrap().contains("event=stopped"));

    // Interval 0: btda's own interval (1 s) is used; min interval of 10 years: capped at 3 s.
    let n0 = of(&no_interval.url(), "announce").len();
    let n10 = of(&ten_years.url(), "announce").len();
    assert!(n0 >= 3, "interval 0 → every second: {n0}");
    assert!((1..=2).contains(&n10), "10 years → capped at 3 s: {n10}");
    let later = no_interval
        .requests
        .lock()
        .iter()
        .filter(|r| r.starts_with("/announce"))
        .skip(1)
        .take(1)
        .cloned()
        .collect::<Vec<_>>();
    assert!(
        !later[0].contains("event="),
        "only the first announce says started: {}",
        later[0]
    );

    // Hostile HTTP trackers: each a classified error, never a crash.
    assert_eq!(
        first_error(&not_dict.url()),
        "malformed response: response is not a dictionary"
    );
    assert!(first_error(&garbage.url()).starts_with("malformed response: not valid bencode"));
    assert!(
        first_error(&huge.url()).contains("body over 1048576 bytes"),
        "{}",
        first_error(&huge.url())
    );
    let odd_row = &of(&odd.url(), "announce")[0];
    assert!(
        odd_row.2 && odd_row.4 == Some(1),
        "a partial compact entry is dropped: {odd_row:?}"
    );
    assert!(
        first_error(&redirect.url()).starts_with("redirect"),
        "{}",
        first_error(&redirect.url())
    );
    assert_eq!(first_error(&silent.url()), "timeout");
    assert_eq!(
        first_error(&failure.url()),
        "tracker failure: torrent not found"
    );
    assert_eq!(first_error(&status.url()), "http status 500");
    assert_eq!(first_error(&refused), "refused");

    // UDP: announce, one scrape packet for both torrents, and the hostile ones.
    let u = of(&u_good.url(), "announce");
    assert!(u[0].2 && u[0].4 == Some(3), "{:?}", u[0]);
    let u_scrapes: Vec<&Row> = rows
        .iter()
        .filter(|r| r.0 == u_good.url() && r.1 == "scrape")
        .collect();
    assert!(
        u_scrapes.iter().any(|r| r.8 == 1 && r.7 == Some(40))
            && u_scrapes.iter().any(|r| r.8 == 2 && r.7 == Some(40))
    );
    let packets = u_good.packets.lock().clone();
    assert!(
        packets
            .iter()
            .any(|&(action, len)| action == 2 && len == 16 + 2 * 20),
        "one packet scrapes both: {packets:?}"
    );
    // One connect for the whole loop (the id is cached), one more by the short-timeout
    // client that sends `stopped` at shutdown.
    assert_eq!(
        packets.iter().filter(|p| p.0 == 0).count(),
        2,
        "the connection id is cached: {packets:?}"
    );
    assert!(
        first_error(&u_short.url()).starts_with("malformed response"),
        "{}",
        first_error(&u_short.url())
    );
    assert_eq!(first_error(&u_txid.url()), "timeout");
    assert_eq!(
        first_error(&u_error.url()),
        "tracker failure: unregistered torrent"
    );

    // Peers from the trackers reached the queue: 3 × 2 (HTTP), 3 (UDP) for each torrent,
    // and the one whole entry of the odd compact string.
    assert_eq!(queue.counts().peers.known, 3 * 2 + 3 + 3 + 1);
}
