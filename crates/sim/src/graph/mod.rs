//! The simulated Microsoft Graph (v1.0 and beta): token validation, authorization, throttling, faults,
//! paging, delta and `$batch`, over the directory, policy, report and GDAP resources that tenantscope
//! reads.

pub mod authz;
pub mod batch;
pub mod delta;
pub mod objects;
pub mod query;
pub mod throttle;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, OriginalUri, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Value, json};
use uuid::Uuid;

use self::authz::Rule;
use self::delta::{DeltaError, Entry};
use self::query::{Filter, Query, apply_select, check_filter, encode_skiptoken, odata_query, parse_filter};
use crate::errors::{GraphCtx, GraphError};
use crate::faults::{Injected, Outcome};
use crate::state::{AccessClaims, Counters, SharedSim, Sim};
use crate::world::{GdapStatus, Tenant, TenantKind, World};

pub fn router() -> Router<SharedSim> {
    Router::new().route("/v1.0/{*path}", any(entry)).route("/beta/{*path}", any(entry))
}

/// A successful Graph answer, before faults and headers are applied.
pub struct GraphOk {
    pub status: StatusCode,
    pub body: GraphBody,
    pub headers: Vec<(HeaderName, String)>,
}

pub enum GraphBody {
    Json(Value),
    Text(String),
}

impl GraphOk {
    fn json(v: Value) -> GraphOk {
        GraphOk { status: StatusCode::OK, body: GraphBody::Json(v), headers: Vec::new() }
    }
}

/// The largest request body Graph accepts here (a `$batch` of 20 small requests is far below it).
const MAX_BODY: usize = 4 * 1024 * 1024;

async fn entry(
    State(sim): State<SharedSim>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    injected: Option<Extension<Injected>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ctx = GraphCtx::from_headers(&headers, sim.now());
    Counters::bump(&sim.counters.graph_requests);
    let full_path = uri.path().to_string();
    let (version, path) = match full_path.trim_start_matches('/').split_once('/') {
        Some((v, p)) => (v.to_string(), p.trim_end_matches('/').to_string()),
        None => (full_path.trim_start_matches('/').to_string(), String::new()),
    };
    let query = uri.query().unwrap_or("").to_string();
    let claims = match authenticate(&sim, &headers) {
        Ok(c) => c,
        Err(e) => {
            Counters::bump(&sim.counters.graph_errors);
            return e.into_response_with(&ctx);
        }
    };
    sim.counters.tenant(claims.tid, |c| c.graph_requests += 1);
    sim.counters.path(&normalize_path(&path));
    // The fault was decided where the request entered the server; it applies only to the configured tenants.
    let injected = injected.map(|Extension(i)| i).filter(|_| {
        let w = sim.world();
        w.faults.tenants.is_empty() || w.faults.tenants.iter().any(|t| t.eq_ignore_ascii_case(&claims.tid.to_string()))
    });
    let decision = injected.map(|i| i.decision);
    if let Some(d) = decision
        && !d.latency.is_zero()
    {
        tokio::time::sleep(d.latency).await;
    }
    if let Some(d) = decision
        && let Outcome::Status(code) = d.outcome
    {
        Counters::bump(&sim.counters.faults_injected);
        return injected_error(code, injected.and_then(|i| i.retry_after), &ctx);
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return GraphError::new(413, "Request_EntityTooLarge", "The request body is too large.")
                .into_response_with(&ctx);
        }
    };
    let result = if path.eq_ignore_ascii_case("$batch") {
        if method != Method::POST {
            Err(method_not_allowed())
        } else {
            batch::handle(&sim, &claims, &version, &bytes, &ctx).await
        }
    } else {
        handle(&sim, &claims, &method, &version, &path, &query, &headers, &ctx)
    };
    let mut resp = match result {
        Ok(ok) => render(ok, &ctx),
        Err(e) => {
            Counters::bump(&sim.counters.graph_errors);
            e.into_response_with(&ctx)
        }
    };
    if let Some(d) = decision {
        match d.outcome {
            Outcome::Truncate => {
                Counters::bump(&sim.counters.faults_injected);
                resp = crate::faults::truncate(resp).await;
            }
            Outcome::SlowBody => {
                Counters::bump(&sim.counters.faults_injected);
                let delay = injected.map_or(Duration::from_millis(200), |i| i.slow_body);
                resp = crate::faults::slow(resp, delay).await;
            }
            _ => {}
        }
    }
    resp
}

/// Collapses ids in a path so that counters group requests by endpoint.
fn normalize_path(path: &str) -> String {
    path.split('/')
        .map(|s| if Uuid::parse_str(s).is_ok() || s.contains('@') || s.len() > 40 { "{id}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn method_not_allowed() -> GraphError {
    GraphError::new(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
}

fn injected_error(code: u16, retry_after: Option<u64>, ctx: &GraphCtx) -> Response {
    injected_graph_error(code, retry_after).into_response_with(ctx)
}

/// The Graph error of an injected server failure, with `Retry-After` on 503 when the faults give one.
pub fn injected_graph_error(code: u16, retry_after: Option<u64>) -> GraphError {
    let (name, message) = match code {
        500 => ("InternalServerError", "An internal server error occurred."),
        502 => ("BadGateway", "The server, while acting as a gateway, received an invalid response."),
        503 => ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
        504 => ("GatewayTimeout", "The server, while acting as a gateway, did not receive a timely response."),
        _ => ("generalException", "An error occurred."),
    };
    let mut e = GraphError::new(code, name, message);
    if code == 503
        && let Some(s) = retry_after
    {
        e = e.with_header("retry-after", s.to_string());
    }
    e
}

pub fn render(ok: GraphOk, ctx: &GraphCtx) -> Response {
    let mut resp = match ok.body {
        GraphBody::Json(v) => {
            let mut r = (ok.status, axum::Json(v)).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"),
            );
            r.headers_mut().insert(HeaderName::from_static("odata-version"), HeaderValue::from_static("4.0"));
            r
        }
        GraphBody::Text(t) => {
            let mut r = (ok.status, t).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
    };
    ctx.apply_headers(resp.headers_mut());
    for (name, value) in ok.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

/// Validates a bearer token as Graph does: signature, issuer, audience and lifetime (on the simulated
/// clock, with five minutes of skew).
pub fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<Arc<AccessClaims>, GraphError> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or("").trim();
    if token.is_empty() {
        return Err(GraphError::invalid_token("Access token is empty."));
    }
    // The lookup is bound first so that the cache lock is released before a miss locks it again.
    let cached = sim.verified.lock().unwrap_or_else(|e| e.into_inner()).get(token).cloned();
    let claims = match cached {
        Some(c) => c,
        None => {
            let c = Arc::new(verify(sim, token)?);
            let mut cache = sim.verified.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() > 200_000 {
                cache.clear();
            }
            cache.insert(token.to_string(), c.clone());
            c
        }
    };
    let now = sim.now().timestamp();
    if claims.exp + 300 < now || claims.nbf - 300 > now {
        return Err(GraphError::invalid_token("Access token has expired or is not yet valid."));
    }
    if sim.world().tenant(claims.tid).is_none() {
        return Err(GraphError::invalid_token("Access token validation failure. Invalid tenant."));
    }
    Ok(claims)
}

fn verify(sim: &Sim, token: &str) -> Result<AccessClaims, GraphError> {
    if token.split('.').count() != 3 || token.len() > 16 * 1024 {
        return Err(GraphError::invalid_token("CompactToken parsing failed with error code: 80049217"));
    }
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| GraphError::invalid_token("CompactToken parsing failed with error code: 80049217"))?;
    let kid =
        header.kid.ok_or_else(|| GraphError::invalid_token("Access token validation failure. Invalid signature."))?;
    let key = sim
        .keys
        .find(&kid)
        .ok_or_else(|| GraphError::invalid_token("Access token validation failure. Invalid signature."))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Value>(token, &key.decoding, &validation)
        .map_err(|_| GraphError::invalid_token("Access token validation failure. Invalid signature."))?;
    let c = data.claims;
    let aud = c.get("aud").and_then(Value::as_str).unwrap_or("");
    if !crate::catalog::GRAPH_RESOURCES.contains(&aud) {
        return Err(GraphError::invalid_token("Access token validation failure. Invalid audience."));
    }
    let uuid = |k: &str| c.get(k).and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok());
    let tid =
        uuid("tid").ok_or_else(|| GraphError::invalid_token("Access token validation failure. Invalid tenant."))?;
    if c.get("iss").and_then(Value::as_str) != Some(&format!("https://sts.windows.net/{tid}/")) {
        return Err(GraphError::invalid_token("Access token validation failure. Invalid issuer."));
    }
    let list = |k: &str| -> Vec<String> {
        match c.get(k) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => Vec::new(),
        }
    };
    let home_tid = c
        .get("idp")
        .and_then(Value::as_str)
        .and_then(|i| i.strip_prefix("https://sts.windows.net/"))
        .and_then(|i| Uuid::parse_str(i.trim_end_matches('/')).ok())
        .filter(|h| *h != tid);
    let idtyp = c.get("idtyp").and_then(Value::as_str).unwrap_or("user");
    Ok(AccessClaims {
        tid,
        appid: uuid("appid").ok_or_else(|| GraphError::invalid_token("Access token validation failure."))?,
        oid: if idtyp == "app" { None } else { uuid("oid") },
        scp: list("scp"),
        roles: list("roles"),
        amr: list("amr"),
        iat: c.get("iat").and_then(Value::as_i64).unwrap_or(0),
        nbf: c.get("nbf").and_then(Value::as_i64).unwrap_or(0),
        exp: c.get("exp").and_then(Value::as_i64).unwrap_or(0),
        home_tid,
    })
}

/// One Graph request after authentication; `$batch` calls this for each of its requests.
#[allow(clippy::too_many_arguments)]
pub fn handle(
    sim: &Sim,
    claims: &AccessClaims,
    method: &Method,
    version: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    ctx: &GraphCtx,
) -> Result<GraphOk, GraphError> {
    // Requests that Graph rejects after reading them still cost one resource unit and say so, as
    // Microsoft's `$batch` sample shows; throttled requests cost nothing.
    serve_request(sim, claims, method, version, path, query, headers, ctx).map_err(|e| {
        if e.status == StatusCode::TOO_MANY_REQUESTS { e } else { e.with_header("x-ms-resource-unit", "1") }
    })
}

#[allow(clippy::too_many_arguments)]
fn serve_request(
    sim: &Sim,
    claims: &AccessClaims,
    method: &Method,
    version: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    ctx: &GraphCtx,
) -> Result<GraphOk, GraphError> {
    let eventual = headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
    let q = Query::parse(query, eventual)?;
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (rule, route) = resolve(&segments).ok_or_else(|| {
        GraphError::new(
            400,
            "BadRequest",
            format!(
                "Resource not found for the segment '{}'.",
                crate::identity::truncate(segments.first().copied().unwrap_or(""), 80)
            ),
        )
    })?;
    if *method != Method::GET {
        return Err(method_not_allowed());
    }
    let world = sim.world();
    let now = sim.now();
    let tenant = world
        .tenant(claims.tid)
        .ok_or_else(|| GraphError::invalid_token("Access token validation failure. Invalid tenant."))?;
    let wants_sign_in = q.select.as_ref().is_some_and(|s| s.iter().any(|p| p.eq_ignore_ascii_case("signInActivity")))
        || q.filter.as_ref().is_some_and(|f| f.to_ascii_lowercase().contains("signinactivity"));
    let extra: Option<&[&str]> = if wants_sign_in && matches!(route, Route::Users | Route::User(_)) {
        Some(&["AuditLog.Read.All"])
    } else {
        None
    };
    authz::authorize(&world, claims, tenant, &rule, extra, now)?;
    if extra.is_some() && !tenant.has_p1() {
        return Err(GraphError::non_premium());
    }
    let cost = (rule.cost as i32 + q.cost_adjustment()).max(1) as u32;
    let request_key = if ctx.client_request_id != ctx.request_id {
        ctx.client_request_id.clone()
    } else {
        format!("{method} {path}?{query}")
    };
    let usage = match sim.throttle.check(claims.appid, tenant.id, tenant.users.len(), rule.class, cost, &request_key) {
        Ok(u) => u,
        Err(t) => {
            Counters::bump(&sim.counters.throttled);
            sim.counters.tenant(tenant.id, |c| c.throttled += 1);
            if t.early_retry {
                Counters::bump(&sim.counters.early_retries);
                sim.counters.tenant(tenant.id, |c| c.early_retries += 1);
            }
            let mut e = GraphError::new(429, "TooManyRequests", "Please retry again later.")
                .with_inner("429", "Please retry after")
                .with_header("x-ms-throttle-scope", t.scope)
                .with_header("x-ms-throttle-information", t.information);
            if let Some(s) = t.retry_after {
                e = e.with_header("retry-after", s.to_string());
            }
            return Err(e);
        }
    };
    let env = Env { sim, world: &world, tenant, claims, q: &q, version, path, now, faults: &world.faults };
    let mut ok = env.serve(&route)?;
    ok.headers.push((HeaderName::from_static("x-ms-resource-unit"), usage.resource_units.to_string()));
    if let Some(p) = usage.limit_percentage {
        ok.headers.push((HeaderName::from_static("x-ms-throttle-limit-percentage"), format!("{p:.1}")));
    }
    let _ = ctx;
    Ok(ok)
}

#[derive(Debug, Clone, PartialEq)]
pub enum Route<'a> {
    Organization,
    OrganizationById(&'a str),
    Domains,
    Domain(&'a str),
    SubscribedSkus,
    Subscriptions,
    Users,
    UsersCount,
    UsersDelta,
    User(&'a str),
    UserMemberOf(&'a str, bool),
    Me,
    MeMemberOf(bool),
    Groups,
    GroupsDelta,
    Group(&'a str),
    GroupMembers(&'a str, bool),
    DirectoryRoles,
    DirectoryRoleMembers(&'a str),
    RoleDefinitions,
    RoleAssignments,
    CaPolicies,
    NamedLocations,
    SecurityDefaults,
    AuthorizationPolicy,
    AuthMethodsPolicy,
    RegistrationDetails,
    SecureScores,
    ServicePrincipals,
    ServicePrincipal(&'a str),
    AppRoleAssignments(&'a str),
    Applications,
    Grants,
    Devices,
    ManagedDevices,
    SignIns,
    GdapRelationships,
    GdapRelationship(&'a str),
    GdapAssignments(&'a str),
    GdapCustomers,
    GdapCustomer(&'a str),
    GdapServiceDetails(&'a str),
    Contracts,
}

pub fn resolve<'a>(s: &[&'a str]) -> Option<(Rule, Route<'a>)> {
    use authz::*;
    let lower: Vec<String> = s.iter().map(|x| x.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    Some(match l.as_slice() {
        ["organization"] => (ORGANIZATION, Route::Organization),
        ["organization", _] => (ORGANIZATION, Route::OrganizationById(s[1])),
        ["domains"] => (DOMAINS, Route::Domains),
        ["domains", _] => (DOMAINS, Route::Domain(s[1])),
        ["subscribedskus"] => (LICENCES, Route::SubscribedSkus),
        ["directory", "subscriptions"] => (Rule { cost: 1, ..LICENCES }, Route::Subscriptions),
        ["users"] => (USERS, Route::Users),
        ["users", "$count"] => (USERS, Route::UsersCount),
        ["users", "delta"] | ["users", "delta()"] => (USERS, Route::UsersDelta),
        ["users", _] => (USERS, Route::User(s[1])),
        ["users", _, "memberof"] => (GROUPS, Route::UserMemberOf(s[1], false)),
        ["users", _, "transitivememberof"] => (GROUP_TRANSITIVE, Route::UserMemberOf(s[1], true)),
        ["me"] => (ME, Route::Me),
        ["me", "memberof"] => (MEMBER_OF, Route::MeMemberOf(false)),
        ["me", "transitivememberof"] => (MEMBER_OF, Route::MeMemberOf(true)),
        ["groups"] => (GROUPS, Route::Groups),
        ["groups", "delta"] | ["groups", "delta()"] => (GROUPS, Route::GroupsDelta),
        ["groups", _] => (GROUPS, Route::Group(s[1])),
        ["groups", _, "members"] => (GROUP_MEMBERS, Route::GroupMembers(s[1], false)),
        ["groups", _, "transitivemembers"] => (GROUP_TRANSITIVE, Route::GroupMembers(s[1], true)),
        ["directoryroles"] => (ROLES, Route::DirectoryRoles),
        ["directoryroles", _, "members"] => (ROLES, Route::DirectoryRoleMembers(s[1])),
        ["rolemanagement", "directory", "roledefinitions"] => (ROLES, Route::RoleDefinitions),
        ["rolemanagement", "directory", "roleassignments"] => (ROLES, Route::RoleAssignments),
        ["identity", "conditionalaccess", "policies"] => (CONDITIONAL_ACCESS, Route::CaPolicies),
        ["identity", "conditionalaccess", "namedlocations"] => (CONDITIONAL_ACCESS, Route::NamedLocations),
        ["policies", "identitysecuritydefaultsenforcementpolicy"] => (POLICIES, Route::SecurityDefaults),
        ["policies", "authorizationpolicy"] => (POLICIES, Route::AuthorizationPolicy),
        ["policies", "authenticationmethodspolicy"] => (AUTH_METHODS_POLICY, Route::AuthMethodsPolicy),
        ["reports", "authenticationmethods", "userregistrationdetails"] => {
            (REGISTRATION_DETAILS, Route::RegistrationDetails)
        }
        ["security", "securescores"] => (SECURE_SCORES, Route::SecureScores),
        ["serviceprincipals"] => (APPS, Route::ServicePrincipals),
        ["serviceprincipals", _] => (APPS, Route::ServicePrincipal(s[1])),
        ["serviceprincipals", _, "approleassignments"] => (APPS, Route::AppRoleAssignments(s[1])),
        ["applications"] => (APPS, Route::Applications),
        ["oauth2permissiongrants"] => (GRANTS, Route::Grants),
        ["devices"] => (DEVICES, Route::Devices),
        ["devicemanagement", "manageddevices"] => (MANAGED_DEVICES, Route::ManagedDevices),
        ["auditlogs", "signins"] => (SIGN_INS, Route::SignIns),
        ["tenantrelationships", "delegatedadminrelationships"] => (GDAP, Route::GdapRelationships),
        ["tenantrelationships", "delegatedadminrelationships", _] => (GDAP, Route::GdapRelationship(s[2])),
        ["tenantrelationships", "delegatedadminrelationships", _, "accessassignments"] => {
            (GDAP, Route::GdapAssignments(s[2]))
        }
        ["tenantrelationships", "delegatedadmincustomers"] => (GDAP, Route::GdapCustomers),
        ["tenantrelationships", "delegatedadmincustomers", _] => (GDAP, Route::GdapCustomer(s[2])),
        ["tenantrelationships", "delegatedadmincustomers", _, "servicemanagementdetails"] => {
            (GDAP, Route::GdapServiceDetails(s[2]))
        }
        ["contracts"] => (CONTRACTS, Route::Contracts),
        _ => return None,
    })
}

/// Everything a handler needs to answer one request.
struct Env<'a> {
    sim: &'a Sim,
    world: &'a World,
    tenant: &'a Tenant,
    claims: &'a AccessClaims,
    q: &'a Query,
    version: &'a str,
    path: &'a str,
    now: chrono::DateTime<chrono::Utc>,
    faults: &'a crate::faults::FaultConfig,
}

impl Env<'_> {
    fn context(&self, name: &str) -> String {
        format!("{}/{}/$metadata#{name}", self.graph_base(), self.version)
    }

    fn graph_base(&self) -> &str {
        &self.sim.base_url
    }

    /// The link to the next page: same path and options, with a new `$skiptoken`.
    fn next_link(&self, token: &str) -> String {
        // A delta round's pages are addressed by the skiptoken alone, so the old delta token is dropped.
        let kept = self.q.raw.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("$deltatoken"));
        let kept = kept.map(|(k, v)| (k.as_str(), v.as_str()));
        if self.faults.looping_next_link {
            let same = self.q.skiptoken.as_deref().map(|t| ("$skiptoken", t));
            return format!("{}/{}/{}?{}", self.graph_base(), self.version, self.path, odata_query(kept.chain(same)));
        }
        let base = if self.faults.foreign_next_link { "https://graph.attacker.example" } else { self.graph_base() };
        let query = odata_query(kept.chain(std::iter::once(("$skiptoken", token))));
        format!("{base}/{}/{}?{query}", self.version, self.path)
    }

    fn filter(&self, allowed: &[&str], resource: &str) -> Result<Option<Filter>, GraphError> {
        match &self.q.filter {
            None => Ok(None),
            Some(text) => {
                let f = parse_filter(text)?;
                check_filter(&f, self.q, allowed, resource)?;
                Ok(Some(f))
            }
        }
    }

    /// Pages a collection: filters, counts and slices, building JSON only for what it must.
    fn list<T>(
        &self,
        items: &[T],
        context: &str,
        default: usize,
        max: usize,
        filter: Option<&Filter>,
        to_json: impl Fn(&T) -> Result<Value, GraphError>,
    ) -> Result<GraphOk, GraphError> {
        let size = self.q.page_size(default, max)?;
        let offset = self.q.offset()?;
        let search = self.q.search.as_ref().map(|s| search_term(s));
        let (page, total) = if filter.is_some() || search.is_some() || self.q.orderby.is_some() {
            let mut all: Vec<Value> = Vec::new();
            for item in items {
                let full = to_json(item)?;
                if filter.is_some_and(|f| !f.matches(&full)) {
                    continue;
                }
                if let Some(Some((prop, term))) = &search {
                    let hit = full
                        .get(prop.as_str())
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.to_ascii_lowercase().contains(term.as_str()));
                    if !hit {
                        continue;
                    }
                }
                all.push(full);
            }
            if let Some(order) = &self.q.orderby {
                let (prop, desc) = match order.split_once(' ') {
                    Some((p, d)) => (p.to_string(), d.eq_ignore_ascii_case("desc")),
                    None => (order.clone(), false),
                };
                all.sort_by(|a, b| {
                    let (x, y) = (a.get(&prop).map(Value::to_string), b.get(&prop).map(Value::to_string));
                    if desc { y.cmp(&x) } else { x.cmp(&y) }
                });
            }
            let total = all.len();
            (all.into_iter().skip(offset).take(size).collect::<Vec<_>>(), total)
        } else {
            let total = items.len();
            let page = items.iter().skip(offset).take(size).map(&to_json).collect::<Result<Vec<_>, _>>()?;
            (page, total)
        };
        let mut body = json!({ "@odata.context": self.context(context) });
        if self.q.count && self.q.eventual && offset == 0 {
            body["@odata.count"] = json!(total);
        }
        let end = offset + page.len();
        if end < total {
            body["@odata.nextLink"] = json!(self.next_link(&encode_skiptoken(end)));
        }
        body["value"] = Value::Array(page);
        // Keep the documented key order: context, count, nextLink, value.
        if let Some(next) = body.as_object_mut().and_then(|o| o.remove("@odata.nextLink")) {
            let value = body.as_object_mut().and_then(|o| o.remove("value")).unwrap_or(Value::Null);
            body["@odata.nextLink"] = next;
            body["value"] = value;
        }
        Ok(GraphOk::json(body))
    }

    fn single(&self, context: &str, mut v: Value) -> GraphOk {
        if let Value::Object(map) = &mut v {
            let mut out = serde_json::Map::new();
            out.insert("@odata.context".into(), json!(self.context(context)));
            out.extend(std::mem::take(map));
            return GraphOk::json(Value::Object(out));
        }
        GraphOk::json(v)
    }

    fn wants_sign_in_activity(&self) -> bool {
        self.q.select.as_ref().is_some_and(|s| s.iter().any(|p| p.eq_ignore_ascii_case("signInActivity")))
            || self.q.filter.as_ref().is_some_and(|f| f.to_ascii_lowercase().contains("signinactivity"))
    }

    fn user_json(&self, u: &crate::world::User) -> Result<Value, GraphError> {
        match &self.q.select {
            None if self.q.filter.is_none() => Ok(objects::user_default_object(u, self.faults)),
            None => Ok(objects::user(u, self.tenant, self.faults, self.wants_sign_in_activity())),
            Some(sel) => apply_select(
                objects::user(u, self.tenant, self.faults, self.wants_sign_in_activity()),
                Some(sel),
                objects::USER_PROPERTIES,
                "user",
            ),
        }
    }

    fn find_user(&self, key: &str) -> Result<&crate::world::User, GraphError> {
        let u = match Uuid::parse_str(key) {
            Ok(id) => self.tenant.user(id),
            Err(_) => self.tenant.user_by_upn(key),
        };
        u.ok_or_else(|| GraphError::not_found(key))
    }

    /// The signed-in user in this tenant; a partner's foreign principal has no user object here.
    fn me(&self) -> Result<&crate::world::User, GraphError> {
        let oid = self
            .claims
            .oid
            .ok_or_else(|| GraphError::bad_request("/me request is only valid with delegated authentication flow."))?;
        self.tenant.user(oid).ok_or_else(|| GraphError::not_found(&oid.to_string()))
    }

    fn member_of(&self, id: Uuid, transitive: bool) -> Result<GraphOk, GraphError> {
        let groups: Vec<Uuid> = if transitive {
            self.tenant.transitive_groups(id)
        } else {
            self.tenant.groups.iter().filter(|g| g.members.contains(&id)).map(|g| g.id).collect()
        };
        let mut items: Vec<Value> =
            groups.iter().filter_map(|g| objects::member_ref(self.tenant, *g, self.faults)).collect();
        if let Some(u) = self.tenant.user(id) {
            for r in &u.roles {
                if let Some(t) = crate::catalog::ROLE_TEMPLATES.iter().find(|t| t.id == r) {
                    let mut v = objects::directory_role(self.tenant, t);
                    v["@odata.type"] = json!("#microsoft.graph.directoryRole");
                    items.push(v);
                }
            }
        }
        self.list(&items, "directoryObjects", 100, 999, None, |v| Ok(v.clone()))
    }

    fn serve(&self, route: &Route<'_>) -> Result<GraphOk, GraphError> {
        let t = self.tenant;
        let f = self.faults;
        match route {
            Route::Organization => {
                let org = objects::organization(t, self.world, self.now);
                self.list(std::slice::from_ref(&org), "organization", 100, 999, None, |v| {
                    apply_select(v.clone(), self.q.select.as_deref(), &keys(v), "organization")
                })
            }
            Route::OrganizationById(id) => {
                if !id.eq_ignore_ascii_case(&t.id.to_string()) {
                    return Err(GraphError::not_found(id));
                }
                Ok(self.single("organization/$entity", objects::organization(t, self.world, self.now)))
            }
            Route::Domains => {
                let domains: Vec<&str> = t.domains().collect();
                self.list(&domains, "domains", 100, 999, None, |d| Ok(objects::domain(t, d)))
            }
            Route::Domain(d) => t
                .domains()
                .find(|x| x.eq_ignore_ascii_case(d))
                .map(|x| self.single("domains/$entity", objects::domain(t, x)))
                .ok_or_else(|| GraphError::not_found(d)),
            Route::SubscribedSkus => {
                let items: Vec<Value> = t.licences.iter().map(|l| objects::subscribed_sku(t, l)).collect();
                self.list(&items, "subscribedSkus", 100, 999, None, |v| Ok(v.clone()))
            }
            Route::Subscriptions => {
                let items: Vec<Value> = t.licences.iter().map(|l| objects::subscription(t, l, self.now)).collect();
                self.list(&items, "directory/subscriptions", 100, 999, None, |v| Ok(v.clone()))
            }
            Route::Users => {
                let filter = self.filter(
                    &[
                        "accountEnabled",
                        "userType",
                        "displayName",
                        "userPrincipalName",
                        "mail",
                        "id",
                        "givenName",
                        "surname",
                        "department",
                        "jobTitle",
                        "signInActivity/lastSignInDateTime",
                        "createdDateTime",
                        "onPremisesSyncEnabled",
                        "usageLocation",
                    ],
                    "User",
                )?;
                let users: Vec<&crate::world::User> = t.users.iter().collect();
                self.list(&users, "users", 100, 999, filter.as_ref(), |u| {
                    if filter.is_some() {
                        // Filtering needs every property; the selection is applied after the match below.
                        Ok(objects::user(u, t, f, self.wants_sign_in_activity()))
                    } else {
                        self.user_json(u)
                    }
                })
                .and_then(|ok| {
                    if filter.is_some() { self.reselect(ok, objects::USER_PROPERTIES, "user", true) } else { Ok(ok) }
                })
            }
            Route::UsersCount => {
                if !self.q.eventual {
                    return Err(GraphError::bad_request("$count is not currently supported."));
                }
                Ok(GraphOk {
                    status: StatusCode::OK,
                    body: GraphBody::Text(t.users.len().to_string()),
                    headers: Vec::new(),
                })
            }
            Route::UsersDelta => self.delta("users", t.users.iter().map(|u| (u.id, self.user_json(u))).collect()),
            Route::GroupsDelta => {
                let with_members =
                    self.q.select.as_ref().is_some_and(|s| s.iter().any(|p| p.eq_ignore_ascii_case("members")));
                let items = t
                    .groups
                    .iter()
                    .map(|g| {
                        let mut v = objects::group(g, t, f);
                        if with_members {
                            v["members@delta"] = json!(g.members.iter().map(|m| json!({"@odata.type": if t.user(*m).is_some() { "#microsoft.graph.user" } else { "#microsoft.graph.group" }, "id": m.to_string()})).collect::<Vec<_>>());
                        }
                        let sel: Option<Vec<String>> = self.q.select.as_ref().map(|s| s.iter().filter(|p| !p.eq_ignore_ascii_case("members")).cloned().chain(std::iter::once("members@delta".to_string())).collect());
                        let mut known: Vec<&str> = objects::GROUP_PROPERTIES.to_vec();
                        known.push("members@delta");
                        (g.id, apply_select(v, sel.as_deref(), &known, "group"))
                    })
                    .collect();
                self.delta("groups", items)
            }
            Route::User(key) => {
                let u = self.find_user(key)?;
                Ok(self.single("users/$entity", self.user_json(u)?))
            }
            Route::UserMemberOf(key, transitive) => {
                let u = self.find_user(key)?;
                self.member_of(u.id, *transitive)
            }
            Route::Me => {
                let u = self.me()?;
                Ok(self.single("users/$entity", self.user_json(u)?))
            }
            Route::MeMemberOf(transitive) => {
                let u = self.me()?;
                self.member_of(u.id, *transitive)
            }
            Route::Groups => {
                let filter =
                    self.filter(&["displayName", "securityEnabled", "mailEnabled", "id", "groupTypes"], "Group")?;
                let expand_members = self.q.expand.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("members"));
                if let Some(e) = &self.q.expand
                    && !expand_members
                {
                    return Err(GraphError::bad_request(format!(
                        "Could not find a property named '{}' on type 'microsoft.graph.group'.",
                        crate::identity::truncate(e, 80)
                    )));
                }
                self.list(&t.groups, "groups", 100, 999, filter.as_ref(), |g| {
                    let mut v = objects::group(g, t, f);
                    if expand_members {
                        v["members"] = json!(
                            g.members.iter().filter_map(|m| objects::member_ref(t, *m, f)).take(20).collect::<Vec<_>>()
                        );
                    }
                    apply_select(v, self.q.select.as_deref(), objects::GROUP_PROPERTIES, "group")
                })
            }
            Route::Group(id) => {
                let g = Uuid::parse_str(id).ok().and_then(|i| t.group(i)).ok_or_else(|| GraphError::not_found(id))?;
                Ok(self.single(
                    "groups/$entity",
                    apply_select(
                        objects::group(g, t, f),
                        self.q.select.as_deref(),
                        objects::GROUP_PROPERTIES,
                        "group",
                    )?,
                ))
            }
            Route::GroupMembers(id, transitive) => {
                let g = Uuid::parse_str(id).ok().and_then(|i| t.group(i)).ok_or_else(|| GraphError::not_found(id))?;
                let ids: Vec<Uuid> = if *transitive { t.transitive_members(g.id) } else { g.members.clone() };
                self.list(&ids, "directoryObjects", 100, 999, None, |m| {
                    objects::member_ref(t, *m, f).ok_or_else(|| GraphError::not_found(&m.to_string()))
                })
            }
            Route::DirectoryRoles => {
                let expand = self.q.expand.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("members"));
                let roles = objects::activated_roles(t);
                let items: Vec<Value> = roles
                    .iter()
                    .map(|r| {
                        let mut v = objects::directory_role(t, r);
                        if expand {
                            v["members"] = json!(
                                t.users
                                    .iter()
                                    .filter(|u| u.roles.iter().any(|x| x == r.id))
                                    .map(|u| {
                                        let mut m = objects::user_default(objects::user(u, t, f, false));
                                        m["@odata.type"] = json!("#microsoft.graph.user");
                                        m
                                    })
                                    .collect::<Vec<_>>()
                            );
                        }
                        v
                    })
                    .collect();
                Ok(GraphOk::json(json!({ "@odata.context": self.context("directoryRoles"), "value": items })))
            }
            Route::DirectoryRoleMembers(id) => {
                let role = objects::activated_roles(t)
                    .into_iter()
                    .find(|r| {
                        objects::directory_role_id(t.id, r.id).to_string().eq_ignore_ascii_case(id)
                            || r.id.eq_ignore_ascii_case(id)
                    })
                    .ok_or_else(|| GraphError::not_found(id))?;
                let members: Vec<&crate::world::User> =
                    t.users.iter().filter(|u| u.roles.iter().any(|x| x == role.id)).collect();
                self.list(&members, "directoryObjects", 100, 999, None, |u| {
                    let mut m = objects::user_default(objects::user(u, t, f, false));
                    m["@odata.type"] = json!("#microsoft.graph.user");
                    Ok(m)
                })
            }
            Route::RoleDefinitions => {
                let filter = self.filter(&["id", "templateId", "displayName", "isBuiltIn"], "UnifiedRoleDefinition")?;
                self.list(
                    crate::catalog::ROLE_TEMPLATES,
                    "roleManagement/directory/roleDefinitions",
                    100,
                    999,
                    filter.as_ref(),
                    |r| Ok(objects::role_definition(r)),
                )
            }
            Route::RoleAssignments => {
                let filter =
                    self.filter(&["roleDefinitionId", "principalId", "directoryScopeId"], "UnifiedRoleAssignment")?;
                let expand = match self.q.expand.as_deref() {
                    None => false,
                    Some(e) if e.eq_ignore_ascii_case("principal") => true,
                    Some(e) => {
                        return Err(GraphError::bad_request(format!(
                            "Could not find a property named '{}' on type 'microsoft.graph.unifiedRoleAssignment'.",
                            crate::identity::truncate(e, 80)
                        )));
                    }
                };
                let assignments = objects::role_assignments(self.world, t, self.now, f);
                self.list(&assignments, "roleManagement/directory/roleAssignments", 100, 999, filter.as_ref(), |a| {
                    Ok(objects::role_assignment(a, expand))
                })
            }
            Route::CaPolicies => {
                self.list(&t.ca_policies, "identity/conditionalAccess/policies", 100, 999, None, |p| {
                    Ok(objects::ca_policy(p, t))
                })
            }
            Route::NamedLocations => {
                self.list(&t.named_locations, "identity/conditionalAccess/namedLocations", 100, 999, None, |l| {
                    Ok(objects::named_location(l))
                })
            }
            Route::SecurityDefaults => Ok(self
                .single("policies/identitySecurityDefaultsEnforcementPolicy/$entity", objects::security_defaults(t))),
            Route::AuthorizationPolicy => {
                Ok(self.single("policies/authorizationPolicy/$entity", objects::authorization_policy(t)))
            }
            Route::AuthMethodsPolicy => {
                Ok(self
                    .single("policies/authenticationMethodsPolicy/$entity", objects::authentication_methods_policy(t)))
            }
            Route::RegistrationDetails => {
                let filter = self.filter(
                    &[
                        "isMfaRegistered",
                        "isAdmin",
                        "userType",
                        "userPrincipalName",
                        "isMfaCapable",
                        "isSsprRegistered",
                    ],
                    "UserRegistrationDetails",
                )?;
                let users: Vec<&crate::world::User> = t.users.iter().collect();
                self.list(
                    &users,
                    "reports/authenticationMethods/userRegistrationDetails",
                    100,
                    999,
                    filter.as_ref(),
                    |u| Ok(objects::registration_details(u, t)),
                )
            }
            Route::SecureScores => {
                let days: Vec<i64> = (0..30).collect();
                self.list(&days, "security/secureScores", 100, 999, None, |d| {
                    Ok(objects::secure_score(t, self.now, *d))
                })
            }
            Route::ServicePrincipals => {
                let mut items = vec![objects::graph_service_principal(t)];
                items.extend(
                    t.service_principals.iter().map(|sp| objects::service_principal(sp, self.world.app(sp.app_id), t)),
                );
                let filter =
                    self.filter(&["appId", "displayName", "id", "servicePrincipalType"], "ServicePrincipal")?;
                self.list(&items, "servicePrincipals", 100, 999, filter.as_ref(), |v| Ok(v.clone()))
            }
            Route::ServicePrincipal(id) => {
                if id.eq_ignore_ascii_case(&objects::graph_sp_id(t.id).to_string()) {
                    return Ok(self.single("servicePrincipals/$entity", objects::graph_service_principal(t)));
                }
                let sp = t
                    .service_principals
                    .iter()
                    .find(|sp| sp.id.to_string().eq_ignore_ascii_case(id))
                    .ok_or_else(|| GraphError::not_found(id))?;
                Ok(self
                    .single("servicePrincipals/$entity", objects::service_principal(sp, self.world.app(sp.app_id), t)))
            }
            Route::AppRoleAssignments(id) => {
                if id.eq_ignore_ascii_case(&objects::graph_sp_id(t.id).to_string()) {
                    return self.list(
                        &Vec::<Value>::new(),
                        "servicePrincipals('id')/appRoleAssignments",
                        100,
                        999,
                        None,
                        |v| Ok(v.clone()),
                    );
                }
                let sp = t
                    .service_principals
                    .iter()
                    .find(|sp| sp.id.to_string().eq_ignore_ascii_case(id))
                    .ok_or_else(|| GraphError::not_found(id))?;
                self.list(
                    &sp.application,
                    &format!("servicePrincipals('{}')/appRoleAssignments", sp.id),
                    100,
                    999,
                    None,
                    |r| Ok(objects::app_role_assignment(sp, r, t)),
                )
            }
            Route::Applications => {
                let apps: Vec<&crate::world::App> = self.world.apps.iter().filter(|a| a.home_tenant == t.id).collect();
                self.list(&apps, "applications", 100, 999, None, |a| Ok(objects::application(a)))
            }
            Route::Grants => {
                let sps: Vec<&crate::world::ServicePrincipal> =
                    t.service_principals.iter().filter(|sp| !sp.delegated.is_empty()).collect();
                let filter =
                    self.filter(&["clientId", "consentType", "resourceId", "principalId"], "OAuth2PermissionGrant")?;
                self.list(&sps, "oauth2PermissionGrants", 100, 999, filter.as_ref(), |sp| {
                    Ok(objects::permission_grant(sp, t))
                })
            }
            Route::Devices => self.list(&t.devices, "devices", 100, 999, None, |d| Ok(objects::device(d))),
            Route::ManagedDevices => {
                let managed: Vec<&crate::world::Device> = t.devices.iter().filter(|d| d.managed).collect();
                self.list(&managed, "deviceManagement/managedDevices", 100, 999, None, |d| {
                    Ok(objects::managed_device(d, t))
                })
            }
            Route::SignIns => {
                let week = self.now - chrono::Duration::days(7);
                let entries: Vec<(&crate::world::User, usize)> = t
                    .users
                    .iter()
                    .filter(|u| u.last_sign_in.is_some_and(|s| s > week))
                    .flat_map(|u| [(u, 0usize), (u, 1usize)])
                    .collect();
                let filter = self.filter(
                    &[
                        "createdDateTime",
                        "userPrincipalName",
                        "userId",
                        "appId",
                        "status/errorCode",
                        "conditionalAccessStatus",
                    ],
                    "SignIn",
                )?;
                self.list(&entries, "auditLogs/signIns", 100, 1000, filter.as_ref(), |(u, n)| {
                    Ok(objects::sign_in(u, t, *n, self.now))
                })
            }
            Route::GdapRelationships => {
                let rels: Vec<&crate::world::GdapRelationship> =
                    self.world.gdap.iter().filter(|r| r.partner == t.id).collect();
                let filter =
                    self.filter(&["status", "displayName", "customer/tenantId", "id"], "DelegatedAdminRelationship")?;
                self.list(&rels, "tenantRelationships/delegatedAdminRelationships", 300, 300, filter.as_ref(), |r| {
                    Ok(objects::gdap_relationship(r, self.world, self.now))
                })
            }
            Route::GdapRelationship(id) => {
                let r = self
                    .world
                    .gdap
                    .iter()
                    .find(|r| r.partner == t.id && r.id.eq_ignore_ascii_case(id))
                    .ok_or_else(|| GraphError::not_found(id))?;
                Ok(self.single(
                    "tenantRelationships/delegatedAdminRelationships/$entity",
                    objects::gdap_relationship(r, self.world, self.now),
                ))
            }
            Route::GdapAssignments(id) => {
                let r = self
                    .world
                    .gdap
                    .iter()
                    .find(|r| r.partner == t.id && r.id.eq_ignore_ascii_case(id))
                    .ok_or_else(|| GraphError::not_found(id))?;
                self.list(
                    &r.assignments,
                    "tenantRelationships/delegatedAdminRelationships('id')/accessAssignments",
                    100,
                    300,
                    None,
                    |a| Ok(objects::access_assignment(a, r, self.now)),
                )
            }
            Route::GdapCustomers => {
                let customers = self.gdap_customers();
                self.list(&customers, "tenantRelationships/delegatedAdminCustomers", 300, 300, None, |c| {
                    Ok(objects::delegated_admin_customer(c))
                })
            }
            Route::GdapCustomer(id) => {
                let c = self
                    .gdap_customers()
                    .into_iter()
                    .find(|c| c.id.to_string().eq_ignore_ascii_case(id))
                    .ok_or_else(|| GraphError::not_found(id))?;
                Ok(self.single(
                    "tenantRelationships/delegatedAdminCustomers/$entity",
                    objects::delegated_admin_customer(c),
                ))
            }
            Route::GdapServiceDetails(id) => {
                let c = self
                    .gdap_customers()
                    .into_iter()
                    .find(|c| c.id.to_string().eq_ignore_ascii_case(id))
                    .ok_or_else(|| GraphError::not_found(id))?;
                let services = [
                    ("MicrosoftEntra", format!("https://entra.microsoft.com/{}", c.domain)),
                    (
                        "Microsoft365",
                        format!("https://admin.microsoft.com/Partner/BeginClientSession.aspx?CTID={}", c.id),
                    ),
                ];
                self.list(
                    &services,
                    "tenantRelationships/delegatedAdminCustomers('id')/serviceManagementDetails",
                    100,
                    300,
                    None,
                    |(name, url)| {
                        Ok(json!({
                            "@odata.type": "#microsoft.graph.delegatedAdminServiceManagementDetail",
                            "id": Uuid::new_v5(&c.id, name.as_bytes()).to_string(),
                            "serviceManagementUrl": url,
                            "serviceName": name,
                        }))
                    },
                )
            }
            Route::Contracts => {
                let contracts: Vec<(&crate::world::Contract, &Tenant)> = self
                    .world
                    .contracts
                    .iter()
                    .filter(|c| c.partner == t.id)
                    .filter_map(|c| self.world.tenant(c.customer).map(|ct| (c, ct)))
                    .collect();
                self.list(&contracts, "contracts", 100, 999, None, |(c, ct)| Ok(objects::contract(c, ct)))
            }
        }
    }

    fn gdap_customers(&self) -> Vec<&Tenant> {
        if self.tenant.kind != TenantKind::Partner {
            return Vec::new();
        }
        let mut out: Vec<&Tenant> = Vec::new();
        for r in self
            .world
            .gdap
            .iter()
            .filter(|r| r.partner == self.tenant.id && r.status_at(self.now) != GdapStatus::Terminated)
        {
            if let Some(c) = self.world.tenant(r.customer)
                && !out.iter().any(|x| x.id == c.id)
            {
                out.push(c);
            }
        }
        out
    }

    /// Applies `$select` to the values of a page built from full objects (after `$filter` matched them).
    fn reselect(
        &self,
        mut ok: GraphOk,
        known: &[&str],
        type_name: &str,
        default_users: bool,
    ) -> Result<GraphOk, GraphError> {
        if let GraphBody::Json(body) = &mut ok.body
            && let Some(Value::Array(items)) = body.get_mut("value")
        {
            for item in items.iter_mut() {
                let v = std::mem::take(item);
                *item = match &self.q.select {
                    Some(sel) => apply_select(v, Some(sel), known, type_name)?,
                    None if default_users => objects::user_default(v),
                    None => v,
                };
            }
        }
        Ok(ok)
    }

    /// Serves one page of a delta round, starting the round on its first request.
    fn delta(&self, collection: &str, items: Vec<(Uuid, Result<Value, GraphError>)>) -> Result<GraphOk, GraphError> {
        let size = 200usize.min(self.q.top.unwrap_or(200).max(1));
        let mut objects: HashMap<Uuid, Value> = HashMap::with_capacity(items.len());
        let mut order = Vec::with_capacity(items.len());
        for (id, v) in items {
            objects.insert(id, v?);
            order.push(id);
        }
        let resync = || {
            GraphError::new(
                410,
                "resyncRequired",
                "Resync required. Replace any local items with the server's version (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd. Upload any local changes that the server doesn't know about.",
            )
        };
        let mut store = self.sim.delta.lock().unwrap_or_else(|e| e.into_inner());
        let context = collection.to_string();
        let (round, offset) = match (&self.q.skiptoken, &self.q.deltatoken) {
            (Some(skip), _) => {
                let text =
                    String::from_utf8(URL_SAFE_NO_PAD.decode(skip).map_err(|_| resync())?).map_err(|_| resync())?;
                let (round, offset) = text.split_once(':').ok_or_else(resync)?;
                (round.to_string(), offset.parse::<usize>().map_err(|_| resync())?)
            }
            (None, Some(token)) if token.eq_ignore_ascii_case("latest") => {
                let state = objects.iter().map(|(k, v)| (*k, delta::fingerprint(v))).collect();
                let new = store.latest(self.tenant.id, collection, state, self.now);
                return Ok(GraphOk::json(json!({
                    "@odata.context": self.context(&context),
                    "@odata.deltaLink": self.delta_link(&new),
                    "value": [],
                })));
            }
            (None, token) => {
                let state = objects.iter().map(|(k, v)| (*k, delta::fingerprint(v))).collect();
                let round = store
                    .start(self.tenant.id, collection, token.as_deref(), state, &order, self.now)
                    .map_err(|DeltaError::ResyncRequired| resync())?;
                (round, 0)
            }
        };
        let (entries, last) = store.page(&round, self.tenant.id, collection, offset, size).map_err(|_| resync())?;
        let value: Vec<Value> = entries
            .iter()
            .map(|e| match e {
                Entry::Changed(id) => objects
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| json!({"id": id.to_string(), "@removed": {"reason": "deleted"}})),
                Entry::Removed(id) => json!({"id": id.to_string(), "@removed": {"reason": "deleted"}}),
            })
            .collect();
        let mut body = json!({ "@odata.context": self.context(&context) });
        if last {
            let token = store.finish(&round, self.now).map_err(|_| resync())?;
            body["@odata.deltaLink"] = json!(self.delta_link(&token));
        } else {
            let skip = URL_SAFE_NO_PAD.encode(format!("{round}:{}", offset + entries.len()));
            body["@odata.nextLink"] = json!(self.next_link(&skip));
        }
        body["value"] = Value::Array(value);
        Ok(GraphOk::json(body))
    }

    fn delta_link(&self, token: &str) -> String {
        let kept = self.q.raw.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("$deltatoken"));
        let query =
            odata_query(kept.map(|(k, v)| (k.as_str(), v.as_str())).chain(std::iter::once(("$deltatoken", token))));
        format!("{}/{}/{}?{query}", self.graph_base(), self.version, self.path)
    }
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default()
}

/// `$search="displayName:term"` as (property, lowercase term).
fn search_term(s: &str) -> Option<(String, String)> {
    let inner = s.trim().trim_matches('"');
    let (prop, term) = inner.split_once(':')?;
    Some((prop.trim().to_string(), term.trim().to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_case_insensitively() {
        assert!(matches!(resolve(&["Users"]), Some((_, Route::Users))));
        assert!(matches!(resolve(&["users", "delta"]), Some((_, Route::UsersDelta))));
        assert!(matches!(
            resolve(&["tenantRelationships", "delegatedAdminCustomers"]),
            Some((_, Route::GdapCustomers))
        ));
        assert!(resolve(&["nonsense"]).is_none());
        assert_eq!(normalize_path("users/0f3c2a55-1111-4222-8333-444455556666/memberOf"), "users/{id}/memberOf");
    }
}
