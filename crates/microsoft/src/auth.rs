//! Getting a token for a tenant: the signed-in account's refresh token redeemed at that tenant
//! (delegated, the GDAP pattern when the tenant is a customer), or an app's client credentials in that
//! tenant (app-only). Tokens come from the cache when they still have five minutes to live.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;

use crate::cache::{StoredToken, TokenCache, TokenKind, TokenStore};
use crate::claims::Claims;
use crate::cloud::Cloud;
use crate::error::Error;
use crate::http::Transport;
use crate::oauth::{AppCredential, DeviceCode, OAuth, TokenResponse};

/// The signed-in user: the partner user, or a user of a customer signed in directly.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    /// `oid.tid`, as MSAL names accounts.
    pub home_account_id: String,
    pub home_tenant: String,
    pub oid: String,
    pub upn: Option<String>,
    pub client_id: String,
    pub signed_in_at: Option<DateTime<Utc>>,
    pub role: AccountRole,
    /// The claims of the access token the sign-in returned.
    pub claims: Option<Claims>,
}

/// Whom an account signs in for: the partner (whose refresh token is redeemed at every customer through
/// GDAP), or one customer inspected directly by one of its own users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountRole {
    Partner,
    Direct,
}

/// How to get a token for a tenant.
#[derive(Debug, Clone)]
pub enum Grant {
    /// The partner account's refresh token, redeemed at the tenant.
    Partner,
    /// The refresh token of an account signed in directly in its own tenant (`oid.tid`).
    Direct { home_account: String },
    /// Client credentials of an app registered or consented in the tenant.
    App { client_id: String, credential: AppCredential },
}

/// An access token and what diagnosis needs to know about it.
#[derive(Clone)]
pub struct AccessToken {
    pub secret: SecretString,
    pub claims: Option<Claims>,
    pub issued_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub from_cache: bool,
    pub key: String,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("from_cache", &self.from_cache)
            .finish()
    }
}

pub struct Authenticator {
    pub cloud: Cloud,
    pub oauth: OAuth,
    pub cache: TokenCache,
    /// The app that signs users in (the MSP's multi-tenant app).
    pub client_id: String,
}

impl Authenticator {
    pub fn new(
        cloud: Cloud,
        transport: Transport,
        store: Arc<dyn TokenStore>,
        client_id: impl Into<String>,
    ) -> Authenticator {
        Authenticator {
            oauth: OAuth::new(cloud.clone(), transport),
            cloud,
            cache: TokenCache::new(store),
            client_id: client_id.into(),
        }
    }

    fn cloud_key(&self) -> String {
        self.cloud.cache_key()
    }

    pub(crate) fn login_scope(&self) -> String {
        format!("{} offline_access openid profile", self.cloud.graph_default_scope())
    }

    fn account_key(&self, role: AccountRole, home_tenant: &str) -> String {
        let base = TokenCache::account_key(&self.cloud_key(), &self.client_id);
        match role {
            AccountRole::Partner => format!("{base}|partner"),
            AccountRole::Direct => format!("{base}|direct|{}", home_tenant.to_ascii_lowercase()),
        }
    }

    fn account_of(t: StoredToken) -> Account {
        let claims = t.claims.clone();
        Account {
            home_account_id: t.home_account.clone().unwrap_or_default(),
            home_tenant: t.tenant_id.clone(),
            oid: claims.as_ref().and_then(|c| c.oid.clone()).unwrap_or_default(),
            upn: claims.as_ref().and_then(|c| c.upn.clone()),
            client_id: t.client_id.clone(),
            signed_in_at: t.issued_at,
            role: if t.key.ends_with("|partner") { AccountRole::Partner } else { AccountRole::Direct },
            claims,
        }
    }

    /// The partner account signed in with this app, if any. A partner signed in for another
    /// identity of this cloud (same name and sign-in host, another Graph URL, resource or port) is an
    /// error that says so: its tokens are never used here, and a new sign-in is the way on.
    pub async fn account(&self) -> Result<Option<Account>, Error> {
        if let Some(account) = self.current_account().await? {
            return Ok(Some(account));
        }
        let other = self.cache.list().await?.into_iter().find(|t| {
            t.kind == TokenKind::Account
                && t.client_id == self.client_id
                && t.key.ends_with("|partner")
                && t.key.starts_with(&format!("{}#", self.cloud.same_name_prefix()))
        });
        match other {
            Some(_) => Err(Error::SignIn(format!(
                "the partner signed in to another configuration of cloud {:?}; the one in use now is {}. Tokens are never sent to a cloud other than the one they were obtained from: run `tenantscope login` again",
                self.cloud.name,
                self.cloud.identity()
            ))),
            None => Ok(None),
        }
    }

    /// The partner account signed in with this app for exactly this cloud, if any.
    async fn current_account(&self) -> Result<Option<Account>, Error> {
        Ok(self.cache.get(&self.account_key(AccountRole::Partner, "")).await?.map(Self::account_of))
    }

    /// The account signed in directly for `home_tenant`, if any.
    pub(crate) async fn direct_account(&self, home_tenant: &str) -> Result<Option<Account>, Error> {
        Ok(self.cache.get(&self.account_key(AccountRole::Direct, home_tenant)).await?.map(Self::account_of))
    }

    /// Every signed-in account: the partner and the direct ones.
    pub async fn accounts(&self) -> Result<Vec<Account>, Error> {
        let mut out = Vec::new();
        for info in self.cache.list().await?.into_iter().filter(|t| {
            t.kind == TokenKind::Account
                && t.client_id == self.client_id
                && t.key.starts_with(&format!("{}|", self.cloud_key()))
        }) {
            if let Some(t) = self.cache.get(&info.key).await? {
                out.push(Self::account_of(t));
            }
        }
        Ok(out)
    }

    /// Signs in with the device-code flow; `show` tells the user where to go and what to type.
    pub async fn login_device_code(
        &self,
        tenant: &str,
        role: AccountRole,
        show: impl FnOnce(&DeviceCode),
    ) -> Result<Account, Error> {
        let scope = self.login_scope();
        let dc = self.oauth.start_device_code(tenant, &self.client_id, &scope).await?;
        show(&dc);
        let t = self.oauth.poll_device_code(tenant, &self.client_id, &dc).await?;
        self.remember_sign_in(t, role).await
    }

    /// Signs in with the authorization-code flow and a loopback redirect; `open` shows the URL.
    pub async fn login_browser(
        &self,
        tenant: &str,
        role: AccountRole,
        timeout: Duration,
        open: impl FnOnce(&str),
    ) -> Result<Account, Error> {
        let scope = self.login_scope();
        let t = self.oauth.interactive(tenant, &self.client_id, &scope, timeout, open).await?;
        self.remember_sign_in(t, role).await
    }

    /// Forgets every token of an account (its refresh token and the access tokens minted from it).
    pub async fn forget(&self, home_account: &str) -> Result<u64, Error> {
        let mut n = 0;
        for info in self.cache.list().await? {
            if info.home_account.as_deref() == Some(home_account) {
                self.cache.remove(&info.key).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Keeps the account, its refresh token and its first access token.
    async fn remember_sign_in(&self, t: TokenResponse, role: AccountRole) -> Result<Account, Error> {
        let claims = t.claims.clone();
        let (oid, tid) = match (&t.client_info, &claims) {
            (Some(ci), _) => (ci.uid.clone(), ci.utid.clone()),
            (None, Some(c)) => (c.oid.clone().unwrap_or_default(), c.tid.clone().unwrap_or_default()),
            (None, None) => {
                return Err(Error::SignIn("the sign-in returned neither client_info nor a readable token".into()));
            }
        };
        let home = format!("{oid}.{tid}");
        let rt = t.refresh_token.clone().ok_or_else(|| {
            Error::SignIn("the sign-in returned no refresh token (offline_access not granted)".into())
        })?;
        let now = Utc::now();
        let cloud = self.cloud_key();
        // The previous account in this role must not keep serving tokens.
        let previous = match role {
            AccountRole::Partner => self.current_account().await?,
            AccountRole::Direct => self.direct_account(&tid).await?,
        };
        if let Some(p) = previous {
            self.forget(&p.home_account_id).await?;
        }
        self.forget(&home).await?;
        self.cache
            .put(StoredToken {
                key: TokenCache::refresh_key(&cloud, &home, &self.client_id),
                kind: TokenKind::Refresh,
                tenant_id: "*".into(),
                client_id: self.client_id.clone(),
                home_account: Some(home.clone()),
                scopes: self.login_scope(),
                secret: rt,
                issued_at: Some(now),
                expires_at: None,
                claims: claims.clone(),
            })
            .await?;
        self.store_access(&home, &tid, &self.client_id, &self.cloud.graph_default_scope(), &t).await?;
        let account_key = self.account_key(role, &tid);
        self.cache
            .put(StoredToken {
                key: account_key,
                kind: TokenKind::Account,
                tenant_id: tid.clone(),
                client_id: self.client_id.clone(),
                home_account: Some(home.clone()),
                scopes: String::new(),
                secret: SecretString::from(String::new()),
                issued_at: Some(now),
                expires_at: None,
                claims: claims.clone(),
            })
            .await?;
        Ok(Account {
            home_account_id: home,
            home_tenant: tid,
            oid,
            upn: claims.as_ref().and_then(|c| c.upn.clone()),
            client_id: self.client_id.clone(),
            signed_in_at: Some(now),
            role,
            claims,
        })
    }

    async fn store_access(
        &self,
        account: &str,
        tenant: &str,
        client: &str,
        scope: &str,
        t: &TokenResponse,
    ) -> Result<StoredToken, Error> {
        let key = TokenCache::access_key(&self.cloud_key(), account, tenant, client, scope);
        let issued =
            t.claims.as_ref().and_then(|c| c.iat).and_then(|s| DateTime::from_timestamp(s, 0)).unwrap_or(t.received_at);
        let token = StoredToken {
            key,
            kind: TokenKind::Access,
            tenant_id: t.claims.as_ref().and_then(|c| c.tid.clone()).unwrap_or_else(|| tenant.to_string()),
            client_id: client.to_string(),
            home_account: Some(account.to_string()),
            scopes: scope.to_string(),
            secret: t.access_token.clone(),
            issued_at: Some(issued),
            expires_at: Some(t.received_at + chrono::Duration::seconds(t.expires_in as i64)),
            claims: t.claims.clone(),
        };
        self.cache.put(token.clone()).await?;
        Ok(token)
    }

    fn access_key(&self, account: &str, tenant: &str, client: &str) -> String {
        TokenCache::access_key(&self.cloud_key(), account, tenant, client, &self.cloud.graph_default_scope())
    }

    /// A Graph token for `tenant`: from the cache while it has five minutes left, else a new one.
    pub async fn access_token(&self, tenant: &str, grant: &Grant) -> Result<AccessToken, Error> {
        self.acquire(tenant, grant, None).await
    }

    /// A new Graph token for `tenant` that satisfies a claims challenge Graph answered the cached one with
    /// (continuous access evaluation): the cached token is dropped and `claims` (the challenge's decoded
    /// JSON) is sent with the request. When the cause of the challenge stands (revoked sessions, a location
    /// the tenant no longer allows), the token endpoint refuses, and that refusal is the error.
    pub async fn token_for_claims(&self, tenant: &str, grant: &Grant, claims: &str) -> Result<AccessToken, Error> {
        let (account, client) = self.who(grant).await?;
        self.cache.remove(&self.access_key(&account, tenant, &client)).await?;
        self.acquire(tenant, grant, Some(claims)).await
    }

    async fn acquire(&self, tenant: &str, grant: &Grant, challenge: Option<&str>) -> Result<AccessToken, Error> {
        let (account, client) = self.who(grant).await?;
        let key = self.access_key(&account, tenant, &client);
        if let Some(t) = self.cache.access(&key, Utc::now()).await? {
            return Ok(to_access(t, true));
        }
        let _flight = self.cache.lock(&key).await;
        // Another task may have fetched it while this one waited for the lock.
        if let Some(t) = self.cache.access(&key, Utc::now()).await? {
            return Ok(to_access(t, true));
        }
        let scope = self.cloud.graph_default_scope();
        let response = match grant {
            Grant::Partner | Grant::Direct { .. } => {
                let rt_key = TokenCache::refresh_key(&self.cloud_key(), &account, &self.client_id);
                let rt = self
                    .cache
                    .get(&rt_key)
                    .await?
                    .ok_or_else(|| Error::SignIn("no refresh token is cached: run `tenantscope login`".into()))?;
                let response = self.oauth.refresh(tenant, &self.client_id, &rt.secret, &scope, challenge).await?;
                if let Some(new_rt) = &response.refresh_token {
                    self.cache.put(StoredToken { secret: new_rt.clone(), issued_at: Some(Utc::now()), ..rt }).await?;
                }
                response
            }
            Grant::App { client_id, credential } => {
                self.oauth.client_credentials(tenant, client_id, credential, challenge).await?
            }
        };
        let stored = self.store_access(&account, tenant, &client, &scope, &response).await?;
        Ok(to_access(stored, false))
    }

    /// Evicts the cached access token of `tenant` and gets a new one (the cache check of `doctor`).
    pub async fn fresh_token(&self, tenant: &str, grant: &Grant) -> Result<AccessToken, Error> {
        let (account, client) = self.who(grant).await?;
        self.cache.remove(&self.access_key(&account, tenant, &client)).await?;
        self.access_token(tenant, grant).await
    }

    /// The cached access token of a tenant, whatever its age (for `tenantscope token --claims`).
    pub async fn cached(&self, tenant: &str, grant: &Grant) -> Result<Option<AccessToken>, Error> {
        let (account, client) = self.who(grant).await?;
        Ok(self.cache.get(&self.access_key(&account, tenant, &client)).await?.map(|t| to_access(t, true)))
    }

    /// Forgets the access tokens cached for one tenant (`--clear-cache`, and the cache check of `doctor`).
    /// Refresh tokens and accounts stay: they are not bound to a tenant.
    pub async fn clear_tenant_tokens(&self, tenant_id: &str) -> Result<u64, Error> {
        let mut n = 0;
        for info in self.cache.list().await? {
            if info.kind == TokenKind::Access && info.tenant_id.eq_ignore_ascii_case(tenant_id) {
                self.cache.remove(&info.key).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Forgets every cached token and account (`tenantscope logout`).
    pub async fn clear_all(&self) -> Result<u64, Error> {
        self.cache.clear().await
    }

    /// The account and client whose tokens a grant uses.
    async fn who(&self, grant: &Grant) -> Result<(String, String), Error> {
        match grant {
            Grant::Partner => {
                let account = self
                    .account()
                    .await?
                    .ok_or_else(|| Error::SignIn("no partner account is signed in: run `tenantscope login`".into()))?;
                Ok((account.home_account_id, self.client_id.clone()))
            }
            Grant::Direct { home_account } => Ok((home_account.clone(), self.client_id.clone())),
            Grant::App { client_id, .. } => Ok(("app".to_string(), client_id.clone())),
        }
    }

    /// When the refresh token was last used (each use rotates it), for the inactivity warning.
    pub async fn refresh_token_last_used(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let Some(account) = self.account().await? else { return Ok(None) };
        let key = TokenCache::refresh_key(&self.cloud_key(), &account.home_account_id, &self.client_id);
        Ok(self.cache.get(&key).await?.and_then(|t| t.issued_at))
    }
}

fn to_access(t: StoredToken, from_cache: bool) -> AccessToken {
    AccessToken {
        secret: t.secret,
        claims: t.claims,
        issued_at: t.issued_at,
        expires_at: t.expires_at,
        from_cache,
        key: t.key,
    }
}
