//! Loading the inputs: every `*.torrent` below the input folder and `magnet.txt`.
//!
//! A bad input never stops the others: it becomes a [`Skipped`] entry with its path (and
//! line) and a one-line reason. Inputs naming the same info-hash are merged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Torrent, magnet, metainfo};

/// Name of the magnet link list inside the input folder.
pub(crate) const MAGNET_FILE: &str = "magnet.txt";

/// An input that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// File the input was in.
    pub path: PathBuf,
    /// 1-based line for magnet links.
    pub line: Option<usize>,
    /// One-line reason.
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Paths and reasons can carry bytes from the input: shown with controls escaped.
        let path = crate::text::escape_control(&self.path.display().to_string());
        let reason = crate::text::escape_control(&self.reason);
        match self.line {
            Some(line) => write!(f, "{path}:{line}: {reason}"),
            None => write!(f, "{path}: {reason}"),
        }
    }
}

/// Result of loading all inputs.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Torrents to analyse, one per info-hash, in the order first seen.
    pub torrents: Vec<Torrent>,
    /// Inputs that were refused.
    pub skipped: Vec<Skipped>,
    /// Inputs merged into an earlier one with the same info-hash (warnings).
    pub merged: Vec<String>,
    /// Tracker URLs refused (control characters or white space), with their input.
    pub refused_urls: Vec<String>,
}

/// Loads every `*.torrent` below `input` (recursively, sorted by path) and then the links
/// in `input/magnet.txt`. Files larger than `max_file_bytes` are skipped unread.
pub fn import_inputs(input: &Path, max_file_bytes: u64) -> std::io::Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut by_hash: HashMap<super::InfoHash, usize> = HashMap::new();

    let mut files = Vec::new();
    collect_torrent_files(input, &mut files)?;
    files.sort();
    for path in files {
        match load_torrent_file(&path, max_file_bytes) {
            Ok(torrent) => add(&mut report, &mut by_hash, torrent),
            Err(reason) => report.skipped.push(Skipped {
                path,
                line: None,
                reason,
            }),
        }
    }

    let magnets = input.join(MAGNET_FILE);
    let magnet_text = match read_regular(&magnets, MAX_MAGNET_FILE_BYTES) {
        Ok(text) => Some(text),
        Err(ReadError::Missing) => None,
        Err(e) => {
            report.skipped.push(Skipped {
                path: magnets.clone(),
                line: None,
                reason: e.to_string(),
            });
            None
        }
    };
    if let Some(text) = magnet_text {
        for (i, line) in String::from_utf8_lossy(&text).lines().enumerate() {
            let line_text = line.trim();
            if line_text.is_empty() || line_text.starts_with('#') {
                continue;
            }
            match magnet::parse(line_text) {
                Ok(m) => add(
                    &mut report,
                    &mut by_hash,
                    Torrent::from_magnet(m, magnets.clone(), i + 1),
                ),
                Err(e) => report.skipped.push(Skipped {
                    path: magnets.clone(),
                    line: Some(i + 1),
                    reason: e.to_string(),
                }),
            }
        }
    }
    for t in &mut report.torrents {
        let before = std::mem::take(&mut t.trackers);
        for url in before {
            match crate::text::url_problem(&url) {
                None => t.trackers.push(url),
                Some(why) => report.refused_urls.push(format!(
                    "{}: tracker URL \"{}\" refused: {why}",
                    describe(&t.source),
                    crate::text::escape_control(&url)
                )),
            }
        }
    }
    Ok(report)
}

/// Largest `magnet.txt` read.
const MAX_MAGNET_FILE_BYTES: u64 = 16 << 20;

/// Why an input file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// It does not exist.
    #[error("no such file")]
    Missing,
    /// A FIFO, device, socket or directory: never read (a FIFO would block, a device
    /// such as /dev/zero never ends).
    #[error("not a regular file ({0}); skipped unread")]
    NotRegular(&'static str),
    /// Longer than the cap.
    #[error("file is over the limit of {0} bytes (import.max_torrent_bytes)")]
    TooLarge(u64),
    /// The read failed.
    #[error("{0}")]
    Io(std::io::Error),
}

/// Reads a regular file of at most `max_bytes`. It is opened without blocking and
/// checked on the open descriptor (so a FIFO or device swapped in after a check is still
/// caught), and the cap applies to the bytes actually read, not to what the metadata
/// says (0 for a device).
pub(crate) fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    /// O_NONBLOCK on Linux: opening a FIFO with no writer must not wait.
    const O_NONBLOCK: i32 = 0o4000;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::Missing,
            _ => ReadError::Io(e),
        })?;
    let kind = file.metadata().map_err(ReadError::Io)?.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular(if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "not a plain file"
        }));
    }
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge(max_bytes));
    }
    Ok(bytes)
}

fn collect_torrent_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_torrent_files(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("torrent"))
        {
            out.push(path);
        }
    }
    Ok(())
}

fn load_torrent_file(path: &Path, max_bytes: u64) -> Result<Torrent, String> {
    let bytes = read_regular(path, max_bytes).map_err(|e| e.to_string())?;
    let meta = metainfo::parse(&bytes).map_err(|e| e.to_string())?;
    Ok(Torrent::from_metainfo(meta, path.to_path_buf()))
}

/// Adds a torrent, merging it into an earlier one with the same info-hash. Metadata from
/// a file wins over a pending magnet; trackers and manual peers are united.
fn add(report: &mut ImportReport, by_hash: &mut HashMap<super::InfoHash, usize>, new: Torrent) {
    let Some(&i) = by_hash.get(&new.info_hash) else {
        by_hash.insert(new.info_hash, report.torrents.len());
        report.torrents.push(new);
        return;
    };
    let old = &mut report.torrents[i];
    report.merged.push(format!(
        "{} repeats info-hash {} of {}; merged",
        describe(&new.source),
        new.info_hash,
        describe(&old.source)
    ));
    if old.metainfo.is_none() && new.metainfo.is_some() {
        old.name = new.name.clone();
        old.metainfo = new.metainfo;
    }
    old.trackers = metainfo::dedup_urls(old.trackers.drain(..).chain(new.trackers));
    for peer in new.manual_peers {
        if !old.manual_peers.contains(&peer) {
            old.manual_peers.push(peer);
        }
    }
}

fn describe(source: &super::TorrentSource) -> String {
    match source {
        super::TorrentSource::File(p) => p.display().to_string(),
        super::TorrentSource::Magnet { path, line } => format!("{}:{line}", path.display()),
    }
}
