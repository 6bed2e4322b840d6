//! Data-driven change-detection tests.
//!
//! Each directory under `tests/events/` holds `before.json` and `after.json`
//! (two dataprints of one tenant) and `expected.json`: the list of events
//! `diff` must produce, in order. Each expected entry names the fields it
//! checks (at least `kind`, `object_id` and `severity`); fields it leaves out
//! are not compared.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use history::{EVENT_KINDS, HistoryError, diff};
use serde_json::{Value, json};

fn read(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/events");
    let mut dirs: Vec<PathBuf> =
        fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no cases under {}", root.display());
    dirs
}

fn check(dir: &Path) -> Result<(), String> {
    let before = read(&dir.join("before.json"));
    let after = read(&dir.join("after.json"));
    let expected = read(&dir.join("expected.json"));
    let expected = expected.as_array().ok_or("expected.json is not a list")?;
    let events = diff(&before, &after).map_err(|e| e.to_string())?;
    let actual: Vec<Value> = events.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
    let render = || {
        actual
            .iter()
            .map(|a| format!("  {} {} {} {}", a["kind"], a["severity"], a["object_id"], a["field"]))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if actual.len() != expected.len() {
        return Err(format!("expected {} events, got {}:\n{}", expected.len(), actual.len(), render()));
    }
    for (i, (want, got)) in expected.iter().zip(&actual).enumerate() {
        let want = want.as_object().ok_or("expected entries are objects")?;
        for key in ["kind", "object_id", "severity"] {
            if !want.contains_key(key) {
                return Err(format!("expected entry {i} lacks `{key}`"));
            }
        }
        for (key, value) in want {
            if got.get(key) != Some(value) {
                return Err(format!(
                    "event {i}: `{key}` is {}, expected {value}\nall events:\n{}",
                    got.get(key).unwrap_or(&Value::Null),
                    render()
                ));
            }
        }
        // Every event must carry the tenant and a readable summary.
        if got["tenant_id"].as_str().unwrap_or("").is_empty() || got["summary"].as_str().unwrap_or("").is_empty() {
            return Err(format!("event {i} lacks tenant_id or summary: {got}"));
        }
    }
    // The reverse diff must never report removals for the absent side
    // either, and diffing a dataprint with itself reports nothing.
    if !diff(&after, &after).map_err(|e| e.to_string())?.is_empty() {
        return Err("diff(after, after) is not empty".into());
    }
    Ok(())
}

#[test]
fn event_cases() {
    let mut failures = Vec::new();
    for dir in cases() {
        if let Err(e) = check(&dir) {
            failures.push(format!("{}: {e}", dir.file_name().unwrap().to_string_lossy()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn every_event_kind_has_a_case() {
    let mut seen = BTreeSet::new();
    for dir in cases() {
        for e in read(&dir.join("expected.json")).as_array().unwrap() {
            seen.insert(e["kind"].as_str().unwrap().to_owned());
        }
    }
    let missing: Vec<&&str> = EVENT_KINDS.iter().filter(|k| !seen.contains(**k)).collect();
    assert!(missing.is_empty(), "event kinds without a case: {missing:?}");
}

#[test]
fn refuses_what_is_not_a_dataprint() {
    let ok = json!({"schema": "tenantscope.dataprint/1", "tenant": {"id": "t1"}, "collections": {}});
    assert_eq!(diff(&json!({"collections": {}}), &ok), Err(HistoryError::MissingSchema));
    assert!(matches!(
        diff(&ok, &json!({"schema": "tenantscope.dataprint/2", "collections": {}})),
        Err(HistoryError::UnsupportedSchema(_))
    ));
    let other = json!({"schema": "tenantscope.dataprint/1", "tenant": {"id": "t2"}, "collections": {}});
    assert!(matches!(diff(&ok, &other), Err(HistoryError::TenantMismatch { .. })));
}

#[test]
fn reverse_of_a_case_is_also_consistent() {
    // Swapping before and after turns additions into removals; whatever the
    // events, diff must succeed and stay deterministic.
    for dir in cases() {
        let before = read(&dir.join("before.json"));
        let after = read(&dir.join("after.json"));
        let first = diff(&after, &before).unwrap();
        let second = diff(&after, &before).unwrap();
        assert_eq!(first, second, "{}", dir.display());
    }
}
