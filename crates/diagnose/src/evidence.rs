//! The evidence every diagnosis shows, and small readers of evidence inside error payloads.

use chrono::DateTime;
use serde_json::Value;

use crate::diagnosis::Evidence;
use crate::facts::{Auth, Facts, Failure};

/// The display name of a role template id, or the id itself.
pub(crate) fn role_name(id: &str) -> String {
    vocab::role(id).map(|r| format!("{} ({id})", r.name)).unwrap_or_else(|| id.to_string())
}

pub(crate) fn role_names(ids: &[String]) -> String {
    ids.iter().map(|i| role_name(i)).collect::<Vec<_>>().join(", ")
}

pub(crate) fn role_list(ids: &[String]) -> String {
    if ids.is_empty() { "(none)".into() } else { role_names(ids) }
}

pub(crate) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() { "(none)".into() } else { items.join(" ") }
}

/// The Conditional Access policy ids of a `claims` challenge.
pub(crate) fn capolids(claims: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(claims) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for key in ["capolids", "polids"] {
        if let Some(values) =
            v.get("access_token").and_then(|a| a.get(key)).and_then(|p| p.get("values")).and_then(Value::as_array)
        {
            ids.extend(values.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }
    ids
}

/// The quoted list after a phrase, as in "API requires one of 'A, B'. Roles on the request ''".
pub(crate) fn quoted_after(message: &str, phrase: &str) -> Option<String> {
    let lower = message.to_lowercase();
    let at = lower.find(phrase)? + phrase.len();
    let rest = message.get(at..)?;
    let open = rest.find(['\'', '"'])?;
    let quote = rest[open..].chars().next()?;
    let inner = &rest[open + quote.len_utf8()..];
    let close = inner.find(quote)?;
    let found = inner[..close].trim();
    if found.is_empty() { None } else { Some(found.to_string()) }
}

/// The permission names that follow a phrase, as in "... MSGraph permissions AuditLog.Read.All".
pub(crate) fn words_after(message: &str, phrase: &str) -> Option<String> {
    let lower = message.to_lowercase();
    let at = lower.find(phrase)? + phrase.len();
    let rest = message.get(at..)?;
    let names: Vec<&str> = rest
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '.'))
        .take_while(|w| w.is_empty() || w.contains('.'))
        .filter(|w| !w.is_empty())
        .collect();
    if names.is_empty() { None } else { Some(names.join(", ")) }
}

/// Decodes the base64 `claims="..."` parameter of a `WWW-Authenticate` header.
pub(crate) fn decode_claims_param(header: &str) -> Option<String> {
    let at = header.find("claims=")? + "claims=".len();
    let rest = header[at..].trim_start_matches(['"', '\'']);
    let end = rest.find(['"', '\'', ',', ' ']).unwrap_or(rest.len());
    let bytes = base64_decode(&rest[..end])?;
    String::from_utf8(bytes).ok()
}

/// A small, lenient base64 (standard or URL-safe, padding optional) decoder; a dependency for
/// one header parameter is not worth it.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' | b'-' => Some(62),
            b'/' | b'_' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in input.as_bytes() {
        if c == b'=' {
            break;
        }
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

fn cut(s: &str, max: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max { flat } else { format!("{}…", flat.chars().take(max).collect::<String>()) }
}

/// One line describing a failure, for summaries.
pub(crate) fn failure_line(f: &Failure) -> String {
    match f {
        Failure::TokenEndpoint(t) => {
            let mut parts = Vec::new();
            if t.http_status != 0 {
                parts.push(format!("HTTP {}", t.http_status));
            }
            if !t.error.is_empty() {
                parts.push(t.error.clone());
            }
            if !t.description.is_empty() {
                parts.push(cut(&t.description, 160));
            }
            format!("token endpoint: {}", parts.join(" "))
        }
        Failure::Graph(g) => format!("Graph HTTP {} {} {}", g.http_status, g.code, cut(&g.message, 160)),
        Failure::Transport(t) => format!("{:?}: {}", t.kind, cut(&t.message, 160)),
        Failure::Text(t) => cut(t, 200),
    }
}

fn push(out: &mut Vec<Evidence>, name: &str, value: Option<String>) {
    if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
        out.push(Evidence::new(name, v));
    }
}

fn unix(ts: i64) -> String {
    DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ts.to_string())
}

/// The evidence shown with every diagnosis: what was seen, whatever the cause.
pub(crate) fn common(facts: &Facts, failure: Option<&Failure>) -> Vec<Evidence> {
    let mut out = Vec::new();
    match failure {
        Some(Failure::TokenEndpoint(t)) => {
            push(&mut out, "layer", Some("token endpoint".into()));
            push(&mut out, "http status", (t.http_status != 0).then(|| t.http_status.to_string()));
            push(&mut out, "error", Some(t.error.clone()));
            let codes: Vec<String> = t.error_codes.iter().map(|c| format!("AADSTS{c}")).collect();
            push(&mut out, "error codes", Some(codes.join(", ")));
            push(&mut out, "description", Some(cut(&t.description, 400)));
            push(&mut out, "suberror", t.suberror.clone());
            if let Some(c) = &t.claims {
                let ids = capolids(c);
                push(&mut out, "conditional access policy ids (capolids)", (!ids.is_empty()).then(|| ids.join(", ")));
            }
            push(&mut out, "trace id", t.trace_id.clone());
            push(&mut out, "correlation id", t.correlation_id.clone());
            push(&mut out, "timestamp", t.timestamp.clone());
            push(&mut out, "url", t.url.clone());
            push(&mut out, "tenant", t.tenant.clone());
        }
        Some(Failure::Graph(g)) => {
            push(&mut out, "layer", Some("Microsoft Graph".into()));
            push(&mut out, "http status", (g.http_status != 0).then(|| g.http_status.to_string()));
            push(&mut out, "graph code", Some(g.code.clone()));
            push(&mut out, "inner code", g.inner_code.clone());
            push(&mut out, "message", Some(cut(&g.message, 400)));
            push(&mut out, "inner message", g.inner_message.clone());
            push(&mut out, "request id", g.request_id.clone());
            push(&mut out, "client request id", g.client_request_id.clone());
            push(&mut out, "date", g.date.clone());
            push(&mut out, "www-authenticate", g.www_authenticate.clone());
            let req = match (&g.method, &g.url) {
                (Some(m), Some(u)) => Some(format!("{m} {u}")),
                (None, Some(u)) => Some(u.clone()),
                _ => None,
            };
            push(&mut out, "request", req);
        }
        Some(Failure::Transport(t)) => {
            push(&mut out, "layer", Some("network".into()));
            push(&mut out, "transport error", Some(format!("{:?}", t.kind)));
            push(&mut out, "url", t.url.clone());
            push(&mut out, "message", Some(cut(&t.message, 400)));
        }
        Some(Failure::Text(t)) => {
            push(&mut out, "text", Some(cut(t, 400)));
        }
        None => {}
    }
    if let Some(c) = &facts.claims {
        out.push(Evidence::new("token amr", list_or_none(&c.amr)));
        if !c.scp.is_empty() {
            out.push(Evidence::new("token scp", c.scp.join(" ")));
        }
        if !c.roles.is_empty() {
            out.push(Evidence::new("token roles", c.roles.join(" ")));
        }
        if !c.wids.is_empty() {
            out.push(Evidence::new("token wids", role_names(&c.wids)));
        }
        push(&mut out, "token tid", c.tid.clone());
        push(&mut out, "token upn", c.upn.clone());
        push(&mut out, "token appid", c.appid.clone());
        push(&mut out, "token idtyp", c.idtyp.clone());
        push(&mut out, "token ipaddr", c.ipaddr.clone());
        push(&mut out, "token aud", c.aud.clone());
        push(&mut out, "token issued", c.iat.map(unix));
        push(&mut out, "token expires", c.exp.map(unix));
    }
    if let Some(ctx) = &facts.context {
        push(&mut out, "tenant id", ctx.tenant_id.clone());
        push(&mut out, "tenant name", ctx.tenant_name.clone());
        let auth = match ctx.auth {
            Auth::Gdap => "gdap",
            Auth::App => "app",
            Auth::Direct => "direct",
            Auth::Partner => "partner",
        };
        out.push(Evidence::new("access", auth));
        push(&mut out, "operation", ctx.operation.clone());
        let n = &ctx.needed;
        push(
            &mut out,
            "needed scopes (any one)",
            (!n.delegated_scopes.is_empty()).then(|| n.delegated_scopes.join(", ")),
        );
        push(&mut out, "needed app roles (any one)", (!n.app_roles.is_empty()).then(|| n.app_roles.join(", ")));
        push(&mut out, "needed admin roles (any one)", (!n.admin_roles.is_empty()).then(|| role_names(&n.admin_roles)));
        push(&mut out, "needed licence", n.licence.clone());
        push(&mut out, "cloud", ctx.cloud.clone());
    }
    if let Some(g) = &facts.gdap {
        let rels: Vec<String> = g
            .relationships
            .iter()
            .map(|r| {
                let mut s = format!(
                    "{} [{}]",
                    if r.display_name.is_empty() { &r.id } else { &r.display_name },
                    if r.status.is_empty() { "?" } else { &r.status }
                );
                if let Some(end) = r.end {
                    s.push_str(&format!(" ends {}", end.format("%Y-%m-%d")));
                }
                s.push_str(&format!(", {} role(s), {} assignment(s)", r.roles.len(), r.assignments.len()));
                s
            })
            .collect();
        out.push(Evidence::new("gdap relationships", if rels.is_empty() { "(none)".into() } else { rels.join("; ") }));
        if let Some(groups) = &g.user_groups {
            out.push(Evidence::new("user's partner groups", list_or_none(groups)));
        }
    }
    if let Some(c) = &facts.consent {
        push(&mut out, "service principal present", c.service_principal_present.map(|b| b.to_string()));
        push(&mut out, "granted scopes", (!c.granted_scopes.is_empty()).then(|| c.granted_scopes.join(" ")));
        push(&mut out, "granted app roles", (!c.granted_app_roles.is_empty()).then(|| c.granted_app_roles.join(" ")));
    }
    if let Some(l) = &facts.licence {
        push(&mut out, "licence skus", (!l.skus.is_empty()).then(|| l.skus.join(", ")));
        push(&mut out, "has entra id p1", l.has_p1.map(|b| b.to_string()));
        push(&mut out, "has entra id p2", l.has_p2.map(|b| b.to_string()));
        push(&mut out, "has intune", l.has_intune.map(|b| b.to_string()));
    }
    if let Some(c) = &facts.cache {
        out.push(Evidence::new("token from cache", c.token_from_cache.to_string()));
        push(&mut out, "cached token issued", c.issued_at.map(|t| t.to_rfc3339()));
        push(&mut out, "fresh token succeeded", c.fresh_token_succeeded.map(|b| b.to_string()));
        push(&mut out, "consent changed", c.consent_changed_at.map(|t| t.to_rfc3339()));
        push(&mut out, "refresh token last used", c.last_refresh_use.map(|t| t.to_rfc3339()));
    }
    if let Some(n) = &facts.network {
        push(&mut out, "agent", n.agent.clone());
        push(&mut out, "agent alive", n.agent_alive.map(|b| b.to_string()));
        push(&mut out, "login host reachable", n.login_reachable.map(|b| b.to_string()));
        push(&mut out, "graph host reachable", n.graph_reachable.map(|b| b.to_string()));
        push(&mut out, "egress ip", n.egress_ip.clone());
    }
    push(&mut out, "time", facts.now.map(|t| t.to_rfc3339()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capolids_are_read() {
        let claims = r#"{"access_token":{"capolids":{"essential":true,"values":["a1","b2"]}}}"#;
        assert_eq!(capolids(claims), vec!["a1", "b2"]);
        assert!(capolids("not json").is_empty());
    }

    #[test]
    fn claims_parameter_is_decoded() {
        let header = "Bearer realm=\"\", error=\"insufficient_claims\", claims=\"eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTYwNDEwNjY1MSJ9fX0=\"";
        let decoded = decode_claims_param(header).unwrap();
        assert!(decoded.contains("\"nbf\""));
    }

    #[test]
    fn quoted_list_is_read() {
        let m = "Missing role permissions on the request. API requires one of 'DeviceManagementManagedDevices.Read.All, DeviceManagementManagedDevices.ReadWrite.All'. Roles on the request ''.";
        assert_eq!(
            quoted_after(m, "requires one of").as_deref(),
            Some("DeviceManagementManagedDevices.Read.All, DeviceManagementManagedDevices.ReadWrite.All")
        );
    }

    #[test]
    fn roles_get_names() {
        assert!(role_name("62e90394-69f5-4237-9190-012177145e10").starts_with("Global Administrator"));
        assert_eq!(role_name("x"), "x");
    }
}
