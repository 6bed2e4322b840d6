//! The dataprint: one JSON document per tenant per run, in the format of docs/dataprint.md.
//!
//! Collections are maps from object id to object with every object's keys sorted, so that two
//! dataprints of an unchanged tenant are equal. Everything that changes from run to run without the
//! tenant changing (run ids, times, request counts, request ids in errors) lives in the `run` member
//! only, so that the store can recognise an unchanged dataprint.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub const SCHEMA: &str = "tenantscope.dataprint/1";

/// Drops the OData annotations of an object that carry no tenant state (paging links, etags).
///
/// Keys need no sorting here: `serde_json` maps are ordered by key (the workspace does not enable
/// `preserve_order`), so every object serializes in canonical order.
pub fn canonical(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        for k in ["@odata.context", "@odata.etag", "@odata.nextLink", "@odata.deltaLink"] {
            map.remove(k);
        }
    }
    v
}

/// A collection keyed by id, in id order.
pub fn keyed(items: impl IntoIterator<Item = Value>) -> Value {
    let mut map: BTreeMap<String, Value> = BTreeMap::new();
    for (n, item) in items.into_iter().enumerate() {
        let id = item.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("#{n}"));
        map.insert(id, canonical(item));
    }
    Value::Object(map.into_iter().collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Partial,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Partial => "partial",
            Status::Failed => "failed",
        }
    }
}

/// The computed figures of a customer dataprint (docs/dataprint.md, "Summary").
pub fn customer_summary(collections: &Map<String, Value>) -> Value {
    let values = |name: &str| collections.get(name).and_then(Value::as_object).map(|m| m.values().collect::<Vec<_>>());
    let users = values("users");
    let registration = values("userRegistrationDetails");
    let count = |f: &dyn Fn(&Value) -> bool| users.as_ref().map(|u| u.iter().filter(|x| f(x)).count());
    let global_admin = "62e90394-69f5-4237-9190-012177145e10";
    // Admins from directory role memberships, the authoritative source for who holds a role.
    let admin_ids: Option<Vec<String>> = values("directoryRoles").map(|roles| {
        let mut ids: Vec<String> = roles
            .iter()
            .flat_map(|r| r.get("members").and_then(Value::as_array).cloned().unwrap_or_default())
            .filter(|m| m.get("@odata.type").and_then(Value::as_str).is_none_or(|t| t.ends_with("user")))
            .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    });
    let global_admins = values("directoryRoles").map(|roles| {
        roles
            .iter()
            .filter(|r| r.get("roleTemplateId").and_then(Value::as_str) == Some(global_admin))
            .map(|r| r.get("members").and_then(Value::as_array).map_or(0, |m| m.len()))
            .sum::<usize>()
    });
    let mfa_registered: Option<std::collections::HashSet<String>> = registration.as_ref().map(|r| {
        r.iter()
            .filter(|x| x.get("isMfaRegistered").and_then(Value::as_bool) == Some(true))
            .filter_map(|x| x.get("id").and_then(Value::as_str).map(str::to_string))
            .collect()
    });
    let enabled_members: Option<Vec<String>> = users.as_ref().map(|u| {
        u.iter()
            .filter(|x| {
                x.get("accountEnabled").and_then(Value::as_bool) == Some(true)
                    && x.get("userType").and_then(Value::as_str) != Some("Guest")
            })
            .filter_map(|x| x.get("id").and_then(Value::as_str).map(str::to_string))
            .collect()
    });
    let mfa_pct = match (&enabled_members, &mfa_registered) {
        (Some(m), Some(r)) if !m.is_empty() => {
            let n = m.iter().filter(|id| r.contains(*id)).count();
            Some(((n as f64) * 1000.0 / (m.len() as f64)).round() / 10.0)
        }
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    let admins_without_mfa = match (&admin_ids, &mfa_registered) {
        (Some(a), Some(r)) => Some(a.iter().filter(|id| !r.contains(*id)).count()),
        _ => None,
    };
    let ca = values("conditionalAccessPolicies");
    let secure = values("secureScores").and_then(|s| {
        s.into_iter().max_by_key(|x| x.get("createdDateTime").and_then(Value::as_str).unwrap_or("").to_string()).map(|x| {
            let current = x.get("currentScore").and_then(Value::as_f64).unwrap_or(0.0);
            let max = x.get("maxScore").and_then(Value::as_f64).unwrap_or(0.0);
            json!({ "current": current, "max": max, "pct": if max > 0.0 { (current * 1000.0 / max).round() / 10.0 } else { 0.0 } })
        })
    });
    let licences = values("subscribedSkus").map(|skus| {
        let mut m = BTreeMap::new();
        for s in skus {
            if let Some(part) = s.get("skuPartNumber").and_then(Value::as_str) {
                m.insert(
                    part.to_string(),
                    json!({
                        "enabled": s.pointer("/prepaidUnits/enabled").and_then(Value::as_i64).unwrap_or(0),
                        "consumed": s.get("consumedUnits").and_then(Value::as_i64).unwrap_or(0),
                    }),
                );
            }
        }
        Value::Object(m.into_iter().collect())
    });
    json!({
        "users": users.as_ref().map(Vec::len),
        "enabled_users": count(&|u| u.get("accountEnabled").and_then(Value::as_bool) == Some(true)),
        "guest_users": count(&|u| u.get("userType").and_then(Value::as_str) == Some("Guest")),
        "licensed_users": count(&|u| u.get("assignedLicenses").and_then(Value::as_array).is_some_and(|a| !a.is_empty())),
        "mfa_registered_pct": mfa_pct,
        "admins": admin_ids.as_ref().map(Vec::len),
        "admins_without_mfa": admins_without_mfa,
        "global_admins": global_admins,
        "ca_policies": ca.as_ref().map(Vec::len),
        "ca_policies_enabled": ca.as_ref().map(|c| c.iter().filter(|p| p.get("state").and_then(Value::as_str) == Some("enabled")).count()),
        "security_defaults": values("securityDefaults").and_then(|s| s.first().and_then(|p| p.get("isEnabled")).cloned()),
        "secure_score": secure,
        "licences": licences,
    })
}

/// The computed figures of a partner dataprint.
pub fn partner_summary(collections: &Map<String, Value>, now: DateTime<Utc>) -> Value {
    let rels: Option<Vec<&Value>> =
        collections.get("delegatedAdminRelationships").and_then(Value::as_object).map(|m| m.values().collect());
    let soon = now + chrono::Duration::days(30);
    json!({
        "customers": collections.get("delegatedAdminCustomers").and_then(Value::as_object).map(|m| m.len()),
        "relationships_active": rels.as_ref().map(|r| r.iter().filter(|x| x.get("status").and_then(Value::as_str) == Some("active")).count()),
        "relationships_expiring_30d": rels.as_ref().map(|r| r.iter().filter(|x| {
            x.get("status").and_then(Value::as_str) == Some("active")
                && x.get("endDateTime").and_then(Value::as_str).and_then(|e| DateTime::parse_from_rfc3339(e).ok()).is_some_and(|e| e.with_timezone(&Utc) <= soon)
        }).count()),
        "relationships_with_global_admin": rels.as_ref().map(|r| r.iter().filter(|x| {
            x.pointer("/accessDetails/unifiedRoles").and_then(Value::as_array).is_some_and(|roles| roles.iter().any(|ro| ro.get("roleDefinitionId").and_then(Value::as_str) == Some("62e90394-69f5-4237-9190-012177145e10")))
        }).count()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_and_drops_paging_annotations() {
        let v = canonical(
            json!({"b": 1, "a": {"d": 2, "c": 3}, "@odata.context": "x", "@odata.etag": "e", "@odata.type": "#t"}),
        );
        assert_eq!(v.to_string(), r##"{"@odata.type":"#t","a":{"c":3,"d":2},"b":1}"##);
    }

    #[test]
    fn keyed_orders_by_id() {
        let v = keyed(vec![json!({"id": "b"}), json!({"id": "a"})]);
        assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn summary_figures() {
        let mut c = Map::new();
        c.insert(
            "users".into(),
            keyed(vec![
                json!({"id": "u1", "accountEnabled": true, "userType": "Member", "assignedLicenses": [{"skuId": "x"}]}),
                json!({"id": "u2", "accountEnabled": true, "userType": "Member", "assignedLicenses": []}),
                json!({"id": "u3", "accountEnabled": false, "userType": "Guest", "assignedLicenses": []}),
            ]),
        );
        c.insert(
            "userRegistrationDetails".into(),
            keyed(vec![json!({"id": "u1", "isMfaRegistered": true}), json!({"id": "u2", "isMfaRegistered": false})]),
        );
        c.insert("directoryRoles".into(), keyed(vec![json!({"id": "r", "roleTemplateId": "62e90394-69f5-4237-9190-012177145e10", "members": [{"id": "u2", "@odata.type": "#microsoft.graph.user"}]})]));
        c.insert("securityDefaults".into(), keyed(vec![json!({"id": "s", "isEnabled": false})]));
        let s = customer_summary(&c);
        assert_eq!(s["users"], 3);
        assert_eq!(s["licensed_users"], 1);
        assert_eq!(s["mfa_registered_pct"], 50.0);
        assert_eq!(s["global_admins"], 1);
        assert_eq!(s["admins_without_mfa"], 1);
        assert_eq!(s["security_defaults"], false);
        assert!(s["ca_policies"].is_null(), "absent collection gives null, not 0");
    }
}
