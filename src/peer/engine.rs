//! The evaluation engine: worker threads visiting peers from the `PeerQueue`, the
//! listener for incoming peers, and the shared counters they keep.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::encryption::{self, Encryption};
use super::finished::{Direction, FinishedVisit};
use super::gate::{Admission, Gate, Limits as GateLimits, Refused};
use super::outcome::Outcome;
use super::visit::{
    Identity, RelayAnswer, Timeouts, TorrentLookup, TransportChoice, VisitReport, rendezvous,
    visit_incoming, visit_outgoing,
};
use crate::book::{Job, PeerQueue, Recorded, VisitResult};
use crate::shutdown::Shutdown;
use crate::store::{Record, RecordSender};
use crate::torrent::{InfoHash, TorrentId, TorrentRegistry};

/// Connect timeout of btda's half of a punch: its first SYN may reach the target's NAT
/// before the target's own packet opened it, so the retransmissions after it (1 s, 2 s)
/// must fit.
const PUNCH_CONNECT: std::time::Duration = std::time::Duration::from_secs(4);

/// How long a worker waits for a rendezvous slot at a busy relay before it gives up the
/// punch for now (the peer's retry comes back to it).
const RELAY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// How long btda waits, after a relay's `connect`, for the peer's own connection (the
/// punch's other half) before it dials the peer itself.
/// libtorrent's half came 1.0–2.5 s after the relay's `connect` in
/// `tests/interop_nat.rs`.
const PUNCH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

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
    /// Incoming uTP connections (before the gate).
    pub incoming_utp: AtomicU64,
    /// BEP 55 rendezvous sent to relays.
    pub punch_rendezvous: AtomicU64,
    /// `connect` answers from relays.
    pub punch_connects: AtomicU64,
    /// Error answers from relays.
    pub punch_errors: AtomicU64,
    /// Punched peers reached (btda's visit, or the peer's own connection in).
    pub punch_reached: AtomicU64,
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
    /// The uTP socket, when uTP is used: outgoing visits, and incoming ones on the
    /// listen port (through the same gate as TCP) when btda listens.
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
                        peer.listen_port != 0,
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

    /// The uTP socket's port for a DHT node bound at `dht` (the same address and port):
    /// None when uTP is off or elsewhere.
    pub(crate) fn krpc_port(&self, dht: SocketAddr) -> Option<crate::utp::KrpcPort> {
        let utp = self.utp.as_ref()?;
        if utp.local_addr().ok()? != dht {
            return None;
        }
        utp.krpc_port()
            .map_err(|e| log::warn!("DHT: cannot share the uTP socket's port: {e}"))
            .ok()
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
            let mut timeouts = self.measured.apply(&self.timeouts, job.timeout_attempt);
            if job.reason != crate::schedule::Reason::First || self.utp.is_none() {
                timeouts.pex_wait = std::time::Duration::ZERO;
            }
            let (report, came_in) = self.visit_or_punch(&job, &timeouts);
            let Some(report) = report else {
                // The punch's other half (the peer's own connection) was the visit.
                self.queue.finish(&job, VisitResult::Elsewhere);
                self.stats.workers_busy.fetch_sub(1, Ordering::Relaxed);
                continue;
            };
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
            let result = match visit.result() {
                // Our half failed, the peer's came in: it was reached, not missed.
                VisitResult::Failure { .. } if came_in => VisitResult::Failure { connected: true },
                other => other,
            };
            let recorded = self.queue.finish(&job, result);
            if visit.report.outcome == Outcome::Myself {
                self.stats.self_connections.fetch_add(1, Ordering::Relaxed);
            } else {
                self.store(&visit, recorded);
            }
            let offered = self
                .queue
                .offer_pex(torrent, job.peer.addr, &visit.report.pex);
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

    /// Visits the job's peer: directly, then — when that found nobody (no connection)
    /// and a relay named the peer with the holepunch flag — through a hole punch; a
    /// peer last reached by a punch is punched first. Returns the report of btda's
    /// visit (None: the peer's own connection, the other half of the punch, came in
    /// first and was the visit) and whether that connection came in.
    fn visit_or_punch(&self, job: &Job, timeouts: &Timeouts) -> (Option<VisitReport>, bool) {
        let me = self.identity();
        let punchable = job.relay.filter(|_| me.utp.is_some());
        if job.punch_first
            && let Some(relay) = punchable
            && let Some(punched) = self.punch(job, relay, timeouts)
        {
            return punched;
        }
        let direct = visit_outgoing(
            job.peer.addr,
            job.info_hash,
            (job.pieces, job.threshold),
            &me,
            timeouts,
            &self.stop,
        );
        self.measured.observe(&direct);
        let unreached = direct.connect_ms.is_none()
            && matches!(
                direct.outcome,
                Outcome::ConnectTimeout | Outcome::Refused | Outcome::Unreachable
            );
        if unreached
            && !self.stop.requested()
            && let Some(relay) = punchable
            && let Some(punched) = self.punch(job, relay, timeouts)
        {
            return punched;
        }
        (Some(direct), false)
    }

    /// A hole punch (BEP 55) towards the job's peer through `relay`: a rendezvous
    /// session; on the relay's `connect` the peer dials btda (its connection is handled
    /// as incoming and recognised as the punch's other half). btda waits up to
    /// [`PUNCH_WAIT`] for it; if it does not come, btda dials the peer over uTP itself
    /// (the half a NAT on btda's side would need). Why not at once: btda's first SYN,
    /// reaching the peer's NAT before the peer's own packet, is answered by the router
    /// itself and leaves a conntrack entry on that port, so Linux's MASQUERADE maps the
    /// peer's packet to another port and btda's half never gets through (seen in 4 of
    /// 4 punches in `tests/interop_nat.rs`: the leecher's packets came from another
    /// port). None when no punch was tried (the relay's sessions are all in use or
    /// paced, or the relay cannot relay): the direct visit's report stands.
    fn punch(
        &self,
        job: &Job,
        relay: SocketAddr,
        timeouts: &Timeouts,
    ) -> Option<(Option<VisitReport>, bool)> {
        if self.stop.requested() || !self.queue.relay_slot(relay, RELAY_PATIENCE) {
            return None;
        }
        let me = self.identity();
        let target = job.peer.addr;
        let session = rendezvous(relay, target, job.info_hash, &me, timeouts, &self.stop);
        log::debug!(
            "holepunch: asked {relay} for {target}: {:?}",
            session.answer
        );
        let s = &self.stats;
        if session.sent {
            s.punch_rendezvous.fetch_add(1, Ordering::Relaxed);
        }
        // A relay that refused or cannot relay is not asked for this peer again (until
        // its PEX names the peer again); one that did not answer this time is.
        let usable = !matches!(
            session.answer,
            RelayAnswer::Refused(_) | RelayAnswer::NoSupport
        );
        self.queue.relay_done(job, relay, usable);
        let offered = self.queue.offer_pex(job.peer.torrent, relay, &session.pex);
        s.pex_new
            .fetch_add(u64::from(offered.new), Ordering::Relaxed);
        let mut report = match session.answer {
            RelayAnswer::Connect(_) => {
                s.punch_connects.fetch_add(1, Ordering::Relaxed);
                self.queue.punch_started(target.ip());
                let waited = Instant::now();
                while waited.elapsed() < PUNCH_WAIT && !self.stop.requested() {
                    if self.queue.punch_came_in(target.ip()) {
                        self.queue.punch_ended(job, true);
                        s.punch_reached.fetch_add(1, Ordering::Relaxed);
                        return Some((None, true));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                let over_utp = Identity {
                    transport: TransportChoice::Utp,
                    ..me
                };
                // The target's NAT may still drop the first SYN: leave time for the
                // retransmissions after it.
                let t = Timeouts {
                    connect: timeouts.connect.max(PUNCH_CONNECT),
                    ..*timeouts
                };
                let pieces = (job.pieces, job.threshold);
                visit_outgoing(target, job.info_hash, pieces, &over_utp, &t, &self.stop)
            }
            RelayAnswer::Refused(e) => {
                s.punch_errors.fetch_add(1, Ordering::Relaxed);
                log::debug!("holepunch: {relay} cannot introduce {target}: {}", e.name());
                return None;
            }
            RelayAnswer::NoSupport | RelayAnswer::NoAnswer(_) => return None,
        };
        report.via = "holepunch";
        let reached = report.outcome == Outcome::Ok;
        let came_in = self.queue.punch_ended(job, reached);
        if reached || came_in {
            s.punch_reached.fetch_add(1, Ordering::Relaxed);
        }
        Some((Some(report), came_in && !reached))
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
        stream: Box<dyn super::stream::Transport>,
        from: SocketAddr,
        handshaken: &mut dyn FnMut(),
    ) {
        let punched = self.queue.incoming_started(from.ip());
        if punched {
            log::debug!("holepunch: {from} came in");
        }
        self.incoming_visit(stream, from, punched, handshaken);
        self.queue.incoming_ended(from.ip());
    }

    fn incoming_visit(
        &self,
        stream: Box<dyn super::stream::Transport>,
        from: SocketAddr,
        punched: bool,
        handshaken: &mut dyn FnMut(),
    ) {
        let started_ms = crate::clock::unix_now_ms();
        let timeouts = self.measured.incoming(&self.timeouts);
        let (info_hash, mut report) = visit_incoming(
            stream,
            self,
            &self.identity(),
            &timeouts,
            &self.stop,
            handshaken,
        );
        if report.outcome != Outcome::Myself {
            self.measured.observe_incoming(&report);
        }
        if punched {
            report.via = "holepunch"; // the target's half of a punch btda asked for
        }
        if let Some(how) = report.incoming_mse {
            let counter = match how {
                encryption::Incoming::Accepted => &self.stats.mse_accepted,
                encryption::Incoming::UnknownTorrent => &self.stats.mse_unknown,
                encryption::Incoming::Malformed => &self.stats.mse_malformed,
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
    listeners: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits for every thread after the queue was closed and the stop flag set.
    pub fn join(self) {
        self.workers.join();
        for l in self.listeners {
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

/// Starts `workers` worker threads and, if given, the listener with `handlers` handlers
/// (and, when the engine speaks uTP and listens, the uTP acceptor: incoming uTP
/// connections share the handlers and the gate with TCP ones). If a listener thread
/// cannot be spawned, the queue is closed (the workers end) and the error returned.
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
    let mut listeners = Vec::new();
    if let Some(l) = listener {
        let incoming = match Incoming::new(&engine, handlers, stack_kib) {
            Ok(incoming) => Arc::new(incoming),
            Err(e) => {
                engine.stop.request();
                engine.queue.close();
                return Err(e);
            }
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name.into()).spawn(f)
        };
        let (e, inc) = (Arc::clone(&engine), Arc::clone(&incoming));
        let mut spawned = vec![spawn(
            "listener",
            Box::new(move || tcp_accept_loop(&e, &inc, &l)),
        )];
        if engine.utp.is_some() && engine.listen_port != 0 {
            let (e, inc) = (Arc::clone(&engine), Arc::clone(&incoming));
            spawned.push(spawn(
                "utp-listener",
                Box::new(move || utp_accept_loop(&e, &inc)),
            ));
        }
        for t in spawned {
            match t {
                Ok(t) => listeners.push(t),
                Err(e) => {
                    engine.stop.request(); // let a started listener end too
                    engine.queue.close(); // and the workers
                    return Err(e);
                }
            }
        }
    }
    Ok(Running {
        workers: pool,
        listeners,
    })
}

/// The incoming handlers and their gate, shared by the TCP and uTP acceptors.
struct Incoming {
    /// Handed to the handler that went idle last, so that the handlers used are about
    /// as many as were ever busy at once (each one used keeps its stack pages).
    pool: crate::lifo_pool::LifoPool,
    gate: Arc<parking_lot::Mutex<Gate<Shed>>>,
}

impl Incoming {
    fn new(engine: &Engine, handlers: usize, stack_kib: usize) -> std::io::Result<Self> {
        let pool = crate::lifo_pool::LifoPool::new(handlers, "incoming", stack_kib * 1024)?;
        Ok(Self {
            pool,
            gate: Arc::new(parking_lot::Mutex::new(Gate::new(GateLimits {
                capacity: handlers,
                per_ip_handshakes: engine.max_handshakes_per_ip,
                per_ip_open: engine.max_open_per_ip,
            }))),
        })
    }
}

/// How the gate closes a connection it sheds.
#[derive(Debug)]
enum Shed {
    Tcp(TcpStream),
    Utp(crate::utp::UtpCloser),
}

impl Shed {
    /// Ends the connection: its handler's read returns at once.
    fn close(&self) {
        match self {
            Self::Tcp(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            Self::Utp(c) => c.close(),
        }
    }
}

fn tcp_accept_loop(engine: &Arc<Engine>, incoming: &Incoming, listener: &TcpListener) {
    while !engine.stop.requested() {
        match listener.accept() {
            Ok((stream, from)) => {
                if stream.set_nonblocking(false).is_err() {
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let Ok(handle) = stream.try_clone() else {
                    continue; // no descriptor for the handle: as if every handler were busy
                };
                admit(engine, incoming, Box::new(stream), from, Shed::Tcp(handle));
            }
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
    incoming.pool.join();
}

/// Takes incoming uTP connections (SYNs on the listen port) to the same gate.
fn utp_accept_loop(engine: &Arc<Engine>, incoming: &Incoming) {
    let Some(utp) = engine.utp.as_ref() else {
        return;
    };
    while !engine.stop.requested() {
        if let Some(stream) = utp.accept(crate::shutdown::POLL) {
            let Ok(from) = super::stream::Transport::peer_addr(&stream) else {
                continue;
            };
            let closer = stream.closer();
            engine.stats.incoming_utp.fetch_add(1, Ordering::Relaxed);
            admit(engine, incoming, Box::new(stream), from, Shed::Utp(closer));
        }
    }
    incoming.pool.join();
}

/// Puts an accepted connection before the gate: refused, handled, or handled with
/// another address's connection shed to make room.
fn admit(
    engine: &Arc<Engine>,
    incoming: &Incoming,
    stream: Box<dyn super::stream::Transport>,
    from: SocketAddr,
    handle: Shed,
) {
    let stats = &engine.stats;
    let ticket = match incoming.gate.lock().arrive(from.ip(), handle) {
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
                victim.close();
                stats.incoming_shed.fetch_add(1, Ordering::Relaxed);
            }
            ticket
        }
    };
    stats.incoming_active.fetch_add(1, Ordering::Relaxed);
    stats.incoming_accepted.fetch_add(1, Ordering::Relaxed);
    let (e, gate) = (Arc::clone(engine), Arc::clone(&incoming.gate));
    incoming.pool.execute(move || {
        e.handle_incoming(stream, from, &mut || gate.lock().handshaken(ticket));
        gate.lock().end(ticket);
        e.stats.incoming_active.fetch_sub(1, Ordering::Relaxed);
    });
}
