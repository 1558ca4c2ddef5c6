//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The btda binary cargo built for these tests, with a state directory of its own
/// (`XDG_STATE_HOME`), so no test reads or writes the user's DHT state, and no test's
/// loopback DHT nodes reach another's.
pub(crate) fn btda() -> Command {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let state = std::env::temp_dir().join(format!("btda-test-state-{}-{n}", std::process::id()));
    let mut c = Command::new(env!("CARGO_BIN_EXE_btda"));
    c.env("XDG_STATE_HOME", state);
    c
}

/// The committed fixture folder.
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Parses a tab-separated file with a header into rows of (column → value).
pub(crate) fn read_tsv(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .zip(l.split('\t'))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Sends a signal to a child with the `kill` command.
pub(crate) fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} failed");
}

/// Forwards a child's stdout lines to a channel (so tests can wait with a timeout).
pub(crate) fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a child to exit, killing it and failing the test after `limit`.
pub(crate) fn wait_with_limit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let mut status = None;
    if !eventually(limit, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    }) {
        let _ = child.kill();
        panic!("child did not exit within {limit:?}");
    }
    status.expect("exited")
}

pub(crate) use btda::sim::eventually;

/// Spawns btda with piped stdout and stderr.
pub(crate) fn spawn(args: &[&str]) -> Child {
    btda()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("btda starts")
}

/// Stops a running `btda run` the way Ctrl+C does and checks it exits with 0 within
/// 30 s.
pub(crate) fn interrupt_and_wait(child: &mut Child) {
    signal(child, "INT");
    assert_eq!(
        wait_with_limit(child, Duration::from_secs(30)).code(),
        Some(0),
        "btda did not stop cleanly on SIGINT"
    );
}

/// Runs `btda demo` into `out`: `peers` simulated peers on each of `torrents` torrents
/// for `seconds`.
pub(crate) fn demo(out: &Path, seconds: u32, peers: u32, torrents: u32) -> std::process::Output {
    btda()
        .arg("demo")
        .args(["--seconds", &seconds.to_string()])
        .args(["--peers", &peers.to_string()])
        .args(["--torrents", &torrents.to_string()])
        .arg("--output")
        .arg(out)
        .output()
        .expect("btda demo")
}

/// Starts `btda run --input … --output …` and waits for its start line; returns the
/// child, that line and the rest of its stdout.
pub(crate) fn start_run(input: &Path, output: &Path) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = spawn(&[
        "run",
        "--input",
        input.to_str().expect("utf-8 path"),
        "--output",
        output.to_str().expect("utf-8 path"),
    ]);
    let lines = stdout_lines(&mut child);
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("btda run starts");
    (child, first, lines)
}

/// The run database in an output folder.
pub(crate) fn database_in(output: &Path) -> Option<PathBuf> {
    std::fs::read_dir(output)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite"))
}

/// A child process killed (by PID) and reaped when it goes out of scope, however the
/// test ends.
pub(crate) struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The libtorrent helper `tests/interop/lt_peer.py`.
pub(crate) fn lt_peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_peer.py")
}

/// One libtorrent client (`lt_peer.py` with `args`), in network namespace `ns` if given,
/// killed when dropped; and its stdout lines.
pub(crate) fn lt_peer(ns: Option<&str>, args: &[&str]) -> (Reaped, mpsc::Receiver<String>) {
    let mut command = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "/usr/bin/python3"]);
            c
        }
        None => Command::new("/usr/bin/python3"),
    };
    let mut child = command
        .arg(lt_peer_script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3-libtorrent is installed by `make deps`");
    let lines = stdout_lines(&mut child);
    (Reaped(child), lines)
}

/// A running opentracker and the folder it is chrooted into (kept until it stops).
pub(crate) struct Opentracker {
    _child: Reaped,
    _dir: tempfile::TempDir,
}

/// Starts Debian's opentracker on `ip:port` (HTTP and UDP) serving only `hashes`. The
/// Debian build serves only whitelisted info-hashes and drops root: it runs as `nobody`,
/// chrooted into a temporary folder holding the whitelist.
pub(crate) fn start_opentracker(
    ip: &str,
    port: u16,
    hashes: &[btda::torrent::InfoHash],
) -> Opentracker {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let list: String = hashes.iter().map(|h| format!("{h}\n")).collect();
    std::fs::write(dir.path().join("whitelist.txt"), list).unwrap();
    std::fs::set_permissions(
        dir.path().join("whitelist.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let child = std::process::Command::new("opentracker")
        .args([
            "-i",
            ip,
            "-p",
            &port.to_string(),
            "-P",
            &port.to_string(),
            "-u",
            "nobody",
            "-d",
        ])
        .arg(dir.path())
        .args(["-w", "/whitelist.txt"]) // read after the chroot into -d
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("opentracker is installed by `make deps`");
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        }),
        "opentracker did not start"
    );
    let tracker = Opentracker {
        _child: Reaped(child),
        _dir: dir,
    };
    // opentracker listens before a thread of its own has read the whitelist: until then
    // it refuses every hash. Announce a probe peer until a peer list comes back, then
    // take the probe out with `stopped` (which leaves no peer and no completion behind).
    if let Some(hash) = hashes.first() {
        let escaped: String = hash.0.iter().map(|b| format!("%{b:02X}")).collect();
        let url = format!(
            "http://{addr}/announce?info_hash={escaped}&peer_id=-PROBE0-000000000000\
             &port=1&uploaded=0&downloaded=0&left=1&compact=1"
        );
        let answer = |event: &str| {
            attohttpc::get(format!("{url}{event}"))
                .timeout(Duration::from_secs(2))
                .send()
                .and_then(attohttpc::Response::text)
                .unwrap_or_default()
        };
        assert!(
            eventually(Duration::from_secs(10), || answer("").contains("5:peers")),
            "opentracker did not load its whitelist"
        );
        answer("&event=stopped");
    }
    tracker
}

/// A temporary root with `input/` holding `a.torrent` (the committed 4-piece mktorrent
/// fixture, info-hash be8df057…) and the path of `output/`.
pub(crate) fn run_dirs_with_fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().expect("temp dir");
    let input = root.path().join("input");
    let output = root.path().join("output");
    std::fs::create_dir_all(&input).expect("input dir");
    std::fs::copy(
        fixtures().join("inputs/mktorrent-single.torrent"),
        input.join("a.torrent"),
    )
    .expect("fixture");
    (root, input, output)
}

/// The first column of every row of `sql`.
pub(crate) fn column<T: rusqlite::types::FromSql>(
    conn: &rusqlite::Connection,
    sql: &str,
) -> Vec<T> {
    conn.prepare(sql)
        .expect("valid SQL")
        .query_map([], |r| r.get(0))
        .expect("query runs")
        .collect::<Result<_, _>>()
        .expect("column of that type")
}

/// The peer keyer btda uses for `privacy.key = hex`.
pub(crate) fn keyer(hex: &str) -> btda::book::PeerKeyer {
    let privacy = btda::config::Privacy {
        key: hex.to_string(),
        ..Default::default()
    };
    btda::book::PeerKeyer::new(privacy.peer_key().expect("64 hex characters"))
}

/// Checks a run database is sound and adds up: integrity, and every peer row's `visits`
/// and `failed_visits` equal to its `ok` and failed visit rows.
pub(crate) fn assert_database_adds_up(conn: &rusqlite::Connection) {
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check runs");
    assert_eq!(check, "ok");
    let mismatched: i64 = conn
        .query_row(
            "SELECT count(*) FROM peer p WHERE p.visits <>
               (SELECT count(*) FROM visit v WHERE v.peer_id = p.id AND v.outcome = 'ok')
             OR p.failed_visits <> (SELECT count(*) FROM visit v WHERE v.peer_id = p.id
               AND v.outcome NOT IN ('ok', 'interrupted', 'local_error'))",
            [],
            |r| r.get(0),
        )
        .expect("query runs");
    assert_eq!(mismatched, 0, "peer rows that differ from their visit rows");
}

/// Waits up to 20 s for something to listen on `addr`.
pub(crate) fn wait_for_port(addr: &str, what: &str) {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert!(
        eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        }),
        "{what} did not start listening on {addr}"
    );
}

/// A transmission-daemon seeder on `peer` (ip:port) with its RPC on `rpc`: settings
/// written before start (DHT, LPD, PEX, uTP, port forwarding off; `extra` settings
/// on top), the torrent added and verified with transmission-remote, then started.
pub(crate) fn start_transmission(
    root: &Path,
    peer: &str,
    rpc: &str,
    seed_dir: &Path,
    torrent: &Path,
    extra: &[(&str, serde_json::Value)],
) -> Reaped {
    let conf = root.join(format!("transmission-{peer}"));
    std::fs::create_dir_all(&conf).unwrap();
    let (ip, port) = peer.split_once(':').unwrap();
    let (_, rpc_port) = rpc.split_once(':').unwrap();
    let mut settings = serde_json::json!({
        "bind-address-ipv4": ip,
        "bind-address-ipv6": "::1",
        "peer-port": port.parse::<u16>().unwrap(),
        "peer-port-random-on-start": false,
        "rpc-bind-address": ip,
        "rpc-port": rpc_port.parse::<u16>().unwrap(),
        "rpc-authentication-required": false,
        "rpc-whitelist-enabled": false,
        "rpc-host-whitelist-enabled": false,
        "dht-enabled": false,
        "lpd-enabled": false,
        "pex-enabled": false,
        "utp-enabled": false,
        "port-forwarding-enabled": false,
        "download-dir": seed_dir,
        "incomplete-dir-enabled": false,
        "watch-dir-enabled": false,
        "blocklist-enabled": false,
        "ratio-limit-enabled": false,
        "message-level": 1,
    });
    for (key, value) in extra {
        settings[*key] = value.clone();
    }
    std::fs::write(conf.join("settings.json"), settings.to_string()).unwrap();
    let child = Command::new("transmission-daemon")
        .args(["-f", "-g"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("transmission-daemon is installed by `make deps`");
    let daemon = Reaped(child);
    wait_for_port(rpc, "transmission-daemon's RPC");
    let remote = |args: &[&str]| {
        let out = Command::new("transmission-remote")
            .arg(rpc)
            .args(args)
            .output()
            .expect("transmission-remote (transmission-cli)");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    remote(&["-a", torrent.to_str().unwrap()]);
    remote(&["-t", "1", "--verify"]);
    assert!(
        eventually(Duration::from_secs(30), || transmission_percent(rpc)
            == Some(100.0)),
        "Transmission did not verify its data: {}",
        remote(&["-t", "1", "-i"])
    );
    remote(&["-t", "1", "--start"]);
    daemon
}

/// Transmission's own "Percent Done" for torrent 1, over its RPC on `rpc`.
pub(crate) fn transmission_percent(rpc: &str) -> Option<f64> {
    let out = Command::new("transmission-remote")
        .args([rpc, "-t", "1", "-i"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Percent Done:"))
        .and_then(|p| p.trim().trim_end_matches('%').parse().ok())
}

/// A `request` row as the tracker tests read it: url, kind, ok, error.
pub(crate) type RequestRow = (String, String, bool, Option<String>);

/// Runs the tracker loop for `torrents` (one 1 MiB torrent per entry, all known) with
/// `config` for `run_for`, stops it and returns the `request` rows in order.
pub(crate) fn run_trackers(
    torrents: &[btda::tracker::service::TrackedTorrent],
    config: &btda::config::Tracker,
    run_for: Duration,
) -> Vec<RequestRow> {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.sqlite");
    let writer = btda::store::Writer::start(
        &db,
        btda::store::WriterSettings::from(&btda::config::Writer::default()),
    )
    .unwrap();
    let figures = btda::torrent::Figures {
        pieces: 64,
        size: 1 << 20,
        threshold: 63,
    };
    let registry = Arc::new(btda::torrent::TorrentRegistry::new(
        torrents.iter().map(|t| (t.info_hash, Some(figures))),
    ));
    let policy = btda::schedule::Policy {
        revisit_delay: Duration::from_secs(60),
        min_revisit: Duration::from_secs(60),
        first_revisit: Duration::from_secs(60),
        transient_retry: Duration::from_secs(60),
        backoff: vec![],
        silent_retries: 2,
        silent_slots: 256,
        cooldown: Duration::ZERO,
    };
    let queue = Arc::new(
        btda::book::PeerQueue::new(
            Arc::clone(&registry),
            policy,
            btda::book::PeerKeyer::random(),
        )
        .allow_private(true),
    );
    let stop = btda::run::Shutdown::new();
    let me = btda::tracker::service::Announcer {
        source_ip: Some("127.0.0.1".parse().unwrap()),
        peer_id: *b"-BD0100-trackertest2",
        port: 51413,
        key: 7,
    };
    let service = btda::tracker::service::TrackerService::start(
        torrents,
        registry,
        &config.into(),
        me,
        queue as Arc<dyn btda::book::PeerSink>,
        writer.sender(),
        stop.clone(),
    );
    std::thread::sleep(run_for);
    stop.request();
    service.stop();
    writer.finish().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT url, kind, ok, error FROM request ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The raw `info` dictionary of a simulated single-file torrent of `pieces` 16 KiB
/// pieces named `name` (its piece hashes are `fill` bytes), and its info-hash.
pub(crate) fn sim_info(name: &str, fill: char, pieces: u32) -> (String, btda::torrent::InfoHash) {
    let info = format!(
        "d6:lengthi{}e4:name{}:{name}12:piece lengthi16384e6:pieces{}:{}e",
        pieces * 16384,
        name.len(),
        pieces * 20,
        fill.to_string().repeat(pieces as usize * 20)
    );
    let hash = btda::torrent::InfoHash::of_info_bytes(info.as_bytes());
    (info, hash)
}

/// The simulator's behaviour at the accuracy tests' compressed time: NAT-like peers
/// dial `dial` every 1.5 s, batches every 0.7 s, connections held 3 s, busy peers refuse
/// for 3-6 s; the trackers also list `also_listed` (real trackers list the announcer).
pub(crate) fn compressed(
    dial: std::net::SocketAddr,
    also_listed: Vec<std::net::SocketAddr>,
) -> btda::sim::reactor::ReactorOptions {
    btda::sim::reactor::ReactorOptions {
        dial: Some(dial),
        dial_every_ms: 1_500,
        batch_every_ms: 700,
        hold_ms: 3_000,
        busy: (3_000, 6_000),
        also_listed,
        ..btda::sim::reactor::ReactorOptions::default()
    }
}

/// One simulated torrent of `lives` behind an HTTP and a UDP tracker on `tracker_ip`,
/// with a DHT router on `dht_ip` and nodes for its DHT-only peers; returns the swarm,
/// how many peers were announced on the DHT, and the `.torrent` file's text.
pub(crate) fn start_sim(
    (info, hash): &(String, btda::torrent::InfoHash),
    lives: Vec<btda::sim::swarm::PeerScript>,
    pieces: u32,
    options: btda::sim::reactor::ReactorOptions,
    tracker_ip: &str,
    dht_ip: &str,
) -> (btda::sim::swarm::Swarm, usize, String) {
    let sim = btda::sim::reactor::SimTorrent {
        info_hash: *hash,
        total: pieces,
        lives,
    };
    let trackers = [btda::sim::swarm::TrackerAddrs {
        http: format!("{tracker_ip}:0").parse().unwrap(),
        udp: Some(format!("{tracker_ip}:0").parse().unwrap()),
    }];
    let mut swarm = btda::sim::swarm::Swarm::start(vec![sim], &trackers, options).unwrap();
    let announced = swarm
        .start_dht(format!("{dht_ip}:0").parse().unwrap(), 10)
        .unwrap();
    let torrent = swarm.torrent_file(0, info);
    (swarm, announced, torrent)
}

/// btda's configuration for measuring a simulated swarm at compressed time: listening
/// on `listen`, the swarm's DHT through `router`, 1 s revisits and intervals, the
/// shared `key`; `peer_extra` adds `[peer]` lines. Time runs ~180× faster than on the
/// internet (1 s revisits for 180 s), so the per-network dial budget is scaled up too
/// (its default, 10 a second, is tested by itself).
pub(crate) fn sim_config(
    listen: std::net::SocketAddr,
    router: std::net::SocketAddr,
    workers: u32,
    (window_ms, cap_ms): (u64, u64),
    key: &str,
    peer_extra: &str,
) -> String {
    format!(
        "[dht]\nenabled = true\nlisten_address = \"{ip}\"\nport = 0\nbootstrap = [\"{router}\"]\n\
         interval_secs = 1\nquery_timeout_ms = 500\n\
         [peer]\nallow_private_addresses = true\nworkers = {workers}\nlisten_address = \"{ip}\"\n\
         listen_port = {port}\nrevisit_delay_secs = 1\nstate_window_ms = {window_ms}\n\
         silence_timeout_ms = 1000\nvisit_cap_ms = {cap_ms}\nretry_backoff_secs = [1, 1, 1]\n\
         new_dials_per_network_per_sec = 1000\n{peer_extra}\
         [tracker]\ninterval_secs = 1\nstopped_timeout_ms = 1000\n\
         [monitor]\nstatistics_interval_secs = 1\n[privacy]\nkey = \"{key}\"\n",
        ip = listen.ip(),
        port = listen.port()
    )
}

/// `btda run` on the torrent `torrent` (a `.torrent` file's text) with `config` for
/// `ms`, then Ctrl+C; returns the temporary root (keep it alive) and the database.
pub(crate) fn measure(torrent: &str, config: &str, ms: u64) -> (tempfile::TempDir, PathBuf) {
    let (root, input, output) = run_dirs_with_fixture();
    std::fs::remove_file(input.join("a.torrent")).unwrap();
    std::fs::write(input.join("sim.torrent"), torrent).unwrap();
    std::fs::write(input.join("btda.toml"), config).unwrap();
    let (mut child, _, _lines) = start_run(&input, &output);
    std::thread::sleep(Duration::from_millis(ms));
    interrupt_and_wait(&mut child);
    let db = database_in(&output).unwrap();
    (root, db)
}

/// Whether each peer of a run database (by keyed hash) is a confirmed download.
pub(crate) fn crossed_by_key(db: &Path) -> std::collections::HashMap<String, bool> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT peer_key, crossed_at IS NOT NULL FROM peer")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// btda's count next to the simulated truth, peer by peer.
#[derive(Debug, Default)]
pub(crate) struct Judged {
    /// Witnessable crossings that stayed long enough for the cadence: must be confirmed.
    pub(crate) must: usize,
    /// Of those, confirmed.
    pub(crate) must_confirmed: usize,
    /// Other crossings while present (left soon after, or hidden by the run's end).
    pub(crate) may: usize,
    /// Of those, confirmed (reported, not required).
    pub(crate) may_confirmed: usize,
    /// Confirmed downloads of peers that never crossed while present, or whose kind
    /// hides their pieces: false counts.
    pub(crate) false_confirmed: Vec<String>,
    /// Crossings that had to be confirmed and were not.
    pub(crate) missed: Vec<String>,
}

/// Judges the confirmed downloads of `crossed` (by keyed hash) against `lives` of a
/// torrent of `total` pieces (T at btda's default threshold), for a cadence that must
/// witness every crossing after which the peer stays `min_linger_ms`, in a run the
/// simulator saw end at `ended_ms`.
pub(crate) fn judge(
    swarm: &btda::sim::swarm::Swarm,
    lives: &[btda::sim::swarm::PeerScript],
    crossed: &std::collections::HashMap<String, bool>,
    keyer: &btda::book::PeerKeyer,
    total: u32,
    min_linger_ms: u64,
    ended_ms: u64,
) -> Judged {
    use btda::sim::script::Expect;
    let threshold = btda::torrent::threshold_pieces(0.98, total);
    let mut j = Judged::default();
    for s in lives {
        let addr = swarm.addr_of(s);
        let got = crossed.get(&keyer.key(&addr)).copied().unwrap_or(false);
        let what = format!(
            "{addr} {} (crosses {:?} ms, lingers {:?} ms)",
            s.kind.name(),
            s.crosses_at(total, threshold),
            s.linger_ms(total, threshold)
        );
        match s.expected(
            total,
            threshold,
            swarm.reactor.busy,
            min_linger_ms,
            ended_ms,
        ) {
            Expect::Must => {
                j.must += 1;
                j.must_confirmed += usize::from(got);
                if !got {
                    j.missed.push(what);
                }
            }
            Expect::May => {
                j.may += 1;
                j.may_confirmed += usize::from(got);
            }
            Expect::MustNot if got => j.false_confirmed.push(what),
            Expect::MustNot => {}
        }
    }
    println!(
        "truth: {} witnessable crossings the cadence must see, {} confirmed; {} others \
         (left within {min_linger_ms} ms of crossing, or at the run's end), {} of them \
         confirmed; {} false",
        j.must,
        j.must_confirmed,
        j.may,
        j.may_confirmed,
        j.false_confirmed.len()
    );
    j
}

/// A TCP connection to `to` from the loopback address `from` (a simulated host of its
/// own), within 2 s.
pub(crate) fn connect_from(
    from: [u8; 4],
    to: std::net::SocketAddr,
) -> std::io::Result<std::net::TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from((from, 0)).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}
