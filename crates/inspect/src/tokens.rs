//! The Microsoft client's token cache, persisted in the encrypted store.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use microsoft::cache::{StoredToken, TokenInfo, TokenKind, TokenStore};
use microsoft::{Claims, Error};
use store::{CacheRecord, Store};

pub struct StoreTokens {
    pub store: Arc<dyn Store>,
}

fn err(e: store::StoreError) -> Error {
    Error::Cache(e.to_string())
}

fn claims_of(v: Option<serde_json::Value>) -> Option<Claims> {
    v.and_then(|v| serde_json::from_value(v).ok())
}

#[async_trait]
impl TokenStore for StoreTokens {
    async fn load(&self, key: &str) -> Result<Option<StoredToken>, Error> {
        let Some(r) = self.store.cache_get(key).await.map_err(err)? else { return Ok(None) };
        // A record of an unknown kind was written by something else; it is not a token to use.
        let Some(kind) = TokenKind::parse(&r.kind) else { return Ok(None) };
        Ok(Some(StoredToken {
            key: r.key,
            kind,
            tenant_id: r.tenant_id,
            client_id: r.client_id,
            home_account: r.home_account,
            scopes: r.scopes,
            secret: r.secret,
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            claims: claims_of(r.claims),
        }))
    }

    async fn save(&self, t: &StoredToken) -> Result<(), Error> {
        let record = CacheRecord {
            key: t.key.clone(),
            tenant_id: t.tenant_id.clone(),
            kind: t.kind.as_str().to_string(),
            client_id: t.client_id.clone(),
            home_account: t.home_account.clone(),
            scopes: t.scopes.clone(),
            secret: t.secret.clone(),
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            claims: t.claims.as_ref().and_then(|c| serde_json::to_value(c).ok()),
            updated_at: Utc::now(),
        };
        self.store.cache_put(&record).await.map_err(err)
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.store.cache_delete(key).await.map(|_| ()).map_err(err)
    }

    async fn delete_tenant(&self, tenant_id: &str) -> Result<u64, Error> {
        self.store.cache_delete_tenant(tenant_id).await.map_err(err)
    }

    async fn clear(&self) -> Result<u64, Error> {
        self.store.cache_clear().await.map_err(err)
    }

    async fn list(&self) -> Result<Vec<TokenInfo>, Error> {
        Ok(self
            .store
            .cache_list()
            .await
            .map_err(err)?
            .into_iter()
            .filter_map(|m| {
                Some(TokenInfo {
                    kind: TokenKind::parse(&m.kind)?,
                    key: m.key,
                    tenant_id: m.tenant_id,
                    client_id: m.client_id,
                    home_account: m.home_account,
                    scopes: m.scopes,
                    issued_at: m.issued_at,
                    expires_at: m.expires_at,
                    claims: claims_of(m.claims),
                })
            })
            .collect())
    }
}
