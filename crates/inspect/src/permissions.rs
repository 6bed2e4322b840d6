//! What the enabled collectors need, derived from the catalog: the least-privilege app manifest
//! (`requiredResourceAccess`), the GDAP roles to ask customers for, and what a token grants beyond or
//! short of that.

use serde::Serialize;
use serde_json::{Value, json};

use crate::catalog::{self, Collector, Side, roles};

/// Microsoft Graph permission ids, as published in the Graph permissions reference.
const PERMISSION_IDS: &[(&str, &str, &str)] = &[
    // (value, delegated scope id, application role id)
    ("User.Read", "e1fe6dd8-ba31-4d61-89e7-88639da4683d", ""),
    ("User.Read.All", "a154be20-db9c-4678-8ab7-66f6cc099a59", "df021288-bdef-4463-88db-98f22de89214"),
    ("Directory.Read.All", "06da0dbc-49e2-44d2-8312-53f166ab848a", "7ab1d382-f21e-4acd-a863-ba3e13f7da61"),
    ("Organization.Read.All", "4908d5b9-3fb2-4b1e-9336-1888b7937185", "498476ce-e0fe-48b0-b801-37ba7e2685c6"),
    ("Domain.Read.All", "2f9ee017-59c1-4f1d-9472-bd5529a7b311", "dbb9058a-0e50-45d7-ae91-66909b5d4664"),
    ("GroupMember.Read.All", "bc024368-1153-4739-b217-4326f2e966d0", "98830695-27a2-44f7-8c18-0c3ebc9698f6"),
    ("RoleManagement.Read.Directory", "741c54c3-0c1e-44a1-818b-3f97ab4e8c83", "483bed4a-2ad3-4361-a73b-c83ccdbdc53c"),
    ("Policy.Read.All", "572fea84-0151-49b2-9301-11cb16974376", "246dd0d5-5bd0-4def-940b-0421030a5b68"),
    ("AuditLog.Read.All", "e4c9e354-4dc5-45b8-9e7c-e1393b0b1a20", "b0afded3-3588-46d8-8b3d-9842eff778da"),
    ("SecurityEvents.Read.All", "64733abd-851e-478a-bffb-e47a14b18235", "bf394140-e372-4bf9-a898-299cfc7564e5"),
    ("Application.Read.All", "c79f8feb-a9db-4090-85f9-90d820caa0eb", "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"),
    ("Device.Read.All", "951183d1-1a61-466f-a6d1-1fde911bfd95", "7438b122-aefc-4978-80ed-43db9fcc7715"),
    (
        "DeviceManagementManagedDevices.Read.All",
        "314874da-47d6-4978-88dc-cf0d37f0bb82",
        "2f51be20-0bb4-4fed-bf7b-db946066c75e",
    ),
    (
        "DelegatedAdminRelationship.Read.All",
        "0c0064ea-477b-4130-82a5-4c2cc4ff68aa",
        "f6e9e124-4586-492f-adc0-c6f96e4823fd",
    ),
    ("offline_access", "7427e0e9-2fba-42fe-b0c0-848c9e6a8182", ""),
    ("openid", "37f7f235-527c-4136-accd-4a02d197296e", ""),
    ("profile", "14dad69e-099b-42c9-810b-d002981feec1", ""),
];

pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

#[derive(Debug, Clone, Serialize)]
pub struct Requirement {
    pub collector: String,
    pub side: Side,
    pub delegated: String,
    pub application: String,
    /// Every directory role that suffices for a delegated read, least privileged first.
    pub roles: Vec<String>,
    /// The least privileged read-only role that suffices (what to ask for if only this collector
    /// mattered).
    pub least_role: Option<String>,
    pub licence: Option<String>,
    /// Minutes a collection stays fresh before a run reads it again; 0 means every run reads it.
    pub fresh_minutes: u32,
    /// When set, every run reads it while this holds, whatever its window.
    pub every_run_while: Option<catalog::Condition>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Permissions {
    /// The least-privileged delegated scopes: the first of each collector's list.
    pub delegated: Vec<String>,
    /// The least-privileged application roles, for tenants read app-only.
    pub application: Vec<String>,
    /// The smallest set of read-only GDAP roles (template id and name) that covers every customer
    /// collector. Never a role that can change the tenant.
    pub gdap_roles: Vec<(String, String)>,
    pub manifest: Value,
    pub per_collector: Vec<Requirement>,
}

fn least<'a>(list: &[&'a str]) -> Option<&'a str> {
    list.first().copied()
}

/// The least privileged read-only role of a collector's list (the catalog lists roles least
/// privileged first).
fn least_read_only(roles: &[&'static str]) -> Option<&'static str> {
    roles.iter().copied().find(|r| vocab::role(r).is_some_and(|x| x.read_only))
}

pub fn derive() -> Permissions {
    let mut delegated: Vec<String> =
        vec!["offline_access".into(), "openid".into(), "profile".into(), "User.Read".into()];
    let mut application: Vec<String> = Vec::new();
    let mut per = Vec::new();
    for c in catalog::CATALOG {
        if let Some(d) = least(c.delegated)
            && !delegated.iter().any(|x| x == d)
        {
            delegated.push(d.to_string());
        }
        if c.side == Side::Customer
            && let Some(a) = least(c.application)
            && !application.iter().any(|x| x == a)
        {
            application.push(a.to_string());
        }
        per.push(Requirement {
            collector: c.name.to_string(),
            side: c.side,
            delegated: least(c.delegated).unwrap_or("").to_string(),
            application: least(c.application).unwrap_or("").to_string(),
            roles: c.roles.iter().map(|r| roles::name(r).to_string()).collect(),
            least_role: least_read_only(c.roles).map(|r| roles::name(r).to_string()),
            licence: c.licence.map(|l| l.label().to_string()),
            fresh_minutes: c.fresh_minutes,
            every_run_while: c.every_run_while,
        });
    }
    let customers: Vec<&Collector> = catalog::customer_collectors().collect();
    let gdap_roles = cover(&customers);
    let id = |value: &str, delegated: bool| -> Option<String> {
        PERMISSION_IDS
            .iter()
            .find(|(v, _, _)| *v == value)
            .map(|(_, d, a)| if delegated { d } else { a })
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string())
    };
    let mut access: Vec<Value> =
        delegated.iter().filter_map(|d| id(d, true).map(|i| json!({"id": i, "type": "Scope"}))).collect();
    access.extend(application.iter().filter_map(|a| id(a, false).map(|i| json!({"id": i, "type": "Role"}))));
    let manifest = json!({ "requiredResourceAccess": [{ "resourceAppId": GRAPH_APP_ID, "resourceAccess": access }] });
    Permissions { delegated, application, gdap_roles, manifest, per_collector: per }
}

/// The smallest set of read-only roles such that every collector is allowed by one of them: an
/// exact search over the few read-only roles the catalog names (at most a handful, so every subset
/// is tried), preferring, among sets of the same size, the one with fewer roles Microsoft labels
/// privileged. A role that can change the tenant is never chosen: reading needs none.
fn cover(collectors: &[&Collector]) -> Vec<(String, String)> {
    let mut candidates: Vec<&'static str> = Vec::new();
    for c in collectors {
        for r in c.roles.iter().copied() {
            if vocab::role(r).is_some_and(|x| x.read_only) && !candidates.contains(&r) {
                candidates.push(r);
            }
        }
    }
    let covers = |set: &[&str]| collectors.iter().all(|c| c.roles.iter().any(|r| set.contains(r)));
    let privileged = |set: &[&str]| set.iter().filter(|r| vocab::role(r).is_some_and(|x| x.privileged)).count();
    let mut best: Option<Vec<&str>> = None;
    for mask in 1u32..(1 << candidates.len().min(16)) {
        let set: Vec<&str> =
            candidates.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, r)| *r).collect();
        if !covers(&set) {
            continue;
        }
        let better = match &best {
            None => true,
            Some(b) => (set.len(), privileged(&set)) < (b.len(), privileged(b)),
        };
        if better {
            best = Some(set);
        }
    }
    best.unwrap_or_default().into_iter().map(|r| (r.to_string(), roles::name(r).to_string())).collect()
}

/// What a token grants compared with what the catalog needs.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    /// Collectors that cannot run with what is granted.
    pub blocked: Vec<String>,
}

/// Compares what a token for a customer grants with what the customer collectors need (a
/// partner-only permission such as DelegatedAdminRelationship.Read.All is never asked of a
/// customer).
pub fn compare(granted: &[String], app_only: bool) -> Comparison {
    let identity = ["offline_access", "openid", "profile", "email", "User.Read"];
    let mut needed: Vec<&str> = Vec::new();
    for c in catalog::customer_collectors() {
        if let Some(n) = least(if app_only { c.application } else { c.delegated })
            && !needed.contains(&n)
        {
            needed.push(n);
        }
    }
    let blocked: Vec<String> = catalog::customer_collectors()
        .filter(|c| !catalog::allowed(granted, if app_only { c.application } else { c.delegated }))
        .map(|c| c.name.to_string())
        .collect();
    // A permission is missing when a collector it would allow is blocked; a broader permission that
    // already allows the read (Directory.Read.All for users) makes the narrower one unnecessary.
    let missing = needed
        .iter()
        .filter(|n| !identity.contains(n))
        .filter(|n| {
            catalog::customer_collectors()
                .filter(|c| blocked.iter().any(|b| b == c.name))
                .any(|c| least(if app_only { c.application } else { c.delegated }) == Some(**n))
        })
        .map(|n| n.to_string())
        .collect();
    let extra = granted
        .iter()
        .filter(|g| !identity.iter().any(|i| i.eq_ignore_ascii_case(g)))
        .filter(|g| {
            !catalog::customer_collectors()
                .any(|c| (if app_only { c.application } else { c.delegated }).iter().any(|n| n.eq_ignore_ascii_case(g)))
        })
        .cloned()
        .collect();
    Comparison { missing, extra, blocked }
}

/// What keeps one collector from running in one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct CollectorGap {
    pub collector: String,
    /// The permission the consent lacks (the least privileged that would allow the read).
    pub missing_permission: Option<String>,
    /// The roles that would suffice, when none the user holds does (delegated access only).
    pub needs_role: Option<Vec<String>>,
}

/// What a tenant's consent and, for delegated access, the user's roles there leave out.
#[derive(Debug, Clone, Serialize)]
pub struct TenantGaps {
    /// The directory roles the signed-in user holds in the tenant (through GDAP, or directly), by
    /// name; `None` for app-only access, which needs no role.
    pub roles_held: Option<Vec<String>>,
    pub comparison: Comparison,
    /// Every collector that cannot run, and why.
    pub collectors: Vec<CollectorGap>,
}

/// The gaps of a tenant: `granted` is what its token grants (scopes, or app roles when app-only);
/// `roles_held` the template ids of the directory roles the user holds there, when known.
pub fn tenant_gaps(granted: &[String], app_only: bool, roles_held: Option<&[String]>) -> TenantGaps {
    let comparison = compare(granted, app_only);
    let mut collectors = Vec::new();
    for c in catalog::customer_collectors() {
        let needed = if app_only { c.application } else { c.delegated };
        let missing_permission =
            (!catalog::allowed(granted, needed)).then(|| least(needed).unwrap_or_default().to_string());
        let needs_role = match (app_only, roles_held) {
            (false, Some(held)) if !catalog::role_suffices(held, c.roles) => Some(
                c.roles
                    .iter()
                    .filter(|r| vocab::role(r).is_some_and(|x| x.read_only))
                    .map(|r| roles::name(r).to_string())
                    .collect(),
            ),
            _ => None,
        };
        if missing_permission.is_some() || needs_role.is_some() {
            collectors.push(CollectorGap { collector: c.name.to_string(), missing_permission, needs_role });
        }
    }
    TenantGaps {
        roles_held: if app_only {
            None
        } else {
            roles_held.map(|held| {
                held.iter().map(|r| vocab::role(r).map_or_else(|| r.clone(), |x| x.name.to_string())).collect()
            })
        },
        comparison,
        collectors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_lists_known_ids_and_no_write_permissions() {
        let p = derive();
        assert!(p.delegated.iter().all(|d| !d.contains("Write")));
        assert!(p.application.iter().all(|d| !d.contains("Write")));
        let access = p.manifest["requiredResourceAccess"][0]["resourceAccess"].as_array().unwrap();
        assert!(access.len() >= p.application.len());
        assert!(p.delegated.contains(&"Policy.Read.All".to_string()));
    }

    #[test]
    fn gdap_roles_cover_every_customer_collector_with_read_only_roles() {
        let p = derive();
        let ids: Vec<&str> = p.gdap_roles.iter().map(|(id, _)| id.as_str()).collect();
        for c in catalog::customer_collectors() {
            assert!(c.roles.iter().any(|r| ids.contains(r)), "{} not covered by {ids:?}", c.name);
        }
        for id in &ids {
            assert!(vocab::role(id).is_some_and(|r| r.read_only), "{id} can change the tenant");
        }
        // Global Reader alone covers every read collector, and is the smallest set.
        assert_eq!(p.gdap_roles, [(roles::GLOBAL_READER.to_string(), "Global Reader".to_string())]);
        assert!(!p.gdap_roles.iter().any(|(_, n)| n == "Global Administrator"));
        // Each collector names the least role that suffices for it alone.
        let users = p.per_collector.iter().find(|r| r.collector == "users" && r.side == Side::Customer).unwrap();
        assert_eq!(users.least_role.as_deref(), Some("Directory Readers"));
        let ca = p.per_collector.iter().find(|r| r.collector == "conditionalAccessPolicies").unwrap();
        assert_eq!(ca.least_role.as_deref(), Some("Security Reader"));
    }

    #[test]
    fn a_tenant_with_directory_readers_only_lacks_the_other_roles() {
        let granted: Vec<String> = derive().delegated.clone();
        let gaps = tenant_gaps(&granted, false, Some(&[roles::DIRECTORY_READERS.to_string()]));
        assert_eq!(gaps.roles_held.as_deref(), Some(&["Directory Readers".to_string()][..]));
        assert!(gaps.comparison.missing.is_empty(), "the consent is complete");
        let ca = gaps.collectors.iter().find(|g| g.collector == "conditionalAccessPolicies").expect("blocked");
        assert!(ca.needs_role.as_ref().is_some_and(|r| r.contains(&"Security Reader".to_string())));
        assert!(gaps.collectors.iter().all(|g| g.collector != "users"));
    }

    #[test]
    fn a_customer_is_never_asked_for_partner_only_permissions() {
        let c = compare(&["User.Read".into()], false);
        assert!(!c.missing.iter().any(|m| m == "DelegatedAdminRelationship.Read.All"), "{:?}", c.missing);
        // A broader permission that already allows a read makes the narrower one unnecessary.
        let c = compare(
            &[
                "Directory.Read.All".into(),
                "Policy.Read.All".into(),
                "AuditLog.Read.All".into(),
                "SecurityEvents.Read.All".into(),
                "DeviceManagementManagedDevices.Read.All".into(),
            ],
            false,
        );
        assert!(c.missing.is_empty() && c.blocked.is_empty(), "{c:?}");
    }

    #[test]
    fn comparison_finds_gaps_and_excess() {
        let c = compare(&["User.Read".into(), "Directory.Read.All".into(), "Mail.ReadWrite".into()], false);
        assert!(c.missing.contains(&"Policy.Read.All".to_string()));
        assert!(c.extra.contains(&"Mail.ReadWrite".to_string()));
        assert!(c.blocked.contains(&"conditionalAccessPolicies".to_string()));
    }
}
