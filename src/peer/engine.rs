//! The evaluation engine: worker threads visiting peers from the `PeerQueue`, the
//! listener for incoming peers, and the shared counters they keep.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::encryption::{Encryption, Incoming};
use super::finished::{Direction, FinishedVisit};
use super::gate::{Admission, Gate, Limits as GateLimits, Refused};
use super::outcome::Outcome;
use super::visit::{
    Identity, Timeouts, TorrentLookup, VisitReport, visit_incoming, visit_outgoing,
};
use crate::book::{PeerQueue, Recorded, VisitResult};
use crate::shutdown::Shutdown;
use crate::store::{Record, RecordSender};
use crate::torrent::{InfoHash, TorrentId, TorrentRegistry};

/// Counters shared by workers, the listener and the monitor.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Visits finished (both directions).
    pub visits: AtomicU64,
    /// Of which with outcome `ok`.
    pub visits_ok: AtomicU64,
    /// Workers inside a visit now.
    pub workers_busy: AtomicU64,
    /// Total nanoseconds workers spent in visits.
    pub busy_ns: AtomicU64,
    /// Incoming handlers busy now.
    pub incoming_active: AtomicU64,
    /// Incoming connections accepted for a handler.
    pub incoming_accepted: AtomicU64,
    /// Incoming connections closed at once because every handler was busy.
    pub incoming_refused_busy: AtomicU64,
    /// Incoming connections closed at once because their IP already had its share of
    /// connections in their handshake (`peer.max_handshakes_per_ip`) or open
    /// (`peer.max_peers_per_ip`).
    pub incoming_refused_per_ip: AtomicU64,
    /// Incoming connections closed in their handshake to make room for an arrival
    /// from another address (the address holding the most handshakes loses one).
    pub incoming_shed: AtomicU64,
    /// Incoming connections for a torrent btda does not analyse.
    pub incoming_unknown: AtomicU64,
    /// Peers learned by PEX that were new.
    pub pex_new: AtomicU64,
    /// Peers learned by PEX that were already known.
    pub pex_duplicate: AtomicU64,
    /// Connections that turned out to be btda itself (our peer id), both directions.
    pub self_connections: AtomicU64,
    /// Incoming MSE handshakes completed.
    pub mse_accepted: AtomicU64,
    /// Incoming MSE handshakes for a torrent btda does not analyse.
    pub mse_unknown: AtomicU64,
    /// Incoming MSE handshakes that failed.
    pub mse_malformed: AtomicU64,
}

/// What the engine needs from `[peer]` (converted by `run`).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Announced listen port (0: none).
    pub listen_port: u16,
    /// Cap on messages.
    pub max_message: u32,
    /// Source address of outgoing connections (None: the system chooses).
    pub source_ip: Option<std::net::IpAddr>,
    /// Timeouts of visits (connect and handshake: the upper bounds of measured ones).
    pub timeouts: Timeouts,
    /// How the connect and handshake timeouts are chosen (measured or fixed).
    pub connect_rule: super::measured::Rule,
    /// See `connect_rule`.
    pub handshake_rule: super::measured::Rule,
    /// Whether and when to speak MSE/PE.
    pub encryption: super::encryption::Encryption,
    /// Incoming connections in their handshake at once from one IP.
    pub max_handshakes_per_ip: usize,
    /// Incoming connections open at once from one IP.
    pub max_open_per_ip: usize,
    /// Which transports outgoing visits use.
    pub transport: super::visit::TransportChoice,
    /// Where the uTP socket binds (the listen address and port, over UDP), when uTP
    /// is used.
    pub utp_bind: std::net::SocketAddr,
}

/// Everything the engine's threads share.
pub struct Engine {
    /// The peers.
    pub queue: Arc<PeerQueue>,
    /// The database writer.
    pub db: RecordSender,
    /// The analysed torrents (pieces counts and sizes, which magnets fill in).
    pub torrents: Arc<TorrentRegistry>,
    /// Our peer id, for this run.
    pub peer_id: [u8; 20],
    /// Announced listen port.
    pub listen_port: u16,
    /// Cap on messages.
    pub max_message: u32,
    /// Source address of outgoing connections.
    pub source_ip: Option<std::net::IpAddr>,
    /// Timeouts (connect and handshake: the upper bounds of measured ones).
    pub timeouts: Timeouts,
    /// The connect and handshake timeouts measured from this run's successful visits.
    pub measured: super::measured::MeasuredTimeouts,
    /// Whether and when to speak MSE/PE.
    pub encryption: Encryption,
    /// Incoming connections in their handshake at once from one IP.
    pub max_handshakes_per_ip: usize,
    /// Incoming connections open at once from one IP (`peer.max_peers_per_ip`).
    pub max_open_per_ip: usize,
    /// Which transports outgoing visits use.
    pub transport: super::visit::TransportChoice,
    /// The uTP socket (outgoing only for now: incoming SYNs are reset), when used.
    utp: Option<crate::utp::UtpSocket>,
    /// The torrents incoming MSE handshakes may ask for (None: MSE refused).
    mse_torrents: Option<crate::wire::mse::Torrents>,
    /// Set when the run stops.
    pub stop: Shutdown,
    /// Counters.
    pub stats: EngineStats,
    version: String,
}

impl TorrentLookup for Engine {
    fn pieces_of(&self, info_hash: &InfoHash) -> Option<u32> {
        self.torrents.pieces(self.torrents.id_of(info_hash)?)
    }

    fn threshold_of(&self, info_hash: &InfoHash) -> Option<u32> {
        self.torrents.threshold(self.torrents.id_of(info_hash)?)
    }

    fn encrypted(&self) -> Option<&crate::wire::mse::Torrents> {
        self.mse_torrents.as_ref()
    }
}

impl Engine {
    /// Sets up the shared state.
    pub fn new(
        queue: Arc<PeerQueue>,
        db: RecordSender,
        torrents: Arc<TorrentRegistry>,
        peer: &EngineSettings,
        peer_id: [u8; 20],
        stop: Shutdown,
    ) -> Self {
        let mse_torrents = (peer.encryption != Encryption::Plaintext).then(|| {
            crate::wire::mse::Torrents::new(torrents.ids().filter_map(|id| torrents.info_hash(id)))
        });
        Self {
            queue,
            db,
            torrents,
            peer_id,
            listen_port: peer.listen_port,
            max_message: peer.max_message,
            source_ip: peer.source_ip,
            timeouts: peer.timeouts,
            measured: super::measured::MeasuredTimeouts::new(
                peer.connect_rule,
                peer.handshake_rule,
            ),
            encryption: peer.encryption,
            max_handshakes_per_ip: peer.max_handshakes_per_ip,
            max_open_per_ip: peer.max_open_per_ip,
            transport: peer.transport,
            utp: (peer.transport != super::visit::TransportChoice::Tcp)
                .then(|| {
                    crate::utp::UtpSocket::bind(
                        peer.utp_bind,
                        false,
                        crate::utp::Settings::default(),
                        stop.clone(),
                    )
                    .map_err(|e| log::warn!("uTP: cannot bind {}: {e}; TCP only", peer.utp_bind))
                    .ok()
                })
                .flatten(),
            mse_torrents,
            stop,
            stats: EngineStats::default(),
            version: format!("btda {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Torrents whose pieces count is still unknown (magnet metadata pending).
    pub(crate) fn pending_metadata(&self) -> usize {
        self.torrents.pending()
    }

    /// Info-hash of a torrent.
    pub fn info_hash(&self, torrent: TorrentId) -> Option<InfoHash> {
        self.torrents.info_hash(torrent)
    }

    /// What btda says about itself to peers.
    pub fn identity(&self) -> Identity<'_> {
        Identity {
            peer_id: self.peer_id,
            listen_port: self.listen_port,
            version: &self.version,
            max_message: self.max_message,
            source_ip: self.source_ip,
            encryption: self.encryption,
            transport: self.transport,
            utp: self.utp.as_ref(),
        }
    }

    /// The loop of one worker thread: visit due peers until the queue closes or a stop
    /// is requested (a job taken after the stop goes back unvisited: no new connection
    /// after Ctrl+C, whenever the main loop notices it).
    pub fn work(&self) {
        while let Some(job) = self.queue.next_job() {
            if self.stop.requested() {
                self.queue.finish(&job, VisitResult::Retry);
                break;
            }
            let torrent = job.peer.torrent;
            let began = Instant::now();
            self.stats.workers_busy.fetch_add(1, Ordering::Relaxed);
            let started_ms = crate::clock::unix_now_ms();
            let timeouts = self.measured.apply(&self.timeouts, job.attempt);
            let report = visit_outgoing(
                job.peer.addr,
                job.info_hash,
                (job.pieces, job.threshold),
                &self.identity(),
                &timeouts,
                &self.stop,
            );
            self.measured.observe(&report);
            self.learn(&report);
            let visit = FinishedVisit {
                report,
                torrent,
                direction: Direction::Out {
                    attempt: job.attempt,
                    reason: job.reason,
                },
                started_ms,
            };
            let recorded = self.queue.finish(&job, visit.result());
            if visit.report.outcome == Outcome::Myself {
                self.stats.self_connections.fetch_add(1, Ordering::Relaxed);
            } else {
                self.store(&visit, recorded);
            }
            let offered = self.queue.offer_pex(torrent, &visit.report.pex);
            let s = &self.stats;
            s.pex_new
                .fetch_add(u64::from(offered.new), Ordering::Relaxed);
            s.pex_duplicate
                .fetch_add(u64::from(offered.duplicate), Ordering::Relaxed);
            self.stats
                .busy_ns
                .fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
            self.stats.workers_busy.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// What a peer told us about ourselves: the `yourip` of its extended handshake is
    /// an external address of ours (so our port there is never queued).
    fn learn(&self, report: &VisitReport) {
        if let Some(ip) = report.extensions.as_ref().and_then(|e| e.your_ip) {
            self.queue.learn_own_ip(ip);
        }
    }

    /// Handles one accepted connection; `handshaken` is called when the peer's whole
    /// handshake has arrived. While it is open, the peers at its IP are not dialled (one
    /// connection per peer at a time).
    pub(crate) fn handle_incoming(
        &self,
        stream: std::net::TcpStream,
        from: SocketAddr,
        handshaken: &mut dyn FnMut(),
    ) {
        self.queue.incoming_started(from.ip());
        self.incoming_visit(stream, from, handshaken);
        self.queue.incoming_ended(from.ip());
    }

    fn incoming_visit(
        &self,
        stream: std::net::TcpStream,
        from: SocketAddr,
        handshaken: &mut dyn FnMut(),
    ) {
        let started_ms = crate::clock::unix_now_ms();
        let timeouts = self.measured.incoming(&self.timeouts);
        let _ = stream.set_nodelay(true);
        let (info_hash, report) = visit_incoming(
            Box::new(stream),
            self,
            &self.identity(),
            &timeouts,
            &self.stop,
            handshaken,
        );
        if report.outcome != Outcome::Myself {
            self.measured.observe_incoming(&report);
        }
        if let Some(how) = report.incoming_mse {
            let counter = match how {
                Incoming::Accepted => &self.stats.mse_accepted,
                Incoming::UnknownTorrent => &self.stats.mse_unknown,
                Incoming::Malformed => &self.stats.mse_malformed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if report.outcome == Outcome::Myself {
            self.stats.self_connections.fetch_add(1, Ordering::Relaxed);
            return; // btda dialled itself: nothing to store
        }
        self.learn(&report);
        let torrent = info_hash.and_then(|h| self.torrents.id_of(&h));
        let Some(torrent) = torrent.filter(|_| report.outcome != Outcome::UnknownInfoHash) else {
            if report.outcome == Outcome::UnknownInfoHash {
                self.stats.incoming_unknown.fetch_add(1, Ordering::Relaxed);
            }
            return; // not one of our torrents: nothing to attribute it to
        };
        let listen_port = report.extensions.as_ref().and_then(|e| e.listen_port);
        let visit = FinishedVisit {
            report,
            torrent,
            direction: Direction::In,
            started_ms,
        };
        let recorded = match visit.result() {
            result @ VisitResult::Success { .. } => {
                self.queue
                    .record_incoming(torrent, from.ip(), listen_port, result)
            }
            _ => Recorded::default(),
        };
        self.store(&visit, recorded);
    }

    /// Counts a visit and sends its row (and the peer's, when it changed) to the writer.
    fn store(&self, visit: &FinishedVisit, rec: Recorded) {
        self.stats.visits.fetch_add(1, Ordering::Relaxed);
        if visit.report.outcome == Outcome::Ok {
            self.stats.visits_ok.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.db.send(Record::PeerVisit {
            peer: rec.row.map(Box::new),
            visit: visit.row(rec.peer_id),
        });
        for row in rec.also {
            let _ = self.db.send(Record::Peer(row));
        }
    }
}

/// Running worker and listener threads.
pub struct Running {
    workers: threadpool::ThreadPool,
    listener: Option<JoinHandle<()>>,
}

impl Running {
    /// Waits for every thread after the queue was closed and the stop flag set.
    pub fn join(self) {
        self.workers.join();
        if let Some(l) = self.listener {
            let _ = l.join();
        }
    }
}

/// Binds the listener (SO_REUSEADDR). `accept` blocks, so a connection is taken the
/// moment it arrives (while it is not, btda might dial the same client, which many
/// clients refuse), but for at most [`crate::shutdown::POLL`] (SO_RCVTIMEO, which Linux
/// applies to `accept`), so the loop still watches the stop flag.
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(1024)?;
    socket.set_read_timeout(Some(crate::shutdown::POLL))?;
    Ok(socket.into())
}

/// Starts `workers` worker threads and, if given, the listener with `handlers` handlers.
/// If the listener thread cannot be spawned, the queue is closed (the workers end) and
/// the error returned.
pub fn start(
    engine: Arc<Engine>,
    workers: usize,
    stack_kib: usize,
    listener: Option<TcpListener>,
    handlers: usize,
) -> std::io::Result<Running> {
    let pool = threadpool::Builder::new()
        .num_threads(workers)
        .thread_name("visit".into())
        .thread_stack_size(stack_kib * 1024)
        .build();
    for _ in 0..workers {
        let e = Arc::clone(&engine);
        pool.execute(move || e.work());
    }
    let listener = match listener {
        Some(l) => {
            let e = Arc::clone(&engine);
            let spawned = std::thread::Builder::new()
                .name("listener".into())
                .spawn(move || accept_loop(&e, &l, handlers, stack_kib));
            match spawned {
                Ok(t) => Some(t),
                Err(e) => {
                    engine.queue.close(); // let the workers end
                    return Err(e);
                }
            }
        }
        None => None,
    };
    Ok(Running {
        workers: pool,
        listener,
    })
}

fn accept_loop(engine: &Arc<Engine>, listener: &TcpListener, handlers: usize, stack_kib: usize) {
    let pool = threadpool::Builder::new()
        .num_threads(handlers)
        .thread_name("incoming".into())
        .thread_stack_size(stack_kib * 1024)
        .build();
    let gate = Arc::new(parking_lot::Mutex::new(Gate::new(GateLimits {
        capacity: handlers,
        per_ip_handshakes: engine.max_handshakes_per_ip,
        per_ip_open: engine.max_open_per_ip,
    })));
    while !engine.stop.requested() {
        match listener.accept() {
            Ok((stream, from)) => admit(engine, &gate, &pool, stream, from),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {} // nothing within POLL: look at the stop flag again
            Err(e) => {
                // EMFILE and friends: wait and go on; the listener never dies of them.
                log::warn!("listener: accept failed: {e}");
                std::thread::sleep(crate::shutdown::POLL);
            }
        }
    }
    pool.join();
}

/// Puts an accepted connection before the gate: refused, handled, or handled with
/// another address's connection shed to make room.
fn admit(
    engine: &Arc<Engine>,
    gate: &Arc<parking_lot::Mutex<Gate<TcpStream>>>,
    pool: &threadpool::ThreadPool,
    stream: TcpStream,
    from: SocketAddr,
) {
    let stats = &engine.stats;
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let Ok(handle) = stream.try_clone() else {
        return; // no descriptor for the handle: as if every handler were busy
    };
    let ticket = match gate.lock().arrive(from.ip(), handle) {
        Admission::Refused(why) => {
            let counter = match why {
                Refused::PerIp => &stats.incoming_refused_per_ip,
                Refused::Busy => &stats.incoming_refused_busy,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Admission::Admitted { ticket, shed } => {
            if let Some(victim) = shed {
                // Its handler's read returns at once.
                let _ = victim.shutdown(std::net::Shutdown::Both);
                stats.incoming_shed.fetch_add(1, Ordering::Relaxed);
            }
            ticket
        }
    };
    stats.incoming_active.fetch_add(1, Ordering::Relaxed);
    stats.incoming_accepted.fetch_add(1, Ordering::Relaxed);
    let (e, gate) = (Arc::clone(engine), Arc::clone(gate));
    pool.execute(move || {
        e.handle_incoming(stream, from, &mut || gate.lock().handshaken(ticket));
        gate.lock().end(ticket);
        e.stats.incoming_active.fetch_sub(1, Ordering::Relaxed);
    });
}
