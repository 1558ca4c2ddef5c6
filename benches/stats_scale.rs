//! `make stats` at campaign size (issue 26): generates a run database of the 2015
//! campaign's shape — 2,160,000 peers and 27,400,000 visits over 4 torrents (btda's own
//! schema; outcomes, times and piece counts drawn from a fixed seed) — and times
//! `thesis/stats.sh` on it, with its peak memory (GNU time). `cargo bench --bench
//! stats_scale`; `BTDA_STATS_PEERS` and `BTDA_STATS_VISITS` change the size,
//! `BTDA_STATS_DB` keeps the database at that path (and reuses one already there). Without `--bench` (the smoke run of
//! `make test`) it generates 2,000 peers and 25,000 visits and checks the rows only.

use std::time::Instant;

use rand::{Rng, SeedableRng};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn generate(path: &std::path::Path, peers: u64, visits: u64) -> rusqlite::Result<()> {
    let conn = btda::store::schema::open_for_writing(path)?;
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA journal_mode = OFF;")?;
    let tx = conn.unchecked_transaction()?;
    let start = 1_700_000_000_i64;
    let span = 34 * 3600_i64;
    tx.execute(
        "INSERT INTO run (started_at, ended_at, hostname, version, config)
         VALUES (?1, ?2, 'campaign', 'bench', '')",
        [start, start + span],
    )?;
    for t in 0..4 {
        tx.execute(
            "INSERT INTO torrent (info_hash, name, pieces_count, piece_size, total_size,
                 complete_threshold, threshold, source, trackers, added_at)
             VALUES (?1, ?2, 2000, 1048576, 2097152000, 1960, 0.98, 'file', '[]', ?3)",
            rusqlite::params![format!("{:040x}", t + 1), format!("campaign-{t}"), start],
        )?;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(2015);
    let sources = ["tracker", "dht", "pex", "incoming"];
    {
        let mut peer = tx.prepare(
            "INSERT INTO peer (torrent_id, peer_key, source, first_seen, first_pieces,
                 last_seen, last_pieces, visits, failed_visits, crossed_at, client, country,
                 max_speed, as_org)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for i in 0..peers {
            let first = rng.random_range(0..2000_i64);
            let last = rng.random_range(first..=2000);
            let seen = start + rng.random_range(0..span);
            let crossed = (first < 1960 && last >= 1960).then_some(seen + 600);
            peer.execute(rusqlite::params![
                i64::try_from(i % 4).unwrap_or(0) + 1,
                format!("{i:016x}"),
                sources[(i % 4) as usize],
                seen,
                first,
                seen + 600,
                last,
                rng.random_range(1..30_i64),
                rng.random_range(0..5_i64),
                crossed,
                [
                    "libtorrent (Rasterbar)",
                    "Transmission",
                    "qBittorrent",
                    "µTorrent"
                ][rng.random_range(0..4_usize)],
                ["DE", "US", "FR", "BR", "CN", "RU"][rng.random_range(0..6_usize)],
                // Half the peers were seen twice with progress: a speed.
                rng.random_bool(0.5)
                    .then(|| rng.random_range(0.01..20.0_f64)),
                format!("AS{}", rng.random_range(0..500_u32)),
            ])?;
        }
    }
    {
        let mut visit = tx.prepare(
            "INSERT INTO visit (peer_id, torrent_id, started_at, direction, outcome, connect_ms,
                 handshake_ms, duration_ms, pieces, first_pieces, state, messages, max_gap_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for _ in 0..visits {
            let roll = rng.random_range(0..100);
            let peer = rng.random_range(1..=i64::try_from(peers).unwrap_or(i64::MAX));
            let at = start + rng.random_range(0..span);
            let torrent = (peer - 1) % 4 + 1;
            if roll < 35 {
                let pieces = rng.random_range(0..=2000_i64);
                visit.execute(rusqlite::params![
                    peer,
                    torrent,
                    at,
                    if roll < 5 { "in" } else { "out" },
                    "ok",
                    rng.random_range(5..3000_i64),
                    rng.random_range(5..6000_i64),
                    rng.random_range(50..3000_i64),
                    pieces,
                    pieces - rng.random_range(0..=pieces.min(20)),
                    "bitfield",
                    rng.random_range(1..20_i64),
                    rng.random_range(1..6000_i64),
                ])?;
            } else {
                let outcome = if roll < 90 {
                    "connect_timeout"
                } else {
                    "refused"
                };
                visit.execute(rusqlite::params![
                    None::<i64>,
                    torrent,
                    at,
                    "out",
                    outcome,
                    None::<i64>,
                    None::<i64>,
                    rng.random_range(300..5000_i64),
                    None::<i64>,
                    None::<i64>,
                    None::<&str>,
                    0,
                    None::<i64>,
                ])?;
            }
        }
    }
    tx.commit()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (peers, visits) = if full {
        (
            env_or("BTDA_STATS_PEERS", 2_160_000),
            env_or("BTDA_STATS_VISITS", 27_400_000),
        )
    } else {
        (2_000, 25_000)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = std::env::var("BTDA_STATS_DB").map_or_else(
        |_| dir.path().join("campaign.sqlite"),
        std::path::PathBuf::from,
    );
    let t0 = Instant::now();
    // A database already at BTDA_STATS_DB is reused as it is (its counts are checked).
    let reused = path.exists();
    if !reused {
        generate(&path, peers, visits).expect("the database is generated");
    }
    let generated = t0.elapsed().as_secs_f64();
    let conn = rusqlite::Connection::open(&path).expect("open");
    let (p, v): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM peer), (SELECT count(*) FROM visit)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!((p as u64, v as u64), (peers, visits));
    if !full {
        println!("stats_scale smoke run: {p} peers, {v} visits generated");
        return;
    }
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    let t1 = Instant::now();
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M KiB %e s"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/thesis/stats.sh"))
        .arg(&path)
        .arg("")
        .output()
        .expect("GNU time and R (make deps)");
    let took = t1.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    let peak = err
        .lines()
        .rev()
        .find(|l| l.ends_with(" s") && l.contains("KiB"))
        .unwrap_or("-");
    println!();
    println!("## `make stats` at campaign size: {p} peers, {v} visits");
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    if reused {
        println!("| database | {:.2} GB, reused |", size as f64 / 1e9);
    } else {
        println!(
            "| database | {:.2} GB, generated in {generated:.0} s |",
            size as f64 / 1e9
        );
    }
    println!(
        "| `thesis/stats.sh` | {took:.0} s, {} |",
        if out.status.success() { "ok" } else { "FAILED" }
    );
    println!("| peak memory (GNU time, %M KiB, wall) | {peak} |");
    if !out.status.success() {
        println!();
        println!(
            "```\n{}\n```",
            err.lines().rev().take(15).collect::<Vec<_>>().join("\n")
        );
    }
}
