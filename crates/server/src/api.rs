//! The JSON API under `/api/v1`: handlers, their request and response shapes, and the OpenAPI
//! document generated from them.
//!
//! Every handler names the role it needs; every state-changing handler writes the audit log in
//! the same request. Lists are paginated (`limit` and `offset`, or a `before` cursor for the
//! append-only ones) and filterable; request bodies and query strings refuse unknown fields.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{JobFilter, JobStatus, TenantId};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::AppState;
use crate::auth::{self, Principal, Role, audit};
use crate::jobs;
use crate::problem::{ApiResult, Problem};

/// A JSON body that answers malformed input with problem details.
pub struct Body<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Problem> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(Body(value))
    }
}

/// A query string that answers malformed input with problem details.
pub struct Params<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Problem> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(Params(value))
    }
}

/// A path segment that answers malformed input with problem details.
pub struct Segment<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Segment<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Problem> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(Segment(value))
    }
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Items matching the filter, over all pages.
    pub total: usize,
    /// The query string of the next page, when there is one.
    pub next: Option<String>,
}

const MAX_LIMIT: usize = 1000;

fn limit_of(limit: Option<usize>) -> Result<usize, Problem> {
    match limit {
        None => Ok(100),
        Some(0) => Err(Problem::bad_request("limit must be at least 1")),
        Some(n) if n > MAX_LIMIT => Err(Problem::bad_request(format!("limit must be at most {MAX_LIMIT}"))),
        Some(n) => Ok(n),
    }
}

// ---------------------------------------------------------------------------------------------
// Health and identity

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    /// Whether this replica currently holds the scheduler's lease.
    pub scheduler: bool,
}

/// Whether the server and its database answer. Needs no sign-in (for load balancers).
#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, body = Health), (status = 503, body = Problem)))]
pub async fn health(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    let database = match state.store.backend() {
        store::Backend::Sqlite => "sqlite",
        store::Backend::Postgres => "postgres",
    };
    // A read proves the database answers.
    state.store.setting_get("health").await.map_err(|e| {
        tracing::warn!(error = %e, "health check: the database does not answer");
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database does not answer")
    })?;
    let scheduler = state.scheduler_held.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION"), database, scheduler }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub actor: String,
    pub role: Role,
    /// The CSRF token a session must send in `X-CSRF-Token` with state-changing requests.
    pub csrf: Option<String>,
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Me), (status = 401, body = Problem)))]
pub async fn me(State(state): State<AppState>, who: Principal) -> ApiResult<Json<Me>> {
    let csrf = match &who.via {
        auth::Via::Session { id_hash } => state.store.session_get(id_hash).await?.map(|s| s.csrf),
        auth::Via::Token { .. } => None,
    };
    Ok(Json(Me { actor: who.actor, role: who.role, csrf }))
}

// ---------------------------------------------------------------------------------------------
// The partner connection

/// The partner connection as the server sees it: who is signed in, whether the sign-in carried
/// the MFA claim (without it every customer refuses delegated access), and how its customers fare.
#[derive(Debug, Serialize, ToSchema)]
pub struct Partner {
    pub signed_in: bool,
    pub upn: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub signed_in_at: Option<DateTime<Utc>>,
    /// Whether the partner's token carries the MFA claim (`amr` has `mfa`).
    pub mfa: Option<bool>,
    /// When the refresh token was last used to reach a customer.
    pub refresh_token_last_used: Option<DateTime<Utc>>,
    /// The partner tenant's own latest inspection.
    pub status: Option<String>,
    pub cause: Option<String>,
    /// Customers by the state of their latest inspection (`ok`, `partial`, `failed`, `never`).
    pub customers: HashMap<String, usize>,
    /// What to do when the connection is missing or lacks MFA.
    pub fix: Option<String>,
}

/// The partner connection: signed in or not, with MFA or not, and how far GDAP reaches.
#[utoipa::path(get, path = "/api/v1/partner", responses((status = 200, body = Partner), (status = 401, body = Problem)))]
pub async fn partner(State(state): State<AppState>, _who: Principal) -> ApiResult<Json<Partner>> {
    partner_state(&state).await
}

/// The partner connection's state (the API's and the dashboard's).
pub(crate) async fn partner_state(state: &AppState) -> ApiResult<Json<Partner>> {
    let account = match &state.microsoft {
        Some(m) => {
            let auth = m.authenticator(jobs::local_tokens(&state.store), None).map_err(|e| {
                tracing::warn!(error = %e, "the partner connection's transport could not be built");
                Problem::internal()
            })?;
            let accounts = auth.accounts().await.map_err(|e| {
                tracing::warn!(error = %e, "the token cache could not be read");
                Problem::internal()
            })?;
            let last_used = auth.refresh_token_last_used().await.ok().flatten();
            accounts.into_iter().find(|a| a.role == microsoft::AccountRole::Partner).map(|a| (a, last_used))
        }
        None => None,
    };
    let items = tenant_items(state).await?;
    let mut customers = HashMap::new();
    for t in items.iter().filter(|t| t.role == "customer" && t.gone_since.is_none()) {
        *customers.entry(t.status.clone().unwrap_or_else(|| "never".into())).or_insert(0) += 1;
    }
    let own = account.as_ref().and_then(|(a, _)| items.iter().find(|t| t.id == a.home_tenant.to_ascii_lowercase()));
    let mfa = account.as_ref().and_then(|(a, _)| a.claims.as_ref().map(|c| c.has_mfa()));
    let fix = match (&account, mfa) {
        (None, _) => Some("No partner account is signed in: run `tenantscope login` on this server's data directory or database.".to_string()),
        (Some(_), Some(false)) => Some("The partner's sign-in carries no MFA claim, so customers refuse delegated access: sign in again with MFA (`tenantscope login`).".to_string()),
        _ => None,
    };
    Ok(Json(Partner {
        signed_in: account.is_some(),
        upn: account.as_ref().and_then(|(a, _)| a.upn.clone()),
        tenant_id: account.as_ref().map(|(a, _)| a.home_tenant.clone()),
        client_id: account.as_ref().map(|(a, _)| a.client_id.clone()),
        signed_in_at: account.as_ref().and_then(|(a, _)| a.signed_in_at),
        mfa,
        refresh_token_last_used: account.as_ref().and_then(|(_, l)| *l),
        status: own.and_then(|t| t.status.clone()),
        cause: own.and_then(|t| t.cause.clone()),
        customers,
        fix,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerSignIn {
    /// The tenant to sign in to (default `organizations`: the account's own).
    pub tenant: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerSignInStarted {
    /// Follow the sign-in at `/api/v1/partner/sign-in/{id}`.
    pub id: String,
    /// What the partner engineer types at `verification_uri`, signing in with MFA.
    pub user_code: String,
    pub verification_uri: String,
    pub expires_at: DateTime<Utc>,
    pub message: String,
}

pub(crate) fn sign_in_key(id: &str) -> String {
    format!("partner.sign_in.{id}")
}

/// Starts (or redoes) the partner connection: a device-code sign-in of the partner engineer, whose
/// refresh token replaces the one in the store once they have signed in. Answers with the code to
/// type; the sign-in completes in the background.
#[utoipa::path(post, path = "/api/v1/partner/sign-in", request_body = PartnerSignIn,
    responses((status = 202, body = PartnerSignInStarted), (status = 403, body = Problem), (status = 409, body = Problem), (status = 502, body = Problem)))]
pub async fn partner_sign_in(
    State(state): State<AppState>,
    who: Principal,
    Body(body): Body<PartnerSignIn>,
) -> ApiResult<Response> {
    who.require(Role::Admin)?;
    let started = start_partner_sign_in(&state, &who, body.tenant).await?;
    let id = started.id.clone();
    let mut response = (StatusCode::ACCEPTED, Json(started)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/partner/sign-in/{id}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Starts the partner's device-code sign-in in the background; the outcome lands in the setting
/// `partner.sign_in.<id>` (the API's and the dashboard's button).
pub(crate) async fn start_partner_sign_in(
    state: &AppState,
    who: &Principal,
    tenant: Option<String>,
) -> ApiResult<PartnerSignInStarted> {
    who.require(Role::Admin)?;
    let m = state.microsoft.clone().filter(|m| m.client_id != jobs::NO_APP).ok_or_else(|| {
        Problem::conflict(
            "no app is configured for the partner connection: start `tenantscope serve --client-id <your app id>`",
        )
    })?;
    let tenant = tenant.unwrap_or_else(|| "organizations".to_string());
    if tenant.is_empty() || tenant.len() > 256 || tenant.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(Problem::bad_request("tenant: an id, a domain or `organizations`"));
    }
    let auth = m.authenticator(jobs::local_tokens(&state.store), None).map_err(|e| {
        tracing::warn!(error = %e, "the partner connection's transport could not be built");
        Problem::internal()
    })?;
    let id = uuid::Uuid::new_v4().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<microsoft::oauth::DeviceCode>();
    let store = state.store.clone();
    let key = sign_in_key(&id);
    store.setting_put(&key, &json!({"status": "pending", "started_by": who.actor, "started_at": Utc::now()})).await?;
    let actor = who.clone();
    let task_key = key.clone();
    let audited_tenant = tenant.clone();
    let task = tokio::spawn(async move {
        let mut tx = Some(tx);
        let result = auth
            .login_device_code(&tenant, microsoft::AccountRole::Partner, |dc| {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(dc.clone());
                }
            })
            .await;
        let now = Utc::now();
        let (outcome, action) = match &result {
            Ok(account) => (
                json!({"status": "succeeded", "upn": account.upn, "tenant_id": account.home_tenant,
                       "mfa": account.claims.as_ref().map(|c| c.has_mfa()), "finished_at": now}),
                "partner.sign_in.succeeded",
            ),
            Err(e) => {
                let diagnosis = diagnose::diagnose(&diagnose::Facts {
                    failure: Some(diagnose::Failure::Text(e.to_string())),
                    now: Some(now),
                    ..diagnose::Facts::default()
                });
                (
                    json!({"status": "failed", "error": e.to_string(), "cause": diagnosis.cause, "fix": diagnosis.fix, "finished_at": now}),
                    "partner.sign_in.failed",
                )
            }
        };
        if let Err(e) = store.setting_put(&task_key, &outcome).await {
            tracing::warn!(error = %e, "the partner sign-in's outcome could not be saved");
        }
        let _ = audit(&store, &actor, action, None, outcome).await;
    });
    let dc = match tokio::time::timeout(Duration::from_secs(30), rx).await {
        Ok(Ok(dc)) => dc,
        _ => {
            // The device code never came: the task ended with an error (saved above) or hangs.
            let saved = state.store.setting_get(&key).await?.unwrap_or(Value::Null);
            task.abort();
            let why = saved["error"].as_str().unwrap_or("Microsoft did not answer the device-code request").to_string();
            return Err(Problem::new(StatusCode::BAD_GATEWAY, "sign-in-failed", why));
        }
    };
    audit(&state.store, who, "partner.sign_in.start", Some(&id), json!({"tenant": audited_tenant})).await?;
    Ok(PartnerSignInStarted {
        id: id.clone(),
        user_code: dc.user_code.clone(),
        verification_uri: dc.verification_uri.clone(),
        expires_at: Utc::now() + chrono::Duration::seconds(dc.expires_in as i64),
        message: dc.message.clone(),
    })
}

/// Where a partner sign-in stands: `pending`, `succeeded` (who, with or without MFA) or `failed`
/// (with the cause and the fix).
#[utoipa::path(get, path = "/api/v1/partner/sign-in/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn partner_sign_in_status(
    State(state): State<AppState>,
    who: Principal,
    Segment(id): Segment<String>,
) -> ApiResult<Json<Value>> {
    who.require(Role::Admin)?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(Problem::not_found(format!("no partner sign-in {id:?}")));
    }
    let value = state
        .store
        .setting_get(&sign_in_key(&id))
        .await?
        .ok_or_else(|| Problem::not_found(format!("no partner sign-in {id:?}")))?;
    Ok(Json(value))
}

// ---------------------------------------------------------------------------------------------
// Tenants

/// A tenant in the list: who it is and the state of its latest inspection.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantItem {
    pub id: String,
    pub display_name: String,
    pub domain: Option<String>,
    pub label: Option<String>,
    /// `partner` or `customer`.
    pub role: String,
    /// How it is reached: `gdap`, `app`, `direct`, `partner`.
    pub access: String,
    /// The latest inspection's result: `ok`, `partial`, `failed`; absent before the first.
    pub status: Option<String>,
    /// The cause id of the latest inspection's problem.
    pub cause: Option<String>,
    /// What is specific to this tenant's problem.
    pub summary: Option<String>,
    pub last_inspected: Option<DateTime<Utc>>,
    /// When GDAP stopped reaching it.
    pub gone_since: Option<DateTime<Utc>>,
    /// The pool of agents that inspects it.
    pub pool: String,
    /// Tags engineers gave it, lower case and sorted.
    pub tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// Only tenants whose latest result is this (`ok`, `partial`, `failed`, `never`).
    pub status: Option<String>,
    /// Only tenants with this cause.
    pub cause: Option<String>,
    /// Only tenants whose name, domain, id or label contains this (case-insensitive).
    pub q: Option<String>,
    /// Only tenants with this label.
    pub label: Option<String>,
    /// Only tenants inspected by this pool of agents.
    pub pool: Option<String>,
    /// Only tenants with this tag.
    pub tag: Option<String>,
    /// `name` (default), `status`, `cause`, `last_inspected`; prefix `-` for descending.
    pub sort: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

fn status_rank(status: Option<&str>) -> u8 {
    match status {
        Some("failed") => 0,
        Some("partial") => 1,
        None => 2,
        Some(_) => 3,
    }
}

/// Every tenant with the state of its latest inspection.
pub(crate) async fn tenant_items(state: &AppState) -> ApiResult<Vec<TenantItem>> {
    let tenants = state.store.list_tenants().await?;
    let latest: HashMap<TenantId, store::TenantRunRecord> =
        state.store.latest_tenant_runs().await?.into_iter().map(|r| (r.tenant_id.clone(), r)).collect();
    let pools = crate::agents::Pools::load(state).await?;
    let mut tags: HashMap<TenantId, Vec<String>> = HashMap::new();
    for (tenant, tag) in state.store.tenant_tags().await? {
        tags.entry(tenant).or_default().push(tag);
    }
    Ok(tenants
        .into_iter()
        .map(|t| {
            let last = latest.get(&t.id);
            let tags = tags.remove(&t.id).unwrap_or_default();
            TenantItem { tags, ..tenant_item(t, last, &pools) }
        })
        .collect())
}

/// A tenant with the state of its latest inspection, or `agent_unhealthy` when no agent of its
/// pool can inspect it now.
fn tenant_item(
    t: store::TenantRecord,
    last: Option<&store::TenantRunRecord>,
    pools: &crate::agents::Pools,
) -> TenantItem {
    let pool = pools.of(&t.id).to_string();
    if let Some(blocked) = pools.blocked(&t.id) {
        return TenantItem {
            id: t.id.to_string(),
            display_name: t.display_name,
            domain: t.domain,
            label: t.label,
            role: t.role.as_str().to_string(),
            access: t.auth.as_str().to_string(),
            status: Some("failed".into()),
            cause: Some(blocked.cause.id().to_string()),
            summary: Some(blocked.summary.clone()),
            last_inspected: last.map(|r| r.finished_at),
            gone_since: t.gone_since,
            pool,
            tags: Vec::new(),
        };
    }
    let diagnosis = last.and_then(|r| r.diagnosis.as_ref());
    TenantItem {
        id: t.id.to_string(),
        display_name: t.display_name,
        domain: t.domain,
        label: t.label,
        role: t.role.as_str().to_string(),
        access: t.auth.as_str().to_string(),
        status: last.map(|r| r.status.as_str().to_string()),
        cause: diagnosis.and_then(|d| d.get("cause")).and_then(Value::as_str).map(str::to_string),
        summary: diagnosis.and_then(|d| d.get("summary")).and_then(Value::as_str).map(str::to_string),
        last_inspected: last.map(|r| r.finished_at),
        gone_since: t.gone_since,
        pool,
        tags: Vec::new(),
    }
}

/// The tenants a query selects, sorted by `key` (`name`, `status`, `cause`, `last_inspected`).
pub(crate) fn filter_tenants(
    items: Vec<TenantItem>,
    query: &TenantQuery,
    key: &str,
    descending: bool,
) -> Vec<TenantItem> {
    let needle = query.q.as_deref().map(str::to_lowercase);
    let mut items: Vec<TenantItem> = items
        .into_iter()
        .filter(|t| match query.status.as_deref() {
            None => true,
            Some("never") => t.status.is_none(),
            Some(s) => t.status.as_deref() == Some(s),
        })
        .filter(|t| query.cause.as_ref().is_none_or(|c| t.cause.as_ref() == Some(c)))
        .filter(|t| query.label.as_ref().is_none_or(|l| t.label.as_ref() == Some(l)))
        .filter(|t| query.pool.as_ref().is_none_or(|p| t.pool == *p))
        .filter(|t| query.tag.as_ref().is_none_or(|g| t.tags.iter().any(|x| x.eq_ignore_ascii_case(g))))
        .filter(|t| {
            needle.as_ref().is_none_or(|n| {
                [Some(&t.display_name), t.domain.as_ref(), Some(&t.id), t.label.as_ref()]
                    .into_iter()
                    .flatten()
                    .chain(t.tags.iter())
                    .any(|f| f.to_lowercase().contains(n.as_str()))
            })
        })
        .collect();
    let name = |t: &TenantItem| t.display_name.to_lowercase();
    match key {
        "status" => items.sort_by(|a, b| {
            status_rank(a.status.as_deref()).cmp(&status_rank(b.status.as_deref())).then(name(a).cmp(&name(b)))
        }),
        "cause" => items.sort_by(|a, b| a.cause.cmp(&b.cause).then(name(a).cmp(&name(b)))),
        "last_inspected" => items.sort_by(|a, b| a.last_inspected.cmp(&b.last_inspected).then(name(a).cmp(&name(b)))),
        _ => items.sort_by_key(name),
    }
    if descending {
        items.reverse();
    }
    items
}

/// Tenants, filtered, sorted and paginated.
#[utoipa::path(get, path = "/api/v1/tenants", params(TenantQuery),
    responses((status = 200, body = Page<TenantItem>), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    _who: Principal,
    Params(query): Params<TenantQuery>,
) -> ApiResult<Json<Page<TenantItem>>> {
    let limit = limit_of(query.limit)?;
    let offset = query.offset.unwrap_or(0);
    let (descending, key) = match query.sort.as_deref().unwrap_or("name") {
        s if s.starts_with('-') => (true, &s[1..]),
        s => (false, s),
    };
    if !["name", "status", "cause", "last_inspected"].contains(&key) {
        return Err(Problem::bad_request(format!(
            "cannot sort by {key:?}: use name, status, cause or last_inspected (prefix - for descending)"
        )));
    }
    if let Some(s) = &query.status
        && !["ok", "partial", "failed", "never"].contains(&s.as_str())
    {
        return Err(Problem::bad_request(format!("unknown status {s:?}: use ok, partial, failed or never")));
    }
    let items = filter_tenants(tenant_items(&state).await?, &query, key, descending);
    let total = items.len();
    let page: Vec<TenantItem> = items.into_iter().skip(offset).take(limit).collect();
    let next = (offset + page.len() < total).then(|| format!("offset={}&limit={limit}", offset + page.len()));
    Ok(Json(Page { items: page, total, next }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: TenantItem,
    /// The latest inspection's diagnosis: cause, summary, evidence, fix.
    #[schema(value_type = Object)]
    pub diagnosis: Option<Value>,
    /// Each collector's outcome in the latest inspection.
    #[schema(value_type = Vec<Object>)]
    pub collectors: Vec<Value>,
    /// The GDAP relationships that reach this customer, as the partner last saw them.
    #[schema(value_type = Object)]
    pub gdap: Option<Value>,
    pub domains: Vec<String>,
    pub run_id: Option<String>,
    pub dataprint_id: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub open_alerts: Vec<Value>,
}

pub(crate) async fn find_tenant(state: &AppState, id: &str) -> ApiResult<store::TenantRecord> {
    let id = id.trim();
    if id.is_empty() || id.len() > 256 {
        return Err(Problem::bad_request("a tenant id, domain or name of 1 to 256 characters"));
    }
    state.store.find_tenant(id).await?.ok_or_else(|| Problem::not_found(format!("no tenant {id:?}")))
}

/// A tenant: its diagnosis with evidence and fix, its collectors, its GDAP relationships.
#[utoipa::path(get, path = "/api/v1/tenants/{id}", params(("id" = String, Path, description = "tenant id or domain")),
    responses((status = 200, body = TenantDetail), (status = 404, body = Problem)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    _who: Principal,
    Segment(id): Segment<String>,
) -> ApiResult<Json<TenantDetail>> {
    tenant_detail(&state, &id).await
}

/// A tenant's detail (the API's and the dashboard's).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    /// The tenant's tags after the call (replacing the ones it had): each 1 to 40 letters, digits,
    /// `-`, `_`, `.` or `:`; at most 20.
    pub tags: Vec<String>,
}

/// Checks tags as people type them ([`store::normalize_tags`]).
pub(crate) fn valid_tags(tags: &[String]) -> Result<Vec<String>, Problem> {
    store::normalize_tags(tags).map_err(Problem::bad_request)
}

/// Replaces a tenant's tags.
#[utoipa::path(put, path = "/api/v1/tenants/{id}/tags", params(("id" = String, Path)), request_body = TagsBody,
    responses((status = 200, body = Vec<String>), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn set_tags(
    State(state): State<AppState>,
    who: Principal,
    Segment(id): Segment<String>,
    Body(body): Body<TagsBody>,
) -> ApiResult<Json<Vec<String>>> {
    who.require(Role::Engineer)?;
    let tags = valid_tags(&body.tags)?;
    let record = find_tenant(&state, &id).await?;
    if !state.store.set_tenant_tags(&record.id, &tags).await? {
        return Err(Problem::not_found(format!("no tenant {id:?}")));
    }
    audit(&state.store, &who, "tenant.tags", Some(record.id.as_str()), json!({"tags": tags})).await?;
    Ok(Json(tags))
}

pub(crate) async fn tenant_detail(state: &AppState, id: &str) -> ApiResult<Json<TenantDetail>> {
    let record = find_tenant(state, id).await?;
    let last = state.store.last_tenant_run(&record.id).await?;
    let collectors = match &last {
        Some(r) => state
            .store
            .collector_outcomes(&r.run_id, &record.id)
            .await?
            .into_iter()
            .map(|o| {
                json!({
                    "collector": o.collector, "status": o.status, "items": o.items, "reason": o.reason,
                    "error": o.error, "diagnosis": o.diagnosis, "requests": o.requests, "duration_ms": o.duration_ms,
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let domains = state.store.tenant_domains(&record.id).await?;
    let open_alerts = state
        .store
        .open_alerts(Some(&record.id))
        .await?
        .into_iter()
        .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
        .collect();
    let pools = crate::agents::Pools::load(state).await?;
    let mut diagnosis = match pools.blocked(&record.id) {
        Some(blocked) => serde_json::to_value(blocked).ok(),
        None => last.as_ref().and_then(|r| r.diagnosis.clone()),
    };
    // Conditional Access that blocks this tenant's pool: which agents the customer's named
    // locations would allow, from its last good dataprint.
    if let Some(d) = diagnosis.as_mut().filter(|d| d["cause"] == "conditional_access_blocked")
        && let Some((_, dataprint)) = state.store.last_good_dataprint(&record.id).await?
    {
        crate::agents::place_blocked_tenant(d, &dataprint, pools.agents(), pools.of(&record.id));
    }
    let gdap = record.gdap.clone();
    let tags: Vec<String> =
        state.store.tenant_tags().await?.into_iter().filter(|(t, _)| *t == record.id).map(|(_, tag)| tag).collect();
    let tenant = TenantItem { tags, ..tenant_item(record, last.as_ref(), &pools) };
    Ok(Json(TenantDetail {
        tenant,
        diagnosis,
        collectors,
        gdap,
        domains,
        run_id: last.as_ref().map(|r| r.run_id.to_string()),
        dataprint_id: last.as_ref().and_then(|r| r.dataprint_id.as_ref().map(|d| d.to_string())),
        open_alerts,
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DataprintQuery {
    /// A JMESPath expression evaluated against the dataprint.
    pub query: Option<String>,
}

/// A tenant's latest good dataprint, whole or queried with JMESPath.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/dataprint", params(("id" = String, Path), DataprintQuery),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_dataprint(
    State(state): State<AppState>,
    _who: Principal,
    Segment(id): Segment<String>,
    Params(query): Params<DataprintQuery>,
) -> ApiResult<Json<Value>> {
    let record = find_tenant(&state, &id).await?;
    let (_, doc) = state
        .store
        .last_good_dataprint(&record.id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("{} has no dataprint yet", record.display_name)))?;
    let Some(expression) = query.query else { return Ok(Json(doc)) };
    crate::pages::jmespath_search(&doc, &expression).map(Json).map_err(Problem::bad_request)
}

// ---------------------------------------------------------------------------------------------
// History: dataprints, changes, metrics, baselines

/// A tenant's dataprints, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/dataprints", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Object>), (status = 404, body = Problem)))]
pub async fn list_dataprints(
    State(state): State<AppState>,
    _who: Principal,
    Segment(id): Segment<String>,
) -> ApiResult<Json<Vec<store::DataprintMeta>>> {
    let record = find_tenant(&state, &id).await?;
    let mut list = state.store.dataprints(&record.id, None).await?;
    list.reverse();
    Ok(Json(list))
}

/// One dataprint, as a download.
#[utoipa::path(get, path = "/api/v1/dataprints/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn get_dataprint_by_id(
    State(state): State<AppState>,
    _who: Principal,
    Segment(id): Segment<String>,
) -> ApiResult<Response> {
    let dp = store::DataprintId::new(id.clone());
    let doc =
        state.store.get_dataprint(&dp).await?.ok_or_else(|| Problem::not_found(format!("no dataprint {id:?}")))?;
    let mut response = Json(doc).into_response();
    if uuid::Uuid::parse_str(&id).is_ok()
        && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"dataprint-{id}.json\""))
    {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// A dataprint by id, or the API's 404.
pub(crate) async fn dataprint_or_404(state: &AppState, id: &str) -> ApiResult<Value> {
    state
        .store
        .get_dataprint(&store::DataprintId::new(id.to_string()))
        .await?
        .ok_or_else(|| Problem::not_found(format!("no dataprint {id:?}")))
}

/// What changed from one dataprint to another (of the same tenant, or two tenants compared).
#[utoipa::path(get, path = "/api/v1/dataprints/{from}/diff/{to}", params(("from" = String, Path), ("to" = String, Path)),
    responses((status = 200, body = Vec<Object>), (status = 404, body = Problem)))]
pub async fn diff_dataprints(
    State(state): State<AppState>,
    _who: Principal,
    Segment((from, to)): Segment<(String, String)>,
) -> ApiResult<Json<Vec<history::ChangeEvent>>> {
    let (before, after) = (dataprint_or_404(&state, &from).await?, dataprint_or_404(&state, &to).await?);
    let events = history::diff(&before, &after)
        .map_err(|e| Problem::bad_request(format!("these dataprints cannot be compared: {e}")))?;
    Ok(Json(events))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChangeQuery {
    /// Only this tenant (id, domain or name).
    pub tenant: Option<String>,
    /// Only changes at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only changes at least this severe: info, low, medium, high, critical.
    pub severity: Option<String>,
    pub limit: Option<usize>,
}

/// Changes found between inspections, newest first.
#[utoipa::path(get, path = "/api/v1/changes", params(ChangeQuery), responses((status = 200, body = Vec<Object>), (status = 400, body = Problem)))]
pub async fn list_changes(
    State(state): State<AppState>,
    _who: Principal,
    Params(query): Params<ChangeQuery>,
) -> ApiResult<Json<Vec<store::StoredEvent>>> {
    let tenant = match &query.tenant {
        Some(t) => Some(find_tenant(&state, t).await?.id),
        None => None,
    };
    let min_severity = match &query.severity {
        Some(s) => Some(s.parse::<store::Severity>().map_err(|e| Problem::bad_request(e.to_string()))?),
        None => None,
    };
    let limit = limit_of(query.limit)? as u32;
    let filter = store::EventFilter { tenant, since: query.since, min_severity, limit: Some(limit) };
    Ok(Json(state.store.events(&filter).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MetricQuery {
    /// Only this tenant (id, domain or name).
    pub tenant: Option<String>,
    /// Only this metric.
    pub name: Option<String>,
    /// The series since this time (RFC 3339); without it, the values in effect now.
    pub since: Option<DateTime<Utc>>,
}

/// Metric values: those in effect now, or with `since` the series (change points) of each.
#[utoipa::path(get, path = "/api/v1/metrics", params(MetricQuery), responses((status = 200, body = Vec<Object>), (status = 404, body = Problem)))]
pub async fn list_metrics(
    State(state): State<AppState>,
    _who: Principal,
    Params(query): Params<MetricQuery>,
) -> ApiResult<Json<Vec<store::MetricPoint>>> {
    let tenant = match &query.tenant {
        Some(t) => Some(find_tenant(&state, t).await?.id),
        None => None,
    };
    let points = match (query.since, &tenant) {
        (Some(since), _) => state.store.metric_series(tenant.as_ref(), query.name.as_deref(), Some(since)).await?,
        (None, Some(t)) => state.store.latest_metrics(t).await?,
        (None, None) => state.store.metrics_at(Utc::now()).await?,
    };
    let points = points.into_iter().filter(|p| query.name.as_ref().is_none_or(|n| p.name == *n)).collect();
    Ok(Json(points))
}

/// Saved baselines.
#[utoipa::path(get, path = "/api/v1/baselines", responses((status = 200, body = Vec<Object>)))]
pub async fn list_baselines(
    State(state): State<AppState>,
    _who: Principal,
) -> ApiResult<Json<Vec<store::BaselineMeta>>> {
    Ok(Json(state.store.baseline_list().await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DriftQuery {
    /// The tenant to compare with the baseline (id, domain or name).
    pub tenant: String,
}

/// How a tenant's latest good dataprint drifts from a baseline.
#[utoipa::path(get, path = "/api/v1/baselines/{name}/drift", params(("name" = String, Path), DriftQuery),
    responses((status = 200, body = Vec<Object>), (status = 404, body = Problem)))]
pub async fn baseline_drift(
    State(state): State<AppState>,
    _who: Principal,
    Segment(name): Segment<String>,
    Params(query): Params<DriftQuery>,
) -> ApiResult<Json<Vec<history::Drift>>> {
    let value =
        state.store.baseline_get(&name).await?.ok_or_else(|| Problem::not_found(format!("no baseline {name:?}")))?;
    let baseline: history::Baseline = serde_json::from_value(value).map_err(|e| {
        tracing::warn!(error = %e, baseline = %name, "a stored baseline is unreadable");
        Problem::internal()
    })?;
    let record = find_tenant(&state, &query.tenant).await?;
    let (_, doc) = state
        .store
        .last_good_dataprint(&record.id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("{} has no dataprint yet", record.display_name)))?;
    let drift = history::drift(&baseline, &doc).map_err(|e| Problem::bad_request(e.to_string()))?;
    Ok(Json(drift))
}

// ---------------------------------------------------------------------------------------------
// Runs

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    pub limit: Option<usize>,
}

/// Recent runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", params(RunQuery), responses((status = 200, body = Vec<Object>)))]
pub async fn list_runs(
    State(state): State<AppState>,
    _who: Principal,
    Params(query): Params<RunQuery>,
) -> ApiResult<Json<Vec<store::RunRecord>>> {
    let limit = limit_of(query.limit)? as u32;
    Ok(Json(state.store.list_runs(limit).await?))
}

/// A run and each tenant's result in it.
#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn get_run(
    State(state): State<AppState>,
    _who: Principal,
    Segment(id): Segment<String>,
) -> ApiResult<Json<Value>> {
    let run_id = store::RunId::new(id);
    let run = state.store.get_run(&run_id).await?.ok_or_else(|| Problem::not_found(format!("no run {run_id}")))?;
    let tenants = state.store.tenant_runs(&run_id).await?;
    Ok(Json(json!({ "run": run, "tenants": tenants })))
}

// ---------------------------------------------------------------------------------------------
// Jobs

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// `inspect` or `doctor`.
    pub kind: String,
    /// For `inspect`: `tenants`, `clear_cache`, `full`, `debug`; for `doctor`: `tenant`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Value,
    /// The pool of agents to run it; by default the pool of the tenants it names. An inspection of
    /// every tenant is queued once per pool (and split by the schedule's `tenants_per_job`), each
    /// job naming its tenants; the answer is the first job, with the others' ids in `also`.
    #[serde(default)]
    pub pool: Option<String>,
}

/// The pool each named tenant is in; `None` for the default pool.
async fn pools_of(state: &AppState, names: &[String]) -> ApiResult<Vec<(String, Option<String>)>> {
    let pools: std::collections::HashMap<TenantId, String> = state.store.tenant_pools().await?.into_iter().collect();
    let mut out = Vec::new();
    for name in names {
        let record = inspect::access::find_record(state.store.as_ref(), name)
            .await
            .map_err(|e| Problem::bad_request(e.to_string()))?;
        out.push((name.clone(), record.and_then(|r| pools.get(&r.id).cloned())));
    }
    Ok(out)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// `queued`, `running`, `succeeded`, `dead`, `cancelled`.
    pub status: Option<String>,
    pub kind: Option<String>,
    /// Only jobs older than this job id (the `next` of the previous page).
    pub before: Option<String>,
    pub limit: Option<usize>,
}

/// Queues a job: an inspection (of everything, or some tenants; with the cache cleared and a
/// debug trace if asked) or a doctor run.
#[utoipa::path(post, path = "/api/v1/jobs", request_body = CreateJob,
    responses((status = 202, body = Object), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_job(
    State(state): State<AppState>,
    who: Principal,
    Body(body): Body<CreateJob>,
) -> ApiResult<Response> {
    let (job, also) = queue_jobs(&state, &who, &body.kind, body.params, body.pool).await?;
    let location = format!("/api/v1/jobs/{}", job.id);
    let mut body = serde_json::to_value(&job).map_err(|_| Problem::internal())?;
    if !also.is_empty() {
        body["also"] = json!(also);
    }
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Queues a job as an engineer asked (the API's and the dashboard's buttons); the first job, and
/// the ids of the others when an inspection was split per pool.
pub(crate) async fn queue_job(
    state: &AppState,
    who: &Principal,
    kind: &str,
    params: Value,
    pool: Option<String>,
) -> ApiResult<store::JobRecord> {
    Ok(queue_jobs(state, who, kind, params, pool).await?.0)
}

async fn queue_jobs(
    state: &AppState,
    who: &Principal,
    kind: &str,
    params: Value,
    pool: Option<String>,
) -> ApiResult<(store::JobRecord, Vec<String>)> {
    struct Asked {
        kind: String,
        pool: Option<String>,
    }
    let body = Asked { kind: kind.to_string(), pool };
    who.require(Role::Engineer)?;
    let params = if params.is_null() { json!({}) } else { params };
    jobs::validate(&body.kind, &params).map_err(Problem::bad_request)?;
    let default_pool = state.config.worker.pool.clone();
    // Which pools the job goes to, with the tenants each one's job names (`None`: as asked).
    let mut plan: Vec<(String, Option<Vec<String>>)> = Vec::new();
    if let Some(pool) = &body.pool {
        plan.push((pool.trim().to_string(), None));
    } else {
        let named: Vec<String> = match body.kind.as_str() {
            "inspect" => params["tenants"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            _ => params["tenant"].as_str().map(|t| vec![t.to_string()]).unwrap_or_default(),
        };
        if named.is_empty() && body.kind == "inspect" {
            let (schedule, _) = crate::scheduler::effective(state.store.as_ref(), &state.config.schedule).await?;
            let pools = state.store.tenant_pools().await?;
            if pools.is_empty() && schedule.tenants_per_job == 0 {
                plan.push((default_pool.clone(), None));
            } else {
                // Every tenant, named per pool (and per share of a pool, when inspections are
                // split so that a pool's agents share them).
                let pool_of: HashMap<TenantId, String> = pools.into_iter().collect();
                let mut by_pool: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
                for t in state.store.list_tenants().await?.into_iter().filter(|t| t.gone_since.is_none()) {
                    let pool = pool_of.get(&t.id).cloned().unwrap_or_else(|| default_pool.clone());
                    by_pool.entry(pool).or_default().push(t.id.to_string());
                }
                let chunk = if schedule.tenants_per_job == 0 { usize::MAX } else { schedule.tenants_per_job };
                for (pool, tenants) in by_pool {
                    plan.extend(tenants.chunks(chunk).map(|c| (pool.clone(), Some(c.to_vec()))));
                }
                if plan.is_empty() {
                    // No tenant is known yet: one inspection finds them.
                    plan.push((default_pool.clone(), None));
                }
            }
        } else {
            let pools = pools_of(state, &named).await?;
            let distinct: std::collections::BTreeSet<Option<&String>> = pools.iter().map(|(_, p)| p.as_ref()).collect();
            if distinct.len() > 1 {
                let list: Vec<String> =
                    pools.iter().map(|(n, p)| format!("{n} ({})", p.as_deref().unwrap_or(&default_pool))).collect();
                return Err(Problem::bad_request(format!(
                    "the tenants are inspected by different pools of agents: {}; queue one job per pool, or name the pool",
                    list.join(", ")
                )));
            }
            let pool = pools.into_iter().next().and_then(|(_, p)| p).unwrap_or_else(|| default_pool.clone());
            plan.push((pool, None));
        }
    }
    // The doctor's sixth check asks whether an agent can run the other five: when no agent of the
    // tenant's pool is healthy, nothing would ever claim the job, so the answer is given now.
    if body.kind == "doctor"
        && let Some(name) = params["tenant"].as_str()
        && let Some(record) = inspect::access::find_record(state.store.as_ref(), name)
            .await
            .map_err(|e| Problem::bad_request(e.to_string()))?
        && let Some(blocked) = crate::agents::Pools::load(state).await?.blocked(&record.id)
    {
        let evidence: Vec<String> = blocked.evidence.iter().map(|e| format!("{}: {}", e.name, e.value)).collect();
        return Err(Problem::conflict(format!(
            "{} {}. Fix: {}",
            blocked.summary,
            evidence.join("; "),
            blocked.fix.join(" ")
        ))
        .with_code("agent_unhealthy"));
    }
    // An empty list of tenants means every tenant: a pool with none of its own gets no job.
    plan.retain(|(_, tenants)| tenants.as_ref().is_none_or(|t| !t.is_empty()));
    if plan.is_empty() {
        return Err(Problem::bad_request("there is no tenant to inspect yet"));
    }
    if plan.iter().any(|(p, _)| p.is_empty() || p.len() > 100 || p.chars().any(char::is_control)) {
        return Err(Problem::bad_request("pool: 1 to 100 printable characters"));
    }
    let mut queued = Vec::new();
    for (pool, tenants) in &plan {
        let mut job_params = params.clone();
        if let Some(t) = tenants {
            job_params["tenants"] = json!(t);
        }
        let job = state
            .store
            .enqueue_job(
                &jobs::new_job(&body.kind, job_params, pool, state.config.worker.max_attempts, &who.actor),
                Utc::now(),
            )
            .await?;
        queued.push(job);
    }
    let mut queued = queued.into_iter();
    let Some(job) = queued.next() else { return Err(Problem::internal()) };
    let also: Vec<String> = queued.map(|j| j.id).collect();
    audit(
        &state.store,
        who,
        "job.create",
        Some(&job.id),
        json!({"kind": job.kind, "params": params, "pool": job.pool, "also": also}),
    )
    .await?;
    Ok((job, also))
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", params(JobQuery), responses((status = 200, body = Page<Object>)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    _who: Principal,
    Params(query): Params<JobQuery>,
) -> ApiResult<Json<Page<store::JobRecord>>> {
    let limit = limit_of(query.limit)?;
    let status = match &query.status {
        Some(s) => Some(s.parse::<JobStatus>().map_err(|e| Problem::bad_request(e.to_string()))?),
        None => None,
    };
    let items = state
        .store
        .list_jobs(&JobFilter { status, kind: query.kind.clone(), before: query.before.clone(), limit: limit as u32 })
        .await?;
    let next = (items.len() == limit).then(|| items.last().map(|j| format!("before={}&limit={limit}", j.id))).flatten();
    let total = items.len();
    Ok(Json(Page { items, total, next }))
}

async fn job_or_404(state: &AppState, id: &str) -> ApiResult<store::JobRecord> {
    state.store.get_job(id).await?.ok_or_else(|| Problem::not_found(format!("no job {id:?}")))
}

/// A job: its status, attempts, progress, result or the reason it died.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn get_job(
    State(state): State<AppState>,
    _who: Principal,
    Segment(id): Segment<String>,
) -> ApiResult<Json<store::JobRecord>> {
    Ok(Json(job_or_404(&state, &id).await?))
}

/// Cancels a job: a queued one at once, a running one at its worker's next heartbeat.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel_job(
    State(state): State<AppState>,
    who: Principal,
    Segment(id): Segment<String>,
) -> ApiResult<Json<store::JobRecord>> {
    who.require(Role::Engineer)?;
    let job =
        state.store.cancel_job(&id, Utc::now()).await?.ok_or_else(|| Problem::not_found(format!("no job {id:?}")))?;
    if job.status.is_final() && job.status != JobStatus::Cancelled {
        return Err(Problem::conflict(format!("job {id} has already ended ({})", job.status)));
    }
    audit(&state.store, &who, "job.cancel", Some(&job.id), json!({})).await?;
    Ok(Json(job))
}

/// The job's progress as Server-Sent Events: `progress` whenever it changes, then `end`.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 404, body = Problem)))]
pub async fn job_events(
    State(state): State<AppState>,
    _who: Principal,
    Segment(id): Segment<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    job_or_404(&state, &id).await?;
    let store = state.store.clone();
    let poll = state.sse_poll;
    let stream = async_stream::stream! {
        let mut last: Option<(JobStatus, Option<Value>, i64)> = None;
        loop {
            let job = match store.get_job(&id).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "job events: the store did not answer");
                    tokio::time::sleep(poll).await;
                    continue;
                }
            };
            let now = (job.status, job.progress.clone(), job.attempts);
            if last.as_ref() != Some(&now) {
                let data = json!({"id": job.id, "status": job.status, "attempts": job.attempts, "progress": job.progress});
                yield Ok(Event::default().event("progress").data(data.to_string()));
                last = Some(now);
            }
            if job.status.is_final() {
                let data = json!({"id": job.id, "status": job.status, "result": job.result, "error": job.last_error});
                yield Ok(Event::default().event("end").data(data.to_string()));
                break;
            }
            tokio::time::sleep(poll).await;
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The redacted HTTP trace (HAR) of a debug run, kept for a week.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/trace", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/json", body = Object), (status = 404, body = Problem)))]
pub async fn job_trace(
    State(state): State<AppState>,
    who: Principal,
    Segment(id): Segment<String>,
) -> ApiResult<Response> {
    who.require(Role::Engineer)?;
    let job = job_or_404(&state, &id).await?;
    let path = jobs::trace_path(&state.config.data_dir, &job.id)
        .ok_or_else(|| Problem::not_found(format!("job {id} has no debug trace")))?;
    let bytes = tokio::fs::read(&path).await.map_err(|_| {
        Problem::not_found(format!("job {id} has no debug trace (only debug runs record one, kept a week)"))
    })?;
    audit(&state.store, &who, "job.trace.download", Some(&job.id), json!({})).await?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"job-{}.har\"", job.id)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Alerts

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Only open alerts (default true).
    pub open: Option<bool>,
    pub tenant: Option<String>,
}

/// Alerts, open ones by default.
#[utoipa::path(get, path = "/api/v1/alerts", params(AlertQuery), responses((status = 200, body = Vec<Object>)))]
pub async fn list_alerts(
    State(state): State<AppState>,
    _who: Principal,
    Params(query): Params<AlertQuery>,
) -> ApiResult<Json<Vec<store::AlertRecord>>> {
    let open = query.open.unwrap_or(true);
    let alerts = match &query.tenant {
        Some(t) => {
            let record = find_tenant(&state, t).await?;
            let all = state.store.list_alerts(open).await?;
            all.into_iter().filter(|a| a.tenant_id == record.id).collect()
        }
        None => state.store.list_alerts(open).await?,
    };
    Ok(Json(alerts))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    pub reason: Option<String>,
    /// Also resolve the alert (for alerts about an event, which stay open until seen).
    #[serde(default)]
    pub resolve: bool,
}

/// Acknowledges an alert.
#[utoipa::path(post, path = "/api/v1/alerts/{key}/ack", params(("key" = String, Path)), request_body = AckBody,
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn ack_alert(
    State(state): State<AppState>,
    who: Principal,
    Segment(key): Segment<String>,
    Body(body): Body<AckBody>,
) -> ApiResult<Json<store::AlertRecord>> {
    who.require(Role::Engineer)?;
    if body.reason.as_ref().is_some_and(|r| r.len() > 2000) {
        return Err(Problem::bad_request("the reason is longer than 2000 characters"));
    }
    let alert = state
        .store
        .ack_alert(&key, &who.actor, body.reason.as_deref(), Utc::now(), body.resolve)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no alert {key:?}")))?;
    audit(&state.store, &who, "alert.ack", Some(&key), json!({"reason": body.reason, "resolve": body.resolve})).await?;
    Ok(Json(alert))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteBody {
    pub tenant: String,
    pub rule: String,
    pub until: DateTime<Utc>,
    pub reason: Option<String>,
}

/// Mutes a rule for a tenant until a date.
#[utoipa::path(post, path = "/api/v1/mutes", request_body = MuteBody, responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn mute(State(state): State<AppState>, who: Principal, Body(body): Body<MuteBody>) -> ApiResult<Json<Value>> {
    who.require(Role::Engineer)?;
    let record = find_tenant(&state, &body.tenant).await?;
    let now = Utc::now();
    if body.until <= now {
        return Err(Problem::bad_request("`until` must be in the future"));
    }
    let mute = store::MuteRecord {
        tenant_id: record.id.clone(),
        rule: body.rule.clone(),
        until: body.until,
        created_at: now,
        created_by: who.actor.clone(),
        reason: body.reason.clone(),
    };
    state.store.set_mute(&mute).await?;
    audit(
        &state.store,
        &who,
        "alert.mute",
        Some(&format!("{}/{}", record.id, body.rule)),
        json!({"until": body.until, "reason": body.reason}),
    )
    .await?;
    Ok(Json(serde_json::to_value(&mute).map_err(|_| Problem::internal())?))
}

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleSetting {
    /// `api` when an administrator set it here (it then overrides the file on every replica),
    /// `file` when it comes from `[server.schedule]`.
    pub source: &'static str,
    pub schedule: crate::config::ScheduleConfig,
}

/// The schedule in effect.
#[utoipa::path(get, path = "/api/v1/settings/schedule", responses((status = 200, body = ScheduleSetting)))]
pub async fn get_schedule(State(state): State<AppState>, _who: Principal) -> ApiResult<Json<ScheduleSetting>> {
    let (schedule, source) = crate::scheduler::effective(state.store.as_ref(), &state.config.schedule).await?;
    Ok(Json(ScheduleSetting { source, schedule }))
}

/// Sets the schedule for every replica (overriding the configuration file's).
#[utoipa::path(put, path = "/api/v1/settings/schedule", request_body = crate::config::ScheduleConfig,
    responses((status = 200, body = ScheduleSetting), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn put_schedule(
    State(state): State<AppState>,
    who: Principal,
    Body(schedule): Body<crate::config::ScheduleConfig>,
) -> ApiResult<Json<ScheduleSetting>> {
    who.require(Role::Admin)?;
    schedule.check().map_err(Problem::bad_request)?;
    let value = serde_json::to_value(&schedule).map_err(|_| Problem::internal())?;
    state.store.setting_put(crate::scheduler::SETTING, &value).await?;
    audit(&state.store, &who, "settings.schedule.set", None, value).await?;
    Ok(Json(ScheduleSetting { source: "api", schedule }))
}

/// Drops the schedule set through the API: the configuration file's applies again.
#[utoipa::path(delete, path = "/api/v1/settings/schedule", responses((status = 200, body = ScheduleSetting), (status = 403, body = Problem)))]
pub async fn reset_schedule(State(state): State<AppState>, who: Principal) -> ApiResult<Json<ScheduleSetting>> {
    who.require(Role::Admin)?;
    state.store.setting_put(crate::scheduler::SETTING, &Value::Null).await?;
    audit(&state.store, &who, "settings.schedule.reset", None, json!({})).await?;
    Ok(Json(ScheduleSetting { source: "file", schedule: state.config.schedule.clone() }))
}

// ---------------------------------------------------------------------------------------------
// API tokens and the audit log

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    pub role: Role,
    /// Days until it expires (default 90, at most 366).
    pub days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    /// The token itself: shown this once, stored only as a hash.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenItem {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Creates an API token; the token is in the answer and nowhere else.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_token(
    State(state): State<AppState>,
    who: Principal,
    Body(body): Body<CreateToken>,
) -> ApiResult<Response> {
    who.require(Role::Admin)?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(Problem::bad_request("a token name of 1 to 100 printable characters"));
    }
    // Sign-in links are tokens named so; a token named like one would hide among them.
    if name.starts_with(crate::ui::LINK_NAME) {
        return Err(Problem::bad_request(format!("a token name may not start with {:?}", crate::ui::LINK_NAME)));
    }
    let days = body.days.unwrap_or(90);
    if !(1..=366).contains(&days) {
        return Err(Problem::bad_request("days must be between 1 and 366"));
    }
    let now = Utc::now();
    let (secret, record) = auth::new_api_token(name, body.role, &who.actor, now, now + chrono::Duration::days(days))?;
    state.store.token_put(&record).await?;
    audit(&state.store, &who, "token.create", Some(&record.id), json!({"name": name, "role": body.role, "days": days}))
        .await?;
    let created = CreatedToken {
        id: record.id,
        name: record.name,
        role: body.role,
        expires_at: record.expires_at,
        token: secret,
    };
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Every API token (never the token itself).
#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = Vec<TokenItem>)))]
pub async fn list_tokens(State(state): State<AppState>, who: Principal) -> ApiResult<Json<Vec<TokenItem>>> {
    who.require(Role::Admin)?;
    Ok(Json(
        state
            .store
            .token_list()
            .await?
            .into_iter()
            .map(|t| TokenItem {
                id: t.id,
                name: t.name,
                role: t.role,
                created_at: t.created_at,
                created_by: t.created_by,
                expires_at: t.expires_at,
                revoked_at: t.revoked_at,
                last_used_at: t.last_used_at,
            })
            .collect(),
    ))
}

/// Revokes an API token at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    who: Principal,
    Segment(id): Segment<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    if !state.store.token_revoke(&id, Utc::now()).await? {
        return Err(Problem::not_found(format!("no live API token {id:?}")));
    }
    audit(&state.store, &who, "token.revoke", Some(&id), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only entries older than this id (the `next` of the previous page).
    pub before: Option<i64>,
    pub limit: Option<usize>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), responses((status = 200, body = Page<Object>)))]
pub async fn list_audit(
    State(state): State<AppState>,
    who: Principal,
    Params(query): Params<AuditQuery>,
) -> ApiResult<Json<Page<store::AuditEntry>>> {
    who.require(Role::Admin)?;
    let limit = limit_of(query.limit)?;
    let items = state
        .store
        .audit_list(&store::AuditFilter {
            actor: query.actor.clone(),
            action: query.action.clone(),
            before: query.before,
            limit: limit as u32,
        })
        .await?;
    let next = (items.len() == limit).then(|| items.last().map(|e| format!("before={}&limit={limit}", e.id))).flatten();
    let total = items.len();
    Ok(Json(Page { items, total, next }))
}

// ---------------------------------------------------------------------------------------------
// Break-glass sign-in

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalLogin {
    pub user: String,
    pub password: String,
}

/// Signs the break-glass administrator in (when configured): sets the session cookie and answers
/// the session's CSRF token.
#[utoipa::path(post, path = "/api/v1/auth/local", request_body = LocalLogin,
    responses((status = 200, body = Me), (status = 401, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn local_login(
    State(state): State<AppState>,
    auth::Peer(ip): auth::Peer,
    Body(body): Body<LocalLogin>,
) -> ApiResult<Response> {
    let Some(glass) = &state.config.access.break_glass else {
        return Err(Problem::not_found("the break-glass administrator is not configured"));
    };
    if let Some(ip) = ip
        && state.login_limiter.check_key(&ip).is_err()
    {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "too many sign-in attempts; wait a minute",
        ));
    }
    let user_ok = auth::constant_time_eq(body.user.trim(), &glass.user);
    let password_ok = crate::password::verify(&body.password, &glass.password_hash);
    let address = ip.map(|i| i.to_string());
    if !(user_ok && password_ok) {
        state
            .store
            .audit_append(&store::AuditEntry {
                id: 0,
                at: Utc::now(),
                actor: format!("break-glass:{}", body.user.chars().take(64).collect::<String>()),
                action: "session.login.failed".into(),
                target: None,
                address,
                detail: json!({}),
            })
            .await?;
        return Err(Problem::unauthorized("wrong user or password"));
    }
    let who = Principal {
        actor: format!("user:{} (break-glass:{})", glass.user, glass.user),
        role: Role::Admin,
        via: auth::Via::Token { id: String::new() },
        address: address.clone(),
    };
    let (cookie, csrf) =
        crate::session::start(&state, &format!("break-glass:{}", glass.user), &glass.user, Role::Admin, address)
            .await?;
    audit(&state.store, &who, "session.login", None, json!({"method": "break-glass"})).await?;
    let mut response = Json(Me { actor: who.actor, role: Role::Admin, csrf: Some(csrf) }).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Ends the caller's session.
#[utoipa::path(post, path = "/api/v1/auth/logout", responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(State(state): State<AppState>, who: Principal) -> ApiResult<Response> {
    if let auth::Via::Session { id_hash } = &who.via {
        state.store.session_revoke(id_hash, Utc::now()).await?;
        audit(&state.store, &who, "session.logout", None, json!({})).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, crate::session::clear_cookie(&state));
    Ok(response)
}

/// The OpenAPI document, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "tenantscope", description = "The tenantscope platform's API: tenants, their diagnoses, inspections as jobs, alerts, tokens and the audit log."),
    paths(
        health, me, partner, partner_sign_in, partner_sign_in_status, list_tenants, get_tenant, set_tags, get_dataprint,
        list_dataprints, get_dataprint_by_id, diff_dataprints, list_changes, list_metrics, list_baselines, baseline_drift, list_runs, get_run, create_job, list_jobs, get_job,
        cancel_job, job_events, job_trace, list_alerts, ack_alert, mute, create_token, list_tokens, revoke_token,
        list_audit, local_login, logout, get_schedule, put_schedule, reset_schedule,
        crate::agents::create_enrollment, crate::agents::list_agents, crate::agents::revoke_agent, crate::agents::set_pool,
        crate::agents::enroll, crate::agents::heartbeat, crate::agents::claim, crate::agents::job_heartbeat,
        crate::agents::job_store, crate::agents::job_token, crate::agents::job_trace_upload, crate::agents::job_finish,
    ),
    components(schemas(Problem, Health, Me, ScheduleSetting, crate::config::ScheduleConfig, Partner, PartnerSignIn, PartnerSignInStarted, TenantItem, TenantDetail, TagsBody, CreateJob, AckBody, MuteBody, CreateToken,
        CreatedToken, TokenItem, LocalLogin, Role, jobs::InspectParams, jobs::DoctorParams,
        crate::agents::AgentItem, crate::agents::CreateEnrollment, crate::agents::CreatedEnrollment, crate::agents::SetPool,
        agent::protocol::EnrollRequest, agent::protocol::EnrollResponse, agent::protocol::Health,
        agent::protocol::HeartbeatResponse, agent::protocol::ClaimRequest, agent::protocol::ClaimedJob,
        agent::protocol::JobHeartbeat, agent::protocol::JobHeartbeatResponse, agent::protocol::StoreRequest,
        agent::protocol::TokenSave, agent::protocol::FinishRequest, agent::protocol::Finish)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("tsk_…").build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new("token", Vec::<String>::new())]);
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(_) => Problem::internal().into_response(),
    }
}
