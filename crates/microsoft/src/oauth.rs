//! The OAuth 2.0 flows against the identity platform's v2.0 endpoints: device code, authorization code
//! with PKCE, refresh token (also the GDAP redemption at a customer tenant), and client credentials with
//! a secret or a certificate. This module owns the protocol: the requests, the token responses, the
//! token endpoint's errors, PKCE, the device code and client assertions. The loopback redirect server
//! that completes a browser sign-in lives in the `loopback` module.
//!
//! The requests are written here rather than through a generic OAuth crate because every one of them
//! must go through the guarded transport (allow-list, HAR recording, retries) and every failure must
//! keep Microsoft's own fields (`error_codes`, `suberror`, `claims`, trace ids) for diagnosis.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use crate::claims::{self, Claims};
use crate::cloud::Cloud;
use crate::error::{Error, TokenError};
use crate::http::{Request, Response, Transport};
use crate::retry::RetryPolicy;

/// The client capabilities tenantscope declares on every token request: `cp1`, so that Graph evaluates
/// its tokens continuously (ENTRA `claims-challenge.md`): a revoked session or a disallowed location is
/// answered at once with a claims challenge, which `GraphClient` meets with a new token, instead of the
/// token working on for up to an hour. Entra gives such tokens a longer life in exchange.
const CLIENT_CAPABILITIES: &str = r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#;

/// The `claims` parameter of a token request: the client capabilities, merged with the claims a
/// challenge asked for (a JSON object such as `{"access_token":{"nbf":{"essential":true,"value":"…"}}}`).
/// A challenge that is not a JSON object is sent as the capabilities alone.
pub(crate) fn request_claims(challenge: Option<&str>) -> String {
    let Some(Ok(Value::Object(mut asked))) = challenge.map(serde_json::from_str::<Value>) else {
        return CLIENT_CAPABILITIES.to_string();
    };
    let access = asked.entry("access_token").or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(a) = access {
        a.insert("xms_cc".into(), serde_json::json!({ "values": ["cp1"] }));
    }
    Value::Object(asked).to_string()
}

/// What the token endpoint returned on success.
#[derive(Clone)]
pub(crate) struct TokenResponse {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<String>,
    pub expires_in: u64,
    pub scope: Option<String>,
    pub client_info: Option<ClientInfo>,
    /// The access token's claims, when it is a JWT.
    pub claims: Option<Claims>,
    pub received_at: DateTime<Utc>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[REDACTED]")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[REDACTED]"))
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ClientInfo {
    pub uid: String,
    pub utid: String,
}

#[derive(Deserialize)]
struct RawToken {
    access_token: Option<String>,
    refresh_token: Option<String>,
    id_token: Option<String>,
    expires_in: Option<Value>,
    scope: Option<String>,
    client_info: Option<String>,
}

/// A client credential of an app registration.
#[derive(Clone)]
pub enum AppCredential {
    Secret(SecretString),
    /// A certificate: its private key (PEM, PKCS#8 or PKCS#1) and the certificate (PEM).
    Certificate {
        private_key_pem: SecretString,
        certificate_pem: String,
        pss: bool,
    },
    /// Workload identity federation: a token of an external identity provider that the app trusts through
    /// a federated credential (GitHub Actions, Kubernetes, another cloud), presented as the client
    /// assertion. It is read from its source at every token request, since such tokens live minutes.
    Federated(FederatedSource),
}

impl std::fmt::Debug for AppCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppCredential::Secret(_) => f.write_str("AppCredential::Secret([REDACTED])"),
            AppCredential::Certificate { pss, .. } => {
                write!(f, "AppCredential::Certificate(pss: {pss}, key: [REDACTED])")
            }
            AppCredential::Federated(source) => write!(f, "AppCredential::Federated({})", source.spec()),
        }
    }
}

/// Where the external token of a federated credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FederatedSource {
    /// A file holding the token, as Kubernetes projects a service account token
    /// (`AZURE_FEDERATED_TOKEN_FILE`); read again for every request because it is rotated.
    File(std::path::PathBuf),
    /// A command (run by `sh -c`) that prints the token, for example one that asks GitHub Actions' OIDC
    /// endpoint or another cloud's metadata service.
    Command(String),
}

/// How long a token command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

impl FederatedSource {
    /// Reads a source written by [`FederatedSource::spec`]: `file:PATH` or `command:COMMAND`.
    pub fn parse(spec: &str) -> Option<FederatedSource> {
        if let Some(path) = spec.strip_prefix("file:") {
            return (!path.trim().is_empty()).then(|| FederatedSource::File(path.trim().into()));
        }
        spec.strip_prefix("command:")
            .filter(|c| !c.trim().is_empty())
            .map(|c| FederatedSource::Command(c.trim().to_string()))
    }

    /// The source as one line of text, which the store keeps.
    pub fn spec(&self) -> String {
        match self {
            FederatedSource::File(p) => format!("file:{}", p.display()),
            FederatedSource::Command(c) => format!("command:{c}"),
        }
    }

    /// The external token, now. A source that yields nothing usable is a configuration error naming the
    /// source; the token itself never appears in an error.
    pub async fn token(&self) -> Result<SecretString, Error> {
        let fail =
            |why: String| Error::Config(format!("the federated credential's token source {} {why}", self.spec()));
        let text = match self {
            FederatedSource::File(path) => {
                tokio::fs::read_to_string(path).await.map_err(|e| fail(format!("cannot be read: {e}")))?
            }
            FederatedSource::Command(command) => {
                let run = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .output();
                let out = tokio::time::timeout(COMMAND_TIMEOUT, run)
                    .await
                    .map_err(|_| fail(format!("did not finish within {} seconds", COMMAND_TIMEOUT.as_secs())))?
                    .map_err(|e| fail(format!("cannot be run: {e}")))?;
                if !out.status.success() {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let first = stderr.lines().next().unwrap_or("").chars().take(200).collect::<String>();
                    return Err(fail(format!("failed ({}): {first}", out.status)));
                }
                String::from_utf8(out.stdout).map_err(|_| fail("printed something that is not text".into()))?
            }
        };
        let token = text.trim();
        if token.split('.').count() != 3 {
            return Err(fail("did not yield a JWT".into()));
        }
        Ok(SecretString::from(token.to_string()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceCode {
    pub user_code: String,
    #[serde(skip_serializing)]
    pub device_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    pub interval: u64,
    pub message: String,
}

/// An authorization request prepared for a browser.
#[derive(Clone)]
pub(crate) struct AuthorizeRequest {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: SecretString,
    pub redirect_uri: String,
}

fn random_token(bytes: usize) -> String {
    let mut rng = rand::rng();
    let data: Vec<u8> = (0..bytes).map(|_| rng.random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(data)
}

/// Parses a token-endpoint failure, keeping every field Microsoft sends.
pub(crate) fn token_error(resp: &Response, tenant: Option<&str>) -> TokenError {
    let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let codes: Vec<u32> = v
        .get("error_codes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).map(|c| c as u32).collect())
        .unwrap_or_default();
    let description = match text("error_description") {
        Some(d) => d,
        None => {
            let snippet: String = String::from_utf8_lossy(&resp.body).chars().take(300).collect();
            format!("the token endpoint answered HTTP {} without an OAuth error body: {snippet}", resp.status)
        }
    };
    let codes = if codes.is_empty() { aadsts_codes(&description) } else { codes };
    TokenError {
        url: resp.url.clone(),
        tenant: tenant.map(str::to_string),
        status: resp.status,
        error: text("error").unwrap_or_else(|| "invalid_response".into()),
        error_codes: codes,
        description,
        suberror: text("suberror"),
        claims: text("claims"),
        trace_id: text("trace_id"),
        correlation_id: text("correlation_id"),
        timestamp: text("timestamp"),
        retry_after: resp.retry_after(),
    }
}

/// AADSTS codes mentioned in a description, for responses that lack `error_codes`.
pub(crate) fn aadsts_codes(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("AADSTS") {
        let digits: String = rest[i + 6..].chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse() {
            out.push(n);
        }
        rest = &rest[i + 6..];
    }
    out
}

pub struct OAuth {
    pub cloud: Cloud,
    pub transport: Transport,
    pub retry: RetryPolicy,
}

impl OAuth {
    pub(crate) fn new(cloud: Cloud, transport: Transport) -> OAuth {
        OAuth { cloud, transport, retry: RetryPolicy::default() }
    }

    async fn post_form(&self, url: &str, tenant: &str, fields: Vec<(String, String)>) -> Result<Value, Error> {
        let parsed = Url::parse(url).map_err(|e| Error::Config(format!("bad endpoint {url}: {e}")))?;
        self.retry
            .run(&self.transport.stats, || {
                let req = Request::form(parsed.clone(), fields.clone());
                async move {
                    let resp = self.transport.send(req).await?;
                    if resp.status != 200 {
                        return Err(Error::Token(Box::new(token_error(&resp, Some(tenant)))));
                    }
                    serde_json::from_slice::<Value>(&resp.body).map_err(|_| Error::Protocol {
                        url: resp.url.clone(),
                        message: "the token response is not JSON".into(),
                    })
                }
            })
            .await
    }

    pub(crate) async fn token(&self, tenant: &str, mut fields: Vec<(String, String)>) -> Result<TokenResponse, Error> {
        fields.push(("client_info".into(), "1".into()));
        if !fields.iter().any(|(k, _)| k == "claims") {
            fields.push(("claims".into(), request_claims(None)));
        }
        let url = self.cloud.token_endpoint(tenant);
        let v = self.post_form(&url, tenant, fields).await?;
        let raw: RawToken = serde_json::from_value(v).map_err(|_| Error::Protocol {
            url: url.clone(),
            message: "the token response has unexpected field types".into(),
        })?;
        let access = raw.access_token.filter(|t| !t.is_empty()).ok_or_else(|| Error::Protocol {
            url: url.clone(),
            message: "the token response has no access_token".into(),
        })?;
        let expires_in = match raw.expires_in {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            Some(Value::String(s)) => s.parse().unwrap_or(0),
            _ => 0,
        };
        let client_info = raw
            .client_info
            .and_then(|c| URL_SAFE_NO_PAD.decode(c.trim_end_matches('=')).ok())
            .and_then(|b| serde_json::from_slice::<ClientInfo>(&b).ok());
        if let Some(h) = &self.transport.har {
            h.add_secret(&access);
            if let Some(r) = &raw.refresh_token {
                h.add_secret(r);
            }
        }
        Ok(TokenResponse {
            claims: claims::decode(&access).ok(),
            access_token: SecretString::from(access),
            refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(SecretString::from),
            id_token: raw.id_token,
            expires_in: expires_in.clamp(60, 60 * 60 * 48),
            scope: raw.scope,
            client_info,
            received_at: Utc::now(),
        })
    }

    /// Redeems a refresh token at `tenant`: the GDAP pattern when `tenant` is a customer of the partner.
    pub(crate) async fn refresh(
        &self,
        tenant: &str,
        client_id: &str,
        refresh_token: &SecretString,
        scope: &str,
        challenge: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let fields = vec![
            ("client_id".to_string(), client_id.to_string()),
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("refresh_token".to_string(), refresh_token.expose_secret().to_string()),
            ("scope".to_string(), scope.to_string()),
            ("claims".to_string(), request_claims(challenge)),
        ];
        self.token(tenant, fields).await
    }

    pub(crate) async fn client_credentials(
        &self,
        tenant: &str,
        client_id: &str,
        credential: &AppCredential,
        challenge: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let mut fields = vec![
            ("client_id".to_string(), client_id.to_string()),
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("scope".to_string(), self.cloud.graph_default_scope()),
            ("claims".to_string(), request_claims(challenge)),
        ];
        match credential {
            AppCredential::Secret(s) => {
                if let Some(h) = &self.transport.har {
                    h.add_secret(s.expose_secret());
                }
                fields.push(("client_secret".into(), s.expose_secret().to_string()));
            }
            AppCredential::Federated(source) => {
                let token = source.token().await?;
                if let Some(h) = &self.transport.har {
                    h.add_secret(token.expose_secret());
                }
                fields.push((
                    "client_assertion_type".into(),
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                fields.push(("client_assertion".into(), token.expose_secret().to_string()));
            }
            AppCredential::Certificate { private_key_pem, certificate_pem, pss } => {
                let assertion = client_assertion(
                    &self.cloud.token_endpoint(tenant),
                    client_id,
                    private_key_pem,
                    certificate_pem,
                    *pss,
                )?;
                fields.push((
                    "client_assertion_type".into(),
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                fields.push(("client_assertion".into(), assertion));
            }
        }
        self.token(tenant, fields).await
    }

    pub(crate) async fn start_device_code(
        &self,
        tenant: &str,
        client_id: &str,
        scope: &str,
    ) -> Result<DeviceCode, Error> {
        let url = self.cloud.devicecode_endpoint(tenant);
        let v = self
            .post_form(&url, tenant, vec![("client_id".into(), client_id.into()), ("scope".into(), scope.into())])
            .await?;
        let mut dc: DeviceCode = serde_json::from_value(v).map_err(|e| Error::Protocol {
            url: url.clone(),
            message: format!("the device code response is incomplete: {e}"),
        })?;
        dc.interval = dc.interval.clamp(1, 60);
        if let Some(h) = &self.transport.har {
            h.add_secret(&dc.device_code);
        }
        Ok(dc)
    }

    /// Polls until the user approves, declines, or the code expires. `slow_down` adds five seconds to the
    /// interval, as RFC 8628 asks.
    pub(crate) async fn poll_device_code(
        &self,
        tenant: &str,
        client_id: &str,
        dc: &DeviceCode,
    ) -> Result<TokenResponse, Error> {
        let deadline = std::time::Instant::now() + Duration::from_secs(dc.expires_in.clamp(10, 3600));
        let mut interval = Duration::from_secs(dc.interval);
        loop {
            tokio::time::sleep(interval).await;
            let fields = vec![
                ("client_id".to_string(), client_id.to_string()),
                ("grant_type".to_string(), "urn:ietf:params:oauth:grant-type:device_code".to_string()),
                ("device_code".to_string(), dc.device_code.clone()),
            ];
            match self.token(tenant, fields).await {
                Ok(t) => return Ok(t),
                Err(Error::Token(e)) if e.error == "authorization_pending" => {}
                Err(Error::Token(e)) if e.error == "slow_down" => interval += Duration::from_secs(5),
                Err(Error::Token(e)) if e.error == "authorization_declined" => {
                    return Err(Error::SignIn("the sign-in was declined in the browser".into()));
                }
                Err(Error::Token(e)) if e.error == "expired_token" || e.error == "code_expired" => {
                    return Err(Error::SignIn(
                        "the device code expired before the sign-in completed; run the command again".into(),
                    ));
                }
                Err(e) => return Err(e),
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::SignIn(
                    "the device code expired before the sign-in completed; run the command again".into(),
                ));
            }
        }
    }

    /// Builds an authorization request with PKCE (S256), a state and a nonce.
    pub(crate) fn authorize_request(
        &self,
        tenant: &str,
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
        login_hint: Option<&str>,
    ) -> AuthorizeRequest {
        let verifier = random_token(32);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = random_token(16);
        let nonce = random_token(16);
        let mut url = format!(
            "{}?{}",
            self.cloud.authorize_endpoint(tenant),
            form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("response_mode", "query")
                .append_pair("scope", scope)
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("prompt", "select_account")
                .finish()
        );
        if let Some(h) = login_hint {
            url.push_str("&login_hint=");
            url.push_str(&form_urlencoded::byte_serialize(h.as_bytes()).collect::<String>());
        }
        AuthorizeRequest {
            url,
            state,
            nonce,
            verifier: SecretString::from(verifier),
            redirect_uri: redirect_uri.to_string(),
        }
    }

    /// Redeems an authorization code and checks the ID token's audience and nonce.
    pub(crate) async fn exchange_code(
        &self,
        tenant: &str,
        client_id: &str,
        code: &str,
        req: &AuthorizeRequest,
        scope: &str,
    ) -> Result<TokenResponse, Error> {
        let fields = vec![
            ("client_id".to_string(), client_id.to_string()),
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), code.to_string()),
            ("redirect_uri".to_string(), req.redirect_uri.clone()),
            ("code_verifier".to_string(), req.verifier.expose_secret().to_string()),
            ("scope".to_string(), scope.to_string()),
        ];
        let t = self.token(tenant, fields).await?;
        let id = t.id_token.as_deref().ok_or_else(|| Error::SignIn("the token response has no ID token".into()))?;
        let payload = claims::payload(id)?;
        if payload.get("nonce").and_then(Value::as_str) != Some(req.nonce.as_str()) {
            return Err(Error::SignIn(
                "the ID token's nonce does not match the request: the response is not for this sign-in".into(),
            ));
        }
        if payload.get("aud").and_then(Value::as_str) != Some(client_id) {
            return Err(Error::SignIn("the ID token was issued to another application".into()));
        }
        Ok(t)
    }
}

/// A client assertion signed with the app's certificate: RS256 with `x5t`, or PS256 with `x5t#S256`.
pub fn client_assertion(
    audience: &str,
    client_id: &str,
    key_pem: &SecretString,
    cert_pem: &str,
    pss: bool,
) -> Result<String, Error> {
    let der = pem_der(cert_pem).ok_or_else(|| Error::Config("the certificate is not PEM".into()))?;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose_secret().as_bytes())
        .map_err(|_| Error::Config("the certificate's private key is not an RSA key in PEM".into()))?;
    let mut header =
        jsonwebtoken::Header::new(if pss { jsonwebtoken::Algorithm::PS256 } else { jsonwebtoken::Algorithm::RS256 });
    if pss {
        header.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(Sha256::digest(&der)));
    } else {
        use sha1::Digest as _;
        header.x5t = Some(URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der)));
    }
    let now = Utc::now().timestamp();
    let claims = serde_json::json!({
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    });
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| Error::Config(format!("cannot sign the client assertion: {e}")))
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body.trim()).ok().filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn federated_sources_round_trip_their_spec() {
        for spec in ["file:/var/run/secrets/azure/tokens/azure-identity-token", "command:cat /tmp/token"] {
            assert_eq!(FederatedSource::parse(spec).map(|s| s.spec()).as_deref(), Some(spec));
        }
        assert_eq!(FederatedSource::parse("file:  "), None);
        assert_eq!(FederatedSource::parse("secret"), None);
    }

    #[tokio::test]
    async fn federated_tokens_come_from_a_file_or_a_command_and_must_be_jwts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "aaa.bbb.ccc\n").unwrap();
        let token = FederatedSource::File(path.clone()).token().await.unwrap();
        assert_eq!(token.expose_secret(), "aaa.bbb.ccc");
        let token = FederatedSource::Command(format!("cat '{}'", path.display())).token().await.unwrap();
        assert_eq!(token.expose_secret(), "aaa.bbb.ccc");
        let missing = FederatedSource::File(dir.path().join("none")).token().await.unwrap_err().to_string();
        assert!(missing.contains("cannot be read"), "{missing}");
        let failing = FederatedSource::Command("echo nope >&2; exit 3".into()).token().await.unwrap_err().to_string();
        assert!(failing.contains("nope"), "{failing}");
        std::fs::write(&path, "secret-value").unwrap();
        let not_jwt = FederatedSource::File(path).token().await.unwrap_err().to_string();
        assert!(not_jwt.contains("did not yield a JWT") && !not_jwt.contains("secret-value"), "{not_jwt}");
    }

    #[test]
    fn codes_are_found_in_descriptions() {
        assert_eq!(aadsts_codes("AADSTS70002: Error. AADSTS50126: bad"), vec![70002, 50126]);
        assert!(aadsts_codes("nothing").is_empty());
        assert!(aadsts_codes("AADSTS").is_empty());
    }

    #[test]
    fn token_errors_keep_microsoft_fields() {
        let body = r#"{"error":"invalid_grant","error_description":"AADSTS50076: Due to a configuration change. Trace ID: t Correlation ID: c Timestamp: 2026-01-01 00:00:00Z","error_codes":[50076],"suberror":"basic_action","claims":"{}","trace_id":"t","correlation_id":"c","timestamp":"2026-01-01 00:00:00Z"}"#;
        let resp = Response {
            status: 400,
            headers: Default::default(),
            body: bytes::Bytes::from(body),
            url: "https://x/t/oauth2/v2.0/token".into(),
            request_id: None,
            client_request_id: "r".into(),
        };
        let e = token_error(&resp, Some("t"));
        assert_eq!(e.code(), Some(50076));
        assert_eq!(e.suberror.as_deref(), Some("basic_action"));
        assert_eq!(e.message(), "AADSTS50076: Due to a configuration change.");
        let html = Response { body: bytes::Bytes::from("<html>proxy error</html>"), status: 502, ..resp };
        let e = token_error(&html, None);
        assert_eq!(e.error, "invalid_response");
        assert!(e.description.contains("HTTP 502"));
    }
}
