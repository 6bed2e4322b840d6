//! [`RunStore`] on SQL: runs, and the commit of each tenant's result.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::dataprints::set_delta_links_in;
use super::history::put_metrics_in;
use super::tenants::{set_tenant_domains_in, upsert_tenant_in};
use super::{SqlStore, ensure_result, ensure_set, latest_dataprint, load_envelope, tenant_key};
use crate::common::{HEARTBEAT_EVERY, check_ts, json_text, non_empty, owner_is_dead, validate_tenant_result};
use crate::error::{Result, StoreError};
use crate::plan::{Decision, Incoming};
use crate::rows::{self, RowExt};
use crate::sql::{Exec, ExecExt, TxKind, query};
use crate::{
    CollectorOutcomeRecord, DataprintId, RunId, RunRecord, RunStatus, RunStore, TenantId, TenantRunRecord, WithResult,
    blob,
};

/// A run about to start.
pub(super) fn new_run(kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord> {
    non_empty(kind, "run kind")?;
    Ok(RunRecord {
        id: RunId::new(uuid::Uuid::now_v7().to_string()),
        kind: kind.to_owned(),
        started_at: check_ts(started_at)?,
        finished_at: None,
        status: RunStatus::Running,
        stats: Value::Null,
    })
}

/// Records a run owned by this process; `job` is the key and fence of the job it works for.
pub(super) async fn insert_run(
    store: &SqlStore,
    exec: &mut (dyn Exec + '_),
    run: &RunRecord,
    job: Option<(i64, i64)>,
) -> Result<()> {
    exec.execute(
        query(
            "INSERT INTO runs (id, kind, started_at, finished_at, status, stats, owner, heartbeat_at, job_key, job_fence) \
             VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&run.id)
        .bind(&run.kind)
        .bind(run.started_at)
        .bind(run.status.as_str())
        .bind(json_text(&run.stats)?)
        .bind(serde_json::to_string(store.instance.owner())?)
        .bind(Utc::now())
        .bind(job.map(|(key, _)| key))
        .bind(job.map(|(_, fence)| fence)),
    )
    .await?;
    Ok(())
}

#[async_trait]
impl RunStore for SqlStore {
    async fn start_run(&self, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord> {
        let run = new_run(kind, started_at)?;
        insert_run(self, &mut *self.db.write(), &run, None).await?;
        Ok(run)
    }

    async fn heartbeat_run(&self, run_id: &RunId) -> Result<()> {
        let done = self
            .db
            .write()
            .execute(query("UPDATE runs SET heartbeat_at = $2 WHERE id = $1").bind(run_id).bind(Utc::now()))
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("run {run_id}")));
        }
        Ok(())
    }

    async fn finish_run(
        &self,
        run_id: &RunId,
        status: RunStatus,
        finished_at: DateTime<Utc>,
        stats: &Value,
    ) -> Result<()> {
        if status == RunStatus::Running {
            return Err(StoreError::InvalidInput("a run cannot finish with status running".into()));
        }
        let done = self
            .db
            .write()
            .execute(
                query("UPDATE runs SET status = $2, finished_at = $3, stats = $4, heartbeat_at = $3 WHERE id = $1")
                    .bind(run_id)
                    .bind(status.as_str())
                    .bind(finished_at)
                    .bind(json_text(stats)?),
            )
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("run {run_id}")));
        }
        Ok(())
    }

    async fn get_run(&self, run_id: &RunId) -> Result<Option<RunRecord>> {
        let row = self
            .db
            .read()
            .fetch_optional(query(concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1")).bind(run_id))
            .await?;
        row.as_ref().map(rows::run).transpose()
    }

    async fn list_runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(concat!("SELECT ", run_columns!(), " FROM runs ORDER BY started_at DESC, id DESC LIMIT $1"))
                    .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(rows::run).collect()
    }

    async fn recover_interrupted_runs(&self) -> Result<u64> {
        let running = self
            .db
            .write()
            .fetch_all(query("SELECT id, owner, heartbeat_at FROM runs WHERE status = 'running'"))
            .await?;
        let now = Utc::now();
        let mut marked = 0;
        for row in &running {
            let id = row.text("id")?;
            let heartbeat = row.ts("heartbeat_at")?;
            if !owner_is_dead(&row.text("owner")?, heartbeat, now) {
                continue;
            }
            // The last sign of life is the best guess of when it stopped.
            marked += self
                .db
                .write()
                .execute(
                    query(
                        "UPDATE runs SET status = 'interrupted', finished_at = heartbeat_at \
                         WHERE id = $1 AND status = 'running'",
                    )
                    .bind(id),
                )
                .await?;
        }
        Ok(marked)
    }

    async fn commit_tenant_result_with(
        &self,
        tr: &TenantRunRecord,
        outcomes: &[CollectorOutcomeRecord],
        dataprint: Option<&Value>,
        with: &WithResult,
    ) -> Result<Option<DataprintId>> {
        validate_tenant_result(tr, outcomes)?;
        if let Some(tenant) = &with.tenant
            && tenant.id != tr.tenant_id
        {
            return Err(StoreError::InvalidInput(format!(
                "the tenant record of {} was committed with a result of {}",
                tenant.id, tr.tenant_id
            )));
        }
        // The start is checked like any timestamp, although it is stored as time before the end,
        // in the per-run part.
        check_ts(tr.started_at)?;
        let finished_at = check_ts(tr.finished_at)?;
        let known = match (&with.reused, dataprint) {
            (Some(reused), Some(_)) => self.reused_blobs(&tr.tenant_id, reused).await?,
            _ => blob::Known::new(),
        };
        if let (Some(reused), Some(_)) = (&with.reused, dataprint)
            && let Some(name) = reused.unread.iter().find(|name| !known.contains_key(name.as_str()))
        {
            return Err(StoreError::InvalidInput(format!(
                "collection {name:?} was committed unread from dataprint {}, which is not the tenant's or does not \
                 hold it; inspect the tenant again",
                reused.dataprint
            )));
        }
        let (mut incoming, split) = Incoming::new(tr, outcomes, dataprint, &known, &with.unparsed)?;
        if let Some(split) = split {
            self.plan(tr, &mut incoming, split).await?;
        }

        let mut tx = self.db.begin(TxKind::Commit).await?;
        let run = tx
            .fetch_optional(query("SELECT key, job_key, job_fence FROM runs WHERE id = $1").bind(&tr.run_id))
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run {}", tr.run_id)))?;
        let run_key = run.int("key")?;
        if let Some(tenant) = &with.tenant {
            upsert_tenant_in(&mut *tx, tenant).await?;
        }
        let tenant_key = tenant_key(&mut *tx, &tr.tenant_id).await?;
        // A run started for a job commits only while the job's lease holds, each tenant once; a
        // run of the command line has no job and pays nothing for it.
        if let (Some(job_key), Some(fence)) = (run.opt_int("job_key")?, run.opt_int("job_fence")?) {
            super::jobs::record_job_tenant(&mut *tx, run_key, tenant_key, &tr.tenant_id, job_key, fence).await?;
        }

        // Committing a tenant again in the same run replaces its result, and the dataprint that
        // result introduced unless a later run confirmed it since.
        let replaced = tx
            .fetch_optional(
                query("DELETE FROM tenant_runs WHERE run_key = $1 AND tenant_key = $2 RETURNING dataprint_key")
                    .bind(run_key)
                    .bind(tenant_key),
            )
            .await?;
        if let Some(old) = replaced.map(|row| row.opt_int("dataprint_key")).transpose()?.flatten() {
            tx.execute(
                query(
                    "DELETE FROM dataprints WHERE key = $1 AND run_key = $2 AND NOT EXISTS \
                     (SELECT 1 FROM tenant_runs c WHERE c.tenant_key = $3 AND c.dataprint_key = $1)",
                )
                .bind(old)
                .bind(run_key)
                .bind(tenant_key),
            )
            .await?;
        }

        let result_key = ensure_result(&mut *tx, &incoming.result).await?;
        let latest = latest_dataprint(&mut *tx, &tr.tenant_id).await?;
        let exec: &mut (dyn Exec + '_) = &mut *tx;
        let decision = incoming
            .decide(tr, latest, move |key| async move {
                load_envelope(exec, key)
                    .await?
                    .ok_or_else(|| StoreError::Internal(format!("dataprint {key} vanished inside a transaction")))
            })
            .await?;
        let (dataprint_key, dataprint_id, per_run) = match decision {
            Decision::None(per_run) => (None, None, per_run),
            Decision::Confirm { key, id, per_run } => (Some(key), Some(id), per_run),
            Decision::Insert(prepared) => {
                let set_id = match &prepared.split.set_hash {
                    Some(hash) => Some(
                        ensure_set(&mut *tx, self.db.backend(), &self.seen, tenant_key, &prepared, hash, dataprint)
                            .await?,
                    ),
                    None => None,
                };
                let id = uuid::Uuid::now_v7().to_string();
                let key = tx
                    .fetch_one(
                        query(
                            "INSERT INTO dataprints (id, tenant_key, run_key, taken_at, status, content_hash, \
                             envelope, envelope_len, set_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING key",
                        )
                        .bind(&id)
                        .bind(tenant_key)
                        .bind(run_key)
                        .bind(finished_at)
                        .bind(tr.status.as_str())
                        .bind(&prepared.split.content_hash)
                        .bind(&prepared.envelope_z)
                        .bind(prepared.split.envelope.len() as i64)
                        .bind(set_id),
                    )
                    .await?
                    .int("key")?;
                let split = &prepared.split;
                let per_run = incoming.per_run_against(tr, split, split.run.as_ref(), finished_at)?;
                (Some(key), Some(id), per_run)
            }
        };

        tx.execute(
            query(
                "INSERT INTO tenant_runs (run_key, tenant_key, finished_at, result_key, dataprint_key, per_run) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(run_key)
            .bind(tenant_key)
            .bind(finished_at)
            .bind(result_key)
            .bind(dataprint_key)
            .bind(per_run),
        )
        .await?;

        if let Some(d) = &with.domains {
            set_tenant_domains_in(&mut *tx, &tr.tenant_id, &d.source, &d.domains).await?;
        }
        if dataprint_id.is_some() {
            if let Some(m) = &with.metrics {
                put_metrics_in(&mut *tx, self.db.backend(), &tr.run_id, &tr.tenant_id, check_ts(m.at)?, &m.values)
                    .await?;
            }
            set_delta_links_in(&mut *tx, self.db.backend(), &tr.tenant_id, &with.delta_links).await?;
        }

        // The heartbeat is refreshed at most once a minute: writing it with every commit would
        // rewrite the run's row a thousand times per run of a large fleet (in PostgreSQL, a dead
        // row version each time), and a run counts as silent only after two hours. Within the
        // minute after this process refreshed it, the statement is not even sent.
        let now = Utc::now();
        let due = self
            .heartbeats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&run_key)
            .is_none_or(|last| *last <= now - HEARTBEAT_EVERY);
        if due {
            tx.execute(
                query("UPDATE runs SET heartbeat_at = $2 WHERE key = $1 AND heartbeat_at < $3")
                    .bind(run_key)
                    .bind(now)
                    .bind(now - HEARTBEAT_EVERY),
            )
            .await?;
        }
        tx.commit().await?;
        if due {
            let mut beats = self.heartbeats.lock().unwrap_or_else(|e| e.into_inner());
            // A long-lived server sees many runs; those not heard of for an hour are forgotten.
            beats.retain(|_, last| *last > now - chrono::TimeDelta::hours(1));
            beats.insert(run_key, now);
        }
        Ok(dataprint_id.map(DataprintId::from))
    }

    async fn last_tenant_run(&self, tenant_id: &TenantId) -> Result<Option<TenantRunRecord>> {
        let row = self
            .db
            .read()
            .fetch_optional(
                query(concat!(
                    tenant_run_select!(),
                    " WHERE x.tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $1) \
                     ORDER BY x.finished_at DESC, r.id DESC LIMIT 1"
                ))
                .bind(tenant_id),
            )
            .await?;
        row.as_ref().map(rows::tenant_run).transpose()
    }

    async fn latest_tenant_runs(&self) -> Result<Vec<TenantRunRecord>> {
        let rows = self
            .db
            .read()
            // A join with each tenant's latest time, not a row-value `IN`: SQLite runs the `IN`
            // subquery's scan again for every row (0.1 s at a thousand tenants against 0.01 s).
            .fetch_all(query(concat!(
                "SELECT ",
                tenant_run_columns!(),
                " FROM (SELECT tenant_key, max(finished_at) AS latest FROM tenant_runs GROUP BY tenant_key) l \
                 JOIN tenant_runs x ON x.tenant_key = l.tenant_key AND x.finished_at = l.latest ",
                tenant_run_joins!(),
                " ORDER BY r.id"
            )))
            .await?;
        // Two results of one tenant finishing in the same microsecond: the later run's wins.
        let mut latest = std::collections::HashMap::new();
        for row in &rows {
            let record = rows::tenant_run(row)?;
            latest.insert(record.tenant_id.clone(), record);
        }
        Ok(latest.into_values().collect())
    }

    async fn tenant_runs(&self, run_id: &RunId) -> Result<Vec<TenantRunRecord>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(concat!(tenant_run_select!(), " WHERE x.run_key = (SELECT key FROM runs WHERE id = $1)"))
                    .bind(run_id),
            )
            .await?;
        // In start order; the start is decoded from the per-run part, so the order is applied here
        // rather than in SQL.
        let mut records = rows.iter().map(rows::tenant_run).collect::<Result<Vec<_>>>()?;
        records.sort_by(|a, b| (a.started_at, &a.tenant_id).cmp(&(b.started_at, &b.tenant_id)));
        Ok(records)
    }

    async fn collector_outcomes(&self, run_id: &RunId, tenant_id: &TenantId) -> Result<Vec<CollectorOutcomeRecord>> {
        let Some(stored) = self.stored_run(run_id, tenant_id).await? else {
            return Ok(Vec::new());
        };
        let decoded = stored.decode()?;
        stored.run.outcomes(&decoded)
    }
}
