//! Can this machine reach the cloud's hosts? The sixth doctor check, on the machine (or agent) that
//! runs inspections.
//!
//! The probe goes through the same [`Transport`] as every other request, so it uses the cloud's extra
//! CA, the proxy settings, the HAR recorder and the request counters, and only ever contacts the
//! cloud's own login and Graph hosts. No token is sent: any HTTP answer, even an error status, proves
//! the host is reachable; only a failure to connect, resolve, complete TLS or read an answer does not.

use std::time::{Duration, Instant};

use serde::Serialize;
use url::Url;

use crate::cloud::Cloud;
use crate::error::{Error, TransportKind};
use crate::http::{Request, Transport};
use crate::retry::RetryPolicy;

/// What probing one host found.
#[derive(Debug, Clone, Serialize)]
pub struct HostCheck {
    /// `login` or `graph`.
    pub role: &'static str,
    pub url: String,
    pub reachable: bool,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    /// Why it could not be reached.
    pub error: Option<String>,
    /// How the failure is classified (`dns`, `connect`, `tls`, `timeout`...).
    pub kind: Option<TransportKind>,
    pub elapsed_ms: u64,
}

/// Probes the cloud's login and Graph hosts, each with the transport's retry rules for broken
/// connections (a host that fails once and answers on retry is reachable).
pub async fn check_hosts(transport: &Transport, cloud: &Cloud) -> Vec<HostCheck> {
    let login = probe(transport, "login", cloud.login_url.clone());
    let graph = probe(transport, "graph", cloud.graph_url.clone());
    let (login, graph) = futures::join!(login, graph);
    vec![login, graph]
}

async fn probe(transport: &Transport, role: &'static str, url: Url) -> HostCheck {
    let started = Instant::now();
    let policy = RetryPolicy {
        max_attempts: 2,
        max_wait: Duration::from_secs(5),
        min_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(2),
    };
    let result = policy.run(&transport.stats, || transport.send(Request::get(url.clone()))).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(resp) => HostCheck {
            role,
            url: url.to_string(),
            reachable: true,
            status: Some(resp.status),
            error: None,
            kind: None,
            elapsed_ms,
        },
        Err(e) => HostCheck {
            role,
            url: url.to_string(),
            reachable: false,
            status: None,
            kind: match e.root() {
                Error::Transport(t) => Some(t.kind),
                _ => None,
            },
            error: Some(e.to_string()),
            elapsed_ms,
        },
    }
}
