//! `tenantscope serve`: the platform an MSP team shares.
//!
//! One process (or several replicas on one PostgreSQL database) serves the JSON API, runs the
//! scheduler that queues inspections of due tenants, a built-in worker that runs them (an agent
//! of the `local` pool that runs in-process), and the deliverer that sends alert notifications
//! from the store's outbox. Everything durable is in the store; this crate holds no SQL and calls
//! `inspect`, `diagnose` and `history` as the command line does.
//!
//! - [`api`]: the handlers under `/api/v1` and the OpenAPI document generated from them.
//! - [`auth`]: who is calling (session cookie or API token), roles, CSRF, the audit log.
//! - [`jobs`]: job kinds and the worker (leases, heartbeats, cancellation, fencing).
//! - [`scheduler`]: which tenants are due; one scheduler across replicas.

pub mod agents;
pub mod api;
pub mod auth;
pub mod config;
pub mod jobs;
pub mod pages;
pub mod password;
mod problem;
pub mod scheduler;
mod session;
pub mod signin;
pub mod ui;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use store::Store;
use tokio::sync::watch;

pub use config::ServerConfig;
pub use problem::Problem;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServerConfig>,
    /// Whether people reach the server over HTTPS (its own TLS, or a public URL that says so):
    /// session cookies are then `Secure` and `__Host-` prefixed.
    pub https: bool,
    pub login_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    pub scheduler_held: Arc<AtomicBool>,
    /// How often a Server-Sent Events stream looks at its job.
    pub sse_poll: Duration,
    /// The cloud and app of the partner connection; `None` on a replica that does not reach
    /// Microsoft.
    pub microsoft: Option<jobs::Microsoft>,
    /// The history every run records (agents get it with each job).
    pub history: Option<Arc<inspect::run::HistoryOptions>>,
    /// Operator sign-in with Microsoft, when configured.
    pub oidc: Option<Arc<microsoft::oidc::OidcClient>>,
    /// Where alert notifications go (the settings page lists them and sends tests).
    pub targets: Arc<Vec<notify::Target>>,
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("configuration: {0}")]
    Config(String),
}

/// The largest request body accepted (the API takes small JSON documents only).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The largest call of an authenticated agent (a tenant's dataprint, a debug trace).
pub const AGENT_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// The API's routes on `state`.
pub fn router(state: AppState) -> Router {
    // Agents commit whole dataprints and upload debug traces: their calls may be large, and only
    // an authenticated agent gets past the extractor to the body.
    let agent_api = Router::new()
        .route("/heartbeat", post(agents::heartbeat))
        .route("/claim", post(agents::claim))
        .route("/jobs/{id}/heartbeat", post(agents::job_heartbeat))
        .route("/jobs/{id}/store", post(agents::job_store))
        .route("/jobs/{id}/tokens", post(agents::job_token))
        .route("/jobs/{id}/trace", put(agents::job_trace_upload))
        .route("/jobs/{id}/finish", post(agents::job_finish))
        .layer(DefaultBodyLimit::max(AGENT_BODY_LIMIT));
    let api = Router::new()
        .route("/health", get(api::health))
        .route("/openapi.json", get(api::openapi))
        .route("/me", get(api::me))
        .route("/partner", get(api::partner))
        .route("/partner/sign-in", post(api::partner_sign_in))
        .route("/partner/sign-in/{id}", get(api::partner_sign_in_status))
        .route("/auth/local", post(api::local_login))
        .route("/auth/logout", post(api::logout))
        .route("/tenants", get(api::list_tenants))
        .route("/tenants/{id}", get(api::get_tenant))
        .route("/tenants/{id}/tags", put(api::set_tags))
        .route("/tenants/{id}/dataprint", get(api::get_dataprint))
        .route("/tenants/{id}/dataprints", get(api::list_dataprints))
        .route("/dataprints/{id}", get(api::get_dataprint_by_id))
        .route("/dataprints/{from}/diff/{to}", get(api::diff_dataprints))
        .route("/changes", get(api::list_changes))
        .route("/metrics", get(api::list_metrics))
        .route("/baselines", get(api::list_baselines))
        .route("/baselines/{name}/drift", get(api::baseline_drift))
        .route("/runs", get(api::list_runs))
        .route("/runs/{id}", get(api::get_run))
        .route("/jobs", get(api::list_jobs).post(api::create_job))
        .route("/jobs/{id}", get(api::get_job))
        .route("/jobs/{id}/cancel", post(api::cancel_job))
        .route("/jobs/{id}/events", get(api::job_events))
        .route("/jobs/{id}/trace", get(api::job_trace))
        .route("/alerts", get(api::list_alerts))
        .route("/alerts/{key}/ack", post(api::ack_alert))
        .route("/mutes", post(api::mute))
        .route("/tokens", get(api::list_tokens).post(api::create_token))
        .route("/tokens/{id}", delete(api::revoke_token))
        .route("/audit", get(api::list_audit))
        .route("/agents", get(agents::list_agents))
        .route("/agents/enrollments", post(agents::create_enrollment))
        .route("/agents/{id}", delete(agents::revoke_agent))
        .route("/tenants/{id}/pool", put(agents::set_pool))
        .route("/agent/enroll", post(agents::enroll))
        .nest("/agent", agent_api)
        .route("/settings/schedule", get(api::get_schedule).put(api::put_schedule).delete(api::reset_schedule))
        .fallback(|| async { Problem::not_found("no such API endpoint; see /api/v1/openapi.json") });
    Router::new()
        .nest("/api/v1", api)
        .route("/auth/login", get(signin::login))
        .route("/auth/callback", get(signin::callback))
        .route("/", get(ui::overview))
        .route("/signin", get(ui::sign_in))
        .route("/signin/link", get(ui::sign_in_link))
        .route("/tenants", get(ui::tenants))
        .route("/tenants.csv", get(ui::tenants_csv))
        .route("/ui/tenants/tags", post(ui::set_tags))
        .route("/tenants/{id}", get(ui::tenant))
        .route("/jobs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/changes", get(pages::changes))
        .route("/alerts", get(pages::alerts))
        .route("/ui/alerts/ack", post(pages::ack))
        .route("/ui/alerts/mute", post(pages::mute))
        .route("/tenants/{id}/dataprints", get(pages::dataprints))
        .route("/dataprints/{id}", get(pages::dataprint))
        .route("/compare", get(pages::compare))
        .route("/baselines", get(pages::baselines))
        .route("/ui/baselines", post(pages::save_baseline))
        .route("/settings", get(pages::settings))
        .route("/ui/settings/schedule", post(pages::set_schedule))
        .route("/ui/settings/webhook-test", post(pages::webhook_test))
        .route("/ui/settings/tokens", post(pages::create_token))
        .route("/ui/settings/tokens/revoke", post(pages::revoke_token))
        .route("/jobs/{id}", get(ui::job))
        .route("/agents", get(ui::agents))
        .route("/ui/agents/enroll", post(ui::enroll))
        .route("/partner", get(ui::partner))
        .route("/ui/jobs", post(ui::start_job))
        .route("/ui/partner/sign-in", post(ui::partner_sign_in))
        .route("/ui/sign-out", post(ui::sign_out))
        .route("/assets/{name}", get(ui::asset))
        .fallback(|| async { Problem::not_found("not found") })
        .layer(middleware::from_fn(etag))
        .layer(middleware::from_fn(security_headers))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Headers every answer carries.
async fn security_headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The API's answers load nothing; the dashboard's pages load their own stylesheet and script
    // (no inline script or style, nothing from elsewhere) and post forms only to this server.
    let policy = if api {
        "default-src 'none'; frame-ancestors 'none'"
    } else {
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    };
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    }
    response
}

/// Weak validators for JSON answers to `GET`: the hash of the body. A client that sends the same
/// `If-None-Match` gets `304 Not Modified` without the body.
async fn etag(request: Request, next: Next) -> Response {
    let conditional = (request.method() == Method::GET)
        .then(|| request.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string))
        .flatten();
    let is_get = request.method() == Method::GET;
    let response = next.run(request).await;
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // Downloads (a debug trace can be large) stream through without a validator.
    let download = response.headers().contains_key(header::CONTENT_DISPOSITION);
    if !is_get || response.status() != StatusCode::OK || !json || download {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // API answers are small; a body that cannot be read whole is passed on without a validator.
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return Problem::internal().into_response();
    };
    let tag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..32]);
    if conditional.as_deref().is_some_and(|c| c.split(',').any(|t| t.trim().trim_start_matches("W/") == tag)) {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&tag) {
            not_modified.headers_mut().insert(header::ETAG, v);
        }
        return not_modified;
    }
    if let Ok(v) = HeaderValue::from_str(&tag) {
        parts.headers.insert(header::ETAG, v);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// What the server runs besides the API.
pub struct Services {
    /// Runs jobs; `None` when this replica only serves the API.
    pub executor: Option<jobs::Executor<dyn Store>>,
    /// Where alert notifications go.
    pub targets: Vec<notify::Target>,
}

/// A name for this process as a lease owner: host, process id and a random part (a restarted
/// process is a new owner).
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    format!("{host}:{}:{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Runs the server until `shutdown` completes, then stops taking work, lets in-flight work finish
/// within the configured drain time, and returns.
pub async fn serve(
    store: Arc<dyn Store>,
    config: ServerConfig,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr) + Send,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: config.listen, source })?;
    let local = listener.local_addr().map_err(|source| ServeError::Listen { addr: config.listen, source })?;
    let mut config = config;
    // A public URL made from a listen address with port 0 names the port actually bound: pages
    // show it in commands to copy (an agent's enrollment) and Microsoft redirects to it.
    if let Some(base) = config.public_url.strip_suffix(":0") {
        config.public_url = format!("{base}:{}", local.port());
    }
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let https = tls.is_some() || config.public_url.starts_with("https://");
    let per_minute = NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN);
    let state = AppState {
        store: store.clone(),
        config: Arc::new(config.clone()),
        https,
        login_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
        scheduler_held: Arc::new(AtomicBool::new(false)),
        sse_poll: Duration::from_millis(500),
        microsoft: services.executor.as_ref().map(|e| e.microsoft.clone()),
        // Shared, not copied: the state is cloned for every request, and the compiled metrics are
        // not small.
        history: services.executor.as_ref().and_then(|e| e.history.clone()).map(Arc::new),
        oidc: oidc_client(&config, services.executor.as_ref().map(|e| &e.microsoft))?,
        targets: Arc::new(services.targets.clone()),
    };
    let app = router(state.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let owner = instance_name();
    let mut background = Vec::new();
    if config.schedule.enabled {
        let scheduler = scheduler::Scheduler {
            store: store.clone(),
            config: config.schedule.clone(),
            owner: owner.clone(),
            pool: config.worker.pool.clone(),
            max_attempts: config.worker.max_attempts,
            held: state.scheduler_held.clone(),
        };
        background.push(tokio::spawn(scheduler.run(stop_rx.clone())));
    }
    if let (true, Some(executor)) = (config.worker.enabled, services.executor) {
        let worker = jobs::Worker {
            executor,
            data_dir: config.data_dir.clone(),
            owner: owner.clone(),
            pool: config.worker.pool.clone(),
            lease: Duration::from_secs(config.worker.lease_seconds.max(1)),
            heartbeat: Duration::from_secs(config.worker.heartbeat_seconds.max(1)),
            poll: Duration::from_millis(config.worker.poll_millis.max(10)),
        };
        background.push(tokio::spawn(worker.run(stop_rx.clone(), config.drain)));
    }
    background.push(tokio::spawn(deliver_loop(
        store.clone(),
        services.targets,
        owner.clone(),
        config.deliver_every,
        stop_rx.clone(),
    )));
    background.push(tokio::spawn(prune_traces(config.data_dir.join("debug"), config.trace_retention, stop_rx.clone())));
    if let Some(keep) = config.retention {
        background.push(tokio::spawn(prune_history(store.clone(), keep, stop_rx.clone())));
    }
    if tls.is_none() && !local.ip().is_loopback() {
        tracing::warn!(
            "serving plain HTTP on {local}: put a TLS-terminating reverse proxy in front, or pass --tls-cert and --tls-key"
        );
    }
    ready(local);
    let mut accept_stop = stop_rx.clone();
    let accept = tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = accept_stop.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    let app = app.clone();
                    async move { tower::ServiceExt::oneshot(app, req.map(axum::body::Body::new)).await }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
                    }
                    None => {
                        let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    shutdown.await;
    tracing::info!("shutting down: no new connections or jobs; in-flight work may finish");
    let _ = stop_tx.send(true);
    let _ = accept.await;
    let deadline = config.drain + Duration::from_secs(5);
    let _ = tokio::time::timeout(deadline, futures::future::join_all(background)).await;
    store.close().await;
    Ok(())
}

/// Sends due alert notifications until `stop`.
async fn deliver_loop(
    store: Arc<dyn Store>,
    targets: Vec<notify::Target>,
    owner: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let deliverer = match notify::Deliverer::new(store, targets, &owner, notify::Policy::default()) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "alert notifications are off: the notification targets are invalid");
            return;
        }
    };
    loop {
        match deliverer.deliver_due().await {
            Ok(pass) => {
                for (what, why) in &pass.postponed {
                    tracing::warn!(notification = %what, error = %why, "webhook delivery failed; it is retried");
                }
                for (what, why) in &pass.expired {
                    tracing::warn!(notification = %what, error = %why, "webhook delivery given up");
                }
            }
            Err(e) => tracing::warn!(error = %e, "the outbox could not be read"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
    }
}

/// Deletes debug traces older than `keep`, hourly.
async fn prune_traces(dir: std::path::PathBuf, keep: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > keep);
                let ours = entry.file_name().to_string_lossy().starts_with("job-");
                if old && ours {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => break,
        }
    }
}

/// Prunes inspection history older than `keep`, at start and then daily. Pruning is one
/// transaction and idempotent, so replicas that each run it cannot harm one another.
async fn prune_history(store: Arc<dyn Store>, keep: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        // A retention longer than the calendar can express keeps everything.
        let Some(cutoff) = chrono::Duration::from_std(keep).ok().and_then(|d| chrono::Utc::now().checked_sub_signed(d))
        else {
            return;
        };
        match store.prune_older_than(cutoff).await {
            Ok(report) => tracing::info!(?report, %cutoff, "pruned history older than the retention"),
            Err(e) => tracing::warn!(error = %e, "pruning history failed; it is tried again tomorrow"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
            _ = stop.changed() => break,
        }
    }
}

/// The operator sign-in client, when `[server.access.oidc]` is configured.
fn oidc_client(
    config: &ServerConfig,
    microsoft: Option<&jobs::Microsoft>,
) -> Result<Option<Arc<microsoft::oidc::OidcClient>>, ServeError> {
    let Some(oidc) = &config.access.oidc else { return Ok(None) };
    let cloud = microsoft
        .map(|m| m.cloud.clone())
        .ok_or_else(|| ServeError::Config("sign-in with Microsoft needs the cloud of the partner connection".into()))?;
    let secret =
        std::env::var(&oidc.client_secret_env).ok().filter(|s| !s.is_empty()).map(microsoft::SecretString::from);
    if secret.is_none() {
        tracing::warn!(variable = %oidc.client_secret_env, "no client secret for operator sign-in: the app must be a public client");
    }
    let transport = microsoft::http::Transport::new(&cloud, microsoft::http::TransportOptions::default(), None)
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let client = microsoft::oidc::OidcClient::new(cloud, transport, &oidc.tenant, &oidc.client_id, secret)
        .map_err(|e| ServeError::Config(e.to_string()))?;
    Ok(Some(Arc::new(client)))
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!("{} holds no certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| ServeError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
