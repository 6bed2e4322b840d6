//! Test support: the shared in-process simulator, plus Authenticators against it.

#![allow(dead_code)]

use std::sync::Arc;

use microsoft::http::{Transport, TransportOptions};
use microsoft::{Authenticator, MemoryTokenStore, TokenStore};
use sim::WorldSource;
pub use test_support::{DEMO_CLIENT as CLIENT, MEGAN};

pub struct Env(test_support::SimEnv);

impl std::ops::Deref for Env {
    type Target = test_support::SimEnv;

    fn deref(&self) -> &test_support::SimEnv {
        &self.0
    }
}

impl Env {
    pub async fn start() -> Env {
        Env::with_world(WorldSource::Demo).await
    }

    pub async fn with_world(world: WorldSource) -> Env {
        Env(test_support::SimEnv::start(world).await)
    }

    pub fn tenant(&self, domain_prefix: &str) -> String {
        self.0.tenant_id(domain_prefix)
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

    /// A control API call, with the path as `/_sim/...`.
    pub async fn control(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.0.control(method, path.trim_start_matches("/_sim/"), body).await
    }
}
