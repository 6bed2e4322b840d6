//! Driving the real binary against the simulator over HTTPS.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sim::signin::{Browser, Person};
use sim::{RunningSim, SimConfig, WorldSource};

pub const BIN: &str = env!("CARGO_BIN_EXE_tenantscope");
pub const DEMO_CLIENT: &str = "5f0d4d52-9c3b-4e57-a1a8-3b6b2f6a7c11";
pub const MEGAN: &str = "megan@lakesideit.onmicrosoft.com";

pub struct Env {
    pub sim: RunningSim,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn start(world: WorldSource) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim =
            sim::start(SimConfig { world, ..SimConfig::new(dir.path().join("sim")) }).await.expect("simulator starts");
        Env { sim, dir }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("TENANTSCOPE_DATA_DIR", self.data_dir())
            .env("TENANTSCOPE_CLOUD", &self.sim.ready.cloud_file)
            .env("TENANTSCOPE_NO_BROWSER", "1");
        c
    }

    /// Runs the binary to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("binary runs")
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?} did not print JSON ({e}): stdout={} stderr={}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    pub fn person(&self, upn: &str) -> Person {
        let u = self.sim.ready.users.iter().find(|u| u.upn.eq_ignore_ascii_case(upn)).expect("user in the ready file");
        Person {
            upn: u.upn.clone(),
            password: u.password.clone(),
            totp_secret: u.totp_secret.clone(),
            accept_consent: true,
        }
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.sim.ready.base_url, &std::fs::read_to_string(&self.sim.ready.ca_cert).expect("CA"))
            .expect("browser")
    }

    /// `tenantscope login --device-code`, approved by the scripted user; returns the binary's stderr.
    pub async fn login(&self, upn: &str, extra: &[&str]) -> String {
        self.login_with(DEMO_CLIENT, upn, extra).await
    }

    /// `tenantscope login --device-code` with a given application, approved by the scripted user.
    pub async fn login_with(&self, client_id: &str, upn: &str, extra: &[&str]) -> String {
        let mut child = self
            .command()
            .args(["login", "--device-code", "--client-id", client_id])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("login starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("enter the code ") {
                    let code: String = line[i + 15..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                    let _ = tx.send(code);
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let code = tokio::task::spawn_blocking(move || rx.recv_timeout(std::time::Duration::from_secs(60)))
            .await
            .expect("join")
            .expect("the binary shows a device code");
        self.browser().approve_device_code(&code, &self.person(upn)).await.expect("the scripted user signs in");
        let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("login exits");
        let text = reader.join().expect("stderr reader");
        assert!(status.success(), "login failed: {text}");
        text
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        self.control_with(reqwest::Method::POST, path, body).await
    }

    /// A call to the simulator's control API with any method (faults and limits are `PUT`, counters `GET`).
    pub async fn control_with(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.sim.ready.ca_cert).expect("CA")).expect("pem");
        let client = reqwest::Client::builder().add_root_certificate(ca).build().expect("client");
        let req = client.request(method.clone(), format!("{}/_sim/{path}", self.sim.ready.base_url));
        let req = if method == reqwest::Method::GET { req } else { req.json(&body) };
        let resp = req.bearer_auth(&self.sim.ready.control_token).send().await.expect("control API");
        assert!(resp.status().is_success(), "control {path}: {}", resp.status());
        resp.json().await.expect("JSON")
    }

    pub fn tenant_id(&self, domain_prefix: &str) -> String {
        self.sim
            .ready
            .tenants
            .iter()
            .find(|t| t.domain.starts_with(domain_prefix))
            .map(|t| t.id.clone())
            .expect("tenant")
    }
}

/// Every file under a directory, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
