//! [`AgentStore`] on SQL: agents, their one-time enrollment tokens (kept as hashes) and the pool
//! each tenant is inspected from.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::SqlStore;
use crate::common::{check_ts, json_text, non_empty};
use crate::error::Result;
use crate::rows::{self, RowExt};
use crate::sql::{TxKind, query};
use crate::{AgentRecord, AgentStore, EnrollmentRecord, NewAgent, TenantId};

macro_rules! agent_columns {
    () => {
        "id, name, pool, signing_key, sealing_key, version, enrolled_at, enrolled_by, revoked_at, last_seen_at, health"
    };
}

macro_rules! enrollment_columns {
    () => {
        "id, hash, name, pool, created_at, created_by, expires_at, used_at, agent_id"
    };
}

#[async_trait]
impl AgentStore for SqlStore {
    async fn enrollment_put(&self, e: &EnrollmentRecord) -> Result<()> {
        non_empty(&e.id, "enrollment id")?;
        non_empty(&e.hash, "enrollment hash")?;
        non_empty(&e.name, "agent name")?;
        non_empty(&e.pool, "agent pool")?;
        self.db
            .write()
            .execute(
                query(
                    "INSERT INTO agent_enrollments (id, hash, name, pool, created_at, created_by, expires_at, used_at, \
                     agent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&e.id)
                .bind(&e.hash)
                .bind(&e.name)
                .bind(&e.pool)
                .bind(check_ts(e.created_at)?)
                .bind(&e.created_by)
                .bind(check_ts(e.expires_at)?)
                .bind(e.used_at)
                .bind(&e.agent_id),
            )
            .await?;
        Ok(())
    }

    async fn enrollment_list(&self) -> Result<Vec<EnrollmentRecord>> {
        let rows = self
            .db
            .read()
            .fetch_all(query(concat!(
                "SELECT ",
                enrollment_columns!(),
                " FROM agent_enrollments ORDER BY created_at DESC, id"
            )))
            .await?;
        rows.iter().map(rows::enrollment).collect()
    }

    async fn enroll_agent(&self, hash: &str, agent: &NewAgent, now: DateTime<Utc>) -> Result<Option<AgentRecord>> {
        non_empty(&agent.id, "agent id")?;
        non_empty(&agent.signing_key, "agent signing key")?;
        non_empty(&agent.sealing_key, "agent sealing key")?;
        let now = check_ts(now)?;
        let mut tx = self.db.begin(TxKind::Write).await?;
        // Spending the token is the conditional update itself, so two enrollments racing with one
        // token cannot both succeed: the second finds it used.
        let spent = tx
            .fetch_optional(
                query(concat!(
                    "UPDATE agent_enrollments SET used_at = $2, agent_id = $3 \
                     WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING ",
                    enrollment_columns!()
                ))
                .bind(hash)
                .bind(now)
                .bind(&agent.id),
            )
            .await?;
        // Dropping the transaction rolls it back.
        let Some(row) = spent else { return Ok(None) };
        let token = rows::enrollment(&row)?;
        let record = AgentRecord {
            id: agent.id.clone(),
            name: agent.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or(token.name),
            pool: token.pool,
            signing_key: agent.signing_key.clone(),
            sealing_key: agent.sealing_key.clone(),
            version: agent.version.clone(),
            enrolled_at: now,
            enrolled_by: token.created_by,
            revoked_at: None,
            last_seen_at: Some(now),
            health: None,
        };
        tx.execute(
            query(
                "INSERT INTO agents (id, name, pool, signing_key, sealing_key, version, enrolled_at, enrolled_by, \
                 revoked_at, last_seen_at, health) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $7, NULL)",
            )
            .bind(&record.id)
            .bind(&record.name)
            .bind(&record.pool)
            .bind(&record.signing_key)
            .bind(&record.sealing_key)
            .bind(&record.version)
            .bind(now)
            .bind(&record.enrolled_by),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(record))
    }

    async fn agent_get(&self, id: &str) -> Result<Option<AgentRecord>> {
        let row = self
            .db
            .read()
            .fetch_optional(query(concat!("SELECT ", agent_columns!(), " FROM agents WHERE id = $1")).bind(id))
            .await?;
        row.map(|r| rows::agent(&r)).transpose()
    }

    async fn agent_list(&self) -> Result<Vec<AgentRecord>> {
        let rows = self
            .db
            .read()
            .fetch_all(query(concat!("SELECT ", agent_columns!(), " FROM agents ORDER BY pool, name, id")))
            .await?;
        rows.iter().map(rows::agent).collect()
    }

    async fn agent_revoke(&self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = self
            .db
            .write()
            .execute(
                query("UPDATE agents SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(check_ts(at)?),
            )
            .await?;
        Ok(done == 1)
    }

    async fn agent_seen(&self, id: &str, at: DateTime<Utc>, version: &str, health: &Value) -> Result<()> {
        let health = json_text(health)?;
        self.db
            .write()
            .execute(
                query("UPDATE agents SET last_seen_at = $2, version = $3, health = $4 WHERE id = $1")
                    .bind(id)
                    .bind(check_ts(at)?)
                    .bind(version)
                    .bind(health),
            )
            .await?;
        Ok(())
    }

    async fn tenant_pools(&self) -> Result<Vec<(TenantId, String)>> {
        let rows =
            self.db.read().fetch_all(query("SELECT tenant_id, pool FROM tenant_pools ORDER BY tenant_id")).await?;
        rows.iter().map(|r| Ok((r.tenant_id("tenant_id")?, r.text("pool")?))).collect()
    }

    async fn set_tenant_pool(&self, tenant_id: &TenantId, pool: Option<&str>) -> Result<()> {
        non_empty(tenant_id.as_str(), "tenant id")?;
        let q = match pool {
            Some(pool) => {
                non_empty(pool, "pool")?;
                query(
                    "INSERT INTO tenant_pools (tenant_id, pool) VALUES ($1, $2) \
                     ON CONFLICT (tenant_id) DO UPDATE SET pool = excluded.pool",
                )
                .bind(tenant_id.as_str())
                .bind(pool)
            }
            None => query("DELETE FROM tenant_pools WHERE tenant_id = $1").bind(tenant_id.as_str()),
        };
        self.db.write().execute(q).await?;
        Ok(())
    }
}
