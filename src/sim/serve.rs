//! Simulated swarms served on loopback, on their own: `btda sim` and the demo. Each
//! torrent gets its own HTTP and UDP tracker, the swarms share a small DHT for the peers
//! no tracker lists, and the `.torrent` files (with the trackers' URLs) are written for
//! whoever measures them: btda, a real client or another tool. The truth file is written
//! at the end.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::reactor::{ReactorOptions, SimTorrent};
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
    let lives = if o.realistic {
        realistic_lives(first, o.peers, PIECES, o.seconds * 1000)
    } else {
        mixed_lives(first, o.peers, PIECES, o.seconds * 1000)
    };
    let sim = SimTorrent {
        info_hash: InfoHash::of_info_bytes(info.as_bytes()),
        total: PIECES,
        lives,
    };
    (info, sim)
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
        also_listed: o.dial.into_iter().collect(),
        rtt_ms: o.rtt_ms,
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
