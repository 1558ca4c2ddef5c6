//! `btda demo` end to end (short): simulated swarms, the real run, the report next to the
//! truth (every completion a peer that btda can reach makes is confirmed), and the
//! run's database and truth file left in the output folder.

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
        .filter(|l| l.contains(" truth ") && l.contains(" btda "))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| -> i64 {
            let i = words.iter().position(|w| *w == key).unwrap();
            words[i + 1].parse().unwrap()
        };
        let (truth, observable, btda) = (after("truth"), after("observable"), after("btda"));
        assert!(
            observable > 0 && truth >= observable && btda == observable,
            "{line}\n{text}"
        );
    }
    assert!(common::database_in(out.path()).is_some());
    let truth_file = std::fs::read_dir(out.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.path().to_string_lossy().ends_with(".truth.tsv"));
    assert!(truth_file);
}
