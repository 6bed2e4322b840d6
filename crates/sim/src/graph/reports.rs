//! Reports and security: the users' authentication-method registration, the secure score history and
//! the sign-in log.

use super::GraphOk;
use super::env::Env;
use super::objects;
use crate::errors::GraphError;

/// `GET /reports/authenticationMethods/userRegistrationDetails`.
pub(super) fn registration_details(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let filter = env.filter(
        &["isMfaRegistered", "isAdmin", "userType", "userPrincipalName", "isMfaCapable", "isSsprRegistered"],
        "UserRegistrationDetails",
    )?;
    let users: Vec<&crate::world::User> = t.users.iter().collect();
    env.list(&users, "reports/authenticationMethods/userRegistrationDetails", 100, 999, filter.as_ref(), |u| {
        Ok(objects::registration_details(u, t))
    })
}

/// `GET /security/secureScores`: one score a day for the last 30 days.
pub(super) fn secure_scores(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let days: Vec<i64> = (0..30).collect();
    env.list(&days, "security/secureScores", 100, 999, None, |d| Ok(objects::secure_score(t, env.now, *d)))
}

/// `GET /auditLogs/signIns`: two sign-ins for every user who signed in during the last week.
pub(super) fn sign_ins(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let week = env.now - chrono::Duration::days(7);
    let entries: Vec<(&crate::world::User, usize)> = t
        .users
        .iter()
        .filter(|u| u.last_sign_in.is_some_and(|s| s > week))
        .flat_map(|u| [(u, 0usize), (u, 1usize)])
        .collect();
    let filter = env.filter(
        &["createdDateTime", "userPrincipalName", "userId", "appId", "status/errorCode", "conditionalAccessStatus"],
        "SignIn",
    )?;
    env.list(&entries, "auditLogs/signIns", 100, 1000, filter.as_ref(), |(u, n)| {
        Ok(objects::sign_in(u, t, *n, env.now))
    })
}
