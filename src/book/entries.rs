//! The book's map from address to peer, keyed compactly.
//!
//! A [`PeerAddr`] takes 36 bytes (a `SocketAddr` holds an IPv6 flow label and scope id
//! beside the address), so each slot of the map took 64 bytes with its hash and entry;
//! keyed by torrent, 16 address bytes and the port it takes 48. The flow label and scope
//! id are not kept: they name no other peer (a scope id only qualifies a link-local
//! address, which btda never dials).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use indexmap::IndexMap;

use super::PeerAddr;
use crate::torrent::TorrentId;

/// A [`PeerAddr`] in 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    ip: [u8; 16],
    torrent: TorrentId,
    port: u16,
    v6: bool,
}

impl From<&PeerAddr> for Key {
    fn from(p: &PeerAddr) -> Self {
        let (ip, v6) = match p.addr.ip() {
            IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), false),
            IpAddr::V6(v6) => (v6.octets(), true),
        };
        Self {
            ip,
            torrent: p.torrent,
            port: p.addr.port(),
            v6,
        }
    }
}

impl Key {
    fn peer(&self) -> PeerAddr {
        let v6 = Ipv6Addr::from(self.ip);
        let ip = match (self.v6, v6.to_ipv4_mapped()) {
            (false, Some(v4)) => IpAddr::V4(v4),
            (false, None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED), // not made by `from`
            (true, _) => IpAddr::V6(v6),
        };
        PeerAddr {
            torrent: self.torrent,
            addr: SocketAddr::new(ip, self.port),
        }
    }
}

/// Every known peer in the order it became known (its index is its id).
#[derive(Debug)]
pub(super) struct Entries<V> {
    map: IndexMap<Key, V>,
}

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Self {
            map: IndexMap::new(),
        }
    }
}

impl<V> Entries<V> {
    /// Adds `peer` (or replaces its value); returns its index.
    pub(super) fn insert_full(&mut self, peer: PeerAddr, value: V) -> usize {
        self.map.insert_full(Key::from(&peer), value).0
    }

    pub(super) fn get(&self, peer: &PeerAddr) -> Option<&V> {
        self.map.get(&Key::from(peer))
    }

    pub(super) fn get_mut(&mut self, peer: &PeerAddr) -> Option<&mut V> {
        self.map.get_mut(&Key::from(peer))
    }

    pub(super) fn contains_key(&self, peer: &PeerAddr) -> bool {
        self.map.contains_key(&Key::from(peer))
    }

    pub(super) fn get_index_of(&self, peer: &PeerAddr) -> Option<usize> {
        self.map.get_index_of(&Key::from(peer))
    }

    pub(super) fn get_index(&self, index: usize) -> Option<(PeerAddr, &V)> {
        self.map.get_index(index).map(|(k, v)| (k.peer(), v))
    }

    pub(super) fn get_index_mut(&mut self, index: usize) -> Option<&mut V> {
        self.map.get_index_mut(index).map(|(_, v)| v)
    }

    /// The (torrent, IP) of the peer at `index`.
    pub(super) fn place(&self, index: usize) -> Option<(TorrentId, IpAddr)> {
        self.get_index(index).map(|(p, _)| (p.torrent, p.addr.ip()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_in_24_bytes() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        let mut e = Entries::default();
        let peers: Vec<PeerAddr> = [
            "81.2.69.160:6881",
            "[2001:db8::1]:51413",
            "[::ffff:81.2.69.160]:6881", // IPv4-mapped IPv6 is not the IPv4 address
            "0.0.0.0:1",
            "[::]:1",
        ]
        .iter()
        .enumerate()
        .map(|(i, a)| PeerAddr {
            torrent: TorrentId::new(i as u32 % 2),
            addr: a.parse().unwrap(),
        })
        .collect();
        for (i, p) in peers.iter().enumerate() {
            assert_eq!(e.insert_full(*p, i), i);
        }
        for (i, p) in peers.iter().enumerate() {
            assert_eq!(e.get_index(i).map(|(q, v)| (q, *v)), Some((*p, i)));
            assert_eq!(e.get_index_of(p), Some(i));
            assert_eq!(e.get(p), Some(&i));
        }
        let other_torrent = PeerAddr {
            torrent: TorrentId::new(1),
            ..peers[0]
        };
        assert!(!e.contains_key(&other_torrent));
    }
}
