//! How peers are told apart: in memory by address, on disk only by a keyed hash.

use std::net::{IpAddr, SocketAddr};

/// One peer of one torrent, as btda knows it in memory. `torrent` is the index of the
/// torrent in the run (its database id minus one). Port 0 means an incoming peer whose
/// listen port is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerAddr {
    /// Torrent index.
    pub torrent: u32,
    /// The peer's address.
    pub addr: SocketAddr,
}

/// Where btda learned of a peer; stored as `peer.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A tracker announce.
    Tracker,
    /// A DHT lookup.
    Dht,
    /// Peer exchange during a visit.
    Pex,
    /// The peer connected to us.
    Incoming,
    /// Given by hand (magnet `x.pe`, config `[[torrents]] peers`).
    Manual,
}

impl Source {
    /// The database value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tracker => "tracker",
            Self::Dht => "dht",
            Self::Pex => "pex",
            Self::Incoming => "incoming",
            Self::Manual => "manual",
        }
    }
}

/// Makes `peer_key`: SHA-1 over a secret key, the IP and the port, as 32 hex characters.
/// With a key that is random per run, keys cannot be linked to addresses or across runs.
#[derive(Clone)]
pub struct PeerKeyer {
    key: [u8; 32],
}

impl PeerKeyer {
    /// A keyer with the given secret.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// A keyer with a random secret (the default: one per run).
    pub fn random() -> Self {
        Self::new(rand::random())
    }

    /// The on-disk key of an address.
    pub fn key(&self, addr: &SocketAddr) -> String {
        let mut h = sha1_smol::Sha1::new();
        h.update(&self.key);
        match addr.ip() {
            IpAddr::V4(ip) => h.update(&ip.octets()),
            IpAddr::V6(ip) => h.update(&ip.octets()),
        }
        h.update(&addr.port().to_be_bytes());
        h.update(&self.key);
        data_encoding::HEXLOWER.encode(&h.digest().bytes()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_secret_ip_and_port() {
        let a: SocketAddr = "127.0.0.2:6881".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:6882".parse().unwrap();
        let k = PeerKeyer::new([1; 32]);
        assert_eq!(k.key(&a), k.key(&a));
        assert_ne!(k.key(&a), k.key(&b));
        assert_ne!(k.key(&a), PeerKeyer::new([2; 32]).key(&a));
        assert_eq!(k.key(&a).len(), 32);
        assert!(!k.key(&a).contains("127"));
    }
}
