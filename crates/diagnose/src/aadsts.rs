//! AADSTS codes: Microsoft's reference table (embedded) and tenantscope's mapping to causes.
//!
//! The reference table is the TSV copied from Microsoft's public error-code page; it gives the
//! name and description of codes that tenantscope does not map, so even an unmapped code gets a
//! specific summary. The mapping (`MAPPING`) is one data table so that reviewing what a code
//! means to an MSP is a matter of reading rows, and so that tests and `docs/causes.md` can be
//! generated from the same rows.

use std::sync::OnceLock;

use crate::cause::Cause;

const TABLE_TSV: &str = include_str!("../data/aadsts_codes.tsv");

/// One row of Microsoft's reference table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadstsEntry {
    pub code: u32,
    /// Microsoft's internal name; empty for many codes.
    pub name: &'static str,
    pub description: &'static str,
}

/// Microsoft's reference table of AADSTS codes, parsed once.
pub fn reference_table() -> &'static [AadstsEntry] {
    static TABLE: OnceLock<Vec<AadstsEntry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        TABLE_TSV
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|line| {
                let mut cols = line.splitn(3, '\t');
                let code = cols.next()?.trim().strip_prefix("AADSTS")?.parse().ok()?;
                Some(AadstsEntry {
                    code,
                    name: cols.next().unwrap_or("").trim(),
                    description: cols.next().unwrap_or("").trim(),
                })
            })
            .collect()
    })
}

/// The reference entry of a code, when Microsoft's table lists it.
pub fn reference(code: u32) -> Option<&'static AadstsEntry> {
    reference_table().iter().find(|e| e.code == code)
}

/// How the facts refine a mapped code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// The row's cause stands.
    Direct,
    /// `mfa_required`, unless the token used shows no MFA in `amr` and the access is through the
    /// partner (GDAP or the partner tenant): then the partner's refresh token was minted without
    /// MFA and the cause is `mfa_claim_missing`.
    MfaClaim,
    /// The partner user has no presence in the customer tenant: decided by the GDAP facts
    /// (`gdap_missing`, `gdap_expired`, or `user_not_in_tenant` when an active relationship
    /// exists but its groups do not contain the user). Without GDAP facts the row's cause
    /// (`user_not_in_tenant`) stands, with the GDAP causes as runners-up.
    GdapAccess,
}

/// One row of the mapping: what an AADSTS code means to an MSP.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeRule {
    pub code: u32,
    /// The cause when no other fact refines it.
    pub cause: Cause,
    pub resolve: Resolve,
    pub confidence: f32,
    /// A specific one-line summary of what the code means.
    pub summary: &'static str,
    /// Steps put before the cause's default fix; empty when the default fix says it all.
    pub fix: &'static [&'static str],
}

const fn rule(code: u32, cause: Cause, summary: &'static str) -> CodeRule {
    CodeRule { code, cause, resolve: Resolve::Direct, confidence: 0.9, summary, fix: &[] }
}

impl CodeRule {
    const fn fix(mut self, fix: &'static [&'static str]) -> Self {
        self.fix = fix;
        self
    }

    const fn conf(mut self, confidence: f32) -> Self {
        self.confidence = confidence;
        self
    }

    const fn resolve(mut self, resolve: Resolve) -> Self {
        self.resolve = resolve;
        self
    }
}

use Cause::*;

const SIGN_IN_AGAIN: &str = "Sign in again with `tenantscope login`.";
const SCOPE_FIX: &[&str] = &[
    "tenantscope asks Graph for `https://graph.microsoft.com/.default` (or the matching host of the configured cloud); check any scope set in the configuration and remove custom scopes that mix resources or lack the `/.default` suffix for app-only access.",
    "Run `tenantscope permissions` to see the permissions the app registration should list.",
];
const DEVICE_CODE_FIX: &[&str] = &[
    "Run `tenantscope login --device-code` again and enter the new code at https://microsoft.com/devicelogin within 15 minutes, signing in with the partner account.",
];
const COMMON_ENDPOINT_FIX: &[&str] = &[
    "Give tenantscope the customer's tenant id or domain so the request goes to `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token` instead of `/common`.",
];
const TENANT_RESTRICTION_FIX: &[&str] = &[
    "Tenant restrictions are enforced by the proxy of the network tenantscope runs from: add the customer tenant to the proxy's allowed tenants (the `Restrict-Access-To-Tenants` header or the tenant restrictions v2 policy), or run from a network without that proxy.",
];
const CROSS_TENANT_FIX: &[&str] = &[
    "A cross-tenant access policy blocks this sign-in: check Entra admin centre > External Identities > Cross-tenant access settings (https://entra.microsoft.com) in the partner tenant (outbound) and in the customer tenant (inbound); GDAP access itself does not need B2B collaboration.",
];
const DEVICE_CA_FIX: &[&str] = &[
    "A Conditional Access policy of {tenant} requires a compliant, joined or registered device, which an unattended inspection cannot present: exclude service provider users from that policy (Entra admin centre > Protection > Conditional Access, https://entra.microsoft.com/#view/Microsoft_AAD_ConditionalAccess/ConditionalAccessBlade/~/Policies).",
];
const PRECONSENT_FIX: &[&str] = &[
    "Authorize tenantscope's app in the customer before delegated admins use it: POST https://api.partnercenter.microsoft.com/v1/customers/<customer tenant id>/applicationconsents with the app id and its Graph scopes (needs a GDAP role of Cloud Application Administrator or Global Administrator in that customer), or have a customer administrator grant admin consent.",
];
const SECRET_ID_FIX: &[&str] = &[
    "A common slip is storing the secret's Secret ID instead of its Value: the Value is shown only once, when the secret is created, so create a new secret and copy its Value.",
];
const PTA_FIX: &[&str] = &[
    "The partner tenant authenticates this account with pass-through authentication: check the on-premises Authentication Agents (Entra admin centre > Entra Connect > Pass-through authentication, https://entra.microsoft.com) and their connectivity to Active Directory.",
];

/// What every AADSTS code an MSP can meet means. Codes not listed fall back to `unknown` with
/// Microsoft's own name and description.
pub static MAPPING: &[CodeRule] = &[
    // --- MFA ---------------------------------------------------------------------------------
    rule(50076, MfaRequired, "AADSTS50076: the sign-in must complete multi-factor authentication (Conditional Access, per-user MFA or a new location).")
        .resolve(Resolve::MfaClaim),
    // A partner account that was never enrolled gets 50079 rather than 50076 at customers; either way the
    // root cause is a partner sign-in without Microsoft Entra MFA.
    rule(50079, MfaRequired, "AADSTS50079: the account must register for multi-factor authentication before it can get a token.")
        .resolve(Resolve::MfaClaim),
    rule(50072, MfaRequired, "AADSTS50072: the account must enrol a second authentication factor.")
        .fix(&["Register an MFA method for the account at https://aka.ms/mfasetup, then sign in again with `tenantscope login`."]),
    rule(50074, MfaRequired, "AADSTS50074: strong authentication is required and the MFA challenge was not passed."),
    rule(500121, MfaRequired, "AADSTS500121: authentication failed during the strong authentication (MFA) request: the prompt was denied, not answered, or the method failed.")
        .conf(0.8),
    rule(53004, MfaRequired, "AADSTS53004: the account must complete MFA registration, which is blocked until its risk is cleared.")
        .conf(0.8),
    rule(50158, MfaRequired, "AADSTS50158: an external security challenge (third-party MFA or custom control) was not satisfied; Microsoft Entra MFA is what partner access requires.")
        .conf(0.8),
    rule(50125, MfaRequired, "AADSTS50125: the sign-in was interrupted to register password-reset or security information; finish it interactively.")
        .conf(0.7)
        .fix(&["Sign in interactively once with `tenantscope login` and complete the security-information registration."]),
    rule(700020, MfaRequired, "AADSTS700020: the access grant requires interaction (typically MFA or a new consent) that a refresh token cannot provide.")
        .conf(0.6),
    rule(50078, MfaExpired, "AADSTS50078: the MFA presented earlier has expired under a policy of the tenant; MFA must be refreshed."),
    rule(70043, MfaExpired, "AADSTS70043: the refresh token is no longer accepted because of a Conditional Access sign-in frequency policy."),
    // --- Conditional Access and tenant policies ----------------------------------------------
    rule(53003, ConditionalAccessBlocked, "AADSTS53003: a Conditional Access policy of the tenant blocked token issuance."),
    rule(53000, ConditionalAccessBlocked, "AADSTS53000: Conditional Access requires a compliant device, and this device is not.")
        .fix(DEVICE_CA_FIX),
    rule(53001, ConditionalAccessBlocked, "AADSTS53001: Conditional Access requires a domain-joined device, and this device is not.")
        .fix(DEVICE_CA_FIX),
    rule(53002, ConditionalAccessBlocked, "AADSTS53002: Conditional Access allows only approved client apps, and this app is not one.")
        .fix(&["Exclude service provider users (or tenantscope's app) from the policy that requires approved client apps (Entra admin centre > Protection > Conditional Access, https://entra.microsoft.com/#view/Microsoft_AAD_ConditionalAccess/ConditionalAccessBlade/~/Policies)."]),
    rule(530032, ConditionalAccessBlocked, "AADSTS530032: a tenant-level security policy blocked this request."),
    rule(530035, ConditionalAccessBlocked, "AADSTS530035: security defaults of the tenant blocked the request (legacy or unsafe authentication).")
        .fix(&["Security defaults block legacy and risky sign-ins: make sure the sign-in is a modern OAuth sign-in with Microsoft MFA, or replace security defaults with Conditional Access policies that exclude service provider users."]),
    rule(50131, ConditionalAccessBlocked, "AADSTS50131: Conditional Access failed (device state, suspicious activity or an access or security policy)."),
    rule(50005, ConditionalAccessBlocked, "AADSTS50005: Conditional Access does not allow sign-in from this device platform.")
        .fix(DEVICE_CA_FIX),
    rule(50097, ConditionalAccessBlocked, "AADSTS50097: device authentication is required by policy.")
        .fix(DEVICE_CA_FIX),
    rule(50129, ConditionalAccessBlocked, "AADSTS50129: the policy requires a workplace-joined device.")
        .fix(DEVICE_CA_FIX).conf(0.8),
    rule(50155, ConditionalAccessBlocked, "AADSTS50155: device authentication failed for this user.")
        .fix(DEVICE_CA_FIX).conf(0.8),
    rule(50187, ConditionalAccessBlocked, "AADSTS50187: device authentication could not be performed.")
        .fix(DEVICE_CA_FIX).conf(0.7),
    rule(50127, ConditionalAccessBlocked, "AADSTS50127: the policy requires a broker app to be installed.")
        .fix(DEVICE_CA_FIX).conf(0.7),
    rule(53010, ConditionalAccessBlocked, "AADSTS53010: the organisation only allows MFA registration from specific locations or devices.")
        .conf(0.7),
    rule(50178, UserNotInTenant, "AADSTS50178: the partner (passthrough) user cannot complete the sign-in in the customer tenant: it has no presence there, or a session control of the customer's policy does not support partner users.")
        .resolve(Resolve::GdapAccess).conf(0.7)
        .fix(&["If the user is in the right GDAP groups, exclude service provider users from the session controls of the customer's Conditional Access policy (Entra admin centre > Protection > Conditional Access, https://entra.microsoft.com/#view/Microsoft_AAD_ConditionalAccess/ConditionalAccessBlade/~/Policies)."]),
    rule(500212, ConditionalAccessBlocked, "AADSTS500212: the partner tenant's outbound cross-tenant access policy does not allow access to this tenant.")
        .fix(CROSS_TENANT_FIX),
    rule(500213, ConditionalAccessBlocked, "AADSTS500213: the customer's inbound cross-tenant access policy does not allow this user.")
        .fix(CROSS_TENANT_FIX),
    rule(500021, ConditionalAccessBlocked, "AADSTS500021: tenant restrictions on the network tenantscope runs from deny access to this tenant.")
        .fix(TENANT_RESTRICTION_FIX),
    rule(500022, ConditionalAccessBlocked, "AADSTS500022: tenant restrictions on the network tenantscope runs from deny access to this tenant.")
        .fix(TENANT_RESTRICTION_FIX),
    rule(50002, ConditionalAccessBlocked, "AADSTS50002: restricted proxy access (tenant restrictions) blocked the sign-in.")
        .fix(TENANT_RESTRICTION_FIX),
    rule(530034, PartnerBlockedRisk, "AADSTS530034: the delegated admin was blocked from the customer because of account risk in the partner's home tenant."),
    rule(53011, PartnerBlockedRisk, "AADSTS53011: the user is blocked because of risk in its home tenant.")
        .conf(0.85),
    // --- Consent and app permissions ---------------------------------------------------------
    rule(65001, ConsentMissing, "AADSTS65001: the app is not consented in the tenant for what was asked (no consent, or consent that does not cover these permissions).")
        .fix(&["A consent given before permissions were added to the app does not cover them: delete the app's consent in {tenant} and consent again with its current permissions, as below."]),
    rule(65004, ConsentMissing, "AADSTS65004: the user declined to consent to the app.")
        .fix(&["Sign in again with `tenantscope login` and accept the consent prompt, or have an administrator grant admin consent."]),
    rule(90094, ConsentMissing, "AADSTS90094: administrator consent is required for the permissions the app asks."),
    rule(90095, ConsentMissing, "AADSTS90095: administrator consent is required; the user was told to request it from an admin."),
    rule(90008, ConsentMissing, "AADSTS90008: the app is not consented even for sign-in and reading the user's profile.")
        .fix(&["Make sure the app registration lists Microsoft Graph `User.Read` (sign in and read profile), then consent again in the customer."]),
    rule(500011, ConsentMissing, "AADSTS500011: the resource's service principal is not in the tenant: the app or API has not been consented or installed there (or the request went to the wrong tenant)."),
    rule(90099, ConsentMissing, "AADSTS90099: the app has not been authorized in the customer tenant for use by partner delegated admins; it needs pre-consent.")
        .fix(PRECONSENT_FIX),
    rule(650056, ConsentMissing, "AADSTS650056: the app registration lists no permissions for the requested API, or the admin has not consented in the tenant.")
        .fix(&["List the needed Microsoft Graph permissions on the app registration (Entra admin centre > App registrations > the app > API permissions, https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade), then consent again in the customer."]),
    rule(52004, ConsentMissing, "AADSTS52004: the user has not consented to access LinkedIn resources.")
        .conf(0.6),
    rule(65005, PermissionMissing, "AADSTS65005: the app registration's required permissions do not include the resource asked for.")
        .conf(0.8),
    rule(650057, PermissionMissing, "AADSTS650057: the app asked for a resource that is not among the permissions of its app registration.")
        .conf(0.85),
    rule(650052, LicenseMissing, "AADSTS650052: the app needs a service the organisation has not subscribed to or enabled.")
        .conf(0.85),
    rule(50105, PermissionMissing, "AADSTS50105: the app requires user assignment in this tenant and the user is not assigned to it.")
        .conf(0.75)
        .fix(&["Assign the user (or its group) to the app in Enterprise applications > the app > Users and groups (https://entra.microsoft.com/#view/Microsoft_AAD_IAM/StartboardApplicationsMenuBlade/~/AppAppsPreview), or set Assignment required to No."]),
    rule(90093, ConsentMissing, "AADSTS90093: the signed-in user lacks the rights to consent to the app's permissions; an administrator has to consent.")
        .conf(0.75),
    // --- Presence of the partner user in the customer tenant ---------------------------------
    rule(50020, UserNotInTenant, "AADSTS50020: the partner user does not exist in the customer tenant (no GDAP access path: not in an assigned group, or no active relationship).")
        .resolve(Resolve::GdapAccess).conf(0.8),
    rule(50177, UserNotInTenant, "AADSTS50177: the partner (passthrough) user cannot complete the sign-in in the customer tenant, typically because it is not in a GDAP-assigned group or is a guest there.")
        .resolve(Resolve::GdapAccess).conf(0.75),
    rule(16000, UserNotInTenant, "AADSTS16000: the user does not exist in the tenant and cannot access the app there.")
        .resolve(Resolve::GdapAccess).conf(0.75),
    rule(50034, UserNotInTenant, "AADSTS50034: the user account does not exist in the tenant's directory.")
        .resolve(Resolve::GdapAccess).conf(0.75),
    rule(16003, UserNotInTenant, "AADSTS16003: the user has not been added to the resource tenant.")
        .resolve(Resolve::GdapAccess).conf(0.75),
    rule(51004, UserNotInTenant, "AADSTS51004: the user account does not exist in the tenant's directory.")
        .resolve(Resolve::GdapAccess).conf(0.75),
    rule(90072, UserNotInTenant, "AADSTS90072: the external (partner) account does not exist in the tenant it signed into, so it cannot satisfy that tenant's MFA requirement.")
        .resolve(Resolve::GdapAccess).conf(0.75),
    rule(50014, UserNotInTenant, "AADSTS50014: the user is a guest whose invitation is still pending in this tenant.")
        .conf(0.75),
    rule(50197, UserNotInTenant, "AADSTS50197: the user could not be found in the tenant.")
        .conf(0.6),
    // --- The app itself -----------------------------------------------------------------------
    rule(700016, AppNotFound, "AADSTS700016: the application id was not found in the tenant (not installed or consented there, a wrong id, or the wrong tenant)."),
    rule(700011, AppNotFound, "AADSTS700011: the client application does not exist in the tenant."),
    rule(70001, AppNotFound, "AADSTS70001: the application is disabled in the tenant."),
    rule(7000112, AppNotFound, "AADSTS7000112: the application is disabled."),
    rule(500014, AppNotFound, "AADSTS500014: the service principal of the resource (API) is disabled in the tenant.")
        .conf(0.75)
        .fix(&["Enable the resource's enterprise application in the tenant (Entra admin centre > Enterprise applications > the app > Properties > Enabled for users to sign in)."]),
    rule(1000031, AppNotFound, "AADSTS1000031: the application cannot be accessed at this time (disabled by an administrator).")
        .conf(0.75),
    rule(50194, AppNotFound, "AADSTS50194: the app is registered as single-tenant, so it cannot be used across tenants or through /common.")
        .conf(0.75)
        .fix(&["Make the app registration multi-tenant (Entra admin centre > App registrations > the app > Authentication > Supported account types: Accounts in any organizational directory), or use the tenant-specific endpoint."]),
    // --- App credentials ----------------------------------------------------------------------
    rule(7000215, ClientCredentialInvalid, "AADSTS7000215: the client secret is not valid for this app.")
        .fix(SECRET_ID_FIX),
    rule(7000218, ClientCredentialInvalid, "AADSTS7000218: the request carried no client secret or client assertion, which this confidential app needs."),
    rule(700027, ClientCredentialInvalid, "AADSTS700027: the client assertion (certificate) failed signature validation; the certificate used is not the one registered."),
    rule(700024, ClientCredentialInvalid, "AADSTS700024: the client assertion is not within its valid time range (check the machine's clock)."),
    rule(700021, ClientCredentialInvalid, "AADSTS700021: the client assertion's issuer does not match the client id."),
    rule(70021, ClientCredentialInvalid, "AADSTS70021: no federated identity credential of the app matches the presented assertion.")
        .conf(0.85),
    // Workload identity federation and client assertions (issue 19): the texts Entra answers with.
    rule(700211, ClientCredentialInvalid, "AADSTS700211: no federated identity credential of the app names the issuer of the presented token (an exact match, trailing slash included).")
        .conf(0.85),
    rule(700212, ClientCredentialInvalid, "AADSTS700212: no federated identity credential of the app accepts the audience of the presented token (api://AzureADTokenExchange by default).")
        .conf(0.85),
    rule(70025, ClientCredentialInvalid, "AADSTS70025: the app has no federated identity credential, so an external token cannot stand for it.")
        .conf(0.85),
    rule(5002738, ClientCredentialInvalid, "AADSTS5002738: the client assertion is signed with an algorithm Entra does not accept (RS256, RS384, RS512).")
        .conf(0.85),
    rule(5002723, ClientCredentialInvalid, "AADSTS5002723: the client assertion names no certificate thumbprint or key id.")
        .conf(0.85),
    rule(50012, ClientCredentialInvalid, "AADSTS50012: client authentication failed (certificate not authorized, untrusted chain, or invalid assertion)."),
    rule(70002, ClientCredentialInvalid, "AADSTS70002: the app's credentials could not be validated (the client secret does not match)."),
    rule(700030, ClientCredentialInvalid, "AADSTS700030: the certificate's subject name is not authorized for this app.")
        .conf(0.85),
    rule(50048, ClientCredentialInvalid, "AADSTS50048: the client assertion's subject does not match its issuer.")
        .conf(0.85),
    rule(50006, ClientCredentialInvalid, "AADSTS50006: signature verification failed (the client assertion is signed with an unregistered key).")
        .conf(0.6),
    rule(50032, ClientCredentialInvalid, "AADSTS50032: the RSA key used is too weak.")
        .conf(0.6),
    rule(700025, ClientCredentialInvalid, "AADSTS700025: the app is a public client, so it must not send a client secret or assertion.")
        .conf(0.75)
        .fix(&["Either turn off 'Allow public client flows' for the app registration or sign in without a client credential."]),
    rule(7000222, ClientCredentialExpired, "AADSTS7000222: the app's client secret has expired."),
    // --- Refresh tokens -----------------------------------------------------------------------
    rule(700082, RefreshTokenExpired, "AADSTS700082: the refresh token expired after being unused for too long (90 days)."),
    rule(70008, RefreshTokenExpired, "AADSTS70008: the refresh token (or authorization code) has expired."),
    rule(700084, RefreshTokenExpired, "AADSTS700084: the refresh token was issued to a single-page app and its fixed lifetime is over."),
    rule(50089, RefreshTokenExpired, "AADSTS50089: the sign-in flow token expired; a new sign-in is needed.")
        .conf(0.75),
    rule(50058, RefreshTokenExpired, "AADSTS50058: there is no usable sign-in session for a silent token request; an interactive sign-in is needed.")
        .conf(0.6)
        .fix(&[SIGN_IN_AGAIN]),
    rule(700003, RefreshTokenRevoked, "AADSTS700003: the device the refresh token is bound to no longer exists in the tenant (it was deleted), so the token cannot be used.")
        .conf(0.8)
        .fix(&["Sign in again with `tenantscope login` on this machine; the old token was tied to a device object that has been removed from Entra ID."]),
    rule(50173, RefreshTokenRevoked, "AADSTS50173: the grant was revoked (password change or an administrator revoked the sessions); a fresh sign-in is needed."),
    rule(50132, RefreshTokenRevoked, "AADSTS50132: the session is no longer valid because of a password expiry or recent password change."),
    rule(50133, RefreshTokenRevoked, "AADSTS50133: the session was revoked because of a password expiry or recent password change."),
    rule(70000, RefreshTokenRevoked, "AADSTS70000: the refresh token is no longer valid (revoked or bound to another session).")
        .conf(0.8),
    // --- The account --------------------------------------------------------------------------
    rule(50057, AccountDisabled, "AADSTS50057: the user account is disabled."),
    rule(50053, AccountLocked, "AADSTS50053: the account is locked (too many failed sign-ins) or the sign-in came from a blocked, suspicious IP."),
    rule(50126, InvalidCredentials, "AADSTS50126: invalid user name or password."),
    rule(50056, InvalidCredentials, "AADSTS50056: the account has no password in the directory, or none was given.")
        .conf(0.75),
    rule(50064, InvalidCredentials, "AADSTS50064: user name or password validation failed.")
        .conf(0.8),
    rule(50055, PasswordExpired, "AADSTS50055: the account's password has expired."),
    rule(50144, PasswordExpired, "AADSTS50144: the account's on-premises Active Directory password has expired."),
    rule(50135, PasswordExpired, "AADSTS50135: the account must change its password because of account risk.")
        .conf(0.8),
    // --- Tenant and cloud ---------------------------------------------------------------------
    rule(90002, TenantNotFound, "AADSTS90002: the tenant was not found (a wrong id or domain, a deleted tenant, or a tenant in another cloud)."),
    rule(900023, TenantNotFound, "AADSTS900023: the tenant identifier is neither a valid tenant id nor a known domain."),
    rule(5000224, TenantNotFound, "AADSTS5000224: the tenant does not exist any more (it was deleted) or the domain is unknown."),
    rule(50128, TenantNotFound, "AADSTS50128: no tenant could be identified from the domain name.")
        .conf(0.8),
    rule(50059, TenantNotFound, "AADSTS50059: no tenant-identifying information was found in the request.")
        .conf(0.7)
        .fix(COMMON_ENDPOINT_FIX),
    rule(90019, TenantNotFound, "AADSTS90019: the tenant could not be determined from the request.")
        .conf(0.7)
        .fix(COMMON_ENDPOINT_FIX),
    rule(90038, WrongCloud, "AADSTS90038: the tenant belongs to another national cloud than the one asked."),
    rule(50049, WrongCloud, "AADSTS50049: the authority instance is unknown or invalid (a host of another cloud or a misspelt one)."),
    rule(90051, WrongCloud, "AADSTS90051: the national cloud identifier is not valid.")
        .conf(0.8),
    rule(900432, WrongCloud, "AADSTS900432: confidential clients are not supported in cross-cloud requests.")
        .conf(0.8),
    rule(900382, WrongCloud, "AADSTS900382: confidential clients are not supported in cross-cloud requests.")
        .conf(0.8),
    rule(1000104, WrongCloud, "AADSTS1000104: the resource's cloud is not allowed for the identity tenant.")
        .conf(0.8),
    rule(90043, WrongCloud, "AADSTS90043: a national-cloud authorization code redirect was refused.")
        .conf(0.6),
    rule(50134, WrongCloud, "AADSTS50134: the device-code sign-in was completed in another datacenter or cloud than the one that started it.")
        .conf(0.6),
    // --- Throttling and availability ----------------------------------------------------------
    rule(90055, Throttled, "AADSTS90055: the tenant is sending too many requests and is being throttled."),
    rule(90024, Throttled, "AADSTS90024: the request budget was exceeded; a transient error, retry later."),
    rule(50196, Throttled, "AADSTS50196: a client loop was detected: too many identical token requests in a short time.")
        .fix(&["tenantscope caches tokens; this happens when many processes share one account without the cache, so run fewer parallel runs with the same account."]),
    rule(50088, Throttled, "AADSTS50088: the limit on telephone MFA calls was reached; retry in a few minutes.")
        .conf(0.7),
    rule(50166, Throttled, "AADSTS50166: the external claims provider was throttled or could not be reached.")
        .conf(0.6),
    rule(50000, ServiceUnavailable, "AADSTS50000: Microsoft's sign-in service had an internal error issuing the token.")
        .conf(0.8),
    rule(50033, ServiceUnavailable, "AADSTS50033: a transient error in the sign-in service; retry.")
        .conf(0.8),
    rule(90006, ServiceUnavailable, "AADSTS90006: the sign-in service is temporarily unavailable."),
    rule(90033, ServiceUnavailable, "AADSTS90033: the directory service behind sign-in is unavailable."),
    rule(90036, ServiceUnavailable, "AADSTS90036: the directory service behind sign-in returned an unexpected error.")
        .conf(0.8),
    rule(90090, ServiceUnavailable, "AADSTS90090: a directory service behind sign-in is temporarily unavailable."),
    rule(90091, ServiceUnavailable, "AADSTS90091: a directory service behind sign-in could not be reached.")
        .conf(0.8),
    rule(90092, ServiceUnavailable, "AADSTS90092: a directory service behind sign-in returned a non-retryable error.")
        .conf(0.7),
    rule(90012, ServiceUnavailable, "AADSTS90012: the request to the sign-in service timed out.")
        .conf(0.8),
    rule(50087, ServiceUnavailable, "AADSTS50087: a transient error occurred during strong authentication; retry.")
        .conf(0.8),
    rule(70012, ServiceUnavailable, "AADSTS70012: a server error occurred while authenticating a Microsoft account.")
        .conf(0.6),
    rule(80001, ServiceUnavailable, "AADSTS80001: the pass-through authentication agent cannot reach on-premises Active Directory.")
        .conf(0.7).fix(PTA_FIX),
    rule(80002, ServiceUnavailable, "AADSTS80002: the pass-through authentication agent timed out validating the password.")
        .conf(0.7).fix(PTA_FIX),
    rule(80005, ServiceUnavailable, "AADSTS80005: the pass-through authentication agent returned an unexpected error.")
        .conf(0.7).fix(PTA_FIX),
    rule(80007, ServiceUnavailable, "AADSTS80007: the pass-through authentication agent could not validate the password.")
        .conf(0.6).fix(PTA_FIX),
    rule(80014, ServiceUnavailable, "AADSTS80014: the pass-through authentication agent answered too late.")
        .conf(0.7).fix(PTA_FIX),
    // --- Tokens and assertions ----------------------------------------------------------------
    rule(50013, TokenInvalid, "AADSTS50013: the assertion presented is not valid (wrong issuer, expired, malformed, or a refresh token used as an assertion).")
        .conf(0.75),
    rule(500133, TokenInvalid, "AADSTS500133: the assertion (the access token passed on) is outside its valid time range.")
        .conf(0.8),
    rule(50027, TokenInvalid, "AADSTS50027: the JWT presented is not valid (missing claims, wrong issuer or audience, or expired).")
        .conf(0.75),
    rule(900384, TokenInvalid, "AADSTS900384: the JWT presented failed signature validation.")
        .conf(0.75),
    rule(90016, TokenInvalid, "AADSTS90016: the token presented lacks a required claim.")
        .conf(0.7),
    rule(9002313, TokenInvalid, "AADSTS9002313: the request is malformed, usually a stored refresh token that is empty, truncated or contains a line break.")
        .conf(0.7)
        .fix(&["Sign in again with `tenantscope login` so a clean refresh token is stored; when a refresh token is pasted into configuration, make sure it has no line breaks or quotes."]),
    rule(90014, TokenInvalid, "AADSTS90014: a required field is missing from the credential, typically an empty refresh token or assertion.")
        .conf(0.6)
        .fix(&["Sign in again with `tenantscope login` so a complete refresh token is stored."]),
    // --- Token requests tenantscope itself shapes (specific, not tenant conditions) -----------
    rule(70011, Unknown, "AADSTS70011: the scope asked for is not valid for this request (a malformed scope or one that mixes resources).")
        .conf(0.7).fix(SCOPE_FIX),
    rule(28002, Unknown, "AADSTS28002: the scope asked for is not valid when requesting an access token.")
        .conf(0.7).fix(SCOPE_FIX),
    rule(28003, Unknown, "AADSTS28003: the scope of the token request was empty.")
        .conf(0.7).fix(SCOPE_FIX),
    rule(700022, Unknown, "AADSTS700022: the scope asked for names more than one resource; one token serves one resource.")
        .conf(0.7).fix(SCOPE_FIX),
    rule(700023, Unknown, "AADSTS700023: the scope asked for names no resource.")
        .conf(0.7).fix(SCOPE_FIX),
    rule(1002012, Unknown, "AADSTS1002012: the scope is not valid for a client-credentials request, which needs `<resource>/.default`.")
        .conf(0.7).fix(SCOPE_FIX),
    rule(70016, Unknown, "AADSTS70016 (authorization_pending): the device-code sign-in has not been completed yet; this is not a failure while the code is valid.")
        .conf(0.7).fix(DEVICE_CODE_FIX),
    rule(70018, Unknown, "AADSTS70018: the user code typed at the device-login page was wrong, so the device-code sign-in was not approved.")
        .conf(0.7).fix(DEVICE_CODE_FIX),
    rule(70019, Unknown, "AADSTS70019: the device code expired before the sign-in was completed.")
        .conf(0.7).fix(DEVICE_CODE_FIX),
    rule(90119, Unknown, "AADSTS90119: the device-code request carried an empty user code.")
        .conf(0.7).fix(DEVICE_CODE_FIX),
    rule(90120, Unknown, "AADSTS90120: this device code was already used or declined.")
        .conf(0.7).fix(DEVICE_CODE_FIX),
    rule(54005, Unknown, "AADSTS54005: the authorization code was already redeemed; each sign-in code works once.")
        .conf(0.7)
        .fix(&["Run `tenantscope login` again; if it repeats, check that no proxy or second process replays the sign-in redirect."]),
    rule(501481, Unknown, "AADSTS501481: the PKCE code verifier does not match the challenge of the sign-in request (the redirect reached a different login attempt).")
        .conf(0.7)
        .fix(&["Run `tenantscope login` again and finish the sign-in in the browser window it opened, without starting a second login in between."]),
    rule(700005, Unknown, "AADSTS700005: the authorization code was issued for another tenant than the one it was redeemed at.")
        .conf(0.7)
        .fix(&["Run `tenantscope login` again; do not change the tenant between sign-in and token redemption."]),
    rule(50011, Unknown, "AADSTS50011: the sign-in's redirect URI is not registered on the app.")
        .conf(0.7)
        .fix(&["Add `http://localhost` as a Mobile and desktop redirect URI of the app registration (Entra admin centre > App registrations > the app > Authentication, https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade)."]),
    rule(70004, Unknown, "AADSTS70004: the redirect URI of the sign-in is not valid for the app.")
        .conf(0.7)
        .fix(&["Add `http://localhost` as a Mobile and desktop redirect URI of the app registration (Entra admin centre > App registrations > the app > Authentication)."]),
    rule(9001023, Unknown, "AADSTS9001023: this grant type is not supported on /common or /consumers; the request must name the tenant.")
        .conf(0.7).fix(COMMON_ENDPOINT_FIX),
    rule(90124, Unknown, "AADSTS90124: this resource is not supported on /common or /consumers; the request must name the tenant.")
        .conf(0.7).fix(COMMON_ENDPOINT_FIX),
    rule(90130, Unknown, "AADSTS90130: this app is not supported on /common or /consumers; the request must name the tenant.")
        .conf(0.7).fix(COMMON_ENDPOINT_FIX),
    rule(900144, Unknown, "AADSTS900144: the token request lacked a required parameter (for a refresh, an empty stored refresh token).")
        .conf(0.6)
        .fix(&["Sign in again with `tenantscope login` so the refresh token is stored; if the missing parameter is `client_secret` or `client_assertion`, store the app's credential."]),
    rule(70003, Unknown, "AADSTS70003: the app asked for a grant type it is not allowed to use.")
        .conf(0.6)
        .fix(&["Check that the app registration allows the flow tenantscope uses: public client flows must be allowed for device-code sign-in."]),
    rule(9002341, Unknown, "AADSTS9002341: the user must permit single sign-on for this app.")
        .conf(0.6)
        .fix(&["Sign in interactively once with `tenantscope login` and accept the single sign-on prompt."]),
    rule(50001, Unknown, "AADSTS50001: the resource asked for is disabled or does not exist in the tenant.")
        .conf(0.6)
        .fix(&["Check the resource of the request: the customer tenant may not have the service (for example Exchange Online) provisioned."]),
];

/// The mapping row of a code, when tenantscope maps it.
pub fn rule_for(code: u32) -> Option<&'static CodeRule> {
    MAPPING.iter().find(|r| r.code == code)
}

/// The documentation table of every mapped code, as it appears in `docs/causes.md`.
pub fn markdown_table() -> String {
    let mut rows: Vec<&CodeRule> = MAPPING.iter().collect();
    rows.sort_by_key(|r| r.code);
    let mut out = String::from("| AADSTS code | Microsoft's name | cause | refined by facts |\n");
    out.push_str("| --- | --- | --- | --- |\n");
    for r in rows {
        let name = reference(r.code).map(|e| e.name).unwrap_or("");
        let refine = match r.resolve {
            Resolve::Direct => "",
            Resolve::MfaClaim => "`amr` of the token used: `mfa_claim_missing`",
            Resolve::GdapAccess => "GDAP facts: `gdap_missing`, `gdap_expired`",
        };
        out.push_str(&format!(
            "| AADSTS{} | {} | [`{}`](#{}) | {} |\n",
            r.code,
            if name.is_empty() { "-" } else { name },
            r.cause.id(),
            r.cause.id(),
            refine
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_table_has_every_row() {
        assert_eq!(reference_table().len(), 304);
        let e = reference(50076).unwrap();
        assert_eq!(e.name, "UserStrongAuthClientAuthNRequired");
        assert!(reference(90099).unwrap().description.contains("partner"));
    }

    #[test]
    fn mapping_has_no_duplicate_codes() {
        let mut codes: Vec<u32> = MAPPING.iter().map(|r| r.code).collect();
        codes.sort_unstable();
        let before = codes.len();
        codes.dedup();
        assert_eq!(before, codes.len());
    }

    #[test]
    fn mapping_rows_are_well_formed() {
        for r in MAPPING {
            assert!(r.summary.starts_with(&format!("AADSTS{}", r.code)), "summary of {} must name its code", r.code);
            assert!((0.0..=1.0).contains(&r.confidence));
            if r.cause == Cause::Unknown {
                assert!(!r.fix.is_empty(), "{} maps to unknown without a specific fix", r.code);
            }
        }
    }

    #[test]
    fn the_codes_of_the_decision_rules_are_mapped() {
        let expect: &[(u32, Cause)] = &[
            (50076, MfaRequired),
            (50079, MfaRequired),
            (50072, MfaRequired),
            (50074, MfaRequired),
            (50078, MfaExpired),
            (70043, MfaExpired),
            (53003, ConditionalAccessBlocked),
            (53000, ConditionalAccessBlocked),
            (53001, ConditionalAccessBlocked),
            (53002, ConditionalAccessBlocked),
            (530032, ConditionalAccessBlocked),
            (530035, ConditionalAccessBlocked),
            (50131, ConditionalAccessBlocked),
            (530034, PartnerBlockedRisk),
            (65001, ConsentMissing),
            (65004, ConsentMissing),
            (90094, ConsentMissing),
            (90095, ConsentMissing),
            (90008, ConsentMissing),
            (500011, ConsentMissing),
            (90099, ConsentMissing),
            (650056, ConsentMissing),
            (50020, UserNotInTenant),
            (50177, UserNotInTenant),
            (16000, UserNotInTenant),
            (50034, UserNotInTenant),
            (700016, AppNotFound),
            (700011, AppNotFound),
            (70001, AppNotFound),
            (7000112, AppNotFound),
            (7000215, ClientCredentialInvalid),
            (7000218, ClientCredentialInvalid),
            (700027, ClientCredentialInvalid),
            (700024, ClientCredentialInvalid),
            (700021, ClientCredentialInvalid),
            (50012, ClientCredentialInvalid),
            (70002, ClientCredentialInvalid),
            (7000222, ClientCredentialExpired),
            (700082, RefreshTokenExpired),
            (70008, RefreshTokenExpired),
            (700084, RefreshTokenExpired),
            (50173, RefreshTokenRevoked),
            (50132, RefreshTokenRevoked),
            (50133, RefreshTokenRevoked),
            (70000, RefreshTokenRevoked),
            (50057, AccountDisabled),
            (50053, AccountLocked),
            (50126, InvalidCredentials),
            (50055, PasswordExpired),
            (50144, PasswordExpired),
            (90002, TenantNotFound),
            (900023, TenantNotFound),
            (5000224, TenantNotFound),
            (90038, WrongCloud),
            (50049, WrongCloud),
            (90055, Throttled),
            (90024, Throttled),
        ];
        for (code, cause) in expect {
            assert_eq!(rule_for(*code).map(|r| r.cause), Some(*cause), "AADSTS{code}");
        }
        assert_eq!(rule_for(50076).unwrap().resolve, Resolve::MfaClaim);
        assert_eq!(rule_for(50020).unwrap().resolve, Resolve::GdapAccess);
    }
}
