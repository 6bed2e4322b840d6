//! The decision rules: from facts to ranked candidate causes.
//!
//! Each layer (token endpoint, Graph, transport, free text, facts alone) proposes candidates
//! with a confidence; the facts then confirm or demote them; `finalize` ranks them, keeps the
//! best candidate per cause and fills in the evidence every diagnosis shows and the default fix
//! steps of each cause.

use chrono::{DateTime, Utc};

use crate::aadsts::{self, Resolve};
use crate::advice;
use crate::cause::{Cause, Check};
use crate::diagnosis::{Diagnosis, Evidence};
use crate::evidence;
use crate::facts::{
    Auth, Facts, Failure, GdapAssignment, GdapFacts, GdapRelationship, GraphFailure, TokenEndpointFailure,
    TransportFailure, TransportKind,
};
use crate::graph::{self, GraphKind};
use crate::hosts;
use crate::parse;
use crate::text;

/// The Entra role template id of Global Administrator, which implies every other role.
pub(crate) const GLOBAL_ADMIN: &str = vocab::roles::GLOBAL_ADMINISTRATOR;

/// A candidate cause before it becomes a `Diagnosis`.
#[derive(Debug, Clone)]
pub(crate) struct Cand {
    pub cause: Cause,
    pub confidence: f32,
    pub summary: String,
    pub evidence: Vec<Evidence>,
    pub fix: Vec<String>,
    pub check: Option<Check>,
}

impl Cand {
    pub(crate) fn new(cause: Cause, confidence: f32, summary: impl Into<String>) -> Self {
        Cand { cause, confidence, summary: summary.into(), evidence: Vec::new(), fix: Vec::new(), check: None }
    }

    /// A candidate with the cause's default summary.
    pub(crate) fn plain(cause: Cause, confidence: f32) -> Self {
        Cand::new(cause, confidence, advice::default_summary(cause))
    }

    pub(crate) fn ev(mut self, name: &str, value: impl Into<String>) -> Self {
        self.evidence.push(Evidence::new(name, value));
        self
    }

    pub(crate) fn fix<S: AsRef<str>>(mut self, steps: &[S]) -> Self {
        self.fix.extend(steps.iter().map(|s| s.as_ref().to_string()));
        self
    }
}

/// Ranked candidates for the facts; never empty.
pub fn candidates(facts: &Facts) -> Vec<Diagnosis> {
    let failure = facts.failure.as_ref().map(normalize);
    let cands = raw_candidates(facts, failure.as_ref(), 0);
    finalize(cands, facts, failure.as_ref())
}

/// `candidates` for a failure that `explain` has already parsed, so that a megabyte of text is
/// not parsed twice.
pub(crate) fn candidates_parsed(facts: &Facts) -> Vec<Diagnosis> {
    let cands = raw_candidates(facts, facts.failure.as_ref(), 0);
    finalize(cands, facts, facts.failure.as_ref())
}

/// The best diagnosis for the facts.
pub fn diagnose(facts: &Facts) -> Diagnosis {
    let mut all = candidates(facts);
    // `candidates` never returns an empty list; the fallback keeps this total anyway.
    if all.is_empty() {
        return finalize(Vec::new(), facts, None).remove(0);
    }
    all.remove(0)
}

/// Free text is parsed into the most specific failure it supports; text that stays text is
/// kept whole (capped), so the phrase rules read all of it rather than the parser's excerpt.
fn normalize(failure: &Failure) -> Failure {
    match failure {
        Failure::Text(t) => match parse::parse_failure(t) {
            Failure::Text(_) => Failure::Text(parse::cap(t).to_string()),
            parsed => parsed,
        },
        other => other.clone(),
    }
}

fn raw_candidates(facts: &Facts, failure: Option<&Failure>, depth: u8) -> Vec<Cand> {
    let mut out = Vec::new();
    match failure {
        Some(Failure::TokenEndpoint(t)) => token_rules(t, facts, &mut out),
        Some(Failure::Graph(g)) => graph_rules(g, facts, &mut out),
        Some(Failure::Transport(t)) => transport_rules(t, facts, &mut out),
        Some(Failure::Text(t)) => text::text_rules(t, facts, &mut out),
        None => fact_rules(facts, &mut out),
    }
    // A structured failure whose code says little (an unknown Graph code, a token error without
    // code) still carries words; the phrase tables read them when the structured rules are weak.
    let weak = out.iter().all(|c| c.confidence < 0.45 || c.cause == Cause::Unknown);
    // A token failure with neither a code nor an OAuth error (a login URL in a tool's own
    // message) was only guessed at from its status; the words around it are better evidence.
    let guessed = matches!(failure, Some(Failure::TokenEndpoint(t)) if t.error_codes.is_empty() && t.error.is_empty());
    if weak || guessed {
        let words = match failure {
            Some(Failure::Graph(g)) => {
                Some(format!("{} {} {}", g.code, g.message, g.inner_message.as_deref().unwrap_or_default()))
            }
            Some(Failure::TokenEndpoint(t)) if t.error_codes.is_empty() => Some(t.description.clone()),
            Some(Failure::Transport(t)) => Some(t.message.clone()),
            _ => None,
        };
        if let Some(words) = words {
            text::phrase_rules(&words, &mut out);
        }
    }
    if let Some(f) = failure {
        cloud_rules(f, facts, &mut out);
    }
    if depth == 0 {
        fresh_failure_rules(facts, &mut out);
    }
    out
}

// ----------------------------------------------------------------------------------------------
// Shared fact readers
// ----------------------------------------------------------------------------------------------

fn auth(facts: &Facts) -> Option<Auth> {
    facts.context.as_ref().map(|c| c.auth)
}

/// Whether the access goes through the partner's delegated token (or nothing says otherwise).
fn partner_path(facts: &Facts) -> bool {
    matches!(auth(facts), None | Some(Auth::Gdap) | Some(Auth::Partner))
}

fn is_app_only(facts: &Facts) -> bool {
    auth(facts) == Some(Auth::App) || facts.claims.as_ref().is_some_and(|c| c.is_app_only())
}

/// The partner token is known to lack MFA.
fn token_lacks_mfa(facts: &Facts) -> bool {
    facts.claims.as_ref().is_some_and(|c| !c.has_mfa() && !c.is_app_only())
}

fn contains_any(have: &[String], wanted: &[String]) -> bool {
    wanted.iter().any(|w| have.iter().any(|h| h.eq_ignore_ascii_case(w)))
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The state of a GDAP relationship as far as access goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelState {
    Active,
    Pending,
    Ended,
}

pub(crate) fn rel_state(r: &GdapRelationship, now: Option<DateTime<Utc>>) -> RelState {
    let ended_by_date = matches!((r.end, now), (Some(end), Some(now)) if end <= now);
    match r.status.to_ascii_lowercase().as_str() {
        "expired" | "terminated" | "terminating" => RelState::Ended,
        "active" | "expiring" | "terminationrequested" | "" => {
            if ended_by_date {
                RelState::Ended
            } else if r.status.is_empty() && r.end.is_none() {
                RelState::Pending
            } else {
                RelState::Active
            }
        }
        _ => RelState::Pending,
    }
}

fn assignment_active(a: &GdapAssignment) -> bool {
    a.status.is_empty() || a.status.eq_ignore_ascii_case("active")
}

/// Whether the user is in the assignment's group: `None` when nobody knows.
fn user_in(a: &GdapAssignment, g: &GdapFacts) -> Option<bool> {
    a.user_is_member
        .or_else(|| g.user_groups.as_ref().map(|groups| groups.iter().any(|x| x.eq_ignore_ascii_case(&a.group_id))))
}

fn group_label(a: &GdapAssignment) -> String {
    match &a.group_name {
        Some(n) if !n.is_empty() => format!("{n} ({})", a.group_id),
        _ => a.group_id.clone(),
    }
}

fn rel_label(r: &GdapRelationship) -> String {
    if r.display_name.is_empty() { r.id.clone() } else { r.display_name.clone() }
}

/// The roles the user reaches through active relationships and active assignments, when the
/// membership of every relevant assignment is known.
fn reachable_roles(g: &GdapFacts, now: Option<DateTime<Utc>>) -> Option<Vec<String>> {
    let mut roles = Vec::new();
    let mut unknown = false;
    for r in g.relationships.iter().filter(|r| rel_state(r, now) == RelState::Active) {
        for a in r.assignments.iter().filter(|a| assignment_active(a)) {
            match user_in(a, g) {
                Some(true) => {
                    // An assignment's roles are limited to those of its relationship.
                    for role in &a.roles {
                        if r.roles.is_empty() || r.roles.iter().any(|x| x.eq_ignore_ascii_case(role)) {
                            roles.push(role.clone());
                        }
                    }
                }
                Some(false) => {}
                None => unknown = true,
            }
        }
    }
    if unknown && roles.is_empty() { None } else { Some(roles) }
}

/// What the GDAP facts say about the partner user's way into the customer, if anything is
/// wrong with it. `Ok(None)` means the path looks fine; `Err(())` means the facts cannot tell.
pub(crate) fn gdap_access_problem(facts: &Facts) -> Result<Option<Cand>, ()> {
    let Some(g) = facts.gdap.as_ref() else {
        return Err(());
    };
    let now = facts.now;
    if g.relationships.is_empty() {
        return Ok(Some(
            Cand::new(Cause::GdapMissing, 0.9, "There is no GDAP relationship between the partner and {tenant}.")
                .ev("gdap relationships", "(none)"),
        ));
    }
    let states: Vec<(RelState, &GdapRelationship)> = g.relationships.iter().map(|r| (rel_state(r, now), r)).collect();
    let active: Vec<&GdapRelationship> =
        states.iter().filter(|(s, _)| *s == RelState::Active).map(|(_, r)| *r).collect();
    if active.is_empty() {
        let ended: Vec<&GdapRelationship> =
            states.iter().filter(|(s, _)| *s == RelState::Ended).map(|(_, r)| *r).collect();
        if let Some(latest) = ended.iter().max_by_key(|r| r.end) {
            let when = latest.end.map(|e| format!(", ended {}", fmt_time(e))).unwrap_or_default();
            return Ok(Some(
                Cand::new(
                    Cause::GdapExpired,
                    0.9,
                    format!(
                        "No GDAP relationship with {{tenant}} is active: the latest, \"{}\", is {}{}.",
                        rel_label(latest),
                        if latest.status.is_empty() { "past its end" } else { latest.status.as_str() },
                        when
                    ),
                )
                .ev("gdap relationship", format!("{} ({})", rel_label(latest), latest.status)),
            ));
        }
        let pending = states[0].1;
        return Ok(Some(
            Cand::new(
                Cause::GdapMissing,
                0.85,
                format!(
                    "The only GDAP relationship with {{tenant}}, \"{}\", is not active yet (status {}): the customer has not approved it.",
                    rel_label(pending),
                    if pending.status.is_empty() { "unknown" } else { pending.status.as_str() }
                ),
            )
            .fix(&["Have a Global Administrator of the customer approve the pending relationship (the approval link is in Partner Center > Customers > the customer > Admin relationships)."]),
        ));
    }
    let assignments: Vec<(&GdapRelationship, &GdapAssignment)> = active
        .iter()
        .flat_map(|r| r.assignments.iter().map(move |a| (*r, a)))
        .filter(|(_, a)| assignment_active(a))
        .collect();
    if assignments.is_empty() {
        return Ok(Some(
            Cand::new(
                Cause::UserNotInTenant,
                0.85,
                format!(
                    "The active GDAP relationship \"{}\" with {{tenant}} assigns its roles to no security group, so no partner user can use it.",
                    rel_label(active[0])
                ),
            )
            .ev("gdap relationship", rel_label(active[0]))
            .fix(&["Create an access assignment on the relationship (Partner Center > Customers > the customer > Admin relationships > the relationship > Assign roles to security group) for a group that contains the tenantscope user."]),
        ));
    }
    let memberships: Vec<Option<bool>> = assignments.iter().map(|(_, a)| user_in(a, g)).collect();
    if memberships.contains(&Some(true)) {
        return Ok(None);
    }
    if memberships.iter().all(|m| *m == Some(false)) {
        let groups: Vec<String> = assignments.iter().map(|(_, a)| group_label(a)).collect();
        return Ok(Some(
            Cand::new(
                Cause::UserNotInTenant,
                0.9,
                format!(
                    "The active GDAP relationship \"{}\" assigns roles only to groups the user is not in: {}.",
                    rel_label(active[0]),
                    groups.join(", ")
                ),
            )
            .ev("gdap assigned groups", groups.join(", "))
            .fix(&[format!(
                "Add the tenantscope user to one of these security groups in the partner tenant: {} (Entra admin centre > Groups, {}).",
                groups.join(", "),
                advice::GROUPS
            )]),
        ));
    }
    Err(())
}

/// The GDAP candidates when the facts cannot decide, in the order the brief ranks them.
fn gdap_unknown_runners(out: &mut Vec<Cand>) {
    out.push(Cand::plain(Cause::GdapMissing, 0.45));
    out.push(Cand::plain(Cause::GdapExpired, 0.4));
}

/// Whether a needed licence is lacking: `Some(true)` lacking, `Some(false)` present.
fn licence_lacking(facts: &Facts) -> Option<bool> {
    let needed = facts.context.as_ref()?.needed.licence.as_ref()?.to_ascii_uppercase();
    let lic = facts.licence.as_ref()?;
    let listed =
        |name: &str| lic.skus.iter().chain(lic.service_plans.iter()).any(|s| s.to_ascii_uppercase().starts_with(name));
    let have = if needed.contains("P2") {
        lic.has_p2.or_else(|| listed("AAD_PREMIUM_P2").then_some(true))
    } else if needed.contains("AAD_PREMIUM") || needed.contains("P1") {
        match (lic.has_p1, lic.has_p2) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), _) => Some(false),
            _ => listed("AAD_PREMIUM").then_some(true),
        }
    } else if needed.contains("INTUNE") {
        lic.has_intune.or_else(|| listed("INTUNE").then_some(true))
    } else {
        Some(listed(&needed))
    };
    match have {
        Some(h) => Some(!h),
        None if !lic.skus.is_empty() || !lic.service_plans.is_empty() => Some(true),
        None => None,
    }
}

// ----------------------------------------------------------------------------------------------
// Token endpoint
// ----------------------------------------------------------------------------------------------

fn token_codes(t: &TokenEndpointFailure) -> Vec<u32> {
    let mut codes = t.error_codes.clone();
    for c in parse::signals(&t.description).aadsts {
        if !codes.contains(&c) {
            codes.push(c);
        }
    }
    codes
}

/// The generic "Error validating credentials" code that wraps a specific one.
const WRAPPER_CODE: u32 = 70002;

fn token_rules(t: &TokenEndpointFailure, facts: &Facts, out: &mut Vec<Cand>) {
    let codes = token_codes(t);
    // AADSTS70002 ("Error validating credentials") wraps the specific code that follows it in
    // older responses ("AADSTS70002: Error validating credentials. AADSTS50126: ..."), so the
    // wrapped code decides when there is one.
    let specific = |c: &u32| *c != WRAPPER_CODE || codes.len() == 1;
    let primary = codes
        .iter()
        .copied()
        .filter(specific)
        .find(|c| aadsts::rule_for(*c).is_some())
        .or_else(|| codes.iter().copied().find(|c| aadsts::rule_for(*c).is_some()))
        .or_else(|| codes.first().copied());

    match primary {
        Some(code) => match aadsts::rule_for(code) {
            Some(rule) => apply_code_rule(rule, t, facts, out),
            None => {
                unmapped_code(code, out);
                // Microsoft adds codes faster than any table; the words of the description
                // still name the cause more often than not.
                text::text_rules(&t.description, facts, out);
            }
        },
        None => token_without_code(t, facts, out),
    }
    // A second mapped code (some responses carry several) is a runner-up.
    for code in codes.iter().skip(1) {
        if Some(*code) == primary {
            continue;
        }
        if let Some(rule) = aadsts::rule_for(*code) {
            out.push(Cand::new(rule.cause, rule.confidence * 0.6, rule.summary).fix(rule.fix));
        }
    }
}

fn apply_code_rule(rule: &'static aadsts::CodeRule, t: &TokenEndpointFailure, facts: &Facts, out: &mut Vec<Cand>) {
    let base = Cand::new(rule.cause, rule.confidence, rule.summary).fix(rule.fix);
    // Some codes mean different things depending on their description or failure reason
    // (`data/code_overrides.tsv`); the mapped cause stays as the runner-up.
    if let Some(o) = crate::field::override_for(rule.code, &parse::squash(&t.description))
        && o.cause != rule.cause
    {
        out.push(Cand::new(o.cause, rule.confidence.max(0.8), o.summary).ev("aadsts", format!("AADSTS{}", rule.code)));
        out.push(Cand::new(rule.cause, rule.confidence * 0.6, rule.summary).fix(rule.fix));
        return;
    }
    match rule.resolve {
        Resolve::Direct => {
            if rule.cause == Cause::TenantNotFound
                && let Some(cloud) = foreign_cloud_domain(&t.description)
            {
                out.push(Cand::new(
                        Cause::WrongCloud,
                        0.9,
                        format!("AADSTS{}: the tenant was not found because its domain belongs to the {cloud} cloud, not the one asked.", rule.code),
                    ));
            }
            let mut c = base;
            if rule.cause == Cause::ConditionalAccessBlocked {
                c = with_ca_evidence(c, t, facts);
            }
            out.push(c);
            if rule.cause == Cause::MfaRequired && partner_path(facts) && facts.claims.is_none() {
                out.push(Cand::plain(Cause::MfaClaimMissing, 0.4));
            }
        }
        Resolve::MfaClaim => {
            if token_lacks_mfa(facts) && partner_path(facts) {
                out.push(
                    Cand::new(
                        Cause::MfaClaimMissing,
                        0.93,
                        format!(
                            "AADSTS{}: MFA is required, and the partner token used has no `mfa` in its `amr` claim: the partner's refresh token was obtained without Microsoft Entra MFA.",
                            rule.code
                        ),
                    ),
                );
                out.push(Cand::new(rule.cause, 0.5, rule.summary).fix(rule.fix));
            } else {
                out.push(base);
                if partner_path(facts) && facts.claims.is_none() {
                    out.push(Cand::plain(Cause::MfaClaimMissing, 0.55));
                }
                out.push(Cand::plain(Cause::ConditionalAccessBlocked, 0.3));
            }
        }
        Resolve::GdapAccess => match gdap_access_problem(facts) {
            Ok(Some(c)) => {
                out.push(c.ev("aadsts", format!("AADSTS{}", rule.code)));
                out.push(Cand::new(rule.cause, 0.4, rule.summary));
            }
            Ok(None) => {
                out.push(
                    Cand::new(
                        Cause::UserNotInTenant,
                        0.6,
                        format!(
                            "AADSTS{}: the customer tenant does not know the partner user although GDAP looks right; the user may exist there as a stale guest, or a membership change has not reached the token yet.",
                            rule.code
                        ),
                    )
                    .fix(rule.fix),
                );
                out.push(Cand::plain(Cause::TokenCacheStale, 0.35));
            }
            Err(()) => {
                out.push(base);
                gdap_unknown_runners(out);
            }
        },
    }
}

/// The cloud of a tenant domain named in a message, when it is not the global cloud.
fn foreign_cloud_domain(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    if lower.contains(".onmschina.cn") || lower.contains("chinacloudapi.cn") {
        Some("China (21Vianet)")
    } else if lower.contains(".onmicrosoft.us") || lower.contains("microsoftonline.us") {
        Some("US Government")
    } else if lower.contains(".onmicrosoft.de") || lower.contains("microsoftonline.de") {
        Some("Germany")
    } else {
        None
    }
}

fn with_ca_evidence(mut c: Cand, t: &TokenEndpointFailure, facts: &Facts) -> Cand {
    if let Some(claims) = &t.claims {
        let ids = evidence::capolids(claims);
        if !ids.is_empty() {
            c = c.ev("conditional access policy ids (capolids)", ids.join(", "));
        }
        c = c.ev("claims challenge", claims.clone());
    }
    let ip = facts
        .claims
        .as_ref()
        .and_then(|c| c.ipaddr.clone())
        .or_else(|| facts.network.as_ref().and_then(|n| n.egress_ip.clone()));
    if let Some(ip) = ip {
        c.summary = format!("{} The request came from {ip}.", c.summary);
        c = c.ev("egress ip", ip);
    }
    c
}

fn unmapped_code(code: u32, out: &mut Vec<Cand>) {
    let (name, desc) = aadsts::reference(code).map(|e| (e.name, e.description)).unwrap_or(("", ""));
    let summary = if desc.is_empty() && name.is_empty() {
        format!(
            "AADSTS{code}: a code tenantscope does not know; Microsoft's page https://login.microsoftonline.com/error?code={code} explains it."
        )
    } else if desc.is_empty() {
        format!("AADSTS{code} ({name}).")
    } else if name.is_empty() {
        format!("AADSTS{code}: {desc}")
    } else {
        format!("AADSTS{code} ({name}): {desc}")
    };
    let mut c = Cand::new(Cause::Unknown, 0.5, summary)
        .fix(&[format!("Look the code up at https://login.microsoftonline.com/error?code={code}.")]);
    if !name.is_empty() {
        c = c.ev("aadsts name", name);
    }
    out.push(c);
}

fn token_without_code(t: &TokenEndpointFailure, facts: &Facts, out: &mut Vec<Cand>) {
    let status = t.http_status;
    let error = t.error.to_ascii_lowercase();
    let app = is_app_only(facts);
    match error.as_str() {
        "temporarily_unavailable" | "server_error" => {
            out.push(Cand::new(
                Cause::ServiceUnavailable,
                0.85,
                format!("The token endpoint answered `{error}`: the sign-in service is temporarily unavailable."),
            ));
            return;
        }
        "invalid_client" => {
            out.push(Cand::new(Cause::ClientCredentialInvalid, 0.75, "The token endpoint answered `invalid_client`: the app's client secret or certificate was not accepted."));
            out.push(Cand::plain(Cause::ClientCredentialExpired, 0.45));
            out.push(Cand::plain(Cause::AppNotFound, 0.3));
            return;
        }
        "unauthorized_client" => {
            out.push(Cand::new(Cause::AppNotFound, 0.65, "The token endpoint answered `unauthorized_client`: the app is unknown, disabled or not allowed this flow in the tenant."));
            out.push(Cand::plain(Cause::ConsentMissing, 0.4));
            return;
        }
        "consent_required" => {
            out.push(Cand::new(
                Cause::ConsentMissing,
                0.8,
                "The token endpoint answered `consent_required`: the app is not consented for what was asked.",
            ));
            return;
        }
        "invalid_tenant" => {
            out.push(Cand::new(
                Cause::TenantNotFound,
                0.8,
                "The token endpoint answered `invalid_tenant`: the tenant was not found.",
            ));
            out.push(Cand::plain(Cause::WrongCloud, 0.35));
            return;
        }
        "invalid_instance" => {
            out.push(Cand::new(
                Cause::WrongCloud,
                0.8,
                "The identity platform answered `invalid_instance`: the authority host is not a known instance.",
            ));
            return;
        }
        "interaction_required" => {
            if token_lacks_mfa(facts) && partner_path(facts) {
                out.push(Cand::new(Cause::MfaClaimMissing, 0.75, "The token endpoint demands interaction and the partner token has no `mfa` in `amr`: the refresh token was obtained without Microsoft Entra MFA."));
            }
            out.push(Cand::new(Cause::MfaRequired, 0.6, "The token endpoint demands an interactive sign-in (`interaction_required`), most often to complete MFA."));
            if partner_path(facts) {
                out.push(Cand::plain(Cause::MfaClaimMissing, 0.45));
            }
            out.push(Cand::plain(Cause::ConditionalAccessBlocked, 0.4));
            out.push(Cand::plain(Cause::ConsentMissing, 0.3));
            return;
        }
        "login_required" => {
            out.push(Cand::new(
                Cause::RefreshTokenExpired,
                0.55,
                "The token endpoint answered `login_required`: there is no usable sign-in session; sign in again.",
            ));
            out.push(Cand::plain(Cause::RefreshTokenRevoked, 0.4));
            return;
        }
        "invalid_grant" => {
            out.push(Cand::new(Cause::RefreshTokenExpired, 0.45, "The token endpoint rejected the grant (`invalid_grant`) without a code: the refresh token is expired or revoked, or the sign-in needs MFA or consent."));
            out.push(Cand::plain(Cause::RefreshTokenRevoked, 0.42));
            out.push(Cand::plain(Cause::MfaRequired, 0.35));
            out.push(Cand::plain(Cause::ConsentMissing, 0.3));
            out.push(Cand::plain(Cause::InvalidCredentials, 0.25));
            return;
        }
        "invalid_scope" => {
            out.push(Cand::new(Cause::Unknown, 0.6, "The token endpoint answered `invalid_scope`: the scope asked for is not valid for this request.").fix(&["tenantscope asks for `https://graph.microsoft.com/.default`; check any custom scope in the configuration."]));
            out.push(Cand::plain(Cause::PermissionMissing, 0.3));
            return;
        }
        "invalid_resource" => {
            out.push(Cand::new(Cause::ConsentMissing, 0.55, "The token endpoint answered `invalid_resource`: the resource (API) does not exist or is not consented in the tenant."));
            return;
        }
        "authorization_pending" => {
            out.push(Cand::new(Cause::Unknown, 0.7, "The device-code sign-in has not been completed yet (`authorization_pending`); this is expected while the code is valid.").fix(&["Open https://microsoft.com/devicelogin, enter the code `tenantscope login --device-code` printed and sign in with the partner account."]));
            return;
        }
        "expired_token" => {
            out.push(
                Cand::new(
                    Cause::Unknown,
                    0.7,
                    "The device code expired (`expired_token`) before the sign-in was completed.",
                )
                .fix(&["Run `tenantscope login --device-code` again and complete the sign-in within 15 minutes."]),
            );
            return;
        }
        "authorization_declined" => {
            out.push(
                Cand::new(
                    Cause::Unknown,
                    0.7,
                    "The device-code sign-in was declined by the user (`authorization_declined`).",
                )
                .fix(&[
                    "Run `tenantscope login --device-code` again and approve the sign-in with the partner account.",
                ]),
            );
            return;
        }
        "bad_verification_code" => {
            out.push(
                Cand::new(Cause::Unknown, 0.7, "The device code was not recognised (`bad_verification_code`).")
                    .fix(&["Run `tenantscope login --device-code` again and type the new code exactly."]),
            );
            return;
        }
        "slow_down" => {
            out.push(Cand::new(
                Cause::Throttled,
                0.6,
                "The device-code polling was too fast (`slow_down`); tenantscope backs off and retries.",
            ));
            return;
        }
        "access_denied" => {
            out.push(Cand::new(
                Cause::ConsentMissing,
                0.5,
                "The sign-in was denied (`access_denied`), usually a consent that was declined or is not allowed.",
            ));
            out.push(Cand::plain(Cause::ConditionalAccessBlocked, 0.35));
            return;
        }
        "unsupported_grant_type" | "invalid_request" if status < 500 && status != 429 && status != 401 => {
            out.push(Cand::new(Cause::Unknown, 0.5, format!("The token endpoint rejected the request's shape (`{error}`): {}", short(&t.description, 200))).fix(&["Run with `--debug` and report the redacted trace; this is a request tenantscope built, not a tenant condition."]));
            return;
        }
        _ => {}
    }
    match status {
        429 => out.push(Cand::new(Cause::Throttled, 0.9, "The token endpoint answered 429 Too Many Requests.")),
        500..=599 => out.push(Cand::new(
            Cause::ServiceUnavailable,
            0.85,
            format!("The token endpoint answered {status}: the sign-in service is unavailable."),
        )),
        _ => ambiguous_token_failure(status, app, facts, out),
    }
}

/// A token-endpoint failure that says nothing but its status (for example a bare 401 in a log).
fn ambiguous_token_failure(status: u16, app: bool, facts: &Facts, out: &mut Vec<Cand>) {
    let said = if status == 0 {
        "The token request failed without an error code".to_string()
    } else {
        format!("The token endpoint answered {status} without an error code")
    };
    if app {
        out.push(Cand::new(
            Cause::ClientCredentialInvalid,
            0.5,
            format!("{said}; for an app sign-in that is most often a wrong client secret or certificate."),
        ));
        out.push(Cand::plain(Cause::ClientCredentialExpired, 0.42));
        out.push(Cand::plain(Cause::AppNotFound, 0.35));
        out.push(Cand::plain(Cause::ConsentMissing, 0.3));
        return;
    }
    let mfa_conf = match facts.claims.as_ref() {
        Some(c) if c.has_mfa() => 0.15,
        Some(_) => 0.8,
        None => 0.45,
    };
    out.push(Cand::new(
        Cause::MfaClaimMissing,
        mfa_conf,
        format!(
            "{said}; for a partner sign-in that is most often a refresh token obtained without Microsoft Entra MFA."
        ),
    ));
    if let Ok(Some(c)) = gdap_access_problem(facts) {
        let mut c = c;
        c.confidence = 0.7;
        out.push(c);
    }
    out.push(Cand::plain(Cause::ClientCredentialInvalid, 0.38));
    out.push(Cand::plain(Cause::RefreshTokenRevoked, 0.34));
    out.push(Cand::plain(Cause::ConditionalAccessBlocked, 0.3));
    out.push(Cand::plain(Cause::ConsentMissing, 0.28));
    out.push(Cand::plain(Cause::RefreshTokenExpired, 0.26));
}

fn short(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}

// ----------------------------------------------------------------------------------------------
// Graph
// ----------------------------------------------------------------------------------------------

fn graph_rules(g: &GraphFailure, facts: &Facts, out: &mut Vec<Cand>) {
    let kind = graph::classify(
        &g.code,
        g.inner_code.as_deref(),
        &g.message,
        g.inner_message.as_deref(),
        g.www_authenticate.as_deref(),
        g.http_status,
    );
    let code = if g.code.is_empty() { format!("HTTP {}", g.http_status) } else { g.code.clone() };
    match kind {
        GraphKind::MfaClaim => {
            let mut c = Cand::new(
                Cause::MfaClaimMissing,
                0.95,
                "Microsoft Graph refused the call because the partner token has no MFA claim: the partner sign-in did not use Microsoft Entra MFA.",
            );
            if let Some(cl) = &facts.claims {
                c = c.ev("token amr", evidence::list_or_none(&cl.amr));
            }
            out.push(c);
        }
        GraphKind::IdentityNotFound => {
            out.push(Cand::new(Cause::ConsentMissing, 0.88, "Graph could not establish the identity of the calling app (`Authorization_IdentityNotFound`): the app has no service principal or admin consent in {tenant}."));
            out.push(Cand::plain(Cause::AppNotFound, 0.35));
        }
        GraphKind::IdentityDisabled => {
            out.push(Cand::new(Cause::AppNotFound, 0.8, "The calling app's service principal is disabled in {tenant} (`Authorization_IdentityDisabled`)."));
        }
        GraphKind::Licence => {
            let what = if g.message.is_empty() { code.clone() } else { short(&g.message, 160) };
            out.push(Cand::new(Cause::LicenseMissing, 0.92, format!("{{tenant}} lacks the licence this data needs (Graph: {what}).")));
        }
        GraphKind::NoScpOrRoles => {
            if is_app_only(facts) || auth(facts).is_none() {
                out.push(Cand::new(Cause::ConsentMissing, 0.78, "The token carries neither delegated scopes nor application roles: no permission of the app is consented in {tenant}."));
                out.push(Cand::plain(Cause::PermissionMissing, 0.5));
            } else {
                out.push(Cand::new(Cause::PermissionMissing, 0.7, "The token carries no delegated scopes at all: the app's permissions are not granted in {tenant}."));
                out.push(Cand::plain(Cause::ConsentMissing, 0.6));
            }
        }
        GraphKind::ClaimsChallenge => claims_challenge(g, out),
        GraphKind::InvalidToken => invalid_token(g, facts, out),
        GraphKind::MissingRolePermissions => {
            let needed = evidence::quoted_after(&g.message, "requires one of")
                .or_else(|| evidence::words_after(&g.message, "msgraph permissions"))
                .or_else(|| evidence::words_after(&g.message, "one of the following scopes:"));
            let mut c = Cand::new(
                Cause::PermissionMissing,
                0.9,
                format!(
                    "The token lacks the permission this API needs{}.",
                    needed.as_deref().map(|n| format!(" (one of {n})")).unwrap_or_default()
                ),
            );
            if let Some(n) = needed {
                c = c.ev("permissions the API requires", n);
            }
            out.push(c);
            out.push(Cand::plain(Cause::ConsentMissing, 0.4));
        }
        GraphKind::Denied => denied(g, facts, out),
        GraphKind::Throttled => out.push(Cand::new(Cause::Throttled, 0.9, format!("Microsoft Graph is throttling the requests ({code})."))),
        GraphKind::ServerError => out.push(Cand::new(Cause::ServiceUnavailable, 0.85, format!("Microsoft Graph answered {} ({code}): the service is unavailable or failed internally.", g.http_status))),
        GraphKind::Resync => out.push(
            Cand::new(
                Cause::ServiceUnavailable,
                0.75,
                format!("Graph kept refusing the delta round ({code}: {}) even after it was started again from a full read.", short(&g.message, 200)),
            )
            .fix(&[
                "Run the inspection again: Graph asks for a new delta round when its sync state was lost, and a fresh round normally succeeds.",
                "If it recurs, run `tenantscope inspect --tenant {tenant_id} --full` to read every collection in full without delta links.",
            ]),
        ),
        GraphKind::BadRequest => out.push(
            Cand::new(Cause::Unknown, 0.6, format!("Graph rejected the request itself ({code}: {}); this is not an access problem.", short(&g.message, 200)))
                .fix(&["Run with `--debug` and report the redacted trace: the query tenantscope sent is not one this tenant's Graph accepts (for example an advanced query without `ConsistencyLevel: eventual`)."]),
        ),
        GraphKind::NotFound => out.push(
            Cand::new(Cause::Unknown, 0.55, format!("Graph says the object or endpoint does not exist ({code}: {}); this is not an access problem.", short(&g.message, 200)))
                .fix(&["Check that the object still exists in the tenant; an endpoint missing from a national cloud is reported the same way."]),
        ),
        GraphKind::Unauthorized => bare_graph_401(g, facts, out),
        GraphKind::Other => out.push(
            Cand::new(Cause::Unknown, 0.4, format!("Graph answered {} ({code}: {}).", g.http_status, short(&g.message, 200)))
                .fix(&["Run with `--debug` to record a redacted trace of the request and response."]),
        ),
    }
}

fn claims_challenge(g: &GraphFailure, out: &mut Vec<Cand>) {
    let decoded = g.www_authenticate.as_deref().and_then(evidence::decode_claims_param).unwrap_or_default();
    if decoded.contains("acrs") {
        out.push(Cand::new(Cause::MfaRequired, 0.7, "Graph sent a claims challenge for a Conditional Access authentication context: the call needs a step-up sign-in (typically MFA).").ev("claims challenge", decoded));
        out.push(Cand::plain(Cause::ConditionalAccessBlocked, 0.45));
    } else {
        let challenge = if decoded.is_empty() { "insufficient_claims".to_string() } else { decoded };
        // Graph names the event in the message and in the challenge's `error_description`
        // ("Continuous access evaluation resulted in challenge with result: InteractionRequired and code:
        // TokenIssuedBeforeRevocationTimestamp"); the two events an MSP meets have causes of their own.
        let said = format!("{} {}", g.message, g.www_authenticate.as_deref().unwrap_or("")).to_ascii_lowercase();
        if said.contains("tokenissuedbeforerevocationtimestamp") {
            out.push(
                Cand::new(Cause::RefreshTokenRevoked, 0.85, "Continuous access evaluation refused the token: the user's sessions were revoked after it was issued (Revoke sessions, a password change or reset, or the account disabled). The refresh token is revoked too; the user must sign in again.")
                    .ev("claims challenge", challenge)
                    .ev("CAE event", "TokenIssuedBeforeRevocationTimestamp"),
            );
            out.push(Cand::plain(Cause::TokenInvalid, 0.45));
        } else if said.contains("locationconditionevaluationsatisfied") {
            out.push(
                Cand::new(Cause::ConditionalAccessBlocked, 0.85, "Continuous access evaluation refused the token: the request came from an IP address that the tenant's Conditional Access location policy no longer allows (the network changed, or the policy or its named locations did).")
                    .ev("claims challenge", challenge)
                    .ev("CAE event", "LocationConditionEvaluationSatisfied")
                    .fix(&["Run the inspection from an address inside the tenant's allowed named locations (an agent on that network), or ask the tenant's administrator to add the egress address to the named location."]),
            );
            out.push(Cand::plain(Cause::TokenInvalid, 0.45));
        } else {
            out.push(
                Cand::new(Cause::TokenInvalid, 0.75, "Continuous access evaluation revoked the token (sessions revoked, password changed, account disabled or a network location change); a new token is needed.")
                    .ev("claims challenge", challenge),
            );
            out.push(Cand::plain(Cause::RefreshTokenRevoked, 0.45));
            out.push(Cand::plain(Cause::ConditionalAccessBlocked, 0.35));
        }
    }
}

fn invalid_token(g: &GraphFailure, facts: &Facts, out: &mut Vec<Cand>) {
    let msg = g.message.to_lowercase();
    let cache = facts.cache.as_ref();
    if cache.is_some_and(|c| c.token_from_cache && c.fresh_token_succeeded == Some(true)) {
        out.push(Cand::new(
            Cause::TokenCacheStale,
            0.92,
            "Graph rejected the cached token, and a freshly acquired token worked: the cached token was stale.",
        ));
        out.push(Cand::plain(Cause::TokenInvalid, 0.5));
        return;
    }
    if let Some(c) = wrong_cloud_token(g, facts) {
        out.push(c);
        out.push(Cand::plain(Cause::TokenInvalid, 0.5));
        return;
    }
    let expired_by_claims = match (facts.claims.as_ref().and_then(|c| c.exp), facts.now) {
        (Some(exp), Some(now)) => exp <= now.timestamp(),
        _ => false,
    };
    if expired_by_claims || msg.contains("expired") || msg.contains("lifetime validation failed") {
        out.push(Cand::new(
            Cause::TokenInvalid,
            0.88,
            "Graph rejected the access token because it has expired (or is not yet valid; check the machine's clock).",
        ));
    } else if msg.contains("audience") {
        out.push(Cand::new(Cause::TokenInvalid, 0.85, "Graph rejected the access token because it was issued for another audience (a token for another API or cloud)."));
        out.push(Cand::plain(Cause::WrongCloud, 0.35));
        return;
    } else if msg.contains("empty")
        || msg.contains("missing")
        || msg.contains("malformed")
        || msg.contains("parsing failed")
    {
        out.push(Cand::new(Cause::TokenInvalid, 0.85, "Graph received no usable access token (empty or malformed)."));
    } else {
        out.push(Cand::new(
            Cause::TokenInvalid,
            0.8,
            format!("Graph rejected the access token ({}).", if g.code.is_empty() { "401" } else { g.code.as_str() }),
        ));
    }
    let cached = cache.is_none_or(|c| c.token_from_cache);
    if cached {
        out.push(Cand::plain(Cause::TokenCacheStale, 0.35));
    }
}

/// The token was issued for another cloud than the Graph host it was sent to.
fn wrong_cloud_token(g: &GraphFailure, facts: &Facts) -> Option<Cand> {
    let claims = facts.claims.as_ref()?;
    let token_cloud = claims
        .aud
        .as_deref()
        .and_then(hosts::host_of)
        .and_then(|h| hosts::cloud_of_host(&h))
        .or_else(|| claims.iss.as_deref().and_then(hosts::host_of).and_then(|h| hosts::cloud_of_host(&h)))?;
    let target_cloud = g
        .url
        .as_deref()
        .and_then(hosts::host_of)
        .and_then(|h| hosts::cloud_of_host(&h))
        .or_else(|| facts.context.as_ref().and_then(|c| c.cloud.as_deref()).and_then(cloud_id))?;
    if token_cloud == target_cloud || (token_cloud.starts_with("usgov") && target_cloud.starts_with("usgov")) {
        return None;
    }
    Some(
        Cand::new(
            Cause::WrongCloud,
            0.88,
            format!("The token was issued in the {token_cloud} cloud but sent to a {target_cloud} Graph host: tokens do not cross clouds."),
        )
        .ev("token cloud", token_cloud)
        .ev("target cloud", target_cloud),
    )
}

fn cloud_id(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().as_str() {
        "global" | "public" | "commercial" => Some("global"),
        "usgov" | "gcchigh" | "gcc-high" | "usgovernment" => Some("usgov"),
        "usgov-dod" | "dod" => Some("usgov-dod"),
        "china" | "21vianet" => Some("china"),
        _ => None,
    }
}

/// 403 `Authorization_RequestDenied` and its kin: scopes, then GDAP roles, then the cache.
fn denied(g: &GraphFailure, facts: &Facts, out: &mut Vec<Cand>) {
    let needed = facts.context.as_ref().map(|c| c.needed.clone()).unwrap_or_default();
    let app = is_app_only(facts);
    let cache = facts.cache.as_ref();
    let consent = facts.consent.as_ref();
    let issued = cache.and_then(|c| c.issued_at);
    let stale_by_time = match (issued, cache) {
        (Some(i), Some(c)) => {
            c.fresh_succeeded_at.is_some_and(|f| f > i) || c.consent_changed_at.is_some_and(|t| t > i)
        }
        _ => false,
    };
    let cache_stale =
        cache.is_some_and(|c| c.token_from_cache && (c.fresh_token_succeeded == Some(true) || stale_by_time));

    if consent.and_then(|c| c.service_principal_present) == Some(false) {
        out.push(
            Cand::new(
                Cause::ConsentMissing,
                0.9,
                "tenantscope's app has no service principal in {tenant}: it was never consented there.",
            )
            .ev("service principal present", "false"),
        );
    }

    // 1. The permission (scope or app role) in the token.
    let (wanted, have, granted, what) = if app {
        (
            &needed.app_roles,
            facts.claims.as_ref().map(|c| &c.roles),
            consent.map(|c| &c.granted_app_roles),
            "application roles (roles)",
        )
    } else {
        (
            &needed.delegated_scopes,
            facts.claims.as_ref().map(|c| &c.scp),
            consent.map(|c| &c.granted_scopes),
            "delegated scopes (scp)",
        )
    };
    let mut permission_verified = false;
    if !wanted.is_empty() {
        match have {
            Some(have) if !contains_any(have, wanted) => {
                let granted_now = granted.is_some_and(|g| contains_any(g, wanted));
                if granted_now || (cache_stale && cache.is_some_and(|c| c.token_from_cache)) {
                    out.push(
                        Cand::new(Cause::TokenCacheStale, 0.88, format!("The token's {what} lack {}, which the consent in {{tenant}} now grants: the token was issued before the consent changed.", wanted.join(" or ")))
                            .ev("token permissions", evidence::list_or_none(have))
                            .ev("needed (any one)", wanted.join(", ")),
                    );
                } else {
                    out.push(
                        Cand::new(
                            Cause::PermissionMissing,
                            0.9,
                            format!(
                                "The token's {what} do not include any of {}, which this call needs.",
                                wanted.join(", ")
                            ),
                        )
                        .ev("token permissions", evidence::list_or_none(have))
                        .ev("needed (any one)", wanted.join(", ")),
                    );
                }
                return;
            }
            Some(_) => permission_verified = true,
            None => {
                if let Some(granted) = granted
                    && !contains_any(granted, wanted)
                {
                    out.push(
                            Cand::new(Cause::PermissionMissing, 0.78, format!("The consent of tenantscope's app in {{tenant}} does not include any of {}, which this call needs.", wanted.join(", ")))
                                .ev("granted permissions", evidence::list_or_none(granted))
                                .ev("needed (any one)", wanted.join(", ")),
                        );
                    return;
                }
            }
        }
    }

    // 2. The GDAP roles the user reaches.
    let mut roles_verified = false;
    if !app && matches!(auth(facts), Some(Auth::Gdap) | None) && !needed.admin_roles.is_empty() {
        let reach = facts
            .gdap
            .as_ref()
            .and_then(|g| reachable_roles(g, facts.now))
            .map(|r| (r, "GDAP roles reachable by the user"))
            .or_else(|| facts.claims.as_ref().filter(|c| !c.wids.is_empty()).map(|c| (c.wids.clone(), "token wids")));
        if let Some((roles, source)) = reach {
            let has_ga = roles.iter().any(|r| r.eq_ignore_ascii_case(GLOBAL_ADMIN));
            if !has_ga && !contains_any(&roles, &needed.admin_roles) {
                let conf = if source == "token wids" { 0.78 } else { 0.86 };
                out.push(
                    Cand::new(
                        Cause::GdapRoleMissing,
                        conf,
                        format!(
                            "None of the Entra roles this call needs ({}) is among the {source}.",
                            evidence::role_names(&needed.admin_roles)
                        ),
                    )
                    .ev(source, evidence::role_list(&roles))
                    .ev("needed roles (any one)", evidence::role_names(&needed.admin_roles)),
                );
                return;
            }
            roles_verified = true;
        }
    }

    // 3. A token that predates a change.
    if cache_stale {
        out.push(Cand::new(
            Cause::TokenCacheStale,
            0.86,
            "The call was made with a cached token issued before a later change; a freshly acquired token succeeded.",
        ));
        return;
    }

    if licence_lacking(facts) == Some(true) {
        let lic = facts.context.as_ref().and_then(|c| c.needed.licence.clone()).unwrap_or_default();
        out.push(
            Cand::new(Cause::LicenseMissing, 0.75, format!("{{tenant}} lacks {lic}, which this data needs."))
                .ev("needed licence", lic),
        );
    }

    // A bare 403 (no Graph code) on an endpoint that only licensed tenants serve.
    if g.code.is_empty() && licence_gated(g.url.as_deref()) && licence_lacking(facts) != Some(false) {
        out.push(Cand::new(Cause::LicenseMissing, 0.5, "Graph answered 403 without a code on an endpoint that needs Microsoft Entra ID P1 or P2 (sign-in logs, sign-in activity, risk data); a tenant without that licence is refused this way."));
    }

    // 4. Nothing decides: the brief's order, demoting what the facts ruled out.
    let said = format!(
        "Graph denied the call ({}: {}); the facts at hand do not tell which permission layer refused it.",
        if g.code.is_empty() { "403" } else { g.code.as_str() },
        short(&g.message, 120)
    );
    let p = if permission_verified { 0.2 } else { 0.45 };
    let r = if roles_verified || app { 0.15 } else { 0.42 };
    out.push(Cand::new(Cause::PermissionMissing, p, said.clone()));
    out.push(Cand::new(Cause::GdapRoleMissing, r, said.clone()));
    out.push(Cand::new(Cause::ConsentMissing, 0.35, said.clone()));
    out.push(Cand::new(Cause::TokenCacheStale, 0.3, said));
}

/// Endpoints Graph serves only to tenants with Microsoft Entra ID P1 or P2.
fn licence_gated(url: Option<&str>) -> bool {
    let Some(u) = url.map(str::to_ascii_lowercase) else {
        return false;
    };
    [
        "auditlogs/signins",
        "signinactivity",
        "identityprotection/",
        "riskyusers",
        "riskdetections",
        "riskyserviceprincipals",
        "reports/authenticationmethods",
    ]
    .iter()
    .any(|p| u.contains(p))
}

/// A Graph 401 that says nothing more than its status.
fn bare_graph_401(g: &GraphFailure, facts: &Facts, out: &mut Vec<Cand>) {
    let partner_endpoint = g.url.as_deref().is_some_and(|u| u.to_ascii_lowercase().contains("tenantrelationships"));
    if token_lacks_mfa(facts) && partner_path(facts) {
        out.push(Cand::new(Cause::MfaClaimMissing, 0.82, "Graph answered 401 and the partner token has no `mfa` in its `amr` claim: the partner sign-in did not use Microsoft Entra MFA."));
    }
    if facts.consent.as_ref().and_then(|c| c.service_principal_present) == Some(false) {
        out.push(Cand::new(
            Cause::ConsentMissing,
            0.85,
            "Graph answered 401 and tenantscope's app has no service principal in {tenant}: it is not consented there.",
        ));
    }
    if let Ok(Some(mut c)) = gdap_access_problem(facts) {
        c.confidence = 0.75;
        out.push(c);
    }
    if facts.cache.as_ref().is_some_and(|c| c.token_from_cache && c.fresh_token_succeeded == Some(true)) {
        out.push(Cand::new(
            Cause::TokenCacheStale,
            0.85,
            "Graph answered 401 to the cached token, and a fresh token worked.",
        ));
    }
    let said = format!(
        "Graph answered 401 without saying why{}.",
        g.url.as_deref().map(|u| format!(" at {}", short(u, 120))).unwrap_or_default()
    );
    if partner_endpoint {
        out.push(Cand::new(
            Cause::MfaClaimMissing,
            0.6,
            format!(
                "{said} Partner endpoints (tenantRelationships) answer 401 when the partner token has no MFA claim."
            ),
        ));
    }
    out.push(Cand::new(Cause::TokenInvalid, 0.42, said.clone()));
    out.push(Cand::new(Cause::ConsentMissing, 0.4, said.clone()));
    if partner_path(facts) {
        out.push(Cand::new(Cause::MfaClaimMissing, 0.38, said.clone()));
        out.push(Cand::new(Cause::GdapMissing, 0.3, said.clone()));
    }
    out.push(Cand::new(Cause::TokenCacheStale, 0.25, said));
}

// ----------------------------------------------------------------------------------------------
// Transport
// ----------------------------------------------------------------------------------------------

fn transport_rules(t: &TransportFailure, facts: &Facts, out: &mut Vec<Cand>) {
    let net = facts.network.as_ref();
    if net.and_then(|n| n.agent_alive) == Some(false) {
        let agent = net.and_then(|n| n.agent.clone()).unwrap_or_else(|| "the agent".into());
        out.push(Cand::new(
            Cause::AgentUnhealthy,
            0.93,
            format!("The request never reached Microsoft and {agent} is not alive."),
        ));
    }
    let host = t.url.as_deref().and_then(hosts::host_of);
    let where_ = host.clone().unwrap_or_else(|| "Microsoft".into());
    match t.kind {
        TransportKind::HostNotAllowed => {
            let cloud = host.as_deref().and_then(hosts::cloud_of_host);
            match cloud {
                Some(c) => out.push(Cand::new(Cause::WrongCloud, 0.8, format!("A response pointed tenantscope to {where_}, a host of the {c} cloud, outside the configured cloud; the token was not sent there."))),
                // Not a Microsoft host at all: either the cloud file names a Graph URL other than
                // the one that answers (a proxy or gateway in front of Graph), or something on the
                // path rewrites responses. Both are fixed in the configuration of the path to Graph.
                None => out.push(
                    Cand::new(Cause::WrongCloud, 0.6, format!("A response pointed tenantscope to {where_}, which is not a host of the configured Microsoft cloud; tenantscope refused to send the token there."))
                        .fix(&[
                            "Compare the cloud file's `graph_url` with the host the response pointed to: if Graph is reached through a gateway, the cloud file must name the host that answers.",
                            "Otherwise treat this as suspicious: a nextLink or redirect to a foreign host can be an attempt to capture the token. Check for a proxy rewriting responses, run with `--debug`, and report the redacted trace.",
                        ]),
                ),
            }
        }
        TransportKind::Tls => {
            out.push(
                Cand::new(Cause::NetworkUnreachable, 0.85, format!("The TLS handshake with {where_} failed: a TLS-inspecting proxy or a missing CA certificate on this machine."))
                    .fix(&["If a proxy inspects TLS, pass its CA certificate with `--ca-file`; otherwise check the machine's clock and CA store."]),
            );
        }
        kind => {
            let (conf, what) = match kind {
                TransportKind::Dns => (0.88, format!("The name {where_} could not be resolved (DNS).")),
                TransportKind::Connect => {
                    (0.85, format!("No connection could be made to {where_} (refused or unreachable)."))
                }
                TransportKind::Timeout => (0.75, format!("The request to {where_} timed out.")),
                TransportKind::Reset => (0.72, format!("The connection to {where_} was reset.")),
                TransportKind::Body => (0.55, format!("The response from {where_} was cut off.")),
                _ => (0.5, format!("The request to {where_} failed below HTTP: {}", short(&t.message, 160))),
            };
            out.push(Cand::new(Cause::NetworkUnreachable, conf, what));
            if kind == TransportKind::Timeout || kind == TransportKind::Reset {
                out.push(Cand::plain(Cause::ServiceUnavailable, 0.3));
            }
        }
    }
    if let Some(n) = net
        && n.agent.is_some()
        && n.agent_alive.is_none()
    {
        out.push(Cand::plain(Cause::AgentUnhealthy, 0.4));
    }
}

// ----------------------------------------------------------------------------------------------
// Facts alone (doctor without a failure)
// ----------------------------------------------------------------------------------------------

fn fact_rules(facts: &Facts, out: &mut Vec<Cand>) {
    if let Some(n) = &facts.network {
        if n.agent_alive == Some(false) {
            out.push(Cand::new(
                Cause::AgentUnhealthy,
                0.9,
                format!("{} is not alive.", n.agent.clone().unwrap_or_else(|| "The agent".into())),
            ));
        }
        if n.login_reachable == Some(false) || n.graph_reachable == Some(false) {
            out.push(Cand::new(
                Cause::NetworkUnreachable,
                0.85,
                "The login or Graph host is not reachable from the machine that runs the inspection.",
            ));
        }
    }
    if token_lacks_mfa(facts) && partner_path(facts) {
        out.push(Cand::new(
            Cause::MfaClaimMissing,
            0.8,
            "The partner token has no `mfa` in its `amr` claim: Microsoft will refuse delegated access to customers.",
        ));
    }
    if let Ok(Some(mut c)) = gdap_access_problem(facts) {
        c.confidence = c.confidence.min(0.8);
        out.push(c);
    }
    if facts.consent.as_ref().and_then(|c| c.service_principal_present) == Some(false) {
        out.push(Cand::new(
            Cause::ConsentMissing,
            0.75,
            "tenantscope's app has no service principal in {tenant}: it is not consented there.",
        ));
    }
    if let Some(ctx) = &facts.context {
        if let Some(c) = &facts.claims {
            let (wanted, have) = if c.is_app_only() {
                (&ctx.needed.app_roles, &c.roles)
            } else {
                (&ctx.needed.delegated_scopes, &c.scp)
            };
            if !wanted.is_empty() && !contains_any(have, wanted) {
                out.push(Cand::new(
                    Cause::PermissionMissing,
                    0.7,
                    format!("The token does not carry any of {}, which the operation needs.", wanted.join(", ")),
                ));
            }
        }
        if !ctx.needed.admin_roles.is_empty()
            && let Some(roles) = facts.gdap.as_ref().and_then(|g| reachable_roles(g, facts.now))
            && !roles.iter().any(|r| r.eq_ignore_ascii_case(GLOBAL_ADMIN))
            && !contains_any(&roles, &ctx.needed.admin_roles)
        {
            out.push(Cand::new(
                Cause::GdapRoleMissing,
                0.7,
                format!(
                    "None of the needed roles ({}) is reachable through GDAP.",
                    evidence::role_names(&ctx.needed.admin_roles)
                ),
            ));
        }
    }
    if licence_lacking(facts) == Some(true) {
        out.push(Cand::plain(Cause::LicenseMissing, 0.7));
    }
    if facts.cache.as_ref().is_some_and(|c| c.token_from_cache && c.fresh_token_succeeded == Some(true)) {
        out.push(Cand::plain(Cause::TokenCacheStale, 0.6));
    }
    if let (Some(exp), Some(now)) = (facts.claims.as_ref().and_then(|c| c.exp), facts.now)
        && exp <= now.timestamp()
    {
        out.push(Cand::new(Cause::TokenInvalid, 0.6, "The token used has expired."));
    }
}

// ----------------------------------------------------------------------------------------------
// Cross-cutting rules
// ----------------------------------------------------------------------------------------------

/// A request sent to a host of another cloud than the configured one.
fn cloud_rules(failure: &Failure, facts: &Facts, out: &mut Vec<Cand>) {
    let Some(configured) = facts.context.as_ref().and_then(|c| c.cloud.as_deref()).and_then(cloud_id) else {
        return;
    };
    let Some(host_cloud) = failure.url().and_then(hosts::host_of).and_then(|h| hosts::cloud_of_host(&h)) else {
        return;
    };
    if host_cloud != configured && !(host_cloud.starts_with("usgov") && configured.starts_with("usgov")) {
        out.push(
            Cand::new(
                Cause::WrongCloud,
                0.7,
                format!("The request went to a {host_cloud} host while tenantscope is configured for {configured}."),
            )
            .ev("configured cloud", configured)
            .ev("host cloud", host_cloud),
        );
    }
}

/// When a fresh token was tried and failed too, its failure is the real cause.
fn fresh_failure_rules(facts: &Facts, out: &mut Vec<Cand>) {
    let Some(fresh) = facts.cache.as_ref().and_then(|c| c.fresh_failure.as_deref()) else {
        return;
    };
    let mut sub = facts.clone();
    sub.cache = None;
    let fresh = normalize(fresh);
    let mut fresh_cands = raw_candidates(&sub, Some(&fresh), 1);
    for c in out.iter_mut() {
        if c.cause == Cause::TokenCacheStale {
            c.confidence *= 0.3;
        }
    }
    for c in fresh_cands.iter_mut() {
        c.confidence = (c.confidence + 0.05).min(0.99);
        c.evidence
            .push(Evidence::new("fresh token attempt", format!("failed too: {}", evidence::failure_line(&fresh))));
    }
    out.extend(fresh_cands);
}

// ----------------------------------------------------------------------------------------------
// Ranking and final shape
// ----------------------------------------------------------------------------------------------

fn tenant_labels(facts: &Facts, failure: Option<&Failure>) -> (String, String) {
    let ctx = facts.context.as_ref();
    let from_failure = match failure {
        Some(Failure::TokenEndpoint(t)) => t.tenant.clone(),
        _ => None,
    };
    let id = ctx.and_then(|c| c.tenant_id.clone()).or(from_failure).or_else(|| ctx.and_then(|c| c.tenant_name.clone()));
    let name = ctx.and_then(|c| c.tenant_name.clone());
    let prose = match (&name, &id) {
        (Some(n), Some(i)) if n != i => format!("{n} ({i})"),
        (Some(n), _) => n.clone(),
        (None, Some(i)) => format!("tenant {i}"),
        (None, None) => "the customer tenant".to_string(),
    };
    (prose, id.unwrap_or_else(|| "<tenant>".to_string()))
}

fn fill(s: &str, prose: &str, id: &str) -> String {
    let s = s.replace("{tenant_id}", id).replace("{tenant}", prose);
    // A sentence that starts with the placeholder reads better capitalised.
    let mut chars = s.chars();
    match chars.next() {
        Some(first) if first.is_lowercase() && s.starts_with(prose) => {
            first.to_uppercase().collect::<String>() + chars.as_str()
        }
        _ => s,
    }
}

fn check_for_unknown(failure: Option<&Failure>) -> Check {
    match failure {
        Some(Failure::Graph(_)) => Check::Permissions,
        Some(Failure::Transport(_)) => Check::Agent,
        _ => Check::TokenRetrieval,
    }
}

/// The check a diagnosis belongs to. Throttling, an unavailable service and an unknown failure
/// happen at whichever layer answered: a Graph 503 after its retries is a failure of the Graph
/// reads (check 5), not of token retrieval, and a dropped connection is the agent's network.
fn check_of(cause: Cause, failure: Option<&Failure>) -> Check {
    match (cause, failure) {
        (Cause::Unknown, _) => check_for_unknown(failure),
        (Cause::Throttled | Cause::ServiceUnavailable, Some(Failure::Graph(_))) => Check::Permissions,
        (Cause::Throttled | Cause::ServiceUnavailable, Some(Failure::Transport(_))) => Check::Agent,
        _ => cause.check(),
    }
}

pub(crate) fn finalize(cands: Vec<Cand>, facts: &Facts, failure: Option<&Failure>) -> Vec<Diagnosis> {
    let mut cands = cands;
    if cands.is_empty() {
        let summary = match failure {
            None => "No failure was given and the facts show no problem.".to_string(),
            Some(f) => format!("Nothing recognisable in the failure: {}", evidence::failure_line(f)),
        };
        cands.push(Cand::new(Cause::Unknown, 0.1, summary));
    }
    // Stable sort: among equal confidences the rule's own order stands.
    cands.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let common = evidence::common(facts, failure);
    let (prose, id) = tenant_labels(facts, failure);
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for c in cands {
        if seen.contains(&c.cause) {
            continue;
        }
        seen.push(c.cause);
        let mut evidence_list = c.evidence;
        for e in &common {
            if !evidence_list.iter().any(|x| x.name == e.name) {
                evidence_list.push(e.clone());
            }
        }
        let mut fix: Vec<String> = Vec::new();
        let app_only = auth(facts) == Some(Auth::App);
        for step in c.fix.iter().cloned().chain(advice::default_fix_for(c.cause, auth(facts))) {
            // A tenant read with its own app is fixed in that tenant, never through Partner Center.
            if app_only && step.contains("Partner Center") {
                continue;
            }
            let step = fill(&step, &prose, &id);
            if !fix.iter().any(|earlier| advice::same_step(earlier, &step)) {
                fix.push(step);
            }
        }
        let check = c.check.unwrap_or_else(|| check_of(c.cause, failure));
        out.push(Diagnosis {
            cause: c.cause,
            summary: fill(&c.summary, &prose, &id),
            evidence: evidence_list,
            fix,
            confidence: c.confidence.clamp(0.0, 1.0),
            check,
            docs: c.cause.docs(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Context, GdapAssignment, LicenceFacts, Need, TokenClaims};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).single().unwrap_or_default()
    }

    fn rel(status: &str, end_days: i64) -> GdapRelationship {
        GdapRelationship {
            id: "r".into(),
            display_name: "rel".into(),
            status: status.into(),
            end: Some(now() + chrono::Duration::days(end_days)),
            ..Default::default()
        }
    }

    #[test]
    fn relationship_states() {
        assert_eq!(rel_state(&rel("active", 10), Some(now())), RelState::Active);
        assert_eq!(rel_state(&rel("active", -1), Some(now())), RelState::Ended);
        assert_eq!(rel_state(&rel("Expired", 10), Some(now())), RelState::Ended);
        assert_eq!(rel_state(&rel("approvalPending", 10), Some(now())), RelState::Pending);
        assert_eq!(rel_state(&rel("active", -1), None), RelState::Active);
    }

    #[test]
    fn reachable_roles_follow_membership_and_relationship_roles() {
        let mut r = rel("active", 30);
        r.roles = vec!["a".into(), "b".into()];
        r.assignments = vec![
            GdapAssignment {
                group_id: "g1".into(),
                roles: vec!["a".into(), "c".into()],
                user_is_member: Some(true),
                ..Default::default()
            },
            GdapAssignment {
                group_id: "g2".into(),
                roles: vec!["b".into()],
                user_is_member: Some(false),
                ..Default::default()
            },
        ];
        let g = GdapFacts { relationships: vec![r], user_groups: None };
        // Role c is not in the relationship, so the assignment cannot grant it.
        assert_eq!(reachable_roles(&g, Some(now())), Some(vec!["a".to_string()]));
    }

    #[test]
    fn unknown_membership_cannot_decide() {
        let mut r = rel("active", 30);
        r.assignments = vec![GdapAssignment { group_id: "g1".into(), user_is_member: None, ..Default::default() }];
        let facts = Facts {
            gdap: Some(GdapFacts { relationships: vec![r], user_groups: None }),
            now: Some(now()),
            ..Default::default()
        };
        assert!(gdap_access_problem(&facts).is_err());
    }

    #[test]
    fn licence_gaps_are_read_from_flags_and_plans() {
        let facts = |lic: LicenceFacts, need: &str| Facts {
            licence: Some(lic),
            context: Some(Context {
                needed: Need { licence: Some(need.into()), ..Default::default() },
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            licence_lacking(&facts(LicenceFacts { has_p1: Some(false), ..Default::default() }, "AAD_PREMIUM")),
            Some(true)
        );
        assert_eq!(
            licence_lacking(&facts(LicenceFacts { has_p2: Some(true), ..Default::default() }, "AAD_PREMIUM")),
            Some(false)
        );
        assert_eq!(
            licence_lacking(&facts(
                LicenceFacts { service_plans: vec!["INTUNE_A".into()], ..Default::default() },
                "INTUNE_A"
            )),
            Some(false)
        );
        assert_eq!(licence_lacking(&facts(LicenceFacts::default(), "AAD_PREMIUM")), None);
    }

    #[test]
    fn placeholders_are_filled_and_capitalised() {
        assert_eq!(
            fill("{tenant} lacks P1; run --tenant {tenant_id}", "the customer tenant", "<tenant>"),
            "The customer tenant lacks P1; run --tenant <tenant>"
        );
        assert_eq!(fill("Ask {tenant}.", "Contoso (x)", "x"), "Ask Contoso (x).");
    }

    #[test]
    fn the_generic_70002_defers_to_the_wrapped_code() {
        let t = TokenEndpointFailure {
            error_codes: vec![70002, 50126],
            description: "AADSTS70002: Error validating credentials. AADSTS50126: Invalid username or password".into(),
            ..Default::default()
        };
        let facts = Facts { failure: Some(Failure::TokenEndpoint(t)), ..Default::default() };
        assert_eq!(diagnose(&facts).cause, Cause::InvalidCredentials);
    }

    #[test]
    fn text_is_not_truncated_before_the_phrase_rules() {
        let text = format!("{} and then the client secret has expired", "log line ".repeat(600));
        let facts = Facts { failure: Some(Failure::Text(text)), ..Default::default() };
        assert_eq!(diagnose(&facts).cause, Cause::ClientCredentialExpired);
    }

    #[test]
    fn app_only_tokens_do_not_blame_gdap_roles() {
        let g = GraphFailure { http_status: 403, code: "Authorization_RequestDenied".into(), ..Default::default() };
        let facts = Facts {
            failure: Some(Failure::Graph(g)),
            claims: Some(TokenClaims {
                roles: vec!["User.Read.All".into()],
                idtyp: Some("app".into()),
                ..Default::default()
            }),
            context: Some(Context { auth: Auth::App, ..Default::default() }),
            ..Default::default()
        };
        let ranked = candidates(&facts);
        let role = ranked.iter().find(|d| d.cause == Cause::GdapRoleMissing).map(|d| d.confidence).unwrap_or(0.0);
        assert!(role < 0.2, "gdap_role_missing ranked {role} for an app-only token");
    }
}
