//! Real error messages from public issue trackers: `explain` must name the cause a competent
//! MSP engineer would name for at least 95% of them.

use diagnose::{Cause, explain};
use serde::Deserialize;

#[derive(Deserialize)]
struct Row {
    source: String,
    cause: String,
    message: String,
}

#[test]
fn corpus_hit_rate() {
    let text = include_str!("corpus.jsonl");
    let mut total = 0usize;
    let mut hits = 0usize;
    let mut misses = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: Row = serde_json::from_str(line).unwrap_or_else(|e| panic!("corpus line {}: {e}", i + 1));
        let expected: Cause = row.cause.parse().unwrap_or_else(|e| panic!("corpus line {}: {e}", i + 1));
        assert!(row.source.starts_with("https://"), "corpus line {} has no source URL", i + 1);
        total += 1;
        let got = explain(&row.message);
        if got.cause == expected {
            hits += 1;
        } else {
            let first_line: String = row.message.chars().take(110).collect::<String>().replace('\n', " ");
            misses.push(format!(
                "line {}: expected {expected}, got {} ({:.2}) — {} — {first_line}",
                i + 1,
                got.cause,
                got.candidates[0].confidence,
                row.source
            ));
        }
    }
    let rate = hits as f64 / total as f64;
    println!("corpus: {hits}/{total} = {:.1}%", rate * 100.0);
    for m in &misses {
        println!("MISS {m}");
    }
    assert!(total >= 120, "the corpus needs at least 120 rows, has {total}");
    assert!(rate >= 0.95, "hit rate {:.1}% is below 95%", rate * 100.0);
}
