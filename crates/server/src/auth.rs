//! Who is calling: an operator's session (a cookie) or an API token (a bearer header), and what
//! their role lets them do.
//!
//! Secrets handed out (session ids, API tokens) are 256 random bits; the store keeps only their
//! SHA-256, so a copy of the database lets nobody in. A session's state-changing requests must
//! carry its CSRF token in `X-CSRF-Token` (a cookie alone proves nothing about who sent the
//! request); API tokens are not ambient credentials and need none.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::AppState;
use crate::problem::Problem;

/// The session cookie. `__Host-` binds it to this host and path `/` and requires `Secure`.
pub const SESSION_COOKIE: &str = "__Host-tenantscope";
/// The same cookie without the prefix, for plain-HTTP servers on loopback (browsers refuse
/// `Secure` cookies there).
pub const SESSION_COOKIE_PLAIN: &str = "tenantscope_session";
/// The header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The prefix of API tokens, so that a leaked one is recognisable (and secret scanners can find it).
pub const TOKEN_PREFIX: &str = "tsk_";

/// What a caller may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also starts and cancels inspections, acknowledges and mutes alerts.
    Engineer,
    /// Also manages the partner connection, settings, API tokens, and reads the audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Engineer => "engineer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "engineer" => Some(Role::Engineer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// How a caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Session { id_hash: String },
    Token { id: String },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who, as the audit log names them: `user:NAME (SUBJECT)` or `token:NAME (ID)`.
    pub actor: String,
    pub role: Role,
    pub via: Via,
    /// The client's address, as the connection (or a trusted proxy) reports it.
    pub address: Option<String>,
}

impl Principal {
    /// Refuses a caller whose role is below `needed`.
    pub fn require(&self, needed: Role) -> Result<(), Problem> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this needs the {} role; {} has {}",
                needed.as_str(),
                self.actor,
                self.role.as_str()
            )))
        }
    }
}

/// 256 random bits, base64url.
pub fn random_secret() -> Result<String, Problem> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Problem::internal())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The hash the store keeps of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new API token: the secret to show once, and the record to store.
pub fn new_api_token(
    name: &str,
    role: Role,
    created_by: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(String, store::ApiTokenRecord), Problem> {
    let secret = format!("{TOKEN_PREFIX}{}", random_secret()?);
    let record = store::ApiTokenRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_string(),
        hash: hash_secret(&secret),
        role: role.as_str().to_string(),
        created_at: now,
        created_by: created_by.to_string(),
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    Ok((secret, record))
}

pub(crate) fn cookie_value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The caller's address: the connection's peer.
pub fn peer_address(parts: &Parts) -> Option<String> {
    parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string())
}

/// The caller's address, when the connection is known (always, behind [`crate::serve`]).
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())))
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Principal, Problem> {
        let now = Utc::now();
        let address = peer_address(parts);
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let text = value.to_str().map_err(|_| Problem::unauthorized("the Authorization header is not text"))?;
            // The scheme is case-insensitive (RFC 9110).
            let token =
                text.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, t)| t.trim());
            let Some(token) = token else {
                return Err(Problem::unauthorized("expected `Authorization: Bearer <API token>`"));
            };
            let record = state
                .store
                .token_by_hash(&hash_secret(token))
                .await?
                .ok_or_else(|| Problem::unauthorized("unknown API token"))?;
            if record.revoked_at.is_some() {
                return Err(Problem::unauthorized(format!("API token {} was revoked", record.name)));
            }
            if record.expires_at <= now {
                return Err(Problem::unauthorized(format!(
                    "API token {} expired at {}",
                    record.name, record.expires_at
                )));
            }
            let role = Role::parse(&record.role).ok_or_else(Problem::internal)?;
            // Last use is recorded at most once a minute per token, not on every request.
            if record.last_used_at.is_none_or(|t| now - t > chrono::Duration::minutes(1)) {
                state.store.token_touch(&record.id, now).await?;
            }
            return Ok(Principal {
                actor: format!("token:{} ({})", record.name, record.id),
                role,
                via: Via::Token { id: record.id },
                address,
            });
        }
        let cookie = cookie_value(parts, SESSION_COOKIE).or_else(|| cookie_value(parts, SESSION_COOKIE_PLAIN));
        let Some(session_id) = cookie else {
            return Err(Problem::unauthorized("sign in, or send an API token"));
        };
        let id_hash = hash_secret(session_id);
        let session = state
            .store
            .session_get(&id_hash)
            .await?
            .filter(|s| s.revoked_at.is_none() && s.expires_at > now)
            .ok_or_else(|| Problem::unauthorized("the session has ended; sign in again"))?;
        if is_state_changing(&parts.method) {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !constant_time_eq(sent, &session.csrf) {
                return Err(Problem::forbidden(
                    "missing or wrong CSRF token: send the session's token in the X-CSRF-Token header",
                ));
            }
        }
        if now - session.last_seen_at > chrono::Duration::minutes(1) {
            state.store.session_touch(&id_hash, now).await?;
        }
        let role = Role::parse(&session.role).ok_or_else(Problem::internal)?;
        Ok(Principal {
            actor: format!("user:{} ({})", session.name, session.subject),
            role,
            via: Via::Session { id_hash },
            address,
        })
    }
}

/// Records a state-changing action in the audit log. A failure to record fails the request:
/// an action that cannot be audited is not done silently.
pub async fn audit(
    store: &Arc<dyn store::Store>,
    who: &Principal,
    action: &str,
    target: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), Problem> {
    store
        .audit_append(&store::AuditEntry {
            id: 0,
            at: Utc::now(),
            actor: who.actor.clone(),
            action: action.to_string(),
            target: target.map(str::to_string),
            address: who.address.clone(),
            detail,
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::Engineer && Role::Engineer > Role::Viewer);
        assert_eq!(Role::parse(" Engineer "), Some(Role::Engineer));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = random_secret().expect("random");
        let b = random_secret().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_secret(&a).len(), 64);
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
