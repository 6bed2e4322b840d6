//! Consents: delegated permission grants, application permissions, and
//! service principals that newly hold application permissions.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::dataprint::display_name;
use crate::events::{DiffContext, Severity, is_high_privilege};

const GRANTS: &str = "oauth2PermissionGrants";
const APP_ROLES: &str = "appRoleAssignments";
const SPS: &str = "servicePrincipals";

fn scopes(grant: &Value) -> Vec<&str> {
    let mut list: Vec<&str> =
        grant.get("scope").and_then(Value::as_str).map(|s| s.split_whitespace().collect()).unwrap_or_default();
    list.sort_unstable();
    list.dedup();
    list
}

/// The name of a service principal, from either dataprint.
fn sp_name(ctx: &DiffContext<'_>, sp_id: &str) -> Option<String> {
    [ctx.after, ctx.before].iter().filter_map(|dp| dp.collection(SPS)?.get(sp_id)).find_map(display_name)
}

fn consent_severity(high: &[&str], all_principals: bool) -> Severity {
    if !high.is_empty() {
        Severity::High
    } else if all_principals {
        Severity::Medium
    } else {
        Severity::Low
    }
}

/// New delegated grants, and new scopes added to an existing grant.
pub(crate) fn delegated_consents(ctx: &mut DiffContext<'_>) {
    let Some((before, after)) = ctx.both(GRANTS) else {
        return;
    };
    for (id, grant) in after {
        let old = before.get(id);
        let new_scopes = scopes(grant);
        let old_scopes = old.map(scopes).unwrap_or_default();
        let added: Vec<&str> = new_scopes.iter().copied().filter(|s| !old_scopes.contains(s)).collect();
        if old.is_some() && added.is_empty() {
            continue;
        }
        let high: Vec<&str> = added.iter().copied().filter(|s| is_high_privilege(s)).collect();
        let all_principals = grant.get("consentType").and_then(Value::as_str) == Some("AllPrincipals");
        let client = grant.get("clientId").and_then(Value::as_str).unwrap_or("");
        let name = sp_name(ctx, client);
        let app = name.clone().unwrap_or_else(|| client.to_owned());
        let whom = if all_principals {
            "all users".to_owned()
        } else {
            match grant.get("principalId").and_then(Value::as_str) {
                Some(p) => {
                    let user = ctx.after.collection("users").and_then(|u| u.get(p)).and_then(display_name);
                    format!("user {}", user.as_deref().unwrap_or(p))
                }
                None => "one user".to_owned(),
            }
        };
        let mut summary = format!("Consent granted to {app} for {whom}: {}", added.join(" "));
        if !high.is_empty() {
            summary.push_str(&format!(" (high privilege: {})", high.join(" ")));
        }
        let severity = consent_severity(&high, all_principals);
        let mut event = ctx.event("consent_granted", severity, GRANTS, id).name(name).summary(summary);
        if let Some(old) = old {
            event = event.field("/scope").before(old.get("scope").cloned()).after(grant.get("scope").cloned());
            ctx.push(event);
            ctx.claims.field(GRANTS, id, "/scope");
        } else {
            event = event.after(Some(grant.clone()));
            ctx.push(event);
            ctx.claims.object(GRANTS, id);
        }
    }
}

/// The permission name of an application role assignment: the value that
/// tenantscope adds for Microsoft Graph, or the app role id otherwise.
fn permission(assignment: &Value) -> String {
    assignment
        .get("appRoleValue")
        .or_else(|| assignment.get("appRoleId"))
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned()
}

/// Assignments grouped by the service principal that holds them.
fn by_holder(c: &Map<String, Value>) -> BTreeMap<&str, Vec<(&str, &Value)>> {
    let mut out: BTreeMap<&str, Vec<(&str, &Value)>> = BTreeMap::new();
    for (id, a) in c {
        if let Some(holder) = a.get("principalId").and_then(Value::as_str) {
            out.entry(holder).or_default().push((id.as_str(), a));
        }
    }
    out
}

/// Application permissions. A service principal that held none before and
/// holds some now is reported once with all of them; a new permission for a
/// principal that already held some is a `consent_granted`.
pub(crate) fn application_permissions(ctx: &mut DiffContext<'_>) {
    let Some((before, after)) = ctx.both(APP_ROLES) else {
        return;
    };
    let old_holders = by_holder(before);
    for (holder, assignments) in by_holder(after) {
        let new: Vec<(&str, &Value)> = assignments.into_iter().filter(|(id, _)| !before.contains_key(*id)).collect();
        if new.is_empty() {
            continue;
        }
        if old_holders.contains_key(holder) {
            for (id, assignment) in new {
                granted_to_existing(ctx, id, assignment);
            }
        } else {
            new_holder(ctx, holder, &new);
        }
    }
}

fn granted_to_existing(ctx: &mut DiffContext<'_>, id: &str, assignment: &Value) {
    let perm = permission(assignment);
    let high = is_high_privilege(&perm);
    let holder = assignment.get("principalId").and_then(Value::as_str).unwrap_or("");
    let name = assignment
        .get("principalDisplayName")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| sp_name(ctx, holder));
    let resource = assignment.get("resourceDisplayName").and_then(Value::as_str).unwrap_or("an API");
    let mut summary =
        format!("Application permission {perm} on {resource} granted to {}", name.as_deref().unwrap_or(holder));
    if high {
        summary.push_str(" (high privilege)");
    }
    let severity = if high { Severity::High } else { Severity::Medium };
    let event = ctx
        .event("consent_granted", severity, APP_ROLES, id)
        .name(name)
        .after(Some(assignment.clone()))
        .summary(summary);
    ctx.push(event);
    ctx.claims.object(APP_ROLES, id);
}

fn new_holder(ctx: &mut DiffContext<'_>, holder: &str, new: &[(&str, &Value)]) {
    let mut perms: Vec<String> = new.iter().map(|(_, a)| permission(a)).collect();
    perms.sort_unstable();
    perms.dedup();
    let high: Vec<&String> = perms.iter().filter(|p| is_high_privilege(p)).collect();
    let name = sp_name(ctx, holder).or_else(|| {
        new.iter().find_map(|(_, a)| a.get("principalDisplayName").and_then(Value::as_str).map(str::to_owned))
    });
    let sp = ctx.after.collection(SPS).and_then(|c| c.get(holder)).cloned().unwrap_or(Value::Null);
    let mut summary = format!(
        "Service principal {} now holds application permissions: {}",
        name.as_deref().unwrap_or(holder),
        perms.join(" ")
    );
    if !high.is_empty() {
        let list: Vec<&str> = high.iter().map(|s| s.as_str()).collect();
        summary.push_str(&format!(" (high privilege: {})", list.join(" ")));
    }
    let severity = if high.is_empty() { Severity::Medium } else { Severity::High };
    let event = ctx
        .event("service_principal_with_app_permissions_added", severity, SPS, holder)
        .name(name)
        .after(Some(json!({
            "servicePrincipal": sp,
            "permissions": perms,
            "highPrivilegePermissions": high,
        })))
        .summary(summary);
    ctx.push(event);
    for (id, _) in new {
        ctx.claims.object(APP_ROLES, id);
    }
    // When the service principal itself is new, this event says more than a
    // generic "object added" would.
    if ctx.before.collection(SPS).is_some_and(|c| !c.contains_key(holder)) {
        ctx.claims.object(SPS, holder);
    }
}
