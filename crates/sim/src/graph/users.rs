//! Users: the collection (with `$filter`, `$search`, `$count` and `signInActivity`), its delta rounds,
//! one user by id or user principal name, the signed-in user (`/me`), and the groups and directory roles
//! a user is a member of.

use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::env::Env;
use super::query::apply_select;
use super::{GraphBody, GraphOk, objects};
use crate::errors::GraphError;
use crate::world::User;

/// `GET /users`.
pub(super) fn list(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let f = env.faults;
    let filter = env.filter(
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
    let users: Vec<&User> = t.users.iter().collect();
    let ok = env.list(&users, "users", 100, 999, filter.as_ref(), |u| {
        if filter.is_some() {
            // Filtering needs every property; the selection is applied after the match below.
            Ok(objects::user(u, t, f, env.wants_sign_in_activity()))
        } else {
            env.user_json(u)
        }
    })?;
    if filter.is_some() { env.reselect(ok, objects::USER_PROPERTIES, "user", true) } else { Ok(ok) }
}

/// `GET /users/$count`, which needs `ConsistencyLevel: eventual`.
pub(super) fn count(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    if !env.q.eventual {
        return Err(GraphError::bad_request("$count is not currently supported."));
    }
    Ok(GraphOk { status: StatusCode::OK, body: GraphBody::Text(t.users.len().to_string()), headers: Vec::new() })
}

/// `GET /users/delta`.
pub(super) fn delta(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    env.delta("users", t.users.iter().map(|u| (u.id, env.user_json(u))).collect())
}

/// `GET /users/{id or userPrincipalName}`.
pub(super) fn get(env: &Env<'_>, key: &str) -> Result<GraphOk, GraphError> {
    let u = env.find_user(key)?;
    Ok(env.single("users/$entity", env.user_json(u)?))
}

/// `GET /users/{id}/memberOf` and `/transitiveMemberOf`.
pub(super) fn member_of(env: &Env<'_>, key: &str, transitive: bool) -> Result<GraphOk, GraphError> {
    let u = env.find_user(key)?;
    env.member_of(u.id, transitive)
}

/// `GET /me`.
pub(super) fn me(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let u = env.me()?;
    Ok(env.single("users/$entity", env.user_json(u)?))
}

/// `GET /me/memberOf` and `/me/transitiveMemberOf`.
pub(super) fn my_member_of(env: &Env<'_>, transitive: bool) -> Result<GraphOk, GraphError> {
    let u = env.me()?;
    env.member_of(u.id, transitive)
}

impl Env<'_> {
    /// Whether the request reads `signInActivity`, which needs `AuditLog.Read.All` and Entra ID P1.
    fn wants_sign_in_activity(&self) -> bool {
        self.q.select.as_ref().is_some_and(|s| s.iter().any(|p| p.eq_ignore_ascii_case("signInActivity")))
            || self.q.filter.as_ref().is_some_and(|f| f.to_ascii_lowercase().contains("signinactivity"))
    }

    /// A user as the request asks for it: the default properties, every property when a filter must
    /// match them, or the `$select`ed ones.
    fn user_json(&self, u: &User) -> Result<Value, GraphError> {
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

    /// A user by object id or by user principal name.
    fn find_user(&self, key: &str) -> Result<&User, GraphError> {
        let u = match Uuid::parse_str(key) {
            Ok(id) => self.tenant.user(id),
            Err(_) => self.tenant.user_by_upn(key),
        };
        u.ok_or_else(|| GraphError::not_found(key))
    }

    /// The signed-in user in this tenant; a partner's foreign principal has no user object here.
    fn me(&self) -> Result<&User, GraphError> {
        let oid = self
            .claims
            .oid
            .ok_or_else(|| GraphError::bad_request("/me request is only valid with delegated authentication flow."))?;
        self.tenant.user(oid).ok_or_else(|| GraphError::not_found(&oid.to_string()))
    }

    /// The groups (direct or transitive) and directory roles of a user, as one collection.
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
}
