//! Data-driven baseline drift tests.
//!
//! Each directory under `tests/baseline/` holds `gold.json` (the dataprint of
//! the tenant the baseline is taken from), `tenant.json` (the dataprint
//! compared with it) and `expected.json`: the drifts, in order. Each expected
//! entry has `path` and `kind` and may add `expected` and `actual`.

use std::fs;
use std::path::{Path, PathBuf};

use history::{BASELINE_SCHEMA, Baseline, HistoryError, drift};
use serde_json::{Value, json};

fn read(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/baseline");
    let mut dirs: Vec<PathBuf> =
        fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    dirs
}

fn check(dir: &Path) -> Result<(), String> {
    let gold = read(&dir.join("gold.json"));
    let tenant = read(&dir.join("tenant.json"));
    let expected = read(&dir.join("expected.json"));
    let baseline = Baseline::from_dataprint("gold", &gold).map_err(|e| e.to_string())?;
    // A saved baseline reads back identically.
    let saved = serde_json::to_value(&baseline).unwrap();
    let loaded = Baseline::from_json(&saved).map_err(|e| e.to_string())?;
    if loaded != baseline {
        return Err("baseline does not survive a JSON round trip".into());
    }
    // The gold tenant never drifts from its own baseline.
    let own = drift(&baseline, &gold).map_err(|e| e.to_string())?;
    if !own.is_empty() {
        return Err(format!("gold drifts from itself: {own:?}"));
    }
    let drifts = drift(&baseline, &tenant).map_err(|e| e.to_string())?;
    let actual: Vec<Value> = drifts.iter().map(|d| serde_json::to_value(d).unwrap()).collect();
    let render = || actual.iter().map(|a| format!("  {} {}", a["kind"], a["path"])).collect::<Vec<_>>().join("\n");
    let expected = expected.as_array().ok_or("expected.json is not a list")?;
    if actual.len() != expected.len() {
        return Err(format!("expected {} drifts, got {}:\n{}", expected.len(), actual.len(), render()));
    }
    for (i, (want, got)) in expected.iter().zip(&actual).enumerate() {
        for (key, value) in want.as_object().ok_or("entries are objects")? {
            if got.get(key) != Some(value) {
                return Err(format!(
                    "drift {i}: `{key}` is {}, expected {value}\nall drifts:\n{}",
                    got.get(key).unwrap_or(&Value::Null),
                    render()
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn baseline_cases() {
    let mut failures = Vec::new();
    for dir in cases() {
        if let Err(e) = check(&dir) {
            failures.push(format!("{}: {e}", dir.file_name().unwrap().to_string_lossy()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn baseline_holds_settings_without_tenant_specific_ids() {
    let gold = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/baseline/every_drift_kind/gold.json"));
    let baseline = Baseline::from_dataprint("gold", &gold).unwrap();
    assert_eq!(baseline.schema, BASELINE_SCHEMA);
    assert_eq!(baseline.source_tenant_name.as_deref(), Some("Northwind Traders"));
    let text = serde_json::to_string(&baseline.settings).unwrap();
    for id in ["55555555-eeee", "22222222-bbbb", "11111111-aaaa", "66666666-ffff", "createdDateTime", "@odata"] {
        assert!(!text.contains(id), "baseline settings contain {id}");
    }
    let ca = &baseline.settings["conditionalAccessPolicies"]["Require MFA for all users"];
    assert_eq!(ca["conditions"]["locations"]["excludeLocations"], json!(["location:Head office"]));
    // Role template ids are the same in every tenant and stay as they are.
    assert!(text.contains("62e90394-69f5-4237-9190-012177145e10"));
}

#[test]
fn refuses_unknown_baseline_schema() {
    let mut saved = json!({"schema": "tenantscope.baseline/9", "name": "x", "settings": {}});
    assert!(matches!(Baseline::from_json(&saved), Err(HistoryError::Baseline(_))));
    saved["schema"] = json!(BASELINE_SCHEMA);
    let baseline = Baseline::from_json(&saved).unwrap();
    assert!(matches!(drift(&baseline, &json!({"schema": "nope/1"})), Err(HistoryError::UnsupportedSchema(_))));
}
