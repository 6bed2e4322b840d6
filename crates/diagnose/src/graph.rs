//! What a Microsoft Graph error means, independent of the other facts.
//!
//! Graph tells failures apart by `error.code` (and for some workloads `innerError.code`), but
//! pasted text often carries only the message, so both the codes and the characteristic
//! messages are recognised here. The rules (`rules.rs`) then weigh the kind against the facts.

/// The kinds of Graph failure the rules tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GraphKind {
    /// The token lacks the MFA claim (partner endpoints, Partner Center).
    MfaClaim,
    /// The token itself was rejected (expired, malformed, wrong audience).
    InvalidToken,
    /// A continuous-access-evaluation claims challenge (`insufficient_claims`).
    ClaimsChallenge,
    /// The token has neither `scp` nor `roles`: nothing was consented.
    NoScpOrRoles,
    /// The caller is authenticated but not allowed (`Authorization_RequestDenied` and kin).
    Denied,
    /// An app-only call whose token lacks the application role the API names.
    MissingRolePermissions,
    /// The tenant lacks the licence (Entra ID P1/P2 and the like).
    Licence,
    /// The calling app has no service principal in the tenant.
    IdentityNotFound,
    /// The calling app's service principal is disabled.
    IdentityDisabled,
    Throttled,
    ServerError,
    /// A delta link Graph no longer honours (`resyncRequired`, `syncStateNotFound`, 410 Gone): the
    /// round must start again from a full read.
    Resync,
    /// Graph refused the request itself (query shape), not the caller.
    BadRequest,
    NotFound,
    /// A 401 that says nothing more.
    Unauthorized,
    Other,
}

/// Graph codes distinctive enough to be recognised anywhere in pasted text.
pub(crate) const KNOWN_CODES: &[&str] = &[
    "Authorization_RequestDenied",
    "InvalidAuthenticationToken",
    "Authorization_IdentityNotFound",
    "Authorization_IdentityDisabled",
    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
    "Authentication_MissingOrMalformed",
    "Authentication_ExpiredToken",
    "Authentication_Unauthorized",
    "Unauthorized_MissingMFA",
    "unauthorizedMissingMfaTokenClaim",
    "TooManyRequests",
    "activityLimitReached",
    "serviceNotAvailable",
    "generalException",
    "Request_ResourceNotFound",
    "Request_BadRequest",
    "Request_UnsupportedQuery",
    "ErrorAccessDenied",
    "Authentication_MSGraphPermissionMissing",
];

/// Message fragments (lower case) that identify a Graph error when the code is missing, with
/// the code they imply and the HTTP status Graph sends with it.
pub(crate) const MESSAGE_SIGNATURES: &[(&str, &str, u16)] = &[
    ("the mfa claim was missing", "unauthorized", 401),
    ("mfa is required for this request", "Unauthorized_MissingMFA", 403),
    ("insufficient privileges to complete the operation", "Authorization_RequestDenied", 403),
    ("access token has expired or is not yet valid", "InvalidAuthenticationToken", 401),
    ("access token is empty", "InvalidAuthenticationToken", 401),
    ("compacttoken parsing failed", "InvalidAuthenticationToken", 401),
    ("access token validation failure", "InvalidAuthenticationToken", 401),
    ("lifetime validation failed", "InvalidAuthenticationToken", 401),
    // Graph's texts since it validates tokens with Microsoft.IdentityModel (2023 on), next to the older
    // "CompactToken parsing failed" above: both generations are met in pasted text.
    ("idx14100: jwt is not well formed", "InvalidAuthenticationToken", 401),
    ("idx14102: unable to decode the header", "InvalidAuthenticationToken", 401),
    ("your access token has expired", "InvalidAuthenticationToken", 401),
    ("access token missing or malformed", "InvalidAuthenticationToken", 401),
    ("the identity of the calling application could not be established", "Authorization_IdentityNotFound", 401),
    ("either scp or roles claim need to be present", "InvalidAuthenticationToken", 401),
    (
        "neither tenant is b2c or tenant doesn't have premium license",
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        403,
    ),
    (
        "tenant is not a b2c tenant and doesn't have premium license",
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        403,
    ),
    ("missing role permissions on the request", "Forbidden", 403),
    ("does not have required msgraph permissions", "Authentication_MSGraphPermissionMissing", 403),
    ("request not applicable to target tenant", "", 403),
    ("your tenant is not licensed", "", 403),
    ("please retry again later", "TooManyRequests", 429),
];

fn has(hay: &str, needle: &str) -> bool {
    hay.contains(needle)
}

/// Classifies a Graph error from its parts. All text comparisons are case-insensitive.
pub(crate) fn classify(
    code: &str,
    inner_code: Option<&str>,
    message: &str,
    inner_message: Option<&str>,
    www_authenticate: Option<&str>,
    status: u16,
) -> GraphKind {
    let code_l = code.to_ascii_lowercase();
    let inner_l = inner_code.unwrap_or("").to_ascii_lowercase();
    let msg = crate::parse::squash(&format!("{} {}", message, inner_message.unwrap_or("")));
    let www = www_authenticate.unwrap_or("").to_ascii_lowercase();

    if inner_l == "unauthorizedmissingmfatokenclaim"
        || code_l == "unauthorizedmissingmfatokenclaim"
        || code_l == "unauthorized_missingmfa"
        || has(&msg, "mfa claim")
        || has(&msg, "mfa is required")
        || has(&msg, "mfa required")
        || has(&msg, "multi-factor authentication claim")
        || has(&msg, "900421")
        || code_l == "900421"
    {
        return GraphKind::MfaClaim;
    }
    if code_l == "authorization_identitynotfound"
        || has(&msg, "identity of the calling application could not be established")
    {
        return GraphKind::IdentityNotFound;
    }
    if code_l == "authorization_identitydisabled" {
        return GraphKind::IdentityDisabled;
    }
    if code_l == "authentication_requestfromnonpremiumtenantorb2ctenant"
        || has(&msg, "premium license")
        || has(&msg, "request not applicable to target tenant")
        || has(&msg, "tenant is not licensed")
        || has(&msg, "does not have a valid license")
        || has(&msg, "doesn't have a valid license")
        || has(&msg, "tenant does not have a spo license")
        || has(&msg, "required license")
    {
        return GraphKind::Licence;
    }
    if has(&msg, "either scp or roles claim") {
        return GraphKind::NoScpOrRoles;
    }
    if has(&www, "insufficient_claims") {
        return GraphKind::ClaimsChallenge;
    }
    if code_l == "invalidauthenticationtoken"
        || code_l == "authentication_missingormalformed"
        || code_l == "authentication_expiredtoken"
        || has(&msg, "access token has expired")
        || has(&msg, "access token is empty")
        || has(&msg, "compacttoken parsing failed")
        || has(&msg, "access token validation failure")
        || has(&msg, "lifetime validation failed")
        || has(&msg, "token is expired")
        || has(&msg, "token has expired")
        || has(&msg, "access token missing or malformed")
        || has(&msg, "jwt is not well formed")
        || has(&msg, "idx14102")
    {
        return GraphKind::InvalidToken;
    }
    if has(&msg, "missing role permissions")
        || has(&msg, "roles on the request")
        || code_l.contains("permissionmissing")
        || has(&msg, "does not have required msgraph permissions")
        || has(&msg, "must have one of the following scopes")
    {
        return GraphKind::MissingRolePermissions;
    }
    if code_l == "toomanyrequests"
        || code_l == "activitylimitreached"
        || status == 429
        || has(&msg, "too many requests")
        || has(&msg, "throttl")
    {
        return GraphKind::Throttled;
    }
    if code_l == "authorization_requestdenied"
        || code_l == "accessdenied"
        || code_l == "erroraccessdenied"
        || code_l == "forbidden"
        || code_l == "authentication_unauthorized"
        || has(&msg, "insufficient privileges")
        || has(&msg, "insufficient permissions")
        || has(&msg, "access is denied")
        || has(&msg, "access denied")
        || has(&msg, "do not have the required permissions")
        || has(&msg, "don't have permission")
        || has(&msg, "does not have permission")
        || has(&msg, "not have sufficient permissions")
        || status == 403
    {
        return GraphKind::Denied;
    }
    if code_l == "resyncrequired" || code_l == "syncstatenotfound" || status == 410 {
        return GraphKind::Resync;
    }
    if status >= 500
        || code_l == "servicenotavailable"
        || code_l == "generalexception"
        || code_l.contains("serviceunavailable")
        || code_l.contains("notavailable")
        || code_l == "internalservererror"
        || code_l == "gatewaytimeout"
        || code_l == "badgateway"
    {
        return GraphKind::ServerError;
    }
    if code_l == "request_resourcenotfound"
        || code_l == "itemnotfound"
        || code_l == "resourcenotfound"
        || code_l == "request_unsupportedversion"
        || status == 404
    {
        return GraphKind::NotFound;
    }
    if code_l == "request_badrequest"
        || code_l == "request_unsupportedquery"
        || code_l == "badrequest"
        || code_l == "invalidrequest"
        || code_l == "notsupported"
        || status == 400
        || status == 405
    {
        return GraphKind::BadRequest;
    }
    if status == 401 || code_l == "unauthorized" || code_l == "unauthenticated" || inner_l == "unauthorized" {
        return GraphKind::Unauthorized;
    }
    GraphKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str, inner: Option<&str>, msg: &str, status: u16) -> GraphKind {
        classify(code, inner, msg, None, None, status)
    }

    #[test]
    fn codes_are_classified() {
        assert_eq!(
            c(
                "unauthorized",
                Some("unauthorizedMissingMfaTokenClaim"),
                "You are not authorized to access the resource.",
                401
            ),
            GraphKind::MfaClaim
        );
        assert_eq!(c("Unauthorized_MissingMFA", None, "", 403), GraphKind::MfaClaim);
        assert_eq!(
            c("InvalidAuthenticationToken", None, "Access token has expired or is not yet valid.", 401),
            GraphKind::InvalidToken
        );
        // Both generations of Graph's 401 texts, with and without their code.
        for message in [
            "Lifetime validation failed, the token is expired.",
            "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format.",
            "CompactToken parsing failed with error code: 80049217",
        ] {
            assert_eq!(c("InvalidAuthenticationToken", None, message, 401), GraphKind::InvalidToken, "{message}");
            assert_eq!(c("", None, message, 401), GraphKind::InvalidToken, "{message}");
        }
        assert_eq!(
            c("Authorization_RequestDenied", None, "Insufficient privileges to complete the operation.", 403),
            GraphKind::Denied
        );
        assert_eq!(
            c(
                "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                None,
                "Neither tenant is B2C or tenant doesn't have premium license",
                403
            ),
            GraphKind::Licence
        );
        assert_eq!(c("", None, "Request not applicable to target tenant.", 403), GraphKind::Licence);
        assert_eq!(c("Authorization_IdentityNotFound", None, "", 401), GraphKind::IdentityNotFound);
        assert_eq!(c("TooManyRequests", None, "Please retry again later.", 429), GraphKind::Throttled);
        assert_eq!(c("", None, "", 503), GraphKind::ServerError);
        assert_eq!(c("Request_UnsupportedQuery", None, "Unsupported Query.", 400), GraphKind::BadRequest);
        assert_eq!(c("resyncRequired", None, "Resync required.", 400), GraphKind::Resync);
        assert_eq!(c("SyncStateNotFound", None, "", 410), GraphKind::Resync);
        assert_eq!(c("", None, "", 410), GraphKind::Resync);
        assert_eq!(c("", None, "", 401), GraphKind::Unauthorized);
        assert_eq!(
            c(
                "Forbidden",
                None,
                "Missing role permissions on the request. API requires one of 'DeviceManagementManagedDevices.Read.All'. Roles on the request ''.",
                403
            ),
            GraphKind::MissingRolePermissions
        );
        assert_eq!(
            classify(
                "InvalidAuthenticationToken",
                None,
                "",
                None,
                Some("Bearer error=\"insufficient_claims\", claims=\"x\""),
                401
            ),
            GraphKind::ClaimsChallenge
        );
    }
}
