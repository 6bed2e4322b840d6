//! Deciding whether a sign-in may get a token, and minting the tokens.
//!
//! Every user grant (authorization code, device code, refresh token, password) ends here, so that the
//! same account, presence, consent and Conditional Access rules apply whichever way a client asks.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::RngExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::catalog::{self, OIDC_SCOPES};
use crate::errors::AadError;
use crate::state::{Authn, RefreshState, Sim, opaque};
use crate::world::{App, GrantControl, PolicyState, PolicyUsers, Tenant, User, World};

/// How many refresh tokens the simulator keeps before forgetting those unused for an hour.
pub(crate) const MAX_REFRESH_TOKENS: usize = 1_000_000;

/// The scopes of a request, split into the identity scopes and the scopes of the one resource asked for:
/// Graph, or (when `api` is set) a web API registered as an app of the world, addressed as
/// `api://{client_id}/{scope}` or `{client_id}/{scope}`, whose tokens a middle tier redeems on behalf of
/// the user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeRequest {
    pub oidc: Vec<String>,
    pub default: bool,
    /// The scope names of the resource (Graph's unless `api` is set).
    pub graph: Vec<String>,
    pub api: Option<Uuid>,
}

/// Parses a `scope` parameter. Unqualified scopes name Graph, as Microsoft assumes.
pub fn parse_scopes(scope: &str, base_url: &str) -> Result<ScopeRequest, AadError> {
    parse_scopes_in(scope, base_url, None)
}

/// Parses a `scope` parameter of a request to `tenant` (its display name, or the segment as given for
/// `common` and `organizations`), which Entra names when a resource is not found there.
pub(crate) fn parse_scopes_in(scope: &str, base_url: &str, tenant: Option<&str>) -> Result<ScopeRequest, AadError> {
    let mut req = ScopeRequest::default();
    let mut graph_named = false;
    for s in scope.split_whitespace() {
        if OIDC_SCOPES.contains(&s) {
            req.oidc.push(s.to_string());
            continue;
        }
        let (resource, name) = match s.rsplit_once('/') {
            Some((r, n)) if r.contains('.') || r.contains(':') || Uuid::parse_str(r).is_ok() => (Some(r), n),
            _ => (None, s),
        };
        let mut api = None;
        if let Some(r) = resource {
            let r = r.trim_end_matches('/');
            let is_graph = catalog::GRAPH_RESOURCES.iter().any(|g| g.eq_ignore_ascii_case(r))
                || r.eq_ignore_ascii_case(base_url.trim_end_matches('/'));
            api = if is_graph { None } else { Uuid::parse_str(r.strip_prefix("api://").unwrap_or(r)).ok() };
            if !is_graph && api.is_none() {
                // The text of the MSALNET live capture `InvalidResourceError500011` ("...was not found in the
                // tenant named Cross Cloud B2B Test Tenant. ...").
                let named = tenant.map(|t| format!(" named {t}")).unwrap_or_default();
                return Err(AadError::bad(
                    "invalid_resource",
                    500011,
                    format!(
                        "The resource principal named {r} was not found in the tenant{named}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
                    ),
                ));
            }
        }
        if name.is_empty() {
            return Err(AadError::bad(
                "invalid_scope",
                70011,
                format!("The provided value for the input parameter 'scope' is not valid. The scope {s} is not valid."),
            ));
        }
        // One resource per request: Entra answers 700022 to scopes of two (protocol reference §2.1,
        // "70011 / 700022 / 28002 | invalid scope / multiple resources").
        let other_resource = match api {
            Some(id) => graph_named || req.api.is_some_and(|a| a != id),
            None => req.api.is_some(),
        };
        if other_resource {
            return Err(AadError::bad(
                "invalid_scope",
                700022,
                "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.".replace("%s", scope),
            ));
        }
        match api {
            Some(id) => req.api = Some(id),
            None => graph_named = true,
        }
        if name == ".default" {
            req.default = true;
        } else {
            req.graph.push(name.to_string());
        }
    }
    if req.default && !req.graph.is_empty() {
        return Err(AadError::bad(
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' does not exist. .default scope can't be combined with resource-specific scopes."
            ),
        ));
    }
    Ok(req)
}

/// What Conditional Access, security defaults and per-user MFA ask of a sign-in.
#[derive(Debug, Default, Clone)]
pub(crate) struct Requirements {
    pub mfa: bool,
    /// The Conditional Access policies that ask for MFA; empty when only per-user MFA, security defaults or
    /// the partner rule ask for it, which Microsoft's claims challenge does not name.
    pub mfa_policies: Vec<Uuid>,
    pub block: Option<Uuid>,
    /// Sign-in frequency in hours and whether the policy also asks for MFA.
    pub sign_in_frequency: Option<(u32, bool)>,
}

/// Evaluates the policies of `resource` for `user` (of `home`), signing in from `ip`.
pub(crate) fn requirements(
    world: &World,
    resource: &Tenant,
    home: &Tenant,
    user: &User,
    ip: IpAddr,
    now: DateTime<Utc>,
) -> Requirements {
    let foreign = resource.id != home.id;
    let roles: Vec<String> =
        if foreign { world.gdap_roles(home, user.id, resource.id, now) } else { user.roles.clone() };
    let mut req = Requirements::default();
    for p in resource.ca_policies.iter().filter(|p| p.state == PolicyState::Enabled) {
        let included = match &p.users {
            PolicyUsers::All => true,
            PolicyUsers::Roles(r) => r.iter().any(|r| roles.contains(r)),
            PolicyUsers::Users(u) => !foreign && u.contains(&user.id),
        };
        if !included || p.exclude_users.contains(&user.id) || (foreign && p.exclude_service_providers) {
            continue;
        }
        if let Some(locations) = &p.outside_locations {
            let inside = resource
                .named_locations
                .iter()
                .filter(|l| locations.contains(&l.id))
                .any(|l| l.ranges.iter().any(|r| r.contains(ip)));
            if inside {
                continue;
            }
        }
        match p.grant {
            GrantControl::Block => {
                req.block.get_or_insert(p.id);
            }
            GrantControl::Mfa => {
                req.mfa = true;
                req.mfa_policies.push(p.id);
            }
            GrantControl::None => {}
        }
        if let Some(h) = p.sign_in_frequency_hours {
            let stricter = req.sign_in_frequency.is_none_or(|(cur, _)| h < cur);
            if stricter {
                req.sign_in_frequency = Some((h, p.grant == GrantControl::Mfa));
            }
        }
    }
    if !foreign {
        if resource.security_defaults && !user.roles.is_empty() {
            req.mfa = true;
        }
        if user.per_user_mfa != crate::world::PerUserMfa::Disabled {
            req.mfa = true;
        }
    } else {
        // Partner delegated administrators must have completed Microsoft MFA to act in a customer tenant.
        req.mfa = true;
    }
    req
}

/// A granted set of delegated Graph scopes.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub scp: Vec<String>,
}

/// Checks the app's consent in `resource` and returns the scopes the token will carry.
pub(crate) fn consented_scopes(
    _world: &World,
    app: &App,
    resource: &Tenant,
    home: &Tenant,
    req: &ScopeRequest,
) -> Result<Grant, AadError> {
    let foreign = resource.id != home.id;
    if resource.id != app.home_tenant && !app.multi_tenant {
        return Err(app_not_in_tenant(app, resource));
    }
    let Some(sp) = resource.service_principal(app.client_id) else {
        if foreign {
            return Err(AadError::bad(
                "invalid_grant",
                90099,
                format!(
                    "The application '{}' ({}) has not been authorized in the tenant '{}'. Applications must be authorized to access the customer tenant before partner delegated administrators can use them. Provide pre-consent or execute the appropriate Partner Center API to authorize the application.",
                    app.client_id, app.display_name, resource.id
                ),
            ));
        }
        return Err(consent_required(app));
    };
    let granted: Vec<String> = sp.delegated.iter().filter(|s| !OIDC_SCOPES.contains(&s.as_str())).cloned().collect();
    if req.default {
        if granted.is_empty() && !req.oidc.is_empty() {
            return Ok(Grant { scp: Vec::new() });
        }
        return Ok(Grant { scp: granted });
    }
    let missing: Vec<&String> =
        req.graph.iter().filter(|s| !granted.iter().any(|g| g.eq_ignore_ascii_case(s))).collect();
    if !missing.is_empty() {
        return Err(consent_required(app));
    }
    Ok(Grant { scp: req.graph.clone() })
}

pub(crate) fn consent_required(app: &App) -> AadError {
    AadError::bad(
        "invalid_grant",
        65001,
        format!("The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource.", app.client_id, app.display_name),
    )
    .with_suberror("consent_required")
}

pub(crate) fn app_not_in_tenant(app: &App, resource: &Tenant) -> AadError {
    AadError::bad(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            app.client_id, resource.display_name
        ),
    )
}

/// Account-level checks that apply to every grant.
pub(crate) fn check_account(user: &User) -> Result<(), AadError> {
    if !user.enabled {
        return Err(AadError::bad("invalid_grant", 50057, "The user account is disabled."));
    }
    if user.locked {
        return Err(AadError::bad(
            "invalid_grant",
            50053,
            "Your account is locked because you've tried to sign in too many times with an incorrect user ID or password.",
        ));
    }
    Ok(())
}

/// Presence of the user in `resource`: home membership, or a GDAP role for a partner user.
pub(crate) fn check_presence(
    world: &World,
    resource: &Tenant,
    home: &Tenant,
    user: &User,
    app: &App,
    now: DateTime<Utc>,
) -> Result<(), AadError> {
    if resource.id == home.id {
        return Ok(());
    }
    if world.gdap_roles(home, user.id, resource.id, now).is_empty() {
        return Err(AadError::bad(
            "invalid_grant",
            50020,
            format!(
                "User account '{}' from identity provider 'https://sts.windows.net/{}/' does not exist in tenant '{}' and cannot access the application '{}'({}) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.",
                user.upn, home.id, resource.display_name, app.client_id, app.display_name
            ),
        ));
    }
    if user.risky {
        return Err(AadError::bad(
            "invalid_grant",
            530034,
            "Delegated administrator access was blocked because of account risk in the home tenant. Remediate the user risk in the partner tenant and sign in again.",
        ));
    }
    Ok(())
}

/// Applies the requirements to a non-interactive grant, whose sign-in cannot prompt.
///
/// The OAuth `error` of a strong-authentication failure depends on the grant: the refresh-token and
/// on-behalf-of grants answer `interaction_required` with the Conditional Access `claims` the client
/// must send back (ENTRA `v2-oauth2-on-behalf-of-flow.md`, "Error response example"), while the password
/// grant answers `invalid_grant` without claims, since nothing can be prompted there (protocol reference
/// §2.1, 50076 row: "interaction_required (v2 refresh) or invalid_grant (ROPC/v1), suberror basic_action").
pub(crate) fn enforce(
    req: &Requirements,
    authn: &Authn,
    user: &User,
    now: DateTime<Utc>,
    kind: GrantKind,
) -> Result<(), AadError> {
    let password = kind == GrantKind::Password;
    let strong_auth_error = if password { "invalid_grant" } else { "interaction_required" };
    if let Some(policy) = req.block {
        let claims = json!({ "access_token": { "capolids": { "essential": true, "values": [policy.to_string()] } } });
        return Err(AadError::bad(
            "invalid_grant",
            53003,
            "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
        )
        .with_suberror("message_only")
        .with_claims(claims.to_string()));
    }
    if req.mfa && authn.mfa_at.is_none() {
        let error = if user.mfa_registered() {
            AadError::bad(
                strong_auth_error,
                50076,
                format!("Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{}'.", catalog::GRAPH_APP_ID),
            )
        } else {
            AadError::bad(
                strong_auth_error,
                50079,
                format!("Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '{}'.", catalog::GRAPH_APP_ID),
            )
        }
        .with_suberror("basic_action");
        if req.mfa_policies.is_empty() || password {
            return Err(error);
        }
        let claims = json!({ "access_token": { "capolids": { "essential": true, "values": req.mfa_policies.iter().map(Uuid::to_string).collect::<Vec<_>>() } } });
        return Err(error.with_claims(claims.to_string()));
    }
    if let Some((hours, mfa)) = req.sign_in_frequency {
        let limit = Duration::hours(i64::from(hours));
        if mfa && authn.mfa_at.is_some_and(|m| now - m > limit) {
            return Err(AadError::bad(
                strong_auth_error,
                50078,
                format!("Presented multi-factor authentication has expired due to policies configured by your administrator, you must refresh your multi-factor authentication to access '{}'.", catalog::GRAPH_APP_ID),
            )
            .with_suberror("basic_action"));
        }
        if now - authn.auth_time > limit {
            return Err(AadError::bad(
                "invalid_grant",
                70043,
                format!("The refresh token has expired or is invalid due to sign-in frequency checks by conditional access. The token was issued on {} and the maximum allowed lifetime for this request is {}.", crate::errors::dotnet_time(authn.auth_time), limit.num_seconds()),
            )
            .with_suberror("bad_token"));
        }
    }
    Ok(())
}

/// Everything about a user grant that the token depends on.
pub(crate) struct UserGrant<'a> {
    pub authn: Authn,
    pub client_id: Uuid,
    pub resource_tenant: Uuid,
    pub scopes: &'a ScopeRequest,
    pub nonce: Option<String>,
    pub client_ip: IpAddr,
    pub appidacr: &'static str,
    pub client_info: bool,
    pub kind: GrantKind,
    /// The client declared the `cp1` capability: the Graph token carries `xms_cc` and lives a day.
    pub cae: bool,
}

/// The lifetime of a token for a client that declared `cp1`: Entra gives them 20 to 28 hours, and the
/// recorded answer (`payloads/token_response_client_credentials_recorded.json`) says 86399 seconds.
pub(crate) const CAE_LIFETIME: Duration = Duration::hours(24);

/// The grant a user token is asked for, which decides whether policies are checked again and how
/// Entra words a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantKind {
    AuthorizationCode,
    DeviceCode,
    RefreshToken,
    Password,
    OnBehalfOf,
}

impl GrantKind {
    /// The sign-in behind the grant could prompt (MFA, consent) and already did: policies are not
    /// checked again.
    fn interactive(self) -> bool {
        matches!(self, GrantKind::AuthorizationCode | GrantKind::DeviceCode)
    }
}

/// Runs every check for a user grant and mints the token response.
pub(crate) fn issue_user(sim: &Sim, grant: UserGrant<'_>) -> Result<Value, AadError> {
    let now = sim.now();
    let world = sim.world();
    let app = world
        .app(grant.client_id)
        .ok_or_else(|| unknown_client(grant.client_id, &grant.resource_tenant.to_string()))?;
    let resource =
        world.tenant(grant.resource_tenant).ok_or_else(|| tenant_not_found(&grant.resource_tenant.to_string()))?;
    let home =
        world.tenant(grant.authn.home_tenant).ok_or_else(|| tenant_not_found(&grant.authn.home_tenant.to_string()))?;
    let user = home
        .user(grant.authn.user)
        .ok_or_else(|| AadError::bad("invalid_grant", 50034, "The user account does not exist in the directory."))?;
    check_account(user)?;
    if grant.authn.auth_time < user.sessions_valid_after {
        return Err(revoked());
    }
    check_presence(&world, resource, home, user, app, now)?;
    // A web API of the world needs its service principal in the tenant; consent to its scopes is not
    // modelled (docs/simulator.md, "Known limits").
    let consent = match grant.scopes.api {
        Some(api) => {
            if resource.service_principal(api).is_none() {
                return Err(AadError::bad(
                    "invalid_resource",
                    500011,
                    format!(
                        "The resource principal named api://{api} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                        resource.display_name
                    ),
                ));
            }
            Grant { scp: grant.scopes.graph.clone() }
        }
        None => consented_scopes(&world, app, resource, home, grant.scopes)?,
    };
    if !grant.kind.interactive() {
        let req = requirements(&world, resource, home, user, grant.client_ip, now);
        enforce(&req, &grant.authn, user, now, grant.kind)?;
    }
    let foreign = resource.id != home.id;
    let wids: Vec<String> =
        if foreign { world.gdap_roles(home, user.id, resource.id, now) } else { user.roles.clone() };
    let key = sim.signing_key_at(now, world.settings.key_rotation_minutes).ok_or_else(server_error)?;
    let lifetime = if grant.cae && grant.scopes.api.is_none() {
        CAE_LIFETIME
    } else {
        Duration::minutes(i64::from(rand::rng().random_range(
            world.settings.token_lifetime_min
                ..=world.settings.token_lifetime_max.max(world.settings.token_lifetime_min),
        )))
    };
    let iat = now.timestamp();
    let exp = (now + lifetime).timestamp();
    let mut amr = vec!["pwd".to_string()];
    if grant.authn.mfa_at.is_some() {
        amr.push("mfa".to_string());
    }
    let mut at = json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{}/", resource.id),
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "acct": 0,
        "acr": "1",
        "aio": opaque("AVQAq/", 24),
        "amr": amr,
        "app_displayname": app.display_name,
        "appid": app.client_id.to_string(),
        "appidacr": grant.appidacr,
        "family_name": user.surname,
        "given_name": user.given_name,
        "idtyp": "user",
        "ipaddr": grant.client_ip.to_string(),
        "name": user.display_name,
        "oid": user.id.to_string(),
        "platf": "3",
        "puid": format!("{:016X}", u64::from_le_bytes(user.id.as_bytes()[..8].try_into().unwrap_or([0; 8]))),
        "rh": opaque("1.A", 20),
        "scp": consent.scp.join(" "),
        "sub": pairwise_sub(user.id, app.client_id),
        "tenant_region_scope": "NA",
        "tid": resource.id.to_string(),
        "unique_name": user.upn,
        "upn": user.upn,
        "uti": opaque("", 16),
        "ver": "1.0",
        "wids": wids,
        "xms_tcdt": home.created.timestamp(),
    });
    if foreign {
        at["idp"] = json!(format!("https://sts.windows.net/{}/", home.id));
    }
    if grant.cae {
        at["xms_cc"] = json!(["cp1"]);
    }
    let access_token = match grant.scopes.api {
        Some(api) => {
            // A v2 access token for the web API, as Entra issues for an app that accepts v2 tokens
            // (ENTRA `access-token-claims-reference.md`: `aud` the API's client id, `azp`/`azpacr`, no `amr`).
            let uti = opaque("", 16);
            let mut v2 = json!({
                "aud": api.to_string(),
                "iss": format!("{}/{}/v2.0", sim.base_url, resource.id),
                "iat": iat,
                "nbf": iat,
                "exp": exp,
                "aio": opaque("AWQAm/", 24),
                "azp": app.client_id.to_string(),
                "azpacr": grant.appidacr,
                "name": user.display_name,
                "oid": user.id.to_string(),
                "preferred_username": user.upn,
                "rh": opaque("1.A", 20),
                "scp": consent.scp.join(" "),
                "sub": pairwise_sub(user.id, api),
                "tid": resource.id.to_string(),
                "uti": uti,
                "ver": "2.0",
            });
            if foreign {
                v2["idp"] = json!(format!("https://sts.windows.net/{}/", home.id));
            }
            let mut sessions = sim.sessions();
            if sessions.api_tokens.len() >= MAX_REFRESH_TOKENS {
                sessions.api_tokens.retain(|_, (_, e)| *e > now);
            }
            sessions.api_tokens.insert(uti, (grant.authn.clone(), now + lifetime));
            drop(sessions);
            key.sign(&v2, None).map_err(|_| server_error())?
        }
        None => key.sign(&at, Some(&opaque("AQAB", 48))).map_err(|_| server_error())?,
    };
    let mut response = json!({
        "token_type": "Bearer",
        "scope": echo_scope(grant.scopes, &consent),
        "expires_in": lifetime.num_seconds() - 1,
        "ext_expires_in": lifetime.num_seconds() - 1,
        "access_token": access_token,
    });
    if grant.scopes.oidc.iter().any(|s| s == "openid") {
        let id = json!({
            "aud": app.client_id.to_string(),
            "iss": format!("{}/{}/v2.0", sim.base_url, resource.id),
            "iat": iat,
            "nbf": iat,
            "exp": (now + Duration::hours(1)).timestamp(),
            "aio": opaque("AUQAu/", 24),
            "name": user.display_name,
            "nonce": grant.nonce,
            "oid": user.id.to_string(),
            "preferred_username": user.upn,
            "rh": opaque("1.A", 20),
            "sub": pairwise_sub(user.id, app.client_id),
            "tid": resource.id.to_string(),
            "uti": opaque("", 16),
            "ver": "2.0",
        });
        let mut id = id;
        identity_claims(&mut id, app, resource, user, &sim.base_url);
        let id_token = key.sign(&id, None).map_err(|_| server_error())?;
        response["id_token"] = json!(id_token);
    }
    if grant.client_info {
        let info = json!({ "uid": user.id.to_string(), "utid": home.id.to_string() });
        response["client_info"] = json!(URL_SAFE_NO_PAD.encode(info.to_string()));
    }
    let scopes_for_refresh: Vec<String> = match grant.scopes.api {
        Some(api) if grant.scopes.default => vec![format!("api://{api}/.default")],
        Some(api) => grant.scopes.graph.iter().map(|s| format!("api://{api}/{s}")).collect(),
        None if grant.scopes.default => vec!["https://graph.microsoft.com/.default".to_string()],
        None => grant.scopes.graph.clone(),
    };
    drop(world);
    if grant.scopes.oidc.iter().any(|s| s == "offline_access") || grant.scopes.default {
        let rt = opaque("1.AXsim", 96);
        let mut sessions = sim.sessions();
        // Every grant issues a new refresh token and the old ones stay valid, as at Microsoft; under
        // sustained load the map is bounded by forgetting tokens unused for an hour.
        if sessions.refresh_tokens.len() >= MAX_REFRESH_TOKENS {
            sessions.refresh_tokens.retain(|_, s| now - s.last_used < Duration::hours(1));
        }
        sessions.refresh_tokens.insert(
            rt.clone(),
            RefreshState {
                client_id: grant.client_id,
                authn: grant.authn.clone(),
                scopes: scopes_for_refresh,
                issued: now,
                last_used: now,
            },
        );
        response["refresh_token"] = json!(rt);
    }
    if let Some(u) = sim.world_mut().tenant_mut(grant.authn.home_tenant).and_then(|t| t.user_mut(grant.authn.user)) {
        u.last_sign_in = Some(now);
    }
    Ok(response)
}

/// The `scope` echoed in a token response: the granted Graph scopes with their resource prefix, the
/// requested `.default` scope and the requested identity scopes, so that client caches match them.
fn echo_scope(req: &ScopeRequest, grant: &Grant) -> String {
    let resource = match req.api {
        Some(api) => format!("api://{api}"),
        None => "https://graph.microsoft.com".to_string(),
    };
    let mut out: Vec<String> = grant.scp.iter().map(|s| format!("{resource}/{s}")).collect();
    if req.default {
        out.push(format!("{resource}/.default"));
    }
    out.extend(req.oidc.iter().filter(|s| *s != "offline_access").cloned());
    out.join(" ")
}

fn pairwise_sub(user: Uuid, app: Uuid) -> String {
    let digest = Sha256::digest(format!("{user}/{app}").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..32])
}

pub(crate) fn revoked() -> AadError {
    AadError::bad(
        "invalid_grant",
        50173,
        "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
    )
    .with_suberror("bad_token")
}

/// 700016 for an app the directory does not know, naming the directory as Entra does (MSALNET live capture
/// `WrongTenantError700016`: "...was not found in the directory 'MSIDLAB4'. ...").
pub(crate) fn unknown_client(client_id: impl std::fmt::Display, directory: &str) -> AadError {
    AadError::bad(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{directory}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

pub(crate) fn tenant_not_found(tenant: &str) -> AadError {
    AadError::bad(
        "invalid_tenant",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

pub(crate) fn server_error() -> AadError {
    AadError::new(500, "server_error", 90033, "A transient error has occurred. Please try again.")
}

/// Groups past which Entra leaves the `groups` claim out of a JWT and points at Graph instead.
const GROUPS_OVERAGE: usize = 200;

/// The security groups `user` belongs to in `tenant`, directly or through nested groups.
fn transitive_groups(tenant: &crate::world::Tenant, user: Uuid) -> Vec<Uuid> {
    let mut found: Vec<Uuid> = Vec::new();
    let mut frontier = vec![user];
    while let Some(member) = frontier.pop() {
        for g in tenant.groups.iter().filter(|g| g.members.contains(&member)) {
            if !found.contains(&g.id) {
                found.push(g.id);
                frontier.push(g.id);
            }
        }
    }
    found.retain(|id| tenant.groups.iter().any(|g| g.id == *id && g.security_enabled));
    found
}

/// The app roles and groups of a user signing in to an app of its own tenant, as Entra adds them
/// to the ID token: `roles` (values of the roles assigned to the user or to a group it is a direct
/// member of) and, when the app asks for group claims, `groups`, or past 200 groups the overage
/// claims that send the client to Graph.
fn identity_claims(
    id: &mut Value,
    app: &crate::world::App,
    tenant: &crate::world::Tenant,
    user: &crate::world::User,
    base_url: &str,
) {
    if tenant.id != app.home_tenant {
        return;
    }
    let direct_groups: Vec<Uuid> =
        tenant.groups.iter().filter(|g| g.members.contains(&user.id)).map(|g| g.id).collect();
    let roles: Vec<&str> = app
        .app_roles
        .iter()
        .filter(|r| r.assigned.iter().any(|a| *a == user.id || direct_groups.contains(a)))
        .map(|r| r.value.as_str())
        .collect();
    if !roles.is_empty() {
        id["roles"] = json!(roles);
    }
    if app.group_claims {
        let groups = transitive_groups(tenant, user.id);
        if groups.len() > GROUPS_OVERAGE {
            id["_claim_names"] = json!({ "groups": "src1" });
            id["_claim_sources"] = json!({
                "src1": { "endpoint": format!("{base_url}/v1.0/users/{}/getMemberObjects", user.id) }
            });
        } else {
            id["groups"] = json!(groups.iter().map(Uuid::to_string).collect::<Vec<_>>());
        }
    }
}
