//! View models: what a page shows, read from the store and formatted for people.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use store::{RunId, RunRecord, RunStatus, Store, TenantId, TenantRecord, TenantRole};

use crate::RenderError;
use crate::text::rich;

/// One tenant in a table: who it is, how it is reached, its last result and its figures.
#[derive(Debug, Clone, Serialize)]
pub struct TenantRow {
    pub id: String,
    /// Its name, with the engineer's label beside it.
    pub name: String,
    pub domain: String,
    pub partner: bool,
    pub access: String,
    /// `ok`, `partial`, `failed`, or `never` when the run did not reach it.
    pub status: String,
    pub finished_at: Option<DateTime<Utc>>,
    pub cause: Option<String>,
    pub summary: Option<String>,
    /// The built-in metric values in effect, by name.
    pub figures: BTreeMap<String, Value>,
}

impl TenantRow {
    /// A figure for display: numbers as they are, percentages with a sign, booleans as on/off, a
    /// dash when unknown.
    pub fn figure(&self, name: &str) -> String {
        let percent = name.ends_with("_pct");
        match self.figures.get(name) {
            None | Some(Value::Null) => "–".into(),
            Some(Value::Bool(b)) => (if *b { "on" } else { "off" }).into(),
            Some(Value::Number(n)) if percent => format!("{n}%"),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => other.to_string(),
        }
    }
}

/// A cause and the tenants it affects: each tenant's own summary, then the fix they share.
#[derive(Debug, Clone, Serialize)]
pub struct CauseCard {
    pub cause: String,
    /// (tenant name, its own summary as HTML).
    pub tenants: Vec<(String, String)>,
    /// Fix steps as HTML (commands as code, URLs as links).
    pub fix: Vec<String>,
}

/// One collector of a tenant.
#[derive(Debug, Clone, Serialize)]
pub struct CollectorRow {
    pub name: String,
    pub status: String,
    pub items: String,
    /// Why it did not run, as HTML; empty when it ran.
    pub why: String,
}

/// A tenant's details: its diagnosis and collectors.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDetail {
    pub id: String,
    pub name: String,
    pub status: String,
    pub cause: Option<String>,
    /// The diagnosis summary, as HTML.
    pub summary: Option<String>,
    pub last_good_at: Option<DateTime<Utc>>,
    pub collectors: Vec<CollectorRow>,
    /// Every collector failed or was skipped for the tenant's own cause: the rows say nothing the
    /// cause does not, so they are folded away.
    pub collapsed: bool,
}

/// A warning about something that will break soon.
#[derive(Debug, Clone, Serialize)]
pub struct WarningRow {
    pub severity: String,
    pub kind: String,
    /// As HTML.
    pub summary: String,
    pub fix: Vec<String>,
}

/// An alert.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub key: String,
    pub rule: String,
    pub tenant: String,
    pub severity: String,
    pub opened_at: DateTime<Utc>,
    pub summary: String,
}

/// A change event.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRow {
    pub at: DateTime<Utc>,
    pub tenant: String,
    pub severity: String,
    pub kind: String,
    pub summary: String,
}

/// A run, as a report heads it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: String,
    /// The process running it died: the run is incomplete.
    pub interrupted: bool,
    /// Customers the run never reached (an interrupted run's remainder).
    pub unreached: Vec<String>,
    pub graph_requests: Option<u64>,
}

/// Tenant counts by status. Customers only: the partner is shown on its own, everywhere.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub ok: usize,
    pub partial: usize,
    pub failed: usize,
    pub total: usize,
}

/// Everything the HTML report shows.
#[derive(Debug, Clone, Serialize)]
pub struct ReportView {
    pub generated_at: DateTime<Utc>,
    pub run: RunView,
    pub counts: Counts,
    pub partner: Option<TenantRow>,
    pub tenants: Vec<TenantRow>,
    pub causes: Vec<CauseCard>,
    pub warnings: Vec<WarningRow>,
    pub alerts: Vec<AlertRow>,
    pub changes: Vec<ChangeRow>,
    pub details: Vec<TenantDetail>,
    /// Posture across every customer over time, one chart per figure.
    pub posture: Vec<PostureChart>,
}

/// A chart of the fleet's posture: its caption and the SVG.
#[derive(Debug, Clone, Serialize)]
pub struct PostureChart {
    pub title: String,
    pub svg: String,
}

/// How the fleet's value of a metric is made from each customer's.
#[derive(Clone, Copy)]
enum Fold {
    /// The mean of the customers that have a value.
    Mean,
    /// The sum over every customer.
    Sum,
    /// The share of customers (0 to 100) whose value is above zero.
    ShareAboveZero,
}

/// The fleet posture charts: (metric, chart title, how customers are folded into one value).
const POSTURE: [(&str, &str, Fold); 4] = [
    ("mfa_registered_pct", "MFA registration, mean of customers (%)", Fold::Mean),
    ("secure_score_pct", "Secure Score, mean of customers (%)", Fold::Mean),
    ("global_admins", "Global Administrators, all customers", Fold::Sum),
    ("ca_policies_enabled", "Customers with an enforced Conditional Access policy (%)", Fold::ShareAboveZero),
];

/// The most points a posture line gets; more change points are sampled evenly.
const POSTURE_POINTS: usize = 60;

/// Posture across the customers over the `days` before `end`: for each figure, the value held by
/// every customer at the end of each inspection (sampled down to [`POSTURE_POINTS`]) and now,
/// folded into one.
pub async fn posture(
    store: &dyn Store,
    customers: &std::collections::HashSet<TenantId>,
    end: DateTime<Utc>,
    days: i64,
) -> Result<Vec<PostureChart>, RenderError> {
    let start = end - chrono::Duration::days(days);
    // The fleet is sampled when inspections finished: between the commits of one run, the fold
    // would see some customers with this run's values and others not yet inspected.
    let mut ends: Vec<DateTime<Utc>> = store
        .list_runs(5000)
        .await?
        .into_iter()
        .filter(|r| r.kind == "inspect")
        .filter_map(|r| r.finished_at)
        .filter(|at| *at >= start && *at <= end)
        .collect();
    ends.sort();
    ends.dedup();
    let mut charts = Vec::new();
    for (metric, title, fold) in POSTURE {
        let mut points: Vec<store::MetricPoint> = store
            .metric_series(None, Some(metric), None)
            .await?
            .into_iter()
            .filter(|p| customers.contains(&p.tenant_id) && p.at <= end)
            .collect();
        points.sort_by_key(|p| p.at);
        let mut moments: Vec<DateTime<Utc>> = ends.clone();
        if moments.len() > POSTURE_POINTS {
            let step = moments.len() as f64 / POSTURE_POINTS as f64;
            let last = moments[moments.len() - 1];
            moments = (0..POSTURE_POINTS).map(|i| moments[(i as f64 * step) as usize]).collect();
            moments.push(last);
        }
        if !moments.is_empty() && moments.last() != Some(&end) {
            moments.push(end);
        }
        let mut held: HashMap<&TenantId, f64> = HashMap::new();
        let mut next = 0;
        let mut line = Vec::new();
        for at in moments {
            while next < points.len() && points[next].at <= at {
                let p = &points[next];
                match p.value.as_f64() {
                    Some(v) => held.insert(&p.tenant_id, v),
                    None => held.remove(&p.tenant_id),
                };
                next += 1;
            }
            if held.is_empty() {
                continue;
            }
            let n = held.len() as f64;
            let value = match fold {
                Fold::Mean => held.values().sum::<f64>() / n,
                Fold::Sum => held.values().sum::<f64>(),
                Fold::ShareAboveZero => held.values().filter(|v| **v > 0.0).count() as f64 * 100.0 / n,
            };
            line.push((at, (value * 10.0).round() / 10.0));
        }
        let series = crate::chart::Series { label: metric.to_string(), points: line };
        charts
            .push(PostureChart { title: title.to_string(), svg: crate::chart::line_chart(title, &[series], 420, 180) });
    }
    Ok(charts)
}

/// A tenant's name as tenantscope shows it: its own name with the engineer's label beside it.
pub fn shown_name(t: &TenantRecord) -> String {
    match t.label.as_deref() {
        Some(label) if !label.eq_ignore_ascii_case(&t.display_name) => format!("{} [{label}]", t.display_name),
        _ => t.display_name.clone(),
    }
}

fn text_of(v: Option<&Value>, key: &str) -> Option<String> {
    v.and_then(|v| v.get(key)).and_then(Value::as_str).map(str::to_string)
}

fn fix_of(v: Option<&Value>) -> Vec<String> {
    v.and_then(|v| v.get("fix"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(rich).collect())
        .unwrap_or_default()
}

/// A run to report: the one given, or the newest inspection.
pub async fn pick_run(store: &dyn Store, run: Option<&RunId>) -> Result<RunRecord, RenderError> {
    match run {
        Some(id) => store.get_run(id).await?.ok_or_else(|| RenderError::UnknownRun(id.to_string())),
        None => store.list_runs(50).await?.into_iter().find(|r| r.kind == "inspect").ok_or(RenderError::NoRun),
    }
}

/// The report of a run (the newest inspection when none is given).
pub async fn report_view(
    store: &dyn Store,
    run: Option<&RunId>,
    now: DateTime<Utc>,
) -> Result<ReportView, RenderError> {
    let run = pick_run(store, run).await?;
    let results = store.tenant_runs(&run.id).await?;
    assemble(store, &run, results, Scope::Run, now).await
}

/// The whole fleet as it stands: every tenant's latest result from whichever run inspected it
/// last (the platform's runs each cover some tenants), the changes of the last day, the warnings of
/// the newest inspection. The per-tenant collector details are left out (the tenant's own page
/// shows them), so that the view costs a few reads however many tenants there are.
pub async fn fleet_view(store: &dyn Store, now: DateTime<Utc>) -> Result<ReportView, RenderError> {
    let run = pick_run(store, None).await?;
    let results = store.latest_tenant_runs().await?;
    assemble(store, &run, results, Scope::Fleet, now).await
}

/// What a view covers.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// One run, with each tenant's collectors.
    Run,
    /// Every tenant's latest result.
    Fleet,
}

async fn assemble(
    store: &dyn Store,
    run: &RunRecord,
    results: Vec<store::TenantRunRecord>,
    scope: Scope,
    now: DateTime<Utc>,
) -> Result<ReportView, RenderError> {
    let known: HashMap<TenantId, TenantRecord> =
        store.list_tenants().await?.into_iter().map(|t| (t.id.clone(), t)).collect();
    let at = if scope == Scope::Fleet { now } else { run.finished_at.unwrap_or(now) };
    let mut figures: HashMap<TenantId, BTreeMap<String, Value>> = HashMap::new();
    let points = match scope {
        // The dashboard's overview shows the table's figures only: reading those alone keeps it
        // quick with a thousand tenants.
        Scope::Fleet => {
            let mut points = Vec::new();
            for name in crate::csv::FIGURES {
                points.extend(store.metric_at(at, name).await?);
            }
            points
        }
        // A report carries every figure (its JSON form is the view model).
        Scope::Run => store.metrics_at(at).await?,
    };
    for p in points {
        figures.entry(p.tenant_id).or_default().insert(p.name, p.value);
    }
    let mut partner = None;
    let mut tenants = Vec::new();
    let mut details = Vec::new();
    let mut counts = Counts::default();
    let mut reached = Vec::new();
    for tr in &results {
        reached.push(tr.tenant_id.clone());
        let record = known.get(&tr.tenant_id);
        let name = record.map(shown_name).unwrap_or_else(|| tr.tenant_id.to_string());
        let is_partner = record.is_some_and(|t| t.role == TenantRole::Partner);
        let status = tr.status.as_str().to_string();
        let cause = text_of(tr.diagnosis.as_ref(), "cause");
        let row = TenantRow {
            id: tr.tenant_id.to_string(),
            name: name.clone(),
            domain: record.and_then(|t| t.domain.clone()).unwrap_or_default(),
            partner: is_partner,
            access: record.map(|t| t.auth.as_str().to_string()).unwrap_or_default(),
            status: status.clone(),
            finished_at: Some(tr.finished_at),
            cause: cause.clone(),
            summary: text_of(tr.diagnosis.as_ref(), "summary"),
            figures: figures.remove(&tr.tenant_id).unwrap_or_default(),
        };
        let outcomes = match scope {
            Scope::Run => store.collector_outcomes(&run.id, &tr.tenant_id).await?,
            Scope::Fleet => Vec::new(),
        };
        let collectors: Vec<CollectorRow> = outcomes
            .iter()
            .map(|o| {
                let why = match (&o.diagnosis, &o.reason) {
                    (Some(d), _) => {
                        let c = text_of(Some(d), "cause").unwrap_or_default();
                        let s = text_of(Some(d), "summary").unwrap_or_default();
                        format!("<code>{}</code> {}", crate::text::esc(&c), rich(&s))
                    }
                    (None, Some(r)) => rich(&text_of(Some(r), "detail").unwrap_or_default()),
                    (None, None) => String::new(),
                };
                CollectorRow {
                    name: o.collector.clone(),
                    status: o.status.as_str().to_string(),
                    items: o.items.map(|n| n.to_string()).unwrap_or_default(),
                    why,
                }
            })
            .collect();
        let collapsed = tr.status == store::TenantRunStatus::Failed
            && !outcomes.is_empty()
            && outcomes.iter().all(|o| o.status != store::OutcomeStatus::Ok);
        let last_good_at = match (&tr.dataprint_id, scope) {
            (None, Scope::Run) => store.last_good_dataprint(&tr.tenant_id).await?.map(|(m, _)| m.taken_at),
            _ => None,
        };
        if scope == Scope::Run {
            details.push(TenantDetail {
                id: row.id.clone(),
                name: name.clone(),
                status: status.clone(),
                cause: cause.clone(),
                summary: row.summary.as_deref().map(rich),
                last_good_at,
                collectors,
                collapsed,
            });
        }
        if is_partner {
            partner = Some(row);
            continue;
        }
        counts.total += 1;
        match tr.status {
            store::TenantRunStatus::Ok => counts.ok += 1,
            store::TenantRunStatus::Partial => counts.partial += 1,
            store::TenantRunStatus::Failed => counts.failed += 1,
        }
        tenants.push(row);
    }
    tenants.sort_by_key(|t| t.name.to_ascii_lowercase());
    details.sort_by_key(|d| {
        (d.id != partner.as_ref().map(|p| p.id.clone()).unwrap_or_default(), d.name.to_ascii_lowercase())
    });

    // Causes: each tenant's own summary, under the fix its tenants share (a tenant alone keeps its
    // own steps, which name it; several share the steps with their names left out).
    // (cause, the fix without names, [(tenant, its summary, its own fix)]).
    type Member = (String, String, Vec<String>);
    let mut groups: Vec<(String, Vec<String>, Vec<Member>)> = Vec::new();
    for tr in &results {
        let Some(cause) = text_of(tr.diagnosis.as_ref(), "cause") else { continue };
        let record = known.get(&tr.tenant_id);
        let name = record.map(shown_name).unwrap_or_else(|| tr.tenant_id.to_string());
        let own_name = record.map(|t| t.display_name.clone()).unwrap_or_default();
        let summary = rich(&text_of(tr.diagnosis.as_ref(), "summary").unwrap_or_default());
        let fix: Vec<String> = tr
            .diagnosis
            .as_ref()
            .and_then(|d| d.get("fix"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let generic = diagnose::generalize_fix(&fix, &own_name, tr.tenant_id.as_str());
        match groups.iter_mut().find(|(c, g, _)| *c == cause && *g == generic) {
            Some((_, _, members)) => members.push((name, summary, fix)),
            None => groups.push((cause, generic, vec![(name, summary, fix)])),
        }
    }
    let mut causes: Vec<CauseCard> = groups
        .into_iter()
        .map(|(cause, generic, members)| {
            let fix = match members.as_slice() {
                [(_, _, own)] => own.iter().map(|s| rich(s)).collect(),
                _ => generic.iter().map(|s| rich(s)).collect(),
            };
            CauseCard { cause, tenants: members.into_iter().map(|(n, s, _)| (n, s)).collect(), fix }
        })
        .collect();
    causes.sort_by(|a, b| a.cause.cmp(&b.cause));

    let warnings = run
        .stats
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .map(|w| WarningRow {
                    severity: text_of(Some(w), "severity").unwrap_or_default(),
                    kind: text_of(Some(w), "kind").unwrap_or_default(),
                    summary: rich(&text_of(Some(w), "summary").unwrap_or_default()),
                    fix: fix_of(Some(w)),
                })
                .collect()
        })
        .unwrap_or_default();
    let name_of = |id: &TenantId| known.get(id).map(shown_name).unwrap_or_else(|| id.to_string());
    let alerts = store
        .open_alerts(None)
        .await?
        .into_iter()
        .map(|a| AlertRow {
            summary: text_of(Some(&a.payload), "summary")
                .or_else(|| text_of(Some(&a.payload), "message"))
                .unwrap_or_default(),
            tenant: name_of(&a.tenant_id),
            severity: a.severity.as_str().to_string(),
            key: a.key,
            rule: a.rule,
            opened_at: a.opened_at,
        })
        .collect();
    let since = match scope {
        Scope::Run => run.started_at,
        Scope::Fleet => now - chrono::Duration::days(1),
    };
    let changes = store
        .events(&store::EventFilter { since: Some(since), limit: Some(500), ..Default::default() })
        .await?
        .into_iter()
        .filter(|e| scope == Scope::Fleet || e.run_id == run.id)
        .map(|e| ChangeRow {
            at: e.at,
            tenant: name_of(&e.tenant_id),
            severity: e.severity.as_str().to_string(),
            kind: text_of(Some(&e.event), "kind").unwrap_or_default(),
            summary: text_of(Some(&e.event), "summary").unwrap_or_default(),
        })
        .collect();
    let interrupted = scope == Scope::Run && run.status == RunStatus::Interrupted;
    let mut unreached: Vec<String> = if interrupted {
        known
            .values()
            .filter(|t| t.role == TenantRole::Customer && t.gone_since.is_none() && !reached.contains(&t.id))
            .map(shown_name)
            .collect()
    } else {
        Vec::new()
    };
    unreached.sort_by_key(|n| n.to_ascii_lowercase());
    let customers: std::collections::HashSet<TenantId> =
        known.values().filter(|t| t.role == TenantRole::Customer).map(|t| t.id.clone()).collect();
    let posture = posture(store, &customers, at, 90).await?;
    Ok(ReportView {
        generated_at: now,
        run: RunView {
            id: run.id.to_string(),
            started_at: run.started_at,
            finished_at: run.finished_at,
            status: run.status.as_str().to_string(),
            interrupted,
            unreached,
            graph_requests: run.stats.get("graph_requests").and_then(Value::as_u64),
        },
        counts,
        partner,
        tenants,
        causes,
        warnings,
        alerts,
        changes,
        details,
        posture,
    })
}
