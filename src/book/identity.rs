//! How peers are told apart: in memory by address, on disk only by a keyed hash.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One peer of one torrent, as btda knows it in memory. Port 0 means an incoming peer
/// whose listen port is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerAddr {
    /// The torrent.
    pub torrent: crate::torrent::TorrentId,
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

/// Whether `addr` can be a peer on the Internet: a globally routable address and a port
/// other than 0. Loopback, private (RFC 1918, unique-local), link-local, shared
/// (carrier-grade NAT, 100.64/10), multicast, broadcast, documentation, benchmarking,
/// reserved and unspecified addresses are not; an IPv4-mapped IPv6 address is judged
/// by its IPv4 address.
pub fn is_dialable_global(addr: &SocketAddr) -> bool {
    addr.port() != 0
        && match addr.ip() {
            IpAddr::V4(ip) => global_v4(ip),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => global_v4(v4),
                None => global_v6(ip),
            },
        }
}

fn global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224)
}

fn global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)) // v4-compatible
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_addresses_are_dialable() {
        for a in [
            "8.8.8.8:6881",
            "81.2.69.160:51413",
            "[2a00:1450::1]:6881",
            "[::ffff:8.8.8.8]:1",
        ] {
            assert!(is_dialable_global(&a.parse().unwrap()), "{a}");
        }
        for a in [
            "8.8.8.8:0",
            "127.0.0.1:6881",
            "10.1.2.3:6881",
            "172.20.0.1:6881",
            "192.168.1.1:6881",
            "169.254.1.1:6881",
            "100.64.0.1:6881",
            "0.0.0.0:6881",
            "224.0.0.1:6881",
            "255.255.255.255:6881",
            "192.0.2.1:6881",
            "[::1]:6881",
            "[::]:6881",
            "[fe80::1]:6881",
            "[fd00::1]:6881",
            "[ff02::1]:6881",
            "[2001:db8::1]:6881",
            "[::ffff:192.168.0.1]:6881",
        ] {
            assert!(!is_dialable_global(&a.parse().unwrap()), "{a}");
        }
    }

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
