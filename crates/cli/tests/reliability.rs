//! Reliability: a run killed with SIGKILL loses nothing it committed and the next run completes;
//! injected server errors and connection resets are absorbed by retries.

mod common;

use std::time::{Duration, Instant};

use common::{Env, MEGAN};
use reqwest::Method;
use serde_json::{Value, json};
use sim::WorldSource;

const GENERATED_APP: &str = "0b6f2c4d-7a1e-4c59-9f3e-5d1a2b3c4d5e";
const GENERATED_ADMIN: &str = "admin@generatedmsp.onmicrosoft.com";

fn statuses(report: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report["tenants"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|x| {
                    (x["tenant_id"].as_str().unwrap_or("").to_string(), x["status"].as_str().unwrap_or("").to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_errors_and_resets_are_retried() {
    let env = Env::start(WorldSource::Generate("customers=12,users=20..80,seed=5,broken=0.25".into())).await;
    env.login_with(GENERATED_APP, GENERATED_ADMIN, &[]).await;
    let clean = env.json(&["inspect", "--json", "--full"]);
    env.control_with(Method::PUT, "faults", json!({"seed": 11, "error_rate": 0.05, "reset_rate": 0.05})).await;
    let faulty = env.json(&["inspect", "--json", "--full"]);
    assert_eq!(statuses(&clean), statuses(&faulty), "faults change no tenant's outcome");
    assert!(
        faulty["stats"]["retries"].as_u64().is_some_and(|r| r > 0),
        "the faults were hit and retried: {}",
        faulty["stats"]
    );
    let counters = env.control_with(Method::GET, "counters", json!({})).await;
    assert!(counters["faults_injected"].as_u64().is_some_and(|n| n > 0), "faults were injected: {counters}");
    for t in faulty["tenants"].as_array().unwrap() {
        for c in t["collectors"].as_array().unwrap() {
            if c["status"] == "failed" {
                let cause = c["diagnosis"]["cause"].as_str().unwrap_or("");
                assert!(
                    !matches!(cause, "service_unavailable" | "network_unreachable" | "unknown"),
                    "{}: {} failed with {cause}",
                    t["display_name"],
                    c["name"]
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_loses_nothing_and_the_next_run_completes() {
    let env = Env::start(WorldSource::Generate("customers=30,users=20..40,seed=9,broken=0".into())).await;
    env.login_with(GENERATED_APP, GENERATED_ADMIN, &[]).await;
    // Slow every request down so that the run is still going when it is killed.
    env.control_with(Method::PUT, "faults", json!({"seed": 1, "latency_ms": 60})).await;
    let mut child = env
        .command()
        .args(["inspect", "--concurrency", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("inspect starts");
    let db = format!("sqlite://{}?mode=rwc", env.data_dir().join("tenantscope.db").display());
    // The key file the first command created, as every later command of this data directory uses it.
    let key = store::Key::from_env_or_file(&env.data_dir()).expect("key");
    let deadline = Instant::now() + Duration::from_secs(120);
    let committed = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let store = store::open(&db, key.clone()).await.expect("store opens while the run writes");
        let runs = store.list_runs(5).await.expect("runs");
        let n = match runs.iter().find(|r| r.kind == "inspect") {
            Some(r) => store.tenant_runs(&r.id).await.expect("tenant runs").len(),
            None => 0,
        };
        store.close().await;
        if n >= 6 {
            break n;
        }
        assert!(Instant::now() < deadline, "the run never committed six tenants");
        assert!(child.try_wait().expect("child").is_none(), "the run finished before it could be killed");
    };
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let store = store::open(&db, key.clone()).await.expect("reopen");
    let runs = store.list_runs(5).await.expect("runs");
    let killed = runs.iter().find(|r| r.kind == "inspect").expect("the killed run");
    assert_eq!(killed.status, store::RunStatus::Interrupted, "the dead run is marked interrupted");
    let kept = store.tenant_runs(&killed.id).await.expect("tenant runs");
    assert!(kept.len() >= committed, "nothing committed was lost ({} < {committed})", kept.len());
    for tr in &kept {
        if let Some(id) = &tr.dataprint_id {
            assert!(store.get_dataprint(id).await.expect("read").is_some(), "dataprint {id} readable");
        }
    }
    store.close().await;
    env.control_with(Method::PUT, "faults", json!({})).await;
    let out = env.command().args(["inspect", "--json"]).output().expect("second run");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["tenants"].as_array().map(Vec::len), Some(30), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(report["tenants"].as_array().unwrap().iter().all(|t| t["status"] == "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_file_given_by_a_relative_path_is_found_from_any_directory_later() {
    let env = Env::start(WorldSource::Demo).await;
    // Sign in from the directory above the cloud file, naming it relatively.
    let cloud = std::path::PathBuf::from(&env.sim.ready.cloud_file);
    let dir = cloud.parent().expect("the cloud file's directory").to_path_buf();
    let relative = cloud.file_name().expect("file name").to_string_lossy().to_string();
    let mut login = env.command();
    login.env_remove("TENANTSCOPE_CLOUD").current_dir(&dir).args([
        "login",
        "--device-code",
        "--client-id",
        common::DEMO_CLIENT,
        "--cloud",
        &relative,
    ]);
    env.login_by(login, MEGAN).await;
    // Later, from elsewhere and without naming the cloud, commands still find it.
    let elsewhere = env
        .command()
        .env_remove("TENANTSCOPE_CLOUD")
        .current_dir("/")
        .args(["inspect", "--tenant", "northwindtraders.onmicrosoft.com"])
        .output()
        .expect("inspect runs");
    assert!(elsewhere.status.success(), "{}", String::from_utf8_lossy(&elsewhere.stderr));
    // A concurrency of nothing is refused, not quietly turned into one.
    let zero = env.run(&["inspect", "--concurrency", "0"]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&zero.stderr).contains("--concurrency"),
        "{}",
        String::from_utf8_lossy(&zero.stderr)
    );
}

/// A lost key file is not silently replaced while the database holds secrets encrypted with the
/// old key: every command refuses with how to recover, and `key reset --yes` removes only what
/// the lost key could decrypt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_key_is_refused_with_the_way_out() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let before = env.json(&["tenants", "--json"]);
    let key = env.data_dir().join("key");
    std::fs::remove_file(&key).expect("the key file is lost");
    let out = env.run(&["tenants", "--json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("encrypted with the key") && err.contains("key reset --yes"), "{err}");
    // Said once, not once per layer.
    assert_eq!(err.matches("encrypted with the key").count(), 1, "{err}");
    let out = env.run(&["key", "reset"]);
    assert!(!out.status.success(), "a reset needs --yes");
    let out = env.run(&["key", "reset", "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Removed"), "{}", String::from_utf8_lossy(&out.stderr));
    // The tenants are still known; the sign-in must be made again.
    let after = env.json(&["tenants", "--json"]);
    assert_eq!(after["tenants"].as_array().map(Vec::len), before["tenants"].as_array().map(Vec::len));
    let out = env.run(&["inspect"]);
    assert!(!out.status.success(), "nothing is signed in any more");
}
