//! The dashboard's pages beyond the overview, tenants, agents and partner ([`crate::ui`]): runs,
//! changes, alerts, the dataprint explorer, baselines and settings.
//!
//! Each page reads what the API reads, and each form does what the matching API call does (the
//! handlers are shared, so the role check, validation and audit entry are the same); forms carry
//! the session's CSRF token. After an action a page redirects to itself with a fixed notice code,
//! never with text from the request.

use std::collections::{BTreeSet, HashMap};

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use chrono::Utc;
use render::pages::{self, AlertItem, ChangeItem, DataprintItem, RunDetail, RunRow, RunTenantRow};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{JobFilter, JobStatus, TenantId};

use crate::AppState;
use crate::api::{Body, Segment};
use crate::auth::Role;
use crate::problem::Problem;
use crate::ui::{Operator, PageResult, html};

/// How a job came to be: by the schedule, an engineer's button or an API token.
fn trigger_of(created_by: &str) -> &'static str {
    if created_by == crate::scheduler::LEASE {
        "schedule"
    } else if created_by.starts_with("user:") {
        "user"
    } else {
        "API"
    }
}

/// A person as the audit log names them (`user:NAME (SUBJECT)`), shown by name; tokens and the
/// scheduler stay as they are.
pub(crate) fn person(actor: &str) -> String {
    match actor.strip_prefix("user:") {
        Some(rest) => rest.rsplit_once(" (").map_or(rest, |(name, _)| name).to_string(),
        None => actor.to_string(),
    }
}

/// Tenant names by id, as tenantscope shows them.
async fn names(state: &AppState) -> Result<HashMap<TenantId, String>, Problem> {
    Ok(state.store.list_tenants().await?.into_iter().map(|t| (t.id.clone(), render::views::shown_name(&t))).collect())
}

#[derive(Debug, Default, Deserialize)]
pub struct RunsQuery {
    #[serde(default)]
    status: String,
}

/// `GET /jobs`: the runs page: every job, newest first, with trigger, live progress, results,
/// duration and requests.
pub async fn runs(State(state): State<AppState>, who: Operator, Query(query): Query<RunsQuery>) -> PageResult {
    let status = match query.status.as_str() {
        "" => None,
        s => Some(s.parse::<JobStatus>().map_err(|e| Problem::bad_request(e.to_string()))?),
    };
    let list = state.store.list_jobs(&JobFilter { status, limit: 100, ..Default::default() }).await?;
    let now = Utc::now();
    let mut rows: Vec<RunRow> = list
        .into_iter()
        .map(|j| {
            let progress = j.progress.clone().unwrap_or(Value::Null);
            let result = j.result.clone().unwrap_or(Value::Null);
            let n = |v: &Value, k: &str| v[k].as_u64();
            let planned = n(&progress, "planned").or_else(|| n(&result, "tenants")).unwrap_or(0);
            let done = match j.status {
                // A finished job's result is the last word: its progress may stop short of it.
                JobStatus::Succeeded => n(&result, "tenants").unwrap_or(planned).max(n(&progress, "done").unwrap_or(0)),
                _ => n(&progress, "done").unwrap_or(0),
            };
            let duration =
                j.started_at.map(|s| pages::duration_text(j.finished_at.unwrap_or(now) - s)).unwrap_or_default();
            RunRow {
                trigger: trigger_of(&j.created_by).to_string(),
                by: person(&j.created_by),
                pool: j.pool.clone(),
                status: j.status.to_string(),
                planned: planned.max(done),
                done,
                failed: n(&result, "failed").or_else(|| n(&progress, "failed")).unwrap_or(0),
                queued_at: Some(j.created_at),
                duration,
                run_id: result["run_id"].as_str().map(str::to_string),
                graph_requests: n(&result, "graph_requests"),
                error: j.last_error.clone(),
                kind: j.kind.clone(),
                job_id: Some(j.id),
            }
        })
        .collect();
    // Runs made outside the job queue (the command line on the same database) are shown too,
    // unless a status filter that only jobs have is set. A run knows the job that started it,
    // so a job's earlier attempts (killed, retried) are never taken for command-line runs.
    if status.is_none() {
        for (r, job) in state.store.runs_with_jobs(100).await? {
            if job.is_some() || r.kind != "inspect" {
                continue;
            }
            let stat = |k: &str| r.stats.get(k).and_then(Value::as_u64);
            let tenants = stat("tenants").unwrap_or(0);
            rows.push(RunRow {
                kind: r.kind.clone(),
                trigger: "command line".into(),
                by: "tenantscope inspect".into(),
                pool: "local".into(),
                status: r.status.as_str().to_string(),
                planned: tenants,
                done: if r.finished_at.is_some() { tenants } else { 0 },
                failed: stat("failed").unwrap_or(0),
                queued_at: Some(r.started_at),
                duration: pages::duration_text(r.finished_at.unwrap_or(now) - r.started_at),
                run_id: Some(r.id.to_string()),
                graph_requests: stat("graph_requests"),
                error: None,
                job_id: None,
            });
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.queued_at));
    }
    Ok(html(pages::runs(&who.chrome("/jobs"), &rows, &query.status)?))
}

/// `GET /runs/{id}`: a recorded run and every tenant's result in it.
pub async fn run(State(state): State<AppState>, who: Operator, Segment(id): Segment<String>) -> PageResult {
    let run_id = store::RunId::new(id);
    let run = state.store.get_run(&run_id).await?.ok_or_else(|| Problem::not_found(format!("no run {run_id}")))?;
    let names = names(&state).await?;
    let mut tenants: Vec<RunTenantRow> = state
        .store
        .tenant_runs(&run_id)
        .await?
        .into_iter()
        .map(|t| RunTenantRow {
            name: names.get(&t.tenant_id).cloned().unwrap_or_else(|| t.tenant_id.to_string()),
            tenant_id: t.tenant_id.to_string(),
            status: t.status.as_str().to_string(),
            cause: t.diagnosis.as_ref().and_then(|d| d["cause"].as_str()).map(str::to_string),
            summary: t.diagnosis.as_ref().and_then(|d| d["summary"].as_str()).map(str::to_string),
            duration: pages::duration_text(t.finished_at - t.started_at),
            dataprint_id: t.dataprint_id.map(|d| d.to_string()),
        })
        .collect();
    // The failures first: they are what the page is opened for.
    tenants.sort_by_key(|t| (t.status == "ok", t.status == "partial", t.name.to_ascii_lowercase()));
    let stat = |k: &str| run.stats.get(k).and_then(Value::as_u64);
    let mut figures = Vec::new();
    for (key, label) in [
        ("tenants", "Tenants"),
        ("ok", "OK"),
        ("partial", "Partial"),
        ("failed", "Failed"),
        ("graph_requests", "Graph requests"),
        ("partner_requests", "Partner requests"),
        ("http_requests", "HTTP requests"),
        ("retries", "Retries"),
        ("throttled", "Throttled (429)"),
    ] {
        if let Some(v) = stat(key) {
            figures.push((label.to_string(), v.to_string()));
        }
    }
    if let Some(ms) = stat("throttle_wait_ms") {
        figures
            .push(("Waited for Retry-After".into(), pages::duration_text(chrono::Duration::milliseconds(ms as i64))));
    }
    if let Some(bytes) = stat("bytes") {
        figures.push(("Received".into(), format!("{:.1} MB", bytes as f64 / 1e6)));
    }
    let detail = RunDetail {
        id: run.id.to_string(),
        kind: run.kind.clone(),
        status: run.status.as_str().to_string(),
        started_at: run.started_at,
        finished_at: run.finished_at,
        duration: pages::duration_text(run.finished_at.unwrap_or_else(Utc::now) - run.started_at),
        figures,
        tenants,
    };
    Ok(html(pages::run(&who.chrome("/jobs"), &detail)?))
}

#[derive(Debug, Default, Deserialize)]
pub struct ChangesQuery {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    days: Option<u32>,
}

/// `GET /changes`: the cross-tenant timeline, filtered by tenant, severity and kind.
pub async fn changes(State(state): State<AppState>, who: Operator, Query(query): Query<ChangesQuery>) -> PageResult {
    let days = query.days.unwrap_or(7).clamp(1, 3650);
    let min_severity = match query.severity.as_str() {
        "" => None,
        s => Some(s.parse::<store::Severity>().map_err(|e| Problem::bad_request(e.to_string()))?),
    };
    let names = names(&state).await?;
    let tenant = (!query.tenant.is_empty()).then(|| TenantId::new(query.tenant.clone()));
    let filter = store::EventFilter {
        tenant,
        since: Some(Utc::now() - chrono::Duration::days(i64::from(days))),
        min_severity,
        limit: Some(if query.kind.is_empty() { 1000 } else { 20_000 }),
    };
    let events = state.store.events(&filter).await?;
    let mut kinds: BTreeSet<String> = history::EVENT_KINDS.iter().map(|k| k.to_string()).collect();
    let rows: Vec<ChangeItem> = events
        .into_iter()
        .filter_map(|e| {
            let kind = e.event["kind"].as_str().unwrap_or_default().to_string();
            kinds.insert(kind.clone());
            (query.kind.is_empty() || kind == query.kind).then(|| ChangeItem {
                at: e.at,
                tenant: names.get(&e.tenant_id).cloned().unwrap_or_else(|| e.tenant_id.to_string()),
                tenant_id: e.tenant_id.to_string(),
                severity: e.severity.as_str().to_string(),
                kind,
                summary: e.event["summary"].as_str().unwrap_or_default().to_string(),
            })
        })
        .take(1000)
        .collect();
    let mut tenants: Vec<(String, String)> = names.into_iter().map(|(id, n)| (id.to_string(), n)).collect();
    tenants.sort_by_key(|(_, n)| n.to_ascii_lowercase());
    let list = pages::ChangeList {
        rows,
        tenant: query.tenant,
        severity: query.severity,
        kind: query.kind,
        days,
        tenants,
        kinds: kinds.into_iter().collect(),
    };
    Ok(html(pages::changes(&who.chrome("/changes"), &list)?))
}

#[derive(Debug, Default, Deserialize)]
pub struct AlertsQuery {
    #[serde(default)]
    show: String,
    #[serde(default)]
    notice: String,
}

/// The most alerts the alerts page lists.
const ALERTS_SHOWN: usize = 1000;

/// `GET /alerts`: open alerts (or all), who acknowledged them, mutes and the rules.
pub async fn alerts(State(state): State<AppState>, who: Operator, Query(query): Query<AlertsQuery>) -> PageResult {
    let all = query.show == "all";
    let names = names(&state).await?;
    let now = Utc::now();
    let mutes: Vec<store::MuteRecord> = state.store.mutes().await?.into_iter().filter(|m| m.until > now).collect();
    let name = |id: &TenantId| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut alerts: Vec<AlertItem> = state
        .store
        .list_alerts(!all)
        .await?
        .into_iter()
        .map(|a| AlertItem {
            muted_until: mutes.iter().find(|m| m.tenant_id == a.tenant_id && m.rule == a.rule).map(|m| m.until),
            summary: a.payload["summary"].as_str().or(a.payload["message"].as_str()).unwrap_or_default().to_string(),
            tenant: name(&a.tenant_id),
            tenant_id: a.tenant_id.to_string(),
            severity: a.severity.as_str().to_string(),
            key: a.key,
            rule: a.rule,
            opened_at: a.opened_at,
            resolved_at: a.resolved_at,
            acked_at: a.acked_at,
            acked_by: a.acked_by.as_deref().map(person),
        })
        .collect();
    alerts.sort_by(|a, b| (a.resolved_at.is_some(), b.opened_at).cmp(&(b.resolved_at.is_some(), a.opened_at)));
    // Open ones first, then the newest: a fleet's whole history of alerts would make the page
    // unusable; `GET /api/v1/alerts?open=false` lists every one.
    let total = alerts.len();
    alerts.truncate(ALERTS_SHOWN);
    let rules = state
        .history
        .as_ref()
        .map(|h| {
            h.rules
                .iter()
                .map(|r| pages::RuleItem {
                    name: r.name.clone(),
                    severity: r.severity.as_str().to_string(),
                    description: r.description.clone().unwrap_or_default(),
                    condition: serde_json::to_string(&r.condition).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let notice = match query.notice.as_str() {
        "acknowledged" => Some("The alert is acknowledged.".to_string()),
        "muted" => Some("The rule is muted for that tenant.".to_string()),
        _ => None,
    };
    let list = pages::AlertList {
        show: if all { "all".into() } else { "open".into() },
        total,
        alerts,
        mutes: mutes
            .into_iter()
            .map(|m| pages::MuteItem {
                tenant: name(&m.tenant_id),
                rule: m.rule,
                until: m.until,
                by: person(&m.created_by),
                reason: m.reason.unwrap_or_default(),
            })
            .collect(),
        rules,
        notice,
    };
    Ok(html(pages::alerts(&who.chrome("/alerts"), &list)?))
}

#[derive(Debug, Deserialize)]
pub struct AckForm {
    csrf: String,
    key: String,
    #[serde(default)]
    reason: String,
}

/// `POST /ui/alerts/ack`: acknowledges an alert, as `POST /api/v1/alerts/{key}/ack` does.
pub async fn ack(State(state): State<AppState>, who: Operator, Form(form): Form<AckForm>) -> PageResult {
    who.allow(&form.csrf, Role::Engineer)?;
    let reason = form.reason.trim();
    let body = crate::api::AckBody { reason: (!reason.is_empty()).then(|| reason.to_string()), resolve: false };
    let _acked = crate::api::ack_alert(State(state), who.principal(), Segment(form.key), Body(body)).await?;
    Ok(Redirect::to("/alerts?notice=acknowledged").into_response())
}

#[derive(Debug, Deserialize)]
pub struct MuteForm {
    csrf: String,
    tenant: String,
    rule: String,
    days: i64,
}

/// `POST /ui/alerts/mute`: mutes a rule for a tenant for some days, as `POST /api/v1/mutes` does.
pub async fn mute(State(state): State<AppState>, who: Operator, Form(form): Form<MuteForm>) -> PageResult {
    who.allow(&form.csrf, Role::Engineer)?;
    if !(1..=365).contains(&form.days) {
        return Err(Problem::bad_request("a mute lasts 1 to 365 days").into());
    }
    let body = crate::api::MuteBody {
        tenant: form.tenant,
        rule: form.rule,
        until: Utc::now() + chrono::Duration::days(form.days),
        reason: Some(format!("muted from the dashboard for {} days", form.days)),
    };
    let _muted = crate::api::mute(State(state), who.principal(), Body(body)).await?;
    Ok(Redirect::to("/alerts?notice=muted").into_response())
}

/// `GET /tenants/{id}/dataprints`: a tenant's dataprints and the compare form.
pub async fn dataprints(State(state): State<AppState>, who: Operator, Segment(id): Segment<String>) -> PageResult {
    let record = crate::api::find_tenant(&state, &id).await?;
    let mut items: Vec<DataprintItem> = state
        .store
        .dataprints(&record.id, None)
        .await?
        .into_iter()
        .map(|d| DataprintItem {
            id: d.id.to_string(),
            taken_at: d.taken_at,
            confirmed_at: d.confirmed_at,
            status: d.status.as_str().to_string(),
            run_id: d.run_id.to_string(),
        })
        .collect();
    items.reverse();
    let name = render::views::shown_name(&record);
    Ok(html(pages::dataprints(&who.chrome("/tenants"), record.id.as_str(), &name, &items)?))
}

#[derive(Debug, Default, Deserialize)]
pub struct ExploreQuery {
    #[serde(default)]
    query: String,
}

/// How many nodes of a dataprint the explorer's tree draws.
const TREE_BUDGET: usize = 4000;

/// Evaluates a JMESPath expression against a document, for the API and the explorer alike: with
/// the evaluator of the metrics and of `tenantscope dataprint show --query` (its extra functions
/// included), which reads the document in place; the `jmespath` crate needed the whole dataprint
/// serialised and parsed again into its own values for every query.
pub(crate) fn jmespath_search(doc: &Value, expression: &str) -> Result<Value, String> {
    if expression.len() > 4096 {
        return Err("the JMESPath expression is longer than 4096 characters".into());
    }
    let query = history::Query::new(expression).map_err(|e| format!("invalid JMESPath: {e}"))?;
    query.search(doc, Some(chrono::Utc::now())).map_err(|e| format!("JMESPath: {e}"))
}

/// `GET /dataprints/{id}`: the explorer: the JMESPath box and its result, the download, the tree.
pub async fn dataprint(
    State(state): State<AppState>,
    who: Operator,
    Segment(id): Segment<String>,
    Query(query): Query<ExploreQuery>,
) -> PageResult {
    let doc = crate::api::dataprint_or_404(&state, &id).await?;
    let tenant_id = doc.pointer("/tenant/id").and_then(Value::as_str).unwrap_or_default().to_string();
    let tenant = match state.store.get_tenant(&TenantId::new(tenant_id.clone())).await? {
        Some(t) => render::views::shown_name(&t),
        None => doc.pointer("/tenant/display_name").and_then(Value::as_str).unwrap_or(&tenant_id).to_string(),
    };
    let expression = query.query.trim().to_string();
    // A costly expression over a large dataprint runs on the blocking pool, bounded in time, so
    // that it never holds up the pages of others.
    let result = if expression.is_empty() {
        None
    } else {
        let (doc, expression) = (std::sync::Arc::new(doc.clone()), expression.clone());
        let task = tokio::task::spawn_blocking(move || {
            jmespath_search(&doc, &expression).and_then(|v| serde_json::to_string_pretty(&v).map_err(|e| e.to_string()))
        });
        Some(match tokio::time::timeout(std::time::Duration::from_secs(10), task).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the query could not be evaluated".to_string()),
            Err(_) => Err("the query took longer than 10 seconds: narrow it (filter before projecting)".to_string()),
        })
    };
    let taken_at = doc
        .pointer("/run/started_at")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc));
    let view = pages::DataprintView {
        id,
        tenant_id,
        tenant,
        taken_at,
        query: expression,
        result,
        tree: pages::json_tree(&doc, TREE_BUDGET),
    };
    Ok(html(pages::dataprint(&who.chrome("/tenants"), &view)?))
}

#[derive(Debug, Deserialize)]
pub struct CompareQuery {
    from: String,
    to: String,
}

/// `GET /compare?from=&to=`: two dataprints side by side, field by field.
pub async fn compare(State(state): State<AppState>, who: Operator, Query(query): Query<CompareQuery>) -> PageResult {
    let (before, after) = (
        crate::api::dataprint_or_404(&state, &query.from).await?,
        crate::api::dataprint_or_404(&state, &query.to).await?,
    );
    let label = |doc: &Value| {
        format!(
            "{} at {}",
            doc.pointer("/tenant/display_name").and_then(Value::as_str).unwrap_or("?"),
            doc.pointer("/run/started_at")
                .and_then(Value::as_str)
                .map(|s| s.get(..19).unwrap_or(s).replace('T', " "))
                .unwrap_or_default()
        )
    };
    let (diffs, error) = match history::diff(&before, &after) {
        Ok(events) => (
            events
                .into_iter()
                .map(|e| pages::FieldDiff {
                    severity: e.severity.as_str().to_string(),
                    collection: e.collection.clone(),
                    object: e.display_name.clone().unwrap_or_else(|| e.object_id.clone()),
                    field: e.field.clone().unwrap_or_default(),
                    before: pages::cell(e.before.as_ref()),
                    after: pages::cell(e.after.as_ref()),
                    summary: e.summary.clone(),
                    kind: e.kind,
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(format!("these dataprints cannot be compared: {e}"))),
    };
    let view = pages::CompareView {
        from_label: label(&before),
        to_label: label(&after),
        from_id: query.from,
        to_id: query.to,
        diffs,
        error,
    };
    Ok(html(pages::compare(&who.chrome("/tenants"), &view)?))
}

#[derive(Debug, Default, Deserialize)]
pub struct BaselinesQuery {
    #[serde(default)]
    page: Option<usize>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    notice: String,
}

/// Tenants per page of the baselines page: each costs a read of its settings and its users'
/// names, so a page is kept small enough to render quickly with a thousand tenants.
const DRIFT_PAGE: usize = 25;

/// `GET /baselines`: every baseline with the drift of a page of tenants; one tenant's drift in
/// full.
pub async fn baselines(
    State(state): State<AppState>,
    who: Operator,
    Query(query): Query<BaselinesQuery>,
) -> PageResult {
    let mut tenants: Vec<store::TenantRecord> =
        state.store.list_tenants().await?.into_iter().filter(|t| t.gone_since.is_none()).collect();
    tenants.sort_by_key(|t| render::views::shown_name(t).to_ascii_lowercase());
    let pages = tenants.len().div_ceil(DRIFT_PAGE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let shown: Vec<&store::TenantRecord> = tenants.iter().skip((page - 1) * DRIFT_PAGE).take(DRIFT_PAGE).collect();
    let mut baselines = Vec::new();
    for meta in state.store.baseline_list().await? {
        let Some(value) = state.store.baseline_get(&meta.name).await? else { continue };
        match history::Baseline::from_json(&value) {
            Ok(b) => baselines.push((meta, b)),
            Err(e) => tracing::warn!(error = %e, baseline = %meta.name, "a stored baseline is unreadable"),
        }
    }
    // Each shown tenant's settings are read once, whatever the number of baselines; the tenant
    // whose drift is asked for in full is read too when it is on another page.
    let mut docs: HashMap<TenantId, Option<Value>> = HashMap::new();
    let reads = history::drift_reads();
    if !baselines.is_empty() {
        let asked = tenants.iter().find(|t| t.id.as_str() == query.tenant);
        for t in shown.iter().copied().chain(asked) {
            if !docs.contains_key(&t.id) {
                let doc = state.store.last_good_collections(&t.id, &reads).await?.map(|(_, d)| d);
                docs.insert(t.id.clone(), doc);
            }
        }
    }
    let drift_of = |baseline: &history::Baseline, id: &TenantId| match docs.get(id) {
        Some(Some(doc)) => history::drift(baseline, doc).map_err(|e| e.to_string()),
        _ => Err("no dataprint yet".to_string()),
    };
    let mut views = Vec::new();
    let mut detail = None;
    for (meta, baseline) in &baselines {
        if meta.name == query.name
            && let Some(t) = tenants.iter().find(|t| t.id.as_str() == query.tenant)
            && let Ok(d) = drift_of(baseline, &t.id)
        {
            let rows = d
                .iter()
                .map(|d| pages::DriftRow {
                    path: d.path.clone(),
                    kind: format!("{:?}", d.kind).to_lowercase(),
                    expected: pages::cell(d.expected.as_ref()),
                    actual: pages::cell(d.actual.as_ref()),
                })
                .collect();
            detail = Some((meta.name.clone(), render::views::shown_name(t), rows));
        }
        let rows = shown
            .iter()
            .map(|t| (t.id.to_string(), render::views::shown_name(t), drift_of(baseline, &t.id).map(|d| d.len())))
            .collect();
        views.push(pages::BaselineView {
            source: baseline.source_tenant_name.clone().unwrap_or_else(|| "an unnamed tenant".into()),
            name: meta.name.clone(),
            updated_at: meta.updated_at,
            tenants: rows,
        });
    }
    let list = pages::BaselineList {
        baselines: views,
        detail,
        tenants: tenants.iter().map(|t| (t.id.to_string(), render::views::shown_name(t))).collect(),
        notice: (query.notice == "saved").then(|| "The baseline is saved.".to_string()),
        first: (page - 1) * DRIFT_PAGE + 1,
        last: ((page - 1) * DRIFT_PAGE + shown.len()).max(1),
        page,
        pages,
    };
    Ok(html(pages::baselines(&who.chrome("/baselines"), &list)?))
}

#[derive(Debug, Deserialize)]
pub struct BaselineForm {
    csrf: String,
    tenant: String,
    name: String,
}

/// `POST /ui/baselines`: saves a tenant's latest good dataprint's settings as a baseline.
pub async fn save_baseline(State(state): State<AppState>, who: Operator, Form(form): Form<BaselineForm>) -> PageResult {
    who.allow(&form.csrf, Role::Engineer)?;
    let name = form.name.trim();
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(
            Problem::bad_request("a baseline name of 1 to 64 letters, digits, dots, dashes and underscores").into()
        );
    }
    let record = crate::api::find_tenant(&state, &form.tenant).await?;
    let (_, doc) = state
        .store
        .last_good_dataprint(&record.id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("{} has no dataprint yet", record.display_name)))?;
    let baseline = history::Baseline::from_dataprint(name, &doc).map_err(|e| Problem::bad_request(e.to_string()))?;
    let value = serde_json::to_value(&baseline).map_err(|_| Problem::internal())?;
    state.store.baseline_put(name, &value).await?;
    crate::auth::audit(&state.store, &who.principal(), "baseline.save", Some(name), json!({"tenant": record.id}))
        .await?;
    Ok(Redirect::to("/baselines?notice=saved").into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct SettingsQuery {
    #[serde(default)]
    notice: String,
}

/// `GET /settings`: schedule, webhooks, sign-in and roles, API tokens and the audit log.
pub async fn settings(State(state): State<AppState>, who: Operator, Query(query): Query<SettingsQuery>) -> PageResult {
    let notice = match query.notice.as_str() {
        "schedule" => Some("The schedule is saved; every replica follows it.".to_string()),
        "schedule-reset" => Some("The configuration file's schedule applies again.".to_string()),
        "revoked" => Some("The token is revoked.".to_string()),
        "test-sent" => Some("The webhook took the test notification.".to_string()),
        _ => None,
    };
    settings_page(&state, &who, notice, None).await
}

async fn settings_page(
    state: &AppState,
    who: &Operator,
    notice: Option<String>,
    new_token: Option<String>,
) -> PageResult {
    let (schedule, source) = crate::scheduler::effective(state.store.as_ref(), &state.config.schedule).await?;
    let mut view = pages::SettingsView {
        schedule_source: source.to_string(),
        schedule: vec![
            ("Scheduled inspections".into(), if schedule.enabled { "on" } else { "off" }.into()),
            ("Every tenant every".into(), format!("{} minutes", schedule.every_minutes)),
            ("Jitter".into(), format!("{:.0} %", schedule.jitter * 100.0)),
            (
                "Tenants per job".into(),
                if schedule.tenants_per_job == 0 {
                    "one job per pool".into()
                } else {
                    schedule.tenants_per_job.to_string()
                },
            ),
            (
                "Other intervals".into(),
                format!("{} labels, {} tenants", schedule.per_label.len(), schedule.per_tenant.len()),
            ),
        ],
        every_minutes: schedule.every_minutes,
        webhooks: state
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| pages::WebhookItem {
                // A target without a name is known by its URL, a secret: it is never shown.
                name: t.name.clone().unwrap_or_else(|| format!("webhook {}", i + 1)),
                min_severity: t.min_severity.map_or("every alert".into(), |s| format!("{} and above", s.as_str())),
            })
            .collect(),
        sign_in: sign_in_summary(state, who.role >= Role::Admin),
        notice,
        new_token,
        ..Default::default()
    };
    // Tokens and the audit log are an administrator's, as in the API.
    if who.role >= Role::Admin {
        view.tokens = state
            .store
            .token_list()
            .await?
            .into_iter()
            .filter(|t| !t.name.starts_with(crate::ui::LINK_NAME))
            .map(|t| pages::TokenItem {
                revoked: t.revoked_at.is_some() || t.expires_at <= Utc::now(),
                id: t.id,
                name: t.name,
                role: t.role,
                created_by: t.created_by,
                expires_at: t.expires_at,
                last_used_at: t.last_used_at,
            })
            .collect();
        view.audit = state
            .store
            .audit_list(&store::AuditFilter { limit: 100, ..Default::default() })
            .await?
            .into_iter()
            .map(|a| pages::AuditItem {
                at: a.at,
                actor: a.actor,
                action: a.action,
                target: a.target.unwrap_or_default(),
                address: a.address.unwrap_or_default(),
            })
            .collect();
    }
    Ok(html(pages::settings(&who.chrome("/settings"), &view)?))
}

/// How people sign in, and how their role is decided, for the settings page.
fn sign_in_summary(state: &AppState, admin: bool) -> Vec<(String, String)> {
    let access = &state.config.access;
    let mut out = Vec::new();
    match &access.oidc {
        Some(o) => {
            out.push(("Sign in with Microsoft".to_string(), format!("tenant {}, app {}", o.tenant, o.client_id)));
            let mut by_role: Vec<(crate::auth::Role, String)> = o
                .app_roles
                .iter()
                .map(|(v, r)| (*r, format!("app role {v}")))
                .chain(o.groups.iter().map(|(g, r)| (*r, format!("group {g}"))))
                .collect();
            by_role.sort();
            for role in [Role::Admin, Role::Engineer, Role::Viewer] {
                let who: Vec<&str> = by_role.iter().filter(|(r, _)| *r == role).map(|(_, w)| w.as_str()).collect();
                out.push((
                    format!("{} role", role.as_str()),
                    if who.is_empty() { "nobody".into() } else { who.join(", ") },
                ));
            }
        }
        None => out.push(("Sign in with Microsoft".to_string(), "off: configure [server.access.oidc]".into())),
    }
    // Who the break-glass administrator is matters only to administrators.
    out.push((
        "Break-glass administrator".to_string(),
        match &access.break_glass {
            None => "off".into(),
            Some(b) if admin => format!("on ({})", b.user),
            Some(_) => "on".into(),
        },
    ));
    out.push(("Sessions last".to_string(), format!("{} hours", access.session_hours.unwrap_or(12))));
    out
}

#[derive(Debug, Deserialize)]
pub struct ScheduleForm {
    csrf: String,
    every_minutes: u64,
    #[serde(default)]
    reset: Option<String>,
}

/// `POST /ui/settings/schedule`: sets how often every tenant is inspected, or goes back to the
/// file's schedule.
pub async fn set_schedule(State(state): State<AppState>, who: Operator, Form(form): Form<ScheduleForm>) -> PageResult {
    who.allow(&form.csrf, Role::Admin)?;
    if form.reset.is_some() {
        let _reset = crate::api::reset_schedule(State(state), who.principal()).await?;
        return Ok(Redirect::to("/settings?notice=schedule-reset").into_response());
    }
    let (mut schedule, _) = crate::scheduler::effective(state.store.as_ref(), &state.config.schedule).await?;
    schedule.every_minutes = form.every_minutes;
    let _saved = crate::api::put_schedule(State(state), who.principal(), Body(schedule)).await?;
    Ok(Redirect::to("/settings?notice=schedule").into_response())
}

#[derive(Debug, Deserialize)]
pub struct WebhookTestForm {
    csrf: String,
    name: String,
}

/// `POST /ui/settings/webhook-test`: sends a test notification to a webhook now.
pub async fn webhook_test(
    State(state): State<AppState>,
    who: Operator,
    Form(form): Form<WebhookTestForm>,
) -> PageResult {
    who.allow(&form.csrf, Role::Admin)?;
    let target = state
        .targets
        .iter()
        .enumerate()
        .find(|(i, t)| t.name.clone().unwrap_or_else(|| format!("webhook {}", i + 1)) == form.name)
        .map(|(_, t)| t.clone())
        .ok_or_else(|| Problem::not_found(format!("no webhook {:?}", form.name)))?;
    let outcome = notify::send_test(&target, Utc::now()).await;
    crate::auth::audit(
        &state.store,
        &who.principal(),
        "webhook.test",
        Some(&form.name),
        json!({"outcome": outcome.as_ref().err().map_or("delivered", String::as_str)}),
    )
    .await?;
    match outcome {
        Ok(()) => Ok(Redirect::to("/settings?notice=test-sent").into_response()),
        Err(e) => {
            settings_page(&state, &who, Some(format!("The test notification to {} failed: {e}", form.name)), None).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    csrf: String,
    name: String,
    role: String,
    days: i64,
}

/// `POST /ui/settings/tokens`: creates an API token and shows it once (the page is not a
/// redirect, so the token is in no URL and no history entry).
pub async fn create_token(State(state): State<AppState>, who: Operator, Form(form): Form<TokenForm>) -> PageResult {
    who.allow(&form.csrf, Role::Admin)?;
    let role = Role::parse(&form.role).ok_or_else(|| Problem::bad_request("the role is viewer, engineer or admin"))?;
    let body = crate::api::CreateToken { name: form.name, role, days: Some(form.days) };
    let response = crate::api::create_token(State(state.clone()), who.principal(), Body(body)).await?;
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024).await.map_err(|_| Problem::internal())?;
    let created: Value = serde_json::from_slice(&bytes).map_err(|_| Problem::internal())?;
    let token = created["token"].as_str().map(str::to_string);
    let mut page = settings_page(&state, &who, None, token).await?;
    page.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(page)
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    csrf: String,
    id: String,
}

/// `POST /ui/settings/tokens/revoke`: revokes an API token.
pub async fn revoke_token(State(state): State<AppState>, who: Operator, Form(form): Form<RevokeForm>) -> PageResult {
    who.allow(&form.csrf, Role::Admin)?;
    crate::api::revoke_token(State(state), who.principal(), Segment(form.id)).await?;
    Ok(Redirect::to("/settings?notice=revoked").into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn people_are_shown_by_name() {
        assert_eq!(super::person("user:Megan Bowen (oid-1)"), "Megan Bowen");
        assert_eq!(super::person("user:Ann (the 2nd) (oid-2)"), "Ann (the 2nd)");
        assert_eq!(super::person("token:psa (t1)"), "token:psa (t1)");
        assert_eq!(super::trigger_of("scheduler"), "schedule");
        assert_eq!(super::trigger_of("user:Ann (x)"), "user");
        assert_eq!(super::trigger_of("token:psa (t1)"), "API");
    }

    #[test]
    fn queries_have_the_functions_of_the_metrics_and_say_what_is_wrong() {
        let doc = serde_json::json!({"collections": {"users": {"u1": {"id": "u1", "tags": ["a", "b", "a"]}}}});
        assert_eq!(super::jmespath_search(&doc, "length(keys(collections.users))"), Ok(serde_json::json!(1)));
        assert_eq!(
            super::jmespath_search(&doc, "unique(collections.users.u1.tags)"),
            Ok(serde_json::json!(["a", "b"]))
        );
        assert_eq!(super::jmespath_search(&doc, "collections.nothing"), Ok(serde_json::Value::Null));
        assert!(super::jmespath_search(&doc, "collections.[[[").is_err_and(|e| e.starts_with("invalid JMESPath")));
        assert!(super::jmespath_search(&doc, "abs('x')").is_err_and(|e| e.starts_with("JMESPath")));
        assert!(super::jmespath_search(&doc, &"a".repeat(4097)).is_err_and(|e| e.contains("4096")));
    }
}
