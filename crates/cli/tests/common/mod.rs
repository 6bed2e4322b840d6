//! Driving the real binary against the simulator over HTTPS.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sim::WorldSource;

pub mod platform;

pub const BIN: &str = env!("CARGO_BIN_EXE_tenantscope");

/// A child process killed and reaped when dropped, so that a test that panics does not leave it
/// running (holding its ports and its data directory).
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[allow(unused_imports)]
pub use test_support::{DEMO_CLIENT, MEGAN};

pub struct Env {
    inner: test_support::SimEnv,
    /// The database every command of this environment uses; `None` is SQLite in the data directory.
    database_url: Option<String>,
}

impl std::ops::Deref for Env {
    type Target = test_support::SimEnv;

    fn deref(&self) -> &test_support::SimEnv {
        &self.inner
    }
}

impl Env {
    pub async fn start(world: WorldSource) -> Env {
        Env { inner: test_support::SimEnv::start(world).await, database_url: None }
    }

    /// An environment whose commands all use the database at `url` (a fresh PostgreSQL database).
    pub async fn start_on(world: WorldSource, url: String) -> Env {
        Env { inner: test_support::SimEnv::start(world).await, database_url: Some(url) }
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
        if let Some(url) = &self.database_url {
            c.env("TENANTSCOPE_DATABASE_URL", url);
        }
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

    /// `tenantscope login --device-code`, approved by the scripted user; returns the binary's stderr.
    pub async fn login(&self, upn: &str, extra: &[&str]) -> String {
        self.login_with(DEMO_CLIENT, upn, extra).await
    }

    /// `tenantscope login --device-code` with a given application, approved by the scripted user.
    pub async fn login_with(&self, client_id: &str, upn: &str, extra: &[&str]) -> String {
        let mut command = self.command();
        command.args(["login", "--device-code", "--client-id", client_id]).args(extra);
        self.login_by(command, upn).await
    }

    /// Runs a prepared `login --device-code` command and approves its code as `upn`; returns its
    /// stderr. The whole of stderr is read, so that the login never writes to a closed pipe.
    pub async fn login_by(&self, mut command: Command, upn: &str) -> String {
        let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("login starts");
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
        self.approve_device_code(&code, upn).await;
        let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("login exits");
        let text = reader.join().expect("stderr reader");
        assert!(status.success(), "login failed: {text}");
        text
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        self.inner.control(reqwest::Method::POST, path, body).await
    }

    /// A call to the simulator's control API with any method (faults and limits are `PUT`, counters `GET`).
    pub async fn control_with(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.inner.control(method, path, body).await
    }
}

#[allow(unused_imports)]
pub use test_support::files;
