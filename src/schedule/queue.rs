//! The `PeerQueue`: every known peer, and the due time of its next visit.
//!
//! One `parking_lot::Mutex` guards a due-time heap and the per-peer map; one `Condvar`
//! wakes workers. Exactly one idle worker sleeps until the earliest due time (the
//! "timed waiter"); the others sleep until notified, so a thousand idle workers do not
//! all wake for one due peer. Workers wake when a peer is due or a new one arrives,
//! never on a fixed tick (the 2015 tool slept 40 s, so its revisits drifted).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::identity::{PeerAddr, PeerKeyer, Source};
use super::policy::{Next, Policy};
use super::progress::Progress;
use crate::store::PeerRow;

/// What became of a peer reported by a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Not known before: scheduled now.
    New,
    /// Already known (counted as a duplicate).
    Duplicate,
    /// Dropped recently; ignored until its cool-down ends.
    CoolingDown,
}

/// A visit handed to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Whom to visit.
    pub peer: PeerAddr,
    /// 1 for the first attempt at this peer, then 2, 3, …
    pub attempt: u32,
    /// T in pieces for the peer's torrent.
    pub threshold: u32,
}

/// The result of a visit, as the queue needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum VisitResult {
    /// The peer answered; `pieces` known at `end_ms` (Unix ms).
    Success {
        /// End of the visit, Unix ms.
        end_ms: i64,
        /// Pieces known at the end.
        pieces: u32,
        /// Whether any piece-state message arrived (false: state `none`).
        with_state: bool,
        /// Client decoded from the peer id (name, version).
        client: Option<(String, Option<String>)>,
        /// BEP 10 `v`.
        client_v: Option<String>,
    },
    /// Connect, handshake or protocol failure.
    Failure,
    /// A failure on btda's side (shutdown, no file descriptors): retried without penalty.
    Retry,
}

/// What the caller must store after a visit.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Database id of the peer (None until its first successful visit).
    pub peer_id: Option<i64>,
    /// The updated `peer` row, when the peer has one.
    pub row: Option<PeerRow>,
    /// True if this visit made the peer a confirmed download.
    pub crossed_now: bool,
}

/// Snapshot counts for the status line and the `statistic` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Peers known.
    pub known: u64,
    /// Waiting peers whose due time has passed.
    pub due: u64,
    /// Visits under way.
    pub in_flight: u64,
    /// Peers at or above T.
    pub finished: u64,
    /// Peers dropped after failing.
    pub dropped: u64,
    /// Confirmed downloads so far.
    pub confirmed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Waiting(Instant),
    InFlight,
    /// Known but not visited actively (incoming peer without a listen port, or a
    /// torrent whose metadata is pending).
    Parked,
    Finished,
    Dropped(Instant),
}

#[derive(Debug)]
struct Entry {
    source: Source,
    state: State,
    attempts: u32,
    failures_in_row: u32,
    progress: Progress,
    db_id: Option<i64>,
    client: Option<(String, Option<String>)>,
    client_v: Option<String>,
    geo: Option<crate::geo::GeoInfo>,
    domain: Option<String>,
}

impl Entry {
    fn new(source: Source, state: State) -> Self {
        Self {
            source,
            state,
            attempts: 0,
            failures_in_row: 0,
            progress: Progress::default(),
            db_id: None,
            client: None,
            client_v: None,
            geo: None,
            domain: None,
        }
    }
}

struct Inner {
    heap: BinaryHeap<Reverse<(Instant, PeerAddr)>>,
    peers: HashMap<PeerAddr, Entry>,
    by_ip: HashMap<(u32, IpAddr), Vec<u16>>,
    thresholds: Vec<Option<u32>>,
    timed_waiter: Option<Instant>,
    in_flight: u64,
    confirmed: u64,
    next_db_id: i64,
    closed: bool,
}

/// The shared queue of peers to visit.
pub struct PeerQueue {
    inner: Mutex<Inner>,
    wake: Condvar,
    policy: Policy,
    keyer: PeerKeyer,
    geo: Option<std::sync::Arc<crate::geo::Geo>>,
    store_prefix: bool,
    rdns: Option<crate::geo::rdns::RdnsPool<PeerAddr>>,
}

impl PeerQueue {
    /// A queue for torrents with these thresholds (None: metadata pending).
    pub fn new(thresholds: Vec<Option<u32>>, policy: Policy, keyer: PeerKeyer) -> Self {
        Self {
            inner: Mutex::new(Inner {
                heap: BinaryHeap::new(),
                peers: HashMap::new(),
                by_ip: HashMap::new(),
                thresholds,
                timed_waiter: None,
                in_flight: 0,
                confirmed: 0,
                next_db_id: 1,
                closed: false,
            }),
            wake: Condvar::new(),
            policy,
            keyer,
            geo: None,
            store_prefix: false,
            rdns: None,
        }
    }

    /// Asks `pool` for the domain of each peer at its first successful visit; answers go
    /// to [`Self::set_domain`].
    pub fn with_rdns(mut self, pool: crate::geo::rdns::RdnsPool<PeerAddr>) -> Self {
        self.rdns = Some(pool);
        self
    }

    /// Records a peer's reverse-DNS domain; returns its database id for an update.
    pub fn set_domain(&self, peer: &PeerAddr, domain: String) -> Option<i64> {
        let mut g = self.inner.lock();
        let e = g.peers.get_mut(peer)?;
        e.domain = Some(domain);
        e.db_id
    }

    /// Looks peers up in `geo` (once each, at the first successful visit) and, with
    /// `store_prefix`, records their /24 or /48 network.
    pub fn with_geo(mut self, geo: std::sync::Arc<crate::geo::Geo>, store_prefix: bool) -> Self {
        self.geo = Some(geo);
        self.store_prefix = store_prefix;
        self
    }

    /// Adds a peer reported by a source; new peers are due at once.
    pub fn add(&self, torrent: u32, addr: SocketAddr, source: Source) -> Added {
        let now = Instant::now();
        let peer = PeerAddr { torrent, addr };
        let mut g = self.inner.lock();
        let Some(&threshold) = g.thresholds.get(torrent as usize) else {
            return Added::Duplicate;
        };
        let state = if threshold.is_some() {
            State::Waiting(now)
        } else {
            State::Parked
        };
        let added = match g.peers.get_mut(&peer) {
            None => {
                g.peers.insert(peer, Entry::new(source, state));
                g.by_ip
                    .entry((torrent, addr.ip()))
                    .or_default()
                    .push(addr.port());
                Added::New
            }
            Some(e) => match e.state {
                State::Dropped(until) if now < until => Added::CoolingDown,
                State::Dropped(_) => {
                    e.state = state;
                    e.failures_in_row = 0;
                    Added::New
                }
                _ => Added::Duplicate,
            },
        };
        if added == Added::New && threshold.is_some() {
            g.heap.push(Reverse((now, peer)));
            drop(g);
            self.wake.notify_one();
        }
        added
    }

    /// Blocks until a peer is due and hands it out; `None` once the queue is closed.
    pub fn next_job(&self) -> Option<Job> {
        let mut g = self.inner.lock();
        loop {
            if g.closed {
                return None;
            }
            let now = Instant::now();
            let Some(&Reverse((due, peer))) = g.heap.peek() else {
                self.wake.wait(&mut g);
                continue;
            };
            if due <= now {
                g.heap.pop();
                let threshold = g.thresholds.get(peer.torrent as usize).copied().flatten();
                let Some(e) = g.peers.get_mut(&peer) else {
                    continue;
                };
                let (State::Waiting(when), Some(threshold)) = (e.state, threshold) else {
                    continue; // stale heap entry
                };
                if when != due {
                    continue;
                }
                e.state = State::InFlight;
                e.attempts += 1;
                let attempt = e.attempts;
                g.in_flight += 1;
                if !g.heap.is_empty() {
                    self.wake.notify_one(); // let another worker watch the next due time
                }
                return Some(Job {
                    peer,
                    attempt,
                    threshold,
                });
            }
            if g.timed_waiter.is_none_or(|t| due < t) {
                g.timed_waiter = Some(due);
                self.wake.wait_until(&mut g, due);
                if g.timed_waiter == Some(due) {
                    g.timed_waiter = None;
                }
            } else {
                self.wake.wait(&mut g);
            }
        }
    }

    /// Records the result of an outgoing visit handed out by [`Self::next_job`] and
    /// schedules the peer's next visit.
    pub fn finish(&self, job: &Job, result: VisitResult) -> Recorded {
        let now = Instant::now();
        let mut g = self.inner.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
        let recorded = self.apply(&mut g, job.peer, job.threshold, result.clone());
        let Some(e) = g.peers.get_mut(&job.peer) else {
            return recorded;
        };
        let next = match result {
            VisitResult::Success { .. } => {
                e.failures_in_row = 0;
                self.policy
                    .after_success(e.progress.complete(job.threshold))
            }
            VisitResult::Failure => {
                e.failures_in_row += 1;
                self.policy.after_failure(e.failures_in_row)
            }
            VisitResult::Retry => {
                e.attempts = e.attempts.saturating_sub(1);
                Next::After(
                    self.policy
                        .backoff
                        .first()
                        .copied()
                        .unwrap_or(self.policy.revisit_delay),
                )
            }
        };
        match next {
            Next::After(delay) => {
                let due = now + delay;
                e.state = State::Waiting(due);
                g.heap.push(Reverse((due, job.peer)));
                drop(g);
                self.wake.notify_one();
            }
            Next::Finished => e.state = State::Finished,
            Next::Drop => e.state = State::Dropped(now + self.policy.cooldown),
        }
        recorded
    }

    /// Records an incoming visit. The peer is matched by (torrent, IP) to a known peer,
    /// preferring the announced listen port; otherwise it becomes a new peer with source
    /// `incoming`, scheduled for active revisits when it announced a listen port.
    pub fn record_incoming(
        &self,
        torrent: u32,
        ip: IpAddr,
        listen_port: Option<u16>,
        result: VisitResult,
    ) -> Recorded {
        let now = Instant::now();
        let mut g = self.inner.lock();
        let Some(threshold) = g.thresholds.get(torrent as usize).copied().flatten() else {
            return Recorded {
                peer_id: None,
                row: None,
                crossed_now: false,
            };
        };
        let ports = g.by_ip.get(&(torrent, ip)).cloned().unwrap_or_default();
        let port = match listen_port {
            Some(p) if ports.contains(&p) => p,
            _ if !ports.is_empty() => ports[0],
            Some(p) => p,
            None => 0,
        };
        let peer = PeerAddr {
            torrent,
            addr: SocketAddr::new(ip, port),
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = g.peers.entry(peer) {
            slot.insert(Entry::new(Source::Incoming, State::Parked));
            g.by_ip.entry((torrent, ip)).or_default().push(port);
        }
        let recorded = self.apply(&mut g, peer, threshold, result);
        let Some(e) = g.peers.get_mut(&peer) else {
            return recorded;
        };
        let complete = e.progress.complete(threshold);
        match e.state {
            State::Waiting(_) | State::Parked | State::Dropped(_) if complete => {
                e.state = State::Finished
            }
            State::Parked if port != 0 && e.progress.visits > 0 => {
                let due = now + self.policy.revisit_delay;
                e.state = State::Waiting(due);
                g.heap.push(Reverse((due, peer)));
                drop(g);
                self.wake.notify_one();
            }
            _ => {}
        }
        recorded
    }

    fn apply(
        &self,
        g: &mut Inner,
        peer: PeerAddr,
        threshold: u32,
        result: VisitResult,
    ) -> Recorded {
        let Some(e) = g.peers.get_mut(&peer) else {
            return Recorded {
                peer_id: None,
                row: None,
                crossed_now: false,
            };
        };
        let mut crossed_now = false;
        match result {
            VisitResult::Success {
                end_ms,
                pieces,
                with_state,
                client,
                client_v,
            } => {
                let before = e.progress.crossed_at;
                e.progress.success(end_ms, pieces, with_state, threshold);
                crossed_now = before.is_none() && e.progress.crossed_at.is_some();
                if client.is_some() {
                    e.client = client;
                }
                if client_v.is_some() {
                    e.client_v = client_v;
                }
                if e.db_id.is_none() {
                    e.db_id = Some(g.next_db_id);
                    g.next_db_id += 1;
                    e.geo = self.geo.as_ref().map(|geo| geo.lookup(peer.addr.ip()));
                    if let Some(pool) = &self.rdns {
                        pool.request(peer, peer.addr.ip());
                    }
                }
            }
            VisitResult::Failure => e.progress.failure(),
            VisitResult::Retry => {}
        }
        if crossed_now {
            g.confirmed += 1;
        }
        let e = &g.peers[&peer];
        Recorded {
            peer_id: e.db_id,
            row: e.db_id.and_then(|id| self.row(id, &peer, e)),
            crossed_now,
        }
    }

    fn row(&self, id: i64, peer: &PeerAddr, e: &Entry) -> Option<PeerRow> {
        let (first_ms, first_pieces) = e.progress.first?;
        let (last_ms, last_pieces) = e.progress.last?;
        Some(PeerRow {
            id,
            torrent_id: i64::from(peer.torrent) + 1,
            peer_key: self.keyer.key(&peer.addr),
            source: e.source.as_str(),
            client: e.client.as_ref().map(|c| c.0.clone()),
            client_version: e.client.as_ref().and_then(|c| c.1.clone()),
            client_v: e.client_v.clone(),
            first_seen: first_ms.div_euclid(1000),
            first_pieces,
            last_seen: last_ms.div_euclid(1000),
            last_pieces,
            max_speed: e.progress.max_speed,
            visits: e.progress.visits,
            failed_visits: e.progress.failed_visits,
            crossed_at: e.progress.crossed_at.map(|ms| ms.div_euclid(1000)),
            crossed_strict: e.progress.crossed_strict(),
            geo: e.geo.clone().unwrap_or_default(),
            network: self.store_prefix.then(|| network_of(&peer.addr.ip())),
            rdns_domain: e.domain.clone(),
        })
    }

    /// Sets the threshold of a torrent whose metadata just arrived and schedules the
    /// peers that were parked waiting for it.
    pub fn set_threshold(&self, torrent: u32, threshold: u32) {
        let now = Instant::now();
        let mut g = self.inner.lock();
        let Some(slot) = g.thresholds.get_mut(torrent as usize) else {
            return;
        };
        *slot = Some(threshold);
        let parked: Vec<PeerAddr> = g
            .peers
            .iter_mut()
            .filter(|(p, e)| p.torrent == torrent && e.state == State::Parked && p.addr.port() != 0)
            .map(|(p, e)| {
                e.state = State::Waiting(now);
                *p
            })
            .collect();
        for p in parked {
            g.heap.push(Reverse((now, p)));
        }
        drop(g);
        self.wake.notify_all();
    }

    /// Addresses of a torrent's peers parked while its metadata is pending (candidates
    /// for fetching that metadata), at most `max`.
    pub fn parked_peers(&self, torrent: u32, max: usize) -> Vec<SocketAddr> {
        let g = self.inner.lock();
        g.peers
            .iter()
            .filter(|(p, e)| p.torrent == torrent && e.state == State::Parked && p.addr.port() != 0)
            .map(|(p, _)| p.addr)
            .take(max)
            .collect()
    }

    /// Wakes every worker and makes [`Self::next_job`] return `None` from now on.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.wake.notify_all();
    }

    /// Counts for monitoring (walks the map; call every few seconds, not per visit).
    pub fn counts(&self) -> QueueCounts {
        let now = Instant::now();
        let g = self.inner.lock();
        let mut c = QueueCounts {
            known: g.peers.len() as u64,
            in_flight: g.in_flight,
            confirmed: g.confirmed,
            ..QueueCounts::default()
        };
        for e in g.peers.values() {
            match e.state {
                State::Waiting(due) if due <= now => c.due += 1,
                State::Finished => c.finished += 1,
                State::Dropped(_) => c.dropped += 1,
                _ => {}
            }
        }
        c
    }
}

/// The /24 (IPv4) or /48 (IPv6) network of an address, as text.
pub fn network_of(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reverse_dns_domains_reach_the_peer_row() {
        let resolver: crate::geo::rdns::Resolver =
            Arc::new(|_| Some("h-1.pool.example.net".into()));
        let (pool, results) =
            crate::geo::rdns::RdnsPool::start(resolver, 1, 100, Duration::from_secs(1));
        let q = queue(10_000, &[10]).with_rdns(pool);
        q.add(0, addr(8), Source::Tracker);
        let job = q.next_job().unwrap();
        assert_eq!(q.finish(&job, ok(1, 1)).row.unwrap().rdns_domain, None);
        let (peer, domain) = results.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!((peer, domain.as_deref()), (job.peer, Some("example.net")));
        assert_eq!(q.set_domain(&peer, domain.unwrap()), Some(1));
        let rec = q.record_incoming(0, addr(8).ip(), None, ok(2, 2));
        assert_eq!(rec.row.unwrap().rdns_domain.as_deref(), Some("example.net"));
    }

    #[test]
    fn networks_hide_the_host() {
        assert_eq!(network_of(&"81.2.69.160".parse().unwrap()), "81.2.69.0/24");
        assert_eq!(
            network_of(&"2001:db8:1:2::9".parse().unwrap()),
            "2001:db8:1::/48"
        );
    }
    use std::time::Duration;

    fn queue(revisit_ms: u64, backoff_ms: &[u64]) -> PeerQueue {
        let policy = Policy {
            revisit_delay: Duration::from_millis(revisit_ms),
            backoff: backoff_ms
                .iter()
                .map(|&m| Duration::from_millis(m))
                .collect(),
            cooldown: Duration::from_secs(3600),
        };
        PeerQueue::new(vec![Some(10), None], policy, PeerKeyer::new([0; 32]))
    }

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, i], 6881))
    }

    fn ok(pieces: u32, end_ms: i64) -> VisitResult {
        VisitResult::Success {
            end_ms,
            pieces,
            with_state: true,
            client: None,
            client_v: None,
        }
    }

    #[test]
    fn duplicates_and_unknown_torrents() {
        let q = queue(10, &[10]);
        assert_eq!(q.add(0, addr(2), Source::Tracker), Added::New);
        assert_eq!(q.add(0, addr(2), Source::Dht), Added::Duplicate);
        assert_eq!(
            q.add(1, addr(2), Source::Tracker),
            Added::New,
            "parked: metadata pending"
        );
        assert_eq!(q.add(7, addr(2), Source::Tracker), Added::Duplicate);
        assert_eq!(q.counts().known, 2);
    }

    #[test]
    fn leecher_is_revisited_until_it_crosses_once() {
        let q = queue(30, &[10]);
        q.add(0, addr(2), Source::Tracker);
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
        assert_eq!(q.counts().finished, 1);
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
    fn failures_back_off_then_drop_then_cool_down() {
        let q = queue(10, &[5, 5]);
        q.add(0, addr(3), Source::Tracker);
        for _ in 0..3 {
            let job = q.next_job().unwrap();
            let r = q.finish(&job, VisitResult::Failure);
            assert_eq!(r.peer_id, None);
        }
        assert_eq!(q.counts().dropped, 1);
        assert_eq!(q.add(0, addr(3), Source::Tracker), Added::CoolingDown);
    }

    #[test]
    fn incoming_peers_match_by_ip_and_are_counted_once() {
        let q = queue(10_000, &[10]);
        q.add(0, addr(4), Source::Tracker);
        let job = q.next_job().unwrap();
        q.finish(&job, ok(2, 1_000));
        // The same host connects in from another port and shows completion.
        let r = q.record_incoming(0, addr(4).ip(), None, ok(10, 5_000));
        assert_eq!(r.peer_id, Some(1), "matched to the known peer");
        assert!(r.crossed_now);
        let c = q.counts();
        assert_eq!((c.known, c.confirmed, c.finished), (1, 1, 1));
        // An unknown incoming peer with a listen port becomes a new, revisitable peer.
        let r = q.record_incoming(0, addr(5).ip(), Some(7000), ok(1, 1_000));
        assert_eq!(r.peer_id, Some(2));
        assert_eq!(r.row.unwrap().source, "incoming");
        assert_eq!(
            q.add(0, SocketAddr::from(([127, 0, 0, 5], 7000)), Source::Pex),
            Added::Duplicate
        );
    }

    #[test]
    fn parked_peers_are_released_when_metadata_arrives() {
        let q = queue(10, &[10]);
        q.add(1, addr(6), Source::Dht);
        q.add(1, addr(7), Source::Tracker);
        let mut parked = q.parked_peers(1, 10);
        parked.sort();
        assert_eq!(parked, vec![addr(6), addr(7)]);
        q.set_threshold(1, 5);
        let job = q.next_job().unwrap();
        assert_eq!((job.peer.torrent, job.threshold), (1, 5));
        assert!(q.parked_peers(1, 10).is_empty());
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
                0,
                SocketAddr::from(([127, 1, (i / 200) as u8, (i % 200) as u8 + 1], 1)),
                Source::Dht,
            );
        }
        assert!(crate::schedule::tests_support::eventually(|| q
            .counts()
            .in_flight
            == 0
            && q.counts().known == 200
            && q.counts().due == 0));
        q.close();
        let total: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(total, 200);
    }
}
