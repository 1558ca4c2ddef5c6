//! Monitoring: `statistic` rows every interval and the terminal status line.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::clock::millis;
use crate::peer::Engine;
use crate::store::{Record, StatisticRow, WriterStats};

/// Process figures read from `/proc` (None where unavailable).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    /// Resident memory, MiB.
    pub rss_mb: Option<f64>,
    /// One-minute load average.
    pub load_avg: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
}

/// Reads RSS, load average and open descriptors of this process.
pub fn process_sample() -> ProcessSample {
    let rss_mb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
        });
    let load_avg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()));
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    ProcessSample {
        rss_mb,
        load_avg,
        open_fds,
    }
}

/// Whose CPU time [`cpu_ms`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuOf {
    /// The calling thread.
    Thread,
    /// The whole process.
    Process,
}

/// CPU time (user + system) so far, ms, from `/proc/…/stat` (fields 14 and 15, in
/// clock ticks of 10 ms); `None` where unavailable.
pub fn cpu_ms(of: CpuOf) -> Option<u64> {
    let path = match of {
        CpuOf::Thread => "/proc/thread-self/stat",
        CpuOf::Process => "/proc/self/stat",
    };
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10)
}

/// Keeps the previous sample to turn counters into rates and shares.
pub struct Monitor {
    engine: Arc<Engine>,
    writer: Arc<WriterStats>,
    workers: usize,
    started: Instant,
    last: (Instant, u64, u64),
}

impl Monitor {
    /// Starts measuring now.
    pub fn new(engine: Arc<Engine>, writer: Arc<WriterStats>, workers: usize) -> Self {
        let busy = engine.stats.busy_ns.load(Ordering::Relaxed);
        let visits = engine.stats.visits.load(Ordering::Relaxed);
        Self {
            engine,
            writer,
            workers,
            started: Instant::now(),
            last: (Instant::now(), busy, visits),
        }
    }

    /// A `statistic` row; `workload` is the mean share of time workers were in visits
    /// since the previous call.
    pub fn statistic(&mut self) -> StatisticRow {
        let s = &self.engine.stats;
        let now = Instant::now();
        let busy = s.busy_ns.load(Ordering::Relaxed);
        let visits = s.visits.load(Ordering::Relaxed);
        let span = now.duration_since(self.last.0).as_nanos() as f64 * self.workers.max(1) as f64;
        let workload = (span > 0.0).then(|| ((busy - self.last.1) as f64 / span).min(1.0));
        self.last = (now, busy, visits);
        let q = self.engine.queue.counts();
        let late = self.engine.queue.lateness();
        let lock = self.engine.queue.lock_figures();
        let p = process_sample();
        StatisticRow {
            at: crate::clock::unix_now(),
            peers_known: Some(q.peers.known),
            peers_due: Some(q.peers.due),
            peers_in_flight: Some(q.peers.in_flight),
            workers_busy: Some(s.workers_busy.load(Ordering::Relaxed)),
            workload,
            incoming_active: Some(s.incoming_active.load(Ordering::Relaxed)),
            writer_backlog: Some(self.writer.backlog()),
            rss_mb: p.rss_mb,
            load_avg: p.load_avg,
            open_fds: p.open_fds,
            incoming_accepted: Some(s.incoming_accepted.load(Ordering::Relaxed)),
            incoming_refused_busy: Some(s.incoming_refused_busy.load(Ordering::Relaxed)),
            incoming_unknown: Some(s.incoming_unknown.load(Ordering::Relaxed)),
            confirmed: Some(q.confirmed),
            peers_reached: Some(q.peers.reached),
            self_connections: Some(s.self_connections.load(Ordering::Relaxed)),
            own_addresses_skipped: Some(q.ours),
            identities_refused_per_ip: Some(q.crowded),
            incoming_refused_per_ip: Some(s.incoming_refused_per_ip.load(Ordering::Relaxed)),
            incoming_shed: Some(s.incoming_shed.load(Ordering::Relaxed)),
            peers_refused_per_source: Some(q.source_full),
            dials_deferred: Some(q.dials_deferred),
            dial_deferral_max_ms: Some(q.dial_deferral_max_ms),
            pex_flags: Some(q.pex_flags),
            punch: Some([
                s.incoming_utp.load(Ordering::Relaxed),
                s.punch_rendezvous.load(Ordering::Relaxed),
                s.punch_connects.load(Ordering::Relaxed),
                s.punch_errors.load(Ordering::Relaxed),
                s.punch_reached.load(Ordering::Relaxed),
            ]),
            incoming_handshake_timeout_ms: Some(millis(self.engine.measured.incoming.current())),
            not_global_tracker: Some(q.not_global_tracker),
            not_global_dht: Some(q.not_global_dht),
            not_global_pex: Some(q.not_global_pex),
            mse_accepted: Some(s.mse_accepted.load(Ordering::Relaxed)),
            mse_unknown: Some(s.mse_unknown.load(Ordering::Relaxed)),
            mse_malformed: Some(s.mse_malformed.load(Ordering::Relaxed)),
            connect_timeout_ms: Some(millis(self.engine.measured.connect.current())),
            handshake_timeout_ms: Some(millis(self.engine.measured.handshake.current())),
            first_wait_p99_ms: late.first_wait_p99_ms,
            first_wait_max_ms: late.first_wait_max_ms,
            revisit_late_p99_ms: late.revisit_late_p99_ms,
            revisits_on_time: late.revisits_on_time,
            queue_lock_wait_ms: Some(lock.wait_ms),
            queue_lock_contended: (lock.acquired > 0)
                .then(|| lock.contended as f64 / lock.acquired as f64),
        }
    }

    /// One plain-text status line (no cursor tricks, so it reads well in tmux logs).
    /// `since` holds the time, visits and incoming refusals of the previous line; when
    /// incoming peers were turned away for want of a handler since, the line says so.
    pub(crate) fn status_line(&self, torrents: usize, since: &mut (Instant, u64, u64)) -> String {
        let s = &self.engine.stats;
        let visits = s.visits.load(Ordering::Relaxed);
        let ok = s.visits_ok.load(Ordering::Relaxed);
        let dt = since.0.elapsed().as_secs_f64();
        let rate = if dt > 0.0 {
            (visits - since.1) as f64 / dt
        } else {
            0.0
        };
        let refused = s.incoming_refused_busy.load(Ordering::Relaxed);
        let full = incoming_full(refused, since.2);
        *since = (Instant::now(), visits, refused);
        let q = self.engine.queue.counts();
        let pending = self.engine.pending_metadata();
        let success = if visits > 0 {
            format!("{:.0}%", 100.0 * ok as f64 / visits as f64)
        } else {
            "-".into()
        };
        let stalled = match self.writer.stalled() {
            Some((d, why)) => format!(
                " | DATABASE WRITES FAILING for {} s ({why}); waiting, nothing lost yet",
                d.as_secs()
            ),
            None => String::new(),
        };
        format!(
            "[{}] torrents {torrents} ({pending} waiting for metadata) | peers {} ({} due, {} complete) | visits/s {rate:.1} | ok {success} | confirmed {} | incoming {} | db backlog {}{full}{stalled}",
            crate::clock::format_duration(
                i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX)
            ),
            q.peers.known,
            q.peers.due,
            q.peers.finished,
            q.confirmed,
            s.incoming_active.load(Ordering::Relaxed),
            self.writer.backlog(),
        )
    }
}

/// The status line's warning when incoming connections were turned away for want of a
/// handler since the previous line (`refused` and `before`: the cumulative counts now
/// and then); empty when none were.
fn incoming_full(refused: u64, before: u64) -> String {
    match refused.saturating_sub(before) {
        0 => String::new(),
        n => format!(" | INCOMING FULL: {n} connections turned away (peer.incoming_handlers)"),
    }
}

/// Writes a `statistic` row every `interval` until the stop flag is set (and one last
/// row then).
pub(crate) fn statistics_loop(
    mut monitor: Monitor,
    db: crate::store::RecordSender,
    interval: Duration,
    stop: &crate::shutdown::Shutdown,
) {
    loop {
        let stopping = stop.wait(interval);
        // Rows a source changed outside any visit (an IP it showed crowded): never lost.
        for row in monitor.engine.queue.take_rewrites() {
            let _ = db.send(Record::Peer(row));
        }
        // Never block on a full channel: a sample may be skipped, the workers never wait.
        db.try_send(Record::Statistic(Box::new(monitor.statistic())));
        if stopping {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_status_line_says_when_incoming_peers_were_turned_away() {
        assert_eq!(super::incoming_full(5, 5), "");
        assert_eq!(
            super::incoming_full(12, 5),
            " | INCOMING FULL: 7 connections turned away (peer.incoming_handlers)"
        );
    }

    #[test]
    fn reads_this_process() {
        let p = super::process_sample();
        assert!(p.rss_mb.is_some_and(|m| m > 0.0));
        assert!(p.open_fds.is_some_and(|n| n >= 3));
    }
}
