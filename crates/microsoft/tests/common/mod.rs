//! Test support: the shared in-process simulator, plus Authenticators against it.

#![allow(dead_code)]

use std::sync::Arc;

use microsoft::http::{Transport, TransportOptions};
use microsoft::{Authenticator, MemoryTokenStore, TokenStore};
use sim::WorldSource;
#[allow(unused_imports)]
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

/// Serves a router over TLS on a loopback port with a fresh self-signed certificate.
pub async fn serve_tls(router: axum::Router) -> (std::net::SocketAddr, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = cert.pem();
    let chain = vec![rustls::pki_types::CertificateDer::from(cert.der().to_vec())];
    let pk = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, pk)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    async move { tower::ServiceExt::oneshot(router, req.map(axum::body::Body::new)).await }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, pem)
}
