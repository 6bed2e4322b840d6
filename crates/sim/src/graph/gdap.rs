//! Tenant relationships: the partner's GDAP relationships (`delegatedAdminRelationships`) with their
//! access assignments, and its customers (`delegatedAdminCustomers`) with their service management
//! details. Only a partner tenant has any.

use serde_json::json;
use uuid::Uuid;

use super::GraphOk;
use super::env::Env;
use super::objects;
use crate::errors::GraphError;
use crate::world::{GdapStatus, Tenant, TenantKind};

/// `GET /tenantRelationships/delegatedAdminRelationships`.
pub(super) fn relationships(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let rels: Vec<&crate::world::GdapRelationship> = env.world.gdap.iter().filter(|r| r.partner == t.id).collect();
    let filter = env.filter(&["status", "displayName", "customer/tenantId", "id"], "DelegatedAdminRelationship")?;
    env.list(&rels, "tenantRelationships/delegatedAdminRelationships", 300, 300, filter.as_ref(), |r| {
        Ok(objects::gdap_relationship(r, env.world, env.now))
    })
}

/// `GET /tenantRelationships/delegatedAdminRelationships/{id}`.
pub(super) fn relationship(env: &Env<'_>, id: &str) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let r = env
        .world
        .gdap
        .iter()
        .find(|r| r.partner == t.id && r.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| GraphError::not_found(id))?;
    Ok(env.single(
        "tenantRelationships/delegatedAdminRelationships/$entity",
        objects::gdap_relationship(r, env.world, env.now),
    ))
}

/// `GET /tenantRelationships/delegatedAdminRelationships/{id}/accessAssignments`.
pub(super) fn access_assignments(env: &Env<'_>, id: &str) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let r = env
        .world
        .gdap
        .iter()
        .find(|r| r.partner == t.id && r.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| GraphError::not_found(id))?;
    env.list(
        &r.assignments,
        "tenantRelationships/delegatedAdminRelationships('id')/accessAssignments",
        100,
        300,
        None,
        |a| Ok(objects::access_assignment(a, r, env.now)),
    )
}

/// `GET /tenantRelationships/delegatedAdminCustomers`.
pub(super) fn customers(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let customers = env.gdap_customers();
    env.list(&customers, "tenantRelationships/delegatedAdminCustomers", 300, 300, None, |c| {
        Ok(objects::delegated_admin_customer(c))
    })
}

/// `GET /tenantRelationships/delegatedAdminCustomers/{id}`.
pub(super) fn customer(env: &Env<'_>, id: &str) -> Result<GraphOk, GraphError> {
    let c = env
        .gdap_customers()
        .into_iter()
        .find(|c| c.id.to_string().eq_ignore_ascii_case(id))
        .ok_or_else(|| GraphError::not_found(id))?;
    Ok(env.single("tenantRelationships/delegatedAdminCustomers/$entity", objects::delegated_admin_customer(c)))
}

/// `GET /tenantRelationships/delegatedAdminCustomers/{id}/serviceManagementDetails`.
pub(super) fn service_management_details(env: &Env<'_>, id: &str) -> Result<GraphOk, GraphError> {
    let c = env
        .gdap_customers()
        .into_iter()
        .find(|c| c.id.to_string().eq_ignore_ascii_case(id))
        .ok_or_else(|| GraphError::not_found(id))?;
    let services = [
        ("MicrosoftEntra", format!("https://entra.microsoft.com/{}", c.domain)),
        ("Microsoft365", format!("https://admin.microsoft.com/Partner/BeginClientSession.aspx?CTID={}", c.id)),
    ];
    env.list(
        &services,
        "tenantRelationships/delegatedAdminCustomers('id')/serviceManagementDetails",
        100,
        300,
        None,
        |(name, url)| {
            Ok(json!({
                "@odata.type": "#microsoft.graph.delegatedAdminServiceManagementDetail",
                "id": Uuid::new_v5(&c.id, name.as_bytes()).to_string(),
                "serviceManagementUrl": url,
                "serviceName": name,
            }))
        },
    )
}

impl Env<'_> {
    /// The partner's customers: every tenant with a relationship that is not terminated, once each, in
    /// the order of the relationships.
    fn gdap_customers(&self) -> Vec<&Tenant> {
        if self.tenant.kind != TenantKind::Partner {
            return Vec::new();
        }
        let mut out: Vec<&Tenant> = Vec::new();
        for r in self
            .world
            .gdap
            .iter()
            .filter(|r| r.partner == self.tenant.id && r.status_at(self.now) != GdapStatus::Terminated)
        {
            if let Some(c) = self.world.tenant(r.customer)
                && !out.iter().any(|x| x.id == c.id)
            {
                out.push(c);
            }
        }
        out
    }
}
