//! Conditional Access policies created, changed (field by field), disabled
//! and deleted.

use serde_json::Value;

use crate::dataprint::{display_name, short};
use crate::events::{DiffContext, Severity, union_keys};
use crate::generic::{field_changes, is_volatile};

const CA: &str = "conditionalAccessPolicies";

fn state(policy: &Value) -> Option<&str> {
    policy.get("state").and_then(Value::as_str)
}

pub(crate) fn run(ctx: &mut DiffContext<'_>) {
    let Some((before, after)) = ctx.both(CA) else {
        return;
    };
    for id in union_keys(before, after) {
        match (before.get(id), after.get(id)) {
            (None, Some(policy)) => {
                let name = display_name(policy);
                let summary = format!(
                    "Conditional Access policy created: {} (state {})",
                    name.as_deref().unwrap_or(id),
                    state(policy).unwrap_or("unknown")
                );
                let event = ctx
                    .event("ca_policy_created", Severity::Medium, CA, id)
                    .name(name)
                    .after(Some(policy.clone()))
                    .summary(summary);
                ctx.push(event);
                ctx.claims.object(CA, id);
            }
            (Some(policy), None) => {
                let name = display_name(policy);
                let summary = format!("Conditional Access policy deleted: {}", name.as_deref().unwrap_or(id));
                let event = ctx
                    .event("ca_policy_deleted", Severity::High, CA, id)
                    .name(name)
                    .before(Some(policy.clone()))
                    .summary(summary);
                ctx.push(event);
                ctx.claims.object(CA, id);
            }
            (Some(old), Some(new)) if old != new => changed(ctx, id, old, new),
            _ => {}
        }
    }
}

fn changed(ctx: &mut DiffContext<'_>, id: &str, old: &Value, new: &Value) {
    let name = display_name(new).or_else(|| display_name(old));
    let label = name.clone().unwrap_or_else(|| id.to_owned());
    for change in field_changes(old, new) {
        if is_volatile(CA, &change.pointer) {
            continue;
        }
        let disabled = change.pointer == "/state" && change.after.and_then(Value::as_str) == Some("disabled");
        let (kind, severity, summary) = if disabled {
            (
                "ca_policy_disabled",
                Severity::High,
                format!(
                    "Conditional Access policy disabled: {label} (was {})",
                    change.before.and_then(Value::as_str).unwrap_or("unknown")
                ),
            )
        } else {
            (
                "ca_policy_changed",
                Severity::Medium,
                format!(
                    "Conditional Access policy {label}: {} changed from {} to {}",
                    change.pointer,
                    change.before.map_or_else(|| "(none)".into(), short),
                    change.after.map_or_else(|| "(none)".into(), short),
                ),
            )
        };
        let event = ctx
            .event(kind, severity, CA, id)
            .name(name.clone())
            .field(change.pointer.clone())
            .before(change.before.cloned())
            .after(change.after.cloned())
            .summary(summary);
        ctx.push(event);
        ctx.claims.field(CA, id, &change.pointer);
    }
}
