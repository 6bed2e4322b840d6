//! Directory roles: the activated `directoryRoles` with their members, and the role definitions and
//! assignments of `roleManagement/directory`.

use serde_json::{Value, json};

use super::GraphOk;
use super::env::Env;
use super::objects;
use crate::errors::GraphError;

/// `GET /directoryRoles`, with `$expand=members`.
pub(super) fn directory_roles(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let f = env.faults;
    let expand = env.q.expand.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("members"));
    let roles = objects::activated_roles(t);
    let items: Vec<Value> = roles
        .iter()
        .map(|r| {
            let mut v = objects::directory_role(t, r);
            if expand {
                v["members"] = json!(
                    t.users
                        .iter()
                        .filter(|u| u.roles.iter().any(|x| x == r.id))
                        .map(|u| {
                            let mut m = objects::user_default(objects::user(u, t, f, false));
                            m["@odata.type"] = json!("#microsoft.graph.user");
                            m
                        })
                        .collect::<Vec<_>>()
                );
            }
            v
        })
        .collect();
    Ok(GraphOk::json(json!({ "@odata.context": env.context("directoryRoles"), "value": items })))
}

/// `GET /directoryRoles/{id}/members`, by the role's object id or its template id.
pub(super) fn directory_role_members(env: &Env<'_>, id: &str) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let f = env.faults;
    let role = objects::activated_roles(t)
        .into_iter()
        .find(|r| {
            objects::directory_role_id(t.id, r.id).to_string().eq_ignore_ascii_case(id) || r.id.eq_ignore_ascii_case(id)
        })
        .ok_or_else(|| GraphError::not_found(id))?;
    let members: Vec<&crate::world::User> = t.users.iter().filter(|u| u.roles.iter().any(|x| x == role.id)).collect();
    env.list(&members, "directoryObjects", 100, 999, None, |u| {
        let mut m = objects::user_default(objects::user(u, t, f, false));
        m["@odata.type"] = json!("#microsoft.graph.user");
        Ok(m)
    })
}

/// `GET /roleManagement/directory/roleDefinitions`: the built-in roles.
pub(super) fn definitions(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let filter = env.filter(&["id", "templateId", "displayName", "isBuiltIn"], "UnifiedRoleDefinition")?;
    env.list(
        crate::catalog::ROLE_TEMPLATES,
        "roleManagement/directory/roleDefinitions",
        100,
        999,
        filter.as_ref(),
        |r| Ok(objects::role_definition(r)),
    )
}

/// `GET /roleManagement/directory/roleAssignments`, with `$expand=principal`.
pub(super) fn assignments(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let f = env.faults;
    let filter = env.filter(&["roleDefinitionId", "principalId", "directoryScopeId"], "UnifiedRoleAssignment")?;
    let expand = match env.q.expand.as_deref() {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("principal") => true,
        Some(e) => {
            return Err(GraphError::bad_request(format!(
                "Could not find a property named '{}' on type 'microsoft.graph.unifiedRoleAssignment'.",
                crate::identity::truncate(e, 80)
            )));
        }
    };
    let assignments = objects::role_assignments(env.world, t, env.now, f);
    env.list(&assignments, "roleManagement/directory/roleAssignments", 100, 999, filter.as_ref(), |a| {
        Ok(objects::role_assignment(a, expand))
    })
}
