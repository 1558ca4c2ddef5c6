//! The compact peer form (BEP 23, BEP 7, BEP 5, BEP 11): an IPv4 peer is 4 address
//! bytes and a big-endian port, an IPv6 peer 16 and a port. One codec for trackers
//! (HTTP and UDP), the DHT, peer exchange and the simulator.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// Bytes of one compact IPv4 peer.
pub(crate) const V4_LEN: usize = 6;
/// Bytes of one compact IPv6 peer.
pub(crate) const V6_LEN: usize = 18;

/// Compact IPv4 peers; a partial tail is ignored.
pub(crate) fn decode_v4(bytes: &[u8]) -> impl Iterator<Item = SocketAddr> + '_ {
    bytes.chunks_exact(V4_LEN).map(|c| {
        SocketAddr::from((
            Ipv4Addr::new(c[0], c[1], c[2], c[3]),
            u16::from_be_bytes([c[4], c[5]]),
        ))
    })
}

/// Compact IPv6 peers; a partial tail is ignored.
pub(crate) fn decode_v6(bytes: &[u8]) -> impl Iterator<Item = SocketAddr> + '_ {
    bytes.chunks_exact(V6_LEN).map(|c| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&c[..16]);
        SocketAddr::from((Ipv6Addr::from(a), u16::from_be_bytes([c[16], c[17]])))
    })
}

/// One peer in compact form (6 or 18 bytes).
pub(crate) fn encode_one(addr: &SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(V6_LEN);
    match addr {
        SocketAddr::V4(s) => out.extend_from_slice(&s.ip().octets()),
        SocketAddr::V6(s) => out.extend_from_slice(&s.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

/// Peers in compact form, split by family: (IPv4 bytes, IPv6 bytes).
pub fn encode(peers: &[SocketAddr]) -> (Vec<u8>, Vec<u8>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for p in peers {
        let out = if p.is_ipv4() { &mut v4 } else { &mut v6 };
        out.extend(encode_one(p));
    }
    (v4, v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_round_trip_and_tails_are_ignored() {
        let peers: Vec<SocketAddr> = ["1.2.3.4:6881", "[2001:db8::1]:51413", "5.6.7.8:1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let (v4, v6) = encode(&peers);
        assert_eq!((v4.len(), v6.len()), (12, 18));
        assert_eq!(&v4[..6], &[1, 2, 3, 4, 0x1a, 0xe1]);
        let mut back: Vec<SocketAddr> = decode_v4(&v4).chain(decode_v6(&v6)).collect();
        back.sort();
        let mut want = peers.clone();
        want.sort();
        assert_eq!(back, want);
        assert_eq!(decode_v4(&v4[..11]).count(), 1, "partial tail");
        assert_eq!(encode_one(&peers[1]).len(), V6_LEN);
    }
}
