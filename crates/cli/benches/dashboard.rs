//! The dashboard benchmark: every page of `tenantscope serve` on a store that holds a generated
//! world's inspections (by default 1,000 customers, two inspections of one tenant with a change
//! between them, a saved baseline and open alerts), each page requested over loopback HTTP by a
//! signed-in administrator (who sees the most: settings then list tokens and the audit log). It
//! reports each page's median and slowest response time over `TS_BENCH_RUNS` requests (default
//! 10, after one warm-up), which bound the server's time, and fails when a page's median is over
//! 200 ms.
//!
//! `cargo bench -p tenantscope --bench dashboard`; `TS_BENCH_SPEC` changes the world, and
//! `TS_BENCH_KEEP=1` keeps the data directory for profiling a page by hand.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Killed, command};
use serde_json::{Value, json};

/// A session put straight into the store, as the dashboard's tests do; returns its cookie.
fn session(rt: &tokio::runtime::Runtime, data: &std::path::Path) -> String {
    rt.block_on(async {
        let key = store::Key::from_env_or_file(data).expect("key");
        let store = store::open(&format!("sqlite://{}?mode=rwc", data.join("tenantscope.db").display()), key)
            .await
            .expect("store");
        let id = server::auth::random_secret().expect("random");
        let now = chrono::Utc::now();
        store
            .session_put(&store::SessionRecord {
                id_hash: server::auth::hash_secret(&id),
                subject: "bench".into(),
                name: "Bench Engineer".into(),
                role: "admin".into(),
                csrf: server::auth::random_secret().expect("random"),
                created_at: now,
                expires_at: now + chrono::Duration::hours(2),
                last_seen_at: now,
                address: None,
                revoked_at: None,
            })
            .await
            .expect("session");
        store.close().await;
        format!("{}={id}", server::auth::SESSION_COOKIE_PLAIN)
    })
}

fn main() {
    let spec = std::env::var("TS_BENCH_SPEC").unwrap_or_else(|_| "customers=1000,users=50..2000,seed=7".into());
    let runs: usize = std::env::var("TS_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(10).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (sim, ready, _) = common::start_sim(dir.path(), &spec);
    let mut children = Killed(vec![sim]);
    let cli = || command(&data, &ready.cloud_file);
    common::login(&rt, &ready, cli());
    std::fs::write(
        data.join("config.toml"),
        "[server]\ndrain_seconds = 2\n\n[server.schedule]\nenabled = false\n\n[server.worker]\nenabled = false\n\n\
         [[alert]]\nname = \"global_admins_present\"\nkind = \"threshold\"\nmetric = \"global_admins\"\nop = \">=\"\nvalue = 1\nseverity = \"high\"\n",
    )
    .expect("config");
    let started = Instant::now();
    let out = cli().args(["inspect", "--all", "--json"]).output().expect("inspect");
    assert!(out.status.code().is_some_and(|c| c <= 2), "{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("first inspection of {spec}: {:.1} s", started.elapsed().as_secs_f64());
    let report: Value = serde_json::from_slice(&out.stdout).expect("inspect --json");
    let tenants = report["tenants"].as_array().cloned().unwrap_or_default();
    let ok = tenants.iter().find(|t| t["status"] == "ok").expect("an ok tenant");
    let failed = tenants.iter().find(|t| t["status"] == "failed").unwrap_or(ok);
    let ok_id = ok["tenant_id"].as_str().expect("id").to_string();
    let failed_id = failed["tenant_id"].as_str().expect("id").to_string();
    // A change in one tenant and a second inspection of it: two dataprints to compare.
    common::control_with(
        &rt,
        &ready,
        reqwest::Method::POST,
        "actions",
        json!([{"action": "create_user", "tenant": ok_id, "upn": "bench-eve@bench.example", "display_name": "Bench Eve", "roles": ["Global Administrator"]}]),
    );
    let out = cli().args(["inspect", "--tenant", &ok_id]).output().expect("inspect");
    assert!(out.status.code().is_some_and(|c| c <= 2), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli().args(["baseline", "save", "--name", "gold", "--tenant", &ok_id]).output().expect("baseline");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cookie = session(&rt, &data);

    let ready_file = dir.path().join("serve-ready");
    let server = cli()
        .args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready_file)
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    children.0.push(server);
    let waited = Instant::now();
    let url = loop {
        if let Ok(t) = std::fs::read_to_string(&ready_file)
            && !t.trim().is_empty()
        {
            break t.trim().to_string();
        }
        assert!(waited.elapsed() < Duration::from_secs(60), "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let http = reqwest::Client::new();
    let get = |path: &str| -> (reqwest::StatusCode, String, Duration) {
        rt.block_on(async {
            let at = Instant::now();
            let resp = http.get(format!("{url}{path}")).header("cookie", &cookie).send().await.expect("page");
            let status = resp.status();
            let body = resp.text().await.expect("body");
            (status, body, at.elapsed())
        })
    };
    let (_, page, _) = get(&format!("/tenants/{ok_id}/dataprints"));
    let dataprints: Vec<String> =
        page.split("href=\"/dataprints/").skip(1).filter_map(|s| s.split('"').next().map(str::to_string)).collect();
    let (newest, oldest) =
        (dataprints.first().cloned().unwrap_or_default(), dataprints.last().cloned().unwrap_or_default());
    let (_, page, _) = get("/jobs");
    let run = page.split("href=\"/runs/").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_string();
    let pages = [
        "/".to_string(),
        "/tenants".to_string(),
        "/tenants?sort=-users".to_string(),
        "/tenants?status=failed&q=a".to_string(),
        "/tenants.csv".to_string(),
        format!("/tenants/{failed_id}"),
        format!("/tenants/{ok_id}"),
        format!("/tenants/{ok_id}/dataprints"),
        format!("/dataprints/{newest}"),
        format!("/dataprints/{newest}?query=values(collections.users)%5B%3FaccountEnabled%5D.displayName"),
        format!("/compare?from={oldest}&to={newest}"),
        "/jobs".to_string(),
        format!("/runs/{run}"),
        "/changes".to_string(),
        "/alerts".to_string(),
        "/baselines".to_string(),
        format!("/baselines?name=gold&tenant={failed_id}"),
        "/settings".to_string(),
        "/agents".to_string(),
        "/partner".to_string(),
    ];
    println!("dashboard pages on {spec} ({} tenants), {runs} requests each after one warm-up", tenants.len());
    println!("{:<70} {:>10} {:>10} {:>10}", "page", "median ms", "max ms", "KiB");
    let mut over = Vec::new();
    for path in &pages {
        let (status, body, _) = get(path);
        assert!(status.is_success(), "{path}: {status}: {}", body.chars().take(300).collect::<String>());
        let mut times: Vec<f64> = (0..runs).map(|_| get(path).2.as_secs_f64() * 1000.0).collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let max = times[times.len() - 1];
        let shown: String = path.chars().take(70).collect();
        println!("{shown:<70} {median:>10.1} {max:>10.1} {:>10.0}", body.len() as f64 / 1024.0);
        if median > 200.0 {
            over.push(format!("{path}: {median:.0} ms"));
        }
    }
    drop(children);
    if std::env::var("TS_BENCH_KEEP").is_ok_and(|v| v == "1") {
        // For profiling by hand: the data directory stays, with its database and key.
        let kept = dir.keep();
        eprintln!("kept the data directory: {}", kept.join("data").display());
    }
    if !over.is_empty() {
        println!("over 200 ms: {}", over.join(", "));
        std::process::exit(1);
    }
    println!("every page under 200 ms");
}
