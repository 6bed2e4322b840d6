//! [`SecretStore`] on SQL. Every secret is sealed with the store's key before it is bound, with the
//! record's identity as associated data, and opened after it is read.

use async_trait::async_trait;

use super::SqlStore;
use crate::common::{app_credential, cache_record, cache_record_id, credential_record_id, non_empty, opt_json_text};
use crate::crypto;
use crate::error::Result;
use crate::rows::{self, RowExt};
use crate::sql::{TxKind, query};
use crate::{AppCredential, AppCredentialMeta, CacheRecord, CacheRecordMeta, Key, SecretStore, TenantId};

impl SqlStore {
    /// Re-encrypts every secret (cached tokens and app credentials) under `new` and records its
    /// fingerprint, in one transaction: a process killed half-way leaves every secret under the
    /// old key, and a commit leaves every one under the new key. Returns how many secrets moved.
    /// A secret the current key cannot open stops the rotation before anything is written.
    pub(crate) async fn rekey(&self, new: &Key, fingerprint_setting: &str) -> Result<usize> {
        let mut tx = self.db.begin(TxKind::Write).await?;
        let mut moved = 0;
        let rows = tx
            .fetch_all(query(concat!("SELECT ", cache_meta_columns!(), ", secret FROM token_cache ORDER BY key")))
            .await?;
        for row in &rows {
            let meta = rows::cache_meta(row)?;
            let record_id = cache_record_id(&meta.key, &meta.tenant_id, &meta.kind, &meta.client_id);
            let secret = crypto::open(&self.key, &record_id, &row.bytes("secret")?)?;
            let sealed = crypto::seal(new, &record_id, &secret)?;
            tx.execute(query("UPDATE token_cache SET secret = $2 WHERE key = $1").bind(&meta.key).bind(sealed)).await?;
            moved += 1;
        }
        let rows = tx
            .fetch_all(query(concat!(
                "SELECT ",
                credential_meta_columns!(),
                ", secret FROM app_credentials ORDER BY tenant_id"
            )))
            .await?;
        for row in &rows {
            let meta = rows::credential_meta(row)?;
            let record_id = credential_record_id(meta.tenant_id.as_str(), &meta.client_id, meta.kind.as_str());
            let secret = crypto::open(&self.key, &record_id, &row.bytes("secret")?)?;
            let sealed = crypto::seal(new, &record_id, &secret)?;
            tx.execute(
                query("UPDATE app_credentials SET secret = $2 WHERE tenant_id = $1").bind(&meta.tenant_id).bind(sealed),
            )
            .await?;
            moved += 1;
        }
        tx.execute(
            query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(fingerprint_setting)
            .bind(crate::common::json_text(&serde_json::json!(new.fingerprint()))?)
            .bind(chrono::Utc::now()),
        )
        .await?;
        tx.commit().await?;
        Ok(moved)
    }
}

#[async_trait]
impl SecretStore for SqlStore {
    async fn cache_get(&self, key: &str) -> Result<Option<CacheRecord>> {
        let Some(row) = self
            .db
            .read()
            .fetch_optional(
                query(concat!("SELECT ", cache_meta_columns!(), ", secret FROM token_cache WHERE key = $1")).bind(key),
            )
            .await?
        else {
            return Ok(None);
        };
        let meta = rows::cache_meta(&row)?;
        let record_id = cache_record_id(&meta.key, &meta.tenant_id, &meta.kind, &meta.client_id);
        let secret = crypto::open(&self.key, &record_id, &row.bytes("secret")?)?;
        Ok(Some(cache_record(meta, secret)))
    }

    async fn cache_put(&self, r: &CacheRecord) -> Result<()> {
        non_empty(&r.key, "cache key")?;
        let record_id = cache_record_id(&r.key, &r.tenant_id, &r.kind, &r.client_id);
        let sealed = crypto::seal(&self.key, &record_id, &r.secret)?;
        self.db
            .write()
            .execute(
                query(
                    "INSERT INTO token_cache (key, tenant_id, kind, client_id, home_account, scopes, secret, \
                     issued_at, expires_at, claims, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (key) DO UPDATE SET tenant_id = excluded.tenant_id, kind = excluded.kind, \
                     client_id = excluded.client_id, home_account = excluded.home_account, scopes = excluded.scopes, \
                     secret = excluded.secret, issued_at = excluded.issued_at, expires_at = excluded.expires_at, \
                     claims = excluded.claims, updated_at = excluded.updated_at",
                )
                .bind(&r.key)
                .bind(&r.tenant_id)
                .bind(&r.kind)
                .bind(&r.client_id)
                .bind(&r.home_account)
                .bind(&r.scopes)
                .bind(sealed)
                .bind(r.issued_at)
                .bind(r.expires_at)
                .bind(opt_json_text(r.claims.as_ref())?)
                .bind(r.updated_at),
            )
            .await?;
        Ok(())
    }

    async fn cache_delete(&self, key: &str) -> Result<bool> {
        Ok(self.db.write().execute(query("DELETE FROM token_cache WHERE key = $1").bind(key)).await? > 0)
    }

    async fn cache_delete_tenant(&self, tenant_id: &str) -> Result<u64> {
        self.db.write().execute(query("DELETE FROM token_cache WHERE tenant_id = $1").bind(tenant_id)).await
    }

    async fn cache_clear(&self) -> Result<u64> {
        self.db.write().execute(query("DELETE FROM token_cache")).await
    }

    async fn cache_list(&self) -> Result<Vec<CacheRecordMeta>> {
        let rows = self
            .db
            .read()
            .fetch_all(query(concat!("SELECT ", cache_meta_columns!(), " FROM token_cache ORDER BY tenant_id, key")))
            .await?;
        rows.iter().map(rows::cache_meta).collect()
    }

    async fn credential_put(&self, c: &AppCredential) -> Result<()> {
        non_empty(c.tenant_id.as_str(), "tenant id")?;
        non_empty(&c.client_id, "client id")?;
        let record_id = credential_record_id(c.tenant_id.as_str(), &c.client_id, c.kind.as_str());
        let sealed = crypto::seal(&self.key, &record_id, &c.secret)?;
        self.db
            .write()
            .execute(
                query(
                    "INSERT INTO app_credentials (tenant_id, client_id, kind, secret, certificate_pem, expires_at, \
                     label, added_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (tenant_id) DO UPDATE SET client_id = excluded.client_id, kind = excluded.kind, \
                     secret = excluded.secret, certificate_pem = excluded.certificate_pem, \
                     expires_at = excluded.expires_at, label = excluded.label, added_at = excluded.added_at",
                )
                .bind(&c.tenant_id)
                .bind(&c.client_id)
                .bind(c.kind.as_str())
                .bind(sealed)
                .bind(&c.certificate_pem)
                .bind(c.expires_at)
                .bind(&c.label)
                .bind(c.added_at),
            )
            .await?;
        Ok(())
    }

    async fn credential_get(&self, tenant_id: &TenantId) -> Result<Option<AppCredential>> {
        let Some(row) = self
            .db
            .read()
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    credential_meta_columns!(),
                    ", secret FROM app_credentials WHERE tenant_id = $1"
                ))
                .bind(tenant_id),
            )
            .await?
        else {
            return Ok(None);
        };
        let meta = rows::credential_meta(&row)?;
        let record_id = credential_record_id(meta.tenant_id.as_str(), &meta.client_id, meta.kind.as_str());
        let secret = crypto::open(&self.key, &record_id, &row.bytes("secret")?)?;
        Ok(Some(app_credential(meta, secret)))
    }

    async fn credential_list(&self) -> Result<Vec<AppCredentialMeta>> {
        let rows = self
            .db
            .read()
            .fetch_all(query(concat!(
                "SELECT ",
                credential_meta_columns!(),
                " FROM app_credentials ORDER BY tenant_id"
            )))
            .await?;
        rows.iter().map(rows::credential_meta).collect()
    }

    async fn credential_delete(&self, tenant_id: &TenantId) -> Result<bool> {
        Ok(self.db.write().execute(query("DELETE FROM app_credentials WHERE tenant_id = $1").bind(tenant_id)).await?
            > 0)
    }
}
