//! Inspecting the partner tenant: the signed-in user and its groups, the GDAP relationships with their
//! access assignments, the delegated-admin customers and the contracts, and from them the customer list
//! with a GDAP summary per customer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use microsoft::graph::{BatchItem, GraphClient, Target};
use microsoft::{AccessToken, Error, Grant};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::catalog::{self, Side};
use crate::child::{Mode, Outcome, OutcomeStatus, stable_error};
use crate::clock::Clock;
use crate::dataprint::{self, Status, keyed};
use crate::facts::{self, AssignmentView, GdapView, RelationshipView, Situation};

/// A customer as the partner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub tenant_id: String,
    pub display_name: String,
    pub domain: Option<String>,
    pub gdap: GdapView,
}

impl Customer {
    /// Whether the signed-in user reaches the customer through an active relationship.
    pub fn user_has_access(&self) -> bool {
        !self.gdap.effective_roles().is_empty()
    }

    /// Reachable only through Microsoft-led transition relationships.
    pub fn only_mlt(&self) -> bool {
        let active: Vec<&RelationshipView> = self.gdap.relationships.iter().filter(|r| r.status == "active").collect();
        !active.is_empty() && active.iter().all(|r| r.mlt)
    }
}

#[derive(Debug, Clone)]
pub struct PartnerResult {
    /// The built-in metrics of the dataprint, as its summary holds them.
    pub metrics: Vec<history::MetricValue>,
    pub tenant_id: String,
    pub display_name: String,
    pub status: Status,
    pub outcomes: Vec<Outcome>,
    pub customers: Vec<Customer>,
    /// Whether the relationships were read: without them the customer list is incomplete, and nobody
    /// must be reported lost because of that.
    pub relationships_read: bool,
    pub dataprint: Option<Value>,
    pub diagnosis: Option<diagnose::Diagnosis>,
    pub token: Option<AccessToken>,
    pub token_error: Option<Error>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Value::as_str).map(str::to_string)
}

/// Access assignments a previous partner dataprint holds, by relationship id, with the time they were
/// read, when that was within the collector's freshness window.
///
/// Reading them costs one batch item per relationship on every run, which for an MSP with a thousand
/// customers is most of what an unchanged run sends. The relationships themselves (status, roles, end
/// date) are read on every run; only the assignments of relationships already known are reused, and
/// all of them are read again once the window has passed. `doctor` always reads them live.
pub fn reusable_assignments(previous: &Value, now: DateTime<Utc>) -> Option<(DateTime<Utc>, BTreeMap<String, Value>)> {
    let fresh = catalog::find(Side::Partner, "accessAssignments")?.fresh_minutes;
    if fresh == 0 || previous.pointer("/collectors/accessAssignments/status").and_then(Value::as_str) != Some("ok") {
        return None;
    }
    let at = previous
        .pointer("/run/collectors/accessAssignments/collected_at")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
        .with_timezone(&Utc);
    if now - at >= chrono::Duration::minutes(i64::from(fresh)) || at > now {
        return None;
    }
    let relationships = previous.pointer("/collections/delegatedAdminRelationships")?.as_object()?;
    let assignments = relationships
        .iter()
        .filter_map(|(id, r)| Some((id.clone(), r.get("accessAssignments").filter(|a| a.is_array())?.clone())))
        .collect();
    Some((at, assignments))
}

pub async fn inspect_partner(
    graph: &GraphClient,
    clock: &dyn Clock,
    partner_tenant: &str,
    cloud: Option<&str>,
    reuse: Option<(DateTime<Utc>, BTreeMap<String, Value>)>,
) -> PartnerResult {
    let started = clock.now();
    let target = Target { tenant: partner_tenant.to_string(), grant: Grant::Partner };
    let collectors: Vec<&'static catalog::Collector> = catalog::partner_collectors().collect();
    let situation = |c: Option<&'static catalog::Collector>, t: Option<&AccessToken>| -> diagnose::Facts {
        facts::facts(
            None,
            &Situation {
                tenant_id: partner_tenant,
                tenant_name: None,
                partner_tenant_id: Some(partner_tenant),
                auth: diagnose::Auth::Partner,
                collector: c,
                token: t,
                sign_in: None,
                gdap: None,
                service_plans: None,
                cloud,
                now: clock.now(),
            },
        )
    };
    let token = match graph.auth.access_token(partner_tenant, &Grant::Partner).await {
        Ok(t) => t,
        Err(e) => {
            let mut f = situation(None, None);
            f.failure = Some(facts::failure(&e));
            let d = diagnose::diagnose(&f);
            return PartnerResult {
                metrics: Vec::new(),
                tenant_id: partner_tenant.to_string(),
                display_name: String::new(),
                status: Status::Failed,
                outcomes: Vec::new(),
                customers: Vec::new(),
                relationships_read: false,
                dataprint: None,
                diagnosis: Some(d),
                token: None,
                token_error: Some(e),
                started,
                finished: clock.now(),
            };
        }
    };
    let mut outcomes: BTreeMap<&'static str, Outcome> = BTreeMap::new();
    let mut collections: Map<String, Value> = Map::new();
    let fail = |name: &'static str, e: Error, outcomes: &mut BTreeMap<&'static str, Outcome>| {
        let c = catalog::find(Side::Partner, name);
        let mut f = situation(c, Some(&token));
        f.failure = Some(facts::failure(&e));
        let d = diagnose::diagnose(&f);
        let o = Outcome {
            name: c.map_or(name, |c| c.name),
            status: OutcomeStatus::Failed,
            items: None,
            reason: None,
            error: Some(e),
            diagnosis: Some(d),
            mode: Mode::None,
            requests: 0,
            duration_ms: 0,
            collected_at: Some(clock.now()),
            unchanged: false,
        };
        outcomes.insert(o.name, o);
    };
    let ok = |name: &'static str, n: usize, mode: Mode, outcomes: &mut BTreeMap<&'static str, Outcome>| {
        outcomes.insert(
            name,
            Outcome {
                name,
                status: OutcomeStatus::Ok,
                items: Some(n),
                reason: None,
                error: None,
                diagnosis: None,
                mode,
                requests: 0,
                duration_ms: 0,
                collected_at: Some(clock.now()),
                unchanged: false,
            },
        );
    };

    let batch = ["organization", "me", "memberOf", "groups", "contracts"];
    let items: Vec<BatchItem> = batch
        .iter()
        .filter_map(|n| catalog::find(Side::Partner, n))
        .map(|c| BatchItem { id: c.name.to_string(), path: c.path.to_string(), headers: vec![] })
        .collect();
    for (name, result) in graph.batch(&target, items).await {
        let name: &'static str = batch.iter().copied().find(|b| *b == name).unwrap_or("organization");
        let items = match result {
            Ok(body) => match body.get("value").and_then(Value::as_array) {
                Some(values) => {
                    let mut v = values.clone();
                    if let Some(next) = body.get("@odata.nextLink").and_then(Value::as_str) {
                        match graph.list(&target, next, Vec::new()).await {
                            Ok(more) => v.extend(more),
                            Err(e) => {
                                fail(name, e, &mut outcomes);
                                continue;
                            }
                        }
                    }
                    v
                }
                None => vec![body],
            },
            Err(e) => {
                fail(name, e, &mut outcomes);
                continue;
            }
        };
        ok(name, items.len(), Mode::Batch, &mut outcomes);
        collections.insert(name.to_string(), keyed(items));
    }

    let mut relationships: Vec<Value> = Vec::new();
    let mut relationships_read = false;
    match graph.list(&target, "tenantRelationships/delegatedAdminRelationships?$top=300", Vec::new()).await {
        Ok(rels) => {
            relationships_read = true;
            ok("delegatedAdminRelationships", rels.len(), Mode::Paged, &mut outcomes);
            relationships = rels;
        }
        Err(e) => fail("delegatedAdminRelationships", e, &mut outcomes),
    }
    if relationships_read {
        let (reused_at, mut reused) = reuse.unwrap_or_default();
        let items: Vec<BatchItem> = relationships
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_str))
            .filter(|id| !reused.contains_key(*id))
            .map(|id| BatchItem {
                id: id.to_string(),
                path: format!("tenantRelationships/delegatedAdminRelationships/{id}/accessAssignments"),
                headers: vec![],
            })
            .collect();
        let read_any = !items.is_empty();
        let mut assignments: BTreeMap<String, Value> = BTreeMap::new();
        let mut failed = None;
        for (id, result) in graph.batch(&target, items).await {
            match result {
                Ok(body) => {
                    assignments.insert(id, body.get("value").filter(|v| v.is_array()).cloned().unwrap_or(json!([])));
                }
                Err(e) => failed = Some(e),
            }
        }
        for r in &mut relationships {
            if let Some(id) = r.get("id").and_then(Value::as_str).map(str::to_string) {
                let a = assignments.remove(&id).or_else(|| reused.remove(&id)).unwrap_or(json!([]));
                r["accessAssignments"] = a;
            }
        }
        let count = relationships.iter().filter_map(|r| r["accessAssignments"].as_array()).map(Vec::len).sum();
        match failed {
            Some(e) => fail("accessAssignments", e, &mut outcomes),
            None => {
                ok("accessAssignments", count, if read_any { Mode::Batch } else { Mode::Reused }, &mut outcomes);
                // Reused assignments keep the time they were read, so that all of them are read again
                // once the oldest is out of its window.
                if reused_at != DateTime::<Utc>::default()
                    && let Some(o) = outcomes.get_mut("accessAssignments")
                {
                    o.collected_at = Some(reused_at);
                }
            }
        }
        collections.insert("delegatedAdminRelationships".into(), keyed(relationships.clone()));
    }
    match graph.list(&target, "tenantRelationships/delegatedAdminCustomers?$top=300", Vec::new()).await {
        Ok(c) => {
            ok("delegatedAdminCustomers", c.len(), Mode::Paged, &mut outcomes);
            collections.insert("delegatedAdminCustomers".into(), keyed(c));
        }
        Err(e) => fail("delegatedAdminCustomers", e, &mut outcomes),
    }

    let customers = derive_customers(&collections);
    let ordered: Vec<Outcome> = collectors.iter().filter_map(|c| outcomes.remove(c.name)).collect();
    let any_ok = ordered.iter().any(|o| o.status == OutcomeStatus::Ok);
    let any_failed = ordered.iter().any(|o| o.status == OutcomeStatus::Failed);
    let status = if !any_ok {
        Status::Failed
    } else if any_failed {
        Status::Partial
    } else {
        Status::Ok
    };
    let diagnosis = crate::child::tenant_diagnosis(&ordered);
    let display_name = collections
        .get("organization")
        .and_then(Value::as_object)
        .and_then(|m| m.values().next())
        .and_then(|o| text(o, "/displayName"))
        .unwrap_or_default();
    let finished = clock.now();
    let mut dataprint = any_ok.then(|| {
        let mut stable = Map::new();
        let mut volatile = Map::new();
        for o in &ordered {
            let mut s = json!({ "status": o.status });
            if let Some(n) = o.items {
                s["items"] = json!(n);
            }
            if let Some(e) = &o.error {
                s["error"] = stable_error(e);
            }
            if let Some(d) = &o.diagnosis {
                s["diagnosis"] = json!({ "cause": d.cause, "summary": d.summary, "fix": d.fix, "check": d.check });
            }
            stable.insert(o.name.to_string(), s);
            volatile.insert(o.name.to_string(), json!({ "mode": o.mode, "collected_at": o.collected_at }));
        }
        json!({
            "schema": dataprint::SCHEMA,
            "tenant": { "id": partner_tenant, "display_name": display_name, "role": "partner" },
            "auth": "partner",
            "status": status.as_str(),
            "collectors": Value::Object(stable),
            "summary": null,
            "collections": Value::Object(collections.clone()),
            "run": {
                "started_at": started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "finished_at": finished.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "collectors": Value::Object(volatile),
            },
        })
    });
    let metrics = dataprint.as_mut().map(|d| dataprint::summarize(d, finished, None)).unwrap_or_default();
    PartnerResult {
        metrics,
        tenant_id: partner_tenant.to_string(),
        display_name,
        status,
        outcomes: ordered,
        customers,
        relationships_read,
        dataprint,
        diagnosis,
        token: Some(token),
        token_error: None,
        started,
        finished,
    }
}

/// The customers of a partner: every tenant of a relationship, a delegated-admin customer or a contract.
pub fn derive_customers(collections: &Map<String, Value>) -> Vec<Customer> {
    let values = |name: &str| {
        collections
            .get(name)
            .and_then(Value::as_object)
            .map(|m| m.values().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let group_list = |name: &str| -> Option<Vec<(String, Option<String>)>> {
        collections
            .get(name)
            .and_then(Value::as_object)
            .map(|m| m.values().filter_map(|g| Some((text(g, "/id")?, text(g, "/displayName")))).collect())
    };
    let member_of = group_list("memberOf");
    let user_groups: Option<Vec<String>> = member_of.as_ref().map(|g| g.iter().map(|(id, _)| id.clone()).collect());
    // Names come from every group of the partner tenant, so that a group the user is not in (the
    // usual reason GDAP gives nothing) is still shown by name.
    let groups: Option<Vec<(String, Option<String>)>> = match (group_list("groups"), member_of) {
        (Some(mut all), Some(mine)) => {
            all.extend(mine);
            Some(all)
        }
        (all, mine) => all.or(mine),
    };
    let mut customers: BTreeMap<String, Customer> = BTreeMap::new();
    fn entry<'m>(
        customers: &'m mut BTreeMap<String, Customer>,
        user_groups: &Option<Vec<String>>,
        id: &str,
        name: Option<String>,
    ) -> &'m mut Customer {
        let c = customers.entry(id.to_ascii_lowercase()).or_insert_with(|| Customer {
            tenant_id: id.to_ascii_lowercase(),
            display_name: String::new(),
            domain: None,
            gdap: GdapView { user_groups: user_groups.clone(), ..GdapView::default() },
        });
        if c.display_name.is_empty()
            && let Some(n) = name
        {
            c.display_name = n;
        }
        c
    }
    for r in values("delegatedAdminRelationships") {
        let Some(tenant) = text(&r, "/customer/tenantId") else { continue };
        let roles: Vec<String> = r
            .pointer("/accessDetails/unifiedRoles")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter().filter_map(|x| x.get("roleDefinitionId").and_then(Value::as_str).map(str::to_string)).collect()
            })
            .unwrap_or_default();
        let assignments = r
            .get("accessAssignments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                let group_id = text(a, "/accessContainer/accessContainerId").unwrap_or_default();
                let group_name = groups.as_ref().and_then(|g| {
                    g.iter().find(|(id, _)| id.eq_ignore_ascii_case(&group_id)).and_then(|(_, n)| n.clone())
                });
                AssignmentView {
                    user_is_member: user_groups.as_ref().map(|g| g.iter().any(|x| x.eq_ignore_ascii_case(&group_id))),
                    group_name,
                    roles: a
                        .pointer("/accessDetails/unifiedRoles")
                        .and_then(Value::as_array)
                        .map(|x| {
                            x.iter()
                                .filter_map(|r| r.get("roleDefinitionId").and_then(Value::as_str).map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                    status: text(a, "/status").unwrap_or_default(),
                    group_id,
                }
            })
            .collect();
        let name = text(&r, "/displayName").unwrap_or_default();
        let view = RelationshipView {
            id: text(&r, "/id").unwrap_or_default(),
            mlt: name.starts_with("MLT_"),
            display_name: name,
            status: text(&r, "/status").unwrap_or_default(),
            roles,
            end: text(&r, "/endDateTime")
                .and_then(|e| DateTime::parse_from_rfc3339(&e).ok())
                .map(|e| e.with_timezone(&Utc)),
            auto_extend: text(&r, "/autoExtendDuration"),
            assignments,
        };
        entry(&mut customers, &user_groups, &tenant, text(&r, "/customer/displayName")).gdap.relationships.push(view);
    }
    for c in values("delegatedAdminCustomers") {
        if let Some(id) = text(&c, "/tenantId").or_else(|| text(&c, "/id")) {
            entry(&mut customers, &user_groups, &id, text(&c, "/displayName"));
        }
    }
    for c in values("contracts") {
        if let Some(id) = text(&c, "/customerId") {
            let customer = entry(&mut customers, &user_groups, &id, text(&c, "/displayName"));
            customer.gdap.contract = true;
            customer.domain = text(&c, "/defaultDomainName");
        }
    }
    customers.into_values().collect()
}

#[cfg(test)]
mod reuse_tests {
    use super::*;

    fn partner(status: &str, collected_at: &str) -> Value {
        json!({
            "collectors": {"accessAssignments": {"status": status}},
            "collections": {"delegatedAdminRelationships": {
                "r1": {"id": "r1", "accessAssignments": [{"id": "a1"}]},
                "r2": {"id": "r2"},
            }},
            "run": {"collectors": {"accessAssignments": {"collected_at": collected_at}}},
        })
    }

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    #[test]
    fn assignments_are_reused_within_their_window_only() {
        let now = at("2026-11-28T12:00:00Z");
        let fresh = reusable_assignments(&partner("ok", "2026-11-28T11:30:00Z"), now);
        let Some((read_at, by_id)) = fresh else { panic!("fresh assignments are reusable") };
        assert_eq!(read_at, at("2026-11-28T11:30:00Z"));
        assert_eq!(by_id.keys().collect::<Vec<_>>(), ["r1"], "a relationship without assignments is read again");
        assert!(reusable_assignments(&partner("ok", "2026-11-28T10:59:00Z"), now).is_none(), "out of the window");
        assert!(reusable_assignments(&partner("failed", "2026-11-28T11:30:00Z"), now).is_none());
        assert!(reusable_assignments(&partner("ok", "2026-11-28T13:00:00Z"), now).is_none(), "from the future");
        assert!(reusable_assignments(&partner("ok", "yesterday"), now).is_none());
        assert!(reusable_assignments(&json!({}), now).is_none());
    }
}
