//! A run: the partner first (it says who the customers are), then every customer concurrently within
//! Graph's limits, each tenant's result committed on its own as soon as it is known, so that one
//! tenant's failure never stops another and an interrupted run keeps what it finished.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use microsoft::graph::GraphClient;
use microsoft::{AppCredential, Grant, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use store::{
    CollectorOutcomeRecord, OutcomeStatus as StoreOutcome, Store, TenantAuth, TenantRecord, TenantRole,
    TenantRunRecord, TenantRunStatus,
};

use crate::child::{AuthMode, Child, ChildOptions, Outcome, OutcomeStatus, Previous, TenantResult, TenantTarget};
use crate::dataprint::Status;
use crate::facts::GdapView;
use crate::partner::{self, PartnerResult};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Microsoft(#[from] microsoft::Error),
    #[error("nothing to inspect: sign in with `tenantscope login`, or add an app credential for a customer")]
    NothingToInspect,
    #[error("no known tenant matches '{0}'")]
    UnknownTenant(String),
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tenant ids, domains or names to inspect; empty means every tenant.
    pub tenants: Vec<String>,
    pub full: bool,
    pub clear_cache: bool,
    /// Tenants inspected at the same time.
    pub concurrency: usize,
    pub cloud: Option<String>,
    /// Metrics and alert rules evaluated after each tenant is committed; `None` records no history.
    pub history: Option<HistoryOptions>,
}

/// What history to record during a run.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    pub metrics: Vec<history::Metric>,
    pub rules: Vec<history::AlertRule>,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions { metrics: history::builtin_metrics(), rules: Vec::new() }
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
    pub tenant_id: String,
    pub display_name: String,
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
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub partner: Option<TenantSummary>,
    pub tenants: Vec<TenantSummary>,
    pub new_customers: Vec<String>,
    pub lost_customers: Vec<String>,
    /// No tenant was known before this run.
    pub first_run: bool,
    pub warnings: Vec<diagnose::Warning>,
    pub stats: Value,
}

fn outcome_summary(o: &Outcome) -> CollectorSummary {
    CollectorSummary {
        name: o.name.to_string(),
        status: o.status,
        items: o.items,
        reason: o.reason.as_ref().map(|r| json!({ "kind": r.kind, "detail": r.detail })),
        error: o.error.as_ref().map(|e| serde_json::to_value(e).unwrap_or(Value::Null)),
        diagnosis: o.diagnosis.as_ref().map(DiagnosisSummary::from),
        mode: o.mode,
    }
}

pub struct Runner {
    pub graph: GraphClient,
    pub store: Arc<dyn Store>,
    pub options: RunOptions,
    pub observer: Arc<dyn Observer>,
}

fn store_status(s: Status) -> TenantRunStatus {
    match s {
        Status::Ok => TenantRunStatus::Ok,
        Status::Partial => TenantRunStatus::Partial,
        Status::Failed => TenantRunStatus::Failed,
    }
}

fn store_outcome(run_id: &str, tenant: &str, o: &Outcome) -> CollectorOutcomeRecord {
    CollectorOutcomeRecord {
        run_id: run_id.to_string(),
        tenant_id: tenant.to_string(),
        collector: o.name.to_string(),
        status: match o.status {
            OutcomeStatus::Ok => StoreOutcome::Ok,
            OutcomeStatus::Skipped => StoreOutcome::Skipped,
            OutcomeStatus::Failed => StoreOutcome::Failed,
        },
        items: o.items.map(|n| n as i64),
        reason: o.reason.as_ref().map(|r| json!({ "kind": r.kind, "detail": r.detail })),
        error: o.error.as_ref().map(|e| serde_json::to_value(e).unwrap_or(Value::Null)),
        diagnosis: o.diagnosis.as_ref().and_then(|d| serde_json::to_value(d).ok()),
        requests: o.requests as i64,
        duration_ms: o.duration_ms as i64,
    }
}

impl Runner {
    fn matches(&self, id: &str, domain: Option<&str>, name: &str) -> bool {
        self.options.tenants.is_empty()
            || self.options.tenants.iter().any(|t| {
                t.eq_ignore_ascii_case(id)
                    || domain.is_some_and(|d| t.eq_ignore_ascii_case(d))
                    || t.eq_ignore_ascii_case(name)
            })
    }

    /// Runs the partner inspection and every customer's, committing as it goes.
    pub async fn run(&self) -> Result<RunReport, RunError> {
        let started = Utc::now();
        let run = self.store.start_run("inspect", started).await?;
        let auth = self.graph.auth.clone();
        let partner_account = auth.account().await?;
        let known: HashMap<String, TenantRecord> =
            self.store.list_tenants().await?.into_iter().map(|t| (t.id.to_ascii_lowercase(), t)).collect();
        let mut targets: Vec<TenantTarget> = Vec::new();
        let mut partner_summary = None;
        let mut new_customers = Vec::new();
        let mut lost_customers = Vec::new();
        let mut warnings = Vec::new();
        let mut partner_claims = None;
        let mut relationships_for_warnings = Vec::new();

        if let Some(account) = &partner_account {
            let reuse = if self.options.full {
                None
            } else {
                self.store
                    .last_good_dataprint(&account.home_tenant)
                    .await?
                    .and_then(|(_, dp)| partner::reusable_assignments(&dp, Utc::now()))
            };
            let p: PartnerResult =
                partner::inspect_partner(&self.graph, &account.home_tenant, self.options.cloud.as_deref(), reuse).await;
            partner_claims = p.token.as_ref().and_then(|t| t.claims.clone()).or_else(|| account.claims.clone());
            let now = Utc::now();
            self.store
                .upsert_tenant(&TenantRecord {
                    id: p.tenant_id.clone(),
                    domain: account.upn.as_deref().and_then(|u| u.split_once('@')).map(|(_, d)| d.to_string()),
                    display_name: if p.display_name.is_empty() {
                        "Partner tenant".into()
                    } else {
                        p.display_name.clone()
                    },
                    role: TenantRole::Partner,
                    auth: TenantAuth::Partner,
                    first_seen: now,
                    last_seen: now,
                    gone_since: None,
                    gdap: None,
                })
                .await?;
            let record = TenantRunRecord {
                run_id: run.id.clone(),
                tenant_id: p.tenant_id.clone(),
                status: store_status(p.status),
                started_at: p.started,
                finished_at: p.finished,
                diagnosis: p.diagnosis.as_ref().and_then(|d| serde_json::to_value(d).ok()),
                error: p.token_error.as_ref().map(|e| serde_json::to_value(e).unwrap_or(Value::Null)),
                dataprint_id: None,
            };
            let outcomes: Vec<CollectorOutcomeRecord> =
                p.outcomes.iter().map(|o| store_outcome(&run.id, &p.tenant_id, o)).collect();
            let previous = self.store.last_good_dataprint(&p.tenant_id).await?.map(|(m, _)| m.id);
            let dataprint_id = self.store.commit_tenant_result(&record, &outcomes, p.dataprint.as_ref()).await?;
            let partner_history = self
                .record_history(&run.id, &p.tenant_id, previous.as_ref(), p.dataprint.as_ref(), dataprint_id.as_ref())
                .await?;
            partner_summary = Some(TenantSummary {
                tenant_id: p.tenant_id.clone(),
                display_name: p.display_name.clone(),
                domain: None,
                auth: AuthMode::Partner,
                status: p.status,
                collectors: p.outcomes.iter().map(outcome_summary).collect(),
                diagnosis: p.diagnosis.as_ref().map(DiagnosisSummary::from),
                summary: p.dataprint.as_ref().and_then(|d| d.get("summary").cloned()),
                requests: 0,
                duration_ms: (p.finished - p.started).num_milliseconds().max(0) as u64,
                dataprint_id: dataprint_id.map(|d| d.to_string()),
                history: partner_history,
            });
            for c in &p.customers {
                let key = c.tenant_id.to_ascii_lowercase();
                if !known.contains_key(&key) {
                    new_customers.push(c.tenant_id.clone());
                }
                for r in &c.gdap.relationships {
                    relationships_for_warnings.push((c.tenant_id.clone(), c.display_name.clone(), r.clone()));
                }
                let previous = known.get(&key);
                self.store
                    .upsert_tenant(&TenantRecord {
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
                        gdap: serde_json::to_value(&c.gdap).ok(),
                    })
                    .await?;
                if self.matches(&c.tenant_id, c.domain.as_deref(), &c.display_name) {
                    targets.push(TenantTarget {
                        tenant_id: key,
                        display_name: c.display_name.clone(),
                        domain: c.domain.clone(),
                        auth: AuthMode::Gdap,
                        grant: Grant::Partner,
                        gdap: Some(c.gdap.clone()),
                        partner_tenant_id: Some(p.tenant_id.clone()),
                        sign_in: account.claims.clone(),
                    });
                }
            }
            if p.relationships_read {
                for (id, t) in &known {
                    let still = p.customers.iter().any(|c| c.tenant_id.eq_ignore_ascii_case(id));
                    if t.role == TenantRole::Customer && t.auth == TenantAuth::Gdap && t.gone_since.is_none() && !still
                    {
                        self.store.mark_gone(id, now).await?;
                        lost_customers.push(id.clone());
                    }
                }
            }
        }

        // Customers read with their own app: an explicit choice, so it wins over GDAP for that tenant.
        let mut secrets = Vec::new();
        for meta in self.store.credential_list().await? {
            let Some(cred) = self.store.credential_get(&meta.tenant_id).await? else { continue };
            if let Some(end) = cred.expires_at {
                secrets.push(diagnose::SecretInfo {
                    app: cred.client_id.clone(),
                    tenant: Some(cred.tenant_id.clone()),
                    display_name: cred.label.clone(),
                    end,
                });
            }
            let known_tenant = known.get(&meta.tenant_id.to_ascii_lowercase());
            let name = known_tenant
                .map(|t| t.display_name.clone())
                .filter(|n| !n.eq_ignore_ascii_case(&meta.tenant_id))
                .or_else(|| cred.label.clone())
                .unwrap_or_else(|| meta.tenant_id.clone());
            let domain = known_tenant.and_then(|t| t.domain.clone());
            if !self.matches(&meta.tenant_id, domain.as_deref(), &name) {
                continue;
            }
            let credential = match cred.kind {
                store::CredentialKind::Secret => AppCredential::Secret(cred.secret.clone()),
                store::CredentialKind::Certificate => AppCredential::Certificate {
                    private_key_pem: cred.secret.clone(),
                    certificate_pem: cred.certificate_pem.clone().unwrap_or_default(),
                    pss: false,
                },
            };
            targets.retain(|t| !t.tenant_id.eq_ignore_ascii_case(&meta.tenant_id));
            targets.push(TenantTarget {
                tenant_id: meta.tenant_id.to_ascii_lowercase(),
                display_name: name,
                domain,
                auth: AuthMode::App,
                grant: Grant::App { client_id: cred.client_id.clone(), credential },
                gdap: None,
                partner_tenant_id: partner_account.as_ref().map(|a| a.home_tenant.clone()),
                sign_in: None,
            });
        }
        for account in auth.accounts().await?.into_iter().filter(|a| a.role == microsoft::AccountRole::Direct) {
            let known_tenant = known.get(&account.home_tenant.to_ascii_lowercase());
            let domain = known_tenant
                .and_then(|t| t.domain.clone())
                .or_else(|| account.upn.as_deref().and_then(|u| u.split_once('@')).map(|(_, d)| d.to_string()));
            let name = known_tenant
                .map(|t| t.display_name.clone())
                .filter(|n| !n.eq_ignore_ascii_case(&account.home_tenant))
                .or_else(|| domain.clone())
                .unwrap_or_else(|| account.home_tenant.clone());
            if !self.matches(&account.home_tenant, domain.as_deref(), &name)
                || targets.iter().any(|t| t.tenant_id.eq_ignore_ascii_case(&account.home_tenant))
            {
                continue;
            }
            targets.push(TenantTarget {
                tenant_id: account.home_tenant.to_ascii_lowercase(),
                display_name: name,
                domain,
                auth: AuthMode::Direct,
                grant: Grant::Direct { home_account: account.home_account_id.clone() },
                gdap: None,
                partner_tenant_id: None,
                sign_in: account.claims.clone(),
            });
        }
        if targets.is_empty() && partner_summary.is_none() {
            self.store.finish_run(&run.id, store::RunStatus::Failed, Utc::now(), &json!({})).await?;
            if !self.options.tenants.is_empty() {
                return Err(RunError::UnknownTenant(self.options.tenants.join(", ")));
            }
            return Err(RunError::NothingToInspect);
        }
        self.observer.planned(targets.len());

        let child_options = ChildOptions {
            full: self.options.full,
            clear_cache: self.options.clear_cache,
            cloud: self.options.cloud.clone(),
        };
        let results: Vec<Result<TenantSummary, RunError>> = futures::stream::iter(targets)
            .map(|target| {
                let run_id = run.id.clone();
                let child_options = child_options.clone();
                async move { self.inspect_one(&run_id, target, &child_options).await }
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        let mut tenants = Vec::new();
        for r in results {
            tenants.push(r?);
        }
        tenants.sort_by_key(|t| t.display_name.to_ascii_lowercase());

        warnings.extend(diagnose::warnings(&diagnose::WarningInput {
            now: Utc::now(),
            relationships: relationships_for_warnings
                .iter()
                .map(|(id, name, r)| {
                    (
                        id.clone(),
                        name.clone(),
                        GdapView { relationships: vec![r.clone()], ..GdapView::default() }
                            .facts()
                            .relationships
                            .remove(0),
                    )
                })
                .collect(),
            partner_claims: partner_claims.as_ref().map(crate::facts::claims),
            refresh_token_last_used: auth.refresh_token_last_used().await.ok().flatten(),
            client_secrets: secrets,
        }));
        let stats = &self.graph.transport.stats;
        let status = if tenants.iter().all(|t| t.status == Status::Ok)
            && partner_summary.as_ref().is_none_or(|p| p.status == Status::Ok)
        {
            store::RunStatus::Ok
        } else if tenants.iter().all(|t| t.status == Status::Failed) {
            store::RunStatus::Failed
        } else {
            store::RunStatus::Partial
        };
        let stats = json!({
            "tenants": tenants.len(),
            "ok": tenants.iter().filter(|t| t.status == Status::Ok).count(),
            "partial": tenants.iter().filter(|t| t.status == Status::Partial).count(),
            "failed": tenants.iter().filter(|t| t.status == Status::Failed).count(),
            "graph_requests": tenants.iter().map(|t| t.requests).sum::<u64>(),
            "http_requests": microsoft::http::Stats::get(&stats.requests),
            "retries": microsoft::http::Stats::get(&stats.retries),
            "throttled": microsoft::http::Stats::get(&stats.throttled),
            "throttle_wait_ms": microsoft::http::Stats::get(&stats.throttle_wait_ms),
            "bytes": microsoft::http::Stats::get(&stats.bytes),
        });
        let finished = Utc::now();
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

    async fn inspect_one(
        &self,
        run_id: &str,
        target: TenantTarget,
        options: &ChildOptions,
    ) -> Result<TenantSummary, RunError> {
        let (mut previous, previous_id) = match self.store.last_good_dataprint(&target.tenant_id).await? {
            Some((meta, dp)) => (Previous::new(dp, meta.taken_at), Some(meta.id)),
            None => (Previous::default(), None),
        };
        for name in ["users", "groups"] {
            if let Some(link) = self.store.get_delta_link(&target.tenant_id, name).await? {
                previous.delta_links.insert(name.to_string(), link);
            }
        }
        let result: TenantResult =
            Child { graph: &self.graph, target: &target, previous: &previous, options }.run().await;
        drop(previous);
        let now = Utc::now();
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
            && (target.display_name.is_empty() || target.display_name.eq_ignore_ascii_case(&target.tenant_id))
        {
            target.display_name = name;
        }
        let existing = self.store.get_tenant(&target.tenant_id).await?;
        self.store
            .upsert_tenant(&TenantRecord {
                id: target.tenant_id.clone(),
                domain: target.domain.clone().or_else(|| existing.as_ref().and_then(|e| e.domain.clone())),
                display_name: if target.display_name.is_empty() {
                    target.tenant_id.clone()
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
                gdap: target.gdap.as_ref().and_then(|g| serde_json::to_value(g).ok()),
            })
            .await?;
        let record = TenantRunRecord {
            run_id: run_id.to_string(),
            tenant_id: target.tenant_id.clone(),
            status: store_status(result.status),
            started_at: result.started,
            finished_at: result.finished,
            diagnosis: result.diagnosis.as_ref().and_then(|d| serde_json::to_value(d).ok()),
            error: result.token_error.as_ref().map(|e| serde_json::to_value(e).unwrap_or(Value::Null)),
            dataprint_id: None,
        };
        let outcomes: Vec<CollectorOutcomeRecord> =
            result.outcomes.iter().map(|o| store_outcome(run_id, &target.tenant_id, o)).collect();
        let dataprint_id = self.store.commit_tenant_result(&record, &outcomes, result.dataprint.as_ref()).await?;
        let history = self
            .record_history(
                run_id,
                &target.tenant_id,
                previous_id.as_ref(),
                result.dataprint.as_ref(),
                dataprint_id.as_ref(),
            )
            .await?;
        // Delta links are saved only once the data they lead on from is committed, so that a crash in
        // between re-reads changes instead of losing them.
        if dataprint_id.is_some() {
            for (name, link) in &result.delta_links {
                self.store.set_delta_link(&target.tenant_id, name, link).await?;
            }
        }
        let summary = TenantSummary {
            tenant_id: target.tenant_id.clone(),
            display_name: target.display_name.clone(),
            domain: target.domain.clone(),
            auth: target.auth,
            status: result.status,
            collectors: result.outcomes.iter().map(outcome_summary).collect(),
            diagnosis: result.diagnosis.as_ref().map(DiagnosisSummary::from),
            summary: result.dataprint.as_ref().and_then(|d| d.get("summary").cloned()),
            requests: result.requests,
            duration_ms: (result.finished - result.started).num_milliseconds().max(0) as u64,
            dataprint_id: dataprint_id.map(|d| d.to_string()),
            history,
        };
        self.observer.tenant_done(&summary);
        Ok(summary)
    }
}

impl Runner {
    /// Change events, metric values and alerts for a committed tenant, from the dataprints in memory.
    /// Events are computed only when the commit stored new content: an unchanged tenant confirms its
    /// previous dataprint and has nothing to report.
    async fn record_history(
        &self,
        run_id: &str,
        tenant_id: &str,
        previous: Option<&store::DataprintId>,
        current: Option<&Value>,
        dataprint_id: Option<&store::DataprintId>,
    ) -> Result<TenantHistory, RunError> {
        let (Some(options), Some(current), Some(id)) = (&self.options.history, current, dataprint_id) else {
            return Ok(TenantHistory::default());
        };
        let now = Utc::now();
        let changed = self.store.dataprint_meta(id).await?.is_some_and(|m| m.run_id == run_id);
        // The previous dataprint is read again only for a tenant that changed (see `Previous`).
        let previous = match (changed, previous) {
            (true, Some(p)) if p != id => self.store.get_dataprint(p).await?,
            _ => None,
        };
        let events = match (changed, previous) {
            (true, Some(previous)) => history::diff(&previous, current).unwrap_or_else(|e| {
                tracing::warn!(tenant = tenant_id, error = %e, "change detection skipped");
                Vec::new()
            }),
            _ => Vec::new(),
        };
        if !events.is_empty() {
            let values: Vec<Value> = events.iter().filter_map(|e| serde_json::to_value(e).ok()).collect();
            self.store.put_events(run_id, tenant_id, now, &values).await?;
        }
        let before: Vec<history::MetricValue> = self
            .store
            .latest_metrics(tenant_id)
            .await?
            .into_iter()
            .map(|p| history::MetricValue { name: p.name, value: p.value, error: None })
            .collect();
        let values = history::evaluate(&options.metrics, current, now);
        let pairs: Vec<(String, Value)> = values.iter().map(|v| (v.name.clone(), v.value.clone())).collect();
        self.store.put_metrics(run_id, tenant_id, now, &pairs).await?;
        let open: Vec<history::Alert> = self
            .store
            .open_alerts(Some(tenant_id))
            .await?
            .into_iter()
            .filter_map(|a| serde_json::from_value(a.payload).ok())
            .collect();
        let outcome = history::evaluate_alerts(&options.rules, tenant_id, &values, &before, &events, &open, now);
        for a in outcome.opened.iter().chain(outcome.resolved.iter()).chain(outcome.still_open.iter()) {
            let severity = serde_json::to_value(a.severity)
                .ok()
                .and_then(|v| v.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(store::Severity::Info);
            self.store
                .upsert_alert(&store::AlertRecord {
                    key: a.key(),
                    rule: a.rule.clone(),
                    tenant_id: a.tenant_id.clone(),
                    severity,
                    opened_at: a.opened_at,
                    resolved_at: a.resolved_at,
                    payload: serde_json::to_value(a).unwrap_or(Value::Null),
                })
                .await?;
        }
        Ok(TenantHistory { events: events.len(), opened: outcome.opened, resolved: outcome.resolved })
    }
}

/// A client secret given to `tenantscope tenants add-app`, for the store.
pub fn secret(text: String) -> SecretString {
    SecretString::from(text)
}
