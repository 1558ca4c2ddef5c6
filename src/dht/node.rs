//! A Mainline DHT node on one UDP socket: answers `ping`, `find_node`, `get_peers` and
//! `announce_peer` (tokens from a secret that rotates every five minutes), and runs
//! iterative lookups with `alpha` queries in flight, under a global query-rate limit.
//!
//! A node speaks one address family, the one of its socket: an IPv4 node is BEP 5's,
//! an IPv6 node BEP 32's (its nodes travel in `nodes6`, its peers are IPv6). A run
//! with both keeps two nodes with two routing tables, as BEP 32 describes.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::bloom::ScrapeFilter;
use super::krpc::{Body, KrpcError, Message, NodeId, NodeInfo, Query, Response, Want};
use super::routing::{K, RoutingTable, distance};
use crate::shutdown::Shutdown;
use crate::torrent::InfoHash;

/// Where the answer to a query goes: the message and who sent it.
type ReplyTo = Sender<(Message, SocketAddr)>;

/// Who waits for the answer to a query of ours.
enum Waiter {
    /// A lookup or an announce.
    Lookup(ReplyTo),
    /// A ping to a node that queried us, sent at this time: it enters the routing
    /// table if it answers (only nodes that answered our own query do).
    Verify(Instant),
}

/// Verification pings in flight at once, at most (a flood of queries from forged
/// addresses cannot make btda ping more than this many of them).
const MAX_VERIFYING: usize = 32;
/// Nodes taken from one reply (a real node sends K = 8).
const MAX_NODES_PER_REPLY: usize = 2 * K;
/// Candidate nodes one lookup keeps (the closest; the rest are dropped).
const MAX_CANDIDATES_PER_LOOKUP: usize = 1_000;

/// Peers taken from one `get_peers` reply (libtorrent takes at most 100).
const MAX_VALUES_PER_REPLY: usize = 100;
/// Peers taken from one lookup, as from one tracker reply.
const MAX_VALUES_PER_LOOKUP: usize = 2_000;

/// How often the token secret rotates; tokens of the previous secret stay valid.
const TOKEN_ROTATION: Duration = Duration::from_secs(300);
/// Peers stored per info-hash, and info-hashes stored, from others' announces.
const STORE_PEERS: usize = 100;
const STORE_HASHES: usize = 2000;

/// Node settings (from `[dht]`).
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Queries in flight per lookup.
    pub alpha: usize,
    /// Time to wait for one answer.
    pub query_timeout: Duration,
    /// Most queries one lookup may send.
    pub max_queries: usize,
    /// Queries per second this node may send in all.
    pub rate_per_sec: u32,
}

/// The outcome of a `get_peers` lookup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lookup {
    /// Peers found.
    pub peers: Vec<SocketAddr>,
    /// Nodes queried.
    pub queried: usize,
    /// Nodes that answered.
    pub answered: usize,
    /// The closest answering nodes and their tokens, for announcing.
    pub closest: Vec<(NodeInfo, Vec<u8>)>,
    /// BEP 33: the answers' seed and peer filters merged, and how many answers had them.
    pub scrape: Option<Scrape>,
}

/// A lookup's DHT scrape (BEP 33): estimates, not counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// Estimated distinct seeds.
    pub seeds: f64,
    /// Estimated distinct peers.
    pub peers: f64,
    /// Answers that carried filters.
    pub nodes: u32,
}

struct RateLimit {
    per_sec: u32,
    window: Instant,
    used: u32,
}

impl RateLimit {
    /// Waits until one more query fits in the current one-second window.
    fn take(&mut self) -> Duration {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.used = 0;
        }
        if self.used < self.per_sec {
            self.used += 1;
            Duration::ZERO
        } else {
            (self.window + Duration::from_secs(1)).saturating_duration_since(now)
        }
    }
}

struct Shared {
    socket: UdpSocket,
    /// When the node shares the uTP socket's port: the KRPC datagrams its driver passes
    /// on (the node then never reads `socket`, which the driver owns).
    shared_port: Option<Mutex<std::sync::mpsc::Receiver<crate::utp::Datagram>>>,
    table: Mutex<RoutingTable>,
    /// Queries in flight: transaction id → where the answer goes and the address asked
    /// (a reply counts only from there).
    pending: Mutex<HashMap<Vec<u8>, (Waiter, SocketAddr)>>,
    store: Mutex<HashMap<InfoHash, Vec<(SocketAddr, Instant)>>>,
    /// The socket's family: IPv6 (BEP 32) or IPv4.
    v6: bool,
    /// The node of the other family in the same run, whose table answers BEP 32's
    /// `want` for that family.
    sibling: Mutex<std::sync::Weak<Shared>>,
    secrets: Mutex<([u8; 16], [u8; 16], Instant)>,
    rate: Mutex<RateLimit>,
    settings: NodeSettings,
    stop: Shutdown,
}

/// A running DHT node.
pub struct DhtNode {
    shared: Arc<Shared>,
    receiver: Option<JoinHandle<()>>,
}

impl DhtNode {
    /// Binds `addr` and starts answering. `id` and `known` come from a saved state, or
    /// a random id and nothing.
    pub fn start(
        addr: SocketAddr,
        id: NodeId,
        known: &[NodeInfo],
        settings: NodeSettings,
        stop: Shutdown,
    ) -> std::io::Result<Self> {
        let socket = bind(addr)?;
        socket.set_read_timeout(Some(crate::shutdown::POLL))?;
        Self::start_on(socket, None, id, known, settings, stop)
    }

    /// Starts on the port of btda's uTP socket (as real clients share one port for
    /// uTP and the DHT): KRPC datagrams come from the uTP driver, replies and queries go
    /// out on its socket.
    pub fn start_shared(
        port: crate::utp::KrpcPort,
        id: NodeId,
        known: &[NodeInfo],
        settings: NodeSettings,
        stop: Shutdown,
    ) -> std::io::Result<Self> {
        Self::start_on(
            port.socket,
            Some(Mutex::new(port.datagrams)),
            id,
            known,
            settings,
            stop,
        )
    }

    fn start_on(
        socket: UdpSocket,
        shared_port: Option<Mutex<std::sync::mpsc::Receiver<crate::utp::Datagram>>>,
        id: NodeId,
        known: &[NodeInfo],
        settings: NodeSettings,
        stop: Shutdown,
    ) -> std::io::Result<Self> {
        let v6 = socket.local_addr()?.is_ipv6();
        let mut table = RoutingTable::new(id);
        for n in known.iter().filter(|n| n.addr.is_ipv6() == v6) {
            table.seen(*n);
        }
        let shared = Arc::new(Shared {
            socket,
            shared_port,
            table: Mutex::new(table),
            pending: Mutex::new(HashMap::new()),
            store: Mutex::new(HashMap::new()),
            v6,
            sibling: Mutex::new(std::sync::Weak::new()),
            secrets: Mutex::new((rand::random(), rand::random(), Instant::now())),
            rate: Mutex::new(RateLimit {
                per_sec: settings.rate_per_sec.max(1),
                window: Instant::now(),
                used: 0,
            }),
            settings,
            stop,
        });
        let s = Arc::clone(&shared);
        let receiver = std::thread::Builder::new()
            .name("dht".into())
            .spawn(move || s.receive_loop())?;
        Ok(Self {
            shared,
            receiver: Some(receiver),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.shared.socket.local_addr()
    }

    /// Makes `self` and `other` (a node of the other family, BEP 32) answer `want`
    /// for each other's family from each other's routing table.
    pub fn pair(&self, other: &DhtNode) {
        *self.shared.sibling.lock() = Arc::downgrade(&other.shared);
        *other.shared.sibling.lock() = Arc::downgrade(&self.shared);
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.shared.table.lock().own_id()
    }

    /// Nodes in the routing table.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.shared.table.lock().nodes()
    }

    /// Joins the DHT through `bootstrap` addresses: a lookup of our own id.
    pub fn bootstrap(&self, bootstrap: &[SocketAddr]) -> usize {
        let own = self.id();
        self.shared.lookup(&own, false, bootstrap);
        self.shared.table.lock().len()
    }

    /// Finds peers of `info_hash` (and the closest nodes with tokens).
    pub fn get_peers(&self, info_hash: InfoHash, bootstrap: &[SocketAddr]) -> Lookup {
        self.shared.lookup(&info_hash.0, true, bootstrap)
    }

    /// Announces our `port` for `info_hash` to the closest nodes of a lookup; returns
    /// how many accepted.
    pub fn announce(&self, info_hash: InfoHash, port: u16, lookup: &Lookup) -> usize {
        let (tx, rx) = channel();
        let mut sent = 0;
        for (node, token) in lookup.closest.iter().take(K) {
            let q = Query::AnnouncePeer {
                info_hash,
                port,
                token: token.clone(),
                implied_port: false,
            };
            if self.shared.send_query(node.addr, q, &tx).is_some() {
                sent += 1;
            }
        }
        let deadline = Instant::now() + self.shared.settings.query_timeout;
        let mut ok = 0;
        while ok < sent {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((m, _)) if matches!(m.body, Body::Response(_)) => ok += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        ok
    }

    /// Refreshes stale buckets with `find_node` lookups.
    pub(crate) fn refresh(&self) {
        let targets = self.shared.table.lock().refresh_targets(rand::random);
        for t in targets {
            if self.shared.stop.requested() {
                break;
            }
            self.shared.lookup(&t, false, &[]);
        }
    }

    /// Stops the receiver thread (the stop flag must be set).
    pub fn join(mut self) {
        if let Some(r) = self.receiver.take() {
            let _ = r.join();
        }
    }
}

impl Shared {
    /// The next datagram: from the socket, or from the uTP driver when the port is
    /// shared; None after `POLL` without one.
    fn next_datagram(&self, buf: &mut [u8; 2048]) -> Option<(usize, SocketAddr)> {
        match &self.shared_port {
            None => self.socket.recv_from(buf).ok(),
            Some(rx) => {
                let (d, from) = rx.lock().recv_timeout(crate::shutdown::POLL).ok()?;
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Some((n, from))
            }
        }
    }

    fn receive_loop(&self) {
        let mut buf = [0u8; 2048];
        while !self.stop.requested() {
            let Some((n, from)) = self.next_datagram(&mut buf) else {
                continue;
            };
            match Message::decode(&buf[..n]) {
                Ok(msg) => self.handle(msg, from),
                Err(KrpcError::UnknownMethod { tid, .. }) => {
                    self.reply(from, tid, Body::Error(204, "Method Unknown".into()));
                }
                Err(KrpcError::BadQuery { tid, reason }) => self.reply(
                    from,
                    tid,
                    Body::Error(203, format!("Protocol Error: {reason}")),
                ),
                Err(KrpcError::Malformed(_)) => {} // not worth an answer
            }
        }
    }

    fn reply(&self, to: SocketAddr, tid: Vec<u8>, body: Body) {
        let id = Some(self.table.lock().own_id());
        let _ = self.socket.send_to(&Message { tid, id, body }.encode(), to);
    }

    fn handle(&self, msg: Message, from: SocketAddr) {
        // A v4-mapped sender on an IPv6 socket is not an IPv6 node.
        let from = match from {
            SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
                Some(v4) => SocketAddr::from((v4, a.port())),
                None => from,
            },
            v4 => v4,
        };
        if from.is_ipv6() != self.v6 {
            return;
        }
        match msg.body {
            Body::Query(q) => {
                if let Some(id) = msg.id {
                    self.queried_by(NodeInfo { id, addr: from });
                }
                let body = self.answer(q, from);
                self.reply(from, msg.tid, body);
            }
            Body::Response(_) | Body::Error(..) => {
                // A reply counts only from the address the query went to, with the
                // query's unguessable id: anyone else who saw or guessed the id cannot
                // plant an answer (nor spend the real one).
                let waiter = {
                    let mut pending = self.pending.lock();
                    if pending.get(&msg.tid).is_some_and(|(_, to)| *to == from) {
                        pending.remove(&msg.tid).map(|(w, _)| w)
                    } else {
                        None
                    }
                };
                let Some(waiter) = waiter else { return };
                // Only a node that answered our own query enters the routing table.
                if let (Some(id), Body::Response(_)) = (msg.id, &msg.body) {
                    self.table.lock().seen(NodeInfo { id, addr: from });
                }
                if let Waiter::Lookup(tx) = waiter {
                    let _ = tx.send((msg, from));
                }
            }
        }
    }

    /// A node we do not hold queried us: if it could enter the table, ping it (at
    /// most [`MAX_VERIFYING`] at once, within the query rate, never waiting); it
    /// enters when it answers.
    fn queried_by(&self, node: NodeInfo) {
        if !self.table.lock().queried_by(node) {
            return;
        }
        let tid = {
            let mut pending = self.pending.lock();
            // Pings unanswered for a query timeout are given up.
            let timeout = self.settings.query_timeout;
            pending.retain(|_, (w, _)| !matches!(w, Waiter::Verify(at) if at.elapsed() > timeout));
            let verifying = pending
                .values()
                .filter(|(w, _)| matches!(w, Waiter::Verify(_)))
                .count();
            if verifying >= MAX_VERIFYING
                || pending.values().any(|(_, to)| *to == node.addr)
                || !self.rate.lock().take().is_zero()
            {
                return;
            }
            let tid = fresh_tid(&pending);
            pending.insert(tid.clone(), (Waiter::Verify(Instant::now()), node.addr));
            tid
        };
        let msg = Message {
            tid: tid.clone(),
            id: Some(self.table.lock().own_id()),
            body: Body::Query(Query::Ping),
        };
        if self.socket.send_to(&msg.encode(), node.addr).is_err() {
            self.pending.lock().remove(&tid);
        }
    }

    fn token(&self, ip: &IpAddr, secret: &[u8; 16]) -> Vec<u8> {
        let mut h = sha1_smol::Sha1::new();
        h.update(secret);
        match ip {
            IpAddr::V4(v4) => h.update(&v4.octets()),
            IpAddr::V6(v6) => h.update(&v6.octets()),
        }
        h.digest().bytes()[..8].to_vec()
    }

    fn current_secrets(&self) -> ([u8; 16], [u8; 16]) {
        let mut s = self.secrets.lock();
        if s.2.elapsed() >= TOKEN_ROTATION {
            *s = (rand::random(), s.0, Instant::now());
        }
        (s.0, s.1)
    }

    /// `r` with the nodes closest to `target` in the lists `want` asks for (BEP 32):
    /// none asked means this node's family; the other family's come from the sibling
    /// node when there is one. `own` is false when `values` already answer.
    fn with_nodes(&self, target: &NodeId, want: Want, own: bool, mut r: Response) -> Response {
        let (ours, theirs) = if !want.n4 && !want.n6 {
            (true, false)
        } else if self.v6 {
            (want.n6, want.n4)
        } else {
            (want.n4, want.n6)
        };
        let mut fill = |nodes: Vec<NodeInfo>| {
            for n in nodes {
                if n.addr.is_ipv6() {
                    r.nodes6.push(n);
                } else {
                    r.nodes.push(n);
                }
            }
        };
        if ours && own {
            fill(self.table.lock().closest(target, K));
        }
        if theirs && let Some(sibling) = self.sibling.lock().upgrade() {
            fill(sibling.table.lock().closest(target, K));
        }
        r
    }

    fn answer(&self, q: Query, from: SocketAddr) -> Body {
        match q {
            Query::Ping => Body::Response(Response::default()),
            Query::FindNode(target, want) => {
                Body::Response(self.with_nodes(&target, want, true, Response::default()))
            }
            Query::GetPeers(hash, want) => {
                let (current, _) = self.current_secrets();
                let token = Some(self.token(&from.ip(), &current));
                let values: Vec<SocketAddr> = self
                    .store
                    .lock()
                    .get(&hash)
                    .map(|v| v.iter().map(|(a, _)| *a).collect())
                    .unwrap_or_default();
                let own = values.is_empty();
                let r = Response {
                    values,
                    token,
                    ..Response::default()
                };
                Body::Response(self.with_nodes(&hash.0, want, own, r))
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                token,
                implied_port,
            } => {
                let (current, previous) = self.current_secrets();
                if token != self.token(&from.ip(), &current)
                    && token != self.token(&from.ip(), &previous)
                {
                    return Body::Error(203, "Protocol Error: bad token".into());
                }
                let port = if implied_port { from.port() } else { port };
                let peer = SocketAddr::new(from.ip(), port);
                let mut store = self.store.lock();
                if store.len() >= STORE_HASHES && !store.contains_key(&info_hash) {
                    return Body::Error(202, "Server Error: store full".into());
                }
                let peers = store.entry(info_hash).or_default();
                peers.retain(|(a, _)| *a != peer);
                if peers.len() >= STORE_PEERS {
                    peers.remove(0);
                }
                peers.push((peer, Instant::now()));
                Body::Response(Response::default())
            }
        }
    }

    /// Sends a query whose answer goes to `reply`; returns its transaction id.
    fn send_query(&self, to: SocketAddr, q: Query, reply: &ReplyTo) -> Option<Vec<u8>> {
        loop {
            let wait = self.rate.lock().take();
            if wait.is_zero() {
                break;
            }
            if self.stop.requested() {
                return None;
            }
            std::thread::sleep(wait.min(crate::shutdown::POLL));
        }
        let tid = {
            let mut pending = self.pending.lock();
            let tid = fresh_tid(&pending);
            pending.insert(tid.clone(), (Waiter::Lookup(reply.clone()), to));
            tid
        };
        let id = Some(self.table.lock().own_id());
        let msg = Message {
            tid: tid.clone(),
            id,
            body: Body::Query(q),
        };
        if self.socket.send_to(&msg.encode(), to).is_err() {
            self.pending.lock().remove(&tid);
            return None;
        }
        Some(tid)
    }

    /// Iterative lookup of `target` (get_peers or find_node), starting from the table's
    /// closest nodes and the `extra` addresses (bootstrap nodes of unknown id).
    fn lookup(&self, target: &NodeId, peers: bool, extra: &[SocketAddr]) -> Lookup {
        let query = |t: &NodeId| {
            if peers {
                let scrape = Want {
                    scrape: true,
                    ..Want::default()
                };
                Query::GetPeers(InfoHash(*t), scrape)
            } else {
                Query::FindNode(*t, Want::default())
            }
        };
        let (tx, rx) = channel::<(Message, SocketAddr)>();
        let mut candidates: Vec<NodeInfo> = self.table.lock().closest(target, K);
        let mut asked: HashSet<SocketAddr> = HashSet::new();
        let mut outstanding: HashMap<Vec<u8>, (SocketAddr, Instant, Option<NodeId>)> =
            HashMap::new();
        let mut answered: Vec<(NodeInfo, Vec<u8>)> = Vec::new();
        let mut found: Vec<SocketAddr> = Vec::new();
        let (mut seeds, mut swarm) = (ScrapeFilter::default(), ScrapeFilter::default());
        let mut scraped = 0u32;
        let mut result = Lookup::default();
        let timeout = self.settings.query_timeout;
        for addr in extra {
            if asked.insert(*addr)
                && let Some(tid) = self.send_query(*addr, query(target), &tx)
            {
                outstanding.insert(tid, (*addr, Instant::now() + timeout, None));
                result.queried += 1;
            }
        }
        let deadline = Instant::now() + timeout * 10;
        loop {
            if self.stop.requested() || Instant::now() > deadline {
                break;
            }
            candidates.sort_by_key(|n| distance(&n.id, target));
            candidates.dedup_by_key(|n| n.id);
            // Ask the closest not yet asked, alpha at a time, while they could still matter.
            let closest_answered: Vec<[u8; 20]> = answered
                .iter()
                .map(|(n, _)| distance(&n.id, target))
                .collect();
            let kth = {
                let mut d = closest_answered.clone();
                d.sort();
                d.get(K - 1).copied()
            };
            let next: Vec<NodeInfo> = candidates
                .iter()
                .filter(|n| !asked.contains(&n.addr))
                .take(K)
                .copied()
                .collect();
            for n in next {
                if outstanding.len() >= self.settings.alpha
                    || result.queried >= self.settings.max_queries
                {
                    break;
                }
                if kth.is_some_and(|k| distance(&n.id, target) >= k) {
                    break;
                }
                let addr = n.addr;
                asked.insert(addr);
                if let Some(tid) = self.send_query(addr, query(target), &tx) {
                    outstanding.insert(tid, (addr, Instant::now() + timeout, Some(n.id)));
                    result.queried += 1;
                }
            }
            if outstanding.is_empty() {
                break;
            }
            let next_expiry = outstanding
                .values()
                .map(|o| o.1)
                .min()
                .unwrap_or_else(Instant::now);
            if let Ok((msg, from)) =
                rx.recv_timeout(next_expiry.saturating_duration_since(Instant::now()))
            {
                outstanding.remove(&msg.tid);
                if let (Body::Response(r), Some(id)) = (msg.body, msg.id) {
                    result.answered += 1;
                    // Peers of this node's family only (an IPv4 node's answer names
                    // IPv4 peers, an IPv6 node's IPv6 ones).
                    // Capped per reply and per lookup: an endless peer list from a
                    // hostile node neither grows memory nor aims btda's dials.
                    let room = MAX_VALUES_PER_LOOKUP.saturating_sub(found.len());
                    found.extend(
                        r.values
                            .into_iter()
                            .filter(|p| p.is_ipv6() == self.v6)
                            .take(MAX_VALUES_PER_REPLY.min(room)),
                    );
                    if r.seeds_filter.is_some() || r.peers_filter.is_some() {
                        scraped += 1;
                    }
                    if let Some(f) = &r.seeds_filter {
                        seeds.merge(f);
                    }
                    if let Some(f) = &r.peers_filter {
                        swarm.merge(f);
                    }
                    let own = self.table.lock().own_id();
                    let nodes = if self.v6 { r.nodes6 } else { r.nodes };
                    candidates.extend(
                        nodes
                            .into_iter()
                            .filter(|n| n.id != own && n.addr.is_ipv6() == self.v6)
                            .take(MAX_NODES_PER_REPLY),
                    );
                    if candidates.len() > MAX_CANDIDATES_PER_LOOKUP {
                        candidates.sort_by_key(|n| distance(&n.id, target));
                        candidates.truncate(MAX_CANDIDATES_PER_LOOKUP);
                    }
                    answered.push((NodeInfo { id, addr: from }, r.token.unwrap_or_default()));
                }
            } else {
                let now = Instant::now();
                let expired: Vec<Vec<u8>> = outstanding
                    .iter()
                    .filter(|(_, o)| o.1 <= now)
                    .map(|(t, _)| t.clone())
                    .collect();
                for t in expired {
                    if let Some((_, _, Some(id))) = outstanding.remove(&t) {
                        self.table.lock().failed(&id);
                    }
                    self.pending.lock().remove(&t);
                }
            }
        }
        for t in outstanding.keys() {
            self.pending.lock().remove(t);
        }
        found.sort();
        found.dedup();
        answered.sort_by_key(|(n, _)| distance(&n.id, target));
        answered.truncate(K);
        result.peers = found;
        result.closest = answered;
        result.scrape = (scraped > 0).then(|| Scrape {
            seeds: seeds.estimate(),
            peers: swarm.estimate(),
            nodes: scraped,
        });
        result
    }
}

/// A transaction id not in flight: 32 random bits, not a counter, so a node that saw
/// one id cannot predict the next.
fn fresh_tid<V>(pending: &HashMap<Vec<u8>, V>) -> Vec<u8> {
    loop {
        let t = rand::random::<[u8; 4]>().to_vec();
        if !pending.contains_key(&t) {
            return t;
        }
    }
}

/// A UDP socket on `addr`; an IPv6 one is IPv6-only, so an IPv4 node can use the same
/// port number on 0.0.0.0.
fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
