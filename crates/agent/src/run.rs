//! Enrollment, and the agent's loop: heartbeats, long-polled claims, and each job run where the
//! agent is, with its lease renewed until the job ends, is cancelled, or is lost to another agent.
//!
//! The agent keeps in its directory: `agent.json` (the server, its id, name and pool; no secret),
//! `agent-keys.json` (its private keys, mode 0600), and its token cache (`agent.db`, encrypted with
//! the key in `agent.key`, mode 0600).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::client::{AgentError, Client, Connection, Identity};
use crate::execute::{Executor, Job, Microsoft, Progress, trace_summary};
use crate::keys::{AgentKeys, write_private};
use crate::protocol::{
    ClaimRequest, ClaimedJob, EnrollRequest, Finish, FinishRequest, Health, HeartbeatResponse, JobHeartbeat,
    JobHeartbeatResponse, LastJob, MAX_WAIT_SECONDS, MicrosoftWire, SecretBundle,
};
use crate::remote::{AgentTokens, RemoteStore};

const CONFIG_FILE: &str = "agent.json";
const KEYS_FILE: &str = "agent-keys.json";
const CACHE_KEY_FILE: &str = "agent.key";
const CACHE_DB: &str = "agent.db";

/// What an enrolled agent remembers (no secret: the keys are in their own file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub server: String,
    pub agent_id: String,
    pub name: String,
    pub pool: String,
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
    #[serde(default)]
    pub bind_address: Option<IpAddr>,
}

impl AgentConfig {
    pub fn load(dir: &Path) -> Result<AgentConfig, AgentError> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read(&path).map_err(|e| {
            AgentError::Config(format!(
                "this agent is not enrolled ({} cannot be read: {e}); run `tenantscope agent enroll --server URL --token TOKEN`",
                path.display()
            ))
        })?;
        serde_json::from_slice(&text)
            .map_err(|e| AgentError::Config(format!("the agent's configuration {} is damaged: {e}", path.display())))
    }
}

/// Enrolls this machine: generates the agent's keys, spends the one-time token, and writes the
/// agent's files into `dir`. Refuses when `dir` already holds an enrolled agent.
pub async fn enroll(
    dir: &Path,
    connection: &Connection,
    token: &str,
    name: Option<&str>,
) -> Result<AgentConfig, AgentError> {
    if dir.join(CONFIG_FILE).exists() {
        return Err(AgentError::Config(format!(
            "{} already holds an enrolled agent; use another --dir, or remove it to enroll again",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| AgentError::Config(format!("cannot create the agent directory {}: {e}", dir.display())))?;
    let keys = AgentKeys::generate()?;
    let client = Client::new(connection, None)?;
    let answer = client
        .enroll(&EnrollRequest {
            token: token.trim().to_string(),
            name: name.map(str::to_string),
            signing_key: keys.signing_public(),
            sealing_key: keys.sealing_public(),
            version: crate::VERSION.to_string(),
        })
        .await?;
    keys.save(&dir.join(KEYS_FILE))?;
    let config = AgentConfig {
        server: connection.server.clone(),
        agent_id: answer.agent_id,
        name: answer.name,
        pool: answer.pool,
        ca_files: connection.ca_files.iter().map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone())).collect(),
        bind_address: connection.bind_address,
    };
    let text = serde_json::to_vec_pretty(&config).map_err(|e| AgentError::Config(e.to_string()))?;
    write_private(&dir.join(CONFIG_FILE), &text)?;
    Ok(config)
}

/// How the agent works.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tenants inspected at the same time.
    pub concurrency: usize,
    /// How often the agent reports its health.
    pub heartbeat: Duration,
    /// The longest a claim waits for a job.
    pub wait: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { concurrency: 16, heartbeat: Duration::from_secs(15), wait: Duration::from_secs(25) }
    }
}

/// What the agent knows about itself, for its heartbeats.
struct State {
    /// The agent's name and pool, as the doctor's sixth check names it.
    name: String,
    started_at: DateTime<Utc>,
    bind_address: Option<IpAddr>,
    in_flight: AtomicU32,
    last_job: Mutex<Option<LastJob>>,
    egress: Mutex<Option<String>>,
    /// Where Microsoft is, once a job said.
    microsoft: Mutex<Option<MicrosoftWire>>,
}

/// Runs the enrolled agent in `dir` until `stop` turns true, or until the server refuses the agent
/// (it was revoked): that ends the loop with the server's reason.
pub async fn run(dir: &Path, options: RunOptions, mut stop: watch::Receiver<bool>) -> Result<(), AgentError> {
    let config = AgentConfig::load(dir)?;
    let keys = Arc::new(AgentKeys::load(&dir.join(KEYS_FILE))?);
    let connection = Connection {
        server: config.server.clone(),
        ca_files: config.ca_files.clone(),
        bind_address: config.bind_address,
    };
    let extra_ca = connection.ca_pem()?;
    let client = Arc::new(Client::new(&connection, Some(Identity { agent_id: config.agent_id.clone(), keys }))?);
    let cache_key = store::Key::load_or_create_file(&dir.join(CACHE_KEY_FILE))
        .map_err(|e| AgentError::Config(format!("the agent's cache key: {e}")))?;
    let cache = store::open(&dir.join(CACHE_DB).to_string_lossy(), cache_key)
        .await
        .map_err(|e| AgentError::Config(format!("the agent's token cache: {e}")))?;
    let state = Arc::new(State {
        name: format!("agent {} (pool {})", config.name, config.pool),
        started_at: Utc::now(),
        bind_address: config.bind_address,
        in_flight: AtomicU32::new(0),
        last_job: Mutex::new(None),
        egress: Mutex::new(None),
        microsoft: Mutex::new(None),
    });
    tracing::info!(agent = %config.agent_id, name = %config.name, pool = %config.pool, server = %config.server, "agent started");

    let (fatal_tx, mut fatal_rx) = watch::channel::<Option<String>>(None);
    let heartbeats = tokio::spawn(heartbeat_loop(
        client.clone(),
        state.clone(),
        extra_ca.clone(),
        options.heartbeat,
        stop.clone(),
        fatal_tx.clone(),
    ));
    let result = loop {
        if *stop.borrow() {
            break Ok(());
        }
        if let Some(reason) = fatal_rx.borrow().clone() {
            break Err(AgentError::Config(reason));
        }
        let wait = options.wait.as_secs().min(MAX_WAIT_SECONDS);
        let request = ClaimRequest { wait_seconds: wait };
        let claim = client.post::<_, ClaimedJob>("/claim", &request, Duration::from_secs(wait + 15));
        let claimed = tokio::select! {
            c = claim => c,
            _ = stop.changed() => continue,
            _ = fatal_rx.changed() => continue,
        };
        match claimed {
            Ok(Some(job)) => {
                run_job(&client, &cache, &state, &extra_ca, &options, job, stop.clone()).await;
            }
            Ok(None) => {}
            Err(e) if e.is_unauthorized() => {
                let _ = fatal_tx.send(Some(format!("the server no longer accepts this agent: {e}")));
            }
            Err(e) => {
                tracing::warn!(error = %e, "no job could be claimed; trying again shortly");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    };
    heartbeats.abort();
    cache.close().await;
    result
}

async fn heartbeat_loop(
    client: Arc<Client>,
    state: Arc<State>,
    extra_ca: Option<Vec<u8>>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    fatal: watch::Sender<Option<String>>,
) {
    loop {
        let microsoft = state.microsoft.lock().map(|m| m.clone()).unwrap_or(None);
        let (login, graph) = match &microsoft {
            Some(m) => {
                let mut ca = m.ca_pem.clone().map(String::into_bytes).unwrap_or_default();
                if let Some(extra) = &extra_ca {
                    ca.extend_from_slice(extra);
                }
                let ca = (!ca.is_empty()).then_some(ca);
                (
                    Some(client.probe(&m.login_url, ca.as_deref()).await),
                    Some(client.probe(&m.graph_url, ca.as_deref()).await),
                )
            }
            None => (None, None),
        };
        let health = Health {
            version: crate::VERSION.to_string(),
            started_at: state.started_at,
            now: Utc::now(),
            bind_address: state.bind_address.map(|a| a.to_string()),
            egress_address: state.egress.lock().map(|e| e.clone()).unwrap_or(None),
            login,
            graph,
            last_job: state.last_job.lock().map(|l| l.clone()).unwrap_or(None),
            jobs_in_flight: state.in_flight.load(Ordering::Relaxed),
        };
        match client.post::<_, HeartbeatResponse>("/heartbeat", &health, Duration::from_secs(30)).await {
            Ok(Some(answer)) => {
                client.observe_server_time(answer.server_time);
                if let Some(why) = &answer.upgrade {
                    tracing::warn!(reason = %why, "the server asks for this agent to be upgraded");
                }
            }
            Ok(None) => {}
            Err(e) if e.is_unauthorized() => {
                tracing::error!(error = %e, "the server refused this agent's heartbeat");
                let _ = fatal.send(Some(format!("the server no longer accepts this agent: {e}")));
                return;
            }
            Err(e) => tracing::warn!(error = %e, "the heartbeat did not reach the server"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

fn cloud_of(m: &MicrosoftWire, extra_ca: &Option<Vec<u8>>) -> Result<microsoft::Cloud, String> {
    let parse = |u: &str, what: &str| url::Url::parse(u).map_err(|e| format!("the job's {what} URL {u:?}: {e}"));
    let mut ca = m.ca_pem.clone().map(String::into_bytes).unwrap_or_default();
    if let Some(extra) = extra_ca {
        ca.extend_from_slice(extra);
    }
    Ok(microsoft::Cloud {
        name: m.cloud.clone(),
        login_url: parse(&m.login_url, "login")?,
        graph_url: parse(&m.graph_url, "Graph")?,
        graph_resource: m.graph_resource.clone(),
        ca_pem: (!ca.is_empty()).then_some(ca),
        ca_file: None,
    })
}

async fn run_job(
    client: &Arc<Client>,
    cache: &Arc<dyn store::Store>,
    state: &Arc<State>,
    extra_ca: &Option<Vec<u8>>,
    options: &RunOptions,
    claimed: ClaimedJob,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(job = %claimed.id, kind = %claimed.kind, attempt = claimed.attempts, "job claimed");
    state.in_flight.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut m) = state.microsoft.lock() {
        *m = Some(claimed.microsoft.clone());
    }
    let outcome = work(client, cache, extra_ca, options, &claimed, &state.name, &mut stop).await;
    state.in_flight.fetch_sub(1, Ordering::Relaxed);
    let Some(outcome) = outcome else { return };
    let (status, error) = match &outcome {
        Finish::Succeeded { .. } => ("succeeded", None),
        Finish::Failed { error } => ("failed", Some(error.clone())),
        Finish::Cancelled => ("cancelled", None),
    };
    let request = FinishRequest { fence: claimed.fence, outcome };
    match client.post::<_, Value>(&format!("/jobs/{}/finish", claimed.id), &request, Duration::from_secs(30)).await {
        Ok(_) => tracing::info!(job = %claimed.id, status, "job finished"),
        Err(e) => tracing::warn!(job = %claimed.id, error = %e, "the job's end could not be recorded"),
    }
    if let Ok(mut last) = state.last_job.lock() {
        *last = Some(LastJob { id: claimed.id.clone(), status: status.to_string(), finished_at: Utc::now(), error });
    }
    // The address Microsoft saw: the `ipaddr` claim of the newest token this agent obtained.
    if let Ok(tokens) = microsoft::cache::TokenStore::list(&inspect::StoreTokens { store: cache.clone() }).await {
        let newest = tokens
            .into_iter()
            .filter_map(|t| Some((t.issued_at, t.claims?.ipaddr?)))
            .max_by_key(|(at, _)| *at)
            .map(|(_, ip)| ip);
        if let (Some(ip), Ok(mut egress)) = (newest, state.egress.lock()) {
            *egress = Some(ip);
        }
    }
}

/// Runs the job while renewing its lease; `None` when the lease was lost or the agent is
/// stopping (then the attempt is not reported: another agent resumes the job).
async fn work(
    client: &Arc<Client>,
    cache: &Arc<dyn store::Store>,
    extra_ca: &Option<Vec<u8>>,
    options: &RunOptions,
    claimed: &ClaimedJob,
    name: &str,
    stop: &mut watch::Receiver<bool>,
) -> Option<Finish> {
    let identity = client.identity()?;
    let prepared = async {
        let bytes = identity.keys.unseal(&claimed.sealed).map_err(|e| e.to_string())?;
        let bundle: SecretBundle =
            serde_json::from_slice(&bytes).map_err(|e| format!("the job's sealed secrets are malformed: {e}"))?;
        let cloud = cloud_of(&claimed.microsoft, extra_ca)?;
        let tokens = AgentTokens::new(cache.clone(), client.clone(), &claimed.id, claimed.fence, bundle.tokens)
            .await
            .map_err(|e| e.to_string())?;
        let history = match &claimed.history {
            Some(h) => Some(serde_json::from_value(h.clone()).map_err(|e| format!("the job's history options: {e}"))?),
            None => None,
        };
        Ok::<_, String>(Executor {
            name: name.to_string(),
            store: Arc::new(RemoteStore::new(client.clone(), claimed.id.clone(), claimed.fence)),
            tokens: Arc::new(tokens),
            microsoft: Microsoft {
                cloud,
                client_id: claimed.microsoft.client_id.clone(),
                local_address: identity_bind(client),
            },
            history,
            concurrency: options.concurrency,
            // The server's store takes the document whole over the network.
            trees: true,
        })
    };
    let executor = match prepared.await {
        Ok(e) => e,
        Err(error) => return Some(Finish::Failed { error }),
    };
    let job = Job {
        id: claimed.id.clone(),
        kind: claimed.kind.clone(),
        params: claimed.params.clone(),
        lease: store::JobLease { job_id: claimed.id.clone(), fence: claimed.fence, owner: identity.agent_id.clone() },
    };
    let progress = Arc::new(Progress::default());
    let run = executor.execute(&job, progress.clone());
    tokio::pin!(run);
    let mut ticker = tokio::time::interval(Duration::from_secs(claimed.heartbeat_seconds.max(1)));
    ticker.tick().await;
    let executed = loop {
        tokio::select! {
            executed = &mut run => break executed,
            _ = ticker.tick() => {
                let beat = JobHeartbeat { fence: claimed.fence, progress: progress.value() };
                match client.post::<_, JobHeartbeatResponse>(&format!("/jobs/{}/heartbeat", claimed.id), &beat, Duration::from_secs(30)).await {
                    Ok(Some(answer)) if answer.cancel => {
                        tracing::info!(job = %claimed.id, "job cancelled by an operator");
                        return Some(Finish::Cancelled);
                    }
                    Ok(_) => {}
                    Err(e) if e.code() == Some("fenced") || e.is_unauthorized() => {
                        tracing::warn!(job = %claimed.id, error = %e, "this agent lost the job's lease; its work is dropped");
                        return None;
                    }
                    Err(e) => tracing::warn!(job = %claimed.id, error = %e, "the job's lease could not be renewed"),
                }
            }
            _ = stop.changed() => {
                tracing::warn!(job = %claimed.id, "stopping: the job is left to another agent once its lease expires");
                return None;
            }
        }
    };
    Some(match executed.result {
        Ok(mut result) => {
            if let Some(har) = executed.trace {
                let text = serde_json::to_vec(&har.to_json()).unwrap_or_default();
                let sent = client
                    .put_bytes(&format!("/jobs/{}/trace?fence={}", claimed.id, claimed.fence), text)
                    .await
                    .map_err(|e| format!("the debug trace could not be sent to the server: {e}"));
                result["trace"] = trace_summary(&claimed.id, sent, har.len());
            }
            Finish::Succeeded { result }
        }
        Err(error) => Finish::Failed { error },
    })
}

fn identity_bind(client: &Client) -> Option<IpAddr> {
    client.bind_address()
}

/// A description of the enrolled agent, for `agent status`.
pub fn describe(dir: &Path) -> Result<Value, AgentError> {
    let config = AgentConfig::load(dir)?;
    Ok(json!({
        "server": config.server,
        "agent_id": config.agent_id,
        "name": config.name,
        "pool": config.pool,
        "ca_files": config.ca_files,
        "bind_address": config.bind_address,
        "directory": dir,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_cloud_adds_the_agents_own_ca() {
        let m = MicrosoftWire {
            cloud: "sim".into(),
            login_url: "https://127.0.0.1:8443".into(),
            graph_url: "https://127.0.0.1:8443".into(),
            graph_resource: "https://graph.microsoft.com".into(),
            ca_pem: Some("SERVER-CA\n".into()),
            client_id: "c".into(),
        };
        let cloud = cloud_of(&m, &Some(b"AGENT-CA\n".to_vec())).expect("cloud");
        assert_eq!(cloud.ca_pem.as_deref(), Some(&b"SERVER-CA\nAGENT-CA\n"[..]));
        let bad = MicrosoftWire { login_url: "not a url".into(), ..m };
        assert!(cloud_of(&bad, &None).is_err());
    }
}
