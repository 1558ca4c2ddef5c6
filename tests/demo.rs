//! `btda demo` end to end (short): simulated swarms, the real run, the report next to the
//! truth, and the run's database and truth file left in the output folder.

mod common;

#[test]
fn the_demo_confirms_what_the_simulator_says() {
    let out = tempfile::tempdir().unwrap();
    let result = common::btda()
        .args([
            "demo",
            "--seconds",
            "20",
            "--peers",
            "20",
            "--torrents",
            "2",
            "--output",
        ])
        .arg(out.path())
        .output()
        .unwrap();
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
        let numbers: Vec<i64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let (truth, btda) = (numbers[numbers.len() - 2], numbers[numbers.len() - 1]);
        assert!(truth > 0 && btda == truth, "{line}\n{text}");
    }
    assert!(common::database_in(out.path()).is_some());
    let truth_file = std::fs::read_dir(out.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.path().to_string_lossy().ends_with(".truth.tsv"));
    assert!(truth_file);
}
