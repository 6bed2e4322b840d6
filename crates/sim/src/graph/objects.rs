//! Graph objects built from the world, in the shapes of Microsoft's documented responses.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::catalog;
use crate::faults::{FaultConfig, hostile_name};
use crate::world::{
    AccessAssignment, App, CaPolicy, Contract, Device, GdapRelationship, GrantControl, Group, NamedLocation,
    PolicyUsers, ServicePrincipal, Tenant, User, World,
};

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn name(faults: &FaultConfig, n: &str) -> String {
    hostile_name(faults, n).unwrap_or_else(|| n.to_string())
}

pub(crate) const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

pub(crate) const USER_PROPERTIES: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
    "accountEnabled",
    "userType",
    "assignedLicenses",
    "createdDateTime",
    "department",
    "onPremisesSyncEnabled",
    "signInActivity",
    "usageLocation",
    "lastPasswordChangeDateTime",
    "proxyAddresses",
    "companyName",
    "country",
    "city",
    "identities",
    "creationType",
    "externalUserState",
    "otherMails",
    "employeeId",
];

/// The full user; `select` trims it, and without `$select` Graph returns the default property set.
pub(crate) fn user(u: &User, tenant: &Tenant, faults: &FaultConfig, with_sign_in: bool) -> Value {
    let mail = if u.guest { Value::Null } else { json!(u.upn) };
    let mut v = json!({
        "businessPhones": [],
        "displayName": name(faults, &u.display_name),
        "givenName": u.given_name,
        "jobTitle": u.job_title,
        "mail": mail,
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": "en-US",
        "surname": u.surname,
        "userPrincipalName": u.upn,
        "id": u.id.to_string(),
        "accountEnabled": u.enabled,
        "userType": if u.guest { "Guest" } else { "Member" },
        "assignedLicenses": u.licences.iter().map(|s| json!({"disabledPlans": [], "skuId": s})).collect::<Vec<_>>(),
        "createdDateTime": ts(u.created),
        "department": u.department,
        "onPremisesSyncEnabled": null,
        "usageLocation": tenant.country,
        "lastPasswordChangeDateTime": ts(u.password_changed),
        "proxyAddresses": if u.guest { vec![] } else { vec![format!("SMTP:{}", u.upn)] },
        "companyName": null,
        "country": null,
        "city": null,
        "identities": [{"signInType": "userPrincipalName", "issuer": tenant.domain, "issuerAssignedId": u.upn}],
        "creationType": null,
        "externalUserState": if u.guest { json!("Accepted") } else { Value::Null },
        "otherMails": [],
        "employeeId": null,
    });
    if with_sign_in {
        let last = u.last_sign_in.map(ts);
        v["signInActivity"] = json!({
            "lastSignInDateTime": last,
            "lastSignInRequestId": u.last_sign_in.map(|_| Uuid::new_v5(&u.id, b"signin").to_string()),
            "lastNonInteractiveSignInDateTime": last,
            "lastNonInteractiveSignInRequestId": u.last_sign_in.map(|_| Uuid::new_v5(&u.id, b"ni").to_string()),
            "lastSuccessfulSignInDateTime": last,
            "lastSuccessfulSignInRequestId": u.last_sign_in.map(|_| Uuid::new_v5(&u.id, b"ok").to_string()),
        });
    }
    v
}

/// The default property set of a user, built directly: what `GET /users` returns without `$select`, and
/// the same object as `user_default(user(..))` at a third of the cost, which matters for 999-user pages.
pub(crate) fn user_default_object(u: &User, faults: &FaultConfig) -> Value {
    let mut m = serde_json::Map::with_capacity(USER_DEFAULT.len());
    m.insert("businessPhones".into(), Value::Array(Vec::new()));
    m.insert("displayName".into(), Value::String(name(faults, &u.display_name)));
    m.insert("givenName".into(), Value::String(u.given_name.clone()));
    m.insert("jobTitle".into(), u.job_title.clone().map_or(Value::Null, Value::String));
    m.insert("mail".into(), if u.guest { Value::Null } else { Value::String(u.upn.clone()) });
    m.insert("mobilePhone".into(), Value::Null);
    m.insert("officeLocation".into(), Value::Null);
    m.insert("preferredLanguage".into(), Value::String("en-US".into()));
    m.insert("surname".into(), Value::String(u.surname.clone()));
    m.insert("userPrincipalName".into(), Value::String(u.upn.clone()));
    m.insert("id".into(), Value::String(u.id.to_string()));
    Value::Object(m)
}

/// Keeps only the default property set of a user.
pub(crate) fn user_default(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(k, _)| USER_DEFAULT.contains(&k.as_str())).collect())
        }
        other => other,
    }
}

pub(crate) const GROUP_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "description",
    "securityEnabled",
    "mailEnabled",
    "mail",
    "mailNickname",
    "groupTypes",
    "createdDateTime",
    "isAssignableToRole",
    "membershipRule",
    "visibility",
    "members",
];

pub(crate) fn group(g: &Group, tenant: &Tenant, faults: &FaultConfig) -> Value {
    let nick: String = g.display_name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    json!({
        "id": g.id.to_string(),
        "deletedDateTime": null,
        "createdDateTime": ts(g.created),
        "description": g.description,
        "displayName": name(faults, &g.display_name),
        "groupTypes": if g.mail_enabled { vec!["Unified"] } else { vec![] },
        "isAssignableToRole": null,
        "mail": if g.mail_enabled { json!(format!("{nick}@{}", tenant.domain)) } else { Value::Null },
        "mailEnabled": g.mail_enabled,
        "mailNickname": nick,
        "membershipRule": null,
        "securityEnabled": g.security_enabled,
        "visibility": if g.mail_enabled { json!("Private") } else { Value::Null },
    })
}

/// A directory object reference as `members` and `memberOf` return it.
pub(crate) fn member_ref(tenant: &Tenant, id: Uuid, faults: &FaultConfig) -> Option<Value> {
    if let Some(u) = tenant.user(id) {
        let mut v = user_default(user(u, tenant, faults, false));
        v["@odata.type"] = json!("#microsoft.graph.user");
        return Some(v);
    }
    tenant.group(id).map(|g| {
        let mut v = group(g, tenant, faults);
        v["@odata.type"] = json!("#microsoft.graph.group");
        v
    })
}

pub(crate) fn organization(t: &Tenant, _world: &World, _now: DateTime<Utc>) -> Value {
    let domains: Vec<Value> = t
        .domains()
        .map(|d| {
            json!({
                "capabilities": if d == t.domain { "Email, OfficeCommunicationsOnline" } else { "Email" },
                "isDefault": d == t.custom_domains.first().map(String::as_str).unwrap_or(&t.domain),
                "isInitial": d == t.domain,
                "name": d,
                "type": "Managed",
            })
        })
        .collect();
    let plans: Vec<Value> = t
        .licences
        .iter()
        .flat_map(|l| l.sku.plans.iter())
        .map(|p| json!({"assignedDateTime": ts(t.created), "capabilityStatus": "Enabled", "service": p.name, "servicePlanId": p.id}))
        .collect();
    json!({
        "id": t.id.to_string(),
        "deletedDateTime": null,
        "businessPhones": ["+1 425 555 0100"],
        "city": "Redmond",
        "country": null,
        "countryLetterCode": t.country,
        "createdDateTime": ts(t.created),
        "displayName": t.display_name,
        "marketingNotificationEmails": [],
        "onPremisesLastSyncDateTime": null,
        "onPremisesSyncEnabled": null,
        "partnerTenantType": if t.kind == crate::world::TenantKind::Partner { json!("resellerPartnerDelegatedAdmin") } else { Value::Null },
        "postalCode": "98052",
        "preferredLanguage": "en",
        "securityComplianceNotificationMails": [],
        "securityComplianceNotificationPhones": [],
        "state": "WA",
        "street": "1 Simulated Way",
        "technicalNotificationMails": [format!("admin@{}", t.domain)],
        "tenantType": "AAD",
        "directorySizeQuota": { "used": t.users.len() + t.groups.len() + t.devices.len(), "total": 300000 },
        "assignedPlans": plans,
        "privacyProfile": null,
        "provisionedPlans": [],
        "verifiedDomains": domains,
        "defaultUsageLocation": t.country,
        "isMultipleDataLocationsForServicesEnabled": null,
    })
}

pub(crate) fn domain(t: &Tenant, d: &str) -> Value {
    let initial = d == t.domain;
    json!({
        "authenticationType": "Managed",
        "availabilityStatus": null,
        "id": d,
        "isAdminManaged": true,
        "isDefault": d == t.custom_domains.first().map(String::as_str).unwrap_or(&t.domain),
        "isInitial": initial,
        "isRoot": true,
        "isVerified": true,
        "supportedServices": if initial { vec!["Email", "OfficeCommunicationsOnline"] } else { vec!["Email", "Intune"] },
        "passwordValidityPeriodInDays": 2147483647,
        "passwordNotificationWindowInDays": 14,
        "state": null,
    })
}

pub(crate) fn subscribed_sku(t: &Tenant, l: &crate::world::Licence) -> Value {
    let consumed = t.users.iter().filter(|u| u.licences.iter().any(|s| s == l.sku.id)).count();
    json!({
        "accountName": t.domain.trim_end_matches(".onmicrosoft.com"),
        "accountId": t.id.to_string(),
        "appliesTo": "User",
        "capabilityStatus": "Enabled",
        "consumedUnits": consumed,
        "id": format!("{}_{}", t.id, l.sku.id),
        "prepaidUnits": { "enabled": l.seats, "suspended": 0, "warning": 0, "lockedOut": 0 },
        "servicePlans": l.sku.plans.iter().map(|p| json!({"servicePlanId": p.id, "servicePlanName": p.name, "provisioningStatus": "Success", "appliesTo": "User"})).collect::<Vec<_>>(),
        "skuId": l.sku.id,
        "skuPartNumber": l.sku.part_number,
        "subscriptionIds": [Uuid::new_v5(&t.id, l.sku.id.as_bytes()).to_string()],
    })
}

pub(crate) fn subscription(t: &Tenant, l: &crate::world::Licence, now: DateTime<Utc>) -> Value {
    let id = Uuid::new_v5(&t.id, l.sku.id.as_bytes());
    let anniversary = t.created + Duration::days(365 * ((now - t.created).num_days() / 365 + 1));
    json!({
        "id": id.to_string(),
        "commerceSubscriptionId": Uuid::new_v5(&id, b"commerce").to_string(),
        "createdDateTime": ts(t.created),
        "isTrial": false,
        "nextLifecycleDateTime": ts(anniversary),
        "ownerId": null,
        "ownerTenantId": null,
        "ownerType": null,
        "serviceStatus": l.sku.plans.iter().map(|p| json!({"servicePlanId": p.id, "servicePlanName": p.name, "provisioningStatus": "Success", "appliesTo": "User"})).collect::<Vec<_>>(),
        "skuId": l.sku.id,
        "skuPartNumber": l.sku.part_number,
        "status": "Enabled",
        "totalLicenses": l.seats,
    })
}

pub(crate) fn role_definition(r: &catalog::RoleTemplate) -> Value {
    json!({
        "id": r.id,
        "description": r.description,
        "displayName": r.name,
        "isBuiltIn": true,
        "isEnabled": true,
        "resourceScopes": ["/"],
        "templateId": r.id,
        "version": "1",
        "rolePermissions": [{ "allowedResourceActions": [format!("microsoft.directory/{}/allProperties/read", r.name.replace(' ', "").to_ascii_lowercase())], "condition": null }],
        "inheritsPermissionsFrom": [],
    })
}

pub(crate) fn directory_role_id(tenant: Uuid, template: &str) -> Uuid {
    Uuid::new_v5(&tenant, format!("directoryRole/{template}").as_bytes())
}

/// Role assignments of a tenant: one per home user and role, and one per GDAP access assignment and role,
/// whose principal is the partner's security group (a foreign principal).
pub(crate) struct Assignment {
    pub id: Uuid,
    pub principal: Value,
    pub principal_id: Uuid,
    pub role: String,
}

pub(crate) fn role_assignments(world: &World, t: &Tenant, now: DateTime<Utc>, faults: &FaultConfig) -> Vec<Assignment> {
    let mut out = Vec::new();
    for u in &t.users {
        for r in &u.roles {
            let mut p = user_default(user(u, t, faults, false));
            p["@odata.type"] = json!("#microsoft.graph.user");
            out.push(Assignment {
                id: Uuid::new_v5(&t.id, format!("{}/{r}", u.id).as_bytes()),
                principal: p,
                principal_id: u.id,
                role: r.clone(),
            });
        }
    }
    for rel in world.gdap.iter().filter(|r| r.customer == t.id && r.status_at(now) == crate::world::GdapStatus::Active)
    {
        let Some(partner) = world.tenant(rel.partner) else { continue };
        for a in &rel.assignments {
            let Some(g) = partner.group(a.group) else { continue };
            for r in a.roles.iter().filter(|r| rel.roles.contains(r)) {
                out.push(Assignment {
                    id: Uuid::new_v5(&t.id, format!("{}/{r}", a.id).as_bytes()),
                    principal: json!({
                        "@odata.type": "#microsoft.graph.group",
                        "id": g.id.to_string(),
                        "displayName": g.display_name,
                        "organizationId": partner.id.to_string(),
                        "securityEnabled": true,
                    }),
                    principal_id: g.id,
                    role: r.clone(),
                });
            }
        }
    }
    out
}

pub(crate) fn role_assignment(a: &Assignment, expand: bool) -> Value {
    let mut v = json!({
        "id": a.id.to_string(),
        "principalId": a.principal_id.to_string(),
        "principalOrganizationId": a.principal.get("organizationId").cloned().unwrap_or(Value::Null),
        "directoryScopeId": "/",
        "resourceScope": "/",
        "roleDefinitionId": a.role,
    });
    if expand {
        v["principal"] = a.principal.clone();
    }
    v
}

pub(crate) fn directory_role(t: &Tenant, r: &catalog::RoleTemplate) -> Value {
    json!({
        "id": directory_role_id(t.id, r.id).to_string(),
        "deletedDateTime": null,
        "description": r.description,
        "displayName": r.name,
        "roleTemplateId": r.id,
    })
}

/// Directory roles are activated in a tenant once someone holds them; Global Administrator always is.
pub(crate) fn activated_roles(t: &Tenant) -> Vec<&'static catalog::RoleTemplate> {
    catalog::ROLE_TEMPLATES
        .iter()
        .filter(|r| r.id == catalog::GLOBAL_ADMINISTRATOR || t.users.iter().any(|u| u.roles.iter().any(|x| x == r.id)))
        .collect()
}

pub(crate) fn ca_policy(p: &CaPolicy, t: &Tenant) -> Value {
    let (include_users, include_roles) = match &p.users {
        PolicyUsers::All => (vec!["All".to_string()], vec![]),
        PolicyUsers::Roles(r) => (vec![], r.clone()),
        PolicyUsers::Users(u) => (u.iter().map(Uuid::to_string).collect(), vec![]),
    };
    let locations = match &p.outside_locations {
        None => Value::Null,
        Some(l) => {
            json!({ "includeLocations": ["All"], "excludeLocations": l.iter().map(Uuid::to_string).collect::<Vec<_>>() })
        }
    };
    let exclude_guests = if p.exclude_service_providers {
        json!({ "guestOrExternalUserTypes": "serviceProvider", "externalTenants": { "@odata.type": "#microsoft.graph.conditionalAccessAllExternalTenants", "membershipKind": "all" } })
    } else {
        Value::Null
    };
    let _ = t;
    let grant_controls = match p.grant {
        GrantControl::None => Value::Null,
        GrantControl::Mfa | GrantControl::Block => json!({
            "operator": "OR",
            "builtInControls": [if p.grant == GrantControl::Mfa { "mfa" } else { "block" }],
            "customAuthenticationFactors": [],
            "termsOfUse": [],
            "authenticationStrength": null,
        }),
    };
    json!({
        "id": p.id.to_string(),
        "templateId": null,
        "displayName": p.display_name,
        "createdDateTime": ts(p.created),
        "modifiedDateTime": ts(p.modified),
        "state": p.state.as_str(),
        "sessionControls": p.sign_in_frequency_hours.map(|h| json!({
            "applicationEnforcedRestrictions": null, "cloudAppSecurity": null, "disableResilienceDefaults": null, "persistentBrowser": null,
            "signInFrequency": { "value": h, "type": "hours", "authenticationType": "primaryAndSecondaryAuthentication", "frequencyInterval": "timeBased", "isEnabled": true }
        })),
        "conditions": {
            "userRiskLevels": [],
            "signInRiskLevels": [],
            "clientAppTypes": ["all"],
            "platforms": null,
            "devices": null,
            "applications": { "includeApplications": ["All"], "excludeApplications": [], "includeUserActions": [], "includeAuthenticationContextClassReferences": [] },
            "users": {
                "includeUsers": include_users,
                "excludeUsers": p.exclude_users.iter().map(Uuid::to_string).collect::<Vec<_>>(),
                "includeGroups": [],
                "excludeGroups": [],
                "includeRoles": include_roles,
                "excludeRoles": [],
                "includeGuestsOrExternalUsers": null,
                "excludeGuestsOrExternalUsers": exclude_guests,
            },
            "locations": locations,
        },
        "grantControls": grant_controls,
    })
}

pub(crate) fn named_location(l: &NamedLocation) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "id": l.id.to_string(),
        "displayName": l.display_name,
        "modifiedDateTime": ts(l.created),
        "createdDateTime": ts(l.created),
        "isTrusted": l.trusted,
        "ipRanges": l.ranges.iter().map(|r| json!({
            "@odata.type": if r.addr.is_ipv4() { "#microsoft.graph.iPv4CidrRange" } else { "#microsoft.graph.iPv6CidrRange" },
            "cidrAddress": r.to_string(),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn security_defaults(t: &Tenant) -> Value {
    json!({
        "id": "00000000-0000-0000-0000-000000000005",
        "displayName": "Security Defaults",
        "description": "Security defaults is a set of basic identity security mechanisms recommended by Microsoft. When enabled, these recommendations will be automatically enforced in your organization. Administrators and users will be better protected from common identity related attacks.",
        "isEnabled": t.security_defaults,
    })
}

pub(crate) fn authorization_policy(t: &Tenant) -> Value {
    json!({
        "id": "authorizationPolicy",
        "allowInvitesFrom": "everyone",
        "allowedToSignUpEmailBasedSubscriptions": true,
        "allowedToUseSSPR": true,
        "allowEmailVerifiedUsersToJoinOrganization": false,
        "allowUserConsentForRiskyApps": null,
        "blockMsolPowerShell": false,
        "description": "Used to manage authorization related settings across the company.",
        "displayName": "Authorization Policy",
        "enabledPreviewFeatures": [],
        "guestUserRoleId": "10dae51f-b6af-4016-8d66-8c2a99b929b3",
        "permissionGrantPolicyIdsAssignedToDefaultUserRole": if t.user_consent_allowed { vec!["ManagePermissionGrantsForSelf.microsoft-user-default-legacy"] } else { vec![] },
        "defaultUserRolePermissions": {
            "allowedToCreateApps": true,
            "allowedToCreateSecurityGroups": true,
            "allowedToCreateTenants": true,
            "allowedToReadBitlockerKeysForOwnedDevice": true,
            "allowedToReadOtherUsers": true,
        },
    })
}

pub(crate) fn authentication_methods_policy(t: &Tenant) -> Value {
    let method = |id: &str, state: &str| json!({"@odata.type": format!("#microsoft.graph.{id}AuthenticationMethodConfiguration"), "id": id, "state": state, "excludeTargets": []});
    json!({
        "id": "authenticationMethodsPolicy",
        "displayName": "Authentication Methods Policy",
        "description": "The tenant-wide policy that controls which authentication methods are allowed in the tenant, authentication method registration requirements, and self-service password reset settings",
        "lastModifiedDateTime": ts(t.created),
        "policyVersion": "1.5",
        "policyMigrationState": "migrationComplete",
        "registrationEnforcement": { "authenticationMethodsRegistrationCampaign": { "snoozeDurationInDays": 1, "state": "default", "excludeTargets": [], "includeTargets": [{"id": "all_users", "targetType": "group", "targetedAuthenticationMethod": "microsoftAuthenticator"}] } },
        "authenticationMethodConfigurations": [
            method("Fido2", "disabled"),
            method("MicrosoftAuthenticator", "enabled"),
            method("Sms", "disabled"),
            method("TemporaryAccessPass", "disabled"),
            method("SoftwareOath", "enabled"),
            method("Email", "enabled"),
        ],
    })
}

pub(crate) fn registration_details(u: &User, _t: &Tenant) -> Value {
    let methods: Vec<&str> =
        if u.mfa_registered() { vec!["microsoftAuthenticatorPush", "softwareOneTimePasscode"] } else { vec![] };
    json!({
        "id": u.id.to_string(),
        "userPrincipalName": u.upn,
        "userDisplayName": u.display_name,
        "userType": if u.guest { "guest" } else { "member" },
        "isAdmin": !u.roles.is_empty(),
        "isSsprRegistered": u.mfa_registered(),
        "isSsprEnabled": true,
        "isSsprCapable": u.mfa_registered(),
        "isMfaRegistered": u.mfa_registered(),
        "isMfaCapable": u.mfa_registered() && u.enabled,
        "isPasswordlessCapable": false,
        "isSystemPreferredAuthenticationMethodEnabled": true,
        "lastUpdatedDateTime": ts(u.password_changed),
        "methodsRegistered": methods,
        "systemPreferredAuthenticationMethods": if u.mfa_registered() { vec!["push"] } else { vec![] },
        "userPreferredMethodForSecondaryAuthentication": if u.mfa_registered() { "push" } else { "none" },
    })
}

pub(crate) fn secure_score(t: &Tenant, now: DateTime<Utc>, day: i64) -> Value {
    let (current, max) = t.secure_score;
    let drift = (day as f64) * 0.5;
    json!({
        "id": format!("{}_{}", t.id, (now - Duration::days(day)).format("%Y-%m-%d")),
        "azureTenantId": t.id.to_string(),
        "activeUserCount": t.users.iter().filter(|u| u.enabled).count(),
        "createdDateTime": ts((now - Duration::days(day)).date_naive().and_hms_opt(0, 0, 0).map(|d| d.and_utc()).unwrap_or(now)),
        "currentScore": (current - drift).max(0.0),
        "enabledServices": ["HasExchange", "HasSharePoint", "HasOD4B"],
        "licensedUserCount": t.users.iter().filter(|u| !u.licences.is_empty()).count(),
        "maxScore": max,
        "vendorInformation": { "provider": "SecureScore", "providerVersion": null, "subProvider": null, "vendor": "Microsoft" },
        "averageComparativeScores": [{ "basis": "AllTenants", "averageScore": 38.5 }],
        "controlScores": [],
    })
}

pub(crate) fn service_principal(sp: &ServicePrincipal, app: Option<&App>, t: &Tenant) -> Value {
    json!({
        "id": sp.id.to_string(),
        "accountEnabled": true,
        "appDisplayName": sp.display_name,
        "appId": sp.app_id.to_string(),
        "appOwnerOrganizationId": app.map(|a| a.home_tenant.to_string()),
        "appRoleAssignmentRequired": false,
        "createdDateTime": ts(sp.created),
        "displayName": sp.display_name,
        "servicePrincipalType": "Application",
        "signInAudience": if app.is_some_and(|a| a.multi_tenant) { "AzureADMultipleOrgs" } else { "AzureADMyOrg" },
        "servicePrincipalNames": [sp.app_id.to_string()],
        "tags": if app.is_some_and(|a| a.home_tenant != t.id) { vec!["WindowsAzureActiveDirectoryIntegratedApp"] } else { vec![] },
        "appRoles": [],
        "oauth2PermissionScopes": [],
    })
}

/// Microsoft Graph's own service principal, present in every tenant, with the application
/// permissions it defines as app roles: the common ones and every one an app of the world asks for or
/// holds, so that a client can name any assignment it reads.
pub(crate) fn graph_service_principal(t: &Tenant, world: &World) -> Value {
    let mut values: Vec<&str> = catalog::COMMON_APPLICATION_PERMISSIONS.to_vec();
    values.extend(world.apps.iter().flat_map(|a| a.application.iter().map(String::as_str)));
    values.extend(t.service_principals.iter().flat_map(|sp| sp.application.iter().map(String::as_str)));
    values.sort_unstable();
    values.dedup();
    let roles: Vec<Value> = values
        .iter()
        .map(|v| {
            json!({
                "allowedMemberTypes": ["Application"],
                "description": format!("Allows the app to use {v} without a signed-in user."),
                "displayName": *v,
                "id": catalog::permission_id(v).to_string(),
                "isEnabled": true,
                "origin": "Application",
                "value": *v,
            })
        })
        .collect();
    json!({
        "id": graph_sp_id(t.id).to_string(),
        "accountEnabled": true,
        "appDisplayName": "Microsoft Graph",
        "appId": catalog::GRAPH_APP_ID,
        "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
        "displayName": "Microsoft Graph",
        "servicePrincipalType": "Application",
        "signInAudience": "AzureADMultipleOrgs",
        "servicePrincipalNames": [catalog::GRAPH_APP_ID, "https://graph.microsoft.com"],
        "tags": [],
        "createdDateTime": ts(t.created),
        "appRoleAssignmentRequired": false,
        "appRoles": roles,
        "oauth2PermissionScopes": [],
    })
}

pub(crate) fn graph_sp_id(tenant: Uuid) -> Uuid {
    Uuid::new_v5(&tenant, b"graph-service-principal")
}

pub(crate) fn application(a: &App) -> Value {
    json!({
        "id": a.object_id.to_string(),
        "appId": a.client_id.to_string(),
        "createdDateTime": ts(a.created),
        "displayName": a.display_name,
        "isFallbackPublicClient": a.public_client,
        "signInAudience": if a.multi_tenant { "AzureADMultipleOrgs" } else { "AzureADMyOrg" },
        "publicClient": { "redirectUris": if a.public_client { a.redirect_uris.clone() } else { vec![] } },
        "web": { "redirectUris": if a.public_client { vec![] } else { a.redirect_uris.clone() } },
        "passwordCredentials": a.secrets.iter().map(|s| json!({
            "customKeyIdentifier": null,
            "displayName": s.display_name,
            "endDateTime": ts(s.end),
            "hint": s.value.chars().take(3).collect::<String>(),
            "keyId": s.key_id.to_string(),
            "secretText": null,
            "startDateTime": ts(s.start),
        })).collect::<Vec<_>>(),
        "keyCredentials": a.certificates.iter().map(|c| json!({
            "customKeyIdentifier": hex::encode_upper(&c.thumbprint_sha1),
            "displayName": c.display_name,
            "endDateTime": ts(c.end),
            "keyId": c.key_id.to_string(),
            "startDateTime": ts(c.start),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "key": null,
        })).collect::<Vec<_>>(),
        "requiredResourceAccess": [{
            "resourceAppId": catalog::GRAPH_APP_ID,
            "resourceAccess": a.delegated.iter().map(|s| json!({"id": catalog::permission_id(s).to_string(), "type": "Scope"}))
                .chain(a.application.iter().map(|s| json!({"id": catalog::permission_id(s).to_string(), "type": "Role"})))
                .collect::<Vec<_>>(),
        }],
    })
}

pub(crate) fn permission_grant(sp: &ServicePrincipal, t: &Tenant) -> Value {
    json!({
        "id": URL_SAFE_ID(sp.id, t.id),
        "clientId": sp.id.to_string(),
        "consentType": "AllPrincipals",
        "principalId": null,
        "resourceId": graph_sp_id(t.id).to_string(),
        "scope": sp.delegated.join(" "),
    })
}

#[allow(non_snake_case)]
fn URL_SAFE_ID(a: Uuid, b: Uuid) -> String {
    use base64::Engine;
    let mut bytes = a.as_bytes().to_vec();
    bytes.extend_from_slice(&b.as_bytes()[..8]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn app_role_assignment(sp: &ServicePrincipal, role: &str, t: &Tenant) -> Value {
    json!({
        "id": URL_SAFE_ID(Uuid::new_v5(&sp.id, role.as_bytes()), t.id),
        "appRoleId": catalog::permission_id(role).to_string(),
        "createdDateTime": ts(sp.consent_changed),
        "deletedDateTime": null,
        "principalDisplayName": sp.display_name,
        "principalId": sp.id.to_string(),
        "principalType": "ServicePrincipal",
        "resourceDisplayName": "Microsoft Graph",
        "resourceId": graph_sp_id(t.id).to_string(),
    })
}

pub(crate) fn device(d: &Device) -> Value {
    json!({
        "id": d.id.to_string(),
        "accountEnabled": true,
        "approximateLastSignInDateTime": ts(d.last_sign_in),
        "deviceId": d.device_id.to_string(),
        "displayName": d.display_name,
        "isCompliant": d.compliant,
        "isManaged": d.managed,
        "operatingSystem": d.os,
        "operatingSystemVersion": d.os_version,
        "registrationDateTime": ts(d.registered),
        "trustType": d.trust_type,
        "profileType": "RegisteredDevice",
    })
}

pub(crate) fn managed_device(d: &Device, t: &Tenant) -> Value {
    let owner = d.owner.and_then(|o| t.user(o));
    json!({
        "id": Uuid::new_v5(&d.id, b"intune").to_string(),
        "azureADDeviceId": d.device_id.to_string(),
        "deviceName": d.display_name,
        "complianceState": if d.compliant { "compliant" } else { "noncompliant" },
        "enrolledDateTime": ts(d.registered),
        "lastSyncDateTime": ts(d.last_sign_in),
        "managedDeviceOwnerType": "company",
        "managementAgent": "mdm",
        "operatingSystem": d.os,
        "osVersion": d.os_version,
        "isEncrypted": d.compliant,
        "userPrincipalName": owner.map(|u| u.upn.clone()),
        "userId": owner.map(|u| u.id.to_string()),
        "model": "Simulated device",
        "manufacturer": "Contoso Hardware",
        "serialNumber": d.device_id.simple().to_string()[..12].to_ascii_uppercase(),
    })
}

pub(crate) fn sign_in(u: &User, t: &Tenant, n: usize, now: DateTime<Utc>) -> Value {
    let at = u.last_sign_in.unwrap_or(now) - Duration::hours(n as i64 * 7);
    let id = Uuid::new_v5(&u.id, format!("signin/{n}").as_bytes());
    json!({
        "id": id.to_string(),
        "createdDateTime": ts(at),
        "userDisplayName": u.display_name,
        "userPrincipalName": u.upn,
        "userId": u.id.to_string(),
        "appId": "00000002-0000-0ff1-ce00-000000000000",
        "appDisplayName": "Office 365 Exchange Online",
        "ipAddress": format!("198.51.100.{}", (u.id.as_bytes()[0] as usize + n) % 250 + 1),
        "clientAppUsed": "Browser",
        "conditionalAccessStatus": if t.ca_policies.is_empty() { "notApplied" } else { "success" },
        "isInteractive": n.is_multiple_of(2),
        "riskDetail": "none",
        "riskLevelAggregated": "none",
        "riskLevelDuringSignIn": "none",
        "riskState": "none",
        "resourceDisplayName": "Office 365 Exchange Online",
        "status": { "errorCode": 0, "failureReason": "Other.", "additionalDetails": null },
        "location": { "city": "Redmond", "state": "Washington", "countryOrRegion": "US" },
        "deviceDetail": { "deviceId": "", "displayName": "", "operatingSystem": "Windows10", "browser": "Edge 131.0.0", "isCompliant": false, "isManaged": false, "trustType": "" },
    })
}

pub(crate) fn gdap_relationship(r: &GdapRelationship, world: &World, now: DateTime<Utc>) -> Value {
    let customer = world.tenant(r.customer);
    json!({
        "@odata.type": "#microsoft.graph.delegatedAdminRelationship",
        "@odata.etag": format!("W/\"JyI{}Jw==\"", &r.modified.timestamp().to_string()),
        "id": r.id,
        "displayName": r.display_name,
        "duration": format!("P{}D", r.duration_days),
        "customer": { "tenantId": r.customer.to_string(), "displayName": customer.map(|c| c.display_name.clone()) },
        "accessDetails": { "unifiedRoles": r.roles.iter().map(|id| json!({"roleDefinitionId": id})).collect::<Vec<_>>() },
        "status": r.status_at(now).as_str(),
        "autoExtendDuration": r.auto_extend,
        "createdDateTime": ts(r.created),
        "lastModifiedDateTime": ts(r.modified),
        "activatedDateTime": r.activated.map(ts),
        "endDateTime": r.end.map(ts),
    })
}

pub(crate) fn access_assignment(a: &AccessAssignment, r: &GdapRelationship, now: DateTime<Utc>) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.delegatedAdminAccessAssignment",
        "@odata.etag": format!("W/\"JyI{}Jw==\"", a.created.timestamp()),
        "id": a.id.to_string(),
        "status": if r.status_at(now) == crate::world::GdapStatus::Active { "active" } else { "deleted" },
        "createdDateTime": ts(a.created),
        "lastModifiedDateTime": ts(a.created),
        "accessContainer": { "accessContainerId": a.group.to_string(), "accessContainerType": "securityGroup" },
        "accessDetails": { "unifiedRoles": a.roles.iter().map(|id| json!({"roleDefinitionId": id})).collect::<Vec<_>>() },
    })
}

pub(crate) fn delegated_admin_customer(t: &Tenant) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.delegatedAdminCustomer",
        "@odata.etag": format!("W/\"JyI{}Jw==\"", t.created.timestamp()),
        "id": t.id.to_string(),
        "tenantId": t.id.to_string(),
        "displayName": t.display_name,
    })
}

pub(crate) fn contract(c: &Contract, t: &Tenant) -> Value {
    json!({
        "id": c.id.to_string(),
        "deletedDateTime": null,
        "contractType": "ResellerPartner",
        "customerId": t.id.to_string(),
        "defaultDomainName": t.custom_domains.first().cloned().unwrap_or_else(|| t.domain.clone()),
        "displayName": t.display_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_user_object_is_the_default_projection_of_the_full_one() {
        let world = crate::world::file::demo(Utc::now()).unwrap();
        let plain = FaultConfig::default();
        let hostile = FaultConfig { unusual_unicode: true, ..FaultConfig::default() };
        let mut checked = 0;
        for t in &world.tenants {
            for u in t.users.iter().take(20) {
                for f in [&plain, &hostile] {
                    let fast = user_default_object(u, f);
                    let slow = user_default(user(u, t, f, false));
                    assert_eq!(fast, slow, "{}", u.upn);
                    // The key order is Microsoft's too.
                    assert_eq!(keys_of(&fast), keys_of(&slow));
                    checked += 1;
                }
            }
        }
        assert!(checked > 200);
        assert!(world.tenants.iter().flat_map(|t| &t.users).any(|u| u.guest), "guests are covered");
    }

    fn keys_of(v: &Value) -> Vec<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }
}
