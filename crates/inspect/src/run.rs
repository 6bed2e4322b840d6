//! A run: the partner first (it says who the customers are), then every customer concurrently within
//! Graph's limits, each tenant's result committed on its own as soon as it is known, so that one
//! tenant's failure never stops another and an interrupted run keeps what it finished.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use microsoft::graph::GraphClient;
use microsoft::{AccountRole, Grant, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use store::{
    CollectorOutcomeRecord, DataprintId, DomainsOf, MetricsAt, OutcomeStatus as StoreOutcome, ReusedFrom, RunId, Store,
    TenantAuth, TenantId, TenantRecord, TenantRole, TenantRunRecord, TenantRunStatus, WithResult,
};

use crate::access;
use crate::child::{self, AuthMode, Child, ChildOptions, Outcome, OutcomeStatus, Previous, TenantResult, TenantTarget};
use crate::clock::{Clock, SystemClock};
use crate::dataprint::Status;
use crate::facts::GdapView;
use crate::partner::{self, PartnerResult};
use crate::storage::InspectStore;
use crate::turn::Workers;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Microsoft(#[from] microsoft::Error),
    #[error("nothing to inspect: sign in with `tenantscope login`, or add an app credential for a customer")]
    NothingToInspect,
    #[error("{0}")]
    Access(#[from] crate::access::AccessError),
}

/// Why one tenant's result could not be committed. The tenant is then reported failed with this as
/// its cause, and the run goes on with the others.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the database refused this tenant's result: {0}")]
    Store(#[from] store::StoreError),
    #[error("this tenant's result could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Tenants in flight for each one at work (see [`crate::turn`]). A tenant that waits on Conditional
/// Access's one request per second without its permit is one inspected for the first time, holding
/// its token, outcomes and the small reads of its batch, a few tens of kilobytes, so the cap is
/// generous.
const IN_FLIGHT_PER_WORKER: usize = 8;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tenant ids, domains or names to inspect; empty means every tenant.
    pub tenants: Vec<String>,
    pub full: bool,
    pub clear_cache: bool,
    /// Tenants worked on at the same time; up to eight times as many are in flight while some wait
    /// on Graph's pacing (see [`crate::turn`]).
    pub concurrency: usize,
    pub cloud: Option<String>,
    /// Metrics and alert rules evaluated after each tenant is committed; `None` records no history.
    pub history: Option<HistoryOptions>,
    /// The job this run works for (the platform's queue): the run commits only while the job's
    /// lease holds, and skips the tenants an earlier attempt of the job committed already.
    pub job: Option<store::JobLease>,
    /// Build every collection as a tree rather than writing those nothing reads from Graph's
    /// bytes ([`child::unparsed`]): a store reached over the network (an agent's) takes the
    /// document whole, so the bytes would only be parsed again to send it.
    pub trees: bool,
}

/// What history to record during a run.
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
pub struct HistoryOptions {
    pub metrics: Vec<history::Metric>,
    pub rules: Vec<history::AlertRule>,
    /// Where alert transitions are to be sent: a notification is queued in the store's outbox for
    /// each target that wants the alert's severity, in the tenant's commit.
    pub notify: Vec<NotifyTarget>,
}

/// A notification target, as far as queueing needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct NotifyTarget {
    pub name: String,
    pub min_severity: Option<store::Severity>,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions { metrics: history::builtin_metrics(), rules: Vec::new(), notify: Vec::new() }
    }
}

/// The history one tenant's commit produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TenantHistory {
    pub events: usize,
    pub opened: Vec<history::Alert>,
    pub resolved: Vec<history::Alert>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            tenants: Vec::new(),
            full: false,
            clear_cache: false,
            concurrency: 16,
            cloud: None,
            history: Some(HistoryOptions::default()),
            job: None,
            trees: false,
        }
    }
}

/// Progress of a run, for a live display.
pub trait Observer: Send + Sync {
    fn planned(&self, _tenants: usize) {}
    fn tenant_done(&self, _result: &TenantSummary) {}
    fn note(&self, _message: &str) {}
}

pub struct Silent;
impl Observer for Silent {}

/// What a run reports about one tenant (`inspect --json`).
#[derive(Debug, Clone, Serialize)]
pub struct TenantSummary {
    pub tenant_id: TenantId,
    pub display_name: String,
    /// The engineer's label for the tenant, shown beside its name.
    pub label: Option<String>,
    pub domain: Option<String>,
    pub auth: AuthMode,
    pub status: Status,
    pub collectors: Vec<CollectorSummary>,
    pub diagnosis: Option<DiagnosisSummary>,
    pub summary: Option<Value>,
    pub requests: u64,
    pub duration_ms: u64,
    pub dataprint_id: Option<String>,
    /// Change events and alerts this run recorded for the tenant.
    pub history: TenantHistory,
}

impl TenantSummary {
    /// The tenant's name as tenantscope shows it: its own name (its id while that is unknown), with
    /// the engineer's label beside it, never instead of it.
    pub fn shown_name(&self) -> String {
        let name = if self.display_name.is_empty() { self.tenant_id.to_string() } else { self.display_name.clone() };
        match self.label.as_deref() {
            Some(label) if !label.eq_ignore_ascii_case(&name) => format!("{name} [{label}]"),
            _ => name,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CollectorSummary {
    pub name: String,
    pub status: OutcomeStatus,
    pub items: Option<usize>,
    pub reason: Option<Value>,
    pub error: Option<Value>,
    pub diagnosis: Option<DiagnosisSummary>,
    pub mode: crate::child::Mode,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiagnosisSummary {
    pub cause: String,
    pub summary: String,
    pub fix: Vec<String>,
    pub check: String,
    pub confidence: f32,
    pub evidence: Vec<diagnose::Evidence>,
    pub docs: String,
}

impl From<&diagnose::Diagnosis> for DiagnosisSummary {
    fn from(d: &diagnose::Diagnosis) -> Self {
        DiagnosisSummary {
            cause: d.cause.id().to_string(),
            summary: d.summary.clone(),
            fix: d.fix.clone(),
            check: d.check.id().to_string(),
            confidence: d.confidence,
            evidence: d.evidence.clone(),
            docs: d.docs.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: RunId,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub partner: Option<TenantSummary>,
    pub tenants: Vec<TenantSummary>,
    pub new_customers: Vec<TenantId>,
    pub lost_customers: Vec<TenantId>,
    /// No tenant was known before this run.
    pub first_run: bool,
    pub warnings: Vec<diagnose::Warning>,
    pub stats: Value,
}

fn reason_value(o: &Outcome) -> Option<Value> {
    o.reason.as_ref().map(|r| json!({ "kind": r.kind, "detail": r.detail }))
}

fn outcome_summary(o: &Outcome) -> Result<CollectorSummary, serde_json::Error> {
    Ok(CollectorSummary {
        name: o.name.to_string(),
        status: o.status,
        items: o.items,
        reason: reason_value(o),
        error: o.error.as_ref().map(serde_json::to_value).transpose()?,
        diagnosis: o.diagnosis.as_ref().map(DiagnosisSummary::from),
        mode: o.mode,
    })
}

fn store_status(s: Status) -> TenantRunStatus {
    match s {
        Status::Ok => TenantRunStatus::Ok,
        Status::Partial => TenantRunStatus::Partial,
        Status::Failed => TenantRunStatus::Failed,
    }
}

fn store_outcome(run_id: &RunId, tenant: &TenantId, o: &Outcome) -> Result<CollectorOutcomeRecord, serde_json::Error> {
    Ok(CollectorOutcomeRecord {
        run_id: run_id.clone(),
        tenant_id: tenant.clone(),
        collector: o.name.to_string(),
        status: match o.status {
            OutcomeStatus::Ok => StoreOutcome::Ok,
            OutcomeStatus::Skipped => StoreOutcome::Skipped,
            OutcomeStatus::Failed => StoreOutcome::Failed,
        },
        items: o.items.map(|n| n as i64),
        reason: reason_value(o),
        error: o.error.as_ref().map(serde_json::to_value).transpose()?,
        diagnosis: o.diagnosis.as_ref().map(serde_json::to_value).transpose()?,
        requests: o.requests as i64,
        duration_ms: o.duration_ms as i64,
    })
}

/// Everything about one inspected tenant that is committed and reported, the partner's and a
/// customer's alike.
struct Inspected<'a> {
    tenant_id: &'a TenantId,
    display_name: String,
    label: Option<String>,
    domain: Option<String>,
    auth: AuthMode,
    status: Status,
    outcomes: &'a [Outcome],
    dataprint: Option<&'a Value>,
    diagnosis: Option<&'a diagnose::Diagnosis>,
    token_error: Option<&'a microsoft::Error>,
    /// The tenant's last good dataprint before this run, for its change history.
    previous: Option<&'a DataprintId>,
    /// The built-in metrics of the dataprint, computed once when it was summarised.
    metrics: &'a [history::MetricValue],
    delta_links: &'a [(String, String)],
    /// The collections moved unchanged from the previous dataprint, for the store.
    reused: Option<ReusedFrom>,
    /// The collections given as bytes, `null` in `dataprint` ([`child::unparsed`]).
    unparsed: &'a [store::UnparsedCollection],
    /// The tenant's record as this run knows it, written with its result.
    record: Option<TenantRecord>,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    requests: u64,
}

/// A tenant's metric values of this run, and those in effect before it.
struct Measured {
    before: Vec<history::MetricValue>,
    values: Vec<history::MetricValue>,
}

/// A run on a store: the database itself on the command line and in the server's worker
/// (`Runner<dyn Store>`, the default), or the server's agent API on an agent.
pub struct Runner<S: ?Sized = dyn Store> {
    pub graph: GraphClient,
    pub store: Arc<S>,
    pub options: RunOptions,
    pub observer: Arc<dyn Observer>,
    pub clock: Arc<dyn Clock>,
}

/// The tenants a run inspects, and how it reaches each.
struct Plan {
    targets: Vec<TenantTarget>,
    secrets: Vec<diagnose::SecretInfo>,
    /// Selected tenants whose stored app credential cannot be decrypted: each fails on its own,
    /// with the cause and the fix, instead of failing the run.
    unreadable: Vec<store::AppCredentialMeta>,
}

impl<S: InspectStore + ?Sized + 'static> Runner<S> {
    /// A runner on the system clock that reports nothing while it runs.
    pub fn new(graph: GraphClient, store: Arc<S>, options: RunOptions) -> Runner<S> {
        Runner { graph, store, options, observer: Arc::new(Silent), clock: Arc::new(SystemClock) }
    }

    /// A runner sharing this one's client, store, options, observer and clock, to move into tasks.
    fn share(&self) -> Runner<S> {
        Runner {
            graph: self.graph.clone(),
            store: self.store.clone(),
            options: self.options.clone(),
            observer: self.observer.clone(),
            clock: self.clock.clone(),
        }
    }

    /// Reports progress to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Runner<S> {
        self.observer = observer;
        self
    }

    /// Reads the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Runner<S> {
        self.clock = clock;
        self
    }

    /// The tenants the run is limited to (`--tenant`), each query resolved as every command resolves
    /// it: by id, verified domain or display name. `None` means every tenant. Called once the
    /// partner's view of its customers is stored, so that a new customer is found too.
    async fn selection(&self, accounts: &[microsoft::Account]) -> Result<Option<HashSet<TenantId>>, RunError> {
        if self.options.tenants.is_empty() {
            return Ok(None);
        }
        let mut selected = HashSet::new();
        for query in &self.options.tenants {
            let found = match access::find_record(self.store.as_ref(), query).await? {
                Some(record) => Some(record),
                None => access::discover(self.store.as_ref(), &self.graph.auth, query).await?,
            };
            if let Some(record) = found {
                selected.insert(record.id);
                continue;
            }
            let as_id = TenantId::new(query);
            let direct = accounts.iter().find(|a| {
                as_id == a.home_tenant.as_str()
                    || a.upn
                        .as_deref()
                        .and_then(|u| u.rsplit_once('@'))
                        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(query.trim()))
            });
            match direct {
                Some(a) => selected.insert(TenantId::new(&a.home_tenant)),
                None => return Err(access::AccessError::NotFound(query.trim().to_string()).into()),
            };
        }
        Ok(Some(selected))
    }

    /// Runs the partner inspection and every customer's, committing as it goes.
    pub async fn run(&self) -> Result<RunReport, RunError> {
        let started = self.clock.now();
        let (run, done) = match &self.options.job {
            Some(lease) => {
                let run = self.store.start_job_run(lease, "inspect", started).await?;
                let done: HashSet<TenantId> = self.store.job_tenants(&lease.job_id).await?.into_iter().collect();
                (run, done)
            }
            None => (self.store.start_run("inspect", started).await?, HashSet::new()),
        };
        let auth = self.graph.auth.clone();
        let accounts = auth.accounts().await?;
        let partner_account = accounts.iter().find(|a| a.role == AccountRole::Partner).cloned();
        let known: HashMap<TenantId, TenantRecord> =
            self.store.list_tenants().await?.into_iter().map(|t| (t.id.clone(), t)).collect();
        let mut partner_summary = None;
        let mut customers: Vec<partner::Customer> = Vec::new();
        let mut new_customers = Vec::new();
        let mut lost_customers = Vec::new();
        let mut partner_claims = None;

        if let Some(account) = &partner_account {
            let partner_id = TenantId::new(&account.home_tenant);
            // The partner's last good dataprint, read once: for the assignments it can reuse, and
            // for its id, which the commit below is compared with.
            let (reuse, read_before) = if self.options.full {
                (None, None)
            } else {
                let last = self.store.last_good_dataprint(&partner_id).await?;
                let id = last.as_ref().map(|(meta, _)| meta.id.clone());
                (
                    last.and_then(|(_, dp)| partner::reusable_assignments(&dp, self.clock.now())),
                    Some((partner_id.clone(), id)),
                )
            };
            let requests_before = self.graph.requests_for(partner_id.as_str());
            let p: PartnerResult = partner::inspect_partner(
                &self.graph,
                self.clock.as_ref(),
                partner_id.as_str(),
                self.options.cloud.as_deref(),
                reuse,
            )
            .await;
            partner_claims = p.token.as_ref().and_then(|t| t.claims.clone()).or_else(|| account.claims.clone());
            let now = self.clock.now();
            let partner_id = TenantId::new(&p.tenant_id);
            let partner_domain = account.upn.as_deref().and_then(|u| u.split_once('@')).map(|(_, d)| d.to_string());
            let partner_name =
                if p.display_name.is_empty() { "Partner tenant".to_string() } else { p.display_name.clone() };
            self.store
                .upsert_tenant(&TenantRecord {
                    id: partner_id.clone(),
                    domain: partner_domain.clone(),
                    display_name: partner_name.clone(),
                    role: TenantRole::Partner,
                    auth: TenantAuth::Partner,
                    first_seen: now,
                    last_seen: now,
                    gone_since: None,
                    gdap: None,
                    label: None,
                })
                .await?;
            let previous = match read_before {
                Some((read_for, id)) if read_for == partner_id => id,
                _ => self.store.last_good_dataprint(&partner_id).await?.map(|(m, _)| m.id),
            };
            // An earlier attempt of this run's job committed the partner already: its customers
            // are still read (above) so that the plan is complete, but its result is not committed
            // twice.
            let summary = if done.contains(&partner_id) {
                None
            } else {
                Some(
                    self.finish_tenant(
                        &run.id,
                        Inspected {
                            tenant_id: &partner_id,
                            display_name: partner_name,
                            label: known.get(&partner_id).and_then(|t| t.label.clone()),
                            domain: partner_domain,
                            auth: AuthMode::Partner,
                            status: p.status,
                            outcomes: &p.outcomes,
                            dataprint: p.dataprint.as_ref(),
                            diagnosis: p.diagnosis.as_ref(),
                            token_error: p.token_error.as_ref(),
                            previous: previous.as_ref(),
                            metrics: &p.metrics,
                            delta_links: &[],
                            reused: None,
                            // Upserted above, also when its result is not committed again.
                            record: None,
                            unparsed: &[],
                            started: p.started,
                            finished: p.finished,
                            requests: self.graph.requests_for(partner_id.as_str()).saturating_sub(requests_before),
                        },
                    )
                    .await,
                )
            };
            partner_summary = summary;
            let mut records = Vec::with_capacity(p.customers.len());
            for c in &p.customers {
                let key = TenantId::new(&c.tenant_id);
                if !known.contains_key(&key) {
                    new_customers.push(key.clone());
                }
                let previous = known.get(&key);
                records.push((
                    TenantRecord {
                        id: key.clone(),
                        domain: c.domain.clone().or_else(|| previous.and_then(|p| p.domain.clone())),
                        display_name: if c.display_name.is_empty() {
                            previous.map(|p| p.display_name.clone()).unwrap_or_default()
                        } else {
                            c.display_name.clone()
                        },
                        role: TenantRole::Customer,
                        auth: previous.map(|p| p.auth).filter(|a| *a == TenantAuth::App).unwrap_or(TenantAuth::Gdap),
                        first_seen: now,
                        last_seen: now,
                        gone_since: None,
                        gdap: Some(serde_json::to_value(&c.gdap).map_err(store::StoreError::from)?),
                        label: None,
                    },
                    c.domain.clone().into_iter().collect(),
                ));
            }
            self.store.upsert_tenants_with_domains(&records, "partner").await?;
            if p.relationships_read {
                for (id, t) in &known {
                    let still = p.customers.iter().any(|c| *id == *c.tenant_id.as_str());
                    if t.role == TenantRole::Customer && t.auth == TenantAuth::Gdap && t.gone_since.is_none() && !still
                    {
                        self.store.mark_gone(id, now).await?;
                        lost_customers.push(id.clone());
                    }
                }
            }
            customers = p.customers;
        }

        let selected = match self.selection(&accounts).await {
            Ok(selected) => selected,
            Err(e) => {
                self.store.finish_run(&run.id, store::RunStatus::Failed, self.clock.now(), &json!({})).await?;
                return Err(e);
            }
        };
        let mut plan = self.plan(&customers, &accounts, &known, selected.as_ref()).await?;
        plan.targets.retain(|t| !done.contains(&t.tenant_id));
        plan.unreadable.retain(|m| !done.contains(&m.tenant_id));
        if plan.targets.is_empty() && plan.unreadable.is_empty() && partner_summary.is_none() {
            self.store.finish_run(&run.id, store::RunStatus::Failed, self.clock.now(), &json!({})).await?;
            return Err(RunError::NothingToInspect);
        }
        self.observer.planned(plan.targets.len() + plan.unreadable.len());
        longest_first(&mut plan.targets, self.store.latest_tenant_runs().await?);

        let metrics = self.options.history.as_ref().map(|h| h.metrics.as_slice()).unwrap_or_default();
        let child_options = ChildOptions {
            full: self.options.full,
            clear_cache: self.options.clear_cache,
            cloud: self.options.cloud.clone(),
            unparsed: if self.options.trees { Vec::new() } else { child::unparsed(metrics) },
        };
        // Each tenant is a task of its own, so that parsing, assembling and hashing tenants runs on
        // every worker thread; polled inside this one future, all of it ran on a single thread.
        let shared = Arc::new(self.share());
        let workers = Workers::new(self.options.concurrency);
        // What neither this run nor a metric reads stays in the store, and is carried over from
        // there when the run reuses it; the same for every tenant.
        // The delta collections the run loads only when their round finds changes are left unread
        // too.
        let lazy: Arc<[child::Lazy]> = child::lazy_from_previous(metrics).into();
        let mut unread = child::unread_from_previous(metrics);
        unread.extend(lazy.iter().map(|l| l.name));
        let unread: Arc<[&'static str]> = unread.into();
        let results: Vec<Result<TenantSummary, RunError>> = futures::stream::iter(plan.targets)
            .map(|target| {
                let run_id = run.id.clone();
                let child_options = child_options.clone();
                let shared = shared.clone();
                let workers = workers.clone();
                let (unread, lazy) = (unread.clone(), lazy.clone());
                // The handle cancels the task when dropped, as dropping the run drops its tenants, and
                // resumes a panic of the task here.
                let (task, handle) = async move {
                    shared.inspect_one(&run_id, target, &child_options, &workers, (&unread, &lazy)).await
                }
                .remote_handle();
                tokio::spawn(task);
                handle
            })
            // Tenants waiting on Graph's pacing set their work permit aside, so more are in flight
            // than work at once; the cap bounds what the waiting ones hold.
            .buffer_unordered(self.options.concurrency.max(1) * IN_FLIGHT_PER_WORKER)
            .collect()
            .await;
        let mut tenants = Vec::new();
        for r in results {
            tenants.push(r?);
        }
        for meta in &plan.unreadable {
            tenants.push(self.unreadable_credential(&run.id, meta, &known).await);
        }
        tenants.sort_by_key(|t| t.display_name.to_ascii_lowercase());

        let warnings = diagnose::warnings(&diagnose::WarningInput {
            now: self.clock.now(),
            relationships: customers
                .iter()
                .flat_map(|c| {
                    c.gdap.relationships.iter().map(|r| {
                        let facts = GdapView { relationships: vec![r.clone()], ..GdapView::default() }.facts();
                        (c.tenant_id.clone(), c.display_name.clone(), facts.relationships.into_iter().next())
                    })
                })
                .filter_map(|(id, name, r)| Some((id, name, r?)))
                .collect(),
            partner_claims: partner_claims.as_ref().map(crate::facts::claims),
            refresh_token_last_used: auth.refresh_token_last_used().await.ok().flatten(),
            client_secrets: plan.secrets,
        });
        let everyone = || partner_summary.iter().chain(tenants.iter());
        let status = if everyone().all(|t| t.status == Status::Ok) {
            store::RunStatus::Ok
        } else if tenants.iter().all(|t| t.status == Status::Failed) {
            store::RunStatus::Failed
        } else {
            store::RunStatus::Partial
        };
        let http = &self.graph.transport.stats;
        let stats = json!({
            "tenants": tenants.len(),
            "ok": tenants.iter().filter(|t| t.status == Status::Ok).count(),
            "partial": tenants.iter().filter(|t| t.status == Status::Partial).count(),
            "failed": tenants.iter().filter(|t| t.status == Status::Failed).count(),
            "graph_requests": everyone().map(|t| t.requests).sum::<u64>(),
            "partner_requests": partner_summary.as_ref().map_or(0, |p| p.requests),
            "http_requests": microsoft::http::Stats::get(&http.requests),
            "retries": microsoft::http::Stats::get(&http.retries),
            "throttled": microsoft::http::Stats::get(&http.throttled),
            "throttle_wait_ms": microsoft::http::Stats::get(&http.throttle_wait_ms),
            "bytes": microsoft::http::Stats::get(&http.bytes),
            // Kept with the run so that reports and the dashboard show the warnings of the run they
            // describe without asking Microsoft again.
            "warnings": serde_json::to_value(&warnings).map_err(store::StoreError::from)?,
        });
        let finished = self.clock.now();
        self.store.finish_run(&run.id, status, finished, &stats).await?;
        Ok(RunReport {
            run_id: run.id,
            started_at: started,
            finished_at: finished,
            partner: partner_summary,
            tenants,
            new_customers,
            lost_customers,
            first_run: known.is_empty(),
            warnings,
            stats,
        })
    }

    /// Decides which tenants this run inspects and how it reaches each (see [`access::choose`]):
    /// the partner's customers, the customers with an app credential, and the tenants of accounts
    /// signed in directly.
    async fn plan(
        &self,
        customers: &[partner::Customer],
        accounts: &[microsoft::Account],
        known: &HashMap<TenantId, TenantRecord>,
        selected: Option<&HashSet<TenantId>>,
    ) -> Result<Plan, RunError> {
        let partner = accounts.iter().find(|a| a.role == AccountRole::Partner);
        let partner_id = partner.map(|a| TenantId::new(&a.home_tenant));
        let mut credentials = HashMap::new();
        let mut secrets = Vec::new();
        let mut unreadable = Vec::new();
        for meta in self.store.credential_list().await? {
            let credential = match self.store.credential_get(&meta.tenant_id).await {
                Ok(Some(credential)) => credential,
                Ok(None) => continue,
                Err(store::StoreError::Crypto { .. }) => {
                    if selected.is_none_or(|s| s.contains(&meta.tenant_id)) {
                        unreadable.push(meta);
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(end) = credential.expires_at {
                secrets.push(diagnose::SecretInfo {
                    app: credential.client_id.clone(),
                    tenant: Some(credential.tenant_id.to_string()),
                    display_name: credential.label.clone(),
                    end,
                });
            }
            credentials.insert(meta.tenant_id.clone(), credential);
        }

        // Every tenant that something reaches, once, in the order the sources are listed.
        let mut candidates: Vec<(TenantId, String, Option<String>, Option<GdapView>)> = Vec::new();
        for c in customers {
            candidates.push((
                TenantId::new(&c.tenant_id),
                c.display_name.clone(),
                c.domain.clone(),
                Some(c.gdap.clone()),
            ));
        }
        for id in credentials.keys() {
            candidates.push((id.clone(), String::new(), None, None));
        }
        for a in accounts.iter().filter(|a| a.role == AccountRole::Direct) {
            let domain = a.upn.as_deref().and_then(|u| u.split_once('@')).map(|(_, d)| d.to_string());
            candidates.push((TenantId::new(&a.home_tenant), String::new(), domain, None));
        }

        let ids: Vec<TenantId> = candidates.iter().map(|(id, ..)| id.clone()).collect();
        let known_domains = self.store.domains_of(&ids).await?;
        let mut targets: Vec<TenantTarget> = Vec::new();
        for (id, name, domain, gdap) in candidates {
            if targets.iter().any(|t| t.tenant_id == id)
                || partner_id.as_ref() == Some(&id)
                || unreadable.iter().any(|m| m.tenant_id == id)
            {
                continue;
            }
            let record = known.get(&id);
            let domain = domain.or_else(|| record.and_then(|t| t.domain.clone()));
            let name = Some(name)
                .filter(|n| !n.is_empty())
                .or_else(|| record.map(|t| t.display_name.clone()).filter(|n| id != n.as_str() && !n.is_empty()))
                .or_else(|| domain.clone())
                .unwrap_or_else(|| id.to_string());
            if selected.is_some_and(|s| !s.contains(&id)) {
                continue;
            }
            let mut domains = known_domains.get(&id).cloned().unwrap_or_default();
            domains.extend(domain.iter().cloned());
            let Some(access) = access::choose(&id, &domains, credentials.get(&id), accounts) else { continue };
            targets.push(TenantTarget {
                tenant_id: access.tenant_id.clone(),
                label: record.and_then(|t| t.label.clone()),
                display_name: name,
                domain,
                auth: access.mode,
                gdap: if access.mode == AuthMode::Gdap { gdap } else { None },
                partner_tenant_id: match access.mode {
                    AuthMode::Direct => None,
                    _ => partner_id.clone(),
                },
                sign_in: access.account.as_ref().and_then(|a| a.claims.clone()),
                grant: access.grant,
            });
        }
        Ok(Plan { targets, secrets, unreadable })
    }

    /// Commits the failure of a tenant whose app credential cannot be decrypted: the database
    /// was moved to another key, or the record was altered. Its other tenants are not affected.
    async fn unreadable_credential(
        &self,
        run_id: &RunId,
        meta: &store::AppCredentialMeta,
        known: &HashMap<TenantId, TenantRecord>,
    ) -> TenantSummary {
        let record = known.get(&meta.tenant_id);
        let cause = diagnose::Cause::ClientCredentialInvalid;
        let tenant = meta.tenant_id.as_str();
        let diagnosis = diagnose::Diagnosis {
            cause,
            summary: "The stored app credential of this tenant cannot be decrypted: it was encrypted with another key, or its record was altered."
                .to_string(),
            evidence: vec![
                diagnose::Evidence::new("app", &meta.client_id),
                diagnose::Evidence::new("credential", format!("{}, added {}", meta.kind.as_str(), meta.added_at.to_rfc3339())),
                diagnose::Evidence::new("store", "decryption failed (authenticated encryption refused the record)"),
            ],
            fix: vec![
                format!("Remove the unreadable credential: `tenantscope tenants remove-app --tenant {tenant}`."),
                format!(
                    "Add the app credential again (`tenantscope tenants add-app --tenant {tenant} --client-id {} ...`), or reach the tenant through GDAP by signing in again with `tenantscope login`.",
                    meta.client_id
                ),
                "If the data directory's key file was replaced, restore the original key instead: every secret it encrypted becomes readable again.".to_string(),
            ],
            confidence: 1.0,
            check: cause.check(),
            docs: cause.docs(),
        };
        let now = self.clock.now();
        self.finish_tenant(
            run_id,
            Inspected {
                tenant_id: &meta.tenant_id,
                display_name: record.map(|r| r.display_name.clone()).unwrap_or_else(|| tenant.to_string()),
                label: record.and_then(|r| r.label.clone()),
                domain: record.and_then(|r| r.domain.clone()),
                auth: AuthMode::App,
                status: Status::Failed,
                outcomes: &[],
                dataprint: None,
                diagnosis: Some(&diagnosis),
                token_error: None,
                previous: None,
                metrics: &[],
                delta_links: &[],
                reused: None,
                record: None,
                unparsed: &[],
                started: now,
                finished: now,
                requests: 0,
            },
        )
        .await
    }

    async fn inspect_one(
        &self,
        run_id: &RunId,
        target: TenantTarget,
        options: &ChildOptions,
        workers: &Workers,
        (unread, lazy): (&[&str], &[child::Lazy]),
    ) -> Result<TenantSummary, RunError> {
        // Held until the tenant is committed, but for its paced reads (see `turn`).
        let turn = &workers.turn().await;
        let (mut previous, previous_id) = match self.store.last_good_dataprint_unread(&target.tenant_id, unread).await?
        {
            Some((meta, dp)) => {
                let loader = Arc::new(StoreLoader { store: self.store.clone(), dataprint: meta.id.clone() });
                (Previous::new(dp, meta.taken_at).with_loader(lazy, loader), Some(meta.id))
            }
            None => (Previous::default(), None),
        };
        previous.delta_links.extend(self.store.delta_links(&target.tenant_id, &["users", "groups"]).await?);
        let result: TenantResult = Child {
            graph: &self.graph,
            clock: self.clock.as_ref(),
            target: &target,
            previous: &previous,
            options,
            turn: Some(turn),
        }
        .run()
        .await;
        drop(previous);
        let now = self.clock.now();
        // A tenant first known only by id gets its name from its own organization object.
        let mut target = target;
        let org_name = result
            .dataprint
            .as_ref()
            .and_then(|d| d.pointer("/collections/organization"))
            .and_then(serde_json::Value::as_object)
            .and_then(|m| m.values().next())
            .and_then(|o| o.get("displayName"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        if let Some(name) = org_name
            && (target.display_name.is_empty() || target.tenant_id == *target.display_name.as_str())
        {
            target.display_name = name;
        }
        // A target without a domain (named by id) keeps the one the store knows.
        let domain = match &target.domain {
            Some(domain) => Some(domain.clone()),
            None => self.store.get_tenant(&target.tenant_id).await?.and_then(|e| e.domain),
        };
        let record = TenantRecord {
            id: target.tenant_id.clone(),
            domain,
            display_name: if target.display_name.is_empty() {
                target.tenant_id.to_string()
            } else {
                target.display_name.clone()
            },
            role: TenantRole::Customer,
            auth: match target.auth {
                AuthMode::App => TenantAuth::App,
                AuthMode::Direct => TenantAuth::Direct,
                _ => TenantAuth::Gdap,
            },
            first_seen: now,
            last_seen: now,
            gone_since: None,
            gdap: target.gdap.as_ref().map(serde_json::to_value).transpose().map_err(store::StoreError::from)?,
            label: None,
        };
        let summary = self
            .finish_tenant(
                run_id,
                Inspected {
                    tenant_id: &target.tenant_id,
                    display_name: target.display_name.clone(),
                    label: target.label.clone(),
                    domain: target.domain.clone(),
                    auth: target.auth,
                    status: result.status,
                    outcomes: &result.outcomes,
                    dataprint: result.dataprint.as_ref(),
                    diagnosis: result.diagnosis.as_ref(),
                    token_error: result.token_error.as_ref(),
                    previous: previous_id.as_ref(),
                    metrics: &result.metrics,
                    delta_links: &result.delta_links,
                    reused: previous_id.as_ref().filter(|_| !result.reused.is_empty()).map(|id| ReusedFrom {
                        dataprint: id.clone(),
                        collections: result.reused.clone(),
                        unread: result.unread.clone(),
                    }),
                    record: Some(record),
                    unparsed: &result.unparsed,
                    started: result.started,
                    finished: result.finished,
                    requests: result.requests,
                },
            )
            .await;
        self.observer.tenant_done(&summary);
        Ok(summary)
    }

    /// Commits a tenant and reports it. A tenant whose result the store refuses is reported failed
    /// with that as its cause (and recorded as failed when the store still accepts that), and the
    /// run goes on with the others.
    async fn finish_tenant(&self, run_id: &RunId, t: Inspected<'_>) -> TenantSummary {
        let committed = self.commit_tenant(run_id, &t).await;
        let mut summary = TenantSummary {
            tenant_id: t.tenant_id.clone(),
            display_name: t.display_name.clone(),
            label: t.label.clone(),
            domain: t.domain.clone(),
            auth: t.auth,
            status: t.status,
            collectors: Vec::new(),
            diagnosis: t.diagnosis.map(DiagnosisSummary::from),
            summary: t.dataprint.and_then(|d| d.get("summary").cloned()),
            requests: t.requests,
            duration_ms: (t.finished - t.started).num_milliseconds().max(0) as u64,
            dataprint_id: None,
            history: TenantHistory::default(),
        };
        let collectors: Result<Vec<CollectorSummary>, serde_json::Error> =
            t.outcomes.iter().map(outcome_summary).collect();
        match (committed, collectors) {
            (Ok((dataprint_id, history)), Ok(collectors)) => {
                summary.dataprint_id = dataprint_id.map(|d| d.to_string());
                summary.history = history;
                summary.collectors = collectors;
            }
            (Err(e), _) => self.commit_failed(run_id, &t, &mut summary, e.to_string()).await,
            (_, Err(e)) => self.commit_failed(run_id, &t, &mut summary, CommitError::from(e).to_string()).await,
        }
        summary
    }

    /// Reports a tenant whose result could not be committed as failed, and records that failure
    /// (without a dataprint, so its last good dataprint stays) if the store takes it.
    async fn commit_failed(&self, run_id: &RunId, t: &Inspected<'_>, summary: &mut TenantSummary, why: String) {
        tracing::error!(tenant = %t.tenant_id, error = %why, "the tenant's result was not committed");
        let diagnosis = diagnose::diagnose(&diagnose::Facts {
            failure: Some(diagnose::Failure::Text(why)),
            now: Some(self.clock.now()),
            ..diagnose::Facts::default()
        });
        summary.status = Status::Failed;
        summary.diagnosis = Some(DiagnosisSummary::from(&diagnosis));
        summary.dataprint_id = None;
        let record = TenantRunRecord {
            run_id: run_id.clone(),
            tenant_id: t.tenant_id.clone(),
            status: TenantRunStatus::Failed,
            started_at: t.started,
            finished_at: t.finished,
            diagnosis: serde_json::to_value(&diagnosis).ok(),
            error: None,
            dataprint_id: None,
        };
        // The tenant's record goes with its failure, so that a tenant seen for the first time is
        // listed with the cause.
        let with = WithResult { tenant: t.record.clone(), ..WithResult::default() };
        if let Err(e) = self.store.commit_tenant_result_with(&record, &[], None, &with).await {
            tracing::error!(tenant = %t.tenant_id, error = %e, "the tenant's failure could not be recorded either");
        }
    }

    /// Commits one tenant's result with its record, domains, metric values and delta links in one
    /// write, then its change events and alerts.
    async fn commit_tenant(
        &self,
        run_id: &RunId,
        t: &Inspected<'_>,
    ) -> Result<(Option<DataprintId>, TenantHistory), CommitError> {
        let record = TenantRunRecord {
            run_id: run_id.clone(),
            tenant_id: t.tenant_id.clone(),
            status: store_status(t.status),
            started_at: t.started,
            finished_at: t.finished,
            diagnosis: t.diagnosis.map(serde_json::to_value).transpose()?,
            error: t.token_error.map(serde_json::to_value).transpose()?,
            dataprint_id: None,
        };
        let outcomes = t
            .outcomes
            .iter()
            .map(|o| store_outcome(run_id, t.tenant_id, o))
            .collect::<Result<Vec<CollectorOutcomeRecord>, serde_json::Error>>()?;
        let now = self.clock.now();
        let measured = self.measure(t, now).await?;
        // Delta links are saved in the transaction that commits the data they lead on from (the
        // store saves them only with a dataprint), so that a crash re-reads changes instead of
        // losing them.
        let with = WithResult {
            tenant: t.record.clone(),
            domains: t
                .dataprint
                .and_then(verified_domains)
                .map(|domains| DomainsOf { source: "dataprint".to_string(), domains }),
            metrics: measured.as_ref().map(|m| MetricsAt {
                at: now,
                values: m.values.iter().map(|v| (v.name.clone(), v.value.clone())).collect(),
            }),
            delta_links: t.delta_links.to_vec(),
            reused: t.reused.clone(),
            unparsed: t.unparsed.to_vec(),
        };
        let dataprint_id = self.store.commit_tenant_result_with(&record, &outcomes, t.dataprint, &with).await?;
        let history = match measured {
            Some(measured) => self.record_history(run_id, t, dataprint_id.as_ref(), measured, now).await?,
            None => TenantHistory::default(),
        };
        Ok((dataprint_id, history))
    }

    /// This run's metric values of a tenant that has a dataprint, measured at `now`, and those in
    /// effect before them, when the run keeps history.
    async fn measure(&self, t: &Inspected<'_>, now: DateTime<Utc>) -> Result<Option<Measured>, CommitError> {
        let (Some(options), Some(current)) = (&self.options.history, t.dataprint) else {
            return Ok(None);
        };
        let computed = t.metrics;
        let before: Vec<history::MetricValue> = self
            .store
            .latest_metrics(t.tenant_id)
            .await?
            .into_iter()
            .map(|p| history::MetricValue { name: p.name, value: p.value, error: None })
            .collect();
        // The built-in metrics were computed with the dataprint's summary; only the others (custom
        // metrics of the configuration) are evaluated here, so every figure is computed once.
        let pending: Vec<history::Metric> =
            options.metrics.iter().filter(|m| !computed.iter().any(|c| c.name == m.name())).cloned().collect();
        let mut extra = history::evaluate(&pending, current, now).into_iter();
        let values: Vec<history::MetricValue> = options
            .metrics
            .iter()
            .filter_map(|m| match computed.iter().find(|c| c.name == m.name()) {
                Some(c) => Some(c.clone()),
                None => extra.next(),
            })
            .collect();
        Ok(Some(Measured { before, values }))
    }

    /// Change events and alerts for a committed tenant, from the dataprints in memory. Events are
    /// computed only when the commit stored new content: an unchanged tenant confirms its previous
    /// dataprint and has nothing to report.
    async fn record_history(
        &self,
        run_id: &RunId,
        t: &Inspected<'_>,
        dataprint_id: Option<&DataprintId>,
        measured: Measured,
        now: DateTime<Utc>,
    ) -> Result<TenantHistory, CommitError> {
        let (tenant_id, previous, current, tenant_name) =
            (t.tenant_id, t.previous, t.dataprint, t.display_name.as_str());
        let (Some(options), Some(current), Some(id)) = (&self.options.history, current, dataprint_id) else {
            return Ok(TenantHistory::default());
        };
        let Measured { before, values } = measured;
        // A commit that confirmed the previous dataprint changed nothing; only another one is looked up.
        let changed = previous != Some(id) && self.store.dataprint_meta(id).await?.is_some_and(|m| m.run_id == *run_id);
        // The previous dataprint is read again only for a tenant that changed (see `Previous`).
        let mut previous = match (changed, previous) {
            (true, Some(p)) if p != id => self.store.get_dataprint(p).await?,
            _ => None,
        };
        // A collection carried over unread is `null` in this run's dataprint, and unchanged: it is
        // left out of the comparison on both sides.
        if let (Some(before), Some(reused)) = (previous.as_mut(), t.reused.as_ref()) {
            for name in &reused.unread {
                if let Some(slot) = before.get_mut("collections").and_then(|c| c.get_mut(name)) {
                    *slot = Value::Null;
                }
            }
        }
        // A collection written unparsed is compared as a tree, like the previous one.
        let whole = match (&previous, t.unparsed) {
            (Some(_), unparsed) if changed && !unparsed.is_empty() => {
                let mut whole = current.clone();
                // The bytes were written by this run; were they unreadable, the tenant is committed
                // all the same, and only its change events are missing.
                match store::embed_unparsed(unparsed, &mut whole) {
                    Ok(()) => Some(whole),
                    Err(e) => {
                        tracing::warn!(tenant = %tenant_id, error = %e, "change detection skipped");
                        previous = None;
                        None
                    }
                }
            }
            _ => None,
        };
        let current = whole.as_ref().unwrap_or(current);
        let events = match (changed, previous) {
            (true, Some(previous)) => history::diff(&previous, current).unwrap_or_else(|e| {
                tracing::warn!(tenant = %tenant_id, error = %e, "change detection skipped");
                Vec::new()
            }),
            _ => Vec::new(),
        };
        if !events.is_empty() {
            let values = events.iter().map(serde_json::to_value).collect::<Result<Vec<Value>, _>>()?;
            self.store.put_events(run_id, tenant_id, now, &values).await?;
        }
        let mut open = Vec::new();
        let mut stored = HashMap::new();
        for a in self.store.open_alerts(Some(tenant_id)).await? {
            match serde_json::from_value::<history::Alert>(a.payload.clone()) {
                Ok(alert) => {
                    open.push(alert);
                    stored.insert(a.key.clone(), a);
                }
                // An alert written by another version is left as it is rather than closed by mistake.
                Err(e) => tracing::warn!(alert = %a.key, error = %e, "an open alert could not be read"),
            }
        }
        let outcome =
            history::evaluate_alerts(&options.rules, tenant_id.as_str(), &values, &before, &events, &open, now);
        // Transitions are recorded with their notifications queued, in one transaction each, so that
        // a run killed right after loses none.
        let mutes = if outcome.opened.is_empty() && outcome.resolved.is_empty() {
            Vec::new()
        } else {
            self.store.mutes().await?
        };
        let muted = |rule: &str| mutes.iter().any(|m| m.tenant_id == *tenant_id && m.rule == rule && m.until > now);
        let transitions =
            outcome.opened.iter().map(|a| ("opened", a)).chain(outcome.resolved.iter().map(|a| ("resolved", a)));
        for (transition, a) in transitions {
            let notify: Vec<(String, Value)> = if muted(&a.rule) {
                Vec::new()
            } else {
                options
                    .notify
                    .iter()
                    .filter(|t| t.min_severity.is_none_or(|m| a.severity >= m))
                    .map(|t| (t.name.clone(), history::outbox_payload(a, Some(tenant_name))))
                    .collect()
            };
            self.store.record_transition(&alert_record(a)?, transition, &notify).await?;
        }
        // An alert that stays open as it was stored is not written again: on an unchanged fleet that
        // was a write per open alert per run.
        for a in &outcome.still_open {
            let record = alert_record(a)?;
            if stored.get(&record.key).is_none_or(|s| !same_alert(s, &record)) {
                self.store.upsert_alert(&record).await?;
            }
        }
        Ok(TenantHistory { events: events.len(), opened: outcome.opened, resolved: outcome.resolved })
    }
}

/// Reads the collections of a tenant's previous dataprint that its run left unread, when it needs
/// them after all.
struct StoreLoader<S: ?Sized> {
    store: Arc<S>,
    dataprint: DataprintId,
}

#[async_trait::async_trait]
impl<S: InspectStore + ?Sized + 'static> child::LoadPrevious for StoreLoader<S> {
    async fn load(&self, name: &str, fields: Option<&[String]>) -> Result<Option<Value>, String> {
        self.store.dataprint_collection(&self.dataprint, name, fields).await.map_err(|e| e.to_string())
    }
}

/// Orders tenants longest first by how long each took last time: a tenant that took long (a large
/// one, or one that waits on Graph's pacing) starts while others are still to come, instead of last
/// with nothing left to overlap it. A tenant never inspected counts as long; ties keep their order.
fn longest_first(targets: &mut [TenantTarget], last: Vec<store::TenantRunRecord>) {
    let took: HashMap<TenantId, chrono::TimeDelta> =
        last.into_iter().map(|r| (r.tenant_id, r.finished_at - r.started_at)).collect();
    targets.sort_by_key(|t| std::cmp::Reverse(took.get(&t.tenant_id).copied().unwrap_or(chrono::TimeDelta::MAX)));
}

/// Whether writing `new` over the stored alert `old` would change what the store holds. The payload
/// is the whole alert, and the columns are derived from it (compared through it, since a store may
/// keep timestamps at a coarser precision than the alert has).
fn same_alert(old: &store::AlertRecord, new: &store::AlertRecord) -> bool {
    old.rule == new.rule && old.tenant_id == new.tenant_id && old.severity == new.severity && old.payload == new.payload
}

/// The store's record of an alert.
fn alert_record(a: &history::Alert) -> Result<store::AlertRecord, serde_json::Error> {
    Ok(store::AlertRecord {
        key: a.key(),
        rule: a.rule.clone(),
        tenant_id: TenantId::new(&a.tenant_id),
        severity: a.severity,
        opened_at: a.opened_at,
        resolved_at: a.resolved_at,
        payload: serde_json::to_value(a)?,
        acked_at: None,
        acked_by: None,
        ack_reason: None,
    })
}

/// The verified domains in a dataprint's `domains` collection, when it was read.
fn verified_domains(dataprint: &Value) -> Option<Vec<String>> {
    let domains = dataprint.pointer("/collections/domains")?.as_object()?;
    Some(
        domains
            .values()
            .filter(|d| d.get("isVerified").and_then(Value::as_bool).unwrap_or(true))
            .filter_map(|d| d.get("id").and_then(Value::as_str).map(str::to_string))
            .collect(),
    )
}

/// A client secret given to `tenantscope tenants add-app`, for the store.
pub fn secret(text: String) -> SecretString {
    SecretString::from(text)
}

/// The grant of an app credential, for callers that hold one (kept here for the CLI's sake).
pub fn app_grant(credential: &store::AppCredential) -> Grant {
    access::app_grant(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_that_took_longest_go_first_and_new_ones_before_them() {
        let target = |id: &str| TenantTarget {
            tenant_id: TenantId::new(id),
            display_name: id.to_string(),
            label: None,
            domain: None,
            auth: AuthMode::Gdap,
            grant: Grant::Partner,
            gdap: None,
            partner_tenant_id: None,
            sign_in: None,
        };
        let at = Utc::now();
        let ran = |id: &str, ms: i64| store::TenantRunRecord {
            run_id: RunId::new("r"),
            tenant_id: TenantId::new(id),
            status: store::TenantRunStatus::Ok,
            started_at: at - chrono::TimeDelta::milliseconds(ms),
            finished_at: at,
            diagnosis: None,
            error: None,
            dataprint_id: None,
        };
        let mut targets: Vec<TenantTarget> = ["quick", "new", "slow", "also-quick", "newer"].map(target).into();
        longest_first(&mut targets, vec![ran("quick", 20), ran("slow", 900), ran("also-quick", 20)]);
        let order: Vec<&str> = targets.iter().map(|t| t.tenant_id.as_str()).collect();
        assert_eq!(order, ["new", "newer", "slow", "quick", "also-quick"]);
    }
}
