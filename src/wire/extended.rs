//! BEP 10 extended handshake and BEP 11 peer exchange payloads.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use torrust_bencode::{BMutAccess, BencodeMut, ben_bytes, ben_int, ben_map};

use super::compact;
use crate::torrent::bencode::{self, Dict};

/// Extended message id under which btda wants ut_metadata messages.
pub(crate) const OUR_UT_METADATA: u8 = 1;
/// Extended message id under which btda wants ut_pex messages.
pub const OUR_UT_PEX: u8 = 2;

/// Our message id for ut_holepunch (BEP 55), announced only when btda speaks uTP
/// (a punch ends in a uTP connection).
pub const OUR_UT_HOLEPUNCH: u8 = 4;
/// Nesting limit for extension payloads (they are flat dictionaries).
const MAX_DEPTH: usize = 8;
/// Peers kept from one PEX message; BEP 11 allows 50 added per message.
pub(crate) const MAX_PEX_PEERS: usize = 200;

/// Our extended handshake payload: `m` with ut_metadata and ut_pex, `p`, `v`.
pub fn our_handshake(listen_port: u16, version: &str) -> Vec<u8> {
    our_handshake_with(listen_port, version, false)
}

/// [`our_handshake`], announcing ut_holepunch too when `holepunch` (a relay ignores
/// the holepunch messages of a peer that did not announce it).
pub fn our_handshake_with(listen_port: u16, version: &str, holepunch: bool) -> Vec<u8> {
    let mut m = ben_map! {
        "ut_metadata" => ben_int!(i64::from(OUR_UT_METADATA)),
        "ut_pex" => ben_int!(i64::from(OUR_UT_PEX))
    };
    if holepunch && let Some(d) = m.dict_mut() {
        d.insert(
            "ut_holepunch".as_bytes().into(),
            BencodeMut::new_int(i64::from(OUR_UT_HOLEPUNCH)),
        );
    }
    let mut root = ben_map! {
        "m" => m,
        "v" => ben_bytes!(version)
    };
    if listen_port != 0
        && let Some(d) = root.dict_mut()
    {
        d.insert(
            "p".as_bytes().into(),
            BencodeMut::new_int(i64::from(listen_port)),
        );
    }
    root.encode()
}

/// What a peer said in its extended handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerExtensions {
    /// `v`: client name and version.
    pub client: Option<String>,
    /// `p`: the peer's listen port.
    pub listen_port: Option<u16>,
    /// The peer's id for ut_metadata, if it supports it.
    pub ut_metadata: Option<u8>,
    /// The peer's id for ut_pex, if it supports it.
    pub ut_pex: Option<u8>,
    /// The peer's id for ut_holepunch (BEP 55), if it supports it.
    pub ut_holepunch: Option<u8>,
    /// `metadata_size` in bytes.
    pub metadata_size: Option<u64>,
    /// `yourip`: our address as the peer sees it.
    pub your_ip: Option<std::net::IpAddr>,
    /// `upload_only`: the peer is a seed or partial seed (BEP 21).
    pub upload_only: bool,
}

/// Why an extension payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad extension payload: {0}")]
pub struct ExtensionError(pub String);

impl From<bencode::BencodeError> for ExtensionError {
    fn from(e: bencode::BencodeError) -> Self {
        Self(e.to_string())
    }
}

/// Parses a peer's extended handshake. Unknown keys are ignored; out-of-range values
/// count as absent.
pub fn parse_handshake(payload: &[u8]) -> Result<PeerExtensions, ExtensionError> {
    let value = bencode::decode(payload, MAX_DEPTH)?;
    let d = Dict::new(&value, "")?;
    let id_of = |m: &Dict<'_, '_>, key: &str| -> Option<u8> {
        m.int(key)
            .ok()
            .flatten()
            .and_then(|n| u8::try_from(n).ok())
            .filter(|&n| n != 0)
    };
    let (ut_metadata, ut_pex, ut_holepunch) = match d.dict("m").ok().flatten() {
        Some(m) => (
            id_of(&m, "ut_metadata"),
            id_of(&m, "ut_pex"),
            id_of(&m, "ut_holepunch"),
        ),
        None => (None, None, None),
    };
    let client = d
        .bytes("v")
        .ok()
        .flatten()
        .map(|v| {
            String::from_utf8_lossy(&v[..v.len().min(64)])
                .trim()
                .to_string()
        })
        .filter(|v| !v.is_empty());
    let your_ip = d
        .bytes("yourip")
        .ok()
        .flatten()
        .and_then(|b| match b.len() {
            4 => Some(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).into()),
            16 => Some(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).into()),
            _ => None,
        });
    Ok(PeerExtensions {
        client,
        listen_port: d
            .int("p")
            .ok()
            .flatten()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0),
        ut_metadata,
        ut_pex,
        ut_holepunch,
        metadata_size: d
            .int("metadata_size")
            .ok()
            .flatten()
            .and_then(|n| u64::try_from(n).ok()),
        your_ip,
        upload_only: d.int("upload_only").ok().flatten().is_some_and(|n| n != 0),
    })
}

/// ut_pex flag: the peer prefers encryption.
pub const PEX_ENCRYPTION: u8 = 0x01;
/// ut_pex flag: the peer is a seed (upload only).
pub const PEX_SEED: u8 = 0x02;
/// ut_pex flag: the peer supports uTP.
pub const PEX_UTP: u8 = 0x04;
/// ut_pex flag: the peer supports `ut_holepunch` (BEP 55).
pub const PEX_HOLEPUNCH: u8 = 0x08;
/// ut_pex flag: the peer is reachable (outgoing connections to it work).
pub const PEX_REACHABLE: u8 = 0x10;

/// A peer a ut_pex message added, with the flags the sender gave it (0 when the
/// message had no `added.f` byte for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PexPeer {
    /// Its address.
    pub addr: SocketAddr,
    /// `PEX_*` bits.
    pub flags: u8,
}

/// Peers added in a ut_pex message (`added` and `added6`, with their `added.f` and
/// `added6.f` flags), at most [`MAX_PEX_PEERS`].
pub(crate) fn parse_pex(payload: &[u8]) -> Result<Vec<PexPeer>, ExtensionError> {
    let value = bencode::decode(payload, MAX_DEPTH)?;
    let d = Dict::new(&value, "")?;
    let mut peers = Vec::new();
    let mut add = |addrs: Vec<SocketAddr>, flags: &[u8]| {
        peers.extend(addrs.into_iter().enumerate().map(|(i, addr)| PexPeer {
            addr,
            flags: flags.get(i).copied().unwrap_or(0),
        }));
    };
    if let Some(v4) = d.bytes("added")? {
        add(
            compact::decode_v4(v4).collect(),
            d.bytes("added.f")?.unwrap_or_default(),
        );
    }
    if let Some(v6) = d.bytes("added6")? {
        add(
            compact::decode_v6(v6).collect(),
            d.bytes("added6.f")?.unwrap_or_default(),
        );
    }
    peers.retain(|p| p.addr.port() != 0);
    peers.truncate(MAX_PEX_PEERS);
    Ok(peers)
}

/// Builds a ut_pex payload (for tests and the simulator).
pub fn build_pex(added: &[SocketAddr]) -> Vec<u8> {
    let (v4, v6) = compact::encode(added);
    ben_map! { "added" => ben_bytes!(v4), "added6" => ben_bytes!(v6) }.encode()
}

/// Builds a ut_pex payload of IPv4 peers with their flags (`added.f`).
pub fn build_pex_with_flags(added: &[(SocketAddr, u8)]) -> Vec<u8> {
    let addrs: Vec<SocketAddr> = added.iter().map(|(a, _)| *a).collect();
    let (v4, _) = compact::encode(&addrs);
    let flags: Vec<u8> = added
        .iter()
        .filter(|(a, _)| a.is_ipv4())
        .map(|(_, f)| *f)
        .collect();
    ben_map! { "added" => ben_bytes!(v4), "added.f" => ben_bytes!(flags) }.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pex_flags_are_read_per_peer() {
        let a: SocketAddr = "198.51.100.1:6881".parse().unwrap();
        let b: SocketAddr = "198.51.100.2:51413".parse().unwrap();
        let payload = build_pex_with_flags(&[(a, PEX_UTP | PEX_HOLEPUNCH), (b, PEX_SEED)]);
        let peers = parse_pex(&payload).unwrap();
        assert_eq!(
            peers,
            vec![
                PexPeer {
                    addr: a,
                    flags: PEX_UTP | PEX_HOLEPUNCH
                },
                PexPeer {
                    addr: b,
                    flags: PEX_SEED
                }
            ]
        );
        // Without `added.f` (or a short one) the flags are 0.
        let plain = parse_pex(&build_pex(&[a, b])).unwrap();
        assert!(plain.iter().all(|p| p.flags == 0));
    }

    #[test]
    fn our_handshake_parses_back() {
        let bytes = our_handshake(51413, "btda 0.1.0");
        let ext = parse_handshake(&bytes).unwrap();
        assert_eq!(ext.ut_metadata, Some(OUR_UT_METADATA));
        assert_eq!(ext.ut_pex, Some(OUR_UT_PEX));
        assert_eq!(ext.listen_port, Some(51413));
        assert_eq!(ext.client.as_deref(), Some("btda 0.1.0"));
        assert!(String::from_utf8_lossy(&bytes).starts_with("d1:md11:ut_metadatai1e6:ut_pexi2ee"));
        assert_eq!(ext.ut_holepunch, None, "not announced without uTP");
        let punching = parse_handshake(&our_handshake_with(51413, "btda", true)).unwrap();
        assert_eq!(punching.ut_holepunch, Some(OUR_UT_HOLEPUNCH));
        assert_eq!(punching.ut_pex, Some(OUR_UT_PEX));
    }

    #[test]
    fn peer_handshake_fields() {
        let raw = b"d1:md11:ut_metadatai3e6:ut_pexi0ee13:metadata_sizei31235e1:pi6881e11:upload_onlyi1e1:v17:qBittorrent/4.6.36:yourip4:\x7f\x00\x00\x01e";
        let ext = parse_handshake(raw).unwrap();
        assert_eq!(ext.ut_metadata, Some(3));
        assert_eq!(ext.ut_pex, None, "id 0 means disabled");
        assert_eq!(ext.metadata_size, Some(31235));
        assert_eq!(ext.listen_port, Some(6881));
        assert!(ext.upload_only);
        assert_eq!(ext.client.as_deref(), Some("qBittorrent/4.6.3"));
        assert_eq!(ext.your_ip, Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn hostile_payloads_are_errors_or_ignored_fields() {
        assert!(parse_handshake(b"not bencode").is_err());
        assert!(parse_handshake(b"li1ee").is_err());
        let deep = format!("d1:m{}{}e", "l".repeat(100), "e".repeat(100));
        assert!(parse_handshake(deep.as_bytes()).is_err());
        let odd = parse_handshake(b"d1:mi5e1:pi99999e1:vi3ee").unwrap();
        assert_eq!(odd, PeerExtensions::default());
    }

    #[test]
    fn pex_round_trip_and_partial_entries() {
        let peers: Vec<SocketAddr> = vec![
            "127.0.0.2:6881".parse().unwrap(),
            "[::1]:51413".parse().unwrap(),
        ];
        let addrs = |v: Vec<PexPeer>| v.into_iter().map(|p| p.addr).collect::<Vec<_>>();
        assert_eq!(addrs(parse_pex(&build_pex(&peers)).unwrap()), peers);
        let partial = b"d5:added7:\x7f\x00\x00\x03\x1a\xe1\x01e";
        assert_eq!(
            addrs(parse_pex(partial).unwrap()),
            vec!["127.0.0.3:6881".parse::<SocketAddr>().unwrap()]
        );
        let many: Vec<SocketAddr> = (1..=255u8)
            .flat_map(|a| (1..=3u8).map(move |b| SocketAddr::from(([127, 1, a, b], 1000))))
            .collect();
        assert_eq!(parse_pex(&build_pex(&many)).unwrap().len(), MAX_PEX_PEERS);
    }
}
