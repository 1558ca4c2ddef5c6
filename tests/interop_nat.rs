//! A real NAT on this machine, and btda reaching the peer behind it by a hole punch
//! (BEP 55). Three network namespaces the test creates and removes:
//!
//! - "wan": btda (10.200.0.3), a libtorrent seeder (10.200.0.2, the relay) and
//!   opentracker (10.200.0.4), on one veth to the router;
//! - "router": 10.200.0.1 towards the wan, 192.168.200.1 towards the LAN; iptables
//!   MASQUERADE out of the wan side, and a FORWARD rule that drops what comes in from
//!   the wan unless it is ESTABLISHED/RELATED (no port forwarding);
//! - "lan": a rate-limited libtorrent leecher (192.168.200.2) whose default route is
//!   the router.
//!
//! The tracker lists both clients (the leecher as the router's address with its listen
//! port); the leecher's TCP port there is refused and uTP to it times out, so btda
//! reaches it only through the seeder's rendezvous. The test checks that btda
//! confirms the leecher's finished download exactly once, that btda's own dials never
//! reached it and that punched visits did. Both clients keep their connection once the
//! leecher is done (libtorrent's `close_redundant_connections` off): in a real swarm
//! other leechers would still be connected to the finished peer and relay; here the
//! seeder must. Nothing of it touches the machine's own network. It needs root
//! (CI runs as root); without root it says so and passes without running.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Reaped, eventually};

const SEEDER: &str = "10.200.0.2:51600";
const BTDA_IP: &str = "10.200.0.3";
const TRACKER_IP: &str = "10.200.0.4";
const LEECHER: &str = "192.168.200.2:51601";

/// The namespaces, removed (with their veths and processes' sockets) when dropped.
struct Namespaces {
    wan: String,
    router: String,
    lan: String,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.wan, &self.router, &self.lan] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run(ns: Option<&str>, cmd: &str) {
    let mut c = Command::new("ip");
    let words: Vec<&str> = cmd.split_whitespace().collect();
    match ns {
        Some(ns) => c.args(["netns", "exec", ns]).args(&words),
        None => c.args(&words[1..]),
    };
    let out = c.output().expect("ip runs");
    assert!(
        out.status.success(),
        "{ns:?}: {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the three namespaces, the veths and the NAT.
fn build_nat() -> Namespaces {
    let id = std::process::id() % 100_000;
    let n = Namespaces {
        wan: format!("btda-wan-{id}"),
        router: format!("btda-rtr-{id}"),
        lan: format!("btda-lan-{id}"),
    };
    for ns in [&n.wan, &n.router, &n.lan] {
        run(None, &format!("ip netns add {ns}"));
        run(Some(ns), "ip link set lo up");
    }
    let (w, rw, l, rl) = (
        format!("bw{id}"),
        format!("brw{id}"),
        format!("bl{id}"),
        format!("brl{id}"),
    );
    run(
        None,
        &format!(
            "ip link add {w} netns {} type veth peer name {rw} netns {}",
            n.wan, n.router
        ),
    );
    run(
        None,
        &format!(
            "ip link add {l} netns {} type veth peer name {rl} netns {}",
            n.lan, n.router
        ),
    );
    // btda's address first: the primary one, which its tracker requests leave from.
    for ip in ["10.200.0.3/24", "10.200.0.2/24", "10.200.0.4/24"] {
        run(Some(&n.wan), &format!("ip addr add {ip} dev {w}"));
    }
    run(Some(&n.wan), &format!("ip link set {w} up"));
    run(
        Some(&n.router),
        &format!("ip addr add 10.200.0.1/24 dev {rw}"),
    );
    run(
        Some(&n.router),
        &format!("ip addr add 192.168.200.1/24 dev {rl}"),
    );
    run(Some(&n.router), &format!("ip link set {rw} up"));
    run(Some(&n.router), &format!("ip link set {rl} up"));
    run(Some(&n.router), "sysctl -q -w net.ipv4.ip_forward=1");
    run(
        Some(&n.router),
        &format!("iptables -t nat -A POSTROUTING -o {rw} -j MASQUERADE"),
    );
    run(
        Some(&n.router),
        &format!("iptables -A FORWARD -i {rl} -o {rw} -j ACCEPT"),
    );
    run(
        Some(&n.router),
        &format!(
            "iptables -A FORWARD -i {rw} -o {rl} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
        ),
    );
    run(
        Some(&n.router),
        &format!("iptables -A FORWARD -i {rw} -o {rl} -j DROP"),
    );
    run(
        Some(&n.lan),
        &format!("ip addr add 192.168.200.2/24 dev {l}"),
    );
    run(Some(&n.lan), &format!("ip link set {l} up"));
    run(Some(&n.lan), "ip route add default via 192.168.200.1");
    n
}

/// Starts opentracker in `ns` serving `hash`, and waits until it lists peers.
fn tracker(ns: &str, dir: &Path, hash: &str) -> Reaped {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("whitelist.txt"), format!("{hash}\n")).unwrap();
    std::fs::set_permissions(
        dir.join("whitelist.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "opentracker", "-i", TRACKER_IP])
        .args(["-p", "6969", "-P", "6969", "-u", "nobody", "-d"])
        .arg(dir)
        .args(["-w", "/whitelist.txt"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("opentracker is installed by `make deps`");
    let escaped: String = (0..20)
        .map(|i| format!("%{}", &hash[2 * i..2 * i + 2]))
        .collect();
    let probe = format!(
        "import urllib.request as u; print(u.urlopen('http://{TRACKER_IP}:6969/announce?info_hash={escaped}\
         &peer_id=-PROBE0-000000000000&port=1&uploaded=0&downloaded=0&left=1&compact=1&event=stopped', timeout=2).read())"
    );
    assert!(
        eventually(Duration::from_secs(15), || {
            Command::new("ip")
                .args(["netns", "exec", ns, "/usr/bin/python3", "-c", &probe])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("5:peers"))
        }),
        "opentracker did not come up in {ns}"
    );
    Reaped(child)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn query(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row(sql, [], |r| r.get::<_, Option<i64>>(0)))
        .ok()
        .flatten()
        .unwrap_or(0)
}

fn last_pieces(lines: &std::sync::mpsc::Receiver<String>, last: &mut i64, peers: &mut i64) {
    while let Ok(line) = lines.try_recv() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            *last = v["pieces"].as_i64().unwrap_or(*last);
            *peers = v["peers"].as_i64().unwrap_or(*peers);
        }
    }
}

#[test]
fn btda_reaches_a_leecher_behind_a_nat_by_a_hole_punch() {
    if !is_root() {
        eprintln!(
            "interop_nat: SKIPPED — building a NAT (network namespaces, iptables) needs root; \
             CI runs as root"
        );
        return;
    }
    let nat = build_nat();
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new("/usr/bin/python3")
        .arg(common::lt_peer_script())
        .args(["make", "--dir"])
        .arg(dir.path().join("torrent"))
        .args(["--tracker", &format!("http://{TRACKER_IP}:6969/announce")])
        .args(["--pieces", "32"])
        .output()
        .expect("python3-libtorrent");
    let made: serde_json::Value =
        serde_json::from_slice(&made.stdout).expect("lt_peer.py make prints JSON");
    let hash = made["hash"].as_str().unwrap().to_string();
    let torrent = made["torrent"].as_str().unwrap().to_string();
    let _tracker = tracker(&nat.wan, &dir.path().join("tracker"), &hash);

    let seed_dir = dir.path().join("torrent");
    let (_seeder, seeder_lines) = common::lt_peer(
        Some(&nat.wan),
        &[
            "seed",
            "--torrent",
            &torrent,
            "--save",
            seed_dir.to_str().unwrap(),
            "--listen",
            SEEDER,
            "--keep-seeds",
        ],
    );
    let leech_dir = dir.path().join("leech");
    let (_leecher, leecher_lines) = common::lt_peer(
        Some(&nat.lan),
        &[
            "leech",
            "--torrent",
            &torrent,
            "--save",
            leech_dir.to_str().unwrap(),
            "--listen",
            LEECHER,
            "--rate",
            "12288",
            "--connect",
            SEEDER,
            "--keep-seeds",
        ],
    );
    assert!(seeder_lines.recv_timeout(Duration::from_secs(20)).is_ok());
    // Begin once the leecher downloads from the seeder (through the NAT): its
    // connection is past the handshake, so the seeder's PEX names it.
    let (mut pieces, mut peers) = (0, 0);
    assert!(
        eventually(Duration::from_secs(30), || {
            last_pieces(&leecher_lines, &mut pieces, &mut peers);
            peers >= 1 && pieces >= 1
        }),
        "the leecher behind the NAT never connected to the seeder"
    );
    assert!(
        pieces < 16,
        "the leecher is already at {pieces} of 32 pieces"
    );

    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(&torrent, input.join("nat.torrent")).unwrap();
    std::fs::write(
        input.join("btda.toml"),
        format!(
            "[dht]\nenabled = false\n[peer]\nallow_private_addresses = true\nworkers = 4\n\
             listen_address = \"{BTDA_IP}\"\nlisten_port = 51602\ntransport = \"both\"\n\
             revisit_delay_secs = 3\nstate_window_ms = 300\nretry_backoff_secs = [1, 2, 3, 5]\n"
        ),
    )
    .unwrap();
    let output = dir.path().join("output");
    let state = dir.path().join("state");
    let mut btda: Child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &nat.wan,
            env!("CARGO_BIN_EXE_btda"),
            "run",
            "-vv",
        ])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .env("XDG_STATE_HOME", &state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("btda starts");
    let stderr = btda.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let _out = common::stdout_lines(&mut btda);
    assert!(eventually(Duration::from_secs(20), || common::database_in(
        &output
    )
    .is_some()));
    let db = common::database_in(&output).unwrap();

    let start = Instant::now();
    let mut finished_at = None;
    while start.elapsed() < Duration::from_secs(150) {
        last_pieces(&leecher_lines, &mut pieces, &mut peers);
        if pieces >= 32 && finished_at.is_none() {
            finished_at = Some(Instant::now());
        }
        let confirmed = query(&db, "SELECT count(*) FROM confirmed_download");
        if confirmed >= 1 || finished_at.is_some_and(|t| t.elapsed() > Duration::from_secs(20)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3)); // a few more visits (none may count twice)
    common::interrupt_and_wait(&mut btda);
    let log = log.join().unwrap_or_default();
    let visits = {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut s = c
            .prepare(
                "SELECT coalesce(peer_id, 0), direction, outcome, coalesce(transport, '-'), \
                 coalesce(via, '-'), coalesce(pieces, -1) FROM visit ORDER BY id",
            )
            .unwrap();
        s.query_map([], |r| {
            Ok(format!(
                "peer {} {} {} {} {} pieces {}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>()
    };
    let figures: Vec<String> = [
        "pex_flag_holepunch",
        "pex_flag_utp",
        "incoming_utp",
        "punch_rendezvous",
        "punch_connects",
        "punch_errors",
        "punch_reached",
    ]
    .iter()
    .map(|c| {
        format!(
            "{c} {}",
            query(&db, &format!("SELECT max({c}) FROM statistic"))
        )
    })
    .collect();
    let explain = format!(
        "leecher at {pieces} pieces\n{}\nvisits:\n{}\nbtda log (tail):\n{}",
        figures.join(", "),
        visits.join("\n"),
        log[log.len().saturating_sub(40)..].join("\n")
    );
    assert_eq!(
        query(&db, "SELECT count(*) FROM confirmed_download"),
        1,
        "exactly the leecher's download is confirmed\n{explain}"
    );
    let leecher: i64 = query(&db, "SELECT peer_id FROM confirmed_download");
    // btda never reached the leecher itself; it was reached through punches (the
    // leecher's connection in after the relay's connect, or btda's uTP after it). The
    // leecher also dials btda on its own now and then (the tracker lists btda): those
    // incoming visits are "direct".
    let ours_direct = query(
        &db,
        &format!(
            "SELECT count(*) FROM visit WHERE peer_id = {leecher} AND outcome = 'ok' \
             AND direction = 'out' AND via = 'direct'"
        ),
    );
    let punched = query(
        &db,
        &format!(
            "SELECT count(*) FROM visit WHERE peer_id = {leecher} AND outcome = 'ok' \
             AND via = 'holepunch' AND transport = 'utp'"
        ),
    );
    assert_eq!(ours_direct, 0, "{explain}");
    assert!(punched >= 2, "seen below T and at T, punched\n{explain}");
    // btda did try the leecher directly, and it was refused or timed out.
    let direct_failed = query(
        &db,
        "SELECT count(*) FROM visit WHERE direction = 'out' AND via = 'direct' \
         AND outcome IN ('refused', 'connect_timeout')",
    );
    assert!(direct_failed >= 1, "{explain}");
    assert!(
        query(&db, "SELECT max(punch_connects) FROM statistic") >= 1,
        "{explain}"
    );
    assert!(
        query(&db, "SELECT max(punch_reached) FROM statistic") >= 1,
        "{explain}"
    );
    drop(nat);
}
