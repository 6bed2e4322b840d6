//! The dashboard: server-rendered pages at `/` for operators signed in with a session (the
//! templates and view models are the `render` crate's, shared with the HTML report).
//!
//! Pages read what the API reads; buttons are forms that post to `/ui/...` with the session's
//! CSRF token as a field (a form cannot send the API's header), and the server checks the role
//! of every such request whatever the page showed. Assets are served under names that carry a
//! hash of their content, cached for a year.

use std::sync::OnceLock;

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use render::dashboard::{self, AgentRow, Chrome, DiagnosisView, JobView, PartnerView, TenantList, TenantListRow};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::AppState;
use crate::api::{Segment, TenantItem, TenantQuery};
use crate::auth::{Role, constant_time_eq, cookie_value, hash_secret};
use crate::problem::Problem;

/// A stylesheet or script, named after its content.
pub struct Asset {
    pub name: String,
    pub body: &'static str,
    pub content_type: &'static str,
}

/// The dashboard's assets.
pub fn assets() -> &'static [Asset; 2] {
    static ASSETS: OnceLock<[Asset; 2]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let named = |stem: &str, ext: &str, body: &'static str, content_type: &'static str| {
            let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
            Asset { name: format!("{stem}.{hash}.{ext}"), body, content_type }
        };
        [
            named("tenantscope", "css", render::report::CSS, "text/css; charset=utf-8"),
            named("dashboard", "js", render::dashboard::JS, "text/javascript; charset=utf-8"),
        ]
    })
}

/// `GET /assets/{name}`.
pub async fn asset(Segment(name): Segment<String>) -> Response {
    match assets().iter().find(|a| a.name == name) {
        Some(a) => {
            let mut response = a.body.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
            response
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// An operator signed in with a session, as the pages need them.
pub struct Operator {
    pub name: String,
    pub subject: String,
    pub role: Role,
    pub csrf: String,
    pub id_hash: String,
    pub address: Option<String>,
}

impl Operator {
    pub(crate) fn actor(&self) -> String {
        format!("user:{} ({})", self.name, self.subject)
    }

    /// The caller as the API's handlers know it, for the actions a page's form shares with them.
    pub(crate) fn principal(&self) -> crate::auth::Principal {
        crate::auth::Principal {
            actor: self.actor(),
            role: self.role,
            via: crate::auth::Via::Session { id_hash: self.id_hash.clone() },
            address: self.address.clone(),
        }
    }

    pub(crate) fn chrome(&self, active: &str) -> Chrome {
        let [css, js] = assets();
        Chrome {
            user: self.name.clone(),
            role: self.role.as_str().to_string(),
            can_run: self.role >= Role::Engineer,
            can_admin: self.role >= Role::Admin,
            csrf: self.csrf.clone(),
            css_href: format!("/assets/{}", css.name),
            js_href: format!("/assets/{}", js.name),
            active: active.to_string(),
        }
    }

    /// Refuses a form whose CSRF token is not the session's, or a role below `needed`.
    pub(crate) fn allow(&self, csrf: &str, needed: Role) -> Result<(), Page> {
        if !constant_time_eq(csrf, &self.csrf) {
            return Err(Page::Problem(Problem::forbidden(
                "the form's CSRF token is not this session's; reload the page",
            )));
        }
        if self.role < needed {
            return Err(Page::Problem(Problem::forbidden(format!(
                "this needs the {} role; you have {}",
                needed.as_str(),
                self.role.as_str()
            ))));
        }
        Ok(())
    }
}

/// Why a page is not shown: the caller must sign in first, or the request is refused.
pub enum Page {
    SignIn(String),
    Problem(Problem),
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        match self {
            Page::SignIn(return_to) => {
                let mut query = url::form_urlencoded::Serializer::new(String::new());
                query.append_pair("return_to", &return_to);
                Redirect::to(&format!("/signin?{}", query.finish())).into_response()
            }
            Page::Problem(p) => {
                // A person reads this in the dashboard: the problem as a page, with its status.
                let [css, js] = assets();
                let chrome = Chrome {
                    css_href: format!("/assets/{}", css.name),
                    js_href: format!("/assets/{}", js.name),
                    ..Chrome::default()
                };
                let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let detail = p.detail.clone().unwrap_or_else(|| p.title.clone());
                match dashboard::problem(&chrome, &p.title, &detail) {
                    Ok(body) => (status, html(body)).into_response(),
                    Err(_) => p.into_response(),
                }
            }
        }
    }
}

impl From<Problem> for Page {
    fn from(p: Problem) -> Page {
        Page::Problem(p)
    }
}

impl From<store::StoreError> for Page {
    fn from(e: store::StoreError) -> Page {
        Page::Problem(Problem::from(e))
    }
}

impl From<render::RenderError> for Page {
    fn from(e: render::RenderError) -> Page {
        tracing::error!(error = %e, "a dashboard page could not be rendered");
        Page::Problem(Problem::internal())
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Page;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Operator, Page> {
        let return_to = parts.uri.path_and_query().map_or("/".to_string(), |p| p.as_str().to_string());
        let cookie = cookie_value(parts, crate::auth::SESSION_COOKIE)
            .or_else(|| cookie_value(parts, crate::auth::SESSION_COOKIE_PLAIN));
        let Some(id) = cookie else { return Err(Page::SignIn(return_to)) };
        let id_hash = hash_secret(id);
        let now = Utc::now();
        let Some(session) =
            state.store.session_get(&id_hash).await?.filter(|s| s.revoked_at.is_none() && s.expires_at > now)
        else {
            return Err(Page::SignIn(return_to));
        };
        let role = Role::parse(&session.role).ok_or_else(Problem::internal)?;
        Ok(Operator {
            name: session.name,
            subject: session.subject,
            role,
            csrf: session.csrf,
            id_hash,
            address: crate::auth::peer_address(parts),
        })
    }
}

pub(crate) type PageResult = Result<Response, Page>;

pub(crate) fn html(body: String) -> Response {
    let mut response = Html(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    return_to: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `GET /signin`: the sign-in page.
pub async fn sign_in(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<SignInQuery>,
) -> PageResult {
    let [css, js] = assets();
    let chrome = Chrome {
        css_href: format!("/assets/{}", css.name),
        js_href: format!("/assets/{}", js.name),
        ..Chrome::default()
    };
    // Only a path on this server is a place to come back to.
    let return_to =
        query.return_to.filter(|r| r.starts_with('/') && !r.starts_with("//")).unwrap_or_else(|| "/".into());
    Ok(html(dashboard::sign_in(&chrome, state.oidc.is_some(), &return_to, query.error.as_deref())?))
}

/// `POST /ui/sign-out`.
pub async fn sign_out(State(state): State<AppState>, who: Operator, Form(form): Form<CsrfForm>) -> PageResult {
    who.allow(&form.csrf, Role::Viewer)?;
    state.store.session_revoke(&who.id_hash, Utc::now()).await?;
    let mut response = Redirect::to("/signin").into_response();
    response.headers_mut().insert(header::SET_COOKIE, crate::session::clear_cookie(&state));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `GET /`: the overview.
pub async fn overview(State(state): State<AppState>, who: Operator) -> PageResult {
    let chrome = who.chrome("/");
    match render::fleet_view(state.store.as_ref(), Utc::now()).await {
        Ok(view) => Ok(html(dashboard::overview(&chrome, &view)?)),
        Err(render::RenderError::NoRun) => {
            Ok(html(dashboard::tenants(&chrome, &TenantList { sort: "name".into(), ..TenantList::default() })?))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn row_of(t: TenantItem) -> TenantListRow {
    TenantListRow {
        name: match t.label.as_deref() {
            Some(l) if !l.eq_ignore_ascii_case(&t.display_name) => format!("{} [{l}]", t.display_name),
            _ => t.display_name,
        },
        id: t.id,
        domain: t.domain.unwrap_or_default(),
        status: t.status.unwrap_or_default(),
        cause: t.cause,
        summary: t.summary,
        last_inspected: t.last_inspected,
        access: t.access,
        pool: t.pool,
        tags: t.tags,
        users: None,
        mfa_pct: None,
        score_pct: None,
        gdap_days: None,
    }
}

/// Whole days until `end`, negative once it has passed (an end an hour ago is -1, not 0).
fn days_until(end: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) -> i64 {
    (end - now).num_seconds().div_euclid(86_400)
}

/// The partner's GDAP relationships and its groups' names by id, from its latest good dataprint.
async fn partner_gdap(state: &AppState) -> Result<(Vec<Value>, std::collections::HashMap<String, String>), Page> {
    let partner = state.store.list_tenants().await?.into_iter().find(|t| t.role == store::TenantRole::Partner);
    let Some(partner) = partner else { return Ok(Default::default()) };
    // Only the two collections this needs: the partner's users, sign-ins and devices stay packed.
    let Some((_, doc)) =
        state.store.last_good_collections(&partner.id, &["delegatedAdminRelationships", "groups"]).await?
    else {
        return Ok(Default::default());
    };
    let relationships = doc
        .pointer("/collections/delegatedAdminRelationships")
        .and_then(Value::as_object)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    let groups = doc
        .pointer("/collections/groups")
        .and_then(Value::as_object)
        .map(|m| {
            m.values()
                .filter_map(|g| Some((g["id"].as_str()?.to_ascii_lowercase(), g["displayName"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok((relationships, groups))
}

/// The tenants page's figures: each tenant's metric values in effect now, and the days until its
/// soonest active GDAP relationship ends (read from the partner's latest dataprint).
async fn add_figures(state: &AppState, rows: &mut [TenantListRow]) -> Result<(), Page> {
    let now = Utc::now();
    let mut figures: std::collections::HashMap<String, [Option<f64>; 3]> = std::collections::HashMap::new();
    for (slot, name) in ["users", "mfa_registered_pct", "secure_score_pct"].into_iter().enumerate() {
        for p in state.store.metric_at(now, name).await? {
            figures.entry(p.tenant_id.to_string()).or_default()[slot] = p.value.as_f64();
        }
    }
    let mut gdap_end: std::collections::HashMap<String, chrono::DateTime<Utc>> = std::collections::HashMap::new();
    for r in partner_gdap(state).await?.0 {
        let (Some(customer), Some(end)) = (
            r.pointer("/customer/tenantId").and_then(Value::as_str),
            r["endDateTime"].as_str().and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok()),
        ) else {
            continue;
        };
        if r["status"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("active")) {
            let end = end.with_timezone(&Utc);
            let soonest = gdap_end.entry(customer.to_ascii_lowercase()).or_insert(end);
            *soonest = (*soonest).min(end);
        }
    }
    for row in rows {
        if let Some([users, mfa, score]) = figures.get(&row.id) {
            (row.users, row.mfa_pct, row.score_pct) = (*users, *mfa, *score);
        }
        row.gdap_days = gdap_end.get(&row.id.to_ascii_lowercase()).map(|end| days_until(*end, now));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
pub struct TenantsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    cause: String,
    #[serde(default)]
    pool: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    access: String,
    #[serde(default)]
    sort: String,
}

/// `GET /tenants`: every tenant, searched, filtered and sorted.
pub async fn tenants(
    State(state): State<AppState>,
    who: Operator,
    axum::extract::Query(query): axum::extract::Query<TenantsQuery>,
) -> PageResult {
    let list = tenant_list(&state, query).await?;
    Ok(html(dashboard::tenants(&who.chrome("/tenants"), &list)?))
}

/// `GET /tenants.csv`: the tenants page's rows, with the same filters and order, as CSV.
pub async fn tenants_csv(
    State(state): State<AppState>,
    _who: Operator,
    axum::extract::Query(query): axum::extract::Query<TenantsQuery>,
) -> PageResult {
    let list = tenant_list(&state, query).await?;
    let mut body = String::from(dashboard::TENANT_CSV_HEADER);
    body.push('\n');
    for row in &list.rows {
        body.push_str(&row.csv());
        body.push('\n');
    }
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"tenants.csv\""));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The sort keys of the figures, which the API's tenant list does not know.
const FIGURE_KEYS: [&str; 4] = ["users", "mfa", "score", "gdap"];

async fn tenant_list(state: &AppState, query: TenantsQuery) -> Result<TenantList, Page> {
    let all = crate::api::tenant_items(state).await?;
    let total = all.len();
    let mut causes: Vec<String> = all.iter().filter_map(|t| t.cause.clone()).collect();
    causes.sort();
    causes.dedup();
    let mut pools: Vec<String> = all.iter().map(|t| t.pool.clone()).collect();
    pools.sort();
    pools.dedup();
    let mut tags: Vec<String> = all.iter().flat_map(|t| t.tags.iter().cloned()).collect();
    tags.sort();
    tags.dedup();
    let mut accesses: Vec<String> = all.iter().map(|t| t.access.clone()).collect();
    accesses.sort();
    accesses.dedup();
    let sort = if query.sort.is_empty() { "name".to_string() } else { query.sort.clone() };
    let (descending, key) = match sort.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, sort.as_str()),
    };
    let known = ["name", "status", "cause", "last_inspected"];
    let api_key = if known.contains(&key) { key } else { "name" };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let filter = TenantQuery {
        status: some(&query.status),
        cause: some(&query.cause),
        q: some(&query.q),
        pool: some(&query.pool),
        tag: some(&query.tag),
        ..TenantQuery::default()
    };
    let mut rows: Vec<TenantListRow> = crate::api::filter_tenants(all, &filter, api_key, descending && api_key == key)
        .into_iter()
        .map(row_of)
        .collect();
    if !query.access.is_empty() {
        rows.retain(|r| r.access == query.access);
    }
    add_figures(state, &mut rows).await?;
    if key == "domain" || key == "access" {
        // Stable after the sort by name: equal domains or access kinds keep that order.
        rows.sort_by(|a, b| {
            let (x, y) = if key == "domain" { (&a.domain, &b.domain) } else { (&a.access, &b.access) };
            // Tenants without a domain go last whichever way the column is sorted.
            match (x.is_empty(), y.is_empty()) {
                (false, true) => std::cmp::Ordering::Less,
                (true, false) => std::cmp::Ordering::Greater,
                _ if descending => y.to_lowercase().cmp(&x.to_lowercase()),
                _ => x.to_lowercase().cmp(&y.to_lowercase()),
            }
        });
    } else if FIGURE_KEYS.contains(&key) {
        let figure = |r: &TenantListRow| match key {
            "users" => r.users,
            "mfa" => r.mfa_pct,
            "score" => r.score_pct,
            _ => r.gdap_days.map(|d| d as f64),
        };
        // Unknown figures go last whichever way the column is sorted; the sort is stable, so
        // equal figures keep the order by name.
        rows.sort_by(|a, b| match (figure(a), figure(b)) {
            (Some(x), Some(y)) if descending => y.total_cmp(&x),
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    Ok(TenantList {
        rows,
        total,
        q: query.q,
        status: query.status,
        cause: query.cause,
        pool: query.pool,
        tag: query.tag,
        access: query.access,
        sort,
        causes,
        pools,
        tags,
        accesses,
    })
}

/// `GET /tenants/{id}`: a tenant's state, diagnosis, collectors and the buttons that run it.
pub async fn tenant(State(state): State<AppState>, who: Operator, Segment(id): Segment<String>) -> PageResult {
    let axum::Json(detail) = crate::api::tenant_detail(&state, &id).await?;
    let diagnosis = detail.diagnosis.as_ref().and_then(DiagnosisView::from_value);
    let collectors: Vec<render::views::CollectorRow> = detail
        .collectors
        .iter()
        .map(|c| render::views::CollectorRow {
            name: c["collector"].as_str().unwrap_or_default().to_string(),
            status: c["status"].as_str().unwrap_or_default().to_string(),
            items: c["items"].as_u64().map(|n| n.to_string()).unwrap_or_default(),
            why: match (&c["diagnosis"], &c["reason"]) {
                (d, _) if d.is_object() => format!(
                    "<code>{}</code> {}",
                    render::text::esc(d["cause"].as_str().unwrap_or_default()),
                    render::text::rich(d["summary"].as_str().unwrap_or_default())
                ),
                (_, r) if r.is_object() => render::text::rich(r["detail"].as_str().unwrap_or_default()),
                _ => String::new(),
            },
        })
        .collect();
    let alerts: Vec<render::views::AlertRow> = detail
        .open_alerts
        .iter()
        .filter_map(|a| {
            Some(render::views::AlertRow {
                key: a["key"].as_str()?.to_string(),
                rule: a["rule"].as_str().unwrap_or_default().to_string(),
                tenant: detail.tenant.display_name.clone(),
                severity: a["severity"].as_str().unwrap_or_default().to_string(),
                opened_at: serde_json::from_value(a["opened_at"].clone()).ok()?,
                summary: a["payload"]["summary"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect();
    let row = row_of(detail.tenant);
    let extras = tenant_extras(&state, &row).await?;
    Ok(html(dashboard::tenant(&who.chrome("/tenants"), &row, diagnosis.as_ref(), &collectors, &alerts, &extras)?))
}

/// The metrics a tenant's page draws over time, with their captions.
const SPARKLINES: [(&str, &str); 4] = [
    ("users", "User accounts"),
    ("mfa_registered_pct", "MFA registration (%)"),
    ("secure_score_pct", "Secure Score (%)"),
    ("global_admins", "Global Administrators"),
];

/// A tenant's GDAP relationships, its changes of the last 90 days and its metrics over them.
async fn tenant_extras(state: &AppState, row: &TenantListRow) -> Result<dashboard::TenantExtras, Page> {
    let now = Utc::now();
    let since = now - chrono::Duration::days(90);
    let id = store::TenantId::new(row.id.clone());
    let (relationships, group_names) = partner_gdap(state).await?;
    let mut gdap: Vec<dashboard::GdapRow> = relationships
        .iter()
        .filter(|r| {
            r.pointer("/customer/tenantId").and_then(Value::as_str).is_some_and(|c| c.eq_ignore_ascii_case(&row.id))
        })
        .map(|r| {
            let roles = |v: &Value| -> Vec<String> {
                v.pointer("/accessDetails/unifiedRoles")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r["roleDefinitionId"].as_str())
                            .map(|id| vocab::role(id).map_or_else(|| id.to_string(), |r| r.name.to_string()))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let groups = r["accessAssignments"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|a| a.pointer("/accessContainer/accessContainerId").and_then(Value::as_str))
                        .map(|g| group_names.get(&g.to_ascii_lowercase()).cloned().unwrap_or_else(|| g.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let end = r["endDateTime"]
                .as_str()
                .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
                .map(|e| e.with_timezone(&Utc));
            dashboard::GdapRow {
                name: r["displayName"].as_str().unwrap_or_default().to_string(),
                status: r["status"].as_str().unwrap_or_default().to_string(),
                roles: roles(r),
                groups,
                days_left: end.map(|e| days_until(e, now)),
                end,
                auto_extend: r["autoExtendDuration"]
                    .as_str()
                    .filter(|d| *d != "PT0S" && *d != "P0D")
                    .unwrap_or_default()
                    .to_string(),
            }
        })
        .collect();
    gdap.sort_by_key(|a| (a.status != "active", a.end));
    let changes = state
        .store
        .events(&store::EventFilter {
            tenant: Some(id.clone()),
            since: Some(since),
            limit: Some(50),
            ..Default::default()
        })
        .await?
        .into_iter()
        .map(|e| render::pages::ChangeItem {
            at: e.at,
            tenant_id: row.id.clone(),
            tenant: row.name.clone(),
            severity: e.severity.as_str().to_string(),
            kind: e.event["kind"].as_str().unwrap_or_default().to_string(),
            summary: e.event["summary"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    let mut sparklines = Vec::new();
    let points = state.store.metric_series(Some(&id), None, None).await?;
    for (metric, caption) in SPARKLINES {
        // The value in effect 90 days ago starts the line; later change points follow; the last
        // value is held until now.
        let mine: Vec<&store::MetricPoint> = points.iter().filter(|p| p.name == metric).collect();
        let mut line: Vec<(chrono::DateTime<Utc>, f64)> = Vec::new();
        if let Some(before) = mine.iter().rev().find(|p| p.at < since).and_then(|p| p.value.as_f64()) {
            line.push((since, before));
        }
        line.extend(mine.iter().filter(|p| p.at >= since).filter_map(|p| Some((p.at, p.value.as_f64()?))));
        let Some(last) = line.last().map(|(_, v)| *v) else { continue };
        line.push((now, last));
        let series = render::chart::Series { label: metric.to_string(), points: line };
        sparklines.push((caption.to_string(), render::chart::line_chart(caption, &[series], 260, 110)));
    }
    Ok(dashboard::TenantExtras { gdap, changes, sparklines })
}

#[derive(Debug, Deserialize)]
pub struct TagsForm {
    csrf: String,
    tenant: String,
    /// Separated by commas or spaces.
    #[serde(default)]
    tags: String,
}

/// `POST /ui/tenants/tags`: replaces a tenant's tags, as `PUT /api/v1/tenants/{id}/tags` does.
pub async fn set_tags(State(state): State<AppState>, who: Operator, Form(form): Form<TagsForm>) -> PageResult {
    who.allow(&form.csrf, Role::Engineer)?;
    let tags: Vec<String> = form.tags.split([',', ' ']).map(str::to_string).collect();
    let body = crate::api::TagsBody { tags };
    let _saved =
        crate::api::set_tags(State(state), who.principal(), Segment(form.tenant.clone()), crate::api::Body(body))
            .await?;
    let mut to = url::form_urlencoded::Serializer::new(String::new());
    to.append_pair("tagged", "1");
    Ok(Redirect::to(&format!(
        "/tenants/{}?{}",
        url::form_urlencoded::byte_serialize(form.tenant.as_bytes()).collect::<String>(),
        to.finish()
    ))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct JobForm {
    csrf: String,
    kind: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    clear_cache: Option<String>,
    #[serde(default)]
    debug: Option<String>,
}

/// `POST /ui/jobs`: a button that runs a tenant (inspect, with the cache cleared and a trace, or
/// doctor); then the job's page.
pub async fn start_job(State(state): State<AppState>, who: Operator, Form(form): Form<JobForm>) -> PageResult {
    who.allow(&form.csrf, Role::Engineer)?;
    let on = |v: &Option<String>| v.as_deref().is_some_and(|v| v == "true" || v == "on");
    let params = match form.kind.as_str() {
        "inspect" => json!({
            "tenants": form.tenant.iter().collect::<Vec<_>>(),
            "clear_cache": on(&form.clear_cache),
            "debug": on(&form.debug),
        }),
        "doctor" => json!({"tenant": form.tenant}),
        other => return Err(Problem::bad_request(format!("unknown job kind {other:?}")).into()),
    };
    let principal = who.principal();
    let job = crate::api::queue_job(&state, &principal, &form.kind, params, None).await?;
    Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response())
}

/// `GET /jobs/{id}`: a job, its live progress, and its trace when it recorded one.
pub async fn job(State(state): State<AppState>, who: Operator, Segment(id): Segment<String>) -> PageResult {
    let job = state.store.get_job(&id).await?.ok_or_else(|| Problem::not_found(format!("no job {id}")))?;
    let view = JobView {
        id: job.id.clone(),
        kind: job.kind.clone(),
        pool: job.pool.clone(),
        status: job.status.to_string(),
        created_by: crate::pages::person(&job.created_by),
        attempts: job.attempts,
        last_error: job.last_error.clone(),
    };
    let progress = job.progress.clone().unwrap_or(Value::Null);
    Ok(html(dashboard::job(&who.chrome("/jobs"), &view, &progress, job.result.as_ref())?))
}

/// `GET /agents`: every agent with its health.
pub async fn agents(State(state): State<AppState>, who: Operator) -> PageResult {
    agents_page(&state, &who, None).await
}

async fn agents_page(
    state: &AppState,
    who: &Operator,
    enrolled: Option<(String, String, String, chrono::DateTime<Utc>)>,
) -> PageResult {
    let rows: Vec<AgentRow> = crate::agents::agent_items(state)
        .await?
        .into_iter()
        .map(|a| AgentRow {
            name: a.name,
            pool: a.pool,
            state: a.state,
            reason: a.reason,
            egress: a.egress_address,
            last_seen_at: a.last_seen_at,
            version: a.version,
        })
        .collect();
    let mut page = html(dashboard::agents(&who.chrome("/agents"), &rows, enrolled.as_ref(), &state.config.public_url)?);
    page.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(page)
}

#[derive(Debug, Deserialize)]
pub struct EnrollForm {
    csrf: String,
    name: String,
    pool: String,
    hours: i64,
}

/// `POST /ui/agents/enroll`: a one-time enrollment token for a new agent, shown once with the
/// command that uses it (the page is not a redirect, so the token is in no URL).
pub async fn enroll(State(state): State<AppState>, who: Operator, Form(form): Form<EnrollForm>) -> PageResult {
    who.allow(&form.csrf, Role::Admin)?;
    if !(1..=168).contains(&form.hours) {
        return Err(Problem::bad_request("an enrollment token lasts 1 to 168 hours").into());
    }
    let body = crate::agents::CreateEnrollment {
        name: form.name.trim().to_string(),
        pool: form.pool.trim().to_string(),
        expires_minutes: Some(form.hours * 60),
    };
    let response =
        crate::agents::create_enrollment(State(state.clone()), who.principal(), crate::api::Body(body)).await?;
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024).await.map_err(|_| Problem::internal())?;
    let created: Value = serde_json::from_slice(&bytes).map_err(|_| Problem::internal())?;
    let text = |k: &str| created[k].as_str().unwrap_or_default().to_string();
    let expires = serde_json::from_value(created["expires_at"].clone()).map_err(|_| Problem::internal())?;
    agents_page(&state, &who, Some((text("name"), text("pool"), text("token"), expires))).await
}

/// The setting that holds the dashboard's pending partner sign-in (its device code).
const PENDING_SIGN_IN: &str = "ui.partner.sign_in";

/// `GET /partner`: the partner connection, and the button that makes or redoes it.
pub async fn partner(State(state): State<AppState>, who: Operator) -> PageResult {
    let axum::Json(p) = crate::api::partner_state(&state).await?;
    let mut view = PartnerView {
        signed_in: p.signed_in,
        upn: p.upn.clone().unwrap_or_default(),
        tenant: p.tenant_id.clone(),
        mfa: p.mfa,
        fix: p.fix.clone(),
        signed_in_at: p.signed_in_at,
        refresh_used_at: p.refresh_token_last_used,
        customers: {
            let mut c: Vec<(String, usize)> = p.customers.iter().map(|(k, v)| (k.clone(), *v)).collect();
            c.sort();
            c
        },
        ..PartnerView::default()
    };
    if who.role >= Role::Admin
        && let Some(pending) = state.store.setting_get(PENDING_SIGN_IN).await?
    {
        let id = pending["id"].as_str().unwrap_or_default();
        let outcome = state.store.setting_get(&crate::api::sign_in_key(id)).await?.unwrap_or(Value::Null);
        match outcome["status"].as_str() {
            Some("pending") => {
                view.user_code = pending["user_code"].as_str().map(str::to_string);
                view.verification_uri = pending["verification_uri"].as_str().unwrap_or_default().to_string();
            }
            Some("succeeded") => {
                view.outcome = Some(format!(
                    "{} signed in{}",
                    outcome["upn"].as_str().unwrap_or("someone"),
                    if outcome["mfa"] == true { " with MFA" } else { " without MFA" }
                ))
            }
            Some("failed") => {
                view.outcome = Some(format!(
                    "failed ({}): {}",
                    outcome["cause"].as_str().unwrap_or("unknown"),
                    outcome["error"].as_str().unwrap_or_default()
                ))
            }
            _ => {}
        }
    }
    Ok(html(dashboard::partner(&who.chrome("/partner"), &view)?))
}

/// `POST /ui/partner/sign-in`: "Open Microsoft Sign-In": starts the partner's device-code
/// sign-in and shows the code to type.
pub async fn partner_sign_in(State(state): State<AppState>, who: Operator, Form(form): Form<CsrfForm>) -> PageResult {
    who.allow(&form.csrf, Role::Admin)?;
    let principal = who.principal();
    let started = crate::api::start_partner_sign_in(&state, &principal, None).await?;
    state
        .store
        .setting_put(
            PENDING_SIGN_IN,
            &json!({"id": started.id, "user_code": started.user_code, "verification_uri": started.verification_uri}),
        )
        .await?;
    Ok(Redirect::to("/partner").into_response())
}

/// The prefix of a sign-in link's token name: an API token of the operator's role, spent by the
/// first visit of `/signin/link`.
pub(crate) const LINK_NAME: &str = "sign-in link for ";

/// A one-time sign-in link for an operator named `name` (the demo's, or one an admin hands out
/// from the shell): the secret to put in the URL, and the record to store. It expires in an hour.
pub fn new_sign_in_link(
    name: &str,
    role: Role,
    now: chrono::DateTime<Utc>,
) -> Result<(String, store::ApiTokenRecord), Problem> {
    crate::auth::new_api_token(&format!("{LINK_NAME}{name}"), role, "demo", now, now + chrono::Duration::hours(1))
}

#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    token: String,
}

/// `GET /signin/link?token=...`: spends a sign-in link and starts a session with its role. The
/// token is revoked by the conditional update that spends it, so a second visit (or a copy of the
/// URL) is refused.
pub async fn sign_in_link(
    State(state): State<AppState>,
    peer: crate::auth::Peer,
    axum::extract::Query(query): axum::extract::Query<LinkQuery>,
) -> PageResult {
    let refused = || Page::SignIn("/".into());
    let now = Utc::now();
    let Some(record) = state.store.token_by_hash(&hash_secret(query.token.trim())).await? else {
        return Err(refused());
    };
    let Some(name) = record.name.strip_prefix(LINK_NAME).map(str::to_string) else { return Err(refused()) };
    if record.revoked_at.is_some() || record.expires_at <= now || !state.store.token_revoke(&record.id, now).await? {
        return Err(refused());
    }
    let role = Role::parse(&record.role).ok_or_else(Problem::internal)?;
    let address = peer.0.map(|a| a.to_string());
    let (cookie, _) =
        crate::session::start(&state, &format!("link:{}", record.id), &name, role, address.clone()).await?;
    let entry = store::AuditEntry {
        id: 0,
        at: now,
        actor: format!("user:{name} (link:{})", record.id),
        action: "session.login".into(),
        target: None,
        address,
        detail: json!({"method": "sign-in link"}),
    };
    state.store.audit_append(&entry).await?;
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
