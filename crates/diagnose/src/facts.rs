//! The input of a diagnosis: the failure as plain data and everything else that is known.
//!
//! Every struct accepts partial JSON (`#[serde(default)]`) because callers, test cases and
//! `--json` round trips rarely know every fact; a missing fact means "not known", never "false".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What Microsoft (or the network) said no with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// An error from the identity platform's token endpoint.
    TokenEndpoint(TokenEndpointFailure),
    /// An error response from Microsoft Graph.
    Graph(GraphFailure),
    /// The request never got an HTTP answer.
    Transport(TransportFailure),
    /// Free text, typically pasted by a user; the rules parse it first.
    Text(String),
}

impl Default for Failure {
    fn default() -> Self {
        Failure::Text(String::new())
    }
}

/// An OAuth error response of `POST /{tenant}/oauth2/v2.0/token`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenEndpointFailure {
    /// The HTTP status, 0 when not known.
    pub http_status: u16,
    /// The OAuth `error` value (`invalid_grant`, `interaction_required`, ...).
    pub error: String,
    /// The `error_codes` array: AADSTS numbers without the prefix.
    pub error_codes: Vec<u32>,
    /// The `error_description`, which starts with `AADSTSnnnn:`.
    pub description: String,
    pub suberror: Option<String>,
    /// The `claims` challenge, a JSON string (for example with `capolids`).
    pub claims: Option<String>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub timestamp: Option<String>,
    pub url: Option<String>,
    /// The tenant the token was requested for (the path segment of the token URL).
    pub tenant: Option<String>,
}

/// A Microsoft Graph error response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GraphFailure {
    /// The HTTP status, 0 when not known.
    pub http_status: u16,
    /// `error.code`.
    pub code: String,
    /// `error.innerError.code`, when Graph sends one.
    pub inner_code: Option<String>,
    /// `error.message`.
    pub message: String,
    /// `error.innerError.message`, when Graph sends one.
    pub inner_message: Option<String>,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub date: Option<String>,
    /// The `WWW-Authenticate` response header (claims challenges live there).
    pub www_authenticate: Option<String>,
    pub method: Option<String>,
    pub url: Option<String>,
}

/// How a request failed below HTTP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Dns,
    Connect,
    Tls,
    Timeout,
    Reset,
    Body,
    /// tenantscope refused to send a token to a host outside the configured cloud.
    HostNotAllowed,
    #[default]
    Other,
}

/// A request that got no HTTP answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransportFailure {
    pub kind: TransportKind,
    pub url: Option<String>,
    pub message: String,
}

/// Everything known when something failed. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    pub failure: Option<Failure>,
    /// The decoded claims of the token that was used.
    pub claims: Option<TokenClaims>,
    pub context: Option<Context>,
    pub gdap: Option<GdapFacts>,
    pub consent: Option<ConsentFacts>,
    pub licence: Option<LicenceFacts>,
    pub cache: Option<CacheFacts>,
    pub network: Option<NetworkFacts>,
    /// The time of the failure; the crate never reads the clock itself.
    pub now: Option<DateTime<Utc>>,
}

/// The decoded claims of an access token (Graph tokens are v1.0 tokens).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenClaims {
    pub amr: Vec<String>,
    pub scp: Vec<String>,
    pub roles: Vec<String>,
    pub wids: Vec<String>,
    pub tid: Option<String>,
    pub oid: Option<String>,
    pub upn: Option<String>,
    pub appid: Option<String>,
    pub idtyp: Option<String>,
    pub ipaddr: Option<String>,
    /// The audience, used to tell which cloud's Graph the token is for.
    pub aud: Option<String>,
    /// The issuer, used to tell which cloud issued the token.
    pub iss: Option<String>,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
}

impl TokenClaims {
    /// Whether `amr` shows Microsoft Entra MFA (`mfa`, or `ngcmfa` which counts as MFA).
    pub fn has_mfa(&self) -> bool {
        self.amr.iter().any(|m| m.eq_ignore_ascii_case("mfa") || m.eq_ignore_ascii_case("ngcmfa"))
    }

    /// Whether the token is app-only (client credentials).
    pub fn is_app_only(&self) -> bool {
        match self.idtyp.as_deref() {
            Some(t) => t.eq_ignore_ascii_case("app"),
            None => self.scp.is_empty() && self.upn.is_none() && !self.roles.is_empty(),
        }
    }
}

/// How tenantscope reaches the tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// The partner's delegated token redeemed in the customer tenant through GDAP.
    /// It is the default because it is the product's main mode.
    #[default]
    Gdap,
    /// An app with client credentials in (or consented into) the customer tenant.
    App,
    /// A user of the customer tenant itself, without any partner.
    Direct,
    /// The partner tenant itself (parent inspection).
    Partner,
}

/// What was being done when the failure happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    pub tenant_id: Option<String>,
    pub tenant_name: Option<String>,
    pub partner_tenant_id: Option<String>,
    pub auth: Auth,
    /// The collector name, or `token` for token acquisition.
    pub operation: Option<String>,
    pub needed: Need,
    /// The configured cloud (`global`, `usgov`, `usgov-dod`, `china`), when known.
    pub cloud: Option<String>,
}

/// What the operation needs. Within each list any one entry suffices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Need {
    pub delegated_scopes: Vec<String>,
    pub app_roles: Vec<String>,
    /// Entra role template ids.
    pub admin_roles: Vec<String>,
    /// A licence such as `AAD_PREMIUM`.
    pub licence: Option<String>,
}

/// The GDAP relationships between the partner and this customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GdapFacts {
    pub relationships: Vec<GdapRelationship>,
    /// The ids of the partner-tenant groups the signed-in user belongs to, when read.
    pub user_groups: Option<Vec<String>>,
}

/// One GDAP relationship as Graph describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GdapRelationship {
    pub id: String,
    pub display_name: String,
    /// The status string as Graph sends it (`active`, `expired`, `terminated`, ...).
    pub status: String,
    /// Role template ids of the relationship.
    pub roles: Vec<String>,
    pub end: Option<DateTime<Utc>>,
    /// The ISO 8601 auto-extend duration (`P180D`; `PT0S` or `P0D` mean none).
    pub auto_extend: Option<String>,
    pub assignments: Vec<GdapAssignment>,
}

/// One access assignment: a partner security group and the roles it gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GdapAssignment {
    pub group_id: String,
    pub group_name: Option<String>,
    pub roles: Vec<String>,
    pub status: String,
    pub user_is_member: Option<bool>,
}

/// The consent state of tenantscope's app in the customer tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsentFacts {
    pub service_principal_present: Option<bool>,
    pub granted_scopes: Vec<String>,
    pub granted_app_roles: Vec<String>,
}

/// Licences of the customer tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LicenceFacts {
    /// SKU part numbers present (`SPE_E3`, `AAD_PREMIUM`, ...).
    pub skus: Vec<String>,
    /// Service plan names present (`AAD_PREMIUM`, `INTUNE_A`, ...).
    pub service_plans: Vec<String>,
    pub has_p1: Option<bool>,
    pub has_p2: Option<bool>,
    pub has_intune: Option<bool>,
}

/// What the token cache knows about the token that was used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheFacts {
    pub token_from_cache: bool,
    pub issued_at: Option<DateTime<Utc>>,
    /// Whether a freshly acquired token (cache bypassed) succeeded on the same call.
    pub fresh_token_succeeded: Option<bool>,
    /// How the fresh attempt failed, when it did.
    pub fresh_failure: Option<Box<Failure>>,
    /// When the fresh attempt succeeded.
    pub fresh_succeeded_at: Option<DateTime<Utc>>,
    /// When consent or roles last changed for this tenant, when known.
    pub consent_changed_at: Option<DateTime<Utc>>,
    pub last_refresh_use: Option<DateTime<Utc>>,
}

/// What is known about the machine that ran the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkFacts {
    pub agent: Option<String>,
    pub agent_alive: Option<bool>,
    pub login_reachable: Option<bool>,
    pub graph_reachable: Option<bool>,
    pub egress_ip: Option<String>,
}

impl Failure {
    /// The HTTP status, when the failure has one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Failure::TokenEndpoint(t) if t.http_status != 0 => Some(t.http_status),
            Failure::Graph(g) if g.http_status != 0 => Some(g.http_status),
            _ => None,
        }
    }

    /// The URL of the failed request, when known.
    pub fn url(&self) -> Option<&str> {
        match self {
            Failure::TokenEndpoint(t) => t.url.as_deref(),
            Failure::Graph(g) => g.url.as_deref(),
            Failure::Transport(t) => t.url.as_deref(),
            Failure::Text(_) => None,
        }
    }
}
