//! Reliability: a run killed with SIGKILL loses nothing it committed, holds no lock after its
//! death, and the next run completes;
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

/// Starts `inspect` of every tenant in the background with every request slowed by `latency_ms`,
/// and waits until it has committed at least `at_least` tenants. Returns the running child, the
/// database URL, the data directory's key and how many tenants were committed.
async fn slow_run_with_commits(
    env: &Env,
    latency_ms: u64,
    at_least: usize,
) -> (std::process::Child, String, store::Key, usize) {
    env.control_with(Method::PUT, "faults", json!({"seed": 1, "latency_ms": latency_ms})).await;
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
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let store = store::open(&db, key.clone()).await.expect("store opens while the run writes");
        let runs = store.list_runs(5).await.expect("runs");
        let n = match runs.iter().find(|r| r.kind == "inspect") {
            Some(r) => store.tenant_runs(&r.id).await.expect("tenant runs").len(),
            None => 0,
        };
        store.close().await;
        if n >= at_least {
            return (child, db, key, n);
        }
        if Instant::now() >= deadline || child.try_wait().expect("child").is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run never committed {at_least} tenants while still running");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_loses_nothing_and_the_next_run_completes() {
    let env = Env::start(WorldSource::Generate("customers=30,users=20..40,seed=9,broken=0".into())).await;
    env.login_with(GENERATED_APP, GENERATED_ADMIN, &[]).await;
    // Slow every request down so that the run is still going when it is killed.
    let (mut child, db, key, committed) = slow_run_with_commits(&env, 60, 6).await;
    // A second inspection of every tenant is refused while this one runs, naming the process.
    let second = env.run(&["inspect"]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(err.contains("another `tenantscope inspect`") && err.contains(&format!("pid={}", child.id())), "{err}");
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

/// A database whose directory this user cannot write (SQLite must create its WAL there) is
/// named with that reason, once, instead of "attempt to write a readonly database".
#[cfg(unix)]
#[test]
fn a_database_in_a_directory_that_cannot_be_written_says_so() {
    use std::os::unix::fs::{PermissionsExt, chown};
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let run = |as_nobody: bool| {
        let mut c = if as_nobody && unsafe { libc::geteuid() } == 0 {
            // Root writes everywhere: the command runs as `nobody`, which owns the files but
            // not their directory.
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", common::BIN]);
            c
        } else {
            std::process::Command::new(common::BIN)
        };
        c.env_clear().env("TENANTSCOPE_DATA_DIR", &data).arg("tenants").output().expect("runs")
    };
    assert!(run(false).status.success(), "the data directory is made");
    for f in ["tenantscope.db-wal", "tenantscope.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    if unsafe { libc::geteuid() } == 0 {
        for f in ["key", "tenantscope.db"] {
            chown(data.join(f), Some(65534), Some(65534)).expect("chown");
        }
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    } else {
        // As an ordinary user the directory is made read-only; SQLite may then fall back to
        // reading, which is not what this test is about.
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o500)).expect("chmod");
    }
    let out = run(true);
    if out.status.success() {
        eprintln!("skipped: SQLite opened the database read-only here");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod back");
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("setpriv") || err.contains("Permission denied") && !err.contains("tenantscope.db") {
        // The binary itself is out of `nobody`'s reach on this machine (a private build folder).
        eprintln!("skipped: {err}");
        return;
    }
    assert!(!out.status.success());
    assert!(err.contains("cannot be written") && err.contains("write-ahead log"), "{err}");
    assert_eq!(err.matches("cannot open the database").count(), 1, "{err}");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod back");
}

/// `key rotate` re-encrypts every secret under a new key; a rotation killed before its commit
/// leaves the old key working, and one killed after its commit (the new key written, not yet
/// renamed over the old) is finished by the next command. Both states are built here exactly as
/// a kill leaves them: the database transaction is all or nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_killed_at_any_point_leaves_a_working_key() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let dir = env.data_dir();
    let key_file = dir.join(store::KEY_FILE_NAME);
    let fingerprint = || store::Key::read_file(&key_file).expect("key file").fingerprint();
    let works = |what: &str| {
        let out = env.run(&["inspect", "--tenant", "Northwind Traders", "--json"]);
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    works("before");

    let before = fingerprint();
    let out = env.run(&["key", "rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("re-encrypted"));
    assert_ne!(fingerprint(), before, "the key file holds the new key");
    assert!(!dir.join(store::NEXT_KEY_FILE_NAME).exists());
    works("after a rotation");

    // Killed after the commit: the database needs the next key, the key file is the old one.
    let url = format!("sqlite://{}?mode=rwc", dir.join("tenantscope.db").display());
    let current = store::Key::read_file(&key_file).expect("key");
    let next = store::Key::generate();
    store::Key::write_next(&dir, &next).expect("next key");
    let moved = store::rotate_key(&url, current, &next).await.expect("the rotation commits");
    assert!(moved > 0, "the partner's tokens were re-encrypted");
    let said = works("after a rotation killed after its commit");
    assert!(said.contains("finished an interrupted key rotation"), "{said}");
    assert_eq!(fingerprint(), next.fingerprint());
    assert!(!dir.join(store::NEXT_KEY_FILE_NAME).exists());

    // Killed before the commit: a next key that the database never adopted is dropped.
    let kept = fingerprint();
    store::Key::write_next(&dir, &store::Key::generate()).expect("next key");
    let said = works("after a rotation killed before its commit");
    assert!(said.contains("had not committed"), "{said}");
    assert_eq!(fingerprint(), kept);
    assert!(!dir.join(store::NEXT_KEY_FILE_NAME).exists());
}

/// `forget` removes a customer and says what it removed; `prune` keeps each tenant's current
/// state. On SQLite and on PostgreSQL, through the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_and_prune_from_the_command_line() {
    let mut envs = vec![Env::start(WorldSource::Demo).await];
    if let Some(url) = test_support::postgres_database("forget").await {
        envs.push(Env::start_on(WorldSource::Demo, url).await);
    }
    for env in envs {
        env.login(MEGAN, &[]).await;
        env.run(&["inspect", "--json"]);
        let out = env.run(&["forget", "--tenant", "Northwind Traders"]);
        assert_eq!(out.status.code(), Some(2), "a forget needs --yes");
        let before = env.json(&["tenants", "--json"]);
        let northwind = before["tenants"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["display_name"] == "Northwind Traders"))
            .and_then(|t| t["tenant_id"].as_str())
            .expect("northwind is known")
            .to_string();
        let out = env.run(&["forget", "--tenant", "Northwind Traders", "--yes", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let removed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(removed["tenant_id"], northwind.as_str());
        assert_eq!(removed["removed"]["tenant"], true, "{removed:#}");
        assert!(removed["removed"]["dataprints"].as_u64() >= Some(1), "{removed:#}");
        assert!(removed["removed"]["tokens"].as_u64() >= Some(1), "its cached access token: {removed:#}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("still reach"),
            "the partner's GDAP still reaches it, and the user is told"
        );
        let after = env.json(&["tenants", "--json"]);
        assert!(!after.to_string().contains(&northwind), "{after:#}");
        assert_eq!(after["tenants"].as_array().map(Vec::len), before["tenants"].as_array().map(|t| t.len() - 1));
        // An unknown name is an error; an unknown id is accepted and finds nothing.
        assert_eq!(env.run(&["forget", "--tenant", "nosuch.example", "--yes"]).status.code(), Some(2));
        let again = env.json(&["forget", "--tenant", &northwind, "--yes", "--json"]);
        assert_eq!(again["removed"]["tenant"], false);

        assert_eq!(env.run(&["prune"]).status.code(), Some(2), "prune needs --older-than or --keep");
        let pruned = env.json(&["prune", "--older-than", "1h", "--json"]);
        assert_eq!(pruned["dataprints_deleted"], 0, "nothing is an hour old: {pruned:#}");
        let tenants = env.json(&["tenants", "--json"]);
        assert_eq!(tenants["tenants"].as_array().map(Vec::len), after["tenants"].as_array().map(Vec::len));
        let check = env.run(&["db", "check"]);
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    }
}

/// `db backup` copies the database while a run writes to it: the copy is one committed state,
/// private to its owner, and `db restore` brings exactly that state back, keeping the database
/// it replaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_a_run_restores_that_state() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::start(WorldSource::Generate("customers=20,users=20..40,seed=4,broken=0".into())).await;
    env.login_with(GENERATED_APP, GENERATED_ADMIN, &[]).await;
    let (mut child, db, key, _) = slow_run_with_commits(&env, 40, 4).await;
    let backup = env.dir.path().join("backup.db");
    let out = env.run(&["db", "backup", backup.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::metadata(&backup).expect("backup").permissions().mode() & 0o777, 0o600);
    assert!(env.run(&["db", "backup", backup.to_str().expect("utf-8")]).status.code() == Some(2), "never overwritten");
    assert!(child.wait().expect("the run ends").code().is_some());
    env.control_with(Method::PUT, "faults", json!({})).await;
    let finished = env.json(&["tenants", "--json"]);

    let out = env.run(&["db", "restore", backup.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "a restore needs --yes");
    let out = env.run(&["db", "restore", backup.to_str().expect("utf-8"), "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kept: Vec<_> = std::fs::read_dir(env.data_dir())
        .expect("data dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tenantscope.db.before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "the replaced database is kept");
    let leftovers: Vec<_> = std::fs::read_dir(env.data_dir())
        .expect("data dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tenantscope-restore"))
        .collect();
    assert!(leftovers.is_empty(), "the restore leaves no temporary file: {leftovers:?}");
    // Restored again and again, the data directory keeps the three newest copies, not every one.
    let first_kept = kept[0].file_name();
    for _ in 0..3 {
        let out = env.run(&["db", "restore", backup.to_str().expect("utf-8"), "--yes"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let names: Vec<_> = std::fs::read_dir(env.data_dir())
        .expect("data dir")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("tenantscope.db.before-restore-"))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(!names.contains(&first_kept), "the oldest copy went: {names:?}");
    // The restored state is the backup's: a run in progress, with fewer results than the
    // finished one, each committed result whole.
    let store = store::open(&db, key.clone()).await.expect("the restored database opens");
    let run = store.list_runs(5).await.expect("runs").into_iter().find(|r| r.kind == "inspect").expect("run");
    assert_eq!(run.status, store::RunStatus::Interrupted, "the copy caught the run mid-way");
    let results = store.tenant_runs(&run.id).await.expect("results");
    assert!(results.len() >= 4 && results.len() < 21, "{} results", results.len());
    for r in &results {
        if let Some(id) = &r.dataprint_id {
            assert!(store.get_dataprint(id).await.expect("read").is_some(), "dataprint {id} is whole");
        }
    }
    assert!(store.integrity_problems().await.expect("check").is_empty());
    store.close().await;
    let restored = env.json(&["tenants", "--json"]);
    assert_ne!(restored, finished, "the restore went back to the backup's state");
    assert!(env.run(&["db", "check"]).status.success());
    // The partner's sign-in came back with the database and still works.
    let out = env.run(&["inspect", "--json"]);
    assert!(out.status.success() || out.status.code() == Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}
