//! HTTPS trackers (issue 17): a fake tracker behind rustls with a certificate from a
//! test CA (`tests/fixtures/make_tls_fixtures.sh`). With the CA in `tracker.ca_file`
//! announce and scrape work; without it, or at an address the certificate does not
//! name, the request fails at once with the error class `tls`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use btda::run::settings::tracker_client;
use btda::sim::fake_tracker::{FakeHttpTracker, HttpBehaviour, tls_config};
use btda::torrent::{InfoHash, TorrentId};
use btda::tracker::client::TrackerClient;
use btda::tracker::service::TrackedTorrent;
use btda::tracker::{AnnounceParams, Event, TrackerError};

const HASH: InfoHash = InfoHash([0x5a; 20]);

fn tracker(ip: [u8; 4]) -> FakeHttpTracker {
    let f = common::fixtures();
    let tls = tls_config(&f.join("tls-tracker.pem"), &f.join("tls-tracker.key")).unwrap();
    let peers = (1..=3)
        .map(|i| SocketAddr::from(([127, 67, 0, i], 6881)))
        .collect();
    FakeHttpTracker::start_tls(
        SocketAddr::from((ip, 0)),
        HttpBehaviour::Normal {
            peers,
            counts: (4, 5, 6),
            interval: (1800, None),
        },
        tls,
    )
    .unwrap()
}

fn config(ca: bool) -> btda::config::Tracker {
    btda::config::Tracker {
        ca_file: if ca {
            common::fixtures().join("tls-ca.pem").display().to_string()
        } else {
            String::new()
        },
        http_timeout_ms: Duration::from_secs(5),
        interval_secs: Duration::from_secs(1),
        scrape_interval_secs: Duration::from_secs(1),
        stopped_timeout_ms: Duration::from_millis(500),
        ..btda::config::Tracker::default()
    }
}

fn announce(client: &TrackerClient, url: &str) -> Result<usize, TrackerError> {
    let params = AnnounceParams {
        info_hash: HASH,
        peer_id: *b"-BD0100-httpstest123",
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 100,
        numwant: 50,
        key: 1,
        event: Event::Started,
    };
    client.announce(url, &params).map(|r| r.peers.len())
}

#[test]
fn https_announce_and_scrape_with_the_trackers_ca_and_tls_errors_without_it() {
    let good = tracker([127, 66, 0, 1]);
    assert!(good.url().starts_with("https://127.66.0.1:"));
    let trusted = TrackerClient::new(tracker_client(&config(true)));
    assert_eq!(announce(&trusted, &good.url()), Ok(3));
    let scrape = trusted.scrape(&good.url(), &[HASH]).unwrap().unwrap();
    assert_eq!(
        (scrape.counts[0].1.seeders, scrape.counts[0].1.completed),
        (Some(4), Some(6))
    );

    // Only the built-in roots: the test CA is unknown.
    let t0 = Instant::now();
    let plain = TrackerClient::new(tracker_client(&config(false)));
    let err = announce(&plain, &good.url()).unwrap_err();
    assert!(matches!(err, TrackerError::Tls(_)), "{err:?}");
    assert!(err.class().starts_with("tls: "), "{}", err.class());
    // The certificate names 127.66.0.1 and .2, not .3.
    let misnamed = tracker([127, 66, 0, 3]);
    let err = announce(&trusted, &misnamed.url()).unwrap_err();
    assert!(matches!(err, TrackerError::Tls(_)), "{err:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "no hang: {:?}",
        t0.elapsed()
    );
}

#[test]
fn the_tracker_loop_records_https_requests_and_tls_errors() {
    let good = tracker([127, 66, 0, 2]);
    let misnamed = tracker([127, 66, 0, 4]);
    let torrents = vec![TrackedTorrent {
        torrent: TorrentId::new(0),
        info_hash: HASH,
        trackers: vec![good.url(), misnamed.url()],
    }];
    let rows = common::run_trackers(&torrents, &config(true), Duration::from_millis(1_500));
    let of = |url: &str, kind: &str| {
        rows.iter()
            .filter(|r| r.0 == url && r.1 == kind)
            .collect::<Vec<_>>()
    };
    let ok = |url: &str, kind: &str| of(url, kind).iter().any(|r| r.2);
    assert!(
        ok(&good.url(), "announce") && ok(&good.url(), "scrape"),
        "{rows:?}"
    );
    let failed = of(&misnamed.url(), "announce");
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|r| !r.2 && r.3.as_deref().is_some_and(|e| e.starts_with("tls: "))),
        "{rows:?}"
    );
}

#[test]
fn a_ca_file_without_certificates_stops_the_run_at_start() {
    let (_root, input, output) = common::run_dirs_with_fixture();
    std::fs::write(input.join("not-a-ca.pem"), "no certificate here").unwrap();
    std::fs::write(
        input.join("btda.toml"),
        "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nlisten_address = \"127.66.1.1\"\nlisten_port = 0\n\
         [tracker]\nca_file = \"not-a-ca.pem\"\n",
    )
    .unwrap();
    let out = common::btda()
        .args(["run", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("tracker.ca_file")
            && stderr.contains("not-a-ca.pem")
            && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
}
