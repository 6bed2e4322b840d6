//! What the benchmarks share: the release binary, the generated world's simulator in its own
//! process, the partner's sign-in, and reading a process's CPU time and peak memory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sim::signin::{Browser, Person};

pub const BIN: &str = env!("CARGO_BIN_EXE_tenantscope");
pub const APP: &str = "0b6f2c4d-7a1e-4c59-9f3e-5d1a2b3c4d5e";
pub const ADMIN: &str = "admin@generatedmsp.onmicrosoft.com";

/// The binary with a data directory and the simulator's cloud.
pub fn command(data: &Path, cloud: &str) -> Command {
    let mut c = Command::new(BIN);
    c.env("TENANTSCOPE_DATA_DIR", data)
        .env("TENANTSCOPE_CLOUD", cloud)
        .env("TENANTSCOPE_NO_BROWSER", "1")
        .env_remove("TENANTSCOPE_KEY");
    c
}

/// Peak resident memory of a running process, from its status file.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds (user and system) a process has used so far, from its stat file (clock ticks of
/// 1/100 s, as Linux reports them to user space).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A call to the simulator's control API.
pub fn control(rt: &tokio::runtime::Runtime, ready: &sim::ReadyInfo, method: &str, path: &str) -> Value {
    rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&ready.ca_cert).expect("CA")).expect("pem");
        let client = reqwest::Client::builder().add_root_certificate(ca).build().expect("client");
        let url = format!("{}/_sim/{path}", ready.base_url);
        let req = if method == "GET" { client.get(url) } else { client.post(url).json(&serde_json::json!({})) };
        req.bearer_auth(&ready.control_token).send().await.expect("control").json().await.expect("json")
    })
}

/// The simulator serving a generated world, in its own process; returns it once it is ready, and
/// how long the world took to generate.
pub fn start_sim(dir: &Path, spec: &str) -> (Child, sim::ReadyInfo, Duration) {
    let ready_path = dir.join("ready.json");
    let generation = Instant::now();
    let sim = Command::new(BIN)
        .args(["sim", "serve", "--generate", spec, "--ready-file"])
        .arg(&ready_path)
        .arg("--state-dir")
        .arg(dir.join("sim"))
        .stderr(Stdio::null())
        .spawn()
        .expect("simulator");
    while !ready_path.exists() {
        std::thread::sleep(Duration::from_millis(50));
        assert!(generation.elapsed() < Duration::from_secs(120), "the simulator did not start");
    }
    let took = generation.elapsed();
    let ready: sim::ReadyInfo =
        serde_json::from_slice(&std::fs::read(&ready_path).expect("ready")).expect("ready file");
    (sim, ready, took)
}

/// Signs the generated world's partner admin in with the device-code flow (`login` run by
/// `command`, with whatever environment it carries).
pub fn login(rt: &tokio::runtime::Runtime, ready: &sim::ReadyInfo, mut command: Command) {
    let mut login =
        command.args(["login", "--device-code", "--client-id", APP]).stderr(Stdio::piped()).spawn().expect("login");
    let stderr = login.stderr.take().expect("stderr");
    // The reader keeps draining stderr after the code: a closed pipe would fail the login's later output.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let drain = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = l.find("enter the code ") {
                let _ = tx.send(l[i + 15..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect());
            }
        }
    });
    let code = rx.recv_timeout(Duration::from_secs(60)).expect("a device code");
    let admin = ready.users.iter().find(|u| u.upn == ADMIN).expect("admin");
    rt.block_on(async {
        let browser =
            Browser::new(&ready.base_url, &std::fs::read_to_string(&ready.ca_cert).expect("CA")).expect("browser");
        browser
            .approve_device_code(
                &code,
                &Person {
                    upn: admin.upn.clone(),
                    password: admin.password.clone(),
                    totp_secret: admin.totp_secret.clone(),
                    accept_consent: true,
                },
            )
            .await
            .expect("sign-in")
    });
    assert!(login.wait().expect("login").success());
    let _ = drain.join();
}

/// Child processes, killed when dropped.
pub struct Killed(pub Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A CA and a certificate for 127.0.0.1; returns (CA file, certificate file, key file).
pub fn tls(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.clone().self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca, &ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("cert");
    let paths = (dir.join("server-ca.pem"), dir.join("server.pem"), dir.join("server-key.pem"));
    std::fs::write(&paths.0, ca_cert.pem()).expect("write");
    std::fs::write(&paths.1, leaf.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

/// A call to the simulator's control API with a body.
pub fn control_with(
    rt: &tokio::runtime::Runtime,
    ready: &sim::ReadyInfo,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&ready.ca_cert).expect("CA")).expect("pem");
        let client = reqwest::Client::builder().add_root_certificate(ca).build().expect("client");
        let url = format!("{}/_sim/{path}", ready.base_url);
        client
            .request(method, url)
            .json(&body)
            .bearer_auth(&ready.control_token)
            .send()
            .await
            .expect("control")
            .json()
            .await
            .expect("json")
    })
}

/// Resident memory now, from the process's status file.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}
