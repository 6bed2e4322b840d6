//! Operator sign-in with Microsoft: `GET /auth/login` sends the browser to the MSP's tenant,
//! `GET /auth/callback` brings it back, validates the ID token (through `microsoft::oidc`), maps
//! its app roles and groups to a role, and starts a session.
//!
//! The sign-in in progress (state, nonce, PKCE verifier, where to return) is kept in a short-lived
//! `HttpOnly` cookie rather than in the server, so that the callback may reach any replica. The
//! callback checks the returned `state` against that cookie before it reads anything else: a
//! redirect that is not the answer to this browser's own sign-in is refused without redeeming its
//! code or believing its error.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::Utc;
use microsoft::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::auth::{self, Peer, Principal, Role};
use crate::config::OidcConfig;
use crate::problem::Problem;

/// The cookie of a sign-in in progress.
const PENDING: &str = "tenantscope_signin";
/// How long a person has to complete Microsoft's sign-in.
const PENDING_MINUTES: i64 = 10;

#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    expires: i64,
}

/// The role an identity gets: the highest that any of its app roles or groups maps to.
pub fn role_of(config: &OidcConfig, identity: &microsoft::oidc::Identity) -> Option<Role> {
    let from_roles = identity.roles.iter().filter_map(|r| config.app_roles.get(r).copied());
    let from_groups = identity
        .groups
        .iter()
        .filter_map(|g| config.groups.get(&g.to_ascii_lowercase()).or_else(|| config.groups.get(g)).copied());
    from_roles.chain(from_groups).max()
}

fn cookie_attributes(state: &AppState) -> &'static str {
    if state.https { "; Path=/; HttpOnly; SameSite=Lax; Secure" } else { "; Path=/; HttpOnly; SameSite=Lax" }
}

fn pending_cookie(headers: &HeaderMap) -> Option<Pending> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == PENDING)
        .map(|(_, v)| v.trim().to_string())?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A local path to return to after sign-in; anything else (another host, `//host`) becomes `/`.
fn safe_return(path: Option<&String>) -> String {
    match path {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && p.len() < 512 => p.clone(),
        _ => "/".to_string(),
    }
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}/auth/callback", state.config.public_url.trim_end_matches('/'))
}

/// Starts a sign-in with Microsoft.
pub async fn login(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, crate::ui::Page> {
    let oidc = state
        .oidc
        .as_ref()
        .ok_or_else(|| Problem::not_found("sign-in with Microsoft is not configured ([server.access.oidc])"))?;
    let request = oidc.begin(&redirect_uri(&state));
    let pending = Pending {
        state: request.state.clone(),
        nonce: request.nonce.clone(),
        verifier: request.verifier.expose_secret().to_string(),
        return_to: safe_return(q.get("return_to")),
        expires: (Utc::now() + chrono::Duration::minutes(PENDING_MINUTES)).timestamp(),
    };
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&pending).map_err(|_| Problem::internal())?);
    let cookie = format!("{PENDING}={encoded}; Max-Age={}{}", PENDING_MINUTES * 60, cookie_attributes(&state));
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_str(&request.url).map_err(|_| Problem::internal())?);
    h.insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|_| Problem::internal())?);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Where Microsoft sends the browser back.
pub async fn callback(
    State(state): State<AppState>,
    Peer(ip): Peer,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, crate::ui::Page> {
    let oidc = state.oidc.as_ref().ok_or_else(|| Problem::not_found("sign-in with Microsoft is not configured"))?;
    let config = state
        .config
        .access
        .oidc
        .as_ref()
        .ok_or_else(|| Problem::not_found("sign-in with Microsoft is not configured"))?;
    let pending = pending_cookie(&headers)
        .ok_or_else(|| Problem::bad_request("no sign-in is in progress in this browser (it expired, or cookies are blocked): start again at /auth/login"))?;
    let returned = q.get("state").map(String::as_str).unwrap_or("");
    if !auth::constant_time_eq(returned, &pending.state) {
        tracing::warn!(address = ?ip, "a sign-in callback whose state is not this browser's was ignored");
        return Err(Problem::bad_request(
            "this is not the answer to this browser's sign-in (state mismatch): start again at /auth/login",
        )
        .into());
    }
    if pending.expires < Utc::now().timestamp() {
        return Err(Problem::bad_request("the sign-in took longer than 10 minutes: start again at /auth/login").into());
    }
    let address = ip.map(|i| i.to_string());
    let refuse = |who: String, why: String, detail: serde_json::Value| {
        let store = state.store.clone();
        let address = address.clone();
        async move {
            let _ = store
                .audit_append(&store::AuditEntry {
                    id: 0,
                    at: Utc::now(),
                    actor: who,
                    action: "session.login.refused".into(),
                    target: None,
                    address,
                    detail,
                })
                .await;
            why
        }
    };
    if let Some(error) = q.get("error") {
        let description: String =
            q.get("error_description").map(String::as_str).unwrap_or("").chars().take(500).collect();
        let why = refuse(
            "microsoft".into(),
            format!("Microsoft refused the sign-in: {error}: {description}"),
            json!({"error": error}),
        )
        .await;
        return Err(Problem::unauthorized(why).into());
    }
    let code = q.get("code").ok_or_else(|| Problem::bad_request("the callback carries neither a code nor an error"))?;
    let request = microsoft::oidc::SignInRequest {
        url: String::new(),
        state: pending.state.clone(),
        nonce: pending.nonce.clone(),
        verifier: SecretString::from(pending.verifier.clone()),
        redirect_uri: redirect_uri(&state),
    };
    let identity = match oidc.finish(code, &request).await {
        Ok(identity) => identity,
        Err(e) => {
            let why = refuse("microsoft".into(), format!("the sign-in could not be completed: {e}"), json!({})).await;
            return Err(Problem::unauthorized(why).into());
        }
    };
    let shown = identity.username.clone().unwrap_or_else(|| identity.name.clone());
    let Some(role) = role_of(config, &identity) else {
        let hint = if identity.groups_overage {
            " (the account is in more groups than a token carries: map an app role instead of groups)"
        } else {
            ""
        };
        let why = refuse(
            format!("user:{shown} ({})", identity.oid),
            format!("{shown} signed in, but no tenantscope role is assigned to them: assign one of the app's roles to them or to a mapped group{hint}"),
            json!({"roles": identity.roles, "groups": identity.groups.len()}),
        )
        .await;
        return Err(Problem::forbidden(why).into());
    };
    let (cookie, _csrf) = crate::session::start(&state, &identity.oid, &shown, role, address.clone()).await?;
    let who = Principal {
        actor: format!("user:{shown} ({})", identity.oid),
        role,
        via: auth::Via::Token { id: String::new() },
        address,
    };
    auth::audit(&state.store, &who, "session.login", None, json!({"method": "microsoft", "role": role})).await?;
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_str(&pending.return_to).map_err(|_| Problem::internal())?);
    h.append(header::SET_COOKIE, cookie);
    let clear = format!("{PENDING}=; Max-Age=0{}", cookie_attributes(&state));
    h.append(header::SET_COOKIE, HeaderValue::from_str(&clear).map_err(|_| Problem::internal())?);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(roles: &[&str], groups: &[&str]) -> microsoft::oidc::Identity {
        microsoft::oidc::Identity {
            oid: "o".into(),
            tenant_id: "t".into(),
            name: "n".into(),
            username: None,
            roles: roles.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            groups_overage: false,
        }
    }

    #[test]
    fn the_highest_mapped_role_wins() {
        let config = OidcConfig {
            tenant: "contoso.com".into(),
            client_id: "c".into(),
            client_secret_env: "X".into(),
            app_roles: [("TS.Viewer".to_string(), Role::Viewer), ("TS.Admin".to_string(), Role::Admin)].into(),
            groups: [("g-eng".to_string(), Role::Engineer)].into(),
        };
        assert_eq!(role_of(&config, &identity(&["TS.Viewer"], &["g-eng"])), Some(Role::Engineer));
        assert_eq!(role_of(&config, &identity(&["TS.Admin"], &[])), Some(Role::Admin));
        assert_eq!(role_of(&config, &identity(&["Other"], &["g-other"])), None);
    }

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_return(Some(&"/tenants?x=1".to_string())), "/tenants?x=1");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil.example", "evil"] {
            assert_eq!(safe_return(Some(&bad.to_string())), "/", "{bad}");
        }
        assert_eq!(safe_return(None), "/");
    }
}
