//! The facts about each analysed torrent that can change during a run: a magnet link's
//! pieces count and size arrive with its metadata. One registry, shared by the peer
//! engine and the tracker loop, is updated in one place, so that from then on visits
//! read the right pieces count and trackers are told the real `left`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::InfoHash;

/// One analysed torrent in this run: its position in the run's list. The only way to
/// a database id is [`TorrentId::db_id`], so the two can never be confused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TorrentId(u32);

impl TorrentId {
    /// The torrent at `index` in the run's list.
    pub const fn new(index: u32) -> Self {
        Self(index)
    }

    /// Its position in the run's list.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// Its database id (`torrent.id`): the one conversion between the two.
    pub(crate) fn db_id(self) -> i64 {
        i64::from(self.0) + 1
    }
}

impl std::fmt::Display for TorrentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.db_id())
    }
}

/// What a torrent's metadata says, as far as the run needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// Pieces in the torrent.
    pub pieces: u32,
    /// Total size in bytes.
    pub size: u64,
    /// Pieces a peer needs to count as complete (T).
    pub threshold: u32,
}

#[derive(Debug)]
struct Entry {
    info_hash: InfoHash,
    /// 0 while metadata is pending.
    pieces: AtomicU32,
    /// 0 while metadata is pending.
    size: AtomicU64,
    /// 0 while metadata is pending.
    threshold: AtomicU32,
}

/// Every analysed torrent by its [`TorrentId`]: the one place that knows whether its
/// metadata is there and what it says, read by visits (pieces), the queue (threshold)
/// and trackers (size, for `left`).
#[derive(Debug)]
pub struct TorrentRegistry {
    entries: Vec<Entry>,
    by_hash: HashMap<InfoHash, TorrentId>,
}

impl TorrentRegistry {
    /// Torrents in run order: info-hash and, when known, its figures.
    pub fn new(torrents: impl IntoIterator<Item = (InfoHash, Option<Figures>)>) -> Self {
        let entries: Vec<Entry> = torrents
            .into_iter()
            .map(|(info_hash, f)| Entry {
                info_hash,
                pieces: AtomicU32::new(f.map_or(0, |f| f.pieces)),
                size: AtomicU64::new(f.map_or(0, |f| f.size)),
                threshold: AtomicU32::new(f.map_or(0, |f| f.threshold)),
            })
            .collect();
        let by_hash = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.info_hash, TorrentId(i as u32)))
            .collect();
        Self { entries, by_hash }
    }

    /// Torrents with these thresholds (None: metadata pending), as many pieces as the
    /// threshold and info-hashes `[1; 20]`, `[2; 20]`, …: for tests and benchmarks.
    pub fn with_thresholds(thresholds: &[Option<u32>]) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self::new(thresholds.iter().enumerate().map(|(i, t)| {
            let figures = t.map(|threshold| Figures {
                pieces: threshold,
                size: u64::from(threshold) * 16_384,
                threshold,
            });
            (InfoHash([i as u8 + 1; 20]), figures)
        })))
    }

    /// Torrents in the run.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the run has no torrent.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every torrent's id, in run order.
    pub fn ids(&self) -> impl Iterator<Item = TorrentId> + use<> {
        (0..self.entries.len() as u32).map(TorrentId)
    }

    /// The torrent with this info-hash.
    pub(crate) fn id_of(&self, info_hash: &InfoHash) -> Option<TorrentId> {
        self.by_hash.get(info_hash).copied()
    }

    /// Its info-hash.
    pub fn info_hash(&self, torrent: TorrentId) -> Option<InfoHash> {
        self.entries.get(torrent.index()).map(|e| e.info_hash)
    }

    fn known(&self, torrent: TorrentId, field: impl Fn(&Entry) -> u64) -> Option<u64> {
        let n = field(self.entries.get(torrent.index())?);
        (n > 0).then_some(n)
    }

    /// Its pieces count, once known.
    pub fn pieces(&self, torrent: TorrentId) -> Option<u32> {
        self.known(torrent, |e| e.pieces.load(Ordering::Acquire).into())
            .map(|n| n as u32)
    }

    /// Its size in bytes, once known.
    pub fn size(&self, torrent: TorrentId) -> Option<u64> {
        self.known(torrent, |e| e.size.load(Ordering::Acquire))
    }

    /// Its completion threshold T in pieces, once known.
    pub fn threshold(&self, torrent: TorrentId) -> Option<u32> {
        self.known(torrent, |e| e.threshold.load(Ordering::Acquire).into())
            .map(|n| n as u32)
    }

    /// What a visit to a peer of `torrent` needs, in one read: its info-hash, pieces
    /// count and threshold T, once its metadata is known. The threshold is read first
    /// (it is stored last), so a known threshold comes with its pieces count.
    pub(crate) fn for_visit(&self, torrent: TorrentId) -> Option<(InfoHash, u32, u32)> {
        let e = self.entries.get(torrent.index())?;
        let threshold = e.threshold.load(Ordering::Acquire);
        let pieces = e.pieces.load(Ordering::Acquire);
        (threshold > 0 && pieces > 0).then_some((e.info_hash, pieces, threshold))
    }

    /// Records a torrent's metadata (a magnet's arrived). The threshold is stored last,
    /// so whoever sees it also sees the pieces count and size.
    pub(crate) fn set_metadata(&self, torrent: TorrentId, figures: Figures) {
        if let Some(e) = self.entries.get(torrent.index()) {
            e.size.store(figures.size, Ordering::Release);
            e.pieces.store(figures.pieces, Ordering::Release);
            e.threshold.store(figures.threshold, Ordering::Release);
        }
    }

    /// Torrents whose metadata is still pending.
    pub fn pending(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.threshold.load(Ordering::Acquire) == 0)
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
        let ten = Figures {
            pieces: 10,
            size: 163_840,
            threshold: 10,
        };
        let r = TorrentRegistry::new([(a, Some(ten)), (b, None)]);
        let (first, second) = (TorrentId::new(0), TorrentId::new(1));
        assert_eq!((r.len(), r.pending()), (2, 1));
        assert_eq!(
            (
                r.id_of(&b),
                r.pieces(second),
                r.size(second),
                r.threshold(second)
            ),
            (Some(second), None, None, None)
        );
        let arrived = Figures {
            pieces: 1000,
            size: 16_384_000,
            threshold: 980,
        };
        r.set_metadata(second, arrived);
        assert_eq!(
            (
                r.pieces(second),
                r.size(second),
                r.threshold(second),
                r.pending()
            ),
            (Some(1000), Some(16_384_000), Some(980), 0)
        );
        assert_eq!((r.info_hash(first), r.pieces(first)), (Some(a), Some(10)));
        let absent = TorrentId::new(7);
        assert_eq!(
            (r.id_of(&InfoHash([9; 20])), r.pieces(absent)),
            (None, None)
        );
        assert_eq!(r.ids().collect::<Vec<_>>(), [first, second]);
    }

    #[test]
    fn the_database_id_is_the_position_plus_one() {
        assert_eq!(TorrentId::new(0).db_id(), 1);
        assert_eq!(TorrentId::new(41).db_id(), 42);
        assert_eq!(TorrentId::new(41).index(), 41);
        assert_eq!(TorrentId::new(u32::MAX).db_id(), i64::from(u32::MAX) + 1);
    }
}
