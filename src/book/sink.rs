//! The one way sources hand peers over: trackers, the DHT and PEX call
//! [`PeerSink::offer`] with what they learned and get back how many were new; they know
//! nothing of the queue behind it.

use std::net::{IpAddr, SocketAddr};

use super::identity::Source;
use super::queue::PeerQueue;
use crate::schedule::Added;
use crate::torrent::TorrentId;

/// What a batch of offered peers came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offered {
    /// Not known before: scheduled.
    pub new: u32,
    /// Already known, or cooling down after being dropped.
    pub duplicate: u32,
    /// Not taken: our own address, not dialable (non-global address, port 0), an IP
    /// already at its most peers, or a source at its most peers per torrent; these are
    /// counted in the `statistic` rows.
    pub skipped: u32,
}

/// Where sources put the peers they learn of.
pub trait PeerSink: Send + Sync {
    /// Offers `peers` of torrent `torrent` learned from `source`.
    fn offer(&self, torrent: TorrentId, peers: &[SocketAddr], source: Source) -> Offered;

    /// An external address of ours that a source reported (BEP 24 `external ip`).
    fn learn_own_ip(&self, ip: IpAddr);
}

impl PeerSink for PeerQueue {
    fn offer(&self, torrent: TorrentId, peers: &[SocketAddr], source: Source) -> Offered {
        let mut o = Offered::default();
        for p in peers {
            match self.add(torrent, *p, source) {
                Added::New => o.new += 1,
                Added::Duplicate | Added::CoolingDown => o.duplicate += 1,
                Added::Ours | Added::NotGlobal | Added::Crowded | Added::SourceFull => {
                    o.skipped += 1;
                }
            }
        }
        o
    }

    fn learn_own_ip(&self, ip: IpAddr) {
        PeerQueue::learn_own_ip(self, ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::PeerKeyer;
    use crate::schedule::Policy;
    use crate::torrent::TorrentRegistry;

    #[test]
    fn offers_are_counted_once_for_every_source() {
        let q = PeerQueue::new(
            TorrentRegistry::with_thresholds(&[Some(10)]),
            Policy::default(),
            PeerKeyer::new([0; 32]),
        )
        .with_own_address(6881, Some("81.2.69.160".parse().unwrap()));
        let sink: &dyn PeerSink = &q;
        let peers: Vec<SocketAddr> = [
            "8.8.8.8:1",
            "8.8.4.4:2",
            "8.8.8.8:1",
            "10.0.0.1:3",
            "81.2.69.160:6881",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(
            sink.offer(TorrentId::new(0), &peers, Source::Tracker),
            Offered {
                new: 2,
                duplicate: 1,
                skipped: 2
            }
        );
        sink.learn_own_ip("8.8.4.4".parse().unwrap());
        let again = sink.offer(
            TorrentId::new(0),
            &["8.8.4.4:6881".parse().unwrap()],
            Source::Dht,
        );
        assert_eq!(again.skipped, 1, "ours now");
    }
}
