//! The routes of the simulated Graph, in two tables read side by side: [`resolve`] maps a path to its
//! route and the authorization rule that guards it, and [`dispatch`] maps a route to the handler that
//! answers it, in the module of its resource.

use super::authz::Rule;
use super::env::Env;
use super::{GraphOk, apps, authz, contracts, devices, gdap, groups, organization, policies, reports, roles, users};
use crate::errors::GraphError;

/// A Graph resource this simulator serves, with the ids its path names.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Route<'a> {
    Organization,
    OrganizationById(&'a str),
    Domains,
    Domain(&'a str),
    SubscribedSkus,
    Subscriptions,
    Users,
    UsersCount,
    UsersDelta,
    User(&'a str),
    UserMemberOf(&'a str, bool),
    Me,
    MeMemberOf(bool),
    Groups,
    GroupsDelta,
    Group(&'a str),
    GroupMembers(&'a str, bool),
    DirectoryRoles,
    DirectoryRoleMembers(&'a str),
    RoleDefinitions,
    RoleAssignments,
    CaPolicies,
    NamedLocations,
    SecurityDefaults,
    AuthorizationPolicy,
    AuthMethodsPolicy,
    RegistrationDetails,
    SecureScores,
    ServicePrincipals,
    ServicePrincipal(&'a str),
    AppRoleAssignments(&'a str),
    AppRoleAssignedTo(&'a str),
    ServicePrincipalByAppId(&'a str),
    AppRoleAssignedToByAppId(&'a str),
    Applications,
    Grants,
    Devices,
    ManagedDevices,
    SignIns,
    GdapRelationships,
    GdapRelationship(&'a str),
    GdapAssignments(&'a str),
    GdapCustomers,
    GdapCustomer(&'a str),
    GdapServiceDetails(&'a str),
    Contracts,
}

/// The route of a path (its segments, matched without regard to case) and the authorization rule
/// that guards it; `None` for a path Graph does not know.
pub(super) fn resolve<'a>(s: &[&'a str]) -> Option<(Rule, Route<'a>)> {
    use authz::*;
    let lower: Vec<String> = s.iter().map(|x| x.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    if let Some(app_id) = s.first().and_then(|first| app_id_key(first)) {
        return match &l[1..] {
            [] => Some((APPS, Route::ServicePrincipalByAppId(app_id))),
            ["approleassignedto"] => Some((APPS, Route::AppRoleAssignedToByAppId(app_id))),
            _ => None,
        };
    }
    Some(match l.as_slice() {
        ["organization"] => (ORGANIZATION, Route::Organization),
        ["organization", _] => (ORGANIZATION, Route::OrganizationById(s[1])),
        ["domains"] => (DOMAINS, Route::Domains),
        ["domains", _] => (DOMAINS, Route::Domain(s[1])),
        ["subscribedskus"] => (LICENCES, Route::SubscribedSkus),
        ["directory", "subscriptions"] => (Rule { cost: 1, ..LICENCES }, Route::Subscriptions),
        ["users"] => (USERS, Route::Users),
        ["users", "$count"] => (USERS, Route::UsersCount),
        ["users", "delta"] | ["users", "delta()"] => (USERS, Route::UsersDelta),
        ["users", _] => (USERS, Route::User(s[1])),
        ["users", _, "memberof"] => (GROUPS, Route::UserMemberOf(s[1], false)),
        ["users", _, "transitivememberof"] => (GROUP_TRANSITIVE, Route::UserMemberOf(s[1], true)),
        ["me"] => (ME, Route::Me),
        ["me", "memberof"] => (MEMBER_OF, Route::MeMemberOf(false)),
        ["me", "transitivememberof"] => (MEMBER_OF, Route::MeMemberOf(true)),
        ["groups"] => (GROUPS, Route::Groups),
        ["groups", "delta"] | ["groups", "delta()"] => (GROUPS, Route::GroupsDelta),
        ["groups", _] => (GROUPS, Route::Group(s[1])),
        ["groups", _, "members"] => (GROUP_MEMBERS, Route::GroupMembers(s[1], false)),
        ["groups", _, "transitivemembers"] => (GROUP_TRANSITIVE, Route::GroupMembers(s[1], true)),
        ["directoryroles"] => (ROLES, Route::DirectoryRoles),
        ["directoryroles", _, "members"] => (ROLES, Route::DirectoryRoleMembers(s[1])),
        ["rolemanagement", "directory", "roledefinitions"] => (ROLES, Route::RoleDefinitions),
        ["rolemanagement", "directory", "roleassignments"] => (ROLES, Route::RoleAssignments),
        ["identity", "conditionalaccess", "policies"] => (CONDITIONAL_ACCESS, Route::CaPolicies),
        ["identity", "conditionalaccess", "namedlocations"] => (CONDITIONAL_ACCESS, Route::NamedLocations),
        ["policies", "identitysecuritydefaultsenforcementpolicy"] => (POLICIES, Route::SecurityDefaults),
        ["policies", "authorizationpolicy"] => (POLICIES, Route::AuthorizationPolicy),
        ["policies", "authenticationmethodspolicy"] => (AUTH_METHODS_POLICY, Route::AuthMethodsPolicy),
        ["reports", "authenticationmethods", "userregistrationdetails"] => {
            (REGISTRATION_DETAILS, Route::RegistrationDetails)
        }
        ["security", "securescores"] => (SECURE_SCORES, Route::SecureScores),
        ["serviceprincipals"] => (APPS, Route::ServicePrincipals),
        ["serviceprincipals", _] => (APPS, Route::ServicePrincipal(s[1])),
        ["serviceprincipals", _, "approleassignments"] => (APPS, Route::AppRoleAssignments(s[1])),
        ["serviceprincipals", _, "approleassignedto"] => (APPS, Route::AppRoleAssignedTo(s[1])),
        ["applications"] => (APPS, Route::Applications),
        ["oauth2permissiongrants"] => (GRANTS, Route::Grants),
        ["devices"] => (DEVICES, Route::Devices),
        ["devicemanagement", "manageddevices"] => (MANAGED_DEVICES, Route::ManagedDevices),
        ["auditlogs", "signins"] => (SIGN_INS, Route::SignIns),
        ["tenantrelationships", "delegatedadminrelationships"] => (GDAP, Route::GdapRelationships),
        ["tenantrelationships", "delegatedadminrelationships", _] => (GDAP, Route::GdapRelationship(s[2])),
        ["tenantrelationships", "delegatedadminrelationships", _, "accessassignments"] => {
            (GDAP, Route::GdapAssignments(s[2]))
        }
        ["tenantrelationships", "delegatedadmincustomers"] => (GDAP, Route::GdapCustomers),
        ["tenantrelationships", "delegatedadmincustomers", _] => (GDAP, Route::GdapCustomer(s[2])),
        ["tenantrelationships", "delegatedadmincustomers", _, "servicemanagementdetails"] => {
            (GDAP, Route::GdapServiceDetails(s[2]))
        }
        ["contracts"] => (CONTRACTS, Route::Contracts),
        _ => return None,
    })
}

/// The application id of a `servicePrincipals(appId='…')` segment (Graph's alternate key), its quotes
/// written or percent-encoded.
fn app_id_key(segment: &str) -> Option<&str> {
    const PREFIX: &str = "servicePrincipals(appId=";
    let head = segment.get(..PREFIX.len())?;
    if !head.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let inner = segment[PREFIX.len()..].strip_suffix(')')?;
    let quoted = |q: &str| inner.strip_prefix(q).and_then(|x| x.strip_suffix(q));
    quoted("'").or_else(|| quoted("%27"))
}

/// Answers a request with the handler of its route, after it was authorized and throttled.
pub(super) fn dispatch(env: &Env<'_>, route: &Route<'_>) -> Result<GraphOk, GraphError> {
    match *route {
        Route::Organization => organization::list(env),
        Route::OrganizationById(id) => organization::by_id(env, id),
        Route::Domains => organization::domains(env),
        Route::Domain(name) => organization::domain(env, name),
        Route::SubscribedSkus => organization::subscribed_skus(env),
        Route::Subscriptions => organization::subscriptions(env),
        Route::Users => users::list(env),
        Route::UsersCount => users::count(env),
        Route::UsersDelta => users::delta(env),
        Route::User(key) => users::get(env, key),
        Route::UserMemberOf(key, transitive) => users::member_of(env, key, transitive),
        Route::Me => users::me(env),
        Route::MeMemberOf(transitive) => users::my_member_of(env, transitive),
        Route::Groups => groups::list(env),
        Route::GroupsDelta => groups::delta(env),
        Route::Group(id) => groups::get(env, id),
        Route::GroupMembers(id, transitive) => groups::members(env, id, transitive),
        Route::DirectoryRoles => roles::directory_roles(env),
        Route::DirectoryRoleMembers(id) => roles::directory_role_members(env, id),
        Route::RoleDefinitions => roles::definitions(env),
        Route::RoleAssignments => roles::assignments(env),
        Route::CaPolicies => policies::conditional_access(env),
        Route::NamedLocations => policies::named_locations(env),
        Route::SecurityDefaults => policies::security_defaults(env),
        Route::AuthorizationPolicy => policies::authorization(env),
        Route::AuthMethodsPolicy => policies::authentication_methods(env),
        Route::RegistrationDetails => reports::registration_details(env),
        Route::SecureScores => reports::secure_scores(env),
        Route::SignIns => reports::sign_ins(env),
        Route::ServicePrincipals => apps::service_principals(env),
        Route::ServicePrincipal(id) => apps::service_principal(env, id),
        Route::AppRoleAssignments(id) => apps::app_role_assignments(env, id),
        Route::AppRoleAssignedTo(id) => apps::app_role_assigned_to(env, id),
        Route::ServicePrincipalByAppId(app_id) => apps::service_principal_by_app_id(env, app_id),
        Route::AppRoleAssignedToByAppId(app_id) => apps::app_role_assigned_to_by_app_id(env, app_id),
        Route::Applications => apps::applications(env),
        Route::Grants => apps::grants(env),
        Route::Devices => devices::list(env),
        Route::ManagedDevices => devices::managed(env),
        Route::GdapRelationships => gdap::relationships(env),
        Route::GdapRelationship(id) => gdap::relationship(env, id),
        Route::GdapAssignments(id) => gdap::access_assignments(env, id),
        Route::GdapCustomers => gdap::customers(env),
        Route::GdapCustomer(id) => gdap::customer(env, id),
        Route::GdapServiceDetails(id) => gdap::service_management_details(env, id),
        Route::Contracts => contracts::list(env),
    }
}
