//! Simulated swarms served on loopback, on their own: `btda sim` and the demo. Each
//! torrent gets its own HTTP and UDP tracker, the swarms share a small DHT for the peers
//! no tracker lists, and the `.torrent` files (with the trackers' URLs) are written for
//! whoever measures them: btda, a real client or another tool. The truth file is written
//! at the end.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::reactor::{ReactorOptions, SimTorrent};
use super::script::{Kind, PeerScript};
use super::swarm::{Swarm, TrackerAddrs, mixed_lives, realistic_lives};
use crate::torrent::InfoHash;

/// Pieces of each simulated torrent.
pub const PIECES: u32 = 200;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Peers per torrent.
    pub peers: u32,
    /// Torrents (1–20).
    pub torrents: u8,
    /// Length of the scripted lives, s (peers arrive in the first quarter, leechers
    /// finish within it).
    pub seconds: u64,
    /// 2015's first-contact mix (most peers never answer) instead of every peer
    /// answering.
    pub realistic: bool,
    /// Round-trip times of the peers, ms (lowest, highest).
    pub rtt_ms: Option<(u64, u64)>,
    /// Where NAT-like peers connect to (a measuring tool's listen address), and the
    /// address trackers also list (as real trackers list the announcer).
    pub dial: Option<SocketAddr>,
    /// How often each NAT-like peer connects in, ms (the demo's compressed time: every
    /// few seconds; a real client reconnects to a peer it knows about once a minute at
    /// most: libtorrent's `min_reconnect_time` is 60 s).
    pub dial_every_ms: u64,
    /// NAT-like peers first dial at a phase spread over one `dial_every_ms` after their
    /// arrival instead of at it (the large rounds: no synchronised bursts).
    pub spread_dials: bool,
    /// Churn: the peers come in this many generations, one after another over
    /// `seconds` (each a swarm of `peers / generations` new addresses living
    /// `seconds / generations` as a one-generation swarm lives `seconds`, leaving within
    /// two of its spans). 1: everyone arrives in the first quarter (the demo).
    pub generations: u32,
    /// Peers each simulated client names in PEX when btda connects (0: none; see
    /// [`ReactorOptions::pex`]).
    pub pex: usize,
    /// One kind and shape for every peer instead of a mix (`btda sim --kind`), so that
    /// two tools can be measured side by side on the same plain swarm.
    pub uniform: Option<Uniform>,
}

/// A swarm of one kind and shape: every peer arrives at the start and stays for the
/// whole `seconds`.
#[derive(Debug, Clone, Copy)]
pub struct Uniform {
    /// How every peer talks.
    pub kind: Kind,
    /// Seeds (every piece from the start) or leechers (from no piece, gaining `rate`).
    pub seeds: bool,
    /// Pieces per second each leecher gains (a have each); ignored for seeds.
    pub rate: f64,
}

impl Uniform {
    /// `peers` peers from `first`, living `span_ms`.
    fn lives(self, first: Ipv4Addr, peers: u32, total: u32, span_ms: u64) -> Vec<PeerScript> {
        (0..peers)
            .map(|i| PeerScript {
                ip: Ipv4Addr::from(u32::from(first) + i),
                kind: self.kind,
                arrive_ms: 0,
                leave_ms: span_ms,
                start_pieces: if self.seeds { total } else { 0 },
                rate: if self.seeds { 0.0 } else { self.rate.max(0.0) },
                tracked: true,
            })
            .collect()
    }
}

/// Running swarms and where their torrents are.
pub struct SimServer {
    /// The swarms, trackers and DHT.
    pub swarm: Swarm,
    /// The `.torrent` files written.
    pub torrent_files: Vec<PathBuf>,
    /// The DHT node to bootstrap from.
    pub dht_router: Option<SocketAddr>,
}

/// A simulated torrent `t`: its raw info dictionary and the swarm's lives. Peers of
/// torrent `t` live on 127.(100+t).x.y, so 60,000 per torrent fit.
pub fn torrent(t: u8, o: &SimOptions) -> (String, SimTorrent) {
    let name = format!("sim-{t}");
    let info = format!(
        "d6:lengthi{}e4:name{}:{name}12:piece lengthi16384e6:pieces{}:{}e",
        u64::from(PIECES) * 16384,
        name.len(),
        PIECES * 20,
        "x".repeat(PIECES as usize * 20 - 3) + &format!("{t:03}")
    );
    let first = Ipv4Addr::new(127, 100 + t, 0, 1);
    let lives = match o.uniform {
        Some(u) => u.lives(first, o.peers, PIECES, o.seconds * 1000),
        None => generations(first, o),
    };
    let sim = SimTorrent {
        info_hash: InfoHash::of_info_bytes(info.as_bytes()),
        total: PIECES,
        lives,
    };
    (info, sim)
}

/// The mix's lives from `first` on, in `o.generations` generations of new addresses one
/// after another (one generation: everyone arrives in the first quarter).
fn generations(first: Ipv4Addr, o: &SimOptions) -> Vec<PeerScript> {
    let generations = o.generations.clamp(1, o.peers.max(1));
    let (each, span_ms) = (
        o.peers / generations,
        o.seconds * 1000 / u64::from(generations),
    );
    let mut lives = Vec::new();
    for g in 0..generations {
        let n = if g + 1 == generations {
            o.peers - each * g
        } else {
            each
        };
        let from = Ipv4Addr::from(u32::from(first) + each * g);
        let block = if o.realistic {
            realistic_lives(from, n, PIECES, span_ms)
        } else {
            mixed_lives(from, n, PIECES, span_ms)
        };
        let shift = span_ms * u64::from(g);
        lives.extend(block.into_iter().map(|mut l| {
            l.arrive_ms += shift;
            l.leave_ms += shift;
            l
        }));
    }
    lives
}

/// Starts the swarms and writes `sim-<t>.torrent` into `dir`.
pub fn start(o: &SimOptions, dir: &Path) -> Result<SimServer, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let torrents = o.torrents.clamp(1, 20);
    let mut infos = Vec::new();
    let mut sims = Vec::new();
    let mut trackers = Vec::new();
    for t in 0..torrents {
        let (info, sim) = torrent(t, o);
        infos.push(info);
        sims.push(sim);
        trackers.push(TrackerAddrs {
            http: SocketAddr::from(([127, 99, 0, t + 1], 0)),
            udp: Some(SocketAddr::from(([127, 99, 0, t + 1], 0))),
        });
    }
    let options = ReactorOptions {
        dial: o.dial,
        dial_every_ms: o.dial_every_ms,
        first_dial_spread_ms: if o.spread_dials { o.dial_every_ms } else { 0 },
        also_listed: o.dial.into_iter().collect(),
        rtt_ms: o.rtt_ms,
        pex: o.pex,
        // A thread per core (at most one per torrent): the simulator must stay on time
        // while btda runs beside it.
        threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        ..ReactorOptions::default()
    };
    let mut swarm =
        Swarm::start(sims, &trackers, options).map_err(|e| format!("simulator: {e}"))?;
    swarm
        .start_dht(SocketAddr::from(([127, 97, 0, 1], 0)), 20)
        .map_err(|e| format!("simulated DHT: {e}"))?;
    let mut torrent_files = Vec::new();
    for (t, info) in infos.iter().enumerate() {
        let path = dir.join(format!("sim-{t}.torrent"));
        std::fs::write(&path, swarm.torrent_file(t, info))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        torrent_files.push(path);
    }
    Ok(SimServer {
        dht_router: swarm.dht_router,
        swarm,
        torrent_files,
    })
}

impl SimServer {
    /// Writes the truth (one line per simulated peer) to `path`.
    pub fn write_truth(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.swarm.truth_tsv()).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(uniform: Option<Uniform>, generations: u32) -> SimOptions {
        SimOptions {
            peers: 600,
            torrents: 1,
            seconds: 600,
            realistic: true,
            rtt_ms: None,
            dial: None,
            dial_every_ms: 60_000,
            spread_dials: false,
            pex: 0,
            generations,
            uniform,
        }
    }

    #[test]
    fn a_uniform_swarm_is_one_kind_and_shape() {
        let seeds = Uniform {
            kind: Kind::HaveAll,
            seeds: true,
            rate: 1.0,
        };
        let (_, t) = torrent(0, &options(Some(seeds), 1));
        assert_eq!(t.lives.len(), 600);
        assert!(t.lives.iter().all(|l| l.kind == Kind::HaveAll
            && l.start_pieces == PIECES
            && l.arrive_ms == 0
            && l.leave_ms == 600_000));
        let leechers = Uniform {
            kind: Kind::Bitfield,
            seeds: false,
            rate: 1.0,
        };
        let (_, t) = torrent(0, &options(Some(leechers), 1));
        // A have a second: 10 pieces after 10 s.
        assert!(t.lives.iter().all(|l| l.pieces_at(10_000, PIECES) == 10));
        let ips: std::collections::HashSet<_> = t.lives.iter().map(|l| l.ip).collect();
        assert_eq!(ips.len(), 600, "one address each");
        assert_eq!(
            Kind::from_name("streaming_haves"),
            Some(Kind::StreamingHaves)
        );
        assert_eq!(Kind::from_name("no_syn"), Some(Kind::NoSyn));
        assert_eq!(Kind::from_name("nonsense"), None);
    }

    #[test]
    fn generations_arrive_one_after_another_on_new_addresses() {
        let (_, one) = torrent(0, &options(None, 1));
        let (_, six) = torrent(0, &options(None, 6));
        assert_eq!(six.lives.len(), one.lives.len());
        let ips: std::collections::HashSet<_> = six.lives.iter().map(|l| l.ip).collect();
        assert_eq!(ips.len(), six.lives.len(), "no address reused");
        // Generation g (100 peers) arrives from g x 100 s on and is gone within two spans.
        for g in 0..6_u64 {
            let block = &six.lives[(g as usize) * 100..(g as usize + 1) * 100];
            assert!(block.iter().all(|l| l.arrive_ms >= g * 100_000));
            assert!(
                block
                    .iter()
                    .all(|l| l.leave_ms <= (g + 2) * 100_000 + 100_000)
            );
        }
        assert!(one.lives.iter().all(|l| l.arrive_ms < 150_000));
    }
}
