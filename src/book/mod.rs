//! The peer book: who each peer is and what its visits showed.
//!
//! Identity (a peer is dialled at (IP, port); an incoming connection is matched by
//! (IP, BEP 10 `p`), else by the peer id of an earlier visit, else by IP when exactly one
//! known peer has it; one client seen under two addresses is joined by its peer id),
//! progress and crossings, database ids, geo and reverse-DNS enrichment and the keyed
//! hash that is a peer's only name on disk. It knows nothing of due times: the
//! scheduler ([`crate::schedule`]) does, and [`PeerQueue`] puts the two under one lock.

mod entries;
mod identity;
mod names;
mod punch;
mod queue;
mod sink;

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroI64;
use std::sync::Arc;

use hashbrown::HashTable;

pub use crate::counting::Progress;
pub use crate::schedule::Added;
use crate::schedule::Reason;
pub use identity::{PeerAddr, PeerKeyer, Source, is_dialable_global};
pub use queue::{Job, LockFigures, PeerQueue, QueueCounts};
pub use sink::{Offered, PeerSink};

use crate::store::PeerRow;
use crate::torrent::TorrentId;

/// The result of a visit, as the book and the scheduler need it.
#[derive(Debug, Clone, PartialEq)]
pub enum VisitResult {
    /// The peer answered.
    Success {
        /// The visit's observations in time order: (Unix ms, pieces) at the first
        /// piece-state message and at the end; one (the end, 0 pieces) for state `none`;
        /// none for state `invalid`.
        observations: Vec<(i64, u32)>,
        /// Whether any valid piece-state message arrived (false: state `none`/`invalid`).
        with_state: bool,
        /// Client decoded from the peer id (name, version).
        client: Option<(String, Option<String>)>,
        /// BEP 10 `v`.
        client_v: Option<String>,
        /// The peer id from the handshake (kept in memory only, to join addresses).
        peer_id: Option<[u8; 20]>,
    },
    /// Connect, handshake or protocol failure; `connected` when the TCP connection was
    /// made (a live peer whose handshake failed: retried sooner).
    Failure {
        /// The connection was made before the visit failed.
        connected: bool,
    },
    /// A failure on btda's side (shutdown, no file descriptors): retried without penalty.
    Retry,
    /// No visit of btda's: the peer reached btda by its own connection (a hole
    /// punch's other half), which was the visit. Nothing stored; scheduled as reached.
    Elsewhere,
    /// The handshake carried our own peer id.
    Myself,
}

/// What the caller must store after a visit.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recorded {
    /// Database id of the peer (None until its first observation).
    pub peer_id: Option<i64>,
    /// The updated `peer` row, when the peer has one.
    pub row: Option<PeerRow>,
    /// True if this visit made the peer a confirmed download.
    pub crossed_now: bool,
    /// Rows of other peers that changed with this visit (the peers at an IP that has
    /// just shown itself crowded: their incoming-only crossings leave the strict count).
    pub also: Vec<PeerRow>,
}

/// One known peer: where btda learned of it and, once it answered, what it showed.
/// Most listed peers never answer (61 % of 2015's first contacts timed out), so all
/// the rest is boxed and allocated at the first successful visit: a peer that never
/// answers costs 16 bytes here.
#[derive(Debug)]
struct Entry {
    source: Source,
    /// The `PEX_*` flags the latest PEX message naming it gave (0: none yet).
    pex_flags: u8,
    /// The peer known before it at the same (torrent, IP) ([`NONE`]: none), so that the
    /// IP index keeps one number per IP (held in the padding: the entry stays 16 bytes).
    earlier_at_ip: u32,
    seen: Option<Box<Seen>>,
}

/// No entry.
const NONE: u32 = u32::MAX;

/// What a peer showed by answering: 168 bytes, with no allocation of its own (client
/// names are shared, see [`names`]; the location is looked up again for each row, about
/// a microsecond, rather than kept: a campaign remembers hundreds of thousands of these).
#[derive(Debug, Default)]
struct Seen {
    progress: Progress,
    db_id: Option<NonZeroI64>,
    /// Client name and version decoded from the peer id, BEP 10 `v`.
    client: Option<Arc<names::Client>>,
    domain: Option<Box<str>>,
    /// Why the visit that witnessed the crossing happened, once one did.
    crossed_how: Option<Reason>,
    /// Successful visits that the peer made by connecting in.
    visits_in: u32,
}

impl Entry {
    fn new(source: Source) -> Self {
        Self {
            source,
            pex_flags: 0,
            earlier_at_ip: NONE,
            seen: None,
        }
    }

    /// Its database id, once it has a row.
    fn db_id(&self) -> Option<i64> {
        self.seen
            .as_ref()
            .and_then(|s| s.db_id)
            .map(NonZeroI64::get)
    }
}

/// Own external addresses remembered at most (from `yourip` and trackers).
const MAX_OWN_IPS: usize = 16;

/// Every known peer's identity and progress. Not synchronised: [`PeerQueue`] holds it
/// under its lock.
pub(crate) struct PeerBook {
    /// Every known peer, in the order it became known: its index is its id (the
    /// scheduler's key), so no second map from address to id is needed.
    entries: entries::Entries<Entry>,
    /// The latest known peer at each (torrent, IP), as an index into `entries`; the
    /// others at that IP follow from it through [`Entry::earlier_at_ip`]. Four bytes per
    /// IP (a map from (torrent, IP) to ports took 40: 75 of the ~205 bytes of each
    /// tracked peer at a million).
    by_ip: HashTable<u32>,
    /// Hashes (torrent, IP) for `by_ip`.
    ip_hasher: RandomState,
    /// The peer (its index in `entries`) that first gave each peer id: 28 bytes a
    /// bucket, where the address itself took 60.
    by_id: HashMap<(TorrentId, [u8; 20]), u32>,
    alias: HashMap<PeerAddr, PeerAddr>,
    own_ips: HashSet<IpAddr>,
    own: HashSet<SocketAddr>,
    own_port: u16,
    keyer: PeerKeyer,
    geo: Option<std::sync::Arc<crate::geo::Geo>>,
    store_prefix: bool,
    rdns: Option<crate::geo::rdns::RdnsPool<PeerAddr>>,
    /// The next database id, from 1.
    next_db_id: i64,
    /// Client names, shared between the peers that give them.
    names: names::Names,
    confirmed: u64,
    /// Most distinct peers one IP may be per torrent (a NAT or CGNAT hosts a few clients
    /// in one swarm, not hundreds): one address cannot fake many downloads.
    max_per_ip: usize,
    /// Identities not created because their IP already had that many.
    crowded_refused: u64,
    /// (torrent, IP) pairs that reached the bound; bounded by known peers / the bound.
    crowded: HashSet<(TorrentId, IpAddr)>,
    /// The pair that became crowded last, until [`Self::take_newly_crowded`].
    newly_crowded: Option<(TorrentId, IpAddr)>,
    /// Known peers whose latest PEX flags have bit `i` set (encryption, seed, uTP,
    /// holepunch, reachable).
    pex_flag_counts: [u64; 5],
}

impl PeerBook {
    /// An empty book whose peers are keyed on disk with `keyer`.
    pub(crate) fn new(keyer: PeerKeyer) -> Self {
        Self {
            entries: entries::Entries::default(),
            by_ip: HashTable::new(),
            ip_hasher: RandomState::new(),
            by_id: HashMap::new(),
            alias: HashMap::new(),
            own_ips: HashSet::new(),
            own: HashSet::new(),
            own_port: 0,
            keyer,
            geo: None,
            store_prefix: false,
            rdns: None,
            next_db_id: 1,
            names: names::Names::default(),
            confirmed: 0,
            max_per_ip: usize::MAX,
            crowded_refused: 0,
            crowded: HashSet::new(),
            newly_crowded: None,
            pex_flag_counts: [0; 5],
        }
    }

    /// Looks peers up in `geo` at their first observation; with `store_prefix` records
    /// their /24 or /48 network.
    pub(crate) fn set_geo(&mut self, geo: std::sync::Arc<crate::geo::Geo>, store_prefix: bool) {
        self.geo = Some(geo);
        self.store_prefix = store_prefix;
    }

    /// Asks `pool` for each peer's domain at its first observation.
    pub(crate) fn set_rdns(&mut self, pool: crate::geo::rdns::RdnsPool<PeerAddr>) {
        self.rdns = Some(pool);
    }

    /// Our listen port, and our listen address when it is a specific one.
    pub(crate) fn set_own(&mut self, port: u16, ip: Option<IpAddr>) {
        self.own_port = port;
        if let Some(ip) = ip.filter(|ip| !ip.is_unspecified()) {
            self.own_ips.insert(ip);
        }
    }

    /// Remembers an external address of ours (BEP 10 `yourip`, a tracker's `external
    /// ip`); at most a few are kept, so a lying peer cannot grow the set.
    pub(crate) fn learn_own_ip(&mut self, ip: IpAddr) {
        if self.own_ips.len() < MAX_OWN_IPS {
            self.own_ips.insert(ip);
        }
    }

    /// Remembers an address that answered with our own peer id.
    pub(crate) fn mark_ours(&mut self, addr: SocketAddr) {
        if self.own.len() < 1024 {
            self.own.insert(addr);
        }
    }

    /// Whether `addr` is ours: an address that answered with our peer id, or one of our
    /// IPs with our listen port.
    pub(crate) fn is_ours(&self, addr: &SocketAddr) -> bool {
        self.own.contains(addr)
            || (self.own_port != 0
                && addr.port() == self.own_port
                && self.own_ips.contains(&addr.ip()))
    }

    /// At most `n` distinct peers per IP and torrent from now on.
    pub(crate) fn set_max_per_ip(&mut self, n: usize) {
        self.max_per_ip = n.max(1);
    }

    /// The rows of the peers at the (torrent, IP) that became crowded since the last
    /// call, if one did (to be written again: the strict count changed for them).
    pub(crate) fn take_newly_crowded(&mut self) -> Vec<PeerRow> {
        let Some((torrent, ip)) = self.newly_crowded.take() else {
            return Vec::new();
        };
        self.at_ip(torrent, ip)
            .filter_map(|index| {
                let (peer, e) = self.entries.get_index(index as usize)?;
                self.row(e.db_id()?, &peer, e)
            })
            .collect()
    }

    /// Identities refused so far because their IP already had the most peers allowed.
    pub(crate) fn crowded_refused(&self) -> u64 {
        self.crowded_refused
    }

    /// Adds a peer if unknown; returns its id and whether it was new, or `None` when its
    /// IP already is the most peers allowed for the torrent (counted). Ids are dense from
    /// 0 and never reused (peers are not forgotten during a run).
    pub(crate) fn know(&mut self, peer: PeerAddr, source: Source) -> Option<(u32, bool)> {
        if let Some(id) = self.id(&peer) {
            return Some((id, false));
        }
        if self.peers_at(peer.torrent, peer.addr.ip()) >= self.max_per_ip {
            self.crowded_refused += 1;
            if self.crowded.insert((peer.torrent, peer.addr.ip())) {
                self.newly_crowded = Some((peer.torrent, peer.addr.ip()));
            }
            return None;
        }
        let index = id_of_index(self.entries.insert_full(peer, Entry::new(source)));
        let place = (peer.torrent, peer.addr.ip());
        let hash = self.ip_hasher.hash_one(place);
        let Self {
            entries,
            by_ip,
            ip_hasher,
            ..
        } = self;
        let same = |i: &u32| entries.place(*i as usize) == Some(place);
        let earlier = if let Some(latest) = by_ip.find_mut(hash, same) {
            std::mem::replace(latest, index)
        } else {
            let rehash = |i: &u32| {
                entries
                    .place(*i as usize)
                    .map_or(0, |place| ip_hasher.hash_one(place))
            };
            by_ip.insert_unique(hash, index, rehash);
            NONE
        };
        if let Some(e) = self.entries.get_index_mut(index as usize) {
            e.earlier_at_ip = earlier;
        }
        Some((index, true))
    }

    /// Records the flags a PEX message gave peer `id` (the latest wins); the counts per
    /// flag follow.
    pub(crate) fn set_pex_flags(&mut self, id: u32, flags: u8) {
        let Some(e) = self.entries.get_index_mut(id as usize) else {
            return;
        };
        let old = std::mem::replace(&mut e.pex_flags, flags);
        for (bit, count) in self.pex_flag_counts.iter_mut().enumerate() {
            match (old >> bit & 1, flags >> bit & 1) {
                (0, 1) => *count += 1,
                (1, 0) => *count = count.saturating_sub(1),
                _ => {}
            }
        }
    }

    /// The flags PEX last gave peer `id` (for scheduling: uTP, holepunch, reachable;
    /// the next step of issue 25).
    #[cfg(test)]
    pub(crate) fn pex_flags(&self, id: u32) -> u8 {
        self.entries
            .get_index(id as usize)
            .map_or(0, |(_, e)| e.pex_flags)
    }

    /// Known peers per PEX flag (encryption, seed, uTP, holepunch, reachable).
    pub(crate) fn pex_flag_counts(&self) -> [u64; 5] {
        self.pex_flag_counts
    }

    /// The id of one of our own addresses, given so that the scheduler can mark it; it
    /// is not indexed by IP, so incoming connections are never matched to it by IP.
    pub(crate) fn know_ours(&mut self, peer: PeerAddr, source: Source) -> u32 {
        match self.id(&peer) {
            Some(id) => id,
            None => id_of_index(self.entries.insert_full(peer, Entry::new(source))),
        }
    }

    /// The id of a known peer.
    pub(crate) fn id(&self, peer: &PeerAddr) -> Option<u32> {
        self.entries.get_index_of(peer).map(id_of_index)
    }

    /// The peer with id `id`.
    pub(crate) fn peer(&self, id: u32) -> Option<PeerAddr> {
        self.entries.get_index(id as usize).map(|(p, _)| p)
    }

    /// Known peers of `torrent` at `ip` (several behind a NAT).
    pub(crate) fn peers_at(&self, torrent: TorrentId, ip: IpAddr) -> usize {
        self.at_ip(torrent, ip).count()
    }

    /// The indices of the known peers of `torrent` at `ip`, latest first.
    fn at_ip(&self, torrent: TorrentId, ip: IpAddr) -> impl Iterator<Item = u32> + '_ {
        let place = (torrent, ip);
        let latest = self
            .by_ip
            .find(self.ip_hasher.hash_one(place), |i| {
                self.entries.place(*i as usize) == Some(place)
            })
            .copied()
            .unwrap_or(NONE);
        std::iter::successors(Some(latest).filter(|&i| i != NONE), |&i| {
            self.entries
                .get_index(i as usize)
                .map(|(_, e)| e.earlier_at_ip)
                .filter(|&earlier| earlier != NONE)
        })
    }

    /// The peer whose progress `peer`'s visits count for (itself, or the address of the
    /// same client it was joined to).
    pub(crate) fn canonical(&self, peer: PeerAddr) -> PeerAddr {
        self.alias.get(&peer).copied().unwrap_or(peer)
    }

    /// The known peer an incoming connection from `ip` belongs to, or a new one (source
    /// `incoming`, at (ip, `p`) or (ip, 0)). Matched by (IP, `p`), else by the peer id
    /// of an earlier visit, else by IP alone only when exactly one known peer has that
    /// IP and no `p` names another port (a client that randomises its peer id per
    /// connection then still lands on its row). Returns the peer and whether it is new;
    /// `None` when it would be new and its IP already has the most peers allowed.
    pub(crate) fn match_incoming(
        &mut self,
        torrent: TorrentId,
        ip: IpAddr,
        p: Option<u16>,
        peer_id: Option<[u8; 20]>,
    ) -> Option<(PeerAddr, bool)> {
        let at = |port| PeerAddr {
            torrent,
            addr: SocketAddr::new(ip, port),
        };
        if let Some(port) = p.filter(|&port| port != 0)
            && self.entries.contains_key(&at(port))
        {
            return Some((self.canonical(at(port)), false));
        }
        if let Some(id) = peer_id
            && let Some(known) = self.by_id.get(&(torrent, id)).and_then(|&i| self.peer(i))
        {
            return Some((self.canonical(known), false));
        }
        if p.is_none() {
            let mut known = self.at_ip(torrent, ip);
            if let (Some(only), None) = (known.next(), known.next())
                && let Some(peer) = self.peer(only)
            {
                return Some((self.canonical(peer), false));
            }
        }
        let peer = at(p.unwrap_or(0));
        let (_, new) = self.know(peer, Source::Incoming)?;
        Some((self.canonical(peer), new))
    }

    /// Records a visit of `peer` (an address as dialled or matched), made for `reason`.
    /// A peer id seen before under another address of the same torrent joins this
    /// address to that peer when this address has no observation of its own yet.
    /// Returns what to store, the peer the visit counted for, and whether the address
    /// was joined now.
    pub(crate) fn record(
        &mut self,
        peer: PeerAddr,
        threshold: u32,
        result: &VisitResult,
        reason: Reason,
    ) -> (Recorded, PeerAddr, bool) {
        let mut canon = self.canonical(peer);
        let mut joined = false;
        if let VisitResult::Success {
            peer_id: Some(id), ..
        } = result
        {
            let key = (peer.torrent, *id);
            match self
                .by_id
                .get(&key)
                .and_then(|&i| self.peer(i))
                .map(|k| self.canonical(k))
            {
                Some(other)
                    if other != canon
                        && self
                            .entries
                            .get(&canon)
                            .is_some_and(|e| e.db_id().is_none()) =>
                {
                    self.alias.insert(peer, other);
                    canon = other;
                    joined = true;
                }
                Some(_) => {}
                None => {
                    if let Some(index) = self.id(&canon) {
                        self.by_id.insert(key, index);
                    }
                }
            }
        }
        let Some(e) = self.entries.get_mut(&canon) else {
            return (Recorded::default(), canon, joined);
        };
        let mut crossed_now = false;
        match result {
            VisitResult::Success {
                observations,
                with_state,
                client,
                client_v,
                ..
            } => {
                let s = e.seen.get_or_insert_with(Box::default);
                let before = s.progress.crossed_at;
                s.progress.success(observations, *with_state, threshold);
                crossed_now = before.is_none() && s.progress.crossed_at.is_some();
                if crossed_now {
                    s.crossed_how = Some(reason);
                }
                s.visits_in += u32::from(reason == Reason::Incoming);
                self.names
                    .update(&mut s.client, client.as_ref(), client_v.as_deref());
                if s.db_id.is_none() && s.progress.first.is_some() {
                    s.db_id = NonZeroI64::new(self.next_db_id);
                    self.next_db_id += 1;
                    if let Some(pool) = &self.rdns {
                        pool.request(canon, canon.addr.ip());
                    }
                }
            }
            // Counted once the peer has a row: an earlier failed visit's row has no peer
            // id, so `failed_visits` always equals the failed rows that name the peer.
            VisitResult::Failure { .. } => {
                if let Some(s) = e.seen.as_mut().filter(|s| s.db_id.is_some()) {
                    s.progress.failure();
                }
            }
            VisitResult::Retry | VisitResult::Myself | VisitResult::Elsewhere => {}
        }
        if crossed_now {
            self.confirmed += 1;
        }
        let Some(e) = self.entries.get(&canon) else {
            return (Recorded::default(), canon, joined);
        };
        let recorded = Recorded {
            peer_id: e.db_id(),
            row: e.db_id().and_then(|id| self.row(id, &canon, e)),
            crossed_now,
            also: Vec::new(),
        };
        (recorded, canon, joined)
    }

    /// Whether `peer`'s latest observation is at or above T.
    pub(crate) fn complete(&self, peer: PeerAddr, threshold: u32) -> bool {
        self.entries
            .get(&self.canonical(peer))
            .and_then(|e| e.seen.as_ref())
            .is_some_and(|s| s.progress.complete(threshold))
    }

    /// How long from `now_ms` (Unix ms) until `peer`'s own rate makes it pass T; None
    /// when it is at or above T or has no measured rate.
    pub(crate) fn eta(
        &self,
        peer: PeerAddr,
        threshold: u32,
        now_ms: i64,
    ) -> Option<std::time::Duration> {
        self.entries
            .get(&self.canonical(peer))
            .and_then(|e| e.seen.as_ref())
            .and_then(|s| s.progress.eta_from(now_ms, threshold))
    }

    /// Records a peer's reverse-DNS domain; returns its database id for an update.
    pub(crate) fn set_domain(&mut self, peer: &PeerAddr, domain: String) -> Option<i64> {
        let s = self.entries.get_mut(peer)?.seen.as_mut()?;
        s.domain = Some(domain.into_boxed_str());
        s.db_id.map(NonZeroI64::get)
    }

    /// Confirmed downloads so far.
    pub(crate) fn confirmed(&self) -> u64 {
        self.confirmed
    }

    fn row(&self, id: i64, peer: &PeerAddr, e: &Entry) -> Option<PeerRow> {
        let s = e.seen.as_ref()?;
        let (first_ms, first_pieces) = s.progress.first?;
        let (last_ms, last_pieces) = s.progress.last?;
        Some(PeerRow {
            id,
            torrent_id: peer.torrent.db_id(),
            peer_key: self.keyer.key(&peer.addr),
            source: e.source.as_str(),
            client: s
                .client
                .as_ref()
                .and_then(|c| c.name.as_deref().map(str::to_string)),
            client_version: s
                .client
                .as_ref()
                .and_then(|c| c.version.as_deref().map(str::to_string)),
            client_v: s
                .client
                .as_ref()
                .and_then(|c| c.v.as_deref().map(str::to_string)),
            first_seen: first_ms.div_euclid(1000),
            first_pieces,
            last_seen: last_ms.div_euclid(1000),
            last_pieces,
            max_speed: s.progress.max_speed,
            visits: s.progress.visits,
            failed_visits: s.progress.failed_visits,
            crossed_at: s.progress.crossed_at.map(|ms| ms.div_euclid(1000)),
            // The strict count leaves out a crossing seen only through connections from
            // an IP that tried to be more peers than allowed.
            crossed_strict: s.progress.crossed_strict()
                && !(s.visits_in == s.progress.visits
                    && self.crowded.contains(&(peer.torrent, peer.addr.ip()))),
            crossed_how: s.crossed_how.map(Reason::as_str),
            crossed_within: s.crossed_how.map(|_| s.progress.crossed_within_visit),
            predicted_at: s.progress.predicted_ms.map(|ms| ms.div_euclid(1000)),
            visits_in: s.visits_in,
            geo: self
                .geo
                .as_ref()
                .map(|geo| geo.lookup(peer.addr.ip()))
                .unwrap_or_default(),
            network: self.store_prefix.then(|| network_of(&peer.addr.ip())),
            rdns_domain: s.domain.as_deref().map(str::to_string),
        })
    }
}

/// A peer id from an index of the book (more than 4 billion peers in one run cannot
/// be tracked in memory anyway).
fn id_of_index(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// The /24 (IPv4) or /48 (IPv6) network of an address, as text.
pub(crate) fn network_of(ip: &IpAddr) -> String {
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

    fn peer(ip: [u8; 4], port: u16) -> PeerAddr {
        PeerAddr {
            torrent: TorrentId::new(0),
            addr: SocketAddr::from((ip, port)),
        }
    }

    fn seen(pieces: u32, at: i64, id: u8) -> VisitResult {
        VisitResult::Success {
            observations: vec![(at, pieces)],
            with_state: true,
            client: None,
            client_v: None,
            peer_id: Some([id; 20]),
        }
    }

    #[test]
    fn an_answered_peer_costs_one_small_box_and_shares_its_client_names() {
        // What a campaign's memory grows by per answered peer (issue 26's churning
        // soak): 384 bytes and three strings of its own before.
        assert!(
            std::mem::size_of::<Seen>() <= 168,
            "{}",
            std::mem::size_of::<Seen>()
        );
        let mut b = PeerBook::new(PeerKeyer::new([0; 32]));
        let client = |id: u8| VisitResult::Success {
            observations: vec![(1_000, 5)],
            with_state: true,
            client: Some(("qBittorrent".to_string(), Some("4.6.2".to_string()))),
            client_v: Some("qBittorrent/4.6.2".to_string()),
            peer_id: Some([id; 20]),
        };
        let (a, c) = (peer([81, 2, 69, 1], 6881), peer([81, 2, 69, 2], 6881));
        b.know(a, Source::Tracker);
        b.know(c, Source::Tracker);
        let (ra, _, _) = b.record(a, 10, &client(1), Reason::First);
        b.record(c, 10, &client(2), Reason::First);
        let row = ra.row.unwrap();
        assert_eq!(row.client.as_deref(), Some("qBittorrent"));
        assert_eq!(row.client_version.as_deref(), Some("4.6.2"));
        assert_eq!(row.client_v.as_deref(), Some("qBittorrent/4.6.2"));
        fn shared(b: &PeerBook, p: &PeerAddr) -> Arc<names::Client> {
            let seen = b.entries.get(p).unwrap().seen.as_ref().unwrap();
            Arc::clone(seen.client.as_ref().unwrap())
        }
        assert!(Arc::ptr_eq(&shared(&b, &a), &shared(&b, &c)));
        // A later visit without BEP 10 keeps `v`; a new version replaces the old one.
        let newer = VisitResult::Success {
            observations: vec![(2_000, 6)],
            with_state: true,
            client: Some(("qBittorrent".to_string(), Some("5.0.0".to_string()))),
            client_v: None,
            peer_id: Some([1; 20]),
        };
        let row = b.record(a, 10, &newer, Reason::First).0.row.unwrap();
        assert_eq!(row.client_version.as_deref(), Some("5.0.0"));
        assert_eq!(row.client_v.as_deref(), Some("qBittorrent/4.6.2"));
        assert!(!Arc::ptr_eq(&shared(&b, &a), &shared(&b, &c)));
    }

    #[test]
    fn every_row_of_a_located_peer_carries_its_location() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo");
        let geo = crate::geo::Geo::open(
            &[fixtures.join("GeoIP2-City-Test.mmdb")],
            &[fixtures.join("GeoLite2-ASN-Test.mmdb")],
            false,
        );
        let mut b = PeerBook::new(PeerKeyer::new([0; 32]));
        b.set_geo(std::sync::Arc::new(geo), false);
        let p = peer([81, 2, 69, 160], 6881);
        b.know(p, Source::Tracker);
        for (at, pieces) in [(1_000, 5), (2_000, 9)] {
            let (r, _, _) = b.record(p, 10, &seen(pieces, at, 1), Reason::First);
            let row = r.row.unwrap();
            assert_eq!(row.geo.country.as_deref(), Some("GB"), "{row:?}");
            assert_eq!(row.last_pieces, pieces);
        }
    }

    #[test]
    fn the_ip_index_knows_every_peer_at_an_ip_per_torrent_and_crowds_at_the_bound() {
        let mut b = PeerBook::new(PeerKeyer::new([0; 32]));
        b.set_max_per_ip(3);
        let ip: IpAddr = [81, 2, 69, 1].into();
        let other = TorrentId::new(1);
        for port in [1000, 1001, 1002] {
            assert!(
                b.know(peer([81, 2, 69, 1], port), Source::Tracker)
                    .is_some()
            );
        }
        // Other IPs and the same IP in another torrent are apart.
        for i in 0..2_000u16 {
            b.know(
                peer([82, 0, (i >> 8) as u8, i as u8], 6881),
                Source::Tracker,
            );
        }
        let elsewhere = PeerAddr {
            torrent: other,
            addr: SocketAddr::new(ip, 1000),
        };
        b.know(elsewhere, Source::Tracker);
        assert_eq!(b.peers_at(TorrentId::new(0), ip), 3);
        assert_eq!(b.peers_at(other, ip), 1);
        assert_eq!(b.peers_at(TorrentId::new(0), [81, 2, 69, 2].into()), 0);
        let ports: Vec<u16> = b
            .at_ip(TorrentId::new(0), ip)
            .filter_map(|i| b.peer(i))
            .map(|p| p.addr.port())
            .collect();
        assert_eq!(ports, [1002, 1001, 1000], "latest first");
        // A fourth identity at the IP is refused; the rows of the three are rewritten.
        for (port, at) in [(1000, 1_000), (1002, 2_000)] {
            b.record(
                peer([81, 2, 69, 1], port),
                10,
                &seen(5, at, port as u8),
                Reason::First,
            );
        }
        assert_eq!(b.know(peer([81, 2, 69, 1], 1003), Source::Tracker), None);
        assert_eq!(b.crowded_refused(), 1);
        let rows = b.take_newly_crowded();
        assert_eq!(rows.len(), 2, "the two with a row: {rows:?}");
        // An incoming connection without `p` from an IP with one known peer is that peer.
        let (matched, new) = b.match_incoming(other, ip, None, None).unwrap();
        assert_eq!((matched, new), (elsewhere, false));
    }

    #[test]
    fn networks_hide_the_host() {
        assert_eq!(network_of(&"81.2.69.160".parse().unwrap()), "81.2.69.0/24");
        assert_eq!(
            network_of(&"2001:db8:1:2::9".parse().unwrap()),
            "2001:db8:1::/48"
        );
    }

    #[test]
    fn incoming_peers_behind_one_nat_are_told_apart() {
        let mut b = PeerBook::new(PeerKeyer::new([0; 32]));
        let nat = [127, 5, 0, 1];
        b.know(peer(nat, 6881), Source::Tracker);
        b.know(peer(nat, 7000), Source::Tracker);
        b.record(peer(nat, 6881), 10, &seen(1, 1, 1), Reason::First);
        // `p` names the second peer.
        assert_eq!(
            b.match_incoming(TorrentId::new(0), nat.into(), Some(7000), Some([2; 20])),
            Some((peer(nat, 7000), false))
        );
        // No `p`, but the peer id of an earlier visit.
        assert_eq!(
            b.match_incoming(TorrentId::new(0), nat.into(), None, Some([1; 20])),
            Some((peer(nat, 6881), false))
        );
        // Neither: two known peers share the IP, so it is a new peer, not a guess.
        assert_eq!(
            b.match_incoming(TorrentId::new(0), nat.into(), None, Some([3; 20])),
            Some((peer(nat, 0), true))
        );
        // An unknown `p` is a new peer at that port.
        assert_eq!(
            b.match_incoming(TorrentId::new(0), nat.into(), Some(9000), Some([4; 20])),
            Some((peer(nat, 9000), true))
        );
    }

    #[test]
    fn one_known_peer_on_an_ip_matches_by_ip_unless_p_names_another_port() {
        let mut b = PeerBook::new(PeerKeyer::new([0; 32]));
        let ip = [127, 6, 0, 1];
        b.know(peer(ip, 6881), Source::Tracker);
        b.record(peer(ip, 6881), 10, &seen(1, 1, 1), Reason::First);
        assert_eq!(
            b.match_incoming(TorrentId::new(0), ip.into(), None, Some([9; 20])),
            Some((peer(ip, 6881), false)),
            "a randomised peer id falls back to the address"
        );
        assert_eq!(
            b.match_incoming(TorrentId::new(0), ip.into(), Some(7000), Some([9; 20])),
            Some((peer(ip, 7000), true)),
            "another client behind the same IP names its own port"
        );
    }

    #[test]
    fn one_client_under_two_addresses_counts_once() {
        let mut b = PeerBook::new(PeerKeyer::new([0; 32]));
        let v4 = peer([127, 7, 0, 1], 6881);
        let other = peer([127, 7, 0, 2], 6881);
        b.know(v4, Source::Tracker);
        b.know(other, Source::Dht);
        let (r, _, joined) = b.record(v4, 10, &seen(2, 1_000, 7), Reason::First);
        assert_eq!((r.peer_id, joined), (Some(1), false));
        let (r, canon, joined) = b.record(other, 10, &seen(10, 2_000, 7), Reason::Fixed);
        assert_eq!(
            (canon, joined, r.peer_id, r.crossed_now),
            (v4, true, Some(1), true)
        );
        assert_eq!(b.confirmed(), 1);
        let (r, canon, _) = b.record(other, 10, &seen(10, 3_000, 7), Reason::Fixed);
        assert_eq!((canon, r.crossed_now, b.confirmed()), (v4, false, 1));
        // An incoming connection from a third address with the same id: the same peer.
        assert_eq!(
            b.match_incoming(
                TorrentId::new(0),
                [127, 7, 0, 3].into(),
                None,
                Some([7; 20])
            ),
            Some((v4, false))
        );
    }

    #[test]
    fn own_addresses_and_invalid_visits() {
        let mut b = PeerBook::new(PeerKeyer::new([0; 32]));
        b.set_own(6881, Some("0.0.0.0".parse().unwrap()));
        assert!(!b.is_ours(&"1.2.3.4:6881".parse().unwrap()));
        b.learn_own_ip("1.2.3.4".parse().unwrap());
        assert!(b.is_ours(&"1.2.3.4:6881".parse().unwrap()));
        assert!(!b.is_ours(&"1.2.3.4:6882".parse().unwrap()));
        let p = peer([127, 8, 0, 1], 1);
        b.know(p, Source::Pex);
        let invalid = VisitResult::Success {
            observations: vec![],
            with_state: false,
            client: None,
            client_v: None,
            peer_id: None,
        };
        let (r, _, _) = b.record(p, 10, &invalid, Reason::First);
        assert_eq!(r, Recorded::default(), "no observation, no row");
    }
}
