//! A complete evaluation engine (queue, workers, optional listener, SQLite writer) in
//! one object, for tests and benchmarks that drive it against fake peers.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::book::{PeerKeyer, Source};
use crate::peer::Engine;
use crate::peer::engine::Running;
use crate::run::build::{self, Pools};
use crate::shutdown::Shutdown;
use crate::store::{Record, StoreError, TorrentRow, Writer, WriterSettings};
use crate::torrent::InfoHash;
use crate::torrent::{Figures, TorrentId, TorrentRegistry};

/// Settings of a harness.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// The torrent's info-hash.
    pub info_hash: InfoHash,
    /// Its pieces.
    pub pieces: u32,
    /// Threshold T in pieces.
    pub threshold: u32,
    /// Worker threads.
    pub workers: usize,
    /// Timeouts and limits (`revisit_delay_secs` and `retry_backoff_secs` are replaced
    /// by `revisit` and `backoff`, which may be shorter than a second here).
    pub peer: crate::config::Peer,
    /// Revisit delay.
    pub revisit: Duration,
    /// Retry delays.
    pub backoff: Vec<Duration>,
}

/// Why a harness could not start.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A thread could not be spawned.
    #[error("cannot start the engine's threads: {0}")]
    Threads(#[from] std::io::Error),
}

/// A running engine writing into `<dir>/run.sqlite`, wired by the same builders as
/// `btda run` ([`crate::run::build`]).
pub struct Harness {
    db: PathBuf,
    writer: Writer,
    /// The engine (queue, counters).
    pub engine: Arc<Engine>,
    /// Incoming handlers it runs.
    pub handlers: usize,
    running: Running,
    stop: Shutdown,
}

impl Harness {
    /// Starts an engine for one torrent, with its database in `dir`.
    pub fn start(
        dir: &Path,
        o: &HarnessOptions,
        listener: Option<TcpListener>,
    ) -> Result<Self, HarnessError> {
        let db = dir.join("run.sqlite");
        let writer = Writer::start(&db, WriterSettings::from(&crate::config::Writer::default()))?;
        writer.sender().send(Record::Torrent(TorrentRow {
            id: 1,
            info_hash: o.info_hash.to_hex(),
            name: "harness".into(),
            pieces_count: Some(o.pieces),
            piece_size: Some(16384),
            total_size: Some(u64::from(o.pieces) * 16384),
            complete_threshold: Some(o.threshold),
            threshold: f64::from(o.threshold) / f64::from(o.pieces.max(1)),
            source: "file",
            trackers: vec![],
            private: false,
            added_at: crate::clock::unix_now(),
        }))?;
        let registry = Arc::new(TorrentRegistry::new([(
            o.info_hash,
            Some(Figures {
                pieces: o.pieces,
                size: u64::from(o.pieces) * 16384,
                threshold: o.threshold,
            }),
        )]));
        let mut cfg = o.peer.clone();
        cfg.revisit_delay_secs = o.revisit;
        cfg.retry_backoff_secs = o.backoff.clone();
        cfg.drop_cooldown_secs = Duration::from_secs(3600);
        cfg.listen_port = listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(0, |a| a.port());
        let queue = build::queue(Arc::clone(&registry), &cfg, PeerKeyer::random());
        let stop = Shutdown::new();
        let pools = Pools::fit(
            &crate::config::Peer {
                workers: o.workers,
                ..cfg.clone()
            },
            u64::MAX,
        );
        let (engine, running) = build::engine(
            Arc::new(queue),
            writer.sender(),
            registry,
            &cfg,
            crate::wire::handshake::our_peer_id(rand::random()),
            listener,
            pools,
            &stop,
        )?;
        Ok(Self {
            db,
            writer,
            engine,
            handlers: pools.handlers,
            running,
            stop,
        })
    }

    /// Queues a peer (source `manual`).
    pub fn add(&self, addr: SocketAddr) {
        self.engine
            .queue
            .add(TorrentId::new(0), addr, Source::Manual);
    }

    /// Waits until `check` holds ([`super::eventually`]); false if `limit` passed first.
    pub fn wait_until(&self, limit: Duration, mut check: impl FnMut(&Self) -> bool) -> bool {
        super::eventually(limit, || check(self))
    }

    /// Visits finished so far.
    pub fn visits(&self) -> u64 {
        self.engine.stats.visits.load(Ordering::Relaxed)
    }

    /// Stops the workers, drains the writer and returns the database path.
    pub fn finish(self) -> Result<PathBuf, StoreError> {
        self.stop.request();
        self.engine.queue.close();
        self.running.join();
        drop(self.engine); // its record sender must go before the writer can finish
        self.writer.finish()?;
        Ok(self.db)
    }
}
