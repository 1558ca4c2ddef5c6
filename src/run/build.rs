//! The parts of a run, each built by one small function, so that `btda run`, the
//! simulator's [`crate::sim::Harness`] (tests, benchmarks) and `btda demo` (which runs
//! `btda run` itself) wire the registry, the queue and the engine the same way.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use crate::book::{PeerKeyer, PeerQueue};
use crate::config;
use crate::peer::Engine;
use crate::peer::engine::{self, Running};
use crate::schedule::Policy;
use crate::shutdown::Shutdown;
use crate::store::RecordSender;
use crate::torrent::{Figures, Torrent, TorrentId, TorrentRegistry};

/// File descriptors kept free for the database, the log, trackers and the DHT.
const FD_RESERVE: u64 = 64;

/// Threads visiting peers: outgoing workers and incoming-connection handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pools {
    /// Worker threads.
    pub workers: usize,
    /// Incoming-connection handlers.
    pub handlers: usize,
}

impl Pools {
    /// The configured sizes (incoming handlers 0: as many as workers, so the incoming
    /// pool grows with the outgoing one), shrunk to what `fd_limit` descriptors can serve.
    pub fn fit(p: &config::Peer, fd_limit: u64) -> Self {
        let workers = p.workers;
        let handlers = match p.incoming_handlers {
            0 => workers,
            n => n,
        };
        let room = fd_limit.saturating_sub(FD_RESERVE) as usize;
        if workers + handlers <= room {
            return Self { workers, handlers };
        }
        let handlers = handlers.min(room / 8).max(1);
        let workers = room.saturating_sub(handlers).max(1);
        Self { workers, handlers }
    }

    /// Raises the soft open-file limit to the hard one and fits the configured pools
    /// into it (with a warning when they had to shrink).
    pub(crate) fn for_this_process(p: &config::Peer) -> Self {
        let fd_limit = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("cannot raise the open-file limit: {e}");
                rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
            }
        };
        let pools = Self::fit(p, fd_limit);
        if pools != Self::fit(p, u64::MAX) {
            log::warn!(
                "open-file limit {fd_limit} is too low for {} workers and {} incoming handlers; using {} and {}",
                p.workers,
                p.incoming_handlers,
                pools.workers,
                pools.handlers
            );
        }
        pools
    }
}

/// The registry of the run's torrents, in run order, with T = ⌈`share` × pieces⌉ for
/// those whose metadata is known.
pub fn registry(torrents: &[Torrent], share: f64) -> Arc<TorrentRegistry> {
    Arc::new(TorrentRegistry::new(torrents.iter().map(|t| {
        let figures = t.metainfo.as_ref().map(|m| Figures {
            pieces: m.pieces_count,
            size: m.total_size,
            threshold: crate::torrent::threshold_pieces(share, m.pieces_count),
        });
        (t.info_hash, figures)
    })))
}

/// The ids of `torrents` in a registry built from them by [`registry`].
pub fn ids(torrents: &[Torrent]) -> impl Iterator<Item = (TorrentId, &Torrent)> {
    torrents
        .iter()
        .enumerate()
        .map(|(i, t)| (TorrentId::new(i as u32), t))
}

/// The queue for the peer settings: revisit and retry policy, private addresses, our
/// own listen address.
pub fn queue(registry: Arc<TorrentRegistry>, p: &config::Peer, keyer: PeerKeyer) -> PeerQueue {
    PeerQueue::new(registry, Policy::from_config(p), keyer)
        .with_max_peers_per_ip(p.max_peers_per_ip)
        .with_max_peers_per_source(p.max_peers_per_source)
        .with_dial_budget(p.new_dials_per_sec, p.new_dials_per_network_per_sec)
        .allow_private(p.allow_private_addresses)
        .with_own_address(p.listen_port, Some(p.listen_address))
}

/// Binds the listener when a port is configured; a failure is logged and the run goes
/// on without incoming peers.
pub fn listener(p: &config::Peer) -> Option<TcpListener> {
    if p.listen_port == 0 {
        return None;
    }
    let addr = SocketAddr::new(p.listen_address, p.listen_port);
    match engine::bind_listener(addr) {
        Ok(l) => Some(l),
        Err(e) => {
            log::error!("cannot listen on {addr}: {e}; running without incoming peers");
            None
        }
    }
}

/// The engine and its running workers (and listener, if any). The port btda tells
/// peers is the listener's real one, 0 without a listener (never a port nobody answers
/// on).
#[allow(clippy::too_many_arguments)] // the engine's inputs, each named once
pub fn engine(
    queue: Arc<PeerQueue>,
    db: RecordSender,
    registry: Arc<TorrentRegistry>,
    p: &config::Peer,
    peer_id: [u8; 20],
    listener: Option<TcpListener>,
    pools: Pools,
    shutdown: &Shutdown,
) -> std::io::Result<(Arc<Engine>, Running)> {
    let mut p = p.clone();
    p.listen_port = listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map_or(0, |a| a.port());
    let engine = Arc::new(Engine::new(
        queue,
        db,
        registry,
        &crate::peer::engine::EngineSettings::from(&p),
        peer_id,
        shutdown.clone(),
    ));
    let running = engine::start(
        Arc::clone(&engine),
        pools.workers,
        p.worker_stack_kib,
        listener,
        pools.handlers,
    )?;
    Ok((engine, running))
}

#[cfg(test)]
mod tests {
    use super::Pools;

    #[test]
    fn pools_shrink_to_the_file_limit() {
        let p = |workers, incoming_handlers| crate::config::Peer {
            workers,
            incoming_handlers,
            ..crate::config::Peer::default()
        };
        let fit = |w, h, limit| {
            let f = Pools::fit(&p(w, h), limit);
            (f.workers, f.handlers)
        };
        assert_eq!(fit(1024, 64, 1_000_000), (1024, 64));
        let (w, h) = fit(1024, 64, 1024);
        assert!(w + h <= 1024 - 64 && w > 800 && h >= 1, "{w} {h}");
        assert_eq!(fit(10, 10, 10), (1, 1));
        // 0 handlers: as many as workers.
        assert_eq!(fit(1024, 0, 1_000_000), (1024, 1024));
        assert_eq!(fit(16, 0, 1_000_000), (16, 16));
    }
}
