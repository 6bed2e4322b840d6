//! `POST /{tenant}/oauth2/v2.0/token` and `POST /{tenant}/oauth2/v2.0/devicecode`.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::issue::{self, GrantKind, ScopeRequest, UserGrant, parse_scopes_in, unknown_client};
use super::{ClientIp, TenantSegment, correlation, resolve_segment};
use crate::errors::{AadError, identity_headers, json_body};
use crate::state::{Authn, Counters, DeviceCode, DeviceStatus, SharedSim, Sim, opaque};

/// The largest form body the endpoints accept; Microsoft rejects far smaller bodies than any real client sends.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

const KNOWN_PARAMS: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
    "code",
    "device_code",
    "refresh_token",
    "redirect_uri",
    "code_verifier",
    "username",
    "password",
    "assertion",
    "requested_token_use",
];

/// A parsed form: one value per parameter; a repeated known parameter is an error, as at Microsoft.
pub struct Form {
    values: HashMap<String, String>,
}

impl Form {
    pub fn parse(body: &[u8]) -> Result<Form, AadError> {
        let mut values = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            let k = k.into_owned();
            if values.contains_key(&k) && KNOWN_PARAMS.contains(&k.as_str()) {
                return Err(AadError::bad(
                    "invalid_request",
                    9000411,
                    format!("The request is not properly formatted. The parameter '{k}' is duplicated."),
                ));
            }
            values.insert(k, v.into_owned());
        }
        Ok(Form { values })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub(crate) fn require(&self, key: &str) -> Result<&str, AadError> {
        self.get(key).ok_or_else(|| missing(key))
    }
}

pub(crate) fn missing(name: &str) -> AadError {
    AadError::bad(
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// Reads a form body with a size limit and a content-type check, answering like the token endpoint.
pub(crate) async fn read_form(headers: &HeaderMap, body: Body) -> Result<Form, AadError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| {
        AadError::bad(
            "invalid_request",
            90015,
            "The request is too large. The request body exceeds the maximum allowed size.",
        )
    })?;
    if !ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return Err(missing("grant_type"));
    }
    Form::parse(&bytes)
}

pub(crate) async fn wrong_method(State(sim): State<SharedSim>, headers: HeaderMap) -> Response {
    AadError::bad("invalid_request", 900561, "The endpoint only accepts POST requests. Received a GET request.")
        .into_response_with(&correlation(&headers), sim.now(), &sim.base_url)
}

/// How the client proved its identity.
enum ClientAuth {
    None,
    Secret,
    Certificate,
}

impl ClientAuth {
    fn appidacr(&self) -> &'static str {
        match self {
            ClientAuth::None => "0",
            ClientAuth::Secret => "1",
            ClientAuth::Certificate => "2",
        }
    }
}

pub(crate) async fn token(
    State(sim): State<SharedSim>,
    Path(tenant): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    Counters::bump(&sim.counters.token_requests);
    let corr = correlation(&headers);
    let result = async {
        let form = read_form(&headers, body).await?;
        handle_token(&sim, &tenant, &headers, &form, ip)
    }
    .await;
    match result {
        Ok(body) => {
            if let Ok(t) = Uuid::parse_str(&tenant) {
                sim.counters.tenant(t, |c| c.token_requests += 1);
            }
            let mut resp = json_body(&body).into_response();
            identity_headers(resp.headers_mut(), &corr, &Uuid::new_v4().to_string(), 0);
            resp
        }
        Err(e) => {
            Counters::bump(&sim.counters.token_errors);
            e.into_response_with(&corr, sim.now(), &sim.base_url)
        }
    }
}

fn handle_token(
    sim: &Sim,
    tenant: &str,
    headers: &HeaderMap,
    form: &Form,
    ip: std::net::IpAddr,
) -> Result<Value, AadError> {
    let segment = resolve_segment(sim, tenant)
        .map_err(|e| if e.code == 90002 { AadError { error: "invalid_request", ..e } } else { e })?;
    let directory = directory_name(sim, &segment, tenant);
    let grant_type = form.require("grant_type")?;
    let (basic_id, basic_secret) = basic_auth(headers);
    let client_id_text = form.get("client_id").map(str::to_string).or(basic_id).ok_or_else(|| missing("client_id"))?;
    let client_id = Uuid::parse_str(&client_id_text)
        .map_err(|_| unknown_client(super::truncate(&client_id_text, 64), &directory))?;
    let app = sim.world().app(client_id).cloned().ok_or_else(|| unknown_client(client_id, &directory))?;
    if !app.enabled {
        return Err(AadError::bad(
            "unauthorized_client",
            7000112,
            format!("Application '{}'({}) is disabled.", app.client_id, app.display_name),
        ));
    }
    let secret = form.get("client_secret").map(str::to_string).or(basic_secret);
    let auth = authenticate_client(sim, &app, tenant, form, secret.as_deref(), grant_type)?;
    match grant_type {
        "client_credentials" => client_credentials(sim, &app, &segment, &directory, form, &auth),
        "authorization_code" => authorization_code(sim, &app, &segment, &directory, form, ip, &auth),
        "refresh_token" => refresh(sim, &app, &segment, &directory, form, ip, &auth),
        "urn:ietf:params:oauth:grant-type:device_code" | "device_code" => {
            device_code(sim, &app, &directory, form, ip, &auth)
        }
        "password" => password(sim, &app, &segment, &directory, form, ip, &auth),
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => on_behalf_of(sim, &app, &segment, &directory, form, ip, &auth),
        other => Err(AadError::bad(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{}'.", super::truncate(other, 64)),
        )),
    }
}

/// The name Entra gives the directory of a request in its messages: the tenant's display name, or the
/// segment as the client wrote it for `common`, `organizations` and `consumers`.
fn directory_name(sim: &Sim, segment: &TenantSegment, raw: &str) -> String {
    match segment {
        TenantSegment::Tenant(id) => {
            sim.world().tenant(*id).map_or_else(|| raw.to_string(), |t| t.display_name.clone())
        }
        _ => super::truncate(raw, 80).to_string(),
    }
}

fn basic_auth(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return (None, None) };
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return (None, None);
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return (None, None) };
    let Ok(text) = String::from_utf8(decoded) else { return (None, None) };
    match text.split_once(':') {
        Some((id, secret)) => {
            let id = form_urlencoded::parse(format!("a={id}").as_bytes()).next().map(|(_, v)| v.into_owned());
            let secret = form_urlencoded::parse(format!("a={secret}").as_bytes()).next().map(|(_, v)| v.into_owned());
            (id, secret)
        }
        None => (None, None),
    }
}

fn authenticate_client(
    sim: &Sim,
    app: &crate::world::App,
    tenant: &str,
    form: &Form,
    secret: Option<&str>,
    grant_type: &str,
) -> Result<ClientAuth, AadError> {
    let now = sim.now();
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
            return Err(AadError::bad(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_assertion_type'.",
            ));
        }
        verify_assertion(sim, app, tenant, assertion, now)?;
        return Ok(ClientAuth::Certificate);
    }
    if let Some(secret) = secret {
        let matching: Vec<&crate::world::AppSecret> =
            app.secrets.iter().filter(|s| constant_eq(&s.value, secret)).collect();
        if matching.is_empty() {
            return Err(AadError::new(
                401,
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    app.client_id
                ),
            ));
        }
        if matching.iter().all(|s| s.end <= now) {
            return Err(AadError::new(
                401,
                "invalid_client",
                7000222,
                format!(
                    "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                    app.client_id
                ),
            ));
        }
        return Ok(ClientAuth::Secret);
    }
    if !app.public_client || grant_type == "client_credentials" {
        return Err(AadError::new(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    Ok(ClientAuth::None)
}

fn constant_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn assertion_error(reason: &str) -> AadError {
    AadError::new(
        401,
        "invalid_client",
        700027,
        format!("Client assertion failed signature validation. [Reason - {reason}]"),
    )
}

/// Where Entra sends a developer whose certificate assertion it refuses (the MSALNET live captures of
/// 700024 and 700021 end with it).
const CERT_DOCS: &str = "Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .";

/// Decodes a base64url value with or without its `=` padding: MSAL Python and azure-identity pad the
/// certificate thumbprints of their assertions (`base64.urlsafe_b64encode`), msal-node does not, and Entra
/// accepts both.
fn base64url(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// A NumericDate of an assertion: JSON allows it as an integer or a fraction (MSAL Python sends
/// `time.time()` floats), and Entra accepts both.
fn numeric_date(claims: &Value, name: &str) -> Option<f64> {
    claims.get(name).and_then(Value::as_f64)
}

fn instant(seconds: f64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds.floor() as i64, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// The claims of a JWT read without checking its signature, to decide which key and which errors apply.
fn unverified_claims(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&base64url(payload)?).ok()
}

/// The JWT algorithms Entra verifies client assertions with.
const ASSERTION_ALGORITHMS: &[Algorithm] =
    &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512];

/// Checks a certificate client assertion as Entra does, each failure with its own code and the text of
/// Entra's live answers (MSALNET `TestConstants.cs`, captured December 2023): 50027 malformed, 5002738
/// unsupported algorithm, 5002723 no thumbprint, 90014 a required claim missing, 700021 `iss`/`sub` not the
/// client, 700027 unknown key or bad signature, 700024 outside its validity window (with the current time
/// and the window, five minutes of skew).
fn verify_assertion(
    sim: &Sim,
    app: &crate::world::App,
    tenant: &str,
    assertion: &str,
    now: DateTime<Utc>,
) -> Result<(), AadError> {
    let malformed = || AadError::new(401, "invalid_client", 50027, "JWT token is invalid or malformed.");
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| malformed())?;
    let claims = unverified_claims(assertion).ok_or_else(malformed)?;
    if !ASSERTION_ALGORITHMS.contains(&header.alg) {
        return Err(AadError::new(
            401,
            "invalid_client",
            5002738,
            format!(
                "Invalid JWT token. '{:?}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256,RS384,RS512'",
                header.alg
            ),
        ));
    }
    if header.x5t.is_none() && header.x5t_s256.is_none() && header.kid.is_none() {
        return Err(AadError::new(
            401,
            "invalid_client",
            5002723,
            "Invalid JWT token. No certificate SHA-1 thumbprint, certificate SHA-256 thumbprint, nor keyId specified in token header.",
        ));
    }
    for field in ["iss", "aud"] {
        if audiences(&claims, field).is_empty() {
            return Err(AadError::bad(
                "invalid_request",
                90014,
                format!(
                    "The required field '{field}' is missing from the credential. Ensure that you have all the necessary parameters for the login request."
                ),
            ));
        }
    }
    let client = app.client_id.to_string();
    // An issuer that is a URL rather than the client's id is an external identity provider: workload
    // identity federation.
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss != client && iss.contains("://") {
        return verify_federated(sim, app, assertion, &header, &claims, now);
    }
    if iss != client || claims.get("sub").and_then(Value::as_str) != Some(&client) {
        return Err(AadError::new(
            401,
            "invalid_client",
            700021,
            format!("Client assertion application identifier doesn't match 'client_id' parameter. {CERT_DOCS}"),
        ));
    }
    // The SHA-256 thumbprint is preferred when both are present, as MSAL sends both with PS256.
    let by_sha256 = header
        .x5t_s256
        .as_deref()
        .and_then(base64url)
        .and_then(|t| app.certificates.iter().find(|c| c.thumbprint_sha256 == t));
    let by_sha1 = || {
        let thumb = header
            .x5t
            .as_deref()
            .and_then(base64url)
            .or_else(|| header.kid.as_deref().and_then(|k| hex::decode(k).ok()))?;
        app.certificates.iter().find(|c| c.thumbprint_sha1 == thumb)
    };
    let cert = by_sha256.or_else(by_sha1).ok_or_else(|| {
        assertion_error(&format!(
            "The key was not found., Thumbprint of key used by client: '{}'",
            header.x5t.clone().or(header.x5t_s256.clone()).or(header.kid.clone()).unwrap_or_default()
        ))
    })?;
    if cert.end <= now {
        return Err(assertion_error("The key used is expired."));
    }
    let key = DecodingKey::from_rsa_pem(cert.pem.as_bytes()).map_err(|_| assertion_error("The key was not found."))?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .map_err(|_| assertion_error("The signature is invalid."))?;
    let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
    let expected_suffix = [format!("/{tenant}/oauth2/v2.0/token"), format!("/{tenant}/v2.0")];
    if !aud.starts_with(&sim.base_url) || !expected_suffix.iter().any(|s| aud.ends_with(s.as_str())) {
        return Err(AadError::new(
            401,
            "invalid_client",
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                super::truncate(aud, 200)
            ),
        ));
    }
    check_validity(&claims, now)
}

/// The values of a claim that may be a string or an array of strings (`aud` of Kubernetes tokens is an
/// array), without empty ones.
fn audiences<'a>(claims: &'a Value, name: &str) -> Vec<&'a str> {
    match claims.get(name) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect()
}

/// Where Entra sends a developer whose federated assertion matches no credential.
const WIF_DOCS: &str = "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation";

/// Workload identity federation: the assertion is a token of an external identity provider, accepted when
/// one of the app's federated credentials names its issuer, subject and audience exactly, its signature
/// verifies against the issuer's keys, and it is within its lifetime. The codes and texts are those
/// Entra's users meet (protocol reference §1.6: 70021 is `unauthorized_client` 401, recorded): 70025 the app
/// has no federated credential, 700211 none for the issuer, 70021 none for the issuer and subject, 700212
/// none for the audience, 700027 a bad signature, 700024 an expired token. The simulator verifies tokens of
/// the issuers it hosts (`{base}/_idp/{name}`); another issuer's keys cannot be fetched offline (50166).
fn verify_federated(
    sim: &Sim,
    app: &crate::world::App,
    assertion: &str,
    header: &jsonwebtoken::Header,
    claims: &Value,
    now: DateTime<Utc>,
) -> Result<(), AadError> {
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    let aud = audiences(claims, "aud");
    if app.federated_credentials.is_empty() {
        return Err(AadError::new(
            401,
            "unauthorized_client",
            70025,
            format!(
                "The client '{}'({}) has no configured federated identity credentials.",
                app.client_id, app.display_name
            ),
        ));
    }
    let issuer_of = |f: &crate::world::FederatedCredential| f.issuer.replace("{sim}", &sim.base_url);
    let by_issuer: Vec<&crate::world::FederatedCredential> =
        app.federated_credentials.iter().filter(|f| issuer_of(f) == iss).collect();
    if by_issuer.is_empty() {
        return Err(AadError::new(
            401,
            "invalid_client",
            700211,
            format!(
                "No matching federated identity record found for presented assertion issuer '{}'. {WIF_DOCS}",
                super::truncate(iss, 200)
            ),
        ));
    }
    let by_subject: Vec<&&crate::world::FederatedCredential> = by_issuer.iter().filter(|f| f.subject == sub).collect();
    if by_subject.is_empty() {
        return Err(AadError::new(
            401,
            "unauthorized_client",
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'. https://docs.microsoft.com/azure/active-directory/develop/workload-identity-federation",
                super::truncate(iss, 200),
                super::truncate(sub, 200),
                super::truncate(&aud.join(","), 200)
            ),
        ));
    }
    if !by_subject.iter().any(|f| f.audiences.iter().any(|a| aud.contains(&a.as_str()))) {
        return Err(AadError::new(
            401,
            "invalid_client",
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'. {WIF_DOCS}",
                super::truncate(&aud.join(","), 200)
            ),
        ));
    }
    if !iss.starts_with(&format!("{}/_idp/", sim.base_url)) {
        return Err(AadError::new(401, "invalid_client", 50166, "Request to External OIDC endpoint failed."));
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|k| sim.keys.find(k))
        .ok_or_else(|| assertion_error("The key was not found."))?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(assertion, &key.decoding, &validation)
        .map_err(|_| assertion_error("The signature is invalid."))?;
    check_validity(claims, now)
}

/// 700024 when `now` is outside the assertion's window (from `nbf`, or `iat` when it has none, to `exp`),
/// allowing five minutes of clock skew; the message gives the three instants as Entra does.
fn check_validity(claims: &Value, now: DateTime<Utc>) -> Result<(), AadError> {
    let ts = now.timestamp() as f64;
    let exp = numeric_date(claims, "exp").unwrap_or(0.0);
    let from = numeric_date(claims, "nbf").or_else(|| numeric_date(claims, "iat")).unwrap_or(0.0);
    if exp + 300.0 < ts || from - 300.0 > ts {
        return Err(AadError::new(
            401,
            "invalid_client",
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. {CERT_DOCS}",
                crate::errors::dotnet_time(now),
                crate::errors::dotnet_time(instant(from)),
                crate::errors::dotnet_time(instant(exp)),
            ),
        ));
    }
    Ok(())
}

/// What every user grant takes from the request itself: the client, its address, how it
/// authenticated, and what it declares (`client_info`, the `cp1` capability).
struct Caller {
    client_id: Uuid,
    client_ip: IpAddr,
    appidacr: &'static str,
    client_info: bool,
    cae: bool,
}

impl Caller {
    fn new(client_id: Uuid, client_ip: IpAddr, auth: &ClientAuth, form: &Form) -> Caller {
        Caller {
            client_id,
            client_ip,
            appidacr: auth.appidacr(),
            client_info: form.get("client_info") == Some("1"),
            cae: declares_cp1(form),
        }
    }

    /// The grant of `kind` for the signed-in user `authn`, in `resource_tenant`.
    fn grant(
        self,
        authn: Authn,
        resource_tenant: Uuid,
        scopes: &ScopeRequest,
        nonce: Option<String>,
        kind: GrantKind,
    ) -> UserGrant<'_> {
        UserGrant {
            authn,
            client_id: self.client_id,
            resource_tenant,
            scopes,
            nonce,
            client_ip: self.client_ip,
            appidacr: self.appidacr,
            client_info: self.client_info,
            kind,
            cae: self.cae,
        }
    }
}

/// Whether the client declared the `cp1` capability in the request's `claims`
/// (`{"access_token":{"xms_cc":{"values":["cp1"]}}}`, possibly merged with a claims challenge; MSAL sends
/// `CP1` or `cp1`): its Graph tokens are then evaluated continuously and live a day (the recorded CP1
/// response of `payloads/token_response_client_credentials_recorded.json` has `expires_in` 86399).
fn declares_cp1(form: &Form) -> bool {
    form.get("claims")
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .and_then(|c| c["access_token"]["xms_cc"]["values"].as_array().cloned())
        .is_some_and(|v| v.iter().filter_map(Value::as_str).any(|v| v.eq_ignore_ascii_case("cp1")))
}

fn specific_tenant(segment: &TenantSegment) -> Option<Uuid> {
    match segment {
        TenantSegment::Tenant(t) => Some(*t),
        _ => None,
    }
}

fn client_credentials(
    sim: &Sim,
    app: &crate::world::App,
    segment: &TenantSegment,
    directory: &str,
    form: &Form,
    auth: &ClientAuth,
) -> Result<Value, AadError> {
    let tenant = specific_tenant(segment).ok_or_else(|| {
        AadError::bad(
            "invalid_request",
            50059,
            "No tenant-identifying information found in either the request or implied by any provided credentials.",
        )
    })?;
    let scope = form.require("scope")?;
    if !scope.trim().ends_with("/.default") || scope.split_whitespace().count() != 1 {
        return Err(AadError::bad(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                super::truncate(scope, 200)
            ),
        ));
    }
    parse_scopes_in(scope, &sim.base_url, Some(directory))?;
    let now = sim.now();
    let world = sim.world();
    let resource = world.tenant(tenant).ok_or_else(|| issue::tenant_not_found(&tenant.to_string()))?;
    if resource.id != app.home_tenant && !app.multi_tenant {
        return Err(issue::app_not_in_tenant(app, resource));
    }
    let sp = resource.service_principal(app.client_id).ok_or_else(|| issue::app_not_in_tenant(app, resource))?;
    let cae = declares_cp1(form);
    let lifetime = if cae {
        issue::CAE_LIFETIME
    } else {
        Duration::minutes(i64::from(rand::rng().random_range(
            world.settings.token_lifetime_min
                ..=world.settings.token_lifetime_max.max(world.settings.token_lifetime_min),
        )))
    };
    let mut claims = json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{}/", resource.id),
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": (now + lifetime).timestamp(),
        "aio": opaque("E2Rg", 24),
        "app_displayname": app.display_name,
        "appid": app.client_id.to_string(),
        "appidacr": auth.appidacr(),
        "idp": format!("https://sts.windows.net/{}/", resource.id),
        "idtyp": "app",
        "oid": sp.id.to_string(),
        "rh": opaque("1.A", 20),
        "roles": sp.application,
        "sub": sp.id.to_string(),
        "tenant_region_scope": "NA",
        "tid": resource.id.to_string(),
        "uti": opaque("", 16),
        "ver": "1.0",
        "wids": ["0997a1d0-0d1d-4acb-b408-d5ca73121e90"],
        "xms_tcdt": resource.created.timestamp(),
    });
    if cae {
        claims["xms_cc"] = json!(["cp1"]);
    }
    let claims = if sp.application.is_empty() {
        let mut c = claims;
        if let Some(o) = c.as_object_mut() {
            o.remove("roles");
        }
        c
    } else {
        claims
    };
    drop(world);
    let key = sim.signing_key().ok_or_else(issue::server_error)?;
    let token = key.sign(&claims, Some(&opaque("AQAB", 48))).map_err(|_| issue::server_error())?;
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.num_seconds() - 1,
        "ext_expires_in": lifetime.num_seconds() - 1,
        "access_token": token,
    }))
}

fn user_scopes(sim: &Sim, directory: &str, form: &Form, default: Option<&[String]>) -> Result<ScopeRequest, AadError> {
    match (form.get("scope"), default) {
        (Some(s), _) => parse_scopes_in(s, &sim.base_url, Some(directory)),
        (None, Some(d)) => parse_scopes_in(&d.join(" "), &sim.base_url, Some(directory)),
        (None, None) => Err(missing("scope")),
    }
}

fn authorization_code(
    sim: &Sim,
    app: &crate::world::App,
    segment: &TenantSegment,
    directory: &str,
    form: &Form,
    ip: std::net::IpAddr,
    auth: &ClientAuth,
) -> Result<Value, AadError> {
    let code = form.require("code")?;
    let redirect_uri = form.require("redirect_uri")?;
    let now = sim.now();
    let record = {
        let mut sessions = sim.sessions();
        let record = sessions.codes.get_mut(code).ok_or_else(|| {
            AadError::bad("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        })?;
        if record.redeemed {
            return Err(AadError::bad(
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ));
        }
        if now - record.issued > Duration::minutes(10) {
            return Err(AadError::bad(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
            ));
        }
        if record.client_id != app.client_id {
            return Err(AadError::bad(
                "invalid_grant",
                70000,
                "The provided grant is invalid: the authorization code was issued to another client.",
            ));
        }
        if record.redirect_uri != redirect_uri {
            return Err(AadError::bad(
                "invalid_grant",
                50148,
                "The code_verifier or redirect_uri does not match the one in the authorization request.",
            ));
        }
        if let Some(TenantSegment::Tenant(t)) = Some(segment)
            && *t != record.resource_tenant
        {
            return Err(AadError::bad(
                "invalid_grant",
                700005,
                "Provided Authorization Code is intended to use against other tenant, thus rejected.",
            ));
        }
        if let Some(challenge) = &record.code_challenge {
            let verifier = form.get("code_verifier").unwrap_or("");
            let computed = if record.code_challenge_method.eq_ignore_ascii_case("S256") {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
            } else {
                verifier.to_string()
            };
            if verifier.is_empty() || !constant_eq(&computed, challenge) {
                return Err(AadError::bad(
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                ));
            }
        }
        record.redeemed = true;
        record.clone()
    };
    let scopes = match form.get("scope") {
        Some(s) => parse_scopes_in(s, &sim.base_url, Some(directory))?,
        None => parse_scopes_in(&record.scopes.join(" "), &sim.base_url, Some(directory))?,
    };
    issue::issue_user(
        sim,
        Caller::new(app.client_id, ip, auth, form).grant(
            record.authn,
            record.resource_tenant,
            &scopes,
            record.nonce,
            GrantKind::AuthorizationCode,
        ),
    )
}

fn refresh(
    sim: &Sim,
    app: &crate::world::App,
    segment: &TenantSegment,
    directory: &str,
    form: &Form,
    ip: std::net::IpAddr,
    auth: &ClientAuth,
) -> Result<Value, AadError> {
    let rt = form.require("refresh_token")?;
    let now = sim.now();
    let inactivity = Duration::days(sim.world().settings.refresh_inactivity_days);
    let state = {
        let sessions = sim.sessions();
        sessions.refresh_tokens.get(rt).cloned().ok_or_else(|| {
            AadError::bad("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        })?
    };
    if state.client_id != app.client_id {
        return Err(AadError::bad(
            "invalid_grant",
            70000,
            "The provided grant is invalid or malformed: the refresh token was issued to a different client.",
        ));
    }
    if now - state.last_used > inactivity {
        return Err(AadError::bad(
            "invalid_grant",
            700082,
            format!("The refresh token has expired due to inactivity. The token was issued on {} and was inactive for {}.00:00:00.", crate::errors::dotnet_time(state.issued), inactivity.num_days()),
        )
        .with_suberror("bad_token"));
    }
    let resource_tenant = specific_tenant(segment).unwrap_or(state.authn.home_tenant);
    let scopes = user_scopes(sim, directory, form, Some(&state.scopes))?;
    let result = issue::issue_user(
        sim,
        Caller::new(app.client_id, ip, auth, form).grant(
            state.authn.clone(),
            resource_tenant,
            &scopes,
            None,
            GrantKind::RefreshToken,
        ),
    )?;
    if let Some(s) = sim.sessions().refresh_tokens.get_mut(rt) {
        s.last_used = now;
    }
    Ok(result)
}

fn device_code(
    sim: &Sim,
    app: &crate::world::App,
    directory: &str,
    form: &Form,
    ip: std::net::IpAddr,
    auth: &ClientAuth,
) -> Result<Value, AadError> {
    let code = form.get("device_code").or_else(|| form.get("code")).ok_or_else(|| missing("device_code"))?;
    let now = sim.now();
    let entry = sim.sessions().device_codes.get(code).cloned().ok_or_else(|| {
        AadError::bad("invalid_grant", 70000, "The provided value for the input parameter 'device_code' is not valid.")
    })?;
    if entry.client_id != app.client_id {
        return Err(AadError::bad(
            "invalid_grant",
            70000,
            "The provided value for the input parameter 'device_code' was issued to another client.",
        ));
    }
    if now > entry.expires && !matches!(entry.status, DeviceStatus::Redeemed) {
        return Err(AadError::bad("expired_token", 70019, "Verification code expired."));
    }
    match entry.status {
        DeviceStatus::Pending => Err(AadError::bad(
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        )),
        DeviceStatus::Declined => {
            Err(AadError::bad("authorization_declined", 70000, "The user declined the sign-in request."))
        }
        DeviceStatus::Redeemed => Err(AadError::bad(
            "invalid_grant",
            54005,
            "The device code was already redeemed; start a new device code flow.",
        )),
        DeviceStatus::Approved { authn, resource_tenant } => {
            let scopes = parse_scopes_in(&entry.scopes.join(" "), &sim.base_url, Some(directory))?;
            let result = issue::issue_user(
                sim,
                Caller::new(app.client_id, ip, auth, form).grant(
                    authn,
                    resource_tenant,
                    &scopes,
                    None,
                    GrantKind::DeviceCode,
                ),
            )?;
            if let Some(e) = sim.sessions().device_codes.get_mut(code) {
                e.status = DeviceStatus::Redeemed;
            }
            Ok(result)
        }
    }
}

fn password(
    sim: &Sim,
    app: &crate::world::App,
    segment: &TenantSegment,
    directory: &str,
    form: &Form,
    ip: std::net::IpAddr,
    auth: &ClientAuth,
) -> Result<Value, AadError> {
    let username = form.require("username")?;
    let pass = form.require("password")?;
    let now = sim.now();
    let (home, user_id) = {
        let world = sim.world();
        let (home, user) = world.user_by_upn(username).ok_or_else(|| {
            AadError::bad("invalid_grant", 50034, format!("The user account {} does not exist in the directory. To sign into this application, the account must be added to the directory.", super::truncate(username, 120)))
        })?;
        if !constant_eq(&user.password, pass) {
            return Err(AadError::bad(
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            ));
        }
        issue::check_account(user)?;
        if user.password_expired {
            return Err(AadError::bad("invalid_grant", 50055, "The password is expired.")
                .with_suberror("user_password_expired"));
        }
        (home.id, user.id)
    };
    let resource_tenant = specific_tenant(segment).unwrap_or(home);
    let scopes = user_scopes(sim, directory, form, None)?;
    issue::issue_user(
        sim,
        Caller::new(app.client_id, ip, auth, form).grant(
            Authn { home_tenant: home, user: user_id, auth_time: now, mfa_at: None },
            resource_tenant,
            &scopes,
            None,
            GrantKind::Password,
        ),
    )
}

/// The on-behalf-of grant (ENTRA `v2-oauth2-on-behalf-of-flow.md`): a confidential middle tier presents
/// the access token a user got for it (`assertion`, its `aud` the middle tier's client id or
/// `api://{client id}`) and gets a token for another resource as that user. The user's sign-in is
/// checked again as on a refresh: revoked sessions, GDAP presence, consent (65001 when the middle tier
/// lacks it) and Conditional Access (50076/50079 as `interaction_required` with the policies' `claims`,
/// which the middle tier hands back to its client).
fn on_behalf_of(
    sim: &Sim,
    app: &crate::world::App,
    segment: &TenantSegment,
    directory: &str,
    form: &Form,
    ip: std::net::IpAddr,
    auth: &ClientAuth,
) -> Result<Value, AadError> {
    match form.get("requested_token_use") {
        Some("on_behalf_of") => {}
        Some(other) => {
            return Err(AadError::bad(
                "invalid_request",
                50000,
                format!(
                    "There was an error issuing a token. The requested_token_use '{}' is not supported.",
                    super::truncate(other, 64)
                ),
            ));
        }
        None => return Err(missing("requested_token_use")),
    }
    if matches!(auth, ClientAuth::None) {
        return Err(AadError::new(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    let assertion = form.require("assertion")?;
    let now = sim.now();
    let invalid = |reason: &str| {
        AadError::bad("invalid_grant", 50013, format!("Assertion failed signature validation. [Reason - {reason}]"))
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| AadError::bad("invalid_grant", 50027, "JWT token is invalid or malformed."))?;
    let key = header.kid.as_deref().and_then(|k| sim.keys.find(k)).ok_or_else(|| invalid("The key was not found."))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(assertion, &key.decoding, &validation)
        .map_err(|_| invalid("The signature is invalid."))?
        .claims;
    let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
    let client = app.client_id.to_string();
    if aud != client && aud != format!("api://{client}") {
        return Err(AadError::bad(
            "invalid_grant",
            500131,
            format!(
                "Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '{}' and the expected audience is '{client}' or one of the Application Id URIs of this application.",
                super::truncate(aud, 200)
            ),
        ));
    }
    let exp = numeric_date(&claims, "exp").unwrap_or(0.0);
    if exp + 300.0 < now.timestamp() as f64 {
        return Err(AadError::bad(
            "invalid_grant",
            500133,
            format!(
                "Assertion is not within its valid time range. Ensure that the access token is not expired before using it for user assertion, or request a new token. Current time: {}, expiry time of assertion {}.",
                crate::errors::dotnet_time(now),
                crate::errors::dotnet_time(instant(exp)),
            ),
        ));
    }
    let uti = claims.get("uti").and_then(Value::as_str).unwrap_or("");
    let authn =
        sim.sessions().api_tokens.get(uti).map(|(a, _)| a.clone()).ok_or_else(|| invalid("The token is unknown."))?;
    let token_tenant =
        claims.get("tid").and_then(Value::as_str).and_then(|t| Uuid::parse_str(t).ok()).unwrap_or(authn.home_tenant);
    let resource_tenant = specific_tenant(segment).unwrap_or(token_tenant);
    let scopes = user_scopes(sim, directory, form, None)?;
    issue::issue_user(
        sim,
        Caller::new(app.client_id, ip, auth, form).grant(authn, resource_tenant, &scopes, None, GrantKind::OnBehalfOf),
    )
}

pub(crate) async fn devicecode(
    State(sim): State<SharedSim>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let corr = correlation(&headers);
    let result = async {
        let form = read_form(&headers, body).await?;
        let segment = resolve_segment(&sim, &tenant)?;
        let directory = directory_name(&sim, &segment, &tenant);
        let client = form.require("client_id")?;
        let client_id =
            Uuid::parse_str(client).map_err(|_| unknown_client(super::truncate(client, 64), &directory))?;
        if sim.world().app(client_id).is_none() {
            return Err(unknown_client(client_id, &directory));
        }
        let scope = form.require("scope")?;
        parse_scopes_in(scope, &sim.base_url, Some(&directory))?;
        let now = sim.now();
        let (interval, lifetime) = {
            let w = sim.world();
            (w.settings.device_code_interval, w.settings.device_code_lifetime)
        };
        let user_code: String = {
            let mut rng = rand::rng();
            const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            (0..9).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
        };
        let device_code = opaque("DAQABIQEAAABVrSpeuWamRam2jAF1XRQE", 96);
        {
            let mut sessions = sim.sessions();
            if sessions.device_codes.len() > 50_000 {
                sessions.device_codes.retain(|_, d| d.expires > now);
                let live: std::collections::HashSet<String> = sessions.device_codes.keys().cloned().collect();
                sessions.user_codes.retain(|_, d| live.contains(d));
            }
            sessions.device_codes.insert(
                device_code.clone(),
                DeviceCode {
                    client_id,
                    scopes: scope.split_whitespace().map(str::to_string).collect(),
                    tenant: tenant.clone(),
                    expires: now + Duration::seconds(lifetime as i64),
                    status: DeviceStatus::Pending,
                },
            );
            sessions.user_codes.insert(user_code.clone(), device_code.clone());
        }
        let uri = format!("{}/devicelogin", sim.base_url);
        Ok(json!({
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": uri,
            "expires_in": lifetime,
            "interval": interval,
            "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
        }))
    }
    .await;
    match result {
        Ok(v) => {
            let mut resp = json_body(&v).into_response();
            identity_headers(resp.headers_mut(), &corr, &Uuid::new_v4().to_string(), 0);
            resp
        }
        Err(e) => e.into_response_with(&corr, sim.now(), &sim.base_url),
    }
}
