//! Fast finishers: 30 leechers that pass T 8–15 s after they arrive and leave about
//! 3 s after completing, with a 20 s revisit delay (the 180 s default compressed: the
//! 3 s linger stands for half a minute). A fixed cadence visits each one on arrival and
//! next after 20 s, when it is gone; btda's predictive revisits come back when the
//! peer's own rate says it passes T. Two btda runs measure the same swarm side by side
//! from their own addresses: with predictions (minimum revisit 1 s) every crossing is
//! confirmed and none falsely; with the minimum revisit raised to the fixed delay (the
//! old cadence) most are missed — the test can tell the two apart.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use btda::sim::swarm::{Kind, PeerScript};

const KEY: &str = "0707070707070707070707070707070707070707070707070707070707070707";
const PIECES: u32 = 100;
const RUN_MS: u64 = 22_000;
const PEERS: u32 = 30;

fn lives() -> Vec<PeerScript> {
    let kinds = [
        Kind::Bitfield,
        Kind::HaveAll,
        Kind::NoBitfield,
        Kind::BatchedHaves,
        Kind::StreamingHaves,
        Kind::ResendBitfield,
    ];
    (0..PEERS)
        .map(|i| {
            let arrive = 500 + u64::from(i) * 100;
            let start = (i * 3) % 10;
            // T (98) 8 to 15 s after arrival.
            let to_t_ms = 8_000 + u64::from(i % 8) * 1_000;
            let rate = f64::from(98 - start) / (to_t_ms as f64 / 1000.0);
            let complete = arrive + ((f64::from(PIECES - start) / rate) * 1000.0).ceil() as u64;
            PeerScript {
                ip: Ipv4Addr::new(127, 71, 0, 1 + i as u8),
                kind: kinds[i as usize % kinds.len()],
                arrive_ms: arrive,
                leave_ms: complete + 3_000,
                start_pieces: start,
                rate,
                tracked: true,
            }
        })
        .collect()
}

#[test]
fn predictive_revisits_witness_fast_finishers_that_a_fixed_cadence_misses() {
    let info = common::sim_info("fast", 'f', PIECES);
    let lives = lives();
    let predictive: SocketAddr = "127.72.0.2:16873".parse().unwrap();
    let fixed: SocketAddr = "127.72.0.3:16874".parse().unwrap();
    let options = common::compressed(predictive, vec![predictive, fixed]);
    let (swarm, _, torrent) = common::start_sim(
        &info,
        lives.clone(),
        PIECES,
        options,
        "127.73.0.1",
        "127.74.0.1",
    );
    let router = swarm.dht_router.unwrap();
    let config = |listen, min_revisit: u32| {
        common::sim_config(listen, router, 32, (800, 2_000), KEY, "").replace(
            "revisit_delay_secs = 1\n",
            &format!("revisit_delay_secs = 20\nmin_revisit_secs = {min_revisit}\n"),
        )
    };
    let (t2, c2) = (torrent.clone(), config(fixed, 20));
    let old_cadence = std::thread::spawn(move || common::measure(&t2, &c2, RUN_MS));
    let (_keep, db) = common::measure(&torrent, &config(predictive, 1), RUN_MS);
    let (_keep_fixed, db_fixed) = old_cadence.join().unwrap();
    let ended_ms = swarm.reactor.now_ms();

    let keyer = common::keyer(KEY);
    let judged = common::judge(
        &swarm,
        &lives,
        &common::crossed_by_key(&db),
        &keyer,
        PIECES,
        1_000,
        ended_ms,
    );
    let judged_fixed = common::judge(
        &swarm,
        &lives,
        &common::crossed_by_key(&db_fixed),
        &keyer,
        PIECES,
        1_000,
        ended_ms,
    );
    assert_eq!(judged.must, PEERS as usize, "every crossing is witnessable");
    assert!(judged.false_confirmed.is_empty(), "{judged:#?}");
    assert!(judged.missed.is_empty(), "{judged:#?}");
    assert!(judged_fixed.false_confirmed.is_empty(), "{judged_fixed:#?}");
    assert!(
        judged_fixed.must_confirmed * 2 < judged.must_confirmed,
        "the fixed cadence misses most: {} of {}",
        judged_fixed.must_confirmed,
        judged_fixed.must
    );

    // How the crossings were witnessed, and the visits that did it.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let how: Vec<String> = common::column(
        &conn,
        "SELECT crossed_how || ' ' || count(*) FROM peer WHERE crossed_at IS NOT NULL
         GROUP BY crossed_how ORDER BY crossed_how",
    );
    let reasons: Vec<String> = common::column(
        &conn,
        "SELECT reason || ' ' || count(*) FROM visit GROUP BY reason ORDER BY reason",
    );
    let predicted: Vec<i64> = common::column(
        &conn,
        "SELECT count(*) FROM peer WHERE crossed_how = 'predicted'
         UNION ALL SELECT count(*) FROM peer WHERE crossed_at IS NOT NULL
            AND predicted_at IS NOT NULL AND abs(crossed_at - predicted_at) <= 3",
    );
    println!("crossings by how: {how:?}; visits by reason: {reasons:?}; {predicted:?}");
    assert!(
        predicted[0] as usize >= PEERS as usize * 9 / 10,
        "most crossings were witnessed by a predicted visit: {how:?}"
    );
    assert!(
        predicted[1] >= predicted[0] / 2,
        "and the predictions were within 3 s of the observed crossing: {predicted:?}"
    );
    // `btda report` says the same, per torrent.
    let report = btda::offline::report::read(&db).unwrap();
    let w = report.torrents[0].witnessed.clone().unwrap();
    let text = btda::offline::report::render_text(&report);
    println!("{text}");
    assert_eq!(w.predicted, predicted[0], "{w:?}");
    assert_eq!(w.total(), report.torrents[0].confirmed);
    assert!(
        text.contains(&format!("witnessed by: predicted visit {}", w.predicted)),
        "{text}"
    );
    assert!(
        text.contains("within 30 s of the observed crossing"),
        "{text}"
    );
    let visits: f64 =
        common::column::<f64>(&conn, "SELECT avg(visits + failed_visits) FROM peer")[0];
    println!("visits per peer: {visits:.1}");
    assert!(visits < 8.0, "politeness: {visits:.1} visits per peer");
}
