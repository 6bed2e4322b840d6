//! Jobs and the worker that runs them.
//!
//! A job is a row in the store ([`store::JobStore`]); any worker of its pool may claim it. The
//! worker renews its lease while it works and saves its progress with each renewal; when the lease
//! is lost (the worker stalled and another claimed the job) or an operator cancels the job, the
//! work is dropped at once. A job's tenant results are fenced by the store, so a worker that lost
//! its lease cannot commit anything, and a later attempt skips the tenants already committed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use microsoft::graph::{GraphClient, GraphOptions};
use microsoft::har::HarRecorder;
use microsoft::http::{Transport, TransportOptions};
use microsoft::{Authenticator, Cloud};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{JobLease, JobOutcome, JobRecord, NewJob, Store};
use tokio::sync::watch;
use utoipa::ToSchema;

/// What a job of kind `inspect` is asked to do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InspectParams {
    /// Tenant ids, domains or names; empty means every tenant.
    pub tenants: Vec<String>,
    /// Forget the tenants' cached access tokens first.
    pub clear_cache: bool,
    /// Ignore freshness windows and delta links.
    pub full: bool,
    /// Record a redacted HTTP trace (HAR), downloadable for a week.
    pub debug: bool,
}

/// What a job of kind `doctor` is asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoctorParams {
    /// The tenant (id, domain or name); the partner's own when absent.
    pub tenant: Option<String>,
}

/// The job kinds a worker runs.
pub const KINDS: &[&str] = &["inspect", "doctor"];

/// Checks a job's parameters before it is queued, so that a bad request fails at once rather
/// than on a worker.
pub fn validate(kind: &str, params: &Value) -> Result<(), String> {
    match kind {
        "inspect" => serde_json::from_value::<InspectParams>(params.clone()).map(|_| ()).map_err(|e| e.to_string()),
        "doctor" => serde_json::from_value::<DoctorParams>(params.clone()).map(|_| ()).map_err(|e| e.to_string()),
        other => Err(format!("unknown job kind {other:?}; expected one of {}", KINDS.join(", "))),
    }
}

/// A job to queue with the worker's defaults.
pub fn new_job(kind: &str, params: Value, pool: &str, max_attempts: i64, created_by: &str) -> NewJob {
    NewJob {
        kind: kind.to_string(),
        params,
        pool: pool.to_string(),
        max_attempts,
        not_before: Utc::now(),
        created_by: created_by.to_string(),
    }
}

/// Where a job's debug trace is kept.
pub fn trace_path(data_dir: &std::path::Path, job_id: &str) -> Option<PathBuf> {
    // The id comes from the store, but it names a file: anything but a UUID is refused.
    uuid::Uuid::parse_str(job_id).ok()?;
    Some(data_dir.join("debug").join(format!("job-{job_id}.har")))
}

/// The client id of a server that has no app configured yet.
pub const NO_APP: &str = "00000000-0000-0000-0000-000000000000";

/// What the worker needs to reach Microsoft.
#[derive(Clone)]
pub struct Microsoft {
    pub cloud: Cloud,
    pub client_id: String,
}

impl Microsoft {
    /// An authenticator on the store's token cache, recording into `har` when given.
    pub fn authenticator(
        &self,
        store: &Arc<dyn Store>,
        har: Option<Arc<HarRecorder>>,
    ) -> Result<Authenticator, String> {
        let transport = Transport::new(&self.cloud, TransportOptions::default(), har).map_err(|e| e.to_string())?;
        Ok(Authenticator::new(
            self.cloud.clone(),
            transport,
            Arc::new(inspect::StoreTokens { store: store.clone() }),
            &self.client_id,
        ))
    }
}

/// Everything a run needs besides the job.
#[derive(Clone)]
pub struct Executor {
    pub store: Arc<dyn Store>,
    pub microsoft: Microsoft,
    pub history: Option<inspect::run::HistoryOptions>,
    pub data_dir: PathBuf,
    pub concurrency: usize,
}

/// Progress of a run, saved with each lease renewal.
#[derive(Default)]
struct Progress {
    planned: AtomicUsize,
    done: AtomicUsize,
    failed: AtomicUsize,
    last: std::sync::Mutex<Option<String>>,
}

impl Progress {
    fn value(&self) -> Value {
        let last = self.last.lock().map(|l| l.clone()).unwrap_or(None);
        json!({
            "planned": self.planned.load(Ordering::Relaxed),
            "done": self.done.load(Ordering::Relaxed),
            "failed": self.failed.load(Ordering::Relaxed),
            "last_tenant": last,
        })
    }
}

impl inspect::Observer for Progress {
    fn planned(&self, tenants: usize) {
        self.planned.store(tenants, Ordering::Relaxed);
    }

    fn tenant_done(&self, result: &inspect::TenantSummary) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if result.status == inspect::dataprint::Status::Failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(result.shown_name());
        }
    }
}

impl Executor {
    fn authenticator(&self, har: Option<Arc<HarRecorder>>) -> Result<Arc<Authenticator>, String> {
        self.microsoft.authenticator(&self.store, har).map(Arc::new)
    }

    /// Runs one attempt of a job; the result is the job's `result`, the error its `last_error`.
    async fn execute(&self, job: &JobRecord, lease: &JobLease, progress: Arc<Progress>) -> Result<Value, String> {
        match job.kind.as_str() {
            "inspect" => self.inspect(job, lease, progress).await,
            "doctor" => self.doctor(job).await,
            other => Err(format!("this worker does not know jobs of kind {other:?}")),
        }
    }

    async fn inspect(&self, job: &JobRecord, lease: &JobLease, progress: Arc<Progress>) -> Result<Value, String> {
        let params: InspectParams =
            serde_json::from_value(job.params.clone()).map_err(|e| format!("bad parameters: {e}"))?;
        let har = params.debug.then(|| Arc::new(HarRecorder::new()));
        let auth = self.authenticator(har.clone())?;
        let graph = GraphClient::new(auth, GraphOptions::default());
        let runner = inspect::Runner::new(
            graph,
            self.store.clone(),
            inspect::RunOptions {
                tenants: params.tenants.clone(),
                full: params.full,
                clear_cache: params.clear_cache,
                concurrency: self.concurrency,
                cloud: Some(self.microsoft.cloud.name.clone()),
                history: self.history.clone(),
                job: Some(lease.clone()),
            },
        )
        .with_observer(progress);
        let result = runner.run().await;
        let trace = match (&har, trace_path(&self.data_dir, &job.id)) {
            (Some(h), Some(path)) => {
                let written = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| h.write(&path))
                    .map_err(|e| format!("the debug trace could not be written to {}: {e}", path.display()));
                Some((written, h.len()))
            }
            _ => None,
        };
        let report = result.map_err(|e| e.to_string())?;
        let causes: Vec<Value> = report
            .tenants
            .iter()
            .chain(report.partner.iter())
            .filter_map(|t| {
                t.diagnosis
                    .as_ref()
                    .map(|d| json!({"tenant_id": t.tenant_id, "tenant": t.shown_name(), "cause": d.cause}))
            })
            .collect();
        let mut out = json!({
            "run_id": report.run_id,
            "tenants": report.tenants.len(),
            "partner": report.partner.as_ref().map(|p| p.status.as_str()),
            "ok": report.stats["ok"],
            "partial": report.stats["partial"],
            "failed": report.stats["failed"],
            "graph_requests": report.stats["graph_requests"],
            "new_customers": report.new_customers,
            "lost_customers": report.lost_customers,
            "causes": causes,
        });
        if let Some((written, exchanges)) = trace {
            out["trace"] = match written {
                Ok(()) => json!({"exchanges": exchanges, "download": format!("/api/v1/jobs/{}/trace", job.id)}),
                Err(e) => json!({"error": e}),
            };
        }
        Ok(out)
    }

    async fn doctor(&self, job: &JobRecord) -> Result<Value, String> {
        let params: DoctorParams =
            serde_json::from_value(job.params.clone()).map_err(|e| format!("bad parameters: {e}"))?;
        let auth = self.authenticator(None)?;
        let graph = GraphClient::new(auth.clone(), GraphOptions::default());
        let partner = auth.account().await.map_err(|e| e.to_string())?;
        let partner_tenant = partner.as_ref().map(|p| store::TenantId::new(&p.home_tenant));
        let query = match (&params.tenant, &partner) {
            (Some(t), _) => t.clone(),
            (None, Some(p)) => p.home_tenant.clone(),
            (None, None) => return Err("no partner account is signed in, and no tenant was named".into()),
        };
        let resolved = inspect::access::resolve(self.store.as_ref(), &auth, &query).await.map_err(|e| e.to_string())?;
        let report = inspect::doctor::Doctor {
            graph: &graph,
            clock: &inspect::SystemClock,
            access: &resolved.access,
            display_name: &resolved.display_name,
            partner_tenant: partner_tenant.as_ref(),
            partner_claims: partner.as_ref().and_then(|p| p.claims.as_ref()),
        }
        .run()
        .await;
        serde_json::to_value(&report).map_err(|e| e.to_string())
    }
}

/// How long to wait before retrying a job that failed `attempts` times: 30 s, doubling, at most
/// 30 minutes.
pub fn backoff(attempts: i64) -> chrono::Duration {
    let exponent = attempts.clamp(1, 7) - 1;
    chrono::Duration::seconds((30i64 << exponent).min(1800))
}

/// The worker: claims jobs of its pool one at a time and runs them.
pub struct Worker {
    pub executor: Executor,
    pub owner: String,
    pub pool: String,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub poll: Duration,
}

impl Worker {
    /// Claims and runs jobs until `stop` turns true; then lets the job in hand run for at most
    /// `drain` before dropping it (its lease then expires and another worker resumes it).
    pub async fn run(self, mut stop: watch::Receiver<bool>, drain: Duration) {
        loop {
            if *stop.borrow() {
                return;
            }
            let lease = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(60));
            let claimed = self.executor.store.claim_job(&self.owner, &self.pool, Utc::now(), lease).await;
            match claimed {
                Ok(Some(job)) => self.run_job(job, stop.clone(), drain).await,
                Ok(None) => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.poll) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the worker could not claim a job; it tries again shortly");
                    tokio::select! {
                        _ = tokio::time::sleep(self.poll.max(Duration::from_secs(1))) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    async fn run_job(&self, job: JobRecord, mut stop: watch::Receiver<bool>, drain: Duration) {
        let Some(lease) = job.lease() else { return };
        tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempts, "job claimed");
        let progress = Arc::new(Progress::default());
        let work = self.executor.execute(&job, &lease, progress.clone());
        tokio::pin!(work);
        let lease_for = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(60));
        let mut ticker = tokio::time::interval(self.heartbeat);
        ticker.tick().await;
        let mut deadline: Option<tokio::time::Instant> = None;
        let outcome = loop {
            let drain_at = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = &mut work => {
                    break Some(match result {
                        Ok(value) => JobOutcome::Succeeded(value),
                        Err(error) => JobOutcome::Failed { error, retry_at: Utc::now() + backoff(job.attempts) },
                    });
                }
                _ = ticker.tick() => {
                    let value = progress.value();
                    match self.executor.store.heartbeat_job(&lease, Utc::now(), lease_for, Some(&value)).await {
                        Ok(current) if current.cancel_requested_at.is_some() => {
                            tracing::info!(job = %job.id, "job cancelled by an operator");
                            break Some(JobOutcome::Cancelled);
                        }
                        Ok(_) => {}
                        Err(store::StoreError::Fenced { .. }) => {
                            tracing::warn!(job = %job.id, "this worker lost the job's lease; its work is dropped");
                            break None;
                        }
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "the job's lease could not be renewed"),
                    }
                }
                _ = stop.changed(), if deadline.is_none() => {
                    tracing::info!(job = %job.id, seconds = drain.as_secs(), "shutting down: the job in hand may finish first");
                    deadline = Some(tokio::time::Instant::now() + drain);
                }
                _ = drain_at => {
                    tracing::warn!(job = %job.id, "shutting down: the job did not finish in time; its lease will expire and another worker resumes it");
                    break None;
                }
            }
        };
        let Some(outcome) = outcome else { return };
        match self.executor.store.finish_job(&lease, &outcome, Utc::now()).await {
            Ok(done) => tracing::info!(job = %done.id, status = %done.status, "job finished"),
            Err(e) => tracing::warn!(job = %job.id, error = %e, "the job's end could not be recorded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_half_an_hour() {
        assert_eq!(backoff(1), chrono::Duration::seconds(30));
        assert_eq!(backoff(2), chrono::Duration::seconds(60));
        assert_eq!(backoff(7), chrono::Duration::seconds(1800));
        assert_eq!(backoff(100), chrono::Duration::seconds(1800));
        assert_eq!(backoff(-3), chrono::Duration::seconds(30));
    }

    #[test]
    fn parameters_are_checked_before_queueing() {
        assert!(validate("inspect", &json!({"tenants": ["contoso.com"], "clear_cache": true})).is_ok());
        assert!(validate("inspect", &json!({"tenants": "contoso.com"})).is_err());
        assert!(validate("inspect", &json!({"tennants": []})).is_err());
        assert!(validate("doctor", &json!({"tenant": "contoso.com"})).is_ok());
        assert!(validate("reboot", &json!({})).is_err());
    }

    #[test]
    fn trace_paths_only_name_job_ids() {
        let dir = std::path::Path::new("/data");
        assert!(trace_path(dir, "../../etc/passwd").is_none());
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(trace_path(dir, &id), Some(dir.join("debug").join(format!("job-{id}.har"))));
    }
}
