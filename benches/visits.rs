//! `make bench`: visit throughput, CPU per visit and memory, against fake peers on
//! loopback. The fake peers run in a child process (this binary with `--serve`), so the
//! CPU time measured here is btda's alone. Prints a Markdown report; `make bench`
//! writes it to BENCHMARKS.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use btda::book::{PeerKeyer, PeerQueue, Source, VisitResult};
use btda::config::Encryption;
use btda::schedule::Policy;
use btda::sim::{Behaviour, FakePeer, Harness, HarnessOptions};
use btda::torrent::{InfoHash, TorrentId, TorrentRegistry};

const HASH: InfoHash = InfoHash([0x5a; 20]);
const PIECES: u32 = 1000;
const PEERS: u32 = 2000;

fn seeder(i: u32) -> SocketAddr {
    SocketAddr::from(([127, 41, (i / 250) as u8, (i % 250) as u8 + 1], 7001))
}

fn leecher(i: u32) -> SocketAddr {
    SocketAddr::from(([127, 42, (i / 250) as u8, (i % 250) as u8 + 1], 7001))
}

fn streamer(i: u32) -> SocketAddr {
    SocketAddr::from(([127, 43, (i / 250) as u8, (i % 250) as u8 + 1], 7001))
}

/// Seeders that require encryption (close plaintext, answer MSE with RC4 only).
fn encrypted(i: u32) -> SocketAddr {
    SocketAddr::from(([127, 44, (i / 250) as u8, (i % 250) as u8 + 1], 7001))
}

/// Child: serve the fake peers until stdin closes.
fn serve() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut peers = Vec::new();
    for i in 0..PEERS {
        peers.push(
            FakePeer::start(seeder(i), HASH, PIECES, PIECES, Behaviour::HaveAll).expect("seeder"),
        );
        peers.push(
            FakePeer::start(leecher(i), HASH, PIECES, PIECES / 2, Behaviour::Bitfield)
                .expect("leecher"),
        );
        peers.push(
            FakePeer::start(
                streamer(i),
                HASH,
                PIECES,
                PIECES / 2,
                Behaviour::StreamingHaves { every_ms: 100 },
            )
            .expect("streaming leecher"),
        );
        peers.push(
            FakePeer::start_encrypted(encrypted(i), HASH, PIECES, PIECES, Behaviour::HaveAll)
                .expect("encrypted seeder"),
        );
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    btda::monitor::cpu_ms(btda::monitor::CpuOf::Process).unwrap_or(0) as f64 / 1000.0
}

/// Peers put in a queue for the memory figure (issue 16: a million in 256 MiB).
const TRACKED: u32 = 1_000_000;

fn rss_mb() -> f64 {
    btda::monitor::process_sample().rss_mb.unwrap_or(0.0)
}

struct Row {
    what: String,
    visits: u64,
    seconds: f64,
    cpu_ms_per_visit: f64,
    durations: (i64, i64, i64),
    /// p50 / p99 / max of the time from the first piece-state message to the end.
    after_state: (i64, i64, i64),
}

fn options(workers: usize) -> HarnessOptions {
    options_with(workers, Encryption::Fallback)
}

fn options_with(workers: usize, encryption: Encryption) -> HarnessOptions {
    HarnessOptions {
        info_hash: HASH,
        pieces: PIECES,
        threshold: 980,
        workers,
        peer: btda::config::Peer {
            encryption,
            ..btda::config::Peer::default()
        },
        revisit: Duration::from_secs(3600),
        backoff: vec![Duration::from_secs(3600)],
    }
}

fn round(what: &str, workers: usize, addrs: impl Iterator<Item = SocketAddr>) -> Row {
    round_with(what, workers, addrs, Encryption::Fallback)
}

fn round_with(
    what: &str,
    workers: usize,
    addrs: impl Iterator<Item = SocketAddr>,
    encryption: Encryption,
) -> Row {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = Harness::start(dir.path(), &options_with(workers, encryption), None).expect("harness");
    let addrs: Vec<SocketAddr> = addrs.collect();
    let n = addrs.len() as u64;
    let (t0, c0) = (Instant::now(), cpu_seconds());
    for a in addrs {
        h.add(a);
    }
    assert!(
        h.wait_until(Duration::from_secs(300), |h| h.visits() >= n),
        "{what}: visits did not finish"
    );
    let (seconds, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let visits = h.visits();
    let db = h.finish().expect("finish");
    let conn = rusqlite::Connection::open(db).expect("db");
    let ok: i64 = conn
        .query_row("SELECT count(*) FROM visit WHERE outcome = 'ok'", [], |r| {
            r.get(0)
        })
        .unwrap_or(0);
    assert_eq!(ok as u64, n, "{what}: every visit succeeds");
    let q = |column: &str, p: f64| -> i64 {
        conn.query_row(
            &format!("SELECT {column} AS x FROM visit ORDER BY x LIMIT 1 OFFSET ?1"),
            [((n as f64 - 1.0) * p) as i64],
            |r| r.get::<_, Option<i64>>(0),
        )
        .ok()
        .flatten()
        .unwrap_or(-1)
    };
    let after = "duration_ms - coalesce(first_state_ms, 0)";
    Row {
        what: what.into(),
        visits,
        seconds,
        cpu_ms_per_visit: cpu * 1000.0 / visits as f64,
        durations: (
            q("duration_ms", 0.5),
            q("duration_ms", 0.99),
            q("duration_ms", 1.0),
        ),
        after_state: (q(after, 0.5), q(after, 0.99), q(after, 1.0)),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        serve();
        return;
    }
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("fake peer process");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("ready line");
    assert_eq!(ready.trim(), "ready");

    let rss_start = rss_mb();
    // Memory first, before the rounds grow the allocator's pools: 1024 idle workers,
    // then 1,000,000 peers in a queue.
    let dir = tempfile::tempdir().expect("temp dir");
    let before = rss_mb();
    let idle = Harness::start(dir.path(), &options(1024), None).expect("harness");
    std::thread::sleep(Duration::from_millis(500));
    let with_workers = rss_mb() - before;
    let _ = idle.finish();
    let before = rss_mb();
    // Revisits an hour away: each peer is handed out once, for its first contact.
    let policy = Policy {
        revisit_delay: Duration::from_secs(3600),
        min_revisit: Duration::from_secs(3600),
        first_revisit: Duration::from_secs(3600),
        transient_retry: Duration::from_secs(1),
        backoff: vec![],
        silent_retries: 2,
        silent_slots: 256,
        cooldown: Duration::ZERO,
    };
    let queue = PeerQueue::new(
        TorrentRegistry::with_thresholds(&[Some(980)]),
        policy,
        PeerKeyer::random(),
    )
    .allow_private(true);
    for i in 0..TRACKED {
        let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881));
        queue.add(TorrentId::new(0), addr, Source::Tracker);
    }
    let with_peers = rss_mb() - before;
    assert_eq!(queue.counts().peers.known, u64::from(TRACKED));
    // Then each of them answers once, as a peer of the 2015 mix that answers does: its
    // record of what it showed, its client names, its peer id in the join index.
    let before_answers = rss_mb();
    for i in 0..TRACKED {
        let Some(job) = queue.next_job() else {
            break;
        };
        let mut peer_id = *b"-qB4620-000000000000";
        peer_id[12..16].copy_from_slice(&i.to_be_bytes());
        queue.finish(
            &job,
            VisitResult::Success {
                observations: vec![(1_700_000_000_000 + i64::from(i), 5)],
                with_state: true,
                client: Some(("qBittorrent".to_string(), Some("4.6.2".to_string()))),
                client_v: Some("qBittorrent/4.6.2".to_string()),
                peer_id: Some(peer_id),
            },
        );
    }
    let answered = queue.counts().peers.reached;
    let with_answers = rss_mb() - before_answers;
    drop(queue); // not alive during the rounds: its 200 MB would change what they measure

    let rows = vec![
        round("seeders (have_all), 64 workers", 64, (0..PEERS).map(seeder)),
        round(
            "seeders (have_all), 1024 workers",
            1024,
            (0..PEERS).map(seeder),
        ),
        round_with(
            "seeders requiring encryption (have_all; `fallback`: plaintext refused, then MSE), 64 workers",
            64,
            (0..PEERS).map(encrypted),
            Encryption::Fallback,
        ),
        round_with(
            "seeders requiring encryption (have_all; `require`: MSE at once), 64 workers",
            64,
            (0..PEERS).map(encrypted),
            Encryption::Require,
        ),
        round(
            "leechers (bitfield 50 %, then quiet; 1 s state window), 1024 workers",
            1024,
            (0..PEERS).map(leecher),
        ),
        round(
            "leechers streaming a have every 100 ms (bitfield 50 %; 1 s state window), 1024 workers",
            1024,
            (0..PEERS).map(streamer),
        ),
    ];

    // Cost per new peer of what the evaluation path adds: geo lookup (city + ASN, the
    // MaxMind test databases) and the keyed peer hash.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo");
    let geo = btda::geo::Geo::open(
        &[fixtures.join("GeoIP2-City-Test.mmdb")],
        &[fixtures.join("GeoLite2-ASN-Test.mmdb")],
        false,
    );
    let keyer = PeerKeyer::random();
    let n = 200_000u32;
    let t0 = Instant::now();
    let mut located = 0;
    for i in 0..n {
        let ip =
            std::net::IpAddr::from([81 + (i % 8) as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        located += usize::from(geo.lookup(ip).country.is_some());
        std::hint::black_box(keyer.key(&SocketAddr::new(ip, 6881)));
    }
    let per_peer_us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(n);

    drop(child.stdin.take());
    let _ = child.wait();

    println!(
        "| round | visits | wall s | visits/s | CPU ms/visit | visit ms p50 / p99 / max | ms after the first state message p50 / p99 / max |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.3} | {} / {} / {} | {} / {} / {} |",
            r.what,
            r.visits,
            r.seconds,
            r.visits as f64 / r.seconds,
            r.cpu_ms_per_visit,
            r.durations.0,
            r.durations.1,
            r.durations.2,
            r.after_state.0,
            r.after_state.1,
            r.after_state.2
        );
    }
    println!();
    println!("| memory | MiB |");
    println!("|---|---|");
    println!("| process RSS at start (fake peers are in another process) | {rss_start:.1} |");
    println!("| RSS added by 1024 idle workers (256 KiB stacks) | {with_workers:.1} |");
    println!(
        "| RSS added by {TRACKED} peers tracked in the PeerQueue, never answering ({:.0} B per peer) | {with_peers:.1} |",
        with_peers * 1024.0 * 1024.0 / f64::from(TRACKED)
    );
    println!(
        "| RSS added when {answered} of them answer once (a client named, a peer id; {:.0} B more per peer) | {with_answers:.1} |",
        with_answers * 1024.0 * 1024.0 / answered.max(1) as f64
    );
    println!();
    println!("| per new peer | µs |");
    println!("|---|---|");
    println!(
        "| geo lookup (city + ASN) and keyed hash, {n} addresses ({located} located) | {per_peer_us:.2} |"
    );
    let (handshakes, mse_us) = mse_handshake_cost();
    println!(
        "| MSE handshake, both sides in memory (2 key pairs, 2 secrets, 4 keystreams), {handshakes} runs | {mse_us:.0} |"
    );
    println!();
    println!("Reading the figures:");
    println!();
    println!(
        "- A seeder visit ends as soon as `have_all` arrives, so its duration is the loopback"
    );
    println!("  connect and handshake; the p99 tail is CPU contention on this machine, where the");
    println!("  fake peers (a thread per connection, in the other process) share the same cores.");
    println!("- A leecher visit lasts the state window after its first piece-state message (1 s");
    println!("  by default), whether the peer then falls quiet or streams haves without pause, so");
    println!(
        "  leecher throughput is about workers / window: bounded by the number of workers, not"
    );
    println!("  by btda's CPU (a fraction of a millisecond per visit). Before the state window, a");
    println!("  peer streaming haves held its worker to the 20 s visit cap (49 visits/s).");
}

/// Time of one complete MSE/PE handshake, initiator and responder in memory on one
/// otherwise idle thread (so wall time is CPU time): the
/// cost the `fallback` and `prefer` policies add per encrypted connection (btda pays
/// one side of it).
fn mse_handshake_cost() -> (u32, f64) {
    use btda::wire::mse::{CRYPTO_PLAINTEXT, CRYPTO_RC4, Initiator, Progress, Responder, Torrents};
    let hash = InfoHash([9; 20]);
    let torrents = Torrents::new([hash]);
    let runs = 2000u32;
    let start = std::time::Instant::now(); // one thread, nothing else running

    for _ in 0..runs {
        let both = CRYPTO_RC4 | CRYPTO_PLAINTEXT;
        let (mut a, to_b) = Initiator::new(hash, both, &[0; 68]);
        let (mut b, to_a) = Responder::new(both);
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        let _ = b.feed(&to_b, &torrents, &mut out_a);
        let _ = a.feed(&to_a, &mut out_b);
        let done_b = b.feed(&out_b, &torrents, &mut out_a);
        let done_a = a.feed(&out_a, &mut Vec::new());
        assert!(matches!(done_b, Ok(Progress::Done(_))) && matches!(done_a, Ok(Progress::Done(_))));
    }
    (runs, start.elapsed().as_secs_f64() * 1e6 / f64::from(runs))
}
