//! The `btda import` listing: what import made of an input folder, one line per
//! torrent (tab-separated, names and URLs with control characters escaped) on stdout,
//! skipped inputs and warnings on stderr.

use crate::text::escape_control;
use crate::torrent::ImportReport;

/// Prints the listing of `report`; returns whether any torrent was loaded.
pub fn print(report: &ImportReport) -> bool {
    for skipped in &report.skipped {
        eprintln!("skipped {skipped}");
    }
    for merged in &report.merged {
        eprintln!("warning: {}", escape_control(merged));
    }
    for refused in &report.refused_urls {
        eprintln!("warning: {refused}");
    }
    println!("info_hash\tname\tpieces\tpiece_size\ttotal_size\ttrackers\tsource");
    for t in &report.torrents {
        let (pieces, piece_size, total) = match &t.metainfo {
            Some(m) => (
                m.pieces_count.to_string(),
                m.piece_size.to_string(),
                m.total_size.to_string(),
            ),
            None => ("metadata pending".into(), "-".into(), "-".into()),
        };
        let trackers = if t.trackers.is_empty() {
            "-".to_string()
        } else {
            let urls: Vec<String> = t.trackers.iter().map(|u| escape_control(u)).collect();
            urls.join(",")
        };
        println!(
            "{}\t{}\t{pieces}\t{piece_size}\t{total}\t{trackers}\t{}",
            t.info_hash,
            escape_control(&t.name),
            t.source.kind()
        );
    }
    eprintln!(
        "{} torrents loaded ({} waiting for metadata), {} inputs skipped",
        report.torrents.len(),
        report
            .torrents
            .iter()
            .filter(|t| t.metainfo.is_none())
            .count(),
        report.skipped.len()
    );
    !report.torrents.is_empty()
}
