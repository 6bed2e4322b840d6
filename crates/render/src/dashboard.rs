//! The dashboard's pages (`tenantscope serve` at `/`), on the templates and partials the HTML
//! report uses: a figure, a cause card or a tenant row looks the same in both.
//!
//! The pages are rendered on the server with no inline script or style (the dashboard's
//! Content-Security-Policy allows neither): styles and the small script that follows a job's
//! progress are files with content hashes in their names.

use askama::Template;
use chrono::{DateTime, Utc};

use crate::RenderError;
use crate::views::{AlertRow, CollectorRow, ReportView};

/// The script of the dashboard: follows a running job's progress over Server-Sent Events and
/// shows times in the viewer's time zone.
pub const JS: &str = include_str!("../assets/dashboard.js");

/// What every page carries: who is signed in, what they may do, and where the assets are.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub user: String,
    pub role: String,
    /// Whether the caller may start jobs (an engineer or an admin).
    pub can_run: bool,
    /// Whether the caller may change the partner connection and settings (an admin).
    pub can_admin: bool,
    /// The session's CSRF token, sent back by every form.
    pub csrf: String,
    pub css_href: String,
    pub js_href: String,
    /// The navigation entry of this page.
    pub active: String,
}

impl Chrome {
    pub fn nav(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("/", "Overview"),
            ("/tenants", "Tenants"),
            ("/jobs", "Runs"),
            ("/changes", "Changes"),
            ("/alerts", "Alerts"),
            ("/baselines", "Baselines"),
            ("/agents", "Agents"),
            ("/partner", "Partner"),
            ("/settings", "Settings"),
        ]
    }
}

#[derive(Template)]
#[template(path = "dashboard/signin.html")]
struct SignInPage<'a> {
    chrome: &'a Chrome,
    microsoft: bool,
    /// `return_to=...`, encoded.
    return_query: String,
    message: Option<&'a str>,
}

/// The sign-in page.
pub fn sign_in(
    chrome: &Chrome,
    microsoft: bool,
    return_to: &str,
    message: Option<&str>,
) -> Result<String, RenderError> {
    let return_query =
        url::form_urlencoded::Serializer::new(String::new()).append_pair("return_to", return_to).finish();
    Ok(SignInPage { chrome, microsoft, return_query, message }.render()?)
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage<'a> {
    chrome: &'a Chrome,
    v: &'a ReportView,
}

/// The overview: counts, causes with their tenants and fix, warnings, alerts, changes of the last
/// day, and the customers' table.
pub fn overview(chrome: &Chrome, v: &ReportView) -> Result<String, RenderError> {
    Ok(OverviewPage { chrome, v }.render()?)
}

#[derive(Template)]
#[template(path = "dashboard/problem.html")]
struct ProblemPage<'a> {
    chrome: &'a Chrome,
    title: &'a str,
    detail: &'a str,
}

/// Why the dashboard refused or could not do something, as a page a person reads.
pub fn problem(chrome: &Chrome, title: &str, detail: &str) -> Result<String, RenderError> {
    Ok(ProblemPage { chrome, title, detail }.render()?)
}

/// One row of the tenants page.
#[derive(Debug, Clone)]
pub struct TenantListRow {
    pub id: String,
    pub name: String,
    pub domain: String,
    /// Empty before the first inspection.
    pub status: String,
    pub cause: Option<String>,
    pub summary: Option<String>,
    pub last_inspected: Option<DateTime<Utc>>,
    pub access: String,
    pub pool: String,
    pub tags: Vec<String>,
    /// Figures of the tenants page: user accounts, MFA registration (%), Secure Score (%), and
    /// days until its GDAP access ends (the soonest active relationship).
    pub users: Option<f64>,
    pub mfa_pct: Option<f64>,
    pub score_pct: Option<f64>,
    pub gdap_days: Option<i64>,
}

impl TenantListRow {
    /// A figure for a cell: a dash when unknown, whole numbers without decimals.
    pub fn num(v: &Option<f64>, suffix: &str) -> String {
        match v {
            None => "–".into(),
            Some(v) if v.fract() == 0.0 => format!("{v:.0}{suffix}"),
            Some(v) => format!("{v:.1}{suffix}"),
        }
    }

    /// How long ago it was last inspected: `5 min`, `3 h`, `2 days`.
    pub fn age(&self) -> String {
        let Some(at) = self.last_inspected else { return String::new() };
        let d = Utc::now() - at;
        match (d.num_days(), d.num_hours(), d.num_minutes()) {
            (days, _, _) if days >= 2 => format!("{days} days ago"),
            (_, hours, _) if hours >= 1 => format!("{hours} h ago"),
            (_, _, minutes) => format!("{} min ago", minutes.max(0)),
        }
    }

    pub fn gdap(&self) -> String {
        match self.gdap_days {
            None => "–".into(),
            Some(d) if d < 0 => "ended".into(),
            Some(d) => d.to_string(),
        }
    }

    /// The row as CSV cells, in [`TENANT_CSV_HEADER`] order.
    pub fn csv(&self) -> String {
        let opt = |v: &Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        [
            self.id.clone(),
            self.name.clone(),
            self.domain.clone(),
            self.access.clone(),
            self.pool.clone(),
            self.tags.join(" "),
            self.status.clone(),
            self.cause.clone().unwrap_or_default(),
            self.last_inspected.map(|t| t.to_rfc3339()).unwrap_or_default(),
            opt(&self.users),
            opt(&self.mfa_pct),
            opt(&self.score_pct),
            self.gdap_days.map(|d| d.to_string()).unwrap_or_default(),
            self.summary.clone().unwrap_or_default(),
        ]
        .iter()
        .map(|f| crate::csv::field(f))
        .collect::<Vec<_>>()
        .join(",")
    }
}

/// The header of the tenants page's CSV export.
pub const TENANT_CSV_HEADER: &str = "tenant_id,name,domain,access,pool,tags,status,cause,last_inspected,users,mfa_registered_pct,secure_score_pct,gdap_days_left,summary";

/// The tenants page: the rows to show and the filters that chose them.
#[derive(Debug, Clone, Default)]
pub struct TenantList {
    pub rows: Vec<TenantListRow>,
    pub total: usize,
    pub q: String,
    pub status: String,
    pub cause: String,
    pub pool: String,
    pub tag: String,
    pub access: String,
    pub sort: String,
    pub causes: Vec<String>,
    pub pools: Vec<String>,
    pub tags: Vec<String>,
    pub accesses: Vec<String>,
}

#[derive(Template)]
#[template(path = "dashboard/tenants.html")]
struct TenantsPage<'a> {
    chrome: &'a Chrome,
    rows: &'a [TenantListRow],
    total: usize,
    q: &'a str,
    status: &'a str,
    cause: &'a str,
    pool: &'a str,
    tag: &'a str,
    access: &'a str,
    sort: &'a str,
    causes: &'a [String],
    pools: &'a [String],
    tags: &'a [String],
    accesses: &'a [String],
    columns: Vec<(&'static str, &'static str)>,
}

impl TenantsPage<'_> {
    /// The query string that sorts by `key`, ascending, or descending when it already is.
    fn sort_link(&self, key: &str) -> String {
        let sort = if self.sort == key { format!("-{key}") } else { key.to_string() };
        let mut pairs = self.filters();
        pairs.append_pair("sort", &sort);
        pairs.finish()
    }

    /// The CSV export of what the page shows, in its order.
    fn csv_link(&self) -> String {
        let mut pairs = self.filters();
        pairs.append_pair("sort", self.sort);
        format!("/tenants.csv?{}", pairs.finish())
    }

    fn filters(&self) -> url::form_urlencoded::Serializer<'static, String> {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", self.q),
            ("status", self.status),
            ("cause", self.cause),
            ("pool", self.pool),
            ("tag", self.tag),
            ("access", self.access),
        ] {
            if !v.is_empty() {
                pairs.append_pair(k, v);
            }
        }
        pairs
    }

    fn aria_sort(&self, key: &str) -> &'static str {
        match self.sort.strip_prefix('-') {
            Some(k) if k == key => "descending",
            None if self.sort == key => "ascending",
            _ => "none",
        }
    }
}

/// The tenants page.
pub fn tenants(chrome: &Chrome, list: &TenantList) -> Result<String, RenderError> {
    Ok(TenantsPage {
        chrome,
        rows: &list.rows,
        total: list.total,
        q: &list.q,
        status: &list.status,
        cause: &list.cause,
        pool: &list.pool,
        tag: &list.tag,
        access: &list.access,
        sort: &list.sort,
        causes: &list.causes,
        pools: &list.pools,
        tags: &list.tags,
        accesses: &list.accesses,
        columns: vec![
            ("name", "Tenant"),
            ("domain", "Domain"),
            ("status", "Status"),
            ("cause", "Cause"),
            ("last_inspected", "Last inspected"),
            ("users", "Users"),
            ("mfa", "MFA %"),
            ("score", "Secure Score"),
            ("gdap", "GDAP days left"),
            ("access", "Access"),
        ],
    }
    .render()?)
}

/// A diagnosis as the tenant page shows it.
#[derive(Debug, Clone)]
pub struct DiagnosisView {
    pub cause: String,
    /// Rich text (escaped, commands as code, URLs as links).
    pub summary: String,
    pub fix: Vec<String>,
    pub evidence: Vec<(String, String)>,
}

impl DiagnosisView {
    /// From a stored diagnosis (JSON).
    pub fn from_value(d: &serde_json::Value) -> Option<DiagnosisView> {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        Some(DiagnosisView {
            cause: d.get("cause")?.as_str()?.to_string(),
            summary: crate::text::rich(&text(&d["summary"])),
            fix: d["fix"]
                .as_array()
                .map(|a| a.iter().map(|s| crate::text::rich(&text(s))).collect())
                .unwrap_or_default(),
            evidence: d["evidence"]
                .as_array()
                .map(|a| a.iter().map(|e| (text(&e["name"]), text(&e["value"]))).collect())
                .unwrap_or_default(),
        })
    }
}

/// A GDAP relationship of a customer, as its tenant page shows it.
#[derive(Debug, Clone, Default)]
pub struct GdapRow {
    pub name: String,
    pub status: String,
    /// Role names.
    pub roles: Vec<String>,
    /// The partner's security groups the roles are assigned to, by name.
    pub groups: Vec<String>,
    pub end: Option<DateTime<Utc>>,
    pub days_left: Option<i64>,
    /// `P180D` as Microsoft writes it, or empty when it does not extend itself.
    pub auto_extend: String,
}

/// What a tenant's page shows besides its latest result: GDAP, changes and metric history.
#[derive(Debug, Clone, Default)]
pub struct TenantExtras {
    pub gdap: Vec<GdapRow>,
    pub changes: Vec<crate::pages::ChangeItem>,
    /// (caption, SVG) of each metric's line over the last 90 days.
    pub sparklines: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "dashboard/tenant.html")]
struct TenantPage<'a> {
    chrome: &'a Chrome,
    t: &'a TenantListRow,
    diagnosis: Option<&'a DiagnosisView>,
    collectors: &'a [CollectorRow],
    alerts: &'a [AlertRow],
    x: &'a TenantExtras,
}

/// A tenant's page: its state, diagnosis with the fix and evidence, collectors, alerts, GDAP
/// relationships, changes, metric history, and the buttons that run it.
pub fn tenant(
    chrome: &Chrome,
    t: &TenantListRow,
    diagnosis: Option<&DiagnosisView>,
    collectors: &[CollectorRow],
    alerts: &[AlertRow],
    x: &TenantExtras,
) -> Result<String, RenderError> {
    Ok(TenantPage { chrome, t, diagnosis, collectors, alerts, x }.render()?)
}

/// A job as its page shows it.
#[derive(Debug, Clone)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    pub pool: String,
    pub status: String,
    pub created_by: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// A doctor check as a job's page shows it.
#[derive(Debug, Clone)]
pub struct CheckView {
    pub number: u64,
    pub title: String,
    pub status: String,
    pub summary: String,
    pub evidence: Vec<(String, String)>,
}

impl CheckView {
    fn from_value(v: &serde_json::Value) -> CheckView {
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        CheckView {
            number: v["number"].as_u64().unwrap_or(0),
            title: text("title"),
            status: text("status"),
            summary: text("summary"),
            evidence: v["evidence"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|pair| {
                            (
                                pair[0].as_str().unwrap_or_default().to_string(),
                                pair[1].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/job.html")]
struct JobPage<'a> {
    chrome: &'a Chrome,
    job: &'a JobView,
    planned: u64,
    done: u64,
    failed: u64,
    has_trace: bool,
    result: Option<String>,
    /// A doctor job's checks: those done so far while it runs, all of them once it ended.
    checks: Vec<CheckView>,
    /// A doctor job's root cause, once it ended.
    diagnosis: Option<DiagnosisView>,
}

/// A job's page, whose progress follows the job live.
pub fn job(
    chrome: &Chrome,
    job: &JobView,
    progress: &serde_json::Value,
    result: Option<&serde_json::Value>,
) -> Result<String, RenderError> {
    let n = |k: &str| progress[k].as_u64().unwrap_or(0);
    let checks = result
        .and_then(|r| r["checks"].as_array())
        .or_else(|| progress["checks"].as_array())
        .map(|a| a.iter().map(CheckView::from_value).collect())
        .unwrap_or_default();
    Ok(JobPage {
        chrome,
        job,
        planned: n("planned").max(1),
        done: n("done"),
        failed: n("failed"),
        has_trace: result.is_some_and(|r| r["trace"]["download"].is_string()),
        result: result.and_then(|r| serde_json::to_string_pretty(r).ok()),
        checks,
        diagnosis: result.and_then(|r| r.get("diagnosis")).and_then(DiagnosisView::from_value),
    }
    .render()?)
}

/// An agent as the agents page shows it.
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub name: String,
    pub pool: String,
    pub state: String,
    pub reason: Option<String>,
    pub egress: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub version: String,
}

#[derive(Template)]
#[template(path = "dashboard/agents.html")]
struct AgentsPage<'a> {
    chrome: &'a Chrome,
    agents: &'a [AgentRow],
    /// A token just created: (agent name, pool, token, expiry), shown once.
    enrolled: Option<&'a (String, String, String, DateTime<Utc>)>,
    server_url: &'a str,
}

/// The agents page, with an enrollment token just created when there is one.
pub fn agents(
    chrome: &Chrome,
    agents: &[AgentRow],
    enrolled: Option<&(String, String, String, DateTime<Utc>)>,
    server_url: &str,
) -> Result<String, RenderError> {
    Ok(AgentsPage { chrome, agents, enrolled, server_url }.render()?)
}

/// The partner connection as its page shows it.
#[derive(Debug, Clone, Default)]
pub struct PartnerView {
    pub signed_in: bool,
    pub upn: String,
    pub tenant: Option<String>,
    pub mfa: Option<bool>,
    pub fix: Option<String>,
    /// A device code being typed right now, and where.
    pub user_code: Option<String>,
    pub verification_uri: String,
    /// How the last sign-in from the dashboard ended.
    pub outcome: Option<String>,
    /// When the partner signed in (the age of the connection), and when its refresh token was
    /// last used.
    pub signed_in_at: Option<DateTime<Utc>>,
    pub refresh_used_at: Option<DateTime<Utc>>,
    /// The customers GDAP reaches, by the state of their latest inspection.
    pub customers: Vec<(String, usize)>,
}

#[derive(Template)]
#[template(path = "dashboard/partner.html")]
struct PartnerPage<'a> {
    chrome: &'a Chrome,
    signed_in: bool,
    upn: &'a str,
    tenant: Option<&'a str>,
    mfa: Option<bool>,
    fix: Option<&'a str>,
    user_code: Option<&'a str>,
    verification_uri: &'a str,
    outcome: Option<&'a str>,
    p: &'a PartnerView,
    now: DateTime<Utc>,
}

impl PartnerPage<'_> {
    /// How long ago, for people: `3 days`, `5 hours`, `12 minutes`.
    fn ago(&self, at: &DateTime<Utc>) -> String {
        let d = self.now - *at;
        match (d.num_days(), d.num_hours(), d.num_minutes()) {
            (days, _, _) if days >= 2 => format!("{days} days ago"),
            (_, hours, _) if hours >= 2 => format!("{hours} hours ago"),
            (_, _, minutes) if minutes >= 1 => format!("{minutes} minutes ago"),
            _ => "just now".into(),
        }
    }
}

/// The partner connection page, with the button that starts Microsoft's sign-in.
pub fn partner(chrome: &Chrome, p: &PartnerView) -> Result<String, RenderError> {
    Ok(PartnerPage {
        chrome,
        signed_in: p.signed_in,
        upn: &p.upn,
        tenant: p.tenant.as_deref(),
        mfa: p.mfa,
        fix: p.fix.as_deref(),
        user_code: p.user_code.as_deref(),
        verification_uri: &p.verification_uri,
        outcome: p.outcome.as_deref(),
        p,
        now: Utc::now(),
    }
    .render()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrome(can_run: bool) -> Chrome {
        Chrome {
            user: "<b>Megan</b>".into(),
            role: "engineer".into(),
            can_run,
            can_admin: false,
            csrf: "c1".into(),
            css_href: "/assets/a.css".into(),
            js_href: "/assets/a.js".into(),
            active: "/tenants".into(),
        }
    }

    fn row(name: &str) -> TenantListRow {
        TenantListRow {
            id: "t1".into(),
            name: name.into(),
            domain: "contoso.example".into(),
            status: "failed".into(),
            cause: Some("gdap_missing".into()),
            summary: Some("<img src=x onerror=alert(1)>".into()),
            last_inspected: None,
            access: "gdap".into(),
            pool: "local".into(),
            tags: vec!["gold".into()],
            users: Some(12.0),
            mfa_pct: Some(87.5),
            score_pct: None,
            gdap_days: Some(-3),
        }
    }

    /// The page as a browser shows its text (the entities askama writes, decoded).
    fn shown(page: &str) -> String {
        page.replace("&#60;", "<")
            .replace("&#62;", ">")
            .replace("&#38;", "&")
            .replace("&#34;", "\"")
            .replace("&#39;", "'")
    }

    #[test]
    fn hostile_names_are_text_and_viewers_get_no_buttons() {
        let hostile = row("<script>alert(1)</script>");
        let page = tenant(&chrome(false), &hostile, None, &[], &[], &TenantExtras::default()).expect("page");
        assert!(shown(&page).contains("<script>alert(1)</script>"), "{page}");
        assert!(!page.contains("<script>alert"), "a tenant's name is never markup");
        assert!(
            shown(&page).contains("<b>Megan</b>") && !page.contains("<b>Megan"),
            "the operator's name is escaped too"
        );
        assert!(!page.contains("Run now"), "no button for a viewer");
        let page = tenant(&chrome(true), &hostile, None, &[], &[], &TenantExtras::default()).expect("page");
        assert!(page.contains("Run now") && page.contains("name=\"csrf\" value=\"c1\""));
        // No inline script or style anywhere: the page's policy forbids them.
        assert!(!page.contains("<script>") && !page.contains("style=") && !page.contains("onclick"));
    }

    #[test]
    fn the_tenants_table_sorts_both_ways_and_keeps_its_filters() {
        let list = TenantList {
            rows: vec![row("Contoso")],
            total: 3,
            q: "con to".into(),
            status: "failed".into(),
            cause: String::new(),
            pool: String::new(),
            tag: String::new(),
            access: String::new(),
            sort: "name".into(),
            causes: vec!["gdap_missing".into()],
            pools: vec!["local".into()],
            tags: vec!["gold".into()],
            accesses: vec!["gdap".into()],
        };
        let page = tenants(&chrome(true), &list).expect("page");
        assert!(shown(&page).contains("q=con+to&status=failed&sort=-name"), "{page}");
        assert!(page.contains("aria-sort=\"ascending\""));
        assert!(page.contains("1 of 3 tenants"));
        assert!(shown(&page).contains("<img src=x") && !page.contains("<img src=x"), "a summary is text");
    }
}
