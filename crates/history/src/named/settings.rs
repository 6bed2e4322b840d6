//! Tenant-wide settings: security defaults, domains, licence counts and the
//! secure score.

use serde_json::{Map, Value, json};

use crate::dataprint::{display_name, sorted_keys};
use crate::events::{DiffContext, Severity, union_keys};

const SECURITY_DEFAULTS: &str = "securityDefaults";
const DOMAINS: &str = "domains";
const SKUS: &str = "subscribedSkus";
const SECURE_SCORES: &str = "secureScores";

/// The singleton's id and its `isEnabled` flag. The collection holds one
/// object; the first by id is taken so that a malformed one stays
/// deterministic.
fn defaults_flag(c: &Map<String, Value>) -> Option<(&str, bool)> {
    let id = *sorted_keys(c).first()?;
    let enabled = c.get(id)?.get("isEnabled")?.as_bool()?;
    Some((id, enabled))
}

pub(crate) fn security_defaults(ctx: &mut DiffContext<'_>) {
    let Some((before, after)) = ctx.both(SECURITY_DEFAULTS) else {
        return;
    };
    let (Some((_, was)), Some((id, is))) = (defaults_flag(before), defaults_flag(after)) else {
        return;
    };
    if was == is {
        return;
    }
    let event = if is {
        ctx.event("security_defaults_enabled", Severity::Low, SECURITY_DEFAULTS, id)
            .summary("Security defaults enabled".to_owned())
    } else {
        // Turning security defaults off is the intended step when
        // Conditional Access takes over; without any enabled CA policy the
        // tenant is left with no baseline protection at all.
        let enabled_ca = ctx
            .after
            .collection("conditionalAccessPolicies")
            .map(|c| c.values().filter(|p| p.get("state").and_then(Value::as_str) == Some("enabled")).count());
        match enabled_ca {
            Some(0) => ctx
                .event("security_defaults_disabled", Severity::Critical, SECURITY_DEFAULTS, id)
                .summary("Security defaults disabled and no Conditional Access policy is enabled".to_owned()),
            Some(n) => ctx
                .event("security_defaults_disabled", Severity::High, SECURITY_DEFAULTS, id)
                .summary(format!("Security defaults disabled ({n} Conditional Access policies enabled)")),
            None => ctx
                .event("security_defaults_disabled", Severity::High, SECURITY_DEFAULTS, id)
                .summary("Security defaults disabled (Conditional Access state unknown)".to_owned()),
        }
    };
    let event = event
        .name(Some("Security defaults".to_owned()))
        .field("/isEnabled")
        .before(Some(Value::Bool(was)))
        .after(Some(Value::Bool(is)));
    ctx.push(event);
    ctx.claims.field(SECURITY_DEFAULTS, id, "/isEnabled");
}

pub(crate) fn domains(ctx: &mut DiffContext<'_>) {
    let Some((before, after)) = ctx.both(DOMAINS) else {
        return;
    };
    for id in union_keys(before, after) {
        match (before.get(id), after.get(id)) {
            (None, Some(domain)) => {
                let event = ctx
                    .event("domain_added", Severity::Medium, DOMAINS, id)
                    .name(Some(id.to_owned()))
                    .after(Some(domain.clone()))
                    .summary(format!("Domain added: {id}"));
                ctx.push(event);
                ctx.claims.object(DOMAINS, id);
            }
            (Some(domain), None) => {
                let event = ctx
                    .event("domain_removed", Severity::Medium, DOMAINS, id)
                    .name(Some(id.to_owned()))
                    .before(Some(domain.clone()))
                    .summary(format!("Domain removed: {id}"));
                ctx.push(event);
                ctx.claims.object(DOMAINS, id);
            }
            (Some(old), Some(new)) => {
                let was = old.get("authenticationType");
                let is = new.get("authenticationType");
                if was == is {
                    continue;
                }
                // A domain switched to federation hands sign-in for its users
                // to another identity provider, a known takeover technique.
                let federated = is.and_then(Value::as_str) == Some("Federated");
                let severity = if federated { Severity::High } else { Severity::Medium };
                let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("unknown").to_owned();
                let event = ctx
                    .event("domain_authentication_changed", severity, DOMAINS, id)
                    .name(Some(id.to_owned()))
                    .field("/authenticationType")
                    .before(was.cloned())
                    .after(is.cloned())
                    .summary(format!("Domain {id} authentication changed from {} to {}", text(was), text(is)));
                ctx.push(event);
                ctx.claims.field(DOMAINS, id, "/authenticationType");
            }
            (None, None) => {}
        }
    }
}

pub(crate) fn licences(ctx: &mut DiffContext<'_>) {
    let Some((before, after)) = ctx.both(SKUS) else {
        return;
    };
    for (id, new) in after {
        let Some(old) = before.get(id) else {
            continue;
        };
        let sku = display_name(new).unwrap_or_else(|| id.clone());
        for (pointer, what) in [("/prepaidUnits/enabled", "purchased"), ("/consumedUnits", "assigned")] {
            let was = old.pointer(pointer);
            let is = new.pointer(pointer);
            if was == is {
                continue;
            }
            let number = |v: Option<&Value>| v.map_or_else(|| "unknown".to_owned(), Value::to_string);
            let event = ctx
                .event("licence_count_changed", Severity::Info, SKUS, id)
                .name(Some(sku.clone()))
                .field(pointer)
                .before(was.cloned())
                .after(is.cloned())
                .summary(format!("{sku}: {what} licences changed from {} to {}", number(was), number(is)));
            ctx.push(event);
            ctx.claims.field(SKUS, id, pointer);
        }
    }
}

/// The latest score of the collection: the newest `createdDateTime`, then the
/// highest id so that ties stay deterministic.
fn latest(c: &Map<String, Value>) -> Option<(&str, &Value)> {
    c.iter()
        .max_by(|(ka, a), (kb, b)| {
            let da = a.get("createdDateTime").and_then(Value::as_str);
            let db = b.get("createdDateTime").and_then(Value::as_str);
            da.cmp(&db).then_with(|| ka.cmp(kb))
        })
        .map(|(k, v)| (k.as_str(), v))
}

/// The secure score gets a new object every day, so a generic diff would
/// report one removal and one addition per run; this compares the latest
/// figures instead and claims the whole collection.
pub(crate) fn secure_score(ctx: &mut DiffContext<'_>) {
    let Some((before, after)) = ctx.both(SECURE_SCORES) else {
        return;
    };
    ctx.claims.collection(SECURE_SCORES);
    let (Some((_, old)), Some((id, new))) = (latest(before), latest(after)) else {
        return;
    };
    let pick = |s: &Value| {
        json!({
            "currentScore": s.get("currentScore").cloned().unwrap_or(Value::Null),
            "maxScore": s.get("maxScore").cloned().unwrap_or(Value::Null),
        })
    };
    let (was, is) = (pick(old), pick(new));
    if was == is {
        return;
    }
    let event = ctx
        .event("secure_score_changed", Severity::Info, SECURE_SCORES, id)
        .name(Some("Secure score".to_owned()))
        .field("/currentScore")
        .summary(format!(
            "Secure score changed from {}/{} to {}/{}",
            was["currentScore"], was["maxScore"], is["currentScore"], is["maxScore"]
        ))
        .before(Some(was))
        .after(Some(is));
    ctx.push(event);
}
