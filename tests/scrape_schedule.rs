//! Scrapes on their own schedule (issue 17): a tracker whose announce `min interval` is
//! long is still scraped every `tracker.scrape_interval_secs`, and a tracker's BEP 48
//! `min_request_interval` spaces its scrapes out.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btda::sim::fake_tracker::{FakeHttpTracker, HttpBehaviour};
use btda::torrent::{InfoHash, TorrentId};
use btda::tracker::service::TrackedTorrent;

fn paced(host: u8, min_interval: u64, scrape: Option<u64>) -> FakeHttpTracker {
    FakeHttpTracker::start(
        SocketAddr::from(([127, 57, 0, host], 0)),
        HttpBehaviour::Paced {
            min_interval,
            scrape_min_request_interval: scrape,
        },
    )
    .unwrap()
}

#[test]
fn scrapes_follow_their_own_interval_and_the_trackers_min_request_interval() {
    // opentracker's HTTP answer: `min interval` 986 s.
    let slow_announces = paced(1, 986, None);
    // A tracker that asks for 2 s between scrapes (BEP 48 flags).
    let asks_for_2s = paced(2, 986, Some(2));
    let torrents = vec![TrackedTorrent {
        torrent: TorrentId::new(0),
        info_hash: InfoHash([0x17; 20]),
        trackers: vec![slow_announces.url(), asks_for_2s.url()],
    }];
    let config = btda::config::Tracker {
        interval_secs: Duration::from_secs(1),
        scrape_interval_secs: Duration::from_millis(500),
        max_min_interval_secs: Duration::from_secs(3600),
        stopped_timeout_ms: Duration::from_millis(500),
        ..btda::config::Tracker::default()
    };
    let rows = common::run_trackers(&torrents, &config, Duration::from_millis(3_300));
    let count = |url: &str, kind: &str| {
        rows.iter()
            .filter(|r| r.0 == url && r.1 == kind && r.2)
            .count()
    };
    let slow = slow_announces.url();
    assert_eq!(count(&slow, "announce"), 1, "min interval 986 s: {rows:?}");
    let scrapes = count(&slow, "scrape");
    assert!(
        (5..=8).contains(&scrapes),
        "scraped every 0.5 s over 3.3 s whatever the announce interval: {scrapes} ({rows:?})"
    );
    let paced_scrapes = count(&asks_for_2s.url(), "scrape");
    assert_eq!(
        paced_scrapes, 2,
        "at 0 s and 2 s: the tracker's 2 s beat our 0.5 s ({rows:?})"
    );
}
