//! `btda demo` end to end (short): simulated swarms whose finishers leave, the real run,
//! the report next to the truth (every witnessable crossing is confirmed, and nothing
//! beyond the observable ones), and the run's database and truth file left in the
//! output folder.

mod common;

#[test]
fn the_demo_confirms_what_the_simulator_says() {
    let out = tempfile::tempdir().unwrap();
    let result = common::demo(out.path(), 20, 40, 2);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let text = String::from_utf8_lossy(&result.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" witnessable ") && l.contains(" btda "))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| -> i64 {
            let i = words.iter().position(|w| *w == key).unwrap();
            words[i + 1].parse().unwrap()
        };
        let (crossings, observable, witnessable, btda) = (
            after("crossings"),
            after("observable"),
            after("witnessable"),
            after("btda"),
        );
        assert!(
            witnessable > 0
                && crossings >= observable
                && observable >= witnessable
                && btda >= witnessable
                && btda <= observable,
            "{line}\n{text}"
        );
    }
    // Peer by peer (the demo's fixed privacy key matches the truth to the database):
    // every crossing that stayed the minimum revisit interval confirmed, none falsely.
    let judged: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("peer by peer:"))
        .collect();
    assert_eq!(judged.len(), 2, "{text}");
    for line in judged {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (got, of) = (words[3], words[5]);
        assert_eq!(got, of, "{line}");
        assert!(line.ends_with(" 0 false"), "{line}");
    }
    // The torrent behind a simulated NAT: every download that finished while btda
    // watched is confirmed (and nothing else), and at least 80 % of its peers were
    // reached by a punch.
    let nat = text
        .lines()
        .find(|l| l.contains("behind a simulated NAT"))
        .unwrap_or_else(|| panic!("no NAT line\n{text}"));
    let numbers: Vec<i64> = nat
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    // "<hash prefix digits?> … N peers, F finished while watched, btda C confirmed, R reached"
    let tail = &numbers[numbers.len() - 4..];
    let (peers, finished, confirmed, punched) = (tail[0], tail[1], tail[2], tail[3]);
    assert!(peers >= 4 && finished >= 1, "{nat}");
    assert_eq!(confirmed, finished, "{nat}\n{text}");
    assert!(punched * 10 >= peers * 8, "{nat}\n{text}");
    assert!(common::database_in(out.path()).is_some());
    let truth_file = std::fs::read_dir(out.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.path().to_string_lossy().ends_with(".truth.tsv"));
    assert!(truth_file);
}
