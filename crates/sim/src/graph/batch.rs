//! `POST /$batch`: up to 20 requests in one, each answered with its own status, headers and body, each
//! counted and throttled on its own; `dependsOn` makes a request fail with 424 when what it depends on
//! failed.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{GraphBody, GraphOk};
use crate::errors::{GraphCtx, GraphError};
use crate::faults::Outcome;
use crate::state::{AccessClaims, Counters, Sim};

#[derive(Deserialize)]
struct BatchBody {
    requests: Vec<BatchRequest>,
}

#[derive(Deserialize)]
struct BatchRequest {
    id: Value,
    method: String,
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default, rename = "dependsOn")]
    depends_on: Vec<String>,
}

fn id_text(id: &Value) -> Option<String> {
    match id {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) async fn handle_batch_body(bytes: &[u8]) -> Result<Vec<(String, BatchRequestView)>, GraphError> {
    let parsed: BatchBody = serde_json::from_slice(bytes)
        .map_err(|_| GraphError::new(400, "BadRequest", "Invalid batch payload format."))?;
    if parsed.requests.is_empty() {
        return Err(GraphError::new(
            400,
            "BadRequest",
            "Invalid batch payload format: the batch contains no requests.",
        ));
    }
    if parsed.requests.len() > 20 {
        return Err(GraphError::new(
            400,
            "BadRequest",
            "The number of batch requests in the payload exceeds the limit of 20.",
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for r in parsed.requests {
        let id = id_text(&r.id).ok_or_else(|| {
            GraphError::new(400, "BadRequest", "Invalid batch payload format: each request needs an id.")
        })?;
        if seen.iter().any(|s| s.eq_ignore_ascii_case(&id)) {
            return Err(GraphError::new(400, "BadRequest", "Batch request contains duplicate request ids."));
        }
        if r.body.is_some() && !r.headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
            return Err(GraphError::new(
                400,
                "BadRequest",
                format!("Write request id : {id} does not contain Content-Type header or body."),
            ));
        }
        for d in &r.depends_on {
            if !seen.iter().any(|s| s.eq_ignore_ascii_case(d)) {
                return Err(GraphError::new(
                    400,
                    "BadRequest",
                    format!("Request dependency for request id : {id} is missing or invalid."),
                ));
            }
        }
        seen.push(id.clone());
        out.push((id, BatchRequestView { method: r.method, url: r.url, headers: r.headers, depends_on: r.depends_on }));
    }
    Ok(out)
}

pub(crate) struct BatchRequestView {
    method: String,
    url: String,
    headers: HashMap<String, String>,
    depends_on: Vec<String>,
}

pub(crate) async fn handle(
    sim: &Sim,
    claims: &AccessClaims,
    version: &str,
    bytes: &[u8],
    ctx: &GraphCtx,
) -> Result<GraphOk, GraphError> {
    Counters::bump(&sim.counters.batch_requests);
    let requests = handle_batch_body(bytes).await?;
    let faults = sim.world().faults.clone();
    // Items are faulted like separate requests, for the configured tenants only.
    let tid = claims.tid.to_string();
    let item_faults = faults.tenants.is_empty() || faults.tenants.iter().any(|t| t.eq_ignore_ascii_case(&tid));
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses = Vec::new();
    for (id, r) in requests {
        let sub_ctx = GraphCtx {
            request_id: uuid::Uuid::new_v4().to_string(),
            client_request_id: format!("{}/{id}", ctx.client_request_id),
            ..ctx.clone()
        };
        let failed_dep =
            r.depends_on.iter().any(|d| statuses.get(&d.to_ascii_lowercase()).is_none_or(|s| !(200..300).contains(s)));
        let (status, headers, body) = if failed_dep {
            let e = GraphError::new(
                424,
                "FailedDependency",
                "The request was not executed because a request it depends on failed.",
            );
            (424u16, json!({"Content-Type": "application/json"}), e.body(&sub_ctx))
        } else {
            Counters::bump(&sim.counters.graph_requests);
            let injected = if item_faults && faults.is_active() {
                match sim.dice.decide(&faults).outcome {
                    Outcome::Status(code) => Some(code),
                    _ => None,
                }
            } else {
                None
            };
            if let Some(code) = injected {
                Counters::bump(&sim.counters.faults_injected);
                let e = super::injected_graph_error(code, faults.retry_after);
                let mut h = json!({"Content-Type": "application/json"});
                if code == 503
                    && let Some(s) = faults.retry_after
                {
                    h["Retry-After"] = json!(s.to_string());
                }
                (code, h, e.body(&sub_ctx))
            } else {
                run_one(sim, claims, version, &r, &sub_ctx)
            }
        };
        statuses.insert(id.to_ascii_lowercase(), status);
        responses.push(json!({ "id": id, "status": status, "headers": headers, "body": body }));
    }
    Ok(GraphOk::json(json!({ "responses": responses })))
}

fn run_one(
    sim: &Sim,
    claims: &AccessClaims,
    version: &str,
    r: &BatchRequestView,
    ctx: &GraphCtx,
) -> (u16, Value, Value) {
    let method = Method::from_bytes(r.method.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET);
    let url = r.url.trim_start_matches('/');
    let url = url.strip_prefix(&format!("{version}/")).unwrap_or(url);
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut headers = HeaderMap::new();
    for (k, v) in &r.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            headers.insert(name, value);
        }
    }
    let result = super::handle(sim, claims, &method, version, path.trim_end_matches('/'), query, &headers, ctx);
    match result {
        Ok(GraphOk { status, body, headers }) => {
            let mut h = serde_json::Map::new();
            h.insert("Cache-Control".into(), json!("no-cache"));
            for (name, value) in headers {
                h.insert(name.as_str().to_string(), json!(value));
            }
            let body = match body {
                GraphBody::Json(v) => {
                    h.insert("OData-Version".into(), json!("4.0"));
                    h.insert("Content-Type".into(), json!("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"));
                    v
                }
                GraphBody::Text(t) => {
                    h.insert("Content-Type".into(), json!("text/plain"));
                    json!(t)
                }
            };
            (status.as_u16(), Value::Object(h), body)
        }
        Err(e) => {
            let mut h = serde_json::Map::new();
            h.insert("Cache-Control".into(), json!("no-cache"));
            h.insert("Content-Type".into(), json!("application/json"));
            for (name, value) in &e.headers {
                let key = match name.as_str() {
                    "retry-after" => "Retry-After".to_string(),
                    other => other.to_string(),
                };
                h.insert(key, json!(value));
            }
            (e.status.as_u16(), Value::Object(h), e.body(ctx))
        }
    }
}
