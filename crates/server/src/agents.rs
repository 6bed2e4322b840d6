//! Agents, as operators manage them (`/api/v1/agents`: enrollment tokens, the list with each
//! agent's health, revocation, tenant pools) and as agents call the server (`/api/v1/agent`:
//! enrollment, heartbeats, claims, and the calls of a job's run).
//!
//! An agent authenticates every call with a fresh token signed by its own Ed25519 key; a revoked
//! agent is refused on its next call. Every call about a job carries the fence of the agent's
//! claim and is refused (`409`, code `fenced`) once the agent no longer holds the job's lease, so
//! that an agent presumed dead cannot commit anything after another agent took its job over.

use std::time::Duration;

use agent::protocol::{
    self, ClaimRequest, ClaimedJob, EnrollRequest, EnrollResponse, Finish, FinishRequest, Health, HeartbeatResponse,
    JobHeartbeat, JobHeartbeatResponse, MicrosoftWire, RETURNED_KINDS, SealedCredential, SecretBundle, StoreRequest,
    TokenSave, TokenWire,
};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use inspect::storage::{Call, CredentialWire};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{AgentRecord, ExposeSecret, JobLease, JobOutcome, JobRecord, JobStatus, StoreError};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::{Body, Params, Segment};
use crate::auth::{self, Principal, Role, audit, peer_address};
use crate::jobs;
use crate::problem::{ApiResult, Problem};

/// The prefix of enrollment tokens, so that a leaked one is recognisable.
pub const ENROLLMENT_PREFIX: &str = "tse_";

/// Clock skew past which an agent is degraded (its tokens and Microsoft's are time-bound).
pub const SKEW_LIMIT_SECONDS: i64 = 60;

/// An agent, as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentItem {
    pub id: String,
    pub name: String,
    pub pool: String,
    pub version: String,
    /// `healthy`, `degraded`, `offline` or `revoked`.
    pub state: String,
    /// Why the agent is not healthy.
    pub reason: Option<String>,
    pub enrolled_at: DateTime<Utc>,
    pub enrolled_by: String,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The agent's clock minus the server's at its last heartbeat, in seconds.
    pub clock_skew_seconds: Option<i64>,
    /// The address Microsoft sees the agent's sign-ins from.
    pub egress_address: Option<String>,
    /// The last heartbeat, as the agent reported it.
    #[schema(value_type = Object)]
    pub health: Option<Value>,
}

/// The state of an agent at `now`, and why.
pub fn agent_state(agent: &AgentRecord, now: DateTime<Utc>, offline: Duration) -> (&'static str, Option<String>) {
    if let Some(at) = agent.revoked_at {
        return ("revoked", Some(format!("revoked at {at}")));
    }
    let offline_after = chrono::Duration::from_std(offline).unwrap_or(chrono::Duration::seconds(90));
    match agent.last_seen_at {
        Some(seen) if now - seen <= offline_after => {}
        Some(seen) => {
            return ("offline", Some(format!("no heartbeat for {} s (last at {seen})", (now - seen).num_seconds())));
        }
        None => return ("offline", Some("it has never sent a heartbeat".into())),
    }
    if let Err(why) = protocol::compatible(agent::VERSION, &agent.version) {
        return ("degraded", Some(why));
    }
    let Some(health) = &agent.health else { return ("healthy", None) };
    let mut reasons = Vec::new();
    for (key, host) in [("login", "the identity platform"), ("graph", "Microsoft Graph")] {
        if health[key]["ok"] == false {
            let error = health[key]["error"].as_str().unwrap_or("no answer");
            reasons.push(format!("{host} cannot be reached from the agent: {error}"));
        }
    }
    if let Some(skew) = health["clock_skew_seconds"].as_i64().filter(|s| s.abs() > SKEW_LIMIT_SECONDS) {
        reasons.push(format!("its clock is {skew} s off the server's; tokens may be refused"));
    }
    if reasons.is_empty() { ("healthy", None) } else { ("degraded", Some(reasons.join("; "))) }
}

impl AgentItem {
    pub fn of(agent: AgentRecord, now: DateTime<Utc>, offline: Duration) -> AgentItem {
        let (state, reason) = agent_state(&agent, now, offline);
        let health = agent.health.clone();
        AgentItem {
            id: agent.id,
            name: agent.name,
            pool: agent.pool,
            version: agent.version,
            state: state.to_string(),
            reason,
            enrolled_at: agent.enrolled_at,
            enrolled_by: agent.enrolled_by,
            last_seen_at: agent.last_seen_at,
            revoked_at: agent.revoked_at,
            clock_skew_seconds: health.as_ref().and_then(|h| h["clock_skew_seconds"].as_i64()),
            egress_address: health.as_ref().and_then(|h| h["egress_address"].as_str().map(str::to_string)),
            health,
        }
    }
}

fn valid_label(text: &str, what: &str) -> Result<String, Problem> {
    let t = text.trim();
    if t.is_empty() || t.len() > 100 || t.chars().any(char::is_control) {
        return Err(Problem::bad_request(format!("{what}: 1 to 100 printable characters")));
    }
    Ok(t.to_string())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollment {
    /// The name the agent gets (it may ask for another when it enrolls).
    pub name: String,
    /// The pool of agents it joins.
    pub pool: String,
    /// How long the token may be used (default 60 minutes, at most a week).
    #[serde(default)]
    pub expires_minutes: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEnrollment {
    pub id: String,
    pub name: String,
    pub pool: String,
    pub expires_at: DateTime<Utc>,
    /// The one-time token, shown once: `tenantscope agent enroll --token ...`.
    pub token: String,
}

/// Creates a one-time enrollment token for an agent of a pool.
#[utoipa::path(post, path = "/api/v1/agents/enrollments", request_body = CreateEnrollment,
    responses((status = 201, body = CreatedEnrollment), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_enrollment(
    State(state): State<AppState>,
    who: Principal,
    Body(body): Body<CreateEnrollment>,
) -> ApiResult<Response> {
    who.require(Role::Admin)?;
    let name = valid_label(&body.name, "name")?;
    let pool = valid_label(&body.pool, "pool")?;
    let minutes = body.expires_minutes.unwrap_or(60);
    if !(1..=7 * 24 * 60).contains(&minutes) {
        return Err(Problem::bad_request("expires_minutes must be between 1 and 10080 (a week)"));
    }
    let now = Utc::now();
    let token = format!("{ENROLLMENT_PREFIX}{}", auth::random_secret()?);
    let record = store::EnrollmentRecord {
        id: uuid::Uuid::now_v7().to_string(),
        hash: auth::hash_secret(&token),
        name: name.clone(),
        pool: pool.clone(),
        created_at: now,
        created_by: who.actor.clone(),
        expires_at: now + chrono::Duration::minutes(minutes),
        used_at: None,
        agent_id: None,
    };
    state.store.enrollment_put(&record).await?;
    audit(
        &state.store,
        &who,
        "agent.enrollment.create",
        Some(&record.id),
        json!({"name": name, "pool": pool, "minutes": minutes}),
    )
    .await?;
    let created = CreatedEnrollment { id: record.id, name, pool, expires_at: record.expires_at, token };
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Every agent with its state as of now (the API's list, the dashboard's page, the pools' health).
pub async fn agent_items(state: &AppState) -> Result<Vec<AgentItem>, StoreError> {
    let now = Utc::now();
    let offline = state.config.agent_offline;
    Ok(state.store.agent_list().await?.into_iter().map(|a| AgentItem::of(a, now, offline)).collect())
}

/// Every agent with its health.
#[utoipa::path(get, path = "/api/v1/agents", responses((status = 200, body = Vec<AgentItem>)))]
pub async fn list_agents(State(state): State<AppState>, who: Principal) -> ApiResult<Json<Vec<AgentItem>>> {
    who.require(Role::Viewer)?;
    Ok(Json(agent_items(&state).await?))
}

/// Revokes an agent: its next call is refused, and the job it holds goes to another agent of the
/// pool once the lease expires.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_agent(
    State(state): State<AppState>,
    who: Principal,
    Segment(id): Segment<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    if !state.store.agent_revoke(&id, Utc::now()).await? {
        return Err(Problem::not_found(format!("no live agent {id}")));
    }
    audit(&state.store, &who, "agent.revoke", Some(&id), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPool {
    /// The pool whose agents inspect the tenant; `null` for the default pool (the server's own
    /// worker).
    pub pool: Option<String>,
}

/// Assigns a tenant to a pool of agents.
#[utoipa::path(put, path = "/api/v1/tenants/{id}/pool", request_body = SetPool,
    responses((status = 204), (status = 404, body = Problem), (status = 403, body = Problem)))]
pub async fn set_pool(
    State(state): State<AppState>,
    who: Principal,
    Segment(id): Segment<String>,
    Body(body): Body<SetPool>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    let record = inspect::access::find_record(state.store.as_ref(), &id)
        .await
        .map_err(|e| Problem::bad_request(e.to_string()))?
        .ok_or_else(|| Problem::not_found(format!("no tenant {id}")))?;
    let pool = body.pool.as_deref().map(|p| valid_label(p, "pool")).transpose()?;
    let pool = pool.filter(|p| *p != state.config.worker.pool);
    state.store.set_tenant_pool(&record.id, pool.as_deref()).await?;
    audit(&state.store, &who, "tenant.pool", Some(record.id.as_str()), json!({"pool": pool})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which pool inspects each tenant, and the pools that cannot: a pool of agents none of which is
/// healthy fails every tenant it serves with `agent_unhealthy`, whatever their last result was.
pub struct Pools {
    pub default: String,
    of_tenant: std::collections::HashMap<store::TenantId, String>,
    unhealthy: std::collections::HashMap<String, diagnose::Diagnosis>,
    agents: Vec<AgentItem>,
}

impl Pools {
    pub async fn load(state: &AppState) -> Result<Pools, StoreError> {
        let now = Utc::now();
        let of_tenant: std::collections::HashMap<store::TenantId, String> =
            state.store.tenant_pools().await?.into_iter().collect();
        let agents = agent_items(state).await?;
        let mut members: std::collections::HashMap<&str, Vec<AgentItem>> = std::collections::HashMap::new();
        for agent in &agents {
            members.entry(agent.pool.as_str()).or_default().push(agent.clone());
        }
        let mut unhealthy = std::collections::HashMap::new();
        let used: std::collections::HashSet<&String> = of_tenant.values().collect();
        for pool in used {
            let of_pool = members.get(pool.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            if of_pool.iter().any(|a| a.state == "healthy") {
                continue;
            }
            unhealthy.insert(pool.clone(), pool_diagnosis(pool, of_pool, now));
        }
        Ok(Pools { default: state.config.worker.pool.clone(), of_tenant, unhealthy, agents })
    }

    /// Every agent with its state, as read for these pools.
    pub fn agents(&self) -> &[AgentItem] {
        &self.agents
    }

    /// The pool whose agents inspect `tenant`.
    pub fn of(&self, tenant: &store::TenantId) -> &str {
        self.of_tenant.get(tenant).map_or(self.default.as_str(), String::as_str)
    }

    /// Why `tenant` cannot be inspected now, when its pool has no healthy agent.
    pub fn blocked(&self, tenant: &store::TenantId) -> Option<&diagnose::Diagnosis> {
        self.unhealthy.get(self.of(tenant))
    }
}

/// The named locations of a tenant's dataprint: each name with its address ranges.
fn named_locations(dataprint: &Value) -> Vec<(String, Vec<ipnet::IpNet>)> {
    let collection = &dataprint["collections"]["namedLocations"];
    let items: Vec<&Value> = match collection {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|l| {
            let ranges: Vec<ipnet::IpNet> =
                l["ipRanges"].as_array()?.iter().filter_map(|r| r["cidrAddress"].as_str()?.parse().ok()).collect();
            (!ranges.is_empty()).then(|| (l["displayName"].as_str().unwrap_or("(unnamed)").to_string(), ranges))
        })
        .collect()
}

/// Where a tenant that Conditional Access blocks could be inspected from: for each agent whose
/// egress address Microsoft has seen, the customer's named location that holds it (from the
/// tenant's last dataprint). Adds the evidence to `diagnosis`, and the fix of moving the tenant to
/// a pool whose agents are all allowed, when the tenant's own pool has none.
pub fn place_blocked_tenant(diagnosis: &mut Value, dataprint: &Value, agents: &[AgentItem], pool: &str) {
    let locations = named_locations(dataprint);
    if locations.is_empty() {
        return;
    }
    let mut allowed_pools: std::collections::BTreeMap<&str, (usize, usize)> = std::collections::BTreeMap::new();
    let mut evidence = Vec::new();
    for a in agents.iter().filter(|a| a.state != "revoked") {
        let Some(ip) = a.egress_address.as_deref().and_then(|e| e.parse::<std::net::IpAddr>().ok()) else {
            continue;
        };
        let inside = locations.iter().find(|(_, ranges)| ranges.iter().any(|r| r.contains(&ip)));
        let entry = allowed_pools.entry(a.pool.as_str()).or_default();
        entry.1 += 1;
        let text = match inside {
            Some((name, _)) => {
                entry.0 += 1;
                format!("egress {ip} is inside the customer's named location {name:?}")
            }
            None => format!("egress {ip} is outside every named location of the customer"),
        };
        evidence.push(json!({"name": format!("agent {} (pool {})", a.name, a.pool), "value": text}));
    }
    let Some(list) = diagnosis["evidence"].as_array_mut() else { return };
    list.extend(evidence);
    let mine = allowed_pools.get(pool).copied().unwrap_or_default();
    let fully_allowed: Vec<&str> =
        allowed_pools.iter().filter(|(p, (ok, all))| **p != pool && *ok == *all && *all > 0).map(|(p, _)| *p).collect();
    if mine.1 > 0 && mine.0 == 0 {
        list.push(json!({"name": "pool", "value": format!("every agent of pool {pool}, which inspects this tenant, is outside the customer's named locations")}));
    }
    if let (Some(target), Some(fix)) = (fully_allowed.first(), diagnosis["fix"].as_array_mut()) {
        fix.insert(
            0,
            json!(format!(
                "Move the tenant to pool {target}, whose agents' egress addresses the customer's named locations allow (`PUT /api/v1/tenants/{{id}}/pool` with {{\"pool\": \"{target}\"}})."
            )),
        );
    }
}

/// `agent_unhealthy` for a pool, with each of its agents, their last heartbeat and why they are
/// not healthy as the evidence.
fn pool_diagnosis(pool: &str, agents: &[AgentItem], now: DateTime<Utc>) -> diagnose::Diagnosis {
    let mut d = diagnose::diagnose(&diagnose::Facts {
        network: Some(diagnose::NetworkFacts {
            agent: Some(format!("Pool {pool}")),
            agent_alive: Some(false),
            ..diagnose::NetworkFacts::default()
        }),
        now: Some(now),
        ..diagnose::Facts::default()
    });
    d.summary = if agents.is_empty() {
        format!("No agent is enrolled in pool {pool}, which inspects this tenant: nothing can reach it.")
    } else {
        format!("No agent of pool {pool}, which inspects this tenant, is healthy: its inspections cannot run.")
    };
    d.evidence.push(diagnose::Evidence::new("pool", pool));
    for a in agents {
        let seen = a.last_seen_at.map_or_else(|| "never".to_string(), |t| t.to_rfc3339());
        let reason = a.reason.clone().unwrap_or_default();
        d.evidence.push(diagnose::Evidence::new(
            format!("agent {}", a.name),
            format!(
                "{} (last heartbeat {seen}){}",
                a.state,
                if reason.is_empty() { String::new() } else { format!(": {reason}") }
            ),
        ));
    }
    if agents.is_empty() {
        d.fix.insert(0, format!("Enroll an agent in pool {pool} (`POST /api/v1/agents/enrollments`, then `tenantscope agent enroll` on the machine), or move the tenant back to the default pool (`PUT /api/v1/tenants/{{id}}/pool`)."));
    }
    d
}

// ------------------------------------------------------------------------------------------------
// The agent's side.

/// An agent, authenticated by a token signed with its key.
pub struct AgentCaller {
    pub agent: AgentRecord,
    pub address: Option<String>,
}

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<AgentCaller, Problem> {
        let text = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Problem::unauthorized("expected `Authorization: Bearer <agent token>`"))?;
        let token = text
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| Problem::unauthorized("expected `Authorization: Bearer <agent token>`"))?;
        let id = agent::keys::token_agent(token).ok_or_else(|| Problem::unauthorized("not an agent token"))?;
        // The codes tell an agent whether to stop (it is revoked or unknown) or to correct its
        // clock and try again (its token is not valid now).
        let agent = state
            .store
            .agent_get(&id)
            .await?
            .ok_or_else(|| Problem::unauthorized("unknown agent").with_code(protocol::CODE_UNKNOWN_AGENT))?;
        if agent.revoked_at.is_some() {
            return Err(Problem::unauthorized(format!("agent {} was revoked; enroll it again", agent.name))
                .with_code(protocol::CODE_REVOKED));
        }
        agent::keys::verify(token, &agent.id, &agent.signing_key)
            .map_err(|e| Problem::unauthorized(e.to_string()).with_code(protocol::CODE_TOKEN))?;
        Ok(AgentCaller { agent, address: peer_address(parts) })
    }
}

async fn agent_audit(
    state: &AppState,
    actor: &str,
    action: &str,
    target: &str,
    address: Option<String>,
    detail: Value,
) {
    let entry = store::AuditEntry {
        id: 0,
        at: Utc::now(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: Some(target.to_string()),
        address,
        detail,
    };
    if let Err(e) = state.store.audit_append(&entry).await {
        tracing::error!(error = %e, action, "an agent's action could not be audited");
    }
}

/// An agent enrolls with a one-time token and its public keys.
#[utoipa::path(post, path = "/api/v1/agent/enroll", request_body = EnrollRequest,
    responses((status = 201, body = EnrollResponse), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn enroll(
    State(state): State<AppState>,
    peer: auth::Peer,
    Body(body): Body<EnrollRequest>,
) -> ApiResult<Response> {
    // Tokens are guessed from somewhere: the login limiter slows that down per address.
    let key = peer.0.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if state.login_limiter.check_key(&key).is_err() {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "too many enrollments from this address; wait a minute",
        ));
    }
    protocol::compatible(agent::VERSION, &body.version).map_err(Problem::bad_request)?;
    for (key, what) in [(&body.signing_key, "signing_key"), (&body.sealing_key, "sealing_key")] {
        let ok =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key.trim()).is_ok_and(|b| b.len() == 32);
        if !ok {
            return Err(Problem::bad_request(format!("{what}: 32 bytes of base64")));
        }
    }
    let name = body.name.as_deref().map(|n| valid_label(n, "name")).transpose()?;
    let new = store::NewAgent {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        signing_key: body.signing_key.trim().to_string(),
        sealing_key: body.sealing_key.trim().to_string(),
        version: body.version.clone(),
    };
    let Some(agent) = state.store.enroll_agent(&auth::hash_secret(body.token.trim()), &new, Utc::now()).await? else {
        return Err(Problem::unauthorized(
            "the enrollment token is unknown, expired or already used; ask an admin for a new one",
        ));
    };
    let address = peer.0.map(|a| a.to_string());
    agent_audit(
        &state,
        &format!("agent:{} ({})", agent.name, agent.id),
        "agent.enroll",
        &agent.id,
        address,
        json!({"pool": agent.pool, "version": agent.version}),
    )
    .await;
    let answer = EnrollResponse { agent_id: agent.id, name: agent.name, pool: agent.pool };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// An agent's heartbeat: its health, recorded with the skew between its clock and the server's.
#[utoipa::path(post, path = "/api/v1/agent/heartbeat", request_body = Health,
    responses((status = 200, body = HeartbeatResponse), (status = 401, body = Problem)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: AgentCaller,
    Body(health): Body<Health>,
) -> ApiResult<Json<HeartbeatResponse>> {
    let now = Utc::now();
    let mut recorded = serde_json::to_value(&health).map_err(|_| Problem::internal())?;
    recorded["clock_skew_seconds"] = json!((health.now - now).num_seconds());
    recorded["address"] = json!(caller.address);
    state.store.agent_seen(&caller.agent.id, now, &health.version, &recorded).await?;
    let agent = state.store.agent_get(&caller.agent.id).await?.ok_or_else(Problem::internal)?;
    let (agent_state, reason) = agent_state(&agent, now, state.config.agent_offline);
    Ok(Json(HeartbeatResponse {
        server_time: now,
        state: agent_state.to_string(),
        reason,
        upgrade: protocol::compatible(agent::VERSION, &health.version).err(),
    }))
}

/// The secrets a job needs: the partner connection's refresh token, account and ID token.
async fn partner_tokens(state: &AppState, client_id: &str) -> Result<Vec<TokenWire>, StoreError> {
    let mut out = Vec::new();
    for meta in state.store.cache_list().await? {
        if meta.client_id != client_id || !RETURNED_KINDS.contains(&meta.kind.as_str()) {
            continue;
        }
        if let Some(r) = state.store.cache_get(&meta.key).await? {
            out.push(TokenWire {
                key: r.key,
                tenant_id: r.tenant_id,
                kind: r.kind,
                client_id: r.client_id,
                home_account: r.home_account,
                scopes: r.scopes,
                secret: r.secret.expose_secret().to_string(),
                issued_at: r.issued_at,
                expires_at: r.expires_at,
                claims: r.claims,
            });
        }
    }
    Ok(out)
}

/// An agent waits up to `wait_seconds` for a job of its pool; `204` when none came.
#[utoipa::path(post, path = "/api/v1/agent/claim", request_body = ClaimRequest,
    responses((status = 200, body = ClaimedJob), (status = 204), (status = 401, body = Problem)))]
pub async fn claim(
    State(state): State<AppState>,
    caller: AgentCaller,
    Body(body): Body<ClaimRequest>,
) -> ApiResult<Response> {
    let Some(microsoft) = state.microsoft.clone() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-cloud",
            "this server has no partner connection to hand out",
        ));
    };
    // An agent too far from the server's version gets no work until it is upgraded.
    protocol::compatible(agent::VERSION, &caller.agent.version)
        .map_err(|why| Problem::conflict(why).with_code("upgrade"))?;
    let lease_for = chrono::Duration::seconds(state.config.worker.lease_seconds.max(1) as i64);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(body.wait_seconds.min(protocol::MAX_WAIT_SECONDS));
    let job = loop {
        if let Some(job) = state.store.claim_job(&caller.agent.id, &caller.agent.pool, Utc::now(), lease_for).await? {
            break job;
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        tokio::time::sleep(Duration::from_millis(500).min(deadline - tokio::time::Instant::now())).await;
    };
    let bundle = SecretBundle { tokens: partner_tokens(&state, &microsoft.client_id).await? };
    let plain = serde_json::to_vec(&bundle).map_err(|_| Problem::internal())?;
    let sealed = agent::keys::seal(&caller.agent.sealing_key, &plain).map_err(|e| {
        tracing::error!(agent = %caller.agent.id, error = %e, "a job's secrets could not be sealed");
        Problem::internal()
    })?;
    let cloud = &microsoft.cloud;
    tracing::info!(job = %job.id, agent = %caller.agent.name, pool = %caller.agent.pool, "an agent claimed a job");
    let claimed = ClaimedJob {
        id: job.id.clone(),
        kind: job.kind.clone(),
        params: job.params.clone(),
        attempts: job.attempts,
        fence: job.fence,
        lease_seconds: state.config.worker.lease_seconds.max(1),
        heartbeat_seconds: state.config.worker.heartbeat_seconds.max(1),
        microsoft: MicrosoftWire {
            cloud: cloud.name.clone(),
            login_url: cloud.login_url.to_string(),
            graph_url: cloud.graph_url.to_string(),
            graph_resource: cloud.graph_resource.clone(),
            ca_pem: cloud.ca_pem.as_ref().map(|p| String::from_utf8_lossy(p).into_owned()),
            client_id: microsoft.client_id.clone(),
        },
        history: state.history.as_ref().and_then(|h| serde_json::to_value(h).ok()),
        sealed,
    };
    Ok(Json(claimed).into_response())
}

/// The tenants a job names, by id; `None` when it reads every tenant.
async fn job_tenants(
    state: &AppState,
    params: &Value,
) -> Result<Option<std::collections::HashSet<store::TenantId>>, Problem> {
    let Some(names) = params["tenants"].as_array().filter(|a| !a.is_empty()) else { return Ok(None) };
    let mut ids = std::collections::HashSet::new();
    for name in names.iter().filter_map(Value::as_str) {
        if let Some(record) = inspect::access::find_record(state.store.as_ref(), name)
            .await
            .map_err(|e| Problem::bad_request(e.to_string()))?
        {
            ids.insert(record.id);
        }
    }
    Ok(Some(ids))
}

fn fenced(job_id: &str) -> Problem {
    Problem::conflict(format!("this agent no longer holds job {job_id}: another worker took it over, or it ended"))
        .with_code("fenced")
}

/// The job, when `caller` holds its lease with `fence`.
async fn held(
    state: &AppState,
    caller: &AgentCaller,
    job_id: &str,
    fence: i64,
) -> Result<(JobRecord, JobLease), Problem> {
    let job = state.store.get_job(job_id).await?.ok_or_else(|| Problem::not_found(format!("no job {job_id}")))?;
    let holds = job.status == JobStatus::Running
        && job.fence == fence
        && job.lease_owner.as_deref() == Some(caller.agent.id.as_str());
    if !holds {
        return Err(fenced(job_id));
    }
    let lease = JobLease { job_id: job.id.clone(), fence, owner: caller.agent.id.clone() };
    Ok((job, lease))
}

fn store_problem(job_id: &str, e: StoreError) -> Problem {
    match e {
        StoreError::Fenced { .. } => fenced(job_id),
        StoreError::AlreadyCommitted { job_id, tenant_id } => {
            Problem::conflict(format!("job {job_id} has already committed tenant {tenant_id}"))
                .with_code("already_committed")
        }
        StoreError::NotFound(what) => Problem::not_found(what).with_code("not_found"),
        StoreError::InvalidInput(why) => Problem::bad_request(why).with_code("invalid"),
        // The agent fails that tenant alone, with its cause, as a run on the server would.
        e @ StoreError::Crypto { .. } => Problem::conflict(e.to_string()).with_code("undecryptable"),
        other => Problem::from(other),
    }
}

/// Renews the lease of the agent's job and records its progress; says whether to stop.
#[utoipa::path(post, path = "/api/v1/agent/jobs/{id}/heartbeat", request_body = JobHeartbeat,
    responses((status = 200, body = JobHeartbeatResponse), (status = 409, body = Problem)))]
pub async fn job_heartbeat(
    State(state): State<AppState>,
    caller: AgentCaller,
    Segment(id): Segment<String>,
    Body(body): Body<JobHeartbeat>,
) -> ApiResult<Json<JobHeartbeatResponse>> {
    let (_, lease) = held(&state, &caller, &id, body.fence).await?;
    let lease_for = chrono::Duration::seconds(state.config.worker.lease_seconds.max(1) as i64);
    let job = state
        .store
        .heartbeat_job(&lease, Utc::now(), lease_for, Some(&body.progress))
        .await
        .map_err(|e| store_problem(&id, e))?;
    Ok(Json(JobHeartbeatResponse { cancel: job.cancel_requested_at.is_some() }))
}

/// One store call of the agent's run, under the job's fence.
#[utoipa::path(post, path = "/api/v1/agent/jobs/{id}/store", request_body = StoreRequest,
    responses((status = 200), (status = 409, body = Problem)))]
pub async fn job_store(
    State(state): State<AppState>,
    caller: AgentCaller,
    Segment(id): Segment<String>,
    Body(body): Body<StoreRequest>,
) -> ApiResult<Json<Value>> {
    let (job, lease) = held(&state, &caller, &id, body.fence).await?;
    // A run may only work for the job it holds.
    match &body.call {
        Call::StartJobRun { lease: asked, .. } if *asked != lease => return Err(fenced(&id)),
        Call::JobTenants { job_id } if *job_id != id => {
            return Err(Problem::forbidden("an agent may only ask about its own job"));
        }
        // Runs of an agent are the job's runs, fenced by the store; a free-standing run is not.
        Call::StartRun { .. } => return Err(Problem::forbidden("an agent's runs are started for its job")),
        _ => {}
    }
    if let Call::CredentialGet { tenant_id } = &body.call {
        // A secret goes only to the agent whose job needs it: a job that names its tenants gets
        // the credentials of those tenants, and none of a tenant another pool inspects.
        let pools: std::collections::HashMap<store::TenantId, String> =
            state.store.tenant_pools().await?.into_iter().collect();
        let pool_of = pools.get(tenant_id).map_or(state.config.worker.pool.as_str(), String::as_str);
        let named = job_tenants(&state, &job.params).await?;
        if pool_of != caller.agent.pool || named.is_some_and(|n| !n.contains(tenant_id)) {
            return Ok(Json(serde_json::to_value(SealedCredential { sealed: None }).map_err(|_| Problem::internal())?));
        }
        let credential = state.store.credential_get(tenant_id).await.map_err(|e| store_problem(&id, e))?;
        let sealed = match credential {
            Some(c) => {
                let plain =
                    serde_json::to_vec(&CredentialWire::from_credential(&c)).map_err(|_| Problem::internal())?;
                Some(agent::keys::seal(&caller.agent.sealing_key, &plain).map_err(|_| Problem::internal())?)
            }
            None => None,
        };
        return Ok(Json(serde_json::to_value(SealedCredential { sealed }).map_err(|_| Problem::internal())?));
    }
    let value = inspect::storage::dispatch(state.store.as_ref(), body.call).await.map_err(|e| store_problem(&id, e))?;
    Ok(Json(value))
}

/// A refresh token the agent's run rotated (or an account it refreshed): the server keeps it for
/// the next job, on any agent.
#[utoipa::path(post, path = "/api/v1/agent/jobs/{id}/tokens", request_body = TokenSave,
    responses((status = 200), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn job_token(
    State(state): State<AppState>,
    caller: AgentCaller,
    Segment(id): Segment<String>,
    Body(body): Body<TokenSave>,
) -> ApiResult<Json<Value>> {
    held(&state, &caller, &id, body.fence).await?;
    let t = body.token;
    if !RETURNED_KINDS.contains(&t.kind.as_str()) {
        return Err(Problem::bad_request(format!("an agent keeps tokens of kind {:?} itself", t.kind)));
    }
    let client_id = state.microsoft.as_ref().map(|m| m.client_id.clone()).unwrap_or_default();
    if t.client_id != client_id {
        return Err(Problem::bad_request("the token belongs to another app than the server's partner connection"));
    }
    let record = store::CacheRecord {
        key: t.key,
        tenant_id: t.tenant_id,
        kind: t.kind,
        client_id: t.client_id,
        home_account: t.home_account,
        scopes: t.scopes,
        secret: store::SecretString::from(t.secret),
        issued_at: t.issued_at,
        expires_at: t.expires_at,
        claims: t.claims,
        updated_at: Utc::now(),
    };
    state.store.cache_put(&record).await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FenceParam {
    pub fence: i64,
}

/// The debug trace of the agent's run (HAR, redacted on the agent), kept where the API serves it.
#[utoipa::path(put, path = "/api/v1/agent/jobs/{id}/trace", params(FenceParam),
    responses((status = 204), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn job_trace_upload(
    State(state): State<AppState>,
    caller: AgentCaller,
    Segment(id): Segment<String>,
    Params(fence): Params<FenceParam>,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    held(&state, &caller, &id, fence.fence).await?;
    // Only a HAR document is kept: the file is served to operators later.
    let har: Value =
        serde_json::from_slice(&bytes).map_err(|e| Problem::bad_request(format!("not a HAR document: {e}")))?;
    if !har["log"]["entries"].is_array() {
        return Err(Problem::bad_request("not a HAR document: no log.entries"));
    }
    let path = jobs::trace_path(&state.config.data_dir, &id).ok_or_else(|| Problem::bad_request("not a job id"))?;
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| agent::keys::write_private(&path, &bytes).map_err(|e| std::io::Error::other(e.to_string())));
    written.map_err(|e| {
        tracing::error!(job = %id, error = %e, "an agent's debug trace could not be kept");
        Problem::internal()
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// The end of the agent's attempt.
#[utoipa::path(post, path = "/api/v1/agent/jobs/{id}/finish", request_body = FinishRequest,
    responses((status = 200), (status = 409, body = Problem)))]
pub async fn job_finish(
    State(state): State<AppState>,
    caller: AgentCaller,
    Segment(id): Segment<String>,
    Body(body): Body<FinishRequest>,
) -> ApiResult<Json<Value>> {
    let (job, lease) = held(&state, &caller, &id, body.fence).await?;
    let now = Utc::now();
    let outcome = match body.outcome {
        Finish::Succeeded { result } => JobOutcome::Succeeded(result),
        Finish::Failed { error } => JobOutcome::Failed { error, retry_at: now + jobs::backoff(job.attempts) },
        Finish::Cancelled => JobOutcome::Cancelled,
    };
    let done = state.store.finish_job(&lease, &outcome, now).await.map_err(|e| store_problem(&id, e))?;
    Ok(Json(json!({"status": done.status})))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version-skew rule lets an agent be one minor version ahead of its server; such an agent
    /// may send a store call this server does not know, and must be able to tell that refusal from
    /// any other to fall back on the older calls (`agent::remote::unknown_call`).
    #[tokio::test]
    async fn a_store_call_this_server_does_not_know_is_refused_as_agents_recognise() {
        async fn refusal(body: &'static str) -> agent::client::AgentError {
            let request = axum::http::Request::builder()
                .method("POST")
                .uri("/api/v1/agent/jobs/j/store")
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(body))
                .expect("request");
            let problem = match <Body<StoreRequest> as axum::extract::FromRequest<()>>::from_request(request, &()).await
            {
                Ok(_) => panic!("{body} was accepted"),
                Err(problem) => problem,
            };
            agent::client::AgentError::Refused {
                what: "store".into(),
                status: problem.status,
                detail: problem.detail.unwrap_or_default(),
                code: problem.code,
            }
        }
        let unknown = refusal(r#"{"fence": 1, "call": {"op": "a_call_from_a_newer_agent", "tenant_id": "t"}}"#).await;
        assert!(agent::remote::unknown_call(&unknown, "a_call_from_a_newer_agent"), "{unknown}");
        // A known call with bad arguments is an error of the agent's, not a version's.
        let malformed = refusal(r#"{"fence": 1, "call": {"op": "get_tenant"}}"#).await;
        assert!(!agent::remote::unknown_call(&malformed, "get_tenant"), "{malformed}");
    }

    fn agent(seen_ago: i64, health: Option<Value>) -> AgentRecord {
        let now = Utc::now();
        AgentRecord {
            id: "a".into(),
            name: "dc1-a".into(),
            pool: "dc1".into(),
            signing_key: String::new(),
            sealing_key: String::new(),
            version: agent::VERSION.into(),
            enrolled_at: now,
            enrolled_by: "admin".into(),
            revoked_at: None,
            last_seen_at: Some(now - chrono::Duration::seconds(seen_ago)),
            health,
        }
    }

    #[test]
    fn an_agents_state_says_why_it_is_not_healthy() {
        let now = Utc::now();
        let offline = Duration::from_secs(90);
        assert_eq!(agent_state(&agent(5, None), now, offline).0, "healthy");
        let (state, why) = agent_state(&agent(300, None), now, offline);
        assert_eq!(state, "offline");
        assert!(why.is_some_and(|w| w.contains("no heartbeat")));
        let revoked = AgentRecord { revoked_at: Some(now), ..agent(5, None) };
        assert_eq!(agent_state(&revoked, now, offline).0, "revoked");
        let skewed_version = AgentRecord { version: "99.0.0".into(), ..agent(5, None) };
        let (state, why) = agent_state(&skewed_version, now, offline);
        assert_eq!(state, "degraded");
        assert!(why.is_some_and(|w| w.contains("within one minor version")));
        let cut_off =
            agent(5, Some(json!({"login": {"ok": false, "error": "connection refused"}, "graph": {"ok": true}})));
        let (state, why) = agent_state(&cut_off, now, offline);
        assert_eq!(state, "degraded");
        assert!(why.is_some_and(|w| w.contains("identity platform") && w.contains("connection refused")));
        let skewed = agent(5, Some(json!({"clock_skew_seconds": -400})));
        assert!(agent_state(&skewed, now, offline).1.is_some_and(|w| w.contains("-400 s")));
    }

    #[test]
    fn a_blocked_tenant_is_placed_where_its_named_locations_allow() {
        let now = Utc::now();
        let item = |name: &str, pool: &str, ip: &str| {
            let mut a = AgentItem::of(agent(1, Some(json!({"egress_address": ip}))), now, Duration::from_secs(90));
            a.name = name.into();
            a.pool = pool.into();
            a
        };
        let agents = vec![item("office", "office", "127.0.0.2"), item("cloud", "cloud", "127.0.0.3")];
        let dataprint = json!({"collections": {"namedLocations": {"l1": {"displayName": "Proseware office",
            "ipRanges": [{"cidrAddress": "127.0.0.2/32"}, {"cidrAddress": "not a range"}]}}}});
        let mut d = json!({"cause": "conditional_access_blocked", "evidence": [], "fix": ["Ask the customer."]});
        place_blocked_tenant(&mut d, &dataprint, &agents, "cloud");
        let evidence = d["evidence"].to_string();
        assert!(
            evidence.contains("agent office (pool office)")
                && evidence.contains("inside the customer's named location")
        );
        assert!(evidence.contains("every agent of pool cloud"), "{evidence}");
        assert!(d["fix"][0].as_str().is_some_and(|f| f.starts_with("Move the tenant to pool office")), "{d}");
        // Without named locations in the dataprint, nothing is claimed.
        let mut bare = json!({"evidence": [], "fix": []});
        place_blocked_tenant(&mut bare, &json!({}), &agents, "cloud");
        assert_eq!(bare["evidence"], json!([]));
    }

    #[test]
    fn a_pool_without_agents_says_so_and_how_to_fix_it() {
        let d = pool_diagnosis("dc2", &[], Utc::now());
        assert_eq!(d.cause, diagnose::Cause::AgentUnhealthy);
        assert!(d.summary.contains("No agent is enrolled in pool dc2"));
        assert!(d.fix[0].contains("agent enroll"));
    }
}
