//! The DHT in a run: one node, a `get_peers` lookup and an announce for every torrent
//! every interval, bucket refreshes, and the node id and routing table kept across runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

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
pub struct DhtTorrent {
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
                if let (Some(nid), Ok(SocketAddr::V4(a))) = (hex(h), addr.parse()) {
                    nodes.push(NodeInfo { id: nid, addr: a });
                }
            }
            _ => {}
        }
    }
    Some((id?, nodes))
}

/// Writes the node id and routing table.
pub fn save_state(path: &Path, id: &NodeId, nodes: &[NodeInfo]) -> std::io::Result<()> {
    let mut text = format!("id {}\n", InfoHash(*id).to_hex());
    for n in nodes {
        text.push_str(&format!("node {} {}\n", InfoHash(n.id).to_hex(), n.addr));
    }
    std::fs::write(path, text)
}

/// The running DHT thread.
pub struct DhtService {
    thread: JoinHandle<()>,
}

impl DhtService {
    /// Starts the DHT thread; errors binding the socket are logged and end the thread.
    pub fn start(
        config: &crate::config::Dht,
        torrents: Vec<DhtTorrent>,
        announce_port: u16,
        queue: Arc<dyn PeerSink>,
        db: RecordSender,
        state: Option<PathBuf>,
        stop: Shutdown,
    ) -> Self {
        let config = config.clone();
        let thread = std::thread::spawn(move || {
            run(
                &config,
                &torrents,
                announce_port,
                queue.as_ref(),
                &db,
                state.as_deref(),
                &stop,
            )
        });
        Self { thread }
    }

    /// Waits for the thread (the stop flag must be set); it saves its state first.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

fn run(
    config: &crate::config::Dht,
    torrents: &[DhtTorrent],
    announce_port: u16,
    queue: &dyn PeerSink,
    db: &RecordSender,
    state: Option<&Path>,
    stop: &Shutdown,
) {
    let settings = NodeSettings {
        alpha: config.alpha,
        query_timeout: config.query_timeout_ms,
        max_queries: config.max_queries,
        rate_per_sec: config.rate_per_sec,
    };
    let (id, known) = state
        .and_then(load_state)
        .unwrap_or_else(|| (rand::random(), Vec::new()));
    let bind = SocketAddr::new(config.listen_address, config.port);
    let node = match DhtNode::start(bind, id, &known, settings, stop.clone()) {
        Ok(n) => n,
        Err(e) => {
            log::error!("DHT: cannot bind {bind}: {e}; running without the DHT");
            return;
        }
    };
    let timeout = config.query_timeout_ms;
    let bootstrap: Vec<SocketAddr> = config
        .bootstrap
        .iter()
        .filter_map(|b| {
            let (host, port) = b.rsplit_once(':')?;
            crate::resolve::resolve(host, port.parse().ok()?, timeout)
                .ok()?
                .into_iter()
                .find(SocketAddr::is_ipv4)
        })
        .collect();
    let joined = node.bootstrap(&bootstrap);
    log::info!(
        "DHT: node {} joined with {joined} nodes ({} saved, {} bootstrap)",
        InfoHash(id),
        known.len(),
        bootstrap.len()
    );
    let interval = config.interval_secs;
    let mut next = Instant::now();
    while !stop.requested() {
        if Instant::now() >= next {
            for t in torrents {
                if stop.requested() {
                    break;
                }
                lookup_one(&node, t, announce_port, queue, db, &bootstrap);
            }
            node.refresh();
            next = Instant::now() + interval;
        }
        std::thread::sleep(crate::shutdown::POLL);
    }
    if let Some(state) = state {
        let saved = state
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| save_state(state, &node.id(), &node.nodes()));
        if let Err(e) = saved {
            log::warn!("DHT: cannot save {}: {e}", state.display());
        }
    }
    node.join();
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
        kind: "get_peers",
        ok: lookup.answered > 0,
        error: (lookup.answered == 0).then(|| "timeout: no node answered".to_string()),
        duration_ms: Some(start.elapsed().as_millis() as u32),
        received_peers: Some(lookup.peers.len() as u32),
        new_peers: Some(new),
        duplicate_peers: Some(dup),
        nodes_queried: Some(lookup.queried as u32),
        nodes_announced: Some(announced as u32),
        ..RequestRow::default()
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn state_round_trips() {
        use super::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let nodes = vec![NodeInfo {
            id: [3; 20],
            addr: "127.74.0.1:6881".parse().unwrap(),
        }];
        save_state(&path, &[9; 20], &nodes).unwrap();
        assert_eq!(load_state(&path), Some(([9; 20], nodes)));
        std::fs::write(&path, "garbage\nnode zz 1.2.3.4:5\n").unwrap();
        assert_eq!(load_state(&path), None, "no id, no state");
    }
}
