//! [`AlertStore`] on SQL: alerts, their acknowledgement and mutes, and the outbox of their
//! notifications.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::SqlStore;
use crate::common::{json_text, non_empty};
use crate::error::Result;
use crate::rows::{self, RowExt};
use crate::sql::{Exec, TxKind, query};
use crate::{AlertRecord, AlertStore, DeliveryOutcome, DeliveryRecord, MuteRecord, OutboxItem, TenantId};

/// Inserts or replaces an alert. A new occurrence under the same key (opened at another time)
/// starts unacknowledged; the same occurrence keeps its acknowledgement.
async fn upsert(exec: &mut (dyn Exec + '_), a: &AlertRecord) -> Result<()> {
    non_empty(&a.key, "alert key")?;
    exec.execute(
        query(
            "INSERT INTO alerts (key, rule, tenant_id, severity, opened_at, resolved_at, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (key) DO UPDATE SET rule = excluded.rule, tenant_id = excluded.tenant_id, \
             severity = excluded.severity, resolved_at = excluded.resolved_at, payload = excluded.payload, \
             acked_at = CASE WHEN alerts.opened_at = excluded.opened_at THEN alerts.acked_at END, \
             acked_by = CASE WHEN alerts.opened_at = excluded.opened_at THEN alerts.acked_by END, \
             ack_reason = CASE WHEN alerts.opened_at = excluded.opened_at THEN alerts.ack_reason END, \
             opened_at = excluded.opened_at",
        )
        .bind(&a.key)
        .bind(&a.rule)
        .bind(&a.tenant_id)
        .bind(a.severity.as_str())
        .bind(a.opened_at)
        .bind(a.resolved_at)
        .bind(json_text(&a.payload)?),
    )
    .await?;
    Ok(())
}

#[async_trait]
impl AlertStore for SqlStore {
    async fn upsert_alert(&self, a: &AlertRecord) -> Result<()> {
        upsert(&mut *self.db.write(), a).await
    }

    async fn open_alerts(&self, tenant_id: Option<&TenantId>) -> Result<Vec<AlertRecord>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    alert_columns!(),
                    " FROM alerts WHERE resolved_at IS NULL AND ($1 IS NULL OR tenant_id = $1) \
                     ORDER BY opened_at DESC, key"
                ))
                .bind(tenant_id),
            )
            .await?;
        rows.iter().map(rows::alert).collect()
    }

    async fn list_alerts(&self, open_only: bool) -> Result<Vec<AlertRecord>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    alert_columns!(),
                    " FROM alerts WHERE ($1 = 0 OR resolved_at IS NULL) ORDER BY opened_at DESC, key"
                ))
                .bind(i64::from(open_only)),
            )
            .await?;
        rows.iter().map(rows::alert).collect()
    }

    async fn record_delivery(
        &self,
        alert_key: &str,
        target: &str,
        attempt: i64,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let done = self
            .db
            .write()
            .execute(
                query(
                    "INSERT INTO alert_deliveries (alert_key, target, attempt, status, at) \
                     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM alerts WHERE key = $1)",
                )
                .bind(alert_key)
                .bind(target)
                .bind(attempt)
                .bind(status)
                .bind(at),
            )
            .await?;
        if done == 0 {
            return Err(crate::StoreError::NotFound(format!("alert {alert_key:?}")));
        }
        Ok(())
    }

    async fn deliveries(&self, alert_key: &str) -> Result<Vec<DeliveryRecord>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(
                    "SELECT alert_key, target, attempt, status, at FROM alert_deliveries \
                     WHERE alert_key = $1 ORDER BY at, id",
                )
                .bind(alert_key),
            )
            .await?;
        rows.iter().map(rows::delivery).collect()
    }

    async fn record_transition(&self, alert: &AlertRecord, transition: &str, notify: &[(String, Value)]) -> Result<()> {
        non_empty(transition, "alert transition")?;
        let now = Utc::now();
        let mut tx = self.db.begin(TxKind::Write).await?;
        upsert(&mut *tx, alert).await?;
        for (target, payload) in notify {
            non_empty(target, "notification target")?;
            tx.execute(
                query(
                    "INSERT INTO alert_outbox (alert_key, transition, target, payload, created_at, next_attempt_at, \
                     attempts, status) VALUES ($1, $2, $3, $4, $5, $5, 0, 'pending')",
                )
                .bind(&alert.key)
                .bind(transition)
                .bind(target)
                .bind(json_text(payload)?)
                .bind(now),
            )
            .await?;
        }
        tx.commit().await
    }

    async fn get_alert(&self, key: &str) -> Result<Option<AlertRecord>> {
        let row = self
            .db
            .read()
            .fetch_optional(query(concat!("SELECT ", alert_columns!(), " FROM alerts WHERE key = $1")).bind(key))
            .await?;
        row.as_ref().map(rows::alert).transpose()
    }

    async fn ack_alert(
        &self,
        key: &str,
        by: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
        resolve: bool,
    ) -> Result<Option<AlertRecord>> {
        non_empty(by, "who acknowledges")?;
        let done = self
            .db
            .write()
            .execute(
                query(
                    "UPDATE alerts SET acked_at = $2, acked_by = $3, ack_reason = $4, \
                     resolved_at = CASE WHEN $5 = 1 AND resolved_at IS NULL THEN $2 ELSE resolved_at END \
                     WHERE key = $1",
                )
                .bind(key)
                .bind(at)
                .bind(by)
                .bind(reason)
                .bind(i64::from(resolve)),
            )
            .await?;
        if done == 0 {
            return Ok(None);
        }
        self.get_alert(key).await
    }

    async fn set_mute(&self, m: &MuteRecord) -> Result<()> {
        non_empty(m.tenant_id.as_str(), "tenant id")?;
        non_empty(&m.rule, "rule")?;
        self.db
            .write()
            .execute(
                query(
                    "INSERT INTO alert_mutes (tenant_id, rule, until, created_at, created_by, reason) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, rule) DO UPDATE SET \
                     until = excluded.until, created_at = excluded.created_at, created_by = excluded.created_by, \
                     reason = excluded.reason",
                )
                .bind(&m.tenant_id)
                .bind(&m.rule)
                .bind(m.until)
                .bind(m.created_at)
                .bind(&m.created_by)
                .bind(&m.reason),
            )
            .await?;
        Ok(())
    }

    async fn delete_mute(&self, tenant_id: &TenantId, rule: &str) -> Result<bool> {
        let done = self
            .db
            .write()
            .execute(query("DELETE FROM alert_mutes WHERE tenant_id = $1 AND rule = $2").bind(tenant_id).bind(rule))
            .await?;
        Ok(done > 0)
    }

    async fn mutes(&self) -> Result<Vec<MuteRecord>> {
        let rows = self
            .db
            .read()
            .fetch_all(query(
                "SELECT tenant_id, rule, until, created_at, created_by, reason FROM alert_mutes ORDER BY tenant_id, rule",
            ))
            .await?;
        rows.iter().map(rows::mute).collect()
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<OutboxItem>> {
        non_empty(owner, "delivery owner")?;
        let mut tx = self.db.begin(TxKind::Write).await?;
        let candidates = tx
            .fetch_all(
                query(
                    "SELECT o.id FROM alert_outbox o WHERE o.status = 'pending' AND o.next_attempt_at <= $1 \
                     AND (o.lease_until IS NULL OR o.lease_until < $1) \
                     AND NOT EXISTS (SELECT 1 FROM alert_outbox e WHERE e.alert_key = o.alert_key \
                                     AND e.target = o.target AND e.status = 'pending' AND e.id < o.id) \
                     ORDER BY o.id LIMIT $2",
                )
                .bind(now)
                .bind(i64::from(limit)),
            )
            .await?;
        let mut claimed = Vec::new();
        for row in &candidates {
            let id = row.int("id")?;
            // The condition is checked again under the row lock (PostgreSQL waits for a concurrent
            // claimer and re-reads): only one claimer's update matches.
            let won = tx
                .execute(
                    query(
                        "UPDATE alert_outbox SET lease_owner = $2, lease_until = $3 WHERE id = $1 AND status = 'pending' \
                         AND (lease_until IS NULL OR lease_until < $4)",
                    )
                    .bind(id)
                    .bind(owner)
                    .bind(now + lease)
                    .bind(now),
                )
                .await?;
            if won == 1 {
                claimed.push(id);
            }
        }
        let mut items = Vec::with_capacity(claimed.len());
        for id in claimed {
            let row = tx
                .fetch_optional(
                    query(concat!("SELECT ", outbox_columns!(), " FROM alert_outbox WHERE id = $1")).bind(id),
                )
                .await?;
            if let Some(row) = row {
                items.push(rows::outbox_item(&row)?);
            }
        }
        tx.commit().await?;
        Ok(items)
    }

    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: &DeliveryOutcome,
        attempts: i64,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let (status, error, next, delivered) = match outcome {
            DeliveryOutcome::Delivered => ("delivered", None, at, Some(at)),
            DeliveryOutcome::Retry { error, at: retry_at } => ("pending", Some(error.as_str()), *retry_at, None),
            DeliveryOutcome::Expired { error } => ("expired", Some(error.as_str()), at, None),
        };
        let done = self
            .db
            .write()
            .execute(
                query(
                    "UPDATE alert_outbox SET status = $3, last_error = $4, next_attempt_at = $5, delivered_at = $6, \
                     attempts = $7, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $1 AND lease_owner = $2 AND status = 'pending'",
                )
                .bind(id)
                .bind(owner)
                .bind(status)
                .bind(error)
                .bind(next)
                .bind(delivered)
                .bind(attempts),
            )
            .await?;
        Ok(done == 1)
    }

    async fn retry_deliveries(&self, now: DateTime<Utc>) -> Result<u64> {
        self.db
            .write()
            .execute(
                query("UPDATE alert_outbox SET next_attempt_at = $1 WHERE status = 'pending' AND next_attempt_at > $1")
                    .bind(now),
            )
            .await
    }

    async fn outbox(&self, alert_key: Option<&str>, limit: u32) -> Result<Vec<OutboxItem>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    outbox_columns!(),
                    " FROM alert_outbox WHERE ($1 IS NULL OR alert_key = $1) ORDER BY id DESC LIMIT $2"
                ))
                .bind(alert_key)
                .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(rows::outbox_item).collect()
    }
}
