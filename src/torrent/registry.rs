//! The facts about each analysed torrent that can change during a run: a magnet link's
//! pieces count and size arrive with its metadata. One registry, shared by the peer
//! engine and the tracker loop, is updated in one place, so that from then on visits
//! read the right pieces count and trackers are told the real `left`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::InfoHash;

/// The database id (`torrent.id`) of the torrent at `index` in the run: the one
/// conversion between the in-memory index and the database.
pub fn db_id(index: u32) -> i64 {
    i64::from(index) + 1
}

#[derive(Debug)]
struct Entry {
    info_hash: InfoHash,
    /// 0 while metadata is pending.
    pieces: AtomicU32,
    /// 0 while metadata is pending.
    size: AtomicU64,
}

/// Every analysed torrent by its index in the run (its database id minus one).
#[derive(Debug)]
pub struct TorrentRegistry {
    entries: Vec<Entry>,
    by_hash: HashMap<InfoHash, u32>,
}

impl TorrentRegistry {
    /// Torrents in run order: info-hash and, when known, (pieces, size in bytes).
    pub fn new(torrents: impl IntoIterator<Item = (InfoHash, Option<(u32, u64)>)>) -> Self {
        let entries: Vec<Entry> = torrents
            .into_iter()
            .map(|(info_hash, meta)| Entry {
                info_hash,
                pieces: AtomicU32::new(meta.map_or(0, |m| m.0)),
                size: AtomicU64::new(meta.map_or(0, |m| m.1)),
            })
            .collect();
        let by_hash = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.info_hash, i as u32))
            .collect();
        Self { entries, by_hash }
    }

    /// Torrents in the run.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the run has no torrent.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index of the torrent with this info-hash.
    pub fn index_of(&self, info_hash: &InfoHash) -> Option<u32> {
        self.by_hash.get(info_hash).copied()
    }

    /// Its info-hash.
    pub fn info_hash(&self, torrent: u32) -> Option<InfoHash> {
        self.entries.get(torrent as usize).map(|e| e.info_hash)
    }

    /// Its pieces count, once known.
    pub fn pieces(&self, torrent: u32) -> Option<u32> {
        let n = self
            .entries
            .get(torrent as usize)?
            .pieces
            .load(Ordering::Acquire);
        (n > 0).then_some(n)
    }

    /// Its size in bytes, once known.
    pub fn size(&self, torrent: u32) -> Option<u64> {
        let n = self
            .entries
            .get(torrent as usize)?
            .size
            .load(Ordering::Acquire);
        (n > 0).then_some(n)
    }

    /// Records a torrent's metadata (a magnet's arrived).
    pub fn set_metadata(&self, torrent: u32, pieces: u32, size: u64) {
        if let Some(e) = self.entries.get(torrent as usize) {
            e.size.store(size, Ordering::Release);
            e.pieces.store(pieces, Ordering::Release);
        }
    }

    /// Torrents whose metadata is still pending.
    pub fn pending(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.pieces.load(Ordering::Acquire) == 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_arrives_in_one_place() {
        let a = InfoHash([1; 20]);
        let b = InfoHash([2; 20]);
        let r = TorrentRegistry::new([(a, Some((10, 163_840))), (b, None)]);
        assert_eq!((r.len(), r.pending()), (2, 1));
        assert_eq!(
            (r.index_of(&b), r.pieces(1), r.size(1)),
            (Some(1), None, None)
        );
        r.set_metadata(1, 1000, 16_384_000);
        assert_eq!(
            (r.pieces(1), r.size(1), r.pending()),
            (Some(1000), Some(16_384_000), 0)
        );
        assert_eq!((r.info_hash(0), r.pieces(0)), (Some(a), Some(10)));
        assert_eq!((r.index_of(&InfoHash([9; 20])), r.pieces(7)), (None, None));
    }
}
