//! Every GDAP relationship of the partner, as the last partner inspection read it: one row per
//! relationship, with its customer, roles, the groups it assigns them to (by name) and how long it
//! has left. `tenantscope gdap` and the dashboard show these.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use store::{Store, TenantId, TenantRole};

use crate::catalog;
use crate::partner::derive_customers;

/// One access assignment of a relationship.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    pub id: String,
    /// The group's name (the id when the partner tenant did not say).
    pub name: String,
    pub roles: Vec<String>,
    pub status: String,
    /// Whether the signed-in partner user is in the group.
    pub user_is_member: Option<bool>,
}

/// One GDAP relationship.
#[derive(Debug, Clone, Serialize)]
pub struct RelationshipRow {
    pub customer_id: TenantId,
    pub customer: String,
    pub relationship_id: String,
    pub name: String,
    pub status: String,
    /// Role names, read-only roles marked by the table, Global Administrator called out by callers.
    pub roles: Vec<String>,
    pub groups: Vec<GroupRow>,
    pub end: Option<DateTime<Utc>>,
    /// Whole days until the end (negative once ended).
    pub days_left: Option<i64>,
    pub auto_extend: Option<String>,
    /// A Microsoft-led transition relationship.
    pub mlt: bool,
    pub has_global_admin: bool,
}

/// The relationships of the partner's last good dataprint, soonest to end first (those without an
/// end last).
pub async fn relationships(store: &dyn Store, now: DateTime<Utc>) -> Result<Vec<RelationshipRow>, store::StoreError> {
    let Some(partner) = store.list_tenants().await?.into_iter().find(|t| t.role == TenantRole::Partner) else {
        return Ok(Vec::new());
    };
    let Some((_, dp)) = store.last_good_dataprint(&partner.id).await? else {
        return Ok(Vec::new());
    };
    let Some(collections) = dp.get("collections").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for customer in derive_customers(collections) {
        for r in &customer.gdap.relationships {
            rows.push(RelationshipRow {
                customer_id: TenantId::new(&customer.tenant_id),
                customer: if customer.display_name.is_empty() {
                    customer.tenant_id.clone()
                } else {
                    customer.display_name.clone()
                },
                relationship_id: r.id.clone(),
                name: r.display_name.clone(),
                status: r.status.clone(),
                roles: r.roles.iter().map(|x| catalog::roles::name(x).to_string()).collect(),
                groups: r
                    .assignments
                    .iter()
                    .map(|a| GroupRow {
                        id: a.group_id.clone(),
                        name: a.group_name.clone().unwrap_or_else(|| a.group_id.clone()),
                        roles: a.roles.iter().map(|x| catalog::roles::name(x).to_string()).collect(),
                        status: a.status.clone(),
                        user_is_member: a.user_is_member,
                    })
                    .collect(),
                end: r.end,
                days_left: r.end.map(|e| (e - now).num_days()),
                auto_extend: r.auto_extend.clone().filter(|d| !matches!(d.as_str(), "PT0S" | "P0D" | "")),
                mlt: r.mlt,
                has_global_admin: r.roles.iter().any(|x| x.eq_ignore_ascii_case(catalog::roles::GLOBAL_ADMINISTRATOR)),
            });
        }
    }
    rows.sort_by(|a, b| match (a.end, b.end) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.customer.to_ascii_lowercase().cmp(&b.customer.to_ascii_lowercase()),
    });
    Ok(rows)
}
