//! `make stats` on two runs: one measured on a simulated swarm (`btda demo`) and one
//! with no peers at all. Every figure's PDF must exist with the expected number of
//! pages and readable text (its title, or the "No data" notice), with a PNG beside it;
//! report.pdf must build; and the per-torrent numbers R computed must equal
//! `btda report --json` (and R's threshold curve at the run's threshold must give
//! btda's confirmed count).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Each figure, its title text, and its page count given the number of torrents and
/// of download sets.
const FIGURES: [(&str, &str); 18] = [
    ("download_confirmed_scrape", "tracker-reported"),
    ("download_confirmed_unique", "unique peers"),
    ("download_each", "Downloads"),
    ("download_set", "Downloads"),
    ("source_all_torrents", "Peer sources"),
    ("source_per_torrent", "Peer sources"),
    ("visits", "Visits per peer"),
    ("speed_plot", "Download speed by country"),
    ("speed_map", "Median download speed by country"),
    ("location_map", "Peers by country"),
    ("isp", "Top ISPs"),
    ("clients", "Client mix"),
    ("workload", "Workload"),
    ("threshold", "Confirmed downloads by threshold"),
    ("tracker_requests", "Tracker requests"),
    ("timeouts", "Timing of successful visits"),
    (
        "crossing_prediction",
        "Predicted against observed crossing times",
    ),
    ("swarm_size", "Swarm size"),
];

fn pages(name: &str, torrents: usize, sets: usize) -> usize {
    match name {
        "download_each" | "source_per_torrent" => torrents.max(1),
        "download_set" => sets.max(1),
        "download_confirmed_scrape"
        | "download_confirmed_unique"
        | "visits"
        | "isp"
        | "tracker_requests"
        | "timeouts"
        | "crossing_prediction" => 2,
        _ => 1,
    }
}

fn text_of(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed by `make deps`");
    assert!(out.status.success(), "pdftotext {}", pdf.display());
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn page_count(pdf: &Path) -> usize {
    let out = Command::new("pdfinfo").arg(pdf).output().expect("pdfinfo");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no page count for {}", pdf.display()))
}

/// Every font of `pdf` is embedded (`pdffonts`' `emb` column).
fn assert_fonts_embedded(pdf: &Path) {
    let out = Command::new("pdffonts")
        .arg(pdf)
        .output()
        .expect("pdffonts");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let fonts: Vec<&str> = text.lines().skip(2).collect();
    assert!(!fonts.is_empty(), "{}: no fonts", pdf.display());
    for line in fonts {
        // name, type (one or two words), encoding, emb, sub, uni, object, ID
        let cols: Vec<&str> = line.split_whitespace().collect();
        let emb = cols[cols.len() - 5];
        assert_eq!(emb, "yes", "{}: font not embedded: {line}", pdf.display());
    }
}

/// Runs `make stats DB=…` and checks everything it must write; returns the run folder.
fn check_stats(db: &Path, torrents: usize, sets: usize) -> PathBuf {
    let out = Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-s", "stats"])
        .arg(format!("DB={}", db.display()))
        .output()
        .expect("make");
    assert!(
        out.status.success(),
        "make stats failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = db.with_extension("");
    for (name, title) in FIGURES {
        let pdf = run.join("figures").join(format!("{name}.pdf"));
        assert!(pdf.exists(), "{} missing", pdf.display());
        assert!(
            run.join("figures").join(format!("{name}.png")).exists(),
            "{name}.png missing"
        );
        assert_eq!(
            page_count(&pdf),
            pages(name, torrents, sets),
            "{name}: pages"
        );
        let text = text_of(&pdf);
        assert!(
            text.contains(title),
            "{name}: no \"{title}\" in its text:\n{text}"
        );
    }
    let report = run.join("report.pdf");
    assert!(report.exists(), "report.pdf missing");
    for pdf in [run.join("figures/timeouts.pdf"), report.clone()] {
        assert_fonts_embedded(&pdf);
    }
    let figure_pages: usize = FIGURES.iter().map(|(n, _)| pages(n, torrents, sets)).sum();
    assert!(
        page_count(&report) > figure_pages / 2,
        "report.pdf is too short"
    );
    let text = text_of(&report);
    for heading in [
        "Per torrent",
        "How crossings were witnessed",
        "Visit outcomes",
        "Peer sources",
        "Figures",
    ] {
        assert!(text.contains(heading), "report.pdf lacks {heading}");
    }
    run
}

/// numbers.csv (R) against `btda report --json`, torrent by torrent.
fn check_numbers(db: &Path, run: &Path) -> usize {
    let json = common::btda()
        .args(["report", "--json"])
        .arg(db)
        .output()
        .unwrap();
    assert!(json.status.success());
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let csv = std::fs::read_to_string(run.join("numbers.csv")).unwrap();
    let csv = csv.replace('"', "").replace(',', "\t");
    let rows = common::read_tsv(&csv);
    let torrents = report["torrents"].as_array().unwrap();
    assert_eq!(rows.len(), torrents.len());
    for t in torrents {
        let hash = t["info_hash"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|r| r["info_hash"] == hash)
            .unwrap_or_else(|| panic!("{hash} missing from numbers.csv"));
        let num = |v: &serde_json::Value| v.as_i64().map_or(String::new(), |n| n.to_string());
        for (r, j) in [
            ("peers", "peers"),
            ("visits", "visits"),
            ("visits_ok", "visits_ok"),
            ("complete_peers", "complete_peers"),
            ("confirmed", "confirmed"),
            ("confirmed_strict", "confirmed_strict"),
            ("encrypted_only", "encrypted_only"),
            ("tracker_reported", "completed_increase"),
            ("threshold_confirmed", "confirmed"),
        ] {
            assert_eq!(row[r], num(&t[j]), "{hash}: R's {r} vs btda's {j}");
        }
        // How the crossings were witnessed: R's table against btda report's.
        for how in [
            "predicted",
            "fixed",
            "first",
            "retry",
            "incoming",
            "incoming_only",
            "within_visit",
        ] {
            assert_eq!(
                row[how],
                num(&t["witnessed"][how]),
                "{hash}: R's {how} vs btda's"
            );
        }
    }
    torrents.len()
}

/// The indexes thesis/lib.R adds to older databases, by name, each checked to be created
/// by btda's own schema with the same statement.
fn stats_indexes() -> Vec<String> {
    let lib =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/thesis/lib.R")).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let conn = btda::store::schema::open_for_writing(&fresh.path().join("f.sqlite")).unwrap();
    let mut names = Vec::new();
    for stmt in lib.lines().filter_map(|l| {
        let l = l.trim().trim_end_matches(',').trim_end_matches(')');
        l.strip_prefix('"').and_then(|l| l.strip_suffix('"'))
    }) {
        if !stmt.starts_with("CREATE INDEX IF NOT EXISTS ") {
            continue;
        }
        let name = stmt.split_whitespace().nth(5).unwrap().to_string();
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = ?1",
                [&name],
                |r| r.get(0),
            )
            .unwrap_or_else(|_| panic!("btda's schema lacks {name}"));
        assert_eq!(
            sql.replace("IF NOT EXISTS ", "")
                .replace(char::is_whitespace, ""),
            stmt.replace("IF NOT EXISTS ", "")
                .replace(char::is_whitespace, ""),
            "thesis/lib.R and the schema differ on {name}"
        );
        names.push(name);
    }
    names.sort();
    assert_eq!(names.len(), 4, "stats' indexes in thesis/lib.R: {names:?}");
    names
}

fn index_names(db: &Path, wanted: &[String]) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
        .unwrap();
    let all: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    all.into_iter().filter(|n| wanted.contains(n)).collect()
}

/// Drops `indexes` from `db`; returns its row counts.
fn drop_indexes(db: &Path, indexes: &[String]) -> Vec<i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    for name in indexes {
        conn.execute_batch(&format!("DROP INDEX {name}")).unwrap();
    }
    drop(conn);
    assert!(index_names(db, indexes).is_empty());
    row_counts(db)
}

fn row_counts(db: &Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    ["run", "torrent", "peer", "visit", "request", "statistic"]
        .iter()
        .map(|t| {
            conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap()
        })
        .collect()
}

#[test]
fn stats_on_a_simulated_run_and_on_an_empty_one() {
    // A run measured on a simulated swarm.
    let sim = tempfile::tempdir().unwrap();
    let demo = common::demo(sim.path(), 20, 40, 2);
    assert!(demo.status.success());
    let db = common::database_in(sim.path()).unwrap();
    // As a database from before stats' indexes: stats adds them (and changes no row).
    let indexes = stats_indexes();
    let rows_before = drop_indexes(&db, &indexes);
    // Two simulated torrents and the demo's torrent of peers behind a simulated NAT.
    let run = check_stats(&db, 3, 1);
    assert_eq!(check_numbers(&db, &run), 3);
    assert_eq!(
        index_names(&db, &indexes),
        indexes,
        "stats added its indexes"
    );
    assert_eq!(row_counts(&db), rows_before, "stats changed no row");
    let threshold = text_of(&run.join("figures/threshold.pdf"));
    assert!(
        !threshold.contains("No data"),
        "the simulated run has confirmed downloads"
    );
    // Each simulated torrent has an HTTP and a UDP tracker on one IP: labelled apart.
    let trackers = text_of(&run.join("figures/tracker_requests.pdf"));
    for scheme in ["http://127.99.0.1:", "udp://127.99.0.1:"] {
        assert!(trackers.contains(scheme), "{scheme} in: {trackers}");
    }

    // A run with no peers: one torrent whose tracker is not there, no DHT.
    let (_root, input, output) = common::run_dirs_with_fixture();
    std::fs::write(
        input.join("btda.toml"),
        "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nlisten_address = \"127.93.0.1\"\nlisten_port = 0\n\
         [tracker]\nstopped_timeout_ms = 300\n[monitor]\nstatistics_interval_secs = 1\n",
    )
    .unwrap();
    let (mut child, _, _lines) = common::start_run(&input, &output);
    std::thread::sleep(Duration::from_secs(3));
    common::interrupt_and_wait(&mut child);
    let db = common::database_in(&output).unwrap();
    let run = check_stats(&db, 1, 1);
    assert_eq!(check_numbers(&db, &run), 1);
    for empty in ["visits", "threshold", "clients", "download_each"] {
        let text = text_of(&run.join(format!("figures/{empty}.pdf")));
        assert!(text.contains("No data"), "{empty} says it has no data");
    }
}
