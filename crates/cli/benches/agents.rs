//! The agents benchmark: a first inspection of a generated world (by default 1,000 customers) run
//! by one agent and by four, each a process of the release binary, for a `serve` on PostgreSQL,
//! with the simulator in its own process, and then a second inspection of the unchanged world. It
//! reports, for each, the wall time, the CPU of the agents, the server and the simulator, and the
//! agents' peak memory, so that the bound that stops the scaling shows (CPU of this machine, the
//! simulator, or Graph's limits).
//!
//! `cargo bench -p tenantscope --bench agents`; `TS_BENCH_SPEC` changes the world and
//! `TS_BENCH_AGENTS` (default `1,4`) the numbers of agents.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Killed, command, control, cpu_seconds, peak_rss_kib, tls};
use serde_json::{Value, json};

fn run(spec: &str, agents: usize, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (sim, ready, _) = common::start_sim(dir.path(), spec);
    let mut children = Killed(vec![sim]);
    let database = rt.block_on(test_support::postgres_database("bench_agents")).expect("PostgreSQL");
    let cli = || {
        let mut c = command(&data, &ready.cloud_file);
        c.env("TENANTSCOPE_DATABASE_URL", &database);
        c
    };
    common::login(rt, &ready, cli());
    // The customers are known before the platform starts (the partner's inspection lists them),
    // so that the inspection can be shared out among the agents.
    let out = cli().args(["inspect", "--tenant", "generatedmsp.onmicrosoft.com", "--json"]).output().expect("inspect");
    assert!(out.status.code().is_some_and(|c| c <= 2), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&cli().args(["tenants", "--json"]).output().expect("tenants").stdout)
        .expect("tenants --json");
    let tenants = listed["tenants"].as_array().map_or(0, Vec::len);
    std::fs::write(
        data.join("config.toml"),
        format!(
            "[server]\ndrain_seconds = 2\n\n[server.schedule]\nenabled = false\ntenants_per_job = {}\n\n[server.worker]\nenabled = false\nlease_seconds = 60\nheartbeat_seconds = 5\n",
            tenants.div_ceil(agents)
        ),
    )
    .expect("config");
    let (ca, cert, key) = tls(dir.path());
    let token = String::from_utf8(
        cli().args(["api-token", "create", "--name", "bench", "--role", "admin"]).output().expect("token").stdout,
    )
    .expect("utf-8")
    .trim()
    .to_string();
    let ready_file = dir.path().join("serve-ready");
    let server = cli()
        .args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready_file)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let server_pid = server.id();
    children.0.push(server);
    let started = Instant::now();
    let url = loop {
        if let Ok(t) = std::fs::read_to_string(&ready_file)
            && !t.trim().is_empty()
        {
            break t.trim().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).expect("CA")).expect("pem"))
        .build()
        .expect("client");
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| -> Value {
        rt.block_on(async {
            let mut req = http.request(method, format!("{url}{path}")).bearer_auth(&token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            req.send().await.expect("server").json().await.unwrap_or(Value::Null)
        })
    };

    let mut agent_pids = Vec::new();
    for i in 0..agents {
        let enrollment = call(
            reqwest::Method::POST,
            "/api/v1/agents/enrollments",
            Some(json!({"name": format!("a{i}"), "pool": "local"})),
        );
        let agent_dir = dir.path().join(format!("agent-{i}"));
        let out = cli()
            .args([
                "agent",
                "enroll",
                "--server",
                &url,
                "--token",
                enrollment["token"].as_str().expect("token"),
                "--dir",
            ])
            .arg(&agent_dir)
            .arg("--ca-file")
            .arg(&ca)
            .output()
            .expect("enroll");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let child = cli().args(["agent", "run", "--dir"]).arg(&agent_dir).stderr(Stdio::null()).spawn().expect("agent");
        agent_pids.push(child.id());
        children.0.push(child);
    }
    let sim_pid = children.0[0].id();
    // The first inspection, then a second one of the unchanged world (an agent's run then builds
    // on each tenant's previous dataprint, fetched from the server).
    for label in ["first inspection", "second inspection of the unchanged world"] {
        control(rt, &ready, "POST", "counters/reset");
        let cpu_before: Vec<f64> = [sim_pid, server_pid].iter().map(|p| cpu_seconds(*p).unwrap_or(0.0)).collect();
        let agents_before: f64 = agent_pids.iter().filter_map(|p| cpu_seconds(*p)).sum();

        let started = Instant::now();
        let first = call(reqwest::Method::POST, "/api/v1/jobs", Some(json!({"kind": "inspect"})));
        let mut ids = vec![first["id"].as_str().expect("job id").to_string()];
        ids.extend(first["also"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)));
        let mut peaks = vec![0u64; agent_pids.len()];
        let results = loop {
            for (peak, pid) in peaks.iter_mut().zip(&agent_pids) {
                *peak = (*peak).max(peak_rss_kib(*pid).unwrap_or(0));
            }
            let jobs: Vec<Value> =
                ids.iter().map(|id| call(reqwest::Method::GET, &format!("/api/v1/jobs/{id}"), None)).collect();
            if jobs.iter().all(|j| ["succeeded", "dead", "cancelled"].contains(&j["status"].as_str().unwrap_or(""))) {
                break jobs;
            }
            assert!(started.elapsed() < Duration::from_secs(1800), "the inspection did not end in 30 minutes");
            std::thread::sleep(Duration::from_millis(200));
        };
        let wall = started.elapsed();
        let sim_cpu = cpu_seconds(sim_pid).unwrap_or(0.0) - cpu_before[0];
        let server_cpu = cpu_seconds(server_pid).unwrap_or(0.0) - cpu_before[1];
        let agents_cpu: f64 = agent_pids.iter().filter_map(|p| cpu_seconds(*p)).sum::<f64>() - agents_before;
        let sum = |key: &str| results.iter().filter_map(|j| j["result"][key].as_u64()).sum::<u64>();
        let counters = control(rt, &ready, "GET", "counters");
        println!(
            "{label}: {agents} agent(s), {} job(s): {} tenants ({} ok, {} partial, {} failed) in {:.1} s ({:.0} tenants/s); CPU: agents {agents_cpu:.1} s, server {server_cpu:.1} s, simulator {sim_cpu:.1} s; agents' peak RSS {} MiB; throttled {}, early retries {}",
            results.len(),
            sum("tenants"),
            sum("ok"),
            sum("partial"),
            sum("failed"),
            wall.as_secs_f64(),
            sum("tenants") as f64 / wall.as_secs_f64(),
            peaks.iter().map(|k| format!("{:.0}", *k as f64 / 1024.0)).collect::<Vec<_>>().join("/"),
            counters["throttled"],
            counters["early_retries"],
        );
        for j in results.iter().filter(|j| j["status"] != "succeeded") {
            println!("  job {} {}: {}", j["id"], j["status"], j["last_error"]);
        }
    }
}

fn main() {
    let spec = std::env::var("TS_BENCH_SPEC").unwrap_or_else(|_| "customers=1000,users=50..2000,seed=7".into());
    let counts: Vec<usize> = std::env::var("TS_BENCH_AGENTS")
        .unwrap_or_else(|_| "1,4".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("world {spec}; agents in separate processes, server on PostgreSQL");
    for n in counts {
        run(&spec, n, &rt);
    }
}
