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
    pub roles: Vec<String>,
    pub licence: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Permissions {
    /// The least-privileged delegated scopes: the first of each collector's list.
    pub delegated: Vec<String>,
    /// The least-privileged application roles, for tenants read app-only.
    pub application: Vec<String>,
    /// The smallest set of GDAP roles (template id and name) that covers every customer collector.
    pub gdap_roles: Vec<(String, String)>,
    pub manifest: Value,
    pub per_collector: Vec<Requirement>,
}

fn least<'a>(list: &[&'a str]) -> Option<&'a str> {
    list.first().copied()
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
            licence: c.licence.map(|l| l.label().to_string()),
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

/// A small set of roles such that every collector is allowed by one of them (greedy set cover, which
/// is optimal for the catalog's role lists: Global Reader alone covers everything, but the read-only
/// trio Directory Readers, Security Reader and Reports Reader is preferred when it suffices).
fn cover(collectors: &[&Collector]) -> Vec<(String, String)> {
    let preferred = [roles::DIRECTORY_READERS, roles::SECURITY_READER, roles::REPORTS_READER];
    let mut chosen: Vec<&str> = Vec::new();
    let uncovered = |chosen: &[&str]| -> Vec<&Collector> {
        collectors.iter().copied().filter(|c| !c.roles.iter().any(|r| chosen.contains(r))).collect()
    };
    for p in preferred {
        if collectors.iter().any(|c| c.roles.contains(&p)) {
            chosen.push(p);
        }
    }
    while let Some(c) = uncovered(&chosen).first().copied() {
        // The least privileged role that covers the most remaining collectors, in catalog order.
        let best =
            c.roles.iter().copied().max_by_key(|r| uncovered(&chosen).iter().filter(|x| x.roles.contains(r)).count());
        match best {
            Some(r) => chosen.push(r),
            None => break,
        }
    }
    chosen.into_iter().map(|r| (r.to_string(), roles::name(r).to_string())).collect()
}

/// What a token grants compared with what the catalog needs.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    /// Collectors that cannot run with what is granted.
    pub blocked: Vec<String>,
}

pub fn compare(granted: &[String], app_only: bool) -> Comparison {
    let p = derive();
    let needed = if app_only { &p.application } else { &p.delegated };
    let identity = ["offline_access", "openid", "profile", "email"];
    let missing = needed
        .iter()
        .filter(|n| !identity.contains(&n.as_str()) && !granted.iter().any(|g| g.eq_ignore_ascii_case(n)))
        .cloned()
        .collect();
    let extra = granted.iter().filter(|g| !needed.iter().any(|n| n.eq_ignore_ascii_case(g))).cloned().collect();
    let blocked = catalog::customer_collectors()
        .filter(|c| !catalog::allowed(granted, if app_only { c.application } else { c.delegated }))
        .map(|c| c.name.to_string())
        .collect();
    Comparison { missing, extra, blocked }
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
    fn gdap_roles_cover_every_customer_collector() {
        let p = derive();
        let ids: Vec<&str> = p.gdap_roles.iter().map(|(id, _)| id.as_str()).collect();
        for c in catalog::customer_collectors() {
            assert!(c.roles.iter().any(|r| ids.contains(r)), "{} not covered by {ids:?}", c.name);
        }
    }

    #[test]
    fn comparison_finds_gaps_and_excess() {
        let c = compare(&["User.Read".into(), "Directory.Read.All".into(), "Mail.ReadWrite".into()], false);
        assert!(c.missing.contains(&"Policy.Read.All".to_string()));
        assert!(c.extra.contains(&"Mail.ReadWrite".to_string()));
        assert!(c.blocked.contains(&"conditionalAccessPolicies".to_string()));
    }
}
