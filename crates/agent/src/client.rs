//! The agent's HTTPS client of the server's agent API: the server's address, the CAs to trust
//! (for a private server certificate or a TLS-inspecting proxy), the local address to connect
//! from, and the proxy of the environment (`HTTPS_PROXY`, `NO_PROXY`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::keys::{AgentKeys, KeyError};
use crate::protocol::{self, EnrollRequest, EnrollResponse};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Config(String),
    #[error("the server at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the server refused {what} ({status}): {detail}")]
    Refused { what: String, status: u16, detail: String, code: Option<String> },
    #[error("the server's answer to {what} could not be read: {reason}")]
    Decode { what: String, reason: String },
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl AgentError {
    /// The problem's `code` when the server refused with one (`fenced`, `already_committed`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            AgentError::Refused { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Whether the server refused the agent itself (revoked, or unknown to it): retrying cannot
    /// help. A token refused for its time is not this: the agent corrects its clock and goes on.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, AgentError::Refused { status: 401 | 403, code, .. }
            if code.as_deref() != Some(protocol::CODE_TOKEN))
    }
}

/// The agent's identity once enrolled.
pub struct Identity {
    pub agent_id: String,
    pub keys: Arc<AgentKeys>,
}

/// How to reach the server.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub server: String,
    /// Extra CA certificates (PEM files) to trust.
    pub ca_files: Vec<PathBuf>,
    /// The local address to connect from.
    pub bind_address: Option<IpAddr>,
}

impl Connection {
    /// The PEM of every extra CA, concatenated (for the Microsoft transport too).
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, AgentError> {
        if self.ca_files.is_empty() {
            return Ok(None);
        }
        let mut all = Vec::new();
        for f in &self.ca_files {
            let pem = std::fs::read(f)
                .map_err(|e| AgentError::Config(format!("cannot read the CA file {}: {e}", f.display())))?;
            all.extend_from_slice(&pem);
            all.push(b'\n');
        }
        Ok(Some(all))
    }
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    identity: Option<Identity>,
    bind: Option<IpAddr>,
    /// The server's clock minus the agent's, in milliseconds, from the last heartbeat: tokens are
    /// dated by the server's clock so that a skewed agent clock does not lock the agent out.
    skew_ms: AtomicI64,
}

impl Client {
    pub fn new(connection: &Connection, identity: Option<Identity>) -> Result<Client, AgentError> {
        let base = Url::parse(connection.server.trim())
            .map_err(|e| AgentError::Config(format!("the server URL {:?} is not a URL: {e}", connection.server)))?;
        if base.scheme() != "https" {
            return Err(AgentError::Config(format!(
                "the server URL must be https:// (agents send secrets over it): {}",
                connection.server
            )));
        }
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(format!("tenantscope-agent/{}", crate::VERSION))
            .local_address(connection.bind_address);
        if let Some(pem) = connection.ca_pem()? {
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| AgentError::Config(format!("a CA file is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(AgentError::Config("the CA files hold no certificate".into()));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(|e| AgentError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client { http, base, identity, bind: connection.bind_address, skew_ms: AtomicI64::new(0) })
    }

    /// The local address connections are made from.
    pub fn bind_address(&self) -> Option<IpAddr> {
        self.bind
    }

    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// Now, by the server's clock as last measured.
    pub fn server_now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Records the server's time as of a response that just arrived.
    pub fn observe_server_time(&self, server: DateTime<Utc>) {
        self.skew_ms.store((server - Utc::now()).num_milliseconds(), Ordering::Relaxed);
    }

    fn url(&self, path: &str) -> Result<Url, AgentError> {
        self.base
            .join(&format!("{}{path}", protocol::PREFIX))
            .map_err(|e| AgentError::Config(format!("bad API path {path}: {e}")))
    }

    /// POSTs `body` to the agent API; `None` when the server answers 204 (a claim that found
    /// nothing).
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<Option<T>, AgentError> {
        let url = self.url(path)?;
        let mut req = self.http.post(url.clone()).json(body).timeout(timeout);
        if let Some(id) = &self.identity {
            req = req.bearer_auth(id.keys.token(&id.agent_id, self.server_now())?);
        }
        let resp =
            req.send().await.map_err(|e| AgentError::Unreachable { url: url.to_string(), reason: error_chain(&e) })?;
        let status = resp.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        // A token refused for its time: the server's clock, from its `Date`, dates the next ones.
        if status == reqwest::StatusCode::UNAUTHORIZED
            && let Some(date) = resp.headers().get(reqwest::header::DATE).and_then(|d| d.to_str().ok())
            && let Ok(at) = chrono::DateTime::parse_from_rfc2822(date)
        {
            self.observe_server_time(at.with_timezone(&Utc));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| AgentError::Unreachable { url: url.to_string(), reason: error_chain(&e) })?;
        if !status.is_success() {
            let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(AgentError::Refused {
                what: path.to_string(),
                status: status.as_u16(),
                detail: problem["detail"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect()),
                code: problem["code"].as_str().map(str::to_string),
            });
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AgentError::Decode { what: path.to_string(), reason: e.to_string() })
    }

    /// Enrolls with a one-time token: the server records the public keys and answers who the
    /// agent now is.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, AgentError> {
        self.post("/enroll", request, Duration::from_secs(30))
            .await?
            .ok_or_else(|| AgentError::Decode { what: "/enroll".into(), reason: "an empty answer".into() })
    }

    /// Sends a raw body (a trace) with PUT.
    pub async fn put_bytes(&self, path: &str, body: Vec<u8>) -> Result<(), AgentError> {
        let url = self.url(path)?;
        let mut req = self.http.put(url.clone()).body(body).timeout(Duration::from_secs(120));
        if let Some(id) = &self.identity {
            req = req.bearer_auth(id.keys.token(&id.agent_id, self.server_now())?);
        }
        let resp =
            req.send().await.map_err(|e| AgentError::Unreachable { url: url.to_string(), reason: error_chain(&e) })?;
        if resp.status().is_success() {
            return Ok(());
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Err(AgentError::Refused {
            what: path.to_string(),
            status,
            detail: text.chars().take(300).collect(),
            code: None,
        })
    }

    /// Whether `url` answers at all (any HTTP status counts: the host is reachable), and how long
    /// it took.
    pub async fn probe(&self, url: &str, ca_pem: Option<&[u8]>) -> protocol::Reachability {
        let started = std::time::Instant::now();
        let client = (|| {
            let mut b =
                reqwest::Client::builder().timeout(Duration::from_secs(10)).https_only(true).local_address(self.bind);
            if let Some(pem) = ca_pem {
                for c in reqwest::Certificate::from_pem_bundle(pem).ok()? {
                    b = b.add_root_certificate(c);
                }
            }
            b.build().ok()
        })();
        let Some(client) = client else {
            return protocol::Reachability { ok: false, error: Some("no HTTP client".into()), millis: 0 };
        };
        let result = client.get(url).send().await;
        let millis = started.elapsed().as_millis() as u64;
        match result {
            Ok(_) => protocol::Reachability { ok: true, error: None, millis },
            Err(e) => protocol::Reachability { ok: false, error: Some(error_chain(&e)), millis },
        }
    }
}

/// An error with its causes (reqwest's own message hides whether DNS, TCP or TLS failed).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
