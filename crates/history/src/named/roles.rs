//! Admin role assignments, from `directoryRoles[].members` and
//! `roleAssignments`, deduplicated so that one assignment makes one event.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::dataprint::Dataprint;
use crate::events::{DiffContext, Severity};

const DIRECTORY_ROLES: &str = "directoryRoles";
const ROLE_ASSIGNMENTS: &str = "roleAssignments";

/// The template id of Global Administrator, the same in every tenant.
pub(crate) const GLOBAL_ADMIN: &str = vocab::roles::GLOBAL_ADMINISTRATOR;

/// Whether a role can take over the tenant or its security controls; assigning one of them is
/// `high` rather than `medium`.
fn is_privileged(role_id: &str) -> bool {
    vocab::role(role_id).is_some_and(|r| r.takeover)
}

/// One principal holding one role at one scope.
#[derive(Debug, Clone)]
struct Assignment {
    role_id: String,
    role_name: Option<String>,
    principal_id: String,
    principal_name: Option<String>,
    principal_upn: Option<String>,
    principal_type: Option<String>,
    scope: String,
    source: &'static str,
}

impl Assignment {
    fn to_json(&self) -> Value {
        json!({
            "roleId": self.role_id,
            "roleName": self.role_name,
            "principalId": self.principal_id,
            "principalDisplayName": self.principal_name,
            "principalUserPrincipalName": self.principal_upn,
            "principalType": self.principal_type,
            "directoryScopeId": self.scope,
        })
    }

    fn who(&self) -> String {
        match (&self.principal_name, &self.principal_upn) {
            (Some(n), Some(u)) if n != u => format!("{n} ({u})"),
            (Some(n), _) => n.clone(),
            (None, Some(u)) => u.clone(),
            (None, None) => self.principal_id.clone(),
        }
    }

    fn role(&self) -> String {
        self.role_name.clone().unwrap_or_else(|| {
            if self.role_id == GLOBAL_ADMIN {
                "Global Administrator".to_owned()
            } else {
                format!("role {}", self.role_id)
            }
        })
    }
}

type Key = (String, String, String);

fn str_field(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The principal type from an `@odata.type` such as `#microsoft.graph.user`.
fn principal_type(v: &Value) -> Option<String> {
    v.get("@odata.type").and_then(Value::as_str).map(|t| t.rsplit('.').next().unwrap_or(t).to_owned())
}

/// The human name of a role id, from role definitions or activated roles.
fn role_name(dp: &Dataprint<'_>, role_id: &str) -> Option<String> {
    if let Some(name) =
        dp.collection("roleDefinitions").and_then(|defs| defs.get(role_id)).and_then(|d| str_field(d, "displayName"))
    {
        return Some(name);
    }
    dp.collection(DIRECTORY_ROLES)?
        .values()
        .find(|r| r.get("roleTemplateId").and_then(Value::as_str) == Some(role_id))
        .and_then(|r| str_field(r, "displayName"))
}

fn from_directory_roles(roles: &Map<String, Value>, out: &mut BTreeMap<Key, Assignment>) {
    for (id, role) in roles {
        let role_id = str_field(role, "roleTemplateId").unwrap_or_else(|| id.clone());
        let Some(members) = role.get("members").and_then(Value::as_array) else {
            continue;
        };
        for member in members {
            let Some(principal_id) = str_field(member, "id") else {
                continue;
            };
            let key = (role_id.clone(), principal_id.clone(), "/".to_owned());
            out.entry(key).or_insert_with(|| Assignment {
                role_id: role_id.clone(),
                role_name: str_field(role, "displayName"),
                principal_id,
                principal_name: str_field(member, "displayName"),
                principal_upn: str_field(member, "userPrincipalName"),
                principal_type: principal_type(member),
                scope: "/".to_owned(),
                source: DIRECTORY_ROLES,
            });
        }
    }
}

fn from_role_assignments(dp: &Dataprint<'_>, assignments: &Map<String, Value>, out: &mut BTreeMap<Key, Assignment>) {
    for assignment in assignments.values() {
        let (Some(role_id), Some(principal_id)) =
            (str_field(assignment, "roleDefinitionId"), str_field(assignment, "principalId"))
        else {
            continue;
        };
        let scope = str_field(assignment, "directoryScopeId").unwrap_or_else(|| "/".to_owned());
        let principal = assignment.get("principal").unwrap_or(&Value::Null);
        let key = (role_id.clone(), principal_id.clone(), scope.clone());
        out.entry(key).or_insert_with(|| Assignment {
            role_name: role_name(dp, &role_id),
            role_id,
            principal_id,
            principal_name: str_field(principal, "displayName"),
            principal_upn: str_field(principal, "userPrincipalName"),
            principal_type: principal_type(principal),
            scope,
            source: ROLE_ASSIGNMENTS,
        });
    }
}

/// All assignments of a dataprint, from the sources both dataprints have.
fn assignments(dp: &Dataprint<'_>, use_role_assignments: bool, use_directory_roles: bool) -> BTreeMap<Key, Assignment> {
    let mut out = BTreeMap::new();
    // Role assignments go first: they carry the scope and the expanded
    // principal, and the entry that is inserted first is the one kept.
    if use_role_assignments && let Some(c) = dp.collection(ROLE_ASSIGNMENTS) {
        from_role_assignments(dp, c, &mut out);
    }
    if use_directory_roles && let Some(c) = dp.collection(DIRECTORY_ROLES) {
        from_directory_roles(c, &mut out);
    }
    // Fill missing principal names from the users collection, which every
    // customer dataprint normally has.
    if let Some(users) = dp.collection("users") {
        for a in out.values_mut() {
            if let Some(user) = users.get(&a.principal_id) {
                if a.principal_name.is_none() {
                    a.principal_name = str_field(user, "displayName");
                }
                if a.principal_upn.is_none() {
                    a.principal_upn = str_field(user, "userPrincipalName");
                }
            }
        }
    }
    out
}

pub(crate) fn run(ctx: &mut DiffContext<'_>) {
    let use_ra = ctx.both(ROLE_ASSIGNMENTS).is_some();
    let use_dr = ctx.both(DIRECTORY_ROLES).is_some();
    if !use_ra && !use_dr {
        return;
    }
    let before = assignments(&ctx.before, use_ra, use_dr);
    let after = assignments(&ctx.after, use_ra, use_dr);

    for (key, a) in &after {
        if before.contains_key(key) {
            continue;
        }
        let (kind, severity) = if a.role_id == GLOBAL_ADMIN {
            ("global_admin_assigned", Severity::Critical)
        } else if is_privileged(&a.role_id) {
            ("admin_role_assigned", Severity::High)
        } else {
            ("admin_role_assigned", Severity::Medium)
        };
        let summary = format!("{} assigned to {}", a.role(), a.who());
        let event = ctx
            .event(kind, severity, a.source, &a.principal_id)
            .name(a.principal_name.clone())
            .field(a.role_id.clone())
            .after(Some(a.to_json()))
            .summary(summary);
        ctx.push(event);
    }
    for (key, a) in &before {
        if after.contains_key(key) {
            continue;
        }
        let (kind, severity) = if a.role_id == GLOBAL_ADMIN {
            ("global_admin_removed", Severity::Medium)
        } else {
            ("admin_role_removed", Severity::Low)
        };
        let summary = format!("{} removed from {}", a.role(), a.who());
        let event = ctx
            .event(kind, severity, a.source, &a.principal_id)
            .name(a.principal_name.clone())
            .field(a.role_id.clone())
            .before(Some(a.to_json()))
            .summary(summary);
        ctx.push(event);
    }

    // The membership lists and the assignment objects are fully explained by
    // the events above. A directory role object appears when a role is first
    // used and carries nothing else of interest, so its arrival or removal is
    // explained too.
    if use_dr {
        ctx.claims.collection_field(DIRECTORY_ROLES, "/members");
        claim_added_and_removed(ctx, DIRECTORY_ROLES);
    }
    if use_ra {
        ctx.claims.collection_field(ROLE_ASSIGNMENTS, "/principal");
        claim_added_and_removed(ctx, ROLE_ASSIGNMENTS);
    }
}

fn claim_added_and_removed(ctx: &mut DiffContext<'_>, name: &str) {
    let Some((before, after)) = ctx.both(name) else {
        return;
    };
    for id in before.keys().filter(|k| !after.contains_key(*k)) {
        ctx.claims.object(name, id);
    }
    for id in after.keys().filter(|k| !before.contains_key(*k)) {
        ctx.claims.object(name, id);
    }
}
