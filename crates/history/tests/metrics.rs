//! Data-driven metric tests.
//!
//! Each directory under `tests/metrics/` holds `dataprint.json` and
//! `expected.json`: `{"now": RFC 3339, "values": {metric: value}, "config":
//! optional TOML with custom metrics}`. Every listed metric must evaluate to
//! exactly that value, without error; together the cases cover every
//! built-in metric, and `customer_full` lists them all.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use history::{Config, builtin_metrics, evaluate, parse_config};
use serde_json::Value;

fn read(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metrics");
    let mut dirs: Vec<PathBuf> =
        fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    dirs
}

fn check(dir: &Path) -> Result<Vec<String>, String> {
    let dataprint = read(&dir.join("dataprint.json"));
    let expected = read(&dir.join("expected.json"));
    let now: DateTime<Utc> =
        expected["now"].as_str().ok_or("expected.json lacks `now`")?.parse().map_err(|e| format!("now: {e}"))?;
    let config = match expected.get("config").and_then(Value::as_str) {
        Some(text) => parse_config(text).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let values = evaluate(&config.all_metrics(), &dataprint, now);
    let wanted = expected["values"].as_object().ok_or("`values` is not an object")?;
    let mut problems = Vec::new();
    for (name, want) in wanted {
        match values.iter().find(|v| &v.name == name) {
            None => problems.push(format!("{name}: no such metric")),
            Some(got) if got.error.is_some() => {
                problems.push(format!("{name}: error {:?}", got.error));
            }
            Some(got) if &got.value != want => {
                problems.push(format!("{name}: got {}, expected {want}", got.value));
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() { Ok(wanted.keys().cloned().collect()) } else { Err(problems.join("; ")) }
}

#[test]
fn metric_cases() {
    let mut failures = Vec::new();
    for dir in cases() {
        if let Err(e) = check(&dir) {
            failures.push(format!("{}: {e}", dir.file_name().unwrap().to_string_lossy()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_builtin_metric_is_covered() {
    let builtin: BTreeSet<String> = builtin_metrics().iter().map(|m| m.name().to_owned()).collect();
    let full = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metrics/customer_full/expected.json"));
    let listed: BTreeSet<String> = full["values"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(listed, builtin, "customer_full must list every built-in metric");
    // Beyond the full case, each metric that is null there must have a
    // non-null value in some other case, so that its expression is tested.
    let mut non_null = BTreeSet::new();
    for dir in cases() {
        let expected = read(&dir.join("expected.json"));
        for (name, value) in expected["values"].as_object().unwrap() {
            if !value.is_null() {
                non_null.insert(name.clone());
            }
        }
    }
    let untested: Vec<&String> = builtin.difference(&non_null).collect();
    assert!(untested.is_empty(), "never checked with a value: {untested:?}");
}

#[test]
fn not_a_dataprint_gives_errors_not_values() {
    let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
    let values = evaluate(&builtin_metrics(), &serde_json::json!({"users": []}), now);
    assert_eq!(values.len(), builtin_metrics().len());
    assert!(values.iter().all(|v| v.value.is_null() && v.error.is_some()));
}
