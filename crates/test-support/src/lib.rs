//! What tenantscope's integration tests share: the simulated cloud started in-process, its users
//! and scripted browser, its control API, the cloud description a client needs to reach it, and a
//! private temporary directory for data.
//!
//! It is a dev-dependency only: nothing in the product links it. (The simulator's own tests do not
//! use it, since it depends on the simulator.)

use std::path::{Path, PathBuf};

use microsoft::{Account, AccountRole, Authenticator, Cloud};
use serde_json::Value;
use sim::signin::{Browser, Person};
use sim::{ReadyInfo, RunningSim, SimConfig, WorldSource};

/// The demo world's tenantscope app registration in the partner tenant.
pub const DEMO_CLIENT: &str = "5f0d4d52-9c3b-4e57-a1a8-3b6b2f6a7c11";

/// The demo world's partner engineer (MFA registered, in the GDAP groups).
pub const MEGAN: &str = "megan@lakesideit.onmicrosoft.com";

/// A simulator running in this process, with a temporary directory for it and for the test's data.
pub struct SimEnv {
    pub sim: RunningSim,
    pub dir: tempfile::TempDir,
    pub cloud: Cloud,
}

impl SimEnv {
    /// The built-in demo world.
    pub async fn demo() -> SimEnv {
        SimEnv::start(WorldSource::Demo).await
    }

    /// Starts the simulator with a world.
    pub async fn start(world: WorldSource) -> SimEnv {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sim =
            sim::start(SimConfig { world, ..SimConfig::new(dir.path().join("sim")) }).await.expect("simulator starts");
        let cloud = Cloud::from_file(Path::new(&sim.ready.cloud_file)).expect("the simulator's cloud file");
        SimEnv { sim, dir, cloud }
    }

    /// What the simulator published: its URLs, CA, users and tenants.
    pub fn ready(&self) -> &ReadyInfo {
        &self.sim.ready
    }

    /// A data directory for tenantscope (created on first use by whoever uses it).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The id of the tenant whose initial domain starts with `prefix` (for example `northwind`).
    pub fn tenant_id(&self, prefix: &str) -> String {
        self.ready()
            .tenants
            .iter()
            .find(|t| t.domain.starts_with(prefix))
            .map(|t| t.id.clone())
            .unwrap_or_else(|| panic!("no tenant {prefix} in the world"))
    }

    /// A user of the world as the scripted browser signs in (consenting when asked).
    pub fn person(&self, upn: &str) -> Person {
        let u = self
            .ready()
            .users
            .iter()
            .find(|u| u.upn.eq_ignore_ascii_case(upn))
            .unwrap_or_else(|| panic!("no user {upn} in the ready file"));
        Person {
            upn: u.upn.clone(),
            password: u.password.clone(),
            totp_secret: u.totp_secret.clone(),
            accept_consent: true,
        }
    }

    /// The scripted browser, trusting the simulator's CA.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.ready().base_url, &self.ca_pem()).expect("browser")
    }

    /// The simulator's CA certificate (PEM).
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(&self.ready().ca_cert).expect("the simulator's CA file")
    }

    /// An HTTPS client that trusts the simulator's CA.
    pub fn http(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem().as_bytes()).expect("CA PEM");
        reqwest::Client::builder().add_root_certificate(ca).build().expect("HTTP client")
    }

    /// Signs `upn` in with the device-code flow, approved by the scripted user.
    pub async fn login(
        &self,
        auth: &Authenticator,
        upn: &str,
        tenant: &str,
        role: AccountRole,
    ) -> Result<Account, microsoft::Error> {
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let browser = self.browser();
        let person = self.person(upn);
        let approver = tokio::spawn(async move {
            let code = rx.await.expect("device code shown");
            browser.approve_device_code(&code, &person).await
        });
        let mut tx = Some(tx);
        let account = auth
            .login_device_code(tenant, role, |dc| {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(dc.user_code.clone());
                }
            })
            .await;
        let _ = approver.await;
        account
    }

    /// The demo app's authenticator on this cloud, its tokens kept in `tokens`, with the partner
    /// engineer signed in: what an in-process run of an inspection starts from.
    pub async fn partner_signed_in(
        &self,
        tokens: std::sync::Arc<dyn microsoft::cache::TokenStore>,
    ) -> std::sync::Arc<Authenticator> {
        let transport =
            microsoft::http::Transport::new(&self.cloud, microsoft::http::TransportOptions::default(), None)
                .expect("transport");
        let auth = std::sync::Arc::new(Authenticator::new(self.cloud.clone(), transport, tokens, DEMO_CLIENT));
        self.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("the partner signs in");
        auth
    }

    /// Approves a device code shown by anything (the binary, a server) as `upn`.
    pub async fn approve_device_code(&self, code: &str, upn: &str) {
        self.browser().approve_device_code(code, &self.person(upn)).await.expect("the scripted user signs in");
    }

    /// A call to the simulator's control API (`/_sim/<path>`): `GET` reads, any other method sends
    /// `body` as JSON. Panics unless the call succeeds.
    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/_sim/{}", self.ready().base_url, path.trim_start_matches('/'));
        let req = self.http().request(method.clone(), url);
        let req = if method == reqwest::Method::GET { req } else { req.json(&body) };
        let resp = req.bearer_auth(&self.ready().control_token).send().await.expect("control API");
        let status = resp.status();
        let text = resp.text().await.expect("control API body");
        assert!(status.is_success(), "control {path}: {status}: {text}");
        serde_json::from_str(&text).expect("control API JSON")
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

/// A fresh, empty PostgreSQL database on the test server (`TENANTSCOPE_TEST_DATABASE_URL`, by
/// default the local `test` database), named after `purpose`; returns its URL. `None` only when
/// `TENANTSCOPE_SKIP_PG=1` asks to skip PostgreSQL; a server that cannot be reached is a failure,
/// so that a missing database never passes for a green test.
pub async fn postgres_database(purpose: &str) -> Option<String> {
    use sqlx::{Connection as _, Executor as _};
    if std::env::var("TENANTSCOPE_SKIP_PG").is_ok_and(|v| v.trim() == "1") {
        eprintln!("TENANTSCOPE_SKIP_PG=1: skipping a PostgreSQL test");
        return None;
    }
    let admin = std::env::var("TENANTSCOPE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("cannot connect to PostgreSQL at {admin}: {e}; start it, or set TENANTSCOPE_SKIP_PG=1")
    });
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let name = format!("tenantscope_{purpose}_{}_{nonce}", std::process::id());
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).await.expect("create database");
    let _ = conn.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin);
    Some(format!("{base}/{name}"))
}
