//! Data-driven alert tests.
//!
//! Each directory under `tests/alerts/` holds `case.json`: a TOML `config`,
//! a `tenant_id` and a list of `steps`, one per inspection run. Each step
//! gives `now`, the run's `metrics` (name to value) and `events`, and the
//! keys (`rule/tenant/subject`) it expects `opened`, `resolved` and
//! `still_open`. The harness feeds the previous step's metrics and the open
//! alerts forward, as the caller would; a step may override `config` or
//! `acknowledge` keys (remove them from the open alerts before evaluating).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use history::{Alert, AlertStatus, ChangeEvent, MetricValue, Severity, evaluate_alerts, parse_config};
use serde_json::{Value, json};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/alerts");
    let mut dirs: Vec<PathBuf> =
        fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    dirs
}

fn keys(alerts: &[Alert]) -> Vec<String> {
    alerts.iter().map(Alert::key).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
}

fn run_case(dir: &Path) -> Result<(), String> {
    let case: Value = serde_json::from_str(&fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let tenant = case["tenant_id"].as_str().unwrap();
    let base_config = case["config"].as_str().unwrap();
    let mut previous: Vec<MetricValue> = Vec::new();
    let mut open: Vec<Alert> = Vec::new();
    // The id each alert got when it opened, to check that it never changes.
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
        let config = parse_config(step["config"].as_str().unwrap_or(base_config)).map_err(|e| e.to_string())?;
        let now: DateTime<Utc> = step["now"].as_str().unwrap().parse().unwrap();
        let current: Vec<MetricValue> = step["metrics"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, value)| MetricValue { name: name.clone(), value: value.clone(), error: None })
            .collect();
        let events: Vec<ChangeEvent> = serde_json::from_value(step["events"].clone()).unwrap();
        let acknowledged = strings(&step["acknowledge"]);
        open.retain(|a| !acknowledged.contains(&a.key()));

        let outcome = evaluate_alerts(&config.alerts, tenant, &current, &previous, &events, &open, now);
        let expect = &step["expect"];
        for (what, got) in [
            ("opened", keys(&outcome.opened)),
            ("resolved", keys(&outcome.resolved)),
            ("still_open", keys(&outcome.still_open)),
        ] {
            let want = strings(&expect[what]);
            if got != want {
                return Err(format!("step {i}: {what} is {got:?}, expected {want:?}"));
            }
        }
        for alert in &outcome.opened {
            if alert.status != AlertStatus::Open || alert.opened_at != now || alert.id.is_empty() {
                return Err(format!("step {i}: bad opened alert {alert:?}"));
            }
            if ids.get(&alert.key()) == Some(&alert.id) {
                return Err(format!("step {i}: re-opened alert reuses its old id"));
            }
            ids.insert(alert.key(), alert.id.clone());
        }
        for alert in outcome.still_open.iter().chain(&outcome.resolved) {
            if ids.get(&alert.key()) != Some(&alert.id) {
                return Err(format!("step {i}: {} changed its id", alert.key()));
            }
        }
        for alert in &outcome.resolved {
            if alert.status != AlertStatus::Resolved || alert.resolved_at != Some(now) {
                return Err(format!("step {i}: bad resolved alert {alert:?}"));
            }
        }
        open = outcome.opened.into_iter().chain(outcome.still_open).collect();
        previous = current;
    }
    Ok(())
}

#[test]
fn alert_cases() {
    let mut failures = Vec::new();
    for dir in cases() {
        if let Err(e) = run_case(&dir) {
            failures.push(format!("{}: {e}", dir.file_name().unwrap().to_string_lossy()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn other_tenants_and_resolved_alerts_are_ignored() {
    let config = parse_config(
        "[[alert]]\nname = \"too_many_global_admins\"\nkind = \"threshold\"\nmetric = \"global_admins\"\nop = \">\"\nvalue = 4\nseverity = \"high\"\n",
    )
    .unwrap();
    let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
    let current = vec![MetricValue { name: "global_admins".into(), value: json!(2), error: None }];
    let foreign = Alert {
        id: "x".into(),
        rule: "too_many_global_admins".into(),
        tenant_id: "other-tenant".into(),
        subject: "global_admins".into(),
        severity: Severity::High,
        status: AlertStatus::Open,
        summary: String::new(),
        opened_at: now,
        resolved_at: None,
        metric: None,
        value: None,
        previous_value: None,
        event: None,
    };
    let mut already_resolved = foreign.clone();
    already_resolved.tenant_id = "t1".into();
    already_resolved.status = AlertStatus::Resolved;
    let outcome = evaluate_alerts(&config.alerts, "t1", &current, &[], &[], &[foreign, already_resolved], now);
    assert!(outcome.opened.is_empty() && outcome.resolved.is_empty() && outcome.still_open.is_empty());
}

#[test]
fn console_and_json_forms() {
    let config = parse_config(
        "[[alert]]\nname = \"too_many_global_admins\"\nkind = \"threshold\"\nmetric = \"global_admins\"\nop = \">\"\nvalue = 4\nseverity = \"high\"\n",
    )
    .unwrap();
    let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
    let current = vec![MetricValue { name: "global_admins".into(), value: json!(5), error: None }];
    let outcome = evaluate_alerts(&config.alerts, "t1", &current, &[], &[], &[], now);
    let alert = &outcome.opened[0];
    assert_eq!(
        alert.to_console_line(),
        "2026-11-28T12:00:00Z [HIGH    ] OPEN     tenant=t1 rule=too_many_global_admins global_admins is 5 (> 4)"
    );
    let json = serde_json::to_value(alert).unwrap();
    assert_eq!(json["status"], "open");
    assert_eq!(json["severity"], "high");
    assert_eq!(json["value"], 5);
    let back: Alert = serde_json::from_value(json).unwrap();
    assert_eq!(&back, alert);
}
