//! [`AuditStore`] on SQL. The table refuses updates and deletes by trigger, so that not even a
//! bug in the store can rewrite history.

use async_trait::async_trait;

use super::SqlStore;
use crate::common::{check_ts, json_text, non_empty};
use crate::error::Result;
use crate::rows::{self, RowExt};
use crate::sql::{ExecExt, query};
use crate::{AuditEntry, AuditFilter, AuditStore};

#[async_trait]
impl AuditStore for SqlStore {
    async fn audit_append(&self, e: &AuditEntry) -> Result<i64> {
        non_empty(&e.actor, "audit actor")?;
        non_empty(&e.action, "audit action")?;
        let row = self
            .db
            .write()
            .fetch_one(
                query(
                    "INSERT INTO audit_log (at, actor, action, target, address, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(check_ts(e.at)?)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.address)
                .bind(json_text(&e.detail)?),
            )
            .await?;
        row.int("id")
    }

    async fn audit_list(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let limit = if f.limit == 0 { 100 } else { f.limit.min(1000) };
        let rows = self
            .db
            .read()
            .fetch_all(
                query(
                    "SELECT id, at, actor, action, target, address, detail FROM audit_log \
                     WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR id < $3) \
                     ORDER BY id DESC LIMIT $4",
                )
                .bind(f.actor.as_deref())
                .bind(f.action.as_deref())
                .bind(f.before)
                .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(rows::audit_entry).collect()
    }
}
