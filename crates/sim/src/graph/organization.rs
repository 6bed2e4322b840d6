//! The organization and what belongs to it as a whole: `organization`, `domains`, `subscribedSkus` and
//! `directory/subscriptions`.

use serde_json::Value;

use super::GraphOk;
use super::env::Env;
use super::objects;
use super::query::apply_select;
use crate::errors::GraphError;

/// `GET /organization`: a collection of one, the caller's tenant.
pub(super) fn list(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let org = objects::organization(t, env.world, env.now);
    env.list(std::slice::from_ref(&org), "organization", 100, 999, None, |v| {
        apply_select(v.clone(), env.q.select.as_deref(), &keys(v), "organization")
    })
}

/// `GET /organization/{id}`: only the caller's own tenant is found.
pub(super) fn by_id(env: &Env<'_>, id: &str) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    if !id.eq_ignore_ascii_case(&t.id.to_string()) {
        return Err(GraphError::not_found(id));
    }
    Ok(env.single("organization/$entity", objects::organization(t, env.world, env.now)))
}

/// `GET /domains`.
pub(super) fn domains(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let domains: Vec<&str> = t.domains().collect();
    env.list(&domains, "domains", 100, 999, None, |d| Ok(objects::domain(t, d)))
}

/// `GET /domains/{name}`, matched without regard to case.
pub(super) fn domain(env: &Env<'_>, d: &str) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    t.domains()
        .find(|x| x.eq_ignore_ascii_case(d))
        .map(|x| env.single("domains/$entity", objects::domain(t, x)))
        .ok_or_else(|| GraphError::not_found(d))
}

/// `GET /subscribedSkus`: one per licence of the tenant.
pub(super) fn subscribed_skus(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let items: Vec<Value> = t.licences.iter().map(|l| objects::subscribed_sku(t, l)).collect();
    env.list(&items, "subscribedSkus", 100, 999, None, |v| Ok(v.clone()))
}

/// `GET /directory/subscriptions`: one per licence of the tenant.
pub(super) fn subscriptions(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let items: Vec<Value> = t.licences.iter().map(|l| objects::subscription(t, l, env.now)).collect();
    env.list(&items, "directory/subscriptions", 100, 999, None, |v| Ok(v.clone()))
}

/// The property names of an object, which `$select` may pick from.
fn keys(v: &Value) -> Vec<&str> {
    v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default()
}
