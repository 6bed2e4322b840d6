//! `contracts`: the partner's contracts with its customers, those whose customer tenant the world knows.

use super::GraphOk;
use super::env::Env;
use super::objects;
use crate::errors::GraphError;
use crate::world::Tenant;

/// `GET /contracts`.
pub(super) fn list(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let contracts: Vec<(&crate::world::Contract, &Tenant)> = env
        .world
        .contracts
        .iter()
        .filter(|c| c.partner == t.id)
        .filter_map(|c| env.world.tenant(c.customer).map(|ct| (c, ct)))
        .collect();
    env.list(&contracts, "contracts", 100, 999, None, |(c, ct)| Ok(objects::contract(c, ct)))
}
