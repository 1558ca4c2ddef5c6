//! A simulated swarm with known truth: fake peers with scripted lives (arrival, pieces at
//! arrival, download rate, departure) behind a fake tracker that lists whoever is
//! present. The ground truth — which peers complete while present, and when — follows
//! from the scripts alone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::fake_peer::{Behaviour, FakePeer};
use super::fake_tracker::{FakeHttpTracker, HttpBehaviour, SharedPeers};
use crate::torrent::InfoHash;

/// One peer's life, times in milliseconds from the start of the swarm.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerScript {
    /// Its address (each peer on its own 127.x.y.z).
    pub addr: SocketAddr,
    /// When it starts listening and is listed by the tracker.
    pub arrive_ms: u64,
    /// When it leaves.
    pub leave_ms: u64,
    /// Pieces at arrival.
    pub start_pieces: u32,
    /// Download rate, pieces per second.
    pub rate: f64,
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
        if self.start_pieces >= total {
            return None; // a seeder from the start is no download
        }
        if self.rate <= 0.0 {
            return None;
        }
        let ms = self.arrive_ms
            + ((f64::from(total - self.start_pieces) / self.rate) * 1000.0).ceil() as u64;
        (ms < self.leave_ms).then_some(ms)
    }
}

/// A running simulated swarm for one torrent.
pub struct Swarm {
    /// The tracker listing present peers.
    pub tracker: FakeHttpTracker,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Swarm {
    /// Starts the tracker on `tracker_addr` and the peers' lives.
    pub fn start(
        tracker_addr: SocketAddr,
        info_hash: InfoHash,
        total: u32,
        peers: Vec<PeerScript>,
    ) -> std::io::Result<Self> {
        let shared = SharedPeers::default();
        let tracker = FakeHttpTracker::start(tracker_addr, HttpBehaviour::Dynamic(shared.clone()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let ticker = std::thread::Builder::new()
            .name("swarm".into())
            .spawn(move || {
                let start = Instant::now();
                let mut running: Vec<Option<FakePeer>> = peers.iter().map(|_| None).collect();
                while !st.load(Ordering::Relaxed) {
                    let t = start.elapsed().as_millis() as u64;
                    let mut present = Vec::new();
                    for (p, slot) in peers.iter().zip(running.iter_mut()) {
                        let here = t >= p.arrive_ms && t < p.leave_ms;
                        if here && slot.is_none() {
                            *slot = FakePeer::start(
                                p.addr,
                                info_hash,
                                total,
                                p.pieces_at(t, total),
                                Behaviour::Bitfield,
                            )
                            .ok();
                        } else if !here && slot.is_some() {
                            *slot = None; // leaves: stops listening
                        }
                        if let Some(peer) = slot {
                            peer.set_pieces(p.pieces_at(t, total));
                            present.push(p.addr);
                        }
                    }
                    *shared.0.lock() = present;
                    std::thread::sleep(Duration::from_millis(50));
                }
            })?;
        Ok(Self {
            tracker,
            stop,
            ticker: Some(ticker),
        })
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(arrive: u64, leave: u64, start: u32, rate: f64) -> PeerScript {
        PeerScript {
            addr: "127.0.0.1:1".parse().unwrap(),
            arrive_ms: arrive,
            leave_ms: leave,
            start_pieces: start,
            rate,
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
}
