//! The `PeerQueue`: the scheduler and the peer book under one lock, and the workers'
//! wait for the next due peer.
//!
//! One `parking_lot::Mutex` guards both; idle workers park each on a condition variable
//! of its own and are woken newest first ([`super::idle`]). Exactly one idle worker
//! sleeps until the earliest due time (the "timed waiter"); the others sleep until
//! woken, so a thousand idle workers do not all wake for one due peer. Workers
//! wake when a peer is due or a new one arrives, never on a fixed tick (the 2015 tool
//! slept 40 s, so its revisits drifted).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};

use crate::idle::park;

use super::identity::{PeerAddr, PeerKeyer, Source, is_dialable_global};
use super::{PeerBook, Recorded, VisitResult};
use crate::schedule::scheduler::{Ended, Popped, Reach, Scheduler, State, StateCounts};
use crate::schedule::{Added, DialBudget, Policy, Reason};
use crate::torrent::{TorrentId, TorrentRegistry};

/// A visit handed to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Whom to visit.
    pub peer: PeerAddr,
    /// 1 for the first attempt at this peer, then 2, 3, …
    pub attempt: u32,
    /// The attempt whose (doubled) timeouts this one gets
    /// ([`crate::schedule::scheduler::Scheduler::timeout_attempt`]).
    pub timeout_attempt: u32,
    /// The peer's torrent.
    pub info_hash: crate::torrent::InfoHash,
    /// Its pieces count.
    pub pieces: u32,
    /// T in pieces for the peer's torrent.
    pub threshold: u32,
    /// Why the peer is visited now.
    pub reason: Reason,
    /// A relay that named this peer through PEX with the holepunch flag (BEP 55): asked
    /// for a rendezvous when the peer cannot be reached directly.
    pub relay: Option<SocketAddr>,
    /// The peer was last reached by a hole punch: punch first, not dialled directly.
    pub punch_first: bool,
    /// The peer's id in this queue's book, so that [`PeerQueue::finish`] needs no
    /// lookup by address.
    id: u32,
}

/// Snapshot counts for the status line and the `statistic` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Peers by scheduling state (known, due, in flight, finished, dropped, reached).
    pub peers: StateCounts,
    /// Confirmed downloads so far.
    pub confirmed: u64,
    /// Non-global addresses not dialled, from trackers.
    pub not_global_tracker: u64,
    /// … from the DHT.
    pub not_global_dht: u64,
    /// … from peer exchange.
    pub not_global_pex: u64,
    /// Addresses of ours that sources named, not queued.
    pub ours: u64,
    /// Peer identities not created: their IP already was the most peers allowed.
    pub crowded: u64,
    /// Peers not kept because their source (tracker, DHT, PEX) had already named the
    /// most peers kept per torrent from one source.
    pub source_full: u64,
    /// Dials to never-answered addresses the dial budget deferred.
    pub dials_deferred: u64,
    /// The longest deferral, ms.
    pub dial_deferral_max_ms: u64,
    /// Known peers per flag of their latest PEX mention: encryption, seed, uTP,
    /// holepunch, reachable.
    pub pex_flags: [u64; 5],
}

struct Inner {
    sched: Scheduler,
    book: PeerBook,
    torrents: Arc<TorrentRegistry>,
    /// Incoming connections under way, per remote IP: its peers are not dialled then.
    incoming: HashMap<IpAddr, u32>,
    timed_waiter: Option<Instant>,
    /// Workers waiting for work, woken newest first.
    idle: crate::idle::Idle,
    closed: bool,
    allow_private: bool,
    not_global: [u64; 3],
    ours: u64,
    /// Dials to addresses that never answered, paced (see [`DialBudget`]).
    budget: DialBudget,
    /// Peers whose deferred dial already holds a budget slot: dialled when due.
    reserved: HashSet<u32>,
    /// Most peers kept per torrent from each of tracker, DHT and PEX.
    max_per_source: u32,
    /// Peers kept so far per (torrent, source index).
    from_source: HashMap<(TorrentId, usize), u32>,
    source_full: u64,
    /// Peer rows to write again, found outside a visit (an IP a source showed crowded);
    /// at most `peer.max_peers_per_ip` per crowded IP, taken by [`PeerQueue::take_rewrites`].
    rewrites: Vec<crate::store::PeerRow>,
    /// Hole punching: relays per target, punched targets, punches under way.
    punch: super::punch::PunchBook,
}

impl Inner {
    /// Whether the dial of `id` may go now for the dial budget: a reached peer or one
    /// whose slot is reserved goes; otherwise, when the global budget has no room
    /// ([`DialBudget::has_room`]), a first contact (or a retry of an address that made a
    /// connection) is held back, and a silent address (rarely here: the scheduler hands
    /// those out only while the budget has room) waits for the next free slot, nothing
    /// reserved; else a slot is reserved, now or later.
    fn admit(&mut self, id: u32, now: Instant) -> Admit {
        let reach = self.sched.reach(id);
        if reach == Some(Reach::Reached) || self.reserved.remove(&id) {
            return Admit::Go;
        }
        if !self.budget.has_room(now) {
            self.budget.count_held();
            return match reach {
                Some(Reach::Never) | None => Admit::Defer(self.budget.global_free_at(now)),
                _ => Admit::Hold,
            };
        }
        let Some(ip) = self.book.peer(id).map(|p| p.addr.ip()) else {
            return Admit::Go;
        };
        let at = self.budget.reserve(ip, now);
        if at > now {
            self.reserved.insert(id);
            Admit::Defer(at)
        } else {
            Admit::Go
        }
    }
}

/// What the dial budget says of a dial ([`Inner::admit`]).
enum Admit {
    /// Dial now.
    Go,
    /// Wait until then.
    Defer(Instant),
    /// A first contact (or a retry of an address that made a connection): into the
    /// backlog, handed out newest first.
    Hold,
}

/// The shared queue of peers to visit.
pub struct PeerQueue {
    inner: Mutex<Inner>,
    /// Relay sessions and punches under way: polled by punching workers, so not under
    /// the lock every worker shares.
    traffic: Mutex<super::punch::PunchTraffic>,
    contention: LockContention,
}

/// How much threads waited for the queue's lock: the one lock every worker, source and
/// incoming connection shares, so the first place a large swarm would queue up.
/// Measured only when the lock was taken (`try_lock` failed), so the common path reads
/// no clock.
#[derive(Debug, Default)]
struct LockContention {
    acquired: AtomicU64,
    contended: AtomicU64,
    wait_ns: AtomicU64,
}

/// Cumulative lock figures of a [`PeerQueue`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockFigures {
    /// Times the lock was taken (waits for work on the condition variable excluded).
    pub acquired: u64,
    /// Of those, times it was held by another thread.
    pub contended: u64,
    /// Time spent waiting for it, summed over threads, ms.
    pub wait_ms: u64,
}

impl PeerQueue {
    /// A queue for the torrents of `torrents`; peers of a torrent whose metadata is
    /// pending are parked until [`Self::metadata_arrived`].
    pub fn new(torrents: Arc<TorrentRegistry>, policy: Policy, keyer: PeerKeyer) -> Self {
        Self {
            inner: Mutex::new(Inner {
                sched: Scheduler::new(policy),
                book: PeerBook::new(keyer),
                torrents,
                incoming: HashMap::new(),
                timed_waiter: None,
                idle: crate::idle::Idle::default(),
                closed: false,
                allow_private: false,
                not_global: [0; 3],
                ours: 0,
                budget: DialBudget::unlimited(),
                reserved: HashSet::new(),
                max_per_source: u32::MAX,
                from_source: HashMap::new(),
                source_full: 0,
                rewrites: Vec::new(),
                punch: super::punch::PunchBook::default(),
            }),
            traffic: Mutex::new(super::punch::PunchTraffic::default()),
            contention: LockContention::default(),
        }
    }

    /// Takes the lock, counting the wait when another thread held it.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.contention.acquired.fetch_add(1, Ordering::Relaxed);
        if let Some(g) = self.inner.try_lock() {
            return g;
        }
        let started = Instant::now();
        let g = self.inner.lock();
        let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.contention.contended.fetch_add(1, Ordering::Relaxed);
        self.contention.wait_ns.fetch_add(waited, Ordering::Relaxed);
        g
    }

    /// How often and how long threads waited for the queue's lock so far.
    pub(crate) fn lock_figures(&self) -> LockFigures {
        let c = &self.contention;
        LockFigures {
            acquired: c.acquired.load(Ordering::Relaxed),
            contended: c.contended.load(Ordering::Relaxed),
            wait_ms: c.wait_ns.load(Ordering::Relaxed) / 1_000_000,
        }
    }

    /// Dial addresses that are not globally routable even when a tracker, the DHT or
    /// PEX names them (tests and the demo run on loopback).
    pub fn allow_private(self, allow: bool) -> Self {
        self.lock().allow_private = allow;
        self
    }

    /// At most `n` distinct peers per IP and torrent (`peer.max_peers_per_ip`).
    pub fn with_max_peers_per_ip(self, n: usize) -> Self {
        self.lock().book.set_max_per_ip(n);
        self
    }

    /// Paces dials to addresses that never answered: `per_sec` a second in all and
    /// `per_network_per_sec` into one /24 or /48 (0: no limit), see [`DialBudget`].
    pub fn with_dial_budget(self, per_sec: u32, per_network_per_sec: u32) -> Self {
        self.lock().budget = DialBudget::new(per_sec, per_network_per_sec, Instant::now());
        self
    }

    /// Keeps at most `n` peers per torrent from each of tracker, DHT and PEX; further
    /// ones are dropped and counted.
    pub fn with_max_peers_per_source(self, n: u32) -> Self {
        self.lock().max_per_source = n.max(1);
        self
    }

    /// Our listen port and, when specific, our listen address: never queued.
    pub(crate) fn with_own_address(self, port: u16, ip: Option<IpAddr>) -> Self {
        self.lock().book.set_own(port, ip);
        self
    }

    /// Asks `pool` for the domain of each peer at its first observation; answers go
    /// to [`Self::set_domain`].
    pub(crate) fn with_rdns(self, pool: crate::geo::rdns::RdnsPool<PeerAddr>) -> Self {
        self.lock().book.set_rdns(pool);
        self
    }

    /// Looks peers up in `geo` (once each) and, with `store_prefix`, records their /24
    /// or /48 network.
    pub(crate) fn with_geo(self, geo: std::sync::Arc<crate::geo::Geo>, store_prefix: bool) -> Self {
        self.lock().book.set_geo(geo, store_prefix);
        self
    }

    /// Records a peer's reverse-DNS domain; returns its database id for an update.
    pub(crate) fn set_domain(&self, peer: &PeerAddr, domain: String) -> Option<i64> {
        self.lock().book.set_domain(peer, domain)
    }

    /// Remembers an external address of ours (BEP 10 `yourip`, a tracker's `external
    /// ip`): our port there is never queued.
    pub(crate) fn learn_own_ip(&self, ip: IpAddr) {
        self.lock().book.learn_own_ip(ip);
    }

    /// Adds a peer reported by a source; new peers are due at once. Addresses that are
    /// ours are never queued; trackers, the DHT and PEX may not name non-global ones
    /// unless private addresses are allowed.
    pub fn add(&self, torrent: TorrentId, addr: SocketAddr, source: Source) -> Added {
        let now = Instant::now();
        let peer = PeerAddr { torrent, addr };
        let mut g = self.lock();
        if g.torrents.info_hash(torrent).is_none() {
            return Added::Duplicate;
        }
        let threshold = g.torrents.threshold(torrent);
        let learned = match source {
            Source::Tracker => Some(0),
            Source::Dht => Some(1),
            Source::Pex => Some(2),
            Source::Incoming | Source::Manual => None,
        };
        if let Some(i) = learned
            && !g.allow_private
            && !is_dialable_global(&addr)
        {
            g.not_global[i] += 1;
            return Added::NotGlobal;
        }
        if addr.port() == 0 {
            return Added::NotGlobal;
        }
        if let Some(i) = learned
            && g.book.id(&peer).is_none()
            && g.from_source.get(&(torrent, i)).copied().unwrap_or(0) >= g.max_per_source
        {
            g.source_full += 1;
            return Added::SourceFull;
        }
        if g.book.is_ours(&addr) {
            g.ours += 1;
            let id = g.book.know_ours(peer, source);
            g.sched.set_ours(id, now);
            return Added::Ours;
        }
        let Some((id, new)) = g.book.know(peer, source) else {
            // The rows of the peers at an IP that a source just showed crowded are
            // written again by the monitor (their strict count may have changed).
            let rows = g.book.take_newly_crowded();
            g.rewrites.extend(rows);
            return Added::Crowded;
        };
        if let (Some(i), true) = (learned, new) {
            *g.from_source.entry((torrent, i)).or_insert(0) += 1;
        }
        let added = g.sched.add(id, now, threshold.is_some());
        if source == Source::Pex && g.sched.vouch(id, now) {
            g.idle.wake_one();
        }
        if added == Added::New && threshold.is_some() {
            g.idle.wake_one();
        }
        added
    }

    /// Blocks until a peer is due and hands it out; `None` once the queue is closed. A
    /// peer with another connection open (an incoming one from its IP, when it is the
    /// only known peer there) waits: clients that allow one connection per IP would
    /// refuse a second.
    pub fn next_job(&self) -> Option<Job> {
        let mut g = self.lock();
        loop {
            if g.closed {
                return None;
            }
            let now = Instant::now();
            let room = g.budget.has_room(now);
            let Inner {
                sched,
                book,
                incoming,
                ..
            } = &mut *g;
            // An incoming connection from an IP with several known peers (a NAT) is
            // most likely one of the others: only a lone peer waits for it to end.
            let popped = sched.pop_due(now, room, |id| {
                book.peer(id).is_some_and(|p| {
                    incoming.contains_key(&p.addr.ip())
                        && book.peers_at(p.torrent, p.addr.ip()) <= 1
                })
            });
            match popped {
                Popped::Visit(id, attempt) => {
                    match g.admit(id, now) {
                        Admit::Go => {}
                        Admit::Defer(at) => {
                            g.sched.defer(id, at);
                            continue;
                        }
                        Admit::Hold => {
                            g.sched.hold(id, now);
                            continue;
                        }
                    }
                    g.sched.dispatched(id, now);
                    let peer = g.book.peer(id);
                    let Some((peer, (info_hash, pieces, threshold))) =
                        peer.and_then(|p| Some((p, g.torrents.for_visit(p.torrent)?)))
                    else {
                        // Metadata pending (cannot happen: such peers are parked).
                        g.sched.finish(id, Ended::Retry, now);
                        continue;
                    };
                    if g.sched.has_pending() {
                        g.idle.wake_one(); // let another worker watch the next due time
                    }
                    // Punched first: a peer last reached by a punch, and one with a
                    // relay that never answered a direct dial (its next direct dial
                    // would cost a connect timeout again for nothing).
                    let (relay, punched) = g.punch.for_job(id);
                    let punch_first =
                        punched || (relay.is_some() && g.sched.reach(id) == Some(Reach::Never));
                    return Some(Job {
                        peer,
                        attempt,
                        timeout_attempt: g.sched.timeout_attempt(id, attempt),
                        info_hash,
                        pieces,
                        threshold,
                        reason: g.sched.reason(id).unwrap_or_default(),
                        relay,
                        punch_first,
                        id,
                    });
                }
                Popped::Wait(due) => {
                    // Held first contacts and silent addresses go out when the budget
                    // has room again.
                    let room_at = (g.sched.waits_for_budget() && !g.budget.has_room(now))
                        .then(|| g.budget.room_at(now));
                    let Some(due) = due.into_iter().chain(room_at).min() else {
                        park(&mut g, |i| &mut i.idle, None);
                        continue;
                    };
                    if g.timed_waiter.is_none_or(|t| due < t) {
                        g.timed_waiter = Some(due);
                        park(&mut g, |i| &mut i.idle, Some(due));
                        if g.timed_waiter == Some(due) {
                            g.timed_waiter = None;
                        }
                    } else {
                        park(&mut g, |i| &mut i.idle, None);
                    }
                }
            }
        }
    }

    /// Records the result of an outgoing visit handed out by [`Self::next_job`] and
    /// schedules the peer's next visit.
    pub fn finish(&self, job: &Job, result: VisitResult) -> Recorded {
        let now = Instant::now();
        let mut g = self.lock();
        let id = job.id;
        let (recorded, ended) = match &result {
            VisitResult::Myself => {
                g.book.mark_ours(job.peer.addr);
                g.ours += 1;
                (Recorded::default(), Ended::Ours)
            }
            VisitResult::Retry => (Recorded::default(), Ended::Retry),
            VisitResult::Elsewhere => {
                let complete = g.book.complete(job.peer, job.threshold);
                let eta = g
                    .book
                    .eta(job.peer, job.threshold, crate::clock::unix_now_ms());
                (Recorded::default(), Ended::Reached { complete, eta })
            }
            VisitResult::Failure { connected } => {
                let (r, _, _) = g.book.record(job.peer, job.threshold, &result, job.reason);
                let ended = if *connected {
                    Ended::Transient
                } else {
                    Ended::Failed
                };
                (r, ended)
            }
            VisitResult::Success { .. } => {
                let (r, canon, joined) =
                    g.book.record(job.peer, job.threshold, &result, job.reason);
                let mut complete = g.book.complete(canon, job.threshold);
                let eta = g
                    .book
                    .eta(canon, job.threshold, crate::clock::unix_now_ms());
                let canon = g.book.id(&canon).unwrap_or(id);
                if complete && canon != id {
                    g.sched.set_finished(canon);
                }
                // Joined to an address that is visited itself: visit only that one.
                if joined
                    && matches!(
                        g.sched.state(canon),
                        Some(State::Waiting(_) | State::InFlight | State::Finished)
                    )
                {
                    complete = true;
                }
                (r, Ended::Reached { complete, eta })
            }
        };
        if g.sched.finish(id, ended, now) {
            g.idle.wake_one();
        }
        drop(g);
        recorded
    }

    /// Offers peers a PEX message from `relay` named, keeping the flags it gave each
    /// (in memory; the database gets only the counts per flag) and, for those flagged
    /// holepunch, `relay` as a peer that can introduce btda to them (BEP 55).
    pub fn offer_pex(
        &self,
        torrent: TorrentId,
        relay: SocketAddr,
        peers: &[crate::wire::extended::PexPeer],
    ) -> crate::book::Offered {
        let addrs: Vec<SocketAddr> = peers.iter().map(|p| p.addr).collect();
        let offered = crate::book::PeerSink::offer(self, torrent, &addrs, Source::Pex);
        let mut g = self.lock();
        for p in peers {
            let peer = PeerAddr {
                torrent,
                addr: p.addr,
            };
            if let Some(id) = g.book.id(&peer) {
                g.book.set_pex_flags(id, p.flags);
                if p.flags & crate::wire::extended::PEX_HOLEPUNCH != 0 && p.addr != relay {
                    g.punch.relay_named(id, relay);
                }
            }
        }
        offered
    }

    /// Waits (at most `patience`) for a rendezvous slot at `relay` (a few sessions
    /// open per relay, and a paced rate): true when btda may open one now; give it back
    /// with [`Self::relay_done`].
    pub(crate) fn relay_slot(&self, relay: SocketAddr, patience: std::time::Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.traffic.lock().take_slot(relay, Instant::now()) {
                return true;
            }
            if start.elapsed() >= patience {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    /// A rendezvous session with `relay` ended; `usable` false when it cannot relay
    /// (no ut_holepunch, or unreachable): it is no longer asked for `job`'s peer.
    pub(crate) fn relay_done(&self, job: &Job, relay: SocketAddr, usable: bool) {
        self.traffic.lock().release_slot(relay);
        if !usable {
            self.lock().punch.forget_relay(job.id, relay);
        }
    }

    /// A relay answered `connect` for `ip`: its own connection to btda, arriving now,
    /// is the punch's other half.
    pub(crate) fn punch_started(&self, ip: IpAddr) {
        self.traffic.lock().window_open(ip, Instant::now());
    }

    /// Whether the peer at `ip`'s own connection came in since the relay's `connect`.
    pub(crate) fn punch_came_in(&self, ip: IpAddr) -> bool {
        self.traffic.lock().window_seen(ip)
    }

    /// The punch towards `job`'s peer is over; `reached` when btda's own connection
    /// got through. Returns whether the peer's connection came in meanwhile. A peer
    /// reached either way is punched first from now on.
    pub(crate) fn punch_ended(&self, job: &Job, reached: bool) -> bool {
        let came_in = self.traffic.lock().window_close(job.peer.addr.ip());
        self.lock().punch.set_punched(job.id, reached || came_in);
        came_in
    }

    /// Peer rows changed outside a visit since the last call (to be written again).
    pub(crate) fn take_rewrites(&self) -> Vec<crate::store::PeerRow> {
        std::mem::take(&mut self.lock().rewrites)
    }

    /// An incoming connection from `ip` begins: its peers are not dialled meanwhile.
    /// Returns true when it is the other half of a hole punch under way.
    pub(crate) fn incoming_started(&self, ip: IpAddr) -> bool {
        *self.lock().incoming.entry(ip).or_insert(0) += 1;
        self.traffic.lock().window_hit(ip)
    }

    /// The incoming connection from `ip` is closed.
    pub(crate) fn incoming_ended(&self, ip: IpAddr) {
        let mut g = self.lock();
        if let Some(n) = g.incoming.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                g.incoming.remove(&ip);
            }
        }
    }

    /// Records a successful incoming visit, matched to a known peer by (IP, `p`), the
    /// peer id of an earlier visit, or the IP when only one known peer has it; otherwise
    /// it is a new peer with source `incoming`, revisited actively when it named its
    /// listen port.
    pub(crate) fn record_incoming(
        &self,
        torrent: TorrentId,
        ip: IpAddr,
        listen_port: Option<u16>,
        result: VisitResult,
    ) -> Recorded {
        let now = Instant::now();
        let mut g = self.lock();
        let Some(threshold) = g.torrents.threshold(torrent) else {
            return Recorded::default();
        };
        let VisitResult::Success { peer_id, .. } = &result else {
            return Recorded::default();
        };
        // A new identity at an IP that already is the most peers allowed: the visit is
        // stored, no peer (one address cannot be hundreds of downloads).
        let Some((peer, created)) = g.book.match_incoming(torrent, ip, listen_port, *peer_id)
        else {
            return Recorded {
                also: g.book.take_newly_crowded(),
                ..Recorded::default()
            };
        };
        if created && let Some(id) = g.book.id(&peer) {
            g.sched.add(id, now, false);
        }
        let (recorded, canon, _) = g.book.record(peer, threshold, &result, Reason::Incoming);
        let complete = g.book.complete(canon, threshold);
        let eta = g.book.eta(canon, threshold, crate::clock::unix_now_ms());
        let dialable = canon.addr.port() != 0 && !g.book.is_ours(&canon.addr);
        let scheduled = match g.book.id(&canon) {
            Some(id) => g.sched.after_incoming(id, complete, dialable, eta, now),
            None => false,
        };
        if scheduled {
            g.idle.wake_one();
        }
        drop(g);
        recorded
    }

    /// Schedules the peers that were parked waiting for a torrent's metadata, once the
    /// registry has it.
    pub(crate) fn metadata_arrived(&self, torrent: TorrentId) {
        let now = Instant::now();
        let mut g = self.lock();
        if g.torrents.threshold(torrent).is_none() {
            return;
        }
        let Inner { sched, book, .. } = &mut *g;
        sched.release_parked(now, |id| {
            book.peer(id)
                .is_some_and(|p| p.torrent == torrent && p.addr.port() != 0)
        });
        g.idle.wake_all();
    }

    /// Addresses of a torrent's peers parked while its metadata is pending (candidates
    /// for fetching that metadata), at most `max`.
    pub(crate) fn parked_peers(&self, torrent: TorrentId, max: usize) -> Vec<SocketAddr> {
        let g = self.lock();
        let wanted = |p: &PeerAddr| p.torrent == torrent && p.addr.port() != 0;
        g.sched
            .parked(max, |id| g.book.peer(id).is_some_and(|p| wanted(&p)))
            .into_iter()
            .filter_map(|id| g.book.peer(id))
            .map(|p| p.addr)
            .collect()
    }

    /// Wakes every worker and makes [`Self::next_job`] return `None` from now on.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        g.idle.wake_all();
    }

    /// How late peers were handed out so far (first visits, revisits).
    pub fn lateness(&self) -> crate::schedule::scheduler::Lateness {
        self.lock().sched.lateness()
    }

    /// Counts for the status line and the `statistic` table (walks every slot: call
    /// every few seconds, not per visit).
    pub fn counts(&self) -> QueueCounts {
        let g = self.lock();
        QueueCounts {
            peers: g.sched.counts(Instant::now()),
            confirmed: g.book.confirmed(),
            not_global_tracker: g.not_global[0],
            not_global_dht: g.not_global[1],
            not_global_pex: g.not_global[2],
            ours: g.ours,
            crowded: g.book.crowded_refused(),
            source_full: g.source_full,
            dials_deferred: g.budget.deferred().0,
            dial_deferral_max_ms: u64::try_from(g.budget.deferred().1.as_millis())
                .unwrap_or(u64::MAX),
            pex_flags: g.book.pex_flag_counts(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn queue(revisit_ms: u64, backoff_ms: &[u64]) -> PeerQueue {
        let policy = Policy {
            revisit_delay: Duration::from_millis(revisit_ms),
            min_revisit: Duration::from_millis(revisit_ms),
            first_revisit: Duration::from_millis(revisit_ms),
            transient_retry: Duration::from_millis(backoff_ms[0]),
            backoff: backoff_ms
                .iter()
                .map(|&m| Duration::from_millis(m))
                .collect(),
            silent_retries: 100,
            silent_slots: 256,
            cooldown: Duration::from_secs(3600),
        };
        PeerQueue::new(
            TorrentRegistry::with_thresholds(&[Some(10), None]),
            policy,
            PeerKeyer::new([0; 32]),
        )
        .allow_private(true)
    }

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, i], 6881))
    }

    fn ok(pieces: u32, end_ms: i64) -> VisitResult {
        VisitResult::Success {
            observations: vec![(end_ms, pieces)],
            with_state: true,
            client: None,
            client_v: None,
            peer_id: None,
        }
    }

    #[test]
    fn reverse_dns_domains_reach_the_peer_row() {
        let resolver: crate::geo::rdns::Resolver =
            Arc::new(|_| Some("h-1.pool.example.net".into()));
        let (pool, results) =
            crate::geo::rdns::RdnsPool::start(resolver, 1, 100, Duration::from_secs(1));
        let q = queue(10_000, &[10]).with_rdns(pool);
        q.add(TorrentId::new(0), addr(8), Source::Tracker);
        let job = q.next_job().unwrap();
        assert_eq!(q.finish(&job, ok(1, 1)).row.unwrap().rdns_domain, None);
        let (peer, domain) = results.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!((peer, domain.as_deref()), (job.peer, Some("example.net")));
        assert_eq!(q.set_domain(&peer, domain.unwrap()), Some(1));
        let rec = q.record_incoming(TorrentId::new(0), addr(8).ip(), None, ok(2, 2));
        assert_eq!(rec.row.unwrap().rdns_domain.as_deref(), Some("example.net"));
    }

    #[test]
    fn duplicates_and_unknown_torrents() {
        let q = queue(10, &[10]);
        assert_eq!(
            q.add(TorrentId::new(0), addr(2), Source::Tracker),
            Added::New
        );
        assert_eq!(
            q.add(TorrentId::new(0), addr(2), Source::Dht),
            Added::Duplicate
        );
        assert_eq!(
            q.add(TorrentId::new(1), addr(2), Source::Tracker),
            Added::New,
            "parked: metadata pending"
        );
        assert_eq!(
            q.add(TorrentId::new(7), addr(2), Source::Tracker),
            Added::Duplicate
        );
        assert_eq!(q.counts().peers.known, 2);
    }

    #[test]
    fn non_global_and_own_addresses_are_not_queued() {
        let policy = Policy::default();
        let q = PeerQueue::new(
            TorrentRegistry::with_thresholds(&[Some(10)]),
            policy,
            PeerKeyer::new([0; 32]),
        )
        .with_own_address(6881, Some("81.2.69.160".parse().unwrap()));
        for (a, s) in [
            ("127.0.0.1:6881", Source::Tracker),
            ("10.0.0.1:6881", Source::Dht),
            ("192.168.0.9:6881", Source::Pex),
            ("169.254.0.1:1", Source::Pex),
            ("8.8.8.8:0", Source::Tracker),
        ] {
            assert_eq!(
                q.add(TorrentId::new(0), a.parse().unwrap(), s),
                Added::NotGlobal,
                "{a}"
            );
        }
        assert_eq!(
            q.add(
                TorrentId::new(0),
                "10.0.0.1:6881".parse().unwrap(),
                Source::Manual
            ),
            Added::New,
            "given by hand"
        );
        assert_eq!(
            q.add(
                TorrentId::new(0),
                "81.2.69.160:6881".parse().unwrap(),
                Source::Tracker
            ),
            Added::Ours
        );
        q.learn_own_ip("81.2.69.161".parse().unwrap());
        assert_eq!(
            q.add(
                TorrentId::new(0),
                "81.2.69.161:6881".parse().unwrap(),
                Source::Dht
            ),
            Added::Ours
        );
        assert_eq!(
            q.add(
                TorrentId::new(0),
                "81.2.69.161:6882".parse().unwrap(),
                Source::Dht
            ),
            Added::New
        );
        let c = q.counts();
        assert_eq!(
            (
                c.not_global_tracker,
                c.not_global_dht,
                c.not_global_pex,
                c.ours
            ),
            (2, 1, 2, 2)
        );
    }

    #[test]
    fn an_address_that_answers_with_our_id_is_never_visited_again() {
        let q = queue(10, &[10]);
        q.add(TorrentId::new(0), addr(9), Source::Tracker);
        let job = q.next_job().unwrap();
        assert_eq!(q.finish(&job, VisitResult::Myself), Recorded::default());
        assert_eq!(q.add(TorrentId::new(0), addr(9), Source::Dht), Added::Ours);
        assert_eq!((q.counts().ours, q.counts().peers.known), (2, 1));
    }

    #[test]
    fn leecher_is_revisited_until_it_crosses_once() {
        let q = queue(30, &[10]);
        q.add(TorrentId::new(0), addr(2), Source::Tracker);
        let job = q.next_job().unwrap();
        assert_eq!(job.attempt, 1);
        let r = q.finish(&job, ok(3, 1_000));
        assert_eq!(r.peer_id, Some(1));
        assert!(!r.crossed_now);
        let start = Instant::now();
        let job = q.next_job().unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(25),
            "revisit waited for its due time"
        );
        let r = q.finish(&job, ok(10, 200_000));
        assert!(r.crossed_now);
        let row = r.row.unwrap();
        assert_eq!(
            (
                row.first_pieces,
                row.last_pieces,
                row.visits,
                row.crossed_at
            ),
            (3, 10, 2, Some(200))
        );
        assert_eq!(q.counts().peers.finished, 1);
        assert_eq!(q.counts().confirmed, 1);
        // Finished: nothing more is due, so a close is what ends the wait.
        let q = Arc::new(q);
        let q2 = Arc::clone(&q);
        let waiter = std::thread::spawn(move || q2.next_job());
        std::thread::sleep(Duration::from_millis(50));
        q.close();
        assert_eq!(waiter.join().unwrap(), None);
    }

    #[test]
    fn one_address_is_at_most_a_bounded_number_of_peers() {
        let q = queue(10_000, &[10]).with_max_peers_per_ip(10);
        let t = TorrentId::new(0);
        let ip: IpAddr = [127, 9, 9, 9].into();
        // 300 identities from one IP, each with its own `p` and peer id, seen first empty
        // and then complete: at most 10 peers, so at most 10 downloads.
        let mut confirmed = 0;
        let mut strict = 0;
        let mut rewritten = Vec::new();
        for i in 0..300u16 {
            let visit = VisitResult::Success {
                observations: vec![(1_000, 0), (2_000, 10)],
                with_state: true,
                client: None,
                client_v: None,
                peer_id: Some([
                    (i % 250) as u8 + 1,
                    (i / 250) as u8,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ]),
            };
            let r = q.record_incoming(t, ip, Some(10_000 + i), visit);
            confirmed += u32::from(r.crossed_now);
            strict += u32::from(r.row.is_some_and(|row| row.crossed_strict));
            rewritten.extend(r.also);
        }
        assert_eq!(confirmed, 10);
        assert_eq!(q.counts().crowded, 290);
        assert_eq!(q.counts().confirmed, 10);
        // The ten were created before the IP showed itself crowded: their rows are
        // written again then, leaving the strict count (seen only through incoming
        // connections from a crowded IP).
        assert_eq!(strict, 10, "each row counted strictly when first written");
        assert_eq!(rewritten.len(), 10);
        assert!(rewritten.iter().all(|row| !row.crossed_strict));
        // Trackers, the DHT and PEX are bound the same way.
        for port in 0..5 {
            assert_eq!(
                q.add(t, SocketAddr::new(ip, 20_000 + port), Source::Tracker),
                Added::Crowded
            );
        }
        assert!(
            q.take_rewrites().is_empty(),
            "rewritten already, by the visit"
        );
        // An IP that a tracker shows crowded: the incoming-only crossing there leaves
        // the strict count without waiting for a visit (a complete peer gets none).
        let nat: IpAddr = [127, 9, 9, 11].into();
        let r = q.record_incoming(t, nat, Some(7000), ok(0, 1_000));
        assert!(r.row.is_some());
        let r = q.record_incoming(t, nat, Some(7000), ok(10, 2_000));
        assert!(r.crossed_now && r.row.is_some_and(|row| row.crossed_strict));
        for port in 1..=10 {
            q.add(t, SocketAddr::new(nat, 7000 + port), Source::Tracker);
        }
        let rows = q.take_rewrites();
        assert!(
            rows.iter()
                .any(|row| row.crossed_at.is_some() && !row.crossed_strict),
            "{rows:?}"
        );
        let other: IpAddr = [127, 9, 9, 10].into();
        assert_eq!(
            q.add(t, SocketAddr::new(other, 6881), Source::Tracker),
            Added::New
        );
        assert_eq!(
            q.counts().crowded,
            296,
            "5 more at the first IP, 1 at the NAT"
        );
    }

    #[test]
    fn failures_back_off_then_drop_then_cool_down() {
        let q = queue(10, &[5, 5]);
        q.add(TorrentId::new(0), addr(3), Source::Tracker);
        for _ in 0..3 {
            let job = q.next_job().unwrap();
            let r = q.finish(&job, VisitResult::Failure { connected: false });
            assert_eq!(r.peer_id, None);
        }
        assert_eq!(q.counts().peers.dropped, 1);
        assert_eq!(
            q.add(TorrentId::new(0), addr(3), Source::Tracker),
            Added::CoolingDown
        );
    }

    #[test]
    fn each_source_keeps_at_most_its_bound_of_peers_per_torrent() {
        let q = queue(10_000, &[10]).with_max_peers_per_source(5);
        let t = TorrentId::new(0);
        let at = |i: u16| SocketAddr::from(([127, 5, 1, 1], 1000 + i));
        let added: Vec<Added> = (0..7).map(|i| q.add(t, at(i), Source::Dht)).collect();
        assert_eq!(added.iter().filter(|a| **a == Added::New).count(), 5);
        assert_eq!(added[5..], [Added::SourceFull, Added::SourceFull]);
        assert_eq!(q.add(t, at(0), Source::Dht), Added::Duplicate, "known");
        assert_eq!(q.add(t, at(6), Source::Tracker), Added::New, "own bound");
        assert_eq!(q.add(t, at(6), Source::Dht), Added::Duplicate);
        assert_eq!(q.counts().source_full, 2);
        assert_eq!(q.counts().peers.known, 6);
    }

    #[test]
    fn pex_flags_are_kept_per_peer_and_counted_per_flag() {
        use crate::wire::extended::{PEX_HOLEPUNCH, PEX_SEED, PEX_UTP, PexPeer};
        let q = queue(10_000, &[10]);
        let t = TorrentId::new(0);
        let peer = |n: u8, flags: u8| PexPeer {
            addr: SocketAddr::from(([127, 5, 3, n], 6881)),
            flags,
        };
        let relay = SocketAddr::from(([127, 5, 3, 200], 6881));
        let o = q.offer_pex(
            t,
            relay,
            &[peer(1, PEX_UTP | PEX_HOLEPUNCH), peer(2, PEX_SEED)],
        );
        assert_eq!(o.new, 2);
        assert_eq!(q.counts().pex_flags, [0, 1, 1, 1, 0]);
        // The holepunch-flagged peer has the PEX's sender as its relay; the other none.
        let relays: Vec<_> = (0..2)
            .filter_map(|_| q.next_job())
            .map(|j| (j.peer.addr, j.relay, j.punch_first))
            .collect();
        assert!(
            relays.contains(&(peer(1, 0).addr, Some(relay), false)),
            "{relays:?}"
        );
        assert!(
            relays.contains(&(peer(2, 0).addr, None, false)),
            "{relays:?}"
        );
        // A later mention replaces the flags (the peer finished: a seed, no holepunch).
        q.offer_pex(t, relay, &[peer(1, PEX_UTP | PEX_SEED)]);
        assert_eq!(q.counts().pex_flags, [0, 2, 1, 0, 0]);
        let g = q.lock();
        let id = g
            .book
            .id(&PeerAddr {
                torrent: t,
                addr: peer(1, 0).addr,
            })
            .unwrap();
        assert_eq!(g.book.pex_flags(id), PEX_UTP | PEX_SEED);
    }

    /// Address `i` of the booked-budget tests.
    fn booked_at(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 5, (i / 250) as u8, (i % 250) as u8 + 1], 1000))
    }

    /// A queue whose dial budget (20 a second, a burst of 100) is booked beyond a
    /// second: 130 addresses listed, the first 100 handed out (returned), 30 held or
    /// reserved.
    fn booked_queue() -> (PeerQueue, Vec<Job>) {
        let q = queue(50, &[60_000]).with_dial_budget(20, 0);
        for i in 0..130 {
            q.add(TorrentId::new(0), booked_at(i), Source::Tracker);
        }
        let first = (0..100).map(|_| q.next_job().unwrap()).collect();
        (q, first)
    }

    #[test]
    fn when_the_dial_budget_is_booked_ahead_the_newest_first_contact_goes_first() {
        let (q, _) = booked_queue();
        let (t, at) = (TorrentId::new(0), booked_at);
        // Listed later: goes before the older addresses held back (the ones with a
        // slot reserved within the next second keep it).
        q.add(t, at(200), Source::Tracker);
        let rest: Vec<SocketAddr> = (0..31).map(|_| q.next_job().unwrap().peer.addr).collect();
        let pos = |a: SocketAddr| rest.iter().position(|&x| x == a).unwrap();
        assert!(pos(at(100)) < pos(at(200)), "{rest:?}");
        assert!(pos(at(200)) < pos(at(129)), "{rest:?}");
        assert!(pos(at(129)) < pos(at(128)), "newest first: {rest:?}");
        assert!(q.counts().dials_deferred >= 20);
    }

    #[test]
    fn a_held_first_contact_named_in_pex_goes_before_newer_ones() {
        use crate::wire::extended::PexPeer;
        let (q, first) = booked_queue();
        let (t, at) = (TorrentId::new(0), booked_at);
        // A visited peer names held 110 and a new address; a tracker lists 200 after.
        let relay = first[0].peer.addr;
        let named = [at(110), at(210)].map(|addr| PexPeer { addr, flags: 0 });
        q.offer_pex(t, relay, &named);
        q.add(t, at(200), Source::Tracker);
        let rest: Vec<SocketAddr> = (0..32).map(|_| q.next_job().unwrap().peer.addr).collect();
        let pos = |a: SocketAddr| rest.iter().position(|&x| x == a).unwrap();
        assert!(pos(at(110)) < pos(at(200)), "{rest:?}");
        assert!(pos(at(210)) < pos(at(200)), "{rest:?}");
        assert!(pos(at(200)) < pos(at(129)), "{rest:?}");
    }

    #[test]
    fn retries_of_silent_addresses_go_out_at_their_reserved_slots() {
        // 1,000 dials a second (5,000 at once); retries a second after a failure.
        let q = queue(50, &[1_000]).with_dial_budget(1000, 0);
        let t = TorrentId::new(0);
        let at = |i: u32| SocketAddr::from(([127, 6, (i / 250) as u8, (i % 250) as u8 + 1], 1000));
        let n = 5_500;
        for i in 0..n {
            q.add(t, at(i), Source::Tracker);
        }
        // The first sweep: none answers a SYN.
        for _ in 0..n {
            let job = q.next_job().unwrap();
            assert_eq!(job.attempt, 1);
            q.finish(&job, VisitResult::Failure { connected: false });
        }
        // A second on, 5,500 silent addresses are due; the budget gives a slot a
        // millisecond. Each retry popped before its slot waits for that slot, not
        // behind the pile.
        std::thread::sleep(Duration::from_millis(1_100));
        let start = Instant::now();
        let mut retries = 0;
        while start.elapsed() < Duration::from_secs(2) {
            let job = q.next_job().unwrap();
            assert_eq!(job.attempt, 2);
            retries += 1;
            q.finish(&job, VisitResult::Failure { connected: false });
        }
        assert!(
            (2_500..=3_400).contains(&retries),
            "{retries} retries in 2 s at 1,000 a second, after 1,100 saved up"
        );
    }

    #[test]
    fn dials_to_unanswered_addresses_are_paced_and_reached_peers_are_not() {
        // 10 a second into one /24 after the first 256; revisits after 50 ms.
        let q = queue(50, &[60_000]).with_dial_budget(0, 10);
        let t = TorrentId::new(0);
        let at = |i: u16| SocketAddr::from(([127, 5, 2, (i % 250) as u8 + 1], 1000 + i));
        for i in 0..300 {
            assert_eq!(q.add(t, at(i), Source::Tracker), Added::New);
        }
        let start = Instant::now();
        let first: Vec<Job> = (0..256).map(|_| q.next_job().unwrap()).collect();
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "the burst goes at once"
        );
        // One of them answers: its revisit (due in 50 ms) is not paced, and comes
        // before the deferred first contacts (due at 100 ms, 200 ms, …).
        q.finish(&first[0], ok(1, 1));
        for job in &first[1..] {
            q.finish(job, VisitResult::Failure { connected: false });
        }
        let next = q.next_job().unwrap();
        assert_eq!(next.peer, first[0].peer, "the reached peer first");
        assert_eq!(next.attempt, 2);
        q.finish(&next, ok(2, 2));
        // The next ten first contacts come one per 100 ms: the tenth at ~1 s.
        let (mut contacts, mut revisits) = (0, 0);
        while contacts < 10 {
            let job = q.next_job().unwrap();
            if job.peer == first[0].peer {
                revisits += 1;
                q.finish(&job, ok(3, 3));
                continue;
            }
            contacts += 1;
            assert_eq!(job.attempt, 1, "a deferral is not an attempt");
            q.finish(&job, VisitResult::Failure { connected: false });
        }
        assert!(
            revisits >= 5,
            "the reached peer kept its cadence: {revisits}"
        );
        assert!(
            start.elapsed() >= Duration::from_millis(800),
            "paced: {:?}",
            start.elapsed()
        );
        let c = q.counts();
        assert!(
            c.dials_deferred >= 10 && c.dial_deferral_max_ms >= 900,
            "{c:?}"
        );
    }

    #[test]
    fn a_peer_is_not_dialled_while_it_is_connected_in() {
        let q = queue(10, &[10]);
        q.incoming_started(addr(4).ip());
        q.add(TorrentId::new(0), addr(4), Source::Tracker);
        let q = Arc::new(q);
        let q2 = Arc::clone(&q);
        let start = Instant::now();
        let waiter = std::thread::spawn(move || q2.next_job());
        std::thread::sleep(Duration::from_millis(300));
        q.incoming_ended(addr(4).ip());
        let job = waiter.join().unwrap().unwrap();
        assert_eq!(job.peer.addr, addr(4));
        // Put back BUSY_DELAY after the pop, in the scheduler's 10 ms ticks (rounded
        // down): up to one tick sooner than BUSY_DELAY after `start`.
        assert!(
            start.elapsed() + Duration::from_millis(10) >= crate::schedule::scheduler::BUSY_DELAY
        );
    }

    #[test]
    fn peers_behind_a_nat_are_dialled_while_another_one_is_connected_in() {
        let q = queue(10, &[10]);
        let nat = |port| SocketAddr::from(([127, 0, 0, 12], port));
        q.add(TorrentId::new(0), nat(6881), Source::Tracker);
        q.add(TorrentId::new(0), nat(6882), Source::Tracker);
        q.incoming_started(nat(1).ip());
        let a = q.next_job().unwrap();
        let b = q.next_job().unwrap();
        let mut got = [a.peer.addr, b.peer.addr];
        got.sort();
        assert_eq!(
            got,
            [nat(6881), nat(6882)],
            "no wait: the incoming one is a third"
        );
        q.incoming_ended(nat(1).ip());
    }

    #[test]
    fn incoming_peers_match_by_ip_and_are_counted_once() {
        let q = queue(10_000, &[10]);
        q.add(TorrentId::new(0), addr(4), Source::Tracker);
        let job = q.next_job().unwrap();
        q.finish(&job, ok(2, 1_000));
        // The same host connects in from another port and shows completion.
        let r = q.record_incoming(TorrentId::new(0), addr(4).ip(), None, ok(10, 5_000));
        assert_eq!(r.peer_id, Some(1), "matched to the known peer");
        assert!(r.crossed_now);
        let c = q.counts();
        assert_eq!((c.peers.known, c.confirmed, c.peers.finished), (1, 1, 1));
        // An unknown incoming peer with a listen port becomes a new, revisitable peer.
        let r = q.record_incoming(TorrentId::new(0), addr(5).ip(), Some(7000), ok(1, 1_000));
        assert_eq!(r.peer_id, Some(2));
        assert_eq!(r.row.unwrap().source, "incoming");
        assert_eq!(
            q.add(
                TorrentId::new(0),
                SocketAddr::from(([127, 0, 0, 5], 7000)),
                Source::Pex
            ),
            Added::Duplicate
        );
    }

    #[test]
    fn parked_peers_are_released_when_metadata_arrives() {
        let registry = TorrentRegistry::with_thresholds(&[Some(10), None]);
        let policy = Policy::default();
        let q = PeerQueue::new(Arc::clone(&registry), policy, PeerKeyer::new([0; 32]))
            .allow_private(true);
        let magnet = TorrentId::new(1);
        q.add(magnet, addr(6), Source::Dht);
        q.add(magnet, addr(7), Source::Tracker);
        let mut parked = q.parked_peers(magnet, 10);
        parked.sort();
        assert_eq!(parked, vec![addr(6), addr(7)]);
        assert_eq!(
            q.counts().peers.due,
            0,
            "parked peers wait for the metadata"
        );
        // Woken before the registry has the metadata: nothing moves.
        q.metadata_arrived(magnet);
        assert_eq!(q.parked_peers(magnet, 10).len(), 2);
        let figures = crate::torrent::Figures {
            pieces: 6,
            size: 6 * 16_384,
            threshold: 5,
        };
        registry.set_metadata(magnet, figures);
        q.metadata_arrived(magnet);
        let job = q.next_job().unwrap();
        assert_eq!((job.peer.torrent, job.threshold), (magnet, 5));
        assert!(q.parked_peers(magnet, 10).is_empty());
    }

    #[test]
    fn waits_for_the_lock_are_counted() {
        let q = Arc::new(queue(10, &[10]));
        let built = q.lock_figures().acquired; // the builders took it
        q.counts();
        assert_eq!(
            q.lock_figures(),
            LockFigures {
                acquired: built + 1,
                contended: 0,
                wait_ms: 0
            },
            "uncontended"
        );
        let (held, is_held) = std::sync::mpsc::channel();
        let q2 = Arc::clone(&q);
        let holder = std::thread::spawn(move || {
            let _g = q2.lock();
            held.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        });
        is_held.recv().unwrap();
        q.counts(); // waits for the holder
        holder.join().unwrap();
        let f = q.lock_figures();
        assert_eq!((f.acquired, f.contended), (built + 3, 1), "{f:?}");
        assert!((50..2_000).contains(&f.wait_ms), "{f:?}");
    }

    #[test]
    fn many_waiting_workers_all_get_work_and_all_stop() {
        let q = Arc::new(queue(1_000_000, &[1_000_000]));
        let workers: Vec<_> = (0..16)
            .map(|_| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    let mut n = 0;
                    while let Some(job) = q.next_job() {
                        q.finish(&job, ok(1, 1));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        for i in 0..200u32 {
            q.add(
                TorrentId::new(0),
                SocketAddr::from(([127, 1, (i / 200) as u8, (i % 200) as u8 + 1], 1)),
                Source::Dht,
            );
        }
        assert!(crate::sim::eventually(Duration::from_secs(5), || {
            let c = q.counts().peers;
            c.in_flight == 0 && c.known == 200 && c.due == 0
        }));
        q.close();
        let total: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(total, 200);
    }
}
