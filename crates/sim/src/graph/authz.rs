//! Authorization as Microsoft Graph decides it: the token's scopes or app roles, the caller's directory
//! roles in the tenant (home roles, or GDAP roles for a partner user), the tenant's licences, and the
//! MFA claim that partner APIs insist on.

use chrono::{DateTime, Utc};

use crate::catalog::{self, Area};
use crate::errors::GraphError;
use crate::state::AccessClaims;
use crate::world::{Tenant, World};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Licence {
    None,
    P1,
    Intune,
}

/// Throttling classes with their own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    Directory,
    Reports,
    ConditionalAccess,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub area: Area,
    pub delegated: &'static [&'static str],
    pub application: &'static [&'static str],
    pub licence: Licence,
    pub cost: u32,
    pub class: Class,
    /// Partner APIs reject delegated tokens whose `amr` lacks MFA.
    pub mfa_claim: bool,
}

const DIR: &[&str] = &["Directory.Read.All", "Directory.ReadWrite.All"];

macro_rules! scopes {
    ($($s:literal),* $(,)?) => { &[$($s,)* "Directory.Read.All", "Directory.ReadWrite.All"] };
}

pub(crate) const ORGANIZATION: Rule = Rule {
    area: Area::Basic,
    delegated: scopes!["User.Read", "Organization.Read.All", "Organization.ReadWrite.All"],
    application: scopes!["Organization.Read.All", "Organization.ReadWrite.All"],
    licence: Licence::None,
    cost: 1,
    class: Class::Directory,
    mfa_claim: false,
};
pub(crate) const DOMAINS: Rule = Rule {
    area: Area::Basic,
    delegated: scopes!["Domain.Read.All", "Domain.ReadWrite.All"],
    application: scopes!["Domain.Read.All", "Domain.ReadWrite.All"],
    ..ORGANIZATION
};
pub(crate) const LICENCES: Rule = Rule {
    area: Area::Licences,
    delegated: scopes!["LicenseAssignment.Read.All", "Organization.Read.All", "LicenseAssignment.ReadWrite.All"],
    application: scopes!["LicenseAssignment.Read.All", "Organization.Read.All"],
    cost: 3,
    ..ORGANIZATION
};
pub(crate) const USERS: Rule = Rule {
    area: Area::Users,
    delegated: scopes!["User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All"],
    application: scopes!["User.Read.All", "User.ReadWrite.All"],
    cost: 2,
    ..ORGANIZATION
};
pub(crate) const ME: Rule = Rule {
    area: Area::Basic,
    delegated: scopes!["User.Read", "User.Read.All"],
    application: DIR,
    cost: 1,
    ..ORGANIZATION
};
pub(crate) const MEMBER_OF: Rule = Rule {
    area: Area::Basic,
    delegated: scopes!["User.Read", "GroupMember.Read.All", "Group.Read.All"],
    application: scopes!["GroupMember.Read.All", "Group.Read.All"],
    cost: 2,
    ..ORGANIZATION
};
pub(crate) const GROUPS: Rule = Rule {
    area: Area::Groups,
    delegated: scopes!["GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All"],
    application: scopes!["GroupMember.Read.All", "Group.Read.All"],
    cost: 2,
    ..ORGANIZATION
};
pub(crate) const GROUP_MEMBERS: Rule = Rule { cost: 3, ..GROUPS };
pub(crate) const GROUP_TRANSITIVE: Rule = Rule { cost: 5, ..GROUPS };
pub(crate) const ROLES: Rule = Rule {
    area: Area::Roles,
    delegated: scopes![
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "RoleManagement.ReadWrite.Directory"
    ],
    application: scopes!["RoleManagement.Read.Directory", "RoleManagement.Read.All"],
    ..ORGANIZATION
};
pub(crate) const POLICIES: Rule = Rule {
    area: Area::Policies,
    delegated: &["Policy.Read.All", "Policy.ReadWrite.ConditionalAccess"],
    application: &["Policy.Read.All"],
    ..ORGANIZATION
};
pub(crate) const AUTH_METHODS_POLICY: Rule = Rule {
    delegated: &["Policy.Read.All", "Policy.Read.AuthenticationMethod"],
    application: &["Policy.Read.All", "Policy.Read.AuthenticationMethod"],
    ..POLICIES
};
pub(crate) const CONDITIONAL_ACCESS: Rule = Rule {
    delegated: &["Policy.Read.All", "Policy.Read.ConditionalAccess", "Policy.ReadWrite.ConditionalAccess"],
    application: &["Policy.Read.All", "Policy.Read.ConditionalAccess"],
    licence: Licence::P1,
    class: Class::ConditionalAccess,
    ..POLICIES
};
pub(crate) const REGISTRATION_DETAILS: Rule = Rule {
    area: Area::Reports,
    delegated: &["AuditLog.Read.All"],
    application: &["AuditLog.Read.All"],
    licence: Licence::P1,
    class: Class::Reports,
    ..ORGANIZATION
};
pub(crate) const SIGN_INS: Rule = Rule { area: Area::AuditLogs, ..REGISTRATION_DETAILS };
pub(crate) const SECURE_SCORES: Rule = Rule {
    area: Area::SecureScore,
    delegated: &["SecurityEvents.Read.All", "SecurityEvents.ReadWrite.All"],
    application: &["SecurityEvents.Read.All", "SecurityEvents.ReadWrite.All"],
    ..ORGANIZATION
};
pub(crate) const APPS: Rule = Rule {
    area: Area::Apps,
    delegated: scopes!["Application.Read.All", "Application.ReadWrite.All"],
    application: scopes!["Application.Read.All", "Application.ReadWrite.All"],
    cost: 2,
    ..ORGANIZATION
};
pub(crate) const GRANTS: Rule = Rule {
    area: Area::Apps,
    delegated: scopes!["DelegatedPermissionGrant.Read.All"],
    application: scopes!["DelegatedPermissionGrant.Read.All"],
    cost: 2,
    ..ORGANIZATION
};
pub(crate) const DEVICES: Rule = Rule {
    area: Area::Devices,
    delegated: scopes!["Device.Read.All", "Device.ReadWrite.All"],
    application: scopes!["Device.Read.All", "Device.ReadWrite.All"],
    ..ORGANIZATION
};
pub(crate) const MANAGED_DEVICES: Rule = Rule {
    area: Area::Intune,
    delegated: &["DeviceManagementManagedDevices.Read.All", "DeviceManagementManagedDevices.ReadWrite.All"],
    application: &["DeviceManagementManagedDevices.Read.All", "DeviceManagementManagedDevices.ReadWrite.All"],
    licence: Licence::Intune,
    ..ORGANIZATION
};
pub(crate) const GDAP: Rule = Rule {
    area: Area::Gdap,
    delegated: &["DelegatedAdminRelationship.Read.All", "DelegatedAdminRelationship.ReadWrite.All"],
    application: &["DelegatedAdminRelationship.Read.All", "DelegatedAdminRelationship.ReadWrite.All"],
    mfa_claim: true,
    ..ORGANIZATION
};
pub(crate) const CONTRACTS: Rule = Rule {
    area: Area::Contracts,
    delegated: scopes!["Contract.Read.All"],
    application: scopes!["Contract.Read.All"],
    cost: 3,
    ..ORGANIZATION
};

fn has_any(granted: &[String], needed: &[&str]) -> bool {
    granted.iter().any(|g| needed.iter().any(|n| n.eq_ignore_ascii_case(g)))
}

/// The areas the caller may read in `tenant` right now. GDAP roles are evaluated at request time, so a
/// relationship that ended after the token was issued stops working at once.
pub(crate) fn caller_areas(world: &World, claims: &AccessClaims, tenant: &Tenant, now: DateTime<Utc>) -> Vec<Area> {
    let Some(oid) = claims.oid else { return Vec::new() };
    let mut areas: Vec<Area> = Vec::new();
    let mut add = |a: &[Area]| {
        for x in a {
            if !areas.contains(x) {
                areas.push(*x);
            }
        }
    };
    match claims.home_tid {
        Some(home) if home != tenant.id => {
            if let Some(partner) = world.tenant(home) {
                for role in world.gdap_roles(partner, oid, tenant.id, now) {
                    add(catalog::role_areas(&role));
                }
            }
        }
        _ => {
            if let Some(user) = tenant.user(oid) {
                if !user.guest {
                    add(catalog::MEMBER_DEFAULT_AREAS);
                } else {
                    add(&[Area::Basic]);
                }
                for role in &user.roles {
                    add(catalog::role_areas(role));
                }
            }
        }
    }
    areas
}

/// Decides one request. `extra` lists further delegated scopes or app roles a query option needs
/// (for example `signInActivity` needs AuditLog.Read.All).
pub(crate) fn authorize(
    world: &World,
    claims: &AccessClaims,
    tenant: &Tenant,
    rule: &Rule,
    extra: Option<&[&str]>,
    now: DateTime<Utc>,
) -> Result<(), GraphError> {
    if claims.is_app_only() {
        if tenant.service_principal(claims.appid).is_none() {
            return Err(GraphError::new(
                401,
                "Authorization_IdentityNotFound",
                "The identity of the calling application could not be established.",
            ));
        }
        if !has_any(&claims.roles, rule.application) || extra.is_some_and(|e| !has_any(&claims.roles, e)) {
            return Err(GraphError::denied());
        }
    } else {
        if !has_any(&claims.scp, rule.delegated) || extra.is_some_and(|e| !has_any(&claims.scp, e)) {
            return Err(GraphError::denied());
        }
        if rule.mfa_claim && !claims.amr.iter().any(|a| a == "mfa" || a == "ngcmfa") {
            return Err(GraphError::new(401, "unauthorized", "You are not authorized to access the resource.")
                .with_inner("unauthorizedMissingMfaTokenClaim", "The MFA claim was missing in the token."));
        }
    }
    match rule.licence {
        Licence::P1 if !tenant.has_p1() => return Err(GraphError::non_premium()),
        Licence::Intune if !tenant.has_intune() => {
            return Err(GraphError::new(400, "BadRequest", "Request not applicable to target tenant."));
        }
        _ => {}
    }
    if !claims.is_app_only() && !caller_areas(world, claims, tenant, now).contains(&rule.area) {
        return Err(GraphError::denied());
    }
    Ok(())
}
