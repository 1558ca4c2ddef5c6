//! `btda demo`: the whole pipeline on simulated swarms on loopback, for anyone without
//! torrents or network at hand. A few torrents, each with its own simulated HTTP and UDP
//! tracker, a small DHT for the peers no tracker lists, and a mix of scripted peers of
//! every [`Kind`]; the real `btda run` measures them, stops through the same shutdown
//! flag as Ctrl+C, and the report is printed next to the truth.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::script::Expect;
use super::serve::{self, SimOptions};
use super::swarm::Kind;
use crate::config::Config;
use crate::monitor::{CpuOf, cpu_ms};
use crate::run::{RunOptions, Shutdown};
use crate::torrent::InfoHash;

/// Where btda listens during the demo (incoming-only peers dial it).
pub const LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 98, 0, 1)), 16881);

/// The demo's privacy key: fixed, so the truth's addresses can be matched to the run's
/// keyed hashes peer by peer (simulated peers have nothing to hide).
pub const DEMO_KEY: &str = "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0";

/// The demo's btda configuration: short revisit delay, tracker and DHT intervals so a
/// few minutes show whole downloads; the DHT is the swarm's own, through `router`.
/// Workers grow with the swarm (one per 20 peers, 64 to 1024), as a user measuring a
/// big swarm would set them.
pub fn config(router: SocketAddr, workers: u32) -> String {
    format!(
        "[dht]\nenabled = true\nlisten_address = \"{ip}\"\nport = 0\nbootstrap = [\"{router}\"]\nstate_dir = \"none\"\n\
         interval_secs = 3\nquery_timeout_ms = 500\n\
         [peer]\nallow_private_addresses = true\nworkers = {workers}\nlisten_address = \"{ip}\"\nlisten_port = {port}\n\
         revisit_delay_secs = 3\nstate_window_ms = 200\nsilence_timeout_ms = 1500\nvisit_cap_ms = 2000\nretry_backoff_secs = [2, 4]\n\
         transport = \"both\"\n\
         [tracker]\ninterval_secs = 3\nscrape_interval_secs = 3\nstopped_timeout_ms = 300\nnumwant = 2000\n\
         [monitor]\nstatus_interval_secs = 5\nstatistics_interval_secs = 5\n\
         [privacy]\nkey = \"{DEMO_KEY}\"\n",
        ip = LISTEN.ip(),
        port = LISTEN.port()
    )
}

/// One torrent's truth next to btda's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthRow {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Peers that crossed T while present, before the run ended.
    pub crossings: usize,
    /// Of those, of a kind btda can observe.
    pub observable: usize,
    /// Of those, witnessable: online below T before and at least a second at or above T
    /// after, accepting connections (what an ideal observer could confirm).
    pub witnessable: usize,
    /// Of those, the ones whose peer stayed at least btda's minimum revisit interval
    /// after crossing (what the cadence promises to witness).
    pub lingering: usize,
    /// btda's minimum revisit interval in this run, s.
    pub min_revisit_secs: u64,
    /// Peer by peer, when the run's `privacy.key` is set (so the truth's addresses can be
    /// matched to the database's keyed hashes): of the `lingering` crossings, how many
    /// btda confirmed; of the other witnessable ones (left sooner after crossing than
    /// the minimum revisit), how many; and confirmed peers that never crossed while
    /// present or whose kind hides their pieces (false counts).
    pub judged: Option<Judged>,
    /// btda's confirmed downloads.
    pub confirmed: i64,
}

/// btda's confirmed downloads judged peer by peer against the truth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judged {
    /// Confirmed among the crossings whose peer stayed the minimum revisit interval.
    pub lingering_confirmed: usize,
    /// Witnessable crossings whose peer left sooner than that.
    pub short: usize,
    /// Of those, confirmed.
    pub short_confirmed: usize,
    /// Confirmed peers that must not be.
    pub false_confirmed: usize,
    /// The lingering crossings btda missed, by the peer's kind (why: which behaviour).
    pub missed_by_kind: std::collections::BTreeMap<&'static str, usize>,
    /// The same misses by what btda saw of the peer: never reached, first reached
    /// already at or above T (its first visit came after the crossing), or seen below
    /// T but never again at or above it.
    pub missed_by_sight: std::collections::BTreeMap<&'static str, usize>,
    /// For every peer btda reached by dialling it (not only by its own incoming
    /// connections), how long after its arrival in the swarm the first successful
    /// visit came, ms (to the second of `peer.first_seen`).
    pub first_visit_after_arrival_ms: Vec<u64>,
}

/// The demo's peers behind a simulated NAT (one torrent of their own, `sim::nat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatFigures {
    /// NAT peers (reachable only by a punch through the relay).
    pub peers: usize,
    /// Of those, leechers that finished while btda watched (after its first punches
    /// could come: a quarter into the run) — the downloads btda must confirm.
    pub finished: usize,
    /// btda's confirmed downloads of that torrent.
    pub confirmed: i64,
    /// NAT peers btda reached by a punch.
    pub punched: i64,
}

/// NAT peers of the demo: a quarter of the peers per torrent, 4 to 48; three in four
/// leechers finishing between 45 % and 85 % of the run and staying a fifth of it, the
/// rest seeds. The punchable share is taken from Halkes and Pouwelse (~64 % of peers
/// behind a NAT or firewall that allows UDP hole punching; the demo's other torrents
/// keep their own NAT-like peers, which only dial in).
fn nat_plans(peers: u32, seconds: u64) -> Vec<(SocketAddr, super::nat::NatPlan)> {
    let n = (peers / 4).clamp(4, 48);
    let span = seconds.max(10) as f64;
    (0..n)
        .map(|k| {
            let addr = SocketAddr::from(([127, 96, 1, 10 + k as u8], 17_000 + k as u16));
            let plan = if k % 4 == 3 {
                super::nat::NatPlan {
                    start_pieces: NAT_PIECES,
                    pieces_per_sec: 0.0,
                    linger: Duration::from_secs(seconds * 2),
                }
            } else {
                let start = (k * 7) % 30;
                let finish = span * (0.45 + 0.4 * f64::from(k % 8) / 7.0);
                super::nat::NatPlan {
                    start_pieces: start,
                    pieces_per_sec: f64::from(NAT_PIECES - start) / finish,
                    linger: Duration::from_secs_f64(span / 5.0),
                }
            };
            (addr, plan)
        })
        .collect()
}

/// Pieces of the NAT peers' torrent.
const NAT_PIECES: u32 = 100;

/// Starts the NAT peers' torrent: its `.torrent` in `input`, the relay and the peers;
/// returns the group, its info-hash and the configuration lines that give btda the
/// relay (as a tracker would list it).
fn start_nat(
    input: &Path,
    peers: u32,
    seconds: u64,
) -> Result<(super::nat::NatGroup, InfoHash, String), String> {
    let name = "nat-punchable";
    let info = format!(
        "d6:lengthi{}e4:name{}:{name}12:piece lengthi16384e6:pieces{}:{}e",
        NAT_PIECES * 16384,
        name.len(),
        NAT_PIECES * 20,
        "p".repeat(NAT_PIECES as usize * 20)
    );
    let hash = InfoHash::of_info_bytes(info.as_bytes());
    std::fs::write(input.join("nat.torrent"), format!("d4:info{info}e"))
        .map_err(|e| format!("{}: {e}", input.display()))?;
    let relay = SocketAddr::from(([127, 96, 1, 1], 17_001));
    let group = super::nat::NatGroup::start(hash, NAT_PIECES, relay, &nat_plans(peers, seconds))
        .map_err(|e| format!("NAT peers: {e}"))?;
    let lines = format!("[[torrents]]\ninfo_hash = \"{hash}\"\npeers = [\"{relay}\"]\n");
    Ok((group, hash, lines))
}

/// What a demo run produced: the text `btda demo` prints and the figures behind it.
#[derive(Debug)]
pub struct DemoResult {
    /// The run summary, the report and the truth side by side.
    pub text: String,
    /// Per torrent: the simulator's truth next to btda's count.
    pub rows: Vec<TruthRow>,
    /// Visits btda recorded.
    pub visits: i64,
    /// Length of the run, s.
    pub wall_secs: f64,
    /// CPU the simulator thread used, s.
    pub simulator_cpu_secs: f64,
    /// The simulator's ticks: run, late by more than 100 ms, and the latest one's
    /// lateness, ms ([`super::reactor::ReactorCounters::ticks_late`]).
    pub simulator_ticks: (u64, u64, u64),
    /// Connections the simulator accepted.
    pub accepted: u64,
    /// Connections the simulator's incoming-only peers opened to btda.
    pub dials: u64,
    /// Connect and handshake timeouts btda had at the end, ms.
    pub timeouts_ms: Option<(i64, i64)>,
    /// Visits by outcome.
    pub outcomes: Vec<(String, i64)>,
    /// From the last `statistic` row: p99 wait of fresh peers for their first visit
    /// (ms), p99 lateness of revisits (ms), share of revisits on time.
    pub lateness: (Option<i64>, Option<i64>, Option<f64>),
    /// From the `statistic` rows: how btda itself fared.
    pub load: Load,
    /// The peers behind a simulated NAT.
    pub nat: NatFigures,
    /// Peers btda reached (at least one successful visit), over all torrents.
    pub peers_reached: i64,
}

/// btda's own load during a demo run, from its `statistic` rows and the process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    /// CPU of the process minus the simulator's reactor thread, s (the simulated
    /// trackers and DHT, a few threads that mostly sleep, are counted as btda's).
    pub btda_cpu_secs: Option<f64>,
    /// Mean share of time the workers were in visits.
    pub workload: Option<f64>,
    /// Peers known at the end.
    pub peers_known: Option<i64>,
    /// Highest resident memory seen, MiB.
    pub rss_mb: Option<f64>,
    /// Time threads waited for the peer queue's lock, summed, ms; and the share of its
    /// acquisitions that waited.
    pub queue_lock: (Option<i64>, Option<f64>),
    /// The longest wait of a fresh peer for its first visit, ms.
    pub first_wait_max_ms: Option<i64>,
}

/// Runs the demo for `seconds`, writing the run and the truth into `output`.
pub fn run_demo(
    seconds: u64,
    peers: u32,
    torrents: u8,
    output: &Path,
    verbosity: i8,
) -> Result<DemoResult, String> {
    let sim = SimOptions {
        peers,
        torrents,
        seconds,
        realistic: false,
        rtt_ms: None,
        dial: None,
        dial_every_ms: super::reactor::ReactorOptions::default().dial_every_ms,
        spread_dials: false,
        pex: 0,
        generations: 1,
        uniform: None,
    };
    run_demo_with(sim, output, verbosity)
}

/// Runs the demo on the swarms `sim` describes (its `dial` is set to btda's listen
/// address) for `sim.seconds`.
pub fn run_demo_with(sim: SimOptions, output: &Path, verbosity: i8) -> Result<DemoResult, String> {
    run_demo_configured(sim, output, verbosity, config)
}

/// [`run_demo_with`] with btda's configuration from `config(DHT router, workers)`
/// instead of the demo's (the benchmark's scale round runs btda's defaults). The
/// configuration must listen on [`LISTEN`].
pub fn run_demo_configured(
    mut sim: SimOptions,
    output: &Path,
    verbosity: i8,
    config: impl FnOnce(SocketAddr, u32) -> String,
) -> Result<DemoResult, String> {
    let (seconds, peers, torrents) = (sim.seconds, sim.peers, sim.torrents);
    let input = output.join("demo-input");
    // btda's listen address: NAT-like peers dial it, and the trackers list it (real
    // trackers list the announcer too: btda must skip its own address).
    sim.dial = Some(LISTEN);
    let server = serve::start(&sim, &input)?;
    let (nat, nat_hash, nat_lines) = start_nat(&input, peers, seconds)?;
    let router = server
        .dht_router
        .unwrap_or(SocketAddr::from(([127, 97, 0, 1], 0)));
    let workers = (peers * u32::from(torrents) / 20).clamp(64, 1024);
    let config = Config::parse(&(config(router, workers) + &nat_lines), "demo")
        .map_err(|e| e.to_string())?;
    let min_revisit = config
        .peer
        .min_revisit_secs
        .min(config.peer.revisit_delay_secs);
    let keyer = config.privacy.peer_key().map(crate::book::PeerKeyer::new);
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
    let started = std::time::Instant::now();
    let cpu_before = cpu_ms(CpuOf::Process);
    let sim_cpu_before = server.swarm.reactor.counters.cpu_ms.load(Ordering::Relaxed);
    let outcome = crate::run::run(&opts, &shutdown).map_err(|e| e.to_string())?;
    let wall_secs = started.elapsed().as_secs_f64();
    let swarm = &server.swarm;
    let counters = &swarm.reactor.counters;
    let simulator_cpu_ms = counters.cpu_ms.load(Ordering::Relaxed);
    let simulator_cpu_secs = simulator_cpu_ms as f64 / 1000.0;
    let btda_cpu_secs = cpu_ms(CpuOf::Process)
        .zip(cpu_before)
        .map(|(after, before)| {
            let sim = simulator_cpu_ms.saturating_sub(sim_cpu_before);
            after.saturating_sub(before).saturating_sub(sim) as f64 / 1000.0
        });
    let simulator_ticks = (
        counters.ticks.load(Ordering::Relaxed),
        counters.ticks_late.load(Ordering::Relaxed),
        counters.tick_late_max_ms.load(Ordering::Relaxed),
    );
    let (accepted, dials) = (
        counters.accepted.load(Ordering::Relaxed),
        counters.dials.load(Ordering::Relaxed),
    );
    let truth_path = outcome.files.database.with_extension("truth.tsv");
    server.write_truth(&truth_path)?;
    let ended_ms = swarm.reactor.now_ms();
    // The simulator's clock in Unix ms: its start.
    let sim_start_unix_ms = crate::clock::unix_now_ms() - i64::try_from(ended_ms).unwrap_or(0);
    let busy = swarm.reactor.busy;
    let seen_keys = match &keyer {
        Some(_) => Some(seen_peers(&outcome.files.database).map_err(|e| e.to_string())?),
        None => None,
    };
    let expected: Vec<TruthRow> = swarm
        .torrents()
        .iter()
        .map(|t| {
            let threshold = t.threshold();
            let crossed: Vec<_> = t
                .lives
                .iter()
                .filter(|p| {
                    p.crosses_at(t.total, threshold)
                        .is_some_and(|ms| ms < ended_ms)
                })
                .collect();
            let observable: Vec<_> = crossed.iter().filter(|p| p.kind.observable()).collect();
            let must = |min_linger: Duration| {
                let ms = crate::clock::millis(min_linger);
                observable
                    .iter()
                    .filter(|p| p.expected(t.total, threshold, busy, ms, ended_ms) == Expect::Must)
                    .count()
            };
            let judged = keyer.as_ref().zip(seen_keys.as_ref()).map(|(keyer, keys)| {
                let hash = t.info_hash.to_hex();
                let mut j = Judged::default();
                for p in &t.lives {
                    let seen = keys.get(&(hash.clone(), keyer.key(&swarm.addr_of(p))));
                    let got = seen.is_some_and(|s| s.crossed);
                    if let Some(s) = seen.filter(|s| !s.incoming) {
                        let arrived = sim_start_unix_ms + i64::try_from(p.arrive_ms).unwrap_or(0);
                        let waited = (s.first_seen * 1000 - arrived).max(0);
                        j.first_visit_after_arrival_ms
                            .push(u64::try_from(waited).unwrap_or(0));
                    }
                    let expect = |ms| p.expected(t.total, threshold, busy, ms, ended_ms);
                    match expect(crate::clock::millis(min_revisit)) {
                        Expect::Must if got => j.lingering_confirmed += 1,
                        Expect::Must => {
                            *j.missed_by_kind.entry(p.kind.name()).or_default() += 1;
                            let sight = match seen {
                                None => "never reached",
                                Some(s) if s.first_pieces >= i64::from(threshold) => {
                                    "first reached at or above T"
                                }
                                Some(s) if s.last_pieces < i64::from(threshold) => {
                                    "last seen below T"
                                }
                                Some(_) => "seen below and at T, not counted",
                            };
                            *j.missed_by_sight.entry(sight).or_default() += 1;
                        }
                        Expect::May if expect(0) == Expect::Must => {
                            j.short += 1;
                            j.short_confirmed += usize::from(got);
                        }
                        Expect::May => {}
                        Expect::MustNot => j.false_confirmed += usize::from(got),
                    }
                }
                j
            });
            TruthRow {
                info_hash: t.info_hash,
                crossings: crossed.len(),
                observable: observable.len(),
                witnessable: must(Duration::ZERO),
                lingering: must(min_revisit),
                min_revisit_secs: min_revisit.as_secs(),
                judged,
                confirmed: 0,
            }
        })
        .collect();
    drop(server);
    let watched_from = Duration::from_secs_f64(seconds as f64 / 4.0);
    let watched_to = Duration::from_secs(seconds.saturating_sub(2));
    let nat_figures = NatFigures {
        peers: nat.truth().len(),
        finished: nat
            .truth()
            .iter()
            .filter(|t| {
                t.finishes_after
                    .is_some_and(|f| f > watched_from && f < watched_to)
            })
            .count(),
        confirmed: 0,
        punched: 0,
    };
    drop(nat);
    let report =
        crate::offline::report::read(&outcome.files.database).map_err(|e| e.to_string())?;
    let nat_hex = nat_hash.to_hex();
    let nat_figures = NatFigures {
        confirmed: report
            .torrents
            .iter()
            .find(|t| t.info_hash == nat_hex)
            .map_or(0, |t| t.confirmed),
        punched: crate::store::schema::open_read_only(&outcome.files.database)
            .and_then(|c| {
                c.query_row(
                    "SELECT count(DISTINCT v.peer_id) FROM visit v JOIN torrent t
                     ON t.id = v.torrent_id WHERE t.info_hash = ?1 AND v.via = 'holepunch'
                     AND v.outcome = 'ok'",
                    [&nat_hex],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0),
        ..nat_figures
    };
    let mut out = outcome.summary();
    out.push('\n');
    out.push_str(&crate::offline::report::render_text(&report));
    let _ = writeln!(
        out,
        "\nconfirmed downloads next to the simulator's truth (crossings of T during the run; \
         observable = not behind a closed port, silent or sending only invalid bitfields; \
         witnessable = observable, and online at or above T at least a second before the \
         peer left or the run ended; kinds: {}):",
        Kind::ALL.map(Kind::name).join(", ")
    );
    let mut rows = Vec::new();
    for mut row in expected {
        row.confirmed = report
            .torrents
            .iter()
            .find(|t| t.info_hash == row.info_hash.to_hex())
            .map_or(0, |t| t.confirmed);
        let _ = writeln!(
            out,
            "  {}  crossings {:>4}  observable {:>4}  witnessable {:>4} ({} staying {} s)  btda {:>4} ({})",
            &row.info_hash.to_hex()[..8],
            row.crossings,
            row.observable,
            row.witnessable,
            row.lingering,
            row.min_revisit_secs,
            row.confirmed,
            match row.witnessable {
                0 => "-".to_string(),
                w => format!(
                    "{:.1} % of witnessable",
                    100.0 * row.confirmed as f64 / w as f64
                ),
            }
        );
        if let Some(j) = &row.judged {
            let _ = writeln!(
                out,
                "            peer by peer: {} of {} staying {} s confirmed; {} of {} that left sooner; {} false{}",
                j.lingering_confirmed,
                row.lingering,
                row.min_revisit_secs,
                j.short_confirmed,
                j.short,
                j.false_confirmed,
                missed(j)
            );
        }
        rows.push(row);
    }
    let _ = writeln!(
        out,
        "  {}  behind a simulated NAT (reachable only by hole punching through a relay): {} peers, \
         {} finished while watched, btda {} confirmed, {} reached by a punch",
        &nat_hex[..8],
        nat_figures.peers,
        nat_figures.finished,
        nat_figures.confirmed,
        nat_figures.punched
    );
    let _ = writeln!(
        out,
        "simulator: {accepted} connections accepted, {dials} dialled, {simulator_cpu_secs:.1} s CPU in {wall_secs:.0} s",
    );
    let _ = writeln!(
        out,
        "truth: {}\nnext: make stats DB={}",
        truth_path.display(),
        outcome.files.database.display()
    );
    let visits = report.torrents.iter().map(|t| t.visits).sum();
    let (lateness, outcomes, load) = crate::store::schema::open_read_only(&outcome.files.database)
        .and_then(|c| {
            // The last statistic row (figures of the run so far) and two over all rows.
            let (lateness, load) = c
                .query_row(
                    "SELECT s.first_wait_p99_ms, s.revisit_late_p99_ms, s.revisits_on_time,
                            (SELECT avg(workload) FROM statistic),
                            (SELECT max(rss_mb) FROM statistic),
                            s.peers_known, s.queue_lock_wait_ms, s.queue_lock_contended,
                            s.first_wait_max_ms
                     FROM statistic s ORDER BY s.id DESC LIMIT 1",
                    [],
                    |r| {
                        let load = Load {
                            btda_cpu_secs: None,
                            workload: r.get(3)?,
                            rss_mb: r.get(4)?,
                            peers_known: r.get(5)?,
                            queue_lock: (r.get(6)?, r.get(7)?),
                            first_wait_max_ms: r.get(8)?,
                        };
                        Ok(((r.get(0)?, r.get(1)?, r.get(2)?), load))
                    },
                )
                .unwrap_or_default();
            let mut stmt =
                c.prepare("SELECT outcome, count(*) FROM visit GROUP BY outcome ORDER BY 2 DESC")?;
            let outcomes = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(String, i64)>>>()?;
            Ok((lateness, outcomes, load))
        })
        .unwrap_or_default();
    let load = Load {
        btda_cpu_secs,
        ..load
    };
    Ok(DemoResult {
        simulator_ticks,
        timeouts_ms: report.run.as_ref().and_then(|r| r.timeouts_ms),
        lateness,
        outcomes,
        load,
        text: out,
        rows,
        visits,
        wall_secs,
        simulator_cpu_secs,
        accepted,
        dials,
        nat: nat_figures,
        peers_reached: report.torrents.iter().map(|t| t.peers).sum(),
    })
}

/// What a run database holds of one peer, for judging it against the truth.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// Unix seconds of the first successful visit.
    first_seen: i64,
    /// Known only from its own connections (`source` incoming).
    incoming: bool,
    first_pieces: i64,
    last_pieces: i64,
    /// A confirmed download.
    crossed: bool,
}

/// Every peer row of a run database by (info-hash, keyed hash).
fn seen_peers(db: &Path) -> rusqlite::Result<HashMap<(String, String), Seen>> {
    let conn = crate::store::schema::open_read_only(db)?;
    let mut stmt = conn.prepare(
        "SELECT t.info_hash, p.peer_key, p.first_pieces, p.last_pieces, p.crossed_at IS NOT NULL,
                p.first_seen, p.source = 'incoming'
         FROM peer p JOIN torrent t ON t.id = p.torrent_id",
    )?;
    stmt.query_map([], |r| {
        let seen = Seen {
            first_seen: r.get(5)?,
            incoming: r.get(6)?,
            first_pieces: r.get(2)?,
            last_pieces: r.get(3)?,
            crossed: r.get(4)?,
        };
        Ok(((r.get(0)?, r.get(1)?), seen))
    })?
    .collect()
}

/// The kinds of the lingering crossings btda missed, as text ("" when none).
pub fn missed(j: &Judged) -> String {
    if j.missed_by_kind.is_empty() {
        return String::new();
    }
    let kinds: Vec<String> = j
        .missed_by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    format!(" (missed: {})", kinds.join(", "))
}

/// What btda saw of the lingering crossings it missed, as text ("" when none).
pub fn missed_sight(j: &Judged) -> String {
    let parts: Vec<String> = j
        .missed_by_sight
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    parts.join(", ")
}
