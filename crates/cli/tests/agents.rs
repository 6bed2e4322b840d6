//! Agents driven as an MSP runs them: the real binary's `serve` and `agent` processes over HTTPS,
//! against the simulator. Enrollment (a token works once), a pool's tenant inspected by its agent
//! with a debug trace, health with the address Microsoft saw, a `kill -9` of an agent in the
//! middle of a job (another agent of the pool finishes it, each tenant committed once), and
//! revocation (the agent is refused at once and stops).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::Env;
use common::platform::{Server, api_token, inspected, start_server, tls_files, unscheduled};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sim::WorldSource;

struct Agent {
    child: Child,
    stderr: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Enrolls an agent in `dir` with `token`; returns the binary's output.
fn enroll(env: &Env, server: &Server, ca: &Path, token: &str, dir: &Path, name: &str) -> std::process::Output {
    env.command()
        .args(["agent", "enroll", "--server", &server.url, "--token", token, "--name", name, "--dir"])
        .arg(dir)
        .arg("--ca-file")
        .arg(ca)
        .output()
        .expect("agent enroll runs")
}

fn start_agent(env: &Env, dir: &Path) -> Agent {
    let stderr = dir.with_extension("log");
    let child = env
        .command()
        .args(["agent", "run", "--heartbeat-seconds", "1", "--dir"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("log file"))
        .spawn()
        .expect("agent runs");
    Agent { child, stderr }
}

async fn create_enrollment(server: &Server, admin: &str, name: &str, pool: &str) -> String {
    let (status, created) = server
        .call(Method::POST, "/api/v1/agents/enrollments", Some(admin), Some(json!({"name": name, "pool": pool})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["token"].as_str().expect("token").to_string()
}

async fn agents(server: &Server, token: &str) -> Vec<Value> {
    let (status, list) = server.call(Method::GET, "/api/v1/agents", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

async fn wait_healthy(server: &Server, token: &str, name: &str) -> Value {
    for _ in 0..300 {
        let list = agents(server, token).await;
        if let Some(a) = list.iter().find(|a| a["name"] == name && a["state"] == "healthy" && a["health"].is_object()) {
            return a.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("agent {name} did not report healthy: {:?}", agents(server, token).await);
}

/// The results a job committed, per tenant, across all its runs.
async fn committed(server: &Server, token: &str) -> Vec<String> {
    let (_, runs) = server.call(Method::GET, "/api/v1/runs?limit=50", Some(token), None).await;
    let mut tenants = Vec::new();
    for run in runs.as_array().expect("runs") {
        let (_, detail) = server
            .call(Method::GET, &format!("/api/v1/runs/{}", run["id"].as_str().expect("id")), Some(token), None)
            .await;
        for t in detail["tenants"].as_array().cloned().unwrap_or_default() {
            tenants.push(t["tenant_id"].as_str().unwrap_or_default().to_string());
        }
    }
    tenants
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_enroll_once_run_their_pools_jobs_survive_a_kill_and_are_revoked() {
    let env = Env::start(WorldSource::Demo).await;
    // The partner and its customers are known; the scheduler stays off so that the only jobs are
    // the ones started here.
    inspected(&env).await;
    unscheduled(&env, "agent_offline_seconds = 3");
    let (ca, cert, key) = tls_files(env.dir.path());
    let ca_file = env.dir.path().join("server-ca.pem");
    std::fs::write(&ca_file, &ca).expect("CA file");
    let admin = api_token(&env, "admin", "admin");
    let viewer = api_token(&env, "viewer", "viewer");
    let server = start_server(&env, &ca, &cert, &key).await;

    // Enrollment: an admin's one-time token, spent by the first agent that uses it.
    let (status, _) = server
        .call(Method::POST, "/api/v1/agents/enrollments", Some(&viewer), Some(json!({"name": "x", "pool": "dc1"})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let token = create_enrollment(&server, &admin, "dc1-a", "dc1").await;
    assert!(token.starts_with("tse_"), "{token}");
    let dir_a = env.dir.path().join("agent-a");
    let out = enroll(&env, &server, &ca_file, &token, &dir_a, "dc1-a");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = enroll(&env, &server, &ca_file, &token, &env.dir.path().join("agent-x"), "dc1-x");
    assert!(!out.status.success(), "a spent token enrolls nothing");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("already used"), "{text}");
    // The agent's files: its keys readable by it alone, and no token of Microsoft's anywhere.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir_a.join("agent-keys.json")).expect("keys").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let token_b = create_enrollment(&server, &admin, "dc1-b", "dc1").await;
    let dir_b = env.dir.path().join("agent-b");
    let out = enroll(&env, &server, &ca_file, &token_b, &dir_b, "dc1-b");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // An agent whose clock is ten minutes fast (played here with agent b's own keys, before b
    // runs) is degraded, and the server says why.
    let b_config = agent::run::AgentConfig::load(&dir_b).expect("agent b's configuration");
    let b_keys = agent::keys::AgentKeys::load(&dir_b.join("agent-keys.json")).expect("agent b's keys");
    let skewed = agent::client::Client::new(
        &agent::client::Connection { server: server.url.clone(), ca_files: vec![ca_file.clone()], bind_address: None },
        Some(agent::client::Identity { agent_id: b_config.agent_id.clone(), keys: std::sync::Arc::new(b_keys) }),
    )
    .expect("client");
    let now = chrono::Utc::now();
    let health = agent::protocol::Health {
        version: agent::VERSION.to_string(),
        started_at: now,
        now: now + chrono::Duration::minutes(10),
        bind_address: None,
        egress_address: None,
        login: None,
        graph: None,
        last_job: None,
        jobs_in_flight: 0,
    };
    let answer: agent::protocol::HeartbeatResponse =
        skewed.post("/heartbeat", &health, Duration::from_secs(10)).await.expect("heartbeat").expect("an answer");
    assert_eq!(answer.state, "degraded", "{answer:?}");
    let listed = agents(&server, &viewer).await;
    let b = listed.iter().find(|a| a["name"] == "dc1-b").expect("agent b");
    assert!(b["clock_skew_seconds"].as_i64().is_some_and(|s| (590..=610).contains(&s)), "{b}");
    assert!(b["reason"].as_str().is_some_and(|r| r.contains("clock")), "{b}");

    // A customer moves to pool dc1; its inspection goes to that pool by itself.
    let northwind = env.tenant_id("northwind");
    let (status, body) = server
        .call(Method::PUT, &format!("/api/v1/tenants/{northwind}/pool"), Some(&admin), Some(json!({"pool": "dc1"})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let mut agent_a = start_agent(&env, &dir_a);
    let healthy = wait_healthy(&server, &viewer, "dc1-a").await;
    assert_eq!(healthy["pool"], "dc1");
    let (status, job) = server
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "inspect", "params": {"tenants": [northwind], "debug": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["pool"], "dc1", "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let done = server.wait_job(&admin, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let agent_id = healthy["id"].as_str().expect("agent id").to_string();
    assert_eq!(done["lease_owner"].as_str().unwrap_or(&agent_id), agent_id);
    assert_eq!(done["result"]["tenants"], 1, "{done}");
    // The debug trace was recorded on the agent, redacted, and is served by the server.
    let trace = server
        .http
        .get(format!("{}/api/v1/jobs/{id}/trace", server.url))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("trace");
    assert_eq!(trace.status(), StatusCode::OK);
    let har: Value = trace.json().await.expect("HAR");
    let entries = har["log"]["entries"].as_array().expect("entries");
    assert!(!entries.is_empty());
    let text = har.to_string();
    assert!(!text.contains("Bearer eyJ") && !text.contains("refresh_token=0."), "the trace holds no token");
    // Health: the job it did, what Microsoft saw (the sign-in's address), the hosts reachable
    // from the agent, its clock against the server's.
    let mut after = Value::Null;
    for _ in 0..100 {
        after = wait_healthy(&server, &viewer, "dc1-a").await;
        if after["health"]["last_job"]["id"] == id.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(after["health"]["last_job"]["status"], "succeeded", "{after}");
    assert_eq!(after["egress_address"], "127.0.0.1", "{after}");
    assert!(after["health"]["login"]["ok"] == true && after["health"]["graph"]["ok"] == true, "{after}");
    assert!(after["clock_skew_seconds"].as_i64().is_some_and(|s| s.abs() <= 2), "{after}");

    // kill -9 of the agent in the middle of a job: the other agent of the pool finishes it, and
    // every tenant is committed exactly once.
    env.control_with(Method::PUT, "faults", json!({"latency_ms": 300})).await;
    let before = committed(&server, &admin).await.len();
    let (_, job) = server
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "inspect", "params": {"tenants": [northwind], "full": true}})),
        )
        .await;
    let id = job["id"].as_str().expect("id").to_string();
    for _ in 0..600 {
        let (_, j) = server.call(Method::GET, &format!("/api/v1/jobs/{id}"), Some(&admin), None).await;
        if j["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    agent_a.child.kill().expect("kill -9");
    let _ = agent_a.child.wait();
    env.control_with(Method::PUT, "faults", json!({})).await;
    let _agent_b = start_agent(&env, &dir_b);
    let done = server.wait_job(&admin, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // Runs are listed newest first: the job's runs (the killed agent's and the one that finished
    // it) come before the earlier ones. Each tenant the job read (the partner, which every
    // inspection reads first, and the customer) is committed once across them.
    let results = committed(&server, &admin).await;
    let mut mine: Vec<String> = results[..results.len() - before].to_vec();
    assert!(mine.contains(&northwind), "{mine:?}");
    mine.sort();
    let all = mine.len();
    mine.dedup();
    assert_eq!(all, mine.len(), "a tenant was committed twice for the job: {results:?}");

    // Revoked: refused at once, and the agent stops with the reason.
    let agents_now = agents(&server, &viewer).await;
    let b = agents_now.iter().find(|a| a["name"] == "dc1-b").expect("agent b");
    let (status, _) = server
        .call(Method::DELETE, &format!("/api/v1/agents/{}", b["id"].as_str().expect("id")), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut stopped = None;
    let mut agent_b = _agent_b;
    for _ in 0..300 {
        if let Ok(Some(status)) = agent_b.child.try_wait() {
            stopped = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = stopped.expect("a revoked agent stops");
    assert!(!status.success());
    let log = std::fs::read_to_string(&agent_b.stderr).unwrap_or_default();
    assert!(log.contains("revoked"), "{log}");
    let list = agents(&server, &viewer).await;
    assert!(list.iter().any(|a| a["name"] == "dc1-b" && a["state"] == "revoked"), "{list:?}");
    // With one agent killed and the other revoked, pool dc1 has no healthy agent: its tenant
    // fails with agent_unhealthy, and the evidence names each agent and why.
    let mut detail = Value::Null;
    for _ in 0..100 {
        detail = server.call(Method::GET, &format!("/api/v1/tenants/{northwind}"), Some(&viewer), None).await.1;
        if detail["cause"] == "agent_unhealthy" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((detail["status"].as_str(), detail["pool"].as_str()), (Some("failed"), Some("dc1")), "{detail}");
    let evidence = detail["diagnosis"]["evidence"].to_string();
    assert!(evidence.contains("dc1-a") && evidence.contains("offline"), "{evidence}");
    assert!(evidence.contains("dc1-b") && evidence.contains("revoked"), "{evidence}");
    let (_, page) = server.call(Method::GET, "/api/v1/tenants?cause=agent_unhealthy", Some(&viewer), None).await;
    assert_eq!(page["total"], 1, "only the pool's tenant: {page}");
    // Its doctor is answered at once: no agent could run the other five checks.
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "doctor", "params": {"tenant": northwind}})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("agent_unhealthy")), "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("dc1-a") && d.contains("Fix:")), "{body}");

    // Neither agent's directory holds a refresh token in clear.
    for dir in [&dir_a, &dir_b] {
        for file in common::files(dir) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("refresh_token") && !text.contains("eyJ"), "{} holds a token", file.display());
        }
    }
    // The audit log has the enrollments and the revocation.
    let (_, audit) = server.call(Method::GET, "/api/v1/audit?limit=100", Some(&admin), None).await;
    let actions: Vec<&str> =
        audit["items"].as_array().expect("audit").iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["agent.enrollment.create", "agent.enroll", "agent.revoke", "tenant.pool"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
}

/// A small HTTP CONNECT proxy, as a TLS-passing corporate proxy is: it counts the tunnels it
/// opened. Returns its address.
async fn connect_proxy(tunnels: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let tunnels = tunnels.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head);
                let Some(target) = text.strip_prefix("CONNECT ").and_then(|r| r.split(' ').next()) else {
                    let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n").await;
                    return;
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                tunnels.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_access_names_the_pool_whose_address_it_allows_and_agents_work_through_a_proxy() {
    // The demo world, with Proseware's office (the only place its Conditional Access allows
    // sign-ins from) at 127.0.0.2: the address the "office" agent binds to.
    let worlds = tempfile::tempdir().expect("dir");
    let demo = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../sim/src/world/demo.toml"));
    assert!(demo.contains("ranges = [\"203.0.113.0/24\"]"), "the demo world's Proseware office moved");
    let world = worlds.path().join("world.toml");
    std::fs::write(&world, demo.replace("ranges = [\"203.0.113.0/24\"]", "ranges = [\"127.0.0.2/32\"]"))
        .expect("world");
    let env = Env::start(WorldSource::File(world)).await;
    inspected(&env).await;
    unscheduled(&env, "");
    let (ca, cert, key) = tls_files(env.dir.path());
    let ca_file = env.dir.path().join("server-ca.pem");
    std::fs::write(&ca_file, &ca).expect("CA file");
    let admin = api_token(&env, "admin", "admin");
    let server = start_server(&env, &ca, &cert, &key).await;

    let mut running = Vec::new();
    let tunnels = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let proxy = connect_proxy(tunnels.clone()).await;
    for (name, bind, proxied) in [("office", "127.0.0.2", false), ("cloud", "127.0.0.3", true)] {
        let token = create_enrollment(&server, &admin, name, name).await;
        let dir = env.dir.path().join(format!("agent-{name}"));
        let mut command = env.command();
        command
            .args(["agent", "enroll", "--server", &server.url, "--token", &token, "--bind-address", bind, "--dir"])
            .arg(&dir)
            .arg("--ca-file")
            .arg(&ca_file);
        if proxied {
            command.env("HTTPS_PROXY", format!("http://{proxy}"));
        }
        let out = command.output().expect("enroll runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stderr = dir.with_extension("log");
        let mut command = env.command();
        command
            .args(["agent", "run", "--heartbeat-seconds", "1", "--dir"])
            .arg(&dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("log"));
        if proxied {
            command.env("HTTPS_PROXY", format!("http://{proxy}"));
        }
        running.push(Agent { child: command.spawn().expect("agent runs"), stderr });
        wait_healthy(&server, &admin, name).await;
    }

    let proseware = env.tenant_id("prosewareinc");
    let inspect_in = |pool: &'static str| {
        let server = &server;
        let admin = &admin;
        let proseware = proseware.clone();
        async move {
            let (status, body) = server
                .call(
                    Method::PUT,
                    &format!("/api/v1/tenants/{proseware}/pool"),
                    Some(admin),
                    Some(json!({"pool": pool})),
                )
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
            let (status, job) = server
                .call(
                    Method::POST,
                    "/api/v1/jobs",
                    Some(admin),
                    Some(json!({"kind": "inspect", "params": {"tenants": [proseware]}})),
                )
                .await;
            assert_eq!((status, job["pool"].as_str()), (StatusCode::ACCEPTED, Some(pool)), "{job}");
            let done = server.wait_job(admin, job["id"].as_str().expect("id")).await;
            assert_eq!(done["status"], "succeeded", "{done}");
            server.call(Method::GET, &format!("/api/v1/tenants/{proseware}"), Some(admin), None).await.1
        }
    };
    // From the office's address the customer's Conditional Access lets the partner in.
    let detail = inspect_in("office").await;
    assert_ne!(detail["cause"], "conditional_access_blocked", "{detail}");
    assert_ne!(detail["status"], "failed", "{detail}");
    // From the cloud pool's address (through the proxy) it does not; the diagnosis says which
    // agent the customer's named locations allow, and to move the tenant to its pool.
    let detail = inspect_in("cloud").await;
    assert_eq!(detail["cause"], "conditional_access_blocked", "{detail}");
    // The cloud agent reports the address Microsoft saw with its next heartbeat (the proxy's).
    for _ in 0..100 {
        let list = agents(&server, &admin).await;
        if list.iter().any(|a| a["name"] == "cloud" && a["egress_address"].is_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detail = server.call(Method::GET, &format!("/api/v1/tenants/{proseware}"), Some(&admin), None).await.1;
    let evidence = detail["diagnosis"]["evidence"].to_string();
    assert!(evidence.contains("agent office (pool office)") && evidence.contains("127.0.0.2"), "{evidence}");
    assert!(evidence.contains("every agent of pool cloud"), "{evidence}");
    let fix = detail["diagnosis"]["fix"][0].as_str().unwrap_or_default();
    assert!(fix.starts_with("Move the tenant to pool office"), "{detail}");
    // The proxied agent reached both the server and Microsoft through the proxy.
    assert!(tunnels.load(std::sync::atomic::Ordering::Relaxed) >= 2, "the proxy carried the agent's connections");
    let list = agents(&server, &admin).await;
    let office = list.iter().find(|a| a["name"] == "office").expect("office");
    assert_eq!(office["egress_address"], "127.0.0.2", "{office}");
    assert_eq!(office["health"]["bind_address"], "127.0.0.2", "{office}");
    drop(running);
}
