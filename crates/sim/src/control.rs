//! The control API, under `/_sim/` (a prefix no Microsoft endpoint uses), guarded by the bearer token the
//! simulator prints at start. Tests and the demo change the world, move the clock, inject faults and
//! read counters through it.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::FaultConfig;
use crate::graph::throttle::Limits;
use crate::state::SharedSim;
use crate::world::actions::Action;

pub(crate) fn router(sim: SharedSim) -> Router<SharedSim> {
    Router::new()
        .route("/_sim/actions", post(actions))
        .route("/_sim/scenarios", get(scenarios))
        .route("/_sim/scenarios/{name}", post(scenario))
        .route("/_sim/clock", get(clock).post(advance))
        .route("/_sim/counters", get(counters))
        .route("/_sim/counters/reset", post(reset_counters))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/throttle", get(get_limits).put(put_limits))
        .route("/_sim/keys/rotate", post(rotate))
        .route("/_sim/delta/expire", post(expire_delta))
        .route("/_sim/world", get(world))
        .route("/_sim/idp/{name}/token", post(idp_token))
        .route_layer(middleware::from_fn_with_state(sim, guard))
        .route("/_sim/health", get(|| async { Json(json!({"ok": true})) }))
        .route("/_idp/{name}/.well-known/openid-configuration", get(idp_configuration))
        .route("/_idp/{name}/keys", get(idp_keys))
}

async fn guard(State(sim): State<SharedSim>, req: Request, next: Next) -> Response {
    let expected = format!("Bearer {}", sim.control_token);
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ok =
        given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "the control API needs the control token printed at start"})),
        )
            .into_response();
    }
    next.run(req).await
}

fn bad(msg: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.to_string()}))).into_response()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ActionsBody {
    List(Vec<Action>),
    Wrapped { actions: Vec<Action> },
    One(Action),
}

async fn actions(State(sim): State<SharedSim>, body: axum::body::Bytes) -> Response {
    let parsed: ActionsBody = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad(format!("not a list of actions: {e}")),
    };
    let list = match parsed {
        ActionsBody::List(l) | ActionsBody::Wrapped { actions: l } => l,
        ActionsBody::One(a) => vec![a],
    };
    apply_all(&sim, &list)
}

fn apply_all(sim: &SharedSim, list: &[Action]) -> Response {
    let now = sim.now();
    let mut world = sim.world_mut();
    // Actions apply all or nothing, so that a typo in the third action does not leave the world half changed.
    let mut scratch = world.clone();
    for (i, a) in list.iter().enumerate() {
        if let Err(e) = scratch.apply(a, now) {
            return bad(format!("action {} failed: {e}", i + 1));
        }
    }
    *world = scratch;
    Json(json!({"applied": list.len(), "now": now})).into_response()
}

async fn scenarios(State(sim): State<SharedSim>) -> Response {
    let w = sim.world();
    Json(json!(
        w.scenarios
            .iter()
            .map(|s| json!({"name": s.name, "description": s.description, "actions": s.actions.len()}))
            .collect::<Vec<_>>()
    ))
    .into_response()
}

async fn scenario(State(sim): State<SharedSim>, Path(name): Path<String>) -> Response {
    let actions = sim.world().scenarios.iter().find(|s| s.name == name).map(|s| s.actions.clone());
    match actions {
        Some(a) => apply_all(&sim, &a),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": format!("no scenario {name}")}))).into_response(),
    }
}

async fn clock(State(sim): State<SharedSim>) -> Response {
    Json(json!({"now": sim.now(), "offset_seconds": sim.clock.offset().num_seconds()})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    #[serde(default)]
    seconds: Option<i64>,
    #[serde(default)]
    by: Option<String>,
}

async fn advance(State(sim): State<SharedSim>, body: axum::body::Bytes) -> Response {
    let body: Advance = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad(format!("not a clock change: {e}")),
    };
    let by = match (body.seconds, body.by) {
        (Some(s), _) => {
            match Duration::try_seconds(s).filter(|d| d.abs() <= Duration::days(crate::world::file::MAX_OFFSET_DAYS)) {
                Some(d) => d,
                None => return bad(format!("seconds must be within {} days", crate::world::file::MAX_OFFSET_DAYS)),
            }
        }
        (None, Some(text)) => {
            let base = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
            let text = if text.starts_with(['+', '-']) { text } else { format!("+{text}") };
            match crate::world::file::parse_time(&text, base) {
                Ok(t) => t - base,
                Err(e) => return bad(e),
            }
        }
        (None, None) => return bad("give seconds or by (for example \"by\": \"91d\")"),
    };
    let now = sim.clock.advance(by);
    Json(json!({"now": now, "offset_seconds": sim.clock.offset().num_seconds()})).into_response()
}

async fn counters(State(sim): State<SharedSim>) -> Response {
    Json(sim.counters.snapshot()).into_response()
}

async fn reset_counters(State(sim): State<SharedSim>) -> Response {
    sim.counters.reset();
    Json(json!({"reset": true})).into_response()
}

async fn get_faults(State(sim): State<SharedSim>) -> Response {
    Json(json!(sim.world().faults)).into_response()
}

async fn put_faults(State(sim): State<SharedSim>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(f) => {
            sim.world_mut().faults = f.clone();
            Json(json!(f)).into_response()
        }
        Err(e) => bad(format!("not a fault configuration: {e}")),
    }
}

async fn get_limits(State(sim): State<SharedSim>) -> Response {
    Json(json!(sim.throttle.limits())).into_response()
}

async fn put_limits(State(sim): State<SharedSim>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Limits>(&body) {
        Ok(l) => {
            sim.throttle.set_limits(l.clone());
            Json(json!(l)).into_response()
        }
        Err(e) => bad(format!("not throttling limits: {e}")),
    }
}

/// What a workload's token is asked for: its subject (a GitHub Actions `repo:org/repo:environment:prod`, a
/// Kubernetes `system:serviceaccount:ns:name`), its audience and its lifetime.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdpTokenRequest {
    subject: String,
    #[serde(default = "default_idp_audience")]
    audience: String,
    #[serde(default = "default_idp_lifetime")]
    lifetime_seconds: i64,
}

fn default_idp_audience() -> String {
    "api://AzureADTokenExchange".into()
}

fn default_idp_lifetime() -> i64 {
    // GitHub Actions' OIDC tokens live five minutes.
    300
}

fn idp_name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A token of the external identity provider `{base}/_idp/{name}` that the simulator plays (the issuer of
/// GitHub Actions, a Kubernetes cluster or another cloud), signed with the simulator's key: what a workload
/// presents as its client assertion under workload identity federation.
async fn idp_token(State(sim): State<SharedSim>, Path(name): Path<String>, body: axum::body::Bytes) -> Response {
    if !idp_name_ok(&name) {
        return bad("an identity provider name is letters, digits and dashes");
    }
    let req = match serde_json::from_slice::<IdpTokenRequest>(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("not a token request: {e}")),
    };
    if !(1..=86_400).contains(&req.lifetime_seconds) {
        return bad("lifetime_seconds is 1 to 86400");
    }
    let now = sim.now();
    let claims = json!({
        "iss": format!("{}/_idp/{name}", sim.base_url),
        "sub": req.subject,
        "aud": req.audience,
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": now.timestamp() + req.lifetime_seconds,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let Some(key) = sim.signing_key() else { return bad("no signing key") };
    match key.sign(&claims, None) {
        Ok(token) => Json(json!({"token": token})).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

/// The discovery document of a simulated external identity provider, as Entra reads an issuer's.
async fn idp_configuration(State(sim): State<SharedSim>, Path(name): Path<String>) -> Response {
    if !idp_name_ok(&name) {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "no such identity provider"}))).into_response();
    }
    let issuer = format!("{}/_idp/{name}", sim.base_url);
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/keys"),
        "subject_types_supported": ["public"],
        "response_types_supported": ["id_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf"],
    }))
    .into_response()
}

async fn idp_keys(State(sim): State<SharedSim>) -> Response {
    Json(sim.keys.jwks()).into_response()
}

async fn rotate(State(sim): State<SharedSim>) -> Response {
    match sim.rotate_keys() {
        Ok(kid) => Json(json!({"active_kid": kid})).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

async fn expire_delta(State(sim): State<SharedSim>) -> Response {
    sim.delta.lock().unwrap_or_else(|e| e.into_inner()).expire_all();
    Json(json!({"expired": true})).into_response()
}

async fn world(State(sim): State<SharedSim>) -> Response {
    let now = sim.now();
    let w = sim.world();
    let tenants: Vec<Value> = w
        .tenants
        .iter()
        .map(|t| {
            json!({
                "id": t.id, "domain": t.domain, "display_name": t.display_name, "role": t.kind,
                "users": t.users.len(), "groups": t.groups.len(), "p1": t.has_p1(), "intune": t.has_intune(),
                "security_defaults": t.security_defaults, "ca_policies": t.ca_policies.len(),
                "consented_apps": t.service_principals.iter().map(|s| s.app_id).collect::<Vec<_>>(),
            })
        })
        .collect();
    let gdap: Vec<Value> = w
        .gdap
        .iter()
        .map(|r| json!({"id": r.id, "display_name": r.display_name, "customer": r.customer, "status": r.status_at(now).as_str(), "end": r.end}))
        .collect();
    Json(json!({"name": w.name, "now": now, "tenants": tenants, "gdap": gdap})).into_response()
}
