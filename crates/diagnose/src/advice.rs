//! The default summary and fix steps of every cause.
//!
//! Rules that know more (a specific AADSTS code, a missing scope, the name of a group) put their
//! own summary and first steps in front of these; the defaults keep every diagnosis actionable.
//! `{tenant}` in a step is replaced by the tenant's name or id when it is known.

use crate::cause::Cause;
use crate::facts::Auth;

pub(crate) const ENTRA: &str = "https://entra.microsoft.com";
pub(crate) const CA_POLICIES: &str =
    "https://entra.microsoft.com/#view/Microsoft_AAD_ConditionalAccess/ConditionalAccessBlade/~/Policies";
pub(crate) const NAMED_LOCATIONS: &str =
    "https://entra.microsoft.com/#view/Microsoft_AAD_ConditionalAccess/ConditionalAccessBlade/~/NamedLocations";
pub(crate) const APP_REGISTRATIONS: &str =
    "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade";
pub(crate) const ENTERPRISE_APPS: &str =
    "https://entra.microsoft.com/#view/Microsoft_AAD_IAM/StartboardApplicationsMenuBlade/~/AppAppsPreview";
pub(crate) const USERS: &str =
    "https://entra.microsoft.com/#view/Microsoft_AAD_UsersAndTenants/UserManagementMenuBlade/~/AllUsers";
pub(crate) const GROUPS: &str =
    "https://entra.microsoft.com/#view/Microsoft_AAD_IAM/GroupsManagementMenuBlade/~/AllGroups";
pub(crate) const RISKY_USERS: &str =
    "https://entra.microsoft.com/#view/Microsoft_AAD_IAM/IdentityProtectionMenuBlade/~/RiskyUsers";
pub(crate) const PARTNER_CUSTOMERS: &str = "https://partner.microsoft.com/dashboard/commerce2/customers";
pub(crate) const M365_LICENCES: &str = "https://admin.microsoft.com/Adminportal/Home#/licenses";
pub(crate) const M365_HEALTH: &str = "https://admin.microsoft.com/Adminportal/Home#/servicehealth";

/// The default fix steps of a cause for the way the tenant is reached, before `{tenant}` is filled
/// in. A tenant read app-only (`tenants add-app`) is fixed in its own app registration, by its own
/// administrators; the partner's app, Partner Center and GDAP have nothing to do with it.
pub(crate) fn default_fix_for(cause: Cause, auth: Option<Auth>) -> Vec<String> {
    if auth == Some(Auth::App)
        && let Some(steps) = app_only_fix(cause)
    {
        return steps;
    }
    default_fix(cause)
}

/// Fix steps for a customer read with its own app registration, where they differ.
fn app_only_fix(cause: Cause) -> Option<Vec<String>> {
    Some(match cause {
        Cause::ConsentMissing => vec![
            format!(
                "Have an administrator of {{tenant}} grant admin consent to the app tenantscope uses there: Entra admin centre of {{tenant}} > App registrations > the app > API permissions > Grant admin consent ({APP_REGISTRATIONS})."
            ),
            "Consent takes a few minutes to apply; then get a new token with `tenantscope inspect --tenant {tenant_id} --clear-cache`.".into(),
        ],
        Cause::PermissionMissing => vec![
            format!(
                "In {{tenant}}'s own app registration, add the missing Microsoft Graph application permission (Entra admin centre of {{tenant}} > App registrations > the app > API permissions > Add a permission > Microsoft Graph > Application permissions, {APP_REGISTRATIONS}); `tenantscope permissions` lists what each collector needs."
            ),
            "On the same page, have an administrator of {tenant} grant admin consent: application permissions take effect only once consented.".into(),
            "Get a token that carries the new permission: `tenantscope inspect --tenant {tenant_id} --clear-cache`.".into(),
        ],
        Cause::AppNotFound => vec![
            format!(
                "The client id stored for {{tenant}} names no enabled app there: check Entra admin centre of {{tenant}} > App registrations ({APP_REGISTRATIONS}) and Enterprise applications ({ENTERPRISE_APPS}) > the app > Properties > Enabled for users to sign in."
            ),
            "Store the right client id and credential with `tenantscope tenants add-app --tenant {tenant_id} ...`.".into(),
        ],
        Cause::ClientCredentialInvalid => vec![
            format!(
                "Check the credential of {{tenant}}'s app in its Entra admin centre > App registrations > the app > Certificates & secrets ({APP_REGISTRATIONS}): a secret must be the secret's Value (not its Secret ID), a certificate must be the one whose thumbprint is registered there."
            ),
            "Store the corrected credential with `tenantscope tenants add-app --tenant {tenant_id} ...` and run `tenantscope doctor --tenant {tenant_id}`.".into(),
        ],
        Cause::ClientCredentialExpired => vec![
            format!(
                "Create a new client secret, or better upload a certificate, for {{tenant}}'s app: its Entra admin centre > App registrations > the app > Certificates & secrets ({APP_REGISTRATIONS})."
            ),
            "Store it with `tenantscope tenants add-app --tenant {tenant_id} ...` (it replaces the expired one) and delete the expired secret in the app registration; tenantscope warns 30 days before a secret expires.".into(),
        ],
        Cause::TokenInvalid => vec![
            "Get a new token: `tenantscope inspect --tenant {tenant_id} --clear-cache` evicts the cached one.".into(),
            "If a fresh token is rejected too, decode it with `tenantscope token --tenant {tenant_id}`: `aud` must be the Graph host of the configured cloud, `tid` the tenant's id, `roles` the app's consented permissions, and `exp` in the future (check the machine's clock).".into(),
        ],
        _ => return None,
    })
}

/// The default fix steps of a cause, before `{tenant}` is filled in.
pub(crate) fn default_fix(cause: Cause) -> Vec<String> {
    let steps: Vec<String> = match cause {
        Cause::MfaClaimMissing => vec![
            format!(
                "Enforce Microsoft Entra MFA for the partner account tenantscope signs in with: a Conditional Access policy that requires MFA for it (Entra admin centre > Protection > Conditional Access, {CA_POLICIES}) or security defaults in the partner tenant."
            ),
            "Third-party MFA (Okta, Duo, OneLogin and other federated providers) does not satisfy it: the token's `amr` claim must list `mfa`, which only Microsoft Entra MFA puts there.".into(),
            "Sign in again with `tenantscope login` in a private browser window, complete the MFA prompt, then confirm with `tenantscope token --claims` that `amr` lists `mfa`.".into(),
        ],
        Cause::MfaRequired => vec![
            "Sign in again interactively with `tenantscope login` and complete the multi-factor prompt; a refresh token cannot satisfy an MFA demand on its own.".into(),
            "If the account has no MFA method registered yet, register one at https://aka.ms/mfasetup (https://mysignins.microsoft.com/security-info).".into(),
            "If only {tenant} asks for it, that customer's Conditional Access requires MFA from service provider users; a partner sign-in done with Microsoft Entra MFA satisfies it, so enforce Entra MFA in the partner tenant instead of weakening the customer's policy.".into(),
        ],
        Cause::MfaExpired => vec![
            "Sign in again with `tenantscope login` to get a fresh MFA session.".into(),
            format!(
                "To stop it recurring, exclude service provider users from the sign-in frequency session control of the policy in {{tenant}}: Entra admin centre > Protection > Conditional Access ({CA_POLICIES}) > the policy > Users > Exclude > Guest or external users > Service provider users."
            ),
        ],
        Cause::ConditionalAccessBlocked => vec![
            format!(
                "Find the policy in the sign-in logs of {{tenant}} (Entra admin centre > Monitoring & health > Sign-in logs, {ENTRA}); the error's `capolids` policy ids, when present, are in the evidence."
            ),
            format!(
                "Exclude service provider users from that policy (Entra admin centre > Protection > Conditional Access, {CA_POLICIES} > the policy > Users > Exclude > Guest or external users > Service provider users), or add the egress IP shown in the evidence as a trusted named location ({NAMED_LOCATIONS})."
            ),
            "Or run this tenant's inspections from a tenantscope agent whose static egress IP the policy allows.".into(),
        ],
        Cause::GdapMissing => vec![
            format!(
                "Request a GDAP relationship with {{tenant}} in Partner Center: Customers > the customer > Admin relationships > Request admin relationship ({PARTNER_CUSTOMERS}), with the least-privilege roles listed by `tenantscope permissions`."
            ),
            "Have a Global Administrator of the customer approve it with the link Partner Center gives (https://admin.microsoft.com/AdminPortal/Home#/partners/invitation/granularAdminRelationships/<relationship id>).".into(),
            "Assign the roles to a partner security group that contains the tenantscope user, then sign in again with `tenantscope login`.".into(),
        ],
        Cause::GdapExpired => vec![
            format!(
                "Request a new GDAP relationship with {{tenant}} in Partner Center (Customers > the customer > Admin relationships, {PARTNER_CUSTOMERS}) and have the customer approve it."
            ),
            "Turn on auto-extend (P180D) on the new relationship; a relationship that contains Global Administrator cannot auto-extend, so leave that role out.".into(),
            "Re-create the access assignments to the partner security groups, then run `tenantscope doctor --tenant {tenant_id}`.".into(),
        ],
        Cause::GdapRoleMissing => vec![
            format!(
                "Give the tenantscope user the needed Entra role in {{tenant}}: add the role to the GDAP relationship and assign it to a security group that contains the user (Partner Center > Customers > the customer > Admin relationships > the relationship > Assign roles, {PARTNER_CUSTOMERS})."
            ),
            "`tenantscope permissions` lists the Entra roles each collector needs.".into(),
            "Role and group changes reach tokens only after a new token is issued: run `tenantscope inspect --tenant {tenant_id} --clear-cache`.".into(),
        ],
        Cause::ConsentMissing => vec![
            format!(
                "Consent tenantscope's app in {{tenant}}: from the partner side call the Partner Center applicationconsents API (POST https://api.partnercenter.microsoft.com/v1/customers/<customer tenant id>/applicationconsents, needs a GDAP role of Cloud Application Administrator or Global Administrator), or have a customer administrator grant admin consent (Entra admin centre > Enterprise applications, {ENTERPRISE_APPS})."
            ),
            "Consent takes a few minutes to apply; then get a new token with `tenantscope inspect --tenant {tenant_id} --clear-cache`.".into(),
        ],
        Cause::PermissionMissing => vec![
            format!(
                "Add the missing permission to tenantscope's app registration in the partner tenant (Entra admin centre > App registrations > the app > API permissions, {APP_REGISTRATIONS}); `tenantscope permissions` lists what each collector needs."
            ),
            "Consent again in {tenant} (Partner Center applicationconsents API, or admin consent in the customer's Enterprise applications), because a consent only covers the permissions it was given.".into(),
            "Get a token that carries the new permission: `tenantscope inspect --tenant {tenant_id} --clear-cache`.".into(),
        ],
        Cause::LicenseMissing => vec![
            format!(
                "The data needs a licence {{tenant}} does not have (sign-in logs, sign-in activity and risk data need Microsoft Entra ID P1 or P2; Intune data needs Intune). Check the tenant's licences in Microsoft 365 admin centre > Billing > Licences ({M365_LICENCES})."
            ),
            "Nothing is wrong with tenantscope's access: the collector is reported as skipped for this tenant until the licence is present.".into(),
        ],
        Cause::TokenInvalid => vec![
            "Get a new token: `tenantscope inspect --tenant {tenant_id} --clear-cache` evicts the cached one.".into(),
            "If a fresh token is rejected too, decode it with `tenantscope token --tenant {tenant_id} --claims`: `aud` must be the Graph host of the configured cloud, `tid` the customer's tenant id, and `exp` in the future (check the machine's clock).".into(),
        ],
        Cause::TokenCacheStale => vec![
            "Evict the cached token, which was issued before consent, roles or group membership changed: `tenantscope inspect --tenant {tenant_id} --clear-cache`.".into(),
            "tenantscope evicts tokens itself when it makes a consent change; this happens when the change was made elsewhere (Partner Center, the Entra admin centre).".into(),
        ],
        Cause::RefreshTokenExpired => vec![
            "Sign in again with `tenantscope login` as the partner account, completing Microsoft MFA.".into(),
            "A refresh token expires after 90 days without use; keep scheduled runs enabled so it is redeemed regularly (tenantscope warns when it has not been used for 75 days).".into(),
        ],
        Cause::RefreshTokenRevoked => vec![
            "Sign in again with `tenantscope login`: the account's sessions were revoked, usually by a password change or reset or by an administrator revoking sessions.".into(),
            format!(
                "If nobody changed the password, look at the account's audit and sign-in logs in the partner tenant (Entra admin centre > Users > the user, {USERS})."
            ),
        ],
        Cause::ClientCredentialInvalid => vec![
            format!(
                "Check the app's credential in Entra admin centre > App registrations > the app > Certificates & secrets ({APP_REGISTRATIONS}): a secret must be the secret's Value (not its Secret ID), a certificate must be the one whose thumbprint is registered there."
            ),
            "Store the corrected credential in tenantscope and run `tenantscope doctor --tenant {tenant_id}`.".into(),
        ],
        Cause::ClientCredentialExpired => vec![
            format!(
                "Create a new client secret, or better upload a certificate, in Entra admin centre > App registrations > the app > Certificates & secrets ({APP_REGISTRATIONS})."
            ),
            "Store it in tenantscope and delete the expired secret; tenantscope warns 30 days before a secret expires.".into(),
        ],
        Cause::AppNotFound => vec![
            format!(
                "Check the application (client) id tenantscope uses against Entra admin centre > App registrations ({APP_REGISTRATIONS}); the app must be multi-tenant to be used in customer tenants."
            ),
            format!(
                "In {{tenant}} the app must exist and be enabled: consent it there (Partner Center applicationconsents API or admin consent) and check Enterprise applications ({ENTERPRISE_APPS}) > the app > Properties > Enabled for users to sign in."
            ),
        ],
        Cause::AccountDisabled => vec![
            format!(
                "Enable the account (Entra admin centre > Users > the user > Properties > Account enabled, {USERS}) or sign in to tenantscope with another partner account."
            ),
        ],
        Cause::AccountLocked => vec![
            "The account is locked by smart lockout after repeated failed sign-ins, or the sign-in came from an IP address Microsoft considers malicious. Wait for the lockout to end or reset the password at https://passwordreset.microsoftonline.com.".into(),
            format!(
                "Find the source of the failed attempts in the account's sign-in logs (Entra admin centre > Users > the user > Sign-in logs, {USERS})."
            ),
        ],
        Cause::InvalidCredentials => vec![
            "The user name or password is wrong: check which account tenantscope signs in with and sign in again with `tenantscope login`.".into(),
            "tenantscope does not need a stored password: use the interactive or device-code sign-in for the partner account.".into(),
        ],
        Cause::PasswordExpired => vec![
            "Change the account's password (at the next interactive sign-in or https://passwordreset.microsoftonline.com), then sign in again with `tenantscope login`.".into(),
        ],
        Cause::TenantNotFound => vec![
            "Check the tenant id or domain: the customer tenant may have been deleted, the domain misspelt, or the tenant may belong to another Microsoft cloud.".into(),
            format!(
                "Compare with the customer list in Partner Center ({PARTNER_CUSTOMERS}) and remove deleted customers from tenantscope's tenant list."
            ),
        ],
        Cause::PartnerBlockedRisk => vec![
            format!(
                "Microsoft Entra ID Protection found risk on the partner account in the partner tenant, so its delegated admin access to customers is blocked. Remediate it in the partner tenant: Entra admin centre > Protection > Identity Protection > Risky users ({RISKY_USERS})."
            ),
            "Reset the account's password (or confirm the user safe after investigation), then sign in again with `tenantscope login`.".into(),
        ],
        Cause::Throttled => vec![
            "Microsoft is throttling the requests; tenantscope honours Retry-After and retries, so a later run usually succeeds.".into(),
            "If it keeps happening, inspect fewer tenants at once or spread the schedule; the evidence shows Retry-After when Microsoft sent one.".into(),
        ],
        Cause::ServiceUnavailable => vec![
            format!(
                "Microsoft's service returned a server error: retry later, and check Microsoft 365 admin centre > Health > Service health ({M365_HEALTH}) for an incident."
            ),
            "Quote the request id, trace id and timestamp from the evidence if you open a case with Microsoft.".into(),
        ],
        Cause::NetworkUnreachable => vec![
            "The machine that ran the inspection could not reach Microsoft: check DNS, proxy and firewall rules for login.microsoftonline.com and graph.microsoft.com (or the hosts of the configured cloud).".into(),
            "If a TLS-inspecting proxy is in the path, give tenantscope its CA certificate with `--ca-file`.".into(),
            "Run `tenantscope doctor --tenant {tenant_id}` from the same machine or agent; check 6 tests reachability.".into(),
        ],
        Cause::WrongCloud => vec![
            "The tenant or host belongs to another Microsoft cloud (GCC High, DoD or China operated by 21Vianet): run tenantscope for it with the matching `--cloud` (global, usgov, usgov-dod, china).".into(),
            "Tokens do not cross clouds: sign in again with `tenantscope login --cloud <cloud>` for that cloud.".into(),
        ],
        Cause::UserNotInTenant => vec![
            format!(
                "Give the partner user a way into {{tenant}}: add it to a partner security group that an active GDAP relationship with this customer assigns roles to (Entra admin centre > Groups in the partner tenant, {GROUPS}; Partner Center > Customers > the customer > Admin relationships, {PARTNER_CUSTOMERS})."
            ),
            "If the user was once invited into the customer as a guest, delete that stale guest account in the customer tenant.".into(),
            "Sign in again with `tenantscope login` so the token reflects the new membership.".into(),
        ],
        Cause::AgentUnhealthy => vec![
            "The agent that runs this tenant's inspections is not healthy: check that its service is running and online, and restart it.".into(),
            "Run `tenantscope doctor --tenant {tenant_id}`; check 6 tests the agent and its reach to the login and Graph hosts.".into(),
        ],
        Cause::Unknown => vec![
            "Run `tenantscope doctor --tenant {tenant_id}` to run the six checks against this tenant.".into(),
            "Run the inspection again with `--debug` to record a redacted trace, and look any AADSTS code up at https://login.microsoftonline.com/error?code=<code>.".into(),
        ],
    };
    steps
}

/// Whether two fix steps tell the engineer to do the same thing: the same text, the same command to
/// run (a backticked `tenantscope ...` command line), the same page to open, or the same leading
/// instruction. A rule's
/// own, more specific step comes first and the repeated default is dropped.
pub(crate) fn same_step(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let commands = |s: &str| -> Vec<String> {
        s.split('`').skip(1).step_by(2).filter(|c| c.starts_with("tenantscope ")).map(str::to_string).collect()
    };
    let (ca, cb) = (commands(a), commands(b));
    if ca.iter().any(|c| cb.contains(c)) {
        return true;
    }
    // The same page to open (a sign-in, reset or registration page) is the same thing to do there.
    let urls = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ','))
            .filter(|w| w.starts_with("https://"))
            .map(|w| w.trim_end_matches(['.', ';', ':']).to_string())
            .collect()
    };
    let (ua, ub) = (urls(a), urls(b));
    if ua.iter().any(|u| ub.contains(u)) {
        return true;
    }
    let lead = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2).take(4).map(str::to_ascii_lowercase).collect()
    };
    let (la, lb) = (lead(a), lead(b));
    la.len() == 4 && la == lb
}

/// The default one-line summary of a cause.
pub(crate) fn default_summary(cause: Cause) -> &'static str {
    match cause {
        Cause::MfaClaimMissing => {
            "The partner token carries no MFA claim, so Microsoft refuses delegated access to customers."
        }
        Cause::MfaRequired => "Microsoft requires multi-factor authentication for this sign-in.",
        Cause::MfaExpired => "The MFA session expired under a Conditional Access sign-in frequency policy.",
        Cause::ConditionalAccessBlocked => "A Conditional Access policy of the tenant blocked the token.",
        Cause::GdapMissing => "There is no GDAP relationship with this customer.",
        Cause::GdapExpired => "The GDAP relationship with this customer is no longer active.",
        Cause::GdapRoleMissing => "The GDAP roles reachable by the user do not include a role this call needs.",
        Cause::ConsentMissing => "tenantscope's app is not consented in the customer tenant.",
        Cause::PermissionMissing => "The token does not carry the permission this call needs.",
        Cause::LicenseMissing => "The tenant does not have the licence this data needs.",
        Cause::TokenInvalid => "Microsoft Graph rejected the access token.",
        Cause::TokenCacheStale => {
            "A cached token issued before a consent or role change was used; a fresh token works."
        }
        Cause::RefreshTokenExpired => "The refresh token expired; a new sign-in is needed.",
        Cause::RefreshTokenRevoked => "The refresh token was revoked (password change or session revocation).",
        Cause::ClientCredentialInvalid => "The app's client secret or certificate was rejected.",
        Cause::ClientCredentialExpired => "The app's client secret has expired.",
        Cause::AppNotFound => "The app does not exist, or is disabled, in the tenant.",
        Cause::AccountDisabled => "The account is disabled.",
        Cause::AccountLocked => "The account is locked.",
        Cause::InvalidCredentials => "The user name or password is wrong.",
        Cause::PasswordExpired => "The account's password has expired.",
        Cause::TenantNotFound => "The tenant does not exist (or not in this cloud).",
        Cause::PartnerBlockedRisk => {
            "The partner account is blocked from customers because of risk in the partner tenant."
        }
        Cause::Throttled => "Microsoft is throttling the requests.",
        Cause::ServiceUnavailable => "Microsoft's service is temporarily unavailable.",
        Cause::NetworkUnreachable => "Microsoft's hosts could not be reached from this machine.",
        Cause::WrongCloud => "The tenant or host belongs to another Microsoft cloud.",
        Cause::UserNotInTenant => {
            "The partner user has no access path into the customer tenant (no GDAP group membership)."
        }
        Cause::AgentUnhealthy => "The agent that runs the inspection is not healthy.",
        Cause::Unknown => "The failure does not match any known cause.",
    }
}

/// A tenant's fix steps with its name and id replaced by placeholders, so that tenants with the same
/// problem can be shown one list of steps: "the tenant" for its name (and "name (id)"), `<tenant>`
/// for its id where a command takes it.
pub fn generalize_fix(fix: &[String], name: &str, id: &str) -> Vec<String> {
    let with_id = format!("{name} ({id})");
    fix.iter()
        .map(|step| {
            let mut step = step.replace(&with_id, "the tenant");
            if !name.is_empty() {
                step = step.replace(name, "the tenant");
            }
            step.replace(&format!("tenant {id}"), "the tenant").replace(id, "<tenant>")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_only_advice_never_sends_the_engineer_to_partner_center() {
        for cause in Cause::ALL {
            for step in default_fix_for(cause, Some(Auth::App)) {
                if matches!(
                    cause,
                    Cause::ConsentMissing
                        | Cause::PermissionMissing
                        | Cause::AppNotFound
                        | Cause::ClientCredentialInvalid
                        | Cause::ClientCredentialExpired
                ) {
                    assert!(!step.contains("Partner Center") && !step.contains("partner tenant"), "{cause}: {step}");
                }
            }
        }
    }

    /// Actions that appear at most once in a fix: two steps naming the same one say the same thing.
    const ACTIONS: &[&str] = &[
        "applicationconsents",
        "Certificates & secrets",
        "API permissions",
        "Request admin relationship",
        "aka.ms/mfasetup",
        "passwordreset",
        "Assign roles",
        "Grant admin consent",
    ];

    #[test]
    fn no_fix_repeats_itself() {
        let rules = crate::aadsts::MAPPING.iter().map(|r| (r.cause, r.fix));
        let defaults = Cause::ALL.iter().map(|c| (*c, &[][..]));
        for (cause, own) in rules.chain(defaults) {
            for auth in [None, Some(Auth::Gdap), Some(Auth::App), Some(Auth::Direct)] {
                let mut steps: Vec<String> = Vec::new();
                for step in own.iter().map(|s| s.to_string()).chain(default_fix_for(cause, auth)) {
                    if auth == Some(Auth::App) && step.contains("Partner Center") {
                        continue;
                    }
                    if !steps.iter().any(|e| same_step(e, &step)) {
                        steps.push(step);
                    }
                }
                for action in ACTIONS {
                    let n = steps.iter().filter(|s| s.contains(action)).count();
                    assert!(n <= 1, "{cause} ({auth:?}): {n} steps say {action:?}: {steps:#?}");
                }
            }
        }
    }

    #[test]
    fn every_cause_has_advice() {
        for cause in Cause::ALL {
            assert!(!default_fix(cause).is_empty(), "{cause} has no fix");
            assert!(!default_summary(cause).is_empty(), "{cause} has no summary");
        }
    }
}
