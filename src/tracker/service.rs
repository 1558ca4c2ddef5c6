//! The tracker loop: every tracker URL of every torrent is announced to and scraped on
//! its own schedule by a small pool of threads.
//!
//! One job per tracker URL holds all the torrents that name it, so that one UDP packet
//! can scrape up to 74 of them, and a dead tracker only delays its own job. Every
//! announce and scrape becomes a `request` row; received peers go to the `PeerQueue`
//! with source `tracker`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::client::{ClientSettings, TrackerClient};
use super::{AnnounceParams, Event, TrackerError};
use crate::book::{PeerSink, Source};
use crate::shutdown::Shutdown;
use crate::store::{Record, RecordSender, RequestRow};
use crate::torrent::InfoHash;
use crate::torrent::TorrentId;
use crate::torrent::registry::TorrentRegistry;

/// One torrent as the tracker loop needs it.
#[derive(Debug, Clone)]
pub struct TrackedTorrent {
    /// Index in the run (database id − 1).
    pub torrent: TorrentId,
    /// Its info-hash.
    pub info_hash: InfoHash,
    /// Its tracker URLs.
    pub trackers: Vec<String>,
}

/// The wait before the next scrape of a tracker that has no scrape URL (a century).
const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `left` announced while a torrent's size is unknown (1 GiB: plainly a leecher).
const UNKNOWN_LEFT: u64 = 1 << 30;

/// What btda says about itself to trackers.
#[derive(Debug, Clone, Copy)]
pub struct Announcer {
    /// Our peer id.
    pub peer_id: [u8; 20],
    /// Our listen port.
    pub port: u16,
    /// Random key for this run.
    pub key: u32,
    /// Source address of UDP tracker requests (None: the system chooses). HTTP requests
    /// go out from the system's choice: attohttpc cannot bind a source address.
    pub source_ip: Option<std::net::IpAddr>,
}

struct Slot {
    torrent: TorrentId,
    info_hash: InfoHash,
    next: Instant,
    started: bool,
    failures: u32,
}

struct Job {
    url: String,
    slots: Vec<Slot>,
    /// When all its torrents are scraped next: on the job's own schedule
    /// (`tracker.scrape_interval_secs`, or the tracker's BEP 48 `min_request_interval`
    /// when longer), not after each announce, whose `min interval` may be a quarter of
    /// an hour.
    scrape_next: Instant,
}

struct Shared {
    jobs: Vec<Mutex<Job>>,
    heap: Mutex<BinaryHeap<Reverse<(Instant, usize)>>>,
    wake: Condvar,
    client: TrackerClient,
    settings: TrackerSettings,
    me: Announcer,
    queue: Arc<dyn PeerSink>,
    /// Taken away at stop, so a thread still waiting on a dead tracker cannot keep the
    /// writer open; its late answer is not recorded.
    db: Mutex<Option<RecordSender>>,
    /// Sizes, read at each announce (a magnet's arrives with its metadata).
    registry: Arc<TorrentRegistry>,
    stop: Shutdown,
}

/// What the tracker loop needs (from `[tracker]`, converted by `run`).
#[derive(Debug, Clone)]
pub struct TrackerSettings {
    /// Threads announcing (each works through one tracker URL at a time).
    pub threads: usize,
    /// btda's own announce interval (never below the tracker's `min interval`).
    pub interval: Duration,
    /// Largest `min interval` honoured.
    pub max_min_interval: Duration,
    /// How often each tracker is scraped.
    pub scrape_interval: Duration,
    /// Delays after the 1st, 2nd, … failed announce in a row.
    pub retry_backoff: Vec<Duration>,
    /// Peers asked for per announce.
    pub numwant: u32,
    /// `left` reported, as a share of the torrent's size.
    pub left_share: f64,
    /// `uploaded` reported, as a share of the torrent's size.
    pub uploaded_share: f64,
    /// Longest wait for the `stopped` announces at the end of a run.
    pub stopped_timeout: Duration,
    /// The HTTP and UDP client's settings.
    pub client: ClientSettings,
}

/// The running tracker threads.
pub struct TrackerService {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl TrackerService {
    /// Starts announcing to every tracker of every torrent (at once, then on schedule).
    pub fn start(
        torrents: &[TrackedTorrent],
        registry: Arc<TorrentRegistry>,
        settings: &TrackerSettings,
        me: Announcer,
        queue: Arc<dyn PeerSink>,
        db: RecordSender,
        stop: Shutdown,
    ) -> Self {
        let now = Instant::now();
        let mut jobs: Vec<Job> = Vec::new();
        for t in torrents {
            for url in &t.trackers {
                if !(url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with("udp://"))
                {
                    log::warn!(
                        "torrent {}: tracker {url} has an unsupported scheme; skipped",
                        t.info_hash
                    );
                    continue;
                }
                let slot = Slot {
                    torrent: t.torrent,
                    info_hash: t.info_hash,
                    next: now,
                    started: false,
                    failures: 0,
                };
                match jobs.iter_mut().find(|j| &j.url == url) {
                    Some(j) => j.slots.push(slot),
                    None => jobs.push(Job {
                        url: url.clone(),
                        slots: vec![slot],
                        scrape_next: now,
                    }),
                }
            }
        }
        let heap = (0..jobs.len()).map(|i| Reverse((now, i))).collect();
        let shared = Arc::new(Shared {
            jobs: jobs.into_iter().map(Mutex::new).collect(),
            heap: Mutex::new(heap),
            wake: Condvar::new(),
            client: TrackerClient::new(ClientSettings {
                source_ip: me.source_ip,
                ..settings.client.clone()
            }),
            settings: settings.clone(),
            registry,
            me,
            queue,
            db: Mutex::new(Some(db)),
            stop,
        });
        let threads = (0..settings.threads.min(shared.jobs.len()))
            .filter_map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("tracker-{i}"))
                    .spawn(move || s.work())
                    .ok()
            })
            .collect();
        Self { shared, threads }
    }

    /// Tracker URLs being served.
    pub fn trackers(&self) -> usize {
        self.shared.jobs.len()
    }

    /// Stops the loop (the stop flag must be set), then sends `stopped` to every tracker
    /// that was announced to, all in parallel, all within `stopped_timeout_ms`: an
    /// announce still in flight never holds shutdown longer. A tracker whose announce is
    /// still under way then gets no `stopped`; the threads still waiting are left to end
    /// on their own and, like the `stopped` helpers, can no longer reach the writer.
    pub fn stop(self) {
        self.shared.wake.notify_all();
        let budget = self.shared.settings.stopped_timeout;
        let deadline = Instant::now() + budget;
        self.send_stopped(budget, deadline);
        for t in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(crate::shutdown::POLL);
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::info!("a tracker request is still under way at shutdown; not waiting for it");
            }
        }
        self.shared.db.lock().take();
    }

    fn send_stopped(&self, budget: Duration, deadline: Instant) {
        // The running client's settings (source address, trusted roots), shorter timeouts.
        let mut settings = self.shared.client.settings().clone();
        settings.http_timeout = budget;
        settings.dns_timeout = budget;
        settings.udp_retransmit = vec![budget];
        let client = Arc::new(TrackerClient::new(settings));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut pending = 0;
        for job in &self.shared.jobs {
            // A locked job has an announce in flight: no `stopped` for it, and no wait
            // that would leave the other trackers' `stopped` no time.
            let Some(job) = job.try_lock() else {
                continue;
            };
            let requests: Vec<(TorrentId, AnnounceParams)> = job
                .slots
                .iter()
                .filter(|s| s.started)
                .map(|s| (s.torrent, self.shared.params(s, Event::Stopped)))
                .collect();
            if requests.is_empty() {
                continue;
            }
            let (client, tx, url) = (Arc::clone(&client), tx.clone(), job.url.clone());
            let spawned = std::thread::Builder::new()
                .name("tracker-stop".into())
                .spawn(move || {
                    for (index, params) in requests {
                        let t0 = Instant::now();
                        let result = client.announce(&url, &params);
                        if tx
                            .send((index, url.clone(), result.err(), t0.elapsed()))
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            if spawned.is_ok() {
                pending += 1;
            }
        }
        drop(tx);
        while let Ok((index, url, error, took)) =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.shared.record(Record::Request(RequestRow {
                torrent_id: Some(index.db_id()),
                at: crate::clock::unix_now(),
                source: "tracker",
                url: Some(url),
                kind: "stopped",
                ok: error.is_none(),
                error: error.map(|e| e.class()),
                duration_ms: Some(took.as_millis() as u32),
                ..RequestRow::default()
            }));
        }
        log::info!("sent `stopped` to {pending} trackers");
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.requested()
    }

    /// Sends a record to the writer unless the service was stopped.
    fn record(&self, r: Record) {
        let db = self.db.lock().clone();
        if let Some(db) = db {
            let _ = db.send(r);
        }
    }

    fn work(&self) {
        while let Some(i) = self.next_job() {
            let next = self.round(i);
            self.heap.lock().push(Reverse((next, i)));
            self.wake.notify_one();
        }
    }

    /// Waits for the next due job; None when stopping.
    fn next_job(&self) -> Option<usize> {
        let mut heap = self.heap.lock();
        loop {
            if self.stopping() {
                return None;
            }
            let now = Instant::now();
            match heap.peek() {
                Some(&Reverse((due, i))) if due <= now => {
                    heap.pop();
                    return Some(i);
                }
                Some(&Reverse((due, _))) => {
                    let until = due.min(now + crate::shutdown::POLL);
                    self.wake.wait_until(&mut heap, until);
                }
                None => {
                    self.wake.wait_for(&mut heap, crate::shutdown::POLL);
                }
            }
        }
    }

    fn params(&self, slot: &Slot, event: Event) -> AnnounceParams {
        let size = self.registry.size(slot.torrent).unwrap_or(0);
        let share = |f: f64| (size as f64 * f) as u64;
        // Size unknown (magnet metadata pending): announce as a leecher, so that trackers
        // return the seeders that can give the metadata.
        let left = if size == 0 {
            UNKNOWN_LEFT
        } else {
            share(self.settings.left_share)
        };
        AnnounceParams {
            info_hash: slot.info_hash,
            peer_id: self.me.peer_id,
            port: self.me.port,
            uploaded: share(self.settings.uploaded_share),
            downloaded: size.saturating_sub(left),
            left,
            numwant: self.settings.numwant,
            key: self.me.key,
            event,
        }
    }

    /// Announces every due torrent of job `i`, then scrapes them all when the scrape
    /// is due; returns when the job is due next.
    fn round(&self, i: usize) -> Instant {
        let mut job = self.jobs[i].lock();
        let url = job.url.clone();
        let mut unreachable = None;
        for slot in &mut job.slots {
            if self.stopping() || slot.next > Instant::now() {
                continue;
            }
            if let Some(retry) = unreachable {
                slot.next = retry; // the tracker is down: no request for the others now
                continue;
            }
            let event = if slot.started {
                Event::None
            } else {
                Event::Started
            };
            let start = Instant::now();
            let result = self.client.announce(&url, &self.params(slot, event));
            let mut row = RequestRow {
                torrent_id: Some(slot.torrent.db_id()),
                at: crate::clock::unix_now(),
                source: "tracker",
                url: Some(url.clone()),
                kind: "announce",
                duration_ms: Some(start.elapsed().as_millis() as u32),
                ..RequestRow::default()
            };
            match result {
                Ok(reply) => {
                    if let Some(ip) = reply.external_ip {
                        self.queue.learn_own_ip(ip); // BEP 24: never queue ourselves
                    }
                    let offered = self
                        .queue
                        .offer(slot.torrent, &reply.peers, Source::Tracker);
                    row.ok = true;
                    row.received_peers = Some(reply.peers.len() as u32);
                    row.dropped_peers = Some(reply.dropped_peers);
                    if reply.dropped_peers > 0 {
                        log::warn!(
                            "tracker {}: {} peers beyond the {} kept from one reply were dropped",
                            crate::text::escape_control(&url),
                            reply.dropped_peers,
                            reply.peers.len()
                        );
                    }
                    row.new_peers = Some(offered.new);
                    row.duplicate_peers = Some(offered.duplicate);
                    (row.seeders, row.leechers, row.completed) =
                        (reply.seeders, reply.leechers, reply.completed);
                    row.error = reply.warning.map(|w| format!("warning: {w}"));
                    let min = Duration::from_secs(reply.min_interval.unwrap_or(0))
                        .min(self.settings.max_min_interval);
                    slot.next = Instant::now() + self.settings.interval.max(min);
                    slot.started = true;
                    slot.failures = 0;
                }
                Err(e) => {
                    row.error = Some(e.class());
                    slot.failures += 1;
                    let steps = &self.settings.retry_backoff;
                    let step = steps[(slot.failures as usize - 1).min(steps.len() - 1)];
                    slot.next = Instant::now() + step;
                    if matches!(
                        e,
                        TrackerError::Timeout
                            | TrackerError::Refused
                            | TrackerError::Dns(_)
                            | TrackerError::Io(_)
                    ) {
                        unreachable = Some(slot.next);
                    }
                }
            }
            self.record(Record::Request(row));
        }
        let now = Instant::now();
        if let Some(retry) = unreachable {
            // Down: scraped again when it is next tried.
            job.scrape_next = job.scrape_next.max(retry);
        } else if job.scrape_next <= now && !self.stopping() {
            let wait = self.scrape(&url, &job.slots);
            job.scrape_next = Instant::now()
                .checked_add(wait)
                .unwrap_or_else(|| now + NEVER);
        }
        job.slots
            .iter()
            .map(|s| s.next)
            .chain(std::iter::once(job.scrape_next))
            .min()
            .unwrap_or_else(|| now + self.settings.interval)
    }

    /// Scrapes every torrent of a tracker; returns the wait until the next scrape.
    fn scrape(&self, url: &str, slots: &[Slot]) -> Duration {
        let hashes: Vec<InfoHash> = slots.iter().map(|s| s.info_hash).collect();
        let start = Instant::now();
        let result = self.client.scrape(url, &hashes);
        let duration = Some(start.elapsed().as_millis() as u32);
        let row = |slot: &Slot| RequestRow {
            torrent_id: Some(slot.torrent.db_id()),
            at: crate::clock::unix_now(),
            source: "tracker",
            url: Some(url.to_string()),
            kind: "scrape",
            duration_ms: duration,
            ..RequestRow::default()
        };
        let every = self.settings.scrape_interval;
        match result {
            // No scrape URL (BEP 48): nothing asked, nothing recorded, never asked again.
            Ok(None) => NEVER,
            Ok(Some(reply)) => {
                for slot in slots {
                    let mut r = row(slot);
                    match reply.counts.iter().find(|(h, _)| *h == slot.info_hash) {
                        Some((_, c)) => {
                            r.ok = true;
                            (r.seeders, r.leechers, r.completed) =
                                (c.seeders, c.leechers, c.completed);
                        }
                        None => {
                            r.error =
                                Some("malformed response: torrent missing from the scrape".into());
                        }
                    }
                    self.record(Record::Request(r));
                }
                let asked = Duration::from_secs(reply.min_request_interval.unwrap_or(0))
                    .min(self.settings.max_min_interval);
                every.max(asked)
            }
            Err(e) => {
                for slot in slots {
                    let mut r = row(slot);
                    r.error = Some(e.class());
                    self.record(Record::Request(r));
                }
                every
            }
        }
    }
}
