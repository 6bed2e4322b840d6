//! The soak: three `serve` replicas on one PostgreSQL database and four agents, all processes of
//! the binary, inspect a generated world on the shortest schedule (every five minutes) with
//! injected faults (5 % server errors and resets, latency, Graph's throttling), while one replica
//! and one agent are killed with SIGKILL and restarted every few minutes. Alerts open on every
//! tenant with a Global Administrator and go to a webhook receiver in this process.
//!
//! At the end, with the killing stopped and the leases run out, it checks that every finished
//! job committed each of its tenants exactly once (and every failed tenant has a cause), that no
//! job is stuck, that every alert notification in the outbox reached the receiver (resends after
//! a kill are counted: the receiver can tell them by their id), that the peak resident memory of
//! each process never killed grew by less than 10 % from the first half after warm-up to the
//! second, and that the database passes its
//! consistency checks. It prints the figures and fails on a broken property.
//!
//! `cargo bench -p tenantscope --bench soak` runs 30 minutes on the 1,000-customer world;
//! `TS_SOAK_MINUTES`, `TS_SOAK_SPEC` and `TS_SOAK_KILL_SECONDS` change the duration, the world
//! and the interval between kills. CI runs a two-minute version (`.ci/run`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Killed, command, control_with, rss_kib, tls};
use serde_json::{Value, json};

const HOOK_SECRET: &str = "soak-webhook-secret";

/// What the webhook receiver saw: each (notification id, type) with how often it came.
type Seen = Arc<Mutex<HashMap<(String, String), u32>>>;

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    let id = v["id"].as_str().unwrap_or_default().to_string();
                    let kind = v["type"].as_str().unwrap_or_default().to_string();
                    *log.lock().expect("log").entry((id, kind)).or_default() += 1;
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

struct Platform {
    dir: PathBuf,
    data: PathBuf,
    cloud: String,
    database: String,
    cert: PathBuf,
    key: PathBuf,
}

impl Platform {
    fn cli(&self) -> Command {
        let mut c = command(&self.data, &self.cloud);
        c.env("TENANTSCOPE_DATABASE_URL", &self.database).env("HOOK_SECRET", HOOK_SECRET);
        c
    }

    /// A replica; returns it with its URL once it is ready.
    // The child is handed to the caller, which kills and waits for it; the lint cannot follow it
    // through the returned tuple.
    #[allow(clippy::zombie_processes)]
    fn replica(&self, i: usize) -> (Child, String) {
        let ready = self.dir.join(format!("replica-{i}.ready"));
        let _ = std::fs::remove_file(&ready);
        let mut child = self
            .cli()
            .args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .arg("--tls-cert")
            .arg(&self.cert)
            .arg("--tls-key")
            .arg(&self.key)
            .stderr(Stdio::null())
            .spawn()
            .expect("serve");
        let started = Instant::now();
        loop {
            if let Ok(t) = std::fs::read_to_string(&ready)
                && !t.trim().is_empty()
            {
                return (child, t.trim().to_string());
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("replica {i} did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn agent(&self, i: usize) -> Child {
        self.cli()
            .args(["agent", "run", "--dir"])
            .arg(self.dir.join(format!("agent-{i}")))
            .stderr(Stdio::null())
            .spawn()
            .expect("agent")
    }
}

fn kill9(child: &mut Child) {
    // SIGKILL: no drain, no goodbye; what it held must be recovered by the others.
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let minutes: f64 = std::env::var("TS_SOAK_MINUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(30.0);
    let spec = std::env::var("TS_SOAK_SPEC").unwrap_or_else(|_| "customers=1000,users=50..2000,seed=7".into());
    let kill_every =
        Duration::from_secs(std::env::var("TS_SOAK_KILL_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(180));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, ready, _) = common::start_sim(dir.path(), &spec);
    let others = Killed(vec![sim]);
    let Some(database) = rt.block_on(test_support::postgres_database("soak")) else {
        println!("soak skipped: PostgreSQL is not reachable (or TENANTSCOPE_SKIP_PG=1)");
        return;
    };
    let (cert, key) = {
        let (_, cert, key) = tls(dir.path());
        (cert, key)
    };
    let ca = dir.path().join("server-ca.pem");
    let p = Platform {
        dir: dir.path().to_path_buf(),
        data: dir.path().join("data"),
        cloud: ready.cloud_file.clone(),
        database,
        cert,
        key,
    };
    common::login(&rt, &ready, p.cli());
    let (hook, seen) = rt.block_on(receiver());
    std::fs::write(
        p.data.join("config.toml"),
        format!(
            r#"[server]
drain_seconds = 2
agent_offline_seconds = 20

[server.schedule]
enabled = true
every_minutes = 5
jitter = 0.2
tick_seconds = 5
tenants_per_job = 50

[server.worker]
enabled = false
lease_seconds = 20
heartbeat_seconds = 4

[[alert]]
name = "global_admins_present"
kind = "threshold"
metric = "global_admins"
op = ">="
value = 1
severity = "high"

[[webhook]]
name = "soak"
url = "{hook}"
secret_env = "HOOK_SECRET"
"#
        ),
    )
    .expect("config");
    let token = String::from_utf8(
        p.cli().args(["api-token", "create", "--name", "soak", "--role", "admin"]).output().expect("token").stdout,
    )
    .expect("utf-8")
    .trim()
    .to_string();

    let mut replicas: Vec<(Child, String)> = (0..3).map(|i| p.replica(i)).collect();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).expect("CA")).expect("pem"))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let api = |url: &str, method: reqwest::Method, path: &str, body: Option<Value>| -> Value {
        rt.block_on(async {
            let mut req = http.request(method, format!("{url}{path}")).bearer_auth(&token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            match req.send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            }
        })
    };
    let mut agents: Vec<Child> = Vec::new();
    for i in 0..4 {
        let enrollment = api(
            &replicas[1].1,
            reqwest::Method::POST,
            "/api/v1/agents/enrollments",
            Some(json!({"name": format!("soak-{i}"), "pool": "local"})),
        );
        let out = p
            .cli()
            .args(["agent", "enroll", "--server", &replicas[1].1, "--token"])
            .arg(enrollment["token"].as_str().expect("enrollment token"))
            .arg("--dir")
            .arg(dir.path().join(format!("agent-{i}")))
            .arg("--ca-file")
            .arg(&ca)
            .output()
            .expect("enroll");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        agents.push(p.agent(i));
    }
    control_with(
        &rt,
        &ready,
        reqwest::Method::PUT,
        "faults",
        json!({"seed": 7, "error_rate": 0.04, "reset_rate": 0.01, "latency_ms": 15}),
    );

    // Replica 0 and agent 0 are killed and restarted; the others are measured.
    let measured: Vec<u32> = replicas[1..].iter().map(|r| r.0.id()).chain(agents[1..].iter().map(Child::id)).collect();
    let started = Instant::now();
    let duration = Duration::from_secs_f64(minutes * 60.0);
    // Memory is compared between two windows after warm-up, the peak of each, so that a process
    // sampled idle in one and busy in the other does not look like a leak: the later window's
    // peak may exceed the earlier's by less than 10 %.
    let warm_up = duration / 5;
    let middle = warm_up + (duration - warm_up) / 2;
    let mut early = vec![0u64; measured.len()];
    let mut peaks = vec![0u64; measured.len()];
    // The peak of each process in each of twelve equal windows, printed so that a trend (a leak
    // climbs window after window) can be told from the variance of which tenants a process
    // happened to hold at its peak.
    let window_len = (duration / 12).max(Duration::from_secs(10));
    let mut series: Vec<Vec<u64>> = vec![Vec::new(); measured.len()];
    let mut last_kill = Instant::now();
    let mut restarts = 0u32;
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1));
        let now: Vec<u64> = measured.iter().map(|pid| rss_kib(*pid).unwrap_or(0)).collect();
        let window = match started.elapsed() {
            t if t < warm_up => None,
            t if t < middle => Some(&mut early),
            _ => Some(&mut peaks),
        };
        if let Some(w) = window {
            for (peak, n) in w.iter_mut().zip(&now) {
                *peak = (*peak).max(*n);
            }
        }
        // Twelve windows: the last sample of the run belongs to the last one.
        let slot = ((started.elapsed().as_secs_f64() / window_len.as_secs_f64()) as usize).min(11);
        for (s, n) in series.iter_mut().zip(&now) {
            if s.len() <= slot {
                s.resize(slot + 1, 0);
            }
            s[slot] = s[slot].max(*n);
        }
        if last_kill.elapsed() >= kill_every {
            kill9(&mut replicas[0].0);
            kill9(&mut agents[0]);
            replicas[0] = p.replica(0);
            agents[0] = p.agent(0);
            restarts += 1;
            last_kill = Instant::now();
        }
    }

    // The end: no more kills; the schedule is stopped by stopping nobody, so the checks look
    // at jobs that had time to finish: wait until nothing runs or the leases have long expired.
    control_with(&rt, &ready, reqwest::Method::PUT, "faults", json!({}));
    let url = replicas[1].1.clone();
    let settle = Instant::now();
    loop {
        let running = api(&url, reqwest::Method::GET, "/api/v1/jobs?status=running&limit=200", None);
        let queued = api(&url, reqwest::Method::GET, "/api/v1/jobs?status=queued&limit=200", None);
        let busy = running["total"].as_u64().unwrap_or(0) + queued["total"].as_u64().unwrap_or(0);
        if busy == 0 || settle.elapsed() > Duration::from_secs(300) {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    // The last notifications are given a few delivery passes.
    std::thread::sleep(Duration::from_secs(70));

    let mut broken: Vec<String> = Vec::new();
    // Jobs: each finished inspection committed each of its tenants once, and none is stuck.
    let mut jobs = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(b) => format!("/api/v1/jobs?limit=200&before={b}"),
            None => "/api/v1/jobs?limit=200".to_string(),
        };
        let page = api(&url, reqwest::Method::GET, &path, None);
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let last = items.last().and_then(|j| j["id"].as_str()).map(str::to_string);
        jobs.extend(items);
        match (page["next"].is_string(), last) {
            (true, Some(l)) => before = Some(l),
            _ => break,
        }
    }
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let (mut tenant_runs, mut failed) = (0u64, 0u64);
    for j in &jobs {
        *by_status.entry(j["status"].as_str().unwrap_or("?").to_string()).or_default() += 1;
        if j["status"] == "succeeded" {
            tenant_runs += j["result"]["tenants"].as_u64().unwrap_or(0);
            failed += j["result"]["failed"].as_u64().unwrap_or(0);
        }
    }
    let committed = rt.block_on(async {
        use sqlx::Row as _;
        let pool = sqlx::PgPool::connect(&p.database).await.expect("database");
        let rows = sqlx::query(
            // The partner's own result is committed with the job too, and not counted among
            // its customers.
            // A job retried after its agent died reports the last attempt's tenants only; what
            // it must have committed, once each, is every tenant it was given.
            "SELECT j.id, j.status, j.params, COUNT(jt.tenant_key) FILTER (WHERE t.role IS DISTINCT FROM 'partner') AS n \
             FROM jobs j LEFT JOIN job_tenants jt ON jt.job_key = j.key \
             LEFT JOIN tenant_keys tk ON tk.key = jt.tenant_key LEFT JOIN tenants t ON t.id = tk.tenant_id \
             WHERE j.kind = 'inspect' GROUP BY j.id, j.status, j.params",
        )
        .fetch_all(&pool)
        .await
        .expect("jobs");
        // The scheduler also gives jobs the partner itself when it is due; its result is the
        // partner's, committed once with the job like every job's, and not a customer's.
        let partners: Vec<String> = sqlx::query_scalar("SELECT id FROM tenants WHERE role = 'partner'")
            .fetch_all(&pool)
            .await
            .expect("partner");
        let mut out = Vec::new();
        for r in rows {
            let id: String = r.get("id");
            let status: String = r.get("status");
            let result: Option<String> = r.get("params");
            let n: i64 = r.get("n");
            out.push((id, status, result, n));
        }
        // The scheduler goes on queueing while the checks run: a job is stuck when its worker's
        // lease ran out well past a claim's interval, or when it waited in the queue for minutes.
        let stuck: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE (status = 'running' AND lease_until < now() - interval '40 seconds') \
             OR (status = 'queued' AND not_before < now() - interval '3 minutes')",
        )
        .fetch_all(&pool)
        .await
        .expect("stuck jobs");
        let outbox = sqlx::query("SELECT alert_key, transition, status FROM alert_outbox")
            .fetch_all(&pool)
            .await
            .expect("outbox")
            .into_iter()
            .map(|r| (r.get::<String, _>("alert_key"), r.get::<String, _>("transition"), r.get::<String, _>("status")))
            .collect::<Vec<_>>();
        pool.close().await;
        (out, outbox, stuck, partners)
    });
    let (job_rows, outbox, stuck, partners) = committed;
    for id in &stuck {
        broken.push(format!("job {id} is stuck"));
    }
    let mut committed_once = 0u64;
    for (id, status, params, n) in &job_rows {
        if status != "succeeded" {
            continue;
        }
        let given = params.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()).and_then(|v| {
            v["tenants"]
                .as_array()
                .map(|t| t.iter().filter(|id| !partners.iter().any(|p| Some(p.as_str()) == id.as_str())).count() as u64)
        });
        match given {
            // An empty list is every tenant the run found: nothing to compare with.
            Some(given) if given > 0 && given != *n as u64 => {
                broken.push(format!("job {id} was given {given} tenants but committed {n}"))
            }
            _ => committed_once += *n as u64,
        }
    }
    // Every failed tenant names its cause.
    let mut tenants: Vec<Value> = Vec::new();
    let mut offset = 0;
    loop {
        let page = api(&url, reqwest::Method::GET, &format!("/api/v1/tenants?limit=500&offset={offset}"), None);
        let items = page["items"].as_array().cloned().unwrap_or_default();
        offset += items.len();
        let more = page["next"].is_string() && !items.is_empty();
        tenants.extend(items);
        if !more {
            break;
        }
    }
    let mut causes: BTreeMap<String, u64> = BTreeMap::new();
    for t in &tenants {
        if t["status"] == "failed" || t["status"] == "partial" {
            match t["cause"].as_str() {
                Some(c) => *causes.entry(c.to_string()).or_default() += 1,
                None => broken.push(format!("tenant {} is {} without a cause", t["id"], t["status"])),
            }
        }
    }
    // Alerts: every notification in the outbox was delivered and reached the receiver.
    let seen = seen.lock().expect("seen").clone();
    let undelivered = outbox.iter().filter(|(_, _, s)| s != "delivered").count();
    if undelivered > 0 {
        broken.push(format!("{undelivered} notification(s) not delivered"));
    }
    let resent: u32 = seen.values().map(|n| n - 1).sum();
    if seen.len() < outbox.len() {
        broken.push(format!("the receiver saw {} notifications, the outbox holds {}", seen.len(), outbox.len()));
    }
    if resent > restarts {
        broken.push(format!("{resent} notifications were sent again, more than the {restarts} kills explain"));
    }
    // Memory after warm-up.
    let growth: Vec<f64> = early
        .iter()
        .zip(&peaks)
        .map(|(a, b)| if *a == 0 { 0.0 } else { (*b as f64 / *a as f64 - 1.0) * 100.0 })
        .collect();
    for (i, g) in growth.iter().enumerate() {
        if *g >= 10.0 {
            broken.push(format!(
                "process {i}'s peak memory grew {g:.1} % from the first half after warm-up to the second"
            ));
        }
    }
    let check = p.cli().args(["db", "check"]).output().expect("db check");
    if !check.status.success() {
        broken.push(format!("db check: {}", String::from_utf8_lossy(&check.stdout)));
    }
    for (mut c, _) in replicas {
        kill9(&mut c);
    }
    for mut a in agents {
        kill9(&mut a);
    }
    drop(others);

    println!(
        "soak: {minutes} min, world {spec}, 3 replicas and 4 agents, {restarts} kill-9 restarts of a replica and an agent"
    );
    println!(
        "  jobs by status: {by_status:?}; customer results committed by finished jobs, each once: {committed_once} (their last attempts reported {tenant_runs}, {failed} failed)"
    );
    println!("  failed or partial tenants by cause at the end: {causes:?}");
    println!(
        "  notifications: {} in the outbox, {} distinct received, {resent} sent again after a kill",
        outbox.len(),
        seen.len()
    );
    println!(
        "  resident memory, peak of the second half after warm-up against the first (replicas 1-2, agents 1-3): {}",
        growth.iter().map(|g| format!("{g:.1} %")).collect::<Vec<_>>().join(", ")
    );
    let names = ["replica 1", "replica 2", "agent 1", "agent 2", "agent 3"];
    println!("  resident memory, peak of each {} s window (MiB):", window_len.as_secs());
    for (name, s) in names.iter().zip(&series) {
        println!("    {name}: {}", s.iter().map(|k| (k / 1024).to_string()).collect::<Vec<_>>().join(" "));
    }
    println!("  database consistency: {}", if check.status.success() { "ok" } else { "PROBLEMS" });
    if !broken.is_empty() {
        for b in &broken {
            println!("  BROKEN: {b}");
        }
        std::process::exit(1);
    }
    println!("  every property held");
}
