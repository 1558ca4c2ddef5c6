//! `btda demo`: the whole pipeline on simulated swarms on loopback, for anyone without
//! torrents or network at hand. A few torrents, each with its own simulated tracker and
//! a few dozen scripted peers; the real `btda run` measures them, stops through the
//! same shutdown flag as Ctrl+C, and the report is printed next to the truth.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::swarm::{PeerScript, Swarm};
use crate::config::Config;
use crate::run::{RunOptions, Shutdown};
use crate::torrent::InfoHash;

/// Pieces of each demo torrent.
const PIECES: u32 = 200;

/// Scripted lives for torrent `t`: seeders, leechers that finish within the demo,
/// slow ones, and ones that leave early. Times scale with the demo's length.
pub fn scripts(t: u8, peers: u8, seconds: u64) -> Vec<PeerScript> {
    let span = seconds * 1000;
    (0..peers)
        .map(|i| {
            let addr = SocketAddr::from(([127, 100 + t, 0, i + 1], 6881));
            let arrive = span * u64::from(i % 10) / 40; // within the first quarter
            let (leave, start, rate) = match i % 5 {
                0 => (span * 2, PIECES, 0.0), // seeder
                1 | 2 => (
                    span * 2,
                    u32::from(i) % 40,
                    f64::from(PIECES) / (span as f64 / 2000.0),
                ), // finishes mid-demo
                3 => (span * 2, 5, 0.5),      // slow
                _ => (
                    arrive + span / 4,
                    0,
                    f64::from(PIECES) / (span as f64 / 1000.0),
                ), // leaves early
            };
            PeerScript {
                addr,
                arrive_ms: arrive,
                leave_ms: leave,
                start_pieces: start,
                rate,
            }
        })
        .collect()
}

/// Runs the demo for `seconds`, writing the run and the truth into `output`.
pub fn run_demo(
    seconds: u64,
    peers: u8,
    torrents: u8,
    output: &Path,
    verbosity: i8,
) -> Result<String, String> {
    let input = output.join("demo-input");
    std::fs::create_dir_all(&input).map_err(|e| e.to_string())?;
    let mut swarms = Vec::new();
    let mut truth = String::from("info_hash\tpeer\tcompletes_at_ms\n");
    let mut expected = Vec::new();
    for t in 0..torrents {
        let name = format!("demo-{t}");
        let info = format!(
            "d6:lengthi{}e4:name{}:{name}12:piece lengthi16384e6:pieces{}:{}e",
            u64::from(PIECES) * 16384,
            name.len(),
            PIECES * 20,
            "x".repeat(PIECES as usize * 20 - 1) + &t.to_string()[..1]
        );
        let hash = InfoHash::of_info_bytes(info.as_bytes());
        let lives = scripts(t, peers, seconds);
        let completions = lives
            .iter()
            .filter_map(|s| s.completes_at(PIECES).map(|ms| (s.addr, ms)))
            .collect::<Vec<_>>();
        for (addr, ms) in &completions {
            let _ = writeln!(truth, "{hash}\t{addr}\t{ms}");
        }
        expected.push((hash, completions.len()));
        let swarm = Swarm::start(
            SocketAddr::from(([127, 99, 0, t + 1], 0)),
            hash,
            PIECES,
            lives,
        )
        .map_err(|e| e.to_string())?;
        let url = swarm.tracker.url();
        std::fs::write(
            input.join(format!("{name}.torrent")),
            format!("d8:announce{}:{url}4:info{info}e", url.len()),
        )
        .map_err(|e| e.to_string())?;
        swarms.push(swarm);
    }
    let config = Config::parse(
        "[dht]\nenabled = false\n[peer]\nworkers = 64\nlisten_address = \"127.98.0.1\"\nlisten_port = 0\n\
         revisit_delay_secs = 3\nquiet_grace_ms = 200\nsilence_timeout_ms = 1500\nretry_backoff_secs = [2, 4]\n\
         [tracker]\ninterval_secs = 3\nstopped_timeout_ms = 300\n[monitor]\nstatus_interval_secs = 5\nstatistics_interval_secs = 5\n",
        "demo",
    )
    .map_err(|e| e.to_string())?;
    let shutdown = Shutdown::install().map_err(|e| e.to_string())?;
    let timer = shutdown.clone();
    std::thread::spawn(move || {
        if !timer.wait(Duration::from_secs(seconds)) {
            timer.request(); // the same flag Ctrl+C sets
        }
    });
    let opts = RunOptions {
        input,
        output: output.to_path_buf(),
        config,
        verbosity,
    };
    let outcome = crate::run::run(&opts, &shutdown).map_err(|e| e.to_string())?;
    drop(swarms);
    let truth_path = outcome.files.database.with_extension("truth.tsv");
    std::fs::write(&truth_path, truth).map_err(|e| e.to_string())?;
    let report = crate::store::report::read(&outcome.files.database).map_err(|e| e.to_string())?;
    let mut out = outcome.summary();
    out.push('\n');
    out.push_str(&crate::store::report::render_text(&report));
    out.push_str("\nconfirmed downloads next to the simulator's truth:\n");
    for (hash, n) in &expected {
        let got = report
            .torrents
            .iter()
            .find(|t| t.info_hash == hash.to_hex())
            .map_or(0, |t| t.confirmed);
        let _ = writeln!(
            out,
            "  {}  truth {n:>3}  btda {got:>3}",
            &hash.to_hex()[..8]
        );
    }
    let _ = writeln!(
        out,
        "truth: {}\nnext: make stats DB={}",
        truth_path.display(),
        outcome.files.database.display()
    );
    Ok(out)
}
