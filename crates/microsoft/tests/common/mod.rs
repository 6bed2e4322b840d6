//! Test support: the simulator in-process, and sign-ins by the scripted user.

#![allow(dead_code)]

use std::sync::Arc;

use microsoft::http::{Transport, TransportOptions};
use microsoft::{Account, AccountRole, Authenticator, Cloud, MemoryTokenStore, TokenStore};
use sim::signin::{Browser, Person};
use sim::{ReadyInfo, RunningSim, SimConfig, WorldSource};

pub const CLIENT: &str = "5f0d4d52-9c3b-4e57-a1a8-3b6b2f6a7c11";
pub const MEGAN: &str = "megan@lakesideit.onmicrosoft.com";

pub struct Env {
    pub sim: RunningSim,
    pub dir: tempfile::TempDir,
    pub cloud: Cloud,
}

impl Env {
    pub async fn start() -> Env {
        Env::with_world(WorldSource::Demo).await
    }

    pub async fn with_world(world: WorldSource) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = SimConfig::new(dir.path().join("sim"));
        config.world = world;
        let sim = sim::start(config).await.expect("simulator starts");
        let cloud = Cloud::from_file(std::path::Path::new(&sim.ready.cloud_file)).expect("cloud file");
        Env { sim, dir, cloud }
    }

    pub fn ready(&self) -> &ReadyInfo {
        &self.sim.ready
    }

    pub fn tenant(&self, domain_prefix: &str) -> String {
        self.ready()
            .tenants
            .iter()
            .find(|t| t.domain.starts_with(domain_prefix))
            .map(|t| t.id.clone())
            .expect("tenant in demo world")
    }

    pub fn person(&self, upn: &str) -> Person {
        let u = self.ready().users.iter().find(|u| u.upn.eq_ignore_ascii_case(upn)).expect("user in ready file");
        Person {
            upn: u.upn.clone(),
            password: u.password.clone(),
            totp_secret: u.totp_secret.clone(),
            accept_consent: true,
        }
    }

    pub fn browser(&self) -> Browser {
        let ca = std::fs::read_to_string(&self.ready().ca_cert).expect("CA");
        Browser::new(&self.ready().base_url, &ca).expect("browser")
    }

    pub fn auth_with(
        &self,
        store: Arc<dyn TokenStore>,
        har: Option<Arc<microsoft::har::HarRecorder>>,
    ) -> Arc<Authenticator> {
        let transport = Transport::new(&self.cloud, TransportOptions::default(), har).expect("transport");
        Arc::new(Authenticator::new(self.cloud.clone(), transport, store, CLIENT))
    }

    pub fn auth(&self) -> Arc<Authenticator> {
        self.auth_with(Arc::new(MemoryTokenStore::default()), None)
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

    pub async fn control(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.ready().ca_cert).expect("CA")).expect("CA pem");
        let client = reqwest::Client::builder().add_root_certificate(ca).build().expect("client");
        let url = format!("{}{path}", self.ready().base_url);
        let req = match method {
            "GET" => client.get(url),
            "PUT" => client.put(url).json(&body),
            _ => client.post(url).json(&body),
        };
        let resp = req.bearer_auth(&self.ready().control_token).send().await.expect("control API");
        assert!(resp.status().is_success(), "control {path}: {}", resp.status());
        resp.json().await.expect("control JSON")
    }
}
