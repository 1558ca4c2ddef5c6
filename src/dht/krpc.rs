//! KRPC (BEP 5) messages, sans-IO: queries, responses and errors of the Mainline DHT,
//! encoded and decoded from byte slices with size, depth and count limits. The IPv6
//! parts of BEP 32 are understood too: `nodes6` (38 bytes a node), IPv6 peers (18
//! bytes) in `values`, and `want` (`n4`, `n6`) in `find_node` and `get_peers`.

use super::bloom::ScrapeFilter;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use torrust_bencode::{BMutAccess, BencodeMut, ben_bytes, ben_int, ben_map};

use crate::torrent::InfoHash;
use crate::torrent::bencode::{self, Dict, as_bytes, list_items};
use crate::wire::compact::{decode_v4 as compact_v4, decode_v6 as compact_v6, encode_one};

/// Largest datagram accepted (a KRPC message fits in one UDP packet).
pub(crate) const MAX_PACKET: usize = 1500;
/// Nesting depth accepted (KRPC dictionaries nest two or three deep).
const MAX_DEPTH: usize = 6;
/// Peers kept from one `values` list.
pub(crate) const MAX_VALUES: usize = 200;
/// Nodes kept from one `nodes` string (8 are sent normally).
pub(crate) const MAX_NODES: usize = 16;

/// A 160-bit DHT node id.
pub(crate) type NodeId = [u8; 20];

/// A node: id and address (IPv4 in `nodes`, IPv6 in BEP 32's `nodes6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// Its id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
}

/// Which node lists a `find_node` or `get_peers` asks for (BEP 32 `want`); neither
/// means the list of the family the query came over (BEP 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4`: IPv4 nodes (`nodes`).
    pub n4: bool,
    /// `n6`: IPv6 nodes (`nodes6`).
    pub n6: bool,
    /// `scrape` = 1 (BEP 33, `get_peers` only): the answer carries the node's seed and
    /// peer Bloom filters.
    pub scrape: bool,
}

/// A query's method and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `ping`.
    Ping,
    /// `find_node` for a target id.
    FindNode(NodeId, Want),
    /// `get_peers` for an info-hash.
    GetPeers(InfoHash, Want),
    /// `announce_peer`.
    AnnouncePeer {
        /// The torrent.
        info_hash: InfoHash,
        /// The announced port.
        port: u16,
        /// The token from an earlier `get_peers`.
        token: Vec<u8>,
        /// `implied_port`: use the packet's source port.
        implied_port: bool,
    },
}

/// A response's contents (everything optional but the id).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// Compact nodes (IPv4, 26 bytes each).
    pub nodes: Vec<NodeInfo>,
    /// Compact IPv6 nodes (`nodes6`, 38 bytes each; BEP 32).
    pub nodes6: Vec<NodeInfo>,
    /// Peers (`values`), IPv4 and IPv6.
    pub values: Vec<SocketAddr>,
    /// Token for a later `announce_peer`.
    pub token: Option<Vec<u8>>,
    /// BEP 33 `BFsd`: the node's stored seeds (exactly 256 bytes, else dropped).
    pub seeds_filter: Option<Box<ScrapeFilter>>,
    /// BEP 33 `BFpe`: the node's stored peers.
    pub peers_filter: Option<Box<ScrapeFilter>>,
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `y = q`.
    Query(Query),
    /// `y = r`.
    Response(Response),
    /// `y = e`: code and message.
    Error(i64, String),
}

/// A whole KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id (at most 8 bytes kept).
    pub tid: Vec<u8>,
    /// The sender's node id (absent in errors).
    pub id: Option<NodeId>,
    /// The contents.
    pub body: Body,
}

/// Why a packet was refused. `UnknownMethod` and `BadQuery` deserve a KRPC error reply
/// (codes 204 and 203); anything else is dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KrpcError {
    /// Not decodable at all (size, syntax, depth, no transaction id).
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// A query with an unknown method.
    #[error("method unknown: {method}")]
    UnknownMethod {
        /// Transaction id to answer.
        tid: Vec<u8>,
        /// The method.
        method: String,
    },
    /// A query with missing or wrongly typed arguments.
    #[error("protocol error: {reason}")]
    BadQuery {
        /// Transaction id to answer.
        tid: Vec<u8>,
        /// What was wrong.
        reason: String,
    },
}

fn id20(b: Option<&[u8]>) -> Option<[u8; 20]> {
    b.and_then(|b| b.try_into().ok())
}

/// Compact node info: 20-byte id, 4-byte IPv4, 2-byte port each; a partial tail is ignored.
pub(crate) fn parse_nodes(bytes: &[u8]) -> Vec<NodeInfo> {
    bytes
        .chunks_exact(26)
        .take(MAX_NODES)
        .filter_map(|c| {
            let id = id20(Some(&c[..20]))?;
            let ip = Ipv4Addr::new(c[20], c[21], c[22], c[23]);
            let port = u16::from_be_bytes([c[24], c[25]]);
            (port != 0).then(|| NodeInfo {
                id,
                addr: SocketAddr::from((ip, port)),
            })
        })
        .collect()
}

/// Compact IPv6 node info (BEP 32): 20-byte id, 16-byte IPv6, 2-byte port each; a
/// partial tail is ignored.
pub(crate) fn parse_nodes6(bytes: &[u8]) -> Vec<NodeInfo> {
    bytes
        .chunks_exact(38)
        .take(MAX_NODES)
        .filter_map(|c| {
            let id = id20(Some(&c[..20]))?;
            let ip: [u8; 16] = c[20..36].try_into().ok()?;
            let port = u16::from_be_bytes([c[36], c[37]]);
            (port != 0).then(|| NodeInfo {
                id,
                addr: SocketAddr::from((Ipv6Addr::from(ip), port)),
            })
        })
        .collect()
}

/// Encodes the IPv6 nodes of `nodes` in the compact form (IPv4 ones are skipped).
pub(crate) fn encode_nodes6(nodes: &[NodeInfo]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nodes.len() * 38);
    for n in nodes.iter().filter(|n| n.addr.is_ipv6()) {
        out.extend_from_slice(&n.id);
        out.extend(encode_one(&n.addr));
    }
    out
}

/// Encodes the IPv4 nodes of `nodes` in the compact form (IPv6 ones are skipped).
pub(crate) fn encode_nodes(nodes: &[NodeInfo]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nodes.len() * 26);
    for n in nodes.iter().filter(|n| n.addr.is_ipv4()) {
        out.extend_from_slice(&n.id);
        out.extend(encode_one(&n.addr));
    }
    out
}

/// A peer for a `values` list: 6 bytes for IPv4 (BEP 5), 18 for IPv6 (BEP 32).
fn compact_peer(addr: &SocketAddr) -> Vec<u8> {
    encode_one(addr)
}

/// The `want` list of a query's arguments; unknown entries are ignored.
fn parse_want(a: &Dict<'_, '_>) -> Want {
    let mut want = Want::default();
    if let Some(list) = a.list("want").ok().flatten() {
        for w in list.into_iter().take(8).filter_map(as_bytes) {
            match w {
                b"n4" => want.n4 = true,
                b"n6" => want.n6 = true,
                _ => {}
            }
        }
    }
    want.scrape = a.int("scrape").ok().flatten() == Some(1);
    want
}

/// `args` with a `want` list when `want` names a family.
fn with_want(
    mut args: Vec<(&'static str, BencodeMut<'static>)>,
    want: Want,
) -> Vec<(&'static str, BencodeMut<'static>)> {
    if want.n4 || want.n6 {
        let mut list = BencodeMut::new_list();
        if let Some(l) = list.list_mut() {
            if want.n4 {
                l.push(ben_bytes!("n4"));
            }
            if want.n6 {
                l.push(ben_bytes!("n6"));
            }
        }
        args.push(("want", list));
    }
    args
}

impl Message {
    /// Decodes one datagram.
    pub fn decode(packet: &[u8]) -> Result<Self, KrpcError> {
        if packet.len() > MAX_PACKET {
            return Err(KrpcError::Malformed(format!("{} bytes", packet.len())));
        }
        let value =
            bencode::decode(packet, MAX_DEPTH).map_err(|e| KrpcError::Malformed(e.to_string()))?;
        let d = Dict::new(&value, "").map_err(|e| KrpcError::Malformed(e.to_string()))?;
        let tid = d
            .bytes("t")
            .ok()
            .flatten()
            .filter(|t| !t.is_empty() && t.len() <= 8)
            .ok_or_else(|| KrpcError::Malformed("no transaction id".into()))?
            .to_vec();
        let kind = d.bytes("y").ok().flatten().unwrap_or_default();
        match kind {
            b"q" => Self::decode_query(&d, tid),
            b"r" => {
                let r = d
                    .dict("r")
                    .ok()
                    .flatten()
                    .ok_or_else(|| KrpcError::Malformed("response without `r`".into()))?;
                let id = id20(r.bytes("id").ok().flatten())
                    .ok_or_else(|| KrpcError::Malformed("response without id".into()))?;
                let nodes = r
                    .bytes("nodes")
                    .ok()
                    .flatten()
                    .map(parse_nodes)
                    .unwrap_or_default();
                let nodes6 = r
                    .bytes("nodes6")
                    .ok()
                    .flatten()
                    .map(parse_nodes6)
                    .unwrap_or_default();
                let mut values = Vec::new();
                if let Some(list) = r.list("values").ok().flatten() {
                    for v in list.into_iter().take(MAX_VALUES) {
                        match as_bytes(v) {
                            Some(b) if b.len() == 6 => {
                                values.extend(compact_v4(b).filter(|p| p.port() != 0));
                            }
                            Some(b) if b.len() == 18 => {
                                values.extend(compact_v6(b).filter(|p| p.port() != 0));
                            }
                            _ => {}
                        }
                    }
                }
                let token = r
                    .bytes("token")
                    .ok()
                    .flatten()
                    .filter(|t| t.len() <= 64)
                    .map(<[u8]>::to_vec);
                let filter = |key: &str| {
                    r.bytes(key)
                        .ok()
                        .flatten()
                        .and_then(ScrapeFilter::from_bytes)
                        .map(Box::new)
                };
                Ok(Self {
                    tid,
                    id: Some(id),
                    body: Body::Response(Response {
                        nodes,
                        nodes6,
                        values,
                        token,
                        seeds_filter: filter("BFsd"),
                        peers_filter: filter("BFpe"),
                    }),
                })
            }
            b"e" => {
                let list = d.get("e").and_then(list_items).unwrap_or_default();
                let code = list
                    .first()
                    .and_then(|v| torrust_bencode::BRefAccess::int(*v))
                    .unwrap_or(0);
                let msg = list
                    .get(1)
                    .and_then(|v| as_bytes(v))
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).to_string());
                Ok(Self {
                    tid,
                    id: None,
                    body: Body::Error(code, msg.unwrap_or_default()),
                })
            }
            _ => Err(KrpcError::Malformed("unknown message type".into())),
        }
    }

    fn decode_query(d: &Dict<'_, '_>, tid: Vec<u8>) -> Result<Self, KrpcError> {
        let bad = |reason: &str| KrpcError::BadQuery {
            tid: tid.clone(),
            reason: reason.into(),
        };
        let method = d
            .bytes("q")
            .ok()
            .flatten()
            .ok_or_else(|| bad("no method"))?;
        let a = d
            .dict("a")
            .ok()
            .flatten()
            .ok_or_else(|| bad("no arguments"))?;
        let id = id20(a.bytes("id").ok().flatten()).ok_or_else(|| bad("no valid id"))?;
        let hash = || {
            id20(a.bytes("info_hash").ok().flatten())
                .map(InfoHash)
                .ok_or_else(|| bad("no valid info_hash"))
        };
        let query = match method {
            b"ping" => Query::Ping,
            b"find_node" => Query::FindNode(
                id20(a.bytes("target").ok().flatten()).ok_or_else(|| bad("no valid target"))?,
                parse_want(&a),
            ),
            b"get_peers" => Query::GetPeers(hash()?, parse_want(&a)),
            b"announce_peer" => {
                let implied_port = a.int("implied_port").ok().flatten().is_some_and(|n| n != 0);
                let port = a
                    .int("port")
                    .ok()
                    .flatten()
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(0);
                if port == 0 && !implied_port {
                    return Err(bad("no valid port"));
                }
                let token = a
                    .bytes("token")
                    .ok()
                    .flatten()
                    .filter(|t| t.len() <= 64)
                    .ok_or_else(|| bad("no token"))?
                    .to_vec();
                Query::AnnouncePeer {
                    info_hash: hash()?,
                    port,
                    token,
                    implied_port,
                }
            }
            other => {
                return Err(KrpcError::UnknownMethod {
                    tid,
                    method: String::from_utf8_lossy(&other[..other.len().min(32)]).into(),
                });
            }
        };
        Ok(Self {
            tid,
            id: Some(id),
            body: Body::Query(query),
        })
    }

    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let id = self.id.unwrap_or([0; 20]).to_vec();
        match &self.body {
            Body::Query(q) => {
                let mut args = ben_map! { "id" => ben_bytes!(id) };
                let (method, extra): (&str, Vec<(&str, BencodeMut<'static>)>) = match q {
                    Query::Ping => ("ping", vec![]),
                    Query::FindNode(target, want) => (
                        "find_node",
                        with_want(vec![("target", ben_bytes!(target.to_vec()))], *want),
                    ),
                    Query::GetPeers(h, want) => {
                        let mut args = vec![("info_hash", ben_bytes!(h.0.to_vec()))];
                        if want.scrape {
                            args.push(("scrape", ben_int!(1)));
                        }
                        ("get_peers", with_want(args, *want))
                    }
                    Query::AnnouncePeer {
                        info_hash,
                        port,
                        token,
                        implied_port,
                    } => (
                        "announce_peer",
                        vec![
                            ("info_hash", ben_bytes!(info_hash.0.to_vec())),
                            ("port", ben_int!(i64::from(*port))),
                            ("token", ben_bytes!(token.clone())),
                            ("implied_port", ben_int!(i64::from(*implied_port))),
                        ],
                    ),
                };
                if let Some(d) = args.dict_mut() {
                    for (k, v) in extra {
                        d.insert(k.as_bytes().into(), v);
                    }
                }
                ben_map! { "a" => args, "q" => ben_bytes!(method), "t" => ben_bytes!(self.tid.clone()), "y" => ben_bytes!("q") }.encode()
            }
            Body::Response(r) => {
                let mut body = ben_map! { "id" => ben_bytes!(id) };
                if let Some(d) = body.dict_mut() {
                    if !r.nodes.is_empty() {
                        d.insert(
                            "nodes".as_bytes().into(),
                            ben_bytes!(encode_nodes(&r.nodes)),
                        );
                    }
                    if !r.nodes6.is_empty() {
                        d.insert(
                            "nodes6".as_bytes().into(),
                            ben_bytes!(encode_nodes6(&r.nodes6)),
                        );
                    }
                    if let Some(t) = &r.token {
                        d.insert("token".as_bytes().into(), ben_bytes!(t.clone()));
                    }
                    for (key, filter) in [("BFsd", &r.seeds_filter), ("BFpe", &r.peers_filter)] {
                        if let Some(f) = filter {
                            d.insert(key.as_bytes().into(), ben_bytes!(f.0.to_vec()));
                        }
                    }
                    if !r.values.is_empty() {
                        let mut list = BencodeMut::new_list();
                        if let Some(l) = list.list_mut() {
                            for v in r.values.iter().map(compact_peer) {
                                l.push(ben_bytes!(v));
                            }
                        }
                        d.insert("values".as_bytes().into(), list);
                    }
                }
                ben_map! { "r" => body, "t" => ben_bytes!(self.tid.clone()), "y" => ben_bytes!("r") }.encode()
            }
            Body::Error(code, msg) => {
                let mut list = BencodeMut::new_list();
                if let Some(l) = list.list_mut() {
                    l.push(ben_int!(*code));
                    l.push(ben_bytes!(msg.clone()));
                }
                ben_map! { "e" => list, "t" => ben_bytes!(self.tid.clone()), "y" => ben_bytes!("e") }.encode()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u8) -> NodeInfo {
        NodeInfo {
            id: [i; 20],
            addr: SocketAddr::from((Ipv4Addr::new(127, 70, 0, i), 6881)),
        }
    }

    #[test]
    fn every_message_round_trips() {
        let id = Some([7u8; 20]);
        let msgs = vec![
            Message {
                tid: b"aa".to_vec(),
                id,
                body: Body::Query(Query::Ping),
            },
            Message {
                tid: b"ab".to_vec(),
                id,
                body: Body::Query(Query::FindNode([9; 20], Want::default())),
            },
            Message {
                tid: b"ac".to_vec(),
                id,
                body: Body::Query(Query::GetPeers(InfoHash([3; 20]), Want::default())),
            },
            Message {
                tid: b"ag".to_vec(),
                id,
                body: Body::Query(Query::GetPeers(
                    InfoHash([3; 20]),
                    Want {
                        n4: true,
                        n6: true,
                        scrape: true,
                    },
                )),
            },
            Message {
                tid: b"ah".to_vec(),
                id,
                body: Body::Query(Query::FindNode(
                    [9; 20],
                    Want {
                        n4: false,
                        n6: true,
                        scrape: false,
                    },
                )),
            },
            Message {
                tid: b"ad".to_vec(),
                id,
                body: Body::Query(Query::AnnouncePeer {
                    info_hash: InfoHash([3; 20]),
                    port: 6881,
                    token: b"tok".to_vec(),
                    implied_port: false,
                }),
            },
            Message {
                tid: b"ae".to_vec(),
                id,
                body: Body::Response(Response {
                    nodes: vec![node(1), node(2)],
                    nodes6: vec![node6(1), node6(2)],
                    values: vec![
                        "127.70.1.1:7000".parse().unwrap(),
                        "[::1]:7001".parse().unwrap(),
                    ],
                    token: Some(b"xyz".to_vec()),
                    // BEP 33 scrape filters round-trip (a 255-byte one would be dropped).
                    seeds_filter: Some(Box::new(ScrapeFilter([0xa5; 256]))),
                    peers_filter: None,
                }),
            },
            Message {
                tid: b"af".to_vec(),
                id: None,
                body: Body::Error(201, "Generic Error".into()),
            },
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn the_bep_5_example_decodes() {
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        let m = Message::decode(ping).unwrap();
        assert_eq!(
            (m.tid.as_slice(), m.id, m.body),
            (
                &b"aa"[..],
                Some(*b"abcdefghij0123456789"),
                Body::Query(Query::Ping)
            )
        );
    }

    #[test]
    fn hostile_packets_never_panic() {
        let bad: Vec<Vec<u8>> = vec![
            vec![],
            b"garbage".to_vec(),
            b"li1ee".to_vec(),
            b"d1:y1:qe".to_vec(),                      // no transaction id
            b"d1:t2:aa1:y1:xe".to_vec(),               // unknown type
            b"d1:t2:aa1:y1:re".to_vec(),               // response without r
            b"d1:rd2:id3:abce1:t2:aa1:y1:re".to_vec(), // short id
            vec![b'l'; 5000],                          // too big
            format!("d1:t2:aa1:y1:q1:ad{}{}e", "l".repeat(20), "e".repeat(20)).into_bytes(), // too deep
        ];
        for p in bad {
            assert!(
                matches!(Message::decode(&p), Err(KrpcError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(&p)
            );
        }
        let unknown = b"d1:ad2:id20:abcdefghij0123456789e1:q6:vote!!1:t2:zz1:y1:qe";
        assert!(
            matches!(Message::decode(unknown), Err(KrpcError::UnknownMethod { ref tid, .. }) if tid == b"zz")
        );
        let no_target = b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:zz1:y1:qe";
        assert!(matches!(
            Message::decode(no_target),
            Err(KrpcError::BadQuery { .. })
        ));
        let bad_port = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:abcdefghij01234567894:porti70000e5:token1:xe1:q13:announce_peer1:t2:zz1:y1:qe";
        assert!(matches!(
            Message::decode(bad_port),
            Err(KrpcError::BadQuery { .. })
        ));
    }

    #[test]
    fn partial_and_oversized_lists_are_trimmed() {
        let mut nodes = encode_nodes(&(0..40).map(node).collect::<Vec<_>>());
        nodes.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse_nodes(&nodes).len(), MAX_NODES);
        let mut nodes6 = encode_nodes6(&(0..40).map(node6).collect::<Vec<_>>());
        nodes6.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse_nodes6(&nodes6).len(), MAX_NODES);
    }

    fn node6(i: u8) -> NodeInfo {
        NodeInfo {
            id: [i; 20],
            addr: SocketAddr::from((Ipv6Addr::LOCALHOST, 7000 + u16::from(i))),
        }
    }

    #[test]
    fn bep_32_fields_decode_from_the_wire() {
        // A response with one IPv6 node (38 bytes) and an IPv6 and an IPv4 peer, and
        // values of other lengths or port 0 ignored.
        let mut node = vec![b'n'; 20];
        node.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        node.extend_from_slice(&6881u16.to_be_bytes());
        let mut v6 = Ipv6Addr::LOCALHOST.octets().to_vec();
        v6.extend_from_slice(&7000u16.to_be_bytes());
        let mut zero_port = Ipv6Addr::LOCALHOST.octets().to_vec();
        zero_port.extend_from_slice(&[0, 0]);
        let mut packet = b"d1:rd2:id20:abcdefghij01234567896:nodes638:".to_vec();
        packet.extend_from_slice(&node);
        packet.extend_from_slice(b"6:valuesl18:");
        packet.extend_from_slice(&v6);
        packet.extend_from_slice(b"6:\x7f\x00\x00\x01\x1b\x58");
        packet.extend_from_slice(b"18:");
        packet.extend_from_slice(&zero_port);
        packet.extend_from_slice(b"5:abcdeee1:t2:aa1:y1:re");
        let Body::Response(r) = Message::decode(&packet).unwrap().body else {
            panic!("a response");
        };
        assert_eq!(r.nodes6.len(), 1);
        assert_eq!(r.nodes6[0].addr, "[::1]:6881".parse().unwrap());
        assert_eq!(
            r.values,
            vec![
                "[::1]:7000".parse::<SocketAddr>().unwrap(),
                "127.0.0.1:7000".parse().unwrap()
            ]
        );
        // `want` with an unknown entry.
        let q = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:abcdefghij01234567894:wantl2:n62:n9ee1:q9:get_peers1:t2:aa1:y1:qe";
        assert_eq!(
            Message::decode(q).unwrap().body,
            Body::Query(Query::GetPeers(
                InfoHash(*b"abcdefghij0123456789"),
                Want {
                    n4: false,
                    n6: true,
                    scrape: false,
                }
            ))
        );
    }
}
