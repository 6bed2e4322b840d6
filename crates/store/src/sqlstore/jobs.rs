//! [`JobStore`] on SQL: the job queue, its leases and fences, schedules and named leases.
//!
//! A claim is one statement that picks the oldest due job and marks it claimed. On PostgreSQL the
//! pick skips rows other claimers hold locked (`FOR UPDATE SKIP LOCKED`), so concurrent workers
//! never wait on each other; SQLite has one writer, which serialises claims by itself.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::SqlStore;
use crate::common::{check_ts, json_text, non_empty};
use crate::error::{Result, StoreError};
use crate::rows::{self, RowExt};
use crate::sql::{Exec, ExecExt, TxKind, query};
use crate::{Backend, JobFilter, JobLease, JobOutcome, JobRecord, JobStore, NewJob, RunRecord, TenantId};

/// The error of a write whose lease is gone.
fn fenced(lease: &JobLease) -> StoreError {
    StoreError::Fenced { job_id: lease.job_id.clone(), fence: lease.fence }
}

/// Whether the job is still claimed with `fence`, checked under the job's row lock.
pub(super) async fn check_fence(exec: &mut (dyn Exec + '_), job_key: i64, fence: i64) -> Result<bool> {
    // An update (rather than a select) takes the row lock on PostgreSQL, so that a concurrent
    // claim cannot move the fence between this check and the commit.
    let held = exec
        .execute(
            query("UPDATE jobs SET fence = fence WHERE key = $1 AND fence = $2 AND status = 'running'")
                .bind(job_key)
                .bind(fence),
        )
        .await?;
    Ok(held == 1)
}

#[async_trait]
impl JobStore for SqlStore {
    async fn enqueue_job(&self, job: &NewJob, now: DateTime<Utc>) -> Result<JobRecord> {
        non_empty(&job.kind, "job kind")?;
        non_empty(&job.pool, "job pool")?;
        non_empty(&job.created_by, "job creator")?;
        if job.max_attempts < 1 {
            return Err(StoreError::InvalidInput("a job needs at least one attempt".into()));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let row = self
            .db
            .write()
            .fetch_one(
                query(concat!(
                    "INSERT INTO jobs (id, kind, params, pool, status, max_attempts, not_before, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8) RETURNING ",
                    job_columns!()
                ))
                .bind(id)
                .bind(&job.kind)
                .bind(json_text(&job.params)?)
                .bind(&job.pool)
                .bind(job.max_attempts)
                .bind(check_ts(job.not_before)?)
                .bind(check_ts(now)?)
                .bind(&job.created_by),
            )
            .await?;
        rows::job(&row)
    }

    async fn get_job(&self, id: &str) -> Result<Option<JobRecord>> {
        let row = self
            .db
            .read()
            .fetch_optional(query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1")).bind(id))
            .await?;
        row.map(|r| rows::job(&r)).transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit.min(1000) };
        let rows = self
            .db
            .read()
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM jobs WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR kind = $2) \
                     AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
                ))
                .bind(filter.status.map(|s| s.as_str()))
                .bind(filter.kind.as_deref())
                .bind(filter.before.as_deref())
                .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(rows::job).collect()
    }

    async fn claim_job(
        &self,
        owner: &str,
        pool: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<JobRecord>> {
        non_empty(owner, "job owner")?;
        let now = check_ts(now)?;
        let mut tx = self.db.begin(TxKind::Write).await?;
        // Jobs whose worker died on their last attempt, or that were cancelled while their worker
        // died, are settled first so that they are not claimed again.
        tx.execute(
            query(
                "UPDATE jobs SET status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled' ELSE 'dead' END, \
                 last_error = CASE WHEN cancel_requested_at IS NOT NULL THEN last_error \
                 ELSE 'the worker stopped renewing its lease on the last attempt' END, \
                 finished_at = $1, lease_owner = NULL, lease_until = NULL \
                 WHERE pool = $2 AND status = 'running' AND lease_until < $1 \
                 AND (attempts >= max_attempts OR cancel_requested_at IS NOT NULL)",
            )
            .bind(now)
            .bind(pool),
        )
        .await?;
        // A job whose worker died is resumed before new work starts; each pick is the head of a
        // partial index (`jobs_leased`, `jobs_queued`), so a claim costs the same however many
        // jobs the table holds.
        let (expired, queued) = match self.db.backend() {
            Backend::Postgres => (
                query(concat!(
                    "UPDATE jobs SET attempts = attempts + 1, fence = fence + 1, lease_owner = $1, lease_until = $2 \
                     WHERE key = (SELECT key FROM jobs WHERE pool = $4 AND status = 'running' AND lease_until < $3 \
                     ORDER BY lease_until, key LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING ",
                    job_columns!()
                )),
                query(concat!(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, fence = fence + 1, lease_owner = $1, \
                     lease_until = $2, started_at = COALESCE(started_at, $3) WHERE key = (SELECT key FROM jobs \
                     WHERE pool = $4 AND status = 'queued' AND not_before <= $3 \
                     ORDER BY not_before, key LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING ",
                    job_columns!()
                )),
            ),
            Backend::Sqlite => (
                query(concat!(
                    "UPDATE jobs SET attempts = attempts + 1, fence = fence + 1, lease_owner = $1, lease_until = $2 \
                     WHERE key = (SELECT key FROM jobs WHERE pool = $4 AND status = 'running' AND lease_until < $3 \
                     ORDER BY lease_until, key LIMIT 1) RETURNING ",
                    job_columns!()
                )),
                query(concat!(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, fence = fence + 1, lease_owner = $1, \
                     lease_until = $2, started_at = COALESCE(started_at, $3) WHERE key = (SELECT key FROM jobs \
                     WHERE pool = $4 AND status = 'queued' AND not_before <= $3 \
                     ORDER BY not_before, key LIMIT 1) RETURNING ",
                    job_columns!()
                )),
            ),
        };
        let until = check_ts(now + lease)?;
        let mut row = tx.fetch_optional(expired.bind(owner).bind(until).bind(now).bind(pool)).await?;
        if row.is_none() {
            row = tx.fetch_optional(queued.bind(owner).bind(until).bind(now).bind(pool)).await?;
        }
        let job = row.map(|r| rows::job(&r)).transpose()?;
        tx.commit().await?;
        Ok(job)
    }

    async fn heartbeat_job(
        &self,
        lease: &JobLease,
        now: DateTime<Utc>,
        lease_for: chrono::Duration,
        progress: Option<&Value>,
    ) -> Result<JobRecord> {
        let progress = progress.map(json_text).transpose()?;
        let row = self
            .db
            .write()
            .fetch_optional(
                query(concat!(
                    "UPDATE jobs SET lease_until = $3, progress = COALESCE($4, progress) \
                     WHERE id = $1 AND fence = $2 AND status = 'running' RETURNING ",
                    job_columns!()
                ))
                .bind(&lease.job_id)
                .bind(lease.fence)
                .bind(check_ts(now + lease_for)?)
                .bind(progress),
            )
            .await?;
        match row {
            Some(row) => rows::job(&row),
            None => Err(fenced(lease)),
        }
    }

    async fn finish_job(&self, lease: &JobLease, outcome: &JobOutcome, now: DateTime<Utc>) -> Result<JobRecord> {
        let now = check_ts(now)?;
        let q = match outcome {
            JobOutcome::Succeeded(result) => query(concat!(
                "UPDATE jobs SET status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled' ELSE 'succeeded' END, \
                 result = $3, finished_at = $4, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND fence = $2 AND status = 'running' RETURNING ",
                job_columns!()
            ))
            .bind(&lease.job_id)
            .bind(lease.fence)
            .bind(json_text(result)?)
            .bind(now),
            JobOutcome::Failed { error, retry_at } => query(concat!(
                "UPDATE jobs SET status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled' \
                 WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                 finished_at = CASE WHEN cancel_requested_at IS NOT NULL OR attempts >= max_attempts THEN $4 ELSE NULL END, \
                 last_error = $3, not_before = $5, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND fence = $2 AND status = 'running' RETURNING ",
                job_columns!()
            ))
            .bind(&lease.job_id)
            .bind(lease.fence)
            .bind(error.as_str())
            .bind(now)
            .bind(check_ts(*retry_at)?),
            JobOutcome::Cancelled => query(concat!(
                "UPDATE jobs SET status = 'cancelled', finished_at = $3, cancel_requested_at = COALESCE(cancel_requested_at, $3), \
                 lease_owner = NULL, lease_until = NULL WHERE id = $1 AND fence = $2 AND status = 'running' RETURNING ",
                job_columns!()
            ))
            .bind(&lease.job_id)
            .bind(lease.fence)
            .bind(now),
        };
        match self.db.write().fetch_optional(q).await? {
            Some(row) => rows::job(&row),
            None => Err(fenced(lease)),
        }
    }

    async fn cancel_job(&self, id: &str, now: DateTime<Utc>) -> Result<Option<JobRecord>> {
        let now = check_ts(now)?;
        let row = self
            .db
            .write()
            .fetch_optional(
                query(concat!(
                    "UPDATE jobs SET status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, \
                     finished_at = CASE WHEN status = 'queued' THEN $2 ELSE finished_at END, \
                     cancel_requested_at = COALESCE(cancel_requested_at, $2) \
                     WHERE id = $1 AND status IN ('queued', 'running') RETURNING ",
                    job_columns!()
                ))
                .bind(id)
                .bind(now),
            )
            .await?;
        match row {
            Some(row) => rows::job(&row).map(Some),
            None => self.get_job(id).await,
        }
    }

    async fn start_job_run(&self, lease: &JobLease, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord> {
        let run = super::runs::new_run(kind, started_at)?;
        let mut tx = self.db.begin(TxKind::Write).await?;
        let job_key = tx
            .int(query("SELECT key FROM jobs WHERE id = $1").bind(&lease.job_id))
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("job {}", lease.job_id)))?;
        if !check_fence(&mut *tx, job_key, lease.fence).await? {
            return Err(fenced(lease));
        }
        super::runs::insert_run(self, &mut *tx, &run, Some((job_key, lease.fence))).await?;
        tx.commit().await?;
        Ok(run)
    }

    async fn runs_with_jobs(&self, limit: u32) -> Result<Vec<(RunRecord, Option<String>)>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(
                    "SELECT r.id, r.kind, r.started_at, r.finished_at, r.status, r.stats, j.id AS job_id \
                     FROM runs r LEFT JOIN jobs j ON j.key = r.job_key \
                     ORDER BY r.started_at DESC, r.id DESC LIMIT $1",
                )
                .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(|r| Ok((rows::run(r)?, r.opt_text("job_id")?))).collect()
    }

    async fn job_tenants(&self, job_id: &str) -> Result<Vec<TenantId>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(
                    "SELECT k.tenant_id FROM job_tenants jt JOIN jobs j ON j.key = jt.job_key \
                     JOIN tenant_keys k ON k.key = jt.tenant_key WHERE j.id = $1 ORDER BY k.tenant_id",
                )
                .bind(job_id),
            )
            .await?;
        rows.iter().map(|r| r.tenant_id("tenant_id")).collect()
    }

    async fn job_runs(&self, job_id: &str) -> Result<Vec<RunRecord>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(
                    "SELECT r.id, r.kind, r.started_at, r.finished_at, r.status, r.stats FROM runs r \
                     JOIN jobs j ON j.key = r.job_key WHERE j.id = $1 ORDER BY r.started_at, r.key",
                )
                .bind(job_id),
            )
            .await?;
        rows.iter().map(rows::run).collect()
    }

    async fn schedule_state(&self) -> Result<Vec<(TenantId, DateTime<Utc>)>> {
        let rows =
            self.db.read().fetch_all(query("SELECT tenant_id, next_at FROM schedule_state ORDER BY next_at")).await?;
        rows.iter().map(|r| Ok((r.tenant_id("tenant_id")?, r.ts("next_at")?))).collect()
    }

    async fn set_schedule(&self, due: &[(TenantId, DateTime<Utc>)], job_id: Option<&str>) -> Result<()> {
        let mut tx = self.db.begin(TxKind::Write).await?;
        for (tenant, at) in due {
            tx.execute(
                query(
                    "INSERT INTO schedule_state (tenant_id, next_at, last_job) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id) DO UPDATE SET next_at = excluded.next_at, \
                     last_job = COALESCE(excluded.last_job, schedule_state.last_job)",
                )
                .bind(tenant)
                .bind(check_ts(*at)?)
                .bind(job_id),
            )
            .await?;
        }
        tx.commit().await
    }

    async fn acquire_lease(&self, name: &str, owner: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool> {
        non_empty(name, "lease name")?;
        non_empty(owner, "lease owner")?;
        // One statement decides: PostgreSQL locks the conflicting row and re-evaluates the
        // condition, SQLite has one writer.
        let held = self
            .db
            .write()
            .execute(
                query(
                    "INSERT INTO leases (name, owner, until) VALUES ($1, $2, $4) ON CONFLICT (name) DO UPDATE \
                     SET owner = excluded.owner, until = excluded.until \
                     WHERE leases.owner = excluded.owner OR leases.until < $3",
                )
                .bind(name)
                .bind(owner)
                .bind(check_ts(now)?)
                .bind(check_ts(until)?),
            )
            .await?;
        Ok(held == 1)
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<()> {
        self.db
            .write()
            .execute(query("DELETE FROM leases WHERE name = $1 AND owner = $2").bind(name).bind(owner))
            .await?;
        Ok(())
    }
}

/// Records, in a tenant commit's transaction, that the run's job committed this tenant: refused
/// when the job's lease moved on or when another run of the job committed the tenant already.
pub(super) async fn record_job_tenant(
    exec: &mut (dyn Exec + '_),
    run_key: i64,
    tenant_key: i64,
    tenant_id: &TenantId,
    job_key: i64,
    fence: i64,
) -> Result<()> {
    let job_id = exec
        .text(query("SELECT id FROM jobs WHERE key = $1").bind(job_key))
        .await?
        .ok_or_else(|| StoreError::Internal(format!("the job of run {run_key} is gone")))?;
    if !check_fence(exec, job_key, fence).await? {
        return Err(StoreError::Fenced { job_id, fence });
    }
    let recorded = exec
        .execute(
            query(
                "INSERT INTO job_tenants (job_key, tenant_key, run_key) VALUES ($1, $2, $3) \
                 ON CONFLICT (job_key, tenant_key) DO UPDATE SET run_key = excluded.run_key \
                 WHERE job_tenants.run_key = excluded.run_key",
            )
            .bind(job_key)
            .bind(tenant_key)
            .bind(run_key),
        )
        .await?;
    if recorded == 0 {
        return Err(StoreError::AlreadyCommitted { job_id, tenant_id: tenant_id.to_string() });
    }
    Ok(())
}
