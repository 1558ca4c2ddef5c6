//! A simulated swarm with known truth: peers with scripted lives (arrival, pieces at
//! arrival, download rate, departure, behaviour) served by the event-loop simulator
//! ([`super::reactor`]), behind fake HTTP and UDP trackers that list whoever is present
//! and report the swarm's real seeder, leecher and completion counts. The ground truth —
//! which peers complete while present, and when — follows from the scripts alone and is
//! written out by [`Swarm::truth_tsv`].

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::fake_tracker::{FakeHttpTracker, FakeUdpTracker, HttpBehaviour, UdpBehaviour};
use super::reactor::{Reactor, ReactorOptions, SimTorrent};
pub use super::script::{Kind, PeerScript, counts_at};
use crate::dht::node::{DhtNode, NodeSettings};
use crate::shutdown::Shutdown;

/// Trackers of one simulated torrent.
#[derive(Debug, Clone, Copy)]
pub struct TrackerAddrs {
    /// The HTTP tracker's address (port 0 picks one).
    pub http: SocketAddr,
    /// A UDP tracker too, if any.
    pub udp: Option<SocketAddr>,
}

/// A running simulated swarm: every torrent's trackers, the simulator's threads, and
/// optionally a loopback DHT on which the untracked peers are announced.
pub struct Swarm {
    /// The simulator serving every peer (its threads).
    pub reactor: Reactor,
    /// Each torrent's HTTP tracker.
    pub http: Vec<FakeHttpTracker>,
    /// Each torrent's UDP tracker, where it has one.
    pub udp: Vec<Option<FakeUdpTracker>>,
    /// The DHT router btda can bootstrap from, when the swarm has a DHT.
    pub dht_router: Option<SocketAddr>,
    dht: Vec<DhtNode>,
    torrents: Vec<SimTorrent>,
    /// Stops the DHT nodes.
    stop: Shutdown,
}

impl Swarm {
    /// Starts the simulator and each torrent's trackers (`trackers[i]` for torrent `i`).
    pub fn start(
        torrents: Vec<SimTorrent>,
        trackers: &[TrackerAddrs],
        options: ReactorOptions,
    ) -> std::io::Result<Self> {
        let reactor = Reactor::start(torrents.clone(), options)?;
        let mut http = Vec::new();
        let mut udp = Vec::new();
        for (t, addrs) in trackers.iter().enumerate().take(torrents.len()) {
            let shared = reactor.present[t].clone();
            http.push(FakeHttpTracker::start(
                addrs.http,
                HttpBehaviour::Dynamic(shared.clone()),
            )?);
            udp.push(match addrs.udp {
                Some(a) => Some(FakeUdpTracker::start(a, UdpBehaviour::Dynamic(shared))?),
                None => None,
            });
        }
        Ok(Self {
            reactor,
            http,
            udp,
            dht_router: None,
            dht: Vec::new(),
            torrents,
            stop: Shutdown::new(),
        })
    }

    /// Starts a loopback DHT: a router node on `router`, and one node on the address of
    /// each untracked listening peer (at most `max_per_torrent` a torrent) that
    /// announces that peer. Returns how many peers were announced.
    pub fn start_dht(
        &mut self,
        router: SocketAddr,
        max_per_torrent: usize,
    ) -> std::io::Result<usize> {
        let settings = NodeSettings {
            alpha: 3,
            query_timeout: Duration::from_millis(500),
            max_queries: 100,
            rate_per_sec: 1000,
        };
        let node = |addr: SocketAddr| {
            DhtNode::start(
                addr,
                rand::random(),
                &[],
                settings.clone(),
                self.stop.clone(),
            )
        };
        let first = node(router)?;
        let router = first.local_addr()?;
        self.dht.push(first);
        let mut announced = 0;
        let mut per_torrent = Vec::new();
        for t in &self.torrents {
            let untracked: Vec<&PeerScript> = t
                .lives
                .iter()
                .filter(|p| !p.tracked && p.kind.listens())
                .take(max_per_torrent)
                .collect();
            per_torrent.push(untracked.len());
            for p in untracked {
                let n = node(SocketAddr::from((p.ip, 0)))?;
                n.bootstrap(&[router]);
                self.dht.push(n);
            }
        }
        // Announce once every node has joined, so the closest nodes are known.
        let mut i = 1;
        for (t, count) in self.torrents.iter().zip(per_torrent) {
            for n in &self.dht[i..i + count] {
                let lookup = n.get_peers(t.info_hash, &[router]);
                let port = n
                    .local_addr()
                    .ok()
                    .and_then(|a| match a.ip() {
                        std::net::IpAddr::V4(ip) => t
                            .lives
                            .iter()
                            .find(|p| p.ip == ip && p.kind.listens() && !p.tracked),
                        std::net::IpAddr::V6(_) => None,
                    })
                    .map_or(self.reactor.port, |p| {
                        self.reactor.addr_of(p.ip, p.kind).port()
                    });
                if n.announce(t.info_hash, port, &lookup) > 0 {
                    announced += 1;
                }
            }
            i += count;
        }
        self.dht_router = Some(router);
        Ok(announced)
    }

    /// The announce URLs of torrent `t` (HTTP first).
    pub fn announce_urls(&self, t: usize) -> Vec<String> {
        let mut urls = vec![self.http[t].url()];
        if let Some(Some(u)) = self.udp.get(t) {
            urls.push(u.url());
        }
        urls
    }

    /// A `.torrent` file for torrent `t` around its raw `info` dictionary, announcing to
    /// its simulated trackers (`announce` and `announce-list`).
    pub fn torrent_file(&self, t: usize, info: &str) -> String {
        let urls = self.announce_urls(t);
        let list: String = urls.iter().map(|u| format!("l{}:{u}e", u.len())).collect();
        format!(
            "d8:announce{}:{}13:announce-listl{list}e4:info{info}e",
            urls[0].len(),
            urls[0]
        )
    }

    /// The address at which a peer is listed (and, if it listens, reachable).
    pub fn addr_of(&self, p: &PeerScript) -> SocketAddr {
        self.reactor.addr_of(p.ip, p.kind)
    }

    /// The ground truth as tab-separated values: one line per peer with its kind, life,
    /// and the time it completes (empty when it does not).
    pub fn truth_tsv(&self) -> String {
        let mut out = String::from(
            "info_hash\tpeer\tkind\ttracked\tarrive_ms\tleave_ms\tstart_pieces\ttotal\trate\tcompletes_at_ms\tobservable\tcrosses_at_ms\tlinger_ms\twitnessable\n",
        );
        for t in &self.torrents {
            for p in &t.lives {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.3}\t{}\t{}\t{}\t{}\t{}",
                    t.info_hash,
                    self.addr_of(p),
                    p.kind.name(),
                    u8::from(p.tracked),
                    p.arrive_ms,
                    p.leave_ms,
                    p.start_pieces,
                    t.total,
                    p.rate,
                    p.completes_at(t.total)
                        .map_or(String::new(), |ms| ms.to_string()),
                    u8::from(p.kind.observable()),
                    p.crosses_at(t.total, t.threshold())
                        .map_or(String::new(), |ms| ms.to_string()),
                    p.linger_ms(t.total, t.threshold())
                        .map_or(String::new(), |ms| ms.to_string()),
                    u8::from(p.witnessable(t.total, t.threshold(), self.reactor.busy))
                );
            }
        }
        out
    }

    /// The simulated torrents.
    pub fn torrents(&self) -> &[SimTorrent] {
        &self.torrents
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        self.stop.request();
        for n in self.dht.drain(..) {
            n.join();
        }
    }
}

/// How long a completer seeds before it leaves, for the `i`-th peer of a mix over
/// `span_ms`: peers leave as on the internet, in three groups (`span_ms` stands for a
/// few hours of a real swarm). One in five is a hit-and-run peer gone within
/// `span_ms`/32 (within a minute or two: clients set to stop at ratio 0, or closed when
/// the download ends); seven in ten seed for `span_ms`/5 to `span_ms`/2 (tens of
/// minutes, the bulk of measured seeding times); one in ten stays to the end (the long
/// tail of dedicated seeders). The groups are far apart on purpose, so a test can say
/// which crossings its cadence must witness (lingering ≥ `span_ms`/5) and which it may
/// miss (the hit-and-run ones, reported, never excused as false).
pub fn seeding_ms(i: u32, span_ms: u64) -> u64 {
    // A fixed scramble of i (splitmix64's finaliser), so the groups do not line up
    // with the kinds or roles.
    let mut z = u64::from(i).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let u = (z ^ (z >> 31)) % 100;
    match u {
        0..20 => span_ms / 64 + span_ms * u / (64 * 20),
        20..90 => span_ms / 5 + (span_ms * 3 / 10) * (u - 20) / 70,
        _ => span_ms * 2,
    }
}

/// A mix of lives for one torrent of `total` pieces over `span_ms`: one peer in `n` of
/// each role, cycling through every [`Kind`], on addresses from `first_ip` upwards.
/// Roles: seeders; leechers finishing within the first half, which then seed for a
/// while and leave ([`seeding_ms`]); slow ones that never finish; ones that leave
/// half-way through their download. One completing peer in 20
/// (of the first 400) is untracked: only the swarm's DHT knows it; so is one
/// incoming-only completer in five, which btda only learns of when it connects in.
/// Each `nat_group` peer shares its IP with the incoming-only peer five places before
/// it: two clients behind one address, told apart only by their ports.
pub fn mixed_lives(first_ip: Ipv4Addr, n: u32, total: u32, span_ms: u64) -> Vec<PeerScript> {
    let base = u32::from(first_ip);
    (0..n)
        .map(|i| {
            let kind = Kind::ALL[(i as usize / 5) % Kind::ALL.len()];
            let ip = if kind == Kind::NatGroup && i >= 5 {
                Ipv4Addr::from(base + i - 5)
            } else {
                Ipv4Addr::from(base + i)
            };
            let arrive = span_ms * u64::from(i % 10) / 40; // within the first quarter
            let finish_in = span_ms / 4 + span_ms * u64::from(i % 7) / 40;
            let (leave, start, rate) = match i % 5 {
                0 => (span_ms * 2, total, 0.0),
                1 | 2 => {
                    let start = (i * 7) % (total / 4).max(1);
                    let rate = f64::from(total - start) / (finish_in as f64 / 1000.0);
                    (arrive + finish_in + seeding_ms(i, span_ms), start, rate)
                }
                3 => (
                    span_ms * 2,
                    total / 20,
                    f64::from(total) / (span_ms as f64 / 100.0),
                ),
                _ => {
                    let rate = f64::from(total) / (finish_in as f64 / 1000.0);
                    (arrive + finish_in / 2, 0, rate)
                }
            };
            PeerScript {
                ip,
                kind,
                arrive_ms: arrive,
                leave_ms: leave,
                start_pieces: start,
                rate,
                // A few completing peers of listening kinds are only on the DHT, and
                // some NAT-like ones are known only by connecting in.
                tracked: !((i % 20 == 1 && i < 400) || (kind == Kind::IncomingOnly && i % 5 == 1)),
            }
        })
        .collect()
}

/// A swarm as the internet shows it to a first contact, in 2015's proportions: of every
/// 1,000 peers listed, 628 never answer a SYN (2015: 61.4 % timeouts plus 1.4 %
/// unreachable), 152 refuse the connection (closed port), 112 close and 14 reset it
/// during the handshake, and 94 answer: those are [`mixed_lives`]' peers (the first
/// ones, from `first_ip` on), the others follow on the next addresses. With
/// [`super::reactor::ReactorOptions::rtt_ms`] the answering peers also take their time.
pub fn realistic_lives(first_ip: Ipv4Addr, n: u32, total: u32, span_ms: u64) -> Vec<PeerScript> {
    let reachable = (n * 94).div_ceil(1000).clamp(1, n.max(1));
    let mut lives = mixed_lives(first_ip, reachable, total, span_ms);
    let failing = n.saturating_sub(reachable);
    let base = u32::from(first_ip) + reachable;
    for i in 0..failing {
        // Spread the failing kinds evenly over their share of 906 in 1,000.
        let at = u64::from(i) * 906 / u64::from(failing);
        let kind = match at {
            0..628 => Kind::NoSyn,
            628..780 => Kind::ClosedPort,
            780..892 => Kind::CloseInHandshake,
            _ => Kind::ResetInHandshake,
        };
        lives.push(PeerScript {
            ip: Ipv4Addr::from(base + i),
            kind,
            arrive_ms: 0,
            leave_ms: span_ms * 2,
            start_pieces: total / 2,
            rate: 0.0,
            tracked: true,
        });
    }
    lives
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(arrive: u64, leave: u64, start: u32, rate: f64) -> PeerScript {
        PeerScript {
            ip: Ipv4Addr::LOCALHOST,
            kind: Kind::Bitfield,
            arrive_ms: arrive,
            leave_ms: leave,
            start_pieces: start,
            rate,
            tracked: true,
        }
    }

    #[test]
    fn truth_follows_from_the_script() {
        assert_eq!(
            script(1000, 60_000, 0, 10.0).completes_at(100),
            Some(11_000)
        );
        assert_eq!(
            script(0, 5_000, 0, 10.0).completes_at(100),
            None,
            "leaves first"
        );
        assert_eq!(
            script(0, 60_000, 100, 0.0).completes_at(100),
            None,
            "seeder from the start"
        );
        assert_eq!(
            script(0, 60_000, 10, 0.0).completes_at(100),
            None,
            "never progresses"
        );
        let s = script(1000, 60_000, 20, 10.0);
        assert_eq!(
            (
                s.pieces_at(500, 100),
                s.pieces_at(2000, 100),
                s.pieces_at(99_000, 100)
            ),
            (0, 30, 100)
        );
    }

    #[test]
    fn the_realistic_mix_has_2015s_first_contact_proportions() {
        let lives = realistic_lives(Ipv4Addr::new(127, 1, 0, 1), 1000, 100, 60_000);
        let share = |k: Kind| lives.iter().filter(|l| l.kind == k).count();
        assert_eq!(lives.len(), 1000);
        assert_eq!(share(Kind::NoSyn), 628);
        assert_eq!(share(Kind::CloseInHandshake), 112);
        assert_eq!(share(Kind::ResetInHandshake), 14);
        // Closed ports: 152 listed ones plus the mixed peers' own closed-port kind.
        assert!((152..=160).contains(&share(Kind::ClosedPort)));
        let answering = lives
            .iter()
            .filter(|l| {
                !matches!(
                    l.kind,
                    Kind::NoSyn | Kind::CloseInHandshake | Kind::ResetInHandshake
                )
            })
            .count();
        assert_eq!(answering, 94 + 152, "94 answer, 152 refuse");
        let mut ips: Vec<_> = lives.iter().map(|l| l.ip).collect();
        ips.sort();
        ips.dedup();
        assert!(
            ips.len() >= 990,
            "every peer its own address but NAT groups"
        );
    }

    #[test]
    fn the_mix_has_every_kind_and_role() {
        let lives = mixed_lives(Ipv4Addr::new(127, 1, 0, 1), 200, 100, 60_000);
        for k in Kind::ALL {
            assert!(lives.iter().any(|l| l.kind == k), "{k:?} missing");
        }
        for nat in lives.iter().filter(|l| l.kind == Kind::NatGroup) {
            let behind: Vec<Kind> = lives
                .iter()
                .filter(|l| l.ip == nat.ip)
                .map(|l| l.kind)
                .collect();
            assert_eq!(
                behind,
                vec![Kind::IncomingOnly, Kind::NatGroup],
                "{}",
                nat.ip
            );
        }
        let completing = lives
            .iter()
            .filter(|l| l.completes_at(100).is_some())
            .count();
        assert_eq!(completing, 80, "two roles in five complete");
        // Completers seed and leave: about a fifth at once, a tenth stays to the end.
        let lingers: Vec<u64> = lives
            .iter()
            .filter_map(|l| l.completes_at(100).map(|at| l.leave_ms - at))
            .collect();
        let soon = lingers.iter().filter(|&&ms| ms <= 60_000 / 32).count();
        let stay = lingers.iter().filter(|&&ms| ms > 60_000).count();
        let middle = lingers
            .iter()
            .filter(|&&ms| (60_000 / 5..=60_000 / 2).contains(&ms))
            .count();
        assert_eq!(soon + stay + middle, 80, "{lingers:?}");
        assert!(
            (8..=24).contains(&soon) && (3..=14).contains(&stay),
            "{soon} {stay}"
        );
        let (s, l, d) = counts_at(&lives, 100, 100_000);
        assert_eq!((s, l, d), (40 + stay as u32, 40, 80));
        assert_eq!(counts_at(&lives, 100, 0).2, 0);
    }
}
