//! The simulated Microsoft Graph (v1.0 and beta): token validation, authorization, throttling, faults,
//! paging, delta and `$batch`, over the directory, policy, report and GDAP resources that tenantscope
//! reads.
//!
//! This module owns the way a request goes through Graph: `entry` applies injected faults and reads
//! the body, [`authenticate`] validates the bearer token, and `handle` resolves the path, authorizes
//! the caller, charges the throttling budget and dispatches to the resource's handler. The rest is
//! split by concern:
//!
//! - `routes`: the route table (path to route and authorization rule) and the dispatch table (route
//!   to handler);
//! - `env`: what a handler gets (`Env`) and the response shapes they share (single entities,
//!   paged collections, `$select`);
//! - the handlers, one module per resource: `organization` (organization, domains, licences), `users`
//!   (users and `/me`), `groups`, `roles` (directory roles and role management), `apps` (service
//!   principals, applications, permission grants), `devices`, `policies`, `reports` (reports, secure
//!   scores, sign-ins), `gdap` (tenant relationships) and `contracts`;
//! - `authz`, `throttle`, `query` (OData options and `$filter`), `delta` (delta rounds),
//!   `batch` (`$batch`) and `objects` (the JSON of each resource).

mod apps;
mod authz;
mod batch;
mod contracts;
pub(crate) mod delta;
mod devices;
mod env;
mod gdap;
mod groups;
mod objects;
mod organization;
mod policies;
mod query;
mod reports;
mod roles;
mod routes;
pub(crate) mod throttle;
mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, OriginalUri, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;
use uuid::Uuid;

use self::env::Env;
use self::query::Query;
use self::routes::{Route, dispatch, resolve};
use crate::errors::{GraphCtx, GraphError};
use crate::faults::{Injected, Outcome};
use crate::state::{AccessClaims, Counters, SharedSim, Sim};

pub fn router() -> Router<SharedSim> {
    Router::new().route("/v1.0/{*path}", any(entry)).route("/beta/{*path}", any(entry))
}

/// A successful Graph answer, before faults and headers are applied.
pub(crate) struct GraphOk {
    pub status: StatusCode,
    pub body: GraphBody,
    pub headers: Vec<(HeaderName, String)>,
}

pub(crate) enum GraphBody {
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
    crate::identity::ClientIp(ip): crate::identity::ClientIp,
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
    let claims = match authenticate(&sim, &headers).and_then(|c| evaluate_continuously(&sim, c, ip)) {
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
pub(crate) fn injected_graph_error(code: u16, retry_after: Option<u64>) -> GraphError {
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

pub(crate) fn render(ok: GraphOk, ctx: &GraphCtx) -> Response {
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
    if claims.exp + 300 < now {
        return Err(GraphError::invalid_token(TOKEN_EXPIRED));
    }
    if claims.nbf - 300 > now {
        return Err(GraphError::invalid_token(TOKEN_NOT_YET_VALID));
    }
    if sim.world().tenant(claims.tid).is_none() {
        return Err(GraphError::invalid_token("Access token validation failure. Invalid tenant."));
    }
    Ok(claims)
}

/// Graph's 401 texts since it validates tokens with Microsoft.IdentityModel (2023 on; earlier it said
/// "CompactToken parsing failed with error code: 80049217" and "Access token has expired or is not yet
/// valid."). The malformed-token text is the one recorded from Graph on 2024-11-16 (public capture of a
/// `GET /v1.0/me` answer); the lifetime texts are IdentityModel's as Graph words them (issue 19).
pub(crate) const TOKEN_NOT_WELL_FORMED: &str = "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EncodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'.";
const TOKEN_BAD_HEADER: &str = "IDX14102: Unable to decode the header '[PII of type 'Microsoft.IdentityModel.Logging.SecurityArtifact' is hidden. For more details, see https://aka.ms/IdentityModel/PII.]' as Base64Url encoded string.";
pub(crate) const TOKEN_EXPIRED: &str = "Lifetime validation failed, the token is expired.";
const TOKEN_NOT_YET_VALID: &str = "Lifetime validation failed, the token is not yet valid.";

/// Continuous access evaluation of a user token whose client declared `cp1`: Graph refuses it at once,
/// with a claims challenge, when the user's sessions were revoked after it was issued or when the tenant's
/// location policy no longer allows the address the request comes from (ENTRA
/// `app-resilience-continuous-access-evaluation.md`, `claims-challenge.md`; the challenge's layout and texts
/// are those of `payloads/graph_claims_challenge_cae.json` and of Graph's recorded answers, for example
/// "Continuous access evaluation resulted in challenge with result: InteractionRequired and code:
/// TokenIssuedBeforeRevocationTimestamp"). Tokens of clients without the capability live their hour.
fn evaluate_continuously(
    sim: &Sim,
    claims: Arc<AccessClaims>,
    ip: std::net::IpAddr,
) -> Result<Arc<AccessClaims>, GraphError> {
    let Some(oid) = claims.oid.filter(|_| claims.cae) else { return Ok(claims) };
    let world = sim.world();
    let home_id = claims.home_tid.unwrap_or(claims.tid);
    let (Some(resource), Some(home)) = (world.tenant(claims.tid), world.tenant(home_id)) else { return Ok(claims) };
    let Some(user) = home.user(oid) else { return Ok(claims) };
    let now = sim.now();
    if user.sessions_valid_after.timestamp() > claims.iat {
        return Err(cae_challenge("TokenIssuedBeforeRevocationTimestamp", user.sessions_valid_after.timestamp()));
    }
    // A disabled account is one of CAE's critical events too (ENTRA `concept-continuous-access-evaluation`,
    // "User account is deleted or disabled"); Entra revokes its sessions, which is the challenge it gets.
    if !user.enabled {
        return Err(cae_challenge("TokenIssuedBeforeRevocationTimestamp", now.timestamp()));
    }
    let blocked_by_location = crate::identity::issue::requirements(&world, resource, home, user, ip, now)
        .block
        .and_then(|id| resource.ca_policies.iter().find(|p| p.id == id))
        .is_some_and(|p| p.outside_locations.is_some());
    if blocked_by_location {
        return Err(cae_challenge("LocationConditionEvaluationSatisfied", now.timestamp()));
    }
    Ok(claims)
}

/// Graph's 401 claims challenge: the client must get a token issued after `nbf` and may retry.
fn cae_challenge(code: &str, nbf: i64) -> GraphError {
    use base64::Engine;
    let message =
        format!("Continuous access evaluation resulted in challenge with result: InteractionRequired and code: {code}");
    let claims = serde_json::json!({ "access_token": { "nbf": { "essential": true, "value": nbf.to_string() } } });
    let encoded = base64::engine::general_purpose::STANDARD.encode(claims.to_string());
    GraphError::new(401, "InvalidAuthenticationToken", message.clone()).with_header(
        "www-authenticate",
        format!(
            r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error_description="{message}", error="insufficient_claims", claims="{encoded}""#
        ),
    )
}

fn verify(sim: &Sim, token: &str) -> Result<AccessClaims, GraphError> {
    if token.split('.').count() != 3 || token.len() > 16 * 1024 {
        return Err(GraphError::invalid_token(TOKEN_NOT_WELL_FORMED));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| GraphError::invalid_token(TOKEN_BAD_HEADER))?;
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
        nbf: c.get("nbf").and_then(Value::as_i64).unwrap_or(0),
        exp: c.get("exp").and_then(Value::as_i64).unwrap_or(0),
        home_tid,
        iat: c.get("iat").and_then(Value::as_i64).unwrap_or(0),
        cae: list("xms_cc").iter().any(|v| v.eq_ignore_ascii_case("cp1")),
    })
}

/// One Graph request after authentication; `$batch` calls this for each of its requests.
#[allow(clippy::too_many_arguments)]
pub(crate) fn handle(
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
    let mut ok = dispatch(&env, &route)?;
    ok.headers.push((HeaderName::from_static("x-ms-resource-unit"), usage.resource_units.to_string()));
    if let Some(p) = usage.limit_percentage {
        ok.headers.push((HeaderName::from_static("x-ms-throttle-limit-percentage"), format!("{p:.1}")));
    }
    let _ = ctx;
    Ok(ok)
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
        let graph = "00000003-0000-0000-c000-000000000000";
        assert_eq!(
            resolve(&[&format!("servicePrincipals(appId='{graph}')"), "appRoleAssignedTo"]).map(|r| r.1),
            Some(Route::AppRoleAssignedToByAppId(graph))
        );
        assert_eq!(
            resolve(&[&format!("serviceprincipals(APPID=%27{graph}%27)")]).map(|r| r.1),
            Some(Route::ServicePrincipalByAppId(graph))
        );
        assert!(resolve(&[&format!("servicePrincipals(appId={graph})")]).is_none(), "the key is quoted");
        assert!(resolve(&[&format!("servicePrincipals(appId='{graph}')"), "owners"]).is_none());
        assert_eq!(normalize_path("users/0f3c2a55-1111-4222-8333-444455556666/memberOf"), "users/{id}/memberOf");
    }
}
