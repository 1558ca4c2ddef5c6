//! `btda import` over the committed fixtures and over torrents made fresh by Debian's
//! mktorrent, with info-hashes computed independently (Python over the raw `info` slice,
//! and transmission-show where it agrees).

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::{btda, fixtures, read_tsv};

fn import(input: &std::path::Path) -> (bool, String, String) {
    let out = btda()
        .args(["import", "--input"])
        .arg(input)
        .output()
        .expect("btda runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn by_hash(stdout: &str) -> HashMap<String, HashMap<String, String>> {
    read_tsv(stdout)
        .into_iter()
        .map(|row| (row["info_hash"].clone(), row))
        .collect()
}

#[test]
fn fixtures_load_with_independent_hashes() {
    let (ok, stdout, stderr) = import(&fixtures().join("inputs"));
    assert!(ok, "import failed: {stderr}");
    let got = by_hash(&stdout);
    let expected = read_tsv(&std::fs::read_to_string(fixtures().join("expected.tsv")).unwrap());
    for want in expected.iter().filter(|w| w["pieces"] != "merged") {
        let row = got.get(&want["info_hash"]).unwrap_or_else(|| {
            panic!(
                "{} ({}) not imported:\n{stdout}",
                want["file"], want["info_hash"]
            )
        });
        for col in ["pieces", "piece_size", "total_size"] {
            assert_eq!(row[col], want[col], "{} {col}", want["file"]);
        }
        // Every tracker of every tier, in order (merged inputs may append more).
        if want["trackers"] != "-" {
            assert!(
                row["trackers"].starts_with(&want["trackers"]),
                "{}: {}",
                want["file"],
                row["trackers"]
            );
        }
    }
    // Four good files, one magnet (two lines merged), the copies merged: five torrents.
    assert_eq!(got.len(), 5, "{stdout}");
    // The magnet line 4 (same hash in base32) adds its tracker to line 3's torrent.
    let magnet = &got["c12fe1c06bba254a9dc9f519b335aa7c1367a88a"];
    assert_eq!(
        magnet["trackers"],
        "udp://127.0.0.1:6969,http://127.0.0.5/announce"
    );
    assert_eq!(magnet["name"], "Pending Example");
    assert_eq!(magnet["source"], "magnet");
    // Duplicates are warnings naming both inputs.
    assert!(
        stderr.contains("nested/copy.torrent repeats info-hash be8df057"),
        "{stderr}"
    );
    assert!(
        stderr.contains("magnet.txt:7 repeats info-hash"),
        "{stderr}"
    );
}

#[test]
fn every_malformed_input_is_skipped_with_its_reason() {
    let (_, _, stderr) = import(&fixtures().join("inputs"));
    let expected = read_tsv(&std::fs::read_to_string(fixtures().join("expected-bad.tsv")).unwrap());
    assert!(expected.len() >= 12);
    for bad in &expected {
        let line = stderr
            .lines()
            .find(|l| l.starts_with("skipped ") && l.contains(&format!("{}:", bad["file"])))
            .unwrap_or_else(|| panic!("no skip line for {}:\n{stderr}", bad["file"]));
        assert!(line.contains(&bad["reason contains"]), "{line}");
    }
    let skipped = stderr.lines().filter(|l| l.starts_with("skipped ")).count();
    assert_eq!(skipped, expected.len(), "{stderr}");
}

#[test]
fn transmission_disagrees_on_non_canonical_torrents_and_btda_follows_the_raw_bytes() {
    // transmission-show 3.00 hashes a sorted re-encoding of `info`; libtorrent and btda
    // hash the bytes as they are in the file. The fixture records both.
    let expected = read_tsv(&std::fs::read_to_string(fixtures().join("expected.tsv")).unwrap());
    let row = expected
        .iter()
        .find(|r| r["file"] == "hand/non-canonical.torrent")
        .unwrap();
    assert_ne!(row["info_hash"], row["transmission_show"]);
    for row in expected
        .iter()
        .filter(|r| r["file"].starts_with("mktorrent") || r["file"].starts_with("nested/mk"))
    {
        assert_eq!(
            row["info_hash"], row["transmission_show"],
            "{}",
            row["file"]
        );
    }
}

/// Hash printed by transmission-show for a canonical torrent.
fn transmission_hash(path: &std::path::Path) -> String {
    let out = Command::new("transmission-show")
        .arg(path)
        .output()
        .expect("transmission-show is installed by `make deps`");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Hash:").map(|h| h.trim().to_string()))
        .expect("transmission-show prints a hash")
}

#[test]
fn fresh_mktorrent_torrents_match_transmission_show() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap();
    let content = dir.path().join("content");
    std::fs::create_dir_all(content.join("sub")).unwrap();
    // Sizes around piece boundaries, content from the test's own process id and clock.
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64);
    let mut x = seed | 1;
    let mut bytes = |n: usize| {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>()
    };
    std::fs::write(content.join("a.bin"), bytes(65_536)).unwrap();
    std::fs::write(content.join("sub/b.bin"), bytes(1)).unwrap();
    std::fs::write(dir.path().join("single.bin"), bytes(200_003)).unwrap();
    let cases = [
        ("multi.torrent", content.clone(), "16", 2u64, 65_537u64),
        (
            "single.torrent",
            dir.path().join("single.bin"),
            "15",
            7,
            200_003,
        ),
    ];
    for (name, src, log2, _, _) in &cases {
        let status = Command::new("mktorrent")
            .args(["-l", log2, "-a", "http://127.0.0.1:1/announce", "-o"])
            .arg(input.join(name))
            .arg(src)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("mktorrent is installed by `make deps`");
        assert!(status.success());
    }
    let (ok, stdout, stderr) = import(&input);
    assert!(ok, "{stderr}");
    let got = by_hash(&stdout);
    for (name, _, log2, pieces, total) in &cases {
        let hash = transmission_hash(&input.join(name));
        let row = got
            .get(&hash)
            .unwrap_or_else(|| panic!("{name}: {hash} not in\n{stdout}"));
        assert_eq!(row["pieces"], pieces.to_string(), "{name}");
        assert_eq!(row["total_size"], total.to_string(), "{name}");
        assert_eq!(
            row["piece_size"],
            (1u64 << log2.parse::<u32>().unwrap()).to_string()
        );
    }
}

#[test]
fn nothing_valid_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.torrent"), b"d4:info").unwrap();
    let (ok, _, stderr) = import(dir.path());
    assert!(!ok);
    assert!(
        stderr.contains("broken.torrent: not valid bencode: truncated"),
        "{stderr}"
    );
}

/// A FIFO, a symlink to /dev/zero and a directory named like torrents are skipped at
/// once with a reason (a FIFO used to block import forever, /dev/zero to eat memory).
#[test]
fn special_files_are_skipped_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path();
    std::fs::copy(
        fixtures().join("inputs/mktorrent-single.torrent"),
        input.join("good.torrent"),
    )
    .unwrap();
    let fifo = input.join("fifo.torrent");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success(),
        "mkfifo"
    );
    std::os::unix::fs::symlink("/dev/zero", input.join("zero.torrent")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", input.join("magnet.txt")).unwrap();
    let start = std::time::Instant::now();
    let (ok, stdout, stderr) = import(input);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "import took {:?}",
        start.elapsed()
    );
    assert!(ok, "{stderr}");
    assert_eq!(read_tsv(&stdout).len(), 1, "{stdout}");
    for (name, why) in [
        ("fifo.torrent", "a FIFO"),
        ("zero.torrent", "a device"),
        ("magnet.txt", "a device"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("skipped") && l.contains(name) && l.contains(why)),
            "{name}: {stderr}"
        );
    }
}

/// Tracker URLs and names with control characters cannot forge output rows: URLs with
/// control characters or white space are refused with a reason, names are printed with
/// controls escaped, and `torrent.trackers` is a JSON array.
#[test]
fn injected_urls_and_names_are_refused_or_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path();
    let info = "d6:lengthi16384e4:name14:ev\til\nname\x1b[1m12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    let bad =
        "http://127.0.0.1:1/a\n0000000000000000000000000000000000000000\tforged\t1\t1\t1\t-\tfile";
    std::fs::write(
        input.join("evil.torrent"),
        format!(
            "d8:announce{}:{bad}13:announce-listll{}:{bad}el23:http://127.0.0.1:2/goodee4:info{info}e",
            bad.len(),
            bad.len()
        ),
    )
    .unwrap();
    std::fs::write(
        input.join("magnet.txt"),
        "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=x%0Ay&tr=http%3A%2F%2F127.0.0.1%3A3%2Fa%0Aforged%09row&tr=udp%3A%2F%2F127.0.0.1%3A4\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = import(input);
    assert!(ok, "{stderr}");
    let rows = read_tsv(&stdout);
    assert_eq!(rows.len(), 2, "one row per torrent:\n{stdout}");
    assert!(
        !stdout.contains('\x1b') && !stdout.contains("forged\t"),
        "{stdout}"
    );
    let evil = rows.iter().find(|r| r["source"] == "file").unwrap();
    assert_eq!(evil["name"], "ev\\til\\nname\\u{1b}[1m");
    assert_eq!(evil["trackers"], "http://127.0.0.1:2/good");
    let magnet = rows.iter().find(|r| r["source"] == "magnet").unwrap();
    assert_eq!(magnet["trackers"], "udp://127.0.0.1:4");
    assert_eq!(
        stderr
            .matches("refused: contains control characters")
            .count(),
        2,
        "the file's URL (announce and list, merged) and the magnet's: {stderr}"
    );
}
