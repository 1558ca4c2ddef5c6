//! Interop with Debian's opentracker on 127.60.0.1 (HTTP and UDP on one port). The
//! Debian build serves only whitelisted info-hashes and drops root: it runs as `nobody`
//! chrooted into a temporary folder holding the whitelist, and is stopped by PID.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btda::run::settings::tracker_client;
use btda::torrent::InfoHash;
use btda::tracker::client::TrackerClient;
use btda::tracker::{AnnounceParams, Event};

const HTTP_HASH: InfoHash = InfoHash([0x11; 20]);
const UDP_HASH: InfoHash = InfoHash([0x22; 20]);

/// The running tracker and the folder it is chrooted into (kept until it stops).
fn params(hash: InfoHash, who: u8, event: Event) -> AnnounceParams {
    let mut peer_id = *b"-BD0100-interop00000";
    peer_id[19] = b'0' + who;
    AnnounceParams {
        info_hash: hash,
        peer_id,
        port: 51_400 + u16::from(who),
        uploaded: 0,
        downloaded: 5,
        left: 10,
        numwant: 50,
        key: 1,
        event,
    }
}

#[test]
fn announce_and_scrape_against_opentracker_over_http_and_udp() {
    let _tracker = common::start_opentracker("127.60.0.1", 16969, &[HTTP_HASH, UDP_HASH]);
    let client = TrackerClient::new(tracker_client(&btda::config::Tracker {
        http_timeout_ms: Duration::from_millis(3000),
        udp_retransmit_ms: vec![Duration::from_millis(1000), Duration::from_millis(2000)],
        ..btda::config::Tracker::default()
    }));
    for (url, hash) in [
        ("http://127.60.0.1:16969/announce", HTTP_HASH),
        ("udp://127.60.0.1:16969/announce", UDP_HASH),
    ] {
        let first = client
            .announce(url, &params(hash, 1, Event::Started))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(first.leechers, Some(1), "{url}: {first:?}");
        // A second announcer sees the first one's address…
        let second = client
            .announce(url, &params(hash, 2, Event::Started))
            .unwrap();
        let ours: SocketAddr = "127.0.0.1:51401".parse().unwrap();
        assert!(second.peers.contains(&ours), "{url}: {:?}", second.peers);
        // …and the first one, announcing again, sees the second.
        let again = client.announce(url, &params(hash, 1, Event::None)).unwrap();
        let theirs: SocketAddr = "127.0.0.1:51402".parse().unwrap();
        assert!(again.peers.contains(&theirs), "{url}: {:?}", again.peers);
        assert!(again.interval.is_some_and(|i| i > 0));
        let scrape = client
            .scrape(url, &[hash])
            .unwrap()
            .expect("opentracker scrapes")
            .counts;
        assert_eq!(scrape.len(), 1);
        assert_eq!(
            (scrape[0].1.leechers, scrape[0].1.seeders),
            (Some(2), Some(0)),
            "{url}"
        );
        // `stopped` removes the peer.
        client
            .announce(url, &params(hash, 2, Event::Stopped))
            .unwrap();
        let after = client.scrape(url, &[hash]).unwrap().unwrap().counts;
        assert_eq!(after[0].1.leechers, Some(1), "{url}: stopped is honoured");
    }
    // A hash not on the whitelist: the tracker's own failure reason.
    let refused = client.announce(
        "http://127.60.0.1:16969/announce",
        &params(InfoHash([0x33; 20]), 1, Event::Started),
    );
    assert!(
        matches!(refused, Err(btda::tracker::TrackerError::Failure(ref m)) if m.contains("not authorized")),
        "{refused:?}"
    );
}
