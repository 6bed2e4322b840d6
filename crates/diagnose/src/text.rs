//! Rules for text that carries no code the parser could structure: words and phrases.
//!
//! These are the weakest rules (confidences stay below the code-based ones); they exist because
//! users paste tool output that paraphrases Microsoft ("MFA required", "the refresh token has
//! expired") and a named cause with its fix is still far more useful than "unknown".

use crate::cause::Cause;
use crate::facts::Facts;
use crate::parse;
use crate::rules::Cand;

struct Sign {
    /// Any one of these phrases (lower case) triggers the sign.
    any: &'static [&'static str],
    /// And, when not empty, one of these must appear as well.
    with: &'static [&'static str],
    cause: Cause,
    confidence: f32,
    summary: &'static str,
}

const SIGNS: &[Sign] = &[
    Sign {
        any: &["mfa claim", "multi-factor authentication claim", "mfa required", "mfa is required", "amr claim"],
        with: &[],
        cause: Cause::MfaClaimMissing,
        confidence: 0.72,
        summary: "The text says the token lacks the MFA claim or that MFA is required for partner access.",
    },
    Sign {
        any: &[
            "must use multi-factor",
            "multi-factor authentication is required",
            "multifactor authentication is required",
            "required to use multi-factor",
            "strong authentication is required",
            "register for multi-factor",
            "mfa registration",
        ],
        with: &[],
        cause: Cause::MfaRequired,
        confidence: 0.7,
        summary: "The text says the sign-in must complete (or register) multi-factor authentication.",
    },
    Sign {
        any: &["authentication has expired", "mfa has expired", "mfa expired", "sign-in frequency", "signin frequency"],
        with: &[],
        cause: Cause::MfaExpired,
        confidence: 0.72,
        summary: "The text says the MFA session expired under a sign-in frequency policy.",
    },
    Sign {
        any: &[
            "conditional access",
            "blocked by policy",
            "access has been blocked",
            "device is not compliant",
            "compliant device",
            "named location",
        ],
        with: &[],
        cause: Cause::ConditionalAccessBlocked,
        confidence: 0.62,
        summary: "The text points at a Conditional Access policy blocking the sign-in.",
    },
    Sign {
        any: &["gdap", "delegated admin relationship", "admin relationship", "delegatedadminrelationship"],
        with: &["expired", "terminated", "has ended", "ended"],
        cause: Cause::GdapExpired,
        confidence: 0.66,
        summary: "The text says the GDAP relationship has ended.",
    },
    Sign {
        any: &[
            "no gdap",
            "without gdap",
            "gdap relationship not found",
            "no delegated admin",
            "no active gdap",
            "missing gdap",
            "gdap is missing",
            "no admin relationship",
        ],
        with: &[],
        cause: Cause::GdapMissing,
        confidence: 0.66,
        summary: "The text says there is no GDAP relationship with the customer.",
    },
    Sign {
        any: &[
            "not present in the role definition",
            "does not have the required role",
            "missing required role",
            "missing gdap role",
            "gdap role",
            "required admin role",
            "unable to initialize the authorization context",
        ],
        with: &[],
        cause: Cause::GdapRoleMissing,
        confidence: 0.55,
        summary: "The text says the user lacks an admin role (GDAP role) the call needs.",
    },
    Sign {
        any: &[
            "has not consented",
            "hasn't consented",
            "not consented",
            "need admin approval",
            "needs admin approval",
            "admin consent",
            "consent is required",
            "consent required",
            "has not been authorized in the tenant",
            "cpv refresh",
            "pre-consent",
        ],
        with: &[],
        cause: Cause::ConsentMissing,
        confidence: 0.68,
        summary: "The text says the app is not consented in the tenant.",
    },
    Sign {
        any: &[
            "insufficient privileges",
            "insufficient permissions",
            "missing permission",
            "missing scope",
            "permission is missing",
            "permissions are missing",
            "required scope",
            "does not have permission",
            "not have the required permission",
            "lacks permission",
        ],
        with: &[],
        cause: Cause::PermissionMissing,
        confidence: 0.55,
        summary: "The text says a permission (scope or role) is missing.",
    },
    Sign {
        any: &[
            "premium license",
            "not licensed",
            "requires a license",
            "license is required",
            "valid license",
            "without a license",
            "p1 license",
            "p2 license",
            "license required",
        ],
        with: &[],
        cause: Cause::LicenseMissing,
        confidence: 0.64,
        summary: "The text says the tenant lacks a licence.",
    },
    Sign {
        any: &["access is denied due to invalid credentials"],
        with: &[],
        cause: Cause::TokenInvalid,
        confidence: 0.72,
        summary: "The server refused the credentials sent with the request (401.1): the access token is missing, expired or not accepted.",
    },
    Sign {
        any: &[
            "access token has expired",
            "access token is expired",
            "token is expired",
            "invalid_token",
            "invalid token",
            "token validation failed",
            "invalid audience",
            "jwt is not well formed",
            "idx10223",
            "idx14100",
            "lifetime validation failed",
        ],
        with: &[],
        cause: Cause::TokenInvalid,
        confidence: 0.6,
        summary: "The text says the access token was rejected (expired or invalid).",
    },
    Sign {
        any: &["cached token", "token cache", "stale token", "clear cache", "clear the cache", "cached credentials"],
        with: &[],
        cause: Cause::TokenCacheStale,
        confidence: 0.5,
        summary: "The text points at a stale cached token.",
    },
    Sign {
        any: &[
            "refresh token has expired",
            "refresh token expired",
            "refresh token is expired",
            "due to inactivity",
            "inactive for",
        ],
        with: &[],
        cause: Cause::RefreshTokenExpired,
        confidence: 0.74,
        summary: "The text says the refresh token expired.",
    },
    Sign {
        any: &[
            "revoked",
            "password was changed",
            "password has been changed",
            "password was reset",
            "sessions were revoked",
        ],
        with: &[],
        cause: Cause::RefreshTokenRevoked,
        confidence: 0.6,
        summary: "The text says the grant was revoked (password change or session revocation).",
    },
    Sign {
        any: &[
            "invalid client secret",
            "client secret is invalid",
            "client_secret does not match",
            "secret id instead",
            "client assertion",
            "invalid_client",
            "wrong client secret",
            "certificate thumbprint",
        ],
        with: &[],
        cause: Cause::ClientCredentialInvalid,
        confidence: 0.66,
        summary: "The text says the app's client secret or certificate is wrong.",
    },
    Sign {
        any: &[
            "secret has expired",
            "secret expired",
            "secret keys are expired",
            "secret is expired",
            "expired client secret",
            "expired secret",
        ],
        with: &[],
        cause: Cause::ClientCredentialExpired,
        confidence: 0.76,
        summary: "The text says the app's client secret expired.",
    },
    Sign {
        any: &[
            "application with identifier",
            "was not found in the directory",
            "app not found",
            "application not found",
            "application is disabled",
            "unauthorized_client",
        ],
        with: &[],
        cause: Cause::AppNotFound,
        confidence: 0.64,
        summary: "The text says the app does not exist (or is disabled) in the tenant.",
    },
    Sign {
        any: &["service principal", "enterprise application"],
        with: &["is disabled", "was disabled"],
        cause: Cause::AppNotFound,
        confidence: 0.62,
        summary: "The text says the app's service principal is disabled in the tenant.",
    },
    Sign {
        any: &["account is disabled", "account has been disabled", "user is disabled", "account disabled"],
        with: &[],
        cause: Cause::AccountDisabled,
        confidence: 0.74,
        summary: "The text says the account is disabled.",
    },
    Sign {
        any: &["account is locked", "locked out", "account has been locked", "account locked"],
        with: &[],
        cause: Cause::AccountLocked,
        confidence: 0.74,
        summary: "The text says the account is locked.",
    },
    Sign {
        any: &[
            "invalid username or password",
            "incorrect username or password",
            "invalid user name or password",
            "wrong password",
            "invalid credentials",
            "bad credentials",
            "incorrect password",
        ],
        with: &[],
        cause: Cause::InvalidCredentials,
        confidence: 0.7,
        summary: "The text says the user name or password is wrong.",
    },
    Sign {
        any: &["password has expired", "password expired", "password is expired"],
        with: &[],
        cause: Cause::PasswordExpired,
        confidence: 0.74,
        summary: "The text says the password expired.",
    },
    Sign {
        any: &[
            "tenant not found",
            "tenant does not exist",
            "tenant doesn't exist",
            "invalid tenant",
            "tenant-identifying",
            "not found in the data store",
            "tenant has been deleted",
            "unknown tenant",
        ],
        with: &[],
        cause: Cause::TenantNotFound,
        confidence: 0.68,
        summary: "The text says the tenant does not exist.",
    },
    Sign {
        any: &[
            "national cloud",
            "sovereign cloud",
            "gcc high",
            "21vianet",
            "wrong cloud",
            "another cloud",
            "different cloud",
        ],
        with: &[],
        cause: Cause::WrongCloud,
        confidence: 0.55,
        summary: "The text points at another Microsoft cloud.",
    },
    Sign {
        any: &["delegated admin", "delegated administrator", "partner"],
        with: &["risk", "suspicious"],
        cause: Cause::PartnerBlockedRisk,
        confidence: 0.6,
        summary: "The text says the partner's delegated admin was blocked for risk.",
    },
    Sign {
        any: &["too many requests", "throttl", "rate limit", "retry-after", "retry after"],
        with: &[],
        cause: Cause::Throttled,
        confidence: 0.7,
        summary: "The text says the requests were throttled.",
    },
    Sign {
        any: &[
            "service unavailable",
            "temporarily unavailable",
            "internal server error",
            "bad gateway",
            "gateway timeout",
            "outage",
            "server error",
        ],
        with: &[],
        cause: Cause::ServiceUnavailable,
        confidence: 0.64,
        summary: "The text says Microsoft's service was unavailable.",
    },
    Sign {
        any: &[
            "does not exist in tenant",
            "doesn't exist in tenant",
            "does not exist in the tenant",
            "not exist in the directory",
            "guest user",
            "as a guest",
            "external user",
            "user account from identity provider",
            "not a member of the security group",
            "gdap group",
            "adminagents",
            "not in the tenant",
        ],
        with: &[],
        cause: Cause::UserNotInTenant,
        confidence: 0.6,
        summary: "The text says the partner user has no presence in the customer tenant (group membership or guest account).",
    },
    Sign {
        any: &[
            "agent is offline",
            "agent offline",
            "agent is not running",
            "agent unhealthy",
            "agent is unhealthy",
            "agent not responding",
            "agent is down",
            "agent stopped",
        ],
        with: &[],
        cause: Cause::AgentUnhealthy,
        confidence: 0.7,
        summary: "The text says the agent that runs the inspection is down.",
    },
];

pub(crate) fn text_rules(text: &str, _facts: &Facts, out: &mut Vec<Cand>) {
    let lower = parse::squash(parse::cap(text));
    let mut found: Vec<(usize, &Sign)> = SIGNS
        .iter()
        .filter_map(|s| {
            let pos = s.any.iter().filter_map(|p| lower.find(p)).min()?;
            if !s.with.is_empty() && !s.with.iter().any(|w| lower.contains(w)) {
                return None;
            }
            Some((pos, s))
        })
        .collect();
    found.sort_by_key(|(pos, _)| *pos);
    for (_, s) in &found {
        out.push(Cand::new(s.cause, s.confidence, s.summary));
    }
    // A status with nothing else still narrows the field.
    let signals = parse::signals(text);
    match signals.status {
        Some(429) => out.push(Cand::plain(Cause::Throttled, 0.8)),
        Some(500..=599) => out.push(Cand::plain(Cause::ServiceUnavailable, 0.75)),
        Some(401) if found.is_empty() => {
            let said = "A 401 Unauthorized without any detail: the token was refused or could not be obtained.";
            out.push(Cand::new(Cause::MfaClaimMissing, 0.4, said));
            out.push(Cand::new(Cause::TokenInvalid, 0.38, said));
            out.push(Cand::new(Cause::ConsentMissing, 0.34, said));
            out.push(Cand::new(Cause::GdapMissing, 0.28, said));
        }
        Some(403) if found.is_empty() => {
            let said = "A 403 Forbidden without any detail: the caller is authenticated but not allowed.";
            out.push(Cand::new(Cause::PermissionMissing, 0.45, said));
            out.push(Cand::new(Cause::GdapRoleMissing, 0.42, said));
            out.push(Cand::new(Cause::ConsentMissing, 0.35, said));
            out.push(Cand::new(Cause::TokenCacheStale, 0.3, said));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(text: &str) -> Option<Cause> {
        let mut out = Vec::new();
        text_rules(text, &Facts::default(), &mut out);
        out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        out.first().map(|c| c.cause)
    }

    #[test]
    fn phrases_name_causes() {
        assert_eq!(
            top("Your access token does not contain the MFA claim, Refresh your SAM tokens"),
            Some(Cause::MfaClaimMissing)
        );
        assert_eq!(top("the client secret expired yesterday"), Some(Cause::ClientCredentialExpired));
        assert_eq!(top("GDAP relationship expired for Contoso"), Some(Cause::GdapExpired));
        assert_eq!(top("The agent is offline since 3am"), Some(Cause::AgentUnhealthy));
        assert_eq!(top("nothing to see"), None);
    }
}
