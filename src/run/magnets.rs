//! Magnet links in a run: fetch each pending torrent's metadata from its peers (magnet
//! `x.pe`, and peers trackers and the DHT found for it) without blocking anything else,
//! save it as `<info-hash>.torrent` in the output folder, and let the torrent join.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::peer::Engine;
use crate::peer::metadata::{fetch_metadata, torrent_file};
use crate::shutdown::Shutdown;
use crate::store::{Record, RecordSender};
use crate::torrent::{Figures, Torrent, TorrentId, metainfo};

/// A peer that failed is not asked again for this long.
const RETRY_PEER_AFTER: Duration = Duration::from_secs(15);

/// The saved metadata of `torrent` in `output`, if an earlier run fetched it.
pub(super) fn saved_metadata(output: &Path, torrent: &Torrent) -> Option<metainfo::Metainfo> {
    let path = output.join(format!("{}.torrent", torrent.info_hash));
    let meta = metainfo::parse(&std::fs::read(path).ok()?).ok()?;
    (meta.info_hash == torrent.info_hash).then_some(meta)
}

/// The background fetcher.
pub(super) struct MagnetService {
    thread: JoinHandle<()>,
}

impl MagnetService {
    /// Starts fetching for every torrent without metadata.
    pub(super) fn start(
        torrents: &[Torrent],
        engine: Arc<Engine>,
        db: RecordSender,
        config: &Config,
        output: &Path,
        stop: Shutdown,
    ) -> Option<Self> {
        let pending: Vec<(TorrentId, Torrent)> = torrents
            .iter()
            .enumerate()
            .filter(|(_, t)| t.metainfo.is_none())
            .map(|(i, t)| (TorrentId::new(i as u32), t.clone()))
            .collect();
        if pending.is_empty() {
            return None;
        }
        let (config, output) = (config.clone(), output.to_path_buf());
        let thread = std::thread::Builder::new()
            .name("magnets".into())
            .spawn(move || fetch_all(pending, &engine, &db, &config, &output, &stop))
            .ok()?;
        Some(Self { thread })
    }

    /// Waits for the fetcher (the stop flag must be set).
    pub(super) fn join(self) {
        let _ = self.thread.join();
    }
}

fn fetch_all(
    mut pending: Vec<(TorrentId, Torrent)>,
    engine: &Engine,
    db: &RecordSender,
    config: &Config,
    output: &Path,
    stop: &Shutdown,
) {
    let mut tried: HashMap<(TorrentId, SocketAddr), Instant> = HashMap::new();
    let budget = config.peer.metadata_fetch_secs;
    while !stop.requested() && !pending.is_empty() {
        let mut done = Vec::new();
        for (index, torrent) in &pending {
            let mut candidates: Vec<SocketAddr> = torrent
                .manual_peers
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect();
            candidates.extend(engine.queue.parked_peers(*index, 50));
            for addr in candidates {
                if stop.requested() {
                    return;
                }
                if tried
                    .get(&(*index, addr))
                    .is_some_and(|t| t.elapsed() < RETRY_PEER_AFTER)
                {
                    continue;
                }
                tried.insert((*index, addr), Instant::now());
                let me = engine.identity();
                match fetch_metadata(
                    addr,
                    torrent.info_hash,
                    &me,
                    &engine.timeouts,
                    config.peer.max_metadata_bytes,
                    budget,
                    stop,
                ) {
                    Ok(info) => {
                        if join_run(*index, torrent, &info, engine, db, config, output) {
                            done.push(*index);
                        }
                        break;
                    }
                    Err(e) => log::debug!(
                        "torrent {}: metadata not fetched from a peer: {e}",
                        torrent.info_hash
                    ),
                }
            }
        }
        pending.retain(|(i, _)| !done.contains(i));
        if stop.wait(Duration::from_secs(1)) {
            return;
        }
    }
}

/// Saves the metadata, records the torrent's figures, and starts visiting its peers.
fn join_run(
    index: TorrentId,
    torrent: &Torrent,
    info: &[u8],
    engine: &Engine,
    db: &RecordSender,
    config: &Config,
    output: &Path,
) -> bool {
    let file = torrent_file(info, &torrent.trackers);
    let meta = match metainfo::parse(&file) {
        Ok(m) => m,
        Err(e) => {
            log::warn!(
                "torrent {}: fetched metadata is not usable: {e}",
                torrent.info_hash
            );
            return true; // verified by hash, so no peer will give anything else
        }
    };
    let path = output.join(format!("{}.torrent", torrent.info_hash));
    if let Err(e) = std::fs::write(&path, &file) {
        log::warn!("cannot save {}: {e}", path.display());
    }
    let mut joined = torrent.clone();
    joined.name = meta.name.clone();
    joined.metainfo = Some(meta.clone());
    let _ = db.send(Record::Torrent(super::torrent_row(
        index.db_id(),
        &joined,
        config,
        crate::clock::unix_now(),
    )));
    // One update: visits read the pieces count, the queue the threshold, trackers the
    // size (the real `left`); then the peers parked for it are scheduled.
    engine.torrents.set_metadata(
        index,
        Figures {
            pieces: meta.pieces_count,
            size: meta.total_size,
            threshold: crate::torrent::threshold_pieces(
                config.analysis.threshold,
                meta.pieces_count,
            ),
        },
    );
    engine.queue.metadata_arrived(index);
    log::info!(
        "torrent {}: metadata fetched ({} pieces), saved as {}",
        torrent.info_hash,
        meta.pieces_count,
        path.display()
    );
    true
}
