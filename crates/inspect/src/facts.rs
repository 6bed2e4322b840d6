//! Turning what the Microsoft client saw into the facts the diagnosis engine reasons about.

use diagnose::{
    Auth, CacheFacts, ConsentFacts, Context, Facts, Failure, GdapAssignment, GdapFacts, GdapRelationship, GraphFailure,
    LicenceFacts, Need, TokenClaims, TokenEndpointFailure, TransportFailure, TransportKind,
};
use microsoft::{AccessToken, Claims, Error};
use serde::{Deserialize, Serialize};

use crate::catalog::Collector;

/// The failure of a Microsoft call, as plain data for diagnosis.
pub fn failure(e: &Error) -> Failure {
    match e.root() {
        Error::Token(t) => Failure::TokenEndpoint(TokenEndpointFailure {
            http_status: t.status,
            error: t.error.clone(),
            error_codes: t.error_codes.clone(),
            description: t.description.clone(),
            suberror: t.suberror.clone(),
            claims: t.claims.clone(),
            trace_id: t.trace_id.clone(),
            correlation_id: t.correlation_id.clone(),
            timestamp: t.timestamp.clone(),
            url: Some(t.url.clone()),
            tenant: t.tenant.clone(),
        }),
        Error::Graph(g) => Failure::Graph(GraphFailure {
            http_status: g.status,
            code: g.code.clone(),
            inner_code: g.inner_code.clone(),
            message: g.message.clone(),
            inner_message: None,
            request_id: g.request_id.clone(),
            client_request_id: g.client_request_id.clone(),
            date: g.date.clone(),
            www_authenticate: g.www_authenticate.clone(),
            method: Some(g.method.clone()),
            url: Some(g.url.clone()),
        }),
        Error::Transport(t) => Failure::Transport(TransportFailure {
            kind: match t.kind {
                microsoft::TransportKind::Dns => TransportKind::Dns,
                microsoft::TransportKind::Connect => TransportKind::Connect,
                microsoft::TransportKind::Tls => TransportKind::Tls,
                microsoft::TransportKind::Timeout => TransportKind::Timeout,
                microsoft::TransportKind::Reset => TransportKind::Reset,
                microsoft::TransportKind::Body | microsoft::TransportKind::TooLarge => TransportKind::Body,
                microsoft::TransportKind::Other => TransportKind::Other,
            },
            url: Some(t.url.clone()),
            message: t.message.clone(),
        }),
        Error::HostNotAllowed { url, reason } => Failure::Transport(TransportFailure {
            kind: TransportKind::HostNotAllowed,
            url: Some(url.clone()),
            message: reason.clone(),
        }),
        other => Failure::Text(other.to_string()),
    }
}

pub fn claims(c: &Claims) -> TokenClaims {
    TokenClaims {
        amr: c.amr.clone(),
        scp: c.scp.clone(),
        roles: c.roles.clone(),
        wids: c.wids.clone(),
        tid: c.tid.clone(),
        oid: c.oid.clone(),
        upn: c.upn.clone(),
        appid: c.appid.clone(),
        idtyp: c.idtyp.clone(),
        ipaddr: c.ipaddr.clone(),
        aud: c.aud.clone(),
        iss: c.iss.clone(),
        iat: c.iat,
        exp: c.exp,
    }
}

/// The partner's view of one customer: its GDAP relationships and whether the signed-in user is in
/// the groups they assign. Kept on the tenant record and given to diagnosis.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GdapView {
    pub relationships: Vec<RelationshipView>,
    /// The groups of the partner user (ids), when known.
    pub user_groups: Option<Vec<String>>,
    /// The customer appears in the partner's contracts (legacy DAP or reseller).
    pub contract: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RelationshipView {
    pub id: String,
    pub display_name: String,
    pub status: String,
    pub roles: Vec<String>,
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    pub auto_extend: Option<String>,
    pub assignments: Vec<AssignmentView>,
    /// A Microsoft-led transition relationship (`MLT_*`): read-only, meant to be replaced.
    pub mlt: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AssignmentView {
    pub group_id: String,
    pub group_name: Option<String>,
    pub roles: Vec<String>,
    pub status: String,
    pub user_is_member: Option<bool>,
}

impl GdapView {
    pub fn facts(&self) -> GdapFacts {
        GdapFacts {
            relationships: self
                .relationships
                .iter()
                .map(|r| GdapRelationship {
                    id: r.id.clone(),
                    display_name: r.display_name.clone(),
                    status: r.status.clone(),
                    roles: r.roles.clone(),
                    end: r.end,
                    auto_extend: r.auto_extend.clone(),
                    assignments: r
                        .assignments
                        .iter()
                        .map(|a| GdapAssignment {
                            group_id: a.group_id.clone(),
                            group_name: a.group_name.clone(),
                            roles: a.roles.clone(),
                            status: a.status.clone(),
                            user_is_member: a.user_is_member,
                        })
                        .collect(),
                })
                .collect(),
            user_groups: self.user_groups.clone(),
        }
    }

    /// The roles the signed-in user holds through active relationships.
    pub fn effective_roles(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.relationships.iter().filter(|r| r.status == "active") {
            for a in r.assignments.iter().filter(|a| a.user_is_member == Some(true)) {
                for role in a.roles.iter().filter(|x| r.roles.contains(x)) {
                    if !out.contains(role) {
                        out.push(role.clone());
                    }
                }
            }
        }
        out
    }
}

/// What was being done when something failed.
pub struct Situation<'a> {
    pub tenant_id: &'a str,
    pub tenant_name: Option<&'a str>,
    pub partner_tenant_id: Option<&'a str>,
    pub auth: Auth,
    pub collector: Option<&'a Collector>,
    pub token: Option<&'a AccessToken>,
    /// The claims of the sign-in behind the request when no access token was obtained (the partner's
    /// or a direct account's), so that a refused refresh can be explained by them.
    pub sign_in: Option<&'a Claims>,
    pub gdap: Option<&'a GdapView>,
    pub service_plans: Option<&'a [String]>,
    pub cloud: Option<&'a str>,
    /// When the failure happened, as the inspection's clock tells it.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// Builds the facts for one failure and asks the engine for the diagnosis.
pub fn diagnose(error: &Error, s: &Situation<'_>) -> diagnose::Diagnosis {
    diagnose::diagnose(&facts(Some(error), s))
}

pub fn facts(error: Option<&Error>, s: &Situation<'_>) -> Facts {
    let needed = s
        .collector
        .map(|c| Need {
            delegated_scopes: c.delegated.iter().map(|x| x.to_string()).collect(),
            app_roles: c.application.iter().map(|x| x.to_string()).collect(),
            admin_roles: c.roles.iter().map(|x| x.to_string()).collect(),
            licence: c.licence.map(|l| l.service_plan().to_string()),
        })
        .unwrap_or_default();
    let token_claims = s.token.and_then(|t| t.claims.as_ref()).or(s.sign_in);
    Facts {
        failure: error.map(failure),
        claims: token_claims.map(claims),
        context: Some(Context {
            tenant_id: Some(s.tenant_id.to_string()),
            tenant_name: s.tenant_name.map(str::to_string),
            partner_tenant_id: s.partner_tenant_id.map(str::to_string),
            auth: s.auth,
            operation: Some(s.collector.map_or_else(|| "token".to_string(), |c| c.name.to_string())),
            needed,
            cloud: s.cloud.map(str::to_string),
        }),
        gdap: s.gdap.map(GdapView::facts),
        consent: token_claims.map(|c| ConsentFacts {
            service_principal_present: Some(true),
            granted_scopes: c.scp.clone(),
            granted_app_roles: c.roles.clone(),
        }),
        licence: s.service_plans.map(|plans| LicenceFacts {
            skus: Vec::new(),
            service_plans: plans.to_vec(),
            has_p1: Some(plans.iter().any(|p| p == "AAD_PREMIUM")),
            has_p2: Some(plans.iter().any(|p| p == "AAD_PREMIUM_P2")),
            has_intune: Some(plans.iter().any(|p| p == "INTUNE_A")),
        }),
        cache: s.token.map(|t| CacheFacts {
            token_from_cache: t.from_cache,
            issued_at: t.issued_at,
            ..CacheFacts::default()
        }),
        network: None,
        now: Some(s.now),
    }
}
