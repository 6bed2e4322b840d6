//! The platform as its tests drive it: a TLS certificate for the server, the real binary's
//! `serve`, its API with tokens, and waiting for jobs.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::Env;

/// A CA and a certificate it issued for 127.0.0.1; returns (CA PEM, certificate file, key file).
pub fn tls_files(dir: &Path) -> (String, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.clone().self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("certificate");
    let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server-key.pem"));
    std::fs::write(&cert_path, leaf.pem()).expect("write certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (ca_cert.pem(), cert_path, key_path)
}

pub const CONFIG: &str = r#"
[server]
drain_seconds = 2

[server.schedule]
tick_seconds = 1

[server.worker]
poll_millis = 100
heartbeat_seconds = 1
lease_seconds = 3
concurrency = 8
"#;

pub struct Server {
    pub child: Child,
    pub url: String,
    pub http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_server(env: &Env, ca: &str, cert: &Path, key: &Path) -> Server {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let ready = env.dir.path().join(format!("ready-{nanos}"));
    let child = env
        .command()
        .args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut url = String::new();
    for _ in 0..300 {
        if let Ok(text) = std::fs::read_to_string(&ready)
            && !text.trim().is_empty()
        {
            url = text.trim().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(url.starts_with("https://127.0.0.1:"), "the server did not report its address: {url:?}");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"))
        .build()
        .expect("client");
    Server { child, url, http }
}

impl Server {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Starts the partner sign-in as `admin`, approves its device code as `upn` and returns how it
    /// ended.
    pub async fn partner_sign_in(&self, env: &Env, admin: &str, upn: &str) -> Value {
        let (status, started) = self.call(Method::POST, "/api/v1/partner/sign-in", Some(admin), Some(json!({}))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        let code = started["user_code"].as_str().expect("user code").to_string();
        env.approve_device_code(&code, upn).await;
        let sign_in = format!("/api/v1/partner/sign-in/{}", started["id"].as_str().expect("id"));
        for _ in 0..200 {
            let outcome = self.call(Method::GET, &sign_in, Some(admin), None).await.1;
            if outcome["status"] != "pending" {
                return outcome;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the partner sign-in as {upn} did not end within 20 s");
    }

    pub async fn wait_job(&self, token: &str, id: &str) -> Value {
        for _ in 0..600 {
            let (status, job) = self.call(Method::GET, &format!("/api/v1/jobs/{id}"), Some(token), None).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if ["succeeded", "dead", "cancelled"].contains(&job["status"].as_str().unwrap_or("")) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {id} did not end within a minute");
    }
}

pub fn api_token(env: &Env, name: &str, role: &str) -> String {
    let out = env.run(&["api-token", "create", "--name", name, "--role", role]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("tsk_"), "{token}");
    token
}

pub fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "problem details carry the status: {body}");
    assert!(body["title"].is_string() && body["type"].is_string(), "{body}");
}

/// The demo partner signed in and every tenant inspected once by the command line, so that the
/// platform starts with its customers known.
pub async fn inspected(env: &Env) {
    env.login(super::MEGAN, &[]).await;
    let out = env.run(&["inspect", "--all"]);
    assert!(out.status.code().is_some_and(|c| c <= 2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The test configuration with the scheduler off (the only jobs are the test's own), and `extra`
/// lines in its `[server]` table.
pub fn unscheduled(env: &Env, extra: &str) {
    let config = CONFIG
        .replace("tick_seconds = 1", "tick_seconds = 1\nenabled = false")
        .replace("drain_seconds = 2", &format!("drain_seconds = 2\n{extra}"));
    std::fs::write(env.data_dir().join("config.toml"), config).expect("config");
}

/// The server's own store (its SQLite database and key), opened from the test.
pub async fn store_of(env: &Env) -> std::sync::Arc<dyn store::Store> {
    let data = env.data_dir();
    let key = store::Key::from_env_or_file(&data).expect("key");
    store::open(&format!("sqlite://{}?mode=rwc", data.join("tenantscope.db").display()), key).await.expect("store")
}
