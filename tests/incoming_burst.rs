//! Incoming capacity: simulated NAT-ed peers connect to btda at 800 per second (ten
//! times 2015's incoming rate per host), each from its own address, half of them
//! downloading (their visit lasts the 1 s state window). With the incoming pool sized
//! as the workers by default, btda turns none away and records every peer once. The
//! 60 s version of this burst is a `make bench` round (`benches/swarm.rs`).

use btda::sim::burst::run_burst;

#[test]
fn an_incoming_burst_is_taken_whole_and_every_peer_recorded_once_unless_the_pool_is_small() {
    let dir = tempfile::tempdir().unwrap();
    let listen = "127.119.0.2:16877".parse().unwrap();
    // A pool of 1,024 workers (half btda's default), as many incoming handlers.
    let r = run_burst(800, 5, (1024, 0), listen, 1_500, dir.path()).unwrap();
    println!("{r:?}");
    assert_eq!(
        r.handlers, 1024,
        "the incoming pool scales with the workers"
    );
    assert!(r.dialled >= 3_900, "the burst ran: {r:?}");
    assert_eq!(r.connected, r.dialled, "{r:?}");
    assert_eq!(r.refused_busy, 0, "nobody turned away: {r:?}");
    assert_eq!(r.accepted, r.connected, "{r:?}");
    assert_eq!(r.peers, r.connected, "every peer recorded: {r:?}");
    assert_eq!(r.visits_in, r.connected, "one visit each: {r:?}");
    assert_eq!(r.peers_visited_twice, 0, "{r:?}");

    // The same burst against the old fixed pool of 64 handlers (after the first, not
    // beside it: the two would share the machine's cores).
    let dir = tempfile::tempdir().unwrap();
    let listen = "127.119.0.3:16878".parse().unwrap();
    // The old fixed pool of 64 handlers: at 800/s with half staying a second it fills.
    let r = run_burst(800, 3, (16, 64), listen, 1_500, dir.path()).unwrap();
    println!("{r:?}");
    assert_eq!(r.handlers, 64);
    assert!(r.refused_busy > 0, "{r:?}");
    assert_eq!(r.accepted + r.refused_busy, r.connected, "{r:?}");
    assert_eq!(
        r.peers, r.visits_in,
        "the accepted ones are recorded: {r:?}"
    );
}
