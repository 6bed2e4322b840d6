//! The dashboard's pages beyond the overview and a tenant: runs, changes, alerts, the dataprint
//! explorer, baselines and settings. Like [`crate::dashboard`], they are askama templates with no
//! inline script or style; the server fills these view models from the store and the API.

use askama::Template;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::RenderError;
use crate::dashboard::Chrome;
use crate::text::esc;

/// One job on the runs page: what started it, how far it got and what it cost.
#[derive(Debug, Clone, Default)]
pub struct RunRow {
    /// The job, when the run came through the platform's queue.
    pub job_id: Option<String>,
    pub kind: String,
    /// `schedule`, `user` or `API`.
    pub trigger: String,
    /// Who or what queued it.
    pub by: String,
    pub pool: String,
    pub status: String,
    pub planned: u64,
    pub done: u64,
    pub failed: u64,
    pub queued_at: Option<DateTime<Utc>>,
    /// From its start to its end, or to now while it runs (`1 min 12 s`).
    pub duration: String,
    /// The run it recorded, once finished.
    pub run_id: Option<String>,
    pub graph_requests: Option<u64>,
    pub error: Option<String>,
}

impl RunRow {
    /// Whether the row follows its job live.
    pub fn live(&self) -> bool {
        self.job_id.is_some() && (self.status == "queued" || self.status == "running")
    }

    /// The job's id, or empty for a run made outside the queue.
    pub fn job(&self) -> &str {
        self.job_id.as_deref().unwrap_or_default()
    }
}

/// A duration for people: `850 ms`, `42 s`, `3 min 5 s`, `2 h 10 min`.
pub fn duration_text(d: chrono::Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{} s", ms / 1000),
        60_000..3_600_000 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

#[derive(Template)]
#[template(path = "dashboard/jobs.html")]
struct RunsPage<'a> {
    chrome: &'a Chrome,
    rows: &'a [RunRow],
    status: &'a str,
}

/// The runs page: every job, newest first, with its trigger, live progress, results and cost.
pub fn runs(chrome: &Chrome, rows: &[RunRow], status: &str) -> Result<String, RenderError> {
    Ok(RunsPage { chrome, rows, status }.render()?)
}

/// One tenant's result in a run.
#[derive(Debug, Clone)]
pub struct RunTenantRow {
    pub tenant_id: String,
    pub name: String,
    pub status: String,
    pub cause: Option<String>,
    pub summary: Option<String>,
    pub duration: String,
    pub dataprint_id: Option<String>,
}

/// A recorded run as its page shows it.
#[derive(Debug, Clone)]
pub struct RunDetail {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration: String,
    /// (figure, value): requests, retries, throttling, bytes.
    pub figures: Vec<(String, String)>,
    pub tenants: Vec<RunTenantRow>,
}

#[derive(Template)]
#[template(path = "dashboard/run.html")]
struct RunPage<'a> {
    chrome: &'a Chrome,
    run: &'a RunDetail,
}

/// A run's page: its figures and every tenant's result.
pub fn run(chrome: &Chrome, run: &RunDetail) -> Result<String, RenderError> {
    Ok(RunPage { chrome, run }.render()?)
}

/// A change event on the changes page.
#[derive(Debug, Clone)]
pub struct ChangeItem {
    pub at: DateTime<Utc>,
    pub tenant_id: String,
    pub tenant: String,
    pub severity: String,
    pub kind: String,
    pub summary: String,
}

/// The changes page: the timeline and the filters that chose it.
#[derive(Debug, Clone, Default)]
pub struct ChangeList {
    pub rows: Vec<ChangeItem>,
    pub tenant: String,
    pub severity: String,
    pub kind: String,
    pub days: u32,
    /// (id, name) of every tenant, for the filter.
    pub tenants: Vec<(String, String)>,
    pub kinds: Vec<String>,
}

#[derive(Template)]
#[template(path = "dashboard/changes.html")]
struct ChangesPage<'a> {
    chrome: &'a Chrome,
    l: &'a ChangeList,
    severities: [&'static str; 5],
}

/// The changes page.
pub fn changes(chrome: &Chrome, list: &ChangeList) -> Result<String, RenderError> {
    Ok(ChangesPage { chrome, l: list, severities: ["info", "low", "medium", "high", "critical"] }.render()?)
}

/// An alert on the alerts page.
#[derive(Debug, Clone)]
pub struct AlertItem {
    pub key: String,
    pub rule: String,
    pub tenant_id: String,
    pub tenant: String,
    pub severity: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub acked_at: Option<DateTime<Utc>>,
    pub acked_by: Option<String>,
    pub summary: String,
    /// The rule is muted for this tenant until then.
    pub muted_until: Option<DateTime<Utc>>,
}

/// A mute on the alerts page.
#[derive(Debug, Clone)]
pub struct MuteItem {
    pub tenant: String,
    pub rule: String,
    pub until: DateTime<Utc>,
    pub by: String,
    pub reason: String,
}

/// An alert rule, as configured.
#[derive(Debug, Clone)]
pub struct RuleItem {
    pub name: String,
    pub severity: String,
    pub description: String,
    pub condition: String,
}

/// The alerts page: alerts (open, or all), mutes and rules.
#[derive(Debug, Clone, Default)]
pub struct AlertList {
    pub show: String,
    /// How many alerts there are; `alerts` holds the first of them.
    pub total: usize,
    pub alerts: Vec<AlertItem>,
    pub mutes: Vec<MuteItem>,
    pub rules: Vec<RuleItem>,
    /// A message after an action (acknowledged, muted).
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/alerts.html")]
struct AlertsPage<'a> {
    chrome: &'a Chrome,
    l: &'a AlertList,
}

/// The alerts page.
pub fn alerts(chrome: &Chrome, list: &AlertList) -> Result<String, RenderError> {
    Ok(AlertsPage { chrome, l: list }.render()?)
}

/// A dataprint in a tenant's list.
#[derive(Debug, Clone)]
pub struct DataprintItem {
    pub id: String,
    pub taken_at: DateTime<Utc>,
    pub confirmed_at: DateTime<Utc>,
    pub status: String,
    pub run_id: String,
}

#[derive(Template)]
#[template(path = "dashboard/dataprints.html")]
struct DataprintsPage<'a> {
    chrome: &'a Chrome,
    tenant_id: &'a str,
    tenant: &'a str,
    items: &'a [DataprintItem],
}

/// A tenant's dataprints, newest first, with the form that compares two of them.
pub fn dataprints(
    chrome: &Chrome,
    tenant_id: &str,
    tenant: &str,
    items: &[DataprintItem],
) -> Result<String, RenderError> {
    Ok(DataprintsPage { chrome, tenant_id, tenant, items }.render()?)
}

/// A dataprint as the explorer shows it.
#[derive(Debug, Clone)]
pub struct DataprintView {
    pub id: String,
    pub tenant_id: String,
    pub tenant: String,
    pub taken_at: Option<DateTime<Utc>>,
    /// The JMESPath expression typed, and its result (pretty JSON) or why it failed.
    pub query: String,
    pub result: Option<Result<String, String>>,
    /// The collapsible tree, as HTML (escaped).
    pub tree: String,
}

#[derive(Template)]
#[template(path = "dashboard/dataprint.html")]
struct DataprintPage<'a> {
    chrome: &'a Chrome,
    d: &'a DataprintView,
    examples: [(&'static str, &'static str); 4],
}

/// The dataprint explorer: the JMESPath box with its result, the download, the tree.
pub fn dataprint(chrome: &Chrome, d: &DataprintView) -> Result<String, RenderError> {
    Ok(DataprintPage {
        chrome,
        d,
        examples: [
            (
                "Users without MFA",
                "values(collections.userRegistrationDetails)[?isMfaRegistered == `false`].userPrincipalName",
            ),
            ("Enforced CA policies", "values(collections.conditionalAccessPolicies)[?state == 'enabled'].displayName"),
            ("Collections and sizes", "collections.*.length(@)"),
            ("Guests", "values(collections.users)[?userType == 'Guest'].[displayName, mail]"),
        ],
    }
    .render()?)
}

/// One field that differs between two dataprints.
#[derive(Debug, Clone)]
pub struct FieldDiff {
    pub kind: String,
    pub severity: String,
    pub collection: String,
    /// The object's name (or id).
    pub object: String,
    pub field: String,
    pub before: String,
    pub after: String,
    pub summary: String,
}

/// Two dataprints side by side.
#[derive(Debug, Clone)]
pub struct CompareView {
    pub from_id: String,
    pub from_label: String,
    pub to_id: String,
    pub to_label: String,
    pub diffs: Vec<FieldDiff>,
    /// Why they cannot be compared, when they cannot.
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/compare.html")]
struct ComparePage<'a> {
    chrome: &'a Chrome,
    c: &'a CompareView,
}

/// The side-by-side comparison of two dataprints.
pub fn compare(chrome: &Chrome, c: &CompareView) -> Result<String, RenderError> {
    Ok(ComparePage { chrome, c }.render()?)
}

/// A value in a comparison cell: strings as they are, anything else as compact JSON, absence as
/// a dash.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "–".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A JSON document as a tree of `<details>` elements, which open and close without any script.
/// The first `budget` nodes are drawn; past that, a note says how many were left out (the query
/// box and the download show everything). Every key and value is escaped.
pub fn json_tree(value: &Value, budget: usize) -> String {
    let mut out = String::new();
    let mut left = budget;
    let mut skipped = 0usize;
    node(&mut out, None, value, 0, &mut left, &mut skipped);
    if skipped > 0 {
        out.push_str(&format!(
            "<p class=\"muted\">{skipped} more values are not drawn here; use the query box or the download.</p>"
        ));
    }
    out
}

fn count(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(count).sum::<usize>(),
        Value::Array(a) => 1 + a.iter().map(count).sum::<usize>(),
        _ => 1,
    }
}

fn node(out: &mut String, key: Option<&str>, v: &Value, depth: usize, left: &mut usize, skipped: &mut usize) {
    if *left == 0 {
        *skipped += count(v);
        return;
    }
    *left -= 1;
    let label = key.map(|k| format!("<span class=\"key\">{}</span>", esc(k))).unwrap_or_default();
    match v {
        Value::Object(m) if !m.is_empty() => {
            // The top two levels start open: the document's sections and its collections.
            let open = if depth < 2 { " open" } else { "" };
            out.push_str(&format!(
                "<details{open}><summary>{label} <span class=\"muted\">{{{} {}}}</span></summary><ul class=\"tree\">",
                m.len(),
                if m.len() == 1 { "key" } else { "keys" }
            ));
            for (k, child) in m {
                if *left == 0 {
                    *skipped += count(child);
                    continue;
                }
                out.push_str("<li>");
                node(out, Some(k), child, depth + 1, left, skipped);
                out.push_str("</li>");
            }
            out.push_str("</ul></details>");
        }
        Value::Array(a) if !a.is_empty() => {
            out.push_str(&format!(
                "<details><summary>{label} <span class=\"muted\">[{} {}]</span></summary><ul class=\"tree\">",
                a.len(),
                if a.len() == 1 { "item" } else { "items" }
            ));
            for (i, child) in a.iter().enumerate() {
                if *left == 0 {
                    *skipped += count(child);
                    continue;
                }
                out.push_str("<li>");
                node(out, Some(&i.to_string()), child, depth + 1, left, skipped);
                out.push_str("</li>");
            }
            out.push_str("</ul></details>");
        }
        leaf => {
            let sep = if key.is_some() { ": " } else { "" };
            out.push_str(&format!("{label}{sep}<code>{}</code>", esc(&leaf.to_string())));
        }
    }
}

/// A saved baseline and how every tenant drifts from it.
#[derive(Debug, Clone)]
pub struct BaselineView {
    pub name: String,
    pub source: String,
    pub updated_at: DateTime<Utc>,
    /// (tenant id, name, differences, or why it could not be compared).
    pub tenants: Vec<(String, String, Result<usize, String>)>,
}

/// One difference of a tenant from a baseline.
#[derive(Debug, Clone)]
pub struct DriftRow {
    pub path: String,
    pub kind: String,
    pub expected: String,
    pub actual: String,
}

/// The baselines page.
#[derive(Debug, Clone, Default)]
pub struct BaselineList {
    pub baselines: Vec<BaselineView>,
    /// The baseline and tenant whose drift is shown in full, with its rows.
    pub detail: Option<(String, String, Vec<DriftRow>)>,
    /// (id, name) of every tenant, for the save form.
    pub tenants: Vec<(String, String)>,
    pub notice: Option<String>,
    /// The page of tenants whose drift is shown (from 1), of how many, and the positions of its
    /// first and last tenant (from 1).
    pub page: usize,
    pub pages: usize,
    pub first: usize,
    pub last: usize,
}

#[derive(Template)]
#[template(path = "dashboard/baselines.html")]
struct BaselinesPage<'a> {
    chrome: &'a Chrome,
    l: &'a BaselineList,
}

/// The baselines page: each baseline with every tenant's drift, a tenant's drift in full, and
/// the form that saves a tenant as a baseline.
pub fn baselines(chrome: &Chrome, list: &BaselineList) -> Result<String, RenderError> {
    Ok(BaselinesPage { chrome, l: list }.render()?)
}

/// An API token on the settings page.
#[derive(Debug, Clone)]
pub struct TokenItem {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_by: String,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// An entry of the audit log.
#[derive(Debug, Clone)]
pub struct AuditItem {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub address: String,
}

/// A webhook target.
#[derive(Debug, Clone)]
pub struct WebhookItem {
    pub name: String,
    pub min_severity: String,
}

/// The settings page.
#[derive(Debug, Clone, Default)]
pub struct SettingsView {
    /// Where the schedule comes from (`file` or `api`), and its settings as (name, value).
    pub schedule_source: String,
    pub schedule: Vec<(String, String)>,
    pub every_minutes: u64,
    pub webhooks: Vec<WebhookItem>,
    /// How people sign in and which Entra ID app roles or groups give which role.
    pub sign_in: Vec<(String, String)>,
    pub tokens: Vec<TokenItem>,
    pub audit: Vec<AuditItem>,
    pub notice: Option<String>,
    /// A token just created: shown once.
    pub new_token: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/settings.html")]
struct SettingsPage<'a> {
    chrome: &'a Chrome,
    s: &'a SettingsView,
}

/// The settings page.
pub fn settings(chrome: &Chrome, s: &SettingsView) -> Result<String, RenderError> {
    Ok(SettingsPage { chrome, s }.render()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_tree_escapes_and_stops_at_its_budget() {
        let doc = json!({"collections": {"users": {"1": {"displayName": "<script>alert(1)</script>"}}}});
        let tree = json_tree(&doc, 100);
        assert!(tree.contains("&lt;script&gt;") && !tree.contains("<script>"), "{tree}");
        assert!(tree.contains("<details open>"), "the top levels start open");
        let many = json!({"a": (0..50).collect::<Vec<_>>()});
        let tree = json_tree(&many, 10);
        assert!(tree.contains("42 more values are not drawn"), "{tree}");
        assert_eq!(tree.matches("<li>").count(), 1 + 8, "nothing is drawn past the budget: {tree}");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_text(chrono::Duration::milliseconds(850)), "850 ms");
        assert_eq!(duration_text(chrono::Duration::seconds(42)), "42 s");
        assert_eq!(duration_text(chrono::Duration::seconds(185)), "3 min 5 s");
        assert_eq!(duration_text(chrono::Duration::minutes(130)), "2 h 10 min");
        assert_eq!(cell(Some(&json!("x"))), "x");
        assert_eq!(cell(Some(&json!({"a": 1}))), "{\"a\":1}");
        assert_eq!(cell(None), "–");
    }
}
