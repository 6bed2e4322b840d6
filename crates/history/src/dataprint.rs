//! Read-only access to the parts of a dataprint this crate needs.
//!
//! The dataprint contract lives in `docs/dataprint.md`. The helpers here check
//! the schema once and then give typed access to the tenant, the run and the
//! collections, so that the rest of the crate never indexes raw JSON with
//! `unwrap`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::HistoryError;

/// The schema string of a dataprint without its version, for example
/// `tenantscope.dataprint/1`.
pub(crate) const DATAPRINT_SCHEMA_PREFIX: &str = "tenantscope.dataprint/";

/// The only major version of the dataprint schema this crate reads.
pub(crate) const SUPPORTED_MAJOR: u64 = 1;

/// Whether the tenant is the MSP's own partner tenant or a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Partner,
    Customer,
    /// The role is missing or not one of the documented values; callers then
    /// apply every handler and let collection presence decide.
    Unknown,
}

/// A dataprint whose schema has been checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dataprint<'a> {
    root: &'a Map<String, Value>,
}

/// Checks the `schema` field: a missing one and an unknown major version are
/// refused, as the format contract requires of every reader.
pub(crate) fn check_schema(doc: &Value) -> Result<Dataprint<'_>, HistoryError> {
    let root = doc.as_object().ok_or_else(|| HistoryError::Malformed("the document is not a JSON object".into()))?;
    let schema = match root.get("schema") {
        None | Some(Value::Null) => return Err(HistoryError::MissingSchema),
        Some(Value::String(s)) => s,
        Some(other) => return Err(HistoryError::UnsupportedSchema(other.to_string())),
    };
    let version =
        schema.strip_prefix(DATAPRINT_SCHEMA_PREFIX).ok_or_else(|| HistoryError::UnsupportedSchema(schema.clone()))?;
    // A minor version ("1.2") may follow the major one: fields may be added
    // within a major version, and this reader ignores fields it does not know.
    let major = version.split('.').next().unwrap_or_default();
    match major.parse::<u64>() {
        Ok(SUPPORTED_MAJOR) => Ok(Dataprint { root }),
        _ => Err(HistoryError::UnsupportedSchema(schema.clone())),
    }
}

impl<'a> Dataprint<'a> {
    /// The tenant id, from `tenant.id`.
    pub(crate) fn tenant_id(&self) -> Option<&'a str> {
        self.root.get("tenant")?.get("id")?.as_str()
    }

    /// The tenant's role, from `tenant.role`.
    pub(crate) fn role(&self) -> Role {
        match self.root.get("tenant").and_then(|t| t.get("role")).and_then(Value::as_str) {
            Some("partner") => Role::Partner,
            Some("customer") => Role::Customer,
            _ => Role::Unknown,
        }
    }

    /// When the run started, which is the dataprint's notion of "now".
    pub(crate) fn started_at(&self) -> Option<DateTime<Utc>> {
        let run = self.root.get("run")?;
        let text = run.get("started_at").or_else(|| run.get("finished_at"))?.as_str()?;
        parse_time(text)
    }

    /// A collection, or `None` when it is absent ("not known in this run").
    /// A value that is not an object is treated as absent too, because it
    /// cannot be read as a map of objects keyed by id.
    pub(crate) fn collection(&self, name: &str) -> Option<&'a Map<String, Value>> {
        self.root.get("collections")?.get(name)?.as_object()
    }

    /// The names of all collections present, sorted.
    pub(crate) fn collection_names(&self) -> Vec<&'a str> {
        let mut names: Vec<&str> = self
            .root
            .get("collections")
            .and_then(Value::as_object)
            .map(|c| c.iter().filter(|(_, v)| v.is_object()).map(|(k, _)| k.as_str()).collect())
            .unwrap_or_default();
        names.sort_unstable();
        names
    }

    /// The raw top-level object.
    pub(crate) fn root(&self) -> &'a Map<String, Value> {
        self.root
    }
}

/// Parses an RFC 3339 timestamp as Graph writes it (with up to seven
/// fractional digits).
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// The best human name of a Graph object, trying the fields Graph uses for
/// names in the order a person would recognise them.
pub(crate) fn display_name(object: &Value) -> Option<String> {
    const NAME_FIELDS: [&str; 6] =
        ["displayName", "userDisplayName", "appDisplayName", "skuPartNumber", "userPrincipalName", "name"];
    NAME_FIELDS.iter().find_map(|f| object.get(*f).and_then(Value::as_str)).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Escapes one JSON-pointer segment as RFC 6901 requires.
pub(crate) fn pointer_segment(segment: &str) -> String {
    if segment.contains(['~', '/']) { segment.replace('~', "~0").replace('/', "~1") } else { segment.to_owned() }
}

/// Returns the keys of a map sorted, so that every walk over a collection is
/// deterministic whatever order the document was written in.
pub(crate) fn sorted_keys(map: &Map<String, Value>) -> Vec<&str> {
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// Shortens a JSON value for a one-line human summary.
pub(crate) fn short(value: &Value) -> String {
    const LIMIT: usize = 60;
    let text = value.to_string();
    if text.chars().count() <= LIMIT {
        text
    } else {
        let cut: String = text.chars().take(LIMIT).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_versions() {
        assert!(check_schema(&json!({"schema": "tenantscope.dataprint/1"})).is_ok());
        assert!(check_schema(&json!({"schema": "tenantscope.dataprint/1.3"})).is_ok());
        assert_eq!(check_schema(&json!({"tenant": {}})).err(), Some(HistoryError::MissingSchema));
        assert!(matches!(
            check_schema(&json!({"schema": "tenantscope.dataprint/2"})),
            Err(HistoryError::UnsupportedSchema(_))
        ));
        assert!(matches!(check_schema(&json!({"schema": "other/1"})), Err(HistoryError::UnsupportedSchema(_))));
        assert!(matches!(check_schema(&json!([1])), Err(HistoryError::Malformed(_))));
    }

    #[test]
    fn pointer_escaping() {
        assert_eq!(pointer_segment("a/b~c"), "a~1b~0c");
        assert_eq!(pointer_segment("plain"), "plain");
    }
}
