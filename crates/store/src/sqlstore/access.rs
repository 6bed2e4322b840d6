//! [`AccessStore`] on SQL: operators' sessions and API tokens, both kept only as hashes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqlStore;
use crate::common::{check_ts, non_empty};
use crate::error::Result;
use crate::rows;
use crate::sql::query;
use crate::{AccessStore, ApiTokenRecord, SessionRecord};

#[async_trait]
impl AccessStore for SqlStore {
    async fn session_put(&self, s: &SessionRecord) -> Result<()> {
        non_empty(&s.id_hash, "session id")?;
        non_empty(&s.subject, "session subject")?;
        self.db
            .write()
            .execute(
                query(
                    "INSERT INTO sessions (id_hash, subject, name, role, csrf, created_at, expires_at, last_seen_at, \
                     address, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&s.id_hash)
                .bind(&s.subject)
                .bind(&s.name)
                .bind(&s.role)
                .bind(&s.csrf)
                .bind(check_ts(s.created_at)?)
                .bind(check_ts(s.expires_at)?)
                .bind(check_ts(s.last_seen_at)?)
                .bind(&s.address)
                .bind(s.revoked_at),
            )
            .await?;
        Ok(())
    }

    async fn session_get(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        let row = self
            .db
            .read()
            .fetch_optional(
                query(concat!("SELECT ", session_columns!(), " FROM sessions WHERE id_hash = $1")).bind(id_hash),
            )
            .await?;
        row.map(|r| rows::session(&r)).transpose()
    }

    async fn session_touch(&self, id_hash: &str, at: DateTime<Utc>) -> Result<()> {
        self.db
            .write()
            .execute(
                query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1").bind(id_hash).bind(check_ts(at)?),
            )
            .await?;
        Ok(())
    }

    async fn session_revoke(&self, id_hash: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = self
            .db
            .write()
            .execute(
                query("UPDATE sessions SET revoked_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL")
                    .bind(id_hash)
                    .bind(check_ts(at)?),
            )
            .await?;
        Ok(done == 1)
    }

    async fn token_put(&self, t: &ApiTokenRecord) -> Result<()> {
        non_empty(&t.id, "token id")?;
        non_empty(&t.name, "token name")?;
        non_empty(&t.hash, "token hash")?;
        self.db
            .write()
            .execute(
                query(
                    "INSERT INTO api_tokens (id, name, hash, role, created_at, created_by, expires_at, revoked_at, \
                     last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&t.id)
                .bind(&t.name)
                .bind(&t.hash)
                .bind(&t.role)
                .bind(check_ts(t.created_at)?)
                .bind(&t.created_by)
                .bind(check_ts(t.expires_at)?)
                .bind(t.revoked_at)
                .bind(t.last_used_at),
            )
            .await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiTokenRecord>> {
        let row = self
            .db
            .read()
            .fetch_optional(query(concat!("SELECT ", token_columns!(), " FROM api_tokens WHERE hash = $1")).bind(hash))
            .await?;
        row.map(|r| rows::api_token(&r)).transpose()
    }

    async fn token_touch(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        self.db
            .write()
            .execute(query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1").bind(id).bind(check_ts(at)?))
            .await?;
        Ok(())
    }

    async fn token_list(&self) -> Result<Vec<ApiTokenRecord>> {
        let rows = self
            .db
            .read()
            .fetch_all(query(concat!("SELECT ", token_columns!(), " FROM api_tokens ORDER BY created_at DESC, id")))
            .await?;
        rows.iter().map(rows::api_token).collect()
    }

    async fn token_revoke(&self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = self
            .db
            .write()
            .execute(
                query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(check_ts(at)?),
            )
            .await?;
        Ok(done == 1)
    }
}
