//! The partner dataprint: GDAP relationships and customers.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::dataprint::{display_name, parse_time, short};
use crate::events::{DiffContext, Severity, union_keys};
use crate::generic::{field_changes, is_volatile};

const RELATIONSHIPS: &str = "delegatedAdminRelationships";
const CUSTOMERS: &str = "delegatedAdminCustomers";

/// How close to its end an active relationship without auto-extension is
/// reported as ending soon.
const ENDING_SOON_DAYS: i64 = 30;

const TERMINATING: &[&str] = &["terminationRequested", "terminating", "terminated"];

fn status(r: &Value) -> Option<&str> {
    r.get("status").and_then(Value::as_str)
}

/// Whether a relationship extends itself at its end date. `PT0S` is Graph's
/// way of saying it does not; a missing duration is read the same way.
fn auto_extends(r: &Value) -> bool {
    r.get("autoExtendDuration").and_then(Value::as_str).is_some_and(|d| !d.is_empty() && d != "PT0S")
}

/// Days left until the end of an active relationship that will not extend
/// itself, when that end is within the warning window at `now`.
fn ending_soon(r: &Value, now: DateTime<Utc>) -> Option<i64> {
    if status(r) != Some("active") || auto_extends(r) {
        return None;
    }
    let end = parse_time(r.get("endDateTime")?.as_str()?)?;
    let left = end.signed_duration_since(now);
    if left.num_seconds() < 0 || left.num_days() > ENDING_SOON_DAYS {
        return None;
    }
    Some(left.num_days())
}

pub(crate) fn relationships(ctx: &mut DiffContext<'_>) {
    let Some((before, after)) = ctx.both(RELATIONSHIPS) else {
        return;
    };
    // The run's own start is "now" for each dataprint, so the same pair of
    // dataprints always gives the same events.
    let now_after = ctx.after.started_at();
    let now_before = ctx.before.started_at().or(now_after);
    for id in union_keys(before, after) {
        let old = before.get(id);
        let new = after.get(id);
        let name = new.or(old).and_then(display_name);
        let label = name.clone().unwrap_or_else(|| id.to_owned());
        match (old, new) {
            (None, Some(r)) => {
                let customer = r.pointer("/customer/displayName").and_then(Value::as_str).unwrap_or("unknown customer");
                let event = ctx
                    .event("gdap_relationship_created", Severity::Low, RELATIONSHIPS, id)
                    .name(name.clone())
                    .after(Some(r.clone()))
                    .summary(format!(
                        "GDAP relationship created: {label} with {customer} (status {})",
                        status(r).unwrap_or("unknown")
                    ));
                ctx.push(event);
                ctx.claims.object(RELATIONSHIPS, id);
            }
            (Some(o), Some(n)) if o != n => changed(ctx, id, &label, name.clone(), o, n),
            _ => {}
        }
        if let (Some(r), Some(now)) = (new, now_after)
            && let Some(days) = ending_soon(r, now)
        {
            let was_soon = match (old, now_before) {
                (Some(o), Some(then)) => ending_soon(o, then).is_some(),
                _ => false,
            };
            if !was_soon {
                let event = ctx
                    .event("gdap_relationship_ending_soon", Severity::High, RELATIONSHIPS, id)
                    .name(name)
                    .field("/endDateTime")
                    .after(Some(json!({
                        "endDateTime": r.get("endDateTime").cloned().unwrap_or(Value::Null),
                        "autoExtendDuration": r.get("autoExtendDuration").cloned().unwrap_or(Value::Null),
                        "daysLeft": days,
                    })))
                    .summary(format!("GDAP relationship {label} ends in {days} days and does not auto-extend"));
                ctx.push(event);
            }
        }
    }
}

fn changed(ctx: &mut DiffContext<'_>, id: &str, label: &str, name: Option<String>, old: &Value, new: &Value) {
    for change in field_changes(old, new) {
        if is_volatile(RELATIONSHIPS, &change.pointer) {
            continue;
        }
        let from = change.before.and_then(Value::as_str);
        let to = change.after.and_then(Value::as_str);
        let (kind, severity, summary) = if change.pointer == "/status" && to == Some("expired") {
            ("gdap_relationship_expired", Severity::High, format!("GDAP relationship expired: {label}"))
        } else if change.pointer == "/status"
            && to.is_some_and(|t| TERMINATING.contains(&t))
            && !from.is_some_and(|f| TERMINATING.contains(&f))
        {
            (
                "gdap_relationship_terminated",
                Severity::High,
                format!("GDAP relationship terminated: {label} (status {})", to.unwrap_or("unknown")),
            )
        } else {
            // Roles, access assignments and the end of access decide what
            // the partner can do; the rest is bookkeeping.
            let weighty = ["/accessDetails", "/accessAssignments", "/endDateTime", "/autoExtendDuration"]
                .iter()
                .any(|p| change.pointer.starts_with(p));
            (
                "gdap_relationship_changed",
                if weighty { Severity::Medium } else { Severity::Low },
                format!(
                    "GDAP relationship {label}: {} changed from {} to {}",
                    change.pointer,
                    change.before.map_or_else(|| "(none)".into(), short),
                    change.after.map_or_else(|| "(none)".into(), short),
                ),
            )
        };
        let event = ctx
            .event(kind, severity, RELATIONSHIPS, id)
            .name(name.clone())
            .field(change.pointer.clone())
            .before(change.before.cloned())
            .after(change.after.cloned())
            .summary(summary);
        ctx.push(event);
        ctx.claims.field(RELATIONSHIPS, id, &change.pointer);
    }
}

pub(crate) fn customers(ctx: &mut DiffContext<'_>) {
    let Some((before, after)) = ctx.both(CUSTOMERS) else {
        return;
    };
    for id in union_keys(before, after) {
        let (kind, severity, object, verb) = match (before.get(id), after.get(id)) {
            (None, Some(c)) => ("customer_gained", Severity::Info, c, "gained"),
            (Some(c), None) => ("customer_lost", Severity::High, c, "lost"),
            _ => continue,
        };
        let name = display_name(object);
        let mut event = ctx
            .event(kind, severity, CUSTOMERS, id)
            .name(name.clone())
            .summary(format!("Customer {verb}: {}", name.as_deref().unwrap_or(id)));
        event = if verb == "gained" { event.after(Some(object.clone())) } else { event.before(Some(object.clone())) };
        ctx.push(event);
        ctx.claims.object(CUSTOMERS, id);
    }
}
