//! `btda run`: the measurement's start-up, main loop and ordered shutdown.
//!
//! Start-up loads the inputs, chooses the output files, starts logging and the writer,
//! records the `run` and `torrent` rows and starts the evaluation (workers, listener,
//! trackers, DHT, magnets, statistics; `evaluation.rs`). The main thread then prints a
//! status line every few seconds until Ctrl+C (or until the database cannot be written),
//! and shuts down in order: the evaluation stops (queue first), the end is recorded, the
//! writer drains, and the summary is read back from the database.

pub mod build;
mod evaluation;
mod files;
pub mod logging;
mod magnets;
pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::store::{
    Record, RunStart, StoreError, TorrentRow, Writer, WriterSettings, WriterSummary,
};
use crate::torrent::{ImportReport, Torrent, import_inputs};

pub use crate::shutdown::Shutdown;
pub use files::RunFiles;

/// What `btda run` needs to start.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Input folder (torrents, magnet.txt).
    pub input: PathBuf,
    /// Output folder for the database and log.
    pub output: PathBuf,
    /// Effective configuration.
    pub config: Config,
    /// `-v` count minus `-q` count.
    pub verbosity: i8,
}

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Inputs exist but none is usable (or there are none).
    #[error(
        "no valid torrent or magnet link in {input} ({skipped} skipped): put *.torrent files \
         below {input} or magnet links, one per line, in {input}/magnet.txt; \
         to try btda without torrents, run `make demo`"
    )]
    NothingToAnalyse {
        /// The input folder.
        input: String,
        /// How many inputs were refused.
        skipped: usize,
    },
    /// The input folder could not be read.
    #[error("cannot read the input folder {path}: {source}")]
    Input {
        /// The folder.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The output files could not be created.
    #[error("cannot create the run's files in {path}: {source}")]
    Output {
        /// The folder or file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A thread of the evaluation could not be started (out of memory or threads).
    #[error("cannot start the evaluation: {0}")]
    Start(std::io::Error),
    /// `tracker.ca_file` cannot be used.
    #[error("tracker.ca_file {path}: {why}")]
    TrackerRoots {
        /// The file, as resolved.
        path: String,
        /// What is wrong with it.
        why: String,
    },
}

/// A path from the configuration: relative to the input folder unless absolute.
fn in_input(input: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() { p } else { input.join(p) }
}

/// The fixed address whose keyed hash is `run.key_check`.
pub(crate) const KEY_CHECK_ADDRESS: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// `opts` with `tracker.ca_file` resolved against the input folder and checked, so a
/// wrong file stops the run at once instead of failing every HTTPS announce.
fn with_tracker_roots(opts: &RunOptions) -> Result<RunOptions, RunError> {
    let file = &opts.config.tracker.ca_file;
    if file.is_empty() {
        return Ok(opts.clone());
    }
    let path = in_input(&opts.input, file);
    let fail = |why: String| RunError::TrackerRoots {
        path: path.display().to_string(),
        why,
    };
    crate::tracker::tls::load_roots(&path).map_err(fail)?;
    let mut resolved = opts.clone();
    resolved.config.tracker.ca_file = path.display().to_string();
    Ok(resolved)
}

/// What a finished run reports. The peer, visit and confirmed figures are read back
/// from the database after it was closed, so the summary never disagrees with it.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run's database and log.
    pub files: RunFiles,
    /// Torrents analysed.
    pub torrents: usize,
    /// Of which magnet links still waiting for metadata.
    pub pending_metadata: usize,
    /// Peers known at the end (in memory, observed or not).
    pub peers_known: u64,
    /// Peers with a row in the database.
    pub peers: u64,
    /// Visit rows.
    pub visits: u64,
    /// Of which successful.
    pub visits_ok: u64,
    /// Confirmed downloads in the database (`confirmed_download`).
    pub confirmed: u64,
    /// Set when the run could not keep its records (the writer gave up): btda then
    /// exits non-zero with this message.
    pub failure: Option<String>,
    /// Why the run ended.
    pub end_reason: String,
    /// Wall-clock length in seconds.
    pub seconds: i64,
    /// The writer's totals.
    pub writer: WriterSummary,
}

impl RunOutcome {
    /// The summary printed when the run ends (figures as the database holds them).
    pub fn summary(&self) -> String {
        let mut text = format!(
            "btda run ended ({}) after {}\n  torrents: {} ({} waiting for metadata)\n  \
             peers: {} observed ({} known), visits: {} ({} ok), confirmed downloads: {}\n  \
             database: {} ({} records in {} transactions, {} refused)\n  log: {}\n",
            self.end_reason,
            crate::clock::format_duration(self.seconds),
            self.torrents,
            self.pending_metadata,
            self.peers,
            self.peers_known,
            self.visits,
            self.visits_ok,
            self.confirmed,
            self.files.database.display(),
            self.writer.committed,
            self.writer.batches,
            self.writer.failed,
            self.files.log.display(),
        );
        if let Some(why) = &self.failure {
            text.push_str(&format!(
                "  NOT ALL RECORDS WERE WRITTEN: {why}; {} records lost. The database is \
                 consistent up to the last commit.\n",
                self.writer.lost
            ));
        }
        text
    }
}

/// Loads the inputs, or explains why there is nothing to analyse.
pub(crate) fn load_inputs(input: &Path, config: &Config) -> Result<ImportReport, RunError> {
    let report = import_inputs(input, config.import.max_torrent_bytes).map_err(|source| {
        RunError::Input {
            path: input.display().to_string(),
            source,
        }
    })?;
    if report.torrents.is_empty() {
        for skipped in &report.skipped {
            eprintln!("skipped {skipped}");
        }
        return Err(RunError::NothingToAnalyse {
            input: input.display().to_string(),
            skipped: report.skipped.len(),
        });
    }
    Ok(report)
}

/// Runs the measurement until `shutdown` is requested.
pub fn run(opts: &RunOptions, shutdown: &Shutdown) -> Result<RunOutcome, RunError> {
    let opts = &with_tracker_roots(opts)?;
    let imported = load_inputs(&opts.input, &opts.config)?;
    let started_at = crate::clock::unix_now();
    let started = Instant::now();
    let host = files::hostname();
    let files =
        RunFiles::choose(&opts.output, started_at, &host).map_err(|source| RunError::Output {
            path: opts.output.display().to_string(),
            source,
        })?;
    logging::init(Some(&files.log), opts.verbosity).map_err(|source| RunError::Output {
        path: files.log.display().to_string(),
        source,
    })?;
    for skipped in &imported.skipped {
        log::warn!("skipped {skipped}");
    }
    for merged in &imported.merged {
        log::warn!("{}", crate::text::escape_control(merged));
    }
    for refused in &imported.refused_urls {
        log::warn!("{refused}");
    }

    let in_input = |p: &String| in_input(&opts.input, p);
    let g = &opts.config.geo;
    let geo = Arc::new(crate::geo::Geo::open(
        &g.city.iter().map(in_input).collect::<Vec<_>>(),
        &g.asn.iter().map(in_input).collect::<Vec<_>>(),
        g.store_city,
    ));
    let (geo_city, geo_asn) = geo.describe();

    let writer = Writer::start_with_stop(
        &files.database,
        WriterSettings::from(&opts.config.writer),
        shutdown.clone(),
    )?;
    let writer_stats = writer.stats();
    let db = writer.sender();
    db.send(Record::RunStart(RunStart {
        run_uid: crate::store::records::new_run_uid(),
        started_at,
        hostname: host,
        version: env!("CARGO_PKG_VERSION").to_string(),
        config: opts.config.to_stored_toml(),
        geo_city,
        geo_asn,
        key_check: opts
            .config
            .privacy
            .peer_key()
            .map(|k| crate::book::PeerKeyer::new(k).key(&KEY_CHECK_ADDRESS)),
    }))?;
    let mut torrents = imported.torrents;
    // Metadata fetched by an earlier run is reused, so each magnet is fetched once.
    for t in torrents.iter_mut().filter(|t| t.metainfo.is_none()) {
        if let Some(meta) = magnets::saved_metadata(&opts.output, t) {
            log::info!("torrent {}: metadata from an earlier run", t.info_hash);
            t.name = meta.name.clone();
            t.metainfo = Some(meta);
        }
    }
    for (i, torrent) in torrents.iter().enumerate() {
        db.send(Record::Torrent(torrent_row(
            crate::torrent::TorrentId::new(i as u32).db_id(),
            torrent,
            &opts.config,
            started_at,
        )))?;
        log::info!(
            "torrent {} {:?}: {}",
            torrent.info_hash,
            torrent.name,
            torrent
                .metainfo
                .as_ref()
                .map_or("metadata pending".to_string(), |m| {
                    format!("{} pieces of {} bytes", m.pieces_count, m.piece_size)
                })
        );
    }
    log::info!(
        "run started: {} torrents, database {}",
        torrents.len(),
        files.database.display()
    );
    log::info!(
        "GLIBC_TUNABLES: {}",
        std::env::var("GLIBC_TUNABLES")
            .unwrap_or_else(|_| "(unset: glibc's per-thread caches on)".to_string())
    );
    println!(
        "btda: analysing {} torrents; database {}; press Ctrl+C to stop",
        torrents.len(),
        files.database.display()
    );

    let evaluation = match evaluation::start(
        &opts.config,
        &torrents,
        db.clone(),
        writer.stats(),
        shutdown,
        &opts.output,
        geo,
    ) {
        Ok(e) => e,
        Err(e) => {
            // What started was stopped again; keep what the writer already has.
            let _ = db.send(Record::RunEnd {
                ended_at: crate::clock::unix_now(),
                reason: format!("cannot start: {e}"),
            });
            drop(db);
            let _ = writer.finish();
            return Err(RunError::Start(e));
        }
    };
    let monitor = crate::monitor::Monitor::new(
        Arc::clone(&evaluation.engine),
        writer.stats(),
        evaluation.workers,
    );
    let interval = opts.config.monitor.status_interval_secs;
    let mut since = (Instant::now(), 0, 0);
    let mut next_status = Instant::now() + interval;
    while !shutdown.requested() && !writer_stats.gave_up() {
        // Short waits: a writer that gave up must stop the run soon.
        if shutdown.wait(Duration::from_millis(500)) || writer_stats.gave_up() {
            break;
        }
        if !interval.is_zero() && Instant::now() >= next_status {
            eprintln!("{}", monitor.status_line(torrents.len(), &mut since));
            next_status = Instant::now() + interval;
        }
    }
    if writer_stats.gave_up() {
        eprintln!(
            "btda: stopping: the database cannot be written ({})",
            writer_stats.last_error()
        );
        shutdown.request(); // the same ordered stop as Ctrl+C
    }

    log::info!("stop requested; shutting down");
    let engine = Arc::clone(&evaluation.engine);
    drop(monitor);
    evaluation.stop();
    let counts = engine.queue.counts();
    let pending_metadata = engine.pending_metadata();
    drop(engine);
    // Not stored when the writer gave up (the run row then keeps no end; the summary
    // and the exit status say why).
    let _ = db.send(Record::RunEnd {
        ended_at: crate::clock::unix_now(),
        reason: "signal".into(),
    });
    drop(db);
    let summary = writer.finish()?;
    log::info!(
        "database closed: {} records in {} transactions, {} refused, {} lost",
        summary.committed,
        summary.batches,
        summary.failed,
        summary.lost
    );
    let failure = summary.gave_up.clone();
    if let Some(why) = &failure {
        log::error!("run ended without all its records: {why}");
    }
    let end_reason = failure.clone().unwrap_or_else(|| "signal".into());
    let stored = read_back(&files.database);
    Ok(RunOutcome {
        files,
        torrents: torrents.len(),
        pending_metadata,
        peers_known: counts.peers.known,
        peers: stored.0,
        visits: stored.1,
        visits_ok: stored.2,
        confirmed: stored.3,
        failure,
        end_reason,
        seconds: i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX),
        writer: summary,
    })
}

/// Peer rows, visit rows, ok visit rows and confirmed downloads as the closed database
/// holds them (zeros, with a warning, if it cannot be read).
fn read_back(database: &Path) -> (u64, u64, u64, u64) {
    match crate::offline::report::read(database) {
        Ok(r) => r.torrents.iter().fold((0, 0, 0, 0), |a, t| {
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            (
                a.0 + n(t.peers),
                a.1 + n(t.visits),
                a.2 + n(t.visits_ok),
                a.3 + n(t.confirmed),
            )
        }),
        Err(e) => {
            log::error!("cannot read the database back for the summary: {e}");
            (0, 0, 0, 0)
        }
    }
}

/// The `torrent` row for a torrent with program-assigned `id`.
pub(crate) fn torrent_row(id: i64, t: &Torrent, config: &Config, added_at: i64) -> TorrentRow {
    let m = t.metainfo.as_ref();
    TorrentRow {
        id,
        info_hash: t.info_hash.to_hex(),
        name: t.name.clone(),
        pieces_count: m.map(|m| m.pieces_count),
        piece_size: m.map(|m| m.piece_size),
        total_size: m.map(|m| m.total_size),
        complete_threshold: t.threshold_pieces(config.analysis.threshold),
        threshold: config.analysis.threshold,
        source: t.source.kind(),
        trackers: t.trackers.clone(),
        private: m.is_some_and(|m| m.private),
        added_at,
    }
}
