//! Forgetting a tenant and pruning by age: the store's answers to personal-data requests and to
//! retention policies. Both run in one garbage-collecting transaction, so a tenant commit never
//! sees blobs disappear under it and a killed process leaves everything or nothing deleted.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::SqlStore;
use crate::common::json_text;
use crate::error::Result;
use crate::rows::RowExt;
use crate::sql::{Exec, ExecExt, TxKind, query};
use crate::{ForgetReport, PruneReport, TenantId};

impl SqlStore {
    pub(super) async fn forget(&self, tenant_id: &TenantId) -> Result<ForgetReport> {
        let mut tx = self.db.begin(TxKind::Collect).await?;
        let mut report = ForgetReport::default();
        let id = tenant_id.as_str();
        let key = tx.int(query("SELECT key FROM tenant_keys WHERE tenant_id = $1").bind(tenant_id)).await?;
        if let Some(key) = key {
            report.tenant_runs = tx.execute(query("DELETE FROM tenant_runs WHERE tenant_key = $1").bind(key)).await?;
            report.dataprints = tx
                .execute(
                    query(
                        "DELETE FROM dataprints WHERE key IN \
                (SELECT key FROM dataprints WHERE tenant_key = $1)",
                    )
                    .bind(key),
                )
                .await?;
            report.other += tx.execute(query("DELETE FROM job_tenants WHERE tenant_key = $1").bind(key)).await?;
            tx.execute(query("DELETE FROM tenant_keys WHERE key = $1").bind(key)).await?;
        }
        report.blobs = collect_garbage(tx.as_mut()).await?.1;
        let alerts = tx.fetch_all(query("SELECT key FROM alerts WHERE tenant_id = $1").bind(tenant_id)).await?;
        for row in &alerts {
            let alert = row.text_at(0)?;
            report.notifications +=
                tx.execute(query("DELETE FROM alert_outbox WHERE alert_key = $1").bind(&alert)).await?;
            tx.execute(query("DELETE FROM alert_deliveries WHERE alert_key = $1").bind(&alert)).await?;
        }
        report.alerts = tx.execute(query("DELETE FROM alerts WHERE tenant_id = $1").bind(tenant_id)).await?;
        report.metrics = tx.execute(query("DELETE FROM metrics WHERE tenant_id = $1").bind(tenant_id)).await?;
        report.events = tx.execute(query("DELETE FROM events WHERE tenant_id = $1").bind(tenant_id)).await?;
        report.tokens = tx.execute(query("DELETE FROM token_cache WHERE tenant_id = $1").bind(tenant_id)).await?;
        report.credentials =
            tx.execute(query("DELETE FROM app_credentials WHERE tenant_id = $1").bind(tenant_id)).await?;
        report.delta_links = tx.execute(query("DELETE FROM delta_links WHERE tenant_id = $1").bind(tenant_id)).await?;
        report.domains = tx.execute(query("DELETE FROM tenant_domains WHERE tenant_id = $1").bind(tenant_id)).await?;
        for sql in [
            "DELETE FROM alert_mutes WHERE tenant_id = $1",
            "DELETE FROM schedule_state WHERE tenant_id = $1",
            "DELETE FROM tenant_pools WHERE tenant_id = $1",
            "DELETE FROM tenant_tags WHERE tenant_id = $1",
        ] {
            report.other += tx.execute(query(sql).bind(tenant_id)).await?;
        }
        // Baselines are named, not keyed by tenant: the ones taken from this tenant are found by
        // their recorded source.
        for row in &tx.fetch_all(query("SELECT name, value FROM baselines ORDER BY name")).await? {
            let (name, value) = (row.text("name")?, row.text("value")?);
            let source = serde_json::from_str::<Value>(&value)
                .ok()
                .and_then(|v| v.get("source_tenant_id").and_then(Value::as_str).map(str::to_ascii_lowercase));
            if source.as_deref() == Some(&id.to_ascii_lowercase()) {
                tx.execute(query("DELETE FROM baselines WHERE name = $1").bind(&name)).await?;
                report.baselines.push(name);
            }
        }
        // Runs are shared by every tenant; what a run recorded about this one (the warnings of
        // its GDAP relationships and secrets) is removed from it.
        let pattern = format!("%{id}%");
        for row in &tx.fetch_all(query("SELECT key, stats FROM runs WHERE stats LIKE $1").bind(pattern)).await? {
            let (run, text) = (row.int("key")?, row.text("stats")?);
            let Ok(mut stats) = serde_json::from_str::<Value>(&text) else { continue };
            let Some(warnings) = stats.get_mut("warnings").and_then(Value::as_array_mut) else { continue };
            let before = warnings.len();
            warnings.retain(|w| !w.to_string().to_ascii_lowercase().contains(&id.to_ascii_lowercase()));
            if warnings.len() != before {
                tx.execute(query("UPDATE runs SET stats = $2 WHERE key = $1").bind(run).bind(json_text(&stats)?))
                    .await?;
                report.runs_scrubbed += 1;
            }
        }
        report.tenant = tx.execute(query("DELETE FROM tenants WHERE id = $1").bind(tenant_id)).await? > 0;
        tx.commit().await?;
        self.db.reclaim_space().await?;
        Ok(report)
    }

    pub(super) async fn prune_by_age(&self, cutoff: DateTime<Utc>) -> Result<PruneReport> {
        let mut tx = self.db.begin(TxKind::Collect).await?;
        // Each tenant's latest result, and its latest result with a dataprint, stay whatever
        // their age: they are the tenant's current state and its last good dataprint.
        let tenant_runs = tx
            .execute(
                query(
                    "DELETE FROM tenant_runs WHERE finished_at < $1 \
                     AND finished_at < (SELECT MAX(l.finished_at) FROM tenant_runs l \
                                        WHERE l.tenant_key = tenant_runs.tenant_key) \
                     AND (dataprint_key IS NULL OR finished_at < (SELECT MAX(g.finished_at) FROM tenant_runs g \
                          WHERE g.tenant_key = tenant_runs.tenant_key AND g.dataprint_key IS NOT NULL))",
                )
                .bind(cutoff),
            )
            .await?;
        let mut report = PruneReport { tenant_runs, ..PruneReport::default() };
        report.dataprints_deleted = tx
            .execute(
                query(
                    "DELETE FROM dataprints WHERE taken_at < $1 AND NOT EXISTS \
                     (SELECT 1 FROM tenant_runs x WHERE x.dataprint_key = dataprints.key)",
                )
                .bind(cutoff),
            )
            .await?;
        (report.sets_deleted, report.blobs_deleted) = collect_garbage(tx.as_mut()).await?;
        // A series is a list of changes: the point in effect at the cutoff stays, the points it
        // superseded go.
        report.metrics_deleted = tx
            .execute(
                query(
                    "DELETE FROM metrics WHERE at < $1 AND EXISTS (SELECT 1 FROM metrics n \
                     WHERE n.tenant_id = metrics.tenant_id AND n.name = metrics.name \
                     AND n.at > metrics.at AND n.at <= $1)",
                )
                .bind(cutoff),
            )
            .await?;
        report.events_deleted = tx.execute(query("DELETE FROM events WHERE at < $1").bind(cutoff)).await?;
        let alerts = tx
            .fetch_all(query("SELECT key FROM alerts WHERE resolved_at IS NOT NULL AND resolved_at < $1").bind(cutoff))
            .await?;
        for row in &alerts {
            let alert = row.text_at(0)?;
            tx.execute(query("DELETE FROM alert_deliveries WHERE alert_key = $1").bind(&alert)).await?;
            tx.execute(query("DELETE FROM alert_outbox WHERE alert_key = $1 AND status <> 'pending'").bind(&alert))
                .await?;
        }
        report.alerts_deleted = tx
            .execute(query("DELETE FROM alerts WHERE resolved_at IS NOT NULL AND resolved_at < $1").bind(cutoff))
            .await?;
        report.runs_deleted = tx
            .execute(
                query(
                    "DELETE FROM runs WHERE status <> 'running' AND started_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM tenant_runs x WHERE x.run_key = runs.key) \
                     AND NOT EXISTS (SELECT 1 FROM dataprints d WHERE d.run_key = runs.key) \
                     AND NOT EXISTS (SELECT 1 FROM job_tenants j WHERE j.run_key = runs.key)",
                )
                .bind(cutoff),
            )
            .await?;
        tx.commit().await?;
        self.db.reclaim_space().await?;
        Ok(report)
    }
}

/// Deletes the collection sets no dataprint uses, then the blobs no set uses, then the stored
/// results no tenant result uses. Returns the sets and blobs deleted.
pub(super) async fn collect_garbage(tx: &mut (dyn Exec + '_)) -> Result<(u64, u64)> {
    let sets = tx
        .execute(query(
            "DELETE FROM collection_sets WHERE NOT EXISTS \
             (SELECT 1 FROM dataprints d WHERE d.set_id = collection_sets.id)",
        ))
        .await?;
    let blobs = tx
        .execute(query(
            "DELETE FROM blobs WHERE NOT EXISTS \
             (SELECT 1 FROM collection_set_members m WHERE m.blob_id = blobs.id)",
        ))
        .await?;
    tx.execute(query(
        "DELETE FROM results WHERE NOT EXISTS (SELECT 1 FROM tenant_runs x WHERE x.result_key = results.key)",
    ))
    .await?;
    Ok((sets, blobs))
}
