//! `btda sim --kind`: a swarm of one kind and shape, for measuring another tool side by
//! side with btda (issue 26). No real client needed.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{signal, wait_with_limit};

#[test]
fn btda_sim_serves_a_swarm_of_one_kind_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    let sim_dir = dir.path().join("sim");
    let mut sim = common::Reaped(
        common::btda()
            .args([
                "sim",
                "--peers",
                "25",
                "--seconds",
                "60",
                "--rtt-ms",
                "0-0",
                "--kind",
                "bitfield",
                "--leechers",
                "--rate",
                "2",
                "--dir",
            ])
            .arg(&sim_dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(sim.0.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    assert!(
        banner.starts_with("btda sim: 1 torrents of 25 peers (every one bitfield leeching)"),
        "{banner}"
    );
    std::thread::sleep(Duration::from_millis(300));
    signal(&sim.0, "INT");
    let status = wait_with_limit(&mut sim.0, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    let truth = std::fs::read_to_string(sim_dir.join("truth.tsv")).unwrap();
    let header: Vec<&str> = truth.lines().next().unwrap().split('\t').collect();
    let kind = header
        .iter()
        .position(|c| *c == "kind")
        .expect("a kind column");
    let rows: Vec<Vec<&str>> = truth
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 25);
    assert!(rows.iter().all(|r| r[kind] == "bitfield"), "{truth}");

    // A kind that does not exist is refused with its name.
    let out = common::btda()
        .args(["sim", "--kind", "nonsense", "--dir"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--kind nonsense"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
