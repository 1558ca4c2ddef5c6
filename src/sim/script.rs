//! A simulated peer's script: how it talks ([`Kind`]) and its life ([`PeerScript`]),
//! from which the ground truth follows. Shared by the event loop that plays the scripts
//! ([`super::reactor`]) and the swarms that hold them ([`super::swarm`]).

use std::net::Ipv4Addr;

/// How a simulated peer behaves on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Fast extension: `have_all` when complete, `have_none` when empty, else a
    /// bitfield; haves as it progresses (libtorrent, qBittorrent).
    HaveAll,
    /// A bitfield (even an empty one), then a have per new piece.
    Bitfield,
    /// No bitfield while it has no piece (BEP 3 allows it), then haves.
    NoBitfield,
    /// Sends a whole new bitfield instead of haves, at most once per batch period.
    ResendBitfield,
    /// A bitfield, then its haves in batches once per batch period.
    BatchedHaves,
    /// Behind NAT: never listens, connects in to btda and names its (unreachable) port
    /// in the extended handshake's `p`.
    IncomingOnly,
    /// Shares its IP with the incoming-only peer before it in the mix (a home NAT):
    /// listens on the simulator's second port.
    NatGroup,
    /// Listed by the tracker, but its port is closed.
    ClosedPort,
    /// Accepts connections and never sends a byte.
    Silent,
    /// A downloading client that never falls quiet: a bitfield, then a have every
    /// 100 ms (a repeated one when no new piece came).
    StreamingHaves,
    /// Refuses a second concurrent connection from an IP it is already connected to
    /// (Transmission, qBittorrent, rtorrent, libtorrent's default); it also connects to
    /// btda itself, naming its real port in `p`.
    OneConnPerIp,
    /// Accepts a first contact, then refuses every connection for a while (a client at
    /// its connection limit), then accepts again.
    Busy,
    /// Sends only invalid bitfields (wrong length) until it is complete: its progress
    /// cannot be observed, so its completion is never confirmed.
    BadBitfield,
    /// Never answers a SYN (a host that is gone or firewalled): listed at the
    /// simulator's black-hole port, a listener whose accept queue is full, so every
    /// connect times out. 61 % of 2015's first contacts.
    NoSyn,
    /// Accepts, then closes the connection before any handshake (a client at its limit
    /// or blocking btda). 11 % of 2015's first contacts.
    CloseInHandshake,
    /// Accepts, then resets the connection. 1.4 % of 2015's first contacts.
    ResetInHandshake,
    /// Requires encryption (libtorrent's, Transmission's, qBittorrent's setting): closes
    /// a plaintext handshake at once, answers MSE/PE with RC4 only, and connects to btda
    /// with MSE itself; otherwise like `bitfield`.
    EncryptedOnly,
}

impl Kind {
    /// Every kind, for mixes and reports.
    pub const ALL: [Kind; 14] = [
        Kind::HaveAll,
        Kind::Bitfield,
        Kind::NoBitfield,
        Kind::ResendBitfield,
        Kind::BatchedHaves,
        Kind::IncomingOnly,
        Kind::NatGroup, // right after IncomingOnly: shares its IPs
        Kind::ClosedPort,
        Kind::Silent,
        Kind::StreamingHaves,
        Kind::OneConnPerIp,
        Kind::Busy,
        Kind::BadBitfield,
        Kind::EncryptedOnly,
    ];

    /// Whether it accepts connections.
    pub fn listens(self) -> bool {
        !matches!(self, Kind::IncomingOnly | Kind::ClosedPort | Kind::NoSyn)
    }

    /// Whether it connects to btda on its own.
    pub fn dials(self) -> bool {
        matches!(
            self,
            Kind::IncomingOnly | Kind::OneConnPerIp | Kind::EncryptedOnly
        )
    }

    /// Whether btda can ever learn its pieces (by connecting out or by being dialled).
    pub fn observable(self) -> bool {
        !matches!(
            self,
            Kind::ClosedPort
                | Kind::Silent
                | Kind::BadBitfield
                | Kind::NoSyn
                | Kind::CloseInHandshake
                | Kind::ResetInHandshake
        )
    }

    /// The kind named `name` ([`Self::name`]'s names, `no_syn` and the handshake
    /// failures included).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Kind::NoSyn, Kind::CloseInHandshake, Kind::ResetInHandshake])
            .find(|k| k.name() == name)
    }

    /// Its name in truth files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::HaveAll => "have_all",
            Kind::Bitfield => "bitfield",
            Kind::NoBitfield => "no_bitfield",
            Kind::ResendBitfield => "resend_bitfield",
            Kind::BatchedHaves => "batched_haves",
            Kind::IncomingOnly => "incoming_only",
            Kind::NatGroup => "nat_group",
            Kind::ClosedPort => "closed_port",
            Kind::Silent => "silent",
            Kind::StreamingHaves => "streaming_haves",
            Kind::OneConnPerIp => "one_conn_per_ip",
            Kind::Busy => "busy",
            Kind::BadBitfield => "bad_bitfield",
            Kind::EncryptedOnly => "encrypted_only",
            Kind::NoSyn => "no_syn",
            Kind::CloseInHandshake => "close_in_handshake",
            Kind::ResetInHandshake => "reset_in_handshake",
        }
    }
}

/// How long a peer must stay at or above T for its crossing to count as witnessable:
/// an ideal observer needs one look at it there.
pub const WITNESS_MS: u64 = 1_000;

/// What a run must make of a simulated peer (see [`PeerScript::expected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A witnessable crossing with time to spare: confirmed, or btda missed it.
    Must,
    /// A crossing btda may or may not witness (it left within the cadence's reach, or
    /// the peer's kind hides its pieces — then confirming it would be false).
    May,
    /// No crossing while present (or a hidden kind): confirming it would be false.
    MustNot,
}

/// One peer's life, times in milliseconds from the start of the swarm.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerScript {
    /// Its address (each peer on its own 127.x.y.z; the port is the simulator's).
    pub ip: Ipv4Addr,
    /// How it talks.
    pub kind: Kind,
    /// When it appears (listens, is listed by the tracker, dials).
    pub arrive_ms: u64,
    /// When it leaves.
    pub leave_ms: u64,
    /// Pieces at arrival.
    pub start_pieces: u32,
    /// Download rate, pieces per second.
    pub rate: f64,
    /// Whether the trackers list it; an untracked peer is announced on the swarm's DHT
    /// instead (when the swarm has one), so btda can only find it there.
    pub tracked: bool,
}

impl PeerScript {
    /// Pieces at `t_ms` (0 before arrival), out of `total`.
    pub fn pieces_at(&self, t_ms: u64, total: u32) -> u32 {
        if t_ms < self.arrive_ms {
            return 0;
        }
        let grown = self.rate * (t_ms - self.arrive_ms) as f64 / 1000.0;
        (f64::from(self.start_pieces) + grown).min(f64::from(total)) as u32
    }

    /// When it completes, if it does while present: the ground truth of a download.
    pub fn completes_at(&self, total: u32) -> Option<u64> {
        self.reaches_at(total)
    }

    /// When it reaches `pieces` while present, if it starts below them.
    fn reaches_at(&self, pieces: u32) -> Option<u64> {
        if self.start_pieces >= pieces || self.rate <= 0.0 {
            return None; // there from the start, or never progressing
        }
        let ms = self.arrive_ms
            + ((f64::from(pieces - self.start_pieces) / self.rate) * 1000.0).ceil() as u64;
        (ms < self.leave_ms).then_some(ms)
    }

    /// When it passes T (`threshold` pieces of `total`) while present, having been
    /// online below T before: the download btda's rule counts.
    pub fn crosses_at(&self, total: u32, threshold: u32) -> Option<u64> {
        self.reaches_at(threshold.min(total))
    }

    /// How long it stays online after passing T, ms.
    pub fn linger_ms(&self, total: u32, threshold: u32) -> Option<u64> {
        self.crosses_at(total, threshold)
            .map(|at| self.leave_ms.saturating_sub(at))
    }

    /// The time it refuses every connection (a busy peer: from `busy.0` after its
    /// arrival for `busy.1`, the simulator's `ReactorOptions::busy`), absolute ms.
    pub fn refusing(&self, busy: (u64, u64)) -> Option<(u64, u64)> {
        (self.kind == Kind::Busy).then(|| {
            let from = self.arrive_ms + busy.0;
            (from, from + busy.1)
        })
    }

    /// The longest stretch after it passes T during which it is online and accepts
    /// connections, ended at `until` (its departure or the run's end), ms.
    fn reachable_after_crossing(
        &self,
        total: u32,
        threshold: u32,
        busy: (u64, u64),
        until: u64,
    ) -> Option<u64> {
        let at = self.crosses_at(total, threshold)?;
        let end = self.leave_ms.min(until);
        let stretch = |a: u64, b: u64| b.saturating_sub(a);
        Some(match self.refusing(busy) {
            Some((from, to)) => stretch(at, end.min(from)).max(stretch(at.max(to), end)),
            None => stretch(at, end),
        })
    }

    /// Whether an ideal observer could confirm its download: its kind lets btda learn
    /// its pieces, it was online below T before crossing, and it stays at least a second
    /// at or above T after while accepting connections (`busy`: the simulator's busy
    /// window).
    pub fn witnessable(&self, total: u32, threshold: u32, busy: (u64, u64)) -> bool {
        self.kind.observable()
            && self
                .reachable_after_crossing(total, threshold, busy, u64::MAX)
                .is_some_and(|ms| ms >= WITNESS_MS)
    }

    /// What btda must make of this peer in a run that ended at `ended_ms`: a witnessable
    /// crossing after which the peer stays reachable at least `min_linger_ms` (before the
    /// run ends) must be confirmed; any other crossing while present may be (the peer
    /// left too soon after it for the cadence); a peer that never crossed while present,
    /// or whose kind hides its pieces, must not be.
    pub fn expected(
        &self,
        total: u32,
        threshold: u32,
        busy: (u64, u64),
        min_linger_ms: u64,
        ended_ms: u64,
    ) -> Expect {
        if !self.kind.observable() {
            return Expect::MustNot;
        }
        match self.reachable_after_crossing(total, threshold, busy, ended_ms) {
            None => Expect::MustNot,
            Some(ms) if ms >= min_linger_ms.max(WITNESS_MS) => Expect::Must,
            Some(_) => Expect::May,
        }
    }
}

/// Seeders and leechers present at `now`, and completions so far, from the scripts of
/// one torrent of `total` pieces: what its trackers report.
pub fn counts_at<'a>(
    lives: impl IntoIterator<Item = &'a PeerScript>,
    total: u32,
    now: u64,
) -> (u32, u32, u32) {
    let (mut seeders, mut leechers, mut done) = (0, 0, 0);
    for p in lives {
        if now >= p.arrive_ms && now < p.leave_ms {
            if p.pieces_at(now, total) >= total {
                seeders += 1;
            } else {
                leechers += 1;
            }
        }
        if p.completes_at(total).is_some_and(|ms| ms <= now) {
            done += 1;
        }
    }
    (seeders, leechers, done)
}
