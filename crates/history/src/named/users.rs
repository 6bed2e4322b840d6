//! Users added, removed, enabled and disabled; MFA registration lost.

use serde_json::{Value, json};

use crate::dataprint::display_name;
use crate::events::{DiffContext, Severity, union_keys};

const USERS: &str = "users";
const REGISTRATION: &str = "userRegistrationDetails";

/// A user's name as an admin would recognise it: display name and UPN.
fn label(user: &Value, id: &str) -> String {
    match (display_name(user), user.get("userPrincipalName").and_then(Value::as_str)) {
        (Some(name), Some(upn)) if name != upn => format!("{name} ({upn})"),
        (Some(name), _) => name,
        (None, Some(upn)) => upn.to_owned(),
        (None, None) => id.to_owned(),
    }
}

pub(crate) fn users(ctx: &mut DiffContext<'_>) {
    let Some((before, after)) = ctx.both(USERS) else {
        return;
    };
    for id in union_keys(before, after) {
        match (before.get(id), after.get(id)) {
            (None, Some(user)) => {
                let event = ctx
                    .event("user_added", Severity::Low, USERS, id)
                    .name(display_name(user))
                    .after(Some(user.clone()))
                    .summary(format!("User added: {}", label(user, id)));
                ctx.push(event);
                ctx.claims.object(USERS, id);
                // A new user gets a registration record as a consequence;
                // reporting that too would say the same thing twice.
                ctx.claims.object(REGISTRATION, id);
            }
            (Some(user), None) => {
                let event = ctx
                    .event("user_removed", Severity::Medium, USERS, id)
                    .name(display_name(user))
                    .before(Some(user.clone()))
                    .summary(format!("User removed: {}", label(user, id)));
                ctx.push(event);
                ctx.claims.object(USERS, id);
                ctx.claims.object(REGISTRATION, id);
            }
            (Some(old), Some(new)) => {
                let was = old.get("accountEnabled").and_then(Value::as_bool);
                let is = new.get("accountEnabled").and_then(Value::as_bool);
                let (kind, severity, verb) = match (was, is) {
                    (Some(false), Some(true)) => ("user_enabled", Severity::Low, "enabled"),
                    (Some(true), Some(false)) => ("user_disabled", Severity::Info, "disabled"),
                    _ => continue,
                };
                let event = ctx
                    .event(kind, severity, USERS, id)
                    .name(display_name(new))
                    .field("/accountEnabled")
                    .before(was.map(Value::Bool))
                    .after(is.map(Value::Bool))
                    .summary(format!("User {verb}: {}", label(new, id)));
                ctx.push(event);
                ctx.claims.field(USERS, id, "/accountEnabled");
            }
            (None, None) => {}
        }
    }
}

/// Reports users whose registration details went from MFA-registered to not
/// registered. Gaining a registration is not an alert-worthy event and is
/// left to the generic diff.
pub(crate) fn mfa_registration(ctx: &mut DiffContext<'_>) {
    let Some((before, after)) = ctx.both(REGISTRATION) else {
        return;
    };
    for (id, new) in after {
        let Some(old) = before.get(id) else {
            continue;
        };
        let was = old.get("isMfaRegistered").and_then(Value::as_bool);
        let is = new.get("isMfaRegistered").and_then(Value::as_bool);
        if was != Some(true) || is != Some(false) {
            continue;
        }
        let admin = [old, new].iter().any(|r| r.get("isAdmin").and_then(Value::as_bool) == Some(true));
        let severity = if admin { Severity::High } else { Severity::Medium };
        let pick = |r: &Value| {
            json!({
                "isMfaRegistered": r.get("isMfaRegistered").cloned().unwrap_or(Value::Null),
                "isMfaCapable": r.get("isMfaCapable").cloned().unwrap_or(Value::Null),
                "methodsRegistered": r.get("methodsRegistered").cloned().unwrap_or(Value::Null),
            })
        };
        let who = label(new, id);
        let summary = if admin {
            format!("Admin lost MFA registration: {who}")
        } else {
            format!("User lost MFA registration: {who}")
        };
        let event = ctx
            .event("mfa_registration_lost", severity, REGISTRATION, id)
            .name(display_name(new))
            .field("/isMfaRegistered")
            .before(Some(pick(old)))
            .after(Some(pick(new)))
            .summary(summary);
        ctx.push(event);
        // The capability and the method list change with the registration;
        // the event carries them, so they are claimed with it.
        for pointer in ["/isMfaRegistered", "/isMfaCapable", "/methodsRegistered"] {
            ctx.claims.field(REGISTRATION, id, pointer);
        }
    }
}
