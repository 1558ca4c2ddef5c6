//! The simulator's event loop: a thread serves every simulated peer of its swarms with
//! non-blocking sockets (mio, epoll on Linux), so a swarm of tens of thousands of peers
//! costs one thread and a few file descriptors instead of a thread per peer. Several
//! threads ([`ReactorOptions::threads`]) share the torrents out, each with its own
//! listeners, lives and ticks: a million peers over twenty torrents use every core.
//! A tick touches only the lives whose arrival or departure came (lives sorted by both
//! times), and counts a large swarm for its trackers once a second. This is test
//! tooling; btda itself stays synchronous.
//!
//! The listening peers of a thread share one listener on `0.0.0.0:port` tied to the
//! loopback device (`SO_BINDTODEVICE lo`): a connection to any `127.a.b.c:port` lands
//! there and its local address says which simulated peer was dialled. Nothing outside
//! loopback can reach it. Peers with a closed port are listed at a second port that is bound but
//! never listens, so a connection to them is refused as it would be on the Internet.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Socket, Type};

use super::fake_peer::bitfield;
use super::fake_tracker::SharedPeers;
use super::script::{Kind, PeerScript, counts_at};
use crate::shutdown::Shutdown;
use crate::torrent::InfoHash;
use crate::wire::handshake::{EXTENSION_BIT, FAST_BIT, HANDSHAKE_LEN};
use crate::wire::mse::{CRYPTO_RC4, Initiator, Keystream, Progress, Responder, Torrents};
use crate::wire::{Handshake, Message, extended};

/// One torrent's simulated peers.
#[derive(Debug, Clone)]
pub struct SimTorrent {
    /// The swarm's info-hash.
    pub info_hash: InfoHash,
    /// Pieces of the torrent.
    pub total: u32,
    /// Every peer's scripted life.
    pub lives: Vec<PeerScript>,
}

impl SimTorrent {
    /// T in pieces at btda's default threshold (0.98): the crossing the truth marks.
    pub fn threshold(&self) -> u32 {
        crate::torrent::threshold_pieces(DEFAULT_THRESHOLD, self.total)
    }
}

/// btda's default completion threshold, which the simulated truth assumes.
pub const DEFAULT_THRESHOLD: f64 = 0.98;

/// How the simulated peers behave over time.
#[derive(Debug, Clone)]
pub struct ReactorOptions {
    /// The port every listening peer uses (0 picks one).
    pub port: u16,
    /// Where incoming-only peers connect to (btda's listen address); `None` keeps them
    /// silent.
    pub dial: Option<SocketAddr>,
    /// How often an incoming-only peer connects in, ms.
    pub dial_every_ms: u64,
    /// Dialling lives first connect at their arrival plus a phase spread evenly over
    /// this span (0: at their arrival, which tests of a first visit that straddles a
    /// crossing need). Real peers learn btda's address at their own announce times; a
    /// large arrival cohort dialling in one tick sends bursts no real swarm sends.
    pub first_dial_spread_ms: u64,
    /// How often batching peers send their haves, and re-sending peers their bitfield, ms.
    pub batch_every_ms: u64,
    /// Longest an incoming-only peer keeps its own connection open, ms.
    pub hold_ms: u64,
    /// How often a streaming peer sends a have, ms.
    pub stream_every_ms: u64,
    /// When a busy peer starts refusing, ms after its arrival, and for how long.
    pub busy: (u64, u64),
    /// Addresses every tracker lists besides the peers present (btda's own address, as
    /// real trackers list the announcer itself).
    pub also_listed: Vec<SocketAddr>,
    /// Round-trip times of the peers, ms, lowest and highest (each peer gets its own,
    /// spread log-uniformly between them): a peer answers a handshake that long after
    /// it arrived, and holds everything it sends by as much. `None`: loopback speed.
    pub rtt_ms: Option<(u64, u64)>,
    /// Peers each client names in a PEX message (`ut_pex` `added`) right after its
    /// bitfield when btda connects: a random few of its torrent's peers present that
    /// are clients (every kind but `no_syn` and `closed_port`, which stand for hosts
    /// gone or closed), as a client is connected to a random few of its swarm. 0: no
    /// PEX (the tests and the demo); the large rounds: 50, the clients' convention for
    /// one message.
    pub pex: usize,
    /// Simulator threads: the torrents are dealt out among them (torrent `t` to thread
    /// `t % threads`), each with its own listeners, lives and ticks, so a swarm of a
    /// million peers over many torrents is served by every core. At most one per
    /// torrent.
    pub threads: usize,
}

impl Default for ReactorOptions {
    fn default() -> Self {
        Self {
            port: 0,
            dial: None,
            dial_every_ms: 3_000,
            first_dial_spread_ms: 0,
            batch_every_ms: 1_000,
            hold_ms: 10_000,
            stream_every_ms: 100,
            busy: (2_000, 5_000),
            also_listed: Vec::new(),
            rtt_ms: None,
            pex: 0,
            threads: 1,
        }
    }
}

/// What the simulated peers did, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct ReactorCounters {
    /// Connections accepted on the shared listener.
    pub accepted: AtomicU64,
    /// Accepted connections closed at once: nobody of that torrent is at that address now.
    pub absent: AtomicU64,
    /// Handshakes answered.
    pub handshakes: AtomicU64,
    /// Connections the incoming-only peers opened to btda.
    pub dials: AtomicU64,
    /// Of those, the ones that connected.
    pub dials_connected: AtomicU64,
    /// Have messages sent.
    pub haves: AtomicU64,
    /// Bytes written.
    pub bytes_out: AtomicU64,
    /// Connections dropped because the other side did not read (output over the cap).
    pub overflows: AtomicU64,
    /// CPU time the simulator threads used, ms, summed (Linux; updated once a second).
    pub cpu_ms: AtomicU64,
    /// Connections a one-connection-per-IP peer refused: a second one from an IP it
    /// was already connected to.
    pub refused_second: AtomicU64,
    /// Connections a busy peer refused.
    pub busy_refused: AtomicU64,
    /// Connections closed or reset at once by `close_in_handshake` and
    /// `reset_in_handshake` peers.
    pub dropped: AtomicU64,
    /// MSE handshakes an `encrypted_only` peer completed.
    pub encrypted: AtomicU64,
    /// The simulator's own lateness: ticks (every 50 ms: arrivals, departures, haves)
    /// that ran more than 100 ms after they were due, and the most any ran late, ms. A
    /// late simulator would make btda look late; these show it was not.
    pub ticks_late: AtomicU64,
    /// See [`Self::ticks_late`].
    pub tick_late_max_ms: AtomicU64,
    /// Ticks run.
    pub ticks: AtomicU64,
}

/// Running simulator threads.
pub struct Reactor {
    /// The port listening peers of the first thread's torrents answer on (each thread
    /// has its own: [`Self::addr_of`] gives a peer's).
    pub port: u16,
    /// The first thread's second port, where its `nat_group` peers listen.
    pub alt_port: u16,
    /// The port closed-port and incoming-only peers are listed at (nobody listens).
    pub closed_port: u16,
    /// The port nobody answers a SYN on (`no_syn` peers are listed there).
    pub black_hole_port: u16,
    /// What happened so far.
    pub counters: Arc<ReactorCounters>,
    /// Per torrent: the peers present now, as a tracker lists them.
    pub present: Vec<SharedPeers>,
    /// When busy peers refuse connections ([`ReactorOptions::busy`]).
    pub busy: (u64, u64),
    start: Instant,
    stop: Shutdown,
    threads: Vec<JoinHandle<()>>,
    /// Each thread's ports.
    ports: Vec<Ports>,
    /// (IP, thread) of every simulated peer, sorted by IP, when there are several
    /// threads.
    thread_of: Vec<(Ipv4Addr, u8)>,
}

const LISTENER: Token = Token(usize::MAX);
const ALT_LISTENER: Token = Token(usize::MAX - 1);
/// Handshake bytes kept from one read round (MSE needs at most 628 + its payload).
const MAX_HANDSHAKE_BYTES: usize = 64 * 1024;
/// Output a connection may queue before it is dropped (bitfields are small).
const OUT_CAP: usize = 1 << 20;
/// How often lives are advanced.
const TICK: Duration = Duration::from_millis(50);

impl Reactor {
    /// Binds the listeners and starts serving `torrents` from now on, in
    /// [`ReactorOptions::threads`] threads.
    pub fn start(torrents: Vec<SimTorrent>, options: ReactorOptions) -> std::io::Result<Self> {
        let threads = options.threads.clamp(1, torrents.len().clamp(1, 64));
        // Held for the reactor's life; never listens.
        let closed = loopback_socket(0)?;
        let closed_port = port_of(&closed)?;
        let black_hole = Arc::new(BlackHole::open()?);
        let black_hole_port = black_hole.port;
        let closed = Arc::new(closed);
        let present: Vec<SharedPeers> = torrents.iter().map(|_| SharedPeers::default()).collect();
        let counters = Arc::new(ReactorCounters::default());
        let stop = Shutdown::new();
        let start = Instant::now();
        let busy = options.busy;
        // Deal the torrents out (moved, not copied: a million lives are ~50 MB).
        let mut shares: Vec<(Vec<SimTorrent>, Vec<SharedPeers>)> =
            (0..threads).map(|_| (Vec::new(), Vec::new())).collect();
        let mut thread_of = Vec::new();
        for (t, torrent) in torrents.into_iter().enumerate() {
            let r = t % threads;
            if threads > 1 {
                let shard = u8::try_from(r).unwrap_or(u8::MAX);
                thread_of.extend(torrent.lives.iter().map(|l| (l.ip, shard)));
            }
            shares[r].0.push(torrent);
            shares[r].1.push(present[t].clone());
        }
        // Everything that can fail before any thread starts, so a failure leaves none
        // running.
        let mut all_ports = Vec::new();
        let mut ready = Vec::new();
        for (r, (mine, mine_present)) in shares.into_iter().enumerate() {
            let listener = loopback_socket(if r == 0 { options.port } else { 0 })?;
            listener.listen(1024)?;
            let port = port_of(&listener)?;
            let alt = loopback_socket(0)?;
            alt.listen(1024)?;
            let alt_port = port_of(&alt)?;
            listener.set_nonblocking(true)?;
            alt.set_nonblocking(true)?;
            let ports = Ports {
                main: port,
                alt: alt_port,
                closed: closed_port,
                black_hole: black_hole_port,
            };
            all_ports.push(ports);
            let state = State::new(
                mine,
                options.clone(),
                ports,
                start,
                (mine_present, Arc::clone(&counters)),
            )?;
            let listener = TcpListener::from_std(listener.into());
            let alt = TcpListener::from_std(alt.into());
            ready.push((state, listener, alt));
        }
        let mut handles = Vec::new();
        for (r, (mut state, listener, alt)) in ready.into_iter().enumerate() {
            let st = stop.clone();
            let (closed, black_hole) = (Arc::clone(&closed), Arc::clone(&black_hole));
            let spawned = std::thread::Builder::new()
                .name(format!("sim-reactor-{r}"))
                .spawn(move || {
                    let _held = (closed, black_hole);
                    if let Err(e) = state.run(listener, alt, &st) {
                        log::error!("simulator stopped: {e}");
                    }
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    stop.request();
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
        }
        thread_of.sort_unstable();
        Ok(Self {
            port: all_ports[0].main,
            alt_port: all_ports[0].alt,
            closed_port,
            black_hole_port,
            counters,
            present,
            busy,
            start,
            stop,
            threads: handles,
            ports: all_ports,
            thread_of,
        })
    }

    /// Milliseconds since the simulation started (the time scripts are written in).
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The address at which a peer of `kind` on `ip` is listed.
    pub fn addr_of(&self, ip: Ipv4Addr, kind: Kind) -> SocketAddr {
        let r = match self.thread_of.binary_search_by_key(&ip, |&(a, _)| a) {
            Ok(i) => usize::from(self.thread_of[i].1),
            Err(_) => 0,
        };
        SocketAddr::from((ip, self.ports[r.min(self.ports.len() - 1)].listed(kind)))
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        self.stop.request();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The simulator's ports: where most peers listen, where `nat_group` peers listen,
/// and where peers that do not listen are listed.
#[derive(Debug, Clone, Copy)]
struct Ports {
    main: u16,
    alt: u16,
    closed: u16,
    black_hole: u16,
}

impl Ports {
    /// The port at which a peer of `kind` is listed (and listens, if it does).
    fn listed(self, kind: Kind) -> u16 {
        match kind {
            Kind::NatGroup => self.alt,
            Kind::NoSyn => self.black_hole,
            k if k.listens() => self.main,
            _ => self.closed,
        }
    }
}

/// A port on every loopback address that never answers a SYN: a listener on the
/// loopback device whose accept queue is full and never accepted, so the kernel drops
/// every further SYN and connects to any 127.x.y.z at this port time out (no root, no
/// traffic shaping). Holds the listener and the connections that fill it.
pub struct BlackHole {
    /// The port.
    pub port: u16,
    _listener: Socket,
    _fillers: Vec<std::net::TcpStream>,
}

impl BlackHole {
    /// Opens one on a free port.
    pub fn open() -> std::io::Result<Self> {
        let listener = loopback_socket(0)?;
        listener.listen(0)?;
        let port = port_of(&listener)?;
        let at = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // Linux queues backlog + 1; later attempts of the fillers themselves time out.
        let fillers = (0..3)
            .filter_map(|_| {
                std::net::TcpStream::connect_timeout(&at, Duration::from_millis(100)).ok()
            })
            .collect();
        Ok(Self {
            port,
            _listener: listener,
            _fillers: fillers,
        })
    }
}

/// A TCP socket on `0.0.0.0:port` that only sees the loopback device.
fn loopback_socket(port: u16) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(b"lo"))?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(s)
}

fn port_of(s: &Socket) -> std::io::Result<u16> {
    s.local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or_else(|| std::io::Error::other("not an IP socket"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Our outgoing connect is under way.
    Connecting,
    /// Waiting for the other side's handshake.
    Handshake,
    /// Handshakes done; progress is being sent.
    Open,
    /// Accepted by a silent peer: reads and discards, never writes.
    Silent,
}

/// MSE/PE on a connection of an `encrypted_only` peer.
enum Mse {
    /// The handshake of a connection from btda is under way, for one of these torrents
    /// (those of the peers at the address it reached).
    Accepting(Box<Responder>, Torrents),
    /// The handshake of our own connection to btda is under way; then these bytes
    /// (what follows our BitTorrent handshake) are sent.
    Dialling(Box<Initiator>, Vec<u8>),
    /// Established: everything sent is encrypted with this keystream.
    Open(Box<Keystream>),
}

struct Conn {
    stream: TcpStream,
    /// MSE, on connections of `encrypted_only` peers.
    mse: Option<Mse>,
    /// The first bytes of an accepted connection told plaintext from MSE.
    sorted: bool,
    /// The simulated peer (index into `State::lives`), once known.
    life: Option<usize>,
    local: Ipv4Addr,
    local_port: u16,
    remote: std::net::IpAddr,
    last_stream_ms: u64,
    phase: Phase,
    head: Vec<u8>,
    out: Vec<u8>,
    /// Pieces the other side has been told about.
    told: u32,
    last_batch_ms: u64,
    opened_ms: u64,
    /// Nothing is written before this (the peer's round-trip time).
    hold_until_ms: u64,
}

impl Conn {
    /// Queues `bytes` to send, encrypted once MSE is established.
    fn send(&mut self, bytes: &[u8]) {
        let start = self.out.len();
        self.out.extend_from_slice(bytes);
        if let Some(Mse::Open(keystream)) = &mut self.mse {
            keystream.apply(&mut self.out[start..]);
        }
    }
}

struct Life {
    torrent: usize,
    script: PeerScript,
    here: bool,
    next_dial_ms: u64,
}

/// How long after its arrival a dialling life first connects to btda: spread evenly
/// over `spread_ms` by a hash of its index ([`ReactorOptions::first_dial_spread_ms`]).
fn first_dial_phase(life: usize, spread_ms: u64) -> u64 {
    let mixed = (life as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    mixed % spread_ms.max(1)
}

struct State {
    poll: Poll,
    hashes: Vec<(InfoHash, u32)>,
    /// Each torrent's lives: a contiguous range of `lives`.
    ranges: Vec<std::ops::Range<usize>>,
    lives: Vec<Life>,
    /// (IP, life) sorted by IP: the lives at an address (a million-peer swarm would
    /// otherwise hold a million small vectors).
    by_ip: Vec<(Ipv4Addr, u32)>,
    /// Lives by arrival time and by departure time, and how far each tick got: a tick
    /// touches only the lives whose arrival or departure came, not every life.
    arrivals: Vec<u32>,
    departures: Vec<u32>,
    next_arrival: usize,
    next_departure: usize,
    /// Lives that connect to btda themselves (their dials are checked every tick).
    dialers: Vec<u32>,
    /// Per torrent: whether its presence changed since the trackers' view was last
    /// rebuilt, and when that was (large swarms rebuild it at most once a second).
    stale: Vec<bool>,
    view_ms: Vec<Option<u64>>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    options: ReactorOptions,
    ports: Ports,
    /// Open connections per (simulated peer's IP, other side's IP).
    pairs: HashMap<(Ipv4Addr, std::net::IpAddr), u32>,
    start: Instant,
    present: Vec<SharedPeers>,
    counters: Arc<ReactorCounters>,
}

impl State {
    fn new(
        torrents: Vec<SimTorrent>,
        options: ReactorOptions,
        ports: Ports,
        start: Instant,
        (present, counters): (Vec<SharedPeers>, Arc<ReactorCounters>),
    ) -> std::io::Result<Self> {
        let mut lives = Vec::new();
        let mut hashes = Vec::new();
        let mut ranges = Vec::new();
        for (t, torrent) in torrents.into_iter().enumerate() {
            hashes.push((torrent.info_hash, torrent.total));
            ranges.push(lives.len()..lives.len() + torrent.lives.len());
            for script in torrent.lives {
                let phase = first_dial_phase(lives.len(), options.first_dial_spread_ms);
                lives.push(Life {
                    torrent: t,
                    next_dial_ms: script.arrive_ms + phase,
                    script,
                    here: false,
                });
            }
        }
        let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        let mut by_ip: Vec<(Ipv4Addr, u32)> = lives
            .iter()
            .enumerate()
            .map(|(i, l)| (l.script.ip, index(i)))
            .collect();
        by_ip.sort_unstable();
        let mut arrivals: Vec<u32> = (0..lives.len()).map(index).collect();
        arrivals.sort_by_key(|&i| lives[i as usize].script.arrive_ms);
        let mut departures = arrivals.clone();
        departures.sort_by_key(|&i| lives[i as usize].script.leave_ms);
        let dialers = (0..lives.len())
            .filter(|&i| lives[i].script.kind.dials())
            .map(index)
            .collect();
        let torrents = hashes.len();
        Ok(Self {
            poll: Poll::new()?,
            hashes,
            ranges,
            lives,
            by_ip,
            arrivals,
            departures,
            next_arrival: 0,
            next_departure: 0,
            dialers,
            stale: vec![true; torrents],
            view_ms: vec![None; torrents],
            conns: Vec::new(),
            free: Vec::new(),
            options,
            ports,
            pairs: HashMap::new(),
            start,
            present,
            counters,
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn run(
        &mut self,
        mut listener: TcpListener,
        mut alt: TcpListener,
        stop: &Shutdown,
    ) -> std::io::Result<()> {
        self.poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        self.poll
            .registry()
            .register(&mut alt, ALT_LISTENER, Interest::READABLE)?;
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now();
        let mut cpu_reported = 0;
        while !stop.requested() {
            let wait = next_tick.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in &events {
                if event.token() == LISTENER {
                    self.accept_all(&listener);
                } else if event.token() == ALT_LISTENER {
                    self.accept_all(&alt);
                } else {
                    self.serve(event.token().0, event.is_writable());
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                let late = crate::clock::millis(now - next_tick);
                self.counters.ticks.fetch_add(1, Ordering::Relaxed);
                if late > 100 {
                    self.counters.ticks_late.fetch_add(1, Ordering::Relaxed);
                }
                self.counters
                    .tick_late_max_ms
                    .fetch_max(late, Ordering::Relaxed);
                self.tick();
                next_tick = Instant::now() + TICK;
                if self.now_ms() % 1000 < TICK.as_millis() as u64 {
                    self.report_cpu(&mut cpu_reported);
                }
            }
        }
        self.report_cpu(&mut cpu_reported);
        Ok(())
    }

    /// Adds this thread's CPU since the last report to the shared counter.
    fn report_cpu(&self, reported: &mut u64) {
        if let Some(ms) = crate::monitor::cpu_ms(crate::monitor::CpuOf::Thread) {
            self.counters
                .cpu_ms
                .fetch_add(ms.saturating_sub(*reported), Ordering::Relaxed);
            *reported = ms.max(*reported);
        }
    }

    fn add(&mut self, conn: Conn) -> Option<usize> {
        let slot = if let Some(i) = self.free.pop() {
            i
        } else {
            self.conns.push(None);
            self.conns.len() - 1
        };
        let mut conn = conn;
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self
            .poll
            .registry()
            .register(&mut conn.stream, Token(slot), interest)
            .is_err()
        {
            self.free.push(slot);
            return None;
        }
        *self.pairs.entry((conn.local, conn.remote)).or_insert(0) += 1;
        self.conns[slot] = Some(conn);
        Some(slot)
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut c) = self.conns.get_mut(slot).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.free.push(slot);
            if let Some(n) = self.pairs.get_mut(&(c.local, c.remote)) {
                *n -= 1;
                if *n == 0 {
                    self.pairs.remove(&(c.local, c.remote));
                }
            }
        }
    }

    /// Every life at `ip` (as (ip, life) pairs).
    fn at_ip(&self, ip: Ipv4Addr) -> &[(Ipv4Addr, u32)] {
        let from = self.by_ip.partition_point(|&(a, _)| a < ip);
        let to = from + self.by_ip[from..].partition_point(|&(a, _)| a == ip);
        &self.by_ip[from..to]
    }

    /// The present listening peer at `local:port` (for torrent `hash`, when known).
    fn listening_at(&self, local: Ipv4Addr, port: u16, hash: Option<&InfoHash>) -> Option<usize> {
        Some(self.at_ip(local)).and_then(|ls| {
            ls.iter().map(|&(_, l)| l as usize).find(|&l| {
                let life = &self.lives[l];
                life.here
                    && life.script.kind.listens()
                    && self.ports.listed(life.script.kind) == port
                    && hash.is_none_or(|h| self.hashes[life.torrent].0 == *h)
            })
        })
    }

    /// Whether the peer `life` refuses a connection from `remote` now: a busy peer in
    /// its busy time, or a one-connection-per-IP peer already connected with `remote`.
    fn refuses(&self, life: usize, remote: std::net::IpAddr, now: u64) -> bool {
        let l = &self.lives[life];
        match l.script.kind {
            Kind::Busy => {
                let (from, span) = self.options.busy;
                let begin = l.script.arrive_ms + from;
                if now >= begin && now < begin + span {
                    self.counters.busy_refused.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                false
            }
            Kind::OneConnPerIp if self.pairs.contains_key(&(l.script.ip, remote)) => {
                self.counters.refused_second.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    fn accept_all(&mut self, listener: &TcpListener) {
        loop {
            match listener.accept() {
                Ok((stream, remote)) => {
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let (local, local_port) = match stream.local_addr() {
                        Ok(SocketAddr::V4(a)) => (*a.ip(), a.port()),
                        _ => continue,
                    };
                    let now = self.now_ms();
                    let Some(life) = self.listening_at(local, local_port, None) else {
                        self.counters.absent.fetch_add(1, Ordering::Relaxed);
                        continue; // dropped: closed at once
                    };
                    if self.refuses(life, remote.ip(), now) {
                        continue; // closed at once, as a client at its limit does
                    }
                    match self.lives[life].script.kind {
                        Kind::CloseInHandshake => {
                            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                            continue; // closed before any handshake
                        }
                        Kind::ResetInHandshake => {
                            let _ =
                                socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                            continue; // dropped with linger 0: a reset
                        }
                        _ => {}
                    }
                    let slot = self.add(Conn {
                        stream,
                        mse: None,
                        sorted: false,
                        life: None,
                        local,
                        local_port,
                        remote: remote.ip(),
                        last_stream_ms: now,
                        phase: Phase::Handshake,
                        head: Vec::with_capacity(HANDSHAKE_LEN),
                        out: Vec::new(),
                        told: 0,
                        last_batch_ms: now,
                        opened_ms: now,
                        hold_until_ms: 0,
                    });
                    if let Some(slot) = slot {
                        self.serve(slot, false);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return, // out of descriptors and the like: try again next event
            }
        }
    }

    /// Reads what arrived on `slot`, answers a completed handshake, flushes output.
    fn serve(&mut self, slot: usize, writable: bool) {
        let now = self.now_ms();
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if c.phase == Phase::Connecting {
            if !writable {
                return;
            }
            match (c.stream.take_error(), c.stream.peer_addr()) {
                (Ok(None), Ok(_)) => {}
                _ => return self.close(slot),
            }
            self.counters
                .dials_connected
                .fetch_add(1, Ordering::Relaxed);
            c.phase = Phase::Handshake;
            let Some(life) = c.life else {
                return self.close(slot);
            };
            let opening = self.opening(life, now, true);
            let encrypted = self.lives[life].script.kind == Kind::EncryptedOnly;
            let hash = self.hashes[self.lives[life].torrent].0;
            let c = self.conns[slot].as_mut().expect("present above");
            if encrypted {
                // MSE with our BitTorrent handshake as the initial payload; the rest once
                // established.
                let (ours, rest) = opening.0.split_at(HANDSHAKE_LEN.min(opening.0.len()));
                let (initiator, first) = Initiator::new(hash, CRYPTO_RC4, ours);
                c.out.extend_from_slice(&first);
                c.mse = Some(Mse::Dialling(Box::new(initiator), rest.to_vec()));
            } else {
                c.out.extend_from_slice(&opening.0);
            }
            c.told = opening.1;
        }
        let c = self.conns[slot].as_mut().expect("present above");
        let mut buf = [0u8; 4096];
        let mut closed = false;
        // Bytes of the other side's handshake that arrived now (later bytes are read and
        // dropped); bounded well above MSE's 628-byte synchronisation limit.
        let mut got = Vec::new();
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    if c.phase == Phase::Handshake && got.len() < MAX_HANDSHAKE_BYTES {
                        got.extend_from_slice(&buf[..n]);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            return self.close(slot);
        }
        if c.phase == Phase::Handshake && !got.is_empty() {
            let answered = if c.mse.is_some() || c.life.is_some() || c.sorted {
                self.handshake_bytes(slot, &got, now)
            } else {
                c.head.extend_from_slice(&got);
                if c.head.len() < 20 {
                    true // not enough to tell plaintext from MSE yet
                } else {
                    let first = std::mem::take(&mut c.head);
                    self.first_bytes(slot, first, now)
                }
            };
            if !answered {
                return self.close(slot);
            }
        }
        self.flush(slot);
    }

    /// The first bytes of an accepted connection: a plaintext handshake, or MSE for an
    /// `encrypted_only` peer (which closes plaintext ones). False: close it.
    fn first_bytes(&mut self, slot: usize, got: Vec<u8>, now: u64) -> bool {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let (local, local_port) = (c.local, c.local_port);
        let Some(life) = self.listening_at(local, local_port, None) else {
            return false;
        };
        let encrypted_only = self.lives[life].script.kind == Kind::EncryptedOnly;
        let torrents = encrypted_only.then(|| {
            let here = self.at_ip(local).iter();
            Torrents::new(here.map(|&(_, l)| self.hashes[self.lives[l as usize].torrent].0))
        });
        let c = self.conns[slot].as_mut().expect("present above");
        c.sorted = true;
        let plain = got
            .first_chunk::<20>()
            .is_some_and(|prefix| Handshake::check_prefix(prefix).is_ok());
        if let (Some(torrents), false) = (torrents, plain) {
            let (responder, hello) = Responder::new(CRYPTO_RC4);
            c.out.extend_from_slice(&hello);
            c.mse = Some(Mse::Accepting(Box::new(responder), torrents));
        } else if encrypted_only || !plain {
            return false; // plaintext to a client that requires MSE, or garbage
        }
        self.handshake_bytes(slot, &got, now)
    }

    /// Handshake bytes from the other side (plaintext or MSE); answers once complete.
    /// False: close it.
    fn handshake_bytes(&mut self, slot: usize, got: &[u8], now: u64) -> bool {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let hash = match &mut c.mse {
            Some(Mse::Dialling(initiator, rest)) => {
                let mut out = Vec::new();
                match initiator.feed(got, &mut out) {
                    Ok(Progress::Continue) => {
                        c.out.extend_from_slice(&out);
                        return true;
                    }
                    Ok(Progress::Done(done)) => {
                        c.out.extend_from_slice(&out);
                        let rest = std::mem::take(rest);
                        let Some((send, _)) = done.keystreams else {
                            return false; // RC4 is all it offers
                        };
                        c.mse = Some(Mse::Open(Box::new(send)));
                        c.send(&rest);
                        self.counters.encrypted.fetch_add(1, Ordering::Relaxed);
                        // btda's handshake follows (encrypted: only its length counts).
                        let want = HANDSHAKE_LEN - c.head.len();
                        c.head
                            .extend_from_slice(&done.received[..done.received.len().min(want)]);
                        if c.head.len() == HANDSHAKE_LEN {
                            c.phase = Phase::Open;
                        }
                        return true;
                    }
                    Err(_) => return false,
                }
            }
            Some(Mse::Accepting(responder, torrents)) => {
                let mut out = Vec::new();
                match responder.feed(got, torrents, &mut out) {
                    Ok(Progress::Continue) => {
                        c.out.extend_from_slice(&out);
                        return true;
                    }
                    Ok(Progress::Done(done)) => {
                        c.out.extend_from_slice(&out);
                        let Some((send, _)) = done.keystreams else {
                            return false; // RC4 is all it accepts
                        };
                        c.mse = Some(Mse::Open(Box::new(send)));
                        self.counters.encrypted.fetch_add(1, Ordering::Relaxed);
                        done.info_hash
                    }
                    Err(_) => return false,
                }
            }
            _ => {
                let want = HANDSHAKE_LEN - c.head.len();
                c.head.extend_from_slice(&got[..got.len().min(want)]);
                if c.head.len() < HANDSHAKE_LEN {
                    return true;
                }
                if c.life.is_some() {
                    c.phase = Phase::Open; // our own connection: we spoke first
                    return true;
                }
                let mut head = [0u8; 48];
                head.copy_from_slice(&c.head[..48]);
                let Ok((_, hash)) = Handshake::parse_head(&head) else {
                    return false;
                };
                hash
            }
        };
        let c = self.conns[slot].as_mut().expect("present above");
        let (local, local_port) = (c.local, c.local_port);
        let Some(life) = self.listening_at(local, local_port, Some(&hash)) else {
            return false;
        };
        self.counters.handshakes.fetch_add(1, Ordering::Relaxed);
        let silent = self.lives[life].script.kind == Kind::Silent;
        let opening = if silent {
            (Vec::new(), 0)
        } else {
            self.opening(life, now, false)
        };
        let rtt = self.rtt_of(life);
        let c = self.conns[slot].as_mut().expect("present above");
        c.hold_until_ms = now + rtt;
        c.life = Some(life);
        c.phase = if silent { Phase::Silent } else { Phase::Open };
        c.send(&opening.0);
        c.told = opening.1;
        c.head = Vec::new();
        true
    }

    /// Our handshake and first messages for `life` now, and the pieces they announce.
    fn opening(&self, life: usize, now: u64, dialling: bool) -> (Vec<u8>, u32) {
        let l = &self.lives[life];
        let (hash, total) = self.hashes[l.torrent];
        let kind = l.script.kind;
        let have = l.script.pieces_at(now, total);
        let mut hs = Handshake::ours(hash, peer_id(life, kind));
        hs.reserved[FAST_BIT.0] &= !FAST_BIT.1;
        hs.reserved[EXTENSION_BIT.0] &= !EXTENSION_BIT.1;
        if kind == Kind::HaveAll {
            hs.reserved[FAST_BIT.0] |= FAST_BIT.1;
        }
        let pex = if dialling {
            Vec::new()
        } else {
            self.pex_of(life, now)
        };
        if dialling || !pex.is_empty() {
            hs.reserved[EXTENSION_BIT.0] |= EXTENSION_BIT.1;
        }
        let mut out = hs.encode().to_vec();
        if dialling {
            // The extended handshake names the port it listens on (for an incoming-only
            // peer an unreachable one: NAT).
            out.extend(
                Message::Extended {
                    id: 0,
                    payload: nat_hello(self.ports.listed(kind)),
                }
                .encode(),
            );
        } else if !pex.is_empty() {
            out.extend(
                Message::Extended {
                    id: 0,
                    payload: PEX_HELLO.to_vec(),
                }
                .encode(),
            );
        }
        let first = match kind {
            Kind::HaveAll if have >= total => Some(Message::HaveAll),
            Kind::HaveAll if have == 0 => Some(Message::HaveNone),
            Kind::NoBitfield if have == 0 => None,
            Kind::BadBitfield if have < total => Some(Message::Bitfield(invalid_bitfield(total))),
            _ => Some(Message::Bitfield(bitfield(total, have))),
        };
        if let Some(m) = first {
            out.extend(m.encode());
        }
        if !pex.is_empty() {
            // Sent by the ids btda announced (as the other simulated clients do).
            out.extend(
                Message::Extended {
                    id: extended::OUR_UT_PEX,
                    payload: extended::build_pex(&pex),
                }
                .encode(),
            );
        }
        (out, have)
    }

    /// Whom `life` names in PEX ([`ReactorOptions::pex`]): up to `pex` of its torrent's
    /// peers that are here and are clients, drawn at random (fixed by the client and
    /// the second), as a client is connected to a random few of the swarm. At most
    /// [`PEX_TRIES`] times `pex` draws: a swarm of gone hosts yields a short list.
    fn pex_of(&self, life: usize, now: u64) -> Vec<SocketAddr> {
        let want = self.options.pex;
        let range = &self.ranges[self.lives[life].torrent];
        if want == 0 || range.is_empty() {
            return Vec::new();
        }
        let mut seed = ((life as u64) << 32) ^ (now / 1_000);
        let mut named: Vec<usize> = Vec::with_capacity(want);
        for _ in 0..want.saturating_mul(PEX_TRIES) {
            if named.len() == want {
                break;
            }
            let i = range.start + (splitmix(&mut seed) % range.len() as u64) as usize;
            let l = &self.lives[i];
            if i != life
                && l.here
                && !matches!(l.script.kind, Kind::NoSyn | Kind::ClosedPort)
                && !named.contains(&i)
            {
                named.push(i);
            }
        }
        named
            .into_iter()
            .map(|i| {
                let script = &self.lives[i].script;
                SocketAddr::from((script.ip, self.ports.listed(script.kind)))
            })
            .collect()
    }

    /// The round-trip time of peer `life`, ms: log-uniform in the configured range,
    /// fixed per peer.
    fn rtt_of(&self, life: usize) -> u64 {
        let Some((lo, hi)) = self.options.rtt_ms else {
            return 0;
        };
        let (lo, hi) = (lo.max(1) as f64, hi.max(lo).max(1) as f64);
        // A fixed spread over the peers (golden-ratio steps), not random: reproducible.
        let u = (life as f64 * 0.618_033_988_75).fract();
        (lo * (hi / lo).powf(u)).round() as u64
    }

    fn flush(&mut self, slot: usize) {
        let now = self.now_ms();
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if now < c.hold_until_ms {
            return; // written by a tick once the round-trip time has passed
        }
        let mut failed = false;
        while !c.out.is_empty() && c.phase != Phase::Connecting {
            match c.stream.write(&c.out) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => {
                    self.counters
                        .bytes_out
                        .fetch_add(n as u64, Ordering::Relaxed);
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if c.out.len() > OUT_CAP {
            self.counters.overflows.fetch_add(1, Ordering::Relaxed);
            failed = true;
        }
        if failed {
            self.close(slot);
        }
    }

    /// Advances every life: arrivals, departures, dials, progress on open connections,
    /// and what each torrent's trackers report (peers present, seeders, leechers,
    /// completions so far).
    fn tick(&mut self) {
        let now = self.now_ms();
        let mut left = Vec::new();
        // Arrivals and departures that came since the last tick.
        while let Some(&i) = self.arrivals.get(self.next_arrival) {
            let l = &mut self.lives[i as usize];
            if l.script.arrive_ms > now {
                break;
            }
            self.next_arrival += 1;
            if now < l.script.leave_ms && !l.here {
                l.here = true;
                self.stale[l.torrent] = true;
            }
        }
        while let Some(&i) = self.departures.get(self.next_departure) {
            let l = &mut self.lives[i as usize];
            if l.script.leave_ms > now {
                break;
            }
            self.next_departure += 1;
            if l.here {
                l.here = false;
                self.stale[l.torrent] = true;
                left.push(i as usize);
            }
        }
        let mut dials = Vec::new();
        for &i in &self.dialers {
            let l = &mut self.lives[i as usize];
            if l.here && now >= l.next_dial_ms {
                l.next_dial_ms = now + self.options.dial_every_ms;
                // A client already connected with btda does not dial it again.
                let connected = self
                    .options
                    .dial
                    .is_some_and(|to| self.pairs.contains_key(&(l.script.ip, to.ip())));
                if l.script.kind == Kind::IncomingOnly || !connected {
                    dials.push(i as usize);
                }
            }
        }
        if !left.is_empty() {
            let gone: std::collections::HashSet<usize> = left.into_iter().collect();
            for slot in 0..self.conns.len() {
                let life = self.conns[slot].as_ref().and_then(|c| c.life);
                if life.is_some_and(|l| gone.contains(&l)) {
                    self.close(slot);
                }
            }
        }
        for life in dials {
            self.dial(life, now);
        }
        for slot in 0..self.conns.len() {
            self.progress(slot, now);
            let held = self.conns[slot]
                .as_ref()
                .is_some_and(|c| !c.out.is_empty() && c.hold_until_ms > 0);
            if held {
                self.flush(slot);
            }
        }
        for t in 0..self.hashes.len() {
            let (Some(shared), Some(range)) = (self.present.get(t), self.ranges.get(t)) else {
                continue;
            };
            // Counting a swarm is a pass over its lives: every tick for the swarms of
            // tests and the demo, at most once a second beyond 50,000 peers.
            if range.len() > 50_000 && self.view_ms[t].is_some_and(|at| now < at + 1_000) {
                continue;
            }
            self.view_ms[t] = Some(now);
            let lives = &self.lives[range.clone()];
            let (seeders, leechers, downloaded) =
                counts_at(lives.iter().map(|l| &l.script), self.hashes[t].1, now);
            let peers = std::mem::take(&mut self.stale[t]).then(|| {
                lives
                    .iter()
                    .filter(|l| l.here && l.script.tracked)
                    .map(|l| SocketAddr::from((l.script.ip, self.ports.listed(l.script.kind))))
                    .chain(self.options.also_listed.iter().copied())
                    .collect()
            });
            let mut view = shared.0.lock();
            (view.seeders, view.leechers, view.downloaded) = (seeders, leechers, downloaded);
            if let Some(peers) = peers {
                view.peers = peers;
            }
        }
    }

    /// Tells the other side of `slot` about pieces completed since, as its kind does.
    fn progress(&mut self, slot: usize, now: u64) {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if c.phase == Phase::Connecting
            && now.saturating_sub(c.opened_ms) > self.options.hold_ms.min(5_000)
        {
            return self.close(slot);
        }
        let Some(life) = c.life else { return };
        let l = &self.lives[life];
        let dialled = c.local_port == 0; // our own connection to btda
        if dialled && now.saturating_sub(c.opened_ms) > self.options.hold_ms {
            return self.close(slot);
        }
        if c.phase != Phase::Open {
            return;
        }
        let total = self.hashes[l.torrent].1;
        let have = l.script.pieces_at(now, total);
        let batch_due = now.saturating_sub(c.last_batch_ms) >= self.options.batch_every_ms;
        match l.script.kind {
            Kind::StreamingHaves => {
                if now.saturating_sub(c.last_stream_ms) < self.options.stream_every_ms {
                    return;
                }
                c.last_stream_ms = now;
                if have > c.told {
                    for i in c.told..have {
                        c.send(&Message::Have(i).encode());
                    }
                    c.told = have;
                } else if c.told > 0 {
                    c.send(&Message::Have(c.told - 1).encode()); // nothing new: repeat
                } else {
                    return;
                }
                self.counters.haves.fetch_add(1, Ordering::Relaxed);
                return self.flush(slot);
            }
            Kind::BadBitfield => {
                if !batch_due || c.told >= total {
                    return;
                }
                let m = if have >= total {
                    c.told = total;
                    Message::Bitfield(bitfield(total, total))
                } else {
                    Message::Bitfield(invalid_bitfield(total))
                };
                c.send(&m.encode());
                c.last_batch_ms = now;
                return self.flush(slot);
            }
            _ => {}
        }
        if have <= c.told {
            return;
        }
        match l.script.kind {
            Kind::BatchedHaves | Kind::ResendBitfield if !batch_due => return,
            Kind::ResendBitfield => c.send(&Message::Bitfield(bitfield(total, have)).encode()),
            _ => {
                for i in c.told..have {
                    c.send(&Message::Have(i).encode());
                }
                self.counters
                    .haves
                    .fetch_add(u64::from(have - c.told), Ordering::Relaxed);
            }
        }
        c.told = have;
        c.last_batch_ms = now;
        self.flush(slot);
    }

    /// An incoming-only peer connects to btda from its own address.
    fn dial(&mut self, life: usize, now: u64) {
        let Some(target) = self.options.dial else {
            return;
        };
        let ip = self.lives[life].script.ip;
        let Ok(socket) = Socket::new(Domain::IPV4, Type::STREAM, None) else {
            return;
        };
        let bound = socket
            .bind(&SocketAddr::V4(SocketAddrV4::new(ip, 0)).into())
            .and_then(|()| socket.set_nonblocking(true));
        if bound.is_err() {
            return;
        }
        match socket.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(EINPROGRESS) => {}
            Err(_) => return,
        }
        self.counters.dials.fetch_add(1, Ordering::Relaxed);
        let std_stream: std::net::TcpStream = socket.into();
        let _ = self.add(Conn {
            stream: TcpStream::from_std(std_stream),
            mse: None,
            sorted: true,
            life: Some(life),
            local: ip,
            local_port: 0,
            remote: target.ip(),
            last_stream_ms: now,
            phase: Phase::Connecting,
            head: Vec::with_capacity(HANDSHAKE_LEN),
            out: Vec::new(),
            told: 0,
            last_batch_ms: now,
            opened_ms: now,
            hold_until_ms: 0,
        });
    }
}

/// A bitfield two bytes too long: invalid for any torrent of `total` pieces.
fn invalid_bitfield(total: u32) -> Vec<u8> {
    vec![0xff; (total as usize).div_ceil(8) + 2]
}

/// The extended handshake of a client that sends PEX.
const PEX_HELLO: &[u8] = b"d1:md6:ut_pexi1eee";

/// Draws per name [`State::pex_of`] makes before it gives up (a swarm mostly of gone
/// hosts: 2015's mix has about one client in five addresses).
const PEX_TRIES: usize = 20;

/// The next number of a splitmix64 sequence.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The extended handshake of an incoming-only peer: no extensions, and `p` naming the
/// port it claims to listen on.
fn nat_hello(port: u16) -> Vec<u8> {
    format!("d1:mde1:pi{port}e1:v7:SimPeere").into_bytes()
}

/// EINPROGRESS on Linux: a non-blocking connect under way (`ErrorKind::InProgress` is
/// not stable yet).
const EINPROGRESS: i32 = 115;

/// A peer id whose client prefix varies with the peer, so client figures have a mix.
fn peer_id(life: usize, kind: Kind) -> [u8; 20] {
    let prefix: &[u8; 8] = match (kind, life % 4) {
        (Kind::HaveAll, _) => b"-lt2090-",
        (_, 0) => b"-TR3000-",
        (_, 1) => b"-qB4520-",
        (_, 2) => b"-UT3550-",
        _ => b"-DE13F0-",
    };
    let mut id = [b'0'; 20];
    id[..8].copy_from_slice(prefix);
    let digits = format!("{life:012}");
    id[8..].copy_from_slice(&digits.as_bytes()[digits.len() - 12..]);
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn incoming_only_peers_name_their_port() {
        let hello = crate::wire::extended::parse_handshake(&super::nat_hello(45_673)).unwrap();
        assert_eq!(hello.listen_port, Some(45_673));
    }

    /// Connects to a simulated peer at `at` and exchanges handshakes for `hash`: the
    /// stream (2 s read timeout) and the peer's handshake.
    fn handshake(
        at: std::net::SocketAddr,
        hash: crate::torrent::InfoHash,
    ) -> (std::net::TcpStream, [u8; super::HANDSHAKE_LEN]) {
        use std::io::{Read, Write};
        let timeout = std::time::Duration::from_secs(2);
        let mut s = std::net::TcpStream::connect_timeout(&at, timeout).unwrap();
        s.set_read_timeout(Some(timeout)).unwrap();
        s.write_all(&super::Handshake::ours(hash, [9; 20]).encode())
            .unwrap();
        let mut back = [0u8; super::HANDSHAKE_LEN];
        s.read_exact(&mut back).unwrap();
        (s, back)
    }

    #[test]
    fn several_threads_each_answer_for_their_own_torrents() {
        let torrents: Vec<super::SimTorrent> = (0..3u8)
            .map(|t| super::SimTorrent {
                info_hash: crate::torrent::InfoHash([t + 1; 20]),
                total: 8,
                lives: (0..4u8)
                    .map(|i| super::PeerScript {
                        ip: std::net::Ipv4Addr::new(127, 61, t, i + 1),
                        kind: super::Kind::Bitfield,
                        arrive_ms: 0,
                        leave_ms: 600_000,
                        start_pieces: 8,
                        rate: 0.0,
                        tracked: true,
                    })
                    .collect(),
            })
            .collect();
        let reactor = super::Reactor::start(
            torrents.clone(),
            super::ReactorOptions {
                threads: 2,
                ..super::ReactorOptions::default()
            },
        )
        .unwrap();
        let ports: std::collections::HashSet<u16> = torrents
            .iter()
            .map(|t| reactor.addr_of(t.lives[0].ip, super::Kind::Bitfield).port())
            .collect();
        assert_eq!(
            ports.len(),
            2,
            "torrents 0 and 2 on one thread, 1 on the other"
        );
        std::thread::sleep(super::TICK * 3); // the first tick makes them present
        for t in &torrents {
            for l in &t.lives {
                let at = reactor.addr_of(l.ip, l.kind);
                let (_, back) = handshake(at, t.info_hash);
                let h = super::Handshake::parse(&back).unwrap();
                assert_eq!(h.info_hash, t.info_hash, "{at}");
            }
        }
        let shown = |t: usize| reactor.present[t].0.lock().peers.len();
        assert_eq!((shown(0), shown(1), shown(2)), (4, 4, 4));
    }

    #[test]
    fn clients_name_a_few_present_clients_of_their_torrent_in_pex() {
        use super::Kind;
        use std::io::Read;
        // 2 and 3 are a gone host and a closed port, 4 left at once; the other 11 are
        // clients.
        let kind = |i: u8| match i {
            2 => Kind::NoSyn,
            3 => Kind::ClosedPort,
            _ if i.is_multiple_of(2) => Kind::HaveAll,
            _ => Kind::Bitfield,
        };
        let torrent = super::SimTorrent {
            info_hash: crate::torrent::InfoHash([7; 20]),
            total: 8,
            lives: (0..14u8)
                .map(|i| super::PeerScript {
                    ip: std::net::Ipv4Addr::new(127, 62, 0, i + 1),
                    kind: kind(i),
                    arrive_ms: u64::from(i),
                    leave_ms: if i == 4 { 5 } else { 600_000 },
                    start_pieces: 8,
                    rate: 0.0,
                    tracked: true,
                })
                .collect(),
        };
        let reactor = super::Reactor::start(
            vec![torrent.clone()],
            super::ReactorOptions {
                pex: 3,
                ..super::ReactorOptions::default()
            },
        )
        .unwrap();
        std::thread::sleep(super::TICK * 3); // the first tick makes them present
        let named = |life: usize| {
            let l = &torrent.lives[life];
            let (mut s, _) = handshake(reactor.addr_of(l.ip, l.kind), torrent.info_hash);
            let mut decoder = crate::wire::MessageDecoder::new(1 << 16);
            let mut buf = [0u8; 4096];
            loop {
                while let Some(m) = decoder.next_message().unwrap() {
                    if let super::Message::Extended { id, payload } = m
                        && id == super::extended::OUR_UT_PEX
                    {
                        let peers = super::extended::parse_pex(&payload).unwrap();
                        return peers.iter().map(|p| p.addr.ip()).collect::<Vec<_>>();
                    }
                }
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "closed before its PEX");
                decoder.feed(&buf[..n]);
            }
        };
        let ip = |i: u8| std::net::IpAddr::from([127, 62, 0, i + 1]);
        // Three each (pex = 3), all different, of the present clients other than
        // itself; different clients name different ones.
        let mut all = std::collections::HashSet::new();
        for life in [0u8, 1, 5, 6, 13] {
            let got = named(usize::from(life));
            let clients: Vec<_> = [0, 1, 5, 6, 7, 8, 9, 10, 11, 12, 13]
                .into_iter()
                .filter(|&i| i != life)
                .map(ip)
                .collect();
            assert_eq!(got.len(), 3, "{got:?}");
            assert!(
                got[0] != got[1] && got[1] != got[2] && got[0] != got[2],
                "{got:?}"
            );
            assert!(got.iter().all(|a| clients.contains(a)), "{life}: {got:?}");
            all.extend(got);
        }
        assert!(all.len() > 3, "every client named the same peers: {all:?}");
    }

    #[test]
    fn peer_ids_carry_a_client_prefix_and_the_peer() {
        let id = super::peer_id(1234, super::Kind::Bitfield);
        assert_eq!(&id[..8], b"-UT3550-");
        assert_eq!(&id[8..], b"000000001234");
    }
}
