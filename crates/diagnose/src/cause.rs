//! The fixed vocabulary of causes and the six doctor checks.
//!
//! The ids are a documented, stable contract (`docs/causes.md`, `--json` output, dataprints),
//! so they are spelled out by hand here instead of being derived from the variant names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One cause from the fixed vocabulary of design.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    MfaClaimMissing,
    MfaRequired,
    MfaExpired,
    ConditionalAccessBlocked,
    GdapMissing,
    GdapExpired,
    GdapRoleMissing,
    ConsentMissing,
    PermissionMissing,
    LicenseMissing,
    TokenInvalid,
    TokenCacheStale,
    RefreshTokenExpired,
    RefreshTokenRevoked,
    ClientCredentialInvalid,
    ClientCredentialExpired,
    AppNotFound,
    AccountDisabled,
    AccountLocked,
    InvalidCredentials,
    PasswordExpired,
    TenantNotFound,
    PartnerBlockedRisk,
    Throttled,
    ServiceUnavailable,
    NetworkUnreachable,
    WrongCloud,
    UserNotInTenant,
    AgentUnhealthy,
    Unknown,
}

impl Cause {
    /// Every cause, in the order of design.md.
    pub const ALL: [Cause; 30] = [
        Cause::MfaClaimMissing,
        Cause::MfaRequired,
        Cause::MfaExpired,
        Cause::ConditionalAccessBlocked,
        Cause::GdapMissing,
        Cause::GdapExpired,
        Cause::GdapRoleMissing,
        Cause::ConsentMissing,
        Cause::PermissionMissing,
        Cause::LicenseMissing,
        Cause::TokenInvalid,
        Cause::TokenCacheStale,
        Cause::RefreshTokenExpired,
        Cause::RefreshTokenRevoked,
        Cause::ClientCredentialInvalid,
        Cause::ClientCredentialExpired,
        Cause::AppNotFound,
        Cause::AccountDisabled,
        Cause::AccountLocked,
        Cause::InvalidCredentials,
        Cause::PasswordExpired,
        Cause::TenantNotFound,
        Cause::PartnerBlockedRisk,
        Cause::Throttled,
        Cause::ServiceUnavailable,
        Cause::NetworkUnreachable,
        Cause::WrongCloud,
        Cause::UserNotInTenant,
        Cause::AgentUnhealthy,
        Cause::Unknown,
    ];

    /// The stable snake_case id used in JSON, docs anchors and the command line.
    pub fn id(&self) -> &'static str {
        match self {
            Cause::MfaClaimMissing => "mfa_claim_missing",
            Cause::MfaRequired => "mfa_required",
            Cause::MfaExpired => "mfa_expired",
            Cause::ConditionalAccessBlocked => "conditional_access_blocked",
            Cause::GdapMissing => "gdap_missing",
            Cause::GdapExpired => "gdap_expired",
            Cause::GdapRoleMissing => "gdap_role_missing",
            Cause::ConsentMissing => "consent_missing",
            Cause::PermissionMissing => "permission_missing",
            Cause::LicenseMissing => "license_missing",
            Cause::TokenInvalid => "token_invalid",
            Cause::TokenCacheStale => "token_cache_stale",
            Cause::RefreshTokenExpired => "refresh_token_expired",
            Cause::RefreshTokenRevoked => "refresh_token_revoked",
            Cause::ClientCredentialInvalid => "client_credential_invalid",
            Cause::ClientCredentialExpired => "client_credential_expired",
            Cause::AppNotFound => "app_not_found",
            Cause::AccountDisabled => "account_disabled",
            Cause::AccountLocked => "account_locked",
            Cause::InvalidCredentials => "invalid_credentials",
            Cause::PasswordExpired => "password_expired",
            Cause::TenantNotFound => "tenant_not_found",
            Cause::PartnerBlockedRisk => "partner_blocked_risk",
            Cause::Throttled => "throttled",
            Cause::ServiceUnavailable => "service_unavailable",
            Cause::NetworkUnreachable => "network_unreachable",
            Cause::WrongCloud => "wrong_cloud",
            Cause::UserNotInTenant => "user_not_in_tenant",
            Cause::AgentUnhealthy => "agent_unhealthy",
            Cause::Unknown => "unknown",
        }
    }

    /// The doctor check that finds this cause.
    ///
    /// `Unknown` has no natural check; the rules override it with the check of the layer that
    /// failed, and this default (token retrieval) is only used when nothing at all was seen.
    pub fn check(&self) -> Check {
        match self {
            Cause::MfaClaimMissing | Cause::MfaRequired | Cause::MfaExpired => Check::Mfa,
            Cause::GdapMissing
            | Cause::GdapExpired
            | Cause::GdapRoleMissing
            | Cause::UserNotInTenant
            | Cause::PartnerBlockedRisk => Check::Gdap,
            Cause::TokenInvalid | Cause::TokenCacheStale => Check::Cache,
            Cause::ConsentMissing | Cause::PermissionMissing | Cause::LicenseMissing => Check::Permissions,
            Cause::NetworkUnreachable | Cause::AgentUnhealthy => Check::Agent,
            Cause::ConditionalAccessBlocked
            | Cause::RefreshTokenExpired
            | Cause::RefreshTokenRevoked
            | Cause::ClientCredentialInvalid
            | Cause::ClientCredentialExpired
            | Cause::AppNotFound
            | Cause::AccountDisabled
            | Cause::AccountLocked
            | Cause::InvalidCredentials
            | Cause::PasswordExpired
            | Cause::TenantNotFound
            | Cause::Throttled
            | Cause::ServiceUnavailable
            | Cause::WrongCloud
            | Cause::Unknown => Check::TokenRetrieval,
        }
    }

    /// A short human title, used as the heading of the cause in reports.
    pub fn title(&self) -> &'static str {
        match self {
            Cause::MfaClaimMissing => "The partner token has no MFA claim",
            Cause::MfaRequired => "Multi-factor authentication is required",
            Cause::MfaExpired => "The MFA session expired under a sign-in frequency policy",
            Cause::ConditionalAccessBlocked => "Blocked by Conditional Access",
            Cause::GdapMissing => "No GDAP relationship with this customer",
            Cause::GdapExpired => "The GDAP relationship has ended",
            Cause::GdapRoleMissing => "The GDAP roles do not allow this call",
            Cause::ConsentMissing => "The app is not consented in the customer tenant",
            Cause::PermissionMissing => "The token lacks the permission this call needs",
            Cause::LicenseMissing => "The tenant lacks the licence this data needs",
            Cause::TokenInvalid => "The access token was rejected",
            Cause::TokenCacheStale => "A cached token predates a change",
            Cause::RefreshTokenExpired => "The refresh token expired",
            Cause::RefreshTokenRevoked => "The refresh token was revoked",
            Cause::ClientCredentialInvalid => "The app's secret or certificate is wrong",
            Cause::ClientCredentialExpired => "The app's client secret expired",
            Cause::AppNotFound => "The app does not exist in that tenant",
            Cause::AccountDisabled => "The account is disabled",
            Cause::AccountLocked => "The account is locked",
            Cause::InvalidCredentials => "Wrong user name or password",
            Cause::PasswordExpired => "The password expired",
            Cause::TenantNotFound => "The tenant does not exist",
            Cause::PartnerBlockedRisk => "The partner account is blocked for risk",
            Cause::Throttled => "Microsoft is throttling the requests",
            Cause::ServiceUnavailable => "Microsoft's service is unavailable",
            Cause::NetworkUnreachable => "Microsoft's hosts cannot be reached",
            Cause::WrongCloud => "The tenant or host is in another cloud",
            Cause::UserNotInTenant => "The partner user has no access path into the tenant",
            Cause::AgentUnhealthy => "The agent running the inspection is unhealthy",
            Cause::Unknown => "Not recognised",
        }
    }

    /// The documentation link of the cause, relative to the repository root.
    pub fn docs(&self) -> String {
        format!("docs/causes.md#{}", self.id())
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The error of parsing a cause or check id that is not in the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a known id")]
pub struct UnknownId(pub String);

impl FromStr for Cause {
    type Err = UnknownId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Cause::ALL
            .iter()
            .copied()
            .find(|c| c.id().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownId(wanted.to_string()))
    }
}

/// The six checks of a full `tenantscope doctor` run, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Mfa,
    Gdap,
    TokenRetrieval,
    Cache,
    Permissions,
    Agent,
}

impl Check {
    /// The checks in the order `doctor` runs them.
    pub const ALL: [Check; 6] =
        [Check::Mfa, Check::Gdap, Check::TokenRetrieval, Check::Cache, Check::Permissions, Check::Agent];

    /// The 1-based position of the check in a doctor run.
    pub fn number(&self) -> u8 {
        match self {
            Check::Mfa => 1,
            Check::Gdap => 2,
            Check::TokenRetrieval => 3,
            Check::Cache => 4,
            Check::Permissions => 5,
            Check::Agent => 6,
        }
    }

    /// The stable snake_case id of the check.
    pub fn id(&self) -> &'static str {
        match self {
            Check::Mfa => "mfa",
            Check::Gdap => "gdap",
            Check::TokenRetrieval => "token_retrieval",
            Check::Cache => "cache",
            Check::Permissions => "permissions",
            Check::Agent => "agent",
        }
    }

    /// A short human title of the check.
    pub fn title(&self) -> &'static str {
        match self {
            Check::Mfa => "MFA",
            Check::Gdap => "GDAP",
            Check::TokenRetrieval => "Token retrieval",
            Check::Cache => "Token cache",
            Check::Permissions => "Permissions",
            Check::Agent => "Agent",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Check {
    type Err = UnknownId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Check::ALL
            .iter()
            .copied()
            .find(|c| c.id().eq_ignore_ascii_case(wanted) || c.number().to_string() == wanted)
            .ok_or_else(|| UnknownId(wanted.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_serde_and_from_str() {
        for cause in Cause::ALL {
            let json = serde_json::to_string(&cause).unwrap();
            assert_eq!(json, format!("\"{}\"", cause.id()));
            assert_eq!(cause.id().parse::<Cause>().unwrap(), cause);
            assert_eq!(serde_json::from_str::<Cause>(&json).unwrap(), cause);
        }
        assert!("no_such_cause".parse::<Cause>().is_err());
    }

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<_> = Cause::ALL.iter().map(|c| c.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Cause::ALL.len());
    }

    #[test]
    fn checks_are_numbered_in_order() {
        for (i, check) in Check::ALL.iter().enumerate() {
            assert_eq!(usize::from(check.number()), i + 1);
            assert_eq!(check.id().parse::<Check>().unwrap(), *check);
            assert_eq!(serde_json::to_string(check).unwrap(), format!("\"{}\"", check.id()));
        }
    }

    #[test]
    fn attribution_follows_the_design() {
        assert_eq!(Cause::MfaClaimMissing.check(), Check::Mfa);
        assert_eq!(Cause::UserNotInTenant.check(), Check::Gdap);
        assert_eq!(Cause::PartnerBlockedRisk.check(), Check::Gdap);
        assert_eq!(Cause::ConditionalAccessBlocked.check(), Check::TokenRetrieval);
        assert_eq!(Cause::TokenCacheStale.check(), Check::Cache);
        assert_eq!(Cause::LicenseMissing.check(), Check::Permissions);
        assert_eq!(Cause::AgentUnhealthy.check(), Check::Agent);
    }
}
