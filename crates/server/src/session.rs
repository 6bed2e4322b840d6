//! Operators' sessions: a random id in a cookie, its hash and the session in the store.

use axum::http::HeaderValue;
use chrono::Utc;

use crate::AppState;
use crate::auth::{self, Role, SESSION_COOKIE, SESSION_COOKIE_PLAIN};
use crate::problem::Problem;

fn cookie_name(state: &AppState) -> &'static str {
    if state.https { SESSION_COOKIE } else { SESSION_COOKIE_PLAIN }
}

/// Starts a session; returns its `Set-Cookie` header and its CSRF token.
pub async fn start(
    state: &AppState,
    subject: &str,
    name: &str,
    role: Role,
    address: Option<String>,
) -> Result<(HeaderValue, String), Problem> {
    let id = auth::random_secret()?;
    let csrf = auth::random_secret()?;
    let now = Utc::now();
    let hours = state.config.access.session_hours.unwrap_or(12).clamp(1, 24 * 30) as i64;
    let expires_at = now + chrono::Duration::hours(hours);
    state
        .store
        .session_put(&store::SessionRecord {
            id_hash: auth::hash_secret(&id),
            subject: subject.to_string(),
            name: name.to_string(),
            role: role.as_str().to_string(),
            csrf: csrf.clone(),
            created_at: now,
            expires_at,
            last_seen_at: now,
            address,
            revoked_at: None,
        })
        .await?;
    let secure = if state.https { "; Secure" } else { "" };
    let cookie =
        format!("{}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", cookie_name(state), hours * 3600);
    let value = HeaderValue::from_str(&cookie).map_err(|_| Problem::internal())?;
    Ok((value, csrf))
}

/// A `Set-Cookie` header that removes the session cookie.
pub fn clear_cookie(state: &AppState) -> HeaderValue {
    let secure = if state.https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}", cookie_name(state)))
        .unwrap_or(HeaderValue::from_static(""))
}
