//! The `btda` command line. Everything it does lives in the library; this file only
//! parses arguments, calls it and turns errors into messages and exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use btda::config::Config;
use btda::offline;
use btda::run::{RunOptions, Shutdown, logging};
use btda::store::WriterSettings;

/// btda, the BitTorrent Download Analyzer: counts confirmed downloads of torrents by
/// visiting their peers until they pass the completion threshold.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Configuration file [default: <INPUT>/btda.toml; built-in defaults if absent]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Folder with *.torrent files (searched recursively) and magnet.txt
    #[arg(long, global = true, value_name = "DIR", default_value = "input")]
    input: PathBuf,
    /// Folder for each run's <date>_<host>.sqlite database and .log file
    #[arg(long, global = true, value_name = "DIR", default_value = "output")]
    output: PathBuf,
    /// More output (-v: info on the terminal and debug in the log file; -vv: more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Less terminal output (-q: errors only; -qq: nothing but the summary)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    quiet: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure the torrents of the input folder until Ctrl+C
    ///
    /// Analyses every torrent and magnet link of the input folder and writes one SQLite
    /// database and one log per run into the output folder. The first Ctrl+C (SIGINT or
    /// SIGTERM) stops in order and prints a summary; a second one exits at once (status
    /// 130) with every committed record kept.
    Run,
    /// Load and check the inputs without measuring
    ///
    /// Prints one tab-separated line per torrent (info hash, name, pieces, piece size,
    /// total size, trackers, source) and lists refused inputs on stderr with their path
    /// and reason. Exits non-zero if no input is valid.
    Import,
    /// Summarise a run database
    ///
    /// Per torrent: pieces, threshold T, peers, visits, successful visits, complete peers
    /// and confirmed downloads (from the `confirmed_download` view).
    Report {
        /// The run's .sqlite file
        database: PathBuf,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Merge runs of the same torrents from several hosts into one database
    ///
    /// The runs must have used the same privacy.key. A peer seen by several hosts is
    /// one peer; its observations from all hosts are put in time order, so a peer seen
    /// below T by one host and at or above T by another later is one confirmed
    /// download. Visits, tracker requests and statistics keep their host (run_id).
    Merge {
        /// The merged database to write (must not exist)
        out: PathBuf,
        /// The run databases (.sqlite), two or more
        #[arg(required = true, num_args = 2..)]
        runs: Vec<PathBuf>,
    },
    /// Serve simulated swarms on loopback until Ctrl+C, for btda, a real client or another tool
    ///
    /// Each torrent gets its own HTTP and UDP tracker on 127.99.0.x and scripted peers on
    /// 127.100.x.x: by default as the internet shows them (2015's first-contact mix, where
    /// most peers never answer, and round-trip times of 20-400 ms), with --every-kind
    /// only peers that answer, of every behaviour; a small DHT on 127.97.0.x knows the
    /// peers no tracker lists. The .torrent files are written to --dir at once, the truth (every peer's
    /// kind, life and completion time) to --dir/truth.tsv when it stops.
    Sim {
        /// Peers per torrent
        #[arg(long, default_value_t = 100)]
        peers: u32,
        /// Torrents
        #[arg(long, default_value_t = 1)]
        torrents: u8,
        /// Length of the peers' scripted lives in seconds (they arrive in the first quarter)
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        /// Peers of every behaviour that all answer, instead of 2015's first-contact mix
        /// (63 % never answer a SYN, 15 % refuse, 12 % close or reset)
        #[arg(long)]
        every_kind: bool,
        /// Round-trip times of the peers in ms, as LOW-HIGH; 0-0 for loopback speed
        #[arg(long, value_name = "LOW-HIGH", value_parser = parse_range, default_value = "20-400")]
        rtt_ms: (u64, u64),
        /// Where NAT-like peers connect to (the measuring tool's listen address); the
        /// trackers list it too
        #[arg(long, value_name = "IP:PORT")]
        dial: Option<std::net::SocketAddr>,
        /// Folder for the .torrent files and truth.tsv
        #[arg(long, value_name = "DIR", default_value = "output/sim")]
        dir: PathBuf,
        /// Every peer of this one kind instead of a mix (have_all, bitfield, no_bitfield,
        /// resend_bitfield, batched_haves, streaming_haves, busy, encrypted_only, …: the
        /// names of truth.tsv), all present from the start for --seconds: a plain swarm to
        /// measure another tool on, side by side with btda
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
        /// With --kind: leechers (no piece at the start, gaining --rate pieces a second,
        /// a have each) instead of seeds
        #[arg(long, requires = "kind")]
        leechers: bool,
        /// With --kind --leechers: pieces per second each leecher gains
        #[arg(long, default_value_t = 1.0, requires = "leechers")]
        rate: f64,
    },
    /// Run the whole pipeline on simulated swarms on loopback (no torrents or network needed)
    ///
    /// Starts a few simulated torrents, each with a tracker and scripted peers on
    /// 127.100.x.x, measures them with `btda run` for --seconds, stops as Ctrl+C would,
    /// and prints the report next to the simulator's truth. The run stays in --output.
    Demo {
        /// Length of the demo in seconds
        #[arg(long, default_value_t = 120)]
        seconds: u64,
        /// Peers per torrent
        #[arg(long, default_value_t = 100)]
        peers: u32,
        /// Torrents
        #[arg(long, default_value_t = 3)]
        torrents: u8,
    },
    /// Geolocation databases
    #[command(subcommand)]
    Geo(GeoCommand),
    /// Write synthetic visit rows through the database writer, printing progress (for
    /// tests and benchmarks of the writer).
    #[command(hide = true)]
    WriterLoad {
        /// Database to create
        #[arg(long)]
        database: PathBuf,
        /// Number of visit records
        #[arg(long)]
        records: u64,
    },
}

#[derive(Subcommand, Debug)]
enum GeoCommand {
    /// Look addresses up in the configured databases (to check them)
    Lookup {
        /// IP addresses
        #[arg(required = true)]
        ip: Vec<std::net::IpAddr>,
    },
    /// Build an ASN database (mmdb, GeoLite2-ASN field names) from ip-location-db CSVs
    ///
    /// Each line: start_ip,end_ip,asn,organization. `make geodata` runs this on the CSV
    /// files of the npm package @ip-location-db/asn.
    BuildAsn {
        /// The database to write
        #[arg(long)]
        output: PathBuf,
        /// CSV files (IPv4 and IPv6)
        #[arg(required = true)]
        csv: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Run | Command::Demo { .. } | Command::Sim { .. }
    ) {
        // Hours with thousands of threads: glibc's per-thread caches off (see the module).
        if let Err(e) = btda::thread_caches::reexec_with_caches_off() {
            eprintln!("btda: cannot turn glibc's per-thread caches off ({e}); going on");
        }
    }
    match execute(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("btda: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: errors that already quote
/// their source (`cannot create …: Read-only file system (os error 30)`) are not
/// followed by the same text again.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

fn execute(cli: &Cli) -> Result<ExitCode> {
    let count = |n: u8| i8::try_from(n).unwrap_or(i8::MAX);
    let verbosity = count(cli.verbose).saturating_sub(count(cli.quiet));
    let config = load_config(cli)?;
    match &cli.command {
        Command::Run => {
            // Handlers first, so that a Ctrl+C during start-up is not lost.
            let shutdown = Shutdown::install().context("cannot install signal handlers")?;
            let opts = RunOptions {
                input: cli.input.clone(),
                output: cli.output.clone(),
                config,
                verbosity,
            };
            let outcome = btda::run::run(&opts, &shutdown)?;
            print!("{}", outcome.summary());
            match &outcome.failure {
                None => Ok(ExitCode::SUCCESS),
                Some(why) => {
                    eprintln!("btda: the run stopped because {why}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Import => {
            logging::init(None, verbosity)?;
            import(&cli.input, &config)
        }
        Command::Report { database, json } => {
            logging::init(None, verbosity)?;
            report(database, *json)
        }
        Command::WriterLoad { database, records } => writer_load(database, *records, &config),
        Command::Merge { out, runs } => {
            let s = offline::merge::merge(out, runs)?;
            for (path, hosts, confirmed) in &s.inputs {
                println!("{path}: host {}, {confirmed} confirmed", hosts.join(", "));
            }
            println!(
                "{}: {} torrents, {} peers, {} confirmed downloads ({} seen crossing only across hosts)",
                out.display(),
                s.torrents,
                s.peers,
                s.confirmed,
                s.across_hosts
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            seconds,
            peers,
            torrents,
        } => {
            let demo = btda::sim::demo::run_demo(
                *seconds,
                (*peers).clamp(5, 60_000),
                (*torrents).clamp(1, 20),
                &cli.output,
                verbosity,
            )
            .map_err(anyhow::Error::msg)?;
            print!("{}", demo.text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim {
            peers,
            torrents,
            seconds,
            every_kind,
            rtt_ms,
            dial,
            dir,
            kind,
            leechers,
            rate,
        } => {
            logging::init(None, verbosity)?;
            let uniform = match kind {
                None => None,
                Some(name) => Some(btda::sim::serve::Uniform {
                    kind: btda::sim::swarm::Kind::from_name(name).with_context(|| {
                        format!("--kind {name}: no such kind (see truth.tsv's kind names)")
                    })?,
                    seeds: !*leechers,
                    rate: *rate,
                }),
            };
            let options = btda::sim::serve::SimOptions {
                peers: (*peers).clamp(1, 60_000),
                torrents: (*torrents).clamp(1, 20),
                seconds: (*seconds).max(1),
                realistic: !*every_kind,
                rtt_ms: (rtt_ms.1 > 0).then_some(*rtt_ms),
                dial: *dial,
                dial_every_ms: btda::sim::reactor::ReactorOptions::default().dial_every_ms,
                spread_dials: false,
                pex: 0,
                generations: 1,
                uniform,
            };
            let shutdown = Shutdown::install().context("installing the Ctrl+C handler")?;
            let server = btda::sim::serve::start(&options, dir).map_err(anyhow::Error::msg)?;
            println!(
                "btda sim: {} torrents of {} peers{}; DHT router {}; Ctrl+C to stop",
                options.torrents,
                options.peers,
                match (&options.uniform, options.realistic) {
                    (Some(u), _) => format!(
                        " (every one {} {})",
                        u.kind.name(),
                        if u.seeds { "seeding" } else { "leeching" }
                    ),
                    (None, true) => " (2015's first-contact mix)".to_string(),
                    (None, false) => " (every kind, all answering)".to_string(),
                },
                server
                    .dht_router
                    .map_or_else(|| "-".to_string(), |a| a.to_string())
            );
            for f in &server.torrent_files {
                println!("torrent: {}", f.display());
            }
            shutdown.wait(Duration::MAX);
            let truth = dir.join("truth.tsv");
            server.write_truth(&truth).map_err(anyhow::Error::msg)?;
            println!("truth: {}", truth.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Geo(GeoCommand::Lookup { ip }) => {
            logging::init(None, verbosity)?;
            let in_input = |p: &String| {
                let p = PathBuf::from(p);
                if p.is_absolute() {
                    p
                } else {
                    cli.input.join(p)
                }
            };
            let g = &config.geo;
            let geo = btda::geo::Geo::open(
                &g.city.iter().map(in_input).collect::<Vec<_>>(),
                &g.asn.iter().map(in_input).collect::<Vec<_>>(),
                true,
            );
            let (city, asn) = geo.describe();
            println!(
                "city: {}\nasn: {}",
                city.unwrap_or_else(|| "-".into()),
                asn.unwrap_or_else(|| "-".into())
            );
            for addr in ip {
                println!("{addr}: {:?}", geo.lookup(*addr));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Geo(GeoCommand::BuildAsn { output, csv }) => {
            let csvs: Vec<&Path> = csv.iter().map(PathBuf::as_path).collect();
            let (written, skipped) =
                btda::geo::build::build_asn(&csvs, output).map_err(anyhow::Error::msg)?;
            println!(
                "{}: {written} ranges ({skipped} lines skipped)",
                output.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| cli.input.join("btda.toml"));
    let (config, existed) = Config::load(&path)?;
    if !existed && cli.config.is_some() {
        bail!("configuration file {} does not exist", path.display());
    }
    Ok(config)
}

fn import(input: &Path, config: &Config) -> Result<ExitCode> {
    let report = btda::torrent::import_inputs(input, config.import.max_torrent_bytes)
        .with_context(|| format!("cannot read the input folder {}", input.display()))?;
    Ok(if offline::listing::print(&report) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn report(database: &Path, json: bool) -> Result<ExitCode> {
    if !database.is_file() {
        bail!("{} is not a file", database.display());
    }
    let report = offline::report::read(database)
        .with_context(|| format!("cannot read run database {}", database.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", offline::report::render_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn writer_load(database: &Path, records: u64, config: &Config) -> Result<ExitCode> {
    let settings = WriterSettings::from(&config.writer);
    let (committed, batches) = offline::writer_load::run(database, records, settings)?;
    println!("done {committed} records in {batches} transactions");
    Ok(ExitCode::SUCCESS)
}

/// Parses `LOW-HIGH` (milliseconds) for `btda sim --rtt-ms`.
fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?}: expected LOW-HIGH, e.g. 20-400"))?;
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?} is not a number of milliseconds"))
    };
    let (lo, hi) = (number(lo)?, number(hi)?);
    if lo > hi || hi > 60_000 {
        return Err(format!("{text:?}: need LOW <= HIGH <= 60000"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    #[test]
    fn os_errors_are_said_once() {
        let e = anyhow::Error::new(btda::run::RunError::Output {
            path: "/ro/out".into(),
            source: std::io::Error::from_raw_os_error(30),
        });
        let text = super::error_text(&e);
        assert_eq!(text.matches("(os error 30)").count(), 1, "{text}");
        let chained = anyhow::Error::new(std::io::Error::from_raw_os_error(2)).context("reading x");
        assert_eq!(
            super::error_text(&chained),
            format!("reading x: {}", std::io::Error::from_raw_os_error(2))
        );
    }
}
