//! OpenID Connect sign-in of people to a web application: the platform's operators.
//!
//! The authorization code flow with PKCE for a confidential client (the server's own app
//! registration in the MSP's tenant), and the ID token checked as a relying party must before any
//! of its claims is believed: the signature against the keys the tenant publishes (fetched from
//! the tenant's OpenID configuration on the cloud's login host, never from a URL the token names),
//! the issuer, the audience, the nonce of this sign-in, and the lifetime.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::http::{Request, Transport};
use crate::oauth::OAuth;
use crate::{Cloud, Error};

/// The scopes of an operator sign-in: who the person is, nothing more.
const SCOPE: &str = "openid profile";

/// Clock skew tolerated in the ID token's dates.
const LEEWAY_SECONDS: u64 = 300;

/// Signs people in to one app of one tenant.
pub struct OidcClient {
    oauth: OAuth,
    tenant: String,
    client_id: String,
    secret: Option<SecretString>,
}

/// A sign-in in progress: where to send the browser, and what its return must match.
pub struct SignInRequest {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: SecretString,
    pub redirect_uri: String,
}

/// Who signed in, from a validated ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The person's object id in its tenant (`oid`): stable, unlike names.
    pub oid: String,
    pub tenant_id: String,
    pub name: String,
    /// `preferred_username`, usually the UPN.
    pub username: Option<String>,
    /// The values of the app roles assigned to the person (`roles`).
    pub roles: Vec<String>,
    /// The ids of the person's security groups (`groups`), when the app asks for them.
    pub groups: Vec<String>,
    /// The person is in more groups than a token carries (Entra's overage claim); `groups` is
    /// then empty and only Graph knows them.
    pub groups_overage: bool,
}

fn sign_in_error(what: impl Into<String>) -> Error {
    Error::SignIn(what.into())
}

impl OidcClient {
    /// A client of `client_id` in `tenant` (its id or a verified domain; not `common` or
    /// `organizations`: operators sign in to the MSP's own tenant, whose issuer is checked).
    pub fn new(
        cloud: Cloud,
        transport: Transport,
        tenant: &str,
        client_id: &str,
        secret: Option<SecretString>,
    ) -> Result<OidcClient, Error> {
        let tenant = tenant.trim();
        if tenant.is_empty() || ["common", "organizations", "consumers"].contains(&tenant.to_ascii_lowercase().as_str())
        {
            return Err(Error::Config(format!(
                "operator sign-in needs the MSP's own tenant (its id or domain), not {tenant:?}"
            )));
        }
        Ok(OidcClient {
            oauth: OAuth::new(cloud, transport),
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            secret,
        })
    }

    /// Starts a sign-in that returns to `redirect_uri`.
    pub fn begin(&self, redirect_uri: &str) -> SignInRequest {
        let r = self.oauth.authorize_request(&self.tenant, &self.client_id, redirect_uri, SCOPE, None);
        SignInRequest { url: r.url, state: r.state, nonce: r.nonce, verifier: r.verifier, redirect_uri: r.redirect_uri }
    }

    /// Redeems the code the browser brought back and validates the ID token. The caller has
    /// already checked that the returned `state` is this request's.
    pub async fn finish(&self, code: &str, req: &SignInRequest) -> Result<Identity, Error> {
        let mut fields = vec![
            ("client_id".to_string(), self.client_id.clone()),
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), code.to_string()),
            ("redirect_uri".to_string(), req.redirect_uri.clone()),
            ("code_verifier".to_string(), req.verifier.expose_secret().to_string()),
            ("scope".to_string(), SCOPE.to_string()),
        ];
        if let Some(secret) = &self.secret {
            fields.push(("client_secret".to_string(), secret.expose_secret().to_string()));
        }
        let tokens = self.oauth.token(&self.tenant, fields).await?;
        let id_token = tokens.id_token.as_deref().ok_or_else(|| sign_in_error("the token response has no ID token"))?;
        self.validate(id_token, &req.nonce).await
    }

    async fn get_json(&self, url: &str) -> Result<Value, Error> {
        let parsed = Url::parse(url).map_err(|e| Error::Config(format!("bad URL {url}: {e}")))?;
        let resp = self.oauth.transport.send(Request::get(parsed)).await?;
        if resp.status != 200 {
            return Err(Error::Protocol { url: resp.url, message: format!("HTTP {}", resp.status) });
        }
        serde_json::from_slice(&resp.body)
            .map_err(|_| Error::Protocol { url: resp.url, message: "the answer is not JSON".into() })
    }

    /// Checks an ID token's signature, issuer, audience, dates and nonce, and reads who it names.
    pub async fn validate(&self, id_token: &str, nonce: &str) -> Result<Identity, Error> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| sign_in_error(format!("the ID token is malformed: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(sign_in_error(format!("the ID token is signed with {:?}, not RS256", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| sign_in_error("the ID token names no signing key"))?;
        let login = self.oauth.cloud.login_url.as_str().trim_end_matches('/').to_string();
        let config = self.get_json(&format!("{login}/{}/v2.0/.well-known/openid-configuration", self.tenant)).await?;
        let issuer =
            config["issuer"].as_str().ok_or_else(|| sign_in_error("the OpenID configuration has no issuer"))?;
        let jwks_uri =
            config["jwks_uri"].as_str().ok_or_else(|| sign_in_error("the OpenID configuration has no jwks_uri"))?;
        // Keys are only ever fetched from the cloud's own login host.
        let same_host = Url::parse(jwks_uri)
            .ok()
            .is_some_and(|u| u.host_str() == self.oauth.cloud.login_url.host_str() && u.scheme() == "https");
        if !same_host {
            return Err(sign_in_error(format!("the signing keys' address {jwks_uri} is not on the login host")));
        }
        let jwks = self.get_json(jwks_uri).await?;
        let key = jwks["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"].as_str() == Some(kid.as_str())))
            .ok_or_else(|| sign_in_error(format!("no published signing key {kid}")))?;
        let (n, e) = (key["n"].as_str(), key["e"].as_str());
        let (Some(n), Some(e)) = (n, e) else {
            return Err(sign_in_error(format!("signing key {kid} is not an RSA key")));
        };
        let decoding =
            DecodingKey::from_rsa_components(n, e).map_err(|e| sign_in_error(format!("signing key {kid}: {e}")))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[self.client_id.as_str()]);
        validation.set_issuer(&[issuer]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
        let data = jsonwebtoken::decode::<Value>(id_token, &decoding, &validation)
            .map_err(|e| sign_in_error(format!("the ID token did not validate: {e}")))?;
        let claims = data.claims;
        if claims["nonce"].as_str() != Some(nonce) {
            return Err(sign_in_error("the ID token's nonce is not this sign-in's: it was issued for another one"));
        }
        let text = |name: &str| claims[name].as_str().map(str::to_string);
        let list = |name: &str| -> Vec<String> {
            claims[name]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        Ok(Identity {
            oid: text("oid").ok_or_else(|| sign_in_error("the ID token has no oid"))?,
            tenant_id: text("tid").ok_or_else(|| sign_in_error("the ID token has no tid"))?,
            name: text("name").or_else(|| text("preferred_username")).unwrap_or_default(),
            username: text("preferred_username"),
            roles: list("roles"),
            groups: list("groups"),
            groups_overage: claims["_claim_names"]["groups"].is_string(),
        })
    }
}
