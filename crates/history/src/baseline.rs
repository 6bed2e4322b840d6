//! Baselines: a tenant's settings saved for comparison, and drift from them.
//!
//! A baseline holds only settings, never inventory: Conditional Access
//! policies, named locations, security defaults, the authorization and
//! authentication-methods policies and the domains' authentication types.
//! Everything that differs between tenants for no reason is removed or
//! translated, so that a "gold" tenant's baseline can be compared with any
//! other tenant:
//!
//! - object ids, `@odata.*` annotations and created/modified timestamps are
//!   dropped;
//! - Conditional Access policies and named locations are keyed by display
//!   name, since their ids differ in every tenant;
//! - ids of users, groups and named locations inside policies are replaced by
//!   `user:<displayName>`, `group:<displayName>` and `location:<displayName>`
//!   when the dataprint knows them;
//! - arrays of strings are sorted, since they are sets in every policy.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dataprint::{Dataprint, check_schema, display_name, pointer_segment, sorted_keys};
use crate::error::HistoryError;

/// The schema string of a saved baseline.
pub const BASELINE_SCHEMA: &str = "tenantscope.baseline/1";

/// The settings sections a baseline can hold, in report order.
const SECTIONS: &[&str] = &[
    "securityDefaults",
    "authorizationPolicy",
    "authenticationMethodsPolicy",
    "conditionalAccessPolicies",
    "namedLocations",
    "domains",
];

/// Every collection [`drift`] and [`Baseline::from_dataprint`] read: the settings sections and
/// the collections whose ids they translate into names (see `labels`). A caller loading a
/// dataprint only to compare it with a baseline loads these.
pub fn drift_reads() -> Vec<&'static str> {
    let mut reads = SECTIONS.to_vec();
    reads.extend(["users", "groups"]);
    reads
}

/// Fields that identify or date an object rather than configure it.
const VOLATILE: &[&str] = &["id", "createdDateTime", "modifiedDateTime", "lastModifiedDateTime", "deletedDateTime"];

/// A saved set of settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Always [`BASELINE_SCHEMA`].
    pub schema: String,
    /// The baseline's name, for example `gold` or `northwind-2026-11`.
    pub name: String,
    /// The tenant the settings were taken from.
    #[serde(default)]
    pub source_tenant_id: Option<String>,
    /// That tenant's display name.
    #[serde(default)]
    pub source_tenant_name: Option<String>,
    /// When the source dataprint's run started.
    #[serde(default)]
    pub taken_at: Option<String>,
    /// One entry per section known in the source dataprint.
    pub settings: Map<String, Value>,
}

/// How a setting differs from the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftKind {
    /// In the baseline, not in the tenant.
    Missing,
    /// In both, with different values.
    Different,
    /// In the tenant, not in the baseline.
    Extra,
    /// The tenant's dataprint lacks the collection, so the section could not
    /// be compared (absent means "not known", never "empty").
    Unknown,
}

/// One difference between a tenant and a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// JSON pointer into the baseline's settings, for example
    /// `/conditionalAccessPolicies/Require MFA for admins/state`.
    pub path: String,
    /// The baseline's value.
    pub expected: Option<Value>,
    /// The tenant's value.
    pub actual: Option<Value>,
    /// The kind of difference.
    pub kind: DriftKind,
}

impl Baseline {
    /// Extracts a baseline from a dataprint, for example the latest one of
    /// the tenant named as gold.
    ///
    /// # Errors
    ///
    /// Fails when the document is not a supported dataprint.
    pub fn from_dataprint(name: &str, dataprint: &Value) -> Result<Baseline, HistoryError> {
        let dp = check_schema(dataprint)?;
        let tenant = dp.root().get("tenant");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        Ok(Baseline {
            schema: BASELINE_SCHEMA.to_owned(),
            name: name.to_owned(),
            source_tenant_id: text(tenant.and_then(|t| t.get("id"))),
            source_tenant_name: text(tenant.and_then(|t| t.get("display_name"))),
            taken_at: text(dp.root().get("run").and_then(|r| r.get("started_at"))),
            settings: settings(&dp),
        })
    }

    /// Reads a saved baseline.
    ///
    /// # Errors
    ///
    /// Fails when the JSON is not a baseline of a known schema.
    pub fn from_json(value: &Value) -> Result<Baseline, HistoryError> {
        let baseline: Baseline =
            serde_json::from_value(value.clone()).map_err(|e| HistoryError::Baseline(e.to_string()))?;
        if baseline.schema != BASELINE_SCHEMA {
            return Err(HistoryError::Baseline(format!(
                "unsupported schema `{}`, expected {BASELINE_SCHEMA}",
                baseline.schema
            )));
        }
        Ok(baseline)
    }
}

/// Labels for ids that differ between tenants.
fn labels(dp: &Dataprint<'_>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (collection, prefix) in [("users", "user"), ("groups", "group"), ("namedLocations", "location")] {
        if let Some(c) = dp.collection(collection) {
            for (id, object) in c {
                if let Some(name) = display_name(object) {
                    out.insert(id.clone(), format!("{prefix}:{name}"));
                }
            }
        }
    }
    out
}

/// Drops volatile fields and annotations, translates ids and sorts string
/// sets, recursively.
fn normalise(value: &Value, labels: &HashMap<String, String>, top: bool) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with("@odata."))
                .filter(|(k, _)| {
                    // Nested `id`s are references (a target group, a
                    // method) and stay; timestamps go at every level.
                    !VOLATILE.contains(&k.as_str()) || (k.as_str() == "id" && !top)
                })
                .map(|(k, v)| (k.clone(), normalise(v, labels, false)))
                .collect(),
        ),
        Value::Array(items) => {
            let mut out: Vec<Value> = items.iter().map(|v| normalise(v, labels, false)).collect();
            if out.iter().all(Value::is_string) {
                out.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
            Value::Array(out)
        }
        Value::String(s) => labels.get(s).map_or_else(|| value.clone(), |l| Value::String(l.clone())),
        other => other.clone(),
    }
}

/// The first object of a singleton collection, by id.
fn singleton(c: &Map<String, Value>) -> Option<&Value> {
    sorted_keys(c).first().and_then(|k| c.get(*k))
}

/// A collection keyed by display name; a repeated name gets ` (2)`, ` (3)`
/// in id order so nothing is lost.
fn by_name(c: &Map<String, Value>, labels: &HashMap<String, String>) -> Value {
    let mut out = Map::new();
    for id in sorted_keys(c) {
        let Some(object) = c.get(id) else {
            continue;
        };
        let base = display_name(object).unwrap_or_else(|| id.to_owned());
        let mut name = base.clone();
        let mut n = 2;
        while out.contains_key(&name) {
            name = format!("{base} ({n})");
            n += 1;
        }
        out.insert(name, normalise(object, labels, true));
    }
    Value::Object(out)
}

fn section(dp: &Dataprint<'_>, name: &str, labels: &HashMap<String, String>) -> Option<Value> {
    let c = dp.collection(name)?;
    Some(match name {
        "securityDefaults" => {
            let enabled = singleton(c).and_then(|o| o.get("isEnabled")).cloned().unwrap_or(Value::Null);
            Value::Object(Map::from_iter([("isEnabled".to_owned(), enabled)]))
        }
        "authorizationPolicy" => singleton(c).map_or(Value::Null, |o| normalise(o, labels, true)),
        "authenticationMethodsPolicy" => {
            let mut policy = singleton(c).map_or(Value::Null, |o| normalise(o, labels, true));
            // Method configurations are a list of objects with stable ids
            // ("Fido2", "MicrosoftAuthenticator"); keying them by id lets a
            // drift name the method instead of an array index.
            if let Some(obj) = policy.as_object_mut()
                && let Some(Value::Array(list)) = obj.get("authenticationMethodConfigurations")
            {
                let mut keyed = Map::new();
                for item in list {
                    let id = item.get("id").and_then(Value::as_str).unwrap_or("unknown");
                    let mut item = item.clone();
                    if let Some(m) = item.as_object_mut() {
                        m.remove("id");
                    }
                    keyed.insert(id.to_owned(), item);
                }
                obj.insert("authenticationMethodConfigurations".to_owned(), Value::Object(keyed));
            }
            policy
        }
        "conditionalAccessPolicies" | "namedLocations" => by_name(c, labels),
        "domains" => {
            let mut types: Vec<&str> =
                c.values().filter_map(|d| d.get("authenticationType").and_then(Value::as_str)).collect();
            types.sort_unstable();
            types.dedup();
            Value::Object(Map::from_iter([("authenticationTypes".to_owned(), Value::from(types))]))
        }
        _ => return None,
    })
}

fn settings(dp: &Dataprint<'_>) -> Map<String, Value> {
    let labels = labels(dp);
    SECTIONS.iter().filter_map(|name| section(dp, name, &labels).map(|v| ((*name).to_owned(), v))).collect()
}

fn compare(path: String, expected: Option<&Value>, actual: Option<&Value>, out: &mut Vec<Drift>) {
    match (expected, actual) {
        (Some(Value::Object(e)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                compare(format!("{path}/{}", pointer_segment(key)), e.get(key), a.get(key), out);
            }
        }
        (Some(e), None) => out.push(Drift { path, expected: Some(e.clone()), actual: None, kind: DriftKind::Missing }),
        (None, Some(a)) => out.push(Drift { path, expected: None, actual: Some(a.clone()), kind: DriftKind::Extra }),
        (Some(e), Some(a)) if e != a => {
            out.push(Drift { path, expected: Some(e.clone()), actual: Some(a.clone()), kind: DriftKind::Different })
        }
        _ => {}
    }
}

/// Reports every difference between a baseline and a tenant's dataprint, in
/// section order and then by path.
///
/// Only the sections the baseline holds are compared. A section whose
/// collection is absent from the dataprint gives one `unknown` drift instead
/// of reporting all its settings as missing.
///
/// # Errors
///
/// Fails when the document is not a supported dataprint or the baseline has
/// an unknown schema.
pub fn drift(baseline: &Baseline, dataprint: &Value) -> Result<Vec<Drift>, HistoryError> {
    if baseline.schema != BASELINE_SCHEMA {
        return Err(HistoryError::Baseline(format!(
            "unsupported schema `{}`, expected {BASELINE_SCHEMA}",
            baseline.schema
        )));
    }
    let dp = check_schema(dataprint)?;
    let labels = labels(&dp);
    let mut out = Vec::new();
    let mut names: Vec<&String> = baseline.settings.keys().collect();
    names.sort_by_key(|n| SECTIONS.iter().position(|s| s == n).unwrap_or(SECTIONS.len()));
    for name in names {
        let expected = baseline.settings.get(name);
        let path = format!("/{}", pointer_segment(name));
        match section(&dp, name, &labels) {
            Some(actual) => compare(path, expected, Some(&actual), &mut out),
            None => out.push(Drift { path, expected: expected.cloned(), actual: None, kind: DriftKind::Unknown }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn drift_reads_every_collection_a_comparison_uses() {
        for name in super::SECTIONS.iter().chain(["users", "groups", "namedLocations"].iter()) {
            assert!(super::drift_reads().contains(name), "{name}");
        }
    }
}
