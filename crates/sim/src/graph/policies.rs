//! The tenant's policies: Conditional Access policies and named locations, security defaults, the
//! authorization policy and the authentication methods policy.

use super::GraphOk;
use super::env::Env;
use super::objects;
use crate::errors::GraphError;

/// `GET /identity/conditionalAccess/policies`.
pub(super) fn conditional_access(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    env.list(&t.ca_policies, "identity/conditionalAccess/policies", 100, 999, None, |p| Ok(objects::ca_policy(p, t)))
}

/// `GET /identity/conditionalAccess/namedLocations`.
pub(super) fn named_locations(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    env.list(&t.named_locations, "identity/conditionalAccess/namedLocations", 100, 999, None, |l| {
        Ok(objects::named_location(l))
    })
}

/// `GET /policies/identitySecurityDefaultsEnforcementPolicy`.
pub(super) fn security_defaults(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    Ok(env.single("policies/identitySecurityDefaultsEnforcementPolicy/$entity", objects::security_defaults(t)))
}

/// `GET /policies/authorizationPolicy`.
pub(super) fn authorization(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    Ok(env.single("policies/authorizationPolicy/$entity", objects::authorization_policy(t)))
}

/// `GET /policies/authenticationMethodsPolicy`.
pub(super) fn authentication_methods(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    Ok(env.single("policies/authenticationMethodsPolicy/$entity", objects::authentication_methods_policy(t)))
}
