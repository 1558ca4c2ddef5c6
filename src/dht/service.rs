//! The DHT in a run: an IPv4 node and, when `dht.ipv6` says so, an IPv6 node (BEP 32)
//! with its own routing table and the same id; a `get_peers` lookup and an announce
//! for every torrent on each every interval, bucket refreshes, and the node id and
//! routing tables kept across runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::krpc::{NodeId, NodeInfo};
use super::node::{DhtNode, NodeSettings};
use crate::book::{PeerSink, Source};
use crate::shutdown::Shutdown;
use crate::store::{Record, RecordSender, RequestRow};
use crate::torrent::InfoHash;
use crate::torrent::TorrentId;

/// Name of the saved state file (in `dht.state_dir`, never in the output folder).
pub const STATE_FILE: &str = "dht_state.txt";

/// A torrent to look up: its id and info-hash (private torrents are left out, BEP 27).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DhtTorrent {
    /// Index in the run.
    pub torrent: TorrentId,
    /// Its info-hash.
    pub info_hash: InfoHash,
}

/// Reads a saved node id and nodes (`id <hex>` then `node <hex> <ip:port>` lines).
pub fn load_state(path: &Path) -> Option<(NodeId, Vec<NodeInfo>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut id = None;
    let mut nodes = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let hex = |h: &str| -> Option<NodeId> { InfoHash::parse(h).ok().map(|h| h.0) };
        match parts.as_slice() {
            ["id", h] => id = hex(h),
            ["node", h, addr] => {
                if let (Some(nid), Ok(a)) = (hex(h), addr.parse::<SocketAddr>()) {
                    nodes.push(NodeInfo { id: nid, addr: a });
                }
            }
            _ => {}
        }
    }
    Some((id?, nodes))
}

/// Writes the node id and routing table.
pub(crate) fn save_state(path: &Path, id: &NodeId, nodes: &[NodeInfo]) -> std::io::Result<()> {
    let mut text = format!("id {}\n", InfoHash(*id).to_hex());
    for n in nodes {
        text.push_str(&format!("node {} {}\n", InfoHash(n.id).to_hex(), n.addr));
    }
    std::fs::write(path, text)
}

/// What the DHT thread needs (from `[dht]`, converted by `run`).
#[derive(Debug, Clone)]
pub(crate) struct DhtSettings {
    /// Each node's lookup settings.
    pub node: NodeSettings,
    /// Where each node binds: the IPv4 one, and the IPv6 one when it runs (BEP 32).
    pub listen: Vec<SocketAddr>,
    /// Bootstrap nodes, `host:port`.
    pub bootstrap: Vec<String>,
    /// Time between rounds of lookups.
    pub interval: Duration,
}

/// The running DHT thread.
pub(crate) struct DhtService {
    thread: JoinHandle<()>,
}

impl DhtService {
    /// Starts the DHT thread; errors binding the socket are logged and end the thread.
    /// `shared`: the uTP socket's port, when a node's address is that socket's (the
    /// node then shares it instead of binding its own).
    #[allow(clippy::too_many_arguments)] // the service's inputs, each named once
    pub(crate) fn start(
        settings: &DhtSettings,
        torrents: Vec<DhtTorrent>,
        announce_port: u16,
        queue: Arc<dyn PeerSink>,
        db: RecordSender,
        state: Option<PathBuf>,
        shared: Option<crate::utp::KrpcPort>,
        stop: Shutdown,
    ) -> Self {
        let settings = settings.clone();
        let thread = std::thread::spawn(move || {
            run(
                &settings,
                &torrents,
                announce_port,
                queue.as_ref(),
                &db,
                state.as_deref(),
                shared,
                &stop,
            );
        });
        Self { thread }
    }

    /// Waits for the thread (the stop flag must be set); it saves its state first.
    pub(crate) fn join(self) {
        let _ = self.thread.join();
    }
}

#[allow(clippy::too_many_arguments)] // as `start`
fn run(
    config: &DhtSettings,
    torrents: &[DhtTorrent],
    announce_port: u16,
    queue: &dyn PeerSink,
    db: &RecordSender,
    state: Option<&Path>,
    mut shared: Option<crate::utp::KrpcPort>,
    stop: &Shutdown,
) {
    let settings = config.node.clone();
    let (id, known) = state
        .and_then(load_state)
        .unwrap_or_else(|| (rand::random(), Vec::new()));
    let timeout = config.node.query_timeout;
    // Bootstrap entries resolve to addresses of both families; each node takes the
    // first of its own family from every entry.
    let resolved: Vec<Vec<SocketAddr>> = config
        .bootstrap
        .iter()
        .filter_map(|b| {
            let (host, port) = b.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            crate::resolve::resolve(host, port.parse().ok()?, timeout).ok()
        })
        .collect();
    let families = config.listen.clone();
    let mut nodes: Vec<(DhtNode, Vec<SocketAddr>)> = Vec::new();
    for bind in families {
        let port = shared.take_if(|p| p.socket.local_addr().is_ok_and(|a| a == bind));
        let started = match port {
            Some(port) => {
                log::info!("DHT: sharing the uTP socket's port {bind}");
                DhtNode::start_shared(port, id, &known, settings.clone(), stop.clone())
            }
            None => DhtNode::start(bind, id, &known, settings.clone(), stop.clone()),
        };
        let node = match started {
            Ok(n) => n,
            Err(e) => {
                log::error!("DHT: cannot bind {bind}: {e}; running without this node");
                continue;
            }
        };
        let bootstrap: Vec<SocketAddr> = resolved
            .iter()
            .filter_map(|addrs| addrs.iter().find(|a| a.is_ipv6() == bind.is_ipv6()))
            .copied()
            .collect();
        let joined = node.bootstrap(&bootstrap);
        log::info!(
            "DHT: {} node {} on {bind} joined with {joined} nodes ({} saved, {} bootstrap)",
            if bind.is_ipv6() { "IPv6" } else { "IPv4" },
            InfoHash(id),
            known
                .iter()
                .filter(|n| n.addr.is_ipv6() == bind.is_ipv6())
                .count(),
            bootstrap.len()
        );
        nodes.push((node, bootstrap));
    }
    if nodes.is_empty() {
        return;
    }
    if let [(v4, _), (v6, _)] = nodes.as_slice() {
        v4.pair(v6); // BEP 32 `want`: each answers for the other's family
    }
    let interval = config.interval;
    let mut next = Instant::now();
    while !stop.requested() {
        if Instant::now() >= next {
            for t in torrents {
                for (node, bootstrap) in &nodes {
                    if stop.requested() {
                        break;
                    }
                    lookup_one(node, t, announce_port, queue, db, bootstrap);
                }
            }
            for (node, _) in &nodes {
                node.refresh();
            }
            next = Instant::now() + interval;
        }
        std::thread::sleep(crate::shutdown::POLL);
    }
    if let Some(state) = state {
        let all: Vec<NodeInfo> = nodes.iter().flat_map(|(n, _)| n.nodes()).collect();
        let saved = state
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| save_state(state, &id, &all));
        if let Err(e) = saved {
            log::warn!("DHT: cannot save {}: {e}", state.display());
        }
    }
    for (node, _) in nodes {
        node.join();
    }
}

/// Whether this host has a global IPv6 address: the source address the kernel picks
/// for a route to a global address (connecting a UDP socket sends no packet).
pub(crate) fn has_global_ipv6() -> bool {
    let probe = SocketAddr::from((
        std::net::Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888),
        53,
    ));
    std::net::UdpSocket::bind("[::]:0")
        .and_then(|s| s.connect(probe).and_then(|()| s.local_addr()))
        .is_ok_and(|local| match local.ip() {
            std::net::IpAddr::V6(ip) => is_global_v6(&ip),
            std::net::IpAddr::V4(_) => false,
        })
}

/// Global unicast: not unspecified, loopback, link-local (fe80::/10), unique local
/// (fc00::/7), multicast, or documentation (2001:db8::/32).
fn is_global_v6(ip: &std::net::Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] == 0x2001 && s[1] == 0x0db8))
}

fn lookup_one(
    node: &DhtNode,
    t: &DhtTorrent,
    port: u16,
    queue: &dyn PeerSink,
    db: &RecordSender,
    bootstrap: &[SocketAddr],
) {
    let start = Instant::now();
    // An empty table (nobody answered yet) falls back on the bootstrap nodes.
    let extra = if node.nodes().is_empty() {
        bootstrap
    } else {
        &[]
    };
    let lookup = node.get_peers(t.info_hash, extra);
    let offered = queue.offer(t.torrent, &lookup.peers, Source::Dht);
    let (new, dup) = (offered.new, offered.duplicate);
    let announced = if port != 0 {
        node.announce(t.info_hash, port, &lookup)
    } else {
        0
    };
    let _ = db.send(Record::Request(RequestRow {
        torrent_id: Some(t.torrent.db_id()),
        at: crate::clock::unix_now(),
        source: "dht",
        // Lookups of the IPv6 node (BEP 32) are told apart; the IPv4 node's keep NULL.
        url: node
            .local_addr()
            .is_ok_and(|a| a.is_ipv6())
            .then(|| "ipv6".to_string()),
        kind: "get_peers",
        ok: lookup.answered > 0,
        error: (lookup.answered == 0).then(|| "timeout: no node answered".to_string()),
        duration_ms: Some(start.elapsed().as_millis() as u32),
        received_peers: Some(lookup.peers.len() as u32),
        new_peers: Some(new),
        duplicate_peers: Some(dup),
        nodes_queried: Some(lookup.queried as u32),
        nodes_announced: Some(announced as u32),
        dht_seeds_estimate: lookup.scrape.as_ref().map(|s| s.seeds),
        dht_peers_estimate: lookup.scrape.as_ref().map(|s| s.peers),
        dht_scrape_nodes: lookup.scrape.as_ref().map(|s| s.nodes),
        ..RequestRow::default()
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn global_ipv6_addresses_are_told_from_local_ones() {
        let global = |s: &str| super::is_global_v6(&s.parse().unwrap());
        assert!(global("2a01:4f8::1") && global("2001:4860::8888"));
        for local in [
            "::",
            "::1",
            "fe80::1",
            "fd00::2",
            "fc00::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(!global(local), "{local}");
        }
    }

    #[test]
    fn state_round_trips() {
        use super::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let nodes = vec![
            NodeInfo {
                id: [3; 20],
                addr: "127.74.0.1:6881".parse().unwrap(),
            },
            NodeInfo {
                id: [4; 20],
                addr: "[::1]:6881".parse().unwrap(),
            },
        ];
        save_state(&path, &[9; 20], &nodes).unwrap();
        assert_eq!(load_state(&path), Some(([9; 20], nodes)));
        std::fs::write(&path, "garbage\nnode zz 1.2.3.4:5\n").unwrap();
        assert_eq!(load_state(&path), None, "no id, no state");
    }
}
