//! Applications and what they are granted: service principals (Microsoft Graph's own among them), their
//! app role assignments, the tenant's app registrations and the delegated permission grants.

use serde_json::Value;

use super::GraphOk;
use super::env::Env;
use super::objects;
use crate::errors::GraphError;

/// `GET /servicePrincipals`: Microsoft Graph's, then the tenant's.
pub(super) fn service_principals(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let mut items = vec![objects::graph_service_principal(t)];
    items.extend(t.service_principals.iter().map(|sp| objects::service_principal(sp, env.world.app(sp.app_id), t)));
    let filter = env.filter(&["appId", "displayName", "id", "servicePrincipalType"], "ServicePrincipal")?;
    env.list(&items, "servicePrincipals", 100, 999, filter.as_ref(), |v| Ok(v.clone()))
}

/// `GET /servicePrincipals/{id}`.
pub(super) fn service_principal(env: &Env<'_>, id: &str) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    if id.eq_ignore_ascii_case(&objects::graph_sp_id(t.id).to_string()) {
        return Ok(env.single("servicePrincipals/$entity", objects::graph_service_principal(t)));
    }
    let sp = t
        .service_principals
        .iter()
        .find(|sp| sp.id.to_string().eq_ignore_ascii_case(id))
        .ok_or_else(|| GraphError::not_found(id))?;
    Ok(env.single("servicePrincipals/$entity", objects::service_principal(sp, env.world.app(sp.app_id), t)))
}

/// `GET /servicePrincipals/{id}/appRoleAssignments`: the application permissions granted to it;
/// Microsoft Graph's own has none.
pub(super) fn app_role_assignments(env: &Env<'_>, id: &str) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    if id.eq_ignore_ascii_case(&objects::graph_sp_id(t.id).to_string()) {
        return env.list(&Vec::<Value>::new(), "servicePrincipals('id')/appRoleAssignments", 100, 999, None, |v| {
            Ok(v.clone())
        });
    }
    let sp = t
        .service_principals
        .iter()
        .find(|sp| sp.id.to_string().eq_ignore_ascii_case(id))
        .ok_or_else(|| GraphError::not_found(id))?;
    env.list(&sp.application, &format!("servicePrincipals('{}')/appRoleAssignments", sp.id), 100, 999, None, |r| {
        Ok(objects::app_role_assignment(sp, r, t))
    })
}

/// `GET /applications`: the app registrations whose home is this tenant.
pub(super) fn applications(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let apps: Vec<&crate::world::App> = env.world.apps.iter().filter(|a| a.home_tenant == t.id).collect();
    env.list(&apps, "applications", 100, 999, None, |a| Ok(objects::application(a)))
}

/// `GET /oauth2PermissionGrants`: one per service principal with delegated permissions.
pub(super) fn grants(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let sps: Vec<&crate::world::ServicePrincipal> =
        t.service_principals.iter().filter(|sp| !sp.delegated.is_empty()).collect();
    let filter = env.filter(&["clientId", "consentType", "resourceId", "principalId"], "OAuth2PermissionGrant")?;
    env.list(&sps, "oauth2PermissionGrants", 100, 999, filter.as_ref(), |sp| Ok(objects::permission_grant(sp, t)))
}
