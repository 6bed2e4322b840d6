//! Running one attempt of a job. The same code runs in the server's in-process worker (on the
//! store itself) and on a remote agent (on the server's store through the agent API): the local
//! worker is simply an agent that runs in-process.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use microsoft::cache::TokenStore;
use microsoft::graph::{GraphClient, GraphOptions};
use microsoft::har::HarRecorder;
use microsoft::http::{Transport, TransportOptions};
use microsoft::{Authenticator, Cloud};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::JobLease;
use utoipa::ToSchema;

use inspect::InspectStore;

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

/// What a worker needs to reach Microsoft.
#[derive(Clone)]
pub struct Microsoft {
    pub cloud: Cloud,
    pub client_id: String,
    /// The local address to connect from (an agent's `--bind-address`).
    pub local_address: Option<IpAddr>,
}

impl Microsoft {
    /// An authenticator on `tokens`, recording into `har` when given.
    pub fn authenticator(
        &self,
        tokens: Arc<dyn TokenStore>,
        har: Option<Arc<HarRecorder>>,
    ) -> Result<Authenticator, String> {
        let options = TransportOptions { local_address: self.local_address, ..TransportOptions::default() };
        let transport = Transport::new(&self.cloud, options, har).map_err(|e| e.to_string())?;
        Ok(Authenticator::new(self.cloud.clone(), transport, tokens, &self.client_id))
    }
}

/// Progress of a run, saved with each lease renewal.
#[derive(Default)]
pub struct Progress {
    planned: AtomicUsize,
    done: AtomicUsize,
    failed: AtomicUsize,
    last: std::sync::Mutex<Option<String>>,
    /// A doctor job's checks so far, each as its report writes it.
    checks: std::sync::Mutex<Vec<Value>>,
}

impl Progress {
    pub fn value(&self) -> Value {
        let last = self.last.lock().map(|l| l.clone()).unwrap_or(None);
        let mut v = json!({
            "planned": self.planned.load(Ordering::Relaxed),
            "done": self.done.load(Ordering::Relaxed),
            "failed": self.failed.load(Ordering::Relaxed),
            "last_tenant": last,
        });
        if let Ok(checks) = self.checks.lock()
            && !checks.is_empty()
        {
            v["checks"] = Value::Array(checks.clone());
        }
        v
    }

    /// A doctor check ended: one more of the six done, and what it found.
    fn check_done(&self, result: &inspect::doctor::CheckResult) {
        self.planned.store(6, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
        if result.status == inspect::doctor::CheckStatus::Fail {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let (Ok(mut checks), Ok(v)) = (self.checks.lock(), serde_json::to_value(result)) {
            checks.push(v);
        }
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

/// The job as an executor needs it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub params: Value,
    pub lease: JobLease,
}

/// How an attempt ended: its result or error, and the trace it recorded when asked to.
pub struct Executed {
    pub result: Result<Value, String>,
    pub trace: Option<Arc<HarRecorder>>,
}

/// Everything a run needs besides the job.
pub struct Executor<S: ?Sized> {
    /// What runs the job, as the doctor's sixth check names it (`agent dc1-a`, `the server's worker`).
    pub name: String,
    pub store: Arc<S>,
    pub tokens: Arc<dyn TokenStore>,
    pub microsoft: Microsoft,
    pub history: Option<inspect::run::HistoryOptions>,
    pub concurrency: usize,
    /// Whether runs build every collection as a tree ([`inspect::RunOptions::trees`]): for a store
    /// reached over the network.
    pub trees: bool,
}

impl<S: ?Sized> Clone for Executor<S> {
    fn clone(&self) -> Self {
        Executor {
            name: self.name.clone(),
            store: self.store.clone(),
            tokens: self.tokens.clone(),
            microsoft: self.microsoft.clone(),
            history: self.history.clone(),
            concurrency: self.concurrency,
            trees: self.trees,
        }
    }
}

impl<S: InspectStore + ?Sized + 'static> Executor<S> {
    fn authenticator(&self, har: Option<Arc<HarRecorder>>) -> Result<Arc<Authenticator>, String> {
        self.microsoft.authenticator(self.tokens.clone(), har).map(Arc::new)
    }

    /// Runs one attempt of a job.
    pub async fn execute(&self, job: &Job, progress: Arc<Progress>) -> Executed {
        match job.kind.as_str() {
            "inspect" => self.inspect(job, progress).await,
            "doctor" => Executed { result: self.doctor(job, progress).await, trace: None },
            other => Executed { result: Err(format!("this worker does not know jobs of kind {other:?}")), trace: None },
        }
    }

    async fn inspect(&self, job: &Job, progress: Arc<Progress>) -> Executed {
        let params: InspectParams = match serde_json::from_value(job.params.clone()) {
            Ok(p) => p,
            Err(e) => return Executed { result: Err(format!("bad parameters: {e}")), trace: None },
        };
        let har = params.debug.then(|| Arc::new(HarRecorder::new()));
        let auth = match self.authenticator(har.clone()) {
            Ok(a) => a,
            Err(e) => return Executed { result: Err(e), trace: har },
        };
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
                job: Some(job.lease.clone()),
                trees: self.trees,
            },
        )
        .with_observer(progress);
        let result = runner.run().await.map_err(|e| e.to_string()).map(|report| {
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
            json!({
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
            })
        });
        Executed { result, trace: har }
    }

    async fn doctor(&self, job: &Job, progress: Arc<Progress>) -> Result<Value, String> {
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
            agent: Some(self.name.as_str()),
            on_check: Some(&|c: &inspect::doctor::CheckResult| progress.check_done(c)),
        }
        .run()
        .await;
        serde_json::to_value(&report).map_err(|e| e.to_string())
    }
}

/// What a job's result says about its trace once it is kept where the server serves it from.
pub fn trace_summary(job_id: &str, written: Result<(), String>, exchanges: usize) -> Value {
    match written {
        Ok(()) => json!({"exchanges": exchanges, "download": format!("/api/v1/jobs/{job_id}/trace")}),
        Err(e) => json!({"error": e}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doctors_checks_show_in_its_progress_as_each_ends() {
        let progress = Progress::default();
        assert!(progress.value().get("checks").is_none(), "an inspection's progress has no checks");
        let result = inspect::doctor::CheckResult {
            number: 1,
            check: inspect::doctor::Check::Mfa,
            title: "MFA",
            status: inspect::doctor::CheckStatus::Fail,
            summary: "no MFA claim".into(),
            evidence: vec![("amr".into(), "pwd".into())],
        };
        progress.check_done(&result);
        let v = progress.value();
        assert_eq!((v["planned"].as_u64(), v["done"].as_u64(), v["failed"].as_u64()), (Some(6), Some(1), Some(1)));
        assert_eq!(v["checks"][0]["summary"], "no MFA claim");
    }

    #[test]
    fn parameters_are_checked_before_queueing() {
        assert!(validate("inspect", &json!({"tenants": ["contoso.com"], "clear_cache": true})).is_ok());
        assert!(validate("inspect", &json!({"tenants": "contoso.com"})).is_err());
        assert!(validate("inspect", &json!({"tennants": []})).is_err());
        assert!(validate("doctor", &json!({"tenant": "contoso.com"})).is_ok());
        assert!(validate("reboot", &json!({})).is_err());
    }
}
