//! The token cache: a hot in-memory layer over a persistent [`TokenStore`] (the product's encrypted
//! store), keyed by cloud, home account, tenant, client and scope set.
//!
//! Access tokens are reused until five minutes before they expire. A refresh token is keyed without a
//! tenant, because one refresh token serves every tenant where the user has presence (the GDAP
//! pattern); when a redemption returns a new one, it replaces the old one in one atomic write.
//! Concurrent requests for the same key wait for one token request instead of each making their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::claims::Claims;
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
    /// The signed-in account: who, in which tenant; its secret is empty.
    Account,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
            TokenKind::Account => "account",
        }
    }

    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "access" => Some(TokenKind::Access),
            "refresh" => Some(TokenKind::Refresh),
            "account" => Some(TokenKind::Account),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct StoredToken {
    pub key: String,
    pub kind: TokenKind,
    /// The tenant the token is for; `*` for a refresh token, which serves every tenant.
    pub tenant_id: String,
    pub client_id: String,
    pub home_account: Option<String>,
    pub scopes: String,
    pub secret: SecretString,
    pub issued_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// A non-secret summary of the token's claims, kept for diagnosis.
    pub claims: Option<Claims>,
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("tenant_id", &self.tenant_id)
            .field("secret", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What `tenantscope token` and diagnosis may see of a cached token: everything but the secret.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub key: String,
    pub kind: TokenKind,
    pub tenant_id: String,
    pub client_id: String,
    pub home_account: Option<String>,
    pub scopes: String,
    pub issued_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub claims: Option<Claims>,
}

impl From<&StoredToken> for TokenInfo {
    fn from(t: &StoredToken) -> TokenInfo {
        TokenInfo {
            key: t.key.clone(),
            kind: t.kind,
            tenant_id: t.tenant_id.clone(),
            client_id: t.client_id.clone(),
            home_account: t.home_account.clone(),
            scopes: t.scopes.clone(),
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            claims: t.claims.clone(),
        }
    }
}

/// Persistence of cached tokens. The product implements it over its encrypted store; tests use
/// [`MemoryTokenStore`].
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn load(&self, key: &str) -> Result<Option<StoredToken>, Error>;
    /// Writes a token atomically, replacing any token under the same key.
    async fn save(&self, token: &StoredToken) -> Result<(), Error>;
    async fn delete(&self, key: &str) -> Result<(), Error>;
    async fn delete_tenant(&self, tenant_id: &str) -> Result<u64, Error>;
    async fn clear(&self) -> Result<u64, Error>;
    async fn list(&self) -> Result<Vec<TokenInfo>, Error>;
}

#[derive(Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<HashMap<String, StoredToken>>,
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self, key: &str) -> Result<Option<StoredToken>, Error> {
        Ok(self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned())
    }

    async fn save(&self, token: &StoredToken) -> Result<(), Error> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(token.key.clone(), token.clone());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        Ok(())
    }

    async fn delete_tenant(&self, tenant_id: &str) -> Result<u64, Error> {
        let mut t = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let before = t.len();
        t.retain(|_, v| !v.tenant_id.eq_ignore_ascii_case(tenant_id));
        Ok((before - t.len()) as u64)
    }

    async fn clear(&self) -> Result<u64, Error> {
        let mut t = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let n = t.len() as u64;
        t.clear();
        Ok(n)
    }

    async fn list(&self) -> Result<Vec<TokenInfo>, Error> {
        Ok(self.tokens.lock().unwrap_or_else(|e| e.into_inner()).values().map(TokenInfo::from).collect())
    }
}

/// How long before expiry a cached access token stops being handed out.
pub(crate) const EXPIRY_MARGIN: Duration = Duration::minutes(5);

/// How long an account read from the store is taken as it was. Every Graph request asks who the
/// partner is; another process (`tenantscope login` beside a running server) may sign in someone
/// else, and is noticed this long after at most.
const ACCOUNT_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

pub struct TokenCache {
    store: Arc<dyn TokenStore>,
    hot: Mutex<HashMap<String, StoredToken>>,
    /// Accounts read from the store (not written by this process), with when they were read.
    accounts: Mutex<HashMap<String, (std::time::Instant, StoredToken)>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl TokenCache {
    pub(crate) fn new(store: Arc<dyn TokenStore>) -> TokenCache {
        TokenCache {
            store,
            hot: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn access_key(cloud: &str, account: &str, tenant: &str, client: &str, scopes: &str) -> String {
        format!("{cloud}|{account}|{}|{client}|access|{scopes}", tenant.to_ascii_lowercase())
    }

    pub(crate) fn refresh_key(cloud: &str, account: &str, client: &str) -> String {
        format!("{cloud}|{account}|*|{client}|refresh")
    }

    pub(crate) fn account_key(cloud: &str, client: &str) -> String {
        format!("{cloud}|account|{client}")
    }

    /// A usable access token under `key`: present and not within five minutes of expiry.
    pub(crate) async fn access(&self, key: &str, now: DateTime<Utc>) -> Result<Option<StoredToken>, Error> {
        let usable = |t: &StoredToken| t.expires_at.is_some_and(|e| e - EXPIRY_MARGIN > now);
        if let Some(t) = self.hot.lock().unwrap_or_else(|e| e.into_inner()).get(key).filter(|t| usable(t)).cloned() {
            return Ok(Some(t));
        }
        let loaded = self.store.load(key).await?.filter(|t| usable(t));
        if let Some(t) = &loaded {
            self.hot.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string(), t.clone());
        }
        Ok(loaded)
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<StoredToken>, Error> {
        if let Some(t) = self.hot.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned() {
            return Ok(Some(t));
        }
        let now = std::time::Instant::now();
        if let Some((_, t)) = self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .filter(|(at, _)| now.duration_since(*at) < ACCOUNT_RECHECK)
        {
            return Ok(Some(t.clone()));
        }
        let loaded = self.store.load(key).await?;
        // Only accounts are remembered: a refresh token may be rotated by another process, and
        // must be read from the store each time it is redeemed.
        if let Some(t) = loaded.as_ref().filter(|t| t.kind == TokenKind::Account) {
            self.accounts.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string(), (now, t.clone()));
        }
        Ok(loaded)
    }

    /// Persists first, then updates memory, so that a crash never leaves memory ahead of disk.
    pub(crate) async fn put(&self, token: StoredToken) -> Result<(), Error> {
        self.store.save(&token).await?;
        self.accounts.lock().unwrap_or_else(|e| e.into_inner()).remove(&token.key);
        self.hot.lock().unwrap_or_else(|e| e.into_inner()).insert(token.key.clone(), token);
        Ok(())
    }

    pub(crate) async fn remove(&self, key: &str) -> Result<(), Error> {
        self.hot.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        self.accounts.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        self.store.delete(key).await
    }

    /// The single-flight lock of a key: whoever holds it is the one making the token request.
    pub(crate) async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self.locks.lock().unwrap_or_else(|e| e.into_inner()).entry(key.to_string()).or_default().clone();
        m.lock_owned().await
    }

    /// Forgets every token for one tenant (access tokens issued for it).
    pub async fn clear_tenant(&self, tenant_id: &str) -> Result<u64, Error> {
        self.hot.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, t| !t.tenant_id.eq_ignore_ascii_case(tenant_id));
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (_, t)| !t.tenant_id.eq_ignore_ascii_case(tenant_id));
        self.store.delete_tenant(tenant_id).await
    }

    pub async fn clear(&self) -> Result<u64, Error> {
        self.hot.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.accounts.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.store.clear().await
    }

    pub(crate) async fn list(&self) -> Result<Vec<TokenInfo>, Error> {
        self.store.list().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A memory store that counts its loads.
    #[derive(Default)]
    struct Counting {
        inner: MemoryTokenStore,
        loads: AtomicUsize,
    }

    #[async_trait]
    impl TokenStore for Counting {
        async fn load(&self, key: &str) -> Result<Option<StoredToken>, Error> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            self.inner.load(key).await
        }
        async fn save(&self, token: &StoredToken) -> Result<(), Error> {
            self.inner.save(token).await
        }
        async fn delete(&self, key: &str) -> Result<(), Error> {
            self.inner.delete(key).await
        }
        async fn delete_tenant(&self, tenant_id: &str) -> Result<u64, Error> {
            self.inner.delete_tenant(tenant_id).await
        }
        async fn clear(&self) -> Result<u64, Error> {
            self.inner.clear().await
        }
        async fn list(&self) -> Result<Vec<TokenInfo>, Error> {
            self.inner.list().await
        }
    }

    fn token(key: &str, kind: TokenKind, home: &str) -> StoredToken {
        StoredToken {
            key: key.into(),
            kind,
            tenant_id: "t".into(),
            client_id: "c".into(),
            home_account: Some(home.into()),
            scopes: String::new(),
            secret: SecretString::from(String::from("s")),
            issued_at: None,
            expires_at: None,
            claims: None,
        }
    }

    #[tokio::test]
    async fn an_account_read_from_the_store_is_remembered_for_a_while_and_a_refresh_token_never() {
        let store = Arc::new(Counting::default());
        // Written by another process: this cache has never seen them.
        store.inner.save(&token("account", TokenKind::Account, "a")).await.unwrap();
        store.inner.save(&token("refresh", TokenKind::Refresh, "a")).await.unwrap();
        let cache = TokenCache::new(store.clone());

        for _ in 0..3 {
            assert_eq!(cache.get("account").await.unwrap().unwrap().home_account.as_deref(), Some("a"));
            assert!(cache.get("refresh").await.unwrap().is_some());
        }
        assert_eq!(store.loads.load(Ordering::SeqCst), 4, "one load of the account, three of the refresh token");

        // Another process signs someone else in; once the account is old enough it is read again.
        store.inner.save(&token("account", TokenKind::Account, "b")).await.unwrap();
        assert_eq!(cache.get("account").await.unwrap().unwrap().home_account.as_deref(), Some("a"));
        let long_ago = std::time::Instant::now().checked_sub(ACCOUNT_RECHECK).unwrap();
        for (at, _) in cache.accounts.lock().unwrap().values_mut() {
            *at = long_ago;
        }
        assert_eq!(cache.get("account").await.unwrap().unwrap().home_account.as_deref(), Some("b"));

        // Removing it through this cache forgets the remembered copy at once.
        cache.remove("account").await.unwrap();
        assert!(cache.get("account").await.unwrap().is_none());
        // A missing account is not remembered: a sign-in by another process is seen at once.
        store.inner.save(&token("account", TokenKind::Account, "c")).await.unwrap();
        assert_eq!(cache.get("account").await.unwrap().unwrap().home_account.as_deref(), Some("c"));
    }
}
