//! The collector catalog: what tenantscope reads from each tenant, and what each read needs.
//!
//! Every collector declares its Graph endpoint, the delegated scopes and application roles that allow
//! it (least privileged first), the directory roles that suffice for a delegated caller, the licence
//! it depends on, how it is fetched (batched, paged, delta, per parent object) and how long a
//! collection stays fresh before a run reads it again.

use serde::Serialize;

/// Role template ids, as Microsoft publishes them.
/// Directory roles: the one table in `vocab`.
pub mod roles {
    pub use vocab::roles::*;

    /// The display name of a role, or "directory role" for one not in the table.
    pub fn name(id: &str) -> &'static str {
        vocab::role_name(id)
    }
}

use roles::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Customer,
    Partner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Licence {
    /// Microsoft Entra ID P1 (service plan AAD_PREMIUM).
    P1,
    /// Microsoft Intune (service plan INTUNE_A).
    Intune,
}

impl Licence {
    pub fn service_plan(self) -> &'static str {
        match self {
            Licence::P1 => "AAD_PREMIUM",
            Licence::Intune => "INTUNE_A",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Licence::P1 => "Microsoft Entra ID P1",
            Licence::Intune => "Microsoft Intune",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fetch {
    /// A small read that goes into the tenant's `$batch`; its pages, if any, are followed.
    Batch,
    /// The newest item of a history (`$top=1`), batched; its nextLink leads to older items and is not
    /// followed (a secure score history would otherwise cost one request per day it keeps).
    Latest,
    /// A paged list read on its own, streamed page by page.
    List,
    /// A delta query: a full round the first time, then only the changes.
    Delta,
    /// One batched read per API in [`PERMISSION_RESOURCES`] (`{appId}` in the path): what was granted
    /// of each. An API that has no service principal in the tenant (a 404) granted nothing.
    PerResource,
    /// One request per GDAP relationship, batched.
    PerRelationship,
}

impl Fetch {
    /// Whether the read goes into the tenant's `$batch`.
    pub fn batched(self) -> bool {
        matches!(self, Fetch::Batch | Fetch::Latest | Fetch::PerResource)
    }
}

/// The APIs whose application permissions are collected: the ones whose app roles reach mail,
/// files and the directory (Exchange Online's `full_access_as_app` is as dangerous as any Graph
/// permission). Reading what was granted of each resource costs one batched request per resource,
/// whatever the number of apps, so the read is cheap enough for every run.
pub const PERMISSION_RESOURCES: &[(&str, &str)] = &[
    ("00000003-0000-0000-c000-000000000000", "Microsoft Graph"),
    ("00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online"),
    ("00000003-0000-0ff1-ce00-000000000000", "Office 365 SharePoint Online"),
];

#[derive(Debug, Clone, Serialize)]
pub struct Collector {
    /// The collection name in the dataprint.
    pub name: &'static str,
    pub title: &'static str,
    pub side: Side,
    /// The Graph path and query, relative to the version.
    pub path: &'static str,
    pub fetch: Fetch,
    /// Delegated scopes that allow the read, least privileged first.
    pub delegated: &'static [&'static str],
    /// Application roles that allow the read, least privileged first.
    pub application: &'static [&'static str],
    /// Directory roles that suffice for a delegated caller (for GDAP: roles of the relationship).
    pub roles: &'static [&'static str],
    pub licence: Option<Licence>,
    /// Minutes a collection stays fresh: a run within that time reuses it instead of reading it again.
    ///
    /// What an attacker or a careless admin changes to take over a tenant (directory roles and
    /// their assignments, Conditional Access, security defaults, the authorization and
    /// authentication-method policies, apps, their credentials and consents, domains) is read on
    /// every run (0), inside the tenant's one `$batch` where it can be; users and groups are read by
    /// delta every run. Only what is expensive and changes slowly (reports, sign-in logs, secure
    /// score, devices, licences, the organization) keeps a window.
    pub fresh_minutes: u32,
    /// A condition under which the collection is read on every run despite its window: one whose
    /// content matters to security only while something else uses it.
    pub every_run_while: Option<Condition>,
}

/// When a windowed collection is security-relevant, decided on the run's own reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// A Conditional Access policy of this run names locations (named locations, or all trusted
    /// ones): then a changed location (an address range added, a location marked trusted) changes
    /// who gets in. Named locations that no policy uses change nothing about access.
    LocationsInUse,
}

impl Condition {
    /// Whether the condition holds of the collections read so far in the run.
    pub fn holds(self, collections: &serde_json::Map<String, serde_json::Value>) -> bool {
        match self {
            Condition::LocationsInUse => {
                let Some(policies) = collections.get("conditionalAccessPolicies").and_then(|p| p.as_object()) else {
                    // Without this run's policies, nothing shows the locations unused.
                    return true;
                };
                policies.values().any(|p| {
                    let locations = p.pointer("/conditions/locations");
                    ["includeLocations", "excludeLocations"].iter().any(|k| {
                        locations
                            .and_then(|l| l.get(*k))
                            .and_then(|v| v.as_array())
                            .is_some_and(|v| v.iter().any(|x| x.as_str() != Some("All")))
                    })
                })
            }
        }
    }

    /// The condition in words, for `permissions` and `dataprint show`.
    pub fn describe(self) -> &'static str {
        match self {
            Condition::LocationsInUse => "while a Conditional Access policy uses locations",
        }
    }
}

const DIRECTORY: &[&str] = &[
    DIRECTORY_READERS,
    GLOBAL_READER,
    SECURITY_READER,
    SECURITY_ADMINISTRATOR,
    USER_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
];
const POLICY: &[&str] =
    &[SECURITY_READER, GLOBAL_READER, SECURITY_ADMINISTRATOR, CONDITIONAL_ACCESS_ADMINISTRATOR, GLOBAL_ADMINISTRATOR];
const REPORTS: &[&str] =
    &[REPORTS_READER, SECURITY_READER, GLOBAL_READER, SECURITY_ADMINISTRATOR, GLOBAL_ADMINISTRATOR];
const APPS: &[&str] = &[
    DIRECTORY_READERS,
    GLOBAL_READER,
    SECURITY_READER,
    CLOUD_APPLICATION_ADMINISTRATOR,
    APPLICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
];

const HOUR: u32 = 60;

pub static CATALOG: &[Collector] = &[
    Collector {
        name: "organization",
        title: "Organization",
        side: Side::Customer,
        path: "organization",
        fetch: Fetch::Batch,
        delegated: &["Organization.Read.All", "Directory.Read.All"],
        application: &["Organization.Read.All", "Directory.Read.All"],
        roles: DIRECTORY,
        licence: None,
        fresh_minutes: 6 * HOUR,
        every_run_while: None,
    },
    Collector {
        name: "domains",
        title: "Domains",
        side: Side::Customer,
        path: "domains",
        fetch: Fetch::Batch,
        delegated: &["Domain.Read.All", "Directory.Read.All"],
        application: &["Domain.Read.All", "Directory.Read.All"],
        roles: DIRECTORY,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "subscribedSkus",
        title: "Licences",
        side: Side::Customer,
        path: "subscribedSkus",
        fetch: Fetch::Batch,
        delegated: &["Organization.Read.All", "Directory.Read.All"],
        application: &["Organization.Read.All", "Directory.Read.All"],
        roles: DIRECTORY,
        licence: None,
        fresh_minutes: HOUR,
        every_run_while: None,
    },
    Collector {
        name: "subscriptions",
        title: "Subscriptions",
        side: Side::Customer,
        path: "directory/subscriptions",
        fetch: Fetch::Batch,
        delegated: &["Organization.Read.All", "Directory.Read.All"],
        application: &["Organization.Read.All", "Directory.Read.All"],
        roles: DIRECTORY,
        licence: None,
        fresh_minutes: 6 * HOUR,
        every_run_while: None,
    },
    Collector {
        name: "users",
        title: "Users",
        side: Side::Customer,
        path: "users/delta?$select=id,displayName,userPrincipalName,accountEnabled,userType,assignedLicenses,createdDateTime,onPremisesSyncEnabled,mail,jobTitle,department",
        fetch: Fetch::Delta,
        delegated: &["User.Read.All", "Directory.Read.All"],
        application: &["User.Read.All", "Directory.Read.All"],
        roles: DIRECTORY,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "signInActivity",
        title: "Last sign-ins of users",
        side: Side::Customer,
        path: "users?$select=id,signInActivity&$top=999",
        fetch: Fetch::List,
        delegated: &["AuditLog.Read.All"],
        application: &["AuditLog.Read.All"],
        roles: REPORTS,
        licence: Some(Licence::P1),
        fresh_minutes: 12 * HOUR,
        every_run_while: None,
    },
    Collector {
        name: "groups",
        title: "Groups",
        side: Side::Customer,
        path: "groups/delta?$select=id,displayName,securityEnabled,mailEnabled,groupTypes,description",
        fetch: Fetch::Delta,
        delegated: &["GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"],
        application: &["GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"],
        roles: DIRECTORY,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "userRegistrationDetails",
        title: "MFA registration",
        side: Side::Customer,
        path: "reports/authenticationMethods/userRegistrationDetails?$top=999",
        fetch: Fetch::List,
        delegated: &["AuditLog.Read.All"],
        application: &["AuditLog.Read.All"],
        roles: REPORTS,
        licence: Some(Licence::P1),
        fresh_minutes: 6 * HOUR,
        every_run_while: None,
    },
    Collector {
        name: "directoryRoles",
        title: "Directory roles and members",
        side: Side::Customer,
        path: "directoryRoles?$expand=members",
        fetch: Fetch::Batch,
        delegated: &["RoleManagement.Read.Directory", "Directory.Read.All"],
        application: &["RoleManagement.Read.Directory", "Directory.Read.All"],
        roles: DIRECTORY,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "roleDefinitions",
        title: "Role definitions",
        side: Side::Customer,
        path: "roleManagement/directory/roleDefinitions?$select=id,displayName,templateId,isBuiltIn,isEnabled",
        fetch: Fetch::Batch,
        delegated: &["RoleManagement.Read.Directory", "Directory.Read.All"],
        application: &["RoleManagement.Read.Directory", "Directory.Read.All"],
        roles: DIRECTORY,
        licence: None,
        fresh_minutes: 24 * HOUR,
        every_run_while: None,
    },
    Collector {
        name: "roleAssignments",
        title: "Role assignments (GDAP groups as foreign principals)",
        side: Side::Customer,
        path: "roleManagement/directory/roleAssignments?$expand=principal",
        fetch: Fetch::Batch,
        delegated: &["RoleManagement.Read.Directory", "Directory.Read.All"],
        application: &["RoleManagement.Read.Directory", "Directory.Read.All"],
        roles: DIRECTORY,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "conditionalAccessPolicies",
        title: "Conditional Access policies",
        side: Side::Customer,
        path: "identity/conditionalAccess/policies",
        fetch: Fetch::Batch,
        delegated: &["Policy.Read.All"],
        application: &["Policy.Read.All"],
        roles: POLICY,
        licence: Some(Licence::P1),
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "namedLocations",
        title: "Named locations",
        side: Side::Customer,
        path: "identity/conditionalAccess/namedLocations",
        fetch: Fetch::List,
        delegated: &["Policy.Read.All"],
        application: &["Policy.Read.All"],
        roles: POLICY,
        licence: Some(Licence::P1),
        // Conditional Access allows one request per second, so this read costs a round trip of its
        // own a second after the batch; it is worth it only while a policy uses locations.
        fresh_minutes: 6 * HOUR,
        every_run_while: Some(Condition::LocationsInUse),
    },
    Collector {
        name: "securityDefaults",
        title: "Security defaults",
        side: Side::Customer,
        path: "policies/identitySecurityDefaultsEnforcementPolicy",
        fetch: Fetch::Batch,
        delegated: &["Policy.Read.All"],
        application: &["Policy.Read.All"],
        roles: POLICY,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "authorizationPolicy",
        title: "Authorization policy",
        side: Side::Customer,
        path: "policies/authorizationPolicy",
        fetch: Fetch::Batch,
        delegated: &["Policy.Read.All"],
        application: &["Policy.Read.All"],
        roles: POLICY,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "authenticationMethodsPolicy",
        title: "Authentication methods policy",
        side: Side::Customer,
        path: "policies/authenticationMethodsPolicy",
        fetch: Fetch::Batch,
        delegated: &["Policy.Read.All"],
        application: &["Policy.Read.All"],
        roles: POLICY,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "secureScores",
        title: "Secure score",
        side: Side::Customer,
        path: "security/secureScores?$top=1",
        fetch: Fetch::Latest,
        delegated: &["SecurityEvents.Read.All"],
        application: &["SecurityEvents.Read.All"],
        roles: POLICY,
        licence: None,
        fresh_minutes: 12 * HOUR,
        every_run_while: None,
    },
    Collector {
        name: "servicePrincipals",
        title: "Enterprise applications",
        side: Side::Customer,
        path: "servicePrincipals?$select=id,appId,displayName,appOwnerOrganizationId,servicePrincipalType,signInAudience,createdDateTime,accountEnabled,tags,appRoles&$top=999",
        fetch: Fetch::Batch,
        delegated: &["Application.Read.All", "Directory.Read.All"],
        application: &["Application.Read.All", "Directory.Read.All"],
        roles: APPS,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "appRoleAssignments",
        title: "Application permissions granted",
        side: Side::Customer,
        path: "servicePrincipals(appId='{appId}')/appRoleAssignedTo",
        fetch: Fetch::PerResource,
        delegated: &["Application.Read.All", "Directory.Read.All"],
        application: &["Application.Read.All", "Directory.Read.All"],
        roles: APPS,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "applications",
        title: "App registrations",
        side: Side::Customer,
        path: "applications?$select=id,appId,displayName,signInAudience,passwordCredentials,keyCredentials,createdDateTime,requiredResourceAccess&$top=999",
        fetch: Fetch::Batch,
        delegated: &["Application.Read.All", "Directory.Read.All"],
        application: &["Application.Read.All", "Directory.Read.All"],
        roles: APPS,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "oauth2PermissionGrants",
        title: "Delegated consents",
        side: Side::Customer,
        path: "oauth2PermissionGrants?$top=999",
        fetch: Fetch::Batch,
        delegated: &["Directory.Read.All"],
        application: &["Directory.Read.All"],
        roles: APPS,
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "devices",
        title: "Devices",
        side: Side::Customer,
        path: "devices?$select=id,deviceId,displayName,operatingSystem,operatingSystemVersion,trustType,isCompliant,isManaged,registrationDateTime,approximateLastSignInDateTime,accountEnabled&$top=999",
        fetch: Fetch::List,
        delegated: &["Device.Read.All", "Directory.Read.All"],
        application: &["Device.Read.All", "Directory.Read.All"],
        roles: DIRECTORY,
        licence: None,
        fresh_minutes: 6 * HOUR,
        every_run_while: None,
    },
    Collector {
        name: "managedDevices",
        title: "Intune managed devices",
        side: Side::Customer,
        path: "deviceManagement/managedDevices?$top=999",
        fetch: Fetch::List,
        delegated: &["DeviceManagementManagedDevices.Read.All"],
        application: &["DeviceManagementManagedDevices.Read.All"],
        roles: &[GLOBAL_READER, INTUNE_ADMINISTRATOR, GLOBAL_ADMINISTRATOR],
        licence: Some(Licence::Intune),
        fresh_minutes: 6 * HOUR,
        every_run_while: None,
    },
    Collector {
        name: "signIns",
        title: "Sign-in logs (last 7 days)",
        side: Side::Customer,
        path: "auditLogs/signIns?$top=1000",
        fetch: Fetch::List,
        delegated: &["AuditLog.Read.All"],
        application: &["AuditLog.Read.All"],
        roles: REPORTS,
        licence: Some(Licence::P1),
        fresh_minutes: 12 * HOUR,
        every_run_while: None,
    },
    // The partner tenant.
    Collector {
        name: "organization",
        title: "Partner organization",
        side: Side::Partner,
        path: "organization",
        fetch: Fetch::Batch,
        delegated: &["User.Read", "Organization.Read.All", "Directory.Read.All"],
        application: &["Organization.Read.All", "Directory.Read.All"],
        roles: &[],
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "me",
        title: "Signed-in partner user",
        side: Side::Partner,
        path: "me?$select=id,displayName,userPrincipalName,accountEnabled",
        fetch: Fetch::Batch,
        delegated: &["User.Read"],
        application: &[],
        roles: &[],
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "memberOf",
        title: "Groups of the partner user",
        side: Side::Partner,
        path: "me/transitiveMemberOf?$select=id,displayName,securityEnabled",
        fetch: Fetch::Batch,
        delegated: &["GroupMember.Read.All", "Directory.Read.All"],
        application: &[],
        roles: &[],
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "delegatedAdminRelationships",
        title: "GDAP relationships",
        side: Side::Partner,
        path: "tenantRelationships/delegatedAdminRelationships?$top=300",
        fetch: Fetch::List,
        delegated: &["DelegatedAdminRelationship.Read.All"],
        application: &["DelegatedAdminRelationship.Read.All"],
        roles: &[GLOBAL_READER, DIRECTORY_READERS, SECURITY_READER, GLOBAL_ADMINISTRATOR],
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "accessAssignments",
        title: "GDAP access assignments",
        side: Side::Partner,
        path: "tenantRelationships/delegatedAdminRelationships/{id}/accessAssignments",
        fetch: Fetch::PerRelationship,
        delegated: &["DelegatedAdminRelationship.Read.All"],
        application: &["DelegatedAdminRelationship.Read.All"],
        roles: &[GLOBAL_READER, DIRECTORY_READERS, SECURITY_READER, GLOBAL_ADMINISTRATOR],
        licence: None,
        fresh_minutes: HOUR,
        every_run_while: None,
    },
    Collector {
        name: "delegatedAdminCustomers",
        title: "Delegated-admin customers",
        side: Side::Partner,
        path: "tenantRelationships/delegatedAdminCustomers?$top=300",
        fetch: Fetch::List,
        delegated: &["DelegatedAdminRelationship.Read.All"],
        application: &["DelegatedAdminRelationship.Read.All"],
        roles: &[GLOBAL_READER, DIRECTORY_READERS, SECURITY_READER, GLOBAL_ADMINISTRATOR],
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "groups",
        title: "Partner groups (to name the groups GDAP assigns roles to)",
        side: Side::Partner,
        path: "groups?$select=id,displayName,securityEnabled&$top=999",
        fetch: Fetch::Batch,
        delegated: &["GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"],
        application: &[],
        roles: &[],
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
    Collector {
        name: "contracts",
        title: "Contracts (legacy DAP and reseller customers)",
        side: Side::Partner,
        path: "contracts?$top=999",
        fetch: Fetch::Batch,
        delegated: &["Directory.Read.All"],
        application: &["Directory.Read.All"],
        roles: &[],
        licence: None,
        fresh_minutes: 0,
        every_run_while: None,
    },
];

pub fn customer_collectors() -> impl Iterator<Item = &'static Collector> {
    CATALOG.iter().filter(|c| c.side == Side::Customer)
}

pub fn partner_collectors() -> impl Iterator<Item = &'static Collector> {
    CATALOG.iter().filter(|c| c.side == Side::Partner)
}

pub fn find(side: Side, name: &str) -> Option<&'static Collector> {
    CATALOG.iter().find(|c| c.side == side && c.name == name)
}

/// Whether a granted scope or role list allows a collector.
pub fn allowed(granted: &[String], needed: &[&str]) -> bool {
    needed.is_empty() || granted.iter().any(|g| needed.iter().any(|n| n.eq_ignore_ascii_case(g)))
}

/// Roles whose scope covers a collector that the role list of the catalog does not name directly.
pub fn role_suffices(held: &[String], needed: &[&str]) -> bool {
    needed.is_empty() || held.iter().any(|h| needed.iter().any(|n| n.eq_ignore_ascii_case(h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_side_and_declarations_complete() {
        for side in [Side::Customer, Side::Partner] {
            let names: Vec<&str> = CATALOG.iter().filter(|c| c.side == side).map(|c| c.name).collect();
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "duplicate collector names on {side:?}");
        }
        for c in CATALOG {
            assert!(!c.delegated.is_empty(), "{} declares no delegated scope", c.name);
            if c.side == Side::Customer {
                assert!(!c.application.is_empty(), "{} declares no application role", c.name);
                assert!(!c.roles.is_empty(), "{} declares no sufficient role", c.name);
            }
        }
    }

    #[test]
    fn allowed_checks_any_of() {
        assert!(allowed(&["Directory.Read.All".into()], &["User.Read.All", "Directory.Read.All"]));
        assert!(!allowed(&["User.Read".into()], &["User.Read.All"]));
        assert!(allowed(&[], &[]));
    }
}
