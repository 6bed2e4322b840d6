//! The built-in metric library.
//!
//! Each metric is a plain JMESPath expression (with this crate's extra
//! functions), so users can read, copy and adapt them in their own
//! configuration. `docs/history.md` lists them; a test checks that the
//! documentation and this table agree.

use std::sync::LazyLock;

use crate::events::HIGH_PRIVILEGE_PERMISSIONS;
use crate::metrics::Metric;

/// The Global Administrator role template id.
const GA: &str = "62e90394-69f5-4237-9190-012177145e10";

/// SKUs with this many units or more are free or viral offers (FLOW_FREE,
/// POWER_BI_STANDARD, ...) whose unit counts would drown the real ones.
const FREE_SKU_UNITS: u32 = 10_000;

struct Def {
    name: &'static str,
    unit: Option<&'static str>,
    description: &'static str,
    query: String,
    requires: Option<&'static [&'static str]>,
}

fn def(name: &'static str, unit: Option<&'static str>, description: &'static str, query: &str) -> Def {
    Def { name, unit, description, query: query.to_owned(), requires: None }
}

/// The high-privilege permission list as a JMESPath literal.
fn high_privilege_literal() -> String {
    let quoted: Vec<String> = HIGH_PRIVILEGE_PERMISSIONS.iter().map(|p| format!("\"{p}\"")).collect();
    format!("`[{}]`", quoted.join(","))
}

fn definitions() -> Vec<Def> {
    let paid = format!("values(collections.subscribedSkus)[?(prepaidUnits.enabled || `0`) < `{FREE_SKU_UNITS}`]");
    let high = high_privilege_literal();
    let credentials_30d = "[passwordCredentials || `[]`, keyCredentials || `[]`][] | [?days_until(endDateTime) >= `0` && days_until(endDateTime) <= `30`]";
    let mut defs = vec![
        def("users", Some("users"), "All user accounts.", "length(collections.users)"),
        def(
            "enabled_users",
            Some("users"),
            "Users whose account is enabled.",
            "length(values(collections.users)[?accountEnabled == `true`])",
        ),
        def(
            "guest_users",
            Some("users"),
            "Guest (B2B) users.",
            "length(values(collections.users)[?userType == 'Guest'])",
        ),
        def(
            "licensed_users",
            Some("users"),
            "Users with at least one assigned licence.",
            "length(values(collections.users)[?length(assignedLicenses || `[]`) > `0`])",
        ),
        def(
            "unlicensed_users",
            Some("users"),
            "Enabled member users without any licence.",
            "length(values(collections.users)[?length(assignedLicenses || `[]`) == `0` && accountEnabled == `true` && userType != 'Guest'])",
        ),
        def(
            "disabled_users_with_licences",
            Some("users"),
            "Disabled users that still hold a licence.",
            "length(values(collections.users)[?accountEnabled == `false` && length(assignedLicenses || `[]`) > `0`])",
        ),
        def(
            "stale_accounts",
            Some("users"),
            "Enabled users with no sign-in for more than 90 days (never signed in: created more than 90 days ago); null when the tenant has no sign-in activity (Entra ID P1).",
            "(length(values(collections.users)[?signInActivity]) > `0` || `null`) && length(values(collections.users)[?accountEnabled == `true` && days_since(signInActivity.lastSignInDateTime || createdDateTime) > `90`])",
        ),
        def(
            "users_without_mfa",
            Some("users"),
            "Member users not registered for MFA.",
            "length(values(collections.userRegistrationDetails)[?isMfaRegistered != `true` && userType != 'guest'])",
        ),
        def(
            "admins_without_mfa",
            Some("users"),
            "Admins not registered for MFA.",
            "length(values(collections.userRegistrationDetails)[?isAdmin == `true` && isMfaRegistered != `true`])",
        ),
        def(
            "mfa_registered_pct",
            Some("%"),
            "Share of member users registered for MFA, 0 to 100.",
            "round(mul(div(length(values(collections.userRegistrationDetails)[?isMfaRegistered == `true` && userType != 'guest']), length(values(collections.userRegistrationDetails)[?userType != 'guest'])), `100`), `1`)",
        ),
        Def {
            requires: Some(&["directoryRoles|roleAssignments"]),
            ..def(
                "global_admins",
                Some("principals"),
                "Principals holding Global Administrator tenant-wide.",
                &format!(
                    "length(unique([values(collections.directoryRoles || `{{}}`)[?roleTemplateId == '{GA}'].members[].id, values(collections.roleAssignments || `{{}}`)[?roleDefinitionId == '{GA}' && (directoryScopeId || '/') == '/'].principalId][]))"
                ),
            )
        },
        Def {
            requires: Some(&["directoryRoles|roleAssignments"]),
            ..def(
                "admins",
                Some("principals"),
                "Principals holding at least one directory role.",
                "length(unique([values(collections.directoryRoles || `{}`)[].members[].id, values(collections.roleAssignments || `{}`)[].principalId][]))",
            )
        },
        def(
            "ca_policies",
            Some("policies"),
            "Conditional Access policies.",
            "length(collections.conditionalAccessPolicies)",
        ),
        def(
            "ca_policies_enabled",
            Some("policies"),
            "Conditional Access policies that are enforced.",
            "length(values(collections.conditionalAccessPolicies)[?state == 'enabled'])",
        ),
        def(
            "ca_policies_report_only",
            Some("policies"),
            "Conditional Access policies in report-only mode.",
            "length(values(collections.conditionalAccessPolicies)[?state == 'enabledForReportingButNotEnforced'])",
        ),
        def(
            "security_defaults",
            None,
            "Whether security defaults are enabled.",
            "values(collections.securityDefaults)[0].isEnabled",
        ),
        def(
            "licences_purchased",
            Some("licences"),
            "Enabled licence units of paid SKUs (SKUs with 10,000 units or more are left out).",
            &format!("sum({paid}.prepaidUnits.enabled)"),
        ),
        def(
            "licences_assigned",
            Some("licences"),
            "Assigned licence units of paid SKUs.",
            &format!("sum({paid}.consumedUnits)"),
        ),
        def(
            "unused_licences",
            Some("licences"),
            "Purchased but unassigned units of paid SKUs, summed per SKU.",
            &format!("sum({paid}.max([sub(prepaidUnits.enabled || `0`, consumedUnits || `0`), `0`]))"),
        ),
        def(
            "secure_score_pct",
            Some("%"),
            "Latest Microsoft Secure Score as a percentage of the maximum.",
            "max_by(values(collections.secureScores), &createdDateTime) | round(mul(div(currentScore, maxScore), `100`), `1`)",
        ),
        def(
            "apps_with_expiring_secrets",
            Some("apps"),
            "App registrations with a secret or certificate that expires within 30 days.",
            &format!("length(values(collections.applications)[?length({credentials_30d}) > `0`])"),
        ),
        def(
            "service_principals_with_app_permissions",
            Some("apps"),
            "Service principals holding application permissions.",
            "length(unique(values(collections.appRoleAssignments)[].principalId))",
        ),
        def(
            "high_privilege_app_permissions",
            Some("permissions"),
            "Application permissions granted that are high privilege.",
            &format!("length(values(collections.appRoleAssignments)[?contains({high}, appRoleValue)])"),
        ),
        def(
            "high_privilege_delegated_consents",
            Some("grants"),
            "Delegated consents that include a high-privilege scope.",
            &format!(
                "length(values(collections.oauth2PermissionGrants)[?length(split(scope || '', ' ')[?contains({high}, @)]) > `0`])"
            ),
        ),
        def(
            "federated_domains",
            Some("domains"),
            "Domains whose sign-in is federated to another identity provider.",
            "length(values(collections.domains)[?authenticationType == 'Federated'])",
        ),
        def(
            "customers",
            Some("tenants"),
            "Customers of the partner (partner dataprint).",
            "length(collections.delegatedAdminCustomers)",
        ),
        def(
            "gdap_relationships_active",
            Some("relationships"),
            "Active GDAP relationships (partner dataprint).",
            "length(values(collections.delegatedAdminRelationships)[?status == 'active'])",
        ),
        def(
            "gdap_relationships_expiring_30d",
            Some("relationships"),
            "Active GDAP relationships that end within 30 days and do not auto-extend (partner dataprint).",
            "length(values(collections.delegatedAdminRelationships)[?status == 'active' && (autoExtendDuration || 'PT0S') == 'PT0S' && days_until(endDateTime) >= `0` && days_until(endDateTime) <= `30`])",
        ),
        def(
            "gdap_relationships_with_global_admin",
            Some("relationships"),
            "Active GDAP relationships that include Global Administrator (partner dataprint).",
            &format!(
                "length(values(collections.delegatedAdminRelationships)[?status == 'active' && contains(accessDetails.unifiedRoles[].roleDefinitionId || `[]`, '{GA}')])"
            ),
        ),
    ];
    defs.shrink_to_fit();
    defs
}

static BUILTIN: LazyLock<Vec<Metric>> = LazyLock::new(|| {
    definitions()
        .into_iter()
        .filter_map(|d| {
            let metric = Metric::new(d.name, &d.query).ok()?.with_description(d.description).with_unit(d.unit);
            Some(match d.requires {
                Some(requires) => metric.with_requires(requires),
                None => metric,
            })
        })
        .collect()
});

/// The built-in metrics, compiled.
pub fn builtin_metrics() -> Vec<Metric> {
    BUILTIN.clone()
}

/// The number of built-in definitions, to check that every one compiles.
#[cfg(test)]
pub(crate) fn definition_count() -> usize {
    definitions().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_compiles() {
        for d in definitions() {
            if let Err(e) = Metric::new(d.name, &d.query) {
                panic!("{}: {e}", d.name);
            }
        }
        assert_eq!(builtin_metrics().len(), definition_count());
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<String> = builtin_metrics().iter().map(|m| m.name().to_owned()).collect();
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), before);
    }
}
