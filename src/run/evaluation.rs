//! Starting and stopping the peer evaluation of a run: the queue, the workers, the
//! listener, the statistics thread, and the peers given by hand.

use std::net::SocketAddr;
use std::sync::Arc;

use super::magnets::MagnetService;
use crate::book::{PeerKeyer, PeerQueue, Source};
use crate::config::Config;
use crate::dht::service::{DhtService, DhtTorrent};
use crate::monitor::{Monitor, statistics_loop};
use crate::peer::Engine;
use crate::peer::engine::{self, Running};
use crate::schedule::Policy;
use crate::store::{RecordSender, WriterStats};
use crate::torrent::{Figures, Torrent, TorrentId, TorrentRegistry};
use crate::tracker::service::{Announcer, TrackedTorrent, TrackerService};

use super::Shutdown;

/// File descriptors kept free for the database, the log, trackers and the DHT.
const FD_RESERVE: u64 = 64;

/// The evaluation while it runs.
pub struct Evaluation {
    /// Shared state of workers and listener.
    pub engine: Arc<Engine>,
    running: Running,
    trackers: TrackerService,
    dht: Option<DhtService>,
    magnets: Option<MagnetService>,
    rdns: Option<std::thread::JoinHandle<()>>,
    statistics: std::thread::JoinHandle<()>,
    /// Worker threads actually started (after fitting the file limit).
    pub workers: usize,
}

/// Raises the soft open-file limit to the hard one and returns the limit in force.
fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            log::warn!("cannot raise the open-file limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// How many workers and incoming handlers fit into `fd_limit` descriptors.
pub fn fit_pools(workers: usize, handlers: usize, fd_limit: u64) -> (usize, usize) {
    let room = fd_limit.saturating_sub(FD_RESERVE) as usize;
    if workers + handlers <= room {
        return (workers, handlers);
    }
    let handlers = handlers.min(room / 8).max(1);
    let workers = room.saturating_sub(handlers).max(1);
    (workers, handlers)
}

/// Starts everything; peers given by hand are queued at once.
pub fn start(
    config: &Config,
    torrents: &[Torrent],
    db: RecordSender,
    writer: Arc<WriterStats>,
    shutdown: &Shutdown,
    output: &std::path::Path,
    geo: Arc<crate::geo::Geo>,
) -> Evaluation {
    let p = &config.peer;
    let fd_limit = raise_fd_limit();
    let (workers, handlers) = fit_pools(p.workers, p.incoming_handlers, fd_limit);
    if (workers, handlers) != (p.workers, p.incoming_handlers) {
        log::warn!(
            "open-file limit {fd_limit} is too low for {} workers and {} incoming handlers; using {workers} and {handlers}",
            p.workers,
            p.incoming_handlers
        );
    }
    let registry = Arc::new(TorrentRegistry::new(torrents.iter().map(|t| {
        let figures = t.metainfo.as_ref().map(|m| Figures {
            pieces: m.pieces_count,
            size: m.total_size,
            threshold: crate::torrent::threshold_pieces(config.analysis.threshold, m.pieces_count),
        });
        (t.info_hash, figures)
    })));
    let keyer = config
        .privacy
        .peer_key()
        .map_or_else(PeerKeyer::random, PeerKeyer::new);
    let mut queue = PeerQueue::new(Arc::clone(&registry), Policy::from_config(p), keyer)
        .allow_private(p.allow_private_addresses)
        .with_own_address(p.listen_port, Some(p.listen_address))
        .with_geo(geo, config.privacy.store_prefix);
    let mut rdns_results = None;
    if config.geo.reverse_dns {
        let g = &config.geo;
        let (pool, results) = crate::geo::rdns::RdnsPool::start(
            crate::geo::rdns::system_resolver(),
            g.rdns_threads,
            g.rdns_per_sec,
            g.rdns_timeout_ms,
        );
        queue = queue.with_rdns(pool);
        rdns_results = Some(results);
    }
    let queue = Arc::new(queue);
    // Reverse-DNS answers are folded into the peer rows by a thread of their own.
    let rdns_thread = rdns_results.map(|results| {
        let (q, db, stop) = (Arc::clone(&queue), db.clone(), shutdown.clone());
        std::thread::spawn(move || {
            while !stop.requested() {
                if let Ok((peer, Some(domain))) = results.recv_timeout(crate::shutdown::POLL)
                    && let Some(id) = q.set_domain(&peer, domain.clone())
                {
                    let _ = db.send(crate::store::Record::PeerDomain { id, domain });
                }
            }
        })
    });

    let listener = if p.listen_port == 0 {
        None
    } else {
        let addr = SocketAddr::new(p.listen_address, p.listen_port);
        match engine::bind_listener(addr) {
            Ok(l) => Some(l),
            Err(e) => {
                log::error!("cannot listen on {addr}: {e}; running without incoming peers");
                None
            }
        }
    };
    let mut peer_cfg = p.clone();
    if listener.is_none() {
        peer_cfg.listen_port = 0; // never announce a port nobody answers on
    }
    let peer_id = crate::wire::handshake::our_peer_id(rand::random());
    let engine = Arc::new(Engine::new(
        Arc::clone(&queue),
        db.clone(),
        Arc::clone(&registry),
        &peer_cfg,
        peer_id,
        shutdown.clone(),
    ));
    let running = engine::start(
        Arc::clone(&engine),
        workers,
        p.worker_stack_kib,
        listener,
        handlers,
    );

    let manual = add_manual_peers(&queue, torrents, config);
    let tracked: Vec<TrackedTorrent> = torrents
        .iter()
        .enumerate()
        .map(|(i, t)| TrackedTorrent {
            torrent: TorrentId::new(i as u32),
            info_hash: t.info_hash,
            trackers: t.trackers.clone(),
        })
        .collect();
    let me = Announcer {
        source_ip: p.source_ip(),
        peer_id,
        port: peer_cfg.listen_port,
        key: rand::random(),
    };
    let trackers = TrackerService::start(
        &tracked,
        Arc::clone(&registry),
        &config.tracker,
        me,
        Arc::clone(&queue) as Arc<dyn crate::book::PeerSink>,
        db.clone(),
        shutdown.clone(),
    );
    let dht = config.dht.enabled.then(|| {
        let public: Vec<DhtTorrent> = torrents
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.metainfo.as_ref().is_some_and(|m| m.private)) // BEP 27
            .map(|(i, t)| DhtTorrent {
                torrent: TorrentId::new(i as u32),
                info_hash: t.info_hash,
            })
            .collect();
        DhtService::start(
            &config.dht,
            public,
            peer_cfg.listen_port,
            Arc::clone(&queue) as Arc<dyn crate::book::PeerSink>,
            db.clone(),
            config.dht.state_path(),
            shutdown.clone(),
        )
    });
    log::info!(
        "evaluation started: {workers} workers, {handlers} incoming handlers, {manual} peers given by hand, {} tracker URLs, DHT {}",
        trackers.trackers(),
        if dht.is_some() { "on" } else { "off" }
    );

    let magnets = MagnetService::start(
        torrents,
        Arc::clone(&engine),
        db.clone(),
        config,
        output,
        shutdown.clone(),
    );
    let monitor = Monitor::new(Arc::clone(&engine), writer, workers);
    let interval = config.monitor.statistics_interval_secs;
    let stop = shutdown.clone();
    let statistics = std::thread::Builder::new()
        .name("statistics".into())
        .spawn(move || statistics_loop(monitor, db, interval, &stop))
        .expect("spawning the statistics thread");
    Evaluation {
        engine,
        running,
        trackers,
        dht,
        magnets,
        rdns: rdns_thread,
        statistics,
        workers,
    }
}

/// Queues magnet `x.pe` peers and config `[[torrents]] peers` with source `manual`.
/// A magnet's host names are skipped with a warning (resolving them is the DHT/tracker
/// layer's job); the config's peers were typed when it was read.
fn add_manual_peers(queue: &PeerQueue, torrents: &[Torrent], config: &Config) -> usize {
    let mut added = 0;
    for (i, t) in torrents.iter().enumerate() {
        let from_magnet = t.manual_peers.iter().filter_map(|text| {
            let addr = text.parse::<SocketAddr>().ok();
            if addr.is_none() {
                log::warn!(
                    "torrent {}: peer {text:?} is not ip:port; skipped",
                    t.info_hash
                );
            }
            addr
        });
        let from_config = config
            .torrents
            .iter()
            .filter(|e| e.info_hash == t.info_hash)
            .flat_map(|e| e.peers.iter().copied());
        for addr in from_magnet.chain(from_config) {
            queue.add(TorrentId::new(i as u32), addr, Source::Manual);
            added += 1;
        }
    }
    added
}

impl Evaluation {
    /// Stops in order: the queue closes first (no new visit starts), trackers get
    /// `stopped` (never waiting on an announce in flight longer than
    /// `tracker.stopped_timeout_ms`), the other sources stop, visits in flight end (they
    /// watch the stop flag), the listener and the statistics thread finish. Call after
    /// the stop flag is set.
    pub fn stop(self) {
        self.engine.queue.close();
        self.trackers.stop();
        if let Some(dht) = self.dht {
            dht.join();
        }
        if let Some(m) = self.magnets {
            m.join();
        }
        if let Some(r) = self.rdns {
            let _ = r.join();
        }
        self.running.join();
        let _ = self.statistics.join();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pools_shrink_to_the_file_limit() {
        use super::fit_pools;
        assert_eq!(fit_pools(1024, 64, 1_000_000), (1024, 64));
        let (w, h) = fit_pools(1024, 64, 1024);
        assert!(w + h <= 1024 - 64 && w > 800 && h >= 1, "{w} {h}");
        assert_eq!(fit_pools(10, 10, 10), (1, 1));
    }
}
