//! Accuracy against a simulated swarm with known truth: 80 peers of every behaviour
//! (have_all seeders, bitfield and no-bitfield leechers, re-sent bitfields, batched
//! haves, NAT-like peers that only connect in and others behind the same IP, closed
//! ports, silent peers, peers that stream haves without pause, refuse a second
//! connection from one IP, refuse while busy, or send only invalid bitfields) behind a
//! simulated HTTP and UDP tracker that also lists btda's own address and, for a few of
//! them, only on a loopback DHT; plus one NAT-like peer that crosses T inside its first
//! visit. Completers seed for a while and leave (some at once: hit-and-run). Every
//! witnessable crossing whose peer stays a second (the revisit delay) is confirmed exactly
//! once, per kind; no peer that did not cross is; the others are reported; the tracker figures in `request` are exactly what the trackers
//! served. The test prints truth and btda side by side.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use btda::sim::fake_tracker::Served;
use btda::sim::nat::{NatGroup, NatPlan};
use btda::sim::script::Expect;
use btda::sim::swarm::{Kind, PeerScript, mixed_lives};

const KEY: &str = "0202020202020202020202020202020202020202020202020202020202020202";
const PIECES: u32 = 100;
const SPAN_MS: u64 = 16_000;
const LISTEN: &str = "127.91.0.2:16891";
/// T for 100 pieces at the default threshold 0.98.
const T: u32 = 98;
/// btda's state window and visit cap in this test, ms.
const WINDOW_MS: u64 = 800;
/// The relay of the peers behind a simulated NAT.
const NAT_RELAY: &str = "127.93.0.1:16901";

/// Six peers behind a simulated NAT: four leechers finishing 8-11 s in and staying 3 s,
/// two seeds.
fn nat_plans() -> Vec<(SocketAddr, NatPlan)> {
    (0..6u8)
        .map(|k| {
            let addr = SocketAddr::from(([127, 93, 1, 10 + k], 16_910 + u16::from(k)));
            let plan = if k >= 4 {
                NatPlan {
                    start_pieces: PIECES,
                    pieces_per_sec: 0.0,
                    linger: std::time::Duration::from_secs(60),
                }
            } else {
                NatPlan {
                    start_pieces: u32::from(k) * 5,
                    pieces_per_sec: f64::from(PIECES - u32::from(k) * 5) / (8.0 + f64::from(k)),
                    linger: std::time::Duration::from_secs(3),
                }
            };
            (addr, plan)
        })
        .collect()
}
const CAP_MS: u64 = 2_000;

#[test]
fn confirmed_downloads_match_the_simulated_truth() {
    let info = common::sim_info("sim", 'x', PIECES);
    let mut lives = mixed_lives(Ipv4Addr::new(127, 90, 0, 1), 80, PIECES, SPAN_MS);
    // Connects in at 95 of 100 pieces and streams ten pieces a second: its first visit
    // goes from below T to T and above while btda listens.
    let in_visit = PeerScript {
        ip: Ipv4Addr::new(127, 90, 1, 1),
        kind: Kind::IncomingOnly,
        arrive_ms: 2_000,
        leave_ms: SPAN_MS * 2,
        start_pieces: T - 3,
        rate: 10.0,
        tracked: false,
    };
    lives.push(in_visit.clone());
    // A client at its connection limit while it finishes: refuses from 4 s to 10 s
    // (the compressed busy window), crosses T inside it at ~9 s and seeds on; btda
    // must come back once it accepts again.
    lives.push(PeerScript {
        ip: Ipv4Addr::new(127, 90, 1, 2),
        kind: Kind::Busy,
        arrive_ms: 1_000,
        leave_ms: SPAN_MS * 2,
        start_pieces: 10,
        rate: 11.0,
        tracked: true,
    });
    let listen: SocketAddr = LISTEN.parse().unwrap();
    let options = common::compressed(listen, vec![listen]);
    let (swarm, announced, torrent) = common::start_sim(
        &info,
        lives.clone(),
        PIECES,
        options,
        "127.91.0.1",
        "127.92.0.1",
    );
    assert!(
        announced >= 3,
        "untracked peers announced on the DHT: {announced}"
    );
    let router = swarm.dht_router.unwrap();
    // Peers behind a simulated NAT in the same torrent, reachable only by punching
    // through their relay (which btda is given, as a tracker would list it).
    let nat = NatGroup::start(info.1, PIECES, NAT_RELAY.parse().unwrap(), &nat_plans()).unwrap();
    let config = common::sim_config(
        listen,
        router,
        16,
        (WINDOW_MS, CAP_MS),
        KEY,
        "transport = \"both\"\n",
    ) + &format!(
        "[[torrents]]\ninfo_hash = \"{}\"\npeers = [\"{NAT_RELAY}\"]\n",
        info.1
    );
    let (_root, db) = common::measure(&torrent, &config, SPAN_MS - 1_000);
    let ended_ms = swarm.reactor.now_ms();
    let counters = &swarm.reactor.counters;
    println!("simulator: {counters:?}");

    let keyer = common::keyer(KEY);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: HashMap<String, (i64, i64, Option<i64>)> = conn
        .prepare("SELECT peer_key, first_pieces, last_pieces, crossed_at FROM peer")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let confirmed: i64 = conn
        .query_row("SELECT count(*) FROM confirmed_download", [], |r| r.get(0))
        .unwrap();
    let from_dht: i64 = conn
        .query_row("SELECT count(*) FROM peer WHERE source = 'dht'", [], |r| {
            r.get(0)
        })
        .unwrap();

    println!(
        "{:<20} {:<16} {:>9} {:>7} {:>6} {:>6} {:>9}",
        "peer", "kind", "crosses", "lingers", "first", "last", "confirmed"
    );
    let mut unexplained = Vec::new();
    let mut confirmed_truth = 0;
    let mut observable_truth = 0;
    let mut incoming_confirmed = 0;
    let mut untracked_incoming_confirmed = 0;
    let mut per_kind: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
    for s in &lives {
        let addr = swarm.addr_of(s);
        let row = rows.get(&keyer.key(&addr));
        let crossed = row.and_then(|r| r.2).is_some();
        println!(
            "{:<20} {:<16} {:>9} {:>7} {:>6} {:>6} {:>9}",
            addr,
            s.kind.name(),
            s.crosses_at(PIECES, T)
                .map_or("-".to_string(), |ms| format!("{ms} ms")),
            s.linger_ms(PIECES, T)
                .map_or("-".to_string(), |ms| ms.to_string()),
            row.map_or("-".into(), |r| r.0.to_string()),
            row.map_or("-".into(), |r| r.1.to_string()),
            crossed
        );
        observable_truth += u32::from(
            s.kind.observable() && s.crosses_at(PIECES, T).is_some_and(|ms| ms < ended_ms),
        );
        // 1 s revisits: a crossing the peer stays a second after is witnessed.
        match s.expected(PIECES, T, swarm.reactor.busy, 1_000, ended_ms) {
            Expect::MustNot if crossed => {
                unexplained.push(format!("{addr} ({}) confirmed falsely", s.kind.name()));
            }
            Expect::MustNot => {}
            Expect::May => confirmed_truth += i64::from(crossed),
            Expect::Must => {
                let k = per_kind.entry(s.kind.name()).or_default();
                k.0 += 1;
                k.1 += u32::from(crossed);
                if crossed {
                    confirmed_truth += 1;
                    incoming_confirmed += i32::from(s.kind == Kind::IncomingOnly);
                    untracked_incoming_confirmed +=
                        i32::from(s.kind == Kind::IncomingOnly && !s.tracked);
                } else {
                    unexplained.push(format!(
                        "{addr} ({}) crossed, stayed, and was not confirmed (row {row:?})",
                        s.kind.name()
                    ));
                }
            }
        }
    }
    let must: u32 = per_kind.values().map(|k| k.0).sum();
    println!(
        "truth: {observable_truth} observable crossings, {must} witnessable with time to \
         spare; btda {confirmed} confirmed ({confirmed_truth} of them true, \
         {incoming_confirmed} incoming-only)"
    );
    for (kind, (truth, got)) in &per_kind {
        println!("kind {kind:<16} witnessable crossings {truth:>3}  confirmed {got:>3}");
    }
    // The NAT peers: every leecher that finished after btda's first punches could come
    // (5 s: a direct dial's timeout first) and stayed online is confirmed; no seed is.
    let mut nat_must = 0;
    for t in nat.truth() {
        let row = rows.get(&keyer.key(&t.addr));
        let crossed = row.and_then(|r| r.2).is_some();
        let finished = t.finishes_after.map(|f| f.as_millis() as u64);
        println!(
            "{:<20} {:<16} {:>9} {:>7} {:>6} {:>6} {:>9}",
            t.addr,
            "behind_nat",
            finished.map_or("-".into(), |f| format!("{f} ms")),
            "-",
            row.map_or("-".into(), |r| r.0.to_string()),
            row.map_or("-".into(), |r| r.1.to_string()),
            crossed
        );
        // A leecher's crossing is true whenever btda saw it.
        confirmed_truth += i64::from(crossed && finished.is_some_and(|f| f > 0));
        match finished {
            Some(0) | None if crossed => {
                unexplained.push(format!("{} (behind_nat) confirmed falsely", t.addr));
            }
            Some(f) if f > 6_000 && f + 1_000 < ended_ms => {
                nat_must += 1;
                if !crossed {
                    unexplained.push(format!(
                        "{} (behind_nat) crossed at {f} ms, not confirmed (row {row:?})",
                        t.addr
                    ));
                }
            }
            _ => {}
        }
    }
    let punched: i64 = conn
        .query_row(
            "SELECT count(DISTINCT peer_id) FROM visit WHERE via = 'holepunch' AND outcome = 'ok'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    println!(
        "behind_nat: {nat_must} witnessable crossings; {punched} of {} peers reached by a punch",
        nat.truth().len()
    );
    assert!(nat_must >= 3, "the plan: NAT leechers finish while watched");
    assert!(
        punched * 10 >= i64::try_from(nat.truth().len()).unwrap() * 8,
        "punched {punched}"
    );
    drop(nat);
    assert!(unexplained.is_empty(), "{unexplained:#?}");
    for kind in ["streaming_haves", "one_conn_per_ip", "busy", "nat_group"] {
        let (truth, got) = per_kind.get(kind).copied().unwrap_or_default();
        assert!(
            truth >= 1 && got == truth,
            "{kind}: {got} of {truth} confirmed"
        );
    }

    // The NAT-like peer that crossed T inside its first visit: confirmed by that visit.
    let key = keyer.key(&swarm.addr_of(&in_visit));
    let first: (Option<i64>, i64, String) = conn
        .query_row(
            "SELECT v.first_pieces, v.pieces, v.direction FROM visit v JOIN peer p ON p.id = v.peer_id
             WHERE p.peer_key = ?1 AND v.outcome = 'ok' ORDER BY v.id LIMIT 1",
            [&key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    println!("in-visit crossing: first visit {first:?}");
    assert!(
        first.0.is_some_and(|f| f < i64::from(T)) && first.1 >= i64::from(T) && first.2 == "in",
        "first visit went from below T to T or above: {first:?}"
    );
    assert!(
        rows.get(&key).and_then(|r| r.2).is_some(),
        "and it is confirmed"
    );

    // Visits of peers that stream haves end with the state window, not the cap.
    let streaming: Vec<String> = lives
        .iter()
        .filter(|l| l.kind == Kind::StreamingHaves)
        .map(|l| keyer.key(&swarm.addr_of(l)))
        .collect();
    let mut durations = Vec::new();
    for key in &streaming {
        let d: Vec<i64> = common::column(
            &conn,
            &format!(
                "SELECT v.duration_ms FROM visit v JOIN peer p ON p.id = v.peer_id
                 WHERE p.peer_key = '{key}' AND v.outcome = 'ok' AND v.first_pieces IS NOT NULL
                 AND v.pieces < {PIECES}"
            ),
        );
        durations.extend(d);
    }
    durations.sort_unstable();
    println!(
        "streaming visits below complete: {} durations {durations:?}",
        durations.len()
    );
    assert!(
        !durations.is_empty(),
        "streaming peers were visited mid-download"
    );
    assert!(
        durations
            .iter()
            .all(|&d| d < (WINDOW_MS + CAP_MS).cast_signed() / 2 + 200),
        "a streaming visit ran to the cap"
    );

    // btda itself: listed by the trackers, never queued, never a peer.
    let (own_skipped, selfs): (i64, i64) = conn
        .query_row(
            "SELECT max(own_addresses_skipped), max(self_connections) FROM statistic",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let btda_rows = common::column::<i64>(
        &conn,
        "SELECT count(*) FROM peer WHERE client_v LIKE 'btda%'",
    );
    println!("own address skipped {own_skipped}, self connections {selfs}");
    assert!(own_skipped >= 1, "the trackers' listing of btda was seen");
    assert_eq!((selfs, btda_rows[0]), (0, 0), "btda never visited itself");

    // Clients that require encryption are read both ways: outgoing after plaintext was
    // refused (the default `fallback`), incoming when they connect with MSE.
    let encrypted = common::column::<i64>(
        &conn,
        "SELECT count(*) FROM visit WHERE outcome = 'ok' AND encryption = 'rc4'
            AND direction = 'out' AND fallback = 1
         UNION ALL SELECT count(*) FROM visit WHERE outcome = 'ok' AND encryption = 'rc4'
            AND direction = 'in'
         UNION ALL SELECT ifnull(max(mse_accepted), 0) FROM statistic",
    );
    println!("encrypted visits out / in, incoming MSE accepted: {encrypted:?}");
    assert!(
        encrypted.iter().all(|&n| n >= 1),
        "encrypted_only peers visited and read with MSE: {encrypted:?}"
    );

    // Clients that allow one connection per IP never had to refuse btda.
    let refused = counters
        .refused_second
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        refused <= 1,
        "one-connection-per-IP peers refused btda {refused} times"
    );
    assert!(
        counters
            .busy_refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1,
        "busy peers refused while busy"
    );
    assert_eq!(
        confirmed, confirmed_truth,
        "each completion confirmed exactly once"
    );
    assert!(incoming_confirmed >= 1, "incoming-only peers are counted");
    // The report says how crossings were witnessed, the incoming-only ones apart.
    let report = btda::offline::report::read(&db).unwrap();
    let w = report.torrents[0].witnessed.clone().unwrap();
    println!("witnessed: {w:?}");
    assert_eq!(w.total(), confirmed, "every crossing has its how");
    assert!(
        w.incoming_only >= i64::from(incoming_confirmed) && w.incoming >= 1,
        "crossings seen only because the peer dialled in: {w:?}"
    );
    assert!(
        untracked_incoming_confirmed >= 1,
        "an incoming-only peer no tracker lists is counted under the port it names in `p`"
    );
    // A silent peer never answers a visit, so it has no peer row to carry `dht`.
    let silent_on_dht = lives
        .iter()
        .filter(|l| !l.tracked && l.kind == Kind::Silent)
        .count();
    assert!(
        from_dht as usize + silent_on_dht >= announced,
        "the DHT-only peers were found there: {from_dht} (+{silent_on_dht} silent) of {announced}"
    );
    assert!(must >= 20, "the mix completes enough peers: {must}");

    // The tracker figures btda recorded are what the trackers served.
    for (scheme, served) in [
        ("http", swarm.http[0].served.lock().clone()),
        ("udp", swarm.udp[0].as_ref().unwrap().served.lock().clone()),
    ] {
        for kind in ["announce", "scrape", "stopped"] {
            let mut want: Vec<(u32, u32, u32)> = served
                .iter()
                .filter(|s: &&Served| s.kind == kind)
                .map(|s| {
                    (
                        s.seeders,
                        s.leechers,
                        if kind == "scrape" { s.downloaded } else { 0 },
                    )
                })
                .collect();
            let mut got: Vec<(u32, u32, u32)> = conn
                .prepare(
                    "SELECT seeders, leechers, coalesce(completed, 0), kind FROM request \
                     WHERE source = 'tracker' AND kind = ?1 AND url LIKE ?2 AND (ok = 1 OR kind = 'stopped')",
                )
                .unwrap()
                .query_map((kind, format!("{scheme}://%")), |r| {
                    Ok((
                        r.get::<_, Option<u32>>(0)?.unwrap_or(0),
                        r.get::<_, Option<u32>>(1)?.unwrap_or(0),
                        if kind == "scrape" { r.get(2)? } else { 0 },
                    ))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            want.sort_unstable();
            got.sort_unstable();
            println!(
                "{scheme} {kind}: served {}, recorded {}",
                want.len(),
                got.len()
            );
            if kind != "stopped" {
                assert!(!want.is_empty(), "{scheme} {kind}: nothing served");
                assert_eq!(got, want, "{scheme} {kind}: recorded figures differ");
            } else {
                assert_eq!(got.len(), want.len(), "{scheme} stopped announces");
            }
        }
    }
}
