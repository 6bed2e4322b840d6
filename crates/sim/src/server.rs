//! Starting the simulator: TLS material, keys, the world, the HTTPS accept loop, and the ready file.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use futures::FutureExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::clock::Clock;
use crate::faults::{FaultDice, Injected, Outcome};
use crate::graph::throttle::Throttle;
use crate::keys::Keys;
use crate::state::{Counters, Sessions, SharedSim, Sim, opaque};
use crate::tls::TlsError;
use crate::world::file::WorldError;
use crate::world::{TenantKind, World};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    World(#[from] WorldError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Where the world comes from.
#[derive(Debug, Clone)]
pub enum WorldSource {
    Demo,
    File(PathBuf),
    Generate(String),
    Given(Box<World>),
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub world: WorldSource,
    /// Extra DNS names for the server certificate.
    pub hostnames: Vec<String>,
    /// The control token; a random one when not given.
    pub control_token: Option<String>,
}

impl SimConfig {
    pub fn new(state_dir: impl Into<PathBuf>) -> SimConfig {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: state_dir.into(),
            world: WorldSource::Demo,
            hostnames: Vec::new(),
            control_token: None,
        }
    }
}

/// The ready file: everything a client needs to use the running simulator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyInfo {
    pub base_url: String,
    pub ca_cert: String,
    pub cloud_file: String,
    pub control_token: String,
    pub tenants: Vec<ReadyTenant>,
    pub apps: Vec<ReadyApp>,
    pub users: Vec<ReadyUser>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyTenant {
    pub id: String,
    pub domain: String,
    pub display_name: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyApp {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub home_tenant_id: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyUser {
    pub upn: String,
    pub password: String,
    pub totp_secret: Option<String>,
    pub tenant_id: String,
}

/// The cloud description the product's `--cloud` option reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloudFile {
    pub name: String,
    pub login_url: String,
    pub graph_url: String,
    pub graph_resource: String,
    pub ca_file: Option<String>,
}

pub struct RunningSim {
    pub sim: SharedSim,
    pub addr: SocketAddr,
    pub ready: ReadyInfo,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSim {
    pub fn base_url(&self) -> &str {
        &self.sim.base_url
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    pub fn write_ready_file(&self, path: &Path) -> Result<(), SimError> {
        write_json_atomically(path, &self.ready)
    }
}

fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), SimError> {
    let err = |source| SimError::Write { path: path.display().to_string(), source };
    let text = serde_json::to_string_pretty(value).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("tmp");
    crate::tls::write_private(&tmp, &text).map_err(|e| match e {
        TlsError::Io { source, .. } => err(source),
        other => err(std::io::Error::other(other.to_string())),
    })?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn load_world(source: &WorldSource, now: chrono::DateTime<chrono::Utc>) -> Result<World, SimError> {
    Ok(match source {
        WorldSource::Demo => crate::world::file::demo(now)?,
        WorldSource::File(p) => crate::world::file::load(p, now)?,
        WorldSource::Generate(spec) => {
            crate::world::generate::generate(&crate::world::generate::Spec::parse(spec)?, now)
        }
        WorldSource::Given(w) => (**w).clone(),
    })
}

/// Starts the simulator and returns once it accepts connections.
pub async fn start(config: SimConfig) -> Result<RunningSim, SimError> {
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| SimError::Listen { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| SimError::Listen { addr: config.listen, source })?;
    let host_ip: IpAddr = if addr.ip().is_unspecified() { IpAddr::from([127, 0, 0, 1]) } else { addr.ip() };
    let host = match host_ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let base_url = format!("https://{host}:{}", addr.port());
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string(), host_ip.to_string()];
    names.extend(config.hostnames.iter().cloned());
    names.dedup();
    // Paths in the ready and cloud files are absolute, so that they mean the same from any directory.
    let mut config = config;
    if let Ok(abs) = std::path::absolute(&config.state_dir) {
        config.state_dir = abs;
    }
    let tls = crate::tls::prepare(&config.state_dir, &names)?;
    let keys = Keys::load(&config.state_dir.join("keys"), &base_url)?;
    let clock = Clock::default();
    let world = load_world(&config.world, clock.now())?;
    let control_token = config.control_token.clone().unwrap_or_else(|| opaque("simctl-", 24));
    let sim = Arc::new(Sim {
        base_url: base_url.clone(),
        control_token: control_token.clone(),
        world: RwLock::new(world),
        clock,
        keys,
        sessions: Mutex::new(Sessions::default()),
        counters: Counters::default(),
        throttle: Throttle::default(),
        dice: FaultDice::default(),
        verified: Mutex::new(Default::default()),
        delta: Mutex::new(Default::default()),
    });
    let cloud_path = config.state_dir.join("cloud.json");
    let cloud = CloudFile {
        name: "tenantscope-simulator".into(),
        login_url: base_url.clone(),
        graph_url: base_url.clone(),
        graph_resource: "https://graph.microsoft.com".into(),
        ca_file: Some(tls.ca_path.display().to_string()),
    };
    write_json_atomically(&cloud_path, &cloud)?;
    let ready = ready_info(&sim, &tls.ca_path, &cloud_path);
    let app: Router = Router::new()
        .merge(crate::identity::router())
        .merge(crate::graph::router())
        .merge(crate::control::router(sim.clone()))
        .with_state(sim.clone());
    let (shutdown, mut stop) = watch::channel(false);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config);
    let task_sim = sim.clone();
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => {
                        // Out of file descriptors or similar: back off instead of spinning.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let app = app.clone();
            let sim = task_sim.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await
                else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    serve_one(sim.clone(), app.clone(), peer, req)
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await;
            });
        }
    });
    Ok(RunningSim { sim, addr, ready, shutdown, task })
}

/// The answer to a request whose handler panicked.
fn panic_response(sim: &Sim, identity: bool) -> axum::response::Response {
    let now = sim.now();
    if identity {
        let correlation = crate::errors::Correlation::fresh();
        return crate::identity::issue::server_error().into_response_with(&correlation, now, &sim.base_url);
    }
    let ctx = crate::errors::GraphCtx::from_headers(&axum::http::HeaderMap::new(), now);
    crate::errors::GraphError::new(500, "InternalServerError", "An internal server error occurred.")
        .into_response_with(&ctx)
}

/// Serves one request: decides its injected fault (once), answers identity faults here and hands Graph
/// faults to the Graph handler, and turns a panicking handler into a 500.
async fn serve_one(
    sim: SharedSim,
    app: Router,
    peer: SocketAddr,
    mut req: hyper::Request<Incoming>,
) -> Result<axum::response::Response, std::io::Error> {
    let path = req.uri().path();
    let graph = path.starts_with("/v1.0/") || path.starts_with("/beta/");
    let identity = path.contains("/oauth2/");
    // Identity faults hit the endpoints clients call programmatically, never the pages a person sees.
    let faultable = graph || path.ends_with("/oauth2/v2.0/token") || path.ends_with("/oauth2/v2.0/devicecode");
    let injected = if faultable { decide_fault(&sim, graph) } else { None };
    if let Some(i) = injected
        && i.decision.outcome == Outcome::Reset
    {
        Counters::bump(&sim.counters.faults_injected);
        return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected connection reset"));
    }
    req.extensions_mut().insert(ConnectInfo(peer));
    let identity_fault = injected.filter(|_| !graph);
    if let Some(i) = injected.filter(|_| graph) {
        req.extensions_mut().insert(i);
    }
    if let Some(i) = identity_fault {
        if !i.decision.latency.is_zero() {
            tokio::time::sleep(i.decision.latency).await;
        }
        if let Outcome::Status(code) = i.decision.outcome {
            Counters::bump(&sim.counters.faults_injected);
            return Ok(identity_fault_response(&sim, code, i.retry_after));
        }
    }
    // A bug in a handler must not drop the connection without an answer: the client gets a 500 in the
    // shape of the endpoint it called, and the server keeps serving.
    let resp = match std::panic::AssertUnwindSafe(app.oneshot(req.map(Body::new))).catch_unwind().await {
        Ok(Ok(resp)) => resp,
        Ok(Err(never)) => match never {},
        Err(_) => panic_response(&sim, identity),
    };
    Ok(match identity_fault.map(|i| (i.decision.outcome, i.slow_body)) {
        Some((Outcome::Truncate, _)) => {
            Counters::bump(&sim.counters.faults_injected);
            crate::faults::truncate(resp).await
        }
        Some((Outcome::SlowBody, delay)) => {
            Counters::bump(&sim.counters.faults_injected);
            crate::faults::slow(resp, delay).await
        }
        _ => resp,
    })
}

/// Rolls the fault dice for a Graph request, or for an identity request when faults apply to identity too.
fn decide_fault(sim: &Sim, graph: bool) -> Option<Injected> {
    let faults = {
        let w = sim.world();
        if !w.faults.is_active() || !(graph || w.faults.identity) {
            return None;
        }
        w.faults.clone()
    };
    Some(Injected {
        decision: sim.dice.decide(&faults),
        retry_after: faults.retry_after,
        slow_body: std::time::Duration::from_millis(faults.slow_body_ms.max(1)),
    })
}

/// An injected server error of the token and device-code endpoints, in the identity platform's shape.
fn identity_fault_response(sim: &Sim, code: u16, retry_after: Option<u64>) -> axum::response::Response {
    let error = if code == 503 { "temporarily_unavailable" } else { "server_error" };
    let mut resp =
        crate::errors::AadError::new(code, error, 90033, "A transient error has occurred. Please try again.")
            .into_response_with(&crate::errors::Correlation::fresh(), sim.now(), &sim.base_url);
    if code == 503
        && let Some(s) = retry_after
        && let Ok(v) = axum::http::HeaderValue::from_str(&s.to_string())
    {
        resp.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    resp
}

fn ready_info(sim: &Sim, ca: &Path, cloud: &Path) -> ReadyInfo {
    let w = sim.world();
    let tenants = w
        .tenants
        .iter()
        .map(|t| ReadyTenant {
            id: t.id.to_string(),
            domain: t.domain.clone(),
            display_name: t.display_name.clone(),
            role: match t.kind {
                TenantKind::Partner => "partner".into(),
                TenantKind::Customer => "customer".into(),
            },
        })
        .collect();
    let now = sim.now();
    let apps = w
        .apps
        .iter()
        .map(|a| ReadyApp {
            client_id: a.client_id.to_string(),
            client_secret: a.secrets.iter().max_by_key(|s| s.end).map(|s| s.value.clone()),
            home_tenant_id: a.home_tenant.to_string(),
            display_name: a.display_name.clone(),
        })
        .collect();
    let _ = now;
    let mut users = Vec::new();
    for t in &w.tenants {
        for u in &t.users {
            let named = t.kind == TenantKind::Partner || !u.roles.is_empty();
            if named && users.len() < 1000 {
                users.push(ReadyUser {
                    upn: u.upn.clone(),
                    password: u.password.clone(),
                    totp_secret: u.totp_secret.clone(),
                    tenant_id: t.id.to_string(),
                });
            }
        }
    }
    ReadyInfo {
        base_url: sim.base_url.clone(),
        ca_cert: ca.display().to_string(),
        cloud_file: cloud.display().to_string(),
        control_token: sim.control_token.clone(),
        tenants,
        apps,
        users,
    }
}
