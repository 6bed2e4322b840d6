//! The simulated Microsoft identity platform (v2.0): discovery, keys, the token and device-code
//! endpoints, and the HTML sign-in pages a person (or `tenantscope sim sign-in`) walks through.

pub mod issue;
mod pages;
pub mod token;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use uuid::Uuid;

use crate::errors::{AadError, Correlation};
use crate::state::SharedSim;

pub fn router() -> Router<SharedSim> {
    Router::new()
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(openid_configuration))
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/{tenant}/discovery/keys", get(jwks))
        .route("/common/discovery/instance", get(instance_discovery))
        .route("/common/userrealm/{user}", get(user_realm))
        .route("/{tenant}/oauth2/v2.0/token", post(token::token).get(token::wrong_method))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(token::devicecode).get(token::wrong_method))
        .route("/{tenant}/oauth2/v2.0/authorize", get(pages::authorize))
        .route("/{tenant}/oauth2/v2.0/logout", get(logout))
        .route("/signin/login", post(pages::login))
        .route("/signin/mfa", post(pages::mfa))
        .route("/signin/consent", post(pages::consent))
        .route("/devicelogin", get(pages::device_page).post(pages::device_code_entered))
        .route("/error", get(error_page))
}

/// The address of the client, as the simulator saw the TCP connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub std::net::IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        Ok(ClientIp(ip))
    }
}

/// A tenant segment: one of the multi-tenant aliases, or a tenant that exists.
pub(crate) enum TenantSegment {
    Common,
    Organizations,
    Consumers,
    Tenant(Uuid),
}

/// Resolves the `{tenant}` of an identity URL, with Microsoft's errors for unknown and malformed ones.
pub(crate) fn resolve_segment(sim: &crate::state::Sim, segment: &str) -> Result<TenantSegment, AadError> {
    match segment.to_ascii_lowercase().as_str() {
        "common" => return Ok(TenantSegment::Common),
        "organizations" => return Ok(TenantSegment::Organizations),
        "consumers" => return Ok(TenantSegment::Consumers),
        _ => {}
    }
    // Entra looks up anything that is a GUID or a DNS name, with or without a dot (`contoso` is a valid
    // single-label DNS name and answers 90002 "Tenant 'contoso' not found", protocol reference §1.1);
    // only characters no DNS name has, empty labels or over-long names are malformed (900023, as in the
    // MSALNET capture `InvalidTenantError900023` for `invalid_tenant`).
    let looks_valid = Uuid::parse_str(segment).is_ok()
        || (segment.len() <= 253
            && segment
                .split('.')
                .all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')));
    if !looks_valid {
        return Err(AadError::bad(
            "invalid_request",
            900023,
            format!(
                "Specified tenant identifier '{}' is neither a valid DNS name, nor a valid external domain.",
                truncate(segment, 80)
            ),
        ));
    }
    sim.world()
        .resolve_tenant(segment)
        .map(|t| TenantSegment::Tenant(t.id))
        .ok_or_else(|| issue::tenant_not_found(truncate(segment, 80)))
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn correlation(headers: &HeaderMap) -> Correlation {
    Correlation::from_headers(headers)
}

async fn openid_configuration(
    State(sim): State<SharedSim>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (segment, issuer_tenant) = match resolve_segment(&sim, &tenant) {
        Ok(TenantSegment::Tenant(id)) => (id.to_string(), id.to_string()),
        Ok(TenantSegment::Common) => ("common".to_string(), "{tenantid}".to_string()),
        Ok(TenantSegment::Organizations) => ("organizations".to_string(), "{tenantid}".to_string()),
        Ok(TenantSegment::Consumers) => ("consumers".to_string(), "9188040d-6c67-4c5b-b112-36a304b66dad".to_string()),
        Err(e) => {
            let e = AadError { error: "invalid_tenant", ..e };
            return e.into_response_with(&correlation(&headers), sim.now(), &sim.base_url);
        }
    };
    let base = &sim.base_url;
    let host = base.trim_start_matches("https://");
    let doc = json!({
        "token_endpoint": format!("{base}/{segment}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{segment}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{issuer_tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "authorization_endpoint": format!("{base}/{segment}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{segment}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{segment}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{segment}/kerberos"),
        "tenant_region_scope": if issuer_tenant.starts_with('{') { serde_json::Value::Null } else { json!("NA") },
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    });
    // The headers of the recorded discovery document (`payloads/openid_configuration_tenant_v2.json`).
    let mut resp = crate::errors::json_body(&doc).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=86400, private"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert("p3p", HeaderValue::from_static(r#"CP="DSP CUR OTPi IND OTRi ONL FIN""#));
    h.insert("x-ms-ests-server", HeaderValue::from_static("2.1.19999.1 - SIM ProdSlices"));
    if let Ok(v) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
        h.insert("x-ms-request-id", v);
    }
    resp
}

async fn jwks(State(sim): State<SharedSim>, Path(tenant): Path<String>, headers: HeaderMap) -> Response {
    if let Err(e) = resolve_segment(&sim, &tenant) {
        return AadError { error: "invalid_tenant", ..e }.into_response_with(
            &correlation(&headers),
            sim.now(),
            &sim.base_url,
        );
    }
    let mut resp = axum::Json(sim.keys.jwks()).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=86400, private"));
    resp
}

#[derive(serde::Deserialize)]
struct InstanceQuery {
    authorization_endpoint: Option<String>,
}

async fn instance_discovery(
    State(sim): State<SharedSim>,
    Query(q): Query<InstanceQuery>,
    headers: HeaderMap,
) -> Response {
    let host = sim.base_url.trim_start_matches("https://").to_string();
    let tenant = q.authorization_endpoint.as_deref().and_then(|a| {
        let url = url::Url::parse(a).ok()?;
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str()?),
            None => url.host_str()?.to_string(),
        };
        (authority == host).then(|| url.path_segments()?.next().map(str::to_string))?
    });
    match tenant {
        Some(t) => axum::Json(json!({
            "tenant_discovery_endpoint": format!("{}/{t}/v2.0/.well-known/openid-configuration", sim.base_url),
            "api-version": "1.1",
            "metadata": [{ "preferred_network": host, "preferred_cache": host, "aliases": [host] }],
        }))
        .into_response(),
        None => AadError::bad("invalid_instance", 50049, "Unknown or invalid instance.").into_response_with(
            &correlation(&headers),
            sim.now(),
            &sim.base_url,
        ),
    }
}

/// Home realm discovery, which MSAL calls before a password grant: every simulated domain is managed (no
/// federation), and a domain the world does not know is `Unknown`, as at Microsoft.
async fn user_realm(State(sim): State<SharedSim>, Path(user): Path<String>) -> Response {
    let domain = user.rsplit_once('@').map_or(user.as_str(), |(_, d)| d).to_ascii_lowercase();
    let known = sim.world().resolve_tenant(&domain).map(|t| t.display_name.clone());
    let mut body = json!({
        "ver": "1.0",
        "account_type": if known.is_some() { "Managed" } else { "Unknown" },
        "domain_name": truncate(&domain, 253),
        "cloud_instance_name": "microsoftonline.com",
        "cloud_audience_urn": "urn:federation:MicrosoftOnline",
    });
    if let Some(name) = known {
        body["FederationBrandName"] = json!(name);
    }
    axum::Json(body).into_response()
}

async fn logout() -> Html<&'static str> {
    Html(
        "<!doctype html><html><head><title>Signed out</title></head><body><p>You signed out of your account.</p></body></html>",
    )
}

#[derive(serde::Deserialize)]
struct ErrorQuery {
    code: Option<String>,
}

async fn error_page(Query(q): Query<ErrorQuery>) -> Response {
    let code = q.code.unwrap_or_default();
    let code: String = code.chars().filter(char::is_ascii_digit).take(10).collect();
    (StatusCode::OK, Html(format!("<!doctype html><html><body><h1>AADSTS{code}</h1><p>See the Microsoft Entra error code reference.</p></body></html>"))).into_response()
}
