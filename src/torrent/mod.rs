//! Torrents to analyse: `.torrent` files, magnet links, and the [`Torrent`] type that
//! the rest of btda works with.

pub mod bencode;
pub mod import;
mod info_hash;
mod magnet;
pub mod metainfo;
pub mod registry;

pub use registry::{Figures, TorrentId, TorrentRegistry};

pub use import::{ImportReport, Skipped, import_inputs};
pub use info_hash::InfoHash;
pub use magnet::Magnet;
pub use metainfo::Metainfo;

use std::path::PathBuf;

/// Where a torrent came from; stored as `torrent.source` (`file` / `magnet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorrentSource {
    /// A `.torrent` file.
    File(PathBuf),
    /// A line of `magnet.txt` (file path and 1-based line number).
    Magnet {
        /// The file the link was read from.
        path: PathBuf,
        /// Its line number, from 1.
        line: usize,
    },
}

impl TorrentSource {
    /// The value of `torrent.source` in the database.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Magnet { .. } => "magnet",
        }
    }
}

/// One swarm to analyse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torrent {
    /// The swarm's v1 info-hash.
    pub info_hash: InfoHash,
    /// Name from the metainfo, else the magnet's `dn`, else the info-hash.
    pub name: String,
    /// Content description; `None` while a magnet link's metadata is pending.
    pub metainfo: Option<Metainfo>,
    /// Tracker URLs from every input that named this info-hash, in order, once each.
    pub trackers: Vec<String>,
    /// Peers given by hand (`x.pe` of magnet links), as `host:port` text.
    pub manual_peers: Vec<String>,
    /// The first input that named this info-hash.
    pub source: TorrentSource,
}

impl Torrent {
    /// A torrent from a parsed `.torrent` file.
    pub(crate) fn from_metainfo(meta: Metainfo, path: PathBuf) -> Self {
        Self {
            info_hash: meta.info_hash,
            name: meta.name.clone(),
            trackers: meta.trackers.clone(),
            metainfo: Some(meta),
            manual_peers: Vec::new(),
            source: TorrentSource::File(path),
        }
    }

    /// A torrent from a magnet link; its metadata is pending.
    pub(crate) fn from_magnet(magnet: Magnet, path: PathBuf, line: usize) -> Self {
        Self {
            info_hash: magnet.info_hash,
            name: magnet.name.unwrap_or_else(|| magnet.info_hash.to_hex()),
            metainfo: None,
            trackers: magnet.trackers,
            manual_peers: magnet.peers,
            source: TorrentSource::Magnet { path, line },
        }
    }

    /// Completion threshold in pieces: `ceil(fraction × pieces_count)`, at least 1.
    /// `None` while the piece count is unknown.
    pub fn threshold_pieces(&self, fraction: f64) -> Option<u32> {
        self.metainfo
            .as_ref()
            .map(|m| threshold_pieces(fraction, m.pieces_count))
    }
}

/// `ceil(fraction × pieces)` in exact integer arithmetic (0.98 × 100 must be 98, which
/// floating point gets wrong), clamped to 1..=pieces.
pub fn threshold_pieces(fraction: f64, pieces: u32) -> u32 {
    let ppm = (fraction.clamp(0.0, 1.0) * 1e6).round() as u64;
    let t = (ppm * u64::from(pieces)).div_ceil(1_000_000);
    (t as u32).clamp(1, pieces.max(1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn threshold_is_exact() {
        use super::threshold_pieces;
        assert_eq!(threshold_pieces(0.98, 100), 98);
        assert_eq!(threshold_pieces(0.98, 101), 99);
        assert_eq!(threshold_pieces(1.0, 7), 7);
        assert_eq!(threshold_pieces(0.0, 7), 1);
        assert_eq!(threshold_pieces(0.5, 1), 1);
    }
}
