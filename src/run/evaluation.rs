//! Starting and stopping the peer evaluation of a run: the queue, the workers, the
//! listener, the statistics thread, and the peers given by hand.

use std::net::SocketAddr;
use std::sync::Arc;

use super::build::{self, Pools};
use super::magnets::MagnetService;
use crate::book::{PeerAddr, PeerKeyer, PeerQueue, Source};
use crate::config::Config;
use crate::dht::service::{DhtService, DhtTorrent};
use crate::geo::rdns::{RdnsPool, RdnsResults};
use crate::monitor::{Monitor, statistics_loop};
use crate::peer::Engine;
use crate::peer::engine::Running;
use crate::store::{RecordSender, WriterStats};
use crate::torrent::Torrent;
use crate::tracker::service::{Announcer, TrackedTorrent, TrackerService};

use super::Shutdown;

/// The evaluation while it runs.
pub(super) struct Evaluation {
    /// Shared state of workers and listener.
    pub engine: Arc<Engine>,
    running: Running,
    trackers: TrackerService,
    dht: Option<DhtService>,
    magnets: Option<MagnetService>,
    rdns: Option<std::thread::JoinHandle<()>>,
    statistics: Option<std::thread::JoinHandle<()>>,
    /// Worker threads actually started (after fitting the file limit).
    pub workers: usize,
}

/// Starts everything; peers given by hand are queued at once. Fails only when a thread
/// cannot be spawned (then whatever started is stopped again).
pub(super) fn start(
    config: &Config,
    torrents: &[Torrent],
    db: RecordSender,
    writer: Arc<WriterStats>,
    shutdown: &Shutdown,
    output: &std::path::Path,
    geo: Arc<crate::geo::Geo>,
) -> std::io::Result<Evaluation> {
    let p = &config.peer;
    let pools = Pools::for_this_process(p);
    let registry = build::registry(torrents, config.analysis.threshold);
    let keyer = config
        .privacy
        .peer_key()
        .map_or_else(PeerKeyer::random, PeerKeyer::new);
    let mut queue =
        build::queue(Arc::clone(&registry), p, keyer).with_geo(geo, config.privacy.store_prefix);
    let mut rdns_results = None;
    if config.geo.reverse_dns {
        let (pool, results) = rdns_pool(&config.geo);
        queue = queue.with_rdns(pool);
        rdns_results = Some(results);
    }
    let queue = Arc::new(queue);
    let rdns = match rdns_results {
        Some(results) => Some(rdns_thread(results, &queue, &db, shutdown)?),
        None => None,
    };
    let peer_id = crate::wire::handshake::our_peer_id(rand::random());
    let (engine, running) = build::engine(
        Arc::clone(&queue),
        db.clone(),
        Arc::clone(&registry),
        p,
        peer_id,
        build::listener(p),
        pools,
        shutdown,
    )?;
    let manual = add_manual_peers(&queue, torrents, config);
    let me = Announcer {
        source_ip: p.source_ip(),
        peer_id,
        port: engine.listen_port,
        key: rand::random(),
    };
    let sink = || Arc::clone(&queue) as Arc<dyn crate::book::PeerSink>;
    let trackers = TrackerService::start(
        &tracked(torrents),
        Arc::clone(&registry),
        &(&config.tracker).into(),
        me,
        sink(),
        db.clone(),
        shutdown.clone(),
    );
    let dht = config.dht.enabled.then(|| {
        let settings: crate::dht::service::DhtSettings = (&config.dht).into();
        // A node on the uTP socket's address shares its port (KRPC and uTP told apart
        // by their first byte), as real clients do.
        let shared = settings
            .listen
            .iter()
            .find_map(|bind| engine.krpc_port(*bind));
        DhtService::start(
            &settings,
            public(torrents),
            engine.listen_port,
            sink(),
            db.clone(),
            config.dht.state_path(),
            shared,
            shutdown.clone(),
        )
    });
    log::info!(
        "evaluation started: {} workers, {} incoming handlers, {manual} peers given by hand, {} tracker URLs, DHT {}",
        pools.workers,
        pools.handlers,
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
    let monitor = Monitor::new(Arc::clone(&engine), writer, pools.workers);
    let interval = config.monitor.statistics_interval_secs;
    let stop = shutdown.clone();
    let statistics = std::thread::Builder::new()
        .name("statistics".into())
        .spawn(move || statistics_loop(monitor, db, interval, &stop));
    let mut evaluation = Evaluation {
        engine,
        running,
        trackers,
        dht,
        magnets,
        rdns,
        statistics: None,
        workers: pools.workers,
    };
    match statistics {
        Ok(t) => {
            evaluation.statistics = Some(t);
            Ok(evaluation)
        }
        Err(e) => {
            shutdown.request();
            evaluation.stop();
            Err(e)
        }
    }
}

/// The torrents as the trackers see them.
fn tracked(torrents: &[Torrent]) -> Vec<TrackedTorrent> {
    build::ids(torrents)
        .map(|(torrent, t)| TrackedTorrent {
            torrent,
            info_hash: t.info_hash,
            trackers: t.trackers.clone(),
        })
        .collect()
}

/// The torrents the DHT may look up: not the private ones (BEP 27).
fn public(torrents: &[Torrent]) -> Vec<DhtTorrent> {
    build::ids(torrents)
        .filter(|(_, t)| !t.metainfo.as_ref().is_some_and(|m| m.private))
        .map(|(torrent, t)| DhtTorrent {
            torrent,
            info_hash: t.info_hash,
        })
        .collect()
}

/// Reverse lookups of peers' addresses, as configured.
fn rdns_pool(g: &crate::config::GeoConfig) -> (RdnsPool<PeerAddr>, RdnsResults<PeerAddr>) {
    RdnsPool::start(
        crate::geo::rdns::system_resolver(),
        g.rdns_threads,
        g.rdns_per_sec,
        g.rdns_timeout_ms,
    )
}

/// Folds reverse-DNS answers into the peer rows, on a thread of its own.
fn rdns_thread(
    results: RdnsResults<PeerAddr>,
    queue: &Arc<PeerQueue>,
    db: &RecordSender,
    shutdown: &Shutdown,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (q, db, stop) = (Arc::clone(queue), db.clone(), shutdown.clone());
    std::thread::Builder::new()
        .name("rdns-results".into())
        .spawn(move || {
            while !stop.requested() {
                if let Ok((peer, Some(domain))) = results.recv_timeout(crate::shutdown::POLL)
                    && let Some(id) = q.set_domain(&peer, domain.clone())
                {
                    let _ = db.send(crate::store::Record::PeerDomain { id, domain });
                }
            }
        })
}

/// Queues magnet `x.pe` peers and config `[[torrents]] peers` with source `manual`.
/// A magnet's host names are skipped with a warning (resolving them is the DHT/tracker
/// layer's job); the config's peers were typed when it was read.
fn add_manual_peers(queue: &PeerQueue, torrents: &[Torrent], config: &Config) -> usize {
    let mut added = 0;
    for (id, t) in build::ids(torrents) {
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
            queue.add(id, addr, Source::Manual);
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
    pub(super) fn stop(self) {
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
        if let Some(s) = self.statistics {
            let _ = s.join();
        }
    }
}
