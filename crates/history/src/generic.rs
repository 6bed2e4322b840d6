//! The generic field-level diff of collections keyed by id.
//!
//! It runs after the named handlers and reports whatever they did not
//! explain: `object_added`, `object_removed` and `field_changed`. Objects are
//! compared field by field, recursing into nested objects; arrays and
//! scalars are compared whole, which keeps one event per meaningful field
//! (an array of licences or members changes as one value).

use serde_json::{Map, Value};

use crate::dataprint::{display_name, pointer_segment, short};
use crate::events::{DiffContext, Severity, union_keys};

/// Collections that are logs rather than state: every run holds different
/// entries, so a diff of them would only be noise.
const IGNORED_COLLECTIONS: &[&str] = &["signIns"];

/// Top-level fields that change on every edit or on every sign-in. The edit
/// they accompany is reported through the fields that really changed.
const VOLATILE_FIELDS: &[&str] = &["@odata.etag", "lastModifiedDateTime", "modifiedDateTime"];

/// Fields that change without anyone changing the tenant, per collection.
const VOLATILE_BY_COLLECTION: &[(&str, &str)] = &[
    ("users", "/signInActivity"),
    ("userRegistrationDetails", "/lastUpdatedDateTime"),
    ("devices", "/approximateLastSignInDateTime"),
    ("managedDevices", "/lastSyncDateTime"),
];

/// Whether a changed field is volatile and must not be reported.
pub(crate) fn is_volatile(collection: &str, pointer: &str) -> bool {
    let top = pointer.strip_prefix('/').map(|rest| rest.split('/').next().unwrap_or(rest)).unwrap_or(pointer);
    if VOLATILE_FIELDS.contains(&top) {
        return true;
    }
    VOLATILE_BY_COLLECTION.iter().any(|(c, p)| {
        *c == collection
            && (pointer == *p || (pointer.starts_with(p) && pointer.as_bytes().get(p.len()) == Some(&b'/')))
    })
}

/// One changed leaf: its JSON pointer and the values on either side (`None`
/// where the field does not exist).
pub(crate) struct FieldChange<'v> {
    pub(crate) pointer: String,
    pub(crate) before: Option<&'v Value>,
    pub(crate) after: Option<&'v Value>,
}

/// Lists the changed leaves between two values, recursing into objects.
pub(crate) fn field_changes<'v>(before: &'v Value, after: &'v Value) -> Vec<FieldChange<'v>> {
    let mut out = Vec::new();
    walk(String::new(), Some(before), Some(after), &mut out);
    out
}

fn walk<'v>(prefix: String, before: Option<&'v Value>, after: Option<&'v Value>, out: &mut Vec<FieldChange<'v>>) {
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => walk_maps(&prefix, b, a, out),
        (b, a) if b != a => out.push(FieldChange { pointer: prefix, before: b, after: a }),
        _ => {}
    }
}

fn walk_maps<'v>(
    prefix: &str,
    before: &'v Map<String, Value>,
    after: &'v Map<String, Value>,
    out: &mut Vec<FieldChange<'v>>,
) {
    for key in union_keys(before, after) {
        let b = before.get(key);
        let a = after.get(key);
        if b == a {
            continue;
        }
        let pointer = format!("{prefix}/{}", pointer_segment(key));
        walk(pointer, b, a, out);
    }
}

/// Reports every difference of the collections present in both dataprints
/// that the named handlers did not claim.
pub(crate) fn run(ctx: &mut DiffContext<'_>) {
    let before_names = ctx.before.collection_names();
    for name in ctx.after.collection_names() {
        if !before_names.contains(&name) || IGNORED_COLLECTIONS.contains(&name) || ctx.claims.has_collection(name) {
            continue;
        }
        let Some((before, after)) = ctx.both(name) else {
            continue;
        };
        collection(ctx, name, before, after);
    }
}

fn collection(ctx: &mut DiffContext<'_>, name: &str, before: &Map<String, Value>, after: &Map<String, Value>) {
    for id in union_keys(before, after) {
        match (before.get(id), after.get(id)) {
            (None, Some(object)) => {
                if ctx.claims.has_object(name, id) {
                    continue;
                }
                let label = display_name(object);
                let summary = format!("{name}: added {}", label.as_deref().unwrap_or(id));
                let event = ctx
                    .event("object_added", Severity::Info, name, id)
                    .name(label)
                    .after(Some(object.clone()))
                    .summary(summary);
                ctx.push(event);
            }
            (Some(object), None) => {
                if ctx.claims.has_object(name, id) {
                    continue;
                }
                let label = display_name(object);
                let summary = format!("{name}: removed {}", label.as_deref().unwrap_or(id));
                let event = ctx
                    .event("object_removed", Severity::Info, name, id)
                    .name(label)
                    .before(Some(object.clone()))
                    .summary(summary);
                ctx.push(event);
            }
            (Some(b), Some(a)) if b != a => {
                let label = display_name(a).or_else(|| display_name(b));
                for change in field_changes(b, a) {
                    if is_volatile(name, &change.pointer) || ctx.claims.has_field(name, id, &change.pointer) {
                        continue;
                    }
                    let summary = format!(
                        "{name}: {} {} changed from {} to {}",
                        label.as_deref().unwrap_or(id),
                        change.pointer,
                        change.before.map_or_else(|| "(none)".into(), short),
                        change.after.map_or_else(|| "(none)".into(), short),
                    );
                    let event = ctx
                        .event("field_changed", Severity::Info, name, id)
                        .name(label.clone())
                        .field(change.pointer)
                        .before(change.before.cloned())
                        .after(change.after.cloned())
                        .summary(summary);
                    ctx.push(event);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaves_and_pointers() {
        let b = json!({"a": {"b": 1, "c": [1]}, "d/e": true, "gone": 1});
        let a = json!({"a": {"b": 2, "c": [1]}, "d/e": false, "new": null});
        let changes = field_changes(&b, &a);
        let pointers: Vec<&str> = changes.iter().map(|c| c.pointer.as_str()).collect();
        assert_eq!(pointers, ["/a/b", "/d~1e", "/gone", "/new"]);
        assert!(changes[2].after.is_none());
        assert!(changes[3].before.is_none());
    }

    #[test]
    fn volatility() {
        assert!(is_volatile("users", "/signInActivity/lastSignInDateTime"));
        assert!(is_volatile("anything", "/@odata.etag"));
        assert!(!is_volatile("users", "/signInActivityX"));
        assert!(!is_volatile("groups", "/signInActivity"));
    }
}
