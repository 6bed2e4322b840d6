//! Warnings about things that will break soon, computed from the partner's state.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::advice;
use crate::facts::{GdapRelationship, TokenClaims};
use crate::rules::{GLOBAL_ADMIN, RelState, rel_state};

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// A GDAP relationship ends within 30 days and will not auto-extend.
    GdapExpiring,
    /// A GDAP relationship contains Global Administrator (it cannot auto-extend).
    GdapGlobalAdmin,
    /// A customer is reachable only through Microsoft-led transition (`MLT_`) relationships.
    GdapMltOnly,
    /// The partner token has no MFA claim.
    PartnerTokenWithoutMfa,
    /// The refresh token has been unused for more than 75 of its 90 inactivity days.
    RefreshTokenInactive,
    /// A client secret expires within 30 days or has expired.
    ClientSecretExpiring,
}

/// How urgent a warning is: the scale change events and alerts use. Something that will break soon
/// is `high`; something broken or about to break within a week is `critical`.
pub use vocab::Severity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    pub tenant_id: Option<String>,
    pub summary: String,
    pub fix: Vec<String>,
    pub severity: Severity,
}

/// A client secret of one of tenantscope's apps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// The application (client) id.
    pub app: String,
    /// The tenant the app lives in, when it is a per-customer app.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    pub end: DateTime<Utc>,
}

/// What `warnings` looks at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WarningInput {
    pub now: DateTime<Utc>,
    /// (customer tenant id, customer name, relationship).
    pub relationships: Vec<(String, String, GdapRelationship)>,
    pub partner_claims: Option<TokenClaims>,
    pub refresh_token_last_used: Option<DateTime<Utc>>,
    pub client_secrets: Vec<SecretInfo>,
}

/// Days of the refresh token's inactivity window after which tenantscope warns.
pub const REFRESH_WARN_DAYS: i64 = 75;
/// The refresh token's inactivity window.
pub const REFRESH_WINDOW_DAYS: i64 = 90;
/// How far ahead expiries are announced.
pub const EXPIRY_WARN_DAYS: i64 = 30;

/// Whether an ISO 8601 duration is absent or zero (`PT0S`, `P0D`, ...).
fn is_zero_duration(d: Option<&str>) -> bool {
    match d.map(str::trim) {
        None | Some("") => true,
        Some(d) => !d.chars().any(|c| c.is_ascii_digit() && c != '0'),
    }
}

fn days_left(end: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (end - now).num_days()
}

fn label(name: &str, id: &str) -> String {
    if name.is_empty() { id.to_string() } else { format!("{name} ({id})") }
}

/// Every warning the input supports, the most severe first.
pub fn warnings(input: &WarningInput) -> Vec<Warning> {
    let now = input.now;
    let mut out = Vec::new();

    for (tenant, name, r) in &input.relationships {
        let state = rel_state(r, Some(now));
        let has_ga = r.roles.iter().any(|x| x.eq_ignore_ascii_case(GLOBAL_ADMIN));
        if state == RelState::Active
            && let Some(end) = r.end
        {
            let no_extend = is_zero_duration(r.auto_extend.as_deref()) || has_ga;
            if end > now && end - now <= Duration::days(EXPIRY_WARN_DAYS) && no_extend {
                let left = days_left(end, now);
                out.push(Warning {
                        kind: WarningKind::GdapExpiring,
                        tenant_id: Some(tenant.clone()),
                        summary: format!(
                            "The GDAP relationship \"{}\" with {} ends on {} ({} day(s) left) and will not auto-extend{}.",
                            r.display_name,
                            label(name, tenant),
                            end.format("%Y-%m-%d"),
                            left,
                            if has_ga { " because it contains Global Administrator" } else { "" }
                        ),
                        fix: vec![
                            format!("Turn on auto-extend (P180D) for the relationship in Partner Center > Customers > the customer > Admin relationships ({}), or request a new relationship before it ends.", advice::PARTNER_CUSTOMERS),
                            "A relationship with Global Administrator cannot auto-extend: request a new one without that role.".into(),
                        ],
                        severity: if left <= 7 { Severity::Critical } else { Severity::High },
                    });
            }
        }
        if has_ga && state != RelState::Ended {
            out.push(Warning {
                kind: WarningKind::GdapGlobalAdmin,
                tenant_id: Some(tenant.clone()),
                summary: format!(
                    "The GDAP relationship \"{}\" with {} contains Global Administrator: it cannot auto-extend and grants far more than inspection needs.",
                    r.display_name,
                    label(name, tenant)
                ),
                fix: vec![
                    format!("Request a new relationship with the least-privilege roles `tenantscope permissions` lists and auto-extend on (Partner Center > Customers > the customer > Admin relationships, {}), then let this one end.", advice::PARTNER_CUSTOMERS),
                ],
                severity: Severity::High,
            });
        }
    }

    // Customers whose only usable relationships are Microsoft-led transition ones.
    let mut tenants: Vec<&str> = input.relationships.iter().map(|(t, _, _)| t.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    for tenant in tenants {
        let usable: Vec<&(String, String, GdapRelationship)> = input
            .relationships
            .iter()
            .filter(|(t, _, r)| t == tenant && rel_state(r, Some(now)) == RelState::Active)
            .collect();
        let mlt = |r: &GdapRelationship| r.display_name.to_ascii_uppercase().starts_with("MLT_");
        if !usable.is_empty() && usable.iter().all(|(_, _, r)| mlt(r)) {
            let name = &usable[0].1;
            out.push(Warning {
                kind: WarningKind::GdapMltOnly,
                tenant_id: Some(tenant.to_string()),
                summary: format!(
                    "{} is reachable only through Microsoft-led transition relationships (MLT_), which are read-only, limited in roles and time.",
                    label(name, tenant)
                ),
                fix: vec![format!(
                    "Request a proper GDAP relationship with the roles tenantscope needs (Partner Center > Customers > the customer > Admin relationships, {}).",
                    advice::PARTNER_CUSTOMERS
                )],
                severity: Severity::High,
            });
        }
    }

    if let Some(c) = &input.partner_claims
        && !c.has_mfa()
        && !c.is_app_only()
    {
        out.push(Warning {
            kind: WarningKind::PartnerTokenWithoutMfa,
            tenant_id: c.tid.clone(),
            summary: format!(
                "The partner token has no MFA claim (amr: {}): customers will refuse delegated access.",
                if c.amr.is_empty() { "(none)".to_string() } else { c.amr.join(", ") }
            ),
            fix: advice::default_fix(crate::cause::Cause::MfaClaimMissing),
            severity: Severity::Critical,
        });
    }

    if let Some(last) = input.refresh_token_last_used {
        let idle = (now - last).num_days();
        if idle > REFRESH_WARN_DAYS {
            let expired = idle >= REFRESH_WINDOW_DAYS;
            out.push(Warning {
                kind: WarningKind::RefreshTokenInactive,
                tenant_id: None,
                summary: if expired {
                    format!("The partner refresh token has not been used for {idle} days: it has expired after {REFRESH_WINDOW_DAYS} days of inactivity.")
                } else {
                    format!(
                        "The partner refresh token has not been used for {idle} days; it expires after {REFRESH_WINDOW_DAYS} days of inactivity ({} day(s) left).",
                        REFRESH_WINDOW_DAYS - idle
                    )
                },
                fix: vec![
                    "Run any inspection (or `tenantscope doctor`) so the refresh token is redeemed, and keep a schedule running.".into(),
                    "If it has expired, sign in again with `tenantscope login`.".into(),
                ],
                severity: if expired { Severity::Critical } else { Severity::High },
            });
        }
    }

    for s in &input.client_secrets {
        let who = s.display_name.clone().unwrap_or_else(|| s.app.clone());
        if s.end <= now || s.end - now <= Duration::days(EXPIRY_WARN_DAYS) {
            let expired = s.end <= now;
            out.push(Warning {
                kind: WarningKind::ClientSecretExpiring,
                tenant_id: s.tenant.clone(),
                summary: if expired {
                    format!("The client secret of {who} expired on {}.", s.end.format("%Y-%m-%d"))
                } else {
                    format!(
                        "The client secret of {who} expires on {} ({} day(s) left).",
                        s.end.format("%Y-%m-%d"),
                        days_left(s.end, now)
                    )
                },
                fix: advice::default_fix(crate::cause::Cause::ClientCredentialExpired),
                severity: if expired { Severity::Critical } else { Severity::High },
            });
        }
    }

    out.sort_by_key(|w| std::cmp::Reverse(w.severity));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_durations() {
        assert!(is_zero_duration(None));
        assert!(is_zero_duration(Some("PT0S")));
        assert!(is_zero_duration(Some("P0D")));
        assert!(!is_zero_duration(Some("P180D")));
    }
}
