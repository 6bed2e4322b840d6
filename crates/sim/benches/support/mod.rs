//! Shared machinery of the simulator's benchmarks.
//!
//! The simulator under test runs in a separate process: the benchmark binary starts itself again with
//! `SIM_BENCH_CHILD` set, and that child only serves (release build, its own tokio runtime), writes its
//! ready file and exits when its stdin closes. The parent drives load over keep-alive HTTPS connections
//! with reqwest, one connection per simulated client, and reports throughput and latency percentiles.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sim::signin::{Browser, Person};
use sim::{ReadyInfo, SimConfig, WorldSource};

/// Whether `cargo bench` started this binary (it passes `--bench`); `cargo test --all-targets` runs bench
/// targets too, and there the benchmarks only say how to run them instead of loading the machine.
pub fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// When this process was started as the benchmark's simulator, serves until stdin closes and exits.
pub fn serve_if_child() {
    let Ok(ready_path) = std::env::var("SIM_BENCH_CHILD") else { return };
    let world = match std::env::var("SIM_BENCH_WORLD").as_deref() {
        Ok(spec) if spec.starts_with("generate:") => WorldSource::Generate(spec["generate:".len()..].to_string()),
        _ => WorldSource::Demo,
    };
    let state = PathBuf::from(std::env::var("SIM_BENCH_STATE").expect("SIM_BENCH_STATE"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let mut config = SimConfig::new(state);
        config.world = world;
        let running = sim::start(config).await.expect("the simulator starts");
        running.write_ready_file(std::path::Path::new(&ready_path)).expect("ready file");
        // The parent keeps our stdin open for as long as it needs us.
        tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        })
        .await
        .ok();
        running.stop().await;
    });
    std::process::exit(0);
}

/// The simulator process of a benchmark.
pub struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    pub ready: ReadyInfo,
    pub ca_pem: String,
}

impl Server {
    /// Starts the simulator in a child process with `world` (`demo` or `generate:SPEC`).
    pub fn start(world: &str) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let ready_path = dir.path().join("ready.json");
        let child = Command::new(std::env::current_exe().expect("current exe"))
            .env("SIM_BENCH_CHILD", &ready_path)
            .env("SIM_BENCH_WORLD", world)
            .env("SIM_BENCH_STATE", dir.path().join("state"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the simulator process");
        let started = Instant::now();
        let ready: ReadyInfo = loop {
            if let Ok(text) = std::fs::read_to_string(&ready_path)
                && let Ok(r) = serde_json::from_str(&text)
            {
                break r;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "the simulator did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        let ca_pem = std::fs::read_to_string(&ready.ca_cert).expect("CA");
        Server { child, _dir: dir, ready, ca_pem }
    }

    /// CPU seconds (user and system) the simulator process has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.ready.base_url)
    }

    pub fn tenant(&self, prefix: &str) -> String {
        self.ready.tenants.iter().find(|t| t.domain.starts_with(prefix)).expect("tenant").id.clone()
    }

    /// A keep-alive HTTPS client holding one connection, as one simulated client of the benchmark.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA"))
            .http1_only()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: serde_json::Value) {
        let r = self
            .client()
            .request(method, self.url(path))
            .bearer_auth(&self.ready.control_token)
            .json(&body)
            .send()
            .await
            .expect("control call");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    /// Signs `upn` in at `tenant` by device code through the scripted user; returns the token response.
    pub async fn device_code(&self, tenant: &str, client_id: &str, upn: &str) -> serde_json::Value {
        let http = self.client();
        let scope = "https://graph.microsoft.com/.default offline_access openid profile";
        let dc: serde_json::Value = http
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/devicecode")))
            .form(&[("client_id", client_id), ("scope", scope)])
            .send()
            .await
            .expect("devicecode")
            .json()
            .await
            .expect("devicecode JSON");
        let user = self.ready.users.iter().find(|u| u.upn == upn).expect("user in the ready file");
        let person = Person {
            upn: user.upn.clone(),
            password: user.password.clone(),
            totp_secret: user.totp_secret.clone(),
            accept_consent: true,
        };
        Browser::new(&self.ready.base_url, &self.ca_pem)
            .expect("browser")
            .approve_device_code(dc["user_code"].as_str().expect("user_code"), &person)
            .await
            .expect("sign-in");
        let tokens: serde_json::Value = http
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", client_id),
                ("device_code", dc["device_code"].as_str().expect("device_code")),
            ])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token JSON");
        assert!(tokens.get("access_token").is_some(), "{tokens}");
        tokens
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user and system) process `pid` has used, from /proc (Linux; 0 elsewhere). The kernel counts
/// in USER_HZ ticks, 100 per second on Linux.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Throughput and latency of one load run.
pub struct Report {
    pub name: String,
    pub clients: usize,
    pub requests: usize,
    pub failures: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    /// CPU seconds the simulator and the load generator used during the measured window.
    pub server_cpu: f64,
    pub client_cpu: f64,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    /// Simulator CPU time per request, in microseconds: what the rate would be bounded by if the simulator
    /// had the machine to itself is cores divided by this.
    pub fn server_us_per_request(&self) -> f64 {
        self.server_cpu * 1e6 / self.requests.max(1) as f64
    }

    pub fn print(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<30} {:>3} clients {:>7.0} req/s  p50 {:>6.2}  p90 {:>6.2}  p99 {:>6.2}  max {:>7.2} ms  sim CPU {:>5.0} us/req, load gen {:>5.0} us/req  ({} requests, {} failed)",
            self.name,
            self.clients,
            self.per_second(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.90)),
            ms(self.percentile(0.99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
            self.server_us_per_request(),
            self.client_cpu * 1e6 / self.requests.max(1) as f64,
            self.requests,
            self.failures,
        );
    }
}

/// Runs `op` from `clients` concurrent clients (each with its own keep-alive connection) for `duration`
/// after `warmup`, recording the latency of every operation; `op` returns whether it succeeded.
pub async fn load<F, Fut>(
    server: &Server,
    name: &str,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    op: F,
) -> Report
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let start_at = Instant::now() + warmup;
    let end_at = start_at + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let http = server.client();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            let mut i = 0usize;
            loop {
                let t = Instant::now();
                if t >= end_at {
                    break;
                }
                let ok = op(http.clone(), c * 1_000_000 + i).await;
                i += 1;
                if t >= start_at {
                    latencies.push(t.elapsed());
                    if !ok {
                        failures += 1;
                    }
                }
            }
            (latencies, failures)
        }));
    }
    tokio::time::sleep_until(start_at.into()).await;
    let (server_before, client_before) = (server.cpu_seconds(), cpu_seconds(std::process::id()));
    tokio::time::sleep_until(end_at.into()).await;
    let server_cpu = server.cpu_seconds() - server_before;
    let client_cpu = cpu_seconds(std::process::id()) - client_before;
    let mut latencies = Vec::new();
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await.expect("load task");
        latencies.extend(l);
        failures += f;
    }
    latencies.sort();
    Report {
        name: name.to_string(),
        clients,
        requests: latencies.len(),
        failures,
        elapsed: duration,
        latencies,
        server_cpu,
        client_cpu,
    }
}

/// The duration of each measured run, shortened with `SIM_BENCH_SECONDS` for a quick look.
pub fn run_length() -> Duration {
    Duration::from_secs_f64(std::env::var("SIM_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0))
}

/// Whether a request succeeded with 200 and its whole body arrived.
pub async fn ok(resp: reqwest::Result<reqwest::Response>) -> bool {
    match resp {
        Ok(r) => {
            let status = r.status();
            r.bytes().await.is_ok() && status == 200
        }
        Err(_) => false,
    }
}
