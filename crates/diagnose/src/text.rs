//! Rules for text that carries no code the parser could structure: words and phrases.
//!
//! These are the weakest rules (confidences stay below the code-based ones); they exist because
//! users paste tool output that paraphrases Microsoft ("MFA required", "the refresh token has
//! expired") and a named cause with its fix is still far more useful than "unknown".

use crate::cause::Cause;
use crate::facts::Facts;
use crate::field;
use crate::parse;
use crate::rules::Cand;

/// Which kind of call a bare status came from, read from the words around it. A status alone
/// does not decide a cause; where it was printed makes some causes far more likely than others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Getting a token ("Error getting MS Graph Token", a login URL): the credentials were refused.
    TokenRequest,
    /// A connect or sign-in cmdlet with a user's credentials (`Connect-PnPOnline`,
    /// `Connect-ExchangeOnline`, EWS or WebDAV with a password).
    UserSignIn,
    /// Partner Center's own API (its host, SDK or PowerShell module).
    PartnerCenter,
    /// A partner (GDAP) token used against a customer tenant.
    Partner,
    /// SharePoint (CSOM, PnP, `*.sharepoint.com`).
    SharePoint,
    /// Anything else: a Graph or REST call with a bearer token.
    Api,
}

/// Whether the text comes from a connect or sign-in cmdlet with a user's credentials, where a
/// bare status is about the sign-in rather than the API behind it.
pub(crate) fn is_sign_in_context(lower: &str) -> bool {
    context_of(lower) == Context::UserSignIn
}

fn context_of(lower: &str) -> Context {
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&[
        "get token",
        "getting token",
        "getting ms graph token",
        "graph token",
        "acquire token",
        "acquiring token",
        "access token request",
        "token request",
        "oauth2/token",
        "oauth2/v2.0/token",
        "/token ",
    ]) {
        Context::TokenRequest
    } else if field::is_partner_center_text(lower) {
        Context::PartnerCenter
    } else if has(&["new-partneraccesstoken", "gdap", "secure application model", "delegated admin"]) {
        Context::Partner
    } else if has(&[
        "connect-pnponline",
        "connect-sposervice",
        "connect-exchangeonline",
        "connect-msolservice",
        "connect-azuread",
        "new-pssession",
        "-credential",
        "username or password",
        "user name or password",
        "exchange.asmx",
        "webdav",
        "exchangewebservices",
    ]) {
        Context::UserSignIn
    } else if has(&["sharepoint", "spo ", "pnp", "csom", "_api/"]) {
        Context::SharePoint
    } else {
        Context::Api
    }
}

/// Only the phrase table, for the words of a structured failure whose code said little.
pub(crate) fn phrase_rules(text: &str, out: &mut Vec<Cand>) {
    let lower = parse::squash(parse::cap(text));
    for p in field::matching_phrases(&lower) {
        out.push(Cand::new(p.cause, p.confidence, p.summary));
    }
}

pub(crate) fn text_rules(text: &str, _facts: &Facts, out: &mut Vec<Cand>) {
    let lower = parse::squash(parse::cap(text));
    let mut found = 0usize;
    if let Some(pc) = field::partner_center(&lower) {
        found += 1;
        out.push(
            Cand::new(
                pc.cause,
                0.74,
                format!(
                    "Partner Center error {} ({}): Microsoft documents this code for this situation.",
                    pc.code, pc.description
                ),
            )
            .ev("partner center code", pc.code.to_string()),
        );
    }
    for e in field::msal_errors_in(&lower).into_iter().take(2) {
        found += 1;
        out.push(Cand::new(e.cause, 0.7, format!("MSAL `{}`: {}", e.code, e.summary)).ev("msal error", e.code));
    }
    for p in field::matching_phrases(&lower) {
        found += 1;
        out.push(Cand::new(p.cause, p.confidence, p.summary));
    }
    // A status with nothing else still narrows the field.
    let status = parse::status_of(text);
    let said = |what: &str| {
        format!(
            "A bare {what} without any detail that names a cause; where it was printed makes these the likely causes."
        )
    };
    match status {
        Some(429) => out.push(Cand::plain(Cause::Throttled, 0.8)),
        Some(500..=599) => out.push(Cand::plain(Cause::ServiceUnavailable, 0.75)),
        Some(401) if found == 0 => {
            let s = said("401 Unauthorized");
            let ranked: &[(Cause, f32)] = match context_of(&lower) {
                Context::TokenRequest => &[
                    (Cause::ClientCredentialInvalid, 0.45),
                    (Cause::ClientCredentialExpired, 0.42),
                    (Cause::InvalidCredentials, 0.38),
                    (Cause::RefreshTokenExpired, 0.34),
                ],
                Context::UserSignIn => &[
                    (Cause::InvalidCredentials, 0.45),
                    (Cause::MfaRequired, 0.4),
                    (Cause::ConditionalAccessBlocked, 0.36),
                    (Cause::TokenInvalid, 0.32),
                ],
                Context::PartnerCenter => &[
                    (Cause::MfaClaimMissing, 0.45),
                    (Cause::TokenInvalid, 0.4),
                    (Cause::PermissionMissing, 0.36),
                    (Cause::ConsentMissing, 0.32),
                ],
                Context::Partner => &[
                    (Cause::MfaClaimMissing, 0.45),
                    (Cause::TokenInvalid, 0.4),
                    (Cause::ConsentMissing, 0.36),
                    (Cause::GdapMissing, 0.3),
                ],
                Context::SharePoint => &[
                    (Cause::PermissionMissing, 0.45),
                    (Cause::TokenInvalid, 0.4),
                    (Cause::ConsentMissing, 0.34),
                    (Cause::InvalidCredentials, 0.3),
                ],
                Context::Api => &[
                    (Cause::TokenInvalid, 0.42),
                    (Cause::PermissionMissing, 0.4),
                    (Cause::MfaClaimMissing, 0.36),
                    (Cause::ConsentMissing, 0.32),
                ],
            };
            for (cause, confidence) in ranked {
                out.push(Cand::new(*cause, *confidence, s.clone()));
            }
        }
        Some(403) if found == 0 => {
            let s = said("403 Forbidden");
            let ranked: &[(Cause, f32)] = match context_of(&lower) {
                Context::UserSignIn => &[
                    (Cause::ConditionalAccessBlocked, 0.45),
                    (Cause::MfaRequired, 0.42),
                    (Cause::PermissionMissing, 0.36),
                    (Cause::LicenseMissing, 0.3),
                ],
                Context::PartnerCenter => &[
                    (Cause::PermissionMissing, 0.45),
                    (Cause::ConsentMissing, 0.4),
                    (Cause::GdapMissing, 0.36),
                    (Cause::MfaClaimMissing, 0.3),
                ],
                Context::Partner => &[
                    (Cause::GdapRoleMissing, 0.45),
                    (Cause::PermissionMissing, 0.42),
                    (Cause::GdapMissing, 0.36),
                    (Cause::ConsentMissing, 0.3),
                ],
                _ => &[
                    (Cause::PermissionMissing, 0.45),
                    (Cause::GdapRoleMissing, 0.42),
                    (Cause::ConsentMissing, 0.35),
                    (Cause::TokenCacheStale, 0.3),
                ],
            };
            for (cause, confidence) in ranked {
                out.push(Cand::new(*cause, *confidence, s.clone()));
            }
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

    #[test]
    fn a_bare_status_is_ranked_by_where_it_was_printed() {
        assert_eq!(
            top("Error getting MS Graph Token (Response status code does not indicate success: 401 (Unauthorized).)"),
            Some(Cause::ClientCredentialInvalid)
        );
        assert_eq!(
            top("Connect-PnPOnline : The remote server returned an error: (403) Forbidden."),
            Some(Cause::ConditionalAccessBlocked)
        );
        assert_eq!(
            top("Get-PartnerCustomer : The remote server returned an error: (401) Unauthorized."),
            Some(Cause::MfaClaimMissing)
        );
        assert_eq!(
            top("Invoke-RestMethod : The remote server returned an error: (401) Unauthorized."),
            Some(Cause::TokenInvalid)
        );
        assert_eq!(
            top("Invoke-RestMethod : The remote server returned an error: (403) Forbidden."),
            Some(Cause::PermissionMissing)
        );
        assert_eq!(top("Le serveur distant a retourné une erreur : (403) Interdit."), Some(Cause::PermissionMissing));
    }
}
