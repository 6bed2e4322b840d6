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
    let mut items = vec![objects::graph_service_principal(t, env.world)];
    items.extend(t.service_principals.iter().map(|sp| objects::service_principal(sp, env.world.app(sp.app_id), t)));
    let filter = env.filter(&["appId", "displayName", "id", "servicePrincipalType"], "ServicePrincipal")?;
    env.list(&items, "servicePrincipals", 100, 999, filter.as_ref(), |v| Ok(v.clone()))
}

/// `GET /servicePrincipals/{id}`.
pub(super) fn service_principal(env: &Env<'_>, id: &str) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    if id.eq_ignore_ascii_case(&objects::graph_sp_id(t.id).to_string()) {
        return Ok(env.single("servicePrincipals/$entity", objects::graph_service_principal(t, env.world)));
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

/// `GET /servicePrincipals(appId='{appId}')`: a service principal by its application's id.
pub(super) fn service_principal_by_app_id(env: &Env<'_>, app_id: &str) -> Result<GraphOk, GraphError> {
    let id = id_of_app(env, app_id)?;
    service_principal(env, &id)
}

/// `GET /servicePrincipals/{id}/appRoleAssignedTo` and its `(appId='…')` form: what principals were
/// granted of this resource's app roles. For Microsoft Graph, every application permission to Graph
/// in the tenant; the tenant's own apps define no app roles, so nothing is granted of them.
pub(super) fn app_role_assigned_to(env: &Env<'_>, id: &str) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let context = format!("servicePrincipals('{id}')/appRoleAssignedTo");
    if id.eq_ignore_ascii_case(&objects::graph_sp_id(t.id).to_string()) {
        let assignments: Vec<(&crate::world::ServicePrincipal, &String)> =
            t.service_principals.iter().flat_map(|sp| sp.application.iter().map(move |r| (sp, r))).collect();
        return env.list(&assignments, &context, 100, 999, None, |(sp, r)| Ok(objects::app_role_assignment(sp, r, t)));
    }
    if !t.service_principals.iter().any(|sp| sp.id.to_string().eq_ignore_ascii_case(id)) {
        return Err(GraphError::not_found(id));
    }
    env.list(&Vec::<Value>::new(), &context, 100, 999, None, |v| Ok(v.clone()))
}

/// The same for a resource named by its application's id.
pub(super) fn app_role_assigned_to_by_app_id(env: &Env<'_>, app_id: &str) -> Result<GraphOk, GraphError> {
    let id = id_of_app(env, app_id)?;
    app_role_assigned_to(env, &id)
}

/// The object id of the tenant's service principal of an application, as Graph resolves an alternate
/// key; a tenant without one answers 404 as Graph does.
fn id_of_app(env: &Env<'_>, app_id: &str) -> Result<String, GraphError> {
    let t = env.tenant;
    if app_id.eq_ignore_ascii_case(crate::catalog::GRAPH_APP_ID) {
        return Ok(objects::graph_sp_id(t.id).to_string());
    }
    t.service_principals
        .iter()
        .find(|sp| sp.app_id.to_string().eq_ignore_ascii_case(app_id))
        .map(|sp| sp.id.to_string())
        .ok_or_else(|| GraphError::not_found(app_id))
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
