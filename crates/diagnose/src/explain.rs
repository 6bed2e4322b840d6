//! `explain`: diagnose whatever a user pasted.

use crate::cause::Cause;
use crate::diagnosis::{Diagnosis, Explanation};
use crate::facts::{Facts, Failure};
use crate::parse;
use crate::rules;

/// Parses any pasted text and ranks the causes it supports.
pub fn explain(text: &str) -> Explanation {
    explain_with(text, &Facts::default())
}

/// Like `explain`, with whatever else the caller knows (the tenant, the token's claims, ...).
/// The failure in `facts` is replaced by the one parsed from `text`.
pub fn explain_with(text: &str, facts: &Facts) -> Explanation {
    if looks_binary(parse::cap(text)) {
        // Binary input (an image, an archive, a UTF-16 file read as UTF-8) holds no message to
        // read, and scanning it only costs time: it is `unknown`, and says why.
        let parsed = Failure::Text(String::new());
        let mut facts = facts.clone();
        facts.failure = Some(parsed.clone());
        let summary = "The input is binary (NUL bytes or mostly undecodable bytes), not the text of an error; paste the message itself, or save it as UTF-8.";
        let candidates =
            rules::finalize(vec![rules::Cand::new(Cause::Unknown, 0.1, summary)], &facts, facts.failure.as_ref());
        return Explanation { cause: Cause::Unknown, candidates, distinguish: Vec::new(), parsed };
    }
    let parsed = parse::parse_failure(text);
    let mut facts = facts.clone();
    // Unstructured text is handed on whole (capped) so the phrase rules see all of it, not the
    // excerpt kept in `parsed`.
    facts.failure = Some(match &parsed {
        Failure::Text(_) => Failure::Text(parse::cap(text).to_string()),
        other => other.clone(),
    });
    let candidates = rules::candidates_parsed(&facts);
    let cause = candidates.first().map(|d| d.cause).unwrap_or(Cause::Unknown);
    let tenant = tenant_hint(&facts, &parsed);
    let distinguish = distinguish(&candidates, &parsed, &tenant);
    Explanation { cause, candidates, distinguish, parsed }
}

/// Whether a text is binary rather than a message: NUL characters, or more than one character
/// in ten that is a replacement character (undecodable bytes) or a control character.
fn looks_binary(text: &str) -> bool {
    let mut total = 0usize;
    let mut odd = 0usize;
    let mut nul = 0usize;
    for c in text.chars() {
        total += 1;
        if c == '\0' {
            nul += 1;
        }
        if c == char::REPLACEMENT_CHARACTER || (c.is_control() && !c.is_whitespace()) {
            odd += 1;
        }
    }
    total > 0 && (nul * 100 > total || odd * 10 > total)
}

fn tenant_hint(facts: &Facts, parsed: &Failure) -> String {
    facts
        .context
        .as_ref()
        .and_then(|c| c.tenant_id.clone())
        .or_else(|| match parsed {
            Failure::TokenEndpoint(t) => t.tenant.clone(),
            _ => None,
        })
        .unwrap_or_else(|| "<tenant>".to_string())
}

/// What would tell the leading candidates apart, as concrete commands and pages.
fn distinguish(candidates: &[Diagnosis], parsed: &Failure, tenant: &str) -> Vec<String> {
    let Some(first) = candidates.first() else {
        return Vec::new();
    };
    let close: Vec<&Diagnosis> = candidates.iter().take(4).filter(|d| d.confidence >= first.confidence * 0.5).collect();
    let decided = first.confidence >= 0.8 && close.len() == 1;
    if decided {
        return Vec::new();
    }
    let mut steps = vec![format!(
        "Run `tenantscope doctor --tenant {tenant}`: its six checks (MFA, GDAP, token retrieval, cache, permissions, agent) tell these causes apart."
    )];
    for d in &close {
        let step = match d.cause {
            Cause::MfaClaimMissing | Cause::MfaRequired => format!(
                "Decode the token with `tenantscope token --tenant {tenant} --claims` and look at `amr`: without `mfa` the partner sign-in did not use Microsoft Entra MFA (mfa_claim_missing); with it, the tenant asks for MFA again (mfa_required)."
            ),
            Cause::MfaExpired | Cause::ConditionalAccessBlocked | Cause::PartnerBlockedRisk => {
                "Open the customer's sign-in logs (Entra admin centre > Monitoring & health > Sign-in logs, https://entra.microsoft.com) and find the partner user's failed sign-in: its Conditional Access tab names the policy that applied.".to_string()
            }
            Cause::GdapMissing | Cause::GdapExpired | Cause::GdapRoleMissing | Cause::UserNotInTenant => format!(
                "Check 2 of `tenantscope doctor --tenant {tenant}` lists the GDAP relationships with their status, end date, roles and assigned groups, and whether the user is in those groups (Partner Center > Customers > the customer > Admin relationships shows the same)."
            ),
            Cause::ConsentMissing | Cause::PermissionMissing | Cause::LicenseMissing => format!(
                "Check 5 of `tenantscope doctor --tenant {tenant}` compares the token's `scp`/`roles` with what the collector needs and reads the app's consent and the licences in the customer."
            ),
            Cause::TokenInvalid | Cause::TokenCacheStale => format!(
                "Run `tenantscope inspect --tenant {tenant} --clear-cache`: if a fresh token works, the cached one was stale (token_cache_stale)."
            ),
            Cause::ClientCredentialInvalid | Cause::ClientCredentialExpired | Cause::AppNotFound => {
                "Look at the app in Entra admin centre > App registrations > Certificates & secrets (https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade): an expired secret shows its end date; a wrong one is usually the Secret ID pasted instead of the Value.".to_string()
            }
            Cause::RefreshTokenExpired | Cause::RefreshTokenRevoked | Cause::InvalidCredentials => {
                "Sign in again with `tenantscope login`: if the failure disappears, the stored refresh token was expired or revoked.".to_string()
            }
            Cause::NetworkUnreachable | Cause::AgentUnhealthy => format!(
                "Check 6 of `tenantscope doctor --tenant {tenant}` tests the agent and its reach to the login and Graph hosts."
            ),
            Cause::Throttled | Cause::ServiceUnavailable => {
                "Retry in a few minutes and look at Microsoft 365 admin centre > Health > Service health (https://admin.microsoft.com/Adminportal/Home#/servicehealth).".to_string()
            }
            _ => continue,
        };
        if !steps.contains(&step) {
            steps.push(step);
        }
    }
    let has_code = match parsed {
        Failure::TokenEndpoint(t) => !t.error_codes.is_empty() || !t.error.is_empty(),
        Failure::Graph(g) => !g.code.is_empty(),
        Failure::Transport(_) => true,
        Failure::Text(_) => false,
    };
    if !has_code {
        steps.push(
            "Paste the full response body if you have it: the AADSTS code of a token error, or the `error.code` of a Graph error, names the cause precisely.".to_string(),
        );
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_text_gets_distinguishing_steps() {
        let e = explain(
            "Unable to get Microsoft access_token (SSO auth). Request failed with status code 401 calling https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
        );
        assert!(e.candidates.len() > 1);
        assert!(e.distinguish.iter().any(|s| s.contains("tenantscope doctor --tenant contoso.onmicrosoft.com")));
        assert!(e.distinguish.iter().any(|s| s.contains("amr")));
    }

    #[test]
    fn a_precise_code_needs_no_steps() {
        let e = explain("AADSTS7000222: The provided client secret keys for app 'x' are expired.");
        assert_eq!(e.cause, Cause::ClientCredentialExpired);
        assert!(e.distinguish.is_empty());
    }

    #[test]
    fn first_candidate_is_the_cause() {
        let e = explain("whatever");
        assert_eq!(e.cause, e.candidates[0].cause);
        assert!(!e.candidates[0].evidence.is_empty());
    }
}
