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

/// The OData annotations [`canonical`] drops.
pub(crate) const DROPPED: &[&str] = &["@odata.context", "@odata.etag", "@odata.nextLink", "@odata.deltaLink"];

/// Drops the OData annotations of an object that carry no tenant state (paging links, etags).
///
/// Keys need no sorting here: `serde_json` maps are ordered by key (the workspace does not enable
/// `preserve_order`), so every object serializes in canonical order.
pub fn canonical(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        for k in DROPPED {
            map.remove(*k);
        }
    }
    v
}

/// A collection keyed by id, in id order.
///
/// The map is built once from the pairs (a sort that finds input already in id order in one pass,
/// then a bulk build) instead of by inserting one item at a time into a tree that was then rebuilt
/// as the document's map. Of items with the same id, the last wins, as it did.
pub fn keyed(items: impl IntoIterator<Item = Value>) -> Value {
    let pairs: Vec<(String, Value)> = items
        .into_iter()
        .enumerate()
        .map(|(n, item)| {
            let id = item.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("#{n}"));
            (id, canonical(item))
        })
        .collect();
    Value::Object(pairs.into_iter().collect())
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

/// The built-in metrics, compiled once.
pub(crate) fn builtins() -> &'static [history::Metric] {
    static BUILTINS: std::sync::LazyLock<Vec<history::Metric>> = std::sync::LazyLock::new(history::builtin_metrics);
    &BUILTINS
}

/// Whether a built-in metric keeps its value while its input is unchanged: it reads one collection,
/// and not the time.
pub(crate) fn keeps_value(m: &history::Metric) -> bool {
    !m.uses_now() && m.reads().is_some_and(|r| r.len() == 1)
}

/// What a dataprint built on a previous one kept of it unread.
#[derive(Debug, Clone, Copy)]
pub struct Kept<'a> {
    /// The collections carried over unread, `null` in the dataprint.
    pub unread: &'a [String],
    /// The previous dataprint's summary.
    pub previous: &'a Map<String, Value>,
}

/// Computes a dataprint's figures and puts them in its `summary` member (docs/dataprint.md,
/// "Summary"): the value of every built-in metric that applies to it, so that the summary, the
/// report, `tenants` and `metrics` show one number for one thing, computed once; and, for the
/// tables that show them, the secure score's points and the licences per SKU. Returns the metric
/// values, which the run records as the tenant's metric series.
///
/// A metric that reads only a collection carried over unread (`kept`), and not the time, has the
/// value it had on the previous dataprint, whose collection this is.
pub fn summarize(dataprint: &mut Value, now: DateTime<Utc>, kept: Option<Kept<'_>>) -> Vec<history::MetricValue> {
    let mut values = history::evaluate(builtins(), dataprint, now);
    if let Some(kept) = kept.filter(|k| !k.unread.is_empty()) {
        for (v, m) in values.iter_mut().zip(builtins()) {
            if keeps_value(m) && m.reads().is_some_and(|r| r.iter().all(|c| kept.unread.contains(c))) {
                v.value = kept.previous.get(&v.name).cloned().unwrap_or(Value::Null);
                v.error = None;
            }
        }
    }
    let mut summary = Map::new();
    for v in values.iter().filter(|v| v.error.is_none() && !v.value.is_null()) {
        summary.insert(v.name.clone(), v.value.clone());
    }
    let collections = dataprint.get("collections").and_then(Value::as_object);
    let values_of = |name: &str| {
        collections.and_then(|c| c.get(name)).and_then(Value::as_object).map(|m| m.values().collect::<Vec<_>>())
    };
    if let Some(latest) = values_of("secureScores").and_then(|s| {
        s.into_iter().max_by_key(|x| x.get("createdDateTime").and_then(Value::as_str).unwrap_or("").to_string())
    }) {
        let current = latest.get("currentScore").and_then(Value::as_f64).unwrap_or(0.0);
        let max = latest.get("maxScore").and_then(Value::as_f64).unwrap_or(0.0);
        summary.insert("secure_score".into(), json!({ "current": current, "max": max }));
    }
    if let Some(skus) = values_of("subscribedSkus") {
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
        summary.insert("licences".into(), Value::Object(m.into_iter().collect()));
    }
    if let Some(slot) = dataprint.get_mut("summary") {
        *slot = Value::Object(summary);
    }
    values
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
    fn keyed_keeps_the_last_of_a_repeated_id() {
        let v = keyed(vec![json!({"id": "a", "n": 1}), json!({"x": 0}), json!({"id": "a", "n": 2})]);
        assert_eq!(v, json!({"#1": {"x": 0}, "a": {"id": "a", "n": 2}}));
    }

    #[test]
    fn the_summary_holds_the_builtin_metrics() {
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
            keyed(vec![
                json!({"id": "u1", "isMfaRegistered": true, "userType": "member", "isAdmin": false}),
                json!({"id": "u2", "isMfaRegistered": false, "userType": "member", "isAdmin": true}),
            ]),
        );
        c.insert("directoryRoles".into(), keyed(vec![json!({"id": "r", "roleTemplateId": "62e90394-69f5-4237-9190-012177145e10", "members": [{"id": "u2", "@odata.type": "#microsoft.graph.user"}]})]));
        c.insert("securityDefaults".into(), keyed(vec![json!({"id": "s", "isEnabled": false})]));
        c.insert(
            "secureScores".into(),
            keyed(vec![
                json!({"id": "x", "currentScore": 30.0, "maxScore": 60.0, "createdDateTime": "2026-11-01T00:00:00Z"}),
            ]),
        );
        let mut dp = json!({
            "schema": SCHEMA,
            "tenant": {"id": "t", "display_name": "T", "role": "customer"},
            "status": "ok",
            "collectors": {},
            "summary": null,
            "collections": Value::Object(c),
            "run": {},
        });
        let values = summarize(&mut dp, Utc::now(), None);
        let s = &dp["summary"];
        assert_eq!(s["users"], 3);
        assert_eq!(s["licensed_users"], 1);
        assert_eq!(s["mfa_registered_pct"], 50.0);
        assert_eq!(s["global_admins"], 1);
        assert_eq!(s["admins_without_mfa"], 1);
        assert_eq!(s["security_defaults"], false);
        assert_eq!(s["secure_score_pct"], 50.0);
        assert_eq!(s["secure_score"]["max"], 60.0);
        assert!(s.get("ca_policies").is_none(), "absent collection gives no figure, not 0");
        // Registration details carried over unread: the metrics that read them alone keep the
        // previous dataprint's values; the others are computed.
        let mut carried = dp.clone();
        carried["collections"]["userRegistrationDetails"] = Value::Null;
        let previous =
            json!({"mfa_registered_pct": 12.5, "users_without_mfa": 7, "users": 99}).as_object().cloned().unwrap();
        let unread = vec!["userRegistrationDetails".to_string()];
        let kept = summarize(&mut carried, Utc::now(), Some(Kept { unread: &unread, previous: &previous }));
        let value = |name: &str| kept.iter().find(|v| v.name == name).map(|v| v.value.clone());
        assert_eq!(value("mfa_registered_pct"), Some(json!(12.5)));
        assert_eq!(value("users"), Some(json!(3)), "computed from this dataprint's users");
        assert_eq!(carried["summary"]["mfa_registered_pct"], 12.5);
        assert_eq!(carried["summary"]["admins_without_mfa"], Value::Null, "absent before, so absent now");
        // The summary is exactly the metric values the run records.
        for v in values.iter().filter(|v| !v.value.is_null()) {
            assert_eq!(s[&v.name], v.value, "{}", v.name);
        }
    }
}
